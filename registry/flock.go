package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// maxExcludeSize bounds how much of .git/info/exclude is read.
const maxExcludeSize = 1 << 20

// excludeLockFile adds /registry.lock to gitDir/info/exclude unless a line
// already names it.
func excludeLockFile(gitDir string) error {
	path := filepath.Join(gitDir, "info", "exclude")
	line := "/" + flockName
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o666)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
			return err
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o666)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxExcludeSize+1))
	if err != nil {
		return err
	}
	if len(data) > maxExcludeSize {
		return fmt.Errorf("%s: larger than %d bytes", path, maxExcludeSize)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(l); t == line || t == flockName {
			return nil
		}
	}
	sep := ""
	if len(data) > 0 && data[len(data)-1] != '\n' {
		sep = "\n"
	}
	_, err = f.WriteString(sep + "# auths-agent's advisory lock\n" + line + "\n")
	return err
}

// lock takes the advisory flock on registry.lock in the repository's top
// directory, the lock auths takes before writing, waiting until ctx ends.
// The returned function releases it.
func (r *Registry) lock(ctx context.Context) (func(), error) {
	path := filepath.Join(r.topDir, flockName)
	_, statErr := os.Lstat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("registry lock: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) && r.topDir != r.gitDir {
		// In a work tree the lock file would show as untracked in every
		// `git status`; git's own exclude file hides it without touching
		// the user's .gitignore. Failing to do so loses nothing.
		if err := excludeLockFile(r.gitDir); err != nil {
			r.opts.log.Warn("cannot add registry.lock to .git/info/exclude", "err", err)
		}
	}
	delay := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("registry lock %s: %w", path, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("registry lock %s: %w", path, ctx.Err())
		case <-t.C:
		}
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}

// ErrLockHeld means another process holds the registry flock.
var ErrLockHeld = errors.New("held by a running process")

// tryLock takes the flock on registry.lock without waiting; ErrLockHeld
// when another process holds it.
func (r *Registry) tryLock() (func(), error) {
	path := filepath.Join(r.topDir, flockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("registry lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("registry lock %s: %w", path, ErrLockHeld)
		}
		return nil, fmt.Errorf("registry lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

// Unlock removes the git lock files a crashed writer left on the refs this
// package writes: refs/auths/registry.lock, the locks of pending refs (both namespaces) and
// packed-refs.lock. It is the explicit recovery a *LockError points to; a
// commit never does it. It refuses (ErrLockHeld) while any process holds
// registry.lock, as every writer of this package and of auths does while
// it writes. Git commands do not take that lock: run it only when no git
// command is running in the repository. It returns the files removed.
func (r *Registry) Unlock() ([]string, error) {
	unlock, err := r.tryLock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	locks := []string{
		filepath.Join(r.gitDir, filepath.FromSlash(RegistryRef)+".lock"),
		filepath.Join(r.gitDir, "packed-refs.lock"),
	}
	for _, ns := range []string{PendingRefPrefix, LegacyPendingRefPrefix} {
		pending, err := filepath.Glob(filepath.Join(r.gitDir, filepath.FromSlash(ns), "*", "*.lock"))
		if err != nil {
			return nil, err
		}
		locks = append(locks, pending...)
	}
	var removed []string
	for _, p := range locks {
		err := os.Remove(p)
		switch {
		case err == nil:
			removed = append(removed, p)
		case !errors.Is(err, os.ErrNotExist):
			return removed, fmt.Errorf("unlock: %w", err)
		}
	}
	return removed, nil
}
