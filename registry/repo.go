package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	git "github.com/go-git/go-git/v5"
)

// RegistryRef is the ref that holds the auths v1 registry.
const RegistryRef = "refs/auths/registry"

// flockName is the advisory lock file auths takes in the repository's top
// directory.
const flockName = "registry.lock"

// Registry is an auths v1 registry in a git repository on disk. It is safe
// for use by several goroutines and several processes: every write takes the
// advisory flock on registry.lock and moves the ref with git's lock-file
// protocol.
type Registry struct {
	gitDir  string // the repository directory (.git, or the bare repository)
	topDir  string // the work tree of a non-bare repository, else gitDir
	objects *objectStore
	ours    *ourPacks // the packs this package wrote, the only ones it merges
	opts    options
	// written counts the objects and bytes (uncompressed) written and the
	// packs written and merged, for benchmarks and tests. Atomic: writers
	// exclude each other with the flock, which orders nothing for the Go
	// memory model when goroutines of one process share a Registry.
	written struct{ objects, bytes, packs, merges atomic.Int64 }
	trees   treeCache // decoded trees, read and written (treecache.go)
}

// writeCounts is a snapshot of Registry.written.
type writeCounts struct{ objects, bytes, packs, merges int64 }

// writtenSoFar returns the counts of what this Registry has written.
func (r *Registry) writtenSoFar() writeCounts {
	return writeCounts{r.written.objects.Load(), r.written.bytes.Load(), r.written.packs.Load(), r.written.merges.Load()}
}

type options struct {
	clock    func() time.Time
	log      *slog.Logger
	refWait  time.Duration
	maxPacks int
	// lockedPush bounds a push made under the registry lock (CommitPush).
	lockedPush time.Duration
	// noSync skips the flush of new objects; only benchmarks set it, to
	// measure the work that depends on the registry's size apart from the
	// file system's flush (BenchmarkAppendPeers measures that).
	noSync bool
	// stampNow is the clock ReadHead compares file times with (the racy
	// window); tests in this package move it forward instead of waiting.
	stampNow func() time.Time
	// beforeRefMove, when set, runs between the write of a commit's pack
	// and the move of its ref: tests run git's maintenance there, the
	// moment a pack's objects are unreachable.
	beforeRefMove func()
}

// Option configures Open and Init.
type Option func(*options)

// WithClock sets the clock for commit times, metadata.json's updated_at and
// attestation history names (default time.Now).
func WithClock(clock func() time.Time) Option { return func(o *options) { o.clock = clock } }

// WithLogger sets where diagnostics go, such as a failed pack merge
// (default: text lines on stderr).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRefLockWait bounds how long a commit waits for a foreign writer's ref
// lock (or packed-refs.lock) to go away before it fails with a *LockError
// (default 10s; the context may end it sooner). A lock file is never
// removed by a commit; see Registry.Unlock.
func WithRefLockWait(d time.Duration) Option { return func(o *options) { o.refWait = d } }

// WithLockedPushTimeout bounds the push CommitPush makes while it holds the
// registry lock (default 30s; the context may end it sooner): a remote
// that does not answer makes every local writer wait meanwhile. See
// commitPushOnce for why the lock is held. A d of zero or less keeps the
// default.
func WithLockedPushTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lockedPush = d
		}
	}
}

// WithMaxPacks sets how many packs a commit may leave in objects/pack/
// before it merges them (default 32; see the package documentation). Each
// commit writes its objects as one pack.
func WithMaxPacks(n int) Option { return func(o *options) { o.maxPacks = max(n, 1) } }

func newOptions(opts []Option) options {
	o := options{clock: time.Now, refWait: 10 * time.Second, maxPacks: 32, lockedPush: 30 * time.Second, stampNow: time.Now}
	for _, f := range opts {
		f(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return o
}

// discardLogger is a logger that drops everything.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Open opens the git repository at dir (a work tree containing .git, or a
// bare repository). The repository need not hold the registry ref yet: the
// first commit creates it.
func Open(dir string, opts ...Option) (*Registry, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open registry %s: %w", dir, err)
	}
	gitDir, topDir, err := findGitDir(abs)
	if err != nil {
		return nil, fmt.Errorf("open registry %s: %w", dir, err)
	}
	if _, err := git.PlainOpenWithOptions(topDir, &git.PlainOpenOptions{}); err != nil {
		return nil, fmt.Errorf("open registry %s: %w", dir, err)
	}
	o := newOptions(opts)
	objects := newObjectStore(filepath.Join(gitDir, "objects"))
	r := &Registry{gitDir: gitDir, topDir: topDir, objects: objects, opts: o,
		ours: &ourPacks{path: filepath.Join(gitDir, ourPacksName), packDir: objects.packDir(), log: o.log}}
	return r, nil
}

// findGitDir tells the repository directory and the top directory of the
// repository at dir.
func findGitDir(dir string) (gitDir, topDir string, err error) {
	if fi, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		if !fi.IsDir() {
			return "", "", fmt.Errorf(".git is a file (linked work trees and submodules are not supported); open the repository directory it names")
		}
		return filepath.Join(dir, ".git"), dir, nil
	}
	if isGitDir(dir) {
		return dir, dir, nil
	}
	return "", "", fmt.Errorf("not a git repository (no .git, no HEAD/objects/refs)")
}

func isGitDir(dir string) bool {
	for _, name := range []string{"HEAD", "objects", "refs"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return false
		}
	}
	return true
}

// Init opens the repository at dir, creating it (bare or not) when dir holds
// none, and gives it the registry ref when missing: an initial commit whose
// tree is v1/metadata.json with zero counts. It touches no other ref and is
// harmless on an existing registry. created tells whether the ref was made.
func Init(ctx context.Context, dir string, bare bool, opts ...Option) (r *Registry, created bool, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, false, fmt.Errorf("init registry %s: %w", dir, err)
	}
	if _, _, err := findGitDir(abs); err != nil {
		if err := os.MkdirAll(abs, 0o777); err != nil {
			return nil, false, fmt.Errorf("init registry: %w", err)
		}
		if _, err := git.PlainInit(abs, bare); err != nil {
			return nil, false, fmt.Errorf("init registry %s: %w", dir, err)
		}
	}
	r, err = Open(abs, opts...)
	if err != nil {
		return nil, false, err
	}
	created, err = r.ensureRef(ctx)
	if err != nil {
		return nil, false, err
	}
	return r, created, nil
}

// ensureRef creates the registry ref with an empty registry when missing.
func (r *Registry) ensureRef(ctx context.Context) (bool, error) {
	unlock, err := r.lock(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	cur, err := r.readRef(RegistryRef)
	if err != nil {
		return false, err
	}
	if !cur.IsZero() {
		return false, nil
	}
	if _, err := r.commitLocked(ctx, cur, &Batch{}); err != nil {
		return false, err
	}
	return true, nil
}

// GitDir returns the repository directory.
func (r *Registry) GitDir() string { return r.gitDir }

// TopDir returns the directory holding the registry.lock flock file.
func (r *Registry) TopDir() string { return r.topDir }

// Head returns the commit the registry ref points at, or ErrNoRegistry.
func (r *Registry) Head() (string, error) {
	h, err := r.readRef(RegistryRef)
	if err != nil {
		return "", err
	}
	if h.IsZero() {
		return "", ErrNoRegistry
	}
	return h.String(), nil
}

var _ = errors.New
