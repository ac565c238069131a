package main

// This file holds `auths-agent id`: create and rotate multi-sig identities
// whose keys live on tokens (tokenset.go opens them; idcheck.go keeps a
// typo from hurting an identity), and the parsing of key URI flags.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
)

func idCommand(env *cliEnv) *cli.Command {
	keyFlags := func(thresholdUsage string) []cli.Flag {
		return append([]cli.Flag{
			&cli.StringFlag{Name: "registry", Usage: "the registry's git repository `DIR`", Required: true},
			newListFlag("key", "a current key's `URI` (pkcs11: or piv:), in key-list order; repeat"),
			&cli.StringFlag{Name: "threshold", Usage: thresholdUsage},
			newListFlag("next-key", "a next key's `URI`; default: a new key on each current key's token"),
			&cli.StringFlag{Name: "next-threshold", Usage: "next threshold `T` (default: the signing threshold)"},
			&cli.DurationFlag{Name: "expires", Value: anchor.DefaultTTL, Usage: "how long the event waits in escrow if not fully signed"},
			noAgentFlag,
		}, contributionFlags()...)
	}
	return &cli.Command{
		Name:  "id",
		Usage: "create and rotate identities whose controller keys live on tokens",
		Subcommands: []*cli.Command{
			contributeCommand(env),
			{
				Name:  "create",
				Usage: "incept a (multi-sig) identity with keys on tokens; print its prefix",
				Description: "T is N (signatures), a comma list of fractions for one weighted clause\n" +
					"(1/2,1/2,1/2), or JSON for several clauses ([[\"1/2\",\"1/2\"],[\"1\"]]).\n" +
					"Without --next-key, a next key is generated beside each current key:\n" +
					"PKCS#11: same label with -nextN; PIV: the next free retired slot (82-95).\n" +
					"Everything is checked before a key is generated; next keys an attempt\n" +
					"generated and could not use are named on stderr, and a retry reuses them\n" +
					"(on PIV, only a key whose slot certificate shows auths-agent made it).\n" +
					"A next key may not be a current key (the identity could never rotate).\n" +
					"When an agent answers on $AUTHS_AGENT_SOCK, --key names keys it holds and it\n" +
					"makes the next keys, signs and commits (--no-agent opens the tokens here).\n" +
					"--registry must hold a registry already, unless --init is given.\n" +
					"Members on other machines join with --contribution (see id contribute):\n" +
					"the key list is the --key keys, then the contributed keys; the event is\n" +
					"signed here and waits as a pending proposal for their signatures.",
				Flags:  append(keyFlags("signing threshold `T` (required)"), initFlag()),
				Action: func(c *cli.Context) error { return idCreate(c, env) },
			},
			{
				Name:  "rotate",
				Usage: "rotate to the pre-committed next keys (on their tokens)",
				Description: "The --key URIs are the new current keys in their new order; each that was\n" +
					"pre-committed signs with both its new index and its prior-next position.\n" +
					"--threshold defaults to the prior next threshold. Fewer keys than the\n" +
					"identity has or pre-committed (2-of-3 to 2-of-2) are refused unless\n" +
					"--threshold is given. The new kt-of-n is printed before the commit.\n" +
					"Through an agent as id create is (the agent holds the next keys it made).\n" +
					"--contribution adds keys held on other machines after the --key keys: a new\n" +
					"member's key, or a member's own pre-committed next key (id contribute\n" +
					"--key NEXTURI there); the rotation then waits for their signatures.",
				Flags: append(keyFlags("new signing threshold `T`"),
					&cli.StringFlag{Name: "id", Usage: "the identity's `PREFIX`", Required: true}),
				Action: func(c *cli.Context) error { return idRotate(c, env) },
			},
		},
	}
}

// idCreate checks everything it can (flags, thresholds, the registry, every
// key URI and its PIN, next keys that would repeat a current key) before it
// generates a key; keys it generated and could not use are named on stderr
// and a retry reuses them (see nextKeys).
func idCreate(c *cli.Context, env *cliEnv) (err error) {
	if err := wantArgs(c); err != nil {
		return err
	}
	cmd := commandPath(c)
	contribs, err := contributions(c, env)
	if err != nil {
		return err
	}
	uris, err := keyURIs(c, "key", len(contribs) == 0)
	if err != nil {
		return err
	}
	if c.String("threshold") == "" {
		return cmdUsageErr(c, "%s: --threshold is required", cmd)
	}
	kt, err := thresholdFlag(c, "threshold", len(uris)+len(contribs))
	if err != nil {
		return err
	}
	nextURIs, err := keyURIs(c, "next-key", false)
	if err != nil {
		return err
	}
	if err := checkNextURIs(c, uris, nextURIs); err != nil {
		return err
	}
	nNext := len(uris)
	if len(nextURIs) > 0 {
		nNext = len(nextURIs)
	}
	nt, err := nextThreshold(c, kt, nNext+len(contribs))
	if err != nil {
		return err
	}
	openReg, _, err := planRegistry(c, env, c.String("registry"))
	if err != nil {
		return err
	}
	if done, err := idViaAgent(c, env, nil, uris, contribs, nextURIs, kt, nt, openReg); done {
		return err // through the agent (id_agent.go)
	}
	ts := newTokenSet(env)
	defer ts.Close()
	signers, local, err := ts.open(c.Context, cmd, uris)
	if err != nil {
		return err
	}
	keys, err := memberKeys(c, env, uris, local, contribs)
	if err != nil {
		return err
	}
	inUse, err := keysInUse(env, c.String("registry"), local)
	if err != nil {
		return err
	}
	if err := checkContributedNext(c, env, contribs, inUse); err != nil {
		return err
	}
	if err := pendingInUse(c, env, inUse); err != nil {
		return err
	}
	var nk nextKeySet
	defer func() { nk.reportLeftovers(env, cmd, err) }()
	if err = nk.collect(c, ts, uris, nextURIs, signers, inUse); err != nil {
		return err
	}
	spec := kel.InceptionSpec{Keys: keys, Threshold: kt, NextThreshold: nt}
	for _, k := range nk.keys {
		spec.NextDigests = append(spec.NextDigests, kel.NextKeyDigest(k))
	}
	spec.NextDigests = append(spec.NextDigests, contributedNext(contribs)...)
	reg, err := openReg()
	if err != nil {
		return err
	}
	a := anchor.New(reg, anchor.WithTTL(c.Duration("expires")))
	p, err := a.Incept(c.Context, spec)
	if err != nil {
		return anchorErr(cmd, err)
	}
	err = signAndFinish(c.Context, env, cmd, a, p, signers)
	return err
}

// idRotate rotates to pre-committed next keys. A rotation that leaves
// fewer keys than the identity has now or pre-committed (2-of-3 to 2-of-2)
// needs --threshold, so that dropping a key is never the silent effect of a
// forgotten --key; the resulting kt-of-n is printed before the commit.
func idRotate(c *cli.Context, env *cliEnv) (err error) {
	if err := wantArgs(c); err != nil {
		return err
	}
	cmd := commandPath(c)
	prefix, err := prefixArg(c, c.String("id"))
	if err != nil {
		return err
	}
	contribs, err := contributions(c, env)
	if err != nil {
		return err
	}
	uris, err := keyURIs(c, "key", len(contribs) == 0)
	if err != nil {
		return err
	}
	nextURIs, err := keyURIs(c, "next-key", false)
	if err != nil {
		return err
	}
	if err := checkNextURIs(c, uris, nextURIs); err != nil {
		return err
	}
	n := len(uris) + len(contribs)
	a, err := openAnchorer(c, cmd)
	if err != nil {
		return err
	}
	snap, err := a.Registry().Snapshot()
	if err != nil {
		return registryErr(c.String("registry"), err)
	}
	st, err := snap.KeyState(prefix)
	if err != nil {
		return anchorErr(cmd, fmt.Errorf("identity %s: %w", prefix, err))
	}
	kt := st.NextThreshold
	if c.String("threshold") != "" {
		if kt, err = thresholdFlag(c, "threshold", n); err != nil {
			return err
		}
	} else {
		if was := max(len(st.CurrentKeys), len(st.NextCommitment)); n < was {
			given := fmt.Sprintf("%d --key", n)
			if len(contribs) > 0 {
				given = fmt.Sprintf("%d key(s) (%d --key, %d --contribution)", n, len(uris), len(contribs))
			}
			return cmdUsageErr(c, "%s: %s for %s, which has %d keys and %d pre-committed next keys: this drops keys (kt %s of %d): give --threshold to confirm the new key list",
				cmd, given, prefix, len(st.CurrentKeys), len(st.NextCommitment), kt.Text(), n)
		}
		if err := kt.CheckKeys(n); err != nil {
			return cmdUsageErr(c, "%s: the prior next threshold %s does not fit the %d keys: give --threshold (%v)", cmd, kt.Text(), n, err)
		}
	}
	nNext := len(uris)
	if len(nextURIs) > 0 {
		nNext = len(nextURIs)
	}
	nt, err := nextThreshold(c, kt, nNext+len(contribs))
	if err != nil {
		return err
	}
	if done, err := idViaAgent(c, env, st, uris, contribs, nextURIs, kt, nt, nil); done {
		return err // through the agent (id_agent.go)
	}
	ts := newTokenSet(env)
	defer ts.Close()
	signers, local, err := ts.open(c.Context, cmd, uris)
	if err != nil {
		return err
	}
	keys, err := memberKeys(c, env, uris, local, contribs)
	if err != nil {
		return err
	}
	for i, k := range keys {
		if st.KeyIndex(k) >= 0 {
			return negativeErr("%s: %s is a current key of %s; rotate to its pre-committed next keys", cmd, keyOrContribution(uris, contribs, i), prefix)
		}
	}
	inUse, err := keysInUse(env, c.String("registry"), local)
	if err != nil {
		return err
	}
	if err := checkContributedNext(c, env, contribs, inUse); err != nil {
		return err
	}
	if err := pendingInUse(c, env, inUse); err != nil {
		return err
	}
	var nk nextKeySet
	defer func() { nk.reportLeftovers(env, cmd, err) }()
	if err = nk.collect(c, ts, uris, nextURIs, signers, inUse); err != nil {
		return err
	}
	spec := kel.RotationSpec{Keys: keys, Threshold: kt, NextThreshold: nt,
		BackerThreshold: st.BackerThreshold.Count()}
	for _, k := range nk.keys {
		spec.NextDigests = append(spec.NextDigests, kel.NextKeyDigest(k))
	}
	spec.NextDigests = append(spec.NextDigests, contributedNext(contribs)...)
	fmt.Fprintf(env.stderr, "auths-agent: %s: %s s=%x: kt %s of %d keys (was %s of %d), next %s of %d\n",
		cmd, prefix, st.Sequence+1, kt.Text(), len(keys), st.Threshold.Text(), len(st.CurrentKeys), nt.Text(), len(spec.NextDigests))
	p, err := a.Rotate(c.Context, prefix, spec)
	if err != nil {
		err = anchorErr(cmd, err)
		return err
	}
	err = signAndFinish(c.Context, env, cmd, a, p, signers)
	return err
}

// listFlag is a repeatable flag whose values are kept whole: urfave/cli's
// StringSliceFlag splits values at commas, which seals (i=…,s=…,d=…),
// weighted thresholds and URIs contain.
type listFlag struct{ values []string }

func (l *listFlag) Set(v string) error { l.values = append(l.values, v); return nil }
func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.values, " ")
}

func newListFlag(name, usage string) cli.Flag {
	return &cli.GenericFlag{Name: name, Usage: usage, Value: &listFlag{}}
}

// listValues returns the values of a listFlag.
func listValues(c *cli.Context, name string) []string {
	if l, ok := c.Generic(name).(*listFlag); ok && l != nil {
		return l.values
	}
	return nil
}

// keyRef is a key URI parsed where the command line gives it. Providers
// receive it parsed, never as a string: a PIN glued back into a string is
// a PIN that can end up in a message. Exactly one field is set.
type keyRef struct {
	pkcs11 *hsm.PKCS11URI
	piv    *hsm.PIVURI
}

// parseKeyRef parses a pkcs11: or piv: URI; errors show it redacted.
func parseKeyRef(s string) (keyRef, error) {
	scheme, _, _ := strings.Cut(s, ":")
	switch scheme {
	case "pkcs11":
		u, err := hsm.ParsePKCS11URI(s)
		return keyRef{pkcs11: u}, err
	case "piv":
		u, err := hsm.ParsePIVURI(s)
		return keyRef{piv: &u}, err
	}
	return keyRef{}, hsm.NewURIError(s, fmt.Errorf("%w: not a key URI (want pkcs11: or piv:)", hsm.ErrBadURI))
}

// String shows the URI without its PIN.
func (r keyRef) String() string {
	if r.pkcs11 != nil {
		return r.pkcs11.String()
	}
	return r.piv.String()
}

// keyURIs parses the URIs of a repeated flag, refusing a URI given twice.
func keyURIs(c *cli.Context, flag string, required bool) ([]keyRef, error) {
	values := listValues(c, flag)
	if required && len(values) == 0 {
		return nil, usageErr("%s: give at least one --%s URI", commandPath(c), flag)
	}
	seen := map[string]bool{}
	var refs []keyRef
	for i, v := range values {
		r, err := parseKeyRef(v)
		if err != nil {
			return nil, usageErr("%s: --%s %d: %s", commandPath(c), flag, i+1, oneLine(err.Error()))
		}
		if seen[r.String()] {
			return nil, usageErr("%s: --%s %s listed twice", commandPath(c), flag, r)
		}
		seen[r.String()] = true
		refs = append(refs, r)
	}
	return refs, nil
}

func thresholdFlag(c *cli.Context, flag string, keys int) (kel.Threshold, error) {
	t, err := kel.ParseThresholdText(c.String(flag))
	if err != nil {
		return kel.Threshold{}, usageErr("%s: --%s: %v", commandPath(c), flag, err)
	}
	if err := t.CheckKeys(keys); err != nil {
		return kel.Threshold{}, usageErr("%s: --%s %s: %v", commandPath(c), flag, c.String(flag), err)
	}
	// The event goes into a registry auths reads: only forms it reads alike.
	raw, err := t.MarshalJSON()
	if err == nil {
		err = kel.CheckAuthsThreshold(raw, keys)
	}
	if err != nil {
		return kel.Threshold{}, usageErr("%s: --%s %s: %v", commandPath(c), flag, c.String(flag), err)
	}
	return t, nil
}

func nextThreshold(c *cli.Context, kt kel.Threshold, n int) (kel.Threshold, error) {
	if c.String("next-threshold") != "" {
		return thresholdFlag(c, "next-threshold", n)
	}
	if err := kt.CheckKeys(n); err != nil {
		return kel.Threshold{}, usageErr("%s: the signing threshold %s does not fit the %d next keys: give --next-threshold", commandPath(c), kt.Text(), n)
	}
	return kt, nil
}

// keyErrMsg is keyErr without a cli.Context.
func keyErrMsg(cmd string, err error) error {
	msg := cmd + ": " + oneLine(err.Error())
	if errors.Is(err, hsm.ErrWrongPIN) || errors.Is(err, hsm.ErrPINBlocked) || errors.Is(err, hsm.ErrExists) {
		return negativeErr("%s", msg)
	}
	return usageErr("%s", msg)
}
