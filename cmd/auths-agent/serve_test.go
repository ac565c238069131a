package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// The serve tests build the real binary, start `auths-agent serve` on a
// temporary socket with SoftHSM keys, and drive it with OpenSSH's and git's
// own clients.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// agentBinary builds cmd/auths-agent once per test process.
func agentBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "auths-agent-bin-")
		if err != nil {
			binErr = err
			return
		}
		// Readable by every uid: the peer-uid test runs a client as nobody.
		os.Chmod(dir, 0o755)
		binPath = filepath.Join(dir, "auths-agent")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = &buildError{out: string(out), err: err}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// removeBinAfter removes the binary agentBinary built once the tests ran.
type removeBinAfter struct{ m *testing.M }

func (r removeBinAfter) Run() int {
	code := r.m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	return code
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

// runningAgent is an `auths-agent serve` process.
type runningAgent struct {
	cmd    *exec.Cmd
	sock   string
	stderr *bytes.Buffer
	done   chan error
}

// startAgent starts `auths-agent serve --socket SOCK args…` with env and
// waits for its `listening on` line.
func startAgent(t testing.TB, env []string, sock string, args ...string) *runningAgent {
	t.Helper()
	if !slices.Contains(args, "--audit-file") {
		args = append(args, "--audit-file", filepath.Join(t.TempDir(), "audit.jsonl"))
	}
	cmd := exec.Command(agentBinary(t), append([]string{"serve", "--socket", sock}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ra := &runningAgent{cmd: cmd, sock: sock, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = &lockedBuffer{b: ra.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		for s.Scan() {
		}
	}()
	go func() { ra.done <- cmd.Wait() }()
	t.Cleanup(func() { ra.stop(t) })
	select {
	case l := <-line:
		if l != "listening on "+sock {
			t.Fatalf("first line %q, want %q; stderr: %s", l, "listening on "+sock, ra.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("agent not ready; stderr: %s", ra.stderr)
	}
	return ra
}

// stop sends SIGTERM and waits for a clean exit.
func (ra *runningAgent) stop(t testing.TB) {
	if ra.cmd.ProcessState != nil {
		return
	}
	ra.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-ra.done:
		if err != nil {
			t.Errorf("agent exit: %v; stderr: %s", err, ra.stderr)
		}
	case <-time.After(10 * time.Second):
		ra.cmd.Process.Kill()
		t.Errorf("agent did not stop on SIGTERM")
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// run runs a command with env, in dir, and returns its stdout; it fails
// the test on a non-zero exit.
func run1(t *testing.T, env []string, dir, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// TestServeSSH: ssh-add -L lists the SSH keys (and not the controller
// key); ssh-keygen -Y sign signs through the agent and -Y verify accepts;
// git commit -S with gpg.format=ssh makes a commit git verify-commit
// accepts; a client of another uid is refused even on a 0666 socket.
func TestServeSSH(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "ssh-1", PIN: "1234"}, softhsm.Token{Label: "ssh-2", PIN: "1234"})
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	os.WriteFile(pinFile, []byte("1234\n"), 0o600)
	uri := func(tok, obj string) string {
		return "pkcs11:token=" + tok + ";object=" + obj + "?module-path=" + rig.Module + "&pin-source=file:" + pinFile
	}
	env := rig.Env()
	bin := agentBinary(t)
	sshEd, sshP256, ctl := uri("ssh-1", "ssh-ed"), uri("ssh-2", "ssh-p256"), uri("ssh-1", "controller")
	run1(t, env, dir, "", bin, "key", "generate", "--algorithm", "ed25519", sshEd)
	run1(t, env, dir, "", bin, "key", "generate", "--algorithm", "p256", sshP256)
	run1(t, env, dir, "", bin, "key", "generate", "--algorithm", "ed25519", ctl)

	sockDir := filepath.Join(dir, "run")
	sock := filepath.Join(sockDir, "agent.sock")
	startAgent(t, env, sock, "--ssh-key", sshEd, "--ssh-key", sshP256, "--key", ctl)
	if fi, err := os.Stat(sockDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory: %v %v, want 0700", fi.Mode(), err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket: %v %v, want 0600", fi.Mode(), err)
	}
	sshEnv := append(env, "SSH_AUTH_SOCK="+sock)

	listed := run1(t, sshEnv, dir, "", "ssh-add", "-L")
	lines := strings.Split(strings.TrimSpace(listed), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ssh-ed25519 ") || !strings.HasPrefix(lines[1], "ecdsa-sha2-nistp256 ") {
		t.Fatalf("ssh-add -L:\n%s\nwant the ssh-ed25519 and the ecdsa-sha2-nistp256 key", listed)
	}
	if !strings.HasSuffix(lines[0], " "+strings.TrimSuffix(sshEd, "")) || strings.Contains(listed, "controller") {
		t.Errorf("ssh-add -L comments:\n%s\nwant the SSH keys' URIs, never the controller key", listed)
	}

	for i, pub := range lines {
		pubFile := filepath.Join(dir, "key.pub")
		os.WriteFile(pubFile, []byte(pub+"\n"), 0o644)
		msg := filepath.Join(dir, "msg.txt")
		os.WriteFile(msg, []byte("signed through auths-agent\n"), 0o644)
		os.Remove(msg + ".sig")
		run1(t, sshEnv, dir, "", "ssh-keygen", "-Y", "sign", "-n", "file", "-f", pubFile, msg)
		fields := strings.Fields(pub)
		allowed := filepath.Join(dir, "allowed")
		os.WriteFile(allowed, []byte("me@example.com "+fields[0]+" "+fields[1]+"\n"), 0o644)
		sig := filepath.Join(dir, "msg.txt.sig")
		out := run1(t, sshEnv, dir, "signed through auths-agent\n", "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "me@example.com", "-n", "file", "-s", sig)
		if !strings.Contains(out, "Good") {
			t.Errorf("key %d: ssh-keygen -Y verify: %s", i, out)
		}
		// A changed message does not verify.
		cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "me@example.com", "-n", "file", "-s", sig)
		cmd.Stdin = strings.NewReader("another message\n")
		if cmd.Run() == nil {
			t.Errorf("key %d: a changed message verified", i)
		}
	}

	t.Run("git commit -S", func(t *testing.T) {
		repo := filepath.Join(dir, "repo")
		allowed := filepath.Join(dir, "git-allowed")
		f := strings.Fields(lines[0])
		os.WriteFile(allowed, []byte("dev@example.com "+f[0]+" "+f[1]+"\n"), 0o644)
		gitEnv := append(sshEnv, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		run1(t, gitEnv, dir, "", "git", "init", "-q", repo)
		for _, kv := range [][2]string{
			{"user.name", "Dev"}, {"user.email", "dev@example.com"}, {"gpg.format", "ssh"},
			{"user.signingkey", "key::" + f[0] + " " + f[1]}, {"gpg.ssh.allowedSignersFile", allowed},
		} {
			run1(t, gitEnv, repo, "", "git", "config", kv[0], kv[1])
		}
		os.WriteFile(filepath.Join(repo, "README"), []byte("hello\n"), 0o644)
		run1(t, gitEnv, repo, "", "git", "add", "README")
		run1(t, gitEnv, repo, "", "git", "commit", "-q", "-S", "-m", "signed by a SoftHSM key through auths-agent")
		cmd := exec.Command("git", "verify-commit", "HEAD")
		cmd.Dir, cmd.Env = repo, append(os.Environ(), gitEnv...)
		b, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(b), `Good "git" signature for dev@example.com`) {
			t.Errorf("git verify-commit: %v\n%s", err, b)
		}
	})

	t.Run("another uid", func(t *testing.T) {
		// Widen everything so that only the uid check stands in the way.
		os.Chmod(dir, 0o755)
		os.Chmod(sockDir, 0o755)
		os.Chmod(sock, 0o666)
		for d := filepath.Dir(dir); d != "/" && d != "/tmp"; d = filepath.Dir(d) {
			os.Chmod(d, 0o755)
		}
		cmd := exec.Command("setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "ssh-add", "-L")
		cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		b, err := cmd.CombinedOutput()
		if err == nil || strings.Contains(string(b), "ssh-ed25519") {
			t.Fatalf("ssh-add -L as nobody: %v\n%s\nwant a refusal", err, b)
		}
		cmd = exec.Command("setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", bin, "agent", "keys")
		cmd.Env = append(os.Environ(), "AUTHS_AGENT_SOCK="+sock)
		b, err = cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), "is not the agent's uid") {
			t.Fatalf("auths-agent agent keys as nobody: %v\n%s\nwant the peer-uid refusal", err, b)
		}
	})
}

func agentBinaryB(b *testing.B) string { return agentBinary(b) }

func startAgentB(b *testing.B, env []string, sock string, args ...string) *runningAgent {
	return startAgent(b, env, sock, args...)
}

// execEnv runs a command with env added and returns its combined output.
func execEnv(env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// TestServeAnchorCLI: with AUTHS_AGENT_SOCK set, `anchor` and `pending
// sign` go through the agent and sign with its keys: an agent holding one
// key of a 2-of-2 identity leaves the anchor pending, another agent
// holding the second key completes and commits it; --no-agent opens the
// tokens directly (and then needs --key).
func TestServeAnchorCLI(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "cli-1", PIN: "1234"}, softhsm.Token{Label: "cli-2", PIN: "1234"})
	dir := t.TempDir()
	env := rig.Env()
	bin := agentBinary(t)
	k1, k2, kx := rig.URI("cli-1", "k"), rig.URI("cli-2", "k"), rig.URI("cli-1", "kx")
	run1(t, env, dir, "", bin, "key", "generate", k1)
	run1(t, env, dir, "", bin, "key", "generate", "--algorithm", "p256", k2)
	run1(t, env, dir, "", bin, "key", "generate", kx)
	reg := filepath.Join(dir, "reg")
	prefix := strings.TrimSpace(run1(t, env, dir, "", bin, "id", "create", "--init", "--registry", reg, "--threshold", "2", "--key", k1, "--key", k2))
	sock1, sock2 := filepath.Join(dir, "a1.sock"), filepath.Join(dir, "a2.sock")
	startAgent(t, env, sock1, "--registry", reg, "--key", k1)
	startAgent(t, env, sock2, "--registry", reg, "--key", k2)
	sock3 := filepath.Join(dir, "a3.sock")
	startAgent(t, env, sock3, "--registry", reg, "--key", kx)

	out := run1(t, append(env, "AUTHS_AGENT_SOCK="+sock1), dir, "", bin, "anchor", "--registry", reg, "--id", prefix, "--seal", "i="+prefix+",s=0,d="+prefix)
	var said string
	if f := strings.Fields(out); len(f) >= 3 && f[0] == "pending" && f[1] == prefix {
		said = strings.TrimSuffix(f[2], ":")
	} else {
		t.Fatalf("anchor through the agent: %q, want pending %s SAID: …", out, prefix)
	}
	if !strings.Contains(out, "2 of 2, has index 0") {
		t.Errorf("anchor through the agent: %q", out)
	}
	// The agent that signed already: "already signed by index 0", exit 0,
	// the pending ref does not move.
	refBefore := run1(t, nil, dir, "", "git", "-C", reg, "rev-parse", "refs/auths-agent/pending/"+prefix+"/"+said)
	cmd := exec.Command(bin, "pending", "sign", "--registry", reg, prefix, said)
	cmd.Env = append(os.Environ(), append(env, "AUTHS_AGENT_SOCK="+sock1)...)
	var sout, serr strings.Builder
	cmd.Stdout, cmd.Stderr = &sout, &serr
	if err := cmd.Run(); err != nil || sout.String() != "pending "+prefix+" "+said+": 2 of 2, has index 0\n" ||
		serr.String() != "auths-agent: pending sign: "+prefix+" "+said+": already signed by index 0 (the agent's key); not signing again\n" {
		t.Errorf("pending sign again through the agent that signed: %v\nstdout %q\nstderr %q", err, sout.String(), serr.String())
	}
	if after := run1(t, nil, dir, "", "git", "-C", reg, "rev-parse", "refs/auths-agent/pending/"+prefix+"/"+said); after != refBefore {
		t.Errorf("pending ref moved from %s to %s though nothing was signed", refBefore, after)
	}
	// An agent whose key is not in the key list: exit 1, naming the
	// identity and the keys its indexes expect; nothing written.
	b, err := execEnv(append(env, "AUTHS_AGENT_SOCK="+sock3), bin, "pending", "sign", "--registry", reg, prefix, said)
	want := regexp.MustCompile(`^auths-agent: pending sign: agent: .*none of the keys this agent holds signs ixn s=1 ` + said +
		` of ` + prefix + ` \(indexes 0-1 expect keys D[A-Za-z0-9_-]{43}, 1AAJ[A-Za-z0-9_-]{44}\)\n$`)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !want.Match(b) {
		t.Errorf("pending sign through an agent without a signing key: %v\n%s", err, b)
	}
	if after := run1(t, nil, dir, "", "git", "-C", reg, "rev-parse", "refs/auths-agent/pending/"+prefix+"/"+said); after != refBefore {
		t.Errorf("pending ref moved from %s to %s after a refusal", refBefore, after)
	}
	out = run1(t, append(env, "AUTHS_AGENT_SOCK="+sock2), dir, "", bin, "pending", "sign", "--registry", reg, prefix, said)
	if out != "committed "+prefix+" s=1 "+said+"\n" {
		t.Errorf("pending sign through the agent: %q", out)
	}
	cmd = exec.Command(bin, "anchor", "--no-agent", "--registry", reg, "--id", prefix, "--seal", "i="+prefix+",s=0,d="+prefix)
	cmd.Env = append(os.Environ(), append(env, "AUTHS_AGENT_SOCK="+sock1)...)
	b, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(b), "give at least one --key") {
		t.Errorf("anchor --no-agent without --key: %v: %s", err, b)
	}
}
