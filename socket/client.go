package socket

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/auths-dev/auths-agent/agent"
)

// Client talks to an agent over its socket: the auths extensions with
// their JSON bodies on one connection, and the ssh-agent messages through
// x/crypto's client on a second one (that client reads its connection in a
// goroutine of its own, so the two cannot share one). Extension calls are
// serialized: the protocol answers requests in order.
type Client struct {
	path string
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader

	sshMu   sync.Mutex
	sshConn net.Conn
	ssh     sshagent.ExtendedAgent

	onNotice   func(string) // notices.go
	noticeID   string       // the id this connection's notices go to
	callsEnded uint64       // requests on the named connection that ended
}

// ExtensionError is an extension failure: the agent refused or failed, and
// said why.
type ExtensionError struct {
	Extension string
	Failure
}

func (e *ExtensionError) Error() string {
	if e.Failure.Error == "" {
		return e.Extension + ": extension failure"
	}
	return e.Failure.Error
}

// ErrUnsupported: the agent does not know the extension (not an auths
// agent, or an older one).
var ErrUnsupported = errors.New("extension not supported by the agent")

// Dial connects to the agent at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	return &Client{path: path, conn: c, r: newReader(c)}, nil
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 4096) }

// Close closes the connections.
func (c *Client) Close() error {
	c.sshMu.Lock()
	if c.sshConn != nil {
		c.sshConn.Close()
	}
	c.sshMu.Unlock()
	return c.conn.Close()
}

// SSH returns an ssh-agent client of the agent, on a connection of its
// own opened on first use.
func (c *Client) SSH() (sshagent.ExtendedAgent, error) {
	c.sshMu.Lock()
	defer c.sshMu.Unlock()
	if c.ssh == nil {
		conn, err := net.Dial("unix", c.path)
		if err != nil {
			return nil, err
		}
		c.sshConn, c.ssh = conn, sshagent.NewClient(conn)
	}
	return c.ssh, nil
}

// Call sends extension name with body req (marshalled to JSON) and decodes
// the reply into resp. A refusal is an *ExtensionError. ctx bounds the
// call: when it ends the connection is closed (the agent then drops the
// request from its queues).
func (c *Client) Call(ctx context.Context, name string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	reply, err := c.Raw(ctx, name, body)
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(reply, resp); err != nil {
		return fmt.Errorf("%s: bad reply from the agent: %w", name, err)
	}
	return nil
}

// Raw sends an extension request with a raw body and returns the reply's
// body after SSH_AGENT_SUCCESS.
func (c *Client) Raw(ctx context.Context, name string, body []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stop, err := c.noticesLocked(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	return c.rawLocked(ctx, name, body)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only for request types that always marshal
	}
	return b
}

// rawLocked is Raw with c.mu held.
func (c *Client) rawLocked(ctx context.Context, name string, body []byte) ([]byte, error) {
	msg := ssh.Marshal(struct {
		Type     byte
		Name     string
		Contents []byte `ssh:"rest"`
	}{27, name, body})
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
		defer c.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	defer stop()
	reply, err := roundTrip(c.conn, c.r, msg)
	if err != nil {
		// The reply, if it ever comes, would answer the next request:
		// the connection is done. Closing it also tells the agent that
		// this request's client left, so it leaves the token's queue.
		c.conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", name, context.Cause(ctx))
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	switch reply[0] {
	case msgSuccess:
		return reply[1:], nil
	case msgFailure:
		return nil, fmt.Errorf("%s: %w", name, ErrUnsupported)
	case msgExtensionFailure:
		e := &ExtensionError{Extension: name}
		if len(reply) > 1 {
			json.Unmarshal(reply[1:], &e.Failure)
		}
		return nil, e
	}
	return nil, fmt.Errorf("%s: unexpected reply type %d", name, reply[0])
}

func roundTrip(w io.Writer, r io.Reader, msg []byte) ([]byte, error) {
	frame := make([]byte, 4+len(msg))
	binary.BigEndian.PutUint32(frame, uint32(len(msg)))
	copy(frame[4:], msg)
	if _, err := w.Write(frame); err != nil {
		return nil, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxFrame {
		return nil, fmt.Errorf("reply of %d bytes", n)
	}
	reply := make([]byte, n)
	if _, err := io.ReadFull(r, reply); err != nil {
		return nil, err
	}
	return reply, nil
}

// Keys lists the keys the agent holds.
func (c *Client) Keys(ctx context.Context) ([]agent.KeyInfo, error) {
	var r KeysReply
	err := c.Call(ctx, ExtKeys, KeysRequest{}, &r)
	return r.Keys, err
}

// SignEvent asks for the agent's signatures of an event (its exact bytes).
func (c *Client) SignEvent(ctx context.Context, event []byte) (*SignEventReply, error) {
	var r SignEventReply
	if err := c.Call(ctx, ExtSignEvent, SignEventRequest{Event: string(event)}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Anchor asks the agent to anchor seals and attestations for an identity.
func (c *Client) Anchor(ctx context.Context, req AnchorRequest) (*AnchorReply, error) {
	var r AnchorReply
	if err := c.Call(ctx, ExtAnchor, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Pending lists the proposals in escrow.
func (c *Client) Pending(ctx context.Context) ([]agent.PendingInfo, error) {
	var r PendingReply
	err := c.Call(ctx, ExtPending, PendingRequest{}, &r)
	return r.Pending, err
}

// PendingSign asks the agent to sign a pending proposal and commit it
// when complete.
func (c *Client) PendingSign(ctx context.Context, prefix, said string) (*agent.AnchorResult, error) {
	var r PendingReply
	if err := c.Call(ctx, ExtPending, PendingRequest{Prefix: prefix, SAID: said}, &r); err != nil {
		return nil, err
	}
	return r.Result, nil
}
