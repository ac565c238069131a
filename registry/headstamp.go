package registry

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// racyWindow: a ref file modified or changed less than this long before
// it was read is never trusted by Unchanged. File times come from a clock
// that ticks every few milliseconds, so a rewrite within one tick could
// leave the inode, size and times as they were (git calls such an entry
// "racily clean" in its index, and re-reads it for the same reason). The
// change time counts as well as the modification time: a program can set
// the modification time back (touch -d, rsync -t), never the change time.
const racyWindow = time.Second

// HeadStamp is the registry ref's commit as read at one moment, with what
// fstat(2) said of the file it was read from: the loose ref file, or
// packed-refs when there is none. Unchanged compares it with the files as
// they are now. The zero HeadStamp is never unchanged.
type HeadStamp struct {
	commit plumbing.Hash
	files  refFiles
	// trusted: the file read was modified and changed at least
	// racyWindow before it was read, the system gives inode numbers, and
	// the file is on a local file system (localFS).
	trusted bool
}

// Commit is the commit the ref named when it was read.
func (s HeadStamp) Commit() string { return s.commit.String() }

// refFiles is what fstat(2) said of the files a ref was read from; a zero
// fileID is a file that did not exist.
type refFiles struct {
	loose, packed fileID
}

// fileID is what tells one version of a file from another: device and
// inode (a ref is rewritten by renaming a new file over it), size, and the
// modification and change times in nanoseconds.
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
	known        bool // the system said all of the above
}

// ReadHead reads the registry ref as Head does and stamps it. No registry
// yet is ErrNoRegistry.
func (r *Registry) ReadHead() (HeadStamp, error) {
	now := r.opts.stampNow()
	h, files, err := r.readRefFiles(RegistryRef)
	if err != nil {
		return HeadStamp{}, err
	}
	if h.IsZero() {
		return HeadStamp{}, ErrNoRegistry
	}
	old := func(f fileID) bool {
		return f.known && now.UnixNano()-f.mtime >= int64(racyWindow) && now.UnixNano()-f.ctime >= int64(racyWindow)
	}
	var trusted bool
	switch {
	case files.loose != (fileID{}):
		trusted = old(files.loose) && localFS(r.refPath())
	default:
		// The loose file's absence is part of the stamp: its directory
		// must be local too.
		trusted = old(files.packed) && localFS(r.packedRefsPath()) && localFS(r.nearestRefDir())
	}
	return HeadStamp{commit: h, files: files, trusted: trusted}, nil
}

// Unchanged says whether the registry ref certainly still names s's
// commit, from one stat(2) of its file (two when it is packed) instead of
// reading it. It says false whenever it cannot be sure: the file was
// modified or changed less than a second before s was read, it is on a
// network file system, or another file is there now, or the same one was
// modified since; the caller then reads the ref again.
func (r *Registry) Unchanged(s HeadStamp) bool {
	if !s.trusted {
		return false
	}
	loose, ok := statPath(r.refPath())
	if !ok || loose != s.files.loose {
		return false
	}
	if loose.known {
		return true // a loose ref hides packed-refs
	}
	packed, ok := statPath(r.packedRefsPath())
	return ok && packed == s.files.packed
}

// refPath is the registry ref's loose file; packedRefsPath is packed-refs.
func (r *Registry) refPath() string {
	return filepath.Join(r.gitDir, filepath.FromSlash(RegistryRef))
}

func (r *Registry) packedRefsPath() string { return filepath.Join(r.gitDir, "packed-refs") }

// nearestRefDir is the directory of the loose ref file, or its nearest
// parent that exists (git may remove a directory a pruned ref left empty).
func (r *Registry) nearestRefDir() string {
	d := filepath.Dir(r.refPath())
	for len(d) > len(r.gitDir) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		d = filepath.Dir(d)
	}
	return d
}

// SnapshotAt is a snapshot of the registry at s's commit.
func (r *Registry) SnapshotAt(s HeadStamp) (*Snapshot, error) {
	if s.commit.IsZero() {
		return nil, ErrNoRegistry
	}
	return r.snapshotAt(s.commit)
}

// statPath stats path: a zero fileID when it does not exist; ok is false
// when stat failed otherwise.
func statPath(path string) (id fileID, ok bool) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fileID{}, true
	}
	if err != nil {
		return fileID{}, false
	}
	return idOf(fi), true
}

// statOpen is the fileID of an open file.
func statOpen(f *os.File) (fileID, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	return idOf(fi), nil
}
