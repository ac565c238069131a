package socket_test

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/socket"
)

// TestListenNeverWider: under umask 0 a process watching the socket's
// directory never sees the socket with a mode other than 0600 (bind makes
// it 0777 less the umask; the agent must not show it before the chmod).
func TestListenNeverWider(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.sock")
	var stop, wide atomic.Bool
	var seen atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
				seen.Add(1)
				if fi.Mode().Perm() != 0o600 {
					wide.Store(true)
				}
			}
		}
	}()
	for i := 0; i < 300 && !wide.Load(); i++ {
		ln, err := socket.Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
	}
	stop.Store(true)
	<-done
	if wide.Load() {
		t.Fatal("the socket was visible with a mode wider than 0600")
	}
	if seen.Load() == 0 {
		t.Fatal("the watcher never saw the socket")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "agent.sock.lock" {
		t.Errorf("left in the directory: %v, want only the lock file", ents)
	}
}

// TestListenLockSymlink: a symlink planted at the lock file's name in a
// shared directory is refused; its target is not created.
func TestListenLockSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "victim")
	path := filepath.Join(dir, "agent.sock")
	if err := os.Symlink(target, path+".lock"); err != nil {
		t.Fatal(err)
	}
	ln, err := socket.Listen(path)
	if err == nil {
		ln.Close()
		t.Fatal("Listen followed the lock's symlink")
	}
	if !strings.Contains(err.Error(), "agent.sock.lock") {
		t.Errorf("error %q does not name the lock file", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the symlink's target was created: %v", err)
	}
}

// TestListenCloseKeepsOthers: Close removes the socket it bound, not a
// socket another agent put at the path after it (its file was removed
// meanwhile).
func TestListenCloseKeepsOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := socket.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	other, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ln.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("the other agent's socket is gone: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the other agent's socket does not answer: %v", err)
	}
	c.Close()
}

// TestSlowClients: a client that announces a frame and trickles it, or
// that sends nothing, is disconnected at its deadline; frames announced
// at 16 MiB and left unsent do not cost 16 MiB each.
func TestSlowClients(t *testing.T) {
	path := serveWith(t, agent.Config{}, agent.Options{Opener: providerOpener{}},
		socket.Options{FrameTimeout: 300 * time.Millisecond, IdleTimeout: 500 * time.Millisecond})
	closed := func(t *testing.T, c net.Conn, within time.Duration) {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(within))
		_, err := io.ReadAll(c)
		if errors.Is(err, syscall.ECONNRESET) {
			err = nil
		}
		if err != nil {
			t.Fatalf("connection still open after %v: %v", time.Since(start).Round(time.Millisecond), err)
		}
	}
	t.Run("idle", func(t *testing.T) {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closed(t, c, 5*time.Second)
	})
	t.Run("trickle", func(t *testing.T) {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{0, 0, 0, 100, 11})
		// One byte every 100 ms keeps the idle timer happy, not the frame's.
		go func() {
			for i := 0; i < 50; i++ {
				time.Sleep(100 * time.Millisecond)
				if _, err := c.Write([]byte{0}); err != nil {
					return
				}
			}
		}()
		closed(t, c, 4*time.Second)
	})
	t.Run("announced", func(t *testing.T) {
		const n = 16
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var conns []net.Conn
		for i := 0; i < n; i++ {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(binary.BigEndian.AppendUint32(nil, socket.MaxFrame))
			c.Write([]byte{27})
			conns = append(conns, c)
		}
		time.Sleep(150 * time.Millisecond) // the server reads the headers
		runtime.ReadMemStats(&after)
		if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 32<<20 {
			t.Errorf("%d frames announced at 16 MiB grew the heap by %d MiB", n, grew>>20)
		}
		for _, c := range conns {
			closed(t, c, 5*time.Second)
		}
	})
}
