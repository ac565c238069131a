package kel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Event types.
const (
	TypeInception          = "icp"
	TypeRotation           = "rot"
	TypeInteraction        = "ixn"
	TypeDelegatedInception = "dip"
	TypeDelegatedRotation  = "drt"
)

// fieldOrder is the exact order of the fields of each event type.
var fieldOrder = map[string][]string{
	TypeInception:          {"v", "t", "d", "i", "s", "kt", "k", "nt", "n", "bt", "b", "c", "a"},
	TypeRotation:           {"v", "t", "d", "i", "s", "p", "kt", "k", "nt", "n", "bt", "br", "ba", "a"},
	TypeInteraction:        {"v", "t", "d", "i", "s", "p", "a"},
	TypeDelegatedInception: {"v", "t", "d", "i", "s", "kt", "k", "nt", "n", "bt", "b", "c", "a", "di"},
	TypeDelegatedRotation:  {"v", "t", "d", "i", "s", "p", "kt", "k", "nt", "n", "bt", "br", "ba", "a"},
}

// drtWithDelegator is the field order of a drt as auths writes it.
var drtWithDelegator = append(append([]string(nil), fieldOrder[TypeDelegatedRotation]...), "di")

// order returns the fields of the event in order.
func (e *Event) order() []string {
	if _, ok := e.values["di"]; ok && e.Type == TypeDelegatedRotation {
		return drtWithDelegator
	}
	return fieldOrder[e.Type]
}

// Version string layout: KERI10JSON + 6 hex digits of size + "_".
const (
	versionPrefix = "KERI10JSON"
	versionLen    = 17
	// MaxEventSize is the largest event a version string can describe.
	MaxEventSize = 0xffffff
)

// SAIDLen is the length of a Blake3-256 SAID in qb64.
const SAIDLen = 44

var saidPlaceholder = strings.Repeat("#", SAIDLen)

// Config traits.
const (
	TraitEstablishmentOnly = "EO"
	TraitDoNotDelegate     = "DND"
)

// Event is a KERI v1 JSON key event. Its field values are kept as their exact
// JSON bytes so that an event parsed from keripy or auths serializes back to
// the same bytes; the typed fields are decoded views of them.
type Event struct {
	Type   string
	SAID   string // d
	Prefix string // i
	Sn     uint64 // s
	Prior  string // p (rot, drt, ixn)

	KeyThreshold    Threshold // kt
	Keys            []string  // k
	NextThreshold   Threshold // nt
	NextDigests     []string  // n
	BackerThreshold uint64    // bt
	Backers         []string  // b (icp, dip)
	BackersRemoved  []string  // br (rot, drt)
	BackersAdded    []string  // ba (rot, drt)
	Config          []string  // c (icp, dip)
	Seals           []json.RawMessage
	Delegator       string // di (dip; drt as auths writes it)

	values map[string]json.RawMessage // field → compact JSON
	raw    []byte
}

// Raw returns the exact serialized bytes of the event: what controllers sign.
func (e *Event) Raw() []byte { return e.raw }

// IsEstablishment reports whether the event sets keys (icp, rot, dip, drt).
func (e *Event) IsEstablishment() bool { return e.Type != TypeInteraction }

// IsInception reports whether the event is an inception (icp or dip).
func (e *Event) IsInception() bool {
	return e.Type == TypeInception || e.Type == TypeDelegatedInception
}

// FieldError is a problem with one field of an event.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(f string, format string, args ...any) error {
	return &FieldError{Field: f, Err: fmt.Errorf(format, args...)}
}

// ParseEvent parses the compact serialization of an event, checks its field
// order, version string and field types, and keeps its bytes. It does not
// check the SAID: see Event.CheckSAID.
func ParseEvent(raw []byte) (*Event, error) {
	if len(raw) > MaxEventSize {
		return nil, fmt.Errorf("event: %d bytes, larger than %d", len(raw), MaxEventSize)
	}
	var (
		keys   []string
		values map[string]json.RawMessage
		fast   bool
	)
	if json.Valid(raw) {
		keys, values, fast = splitValidObject(raw)
	}
	if !fast {
		// The slow path words the error (or handles escaped keys).
		var err error
		if keys, values, err = splitObject(raw); err != nil {
			return nil, fmt.Errorf("event: %w", err)
		}
	}
	if len(keys) < 2 || keys[0] != "v" || keys[1] != "t" {
		return nil, fmt.Errorf("event: must start with fields \"v\" and \"t\"")
	}
	typ, ok := decodeString(values["t"])
	if !ok {
		return nil, fieldErr("t", "want a string")
	}
	order, ok := fieldOrder[typ]
	if !ok {
		return nil, fieldErr("t", "event type %q unsupported (want icp, rot, ixn, dip or drt)", clip(typ))
	}
	// auths writes drt with a trailing di (auths-keri's DrtEvent); keripy
	// does not.
	if typ == TypeDelegatedRotation && len(keys) == len(order)+1 && keys[len(order)] == "di" {
		order = drtWithDelegator
	}
	if err := checkOrder(typ, keys, order); err != nil {
		return nil, err
	}
	e := &Event{Type: typ, values: values}
	// The fast split of a compact object with its keys in order (checked
	// above) and unescaped is the serialization by construction.
	if !isCompact(raw) || !fast && !bytes.Equal(e.serialize(nil), raw) {
		return nil, fmt.Errorf("event: not in compact serialization (whitespace or escapes differ from keripy's form)")
	}
	e.raw = append([]byte(nil), raw...)
	if err := e.checkVersion(len(raw)); err != nil {
		return nil, err
	}
	if err := e.decodeFields(); err != nil {
		return nil, err
	}
	return e, nil
}

func checkOrder(typ string, keys, order []string) error {
	for i, want := range order {
		if i >= len(keys) {
			return fieldErr(want, "missing (a %s event has fields %s)", typ, strings.Join(order, " "))
		}
		if keys[i] != want {
			return fieldErr(keys[i], "at position %d, want %q (a %s event has fields %s)", i, want, typ, strings.Join(order, " "))
		}
	}
	if len(keys) > len(order) {
		return fieldErr(keys[len(order)], "unexpected in a %s event", typ)
	}
	return nil
}

// splitObject splits a JSON object into its keys in order and their values
// as compact JSON. Duplicate keys are refused.
func splitObject(raw []byte) ([]string, map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("not a JSON object")
	}
	var keys []string
	values := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("at offset %d: %w", dec.InputOffset(), err)
		}
		k, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("at offset %d: want a field name", dec.InputOffset())
		}
		if _, dup := values[k]; dup {
			return nil, nil, fieldErr(k, "appears twice")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fieldErr(k, "bad value at offset %d: %v", dec.InputOffset(), err)
		}
		keys = append(keys, k)
		values[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("at offset %d: %w", dec.InputOffset(), err)
	}
	if off := dec.InputOffset(); int(off) != len(raw) {
		return nil, nil, fmt.Errorf("at offset %d: trailing data after the event", off)
	}
	return keys, values, nil
}

// serialize writes the fields in order, replacing the values of the fields
// in override.
func (e *Event) serialize(override map[string]json.RawMessage) []byte {
	var b bytes.Buffer
	b.Grow(512)
	b.WriteByte('{')
	for i, f := range e.order() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(f)
		b.WriteString(`":`)
		if v, ok := override[f]; ok {
			b.Write(v)
		} else {
			b.Write(e.values[f])
		}
	}
	b.WriteByte('}')
	return b.Bytes()
}

func (e *Event) checkVersion(size int) error {
	v, ok := decodeString(e.values["v"])
	if !ok {
		return fieldErr("v", "want a string")
	}
	if len(v) != versionLen || !strings.HasPrefix(v, versionPrefix) || v[versionLen-1] != '_' {
		return fieldErr("v", "%q is not a KERI 1.0 JSON version string (KERI10JSON######_)", clip(v))
	}
	hex := v[len(versionPrefix) : versionLen-1]
	n, err := strconv.ParseUint(hex, 16, 32)
	if err != nil || strings.ToLower(hex) != hex {
		return fieldErr("v", "size %q is not 6 lowercase hex digits", hex)
	}
	if int(n) != size {
		return fieldErr("v", "says %d bytes, the event has %d", n, size)
	}
	return nil
}

func versionString(size int) string {
	return fmt.Sprintf("%s%06x_", versionPrefix, size)
}

func (e *Event) decodeFields() error {
	str := func(f string, dst *string) error {
		s, ok := decodeString(e.values[f])
		if !ok {
			return fieldErr(f, "want a string")
		}
		*dst = s
		return nil
	}
	list := func(f string, dst *[]string) error {
		l, bad, ok := decodeStringList(e.values[f])
		switch {
		case !ok && bad >= 0:
			return fieldErr(f, "entry %d: want a string", bad)
		case !ok:
			return fieldErr(f, "want a list of strings")
		}
		*dst = l
		return nil
	}
	if err := str("d", &e.SAID); err != nil {
		return err
	}
	if err := str("i", &e.Prefix); err != nil {
		return err
	}
	var s string
	if err := str("s", &s); err != nil {
		return err
	}
	sn, err := parseHex(s)
	if err != nil {
		return fieldErr("s", "%q: %v", clip(s), err)
	}
	e.Sn = sn
	if e.Type != TypeInception && e.Type != TypeDelegatedInception {
		if err := str("p", &e.Prior); err != nil {
			return err
		}
	}
	if string(e.values["a"]) == "[]" {
		e.Seals = []json.RawMessage{}
	} else if err := json.Unmarshal(e.values["a"], &e.Seals); err != nil || e.Seals == nil {
		return fieldErr("a", "want a list")
	}
	if e.Type == TypeInteraction {
		return nil
	}
	if e.KeyThreshold, err = ParseThreshold(e.values["kt"]); err != nil {
		return &FieldError{Field: "kt", Err: err}
	}
	if err := list("k", &e.Keys); err != nil {
		return err
	}
	if e.NextThreshold, err = ParseThreshold(e.values["nt"]); err != nil {
		return &FieldError{Field: "nt", Err: err}
	}
	if err := list("n", &e.NextDigests); err != nil {
		return err
	}
	var bt string
	if err := str("bt", &bt); err != nil {
		return err
	}
	if e.BackerThreshold, err = parseHex(bt); err != nil {
		return fieldErr("bt", "%q: %v", clip(bt), err)
	}
	if e.IsInception() {
		if err := list("b", &e.Backers); err != nil {
			return err
		}
		if err := list("c", &e.Config); err != nil {
			return err
		}
		if e.Type == TypeDelegatedInception {
			if err := str("di", &e.Delegator); err != nil {
				return err
			}
		}
		return nil
	}
	if err := list("br", &e.BackersRemoved); err != nil {
		return err
	}
	if _, ok := e.values["di"]; ok {
		if err := str("di", &e.Delegator); err != nil {
			return err
		}
	}
	return list("ba", &e.BackersAdded)
}

// selfAddressing reports whether the prefix of an inception is its SAID
// (rather than a basic prefix equal to its single key).
func (e *Event) selfAddressing() bool {
	return e.IsInception() && !(len(e.Keys) == 1 && e.Prefix == e.Keys[0])
}

// ComputeSAID returns the SAID the event should have: the Blake3-256 digest
// of its serialization with "#" placeholders in d (and in i for a
// self-addressing inception).
func (e *Event) ComputeSAID() string {
	return Digest(e.saidInput())
}

func (e *Event) saidInput() []byte {
	self := e.selfAddressing()
	b := make([]byte, 0, len(e.raw)+64)
	b = append(b, '{')
	for i, f := range e.order() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, f...)
		b = append(b, `":`...)
		switch {
		case f == "v":
			b = append(b, `"`+versionPrefix+`000000_"`...)
		case f == "d", f == "i" && self:
			b = append(b, `"`+saidPlaceholder+`"`...)
		default:
			b = append(b, e.values[f]...)
		}
	}
	b = append(b, '}')
	if len(b) <= MaxEventSize {
		// The placeholders have the final length, and so does the
		// version string: write the size into it.
		const at = len(`{"v":"` + versionPrefix)
		const hexdigits = "0123456789abcdef"
		for i, n := at+5, len(b); i >= at; i, n = i-1, n>>4 {
			b[i] = hexdigits[n&15]
		}
		return b
	}
	return e.saidInputSlow()
}

// saidInputSlow is saidInput for events too large for a version string (a
// builder's; ParseEvent refuses them): the size takes more digits.
func (e *Event) saidInputSlow() []byte {
	ph := json.RawMessage(`"` + saidPlaceholder + `"`)
	over := map[string]json.RawMessage{"d": ph}
	if e.selfAddressing() {
		over["i"] = ph
	}
	// The placeholders have the final length, so the size is that of the
	// serialization with them; recompute it rather than trust v.
	body := e.serialize(over)
	over["v"] = json.RawMessage(`"` + versionString(len(body)) + `"`)
	return e.serialize(over)
}

// CheckSAID checks that d (and i for a self-addressing inception) equal the
// computed SAID.
func (e *Event) CheckSAID() error { return e.checkSAID(e.ComputeSAID()) }

// checkSAID is CheckSAID with the computed SAID given.
func (e *Event) checkSAID(said string) error {
	if e.SAID != said {
		return fieldErr("d", "SAID mismatch: event says %s, computed %s", e.SAID, said)
	}
	if e.selfAddressing() && e.Prefix != said {
		return fieldErr("i", "self-addressing prefix %s is not the SAID %s", e.Prefix, said)
	}
	return nil
}
