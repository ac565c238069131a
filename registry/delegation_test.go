package registry

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/kel"
)

// authsDIP builds a delegated inception as auths writes it (dip, di last),
// signed by key, with the -G source seals given.
func authsDIP(t *testing.T, delegator string, key ed25519.PrivateKey, src []kel.SourceSeal) kel.SignedEvent {
	t.Helper()
	k := keyQB64(key)
	n := kel.NextKeyDigest(keyQB64(seedKey("dip next")))
	ph := strings.Repeat("#", kel.SAIDLen)
	body := func(v, said string) string {
		return fmt.Sprintf(`{"v":"%s","t":"dip","d":"%s","i":"%s","s":"0","kt":"1","k":["%s"],"nt":"1","n":["%s"],"bt":"0","b":[],"c":[],"a":[],"di":"%s"}`,
			v, said, said, k, n, delegator)
	}
	v := fmt.Sprintf("KERI10JSON%06x_", len(body("KERI10JSON000000_", ph)))
	e0, err := kel.ParseEvent([]byte(body(v, ph)))
	if err != nil {
		t.Fatal(err)
	}
	e, err := kel.ParseEvent([]byte(body(v, e0.ComputeSAID())))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CheckSAID(); err != nil {
		t.Fatal(err)
	}
	se := sign(key, 0, e)
	se.Sources = src
	return se
}

// TestDelegation: a delegated identity as auths writes it is read back with
// its -G source seal and verifies only once its delegator's KEL in the same
// registry anchors it; before that, and when the delegator is absent,
// Verify reports an unverified delegation (never a crash, never valid).
func TestDelegation(t *testing.T) {
	dir := newGitRepo(t, false)
	r := openTest(t, dir)
	boss, icp, err := newTestID("delegator")
	if err != nil {
		t.Fatal(err)
	}
	dkey := seedKey("delegate")
	probe := authsDIP(t, boss.st.Prefix, dkey, nil)
	seal := []byte(fmt.Sprintf(`{"i":"%s","s":"0","d":"%s"}`, probe.Event.Prefix, probe.Event.SAID))
	bossNext := boss.clone()
	ixn, err := bossNext.ixn(seal)
	if err != nil {
		t.Fatal(err)
	}
	dip := authsDIP(t, boss.st.Prefix, dkey, []kel.SourceSeal{{Sn: 1, SAID: ixn.Event.SAID}})

	var b Batch
	b.Append(icp)
	b.Append(dip)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	s, _ := r.Snapshot()
	if _, err := s.Verify(dip.Event.Prefix); !errors.Is(err, ErrUnverifiedDelegation) || !strings.Contains(err.Error(), "no event of its delegator "+boss.st.Prefix+" seals it") {
		t.Fatalf("Verify before the anchor: %v, want an unverified delegation", err)
	}
	events, err := s.KEL(dip.Event.Prefix)
	if err != nil || len(events[0].Sources) != 1 || events[0].Sources[0] != dip.Sources[0] {
		t.Fatalf("KEL: %+v %v, want the -G source seal back", events, err)
	}
	id := "v1/identities/" + dip.Event.Prefix[0:2] + "/" + dip.Event.Prefix[2:4] + "/" + dip.Event.Prefix + "/events/00000000.attachments.cesr"
	if got := runGitShow(t, dir, id); !strings.HasSuffix(got, "-GAB0A"+strings.Repeat("A", 21)+"B"+ixn.Event.SAID) {
		t.Errorf("attachment %s: %s", id, got)
	}

	b = Batch{}
	b.Append(ixn)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	s, _ = r.Snapshot()
	if _, err := s.Verify(dip.Event.Prefix); err != nil {
		t.Fatalf("Verify after the anchor: %v", err)
	}

	// A -G seal naming another event than the one that anchors it.
	dip2 := authsDIP(t, boss.st.Prefix, seedKey("delegate 2"), []kel.SourceSeal{{Sn: 0, SAID: boss.st.Prefix}})
	seal2 := []byte(fmt.Sprintf(`{"i":"%s","s":"0","d":"%s"}`, dip2.Event.Prefix, dip2.Event.SAID))
	ixn2, err := bossNext.ixn(seal2)
	if err != nil {
		t.Fatal(err)
	}
	// And a delegate whose delegator is not in the registry.
	orphan := authsDIP(t, kel.Digest([]byte("nobody")), seedKey("orphan"), nil)
	b = Batch{}
	b.Append(dip2)
	b.Append(ixn2)
	b.Append(orphan)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	s, _ = r.Snapshot()
	if _, err := s.Verify(dip2.Event.Prefix); !errors.Is(err, ErrUnverifiedDelegation) || !strings.Contains(err.Error(), "its -G source seal names s=0") {
		t.Errorf("Verify with a wrong -G seal: %v", err)
	}
	if _, err := s.Verify(orphan.Event.Prefix); !errors.Is(err, ErrUnverifiedDelegation) || !strings.Contains(err.Error(), "has no KEL in this registry") {
		t.Errorf("Verify of an orphan: %v", err)
	}
	fsck(t, dir)
}
