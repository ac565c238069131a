package anchor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// TestAnchorThresholds anchors a device attestation for identities of
// several shapes, signing with just enough tokens, and checks the folded
// event verifies, lands in one commit with the attestation, and git finds
// the repository clean.
func TestAnchorThresholds(t *testing.T) {
	ed, p256 := kel.Ed25519, kel.P256
	for _, tc := range []struct {
		name  string
		algs  []kel.Algorithm
		kt    string
		signs []int // which keys sign the anchor
		sigs  string
	}{
		{"2-of-3", []kel.Algorithm{ed, ed, ed}, "2", []int{0, 2}, "AA,AC"},
		{"3-of-3", []kel.Algorithm{ed, ed, ed}, "3", []int{0, 1, 2}, "AA,AB,AC"},
		{"weighted-1/2x3", []kel.Algorithm{ed, ed, ed}, "1/2,1/2,1/2", []int{1, 2}, "AB,AC"},
		{"mixed-ed25519-p256", []kel.Algorithm{ed, p256, p256}, "2", []int{0, 1}, "AA,EB"},
		{"1-of-1", []kel.Algorithm{p256}, "1", []int{0}, "EA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			reg, dir := newRegistry(t)
			a := anchor.New(reg)
			var cur, next []hsm.Signer
			for i, alg := range tc.algs {
				tok := tokenLabels[i%3]
				s, _ := newKey(t, tok, alg)
				n, _ := newKey(t, tok, alg)
				cur, next = append(cur, s), append(next, n)
			}
			prefix := incept(t, a, cur, tc.kt, next, tc.kt)
			before := git(t, dir, "rev-list", "--count", registry.RegistryRef)

			did := "did:key:z6MkTest" + strings.ReplaceAll(tc.name, "/", "")
			did = strings.Map(func(r rune) rune {
				if r == '-' || r == ',' {
					return 'x'
				}
				return r
			}, did)
			doc := attestation(prefix, did, 1)
			p, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: doc}}})
			if err != nil {
				t.Fatal(err)
			}
			var signers []hsm.Signer
			for _, i := range tc.signs {
				signers = append(signers, cur[i])
			}
			// Before enough signatures, Fold refuses and says what is missing.
			if _, err := anchor.Sign(ctx, p, signers[:len(signers)-1]); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Fold(); !errors.Is(err, anchor.ErrIncomplete) {
				t.Fatalf("Fold with %d signatures: %v, want ErrIncomplete", len(signers)-1, err)
			}
			added, err := anchor.Sign(ctx, p, signers)
			if err != nil {
				t.Fatal(err)
			}
			if len(added) != 1 {
				t.Errorf("second Sign added %d signatures, want 1 (the others were held)", len(added))
			}
			res, err := a.Commit(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if got := sigPrefixes(t, res.Event.Sigs); got != tc.sigs {
				t.Errorf("signature codes+index %s, want %s", got, tc.sigs)
			}

			// Verify the whole KEL from the registry.
			snap, err := reg.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			st, err := snap.Verify(prefix)
			if err != nil {
				t.Fatalf("KEL does not verify: %v", err)
			}
			if st.Sequence != 1 || st.LastEventSAID != p.SAID() {
				t.Errorf("tip s=%d %s, want 1 %s", st.Sequence, st.LastEventSAID, p.SAID())
			}
			// Given in auths' legacy form, stored as auths serializes it and
			// sealed under the SAID of that form.
			pa, err := kel.ParseAttestation(doc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := snap.Attestation(did)
			if err != nil || string(got) != string(pa.Pretty()) {
				t.Errorf("attestation = %q, %v", got, err)
			}
			said, _ := pa.SAID()
			if ev := p.Event(); len(ev.Seals) != 1 || string(ev.Seals[0]) != string(kel.DigestSeal(said)) {
				t.Errorf("seals %s, want the digest seal of %s", ev.Seals, said)
			}
			// One commit holds both the event and the attestation.
			after := git(t, dir, "rev-list", "--count", registry.RegistryRef)
			if n1, n2 := atoi(t, before), atoi(t, after); n2 != n1+1 {
				t.Errorf("commits %d → %d, want one more", n1, n2)
			}
			stat := git(t, dir, "show", "--stat", "--format=%H%n%s", res.Commit)
			for _, want := range []string{"events/00000001.json", "events/00000001.attachments.cesr", "attestation.json", "history/"} {
				if !strings.Contains(stat, want) {
					t.Errorf("git show --stat of the commit lacks %s:\n%s", want, stat)
				}
			}
			if log := git(t, dir, "log", "-1", "--format=%H", registry.RegistryRef); strings.TrimSpace(log) != res.Commit {
				t.Errorf("git log: ref at %s, want %s", log, res.Commit)
			}
			fsck(t, dir)
		})
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sigPrefixes returns each signature's code and index characters: "AA"
// (Ed25519, index 0), "2AABAC" (big code, index 1, ondex 2)...
func sigPrefixes(t *testing.T, sigs []kel.Siger) string {
	t.Helper()
	var out []string
	for _, s := range sigs {
		q, err := s.QB64()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(q, "2") {
			out = append(out, q[:6])
		} else {
			out = append(out, q[:2])
		}
	}
	return strings.Join(out, ",")
}

// TestRotateThenAnchor rotates a 2-of-3 identity to its pre-committed next
// keys listed in another order, so signatures carry both indexes, then
// anchors with the new keys; the old keys can no longer anchor.
func TestRotateThenAnchor(t *testing.T) {
	ctx := context.Background()
	reg, dir := newRegistry(t)
	a := anchor.New(reg)
	var cur, next, next2 []hsm.Signer
	for i := 0; i < 3; i++ {
		s, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		alg := kel.Ed25519
		if i == 2 {
			alg = kel.P256
		}
		n, _ := newKey(t, tokenLabels[i], alg)
		n2, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		cur, next, next2 = append(cur, s), append(next, n), append(next2, n2)
	}
	prefix := incept(t, a, cur, "2", next, "2")

	// New key order: next[2], next[0], next[1]: positions change.
	order := []hsm.Signer{next[2], next[0], next[1]}
	spec := kel.RotationSpec{Threshold: mustThreshold(t, "2"), NextThreshold: mustThreshold(t, "2")}
	for _, s := range order {
		spec.Keys = append(spec.Keys, qb64(t, s))
	}
	for _, s := range next2 {
		spec.NextDigests = append(spec.NextDigests, kel.NextKeyDigest(qb64(t, s)))
	}
	p, err := a.Rotate(ctx, prefix, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range p.Keys() {
		want := []int{2, 0, 1}[k.Index]
		if k.Ondex != want {
			t.Errorf("key %d: ondex %d, want %d", k.Index, k.Ondex, want)
		}
	}
	// The old keys cannot sign a rotation.
	// The refusal names the identity and the keys the rotation's indexes
	// expect, in the order the rotation lists them.
	wantMsg := fmt.Sprintf("key %s is not a new key of %s (indexes 0-2 expect keys %s, %s, %s)",
		qb64(t, cur[0]), prefix, qb64(t, order[0]), qb64(t, order[1]), qb64(t, order[2]))
	if _, err := anchor.Sign(ctx, p, cur[:1]); !errors.Is(err, anchor.ErrSignerNotInKeys) || !strings.HasSuffix(err.Error(), wantMsg) {
		t.Errorf("old key signing the rotation: %v, want ErrSignerNotInKeys ending %q", err, wantMsg)
	}
	if _, err := anchor.Sign(ctx, p, order[:2]); err != nil {
		t.Fatal(err)
	}
	res, err := a.Commit(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sigPrefixes(t, res.Event.Sigs), "2EAAAC,2AABAA"; got != want {
		t.Errorf("rotation signatures %s, want %s (both indexes)", got, want)
	}

	// Anchor with the new keys (indexes 1 and 2 now).
	did := "did:key:z6MkRotated"
	p2, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: attestation(prefix, did, 2)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anchor.Sign(ctx, p2, cur); !errors.Is(err, anchor.ErrSignerNotInKeys) {
		t.Errorf("old keys anchoring after the rotation: %v, want ErrSignerNotInKeys", err)
	}
	// A signature an old key made anyway is refused.
	raw, err := cur[0].SignKERI(ctx, p2.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.AddRaw(1, raw); !errors.Is(err, anchor.ErrBadSignature) {
		t.Errorf("old key's signature at index 1: %v, want ErrBadSignature", err)
	}
	if _, err := anchor.Sign(ctx, p2, []hsm.Signer{next[0], next[1]}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(ctx, p2); err != nil {
		t.Fatal(err)
	}
	snap, _ := reg.Snapshot()
	st, err := snap.Verify(prefix)
	if err != nil {
		t.Fatalf("KEL does not verify: %v", err)
	}
	if st.Sequence != 2 {
		t.Errorf("s=%d, want 2", st.Sequence)
	}
	fsck(t, dir)
}

// TestCollectRefusals feeds Add signatures it must refuse, and a duplicate
// it must accept once.
func TestCollectRefusals(t *testing.T) {
	ctx := context.Background()
	reg, _ := newRegistry(t)
	a := anchor.New(reg)
	var cur, next []hsm.Signer
	for i := 0; i < 3; i++ {
		s, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		n, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		cur, next = append(cur, s), append(next, n)
	}
	prefix := incept(t, a, cur, "2", next, "2")
	seal := anchor.Change{Seals: mustSeals(t, "d="+kel.Digest([]byte("x")))}
	p, err := a.Stage(ctx, prefix, seal)
	if err != nil {
		t.Fatal(err)
	}
	raw0, _ := cur[0].SignKERI(ctx, p.Bytes())
	sig0 := kel.NewSiger(kel.Ed25519, 0, 0, raw0)
	if ok, err := p.Add(p.SAID(), sig0); !ok || err != nil {
		t.Fatalf("Add: %v %v", ok, err)
	}
	if ok, err := p.Add(p.SAID(), sig0); ok || err != nil {
		t.Errorf("duplicate Add: %v %v, want a no-op", ok, err)
	}
	other := kel.Digest([]byte("other"))
	for _, tc := range []struct {
		name string
		said string
		sig  kel.Siger
		want error
	}{
		{"other event", other, sig0, anchor.ErrOtherEvent},
		{"wrong index", p.SAID(), kel.NewSiger(kel.Ed25519, 1, 1, raw0), anchor.ErrBadSignature},
		{"index out of range", p.SAID(), kel.NewSiger(kel.Ed25519, 3, 3, raw0), anchor.ErrWrongIndex},
		{"bad signature", p.SAID(), kel.NewSiger(kel.Ed25519, 0, 0, make([]byte, 64)), anchor.ErrBadSignature},
		{"wrong algorithm", p.SAID(), kel.NewSiger(kel.P256, 2, 2, raw0), anchor.ErrBadSignature},
	} {
		_, err := p.Add(tc.said, tc.sig)
		var se *anchor.SignatureError
		if !errors.Is(err, tc.want) || !errors.As(err, &se) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if got, want := p.Status().Needs(), "2 of 3, has index 0"; got != want {
		t.Errorf("Needs = %q, want %q", got, want)
	}
	if _, err := a.Commit(ctx, p); !errors.Is(err, anchor.ErrIncomplete) {
		t.Errorf("Commit with 1 of 2: %v, want ErrIncomplete", err)
	}
}

func mustSeals(t *testing.T, texts ...string) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for _, s := range texts {
		raw, err := anchor.ParseSeal(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}
