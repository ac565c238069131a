//go:build vpiv

package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliRun is one CLI process run in the background: its stderr lines with
// the time each arrived, its stdout, its exit code and when it ended.
type cliRun struct {
	lines  []string
	at     []time.Time
	stdout string
	code   int
	ended  time.Time
}

func runTimed(t *testing.T, env []string, dir string, name string, args ...string) <-chan *cliRun {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *cliRun, 1)
	go func() {
		r := &cliRun{}
		s := bufio.NewScanner(errPipe)
		for s.Scan() {
			r.lines, r.at = append(r.lines, s.Text()), append(r.at, time.Now())
		}
		io.Copy(io.Discard, errPipe)
		cmd.Wait()
		r.ended, r.stdout, r.code = time.Now(), out.String(), cmd.ProcessState.ExitCode()
		ch <- r
	}()
	return ch
}

func vpivCardCtl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(os.Getenv("VPIV_DIR"), "bin", "vpiv-card-ctl"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("vpiv-card-ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestServeTouch runs the real agent with two identities, each on a card of
// its own; the first card's key needs a touch. While that card waits for
// its (emulated) touch, the CLI that asked prints the waiting line on
// stderr, and an anchor on the other card completes. Then the touch never
// comes (a card whose touch arrives after an hour): the request fails at
// the agent's --touch-timeout with one clear line, the other card keeps
// working, the stuck card answers "busy" at once, and the audit trail
// records both refusals with their reasons.
func TestServeTouch(t *testing.T) {
	serials := rigSerials(t, "the touch test needs two cards")
	cardsMu.Lock() // piv-go holds a card exclusively: one scenario at a time
	defer cardsMu.Unlock()
	bin := agentBinary(t)
	dir := t.TempDir()
	reg := filepath.Join(dir, "reg")
	k1 := "piv:serial=" + serials[0] + ";slot=9a?pin-value=123456"
	k2 := "piv:serial=" + serials[1] + ";slot=9a?pin-value=123456"
	t.Cleanup(func() { vpivCardCtl(t, "restart", serials[0]) })
	run1(t, nil, dir, "", bin, "key", "generate", "--algorithm", "p256", "--touch-policy", "always", "--overwrite", k1)
	run1(t, nil, dir, "", bin, "key", "generate", "--algorithm", "p256", "--overwrite", k2)
	// Without the agent the CLI opens the card itself and says the same
	// words when it waits for the touch.
	created := <-runTimed(t, nil, dir, bin, "id", "create", "--init", "--registry", reg, "--threshold", "1", "--key", k1)
	p1 := strings.TrimSpace(created.stdout)
	if created.code != 0 || !slices.Contains(created.lines, "auths-agent: waiting for touch on PIV card "+serials[0]+" slot 9a") {
		t.Fatalf("id create with a touch key: exit %d, stderr %q", created.code, created.lines)
	}
	p2 := strings.TrimSpace(run1(t, nil, dir, "", bin, "id", "create", "--registry", reg, "--threshold", "1", "--key", k2))

	const delay = 2 * time.Second
	vpivCardCtl(t, "restart", serials[0], "-touch-delay", delay.String())
	sock := filepath.Join(dir, "agent.sock")
	ra := startAgent(t, nil, sock, "--registry", reg, "--key", k1, "--key", k2)
	defer func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", ra.stderr)
		}
	}()
	env := []string{"AUTHS_AGENT_SOCK=" + sock}
	seal := "d=EF_M_u7ASVHXfI8QzdWLq3V9ocSKqxkbujXGbi9QMtP9"
	anchor := func(p string) <-chan *cliRun {
		return runTimed(t, env, dir, bin, "anchor", "--registry", reg, "--id", p, "--seal", seal)
	}
	wantLine := "auths-agent: anchor: waiting for touch on PIV card " + serials[0] + " slot 9a"

	start := time.Now()
	aCh := anchor(p1)
	time.Sleep(300 * time.Millisecond) // the first card waits by now
	b := <-anchor(p2)
	a := <-aCh
	if a.code != 0 || !strings.HasPrefix(a.stdout, "committed "+p1+" s=1 ") {
		t.Fatalf("anchor on the touch card: exit %d\nstdout: %s\nstderr: %q", a.code, a.stdout, a.lines)
	}
	if b.code != 0 || !strings.HasPrefix(b.stdout, "committed "+p2+" s=1 ") {
		t.Fatalf("anchor on the other card: exit %d\nstdout: %s\nstderr: %q", b.code, b.stdout, b.lines)
	}
	if len(a.lines) != 1 || a.lines[0] != wantLine {
		t.Fatalf("stderr of the anchor that waits for a touch: %q, want [%q]", a.lines, wantLine)
	}
	if waited := a.ended.Sub(a.at[0]); waited < delay-300*time.Millisecond {
		t.Errorf("the waiting line came %v before the signature returned, want about the touch delay %v (printed when the card starts waiting)", waited, delay)
	}
	if len(b.lines) != 0 {
		t.Errorf("the anchor on the other card printed %q", b.lines)
	}
	if !b.ended.Before(a.ended) || b.ended.Sub(start) > delay {
		t.Errorf("the other card's anchor ended after %v, the touch card's after %v: want the other first, within the touch delay", b.ended.Sub(start), a.ended.Sub(start))
	}
	ra.stop(t)

	// The touch that never comes.
	vpivCardCtl(t, "restart", serials[0], "-touch-delay", "1h")
	trail := filepath.Join(dir, "audit.jsonl")
	// The timeout comes from the config file here (--touch-timeout would
	// override it).
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"keys":[],"touch_timeout":"3s"}`), 0o600)
	ra = startAgent(t, nil, sock, "--config", cfg, "--registry", reg, "--key", k1, "--key", k2, "--audit-file", trail)
	start = time.Now()
	aCh = anchor(p1)
	time.Sleep(300 * time.Millisecond)
	b = <-anchor(p2)
	a = <-aCh
	wantErr := "auths-agent: anchor: agent: no touch on PIV card " + serials[0] + " slot 9a within 3s"
	if a.code != 1 || len(a.lines) != 2 || a.lines[0] != wantLine || !strings.HasPrefix(a.lines[1], wantErr) {
		t.Errorf("anchor whose touch never comes: exit %d, stderr %q; want exit 1 and [%q, %q...]", a.code, a.lines, wantLine, wantErr)
	}
	if took := a.ended.Sub(start); took < 3*time.Second || took > 6*time.Second {
		t.Errorf("the touch timeout of 3s ended the request after %v", took)
	}
	if b.code != 0 || !strings.HasPrefix(b.stdout, "committed "+p2+" s=2 ") || b.ended.After(a.ended) {
		t.Errorf("anchor on the other card while the first waits: exit %d, %v after start (the other %v)\nstdout: %s\nstderr: %q",
			b.code, b.ended.Sub(start), a.ended.Sub(start), b.stdout, b.lines)
	}
	// The card still waits for the abandoned touch: the next request is
	// told so at once rather than queued behind it.
	start = time.Now()
	c := <-anchor(p1)
	if c.code != 1 || len(c.lines) != 1 || !strings.Contains(c.lines[0], "PIV card "+serials[0]+" slot 9a is busy: it still waits for the touch of a request that timed out") ||
		time.Since(start) > 2*time.Second {
		t.Errorf("anchor on the stuck card: exit %d after %v, stderr %q", c.code, time.Since(start), c.lines)
	}
	var refusals []string
	for _, l := range readLines(t, trail) {
		if strings.Contains(l, `"outcome":"refused"`) {
			refusals = append(refusals, l)
		}
	}
	// The busy answer is a refusal too: its signature was recorded before
	// the card was asked, and never made.
	if len(refusals) != 2 || !strings.Contains(refusals[0], `"reason":"no touch on PIV card `+serials[0]+` slot 9a within 3s"`) ||
		!strings.Contains(refusals[1], `"reason":"PIV card `+serials[0]+` slot 9a is busy: it still waits for the touch of a request that timed out`) ||
		!strings.Contains(refusals[0], `"prefix":"`+p1+`"`) || !strings.Contains(refusals[0], `"op":"anchor"`) ||
		!strings.Contains(refusals[1], `"prefix":"`+p1+`"`) || !strings.Contains(refusals[1], `"op":"anchor"`) {
		t.Errorf("audit refusals: %q, want one for the touch that did not come, then one for the busy card", refusals)
	}
	// SIGHUP closes every token session; it does not wait for the stuck
	// card, and the other card signs again right after.
	ra.cmd.Process.Signal(syscall.SIGHUP)
	start = time.Now()
	if e := <-anchor(p2); e.code != 0 || !strings.HasPrefix(e.stdout, "committed "+p2+" s=3 ") || time.Since(start) > 5*time.Second {
		t.Errorf("anchor on the other card after SIGHUP, with a card stuck: exit %d after %v\nstdout: %s\nstderr: %q", e.code, time.Since(start), e.stdout, e.lines)
	}
	// The card is freed (here: restarted, which ends its call); the agent
	// discards what that call returns and serves the card again.
	vpivCardCtl(t, "restart", serials[0])
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := <-anchor(p1)
		if d.code == 0 && strings.HasPrefix(d.stdout, "committed "+p1+" s=2 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("anchor on the card once freed: exit %d\nstdout: %s\nstderr: %q", d.code, d.stdout, d.lines)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !strings.Contains(ra.stderr.String(), "its result is discarded") {
		t.Errorf("the agent's log does not say the abandoned call's result was discarded")
	}

	// A card that gives up waiting first, as a YubiKey does after 15 s
	// (here 2 s, inside the agent's 3 s): the same clear error, and the
	// card is free at once.
	vpivCardCtl(t, "restart", serials[0], "-touch-delay", "1h", "-touch-timeout", "2s")
	wantCardErr := "auths-agent: anchor: agent: no touch on PIV card " + serials[0] + " slot 9a within 2s (the card stopped waiting)"
	deadline = time.Now().Add(15 * time.Second)
	for {
		e := <-anchor(p1)
		if e.code == 1 && len(e.lines) == 2 && e.lines[0] == wantLine && e.lines[1] == wantCardErr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("anchor on a card that gives up: exit %d\nstdout: %s\nstderr: %q\nwant [%q %q]", e.code, e.stdout, e.lines, wantLine, wantCardErr)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if f := <-anchor(p1); f.code != 1 || len(f.lines) != 2 || f.lines[1] != wantCardErr {
		t.Errorf("the next anchor on that card (free again, no touch again): exit %d, stderr %q", f.code, f.lines)
	}
	n := 0
	for _, l := range readLines(t, trail) {
		if strings.Contains(l, `"reason":"no touch on PIV card `+serials[0]+` slot 9a within 2s (the card stopped waiting)"`) {
			n++
		}
	}
	if n < 2 {
		t.Errorf("%d audit refusals for the card that gave up, want one per request", n)
	}
}
