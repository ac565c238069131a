package agent

// Co-signing through git remotes inside the agent: pulling and pushing the
// registry and the proposals (package anchor judges what a remote serves,
// package registry moves it), and signing a proposal that then lands on
// the remote: pushed while it still needs signatures, committed there
// first once complete.

import (
	"context"
	"fmt"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/registry"
)

// RemoteAuth sets the credentials and trusted certificates of a remote
// whose URL is url; leaving them unset uses go-git's defaults (for ssh://,
// the ssh-agent at SSH_AUTH_SOCK of the agent's environment, which may be
// the agent's own socket, and known_hosts). An error refuses the request.
type RemoteAuth func(rem *registry.Remote, url string) error

// remote names remote name in the agent's registry, with the credentials
// Options.RemoteAuth gives for its URL. regDir, when not "", is the
// registry the client means: another one than the agent's is refused
// (ErrOtherRegistry), never exchanged in its place.
func (a *Agent) remote(op, name, regDir string) (registry.Remote, error) {
	if a.reg == nil {
		return registry.Remote{}, refuse(op, ErrNoRegistry, "the agent has no registry (--registry)")
	}
	if own := a.RegistryDir(); regDir != "" && !sameDir(regDir, own) {
		return registry.Remote{}, refuse(op, ErrOtherRegistry, "the agent's registry is %s, not %s", own, regDir)
	}
	if name == "" {
		name = "origin"
	}
	rem := registry.Remote{Name: name}
	url, err := a.reg.RemoteURL(rem)
	if err != nil {
		return registry.Remote{}, err
	}
	if a.remoteAuth != nil {
		if err := a.remoteAuth(&rem, url); err != nil {
			return registry.Remote{}, err
		}
	}
	return rem, nil
}

// RegistryDir is the directory of the agent's registry, "" without one.
func (a *Agent) RegistryDir() string {
	switch {
	case a.reg == nil:
		return ""
	case a.regDir != "":
		return a.regDir
	}
	return a.reg.TopDir()
}

// Pull fetches the registry and the proposals of the agent's registry's
// remote name ("" is origin): registry commits verified and fast-forwarded,
// proposals checked and merged by union, local proposals the new registry
// made dead removed (anchor.Anchorer.Pull). regDir as for remote.
func (a *Agent) Pull(ctx context.Context, name, regDir string) (*anchor.PullResult, error) {
	rem, err := a.remote("pending pull", name, regDir)
	if err != nil {
		return nil, err
	}
	res, err := anchor.New(a.reg, anchor.WithClock(a.clock)).Pull(ctx, rem)
	if err != nil {
		return res, err
	}
	a.log.Info("pulled", "remote", res.URL, "commits", res.Commits, "proposals", len(res.Pending), "dropped", len(res.Dropped))
	return res, nil
}

// Push sends the registry and the proposals to remote name ("" is
// origin), pulling and pushing again when the remote moved, and deletes
// the remote's proposals that can never be committed
// (anchor.Anchorer.Push). regDir as for remote.
func (a *Agent) Push(ctx context.Context, name, regDir string) (*anchor.PushResult, error) {
	rem, err := a.remote("pending push", name, regDir)
	if err != nil {
		return nil, err
	}
	res, err := anchor.New(a.reg, anchor.WithClock(a.clock)).Push(ctx, rem)
	if err != nil {
		return nil, err
	}
	a.log.Info("pushed", "remote", res.URL, "refs", len(res.Refs), "deleted", len(res.Deleted))
	return res, nil
}

// RemoteSignResult is where a proposal signed through a remote ended.
type RemoteSignResult struct {
	AnchorResult
	URL    string   `json:"url"`              // the remote, without credentials
	Pushed []string `json:"pushed,omitempty"` // refs pushed when it still needs signatures
	// Cleanup says why the committed proposal's ref stays on the remote
	// (the others then find it committed and drop it when they pull).
	Cleanup string `json:"cleanup,omitempty"`
}

// PendingSignRemote is PendingSign through remote name ("" is origin):
// after the agent's keys signed, a proposal that still needs signatures is
// saved and pushed (anchor.Anchorer.Push), a complete one is committed on
// the remote before the agent's registry ref moves
// (anchor.Anchorer.CommitPush: stale when another machine took its s).
// regDir as for remote.
func (a *Agent) PendingSignRemote(ctx context.Context, prefix, said, name, regDir string) (*RemoteSignResult, error) {
	rem, err := a.remote("pending sign", name, regDir)
	if err != nil {
		return nil, err
	}
	fin := &remoteFinish{rem: rem}
	res, err := a.pendingSign(ctx, prefix, said, fin)
	if err != nil {
		return nil, err
	}
	out := &RemoteSignResult{AnchorResult: *res, Pushed: fin.pushed, Cleanup: fin.cleanup}
	if u, err := a.reg.RemoteURL(rem); err == nil {
		out.URL = registry.ShowURL(u)
	}
	return out, nil
}

// remoteFinish saves then pushes, or commits through the remote, and
// keeps what it did for the reply.
type remoteFinish struct {
	rem     registry.Remote
	pushed  []string
	cleanup string
}

func (f *remoteFinish) save(ctx context.Context, an *anchor.Anchorer, p *anchor.Proposal) error {
	if err := an.Save(ctx, p); err != nil {
		return err
	}
	res, err := an.Push(ctx, f.rem)
	if err != nil {
		return fmt.Errorf("%s %s saved in escrow, but not sent: %w", p.Prefix(), p.SAID(), err)
	}
	f.pushed = res.Refs
	return nil
}

func (f *remoteFinish) commit(ctx context.Context, an *anchor.Anchorer, p *anchor.Proposal) (*anchor.Result, error) {
	res, err := an.CommitPush(ctx, p, f.rem)
	if err != nil {
		return nil, err
	}
	if res.CleanupErr != nil {
		f.cleanup = res.CleanupErr.Error()
	}
	return res, nil
}
