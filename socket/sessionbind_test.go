package socket_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/socket"
)

type recordingSink struct {
	mu  sync.Mutex
	got []agent.AuditRecord
}

func (s *recordingSink) Record(_ context.Context, r agent.AuditRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, r)
	return nil
}

func (s *recordingSink) last() agent.AuditRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[len(s.got)-1]
}

// hostKey is a server host key: ssh sends its public half and its
// signature of the session identifier in session-bind@openssh.com.
type hostKey struct{ ssh.Signer }

func newHostKey(t *testing.T) hostKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return hostKey{s}
}

func (h hostKey) bind(t *testing.T, session []byte, forwarding bool) []byte {
	sig, err := h.Sign(rand.Reader, session)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.Marshal(struct {
		HostKey, Session, Sig []byte
		Fwd                   bool
	}{h.PublicKey().Marshal(), session, ssh.Marshal(sig), forwarding})
}

// hostbound is a publickey-hostbound-v00@openssh.com user-authentication
// request for pub in session, naming host.
func hostbound(session []byte, pub, host ssh.PublicKey) []byte {
	return ssh.Marshal(struct {
		Session []byte
		Msg     byte
		User    string
		Service string
		Method  string
		Sign    bool
		Alg     string
		Blob    []byte
		Host    []byte
	}{session, 50, "me", "ssh-connection", "publickey-hostbound-v00@openssh.com", true, pub.Type(), pub.Marshal(), host.Marshal()})
}

// TestSessionBind: session-bind@openssh.com as PROTOCOL.agent describes
// it. A binding whose signature the host key did not make, a second
// binding of a connection bound for authentication, or the same session
// with another host key is refused; a user-authentication signature in a
// bound session names the host key in its audit record, one in another
// session names none, and a hostbound request naming another host key
// than the session's is refused.
func TestSessionBind(t *testing.T) {
	k := newKey(t, tokens[0], kel.Ed25519)
	sink := &recordingSink{}
	sock := serveWith(t, agent.Config{Keys: []agent.KeySpec{{URI: k, Uses: []agent.Use{agent.UseSSH}}}},
		agent.Options{Opener: providerOpener{}, Audit: sink}, socket.Options{})
	conn := func() sshagent.ExtendedAgent {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return sshagent.NewClient(c)
	}
	a := conn()
	keys, err := a.List()
	if err != nil || len(keys) != 1 {
		t.Fatalf("list: %v %v", keys, err)
	}
	pub := keys[0]
	host, other := newHostKey(t), newHostKey(t)
	session := bytes.Repeat([]byte{9}, 32)

	// Refused bindings.
	forged := host.bind(t, session, false)
	forged[len(forged)-10] ^= 1 // in the signature
	for name, body := range map[string][]byte{
		"a signature the host key did not make": forged,
		"an empty session":                      host.bind(t, nil, false),
		"a session of 129 bytes":                host.bind(t, bytes.Repeat([]byte{1}, 129), false),
		"trailing bytes":                        append(host.bind(t, session, false), 0),
	} {
		if _, err := conn().Extension(socket.ExtSessionBind, body); err == nil || !strings.Contains(err.Error(), "failure") {
			t.Errorf("session-bind with %s: %v, want a failure", name, err)
		}
	}

	if _, err := a.Extension(socket.ExtSessionBind, host.bind(t, session, false)); err != nil {
		t.Fatalf("session-bind: %v", err)
	}
	if _, err := a.Extension(socket.ExtSessionBind, host.bind(t, bytes.Repeat([]byte{8}, 32), false)); err == nil {
		t.Error("a second binding of a connection bound for authentication was accepted")
	}
	if _, err := a.SignWithFlags(pub, hostbound(session, pub, host.PublicKey()), 0); err != nil {
		t.Fatalf("sign in the bound session: %v", err)
	}
	if r := sink.last(); r.What != "userauth" || r.HostKey != ssh.FingerprintSHA256(host.PublicKey()) || r.Refused != "" {
		t.Errorf("audit record of the bound session's signature: %+v", r)
	}
	if _, err := a.SignWithFlags(pub, userauthData(pub), 0); err != nil {
		t.Fatalf("sign in another session: %v", err)
	}
	if r := sink.last(); r.HostKey != "" {
		t.Errorf("a signature for a session never bound names host key %s", r.HostKey)
	}
	if _, err := a.SignWithFlags(pub, hostbound(session, pub, other.PublicKey()), 0); err == nil {
		t.Error("signed a hostbound request naming another host key than its session's")
	}
	if r := sink.last(); !strings.Contains(r.Refused, "another host key") {
		t.Errorf("audit record of the mismatched host key: %+v", r)
	}

	// Forwarding bindings stack; the same session again is accepted, with
	// another host key it is not.
	f := conn()
	if _, err := f.Extension(socket.ExtSessionBind, host.bind(t, session, true)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Extension(socket.ExtSessionBind, host.bind(t, session, true)); err != nil {
		t.Errorf("the same forwarding binding again: %v", err)
	}
	if _, err := f.Extension(socket.ExtSessionBind, other.bind(t, session, true)); err == nil {
		t.Error("a session bound to another host key was accepted")
	}
}

// rawExtension sends EXTENSION name body on c and returns the reply
// message (type byte first).
func rawExtension(t *testing.T, c net.Conn, name string, body []byte) []byte {
	t.Helper()
	msg := append([]byte{27}, ssh.Marshal(struct{ Name string }{name})...)
	msg = append(msg, body...)
	frame := append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...)
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatal(err)
	}
	return reply
}

// TestSessionBindRemote: a connection on which a session-bind was
// attempted (a forwarding binding as ssh -A sends, or a binding the agent
// refused) may come from another machine. As OpenSSH's agent marks it
// (session_bind_attempted), the agent refuses every auths extension there
// but query and the notices, with reason "forwarded", and keeps serving
// SSH list and sign requests (keys without destination constraints sign
// anywhere in OpenSSH too). A connection without a binding is served.
func TestSessionBindRemote(t *testing.T) {
	k := newKey(t, tokens[0], kel.Ed25519)
	reg := newRegistry(t)
	sock := serveWith(t, agent.Config{Keys: []agent.KeySpec{{URI: k, Uses: []agent.Use{agent.UseSSH, agent.UseKERI}}}},
		agent.Options{Opener: providerOpener{}, Registry: reg}, socket.Options{})
	host := newHostKey(t)
	session := bytes.Repeat([]byte{7}, 32)
	forged := host.bind(t, session, false)
	forged[len(forged)-10] ^= 1
	refused := map[string]string{
		socket.ExtKeys: `{}`, socket.ExtPending: `{}`, socket.ExtNextKeys: `{}`,
		socket.ExtPendingPush: `{"remote":"https://example.invalid/r.git"}`,
		socket.ExtPendingPull: `{"remote":"https://example.invalid/r.git"}`,
		socket.ExtSignEvent:   `{}`, socket.ExtAnchor: `{}`, socket.ExtIDCreate: `{}`, socket.ExtIDRotate: `{}`,
	}
	for what, bind := range map[string][]byte{
		"a forwarding binding": host.bind(t, session, true),
		"a refused binding":    forged,
	} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rawExtension(t, c, socket.ExtSessionBind, bind)
		for name, body := range refused {
			reply := rawExtension(t, c, name, []byte(body))
			var f socket.Failure
			if reply[0] != 28 || json.Unmarshal(reply[1:], &f) != nil || f.Reason != "forwarded" {
				t.Errorf("after %s: %s answered %q, want a failure with reason forwarded", what, name, reply)
			}
		}
		if reply := rawExtension(t, c, socket.ExtQuery, nil); reply[0] != 6 {
			t.Errorf("after %s: query answered %q", what, reply)
		}
		a := sshagent.NewClient(c)
		keys, err := a.List()
		if err != nil || len(keys) != 1 {
			t.Fatalf("after %s: list: %v %v", what, keys, err)
		}
		if _, err := a.SignWithFlags(keys[0], userauthData(keys[0]), 0); err != nil {
			t.Errorf("after %s: SSH sign: %v", what, err)
		}
	}
	if _, err := dial(t, sock).Keys(context.Background()); err != nil {
		t.Errorf("keys on a connection without a binding: %v", err)
	}
}
