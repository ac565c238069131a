package registry

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxCachedTreeEntries bounds the decoded trees a Registry keeps, counted
// in entries (about 80 bytes each): past it the cache starts again empty.
const maxCachedTreeEntries = 1 << 17

// treeCache keeps decoded trees by id. Every append reads the trees on the
// path to its identity (the identities folder and two fan-out levels hold
// hundreds of entries in a registry of 10,000 identities) and writes new
// ones there; the next append reads those. A tree's id fixes its content,
// so a kept tree is never stale; the trees it holds are shared and must
// not be modified.
type treeCache struct {
	mu      sync.Mutex
	trees   map[plumbing.Hash]*object.Tree
	entries int
}

func (c *treeCache) get(h plumbing.Hash) (*object.Tree, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.trees[h]
	return t, ok
}

func (c *treeCache) put(h plumbing.Hash, t *object.Tree) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.trees[h]; ok {
		return
	}
	if c.trees == nil || c.entries+len(t.Entries) > maxCachedTreeEntries {
		c.trees, c.entries = map[plumbing.Hash]*object.Tree{}, 0
	}
	c.trees[h] = t
	c.entries += len(t.Entries)
}

// encodeTree writes entries, sorted the git way, as a tree object's
// content: "MODE NAME\0" and the 20-byte id for each, the mode in octal
// without leading zeros as git writes it (go-git's Tree.Encode writes the
// same bytes through fmt, one call per entry). Modes are written as read:
// entries this package does not own keep theirs.
func encodeTree(entries []object.TreeEntry) ([]byte, error) {
	n := 0
	for _, e := range entries {
		n += 7 + len(e.Name) + 1 + len(e.Hash)
	}
	out := make([]byte, 0, n)
	for _, e := range entries {
		if e.Name == "" || strings.IndexByte(e.Name, 0) >= 0 {
			return nil, fmt.Errorf("entry %q: not a tree entry name", e.Name)
		}
		out = strconv.AppendUint(out, uint64(e.Mode), 8)
		out = append(out, ' ')
		out = append(out, e.Name...)
		out = append(out, 0)
		out = append(out, e.Hash[:]...)
	}
	return out, nil
}
