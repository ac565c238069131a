package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
	"github.com/auths-dev/auths-agent/softhsm-test/sshd"
)

// TestServeSSHLogin: OpenSSH's ssh logs in to a real sshd on loopback with
// the agent's SoftHSM key. ssh binds its agent connection to the session
// and the server's host key (session-bind@openssh.com) before it asks for
// the signature; the agent checks the host key's signature over the
// session identifier, and the audit line of the user-authentication
// signature names the sshd's host key.
func TestServeSSHLogin(t *testing.T) {
	sshdBin := "/usr/sbin/sshd"
	if _, err := os.Stat(sshdBin); err != nil {
		t.Fatalf("this test needs Debian's openssh-server (%s; make test-deps installs it): %v", sshdBin, err)
	}
	rig := newRig(t, softhsm.Token{Label: "login", PIN: "1234"})
	dir := t.TempDir()
	bin := agentBinary(t)
	uri := "pkcs11:token=login;object=ssh?module-path=" + rig.Module + "&pin-value=1234"
	env := rig.Env()
	run1(t, env, dir, "", bin, "key", "generate", "--algorithm", "ed25519", uri)
	sock := filepath.Join(dir, "agent.sock")
	trail := filepath.Join(dir, "audit.jsonl")
	ra := startAgent(t, env, sock, "--ssh-key", uri, "--audit-file", trail, "--log-level", "debug")
	defer func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", ra.stderr)
		}
	}()
	sshEnv := append(env, "SSH_AUTH_SOCK="+sock)
	userPub := run1(t, sshEnv, dir, "", "ssh-add", "-L")

	// sshd on a free loopback port, accepting the agent's key.
	if os.Geteuid() == 0 {
		// sshd started by root insists on its privilege separation
		// directory, which Debian's service unit creates at start.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run1(t, nil, dir, "", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "hostkey"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(userPub), 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	conf := fmt.Sprintf("Port %s\nListenAddress 127.0.0.1\nHostKey %s/hostkey\nAuthorizedKeysFile %s/authorized_keys\n"+
		"PidFile %s/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"+
		"PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUseDNS no\nSetEnv HOME=%s\n", port, dir, dir, dir, dir)
	os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600)
	var sshdLog lockedBuffer
	sshdLog.b = &bytes.Buffer{}
	sd := exec.Command(sshdBin, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	sd.Stdout, sd.Stderr = &sshdLog, &sshdLog
	if err := sd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sd.Process.Kill()
		sd.Wait()
		if t.Failed() {
			sshdLog.mu.Lock()
			t.Logf("sshd:\n%s", sshdLog.b)
			sshdLog.mu.Unlock()
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sshd does not listen")
		}
	}
	hostPub, err := os.ReadFile(filepath.Join(dir, "hostkey.pub"))
	if err != nil {
		t.Fatal(err)
	}
	hk, _, _, _, err := ssh.ParseAuthorizedKey(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(hostPub))
	os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(fmt.Sprintf("[127.0.0.1]:%s %s %s\n", port, f[0], f[1])), 0o600)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	out := run1(t, sshEnv, dir, "", "ssh", "-F", "/dev/null", "-p", port, "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile="+filepath.Join(dir, "known_hosts"), "-o", "StrictHostKeyChecking=yes",
		"-o", "IdentityFile=none", u.Username+"@127.0.0.1", "echo", "logged-in")
	if out != "logged-in\n" {
		t.Fatalf("ssh through the agent printed %q", out)
	}

	lines := readLines(t, trail)
	var userauth []string
	for _, l := range lines {
		if strings.Contains(l, `"what":"userauth"`) {
			userauth = append(userauth, l)
		}
	}
	want := `"host_key":"` + ssh.FingerprintSHA256(hk) + `"`
	if len(userauth) != 1 || !strings.Contains(userauth[0], want) || !strings.Contains(userauth[0], `"outcome":"signed"`) {
		t.Errorf("audit lines of the login: %q, want one signed userauth line with %s\nall lines:\n%s", userauth, want, strings.Join(lines, "\n"))
	}
	if !strings.Contains(ra.stderr.String(), "session bound") {
		t.Errorf("the agent's log does not show the session-bind")
	}
}

// TestServeForwardedAgent: `ssh -A` to a real sshd on loopback; on the far
// side, the forwarded agent socket ($SSH_AUTH_SOCK there) lists the SSH key
// but `auths-agent agent keys` through it is refused (exit 1, reason
// forwarded): ssh binds each forwarded agent connection with the
// forwarding flag set, and the agent then serves no auths extension but
// query and the notices on it. The same command on the local socket works.
func TestServeForwardedAgent(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "fwd", PIN: "1234"})
	dir := t.TempDir()
	bin := agentBinary(t)
	uri := "pkcs11:token=fwd;object=ssh?module-path=" + rig.Module + "&pin-value=1234"
	env := rig.Env()
	run1(t, env, dir, "", bin, "key", "generate", "--algorithm", "ed25519", uri)
	sock := filepath.Join(dir, "agent.sock")
	ra := startAgent(t, env, sock, "--ssh-key", uri, "--log-level", "debug")
	defer func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", ra.stderr)
		}
	}()
	sshEnv := append(env, "SSH_AUTH_SOCK="+sock, "AUTHS_AGENT_SOCK="+sock)
	userPub := run1(t, sshEnv, dir, "", "ssh-add", "-L")
	if out := run1(t, sshEnv, dir, "", bin, "agent", "keys"); !strings.Contains(out, "\tssh\t") {
		t.Fatalf("agent keys on the local socket: %q", out)
	}
	srv := sshd.Start(t, []byte(userPub))
	remote := `ssh-add -L; AUTHS_AGENT_SOCK=$SSH_AUTH_SOCK ` + bin + ` agent keys; echo "exit $?"`
	out := run1(t, sshEnv, dir, "", "ssh", "-A", "-F", "/dev/null", "-p", srv.Port, "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile="+srv.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "IdentityFile=none", srv.User+"@127.0.0.1", "{ "+remote+"; } 2>&1")
	if !strings.Contains(out, strings.TrimSpace(userPub)) {
		t.Errorf("ssh-add -L through the forwarded agent: %q, want the key", out)
	}
	if !strings.Contains(out, "refused on a forwarded agent connection") || !strings.HasSuffix(out, "exit 1\n") {
		t.Errorf("auths-agent agent keys through the forwarded agent printed %q, want a refusal and exit 1", out)
	}
}
