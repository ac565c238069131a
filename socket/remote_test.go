package socket_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
	"github.com/auths-dev/auths-agent/socket"
)

// TestRemoteExtensions: pending-pull@ and pending-push@ over the socket
// (the flows themselves run in cmd/auths-agent's TestServeRemote against
// the real serve process): what an agent pushed another pulls through its
// own agent; refusals carry the reasons a client branches on: no registry,
// a malformed request, a remote without a registry, a remote whose
// registry diverged from the agent's, a registry other than the agent's.
func TestRemoteExtensions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	origin := filepath.Join(dir, "origin.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", origin).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	regA, regB := newRegistry(t), newRegistry(t)
	for _, r := range []*registry.Registry{regA, regB} {
		if out, err := exec.Command("git", "-C", r.TopDir(), "remote", "add", "origin", origin).CombinedOutput(); err != nil {
			t.Fatalf("git remote add: %v\n%s", err, out)
		}
	}
	k := newKey(t, tokens[0], kel.Ed25519)
	prefix := incept(t, regA, "1", k)
	a := dial(t, serve(t, agent.Config{Keys: keri(k)}, regA))
	b := dial(t, serve(t, agent.Config{}, regB))
	none := dial(t, serve(t, agent.Config{}, nil))

	reason := func(err error) string {
		t.Helper()
		var ee *socket.ExtensionError
		if !errors.As(err, &ee) {
			t.Fatalf("err = %v, want an extension failure", err)
		}
		if strings.ContainsAny(ee.Failure.Error, "\n\r") {
			t.Errorf("failure on several lines: %q", ee.Failure.Error)
		}
		return ee.Reason
	}
	if r, err := a.Pull(ctx, "", ""); err == nil {
		t.Fatalf("pull from an empty origin: %+v", r)
	} else if reason(err) != "remote-empty" {
		t.Errorf("pull from an empty origin: %v, want remote-empty", err)
	}
	// B's registry holds another identity: it diverges from A's.
	incept(t, regB, "1", newKey(t, tokens[1], kel.Ed25519))
	if _, err := a.Push(ctx, "origin", regA.TopDir()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Pull(ctx, "origin", ""); reason(err) != "not-fast-forward" {
		t.Errorf("pull of a diverged registry: %v, want not-fast-forward", err)
	}
	for name, call := range map[string]func() error{
		"no registry":     func() error { _, err := none.Pull(ctx, "origin", ""); return err },
		"other registry":  func() error { _, err := a.Push(ctx, "origin", regB.TopDir()); return err },
		"newline in name": func() error { _, err := a.Pull(ctx, "origin\nx", ""); return err },
		"unknown field": func() error {
			_, err := a.Raw(ctx, socket.ExtPendingPush, []byte(`{"remote":"origin","force":true}`))
			return err
		},
	} {
		want := map[string]string{"no registry": "no-registry", "other registry": "other-registry"}[name]
		if want == "" {
			want = "bad-request"
		}
		if got := reason(call()); got != want {
			t.Errorf("%s: reason %q, want %q", name, got, want)
		}
	}

	// A repository without a registry takes A's through its agent.
	c := dial(t, serve(t, agent.Config{}, mustOpen(t, filepath.Join(dir, "empty"))))
	res, err := c.Pull(ctx, origin, "")
	if err != nil {
		t.Fatal(err)
	}
	head, _ := regA.Head()
	if res.Commits != 2 || res.To != head || res.URL != origin {
		t.Errorf("pull through the agent: %+v, want 2 commits to %s", res, head)
	}
	snap, err := mustOpen(t, filepath.Join(dir, "empty")).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snap.Verify(prefix); err != nil {
		t.Errorf("the pulled registry's KEL of %s: %v", prefix, err)
	}
}

// mustOpen opens (creating it first when missing) an empty git repository
// as a registry without a registry ref.
func mustOpen(t *testing.T, dir string) *registry.Registry {
	t.Helper()
	exec.Command("git", "init", "-q", dir).Run()
	r, err := registry.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
