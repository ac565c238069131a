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
	return cl, nil
}

// agentErr maps an agent's answer to an exit status: a refusal is a
// negative answer (1), a broken conversation is unreadable input (2).
func agentErr(cmd string, err error) error {
	var ee *socket.ExtensionError
	if errors.As(err, &ee) {
		if ee.Reason == "bad-request" {
			return usageErr("%s: %s", cmd, oneLine(err.Error()))
		}
		return negativeErr("%s: agent: %s", cmd, oneLine(err.Error()))
	}
	return usageErr("%s: agent: %s", cmd, oneLine(err.Error()))
}
