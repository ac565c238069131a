package registry

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
)

// orphanAge is how old a pack without an index must be before a
// consolidation removes it: left by a writer killed between its two
// renames (git renames the pack, then the index, microseconds apart).
const orphanAge = 10 * time.Minute

// afterWrite runs after a commit (or pending write) moved its ref, under
// the flock: when the pack directory holds more than the allowed number of
// packs this package wrote, it merges them. The commit is already
// durable; a failed merge is logged and leaves every pack in place.
func (r *Registry) afterWrite() {
	n, err := r.countOurPacks()
	if err != nil || n <= r.opts.maxPacks {
		return
	}
	if err := r.consolidate(); err != nil {
		r.opts.log.Warn("merging packs failed; they stay as they are", "dir", r.objects.packDir(), "err", err)
	}
}

// countOurPacks counts the packs with an index that this package wrote.
func (r *Registry) countOurPacks() (int, error) {
	ours, err := r.ours.list()
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(r.objects.packDir())
	n := 0
	for _, e := range entries {
		if id, ok := packName(e.Name(), ".idx"); ok && ours[id] {
			n++
		}
	}
	return n, err
}

// mergeable is a pack a consolidation may merge: one this package wrote
// (ourPacks), with an index, not listed in a multi-pack-index, and with no
// .keep, .promisor, .mtimes (git's cruft packs) or .bitmap file beside it.
// A merged pack's .rev file goes with it.
type mergeable struct {
	id    plumbing.Hash
	count int64 // objects, from the index's fan-out table
}

// consolidate merges packs this package wrote into one, the way
// `git repack --geometric=2` picks them: by object count, the small packs,
// and as many larger ones as needed for the packs left to grow at least
// twofold from one to the next. Each object is so rewritten a logarithmic
// number of times, never the whole registry on every merge. Packs git
// wrote, or that git's metadata names, are never touched: compacting the
// whole repository is git gc's job (see the README). The new pack is
// durable and in place before the packs it replaces are removed (index
// first, as git does), so a crash at any moment leaves every object in at
// least one listed pack; readers that lose a pack find its objects again by
// listing the packs (objectStore.object). Loose objects are left alone. The
// caller holds the flock, so temporary files and .keep files of this
// package found here are a dead writer's and are removed.
func (r *Registry) consolidate() error {
	dir := r.objects.packDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	ours, err := r.ours.list()
	if err != nil {
		return err
	}
	referenced, err := gitReferenced(dir)
	if err != nil {
		return err
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name()] = true
	}
	var packs []mergeable
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		if id, ok := packName(name, ".keep"); ok && ours[id] {
			if data, err := readSmallFile(filepath.Join(dir, name), 256); err == nil && bytes.HasPrefix(data, []byte(keepMarker)) {
				os.Remove(filepath.Join(dir, name))
				delete(names, name)
			}
			continue
		}
	}
	for _, e := range entries {
		name := e.Name()
		id, ok := packName(name, ".pack")
		if !ok || !ours[id] {
			continue
		}
		base := "pack-" + id.String()
		if !names[base+".idx"] {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > orphanAge {
				os.Remove(filepath.Join(dir, name))
			}
			continue
		}
		if referenced[id] || names[base+".keep"] || names[base+".promisor"] || names[base+".mtimes"] || names[base+".bitmap"] {
			continue
		}
		n, err := idxCount(filepath.Join(dir, base+".idx"))
		if err != nil {
			continue
		}
		packs = append(packs, mergeable{id, n})
	}
	merge := geometricSplit(packs, 2)
	if len(merge) < 2 {
		return nil
	}
	id, idx, err := r.writeMerged(dir, merge)
	if err != nil {
		return err
	}
	r.written.merges.Add(1)
	if err := r.objects.added(id, idx); err != nil {
		return err
	}
	for _, p := range merge {
		if p.id == id {
			continue
		}
		base := "pack-" + p.id.String()
		for _, ext := range []string{".idx", ".pack", ".rev"} {
			if err := os.Remove(filepath.Join(dir, base+ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		delete(ours, p.id)
	}
	ours[id] = true
	if err := r.ours.write(ours); err != nil {
		return err
	}
	return r.objects.rescan()
}

// idxCount reads the number of objects of a pack from its index's fan-out
// table.
func idxCount(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var head [idxHeaderLen]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return 0, err
	}
	if !bytes.Equal(head[:8], []byte{0xff, 't', 'O', 'c', 0, 0, 0, 2}) {
		return 0, fmt.Errorf("%s: not a version 2 pack index", filepath.Base(path))
	}
	return int64(binary.BigEndian.Uint32(head[idxHeaderLen-4:])), nil
}

// geometricSplit returns the packs to merge so that the packs left and the
// merged one form a progression of the given factor by object count (git's
// geometric repack).
func geometricSplit(packs []mergeable, factor int64) []mergeable {
	sort.Slice(packs, func(i, j int) bool { return packs[i].count < packs[j].count })
	split := 0
	for i := len(packs) - 1; i > 0; i-- {
		if packs[i].count < factor*packs[i-1].count {
			split = i
			break
		}
	}
	var total int64
	for _, p := range packs[:split] {
		total += p.count
	}
	for split < len(packs) && packs[split].count < factor*total {
		total += packs[split].count
		split++
	}
	return packs[:split]
}

// writeMerged writes one pack holding every object of the given packs
// (each once) and returns its id and index.
func (r *Registry) writeMerged(dir string, merge []mergeable) (plumbing.Hash, *idxfile.MemoryIndex, error) {
	var opened []*packHandle
	defer func() {
		for _, p := range opened {
			p.f.Close()
		}
	}()
	count := 0
	seen := map[plumbing.Hash]bool{}
	for _, m := range merge {
		p, err := openPack(dir, m.id, r.objects.index(m.id))
		if err != nil {
			return plumbing.ZeroHash, nil, err
		}
		opened = append(opened, p)
		iter, err := p.idx.Entries()
		if err != nil {
			return plumbing.ZeroHash, nil, err
		}
		for {
			e, err := iter.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return plumbing.ZeroHash, nil, err
			}
			if !seen[e.Hash] {
				seen[e.Hash] = true
				count++
			}
		}
	}
	pw, err := newPackWriter(dir, count)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	done := make(map[plumbing.Hash]bool, count)
	br := bufio.NewReaderSize(nil, 64<<10)
	for _, p := range opened {
		if err := copyPack(pw, p, br, done); err != nil {
			pw.abort()
			return plumbing.ZeroHash, nil, fmt.Errorf("pack %s: %w", p.id, err)
		}
	}
	id, idx, _, err := pw.finish(!r.opts.noSync, false, r.ours)
	return id, idx, err
}

// copyPack adds the objects of p not yet in done to pw, byte for byte,
// their CRC-32 checked against the index. The packs merged are this
// package's, which hold whole objects only; a delta means the pack is not
// what the list says, and the merge stops.
func copyPack(pw *packWriter, p *packHandle, br *bufio.Reader, done map[plumbing.Hash]bool) error {
	iter, err := p.idx.EntriesByOffset()
	if err != nil {
		return err
	}
	var entries []*idxfile.Entry
	for {
		e, err := iter.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	const headerLen, trailerLen = 12, 20
	br.Reset(io.NewSectionReader(p.f, headerLen, p.size-headerLen-trailerLen))
	pos := int64(headerLen)
	var buf []byte
	for i, e := range entries {
		end := p.size - trailerLen
		if i+1 < len(entries) {
			end = int64(entries[i+1].Offset)
		}
		if int64(e.Offset) != pos || end <= pos {
			return fmt.Errorf("object %s at offset %d: entries not contiguous", e.Hash, e.Offset)
		}
		n := int(end - pos)
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return err
		}
		pos = end
		if done[e.Hash] {
			continue
		}
		done[e.Hash] = true
		switch t := plumbing.ObjectType(buf[0] >> 4 & 7); t {
		case plumbing.CommitObject, plumbing.TreeObject, plumbing.BlobObject, plumbing.TagObject:
			if crc32.ChecksumIEEE(buf) != e.CRC32 {
				return fmt.Errorf("object %s: CRC-32 mismatch", e.Hash)
			}
			if err := pw.addRaw(e.Hash, e.CRC32, buf); err != nil {
				return err
			}
		default:
			return fmt.Errorf("object %s: entry type %d in a pack of whole objects", e.Hash, t)
		}
	}
	return nil
}
