//go:build vpiv

package piv

// Benchmarks on the virtual card rig: the backend beside a bare piv-go Sign
// loop on the same card and key in the same run, with no added latency (the
// stack's own cost: piv-go, libpcsclite, pcscd, vpcd, the card) and with the
// card emulating a 50 ms signature, and two cards at 50 ms side by side.
//
//	softhsm-test/vpiv-exec go test -tags vpiv -run '^$' -bench PIVSign -benchtime 3s ./hsm/piv/

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"
)

const benchSlot = "86"

var benchMsg = make([]byte, 487) // a typical KERI event

// Up to warmup signatures, for at most warmupTime, precede each timed
// loop: the first signatures on a newly opened card run slower (whichever
// loop came first was slower, whether backend or bare). The time bound
// keeps a card at 50 ms a signature from spending 15 s of every run on it.
const (
	warmup     = 300
	warmupTime = time.Second
)

// warmUp signs untimed until warmup signatures or warmupTime are done.
func warmUp(b *testing.B, sign func() error) {
	t0 := time.Now()
	for n := 0; n < warmup && time.Since(t0) < warmupTime; n++ {
		if err := sign(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchKey makes a P-256 key (PIN policy once) in the benchmark slot of
// each card.
func benchKey(b *testing.B, serials ...uint32) {
	b.Helper()
	p := NewProvider(Options{})
	defer p.Close()
	for _, s := range serials {
		if _, err := p.Generate(context.Background(), uriOf(s, benchSlot, "pin-value="+testPIN), GenerateOptions{Overwrite: true}); err != nil {
			b.Fatalf("Generate on card %d: %v", s, err)
		}
	}
}

func reportRate(b *testing.B, n int, d time.Duration) {
	b.ReportMetric(float64(n)/d.Seconds(), "sigs/s")
}

// benchBackendAndBare runs /backend (SignKERI through a Provider) and then
// /bare (piv-go's own Sign on the same key, with the same SHA-256 of the
// same message) on one card.
func benchBackendAndBare(b *testing.B, serial uint32) {
	ctx := context.Background()
	p := NewProvider(Options{})
	s, err := p.Signer(ctx, uriOf(serial, benchSlot, "pin-value="+testPIN))
	if err != nil {
		p.Close()
		b.Fatalf("Signer: %v", err)
	}
	reader := s.c.reader // the reader the Provider found the card in
	b.Run("backend", func(b *testing.B) {
		warmUp(b, func() error { // untimed: b.Loop starts the clock
			_, err := s.SignKERI(ctx, benchMsg)
			return err
		})
		for b.Loop() {
			if _, err := s.SignKERI(ctx, benchMsg); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N, b.Elapsed())
	})
	b.Run("paired", func(b *testing.B) { benchPaired(b, s) })
	pub := s.Public()
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("bare", func(b *testing.B) {
		yk, err := piv.Open(reader)
		if err != nil {
			b.Fatalf("piv.Open(%q): %v", reader, err)
		}
		defer yk.Close()
		slot, _ := pivSlot(0x86)
		priv, err := yk.PrivateKey(slot, pub, piv.KeyAuth{PIN: testPIN})
		if err != nil {
			b.Fatal(err)
		}
		signer := priv.(crypto.Signer)
		d := sha256.Sum256(benchMsg)
		warmUp(b, func() error {
			_, err := signer.Sign(rand.Reader, d[:], crypto.SHA256)
			return err
		})
		for b.Loop() {
			d := sha256.Sum256(benchMsg)
			if _, err := signer.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N, b.Elapsed())
	})
}

// BenchmarkPIVSign: one card, no added latency.
func BenchmarkPIVSign(b *testing.B) {
	serial := rigSerials(b, 2)[0]
	benchKey(b, serial)
	benchBackendAndBare(b, serial)
}

// BenchmarkPIVSign50ms: one card emulating a 50 ms signature.
func BenchmarkPIVSign50ms(b *testing.B) {
	serial := rigSerials(b, 2)[0]
	benchKey(b, serial)
	restartCard(b, serial, "-latency", "50ms")
	benchBackendAndBare(b, serial)
}

// BenchmarkPIVSignTwoCards: signatures per second through one Provider on
// one card (/one) and on two cards at once (/two), both at 50 ms; the
// speedup is logged.
func BenchmarkPIVSignTwoCards(b *testing.B) {
	serials := rigSerials(b, 2)
	benchKey(b, serials...)
	for _, s := range serials {
		restartCard(b, s, "-latency", "50ms")
	}
	ctx := context.Background()
	p := NewProvider(Options{})
	defer p.Close()
	var signers []*Signer
	for _, s := range serials {
		sg, err := p.Signer(ctx, uriOf(s, benchSlot, "pin-value="+testPIN))
		if err != nil {
			b.Fatal(err)
		}
		signers = append(signers, sg)
	}
	rates := map[string]float64{}
	for _, tc := range []struct {
		name    string
		signers []*Signer
	}{{"one", signers[:1]}, {"two", signers}} {
		b.Run(tc.name, func(b *testing.B) {
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			errs := make(chan error, len(tc.signers))
			b.ResetTimer()
			start := time.Now()
			for _, sg := range tc.signers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for left.Add(-1) >= 0 {
						if _, err := sg.SignKERI(ctx, benchMsg); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			d := time.Since(start)
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			reportRate(b, b.N, d)
			rates[tc.name] = float64(b.N) / d.Seconds()
		})
	}
	if rates["one"] > 0 {
		b.Logf("two cards at 50 ms: %.2f× one card (%.1f vs %.1f sigs/s)", rates["two"]/rates["one"], rates["two"], rates["one"])
	}
}

// benchPaired alternates one backend SignKERI with one bare piv-go Sign on
// the Provider's own connection to the card (the same piv-go YubiKey, so no
// second open), timing each, so that load from other processes hits both
// alike. It reports the backend's overhead over bare piv-go in percent.
func benchPaired(b *testing.B, s *Signer) {
	ctx := context.Background()
	if _, err := s.SignKERI(ctx, benchMsg); err != nil { // connected, PIN verified
		b.Fatal(err)
	}
	yk := s.c.yk
	priv, err := yk.PrivateKey(s.slot, s.Public(), piv.KeyAuth{PIN: testPIN})
	if err != nil {
		b.Fatal(err)
	}
	signer := priv.(crypto.Signer)
	var backend, bare time.Duration
	var backends, bares []time.Duration
	viaBackend := func() time.Duration {
		t0 := time.Now()
		if _, err := s.SignKERI(ctx, benchMsg); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	viaBare := func() time.Duration {
		t0 := time.Now()
		d := sha256.Sum256(benchMsg)
		if _, err := signer.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	i := 0
	for b.Loop() {
		// Alternate which goes first, so neither gains from its position.
		var db, dp time.Duration
		if i%2 == 0 {
			db, dp = viaBackend(), viaBare()
		} else {
			dp, db = viaBare(), viaBackend()
		}
		backend, bare = backend+db, bare+dp
		backends, bares = append(backends, db), append(bares, dp)
		i++
	}
	b.ReportMetric(float64(b.N)/backend.Seconds(), "backend-sigs/s")
	b.ReportMetric(float64(b.N)/bare.Seconds(), "bare-sigs/s")
	// Medians: other processes' load stalls single signatures for tens of
	// milliseconds, which swamps the means.
	mb, mp := median(backends), median(bares)
	if os.Getenv("PIV_BENCH_DEBUG") != "" {
		for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
			b.Logf("q%.3f backend %v bare %v", q, quantile(backends, q), quantile(bares, q))
		}
		b.Logf("sum backend %v bare %v", backend, bare)
	}
	b.ReportMetric(float64(mb)/1e3, "backend-median-us")
	b.ReportMetric(float64(mp)/1e3, "bare-median-us")
	b.ReportMetric(100*(mb.Seconds()-mp.Seconds())/mp.Seconds(), "overhead-%")
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*q)]
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
