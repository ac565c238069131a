package registry

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// readRef returns the value of a ref, loose or in packed-refs; the zero hash
// when it does not exist. A symbolic or malformed ref is ErrCorrupt.
func (r *Registry) readRef(name string) (plumbing.Hash, error) {
	h, _, err := r.readRefFiles(name)
	return h, err
}

// readRefFiles is readRef that also says what fstat(2) said of the files
// it read, each on the open file it read (see HeadStamp).
func (r *Registry) readRefFiles(name string) (plumbing.Hash, refFiles, error) {
	var files refFiles
	f, err := os.Open(filepath.Join(r.gitDir, filepath.FromSlash(name)))
	if err == nil {
		defer f.Close()
		if files.loose, err = statOpen(f); err != nil {
			return plumbing.ZeroHash, files, fmt.Errorf("read ref %s: %w", name, err)
		}
		h, err := readLooseRef(name, f)
		return h, files, err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return plumbing.ZeroHash, files, fmt.Errorf("read ref %s: %w", name, err)
	}
	p, err := os.Open(filepath.Join(r.gitDir, "packed-refs"))
	if errors.Is(err, os.ErrNotExist) {
		return plumbing.ZeroHash, files, nil
	}
	if err != nil {
		return plumbing.ZeroHash, files, fmt.Errorf("read packed-refs: %w", err)
	}
	defer p.Close()
	if files.packed, err = statOpen(p); err != nil {
		return plumbing.ZeroHash, files, fmt.Errorf("read packed-refs: %w", err)
	}
	h, err := readPackedRef(name, p)
	return h, files, err
}

// readLooseRef reads a loose ref file's commit id.
func readLooseRef(name string, f io.Reader) (plumbing.Hash, error) {
	data, err := readAtMost(f, maxRefFileSize)
	switch {
	case errors.Is(err, errTooLarge):
		return plumbing.ZeroHash, corrupt(name, "ref file longer than %d bytes", maxRefFileSize)
	case err != nil:
		return plumbing.ZeroHash, fmt.Errorf("read ref %s: %w", name, err)
	}
	s := strings.TrimSpace(string(data))
	if strings.HasPrefix(s, "ref:") {
		return plumbing.ZeroHash, corrupt(name, "symbolic ref (%s), want a commit id", s)
	}
	if !plumbing.IsHash(s) {
		return plumbing.ZeroHash, corrupt(name, "ref file holds %q, want a commit id", clip(s))
	}
	return plumbing.NewHash(s), nil
}

// readPackedRef finds ref name in packed-refs; the zero hash when it is
// not there.
func readPackedRef(name string, f io.Reader) (plumbing.Hash, error) {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		id, ref, ok := strings.Cut(line, " ")
		if ok && ref == name {
			if !plumbing.IsHash(id) {
				return plumbing.ZeroHash, corrupt("packed-refs", "%s holds %q", name, clip(id))
			}
			return plumbing.NewHash(id), nil
		}
	}
	if err := sc.Err(); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read packed-refs: %w", err)
	}
	return plumbing.ZeroHash, nil
}

// casRef moves ref name from old (zero: must not exist) to new with git's
// lock-file protocol: create <ref>.lock exclusively, write the new id, fsync,
// check the old value, rename the lock over the ref, fsync the ref's
// directory so that the rename is on disk before the move is reported. A
// lost compare-and-swap is a *ConflictError. A lock file left by another
// writer is waited for (bounded by WithRefLockWait and ctx), never removed:
// see createRefLock.
func (r *Registry) casRef(ctx context.Context, name string, old, new plumbing.Hash) error {
	refPath := filepath.Join(r.gitDir, filepath.FromSlash(name))
	lockPath := refPath + ".lock"
	if err := r.mkdirSynced(filepath.Dir(refPath)); err != nil {
		return fmt.Errorf("update %s: %w", name, err)
	}
	f, err := r.createRefLock(ctx, name, lockPath)
	if err != nil {
		return err
	}
	locked := true
	defer func() {
		if locked {
			os.Remove(lockPath)
		}
	}()
	_, err = f.WriteString(new.String() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("update %s: write lock: %w", name, err)
	}
	cur, err := r.readRef(name)
	if err != nil {
		return fmt.Errorf("update %s: %w", name, err)
	}
	if cur != old {
		return &ConflictError{Ref: name, Expected: hashString(old), Actual: hashString(cur), Op: -1}
	}
	if err := os.Rename(lockPath, refPath); err != nil {
		return fmt.Errorf("update %s: %w", name, err)
	}
	locked = false
	if err := syncDir(filepath.Dir(refPath)); err != nil {
		return fmt.Errorf("update %s: moved, but not flushed to disk: %w", name, err)
	}
	return nil
}

// mkdirSynced creates dir and its missing parents inside the repository,
// flushing each parent that gained an entry, so that a ref created in a new
// directory survives a crash with it.
func (r *Registry) mkdirSynced(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	var created []string
	for d := dir; len(d) > len(r.gitDir); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// LockError is a git lock file (<ref>.lock, packed-refs.lock) that stayed
// in place longer than a commit waits. Git never removes another process's
// lock file, and neither does this package: it may belong to a running git
// command. One left by a crashed process is removed by hand or with
// Registry.Unlock.
type LockError struct {
	Path   string        // the lock file
	Waited time.Duration // how long the writer waited
	Err    error         // the context's error when it ended the wait
}

func (e *LockError) Error() string {
	msg := fmt.Sprintf("%s exists (waited %s): another git process may be running in this repository; if none is, a crashed one left it: remove it (auths-agent registry unlock)", e.Path, e.Waited.Round(time.Millisecond))
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *LockError) Unwrap() error { return e.Err }

// createRefLock creates lockPath exclusively, waiting, as git does, for a
// lock held by another process to go away, and failing with a *LockError
// naming it when it does not. An old lock is not taken for a dead writer's:
// git does not take the registry flock, so holding the flock says nothing
// about git writers, and a lock git holds while it waits on something slow
// (a hook, a network file system) must not be broken.
func (r *Registry) createRefLock(ctx context.Context, name, lockPath string) (*os.File, error) {
	start := time.Now()
	delay := time.Millisecond
	for {
		f, err := os.OpenFile(lockPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("update %s: %w", name, err)
		}
		if time.Since(start) > r.opts.refWait {
			return nil, fmt.Errorf("update %s: %w", name, &LockError{Path: lockPath, Waited: time.Since(start)})
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("update %s: %w", name, &LockError{Path: lockPath, Waited: time.Since(start), Err: ctx.Err()})
		case <-t.C:
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// maxRefFileSize bounds what is read of a loose ref file: a commit id and
// a newline, or a symbolic ref.
const maxRefFileSize = 4096

var errTooLarge = errors.New("file too large")

// readSmallFile reads a file of at most limit bytes; a longer one is
// errTooLarge, found without reading it all.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAtMost(f, limit)
}

// readAtMost reads rd to its end if that is at most limit bytes; a longer
// one is errTooLarge, found after reading limit+1 bytes.
func readAtMost(rd io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

// moveRef moves ref name from old to new (casRef) once the objects it
// names are written, and releases their pack's .keep (see writeObjects)
// whatever ends the move: an error, a cancelled ctx, a panic recovered by
// a caller.
func (r *Registry) moveRef(ctx context.Context, name string, old, new plumbing.Hash, release func()) error {
	defer release()
	if r.opts.beforeRefMove != nil {
		r.opts.beforeRefMove()
	}
	return r.casRef(ctx, name, old, new)
}

func hashString(h plumbing.Hash) string {
	if h.IsZero() {
		return ""
	}
	return h.String()
}

// syncDir flushes a directory's entries (creations, renames) to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

var _ = bytes.Equal
