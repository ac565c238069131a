package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/auths-dev/auths-agent/kel"
)

// The agent's side of the audit trail: the record of a signature written
// before its token is asked, and the lines that say what became of the
// signatures that were recorded and then not handed out.

// recordSigning writes the record of a signature about to be made and
// starts making it durable, in a goroutine of its own, while the caller
// asks the token. The signature may leave the agent only after durable
// returned nil.
func (a *Agent) recordSigning(ctx context.Context, r AuditRecord) (durable func() error, err error) {
	w, ok := a.audit.(AuditWriter)
	if !ok {
		return func() error { return nil }, a.record(ctx, r)
	}
	r.Time = a.clock()
	r.Peer = PeerOf(ctx)
	sync, err := w.Write(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sync() }()
	return func() error {
		if err := <-done; err != nil {
			return fmt.Errorf("audit trail: %w", err)
		}
		return nil
	}, nil
}

func (a *Agent) record(ctx context.Context, r AuditRecord) error {
	r.Time = a.clock()
	r.Peer = PeerOf(ctx)
	if a.audit == nil {
		return nil
	}
	if err := a.audit.Record(ctx, r); err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	return nil
}

// recordNotSigned adds a line to the audit trail for each signature of a
// request that was recorded before its token was asked and is not handed
// out: a refusal for a touch that did not come (*TouchTimeoutError), a
// card still waiting for an earlier one (*BusyError, known before the card
// is asked) or a key no longer the one the request was checked against
// (a *RefusedError wrapping ErrKeyChanged); a failure, with its error, for
// anything else (a token error, a client that left while it waited). err
// is a key's error (withKey) or a join of them, one per key; r describes
// the request, and each line names its key.
func (a *Agent) recordNotSigned(ctx context.Context, r AuditRecord, err error) {
	for _, ns := range notSignedOf(err) {
		if ns.key != "" {
			r.Key = ns.key
		}
		r.Refused, r.Failed = "", ""
		switch e := ns.err.(type) {
		case *RefusedError:
			r.Refused = e.Reason.Error()
		case *TouchTimeoutError, *BusyError:
			r.Refused = e.Error()
		default:
			r.Failed = oneLine(e.Error())
		}
		a.log.Warn("not signed", "op", r.Op, "key", r.Key, "peer", PeerOf(ctx).PID, "refused", r.Refused, "failed", r.Failed)
		a.record(ctx, r)
	}
}

// recordNotKept adds a failure line for each signature in sigs, made by
// the key at its index in keys, that the agent does not hand out after
// all (another key of the request failed), or whose proposal it could not
// save or commit: why says which.
func (a *Agent) recordNotKept(ctx context.Context, r AuditRecord, keys []signingKey, sigs []kel.Siger, why string) {
	for _, s := range sigs {
		for _, sk := range keys {
			if sk.index == s.Index {
				r.Key, r.Refused, r.Failed = sk.k.uri, "", oneLine(why)
				a.log.Warn("signature not kept", "op", r.Op, "key", r.Key, "why", why)
				a.record(ctx, r)
			}
		}
	}
}

// notSigned is one key's signature not made: the key's URI (empty when
// the error names none) and the error, as the *RefusedError,
// *TouchTimeoutError or *BusyError it wraps when it wraps one.
type notSigned struct {
	key string
	err error
}

// notSignedOf splits err, a key's error (withKey) or a join of them (the
// joins signAll and signAllKept make), into one notSigned per key. Only
// those joins are split: an error of one key that wraps several errors
// (fmt.Errorf with two %w) stays one.
func notSignedOf(err error) []notSigned {
	if err == nil {
		return nil
	}
	if ke, ok := err.(*keyError); ok {
		return []notSigned{{ke.uri, typedOr(ke.err)}}
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok && isKeyJoin(j.Unwrap()) {
		var out []notSigned
		for _, m := range j.Unwrap() {
			out = append(out, notSignedOf(m)...)
		}
		return out
	}
	return []notSigned{{"", typedOr(err)}}
}

// isKeyJoin says whether errs are the members of a join of keys' errors:
// each a *keyError or such a join itself.
func isKeyJoin(errs []error) bool {
	for _, e := range errs {
		if _, ok := e.(*keyError); ok {
			continue
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok && isKeyJoin(j.Unwrap()) {
			continue
		}
		return false
	}
	return len(errs) > 0
}

// typedOr returns the *RefusedError, *TouchTimeoutError or *BusyError err
// wraps, or err.
func typedOr(err error) error {
	var re *RefusedError
	var te *TouchTimeoutError
	var be *BusyError
	switch {
	case errors.As(err, &re):
		return re
	case errors.As(err, &te):
		return te
	case errors.As(err, &be):
		return be
	}
	return err
}

// oneLine joins the lines of s with "; ", for an audit record.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}
