package kel

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// twoOfThree returns a 2-of-3 inception signed by keys 0 and 1, with its
// state, and the keys.
func twoOfThree(t *testing.T, config ...string) (SignedEvent, *KeyState, []testKey) {
	t.Helper()
	keys := []testKey{newEd25519Key(t, 1), newP256Key(t), newEd25519Key(t, 3)}
	e, err := NewInception(InceptionSpec{
		Keys: pubs(keys...), Threshold: SimpleThreshold(2),
		NextDigests: digests(newEd25519Key(t, 9)), NextThreshold: SimpleThreshold(1),
		Config: config,
	})
	if err != nil {
		t.Fatal(err)
	}
	se := SignedEvent{Event: e, Sigs: []Siger{keys[0].siger(t, e, 0, 0), keys[1].siger(t, e, 1, 1)}}
	st, err := Apply(nil, se)
	if err != nil {
		t.Fatal(err)
	}
	return se, st, keys
}

// ixnAgainst builds an interaction against a (possibly forged) state and
// signs it with keys 0 and 2.
func ixnAgainst(t *testing.T, st *KeyState, keys []testKey) SignedEvent {
	t.Helper()
	e, err := NewInteraction(st, []json.RawMessage{DigestSeal("Eseal")})
	if err != nil {
		t.Fatalf("NewInteraction: %v", err)
	}
	return SignedEvent{Event: e, Sigs: []Siger{keys[0].siger(t, e, 0, 0), keys[2].siger(t, e, 2, 2)}}
}

// replaceInEvent returns the event with old replaced by new in its bytes,
// parsed again (the SAID is then stale).
func replaceInEvent(t *testing.T, e *Event, old, new string) *Event {
	t.Helper()
	raw := bytes.Replace(e.Raw(), []byte(old), []byte(new), 1)
	if bytes.Equal(raw, e.Raw()) {
		t.Fatalf("%q not in the event", old)
	}
	out, err := ParseEvent(raw)
	if err != nil {
		t.Fatalf("ParseEvent: %v", err)
	}
	return out
}

func TestApplyRefuses(t *testing.T) {
	icp, st, keys := twoOfThree(t)
	good := ixnAgainst(t, st, keys)
	if _, err := Apply(st, good); err != nil {
		t.Fatalf("good ixn: %v", err)
	}
	next, _ := Apply(st, good)

	forged := func(mod func(*KeyState)) SignedEvent {
		f := st.Clone()
		mod(f)
		return ixnAgainst(t, f, keys)
	}
	badSig := ixnAgainst(t, st, keys)
	badSig.Sigs[1].Raw = append([]byte(nil), badSig.Sigs[1].Raw...)
	badSig.Sigs[1].Raw[10] ^= 1
	saidless := good
	saidless.Event = replaceInEvent(t, good.Event, `"a":[{"d":"Eseal"}]`, `"a":[{"d":"Eseam"}]`)

	tests := []struct {
		name  string
		st    *KeyState
		se    SignedEvent
		is    error
		field string // FieldError field, if any
		text  string
	}{
		{"wrong p", st, forged(func(f *KeyState) { f.LastEventSAID = icp.Event.Prefix[:43] + "x" }), ErrOutOfOrder, "", "p="},
		{"gap in s", st, forged(func(f *KeyState) { f.Sequence++ }), ErrOutOfOrder, "", "s=2, want 1"},
		{"duplicate s", next, good, ErrOutOfOrder, "", "s=1, want 2"},
		{"wrong prefix", st, forged(func(f *KeyState) { f.Prefix = "E" + f.Prefix[1:43] + "x" }), nil, "i", "prefix"},
		{"SAID mismatch", st, SignedEvent{Event: saidless.Event, Sigs: good.Sigs}, nil, "d", "SAID mismatch"},
		{"bad signature", st, badSig, ErrBadSignature, "", "signature 1 (index 2)"},
		{"threshold not met", st, SignedEvent{Event: good.Event, Sigs: good.Sigs[:1]}, ErrThreshold, "", "kt 2"},
		{"duplicate signature counts once", st, SignedEvent{Event: good.Event, Sigs: []Siger{good.Sigs[0], good.Sigs[0]}}, ErrThreshold, "", "indexes [0]"},
		{"no signatures", st, SignedEvent{Event: good.Event}, ErrThreshold, "", "kt 2"},
		{"index outside keys", st, SignedEvent{Event: good.Event, Sigs: []Siger{good.Sigs[0], {Index: 3, Ondex: 3, Alg: Ed25519, Raw: good.Sigs[1].Raw}}}, nil, "", "index 3 outside the 3 current keys"},
		{"signature by another key", st, SignedEvent{Event: good.Event, Sigs: []Siger{good.Sigs[0], keys[2].siger(t, good.Event, 1, 1)}}, ErrBadSignature, "", "index 1"},
		{"inception twice", st, icp, ErrOutOfOrder, "", "inception after"},
		{"ixn without inception", nil, good, ErrOutOfOrder, "", "without inception"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Apply(tt.st, tt.se)
			if err == nil {
				t.Fatal("accepted")
			}
			checkErr(t, err, tt.is, tt.field, tt.text)
			var ee *EventError
			if !errors.As(err, &ee) || ee.Sn != tt.se.Event.Sn {
				t.Errorf("not an EventError for s=%d: %v", tt.se.Event.Sn, err)
			}
			if _, err := ReplayFrom(tt.st, []SignedEvent{tt.se}, 2); err == nil {
				t.Errorf("ReplayFrom with 2 workers accepted it")
			}
		})
	}
}

func checkErr(t *testing.T, err, is error, field, text string) {
	t.Helper()
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %v, want %v", err, is)
	}
	var fe *FieldError
	if field != "" && (!errors.As(err, &fe) || fe.Field != field) {
		t.Errorf("error %v does not name field %q", err, field)
	}
	if !strings.Contains(err.Error(), text) {
		t.Errorf("error %q does not say %q", err, text)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans several lines: %q", err)
	}
}

func TestEstablishmentOnly(t *testing.T) {
	_, st, keys := twoOfThree(t, TraitEstablishmentOnly)
	if _, err := NewInteraction(st, nil); err == nil || !strings.Contains(err.Error(), "EO") {
		t.Errorf("NewInteraction on EO: %v", err)
	}
	plain := st.Clone()
	plain.ConfigTraits = nil
	ixn := ixnAgainst(t, plain, keys)
	if _, err := Apply(st, ixn); err == nil || !strings.Contains(err.Error(), "establishment-only") {
		t.Errorf("ixn on EO: %v", err)
	}
}

func TestNonTransferableHasNoSuccessor(t *testing.T) {
	k := newEd25519Key(t, 7)
	for _, basic := range []bool{true, false} {
		e, err := NewInception(InceptionSpec{Keys: pubs(k), Threshold: SimpleThreshold(1), NextThreshold: SimpleThreshold(0), Basic: basic})
		if err != nil {
			t.Fatal(err)
		}
		st, err := Apply(nil, SignedEvent{Event: e, Sigs: []Siger{k.siger(t, e, 0, 0)}})
		if err != nil {
			t.Fatal(err)
		}
		if !st.IsNonTransferable {
			t.Errorf("basic %v: inception without next keys is transferable", basic)
		}
		if _, err := NewInteraction(st, nil); err == nil || !strings.Contains(err.Error(), "non-transferable") {
			t.Errorf("basic %v: ixn after non-transferable inception: %v", basic, err)
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	k := []testKey{newEd25519Key(t, 1), newEd25519Key(t, 2)}
	n := digests(newEd25519Key(t, 3))
	tests := []struct {
		name  string
		spec  InceptionSpec
		field string
		text  string
	}{
		{"threshold larger than key list", InceptionSpec{Keys: pubs(k...), Threshold: SimpleThreshold(3), NextDigests: n, NextThreshold: SimpleThreshold(1)}, "kt", "threshold 3 is larger than the 2 keys"},
		{"threshold zero", InceptionSpec{Keys: pubs(k...), Threshold: SimpleThreshold(0), NextDigests: n, NextThreshold: SimpleThreshold(1)}, "kt", "threshold 0"},
		{"weights for the wrong number of keys", InceptionSpec{Keys: pubs(k...), Threshold: mustWeighted(t, []string{"1"}), NextDigests: n, NextThreshold: SimpleThreshold(1)}, "kt", "1 weights for 2 keys"},
		{"next threshold larger than next keys", InceptionSpec{Keys: pubs(k...), Threshold: SimpleThreshold(1), NextDigests: n, NextThreshold: SimpleThreshold(2)}, "nt", "larger than the 1 keys"},
		{"next threshold without next keys", InceptionSpec{Keys: pubs(k...), Threshold: SimpleThreshold(1), NextThreshold: SimpleThreshold(1)}, "nt", "without next keys"},
		{"key listed twice", InceptionSpec{Keys: pubs(k[0], k[1], k[0]), Threshold: SimpleThreshold(2), NextDigests: n, NextThreshold: SimpleThreshold(1)}, "k", "entry 2"},
		{"next digest listed twice", InceptionSpec{Keys: pubs(k...), Threshold: SimpleThreshold(1), NextDigests: append(n, n...), NextThreshold: SimpleThreshold(1)}, "n", "listed twice"},
		{"no keys", InceptionSpec{Threshold: SimpleThreshold(0), NextDigests: n, NextThreshold: SimpleThreshold(1)}, "k", "no keys"},
		{"bad key", InceptionSpec{Keys: []string{"Dnotakey"}, Threshold: SimpleThreshold(1), NextDigests: n, NextThreshold: SimpleThreshold(1)}, "k", "key 0"},
		{"bad next digest", InceptionSpec{Keys: pubs(k...), Threshold: SimpleThreshold(1), NextDigests: []string{k[0].pub}, NextThreshold: SimpleThreshold(1)}, "n", "digest 0"},
		{"unknown trait", InceptionSpec{Keys: pubs(k...), Threshold: SimpleThreshold(1), NextDigests: n, NextThreshold: SimpleThreshold(1), Config: []string{"XX"}}, "c", "XX"},
		{"backer threshold", InceptionSpec{Keys: pubs(k...), Threshold: SimpleThreshold(1), NextDigests: n, NextThreshold: SimpleThreshold(1), BackerThreshold: 1}, "bt", "larger than the 0 backers"},
		{"basic prefix with two keys", InceptionSpec{Keys: pubs(k...), Threshold: SimpleThreshold(1), NextDigests: n, NextThreshold: SimpleThreshold(1), Basic: true}, "i", "exactly one key"},
		{"seal not an object", InceptionSpec{Keys: pubs(k...), Threshold: SimpleThreshold(1), NextDigests: n, NextThreshold: SimpleThreshold(1), Seals: []json.RawMessage{json.RawMessage(`"x"`)}}, "a", "seal 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewInception(tt.spec)
			if err == nil {
				t.Fatalf("built %s", e.Raw())
			}
			checkErr(t, err, nil, tt.field, tt.text)
		})
	}
}

func TestThresholdForms(t *testing.T) {
	tests := []struct {
		in   string
		out  string // emission form; "" when refused
		text string // substring of the error when refused
	}{
		{`"2"`, `"2"`, ""},
		{`"a"`, `"a"`, ""},
		{`["1/2","1/2","1/2"]`, `[["1/2","1/2","1/2"]]`, ""},
		{`[["1/2","1/2","1/2"]]`, `[["1/2","1/2","1/2"]]`, ""},
		{`["1","0"]`, `[["1/1","0/1"]]`, ""},
		{`[["1/2","1/2"],["1","1"]]`, `[["1/2","1/2"],["1/1","1/1"]]`, ""},
		{`["2/4","1/2"]`, `[["1/2","1/2"]]`, ""},
		{`[{"1/3":["1/2","1/2"]}]`, "", "nested weight maps"},
		{`["1/2",{"1/3":["1"]}]`, "", "nested weight maps"},
		{`[["1/2",{"1":["1"]}]]`, "", "nested weight maps"},
		{`{"1/2":["1"]}`, "", "want a hex string or a list"},
		{`"02"`, "", "leading zero"},
		{`"A"`, "", "lowercase hex"},
		{`""`, "", "empty"},
		{`2`, "", "want a hex string"},
		{`[]`, "", "empty list"},
		{`[[]]`, "", "empty"},
		{`["1/3","1/3"]`, "", "less than 1"},
		{`["3/2"]`, "", "greater than 1"},
		{`["1/0"]`, "", "bad denominator"},
		{`["x"]`, "", "want n/d"},
		{`[1,2]`, "", "want a list of weight strings"},
	}
	for _, tt := range tests {
		th, err := ParseThreshold(json.RawMessage(tt.in))
		switch {
		case tt.out == "" && err == nil:
			t.Errorf("%s: accepted as %s", tt.in, th)
		case tt.out == "" && !strings.Contains(err.Error(), tt.text):
			t.Errorf("%s: error %q does not say %q", tt.in, err, tt.text)
		case tt.out != "" && err != nil:
			t.Errorf("%s: %v", tt.in, err)
		case tt.out != "" && th.String() != tt.out:
			t.Errorf("%s: emitted %s, want %s", tt.in, th, tt.out)
		}
	}
}

// TestWeightedClausesSplitKeys follows keripy: each clause weighs its own
// slice of the key list, in order.
func TestWeightedClausesSplitKeys(t *testing.T) {
	th := mustWeighted(t, []string{"1/2", "1/2"}, []string{"1", "1"})
	for _, tt := range []struct {
		idx []int
		ok  bool
	}{
		{[]int{0, 1, 2}, true},
		{[]int{0, 1, 3}, true},
		{[]int{0, 1}, false},
		{[]int{0, 2, 3}, false},
		{[]int{2, 3}, false},
		{[]int{0, 0, 2}, false},
	} {
		if got := th.Satisfied(tt.idx); got != tt.ok {
			t.Errorf("Satisfied(%v) = %v, want %v", tt.idx, got, tt.ok)
		}
	}
	for _, tt := range []struct {
		idx []int
		ok  bool
	}{
		{[]int{1, 1}, false},
		{[]int{64, 100}, true},
		{[]int{70, 70}, false},
		{[]int{63, 64}, true},
		{[]int{-1, 0}, false},
	} {
		if got := SimpleThreshold(2).Satisfied(tt.idx); got != tt.ok {
			t.Errorf("2 of %v: %v, want %v", tt.idx, got, tt.ok)
		}
	}
}
