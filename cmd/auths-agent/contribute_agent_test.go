package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestIDViaAgentContribution: id create and id rotate through an agent
// that holds one member's key take the other member's contribution: the
// agent makes its own next key, signs with its key, and leaves the event
// pending with the contributed key and next digest in their places (the
// CLI has no PIN here, so it did not open the token itself); the member
// signs on its side and commits. The rotation brings in that member's
// pre-committed next key, contributed as its new current key.
func TestIDViaAgentContribution(t *testing.T) {
	r := newIDAgentRig(t)
	sock := filepath.Join(r.dir, "run", "agent.sock")
	startAgent(t, r.agentEnv, sock, "--registry", r.reg, "--key", r.agentURI("t1", "k0"))
	contribute := func(obj string) (line, next string) {
		t.Helper()
		line = strings.TrimSpace(run1(t, r.agentEnv, r.dir, "", r.bin, "id", "contribute", "--registry", r.reg, "--key", r.agentURI("t2", obj)))
		_, next, _ = strings.Cut(line, " next=")
		return line, next
	}
	pending := regexp.MustCompile(`^pending (E\S{43}) (E\S{43}): `)
	line, next := contribute("k0")
	code, out, errOut := r.cli(t, sock, "id", "create", "--registry", r.reg, "--threshold", "2",
		"--key", r.uri("t1", "k0"), "--contribution", line)
	m := pending.FindStringSubmatch(out)
	if code != 0 || m == nil || !strings.HasSuffix(out, ": 2 of 2, has index 0\n") ||
		!strings.Contains(errOut, "key 1: 1AAJ") || !strings.Contains(errOut, "next key for key 0: pkcs11:token=t1;object=k0-next1;") {
		t.Fatalf("id create through the agent with a contribution: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	prefix, said := m[1], m[2]
	show := run1(t, r.env, r.dir, "", r.bin, "pending", "show", "--registry", r.reg, prefix, said)
	if !strings.Contains(show, `","`+next+`"],`) {
		t.Errorf("the contributed next digest is not the last of n:\n%s", show)
	}
	out = run1(t, r.agentEnv, r.dir, "", r.bin, "pending", "sign", "--no-agent", "--registry", r.reg, "--key", r.agentURI("t2", "k0"), prefix, said)
	if out != "committed "+prefix+" s=0 "+said+"\n" {
		t.Fatalf("pending sign by the contributing member: %q", out)
	}

	// The rotation: the agent's next key, and the member's pre-committed
	// next key (k0-next1 on t2) contributed as its current key.
	line2, _ := contribute("k0-next1")
	code, out, errOut = r.cli(t, sock, "id", "rotate", "--registry", r.reg, "--id", prefix,
		"--key", r.uri("t1", "k0-next1"), "--contribution", line2)
	m = pending.FindStringSubmatch(out)
	if code != 0 || m == nil || !strings.Contains(out, "has indexes 0") && !strings.Contains(out, "has index 0") ||
		!strings.Contains(errOut, "s=1: kt 2 of 2 keys (was 2 of 2), next 2 of 2") {
		t.Fatalf("id rotate through the agent with a contribution: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out = run1(t, r.agentEnv, r.dir, "", r.bin, "pending", "sign", "--no-agent", "--registry", r.reg, "--key", r.agentURI("t2", "k0-next1"), prefix, m[2])
	if out != "committed "+prefix+" s=1 "+m[2]+"\n" {
		t.Fatalf("pending sign of the rotation: %q", out)
	}
	if v := run1(t, r.env, r.dir, "", r.bin, "kel", "verify", "--registry", r.reg, prefix); !regexp.MustCompile(`(?m)^sn +1$`).MatchString(v) {
		t.Errorf("kel verify: %s", v)
	}
}
