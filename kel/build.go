package kel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// InceptionSpec describes an inception event to build.
type InceptionSpec struct {
	Keys            []string // current keys, qb64
	Threshold       Threshold
	NextDigests     []string // digests of the next keys (NextKeyDigest)
	NextThreshold   Threshold
	Backers         []string
	BackerThreshold uint64
	Config          []string
	Seals           []json.RawMessage
	// Basic makes the prefix the single key itself instead of the SAID.
	Basic bool
}

// RotationSpec describes a rotation event to build.
type RotationSpec struct {
	Keys            []string
	Threshold       Threshold
	NextDigests     []string
	NextThreshold   Threshold
	BackerThreshold uint64
	BackersRemoved  []string
	BackersAdded    []string
	Seals           []json.RawMessage
}

// DigestSeal returns the seal {"d": said}.
func DigestSeal(said string) json.RawMessage {
	return mustJSON(struct {
		D string `json:"d"`
	}{said})
}

// EventSeal returns the seal {"i": prefix, "s": hex sn, "d": said}.
func EventSeal(prefix string, sn uint64, said string) json.RawMessage {
	return mustJSON(struct {
		I string `json:"i"`
		S string `json:"s"`
		D string `json:"d"`
	}{prefix, strconv.FormatUint(sn, 16), said})
}

// encodeValue returns compact JSON without HTML escaping.
func encodeValue(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

func mustJSON(v any) json.RawMessage {
	b, err := encodeValue(v)
	if err != nil {
		panic(err) // only called on values that always encode
	}
	return b
}

func strList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func sealList(l []json.RawMessage) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(l))
	for i, s := range l {
		var b bytes.Buffer
		if err := json.Compact(&b, s); err != nil {
			return nil, fieldErr("a", "seal %d: %v", i, err)
		}
		if !bytes.HasPrefix(b.Bytes(), []byte("{")) {
			return nil, fieldErr("a", "seal %d: want a JSON object", i)
		}
		out = append(out, b.Bytes())
	}
	return out, nil
}

// NewInception builds an unsigned inception event with its SAID (and
// self-addressing prefix) computed.
func NewInception(spec InceptionSpec) (*Event, error) {
	seals, err := sealList(spec.Seals)
	if err != nil {
		return nil, err
	}
	prefix := saidPlaceholder
	if spec.Basic {
		if len(spec.Keys) != 1 {
			return nil, fieldErr("i", "a basic prefix needs exactly one key, have %d", len(spec.Keys))
		}
		prefix = spec.Keys[0]
	}
	fields := map[string]any{
		"t": TypeInception, "i": prefix, "s": "0",
		"kt": spec.Threshold, "k": strList(spec.Keys),
		"nt": spec.NextThreshold, "n": strList(spec.NextDigests),
		"bt": strconv.FormatUint(spec.BackerThreshold, 16), "b": strList(spec.Backers),
		"c": strList(spec.Config), "a": seals,
	}
	return finalize(TypeInception, fields, nil)
}

// NewRotation builds an unsigned rotation event following st.
func NewRotation(st *KeyState, spec RotationSpec) (*Event, error) {
	seals, err := sealList(spec.Seals)
	if err != nil {
		return nil, err
	}
	fields := map[string]any{
		"t": TypeRotation, "i": st.Prefix, "s": strconv.FormatUint(st.Sequence+1, 16),
		"p":  st.LastEventSAID,
		"kt": spec.Threshold, "k": strList(spec.Keys),
		"nt": spec.NextThreshold, "n": strList(spec.NextDigests),
		"bt": strconv.FormatUint(spec.BackerThreshold, 16),
		"br": strList(spec.BackersRemoved), "ba": strList(spec.BackersAdded),
		"a": seals,
	}
	return finalize(TypeRotation, fields, st)
}

// NewInteraction builds an unsigned interaction event following st, carrying
// the given seals.
func NewInteraction(st *KeyState, seals []json.RawMessage) (*Event, error) {
	sl, err := sealList(seals)
	if err != nil {
		return nil, err
	}
	fields := map[string]any{
		"t": TypeInteraction, "i": st.Prefix, "s": strconv.FormatUint(st.Sequence+1, 16),
		"p": st.LastEventSAID, "a": sl,
	}
	return finalize(TypeInteraction, fields, st)
}

// finalize assembles the event and checks the result with the same
// transition rules validation applies (all but signatures).
func finalize(typ string, fields map[string]any, st *KeyState) (*Event, error) {
	out, err := assemble(typ, fields)
	if err != nil {
		return nil, err
	}
	if _, err := transition(st, out, ""); err != nil {
		return nil, err
	}
	return out, nil
}

// assemble encodes the fields in the order of typ and computes the version
// string and SAID.
func assemble(typ string, fields map[string]any) (*Event, error) {
	e := &Event{Type: typ, values: map[string]json.RawMessage{}}
	fields["v"] = versionString(0)
	fields["d"] = saidPlaceholder
	for _, f := range fieldOrder[typ] {
		v, err := encodeValue(fields[f])
		if err != nil {
			return nil, fieldErr(f, "%v", err)
		}
		e.values[f] = v
	}
	// Decode the typed views so SAID computation knows the prefix kind.
	e.raw = e.serialize(nil)
	if err := e.decodeFields(); err != nil {
		return nil, err
	}
	said := e.ComputeSAID()
	e.values["d"] = mustJSON(said)
	if e.selfAddressing() {
		e.values["i"] = mustJSON(said)
	}
	e.values["v"] = mustJSON(versionString(len(e.serialize(nil))))
	raw := e.serialize(nil)
	out, err := ParseEvent(raw)
	if err != nil {
		return nil, fmt.Errorf("built event does not parse: %w", err)
	}
	return out, nil
}
