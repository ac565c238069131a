package main

// This file holds members whose tokens are on other machines: `id
// contribute` prints a member's contribution line (its current key and the
// digest of a next key that stays on its token), and `id create` and `id
// rotate` take such lines with --contribution beside their local --key
// URIs. The event is then signed by the local keys and waits as a proposal
// for the others (pending pull, pending sign, pending push).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// maxContributionFile bounds a --contribution-file: lines of at most
// kel.MaxContributionLen bytes, for a few hundred members.
const maxContributionFile = 64 << 10

func contributeCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "contribute",
		Usage: "print this member's contribution line (current key, digest of a new next key) for an id create or rotate run elsewhere",
		Description: "The line is " + kel.ContributionTag + " key=KEY next=DIGEST: KEY is the\n" +
			"CESR public key of --key, DIGEST the Blake3-256 digest of a next key that\n" +
			"stays on the token. Without --next-key, the next key is generated beside\n" +
			"--key as id create does (PKCS#11: same label with -nextN; PIV: the next free\n" +
			"retired slot); one an earlier attempt generated and no identity or proposal\n" +
			"of --registry uses is reused, so a retry prints the same line. Pull first,\n" +
			"so that --registry knows the keys in use.\n" +
			"When an agent answers on $AUTHS_AGENT_SOCK, --key (and --next-key) name keys\n" +
			"it holds and it makes the next key (--no-agent opens the token here); a key\n" +
			"its policy restricts to named identities does not contribute, as it does not\n" +
			"incept.\n" +
			"For a rotation on another machine to this member's pre-committed next key,\n" +
			"give that next key as --key: it becomes the current key and signs with its\n" +
			"prior-next position.\n" +
			"The proposer passes the line to id create or id rotate with --contribution;\n" +
			"this member then signs the proposal with pending pull, pending sign, pending push.\n" +
			"Example of a line:\n" +
			"  " + kel.ContributionTag + " key=DHm1Vi6P5lT5QHixEuipi6eQH4U65pW-1-DjkQutBJZk next=EJboUfyXh1r0u8wGhOVkPwHacy5y8LYGzSaEGN-9d5xm",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "registry", Usage: "the registry's git repository `DIR` (a clone of the proposer's; its keys in use are never reused as next keys)", Required: true},
			newListFlag("key", "this member's current key `URI` (pkcs11: or piv:)"),
			newListFlag("next-key", "the next key's `URI`; default: a new key on --key's token"),
			noAgentFlag,
		},
		Action: func(c *cli.Context) error { return idContribute(c, env) },
	}
}

// idContribute prints the contribution of --key. Everything is checked
// before a next key is generated; one it generated and could not use is
// named on stderr (nextKeySet).
func idContribute(c *cli.Context, env *cliEnv) (err error) {
	if err := wantArgs(c); err != nil {
		return err
	}
	cmd := commandPath(c)
	uris, err := keyURIs(c, "key", true)
	if err != nil {
		return err
	}
	nextURIs, err := keyURIs(c, "next-key", false)
	if err != nil {
		return err
	}
	if len(uris) != 1 || len(nextURIs) > 1 {
		return cmdUsageErr(c, "%s: one --key and at most one --next-key (a member contributes one key)", cmd)
	}
	if err := checkNextURIs(c, uris, nextURIs); err != nil {
		return err
	}
	dir := c.String("registry")
	reg, err := openRegistry(env, dir)
	if err != nil {
		return usageErr("%s: %v", cmd, err)
	}
	if done, err := contributeViaAgent(c, env, reg, dir, uris, nextURIs); done {
		return err // through the agent (contribute_agent.go)
	}
	ts := newTokenSet(env)
	defer ts.Close()
	signers, keys, err := ts.open(c.Context, cmd, uris)
	if err != nil {
		return err
	}
	inUse, err := keysInUse(env, dir, keys)
	if err != nil {
		return err
	}
	if err := pendingKeysInUse(c.Context, reg, inUse); err != nil {
		return registryErr(dir, err)
	}
	if how, ok := inUse[kel.NextKeyDigest(keys[0])]; ok {
		fmt.Fprintf(env.stderr, "auths-agent: %s: --key %s is %s: it becomes a current key when the event that takes this contribution is committed\n", cmd, uris[0], how)
	}
	var nk nextKeySet
	defer func() { nk.reportLeftovers(env, cmd, err) }()
	if err = nk.collect(c, ts, uris, nextURIs, signers, inUse); err != nil {
		return err
	}
	contrib, err := kel.NewContribution(keys[0], nk.keys[0])
	if err != nil {
		return usageErr("%s: %s", cmd, oneLine(err.Error()))
	}
	fmt.Fprintln(env.stdout, contrib.String())
	return nil
}

// pendingKeysInUse adds the keys and next-key digests of the proposals
// waiting in reg (after a pull, those of the other machines too): a next
// key a proposal commits to is taken, even before it is committed.
func pendingKeysInUse(ctx context.Context, reg *registry.Registry, uses keyUses) error {
	if _, err := reg.Head(); errors.Is(err, registry.ErrNoRegistry) {
		return nil
	}
	all, err := anchor.New(reg).List(ctx)
	if err != nil {
		return err
	}
	for _, pd := range all {
		if pd.Proposal == nil || pd.Err != nil || !pd.Proposal.Event().IsEstablishment() {
			continue
		}
		e := pd.Proposal.Event()
		for i, k := range e.Keys {
			if _, ok := uses[k]; !ok {
				uses[k] = fmt.Sprintf("key %d of proposal %s %s", i, e.Prefix, e.SAID)
			}
		}
		for i, d := range e.NextDigests {
			if _, ok := uses[d]; !ok {
				uses[d] = fmt.Sprintf("next key %d of proposal %s %s", i, e.Prefix, e.SAID)
			}
		}
	}
	return nil
}

// contributionFlags are the flags of id create and id rotate that take
// members on other machines.
func contributionFlags() []cli.Flag {
	return []cli.Flag{
		newListFlag("contribution", "a member's `LINE` from `auths-agent id contribute` on its machine; repeat. Keys are in the order: --key URIs, then --contribution lines, then --contribution-file lines"),
		&cli.StringFlag{Name: "contribution-file", Usage: "a `FILE` of contribution lines, one per line (# comments and blank lines ignored), after the --contribution lines"},
	}
}

// contribution is one parsed --contribution and where it was given.
type contribution struct {
	kel.Contribution
	where string // "--contribution 2", "contributions.txt:3"
}

// contributions parses --contribution and --contribution-file, in that
// order, refusing a malformed line and a key or next digest given twice.
func contributions(c *cli.Context, env *cliEnv) ([]contribution, error) {
	cmd := commandPath(c)
	var out []contribution
	add := func(where, line string) error {
		ct, err := kel.ParseContribution(line)
		if err != nil {
			return cmdUsageErr(c, "%s: %s: %s", cmd, where, oneLine(err.Error()))
		}
		for _, o := range out {
			switch {
			case o.Key.QB64() == ct.Key.QB64():
				return cmdUsageErr(c, "%s: %s repeats the key of %s (%s)", cmd, where, o.where, ct.Key.QB64())
			case o.NextDigest == ct.NextDigest:
				return cmdUsageErr(c, "%s: %s repeats the next digest of %s (%s)", cmd, where, o.where, ct.NextDigest)
			case o.NextDigest == kel.NextKeyDigest(ct.Key.QB64()), ct.NextDigest == kel.NextKeyDigest(o.Key.QB64()):
				return cmdUsageErr(c, "%s: %s and %s: one's next digest commits to the other's current key (a next key must not be a current key)", cmd, o.where, where)
			}
		}
		out = append(out, contribution{Contribution: ct, where: where})
		return nil
	}
	for i, v := range listValues(c, "contribution") {
		if err := add(fmt.Sprintf("--contribution %d", i+1), v); err != nil {
			return nil, err
		}
	}
	if name := c.String("contribution-file"); name != "" {
		data, err := readInput(env, name, maxContributionFile)
		if err != nil {
			return nil, usageErr("%s: --contribution-file: %s", cmd, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, maxContributionFile+1)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSuffix(sc.Text(), "\r")
			if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			if err := add(fmt.Sprintf("%s:%d", shownName(name), n), line); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// memberKeys returns the key list of the event: the local keys in --key
// order, then the contributed keys in the order given. A contribution that
// repeats a local key, or whose next digest commits to one, is refused
// before any next key is generated. The order is printed on stderr, since
// indexes are what co-signers sign with.
func memberKeys(c *cli.Context, env *cliEnv, uris []keyRef, local []string, contribs []contribution) ([]string, error) {
	cmd := commandPath(c)
	keys := append([]string(nil), local...)
	for _, ct := range contribs {
		k := ct.Key.QB64()
		for i, l := range local {
			switch {
			case l == k:
				return nil, cmdUsageErr(c, "%s: %s repeats the key of --key %s (%s)", cmd, ct.where, uris[i], k)
			case ct.NextDigest == kel.NextKeyDigest(l):
				return nil, cmdUsageErr(c, "%s: %s: its next digest commits to the current key of --key %s (a next key must not be a current key)", cmd, ct.where, uris[i])
			}
		}
		keys = append(keys, k)
	}
	if len(contribs) > 0 {
		for i, u := range uris {
			fmt.Fprintf(env.stderr, "auths-agent: %s: key %d: %s (--key %d, signs here)\n", cmd, i, u, i+1)
		}
		for j, ct := range contribs {
			fmt.Fprintf(env.stderr, "auths-agent: %s: key %d: %s (%s, signs on its machine)\n", cmd, len(uris)+j, ct.Key.QB64(), ct.where)
		}
	}
	return keys, nil
}

// checkContributedNext refuses a contribution whose next digest an
// identity of the registry, a proposal waiting in it, or this command
// already uses, and marks the contributed keys and digests as taken, so
// that no local next key can repeat them.
func checkContributedNext(c *cli.Context, env *cliEnv, contribs []contribution, inUse keyUses) error {
	if len(contribs) == 0 {
		return nil
	}
	cmd := commandPath(c)
	pending := keyUses{}
	if reg, err := registry.Open(c.String("registry"), registryOptions(env)...); err == nil {
		if err := pendingKeysInUse(c.Context, reg, pending); err != nil {
			return registryErr(c.String("registry"), err)
		}
	}
	for _, ct := range contribs {
		if how, ok := digestUse(inUse, ct.NextDigest); ok {
			return negativeErr("%s: %s: its next digest is %s: a next key must be a key no identity uses yet (generate a new contribution)", cmd, ct.where, how)
		}
		if how, ok := pending[ct.NextDigest]; ok {
			return negativeErr("%s: %s: its next digest is %s: sign that proposal, or generate a new contribution", cmd, ct.where, how)
		}
	}
	for _, ct := range contribs {
		inUse[ct.Key.QB64()] = "the key of " + ct.where
		inUse[ct.NextDigest] = "the next key of " + ct.where
	}
	return nil
}

// digestUse tells whether d is a next-key digest in uses or the digest of a
// key in uses, and how it is used.
func digestUse(uses keyUses, d string) (string, bool) {
	if how, ok := uses[d]; ok {
		return how, true
	}
	for k, how := range uses {
		if _, err := kel.ParseVerfer(k); err == nil && kel.NextKeyDigest(k) == d {
			return how + " (the digest of that key)", true
		}
	}
	return "", false
}

// contributedNext returns the next digests of the contributions, in order.
func contributedNext(contribs []contribution) []string {
	var out []string
	for _, ct := range contribs {
		out = append(out, ct.NextDigest)
	}
	return out
}

// keyOrContribution names key i of memberKeys' list: its --key URI or the
// contribution it came from.
func keyOrContribution(uris []keyRef, contribs []contribution, i int) string {
	if i < len(uris) {
		return "--key " + uris[i].String()
	}
	return contribs[i-len(uris)].where
}
