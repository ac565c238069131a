package socket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/auths-dev/auths-agent/agent"
)

// errRefused answers every request that changes the agent's keys: keys
// come from the command line and the config file, never from the socket.
var errRefused = errors.New("refused: keys are configured with --key, --ssh-key or --config, not over the socket")

// handler is the agent.ExtendedAgent of one connection of the agent's own
// uid. x/crypto's server calls it one request at a time.
type handler struct {
	s *Server
	c *conn
}

var _ sshagent.ExtendedAgent = (*handler)(nil)

// errLocked answers requests while the agent is locked.
var errLocked = errors.New("agent is locked")

func (h *handler) locked() bool { return h.s.lock != nil && h.s.lock.Locked() }

func (h *handler) List() ([]*sshagent.Key, error) {
	ctx := h.c.requestContext()
	if h.locked() {
		return nil, nil // as ssh-agent: a locked agent lists no keys
	}
	keys, err := h.s.agent.SSHKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*sshagent.Key, 0, len(keys))
	for _, k := range keys {
		out = append(out, &sshagent.Key{Format: k.Public.Type(), Blob: k.Public.Marshal(), Comment: k.Comment})
	}
	return out, nil
}

func (h *handler) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return h.SignWithFlags(key, data, 0)
}

// SignWithFlags signs SSH data. The RSA hash flags do not apply to the key
// types the agent holds (Ed25519, ECDSA P-256).
func (h *handler) SignWithFlags(key ssh.PublicKey, data []byte, _ sshagent.SignatureFlags) (*ssh.Signature, error) {
	ctx := h.c.requestContext()
	if h.locked() {
		return nil, errLocked
	}
	if host := h.c.sessionHost(data); host != nil {
		ctx = agent.WithSSHHost(ctx, host)
	}
	return h.s.agent.SignSSH(ctx, key.Marshal(), data)
}

func (h *handler) Add(sshagent.AddedKey) error { h.c.requestContext(); return errRefused }
func (h *handler) Remove(ssh.PublicKey) error  { h.c.requestContext(); return errRefused }
func (h *handler) RemoveAll() error            { h.c.requestContext(); return errRefused }

// Lock and Unlock are the ssh-agent lock messages (ssh-add -x, -X),
// served by Options.Lock.
func (h *handler) Lock(passphrase []byte) error {
	h.c.requestContext()
	if h.s.lock == nil {
		return errors.New("lock is not supported")
	}
	err := h.s.lock.Lock(passphrase)
	h.s.log.Info("lock", "peer_pid", h.c.peer.PID, "err", err)
	return err
}
func (h *handler) Unlock(passphrase []byte) error {
	h.c.requestContext()
	if h.s.lock == nil {
		return errors.New("unlock is not supported")
	}
	err := h.s.lock.Unlock(passphrase)
	h.s.log.Info("unlock", "peer_pid", h.c.peer.PID, "err", err)
	return err
}

// Signers is never called by the server.
func (h *handler) Signers() ([]ssh.Signer, error) { return nil, errors.New("not available") }

// Extension dispatches an extension request from the table. The reply is
// the whole message: SSH_AGENT_SUCCESS + JSON, or
// SSH_AGENT_EXTENSION_FAILURE + JSON reason.
func (h *handler) Extension(name string, body []byte) ([]byte, error) {
	ctx := h.c.requestContext()
	if name == ExtSessionBind { // served while locked too, as by OpenSSH's agent
		return h.sessionBind(body)
	}
	if h.locked() && name != "query" {
		// A failure with a body, so that a client says the agent is
		// locked rather than that the extension failed.
		return failureReply(errLocked), nil
	}
	if h.c.bindTried && !remoteAllowed[name] {
		h.s.log.Warn("extension refused on a possibly remote connection", "extension", name, "pid", h.c.peer.PID)
		return failureReply(fmt.Errorf("%w: %s", errForwarded, name)), nil
	}
	return h.s.dispatch(ctx, name, body)
}

// dispatch serves one extension request and returns the whole reply.
func (s *Server) dispatch(ctx context.Context, name string, body []byte) ([]byte, error) {
	f, ok := s.ext[name]
	if !ok {
		return nil, sshagent.ErrExtensionUnsupported
	}
	res, err := f(ctx, s, body)
	if err != nil {
		s.log.Info("extension failed", "extension", name, "pid", agent.PeerOf(ctx).PID, "err", err)
		return failureReply(err), nil
	}
	if raw, ok := res.(rawReply); ok {
		return append([]byte{msgSuccess}, raw...), nil
	}
	out, err := json.Marshal(res)
	if err != nil {
		return failureReply(err), nil
	}
	return append([]byte{msgSuccess}, out...), nil
}

// Failure is the JSON body of an extension failure.
type Failure struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"` // a machine-readable reason, see reasonOf
}

func failureReply(err error) []byte {
	out, _ := json.Marshal(Failure{Error: oneLine(err.Error()), Reason: reasonOf(err)})
	return append([]byte{msgExtensionFailure}, out...)
}

// reasonOf names a refusal for programs.
func reasonOf(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{agent.ErrBadEvent, "bad-event"}, {agent.ErrSAID, "said-mismatch"},
		{agent.ErrNotNext, "not-next"}, {agent.ErrDuplicity, "duplicity"}, {agent.ErrPolicy, "policy"},
		{agent.ErrNoKey, "no-key"}, {agent.ErrNoRegistry, "no-registry"},
		{agent.ErrOtherRegistry, "other-registry"},
		{agent.ErrUnknownKey, "unknown-key"}, {agent.ErrKeyChanged, "key-changed"}, {agent.ErrNotSSHData, "not-ssh-data"},
		{errBadRequest, "bad-request"}, {errPeer, "peer-uid"}, {errForwarded, "forwarded"},
		{errLocked, "locked"},
		{context.DeadlineExceeded, "timeout"}, {context.Canceled, "cancelled"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	if r := remoteReason(err); r != "" {
		return r
	}
	var te *agent.TouchTimeoutError
	var be *agent.BusyError
	switch {
	case errors.As(err, &te):
		return "touch-timeout"
	case errors.As(err, &be):
		return "token-busy"
	}
	var re *agent.RefusedError
	if errors.As(err, &re) {
		return "refused"
	}
	return ""
}

func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}

// errPeer marks requests from a peer of another uid.
var errPeer = errors.New("peer uid refused")

// refuser answers every request of a connection from another uid with a
// failure (an extension failure with the reason for extensions).
type refuser struct{ uid, want int }

var _ sshagent.ExtendedAgent = (*refuser)(nil)

func (r *refuser) err() error {
	return fmt.Errorf("%w: uid %d is not the agent's uid %d", errPeer, r.uid, r.want)
}
func (r *refuser) List() ([]*sshagent.Key, error)                     { return nil, r.err() }
func (r *refuser) Sign(ssh.PublicKey, []byte) (*ssh.Signature, error) { return nil, r.err() }
func (r *refuser) SignWithFlags(ssh.PublicKey, []byte, sshagent.SignatureFlags) (*ssh.Signature, error) {
	return nil, r.err()
}
func (r *refuser) Add(sshagent.AddedKey) error    { return r.err() }
func (r *refuser) Remove(ssh.PublicKey) error     { return r.err() }
func (r *refuser) RemoveAll() error               { return r.err() }
func (r *refuser) Lock([]byte) error              { return r.err() }
func (r *refuser) Unlock([]byte) error            { return r.err() }
func (r *refuser) Signers() ([]ssh.Signer, error) { return nil, r.err() }
func (r *refuser) Extension(string, []byte) ([]byte, error) {
	return failureReply(r.err()), nil
}
