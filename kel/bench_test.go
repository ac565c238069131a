package kel

import (
	"crypto/ed25519"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// benchEvents is the length of the benchmark KEL: an inception and 999
// interactions, each signed by 2 of its 3 Ed25519 keys.
const benchEvents = 1000

type benchKEL struct {
	stream []byte
	// The bare signature checks the KEL needs: key, message, signature.
	pubs []ed25519.PublicKey
	msgs [][]byte
	sigs [][]byte
}

func buildBenchKEL(b *testing.B) benchKEL {
	b.Helper()
	keys := []testKey{newEd25519Key(b, 1), newEd25519Key(b, 2), newEd25519Key(b, 3)}
	icp, err := NewInception(InceptionSpec{
		Keys: pubs(keys...), Threshold: SimpleThreshold(2),
		NextDigests: digests(newEd25519Key(b, 4), newEd25519Key(b, 5), newEd25519Key(b, 6)), NextThreshold: SimpleThreshold(2),
	})
	if err != nil {
		b.Fatal(err)
	}
	kb := &kelBuilder{t: b}
	var bk benchKEL
	signPair := func(e *Event, n int) []Siger {
		// Rotate through the pairs (0,1), (1,2), (0,2).
		pair := [3][2]int{{0, 1}, {1, 2}, {0, 2}}[n%3]
		var sigs []Siger
		for _, i := range pair {
			s := keys[i].siger(b, e, i, i)
			sigs = append(sigs, s)
			bk.pubs = append(bk.pubs, keys[i].ed.Public().(ed25519.PublicKey))
			bk.msgs = append(bk.msgs, e.Raw())
			bk.sigs = append(bk.sigs, s.Raw)
		}
		return sigs
	}
	kb.add(SignedEvent{Event: icp, Sigs: signPair(icp, 0)})
	for n := 1; n < benchEvents; n++ {
		e, err := NewInteraction(kb.st, nil)
		if err != nil {
			b.Fatal(err)
		}
		kb.add(SignedEvent{Event: e, Sigs: signPair(e, n)})
	}
	if bk.stream, err = EncodeStream(kb.events); err != nil {
		b.Fatal(err)
	}
	return bk
}

// processCPU returns the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportEventsPerSecond reports the wall-clock rate (the goal's measure),
// and beside it the CPU time per event, which stays meaningful on a machine
// busy with other work.
func reportEventsPerSecond(b *testing.B, cpuStart time.Duration) {
	events := float64(benchEvents) * float64(b.N)
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((processCPU()-cpuStart).Nanoseconds())/events, "cpu-ns/event")
}

// BenchmarkVerifyKEL measures KEL verification in events per second on a
// 1,000-event KEL with 2-of-3 Ed25519 signatures:
//
//   - bare-verify: only the 2,000 ed25519.Verify calls the KEL needs;
//   - replay-1core: ParseStream of the encoded KEL, then Replay (parsing,
//     SAID hashing, state transitions and the same signature checks);
//   - replay-parallel: ParseStreamParallel, then ReplayParallel, both with
//     GOMAXPROCS workers (state transitions stay in order).
//
// Goals (issue 2): replay-1core costs at most 15% more than bare-verify on
// one core; with -cpu 2, replay-parallel reaches 1.7× replay-1core at -cpu 1.
func BenchmarkVerifyKEL(b *testing.B) {
	bk := buildBenchKEL(b)
	b.Run("bare-verify", func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		cpu := processCPU()
		for i := 0; i < b.N; i++ {
			for j := range bk.sigs {
				if !ed25519.Verify(bk.pubs[j], bk.msgs[j], bk.sigs[j]) {
					b.Fatal("signature does not verify")
				}
			}
		}
		reportEventsPerSecond(b, cpu)
	})
	replay := func(b *testing.B, parallel bool) {
		b.ReportAllocs()
		b.ResetTimer()
		cpu := processCPU()
		for i := 0; i < b.N; i++ {
			workers := 1
			if parallel {
				workers = runtime.GOMAXPROCS(0)
			}
			events, err := ParseStreamParallel(bk.stream, workers)
			if err != nil {
				b.Fatal(err)
			}
			var st *KeyState
			if parallel {
				st, err = ReplayParallel(events, runtime.GOMAXPROCS(0))
			} else {
				st, err = Replay(events)
			}
			if err != nil {
				b.Fatal(err)
			}
			if st.Sequence != benchEvents-1 {
				b.Fatalf("sequence %d", st.Sequence)
			}
		}
		reportEventsPerSecond(b, cpu)
	}
	b.Run("replay-1core", func(b *testing.B) { replay(b, false) })
	b.Run("replay-parallel", func(b *testing.B) { replay(b, true) })
}
