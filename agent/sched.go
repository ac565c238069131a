package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/auths-dev/auths-agent/hsm"
)

// DefaultTouchTimeout is how long the agent waits for a touch when
// Options.TouchTimeout is zero. A YubiKey gives up by itself after about
// 15 s; the agent's bound is for cards that do not.
const DefaultTouchTimeout = 30 * time.Second

// scheduler gives each token one queue: one operation at a time per token,
// different tokens in parallel, so a slow touch on one card never holds up
// another token.
type scheduler struct {
	log          *slog.Logger
	touchTimeout time.Duration

	mu     sync.Mutex
	tokens map[string]*queue
}

// queue is one token's queue.
type queue struct {
	sem chan struct{} // a one-slot semaphore: held while the device works

	mu sync.Mutex
	// stuck is set while a device call whose request gave up waiting for
	// a touch still holds sem (piv-go cannot take a call back): requests
	// for the token are answered with it instead of queuing behind a
	// touch that may never come.
	stuck *BusyError
	// abandoned is closed when a call is abandoned, waking the requests
	// queued for sem; a fresh one replaces it when the call ends.
	abandoned chan struct{}
}

func newScheduler(log *slog.Logger, touchTimeout time.Duration) *scheduler {
	return &scheduler{log: log, touchTimeout: touchTimeout, tokens: map[string]*queue{}}
}

func (s *scheduler) queue(token string) *queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.tokens[token]
	if !ok {
		q = &queue{sem: make(chan struct{}, 1), abandoned: make(chan struct{})}
		s.tokens[token] = q
	}
	return q
}

// state returns the token's busy error, if a call was abandoned on it, and
// the channel closed at the next abandonment.
func (q *queue) state() (*BusyError, chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stuck, q.abandoned
}

// acquire takes the token's slot, or says why not.
func (q *queue) acquire(ctx context.Context, token string) error {
	for {
		stuck, abandoned := q.state()
		if stuck != nil {
			return stuck
		}
		select {
		case q.sem <- struct{}{}:
			return nil
		case <-abandoned: // look again: the token is stuck now
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", token, context.Cause(ctx))
		}
	}
}

// abandon leaves a device call that still holds the slot: until done
// delivers, requests for the token get a BusyError naming what waits (when
// a touch does; otherwise they queue as usual). The call's result is
// discarded, never returned to anyone.
func abandon[T any](s *scheduler, q *queue, what string, done <-chan result[T]) {
	if what != "" {
		q.mu.Lock()
		q.stuck = &BusyError{Token: what, Since: time.Now()}
		close(q.abandoned)
		q.mu.Unlock()
	}
	go func() {
		r := <-done
		if what != "" {
			q.mu.Lock()
			q.stuck, q.abandoned = nil, make(chan struct{})
			q.mu.Unlock()
		}
		<-q.sem
		s.log.Info("a device call whose request gave up has ended; its result is discarded", "token", what, "err", r.err)
	}()
}

type result[T any] struct {
	v   T
	err error
}

// touchCapable says whether a token may wait for a touch (a PIV card; see
// TokenOf), so that its calls run under the touch timeout.
func touchCapable(token string) bool { return strings.HasPrefix(token, "piv card") }

type touchHookKey struct{}

// TouchWaits tells the agent that the device call running with ctx is
// about to wait for a touch on what ("PIV card 12345678 slot 9c"): the
// touch timeout starts. Openers call it where the card's touch notifier
// is called; TokenOpener does so for PIV cards. Outside a device call of
// the agent it does nothing.
func TouchWaits(ctx context.Context, what string) {
	if f, ok := ctx.Value(touchHookKey{}).(func(string)); ok {
		f(what)
	}
}

// onToken runs f on token when the token is free. Waiters are served in
// the order they arrived (Go queues blocked channel senders in order). A
// caller whose ctx ends while it waits leaves the queue at once, and so
// does one whose token is stuck on an abandoned call (a *BusyError).
//
// Once f has started it runs to the end on the device (a PKCS#11 or PIV
// call cannot be taken back). On a PKCS#11 token it runs in the caller's
// goroutine, whose client is the only one waiting for it; if ctx ended
// meanwhile the result is dropped (a goroutine of its own would let the
// caller return sooner, but costs a scheduling hop on every signature).
// On a PIV card, which may wait for a touch, f runs in a goroutine of its
// own so that the caller can give up: when ctx ends, or when the touch
// f announced through TouchWaits does not come within the touch timeout
// (a *TouchTimeoutError). The call then keeps the token until it ends.
func onToken[T any](ctx context.Context, s *scheduler, token string, f func(context.Context) (T, error)) (T, error) {
	var zero T
	q := s.queue(token)
	if err := q.acquire(ctx, token); err != nil {
		return zero, err
	}
	if err := ctx.Err(); err != nil {
		<-q.sem
		return zero, fmt.Errorf("waiting for %s: %w", token, context.Cause(ctx))
	}
	if !touchCapable(token) || s.touchTimeout <= 0 {
		defer func() { <-q.sem }()
		v, err := f(ctx)
		if ctx.Err() != nil {
			return zero, fmt.Errorf("on %s: %w", token, context.Cause(ctx))
		}
		return v, err
	}
	touched := make(chan string, 1)
	dctx := context.WithValue(ctx, touchHookKey{}, func(what string) {
		select {
		case touched <- what:
		default:
		}
	})
	done := make(chan result[T], 1)
	go func() {
		v, err := f(dctx)
		done <- result[T]{v, err}
	}()
	var timeout <-chan time.Time
	var what string
	var waitFrom time.Time
	for {
		select {
		case r := <-done:
			<-q.sem
			if ctx.Err() != nil {
				return zero, fmt.Errorf("on %s: %w", token, context.Cause(ctx))
			}
			if what != "" && errors.Is(r.err, hsm.ErrNoTouch) {
				// The card gave up before the agent did.
				return zero, &TouchTimeoutError{Token: what, After: waited(time.Since(waitFrom)), ByCard: true}
			}
			return r.v, r.err
		case what = <-touched:
			waitFrom = time.Now()
			t := time.NewTimer(s.touchTimeout)
			defer t.Stop()
			timeout = t.C
		case <-timeout:
			abandon(s, q, what, done)
			return zero, &TouchTimeoutError{Token: what, After: s.touchTimeout}
		case <-ctx.Done():
			abandon(s, q, what, done)
			return zero, fmt.Errorf("on %s: %w", token, context.Cause(ctx))
		}
	}
}

// waited rounds how long a card waited for a touch, for people: whole
// seconds, or tenths below one.
func waited(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
