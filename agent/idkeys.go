package agent

// This file holds the next keys of id create and id rotate: the agent makes
// them beside the current keys it holds (NextKeys), and holds them from
// then on, so that it signs the rotation to them. Nothing is written to
// the config: the agent finds next keys again on the tokens of the keys it
// holds (discover), after a restart as after a key was made by another
// process, because a key that lived only in the agent's memory would be
// lost when it stops.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// ErrOtherRegistry: the client names a registry that is not the agent's.
var ErrOtherRegistry = errors.New("not the agent's registry")

// discovery is the state of the search for next keys.
type discovery struct {
	done atomic.Bool // searched once
	mu   sync.Mutex  // one search at a time
	last time.Time   // when the last search ended
	gen  sync.Mutex  // one NextKeys at a time: two must not reuse one key
}

// rediscoverAfter bounds how often a request that finds none of its keys
// makes the agent search the tokens again.
const rediscoverAfter = time.Second

// discover searches the tokens of the held controller keys for their next
// keys (see FindNext) and holds those not held yet, with the policy of the
// key they were found beside. It searches once, then again only when again
// is set and the last search is older than rediscoverAfter. It reports
// whether it added a key.
func (a *Agent) discover(ctx context.Context, again bool) bool {
	maker, ok := a.opener.(nextKeyMaker)
	if !ok {
		return false
	}
	if a.disc.done.Load() && !again {
		return false
	}
	a.disc.mu.Lock()
	defer a.disc.mu.Unlock()
	if a.disc.done.Load() && (!again || time.Since(a.disc.last) < rediscoverAfter) {
		return false
	}
	type candidate struct {
		uri     string
		parents []*key
	}
	found := map[string]*candidate{} // by public key
	var order []string
	for _, k := range a.held() {
		if !k.spec.Has(UseKERI) {
			continue
		}
		keys, err := onToken(ctx, a.sched, k.token, func(ctx context.Context) ([]foundKey, error) {
			return maker.FindNext(ctx, k.spec.URI)
		})
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			a.log.Debug("next keys not searched", "key", k.uri, "err", err)
		}
		for _, f := range keys {
			c := found[f.key]
			if c == nil {
				c = &candidate{uri: f.uri}
				found[f.key] = c
				order = append(order, f.key)
			}
			c.parents = append(c.parents, k)
		}
	}
	// A key of the config may be a next key found here under another
	// URI (without its id=, say): its public key tells. Opening it logs in
	// as the first request (whose keys are being found) would anyway.
	for _, k := range a.held() {
		if k.spec.Has(UseKERI) {
			if _, err := a.verferOf(ctx, k); err != nil && ctx.Err() != nil {
				return false
			}
		}
	}
	a.readPublicKeys(ctx)
	added := false
	for _, pub := range order {
		c := found[pub]
		p := c.parents[0]
		if slices.ContainsFunc(c.parents[1:], func(q *key) bool { return !samePolicy(p.spec, q.spec) }) {
			// Found beside keys with different policies (PIV: one card):
			// no policy is the right one to inherit.
			a.log.Warn("next key not held: the keys it was found beside have different policies", "key", hsm.RedactURI(c.uri))
			continue
		}
		if a.addNext(p, c.uri, pub) {
			added = true
		}
	}
	a.disc.last = time.Now()
	a.disc.done.Store(true)
	return added
}

// publicKeyReader reads a key's public key without a PIN.
type publicKeyReader interface {
	PublicKey(ctx context.Context, uri string) (string, error)
}

// readPublicKeys reads, without a PIN, the public key of every held key
// not opened yet, SSH keys too: a key found on a token may be one of them
// under another URI (an SSH key in a retired PIV slot, a config key named
// by id=), and must not be held again as a controller key with another
// key's policy.
func (a *Agent) readPublicKeys(ctx context.Context) {
	r, ok := a.opener.(publicKeyReader)
	if !ok {
		return
	}
	for _, k := range a.held() {
		k.mu.Lock()
		known := k.opened || k.tokenPub != ""
		k.mu.Unlock()
		if known {
			continue
		}
		pub, err := onToken(ctx, a.sched, k.token, func(ctx context.Context) (string, error) {
			return r.PublicKey(ctx, k.spec.URI)
		})
		if err != nil {
			a.log.Debug("public key not read", "key", k.uri, "err", err)
			continue
		}
		k.mu.Lock()
		k.tokenPub = pub
		k.mu.Unlock()
	}
}

// samePolicy reports whether two keys may sign for the same identities.
func samePolicy(x, y KeySpec) bool {
	a, b := slices.Clone(x.Identities), slices.Clone(y.Identities)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// addNext holds the key uri names (public key pub), a next key found or
// made beside parent: a controller key only (never an SSH key), allowed
// for the identities parent is. A key held already (same public key or
// URI) is not added again, nor one while a held key on its token has no
// known public key (it may be that key). It reports whether it added the key.
func (a *Agent) addNext(parent *key, uri, pub string) bool {
	v, err := kel.ParseVerfer(pub)
	if err != nil {
		return false
	}
	tok, err := TokenOf(uri)
	if err != nil {
		return false
	}
	// MakeNext and FindNext write URIs without pin-value: the next key
	// logs in with parent's PIN as parent does.
	uri = hsm.InheritPINValue(uri, parent.spec.URI)
	red := hsm.RedactURI(uri)
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	unknown := ""
	for _, k := range a.keys {
		if k.uri == red {
			return false
		}
		k.mu.Lock()
		same := k.opened && k.verfer.QB64() == pub || k.tokenPub == pub
		if !k.opened && k.tokenPub == "" && k.token == tok {
			unknown = k.uri
		}
		k.mu.Unlock()
		if same {
			return false
		}
	}
	if unknown != "" {
		// A held key on this token whose public key is not known (not
		// readable without a PIN, and its PIN prompt was cancelled, say)
		// may be this very key under another URI (named by id= only):
		// held again with parent's policy, it would sign for identities
		// its own policy denies. A later search holds it once that key
		// is open.
		a.log.Warn("next key not held yet: the public key of a held key on its token is not known", "key", red, "unknown", unknown)
		return false
	}
	spec := KeySpec{URI: uri, Uses: []Use{UseKERI}, Identities: slices.Clone(parent.spec.Identities)}
	// The public key is known from the token: matching an event's key
	// list needs no login; signing opens the key.
	a.keys = append(a.keys, &key{spec: spec, uri: red, token: tok, verfer: v, opened: true, nextOf: parent.uri})
	a.log.Debug("next key held", "key", red, "public", pub, "beside", parent.uri)
	return true
}

// NextKeysSpec is a request for the next keys of an id create or rotate.
type NextKeysSpec struct {
	// Prefix is the identity rotated; empty for an inception.
	Prefix string
	// Keys are the new current keys (CESR), each a controller key the
	// agent holds.
	Keys []string
	// Registry is the client's registry directory; when given, it must be
	// the agent's.
	Registry string
	// NextDigests are next-key digests the event commits to besides the
	// keys made here (given next keys, other members' keys): a key they
	// name is in use and never reused.
	NextDigests []string
	// Generate asks for a next key beside each of Keys; without it only
	// the checks run.
	Generate bool
	// Contribution: the keys are a member's contribution (id contribute)
	// to an inception or rotation built elsewhere, with Prefix empty; the
	// checks are those of an inception.
	Contribution bool
}

// NextKey is a next key made or found beside a current key.
type NextKey struct {
	URI       string `json:"uri"` // without PIN attributes
	PublicKey string `json:"public_key"`
	Reused    bool   `json:"reused,omitempty"` // made by an earlier attempt that could not use it
}

// NextKeys checks that every key of spec is a controller key the agent
// holds and that its policy allows for the identity (an inception by a key
// restricted to named identities is refused: the new prefix cannot be
// among them), and then, with Generate, makes a next key beside each on
// its token (see NextPKCS11 and NextPIV; a key an earlier attempt made and
// no identity uses is reused), holds it from then on and returns them in
// the order of spec.Keys. Everything is checked before a key is made.
func (a *Agent) NextKeys(ctx context.Context, spec NextKeysSpec) ([]NextKey, error) {
	const op = "next-keys"
	out, err := a.nextKeys(ctx, op, spec)
	var re *RefusedError
	if errors.As(err, &re) {
		a.log.Warn("refused", "op", op, "peer", PeerOf(ctx).PID, "reason", re.Reason)
		a.record(ctx, AuditRecord{Op: op, Prefix: spec.Prefix, Refused: re.Reason.Error()})
	}
	return out, err
}

func (a *Agent) nextKeys(ctx context.Context, op string, spec NextKeysSpec) ([]NextKey, error) {
	if a.reg == nil {
		return nil, refuse(op, ErrNoRegistry, "the agent has no registry (--registry)")
	}
	if spec.Registry != "" && a.regDir != "" && !sameDir(spec.Registry, a.regDir) {
		return nil, refuse(op, ErrOtherRegistry, "the agent's registry is %s, not %s", a.regDir, spec.Registry)
	}
	if len(spec.Keys) == 0 {
		return nil, refuse(op, ErrNoKey, "no keys")
	}
	a.disc.gen.Lock()
	defer a.disc.gen.Unlock()
	snap, err := a.reg.Snapshot()
	if err != nil {
		return nil, err
	}
	inUse, err := keysInUse(snap)
	if err != nil {
		return nil, err
	}
	if err := a.pendingInUse(ctx, inUse); err != nil {
		return nil, err
	}
	var st *kel.KeyState
	if spec.Prefix != "" {
		st, err = snap.KeyState(spec.Prefix)
		if errors.Is(err, registry.ErrNotFound) {
			return nil, refuse(op, ErrNotNext, "identity %s has no KEL in the registry", spec.Prefix)
		}
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", spec.Prefix, err)
		}
	}
	keys := make([]*key, len(spec.Keys))
	for i, pub := range spec.Keys {
		k, err := a.heldKERI(ctx, pub)
		if err != nil {
			return nil, err
		}
		if k == nil {
			return nil, refuse(op, ErrNoKey, "key %d (%s) is not a controller key this agent holds", i, pub)
		}
		if err := a.allowsNext(op, spec, st, k, pub); err != nil {
			return nil, err
		}
		keys[i] = k
		inUse[pub] = true
	}
	for _, d := range spec.NextDigests {
		inUse[d] = true
	}
	// An SSH key of the config is never made a next key of anything.
	for _, h := range a.held() {
		if h.spec.Has(UseKERI) {
			continue
		}
		h.mu.Lock()
		if h.opened {
			inUse[h.verfer.QB64()] = true
		}
		if h.tokenPub != "" {
			inUse[h.tokenPub] = true
		}
		h.mu.Unlock()
	}
	return a.makeNext(ctx, op, spec, keys, inUse)
}

// allowsNext checks a next-keys request for held key k (public key pub)
// against the policy of k and of every other held copy of the same key:
// a key held twice (a config key and a next key found under another URI)
// answers to the strictest of its policies.
func (a *Agent) allowsNext(op string, spec NextKeysSpec, st *kel.KeyState, k *key, pub string) error {
	for _, ks := range append([]KeySpec{k.spec}, a.specsOf(pub)...) {
		if err := allowsNextBy(op, spec, st, k.uri, ks, pub); err != nil {
			return err
		}
	}
	return nil
}

// specsOf returns the specs of the held controller keys known to have the
// public key pub.
func (a *Agent) specsOf(pub string) []KeySpec {
	var out []KeySpec
	for _, h := range a.held() {
		if !h.spec.Has(UseKERI) {
			continue
		}
		h.mu.Lock()
		same := h.opened && h.verfer.QB64() == pub || h.tokenPub == pub
		h.mu.Unlock()
		if same {
			out = append(out, h.spec)
		}
	}
	return out
}

// allowsNextBy is the check of allowsNext for one policy ks of the key
// named uri.
func allowsNextBy(op string, spec NextKeysSpec, st *kel.KeyState, uri string, ks KeySpec, pub string) error {
	switch {
	case spec.Prefix == "" && len(ks.Identities) > 0 && spec.Contribution:
		// The contribution names no identity: it may go to an
		// inception, whose prefix cannot be among those named.
		return refuse(op, ErrPolicy, "key %s may sign only for the identities its policy names; it cannot contribute to an event for an identity not named (as it cannot incept one)", uri)
	case spec.Prefix == "" && len(ks.Identities) > 0:
		return refuse(op, ErrPolicy, "key %s may sign only for the identities its policy names; it cannot incept a new identity", uri)
	case spec.Prefix != "" && !ks.Allows(spec.Prefix):
		return refuse(op, ErrPolicy, "key %s may not sign for identity %s", uri, spec.Prefix)
	case st != nil && st.KeyIndex(pub) >= 0:
		return refuse(op, ErrNotNext, "key %s is a current key of %s; rotate to its pre-committed next keys", uri, spec.Prefix)
	}
	return nil
}

// makeNext makes (or reuses) a next key beside each of keys, none of them
// in inUse.
func (a *Agent) makeNext(ctx context.Context, op string, spec NextKeysSpec, keys []*key, inUse map[string]bool) ([]NextKey, error) {
	if !spec.Generate {
		return nil, nil
	}
	maker, ok := a.opener.(nextKeyMaker)
	if !ok {
		return nil, refuse(op, ErrUnsupported, "this agent cannot make keys on its tokens")
	}
	used := func(key string) bool { return inUse[key] || inUse[kel.NextKeyDigest(key)] }
	var out []NextKey
	for _, k := range keys {
		v, err := a.verferOf(ctx, k)
		if err != nil {
			return nil, leftovers(out, fmt.Errorf("%s: %w", k.uri, err))
		}
		type made struct {
			uri, key string
			reused   bool
		}
		m, err := onToken(ctx, a.sched, k.token, func(ctx context.Context) (made, error) {
			u, key, reused, err := maker.MakeNext(ctx, k.spec.URI, v.Algorithm(), used)
			return made{u, key, reused}, err
		})
		if err != nil {
			a.pinRefused(err)
			return nil, leftovers(out, err)
		}
		inUse[m.key] = true
		a.addNext(k, m.uri, m.key)
		out = append(out, NextKey{URI: hsm.RedactURI(m.uri), PublicKey: m.key, Reused: m.reused})
		a.log.Info("next key", "beside", k.uri, "key", hsm.RedactURI(m.uri), "public", m.key, "reused", m.reused)
	}
	return out, nil
}

// leftovers names, in err, the next keys made before it: they stay on
// their tokens and a retry reuses them.
func leftovers(made []NextKey, err error) error {
	if len(made) == 0 {
		return err
	}
	var uris []string
	for _, n := range made {
		uris = append(uris, n.URI)
	}
	return fmt.Errorf("%w (left unused on the tokens: %s; a retry reuses them)", err, strings.Join(uris, ", "))
}

// heldKERI returns the held controller key with public key pub, searching
// the tokens for next keys once more when none is held; nil when none.
// Keys whose public key is known are looked at first, so that finding one
// key does not log in to every token (and prompt for its PIN).
func (a *Agent) heldKERI(ctx context.Context, pub string) (*key, error) {
	a.discover(ctx, false)
	for attempt := 0; attempt < 2; attempt++ {
		for _, open := range []bool{false, true} {
			for _, k := range a.held() {
				if !k.spec.Has(UseKERI) {
					continue
				}
				k.mu.Lock()
				known := k.opened
				k.mu.Unlock()
				if known == open {
					continue // known keys in the first pass, the others in the second
				}
				v, err := a.verferOf(ctx, k)
				if err != nil {
					if ctx.Err() != nil {
						return nil, err
					}
					continue
				}
				if v.QB64() == pub {
					return k, nil
				}
			}
		}
		if !a.discover(ctx, true) {
			break
		}
	}
	return nil, nil
}

// keysInUse returns the current keys and next-key digests of every
// identity in snap.
func keysInUse(snap *registry.Snapshot) (map[string]bool, error) {
	uses := map[string]bool{}
	prefixes, err := snap.Prefixes()
	if err != nil {
		return nil, err
	}
	for _, p := range prefixes {
		st, err := snap.KeyState(p)
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", p, err)
		}
		for _, k := range st.CurrentKeys {
			uses[k] = true
		}
		for _, d := range st.NextCommitment {
			uses[d] = true
		}
	}
	return uses, nil
}

// pendingInUse adds the keys and next-key digests of the establishment
// events waiting as proposals in the agent's registry (after a pull, those
// of other machines too): a next key a proposal commits to is taken before
// it is committed, so a retry never hands it out again.
func (a *Agent) pendingInUse(ctx context.Context, uses map[string]bool) error {
	list, err := anchor.New(a.reg, anchor.WithClock(a.clock)).List(ctx)
	if err != nil {
		return fmt.Errorf("pending proposals: %w", err)
	}
	for _, pd := range list {
		if pd.Proposal == nil || pd.Err != nil || !pd.Proposal.Event().IsEstablishment() {
			continue
		}
		e := pd.Proposal.Event()
		for _, k := range e.Keys {
			uses[k] = true
		}
		for _, d := range e.NextDigests {
			uses[d] = true
		}
	}
	return nil
}

// sameDir reports whether two paths name one directory.
func sameDir(x, y string) bool {
	fx, err := os.Stat(x)
	if err != nil {
		return false
	}
	fy, err := os.Stat(y)
	if err != nil {
		return false
	}
	return os.SameFile(fx, fy)
}
