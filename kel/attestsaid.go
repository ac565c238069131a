package kel

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"

	"github.com/gowebpki/jcs"
)

// AttestationSAID parses doc as auths' Attestation (ParseAttestation) and
// returns the SAID auths anchors for it: the SAID of its re-serialization,
// never of the bytes given. Two documents auths reads as the same
// attestation (legacy device key, another time offset, other white space)
// have the same SAID.
func AttestationSAID(doc []byte) (string, error) {
	a, err := ParseAttestation(doc)
	if err != nil {
		return "", err
	}
	return a.SAID()
}

// SAID returns the SAID auths seals in the KEL for this attestation
// (attestation_said in auths-id's keri/anchor.rs): RFC 8785 JSON of the
// struct as serialized, read back into serde_json's ordered map (so numbers
// take serde_json's form again), "d" set to 44 '#' and "v" to the
// KERI10JSON version string of that size appended, compact, Blake3-256.
func (a *Attestation) SAID() (string, error) {
	in, err := a.saidInput()
	if err != nil {
		return "", err
	}
	return Digest(in), nil
}

func (a *Attestation) saidInput() ([]byte, error) {
	canon, err := jcs.Transform(a.Compact())
	if err != nil {
		return nil, attErr("", "canonicalizing: %v", err)
	}
	v, err := parseJSON(canon, nil)
	if err != nil {
		return nil, attErr("", "canonical form: %v", err)
	}
	v.set("d", jstr(saidPlaceholder))
	v.set("v", jstr(versionString(0)))
	var first bytes.Buffer
	writeCompact(&first, v)
	if first.Len() > MaxEventSize {
		return nil, attErr("", "%d bytes, larger than a version string can describe", first.Len())
	}
	v.set("v", jstr(versionString(first.Len())))
	var out bytes.Buffer
	writeCompact(&out, v)
	return out.Bytes(), nil
}

// CanonicalData returns the bytes both signatures of an attestation are
// over: RFC 8785 JSON of auths' CanonicalAttestationData (version, rid,
// issuer, subject, the device key as hex of its raw bytes, payload,
// timestamp, expires_at, revoked_at and note, null when absent; then
// delegated_by, signer_type, commit_sha and oidc_binding only when present).
func (a *Attestation) CanonicalData() ([]byte, error) {
	v := &jvalue{kind: jObject}
	v.set("version", &jvalue{kind: jUint, u: uint64(a.Version)})
	v.set("rid", jstr(a.RID))
	v.set("issuer", jstr(a.Issuer))
	v.set("subject", jstr(a.Subject))
	v.set("device_public_key", jstr(hex.EncodeToString(a.DeviceKey.Key)))
	if a.payload != nil {
		v.set("payload", a.payload)
	} else {
		v.set("payload", &jvalue{kind: jNull})
	}
	v.set("timestamp", timeValue(a.Timestamp))
	v.set("expires_at", timeValue(a.ExpiresAt))
	v.set("revoked_at", timeValue(a.RevokedAt))
	v.set("note", optStrValue(a.Note))
	if a.DelegatedBy != nil {
		v.set("delegated_by", jstr(*a.DelegatedBy))
	}
	if a.SignerType != nil {
		v.set("signer_type", jstr(*a.SignerType))
	}
	if a.CommitSHA != nil {
		v.set("commit_sha", jstr(*a.CommitSHA))
	}
	if a.OIDC != nil {
		v.set("oidc_binding", a.OIDC.value())
	}
	var b bytes.Buffer
	writeCompact(&b, v)
	out, err := jcs.Transform(b.Bytes())
	if err != nil {
		return nil, attErr("", "canonicalizing: %v", err)
	}
	return out, nil
}

// VerifyDevice checks device_signature with device_public_key over
// CanonicalData: Ed25519, or ECDSA P-256 over SHA-256 as raw r‖s (the
// encoding auths' P-256 verifier reads, the p256 crate's
// Signature::from_slice).
func (a *Attestation) VerifyDevice() error {
	msg, err := a.CanonicalData()
	if err != nil {
		return err
	}
	ok, err := verifyDeviceKey(a.DeviceKey, msg, a.DeviceSignature)
	if err != nil {
		return attErr("device_public_key", "%v", err)
	}
	if !ok {
		return attErr("device_signature", "does not verify with device_public_key over the canonical attestation data")
	}
	return nil
}

// VerifyIdentity checks identity_signature against the issuer's current
// keys (qb64): it must be absent, or verify with one of them.
func (a *Attestation) VerifyIdentity(currentKeys []string) error {
	if len(a.IdentitySignature) == 0 {
		return nil
	}
	msg, err := a.CanonicalData()
	if err != nil {
		return err
	}
	for _, k := range currentKeys {
		v, err := ParseVerfer(k)
		if err != nil {
			continue
		}
		if v.Verify(msg, a.IdentitySignature) {
			return nil
		}
	}
	return attErr("identity_signature", "does not verify with any current key of %s", clip(a.Issuer))
}

func verifyDeviceKey(k DeviceKey, msg, sig []byte) (bool, error) {
	if len(sig) != SignatureSize {
		return false, nil
	}
	switch k.Curve {
	case CurveEd25519:
		if len(k.Key) != ed25519.PublicKeySize {
			return false, fmt.Errorf("ed25519 key of %d bytes", len(k.Key))
		}
		return ed25519.Verify(ed25519.PublicKey(k.Key), msg, sig), nil
	case CurveP256:
		var pub *ecdsa.PublicKey
		var err error
		if len(k.Key) == 65 {
			pub, err = ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k.Key)
		} else {
			pub, err = decompressP256(k.Key)
		}
		if err != nil {
			return false, fmt.Errorf("not a P-256 point: %v", err)
		}
		h := sha256.Sum256(msg)
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(pub, h[:], r, s), nil
	}
	return false, fmt.Errorf("unknown curve %q", k.Curve)
}
