package registry

// Append benchmarks. Every timed append starts from the same registry: the
// benchmark builds a registry once, appends one interaction event to one of
// a pool of identities at the stated KEL length, and then, off the clock,
// moves the ref back and removes the pack the append wrote. So the KEL
// length, the number of identities and the packs on disk are the same for
// the first and the ten-thousandth append, whatever b.N and -count are; the
// objects and bytes of every append are checked against the first one's,
// and the new tip's sequence number against the label, so a drifting setup
// fails the benchmark.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/auths-dev/auths-agent/kel"
)

// appendObjects is what a one-event append writes: the event and its
// attachments, tip.json, state.json and metadata.json (blobs), the trees
// from the root to the events folder (7) and the commit.
const appendObjects = 13

// appendBench is a registry held at one state and the identities an append
// may go to.
type appendBench struct {
	r      *Registry
	base   plumbing.Hash   // the commit every append starts from
	files  map[string]bool // the pack directory's files at base
	pool   []*testID       // identities, all at KEL length kelLen
	kelLen uint64
	n      int // appends so far: each one's seal differs
	// the objects of an append, and the bytes of an append to each identity
	// of the pool, from the first ones
	objects int64
	bytes   map[*testID]int64
	// inspect, when set, sees each append's commit before it is undone
	inspect func(head plumbing.Hash)
}

// newAppendBench builds a registry of ids identities: the first poolSize
// of them with KEL length kelLen, the others incepted only. It makes one
// untimed append to learn the work of an append and check it.
func newAppendBench(b *testing.B, name string, ids, poolSize, kelLen int) *appendBench {
	b.Helper()
	t0 := time.Now()
	dir := newGitRepo(b, true)
	n := 0
	r, err := Open(dir, WithClock(func() time.Time {
		n++
		// Fixed-width times: metadata.json is the same size every time.
		return time.Unix(1_700_000_000+int64(n), 0)
	}), WithLogger(discardLogger()))
	if err != nil {
		b.Fatal(err)
	}
	r.opts.noSync = true // the setup's packs; appends choose
	ab := &appendBench{r: r, kelLen: uint64(kelLen)}
	var batch Batch
	for i := range ids {
		id, icp, err := newTestID(fmt.Sprintf("bench-%s-%d", name, i))
		if err != nil {
			b.Fatal(err)
		}
		batch.Append(icp)
		if i < poolSize {
			ab.pool = append(ab.pool, id)
			for range kelLen - 1 {
				se, err := id.ixn()
				if err != nil {
					b.Fatal(err)
				}
				batch.Append(se)
			}
		}
	}
	if _, err := r.Commit(bg(), &batch); err != nil {
		b.Fatal(err)
	}
	if ab.base, err = r.readRef(RegistryRef); err != nil {
		b.Fatal(err)
	}
	if ab.files, err = dirFiles(r.objects.packDir()); err != nil {
		b.Fatal(err)
	}
	// Flush the setup's writes now: the timed appends' own flushes would
	// otherwise wait for them.
	syscall.Sync()
	ab.objects = -1
	ab.bytes = map[*testID]int64{}
	for range ab.pool {
		ab.run(b, true, nil)
	}
	b.Logf("setup %s: %v", name, time.Since(t0))
	return ab
}

// event builds the next appended event: an interaction on the base state
// of the next identity of the pool, with a seal of fixed size that differs
// from every other append's.
func (ab *appendBench) event(b *testing.B) (*testID, *Batch) {
	id := ab.pool[ab.n%len(ab.pool)]
	seal := json.RawMessage(fmt.Sprintf(`{"i":"bench","s":"%024x"}`, ab.n))
	ab.n++
	e, err := kel.NewInteraction(id.st, []json.RawMessage{seal})
	if err != nil {
		b.Fatal(err)
	}
	var batch Batch
	batch.Append(sign(id.key, 0, e))
	return id, &batch
}

// run makes one append (timed between the caller's StartTimer and
// StopTimer through timed, which may be nil), checks it and restores the
// base state. It returns the commit it wrote.
func (ab *appendBench) run(b *testing.B, durable bool, timed func(func())) plumbing.Hash {
	id, batch := ab.event(b)
	ab.r.opts.noSync = !durable
	before := ab.r.writtenSoFar()
	var res *CommitResult
	var err error
	commit := func() { res, err = ab.r.Commit(bg(), batch) }
	if timed != nil {
		timed(commit)
	} else {
		commit()
	}
	if err != nil {
		b.Fatal(err)
	}
	after := ab.r.writtenSoFar()
	objects := after.objects - before.objects
	bytes := after.bytes - before.bytes
	if ab.objects < 0 {
		if objects != appendObjects {
			b.Fatalf("an append wrote %d objects, want %d", objects, appendObjects)
		}
		ab.objects = objects
	}
	if _, ok := ab.bytes[id]; !ok {
		ab.bytes[id] = bytes
	}
	if objects != ab.objects || bytes != ab.bytes[id] {
		b.Fatalf("append %d wrote %d objects and %d bytes, the first one to that identity %d and %d: the work per append drifted", ab.n, objects, bytes, ab.objects, ab.bytes[id])
	}
	snap, err := ab.r.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	tip, err := snap.Tip(id.st.Prefix)
	if err != nil {
		b.Fatal(err)
	}
	if tip.Sequence != ab.kelLen {
		b.Fatalf("appended event has sequence number %d, want %d (KEL length %d)", tip.Sequence, ab.kelLen, ab.kelLen)
	}
	head := plumbing.NewHash(res.Commit)
	if ab.inspect != nil {
		ab.inspect(head)
	}
	ab.restore(b, head)
	return head
}

// meanBytes is the mean of the bytes an append writes over the pool (the
// identities differ by a few bytes: their prefixes sort differently among
// the others).
func (ab *appendBench) meanBytes() float64 {
	var sum int64
	for _, n := range ab.bytes {
		sum += n
	}
	return float64(sum) / float64(len(ab.bytes))
}

// restore moves the ref back from head to the base commit and removes the
// files the append added to the pack directory (indexes first, as a
// consolidation does), then has the object store list the packs again.
func (ab *appendBench) restore(b *testing.B, head plumbing.Hash) {
	if err := ab.r.casRef(bg(), RegistryRef, head, ab.base); err != nil {
		b.Fatal(err)
	}
	if err := removeNewFiles(ab.r.objects.packDir(), ab.files); err != nil {
		b.Fatal(err)
	}
	if err := ab.r.objects.rescan(); err != nil {
		b.Fatal(err)
	}
}

func dirFiles(dir string) (map[string]bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, e := range entries {
		m[e.Name()] = true
	}
	return m, nil
}

func removeNewFiles(dir string, keep map[string]bool) error {
	now, err := dirFiles(dir)
	if err != nil {
		return err
	}
	for _, ext := range []string{".idx", ""} {
		for name := range now {
			if keep[name] || (ext != "" && filepath.Ext(name) != ext) {
				continue
			}
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

// timer returns the function run hands the timed commit to: the clock runs
// only around it.
func timer(b *testing.B) func(func()) {
	return func(f func()) {
		b.StartTimer()
		f()
		b.StopTimer()
	}
}

// stopwatch is timer that also adds the time of f to *d: for benchmarks
// that time several operations per iteration (ns/op is their sum).
func stopwatch(b *testing.B, d *time.Duration) func(func()) {
	return func(f func()) {
		b.StartTimer()
		t0 := time.Now()
		f()
		*d += time.Since(t0)
		b.StopTimer()
	}
}

// BenchmarkAppend appends one event to a KEL of 10, 1,000 and 10,000
// events (a pool of 4 identities at that length, 2 for the longest, one
// after the other), in
// a registry that is not flushed (the flush is measured by
// BenchmarkAppendPeers): the work that grows with the KEL.
func BenchmarkAppend(b *testing.B) {
	for _, length := range []int{10, 1000, 10000} {
		pool := 4
		if length >= 10000 {
			pool = 2 // 10,000 events cost seconds to sign and verify
		}
		ab := newAppendBench(b, fmt.Sprintf("kel%d", length), pool, pool, length)
		b.Run(fmt.Sprintf("kel=%d", length), func(b *testing.B) {
			b.ReportAllocs()
			b.StopTimer()
			b.ResetTimer()
			for range b.N {
				ab.run(b, false, timer(b))
			}
			b.ReportMetric(float64(ab.objects), "objects/op")
			b.ReportMetric(ab.meanBytes(), "bytes-written/op")
		})
	}
}

// BenchmarkAppendIdentities appends one event to a KEL of 10 events in a
// registry of 10 identities and in one of 10,000 (a pool of 4 at KEL
// length 10, the others incepted only), alternately in the same
// iterations, so both see the same machine load; not flushed.
func BenchmarkAppendIdentities(b *testing.B) {
	small := newAppendBench(b, "ids10", 10, 4, 10)
	large := newAppendBench(b, "ids10000", 10000, 4, 10)
	b.Run("ids=10:10000", func(b *testing.B) {
		var ds, dl time.Duration
		b.StopTimer()
		b.ResetTimer()
		for i := range b.N {
			if i%2 == 0 {
				small.run(b, false, stopwatch(b, &ds))
				large.run(b, false, stopwatch(b, &dl))
			} else {
				large.run(b, false, stopwatch(b, &dl))
				small.run(b, false, stopwatch(b, &ds))
			}
		}
		b.ReportMetric(float64(ds.Nanoseconds())/float64(b.N), "ids10-ns/append")
		b.ReportMetric(float64(dl.Nanoseconds())/float64(b.N), "ids10000-ns/append")
		b.ReportMetric(small.meanBytes(), "ids10-bytes/append")
		b.ReportMetric(large.meanBytes(), "ids10000-bytes/append")
	})
}
