package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// runCommands runs args through the CLI's output rules with the given
// commands (registry init and kel verify --registry are tested here until
// they are wired into commands.go).
func runCommands(t *testing.T, cmds []*cli.Command, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: os.Getenv}
	app := newApp(env)
	app.Commands = cmds
	code := exitOK
	if err := app.RunContext(context.Background(), append([]string{"auths-agent"}, args...)); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
			fmt.Fprintf(&errb, "auths-agent: %s\n", ee.msg)
		} else {
			code = exitUsage
			fmt.Fprintf(&errb, "auths-agent: %s\n", oneLine(err.Error()))
		}
	}
	return code, out.String(), errb.String()
}

func testCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name: "registry",
			Subcommands: []*cli.Command{{
				Name:  "init",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "bare"}},
				Action: func(c *cli.Context) error {
					return registryInitCommand(cliEnvFrom(c)).Action(c)
				},
			}},
		},
		{
			Name:  "verify",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "json"}, registryFlag()},
			Action: func(c *cli.Context) error {
				if err := wantArgs(c, "prefix"); err != nil {
					return err
				}
				return verifyRegistry(c, cliEnvFrom(c), c.String("registry"), c.Args().First(), c.Bool("json"))
			},
		},
		{
			Name:   "import",
			Flags:  []cli.Flag{registryFlag()},
			Action: func(c *cli.Context) error { return kelImportCommand(cliEnvFrom(c)).Action(c) },
		},
	}
}

// cliEnvFrom rebuilds the environment from the app's writers.
func cliEnvFrom(c *cli.Context) *cliEnv {
	return &cliEnv{stdin: c.App.Reader, stdout: c.App.Writer, stderr: c.App.ErrWriter, getenv: os.Getenv}
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
		code, out, errs := runCommands(t, testCommands(), append(args, dir)...)
		if code != 0 || !strings.HasPrefix(out, "created refs/auths/registry in ") || errs != "" {
			t.Fatalf("init: %d %q %q", code, out, errs)
		}
		head := strings.TrimSpace(git(t, dir, "rev-parse", "refs/auths/registry"))
		code, out, _ = runCommands(t, testCommands(), append(args, dir)...)
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
	if code, _, errs := runCommands(t, testCommands(), "registry", "init"); code != 2 || !strings.Contains(errs, "missing argument DIR") {
		t.Errorf("no DIR: %d %q", code, errs)
	}
}

func TestVerifyRegistry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reg")
	if code, _, errs := runCommands(t, testCommands(), "registry", "init", dir); code != 0 {
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
	if code, _, errs := runCommands(t, testCommands(), "import", "--registry", dir, kelFile); code != 0 {
		t.Fatal(errs)
	}
	const prefix = "EMd282TNa216KX7fuXQyuic3SSv7J6dpv6YLqQFlT5_S"
	code, out, errs := runCommands(t, testCommands(), "verify", "--registry", dir, prefix)
	if code != 0 || !strings.Contains(out, "sn         1\n") || errs != "" {
		t.Errorf("verify: %d %q %q", code, out, errs)
	}
	code, out, _ = runCommands(t, testCommands(), "verify", "--json", "--registry", dir, prefix)
	if code != 0 || !strings.Contains(out, `"last_event_said": "ENb3ofWuID9qeLGISJKezex1h2HgG4EbIqI0BE5Uee1a"`) {
		t.Errorf("verify --json: %d %q", code, out)
	}
	code, _, errs = runCommands(t, testCommands(), "verify", "--registry", dir, "EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("unknown prefix: %d %q", code, errs)
	}
}
