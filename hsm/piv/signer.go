package piv

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/go-piv/piv-go/v2/piv"
)

// touchCache is how long a YubiKey remembers a touch for keys with the
// "cached" touch policy.
const touchCache = 15 * time.Second

// Signer is a P-256 or Ed25519 key in a slot of a PIV card. It shares its
// card's lock with every other signer of that card. Its methods are safe
// for concurrent use.
type Signer struct {
	p     *Provider
	c     *card
	uri   hsm.PIVURI // serial filled in
	slot  piv.Slot
	info  KeyInfo
	conn  uint64 // the card connection info was last checked on
	epoch uint64 // the card's slotEpoch when info was read
}

var (
	_ hsm.Signer    = (*Signer)(nil)
	_ hsm.Describer = (*Signer)(nil)
	_ io.Closer     = (*Signer)(nil)
)

// Signer opens the key a piv: URI names:
//
//	piv:slot=9c                          the only card present, slot 9c
//	piv:serial=12345678;slot=9a          card 12345678, slot 9a
//	piv:serial=12345678;slot=82?pin-source=env:YK_PIN
//	piv:serial=12345678;slot=9c?pin-value=123456    (tests and scripts)
//
// Slots: 9a, 9c, 9d, 9e and the retired key-management slots 82–95. The
// PIN comes from pin-value or pin-source (file:PATH, a path, env:NAME; see
// hsm.PINSpec), else from the Provider's prompt; it is resolved only when
// the card asks for it and never kept. The key must be P-256 (any YubiKey
// 4/5) or Ed25519 (firmware 5.7+).
func (p *Provider) Signer(ctx context.Context, uri string) (*Signer, error) {
	u, err := hsm.ParsePIVURI(uri)
	if err != nil {
		return nil, err
	}
	return p.SignerURI(ctx, u)
}

// SignerURI is Signer for a parsed URI.
func (p *Provider) SignerURI(ctx context.Context, u hsm.PIVURI) (*Signer, error) {
	u, c, err := p.resolveURI(ctx, u)
	if err != nil {
		return nil, err
	}
	slot, err := pivSlot(u.Slot)
	if err != nil {
		return nil, hsm.NewURIError(u.String(), err)
	}
	s := &Signer{p: p, c: c, uri: u, slot: slot}
	err = c.do(ctx, func(yk *piv.YubiKey) error { return s.loadLocked(yk) })
	if err != nil {
		return nil, hsm.NewURIError(u.String(), err)
	}
	return s, nil
}

// loadLocked (re)reads the key's public key and policies.
func (s *Signer) loadLocked(yk *piv.YubiKey) error {
	info, err := slotInfo(yk, s.uri.Slot, false, false)
	if err != nil {
		return slotErr(s.uri.Slot, err)
	}
	switch info.Algorithm {
	case piv.AlgorithmEC256, piv.AlgorithmEd25519:
	default:
		return fmt.Errorf("%w: slot %02x holds a %s key; auths-agent signs with P-256 or Ed25519", hsm.ErrUnsupportedKey, s.uri.Slot, AlgorithmName(info.Algorithm))
	}
	if s.info.Public != nil {
		// A reopened card: info stays as it was (Public reads it without
		// the lock); the key must be the same.
		if !samePublic(s.info.Public, info.Public) {
			return fmt.Errorf("%w: %w: slot %02x now holds another key; open the key again", hsm.ErrNotFound, hsm.ErrKeyChanged, s.uri.Slot)
		}
		s.conn = s.c.conn
		return nil
	}
	s.info, s.conn, s.epoch = info, s.c.conn, s.c.slotEpoch[s.uri.Slot]
	return nil
}

func samePublic(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// Public returns the key's public key: *ecdsa.PublicKey or
// ed25519.PublicKey.
func (s *Signer) Public() crypto.PublicKey { return s.info.Public }

// Info returns what the card said about the key when it was opened.
func (s *Signer) Info() KeyInfo { return s.info }

// URI returns the key's URI with its serial and without pin-value.
func (s *Signer) URI() string { return s.uri.String() }

// Describe says where the key is, for people; never the PIN.
func (s *Signer) Describe() string {
	return fmt.Sprintf("%s slot %02x, %s (%s)", cardName(s.uri.Serial), s.uri.Slot, AlgorithmName(s.info.Algorithm), s.uri.String())
}

// Close releases nothing: the Provider owns the cards. It exists so that
// hsm.Close works on every signer.
func (s *Signer) Close() error { return nil }

// Sign implements crypto.Signer: for P-256 digest is a hash (opts names
// it) and the result is an ASN.1 DER signature; for Ed25519 digest is the
// whole message, opts.HashFunc() must be 0, and the result is 64 bytes.
func (s *Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, errors.New("piv: Sign: nil SignerOpts")
	}
	switch s.info.Algorithm {
	case piv.AlgorithmEd25519:
		if opts.HashFunc() != crypto.Hash(0) {
			return nil, fmt.Errorf("piv: Ed25519 signs whole messages (crypto.Hash(0)), not %v digests", opts.HashFunc())
		}
		if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
			return nil, errors.New("piv: Ed25519ctx is not supported")
		}
	default:
		h := opts.HashFunc()
		if h == crypto.Hash(0) || !h.Available() || len(digest) != h.Size() {
			return nil, fmt.Errorf("piv: ECDSA Sign wants a digest of the hash named in opts; got %d bytes for %v", len(digest), h)
		}
	}
	return s.sign(context.Background(), digest, opts)
}

// SignKERI returns the KERI signature of msg: for P-256 ECDSA over
// SHA-256(msg) as raw r‖s (32+32 bytes), for Ed25519 the 64-byte signature
// of msg. It waits for the card's lock, a PIN prompt and a touch; ctx is
// checked before and after the card works (piv-go calls cannot be
// interrupted).
func (s *Signer) SignKERI(ctx context.Context, msg []byte) ([]byte, error) {
	if s.info.Algorithm == piv.AlgorithmEd25519 {
		return s.sign(ctx, msg, crypto.Hash(0))
	}
	d := sha256.Sum256(msg)
	der, err := s.sign(ctx, d[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	raw, err := derToRaw(der, 32)
	if err != nil {
		return nil, hsm.NewURIError(s.uri.String(), cardErr(s.uri.Serial, err))
	}
	return raw, nil
}

func (s *Signer) sign(ctx context.Context, data []byte, opts crypto.SignerOpts) ([]byte, error) {
	var sig []byte
	a := &pinAttempt{spec: s.uri.PIN}
	err := s.c.do(ctx, func(yk *piv.YubiKey) (err error) {
		sig, err = s.signLocked(ctx, yk, data, opts, a)
		return err
	})
	if err != nil {
		return nil, hsm.NewURIError(s.uri.String(), err)
	}
	return sig, nil
}

// signLocked signs on the card's open connection; the card's lock is held.
func (s *Signer) signLocked(ctx context.Context, yk *piv.YubiKey, data []byte, opts crypto.SignerOpts, a *pinAttempt) ([]byte, error) {
	if s.epoch != s.c.slotEpoch[s.uri.Slot] {
		return nil, fmt.Errorf("%w: slot %02x was regenerated since this key was opened; open it again", hsm.ErrNotFound, s.uri.Slot)
	}
	if s.conn != s.c.conn {
		// The card was reopened: make sure the slot still holds our key.
		if err := s.loadLocked(yk); err != nil {
			return nil, err
		}
	}
	a.always = s.info.PINPolicy == piv.PINPolicyAlways
	auth := piv.KeyAuth{
		PINPolicy: s.info.PINPolicy,
		PINPrompt: func() (string, error) { return s.c.pinLocked(ctx, yk, a) },
	}
	if auth.PINPolicy == 0 {
		auth.PINPolicy = piv.PINPolicyAlways // what piv-go assumes when the card cannot say
		a.always = true
	}
	priv, err := yk.PrivateKey(s.slot, s.info.Public, auth)
	if err != nil {
		return nil, err
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: piv-go returned %T", hsm.ErrUnsupportedKey, priv)
	}
	touch := s.needsTouchLocked()
	if touch && auth.PINPolicy != piv.PINPolicyNever && (a.always || loginNeededLocked(yk)) {
		// piv-go asks for the PIN inside Sign, where the card then waits
		// for the touch: verify it first, so that the touch notice (and
		// the agent's touch timeout, which starts with it) neither shows
		// nor runs while a person types the PIN, and a wrong PIN is told
		// without one. Under policy always piv-go sends it once more,
		// from the attempt, without asking again.
		if err := s.c.verifyPINLocked(ctx, yk, a); err != nil {
			return nil, err
		}
	}
	if touch && s.p.opts.Touch != nil {
		s.p.opts.Touch(ctx, fmt.Sprintf("%s slot %02x", cardName(s.uri.Serial), s.uri.Slot))
	}
	sig, err := signer.Sign(rand.Reader, data, opts)
	if err = s.c.pinResultLocked(err, a); err != nil {
		switch {
		case contains(err, "6982") && touch && !errors.Is(err, hsm.ErrWrongPIN):
			// The PIN was verified (piv-go verifies it before signing),
			// so the refusal is the touch the card waited for in vain.
			err = fmt.Errorf("%w: the card stopped waiting for a touch: %v", hsm.ErrNoTouch, err)
		case contains(err, "6982") && !errors.Is(err, hsm.ErrWrongPIN):
			err = fmt.Errorf("the card refused to sign (no PIN verified, or no touch): %w", err)
		}
		return nil, err
	}
	if s.info.TouchPolicy == piv.TouchPolicyAlways || s.info.TouchPolicy == piv.TouchPolicyCached {
		s.c.lastTouch = time.Now()
	}
	return sig, nil
}

// loginNeededLocked reports whether the card asks for the PIN before a
// PIN-policy-once key signs: the status VERIFY (no PIN) answers with the
// tries left while no PIN is verified, and with success after.
func loginNeededLocked(yk *piv.YubiKey) bool {
	_, err := yk.Retries()
	return err == nil
}

// needsTouchLocked reports whether the card will wait for a touch.
func (s *Signer) needsTouchLocked() bool {
	switch s.info.TouchPolicy {
	case piv.TouchPolicyAlways:
		return true
	case piv.TouchPolicyCached:
		return s.c.lastTouch.IsZero() || time.Since(s.c.lastTouch) >= touchCache
	}
	return false
}

// derToRaw turns an ASN.1 DER ECDSA signature into r‖s, each left-padded
// to size bytes. It accepts only a well-formed SEQUENCE of two positive
// INTEGERs that fit, with nothing after it.
func derToRaw(der []byte, size int) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil {
		return nil, fmt.Errorf("card returned a malformed ECDSA signature: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("card returned a malformed ECDSA signature: %d bytes after it", len(rest))
	}
	if sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > size*8 || sig.S.BitLen() > size*8 {
		return nil, errors.New("card returned an ECDSA signature with r or s out of range")
	}
	raw := make([]byte, 2*size)
	sig.R.FillBytes(raw[:size])
	sig.S.FillBytes(raw[size:])
	return raw, nil
}

// checkPublic reports a public key auths-agent cannot sign with.
func checkPublic(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return nil
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize == 256 {
			return nil
		}
	}
	return fmt.Errorf("%w: %T", hsm.ErrUnsupportedKey, pub)
}
