package registry

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/softhsm-test/sshd"
)

// sshRig is a real OpenSSH server on loopback (softhsm-test/sshd) and a
// real ssh-agent holding the user key the server accepts.
type sshRig struct {
	*sshd.Server
	agentSock  string
	knownHosts string
}

func run(t testing.TB, name string, args ...string) { t.Helper(); sshd.Run(t, name, args...) }

func newSSHRig(t testing.TB) *sshRig {
	t.Helper()
	sock, pub := sshd.UserAgent(t)
	srv := sshd.Start(t, pub)
	rig := &sshRig{Server: srv, knownHosts: srv.KnownHosts, agentSock: sock}
	// go-git's ssh transport, with no Auth given, asks the agent at
	// SSH_AUTH_SOCK and checks host keys against SSH_KNOWN_HOSTS.
	t.Setenv("SSH_AUTH_SOCK", rig.agentSock)
	t.Setenv("SSH_KNOWN_HOSTS", rig.knownHosts)
	return rig
}

func (s *sshRig) url(path string) string { return s.URL(path) }

func (s *sshRig) connections() int { return s.Connections() }

func (s *sshRig) connectionsAfter(n int) int { return s.ConnectionsAfter(n) }

// TestRemoteSSH: the registry and a proposal travel between two clones
// through a bare origin behind a real sshd on loopback, authenticated by
// an ssh-agent; a host key that known_hosts does not list and a user key
// the server does not accept are one-line errors that change nothing.
func TestRemoteSSH(t *testing.T) {
	rig := newSSHRig(t)
	origin := newGitRepo(t, true)
	url := rig.url(origin)
	var dirs [2]string
	var regs [2]*Registry
	for i := range dirs {
		dirs[i] = newGitRepo(t, false)
		runGit(t, dirs[i], "remote", "add", "origin", url)
		regs[i] = openTest(t, dirs[i])
	}
	if _, _, err := Init(bg(), dirs[0], false, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	id, icp, err := newTestID("ssh-test")
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.Append(icp)
	if _, err := regs[0].Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	pid := PendingID{Prefix: id.st.Prefix, SAID: "E" + strings.Repeat("A", 43)}
	if _, err := regs[0].PutPending(bg(), pid, PendingFiles{"event.json": []byte("e"), "sigs/0.qb64": []byte("s0")}); err != nil {
		t.Fatal(err)
	}
	if _, err := regs[0].Push(bg(), Remote{}); err != nil {
		t.Fatalf("push over ssh: %v", err)
	}
	t0, conns := time.Now(), rig.connections()
	res, err := regs[1].Pull(bg(), Remote{}, nil)
	if err != nil {
		t.Fatalf("pull over ssh: %v", err)
	}
	t.Logf("pull over ssh took %s", time.Since(t0))
	if n := rig.connectionsAfter(conns); n != 1 {
		t.Errorf("pull opened %d ssh connections, want 1 (the fetch reads the remote's refs itself)", n)
	}
	if res.Commits != 2 || res.To != head(t, regs[0]) || len(res.Pending) != 1 || res.URL != ShowURL(url) {
		t.Errorf("pull over ssh: %+v", res)
	}
	if _, err := regs[1].PutPending(bg(), pid, PendingFiles{"sigs/1.qb64": []byte("s1")}); err != nil {
		t.Fatal(err)
	}
	ixn, err := id.ixn()
	if err != nil {
		t.Fatal(err)
	}
	b = Batch{}
	b.Append(ixn)
	cp, err := regs[1].CommitPush(bg(), &b, Remote{}, nil, 3)
	if err != nil {
		t.Fatalf("commit through ssh: %v", err)
	}
	if _, err := regs[1].Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	if res, err := regs[0].Pull(bg(), Remote{}, nil); err != nil || res.To != cp.Commit {
		t.Fatalf("A pulls B's commit over ssh: %+v %v", res, err)
	}
	if files, err := regs[0].ReadPending(pid); err != nil || len(files) != 3 {
		t.Errorf("A's proposal after pulling: %q %v", files, err)
	}
	before := runGit(t, dirs[0], "for-each-ref")

	// A host whose key known_hosts does not hold.
	other, err := os.ReadFile(rig.OtherKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(other))
	wrong := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(wrong, []byte(fmt.Sprintf("[127.0.0.1]:%s %s %s\n", rig.Port, f[0], f[1])), 0o600)
	t.Setenv("SSH_KNOWN_HOSTS", wrong)
	_, err = regs[0].Pull(bg(), Remote{}, nil)
	if err == nil || !strings.Contains(err.Error(), "key mismatch") || strings.Contains(err.Error(), "\n") {
		t.Errorf("pull from a host with another key: %v, want a one-line key mismatch", err)
	}
	t.Setenv("SSH_KNOWN_HOSTS", rig.knownHosts)

	// An agent without the key the server accepts.
	emptySock := filepath.Join(t.TempDir(), "empty.sock")
	var log bytes.Buffer
	sshd.StartBackground(t, &log, nil, "ssh-agent", "-D", "-a", emptySock)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(emptySock); err == nil || time.Now().After(deadline) {
			break
		}
	}
	t.Setenv("SSH_AUTH_SOCK", emptySock)
	_, err = regs[0].Push(bg(), Remote{})
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") || strings.Contains(err.Error(), "\n") {
		t.Errorf("push with an agent lacking the key: %v, want a one-line authentication failure", err)
	}
	t.Logf("auth failure: %v", err)
	if after := runGit(t, dirs[0], "for-each-ref"); after != before {
		t.Errorf("refs changed by failed exchanges:\n%s\nwas\n%s", after, before)
	}
}

// sshBench is a template for the ssh benchmarks: a bare origin behind the
// rig's sshd and a clone ("machine A") whose registry holds one identity,
// pushed; and a fully signed interaction event at s=1 of that identity.
type sshBench struct {
	rig           *sshRig
	origin, clone string
	ixn           kel.SignedEvent
}

func newSSHBench(b *testing.B) *sshBench {
	rig := newSSHRig(b)
	tmpl := b.TempDir()
	sb := &sshBench{rig: rig, origin: filepath.Join(tmpl, "origin.git"), clone: filepath.Join(tmpl, "clone")}
	runGit(b, tmpl, "init", "-q", "--bare", sb.origin)
	if _, _, err := Init(bg(), sb.clone, false, WithClock(fixedClock())); err != nil {
		b.Fatal(err)
	}
	r := openTest(b, sb.clone)
	id, icp, err := newTestID("ssh-bench")
	if err != nil {
		b.Fatal(err)
	}
	var bt Batch
	bt.Append(icp)
	if _, err := r.Commit(bg(), &bt); err != nil {
		b.Fatal(err)
	}
	if _, err := r.Push(bg(), Remote{Name: sb.origin}); err != nil {
		b.Fatal(err)
	}
	if sb.ixn, err = id.ixn(); err != nil {
		b.Fatal(err)
	}
	return sb
}

// fresh copies the template into a new directory (removed when the
// benchmark ends): every operation starts from the same registry, KEL and
// remote, whatever b.N is. It returns the copy's registry and the ssh://
// URL of its origin.
func (sb *sshBench) fresh(b *testing.B) (dir string, r *Registry, url string) {
	dir = b.TempDir()
	if out, err := exec.Command("cp", "-a", sb.origin, sb.clone, dir).CombinedOutput(); err != nil {
		b.Fatalf("cp: %v\n%s", err, out)
	}
	return dir, openTest(b, filepath.Join(dir, "clone")), sb.rig.url(filepath.Join(dir, "origin.git"))
}

// remoteHead is the registry ref of the copy's origin.
func remoteHead(b *testing.B, dir string) string {
	return strings.TrimSpace(runGit(b, dir, "--git-dir", filepath.Join(dir, "origin.git"), "rev-parse", RegistryRef))
}

// BenchmarkCommitPushSSH: from a fully signed event to its commit on a
// remote over a loopback ssh:// (CommitPush: build on the local tip, push,
// move the local ref; the remote has not moved, so no pull), each on a
// fresh copy of the same registry and remote; asserts the remote took it.
func BenchmarkCommitPushSSH(b *testing.B) {
	sb := newSSHBench(b)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dir, r, url := sb.fresh(b)
		var bt Batch
		bt.Append(sb.ixn)
		b.StartTimer()
		res, err := r.CommitPush(bg(), &bt, Remote{Name: url}, nil, 1)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if got := remoteHead(b, dir); got != res.Commit {
			b.Fatalf("remote at %s, want %s", got, res.Commit)
		}
	}
}

// BenchmarkGitPushSSH: git push, by the git binary over the same loopback
// ssh://, of a registry commit of the same size (the same event committed
// locally on a fresh copy), for comparison; asserts the remote took it.
func BenchmarkGitPushSSH(b *testing.B) {
	sb := newSSHBench(b)
	ssh := fmt.Sprintf("ssh -o BatchMode=yes -o UserKnownHostsFile=%s", sb.rig.knownHosts)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dir, r, url := sb.fresh(b)
		var bt Batch
		bt.Append(sb.ixn)
		res, err := r.Commit(bg(), &bt)
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("git", "push", "-q", url, RegistryRef+":"+RegistryRef)
		cmd.Dir = filepath.Join(dir, "clone")
		cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+ssh, "SSH_AUTH_SOCK="+sb.rig.agentSock)
		b.StartTimer()
		out, err := cmd.CombinedOutput()
		b.StopTimer()
		if err != nil {
			b.Fatalf("git push: %v\n%s", err, out)
		}
		if got := remoteHead(b, dir); got != res.Commit {
			b.Fatalf("remote at %s, want %s", got, res.Commit)
		}
	}
}
