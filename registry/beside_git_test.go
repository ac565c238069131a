package registry

// Tests of the registry beside git's own maintenance: repack, gc,
// multi-pack-index, bitmaps, .keep files, and of what reaches the disk
// before a commit is reported (checked with strace on a writer process).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// appendN commits n interaction events of id, one batch each.
func appendN(t *testing.T, r *Registry, id *testID, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		se, err := id.ixn()
		if err != nil {
			t.Fatal(err)
		}
		var b Batch
		b.Append(se)
		if _, err := r.Commit(bg(), &b); err != nil {
			t.Fatal(err)
		}
	}
}

// newIdentity commits the inception of a test identity.
func newIdentity(t *testing.T, r *Registry, seed string) *testID {
	t.Helper()
	id, icp, err := newTestID(seed)
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.Append(icp)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestKeepUntilRefMoves: git repack -a -d and git gc --prune=now run in
// the window between a commit's pack landing in objects/pack/ and the ref
// moving (the pack's objects are unreachable then); the pack survives
// because it has a .keep, which is gone once the ref has moved. The same
// for a pending proposal's pack.
func TestKeepUntilRefMoves(t *testing.T) {
	dir := newGitRepo(t, true)
	var kept []string
	hook := func() {
		_, other := packFiles(t, dir)
		for _, name := range other {
			if strings.HasSuffix(name, ".keep") {
				kept = append(kept, name)
			}
		}
		runGit(t, dir, "repack", "-a", "-d", "-q")
		runGit(t, dir, "gc", "--prune=now", "-q")
	}
	r := openTest(t, dir)
	r.opts.beforeRefMove = hook
	id := newIdentity(t, r, "keep")
	appendN(t, r, id, 3)
	if _, err := r.PutPending(bg(), pendingTestID(1), PendingFiles{"event.json": []byte("e")}); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 5 {
		t.Errorf("%d packs had a .keep while the ref moved, want 5: %v", len(kept), kept)
	}
	if _, other := packFiles(t, dir); slices.ContainsFunc(other, func(n string) bool { return strings.HasSuffix(n, ".keep") }) {
		t.Errorf(".keep files left after the refs moved: %v", other)
	}
	fsck(t, dir)
	s, err := openTest(t, dir).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.Verify(id.st.Prefix); err != nil || st.Sequence != 3 {
		t.Fatalf("Verify = %v, %v; want s=3", st, err)
	}
	if _, err := openTest(t, dir).ReadPending(pendingTestID(1)); err != nil {
		t.Fatal(err)
	}
}

// TestBesideGitMaintenance: 200 commits of ours while git repack -a -d
// and git gc --prune=now run in a loop: every acknowledged commit is in
// the registry's history with its objects, the KEL verifies, git fsck
// --strict is clean.
func TestBesideGitMaintenance(t *testing.T) {
	const commits = 200
	dir := newGitRepo(t, true)
	r := openTest(t, dir, WithMaxPacks(8))
	id := newIdentity(t, r, "maintenance")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runs [2]int
	var gitErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			args := [][]string{{"repack", "-a", "-d", "-q"}, {"gc", "--prune=now", "-q"}}[i%2]
			cmd := exec.Command("git", args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				gitErr = fmt.Errorf("git %v: %v\n%s", args, err, out)
				return
			}
			runs[i%2]++
		}
	}()
	var acked []string
	for i := 0; i < commits; i++ {
		se, err := id.ixn()
		if err != nil {
			t.Fatal(err)
		}
		var b Batch
		b.Append(se)
		res, err := r.Commit(bg(), &b)
		if err != nil {
			cancel()
			wg.Wait()
			t.Fatalf("commit %d: %v", i, err)
		}
		acked = append(acked, res.Commit)
	}
	cancel()
	wg.Wait()
	if gitErr != nil {
		t.Fatal(gitErr)
	}
	t.Logf("%d commits beside %d git repack -a -d and %d git gc --prune=now", commits, runs[0], runs[1])
	if runs[0] == 0 || runs[1] == 0 {
		t.Errorf("git's maintenance did not run during the commits")
	}
	fsck(t, dir)
	history := commitLog(t, dir)
	for i, c := range acked {
		if !slices.Contains(history, c) {
			t.Errorf("acknowledged commit %d (%s) is not in the registry's history", i, c)
		}
	}
	s, err := openTest(t, dir).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.Verify(id.st.Prefix); err != nil || st.Sequence != commits {
		t.Fatalf("Verify = %v, %v; want s=%d", st, err, commits)
	}
}

// TestMergeOnlyOurPacks: a merge leaves alone the packs git wrote (here
// with a bitmap), packs a multi-pack-index lists, and a pack someone kept;
// it merges the packs this package wrote since. git multi-pack-index
// verify and git fsck stay clean.
func TestMergeOnlyOurPacks(t *testing.T) {
	const maxPacks = 3
	dir := newGitRepo(t, true)
	r := openTest(t, dir, WithMaxPacks(maxPacks))
	id := newIdentity(t, r, "only-ours")
	appendN(t, r, id, 2)
	runGit(t, dir, "repack", "-a", "-d", "-q", "--write-bitmap-index")
	gitPacks, _ := packFiles(t, dir)
	appendN(t, r, id, 2)
	runGit(t, dir, "multi-pack-index", "write")
	inMidx, _ := packFiles(t, dir)
	appendN(t, r, id, 1)
	all, _ := packFiles(t, dir)
	keptPack := strings.TrimSuffix(all[slices.IndexFunc(all, func(n string) bool { return !slices.Contains(inMidx, n) })], ".idx")
	os.WriteFile(filepath.Join(dir, "objects", "pack", keptPack+".keep"), []byte("by hand\n"), 0o644)
	untouchable := append(append([]string{keptPack + ".idx"}, inMidx...), gitPacks...)
	slices.Sort(untouchable)
	untouchable = slices.Compact(untouchable)

	merges := r.written.merges.Load()
	appendN(t, r, id, 12)
	if r.written.merges.Load() == merges {
		t.Fatal("no merge happened")
	}
	idx, _ := packFiles(t, dir)
	for _, name := range untouchable {
		if !slices.Contains(idx, name) {
			t.Errorf("%s was merged away", name)
		}
	}
	ours := 0
	for _, name := range idx {
		if !slices.Contains(untouchable, name) {
			ours++
		}
	}
	if ours > maxPacks {
		t.Errorf("%d packs of ours left, more than %d", ours, maxPacks)
	}
	t.Logf("packs: %d untouchable (git's, listed in the multi-pack-index, kept), %d of ours", len(untouchable), ours)
	runGit(t, dir, "multi-pack-index", "verify", "--no-progress")
	fsck(t, dir)
	s, err := openTest(t, dir).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(id.st.Prefix); err != nil {
		t.Fatal(err)
	}
}

// TestMergeWeighsByObjects: packs are weighed by their number of objects,
// as git's geometric repack does, not by their bytes: a pack of three
// objects holding one large file is merged like any other small pack.
func TestMergeWeighsByObjects(t *testing.T) {
	const maxPacks = 4
	dir := newGitRepo(t, true)
	r := openTest(t, dir, WithMaxPacks(maxPacks))
	id := newIdentity(t, r, "weights")
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7919 >> 3) // compresses poorly
	}
	if _, err := r.PutPending(bg(), pendingTestID(3), PendingFiles{"doc.json": big}); err != nil {
		t.Fatal(err)
	}
	bigPack, _ := packFiles(t, dir)
	bigPack = slices.DeleteFunc(bigPack, func(n string) bool {
		c, err := idxCount(filepath.Join(dir, "objects", "pack", n))
		return err != nil || c != 3
	})
	if len(bigPack) != 1 {
		t.Fatalf("no pack of 3 objects: %v", bigPack)
	}
	appendN(t, r, id, 8)
	if r.written.merges.Load() == 0 {
		t.Fatal("no merge happened")
	}
	if idx, _ := packFiles(t, dir); slices.Contains(idx, bigPack[0]) {
		t.Errorf("the pack of 3 objects and 3 MB is left out of every merge: %v", idx)
	}
	if files, err := openTest(t, dir).ReadPending(pendingTestID(3)); err != nil || len(files["doc.json"]) != len(big) {
		t.Fatalf("ReadPending after the merge: %v", err)
	}
	fsck(t, dir)
}

// straceWriter runs one writer process (mode kel, n batches) under
// strace and returns the system calls it traced, one per line.
func straceWriter(t *testing.T, dir string, n int) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "strace")
	cmd := exec.Command("strace", "-f", "-y", "-qq", "-o", out,
		"-e", "trace=fsync,fdatasync,syncfs,sync,rename,renameat,renameat2,write",
		os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REGISTRY_TEST_HELPER=kel", "REGISTRY_DIR="+dir,
		"REGISTRY_ID=strace", fmt.Sprintf("REGISTRY_N=%d", n))
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("strace writer: %v\n%s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var calls []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		calls = append(calls, sc.Text())
	}
	return calls
}

// TestCommitDurableBeforeAck: what a commit makes durable before it is
// reported, as the kernel sees it: the pack and its index flushed with
// fdatasync (never syncfs, which flushes the whole file system), the pack
// directory after their renames, then the ref's lock file flushed, renamed
// into place and its directory flushed, all before the writer prints its acknowledgement.
func TestCommitDurableBeforeAck(t *testing.T) {
	dir := newGitRepo(t, false)
	calls := straceWriter(t, dir, 2)
	gitDir := filepath.Join(dir, ".git")
	packDir := filepath.Join(gitDir, "objects", "pack")
	refDir := filepath.Join(gitDir, "refs", "auths")
	find := func(from int, re *regexp.Regexp) int {
		for i := from; i < len(calls); i++ {
			if re.MatchString(calls[i]) {
				return i
			}
		}
		return -1
	}
	for _, c := range calls {
		if strings.Contains(c, "syncfs(") || regexp.MustCompile(`\bsync\(\)`).MatchString(c) {
			t.Errorf("whole file system flushed: %s", c)
		}
	}
	q := regexp.QuoteMeta
	ackRe := regexp.MustCompile(`write\(1<[^>]*>, "ack (\d+)\\n"`)
	from := 0
	for k := 0; k < 2; k++ {
		steps := []struct {
			what string
			re   *regexp.Regexp
		}{
			{"fdatasync of the pack", regexp.MustCompile(`fdatasync\(\d+<` + q(packDir) + `/` + tmpPrefix + `pack_`)},
			{"fdatasync of the index", regexp.MustCompile(`fdatasync\(\d+<` + q(packDir) + `/` + tmpPrefix + `idx_`)},
			{"rename of the pack", regexp.MustCompile(`rename.*/` + tmpPrefix + `pack_[0-9a-f]+", .*/pack-[0-9a-f]{40}\.pack"`)},
			{"rename of the index", regexp.MustCompile(`rename.*/` + tmpPrefix + `idx_[0-9a-f]+", .*/pack-[0-9a-f]{40}\.idx"`)},
			{"fsync of the pack directory", regexp.MustCompile(`fsync\(\d+<` + q(packDir) + `>`)},
			{"fsync of the ref lock's content", regexp.MustCompile(`fsync\(\d+<` + q(filepath.Join(refDir, "registry.lock")) + `>`)},
			{"rename of the ref lock", regexp.MustCompile(`rename.*"` + q(filepath.Join(refDir, "registry.lock")) + `", .*"` + q(filepath.Join(refDir, "registry")) + `"`)},
			{"fsync of the ref's directory", regexp.MustCompile(`fsync\(\d+<` + q(refDir) + `>`)},
			{"the acknowledgement", ackRe},
		}
		for _, st := range steps {
			i := find(from, st.re)
			if i < 0 {
				t.Fatalf("commit %d: no %s after call %d; traced:\n%s", k, st.what, from, strings.Join(calls[from:], "\n"))
			}
			from = i + 1
		}
	}
	if n := len(commitLog(t, dir)); n != 2 {
		t.Errorf("%d commits, want 2", n)
	}
	fsck(t, dir)
}

// TestKeepReleasedOnEveryExit: a pack's .keep is removed however the
// commit ends after the pack is written: a panic between the pack and the
// ref move (recovered by the caller, as a long-lived agent does), or a
// ref lock that never goes away. The ref stays where it was.
func TestKeepReleasedOnEveryExit(t *testing.T) {
	dir := newGitRepo(t, true)
	r := openTest(t, dir, WithRefLockWait(time100ms))
	id := newIdentity(t, r, "keep-exit")
	head, _ := r.Head()
	noKeep := func(when string) {
		t.Helper()
		if _, other := packFiles(t, dir); slices.ContainsFunc(other, func(n string) bool { return strings.HasSuffix(n, ".keep") }) {
			t.Errorf("%s: .keep files left: %v", when, other)
		}
		if h, _ := r.Head(); h != head {
			t.Errorf("%s: the ref moved", when)
		}
	}
	se, err := id.ixn()
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.Append(se)
	r.opts.beforeRefMove = func() { panic("injected") }
	for _, what := range []string{"Commit", "PutPending"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: the injected panic did not happen", what)
				}
			}()
			if what == "Commit" {
				r.Commit(bg(), &b)
			} else {
				r.PutPending(bg(), pendingTestID(1), PendingFiles{"event.json": []byte("e")})
			}
		}()
		noKeep(what + " that panicked before the ref moved")
	}
	r.opts.beforeRefMove = nil
	lock := filepath.Join(dir, RegistryRef+".lock") // a bare repository
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var le *LockError
	if _, err := r.Commit(bg(), &b); !errors.As(err, &le) {
		t.Fatalf("Commit beside a held ref lock = %v, want a *LockError", err)
	}
	noKeep("Commit that found the ref locked")
	os.Remove(lock)
	fsck(t, dir)
}
