// Package touch tells a person that a token waits for a touch: a log
// record, a desktop notification when notify-send is installed, and a line
// for the client that asked ("waiting for touch on YubiKey 12345678 (1 of
// 2)").
//
// [Notifier.Notify] has the shape of the PIV backend's touch notifier and
// returns at once: the card starts waiting as soon as it returns, and a
// notification that is slow or fails must never hold up or fail the
// signature.
package touch

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"time"
)

// Notice is one wait for a touch.
type Notice struct {
	Token string // "YubiKey 12345678"
	N, Of int    // this token is the Nth of Of that must be touched; 0 when alone
}

// String is the line shown to people.
func (n Notice) String() string {
	if n.Of > 1 {
		return fmt.Sprintf("waiting for touch on %s (%d of %d)", n.Token, n.N, n.Of)
	}
	return "waiting for touch on " + n.Token
}

type positionKey struct{}

type position struct{ n, of int }

// WithPosition returns ctx saying that the request signs on n of "of"
// tokens (counted from 1), for the "(1 of 2)" of the notice.
func WithPosition(ctx context.Context, n, of int) context.Context {
	return context.WithValue(ctx, positionKey{}, position{n, of})
}

// Options are what a Notifier reaches in the outside world.
type Options struct {
	// Logger receives one Info record per notice; nil discards.
	Logger *slog.Logger
	// NotifySend is the notify-send program; "" means the one on PATH,
	// if any (looked up once, by New); "-" means no desktop notification.
	NotifySend string
	// Timeout bounds one notify-send run (it can hang without a
	// notification daemon); 0 means 5 seconds.
	Timeout time.Duration
	// Forward, when set, receives each notice too: the agent sends it to
	// the client whose request waits.
	Forward func(ctx context.Context, n Notice)
}

// Notifier sends touch notices.
type Notifier struct {
	opts Options
	log  *slog.Logger
	wg   sync.WaitGroup
}

// New returns a Notifier.
func New(opts Options) *Notifier {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	switch opts.NotifySend {
	case "":
		if p, err := exec.LookPath("notify-send"); err == nil {
			opts.NotifySend = p
		}
	case "-":
		opts.NotifySend = ""
	}
	return &Notifier{opts: opts, log: opts.Logger}
}

// Notify tells that token is about to wait for a touch. It returns at once.
func (n *Notifier) Notify(ctx context.Context, token string) {
	no := Notice{Token: token}
	if p, ok := ctx.Value(positionKey{}).(position); ok {
		no.N, no.Of = p.n, p.of
	}
	n.log.InfoContext(ctx, no.String(), "token", token)
	if n.opts.Forward != nil {
		n.opts.Forward(ctx, no)
	}
	if n.opts.NotifySend == "" {
		return
	}
	// Not bound to ctx: the request may end (signed) before the desktop
	// shows the notice, which is fine; the timeout bounds it.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		rctx, cancel := context.WithTimeout(context.Background(), n.opts.Timeout)
		defer cancel()
		cmd := exec.CommandContext(rctx, n.opts.NotifySend, "--app-name=auths-agent", "--expire-time=15000", "auths-agent", no.String())
		cmd.WaitDelay = time.Second
		if err := cmd.Run(); err != nil {
			n.log.DebugContext(ctx, "notify-send failed", "err", err)
		}
	}()
}

// Wait waits for the notify-send runs under way (for shutdown and tests).
func (n *Notifier) Wait() { n.wg.Wait() }
