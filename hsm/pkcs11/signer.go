package pkcs11

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync/atomic"

	p11 "github.com/miekg/pkcs11"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
)

// Signer is a private key on a PKCS#11 token. It is safe for concurrent
// use; concurrent signatures use separate sessions of the token's pool.
type Signer struct {
	t    *token
	uri  *hsm.PKCS11URI // as given (PIN spec kept for context-specific logins)
	name string         // URI without PIN, for errors
	info KeyInfo
	mech []*p11.Mechanism

	alwaysAuth bool
	handle     atomic.Pointer[handleGen]
	closed     atomic.Bool
}

type handleGen struct {
	gen uint64
	h   p11.ObjectHandle
}

var (
	_ hsm.Signer    = (*Signer)(nil)
	_ hsm.Describer = (*Signer)(nil)
	_ io.Closer     = (*Signer)(nil)
)

func elliptic256() elliptic.Curve { return elliptic.P256() }

// Signer returns the key u names (object= and/or id=) on the token u names.
// The token is logged in with u's PIN source if it is not already.
func (p *Provider) Signer(ctx context.Context, u *hsm.PKCS11URI) (*Signer, error) {
	if !u.HasKey() {
		return nil, hsm.NewURIError(u.String(), fmt.Errorf("%w: no key named: add object= (label) or id=", hsm.ErrBadURI))
	}
	var s *Signer
	err := p.withSession(ctx, u, func(t *token, sh p11.SessionHandle) error {
		k, err := t.findKey(sh, u)
		if err != nil {
			return err
		}
		s = &Signer{t: t, uri: u, name: u.String(), info: k.info, alwaysAuth: k.alwaysAuth}
		s.handle.Store(&handleGen{gen: t.gen.Load(), h: k.h})
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch s.info.Algorithm {
	case kel.Ed25519:
		s.mech = []*p11.Mechanism{p11.NewMechanism(ckmEdDSA, nil)}
	case kel.P256:
		s.mech = []*p11.Mechanism{p11.NewMechanism(p11.CKM_ECDSA, nil)}
	}
	return s, nil
}

// Info returns what the key is: label, id, algorithm, public key, URI.
func (s *Signer) Info() KeyInfo { return s.info }

// Public returns the public key: ed25519.PublicKey or *ecdsa.PublicKey.
func (s *Signer) Public() crypto.PublicKey { return s.info.Public }

// Describe names the token and key, never the PIN.
func (s *Signer) Describe() string {
	return fmt.Sprintf("%s, key %q (id %s, %v)", s.t.name, s.info.Label, hex.EncodeToString(s.info.ID), s.info.Algorithm)
}

// Close makes s unusable. The token's sessions belong to the provider and
// stay open for other signers.
func (s *Signer) Close() error {
	s.closed.Store(true)
	return nil
}

// Sign implements crypto.Signer: Ed25519 keys sign the whole message with
// opts.HashFunc() == 0; P-256 keys sign a SHA-256 digest and return an ASN.1
// DER signature.
func (s *Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	switch s.info.Algorithm {
	case kel.Ed25519:
		if opts.HashFunc() != 0 {
			return nil, hsm.NewURIError(s.name, fmt.Errorf("ed25519 key: want crypto.Hash(0) (pure Ed25519), got %v", opts.HashFunc()))
		}
		return s.sign(context.Background(), digest)
	case kel.P256:
		if opts.HashFunc() != crypto.SHA256 || len(digest) != sha256.Size {
			return nil, hsm.NewURIError(s.name, fmt.Errorf("p256 key: want a %d-byte SHA-256 digest, got %d bytes with %v", sha256.Size, len(digest), opts.HashFunc()))
		}
		raw, err := s.sign(context.Background(), digest)
		if err != nil {
			return nil, err
		}
		return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
	}
	return nil, hsm.NewURIError(s.name, hsm.ErrUnsupportedKey)
}

// SignKERI returns the KERI signature of msg: Ed25519 over msg, or P-256
// ECDSA over SHA-256(msg) as raw r‖s.
func (s *Signer) SignKERI(ctx context.Context, msg []byte) ([]byte, error) {
	if s.info.Algorithm == kel.P256 {
		h := sha256.Sum256(msg)
		msg = h[:]
	}
	return s.sign(ctx, msg)
}

// sign runs C_SignInit and C_Sign on a pooled session and returns the raw
// 64-byte signature.
func (s *Signer) sign(ctx context.Context, data []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, hsm.NewURIError(s.name, errors.New("signer closed"))
	}
	t := s.t
	if err := t.p.enter(); err != nil {
		return nil, hsm.NewURIError(s.name, err)
	}
	defer t.p.leave()
	sess, err := t.acquire(ctx, s.uri.PIN)
	if err != nil {
		return nil, hsm.NewURIError(s.name, err)
	}
	sig, discard, err := s.signOn(ctx, sess, data)
	if discard {
		t.discard(sess)
	} else {
		t.release(sess, err)
	}
	if err != nil {
		if isGone(err) {
			err = fmt.Errorf("%s: %w: %v", t.name, hsm.ErrTokenAbsent, err)
		}
		return nil, hsm.NewURIError(s.name, err)
	}
	if len(sig) != kel.SignatureSize {
		return nil, hsm.NewURIError(s.name, fmt.Errorf("%s: C_Sign returned %d bytes, want %d", t.name, len(sig), kel.SignatureSize))
	}
	return sig, nil
}

// signOn signs on sess. discard says the session is left in a state it
// should not be reused in (a signing operation that could not be ended).
func (s *Signer) signOn(ctx context.Context, sess session, data []byte) (sig []byte, discard bool, err error) {
	p := s.t.p
	hg := s.handle.Load()
	h := hg.h
	if hg.gen != sess.gen {
		// The token was reconnected: object handles died with the old sessions.
		k, err := s.t.findKey(sess.h, s.uri.WithKey(s.info.Label, s.info.ID))
		if err != nil {
			return nil, false, err
		}
		if k.info.Verfer.QB64() != s.info.Verfer.QB64() {
			return nil, false, fmt.Errorf("%w: %w: key %q on %s", hsm.ErrNotFound, hsm.ErrKeyChanged, s.info.Label, s.t.name)
		}
		h = k.h
		s.handle.Store(&handleGen{gen: sess.gen, h: h})
	}
	if err := p.ctx.SignInit(sess.h, s.mech, h); err != nil {
		return nil, false, fmt.Errorf("C_SignInit: %w", err)
	}
	if s.alwaysAuth {
		s.t.mu.Lock()
		err := s.t.loginLocked(ctx, sess.h, ckuContextSpecific, s.uri.PIN)
		s.t.mu.Unlock()
		if err != nil {
			// The pending signing operation cannot be ended portably: drop the session.
			return nil, true, err
		}
	}
	sig, err = p.ctx.Sign(sess.h, data)
	if err != nil {
		return nil, false, fmt.Errorf("C_Sign: %w", err)
	}
	return sig, false, nil
}
