package kel

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/auths-dev/auths-agent/internal/vectors"
)

// readVector reads one file of the keripy conformance vectors (kept in
// internal/vectors).
func readVector(t testing.TB, name string) []byte {
	t.Helper()
	data, err := vectors.File(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// vectorStream is the two-event KEL the vectors form.
func vectorStream(t testing.TB) []byte {
	t.Helper()
	return vectors.Stream()
}

// testKey is a software controller key.
type testKey struct {
	alg Algorithm
	ed  ed25519.PrivateKey
	ec  *ecdsa.PrivateKey
	pub string // qb64
}

// newEd25519Key returns a deterministic Ed25519 key derived from seed.
func newEd25519Key(t testing.TB, seed byte) testKey {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	priv := ed25519.NewKeyFromSeed(s)
	v, err := VerferFromPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return testKey{alg: Ed25519, ed: priv, pub: v.QB64()}
}

// newP256Key returns a fresh P-256 key.
func newP256Key(t testing.TB) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := VerferFromPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{alg: P256, ec: priv, pub: v.QB64()}
}

// sign signs msg as a KERI controller does: Ed25519 over the bytes, P-256
// ECDSA over their SHA-256 as raw r‖s.
func (k testKey) sign(t testing.TB, msg []byte) []byte {
	t.Helper()
	if k.alg == Ed25519 {
		return ed25519.Sign(k.ed, msg)
	}
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k.ec, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, SignatureSize)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig
}

// siger signs e with k as the key at index (and ondex in the prior next
// list, or NoOndex).
func (k testKey) siger(t testing.TB, e *Event, index, ondex int) Siger {
	t.Helper()
	return NewSiger(k.alg, index, ondex, k.sign(t, e.Raw()))
}

func pubs(keys ...testKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.pub
	}
	return out
}

func digests(keys ...testKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = NextKeyDigest(k.pub)
	}
	return out
}

func mustWeighted(t testing.TB, clauses ...[]string) Threshold {
	t.Helper()
	th, err := WeightedThreshold(clauses)
	if err != nil {
		t.Fatal(err)
	}
	return th
}
