package anchor_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/registry"
	"github.com/auths-dev/auths-agent/softhsm-test/sshd"
)

// BenchmarkLastSignatureToRemote: the time from the last signature of a
// 2-of-2 anchor (a device attestation) to its commit on a bare remote
// behind a real sshd on loopback (ssh-agent authentication, known_hosts
// checked): anchor.Anchorer.CommitPush, which folds, builds the commit on
// the local tip, pushes it (a fast-forward: the remote had not moved) and
// moves the local ref, in one ssh connection; beside it, git push by the git binary over the same sshd
// of a registry commit of the same size (the same anchor committed
// locally; one connection). Each iteration runs both twice in the order
// ours, git, git, ours, each on fresh copies of one template (origin and
// clone, the identity incepted and pushed), so every operation starts from
// the same state whatever b.N is; it asserts each one: the remote's
// registry ref is the local commit, and the ssh sessions it opened.
// Reports commitpush-median-ms and gitpush-median-ms (medians of the
// run's operations) and their ssh-sessions per operation.
func BenchmarkLastSignatureToRemote(b *testing.B) {
	ctx := context.Background()
	sock, pub := sshd.UserAgent(b)
	srv := sshd.Start(b, pub)
	b.Setenv("SSH_AUTH_SOCK", sock)
	b.Setenv("SSH_KNOWN_HOSTS", srv.KnownHosts)
	gitSSH := "GIT_SSH_COMMAND=ssh -o BatchMode=yes -o UserKnownHostsFile=" + srv.KnownHosts

	cur, next := benchKeys(b, 2)
	tmpl := b.TempDir()
	origin, clone := filepath.Join(tmpl, "origin.git"), filepath.Join(tmpl, "clone")
	git(b, tmpl, "init", "-q", "--bare", origin)
	reg, _, err := registry.Init(ctx, clone, false, registry.WithLogger(discard()))
	if err != nil {
		b.Fatal(err)
	}
	prefix := incept(b, anchor.New(reg), cur, "2", next, "2")
	if _, err := reg.Push(ctx, registry.Remote{Name: origin}); err != nil {
		b.Fatal(err)
	}
	did := "did:key:z6MkBenchRemote"
	doc := attestation(prefix, did, 1)

	// fresh copies the template into a new directory: an origin and a
	// clone, and the fully signed anchor staged on the clone.
	fresh := func() (dir string, a *anchor.Anchorer, p *anchor.Proposal) {
		b.Helper()
		dir, err := os.MkdirTemp("", "auths-remote-bench-")
		if err != nil {
			b.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", origin, clone, dir).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v\n%s", err, out)
		}
		r, err := registry.Open(filepath.Join(dir, "clone"), registry.WithLogger(discard()))
		if err != nil {
			b.Fatal(err)
		}
		a = anchor.New(r)
		p, err = a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: doc}}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := anchor.Sign(ctx, p, cur); err != nil { // the last signature
			b.Fatal(err)
		}
		if !p.Complete() {
			b.Fatal("the anchor is not complete after both signatures")
		}
		return dir, a, p
	}
	remoteHead := func(dir string) string {
		return strings.TrimSpace(git(b, dir, "--git-dir", filepath.Join(dir, "origin.git"), "rev-parse", registry.RegistryRef))
	}

	var ours, theirs []time.Duration
	var oursConns, theirsConns int
	runOurs := func() {
		dir, a, p := fresh()
		defer os.RemoveAll(dir)
		conns := srv.Connections()
		b.StartTimer()
		t0 := time.Now()
		res, err := a.CommitPush(ctx, p, registry.Remote{Name: srv.URL(filepath.Join(dir, "origin.git"))})
		d := time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if got := remoteHead(dir); got != res.Commit || res.Event.Event.Sn != 1 || len(res.Event.Sigs) != 2 {
			b.Fatalf("CommitPush: remote at %s, commit %s, s=%d with %d signatures", got, res.Commit, res.Event.Event.Sn, len(res.Event.Sigs))
		}
		oursConns += srv.ConnectionsAfter(conns)
		ours = append(ours, d)
	}
	runGit := func() {
		dir, a, p := fresh()
		defer os.RemoveAll(dir)
		res, err := a.Commit(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("git", "push", "-q", srv.URL(filepath.Join(dir, "origin.git")), registry.RegistryRef+":"+registry.RegistryRef)
		cmd.Dir = filepath.Join(dir, "clone")
		cmd.Env = append(os.Environ(), gitSSH, "SSH_AUTH_SOCK="+sock)
		conns := srv.Connections()
		b.StartTimer()
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatalf("git push: %v\n%s", err, out)
		}
		if got := remoteHead(dir); got != res.Commit {
			b.Fatalf("git push: remote at %s, want %s", got, res.Commit)
		}
		theirsConns += srv.ConnectionsAfter(conns)
		theirs = append(theirs, d)
	}
	b.StopTimer()
	b.ResetTimer()
	for range b.N {
		runOurs()
		runGit()
		runGit()
		runOurs()
	}
	if n := len(ours); oursConns != n || theirsConns != n {
		b.Fatalf("ssh sessions: %d for %d CommitPush (want 1 each), %d for %d git push (want 1 each)", oursConns, n, theirsConns, len(theirs))
	}
	median := func(d []time.Duration) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		m := s[len(s)/2]
		if len(s)%2 == 0 {
			m = (s[len(s)/2-1] + s[len(s)/2]) / 2
		}
		return m.Seconds() * 1e3
	}
	b.ReportMetric(median(ours), "commitpush-median-ms")
	b.ReportMetric(median(theirs), "gitpush-median-ms")
	b.ReportMetric(float64(oursConns)/float64(len(ours)), "commitpush-sessions")
	b.ReportMetric(float64(theirsConns)/float64(len(theirs)), "gitpush-sessions")
}
