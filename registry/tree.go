package registry

import (
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Snapshot is the registry as of one commit. Reads through a snapshot are
// consistent with each other; they decode only the trees along the paths
// they read.
type Snapshot struct {
	r      *Registry
	commit plumbing.Hash // zero: no registry yet
	root   plumbing.Hash // zero: empty tree
	trees  map[plumbing.Hash]*object.Tree
}

// Snapshot reads the registry ref and returns the registry as of that
// commit. A repository without the ref gives an empty snapshot (Commit
// returns ""), not an error.
func (r *Registry) Snapshot() (*Snapshot, error) {
	h, err := r.readRef(RegistryRef)
	if err != nil {
		return nil, err
	}
	return r.snapshotAt(h)
}

func (r *Registry) snapshotAt(commit plumbing.Hash) (*Snapshot, error) {
	s := &Snapshot{r: r, commit: commit, trees: map[plumbing.Hash]*object.Tree{}}
	if commit.IsZero() {
		return s, nil
	}
	root, err := r.commitTree(commit)
	if err != nil {
		return nil, corrupt(RegistryRef, "commit %s unreadable: %v", commit, err)
	}
	s.root = root
	return s, nil
}

// Commit returns the commit id of the snapshot, "" when there is no
// registry.
func (s *Snapshot) Commit() string { return hashString(s.commit) }

func (s *Snapshot) tree(path string, h plumbing.Hash) (*object.Tree, error) {
	if t, ok := s.trees[h]; ok {
		return t, nil
	}
	t, err := s.r.readTree(h)
	if err != nil {
		return nil, corrupt(pathOrRoot(path), "tree %s unreadable: %v", h, err)
	}
	s.trees[h] = t
	return t, nil
}

func pathOrRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// lookup finds the entry at path (slash-separated, relative to the root).
func (s *Snapshot) lookup(path string) (object.TreeEntry, bool, error) {
	if s.root.IsZero() {
		return object.TreeEntry{}, false, nil
	}
	cur := object.TreeEntry{Mode: filemode.Dir, Hash: s.root}
	walked := ""
	for _, name := range strings.Split(path, "/") {
		if cur.Mode != filemode.Dir {
			return object.TreeEntry{}, false, corrupt(walked, "is a file, want a directory")
		}
		t, err := s.tree(walked, cur.Hash)
		if err != nil {
			return object.TreeEntry{}, false, err
		}
		walked = joinPath(walked, name)
		e, ok := findEntry(t.Entries, name)
		if !ok {
			return object.TreeEntry{}, false, nil
		}
		cur = e
	}
	return cur, true, nil
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// findEntry finds name in a tree sorted the git way (directories compare as
// if their names ended in '/'): a binary search for each of the two keys.
func findEntry(entries []object.TreeEntry, name string) (object.TreeEntry, bool) {
	for _, key := range []string{name, name + "/"} {
		i := sort.Search(len(entries), func(i int) bool { return sortKey(entries[i]) >= key })
		if i < len(entries) && entries[i].Name == name {
			return entries[i], true
		}
	}
	return object.TreeEntry{}, false
}

func sortKey(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}

// readFile returns the content of the blob at path.
func (s *Snapshot) readFile(path string) ([]byte, bool, error) {
	e, ok, err := s.lookup(path)
	if err != nil || !ok {
		return nil, ok, err
	}
	if e.Mode == filemode.Dir || e.Mode == filemode.Submodule {
		return nil, false, corrupt(path, "is a directory, want a file")
	}
	data, err := s.r.readBlob(e.Hash)
	if err != nil {
		return nil, false, corrupt(path, "blob %s unreadable: %v", e.Hash, err)
	}
	return data, true, nil
}

// listDir returns the entries of the directory at path.
func (s *Snapshot) listDir(path string) ([]object.TreeEntry, bool, error) {
	e, ok, err := s.lookup(path)
	if err != nil || !ok {
		return nil, ok, err
	}
	if e.Mode != filemode.Dir {
		return nil, false, corrupt(path, "is a file, want a directory")
	}
	t, err := s.tree(path, e.Hash)
	if err != nil {
		return nil, false, err
	}
	return t.Entries, true, nil
}

// applyEdits writes the blobs of edits (path → blob id) into the snapshot's
// tree and returns the new root tree. Only the trees on the edited paths are
// read and rewritten, bottom-up; every other entry keeps its object,
// including paths this package does not own.
func (s *Snapshot) applyEdits(ob *objectBatch, edits map[string]plumbing.Hash) (plumbing.Hash, error) {
	return s.editTree(ob, "", s.root, edits)
}

func (s *Snapshot) editTree(ob *objectBatch, dir string, h plumbing.Hash, edits map[string]plumbing.Hash) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if !h.IsZero() {
		t, err := s.tree(dir, h)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		// A copy: the tree read may be shared (treeCache).
		entries = make([]object.TreeEntry, len(t.Entries), len(t.Entries)+len(edits))
		copy(entries, t.Entries)
	}
	leaves := map[string]plumbing.Hash{}
	subs := map[string]map[string]plumbing.Hash{}
	for p, id := range edits {
		name, rest, nested := strings.Cut(p, "/")
		if name == "" || name == "." || name == ".." || (nested && rest == "") {
			return plumbing.ZeroHash, fmt.Errorf("bad path %q", joinPath(dir, p))
		}
		if !nested {
			leaves[name] = id
			continue
		}
		if subs[name] == nil {
			subs[name] = map[string]plumbing.Hash{}
		}
		subs[name][rest] = id
	}
	// The entries read are sorted the git way; an edit replaces an entry
	// found by binary search in place and new names go at the end, so the
	// tree is sorted again only when a name was added. (A tree of hundreds
	// of entries is edited at one or two names per append.)
	sorted := len(entries)
	find := func(name string) int {
		for _, key := range []string{name, name + "/"} {
			i := sort.Search(sorted, func(i int) bool { return sortKey(entries[i]) >= key })
			if i < sorted && entries[i].Name == name {
				return i
			}
		}
		for i := sorted; i < len(entries); i++ {
			if entries[i].Name == name {
				return i
			}
		}
		return -1
	}
	set := func(e object.TreeEntry) {
		if i := find(e.Name); i >= 0 {
			entries[i] = e
			return
		}
		entries = append(entries, e)
	}
	for name, id := range leaves {
		if _, ok := subs[name]; ok {
			return plumbing.ZeroHash, fmt.Errorf("path %q both a file and a directory", joinPath(dir, name))
		}
		if i := find(name); i >= 0 && entries[i].Mode == filemode.Dir {
			return plumbing.ZeroHash, corrupt(joinPath(dir, name), "is a directory, want a file")
		}
		set(object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: id})
	}
	for name, sub := range subs {
		var old plumbing.Hash
		if i := find(name); i >= 0 {
			if entries[i].Mode != filemode.Dir {
				return plumbing.ZeroHash, corrupt(joinPath(dir, name), "is a file, want a directory")
			}
			old = entries[i].Hash
		}
		nh, err := s.editTree(ob, joinPath(dir, name), old, sub)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		set(object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: nh})
	}
	if len(entries) > sorted {
		sort.Sort(object.TreeEntrySorter(entries))
	}
	data, err := encodeTree(entries)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("tree %s: %w", pathOrRoot(dir), err)
	}
	id := ob.put(plumbing.TreeObject, data)
	ob.putTree(id, &object.Tree{Entries: entries, Hash: id})
	return id, nil
}
