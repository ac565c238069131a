package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// objectBatch collects the new objects of one commit in memory; they are
// written, and flushed to disk, only when the whole commit is built, and
// before the ref moves.
type objectBatch struct {
	objs  map[plumbing.Hash]pendingObject
	order []plumbing.Hash
	// trees are the new trees decoded, kept (treeCache) once written
	trees map[plumbing.Hash]*object.Tree
}

type pendingObject struct {
	typ  plumbing.ObjectType
	data []byte
}

func newObjectBatch() *objectBatch {
	return &objectBatch{objs: map[plumbing.Hash]pendingObject{}}
}

// add queues a copy of an object (data may belong to the caller, and the
// written objects are kept in the object cache) and returns its id.
func (b *objectBatch) add(t plumbing.ObjectType, data []byte) plumbing.Hash {
	return b.put(t, bytes.Clone(data))
}

// put queues an object whose data nobody else holds.
func (b *objectBatch) put(t plumbing.ObjectType, data []byte) plumbing.Hash {
	h := plumbing.ComputeHash(t, data)
	if _, ok := b.objs[h]; !ok {
		b.objs[h] = pendingObject{t, data}
		b.order = append(b.order, h)
	}
	return h
}

// putTree notes the decoded form of tree h, queued with put.
func (b *objectBatch) putTree(h plumbing.Hash, t *object.Tree) {
	if b.trees == nil {
		b.trees = map[plumbing.Hash]*object.Tree{}
	}
	b.trees[h] = t
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
	return b.put(mo.Type(), data), nil
}

var (
	_ = (*object.Tree)(nil).Encode
	_ = (*object.Commit)(nil).Encode
)

// writeObjects writes the queued objects as one pack with its index in
// objects/pack/ and makes them durable before returning (see packWriter):
// the caller moves the ref only afterwards, then calls release, whatever
// the outcome of the move, to drop the pack's .keep. The caller holds the
// flock.
func (r *Registry) writeObjects(b *objectBatch) (release func(), err error) {
	if len(b.order) == 0 {
		return func() {}, nil
	}
	pw, err := newPackWriter(r.objects.packDir(), len(b.order))
	if err != nil {
		return nil, fmt.Errorf("write objects: %w", err)
	}
	for _, h := range b.order {
		o := b.objs[h]
		if err := pw.add(h, o.typ, o.data); err != nil {
			pw.abort()
			return nil, fmt.Errorf("write object %s: %w", h, err)
		}
	}
	id, idx, release, err := pw.finish(!r.opts.noSync, true, r.ours)
	if err != nil {
		return nil, err
	}
	r.written.objects.Add(int64(len(b.order)))
	r.written.bytes.Add(pw.written)
	r.written.packs.Add(1)
	if err := r.objects.added(id, idx); err != nil {
		release()
		return nil, fmt.Errorf("write objects: %w", err)
	}
	// The next commit reads these first (its parent's trees): keep them
	// at hand, as written, without reading the pack back.
	for _, h := range b.order {
		o := b.objs[h]
		r.objects.cache.Put(&knownObject{h: h, t: o.typ, data: o.data})
	}
	for h, t := range b.trees {
		r.trees.put(h, t)
	}
	return release, nil
}

// knownObject is an object whose id is known: put in the object cache
// without hashing it again. Read-only.
type knownObject struct {
	h    plumbing.Hash
	t    plumbing.ObjectType
	data []byte
}

var errReadOnly = errors.New("read-only object")

func (o *knownObject) Hash() plumbing.Hash             { return o.h }
func (o *knownObject) Type() plumbing.ObjectType       { return o.t }
func (o *knownObject) SetType(plumbing.ObjectType)     {}
func (o *knownObject) Size() int64                     { return int64(len(o.data)) }
func (o *knownObject) SetSize(int64)                   {}
func (o *knownObject) Writer() (io.WriteCloser, error) { return nil, errReadOnly }
func (o *knownObject) Reader() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

// readBlob returns the content of a blob.
func (r *Registry) readBlob(h plumbing.Hash) ([]byte, error) {
	return r.readBlobMax(h, maxObjectSize)
}

// readBlobMax returns the content of a blob of at most limit bytes; a
// larger one is errTooLarge, found before its content is copied.
func (r *Registry) readBlobMax(h plumbing.Hash, limit int64) ([]byte, error) {
	o, err := r.objects.object(h)
	if err != nil {
		return nil, err
	}
	if o.Type() != plumbing.BlobObject {
		return nil, fmt.Errorf("object %s is a %s, want a blob", h, o.Type())
	}
	if o.Size() > limit {
		return nil, fmt.Errorf("blob %s: %w (%d bytes)", h, errTooLarge, o.Size())
	}
	rd, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	data, err := readAtMost(rd, limit)
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("blob %s: %w", h, errTooLarge)
	}
	return data, err
}

// readTree decodes a tree object, or returns it decoded already (shared:
// the caller must not modify it).
func (r *Registry) readTree(h plumbing.Hash) (*object.Tree, error) {
	if t, ok := r.trees.get(h); ok {
		return t, nil
	}
	o, err := r.objects.object(h)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", h, err)
	}
	var t object.Tree
	if err := t.Decode(o); err != nil {
		return nil, fmt.Errorf("tree %s: %w", h, err)
	}
	r.trees.put(h, &t)
	return &t, nil
}

// commitTree returns the tree a commit names. It reads only the commit's
// first line ("tree <id>", which git writes first in every commit): a
// snapshot needs nothing else, and a batch's commit message, one line per
// operation, can be a megabyte that decoding the whole commit would copy
// and scan for every append on top of it.
func (r *Registry) commitTree(h plumbing.Hash) (plumbing.Hash, error) {
	o, err := r.objects.object(h)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("commit %s: %w", h, err)
	}
	if o.Type() != plumbing.CommitObject {
		return plumbing.ZeroHash, fmt.Errorf("object %s is a %s, want a commit", h, o.Type())
	}
	rd, err := o.Reader()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("commit %s: %w", h, err)
	}
	defer rd.Close()
	var line [len("tree ") + 40 + 1]byte
	n, err := io.ReadFull(rd, line[:])
	s := string(line[:n])
	if err != nil || !strings.HasPrefix(s, "tree ") || s[len(s)-1] != '\n' || !plumbing.IsHash(s[5:45]) {
		return plumbing.ZeroHash, fmt.Errorf("commit %s: does not start with a tree line", h)
	}
	return plumbing.NewHash(s[5:45]), nil
}

// readCommit decodes a commit object.
func (r *Registry) readCommit(h plumbing.Hash) (*object.Commit, error) {
	o, err := r.objects.object(h)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", h, err)
	}
	var c object.Commit
	if err := c.Decode(o); err != nil {
		return nil, fmt.Errorf("commit %s: %w", h, err)
	}
	return &c, nil
}
