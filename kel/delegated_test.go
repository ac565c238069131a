package kel

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// buildAs builds an event of typ with the given fields in order, SAID and
// version string computed, without the transition checks (a delegated event
// needs its delegator's KEL, which finalize does not have).
func buildAs(t *testing.T, typ string, order []string, fields map[string]any) *Event {
	t.Helper()
	e := &Event{Type: typ, values: map[string]json.RawMessage{}}
	fields["v"], fields["d"], fields["t"] = versionString(0), saidPlaceholder, typ
	for _, f := range order {
		v, err := encodeValue(fields[f])
		if err != nil {
			t.Fatal(err)
		}
		e.values[f] = v
	}
	e.raw = e.serialize(nil)
	if err := e.decodeFields(); err != nil {
		t.Fatal(err)
	}
	said := e.ComputeSAID()
	e.values["d"] = mustJSON(said)
	if e.selfAddressing() {
		e.values["i"] = mustJSON(said)
	}
	e.values["v"] = mustJSON(versionString(len(e.serialize(nil))))
	out, err := ParseEvent(e.serialize(nil))
	if err != nil {
		t.Fatalf("%s does not parse: %v", typ, err)
	}
	return out
}

// TestAuthsDelegatedEvents reads a delegated inception as auths writes it
// (the -A group followed by a -G source seal couple pointing at the
// delegator's anchoring ixn) and a delegated rotation ending in di, and
// writes both back byte for byte.
func TestAuthsDelegatedEvents(t *testing.T) {
	key := func(seed string) (ed25519.PrivateKey, string) {
		var s [32]byte
		copy(s[:], seed)
		k := ed25519.NewKeyFromSeed(s[:])
		v, _ := VerferFromPublicKey(k.Public())
		return k, v.QB64()
	}
	_, k1 := key("delegate key 0")
	_, n1 := key("delegate key 1")
	dk, _ := key("delegate key 0")
	delegator := Digest([]byte("a delegator prefix"))
	dip := buildAs(t, TypeDelegatedInception, fieldOrder[TypeDelegatedInception], map[string]any{
		"i": saidPlaceholder, "s": "0", "kt": SimpleThreshold(1), "k": []string{k1},
		"nt": SimpleThreshold(1), "n": []string{NextKeyDigest(n1)}, "bt": "0", "b": []string{}, "c": []string{},
		"a": []json.RawMessage{}, "di": delegator,
	})
	if dip.Delegator != delegator || dip.Prefix != dip.SAID {
		t.Fatalf("dip: delegator %q prefix %q", dip.Delegator, dip.Prefix)
	}
	if !strings.HasSuffix(string(dip.Raw()), `"a":[],"di":"`+delegator+`"}`) {
		t.Errorf("dip bytes: %s", dip.Raw())
	}
	anchorSAID := Digest([]byte("the delegator's anchoring ixn"))
	src := []SourceSeal{{Sn: 1, SAID: anchorSAID}}
	sig := NewSiger(Ed25519, 0, 0, ed25519.Sign(dk, dip.Raw()))
	group, _ := EncodeSigGroup([]Siger{sig})
	srcGroup, err := EncodeSourceGroup(src)
	if err != nil {
		t.Fatal(err)
	}
	// The couple: -GAB, Seqner 0A + 22 characters for s=1, the SAID.
	if want := "-GAB0A" + strings.Repeat("A", 21) + "B" + anchorSAID; string(srcGroup) != want {
		t.Errorf("-G group %s, want %s", srcGroup, want)
	}

	// drt as auths writes it: rot's fields, then di.
	_, k2 := key("delegate key 2")
	drt := buildAs(t, TypeDelegatedRotation, drtWithDelegator, map[string]any{
		"i": dip.Prefix, "s": "1", "p": dip.SAID, "kt": SimpleThreshold(1), "k": []string{n1},
		"nt": SimpleThreshold(1), "n": []string{NextKeyDigest(k2)}, "bt": "0", "br": []string{}, "ba": []string{},
		"a": []json.RawMessage{}, "di": delegator,
	})
	if drt.Delegator != delegator || !strings.HasSuffix(string(drt.Raw()), `"a":[],"di":"`+delegator+`"}`) {
		t.Errorf("drt: delegator %q, bytes %s", drt.Delegator, drt.Raw())
	}
	if err := drt.CheckSAID(); err != nil {
		t.Error(err)
	}

	stream := append(append(append([]byte{}, dip.Raw()...), group...), srcGroup...)
	stream = append(stream, drt.Raw()...)
	stream = append(stream, []byte("-GAB0A"+strings.Repeat("A", 21)+"C"+anchorSAID)...)
	for _, workers := range []int{1, 2} {
		got, err := ParseStreamParallel(stream, workers)
		if err != nil {
			t.Fatalf("workers=%d: %v", workers, err)
		}
		if len(got) != 2 || len(got[0].Sigs) != 1 || len(got[0].Sources) != 1 || got[0].Sources[0] != src[0] ||
			len(got[1].Sigs) != 0 || len(got[1].Sources) != 1 || got[1].Sources[0].Sn != 2 {
			t.Fatalf("workers=%d: parsed %+v", workers, got)
		}
		back, err := EncodeStream(got)
		if err != nil || !bytes.Equal(back, stream) {
			t.Errorf("workers=%d: stream not written back byte for byte: %v", workers, err)
		}
	}

	// Bad -G groups: one-line errors with the offset.
	off := len(dip.Raw()) + len(group)
	for _, tc := range []struct{ tail, want string }{
		{"-GAB0B" + strings.Repeat("A", 21) + "B" + anchorSAID, "sequence number code \"0B\""},
		{"-GAB0A" + strings.Repeat("A", 21) + "B" + anchorSAID[:20], "truncated"},
		{"-GAA", "no couples"},
		{"-GAB0A" + strings.Repeat("A", 21) + "B" + "X" + anchorSAID[1:], "source seal 0"},
		{"-GAB0A" + strings.Repeat("A", 19) + "!AB" + anchorSAID, "bad base64"},
	} {
		bad := append(append(append([]byte{}, dip.Raw()...), group...), tc.tail...)
		_, err := ParseStream(bad)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "offset "+strconv.Itoa(off)) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want %q at offset %d", tc.tail, err, tc.want, off)
		}
	}
}
