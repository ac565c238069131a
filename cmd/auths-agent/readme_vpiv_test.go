//go:build vpiv

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	gopiv "github.com/go-piv/piv-go/v2/piv"
)

// TestReadmeYubiKeyGuide runs the README's guide for a developer with two
// YubiKeys exactly as written, on two cards of the virtual card rig (PIN
// 123456, typed on the script's stdin). Between the setup and the use it
// stands in for systemd and for auths: it starts `auths-agent serve` on the
// default socket with the config the guide wrote (the service's ExecStart),
// with a scripted pinentry, and pairs a device with a key of its own.
func TestReadmeYubiKeyGuide(t *testing.T) {
	serials := rigSerials(t, "the YubiKey guide needs two cards")
	blocks := map[string]string{}
	for _, b := range readmeBlocks(t) {
		blocks[b.marker] = b.text
	}
	setup, use := blocks["test: yubikey-guide"], blocks["test: yubikey-guide-use"]
	if setup == "" || use == "" {
		t.Fatal("README.md needs the blocks marked <!-- test: yubikey-guide --> and <!-- test: yubikey-guide-use -->")
	}
	tools := t.TempDir()
	attestdemo := filepath.Join(tools, "attestdemo")
	standin := filepath.Join(tools, "pinentry-standin")
	for out, pkg := range map[string]string{attestdemo: "../../internal/attestdemo", standin: "../../agent/pinentry/testdata/standin"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	standInSystemd := `
# systemd and the developer's git identity (stand-in)
git config --global user.name Dev
git config --global user.email dev@example.com
grep -qx 'ExecStart=.* serve --config %E/auths-agent/config.json' "$XDG_CONFIG_HOME/systemd/user/auths-agent.service"
auths-agent serve --config "$XDG_CONFIG_HOME/auths-agent/config.json" 2> "$HOME/agent.log" &
AGENT_PID=$!
trap 'kill $AGENT_PID; wait $AGENT_PID || true' EXIT
for i in $(seq 100); do [ -S "$XDG_RUNTIME_DIR/auths-agent/agent.sock" ] && break; sleep 0.1; done
# auths pairs a device (stand-in)
DEVICE=$("$ATTESTDEMO" new device.key "$P" laptop-0001 laptop.json)
`
	script := setup + standInSystemd + use

	cardsMu.Lock() // piv-go holds a card exclusively: one scenario at a time
	defer cardsMu.Unlock()
	// The guide is for new cards: its rotation names slot 82, the first
	// retired slot, where id create makes the next keys on a new card.
	resetCards(t, serials[:2])
	t.Cleanup(func() { resetCards(t, serials[:2]) })
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "pinentry.log")
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("123456\n123456\n")
	cmd.Env = append(os.Environ(),
		"PATH="+readmeCommandPath(t)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, ".config"), "XDG_RUNTIME_DIR="+runDir,
		"XDG_STATE_HOME="+filepath.Join(dir, ".local", "state"),
		"S1="+strings.TrimSpace(serials[0]), "S2="+strings.TrimSpace(serials[1]), "ATTESTDEMO="+attestdemo,
		"PINENTRY_PROGRAM="+standin, "STANDIN_MODE=ok", "STANDIN_PIN=123456", "STANDIN_RECORD="+record,
		"AUTHS_AGENT_SOCK=", "SSH_AUTH_SOCK=", "GIT_CONFIG_NOSYSTEM=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	agentLog, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatalf("the YubiKey guide failed: %v\nstdout:\n%s\nstderr:\n%s\nagent log:\n%s", err, out.String(), errb.String(), agentLog)
	}
	stdout, stderr := out.String(), errb.String()
	m := regexp.MustCompile(`(?m)^identity (E[A-Za-z0-9_-]{43})$`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no identity line in the guide's stdout:\n%s", stdout)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^committed ` + m[1] + ` s=1 E[A-Za-z0-9_-]{43}$`),
		regexp.MustCompile(`(?m)^sn         1\nkeys       (1AAJ[A-Za-z0-9_-]{44} ?){2}\nthreshold  2\n`),
		// The rotation through the agent, to the keys in slot 82.
		regexp.MustCompile(`(?m)^committed ` + m[1] + ` s=2 E[A-Za-z0-9_-]{43}$`),
		regexp.MustCompile(`(?m)^sn         2\nkeys       (1AAJ[A-Za-z0-9_-]{44} ?){2}\nthreshold  2\n`),
	} {
		if !want.MatchString(stdout) {
			t.Errorf("stdout of the YubiKey guide does not match %s:\n%s", want, stdout)
		}
	}
	for i, s := range serials[:2] {
		if want := fmt.Sprintf("auths-agent: next key for key %d: piv:serial=%s;slot=83\n", i, strings.TrimSpace(s)); !strings.Contains(stderr, want) {
			t.Errorf("id rotate through the agent: stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stderr, `Good "git" signature for dev@example.com with ECDSA key SHA256:`) {
		t.Errorf("git verify-commit did not report a good signature:\n%s", stderr)
	}
	if strings.Contains(stdout+stderr+string(agentLog), "123456") {
		t.Errorf("a PIN shows in the guide's output or the agent's log:\n%s\n%s\n%s", stdout, stderr, agentLog)
	}
	// The agent asked once per card (the cache keeps each PIN), and its
	// audit trail holds the two KERI signatures of the anchor, the two of
	// the rotation and the commit's SSHSIG.
	if rec, err := os.ReadFile(record); err != nil || strings.Count(string(rec), "GETPIN\n") != 2 {
		t.Errorf("pinentry prompts: %d (%v), want 2, one per card", strings.Count(string(rec), "GETPIN\n"), err)
	}
	trail, err := os.ReadFile(filepath.Join(dir, ".local", "state", "auths-agent", "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n, s := strings.Count(string(trail), `"outcome":"signed"`), strings.Count(string(trail), `"namespace":"git"`); n != 5 || s != 1 {
		t.Errorf("audit trail: %d signatures (want 5), %d for git (want 1):\n%s", n, s, trail)
	}
}

// resetCards gives each card of the rig with one of serials its factory
// state (piv-go's Reset: new PIN 123456, every slot empty).
func resetCards(t *testing.T, serials []string) {
	t.Helper()
	if err := resetCardsErr(serials); err != nil {
		t.Fatal(err)
	}
}

// resetCardsErr is resetCards for callers without a testing.T (a
// testscript Setup).
func resetCardsErr(serials []string) error {
	readers, err := gopiv.Cards()
	if err != nil {
		return fmt.Errorf("cards: %w", err)
	}
	left := map[string]bool{}
	for _, s := range serials {
		left[strings.TrimSpace(s)] = true
	}
	var errs []error
	for _, r := range readers {
		yk, err := gopiv.Open(r)
		if err != nil {
			continue
		}
		s, err := yk.Serial()
		if err == nil && left[fmt.Sprint(s)] {
			if err := yk.Reset(); err != nil {
				errs = append(errs, fmt.Errorf("reset card %d: %w", s, err))
			}
			delete(left, fmt.Sprint(s))
		}
		yk.Close()
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("cards not found to reset: %v", left))
	}
	return errors.Join(errs...)
}
