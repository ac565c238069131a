package registry

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/kel"
)

// rewriteRegistry makes a foreign commit on the registry ref with the real
// git: edit gets a function to set (content) or remove (nil) paths.
func rewriteRegistry(t *testing.T, dir string, edits map[string]*string) {
	t.Helper()
	index := filepath.Join(t.TempDir(), "index")
	gitEnv := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_INDEX_FILE="+index,
			"GIT_AUTHOR_NAME=f", "GIT_AUTHOR_EMAIL=f@f", "GIT_COMMITTER_NAME=f", "GIT_COMMITTER_EMAIL=f@f")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	gitEnv("read-tree", RegistryRef)
	for path, content := range edits {
		if content == nil {
			gitEnv("update-index", "--force-remove", path)
		}
	}
	for path, content := range edits {
		if content == nil {
			continue
		}
		f := filepath.Join(t.TempDir(), "blob")
		os.WriteFile(f, []byte(*content), 0o644)
		blob := gitEnv("hash-object", "-w", f)
		gitEnv("update-index", "--add", "--cacheinfo", "100644,"+blob+","+path)
	}
	tree := gitEnv("write-tree")
	parent := gitEnv("rev-parse", RegistryRef)
	commit := gitEnv("commit-tree", tree, "-p", parent, "-m", "foreign edit")
	gitEnv("update-ref", RegistryRef, commit, parent)
}

func str(s string) *string { return &s }

func TestCorruptRegistry(t *testing.T) {
	idDir := "v1/identities/EM/d2/" + vectorPrefix
	ev0 := runGitShow
	tests := []struct {
		name  string
		edits func(dir string) map[string]*string
		path  string // the path the error must name
	}{
		{"missing tip", func(string) map[string]*string { return map[string]*string{idDir + "/tip.json": nil} }, idDir + "/tip.json"},
		{"garbage tip", func(string) map[string]*string { return map[string]*string{idDir + "/tip.json": str("{not json")} }, idDir + "/tip.json"},
		{"events out of order", func(dir string) map[string]*string {
			return map[string]*string{
				idDir + "/events/00000000.json": str(ev0(t, dir, idDir+"/events/00000001.json")),
				idDir + "/events/00000001.json": str(ev0(t, dir, idDir+"/events/00000000.json")),
			}
		}, idDir + "/events/00000000.json"},
		{"garbage event", func(string) map[string]*string {
			return map[string]*string{idDir + "/events/00000001.json": str(`{"v": garbage`)}
		}, idDir + "/events/00000001.json"},
		// A sequence past the events held: the last value of uint64 used
		// to wrap the slot count to zero and panic, 1e11 to exhaust memory.
		{"tip sequence 2^64-1", func(dir string) map[string]*string {
			return map[string]*string{idDir + "/tip.json": str(tipWithSequence(t, dir, idDir, "18446744073709551615"))}
		}, idDir + "/tip.json"},
		{"tip sequence 1e11", func(dir string) map[string]*string {
			return map[string]*string{idDir + "/tip.json": str(tipWithSequence(t, dir, idDir, "100000000000"))}
		}, idDir + "/tip.json"},
		{"tip sequence past the files", func(dir string) map[string]*string {
			return map[string]*string{idDir + "/tip.json": str(tipWithSequence(t, dir, idDir, "4"))}
		}, idDir + "/tip.json"},
		{"file where a directory belongs", func(string) map[string]*string {
			return map[string]*string{idDir + "/events/00000000.json": nil, idDir + "/events/00000001.json": nil,
				idDir + "/events/00000000.attachments.cesr": nil, idDir + "/events/00000001.attachments.cesr": nil,
				idDir + "/events": str("x")}
		}, idDir + "/events"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, r := importVectors(t, false)
			rewriteRegistry(t, dir, tc.edits(dir))
			head, _ := r.Head()
			s, err := r.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Verify(vectorPrefix)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Path != tc.path {
				t.Fatalf("Verify = %v, want a *CorruptError naming %s", err, tc.path)
			}
			t.Logf("reported: %v", err)
			// An append to that identity is refused; nothing is overwritten.
			// (An append trusts state.json when it is valid for the tip and
			// does not reread the events: it is then refused for its
			// missing signatures.)
			var b Batch
			b.Append(kel.SignedEvent{Event: mustIxnAfterVectors(t)})
			if _, err := r.Commit(bg(), &b); err == nil {
				t.Errorf("Commit on a corrupt identity succeeded")
			} else {
				t.Logf("append refused: %v", err)
			}
			if h, _ := r.Head(); h != head {
				t.Errorf("ref moved over a corrupt tree")
			}
		})
	}
}

// mustIxnAfterVectors is an (unsigned) ixn following the keripy KEL.
func mustIxnAfterVectors(t *testing.T) *kel.Event {
	t.Helper()
	stream, _ := vectorStream(t)
	events, err := kel.ParseStream(stream)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kel.Replay(events)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kel.NewInteraction(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// tipWithSequence returns the identity's tip.json with its sequence
// replaced by seq (a JSON number), keeping its SAID.
func tipWithSequence(t *testing.T, dir, idDir, seq string) string {
	t.Helper()
	tip := runGitShow(t, dir, idDir+"/tip.json")
	out := regexp.MustCompile(`"sequence": *[0-9]+`).ReplaceAllString(tip, `"sequence": `+seq)
	if out == tip {
		t.Fatalf("no sequence in %s", tip)
	}
	return out
}

func runGitShow(t *testing.T, dir, path string) string {
	return runGit(t, dir, "show", RegistryRef+":"+path)
}

func TestForeignPathsKept(t *testing.T) {
	dir, r := importVectors(t, false)
	rewriteRegistry(t, dir, map[string]*string{"v1/orgs/acme/members.json": str(`{"m":1}`), "README": str("hi")})
	var b Batch
	attestBatch(&b, "did:key:z6MkForeign", "rid")
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	if got := runGitShow(t, dir, "v1/orgs/acme/members.json"); got != `{"m":1}` {
		t.Errorf("v1/orgs changed: %q", got)
	}
	if got := runGitShow(t, dir, "README"); got != "hi" {
		t.Errorf("README changed: %q", got)
	}
	fsck(t, dir)
}

// TestLeftoverRefLock: a ref lock is never broken, however old: a commit
// waits for it, then fails naming the lock file and how to remove it, and
// leaves it (and the ref) alone. Unlock removes it, but only while no
// process holds registry.lock. A lock a live writer lets go of is waited
// for.
func TestLeftoverRefLock(t *testing.T) {
	dir, _ := importVectors(t, false)
	lock := filepath.Join(dir, ".git", RegistryRef+".lock")
	r := openTest(t, dir, WithRefLockWait(time100ms))
	head, _ := r.Head()
	os.WriteFile(lock, []byte("junk\n"), 0o644)
	old := nowMinus(3600)
	os.Chtimes(lock, old, old)
	var b Batch
	attestBatch(&b, "did:key:z6MkLock1", "rid")
	_, err := r.Commit(bg(), &b)
	var le *LockError
	if !errors.As(err, &le) || le.Path != lock || !strings.Contains(err.Error(), "remove it (auths-agent registry unlock)") {
		t.Fatalf("Commit beside an hour-old ref lock = %v, want a *LockError naming %s and the way out", err, lock)
	}
	t.Logf("reported: %v", err)
	if _, err := os.Stat(lock); err != nil {
		t.Fatalf("the lock file was removed: %v", err)
	}
	if h, _ := r.Head(); h != head {
		t.Fatalf("ref moved")
	}

	// Unlock refuses while a process holds registry.lock (another open
	// file description stands in for it).
	held := openTest(t, dir)
	unlockHeld, err := held.lock(bg())
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := r.Unlock(); !errors.Is(err, ErrLockHeld) || removed != nil {
		t.Errorf("Unlock while registry.lock is held = %v, %v; want ErrLockHeld", removed, err)
	}
	unlockHeld()
	if _, err := os.Stat(lock); err != nil {
		t.Fatalf("the lock file was removed while registry.lock was held")
	}
	removed, err := r.Unlock()
	if err != nil || len(removed) != 1 || removed[0] != lock {
		t.Fatalf("Unlock = %v, %v; want [%s]", removed, err, lock)
	}
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}

	// A fresh lock held by a "foreign writer" that lets go after 50ms.
	os.WriteFile(lock, []byte("junk\n"), 0o644)
	go func() { sleepMs(50); os.Remove(lock) }()
	r2 := openTest(t, dir, WithRefLockWait(time2s))
	b = Batch{}
	attestBatch(&b, "did:key:z6MkLock2", "rid")
	if _, err := r2.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	fsck(t, dir)
}

// TestLeftoverPackedRefsLock: deleting a packed pending ref waits for
// packed-refs.lock and fails naming it, however old it is.
func TestLeftoverPackedRefsLock(t *testing.T) {
	dir := newGitRepo(t, true)
	r := openTest(t, dir, WithRefLockWait(time100ms))
	id := pendingTestID(7)
	if _, err := r.PutPending(bg(), id, PendingFiles{"event.json": []byte("e")}); err != nil {
		t.Fatal(err)
	}
	runGit(t, dir, "pack-refs", "--all")
	lock := filepath.Join(dir, "packed-refs.lock")
	os.WriteFile(lock, nil, 0o644)
	old := nowMinus(3600)
	os.Chtimes(lock, old, old)
	err := r.DeletePending(bg(), id)
	var le *LockError
	if !errors.As(err, &le) || le.Path != lock {
		t.Fatalf("DeletePending beside an hour-old packed-refs.lock = %v, want a *LockError naming it", err)
	}
	if _, err := r.ReadPending(id); err != nil {
		t.Errorf("the proposal is gone after a failed delete: %v", err)
	}
	if removed, err := r.Unlock(); err != nil || len(removed) != 1 || removed[0] != lock {
		t.Fatalf("Unlock = %v, %v; want [%s]", removed, err, lock)
	}
	if err := r.DeletePending(bg(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadPending(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadPending after delete = %v", err)
	}
	fsck(t, dir)
}
