package agent

import (
	"context"
	"fmt"
	"sync"
)

// scheduler gives each token one queue: one operation at a time per token,
// different tokens in parallel, so a slow touch on one card never holds up
// another token.
type scheduler struct {
	mu     sync.Mutex
	tokens map[string]chan struct{} // a one-slot semaphore per token
}

func newScheduler() *scheduler { return &scheduler{tokens: map[string]chan struct{}{}} }

func (s *scheduler) slot(token string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.tokens[token]
	if !ok {
		c = make(chan struct{}, 1)
		s.tokens[token] = c
	}
	return c
}

// onToken runs f on token when the token is free. Waiters are served in
// the order they arrived (Go queues blocked channel senders in order). A
// caller whose ctx ends while it waits leaves the queue at once. Once f has
// started it runs to the end on the device (a PKCS#11 or PIV call cannot
// be taken back) in the caller's goroutine, whose client is the only one
// waiting for it; if ctx ended meanwhile the result is dropped. (Running f
// in a goroutine of its own would let the caller return sooner, but costs
// a scheduling hop on every signature.)
func onToken[T any](ctx context.Context, s *scheduler, token string, f func(context.Context) (T, error)) (T, error) {
	var zero T
	sem := s.slot(token)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return zero, fmt.Errorf("waiting for %s: %w", token, context.Cause(ctx))
	}
	defer func() { <-sem }()
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("waiting for %s: %w", token, context.Cause(ctx))
	}
	v, err := f(ctx)
	if ctx.Err() != nil {
		return zero, fmt.Errorf("on %s: %w", token, context.Cause(ctx))
	}
	return v, err
}
