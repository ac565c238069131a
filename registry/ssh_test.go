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

// sshBenchSetup: a registry with one identity on "machine A", pushed to a
// bare origin behind the rig's sshd.
func sshBenchSetup(b *testing.B) (*sshRig, string, *Registry, *testID) {
	rig := newSSHRig(b)
	origin := newGitRepo(b, true)
	dir := newGitRepo(b, false)
	runGit(b, dir, "remote", "add", "origin", rig.url(origin))
	if _, _, err := Init(bg(), dir, false, WithClock(fixedClock())); err != nil {
		b.Fatal(err)
	}
	r := openTest(b, dir)
	id, icp, err := newTestID("ssh-bench")
	if err != nil {
		b.Fatal(err)
	}
	var bt Batch
	bt.Append(icp)
	if _, err := r.Commit(bg(), &bt); err != nil {
		b.Fatal(err)
	}
	if _, err := r.Push(bg(), Remote{}); err != nil {
		b.Fatal(err)
	}
	return rig, dir, r, id
}

// BenchmarkCommitPushSSH: from a fully signed event to its commit on a
// remote over a loopback ssh:// (CommitPush: build on the local tip, push,
// move the local ref; the remote has not moved, so no pull).
func BenchmarkCommitPushSSH(b *testing.B) {
	_, _, r, id := sshBenchSetup(b)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ixn, err := id.ixn()
		if err != nil {
			b.Fatal(err)
		}
		var bt Batch
		bt.Append(ixn)
		b.StartTimer()
		if _, err := r.CommitPush(bg(), &bt, Remote{}, nil, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGitPushSSH: git push, by the git binary over the same loopback
// ssh://, of a registry commit of the same size, for comparison.
func BenchmarkGitPushSSH(b *testing.B) {
	rig, dir, r, id := sshBenchSetup(b)
	ssh := fmt.Sprintf("ssh -o BatchMode=yes -o UserKnownHostsFile=%s", rig.knownHosts)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ixn, err := id.ixn()
		if err != nil {
			b.Fatal(err)
		}
		var bt Batch
		bt.Append(ixn)
		if _, err := r.Commit(bg(), &bt); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("git", "push", "-q", "origin", RegistryRef)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+ssh, "SSH_AUTH_SOCK="+rig.agentSock)
		b.StartTimer()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git push: %v\n%s", err, out)
		}
	}
}
