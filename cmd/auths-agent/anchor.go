package main

// This file holds `auths-agent anchor` (stage, sign with tokens, fold and
// commit an interaction event, or leave it pending) and the helpers the id
// and pending commands share with it.
//
// Outcome lines on stdout:
//
//	committed PREFIX s=HEX SAID    the event is in the registry (exit 0)
//	pending PREFIX SAID: NEEDS     saved in escrow, still needs signatures (exit 0)
//
// A refusal (stale, expired, a signer whose key is not in the key list, a
// token that failed to sign) exits 1; bad flags or unreadable input exit 2.
// A key whose index already signed is named on stderr ("already signed by
// index N") and does not sign again; when no key had anything to add, the
// pending line is printed, nothing is written, exit 0.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
	"github.com/auths-dev/auths-agent/socket"
)

// maxAttestation caps an attestation document read from a file: auths'
// own limit.
const maxAttestation = kel.MaxAttestationSize

func anchorCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "anchor",
		Usage: "anchor seals and device attestations with an interaction event signed by tokens",
		Description: "Stages the interaction event on the identity's tip, signs it with every --key\n" +
			"token at once, and commits it with the attestations in one commit when the\n" +
			"signatures meet the threshold. Otherwise it saves the proposal under\n" +
			"refs/auths-agent/pending/PREFIX/SAID and prints what it still needs; add signatures\n" +
			"with `pending sign`. Output: `committed PREFIX s=HEX SAID` or\n" +
			"`pending PREFIX SAID: NEEDS`, both exit 0; a refusal exits 1.\n" +
			"--seal d=SAID | --seal i=AID,s=HEX,d=SAID; --attestation FILE pairs with the\n" +
			"--device DID at the same position.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "registry", Usage: "the registry's git repository `DIR`", Required: true},
			&cli.StringFlag{Name: "id", Usage: "the identity's `PREFIX`", Required: true},
			newListFlag("seal", "a seal: d=SAID or i=AID,s=HEX,d=SAID; repeat"),
			newListFlag("attestation", "an attestation document `FILE` to store and anchor; repeat"),
			newListFlag("device", "the device `DID` of the --attestation at the same position"),
			newListFlag("revoke", "a `FILE` superseding the current attestation of the --revoke-device at the same position (a revocation)"),
			newListFlag("revoke-device", "the device `DID` of the --revoke at the same position"),
			newListFlag("key", "a signing key's `URI` (pkcs11: or piv:); repeat"),
			&cli.DurationFlag{Name: "expires", Value: anchor.DefaultTTL, Usage: "how long the proposal waits in escrow if not fully signed"},
			noAgentFlag,
		},
		Action: func(c *cli.Context) error { return anchorRun(c, env) },
	}
}

func anchorRun(c *cli.Context, env *cliEnv) error {
	if err := wantArgs(c); err != nil {
		return err
	}
	cmd := commandPath(c)
	if _, err := prefixArg(c, c.String("id")); err != nil {
		return err
	}
	var ch anchor.Change
	for _, s := range listValues(c, "seal") {
		raw, err := anchor.ParseSeal(s)
		if err != nil {
			return usageErr("%s: --seal %s: %v", cmd, s, err)
		}
		ch.Seals = append(ch.Seals, raw)
	}
	for _, pair := range []struct {
		file, device string
		supersede    bool
	}{{"attestation", "device", false}, {"revoke", "revoke-device", true}} {
		files, dids := listValues(c, pair.file), listValues(c, pair.device)
		if len(files) != len(dids) {
			return usageErr("%s: %d --%s but %d --%s: give one DID per document", cmd, len(files), pair.file, len(dids), pair.device)
		}
		for i, f := range files {
			doc, err := readInput(env, f, maxAttestation)
			if err != nil {
				return err
			}
			ch.Attestations = append(ch.Attestations, anchor.Attestation{Device: dids[i], Document: doc, Supersede: pair.supersede})
		}
	}
	if len(ch.Seals) == 0 && len(ch.Attestations) == 0 {
		return usageErr("%s: nothing to anchor: give --seal or --attestation FILE --device DID", cmd)
	}
	if done, err := anchorViaAgent(c, env, ch); done {
		return err
	}
	uris, err := keyURIs(c, "key", true)
	if err != nil {
		return err
	}
	a, err := openAnchorer(c, cmd)
	if err != nil {
		return err
	}
	p, err := a.Stage(c.Context, c.String("id"), ch)
	if err != nil {
		return anchorErr(cmd, err)
	}
	// Say what the signature approves before any token is opened, as
	// `pending sign` does, so the person reads it before typing a PIN or
	// touching a key.
	printApproval(env, cmd, p)
	ts := newTokenSet(env)
	defer ts.Close()
	signers, _, err := ts.open(c.Context, cmd, uris)
	if err != nil {
		return err
	}
	return signAndFinish(c.Context, env, cmd, a, p, signers)
}

// openAnchorer opens the --registry repository.
func openAnchorer(c *cli.Context, cmd string) (*anchor.Anchorer, error) {
	reg, err := registry.Open(c.String("registry"))
	if err != nil {
		return nil, usageErr("%s: %v", cmd, oneLine(err.Error()))
	}
	if _, err := reg.Head(); err != nil {
		return nil, usageErr("%s: %s: %v", cmd, c.String("registry"), oneLine(err.Error()))
	}
	ttl := anchor.DefaultTTL
	if c.IsSet("expires") {
		ttl = c.Duration("expires")
	}
	return anchor.New(reg, anchor.WithTTL(ttl)), nil
}

// signAndFinish signs p with every signer at once, then commits it when
// complete or saves it in escrow. Signatures collected before a signer
// failed are never lost: they are saved.
//
// A signer whose index is already signed does not sign again; it is named
// on stderr ("already signed by index N"). When that is true of every
// signer, nothing changed: the escrow is not rewritten and the answer is
// the proposal's state, exit 0, as for any other signature it already had.
func signAndFinish(ctx context.Context, env *cliEnv, cmd string, a *anchor.Anchorer, p *anchor.Proposal, signers []hsm.Signer) error {
	return signAndFinishVia(ctx, env, cmd, a, p, signers, nil)
}

// signAndFinishVia is signAndFinish that, given a remote, commits through
// it (the commit lands there before the local registry moves).
func signAndFinishVia(ctx context.Context, env *cliEnv, cmd string, a *anchor.Anchorer, p *anchor.Proposal, signers []hsm.Signer, rem *registry.Remote) error {
	// Assign refuses a signer whose key is not a signing key before any
	// token signs, so nothing is written for such a mistake.
	idx, aerr := anchor.Assign(p, signers)
	if aerr != nil {
		return anchorErr(cmd, aerr)
	}
	already := 0
	for i, k := range idx {
		if p.Has(k) {
			already++
			fmt.Fprintf(env.stderr, "auths-agent: %s: %s %s: already signed by index %d (%s); not signing again\n",
				cmd, p.Prefix(), p.SAID(), k, hsm.Describe(signers[i]))
		}
	}
	if already > 0 && already == len(signers) && !p.Complete() {
		fmt.Fprintf(env.stdout, "pending %s %s: %s\n", p.Prefix(), p.SAID(), p.Status().Needs())
		return nil
	}
	_, signErr := anchor.Sign(ctx, p, signers)
	if errors.Is(signErr, anchor.ErrSignerNotInKeys) || errors.Is(signErr, anchor.ErrDuplicateSigner) {
		return anchorErr(cmd, signErr) // refused before anything was signed
	}
	for _, e := range unwrapAll(signErr) {
		fmt.Fprintf(env.stderr, "auths-agent: %s: %s\n", cmd, oneLine(e.Error()))
	}
	if !p.Complete() {
		if err := a.Save(ctx, p); err != nil {
			return anchorErr(cmd, err)
		}
		fmt.Fprintf(env.stdout, "pending %s %s: %s\n", p.Prefix(), p.SAID(), p.Status().Needs())
		if rem != nil {
			// The others sign what reaches the remote.
			res, err := a.Push(ctx, *rem)
			if err != nil {
				return remoteErr(cmd, fmt.Errorf("%s %s saved in escrow, but not sent: %w", p.Prefix(), p.SAID(), err))
			}
			r := socket.PushReplyOf(res)
			printPush(env, cmd, &r)
		}
		if signErr != nil {
			return silentExit(exitNegative)
		}
		return nil
	}
	var res *anchor.Result
	var err error
	if rem != nil {
		res, err = a.CommitPush(ctx, p, *rem)
	} else {
		res, err = a.Commit(ctx, p)
	}
	if err != nil {
		if !anchor.Dead(err) && !errors.Is(err, anchor.ErrIncomplete) {
			// Keep the signatures for a later `pending commit`.
			if serr := a.Save(ctx, p); serr == nil {
				fmt.Fprintf(env.stderr, "auths-agent: %s: saved as pending %s %s\n", cmd, p.Prefix(), p.SAID())
			}
			if rem != nil && registry.IsTransport(err) {
				// An unreachable remote: the status pending push and
				// pull give it; local failures map as without --remote.
				return remoteErr(cmd, err)
			}
		}
		return anchorErr(cmd, err)
	}
	if res.CleanupErr != nil {
		fmt.Fprintf(env.stderr, "auths-agent: %s: committed, but the pending ref stays: %s\n", cmd, oneLine(res.CleanupErr.Error()))
	}
	if p.Type() == kel.TypeInception && cmd == "id create" {
		// id create prints the new prefix; pending sign and commit of an
		// inception say what they committed like for any other event.
		fmt.Fprintln(env.stdout, p.Prefix())
		return nil
	}
	fmt.Fprintf(env.stdout, "committed %s s=%x %s\n", p.Prefix(), p.Sn(), p.SAID())
	return nil
}

func unwrapAll(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// anchorErr maps the errors of package anchor to exit statuses: input that
// names nothing usable exits 2, refusals by the rules exit 1.
func anchorErr(cmd string, err error) error {
	msg := cmd + ": " + strings.Join(strings.Fields(oneLine(err.Error())), " ")
	switch {
	case errors.Is(err, anchor.ErrBadSeal), errors.Is(err, anchor.ErrBadAttestation), errors.Is(err, hsm.ErrBadURI):
		return usageErr("%s", msg)
	case errors.Is(err, registry.ErrCorrupt):
		return usageErr("%s", msg)
	}
	return negativeErr("%s", msg)
}
