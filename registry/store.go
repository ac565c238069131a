package registry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/objfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// objectStore reads the objects of a repository: loose ones and those in
// the packs of objects/pack/. It is the one place that copes with other
// processes changing the pack directory under it.
//
// Packs are listed as git lists them, by their index: a pack without an
// index (being renamed into place, or left by a crash between the two
// renames) is not there yet. A pack's file is opened when it is listed
// and kept open, so a pack that another process's consolidation deletes
// stays readable until the next listing drops it. An object found in no
// known pack nor as a loose object makes the store list the packs again
// and retry before it reports ErrObjectNotFound: that is how objects
// written by other processes (new packs) or moved by a consolidation (into
// a new pack) are found.
//
// It is safe for concurrent use; objects it returns are shared and must
// not be modified.
type objectStore struct {
	dir   string // the objects directory
	cache cache.Object

	mu    sync.Mutex
	packs []*packHandle
	bad   map[plumbing.Hash]error // packs skipped at the last listing
}

// packHandle is one pack with its index and open file.
type packHandle struct {
	id   plumbing.Hash
	idx  *idxfile.MemoryIndex
	f    *os.File
	size int64
	pf   *packfile.Packfile
}

// maxObjectSize bounds the size a loose object's header may claim; the
// registry's objects are small JSON files, trees and commits.
const maxObjectSize = 1 << 30

// rescanAttempts bounds how often one lookup lists the packs again: a
// listing that races with a consolidation can miss both the old packs
// (deleted) and the new one (created while the directory was read).
const rescanAttempts = 2

func newObjectStore(objectsDir string) *objectStore {
	return &objectStore{dir: objectsDir, cache: cache.NewObjectLRUDefault()}
}

func (s *objectStore) packDir() string { return filepath.Join(s.dir, "pack") }

// object returns the object h.
func (s *objectStore) object(h plumbing.Hash) (plumbing.EncodedObject, error) {
	if o, ok := s.cache.Get(h); ok {
		return o, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.packs == nil {
		if err := s.rescanLocked(); err != nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		o, err := s.findLocked(h)
		if err == nil {
			s.cache.Put(o)
			return o, nil
		}
		if attempt == rescanAttempts {
			if errors.Is(err, plumbing.ErrObjectNotFound) && len(s.bad) > 0 {
				return nil, fmt.Errorf("%w (unreadable packs: %v)", err, joinErrs(s.bad))
			}
			return nil, err
		}
		if err := s.rescanLocked(); err != nil {
			return nil, err
		}
	}
}

func joinErrs(m map[plumbing.Hash]error) error {
	var errs []error
	for _, err := range m {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// findLocked looks h up in the known packs, then as a loose object. A
// read error of a pack is returned as is (the caller lists the packs again
// and retries).
func (s *objectStore) findLocked(h plumbing.Hash) (plumbing.EncodedObject, error) {
	for _, p := range s.packs {
		if ok, _ := p.idx.Contains(h); !ok {
			continue
		}
		if p.pf == nil {
			// No file system: the pack returns objects read into memory,
			// never ones that would reopen the pack by its name later.
			p.pf = packfile.NewPackfileWithCache(p.idx, nil, osFile{p.f}, s.cache, 0)
		}
		o, err := p.pf.Get(h)
		if err != nil {
			return nil, fmt.Errorf("object %s in pack %s: %w", h, p.id, err)
		}
		return o, nil
	}
	return s.looseLocked(h)
}

// looseLocked reads the loose object h.
func (s *objectStore) looseLocked(h plumbing.Hash) (plumbing.EncodedObject, error) {
	id := h.String()
	f, err := os.Open(filepath.Join(s.dir, id[:2], id[2:]))
	if errors.Is(err, os.ErrNotExist) {
		return nil, plumbing.ErrObjectNotFound
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, data, err := readLoose(f)
	if err != nil {
		return nil, fmt.Errorf("loose object %s: %w", id, err)
	}
	o := &plumbing.MemoryObject{}
	o.SetType(t)
	o.Write(data)
	return o, nil
}

// readLoose decodes a loose object file.
func readLoose(r io.Reader) (plumbing.ObjectType, []byte, error) {
	or, err := objfile.NewReader(r)
	if err != nil {
		return 0, nil, err
	}
	defer or.Close()
	t, size, err := or.Header()
	if err != nil {
		return 0, nil, err
	}
	if size < 0 || size > maxObjectSize {
		return 0, nil, fmt.Errorf("header claims %d bytes, more than %d", size, int64(maxObjectSize))
	}
	// The header's size is a claim: read what the stream holds (growing
	// the buffer as data arrives) and compare, instead of allocating the
	// claimed size up front.
	data, err := io.ReadAll(io.LimitReader(or, size+1))
	if err != nil {
		return 0, nil, err
	}
	if int64(len(data)) != size {
		return 0, nil, fmt.Errorf("header claims %d bytes, the object holds %d", size, len(data))
	}
	return t, data, nil
}

// rescan lists the packs again (see rescanLocked).
func (s *objectStore) rescan() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rescanLocked()
}

// rescanLocked lists the packs again: new indexes are loaded (their packs
// opened), packs whose index is gone are closed and dropped.
func (s *objectStore) rescanLocked() error {
	entries, err := os.ReadDir(s.packDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("list packs: %w", err)
	}
	known := make(map[plumbing.Hash]*packHandle, len(s.packs))
	for _, p := range s.packs {
		known[p.id] = p
	}
	packs := make([]*packHandle, 0, len(entries)/2)
	s.bad = nil
	for _, e := range entries {
		id, ok := packName(e.Name(), ".idx")
		if !ok {
			continue
		}
		if p, ok := known[id]; ok {
			packs = append(packs, p)
			delete(known, id)
			continue
		}
		p, err := openPack(s.packDir(), id, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile, or its pack is not there (yet)
		}
		if err != nil {
			if s.bad == nil {
				s.bad = map[plumbing.Hash]error{}
			}
			s.bad[id] = err
			continue
		}
		packs = append(packs, p)
	}
	for _, p := range known {
		p.f.Close()
	}
	s.packs = packs
	return nil
}

// added makes a pack this process just wrote known without a listing.
func (s *objectStore) added(id plumbing.Hash, idx *idxfile.MemoryIndex) error {
	f, err := os.Open(filepath.Join(s.packDir(), "pack-"+id.String()+".pack"))
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.packs == nil {
		f.Close()
		return s.rescanLocked()
	}
	for _, p := range s.packs {
		if p.id == id {
			f.Close()
			return nil
		}
	}
	s.packs = append(s.packs, &packHandle{id: id, idx: idx, f: f, size: fi.Size()})
	return nil
}

// packName parses pack-<40 hex><ext>.
func packName(name, ext string) (plumbing.Hash, bool) {
	hexID, ok := strings.CutPrefix(name, "pack-")
	if !ok {
		return plumbing.ZeroHash, false
	}
	hexID, ok = strings.CutSuffix(hexID, ext)
	if !ok || !plumbing.IsHash(hexID) {
		return plumbing.ZeroHash, false
	}
	return plumbing.NewHash(hexID), true
}

// index returns the index of pack id when the store has loaded it.
func (s *objectStore) index(id plumbing.Hash) *idxfile.MemoryIndex {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.packs {
		if p.id == id {
			return p.idx
		}
	}
	return nil
}

// openPack opens a pack and, unless given, loads its index, which must
// name it.
func openPack(dir string, id plumbing.Hash, idx *idxfile.MemoryIndex) (*packHandle, error) {
	base := filepath.Join(dir, "pack-"+id.String())
	f, err := os.Open(base + ".pack")
	if err != nil {
		return nil, err
	}
	p := &packHandle{id: id, idx: idx, f: f}
	if err := p.load(base + ".idx"); err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

func (p *packHandle) load(idxPath string) error {
	fi, err := p.f.Stat()
	if err != nil {
		return err
	}
	p.size = fi.Size()
	if p.idx != nil {
		return nil
	}
	data, err := os.ReadFile(idxPath)
	if err != nil {
		return err
	}
	if err := checkIdxSize(data); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(idxPath), err)
	}
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(bytes.NewReader(data)).Decode(idx); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(idxPath), err)
	}
	if plumbing.Hash(idx.PackfileChecksum) != p.id {
		return fmt.Errorf("%s: names pack %x", filepath.Base(idxPath), idx.PackfileChecksum[:])
	}
	p.idx = idx
	return nil
}

// Sizes of a version 2 pack index: header, fan-out table, and per object
// its id, CRC-32 and 32-bit offset; the trailer holds two SHA-1s.
const (
	idxHeaderLen  = 8 + 256*4
	idxEntryLen   = 20 + 4 + 4
	idxTrailerLen = 2 * 20
)

// checkIdxSize checks that an index holds the entries its fan-out table
// announces before go-git's decoder allocates them: the decoder sizes its
// tables by the fan-out counts alone, so a corrupt count would have it
// allocate gigabytes for a file of a few bytes.
func checkIdxSize(data []byte) error {
	if len(data) < idxHeaderLen+idxTrailerLen {
		return fmt.Errorf("%d bytes, too short for a pack index", len(data))
	}
	if !bytes.Equal(data[:8], []byte{0xff, 't', 'O', 'c', 0, 0, 0, 2}) {
		return fmt.Errorf("not a version 2 pack index")
	}
	var prev uint32
	for k := 0; k < 256; k++ {
		n := binary.BigEndian.Uint32(data[8+4*k:])
		if n < prev {
			return fmt.Errorf("fan-out table decreases at entry %d", k)
		}
		prev = n
	}
	if want := int64(idxHeaderLen) + int64(prev)*idxEntryLen + idxTrailerLen; int64(len(data)) < want {
		return fmt.Errorf("announces %d objects (%d bytes) in %d bytes", prev, want, len(data))
	}
	return nil
}

// osFile gives an *os.File the two methods go-git's pack reader wants
// besides those it has.
type osFile struct{ *os.File }

func (osFile) Lock() error   { return nil }
func (osFile) Unlock() error { return nil }
