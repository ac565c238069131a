package registry

// Merging two histories of one proposal, and moving proposals out of the
// legacy namespace. A proposal's ref only ever moves forward: adding files
// is a commit on top of the previous one (PutPending), and two sides that
// both added files (two machines signing at once, a fetch from a remote)
// are joined by a merge commit whose parents are both sides, so the result
// is a fast-forward from each of them and a push of it is never refused as
// a non-fast-forward.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxHistoryWalk bounds the commits visited when asking whether one commit
// descends from another: a proposal's history is a handful of commits, and
// a remote must not make a reader walk without end.
const maxHistoryWalk = 4096

// MergeResult says what merging another side into a proposal did.
type MergeResult struct {
	Commit string   // the local ref's commit afterwards
	Added  []string // paths the other side brought, sorted
	Kept   []string // paths both sides hold with different content: the local one stays
	// How is "created", "unchanged", "fast-forward" or "merge".
	How string
}

// mergePendingLocked joins commit other (another history of proposal id,
// its objects already in the repository) into the local ref: taken as it
// is when the ref is missing or an ancestor of other, nothing when other is
// already contained, else a merge commit with the union of both trees (a
// path both hold keeps the local content). The caller holds the flock.
func (r *Registry) mergePendingLocked(ctx context.Context, ref string, id PendingID, other plumbing.Hash) (*MergeResult, error) {
	oc, err := r.readCommit(other)
	if err != nil {
		return nil, corrupt(ref, "commit %s unreadable: %v", other, err)
	}
	theirs := map[string]plumbing.Hash{}
	if err := r.walkPending(ref, oc.TreeHash, theirs, func(string, plumbing.Hash) error { return nil }); err != nil {
		return nil, err
	}
	cur, err := r.readRef(ref)
	if err != nil {
		return nil, err
	}
	res := &MergeResult{Commit: hashString(cur)}
	move := func(how string) (*MergeResult, error) {
		if err := r.casRef(ctx, ref, cur, other); err != nil {
			return nil, err
		}
		res.Commit, res.How = other.String(), how
		return res, nil
	}
	if cur.IsZero() {
		for p := range theirs {
			res.Added = append(res.Added, p)
		}
		sort.Strings(res.Added)
		return move("created")
	}
	if cur == other {
		res.How = "unchanged"
		return res, nil
	}
	if ok, err := r.descends(cur, other); err != nil {
		return nil, fmt.Errorf("pending %s: %w", id, err)
	} else if ok {
		res.Added, _ = r.pendingDiff(ref, cur, theirs)
		return move("fast-forward")
	}
	if ok, err := r.descends(other, cur); err != nil {
		return nil, fmt.Errorf("pending %s: %w", id, err)
	} else if ok {
		res.How = "unchanged"
		return res, nil
	}
	cc, err := r.readCommit(cur)
	if err != nil {
		return nil, corrupt(ref, "commit %s unreadable: %v", cur, err)
	}
	ours := map[string]plumbing.Hash{}
	if err := r.walkPending(ref, cc.TreeHash, ours, func(string, plumbing.Hash) error { return nil }); err != nil {
		return nil, err
	}
	edits := map[string]plumbing.Hash{}
	for p, h := range theirs {
		oh, ok := ours[p]
		switch {
		case !ok:
			edits[p] = h
			res.Added = append(res.Added, p)
		case oh != h:
			res.Kept = append(res.Kept, p)
		}
	}
	sort.Strings(res.Added)
	sort.Strings(res.Kept)
	if len(ours)+len(edits) > maxPendingFiles {
		return nil, fmt.Errorf("pending %s: more than %d files", id, maxPendingFiles)
	}
	ob := newObjectBatch()
	snap := &Snapshot{r: r, root: cc.TreeHash, trees: map[plumbing.Hash]*object.Tree{}}
	root, err := snap.applyEdits(ob, edits)
	if err != nil {
		return nil, fmt.Errorf("pending %s: %w", id, err)
	}
	sig := object.Signature{Name: "auths-agent", Email: "auths-agent@localhost", When: r.opts.clock().UTC()}
	msg := fmt.Sprintf("auths-agent: merge pending %s %s\n\n%s\n", id.Prefix, id.SAID, joinLines(prefixed("+ ", res.Added)))
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: root, ParentHashes: []plumbing.Hash{cur, other}}
	cid, err := ob.addEncoded(c)
	if err != nil {
		return nil, fmt.Errorf("pending %s: commit object: %w", id, err)
	}
	release, err := r.writeObjects(ob)
	if err != nil {
		return nil, err
	}
	if err := r.moveRef(ctx, ref, cur, cid, release); err != nil {
		return nil, err
	}
	r.afterWrite()
	res.Commit, res.How = cid.String(), "merge"
	return res, nil
}

func joinLines(l []string) string {
	out := ""
	for i, s := range l {
		if i > 0 {
			out += "\n"
		}
		out += s
	}
	return out
}

// pendingDiff lists the paths of theirs that the tree of commit cur lacks.
func (r *Registry) pendingDiff(ref string, cur plumbing.Hash, theirs map[string]plumbing.Hash) ([]string, error) {
	cc, err := r.readCommit(cur)
	if err != nil {
		return nil, err
	}
	ours := map[string]plumbing.Hash{}
	if err := r.walkPending(ref, cc.TreeHash, ours, func(string, plumbing.Hash) error { return nil }); err != nil {
		return nil, err
	}
	var out []string
	for p := range theirs {
		if _, ok := ours[p]; !ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// errHistoryTooLong is returned when a history walk passes maxHistoryWalk.
var errHistoryTooLong = fmt.Errorf("history longer than %d commits", maxHistoryWalk)

// descends reports whether commit desc has anc among its ancestors (or is
// anc), visiting at most maxHistoryWalk commits.
func (r *Registry) descends(anc, desc plumbing.Hash) (bool, error) {
	if anc == desc {
		return true, nil
	}
	seen := map[plumbing.Hash]bool{desc: true}
	queue := []plumbing.Hash{desc}
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if len(seen) > maxHistoryWalk {
			return false, errHistoryTooLong
		}
		c, err := r.readCommit(h)
		if err != nil {
			return false, fmt.Errorf("commit %s unreadable: %w", h, err)
		}
		for _, p := range c.ParentHashes {
			if p == anc {
				return true, nil
			}
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	return false, nil
}

// hasLegacyPending tells whether any proposal remains under the legacy
// namespace (a directory listing and a scan of packed-refs).
func (r *Registry) hasLegacyPending() (bool, error) {
	ids, err := r.pendingIDsUnder(LegacyPendingRefPrefix)
	return len(ids) > 0, err
}

// migratePending moves legacy proposals when there are any, taking the
// flock (waiting at most as long as for a ref lock).
func (r *Registry) migratePending() error {
	if ok, err := r.hasLegacyPending(); err != nil || !ok {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(r.opts.refWait, time.Second))
	defer cancel()
	unlock, err := r.lock(ctx)
	if err != nil {
		return fmt.Errorf("move pending proposals to %s: %w", PendingRefPrefix, err)
	}
	defer unlock()
	return r.migratePendingLocked(ctx)
}

// migratePendingLocked moves every proposal under LegacyPendingRefPrefix to
// PendingRefPrefix: merged into a proposal of the same name already there
// (union, as for any two histories), then the legacy ref deleted. A crash
// in between leaves both refs, and the next use merges again, which
// changes nothing. The caller holds the flock.
func (r *Registry) migratePendingLocked(ctx context.Context) error {
	if ok, err := r.hasLegacyPending(); err != nil || !ok {
		return err
	}
	ids, err := r.pendingIDsUnder(LegacyPendingRefPrefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		old := LegacyPendingRefPrefix + id.String()
		h, err := r.readRef(old)
		if err != nil || h.IsZero() {
			errs = append(errs, err)
			continue
		}
		if _, err := r.mergePendingLocked(ctx, id.Ref(), id, h); err != nil {
			errs = append(errs, fmt.Errorf("move %s: %w", old, err))
			continue
		}
		if err := r.deleteRefLocked(ctx, old); err != nil {
			errs = append(errs, fmt.Errorf("move %s: %w", old, err))
		}
	}
	if len(errs) == 0 {
		// Empty now: git leaves such directories, nothing needs this one.
		os.Remove(filepath.Join(r.gitDir, filepath.FromSlash(LegacyPendingRefPrefix)))
	}
	return errors.Join(errs...)
}
