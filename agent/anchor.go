package agent

import (
	"context"
	"errors"
	"slices"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// AnchorResult is where an anchor (or a pending proposal signed by the
// agent) ended: committed, or saved in escrow still needing signatures.
type AnchorResult struct {
	Committed bool   `json:"committed"`
	Prefix    string `json:"prefix"`
	Sn        uint64 `json:"sn"`
	SAID      string `json:"said"`
	Needs     string `json:"needs"`  // what the proposal has and needs
	Commit    string `json:"commit"` // the registry commit, when committed
	Restaged  int    `json:"restaged,omitempty"`
	// AlreadySigned lists the indexes of the agent's keys that did not
	// sign because the proposal already held their signatures.
	AlreadySigned []int `json:"already_signed,omitempty"`
}

// maxRestage bounds how often one anchor is staged anew because another
// writer (another process on the registry) moved the tip first.
const maxRestage = 8

// Anchor stages an interaction event of prefix carrying ch, signs it with
// every held key of the identity the policy allows, and commits it when
// the signatures meet the thresholds, or saves it in escrow. Anchors of one
// identity run one at a time inside the agent, each staged on the tip the
// previous one left; one that finds the tip moved by another writer is
// staged again on the new tip, because the agent holds the signatures it
// needs.
func (a *Agent) Anchor(ctx context.Context, prefix string, ch anchor.Change) (*AnchorResult, error) {
	an, release, err := a.lockedAnchorer(ctx, "anchor", prefix)
	if err != nil {
		return nil, err
	}
	defer release()
	for attempt := 0; ; attempt++ {
		p, err := an.Stage(ctx, prefix, ch)
		if err != nil {
			return nil, err
		}
		res, err := a.signProposal(ctx, an, p, "anchor")
		if err != nil && attempt < maxRestage && (errors.Is(err, anchor.ErrStale) || errors.Is(err, registry.ErrConflict)) {
			// The commit or save did not happen: the signatures never
			// left the agent, and the event is abandoned.
			a.forget(prefix, p.Sn(), p.SAID())
			a.log.Info("tip moved; staging the anchor again", "prefix", prefix, "attempt", attempt+1)
			continue
		}
		if res != nil {
			res.Restaged = attempt
		}
		return res, err
	}
}

// PendingSign adds the agent's signatures to the pending proposal
// prefix/said and commits it when complete, else saves it back.
func (a *Agent) PendingSign(ctx context.Context, prefix, said string) (*AnchorResult, error) {
	return a.pendingSign(ctx, prefix, said, localFinish{})
}

// pendingSign is PendingSign with the way the signed proposal ends given:
// locally, or through a git remote (remote.go).
func (a *Agent) pendingSign(ctx context.Context, prefix, said string, fin finisher) (*AnchorResult, error) {
	const op = "pending sign"
	an, release, err := a.lockedAnchorer(ctx, op, prefix)
	if err != nil {
		return nil, err
	}
	defer release()
	pd, err := an.Load(ctx, prefix, said)
	if err != nil {
		return nil, err
	}
	if pd.Err != nil {
		return nil, pd.Err
	}
	// The event was staged by someone else: check it as sign-event does.
	if _, _, err := a.checkEvent(ctx, pd.Proposal.Bytes()); err != nil {
		return nil, err
	}
	return a.signProposalTo(ctx, an, pd.Proposal, op, fin)
}

// PendingInfo describes a proposal in escrow.
type PendingInfo struct {
	Prefix  string `json:"prefix"`
	SAID    string `json:"said"`
	Sn      uint64 `json:"sn"`
	Type    string `json:"type"`
	Needs   string `json:"needs"`
	Expires string `json:"expires"`
	Error   string `json:"error,omitempty"`
}

// Pending lists the proposals in escrow.
func (a *Agent) Pending(ctx context.Context) ([]PendingInfo, error) {
	if a.reg == nil {
		return nil, refuse("pending", ErrNoRegistry, "the agent has no registry (--registry)")
	}
	list, err := anchor.New(a.reg, anchor.WithClock(a.clock)).List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PendingInfo, 0, len(list))
	for _, pd := range list {
		pi := PendingInfo{Prefix: pd.ID.Prefix, SAID: pd.ID.SAID}
		if p := pd.Proposal; p != nil {
			pi.Sn, pi.Type, pi.Needs = p.Sn(), p.Type(), p.Status().Needs()
			pi.Expires = p.Expires().Format("2006-01-02T15:04:05Z07:00")
		}
		if pd.Err != nil {
			pi.Error = pd.Err.Error()
		}
		out = append(out, pi)
	}
	return out, nil
}

// finisher ends a signed proposal: saves it while it needs signatures,
// commits it once complete.
type finisher interface {
	save(ctx context.Context, an *anchor.Anchorer, p *anchor.Proposal) error
	commit(ctx context.Context, an *anchor.Anchorer, p *anchor.Proposal) (*anchor.Result, error)
}

// localFinish saves and commits in the agent's registry.
type localFinish struct{}

func (localFinish) save(ctx context.Context, an *anchor.Anchorer, p *anchor.Proposal) error {
	return an.Save(ctx, p)
}

func (localFinish) commit(ctx context.Context, an *anchor.Anchorer, p *anchor.Proposal) (*anchor.Result, error) {
	return an.Commit(ctx, p)
}

// signProposal signs p with the held keys the policy allows, then commits
// or saves it.
func (a *Agent) signProposal(ctx context.Context, an *anchor.Anchorer, p *anchor.Proposal, op string) (*AnchorResult, error) {
	return a.signProposalTo(ctx, an, p, op, localFinish{})
}

// signProposalTo is signProposal ending through fin.
func (a *Agent) signProposalTo(ctx context.Context, an *anchor.Anchorer, p *anchor.Proposal, op string, fin finisher) (*AnchorResult, error) {
	var already []int
	keys, denied, err := a.matchKeys(ctx, p.Prefix(), func(v kel.Verfer) (int, int) {
		i := p.KeyIndex(v.QB64())
		if i >= 0 && p.Has(i) {
			already = append(already, i) // not signed again
			return -1, 0
		}
		return i, 0
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(already)
	already = slices.Compact(already) // matchKeys may look twice
	if len(keys) == 0 && !p.Complete() {
		if len(already) > 0 && len(denied) == 0 {
			// Signing again would change nothing: say so, write nothing.
			a.log.Info("already signed", "op", op, "prefix", p.Prefix(), "said", p.SAID(), "indexes", already)
			return &AnchorResult{Prefix: p.Prefix(), Sn: p.Sn(), SAID: p.SAID(), Needs: p.Status().Needs(), AlreadySigned: already}, nil
		}
		var err *RefusedError
		if len(denied) > 0 {
			err = refuse(op, ErrPolicy, "key %s may not sign for identity %s", denied[0], p.Prefix())
		} else {
			err = refuse(op, ErrNoKey, "none of the keys this agent holds signs %s s=%x %s of %s (%s)",
				p.Type(), p.Sn(), p.SAID(), p.Prefix(), p.ExpectedKeys())
		}
		a.record(ctx, AuditRecord{Op: op, Prefix: p.Prefix(), Type: p.Type(), Sn: p.Sn(), SAID: p.SAID(), Refused: err.Reason.Error()})
		return nil, err
	}
	if len(keys) > 0 {
		if err := a.notDuplicate(ctx, op, p.Prefix(), p.Sn(), p.SAID()); err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				a.log.Warn("refused", "op", op, "peer", PeerOf(ctx).PID, "reason", re.Reason)
				a.record(ctx, AuditRecord{Op: op, Prefix: p.Prefix(), Type: p.Type(), Sn: p.Sn(), SAID: p.SAID(), Refused: re.Reason.Error()})
			}
			return nil, err
		}
	}
	for _, sk := range keys {
		if err := a.record(ctx, AuditRecord{Op: op, Key: sk.k.uri, Prefix: p.Prefix(), Type: p.Type(), Sn: p.Sn(), SAID: p.SAID()}); err != nil {
			return nil, err
		}
	}
	sigs, signErr := a.signAllKept(ctx, op, p.Bytes(), keys)
	rec := AuditRecord{Op: op, Prefix: p.Prefix(), Type: p.Type(), Sn: p.Sn(), SAID: p.SAID()}
	a.recordNotSigned(ctx, rec, signErr)
	if len(sigs) > 0 {
		a.remember(p.Prefix(), p.Sn(), p.SAID())
	}
	// Signatures the agent could not save or commit are said to be lost
	// (the error says how far the save or commit went).
	notKept := func(err error) error {
		a.recordNotKept(ctx, rec, keys, sigs, "not kept: "+err.Error())
		return err
	}
	for _, s := range sigs {
		if _, err := p.AddRaw(s.Index, s.Raw); err != nil {
			return nil, notKept(err)
		}
	}
	res := &AnchorResult{Prefix: p.Prefix(), Sn: p.Sn(), SAID: p.SAID(), AlreadySigned: already}
	if !p.Complete() {
		if err := fin.save(ctx, an, p); err != nil {
			return nil, notKept(err)
		}
		res.Needs = p.Status().Needs()
		a.log.Info("saved in escrow", "op", op, "prefix", p.Prefix(), "said", p.SAID(), "needs", res.Needs)
		return res, signErr
	}
	out, err := fin.commit(ctx, an, p)
	if err != nil {
		return nil, notKept(err)
	}
	res.Committed, res.Commit, res.Needs = true, out.Commit, p.Status().Needs()
	a.log.Info("committed", "op", op, "prefix", p.Prefix(), "sn", p.Sn(), "said", p.SAID(), "commit", out.Commit)
	return res, nil
}

// signAllKept is signAll that keeps the signatures of the keys that
// succeeded when others fail.
func (a *Agent) signAllKept(ctx context.Context, op string, msg []byte, keys []signingKey) ([]kel.Siger, error) {
	type one struct {
		sig kel.Siger
		err error
	}
	res := make([]one, len(keys))
	done := make(chan struct{})
	n := len(keys)
	if n == 0 {
		return nil, nil
	}
	for i, sk := range keys {
		go func() {
			defer func() { done <- struct{}{} }()
			sigs, err := a.signAll(touchPosition(ctx, i, n), op, msg, []signingKey{sk})
			if err != nil {
				res[i].err = err
				return
			}
			res[i].sig = sigs[0]
		}()
	}
	for range n {
		<-done
	}
	var sigs []kel.Siger
	var errs []error
	for _, r := range res {
		if r.err != nil {
			errs = append(errs, r.err)
		} else {
			sigs = append(sigs, r.sig)
		}
	}
	slices.SortFunc(sigs, func(x, y kel.Siger) int { return x.Index - y.Index })
	return sigs, errors.Join(errs...)
}

// lockedAnchorer returns an anchorer on the agent's registry once the
// caller holds prefix's turn (release gives it back); op names the
// refusal when the agent has no registry.
func (a *Agent) lockedAnchorer(ctx context.Context, op, prefix string) (*anchor.Anchorer, func(), error) {
	if a.reg == nil {
		return nil, nil, refuse(op, ErrNoRegistry, "the agent has no registry (--registry)")
	}
	release, err := a.lockIdentity(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	return anchor.New(a.reg, anchor.WithClock(a.clock)), release, nil
}

// IDCreate stages the inception spec describes, signs it with the held
// keys among its keys, and commits it when the threshold is met (or saves
// it in escrow).
func (a *Agent) IDCreate(ctx context.Context, spec kel.InceptionSpec) (*AnchorResult, error) {
	const op = "id create"
	if a.reg == nil {
		return nil, refuse(op, ErrNoRegistry, "the agent has no registry (--registry)")
	}
	an := anchor.New(a.reg, anchor.WithClock(a.clock))
	p, err := an.Incept(ctx, spec)
	if err != nil {
		return nil, err
	}
	release, err := a.lockIdentity(ctx, p.Prefix())
	if err != nil {
		return nil, err
	}
	defer release()
	return a.signProposal(ctx, an, p, op)
}

// IDRotate stages the rotation of prefix spec describes on its tip, signs
// it with the held keys among the new keys (each with its prior-next
// index), and commits it when both thresholds are met (or saves it).
func (a *Agent) IDRotate(ctx context.Context, prefix string, spec kel.RotationSpec) (*AnchorResult, error) {
	const op = "id rotate"
	an, release, err := a.lockedAnchorer(ctx, op, prefix)
	if err != nil {
		return nil, err
	}
	defer release()
	if spec.BackerThreshold == 0 {
		// The socket request has no bt: the backers' threshold stays, as
		// on the CLI's direct path.
		if st, err := a.KeyState(prefix); err == nil {
			spec.BackerThreshold = st.BackerThreshold.Count()
		}
	}
	p, err := an.Rotate(ctx, prefix, spec)
	if err != nil {
		return nil, err
	}
	return a.signProposal(ctx, an, p, op)
}
