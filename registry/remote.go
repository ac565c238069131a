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
	Remote string // the remote's name (or URL, without user information)
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
		return "", "", fmt.Errorf("remote %s: %w", ShowURL(rem.Name), err)
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

// IsTransport reports whether err came from talking to a remote (it was
// unreachable, refused the connection or the credentials, has no such
// repository): input that named a remote that cannot be used, as opposed
// to a local failure or a refusal by the rules.
func IsTransport(err error) bool {
	var te *transportError
	return errors.As(err, &te)
}

func transportErr(err error) error {
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return err
	}
	return &transportError{err}
}

// userInfo matches the user information of URLs in a message.
var userInfo = regexp.MustCompile(`://[^/\s"']*@`)

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
	res := &PullResult{Remote: ShowURL(rem.Name), URL: ShowURL(url)}
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

// PendingRemotes names the remotes known to hold proposal id (those whose
// tracking refs hold it: it was fetched from there or pushed there),
// sorted.
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
