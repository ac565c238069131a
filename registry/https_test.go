package registry

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/auths-dev/auths-agent/softhsm-test/githttp"
)

// TestRemoteHTTPS: the registry and a proposal travel between two clones
// through a bare origin served by git's own http-backend over TLS, with
// basic credentials and the server's CA given as Remote.CABundle; a wrong
// password, no credentials and an untrusted certificate are one-line
// errors that show the URL without its user information and never the
// password, and change nothing.
func TestRemoteHTTPS(t *testing.T) {
	root := t.TempDir()
	origin := filepath.Join(root, "origin.git")
	runGit(t, root, "init", "-q", "--bare", origin)
	const password = "s3cret-pass-word"
	srv := githttp.Start(t, root, "alice", password)
	url := srv.URL + "/origin.git"
	good := Remote{Name: url, Auth: &http.BasicAuth{Username: "alice", Password: password}, CABundle: srv.CAPEM}
	dirA := newGitRepo(t, false)
	dirB := newGitRepo(t, false)
	a, b := openTest(t, dirA), openTest(t, dirB)
	if _, _, err := Init(bg(), dirA, false, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	id, icp, err := newTestID("https-test")
	if err != nil {
		t.Fatal(err)
	}
	var bt Batch
	bt.Append(icp)
	if _, err := a.Commit(bg(), &bt); err != nil {
		t.Fatal(err)
	}
	pid := PendingID{Prefix: id.st.Prefix, SAID: "E" + strings.Repeat("H", 43)}
	if _, err := a.PutPending(bg(), pid, PendingFiles{"event.json": []byte("e"), "sigs/0.qb64": []byte("s0")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Push(bg(), good); err != nil {
		t.Fatalf("push over https: %v", err)
	}
	if got := runGit(t, origin, "rev-parse", RegistryRef); strings.TrimSpace(got) != head(t, a) {
		t.Errorf("origin at %s, want A's %s", got, head(t, a))
	}
	res, err := b.Pull(bg(), good, nil)
	if err != nil {
		t.Fatalf("pull over https: %v", err)
	}
	if res.Commits != 2 || res.To != head(t, a) || len(res.Pending) != 1 || res.URL != url {
		t.Errorf("pull over https: %+v", res)
	}
	ixn, err := id.ixn()
	if err != nil {
		t.Fatal(err)
	}
	bt = Batch{}
	bt.Append(ixn)
	cp, err := b.CommitPush(bg(), &bt, good, nil, 3)
	if err != nil {
		t.Fatalf("commit through https: %v", err)
	}
	if got := strings.TrimSpace(runGit(t, origin, "rev-parse", RegistryRef)); got != cp.Commit {
		t.Errorf("origin at %s, want B's commit %s", got, cp.Commit)
	}

	beforeA, beforeB := runGit(t, dirA, "for-each-ref"), runGit(t, dirB, "for-each-ref")
	withUser := strings.Replace(url, "https://", "https://alice:url-"+password+"@", 1)
	for _, c := range []struct {
		name string
		rem  Remote
		want error
		text string
	}{
		{"wrong password", Remote{Name: url, Auth: &http.BasicAuth{Username: "alice", Password: "wrong-" + password}, CABundle: srv.CAPEM}, transport.ErrAuthenticationRequired, ""},
		{"password in the URL", Remote{Name: withUser, CABundle: srv.CAPEM}, transport.ErrAuthenticationRequired, ""},
		{"no credentials", Remote{Name: url, CABundle: srv.CAPEM}, transport.ErrAuthenticationRequired, ""},
		{"untrusted certificate", Remote{Name: url, Auth: good.Auth}, nil, "certificate signed by unknown authority"},
	} {
		_, perr := a.Pull(bg(), c.rem, nil)
		_, serr := b.Push(bg(), c.rem)
		for _, err := range []error{perr, serr} {
			switch {
			case err == nil:
				t.Errorf("%s: no error", c.name)
			case c.want != nil && !errors.Is(err, c.want), c.text != "" && !strings.Contains(err.Error(), c.text):
				t.Errorf("%s: %v, want %v %s", c.name, err, c.want, c.text)
			case strings.Contains(err.Error(), "\n"), strings.Contains(err.Error(), password), strings.Contains(err.Error(), "alice"),
				!strings.Contains(err.Error(), " "+url+": "):
				t.Errorf("%s: %q, want one line naming %s, without user or password", c.name, err, url)
			}
			t.Logf("%s: %v", c.name, err)
		}
	}
	if srv.Refused.Load() == 0 {
		t.Error("the server refused no credentials")
	}
	if a, b := runGit(t, dirA, "for-each-ref"), runGit(t, dirB, "for-each-ref"); a != beforeA || b != beforeB {
		t.Errorf("refs changed by refused exchanges")
	}
}

// TestRemoteURLUserInfoNotShown: a remote given as a URL with user
// information (https://user:token@host/…) is named in the push and pull
// results, which the CLI prints, without it.
func TestRemoteURLUserInfoNotShown(t *testing.T) {
	root := t.TempDir()
	origin := filepath.Join(root, "origin.git")
	runGit(t, root, "init", "-q", "--bare", origin)
	const token = "tok-Hq72-never-shown"
	srv := githttp.Start(t, root, "alice", token)
	withCreds := strings.Replace(srv.URL, "https://", "https://alice:"+token+"@", 1) + "/origin.git"
	rem := Remote{Name: withCreds, Auth: &http.BasicAuth{Username: "alice", Password: token}, CABundle: srv.CAPEM}
	dir := newGitRepo(t, false)
	a := openTest(t, dir)
	if _, _, err := Init(bg(), dir, false, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	push, err := a.Push(bg(), rem)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	pull, err := a.Pull(bg(), rem, nil)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	want := srv.URL + "/origin.git"
	for what, got := range map[string]string{"push remote": push.Remote, "push URL": push.URL, "pull remote": pull.Remote, "pull URL": pull.URL} {
		if got != want {
			t.Errorf("%s %q, want %q", what, got, want)
		}
	}
}
