// Package pins keeps the PINs people typed, per token, for the agent: a
// PIN is asked once (through pinentry), used for the token's later
// signatures for a configurable time or until the agent is locked, and
// dropped as soon as the token refuses it.
//
// The cache never decides that a PIN is wrong: the token does, and the
// agent reports it with [Cache.Reject] (from the backend's
// hsm.WrongPINError). The next prompt for that token then says that the
// previous PIN was refused and how many tries are left. A refused PIN
// typed again is stopped below, by hsm.RefusedPINs, before it reaches the
// token; so the person is asked, never the card retried.
//
// PINs are held in memory only, and never logged.
package pins

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/auths-dev/auths-agent/agent/pinentry"
)

// Asker asks a person for a PIN: a *pinentry.Prompter's GetPIN.
type Asker func(ctx context.Context, r pinentry.Request) (string, error)

// Options configure a Cache.
type Options struct {
	// Ask asks for a PIN (required).
	Ask Asker
	// TTL is how long a PIN is kept after it was typed; 0 means until
	// Forget (the agent's lock, SIGHUP, shutdown).
	TTL time.Duration
	// Clock reads the time; nil means time.Now.
	Clock func() time.Time
}

// Cache holds PINs by token name (the "what" of hsm.PINPrompt, which is
// also the Token of hsm.WrongPINError). Safe for concurrent use.
type Cache struct {
	opts Options

	mu     sync.Mutex
	tokens map[string]*token
	gen    uint64 // bumped by Forget: a prompt under way then is not cached

	locked  bool
	lockKey [32]byte
	lockMAC []byte // HMAC-SHA256 of the lock passphrase under lockKey
}

type token struct {
	ask sync.Mutex // one prompt at a time per token

	// Guarded by Cache.mu.
	pin       string
	have      bool
	at        time.Time
	refused   bool // the last PIN was refused: say so in the next prompt
	triesLeft int  // as the token last said; -1 unknown
}

// New returns an empty cache.
func New(opts Options) (*Cache, error) {
	if opts.Ask == nil {
		return nil, errors.New("pins: no Ask")
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Cache{opts: opts, tokens: map[string]*token{}}, nil
}

func (c *Cache) token(what string) *token {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tokens[what]
	if !ok {
		t = &token{triesLeft: -1}
		c.tokens[what] = t
	}
	return t
}

// Prompt returns the PIN of the token what names: the cached one while it
// is valid, else the one a person types (then cached). Its shape is
// hsm.PINPrompt's. Concurrent calls for one token share one prompt.
func (c *Cache) Prompt(ctx context.Context, what string) (string, error) {
	t := c.token(what)
	t.ask.Lock()
	defer t.ask.Unlock()

	c.mu.Lock()
	if c.locked {
		c.mu.Unlock()
		return "", ErrLocked
	}
	if t.have && (c.opts.TTL <= 0 || c.opts.Clock().Sub(t.at) < c.opts.TTL) {
		pin := t.pin
		c.mu.Unlock()
		return pin, nil
	}
	t.pin, t.have = "", false
	req := pinentry.Request{Token: what, TriesLeft: t.triesLeft, Refused: t.refused}
	gen := c.gen
	c.mu.Unlock()

	pin, err := c.opts.Ask(ctx, req)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen { // not locked or forgotten meanwhile
		t.pin, t.have, t.at = pin, true, c.opts.Clock()
	}
	return pin, nil
}

// Reject drops the PIN of the token that refused it; triesLeft is what the
// token said (-1 unknown). The next prompt for it says so.
func (c *Cache) Reject(what string, triesLeft int) {
	t := c.token(what)
	c.mu.Lock()
	defer c.mu.Unlock()
	t.pin, t.have = "", false
	t.refused, t.triesLeft = true, triesLeft
}

// Accepted notes that the token took its PIN: the next prompt (after a
// lock or the TTL) no longer mentions a refusal.
func (c *Cache) Accepted(what string) {
	t := c.token(what)
	c.mu.Lock()
	defer c.mu.Unlock()
	t.refused, t.triesLeft = false, -1
}

// Forget drops every PIN (the agent was locked, or got SIGHUP). What the
// tokens refused is kept: that is about the tokens, not the session.
func (c *Cache) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgetLocked()
}

func (c *Cache) forgetLocked() {
	c.gen++
	for _, t := range c.tokens {
		t.pin, t.have = "", false
	}
}
