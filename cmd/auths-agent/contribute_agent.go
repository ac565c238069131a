package main

// This file holds `id contribute` through the agent, when one answers on
// $AUTHS_AGENT_SOCK (and --no-agent is not given): the agent holds the
// member's token (a PIV card it holds is busy for any other process), so
// --key names a key the agent holds, and the agent checks it (a key
// restricted to named identities does not contribute, as it does not
// incept) and makes the next key beside it (next-keys@auths.dev with
// "contribution"). The line, stderr and exit statuses are the direct
// path's.

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
	"github.com/auths-dev/auths-agent/socket"
)

// contributeViaAgent prints the contribution of --key through the agent.
// done reports whether an agent answered.
func contributeViaAgent(c *cli.Context, env *cliEnv, reg *registry.Registry, dir string, uris, nextURIs []keyRef) (done bool, err error) {
	if c.Bool("no-agent") {
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
	inUse, err := keysInUse(env, dir, keys)
	if err != nil {
		return true, err
	}
	if err := pendingKeysInUse(c.Context, reg, inUse); err != nil {
		return true, registryErr(dir, err)
	}
	regDir, err := filepath.Abs(dir)
	if err != nil {
		return true, usageErr("%s: --registry: %v", cmd, err)
	}
	if how, ok := inUse[kel.NextKeyDigest(keys[0])]; ok {
		fmt.Fprintf(env.stderr, "auths-agent: %s: --key %s is %s: it becomes a current key when the event that takes this contribution is committed\n", cmd, uris[0], how)
	}
	req := socket.NextKeysRequest{Keys: keys, Registry: regDir, Contribution: true}
	var nk nextKeySet
	defer func() { nk.reportLeftovers(env, cmd, err) }()
	if len(nextURIs) > 0 {
		if nk.keys, err = givenNextKeys(c, held, nextURIs, inUse); err != nil {
			return true, err
		}
		req.NextDigests = []string{kel.NextKeyDigest(nk.keys[0])}
		// The agent checks the key, its policy and the registry; it makes
		// nothing.
		if _, err = cl.NextKeys(c.Context, req); err != nil {
			return true, agentErr(cmd, err)
		}
	} else {
		req.Generate = true
		next, err := cl.NextKeys(c.Context, req)
		if err != nil {
			return true, agentErr(cmd, err)
		}
		if len(next) != 1 {
			return true, usageErr("%s: agent: %d next keys for 1 key", cmd, len(next))
		}
		nk.addMade(env, next)
	}
	contrib, err := kel.NewContribution(keys[0], nk.keys[0])
	if err != nil {
		return true, usageErr("%s: %s", cmd, oneLine(err.Error()))
	}
	fmt.Fprintln(env.stdout, contrib.String())
	return true, nil
}
