package anchor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
)

// deviceLatency emulates a hardware token's signing time (the virtual PIV
// card's setting).
const deviceLatency = 50 * time.Millisecond

// slowSigner is a real SoftHSM signer behind an emulated device latency:
// it waits, then signs on the token.
type slowSigner struct {
	hsm.Signer
	d time.Duration
}

func (s slowSigner) SignKERI(ctx context.Context, msg []byte) ([]byte, error) {
	t := time.NewTimer(s.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	return s.Signer.SignKERI(ctx, msg)
}

var _ hsm.Signer = slowSigner{}

// BenchmarkAnchor: one anchor of a 3-of-3 identity whose keys are on three
// SoftHSM tokens: stage + sign on the three tokens + fold + commit.
//
//   - serial: the three signatures one after the other, 50 ms each;
//   - concurrent: the three at once (anchor.Sign), 50 ms each;
//   - slowest-single: one token's signature alone at 50 ms;
//   - stage-fold-commit: everything but the emulated latency: the
//     overhead the flow adds on top of the tokens (the three SoftHSM
//     signatures included).
func BenchmarkAnchor(b *testing.B) {
	ctx := context.Background()
	reg, _ := newRegistry(b)
	a := anchor.New(reg)
	var cur, next []hsm.Signer
	for i := 0; i < 3; i++ {
		s, _ := newKey(b, tokenLabels[i], kel.Ed25519)
		n, _ := newKey(b, tokenLabels[i], kel.Ed25519)
		cur, next = append(cur, s), append(next, n)
	}
	prefix := incept(b, a, cur, "3", next, "3")
	slow := make([]hsm.Signer, len(cur))
	for i, s := range cur {
		slow[i] = slowSigner{s, deviceLatency}
	}
	n := 0
	one := func(b *testing.B, sign func(context.Context, *anchor.Proposal, []hsm.Signer) ([]kel.Siger, error), signers []hsm.Signer) {
		n++
		did := fmt.Sprintf("did:key:z6MkBench%d", n)
		p, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: attestation(prefix, did, n)}}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sign(ctx, p, signers); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Commit(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			one(b, anchor.SignSerially, slow)
		}
	})
	b.Run("concurrent", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			one(b, anchor.Sign, slow)
		}
	})
	b.Run("slowest-single", func(b *testing.B) {
		msg := []byte(`{"v":"KERI10JSON0000ff_","t":"ixn"}`)
		for i := 0; i < b.N; i++ {
			if _, err := slow[2].SignKERI(ctx, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stage-fold-commit", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			one(b, anchor.Sign, cur)
		}
	})
}
