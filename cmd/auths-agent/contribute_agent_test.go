package main

import (
	"os"
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

// TestContributeViaAgent: with an agent holding the member's token (and
// its PIN; the CLI has none, as when a card is busy in the agent), id
// contribute goes through the agent: it makes the next key beside the
// held key and the line carries both; a retry prints the same line,
// reusing that next key; the line incepts (through the agent, which signs
// for both keys). --no-agent opens the token here (and has no PIN). A
// --next-key the agent does not hold is refused with a one-line error, by
// id contribute and id create alike; one it holds (the next key it found)
// is used. A key restricted to named identities does not contribute.
func TestContributeViaAgent(t *testing.T) {
	r := newIDAgentRig(t)
	sock := filepath.Join(r.dir, "run", "agent.sock")
	startAgent(t, r.agentEnv, sock, "--registry", r.reg, "--key", r.agentURI("t1", "k0"), "--key", r.agentURI("t2", "k0"))
	lineRE := regexp.MustCompile(`^auths-agent-contribution/1 key=(1AAJ\S{44}) next=(E\S{43})\n$`)
	contrib := []string{"id", "contribute", "--registry", r.reg, "--key", r.uri("t2", "k0")}

	code, out, errOut := r.cli(t, sock, append(contrib[:2:2], append([]string{"--no-agent"}, contrib[2:]...)...)...)
	if code == 0 || out != "" || !strings.Contains(errOut, "PIN") {
		t.Fatalf("id contribute --no-agent: exit %d, stdout %q, stderr %q; want a failure for want of a PIN", code, out, errOut)
	}

	code, out, errOut = r.cli(t, sock, contrib...)
	m := lineRE.FindStringSubmatch(out)
	first := regexp.MustCompile(`^auths-agent: next key for key 0: (pkcs11:token=t2;object=k0-next1;id=\S+)\n$`).FindStringSubmatch(errOut)
	if code != 0 || m == nil || first == nil {
		t.Fatalf("id contribute through the agent: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	line := strings.TrimSuffix(out, "\n")
	held := run1(t, append(r.env, "AUTHS_AGENT_SOCK="+sock), r.dir, "", r.bin, "agent", "keys")
	if !strings.Contains(held, m[1]+"\t") {
		t.Fatalf("the contributed key %s is not among the agent's keys:\n%s", m[1], held)
	}

	// The retry: the same line, the next key reused.
	code, out, errOut = r.cli(t, sock, contrib...)
	if code != 0 || out != line+"\n" || errOut != "auths-agent: next key for key 0: "+first[1]+" (reused: an earlier attempt left it unused)\n" {
		t.Fatalf("retry of id contribute: exit %d, stdout %q, stderr %q; want %q again", code, out, errOut, line)
	}
	if l := r.labels(t, "t2"); strings.Join(l, " ") != "k0 k0-next1" {
		t.Errorf("keys on t2: %v, want k0 and one k0-next1", l)
	}

	// --next-key: refused when the agent does not hold it ("other" on t2
	// is no next key of k0: the agent does not hold it), used when it
	// does.
	run1(t, r.agentEnv, r.dir, "", r.bin, "key", "generate", "--algorithm", "p256", r.agentURI("t2", "other"))
	wantRefusal := func(what string, args ...string) {
		t.Helper()
		code, out, errOut := r.cli(t, sock, args...)
		want := "auths-agent: " + what + ": --next-key " + r.uri("t2", "other") + " is not a key the agent holds (auths-agent agent keys lists them; --no-agent opens the token directly)\n"
		if code != 2 || out != "" || errOut != want {
			t.Errorf("%s with a --next-key the agent does not hold: exit %d, stdout %q, stderr %q; want exit 2, %q", what, code, out, errOut, want)
		}
	}
	wantRefusal("id contribute", append(contrib, "--next-key", r.uri("t2", "other"))...)
	wantRefusal("id create", "id", "create", "--registry", r.reg, "--threshold", "1", "--key", r.uri("t1", "k0"), "--next-key", r.uri("t2", "other"))
	code, out, errOut = r.cli(t, sock, append(contrib, "--next-key", r.uri("t2", "k0-next1"))...)
	if code != 0 || out != line+"\n" || errOut != "" {
		t.Fatalf("id contribute with the held next key as --next-key: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, line)
	}

	// The line incepts; the agent holds both keys and commits.
	code, out, errOut = r.cli(t, sock, "id", "create", "--registry", r.reg, "--threshold", "2",
		"--key", r.uri("t1", "k0"), "--contribution", line)
	if code != 0 || !prefixLine.MatchString(out) {
		t.Fatalf("id create with the contribution: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	prefix := strings.TrimSpace(out)
	show := run1(t, r.env, r.dir, "", r.bin, "kel", "verify", "--json", "--registry", r.reg, prefix)
	if !strings.Contains(show, m[1]) || !strings.Contains(show, m[2]) {
		t.Errorf("the KEL lacks the contributed key or next digest:\n%s", show)
	}
	// Its next key is now the identity's: the next contribution makes
	// another.
	code, out, errOut = r.cli(t, sock, contrib...)
	if code != 0 || out == line+"\n" || !lineRE.MatchString(out) || !strings.Contains(errOut, "next key for key 0: pkcs11:token=t2;object=k0-next2;") {
		t.Errorf("id contribute after the inception: exit %d, stdout %q, stderr %q; want a new next key k0-next2", code, out, errOut)
	}
}

// TestContributeViaAgentPolicy: a key the agent's policy restricts to
// named identities does not contribute (the contribution may go to an
// inception, whose prefix cannot be named), as it does not incept; nothing
// is made on the token.
func TestContributeViaAgentPolicy(t *testing.T) {
	r := newIDAgentRig(t)
	cfg := filepath.Join(r.dir, "agent.json")
	os.WriteFile(cfg, []byte(`{"registry": "`+r.reg+`", "keys": [
		{"uri": "`+r.agentURI("t2", "k0")+`", "uses": ["keri"], "identities": ["EKYLUMmNPZeEs77Zvclf0bSN5IN-mLfLpx2ySb-HDlk4"]}]}`), 0o600)
	sock := filepath.Join(r.dir, "run", "agent.sock")
	startAgent(t, r.agentEnv, sock, "--config", cfg)
	code, out, errOut := r.cli(t, sock, "id", "contribute", "--registry", r.reg, "--key", r.uri("t2", "k0"))
	want := "auths-agent: id contribute: agent: next-keys refused: refused by policy: key pkcs11:token=t2;object=k0"
	if code != 1 || out != "" || !strings.HasPrefix(errOut, want) ||
		!strings.HasSuffix(errOut, " may sign only for the identities its policy names; it cannot contribute to an event for an identity not named (as it cannot incept one)\n") {
		t.Fatalf("id contribute with a restricted key: exit %d, stdout %q, stderr %q; want exit 1, %q…", code, out, errOut, want)
	}
	if l := r.labels(t, "t2"); strings.Join(l, " ") != "k0" {
		t.Errorf("keys on t2: %v, want k0 only", l)
	}
}

// TestContributeViaAgentPending: a next key that a pending proposal
// commits to is taken: after the agent's contribution went into an
// inception that waits for a third member, the next contribution through
// the agent makes another next key instead of handing out the same one.
func TestContributeViaAgentPending(t *testing.T) {
	r := newIDAgentRig(t)
	sock := filepath.Join(r.dir, "run", "agent.sock")
	startAgent(t, r.agentEnv, sock, "--registry", r.reg, "--key", r.agentURI("t1", "k0"), "--key", r.agentURI("t2", "k0"))
	contrib := []string{"id", "contribute", "--registry", r.reg, "--key", r.uri("t2", "k0")}
	code, line, errOut := r.cli(t, sock, contrib...)
	if code != 0 || !strings.Contains(errOut, "object=k0-next1;") {
		t.Fatalf("id contribute: exit %d, stdout %q, stderr %q", code, line, errOut)
	}
	// A third member, on no token the agent holds (contributed directly).
	run1(t, r.agentEnv, r.dir, "", r.bin, "key", "generate", "--algorithm", "p256", r.agentURI("t1", "m"))
	third := run1(t, r.agentEnv, r.dir, "", r.bin, "id", "contribute", "--registry", r.reg, "--key", r.agentURI("t1", "m"))
	code, out, errOut := r.cli(t, sock, "id", "create", "--registry", r.reg, "--threshold", "3",
		"--key", r.uri("t1", "k0"), "--contribution", strings.TrimSpace(line), "--contribution", strings.TrimSpace(third))
	if code != 0 || !strings.HasSuffix(out, ": 3 of 3, has indexes 0, 1\n") {
		t.Fatalf("id create: exit %d, stdout %q, stderr %q; want it pending for the third member", code, out, errOut)
	}
	code, out, errOut = r.cli(t, sock, contrib...)
	if code != 0 || out == line || !strings.Contains(errOut, "object=k0-next2;") || strings.Contains(errOut, "reused") {
		t.Fatalf("id contribute while the proposal waits: exit %d, stdout %q, stderr %q; want a new next key k0-next2", code, out, errOut)
	}
}

// TestContributeViaAgentFreshClone: a member contributes before any
// registry reached its clone (a fresh git repository, as in the
// three-machine scenario): through the agent as directly, nothing is in
// use yet and the line is printed.
func TestContributeViaAgentFreshClone(t *testing.T) {
	r := newIDAgentRig(t)
	fresh := filepath.Join(r.dir, "fresh")
	run1(t, nil, r.dir, "", "git", "init", "-q", fresh)
	sock := filepath.Join(r.dir, "run", "agent.sock")
	startAgent(t, r.agentEnv, sock, "--registry", fresh, "--key", r.agentURI("t2", "k0"))
	code, out, errOut := r.cli(t, sock, "id", "contribute", "--registry", fresh, "--key", r.uri("t2", "k0"))
	if code != 0 || !strings.HasPrefix(out, "auths-agent-contribution/1 key=1AAJ") || !strings.Contains(errOut, "object=k0-next1;") {
		t.Fatalf("id contribute on a fresh clone: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
