package socket_test

import (
	"context"
	"slices"
	"strings"
	"sync"
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
