package pins

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/agent/pinentry"
)

// person answers prompts from a list and records what each prompt said.
type person struct {
	mu      sync.Mutex
	answers []string
	asked   []pinentry.Request
}

func (p *person) ask(_ context.Context, r pinentry.Request) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, r)
	if len(p.answers) == 0 {
		return "", pinentry.ErrCancelled
	}
	a := p.answers[0]
	p.answers = p.answers[1:]
	return a, nil
}

func TestCacheUntilForget(t *testing.T) {
	p := &person{answers: []string{"111111", "222222", "333333"}}
	c, err := New(Options{Ask: p.ask})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if pin, err := c.Prompt(ctx, "YubiKey 1"); err != nil || pin != "111111" {
			t.Fatalf("Prompt = %q, %v", pin, err)
		}
	}
	if pin, _ := c.Prompt(ctx, "YubiKey 2"); pin != "222222" {
		t.Errorf("another token got %q", pin)
	}
	c.Forget()
	if pin, _ := c.Prompt(ctx, "YubiKey 1"); pin != "333333" {
		t.Errorf("after Forget: %q, want a new prompt", pin)
	}
	if len(p.asked) != 3 {
		t.Errorf("asked %d times, want 3", len(p.asked))
	}
	if r := p.asked[0]; r.Token != "YubiKey 1" || r.Refused || r.TriesLeft != -1 {
		t.Errorf("first prompt %+v", r)
	}
}

func TestCacheTTL(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := &person{answers: []string{"111111", "222222"}}
	c, _ := New(Options{Ask: p.ask, TTL: time.Minute, Clock: func() time.Time { return now }})
	ctx := context.Background()
	c.Prompt(ctx, "t")
	now = now.Add(59 * time.Second)
	if pin, _ := c.Prompt(ctx, "t"); pin != "111111" {
		t.Errorf("within the TTL: %q", pin)
	}
	now = now.Add(time.Second)
	if pin, _ := c.Prompt(ctx, "t"); pin != "222222" {
		t.Errorf("after the TTL: %q, want a new prompt", pin)
	}
}

// TestRejectSaysSo: after the token refused the PIN, the next prompt says
// so with the tries left; after a PIN was accepted, it no longer does.
func TestRejectSaysSo(t *testing.T) {
	p := &person{answers: []string{"000000", "123456", "654321"}}
	c, _ := New(Options{Ask: p.ask})
	ctx := context.Background()
	c.Prompt(ctx, "YubiKey 9")
	c.Reject("YubiKey 9", 2)
	if pin, _ := c.Prompt(ctx, "YubiKey 9"); pin != "123456" {
		t.Errorf("after Reject: %q, want a new prompt", pin)
	}
	if r := p.asked[1]; !r.Refused || r.TriesLeft != 2 || r.Token != "YubiKey 9" {
		t.Errorf("prompt after a refusal: %+v", r)
	}
	if want := "The previous PIN was refused.\nEnter the PIN of YubiKey 9.\n2 tries left."; p.asked[1].Description() != want {
		t.Errorf("description %q", p.asked[1].Description())
	}
	c.Accepted("YubiKey 9")
	c.Forget()
	c.Prompt(ctx, "YubiKey 9")
	if r := p.asked[2]; r.Refused || r.TriesLeft != -1 {
		t.Errorf("prompt after an accepted PIN: %+v", r)
	}
}

// TestOnePromptPerToken: concurrent requests for one token wait for one
// prompt; a prompt that fails is not cached.
func TestOnePromptPerToken(t *testing.T) {
	var n atomic.Int32
	release := make(chan struct{})
	c, _ := New(Options{Ask: func(ctx context.Context, r pinentry.Request) (string, error) {
		n.Add(1)
		<-release
		return "424242", nil
	}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if pin, err := c.Prompt(context.Background(), "t"); pin != "424242" || err != nil {
				t.Errorf("%q %v", pin, err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n.Load() != 1 {
		t.Errorf("%d prompts, want 1", n.Load())
	}

	p := &person{}
	c2, _ := New(Options{Ask: p.ask})
	if _, err := c2.Prompt(context.Background(), "t"); !errors.Is(err, pinentry.ErrCancelled) {
		t.Errorf("cancelled prompt: %v", err)
	}
	p.answers = []string{"1"}
	if pin, _ := c2.Prompt(context.Background(), "t"); pin != "1" {
		t.Errorf("after a cancelled prompt: %q", pin)
	}
}

// TestForgetDuringPrompt: a lock while a prompt is open keeps its answer
// out of the cache (the request that asked still gets it).
func TestForgetDuringPrompt(t *testing.T) {
	var c *Cache
	calls := 0
	c, _ = New(Options{Ask: func(ctx context.Context, r pinentry.Request) (string, error) {
		calls++
		if calls == 1 {
			c.Forget()
		}
		return "777777", nil
	}})
	c.Prompt(context.Background(), "t")
	c.Prompt(context.Background(), "t")
	if calls != 2 {
		t.Errorf("%d prompts, want 2 (the first answer came after a lock)", calls)
	}
}

func TestNeedsAsk(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("no error without Ask")
	}
}

// TestLockUnlock: a lock forgets the PINs and refuses prompts; only the
// same passphrase unlocks; then the person is asked again.
func TestLockUnlock(t *testing.T) {
	p := &person{answers: []string{"111111", "222222"}}
	c, _ := New(Options{Ask: p.ask})
	ctx := context.Background()
	c.Prompt(ctx, "t")
	if err := c.Unlock([]byte("x")); !errors.Is(err, ErrNotLocked) {
		t.Errorf("Unlock when not locked: %v", err)
	}
	if err := c.Lock([]byte("correct horse")); err != nil {
		t.Fatal(err)
	}
	if err := c.Lock([]byte("again")); err == nil {
		t.Error("locked twice")
	}
	if !c.Locked() {
		t.Error("not Locked")
	}
	if _, err := c.Prompt(ctx, "t"); !errors.Is(err, ErrLocked) {
		t.Errorf("Prompt while locked: %v", err)
	}
	if err := c.Unlock([]byte("wrong")); !errors.Is(err, ErrPassphrase) {
		t.Errorf("Unlock with the wrong passphrase: %v", err)
	}
	if err := c.Unlock([]byte("correct horse")); err != nil {
		t.Fatal(err)
	}
	if pin, err := c.Prompt(ctx, "t"); pin != "222222" || err != nil {
		t.Errorf("after unlock: %q %v, want a new prompt", pin, err)
	}
	if len(p.asked) != 2 {
		t.Errorf("asked %d times, want 2", len(p.asked))
	}
}
