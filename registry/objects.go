package registry

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// objectBatch collects the new objects of one commit in memory; they are
// written, and flushed to disk, only when the whole commit is built, and
// before the ref moves.
type objectBatch struct {
	objs  map[plumbing.Hash]pendingObject
	order []plumbing.Hash
}

type pendingObject struct {
	typ  plumbing.ObjectType
	data []byte
}

func newObjectBatch() *objectBatch {
	return &objectBatch{objs: map[plumbing.Hash]pendingObject{}}
}

// add queues an object and returns its id.
func (b *objectBatch) add(t plumbing.ObjectType, data []byte) plumbing.Hash {
	h := plumbing.ComputeHash(t, data)
	if _, ok := b.objs[h]; !ok {
		b.objs[h] = pendingObject{t, data}
		b.order = append(b.order, h)
	}
	return h
}

// addEncoded queues a go-git object (tree, commit) encoded in memory.
func (b *objectBatch) addEncoded(enc interface {
	Encode(plumbing.EncodedObject) error
}) (plumbing.Hash, error) {
	var mo plumbing.MemoryObject
	if err := enc.Encode(&mo); err != nil {
		return plumbing.ZeroHash, err
	}
	r, err := mo.Reader()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return b.add(mo.Type(), data), nil
}

var (
	_ = (*object.Tree)(nil).Encode
	_ = (*object.Commit)(nil).Encode
)

// writeObjects writes the queued objects as loose objects, each to a
// temporary file in its fan-out directory renamed into place, then makes
// them durable (syncObjects) before returning: the caller moves the ref
// only afterwards. Objects already present as loose objects are skipped.
func (r *Registry) writeObjects(b *objectBatch) error {
	objDir := filepath.Join(r.gitDir, "objects")
	var written []string
	// One compressor and one buffer for the whole commit: a new zlib writer
	// allocates about a megabyte of tables, and each object then reaches
	// its file in one write.
	var buf bytes.Buffer
	zw, err := zlib.NewWriterLevel(&buf, zlib.BestSpeed)
	if err != nil {
		return err
	}
	for _, h := range b.order {
		id := h.String()
		dir := filepath.Join(objDir, id[:2])
		path := filepath.Join(dir, id[2:])
		if _, err := os.Stat(path); err == nil {
			continue
		}
		o := b.objs[h]
		// The loose object format: zlib of "<type> <size>\x00<content>". Git
		// reads any compression level; the fastest keeps the rewrite of a
		// large events/ tree cheap.
		buf.Reset()
		zw.Reset(&buf)
		fmt.Fprintf(zw, "%s %d\x00", o.typ, len(o.data))
		zw.Write(o.data)
		if err := zw.Close(); err != nil {
			return fmt.Errorf("write object %s: %w", id, err)
		}
		if err := writeLoose(dir, path, buf.Bytes()); err != nil {
			return fmt.Errorf("write object %s: %w", id, err)
		}
		written = append(written, path)
		r.written.objects++
		r.written.bytes += int64(len(o.data))
	}
	if len(written) == 0 || r.opts.noSync {
		return nil
	}
	if err := syncObjects(objDir, written); err != nil {
		return fmt.Errorf("sync objects: %w", err)
	}
	return nil
}

// writeLoose writes a compressed loose object to a new read-only temporary
// file in dir (made when missing) and renames it to path.
func writeLoose(dir, path string, compressed []byte) (err error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "tmp_obj_"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o777); err == nil {
			f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
		}
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(compressed); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readBlob returns the content of a blob.
func (r *Registry) readBlob(h plumbing.Hash) ([]byte, error) {
	o, err := r.store.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, err
	}
	rd, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// readTree decodes a tree object.
func (r *Registry) readTree(h plumbing.Hash) (*object.Tree, error) {
	t, err := object.GetTree(r.store, h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("tree %s: %w", h, err)
	}
	return t, err
}
