package main

// This file wires what a person meets into `serve`: the audit trail, PIN
// prompts through pinentry with a PIN cache, touch notices. The work is in
// agent/audit, agent/pinentry, agent/pins and agent/touch.

import (
	"context"
	"strings"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/agent/audit"
	"github.com/auths-dev/auths-agent/agent/pins"
)

// locker serves ssh-agent's lock: the PIN cache locks and forgets, and
// every token session ends, so nothing signs until unlock and a PIN.
type locker struct {
	*pins.Cache
	a *agent.Agent
}

func (l locker) Lock(passphrase []byte) error {
	if err := l.Cache.Lock(passphrase); err != nil {
		return err
	}
	l.a.DropSessions()
	return nil
}

// auditSink records the agent's signatures, refusals and failed
// signatures in the trail.
type auditSink struct{ s *audit.Sink }

var _ agent.AuditWriter = auditSink{}

// Record writes r and returns once it is on disk.
func (a auditSink) Record(_ context.Context, r agent.AuditRecord) error {
	return a.s.Append(entry(r))
}

// Write writes r; durable returns once it is on disk (shared fsyncs).
func (a auditSink) Write(_ context.Context, r agent.AuditRecord) (durable func() error, err error) {
	w, err := a.s.Write(entry(r))
	if err != nil {
		return nil, err
	}
	return func() error { return a.s.Sync(w) }, nil
}

func entry(r agent.AuditRecord) audit.Entry {
	e := audit.Entry{
		Time:    r.Time.UTC(),
		Outcome: audit.Signed,
		Peer:    audit.Peer{UID: r.Peer.UID, PID: r.Peer.PID, Exe: audit.PeerExe(r.Peer.PID)},
		Op:      r.Op,
		Key:     r.Key,
		Prefix:  r.Prefix,
		Type:    r.Type,
		SAID:    r.SAID,
		// SSH
		Fingerprint: r.Fingerprint,
		HostKey:     r.HostKey,
		Reason:      r.Refused,
	}
	switch {
	case r.Refused != "":
		e.Outcome = audit.Refused
	case r.Failed != "":
		e.Outcome, e.Reason = audit.Failed, r.Failed
	}
	if r.Prefix != "" {
		sn := r.Sn
		e.Sn = &sn
	}
	if ns, ok := strings.CutPrefix(r.What, "sshsig:"); ok {
		e.What, e.Namespace = "sshsig", ns
	} else {
		e.What = r.What
	}
	return e
}
