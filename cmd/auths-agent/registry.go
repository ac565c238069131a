package main

// This file holds `auths-agent registry`: creating the auths v1 registry in
// a git repository, and removing the git lock files a crashed writer left.

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/registry"
)

func registryCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:        "registry",
		Usage:       "work with the auths git registry (refs/auths/registry)",
		Subcommands: []*cli.Command{registryInitCommand(env), registryUnlockCommand(env)},
	}
}

func registryInitCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create (or reuse) a git repository holding the auths v1 registry",
		ArgsUsage: "DIR",
		Description: "Creates the git repository DIR when it holds none (bare with --bare) and,\n" +
			"when refs/auths/registry is missing, an initial commit on it holding\n" +
			"v1/metadata.json with zero counts. No other ref is touched; running it\n" +
			"again is harmless.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "bare", Usage: "create a bare repository"},
		},
		Action: func(c *cli.Context) error {
			if err := wantArgs(c, "dir"); err != nil {
				return err
			}
			dir := c.Args().First()
			r, created, err := registry.Init(c.Context, dir, c.Bool("bare"), registryOptions(env)...)
			if err != nil {
				return registryErr(dir, err)
			}
			head, err := r.Head()
			if err != nil {
				return registryErr(dir, err)
			}
			if created {
				fmt.Fprintf(env.stdout, "created %s in %s at %s\n", registry.RegistryRef, dir, head)
			} else {
				fmt.Fprintf(env.stdout, "%s already in %s at %s\n", registry.RegistryRef, dir, head)
			}
			return nil
		},
	}
}

func registryUnlockCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "unlock",
		Usage: "remove the ref lock files a crashed writer left (refs/auths/registry.lock, pending ref locks, packed-refs.lock)",
		Description: "A commit never removes a git lock file: it waits for it, then fails naming\n" +
			"it, as git does. When no git command runs in the repository, this command\n" +
			"removes the lock files a crashed writer left on the refs this program\n" +
			"writes, and lists them on stdout. It refuses (exit 1) while a process\n" +
			"holds registry.lock (a writer of auths-agent or auths is running).",
		Flags: []cli.Flag{registryFlag()},
		Action: func(c *cli.Context) error {
			if err := wantArgs(c); err != nil {
				return err
			}
			dir := c.String("registry")
			r, err := openRegistry(env, dir)
			if err != nil {
				return err
			}
			removed, err := r.Unlock()
			if err != nil {
				if errors.Is(err, registry.ErrLockHeld) {
					return negativeErr("registry %s: %s", dir, oneLine(err.Error()))
				}
				return registryErr(dir, err)
			}
			if len(removed) == 0 {
				fmt.Fprintln(env.stdout, "no lock files to remove")
			}
			for _, p := range removed {
				fmt.Fprintf(env.stdout, "removed %s\n", p)
			}
			return nil
		},
	}
}

// registryOptions are the registry's injected dependencies for the CLI: the
// wall clock and diagnostics on stderr.
func registryOptions(env *cliEnv) []registry.Option {
	return []registry.Option{
		registry.WithClock(time.Now),
		registry.WithLogger(slog.New(slog.NewTextHandler(env.stderr, nil))),
	}
}

// openRegistry opens the repository at dir; a directory that is not a git
// repository is bad usage.
func openRegistry(env *cliEnv, dir string) (*registry.Registry, error) {
	r, err := registry.Open(dir, registryOptions(env)...)
	if err != nil {
		return nil, usageErr("%s", oneLine(err.Error()))
	}
	return r, nil
}

// registryErr maps registry errors to exit statuses (see cli.go): a
// corrupt registry is unreadable input (2, as anchor's commands say too); a
// refused batch, a conflict or an unknown prefix is a negative answer (1);
// anything else (I/O) is unreadable input.
func registryErr(dir string, err error) error {
	var oe *registry.OpError
	var le *registry.LockError
	switch {
	case errors.Is(err, registry.ErrCorrupt):
		return usageErr("registry %s: %s", dir, oneLine(err.Error()))
	case errors.As(err, &oe), errors.As(err, &le), errors.Is(err, registry.ErrConflict),
		errors.Is(err, registry.ErrNotFound), errors.Is(err, registry.ErrNoRegistry):
		return negativeErr("registry %s: %s", dir, oneLine(err.Error()))
	}
	return usageErr("registry %s: %s", dir, oneLine(err.Error()))
}
