package registry

import (
	"fmt"
	"sync"
	"testing"
)

// TestSharedRegistry uses one Registry value from many goroutines at once,
// as a long-running agent does: writers commit batches (merging packs
// after every commit), readers take snapshots and read what was
// acknowledged, and proposals are put, read, listed and deleted meanwhile.
// Everything acknowledged is there afterwards and git finds the repository
// clean; under the race detector (make test) it checks the package's
// shared state too.
func TestSharedRegistry(t *testing.T) {
	dir := newGitRepo(t, true)
	if _, _, err := Init(bg(), dir, true, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	r := openTest(t, dir, WithMaxPacks(2))
	const writers, batches = 3, 6
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked []string
		done  = make(chan struct{})
		errs  = make(chan error, 64)
	)
	fail := func(format string, args ...any) {
		select {
		case errs <- fmt.Errorf(format, args...):
		default:
		}
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer anchors its attestations with its own identity.
			id, icp, err := newTestID(fmt.Sprintf("shared %d", w))
			if err != nil {
				fail("writer %d: %v", w, err)
				return
			}
			var b Batch
			b.Append(icp)
			if _, err := r.CommitRetry(bg(), &b, 100); err != nil {
				fail("writer %d inception: %v", w, err)
				return
			}
			for k := 0; k < batches; k++ {
				did := fmt.Sprintf("did:key:z6MkShared%dN%d", w, k)
				doc := attestationDoc(id.st.Prefix, did, fmt.Sprintf("s%d-%d", w, k))
				var b Batch
				b.StoreAttestation(did, doc)
				se, err := id.ixn(anchorSeal(doc))
				if err != nil {
					fail("writer %d batch %d: %v", w, k, err)
					return
				}
				b.Append(se)
				if _, err := r.CommitRetry(bg(), &b, 100); err != nil {
					fail("writer %d batch %d: %v", w, k, err)
					return
				}
				mu.Lock()
				acked = append(acked, did)
				mu.Unlock()
			}
		}()
	}
	var readers sync.WaitGroup
	for i := 0; i < 2; i++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				mu.Lock()
				seen := append([]string(nil), acked...)
				mu.Unlock()
				s, err := r.Snapshot()
				if err != nil {
					fail("snapshot: %v", err)
					return
				}
				for _, did := range seen {
					if _, err := s.Attestation(did); err != nil {
						fail("reader: acknowledged %s: %v", did, err)
						return
					}
				}
				if _, err := r.ListPending(); err != nil {
					fail("list pending: %v", err)
					return
				}
			}
		}()
	}
	readers.Add(1)
	go func() {
		defer readers.Done()
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			default:
			}
			id := pendingTestID(n%3 + 1)
			if _, err := r.PutPending(bg(), id, PendingFiles{"event.json": []byte("e"), fmt.Sprintf("sigs/%d.qb64", n): []byte("s")}); err != nil {
				fail("put pending: %v", err)
				return
			}
			if _, err := r.ReadPending(id); err != nil {
				fail("read pending: %v", err)
				return
			}
			if n%2 == 1 {
				if err := r.DeletePending(bg(), id); err != nil {
					fail("delete pending: %v", err)
					return
				}
			}
		}
	}()
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s, err := openTest(t, dir).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(acked) != writers*batches {
		t.Errorf("%d batches acknowledged, want %d", len(acked), writers*batches)
	}
	for _, did := range acked {
		if _, err := s.Attestation(did); err != nil {
			t.Errorf("acknowledged %s: %v", did, err)
		}
	}
	if r.written.merges.Load() == 0 {
		t.Error("no pack merge ran while the readers read")
	}
	t.Logf("%d packs written, %d merges", r.written.packs.Load(), r.written.merges.Load())
	fsck(t, dir)
}
