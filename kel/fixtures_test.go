package kel

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Fixtures in auths' shape live in testdata/auths: attestations whose device
// signatures were made by the test (Ed25519 in the legacy form, P-256 in
// the current form, a revocation), each with the stored form auths writes
// and the SAID it anchors, and a delegated inception with its -G couple.
// AUTHS_FIXTURES_UPDATE=1 rewrites them; otherwise they are checked byte
// for byte.
const fixturesDir = "testdata/auths"

func fixture(t *testing.T, name string, make func() []byte) []byte {
	t.Helper()
	path := filepath.Join(fixturesDir, name)
	if os.Getenv("AUTHS_FIXTURES_UPDATE") == "1" {
		if err := os.MkdirAll(fixturesDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, make(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixture %s: %v (AUTHS_FIXTURES_UPDATE=1 writes it)", path, err)
	}
	return data
}

func TestAuthsFixtures(t *testing.T) {
	ts := time.Date(2026, 4, 5, 6, 7, 8, 9_000_000, time.UTC)
	edPriv := ed25519.NewKeyFromSeed(fixedSeed)
	p256Priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	docs := map[string]func() []byte{
		"ed25519-legacy.json": func() []byte {
			a := &Attestation{Version: 2, RID: "fixture-ed25519-legacy", Issuer: "did:keri:EFixtureIssuer", Subject: "did:key:z6MkFixtureLaptop",
				DeviceKey: DeviceKey{Curve: CurveEd25519, Key: edPriv.Public().(ed25519.PublicKey)}, Timestamp: &ts}
			signEd25519(t, a, edPriv)
			return []byte(`{"version":2,"rid":"fixture-ed25519-legacy","issuer":"did:KERI:EFixtureIssuer","subject":"did:key:z6MkFixtureLaptop",` +
				`"device_public_key":"` + hex.EncodeToString(a.DeviceKey.Key) + `","device_signature":"` + hex.EncodeToString(a.DeviceSignature) +
				`","timestamp":"2026-04-05T08:07:08.009+02:00","capabilities":["sign_commit"]}`)
		},
		"p256-current.json": func() []byte {
			key := elliptic.MarshalCompressed(elliptic.P256(), p256Priv.X, p256Priv.Y)
			exp := ts.Add(365 * 24 * time.Hour)
			note := "fixture phone"
			a := &Attestation{Version: 2, RID: "fixture-p256-current", Issuer: "did:keri:EFixtureIssuer", Subject: "did:key:zDnaeFixturePhone",
				DeviceKey: DeviceKey{Curve: CurveP256, Key: key}, Timestamp: &ts, ExpiresAt: &exp, Note: &note}
			p, _ := parseJSON([]byte(`{"role":"phone","weight":1.5,"tags":["a","b"]}`), nil)
			a.payload = p
			msg, _ := a.CanonicalData()
			h := sha256.Sum256(msg)
			r, s, _ := ecdsa.Sign(rand.Reader, p256Priv, h[:])
			a.DeviceSignature = make([]byte, 64)
			r.FillBytes(a.DeviceSignature[:32])
			s.FillBytes(a.DeviceSignature[32:])
			return a.Pretty()
		},
		"ed25519-revocation.json": func() []byte {
			a := &Attestation{Version: 2, RID: "fixture-ed25519-revoked", Issuer: "did:keri:EFixtureIssuer", Subject: "did:key:z6MkFixtureLaptop",
				DeviceKey: DeviceKey{Curve: CurveEd25519, Key: edPriv.Public().(ed25519.PublicKey)}, Timestamp: &ts, RevokedAt: &ts}
			signEd25519(t, a, edPriv)
			return a.Compact()
		},
	}
	for name, make := range docs {
		t.Run(name, func(t *testing.T) {
			doc := fixture(t, "attestation-"+name, make)
			a, err := ParseAttestation(doc)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.VerifyDevice(); err != nil {
				t.Fatal(err)
			}
			stored := fixture(t, "attestation-"+strings.TrimSuffix(name, ".json")+".stored.json", a.Pretty)
			if !bytes.Equal(a.Pretty(), stored) {
				t.Errorf("stored form\n got %s\nwant %s", a.Pretty(), stored)
			}
			said, err := a.SAID()
			if err != nil {
				t.Fatal(err)
			}
			want := fixture(t, "attestation-"+strings.TrimSuffix(name, ".json")+".said", func() []byte { return []byte(said + "\n") })
			if said+"\n" != string(want) {
				t.Errorf("SAID %s, want %s", said, want)
			}
		})
	}
	// A delegated inception as auths writes it, -A then -G.
	stream := fixture(t, "dip-with-source-seal.cesr", func() []byte {
		k, _ := VerferFromPublicKey(edPriv.Public())
		e := buildAs(t, TypeDelegatedInception, fieldOrder[TypeDelegatedInception], map[string]any{
			"i": saidPlaceholder, "s": "0", "kt": SimpleThreshold(1), "k": []string{k.QB64()},
			"nt": SimpleThreshold(1), "n": []string{NextKeyDigest(k.QB64())}, "bt": "0", "b": []string{}, "c": []string{},
			"a": []json.RawMessage{}, "di": Digest([]byte("fixture delegator")),
		})
		out, err := EncodeStream([]SignedEvent{{Event: e, Sigs: []Siger{NewSiger(Ed25519, 0, 0, ed25519.Sign(edPriv, e.Raw()))},
			Sources: []SourceSeal{{Sn: 3, SAID: Digest([]byte("fixture anchor"))}}}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	})
	evs, err := ParseStream(stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Event.Type != TypeDelegatedInception || len(evs[0].Sources) != 1 || evs[0].Sources[0].Sn != 3 {
		t.Fatalf("dip fixture parsed as %+v", evs)
	}
	if back, _ := EncodeStream(evs); !bytes.Equal(back, stream) {
		t.Errorf("dip fixture not written back byte for byte")
	}
	if err := evs[0].Event.CheckSAID(); err != nil {
		t.Error(err)
	}
}
