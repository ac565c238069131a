package main

// This file holds `auths-agent pending push|pull`: exchanging the registry
// and the proposals with a git remote, and the --remote flag through which
// `pending sign` and `pending commit` commit on the remote first.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/registry"
)

// Environment variables with the credentials of https:// remotes (a user
// name and a password or token); ssh:// remotes authenticate through the
// ssh-agent at SSH_AUTH_SOCK and check known_hosts.
const (
	envHTTPUser     = "AUTHS_AGENT_GIT_USERNAME"
	envHTTPPassword = "AUTHS_AGENT_GIT_PASSWORD"
)

func remoteFlag() cli.Flag {
	return &cli.StringFlag{Name: "remote", Usage: "a git remote's `NAME` (or a URL or path) to commit through (sign then opens the tokens itself, not through the agent)"}
}

// remoteOf returns the remote named by --remote, nil when not given.
func remoteOf(c *cli.Context) *registry.Remote {
	if !c.IsSet("remote") {
		return nil
	}
	return &registry.Remote{Name: c.String("remote")}
}

// withAuth adds https credentials from the environment when the remote is
// an https:// URL and they are set.
func withAuth(env *cliEnv, reg *registry.Registry, rem registry.Remote) registry.Remote {
	url, err := reg.RemoteURL(rem)
	if err != nil || !strings.HasPrefix(url, "https://") {
		return rem
	}
	if u, p := env.getenv(envHTTPUser), env.getenv(envHTTPPassword); u != "" || p != "" {
		rem.Auth = &http.BasicAuth{Username: u, Password: p}
	}
	return rem
}

// remoteAnchorer opens --registry for pending push and pull and names
// --remote, with https credentials when withAuth finds them.
func remoteAnchorer(env *cliEnv, c *cli.Context) (*anchor.Anchorer, registry.Remote, error) {
	if err := wantArgs(c); err != nil {
		return nil, registry.Remote{}, err
	}
	r, err := registry.Open(c.String("registry"))
	if err != nil {
		return nil, registry.Remote{}, usageErr("%s: %v", commandPath(c), oneLine(err.Error()))
	}
	return anchor.New(r), withAuth(env, r, registry.Remote{Name: c.String("remote")}), nil
}

func pendingPushCommand(env *cliEnv, reg cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "push",
		Usage: "send the registry and the proposals to a git remote (fast-forward only; pulls and retries when the remote moved)",
		Flags: []cli.Flag{reg, &cli.StringFlag{Name: "remote", Value: "origin", Usage: "the git remote's `NAME` (or a URL or path)"}},
		Action: func(c *cli.Context) error {
			cmd := commandPath(c)
			a, rem, err := remoteAnchorer(env, c)
			if err != nil {
				return err
			}
			res, err := a.Push(c.Context, rem)
			if err != nil {
				return remoteErr(cmd, err)
			}
			for _, pr := range res.Pulls {
				printPull(env, cmd, &anchor.PullResult{PullResult: pr})
			}
			if res.UpToDate {
				fmt.Fprintf(env.stdout, "up to date\t%s\n", res.URL)
				return nil
			}
			for _, ref := range res.Refs {
				fmt.Fprintf(env.stdout, "pushed\t%s\t%s\n", ref, res.URL)
			}
			return nil
		},
	}
}

func pendingPullCommand(env *cliEnv, reg cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "pull",
		Usage: "fetch the registry (every commit verified, fast-forward only) and the proposals (merged, signatures re-verified) from a git remote",
		Flags: []cli.Flag{reg, &cli.StringFlag{Name: "remote", Value: "origin", Usage: "the git remote's `NAME` (or a URL or path)"}},
		Action: func(c *cli.Context) error {
			cmd := commandPath(c)
			a, rem, err := remoteAnchorer(env, c)
			if err != nil {
				return err
			}
			res, err := a.Pull(c.Context, rem)
			if res != nil {
				printPull(env, cmd, res)
			}
			if err != nil {
				return remoteErr(cmd, err)
			}
			return nil
		},
	}
}

// printPull writes what a pull did: the registry, then one line per
// proposal of the remote, then the local proposals it made dead.
func printPull(env *cliEnv, cmd string, res *anchor.PullResult) {
	w := env.stdout
	switch {
	case res.Commits > 0:
		from := res.From
		if from == "" {
			from = "(none)"
		}
		fmt.Fprintf(w, "registry\t%s..%s\t%d commits verified\n", from, res.To, res.Commits)
	case res.Ahead:
		fmt.Fprintf(w, "registry\t%s\tahead of %s (push it)\n", res.To, res.Remote)
	default:
		fmt.Fprintf(w, "registry\t%s\tup to date\n", res.To)
	}
	for _, pp := range res.Pending {
		switch {
		case pp.Err != nil:
			fmt.Fprintf(w, "pending\t%s\t%s\tnot taken\n", pp.ID.Prefix, pp.ID.SAID)
			fmt.Fprintf(env.stderr, "auths-agent: %s: %s %s: %s\n", cmd, pp.ID.Prefix, pp.ID.SAID, oneLine(pp.Err.Error()))
		case pp.MergeResult != nil:
			fmt.Fprintf(w, "pending\t%s\t%s\t%s\t+%d files\n", pp.ID.Prefix, pp.ID.SAID, pp.How, len(pp.Added))
		}
		for _, f := range pp.Refused {
			fmt.Fprintf(env.stderr, "auths-agent: %s: %s %s: refused %s (does not verify)\n", cmd, pp.ID.Prefix, pp.ID.SAID, f)
		}
	}
	for _, pd := range res.Dropped {
		state, detail := pendingState(pd)
		fmt.Fprintf(w, "dropped\t%s\t%s\t%s\t%s\n", pd.ID.Prefix, pd.ID.SAID, state, detail)
	}
}

// remoteErr maps the errors of exchanging with a remote to exit statuses:
// a remote refused (forged content, diverged history, a commit race lost)
// is a negative answer; an unreachable or unknown remote is unreadable
// input.
func remoteErr(cmd string, err error) error {
	var re *registry.RefusedError
	switch {
	case errors.As(err, &re), errors.Is(err, registry.ErrNotFastForward), errors.Is(err, registry.ErrConflict), errors.Is(err, anchor.ErrStale):
		return negativeErr("%s: %s", cmd, oneLine(err.Error()))
	}
	return usageErr("%s: %s", cmd, oneLine(err.Error()))
}

func joinInts(l []int) string {
	s := make([]string, len(l))
	for i, n := range l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
