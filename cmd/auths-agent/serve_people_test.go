package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// TestServePeople drives the real agent binary with a SoftHSM key whose URI
// names no PIN source: the PIN comes from a pinentry (the scripted stand-in
// of agent/pinentry, chosen by PINENTRY_PROGRAM); ssh-add -x locks the
// agent (signing refused) and -X unlocks it (the PIN is asked again); every
// signature and refusal lands in the audit trail, which auths-agent audit
// --verify accepts and, once a line is edited, rejects naming it.
func TestServePeople(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "people", PIN: "1234"})
	dir := t.TempDir()
	bin := agentBinary(t)
	standin := filepath.Join(dir, "pinentry-standin")
	if out, err := exec.Command("go", "build", "-o", standin, "../../agent/pinentry/testdata/standin").CombinedOutput(); err != nil {
		t.Fatalf("building the pinentry stand-in: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "pin"), []byte("1234\n"), 0o600)
	base := "pkcs11:token=people;object=ssh?module-path=" + rig.Module
	env := rig.Env()
	run1(t, env, dir, "", bin, "key", "generate", "--algorithm", "ed25519", base+"&pin-source=file:"+filepath.Join(dir, "pin"))

	record := filepath.Join(dir, "pinentry.log")
	trail := filepath.Join(dir, "state", "audit.jsonl")
	sock := filepath.Join(dir, "run", "agent.sock")
	// The person first types a wrong PIN, then the right one.
	agentEnv := append(env, "PINENTRY_PROGRAM="+standin, "STANDIN_MODE=ok", "STANDIN_PINS=9999,1234", "STANDIN_RECORD="+record)
	ra := startAgent(t, agentEnv, sock, "--ssh-key", base, "--audit-file", trail)
	defer func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", ra.stderr)
		}
	}()

	askpass := filepath.Join(dir, "askpass")
	os.WriteFile(askpass, []byte("#!/bin/sh\necho 'lock phrase'\n"), 0o755)
	sshEnv := append(env, "SSH_AUTH_SOCK="+sock, "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	// Listing opens the key, which logs in: the first PIN typed is wrong,
	// so the first listing has no key, and the second prompt says why.
	first := exec.Command("ssh-add", "-L")
	first.Env = append(os.Environ(), sshEnv...)
	if out, _ := first.CombinedOutput(); !strings.Contains(string(out), "The agent has no identities.") {
		t.Fatalf("listing with a wrong PIN: %s", out)
	}
	pub := run1(t, sshEnv, dir, "", "ssh-add", "-L")
	pubFile := filepath.Join(dir, "key.pub")
	os.WriteFile(pubFile, []byte(pub), 0o644)
	msg := filepath.Join(dir, "msg.txt")
	os.WriteFile(msg, []byte("hello\n"), 0o644)
	sign := func() error {
		os.Remove(msg + ".sig")
		cmd := exec.Command("ssh-keygen", "-Y", "sign", "-n", "file", "-f", pubFile, msg)
		cmd.Env = append(os.Environ(), sshEnv...)
		return cmd.Run()
	}
	getpins := func() int {
		b, _ := os.ReadFile(record)
		return strings.Count(string(b), "GETPIN\n")
	}

	if err := sign(); err != nil {
		t.Fatalf("signature with the right PIN: %v", err)
	}
	if err := sign(); err != nil {
		t.Fatalf("third signature: %v", err)
	}
	if n := getpins(); n != 2 {
		t.Errorf("%d pinentry prompts for a refused PIN, a listing and two signatures, want 2 (the right PIN is cached)", n)
	}
	b, _ := os.ReadFile(record)
	runs := strings.Split(string(b), "GETPIN\n")
	if !strings.Contains(runs[0], "SETDESC Enter the PIN of token \"people\" (serial ") || strings.Contains(runs[0], "refused") {
		t.Errorf("first prompt:\n%s", runs[0])
	}
	if !strings.Contains(runs[1], "SETDESC The previous PIN was refused.%0AEnter the PIN of ") || !strings.Contains(runs[1], "SETERROR PIN refused") {
		t.Errorf("the prompt after the refusal does not say so:\n%s", runs[1])
	}

	run1(t, sshEnv, dir, "", "ssh-add", "-x")
	if err := sign(); err == nil {
		t.Error("signed while locked")
	}
	// Our extensions say why they fail: the CLI through a locked agent.
	keys := exec.Command(bin, "agent", "keys")
	keys.Env = append(os.Environ(), append(env, "AUTHS_AGENT_SOCK="+sock)...)
	var keysErr strings.Builder
	keys.Stderr = &keysErr
	if err := keys.Run(); keys.ProcessState.ExitCode() != 1 || !strings.Contains(keysErr.String(), "agent is locked") {
		t.Errorf("agent keys through a locked agent: %v, stderr %q; want exit 1 saying the agent is locked", err, keysErr.String())
	}
	list := exec.Command("ssh-add", "-L")
	list.Env = append(os.Environ(), sshEnv...)
	if out, _ := list.CombinedOutput(); !strings.Contains(string(out), "The agent has no identities.") {
		t.Errorf("a locked agent lists keys:\n%s", out)
	}
	run1(t, sshEnv, dir, "", "ssh-add", "-X")
	if err := sign(); err != nil {
		t.Fatalf("signature after unlock: %v", err)
	}
	if n := getpins(); n != 3 {
		t.Errorf("%d pinentry prompts after lock and unlock, want 3", n)
	}

	// A refusal: data that is neither a userauth request nor SSHSIG.
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sshagent.NewClient(conn).Sign(pk, []byte("not SSH data")); err == nil {
		t.Error("signed data that is not SSH data")
	}
	conn.Close()

	lines := readLines(t, trail)
	if len(lines) != 4 {
		t.Fatalf("%d audit lines, want 4 (3 signatures, 1 refusal):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, l := range lines[:3] {
		for _, want := range []string{`"outcome":"signed"`, `"op":"ssh-sign"`, `"fingerprint":"SHA256:`, `"what":"sshsig","namespace":"file"`, `"exe":"/usr/bin/ssh-keygen"`, `"uid":0`} {
			if !strings.Contains(l, want) {
				t.Errorf("audit line %d lacks %s:\n%s", i+1, want, l)
			}
		}
		if strings.Contains(l, "1234") {
			t.Errorf("audit line %d holds the PIN", i+1)
		}
	}
	if !strings.Contains(lines[3], `"outcome":"refused"`) || !strings.Contains(lines[3], `"reason":"`) {
		t.Errorf("refusal line:\n%s", lines[3])
	}
	out := run1(t, env, dir, "", bin, "audit", "--verify", "--file", trail)
	if !strings.HasPrefix(out, "4 lines verified, head ") {
		t.Errorf("audit --verify: %s", out)
	}
	edited := strings.Replace(strings.Join(lines, "\n")+"\n", `"namespace":"file"`, `"namespace":"git"`, 1)
	os.WriteFile(trail, []byte(edited), 0o600)
	cmd := exec.Command(bin, "audit", "--verify", "--file", trail)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), "line 1: edited") {
		t.Errorf("audit --verify of an edited trail: %v %s", err, stderr.String())
	}
}

// TestServeUnwritableAudit: an audit trail that cannot be opened stops the
// agent before it listens, with one line.
func TestServeUnwritableAudit(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	cmd := exec.Command(agentBinary(t), "serve", "--socket", filepath.Join(dir, "agent.sock"),
		"--audit-file", filepath.Join(dir, "file", "audit.jsonl"), "--ssh-key", "pkcs11:token=t;object=k?module-path=/m.so")
	out, err := cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "audit trail "+filepath.Join(dir, "file", "audit.jsonl")+": not a directory") {
		t.Errorf("serve with an unwritable audit trail: %v\n%s", err, out)
	}
}

// TestServeSocketActivation: serve started by systemd-socket-activate (as
// systemd starts the unit) serves the socket it was passed.
func TestServeSocketActivation(t *testing.T) {
	prog, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatalf("systemd-socket-activate is needed (make test-deps installs systemd): %v", err)
	}
	rig := newRig(t, softhsm.Token{Label: "act", PIN: "1234"})
	dir := t.TempDir()
	bin := agentBinary(t)
	uri := "pkcs11:token=act;object=ssh?module-path=" + rig.Module + "&pin-value=1234"
	env := rig.Env()
	run1(t, env, dir, "", bin, "key", "generate", "--algorithm", "ed25519", uri)
	sock := filepath.Join(dir, "agent.sock")
	// systemd-socket-activate passes on only the variables named by -E.
	args := []string{"-l", sock}
	for _, kv := range env {
		args = append(args, "-E", kv)
	}
	args = append(args, bin, "serve", "--ssh-key", uri, "--audit-file", filepath.Join(dir, "audit.jsonl"))
	cmd := exec.Command(prog, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("the activated agent did not stop on SIGTERM")
		}
		if _, err := os.Stat(sock); err != nil {
			t.Errorf("the socket file (systemd's) went away with the agent: %v", err)
		}
	}()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 200 {
			t.Fatalf("no socket; output: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	listed := run1(t, append(env, "SSH_AUTH_SOCK="+sock), dir, "", "ssh-add", "-L")
	if !strings.HasPrefix(listed, "ssh-ed25519 ") {
		t.Errorf("ssh-add -L through the activated agent: %q", listed)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		out = append(out, s.Text())
	}
	return out
}
