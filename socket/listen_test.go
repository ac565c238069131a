package socket_test

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

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
