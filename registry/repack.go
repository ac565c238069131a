package registry

import (
	"bufio"
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
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// orphanAge is how old a pack without an index must be before a
// consolidation removes it: left by a writer killed between its two
// renames (git renames the pack, then the index, microseconds apart).
const orphanAge = 10 * time.Minute

// afterWrite runs after a commit (or pending write) moved its ref, under
// the flock: when the pack directory holds more than the allowed number of
// packs it merges them. The commit is already durable; a failed merge is
// logged and leaves every pack in place.
func (r *Registry) afterWrite() {
	n, err := countPacks(r.objects.packDir())
	if err != nil || n <= r.opts.maxPacks {
		return
	}
	if err := r.consolidate(); err != nil {
		r.opts.log.Warn("merging packs failed; they stay as they are", "dir", r.objects.packDir(), "err", err)
	}
}

func countPacks(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if _, ok := packName(e.Name(), ".idx"); ok {
			n++
		}
	}
	return n, err
}

// mergeable is a pack a consolidation may merge: one with an index and no
// .keep, .promisor or .mtimes (git's cruft packs) file beside it. A merged
// pack's .rev and .bitmap files go with it.
type mergeable struct {
	id   plumbing.Hash
	size int64
}

// consolidate merges packs into one, the way `git repack --geometric=2`
// picks them: the small packs, and as many larger ones as needed for the
// packs left to grow at least twofold from one to the next. Each object is
// so rewritten a logarithmic number of times, never the whole registry on
// every merge. The new pack is durable and in place before the packs it
// replaces are removed (index first, as git does), so a crash at any
// moment leaves every object in at least one listed pack; readers that
// lose a pack find its objects again by listing the packs
// (objectStore.object). Loose objects are left alone. The caller holds the
// flock, so temporary files of this package found here are a dead
// writer's and are removed.
func (r *Registry) consolidate() error {
	dir := r.objects.packDir()
	entries, err := os.ReadDir(dir)
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
		id, ok := packName(name, ".pack")
		if !ok {
			continue
		}
		base := "pack-" + id.String()
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if !names[base+".idx"] {
			if time.Since(fi.ModTime()) > orphanAge {
				os.Remove(filepath.Join(dir, name))
			}
			continue
		}
		if names[base+".keep"] || names[base+".promisor"] || names[base+".mtimes"] {
			continue
		}
		packs = append(packs, mergeable{id, fi.Size()})
	}
	merge := geometricSplit(packs, 2)
	if len(merge) < 2 {
		return nil
	}
	id, idx, err := r.writeMerged(dir, merge)
	if err != nil {
		return err
	}
	r.written.merges++
	if err := r.objects.added(id, idx); err != nil {
		return err
	}
	for _, p := range merge {
		if p.id == id {
			continue
		}
		base := "pack-" + p.id.String()
		for _, ext := range []string{".idx", ".pack", ".rev", ".bitmap"} {
			if !names[base+ext] {
				continue
			}
			if err := os.Remove(filepath.Join(dir, base+ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return r.objects.rescan()
}

// geometricSplit returns the packs to merge so that the packs left and the
// merged one form a progression of the given factor by size (git's
// geometric repack).
func geometricSplit(packs []mergeable, factor int64) []mergeable {
	sort.Slice(packs, func(i, j int) bool { return packs[i].size < packs[j].size })
	split := 0
	for i := len(packs) - 1; i > 0; i-- {
		if packs[i].size < factor*packs[i-1].size {
			split = i
			break
		}
	}
	var total int64
	for _, p := range packs[:split] {
		total += p.size
	}
	for split < len(packs) && packs[split].size < factor*total {
		total += packs[split].size
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
	return pw.finish(!r.opts.noSync)
}

// copyPack adds the objects of p not yet in done to pw: whole objects
// byte for byte (their CRC-32 checked against the index), deltas (in packs
// git wrote) resolved and compressed again.
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
	var pf *packfile.Packfile
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
		case plumbing.OFSDeltaObject, plumbing.REFDeltaObject:
			if pf == nil {
				pf = packfile.NewPackfileWithCache(p.idx, nil, osFile{p.f}, cache.NewObjectLRU(32*cache.MiByte), 0)
			}
			o, err := pf.Get(e.Hash)
			if err != nil {
				return fmt.Errorf("object %s: %w", e.Hash, err)
			}
			rd, err := o.Reader()
			if err != nil {
				return err
			}
			data, err := io.ReadAll(rd)
			rd.Close()
			if err != nil {
				return err
			}
			if err := pw.add(e.Hash, o.Type(), data); err != nil {
				return err
			}
		default:
			return fmt.Errorf("object %s: entry type %d", e.Hash, t)
		}
	}
	return nil
}
