package socket

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzSessionBind feeds arbitrary session-bind bodies and user-auth data
// to the parser and a connection's bindings: nothing panics, a binding
// is kept only when its host key signed its session identifier, errors are
// one line, and a connection never holds more than maxSessionBinds.
func FuzzSessionBind(f *testing.F) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	host, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		f.Fatal(err)
	}
	session := bytes.Repeat([]byte{9}, 32)
	sig, err := host.Sign(rand.Reader, session)
	if err != nil {
		f.Fatal(err)
	}
	good := ssh.Marshal(struct {
		HostKey, Session, Sig []byte
		Fwd                   bool
	}{host.PublicKey().Marshal(), session, ssh.Marshal(sig), true})
	f.Add(good, ssh.Marshal(struct{ S []byte }{session}))
	f.Add(good[:len(good)-1], []byte{0, 0, 0, 32})
	f.Add([]byte{0, 0, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, body, data []byte) {
		c := &conn{}
		for range maxSessionBinds + 2 {
			b, err := parseSessionBind(body)
			if err == nil {
				err = c.bind(b)
			}
			if err != nil && bytes.ContainsAny([]byte(err.Error()), "\n\r") {
				t.Fatalf("error on several lines: %q", err)
			}
		}
		if len(c.binds) > 1 {
			t.Fatalf("%d bindings of one session", len(c.binds))
		}
		if h := c.sessionHost(data); h != nil && len(c.binds) == 0 {
			t.Fatal("a host key without a binding")
		}
	})
}
