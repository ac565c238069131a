package main

// This file holds `auths-agent pending`: list, show, sign and commit the
// proposals waiting for signatures under refs/auths-agent/pending/ (push
// and pull with remotes are in pending_remote.go).

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

func pendingCommand(env *cliEnv) *cli.Command {
	reg := &cli.StringFlag{Name: "registry", Usage: "the registry's git repository `DIR`", Required: true}
	return &cli.Command{
		Name:  "pending",
		Usage: "proposals waiting for signatures (refs/auths-agent/pending/PREFIX/SAID)",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "one line per proposal: prefix, SAID, event, state and what it still needs (tab-separated)",
				Flags: []cli.Flag{reg},
				Action: func(c *cli.Context) error {
					return pendingList(c, env)
				},
			},
			pendingPushCommand(env, reg),
			pendingPullCommand(env, reg),
			{
				Name:      "show",
				Usage:     "show a proposal: event, keys and their signatures, attestations, expiry",
				ArgsUsage: "PREFIX SAID",
				Flags:     []cli.Flag{reg},
				Action:    func(c *cli.Context) error { return pendingShow(c, env) },
			},
			{
				Name:      "sign",
				Usage:     "add signatures from tokens; commit when complete, else say what is missing",
				ArgsUsage: "PREFIX SAID",
				Flags: []cli.Flag{reg, remoteFlag(),
					newListFlag("key", "a signing key's `URI` (pkcs11: or piv:); repeat"), noAgentFlag},
				Action: func(c *cli.Context) error { return pendingSign(c, env) },
			},
			{
				Name:      "commit",
				Usage:     "commit a fully signed proposal (stale, expired or committed ones are refused and removed)",
				ArgsUsage: "PREFIX SAID",
				Flags:     []cli.Flag{reg, remoteFlag()},
				Action:    func(c *cli.Context) error { return pendingCommit(c, env) },
			},
		},
	}
}

// pendingState is a proposal's state in one word and its detail.
func pendingState(pd *anchor.Pending) (string, string) {
	switch {
	case errors.Is(pd.Err, anchor.ErrStale):
		return "stale", oneLine(pd.Err.Error())
	case errors.Is(pd.Err, anchor.ErrCommitted):
		return "committed", "already in the KEL"
	case errors.Is(pd.Err, anchor.ErrExpired):
		return "expired", "expired at " + pd.Proposal.Expires().Format(time.RFC3339)
	case pd.Err != nil:
		return "damaged", oneLine(pd.Err.Error())
	case pd.Proposal.Complete():
		return "complete", pd.Proposal.Status().Needs()
	}
	return "waiting", "needs " + pd.Proposal.Status().Needs()
}

func pendingList(c *cli.Context, env *cliEnv) error {
	if err := wantArgs(c); err != nil {
		return err
	}
	a, err := openAnchorer(c, commandPath(c))
	if err != nil {
		return err
	}
	all, err := a.List(c.Context)
	if err != nil {
		return anchorErr(commandPath(c), err)
	}
	for _, pd := range all {
		state, detail := pendingState(pd)
		ev := "-"
		expires := "-"
		if pd.Proposal != nil {
			ev = fmt.Sprintf("%s s=%x", pd.Proposal.Type(), pd.Proposal.Sn())
			expires = pd.Proposal.Expires().Format(time.RFC3339)
		}
		missing := "-"
		if pd.Proposal != nil && len(pd.Proposal.Status().Missing) > 0 {
			missing = joinInts(pd.Proposal.Status().Missing)
		}
		from := "local"
		if pr, ok := a.Registry().(interface {
			PendingRemotes(registry.PendingID) ([]string, error)
		}); ok {
			if rs, err := pr.PendingRemotes(pd.ID); err == nil && len(rs) > 0 {
				from = strings.Join(rs, ",")
			}
		}
		fmt.Fprintf(env.stdout, "%s\t%s\t%s\t%s\t%s\texpires %s\tmissing %s\tfrom %s\n", pd.ID.Prefix, pd.ID.SAID, ev, state, detail, expires, missing, from)
	}
	return nil
}

// loadPending loads PREFIX SAID from the arguments.
func loadPending(c *cli.Context) (*anchor.Anchorer, *anchor.Pending, error) {
	if err := wantArgs(c, "prefix", "said"); err != nil {
		return nil, nil, err
	}
	cmd := commandPath(c)
	if _, err := prefixArg(c, c.Args().Get(0)); err != nil {
		return nil, nil, err
	}
	a, err := openAnchorer(c, cmd)
	if err != nil {
		return nil, nil, err
	}
	pd, err := a.Load(c.Context, c.Args().Get(0), c.Args().Get(1))
	if err != nil {
		return nil, nil, anchorErr(cmd, err)
	}
	return a, pd, nil
}

func pendingShow(c *cli.Context, env *cliEnv) error {
	_, pd, err := loadPending(c)
	if err != nil {
		return err
	}
	state, detail := pendingState(pd)
	w := env.stdout
	fmt.Fprintf(w, "prefix     %s\nsaid       %s\nstate      %s: %s\n", pd.ID.Prefix, pd.ID.SAID, state, detail)
	p := pd.Proposal
	if p == nil {
		return nil
	}
	fmt.Fprintf(w, "event      %s s=%x\n", p.Type(), p.Sn())
	if p.Prior() != "" {
		fmt.Fprintf(w, "prior      %s\n", p.Prior())
	}
	fmt.Fprintf(w, "threshold  %s\n", p.Threshold().Text())
	if nt, ok := p.PriorNextThreshold(); ok {
		fmt.Fprintf(w, "prior nt   %s\n", nt.Text())
	}
	fmt.Fprintf(w, "created    %s\nexpires    %s\n", p.Created().Format(time.RFC3339), p.Expires().Format(time.RFC3339))
	for _, k := range p.Keys() {
		signed := "unsigned"
		if p.Has(k.Index) {
			signed = "signed"
		}
		ondex := ""
		if p.Type() == kel.TypeRotation {
			ondex = " prior-next " + ondexText(k.Ondex)
		}
		fmt.Fprintf(w, "key %-6d %s %s%s %s\n", k.Index, k.Key, k.Alg, ondex, signed)
	}
	for _, at := range p.Attestations() {
		verb := "stores"
		if at.Supersede {
			verb = "supersedes"
		}
		fmt.Fprintf(w, "attestation %s %s (SAID %s)\n", verb, at.Device, at.SAID)
	}
	for _, r := range pd.Refused {
		fmt.Fprintf(env.stderr, "auths-agent: %s: refused %s\n", commandPath(c), oneLine(r.Error()))
	}
	fmt.Fprintf(w, "bytes      %s\n", p.Bytes())
	return nil
}

func ondexText(o int) string {
	if o == kel.NoOndex {
		return "none"
	}
	return fmt.Sprint(o)
}

// refuseDead refuses a proposal that can never be committed, removing its
// ref; it returns nil for a committable one.
func refuseDead(c *cli.Context, a *anchor.Anchorer, pd *anchor.Pending) error {
	cmd := commandPath(c)
	if pd.Err == nil {
		return nil
	}
	if !anchor.Dead(pd.Err) {
		return anchorErr(cmd, pd.Err)
	}
	msg := oneLine(pd.Err.Error())
	if err := a.Discard(c.Context, pd.ID.Prefix, pd.ID.SAID); err != nil {
		return negativeErr("%s: %s; removing it failed: %s", cmd, msg, oneLine(err.Error()))
	}
	return negativeErr("%s: %s; removed it", cmd, msg)
}

func pendingSign(c *cli.Context, env *cliEnv) error {
	cmd := commandPath(c)
	if done, err := pendingSignViaAgent(c, env); done {
		return err
	}
	uris, err := keyURIs(c, "key", true)
	if err != nil {
		return err
	}
	a, pd, err := loadPending(c)
	if err != nil {
		return err
	}
	if err := refuseDead(c, a, pd); err != nil {
		return err
	}
	rem, err := remoteOf(c, env, a)
	if err != nil {
		return err
	}
	// Say what the signature approves before any token is opened, so the
	// person reads it before typing a PIN or touching a key.
	printApproval(env, cmd, pd.Proposal)
	ts := newTokenSet(env)
	defer ts.Close()
	signers, _, err := ts.open(c.Context, cmd, uris)
	if err != nil {
		return err
	}
	return signAndFinishVia(c.Context, env, cmd, a, pd.Proposal, signers, rem)
}

// printApproval writes on stderr what a signature over p approves: the
// identity, the event type and sn, the keys an establishment event sets,
// its seals and the attestations stored with it (anchor.Approval).
func printApproval(env *cliEnv, cmd string, p *anchor.Proposal) {
	fmt.Fprintf(env.stderr, "auths-agent: %s: the signature approves\n", cmd)
	for _, l := range p.Approval().Lines() {
		fmt.Fprintf(env.stderr, "auths-agent: %s:   %s\n", cmd, l)
	}
}

func pendingCommit(c *cli.Context, env *cliEnv) error {
	cmd := commandPath(c)
	a, pd, err := loadPending(c)
	if err != nil {
		return err
	}
	if err := refuseDead(c, a, pd); err != nil {
		return err
	}
	p := pd.Proposal
	if !p.Complete() {
		return negativeErr("%s: %s %s: not enough signatures: needs %s", cmd, p.Prefix(), p.SAID(), p.Status().Needs())
	}
	rem, err := remoteOf(c, env, a)
	if err != nil {
		return err
	}
	return signAndFinishVia(c.Context, env, cmd, a, p, nil, rem)
}
