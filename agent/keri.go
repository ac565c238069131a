package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/auths-dev/auths-agent/agent/touch"
	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// KeyInfo describes a held key (keys@auths.dev).
type KeyInfo struct {
	URI        string        `json:"uri"` // without PIN attributes
	Uses       []Use         `json:"uses"`
	Algorithm  string        `json:"algorithm,omitempty"`
	PublicKey  string        `json:"public_key,omitempty"` // CESR qb64
	Token      string        `json:"token,omitempty"`      // where the key is, for people
	Policy     []string      `json:"policy,omitempty"`     // identities the key may sign for; empty: any that lists it
	Identities []IdentityUse `json:"identities,omitempty"`
	Error      string        `json:"error,omitempty"` // why the key could not be opened
	// NextOf is, for a next key the agent made or found on a token, the
	// URI of the key it sits beside (whose policy it has).
	NextOf string `json:"next_of,omitempty"`
}

// IdentityUse is an identity of the registry whose current key list holds
// the key, at Index.
type IdentityUse struct {
	Prefix string `json:"prefix"`
	Index  int    `json:"index"`
}

// Keys describes every held key; keys that cannot be opened carry the
// reason.
func (a *Agent) Keys(ctx context.Context) ([]KeyInfo, error) {
	a.discover(ctx, true)
	var states []*kel.KeyState
	if a.reg != nil {
		snap, err := a.reg.Snapshot()
		if err != nil {
			return nil, err
		}
		prefixes, err := snap.Prefixes()
		if err != nil {
			return nil, err
		}
		for _, p := range prefixes {
			st, err := snap.KeyState(p)
			if err != nil {
				return nil, fmt.Errorf("identity %s: %w", p, err)
			}
			states = append(states, st)
		}
	}
	out := make([]KeyInfo, 0, len(a.held()))
	for _, k := range a.held() {
		ki := KeyInfo{URI: k.uri, Uses: k.spec.Uses, Policy: k.spec.Identities, NextOf: k.nextOf}
		v, err := a.verferOf(ctx, k)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			ki.Error = err.Error()
			out = append(out, ki)
			continue
		}
		ki.Algorithm, ki.PublicKey = v.Algorithm().String(), v.QB64()
		k.mu.Lock()
		if k.signer != nil {
			ki.Token = hsm.Describe(k.signer)
		}
		k.mu.Unlock()
		for _, st := range states {
			if i := st.KeyIndex(v.QB64()); i >= 0 {
				ki.Identities = append(ki.Identities, IdentityUse{Prefix: st.Prefix, Index: i})
			}
		}
		out = append(out, ki)
	}
	return out, nil
}

// EventSignatures are the signatures of one event.
type EventSignatures struct {
	Prefix string
	Sn     uint64
	SAID   string
	Type   string
	Sigs   []kel.Siger // in index order
}

// signingKey is a held key at its place in an event's signing key list.
type signingKey struct {
	k            *key
	verfer       kel.Verfer // the public key the request was checked against
	index, ondex int
	alg          kel.Algorithm
}

// SignEvent checks raw as described in the package comment and returns the
// signatures of every held key in its signing key list that the policy
// allows for its identity. A refusal is a *RefusedError; nothing is signed
// then.
func (a *Agent) SignEvent(ctx context.Context, raw []byte) (*EventSignatures, error) {
	const op = "sign-event"
	e, err := kel.ParseEvent(raw)
	var keys []signingKey
	if err != nil {
		err = refuse(op, ErrBadEvent, "%v", err)
	} else {
		// The check and the signatures happen in the identity's turn, as
		// an anchor's stage, sign and commit do: otherwise an anchor
		// could take the sequence number this event was checked for while
		// it waits for its token, and the agent would sign two events at
		// one sequence number.
		var release func()
		release, err = a.lockIdentity(ctx, e.Prefix)
		if err != nil {
			return nil, err
		}
		defer release()
		keys, err = a.checkParsed(ctx, e)
		if err == nil {
			err = a.notDuplicate(ctx, op, e.Prefix, e.Sn, e.SAID)
		}
	}
	if err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			r := AuditRecord{Op: op, Refused: re.Reason.Error()}
			if e != nil {
				r.Prefix, r.Type, r.Sn, r.SAID = e.Prefix, e.Type, e.Sn, e.SAID
			}
			a.log.Warn("refused", "op", op, "peer", PeerOf(ctx).PID, "reason", re.Reason)
			a.record(ctx, r)
		}
		return nil, err
	}
	durable := make([]func() error, len(keys))
	for i, sk := range keys {
		var err error
		durable[i], err = a.recordSigning(ctx, AuditRecord{Op: op, Key: sk.k.uri, Prefix: e.Prefix, Type: e.Type, Sn: e.Sn, SAID: e.SAID})
		if err != nil {
			return nil, err
		}
	}
	sigs, err := a.signAll(ctx, op, e.Raw(), keys)
	if err != nil {
		r := AuditRecord{Op: op, Prefix: e.Prefix, Type: e.Type, Sn: e.Sn, SAID: e.SAID}
		a.recordNotSigned(ctx, r, err)
		a.recordNotKept(ctx, r, keys, sigs, "not handed out: another key of the request did not sign")
		return nil, err
	}
	for _, d := range durable {
		if err := d(); err != nil {
			return nil, err // the signatures are dropped: they were not recorded
		}
	}
	a.remember(e.Prefix, e.Sn, e.SAID)
	a.log.Info("signed", "op", op, "prefix", e.Prefix, "type", e.Type, "sn", e.Sn, "said", e.SAID, "signatures", len(sigs), "peer", PeerOf(ctx).PID)
	return &EventSignatures{Prefix: e.Prefix, Sn: e.Sn, SAID: e.SAID, Type: e.Type, Sigs: sigs}, nil
}

// checkEvent parses and checks raw and finds the held keys that sign it.
// The caller holds the identity's turn (lockIdentity).
func (a *Agent) checkEvent(ctx context.Context, raw []byte) (*kel.Event, []signingKey, error) {
	e, err := kel.ParseEvent(raw)
	if err != nil {
		return nil, nil, refuse("sign-event", ErrBadEvent, "%v", err)
	}
	keys, err := a.checkParsed(ctx, e)
	return e, keys, err
}

// checkParsed checks e and finds the held keys that sign it.
func (a *Agent) checkParsed(ctx context.Context, e *kel.Event) ([]signingKey, error) {
	const op = "sign-event"
	if err := e.CheckSAID(); err != nil {
		return nil, refuse(op, ErrSAID, "%v", err)
	}
	var prior *kel.KeyState
	switch e.Type {
	case kel.TypeInception:
		if a.reg != nil {
			snap, err := a.reg.Snapshot()
			if err != nil {
				return nil, err
			}
			if _, err := snap.Tip(e.Prefix); err == nil {
				return nil, refuse(op, ErrNotNext, "identity %s is already incepted in the registry", e.Prefix)
			} else if !errors.Is(err, registry.ErrNotFound) {
				return nil, err
			}
		}
	case kel.TypeRotation, kel.TypeInteraction:
		if a.reg == nil {
			return nil, refuse(op, ErrNoRegistry, "a %s event is checked against its KEL and the agent has no registry (--registry)", e.Type)
		}
		var err error
		prior, err = a.keyState(e.Prefix)
		if errors.Is(err, registry.ErrNotFound) {
			return nil, refuse(op, ErrNotNext, "identity %s has no KEL in the registry", e.Prefix)
		}
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", e.Prefix, err)
		}
	default:
		return nil, refuse(op, ErrBadEvent, "%s events are not signed by this agent (icp, rot, ixn only)", e.Type)
	}
	if _, err := kel.Next(prior, e); err != nil {
		return nil, refuse(op, ErrNotNext, "%v", err)
	}
	list, priorNext := e.Keys, []string(nil)
	switch e.Type {
	case kel.TypeInteraction:
		list = prior.CurrentKeys
	case kel.TypeRotation:
		priorNext = prior.NextCommitment
	}
	keys, denied, err := a.matchKeys(ctx, e.Prefix, func(v kel.Verfer) (int, int) {
		i := slices.Index(list, v.QB64())
		ondex := i
		if e.Type == kel.TypeRotation {
			if ondex = slices.Index(priorNext, kel.NextKeyDigest(v.QB64())); ondex < 0 {
				ondex = kel.NoOndex
			}
		}
		return i, ondex
	})
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		if len(denied) > 0 {
			return nil, refuse(op, ErrPolicy, "key %s may not sign for identity %s", denied[0], e.Prefix)
		}
		return nil, refuse(op, ErrNoKey, "none of the keys this agent holds signs %s s=%x %s of %s (%s)",
			e.Type, e.Sn, e.SAID, e.Prefix, anchor.ExpectedKeys(list))
	}
	return keys, nil
}

// signAll signs msg with every key at once (each on its token's queue) and
// returns the signatures in index order. They are not verified here (a
// P-256 verification costs half a SoftHSM signature): whoever folds them
// verifies them, as anchor.Proposal.Add and the registry's commit do.
// When a key fails, the error joins each failed key's error (withKey),
// and the signatures the other keys made come with it, for the audit
// trail only.
func (a *Agent) signAll(ctx context.Context, op string, msg []byte, keys []signingKey) ([]kel.Siger, error) {
	sigs := make([]kel.Siger, len(keys))
	errs := make([]error, len(keys))
	one := func(ctx context.Context, i int, sk signingKey) {
		raw, err := a.signKERI(ctx, op, sk, msg)
		if err != nil {
			errs[i] = withKey(sk.k.uri, err)
			return
		}
		sigs[i] = kel.NewSiger(sk.alg, sk.index, sk.ondex, raw)
	}
	if len(keys) == 1 {
		one(ctx, 0, keys[0]) // no goroutine for the common one-key case
	} else {
		var wg sync.WaitGroup
		for i, sk := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				one(touchPosition(ctx, i, len(keys)), i, sk)
			}()
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		var made []kel.Siger
		for i, s := range sigs {
			if errs[i] == nil {
				made = append(made, s)
			}
		}
		return made, err
	}
	slices.SortFunc(sigs, func(x, y kel.Siger) int { return x.Index - y.Index })
	return sigs, nil
}

// touchPosition marks ctx as the signature of the i-th (from 0) of n keys
// one request signs with, so that a touch notice says which of them waits:
// "(1 of 2)", in the order of the agent's keys. Alone, a key has none.
func touchPosition(ctx context.Context, i, n int) context.Context {
	if n < 2 {
		return ctx
	}
	return touch.WithPosition(ctx, i+1, n)
}

// KeyState returns the key state of prefix in the agent's registry.
func (a *Agent) KeyState(prefix string) (*kel.KeyState, error) {
	if a.reg == nil {
		return nil, refuse("key state", ErrNoRegistry, "the agent has no registry (--registry)")
	}
	snap, err := a.reg.Snapshot()
	if err != nil {
		return nil, err
	}
	return snap.KeyState(prefix)
}

// matchKeys returns the held KERI keys that place finds in an event's key
// list (place returns the key's index there, or -1, and its ondex), and the
// URIs of those the policy does not allow for prefix. A key that cannot be
// opened is passed over: it cannot be in the list for us.
func (a *Agent) matchKeys(ctx context.Context, prefix string, place func(kel.Verfer) (index, ondex int)) (keys []signingKey, denied []string, err error) {
	// Next keys made by this agent are held already; those on the tokens
	// since before a restart are found on the first request, those another
	// process made when a request finds none of its keys (idkeys.go).
	a.discover(ctx, false)
	keys, denied, err = a.matchHeld(ctx, prefix, place)
	if err == nil && len(keys) == 0 && len(denied) == 0 && a.discover(ctx, true) {
		keys, denied, err = a.matchHeld(ctx, prefix, place)
	}
	return keys, denied, err
}

// matchHeld is matchKeys over the keys held now.
func (a *Agent) matchHeld(ctx context.Context, prefix string, place func(kel.Verfer) (index, ondex int)) (keys []signingKey, denied []string, err error) {
	deniedAt := map[int]bool{}
	for _, k := range a.held() {
		if !k.spec.Has(UseKERI) {
			continue
		}
		v, err := a.verferOf(ctx, k)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, err
			}
			continue
		}
		i, ondex := place(v)
		if i < 0 {
			continue
		}
		if !k.spec.Allows(prefix) {
			denied = append(denied, k.uri)
			deniedAt[i] = true
			continue
		}
		if slices.ContainsFunc(keys, func(sk signingKey) bool { return sk.index == i }) {
			continue // one key held twice (a config key and a next key found on its token)
		}
		keys = append(keys, signingKey{k: k, verfer: v, index: i, ondex: ondex, alg: v.Algorithm()})
	}
	// A key the policy denies signs through none of its copies, whatever
	// the order they are held in.
	keys = slices.DeleteFunc(keys, func(sk signingKey) bool { return deniedAt[sk.index] })
	return keys, denied, nil
}
