// Package systemd_test checks the systemd user units in this directory
// with systemd's own verifier.
package systemd_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var units = []string{"auths-agent.socket", "auths-agent.service"}

// installUnits copies the units into a temporary directory with ExecStart
// pointing at a freshly built binary (systemd-analyze checks that the
// program exists and is executable; %h/.local/bin has none here), applying
// edit to each file's text.
func installUnits(t *testing.T, edit func(name, text string) string) []string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(binDir, "auths-agent")
	var paths []string
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "%h/.local/bin/auths-agent", bin)
		if edit != nil {
			text = edit(u, text)
		}
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// binDir holds the auths-agent binary built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "units-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binDir = dir
	code := 2
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "auths-agent"), "../../cmd/auths-agent").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// analyze runs systemd-analyze --user verify. It needs no running systemd,
// only a runtime directory to resolve %t.
func analyze(t *testing.T, paths []string) (string, error) {
	t.Helper()
	prog, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed (make test-deps installs systemd): %v", err)
	}
	cmd := exec.Command(prog, append([]string{"--user", "verify"}, paths...)...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir(), "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestUnitsVerify: systemd-analyze accepts both units without a single
// diagnostic (it exits 0 on some bad values, warning only, so any output
// fails the test too).
func TestUnitsVerify(t *testing.T) {
	out, err := analyze(t, installUnits(t, nil))
	if err != nil || out != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitsVerifyCatches makes sure the check can fail: a misspelt key,
// a missing binary and a bad socket mode are each reported.
func TestUnitsVerifyCatches(t *testing.T) {
	for name, edit := range map[string]func(string, string) string{
		"misspelt ExecStart": func(_, s string) string { return strings.Replace(s, "ExecStart=", "ExecStrat=", 1) },
		"missing binary": func(_, s string) string {
			return strings.Replace(s, "ExecStart=/", "ExecStart=/nonexistent/", 1)
		},
		"bad socket mode": func(_, s string) string { return strings.Replace(s, "SocketMode=0600", "SocketMode=banana", 1) },
	} {
		t.Run(name, func(t *testing.T) {
			out, err := analyze(t, installUnits(t, edit))
			if err == nil && out == "" {
				t.Errorf("systemd-analyze verify found nothing wrong")
			}
		})
	}
}

// TestUnitsAgreeWithTheAgent: the socket is where clients look by default,
// private to the user; SIGHUP is the reload.
func TestUnitsAgreeWithTheAgent(t *testing.T) {
	sock, _ := os.ReadFile("auths-agent.socket")
	svc, _ := os.ReadFile("auths-agent.service")
	for _, want := range []string{"ListenStream=%t/auths-agent/agent.sock\n", "SocketMode=0600\n", "DirectoryMode=0700\n"} {
		if !strings.Contains(string(sock), want) {
			t.Errorf("auths-agent.socket lacks %q", want)
		}
	}
	for _, want := range []string{"ExecStart=%h/.local/bin/auths-agent serve ", "ExecReload=/bin/kill -HUP $MAINPID\n", "UMask=0077\n"} {
		if !strings.Contains(string(svc), want) {
			t.Errorf("auths-agent.service lacks %q", want)
		}
	}
}
