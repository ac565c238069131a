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
// caller whose ctx ends leaves the queue at once; if f already started it
// runs to the end on the device (a PKCS#11 or PIV call cannot be taken
// back), keeps the token busy until then, and its result is dropped.
func onToken[T any](ctx context.Context, s *scheduler, token string, f func(context.Context) (T, error)) (T, error) {
	var zero T
	sem := s.slot(token)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return zero, fmt.Errorf("waiting for %s: %w", token, context.Cause(ctx))
	}
	if err := ctx.Err(); err != nil {
		<-sem
		return zero, fmt.Errorf("waiting for %s: %w", token, context.Cause(ctx))
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-sem }()
		v, err := f(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, fmt.Errorf("on %s: %w", token, context.Cause(ctx))
	}
}
