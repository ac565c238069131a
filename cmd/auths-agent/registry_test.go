package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	var stream []byte
	for _, f := range []string{"rot_remove.icp.json", "rot_remove.icp.att", "rot_remove.rot.json", "rot_remove.rot.att"} {
		data, err := os.ReadFile(filepath.Join(vectorsDir, f))
		if err != nil {
			t.Fatalf("KERIPY VECTORS MISSING: %v", err)
		}
		stream = append(stream, data...)
	}
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
