// Package hsmtest is the contract test of [hsm.Signer]: every backend (the
// PKCS#11 backend on SoftHSM, ykcs11 on the virtual PIV card, the PIV
// backend) runs the same suite on its keys.
//
//	func TestContract(t *testing.T) {
//		s := openSomeSigner(t)
//		hsmtest.TestSigner(t, s, pin)
//	}
package hsmtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
)

// MessageSizes are the message lengths SignKERI is tested with: empty, one
// byte, a typical KERI event, and a large one that needs chained APDUs on
// PIV cards.
var MessageSizes = []int{0, 1, 487, 4096}

// TestSigner runs the contract suite on s. secrets are strings that must
// never appear in what s says about itself (its PIN, for instance).
func TestSigner(t *testing.T, s hsm.Signer, secrets ...string) {
	t.Helper()
	v, err := hsm.Verfer(s)
	if err != nil {
		t.Fatalf("hsm.Verfer: %v", err)
	}
	t.Run("Verfer", func(t *testing.T) { testVerfer(t, s, v) })
	t.Run("CryptoSigner", func(t *testing.T) { testCryptoSigner(t, s) })
	t.Run("SignKERI", func(t *testing.T) { testSignKERI(t, s, v) })
	t.Run("Cancelled", func(t *testing.T) { testCancelled(t, s) })
	t.Run("Describe", func(t *testing.T) { testDescribe(t, s, secrets) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, s, v) })
}

func testVerfer(t *testing.T, s hsm.Signer, v kel.Verfer) {
	if !v.Transferable() {
		t.Errorf("Verfer %s is not transferable", v.QB64())
	}
	back, err := kel.ParseVerfer(v.QB64())
	if err != nil {
		t.Fatalf("kel.ParseVerfer(%s): %v", v.QB64(), err)
	}
	if back.QB64() != v.QB64() || back.Algorithm() != v.Algorithm() {
		t.Errorf("round trip: %s (%v) became %s (%v)", v.QB64(), v.Algorithm(), back.QB64(), back.Algorithm())
	}
	pub, err := back.PublicKey()
	if err != nil {
		t.Fatalf("PublicKey of %s: %v", v.QB64(), err)
	}
	if eq, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(pub) {
		t.Errorf("public key from CESR %s differs from Public()", v.QB64())
	}
}

func testCryptoSigner(t *testing.T, s hsm.Signer) {
	msg := []byte("crypto.Signer contract message")
	switch pub := s.Public().(type) {
	case ed25519.PublicKey:
		sig, err := s.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			t.Fatalf("Sign (Ed25519, Hash(0)): %v", err)
		}
		if !ed25519.Verify(pub, msg, sig) {
			t.Errorf("Ed25519 signature does not verify")
		}
		if _, err := s.Sign(rand.Reader, msg, crypto.SHA256); err == nil {
			t.Errorf("Ed25519 Sign with SHA256 (prehashed Ed25519ph) succeeded; want an error")
		}
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(msg)
		sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("Sign (ECDSA, SHA256): %v", err)
		}
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			t.Errorf("ECDSA signature is not a valid DER signature of the digest")
		}
		if _, err := s.Sign(rand.Reader, digest[:16], crypto.SHA256); err == nil {
			t.Errorf("ECDSA Sign with a 16-byte digest succeeded; want an error")
		}
	default:
		t.Fatalf("Public() is %T; want ed25519.PublicKey or *ecdsa.PublicKey", pub)
	}
}

func message(n int, seed byte) []byte {
	m := make([]byte, n)
	for i := range m {
		m[i] = seed + byte(i*7)
	}
	return m
}

func testSignKERI(t *testing.T, s hsm.Signer, v kel.Verfer) {
	ctx := context.Background()
	for _, n := range MessageSizes {
		msg := message(n, byte(n))
		sig, err := s.SignKERI(ctx, msg)
		if err != nil {
			t.Fatalf("SignKERI(%d bytes): %v", n, err)
		}
		if len(sig) != kel.SignatureSize {
			t.Fatalf("SignKERI(%d bytes): %d-byte signature, want %d", n, len(sig), kel.SignatureSize)
		}
		if !v.Verify(msg, sig) {
			t.Errorf("SignKERI(%d bytes): signature does not verify with %s", n, v.QB64())
		}
		msg = append(msg, 'x')
		if v.Verify(msg, sig) {
			t.Errorf("SignKERI(%d bytes): signature also verifies for a longer message", n)
		}
	}
}

func testCancelled(t *testing.T, s hsm.Signer) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sig, err := s.SignKERI(ctx, []byte("never signed"))
	if err == nil {
		t.Fatalf("SignKERI with a cancelled context returned a signature (%d bytes)", len(sig))
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("SignKERI with a cancelled context: %v; want an error matching context.Canceled", err)
	}
}

func testDescribe(t *testing.T, s hsm.Signer, secrets []string) {
	d := hsm.Describe(s)
	if d == "" {
		t.Fatal("Describe is empty")
	}
	if strings.Contains(strings.ToLower(d), "pin-value") {
		t.Errorf("Describe %q mentions pin-value", d)
	}
	for _, sec := range secrets {
		if mentions(d, sec) {
			t.Errorf("Describe %q contains a secret", d)
		}
	}
}

// mentions reports whether sec occurs in d as a word of its own: an
// occurrence inside a longer run of letters and digits is part of something
// else. Test PINs are short digit strings ("1234"), and the random key ids
// and token serials a description rightly shows are hex: a 16-byte key id
// holds "1234" about once in 2,000 draws (29 places, 16^-4 each), often
// enough that CI met it; a leaked PIN is bounded by punctuation
// ("pin-value=1234&", "?1234", "(1234)").
func mentions(d, sec string) bool {
	if sec == "" {
		return false
	}
	for i := 0; ; {
		j := strings.Index(d[i:], sec)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(sec)
		if (start == 0 || !isWordByte(d[start-1])) && (end == len(d) || !isWordByte(d[end])) {
			return true
		}
		i = start + 1
	}
}

func isWordByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func testConcurrent(t *testing.T, s hsm.Signer, v kel.Verfer) {
	const goroutines, each = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := message(100+g*each+i, byte(g))
				sig, err := s.SignKERI(context.Background(), msg)
				if err != nil {
					errs <- err
					continue
				}
				if !v.Verify(msg, sig) {
					errs <- errors.New("concurrent signature does not verify")
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
