package main

// This file holds the registry forms of `auths-agent kel`: kel import and
// kel show, and verifyRegistry for kel verify --registry.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// kelRegistryCommands returns the registry subcommands of `auths-agent kel`.
func kelRegistryCommands(env *cliEnv) []*cli.Command {
	return []*cli.Command{kelImportCommand(env), kelShowCommand(env), kelExportCommand(env)}
}

func registryFlag() cli.Flag {
	return &cli.StringFlag{Name: "registry", Usage: "the git repository holding refs/auths/registry", Required: true}
}

func kelImportCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "append a signed KEL stream to the registry as one commit",
		ArgsUsage: "FILE|-",
		Description: "Reads a KEL stream (each event's bytes followed by its -A## group), verifies\n" +
			"every event against the registry's tip and appends them as one batch, one\n" +
			"commit. Events already present with the same SAID are skipped (a line on\n" +
			"stderr each); an event that conflicts with a stored one refuses the whole\n" +
			"stream and nothing is written. DIR must hold a registry already, unless\n" +
			"--init is given (a new or empty directory, or a git repository without one).",
		Flags: []cli.Flag{registryFlag(), initFlag()},
		Action: func(c *cli.Context) error {
			if err := wantArgs(c, "file"); err != nil {
				return err
			}
			name, dir := c.Args().First(), c.String("registry")
			data, err := readInput(env, name, kel.MaxStreamSize)
			if err != nil {
				return err
			}
			data = bytes.TrimRight(data, "\r\n")
			if len(data) == 0 {
				return usageErr("%s: empty input, want a KEL stream", name)
			}
			events, err := kel.ParseStream(data)
			if err != nil {
				return usageErr("%s: not a KEL stream: %s", name, oneLine(err.Error()))
			}
			openReg, creates, err := planRegistry(c, env, dir)
			if err != nil {
				return err
			}
			if creates {
				// Refuse an invalid stream before --init creates anything.
				if err := replayByPrefix(events); err != nil {
					return negativeErr("%s: invalid KEL, nothing written: %s", name, oneLine(err.Error()))
				}
			}
			r, err := openReg()
			if err != nil {
				return err
			}
			b, skipped, err := importBatch(env, r, name, events)
			if err != nil {
				return err
			}
			if b.Len() == 0 {
				fmt.Fprintf(env.stdout, "nothing to import: all %d events already present\n", skipped)
				return nil
			}
			res, err := r.Commit(c.Context, b)
			if err != nil {
				return registryErr(dir, err)
			}
			fmt.Fprintf(env.stdout, "imported %d events (%d already present) at %s\n", b.Len(), skipped, res.Commit)
			return nil
		},
	}
}

// replayByPrefix validates each identity's events of a stream from its
// inception, as an empty registry would.
func replayByPrefix(events []kel.SignedEvent) error {
	byPrefix := map[string][]kel.SignedEvent{}
	var order []string
	for _, se := range events {
		if _, ok := byPrefix[se.Event.Prefix]; !ok {
			order = append(order, se.Event.Prefix)
		}
		byPrefix[se.Event.Prefix] = append(byPrefix[se.Event.Prefix], se)
	}
	for _, p := range order {
		if _, err := kel.ReplayParallel(byPrefix[p], 0); err != nil {
			return fmt.Errorf("identity %s: %w", p, err)
		}
	}
	return nil
}

// importBatch skips the events the registry already holds (same SAID at the
// same s) and refuses one that conflicts; the rest become the batch.
func importBatch(env *cliEnv, r *registry.Registry, name string, events []kel.SignedEvent) (*registry.Batch, int, error) {
	s, err := r.Snapshot()
	if err != nil {
		return nil, 0, registryErr(r.TopDir(), err)
	}
	tips := map[string]int64{}
	var b registry.Batch
	skipped := 0
	for _, se := range events {
		e := se.Event
		tip, ok := tips[e.Prefix]
		if !ok {
			t, err := s.Tip(e.Prefix)
			switch {
			case err == nil:
				tip = int64(t.Sequence)
			case errors.Is(err, registry.ErrNotFound):
				tip = -1
			default:
				return nil, 0, registryErr(r.TopDir(), err)
			}
			tips[e.Prefix] = tip
		}
		if int64(e.Sn) > tip {
			b.Append(se)
			continue
		}
		stored, err := s.Event(e.Prefix, e.Sn)
		if err != nil {
			return nil, 0, registryErr(r.TopDir(), err)
		}
		if stored.Event.SAID != e.SAID {
			return nil, 0, negativeErr("%s: event s=%x of %s is %s, the registry holds %s: conflict, nothing imported",
				name, e.Sn, e.Prefix, e.SAID, stored.Event.SAID)
		}
		fmt.Fprintf(env.stderr, "auths-agent: %s: skipping s=%x %s of %s: already present\n", name, e.Sn, e.SAID, e.Prefix)
		skipped++
	}
	return &b, skipped, nil
}

func kelShowCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "list the events of a KEL in the registry, one line each",
		ArgsUsage: "PREFIX",
		Description: "Prints one line per event: s=HEX, type, SAID, and the indexes of\n" +
			"its signatures. --json prints one JSON object per line instead.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "one JSON object per event"},
			registryFlag(),
		},
		Action: func(c *cli.Context) error {
			s, prefix, dir, err := kelSnapshot(env, c)
			if err != nil {
				return err
			}
			events, err := s.KEL(prefix)
			if err != nil {
				return registryErr(dir, err)
			}
			for _, se := range events {
				e := se.Event
				idx := make([]int, 0, len(se.Sigs))
				for _, sg := range se.Sigs {
					idx = append(idx, sg.Index)
				}
				if c.Bool("json") {
					line, err := json.Marshal(struct {
						Sn   uint64 `json:"sn"`
						Type string `json:"type"`
						SAID string `json:"said"`
						Sigs []int  `json:"signatures"`
					}{e.Sn, e.Type, e.SAID, idx})
					if err != nil {
						return err
					}
					fmt.Fprintf(env.stdout, "%s\n", line)
					continue
				}
				strs := make([]string, len(idx))
				for i, v := range idx {
					strs[i] = fmt.Sprint(v)
				}
				fmt.Fprintf(env.stdout, "s=%x %s %s sigs=%s\n", e.Sn, e.Type, e.SAID, strings.Join(strs, ","))
			}
			return nil
		},
	}
}

func kelExportCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write the signed KEL of an identity in the registry as a CESR stream",
		ArgsUsage: "PREFIX",
		Description: "Writes each event's bytes followed by its -A## signature group, event after\n" +
			"event, to stdout: the stream kel verify - and kel import read back. The KEL\n" +
			"is checked as it is read (every SAID and signature); nothing is written on\n" +
			"a failure.",
		Flags: []cli.Flag{registryFlag()},
		Action: func(c *cli.Context) error {
			s, prefix, dir, err := kelSnapshot(env, c)
			if err != nil {
				return err
			}
			stream, err := s.KELStream(prefix)
			if err != nil {
				return registryErr(dir, err)
			}
			_, err = env.stdout.Write(stream)
			return err
		},
	}
}

// kelSnapshot reads the PREFIX argument of kel show and kel export and
// opens a snapshot of --registry, the directory it also returns for errors.
func kelSnapshot(env *cliEnv, c *cli.Context) (*registry.Snapshot, string, string, error) {
	if err := wantArgs(c, "prefix"); err != nil {
		return nil, "", "", err
	}
	prefix, err := prefixArg(c, c.Args().First())
	if err != nil {
		return nil, "", "", err
	}
	dir := c.String("registry")
	r, err := openRegistry(env, dir)
	if err != nil {
		return nil, "", "", err
	}
	s, err := r.Snapshot()
	if err != nil {
		return nil, "", "", registryErr(dir, err)
	}
	return s, prefix, dir, nil
}

// verifyRegistry is kel verify --registry DIR PREFIX: it replays the KEL of
// PREFIX from the registry (every SAID, s, p and signature, the tip and
// state.json) and prints the key state as kel verify does.
func verifyRegistry(c *cli.Context, env *cliEnv, dir, prefix string, asJSON bool) error {
	r, err := openRegistry(env, dir)
	if err != nil {
		return err
	}
	s, err := r.Snapshot()
	if err != nil {
		return registryErr(dir, err)
	}
	st, err := s.Verify(prefix)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrCorrupt) {
			return registryErr(dir, err)
		}
		return negativeErr("%s in %s: invalid KEL: %s", prefix, dir, oneLine(err.Error()))
	}
	return printKeyState(env, st, asJSON)
}
