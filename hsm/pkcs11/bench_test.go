package pkcs11

import (
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"

	"github.com/auths-dev/auths-agent/kel"
)

// The benchmarks come in pairs for `make bench`: the same signatures through
// the backend (Signer.SignKERI) and through a bare miekg/pkcs11 loop
// (C_SignInit + C_Sign on one session, same key, same hashing), in the same
// run. Goals: the backend adds under 5%; two tokens signing concurrently
// through the backend reach at least 0.95× the bare two-token throughput.

// benchMsg is the size of a typical KERI interaction event.
var benchMsg = make([]byte, 487)

var benchKeys struct {
	sync.Mutex
	m map[string]*Signer
}

// benchSigner returns the benchmark key of alg on token, made once per
// process.
func benchSigner(b *testing.B, token string, alg kel.Algorithm) *Signer {
	benchKeys.Lock()
	defer benchKeys.Unlock()
	if benchKeys.m == nil {
		benchKeys.m = map[string]*Signer{}
	}
	k := token + "/" + alg.String()
	if s := benchKeys.m[k]; s != nil {
		return s
	}
	s := generate(b, token, "bench-"+alg.String(), alg)
	benchKeys.m[k] = s
	return s
}

// bareLoop is a plain miekg/pkcs11 signing loop on its own session of the
// token of s, on the same key.
type bareLoop struct {
	sh   p11.SessionHandle
	key  p11.ObjectHandle
	mech []*p11.Mechanism
	p256 bool
}

func newBareLoop(b *testing.B, s *Signer) *bareLoop {
	ctx := testProvider.ctx
	sh, err := ctx.OpenSession(s.t.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ctx.CloseSession(sh) })
	// The token is logged in already (login is per token and process).
	hs, err := testProvider.find(sh, []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY), p11.NewAttribute(p11.CKA_ID, s.Info().ID)}, 1)
	if err != nil || len(hs) != 1 {
		b.Fatalf("bare loop: key not found: %v", err)
	}
	mech := ckmEdDSA
	if s.Info().Algorithm == kel.P256 {
		mech = p11.CKM_ECDSA
	}
	return &bareLoop{sh: sh, key: hs[0], mech: []*p11.Mechanism{p11.NewMechanism(uint(mech), nil)}, p256: s.Info().Algorithm == kel.P256}
}

func (l *bareLoop) sign(msg []byte) error {
	if l.p256 {
		h := sha256.Sum256(msg)
		msg = h[:]
	}
	if err := testProvider.ctx.SignInit(l.sh, l.mech, l.key); err != nil {
		return err
	}
	_, err := testProvider.ctx.Sign(l.sh, msg)
	return err
}

func reportRate(b *testing.B, sigs int) {
	b.ReportMetric(float64(sigs)/b.Elapsed().Seconds(), "sig/s")
}

func BenchmarkSign(b *testing.B) {
	ctx := context.Background()
	for _, alg := range []kel.Algorithm{kel.Ed25519, kel.P256} {
		s := benchSigner(b, "bench-1", alg)
		b.Run("backend/"+alg.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.SignKERI(ctx, benchMsg); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b, b.N)
		})
		b.Run("bare/"+alg.String(), func(b *testing.B) {
			l := newBareLoop(b, s)
			for b.Loop() {
				if err := l.sign(benchMsg); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b, b.N)
		})
	}
}

// BenchmarkSignTwoTokens: two goroutines, one per token, each signing half
// of b.N Ed25519 signatures; ns/op is wall time per signature.
func BenchmarkSignTwoTokens(b *testing.B) {
	ctx := context.Background()
	signers := []*Signer{benchSigner(b, "bench-1", kel.Ed25519), benchSigner(b, "bench-2", kel.Ed25519)}
	twice := func(b *testing.B, work func(i, n int)) {
		var wg sync.WaitGroup
		b.ResetTimer()
		for i := range 2 {
			n := b.N / 2
			if i == 0 {
				n = b.N - n
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				work(i, n)
			}()
		}
		wg.Wait()
		b.StopTimer()
		reportRate(b, b.N)
	}
	b.Run("backend", func(b *testing.B) {
		twice(b, func(i, n int) {
			for range n {
				if _, err := signers[i].SignKERI(ctx, benchMsg); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("bare", func(b *testing.B) {
		loops := []*bareLoop{newBareLoop(b, signers[0]), newBareLoop(b, signers[1])}
		twice(b, func(i, n int) {
			for range n {
				if err := loops[i].sign(benchMsg); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkSignTwoTokensInterleaved runs the two-token pair of
// BenchmarkSignTwoTokens in one loop: each token's goroutine alternates a
// signature through the backend and one through a bare loop, so both paths
// see the same machine state and the same contention from the other token.
// It reports the two-token throughput of each path.
func BenchmarkSignTwoTokensInterleaved(b *testing.B) {
	ctx := context.Background()
	signers := []*Signer{benchSigner(b, "bench-1", kel.Ed25519), benchSigner(b, "bench-2", kel.Ed25519)}
	loops := []*bareLoop{newBareLoop(b, signers[0]), newBareLoop(b, signers[1])}
	var backend, bare [2]time.Duration
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range b.N {
				for j := range 2 {
					start := time.Now()
					if (k+j)%2 == 0 {
						if _, err := signers[i].SignKERI(ctx, benchMsg); err != nil {
							b.Error(err)
							return
						}
						backend[i] += time.Since(start)
					} else {
						if err := loops[i].sign(benchMsg); err != nil {
							b.Error(err)
							return
						}
						bare[i] += time.Since(start)
					}
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	rate := func(d [2]time.Duration) float64 {
		// Each token made b.N signatures on its path in d[i]; the tokens ran
		// side by side, so their rates add up.
		return float64(b.N)/d[0].Seconds() + float64(b.N)/d[1].Seconds()
	}
	b.ReportMetric(rate(backend), "backend-sig/s")
	b.ReportMetric(rate(bare), "bare-sig/s")
}

// BenchmarkPoolOverhead measures what the backend adds around C_SignInit +
// C_Sign: taking a session from the token's pool and putting it back, and
// the object handle check. Compare with BenchmarkSign's ns/op.
func BenchmarkPoolOverhead(b *testing.B) {
	s := benchSigner(b, "bench-1", kel.Ed25519)
	ctx := context.Background()
	for b.Loop() {
		sess, err := s.t.acquire(ctx, s.uri.PIN)
		if err != nil {
			b.Fatal(err)
		}
		if hg := s.handle.Load(); hg.gen != sess.gen {
			b.Fatal("stale handle")
		}
		s.t.release(sess, nil)
	}
}

// BenchmarkSignInterleaved alternates a backend signature and a bare one on
// the same key in every iteration, so both see the same machine load, and
// reports each one's mean time and the backend's overhead in percent. On a
// busy machine this pair is steadier than the separate BenchmarkSign runs.
func BenchmarkSignInterleaved(b *testing.B) {
	ctx := context.Background()
	for _, alg := range []kel.Algorithm{kel.Ed25519, kel.P256} {
		s := benchSigner(b, "bench-1", alg)
		b.Run(alg.String(), func(b *testing.B) {
			l := newBareLoop(b, s)
			var backend, bare time.Duration
			i := 0
			for b.Loop() {
				for k := range 2 {
					start := time.Now()
					if (i+k)%2 == 0 {
						if _, err := s.SignKERI(ctx, benchMsg); err != nil {
							b.Fatal(err)
						}
						backend += time.Since(start)
					} else {
						if err := l.sign(benchMsg); err != nil {
							b.Fatal(err)
						}
						bare += time.Since(start)
					}
				}
				i++
			}
			n := float64(b.N)
			b.ReportMetric(float64(backend.Nanoseconds())/n, "backend-ns/sig")
			b.ReportMetric(float64(bare.Nanoseconds())/n, "bare-ns/sig")
			b.ReportMetric(100*(float64(backend)-float64(bare))/float64(bare), "overhead-%")
		})
	}
}
