//go:build vpiv

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	gopiv "github.com/go-piv/piv-go/v2/piv"

	"github.com/auths-dev/auths-agent/hsm/piv"
)

// TestIDViaAgentPIV: with the agent holding two virtual PIV cards and
// their PIN (the CLI has none; and once the agent used a card, piv-go
// holds it exclusively), id create goes through it and the agent makes
// the next keys in slot 82 of each card; after a restart it finds them
// there and signs the rotation to them, making the next ones in slot 83;
// kel verify accepts the KEL. Before, id create opened the cards itself
// and failed for want of a PIN.
func TestIDViaAgentPIV(t *testing.T) {
	serials := rigSerials(t, "id through the agent on PIV needs two cards")
	cardsMu.Lock() // piv-go holds a card exclusively: one scenario at a time
	defer cardsMu.Unlock()
	resetCards(t, serials)
	t.Cleanup(func() { resetCards(t, serials) }) // after the agent stopped (cleanups run last first)
	p := piv.NewProvider(piv.Options{})
	var keys, agentKeys []string
	for _, s := range serials {
		uri := fmt.Sprintf("piv:serial=%s;slot=9a", s)
		if _, err := p.Generate(context.Background(), uri+"?pin-value=123456", piv.GenerateOptions{Algorithm: gopiv.AlgorithmEC256}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, uri)
		agentKeys = append(agentKeys, "--key", uri+"?pin-source=env:PIVPIN")
	}
	p.Close()
	dir := t.TempDir()
	bin := agentBinary(t)
	reg := filepath.Join(dir, "reg")
	run1(t, nil, dir, "", bin, "registry", "init", reg)
	sock := filepath.Join(dir, "run", "agent.sock")
	agentEnv := []string{"PIVPIN=123456"}
	args := append([]string{"--registry", reg}, agentKeys...)
	ra := startAgent(t, agentEnv, sock, args...)

	r := &idAgentRig{dir: dir, bin: bin}
	code, out, stderr := r.cli(t, sock, "id", "create", "--registry", reg, "--threshold", "2", "--key", keys[0], "--key", keys[1])
	if code != 0 || !prefixLine.MatchString(out) {
		t.Fatalf("id create: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	for i, s := range serials {
		if want := fmt.Sprintf("auths-agent: next key for key %d: piv:serial=%s;slot=82?pin-source=env:PIVPIN\n", i, s); !strings.Contains(stderr, want) {
			t.Errorf("id create: stderr %q lacks %q", stderr, want)
		}
	}
	prefix := strings.TrimSpace(out)

	ra.stop(t)
	startAgent(t, agentEnv, sock, args...)
	cmd := []string{"id", "rotate", "--registry", reg, "--id", prefix}
	for _, s := range serials {
		cmd = append(cmd, "--key", fmt.Sprintf("piv:serial=%s;slot=82", s))
	}
	code, stdout, stderr := r.cli(t, sock, cmd...)
	if code != 0 || !regexp.MustCompile(`^committed `+prefix+` s=1 E[A-Za-z0-9_-]{43}\n$`).MatchString(stdout) {
		t.Fatalf("id rotate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for i, s := range serials {
		if want := fmt.Sprintf("auths-agent: next key for key %d: piv:serial=%s;slot=83?pin-source=env:PIVPIN\n", i, s); !strings.Contains(stderr, want) {
			t.Errorf("id rotate: stderr %q lacks %q", stderr, want)
		}
	}
	ver := run1(t, nil, dir, "", bin, "kel", "verify", "--registry", reg, prefix)
	if !regexp.MustCompile(`(?m)^sn         1\nkeys       (1AAJ[A-Za-z0-9_-]{44} ?){2}\nthreshold  2\n`).MatchString(ver) {
		t.Errorf("kel verify:\n%s", ver)
	}
}
