package anchor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// DefaultTTL is how long a proposal waits for signatures, as keripy keeps
// partially signed events in escrow.
const DefaultTTL = time.Hour

// Anchorer stages, commits and escrows proposals against one registry. It
// holds no state of its own besides its options, so one value can serve a
// long-running process.
type Anchorer struct {
	reg   Store
	clock func() time.Time
	ttl   time.Duration
}

// Option configures New.
type Option func(*Anchorer)

// WithClock sets the clock used for creation and expiry times (default
// time.Now).
func WithClock(clock func() time.Time) Option { return func(a *Anchorer) { a.clock = clock } }

// WithTTL sets how long a proposal may wait for signatures (default
// DefaultTTL).
func WithTTL(d time.Duration) Option { return func(a *Anchorer) { a.ttl = d } }

// New returns an Anchorer over reg (a *registry.Registry for a local
// repository).
func New(reg Store, opts ...Option) *Anchorer {
	a := &Anchorer{reg: reg, clock: time.Now, ttl: DefaultTTL}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Registry returns the registry the Anchorer writes to.
func (a *Anchorer) Registry() Store { return a.reg }

// Change is what an interaction event anchors: seals given directly, and
// attestations stored in the same batch whose SAIDs are anchored with
// digest seals (after the direct seals, in order).
type Change struct {
	Seals        []json.RawMessage
	Attestations []Attestation
}

// Stage builds the unsigned interaction event of prefix that carries the
// change's seals, on the registry's current tip, and returns it as a
// proposal. Nothing is signed or written.
func (a *Anchorer) Stage(ctx context.Context, prefix string, ch Change) (*Proposal, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := a.keyState(prefix)
	if err != nil {
		return nil, err
	}
	switch {
	case st.IsNonTransferable:
		return nil, fmt.Errorf("identity %s: %w: nothing may follow its inception", prefix, ErrNonTransferable)
	case st.HasTrait(kel.TraitEstablishmentOnly):
		return nil, fmt.Errorf("identity %s: %w: it cannot anchor with an interaction event", prefix, ErrEstablishmentOnly)
	case st.IsAbandoned:
		return nil, fmt.Errorf("identity %s: %w", prefix, kel.ErrAbandoned)
	}
	if len(ch.Seals) == 0 && len(ch.Attestations) == 0 {
		return nil, fmt.Errorf("identity %s: nothing to anchor (no seal, no attestation)", prefix)
	}
	seals := make([]json.RawMessage, 0, len(ch.Seals)+len(ch.Attestations))
	for i, s := range ch.Seals {
		c := compact(s)
		if c == nil {
			return nil, fmt.Errorf("seal %d: %w: not JSON", i, ErrBadSeal)
		}
		if err := checkSeal(c); err != nil {
			return nil, fmt.Errorf("seal %d: %w", i, err)
		}
		seals = append(seals, c)
	}
	atts, err := checkAttestations(prefix, st, ch.Attestations)
	if err != nil {
		return nil, err
	}
	for _, at := range atts {
		seals = append(seals, kel.DigestSeal(at.SAID))
	}
	e, err := kel.NewInteraction(st, seals)
	if err != nil {
		return nil, fmt.Errorf("identity %s: interaction event: %w", prefix, err)
	}
	return newProposal(e, st, atts, a.clock(), a.ttl)
}

// checkAttestations reads each attestation as auths does and checks it
// before anything is signed: its subject is the device given, its issuer
// is the anchoring identity, the device signed it, an identity_signature
// (if any) verifies with a current key of the identity, and it is a
// supersede exactly when it is a revocation (revoked_at set), so that what
// escrow keeps beside the signed event cannot change its meaning. The
// document kept is auths' serialization, whose SAID the event seals.
func checkAttestations(prefix string, st *kel.KeyState, in []Attestation) ([]Attestation, error) {
	out := make([]Attestation, 0, len(in))
	seen := map[string]bool{}
	for i, at := range in {
		a, err := checkAttestation(prefix, st, at)
		if err != nil {
			return nil, fmt.Errorf("attestation %d (%s): %w: %w", i, clipDID(at.Device), ErrBadAttestation, err)
		}
		if seen[a.Subject] {
			return nil, fmt.Errorf("attestation %d: %w: device %s given twice", i, ErrBadAttestation, a.Subject)
		}
		seen[a.Subject] = true
		said, err := a.SAID()
		if err != nil {
			return nil, fmt.Errorf("attestation %d (%s): %w: %w", i, a.Subject, ErrBadAttestation, err)
		}
		out = append(out, Attestation{Device: a.Subject, Document: a.Pretty(), Supersede: at.Supersede, SAID: said})
	}
	return out, nil
}

func checkAttestation(prefix string, st *kel.KeyState, at Attestation) (*kel.Attestation, error) {
	device, err := kel.CanonicalDID(at.Device)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	if _, err := registry.DeviceDir(device); err != nil {
		return nil, err
	}
	a, err := kel.ParseAttestation(at.Document)
	if err != nil {
		return nil, err
	}
	if a.Subject != device {
		return nil, fmt.Errorf("its subject is %s, not the device %s", clipDID(a.Subject), device)
	}
	if a.Issuer != "did:keri:"+prefix {
		return nil, fmt.Errorf("its issuer is %s, not the anchoring identity did:keri:%s", clipDID(a.Issuer), prefix)
	}
	if at.Supersede != (a.RevokedAt != nil) {
		if at.Supersede {
			return nil, errors.New("a revocation must set revoked_at")
		}
		return nil, errors.New("it sets revoked_at: give it as a revocation")
	}
	if err := a.VerifyDevice(); err != nil {
		return nil, err
	}
	if err := a.VerifyIdentity(st.CurrentKeys); err != nil {
		return nil, err
	}
	return a, nil
}

// clipDID shortens a DID taken from input for an error message, quoted
// when it holds anything but printable ASCII (the message stays one line).
func clipDID(s string) string {
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return strconv.Quote(s)
		}
	}
	return s
}

func (a *Anchorer) keyState(prefix string) (*kel.KeyState, error) {
	snap, err := a.reg.Snapshot()
	if err != nil {
		return nil, err
	}
	st, err := snap.KeyState(prefix)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, fmt.Errorf("%w %s: the registry has no KEL for it", ErrUnknownIdentity, prefix)
	}
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", prefix, err)
	}
	return st, nil
}

// Incept builds an unsigned inception event as a proposal: its keys sign
// it, enough of them to meet its kt. An identity with that prefix must not
// exist yet.
func (a *Anchorer) Incept(ctx context.Context, spec kel.InceptionSpec) (*Proposal, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e, err := kel.NewInception(spec)
	if err != nil {
		return nil, fmt.Errorf("inception event: %w", err)
	}
	snap, err := a.reg.Snapshot()
	if err != nil {
		return nil, err
	}
	if _, err := snap.Tip(e.Prefix); err == nil {
		return nil, fmt.Errorf("identity %s: %w", e.Prefix, ErrCommitted)
	} else if !errors.Is(err, registry.ErrNotFound) {
		return nil, err
	}
	return newProposal(e, nil, nil, a.clock(), a.ttl)
}

// Rotate builds an unsigned rotation event of prefix as a proposal: the
// new keys sign it, enough to meet the new kt, and the pre-committed ones
// among them must meet the prior nt.
func (a *Anchorer) Rotate(ctx context.Context, prefix string, spec kel.RotationSpec) (*Proposal, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := a.keyState(prefix)
	if err != nil {
		return nil, err
	}
	if st.IsNonTransferable {
		return nil, fmt.Errorf("identity %s: %w", prefix, ErrNonTransferable)
	}
	if st.IsAbandoned {
		return nil, fmt.Errorf("identity %s: %w", prefix, kel.ErrAbandoned)
	}
	if len(spec.Keys) > 0 {
		revealed := 0
		for _, k := range spec.Keys {
			for _, d := range st.NextCommitment {
				if kel.NextKeyDigest(k) == d {
					revealed++
				}
			}
		}
		if revealed == 0 {
			return nil, fmt.Errorf("identity %s: none of the %d new keys is a pre-committed next key", prefix, len(spec.Keys))
		}
	}
	e, err := kel.NewRotation(st, spec)
	if err != nil {
		return nil, fmt.Errorf("identity %s: rotation event: %w", prefix, err)
	}
	return newProposal(e, st, nil, a.clock(), a.ttl)
}

// Result is a committed proposal.
type Result struct {
	registry.CommitResult
	Event kel.SignedEvent
	// CleanupErr is set when the commit succeeded but the proposal's
	// pending ref could not be removed; a later List or Load finds it
	// committed and removes it.
	CleanupErr error
}

// Commit folds the proposal and writes its event, with the attestations
// of its change, as one registry batch: one commit. An expired proposal is
// refused (ErrExpired); one whose identity's tip moved since staging is
// stale (a *StaleError, never committed) and its pending ref, if any, is
// removed; an event already in the KEL is ErrCommitted and its pending ref
// is removed too. On success the pending ref is removed. Any other failure
// (a read error while another process merges packs, a full disk) is
// returned with the pending ref untouched: signatures collected from
// several tokens are never thrown away because of a transient error.
func (a *Anchorer) Commit(ctx context.Context, p *Proposal) (*Result, error) {
	return a.commit(ctx, p, func(b *registry.Batch) (*registry.CommitResult, error) {
		return a.reg.CommitRetry(ctx, b, 3)
	})
}

// commit is Commit with the registry write given: a local commit, or one
// that lands on a remote first (CommitPush).
func (a *Anchorer) commit(ctx context.Context, p *Proposal, write func(*registry.Batch) (*registry.CommitResult, error)) (*Result, error) {
	if p.Expired(a.clock()) {
		return nil, fmt.Errorf("%s %s: %w at %s", p.Prefix(), p.SAID(), ErrExpired, p.Expires().Format(time.RFC3339))
	}
	se, err := p.Fold()
	if err != nil {
		return nil, err
	}
	if err := a.checkTip(p); err != nil {
		if !Dead(err) {
			err = fmt.Errorf("commit %s %s: checking the tip: %w", p.Prefix(), p.SAID(), err)
		}
		return nil, a.dropIfDead(ctx, p, err)
	}
	var b registry.Batch
	b.Append(se)
	for _, at := range p.attestations {
		if at.Supersede {
			b.SupersedeAttestation(at.Device, at.Document)
		} else {
			b.StoreAttestation(at.Device, at.Document)
		}
	}
	res, err := write(&b)
	if err != nil {
		var ce *registry.ConflictError
		var oe *registry.OpError
		switch {
		case errors.As(err, &ce) && ce.Op == 0:
			err = &StaleError{Prefix: p.Prefix(), SAID: p.SAID(), StagedOn: p.Prior(), Reason: ce.Reason}
			return nil, a.dropIfDead(ctx, p, err)
		case errors.Is(err, registry.ErrDuplicate) && errors.As(err, &oe) && oe.Index == 0:
			return nil, a.dropIfDead(ctx, p, fmt.Errorf("%s %s: %w", p.Prefix(), p.SAID(), ErrCommitted))
		}
		return nil, fmt.Errorf("commit %s %s: %w", p.Prefix(), p.SAID(), err)
	}
	out := &Result{CommitResult: *res, Event: se}
	out.CleanupErr = a.reg.DeletePending(ctx, registry.PendingID{Prefix: p.Prefix(), SAID: p.SAID()})
	return out, nil
}

// dropIfDead returns err after removing the proposal's pending ref when err
// says the proposal can never be committed (Dead: stale, already
// committed, expired); the cleanup's failure, if any, is joined to err.
// Every other error leaves the ref alone: it may be transient, and the ref
// holds signatures that took several tokens (and people) to collect.
func (a *Anchorer) dropIfDead(ctx context.Context, p *Proposal, err error) error {
	if !Dead(err) {
		return err
	}
	if cerr := a.reg.DeletePending(ctx, pendingID(p)); cerr != nil {
		return errors.Join(err, fmt.Errorf("removing the pending proposal: %w", cerr))
	}
	return err
}

// checkTip reports ErrStale or ErrCommitted when the identity's tip is no
// longer the one p was staged on.
func (a *Anchorer) checkTip(p *Proposal) error {
	snap, err := a.reg.Snapshot()
	if err != nil {
		return err
	}
	tip, err := snap.Tip(p.Prefix())
	if p.Type() == kel.TypeInception {
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		return fmt.Errorf("identity %s: %w", p.Prefix(), ErrCommitted)
	}
	if err != nil {
		return fmt.Errorf("identity %s: %w", p.Prefix(), err)
	}
	if tip.SAID == p.Prior() && tip.Sequence+1 == p.Sn() {
		return nil
	}
	if tip.SAID == p.SAID() {
		return fmt.Errorf("%s %s: %w", p.Prefix(), p.SAID(), ErrCommitted)
	}
	if tip.Sequence >= p.Sn() {
		events, err := snap.KEL(p.Prefix())
		if err == nil && p.Sn() < uint64(len(events)) && events[p.Sn()].Event.SAID == p.SAID() {
			return fmt.Errorf("%s %s: %w", p.Prefix(), p.SAID(), ErrCommitted)
		}
	}
	return &StaleError{Prefix: p.Prefix(), SAID: p.SAID(), StagedOn: p.Prior(), Tip: tip.SAID}
}
