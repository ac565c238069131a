package socket_test

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/socket"
)

// stagedAudit is an AuditWriter that notes, at each step, how many
// signatures the tokens had begun, and whose durability fails on demand.
type stagedAudit struct {
	signed   *atomic.Int64
	durables atomic.Int64 // durable calls begun
	fail     atomic.Bool

	mu    sync.Mutex
	steps []string
}

func (s *stagedAudit) note(step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, fmt.Sprintf("%s after %d signatures", step, s.signed.Load()))
}

func (s *stagedAudit) Record(ctx context.Context, r agent.AuditRecord) error {
	s.note("record " + r.Op)
	return nil
}

func (s *stagedAudit) Write(ctx context.Context, r agent.AuditRecord) (func() error, error) {
	s.note("write " + r.Op)
	return func() error {
		s.durables.Add(1)
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

// overlapOpener's signers count their signatures and wait, before signing,
// until the record of that signature is being made durable: with a
// durability wait that only starts after the signature, they wait in vain
// and the signature fails.
type overlapOpener struct {
	n  *atomic.Int64
	au *stagedAudit
}

func (o overlapOpener) Open(ctx context.Context, uri string) (hsm.Signer, error) {
	s, err := providerOpener{}.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	return overlapSigner{s, o}, nil
}

type overlapSigner struct {
	hsm.Signer
	o overlapOpener
}

func (s overlapSigner) wait() error {
	k := s.o.n.Add(1)
	for deadline := time.Now().Add(5 * time.Second); s.o.au.durables.Load() < k; {
		if time.Now().After(deadline) {
			return fmt.Errorf("signature %d: its record's durability did not start while the token signed", k)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (s overlapSigner) Sign(r io.Reader, d []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := s.wait(); err != nil {
		return nil, err
	}
	return s.Signer.Sign(r, d, opts)
}

func (s overlapSigner) SignKERI(ctx context.Context, msg []byte) ([]byte, error) {
	if err := s.wait(); err != nil {
		return nil, err
	}
	return s.Signer.SignKERI(ctx, msg)
}

// TestSignatureWaitsForDurableRecord: the record of a signature is
// written before the token signs, made durable while the token signs (the
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
	path := serveWith(t, cfg, agent.Options{Opener: overlapOpener{n, au}, Registry: reg, Audit: au}, socket.Options{})
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
	want("sign-event", "write sign-event after 0 signatures")
	sig, err := sc.Sign(pub, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Verify(data, sig); err != nil {
		t.Fatal(err)
	}
	want("ssh sign", "write ssh-sign after 1 signatures")

	au.fail.Store(true)
	r, err := c.SignEvent(context.Background(), e.Raw())
	if err == nil || !strings.Contains(err.Error(), "audit trail: fsync: input/output error") {
		t.Fatalf("sign-event with a record that is not durable: %+v, %v; want the audit error", r, err)
	}
	want("sign-event, record not durable", "write sign-event after 2 signatures")
	if sig, err := sc.Sign(pub, data); err == nil {
		t.Fatalf("ssh sign with a record that is not durable returned a signature %x", sig.Blob)
	}
	want("ssh sign, record not durable", "write ssh-sign after 3 signatures")
	if got := n.Load(); got != 4 {
		t.Errorf("%d signatures made, want 4 (two of them dropped)", got)
	}
}
