package socket

// The extensions that exchange the registry and the proposals with git
// remotes (agent.Agent.Pull, Push, PendingSignRemote), and their wire
// forms, which the CLI prints from whether it asked the agent or opened
// the registry itself.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/registry"
)

// Remote extension names.
const (
	ExtPendingPush = "pending-push@auths.dev"
	ExtPendingPull = "pending-pull@auths.dev"
)

// remoteExtensions are merged into extensions().
func remoteExtensions() map[string]extension {
	return map[string]extension{
		ExtPendingPush: extPendingPush,
		ExtPendingPull: extPendingPull,
	}
}

// RemoteRequest is the body of pending-push@auths.dev and
// pending-pull@auths.dev: a remote configured in the agent's registry
// (default origin), or a URL or path.
type RemoteRequest struct {
	Remote string `json:"remote,omitempty"`
	// Registry, when given, is the registry the client means: a request
	// to an agent serving another one is refused (other-registry), not run
	// on the agent's.
	Registry string `json:"registry,omitempty"`
}

// PullReply says what a pull took and dropped.
type PullReply struct {
	Remote  string `json:"remote"`
	URL     string `json:"url"` // never with credentials
	From    string `json:"from"`
	To      string `json:"to"`
	Commits int    `json:"commits"` // registry commits taken, each verified
	Ahead   bool   `json:"ahead,omitempty"`
	// Pending has one entry per proposal the remote holds.
	Pending []PulledProposal `json:"pending,omitempty"`
	// Dropped lists the local proposals the new registry made dead.
	Dropped []DroppedProposal `json:"dropped,omitempty"`
}

// PulledProposal is what happened to one proposal of the remote.
type PulledProposal struct {
	Prefix string `json:"prefix"`
	SAID   string `json:"said"`
	// How is created, unchanged, fast-forward, merge or added; empty when
	// the proposal was not taken (Error says why).
	How     string   `json:"how,omitempty"`
	Added   []string `json:"added,omitempty"`
	Refused []string `json:"refused,omitempty"` // files left out: they do not verify
	Error   string   `json:"error,omitempty"`
}

// DroppedProposal is a proposal removed because it can never be committed.
type DroppedProposal struct {
	Prefix string `json:"prefix"`
	SAID   string `json:"said"`
	State  string `json:"state"` // stale, committed, expired
	Detail string `json:"detail"`
}

// PushReply says what a push sent and deleted.
type PushReply struct {
	Remote   string      `json:"remote"`
	URL      string      `json:"url"`
	Refs     []string    `json:"refs,omitempty"`
	UpToDate bool        `json:"up_to_date,omitempty"`
	Attempts int         `json:"attempts"`
	Pulls    []PullReply `json:"pulls,omitempty"` // the pulls between attempts
	// Deleted lists the remote's proposal refs deleted (dead ones).
	Deleted []string `json:"deleted,omitempty"`
	// Dropped lists the local proposals removed before pushing.
	Dropped []DroppedProposal `json:"dropped,omitempty"`
}

// PullReplyOf is the wire form of a pull's result.
func PullReplyOf(res *anchor.PullResult) PullReply {
	if res == nil || res.PullResult == nil {
		return PullReply{}
	}
	out := PullReply{Remote: res.Remote, URL: res.URL, From: res.From, To: res.To, Commits: res.Commits, Ahead: res.Ahead,
		Dropped: droppedOf(res.Dropped)}
	for _, pp := range res.Pending {
		pr := PulledProposal{Prefix: pp.ID.Prefix, SAID: pp.ID.SAID, Refused: pp.Refused}
		switch {
		case pp.Err != nil:
			pr.Error = oneLine(pp.Err.Error())
		case pp.MergeResult != nil:
			pr.How, pr.Added = pp.How, pp.Added
		}
		out.Pending = append(out.Pending, pr)
	}
	return out
}

// PushReplyOf is the wire form of a push's result.
func PushReplyOf(res *anchor.PushResult) PushReply {
	if res == nil || res.PushResult == nil {
		return PushReply{}
	}
	out := PushReply{Remote: res.Remote, URL: res.URL, Refs: res.Refs, UpToDate: res.UpToDate, Attempts: res.Attempts,
		Deleted: res.Deleted, Dropped: droppedOf(res.Dropped)}
	for _, pr := range res.Pulls {
		out.Pulls = append(out.Pulls, PullReplyOf(&anchor.PullResult{PullResult: pr}))
	}
	return out
}

func droppedOf(l []*anchor.Pending) []DroppedProposal {
	var out []DroppedProposal
	for _, pd := range l {
		d := DroppedProposal{Prefix: pd.ID.Prefix, SAID: pd.ID.SAID, State: "damaged"}
		if pd.Err != nil {
			d.Detail = oneLine(pd.Err.Error())
		}
		switch {
		case errors.Is(pd.Err, anchor.ErrStale):
			d.State = "stale"
		case errors.Is(pd.Err, anchor.ErrCommitted):
			d.State, d.Detail = "committed", "already in the KEL"
		case errors.Is(pd.Err, anchor.ErrExpired):
			d.State = "expired"
			if pd.Proposal != nil {
				d.Detail = "expired at " + pd.Proposal.Expires().Format(time.RFC3339)
			}
		}
		out = append(out, d)
	}
	return out
}

func extPendingPull(ctx context.Context, s *Server, body []byte) (any, error) {
	var req RemoteRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if err := checkRemoteName(req.Remote); err != nil {
		return nil, err
	}
	res, err := s.agent.Pull(ctx, req.Remote, req.Registry)
	if err != nil {
		return nil, err
	}
	return PullReplyOf(res), nil
}

func extPendingPush(ctx context.Context, s *Server, body []byte) (any, error) {
	var req RemoteRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if err := checkRemoteName(req.Remote); err != nil {
		return nil, err
	}
	res, err := s.agent.Push(ctx, req.Remote, req.Registry)
	if err != nil {
		return nil, err
	}
	return PushReplyOf(res), nil
}

// checkRemoteName refuses a remote name no git remote or URL has.
func checkRemoteName(name string) error {
	if len(name) > 4096 || strings.ContainsAny(name, "\x00\n\r") {
		return fmt.Errorf("%w: remote: not a remote name, URL or path", errBadRequest)
	}
	return nil
}

// remoteReason names the failures of exchanging with a remote for programs
// (see reasonOf): the remote refused or diverged, or another machine took
// the sequence number, versus a remote without a registry.
func remoteReason(err error) string {
	var re *registry.RefusedError
	switch {
	case errors.As(err, &re):
		return "remote-refused"
	case errors.Is(err, registry.ErrNotFastForward):
		return "not-fast-forward"
	case errors.Is(err, anchor.ErrStale):
		return "stale"
	case errors.Is(err, registry.ErrConflict):
		return "conflict"
	case errors.Is(err, registry.ErrRemoteEmpty):
		return "remote-empty"
	}
	return ""
}

// PendingSignReply is the reply of pending@auths.dev with a remote: where
// the proposal ended and what went to the remote.
type PendingSignReply = agent.RemoteSignResult

// Pull asks the agent to pull from a remote of its registry (registry,
// when not "", names the registry meant: see RemoteRequest).
func (c *Client) Pull(ctx context.Context, remote, registry string) (*PullReply, error) {
	var r PullReply
	if err := c.Call(ctx, ExtPendingPull, RemoteRequest{Remote: remote, Registry: registry}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Push asks the agent to push to a remote of its registry (registry as
// for Pull).
func (c *Client) Push(ctx context.Context, remote, registry string) (*PushReply, error) {
	var r PushReply
	if err := c.Call(ctx, ExtPendingPush, RemoteRequest{Remote: remote, Registry: registry}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PendingSignRemote asks the agent to sign a proposal and send it through
// a remote: pushed while it needs signatures, committed there once
// complete.
func (c *Client) PendingSignRemote(ctx context.Context, prefix, said, remote, registry string) (*PendingSignReply, error) {
	var r PendingReply
	if err := c.Call(ctx, ExtPending, PendingRequest{Prefix: prefix, SAID: said, Remote: remote, Registry: registry}, &r); err != nil {
		return nil, err
	}
	if r.Remote == nil {
		return nil, errors.New(ExtPending + ": the agent answered without the remote's outcome (an agent without remotes)")
	}
	return r.Remote, nil
}
