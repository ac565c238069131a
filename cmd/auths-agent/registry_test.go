package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/internal/vectors"
	"github.com/auths-dev/auths-agent/kel"
)

// runCommands runs args through the CLI's output rules with the given
// commands (registry init and kel verify --registry are tested here until
// they are wired into commands.go).
// runCommands runs the CLI in-process, as main does, and returns its exit
// status, stdout and stderr.
func runCommands(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: os.Getenv}
	code := run(context.Background(), env, append([]string{"auths-agent"}, args...))
	return code, out.String(), errb.String()
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestRegistryInitCommand(t *testing.T) {
	for _, bare := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "reg")
		args := []string{"registry", "init"}
		if bare {
			args = append(args, "--bare")
		}
		code, out, errs := runCommands(t, append(args, dir)...)
		if code != 0 || !strings.HasPrefix(out, "created refs/auths/registry in ") || errs != "" {
			t.Fatalf("init: %d %q %q", code, out, errs)
		}
		head := strings.TrimSpace(git(t, dir, "rev-parse", "refs/auths/registry"))
		code, out, _ = runCommands(t, append(args, dir)...)
		if code != 0 || !strings.Contains(out, "already in") || !strings.Contains(out, head) {
			t.Fatalf("second init: %d %q", code, out)
		}
		if refs := git(t, dir, "for-each-ref", "--format=%(refname)"); refs != "refs/auths/registry\n" {
			t.Errorf("refs: %q", refs)
		}
		if files := git(t, dir, "ls-tree", "-r", "--name-only", "refs/auths/registry"); files != "v1/metadata.json\n" {
			t.Errorf("tree: %q", files)
		}
		git(t, dir, "fsck", "--strict", "--no-dangling")
	}
	if code, _, errs := runCommands(t, "registry", "init"); code != 2 || !strings.Contains(errs, "missing argument DIR") {
		t.Errorf("no DIR: %d %q", code, errs)
	}
}

func TestVerifyRegistry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reg")
	if code, _, errs := runCommands(t, "registry", "init", dir); code != 0 {
		t.Fatal(errs)
	}
	stream := vectors.Stream()
	kelFile := filepath.Join(t.TempDir(), "kel.cesr")
	os.WriteFile(kelFile, stream, 0o644)
	if code, _, errs := runCommands(t, "kel", "import", "--registry", dir, kelFile); code != 0 {
		t.Fatal(errs)
	}
	const prefix = "EMd282TNa216KX7fuXQyuic3SSv7J6dpv6YLqQFlT5_S"
	code, out, errs := runCommands(t, "kel", "verify", "--registry", dir, prefix)
	if code != 0 || !strings.Contains(out, "sn         1\n") || errs != "" {
		t.Errorf("verify: %d %q %q", code, out, errs)
	}
	code, out, _ = runCommands(t, "kel", "verify", "--json", "--registry", dir, prefix)
	if code != 0 || !strings.Contains(out, `"last_event_said": "ENb3ofWuID9qeLGISJKezex1h2HgG4EbIqI0BE5Uee1a"`) {
		t.Errorf("verify --json: %d %q", code, out)
	}
	code, _, errs = runCommands(t, "kel", "verify", "--registry", dir, "EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("unknown prefix: %d %q", code, errs)
	}
}

// TestImportThresholdForms: a keripy stream whose inception uses a
// multi-clause weighted threshold verifies on its own with keripy's
// semantics, and kel import refuses it for a registry, naming the field and
// why (issue 10 item 5).
func TestImportThresholdForms(t *testing.T) {
	var keys []ed25519.PrivateKey
	var qb, next []string
	for i := 0; i < 3; i++ {
		var seed [32]byte
		copy(seed[:], fmt.Sprint("multi-clause key ", i))
		k := ed25519.NewKeyFromSeed(seed[:])
		v, _ := kel.VerferFromPublicKey(k.Public())
		keys, qb, next = append(keys, k), append(qb, v.QB64()), append(next, kel.NextKeyDigest(v.QB64()))
	}
	kt, err := kel.WeightedThreshold([][]string{{"1/2", "1/2"}, {"1/1"}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := kel.NewInception(kel.InceptionSpec{Keys: qb, Threshold: kt, NextDigests: next, NextThreshold: kel.SimpleThreshold(1)})
	if err != nil {
		t.Fatal(err)
	}
	// keripy: clause 1 weighs keys 0 and 1, clause 2 key 2; signatures by
	// 0 and 2 meet neither clause 1, by 0, 1 and 2 both.
	se := kel.SignedEvent{Event: e}
	for i, k := range keys {
		se.Sigs = append(se.Sigs, kel.NewSiger(kel.Ed25519, i, i, ed25519.Sign(k, e.Raw())))
	}
	stream, err := kel.EncodeStream([]kel.SignedEvent{se})
	if err != nil {
		t.Fatal(err)
	}
	kelFile := filepath.Join(t.TempDir(), "multi.cesr")
	os.WriteFile(kelFile, stream, 0o644)
	if code, out, errs := runCommands(t, "kel", "verify", kelFile); code != 0 || !strings.Contains(out, "sn         0\n") {
		t.Fatalf("standalone verify: %d %q %q", code, out, errs)
	}
	dir := filepath.Join(t.TempDir(), "reg")
	if code, _, errs := runCommands(t, "registry", "init", dir); code != 0 {
		t.Fatal(errs)
	}
	head := git(t, dir, "rev-parse", "refs/auths/registry")
	code, _, errs := runCommands(t, "kel", "import", "--registry", dir, kelFile)
	if code == 0 || !strings.Contains(errs, `field "kt": not in a form auths reads alike: 2 weighted clauses`) || strings.Count(errs, "\n") != 1 {
		t.Errorf("import: %d %q", code, errs)
	}
	if got := git(t, dir, "rev-parse", "refs/auths/registry"); got != head {
		t.Errorf("the registry moved")
	}
}
