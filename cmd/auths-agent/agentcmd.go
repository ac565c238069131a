package main

// This file holds `auths-agent agent` (ask a running agent) and the helper
// the token-using commands share to reach the agent.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/socket"
)

func agentCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "ask the running agent ($AUTHS_AGENT_SOCK)",
		Subcommands: []*cli.Command{
			{
				Name: "keys",
				Usage: "list the agent's keys: public key, algorithm, uses, identities (PREFIX:INDEX), URI " +
					"(tab-separated)",
				Action: func(c *cli.Context) error {
					if err := wantArgs(c); err != nil {
						return err
					}
					cl, err := dialAgent(c, env, true)
					if err != nil {
						return err
					}
					defer cl.Close()
					keys, err := cl.Keys(c.Context)
					if err != nil {
						return agentErr(commandPath(c), err)
					}
					for _, k := range keys {
						if k.Error != "" {
							fmt.Fprintf(env.stderr, "auths-agent: %s: %s: %s\n", commandPath(c), k.URI, oneLine(k.Error))
							continue
						}
						var uses, ids []string
						for _, u := range k.Uses {
							uses = append(uses, string(u))
						}
						for _, id := range k.Identities {
							ids = append(ids, fmt.Sprintf("%s:%d", id.Prefix, id.Index))
						}
						if len(ids) == 0 {
							ids = []string{"-"}
						}
						fmt.Fprintf(env.stdout, "%s\t%s\t%s\t%s\t%s\n", k.PublicKey, k.Algorithm, strings.Join(uses, ","), strings.Join(ids, ","), k.URI)
					}
					return nil
				},
			},
		},
	}
}

// dialAgent connects to the agent at $AUTHS_AGENT_SOCK. With required
// false, no variable or no answer returns (nil, nil): the caller opens the
// tokens itself.
func dialAgent(c *cli.Context, env *cliEnv, required bool) (*socket.Client, error) {
	path := env.getenv("AUTHS_AGENT_SOCK")
	if path == "" {
		if required {
			return nil, usageErr("%s: AUTHS_AGENT_SOCK is not set: start `auths-agent serve` and eval \"$(auths-agent env)\"", commandPath(c))
		}
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(c.Context, 2*time.Second)
	defer cancel()
	cl, err := socket.Dial(ctx, path)
	if err != nil {
		if required {
			return nil, usageErr("%s: no agent answers on %s: %v", commandPath(c), path, unwrapPathErr(err))
		}
		return nil, nil
	}
	// The agent's notices about this command's requests (a card waiting
	// for a touch) go to stderr while the request waits.
	cmd := commandPath(c)
	cl.OnNotice(func(text string) {
		fmt.Fprintf(env.stderr, "auths-agent: %s: %s\n", cmd, oneLine(text))
	})
	return cl, nil
}

// agentErr maps an agent's answer to an exit status: a refusal is a
// negative answer (1), a broken conversation is unreadable input (2).
func agentErr(cmd string, err error) error {
	var ee *socket.ExtensionError
	if errors.As(err, &ee) {
		if ee.Reason == "bad-request" || ee.Reason == "other-registry" {
			return usageErr("%s: %s", cmd, oneLine(err.Error()))
		}
		return negativeErr("%s: agent: %s", cmd, oneLine(err.Error()))
	}
	return usageErr("%s: agent: %s", cmd, oneLine(err.Error()))
}

// noAgentFlag makes a token-using command open its tokens itself even when
// an agent answers on $AUTHS_AGENT_SOCK.
var noAgentFlag = &cli.BoolFlag{Name: "no-agent", Usage: "open the tokens directly even when an agent answers on $AUTHS_AGENT_SOCK"}

// anchorViaAgent runs `anchor` through the agent when one answers (and
// --no-agent is not given): the agent stages, signs with the keys it holds
// and commits in its registry. done reports whether it did.
func anchorViaAgent(c *cli.Context, env *cliEnv, ch anchor.Change) (done bool, err error) {
	if c.Bool("no-agent") {
		return false, nil
	}
	cl, err := dialAgent(c, env, false)
	if cl == nil || err != nil {
		return false, err
	}
	defer cl.Close()
	cmd := commandPath(c)
	if len(listValues(c, "key")) > 0 {
		fmt.Fprintf(env.stderr, "auths-agent: %s: signing with the agent's keys; --key is ignored (--no-agent opens them directly)\n", cmd)
	}
	req := socket.AnchorRequest{Prefix: c.String("id"), Seals: listValues(c, "seal")}
	for _, at := range ch.Attestations {
		req.Attestations = append(req.Attestations, socket.AttestationChange{Device: at.Device, Document: string(at.Document), Supersede: at.Supersede})
	}
	r, err := cl.Anchor(c.Context, req)
	if err != nil {
		return true, agentErr(cmd, err)
	}
	printOutcome(env, r.Committed, r.Prefix, r.Sn, r.SAID, r.Needs)
	return true, nil
}

// pendingSignViaAgent runs `pending sign PREFIX SAID` through the agent
// when one answers (and --no-agent is not given).
func pendingSignViaAgent(c *cli.Context, env *cliEnv) (done bool, err error) {
	if c.Bool("no-agent") {
		return false, nil
	}
	if err := wantArgs(c, "prefix", "said"); err != nil {
		return true, err
	}
	cl, err := dialAgent(c, env, false)
	if cl == nil || err != nil {
		return false, err
	}
	defer cl.Close()
	cmd := commandPath(c)
	if len(listValues(c, "key")) > 0 {
		fmt.Fprintf(env.stderr, "auths-agent: %s: signing with the agent's keys; --key is ignored (--no-agent opens them directly)\n", cmd)
	}
	if c.IsSet("remote") {
		return true, pendingSignRemoteViaAgent(c, env, cl)
	}
	r, err := cl.PendingSign(c.Context, c.Args().Get(0), c.Args().Get(1))
	if err != nil {
		return true, agentErr(cmd, err)
	}
	for _, i := range r.AlreadySigned {
		fmt.Fprintf(env.stderr, "auths-agent: %s: %s %s: already signed by index %d (the agent's key); not signing again\n", cmd, r.Prefix, r.SAID, i)
	}
	printOutcome(env, r.Committed, r.Prefix, r.Sn, r.SAID, r.Needs)
	return true, nil
}

// printOutcome prints the outcome line of anchor and pending sign.
func printOutcome(env *cliEnv, committed bool, prefix string, sn uint64, said, needs string) {
	if committed {
		fmt.Fprintf(env.stdout, "committed %s s=%x %s\n", prefix, sn, said)
	} else {
		fmt.Fprintf(env.stdout, "pending %s %s: %s\n", prefix, said, needs)
	}
}
