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

// phase accumulates the wall and CPU time of one of the interleaved
// verifications, each run with its own GOMAXPROCS.
type phase struct {
	procs     int
	wall, cpu time.Duration
}

func (p *phase) run(b *testing.B, f func()) {
	prev := runtime.GOMAXPROCS(p.procs)
	defer runtime.GOMAXPROCS(prev)
	if got := runtime.GOMAXPROCS(0); got != p.procs {
		b.Fatalf("GOMAXPROCS %d, want %d", got, p.procs)
	}
	c0, t0 := processCPU(), time.Now()
	f()
	p.wall += time.Since(t0)
	p.cpu += processCPU() - c0
}

// report gives the wall-clock rate (the goals' measure) and the CPU time per
// event, which tells whether the rate is plausible: a one-core phase cannot
// use more CPU than wall time, and the parallel one cannot use less CPU per
// event than the bare checks it contains.
func (p *phase) report(b *testing.B, name string) {
	events := float64(benchEvents) * float64(b.N)
	b.ReportMetric(events/p.wall.Seconds(), name+"-events/s")
	b.ReportMetric(float64(p.cpu.Nanoseconds())/events, name+"-cpu-ns/event")
}

// BenchmarkVerifyKEL measures KEL verification in events per second on a
// 1,000-event KEL with 2-of-3 Ed25519 signatures. Every iteration runs, in
// turn (the order rotates, so all three see the same machine load):
//
//   - bare: only the 2,000 ed25519.Verify calls the KEL needs, at
//     GOMAXPROCS 1;
//   - replay-1core: ParseStream of the encoded KEL, then Replay (parsing,
//     SAID hashing, state transitions and the same signature checks), at
//     GOMAXPROCS 1;
//   - replay-parallel: ParseStreamParallel, then ReplayParallel with one
//     worker per core, at GOMAXPROCS = the number of cores.
//
// Goals (issue 2, docs/bench-goals.txt): replay-1core uses at most 15% more
// CPU time than bare; replay-parallel reaches 1.7× replay-1core's wall-clock
// rate on two cores.
func BenchmarkVerifyKEL(b *testing.B) {
	bk := buildBenchKEL(b)
	cores := runtime.NumCPU()
	b.Run("interleaved", func(b *testing.B) {
		bare, one, par := &phase{procs: 1}, &phase{procs: 1}, &phase{procs: cores}
		replay := func(workers int) {
			events, err := ParseStreamParallel(bk.stream, workers)
			if err != nil {
				b.Fatal(err)
			}
			if len(events) != benchEvents {
				b.Fatalf("%d events parsed, want %d", len(events), benchEvents)
			}
			var st *KeyState
			if workers > 1 {
				st, err = ReplayParallel(events, workers)
			} else {
				st, err = Replay(events)
			}
			if err != nil {
				b.Fatal(err)
			}
			if st.Sequence != benchEvents-1 {
				b.Fatalf("sequence %d, want %d", st.Sequence, benchEvents-1)
			}
		}
		steps := []func(){
			func() {
				bare.run(b, func() {
					n := 0
					for j := range bk.sigs {
						if !ed25519.Verify(bk.pubs[j], bk.msgs[j], bk.sigs[j]) {
							b.Fatal("signature does not verify")
						}
						n++
					}
					if n != 2*benchEvents {
						b.Fatalf("%d signatures checked, want %d", n, 2*benchEvents)
					}
				})
			},
			func() { one.run(b, func() { replay(1) }) },
			func() { par.run(b, func() { replay(cores) }) },
		}
		for i := range b.N {
			for k := range steps {
				steps[(i+k)%len(steps)]()
			}
		}
		bare.report(b, "bare")
		one.report(b, "replay-1core")
		par.report(b, "replay-parallel")
	})
}
