package registry

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/internal/attesttest"
	"github.com/auths-dev/auths-agent/kel"
)

// clone makes a repository standing for one machine, with origin as its
// remote "origin"; the registry comes from origin by Pull.
func clone(t *testing.T, origin string) (string, *Registry) {
	t.Helper()
	dir := newGitRepo(t, false)
	runGit(t, dir, "remote", "add", "origin", origin)
	return dir, openTest(t, dir)
}

// gitEnv runs git in dir with extra environment and stdin; trimmed stdout.
func gitEnv(t *testing.T, dir string, env []string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir,
		"GIT_AUTHOR_NAME=f", "GIT_AUTHOR_EMAIL=f@f", "GIT_COMMITTER_NAME=f", "GIT_COMMITTER_EMAIL=f@f"), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// forge writes, with git alone, a commit on top of parent whose tree is
// tree-of(base) with files replaced: what a hostile remote can serve.
func forge(t *testing.T, dir, parent, base string, files map[string][]byte) string {
	t.Helper()
	env := []string{"GIT_INDEX_FILE=" + filepath.Join(t.TempDir(), "index")}
	gitEnv(t, dir, env, "", "read-tree", base)
	for p, data := range files {
		blob := gitEnv(t, dir, nil, string(data), "hash-object", "-w", "--stdin")
		gitEnv(t, dir, env, "", "update-index", "--add", "--cacheinfo", "100644,"+blob+","+p)
	}
	tree := gitEnv(t, dir, env, "", "write-tree")
	return gitEnv(t, dir, nil, "", "commit-tree", "-p", parent, "-m", "forged", tree)
}

func head(t *testing.T, r *Registry) string {
	t.Helper()
	h, err := r.Head()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// threeMachines: an origin with a registry holding one identity, and three
// clones that pulled it.
func threeMachines(t *testing.T) (origin string, id *testID, dirs [3]string, regs [3]*Registry) {
	t.Helper()
	origin = newGitRepo(t, true)
	for i := range dirs {
		dirs[i], regs[i] = clone(t, origin)
	}
	if _, _, err := Init(bg(), dirs[0], false, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	id, icp, err := newTestID("remote-test")
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.Append(icp)
	if _, err := regs[0].Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	if _, err := regs[0].Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range regs[1:] {
		res, err := r.Pull(bg(), Remote{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Commits != 2 || res.To != head(t, regs[0]) {
			t.Fatalf("first pull: %+v", res)
		}
	}
	return origin, id, dirs, regs
}

// TestRemoteThreeClones: three clones of one bare origin over file
// remotes: A appends and pushes, B and C pull and hold the same verified
// KEL; B appends on top and pushes, A pulls; proposals travel both ways
// and merge by union; git finds every repository clean.
func TestRemoteThreeClones(t *testing.T) {
	origin, id, dirs, regs := threeMachines(t)
	ixn, err := id.ixn(kel.DigestSeal(kel.Digest([]byte("doc1"))))
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.Append(ixn)
	if _, err := regs[0].Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	if _, err := regs[0].Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range regs[1:] {
		res, err := r.Pull(bg(), Remote{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Commits != 1 || res.To != head(t, regs[0]) {
			t.Errorf("pull: %+v", res)
		}
	}
	ixn2, err := id.ixn()
	if err != nil {
		t.Fatal(err)
	}
	b = Batch{}
	b.Append(ixn2)
	if _, err := regs[1].Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	if _, err := regs[1].Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	if res, err := regs[0].Pull(bg(), Remote{}, nil); err != nil || res.Commits != 1 {
		t.Fatalf("A pulls B's commit: %+v %v", res, err)
	}
	var states []string
	for _, r := range regs[:2] {
		snap, err := r.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		st, err := snap.Verify(id.st.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(st)
		states = append(states, string(j))
	}
	if states[0] != states[1] || !strings.Contains(states[0], `"sequence":2`) {
		t.Errorf("A and B disagree on the KEL:\n%s\n%s", states[0], states[1])
	}

	// Proposals: A saves one with signature 0, B adds signature 1 after
	// pulling; A pulls the union back (a fast-forward of its own ref).
	pid := PendingID{Prefix: id.st.Prefix, SAID: kel.Digest([]byte("proposal"))}
	if _, err := regs[0].PutPending(bg(), pid, PendingFiles{"event.json": []byte("e"), "sigs/0.qb64": []byte("s0")}); err != nil {
		t.Fatal(err)
	}
	if _, err := regs[0].Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	res, err := regs[1].Pull(bg(), Remote{}, nil)
	if err != nil || len(res.Pending) != 1 || res.Pending[0].How != "created" {
		t.Fatalf("B pulls the proposal: %+v %v", res, err)
	}
	if _, err := regs[1].PutPending(bg(), pid, PendingFiles{"sigs/1.qb64": []byte("s1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := regs[1].Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Registry{regs[0], regs[2]} {
		if _, err := r.Pull(bg(), Remote{}, nil); err != nil {
			t.Fatal(err)
		}
		files, err := r.ReadPending(pid)
		if err != nil {
			t.Fatal(err)
		}
		if want := (PendingFiles{"event.json": []byte("e"), "sigs/0.qb64": []byte("s0"), "sigs/1.qb64": []byte("s1")}); !reflect.DeepEqual(files, want) {
			t.Errorf("after pulling: %q, want %q", files, want)
		}
	}
	for _, d := range append(dirs[:], origin) {
		fsck(t, d)
	}
}

// TestRemoteTampering: a remote serving a registry commit with a device
// attestation no KEL anchors, one with altered event bytes, one with a
// forged event (valid SAID, signed by a key that is
// not the identity's, with a state.json claiming it valid), one that drops
// an identity, or history that is not a fast-forward of the local one is
// refused with a reason, and the local refs stay as they were.
func TestRemoteTampering(t *testing.T) {
	origin, id, _, regs := threeMachines(t)
	b := regs[1]
	before := head(t, b)
	dir, _ := identityDir(id.st.Prefix)
	icpPath := dir + "/events/00000000.json"

	// A forged interaction: right SAID, s, prior; signed with the next key.
	forgedEv, err := kel.NewInteraction(id.st, nil)
	if err != nil {
		t.Fatal(err)
	}
	forged := sign(id.next, 0, forgedEv)
	blob, _ := prettyEvent(forgedEv.Raw())
	att, _ := kel.EncodeSigGroup(forged.Sigs)
	tip, _ := pretty(Tip{Version: layoutVersion, Sequence: 1, SAID: forgedEv.SAID})
	st := *id.st
	st.Sequence, st.LastEventSAID = 1, forgedEv.SAID
	stJSON, _ := json.Marshal(&st)
	state, _ := pretty(stateFile{Version: layoutVersion, State: stJSON, ValidatedAgainstSAID: forgedEv.SAID})

	icp := gitEnv(t, origin, nil, "", "cat-file", "blob", before+":"+icpPath)
	altered := strings.Replace(icp, `"kt": "1"`, `"kt": "2"`, 1)
	if altered == icp {
		t.Fatalf("inception blob has no kt to alter:\n%s", icp)
	}
	did := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	devDir, _ := DeviceDir(did)
	unanchored := attesttest.NewDevice(did).Attestation(id.st.Prefix, did, "rid-unanchored", time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC), false).Pretty()
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"unanchored attestation", map[string][]byte{devDir + "/attestation.json": unanchored}, "attestation not anchored"},
		{"altered event bytes", map[string][]byte{icpPath: []byte(altered)}, "SAID"},
		{"forged event", map[string][]byte{dir + "/events/00000001.json": blob, dir + "/events/00000001.attachments.cesr": att,
			dir + "/tip.json": tip, dir + "/state.json": state}, "signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := forge(t, origin, before, before, tc.files)
			runGit(t, origin, "update-ref", RegistryRef, c)
			_, err := b.Pull(bg(), Remote{}, nil)
			var re *RefusedError
			if !errors.As(err, &re) || re.Commit != c || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("pull of %s: %v, want a refusal of %s mentioning %q", tc.name, err, c, tc.want)
			}
			t.Logf("refused: %v", err)
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if got := head(t, b); got != before {
				t.Errorf("local registry moved to %s", got)
			}
			runGit(t, origin, "update-ref", RegistryRef, before)
		})
	}
	t.Run("not a fast-forward", func(t *testing.T) {
		ixn, err := id.ixn()
		if err != nil {
			t.Fatal(err)
		}
		var bt Batch
		bt.Append(ixn)
		if _, err := regs[1].Commit(bg(), &bt); err != nil {
			t.Fatal(err)
		}
		local := head(t, regs[1])
		// origin moves elsewhere: an attestation-free commit by A.
		other := forge(t, origin, before, before, map[string][]byte{"v1/orgs/x": []byte("x")})
		runGit(t, origin, "update-ref", RegistryRef, other)
		_, err = regs[1].Pull(bg(), Remote{}, nil)
		if !errors.Is(err, ErrNotFastForward) {
			t.Fatalf("pull of a diverged remote: %v, want ErrNotFastForward", err)
		}
		if got := head(t, regs[1]); got != local {
			t.Errorf("local registry moved to %s", got)
		}
		if _, err := regs[1].Push(bg(), Remote{}); !errors.Is(err, ErrNotFastForward) {
			t.Errorf("push onto a diverged remote: %v, want ErrNotFastForward", err)
		}
		if got := gitEnv(t, origin, nil, "", "rev-parse", RegistryRef); got != other {
			t.Errorf("origin moved to %s", got)
		}
	})
}

// TestRemoteBadInput: an unreachable remote, an unknown remote name and a
// remote without the registry ref give one-line errors and change nothing.
func TestRemoteBadInput(t *testing.T) {
	empty := newGitRepo(t, true)
	dir, r := clone(t, empty)
	for _, tc := range []struct {
		rem  Remote
		want string
	}{
		{Remote{}, "remote without a registry: it has no refs/auths/registry"},
		{Remote{Name: "nosuch"}, `remote "nosuch": not configured`},
		{Remote{Name: filepath.Join(t.TempDir(), "missing")}, "pull from /"},
	} {
		_, err := r.Pull(bg(), tc.rem, nil)
		t.Logf("%v", err)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Pull(%+v) = %v, want one line with %q", tc.rem, err, tc.want)
		}
	}
	if got := runGit(t, dir, "for-each-ref"); got != "" {
		t.Errorf("refs written:\n%s", got)
	}
	ctx, cancel := context.WithCancel(bg())
	cancel()
	if _, err := r.Pull(ctx, Remote{}, nil); err == nil {
		t.Error("pull with a cancelled context succeeded")
	}
}

// preReceiveHook is the rule auths provision installs on a shared
// registry: no deletion and no non-fast-forward update under refs/auths/.
const preReceiveHook = `#!/bin/sh
z=0000000000000000000000000000000000000000
while read old new ref; do
	case "$ref" in refs/auths/*)
		if [ "$new" = "$z" ]; then echo "pre-receive: refusing to delete $ref" >&2; exit 1; fi
		if [ "$old" != "$z" ] && ! git merge-base --is-ancestor "$old" "$new"; then
			echo "pre-receive: refusing non-fast-forward $ref" >&2; exit 1
		fi;;
	esac
done
`

// TestRemotePreReceiveHook: against a bare remote carrying auths'
// pre-receive rule, the registry and proposals travel (proposals live
// outside refs/auths/, and every update of them is a fast-forward); the
// hook is live: git's own forced push of a rewritten registry is refused.
func TestRemotePreReceiveHook(t *testing.T) {
	origin := newGitRepo(t, true)
	if err := os.WriteFile(filepath.Join(origin, "hooks", "pre-receive"), []byte(preReceiveHook), 0o755); err != nil {
		t.Fatal(err)
	}
	dirA, a := clone(t, origin)
	_, b := clone(t, origin)
	if _, _, err := Init(bg(), dirA, false, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	id, icp, err := newTestID("hook-test")
	if err != nil {
		t.Fatal(err)
	}
	var bt Batch
	bt.Append(icp)
	if _, err := a.Commit(bg(), &bt); err != nil {
		t.Fatal(err)
	}
	pid := PendingID{Prefix: id.st.Prefix, SAID: kel.Digest([]byte("p"))}
	if _, err := a.PutPending(bg(), pid, PendingFiles{"event.json": []byte("e"), "sigs/0.qb64": []byte("s0")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Pull(bg(), Remote{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutPending(bg(), pid, PendingFiles{"sigs/1.qb64": []byte("s1")}); err != nil {
		t.Fatal(err)
	}
	ixn, err := id.ixn()
	if err != nil {
		t.Fatal(err)
	}
	bt = Batch{}
	bt.Append(ixn)
	if _, err := b.Commit(bg(), &bt); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Push(bg(), Remote{}); err != nil {
		t.Fatalf("push through the hook: %v", err)
	}
	if got := gitEnv(t, origin, nil, "", "rev-parse", RegistryRef); got != head(t, b) {
		t.Errorf("origin's registry %s, want B's %s", got, head(t, b))
	}
	if got := gitEnv(t, origin, nil, "", "ls-tree", "-r", "--name-only", pid.Ref()); got != "event.json\nsigs/0.qb64\nsigs/1.qb64" {
		t.Errorf("origin's proposal:\n%s", got)
	}
	// The hook is live: a forced rewind by git itself is refused.
	cmd := exec.Command("git", "push", "--force", origin, head(t, a)+":"+RegistryRef)
	cmd.Dir = dirA
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "refusing non-fast-forward") {
		t.Errorf("forced rewind through the hook: %v\n%s", err, out)
	}
}

// TestRemoteRaceBothPush: A and B add their signatures to one proposal
// at the same moment and both push: one push is refused as the remote
// moved, and the loser's pull-and-push (PushRetry) merges; both signatures
// survive on the remote, as a fast-forward of each side.
func TestRemoteRaceBothPush(t *testing.T) {
	origin, id, _, regs := threeMachines(t)
	pid := PendingID{Prefix: id.st.Prefix, SAID: kel.Digest([]byte("race"))}
	if _, err := regs[0].PutPending(bg(), pid, PendingFiles{"event.json": []byte("e")}); err != nil {
		t.Fatal(err)
	}
	if _, err := regs[0].Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	if _, err := regs[1].Pull(bg(), Remote{}, nil); err != nil {
		t.Fatal(err)
	}
	for i, r := range regs[:2] {
		if _, err := r.PutPending(bg(), pid, PendingFiles{"sigs/" + string(rune('0'+i)) + ".qb64": []byte{'s', byte('0' + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 2)
	for _, r := range regs[:2] {
		go func(r *Registry) { _, err := r.Push(bg(), Remote{}); errs <- err }(r)
	}
	var failed []*Registry
	for range 2 {
		if err := <-errs; err != nil {
			if !errors.Is(err, ErrNotFastForward) {
				t.Fatalf("losing push: %v, want ErrNotFastForward", err)
			}
			t.Logf("losing push: %v", err)
			failed = append(failed, nil)
		}
	}
	if len(failed) != 1 {
		t.Fatalf("%d pushes refused, want exactly one", len(failed))
	}
	for _, r := range regs[:2] {
		res, err := r.PushRetry(bg(), Remote{}, nil, nil, 3)
		if err != nil {
			t.Fatalf("push with retry: %v", err)
		}
		t.Logf("push with retry: %+v", res)
	}
	if got := gitEnv(t, origin, nil, "", "ls-tree", "-r", "--name-only", pid.Ref()); got != "event.json\nsigs/0.qb64\nsigs/1.qb64" {
		t.Errorf("origin's proposal after the race:\n%s", got)
	}
}

// TestRemoteCommitPushRace: two machines commit different events for the
// same s at once through CommitPush: exactly one lands; the other fails as
// a conflict on its operation after pulling, and its local registry holds
// exactly the remote's (its own commit never became visible anywhere). A
// batch that is still valid on the new tip (another identity's event)
// commits on top after one pull.
func TestRemoteCommitPushRace(t *testing.T) {
	origin, id, _, regs := threeMachines(t)
	// Two different interactions at s=1: one per machine.
	st := id.st
	var batches [2]Batch
	for i := range batches {
		e, err := kel.NewInteraction(st, []json.RawMessage{kel.DigestSeal(kel.Digest([]byte{byte(i)}))})
		if err != nil {
			t.Fatal(err)
		}
		batches[i].Append(sign(id.key, 0, e))
	}
	type out struct {
		i   int
		res *CommitPushResult
		err error
	}
	ch := make(chan out, 2)
	for i := range batches {
		go func(i int) {
			res, err := regs[i].CommitPush(bg(), &batches[i], Remote{}, nil, 3)
			ch <- out{i, res, err}
		}(i)
	}
	var won, lost []out
	for range 2 {
		o := <-ch
		if o.err == nil {
			won = append(won, o)
		} else {
			lost = append(lost, o)
		}
	}
	if len(won) != 1 || len(lost) != 1 {
		t.Fatalf("won %d, lost %d; want one each: %+v", len(won), len(lost), append(won, lost...))
	}
	var ce *ConflictError
	if !errors.As(lost[0].err, &ce) || ce.Op != 0 || strings.Contains(lost[0].err.Error(), "\n") {
		t.Fatalf("losing commit: %v, want a one-line conflict on operation 0", lost[0].err)
	}
	t.Logf("lost: %v", lost[0].err)
	remote := gitEnv(t, origin, nil, "", "rev-parse", RegistryRef)
	if remote != won[0].res.Commit {
		t.Errorf("origin at %s, want the winner's %s", remote, won[0].res.Commit)
	}
	for _, o := range append(won, lost...) {
		if got := head(t, regs[o.i]); got != remote {
			t.Errorf("machine %d at %s, want the remote's %s", o.i, got, remote)
		}
	}
	// Another identity's inception is still valid on the new tip: the
	// loser's next batch lands after a pull, on top of the winner's.
	_, icp, err := newTestID("second identity")
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.Append(icp)
	res, err := regs[lost[0].i].CommitPush(bg(), &b, Remote{}, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Parent != remote || gitEnv(t, origin, nil, "", "rev-parse", RegistryRef) != res.Commit {
		t.Errorf("second commit %+v, want on top of %s and on the remote", res.CommitResult, remote)
	}
	if got := runGit(t, origin, "for-each-ref", "--format=%(refname)"); strings.Contains(got, "outgoing") {
		t.Errorf("outgoing ref pushed:\n%s", got)
	}
}

// TestRemotePullForgetsRemovedProposals: Pull fetches without listing the
// remote first, so the proposals it reports come from the tracking refs the
// fetch leaves; one the remote no longer holds is pruned from them and not
// reported again, and a remote that has refs but no registry is
// ErrRemoteEmpty with nothing written.
func TestRemotePullForgetsRemovedProposals(t *testing.T) {
	origin := newGitRepo(t, true)
	dirA, a := clone(t, origin)
	_, b := clone(t, origin)
	if _, _, err := Init(bg(), dirA, false, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	id, icp, err := newTestID("prune")
	if err != nil {
		t.Fatal(err)
	}
	var batch Batch
	batch.Append(icp)
	if _, err := a.Commit(bg(), &batch); err != nil {
		t.Fatal(err)
	}
	pid := PendingID{Prefix: id.st.Prefix, SAID: "E" + strings.Repeat("B", 43)}
	if _, err := a.PutPending(bg(), pid, PendingFiles{"event.json": []byte("e")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Push(bg(), Remote{}); err != nil {
		t.Fatal(err)
	}
	if res, err := b.Pull(bg(), Remote{}, nil); err != nil || len(res.Pending) != 1 || res.Pending[0].ID != pid {
		t.Fatalf("first pull: %+v %v", res, err)
	}
	runGit(t, origin, "update-ref", "-d", pid.Ref())
	res, err := b.Pull(bg(), Remote{}, nil)
	if err != nil || len(res.Pending) != 0 {
		t.Fatalf("pull after the remote dropped %s: %+v %v", pid, res, err)
	}
	if ids, err := b.pendingIDsUnder(RemotesRefPrefix + "origin/pending/"); err != nil || len(ids) != 0 {
		t.Errorf("tracking refs after the prune: %v %v", ids, err)
	}

	branchOnly := newGitRepo(t, false)
	runGit(t, branchOnly, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "x")
	dir, r := clone(t, branchOnly)
	_, err = r.Pull(bg(), Remote{}, nil)
	if !errors.Is(err, ErrRemoteEmpty) || !strings.Contains(err.Error(), "it has no "+RegistryRef) {
		t.Errorf("pull from a remote with a branch only: %v", err)
	}
	if got := runGit(t, dir, "for-each-ref"); got != "" {
		t.Errorf("refs written:\n%s", got)
	}
}
