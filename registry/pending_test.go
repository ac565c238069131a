package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/auths-dev/auths-agent/kel"
)

func pendingTestID(n int) PendingID {
	return PendingID{Prefix: kel.Digest([]byte("prefix")), SAID: kel.Digest([]byte(fmt.Sprint("said", n)))}
}

// TestPendingUnion: files merge by union, file by file; a path already
// held keeps its first content; every change is a commit on the previous
// one; git finds the repository clean.
func TestPendingUnion(t *testing.T) {
	dir := newGitRepo(t, false)
	r := openTest(t, dir)
	id := pendingTestID(1)
	res, err := r.PutPending(bg(), id, PendingFiles{"event.json": []byte(`{"a":1}`), "sigs/0.qb64": []byte("AAsig0")})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Added, []string{"event.json", "sigs/0.qb64"}) || res.Kept != nil {
		t.Errorf("first put: %+v", res)
	}
	first := res.Commit
	res, err = r.PutPending(bg(), id, PendingFiles{"event.json": []byte(`{"a":1}`), "sigs/0.qb64": []byte("AAother"), "sigs/2.qb64": []byte("ACsig2")})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Added, []string{"sigs/2.qb64"}) || !reflect.DeepEqual(res.Kept, []string{"sigs/0.qb64"}) {
		t.Errorf("second put: %+v", res)
	}
	// Nothing new: no commit.
	again, err := r.PutPending(bg(), id, PendingFiles{"sigs/2.qb64": []byte("ACsig2")})
	if err != nil || again.Commit != res.Commit || len(again.Added) != 0 {
		t.Errorf("idempotent put: %+v %v", again, err)
	}
	files, err := r.ReadPending(id)
	if err != nil {
		t.Fatal(err)
	}
	want := PendingFiles{"event.json": []byte(`{"a":1}`), "sigs/0.qb64": []byte("AAsig0"), "sigs/2.qb64": []byte("ACsig2")}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("ReadPending = %q, want %q", files, want)
	}
	if parent := strings.TrimSpace(runGit(t, dir, "rev-parse", id.Ref()+"^")); parent != first {
		t.Errorf("parent of the second commit %s, want %s", parent, first)
	}
	if got := runGit(t, dir, "ls-tree", "-r", "--name-only", id.Ref()); got != "event.json\nsigs/0.qb64\nsigs/2.qb64\n" {
		t.Errorf("git ls-tree:\n%s", got)
	}
	fsck(t, dir)
}

// TestPendingConcurrentUnion: writers adding their own signature files to
// one proposal at once all land.
func TestPendingConcurrentUnion(t *testing.T) {
	dir := newGitRepo(t, true)
	id := pendingTestID(2)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := openTest(t, dir) // one Registry value per writer, as separate processes have
			_, errs[i] = r.PutPending(bg(), id, PendingFiles{"event.json": []byte("e"), fmt.Sprintf("sigs/%d.qb64", i): []byte(fmt.Sprint(i))})
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	files, err := openTest(t, dir).ReadPending(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 9 {
		t.Errorf("%d files, want the event and 8 signatures: %q", len(files), files)
	}
	fsck(t, dir)
}

// TestPendingPackedRefs: proposals are listed, read and deleted whether
// their refs are loose or packed by git; deletion uses the lock files and
// leaves packed-refs valid for git.
func TestPendingPackedRefs(t *testing.T) {
	dir := newGitRepo(t, false)
	r := openTest(t, dir)
	a, b, c := pendingTestID(3), pendingTestID(4), pendingTestID(5)
	for _, id := range []PendingID{a, b} {
		if _, err := r.PutPending(bg(), id, PendingFiles{"event.json": []byte(id.SAID)}); err != nil {
			t.Fatal(err)
		}
	}
	runGit(t, dir, "pack-refs", "--all", "--prune")
	if _, err := os.Stat(filepath.Join(dir, ".git", filepath.FromSlash(a.Ref()))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("git pack-refs left the loose ref: %v", err)
	}
	if _, err := r.PutPending(bg(), c, PendingFiles{"event.json": []byte(c.SAID)}); err != nil {
		t.Fatal(err)
	}
	// A packed ref updated again becomes loose and shadows the packed one.
	if _, err := r.PutPending(bg(), b, PendingFiles{"sigs/1.qb64": []byte("x")}); err != nil {
		t.Fatal(err)
	}
	ids, err := r.ListPending()
	if err != nil {
		t.Fatal(err)
	}
	if want := sortedIDs(a, b, c); !reflect.DeepEqual(ids, want) {
		t.Errorf("ListPending = %v, want %v", ids, want)
	}
	if files, err := r.ReadPending(b); err != nil || len(files) != 2 {
		t.Errorf("ReadPending(b) = %q, %v; want both files", files, err)
	}
	for _, id := range []PendingID{a, b} {
		if err := r.DeletePending(bg(), id); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.DeletePending(bg(), a); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
	if got := runGit(t, dir, "for-each-ref", "--format=%(refname)", PendingRefPrefix); got != c.Ref()+"\n" {
		t.Errorf("git for-each-ref after deleting a and b:\n%s", got)
	}
	if _, err := r.ReadPending(a); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadPending of a deleted proposal: %v, want ErrNotFound", err)
	}
	if err := r.DeletePending(bg(), c); err != nil {
		t.Fatal(err)
	}
	if ids, err := r.ListPending(); err != nil || len(ids) != 0 {
		t.Errorf("ListPending after deleting all: %v %v", ids, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".git", filepath.FromSlash(PendingRefPrefix), "*", "*.lock"))
	if len(leftovers) > 0 {
		t.Errorf("lock files left: %v", leftovers)
	}
	fsck(t, dir)
}

func sortedIDs(ids ...PendingID) []PendingID {
	out := append([]PendingID(nil), ids...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].SAID < out[j-1].SAID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestPendingBadInput: names and paths that could leave the ref namespace
// or the tree are refused before anything is written.
func TestPendingBadInput(t *testing.T) {
	dir := newGitRepo(t, false)
	r := openTest(t, dir)
	good := pendingTestID(6)
	for _, tc := range []struct {
		id    PendingID
		files PendingFiles
		want  string
	}{
		{PendingID{Prefix: "../x", SAID: good.SAID}, PendingFiles{"a": nil}, `prefix "../x": character '.' is not base64url`},
		{PendingID{Prefix: good.Prefix, SAID: "E/../../HEAD"}, PendingFiles{"a": nil}, "said: prefix"},
		{good, PendingFiles{}, "no files"},
		{good, PendingFiles{"../a": nil}, `file path "../a": empty, . or .. component`},
		{good, PendingFiles{"a//b": nil}, "empty, . or .. component"},
		{good, PendingFiles{"a b": nil}, `character ' ' not allowed`},
		{good, PendingFiles{"a": nil, "a/b": nil}, "both a file and a directory"},
	} {
		_, err := r.PutPending(bg(), tc.id, tc.files)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PutPending(%v, %q) = %v, want %q", tc.id, tc.files, err, tc.want)
		}
	}
	if got := runGit(t, dir, "for-each-ref"); got != "" {
		t.Errorf("refs written: %s", got)
	}
}
