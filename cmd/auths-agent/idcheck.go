package main

// This file holds what keeps `id create` and `id rotate` from hurting an
// identity: next keys that would repeat a current key are refused, the keys
// the registry already uses are known before a next key is chosen, and next
// keys an attempt generated but could not use are named, and reused by the
// next attempt instead of piling up on the token.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// checkNextURIs refuses a --next-key that is also a --key, before anything
// is opened: a next key that is a current key would let whoever holds it
// rotate alone, and leaves no unexposed key to rotate to.
func checkNextURIs(c *cli.Context, uris, nextURIs []keyRef) error {
	cur := map[string]int{}
	for i, u := range uris {
		cur[u.String()] = i
	}
	for _, u := range nextURIs {
		if i, ok := cur[u.String()]; ok {
			return cmdUsageErr(c, "%s: --next-key %s is also --key %d: a next key must not be a current key (the identity could never rotate to a key not yet exposed)",
				commandPath(c), u, i)
		}
	}
	return nil
}

// keyUses says, for a CESR public key or a next-key digest, which identity
// uses it and how.
type keyUses map[string]string

// used tells whether key (CESR) is a key of this command or a current or
// next key of an identity in the registry, and how.
func (u keyUses) used(key string) (string, bool) {
	if how, ok := u[key]; ok {
		return how, true
	}
	how, ok := u[kel.NextKeyDigest(key)]
	return how, ok
}

// keysInUse collects the current keys and next-key digests of every
// identity in the registry at dir (none when there is no registry yet), and
// the command's own current keys.
func keysInUse(env *cliEnv, dir string, own []string) (keyUses, error) {
	uses := keyUses{}
	for i, k := range own {
		uses[k] = fmt.Sprintf("--key %d of this command", i)
	}
	r, err := registry.Open(dir, registryOptions(env)...)
	if err != nil {
		return uses, nil // a registry to be created: nothing in use yet
	}
	snap, err := r.Snapshot()
	if errors.Is(err, registry.ErrNoRegistry) {
		return uses, nil
	}
	if err != nil {
		return nil, registryErr(dir, err)
	}
	prefixes, err := snap.Prefixes()
	if err != nil {
		return nil, registryErr(dir, err)
	}
	for _, p := range prefixes {
		st, err := snap.KeyState(p)
		if err != nil {
			return nil, registryErr(dir, err)
		}
		for i, k := range st.CurrentKeys {
			uses[k] = fmt.Sprintf("current key %d of %s", i, p)
		}
		for i, d := range st.NextCommitment {
			uses[d] = fmt.Sprintf("next key %d of %s", i, p)
		}
	}
	return uses, nil
}

// pendingInUse adds to uses the keys and next-key digests of the
// proposals waiting in the registry of --registry, when it exists
// (pendingKeysInUse): a next key a waiting inception or rotation commits
// to is not reused for another identity. It runs after
// checkContributedNext, which words its refusal of a pending digest itself.
func pendingInUse(c *cli.Context, env *cliEnv, uses keyUses) error {
	dir := c.String("registry")
	reg, err := registry.Open(dir, registryOptions(env)...)
	if err != nil {
		return nil // a registry to be created: nothing waits in it
	}
	if err := pendingKeysInUse(c.Context, reg, uses); err != nil {
		return registryErr(dir, err)
	}
	return nil
}

// nextKeySet is the next keys of one id create or rotate: their CESR keys,
// and which of them this attempt generated (to name them if it fails).
type nextKeySet struct {
	keys      []string
	generated []string // URIs, without PIN attributes
}

// collect opens the --next-key URIs, or makes a next key beside each
// current key (reusing one an earlier attempt left unused). A next key that
// is a current key, or that is already committed to by an identity, is
// refused.
func (nk *nextKeySet) collect(c *cli.Context, ts *tokenSet, uris, nextURIs []keyRef, signers []hsm.Signer, inUse keyUses) error {
	cmd := commandPath(c)
	if len(nextURIs) > 0 {
		_, nkeys, err := ts.open(c.Context, cmd, nextURIs)
		if err != nil {
			return err
		}
		for i, k := range nkeys {
			if how, ok := inUse.used(k); ok {
				return negativeErr("%s: --next-key %s is %s: a next key must be a key no identity uses yet", cmd, nextURIs[i], how)
			}
		}
		nk.keys = nkeys
		return nil
	}
	for i, u := range uris {
		v, _ := hsm.Verfer(signers[i])
		nu, key, reused, err := ts.generateNext(c.Context, u, v.Algorithm(), inUse)
		if err != nil {
			return keyErrMsg(cmd, err)
		}
		if reused {
			fmt.Fprintf(ts.env.stderr, "auths-agent: next key for key %d: %s (reused: an earlier attempt left it unused)\n", i, nu)
		} else {
			fmt.Fprintf(ts.env.stderr, "auths-agent: next key for key %d: %s\n", i, nu)
		}
		nk.generated = append(nk.generated, nu)
		nk.keys = append(nk.keys, key)
		inUse[key] = fmt.Sprintf("next key %d of this command", i)
	}
	return nil
}

// reportLeftovers names the next keys this attempt made when it failed:
// they stay on their tokens, unused, and a retry reuses them.
func (nk *nextKeySet) reportLeftovers(env *cliEnv, cmd string, err error) {
	if err == nil || len(nk.generated) == 0 {
		return
	}
	fmt.Fprintf(env.stderr, "auths-agent: %s: left unused on the tokens: %s (a retry reuses them; or remove them with auths-agent key delete --yes URI)\n",
		cmd, strings.Join(nk.generated, ", "))
}
