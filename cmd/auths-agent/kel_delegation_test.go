package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/kel"
)

// delegatedInception returns a signed dip of one key naming delegator, as
// a delegating controller's software writes it (the kel builders make no
// delegated events): the SAID is computed over the placeholder form, then
// put in d and i.
func delegatedInception(t *testing.T, key, next softKey, delegator string) kel.SignedEvent {
	t.Helper()
	placeholder := strings.Repeat("#", kel.SAIDLen)
	body := fmt.Sprintf(`"t":"dip","d":%q,"i":%q,"s":"0","kt":"1","k":[%q],"nt":"1","n":[%q],"bt":"0","b":[],"c":[],"a":[],"di":%q}`,
		placeholder, placeholder, key.pub, kel.NextKeyDigest(next.pub), delegator)
	size := len(`{"v":"KERI10JSON000000_",`) + len(body)
	raw := fmt.Sprintf(`{"v":"KERI10JSON%06x_",%s`, size, body)
	e, err := kel.ParseEvent([]byte(raw))
	if err != nil {
		t.Fatalf("dip with placeholders: %v", err)
	}
	e, err = kel.ParseEvent([]byte(strings.ReplaceAll(raw, placeholder, e.ComputeSAID())))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CheckSAID(); err != nil {
		t.Fatal(err)
	}
	return kel.SignedEvent{Event: e, Sigs: []kel.Siger{key.siger(t, e, 0, 0)}}
}

// TestKelDelegatedRefused: a well-signed dip whose delegator's KEL is in
// the registry but does not anchor it is refused: kel verify of the stream
// answers no (exit 1; a stream holds no delegator's KEL), kel import
// refuses (exit 1) with the reason, writing nothing, and kel verify
// --registry answers no for a registry another program wrote it into.
func TestKelDelegatedRefused(t *testing.T) {
	// The delegator: an ordinary 1-of-1 identity, imported.
	dk, dn := newSoftKey(t, false), newSoftKey(t, false)
	icp, err := kel.NewInception(kel.InceptionSpec{Keys: []string{dk.pub}, Threshold: kel.SimpleThreshold(1),
		NextDigests: []string{kel.NextKeyDigest(dn.pub)}, NextThreshold: kel.SimpleThreshold(1)})
	if err != nil {
		t.Fatal(err)
	}
	delegatorKEL, err := kel.EncodeStream([]kel.SignedEvent{{Event: icp, Sigs: []kel.Siger{dk.siger(t, icp, 0, 0)}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "reg.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	if code, _, errs := runCLI(t, delegatorKEL, "kel", "import", "--init", "--registry", dir, "-"); code != 0 {
		t.Fatalf("import of the delegator: %d %s", code, errs)
	}
	head := git(t, dir, "rev-parse", "refs/auths/registry")
	tree := git(t, dir, "ls-tree", "-r", "refs/auths/registry")

	dip := delegatedInception(t, newSoftKey(t, false), newSoftKey(t, false), icp.Prefix)
	stream, err := kel.EncodeStream([]kel.SignedEvent{dip})
	if err != nil {
		t.Fatal(err)
	}
	reason := fmt.Sprintf("event s=0 (dip %s): delegator %s: delegated events are not verified yet", dip.Event.SAID, icp.Prefix)

	code, out, errs := runCLI(t, stream, "kel", "verify", "-")
	if code != exitNegative || out != "" || !strings.Contains(errs, "-: invalid KEL: "+reason) || strings.Count(errs, "\n") != 1 {
		t.Errorf("kel verify of a dip: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errs, reason)
	}

	unanchored := "unverified delegation: dip s=0 " + dip.Event.SAID + ": no event of its delegator " + icp.Prefix + " seals it"
	code, out, errs = runCLI(t, stream, "kel", "import", "--registry", dir, "-")
	if code != exitNegative || out != "" || !strings.Contains(errs, unanchored) || strings.Count(errs, "\n") != 1 {
		t.Errorf("kel import of a dip: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errs, unanchored)
	}
	if got := git(t, dir, "rev-parse", "refs/auths/registry"); got != head {
		t.Errorf("the registry moved: %s, was %s", got, head)
	}
	if got := git(t, dir, "ls-tree", "-r", "refs/auths/registry"); got != tree {
		t.Errorf("the registry tree changed:\n%s", got)
	}
	if bytes.Contains([]byte(git(t, dir, "for-each-ref")), []byte("pending")) {
		t.Error("a pending ref appeared")
	}
	// The delegator's own KEL still verifies.
	if code, _, errs := runCLI(t, delegatorKEL, "kel", "verify", "-"); code != 0 {
		t.Errorf("kel verify of the delegator: %d %s", code, errs)
	}

	// A registry holding the dip (auths writes delegated events): kel show
	// lists it, kel verify --registry answers no with the reason.
	prefix := dip.Event.Prefix
	att, err := kel.EncodeSigGroup(dip.Sigs)
	if err != nil {
		t.Fatal(err)
	}
	id := "v1/identities/" + prefix[0:2] + "/" + prefix[2:4] + "/" + prefix
	plantFiles(t, dir, map[string][]byte{
		id + "/events/00000000.json":             dip.Event.Raw(),
		id + "/events/00000000.attachments.cesr": att,
		id + "/tip.json":                         []byte(fmt.Sprintf(`{"version":1,"sequence":0,"said":%q}`, dip.Event.SAID)),
	})
	code, out, errs = runCLI(t, nil, "kel", "show", "--registry", dir, prefix)
	if code != 0 || out != "s=0 dip "+dip.Event.SAID+" sigs=0\n" {
		t.Errorf("kel show of a dip: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = runCLI(t, nil, "kel", "verify", "--registry", dir, prefix)
	if code != exitNegative || out != "" || !strings.Contains(errs, unanchored) || strings.Count(errs, "\n") != 1 {
		t.Errorf("kel verify --registry of a dip: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errs, unanchored)
	}
}

// plantFiles commits files into the registry ref with git plumbing, as
// another writer (auths) would, bypassing this project's checks.
func plantFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	index := filepath.Join(t.TempDir(), "index")
	gitIn := func(stdin []byte, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(cmd.Environ(), "GIT_INDEX_FILE="+index,
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	head := gitIn(nil, "rev-parse", "refs/auths/registry")
	gitIn(nil, "read-tree", head)
	for path, data := range files {
		blob := gitIn(data, "hash-object", "-w", "--stdin")
		gitIn(nil, "update-index", "--add", "--cacheinfo", "100644,"+blob+","+path)
	}
	tree := gitIn(nil, "write-tree")
	commit := gitIn(nil, "commit-tree", "-p", head, "-m", "planted", tree)
	gitIn(nil, "update-ref", "refs/auths/registry", commit, head)
}
