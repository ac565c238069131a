package registry

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// benchRegistry opens a fresh repository with a counting clock.
func benchRegistry(b *testing.B) (string, *Registry) {
	b.Helper()
	dir := newGitRepo(b, true)
	n := 0
	r, err := Open(dir, WithClock(func() time.Time {
		n++
		return time.Unix(1_700_000_000+int64(n), 0)
	}), WithLogger(discardLogger()))
	if err != nil {
		b.Fatal(err)
	}
	r.opts.noSync = true
	return dir, r
}

// benchAppend times one-event batches (an ixn of id) on top of r.
func benchAppend(b *testing.B, r *Registry, id *testID) {
	b.Helper()
	start := r.written
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		se, err := id.ixn()
		if err != nil {
			b.Fatal(err)
		}
		var batch Batch
		batch.Append(se)
		b.StartTimer()
		if _, err := r.Commit(bg(), &batch); err != nil {
			b.Fatal(err)
		}
	}
	// Deterministic cost figures beside the (noisy) wall time: the objects
	// and uncompressed bytes an append writes.
	b.ReportMetric(float64(r.written.objects-start.objects)/float64(b.N), "objects/op")
	b.ReportMetric(float64(r.written.bytes-start.bytes)/float64(b.N), "bytes-written/op")
}

// settle flushes what the setup wrote (a large KEL or 10,000 identities in
// one pack) before the timed appends, whose own flush would otherwise wait
// for the setup's write-back.
func settle() { syscall.Sync() }

// BenchmarkAppend appends one event to a KEL of 10, 1,000 and 10,000
// events (the long KEL built in one batch).
func BenchmarkAppend(b *testing.B) {
	for _, length := range []int{10, 1000, 10000} {
		_, r := benchRegistry(b)
		id, icp, err := newTestID(fmt.Sprintf("bench-kel-%d", length))
		if err != nil {
			b.Fatal(err)
		}
		var batch Batch
		batch.Append(icp)
		for i := 1; i < length; i++ {
			se, err := id.ixn()
			if err != nil {
				b.Fatal(err)
			}
			batch.Append(se)
		}
		if _, err := r.Commit(bg(), &batch); err != nil {
			b.Fatal(err)
		}
		settle()
		b.Run(fmt.Sprintf("kel=%d", length), func(b *testing.B) { benchAppend(b, r, id) })
	}
}

// BenchmarkAppendIdentities appends one event to a short KEL in registries
// of 10 and 10,000 identities (all incepted in one batch).
func BenchmarkAppendIdentities(b *testing.B) {
	for _, count := range []int{10, 10000} {
		_, r := benchRegistry(b)
		var batch Batch
		var first *testID
		for i := 0; i < count; i++ {
			id, icp, err := newTestID(fmt.Sprintf("bench-ids-%d-%d", count, i))
			if err != nil {
				b.Fatal(err)
			}
			if first == nil {
				first = id
			}
			batch.Append(icp)
		}
		if _, err := r.Commit(bg(), &batch); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 9; i++ {
			var one Batch
			se, err := first.ixn()
			if err != nil {
				b.Fatal(err)
			}
			one.Append(se)
			if _, err := r.Commit(bg(), &one); err != nil {
				b.Fatal(err)
			}
		}
		settle()
		b.Run(fmt.Sprintf("ids=%d", count), func(b *testing.B) { benchAppend(b, r, first) })
	}
}

// BenchmarkAppendDurable is BenchmarkAppend/kel=10 with the objects
// flushed to disk as Commit does by default (one syncfs and one directory
// fsync per commit's pack on Linux): the difference is the cost of
// durability, independent of the registry's size but shared with whatever
// else writes to the file system.
func BenchmarkAppendDurable(b *testing.B) {
	_, r := benchRegistry(b)
	r.opts.noSync = false
	id, icp, err := newTestID("bench-durable")
	if err != nil {
		b.Fatal(err)
	}
	var batch Batch
	batch.Append(icp)
	if _, err := r.Commit(bg(), &batch); err != nil {
		b.Fatal(err)
	}
	benchAppend(b, r, id)
}
