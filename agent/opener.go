package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
)

// Opener opens the key a URI names. The agent calls it lazily, through the
// token's queue, and again after the key's token went away.
type Opener interface {
	Open(ctx context.Context, uri string) (hsm.Signer, error)
}

// TokenOpener opens keys with the hsm backends: one PKCS#11 provider per
// module (a module loads once per process) and one PIV provider for every
// card. Its zero value is not usable; build it with NewTokenOpener and
// Close it when the agent stops.
type TokenOpener struct {
	opts TokenOptions

	refused *hsm.RefusedPINs // shared by every provider, for the agent's life

	mu     sync.Mutex
	pkcs11 map[string]*pkcs11.Provider
	piv    *piv.Provider
	closed bool
}

// TokenOptions are what the providers reach in the outside world.
type TokenOptions struct {
	Getenv func(string) string // env: PIN sources; nil means os.Getenv
	Prompt hsm.PINPrompt       // asks for a PIN when a URI names no source; nil: none
	Touch  piv.TouchNotifier   // told before a card waits for a touch; nil: none
	Logger *slog.Logger        // nil discards
}

var _ Opener = (*TokenOpener)(nil)

// NewTokenOpener returns an opener that has loaded nothing yet.
func NewTokenOpener(opts TokenOptions) *TokenOpener {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &TokenOpener{opts: opts, refused: hsm.NewRefusedPINs(), pkcs11: map[string]*pkcs11.Provider{}}
}

// Open opens the key uri names.
func (o *TokenOpener) Open(ctx context.Context, uri string) (hsm.Signer, error) {
	switch {
	case strings.HasPrefix(uri, "pkcs11:"):
		u, err := hsm.ParsePKCS11URI(uri)
		if err != nil {
			return nil, err
		}
		p, err := o.module(u)
		if err != nil {
			return nil, err
		}
		return p.Signer(ctx, u)
	case strings.HasPrefix(uri, "piv:"):
		p, err := o.pivProvider()
		if err != nil {
			return nil, err
		}
		return p.Signer(ctx, uri)
	}
	return nil, hsm.NewURIError(uri, fmt.Errorf("%w: not a key URI (want pkcs11: or piv:)", hsm.ErrBadURI))
}

// PublicKey reads the public key of the key uri names without a PIN: the
// PKCS#11 public key object (object= and id= as in uri), or the PIV
// slot's public key.
func (o *TokenOpener) PublicKey(ctx context.Context, uri string) (string, error) {
	switch {
	case strings.HasPrefix(uri, "pkcs11:"):
		u, err := hsm.ParsePKCS11URI(uri)
		if err != nil {
			return "", err
		}
		p, err := o.module(u)
		if err != nil {
			return "", err
		}
		keys, err := p.ListPublic(ctx, u)
		if err != nil {
			return "", err
		}
		if len(keys) != 1 || keys[0].Algorithm == 0 {
			return "", hsm.NewURIError(u.String(), fmt.Errorf("%w: %d public key objects readable without the PIN", hsm.ErrNotFound, len(keys)))
		}
		return keys[0].Verfer.QB64(), nil
	case strings.HasPrefix(uri, "piv:"):
		u, err := hsm.ParsePIVURI(uri)
		if err != nil {
			return "", err
		}
		p, err := o.pivProvider()
		if err != nil {
			return "", err
		}
		info, err := p.KeyURI(ctx, u, false)
		if err != nil {
			return "", err
		}
		v, err := kel.VerferFromPublicKey(info.Public)
		if err != nil {
			return "", hsm.NewURIError(u.String(), err)
		}
		return v.QB64(), nil
	}
	return "", hsm.NewURIError(uri, fmt.Errorf("%w: not a key URI (want pkcs11: or piv:)", hsm.ErrBadURI))
}

var errClosed = errors.New("agent is stopping")

func (o *TokenOpener) module(u *hsm.PKCS11URI) (*pkcs11.Provider, error) {
	if u.ModulePath == "" {
		return nil, hsm.NewURIError(u.String(), fmt.Errorf("%w: no module-path (add ?module-path=/path/to/module.so)", hsm.ErrBadURI))
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, errClosed
	}
	if p, ok := o.pkcs11[u.ModulePath]; ok {
		return p, nil
	}
	p, err := pkcs11.Open(u.ModulePath, pkcs11.Options{Getenv: o.opts.Getenv, Prompt: o.opts.Prompt, Logger: o.opts.Logger, RefusedPINs: o.refused})
	if err != nil {
		return nil, hsm.NewURIError(u.String(), err)
	}
	o.pkcs11[u.ModulePath] = p
	return p, nil
}

func (o *TokenOpener) pivProvider() (*piv.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, errClosed
	}
	if o.piv == nil {
		o.piv = piv.NewProvider(piv.Options{Getenv: o.opts.Getenv, Prompt: o.opts.Prompt, Touch: o.touch, Logger: o.opts.Logger, RefusedPINs: o.refused})
	}
	return o.piv, nil
}

// touch is the cards' touch notifier: the agent's touch timeout starts,
// and TokenOptions.Touch tells the person.
func (o *TokenOpener) touch(ctx context.Context, what string) {
	TouchWaits(ctx, what)
	if o.opts.Touch != nil {
		o.opts.Touch(ctx, what)
	}
}

// Close closes every provider; signers handed out fail afterwards.
func (o *TokenOpener) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	var errs []error
	for _, p := range o.pkcs11 {
		errs = append(errs, p.Close())
	}
	if o.piv != nil {
		errs = append(errs, o.piv.Close())
	}
	return errors.Join(errs...)
}

// Reset closes every provider, which ends every token session and login
// (the agent was locked, or got SIGHUP); keys open again on their next use.
// What the tokens refused is kept: a refused PIN is never sent again for
// the agent's whole life.
func (o *TokenOpener) Reset() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	var errs []error
	for m, p := range o.pkcs11 {
		errs = append(errs, p.Close())
		delete(o.pkcs11, m)
	}
	if o.piv != nil {
		errs = append(errs, o.piv.Close())
		o.piv = nil
	}
	return errors.Join(errs...)
}

// TokenOf names the token a key URI is on, for scheduling: keys with the
// same name share one queue. It needs no device: a PKCS#11 token is named
// by module and label or serial, a PIV card by serial.
func TokenOf(uri string) (string, error) {
	switch {
	case strings.HasPrefix(uri, "pkcs11:"):
		u, err := hsm.ParsePKCS11URI(uri)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("pkcs11 %s token=%q serial=%q", u.ModulePath, u.Token, u.Serial), nil
	case strings.HasPrefix(uri, "piv:"):
		u, err := hsm.ParsePIVURI(uri)
		if err != nil {
			return "", err
		}
		if !u.HasSerial {
			return "piv card", nil
		}
		return fmt.Sprintf("piv card %d", u.Serial), nil
	}
	return "", hsm.NewURIError(uri, fmt.Errorf("%w: not a key URI (want pkcs11: or piv:)", hsm.ErrBadURI))
}
