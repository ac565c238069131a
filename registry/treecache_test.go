package registry

import (
	"bytes"
	"io"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// TestEncodeTree: encodeTree writes the bytes go-git's Tree.Encode writes,
// for every mode git knows and an odd one read from a foreign tree, and
// refuses a name git could not read back.
func TestEncodeTree(t *testing.T) {
	h := plumbing.NewHash("4b825dc642cb6eb9a060e54bf8d69288fbc4904")
	entries := []object.TreeEntry{
		{Name: "EA", Mode: filemode.Dir, Hash: h},
		{Name: "a.json", Mode: filemode.Regular, Hash: h},
		{Name: "bin", Mode: filemode.Executable, Hash: h},
		{Name: "link", Mode: filemode.Symlink, Hash: h},
		{Name: "old", Mode: filemode.Deprecated, Hash: h},
		{Name: "sub", Mode: filemode.Submodule, Hash: h},
		{Name: "z", Mode: filemode.FileMode(0o100600), Hash: h},
	}
	got, err := encodeTree(entries)
	if err != nil {
		t.Fatal(err)
	}
	var mo plumbing.MemoryObject
	if err := (&object.Tree{Entries: entries}).Encode(&mo); err != nil {
		t.Fatal(err)
	}
	rd, _ := mo.Reader()
	want, _ := io.ReadAll(rd)
	if !bytes.Equal(got, want) {
		t.Fatalf("encodeTree:\n%q\nTree.Encode:\n%q", got, want)
	}
	for _, name := range []string{"", "a\x00b"} {
		if _, err := encodeTree([]object.TreeEntry{{Name: name, Mode: filemode.Regular, Hash: h}}); err == nil {
			t.Errorf("encodeTree accepted the name %q", name)
		}
	}
}
