package registry

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/rogpeppe/go-internal/txtar"
)

// fuzzPending is the pending proposal FuzzRegistryTree builds.
var fuzzPending = PendingID{Prefix: "EFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuz", SAID: "EPendPendPendPendPendPendPendPendPendPendPen"}

// FuzzRegistryTree builds a repository from a txtar archive and reads it
// through the public API: nothing panics, nothing allocates by a size the
// repository claims, and what the layout does not allow is a CorruptError
// (or, for a missing identity or proposal, ErrNotFound), in one line.
//
// Archive files: r/<path> is a file of the registry tree, p/<path> one of
// the pending proposal's tree; a name may end in @x (executable), @l
// (symlink), @g (submodule: the id is the content's SHA-1) or @t (the
// content is a raw tree object). loose/<path> puts a file at <path> of the
// registry tree whose loose object file holds the content as given (header
// included), so it may claim any size or type. idx is written as the index
// of an empty pack beside the objects, as another process might leave one.
func FuzzRegistryTree(f *testing.F) {
	f.Fuzz(fuzzOne)
}

// fuzzOne is one run of FuzzRegistryTree.
func fuzzOne(t *testing.T, data []byte) {
	ar := txtar.Parse(data)
	if len(ar.Files) > 64 {
		return
	}
	dir := t.TempDir()
	for _, d := range []string{"objects/pack", "refs/heads"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "HEAD"), []byte("ref: refs/heads/main\n"), 0o666)
	os.WriteFile(filepath.Join(dir, "config"), []byte("[core]\n\trepositoryformatversion = 0\n\tbare = true\n"), 0o666)
	r, err := Open(dir, WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	r.opts.noSync = true
	ob := newObjectBatch()
	reg, pend := fuzzDir{}, fuzzDir{}
	for _, file := range ar.Files {
		switch {
		case strings.HasPrefix(file.Name, "r/"):
			reg.add(ob, strings.TrimPrefix(file.Name, "r/"), file.Data)
		case strings.HasPrefix(file.Name, "p/"):
			pend.add(ob, strings.TrimPrefix(file.Name, "p/"), file.Data)
		case file.Name == "idx":
			base := filepath.Join(dir, "objects", "pack", "pack-"+strings.Repeat("f", 40))
			os.WriteFile(base+".pack", []byte("PACK\x00\x00\x00\x02\x00\x00\x00\x00"), 0o444)
			os.WriteFile(base+".idx", file.Data, 0o444)
		case strings.HasPrefix(file.Name, "loose/"):
			h := plumbing.Hash(sha1.Sum(file.Data))
			writeLoose(t, dir, h, file.Data)
			reg.put(strings.TrimPrefix(file.Name, "loose/"), object.TreeEntry{Mode: filemode.Regular, Hash: h})
		}
	}
	sig := object.Signature{Name: "f", Email: "f@f"}
	for ref, d := range map[string]fuzzDir{RegistryRef: reg, fuzzPending.Ref(): pend} {
		if len(d) == 0 {
			continue
		}
		c, err := ob.addEncoded(&object.Commit{Author: sig, Committer: sig, Message: "fuzz", TreeHash: d.build(ob)})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(ref))
		os.MkdirAll(filepath.Dir(path), 0o777)
		if err := os.WriteFile(path, []byte(c.String()+"\n"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.writeObjects(ob); err != nil {
		t.Fatal(err)
	}
	// A fresh value, as another process would read the repository.
	r, err = Open(dir, WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, r)
}

// readAll reads everything the public API offers and checks the errors.
func readAll(t *testing.T, r *Registry) {
	layoutErr := func(what string, err error) {
		t.Helper()
		if err == nil {
			return
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrCorrupt or ErrNotFound", what, err)
		}
		anyErr(t, what, err)
	}
	s, err := r.Snapshot()
	if err != nil {
		layoutErr("Snapshot", err)
		return
	}
	_, err = s.Metadata()
	layoutErr("Metadata", err)
	prefixes, err := s.Prefixes()
	layoutErr("Prefixes", err)
	for i, p := range prefixes {
		if i == 4 {
			break
		}
		if checkPrefix(p) != nil {
			_, err := s.Tip(p)
			anyErr(t, "Tip", err)
			continue
		}
		_, err := s.Tip(p)
		layoutErr("Tip", err)
		_, err = s.KEL(p)
		layoutErr("KEL", err)
		_, err = s.Event(p, 0)
		layoutErr("Event", err)
		_, err = s.KELStream(p)
		anyErr(t, "KELStream", err)
		_, err = s.KeyState(p)
		anyErr(t, "KeyState", err)
		_, err = s.Verify(p)
		anyErr(t, "Verify", err)
	}
	_, err = s.Attestation("did:key:z6MkFuzz")
	layoutErr("Attestation", err)
	_, err = s.AttestationHistory("did:key:z6MkFuzz")
	layoutErr("AttestationHistory", err)
	ids, err := r.ListPending()
	anyErr(t, "ListPending", err)
	if len(ids) > 1 {
		t.Errorf("ListPending = %v, want at most %s", ids, fuzzPending)
	}
	_, err = r.ReadPending(fuzzPending)
	layoutErr("ReadPending", err)
}

// anyErr checks that an error is one line.
func anyErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && strings.ContainsAny(err.Error(), "\n\r") {
		t.Errorf("%s: error of several lines: %q", what, err)
	}
}

// fuzzDir is a tree being built: entries by name, subdirectories as
// fuzzDir values.
type fuzzDir map[string]any

func (d fuzzDir) add(ob *objectBatch, path string, data []byte) {
	e := object.TreeEntry{Mode: filemode.Regular}
	switch {
	case strings.HasSuffix(path, "@x"):
		e.Mode = filemode.Executable
	case strings.HasSuffix(path, "@l"):
		e.Mode = filemode.Symlink
	case strings.HasSuffix(path, "@g"):
		e.Mode, e.Hash = filemode.Submodule, plumbing.Hash(sha1.Sum(data))
	case strings.HasSuffix(path, "@t"):
		e.Mode, e.Hash = filemode.Dir, ob.add(plumbing.TreeObject, data)
	}
	if e.Mode != filemode.Regular {
		path = path[:len(path)-2]
	}
	if e.Hash.IsZero() {
		e.Hash = ob.add(plumbing.BlobObject, data)
	}
	d.put(path, e)
}

// put places e at path; a path that collides with another is dropped.
func (d fuzzDir) put(path string, e object.TreeEntry) {
	name, rest, nested := strings.Cut(path, "/")
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return
	}
	if !nested {
		if _, taken := d[name]; !taken {
			e.Name = name
			d[name] = e
		}
		return
	}
	sub, ok := d[name].(fuzzDir)
	if !ok {
		if _, taken := d[name]; taken {
			return
		}
		sub = fuzzDir{}
		d[name] = sub
	}
	sub.put(rest, e)
}

func (d fuzzDir) build(ob *objectBatch) plumbing.Hash {
	entries := make([]object.TreeEntry, 0, len(d))
	for name, v := range d {
		switch v := v.(type) {
		case object.TreeEntry:
			entries = append(entries, v)
		case fuzzDir:
			entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: v.build(ob)})
		}
	}
	sort.Sort(object.TreeEntrySorter(entries))
	h, err := ob.addEncoded(&object.Tree{Entries: entries})
	if err != nil {
		panic(err)
	}
	return h
}

// writeLoose writes data, zlib-compressed, as the loose object file of h.
func writeLoose(t *testing.T, dir string, h plumbing.Hash, data []byte) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(data)
	zw.Close()
	id := h.String()
	p := filepath.Join(dir, "objects", id[:2], id[2:])
	os.MkdirAll(filepath.Dir(p), 0o777)
	if err := os.WriteFile(p, z.Bytes(), 0o444); err != nil {
		t.Fatal(err)
	}
}
