package socket

// This file serves OpenSSH's session-bind@openssh.com extension
// (PROTOCOL.agent in openssh-portable): before it asks for a
// user-authentication signature, ssh binds its agent connection to the
// SSH session (the exchange hash of its key exchange) and the server's
// host key, proving the pair with the host key's signature over the
// session identifier. The agent checks the proof, remembers the binding
// for the connection's life, and names the host key in the audit record
// of a user-authentication signature for that session.

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// ExtSessionBind is OpenSSH's extension.
const ExtSessionBind = "session-bind@openssh.com"

// Bounds OpenSSH's agent applies too.
const (
	maxSessionID    = 128 // bytes of a session identifier
	maxSessionBinds = 16  // bindings per connection
)

// binding is one session-bind of a connection.
type binding struct {
	hostKey    ssh.PublicKey
	session    []byte
	forwarding bool
}

var errSessionBind = errors.New("session-bind refused")

// errForwarded refuses an extension on a connection that may come from
// another machine.
var errForwarded = errors.New("refused on a forwarded agent connection (a session-bind@openssh.com was sent on it)")

// remoteAllowed lists the extensions served on a connection on which a
// session-bind was attempted. Such a connection is what ssh opens for a
// forwarded agent (or for its own user authentication), so its peer may be
// anyone with root on a host the user logged in to. As OpenSSH's agent
// refuses to load providers when socket_is_remote(), the agent refuses
// every extension that uses a token (signing, generating keys), writes
// the registry or reaches the network; it keeps those that only name
// what the agent serves or carry notices of the connection's own
// requests. keys@auths.dev is refused too: its URIs name token serials
// and labels, which a remote host has no use for. Plain SSH requests
// (list, sign) are served as before: the agent implements no destination
// constraints, and OpenSSH's agent lets a key without them sign on any
// connection, forwarded or not.
var remoteAllowed = map[string]bool{
	ExtQuery:       true,
	ExtSessionBind: true,
	ExtNoticesTo:   true,
	ExtNotices:     true,
}

// sessionBind checks and records a session-bind request. Its answer is
// SSH_AGENT_SUCCESS, or SSH_AGENT_EXTENSION_FAILURE with the reason in
// the agent's log (ssh reads no more than the failure).
func (h *handler) sessionBind(body []byte) ([]byte, error) {
	// Marked before any check, as OpenSSH marks session_bind_attempted: a
	// failed bind leaves the connection as possibly remote too.
	h.c.bindTried = true
	b, err := parseSessionBind(body)
	if err == nil {
		err = h.c.bind(b)
	}
	if err != nil {
		h.s.log.Warn("session-bind refused", "pid", h.c.peer.PID, "err", err)
		return nil, err
	}
	h.s.log.Debug("session bound", "pid", h.c.peer.PID, "host_key", ssh.FingerprintSHA256(b.hostKey), "forwarding", b.forwarding)
	return []byte{msgSuccess}, nil
}

func parseSessionBind(body []byte) (binding, error) {
	var req struct {
		HostKey    []byte
		Session    []byte
		Signature  []byte
		Forwarding bool
	}
	if err := ssh.Unmarshal(body, &req); err != nil {
		return binding{}, fmt.Errorf("%w: %v", errSessionBind, err)
	}
	if len(req.Session) == 0 || len(req.Session) > maxSessionID {
		return binding{}, fmt.Errorf("%w: session identifier of %d bytes (1 to %d)", errSessionBind, len(req.Session), maxSessionID)
	}
	key, err := ssh.ParsePublicKey(req.HostKey)
	if err != nil {
		return binding{}, fmt.Errorf("%w: host key: %v", errSessionBind, err)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(req.Signature, &sig); err != nil {
		return binding{}, fmt.Errorf("%w: signature: %v", errSessionBind, err)
	}
	if err := key.Verify(req.Session, &sig); err != nil {
		return binding{}, fmt.Errorf("%w: the host key %s did not sign the session identifier: %v", errSessionBind, ssh.FingerprintSHA256(key), err)
	}
	return binding{hostKey: key, session: req.Session, forwarding: req.Forwarding}, nil
}

// bind records b as PROTOCOL.agent says: a connection bound for
// authentication takes no further binding; the same session with the same
// host key again is accepted and changes nothing; a session bound to
// another host key is refused.
func (c *conn) bind(b binding) error {
	for _, old := range c.binds {
		if !old.forwarding {
			return fmt.Errorf("%w: the connection is already bound for authentication", errSessionBind)
		}
		if bytes.Equal(old.session, b.session) {
			if bytes.Equal(old.hostKey.Marshal(), b.hostKey.Marshal()) {
				return nil
			}
			return fmt.Errorf("%w: the session is bound to another host key", errSessionBind)
		}
	}
	if len(c.binds) >= maxSessionBinds {
		return fmt.Errorf("%w: %d sessions bound to the connection already", errSessionBind, maxSessionBinds)
	}
	c.binds = append(c.binds, b)
	return nil
}

// sessionHost returns the host key bound to the session of an SSH
// user-authentication request (data starts with its session identifier),
// or nil. The agent checks the rest of data.
func (c *conn) sessionHost(data []byte) ssh.PublicKey {
	var head struct {
		Session []byte
		Rest    []byte `ssh:"rest"`
	}
	if len(c.binds) == 0 || ssh.Unmarshal(data, &head) != nil {
		return nil
	}
	for _, b := range c.binds {
		if bytes.Equal(b.session, head.Session) {
			return b.hostKey
		}
	}
	return nil
}
