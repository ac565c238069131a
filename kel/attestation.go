package kel

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
)

// MaxAttestationSize is the largest attestation document auths reads
// (MAX_ATTESTATION_JSON_SIZE in auths-verifier's core.rs).
const MaxAttestationSize = 64 << 10

// Device key curves as auths names them.
const (
	CurveEd25519 = "ed25519"
	CurveP256    = "p256"
)

// ErrBadAttestation is wrapped by every error about an attestation's
// content, so callers can tell bad input from I/O trouble.
var ErrBadAttestation = errors.New("bad attestation")

// AttestationError says which field of an attestation is wrong and why.
type AttestationError struct {
	Field string // top-level field, "" for the document as a whole
	Msg   string
}

func (e *AttestationError) Error() string {
	if e.Field == "" {
		return "attestation: " + e.Msg
	}
	return fmt.Sprintf("attestation: field %q: %s", e.Field, e.Msg)
}

func (e *AttestationError) Unwrap() error { return ErrBadAttestation }

func attErr(field, format string, args ...any) error {
	return &AttestationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// DeviceKey is an attestation's device public key: its curve and raw bytes
// (32 for Ed25519; 33 compressed or 65 uncompressed SEC1 for P-256).
type DeviceKey struct {
	Curve string
	Key   []byte
}

// OIDCBinding is auths' OidcBinding: the CI workload token an attestation
// is bound to.
type OIDCBinding struct {
	Issuer, Subject, Audience string
	TokenExp                  int64
	Platform, JTI             *string
	normalizedClaims          *jvalue // an object, nil when absent
}

// Signer types auths knows (its SignerType enum).
var signerTypes = []string{"Human", "Agent", "Workload"}

// Attestation is auths' device attestation (auths-verifier's Attestation):
// an issuing identity vouches for a device key, and the device consents by
// signing. It is read as auths reads it (ParseAttestation) and written as
// auths writes it (Pretty); its SAID is the one auths looks for in the KEL.
// Members auths does not know are dropped, as auths drops them.
type Attestation struct {
	Version           uint32
	RID               string
	Issuer            string // canonical DID: method lower-cased
	Subject           string // canonical DID of the device
	DeviceKey         DeviceKey
	IdentitySignature []byte // 64 bytes, nil when absent (or all zero)
	DeviceSignature   []byte // 64 bytes (all zero when given as "")
	RevokedAt         *time.Time
	ExpiresAt         *time.Time
	Timestamp         *time.Time
	Note              *string
	CommitSHA         *string
	CommitMessage     *string
	Author            *string
	OIDC              *OIDCBinding
	DelegatedBy       *string
	SignerType        *string

	payload          *jvalue // nil when absent or null
	environmentClaim *jvalue
}

// attestationFields are the members of auths' Attestation, in its order.
var attestationFields = []string{
	"version", "rid", "issuer", "subject", "device_public_key",
	"identity_signature", "device_signature", "revoked_at", "expires_at",
	"timestamp", "note", "payload", "commit_sha", "commit_message", "author",
	"oidc_binding", "delegated_by", "signer_type", "environment_claim",
}

// ParseAttestation reads a document as auths' Attestation::from_json does:
// at most MaxAttestationSize bytes of JSON; version, rid, issuer, subject,
// device_public_key and device_signature required; the device key as
// {"curve","key"} or as legacy bare hex; times in any RFC 3339 offset; DID
// methods lower-cased. Errors are *AttestationError naming the field.
func ParseAttestation(doc []byte) (*Attestation, error) {
	if len(doc) > MaxAttestationSize {
		return nil, attErr("", "%d bytes, larger than auths' limit of %d", len(doc), MaxAttestationSize)
	}
	root, err := parseJSON(doc, func(key string) error {
		for _, f := range attestationFields {
			if f == key {
				return attErr(key, "given twice")
			}
		}
		return nil
	})
	if err != nil {
		var ae *AttestationError
		if errors.As(err, &ae) {
			return nil, err
		}
		return nil, attErr("", "not JSON: %v", err)
	}
	if root.kind != jObject {
		return nil, attErr("", "%v", errNotObject)
	}
	a := &Attestation{}
	for _, name := range []string{"version", "rid", "issuer", "subject", "device_public_key", "device_signature"} {
		if root.get(name) == nil {
			return nil, attErr(name, "missing (required)")
		}
	}
	v := root.get("version")
	if v.kind != jUint || v.u > math.MaxUint32 {
		return nil, attErr("version", "not an unsigned 32-bit integer")
	}
	a.Version = uint32(v.u)
	if a.RID, err = fieldString(root, "rid"); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"issuer", &a.Issuer}, {"subject", &a.Subject}} {
		s, err := fieldString(root, f.name)
		if err != nil {
			return nil, err
		}
		if *f.dst, err = CanonicalDID(s); err != nil {
			return nil, attErr(f.name, "%v", err)
		}
	}
	if a.DeviceKey, err = parseDeviceKey(root.get("device_public_key")); err != nil {
		return nil, err
	}
	if a.DeviceSignature, err = parseSignature(root, "device_signature"); err != nil {
		return nil, err
	}
	if root.get("identity_signature") != nil {
		sig, err := parseSignature(root, "identity_signature")
		if err != nil {
			return nil, err
		}
		if !allZero(sig) {
			a.IdentitySignature = sig
		}
	}
	for _, f := range []struct {
		name string
		dst  **time.Time
	}{{"revoked_at", &a.RevokedAt}, {"expires_at", &a.ExpiresAt}, {"timestamp", &a.Timestamp}} {
		if *f.dst, err = optTime(root, f.name); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		dst  **string
	}{{"note", &a.Note}, {"commit_sha", &a.CommitSHA}, {"commit_message", &a.CommitMessage}, {"author", &a.Author}} {
		if *f.dst, err = optString(root, f.name); err != nil {
			return nil, err
		}
	}
	a.payload = optValue(root, "payload")
	a.environmentClaim = optValue(root, "environment_claim")
	if a.OIDC, err = parseOIDC(root.get("oidc_binding")); err != nil {
		return nil, err
	}
	if a.DelegatedBy, err = optString(root, "delegated_by"); err != nil {
		return nil, err
	}
	if a.DelegatedBy != nil {
		did, err := CanonicalDID(*a.DelegatedBy)
		if err != nil {
			return nil, attErr("delegated_by", "%v", err)
		}
		a.DelegatedBy = &did
	}
	if a.SignerType, err = optString(root, "signer_type"); err != nil {
		return nil, err
	}
	if a.SignerType != nil && !containsString(signerTypes, *a.SignerType) {
		return nil, attErr("signer_type", "unknown variant %q (expected Human, Agent or Workload)", clip(*a.SignerType))
	}
	return a, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func kindName(v *jvalue) string {
	switch v.kind {
	case jNull:
		return "null"
	case jBool:
		return "a boolean"
	case jUint, jInt, jFloat:
		return "a number"
	case jString:
		return "a string"
	case jArray:
		return "an array"
	}
	return "an object"
}

func fieldString(root *jvalue, name string) (string, error) {
	v := root.get(name)
	if v.kind != jString {
		return "", attErr(name, "%s, want a string", kindName(v))
	}
	return v.s, nil
}

// optString reads an Option<String>: absent and null are both None.
func optString(root *jvalue, name string) (*string, error) {
	v := root.get(name)
	if v == nil || v.kind == jNull {
		return nil, nil
	}
	if v.kind != jString {
		return nil, attErr(name, "%s, want a string or null", kindName(v))
	}
	s := v.s
	return &s, nil
}

func optValue(root *jvalue, name string) *jvalue {
	v := root.get(name)
	if v == nil || v.kind == jNull {
		return nil
	}
	return v
}

func optTime(root *jvalue, name string) (*time.Time, error) {
	s, err := optString(root, name)
	if err != nil || s == nil {
		return nil, err
	}
	t, err := parseChronoTime(*s)
	if err != nil {
		return nil, attErr(name, "%v", err)
	}
	return &t, nil
}

// parseSignature reads a 64-byte hex signature ("" stands for all zero).
func parseSignature(root *jvalue, name string) ([]byte, error) {
	s, err := fieldString(root, name)
	if err != nil {
		return nil, err
	}
	if s == "" {
		return make([]byte, SignatureSize), nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, attErr(name, "not hex")
	}
	if len(b) != SignatureSize {
		return nil, attErr(name, "%d bytes, want %d", len(b), SignatureSize)
	}
	return b, nil
}

func parseDeviceKey(v *jvalue) (DeviceKey, error) {
	const f = "device_public_key"
	if v.kind == jString {
		// Legacy form: bare hex, the curve known from the length.
		if v.s == "" {
			return DeviceKey{Curve: CurveEd25519, Key: make([]byte, 32)}, nil
		}
		b, err := hex.DecodeString(v.s)
		if err != nil {
			return DeviceKey{}, attErr(f, "not hex")
		}
		switch len(b) {
		case 32:
			return DeviceKey{Curve: CurveEd25519, Key: b}, nil
		case 33, 65:
			return DeviceKey{Curve: CurveP256, Key: b}, nil
		}
		return DeviceKey{}, attErr(f, "%d bytes, want 32 (Ed25519) or 33 or 65 (P-256)", len(b))
	}
	if v.kind != jObject {
		return DeviceKey{}, attErr(f, "%s, want {\"curve\",\"key\"} or hex", kindName(v))
	}
	curve, key := v.get("curve"), v.get("key")
	if curve == nil || curve.kind != jString {
		return DeviceKey{}, attErr(f, `missing "curve" string`)
	}
	if key == nil || key.kind != jString {
		return DeviceKey{}, attErr(f, `missing "key" string`)
	}
	if curve.s != CurveEd25519 && curve.s != CurveP256 {
		return DeviceKey{}, attErr(f, "unknown curve %q (want ed25519 or p256)", clip(curve.s))
	}
	if key.s == "" {
		return DeviceKey{}, attErr(f, "empty key")
	}
	b, err := hex.DecodeString(key.s)
	if err != nil {
		return DeviceKey{}, attErr(f, "key is not hex")
	}
	if (curve.s == CurveEd25519 && len(b) != 32) || (curve.s == CurveP256 && len(b) != 33 && len(b) != 65) {
		return DeviceKey{}, attErr(f, "%s key of %d bytes", curve.s, len(b))
	}
	return DeviceKey{Curve: curve.s, Key: b}, nil
}

func parseOIDC(v *jvalue) (*OIDCBinding, error) {
	const f = "oidc_binding"
	if v == nil || v.kind == jNull {
		return nil, nil
	}
	if v.kind != jObject {
		return nil, attErr(f, "%s, want an object", kindName(v))
	}
	o := &OIDCBinding{}
	for _, s := range []struct {
		name string
		dst  *string
	}{{"issuer", &o.Issuer}, {"subject", &o.Subject}, {"audience", &o.Audience}} {
		m := v.get(s.name)
		if m == nil || m.kind != jString {
			return nil, attErr(f, "member %q is not a string", s.name)
		}
		*s.dst = m.s
	}
	exp := v.get("token_exp")
	switch {
	case exp != nil && exp.kind == jUint && exp.u <= math.MaxInt64:
		o.TokenExp = int64(exp.u)
	case exp != nil && exp.kind == jInt:
		o.TokenExp = exp.i
	default:
		return nil, attErr(f, `member "token_exp" is not a 64-bit integer`)
	}
	for _, s := range []struct {
		name string
		dst  **string
	}{{"platform", &o.Platform}, {"jti", &o.JTI}} {
		p, err := optString(v, s.name)
		if err != nil {
			return nil, attErr(f, "member %q is not a string", s.name)
		}
		*s.dst = p
	}
	if nc := optValue(v, "normalized_claims"); nc != nil {
		if nc.kind != jObject {
			return nil, attErr(f, `member "normalized_claims" is not an object`)
		}
		o.normalizedClaims = nc
	}
	return o, nil
}

// CanonicalDID validates a DID and lower-cases its method, as auths'
// CanonicalDid::parse does: no control characters, surrounding white space
// trimmed, "did:<method>:<id>" with both parts non-empty.
func CanonicalDID(raw string) (string, error) {
	for _, r := range raw {
		if unicode.IsControl(r) {
			return "", errors.New("DID contains control characters")
		}
	}
	s := strings.TrimSpace(raw)
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 3 || parts[0] != "did" || parts[1] == "" || parts[2] == "" {
		return "", fmt.Errorf("invalid DID %q (want did:<method>:<id>)", clip(s))
	}
	return "did:" + strings.ToLower(parts[1]) + ":" + parts[2], nil
}

// parseChronoTime reads a time as chrono's DateTime<FixedOffset> parser
// does: YYYY-MM-DD, 'T', 't' or ' ', hh:mm:ss, an optional fraction (digits
// past nanoseconds are dropped), then Z, z or ±hh:mm (or ±hhmm).
func parseChronoTime(s string) (time.Time, error) {
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("time %q: %s (want RFC 3339)", clip(s), why)
	}
	num := func(at, n int) (int, bool) {
		if at+n > len(s) {
			return 0, false
		}
		v := 0
		for i := at; i < at+n; i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			v = v*10 + int(s[i]-'0')
		}
		return v, true
	}
	if len(s) < 20 {
		return bad("too short")
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return bad("malformed date or time")
	}
	if sep := s[10]; sep != 'T' && sep != 't' && sep != ' ' {
		return bad("malformed date-time separator")
	}
	i := 19
	nanos := 0
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start < 9 {
				nanos = nanos*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start {
			return bad("empty fraction")
		}
		for n := i - start; n < 9; n++ {
			nanos *= 10
		}
	}
	offset := 0
	switch rest := s[i:]; {
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':',
		len(rest) == 5 && (rest[0] == '+' || rest[0] == '-'):
		hh, ok1 := num(i+1, 2)
		mmAt := i + 3
		if len(rest) == 6 {
			mmAt = i + 4
		}
		mm, ok2 := num(mmAt, 2)
		if !ok1 || !ok2 || hh > 23 || mm > 59 {
			return bad("malformed offset")
		}
		offset = hh*3600 + mm*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return bad("malformed offset")
	}
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return bad("out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, time.FixedZone("", offset))
	if t.Day() != day {
		return bad("no such day")
	}
	t = t.UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		return bad("year out of range")
	}
	return t, nil
}

// FormatTime writes a time as chrono serializes DateTime<Utc> (auths'
// attestation times and metadata.json's updated_at):
// RFC 3339 with 'Z' and 0, 3, 6 or 9 fractional digits, as few as exact.
func FormatTime(t time.Time) string {
	t = t.UTC()
	base := t.Format("2006-01-02T15:04:05")
	ns := t.Nanosecond()
	switch {
	case ns == 0:
		return base + "Z"
	case ns%1_000_000 == 0:
		return fmt.Sprintf("%s.%03dZ", base, ns/1_000_000)
	case ns%1_000 == 0:
		return fmt.Sprintf("%s.%06dZ", base, ns/1_000)
	}
	return fmt.Sprintf("%s.%09dZ", base, ns)
}

func timeValue(t *time.Time) *jvalue {
	if t == nil {
		return &jvalue{kind: jNull}
	}
	return jstr(FormatTime(*t))
}

func optStrValue(s *string) *jvalue {
	if s == nil {
		return &jvalue{kind: jNull}
	}
	return jstr(*s)
}

func (o *OIDCBinding) value() *jvalue {
	v := &jvalue{kind: jObject}
	v.set("issuer", jstr(o.Issuer))
	v.set("subject", jstr(o.Subject))
	v.set("audience", jstr(o.Audience))
	if o.TokenExp >= 0 {
		v.set("token_exp", &jvalue{kind: jUint, u: uint64(o.TokenExp)})
	} else {
		v.set("token_exp", &jvalue{kind: jInt, i: o.TokenExp})
	}
	if o.Platform != nil {
		v.set("platform", jstr(*o.Platform))
	}
	if o.JTI != nil {
		v.set("jti", jstr(*o.JTI))
	}
	if o.normalizedClaims != nil {
		v.set("normalized_claims", o.normalizedClaims)
	}
	return v
}

// value is the attestation as auths' Serialize writes it: fields in struct
// order, identity_signature omitted when empty, revoked_at and expires_at
// omitted when absent, timestamp always present (null when absent), the
// optional rest only when present.
func (a *Attestation) value() *jvalue {
	v := &jvalue{kind: jObject}
	v.set("version", &jvalue{kind: jUint, u: uint64(a.Version)})
	v.set("rid", jstr(a.RID))
	v.set("issuer", jstr(a.Issuer))
	v.set("subject", jstr(a.Subject))
	key := &jvalue{kind: jObject}
	key.set("curve", jstr(a.DeviceKey.Curve))
	key.set("key", jstr(hex.EncodeToString(a.DeviceKey.Key)))
	v.set("device_public_key", key)
	if len(a.IdentitySignature) > 0 && !allZero(a.IdentitySignature) {
		v.set("identity_signature", jstr(hex.EncodeToString(a.IdentitySignature)))
	}
	v.set("device_signature", jstr(hex.EncodeToString(a.DeviceSignature)))
	if a.RevokedAt != nil {
		v.set("revoked_at", timeValue(a.RevokedAt))
	}
	if a.ExpiresAt != nil {
		v.set("expires_at", timeValue(a.ExpiresAt))
	}
	v.set("timestamp", timeValue(a.Timestamp))
	if a.Note != nil {
		v.set("note", jstr(*a.Note))
	}
	if a.payload != nil {
		v.set("payload", a.payload)
	}
	for _, f := range []struct {
		name string
		s    *string
	}{{"commit_sha", a.CommitSHA}, {"commit_message", a.CommitMessage}, {"author", a.Author}} {
		if f.s != nil {
			v.set(f.name, jstr(*f.s))
		}
	}
	if a.OIDC != nil {
		v.set("oidc_binding", a.OIDC.value())
	}
	if a.DelegatedBy != nil {
		v.set("delegated_by", jstr(*a.DelegatedBy))
	}
	if a.SignerType != nil {
		v.set("signer_type", jstr(*a.SignerType))
	}
	if a.environmentClaim != nil {
		v.set("environment_claim", a.environmentClaim)
	}
	return v
}

// Pretty returns the document as auths stores it in the registry
// (serde_json::to_vec_pretty of its Attestation; no trailing newline).
func (a *Attestation) Pretty() []byte {
	var b bytes.Buffer
	writePretty(&b, a.value())
	return b.Bytes()
}

// Compact returns the document as serde_json::to_vec would write it.
func (a *Attestation) Compact() []byte {
	var b bytes.Buffer
	writeCompact(&b, a.value())
	return b.Bytes()
}
