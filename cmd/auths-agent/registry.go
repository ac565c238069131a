package main

// This file holds `auths-agent registry`: creating the auths v1 registry in
// a git repository, and removing the git lock files a crashed writer left.

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
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
			if _, err := registry.Open(dir); err != nil {
				// Not a repository: only a new or empty directory becomes one.
				if entries, rerr := os.ReadDir(dir); rerr == nil && len(entries) > 0 {
					return cmdUsageErr(c, "%s: %s is not a git repository and not empty: give a new or empty directory, or a repository", commandPath(c), dir)
				}
			}
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

// initFlag is --init of the commands that write: without it they write only
// to an existing registry.
func initFlag() cli.Flag {
	return &cli.BoolFlag{Name: "init", Usage: "create the registry when DIR is a new or empty directory, or a git repository without refs/auths/registry"}
}

// writableRegistry opens the registry a writing command writes to (see
// planRegistry).
func writableRegistry(c *cli.Context, env *cliEnv, dir string) (*registry.Registry, error) {
	open, _, err := planRegistry(c, env, dir)
	if err != nil {
		return nil, err
	}
	return open()
}

// planRegistry checks the registry a writing command will write to and
// returns what opens it, creating it with --init. A directory that does not
// hold refs/auths/registry is refused unless --init is given, so that a
// mistyped path or an unrelated repository never becomes a registry by
// accident; even with --init, a directory that holds other files and no git
// repository is refused. Nothing is created before open is called (creates
// says whether it will create the registry), so a command can check
// everything else first.
func planRegistry(c *cli.Context, env *cliEnv, dir string) (open func() (*registry.Registry, error), creates bool, err error) {
	cmd := commandPath(c)
	if dir == "" {
		return nil, false, cmdUsageErr(c, "%s: --registry is required", cmd)
	}
	r, err := registry.Open(dir, registryOptions(env)...)
	if err == nil {
		_, herr := r.Head()
		switch {
		case herr == nil:
			return func() (*registry.Registry, error) { return r, nil }, false, nil
		case !errors.Is(herr, registry.ErrNoRegistry):
			return nil, false, registryErr(dir, herr)
		case !c.Bool("init"):
			return nil, false, cmdUsageErr(c, "%s: %s is a git repository without %s: give --init to create the registry in it, or check --registry", cmd, dir, registry.RegistryRef)
		}
	} else {
		entries, rerr := os.ReadDir(dir)
		switch {
		case rerr != nil && !errors.Is(rerr, fs.ErrNotExist):
			return nil, false, usageErr("%s: registry %s: %v", cmd, dir, unwrapPathErr(rerr))
		case rerr == nil && len(entries) > 0:
			return nil, false, cmdUsageErr(c, "%s: %s is not a git repository and not empty: give the registry's directory", cmd, dir)
		case !c.Bool("init") && rerr != nil:
			return nil, false, cmdUsageErr(c, "%s: %s does not exist: give --init to create a registry there, or check --registry", cmd, dir)
		case !c.Bool("init"):
			return nil, false, cmdUsageErr(c, "%s: %s is an empty directory: give --init to create a registry there", cmd, dir)
		}
	}
	return func() (*registry.Registry, error) {
		r, created, err := registry.Init(c.Context, dir, false, registryOptions(env)...)
		if err != nil {
			return nil, registryErr(dir, err)
		}
		if created {
			fmt.Fprintf(env.stderr, "auths-agent: %s: created %s in %s\n", cmd, registry.RegistryRef, dir)
		}
		return r, nil
	}, true, nil
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
