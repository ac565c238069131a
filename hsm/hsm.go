// Package hsm defines how auths-agent reaches controller keys that live on
// hardware tokens, and names them with URIs.
//
// A backend (hsm/pkcs11 for PKCS#11 modules such as SoftHSM, HSMs and
// ykcs11; hsm/piv for YubiKeys over PIV) hands out [Signer] values. A Signer
// is a crypto.Signer, so the same key can answer SSH requests, plus
// [Signer.SignKERI], the signature a KERI controller puts on an event.
// Everything else a key can do (describe itself, close, report touch) is an
// optional interface discovered by type assertion.
//
// Private keys never leave their token; PINs never appear in errors, logs or
// URIs printed by [RedactURI].
package hsm

import (
	"context"
	"crypto"
	"fmt"
	"io"

	"github.com/auths-dev/auths-agent/kel"
)

// Signer is a controller key on a token.
//
// Sign follows crypto.Signer: ECDSA keys take a SHA-256 digest and return an
// ASN.1 DER signature; Ed25519 keys take the whole message with
// crypto.Hash(0).
//
// SignKERI returns the KERI signature of msg: Ed25519 over msg, or for P-256
// ECDSA over SHA-256(msg) as raw r‖s (64 bytes). It may wait on a device (a
// PIN prompt, a touch) and stops waiting when ctx is done.
type Signer interface {
	crypto.Signer
	SignKERI(ctx context.Context, msg []byte) ([]byte, error)
}

// Describer is implemented by signers that can say, for people, where the key
// is (token label or card serial, key label, id or slot). It never includes a
// PIN.
type Describer interface {
	Describe() string
}

// Verfer returns the CESR public key of s (D… for Ed25519, 1AAJ… for P-256).
func Verfer(s Signer) (kel.Verfer, error) {
	return kel.VerferFromPublicKey(s.Public())
}

// Describe returns a description of s for people.
func Describe(s Signer) string {
	if d, ok := s.(Describer); ok {
		return d.Describe()
	}
	if v, err := Verfer(s); err == nil {
		return "key " + v.QB64()
	}
	return fmt.Sprintf("%T", s)
}

// Close releases what s holds, if it holds anything.
func Close(s Signer) error {
	if c, ok := s.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
