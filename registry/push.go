package registry

// Sending to a git remote: the registry ref and the proposals as
// fast-forwards (Push, PushRetry), deleting the remote's dead proposals as
// compare-and-deletes (PushDropping), and a commit that lands on the
// remote before the local ref moves (CommitPush). Fetching and the
// namespace of fetched refs are in remote.go.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
)

// PushResult says what a push sent.
type PushResult struct {
	Remote, URL string
	Refs        []string // the refs pushed
	UpToDate    bool     // the remote already had everything
	// Attempts is the number of pushes PushRetry made; Pulls what the
	// pulls between them took.
	Attempts int
	Pulls    []*PullResult
	// Deleted lists the proposal refs deleted on the remote: proposals it
	// held at the last fetch that can never be committed.
	Deleted []string
}

// DeadPending judges a proposal the remote held at the last fetch (and
// the local repository does not hold): true when it can never be
// committed, and its ref on the remote is deleted.
type DeadPending func(id PendingID, files PendingFiles) bool

// remoteMoved tells whether a push failed because a ref on the remote is
// not where the push expected it: go-git's own fast-forward check (the
// remote moved to a commit this repository lacks or that does not lead
// to ours), or git-receive-pack losing the compare-and-swap to a
// concurrent push.
func remoteMoved(err error) bool {
	msg := err.Error()
	// "required to be": a proposal ref to delete is no longer at the
	// commit that was judged dead (PushRequire's compare-and-delete).
	for _, s := range []string{"non-fast-forward", "failed to update ref", "cannot lock ref", "failed to lock", "fetch first", "stale info", "required to be", "atomic push failure", "atomic transaction failed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// PushRetry pushes (PushDropping with dead); when the remote moved
// meanwhile it pulls (verifying and merging as Pull does, check judging
// proposals) and pushes again, at most attempts pushes in all. A registry
// that diverged (two machines committed different events) is not retried:
// Pull reports it.
func (r *Registry) PushRetry(ctx context.Context, rem Remote, check CheckPending, dead DeadPending, attempts int) (*PushResult, error) {
	var pulls []*PullResult
	for n := 1; ; n++ {
		res, err := r.PushDropping(ctx, rem, dead)
		if err == nil {
			res.Attempts, res.Pulls = n, pulls
			return res, nil
		}
		if !errors.Is(err, ErrNotFastForward) || n >= max(attempts, 1) || ctx.Err() != nil {
			return nil, err
		}
		pr, perr := r.Pull(ctx, rem, check)
		if perr != nil {
			return nil, fmt.Errorf("%v; then %w", err, perr)
		}
		pulls = append(pulls, pr)
	}
}

// Push sends the registry ref and every local proposal to the remote, each
// only as a fast-forward: a remote that moved is ErrNotFastForward (pull,
// then push again); nothing is forced and nothing is deleted there.
func (r *Registry) Push(ctx context.Context, rem Remote) (*PushResult, error) {
	return r.PushDropping(ctx, rem, nil)
}

// PushDropping is Push that also deletes, in the same push, the remote's
// proposals that dead judges can never be committed: those the remote held
// at the last fetch (refs/auths-agent/remotes/<remote>/pending/…) and the
// local repository does not hold. Each deletion is a compare-and-delete on
// the commit that was judged: go-git refuses the push when the remote's
// ref is no longer there (another machine pushed signatures to it since),
// and git-receive-pack deletes only a ref still at the old value the
// command names; either way it is ErrNotFastForward (pull, then push
// again), and nothing another machine pushed since the fetch is deleted
// unseen. Proposals live outside refs/auths/, where auths' pre-receive
// hook refuses deletions.
func (r *Registry) PushDropping(ctx context.Context, rem Remote, dead DeadPending) (*PushResult, error) {
	name, url, err := r.resolve(rem)
	if err != nil {
		return nil, err
	}
	res := &PushResult{Remote: ShowURL(rem.Name), URL: ShowURL(url)}
	if res.Remote == "" {
		res.Remote = "origin"
	}
	fail := func(err error) (*PushResult, error) {
		return nil, fmt.Errorf("push to %s: %w", res.URL, err)
	}
	if err := r.migratePending(); err != nil {
		return fail(err)
	}
	var specs []config.RefSpec
	if h, err := r.readRef(RegistryRef); err != nil {
		return fail(err)
	} else if !h.IsZero() {
		specs = append(specs, config.RefSpec(RegistryRef+":"+RegistryRef))
		res.Refs = append(res.Refs, RegistryRef)
	}
	ids, err := r.pendingIDsUnder(PendingRefPrefix)
	if err != nil {
		return fail(err)
	}
	for _, id := range ids {
		specs = append(specs, config.RefSpec(id.Ref()+":"+id.Ref()))
		res.Refs = append(res.Refs, id.Ref())
	}
	var require []config.RefSpec
	if dead != nil {
		del, req, err := r.deadOnRemote(name, ids, dead)
		if err != nil {
			return fail(err)
		}
		for i, ref := range del {
			specs = append(specs, config.RefSpec(":"+ref))
			require = append(require, req[i])
		}
		res.Deleted = del
	}
	if len(specs) == 0 {
		return fail(fmt.Errorf("nothing to push: no %s and no proposals", RegistryRef))
	}
	gr, err := r.goRemote(name, url)
	if err != nil {
		return fail(err)
	}
	// With deletions the push is atomic (where the server supports it, as
	// git-receive-pack does): a proposal judged dead against the registry
	// this push sends is never deleted while that registry is refused.
	err = transportErr(gr.PushContext(ctx, &git.PushOptions{RemoteName: name, RefSpecs: specs, Auth: rem.Auth, CABundle: rem.CABundle,
		RequireRemoteRefs: require, Atomic: len(require) > 0}))
	switch {
	case errors.Is(err, git.NoErrAlreadyUpToDate):
		res.UpToDate = true
	case err != nil && remoteMoved(err):
		return fail(fmt.Errorf("%w: the remote moved: %v (pull, then push again)", ErrNotFastForward, err))
	case err != nil:
		return fail(err)
	}
	r.trackPushed(ctx, name, ids, res.Deleted)
	return res, nil
}

// trackPushed records what a push left on the remote, as git does with
// its remote-tracking refs: the fetched copy of each proposal pushed is
// the local one (so that the remote's copy can be deleted once committed,
// DeleteRemotePending), and the deleted ones have none (else the next
// push would ask to delete them again). Best effort: a tracking ref that
// lags only costs a later pull or push an extra round.
func (r *Registry) trackPushed(ctx context.Context, name string, pushed []PendingID, deleted []string) {
	unlock, err := r.lock(ctx)
	if err != nil {
		return
	}
	defer unlock()
	ns := RemotesRefPrefix + name + "/pending/"
	for _, id := range pushed {
		h, err := r.readRef(id.Ref())
		if err != nil || h.IsZero() {
			continue
		}
		if old, err := r.readRef(ns + id.String()); err == nil && old != h {
			r.casRef(ctx, ns+id.String(), old, h)
		}
	}
	for _, ref := range deleted {
		r.deleteRefLocked(ctx, ns+strings.TrimPrefix(ref, PendingRefPrefix))
	}
}

// deadOnRemote lists the proposals the remote name held at the last fetch,
// not among the local ones, that dead judges: their refs, and for each the
// requirement that it still be at the fetched commit.
func (r *Registry) deadOnRemote(name string, local []PendingID, dead DeadPending) (refs []string, require []config.RefSpec, err error) {
	ns := RemotesRefPrefix + name + "/pending/"
	fetched, err := r.pendingIDsUnder(ns)
	if err != nil {
		return nil, nil, err
	}
	have := map[PendingID]bool{}
	for _, id := range local {
		have[id] = true
	}
	for _, id := range fetched {
		if have[id] {
			continue // pushed as the local copy, judged live locally
		}
		h, err := r.readRef(ns + id.String())
		if err != nil || h.IsZero() {
			continue
		}
		files, err := r.pendingFilesAt(ns+id.String(), h)
		if err != nil {
			continue // unreadable here: left to whoever can judge it
		}
		if dead(id, files) {
			refs = append(refs, id.Ref())
			require = append(require, config.RefSpec(h.String()+":"+id.Ref()))
		}
	}
	return refs, require, nil
}

// CommitPushResult describes a batch committed through a remote.
type CommitPushResult struct {
	CommitResult
	Remote, URL string
	Pulls       []*PullResult // what each pull before a push took
}

// CommitPush commits b so that it lands on the remote first: it builds
// the commit on the local tip under the flock, pushes it as the remote's
// registry ref (only a fast-forward: go-git checks the remote's tip is an
// ancestor, git-receive-pack that the ref is still where it was
// advertised), and only when the remote took it moves the local ref. In
// the common case that is one connection. A remote that moved meanwhile
// (another machine committed) is pulled (every commit verified,
// fast-forward only) and the batch verified again on the new tip, at most
// attempts pushes in all: a batch still valid there commits on top, one
// whose event's sequence number the other machine took fails as Commit
// does (a *ConflictError naming the operation), and the local registry
// then holds exactly what the remote holds. A remote without a registry
// receives the local one.
func (r *Registry) CommitPush(ctx context.Context, b *Batch, rem Remote, check CheckPending, attempts int) (*CommitPushResult, error) {
	if b == nil || b.Len() == 0 {
		return nil, errors.New("commit: empty batch")
	}
	name, url, err := r.resolve(rem)
	if err != nil {
		return nil, err
	}
	out := &CommitPushResult{Remote: ShowURL(rem.Name), URL: ShowURL(url)}
	for n := 1; ; n++ {
		if n > 1 {
			pr, err := r.Pull(ctx, rem, check)
			switch {
			case errors.Is(err, ErrRemoteEmpty):
			case err != nil:
				return nil, err
			default:
				out.Pulls = append(out.Pulls, pr)
			}
		}
		res, err := r.commitPushOnce(ctx, b, name, url, rem)
		if err == nil {
			res.Attempts = n
			out.CommitResult = *res
			return out, nil
		}
		if !errors.Is(err, ErrNotFastForward) || n >= max(attempts, 1) || ctx.Err() != nil {
			return nil, err
		}
	}
}

// commitPushOnce builds the commit, pushes it and moves the local ref, all
// under the registry lock, the network push included. Releasing the lock
// for the push would be unsound: another local writer (the CLI, a second
// agent) could then commit on the same parent, and once the remote took
// this commit the local ref could move to neither without a fork — the
// remote holding one event and the local registry another at the same
// place, possibly the same sequence number of one identity (duplicity the
// agent itself made). Holding the lock keeps "the remote first, then the
// local ref" a fast-forward on both sides. Local writers wait meanwhile,
// so the push is bounded by WithLockedPushTimeout (default 30s), not only
// by the request's context. A push whose answer was lost may still have
// landed; the remote is then ahead, and the next pull fetches and verifies
// the commit like any other.
func (r *Registry) commitPushOnce(ctx context.Context, b *Batch, name, url string, rem Remote) (*CommitResult, error) {
	unlock, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	parent, err := r.readRef(RegistryRef)
	if err != nil {
		return nil, err
	}
	id, release, err := r.buildCommitLocked(parent, b)
	if err != nil {
		return nil, err
	}
	defer release()
	old, err := r.readRef(outgoingRef)
	if err != nil {
		return nil, err
	}
	if err := r.casRef(ctx, outgoingRef, old, id); err != nil {
		return nil, err
	}
	defer r.deleteRefLocked(ctx, outgoingRef)
	gr, err := r.goRemote(name, url)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, r.opts.lockedPush)
	defer cancel()
	err = transportErr(gr.PushContext(pctx, &git.PushOptions{RemoteName: name, Auth: rem.Auth, CABundle: rem.CABundle,
		RefSpecs: []config.RefSpec{config.RefSpec(outgoingRef + ":" + RegistryRef)}}))
	switch {
	case err != nil && ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("push to %s: no answer within %v, the most a push may hold the registry lock: %w",
			ShowURL(url), r.opts.lockedPush, context.DeadlineExceeded)
	case err != nil && remoteMoved(err):
		return nil, fmt.Errorf("push to %s: %w: the remote moved: %v", ShowURL(url), ErrNotFastForward, err)
	case err != nil:
		return nil, fmt.Errorf("push to %s: %w", ShowURL(url), err)
	}
	if err := r.casRef(ctx, RegistryRef, parent, id); err != nil {
		return nil, fmt.Errorf("the remote took %s, but the local ref: %w", id, err)
	}
	r.afterWrite()
	return &CommitResult{Commit: id.String(), Parent: hashString(parent)}, nil
}

// DeleteRemotePending deletes proposals on the remote (those committed or
// dead), as a push of deletions: the proposals the remote held at the last
// fetch (CommitPush fetches just before it commits); one it did not hold
// then costs no connection, and if another machine pushed it since, the
// next push finds it dead and deletes it (PushDropping). Proposals live
// outside refs/auths/, where auths' pre-receive hook refuses deletions.
func (r *Registry) DeleteRemotePending(ctx context.Context, rem Remote, ids ...PendingID) error {
	name, url, err := r.resolve(rem)
	if err != nil {
		return err
	}
	ns := RemotesRefPrefix + name + "/pending/"
	var specs []config.RefSpec
	var tracking []string
	for _, id := range ids {
		if err := id.check(); err != nil {
			return fmt.Errorf("pending %s: %w", id, err)
		}
		if h, err := r.readRef(ns + id.String()); err != nil || h.IsZero() {
			continue
		}
		specs = append(specs, config.RefSpec(":"+id.Ref()))
		tracking = append(tracking, ns+id.String())
	}
	if len(specs) == 0 {
		return nil
	}
	gr, err := r.goRemote(name, url)
	if err != nil {
		return err
	}
	err = transportErr(gr.PushContext(ctx, &git.PushOptions{RemoteName: name, RefSpecs: specs, Auth: rem.Auth, CABundle: rem.CABundle}))
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("delete proposals on %s: %w", ShowURL(url), err)
	}
	if unlock, err := r.lock(ctx); err == nil {
		for _, ref := range tracking {
			r.deleteRefLocked(ctx, ref)
		}
		unlock()
	}
	return nil
}
