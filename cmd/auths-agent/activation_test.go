package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSocketActivation starts this test binary under systemd-socket-activate
// (as systemd starts a socket-activated service): on the first connection it
// is started with the listening socket as fd 3, takes it through
// systemdListener, and serves the client. A second run checks the refusals
// of two sockets and of a TCP socket.
func TestSocketActivation(t *testing.T) {
	if os.Getenv("ACTIVATION_CHILD") == "1" {
		activationChild()
		return
	}
	prog, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatalf("systemd-socket-activate is needed (make test-deps installs systemd): %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")

	t.Run("serves", func(t *testing.T) {
		a := startActivated(t, prog, "-l", sock)
		conn := dialWait(t, "unix", sock)
		defer conn.Close()
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatalf("reading from the activated process: %v (its output: %s)", err, a.wait(t))
		}
		if !strings.HasPrefix(line, "served on "+sock+" by pid ") {
			t.Errorf("got %q", line)
		}
		a.wait(t)
		// The socket file is systemd's: it stays when the agent stops.
		if _, err := os.Stat(sock); err != nil {
			t.Errorf("the socket file went away with the activated process: %v", err)
		}
	})
	t.Run("two sockets", func(t *testing.T) {
		s2 := filepath.Join(dir, "second.sock")
		a := startActivated(t, prog, "-l", filepath.Join(dir, "first.sock"), "-l", s2)
		c := dialWait(t, "unix", s2)
		c.Close()
		wantOutput(t, a.wait(t), "socket activation: systemd passed 2 sockets, want one (a single ListenStream=)\n")
	})
	t.Run("tcp", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		a := startActivated(t, prog, "-l", addr)
		c := dialWait(t, "tcp", addr)
		c.Close()
		wantOutput(t, a.wait(t), "socket activation: a tcp socket was passed, want a unix socket\n")
	})
}

// activationChild is the activated process: it serves one client.
func activationChild() {
	l, err := systemdListener()
	if err != nil {
		fmt.Println(err)
		return
	}
	if l == nil {
		fmt.Println("no socket passed")
		return
	}
	c, err := l.Accept()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Fprintf(c, "served on %s by pid %d\n", l.Addr(), os.Getpid())
	c.Close()
	l.Close()
}

// activated is a run of systemd-socket-activate and the process it starts.
type activated struct {
	out  bytes.Buffer // stdout and stderr, read once the run ended
	done chan error
	err  error
}

func startActivated(t *testing.T, prog string, args ...string) *activated {
	t.Helper()
	args = append(args, "-E", "ACTIVATION_CHILD=1", os.Args[0], "-test.run=^TestSocketActivation$")
	cmd := exec.Command(prog, args...)
	a := &activated{done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = &a.out, &a.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if a.done == nil {
			return
		}
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-a.done
			t.Errorf("the activated process did not end")
		}
	})
	return a
}

// wait waits for the run to end and returns its output.
func (a *activated) wait(t *testing.T) string {
	t.Helper()
	select {
	case a.err = <-a.done:
		a.done = nil
	case <-time.After(10 * time.Second):
		t.Fatal("the activated process did not end")
	}
	return a.out.String()
}

func dialWait(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial(network, addr)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantOutput(t *testing.T, out, want string) {
	t.Helper()
	if !strings.Contains(out, want) {
		t.Errorf("output %q, want %q", out, want)
	}
}
