package anchor_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// machine is one of the three computers of a co-signing test: its own
// clone of origin, its own Anchorer, and the one token key it holds.
type machine struct {
	dir string
	reg *registry.Registry
	a   *anchor.Anchorer
	key hsm.Signer
}

func newMachines(t *testing.T, keys []hsm.Signer) (origin string, ms []*machine) {
	t.Helper()
	origin = t.TempDir()
	git(t, origin, "init", "-q", "--bare", origin)
	for i, k := range keys {
		dir := t.TempDir()
		git(t, dir, "init", "-q", dir)
		git(t, dir, "remote", "add", "origin", origin)
		var reg *registry.Registry
		var err error
		if i == 0 {
			reg, _, err = registry.Init(context.Background(), dir, false, registry.WithLogger(discard()))
		} else {
			reg, err = registry.Open(dir, registry.WithLogger(discard()))
		}
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, &machine{dir: dir, reg: reg, a: anchor.New(reg), key: k})
	}
	return origin, ms
}

func (m *machine) pull(t *testing.T) *anchor.PullResult {
	t.Helper()
	res, err := m.a.Pull(context.Background(), registry.Remote{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (m *machine) push(t *testing.T) {
	t.Helper()
	if _, err := m.a.Push(context.Background(), registry.Remote{}); err != nil {
		t.Fatal(err)
	}
}

// signSaved loads a proposal, signs it with the machine's key and saves it.
func (m *machine) signSaved(t *testing.T, prefix, said string) *anchor.Proposal {
	t.Helper()
	ctx := context.Background()
	pd, err := m.a.Load(ctx, prefix, said)
	if err != nil || pd.Err != nil {
		t.Fatalf("load %s: %v %v", said, err, pd)
	}
	if _, err := anchor.Sign(ctx, pd.Proposal, []hsm.Signer{m.key}); err != nil {
		t.Fatal(err)
	}
	if err := m.a.Save(ctx, pd.Proposal); err != nil {
		t.Fatal(err)
	}
	return pd.Proposal
}

// TestCosignThreeMachines: three clones of one bare origin, each with its
// own token key of a 2-of-3 identity. The inception is proposed and signed
// on A, pushed; B pulls, signs and commits through the remote; C pulls and
// finds it committed. Then A stages an anchor of a device attestation and
// pushes; B pulls, signs, pushes; C pulls, sees it complete, commits and
// pushes; all three verify the same KEL and hold the attestation. A
// signature that does not verify, pushed by a hostile C, is left out of
// A's copy when A pulls.
func TestCosignThreeMachines(t *testing.T) {
	ctx := context.Background()
	var cur, next []hsm.Signer
	for i := 0; i < 3; i++ {
		s, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		nx, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		cur, next = append(cur, s), append(next, nx)
	}
	origin, ms := newMachines(t, cur)
	A, B, C := ms[0], ms[1], ms[2]
	A.push(t) // the empty registry, so that the others share its first commit
	B.pull(t)
	C.pull(t)

	spec := kel.InceptionSpec{Threshold: mustThreshold(t, "2"), NextThreshold: mustThreshold(t, "2")}
	for i := range cur {
		spec.Keys = append(spec.Keys, qb64(t, cur[i]))
		spec.NextDigests = append(spec.NextDigests, kel.NextKeyDigest(qb64(t, next[i])))
	}
	icp, err := A.a.Incept(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	prefix := icp.Prefix()
	if _, err := anchor.Sign(ctx, icp, []hsm.Signer{A.key}); err != nil {
		t.Fatal(err)
	}
	if err := A.a.Save(ctx, icp); err != nil {
		t.Fatal(err)
	}
	A.push(t)
	if res := B.pull(t); len(res.Pending) != 1 || res.Pending[0].How != "created" {
		t.Fatalf("B's pull: %+v", res.Pending)
	}
	p := B.signSaved(t, prefix, icp.SAID())
	if !p.Complete() {
		t.Fatalf("inception with two of three signatures not complete: %s", p.Status().Needs())
	}
	if r, err := B.a.CommitPush(ctx, p, registry.Remote{}); err != nil {
		t.Fatal(err)
	} else if r.CleanupErr != nil {
		t.Fatalf("removing the committed proposal: %v", r.CleanupErr)
	}
	res := C.pull(t)
	if res.Commits != 1 || len(res.Pending) != 0 {
		t.Fatalf("C's pull after the inception: commits %d, pending %+v (the committer removes the remote's copy)", res.Commits, res.Pending)
	}
	if res := A.pull(t); len(res.Dropped) != 1 || !errors.Is(res.Dropped[0].Err, anchor.ErrCommitted) {
		t.Fatalf("A's pull: its own copy of the committed inception not dropped: %+v", res.Dropped)
	}

	// An anchor: staged and signed on A, signed on B, committed by C.
	did := "did:key:z6MkCosigned"
	stg, err := A.a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: attestation(prefix, did, 1)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anchor.Sign(ctx, stg, []hsm.Signer{A.key}); err != nil {
		t.Fatal(err)
	}
	if err := A.a.Save(ctx, stg); err != nil {
		t.Fatal(err)
	}
	A.push(t)
	B.pull(t)
	B.signSaved(t, prefix, stg.SAID())
	B.push(t)
	C.pull(t)
	pd, err := C.a.Load(ctx, prefix, stg.SAID())
	if err != nil || pd.Err != nil || !pd.Proposal.Complete() {
		t.Fatalf("C loads the anchor: %v %+v", err, pd)
	}
	if _, err := C.a.CommitPush(ctx, pd.Proposal, registry.Remote{}); err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, m := range ms {
		m.pull(t)
		snap, err := m.reg.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		st, err := snap.Verify(prefix)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := snap.Attestation(did); err != nil {
			t.Errorf("attestation missing: %v", err)
		}
		j, _ := json.Marshal(st)
		states = append(states, string(j))
		fsck(t, m.dir)
	}
	if states[0] != states[1] || states[1] != states[2] || !strings.Contains(states[0], `"sequence":1`) {
		t.Errorf("the machines disagree:\n%s", strings.Join(states, "\n"))
	}
	fsck(t, origin)

	// A forged signature: C saves a proposal whose index 2 holds A's
	// signature, writing the files below anchor (registry.PutPending
	// does not verify), and pushes.
	did2 := "did:key:z6MkForged"
	stg2, err := C.a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did2, Document: attestation(prefix, did2, 2)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anchor.Sign(ctx, stg2, []hsm.Signer{C.key}); err != nil {
		t.Fatal(err)
	}
	if err := C.a.Save(ctx, stg2); err != nil {
		t.Fatal(err)
	}
	sigA, err := A.key.SignKERI(ctx, stg2.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	forged, err := kel.NewSiger(kel.Ed25519, 1, 1, sigA).QB64()
	if err != nil {
		t.Fatal(err)
	}
	id := registry.PendingID{Prefix: prefix, SAID: stg2.SAID()}
	if _, err := C.reg.PutPending(ctx, id, registry.PendingFiles{"sigs/1.qb64": []byte(forged)}); err != nil {
		t.Fatal(err)
	}
	C.push(t)
	res = A.pull(t)
	if len(res.Pending) != 1 || !reflect.DeepEqual(res.Pending[0].Refused, []string{"sigs/1.qb64"}) {
		t.Fatalf("A's pull of a forged signature: %+v", res.Pending)
	}
	files, err := A.reg.ReadPending(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["sigs/1.qb64"]; ok {
		t.Error("the forged signature was stored")
	}
	if _, ok := files["sigs/2.qb64"]; !ok {
		t.Error("C's valid signature was lost")
	}
}

// TestCosignCommitRace: two machines commit different fully signed
// anchors for the same s through the remote at once: exactly one lands,
// the other is reported stale (and its proposal removed), and both
// machines end with the remote's registry.
func TestCosignCommitRace(t *testing.T) {
	ctx := context.Background()
	var cur, next []hsm.Signer
	for i := 0; i < 2; i++ {
		s, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		nx, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		cur, next = append(cur, s), append(next, nx)
	}
	origin, ms := newMachines(t, cur)
	prefix := incept(t, ms[0].a, cur, "1", next, "1")
	ms[0].push(t)
	ms[1].pull(t)
	var props [2]*anchor.Proposal
	for i, m := range ms {
		did := "did:key:z6MkRace" + string(rune('A'+i))
		p, err := m.a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: attestation(prefix, did, i)}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := anchor.Sign(ctx, p, []hsm.Signer{m.key}); err != nil {
			t.Fatal(err)
		}
		if err := m.a.Save(ctx, p); err != nil {
			t.Fatal(err)
		}
		props[i] = p
	}
	// Both proposals reach origin before the race.
	for _, m := range ms {
		m.push(t)
	}
	errs := make([]error, 2)
	done := make(chan int, 2)
	for i, m := range ms {
		go func(i int, m *machine) {
			_, errs[i] = m.a.CommitPush(ctx, props[i], registry.Remote{})
			done <- i
		}(i, m)
	}
	<-done
	<-done
	var stale int
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, anchor.ErrStale):
			stale++
			t.Logf("machine %d: %v", i, err)
			if _, lerr := ms[i].a.Load(ctx, prefix, props[i].SAID()); !errors.Is(lerr, registry.ErrNotFound) {
				t.Errorf("stale proposal kept: %v", lerr)
			}
		default:
			t.Fatalf("machine %d: %v", i, err)
		}
	}
	if stale != 1 {
		t.Fatalf("%d stale, want exactly one: %v", stale, errs)
	}
	// The committer deleted its proposal on origin; the loser's stays
	// there until a push: the loser fetched it when its push was refused,
	// and its next push finds it dead (its registry now holds the winner's
	// event at that s) and deletes it.
	loser := 1
	if errs[0] != nil {
		loser = 0
	}
	if got := git(t, origin, "for-each-ref", "--format=%(refname)", "refs/auths-agent/"); strings.TrimSpace(got) != "refs/auths-agent/pending/"+prefix+"/"+props[loser].SAID() {
		t.Errorf("origin's proposals after the race:\n%s\nwant the loser's", got)
	}
	pr, err := ms[loser].a.Push(ctx, registry.Remote{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"refs/auths-agent/pending/" + prefix + "/" + props[loser].SAID()}; !reflect.DeepEqual(pr.Deleted, want) {
		t.Errorf("loser's push deleted %q, want %q", pr.Deleted, want)
	}
	if got := git(t, origin, "for-each-ref", "--format=%(refname)", "refs/auths-agent/"); got != "" {
		t.Errorf("origin's proposals after the loser's push:\n%s\nwant none", got)
	}
	want := strings.TrimSpace(git(t, origin, "rev-parse", registry.RegistryRef))
	for _, m := range ms {
		if h, _ := m.reg.Head(); h != want {
			t.Errorf("%s at %s, want the remote's %s", m.dir, h, want)
		}
	}
}
