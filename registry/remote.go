package registry

// Exchanging the registry and the pending proposals with a git remote,
// through go-git: file paths (go-git runs git-upload-pack and
// git-receive-pack), ssh:// (authentication through the ssh-agent at
// SSH_AUTH_SOCK and host keys checked against known_hosts, go-git's
// defaults when no Auth is given) and https:// (Auth from the caller).
//
// A fetch lands in a namespace of its own,
// refs/auths-agent/remotes/<remote>/registry and …/pending/<prefix>/<said>,
// written by go-git: what the remote served, nothing more. Only after the
// fetched registry commits are verified (verify.go) does the local registry
// ref move, and only forward, with this package's lock-file protocol under
// the flock; proposals are then merged into the local ones by union
// (pendingmerge.go), each one first checked by the caller (its signatures
// mean something only to package anchor).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// RemotesRefPrefix is where fetched refs wait, per remote.
const RemotesRefPrefix = "refs/auths-agent/remotes/"

// outgoingRef points at a registry commit while it is pushed, before the
// local registry ref moves to it: go-git pushes from a ref.
const outgoingRef = "refs/auths-agent/outgoing/registry"

// ErrRemoteEmpty means the remote holds no registry yet.
var ErrRemoteEmpty = errors.New("remote without a registry")

// Remote names a git remote: a remote configured in the repository
// (remote.<name>.url), or a URL or path given directly.
type Remote struct {
	Name string
	// Auth authenticates to the remote; nil uses go-git's defaults (for
	// ssh://, the ssh-agent at SSH_AUTH_SOCK and known_hosts).
	Auth transport.AuthMethod
	// CABundle holds PEM certificates trusted for an https:// remote
	// besides the system's.
	CABundle []byte
}

// CheckPending judges a proposal fetched from a remote before it is merged:
// it returns the paths to leave out (a signature that does not verify) or
// an error refusing the whole proposal (stale, damaged, committed).
type CheckPending func(id PendingID, files PendingFiles) (refused []string, err error)

// PullResult says what a pull changed.
type PullResult struct {
	Remote string // the remote's name (or URL)
	URL    string // its URL, as shown: never with credentials
	// From and To are the local registry commit before and after ("" when
	// absent); Commits is the number of commits taken (all verified).
	From, To string
	Commits  int
	// Ahead is true when the local registry holds commits the remote does
	// not have (push them).
	Ahead   bool
	Pending []PendingPull
}

// PendingPull is what happened to one proposal the remote holds.
type PendingPull struct {
	ID PendingID
	*MergeResult
	Refused []string // paths of the remote's copy left out, with why
	Err     error    // the proposal was not taken
}

// resolve returns the name for the remotes/ namespace and the URL.
func (r *Registry) resolve(rem Remote) (name, url string, err error) {
	if rem.Name == "" {
		rem.Name = "origin"
	}
	repo, err := git.PlainOpen(r.topDir)
	if err != nil {
		return "", "", fmt.Errorf("remote %s: %w", rem.Name, err)
	}
	if gr, err := repo.Remote(rem.Name); err == nil && len(gr.Config().URLs) > 0 {
		return rem.Name, gr.Config().URLs[0], nil
	}
	if strings.Contains(rem.Name, "/") || strings.Contains(rem.Name, ":") {
		// A URL or a path: its fetched refs go under a name derived from it.
		sum := plumbing.ComputeHash(plumbing.BlobObject, []byte(rem.Name)).String()
		return "url-" + sum[:12], rem.Name, nil
	}
	return "", "", fmt.Errorf("remote %q: not configured in %s (git remote add %s URL), and not a URL or path", clip(rem.Name), r.topDir, clip(rem.Name))
}

// transportError is an error of go-git's transports shown on one line,
// clipped, and without the user information of the URLs in it: its text
// may come from the remote (an HTTP body, a hook's output) or name the URL
// as configured.
type transportError struct{ err error }

func (e *transportError) Error() string { return cleanRemoteText(e.err.Error()) }
func (e *transportError) Unwrap() error { return e.err }

func transportErr(err error) error {
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return err
	}
	return &transportError{err}
}

// userInfo matches the user information of URLs in a message.
var userInfo = regexp.MustCompile(`://[^/@\s"']*@`)

// maxRemoteText bounds the text of a transport error.
const maxRemoteText = 400

func cleanRemoteText(s string) string {
	s = userInfo.ReplaceAllString(s, "://")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if r := []rune(s); len(r) > maxRemoteText {
		s = string(r[:maxRemoteText-3]) + "..."
	}
	return s
}

// ShowURL returns a URL without its user information, for messages.
func ShowURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		host, path, _ := strings.Cut(rest, "/")
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			host = host[at+1:]
		}
		return u[:i+3] + host + "/" + path
	}
	return u
}

func (r *Registry) goRemote(name, url string) (*git.Remote, error) {
	repo, err := git.PlainOpen(r.topDir)
	if err != nil {
		return nil, err
	}
	return git.NewRemote(repo.Storer, &config.RemoteConfig{Name: name, URLs: []string{url}}), nil
}

// Pull fetches the remote's registry ref and proposals, verifies every new
// registry commit and fast-forwards the local registry ref to the remote's
// (never anything else: a remote that diverged is ErrNotFastForward, a
// commit that fails verification a *RefusedError, and the local refs stay
// as they were), then merges each proposal the remote holds into the local
// one, after check (which may be nil) has judged it.
func (r *Registry) Pull(ctx context.Context, rem Remote, check CheckPending) (*PullResult, error) {
	name, url, err := r.resolve(rem)
	if err != nil {
		return nil, err
	}
	res := &PullResult{Remote: rem.Name, URL: ShowURL(url)}
	if res.Remote == "" {
		res.Remote = "origin"
	}
	fail := func(err error) (*PullResult, error) {
		return nil, fmt.Errorf("pull from %s: %w", res.URL, err)
	}
	gr, err := r.goRemote(name, url)
	if err != nil {
		return fail(err)
	}
	// One connection: the fetch itself reads the remote's refs. The
	// registry refspec names one ref, so a remote without it fails with
	// NoMatchingRefSpecError; the pending one is a wildcard that may match
	// nothing. Prune drops the tracking refs of proposals the remote no
	// longer holds, so the tracking namespace lists exactly the remote's.
	ns := RemotesRefPrefix + name + "/"
	specs := []config.RefSpec{
		config.RefSpec("+" + RegistryRef + ":" + ns + "registry"),
		config.RefSpec("+" + PendingRefPrefix + "*:" + ns + "pending/*"),
	}
	err = transportErr(gr.FetchContext(ctx, &git.FetchOptions{RemoteName: name, RefSpecs: specs, Auth: rem.Auth, CABundle: rem.CABundle, Tags: git.NoTags, Prune: true}))
	switch {
	case err == nil || errors.Is(err, git.NoErrAlreadyUpToDate):
	case errors.Is(err, transport.ErrEmptyRemoteRepository) || errors.Is(err, git.NoMatchingRefSpecError{}):
		return fail(fmt.Errorf("%w: it has no %s", ErrRemoteEmpty, RegistryRef))
	default:
		return fail(err)
	}
	remotePending, err := r.pendingIDsUnder(ns + "pending/")
	if err != nil {
		return fail(err)
	}
	unlock, err := r.lock(ctx)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	if err := r.migratePendingLocked(ctx); err != nil {
		return fail(err)
	}
	theirs, err := r.readRef(ns + "registry")
	if err != nil || theirs.IsZero() {
		return fail(fmt.Errorf("fetched %s missing: %v", RegistryRef, err))
	}
	local, err := r.readRef(RegistryRef)
	if err != nil {
		return fail(err)
	}
	res.From, res.To = hashString(local), hashString(local)
	chain, ahead, err := r.chainTo(ctx, local, theirs)
	if err != nil {
		return fail(err)
	}
	res.Ahead = ahead && local != theirs
	parent := local
	for _, c := range chain {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if err := r.verifyStep(parent, c); err != nil {
			return fail(&RefusedError{Commit: c.String(), Reason: err})
		}
		parent = c
	}
	if len(chain) > 0 {
		if err := r.casRef(ctx, RegistryRef, local, theirs); err != nil {
			return fail(err)
		}
		res.To, res.Commits = theirs.String(), len(chain)
	}
	for _, id := range remotePending {
		res.Pending = append(res.Pending, r.pullPendingLocked(ctx, ns, id, check))
	}
	return res, nil
}

// pullPendingLocked merges the fetched copy of proposal id into the local
// one; the caller holds the flock.
func (r *Registry) pullPendingLocked(ctx context.Context, ns string, id PendingID, check CheckPending) PendingPull {
	pp := PendingPull{ID: id}
	ref := ns + "pending/" + id.String()
	h, err := r.readRef(ref)
	if err != nil || h.IsZero() {
		pp.Err = fmt.Errorf("fetched %s missing: %v", ref, err)
		return pp
	}
	files, err := r.pendingFilesAt(ref, h)
	if err != nil {
		pp.Err = err
		return pp
	}
	if check != nil {
		refused, err := check(id, files)
		if err != nil {
			pp.Err = err
			return pp
		}
		if len(refused) > 0 {
			// The remote's history holds files that do not verify: it is
			// not taken as a parent. What verifies is added on top of the
			// local copy, which then no longer contains the remote's.
			pp.Refused = refused
			for _, p := range refused {
				delete(files, p)
			}
			if len(files) == 0 {
				return pp
			}
			put, err := r.putPendingLocked(ctx, id, files)
			if err != nil {
				pp.Err = err
				return pp
			}
			how := "added"
			if len(put.Added) == 0 {
				how = "unchanged"
			}
			pp.MergeResult = &MergeResult{Commit: put.Commit, Added: put.Added, Kept: put.Kept, How: how}
			return pp
		}
	}
	pp.MergeResult, pp.Err = r.mergePendingLocked(ctx, id.Ref(), id, h)
	return pp
}

// pendingFilesAt reads the files of the proposal tree of commit h.
func (r *Registry) pendingFilesAt(ref string, h plumbing.Hash) (PendingFiles, error) {
	c, err := r.readCommit(h)
	if err != nil {
		return nil, corrupt(ref, "commit %s unreadable: %v", h, err)
	}
	files := PendingFiles{}
	ids := map[string]plumbing.Hash{}
	err = r.walkPending(ref, c.TreeHash, ids, func(p string, bh plumbing.Hash) error {
		data, err := r.readBlobMax(bh, maxPendingFileSize)
		if errors.Is(err, errTooLarge) {
			return corrupt(ref+":"+p, "more than %d bytes", maxPendingFileSize)
		}
		if err != nil {
			return corrupt(ref+":"+p, "blob unreadable: %v", err)
		}
		files[p] = data
		return nil
	})
	return files, err
}

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
	res := &PushResult{Remote: rem.Name, URL: ShowURL(url)}
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
	out := &CommitPushResult{Remote: rem.Name, URL: ShowURL(url)}
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
	err = transportErr(gr.PushContext(ctx, &git.PushOptions{RemoteName: name, Auth: rem.Auth, CABundle: rem.CABundle,
		RefSpecs: []config.RefSpec{config.RefSpec(outgoingRef + ":" + RegistryRef)}}))
	switch {
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

// PendingRemotes names the remotes from which proposal id was fetched (the
// remotes whose fetched refs hold it), sorted.
func (r *Registry) PendingRemotes(id PendingID) ([]string, error) {
	if err := id.check(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	entries, err := os.ReadDir(filepath.Join(r.gitDir, filepath.FromSlash(RemotesRefPrefix)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list remotes of %s: %w", id, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if h, err := r.readRef(RemotesRefPrefix + e.Name() + "/pending/" + id.String()); err == nil && !h.IsZero() {
				seen[e.Name()] = true
			}
		}
	}
	packed, err := r.packedRefNames(RemotesRefPrefix)
	if err != nil {
		return nil, err
	}
	for _, n := range packed {
		name, rest, _ := strings.Cut(strings.TrimPrefix(n, RemotesRefPrefix), "/")
		if rest == "pending/"+id.String() {
			seen[name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// RemoteURL returns the URL a Remote names (configured remote or URL).
func (r *Registry) RemoteURL(rem Remote) (string, error) {
	_, url, err := r.resolve(rem)
	return url, err
}
