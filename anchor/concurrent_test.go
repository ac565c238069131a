package anchor_test

import (
	"context"
	"sync"
	"testing"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
)

// TestSharedProposal: one Anchorer and one Proposal used by several
// goroutines at once, as an agent serving several connections does: each
// signs with its own token and saves to escrow while others read the
// proposal's status and description and list the escrow. The escrow ends
// with every signature and the proposal commits. Under the race detector
// (make test) this checks the documented concurrency safety of Proposal
// and Anchorer.
func TestSharedProposal(t *testing.T) {
	ctx := context.Background()
	reg, dir := newRegistry(t)
	a := anchor.New(reg)
	prefix, cur, _ := identity(t, a, "3", 3)
	did := "did:key:z6MkShared"
	p, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: attestation(prefix, did, 9)}}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2*len(cur))
	for i, s := range cur {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := anchor.Sign(ctx, p, []hsm.Signer{s}); err != nil {
				errs[2*i] = err
				return
			}
			errs[2*i] = a.Save(ctx, p)
		}()
		go func() {
			defer wg.Done()
			_ = p.Status().Needs()
			_ = p.Approval().Lines()
			_ = p.Signatures()
			_, errs[2*i+1] = a.List(ctx)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	pd, err := a.Load(ctx, prefix, p.SAID())
	if err != nil || pd.Err != nil || len(pd.Refused) > 0 {
		t.Fatalf("Load: %v %v %v", err, pd.Err, pd.Refused)
	}
	if got, want := pd.Proposal.Status().Needs(), "3 of 3, has indexes 0, 1, 2 (complete)"; got != want {
		t.Errorf("escrow after concurrent saves: %s, want %s", got, want)
	}
	if _, err := a.Commit(ctx, pd.Proposal); err != nil {
		t.Fatal(err)
	}
	fsck(t, dir)
}
