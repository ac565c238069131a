package registry

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestCommitPushLockBound: CommitPush holds the registry lock while it
// pushes (another local writer must not commit on the old tip meanwhile,
// or the remote and the local registry would fork), but a remote that
// never answers holds it only for WithLockedPushTimeout: the commit-push
// fails with a timeout naming the bound, the local registry does not move
// and keeps no outgoing ref, and a local writer waiting for the lock
// commits as soon as it is released.
func TestCommitPushLockBound(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accepts and never answers
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	dir := newGitRepo(t, false)
	if _, _, err := Init(bg(), dir, false, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	const bound = time.Second
	r := openTest(t, dir, WithLockedPushTimeout(bound))
	other := openTest(t, dir)
	_, icp, err := newTestID("lock-bound-1")
	if err != nil {
		t.Fatal(err)
	}
	_, icp2, err := newTestID("lock-bound-2")
	if err != nil {
		t.Fatal(err)
	}
	before := head(t, r)
	ctx, cancel := context.WithTimeout(bg(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		var b Batch
		b.Append(icp)
		_, err := r.CommitPush(ctx, &b, Remote{Name: "http://" + l.Addr().String() + "/origin.git"}, nil, 3)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // the commit-push holds the lock by now
	var b2 Batch
	b2.Append(icp2)
	res, err := other.Commit(ctx, &b2)
	waited := time.Since(start)
	if err != nil {
		t.Fatalf("local commit while a commit-push waits on a silent remote: %v", err)
	}
	if waited > 5*bound {
		t.Errorf("the local writer waited %v for the lock, want about %v", waited, bound)
	}
	err = <-done
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 1s") {
		t.Errorf("commit-push to a silent remote: %v, want a timeout naming the bound", err)
	}
	if res.Parent != before {
		t.Errorf("the local commit's parent is %s, want the tip before the commit-push %s", res.Parent, before)
	}
	if h, err := r.readRef(outgoingRef); err != nil || !h.IsZero() {
		t.Errorf("outgoing ref left at %v (%v)", h, err)
	}
}

// TestLockedPushTimeoutOption: a bound of zero or less keeps the default
// (before, WithLockedPushTimeout(0) made every CommitPush fail at once
// with "no answer within 0s").
func TestLockedPushTimeoutOption(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		if got := newOptions([]Option{WithLockedPushTimeout(d)}).lockedPush; got != 30*time.Second {
			t.Errorf("WithLockedPushTimeout(%v): %v, want the default 30s", d, got)
		}
	}
	if got := newOptions([]Option{WithLockedPushTimeout(time.Second)}).lockedPush; got != time.Second {
		t.Errorf("WithLockedPushTimeout(1s): %v", got)
	}
}
