package anchor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
)

// Assign maps each signer to the index of its key among the proposal's
// signing keys. A signer whose key is not one of them, or two signers
// holding the same key, are refused (*SignerError wrapping
// ErrSignerNotInKeys or ErrDuplicateSigner); errors for every such signer
// are joined.
func Assign(p *Proposal, signers []hsm.Signer) ([]int, error) {
	idx := make([]int, len(signers))
	var errs []error
	seen := map[int]string{}
	for i, s := range signers {
		name := hsm.Describe(s)
		v, err := hsm.Verfer(s)
		if err != nil {
			errs = append(errs, &SignerError{Signer: name, Index: -1, Err: err})
			continue
		}
		k := p.KeyIndex(v.QB64())
		idx[i] = k
		switch {
		case k < 0:
			errs = append(errs, &SignerError{Signer: name, Index: -1,
				Err: fmt.Errorf("%w: %s", ErrSignerNotInKeys, p.NotSigningKey(v.QB64()))})
		case seen[k] != "":
			errs = append(errs, &SignerError{Signer: name, Index: k,
				Err: fmt.Errorf("%w: %s holds the same key", ErrDuplicateSigner, seen[k])})
		default:
			seen[k] = name
		}
	}
	return idx, errors.Join(errs...)
}

// Sign has every signer sign the proposal's bytes, all at once, and adds
// each signature to the proposal. Signers are checked first with Assign: if
// any is refused, nothing is signed. A signer whose index already has a
// signature does not sign again. It returns the signatures this call added
// (in index order) and the failures of individual signers joined
// (each a *SignerError); the signatures of the others are kept either way.
func Sign(ctx context.Context, p *Proposal, signers []hsm.Signer) ([]kel.Siger, error) {
	return sign(ctx, p, signers, true)
}

// SignSerially is Sign with one signer after the other, for comparison and
// for tokens that must not be used at the same time.
func SignSerially(ctx context.Context, p *Proposal, signers []hsm.Signer) ([]kel.Siger, error) {
	return sign(ctx, p, signers, false)
}

func sign(ctx context.Context, p *Proposal, signers []hsm.Signer, concurrent bool) ([]kel.Siger, error) {
	idx, err := Assign(p, signers)
	if err != nil {
		return nil, err
	}
	msg := p.Bytes()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		added []int
		errs  = make([]error, len(signers))
	)
	one := func(i int, s hsm.Signer) {
		raw, err := s.SignKERI(ctx, msg)
		var ok bool
		if err == nil {
			ok, err = p.AddRaw(idx[i], raw)
		}
		if err != nil {
			errs[i] = &SignerError{Signer: hsm.Describe(s), Index: idx[i], Err: err}
			return
		}
		if ok {
			mu.Lock()
			added = append(added, idx[i])
			mu.Unlock()
		}
	}
	for i, s := range signers {
		if p.Has(idx[i]) {
			continue
		}
		if !concurrent {
			one(i, s)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			one(i, s)
		}()
	}
	wg.Wait()
	var out []kel.Siger
	for _, s := range p.Signatures() {
		if slices.Contains(added, s.Index) {
			out = append(out, s)
		}
	}
	return out, errors.Join(errs...)
}
