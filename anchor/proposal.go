package anchor

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/auths-dev/auths-agent/kel"
)

// Key is one signing key of a proposal: its position in the event's
// current key list (Index) and, for a rotation, its position in the prior
// next-key list (Ondex, kel.NoOndex when the key was not pre-committed).
// For inceptions and interactions Ondex equals Index.
type Key struct {
	Index int
	Ondex int
	Key   string // CESR qb64 public key
	Alg   kel.Algorithm
}

// Attestation is a device attestation the change stores in the same batch
// as its event. Its SAID (kel.AttestationSAID) is anchored by a digest seal.
type Attestation struct {
	Device    string // device DID (canonical once staged)
	Document  []byte // auths' Attestation; once staged, as auths serializes it
	Supersede bool   // replaces the device's current document: a revocation (revoked_at set)
	SAID      string // set by staging
}

// Proposal is an unsigned event waiting for signatures, with what its
// batch will store beside it. Its methods are safe for concurrent use.
type Proposal struct {
	event        *kel.Event
	prior        *kel.KeyState // state before the event; nil for an inception
	keys         []Key
	kt           kel.Threshold
	priorNext    []string      // rotation: prior n
	priorNT      kel.Threshold // rotation: prior nt
	attestations []Attestation
	created      time.Time
	expires      time.Time

	mu   sync.Mutex
	sigs map[int]kel.Siger // by index
}

func newProposal(e *kel.Event, prior *kel.KeyState, atts []Attestation, now time.Time, ttl time.Duration) (*Proposal, error) {
	p := &Proposal{
		event: e, prior: prior, attestations: atts,
		created: now.UTC(), expires: now.Add(ttl).UTC(), sigs: map[int]kel.Siger{},
	}
	var keys []string
	switch e.Type {
	case kel.TypeInteraction:
		keys, p.kt = prior.CurrentKeys, prior.Threshold
	case kel.TypeInception:
		keys, p.kt = e.Keys, e.KeyThreshold
	case kel.TypeRotation:
		keys, p.kt = e.Keys, e.KeyThreshold
		p.priorNext, p.priorNT = prior.NextCommitment, prior.NextThreshold
	default:
		return nil, fmt.Errorf("event type %s: not supported here", e.Type)
	}
	for i, k := range keys {
		v, err := kel.ParseVerfer(k)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		ondex := i
		if e.Type == kel.TypeRotation {
			ondex = slices.Index(p.priorNext, kel.NextKeyDigest(k))
			if ondex < 0 {
				ondex = kel.NoOndex
			}
		}
		p.keys = append(p.keys, Key{Index: i, Ondex: ondex, Key: k, Alg: v.Algorithm()})
	}
	return p, nil
}

// Event returns the unsigned event.
func (p *Proposal) Event() *kel.Event { return p.event }

// Bytes returns the exact bytes every controller signs.
func (p *Proposal) Bytes() []byte { return p.event.Raw() }

// SAID returns the event's SAID, the handle of the proposal.
func (p *Proposal) SAID() string { return p.event.SAID }

// Prefix returns the identity's prefix.
func (p *Proposal) Prefix() string { return p.event.Prefix }

// Sn returns the event's sequence number.
func (p *Proposal) Sn() uint64 { return p.event.Sn }

// Type returns the event type: icp, rot or ixn.
func (p *Proposal) Type() string { return p.event.Type }

// Prior returns the SAID of the event this one follows ("" for an
// inception): the tip the proposal was staged on.
func (p *Proposal) Prior() string { return p.event.Prior }

// PriorState returns the key state the event follows (nil for an
// inception).
func (p *Proposal) PriorState() *kel.KeyState {
	if p.prior == nil {
		return nil
	}
	return p.prior.Clone()
}

// Keys returns the signing keys with their indexes (and prior-next indexes
// for a rotation).
func (p *Proposal) Keys() []Key { return slices.Clone(p.keys) }

// KeyIndex returns the index of a qb64 key among the signing keys, or -1.
func (p *Proposal) KeyIndex(key string) int {
	for _, k := range p.keys {
		if k.Key == key {
			return k.Index
		}
	}
	return -1
}

// NotSigningKey says, for people, that the qb64 key is not one of the
// proposal's signing keys, naming the identity and the keys its indexes
// expect, so that whoever picked the wrong token sees which one to pick:
//
//	key DKx… is not a current key of EKf0… (indexes 0-2 expect keys DA…, DB…, DC…)
//
// A rotation's signing keys are the keys it sets, so there the key "is not
// a new key of" the identity.
func (p *Proposal) NotSigningKey(key string) string {
	role := "a current key"
	if p.event.Type == kel.TypeRotation {
		role = "a new key"
	}
	return fmt.Sprintf("key %s is not %s of %s (%s)", printable(key), role, p.event.Prefix, p.ExpectedKeys())
}

// ExpectedKeys lists the signing keys by index, for messages:
// "indexes 0-2 expect keys A, B, C" or "index 0 expects key A".
func (p *Proposal) ExpectedKeys() string {
	keys := make([]string, len(p.keys))
	for i, k := range p.keys {
		keys[i] = k.Key
	}
	return ExpectedKeys(keys)
}

// ExpectedKeys lists a key list by index, as [Proposal.ExpectedKeys] does.
func ExpectedKeys(keys []string) string {
	switch len(keys) {
	case 0:
		return "no signing keys"
	case 1:
		return "index 0 expects key " + keys[0]
	}
	return fmt.Sprintf("indexes 0-%d expect keys %s", len(keys)-1, strings.Join(keys, ", "))
}

// Threshold returns the signing threshold the signatures must meet (kt).
func (p *Proposal) Threshold() kel.Threshold { return p.kt }

// PriorNextThreshold returns, for a rotation, the prior next threshold the
// revealed next keys must meet; ok is false for other events.
func (p *Proposal) PriorNextThreshold() (t kel.Threshold, ok bool) {
	return p.priorNT, p.event.Type == kel.TypeRotation
}

// Attestations returns the attestations the change stores.
func (p *Proposal) Attestations() []Attestation { return slices.Clone(p.attestations) }

// Created returns when the proposal was staged.
func (p *Proposal) Created() time.Time { return p.created }

// Expires returns when the proposal expires.
func (p *Proposal) Expires() time.Time { return p.expires }

// Expired reports whether the proposal has expired at now.
func (p *Proposal) Expired(now time.Time) bool { return !now.Before(p.expires) }

// Add adds the signature s, made for the event whose SAID is said, after
// verifying it against the key at its index over the proposal's bytes. A
// signature already held for that index makes Add a no-op (added false). A
// refused signature is a *SignatureError wrapping ErrOtherEvent,
// ErrWrongIndex or ErrBadSignature. The signature is kept with the codes
// keri.md prescribes (both indexes where they differ).
func (p *Proposal) Add(said string, s kel.Siger) (added bool, err error) {
	refuse := func(err error) (bool, error) { return false, &SignatureError{Index: s.Index, Err: err} }
	if said != p.event.SAID {
		return refuse(fmt.Errorf("%w: signed %s, this proposal is %s", ErrOtherEvent, said, p.event.SAID))
	}
	if s.Index < 0 || s.Index >= len(p.keys) {
		return refuse(fmt.Errorf("%w: index %d outside the %d signing keys", ErrWrongIndex, s.Index, len(p.keys)))
	}
	k := p.keys[s.Index]
	if p.event.Type == kel.TypeRotation && s.Ondex != kel.NoOndex && s.Ondex != k.Ondex {
		return refuse(fmt.Errorf("%w: prior-next index %d, but key %d is at %s of the prior next keys", ErrWrongIndex, s.Ondex, s.Index, ondexText(k.Ondex)))
	}
	if s.Alg != k.Alg {
		return refuse(fmt.Errorf("%w: an %v signature for the %v key %s", ErrBadSignature, s.Alg, k.Alg, k.Key))
	}
	v, err := kel.ParseVerfer(k.Key)
	if err != nil {
		return refuse(err)
	}
	if !v.Verify(p.event.Raw(), s.Raw) {
		return refuse(fmt.Errorf("%w: not made by key %d (%s) over event %s", ErrBadSignature, s.Index, k.Key, p.event.SAID))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.sigs[s.Index]; ok {
		return false, nil
	}
	p.sigs[s.Index] = kel.NewSiger(k.Alg, k.Index, k.Ondex, s.Raw)
	return true, nil
}

// AddRaw adds a raw 64-byte signature by the key at index.
func (p *Proposal) AddRaw(index int, raw []byte) (bool, error) {
	if index < 0 || index >= len(p.keys) {
		return false, &SignatureError{Index: index, Err: fmt.Errorf("%w: index %d outside the %d signing keys", ErrWrongIndex, index, len(p.keys))}
	}
	k := p.keys[index]
	return p.Add(p.event.SAID, kel.NewSiger(k.Alg, k.Index, k.Ondex, raw))
}

func ondexText(o int) string {
	if o == kel.NoOndex {
		return "no position"
	}
	return fmt.Sprintf("position %d", o)
}

// Signatures returns the collected signatures in index order.
func (p *Proposal) Signatures() []kel.Siger {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]kel.Siger, 0, len(p.sigs))
	for _, s := range p.sigs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b kel.Siger) int { return a.Index - b.Index })
	return out
}

// Has reports whether a signature for index is held.
func (p *Proposal) Has(index int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.sigs[index]
	return ok
}

// Complete reports whether the collected signatures meet the thresholds.
func (p *Proposal) Complete() bool { return p.Status().Complete }

// Fold returns the fully signed event: the event with every collected
// signature, in index order. It fails with an *IncompleteError while the
// thresholds are not met, and checks the result with kel.Apply against the
// state it follows.
func (p *Proposal) Fold() (kel.SignedEvent, error) {
	st := p.Status()
	if !st.Complete {
		return kel.SignedEvent{}, &IncompleteError{Status: st}
	}
	se := kel.SignedEvent{Event: p.event, Sigs: p.Signatures()}
	if _, err := kel.Apply(p.PriorState(), se); err != nil {
		return kel.SignedEvent{}, fmt.Errorf("folded event does not validate: %w", err)
	}
	return se, nil
}

// checkSeal checks one seal: {"d": SAID} or {"i": AID, "s": hex, "d": SAID},
// fields in that order, nothing else.
func checkSeal(raw json.RawMessage) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return fmt.Errorf("%w: %s is not a JSON object", ErrBadSeal, clip(string(raw)))
	}
	str := func(name string) (string, error) {
		var s string
		if err := json.Unmarshal(fields[name], &s); err != nil {
			return "", fmt.Errorf("%w: %q is not a string", ErrBadSeal, name)
		}
		return s, nil
	}
	d, ok := fields["d"]
	if !ok || d == nil {
		return fmt.Errorf("%w: no \"d\"", ErrBadSeal)
	}
	ds, err := str("d")
	if err != nil {
		return err
	}
	if _, err := kel.ParseDigest(ds); err != nil {
		return fmt.Errorf("%w: d: %v", ErrBadSeal, err)
	}
	switch len(fields) {
	case 1:
		return nil
	case 3:
		i, err := str("i")
		if err != nil {
			return err
		}
		s, err := str("s")
		if err != nil {
			return err
		}
		if err := checkAID(i); err != nil {
			return fmt.Errorf("%w: i: %v", ErrBadSeal, err)
		}
		if _, err := parseHexSn(s); err != nil {
			return fmt.Errorf("%w: s: %v", ErrBadSeal, err)
		}
		want := string(kel.EventSeal(i, mustHex(s), ds))
		if string(compact(raw)) != want {
			return fmt.Errorf("%w: want fields i, s, d in that order", ErrBadSeal)
		}
		return nil
	}
	return fmt.Errorf("%w: want {\"d\"} or {\"i\",\"s\",\"d\"}, got %d fields", ErrBadSeal, len(fields))
}

func checkAID(s string) error {
	if _, err := kel.ParseDigest(s); err == nil {
		return nil
	}
	if _, err := kel.ParseVerfer(s); err == nil {
		return nil
	}
	return errors.New("not a self-addressing or basic prefix")
}
