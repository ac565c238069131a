package vectors

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// sharedDir is the workspace's shared folder beside the project, where the
// vectors were copied from. A fresh clone has none.
var sharedDir = filepath.Join("..", "..", "..", "shared", "vectors", "keripy")

// TestCopyMatchesShared checks, when the shared folder is beside the
// project, that the project's copy of every vector file is byte-identical
// and that no vector file is missing from the copy.
func TestCopyMatchesShared(t *testing.T) {
	entries, err := os.ReadDir(sharedDir)
	if errors.Is(err, fs.ErrNotExist) {
		t.Logf("no %s beside the project (a fresh clone): nothing to compare", sharedDir)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, e := range entries {
		if e.Name() == "README.md" {
			// The copy's README adds where the copy lives.
			continue
		}
		want, err := os.ReadFile(filepath.Join(sharedDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := File(e.Name())
		if err != nil {
			t.Errorf("%s is in %s but not in the project's copy: %v", e.Name(), sharedDir, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s", e.Name(), filepath.Join(sharedDir, e.Name()))
		}
		compared++
	}
	if compared != len(Names) {
		t.Errorf("compared %d files, want the %d vector files", compared, len(Names))
	}
}

func TestStreamIsNamesInOrder(t *testing.T) {
	var n int
	for _, name := range Names {
		data, err := File(name)
		if err != nil {
			t.Fatal(err)
		}
		n += len(data)
	}
	s := Stream()
	if len(s) != n || !bytes.HasPrefix(s, []byte(`{"v":"KERI10JSON`)) {
		t.Fatalf("stream of %d bytes, want %d starting with the inception", len(s), n)
	}
	if _, err := File("nope"); err == nil {
		t.Fatal("File of a missing name succeeded")
	}
}
