package anchor_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/registry"
)

// faultyStore is a registry whose snapshots or commits fail while a fault
// is set: reads that fail while another process merges packs, a disk that
// fills up. The real registry cannot produce these on demand, so this is
// the one fake of the package; everything else it passes to the real
// registry.
type faultyStore struct {
	*registry.Registry
	snapshotErr atomic.Pointer[error]
	commitErr   atomic.Pointer[error]
}

func (f *faultyStore) Snapshot() (*registry.Snapshot, error) {
	if err := f.snapshotErr.Load(); err != nil {
		return nil, *err
	}
	return f.Registry.Snapshot()
}

func (f *faultyStore) CommitRetry(ctx context.Context, b *registry.Batch, attempts int) (*registry.CommitResult, error) {
	if err := f.commitErr.Load(); err != nil {
		return nil, *err
	}
	return f.Registry.CommitRetry(ctx, b, attempts)
}

var _ anchor.Store = (*faultyStore)(nil)

// TestCommitKeepsEscrowOnTransientError: a fully signed proposal saved in
// escrow meets a read or write failure at commit time. Commit fails with
// that error, not as stale or committed, and the pending ref with every
// collected signature stays as it was; once the fault is gone the same
// proposal, loaded again from escrow, commits.
func TestCommitKeepsEscrowOnTransientError(t *testing.T) {
	packGone := &fs.PathError{Op: "open", Path: "objects/pack/pack-5f3c0e.pack", Err: syscall.ENOENT}
	for _, tc := range []struct {
		name     string
		snapshot error // fault of the tip check's snapshot
		commit   error // fault of the batch commit
		want     string
	}{
		{name: "pack-merged-away", snapshot: packGone, want: "pack-5f3c0e.pack"},
		{name: "object-missing", snapshot: &registry.CorruptError{Path: "v1/identities/x/tip.json", Reason: "object 4b825d missing"}, want: "object 4b825d missing"},
		{name: "disk-full", commit: &fs.PathError{Op: "write", Path: "objects/pack/tmp_pack_1", Err: syscall.ENOSPC}, want: "no space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			reg, dir := newRegistry(t)
			st := &faultyStore{Registry: reg}
			a := anchor.New(st)
			prefix, cur, _ := identity(t, a, "2", 3)
			did := "did:key:z6MkTransient"
			p, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: attestation(prefix, did, 3)}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := anchor.Sign(ctx, p, cur[:2]); err != nil {
				t.Fatal(err)
			}
			if err := a.Save(ctx, p); err != nil {
				t.Fatal(err)
			}
			ref := registry.PendingRefPrefix + prefix + "/" + p.SAID()
			tree := git(t, dir, "rev-parse", ref+"^{tree}")
			head := git(t, dir, "rev-parse", registry.RegistryRef)

			if tc.snapshot != nil {
				st.snapshotErr.Store(&tc.snapshot)
			}
			if tc.commit != nil {
				st.commitErr.Store(&tc.commit)
			}
			_, err = a.Commit(ctx, p)
			if err == nil {
				t.Fatal("Commit succeeded through a fault")
			}
			if anchor.Dead(err) {
				t.Errorf("Commit: %v: reported as stale, committed or expired", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Commit: %v, want the fault (%q) named", err, tc.want)
			}
			if got := git(t, dir, "for-each-ref", "--format=%(refname)", registry.PendingRefPrefix); got != ref+"\n" {
				t.Fatalf("pending refs after the failed commit: %q, want %s kept", got, ref)
			}
			if got := git(t, dir, "rev-parse", ref+"^{tree}"); got != tree {
				t.Errorf("the pending proposal changed: tree %s, was %s", strings.TrimSpace(got), strings.TrimSpace(tree))
			}
			if got := git(t, dir, "rev-parse", registry.RegistryRef); got != head {
				t.Errorf("the registry moved to %s", got)
			}

			st.snapshotErr.Store(nil)
			st.commitErr.Store(nil)
			pd, err := a.Load(ctx, prefix, p.SAID())
			if err != nil || pd.Err != nil || len(pd.Refused) > 0 {
				t.Fatalf("Load after the fault: %v %v %v", err, pd.Err, pd.Refused)
			}
			if !pd.Proposal.Complete() {
				t.Fatalf("loaded proposal: %s, want the two saved signatures", pd.Proposal.Status().Needs())
			}
			res, err := a.Commit(ctx, pd.Proposal)
			if err != nil {
				t.Fatal(err)
			}
			if res.CleanupErr != nil {
				t.Error(res.CleanupErr)
			}
			if got := git(t, dir, "for-each-ref", registry.PendingRefPrefix); got != "" {
				t.Errorf("pending refs after the commit: %s", got)
			}
			fsck(t, dir)
		})
	}
}

// TestCommitDropsDeadEscrow: what can never be committed is removed; the
// error says why (errors.Is reaches the typed error through the join).
func TestCommitDropsDeadEscrow(t *testing.T) {
	ctx := context.Background()
	reg, dir := newRegistry(t)
	a := anchor.New(reg)
	prefix, cur, _ := identity(t, a, "2", 3)
	p, err := a.Stage(ctx, prefix, anchor.Change{Seals: mustSeals(t, "d=EF_M_u7ASVHXfI8QzdWLq3V9ocSKqxkbujXGbi9QMtP9")})
	if err != nil {
		t.Fatal(err)
	}
	anchor.Sign(ctx, p, cur[:2])
	if err := a.Save(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(ctx, p); err != nil {
		t.Fatal(err)
	}
	// Saved again after its commit (a co-signer that was late): committing
	// it once more finds it in the KEL and removes it.
	if err := a.Save(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(ctx, p); !errors.Is(err, anchor.ErrCommitted) {
		t.Fatalf("second Commit: %v, want ErrCommitted", err)
	}
	if got := git(t, dir, "for-each-ref", registry.PendingRefPrefix); got != "" {
		t.Errorf("pending refs after ErrCommitted: %s", got)
	}
}
