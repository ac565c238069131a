package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// later makes r's ReadHead read as if 2 s had passed since every file was
// written (out of the racy window), or as now again.
func later(r *Registry, on bool) {
	r.opts.stampNow = time.Now
	if on {
		r.opts.stampNow = func() time.Time { return time.Now().Add(2 * time.Second) }
	}
}

// waitTick waits until a file written in dir gets a change time after
// ctime: the file system's clock has ticked since.
func waitTick(t *testing.T, dir string, ctime int64) {
	t.Helper()
	probe := filepath.Join(dir, "tick")
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err := os.WriteFile(probe, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(probe)
		if err != nil {
			t.Fatal(err)
		}
		if idOf(fi).ctime > ctime {
			return
		}
	}
	t.Fatal("the file system's clock did not tick in 3 s")
}

func readHead(t *testing.T, r *Registry) HeadStamp {
	t.Helper()
	s, err := r.ReadHead()
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := r.Head(); s.Commit() != h {
		t.Fatalf("ReadHead: %s, Head: %s", s.Commit(), h)
	}
	return s
}

// TestHeadStamp: Unchanged says true only while the ref file read is the
// one there now, unmodified, and was written at least racyWindow before it
// was read; any move of the ref, in a loose file or in packed-refs, and
// any rewrite of either file, makes it false.
func TestHeadStamp(t *testing.T) {
	dir, r, id := newIDRegistry(t)
	loose := filepath.Join(r.gitDir, filepath.FromSlash(RegistryRef))
	if _, err := os.Stat(loose); err != nil {
		t.Fatalf("no loose ref file: %v", err)
	}
	if r.Unchanged(HeadStamp{}) {
		t.Fatal("the zero stamp is unchanged")
	}

	// Just written: racy, so never trusted, though nothing changed.
	if s := readHead(t, r); r.Unchanged(s) {
		t.Fatal("a ref written just now is trusted")
	}
	// Its modification time set back: still racy, by its change time.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(loose, old, old); err != nil {
		t.Fatal(err)
	}
	if s := readHead(t, r); r.Unchanged(s) {
		t.Fatal("a ref whose mtime was set back just now is trusted")
	}

	later(r, true)
	s := readHead(t, r)
	if !r.Unchanged(s) {
		t.Fatal("an old ref file that did not change is not unchanged")
	}

	// Rewritten in place with another id of the same length, its
	// modification time put back: same inode, size and mtime, but the
	// change time moved. (The test's clock said 2 s had passed; the file
	// times are real, so wait out one tick of the file system's clock, as
	// the racy window does for real.)
	data, err := os.ReadFile(loose)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(loose)
	waitTick(t, t.TempDir(), idOf(fi).ctime)
	other := strings.Repeat("0", 40) + "\n"
	if len(other) != len(data) {
		t.Fatalf("ref file of %d bytes", len(data))
	}
	if err := os.WriteFile(loose, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(loose, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if r.Unchanged(s) {
		t.Fatal("a ref rewritten in place with its mtime put back is unchanged")
	}
	if err := os.WriteFile(loose, data, 0o644); err != nil {
		t.Fatal(err)
	}

	// A commit moves the ref (a new file renamed over it).
	s = readHead(t, r)
	ixn, err := id.ixn()
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.Append(ixn)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	if r.Unchanged(s) {
		t.Fatal("unchanged after a commit")
	}
	if got := readHead(t, r); got.Commit() == s.Commit() {
		t.Fatal("ReadHead after a commit names the old commit")
	}

	// Packed: the stamp is packed-refs'; a loose ref appearing beside it,
	// or packed-refs rewritten, is a change.
	runGit(t, dir, "pack-refs", "--all", "--prune")
	if _, err := os.Stat(loose); !os.IsNotExist(err) {
		t.Fatalf("loose ref left after pack-refs: %v", err)
	}
	later(r, false)
	if s := readHead(t, r); r.Unchanged(s) {
		t.Fatal("packed-refs written just now is trusted")
	}
	later(r, true)
	s = readHead(t, r)
	if !r.Unchanged(s) {
		t.Fatal("an old packed-refs that did not change is not unchanged")
	}
	if err := os.WriteFile(loose, []byte(s.Commit()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r.Unchanged(s) {
		t.Fatal("unchanged with a loose ref file beside packed-refs")
	}
	os.Remove(loose)
	if !r.Unchanged(s) {
		t.Fatal("the loose file gone again: packed-refs is as it was")
	}
	runGit(t, dir, "pack-refs", "--all")
	if r.Unchanged(s) {
		t.Fatal("unchanged after packed-refs was rewritten")
	}
}

// TestLocalFS: stamps are trusted on local file systems only; a file
// system off the allow-list (procfs here, as NFS or sshfs would be) is not.
func TestLocalFS(t *testing.T) {
	if !localFS(t.TempDir()) {
		t.Errorf("the test's temporary directory is not a local file system")
	}
	if !localFS("/dev/shm") {
		t.Errorf("tmpfs (/dev/shm) is not a local file system")
	}
	if localFS("/proc") {
		t.Errorf("procfs counts as a local file system")
	}
	if localFS(filepath.Join(t.TempDir(), "missing")) {
		t.Errorf("a directory that does not exist counts as a local file system")
	}
}
