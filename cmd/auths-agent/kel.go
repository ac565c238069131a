package main

// This file holds `auths-agent kel`: SAIDs of single events and validation of
// KEL streams. The registry forms (kel import, kel show, and verifyRegistry
// behind kel verify --registry) live in kelregistry.go.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/kel"
)

func kelCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "kel",
		Usage: "work with key event logs",
		// The registry subcommands (kel import, kel show) come from
		// kelregistry.go, owned by the registry work.
		Subcommands: append([]*cli.Command{kelSaidCommand(env), kelVerifyCommand(env)}, kelRegistryCommands(env)...),
	}
}

func kelSaidCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:      "said",
		Usage:     "compute the SAID of one KERI event and check it against d",
		ArgsUsage: "FILE|-",
		Description: "Reads one event (compact or pretty-printed JSON, as registry blobs are),\n" +
			"compacts it without re-encoding any string, computes its SAID and prints it.\n" +
			"Exit 0 when it equals d (and i for a self-addressing inception), 1 when it\n" +
			"does not, 2 when the input is not an event.",
		Action: func(c *cli.Context) error {
			if err := wantArgs(c, "file"); err != nil {
				return err
			}
			name := c.Args().First()
			data, err := readInput(env, name, kel.MaxStreamSize)
			if err != nil {
				return err
			}
			e, sizeErr, err := parseEventForSAID(data)
			if err != nil {
				return usageErr("%s: not a KERI event: %v", name, err)
			}
			fmt.Fprintln(env.stdout, e.ComputeSAID())
			if sizeErr != nil {
				return negativeErr("%s: %v", name, sizeErr)
			}
			if err := e.CheckSAID(); err != nil {
				return negativeErr("%s: %v", name, err)
			}
			return nil
		},
	}
}

// parseEventForSAID compacts data with json.Compact (strings are kept as
// written) and parses it. An event whose version string states the wrong
// size is still an event: it is parsed with the size corrected, so that its
// SAID can be shown, and the size error is returned beside it.
func parseEventForSAID(data []byte) (e *kel.Event, sizeErr, err error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return nil, nil, fmt.Errorf("not JSON: %w", err)
	}
	raw := compact.Bytes()
	e, err = kel.ParseEvent(raw)
	var fe *kel.FieldError
	if err == nil || !errors.As(err, &fe) || fe.Field != "v" {
		return e, nil, err
	}
	const head = `{"v":"KERI10JSON`
	if !bytes.HasPrefix(raw, []byte(head)) || len(raw) < len(head)+7 || raw[len(head)+6] != '_' {
		return nil, nil, err
	}
	fixed := append([]byte(nil), raw...)
	copy(fixed[len(head):], fmt.Sprintf("%06x", len(fixed)))
	e, err2 := kel.ParseEvent(fixed)
	if err2 != nil {
		return nil, nil, err
	}
	return e, err, nil
}

func kelVerifyCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "validate a KEL stream (or a registry's KEL) and print its key state",
		ArgsUsage: "FILE|-  or  --registry DIR PREFIX",
		Description: "Reads a KEL stream (each event's bytes followed by its -A## signature\n" +
			"group, event after event, as keripy writes them), validates it from its\n" +
			"inception and prints the final key state: prefix, sn, keys, threshold.\n" +
			"With --registry DIR the argument is a prefix whose KEL is read from the\n" +
			"registry. Exit 1 with the failing event's s and the reason when it is invalid,\n" +
			"2 when the input is not a KEL stream at all (truncated, garbage).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the key state as the registry's state.json does"},
			&cli.StringFlag{Name: "registry", Usage: "verify the KEL of PREFIX in the registry of this git repository"},
		},
		Action: func(c *cli.Context) error {
			if dir := c.String("registry"); dir != "" {
				if err := wantArgs(c, "prefix"); err != nil {
					return err
				}
				prefix, err := prefixArg(c, c.Args().First())
				if err != nil {
					return err
				}
				return verifyRegistry(c, env, dir, prefix, c.Bool("json"))
			}
			if err := wantArgs(c, "file"); err != nil {
				return err
			}
			name := c.Args().First()
			data, err := readInput(env, name, kel.MaxStreamSize)
			if err != nil {
				return err
			}
			// A trailing newline is no part of a KEL; tolerate it.
			data = bytes.TrimRight(data, "\r\n")
			if len(data) == 0 {
				return usageErr("%s: empty input, want a KEL stream", name)
			}
			events, err := kel.ParseStreamParallel(data, 0)
			if err != nil {
				return usageErr("%s: not a KEL stream: %s", name, oneLine(err.Error()))
			}
			st, err := kel.ReplayParallel(events, 0)
			if err == nil {
				// A stream holds no delegator's KEL to check a delegation against.
				err = kel.RefuseDelegated(events)
			}
			if err != nil {
				return negativeErr("%s: invalid KEL: %s", name, oneLine(err.Error()))
			}
			return printKeyState(env, st, c.Bool("json"))
		},
	}
}

// printKeyState prints the short key state, or with asJSON the key state
// object of the registry's state.json.
func printKeyState(env *cliEnv, st *kel.KeyState, asJSON bool) error {
	if asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return fmt.Errorf("key state: %w", err)
		}
		fmt.Fprintf(env.stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintf(env.stdout, "prefix     %s\n", st.Prefix)
	fmt.Fprintf(env.stdout, "sn         %s\n", snText(st.Sequence))
	fmt.Fprintf(env.stdout, "keys       %s\n", strings.Join(st.CurrentKeys, " "))
	fmt.Fprintf(env.stdout, "threshold  %s\n", st.Threshold.Text())
	if st.IsAbandoned {
		fmt.Fprintln(env.stdout, "abandoned  yes (nothing may follow)")
	}
	return nil
}
