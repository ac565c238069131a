package registry

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// packFiles lists objects/pack/ of the repository at dir (work tree).
func packFiles(t testing.TB, gitDir string) (idx []string, other []string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(gitDir, "objects", "pack"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := packName(e.Name(), ".idx"); ok {
			idx = append(idx, e.Name())
		} else {
			other = append(other, e.Name())
		}
	}
	return idx, other
}

// checkPackDir checks that every index has its pack and that nothing else
// than packs, indexes and temporary files (which git ignores and its gc
// removes) is there; it returns the number of packs.
func checkPackDir(t testing.TB, gitDir string) int {
	t.Helper()
	idx, other := packFiles(t, gitDir)
	packs := map[string]bool{}
	for _, name := range other {
		switch {
		case strings.HasPrefix(name, "tmp_") || strings.HasPrefix(name, tmpPrefix):
		case strings.HasSuffix(name, ".bitmap") || strings.HasSuffix(name, ".rev") || strings.HasSuffix(name, ".keep"):
		case strings.HasSuffix(name, ".pack"):
			packs[strings.TrimSuffix(name, ".pack")] = true
		default:
			t.Errorf("objects/pack/%s: unexpected file", name)
		}
	}
	for _, name := range idx {
		if !packs[strings.TrimSuffix(name, ".idx")] {
			t.Errorf("objects/pack/%s: index without its pack", name)
		}
	}
	return len(idx)
}

// countObjects returns git count-objects -v as a map.
func countObjects(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(runGit(t, dir, "count-objects", "-v"), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			out[k] = v
		}
	}
	return out
}

// TestConsolidation: many commits keep the number of packs bounded by
// merging those this package wrote, without losing an object; a pack git
// wrote stays as git wrote it; git finds the repository clean and every
// KEL verifies.
func TestConsolidation(t *testing.T) {
	const maxPacks, rounds = 4, 60
	dir := newGitRepo(t, true)
	r := openTest(t, dir, WithMaxPacks(maxPacks))
	ids := make([]*testID, 3)
	for i := range ids {
		id, icp, err := newTestID(fmt.Sprintf("consolidate-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		var b Batch
		b.Append(icp)
		if _, err := r.Commit(bg(), &b); err != nil {
			t.Fatal(err)
		}
	}
	var gitPack []string
	for k := 0; k < rounds; k++ {
		if k == rounds/2 {
			// git packs everything with deltas: its pack is git's to
			// maintain, and later merges leave it alone.
			runGit(t, dir, "repack", "-a", "-d", "-q")
			if n := checkPackDir(t, dir); n != 1 {
				t.Fatalf("git repack left %d packs", n)
			}
			gitPack, _ = packFiles(t, dir)
		}
		id := ids[k%len(ids)]
		did := fmt.Sprintf("did:key:z6MkC%d", k)
		se, err := id.ixn()
		if err != nil {
			t.Fatal(err)
		}
		var b Batch
		b.Append(se)
		attestBatch(&b, did, fmt.Sprint(k))
		if _, err := r.Commit(bg(), &b); err != nil {
			t.Fatal(err)
		}
		if n := checkPackDir(t, dir) - len(gitPack); n > maxPacks {
			t.Fatalf("commit %d left %d packs of ours, more than %d", k, n, maxPacks)
		}
	}
	if r.written.merges.Load() == 0 {
		t.Fatal("no merge happened")
	}
	if idx, _ := packFiles(t, dir); len(gitPack) != 1 || !slices.Contains(idx, gitPack[0]) {
		t.Errorf("git's pack %v was merged: %v", gitPack, idx)
	}
	t.Logf("%d packs written, %d merges, %d packs left", r.written.packs.Load(), r.written.merges.Load(), checkPackDir(t, dir))
	fsck(t, dir)
	c := countObjects(t, dir)
	if c["count"] != "0" || c["garbage"] != "0" {
		t.Errorf("git count-objects: %v, want no loose objects and no garbage", c)
	}
	for _, r := range []*Registry{r, openTest(t, dir)} { // this process's view and a fresh one
		s, err := r.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			st, err := s.Verify(id.st.Prefix)
			if err != nil {
				t.Fatal(err)
			}
			if st.Sequence != id.st.Sequence {
				t.Errorf("%s: s=%d, want %d", id.st.Prefix, st.Sequence, id.st.Sequence)
			}
		}
		for k := 0; k < rounds; k++ {
			if _, err := s.Attestation(fmt.Sprintf("did:key:z6MkC%d", k)); err != nil {
				t.Error(err)
			}
		}
	}
	if n := len(commitLog(t, dir)); n != len(ids)+rounds {
		t.Errorf("%d commits, want %d", n, len(ids)+rounds)
	}
}

// TestReaderSeesOtherProcessPacks: a registry value that has listed the
// packs reads what another process wrote afterwards, although that
// process's merges removed packs it had listed, and commits on top.
func TestReaderSeesOtherProcessPacks(t *testing.T) {
	dir := newGitRepo(t, false)
	r := openTest(t, dir)
	a := newIdentity(t, r, "reader-A")
	appendN(t, r, a, 3)
	s, err := r.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(a.st.Prefix); err != nil {
		t.Fatal(err)
	}
	before, _ := packFiles(t, filepath.Join(dir, ".git"))

	const batches = 10
	c := startHelper(t, "kel", dir, "reader-B", batches, "REGISTRY_MAXPACKS=2")
	if err := c.wait(); err != nil {
		t.Fatalf("writer: %v\n%s", err, c.stderr.String())
	}
	after, _ := packFiles(t, filepath.Join(dir, ".git"))
	gone := 0
	for _, name := range before {
		if !slices.Contains(after, name) {
			gone++
		}
	}
	if gone == 0 {
		t.Fatalf("the other process removed none of the packs listed before (%v → %v)", before, after)
	}

	s, err = r.Snapshot() // the same registry value: its pack list is stale
	if err != nil {
		t.Fatal(err)
	}
	checkKELWriter(t, s, "reader-B", c.ackList())
	if _, err := s.Verify(a.st.Prefix); err != nil {
		t.Fatal(err)
	}
	se, err := a.ixn()
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.Append(se)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	fsck(t, dir)
}

// TestCrashConsolidation kills a writer that merges packs after every
// commit (at most two packs) at random moments: nothing acknowledged is
// lost, git finds the repository clean, and what a kill leaves in
// objects/pack/ is only temporary files or a pack without its index
// (which git ignores), cleaned by a later merge.
func TestCrashConsolidation(t *testing.T) {
	dir := newGitRepo(t, false)
	// Delays spread evenly on a log scale from 10ms to 150ms: commits
	// are quick, and many kills should land after the start-up.
	delay := func(rng *rand.Rand) time.Duration {
		return time.Duration(float64(10*time.Millisecond) * math.Pow(15, rng.Float64()))
	}
	crashWriter(t, dir, 120, delay, "REGISTRY_MAXPACKS=2")
	checkPackDir(t, filepath.Join(dir, ".git"))
	c := countObjects(t, dir)
	t.Logf("after the crashes: %v", c)
	if c["count"] != "0" {
		t.Errorf("%s loose objects", c["count"])
	}
}
