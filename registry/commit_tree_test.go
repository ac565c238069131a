package registry

import (
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// TestCommitTree: a snapshot takes the tree from the commit's first line
// only, whatever the length of its message (a batch of 10,000 inceptions
// has a megabyte of them), and an object that is not a commit starting
// with a tree line is refused.
func TestCommitTree(t *testing.T) {
	r := openTest(t, newGitRepo(t, true))
	ob := newObjectBatch()
	tree, err := ob.addEncoded(&object.Tree{})
	if err != nil {
		t.Fatal(err)
	}
	sig := object.Signature{Name: "t", Email: "t@localhost"}
	c, err := ob.addEncoded(&object.Commit{Author: sig, Committer: sig, TreeHash: tree, Message: strings.Repeat("auths-agent: incept E…\n", 50000)})
	if err != nil {
		t.Fatal(err)
	}
	blob := ob.add(plumbing.BlobObject, []byte("tree 4b825dc642cb6eb9a060e54bf8d69288fbc4904\n"))
	bad := ob.add(plumbing.CommitObject, []byte("parent 4b825dc642cb6eb9a060e54bf8d69288fbc4904\ntree 4b825dc642cb6eb9a060e54bf8d69288fbc4904\n"))
	release, err := r.writeObjects(ob)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if got, err := r.commitTree(c); err != nil || got != tree {
		t.Fatalf("commitTree of a commit with a 1.1 MB message: %s, %v; want %s", got, err, tree)
	}
	for h, want := range map[plumbing.Hash]string{
		blob: "is a blob, want a commit",
		bad:  "does not start with a tree line",
	} {
		if _, err := r.commitTree(h); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("commitTree(%s): %v, want %q", h, err, want)
		}
	}
}
