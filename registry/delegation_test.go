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

// TestDelegation: a delegated identity as auths writes it (dip with di, -G
// source seal after -A) enters the registry only when its delegator's KEL,
// in the registry or earlier in the batch, anchors it; it is read back with
// its -G couple and verifies. A registry written by another program (auths
// does not verify what it writes) that holds a delegation nobody anchored is
// reported as an unverified delegation, never valid, never a crash.
// Before, an unanchored dip committed and verified as valid.
func TestDelegation(t *testing.T) {
	dir := newGitRepo(t, false)
	r := openTest(t, dir)
	boss, icp, err := newTestID("delegator")
	if err != nil {
		t.Fatal(err)
	}
	dkey := seedKey("delegate")
	probe := authsDIP(t, boss.st.Prefix, dkey, nil)
	sealOf := func(se kel.SignedEvent) []byte {
		return []byte(fmt.Sprintf(`{"i":"%s","s":"0","d":"%s"}`, se.Event.Prefix, se.Event.SAID))
	}
	ixn, err := boss.ixn(sealOf(probe))
	if err != nil {
		t.Fatal(err)
	}
	dip := authsDIP(t, boss.st.Prefix, dkey, []kel.SourceSeal{{Sn: 1, SAID: ixn.Event.SAID}})
	var b Batch
	b.Append(icp)
	b.Append(ixn)
	b.Append(dip)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	s, _ := r.Snapshot()
	if _, err := s.Verify(dip.Event.Prefix); err != nil {
		t.Fatalf("Verify of an anchored delegation: %v", err)
	}
	events, err := s.KEL(dip.Event.Prefix)
	if err != nil || len(events[0].Sources) != 1 || events[0].Sources[0] != dip.Sources[0] {
		t.Fatalf("KEL: %+v %v, want the -G source seal back", events, err)
	}
	att := "v1/identities/" + dip.Event.Prefix[0:2] + "/" + dip.Event.Prefix[2:4] + "/" + dip.Event.Prefix + "/events/00000000.attachments.cesr"
	stored := runGitShow(t, dir, att)
	if !strings.HasSuffix(stored, "-GAB0A"+strings.Repeat("A", 21)+"B"+ixn.Event.SAID) {
		t.Errorf("attachment %s: %s", att, stored)
	}

	// Refused at commit: nothing seals it; anchored but -G names another
	// event; a delegator that is not in the registry.
	head, _ := r.Head()
	unsealed := authsDIP(t, boss.st.Prefix, seedKey("delegate 2"), nil)
	wrongG := authsDIP(t, boss.st.Prefix, seedKey("delegate 3"), []kel.SourceSeal{{Sn: 0, SAID: boss.st.Prefix}})
	orphan := authsDIP(t, kel.Digest([]byte("nobody")), seedKey("orphan"), nil)
	for _, tc := range []struct {
		name  string
		build func(b *Batch)
		want  string
	}{
		{"unanchored", func(b *Batch) { b.Append(unsealed) }, "no event of its delegator " + boss.st.Prefix + " seals it"},
		{"wrong -G", func(b *Batch) {
			ix, err := boss.clone().ixn(sealOf(wrongG))
			if err != nil {
				t.Fatal(err)
			}
			b.Append(ix)
			b.Append(wrongG)
		}, "its -G source seal names s=0"},
		{"no delegator", func(b *Batch) { b.Append(orphan) }, "has no KEL in this registry"},
	} {
		var b Batch
		tc.build(&b)
		_, err := r.Commit(bg(), &b)
		var oe *OpError
		if !errors.As(err, &oe) || !errors.Is(err, ErrUnverifiedDelegation) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Commit = %v, want an unverified delegation: %q", tc.name, err, tc.want)
		}
		if h, _ := r.Head(); h != head {
			t.Fatalf("%s: the ref moved", tc.name)
		}
	}

	// Written by another program: a -G couple naming another event, then
	// the delegator's KEL gone.
	bad := strings.Replace(stored, "-GAB0A"+strings.Repeat("A", 21)+"B", "-GAB0A"+strings.Repeat("A", 21)+"C", 1)
	rewriteRegistry(t, dir, map[string]*string{att: &bad})
	s, _ = r.Snapshot()
	if _, err := s.Verify(dip.Event.Prefix); !errors.Is(err, ErrUnverifiedDelegation) || !strings.Contains(err.Error(), "its -G source seal names s=2") {
		t.Errorf("Verify with a foreign -G edit: %v", err)
	}
	bossDir := "v1/identities/" + boss.st.Prefix[0:2] + "/" + boss.st.Prefix[2:4] + "/" + boss.st.Prefix + "/"
	gone := map[string]*string{}
	for _, f := range []string{"tip.json", "state.json", "events/00000000.json", "events/00000000.attachments.cesr", "events/00000001.json", "events/00000001.attachments.cesr"} {
		gone[bossDir+f] = nil
	}
	rewriteRegistry(t, dir, gone)
	s, _ = r.Snapshot()
	if _, err := s.Verify(dip.Event.Prefix); !errors.Is(err, ErrUnverifiedDelegation) || !strings.Contains(err.Error(), "has no KEL in this registry") {
		t.Errorf("Verify without the delegator: %v", err)
	}
}
