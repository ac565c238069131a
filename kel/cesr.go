package kel

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"

	"github.com/zeebo/blake3"
)

// CESR codes of the primitives this package knows.
const (
	CodeEd25519    = "D"    // Ed25519 public key, transferable
	CodeEd25519N   = "B"    // Ed25519 public key, non-transferable
	CodeP256       = "1AAJ" // ECDSA P-256 public key (SEC1 compressed), transferable
	CodeP256N      = "1AAI" // ECDSA P-256 public key, non-transferable
	CodeBlake3_256 = "E"    // Blake3-256 digest
)

// Algorithm is a signature scheme a controller key uses.
type Algorithm int

// The signature schemes of KERI controller keys supported here.
const (
	Ed25519 Algorithm = iota + 1
	P256
)

func (a Algorithm) String() string {
	switch a {
	case Ed25519:
		return "ed25519"
	case P256:
		return "p256"
	}
	return fmt.Sprintf("Algorithm(%d)", int(a))
}

// SignatureSize is the size of a raw KERI signature for both algorithms:
// Ed25519, or P-256 as r‖s.
const SignatureSize = 64

var b64 = base64.RawURLEncoding

// encodeMatter returns the qb64 text of raw bytes under code, for the two
// layouts used here: a one-character code over 32 bytes (one lead byte of
// padding) and a four-character code over 33 bytes (no padding).
func encodeMatter(code string, raw []byte) string {
	switch len(code) {
	case 1:
		buf := make([]byte, 1+len(raw))
		copy(buf[1:], raw)
		s := b64.EncodeToString(buf)
		return code + s[1:]
	default:
		return code + b64.EncodeToString(raw)
	}
}

// decodeMatter decodes qb64 text of a primitive whose code has length
// codeLen and whose raw part has rawLen bytes.
func decodeMatter(what, qb64 string, codeLen, rawLen int) ([]byte, error) {
	if codeLen == 1 {
		want := (rawLen + 1) * 4 / 3
		if len(qb64) != want {
			return nil, fmt.Errorf("%s %q: length %d, want %d", what, clip(qb64), len(qb64), want)
		}
		if err := checkB64(qb64[1:], 1); err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, clip(qb64), err)
		}
		buf, err := b64.DecodeString("A" + qb64[1:])
		if err != nil {
			return nil, fmt.Errorf("%s %q: bad base64: %w", what, clip(qb64), err)
		}
		if buf[0] != 0 {
			return nil, fmt.Errorf("%s %q: non-zero pad bits", what, clip(qb64))
		}
		return buf[1:], nil
	}
	want := codeLen + rawLen*4/3
	if len(qb64) != want {
		return nil, fmt.Errorf("%s %q: length %d, want %d", what, clip(qb64), len(qb64), want)
	}
	if err := checkB64(qb64[codeLen:], codeLen); err != nil {
		return nil, fmt.Errorf("%s %q: %w", what, clip(qb64), err)
	}
	raw, err := b64.DecodeString(qb64[codeLen:])
	if err != nil {
		return nil, fmt.Errorf("%s %q: bad base64: %w", what, clip(qb64), err)
	}
	return raw, nil
}

// checkB64 refuses any character outside the base64url alphabet. Go's
// decoder skips CR and LF, which would shorten the decoded bytes while the
// text keeps the expected length.
// base is the position of s in the text the error message quotes.
func checkB64(s string, base int) error {
	for i := 0; i < len(s); i++ {
		if b64val(s[i]) < 0 {
			return fmt.Errorf("bad base64 character %q at position %d", s[i], base+i)
		}
	}
	return nil
}

// clip shortens text quoted in an error message.
func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// Verfer is a controller's public key in CESR form.
type Verfer struct {
	Code string // CodeEd25519, CodeEd25519N, CodeP256 or CodeP256N
	Raw  []byte // 32 bytes (Ed25519) or 33 bytes (P-256, SEC1 compressed)
}

// ParseVerfer decodes a qb64 public key.
func ParseVerfer(qb64 string) (Verfer, error) {
	switch {
	case len(qb64) == 0:
		return Verfer{}, fmt.Errorf("public key: empty")
	case qb64[0] == 'D' || qb64[0] == 'B':
		raw, err := decodeMatter("public key", qb64, 1, ed25519.PublicKeySize)
		if err != nil {
			return Verfer{}, err
		}
		return Verfer{Code: qb64[:1], Raw: raw}, nil
	case len(qb64) >= 4 && (qb64[:4] == CodeP256 || qb64[:4] == CodeP256N):
		raw, err := decodeMatter("public key", qb64, 4, 33)
		if err != nil {
			return Verfer{}, err
		}
		if _, err := decompressP256(raw); err != nil {
			return Verfer{}, fmt.Errorf("public key %q: %w", clip(qb64), err)
		}
		return Verfer{Code: qb64[:4], Raw: raw}, nil
	}
	return Verfer{}, fmt.Errorf("public key %q: unsupported code (want D, B, 1AAJ or 1AAI)", clip(qb64))
}

// VerferFromPublicKey returns the transferable CESR form of an Ed25519 or
// P-256 public key.
func VerferFromPublicKey(pub crypto.PublicKey) (Verfer, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return Verfer{}, fmt.Errorf("ed25519 public key: %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return Verfer{Code: CodeEd25519, Raw: append([]byte(nil), k...)}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return Verfer{}, fmt.Errorf("ecdsa public key on %s: only P-256 is supported", k.Curve.Params().Name)
		}
		return Verfer{Code: CodeP256, Raw: elliptic.MarshalCompressed(k.Curve, k.X, k.Y)}, nil
	}
	return Verfer{}, fmt.Errorf("public key of type %T: want Ed25519 or ECDSA P-256", pub)
}

// QB64 returns the CESR text form.
func (v Verfer) QB64() string { return encodeMatter(v.Code, v.Raw) }

func (v Verfer) String() string { return v.QB64() }

// Algorithm returns the signature scheme of the key.
func (v Verfer) Algorithm() Algorithm {
	switch v.Code {
	case CodeEd25519, CodeEd25519N:
		return Ed25519
	case CodeP256, CodeP256N:
		return P256
	}
	return 0
}

// Transferable reports whether the key may be rotated (D, 1AAJ).
func (v Verfer) Transferable() bool { return v.Code == CodeEd25519 || v.Code == CodeP256 }

// PublicKey returns the key as a Go crypto public key.
func (v Verfer) PublicKey() (crypto.PublicKey, error) {
	switch v.Algorithm() {
	case Ed25519:
		if len(v.Raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ed25519 public key: %d bytes", len(v.Raw))
		}
		return ed25519.PublicKey(append([]byte(nil), v.Raw...)), nil
	case P256:
		return decompressP256(v.Raw)
	}
	return nil, fmt.Errorf("public key code %q: unsupported", v.Code)
}

// Verify reports whether sig is a valid KERI signature of msg by this key:
// Ed25519 over msg, or P-256 ECDSA over SHA-256(msg) as raw r‖s (high S
// accepted).
func (v Verfer) Verify(msg, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	switch v.Algorithm() {
	case Ed25519:
		if len(v.Raw) != ed25519.PublicKeySize {
			return false
		}
		return ed25519.Verify(ed25519.PublicKey(v.Raw), msg, sig)
	case P256:
		pub, err := decompressP256(v.Raw)
		if err != nil {
			return false
		}
		h := sha256.Sum256(msg)
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(pub, h[:], r, s)
	}
	return false
}

func decompressP256(raw []byte) (*ecdsa.PublicKey, error) {
	if len(raw) != 33 || (raw[0] != 2 && raw[0] != 3) {
		return nil, fmt.Errorf("not a compressed P-256 point")
	}
	x, y := elliptic.UnmarshalCompressed(elliptic.P256(), raw)
	if x == nil {
		return nil, fmt.Errorf("not a point on P-256")
	}
	return &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}, nil
}

// Digest returns the Blake3-256 digest of data in qb64 (code E).
func Digest(data []byte) string {
	sum := blake3.Sum256(data)
	return encodeMatter(CodeBlake3_256, sum[:])
}

// ParseDigest checks that qb64 is a Blake3-256 digest and returns its raw bytes.
func ParseDigest(qb64 string) ([]byte, error) {
	if len(qb64) == 0 || qb64[0] != 'E' {
		return nil, fmt.Errorf("digest %q: unsupported code (want E, Blake3-256)", clip(qb64))
	}
	return decodeMatter("digest", qb64, 1, 32)
}

// NextKeyDigest is the commitment to a next key: the Blake3-256 digest of the
// key's qb64 text.
func NextKeyDigest(keyQB64 string) string { return Digest([]byte(keyQB64)) }
