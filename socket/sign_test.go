package socket_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
	"github.com/auths-dev/auths-agent/socket"
)

// countingOpener counts the signatures its keys make, so a refusal can be
// shown to have signed nothing.
type countingOpener struct{ n *atomic.Int64 }

func (o countingOpener) Open(ctx context.Context, uri string) (hsm.Signer, error) {
	s, err := providerOpener{}.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	return countingSigner{s, o.n}, nil
}

type countingSigner struct {
	hsm.Signer
	n *atomic.Int64
}

func (c countingSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	c.n.Add(1)
	return c.Signer.Sign(r, d, o)
}
func (c countingSigner) SignKERI(ctx context.Context, msg []byte) ([]byte, error) {
	c.n.Add(1)
	return c.Signer.SignKERI(ctx, msg)
}

// serveCounting is serve with a countingOpener.
func serveCounting(t *testing.T, cfg agent.Config, reg *registry.Registry, uid int) (string, *atomic.Int64) {
	t.Helper()
	n := new(atomic.Int64)
	path := serveWith(t, cfg, agent.Options{Opener: countingOpener{n}, Registry: reg}, socket.Options{UID: uid})
	return path, n
}

func keyState(t testing.TB, reg *registry.Registry, prefix string) *kel.KeyState {
	t.Helper()
	snap, err := reg.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	st, err := snap.KeyState(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ixn(t testing.TB, st *kel.KeyState, seal string) *kel.Event {
	t.Helper()
	e, err := kel.NewInteraction(st, byteSeal(seal))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func byteSeal(s string) []json.RawMessage {
	return []json.RawMessage{kel.DigestSeal(kel.Digest([]byte(s)))}
}

// TestSignEvent: the agent holds two of the three keys of a 2-of-3
// identity; it returns both indexed signatures, and with them the event is
// a valid next event.
func TestSignEvent(t *testing.T) {
	reg := newRegistry(t)
	k1, k2, k3 := newKey(t, tokens[0], kel.Ed25519), newKey(t, tokens[1], kel.P256), newKey(t, tokens[2], kel.Ed25519)
	prefix := incept(t, reg, "2", k1, k2, k3)
	path, n := serveCounting(t, agent.Config{Keys: keri(k1, k2)}, reg, -1)
	c := dial(t, path)
	st := keyState(t, reg, prefix)
	e := ixn(t, st, "seal-1")
	r, err := c.SignEvent(context.Background(), e.Raw())
	if err != nil {
		t.Fatal(err)
	}
	if r.SAID != e.SAID || r.Prefix != prefix || r.Sn != "1" || r.Type != "ixn" {
		t.Errorf("reply names %s %s s=%s %s, want %s %s s=1 ixn", r.Prefix, r.SAID, r.Sn, r.Type, prefix, e.SAID)
	}
	if len(r.Signatures) != 2 || r.Indexes[0] != 0 || r.Indexes[1] != 1 {
		t.Fatalf("signatures %v at %v, want indexes 0 and 1", r.Signatures, r.Indexes)
	}
	sigs, used, err := kel.ParseSigGroup([]byte(r.Group))
	if err != nil || used != len(r.Group) {
		t.Fatalf("attachment %q: %v", r.Group, err)
	}
	if _, err := kel.Apply(st, kel.SignedEvent{Event: e, Sigs: sigs}); err != nil {
		t.Fatalf("the agent's signatures do not make a valid event: %v", err)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d signatures made, want 2", got)
	}
}

// TestSignEventRefusals: each refusal is an extension failure with its
// reason, and no key signs anything.
func TestSignEventRefusals(t *testing.T) {
	reg := newRegistry(t)
	k1, k2 := newKey(t, tokens[0], kel.Ed25519), newKey(t, tokens[1], kel.Ed25519)
	prefix := incept(t, reg, "1", k1, k2)
	other := incept(t, reg, "1", newKey(t, tokens[2], kel.Ed25519))
	cfg := agent.Config{Keys: []agent.KeySpec{
		{URI: k1, Uses: []agent.Use{agent.UseKERI, agent.UseSSH}},
		{URI: k2, Uses: []agent.Use{agent.UseKERI}, Identities: []string{other}},
	}}
	path, n := serveCounting(t, cfg, reg, -1)
	c := dial(t, path)
	st := keyState(t, reg, prefix)
	good := ixn(t, st, "good")

	// A seal changed after the SAID was computed.
	tampered := bytes.Replace(good.Raw(), []byte(`"a":[{"d":"E`), []byte(`"a":[{"d":"F`), 1)
	// s=6 on a KEL whose tip is s=0.
	ahead := st.Clone()
	ahead.Sequence = 5
	notNext := ixn(t, ahead, "ahead")
	// k1 is in the key list of prefix but k2's policy names only other:
	// a key list of k2 alone is refused by policy.
	st2 := keyState(t, reg, other)
	_ = st2
	cases := []struct {
		name, event, reason, text string
	}{
		{"said", string(tampered), "said-mismatch", "SAID mismatch"},
		{"not next", string(notNext.Raw()), "not-next", "s=6, want 1"},
		{"garbage", `{"v":"KERI10JSON000000_"}`, "bad-event", "malformed event"},
		{"unknown identity", string(ixn(t, &kel.KeyState{Prefix: "EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", CurrentKeys: st.CurrentKeys, LastEventSAID: st.LastEventSAID, Threshold: st.Threshold}, "x").Raw()), "not-next", "no KEL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.SignEvent(context.Background(), []byte(tc.event))
			var ee *socket.ExtensionError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want an extension failure", err)
			}
			if ee.Reason != tc.reason || !strings.Contains(ee.Failure.Error, tc.text) {
				t.Errorf("refusal %q (reason %q), want reason %q and %q", ee.Failure.Error, ee.Reason, tc.reason, tc.text)
			}
		})
	}
	// Policy: an agent holding only k2, whose policy names other, asked
	// to sign for prefix.
	t.Run("policy", func(t *testing.T) {
		path2, n2 := serveCounting(t, agent.Config{Keys: []agent.KeySpec{cfg.Keys[1]}}, reg, -1)
		_, err := dial(t, path2).SignEvent(context.Background(), good.Raw())
		var ee *socket.ExtensionError
		if !errors.As(err, &ee) || ee.Reason != "policy" || !strings.Contains(ee.Failure.Error, "may not sign for identity "+prefix) {
			t.Fatalf("err = %v, want a policy refusal naming %s", err, prefix)
		}
		if n2.Load() != 0 {
			t.Errorf("%d signatures made by a refused request", n2.Load())
		}
	})
	// The same KERI event through the plain SSH sign request of k1, an
	// SSH key too.
	t.Run("ssh sign of a KERI event", func(t *testing.T) {
		sa, err := c.SSH()
		if err != nil {
			t.Fatal(err)
		}
		keys, err := sa.List()
		if err != nil || len(keys) != 1 {
			t.Fatalf("List: %v, %d keys, want k1 only", err, len(keys))
		}
		if strings.Contains(keys[0].Comment, "="+testPIN) || !strings.Contains(keys[0].Comment, "token="+tokens[0]) {
			t.Errorf("comment %q: want the URI without its PIN", keys[0].Comment)
		}
		pub, _ := ssh.ParsePublicKey(keys[0].Blob)
		if _, err := sa.Sign(pub, good.Raw()); err == nil {
			t.Fatal("an SSH sign request of a KERI event was answered")
		}
		if _, err := sa.Sign(pub, []byte("any bytes at all")); err == nil {
			t.Fatal("an SSH sign request of arbitrary bytes was answered")
		}
	})
	if got := n.Load(); got != 0 {
		t.Errorf("%d signatures made by refused requests", got)
	}
	// The connection still serves: the good event signs.
	if _, err := c.SignEvent(context.Background(), good.Raw()); err != nil {
		t.Fatalf("after the refusals: %v", err)
	}
}

// TestPeerUID: a connection whose peer uid is not the agent's gets a
// failure for every request, extensions with the reason, and nothing is
// signed. (The server is told to serve another uid than the test's; the
// real-process version runs `ssh-add -L` as nobody, see cmd/auths-agent.)
func TestPeerUID(t *testing.T) {
	reg := newRegistry(t)
	k1 := newKey(t, tokens[0], kel.Ed25519)
	prefix := incept(t, reg, "1", k1)
	cfg := agent.Config{Keys: []agent.KeySpec{{URI: k1, Uses: []agent.Use{agent.UseKERI, agent.UseSSH}}}}
	path, n := serveCounting(t, cfg, reg, 4242)
	c := dial(t, path)
	_, err := c.SignEvent(context.Background(), ixn(t, keyState(t, reg, prefix), "x").Raw())
	var ee *socket.ExtensionError
	if !errors.As(err, &ee) || ee.Reason != "peer-uid" || !strings.Contains(ee.Failure.Error, "is not the agent's uid 4242") {
		t.Fatalf("err = %v, want a peer-uid refusal", err)
	}
	// One refusal per connection: the agent parses nothing more from a
	// peer it does not serve.
	_, err = c.SignEvent(context.Background(), ixn(t, keyState(t, reg, prefix), "x").Raw())
	if err == nil || errors.As(err, &ee) {
		t.Errorf("second request on the refused connection: %v, want the connection closed", err)
	}
	sa, err := c.SSH()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.List(); err == nil {
		t.Error("List answered for another uid")
	}
	if n.Load() != 0 {
		t.Errorf("%d signatures made", n.Load())
	}
}

// TestSignEventDuringAnchor: a sign-event for the identity an anchor of
// the agent is signing waits for that anchor and is checked against the
// tip it leaves: an interaction at the sequence number the anchor takes is
// refused as not next, so the agent never signs two events at one
// sequence number (duplicity).
func TestSignEventDuringAnchor(t *testing.T) {
	reg := newRegistry(t)
	k := newKey(t, tokens[1], kel.Ed25519)
	prefix := incept(t, reg, "1", k)
	n := new(atomic.Int64)
	started := make(chan struct{}, 1)
	path := serveWith(t, agent.Config{Keys: keri(k)}, agent.Options{Opener: slowOpener{d: 300 * time.Millisecond, n: n, started: started}, Registry: reg}, socket.Options{})
	if _, err := dial(t, path).Keys(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := keyState(t, reg, prefix) // the tip the anchor stages on
	anchored := make(chan error, 1)
	go func() {
		_, err := dial(t, path).Anchor(context.Background(), socket.AnchorRequest{Prefix: prefix, Seals: []string{"d=" + kel.Digest([]byte("anchor"))}})
		anchored <- err
	}()
	<-started // the anchor's event is on the device
	_, err := dial(t, path).SignEvent(context.Background(), ixn(t, st, "same sn").Raw())
	if aerr := <-anchored; aerr != nil {
		t.Fatalf("anchor: %v", aerr)
	}
	var ee *socket.ExtensionError
	if !errors.As(err, &ee) || ee.Reason != "not-next" {
		t.Fatalf("sign-event at the sn the anchor took: %v, want a not-next refusal", err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("%d signatures, want 1 (the anchor's)", got)
	}
}

// TestSignEventDuplicity: once the agent signed an event at a sequence
// number above the registry's tip, the same event is signed again, a
// different one at that sequence number is refused as duplicity (nothing
// signed, the agent's own anchor included), and once the signed event is
// committed the next sequence number is free.
func TestSignEventDuplicity(t *testing.T) {
	reg := newRegistry(t)
	k := newKey(t, tokens[0], kel.Ed25519)
	prefix := incept(t, reg, "1", k)
	path, n := serveCounting(t, agent.Config{Keys: keri(k)}, reg, -1)
	c := dial(t, path)
	ctx := context.Background()
	st := keyState(t, reg, prefix)
	first := ixn(t, st, "first")
	r1, err := c.SignEvent(ctx, first.Raw())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.SignEvent(ctx, first.Raw())
	if err != nil {
		t.Fatalf("the same event again: %v", err)
	}
	if r1.Group != r2.Group {
		t.Errorf("the same event signed twice gives %q then %q", r1.Group, r2.Group)
	}
	want := "already signed " + first.SAID + " at s=1 for this identity; refusing a different event at the same sequence number (duplicity)"
	var ee *socket.ExtensionError
	_, err = c.SignEvent(ctx, ixn(t, st, "second").Raw())
	if !errors.As(err, &ee) || ee.Reason != "duplicity" || !strings.Contains(err.Error(), want) {
		t.Fatalf("a different event at s=1: %v, want a duplicity refusal saying %q", err, want)
	}
	_, err = c.Anchor(ctx, socket.AnchorRequest{Prefix: prefix, Seals: []string{"d=" + kel.Digest([]byte("anchor"))}})
	if !errors.As(err, &ee) || ee.Reason != "duplicity" {
		t.Fatalf("an anchor at s=1: %v, want a duplicity refusal", err)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d signatures made, want 2 (the first event, twice)", got)
	}
	// Another writer commits the first event: s=2 is free, and the
	// anchor stages there.
	sigs, _, err := kel.ParseSigGroup([]byte(r1.Group))
	if err != nil {
		t.Fatal(err)
	}
	var b registry.Batch
	b.Append(kel.SignedEvent{Event: first, Sigs: sigs})
	if _, err := reg.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	res, err := c.Anchor(ctx, socket.AnchorRequest{Prefix: prefix, Seals: []string{"d=" + kel.Digest([]byte("anchor"))}})
	if err != nil || !res.Committed || res.Sn != 2 {
		t.Fatalf("anchor after the commit: %+v, %v; want committed at s=2", res, err)
	}
}

// TestAnchorRestagedAfterOtherWriter: another writer commits an event at
// the sequence number the agent's anchor was signed for, while it was
// being signed; the agent abandons its event (its signatures never left)
// and stages and signs the anchor again on the new tip, which the
// duplicity check lets through because it is a higher sequence number.
func TestAnchorRestagedAfterOtherWriter(t *testing.T) {
	reg := newRegistry(t)
	k := newKey(t, tokens[1], kel.Ed25519)
	prefix := incept(t, reg, "1", k)
	n := new(atomic.Int64)
	started := make(chan struct{}, 1)
	path := serveWith(t, agent.Config{Keys: keri(k)}, agent.Options{Opener: slowOpener{d: 300 * time.Millisecond, n: n, started: started}, Registry: reg}, socket.Options{})
	if _, err := dial(t, path).Keys(context.Background()); err != nil {
		t.Fatal(err)
	}
	type result struct {
		res *agent.AnchorResult
		err error
	}
	anchored := make(chan result, 1)
	go func() {
		res, err := dial(t, path).Anchor(context.Background(), socket.AnchorRequest{Prefix: prefix, Seals: []string{"d=" + kel.Digest([]byte("anchor"))}})
		anchored <- result{res, err}
	}()
	<-started // the anchor's event (s=1) is on the device
	ctx := context.Background()
	other := anchor.New(reg)
	p, err := other.Stage(ctx, prefix, anchor.Change{Seals: byteSeal("other writer")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anchor.Sign(ctx, p, []hsm.Signer{openKey(t, k)}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Commit(ctx, p); err != nil {
		t.Fatal(err)
	}
	r := <-anchored
	if r.err != nil {
		t.Fatalf("anchor: %v", r.err)
	}
	if !r.res.Committed || r.res.Sn != 2 || r.res.Restaged != 1 {
		t.Errorf("anchor: committed %v at s=%d restaged %d, want committed at s=2 restaged once", r.res.Committed, r.res.Sn, r.res.Restaged)
	}
	if got := keyState(t, reg, prefix).Sequence; got != 2 {
		t.Errorf("registry tip s=%d, want 2", got)
	}
}

// trustedStamp waits until reg's ref file is out of the racy window of
// registry.Unchanged, and fails unless a fresh stamp of it is then trusted.
func trustedStamp(t testing.TB, reg *registry.Registry) {
	t.Helper()
	time.Sleep(1100 * time.Millisecond)
	s, err := reg.ReadHead()
	if err != nil {
		t.Fatal(err)
	}
	if !reg.Unchanged(s) {
		t.Fatal("the registry does not trust a stamp of a ref file written over a second ago")
	}
}

// TestSignEventAfterRegistryMoved: the agent keeps each identity's key
// state with the registry commit it was read at; once another writer moves
// the ref, the next request checks against the new tip: the committed
// event is no longer next, the one after it is. The ref is past the racy
// second, so the agent trusts one stat(2) of it: the test fails if
// registry.Unchanged misses the move (and passes without the cache too).
func TestSignEventAfterRegistryMoved(t *testing.T) {
	reg := newRegistry(t)
	k := newKey(t, tokens[1], kel.P256)
	prefix := incept(t, reg, "1", k)
	path := serve(t, agent.Config{Keys: keri(k)}, reg)
	c := dial(t, path)
	ctx := context.Background()
	st := keyState(t, reg, prefix)
	first := ixn(t, st, "first")
	// Past the racy second after the ref was written, the agent trusts one
	// stat(2) of it (registry.Unchanged) instead of reading it, until it
	// changes.
	trustedStamp(t, reg)
	r1, err := c.SignEvent(ctx, first.Raw())
	if err != nil {
		t.Fatal(err)
	}
	sigs, _, err := kel.ParseSigGroup([]byte(r1.Group))
	if err != nil {
		t.Fatal(err)
	}
	other, err := registry.Open(reg.GitDir())
	if err != nil {
		t.Fatal(err)
	}
	var b registry.Batch
	b.Append(kel.SignedEvent{Event: first, Sigs: sigs})
	if _, err := other.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var ee *socket.ExtensionError
	if _, err := c.SignEvent(ctx, first.Raw()); !errors.As(err, &ee) || ee.Reason != "not-next" {
		t.Fatalf("the committed event again: %v, want a not-next refusal", err)
	}
	next, err := kel.NewInteraction(keyState(t, reg, prefix), byteSeal("second"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.SignEvent(ctx, next.Raw()); err != nil || r.Sn != "2" {
		t.Fatalf("the event after the committed one: %+v, %v", r, err)
	}
}
