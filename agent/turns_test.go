package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/hsm"
)

type noOpener struct{}

func (noOpener) Open(context.Context, string) (hsm.Signer, error) {
	return nil, errors.New("no keys in this test")
}

func newTestAgent(t *testing.T) *Agent {
	t.Helper()
	a, err := New(Config{}, Options{Opener: noOpener{}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestIdentityTurnsDropped: requests for many identities (as refused
// sign-events naming made-up prefixes are) leave nothing behind, whether
// they got their turn or gave up waiting for it; before, every prefix
// ever named kept an entry for the agent's life.
func TestIdentityTurnsDropped(t *testing.T) {
	a := newTestAgent(t)
	ctx := context.Background()
	for i := range 1000 {
		release, err := a.lockIdentity(ctx, fmt.Sprintf("E%043d", i))
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
	release, err := a.lockIdentity(ctx, "Ebusy")
	if err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.lockIdentity(gone, "Ebusy"); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting on a cancelled context: %v", err)
	}
	release()
	if n := len(a.ids); n != 0 {
		t.Errorf("%d identities remembered after every request ended, want 0", n)
	}
}

// TestSignedMemory: a signed event is remembered until an event above it
// is checked (its sn is then at or below the tip); the same SAID is fine,
// another is duplicity; an abandoned event frees its sn; the per-identity
// and per-agent bounds refuse rather than forget.
func TestSignedMemory(t *testing.T) {
	a := newTestAgent(t)
	ctx := context.Background()
	const p = "Eprefix"
	release, err := a.lockIdentity(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.notDuplicate(ctx, "sign-event", p, 3, "Ea"); err != nil {
		t.Fatal(err)
	}
	a.remember(p, 3, "Ea")
	if err := a.notDuplicate(ctx, "sign-event", p, 3, "Ea"); err != nil {
		t.Errorf("the same event again: %v", err)
	}
	err = a.notDuplicate(ctx, "sign-event", p, 3, "Eb")
	want := "sign-event refused: duplicity: already signed Ea at s=3 for this identity; refusing a different event at the same sequence number (duplicity)"
	if !errors.Is(err, ErrDuplicity) || err.Error() != want {
		t.Errorf("another event at s=3: %v, want %q", err, want)
	}
	a.forget(p, 3, "Ea")
	if err := a.notDuplicate(ctx, "anchor", p, 3, "Eb"); err != nil {
		t.Errorf("after the agent abandoned Ea: %v", err)
	}
	a.remember(p, 3, "Eb")
	if err := a.notDuplicate(ctx, "sign-event", p, 4, "Ec"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.ids[p].signed[3]; ok {
		t.Errorf("s=3 still remembered once an event at s=4 was checked as next")
	}
	// Entries above the sn checked happen only when the registry's tip
	// went back.
	for s := uint64(5); s < 5+maxSignedPerID; s++ {
		a.remember(p, s, "E")
	}
	if err := a.notDuplicate(ctx, "sign-event", p, 4, "E"); !errors.Is(err, ErrDuplicity) || !strings.Contains(err.Error(), "its limit") {
		t.Errorf("past %d remembered sequence numbers: %v, want a refusal", maxSignedPerID, err)
	}
	release()
	if len(a.ids) != 1 {
		t.Fatalf("%d identities, want 1 (its signed events are remembered)", len(a.ids))
	}
	for i := 1; i < maxSignedIDs; i++ {
		q := fmt.Sprintf("E%d", i)
		a.ids[q] = &identity{turn: make(chan struct{}, 1), signed: map[uint64]string{0: "E"}}
	}
	a.ids["Enew"] = &identity{turn: make(chan struct{}, 1)}
	if err := a.notDuplicate(ctx, "sign-event", "Enew", 0, "E"); !errors.Is(err, ErrDuplicity) || !strings.Contains(err.Error(), "4096 identities") {
		t.Errorf("a %dth identity: %v, want a refusal", maxSignedIDs+1, err)
	}
}
