package main

// This file holds `id create` and `id rotate` through the agent, when one
// answers on $AUTHS_AGENT_SOCK (and --no-agent is not given): the agent
// holds the tokens, so the keys are named by URI here and found among the
// agent's keys, the agent makes the next keys beside them
// (next-keys@auths.dev) and then builds, signs and commits the event
// (id-create@auths.dev, id-rotate@auths.dev). The checks of idcheck.go run
// as on the direct path, and the output and exit statuses are the same.

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
	"github.com/auths-dev/auths-agent/socket"
)

// idViaAgent runs id create (st nil) or id rotate (st the identity's key
// state) through the agent. openReg, for id create, opens (or with --init
// creates) the registry. done reports whether an agent answered.
// Contributed keys follow the --key keys, their next digests the next keys
// the agent makes; the agent signs with the keys it holds and saves the
// event as a proposal for the others. Without a --key, nothing would be
// signed here: the direct path proposes the event without a token.
func idViaAgent(c *cli.Context, env *cliEnv, st *kel.KeyState, uris []keyRef, contribs []contribution, nextURIs []keyRef, kt, nt kel.Threshold,
	openReg func() (*registry.Registry, error)) (done bool, err error) {
	if c.Bool("no-agent") || len(uris) == 0 {
		return false, nil
	}
	cl, err := dialAgent(c, env, false)
	if cl == nil || err != nil {
		return false, err
	}
	defer cl.Close()
	cmd := commandPath(c)
	held, keys, err := heldKeys(c.Context, cmd, cl, uris)
	if err != nil {
		return true, err
	}
	all, err := memberKeys(c, env, uris, keys, contribs)
	if err != nil {
		return true, err
	}
	prefix := ""
	if st != nil {
		prefix = st.Prefix
		for i, k := range all {
			if st.KeyIndex(k) >= 0 {
				return true, negativeErr("%s: %s is a current key of %s; rotate to its pre-committed next keys", cmd, keyOrContribution(uris, contribs, i), prefix)
			}
		}
	}
	regDir, err := filepath.Abs(c.String("registry"))
	if err != nil {
		return true, usageErr("%s: --registry: %v", cmd, err)
	}
	inUse, err := keysInUse(env, c.String("registry"), keys)
	if err != nil {
		return true, err
	}
	if err := checkContributedNext(c, env, contribs, inUse); err != nil {
		return true, err
	}
	if err := pendingInUse(c, env, inUse); err != nil {
		return true, err
	}
	req := socket.NextKeysRequest{Prefix: prefix, Keys: keys, Registry: regDir}
	var nk nextKeySet
	defer func() { nk.reportLeftovers(env, cmd, err) }()
	if len(nextURIs) > 0 {
		if nk.keys, err = givenNextKeys(c, held, nextURIs, inUse); err != nil {
			return true, err
		}
		for _, k := range nk.keys {
			req.NextDigests = append(req.NextDigests, kel.NextKeyDigest(k))
		}
		// The agent checks the keys and its policy; it makes nothing.
		if _, err := cl.NextKeys(c.Context, req); err != nil {
			return true, agentErr(cmd, err)
		}
	} else {
		req.Generate = true
		next, err := cl.NextKeys(c.Context, req)
		if err != nil {
			return true, agentErr(cmd, err)
		}
		if len(next) != len(keys) {
			return true, usageErr("%s: agent: %d next keys for %d keys", cmd, len(next), len(keys))
		}
		nk.addMade(env, next)
	}
	idReq := socket.IDRequest{Prefix: prefix, Keys: all, Threshold: thresholdText(kt), NextThreshold: thresholdText(nt)}
	if len(contribs) == 0 {
		idReq.NextKeys = nk.keys
	} else {
		// The agent lists next_digests before next_keys: all as digests,
		// in key-list order.
		for _, k := range nk.keys {
			idReq.NextDigests = append(idReq.NextDigests, kel.NextKeyDigest(k))
		}
		idReq.NextDigests = append(idReq.NextDigests, contributedNext(contribs)...)
	}
	var res *agent.AnchorResult
	if st == nil {
		if _, err = openReg(); err != nil {
			return true, err
		}
		res, err = cl.IDCreate(c.Context, idReq)
	} else {
		fmt.Fprintf(env.stderr, "auths-agent: %s: %s s=%x: kt %s of %d keys (was %s of %d), next %s of %d\n",
			cmd, prefix, st.Sequence+1, kt.Text(), len(all), st.Threshold.Text(), len(st.CurrentKeys), nt.Text(), len(nk.keys)+len(contribs))
		res, err = cl.IDRotate(c.Context, idReq)
	}
	if err != nil {
		err = agentErr(cmd, err)
		return true, err
	}
	switch {
	case !res.Committed:
		fmt.Fprintf(env.stdout, "pending %s %s: %s\n", res.Prefix, res.SAID, res.Needs)
	case st == nil:
		fmt.Fprintln(env.stdout, res.Prefix)
	default:
		fmt.Fprintf(env.stdout, "committed %s s=%x %s\n", res.Prefix, res.Sn, res.SAID)
	}
	return true, nil
}

// thresholdText is t in the JSON form the agent parses back exactly.
func thresholdText(t kel.Threshold) string {
	raw, err := t.MarshalJSON()
	if err != nil {
		return t.Text()
	}
	return string(raw)
}

// agentKeys finds the controller key each URI names among the agent's
// keys (URIs compare without their PIN attributes) and returns their CESR
// public keys, refusing a key the agent does not hold and two URIs that
// name one key.
// heldKeys asks the agent for the keys it holds and returns them with the
// CESR keys of the --key URIs, each of which must be one of them.
func heldKeys(ctx context.Context, cmd string, cl *socket.Client, uris []keyRef) ([]agent.KeyInfo, []string, error) {
	held, err := cl.Keys(ctx)
	if err != nil {
		return nil, nil, agentErr(cmd, err)
	}
	keys, err := agentKeys(cmd, "key", held, uris)
	return held, keys, err
}

func agentKeys(cmd, flag string, held []agent.KeyInfo, uris []keyRef) ([]string, error) {
	var keys []string
	for i, u := range uris {
		ki := heldKey(held, u)
		if ki == nil {
			return nil, usageErr("%s: --%s %s is not a controller key the agent holds (auths-agent agent keys lists them; --no-agent opens the token directly)", cmd, flag, u)
		}
		if ki.Error != "" {
			return nil, negativeErr("%s: --%s %s: agent: %s", cmd, flag, u, oneLine(ki.Error))
		}
		if j := slices.Index(keys, ki.PublicKey); j >= 0 {
			return nil, usageErr("%s: key listed twice: %s and %s are the same key %s", cmd, uris[j], uris[i], ki.PublicKey)
		}
		keys = append(keys, ki.PublicKey)
	}
	return keys, nil
}

// heldKey returns the agent's controller key u names, or nil. u selects
// as a query does: every attribute it gives must be the key's (the agent
// names the next keys it made with their id=, the user may not); PIN
// attributes are left out. A URI that names several held keys names none.
func heldKey(held []agent.KeyInfo, u keyRef) *agent.KeyInfo {
	var found *agent.KeyInfo
	for i, ki := range held {
		if !slices.Contains(ki.Uses, agent.UseKERI) {
			continue
		}
		r, err := parseKeyRef(ki.URI)
		if err != nil || !u.selects(r) {
			continue
		}
		if found != nil {
			return nil
		}
		found = &held[i]
	}
	return found
}

// selects reports whether every attribute r gives that names a key (not
// a PIN) is k's.
func (r keyRef) selects(k keyRef) bool {
	eq := func(q, v string) bool { return q == "" || q == v }
	switch {
	case r.pkcs11 != nil && k.pkcs11 != nil:
		q, v := r.pkcs11, k.pkcs11
		return eq(q.ModulePath, v.ModulePath) && eq(q.Token, v.Token) && eq(q.Serial, v.Serial) &&
			eq(q.Manufacturer, v.Manufacturer) && eq(q.Model, v.Model) && eq(q.Object, v.Object) &&
			eq(q.Type, v.Type) && (!q.HasID || v.HasID && bytes.Equal(q.ID, v.ID))
	case r.piv != nil && k.piv != nil:
		q, v := r.piv, k.piv
		return q.Slot == v.Slot && (!q.HasSerial || !v.HasSerial || q.Serial == v.Serial)
	}
	return false
}

// addMade takes the next keys the agent made (or reused), naming each on
// stderr as the direct path does.
func (nk *nextKeySet) addMade(env *cliEnv, next []agent.NextKey) {
	for i, n := range next {
		if n.Reused {
			fmt.Fprintf(env.stderr, "auths-agent: next key for key %d: %s (reused: an earlier attempt left it unused)\n", i, n.URI)
		} else {
			fmt.Fprintf(env.stderr, "auths-agent: next key for key %d: %s\n", i, n.URI)
		}
		nk.generated = append(nk.generated, n.URI)
		nk.keys = append(nk.keys, n.PublicKey)
	}
}

// givenNextKeys returns the public keys of the --next-key URIs, each a
// key the agent holds (a controller key, or a next key it found on its
// tokens). One it does not hold is refused rather than opened here: the
// agent holds its tokens exclusively (a PIV card is busy), and --no-agent
// opens tokens directly. A next key that a current key or an identity uses
// is refused, as on the direct path.
func givenNextKeys(c *cli.Context, held []agent.KeyInfo, nextURIs []keyRef, inUse keyUses) ([]string, error) {
	cmd := commandPath(c)
	var nkeys []string
	for i, u := range nextURIs {
		ki := heldKey(held, u)
		if ki == nil {
			return nil, usageErr("%s: --next-key %s is not a key the agent holds (auths-agent agent keys lists them; --no-agent opens the token directly)", cmd, u)
		}
		if ki.Error != "" {
			return nil, negativeErr("%s: --next-key %s: agent: %s", cmd, u, oneLine(ki.Error))
		}
		k := ki.PublicKey
		if j := slices.Index(nkeys, k); j >= 0 {
			return nil, usageErr("%s: key listed twice: %s and %s are the same key %s", cmd, nextURIs[j], nextURIs[i], k)
		}
		if how, ok := inUse.used(k); ok {
			return nil, negativeErr("%s: --next-key %s is %s: a next key must be a key no identity uses yet", cmd, u, how)
		}
		nkeys = append(nkeys, k)
	}
	return nkeys, nil
}
