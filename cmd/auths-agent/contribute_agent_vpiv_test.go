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

// TestContributeViaAgentPIV: an agent holds a virtual card (piv-go holds
// it exclusively once the agent used it). id contribute --no-agent cannot
// open it (as id contribute did before it went through the agent); through
// the agent it prints the line, its next key in a retired slot, skipping
// slot 82 where a person put a key of their own; the retry prints the same
// line, reusing the slot the agent made (its certificate says so), and so
// does the direct path once the agent stopped. A --next-key on a card the
// agent does not hold is refused with a one-line error.
func TestContributeViaAgentPIV(t *testing.T) {
	serials := rigSerials(t, "id contribute through the agent on PIV needs two cards")
	cardsMu.Lock()
	defer cardsMu.Unlock()
	resetCards(t, serials)
	t.Cleanup(func() { resetCards(t, serials) })
	p := piv.NewProvider(piv.Options{})
	key := fmt.Sprintf("piv:serial=%s;slot=9a", serials[0])
	for _, slot := range []string{"9a", "82"} { // 82: a person's own key
		uri := fmt.Sprintf("piv:serial=%s;slot=%s?pin-value=123456", serials[0], slot)
		if _, err := p.Generate(context.Background(), uri, piv.GenerateOptions{Algorithm: gopiv.AlgorithmEC256}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	dir := t.TempDir()
	bin := agentBinary(t)
	reg := filepath.Join(dir, "reg")
	run1(t, nil, dir, "", bin, "registry", "init", reg)
	sock := filepath.Join(dir, "run", "agent.sock")
	ra := startAgent(t, []string{"PIVPIN=123456"}, sock, "--registry", reg, "--key", key+"?pin-source=env:PIVPIN")
	r := &idAgentRig{dir: dir, bin: bin}
	run1(t, []string{"AUTHS_AGENT_SOCK=" + sock}, dir, "", bin, "agent", "keys") // the agent opens the card

	contrib := []string{"id", "contribute", "--registry", reg, "--key", key + "?pin-value=123456"}
	code, out, errOut := r.cli(t, sock, append([]string{"id", "contribute", "--no-agent"}, contrib[2:]...)...)
	if code == 0 || out != "" {
		t.Fatalf("id contribute --no-agent while the agent holds the card: exit %d, stdout %q, stderr %q; want a failure", code, out, errOut)
	}
	t.Logf("--no-agent while the agent holds the card: %s", strings.TrimSpace(errOut))

	code, out, errOut = r.cli(t, sock, contrib...)
	wantNext := fmt.Sprintf("auths-agent: next key for key 0: piv:serial=%s;slot=83?pin-source=env:PIVPIN", serials[0])
	if code != 0 || !regexp.MustCompile(`^auths-agent-contribution/1 key=1AAJ\S{44} next=E\S{43}\n$`).MatchString(out) || errOut != wantNext+"\n" {
		t.Fatalf("id contribute through the agent: exit %d, stdout %q, stderr %q; want the next key in slot 83", code, out, errOut)
	}
	line := out
	code, out, errOut = r.cli(t, sock, contrib...)
	if code != 0 || out != line || errOut != wantNext+" (reused: an earlier attempt left it unused)\n" {
		t.Fatalf("retry through the agent: exit %d, stdout %q, stderr %q; want %q again, slot 83 reused", code, out, errOut, line)
	}

	// A --next-key on the other card: the agent does not hold it.
	other := fmt.Sprintf("piv:serial=%s;slot=9a", serials[1])
	code, out, errOut = r.cli(t, sock, append(contrib, "--next-key", other)...)
	want := "auths-agent: id contribute: --next-key " + other + " is not a key the agent holds (auths-agent agent keys lists them; --no-agent opens the token directly)\n"
	if code != 2 || out != "" || errOut != want {
		t.Errorf("--next-key the agent does not hold: exit %d, stdout %q, stderr %q; want exit 2, %q", code, out, errOut, want)
	}

	// The direct path, once the agent stopped, reuses the same slot.
	ra.stop(t)
	code, out, errOut = r.cli(t, "", contrib...)
	if code != 0 || out != line || errOut != fmt.Sprintf("auths-agent: next key for key 0: piv:serial=%s;slot=83 (reused: an earlier attempt left it unused)\n", serials[0]) {
		t.Fatalf("retry on the direct path: exit %d, stdout %q, stderr %q; want %q again, slot 83 reused", code, out, errOut, line)
	}
}
