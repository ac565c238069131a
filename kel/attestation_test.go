package kel

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// fixedSeed is a deterministic Ed25519 device key for byte-exact fixtures.
var fixedSeed = []byte("auths-agent attestation test key")

func signEd25519(t *testing.T, a *Attestation, priv ed25519.PrivateKey) {
	t.Helper()
	msg, err := a.CanonicalData()
	if err != nil {
		t.Fatal(err)
	}
	a.DeviceSignature = ed25519.Sign(priv, msg)
}

// legacyDoc is an attestation in auths' legacy form: compact, bare-hex
// device key, a +00:00 offset, an upper-case DID method, unknown members.
func legacyDoc(t *testing.T) ([]byte, *Attestation) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(fixedSeed)
	pub := priv.Public().(ed25519.PublicKey)
	ts := time.Date(2026, 3, 4, 5, 6, 7, 120_000_000, time.UTC)
	a := &Attestation{
		Version: 2, RID: "rid-0001-abcdefghijk", Issuer: "did:keri:EIssuer", Subject: "did:key:z6MkDevice",
		DeviceKey: DeviceKey{Curve: CurveEd25519, Key: pub}, Timestamp: &ts,
	}
	note := "laptop"
	a.Note = &note
	signEd25519(t, a, priv)
	doc := `{"x":1,"version":2,"rid":"rid-0001-abcdefghijk","issuer":"did:KERI:EIssuer","subject":"did:key:z6MkDevice",` +
		`"device_public_key":"` + hex.EncodeToString(pub) + `","device_signature":"` + strings.ToUpper(hex.EncodeToString(a.DeviceSignature)) + `",` +
		`"timestamp":"2026-03-04T06:06:07.12+01:00","note":"laptop","payload":null,"identity_signature":""}`
	return []byte(doc), a
}

func TestAttestationLegacyFormReserialized(t *testing.T) {
	doc, want := legacyDoc(t)
	a, err := ParseAttestation(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.VerifyDevice(); err != nil {
		t.Fatalf("device signature: %v", err)
	}
	pub := hex.EncodeToString(want.DeviceKey.Key)
	sig := hex.EncodeToString(want.DeviceSignature)
	// serde_json::to_vec_pretty of auths' Attestation, written by hand from
	// its struct: field order, identity_signature omitted (empty), no
	// revoked_at/expires_at, the key as {"curve","key"}, UTC with 3 digits.
	wantPretty := "{\n" +
		"  \"version\": 2,\n" +
		"  \"rid\": \"rid-0001-abcdefghijk\",\n" +
		"  \"issuer\": \"did:keri:EIssuer\",\n" +
		"  \"subject\": \"did:key:z6MkDevice\",\n" +
		"  \"device_public_key\": {\n" +
		"    \"curve\": \"ed25519\",\n" +
		"    \"key\": \"" + pub + "\"\n" +
		"  },\n" +
		"  \"device_signature\": \"" + sig + "\",\n" +
		"  \"timestamp\": \"2026-03-04T05:06:07.120Z\",\n" +
		"  \"note\": \"laptop\"\n" +
		"}"
	if got := string(a.Pretty()); got != wantPretty {
		t.Errorf("pretty form\n got %s\nwant %s", got, wantPretty)
	}
	// The SAID input: RFC 8785 of the struct (sorted keys), then d and v.
	body := `{"device_public_key":{"curve":"ed25519","key":"` + pub + `"},"device_signature":"` + sig +
		`","issuer":"did:keri:EIssuer","note":"laptop","rid":"rid-0001-abcdefghijk","subject":"did:key:z6MkDevice",` +
		`"timestamp":"2026-03-04T05:06:07.120Z","version":2,"d":"` + saidPlaceholder + `","v":"`
	wantIn := body + versionString(len(body)+len(versionString(0))+2) + `"}`
	in, err := a.saidInput()
	if err != nil {
		t.Fatal(err)
	}
	if string(in) != wantIn {
		t.Errorf("SAID input\n got %s\nwant %s", in, wantIn)
	}
	said1, err := AttestationSAID(doc)
	if err != nil {
		t.Fatal(err)
	}
	said2, err := AttestationSAID(a.Pretty())
	if err != nil {
		t.Fatal(err)
	}
	if said1 != Digest([]byte(wantIn)) || said1 != said2 {
		t.Errorf("SAIDs %s (legacy) %s (pretty), want %s", said1, said2, Digest([]byte(wantIn)))
	}
	// Re-reading the stored form gives the same bytes again.
	b, err := ParseAttestation(a.Pretty())
	if err != nil {
		t.Fatal(err)
	}
	if string(b.Pretty()) != wantPretty {
		t.Errorf("pretty form does not round-trip")
	}
}

func TestAttestationCanonicalData(t *testing.T) {
	_, a := legacyDoc(t)
	got, err := a.CanonicalData()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"device_public_key":"` + hex.EncodeToString(a.DeviceKey.Key) + `","expires_at":null,"issuer":"did:keri:EIssuer",` +
		`"note":"laptop","payload":null,"revoked_at":null,"rid":"rid-0001-abcdefghijk","subject":"did:key:z6MkDevice",` +
		`"timestamp":"2026-03-04T05:06:07.120Z","version":2}`
	if string(got) != want {
		t.Errorf("canonical data\n got %s\nwant %s", got, want)
	}
}

func TestAttestationAllFieldsOrder(t *testing.T) {
	doc := `{"environment_claim":{"b":1,"a":[]},"signer_type":"Agent","delegated_by":"did:Key:zDel",` +
		`"oidc_binding":{"token_exp":-5,"audience":"aud","subject":"sub","issuer":"iss","jti":null,"extra":1},` +
		`"author":"A","commit_message":"m\u2028<&>","commit_sha":"abc","payload":{"z":1.0,"a":1e21,"m":-0,"n":0.00001,"o":1e-7,"p":123456789012345678901,"z":2},` +
		`"note":null,"timestamp":null,"expires_at":"2030-01-01T00:00:00.000001Z","revoked_at":"2029-01-01 00:00:00.5-00:30",` +
		`"device_signature":"","identity_signature":"` + strings.Repeat("ab", 64) + `",` +
		`"device_public_key":{"key":"02` + strings.Repeat("11", 32) + `","curve":"p256"},"subject":"did:key:zDev","issuer":"did:keri:E1","rid":"r","version":7}`
	a, err := ParseAttestation([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n" +
		"  \"version\": 7,\n  \"rid\": \"r\",\n  \"issuer\": \"did:keri:E1\",\n  \"subject\": \"did:key:zDev\",\n" +
		"  \"device_public_key\": {\n    \"curve\": \"p256\",\n    \"key\": \"02" + strings.Repeat("11", 32) + "\"\n  },\n" +
		"  \"identity_signature\": \"" + strings.Repeat("ab", 64) + "\",\n" +
		"  \"device_signature\": \"" + strings.Repeat("00", 64) + "\",\n" +
		"  \"revoked_at\": \"2029-01-01T00:30:00.500Z\",\n" +
		"  \"expires_at\": \"2030-01-01T00:00:00.000001Z\",\n" +
		"  \"timestamp\": null,\n" +
		"  \"payload\": {\n    \"z\": 2,\n    \"a\": 1e21,\n    \"m\": -0.0,\n    \"n\": 0.00001,\n    \"o\": 1e-7,\n    \"p\": 1.2345678901234568e20\n  },\n" +
		"  \"commit_sha\": \"abc\",\n  \"commit_message\": \"m\u2028<&>\",\n  \"author\": \"A\",\n" +
		"  \"oidc_binding\": {\n    \"issuer\": \"iss\",\n    \"subject\": \"sub\",\n    \"audience\": \"aud\",\n    \"token_exp\": -5\n  },\n" +
		"  \"delegated_by\": \"did:key:zDel\",\n  \"signer_type\": \"Agent\",\n" +
		"  \"environment_claim\": {\n    \"b\": 1,\n    \"a\": []\n  }\n}"
	if got := string(a.Pretty()); got != want {
		t.Errorf("pretty form\n got %s\nwant %s", got, want)
	}
	if _, err := a.SAID(); err != nil {
		t.Fatal(err)
	}
}

func TestAttestationP256DeviceSignature(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, compressed := range []bool{true, false} {
		key, _ := priv.PublicKey.Bytes() // uncompressed SEC1
		if compressed {
			key = elliptic.MarshalCompressed(elliptic.P256(), priv.X, priv.Y)
		}
		a := &Attestation{Version: 2, RID: "p", Issuer: "did:keri:E1", Subject: "did:key:zP",
			DeviceKey: DeviceKey{Curve: CurveP256, Key: key}}
		msg, _ := a.CanonicalData()
		h := sha256.Sum256(msg)
		r, s, err := ecdsa.Sign(rand.Reader, priv, h[:])
		if err != nil {
			t.Fatal(err)
		}
		a.DeviceSignature = make([]byte, 64)
		r.FillBytes(a.DeviceSignature[:32])
		s.FillBytes(a.DeviceSignature[32:])
		back, err := ParseAttestation(a.Pretty())
		if err != nil {
			t.Fatal(err)
		}
		if err := back.VerifyDevice(); err != nil {
			t.Errorf("compressed=%v: %v", compressed, err)
		}
		back.RID = "q"
		if err := back.VerifyDevice(); err == nil || !strings.Contains(err.Error(), `"device_signature"`) {
			t.Errorf("changed rid: %v, want a device_signature error", err)
		}
	}
}

func TestAttestationIdentitySignature(t *testing.T) {
	_, a := legacyDoc(t)
	idPriv := ed25519.NewKeyFromSeed([]byte("identity key seed for the tests!"))
	v, err := VerferFromPublicKey(idPriv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.VerifyIdentity([]string{v.QB64()}); err != nil {
		t.Errorf("absent identity_signature: %v", err)
	}
	msg, _ := a.CanonicalData()
	a.IdentitySignature = ed25519.Sign(idPriv, msg)
	if err := a.VerifyIdentity([]string{v.QB64()}); err != nil {
		t.Error(err)
	}
	other, _ := VerferFromPublicKey(ed25519.NewKeyFromSeed(make([]byte, 32)).Public())
	if err := a.VerifyIdentity([]string{other.QB64()}); err == nil || !strings.Contains(err.Error(), "identity_signature") {
		t.Errorf("wrong key: %v", err)
	}
}

func TestAttestationBadInput(t *testing.T) {
	good, ga := legacyDoc(t)
	pubHex := hex.EncodeToString(ga.DeviceKey.Key)
	swap := func(old, new string) string { return strings.Replace(string(good), old, new, 1) }
	tests := []struct{ doc, field, msg string }{
		{`[]`, "", "not a JSON object"},
		{`{"version":`, "", "not JSON"},
		{`{"a":"\ud800"}`, "", "lone surrogate"},
		{"{\"a\":\"\xff\"}", "", "invalid unicode"},
		{strings.Repeat(" ", MaxAttestationSize+1), "", "larger than auths' limit"},
		{swap(`"rid":"rid-0001-abcdefghijk",`, ""), "rid", "missing"},
		{swap(`"version":2`, `"version":2.0`), "version", "unsigned"},
		{swap(`"version":2`, `"version":4294967296`), "version", "unsigned"},
		{swap(`"version":2`, `"version":2,"version":2`), "version", "given twice"},
		{swap(`"issuer":"did:KERI:EIssuer"`, `"issuer":"keri:E"`), "issuer", "invalid DID"},
		{swap(`"subject":"did:key:z6MkDevice"`, `"subject":7`), "subject", "want a string"},
		{swap(`"device_public_key":"`, `"device_public_key":"0000`), "device_public_key", "34 bytes"},
		{swap(`"`+pubHex+`"`, `{"curve":"x25519","key":"`+pubHex+`"}`), "device_public_key", "unknown curve"},
		{swap(`"`+pubHex+`"`, `{"curve":"p256","key":"`+pubHex+`"}`), "device_public_key", "p256 key of 32 bytes"},
		{swap(`"device_signature":"`, `"device_signature":"0`), "device_signature", "not hex"},
		{swap(`"timestamp":"2026-03-04T06:06:07.12+01:00"`, `"timestamp":"yesterday"`), "timestamp", "RFC 3339"},
		{swap(`"timestamp":"2026-03-04T06:06:07.12+01:00"`, `"timestamp":"2026-02-30T06:06:07Z"`), "timestamp", "no such day"},
		{swap(`"note":"laptop"`, `"note":1`), "note", "string or null"},
		{swap(`"note":"laptop"`, `"signer_type":"Robot"`), "signer_type", "unknown variant"},
		{swap(`"note":"laptop"`, `"oidc_binding":{"issuer":"i"}`), "oidc_binding", "subject"},
	}
	for _, tc := range tests {
		_, err := ParseAttestation([]byte(tc.doc))
		var ae *AttestationError
		if !errors.As(err, &ae) || !errors.Is(err, ErrBadAttestation) {
			t.Errorf("%.60q: %v, want an *AttestationError", tc.doc, err)
			continue
		}
		if ae.Field != tc.field || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%.60q: %q (field %q), want field %q and %q on one line", tc.doc, err, ae.Field, tc.field, tc.msg)
		}
	}
}

func TestFormatFloatSerde(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{1, "1.0"}, {-2.5, "-2.5"}, {1e15, "1000000000000000.0"}, {1e16, "1e16"},
		{1234567890123456.7, "1234567890123456.8"}, {12345678901234567, "1.2345678901234568e16"},
		{0.0001, "0.0001"}, {0.00001, "0.00001"}, {0.000001, "1e-6"}, {1.5e-7, "1.5e-7"},
		{math.MaxFloat64, "1.7976931348623157e308"}, {5e-324, "5e-324"}, {math.Copysign(0, -1), "-0.0"},
	} {
		if got := formatFloatSerde(tc.f); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.f, got, tc.want)
		}
	}
}

func TestChronoTime(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"},
		{"2026-01-02t03:04:05.5z", "2026-01-02T03:04:05.500Z"},
		{"2026-01-02 03:04:05.1234+0200", "2026-01-02T01:04:05.123400Z"},
		{"2026-01-02T03:04:05.1234567891-01:00", "2026-01-02T04:04:05.123456789Z"},
		{"2026-01-02T03:04:05.000000000+00:00", "2026-01-02T03:04:05Z"},
	} {
		tm, err := parseChronoTime(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := FormatTime(tm); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"2026-01-02T03:04:05", "2026-13-02T03:04:05Z", "2026-01-02T03:04:60Z", "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05+24:00"} {
		if _, err := parseChronoTime(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// FuzzParseAttestation: no input panics, and whatever parses is stored in
// a form that parses back to the same bytes and SAID.
func FuzzParseAttestation(f *testing.F) {
	f.Add([]byte(`{"version":2,"rid":"r","issuer":"did:keri:E","subject":"did:key:z","device_public_key":"","device_signature":""}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		a, err := ParseAttestation(doc)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		p := a.Pretty()
		b, err := ParseAttestation(p)
		if err != nil {
			t.Fatalf("stored form does not parse: %v\n%s", err, p)
		}
		if string(b.Pretty()) != string(p) {
			t.Fatalf("stored form changes on re-reading:\n%s\n%s", p, b.Pretty())
		}
		s1, err1 := a.SAID()
		s2, err2 := b.SAID()
		if (err1 == nil) != (err2 == nil) || s1 != s2 {
			t.Fatalf("SAID changes on re-reading: %s %v / %s %v", s1, err1, s2, err2)
		}
	})
}

func TestCheckAuthsThreshold(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		keys int
		want string // "" for accepted
	}{
		{`"2"`, 3, ""},
		{`"a"`, 12, ""},
		{`[["1/2","1/2","1/2"]]`, 3, ""},
		{`2`, 3, "bare number"},
		{`["1/2","1/2"]`, 2, "flat weight list"},
		{`[["1/2","1/2"],["1/1"]]`, 3, "2 weighted clauses: auths applies every clause to the whole key list, keripy splits"},
		{`[["1/2","1/2"]]`, 3, "a clause of 2 weights for 3 keys"},
		{`[["1","1/2"]]`, 2, `weight "1": auths reads weights only as n/d`},
	} {
		err := CheckAuthsThreshold([]byte(tc.raw), tc.keys)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s over %d keys: %v, want %q", tc.raw, tc.keys, err, tc.want)
		}
	}
}
