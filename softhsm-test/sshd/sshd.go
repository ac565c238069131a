// Package sshd runs a real OpenSSH server (Debian's openssh-server) on
// loopback for tests: its own configuration, host key and authorized keys,
// a known_hosts file naming it, stopped when the test ends. Tests of git
// remotes over ssh:// (registry, cmd/auths-agent) share it.
package sshd

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running sshd.
type Server struct {
	Dir, User, Port string
	// KnownHosts lists the server's host key for [127.0.0.1]:Port.
	KnownHosts string
	// OtherKey is the private key file of a key the server does not accept
	// (OtherKey+".pub" its public key), for tests of refusals.
	OtherKey string
	log      *syncBuffer
}

// syncBuffer is sshd's log, written by exec's copying goroutine while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Log returns what sshd logged so far.
func (s *Server) Log() string { return s.log.String() }

// Connections counts the ssh sessions sshd has authenticated so far.
func (s *Server) Connections() int {
	return strings.Count(s.log.String(), "Accepted publickey for ")
}

// ConnectionsAfter waits for sshd to log the sessions opened since it
// counted n (its log reaches the test through a pipe, after the client
// has returned) and returns how many there were.
func (s *Server) ConnectionsAfter(n int) int {
	deadline := time.Now().Add(5 * time.Second)
	for s.Connections() == n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a second session would be logged by now
	return s.Connections() - n
}

// URL is the ssh:// URL of path on the server, as the current user.
func (s *Server) URL(path string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%s%s", s.User, s.Port, path)
}

// Run runs a command, failing the test with its output when it fails.
func Run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// StartBackground starts a long-running command with env added, its
// output to log, stopped when the test ends.
func StartBackground(t testing.TB, log *bytes.Buffer, env []string, name string, args ...string) {
	t.Helper()
	startBackground(t, log, env, name, args...)
}

func startBackground(t testing.TB, log interface{ Write([]byte) (int, error) }, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// Start runs sshd on a free loopback port accepting the public keys in
// authorizedKeys (authorized_keys lines) for the current user.
func Start(t testing.TB, authorizedKeys []byte) *Server {
	t.Helper()
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		t.Fatalf("ssh tests need Debian's openssh-server (%s; make test-deps installs it): %v", sshd, err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd started by root insists on its privilege separation
		// directory, which Debian's service unit creates at start.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	s := &Server{Dir: dir, User: u.Username, OtherKey: filepath.Join(dir, "otherkey"), log: &syncBuffer{}}
	Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "hostkey"))
	Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", s.OtherKey)
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), authorizedKeys, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, s.Port, _ = net.SplitHostPort(l.Addr().String())
	l.Close()
	// sshd runs each git-upload-pack/git-receive-pack through the user's
	// login shell, and bash started by sshd sources ~/.bashrc: on the CI
	// machine that runs pyenv init, 3.5-5 s of every connection. The
	// sessions get HOME in the server's directory, which holds no shell
	// startup files and no .gitconfig, so a connection costs only what ssh
	// and git cost (0.6 s on the loaded 2-core machine).
	conf := fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s/hostkey
AuthorizedKeysFile %s/authorized_keys
PidFile %s/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UseDNS no
SetEnv HOME=%s
`, s.Port, dir, dir, dir, dir)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startBackground(t, s.log, nil, sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sshd:\n%s", s.log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+s.Port)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on %s: %v\n%s", s.Port, err, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	hostPub, err := os.ReadFile(filepath.Join(dir, "hostkey.pub"))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(hostPub))
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%s %s %s\n", s.Port, fields[0], fields[1])
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// UserAgent starts OpenSSH's ssh-agent holding a fresh Ed25519 user key,
// stopped when the test ends; it returns the agent's socket and the key's
// authorized_keys line.
func UserAgent(t testing.TB) (sock string, pub []byte) {
	t.Helper()
	dir := t.TempDir()
	Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "userkey"))
	pub, err := os.ReadFile(filepath.Join(dir, "userkey.pub"))
	if err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "agent.sock")
	var log syncBuffer
	startBackground(t, &log, nil, "ssh-agent", "-D", "-a", sock)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh-agent did not start:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd := exec.Command("ssh-add", filepath.Join(dir, "userkey"))
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	return sock, pub
}
