package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/softhsm-test/githttp"
	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
	"github.com/auths-dev/auths-agent/softhsm-test/sshd"
)

// log returns what the agent wrote on stderr so far.
func (ra *runningAgent) log() string {
	lb := ra.cmd.Stderr.(*lockedBuffer)
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.b.String()
}

// remoteMachine is one machine of the remote tests: a clone of origin and
// the agent serving it with the machine's one controller key.
type remoteMachine struct {
	reg   string
	agent *runningAgent
	env   []string // the rig's environment and AUTHS_AGENT_SOCK
}

// out runs auths-agent on the machine and returns stdout (exit 0 wanted).
func (m *remoteMachine) out(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return run1(t, m.env, dir, "", agentBinary(t), args...)
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return strings.TrimSpace(run1(t, []string{"GIT_CONFIG_NOSYSTEM=1"}, dir, "", "git", args...))
}

// TestServeRemote: three machines, each a clone of one bare origin with
// its own `auths-agent serve` holding one key of a 3-of-3 identity, co-sign
// through the remote with every exchange going through the agents
// (pending-push@, pending-pull@, pending@ with a remote): A pushes the
// inception, then anchors and pushes; B pulls and signs with --remote,
// which pushes its signature (still incomplete); C pulls, signs with
// --remote, and the agent commits on origin first; A pulls through its
// agent and B without it (--no-agent), both drop the committed proposal,
// and all three hold origin's registry and verify the same KEL. It runs
// once over a file path and once over ssh:// to a real sshd on loopback.
func TestServeRemote(t *testing.T) {
	t.Run("file", func(t *testing.T) { serveRemoteFlow(t, false) })
	t.Run("ssh", func(t *testing.T) { serveRemoteFlow(t, true) })
}

// serveRemoteFlow is TestServeRemote over a file path, or over ssh:// to
// a real sshd on loopback (the agents and the CLI authenticate through an
// OpenSSH ssh-agent, known_hosts checked).
func serveRemoteFlow(t *testing.T, overSSH bool) {
	rig := newRig(t, softhsm.Token{Label: "rm-a", PIN: "1234"}, softhsm.Token{Label: "rm-b", PIN: "1234"}, softhsm.Token{Label: "rm-c", PIN: "1234"})
	dir := t.TempDir()
	env := rig.Env()
	bin := agentBinary(t)
	origin := filepath.Join(dir, "origin")
	gitOut(t, dir, "init", "-q", "--bare", origin)
	url, shown := origin, origin
	if overSSH {
		sock, pub := sshd.UserAgent(t)
		srv := sshd.Start(t, pub)
		env = slices.Clip(append(env, "SSH_AUTH_SOCK="+sock, "SSH_KNOWN_HOSTS="+srv.KnownHosts))
		url, shown = srv.URL(origin), "ssh://127.0.0.1:"+srv.Port+origin
	}
	var ms [3]*remoteMachine
	var keys []string
	for i, name := range []string{"a", "b", "c"} {
		k := rig.URI("rm-"+name, "k")
		run1(t, env, dir, "", bin, "key", "generate", k)
		keys = append(keys, k)
		reg := filepath.Join(dir, name)
		gitOut(t, dir, "init", "-q", reg)
		gitOut(t, reg, "remote", "add", "origin", url)
		sock := filepath.Join(dir, name+".sock")
		ms[i] = &remoteMachine{reg: reg, env: append(env, "AUTHS_AGENT_SOCK="+sock)}
		if i > 0 {
			ms[i].agent = startAgent(t, env, sock, "--registry", reg, "--key", k)
		}
	}
	A, B, C := ms[0], ms[1], ms[2]
	prefix := strings.TrimSpace(run1(t, env, dir, "", bin, "id", "create", "--init", "--registry", A.reg, "--threshold", "3",
		"--key", keys[0], "--key", keys[1], "--key", keys[2]))
	A.agent = startAgent(t, env, filepath.Join(dir, "a.sock"), "--registry", A.reg, "--key", keys[0])

	if out := A.out(t, dir, "pending", "push", "--registry", A.reg); out != "pushed\trefs/auths/registry\t"+shown+"\n" {
		t.Errorf("pending push through A's agent: %q", out)
	}
	if !strings.Contains(A.agent.log(), "msg=pushed remote="+shown) {
		t.Errorf("A's agent did not log the push:\n%s", A.agent.log())
	}
	head := gitOut(t, A.reg, "rev-parse", "refs/auths/registry")
	for _, m := range []*remoteMachine{B, C} {
		if out := m.out(t, dir, "pending", "pull", "--registry", m.reg); out != "registry\t(none).."+head+"\t2 commits verified\n" {
			t.Errorf("pending pull through the agent: %q", out)
		}
	}

	out := A.out(t, dir, "anchor", "--registry", A.reg, "--id", prefix, "--seal", "i="+prefix+",s=0,d="+prefix)
	m := regexp.MustCompile(`^pending ` + prefix + ` (\S+): 3 of 3, has index 0\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("anchor through A's agent: %q", out)
	}
	said := m[1]
	pendingRef := "refs/auths-agent/pending/" + prefix + "/" + said
	out = A.out(t, dir, "pending", "push", "--registry", A.reg)
	if !strings.Contains(out, "pushed\t"+pendingRef+"\t"+shown+"\n") {
		t.Errorf("pending push of the proposal: %q", out)
	}
	if out := B.out(t, dir, "pending", "pull", "--registry", B.reg); out != "registry\t"+head+"\tup to date\npending\t"+prefix+"\t"+said+"\tcreated\t+3 files\n" {
		t.Errorf("B pulls the proposal through its agent: %q", out)
	}
	// B signs through its agent with --remote: still incomplete, so the
	// agent saves and pushes it.
	out = B.out(t, dir, "pending", "sign", "--registry", B.reg, "--remote", "origin", prefix, said)
	if !strings.HasPrefix(out, "pending "+prefix+" "+said+": 3 of 3, has indexes 0, 1\n") || !strings.Contains(out, "pushed\t"+pendingRef+"\t"+shown+"\n") {
		t.Errorf("pending sign --remote through B's agent: %q", out)
	}
	if got := gitOut(t, origin, "ls-tree", "--name-only", pendingRef+":sigs"); got != "0.qb64\n1.qb64" {
		t.Errorf("origin's proposal after B's signature holds sigs %q", got)
	}
	if out := C.out(t, dir, "pending", "pull", "--registry", C.reg); !strings.Contains(out, "pending\t"+prefix+"\t"+said+"\tcreated\t+4 files\n") {
		t.Errorf("C pulls: %q", out)
	}
	// C's agent completes it and commits on origin first.
	if out := C.out(t, dir, "pending", "sign", "--registry", C.reg, "--remote", "origin", prefix, said); out != "committed "+prefix+" s=1 "+said+"\n" {
		t.Errorf("pending sign --remote through C's agent: %q", out)
	}
	final := gitOut(t, origin, "rev-parse", "refs/auths/registry")
	if got := gitOut(t, C.reg, "rev-parse", "refs/auths/registry"); got != final || got == head {
		t.Errorf("C's registry %s, origin's %s (was %s)", got, final, head)
	}
	if refs := gitOut(t, origin, "for-each-ref", "refs/auths-agent/"); refs != "" {
		t.Errorf("origin keeps proposal refs after the commit:\n%s", refs)
	}
	// A through its agent, B opening its registry itself: the same lines.
	want := "registry\t" + head + ".." + final + "\t1 commits verified\ndropped\t" + prefix + "\t" + said + "\tcommitted\talready in the KEL\n"
	if out := A.out(t, dir, "pending", "pull", "--registry", A.reg); out != want {
		t.Errorf("A pulls the commit through its agent: %q, want %q", out, want)
	}
	before := B.agent.log()
	if out := B.out(t, dir, "pending", "pull", "--no-agent", "--registry", B.reg); out != want {
		t.Errorf("B pulls the commit without its agent: %q, want %q", out, want)
	}
	if strings.Count(B.agent.log(), "msg=pulled") != strings.Count(before, "msg=pulled") {
		t.Errorf("--no-agent asked the agent anyway:\n%s", B.agent.log())
	}
	kel := A.out(t, dir, "kel", "export", "--registry", A.reg, prefix)
	for _, m := range ms {
		if got := gitOut(t, m.reg, "rev-parse", "refs/auths/registry"); got != final {
			t.Errorf("%s at %s, want origin's %s", m.reg, got, final)
		}
		m.out(t, dir, "kel", "verify", "--registry", m.reg, prefix)
		if got := m.out(t, dir, "kel", "export", "--registry", m.reg, prefix); got != kel {
			t.Errorf("%s exports another KEL", m.reg)
		}
	}

	// A request meant for another registry than the agent's: refused,
	// one line, exit 2, nothing exchanged.
	beforeB := gitOut(t, B.reg, "for-each-ref")
	cmd := exec.Command(bin, "pending", "pull", "--registry", B.reg)
	cmd.Env = append(os.Environ(), A.env...)
	if b, err := cmd.CombinedOutput(); err == nil || cmd.ProcessState.ExitCode() != 2 ||
		string(b) != "auths-agent: pending pull: agent: pending pull refused: not the agent's registry: the agent's registry is "+A.reg+", not "+B.reg+"\n" {
		t.Errorf("pull through an agent serving another registry: %v\n%s", err, b)
	}
	if after := gitOut(t, B.reg, "for-each-ref"); after != beforeB {
		t.Errorf("B's refs changed")
	}

	// A remote the agent's registry does not know: one line, exit 2.
	cmd = exec.Command(bin, "pending", "pull", "--registry", A.reg, "--remote", "nosuch")
	cmd.Env = append(os.Environ(), A.env...)
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !regexp.MustCompile(`^auths-agent: pending pull: agent: remote "nosuch": not configured in \S+ \(git remote add nosuch URL\), and not a URL or path\n$`).Match(b) {
		t.Errorf("pull from an unknown remote through the agent: %v\n%s", err, b)
	}
}

// TestServeRemoteSSH: the agent's own socket is the ssh-agent of an
// ssh:// remote: `serve` runs with SSH_AUTH_SOCK naming its own socket and
// holds an SSH key (on a SoftHSM token) that a real sshd on loopback
// accepts; its pending-push goes over ssh authenticated by that key, and
// a CLI opening its registry itself (--no-agent) authenticates through the
// same socket. known_hosts is checked: a host key it does not list is a
// one-line error, nothing changed.
func TestServeRemoteSSH(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "rs-a", PIN: "1234"})
	dir := t.TempDir()
	env := rig.Env()
	bin := agentBinary(t)
	k, sshKey := rig.URI("rs-a", "k"), rig.URI("rs-a", "ssh")
	run1(t, env, dir, "", bin, "key", "generate", k)
	run1(t, env, dir, "", bin, "key", "generate", "--algorithm", "ed25519", sshKey)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	prefix := strings.TrimSpace(run1(t, env, dir, "", bin, "id", "create", "--init", "--registry", a, "--threshold", "1", "--key", k))

	sock := filepath.Join(dir, "agent.sock")
	// The agent needs its socket path before sshd knows its key: start it,
	// read the key, start sshd, and point the agent's known_hosts at sshd
	// through a file written once sshd's host key exists.
	knownHosts := filepath.Join(dir, "known_hosts")
	ra := startAgent(t, append(env, "SSH_AUTH_SOCK="+sock, "SSH_KNOWN_HOSTS="+knownHosts), sock, "--registry", a, "--key", k, "--ssh-key", sshKey)
	pub := run1(t, append(env, "SSH_AUTH_SOCK="+sock), dir, "", "ssh-add", "-L")
	srv := sshd.Start(t, []byte(pub))
	hosts, err := os.ReadFile(srv.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(knownHosts, hosts, 0o600)
	origin := filepath.Join(dir, "origin.git")
	gitOut(t, dir, "init", "-q", "--bare", origin)
	url := srv.URL(origin)
	shown := "ssh://127.0.0.1:" + srv.Port + origin // messages never show the user
	gitOut(t, a, "remote", "add", "origin", url)
	gitOut(t, dir, "init", "-q", b)
	gitOut(t, b, "remote", "add", "origin", url)

	agentEnv := append(env, "AUTHS_AGENT_SOCK="+sock)
	conns := srv.Connections()
	if out := run1(t, agentEnv, dir, "", bin, "pending", "push", "--registry", a); out != "pushed\trefs/auths/registry\t"+shown+"\n" {
		t.Fatalf("pending push over ssh through the agent: %q\nagent: %s", out, ra.log())
	}
	if n := srv.ConnectionsAfter(conns); n != 1 || !strings.Contains(srv.Log(), "Accepted publickey for "+srv.User) || !strings.Contains(srv.Log(), "ED25519") {
		t.Errorf("%d ssh sessions, want 1 authenticated by the agent's ED25519 key:\n%s", n, srv.Log())
	}
	if got, want := gitOut(t, origin, "rev-parse", "refs/auths/registry"), gitOut(t, a, "rev-parse", "refs/auths/registry"); got != want {
		t.Errorf("origin at %s, want A's %s", got, want)
	}
	// The CLI itself, with the agent's socket as its ssh-agent.
	cliEnv := append(env, "SSH_AUTH_SOCK="+sock, "SSH_KNOWN_HOSTS="+knownHosts)
	if out := run1(t, cliEnv, dir, "", bin, "pending", "pull", "--registry", b); !strings.HasSuffix(out, "\t2 commits verified\n") {
		t.Errorf("pending pull over ssh with the agent as ssh-agent: %q", out)
	}
	run1(t, cliEnv, dir, "", bin, "kel", "verify", "--registry", b, prefix)

	// A known_hosts that lists another key for the server.
	other, err := os.ReadFile(srv.OtherKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(other))
	wrong := filepath.Join(dir, "wrong_hosts")
	os.WriteFile(wrong, []byte("[127.0.0.1]:"+srv.Port+" "+f[0]+" "+f[1]+"\n"), 0o600)
	before := gitOut(t, b, "for-each-ref")
	cmd := exec.Command(bin, "pending", "pull", "--registry", b)
	cmd.Env = append(os.Environ(), append(env, "SSH_AUTH_SOCK="+sock, "SSH_KNOWN_HOSTS="+wrong)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !regexp.MustCompile(`^auths-agent: pending pull: pull from ssh://127\.0\.0\.1:\d+/\S+: .*key mismatch.*\n$`).Match(out) {
		t.Errorf("pull from a host known_hosts does not list: %v\n%s", err, out)
	}
	if after := gitOut(t, b, "for-each-ref"); after != before {
		t.Errorf("refs changed by a refused pull:\n%s\nwas\n%s", after, before)
	}
}

// TestServeRemoteHTTPS: an https:// remote (git http-backend over TLS,
// basic credentials) reached by the CLI and by the agent, each with the
// credentials from its own environment (AUTHS_AGENT_GIT_USERNAME,
// AUTHS_AGENT_GIT_PASSWORD) and the server's CA from GIT_SSL_CAINFO; a
// wrong password is one line, exit 2, naming the URL without user
// information and never the password.
func TestServeRemoteHTTPS(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "rh-a", PIN: "1234"})
	dir := t.TempDir()
	env := rig.Env()
	bin := agentBinary(t)
	k := rig.URI("rh-a", "k")
	run1(t, env, dir, "", bin, "key", "generate", k)
	root := filepath.Join(dir, "srv")
	os.Mkdir(root, 0o755)
	gitOut(t, root, "init", "-q", "--bare", "origin.git")
	const password = "pw-Zq81-never-shown"
	srv := githttp.Start(t, root, "bob", password)
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, srv.CAPEM, 0o644)
	url := srv.URL + "/origin.git"
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	prefix := strings.TrimSpace(run1(t, env, dir, "", bin, "id", "create", "--init", "--registry", a, "--threshold", "1", "--key", k))
	gitOut(t, a, "remote", "add", "origin", url)
	gitOut(t, dir, "init", "-q", b)
	gitOut(t, b, "remote", "add", "origin", url)
	creds := []string{"AUTHS_AGENT_GIT_USERNAME=bob", "AUTHS_AGENT_GIT_PASSWORD=" + password, "GIT_SSL_CAINFO=" + ca}

	sock := filepath.Join(dir, "agent.sock")
	startAgent(t, append(env, creds...), sock, "--registry", a, "--key", k)
	// The client has no credentials: the agent uses its own.
	if out := run1(t, append(env, "AUTHS_AGENT_SOCK="+sock), dir, "", bin, "pending", "push", "--registry", a); out != "pushed\trefs/auths/registry\t"+url+"\n" {
		t.Errorf("pending push over https through the agent: %q", out)
	}
	if out := run1(t, append(env, creds...), dir, "", bin, "pending", "pull", "--registry", b); !strings.HasSuffix(out, "\t2 commits verified\n") {
		t.Errorf("pending pull over https: %q", out)
	}
	run1(t, env, dir, "", bin, "kel", "verify", "--registry", b, prefix)

	// A URL the client names, not a remote of the registry: the agent
	// sends it no credentials. The other server counts the requests that
	// came with credentials it refused.
	otherRoot := filepath.Join(dir, "other")
	os.Mkdir(otherRoot, 0o755)
	gitOut(t, otherRoot, "init", "-q", "--bare", "x.git")
	other := githttp.Start(t, otherRoot, "eve", "eve's password")
	cmd := exec.Command(bin, "pending", "push", "--registry", a, "--remote", other.URL+"/x.git")
	cmd.Env = append(append(os.Environ(), env...), "AUTHS_AGENT_SOCK="+sock)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "authentication required") {
		t.Errorf("pending push through the agent to a URL that is not a remote of the registry: %v\n%s", err, out)
	}
	if n := other.Refused.Load(); n != 0 {
		t.Errorf("the agent sent its https credentials to a URL the client named (%d requests)", n)
	}

	before := gitOut(t, b, "for-each-ref")
	for _, c := range []struct {
		name string
		env  []string
		want string
	}{
		{"wrong password", []string{"AUTHS_AGENT_GIT_USERNAME=bob", "AUTHS_AGENT_GIT_PASSWORD=x" + password, "GIT_SSL_CAINFO=" + ca}, "authentication required"},
		{"no CA", []string{"AUTHS_AGENT_GIT_USERNAME=bob", "AUTHS_AGENT_GIT_PASSWORD=" + password}, "certificate signed by unknown authority"},
		{"unreadable CA file", []string{"AUTHS_AGENT_GIT_USERNAME=bob", "AUTHS_AGENT_GIT_PASSWORD=" + password, "GIT_SSL_CAINFO=" + ca + ".missing"}, "GIT_SSL_CAINFO: " + ca + ".missing"},
	} {
		cmd := exec.Command(bin, "pending", "pull", "--registry", b)
		cmd.Env = append(append(os.Environ(), env...), c.env...)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || strings.Count(string(out), "\n") != 1 || !strings.HasPrefix(string(out), "auths-agent: pending pull: ") ||
			!strings.Contains(string(out), c.want) || strings.Contains(string(out), password) || strings.Contains(string(out), "bob") {
			t.Errorf("%s: %v\n%s", c.name, err, out)
		}
		if c.name == "wrong password" && !strings.Contains(string(out), "pull from "+url+": ") {
			t.Errorf("%s: %s, want the URL %s", c.name, out, url)
		}
	}
	if after := gitOut(t, b, "for-each-ref"); after != before {
		t.Errorf("refs changed by refused pulls")
	}
}

// TestServeRemoteRelativePaths: pending push and pull through the agent
// with a relative --registry and a relative path --remote, typed in the
// client's working directory, reach the registry and the repository they
// name there: the client sends them as absolute paths (the agent runs in
// another directory, $HOME under systemd).
func TestServeRemoteRelativePaths(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "rel", PIN: "1234"})
	dir := t.TempDir()
	env := rig.Env()
	bin := agentBinary(t)
	k := rig.URI("rel", "k")
	run1(t, env, dir, "", bin, "key", "generate", k)
	work := filepath.Join(dir, "work")
	os.Mkdir(work, 0o755)
	reg := filepath.Join(work, "reg")
	run1(t, env, dir, "", bin, "id", "create", "--init", "--registry", reg, "--threshold", "1", "--key", k)
	bare := filepath.Join(dir, "bare.git")
	gitOut(t, dir, "init", "-q", "--bare", bare)
	sock := filepath.Join(dir, "agent.sock")
	startAgent(t, env, sock, "--registry", reg, "--key", k)
	aenv := append(env, "AUTHS_AGENT_SOCK="+sock)
	if out := run1(t, aenv, work, "", bin, "pending", "push", "--registry", "reg", "--remote", "../bare.git"); out != "pushed\trefs/auths/registry\t"+bare+"\n" {
		t.Errorf("pending push --registry reg --remote ../bare.git through the agent: %q", out)
	}
	if got, want := gitOut(t, bare, "rev-parse", "refs/auths/registry"), gitOut(t, reg, "rev-parse", "refs/auths/registry"); got != want {
		t.Errorf("bare.git's registry ref is %s, want %s", got, want)
	}
	for _, r := range []string{"./reg", reg} {
		if out := run1(t, aenv, work, "", bin, "pending", "pull", "--registry", r, "--remote", "../bare.git"); !strings.HasSuffix(out, "\tup to date\n") {
			t.Errorf("pending pull --registry %s --remote ../bare.git through the agent: %q", r, out)
		}
	}
}
