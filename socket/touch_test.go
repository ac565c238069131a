package socket_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/agent/touch"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/socket"
)

// touchOpener opens keys whose every signature needs a touch, as a card
// with a touch policy does: before signing, the signer tells the agent's
// touch notifier, with the request's context.
type touchOpener struct{ n *touch.Notifier }

func (o touchOpener) Open(ctx context.Context, uri string) (hsm.Signer, error) {
	s, err := providerOpener{}.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	return touchSigner{s, o.n, uri}, nil
}

type touchSigner struct {
	hsm.Signer
	n   *touch.Notifier
	uri string
}

func (s touchSigner) SignKERI(ctx context.Context, msg []byte) ([]byte, error) {
	tok, _, _ := strings.Cut(strings.TrimPrefix(s.uri, "pkcs11:token="), ";")
	s.n.Notify(ctx, tok)
	return s.Signer.SignKERI(ctx, msg)
}

// TestTouchPosition: one anchor request signed on two tokens gives each
// token's touch notice its place, "(1 of 2)" and "(2 of 2)", in the order
// of the agent's keys; a request signed on one token has none.
func TestTouchPosition(t *testing.T) {
	var mu sync.Mutex
	var got []string
	n := touch.New(touch.Options{NotifySend: "-", Forward: func(_ context.Context, no touch.Notice) {
		mu.Lock()
		got = append(got, no.String())
		mu.Unlock()
	}})
	reg := newRegistry(t)
	k1, k2 := newKey(t, tokens[0], kel.Ed25519), newKey(t, tokens[1], kel.Ed25519)
	p2 := incept(t, reg, "2", k1, k2)
	k3 := newKey(t, tokens[2], kel.Ed25519)
	p1 := incept(t, reg, "1", k3)
	sock := serveWith(t, agent.Config{Keys: keri(k1, k2, k3)}, agent.Options{Opener: touchOpener{n}, Registry: reg}, socket.Options{})
	c := dial(t, sock)
	ctx := context.Background()
	seal := "d=" + kel.NextKeyDigest(verfer(t, k1))
	for _, p := range []string{p2, p1} {
		r, err := c.Anchor(ctx, socket.AnchorRequest{Prefix: p, Seals: []string{seal}})
		if err != nil || !r.Committed {
			t.Fatalf("anchor %s: %+v %v", p, r, err)
		}
	}
	slices.Sort(got[:2]) // the two tokens sign at once
	want := []string{
		"waiting for touch on sock-1 (1 of 2)",
		"waiting for touch on sock-2 (2 of 2)",
		"waiting for touch on sock-3",
	}
	if !slices.Equal(got, want) {
		t.Errorf("touch notices:\n%q\nwant\n%q", got, want)
	}
}

// TestNoticesToClient: the touch notices of a request reach the client
// that made it (notices-to@auths.dev and notices@auths.dev), all of them
// by the time the call returns, even when the signature follows the notice
// at once; a client that did not ask, and the other requests, get none;
// ids that are not ids are refused.
func TestNoticesToClient(t *testing.T) {
	notices := socket.NewNotices()
	n := touch.New(touch.Options{NotifySend: "-", Forward: func(ctx context.Context, no touch.Notice) {
		notices.Post(ctx, no.String())
	}})
	reg := newRegistry(t)
	k1, k2 := newKey(t, tokens[0], kel.Ed25519), newKey(t, tokens[1], kel.Ed25519)
	p2 := incept(t, reg, "2", k1, k2)
	sock := serveWith(t, agent.Config{Keys: keri(k1, k2)}, agent.Options{Opener: touchOpener{n}, Registry: reg}, socket.Options{Notices: notices})
	ctx := context.Background()
	seal := "d=" + kel.NextKeyDigest(verfer(t, k1))

	c := dial(t, sock)
	var mu sync.Mutex
	var got []string
	c.OnNotice(func(text string) {
		mu.Lock()
		got = append(got, text)
		mu.Unlock()
	})
	quiet := dial(t, sock) // asks for no notices
	for i := range 3 {
		r, err := c.Anchor(ctx, socket.AnchorRequest{Prefix: p2, Seals: []string{seal}})
		if err != nil || !r.Committed {
			t.Fatalf("anchor %d: %+v %v", i, r, err)
		}
		mu.Lock()
		slices.Sort(got)
		want := []string{"waiting for touch on sock-1 (1 of 2)", "waiting for touch on sock-2 (2 of 2)"}
		if !slices.Equal(got, want) {
			t.Errorf("anchor %d: notices %q, want %q", i, got, want)
		}
		got = nil
		mu.Unlock()
		if _, err := quiet.Anchor(ctx, socket.AnchorRequest{Prefix: p2, Seals: []string{seal}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Keys(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if len(got) != 0 {
			t.Errorf("notices of requests that are not this client's, or need no touch: %q", got)
		}
		mu.Unlock()
	}

	raw := dial(t, sock)
	for _, body := range []string{`{"id":"short"}`, `{"id":"0123456789abcdef0123456789abcdef/"}`, `{"id":"0123456789abcdef","x":1}`} {
		_, err := raw.Raw(ctx, socket.ExtNoticesTo, []byte(body))
		var ee *socket.ExtensionError
		if !errors.As(err, &ee) || ee.Reason != "bad-request" {
			t.Errorf("notices-to %s: %v, want a bad-request failure", body, err)
		}
	}
	// An id nobody named is gone at once.
	reply, err := raw.Raw(ctx, socket.ExtNotices, []byte(`{"id":"0123456789abcdef0123"}`))
	if err != nil || string(reply) != `{"notices":[],"ended":0,"gone":true}` {
		t.Errorf("notices of an unknown id: %s %v", reply, err)
	}
}

// TestNoticesLockedAgent: a client that wants notices from a locked agent
// gets the agent's own answer to its call, not a failure of the notices.
func TestNoticesLockedAgent(t *testing.T) {
	k := newKey(t, tokens[0], kel.Ed25519)
	lock := &fakeLock{}
	sock := serveWith(t, agent.Config{Keys: keri(k)}, agent.Options{Opener: providerOpener{}}, socket.Options{Lock: lock})
	c := dial(t, sock)
	c.OnNotice(func(string) {})
	lock.locked.Store(true)
	var ee *socket.ExtensionError
	if _, err := c.Keys(context.Background()); !errors.As(err, &ee) || ee.Extension != socket.ExtKeys || ee.Reason != "locked" {
		t.Errorf("keys of a locked agent: %v, want the failure of keys@auths.dev with reason locked", err)
	}
	lock.locked.Store(false)
	if keys, err := c.Keys(context.Background()); err != nil || len(keys) != 1 {
		t.Errorf("keys once unlocked: %v %v", keys, err)
	}
}

type fakeLock struct{ locked atomic.Bool }

func (l *fakeLock) Lock([]byte) error   { l.locked.Store(true); return nil }
func (l *fakeLock) Unlock([]byte) error { l.locked.Store(false); return nil }
func (l *fakeLock) Locked() bool        { return l.locked.Load() }
