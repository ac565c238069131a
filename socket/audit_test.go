package socket_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/socket"
)

// stagedAudit is an AuditWriter that notes, at each step, how many
// signatures the tokens had made, and whose durability fails on demand.
type stagedAudit struct {
	signed *atomic.Int64
	fail   atomic.Bool

	mu    sync.Mutex
	steps []string
}

func (s *stagedAudit) note(step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, step+" after "+string(rune('0'+s.signed.Load()))+" signatures")
}

func (s *stagedAudit) Record(ctx context.Context, r agent.AuditRecord) error {
	s.note("record " + r.Op)
	return nil
}

func (s *stagedAudit) Write(ctx context.Context, r agent.AuditRecord) (func() error, error) {
	s.note("write " + r.Op)
	return func() error {
		s.note("durable " + r.Op)
		if s.fail.Load() {
			return errors.New("fsync: input/output error")
		}
		return nil
	}, nil
}

func (s *stagedAudit) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.steps
	s.steps = nil
	return out
}

// TestSignatureWaitsForDurableRecord: the record of a signature is
// written before the token signs, its durability is awaited after (the
// flush overlaps the token's work), and when the record cannot be made
// durable the signature is dropped: the client gets the audit error, no
// signature.
func TestSignatureWaitsForDurableRecord(t *testing.T) {
	reg := newRegistry(t)
	k := newKey(t, tokens[0], kel.P256)
	prefix := incept(t, reg, "1", k)
	n := new(atomic.Int64)
	au := &stagedAudit{signed: n}
	cfg := agent.Config{Keys: []agent.KeySpec{{URI: k, Uses: []agent.Use{agent.UseKERI, agent.UseSSH}}}}
	path := serveWith(t, cfg, agent.Options{Opener: countingOpener{n}, Registry: reg, Audit: au}, socket.Options{})
	c := dial(t, path)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sc := sshagent.NewClient(conn)
	v, _ := hsm.Verfer(openKey(t, k))
	pk, _ := v.PublicKey()
	pub, _ := ssh.NewPublicKey(pk)
	data := userauthData(pub)
	e := ixn(t, keyState(t, reg, prefix), "audited")

	want := func(what string, steps ...string) {
		t.Helper()
		if got := au.take(); strings.Join(got, "; ") != strings.Join(steps, "; ") {
			t.Errorf("%s: audit steps %q, want %q", what, got, steps)
		}
	}
	if _, err := c.SignEvent(context.Background(), e.Raw()); err != nil {
		t.Fatal(err)
	}
	want("sign-event", "write sign-event after 0 signatures", "durable sign-event after 1 signatures")
	sig, err := sc.Sign(pub, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Verify(data, sig); err != nil {
		t.Fatal(err)
	}
	want("ssh sign", "write ssh-sign after 1 signatures", "durable ssh-sign after 2 signatures")

	au.fail.Store(true)
	r, err := c.SignEvent(context.Background(), e.Raw())
	if err == nil || !strings.Contains(err.Error(), "audit trail: fsync: input/output error") {
		t.Fatalf("sign-event with a record that is not durable: %+v, %v; want the audit error", r, err)
	}
	want("sign-event, record not durable", "write sign-event after 2 signatures", "durable sign-event after 3 signatures")
	if sig, err := sc.Sign(pub, data); err == nil {
		t.Fatalf("ssh sign with a record that is not durable returned a signature %x", sig.Blob)
	}
	want("ssh sign, record not durable", "write ssh-sign after 3 signatures", "durable ssh-sign after 4 signatures")
}
