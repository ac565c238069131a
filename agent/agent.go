package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// Options are what the agent reaches in the outside world.
type Options struct {
	// Opener opens keys (required): a *TokenOpener in the daemon.
	Opener Opener
	// Registry is the registry events are checked against and anchors
	// written to; nil when the config names none.
	Registry *registry.Registry
	// RegistryDir is Registry's directory, so that next-keys can check
	// that a client means the same registry; empty: not checked.
	RegistryDir string
	// Logger receives one record per request outcome; nil discards.
	Logger *slog.Logger
	// Audit records every signature and refusal; nil records nothing.
	Audit AuditSink
	// Clock reads the time (anchor creation and expiry); nil is time.Now.
	Clock func() time.Time
	// PINRefused is told when a token refused a PIN (token as named in
	// hsm.WrongPINError, tries left or -1), so that a PIN cache drops it
	// and the next prompt says so; nil: nobody is told.
	PINRefused func(token string, triesLeft int)
	// RemoteAuth gives the credentials of a git remote's URL (remote.go);
	// nil: go-git's defaults.
	RemoteAuth RemoteAuth
	// TouchTimeout bounds the wait for a touch on a PIV card, from the
	// moment the card starts waiting (TouchWaits); 0 means
	// DefaultTouchTimeout, a negative value no bound but the request's.
	TouchTimeout time.Duration
}

// AuditSink records what the agent signed or refused, for the audit trail.
// An error from Record stops the signature from being returned.
type AuditSink interface {
	Record(ctx context.Context, r AuditRecord) error
}

// AuditWriter is an AuditSink that can write a record at once and make it
// durable later. The agent writes the record of a signature before it asks
// the token, calls durable in another goroutine while the token signs, and
// returns the signature only once durable returned nil: the flush of the
// file (the larger part of a signature's cost on most disks) overlaps the
// token's work instead of adding to it.
type AuditWriter interface {
	AuditSink
	Write(ctx context.Context, r AuditRecord) (durable func() error, err error)
}

// AuditRecord is one signature or refusal.
type AuditRecord struct {
	Time   time.Time
	Peer   Peer
	Op     string // "ssh-sign", "sign-event", "anchor"
	Key    string // redacted URI or CESR key
	Prefix string // KERI: identity
	Type   string // KERI: event type
	Sn     uint64
	SAID   string
	What   string // SSH: "userauth" or "sshsig:NAMESPACE"
	// Fingerprint is the SSH key's SHA256 fingerprint.
	Fingerprint string
	// HostKey is the SHA256 fingerprint of the server host key a
	// user-authentication request's session is bound to (WithSSHHost).
	HostKey string
	Refused string // the reason, for a refusal
	// Failed is the error of a signature recorded before its token was
	// asked and not made, or made and not handed out (the token failed,
	// the client left): the record of what did not happen after all.
	Failed string
}

// Peer is the process at the other end of a request.
type Peer struct {
	UID int
	PID int
}

type peerKey struct{}

// WithPeer returns ctx carrying the peer of the request it serves.
func WithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerOf returns the peer WithPeer stored, or a zero Peer with PID -1.
func PeerOf(ctx context.Context) Peer {
	if p, ok := ctx.Value(peerKey{}).(Peer); ok {
		return p
	}
	return Peer{UID: -1, PID: -1}
}

// Agent holds keys and answers requests. Its methods are safe for
// concurrent use.
type Agent struct {
	opener Opener
	reg    *registry.Registry
	log    *slog.Logger
	audit  AuditSink
	clock  func() time.Time
	refuse func(token string, triesLeft int)
	// remoteAuth gives git remotes' credentials (remote.go).
	remoteAuth RemoteAuth
	sched      *scheduler
	regDir     string

	keysMu sync.RWMutex
	keys   []*key // the config's keys, then next keys (idkeys.go); only appended to
	disc   discovery

	idMu sync.Mutex
	ids  map[string]*identity // turns and signed events per identity (turns.go)

	statesMu sync.Mutex
	states   map[string]heldState // key states read from the registry (states.go)
	head     registry.HeadStamp   // the registry ref as last read (states.go)
}

// held returns the keys held now.
func (a *Agent) held() []*key {
	a.keysMu.RLock()
	defer a.keysMu.RUnlock()
	return a.keys[:len(a.keys):len(a.keys)]
}

// key is one held key. Its signer is opened on first use and dropped when
// its token went away.
type key struct {
	spec  KeySpec
	uri   string // redacted, for people and logs
	token string
	// nextOf is, for a next key the agent made or found (idkeys.go), the
	// redacted URI of the key it sits beside.
	nextOf string

	mu     sync.Mutex
	signer hsm.Signer
	verfer kel.Verfer // known once opened
	opened bool
	// sshPub and sshBlob are verfer as an SSH public key and its wire
	// form, made on first use (ssh.go); nil again when verfer is set.
	sshPub  ssh.PublicKey
	sshBlob []byte
	// tokenPub is the CESR public key read from the token without a
	// PIN (discover), to tell a key found there from this one; empty
	// until read.
	tokenPub string
}

// New returns an agent holding the keys of cfg. Nothing is opened yet.
func New(cfg Config, opts Options) (*Agent, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if opts.Opener == nil {
		return nil, errors.New("agent: no Opener")
	}
	a := &Agent{
		opener: opts.Opener, reg: opts.Registry, log: opts.Logger, audit: opts.Audit,
		clock: opts.Clock, refuse: opts.PINRefused, remoteAuth: opts.RemoteAuth, ids: map[string]*identity{},
		regDir: opts.RegistryDir,
		states: map[string]heldState{},
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if opts.TouchTimeout == 0 {
		opts.TouchTimeout = DefaultTouchTimeout
	}
	a.sched = newScheduler(a.log, opts.TouchTimeout)
	if a.clock == nil {
		a.clock = time.Now
	}
	for _, s := range cfg.Keys {
		tok, err := TokenOf(s.URI)
		if err != nil {
			return nil, err
		}
		a.keys = append(a.keys, &key{spec: s, uri: hsm.RedactURI(s.URI), token: tok})
	}
	return a, nil
}

// Close closes the signers the agent opened (not the Opener).
func (a *Agent) Close() error {
	var errs []error
	for _, k := range a.held() {
		k.mu.Lock()
		if k.signer != nil {
			errs = append(errs, hsm.Close(k.signer))
			k.signer = nil
		}
		k.mu.Unlock()
	}
	return errors.Join(errs...)
}

// DropSessions closes every key's signer and, when the opener can, every
// token session, so that the next signature logs in again (with a PIN
// prompt where the URI names no PIN source). For lock and SIGHUP. A
// signature under way when it is called may fail.
func (a *Agent) DropSessions() error {
	errs := []error{a.Close()}
	if r, ok := a.opener.(interface{ Reset() error }); ok {
		errs = append(errs, r.Reset())
	}
	a.log.Info("token sessions closed")
	return errors.Join(errs...)
}

// OpenAll opens every key now, so that the first request does not wait
// for logins. Keys that fail are logged and opened again on first use.
func (a *Agent) OpenAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, k := range a.held() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.open(ctx, k); err != nil {
				a.log.Warn("key not available yet", "key", k.uri, "err", err)
			}
		}()
	}
	wg.Wait()
}

// open returns k's signer, opening it on its token's queue if needed.
func (a *Agent) open(ctx context.Context, k *key) (hsm.Signer, error) {
	k.mu.Lock()
	if s := k.signer; s != nil {
		k.mu.Unlock()
		return s, nil
	}
	k.mu.Unlock()
	s, err := onToken(ctx, a.sched, k.token, func(ctx context.Context) (hsm.Signer, error) {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.signer != nil {
			return k.signer, nil
		}
		s, err := a.opener.Open(ctx, k.spec.URI)
		if err != nil {
			a.pinRefused(err) // opening logs in: the PIN may be refused here
			return nil, err
		}
		v, err := hsm.Verfer(s)
		if err != nil {
			hsm.Close(s)
			return nil, fmt.Errorf("%s: %w", k.uri, err)
		}
		if k.opened && v.QB64() != k.verfer.QB64() {
			a.log.Warn("key changed on its token", "key", k.uri, "was", k.verfer.QB64(), "now", v.QB64())
		}
		k.signer, k.verfer, k.opened = s, v, true
		k.sshPub, k.sshBlob = nil, nil
		a.log.Info("key opened", "key", k.uri, "public", v.QB64())
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// failed reports a refused PIN, and drops k's signer after an error that
// says its token went away, so the next request opens it again.
func (a *Agent) failed(k *key, s hsm.Signer, err error) {
	a.pinRefused(err)
	if !errors.Is(err, hsm.ErrTokenAbsent) && !errors.Is(err, hsm.ErrKeyChanged) {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.signer == s {
		hsm.Close(s)
		k.signer = nil
		a.log.Warn("token gone; the key opens again on the next request", "key", k.uri)
	}
}

// pinRefused tells Options.PINRefused when err is a token's refusal of a
// PIN.
func (a *Agent) pinRefused(err error) {
	var we *hsm.WrongPINError
	if errors.As(err, &we) && a.refuse != nil {
		a.refuse(we.Token, we.TriesLeft)
	}
}

// verferOf returns k's public key, opening k if it never was.
func (a *Agent) verferOf(ctx context.Context, k *key) (kel.Verfer, error) {
	k.mu.Lock()
	if k.opened {
		v := k.verfer
		k.mu.Unlock()
		return v, nil
	}
	k.mu.Unlock()
	if _, err := a.open(ctx, k); err != nil {
		return kel.Verfer{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.verfer, nil
}

// openAs opens k and checks that its token still holds want, the public
// key the request was checked against: a card swapped for another, or a
// key replaced at k's URI, between the check and the signature signs
// nothing (a *RefusedError wrapping ErrKeyChanged).
func (a *Agent) openAs(ctx context.Context, op string, k *key, want kel.Verfer) (hsm.Signer, error) {
	s, err := a.open(ctx, k)
	if err != nil {
		return nil, err
	}
	// open read s's public key into k.verfer; another request may have
	// opened k again since, so only while k still holds s.
	k.mu.Lock()
	v, same := k.verfer, k.signer == s
	k.mu.Unlock()
	if !same {
		if v, err = hsm.Verfer(s); err != nil {
			return nil, fmt.Errorf("%s: %w", k.uri, err)
		}
	}
	if v.Code != want.Code || !bytes.Equal(v.Raw, want.Raw) {
		return nil, refuse(op, ErrKeyChanged, "the token now holds key %s, not %s, which the request was checked against", v.QB64(), want.QB64())
	}
	return s, nil
}

// keyChanged turns a backend's hsm.ErrKeyChanged (the key changed while
// its signer was open, found when the backend reached the token again)
// into the refusal openAs gives; other errors are returned as they are.
func keyChanged(op string, err error) error {
	if errors.Is(err, hsm.ErrKeyChanged) {
		return refuse(op, ErrKeyChanged, "%v", err)
	}
	return err
}

// signKERI signs msg with sk's key on its token's queue, for request op.
func (a *Agent) signKERI(ctx context.Context, op string, sk signingKey, msg []byte) ([]byte, error) {
	k := sk.k
	s, err := a.openAs(ctx, op, k, sk.verfer)
	if err != nil {
		return nil, err
	}
	sig, err := onToken(ctx, a.sched, k.token, func(ctx context.Context) ([]byte, error) {
		return s.SignKERI(ctx, msg)
	})
	if err != nil {
		a.failed(k, s, err)
		return nil, keyChanged(op, err)
	}
	return sig, nil
}
