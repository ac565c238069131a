package socket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	sshagent "golang.org/x/crypto/ssh/agent"
	"golang.org/x/sys/unix"

	"github.com/auths-dev/auths-agent/agent"
)

// MaxFrame is the largest request the server reads (the limit
// x/crypto/ssh/agent applies too).
const MaxFrame = 16 << 20

// Server serves one agent on a listener.
type Server struct {
	agent *agent.Agent
	log   *slog.Logger
	uid   int
	// timeout bounds each request (waiting in a token's queue included).
	timeout    time.Duration
	errTimeout error // the cause of a request that ran out of time
	// replyTimeout bounds the write of one reply.
	replyTimeout time.Duration
	// frameTimeout bounds the arrival of a frame's body once its length
	// is read; idleTimeout bounds the wait for the next request.
	frameTimeout, idleTimeout time.Duration
	ext                       map[string]extension
	lock                      Locker
	notices                   *Notices

	mu       sync.Mutex
	conns    map[*conn]struct{}
	draining bool
	requests sync.WaitGroup // requests read and not yet answered
	handlers sync.WaitGroup // connection goroutines

	busy     atomic.Int64 // requests read and not yet answered, for the watchdog
	wmu      sync.Mutex   // guards watching; never held while taking another lock
	watching bool         // the watchdog runs
}

// Options configure a Server.
type Options struct {
	Logger *slog.Logger // nil discards
	// UID is the only peer uid served; -1 means the process's own uid.
	UID int
	// RequestTimeout bounds each request; 0 means 2 minutes (a touch or a
	// PIN prompt may take a while). It is enforced within watchEvery.
	RequestTimeout time.Duration
	// ReplyTimeout bounds the write of a reply to a client that does not
	// read it; the connection is closed then. 0 means 10 seconds.
	ReplyTimeout time.Duration
	// Lock serves the ssh-agent lock and unlock messages; nil refuses
	// them. While it is locked, no key is listed and every signing
	// request and extension is refused.
	Lock Locker
	// FrameTimeout bounds how long a frame's body may take to arrive once
	// its length is read; 0 means 10 seconds. A client trickling a frame
	// cannot hold a connection and its buffer for ever.
	FrameTimeout time.Duration
	// IdleTimeout closes a connection that sends no request for that long
	// (give or take a quarter); 0 means 10 minutes (ssh and git connect
	// per operation).
	IdleTimeout time.Duration
	// Notices routes notices about requests to their clients (Post them
	// from the touch notifier); nil: the server makes its own.
	Notices *Notices
}

// Locker locks the agent with a passphrase (a *pins.Cache in the daemon).
type Locker interface {
	Lock(passphrase []byte) error
	Unlock(passphrase []byte) error
	Locked() bool
}

// NewServer returns a server for a.
func NewServer(a *agent.Agent, opts Options) *Server {
	s := &Server{agent: a, log: opts.Logger, uid: opts.UID, timeout: opts.RequestTimeout, replyTimeout: opts.ReplyTimeout, lock: opts.Lock,
		frameTimeout: opts.FrameTimeout, idleTimeout: opts.IdleTimeout, conns: map[*conn]struct{}{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.uid < 0 {
		s.uid = os.Getuid()
	}
	if s.timeout <= 0 {
		s.timeout = 2 * time.Minute
	}
	if s.replyTimeout <= 0 {
		s.replyTimeout = 10 * time.Second
	}
	if s.frameTimeout <= 0 {
		s.frameTimeout = 10 * time.Second
	}
	if s.idleTimeout <= 0 {
		s.idleTimeout = 10 * time.Minute
	}
	s.errTimeout = fmt.Errorf("no answer within the request timeout of %v: %w", s.timeout, context.DeadlineExceeded)
	s.ext = extensions()
	if s.notices = opts.Notices; s.notices == nil {
		s.notices = NewNotices()
	}
	return s
}

// Serve accepts connections until ctx ends, then stops accepting, lets the
// requests in flight finish and answer, and closes every connection. It
// does not close ln.
func (s *Server) Serve(ctx context.Context, ln *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() { ln.SetDeadline(time.Now()) })
	defer stop()
	var err error
	for {
		var c *net.UnixConn
		c, err = ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				err = nil
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			break
		}
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			s.serveConn(c)
		}()
	}
	s.drain()
	return err
}

// drain lets requests in flight answer, then closes idle connections.
func (s *Server) drain() {
	s.mu.Lock()
	s.draining = true
	s.notices.close()
	for c := range s.conns {
		c.wake()
	}
	s.mu.Unlock()
	s.requests.Wait()
	s.mu.Lock()
	for c := range s.conns {
		c.c.Close()
	}
	s.mu.Unlock()
	s.handlers.Wait()
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// peerCred reads the peer's credentials from the kernel.
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	err = rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil {
		return nil, err
	}
	return cred, cerr
}

func (s *Server) serveConn(nc *net.UnixConn) {
	defer nc.Close()
	cred, err := peerCred(nc)
	if err != nil {
		s.log.Warn("connection refused: no peer credentials", "err", err)
		return
	}
	peer := agent.Peer{UID: int(cred.Uid), PID: int(cred.Pid)}
	c := &conn{s: s, c: nc, r: bufio.NewReaderSize(nc, 4096), peer: peer}
	c.base = context.WithValue(agent.WithPeer(context.Background(), peer), connKey{}, c)
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.finish()
		if c.noticeID != "" {
			s.notices.unname(c.noticeID)
		}
	}()
	var h sshagent.ExtendedAgent
	if peer.UID != s.uid {
		s.log.Warn("connection from another uid: every request refused", "uid", peer.UID, "pid", peer.PID, "agent_uid", s.uid)
		h = &refuser{uid: peer.UID, want: s.uid}
		c.foreign = true
	} else {
		h = &handler{s: s, c: c}
	}
	err = sshagent.ServeAgent(h, c)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
		s.log.Info("connection closed", "pid", peer.PID, "reason", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Message numbers of requests (draft-miller-ssh-agent) the server accepts;
// a frame of any other type closes the connection.
var knownRequests = map[byte]bool{
	1: true, 9: true, // SSH1 identities and remove-all: answered empty by x/crypto
	11: true, 13: true, 17: true, 18: true, 19: true, 20: true, 21: true,
	22: true, 23: true, 25: true, 26: true, 27: true,
}

const (
	msgFailure          = 5
	msgSuccess          = 6
	msgExtensionFailure = 28
)

// conn frames one connection for agent.ServeAgent. It reads whole frames
// itself, so that an oversized, truncated or unknown frame ends the
// connection before x/crypto sees it, and it knows when a request is in
// flight (read, not yet answered) so that a drain waits for exactly those.
type conn struct {
	s    *Server
	c    *net.UnixConn
	r    *bufio.Reader // frames usually arrive whole: one read each
	peer agent.Peer
	base context.Context // carries the peer; requests' contexts derive from it

	mu       sync.Mutex
	buf      []byte // the rest of the frame being handed to ServeAgent
	inFlight bool
	started  time.Time // when the request in flight was read
	writing  time.Time // when the write of its reply began; zero if none is under way
	reached  bool      // a handler method ran for this request
	reply    []byte    // the reply written so far
	garbage  bool      // the last request did not parse: close after replying
	woken    bool      // a drain set the read deadline: leave it
	foreign  bool      // a peer of another uid: one refusal, then the connection ends
	answered bool      // a reply was written on this connection
	idleSet  time.Time // when the idle deadline was last set
	noticeID string    // where this connection's notices go (notices.go)
	binds    []binding // session-binds, in order (sessionbind.go); the handler's goroutine only
	// bindTried: a session-bind arrived on this connection, accepted or
	// not (OpenSSH's session_bind_attempted): the peer may be another
	// machine (sessionbind.go, remoteAllowed). The handler's goroutine only.
	bindTried bool
	ctx       context.Context
	cancel    context.CancelCauseFunc
}

func (c *conn) wake() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inFlight {
		c.woken = true
		c.c.SetReadDeadline(time.Now())
	}
}

func (c *conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		c.mu.Unlock()
		return n, nil
	}
	garbage, done := c.garbage, c.foreign && c.answered
	c.mu.Unlock()
	if garbage {
		return 0, errors.New("malformed request")
	}
	// A peer of another uid gets its one refusal; nothing more it sends
	// is read or parsed.
	if done {
		return 0, io.EOF
	}
	// The deadline is set before the drain check: a drain that starts
	// after it overrides it (wake), one that started before is seen below.
	c.idleDeadline()
	if c.s.isDraining() {
		return 0, io.EOF
	}
	frame, err := c.readFrame()
	if err != nil {
		return 0, err
	}
	// The request counts as in flight only if no drain has begun: a
	// drain's Wait must not run concurrently with this Add (sync.WaitGroup
	// forbids it, and the drain would close this connection under the
	// request). A frame that arrives as the drain begins goes unanswered.
	c.s.mu.Lock()
	if c.s.draining {
		c.s.mu.Unlock()
		return 0, io.EOF
	}
	c.s.requests.Add(1)
	c.s.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf, c.inFlight, c.reached, c.reply = frame, true, false, nil
	c.started = time.Now()
	c.s.begin()
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// readFrame reads one length-prefixed request and checks its size and type.
func (c *conn) readFrame() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxFrame {
		c.s.log.Warn("connection closed: bad frame size", "pid", c.peer.PID, "size", n, "max", MaxFrame)
		return nil, fmt.Errorf("frame of %d bytes (1 to %d allowed)", n, MaxFrame)
	}
	// The length is only a claim: the buffer grows as bytes arrive, so a
	// client announcing 16 MiB and sending little holds little, and only
	// until frameTimeout. A body already buffered (the usual small
	// request) needs no deadline of its own.
	slow := c.r.Buffered() < int(n)
	if slow {
		c.setReadDeadline(time.Now().Add(c.s.frameTimeout))
	}
	var buf bytes.Buffer
	buf.Grow(4 + int(min(n, frameChunk)))
	buf.Write(hdr[:])
	if _, err := io.CopyN(&buf, c.r, int64(n)); err != nil {
		c.s.log.Warn("connection closed: truncated frame", "pid", c.peer.PID, "size", n, "got", buf.Len()-4)
		return nil, fmt.Errorf("truncated frame: %w", err)
	}
	if slow {
		c.mu.Lock()
		c.idleSet = time.Time{} // the idle deadline is set again before the next frame
		c.mu.Unlock()
	}
	frame := buf.Bytes()
	if !knownRequests[frame[4]] {
		c.s.log.Warn("connection closed: unknown message type", "pid", c.peer.PID, "type", frame[4])
		return nil, fmt.Errorf("unknown message type %d", frame[4])
	}
	return frame, nil
}

// frameChunk is the most a frame's buffer holds before its bytes arrive.
const frameChunk = 64 << 10

// idleDeadline bounds the wait for the next frame by the idle timeout. A
// deadline arms a runtime timer, so it is moved only once a quarter of
// the idle timeout has passed since it was last set, not on every request.
func (c *conn) idleDeadline() {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.woken || now.Sub(c.idleSet) < c.s.idleTimeout/4 {
		return
	}
	c.idleSet = now
	c.c.SetReadDeadline(now.Add(c.s.idleTimeout))
}

// setReadDeadline sets the read deadline t unless a drain has set it.
func (c *conn) setReadDeadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.woken {
		c.c.SetReadDeadline(t)
	}
}

// Write collects the reply ServeAgent writes in two calls (length, then
// body) and sends it in one.
func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.inFlight {
		c.mu.Unlock()
		return c.c.Write(p)
	}
	c.reply = append(c.reply, p...)
	if len(c.reply) < 4 || len(c.reply) < 4+int(binary.BigEndian.Uint32(c.reply)) {
		c.mu.Unlock()
		return len(p), nil // the header; the body follows
	}
	reply := c.reply
	// A client that stops reading must not hold a drain up for ever: the
	// watchdog closes the connection when this write takes too long.
	c.writing = time.Now()
	c.mu.Unlock()
	_, err := c.c.Write(reply)
	n := len(p)
	if err != nil {
		n = 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writing = time.Time{}
	c.answered = true
	// A failure that no handler produced is x/crypto refusing a body it
	// could not parse: garbage, so this connection ends.
	if !c.reached && len(reply) == 5 && reply[4] == msgFailure {
		c.garbage = true
		c.s.log.Warn("connection closed: malformed request", "pid", c.peer.PID)
	}
	c.endLocked()
	return n, err
}

func (c *conn) endLocked() {
	if c.inFlight {
		if c.noticeID != "" {
			c.s.notices.ended(c.noticeID)
		}
		c.inFlight = false
		c.s.busy.Add(-1)
		c.s.requests.Done()
	}
	if c.cancel != nil {
		c.cancel(nil)
		c.ctx, c.cancel = nil, nil
	}
}

// finish ends a request left without an answer (the connection broke).
func (c *conn) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked()
}

// requestContext is the context of the request in flight: it carries the
// peer and ends when the watchdog sees the request time out or its client
// hang up.
func (c *conn) requestContext() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reached = true
	if c.cancel == nil {
		c.ctx, c.cancel = context.WithCancelCause(c.base)
	}
	return c.ctx
}

// The watchdog does for the requests in flight what timers per request
// would: it ends a request at the request timeout, watches a request that
// runs past watchEvery for its client hanging up (so that it leaves its
// token's queue), and closes a connection whose client does not read its
// reply. It is one goroutine that ticks while any request is in flight and
// exits when none is, because arming and stopping two or three runtime
// timers on every request cost ~8 us of a ~27 us round trip here (each can
// wake the thread asleep in the network poller).
const watchEvery = 20 * time.Millisecond

// begin counts a request in and starts the watchdog if it does not run.
func (s *Server) begin() {
	s.busy.Add(1)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.watching {
		s.watching = true
		go s.watchdog()
	}
}

func (s *Server) watchdog() {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	var conns []*conn
	for range t.C {
		// A request counted in after this check starts a new watchdog,
		// since begin counts before it looks at watching.
		s.wmu.Lock()
		if s.busy.Load() == 0 {
			s.watching = false
			s.wmu.Unlock()
			return
		}
		s.wmu.Unlock()
		conns = conns[:0]
		s.mu.Lock()
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		now := time.Now()
		for _, c := range conns {
			c.watch(now)
		}
		clear(conns)
	}
}

// watch ends c's request in flight, or c itself, when it is overdue.
func (c *conn) watch(now time.Time) {
	c.mu.Lock()
	if !c.inFlight {
		c.mu.Unlock()
		return
	}
	age := now.Sub(c.started)
	stalled := !c.writing.IsZero() && now.Sub(c.writing) > c.s.replyTimeout
	cancel := c.cancel // nil until a handler runs
	c.mu.Unlock()
	switch {
	case stalled:
		c.s.log.Warn("connection closed: the client does not read its reply", "pid", c.peer.PID, "waited", c.s.replyTimeout)
		c.c.Close()
	case cancel == nil || age < watchEvery:
	case age >= c.s.timeout:
		cancel(c.s.errTimeout)
	case hungUp(c.c):
		cancel(errHungUp)
	}
}

var errHungUp = fmt.Errorf("the client hung up: %w", context.Canceled)

// hungUp says whether c's peer has shut its end, without reading anything
// and without waiting (POLLRDHUP).
func hungUp(c *net.UnixConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return true
	}
	hung := false
	err = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
			hung = true
		}
	})
	return err != nil || hung
}
