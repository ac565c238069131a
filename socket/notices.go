package socket

// This file holds the notices a request's client sees while it waits
// ("waiting for touch on PIV card 12345678 slot 9a (1 of 2)"). The
// ssh-agent protocol answers each request with exactly one reply, so a
// notice cannot travel on the request's own connection: the client names
// its connection with a random id (notices-to@auths.dev), and a second
// connection of the same client long-polls notices@auths.dev for that id
// while the request waits. docs/PROTOCOL.md describes the exchange.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Notice extensions.
const (
	ExtNoticesTo = "notices-to@auths.dev"
	ExtNotices   = "notices@auths.dev"
)

// Bounds of the notices a server keeps.
const (
	// maxMailboxes bounds the ids named at once (one per connection that
	// asked for notices).
	maxMailboxes = 1024
	// maxQueued bounds the notices kept for one id that nobody collects;
	// the oldest go first.
	maxQueued = 16
	// maxPoll bounds one notices@auths.dev wait, well inside the request
	// timeout; the client asks again.
	maxPoll = 20 * time.Second
)

// NoticesRequest is the body of notices-to@auths.dev and notices@auths.dev.
type NoticesRequest struct {
	// ID names the requests' notices: 16 to 64 characters [0-9a-zA-Z_-],
	// chosen at random by the client.
	ID string `json:"id"`
	// After (notices@auths.dev): the poll returns as soon as more than
	// After requests of the named connection have ended (the
	// notices-to@auths.dev request counts), even without notices.
	After uint64 `json:"after,omitempty"`
}

// NoticesReply carries the notices for an id, oldest first. Ended counts
// the requests of the named connection that have ended; Gone says that no
// connection is named by the id any more.
type NoticesReply struct {
	Notices []string `json:"notices"`
	Ended   uint64   `json:"ended"`
	Gone    bool     `json:"gone,omitempty"`
}

// Notices routes notices to the clients whose requests they are about.
// Its methods are safe for concurrent use; a Server makes one unless
// Options.Notices gives it.
type Notices struct {
	mu     sync.Mutex
	boxes  map[string]*mailbox
	closed chan struct{} // closed when the server drains: polls return
	once   sync.Once
}

type mailbox struct {
	owners int      // connections named by this id
	queue  []string // notices not collected yet
	ended  uint64   // requests of the named connection that ended
	wake   chan struct{}
}

func (b *mailbox) wakeLocked() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// NewNotices returns an empty router of notices.
func NewNotices() *Notices {
	return &Notices{boxes: map[string]*mailbox{}, closed: make(chan struct{})}
}

type noticeKey struct{}

// Post sends text to the client of the request ctx belongs to, if it asked
// for notices (package touch's Options.Forward in the daemon). It never
// blocks.
func (n *Notices) Post(ctx context.Context, text string) {
	id, _ := ctx.Value(noticeKey{}).(string)
	if id == "" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.boxes[id]
	if b == nil {
		return
	}
	if len(b.queue) >= maxQueued {
		b.queue = b.queue[1:]
	}
	b.queue = append(b.queue, text)
	b.wakeLocked()
}

// ended counts a request of a connection named id as ended.
func (n *Notices) ended(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if b := n.boxes[id]; b != nil {
		b.ended++
		b.wakeLocked()
	}
}

// name ties a connection to id.
func (n *Notices) name(id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.boxes[id]
	if b == nil {
		if len(n.boxes) >= maxMailboxes {
			return fmt.Errorf("%d connections already wait for notices, the limit", maxMailboxes)
		}
		b = &mailbox{wake: make(chan struct{})}
		n.boxes[id] = b
	}
	b.owners++
	return nil
}

// unname unties a closed connection from id.
func (n *Notices) unname(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.boxes[id]
	if b == nil {
		return
	}
	if b.owners--; b.owners <= 0 {
		delete(n.boxes, id)
		close(b.wake) // a poll returns Gone
	}
}

// poll waits for the notices of id, or for more than after of its
// requests to have ended.
func (n *Notices) poll(ctx context.Context, id string, after uint64) (NoticesReply, error) {
	t := time.NewTimer(maxPoll)
	defer t.Stop()
	for {
		n.mu.Lock()
		b := n.boxes[id]
		if b == nil {
			n.mu.Unlock()
			return NoticesReply{Notices: []string{}, Gone: true}, nil
		}
		if len(b.queue) > 0 || b.ended > after {
			out := NoticesReply{Notices: b.queue, Ended: b.ended}
			if out.Notices == nil {
				out.Notices = []string{}
			}
			b.queue = nil
			n.mu.Unlock()
			return out, nil
		}
		wake, ended := b.wake, b.ended
		n.mu.Unlock()
		select {
		case <-wake:
		case <-t.C:
			return NoticesReply{Notices: []string{}, Ended: ended}, nil
		case <-n.closed:
			return NoticesReply{Notices: []string{}, Ended: ended}, nil
		case <-ctx.Done():
			return NoticesReply{}, context.Cause(ctx)
		}
	}
}

// close ends the polls under way and those to come (the server drains).
func (n *Notices) close() { n.once.Do(func() { close(n.closed) }) }

func checkNoticeID(id string) error {
	if len(id) < 16 || len(id) > 64 {
		return fmt.Errorf("%w: id of %d characters (16 to 64)", errBadRequest, len(id))
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-') {
			return fmt.Errorf("%w: id may hold only 0-9 a-z A-Z _ -", errBadRequest)
		}
	}
	return nil
}

type connKey struct{}

func extNoticesTo(ctx context.Context, s *Server, body []byte) (any, error) {
	var req NoticesRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if err := checkNoticeID(req.ID); err != nil {
		return nil, err
	}
	c, _ := ctx.Value(connKey{}).(*conn)
	if c == nil {
		return nil, fmt.Errorf("%w: not on a connection", errBadRequest)
	}
	if err := c.nameNotices(req.ID); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func extNotices(ctx context.Context, s *Server, body []byte) (any, error) {
	var req NoticesRequest
	if err := decodeRequest(body, &req); err != nil {
		return nil, err
	}
	if err := checkNoticeID(req.ID); err != nil {
		return nil, err
	}
	return s.notices.poll(ctx, req.ID, req.After)
}

// nameNotices ties the connection's later requests to id: their notices
// go to its mailbox. A connection is named once.
func (c *conn) nameNotices(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.noticeID != "" {
		return fmt.Errorf("%w: this connection already sends its notices to an id", errBadRequest)
	}
	if err := c.s.notices.name(id); err != nil {
		return err
	}
	c.noticeID = id
	c.base = context.WithValue(c.base, noticeKey{}, id)
	return nil
}

// OnNotice makes the client collect the notices of its extension calls:
// while a call waits, f is called with each notice the agent sends about
// it, in order, from another goroutine ("waiting for touch on PIV card
// 12345678 slot 9a"), and every notice of a call has been passed to f when
// the call returns. Set it before the first call; nil stops.
func (c *Client) OnNotice(f func(text string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onNotice = f
}

// noticesLocked names the connection for notices once, and collects the
// notices of the call about to be made on a connection of its own until
// stop, called once the call ended, has them all. c.mu is held.
func (c *Client) noticesLocked(ctx context.Context) (stop func(), err error) {
	f := c.onNotice
	if f == nil {
		return func() {}, nil
	}
	if c.noticeID == "" {
		id := make([]byte, 16)
		rand.Read(id)
		req := NoticesRequest{ID: hex.EncodeToString(id)}
		if _, err := c.rawLocked(ctx, ExtNoticesTo, mustJSON(req)); err != nil {
			var ee *ExtensionError
			if errors.As(err, &ee) && ee.Reason == "locked" {
				// A locked agent: this call goes on without notices
				// and gets its own answer; the next asks again.
				return func() {}, nil
			}
			if errors.Is(err, ErrUnsupported) || errors.As(err, &ee) && ee.Reason == "" {
				// An agent without notices (a bare failure): the
				// calls go on without them. A refusal with a reason
				// (peer-uid) is the call's too.
				c.onNotice = nil
				return func() {}, nil
			}
			return nil, err
		}
		c.noticeID, c.callsEnded = req.ID, 1
	}
	var d net.Dialer
	pc, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, err
	}
	// The call about to be made ends as request number after+1: a poll
	// returns once the agent counts it ended, with every notice posted
	// before.
	after := c.callsEnded
	done := make(chan struct{})
	go func() {
		defer close(done)
		pl := &Client{path: c.path, conn: pc, r: newReader(pc)}
		for {
			var r NoticesReply
			if err := pl.Call(context.Background(), ExtNotices, NoticesRequest{ID: c.noticeID, After: after}, &r); err != nil {
				return // closed by stop, or the agent went away
			}
			for _, n := range r.Notices {
				f(n)
			}
			if r.Ended > after || r.Gone {
				return
			}
		}
	}()
	return func() {
		c.callsEnded++
		// The agent counts the call ended right after its reply; a
		// call that broke its connection may never be counted.
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		pc.Close()
		<-done
	}, nil
}
