package kel

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// kelBuilder keeps a KEL under construction and its key state.
type kelBuilder struct {
	t      testing.TB
	events []SignedEvent
	st     *KeyState
}

// add validates se with Apply and appends it.
func (b *kelBuilder) add(se SignedEvent) {
	b.t.Helper()
	next, err := Apply(b.st, se)
	if err != nil {
		b.t.Fatalf("Apply %s s=%d: %v", se.Event.Type, se.Event.Sn, err)
	}
	b.st = next
	b.events = append(b.events, se)
}

// ixn adds an interaction signed by signers[i] at index i (skipping nil).
func (b *kelBuilder) ixn(signers map[int]testKey) {
	b.t.Helper()
	e, err := NewInteraction(b.st, nil)
	if err != nil {
		b.t.Fatalf("NewInteraction: %v", err)
	}
	var sigs []Siger
	for i, k := range signers {
		sigs = append(sigs, k.siger(b.t, e, i, i))
	}
	SortSigers(sigs)
	b.add(SignedEvent{Event: e, Sigs: sigs})
}

// check replays the KEL serially, in parallel and through its stream
// encoding and wants the same state as the one Apply built.
func (b *kelBuilder) check() {
	b.t.Helper()
	st, err := Replay(b.events)
	if err != nil {
		b.t.Fatalf("Replay: %v", err)
	}
	if !reflect.DeepEqual(st, b.st) {
		b.t.Errorf("Replay state differs from Apply's:\n%+v\n%+v", st, b.st)
	}
	for _, w := range []int{0, 2, 3} {
		par, err := ReplayParallel(b.events, w)
		if err != nil {
			b.t.Fatalf("ReplayParallel(%d): %v", w, err)
		}
		if !reflect.DeepEqual(par, b.st) {
			b.t.Errorf("ReplayParallel(%d) state differs", w)
		}
	}
	// Continuing from the state after inception, serially and in parallel.
	first, err := Apply(nil, b.events[0])
	if err != nil {
		b.t.Fatal(err)
	}
	for _, w := range []int{1, 2} {
		if len(b.events) < 2 {
			break
		}
		st, err := ReplayFrom(first, b.events[1:], w)
		if err != nil || !reflect.DeepEqual(st, b.st) {
			b.t.Errorf("ReplayFrom(inception state, rest, %d): %v", w, err)
		}
	}
	stream, err := EncodeStream(b.events)
	if err != nil {
		b.t.Fatalf("EncodeStream: %v", err)
	}
	parsed, err := ParseStream(stream)
	if err != nil {
		b.t.Fatalf("ParseStream: %v", err)
	}
	again, err := EncodeStream(parsed)
	if err != nil || !bytes.Equal(again, stream) {
		b.t.Errorf("stream does not re-encode to the same bytes (err %v)", err)
	}
	if st, err := Replay(parsed); err != nil || !reflect.DeepEqual(st, b.st) {
		b.t.Errorf("Replay of the parsed stream: %v", err)
	}
	for _, se := range b.events {
		re, err := ParseEvent(se.Event.Raw())
		if err != nil {
			b.t.Fatalf("ParseEvent of a built event: %v", err)
		}
		if re.ComputeSAID() != se.Event.SAID {
			b.t.Errorf("s=%d: SAID does not recompute", se.Event.Sn)
		}
	}
}

func TestRoundTripInception(t *testing.T) {
	ed := []testKey{newEd25519Key(t, 1), newEd25519Key(t, 2), newEd25519Key(t, 3), newEd25519Key(t, 4)}
	p := []testKey{newP256Key(t), newP256Key(t), newP256Key(t)}
	next := []testKey{newEd25519Key(t, 50), newP256Key(t), newEd25519Key(t, 51), newEd25519Key(t, 52)}
	tests := []struct {
		name    string
		keys    []testKey
		kt      Threshold
		ktJSON  string
		signers []int // indexes that sign (enough for kt)
		short   []int // indexes that do not satisfy kt
		basic   bool
	}{
		{"1 ed25519 basic prefix", ed[:1], SimpleThreshold(1), `"1"`, []int{0}, nil, true},
		{"1 ed25519", ed[:1], SimpleThreshold(1), `"1"`, []int{0}, nil, false},
		{"1 p256", p[:1], SimpleThreshold(1), `"1"`, []int{0}, nil, false},
		{"2 mixed 2-of-2", []testKey{ed[0], p[0]}, SimpleThreshold(2), `"2"`, []int{0, 1}, []int{1}, false},
		{"3 mixed 2-of-3", []testKey{p[0], ed[1], p[1]}, SimpleThreshold(2), `"2"`, []int{0, 2}, []int{2}, false},
		{"3 p256 weighted", p, mustWeighted(t, []string{"1/2", "1/2", "1/2"}), `[["1/2","1/2","1/2"]]`, []int{1, 2}, []int{0}, false},
		{"3 mixed weighted uneven", []testKey{ed[0], p[1], ed[2]}, mustWeighted(t, []string{"1", "1/2", "1/2"}), `[["1/1","1/2","1/2"]]`, []int{0}, []int{1}, false},
		{"4 multi-clause", []testKey{ed[0], p[0], ed[1], ed[2]}, mustWeighted(t, []string{"1/2", "1/2"}, []string{"1", "1"}), `[["1/2","1/2"],["1/1","1/1"]]`, []int{0, 1, 3}, []int{0, 2, 3}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nk := next[:len(tt.keys)]
			e, err := NewInception(InceptionSpec{
				Keys: pubs(tt.keys...), Threshold: tt.kt,
				NextDigests: digests(nk...), NextThreshold: tt.kt,
				Basic: tt.basic,
			})
			if err != nil {
				t.Fatalf("NewInception: %v", err)
			}
			if !bytes.Contains(e.Raw(), []byte(`"kt":`+tt.ktJSON+`,`)) || !bytes.Contains(e.Raw(), []byte(`"nt":`+tt.ktJSON+`,`)) {
				t.Errorf("thresholds not emitted as %s: %s", tt.ktJSON, e.Raw())
			}
			if tt.basic && e.Prefix != tt.keys[0].pub || !tt.basic && e.Prefix != e.SAID {
				t.Errorf("prefix %s (basic %v), d %s", e.Prefix, tt.basic, e.SAID)
			}
			sign := func(idx []int) []Siger {
				var sigs []Siger
				for _, i := range idx {
					sigs = append(sigs, tt.keys[i].siger(t, e, i, i))
				}
				return sigs
			}
			if tt.short != nil {
				if _, err := Apply(nil, SignedEvent{Event: e, Sigs: sign(tt.short)}); !errors.Is(err, ErrThreshold) {
					t.Errorf("signers %v: err %v, want ErrThreshold", tt.short, err)
				}
			}
			b := &kelBuilder{t: t}
			b.add(SignedEvent{Event: e, Sigs: sign(tt.signers)})
			for n := 0; n < 3; n++ {
				signers := map[int]testKey{}
				for _, i := range tt.signers {
					signers[i] = tt.keys[i]
				}
				b.ixn(signers)
			}
			b.check()
			if b.st.Sequence != 3 || !reflect.DeepEqual(b.st.CurrentKeys, pubs(tt.keys...)) {
				t.Errorf("state %+v", b.st)
			}
		})
	}
}

// TestRoundTripRotation covers the three kinds of rotation signature: keys
// whose positions change (2A/2E with index and ondex), a key added outside
// the prior next list (B/F, current only), and abandonment.
func TestRoundTripRotation(t *testing.T) {
	cur := []testKey{newEd25519Key(t, 1), newP256Key(t), newEd25519Key(t, 3)}
	nxt := []testKey{newEd25519Key(t, 10), newP256Key(t), newEd25519Key(t, 12)}
	icp, err := NewInception(InceptionSpec{
		Keys: pubs(cur...), Threshold: SimpleThreshold(2),
		NextDigests: digests(nxt...), NextThreshold: SimpleThreshold(2),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &kelBuilder{t: t}
	b.add(SignedEvent{Event: icp, Sigs: []Siger{cur[0].siger(t, icp, 0, 0), cur[1].siger(t, icp, 1, 1)}})
	b.ixn(map[int]testKey{1: cur[1], 2: cur[2]})

	// Rotation 1: the new keys are prior next keys 2 and 1, in that order, so
	// both signatures need the big codes with their ondex.
	third := []testKey{newEd25519Key(t, 20), newEd25519Key(t, 21)}
	rot, err := NewRotation(b.st, RotationSpec{
		Keys: pubs(nxt[2], nxt[1]), Threshold: SimpleThreshold(2),
		NextDigests: digests(third...), NextThreshold: SimpleThreshold(1),
	})
	if err != nil {
		t.Fatalf("NewRotation: %v", err)
	}
	sigs := []Siger{nxt[2].siger(t, rot, 0, 2), nxt[1].siger(t, rot, 1, 1)}
	wantCodes(t, sigs, "2A", "E")
	b.add(SignedEvent{Event: rot, Sigs: sigs})
	b.ixn(map[int]testKey{0: nxt[2], 1: nxt[1]})

	// Rotation 2: keep prior next key 0 at position 1 and add a P-256 key
	// that no prior digest commits to: 2A for the first, F (current only)
	// for the new one.
	added := newP256Key(t)
	last := newEd25519Key(t, 30)
	rot2, err := NewRotation(b.st, RotationSpec{
		Keys: pubs(added, third[0]), Threshold: SimpleThreshold(2),
		NextDigests: digests(last), NextThreshold: SimpleThreshold(1),
	})
	if err != nil {
		t.Fatalf("NewRotation: %v", err)
	}
	sigs = []Siger{added.siger(t, rot2, 0, NoOndex), third[0].siger(t, rot2, 1, 0)}
	wantCodes(t, sigs, "F", "2A")
	// The added key alone satisfies neither kt=2 nor the prior nt.
	if _, err := Apply(b.st, SignedEvent{Event: rot2, Sigs: sigs[:1]}); !errors.Is(err, ErrThreshold) {
		t.Errorf("rotation signed by the added key only: %v", err)
	}
	// Claiming the added key is prior next key 1 fails the digest check.
	lie := added.siger(t, rot2, 0, 1)
	if _, err := Apply(b.st, SignedEvent{Event: rot2, Sigs: []Siger{lie, sigs[1]}}); err == nil {
		t.Errorf("added key claimed as a prior next key: accepted")
	}
	b.add(SignedEvent{Event: rot2, Sigs: sigs})

	// Ed25519 current-only is B.
	edAdded := newEd25519Key(t, 40)
	wantCodes(t, []Siger{edAdded.siger(t, rot2, 0, NoOndex)}, "B")

	// Rotation 3 abandons: empty n and nt "0". Nothing may follow it.
	rot3, err := NewRotation(b.st, RotationSpec{Keys: pubs(last), Threshold: SimpleThreshold(1), NextThreshold: SimpleThreshold(0)})
	if err != nil {
		t.Fatalf("abandoning NewRotation: %v", err)
	}
	if !bytes.Contains(rot3.Raw(), []byte(`"nt":"0","n":[]`)) {
		t.Errorf("abandonment not emitted as nt 0, n []: %s", rot3.Raw())
	}
	b.add(SignedEvent{Event: rot3, Sigs: []Siger{last.siger(t, rot3, 0, 0)}})
	if !b.st.IsAbandoned {
		t.Errorf("state not abandoned after a rotation with empty n")
	}
	b.check()

	if _, err := NewInteraction(b.st, nil); !errors.Is(err, ErrAbandoned) {
		t.Errorf("NewInteraction after abandonment: %v, want ErrAbandoned", err)
	}
	// An interaction forged against the pre-abandonment view is refused too.
	live := b.st.Clone()
	live.IsAbandoned = false
	ixn, err := NewInteraction(live, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Apply(b.st, SignedEvent{Event: ixn, Sigs: []Siger{last.siger(t, ixn, 0, 0)}})
	if !errors.Is(err, ErrAbandoned) {
		t.Errorf("ixn after abandonment: %v, want ErrAbandoned", err)
	}
}

func wantCodes(t *testing.T, sigs []Siger, codes ...string) {
	t.Helper()
	g, err := EncodeSigGroup(sigs)
	if err != nil {
		t.Fatalf("EncodeSigGroup: %v", err)
	}
	back, _, err := ParseSigGroup(g)
	if err != nil {
		t.Fatalf("ParseSigGroup: %v", err)
	}
	for i, s := range back {
		if s.Code != codes[i] || s.Index != sigs[i].Index || s.Ondex != sigs[i].Ondex {
			t.Errorf("signature %d: code %s index %d ondex %d, want %s %d %d", i, s.Code, s.Index, s.Ondex, codes[i], sigs[i].Index, sigs[i].Ondex)
		}
	}
}

// TestSigerCodes checks the code NewSiger's encoder picks for every case of
// keri.md, and the decoded fields of each.
func TestSigerCodes(t *testing.T) {
	raw := bytes.Repeat([]byte{0xa5}, SignatureSize)
	tests := []struct {
		alg          Algorithm
		index, ondex int
		code         string
		size         int
	}{
		{Ed25519, 0, 0, "A", 88},
		{Ed25519, 63, 63, "A", 88},
		{Ed25519, 64, 64, "2A", 92},
		{Ed25519, 0, 1, "2A", 92},
		{Ed25519, 3, NoOndex, "B", 88},
		{Ed25519, 64, NoOndex, "2B", 92},
		{P256, 1, 1, "E", 88},
		{P256, 2, 0, "2E", 92},
		{P256, 0, NoOndex, "F", 88},
		{P256, 4095, NoOndex, "2F", 92},
		{P256, 4095, 4095, "2E", 92},
	}
	for _, tt := range tests {
		s := NewSiger(tt.alg, tt.index, tt.ondex, raw)
		q, err := s.QB64()
		if err != nil {
			t.Errorf("%v %d/%d: %v", tt.alg, tt.index, tt.ondex, err)
			continue
		}
		if len(q) != tt.size || q[:len(tt.code)] != tt.code {
			t.Errorf("%v %d/%d: %s, want code %s, %d chars", tt.alg, tt.index, tt.ondex, q, tt.code, tt.size)
		}
		back, n, err := ParseSiger([]byte(q))
		if err != nil || n != len(q) || back.Index != tt.index || back.Ondex != tt.ondex || back.Alg != tt.alg || !bytes.Equal(back.Raw, raw) {
			t.Errorf("%s: decoded %+v, %d, %v", q, back, n, err)
		}
	}
	for _, bad := range []Siger{
		NewSiger(Ed25519, 4096, 0, raw),
		NewSiger(Ed25519, -1, 0, raw),
		NewSiger(Ed25519, 0, -2, raw),
		NewSiger(Ed25519, 0, 0, raw[:63]),
		NewSiger(0, 0, 0, raw),
		{Index: 70, Ondex: 70, Alg: Ed25519, Raw: raw, Code: "A"},
	} {
		if q, err := bad.QB64(); err == nil {
			t.Errorf("%+v encoded as %s", bad, q)
		}
	}
}
