package piv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/go-piv/piv-go/v2/piv"
)

// TouchNotifier is told that the card is about to wait for a touch (the
// key's touch policy asks for one); what names the card and slot. The agent
// turns it into a "touch your YubiKey" prompt. It must not block for long:
// the card waits for the touch, not for the notifier.
type TouchNotifier func(ctx context.Context, what string)

// Options are what a Provider reaches in the outside world. Every field may
// be left zero.
type Options struct {
	// Logger receives debug records (card opened, closed, panics recovered);
	// nil discards them. PINs are never logged.
	Logger *slog.Logger
	// Prompt asks for a PIN when a URI names no PIN source; nil means no
	// prompt (hsm.ErrNoPIN).
	Prompt hsm.PINPrompt
	// Touch is called before a signature that needs a touch; nil means no
	// notice.
	Touch TouchNotifier
	// Getenv reads env: PIN and management-key sources; nil means os.Getenv.
	Getenv func(string) string
	// RefusedPINs remembers the PINs cards refused, by card serial, for
	// as long as it lives (across reconnects and Providers); nil means one
	// of the Provider's own.
	RefusedPINs *hsm.RefusedPINs
}

// Provider owns the PIV cards this process uses. Build one in main (or
// TestMain), pass it down, and Close it at the end. A card, once opened, is
// held exclusively (other programs get a sharing violation) until the
// Provider closes or the card goes away.
//
// All use of one card is serialized by that card's lock, which the signers
// handed out for it share; different cards work in parallel. Every
// operation first makes sure its card is connected: it opens the card by
// serial on first use, and after a transport error (card removed, reset,
// pcscd restarted) it closes the handle so the next call opens it again.
// A call whose old handle went stale because the card was re-inserted is
// retried once on a fresh handle.
//
// piv-go calls cannot be cancelled: a context is checked before a card is
// locked, while waiting for the lock, and after the card answered.
type Provider struct {
	opts    Options
	log     *slog.Logger
	refused *hsm.RefusedPINs // outlives every connection to a card

	mu     sync.Mutex // guards the fields below; taken after a card lock, never before
	cards  map[uint32]*card
	held   map[string]uint32 // reader → serial of a card we hold open there
	spare  map[uint32]spareConn
	closed bool
}

// spareConn is a card opened while looking for another one (or for the
// only one), kept for its first use.
type spareConn struct {
	yk     *piv.YubiKey
	reader string
}

// NewProvider returns a Provider that has opened nothing yet.
func NewProvider(opts Options) *Provider {
	p := &Provider{
		opts:  opts,
		log:   opts.Logger,
		cards: map[uint32]*card{},
		held:  map[string]uint32{},
		spare: map[uint32]spareConn{},
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.refused = opts.RefusedPINs; p.refused == nil {
		p.refused = hsm.NewRefusedPINs()
	}
	return p
}

// Close closes every card the Provider holds. Signers handed out fail
// afterwards.
func (p *Provider) Close() error {
	p.mu.Lock()
	p.closed = true
	cards := make([]*card, 0, len(p.cards))
	for _, c := range p.cards {
		cards = append(cards, c)
	}
	for s, sp := range p.spare {
		guard(sp.yk.Close)
		delete(p.spare, s)
	}
	p.mu.Unlock()
	var errs []error
	for _, c := range cards {
		select {
		case c.lock <- struct{}{}:
		default:
			// A call holds the card, perhaps waiting for a touch that
			// never comes: Close does not wait for it. The call closes
			// the card's handle when it ends (do), so its login does not
			// outlive Close.
			c.closeWhenFree.Store(true)
			if !c.tryLock() {
				continue
			}
		}
		if c.yk != nil {
			if err := c.dropLocked(); err != nil {
				errs = append(errs, cardErr(c.serial, err))
			}
		}
		<-c.lock
	}
	return errors.Join(errs...)
}

// tryLock takes the card's lock if it is free, after closeWhenFree was set
// (the call that held it may have ended and missed the flag).
func (c *card) tryLock() bool {
	select {
	case c.lock <- struct{}{}:
		return true
	default:
		return false
	}
}

// card is one physical card, by serial. Fields after lock are guarded by it.
type card struct {
	p      *Provider
	serial uint32
	lock   chan struct{} // a mutex whose waiters can give up when their ctx ends
	// closeWhenFree: the provider was closed while a call held the card;
	// that call drops the handle when it ends.
	closeWhenFree atomic.Bool

	yk        *piv.YubiKey
	reader    string
	conn      uint64 // counts opens, so signers notice a reopened card
	blocked   bool
	lastTouch time.Time
	slotEpoch map[uint8]uint64 // bumped when this process regenerates a slot
}

func (p *Provider) card(serial uint32) (*card, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("PIV provider is closed")
	}
	c := p.cards[serial]
	if c == nil {
		c = &card{p: p, serial: serial, lock: make(chan struct{}, 1), slotEpoch: map[uint8]uint64{}}
		p.cards[serial] = c
	}
	return c, nil
}

// do runs f on the card's connection, holding the card's lock. It is the
// one place that makes sure the card is connected, turns panics and
// transport errors into errors naming the card, and drops a dead handle.
//
// The health check is the operation itself: a status probe (GET SERIAL)
// before every call would add a third APDU to the two of a signature. A
// handle that turns out stale (card removed and re-inserted, or reset) is
// replaced and f runs once more on the new one; f must be safe to repeat
// (it may ask for a touch again, never for a PIN again: see pinAttempt).
func (c *card) do(ctx context.Context, f func(yk *piv.YubiKey) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() {
		if c.closeWhenFree.Load() {
			c.dropLocked()
		}
		<-c.lock
	}()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		fresh := c.yk == nil
		if err := c.connectLocked(); err != nil {
			return err
		}
		err := guard(func() error { return f(c.yk) })
		if err == nil {
			return ctx.Err()
		}
		var pe *panicError
		switch {
		case errors.As(err, &pe):
			c.p.log.Warn("piv: recovered a panic in piv-go", "card", c.serial, "panic", pe.Error(), "stack", string(pe.stack))
			c.dropLocked()
		case isTransport(err):
			c.p.log.Debug("piv: card connection lost", "card", c.serial, "err", err)
			c.dropLocked()
			if !fresh && attempt == 0 && isStale(err) {
				continue
			}
		}
		return explain(c.serial, err)
	}
}

// connectLocked opens the card if it is not open: by its last reader
// first, then by trying the readers no card of ours holds.
func (c *card) connectLocked() error {
	if c.yk != nil {
		return nil
	}
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return cardErr(c.serial, errors.New("PIV provider is closed"))
	}
	if sp, ok := p.spare[c.serial]; ok {
		delete(p.spare, c.serial)
		c.adoptLocked(sp.yk, sp.reader)
		return nil
	}
	var readers []string
	err := guard(func() (err error) { readers, err = piv.Cards(); return err })
	if err != nil {
		return explain(c.serial, err)
	}
	sort.SliceStable(readers, func(i, j int) bool { return readers[i] == c.reader && readers[j] != c.reader })
	var notes []string
	for _, r := range readers {
		if _, ok := p.held[r]; ok {
			continue
		}
		yk, serial, err := openReader(r)
		if err != nil {
			if isNoService(err) {
				return explain(c.serial, err)
			}
			if n := readerNote(r, err); n != "" {
				notes = append(notes, n)
			}
			continue
		}
		if serial == c.serial {
			c.adoptLocked(yk, r)
			return nil
		}
		guard(yk.Close)
	}
	msg := fmt.Sprintf("not found in %d reader(s): insert it, or check the serial", len(readers))
	if len(readers) == 0 {
		msg = "no smart card reader found: plug in the YubiKey (or start the virtual card rig)"
	}
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	return cardErr(c.serial, fmt.Errorf("%w: %s", hsm.ErrTokenAbsent, msg))
}

func (c *card) adoptLocked(yk *piv.YubiKey, reader string) {
	c.yk, c.reader = yk, reader
	c.conn++
	// A reopened card is the same card (same serial): the PINs it refused
	// stay refused (c.p.refused). Whether the PIN is blocked is asked anew:
	// it may have been unblocked elsewhere meanwhile.
	c.blocked = false
	c.p.held[reader] = c.serial
	c.p.log.Debug("piv: card opened", "card", c.serial, "reader", reader, "version", versionString(yk.Version()))
}

// dropLocked closes the card's handle; the next call opens it again.
func (c *card) dropLocked() error {
	if c.yk == nil {
		return nil
	}
	err := guard(c.yk.Close)
	c.yk = nil
	c.p.mu.Lock()
	if c.p.held[c.reader] == c.serial {
		delete(c.p.held, c.reader)
	}
	c.p.mu.Unlock()
	return err
}

// openReader opens the card in reader r and reads its serial.
func openReader(r string) (*piv.YubiKey, uint32, error) {
	var yk *piv.YubiKey
	if err := guard(func() (err error) { yk, err = piv.Open(r); return err }); err != nil {
		return nil, 0, err
	}
	var serial uint32
	if err := guard(func() (err error) { serial, err = yk.Serial(); return err }); err != nil {
		guard(yk.Close)
		return nil, 0, fmt.Errorf("reading serial: %w", err)
	}
	return yk, serial, nil
}

// readerNote says, for people, why a reader did not yield a usable card;
// empty for an empty reader.
func readerNote(reader string, err error) string {
	switch {
	case contains(err, msgNoCard):
		return ""
	case contains(err, msgNotYubiKey):
		return fmt.Sprintf("reader %q holds a card that is not a YubiKey (it answers only SELECT)", reader)
	case contains(err, msgSharing):
		return fmt.Sprintf("reader %q is in use by another program (stop scdaemon or the other agent)", reader)
	}
	return fmt.Sprintf("reader %q: %v", reader, err)
}

// onlySerial finds the serial of the only YubiKey present, for URIs
// without serial=. The card it opened is kept for its first use.
func (p *Provider) onlySerial(ctx context.Context) (uint32, error) {
	found, notes, err := p.scan(ctx)
	if err != nil {
		return 0, err
	}
	if len(found) != 1 {
		p.closeSpares()
	}
	switch len(found) {
	case 1:
		return found[0].serial, nil
	case 0:
		msg := "no YubiKey found: insert one"
		if len(notes) > 0 {
			msg += " (" + strings.Join(notes, "; ") + ")"
		}
		return 0, fmt.Errorf("%w: %s", hsm.ErrNotFound, msg)
	}
	var s []string
	for _, f := range found {
		s = append(s, fmt.Sprint(f.serial))
	}
	return 0, fmt.Errorf("%w: %d YubiKeys present (%s): add serial= to the URI", hsm.ErrAmbiguous, len(found), strings.Join(s, ", "))
}

type found struct {
	serial uint32
	reader string
}

// scan lists the YubiKeys present: the ones we hold, and those in the
// other readers (opened, and kept as spares for their first use). notes say
// why other readers gave nothing.
func (p *Provider) scan(ctx context.Context) ([]found, []string, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, nil, errors.New("PIV provider is closed")
	}
	var readers []string
	err := guard(func() (err error) { readers, err = piv.Cards(); return err })
	if err != nil {
		if isNoService(err) {
			return nil, nil, fmt.Errorf("%w (start pcscd): %w", ErrNoPCSCD, err)
		}
		return nil, nil, fmt.Errorf("listing smart card readers: %w", err)
	}
	if len(readers) == 0 {
		return nil, []string{"no smart card reader found"}, nil
	}
	var out []found
	var notes []string
	for _, r := range readers {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if s, ok := p.held[r]; ok {
			out = append(out, found{s, r})
			continue
		}
		if sp, ok := p.spareByReader(r); ok {
			out = append(out, found{sp, r})
			continue
		}
		yk, serial, err := openReader(r)
		if err != nil {
			if isNoService(err) {
				return nil, nil, fmt.Errorf("%w (start pcscd): %w", ErrNoPCSCD, err)
			}
			if n := readerNote(r, err); n != "" {
				notes = append(notes, n)
			}
			continue
		}
		if old, ok := p.spare[serial]; ok {
			guard(old.yk.Close)
		}
		p.spare[serial] = spareConn{yk, r}
		out = append(out, found{serial, r})
	}
	if len(readers) > 0 && len(out) == 0 && len(notes) == 0 {
		notes = append(notes, fmt.Sprintf("%d reader(s), all empty", len(readers)))
	}
	return out, notes, nil
}

// closeSpares closes the cards a scan opened and nobody used.
func (p *Provider) closeSpares() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s, sp := range p.spare {
		guard(sp.yk.Close)
		delete(p.spare, s)
	}
}

func (p *Provider) spareByReader(r string) (uint32, bool) {
	for s, sp := range p.spare {
		if sp.reader == r {
			return s, true
		}
	}
	return 0, false
}

func versionString(v piv.Version) string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

func atLeast(v piv.Version, major, minor int) bool {
	if v.Major != major {
		return v.Major > major
	}
	return v.Minor >= minor
}
