package main

// This file holds `auths-agent pending push|pull`: exchanging the registry
// and the proposals with a git remote, and the --remote flag through which
// `pending sign` and `pending commit` commit on the remote first.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/registry"
	"github.com/auths-dev/auths-agent/socket"
)

// Environment variables with the credentials of https:// remotes (a user
// name and a password or token); ssh:// remotes authenticate through the
// ssh-agent at SSH_AUTH_SOCK and check known_hosts.
const (
	envHTTPUser     = "AUTHS_AGENT_GIT_USERNAME"
	envHTTPPassword = "AUTHS_AGENT_GIT_PASSWORD"
	envCAInfo       = "GIT_SSL_CAINFO"
)

func remoteFlag() cli.Flag {
	return &cli.StringFlag{Name: "remote", Usage: "a git remote's `NAME` (or a URL or path) to send the proposal through: pushed while it needs signatures, committed there first once complete"}
}

// remoteOf returns the remote named by --remote, with https credentials
// from the environment, nil when not given.
func remoteOf(c *cli.Context, env *cliEnv, a *anchor.Anchorer) (*registry.Remote, error) {
	if !c.IsSet("remote") {
		return nil, nil
	}
	rem := registry.Remote{Name: c.String("remote")}
	if r, ok := a.Registry().(*registry.Registry); ok {
		// An unknown remote is bad usage, found before any token signs:
		// the same exit status as pending push and pull give it.
		if _, err := r.RemoteURL(rem); err != nil {
			return nil, usageErr("%s: %s", commandPath(c), oneLine(err.Error()))
		}
		var err error
		if rem, err = withAuth(env, r, rem); err != nil {
			return nil, usageErr("%s: %s", commandPath(c), oneLine(err.Error()))
		}
	}
	return &rem, nil
}

// configureRemote sets an https:// remote's basic credentials from
// AUTHS_AGENT_GIT_USERNAME and AUTHS_AGENT_GIT_PASSWORD and its extra
// trusted certificates from the PEM file GIT_SSL_CAINFO names (git's own
// variable), when set. Credentials never come from argv, and go only to a
// remote configured in the registry (git remote add NAME URL), never to a
// URL named in the request: through the agent, any local client names the
// URL, and the credentials are the agent's. A remote given by its URL has
// rem.Name == url (registry.RemoteURL returns a configured remote's URL,
// and git allows no ':' in a remote's name).
func configureRemote(getenv func(string) string, rem *registry.Remote, url string) error {
	if !strings.HasPrefix(url, "https://") {
		return nil
	}
	if u, p := getenv(envHTTPUser), getenv(envHTTPPassword); (u != "" || p != "") && rem.Name != url {
		rem.Auth = &http.BasicAuth{Username: u, Password: p}
	}
	if f := getenv(envCAInfo); f != "" {
		pem, err := readBounded(f, maxCABundle)
		if err != nil {
			return fmt.Errorf("%s: %w", envCAInfo, err)
		}
		rem.CABundle = pem
	}
	return nil
}

// maxCABundle bounds the certificate file GIT_SSL_CAINFO names.
const maxCABundle = 1 << 20

// readBounded reads a file of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathErr(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathErr(err))
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes", path, max)
	}
	return data, nil
}

// remoteAuthFromEnv is the agent's agent.RemoteAuth: https credentials
// and certificates from serve's own environment.
func remoteAuthFromEnv(env *cliEnv) agent.RemoteAuth {
	return func(rem *registry.Remote, url string) error { return configureRemote(env.getenv, rem, url) }
}

// withAuth adds https credentials and certificates from the environment
// when the remote is an https:// URL and they are set.
func withAuth(env *cliEnv, reg *registry.Registry, rem registry.Remote) (registry.Remote, error) {
	url, err := reg.RemoteURL(rem)
	if err != nil {
		return rem, nil // Pull and Push report it
	}
	err = configureRemote(env.getenv, &rem, url)
	return rem, err
}

// remoteAnchorer opens --registry for pending push and pull and names
// --remote, with https credentials when withAuth finds them.
func remoteAnchorer(env *cliEnv, c *cli.Context) (*anchor.Anchorer, registry.Remote, error) {
	r, err := registry.Open(c.String("registry"))
	if err != nil {
		return nil, registry.Remote{}, usageErr("%s: %v", commandPath(c), oneLine(err.Error()))
	}
	rem, err := withAuth(env, r, registry.Remote{Name: c.String("remote")})
	if err != nil {
		return nil, rem, usageErr("%s: %s", commandPath(c), oneLine(err.Error()))
	}
	return anchor.New(r), rem, nil
}

// agentPaths returns --remote and --registry as the agent must get them:
// the agent runs in its own working directory ($HOME under systemd), so a
// relative --registry and a --remote that is a relative path are made
// absolute here, in the directory the user typed them in. A remote name
// (one configured in the registry, or one without '/') and a URL (with
// "://", or scp-like host:path) are sent as typed.
func agentPaths(c *cli.Context) (remote, regDir string) {
	remote, regDir = c.String("remote"), c.String("registry")
	if regDir != "" {
		if abs, err := filepath.Abs(regDir); err == nil {
			regDir = abs
		}
	}
	if !isRelativePath(remote) {
		return remote, regDir
	}
	if r, err := registry.Open(regDir); err == nil {
		if url, err := r.RemoteURL(registry.Remote{Name: remote}); err == nil && url != remote {
			return remote, regDir // a configured remote whose name has a '/'
		}
	}
	if abs, err := filepath.Abs(remote); err == nil {
		remote = abs
	}
	return remote, regDir
}

// isRelativePath says whether a --remote is a relative path, as the
// registry resolves it when no remote of that name is configured.
func isRelativePath(remote string) bool {
	if remote == "" || filepath.IsAbs(remote) || strings.Contains(remote, "://") {
		return false
	}
	if i := strings.IndexAny(remote, ":/"); i >= 0 && remote[i] == ':' {
		return false // scp-like host:path
	}
	return strings.Contains(remote, "/") || remote == "." || remote == ".."
}

// remoteAgent returns the agent answering on $AUTHS_AGENT_SOCK for pending
// push and pull, nil when --no-agent is given or none answers.
func remoteAgent(c *cli.Context, env *cliEnv) (*socket.Client, error) {
	if c.Bool("no-agent") {
		return nil, nil
	}
	return dialAgent(c, env, false)
}

func pendingPushCommand(env *cliEnv, reg cli.Flag) *cli.Command {
	return &cli.Command{
		Name: "push",
		Usage: "send the registry and the proposals to a git remote (fast-forward only; pulls and retries when the remote moved; " +
			"deletes the remote's proposals that can never be committed); through the agent when one answers",
		Flags: []cli.Flag{reg, &cli.StringFlag{Name: "remote", Value: "origin", Usage: "the git remote's `NAME` (or a URL or path)"}, noAgentFlag},
		Action: func(c *cli.Context) error {
			cmd := commandPath(c)
			if err := wantArgs(c); err != nil {
				return err
			}
			var res socket.PushReply
			cl, err := remoteAgent(c, env)
			if err != nil {
				return err
			}
			if cl != nil {
				defer cl.Close()
				remote, regDir := agentPaths(c)
				r, err := cl.Push(c.Context, remote, regDir)
				if err != nil {
					return remoteAgentErr(cmd, err)
				}
				res = *r
			} else {
				a, rem, err := remoteAnchorer(env, c)
				if err != nil {
					return err
				}
				r, err := a.Push(c.Context, rem)
				if err != nil {
					return remoteErr(cmd, err)
				}
				res = socket.PushReplyOf(r)
			}
			printPush(env, cmd, &res)
			return nil
		},
	}
}

// printPush writes what a push did: the pulls between attempts, the
// proposals dropped locally, the refs sent, the remote's proposals deleted.
func printPush(env *cliEnv, cmd string, res *socket.PushReply) {
	for i := range res.Pulls {
		printPull(env, cmd, &res.Pulls[i])
	}
	printDropped(env, res.Dropped)
	if res.UpToDate {
		fmt.Fprintf(env.stdout, "up to date\t%s\n", res.URL)
	} else {
		for _, ref := range res.Refs {
			fmt.Fprintf(env.stdout, "pushed\t%s\t%s\n", ref, res.URL)
		}
	}
	for _, ref := range res.Deleted {
		fmt.Fprintf(env.stdout, "deleted\t%s\t%s\n", ref, res.URL)
	}
}

func pendingPullCommand(env *cliEnv, reg cli.Flag) *cli.Command {
	return &cli.Command{
		Name: "pull",
		Usage: "fetch the registry (every commit verified, fast-forward only) and the proposals (merged, signatures re-verified) " +
			"from a git remote; through the agent when one answers",
		Flags: []cli.Flag{reg, &cli.StringFlag{Name: "remote", Value: "origin", Usage: "the git remote's `NAME` (or a URL or path)"}, noAgentFlag},
		Action: func(c *cli.Context) error {
			cmd := commandPath(c)
			if err := wantArgs(c); err != nil {
				return err
			}
			cl, err := remoteAgent(c, env)
			if err != nil {
				return err
			}
			if cl != nil {
				defer cl.Close()
				remote, regDir := agentPaths(c)
				r, err := cl.Pull(c.Context, remote, regDir)
				if err != nil {
					return remoteAgentErr(cmd, err)
				}
				printPull(env, cmd, r)
				return nil
			}
			a, rem, err := remoteAnchorer(env, c)
			if err != nil {
				return err
			}
			res, err := a.Pull(c.Context, rem)
			if res != nil {
				r := socket.PullReplyOf(res)
				printPull(env, cmd, &r)
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
func printPull(env *cliEnv, cmd string, res *socket.PullReply) {
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
		case pp.Error != "":
			fmt.Fprintf(w, "pending\t%s\t%s\tnot taken\n", pp.Prefix, pp.SAID)
			fmt.Fprintf(env.stderr, "auths-agent: %s: %s %s: %s\n", cmd, pp.Prefix, pp.SAID, oneLine(pp.Error))
		case pp.How != "":
			fmt.Fprintf(w, "pending\t%s\t%s\t%s\t+%d files\n", pp.Prefix, pp.SAID, pp.How, len(pp.Added))
		}
		for _, f := range pp.Refused {
			fmt.Fprintf(env.stderr, "auths-agent: %s: %s %s: refused %s (does not verify)\n", cmd, pp.Prefix, pp.SAID, f)
		}
	}
	printDropped(env, res.Dropped)
}

func printDropped(env *cliEnv, l []socket.DroppedProposal) {
	for _, d := range l {
		fmt.Fprintf(env.stdout, "dropped\t%s\t%s\t%s\t%s\n", d.Prefix, d.SAID, d.State, oneLine(d.Detail))
	}
}

// pendingSignRemoteViaAgent runs `pending sign --remote NAME PREFIX SAID`
// through the agent: it signs with its keys, then pushes the proposal to
// the remote of its registry, or commits it there first once complete.
func pendingSignRemoteViaAgent(c *cli.Context, env *cliEnv, cl *socket.Client) error {
	cmd := commandPath(c)
	remote, regDir := agentPaths(c)
	r, err := cl.PendingSignRemote(c.Context, c.Args().Get(0), c.Args().Get(1), remote, regDir)
	if err != nil {
		return remoteAgentErr(cmd, err)
	}
	for _, i := range r.AlreadySigned {
		fmt.Fprintf(env.stderr, "auths-agent: %s: %s %s: already signed by index %d (the agent's key); not signing again\n", cmd, r.Prefix, r.SAID, i)
	}
	if r.Cleanup != "" {
		fmt.Fprintf(env.stderr, "auths-agent: %s: committed, but the pending ref stays: %s\n", cmd, oneLine(r.Cleanup))
	}
	printOutcome(env, r.Committed, r.Prefix, r.Sn, r.SAID, r.Needs)
	for _, ref := range r.Pushed {
		fmt.Fprintf(env.stdout, "pushed\t%s\t%s\n", ref, r.URL)
	}
	return nil
}

// remoteAgentErr maps an agent's failure to exchange with a remote to the
// exit statuses remoteErr gives: the remote refused, diverged, or another
// machine took the sequence number (and the agent's own refusals) are
// negative answers; an unreachable remote, failed authentication, a remote
// without a registry or a broken conversation are unreadable input.
func remoteAgentErr(cmd string, err error) error {
	var ee *socket.ExtensionError
	if errors.As(err, &ee) {
		switch ee.Reason {
		case "", "bad-request", "other-registry", "remote-empty", "timeout", "cancelled":
			return usageErr("%s: agent: %s", cmd, oneLine(err.Error()))
		}
		return negativeErr("%s: agent: %s", cmd, oneLine(err.Error()))
	}
	return usageErr("%s: agent: %s", cmd, oneLine(err.Error()))
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
