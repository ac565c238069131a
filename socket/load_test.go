package socket_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/socket"
)

// TestLoad: 64 concurrent clients each send 100 sign-event requests for a
// 2-of-2 identity whose keys are on two tokens; every answer holds both
// signatures and they make the client's event valid. The agent signs one
// event per sequence number of an identity, so each client asks for the
// same next event again and again, of one of 8 identities with the same
// two keys (8 different events, so a reply sent to the wrong client
// shows).
func TestLoad(t *testing.T) {
	clients, requests := 64, 100
	if testing.Short() {
		clients, requests = 8, 10
	}
	reg := newRegistry(t)
	k1, k2 := newKey(t, tokens[0], kel.Ed25519), newKey(t, tokens[1], kel.P256)
	states := make([]*kel.KeyState, 8)
	for i := range states {
		states[i] = keyState(t, reg, incept(t, reg, "2", k1, k2))
	}
	path := serve(t, agent.Config{Keys: keri(k1, k2)}, reg)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := socket.Dial(context.Background(), path)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			st := states[i%len(states)]
			e := ixn(t, st, "load")
			for j := range requests {
				r, err := c.SignEvent(context.Background(), e.Raw())
				if err != nil {
					errs <- fmt.Errorf("client %d request %d: %w", i, j, err)
					return
				}
				sigs, _, err := kel.ParseSigGroup([]byte(r.Group))
				if err == nil {
					_, err = kel.Apply(st, kel.SignedEvent{Event: e, Sigs: sigs})
				}
				if err != nil || r.SAID != e.SAID {
					errs <- fmt.Errorf("client %d request %d: reply for %s does not sign %s: %v", i, j, r.SAID, e.SAID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestConcurrentAnchors: 8 clients anchor for one identity at once; the
// agent queues them, stages each on the tip the previous one left, and all
// 8 land in 8 commits.
func TestConcurrentAnchors(t *testing.T) {
	reg := newRegistry(t)
	k1, k2, k3 := newKey(t, tokens[0], kel.Ed25519), newKey(t, tokens[1], kel.Ed25519), newKey(t, tokens[2], kel.P256)
	prefix := incept(t, reg, "2", k1, k2, k3)
	path := serve(t, agent.Config{Keys: keri(k1, k3)}, reg)
	before := commits(t, reg.GitDir())
	var wg sync.WaitGroup
	results := make([]*socket.AnchorReply, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := socket.Dial(context.Background(), path)
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Close()
			results[i], errs[i] = c.Anchor(context.Background(), socket.AnchorRequest{
				Prefix: prefix, Seals: []string{"d=" + kel.Digest([]byte(fmt.Sprint("anchor ", i)))},
			})
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("anchor %d: %v", i, errs[i])
		}
		if !r.Committed || seen[r.Sn] {
			t.Errorf("anchor %d: committed=%v s=%d (seen before: %v)", i, r.Committed, r.Sn, seen[r.Sn])
		}
		seen[r.Sn] = true
	}
	if got := commits(t, reg.GitDir()) - before; got != 8 {
		t.Errorf("%d new commits, want 8", got)
	}
	if st := keyState(t, reg, prefix); st.Sequence != 8 {
		t.Errorf("identity at s=%d, want 8", st.Sequence)
	}
	// The KEL verifies from scratch.
	snap, _ := reg.Snapshot()
	if _, err := snap.Verify(prefix); err != nil {
		t.Fatal(err)
	}
}

func commits(t testing.TB, gitDir string) int {
	t.Helper()
	out, err := exec.Command("git", "--git-dir", gitDir, "rev-list", "--count", "refs/auths/registry").Output()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(strings.TrimSpace(string(out)), &n)
	return n
}

// TestIDCreateRotate: the agent incepts a 2-of-2 identity with two keys it
// holds on two tokens, then rotates it to the two pre-committed next keys
// (also held), each signing with its prior-next index; the KEL verifies.
func TestIDCreateRotate(t *testing.T) {
	reg := newRegistry(t)
	k1, k2 := newKey(t, tokens[0], kel.Ed25519), newKey(t, tokens[1], kel.P256)
	n1, n2 := newKey(t, tokens[1], kel.Ed25519), newKey(t, tokens[0], kel.Ed25519)
	path := serve(t, agent.Config{Keys: keri(k1, k2, n1, n2)}, reg)
	c := dial(t, path)
	ctx := context.Background()
	r, err := c.IDCreate(ctx, socket.IDRequest{Keys: []string{verfer(t, k1), verfer(t, k2)}, Threshold: "2",
		NextKeys: []string{verfer(t, n1), verfer(t, n2)}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Committed || r.Sn != 0 || r.Prefix != r.SAID {
		t.Fatalf("id create: %+v", r)
	}
	// The new keys in the other order: n2 at index 0 was prior-next 1.
	r2, err := c.IDRotate(ctx, socket.IDRequest{Prefix: r.Prefix, Keys: []string{verfer(t, n2), verfer(t, n1)},
		NextDigests: []string{kel.NextKeyDigest(verfer(t, k1)), kel.NextKeyDigest(verfer(t, k2))}})
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Committed || r2.Sn != 1 {
		t.Fatalf("id rotate: %+v", r2)
	}
	snap, _ := reg.Snapshot()
	st, err := snap.Verify(r.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if st.CurrentKeys[0] != verfer(t, n2) || st.Sequence != 1 {
		t.Errorf("state after rotation: %+v", st)
	}
	// Rotating to keys that were not pre-committed is refused.
	if _, err := c.IDRotate(ctx, socket.IDRequest{Prefix: r.Prefix, Keys: []string{verfer(t, n1)}, Threshold: "1",
		NextDigests: []string{kel.NextKeyDigest(verfer(t, k1))}}); err == nil {
		t.Error("rotation to a key that is not a pre-committed next key was committed")
	}
}
