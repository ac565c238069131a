package registry

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
)

// tmpPrefix starts the names of the temporary files a pack is written to
// in objects/pack/. Not git's "tmp_": git prune (run by git gc) removes
// tmp_ files there older than its expiry, which with --prune=now is any of
// them, including one being written. Git counts these as garbage until they
// are renamed; a commit holds the registry flock while it writes them, so
// one found by a process that holds the flock is a dead writer's and is
// removed (see consolidate).
const tmpPrefix = "auths_tmp_"

// packWriter streams a version 2 pack of a known number of non-delta
// objects to a temporary file in the pack directory and builds its index
// (go-git's idxfile writer and encoder) as it goes. finish makes both
// durable and renames them into place, the pack first and the index last,
// as git does: git and this package's reader list packs by their index, so
// neither ever sees an index without its pack.
type packWriter struct {
	dir     string
	tmpPack string
	f       *os.File
	w       *bufio.Writer
	sum     hash.Hash // SHA-1 of the pack so far: its trailer and name
	off     int64
	want    uint32
	n       uint32
	idx     idxfile.Writer
	zbuf    bytes.Buffer
	zw      *zlib.Writer
	hdr     []byte
	written int64 // uncompressed bytes of the objects added
}

// newPackWriter starts a pack of count objects in dir.
func newPackWriter(dir string, count int) (*packWriter, error) {
	if count <= 0 || int64(count) > 1<<32-1 {
		return nil, fmt.Errorf("pack of %d objects", count)
	}
	f, tmp, err := createTemp(dir, "pack_")
	if err != nil {
		return nil, err
	}
	p := &packWriter{dir: dir, tmpPack: tmp, f: f, w: bufio.NewWriterSize(f, 64<<10), sum: sha1.New(), want: uint32(count)}
	// One compressor for the whole pack: a new zlib writer allocates about
	// a megabyte of tables. Git reads any level; the fastest keeps the
	// rewrite of a large events/ tree cheap.
	if p.zw, err = zlib.NewWriterLevel(&p.zbuf, zlib.BestSpeed); err != nil {
		p.abort()
		return nil, err
	}
	var head [12]byte
	copy(head[:], "PACK")
	binary.BigEndian.PutUint32(head[4:], 2)
	binary.BigEndian.PutUint32(head[8:], uint32(count))
	if err := p.write(head[:]); err != nil {
		p.abort()
		return nil, err
	}
	return p, nil
}

// createTemp creates a new read-only file auths_tmp_<kind><random> in dir.
func createTemp(dir, kind string) (*os.File, string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, "", err
	}
	name := filepath.Join(dir, tmpPrefix+kind+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if os.IsNotExist(err) {
		if err = os.MkdirAll(dir, 0o777); err == nil {
			f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
		}
	}
	return f, name, err
}

func (p *packWriter) write(b []byte) error {
	if _, err := p.w.Write(b); err != nil {
		return err
	}
	p.sum.Write(b)
	p.off += int64(len(b))
	return nil
}

// add compresses one object into the pack.
func (p *packWriter) add(h plumbing.Hash, t plumbing.ObjectType, data []byte) error {
	p.hdr = appendEntryHeader(p.hdr[:0], t, int64(len(data)))
	p.zbuf.Reset()
	p.zw.Reset(&p.zbuf)
	p.zw.Write(data)
	if err := p.zw.Close(); err != nil {
		return err
	}
	crc := crc32.Update(crc32.ChecksumIEEE(p.hdr), crc32.IEEETable, p.zbuf.Bytes())
	p.written += int64(len(data))
	return p.addEntry(h, crc, p.hdr, p.zbuf.Bytes())
}

// addRaw copies one non-delta entry (header and compressed data) of
// another pack, whose CRC-32 the caller checked.
func (p *packWriter) addRaw(h plumbing.Hash, crc uint32, entry []byte) error {
	return p.addEntry(h, crc, entry, nil)
}

func (p *packWriter) addEntry(h plumbing.Hash, crc uint32, a, b []byte) error {
	if p.n == p.want {
		return fmt.Errorf("pack: more than the %d objects announced", p.want)
	}
	p.idx.Add(h, uint64(p.off), crc)
	p.n++
	if err := p.write(a); err != nil {
		return err
	}
	return p.write(b)
}

// appendEntryHeader appends a pack entry header: the type and the size in
// a little-endian base-128 varint, four bits in the first byte.
func appendEntryHeader(b []byte, t plumbing.ObjectType, size int64) []byte {
	c := byte(t)<<4 | byte(size&0x0f)
	size >>= 4
	for size != 0 {
		b = append(b, c|0x80)
		c = byte(size & 0x7f)
		size >>= 7
	}
	return append(b, c)
}

// finish writes the trailer and the index. With durable set it flushes
// both files to disk (syncFiles) before renaming them into place, pack
// then index, and flushes the directory after, so that a ref moved next
// cannot name an object a crash could lose. It returns the pack's id and
// index, and releases the pack's .keep file with release.
//
// The pack is recorded as this package's (ours.add) before it is renamed,
// so that only packs this package wrote are ever merged. A pack written
// with keep set gets a pack-<id>.keep file before its rename, as git's
// receive-pack does: its objects are unreachable until the caller moves
// the ref, and a concurrent `git repack -a -d` or `git gc --prune=now`
// would delete them; git leaves a kept pack alone. The caller calls
// release once the ref has moved or the compare-and-swap failed.
func (p *packWriter) finish(durable, keep bool, ours *ourPacks) (id plumbing.Hash, idx *idxfile.MemoryIndex, release func(), err error) {
	tmpIdx, keepPath := "", ""
	release = func() {}
	fail := func(err error) (plumbing.Hash, *idxfile.MemoryIndex, func(), error) {
		p.abort()
		if tmpIdx != "" {
			os.Remove(tmpIdx)
		}
		if keepPath != "" {
			os.Remove(keepPath)
		}
		return plumbing.ZeroHash, nil, nil, fmt.Errorf("write pack: %w", err)
	}
	if p.n != p.want {
		return fail(fmt.Errorf("%d objects written, %d announced", p.n, p.want))
	}
	copy(id[:], p.sum.Sum(nil))
	if _, err := p.w.Write(id[:]); err != nil {
		return fail(err)
	}
	if err := p.w.Flush(); err != nil {
		return fail(err)
	}
	if err := p.idx.OnFooter(id); err != nil {
		return fail(err)
	}
	idx, err = p.idx.Index()
	if err != nil {
		return fail(err)
	}
	f, name, err := createTemp(p.dir, "idx_")
	if err != nil {
		return fail(err)
	}
	tmpIdx = name
	w := bufio.NewWriterSize(f, 64<<10)
	_, err = idxfile.NewEncoder(w).Encode(idx)
	if err == nil {
		err = w.Flush()
	}
	if err == nil && durable {
		err = syncFiles(p.f, f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	p.f = nil
	if err != nil {
		return fail(err)
	}
	base := filepath.Join(p.dir, "pack-"+id.String())
	ours.add(id)
	if keep {
		// A .keep that is already there (the same pack written before
		// and kept by someone else) is not ours to remove.
		kf, err := os.OpenFile(base+".keep", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
		switch {
		case err == nil:
			keepPath = base + ".keep"
			_, err = fmt.Fprintf(kf, "%s%d\n", keepMarker, os.Getpid())
			if cerr := kf.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fail(err)
			}
		case !errors.Is(err, os.ErrExist):
			return fail(err)
		}
	}
	if err := os.Rename(p.tmpPack, base+".pack"); err != nil {
		return fail(err)
	}
	p.tmpPack = ""
	if err := os.Rename(tmpIdx, base+".idx"); err != nil {
		// The pack stays without an index: ignored by git and by this
		// package's reader, removed by the next consolidation.
		return fail(err)
	}
	tmpIdx = ""
	if durable {
		if err := syncDir(p.dir); err != nil {
			return fail(err)
		}
	}
	if keepPath != "" {
		release = func() { os.Remove(keepPath) }
	}
	return id, idx, release, nil
}

// keepMarker starts the content of the .keep files this package writes:
// one found by a process that holds the registry flock is a dead writer's
// (see consolidate).
const keepMarker = "auths-agent pid "

// abort removes what the writer left.
func (p *packWriter) abort() {
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
	if p.tmpPack != "" {
		os.Remove(p.tmpPack)
		p.tmpPack = ""
	}
}
