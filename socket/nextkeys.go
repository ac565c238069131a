package socket

// This file holds next-keys@auths.dev, the first step of `id create` and
// `id rotate` through the agent: it checks the current keys and makes the
// next keys beside them on the agent's tokens; id-create@auths.dev and
// id-rotate@auths.dev then commit to them (their next_keys) and to any
// next digests given otherwise (next_digests).

import (
	"context"
	"fmt"

	"github.com/auths-dev/auths-agent/agent"
)

// ExtNextKeys names the next-keys extension.
const ExtNextKeys = "next-keys@auths.dev"

// NextKeysRequest is the body of next-keys@auths.dev.
type NextKeysRequest struct {
	Prefix      string   `json:"prefix,omitempty"` // the identity rotated; none for an inception
	Keys        []string `json:"keys"`             // the new current keys, CESR, held by the agent
	Registry    string   `json:"registry,omitempty"`
	NextDigests []string `json:"next_digests,omitempty"` // next digests committed to besides the keys made
	Generate    bool     `json:"generate,omitempty"`
	// Contribution: the key is a member's contribution (id contribute),
	// for an event built elsewhere; no prefix.
	Contribution bool `json:"contribution,omitempty"`
}

// NextKeysReply lists the next keys made (or reused), in key order.
type NextKeysReply struct {
	Next []agent.NextKey `json:"next,omitempty"`
}

func extNextKeys(ctx context.Context, s *Server, body []byte) (any, error) {
	var req NextKeysRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if len(req.Keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", errBadRequest)
	}
	if req.Contribution && (req.Prefix != "" || len(req.Keys) != 1) {
		return nil, fmt.Errorf("%w: a contribution is one key and no prefix", errBadRequest)
	}
	next, err := s.agent.NextKeys(ctx, agent.NextKeysSpec{Prefix: req.Prefix, Keys: req.Keys, Registry: req.Registry,
		NextDigests: req.NextDigests, Generate: req.Generate, Contribution: req.Contribution})
	if err != nil {
		return nil, err
	}
	return NextKeysReply{Next: next}, nil
}

// NextKeys asks the agent to check the keys of an id create or rotate and,
// with req.Generate, to make a next key beside each.
func (c *Client) NextKeys(ctx context.Context, req NextKeysRequest) ([]agent.NextKey, error) {
	var r NextKeysReply
	if err := c.Call(ctx, ExtNextKeys, req, &r); err != nil {
		return nil, err
	}
	return r.Next, nil
}
