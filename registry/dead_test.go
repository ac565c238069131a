package registry

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/kel"
)

// TestRemotePushDeletesDead: against a bare remote carrying auths'
// pre-receive rule, a push deletes the remote's proposal that the judge
// finds dead (it lives outside refs/auths/, so the hook allows it) and
// keeps a live one; the deletion is a compare-and-delete on the commit
// judged: when another machine pushed signatures to the dead-looking
// proposal since the fetch, the push is refused as the remote moved and
// the remote's ref stays at what that machine pushed; a pull and a push
// again judge the new commit. The fetched copy goes with the deletion.
func TestRemotePushDeletesDead(t *testing.T) {
	origin := newGitRepo(t, true)
	if err := os.WriteFile(filepath.Join(origin, "hooks", "pre-receive"), []byte(preReceiveHook), 0o755); err != nil {
		t.Fatal(err)
	}
	dirA, a := clone(t, origin)
	_, b := clone(t, origin)
	if _, _, err := Init(bg(), dirA, false, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	id, icp, err := newTestID("dead-test")
	if err != nil {
		t.Fatal(err)
	}
	var bt Batch
	bt.Append(icp)
	if _, err := a.Commit(bg(), &bt); err != nil {
		t.Fatal(err)
	}
	dead := PendingID{Prefix: id.st.Prefix, SAID: kel.Digest([]byte("dead"))}
	live := PendingID{Prefix: id.st.Prefix, SAID: kel.Digest([]byte("live"))}
	for _, pid := range []PendingID{dead, live} {
		if _, err := b.PutPending(bg(), pid, PendingFiles{"event.json": []byte(pid.SAID), "sigs/0.qb64": []byte("s0")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Pull(bg(), Remote{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	// A fetches both, takes neither (the check refuses them: A's judge).
	refuseAll := func(PendingID, PendingFiles) ([]string, error) { return nil, errors.New("not for A") }
	if _, err := a.Pull(bg(), Remote{}, refuseAll); err != nil {
		t.Fatal(err)
	}
	isDead := func(id PendingID, files PendingFiles) bool { return string(files["event.json"]) == dead.SAID }
	fetched := gitEnv(t, origin, nil, "", "rev-parse", dead.Ref())

	// Meanwhile B pushes a second signature to the proposal A judges dead.
	if _, err := b.PutPending(bg(), dead, PendingFiles{"sigs/1.qb64": []byte("s1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	moved := gitEnv(t, origin, nil, "", "rev-parse", dead.Ref())
	if moved == fetched {
		t.Fatal("B's push did not move the proposal")
	}
	_, err = a.PushDropping(bg(), Remote{}, isDead)
	if !errors.Is(err, ErrNotFastForward) || !strings.Contains(err.Error(), "required to be "+fetched) || strings.Contains(err.Error(), "\n") {
		t.Errorf("push deleting a proposal that moved since the fetch: %v, want a one-line ErrNotFastForward naming the commit judged", err)
	}
	if got := gitEnv(t, origin, nil, "", "rev-parse", dead.Ref()); got != moved {
		t.Errorf("the remote's proposal at %s, want B's %s (never deleted unseen)", got, moved)
	}

	// PushRetry pulls (the check sees B's commit), then deletes it.
	res, err := a.PushRetry(bg(), Remote{}, refuseAll, isDead, 3)
	if err != nil {
		t.Fatalf("push after the remote moved: %v", err)
	}
	if res.Attempts != 2 || !reflect.DeepEqual(res.Deleted, []string{dead.Ref()}) {
		t.Errorf("push: %d attempts, deleted %q; want 2 and %s", res.Attempts, res.Deleted, dead.Ref())
	}
	refs := gitEnv(t, origin, nil, "", "for-each-ref", "--format=%(refname)", "refs/auths-agent/")
	if refs != live.Ref() {
		t.Errorf("origin's proposals after the push:\n%s\nwant only %s", refs, live.Ref())
	}
	if got := gitEnv(t, dirA, nil, "", "for-each-ref", "--format=%(refname)", RemotesRefPrefix+"origin/pending/"); got != RemotesRefPrefix+"origin/pending/"+live.String() {
		t.Errorf("A's fetched proposals after the push:\n%s", got)
	}
	// Nothing left to delete: the next push sends, deletes nothing.
	if res, err := a.PushRetry(bg(), Remote{}, refuseAll, isDead, 1); err != nil || len(res.Deleted) != 0 {
		t.Errorf("second push: %+v %v", res, err)
	}
}

// TestRemoteDeleteLosesRace: the compare-and-delete holds on the server
// too. Between the refs go-git read and the update, another push moves the
// proposal (a pre-receive hook moves it, standing for that push): the
// deletion names the old value, git-receive-pack refuses it, and the push
// being atomic, the registry it carried is not taken either; the push is
// ErrNotFastForward, the remote's proposal stays where the other push left
// it. A second push, after a pull, deletes it.
func TestRemoteDeleteLosesRace(t *testing.T) {
	origin := newGitRepo(t, true)
	move := filepath.Join(t.TempDir(), "move")
	hook := "#!/bin/sh\ncat >/dev/null\nif [ -f " + move + " ]; then\n" +
		"\tset -- $(cat " + move + "); rm -f " + move + "\n" +
		"\tenv -u GIT_QUARANTINE_PATH git update-ref \"$1\" \"$2\" || exit 1\nfi\n"
	if err := os.WriteFile(filepath.Join(origin, "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	dirA, a := clone(t, origin)
	_, b := clone(t, origin)
	if _, _, err := Init(bg(), dirA, false, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Pull(bg(), Remote{}, nil); err != nil {
		t.Fatal(err)
	}
	pid := PendingID{Prefix: "E" + strings.Repeat("R", 43), SAID: kel.Digest([]byte("race"))}
	if _, err := b.PutPending(bg(), pid, PendingFiles{"event.json": []byte("e"), "sigs/0.qb64": []byte("s0")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	first := gitEnv(t, origin, nil, "", "rev-parse", pid.Ref())
	if _, err := b.PutPending(bg(), pid, PendingFiles{"sigs/1.qb64": []byte("s1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	refuse := func(PendingID, PendingFiles) ([]string, error) { return nil, errors.New("not for A") }
	if _, err := a.Pull(bg(), Remote{}, refuse); err != nil {
		t.Fatal(err)
	}
	// A has a registry commit to send with the deletion.
	_, icp, err := newTestID("race-id")
	if err != nil {
		t.Fatal(err)
	}
	var bt Batch
	bt.Append(icp)
	if _, err := a.Commit(bg(), &bt); err != nil {
		t.Fatal(err)
	}
	remoteBefore := gitEnv(t, origin, nil, "", "rev-parse", RegistryRef)
	if err := os.WriteFile(move, []byte(pid.Ref()+" "+first+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dead := func(PendingID, PendingFiles) bool { return true }
	_, err = a.PushDropping(bg(), Remote{}, dead)
	if !errors.Is(err, ErrNotFastForward) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("push whose deletion lost the race: %v, want a one-line ErrNotFastForward", err)
	}
	t.Logf("lost the race: %v", err)
	if _, statErr := os.Stat(move); statErr == nil {
		t.Fatal("the hook did not run")
	}
	if got := gitEnv(t, origin, nil, "", "rev-parse", pid.Ref()); got != first {
		t.Errorf("remote proposal at %s, want %s, where the other push left it", got, first)
	}
	if got := gitEnv(t, origin, nil, "", "rev-parse", RegistryRef); got != remoteBefore {
		t.Errorf("the registry of an atomic push that failed was taken: %s, was %s", got, remoteBefore)
	}
	res, err := a.PushRetry(bg(), Remote{}, refuse, dead, 3)
	if err != nil || !reflect.DeepEqual(res.Deleted, []string{pid.Ref()}) {
		t.Fatalf("push after a pull: %+v %v", res, err)
	}
	if got := gitEnv(t, origin, nil, "", "for-each-ref", "refs/auths-agent/"); got != "" {
		t.Errorf("origin's proposals: %s", got)
	}
	if got := gitEnv(t, origin, nil, "", "rev-parse", RegistryRef); got != head(t, a) {
		t.Errorf("origin's registry %s, want A's %s", got, head(t, a))
	}
}
