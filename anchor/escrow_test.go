package anchor_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// runHelper is the child process of TestEscrowKilledProcess: it stages an
// anchor, signs it with one key, saves it to escrow, says so, and waits to
// be killed.
func runHelper(name string) error {
	if name != "collect-one" {
		return fmt.Errorf("unknown helper %q", name)
	}
	ctx := context.Background()
	reg, err := registry.Open(os.Getenv("HELPER_REGISTRY"), registry.WithLogger(discard()))
	if err != nil {
		return err
	}
	u, err := hsm.ParsePKCS11URI(os.Getenv("HELPER_KEY"))
	if err != nil {
		return err
	}
	s, err := provider.Signer(ctx, u)
	if err != nil {
		return err
	}
	a := anchor.New(reg)
	did := os.Getenv("HELPER_DID")
	p, err := a.Stage(ctx, os.Getenv("HELPER_PREFIX"), anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: attestation(os.Getenv("HELPER_PREFIX"), did, 7)}}})
	if err != nil {
		return err
	}
	if _, err := anchor.Sign(ctx, p, []hsm.Signer{s}); err != nil {
		return err
	}
	if err := a.Save(ctx, p); err != nil {
		return err
	}
	fmt.Printf("saved %s\n", p.SAID())
	time.Sleep(time.Hour) // until killed
	return nil
}

func identity(t *testing.T, a *anchor.Anchorer, kt string, n int) (string, []hsm.Signer, []string) {
	t.Helper()
	var cur, next []hsm.Signer
	var uris []string
	for i := 0; i < n; i++ {
		s, u := newKey(t, tokenLabels[i%3], kel.Ed25519)
		nx, _ := newKey(t, tokenLabels[i%3], kel.Ed25519)
		cur, next, uris = append(cur, s), append(next, nx), append(uris, u)
	}
	return incept(t, a, cur, kt, next, kt), cur, uris
}

// TestEscrowKilledProcess: a process collects one of two signatures, saves
// the proposal and is killed; this process finds it, adds the second
// signature and commits.
func TestEscrowKilledProcess(t *testing.T) {
	ctx := context.Background()
	reg, dir := newRegistry(t)
	a := anchor.New(reg)
	prefix, cur, uris := identity(t, a, "2", 3)
	did := "did:key:z6MkEscrowed"

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=collect-one", "HELPER_REGISTRY="+dir,
		"HELPER_KEY="+uris[0], "HELPER_PREFIX="+prefix, "HELPER_DID="+did)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	said := strings.TrimSpace(strings.TrimPrefix(line, "saved "))

	list, err := a.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID.SAID != said || list[0].Err != nil {
		t.Fatalf("List = %+v, want one committable proposal %s", list, said)
	}
	p := list[0].Proposal
	if got, want := p.Status().Needs(), "2 of 3, has index 0"; got != want {
		t.Errorf("Needs = %q, want %q", got, want)
	}
	if _, err := anchor.Sign(ctx, p, cur[1:2]); err != nil {
		t.Fatal(err)
	}
	res, err := a.Commit(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.CleanupErr != nil {
		t.Error(res.CleanupErr)
	}
	if refs := git(t, dir, "for-each-ref", registry.PendingRefPrefix); refs != "" {
		t.Errorf("pending refs left after commit: %s", refs)
	}
	snap, _ := reg.Snapshot()
	if _, err := snap.Verify(prefix); err != nil {
		t.Fatal(err)
	}
	if _, err := snap.Attestation(did); err != nil {
		t.Fatal(err)
	}
	fsck(t, dir)
}

// TestEscrowUnion: two holders of the same proposal each save their own
// signature; the escrow holds both and the proposal loads complete.
func TestEscrowUnion(t *testing.T) {
	ctx := context.Background()
	reg, dir := newRegistry(t)
	clock := newClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	a := anchor.New(reg, anchor.WithClock(clock.Now))
	prefix, cur, _ := identity(t, a, "2", 3)
	ch := anchor.Change{Seals: mustSeals(t, "i="+prefix+",s=0,d="+kel.Digest([]byte("seal")))}
	p1, err := a.Stage(ctx, prefix, ch)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Minute)
	p2, err := a.Stage(ctx, prefix, ch)
	if err != nil {
		t.Fatal(err)
	}
	if p1.SAID() != p2.SAID() {
		t.Fatalf("same change on the same tip staged twice: %s and %s", p1.SAID(), p2.SAID())
	}
	anchor.Sign(ctx, p1, cur[2:3])
	anchor.Sign(ctx, p2, cur[0:1])
	if err := a.Save(ctx, p1); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, p2); err != nil {
		t.Fatal(err)
	}
	pd, err := a.Load(ctx, prefix, p1.SAID())
	if err != nil || pd.Err != nil || len(pd.Refused) > 0 {
		t.Fatalf("Load: %v %v %v", err, pd.Err, pd.Refused)
	}
	if got, want := pd.Proposal.Status().Needs(), "2 of 3, has indexes 0, 2 (complete)"; got != want {
		t.Errorf("Needs = %q, want %q", got, want)
	}
	// The first writer's creation time stays.
	if !pd.Proposal.Created().Equal(p1.Created()) {
		t.Errorf("created %s, want %s", pd.Proposal.Created(), p1.Created())
	}
	tree := git(t, dir, "ls-tree", "-r", "--name-only", registry.PendingRefPrefix+prefix+"/"+p1.SAID())
	if tree != "event.json\nmeta.json\nsigs/0.qb64\nsigs/2.qb64\n" {
		t.Errorf("pending tree:\n%s", tree)
	}
	if _, err := a.Commit(ctx, pd.Proposal); err != nil {
		t.Fatal(err)
	}
	fsck(t, dir)
}

// TestStaleAndExpired: a proposal overtaken by another commit is refused
// and removed; an expired one cannot be committed.
func TestStaleAndExpired(t *testing.T) {
	ctx := context.Background()
	reg, dir := newRegistry(t)
	clock := newClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	a := anchor.New(reg, anchor.WithClock(clock.Now))
	prefix, cur, _ := identity(t, a, "2", 3)

	stale, err := a.Stage(ctx, prefix, anchor.Change{Seals: mustSeals(t, "d="+kel.Digest([]byte("one")))})
	if err != nil {
		t.Fatal(err)
	}
	anchor.Sign(ctx, stale, cur[:1])
	if err := a.Save(ctx, stale); err != nil {
		t.Fatal(err)
	}
	other, err := a.Stage(ctx, prefix, anchor.Change{Seals: mustSeals(t, "d="+kel.Digest([]byte("two")))})
	if err != nil {
		t.Fatal(err)
	}
	anchor.Sign(ctx, other, cur[1:])
	if _, err := a.Commit(ctx, other); err != nil {
		t.Fatal(err)
	}
	pd, err := a.Load(ctx, prefix, stale.SAID())
	if err != nil {
		t.Fatal(err)
	}
	var se *anchor.StaleError
	if !errors.As(pd.Err, &se) || se.Tip != other.SAID() {
		t.Errorf("Load of the overtaken proposal: %v, want a StaleError naming tip %s", pd.Err, other.SAID())
	}
	anchor.Sign(ctx, stale, cur[1:2])
	head := git(t, dir, "rev-parse", registry.RegistryRef)
	if _, err := a.Commit(ctx, stale); !errors.Is(err, anchor.ErrStale) {
		t.Fatalf("Commit of a stale proposal: %v, want ErrStale", err)
	}
	if git(t, dir, "rev-parse", registry.RegistryRef) != head {
		t.Error("the registry moved")
	}
	if refs := git(t, dir, "for-each-ref", registry.PendingRefPrefix); refs != "" {
		t.Errorf("stale pending ref not removed: %s", refs)
	}

	// Expiry.
	late, err := a.Stage(ctx, prefix, anchor.Change{Seals: mustSeals(t, "d="+kel.Digest([]byte("three")))})
	if err != nil {
		t.Fatal(err)
	}
	anchor.Sign(ctx, late, cur[:1])
	if err := a.Save(ctx, late); err != nil {
		t.Fatal(err)
	}
	clock.Add(anchor.DefaultTTL + time.Second)
	pd, err = a.Load(ctx, prefix, late.SAID())
	if err != nil || !errors.Is(pd.Err, anchor.ErrExpired) || pd.Proposal == nil {
		t.Fatalf("Load after expiry: %v %v, want ErrExpired with the proposal", err, pd.Err)
	}
	anchor.Sign(ctx, pd.Proposal, cur[1:2])
	if _, err := a.Commit(ctx, pd.Proposal); !errors.Is(err, anchor.ErrExpired) {
		t.Fatalf("Commit after expiry: %v, want ErrExpired", err)
	}
	if git(t, dir, "rev-parse", registry.RegistryRef) != head {
		t.Error("the registry moved")
	}
	removed, err := a.Prune(ctx)
	if err != nil || len(removed) != 1 {
		t.Errorf("Prune: %d removed, %v; want the expired one", len(removed), err)
	}
	if refs := git(t, dir, "for-each-ref", registry.PendingRefPrefix); refs != "" {
		t.Errorf("expired pending ref not pruned: %s", refs)
	}
	fsck(t, dir)
}

// TestEscrowInceptionAndRotation: the same escrow serves inceptions
// (keys on several tokens, signed by enough of them) and rotations (dual
// indexes kept through the escrow files).
func TestEscrowInceptionAndRotation(t *testing.T) {
	ctx := context.Background()
	reg, dir := newRegistry(t)
	a := anchor.New(reg)
	var cur, next, next2 []hsm.Signer
	for i := 0; i < 3; i++ {
		s, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		n, _ := newKey(t, tokenLabels[i], kel.P256)
		n2, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		cur, next, next2 = append(cur, s), append(next, n), append(next2, n2)
	}
	spec := kel.InceptionSpec{Threshold: kel.SimpleThreshold(2), NextThreshold: kel.SimpleThreshold(2)}
	for i := range cur {
		spec.Keys = append(spec.Keys, qb64(t, cur[i]))
		spec.NextDigests = append(spec.NextDigests, kel.NextKeyDigest(qb64(t, next[i])))
	}
	icp, err := a.Incept(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	anchor.Sign(ctx, icp, cur[1:2])
	if err := a.Save(ctx, icp); err != nil {
		t.Fatal(err)
	}
	pd, err := a.Load(ctx, icp.Prefix(), icp.SAID())
	if err != nil || pd.Err != nil {
		t.Fatalf("Load inception: %v %v", err, pd.Err)
	}
	anchor.Sign(ctx, pd.Proposal, cur[2:3])
	if _, err := a.Commit(ctx, pd.Proposal); err != nil {
		t.Fatal(err)
	}
	prefix := icp.Prefix()

	// Rotate to next[1], next[2] (positions 0 and 1 now, 1 and 2 before).
	rspec := kel.RotationSpec{Keys: []string{qb64(t, next[1]), qb64(t, next[2])},
		Threshold: kel.SimpleThreshold(2), NextThreshold: kel.SimpleThreshold(1),
		NextDigests: []string{kel.NextKeyDigest(qb64(t, next2[0]))}}
	rot, err := a.Rotate(ctx, prefix, rspec)
	if err != nil {
		t.Fatal(err)
	}
	anchor.Sign(ctx, rot, next[2:3])
	if err := a.Save(ctx, rot); err != nil {
		t.Fatal(err)
	}
	pd, err = a.Load(ctx, prefix, rot.SAID())
	if err != nil || pd.Err != nil || len(pd.Refused) > 0 {
		t.Fatalf("Load rotation: %v %v %v", err, pd.Err, pd.Refused)
	}
	if got, want := pd.Proposal.Status().Needs(), "2 of 2, has index 1; prior next keys: 2 of 3, has position 2"; got != want {
		t.Errorf("Needs = %q, want %q", got, want)
	}
	anchor.Sign(ctx, pd.Proposal, next[1:2])
	res, err := a.Commit(ctx, pd.Proposal)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sigPrefixes(t, res.Event.Sigs), "2EAAAB,2EABAC"; got != want {
		t.Errorf("rotation signatures %s, want %s", got, want)
	}
	snap, _ := reg.Snapshot()
	if _, err := snap.Verify(prefix); err != nil {
		t.Fatal(err)
	}
	fsck(t, dir)
}

// TestEscrowMetaMustMatchDocument: meta.json is not signed, so a proposal
// whose meta.json names another device, or flips the supersede flag, than
// the document the event anchors says is refused as damaged (issue 9 item
// 5; before, Load took the device and the flag from meta.json as written).
func TestEscrowMetaMustMatchDocument(t *testing.T) {
	ctx := context.Background()
	reg, _ := newRegistry(t)
	a := anchor.New(reg)
	prefix, cur, _ := identity(t, a, "2", 3)
	did := "did:key:z6MkEscrowMeta"
	p, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: attestation(prefix, did, 1)}}})
	if err != nil {
		t.Fatal(err)
	}
	anchor.Sign(ctx, p, cur[:2])
	if err := a.Save(ctx, p); err != nil {
		t.Fatal(err)
	}
	id := registry.PendingID{Prefix: prefix, SAID: p.SAID()}
	orig, err := reg.ReadPending(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"device": "` + did + `"`, `"device": "did:key:z6MkSomeoneElse"`, "meta.json names device did:key:z6MkSomeoneElse, the signed document " + did},
		{`"file": "attestations/0.json",`, `"file": "attestations/0.json", "supersede": true,`, "meta.json says supersede=true, the signed document has revoked_at=false"},
	} {
		files := registry.PendingFiles{}
		for k, v := range orig {
			files[k] = v
		}
		edited := strings.Replace(string(files["meta.json"]), tc.from, tc.to, 1)
		if edited == string(files["meta.json"]) {
			t.Fatalf("meta.json has no %s:\n%s", tc.from, files["meta.json"])
		}
		files["meta.json"] = []byte(edited)
		if err := reg.DeletePending(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.PutPending(ctx, id, files); err != nil {
			t.Fatal(err)
		}
		pd, err := a.Load(ctx, prefix, p.SAID())
		if err != nil {
			t.Fatal(err)
		}
		if pd.Err == nil || !strings.Contains(pd.Err.Error(), tc.want) {
			t.Errorf("Load with meta.json edited to %s: %v, want damaged: %q", tc.to, pd.Err, tc.want)
		}
	}
}
