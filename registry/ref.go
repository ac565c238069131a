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
	data, err := readSmallFile(filepath.Join(r.gitDir, filepath.FromSlash(name)), maxRefFileSize)
	switch {
	case errors.Is(err, errTooLarge):
		return plumbing.ZeroHash, corrupt(name, "ref file longer than %d bytes", maxRefFileSize)
	case err == nil:
		s := strings.TrimSpace(string(data))
		if strings.HasPrefix(s, "ref:") {
			return plumbing.ZeroHash, corrupt(name, "symbolic ref (%s), want a commit id", s)
		}
		if !plumbing.IsHash(s) {
			return plumbing.ZeroHash, corrupt(name, "ref file holds %q, want a commit id", clip(s))
		}
		return plumbing.NewHash(s), nil
	case !errors.Is(err, os.ErrNotExist):
		return plumbing.ZeroHash, fmt.Errorf("read ref %s: %w", name, err)
	}
	return r.readPackedRef(name)
}

func (r *Registry) readPackedRef(name string) (plumbing.Hash, error) {
	f, err := os.Open(filepath.Join(r.gitDir, "packed-refs"))
	if errors.Is(err, os.ErrNotExist) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read packed-refs: %w", err)
	}
	defer f.Close()
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
// check the old value, rename the lock over the ref. A lost
// compare-and-swap is a *ConflictError. A lock file left by another writer
// is waited for (bounded by WithRefLockWait and ctx) unless it is older than
// the stale age: the caller holds the flock, so no cooperating writer can
// own it, and it is a dead writer's.
func (r *Registry) casRef(ctx context.Context, name string, old, new plumbing.Hash) error {
	refPath := filepath.Join(r.gitDir, filepath.FromSlash(name))
	lockPath := refPath + ".lock"
	if err := os.MkdirAll(filepath.Dir(refPath), 0o777); err != nil {
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
	return nil
}

// createRefLock creates lockPath exclusively, waiting out a live foreign
// writer and removing a dead one's.
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
		// Lock ages compare file times with the real clock, not the
		// injected one.
		fi, err := os.Stat(lockPath)
		if err == nil {
			if age := time.Since(fi.ModTime()); age > r.opts.staleLock {
				if err := os.Remove(lockPath); err == nil {
					r.opts.log.Warn("removed a dead writer's ref lock", "path", lockPath, "age", age.Round(time.Millisecond).String())
				}
				continue
			}
		}
		if time.Since(start) > r.opts.refWait {
			return nil, fmt.Errorf("update %s: %s held by another writer for over %s", name, lockPath, r.opts.refWait)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("update %s: waiting for %s: %w", name, lockPath, ctx.Err())
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
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
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
