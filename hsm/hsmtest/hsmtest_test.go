package hsmtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"math/big"
	"testing"
)

// softSigner is an in-memory reference implementation of hsm.Signer, used
// only to check the contract suite itself.
type softSigner struct{ crypto.Signer }

func (s softSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, ok := s.Signer.(ed25519.PrivateKey); ok && opts.HashFunc() != 0 {
		return nil, errors.New("ed25519: want crypto.Hash(0)")
	}
	if _, ok := s.Signer.(*ecdsa.PrivateKey); ok && len(digest) != 32 {
		return nil, errors.New("ecdsa: want a SHA-256 digest")
	}
	return s.Signer.Sign(r, digest, opts)
}

func (s softSigner) SignKERI(ctx context.Context, msg []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch k := s.Signer.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(k, msg), nil
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(msg)
		der, err := ecdsa.SignASN1(rand.Reader, k, h[:])
		if err != nil {
			return nil, err
		}
		return derToRaw(der)
	}
	return nil, errors.New("unsupported")
}

func derToRaw(der []byte) ([]byte, error) {
	// Minimal: re-sign path uses the big-int form instead.
	var r, s big.Int
	i := 2
	if der[1]&0x80 != 0 {
		i++
	}
	rl := int(der[i+1])
	r.SetBytes(der[i+2 : i+2+rl])
	i += 2 + rl
	sl := int(der[i+1])
	s.SetBytes(der[i+2 : i+2+sl])
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

func TestSoftSigners(t *testing.T) {
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	eck, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	t.Run("ed25519", func(t *testing.T) { TestSigner(t, softSigner{edk}) })
	t.Run("p256", func(t *testing.T) { TestSigner(t, softSigner{eck}) })
}

// TestMentions is the regression test of a CI failure: the PKCS#11 contract
// test flagged the key id 2be16465fc12346bb5d2ea872d10a25b as containing the
// SoftHSM test PIN 1234.
func TestMentions(t *testing.T) {
	const pin = "1234"
	for _, c := range []struct {
		d    string
		want bool
	}{
		{`token "ci-2" (serial 67fce497ac123cc9), key "k" (id 2be16465fc12346bb5d2ea872d10a25b, ed25519)`, false},
		{"serial 12345678", false},
		{"x1234", false},
		{"pkcs11:token=ci?pin-value=1234", true},
		{"pkcs11:token=ci?pin-value=1234&module-path=/x", true},
		{"piv:slot=9c?1234", true},
		{"(1234)", true},
		{"1234", true},
		{"a12345 then 1234.", true},
		{"", false},
	} {
		if got := mentions(c.d, pin); got != c.want {
			t.Errorf("mentions(%q, %q) = %v, want %v", c.d, pin, got, c.want)
		}
	}
	if mentions("anything", "") {
		t.Error("the empty secret is mentioned everywhere")
	}
}
