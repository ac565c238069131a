package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// TestServeSignsContributedInception: an inception proposed with a
// contribution line waits for the contributed key; `pending sign` through
// an agent that holds that key (and has never seen the identity, which is
// in no registry yet) signs it with the key's index and commits it,
// printing the committed line as for any event.
func TestServeSignsContributedInception(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "con-a", PIN: "1234"}, softhsm.Token{Label: "con-b", PIN: "1234"})
	dir := t.TempDir()
	env := rig.Env()
	bin := agentBinary(t)
	ka, kb := rig.URI("con-a", "k"), rig.URI("con-b", "k")
	run1(t, env, dir, "", bin, "key", "generate", ka)
	run1(t, env, dir, "", bin, "key", "generate", "--algorithm", "p256", kb)
	reg := filepath.Join(dir, "reg")
	run1(t, env, dir, "", "git", "init", "-q", reg)
	line := strings.TrimSpace(run1(t, env, dir, "", bin, "id", "contribute", "--registry", reg, "--key", kb))
	out := run1(t, env, dir, "", bin, "id", "create", "--init", "--registry", reg, "--threshold", "2", "--key", ka, "--contribution", line)
	m := regexp.MustCompile(`^pending (E\S{43}) (E\S{43}): 2 of 2, has index 0\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("id create with a contribution: %q, want pending PREFIX SAID: 2 of 2, has index 0", out)
	}
	prefix, said := m[1], m[2]
	sock := filepath.Join(dir, "b.sock")
	startAgent(t, env, sock, "--registry", reg, "--key", kb)
	out = run1(t, append(env, "AUTHS_AGENT_SOCK="+sock), dir, "", bin, "pending", "sign", "--registry", reg, prefix, said)
	if out != "committed "+prefix+" s=0 "+said+"\n" {
		t.Fatalf("pending sign of the inception through the agent: %q", out)
	}
	out = run1(t, env, dir, "", bin, "kel", "verify", "--registry", reg, prefix)
	if !regexp.MustCompile(`(?m)^sn +0$`).MatchString(out) || !strings.Contains(out, "1AAJ") {
		t.Errorf("kel verify: %s", out)
	}
}
