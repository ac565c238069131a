package registry

import (
	"reflect"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

// TestPendingLegacyMigrated: a proposal found under refs/auths/pending/
// (where earlier versions kept them, and where auths' pre-receive hook
// would refuse its deletion) is moved to refs/auths-agent/pending/ the
// first time pending refs are used, keeping its commit; one that exists in
// both places is merged; the legacy refs are gone afterwards.
func TestPendingLegacyMigrated(t *testing.T) {
	dir := newGitRepo(t, false)
	r := openTest(t, dir)
	a, b := pendingTestID(20), pendingTestID(21)
	ra, err := r.PutPending(bg(), a, PendingFiles{"event.json": []byte("a"), "sigs/0.qb64": []byte("s0")})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := r.PutPending(bg(), b, PendingFiles{"event.json": []byte("b"), "sigs/1.qb64": []byte("s1")})
	if err != nil {
		t.Fatal(err)
	}
	// As an earlier version left them: a only under the legacy name, b
	// under both with different signatures (b's legacy side packed).
	runGit(t, dir, "update-ref", LegacyPendingRefPrefix+a.String(), ra.Commit)
	runGit(t, dir, "update-ref", "-d", a.Ref())
	runGit(t, dir, "update-ref", LegacyPendingRefPrefix+b.String(), rb.Commit)
	runGit(t, dir, "pack-refs", "--all", "--prune")
	if _, err := r.PutPending(bg(), b, PendingFiles{"sigs/2.qb64": []byte("s2")}); err != nil {
		t.Fatal(err)
	}
	// Give the legacy b a signature of its own, written with git on top of
	// the commit both sides share.
	blob := gitIn(t, dir, "s3", "hash-object", "-w", "--stdin")
	sigs := gitIn(t, dir, "100644 blob "+blob+"\t3.qb64\n", "mktree")
	root := gitIn(t, dir, "100644 blob "+gitIn(t, dir, "", "rev-parse", rb.Commit+":event.json")+"\tevent.json\n040000 tree "+sigs+"\tsigs\n", "mktree")
	legacy := gitIn(t, dir, "", "commit-tree", "-p", rb.Commit, "-m", "legacy", root)
	runGit(t, dir, "update-ref", LegacyPendingRefPrefix+b.String(), legacy)

	ids, err := r.ListPending()
	if err != nil {
		t.Fatal(err)
	}
	if want := sortedIDs(a, b); !reflect.DeepEqual(ids, want) {
		t.Errorf("ListPending = %v, want %v", ids, want)
	}
	if got := runGit(t, dir, "for-each-ref", "--format=%(refname)", "refs/auths/"); got != "" {
		t.Errorf("legacy refs left:\n%s", got)
	}
	if got := strings.TrimSpace(runGit(t, dir, "rev-parse", a.Ref())); got != ra.Commit {
		t.Errorf("a moved to %s, want its own commit %s", got, ra.Commit)
	}
	files, err := r.ReadPending(b)
	if err != nil {
		t.Fatal(err)
	}
	want := PendingFiles{"event.json": []byte("b"), "sigs/1.qb64": []byte("s1"), "sigs/2.qb64": []byte("s2"), "sigs/3.qb64": []byte("s3")}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("b after migration = %q, want %q", files, want)
	}
	if parents := strings.Fields(runGit(t, dir, "log", "-1", "--format=%P", b.Ref())); len(parents) != 2 || parents[1] != legacy {
		t.Errorf("b's parents %v, want a merge with the legacy side %s", parents, legacy)
	}
	fsck(t, dir)
}

// TestPendingMergeSides: two histories of one proposal that both added
// signatures join in a merge commit whose parents are both sides (so the
// result fast-forwards from each), holding the union; a path both sides
// hold keeps the local content; merging a side already contained, or an
// ancestor, changes nothing; a descendant is a fast-forward.
func TestPendingMergeSides(t *testing.T) {
	dir := newGitRepo(t, true)
	r := openTest(t, dir)
	id := pendingTestID(22)
	base, err := r.PutPending(bg(), id, PendingFiles{"event.json": []byte("e"), "sigs/0.qb64": []byte("s0")})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := r.PutPending(bg(), id, PendingFiles{"sigs/1.qb64": []byte("s1"), "meta.json": []byte("theirs")})
	if err != nil {
		t.Fatal(err)
	}
	runGit(t, dir, "update-ref", id.Ref(), base.Commit)
	ours, err := r.PutPending(bg(), id, PendingFiles{"sigs/2.qb64": []byte("s2"), "meta.json": []byte("ours")})
	if err != nil {
		t.Fatal(err)
	}
	merge := func(other string) *MergeResult {
		t.Helper()
		unlock, err := r.lock(bg())
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		res, err := r.mergePendingLocked(bg(), id.Ref(), id, plumbing.NewHash(other))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := merge(theirs.Commit)
	if res.How != "merge" || !reflect.DeepEqual(res.Added, []string{"sigs/1.qb64"}) || !reflect.DeepEqual(res.Kept, []string{"meta.json"}) {
		t.Errorf("merge: %+v", res)
	}
	for _, side := range []string{ours.Commit, theirs.Commit} {
		runGit(t, dir, "merge-base", "--is-ancestor", side, res.Commit)
	}
	files, err := r.ReadPending(id)
	if err != nil {
		t.Fatal(err)
	}
	want := PendingFiles{"event.json": []byte("e"), "meta.json": []byte("ours"), "sigs/0.qb64": []byte("s0"), "sigs/1.qb64": []byte("s1"), "sigs/2.qb64": []byte("s2")}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("union = %q, want %q", files, want)
	}
	if again := merge(theirs.Commit); again.How != "unchanged" || again.Commit != res.Commit {
		t.Errorf("merging a contained side again: %+v", again)
	}
	next, err := r.PutPending(bg(), id, PendingFiles{"sigs/3.qb64": []byte("s3")})
	if err != nil {
		t.Fatal(err)
	}
	runGit(t, dir, "update-ref", id.Ref(), res.Commit)
	if ff := merge(next.Commit); ff.How != "fast-forward" || ff.Commit != next.Commit || !reflect.DeepEqual(ff.Added, []string{"sigs/3.qb64"}) {
		t.Errorf("descendant: %+v", ff)
	}
	fsck(t, dir)
}
