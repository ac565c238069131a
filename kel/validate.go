package kel

import (
	"errors"
	"fmt"
	"slices"
)

// SignedEvent is an event with its controller signatures.
type SignedEvent struct {
	Event *Event
	Sigs  []Siger
	// Sources are the -G source seals of a delegated event (dip, drt): where
	// the delegator anchored it. Attached after Sigs; nil for others.
	Sources []SourceSeal
}

// EventError says which event of a KEL failed validation and why.
type EventError struct {
	Sn   uint64
	SAID string
	Type string
	Err  error
}

func (e *EventError) Error() string {
	return fmt.Sprintf("event s=%x (%s %s): %v", e.Sn, e.Type, e.SAID, e.Err)
}
func (e *EventError) Unwrap() error { return e.Err }

// Errors callers branch on.
var (
	// ErrThreshold means the valid signatures do not meet a threshold.
	ErrThreshold = errors.New("signatures do not meet the threshold")
	// ErrBadSignature means a signature does not verify.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrOutOfOrder means s or p does not follow the previous event.
	ErrOutOfOrder = errors.New("event out of order")
	// ErrAbandoned means the identifier was abandoned and nothing may follow.
	ErrAbandoned = errors.New("identifier abandoned")
)

// Apply validates se as the next event after st (nil before inception) and
// returns the new key state. st is not modified. Delegated events (dip,
// drt) pass when they are valid as events: whether the delegator approved
// them is for a caller that holds the delegator's KEL (the registry), or
// RefuseDelegated when none does.
func Apply(st *KeyState, se SignedEvent) (*KeyState, error) {
	return applyChecked(st, se, nil, "")
}

// applyChecked is Apply with signature validity and the computed SAID
// possibly precomputed: sigOK[i] tells whether se.Sigs[i] verifies against
// the key at its index (nil: verify here); said is e.ComputeSAID() (empty:
// compute here).
func applyChecked(st *KeyState, se SignedEvent, sigOK []bool, said string) (*KeyState, error) {
	e := se.Event
	if e == nil {
		return nil, errors.New("no event")
	}
	wrap := func(err error) error {
		return &EventError{Sn: e.Sn, SAID: e.SAID, Type: e.Type, Err: err}
	}
	next, err := transition(st, e, said)
	if err != nil {
		return nil, wrap(err)
	}
	if err := checkSigs(st, next, se, sigOK); err != nil {
		return nil, wrap(err)
	}
	return next, nil
}

// transition checks everything but signatures and computes the new state.
// said is e.ComputeSAID() when the caller has it, or empty.
func transition(st *KeyState, e *Event, said string) (*KeyState, error) {
	if said == "" {
		said = e.ComputeSAID()
	}
	if err := e.checkSAID(said); err != nil {
		return nil, err
	}
	if e.IsInception() {
		if st != nil {
			return nil, fmt.Errorf("%w: inception after s=%x", ErrOutOfOrder, st.Sequence)
		}
		return incept(e)
	}
	if st == nil {
		return nil, fmt.Errorf("%w: %s event without inception", ErrOutOfOrder, e.Type)
	}
	if e.Prefix != st.Prefix {
		return nil, fieldErr("i", "prefix %s, want %s", e.Prefix, st.Prefix)
	}
	if st.IsAbandoned {
		return nil, fmt.Errorf("%w: nothing may follow the abandoning rotation at s=%x", ErrAbandoned, st.LastEstablishmentSequence)
	}
	if st.IsNonTransferable {
		// keripy: no event of any kind follows a non-transferable inception.
		return nil, fmt.Errorf("%s event after the inception of a non-transferable identifier (no next keys): nothing may follow", e.Type)
	}
	if e.Sn != st.Sequence+1 {
		return nil, fmt.Errorf("%w: s=%x, want %x", ErrOutOfOrder, e.Sn, st.Sequence+1)
	}
	if e.Prior != st.LastEventSAID {
		return nil, fmt.Errorf("%w: p=%s, want the previous SAID %s", ErrOutOfOrder, e.Prior, st.LastEventSAID)
	}
	next := st.Clone()
	next.Sequence = e.Sn
	next.LastEventSAID = e.SAID
	switch e.Type {
	case TypeInteraction:
		if st.HasTrait(TraitEstablishmentOnly) {
			return nil, fmt.Errorf("interaction event on an establishment-only (EO) identifier")
		}
		return next, nil
	case TypeRotation, TypeDelegatedRotation:
		if st.IsNonTransferable {
			return nil, fmt.Errorf("rotation of a non-transferable identifier")
		}
		if err := checkKeys(e); err != nil {
			return nil, err
		}
		next.CurrentKeys = append([]string{}, e.Keys...)
		next.Threshold = e.KeyThreshold
		next.NextCommitment = append([]string{}, e.NextDigests...)
		next.NextThreshold = e.NextThreshold
		next.IsAbandoned = len(e.NextDigests) == 0
		next.LastEstablishmentSequence = e.Sn
		backers, err := rotateBackers(st.Backers, e.BackersRemoved, e.BackersAdded)
		if err != nil {
			return nil, err
		}
		next.Backers = backers
		next.BackerThreshold = SimpleThreshold(e.BackerThreshold)
		if e.BackerThreshold > uint64(len(backers)) {
			return nil, fieldErr("bt", "backer threshold %d larger than the %d backers", e.BackerThreshold, len(backers))
		}
		return next, nil
	}
	return nil, fieldErr("t", "unexpected event type %q", e.Type)
}

func incept(e *Event) (*KeyState, error) {
	if e.Sn != 0 {
		return nil, fmt.Errorf("%w: inception with s=%x", ErrOutOfOrder, e.Sn)
	}
	if err := checkKeys(e); err != nil {
		return nil, err
	}
	nonTransferable := len(e.NextDigests) == 0
	if !e.selfAddressing() {
		k, _ := ParseVerfer(e.Keys[0])
		if !k.Transferable() && !nonTransferable {
			return nil, fieldErr("n", "a non-transferable basic prefix cannot commit to next keys")
		}
	}
	for _, c := range e.Config {
		if c != TraitEstablishmentOnly && c != TraitDoNotDelegate {
			return nil, fieldErr("c", "configuration trait %q unsupported", clip(c))
		}
	}
	if e.BackerThreshold > uint64(len(e.Backers)) {
		return nil, fieldErr("bt", "backer threshold %d larger than the %d backers", e.BackerThreshold, len(e.Backers))
	}
	if err := checkUnique("b", e.Backers); err != nil {
		return nil, err
	}
	st := &KeyState{
		Prefix:            e.Prefix,
		CurrentKeys:       append([]string{}, e.Keys...),
		NextCommitment:    append([]string{}, e.NextDigests...),
		Sequence:          0,
		LastEventSAID:     e.SAID,
		Threshold:         e.KeyThreshold,
		NextThreshold:     e.NextThreshold,
		Backers:           append([]string{}, e.Backers...),
		BackerThreshold:   SimpleThreshold(e.BackerThreshold),
		ConfigTraits:      append([]string{}, e.Config...),
		IsNonTransferable: nonTransferable,
	}
	if e.Delegator != "" {
		d := e.Delegator
		st.Delegator = &d
	}
	return st, nil
}

// checkKeys checks the key list, next digests and thresholds of an
// establishment event.
func checkKeys(e *Event) error {
	if len(e.Keys) == 0 {
		return fieldErr("k", "no keys")
	}
	for i, k := range e.Keys {
		if _, err := ParseVerfer(k); err != nil {
			return fieldErr("k", "key %d: %v", i, err)
		}
	}
	if err := checkUnique("k", e.Keys); err != nil {
		return err
	}
	if err := e.KeyThreshold.CheckKeys(len(e.Keys)); err != nil {
		return &FieldError{Field: "kt", Err: err}
	}
	for i, d := range e.NextDigests {
		if _, err := ParseDigest(d); err != nil {
			return fieldErr("n", "digest %d: %v", i, err)
		}
	}
	if err := checkUnique("n", e.NextDigests); err != nil {
		return err
	}
	if len(e.NextDigests) == 0 {
		if e.NextThreshold.Weighted() || e.NextThreshold.Count() != 0 {
			return fieldErr("nt", "next threshold %s without next keys", e.NextThreshold.Text())
		}
		return nil
	}
	if err := e.NextThreshold.CheckKeys(len(e.NextDigests)); err != nil {
		return &FieldError{Field: "nt", Err: err}
	}
	return nil
}

func checkUnique(field string, l []string) error {
	seen := make(map[string]bool, len(l))
	for i, s := range l {
		if seen[s] {
			return fieldErr(field, "entry %d (%s) listed twice", i, clip(s))
		}
		seen[s] = true
	}
	return nil
}

func rotateBackers(cur, removed, added []string) ([]string, error) {
	out := make([]string, 0, len(cur)+len(added))
	rm := make(map[string]bool)
	for _, r := range removed {
		rm[r] = true
	}
	for _, r := range removed {
		found := false
		for _, c := range cur {
			found = found || c == r
		}
		if !found {
			return nil, fieldErr("br", "backer %s is not a current backer", clip(r))
		}
	}
	for _, c := range cur {
		if !rm[c] {
			out = append(out, c)
		}
	}
	for _, a := range added {
		for _, c := range out {
			if c == a {
				return nil, fieldErr("ba", "backer %s is already a backer", clip(a))
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// checkSigs verifies the signatures of e against the new state's keys and
// checks the thresholds (and, for rotations, the prior next commitment).
func checkSigs(prior, next *KeyState, se SignedEvent, sigOK []bool) error {
	e := se.Event
	keys := next.CurrentKeys
	var indexes, ondexes []int
	for i, s := range se.Sigs {
		if s.Index < 0 || s.Index >= len(keys) {
			return fmt.Errorf("signature %d: index %d outside the %d current keys", i, s.Index, len(keys))
		}
		ok := false
		if sigOK != nil {
			ok = sigOK[i]
		} else {
			ok = verifyIndexed(keys, e.raw, s)
		}
		if !ok {
			return fmt.Errorf("signature %d (index %d): %w", i, s.Index, ErrBadSignature)
		}
		indexes = append(indexes, s.Index)
		if e.Type == TypeRotation || e.Type == TypeDelegatedRotation {
			if s.Ondex == NoOndex {
				continue
			}
			if s.Ondex >= len(prior.NextCommitment) {
				return fmt.Errorf("signature %d: prior-next index %d outside the %d prior next digests", i, s.Ondex, len(prior.NextCommitment))
			}
			if NextKeyDigest(keys[s.Index]) != prior.NextCommitment[s.Ondex] {
				return fmt.Errorf("signature %d: key %d does not match prior next digest %d", i, s.Index, s.Ondex)
			}
			ondexes = append(ondexes, s.Ondex)
		}
	}
	if !next.Threshold.Satisfied(indexes) {
		return fmt.Errorf("%w: kt %s, valid signatures at indexes %v", ErrThreshold, next.Threshold.Text(), uniqueSorted(indexes))
	}
	if (e.Type == TypeRotation || e.Type == TypeDelegatedRotation) && !prior.NextThreshold.Satisfied(ondexes) {
		return fmt.Errorf("%w: prior nt %s, prior next keys revealed at %v", ErrThreshold, prior.NextThreshold.Text(), uniqueSorted(ondexes))
	}
	return nil
}

func verifyIndexed(keys []string, msg []byte, s Siger) bool {
	if s.Index < 0 || s.Index >= len(keys) {
		return false
	}
	v, err := ParseVerfer(keys[s.Index])
	if err != nil {
		return false
	}
	return v.Verify(msg, s.Raw)
}

func uniqueSorted(l []int) []int {
	out := slices.Clone(l)
	slices.Sort(out)
	return slices.Compact(out)
}

// Next checks that e may follow st (nil before an inception) in everything
// but its signatures (SAID, prefix, s, p, key lists, thresholds, traits)
// and returns the state it would lead to. A signer uses it to refuse an
// event before signing it; [Apply] then checks the signatures.
func Next(st *KeyState, e *Event) (*KeyState, error) {
	if e == nil {
		return nil, errors.New("no event")
	}
	return transition(st, e, "")
}
