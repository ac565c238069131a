package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// CommitResult describes a committed batch.
type CommitResult struct {
	Commit   string // the new commit of refs/auths/registry
	Parent   string // the commit it follows, "" for the first
	Attempts int    // compare-and-swap attempts it took
}

// Commit verifies the batch against the registry's current commit and
// writes it as one new commit: SAIDs, sequence numbers and prior SAIDs
// against the tip (or an earlier event of the batch), signatures against the
// key state with full threshold checks, attestation paths. It takes the
// registry flock, writes the new objects, then moves the ref with git's
// lock-file protocol. A failing operation is an *OpError naming it and
// nothing is written; a ref moved by a foreign writer meanwhile is a
// *ConflictError (see CommitRetry).
func (r *Registry) Commit(ctx context.Context, b *Batch) (*CommitResult, error) {
	return r.CommitRetry(ctx, b, 1)
}

// CommitRetry is Commit that retries a lost compare-and-swap up to attempts
// times in all, re-verifying the batch on the new tip each time: a batch
// still valid there (attestations, events of other identities) commits; an
// event whose sequence number was taken meanwhile fails with a
// *ConflictError for its operation and is never rebuilt or re-signed.
func (r *Registry) CommitRetry(ctx context.Context, b *Batch, attempts int) (*CommitResult, error) {
	if b == nil || b.Len() == 0 {
		return nil, errors.New("commit: empty batch")
	}
	if attempts < 1 {
		attempts = 1
	}
	var err error
	for n := 1; n <= attempts; n++ {
		var res *CommitResult
		res, err = r.commitOnce(ctx, b)
		if err == nil {
			res.Attempts = n
			return res, nil
		}
		if !refConflict(err) || ctx.Err() != nil {
			return nil, err
		}
	}
	return nil, err
}

func (r *Registry) commitOnce(ctx context.Context, b *Batch) (*CommitResult, error) {
	unlock, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	parent, err := r.readRef(RegistryRef)
	if err != nil {
		return nil, err
	}
	id, err := r.commitLocked(ctx, parent, b)
	if err != nil {
		return nil, err
	}
	return &CommitResult{Commit: id.String(), Parent: hashString(parent)}, nil
}

// commitLocked verifies and writes b on top of parent; the caller holds the
// flock.
func (r *Registry) commitLocked(ctx context.Context, parent plumbing.Hash, b *Batch) (plumbing.Hash, error) {
	id, release, err := r.buildCommitLocked(parent, b)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	err = r.moveRef(ctx, RegistryRef, parent, id, release)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	r.afterWrite()
	return id, nil
}

// buildCommitLocked verifies b on top of parent and writes its objects and
// commit, without moving any ref; release drops the .keep that protects
// the new pack until a ref points at it. The caller holds the flock.
func (r *Registry) buildCommitLocked(parent plumbing.Hash, b *Batch) (plumbing.Hash, func(), error) {
	snap, err := r.snapshotAt(parent)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	now := r.opts.clock()
	p, err := newPlanner(snap, now)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	for i, o := range b.ops {
		if err := p.op(i, o); err != nil {
			return plumbing.ZeroHash, nil, err
		}
	}
	if err := p.checkAnchors(); err != nil {
		return plumbing.ZeroHash, nil, err
	}
	msg, err := p.finish()
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	root, err := snap.applyEdits(p.ob, p.edits)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	sig := object.Signature{Name: "auths-agent", Email: "auths-agent@localhost", When: now.UTC()}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: root}
	if !parent.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent}
	}
	id, err := p.ob.addEncoded(c)
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("commit object: %w", err)
	}
	release, err := r.writeObjects(p.ob)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	return id, release, nil
}
