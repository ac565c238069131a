package socket_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/socket"
)

// TestBadFrames: an oversized, a truncated, an unknown and a malformed
// frame each close their connection; a client connected all along is
// still served.
func TestBadFrames(t *testing.T) {
	k := newKey(t, tokens[0], kel.Ed25519)
	path := serve(t, agent.Config{Keys: []agent.KeySpec{{URI: k, Uses: []agent.Use{agent.UseSSH}}}}, nil)
	good := dial(t, path)
	sa, err := good.SSH()
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := sa.List(); err != nil || len(keys) != 1 {
		t.Fatalf("List: %v (%d keys)", err, len(keys))
	}
	frame := func(n uint32, body []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, n)
		return append(b, body...)
	}
	cases := []struct {
		name      string
		send      []byte
		closeSend bool
		reply     []byte // expected before the close, if any
	}{
		{"oversized", frame(socket.MaxFrame+1, []byte{11}), false, nil},
		{"zero", frame(0, nil), false, nil},
		{"truncated", frame(100, []byte{11, 1, 2}), true, nil},
		{"unknown type", frame(3, []byte{99, 0, 0}), false, nil},
		// A sign request whose key blob length runs past the frame:
		// x/crypto answers failure, then the connection ends.
		{"malformed sign request", frame(6, []byte{13, 0xff, 0xff, 0xff, 0xff, 0}), false, frame(1, []byte{5})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.closeSend {
				c.(*net.UnixConn).CloseWrite()
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c)
			if errors.Is(err, syscall.ECONNRESET) {
				err = nil // closed with our bytes unread
			}
			if err != nil {
				t.Fatalf("the agent did not close the connection: %v", err)
			}
			if !bytes.Equal(got, tc.reply) {
				t.Errorf("read %x before the close, want %x", got, tc.reply)
			}
		})
	}
	if keys, err := sa.List(); err != nil || len(keys) != 1 {
		t.Fatalf("the other client after the bad frames: %v (%d keys)", err, len(keys))
	}
}

// TestListen: the socket directory is made 0700 when missing and left
// alone when present; the socket is 0600; a live agent on the path is
// refused; a dead agent's socket is replaced; a file that is not a socket
// is not touched.
func TestListen(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "new", "agent.sock")
	ln, err := socket.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Dir(path)); fi.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %v, want 0700", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 || fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("socket mode %v, want a 0600 socket", fi.Mode())
	}
	if _, err := socket.Listen(path); !errors.Is(err, socket.ErrAgentRunning) {
		t.Errorf("second agent: %v, want ErrAgentRunning", err)
	}
	ln.Close()

	// A dead agent's socket: bound, never accepted, its process gone
	// (simulated by closing the listener without unlinking).
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(shared, "agent.sock")
	dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dead.SetUnlinkOnClose(false)
	dead.Close()
	ln, err = socket.Listen(stale)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	defer ln.Close()
	if fi, _ := os.Stat(shared); fi.Mode().Perm() != 0o755 {
		t.Errorf("existing directory mode changed to %v", fi.Mode().Perm())
	}
	notSock := filepath.Join(shared, "file")
	os.WriteFile(notSock, []byte("x"), 0o600)
	if _, err := socket.Listen(notSock); err == nil || !bytes.Contains([]byte(err.Error()), []byte("not a socket")) {
		t.Errorf("regular file: %v, want a refusal", err)
	}
	if data, _ := os.ReadFile(notSock); string(data) != "x" {
		t.Error("the regular file was changed")
	}
}

// TestDrain: when the server's context ends, a request in flight still
// gets its answer, then the connections close and the socket is removed.
func TestDrain(t *testing.T) {
	reg := newRegistry(t)
	k := newKey(t, tokens[1], kel.Ed25519)
	prefix := incept(t, reg, "1", k)
	a, err := agent.New(agent.Config{Keys: keri(k)}, agent.Options{Opener: slowOpener{d: 200 * time.Millisecond}, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := socket.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := socket.NewServer(a, socket.Options{UID: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln.UnixListener) }()
	c := dial(t, path)
	idle := dial(t, path)
	got := make(chan error, 1)
	go func() {
		_, err := c.SignEvent(context.Background(), ixn(t, keyState(t, reg, prefix), "drain").Raw())
		got <- err
	}()
	time.Sleep(50 * time.Millisecond) // the request is on the (slow) token
	cancel()
	if err := <-got; err != nil {
		t.Fatalf("request in flight during the drain: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Keys(context.Background()); err == nil {
		t.Error("an idle connection was still served after the drain")
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

// slowOpener's keys take d for each KERI signature, as a card waiting for
// a touch would.
type slowOpener struct {
	d    time.Duration
	n    *atomic.Int64 // counts signatures when set
	only string        // when set, only keys whose URI holds it are slow
	// started, when set, receives (without blocking) when a signature
	// starts on the device.
	started chan struct{}
}

func (o slowOpener) Open(ctx context.Context, uri string) (hsmSigner, error) {
	var s hsmSigner
	var err error
	if o.n != nil {
		s, err = countingOpener{o.n}.Open(ctx, uri)
	} else {
		s, err = providerOpener{}.Open(ctx, uri)
	}
	if err != nil {
		return nil, err
	}
	if o.only != "" && !strings.Contains(uri, o.only) {
		return s, nil
	}
	return slowSigner{s, o.d, o.started}, nil
}

type slowSigner struct {
	hsmSigner
	d       time.Duration
	started chan struct{}
}

func (s slowSigner) SignKERI(ctx context.Context, msg []byte) ([]byte, error) {
	select {
	case s.started <- struct{}{}:
	default:
	}
	time.Sleep(s.d)
	return s.hsmSigner.SignKERI(ctx, msg)
}

type hsmSigner = hsm.Signer

// TestClientLeavesQueue: a client that gives up while its request waits
// for a busy token leaves the queue: its request is never signed, and the
// next client's is. The first request is for another identity with the
// same key, so the others wait for the token, not the identity's turn.
func TestClientLeavesQueue(t *testing.T) {
	reg := newRegistry(t)
	k := newKey(t, tokens[1], kel.Ed25519)
	busy, prefix := incept(t, reg, "1", k), incept(t, reg, "1", k)
	n := new(atomic.Int64)
	started := make(chan struct{}, 1)
	path := serveWith(t, agent.Config{Keys: keri(k)}, agent.Options{Opener: slowOpener{d: 400 * time.Millisecond, n: n, started: started}, Registry: reg}, socket.Options{})
	st := keyState(t, reg, prefix)
	// Open the key first so that only signatures are counted below.
	if _, err := dial(t, path).Keys(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := dial(t, path).SignEvent(context.Background(), ixn(t, keyState(t, reg, busy), "first").Raw())
		first <- err
	}()
	<-started // the first request holds the token
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := dial(t, path).SignEvent(ctx, ixn(t, st, "gives up").Raw()); err == nil {
		t.Fatal("the request that gave up was answered")
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The event that was never signed does not hold s=1: another is signed there.
	if _, err := dial(t, path).SignEvent(context.Background(), ixn(t, st, "third").Raw()); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d signatures, want 2: the request whose client left was signed", got)
	}
}

// TestTokensInParallel: while one token is busy with a slow signature (a
// touch that takes a second), a request for a key on another token is
// answered at once.
func TestTokensInParallel(t *testing.T) {
	reg := newRegistry(t)
	slowKey, fastKey := newKey(t, tokens[0], kel.Ed25519), newKey(t, tokens[1], kel.Ed25519)
	slowID, fastID := incept(t, reg, "1", slowKey), incept(t, reg, "1", fastKey)
	o := slowOpener{d: time.Second, only: "token=" + tokens[0] + ";"}
	path := serveWith(t, agent.Config{Keys: keri(slowKey, fastKey)}, agent.Options{Opener: o, Registry: reg}, socket.Options{})
	if _, err := dial(t, path).Keys(context.Background()); err != nil {
		t.Fatal(err)
	}
	slow := make(chan time.Time, 1)
	go func() {
		if _, err := dial(t, path).SignEvent(context.Background(), ixn(t, keyState(t, reg, slowID), "slow").Raw()); err != nil {
			t.Error(err)
		}
		slow <- time.Now()
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if _, err := dial(t, path).SignEvent(context.Background(), ixn(t, keyState(t, reg, fastID), "fast").Raw()); err != nil {
		t.Fatal(err)
	}
	fastDone := time.Now()
	if d := fastDone.Sub(start); d > 600*time.Millisecond {
		t.Errorf("the other token's request took %v behind the slow one", d)
	}
	if s := <-slow; !s.After(fastDone) {
		t.Error("the slow request finished first: the test proves nothing")
	}
}

// TestRequestTimeout: a request still waiting for a busy token when the
// request timeout passes is answered with the reason "timeout" and never
// signed; the request on the token completes.
func TestRequestTimeout(t *testing.T) {
	reg := newRegistry(t)
	k := newKey(t, tokens[1], kel.Ed25519)
	prefix := incept(t, reg, "1", k)
	n := new(atomic.Int64)
	started := make(chan struct{}, 1)
	ao := agent.Options{Opener: slowOpener{d: 800 * time.Millisecond, n: n, started: started}, Registry: reg}
	path := serveWith(t, agent.Config{Keys: keri(k)}, ao, socket.Options{RequestTimeout: 300 * time.Millisecond})
	if _, err := dial(t, path).Keys(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := keyState(t, reg, prefix)
	first := make(chan error, 1)
	go func() {
		_, err := dial(t, path).SignEvent(context.Background(), ixn(t, st, "first").Raw())
		first <- err
	}()
	<-started
	begin := time.Now()
	_, err := dial(t, path).SignEvent(context.Background(), ixn(t, st, "queued").Raw())
	waited := time.Since(begin)
	var ee *socket.ExtensionError
	if !errors.As(err, &ee) || ee.Reason != "timeout" || !strings.Contains(ee.Error(), "request timeout of 300ms") {
		t.Fatalf("queued request: %v (%#v), want a timeout failure", err, ee)
	}
	if waited > 700*time.Millisecond {
		t.Errorf("the queued request was answered after %v, not at its timeout", waited)
	}
	// The first request started on the device within its timeout; the
	// device call completes, and its result is dropped.
	if err := <-first; !errors.As(err, &ee) || ee.Reason != "timeout" {
		t.Errorf("first request: %v, want a timeout failure", err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("%d signatures, want 1 (the queued request was signed)", got)
	}
}

// TestStalledReply: a client that sends requests and never reads the
// replies does not hold up the drain: its connection is closed once a
// reply has waited ReplyTimeout to be written.
func TestStalledReply(t *testing.T) {
	k := newKey(t, tokens[0], kel.Ed25519)
	a, err := agent.New(agent.Config{Keys: keri(k)}, agent.Options{Opener: providerOpener{}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := socket.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := socket.NewServer(a, socket.Options{UID: -1, ReplyTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln.UnixListener) }()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 20,000 query requests: their replies (about 150 bytes each) fill
	// the socket's buffers many times over.
	q := []byte("\x00\x00\x00\x0a\x1b\x00\x00\x00\x05query")
	go c.Write(bytes.Repeat(q, 20000))
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the drain waits for a client that does not read")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.Copy(io.Discard, c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after %d bytes of replies: %v, want the connection closed", got, err)
	}
}
