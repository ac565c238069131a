package kel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrNotAuthsForm means an event holds a field in a form auths cannot read,
// or reads with another meaning: it may be verified on its own, but must
// not enter a registry that auths shares.
var ErrNotAuthsForm = errors.New("not in a form auths reads alike")

// CheckAuthsForm checks that an event's thresholds are in the forms auths
// reads with the meaning keripy gives them (auths-keri's Threshold in
// types.rs): kt and nt a hex string, or exactly one weighted clause of
// "n/d" strings as long as the key list it weighs (k for kt, n for nt).
// Errors are *FieldError naming kt or nt and wrap ErrNotAuthsForm.
//
// Refused, with the reason: keripy's flat weight list and bare integers
// (auths cannot deserialize them); whole-number weights such as "1"
// (auths' Fraction requires "n/d"); several clauses, which auths applies
// each to the whole key list while keripy splits the list between them, so
// the same event would need different signatures in the two.
func CheckAuthsForm(e *Event) error {
	if !e.IsEstablishment() {
		return nil
	}
	for _, f := range []struct {
		name string
		keys int
	}{{"kt", len(e.Keys)}, {"nt", len(e.NextDigests)}} {
		if err := CheckAuthsThreshold(e.values[f.name], f.keys); err != nil {
			return &FieldError{Field: f.name, Err: fmt.Errorf("%w: %v", ErrNotAuthsForm, err)}
		}
	}
	return nil
}

// CheckAuthsThreshold checks one threshold's JSON form for a list of keys
// long, by the rules of CheckAuthsForm.
func CheckAuthsThreshold(raw json.RawMessage, keys int) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return errors.New("missing")
	}
	switch raw[0] {
	case '"':
		return nil // a hex count, read alike
	case '[':
	default:
		return fmt.Errorf("%s is a bare number; auths reads a hex string", clip(string(raw)))
	}
	var clauses []json.RawMessage
	if err := json.Unmarshal(raw, &clauses); err != nil {
		return err
	}
	if len(clauses) > 0 && bytes.HasPrefix(bytes.TrimSpace(clauses[0]), []byte(`"`)) {
		return fmt.Errorf("keripy's flat weight list %s, which auths cannot read: write it as one clause [[…]]", clip(string(raw)))
	}
	if len(clauses) != 1 {
		return fmt.Errorf("%d weighted clauses: auths applies every clause to the whole key list, keripy splits the list between them, so they would disagree on who must sign; use one clause", len(clauses))
	}
	var weights []string
	if err := json.Unmarshal(clauses[0], &weights); err != nil {
		return fmt.Errorf("clause is not a list of weight strings")
	}
	if len(weights) != keys {
		return fmt.Errorf("a clause of %d weights for %d keys: auths requires one weight per key", len(weights), keys)
	}
	for _, w := range weights {
		if !strings.Contains(w, "/") {
			return fmt.Errorf("weight %q: auths reads weights only as n/d (write %s/1)", clip(w), clip(w))
		}
	}
	return nil
}
