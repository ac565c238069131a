package socket

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/kel"
)

// Extension names.
const (
	ExtQuery     = "query"
	ExtKeys      = "keys@auths.dev"
	ExtSignEvent = "sign-event@auths.dev"
	ExtAnchor    = "anchor@auths.dev"
	ExtPending   = "pending@auths.dev"
)

// extension serves one extension: it decodes body and returns a value
// marshalled as the JSON reply (or a rawReply).
type extension func(ctx context.Context, s *Server, body []byte) (any, error)

// rawReply is a reply sent as is after SSH_AGENT_SUCCESS.
type rawReply []byte

var errBadRequest = errors.New("bad request")

func extensions() map[string]extension {
	m := map[string]extension{
		ExtKeys:      extKeys,
		ExtSignEvent: extSignEvent,
		ExtAnchor:    extAnchor,
		ExtPending:   extPending,
		ExtIDCreate:  extIDCreate,
		ExtIDRotate:  extIDRotate,
		// id create/rotate through the agent (nextkeys.go)
		ExtNextKeys: extNextKeys,
	}
	for n, f := range remoteExtensions() {
		m[n] = f
	}
	m[ExtNoticesTo], m[ExtNotices] = extNoticesTo, extNotices // notices.go
	m[ExtQuery] = func(context.Context, *Server, []byte) (any, error) {
		names := []string{ExtQuery}
		for n := range m {
			if n != ExtQuery {
				names = append(names, n)
			}
		}
		slices.Sort(names[1:])
		var b bytes.Buffer
		for _, n := range names {
			binary.Write(&b, binary.BigEndian, uint32(len(n)))
			b.WriteString(n)
		}
		return rawReply(b.Bytes()), nil
	}
	return m
}

// decodeRequest decodes a JSON extension body into v: one object, no
// unknown fields. Errors say what was wrong without quoting the body.
func decodeRequest(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("%w: JSON syntax error at byte %d", errBadRequest, se.Offset)
		case errors.As(err, &te):
			return fmt.Errorf("%w: field %q: want %s", errBadRequest, te.Field, te.Type)
		}
		return fmt.Errorf("%w: %s", errBadRequest, clipText(err.Error()))
	}
	if dec.More() {
		return fmt.Errorf("%w: more than one JSON value", errBadRequest)
	}
	return nil
}

func clipText(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}

// KeysRequest is the body of keys@auths.dev (empty).
type KeysRequest struct{}

// KeysReply lists the keys held.
type KeysReply struct {
	Keys []agent.KeyInfo `json:"keys"`
}

func extKeys(ctx context.Context, s *Server, body []byte) (any, error) {
	var req KeysRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	keys, err := s.agent.Keys(ctx)
	if err != nil {
		return nil, err
	}
	return KeysReply{Keys: keys}, nil
}

// SignEventRequest is the body of sign-event@auths.dev: the event's exact
// bytes as a JSON string.
type SignEventRequest struct {
	Event string `json:"event"`
}

// SignEventReply holds the indexed signatures the agent made.
type SignEventReply struct {
	Prefix     string   `json:"prefix"`
	Sn         string   `json:"s"` // hex, as in the event
	SAID       string   `json:"said"`
	Type       string   `json:"type"`
	Signatures []string `json:"signatures"` // CESR qb64 indexed signatures, by index
	Indexes    []int    `json:"indexes"`
	Group      string   `json:"attachment"` // the -A## group of them
}

func extSignEvent(ctx context.Context, s *Server, body []byte) (any, error) {
	var req SignEventRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if req.Event == "" {
		return nil, fmt.Errorf("%w: no event", errBadRequest)
	}
	res, err := s.agent.SignEvent(ctx, []byte(req.Event))
	if err != nil {
		return nil, err
	}
	out := SignEventReply{Prefix: res.Prefix, Sn: fmt.Sprintf("%x", res.Sn), SAID: res.SAID, Type: res.Type}
	for _, sg := range res.Sigs {
		q, err := sg.QB64()
		if err != nil {
			return nil, err
		}
		out.Signatures = append(out.Signatures, q)
		out.Indexes = append(out.Indexes, sg.Index)
	}
	group, err := kel.EncodeSigGroup(res.Sigs)
	if err != nil {
		return nil, err
	}
	out.Group = string(group)
	return out, nil
}

// AnchorRequest is the body of anchor@auths.dev: seals as the CLI's --seal
// text (d=SAID or i=AID,s=HEX,d=SAID) and attestations to store and anchor.
type AnchorRequest struct {
	Prefix       string              `json:"prefix"`
	Seals        []string            `json:"seals,omitempty"`
	Attestations []AttestationChange `json:"attestations,omitempty"`
}

// AttestationChange is one device document of an anchor.
type AttestationChange struct {
	Device    string `json:"device"`
	Document  string `json:"document"` // the JSON document, stored as given
	Supersede bool   `json:"supersede,omitempty"`
}

// AnchorReply says where an anchor ended.
type AnchorReply = agent.AnchorResult

func extAnchor(ctx context.Context, s *Server, body []byte) (any, error) {
	var req AnchorRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if req.Prefix == "" {
		return nil, fmt.Errorf("%w: no prefix", errBadRequest)
	}
	var ch anchor.Change
	for i, text := range req.Seals {
		raw, err := anchor.ParseSeal(text)
		if err != nil {
			return nil, fmt.Errorf("%w: seal %d: %v", errBadRequest, i, err)
		}
		ch.Seals = append(ch.Seals, raw)
	}
	for _, at := range req.Attestations {
		ch.Attestations = append(ch.Attestations, anchor.Attestation{Device: at.Device, Document: []byte(at.Document), Supersede: at.Supersede})
	}
	return s.agent.Anchor(ctx, req.Prefix, ch)
}

// PendingRequest is the body of pending@auths.dev: with no prefix, list the
// proposals in escrow; with prefix and said, sign that proposal with the
// agent's keys and commit it when complete; with a remote too, push it
// there while it needs signatures, or commit it there first (remote.go).
type PendingRequest struct {
	Prefix string `json:"prefix,omitempty"`
	SAID   string `json:"said,omitempty"`
	Remote string `json:"remote,omitempty"`
	// Registry, with a remote, is the registry the client means (see
	// RemoteRequest).
	Registry string `json:"registry,omitempty"`
}

// PendingReply lists proposals, or says where a signed one ended.
type PendingReply struct {
	Pending []agent.PendingInfo `json:"pending,omitempty"`
	Result  *agent.AnchorResult `json:"result,omitempty"`
	// Remote is the outcome of a request with a remote (its result too).
	Remote *agent.RemoteSignResult `json:"remote,omitempty"`
}

func extPending(ctx context.Context, s *Server, body []byte) (any, error) {
	var req PendingRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if req.Prefix == "" && req.SAID == "" {
		list, err := s.agent.Pending(ctx)
		if err != nil {
			return nil, err
		}
		return PendingReply{Pending: list}, nil
	}
	if req.Prefix == "" || req.SAID == "" {
		return nil, fmt.Errorf("%w: give both prefix and said, or neither", errBadRequest)
	}
	if req.Remote != "" {
		if err := checkRemoteName(req.Remote); err != nil {
			return nil, err
		}
		res, err := s.agent.PendingSignRemote(ctx, req.Prefix, req.SAID, req.Remote, req.Registry)
		if err != nil {
			return nil, err
		}
		return PendingReply{Result: &res.AnchorResult, Remote: res}, nil
	}
	res, err := s.agent.PendingSign(ctx, req.Prefix, req.SAID)
	if err != nil {
		return nil, err
	}
	return PendingReply{Result: res}, nil
}

// Identity extensions.
const (
	ExtIDCreate = "id-create@auths.dev"
	ExtIDRotate = "id-rotate@auths.dev"
)

// IDRequest is the body of id-create@auths.dev and id-rotate@auths.dev.
// Keys are CESR public keys in key-list order; the next keys are given as
// public keys or as their digests. Thresholds are the CLI's text forms
// ("2", "1/2,1/2"); a rotation's threshold defaults to the
// prior next threshold, a next threshold to the threshold.
type IDRequest struct {
	Prefix        string   `json:"prefix,omitempty"` // id-rotate only
	Keys          []string `json:"keys"`
	Threshold     string   `json:"threshold,omitempty"`
	NextKeys      []string `json:"next_keys,omitempty"`
	NextDigests   []string `json:"next_digests,omitempty"`
	NextThreshold string   `json:"next_threshold,omitempty"`
}

func (r IDRequest) thresholds(prior *kel.Threshold) (kt, nt kel.Threshold, next []string, err error) {
	if len(r.Keys) == 0 {
		return kt, nt, nil, fmt.Errorf("%w: no keys", errBadRequest)
	}
	switch {
	case r.Threshold != "":
		if kt, err = kel.ParseThresholdText(r.Threshold); err != nil {
			return kt, nt, nil, fmt.Errorf("%w: threshold: %v", errBadRequest, err)
		}
	case prior != nil:
		kt = *prior
	default:
		return kt, nt, nil, fmt.Errorf("%w: no threshold", errBadRequest)
	}
	next = append(next, r.NextDigests...)
	for i, k := range r.NextKeys {
		if _, err := kel.ParseVerfer(k); err != nil {
			return kt, nt, nil, fmt.Errorf("%w: next key %d: %v", errBadRequest, i, err)
		}
		next = append(next, kel.NextKeyDigest(k))
	}
	nt = kt
	if r.NextThreshold != "" {
		if nt, err = kel.ParseThresholdText(r.NextThreshold); err != nil {
			return kt, nt, nil, fmt.Errorf("%w: next threshold: %v", errBadRequest, err)
		}
	}
	return kt, nt, next, nil
}

func extIDCreate(ctx context.Context, s *Server, body []byte) (any, error) {
	var req IDRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if req.Prefix != "" {
		return nil, fmt.Errorf("%w: id-create takes no prefix (it is the inception's SAID)", errBadRequest)
	}
	kt, nt, next, err := req.thresholds(nil)
	if err != nil {
		return nil, err
	}
	return s.agent.IDCreate(ctx, kel.InceptionSpec{Keys: req.Keys, Threshold: kt, NextDigests: next, NextThreshold: nt})
}

func extIDRotate(ctx context.Context, s *Server, body []byte) (any, error) {
	var req IDRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if req.Prefix == "" {
		return nil, fmt.Errorf("%w: no prefix", errBadRequest)
	}
	var prior *kel.Threshold
	if req.Threshold == "" {
		st, err := s.agent.KeyState(req.Prefix)
		if err != nil {
			return nil, err
		}
		prior = &st.NextThreshold
	}
	kt, nt, next, err := req.thresholds(prior)
	if err != nil {
		return nil, err
	}
	return s.agent.IDRotate(ctx, req.Prefix, kel.RotationSpec{Keys: req.Keys, Threshold: kt, NextDigests: next, NextThreshold: nt})
}

// IDCreate asks the agent to incept an identity with keys it holds.
func (c *Client) IDCreate(ctx context.Context, req IDRequest) (*agent.AnchorResult, error) {
	var r agent.AnchorResult
	if err := c.Call(ctx, ExtIDCreate, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// IDRotate asks the agent to rotate an identity to keys it holds.
func (c *Client) IDRotate(ctx context.Context, req IDRequest) (*agent.AnchorResult, error) {
	var r agent.AnchorResult
	if err := c.Call(ctx, ExtIDRotate, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
