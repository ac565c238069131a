// Package attesttest makes auths device attestations signed by real device
// keys, for tests and the demo: a device key (Ed25519, derived from a seed
// so fixtures are reproducible) signs the attestation's canonical data as
// auths' device does, and the document comes out in auths' stored form or
// in its legacy form (compact, bare-hex key, "+00:00" offset).
package attesttest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/auths-dev/auths-agent/kel"
)

// Device is a device key.
type Device struct {
	Priv ed25519.PrivateKey
	DID  string // did:key:z… of the key
}

// NewDevice derives a device key from seed.
func NewDevice(seed string) *Device {
	s := sha256.Sum256([]byte("attesttest device " + seed))
	priv := ed25519.NewKeyFromSeed(s[:])
	return &Device{Priv: priv, DID: DIDKey(priv.Public().(ed25519.PublicKey))}
}

// FromKey wraps an existing Ed25519 key.
func FromKey(priv ed25519.PrivateKey) *Device {
	return &Device{Priv: priv, DID: DIDKey(priv.Public().(ed25519.PublicKey))}
}

// DIDKey is the did:key of an Ed25519 key: multicodec 0xed01, base58btc.
func DIDKey(pub ed25519.PublicKey) string {
	return "did:key:z" + base58(append([]byte{0xed, 0x01}, pub...))
}

const b58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func base58(b []byte) string {
	n := new(big.Int).SetBytes(b)
	var out []byte
	mod, base := new(big.Int), big.NewInt(58)
	for n.Sign() > 0 {
		n.DivMod(n, base, mod)
		out = append(out, b58[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

// Attestation returns an attestation of subject issued by the KERI
// identity issuerPrefix, with the device key and signature of d, made at
// ts. A revocation (revoked true) sets revoked_at to ts.
func (d *Device) Attestation(issuerPrefix, subject, rid string, ts time.Time, revoked bool) *kel.Attestation {
	ts = ts.UTC()
	a := &kel.Attestation{
		Version: 2, RID: rid, Issuer: "did:keri:" + issuerPrefix, Subject: subject,
		DeviceKey: kel.DeviceKey{Curve: kel.CurveEd25519, Key: d.Priv.Public().(ed25519.PublicKey)},
		Timestamp: &ts,
	}
	if revoked {
		a.RevokedAt = &ts
	}
	d.Sign(a)
	return a
}

// Sign sets a's device signature.
func (d *Device) Sign(a *kel.Attestation) {
	msg, err := a.CanonicalData()
	if err != nil {
		panic(err) // only a payload that cannot be canonicalized, never set here
	}
	a.DeviceSignature = ed25519.Sign(d.Priv, msg)
}

// Doc is the stored (pretty) form of an attestation of subject, the device
// key derived from subject.
func Doc(issuerPrefix, subject, rid string) []byte {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return NewDevice(subject).Attestation(issuerPrefix, subject, rid, ts, false).Pretty()
}

// Legacy writes a in auths' legacy form: compact, the device key as bare
// hex, times with a "+00:00" offset, the DID method upper-cased.
func Legacy(a *kel.Attestation) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"version":%d,"rid":%q,"issuer":%q,"subject":%q,"device_public_key":%q,"device_signature":%q`,
		a.Version, a.RID, strings.Replace(a.Issuer, "did:keri:", "did:KERI:", 1), a.Subject,
		hex.EncodeToString(a.DeviceKey.Key), hex.EncodeToString(a.DeviceSignature))
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"revoked_at", a.RevokedAt}, {"timestamp", a.Timestamp}} {
		if f.t != nil {
			fmt.Fprintf(&b, `,%q:%q`, f.name, f.t.UTC().Format("2006-01-02T15:04:05.999999999")+"+00:00")
		}
	}
	b.WriteString("}")
	return []byte(b.String())
}
