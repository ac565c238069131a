package anchor_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// deviceLatency is the signing time emulated for SoftHSM tokens and set on
// the virtual PIV cards (vpiv-card -latency): a YubiKey's order of
// magnitude.
const deviceLatency = 50 * time.Millisecond

// timedSigner records how long each signature takes, and makes a SoftHSM
// token as slow as a hardware one when delay is set: it waits, then signs
// on the token.
type timedSigner struct {
	hsm.Signer
	delay time.Duration
	took  *atomic.Int64 // nanoseconds of the latest SignKERI
}

func (s timedSigner) SignKERI(ctx context.Context, msg []byte) ([]byte, error) {
	t0 := time.Now()
	defer func() { s.took.Store(int64(time.Since(t0))) }()
	if s.delay > 0 {
		t := time.NewTimer(s.delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return s.Signer.SignKERI(ctx, msg)
}

var _ hsm.Signer = timedSigner{}

func timed(signers []hsm.Signer, delay time.Duration) []timedSigner {
	out := make([]timedSigner, len(signers))
	for i, s := range signers {
		out[i] = timedSigner{Signer: s, delay: delay, took: new(atomic.Int64)}
	}
	return out
}

// benchAnchor times anchors of one device attestation by a 3-of-3
// identity whose keys are cur (next keys next), with the tokens slowed by
// delay (0 when the device has its own latency). Every anchor starts from
// the same state: off the clock, a new registry with the identity incepted
// (KEL length 1), so neither the KEL nor the registry grows with b.N.
// Each iteration, in this order:
//
//  1. stage the interaction event;
//  2. one token alone signs its bytes (token i mod 3, so each token takes
//     its turn): one token's measured time;
//  3. the three tokens sign at once (anchor.Sign), each timing itself;
//  4. commit (fold and write).
//
// It reports one-token-ms, three-tokens-ms (step 3's wall time),
// tokens-ms (the slowest token's own time in step 3), overhead-ms (stage,
// step 3 beyond the slowest token, commit: what the flow adds to the token
// signatures it waits for), anchor-ms (steps 1, 3 and 4), and stage-ms and
// commit-ms (steps 1 and 4).
func benchAnchor(b *testing.B, cur, next []hsm.Signer, delay time.Duration) {
	ctx := context.Background()
	plain := timed(cur, 0)
	slow := timed(cur, delay)
	slowSigners := make([]hsm.Signer, len(slow))
	for i, s := range slow {
		slowSigners[i] = s
	}
	did := "did:key:z6MkBenchDevice"
	var one, three, tokens, overhead, total, stages, commits time.Duration
	b.StopTimer()
	b.ResetTimer()
	for i := range b.N {
		dir, err := os.MkdirTemp("", "auths-anchor-bench-")
		if err != nil {
			b.Fatal(err)
		}
		reg, _, err := registry.Init(ctx, dir, false, registry.WithLogger(discard()))
		if err != nil {
			b.Fatal(err)
		}
		a := anchor.New(reg)
		prefix := inceptWith(b, a, plain, next)
		doc := attestation(prefix, did, 1) // issued by this identity

		b.StartTimer()
		t0 := time.Now()
		p, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: doc}}})
		if err != nil {
			b.Fatal(err)
		}
		staged := time.Since(t0)
		b.StopTimer()

		t1 := time.Now()
		if _, err := slow[i%3].SignKERI(ctx, p.Bytes()); err != nil {
			b.Fatal(err)
		}
		one += time.Since(t1)

		b.StartTimer()
		t2 := time.Now()
		sigs, err := anchor.Sign(ctx, p, slowSigners)
		if err != nil {
			b.Fatal(err)
		}
		signed := time.Since(t2)
		t3 := time.Now()
		res, err := a.Commit(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		committed := time.Since(t3)
		b.StopTimer()

		if len(sigs) != 3 || len(res.Event.Sigs) != 3 || res.Event.Event.Sn != 1 {
			b.Fatalf("anchor %d: %d signatures added, %d in the event, sequence number %d; want 3, 3, 1", i, len(sigs), len(res.Event.Sigs), res.Event.Event.Sn)
		}
		slowest := time.Duration(0)
		for _, s := range slow {
			slowest = max(slowest, time.Duration(s.took.Load()))
		}
		three += signed
		stages += staged
		commits += committed
		tokens += slowest
		overhead += staged + signed - slowest + committed
		total += staged + signed + committed
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
	}
	ms := func(d time.Duration) float64 { return d.Seconds() * 1e3 / float64(b.N) }
	b.ReportMetric(ms(one), "one-token-ms")
	b.ReportMetric(ms(three), "three-tokens-ms")
	b.ReportMetric(ms(tokens), "tokens-ms")
	b.ReportMetric(ms(overhead), "overhead-ms")
	b.ReportMetric(ms(total), "anchor-ms")
	b.ReportMetric(ms(stages), "stage-ms")
	b.ReportMetric(ms(commits), "commit-ms")
}

// inceptWith incepts the 3-of-3 identity of signers (next keys next).
func inceptWith(b *testing.B, a *anchor.Anchorer, signers []timedSigner, next []hsm.Signer) string {
	b.Helper()
	hs := make([]hsm.Signer, len(signers))
	for i, s := range signers {
		hs[i] = s
	}
	return incept(b, a, hs, fmt.Sprint(len(hs)), next, fmt.Sprint(len(next)))
}

// benchKeyPairs: the current and next Ed25519 keys of the benchmarks on
// the first n tokens, made once per process, so that every run (every
// -count) finds the tokens holding the same keys.
var benchKeyPairs struct {
	sync.Mutex
	cur, next []hsm.Signer
}

// benchKeys returns a current and a next key on each of the first n
// tokens.
func benchKeys(b *testing.B, n int) (cur, next []hsm.Signer) {
	benchKeyPairs.Lock()
	defer benchKeyPairs.Unlock()
	for i := len(benchKeyPairs.cur); i < n; i++ {
		s, _ := newKey(b, tokenLabels[i], kel.Ed25519)
		nx, _ := newKey(b, tokenLabels[i], kel.Ed25519)
		benchKeyPairs.cur, benchKeyPairs.next = append(benchKeyPairs.cur, s), append(benchKeyPairs.next, nx)
	}
	return slices.Clone(benchKeyPairs.cur[:n]), slices.Clone(benchKeyPairs.next[:n])
}

// BenchmarkAnchor: three SoftHSM tokens (Ed25519) made as slow as hardware
// (50 ms a signature). See benchAnchor.
func BenchmarkAnchor(b *testing.B) {
	cur, next := benchKeys(b, 3)
	b.Run("softhsm-50ms", func(b *testing.B) { benchAnchor(b, cur, next, deviceLatency) })
}
