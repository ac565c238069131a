package anchor

// Co-signing through git remotes: proposals and the registry travel with
// registry.Pull and registry.Push; what a remote serves is judged here
// before it is merged, because only this package knows what the files of
// a proposal mean.

import (
	"context"
	"errors"

	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// RemoteStore is the optional part of a Store that exchanges the registry
// and the proposals with git remotes; *registry.Registry has it.
type RemoteStore interface {
	Pull(ctx context.Context, rem registry.Remote, check registry.CheckPending) (*registry.PullResult, error)
	PushRetry(ctx context.Context, rem registry.Remote, check registry.CheckPending, dead registry.DeadPending, attempts int) (*registry.PushResult, error)
	CommitPush(ctx context.Context, b *registry.Batch, rem registry.Remote, check registry.CheckPending, attempts int) (*registry.CommitPushResult, error)
	DeleteRemotePending(ctx context.Context, rem registry.Remote, ids ...registry.PendingID) error
}

var _ RemoteStore = (*registry.Registry)(nil)

// ErrNoRemotes means the Anchorer's Store cannot reach git remotes.
var ErrNoRemotes = errors.New("the registry store cannot reach git remotes")

func (a *Anchorer) remotes() (RemoteStore, error) {
	rs, ok := a.reg.(RemoteStore)
	if !ok {
		return nil, ErrNoRemotes
	}
	return rs, nil
}

// FileError names a file of a pending proposal that was not kept (a
// signature that does not verify, one for a wrong index, an unreadable
// one).
type FileError struct {
	File string
	Err  error
}

func (e *FileError) Error() string { return e.File + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// CheckPending is a registry.CheckPending: it loads a proposal fetched from
// a remote as Load does, against the local registry (already fast-forwarded
// to the remote's), and returns the files to leave out (each signature is
// verified against its key over the event's bytes), or an error refusing
// the whole proposal: damaged, stale, committed or expired.
func (a *Anchorer) CheckPending(id registry.PendingID, files registry.PendingFiles) ([]string, error) {
	p, refused, err := a.decode(id, files)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, errors.New("not loadable")
	}
	var out []string
	for _, r := range refused {
		var fe *FileError
		if errors.As(r, &fe) {
			out = append(out, fe.File)
		}
	}
	return out, nil
}

var _ registry.CheckPending = (*Anchorer)(nil).CheckPending

// PullResult is what a pull took and what it made dead.
type PullResult struct {
	*registry.PullResult
	// Dropped lists the local proposals that can never be committed after
	// the pull (stale: the remote's registry moved their identity's tip;
	// committed; expired), removed.
	Dropped []*Pending
}

// Pull fetches the registry and the proposals of a remote (see
// registry.Registry.Pull: registry commits verified, fast-forward only;
// proposals checked with CheckPending and merged by union), then removes
// the local proposals the new registry made dead.
func (a *Anchorer) Pull(ctx context.Context, rem registry.Remote) (*PullResult, error) {
	rs, err := a.remotes()
	if err != nil {
		return nil, err
	}
	res, err := rs.Pull(ctx, rem, a.CheckPending)
	if err != nil {
		return nil, err
	}
	dropped, err := a.Prune(ctx)
	return &PullResult{PullResult: res, Dropped: dropped}, err
}

// DeadPending is a registry.DeadPending: it tells whether a proposal the
// remote held at the last fetch can never be committed, judged against the
// local registry: already committed, expired, or stale, and stale only when
// the local KEL already holds an event at its sequence number (a local
// registry behind the remote's, after a pull that was refused, never makes
// a remote's proposal look stale).
func (a *Anchorer) DeadPending(id registry.PendingID, files registry.PendingFiles) bool {
	_, _, err := a.decode(id, files)
	if errors.Is(err, ErrCommitted) || errors.Is(err, ErrExpired) {
		return true
	}
	if !errors.Is(err, ErrStale) {
		return false
	}
	e, perr := kel.ParseEvent(files[fileEvent])
	if perr != nil {
		return false
	}
	snap, serr := a.reg.Snapshot()
	if serr != nil {
		return false
	}
	tip, terr := snap.Tip(e.Prefix)
	return terr == nil && tip.Sequence >= e.Sn
}

var _ registry.DeadPending = (*Anchorer)(nil).DeadPending

// PushResult is what a push sent, and what it removed first.
type PushResult struct {
	*registry.PushResult
	// Dropped lists the local proposals that could never be committed,
	// removed before the push (never sent).
	Dropped []*Pending
}

// Push sends the registry and the proposals to a remote; when the remote
// moved meanwhile it pulls (merging what the others signed) and pushes
// again, three pushes at most. Local proposals that can never be committed
// are removed first, and the remote's proposals that DeadPending judges
// dead are deleted on the remote in the same push, each only if its ref is
// still at the commit judged (registry.Registry.PushDropping).
func (a *Anchorer) Push(ctx context.Context, rem registry.Remote) (*PushResult, error) {
	rs, err := a.remotes()
	if err != nil {
		return nil, err
	}
	dropped, err := a.Prune(ctx)
	if err != nil {
		return nil, err
	}
	res, err := rs.PushRetry(ctx, rem, a.CheckPending, a.DeadPending, 3)
	if err != nil {
		return nil, err
	}
	return &PushResult{PushResult: res, Dropped: dropped}, nil
}

// CommitPush is Commit through a remote: the commit lands on the remote
// before the local registry ref moves (registry.Registry.CommitPush); when
// another machine committed meanwhile, the proposal is checked again on the
// new tip and either committed on top or reported stale (a *StaleError;
// its pending ref removed), with the local registry equal to the remote's.
//
// Once committed, the proposal's ref is removed on the remote as well as
// locally (a failure there is in Result.CleanupErr: the others then find
// it committed and drop it when they pull).
func (a *Anchorer) CommitPush(ctx context.Context, p *Proposal, rem registry.Remote) (*Result, error) {
	rs, err := a.remotes()
	if err != nil {
		return nil, err
	}
	res, err := a.commit(ctx, p, func(b *registry.Batch) (*registry.CommitResult, error) {
		res, err := rs.CommitPush(ctx, b, rem, a.CheckPending, 3)
		if err != nil {
			return nil, err
		}
		return &res.CommitResult, nil
	})
	if err != nil {
		return nil, err
	}
	if derr := rs.DeleteRemotePending(ctx, rem, pendingID(p)); derr != nil {
		res.CleanupErr = errors.Join(res.CleanupErr, derr)
	}
	return res, nil
}
