package registry

// This file is the git side of partial-signature escrow: proposals that are
// not fully signed yet wait under refs/auths-agent/pending/<prefix>/<said>,
// one ref each, as a commit whose tree holds the proposal's files (the event,
// one file per collected signature, metadata, the documents the change will
// store). What the files mean belongs to package anchor; here they are
// paths and bytes, merged by union so that two sets of signatures for one
// proposal, written by two processes or fetched from two remotes, combine.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// PendingRefPrefix is the ref namespace of pending proposals. It is outside
// refs/auths/: auths replicates that whole namespace to its witnesses and
// its pre-receive hook refuses deleting any ref there, while a proposal's
// ref goes away once it is committed or stale.
const PendingRefPrefix = "refs/auths-agent/pending/"

// LegacyPendingRefPrefix is where earlier versions kept proposals; they are
// moved to PendingRefPrefix the first time the pending refs are used (see
// migratePendingLocked).
const LegacyPendingRefPrefix = "refs/auths/pending/"

// Limits on what a pending ref may hold, so a hostile ref cannot make a
// reader allocate without bound.
const (
	maxPendingFiles    = 4096
	maxPendingFileSize = 4 << 20
	// maxPendingDepth bounds the nesting of a pending tree: paths are at
	// most 512 bytes (checkPendingPath), and the walk recurses per level.
	maxPendingDepth    = 16
	pendingPutAttempts = 8
)

// PendingID names a pending proposal: the identity and the SAID of the
// event waiting for signatures.
type PendingID struct {
	Prefix string
	SAID   string
}

// Ref returns refs/auths-agent/pending/<prefix>/<said>.
func (id PendingID) Ref() string { return PendingRefPrefix + id.Prefix + "/" + id.SAID }

func (id PendingID) String() string { return id.Prefix + "/" + id.SAID }

func (id PendingID) check() error {
	if err := checkPrefix(id.Prefix); err != nil {
		return err
	}
	if err := checkPrefix(id.SAID); err != nil {
		return fmt.Errorf("said: %w", err)
	}
	return nil
}

// PendingFiles are the files of a pending proposal: slash-separated paths
// relative to its tree, and their contents.
type PendingFiles map[string][]byte

// PutResult says what PutPending changed.
type PutResult struct {
	Commit string   // the ref's commit afterwards
	Added  []string // paths that were new, sorted
	// Kept lists paths the ref already held with other content: the stored
	// content stays (union keeps the first writer's file), sorted.
	Kept []string
}

// PutPending merges files into the pending proposal id by union: a path the
// ref lacks is added, a path it holds is left as it is. The ref is created
// when missing. Each change is a new commit whose parent is the previous
// one, and the ref moves with git's lock-file protocol under the registry
// flock; a writer that lost the compare-and-swap to a foreign writer reads
// the new value and merges again.
func (r *Registry) PutPending(ctx context.Context, id PendingID, files PendingFiles) (*PutResult, error) {
	if err := id.check(); err != nil {
		return nil, fmt.Errorf("pending %s: %w", id, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("pending %s: no files", id)
	}
	for p, data := range files {
		if err := checkPendingPath(p); err != nil {
			return nil, fmt.Errorf("pending %s: %w", id, err)
		}
		if len(data) > maxPendingFileSize {
			return nil, fmt.Errorf("pending %s: %s: %d bytes, more than %d", id, p, len(data), maxPendingFileSize)
		}
	}
	unlock, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := r.migratePendingLocked(ctx); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		res, err := r.putPendingLocked(ctx, id, files)
		if err == nil || !refConflict(err) || attempt >= pendingPutAttempts || ctx.Err() != nil {
			return res, err
		}
	}
}

func (r *Registry) putPendingLocked(ctx context.Context, id PendingID, files PendingFiles) (*PutResult, error) {
	ref := id.Ref()
	cur, err := r.readRef(ref)
	if err != nil {
		return nil, err
	}
	old := map[string]plumbing.Hash{}
	var root plumbing.Hash
	if !cur.IsZero() {
		c, err := r.readCommit(cur)
		if err != nil {
			return nil, corrupt(ref, "commit %s unreadable: %v", cur, err)
		}
		root = c.TreeHash
		if err := r.walkPending(ref, root, old, func(string, plumbing.Hash) error { return nil }); err != nil {
			return nil, err
		}
	}
	ob := newObjectBatch()
	edits := map[string]plumbing.Hash{}
	res := &PutResult{Commit: hashString(cur)}
	for p, data := range files {
		h := plumbing.ComputeHash(plumbing.BlobObject, data)
		if oh, ok := old[p]; ok {
			if oh != h {
				res.Kept = append(res.Kept, p)
			}
			continue
		}
		edits[p] = ob.add(plumbing.BlobObject, data)
		res.Added = append(res.Added, p)
	}
	sort.Strings(res.Added)
	sort.Strings(res.Kept)
	if len(edits) == 0 {
		return res, nil
	}
	if len(old)+len(edits) > maxPendingFiles {
		return nil, fmt.Errorf("pending %s: more than %d files", id, maxPendingFiles)
	}
	snap := &Snapshot{r: r, root: root, trees: map[plumbing.Hash]*object.Tree{}}
	newRoot, err := snap.applyEdits(ob, edits)
	if err != nil {
		return nil, fmt.Errorf("pending %s: %w", id, err)
	}
	now := r.opts.clock()
	sig := object.Signature{Name: "auths-agent", Email: "auths-agent@localhost", When: now.UTC()}
	msg := fmt.Sprintf("auths-agent: pending %s %s\n\n%s\n", id.Prefix, id.SAID, strings.Join(prefixed("+ ", res.Added), "\n"))
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: newRoot}
	if !cur.IsZero() {
		c.ParentHashes = []plumbing.Hash{cur}
	}
	cid, err := ob.addEncoded(c)
	if err != nil {
		return nil, fmt.Errorf("pending %s: commit object: %w", id, err)
	}
	release, err := r.writeObjects(ob)
	if err != nil {
		return nil, err
	}
	err = r.moveRef(ctx, ref, cur, cid, release)
	if err != nil {
		return nil, err
	}
	r.afterWrite()
	res.Commit = cid.String()
	return res, nil
}

func prefixed(p string, l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = p + s
	}
	return out
}

// checkPendingPath accepts relative slash paths of plain names.
func checkPendingPath(p string) error {
	if p == "" || len(p) > 512 {
		return fmt.Errorf("file path %q: empty or too long", clip(p))
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("file path %q: empty, . or .. component", clip(p))
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !isB64(c) && c != '.' {
				return fmt.Errorf("file path %q: character %q not allowed", clip(p), c)
			}
		}
	}
	return nil
}

// walkPending lists the blobs under tree h into out (path → blob id) and
// calls f for each. The tree may come from another process or a remote:
// its depth, the number of entries visited and every path are checked
// against the limits PutPending enforces before anything is read further.
func (r *Registry) walkPending(ref string, h plumbing.Hash, out map[string]plumbing.Hash, f func(string, plumbing.Hash) error) error {
	visited := 0
	return r.walkPendingDir(ref, "", 0, h, &visited, out, f)
}

func (r *Registry) walkPendingDir(ref, dir string, depth int, h plumbing.Hash, visited *int, out map[string]plumbing.Hash, f func(string, plumbing.Hash) error) error {
	if depth > maxPendingDepth {
		return corrupt(ref+":"+dir, "nested more than %d directories deep", maxPendingDepth)
	}
	t, err := r.readTree(h)
	if err != nil {
		return corrupt(ref+":"+pathOrRoot(dir), "tree unreadable: %v", err)
	}
	for _, e := range t.Entries {
		if *visited++; *visited > 2*maxPendingFiles {
			return corrupt(ref, "more than %d entries", 2*maxPendingFiles)
		}
		p := joinPath(dir, e.Name)
		if err := checkPendingPath(p); err != nil {
			return &CorruptError{Path: ref, Reason: "bad entry", Err: err}
		}
		switch e.Mode {
		case filemode.Dir:
			if err := r.walkPendingDir(ref, p, depth+1, e.Hash, visited, out, f); err != nil {
				return err
			}
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			if len(out) >= maxPendingFiles {
				return corrupt(ref, "more than %d files", maxPendingFiles)
			}
			out[p] = e.Hash
			if err := f(p, e.Hash); err != nil {
				return err
			}
		default:
			return corrupt(ref+":"+p, "not a file or directory (mode %s)", e.Mode)
		}
	}
	return nil
}

// ReadPending returns the files of the pending proposal id, or an error
// matching ErrNotFound when there is no such ref.
func (r *Registry) ReadPending(id PendingID) (PendingFiles, error) {
	files, _, err := r.readPending(id)
	return files, err
}

func (r *Registry) readPending(id PendingID) (PendingFiles, plumbing.Hash, error) {
	if err := id.check(); err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("pending %s: %w", id, err)
	}
	if err := r.migratePending(); err != nil {
		return nil, plumbing.ZeroHash, err
	}
	ref := id.Ref()
	cur, err := r.readRef(ref)
	if err != nil {
		return nil, plumbing.ZeroHash, err
	}
	if cur.IsZero() {
		return nil, plumbing.ZeroHash, fmt.Errorf("pending %s: %w", id, ErrNotFound)
	}
	files, err := r.pendingFilesAt(ref, cur)
	if err != nil {
		return nil, plumbing.ZeroHash, err
	}
	return files, cur, nil
}

// ListPending lists the pending proposals of the repository (loose and
// packed refs), sorted by prefix and SAID. Proposals still under the legacy
// namespace are moved first.
func (r *Registry) ListPending() ([]PendingID, error) {
	if err := r.migratePending(); err != nil {
		return nil, err
	}
	return r.pendingIDsUnder(PendingRefPrefix)
}

// pendingIDsUnder lists the refs <ns><prefix>/<said> that resolve, loose
// or packed, sorted by prefix and SAID.
func (r *Registry) pendingIDsUnder(ns string) ([]PendingID, error) {
	seen := map[PendingID]bool{}
	base := filepath.Join(r.gitDir, filepath.FromSlash(ns))
	prefixes, err := os.ReadDir(base)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list pending: %w", err)
	}
	for _, pd := range prefixes {
		if !pd.IsDir() {
			continue
		}
		saids, err := os.ReadDir(filepath.Join(base, pd.Name()))
		if err != nil {
			return nil, fmt.Errorf("list pending: %w", err)
		}
		for _, s := range saids {
			if s.IsDir() || strings.HasSuffix(s.Name(), ".lock") {
				continue
			}
			id := PendingID{Prefix: pd.Name(), SAID: s.Name()}
			if id.check() == nil {
				seen[id] = true
			}
		}
	}
	packed, err := r.packedRefNames(ns)
	if err != nil {
		return nil, err
	}
	for _, name := range packed {
		prefix, said, ok := strings.Cut(strings.TrimPrefix(name, ns), "/")
		id := PendingID{Prefix: prefix, SAID: said}
		if ok && id.check() == nil {
			seen[id] = true
		}
	}
	out := make([]PendingID, 0, len(seen))
	for id := range seen {
		// A loose ref may exist but be empty or deleted meanwhile; keep
		// only those that resolve.
		if h, err := r.readRef(ns + id.String()); err == nil && !h.IsZero() {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Prefix != out[j].Prefix {
			return out[i].Prefix < out[j].Prefix
		}
		return out[i].SAID < out[j].SAID
	})
	return out, nil
}

// packedRefNames lists the names in packed-refs starting with prefix.
func (r *Registry) packedRefNames(prefix string) ([]string, error) {
	f, err := os.Open(filepath.Join(r.gitDir, "packed-refs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read packed-refs: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		if _, name, ok := strings.Cut(line, " "); ok && strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read packed-refs: %w", err)
	}
	return out, nil
}

// DeletePending removes the ref of the pending proposal id with git's
// lock-file protocol (lock the ref, drop it from packed-refs under
// packed-refs.lock, unlink the loose ref, unlock). A missing ref is not an
// error: deleting is idempotent.
func (r *Registry) DeletePending(ctx context.Context, id PendingID) error {
	if err := id.check(); err != nil {
		return fmt.Errorf("pending %s: %w", id, err)
	}
	unlock, err := r.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := r.migratePendingLocked(ctx); err != nil {
		return err
	}
	return r.deleteRefLocked(ctx, id.Ref())
}

// deleteRefLocked removes ref, loose and packed; the caller holds the
// flock.
func (r *Registry) deleteRefLocked(ctx context.Context, ref string) error {
	refPath := filepath.Join(r.gitDir, filepath.FromSlash(ref))
	lockPath := refPath + ".lock"
	if _, err := os.Stat(filepath.Dir(refPath)); errors.Is(err, os.ErrNotExist) {
		if names, err := r.packedRefNames(ref); err != nil || len(names) == 0 {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(refPath), 0o777); err != nil {
			return fmt.Errorf("delete %s: %w", ref, err)
		}
	}
	f, err := r.createRefLock(ctx, ref, lockPath)
	if err != nil {
		return err
	}
	f.Close()
	defer os.Remove(lockPath)
	if err := r.dropPackedRef(ctx, ref); err != nil {
		return err
	}
	if err := os.Remove(refPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	syncDir(filepath.Dir(refPath))
	// Remove the lock before the now empty directory, as git does.
	os.Remove(lockPath)
	os.Remove(filepath.Dir(refPath))
	return nil
}

// dropPackedRef rewrites packed-refs without ref, under packed-refs.lock.
func (r *Registry) dropPackedRef(ctx context.Context, ref string) error {
	path := filepath.Join(r.gitDir, "packed-refs")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: read packed-refs: %w", ref, err)
	}
	if !bytes.Contains(data, []byte(" "+ref+"\n")) {
		return nil
	}
	lockPath := path + ".lock"
	f, err := r.createRefLock(ctx, "packed-refs", lockPath)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(lockPath)
		}
	}()
	// Read again under the lock: another writer may have changed it.
	data, err = os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("delete %s: read packed-refs: %w", ref, err)
	}
	var out bytes.Buffer
	lines := strings.SplitAfter(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if _, name, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " "); ok && line[0] != '#' && line[0] != '^' && name == ref {
			// Skip its peeled line too.
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "^") {
				i++
			}
			continue
		}
		out.WriteString(line)
	}
	if _, err := f.Write(out.Bytes()); err != nil {
		return fmt.Errorf("delete %s: write packed-refs.lock: %w", ref, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("delete %s: sync packed-refs.lock: %w", ref, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("delete %s: close packed-refs.lock: %w", ref, err)
	}
	if err := os.Rename(lockPath, path); err != nil {
		os.Remove(lockPath)
		done = true
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	done = true
	syncDir(r.gitDir)
	return nil
}
