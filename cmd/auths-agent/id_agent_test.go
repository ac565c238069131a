package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/socket"
	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// idAgentRig is two SoftHSM tokens with a key k0 each (Ed25519 on t1,
// P-256 on t2), a registry, and the URIs to name them: the agent's carry
// the PIN source env:AGENT_PIN, which only the agent's environment sets;
// the CLI's carry none, so a command that opened the tokens itself would
// have no PIN.
type idAgentRig struct {
	rig      *softhsm.Rig
	dir, reg string
	bin      string
	env      []string // SOFTHSM2_CONF
	agentEnv []string // and AGENT_PIN
}

func newIDAgentRig(t *testing.T) *idAgentRig {
	t.Helper()
	dir := t.TempDir()
	rig, err := softhsm.New(filepath.Join(dir, "softhsm"),
		softhsm.Token{Label: "t1", PIN: "1234"}, softhsm.Token{Label: "t2", PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rig.Remove() })
	r := &idAgentRig{rig: rig, dir: dir, reg: filepath.Join(dir, "reg"), bin: agentBinary(t), env: rig.Env()}
	r.agentEnv = append(r.env, "AGENT_PIN=1234")
	run1(t, r.agentEnv, dir, "", r.bin, "key", "generate", "--algorithm", "ed25519", r.agentURI("t1", "k0"))
	run1(t, r.agentEnv, dir, "", r.bin, "key", "generate", "--algorithm", "p256", r.agentURI("t2", "k0"))
	run1(t, r.env, dir, "", r.bin, "registry", "init", r.reg)
	return r
}

// uri names a key as the CLI user does: no PIN attribute.
func (r *idAgentRig) uri(tok, obj string) string {
	return "pkcs11:token=" + tok + ";object=" + obj + "?module-path=" + r.rig.Module
}

// agentURI names a key as the agent's --key does.
func (r *idAgentRig) agentURI(tok, obj string) string {
	return r.uri(tok, obj) + "&pin-source=env:AGENT_PIN"
}

// cli runs the CLI against the agent at sock and returns its exit status,
// stdout and stderr.
func (r *idAgentRig) cli(t *testing.T, sock string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(r.bin, args...)
	cmd.Env = append(os.Environ(), r.env...)
	if sock != "" {
		cmd.Env = append(cmd.Env, "AUTHS_AGENT_SOCK="+sock)
	}
	cmd.Dir = r.dir
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// labels lists the private keys of token tok whose label starts with k0.
func (r *idAgentRig) labels(t *testing.T, tok string) []string {
	t.Helper()
	out := run1(t, r.agentEnv, r.dir, "", r.bin, "key", "list", "pkcs11:token="+tok+"?module-path="+r.rig.Module+"&pin-source=env:AGENT_PIN")
	var labels []string
	for _, l := range strings.Split(out, "\n") {
		if label, _, _ := strings.Cut(l, "\t"); strings.HasPrefix(label, "k0") {
			labels = append(labels, label)
		}
	}
	return labels
}

var prefixLine = regexp.MustCompile(`^E[A-Za-z0-9_-]{43}\n$`)

// TestIDViaAgent: with an agent holding the tokens (and their PIN), id
// create and id rotate go through it: the agent makes the next keys beside
// the current ones, signs the inception, signs the rotation with the next
// keys it made (without a restart), and after a restart finds the next
// keys on its tokens again and signs with them; a next key an abandoned
// attempt made is reused by the retry; kel verify accepts the KEL.
// --no-agent opens the tokens directly (and has no PIN here).
func TestIDViaAgent(t *testing.T) {
	r := newIDAgentRig(t)
	sock := filepath.Join(r.dir, "run", "agent.sock")
	args := []string{"--registry", r.reg, "--key", r.agentURI("t1", "k0"), "--key", r.agentURI("t2", "k0")}
	ra := startAgent(t, r.agentEnv, sock, args...)

	// --no-agent: the CLI opens the tokens itself, and has no PIN.
	code, out, errOut := r.cli(t, sock, "id", "create", "--no-agent", "--registry", r.reg, "--threshold", "2",
		"--key", r.uri("t1", "k0"), "--key", r.uri("t2", "k0"))
	if code == 0 || !strings.Contains(errOut, "PIN") {
		t.Fatalf("id create --no-agent: exit %d, stdout %q, stderr %q; want a failure for want of a PIN", code, out, errOut)
	}
	if l := r.labels(t, "t1"); len(l) != 1 {
		t.Fatalf("keys on t1 after a refused create: %v", l)
	}

	// id create through the agent.
	code, out, errOut = r.cli(t, sock, "id", "create", "--registry", r.reg, "--threshold", "2",
		"--key", r.uri("t1", "k0"), "--key", r.uri("t2", "k0"))
	if code != 0 || !prefixLine.MatchString(out) {
		t.Fatalf("id create: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	prefix := strings.TrimSpace(out)
	for _, want := range []string{
		"auths-agent: next key for key 0: pkcs11:token=t1;object=k0-next1;id=",
		"auths-agent: next key for key 1: pkcs11:token=t2;object=k0-next1;id=",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("id create stderr %q lacks %q", errOut, want)
		}
	}
	if strings.Contains(errOut, "1234") {
		t.Errorf("stderr shows the PIN: %q", errOut)
	}
	// keys@auths.dev shows the next keys beside the keys they were made
	// beside.
	keysOut := run1(t, append(r.env, "AUTHS_AGENT_SOCK="+sock), r.dir, "", r.bin, "agent", "keys")
	for _, tok := range []string{"t1", "t2"} {
		if !regexp.MustCompile(`(?m)\tkeri\t-\tpkcs11:token=` + tok + `;object=k0-next1;`).MatchString(keysOut) {
			t.Errorf("agent keys lacks the next key on %s:\n%s", tok, keysOut)
		}
	}

	// The rotation to the next keys, signed by the keys the agent made in
	// this run, with new next keys made beside them.
	code, out, errOut = r.cli(t, sock, "id", "rotate", "--registry", r.reg, "--id", prefix,
		"--key", r.uri("t1", "k0-next1"), "--key", r.uri("t2", "k0-next1"))
	if code != 0 || !regexp.MustCompile(`^committed `+prefix+` s=1 E[A-Za-z0-9_-]{43}\n$`).MatchString(out) {
		t.Fatalf("id rotate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, want := range []string{
		"auths-agent: next key for key 0: pkcs11:token=t1;object=k0-next2;id=",
		"auths-agent: next key for key 1: pkcs11:token=t2;object=k0-next2;id=",
		"auths-agent: id rotate: " + prefix + " s=1: kt 2 of 2 keys (was 2 of 2), next 2 of 2\n",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("id rotate stderr %q lacks %q", errOut, want)
		}
	}

	// An attempt that makes next keys and never commits (a client that
	// fails after next-keys): the keys stay on the tokens.
	cl, err := socket.Dial(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	held, err := cl.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var cur []string
	for _, tok := range []string{"t1", "t2"} {
		for _, k := range held {
			if strings.HasPrefix(k.URI, "pkcs11:token="+tok+";object=k0-next2;") {
				cur = append(cur, k.PublicKey)
			}
		}
	}
	if len(cur) != 2 {
		t.Fatalf("agent keys: no k0-next2 on both tokens: %+v", held)
	}
	abandoned, err := cl.NextKeys(context.Background(), socket.NextKeysRequest{Prefix: prefix, Keys: cur, Generate: true})
	cl.Close()
	if err != nil || len(abandoned) != 2 || abandoned[0].Reused {
		t.Fatalf("next-keys: %+v %v", abandoned, err)
	}

	// A restart: the agent knows its next keys only from the tokens now.
	ra.stop(t)
	startAgent(t, r.agentEnv, sock, args...)

	code, out, errOut = r.cli(t, sock, "id", "rotate", "--registry", r.reg, "--id", prefix,
		"--key", r.uri("t1", "k0-next2"), "--key", r.uri("t2", "k0-next2"))
	if code != 0 || !regexp.MustCompile(`^committed `+prefix+` s=2 E[A-Za-z0-9_-]{43}\n$`).MatchString(out) {
		t.Fatalf("id rotate after restart: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for i, n := range abandoned {
		want := "auths-agent: next key for key " + string(rune('0'+i)) + ": " + n.URI + " (reused: an earlier attempt left it unused)\n"
		if !strings.Contains(errOut, want) {
			t.Errorf("id rotate after restart: stderr %q lacks %q", errOut, want)
		}
	}
	for _, tok := range []string{"t1", "t2"} {
		if l := r.labels(t, tok); strings.Join(l, " ") != "k0 k0-next1 k0-next2 k0-next3" {
			t.Errorf("keys on %s: %v, want k0 and k0-next1..3, one each", tok, l)
		}
	}

	// The KEL verifies, and its current keys are the k0-next2 keys.
	ver := run1(t, r.env, r.dir, "", r.bin, "kel", "verify", "--registry", r.reg, prefix)
	if !strings.Contains(ver, "sn         2\n") || !strings.Contains(ver, "keys       "+cur[0]+" "+cur[1]+"\n") {
		t.Errorf("kel verify:\n%s", ver)
	}
}

// TestIDViaAgentRefusals: through the agent, a key whose policy names
// identities cannot incept one (its prefix cannot be among them), a key
// the agent does not hold and a registry that is not the agent's are
// refused, each before any key is made.
func TestIDViaAgentRefusals(t *testing.T) {
	r := newIDAgentRig(t)
	cfg := filepath.Join(r.dir, "agent.json")
	os.WriteFile(cfg, []byte(`{"registry": "`+r.reg+`", "keys": [
		{"uri": "`+r.agentURI("t1", "k0")+`", "uses": ["keri"], "identities": ["EKYLUMmNPZeEs77Zvclf0bSN5IN-mLfLpx2ySb-HDlk4"]},
		{"uri": "`+r.agentURI("t2", "k0")+`", "uses": ["keri"]}]}`), 0o600)
	sock := filepath.Join(r.dir, "run", "agent.sock")
	startAgent(t, r.agentEnv, sock, "--config", cfg)

	other := filepath.Join(r.dir, "other")
	run1(t, r.env, r.dir, "", r.bin, "registry", "init", other)
	for _, c := range []struct {
		name   string
		code   int
		args   []string
		stderr string
	}{
		{"policy", 1, []string{"--registry", r.reg, "--threshold", "1", "--key", r.uri("t1", "k0")},
			"auths-agent: id create: agent: next-keys refused: refused by policy: key pkcs11:token=t1;object=k0?module-path=" + r.rig.Module + "&pin-source=env:AGENT_PIN may sign only for the identities its policy names; it cannot incept a new identity\n"},
		{"not held", 2, []string{"--registry", r.reg, "--threshold", "1", "--key", r.uri("t1", "kx")},
			"auths-agent: id create: --key pkcs11:token=t1;object=kx?module-path=" + r.rig.Module + " is not a controller key the agent holds (auths-agent agent keys lists them; --no-agent opens the token directly)\n"},
		{"other registry", 2, []string{"--registry", other, "--threshold", "1", "--key", r.uri("t2", "k0")},
			"auths-agent: id create: next-keys refused: not the agent's registry: the agent's registry is " + r.reg + ", not " + other + "\n"},
	} {
		code, out, errOut := r.cli(t, sock, append([]string{"id", "create"}, c.args...)...)
		if code != c.code || out != "" || errOut != c.stderr {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, stderr %q", c.name, code, out, errOut, c.code, c.stderr)
		}
	}
	for _, tok := range []string{"t1", "t2"} {
		if l := r.labels(t, tok); len(l) != 1 {
			t.Errorf("keys on %s after refusals: %v, want k0 only", tok, l)
		}
	}
}

// TestIDViaAgentNextKeyPolicy: a next key the agent finds on its token has
// the policy of the key it sits beside: beside a key restricted to another
// identity, it does not sign (or get next keys for) this identity's
// rotation.
func TestIDViaAgentNextKeyPolicy(t *testing.T) {
	r := newIDAgentRig(t)
	// The identity, created without an agent (this command has the PIN).
	prefix := strings.TrimSpace(run1(t, r.agentEnv, r.dir, "", r.bin, "id", "create", "--registry", r.reg, "--threshold", "1",
		"--key", r.agentURI("t1", "k0")))
	cfg := filepath.Join(r.dir, "agent.json")
	os.WriteFile(cfg, []byte(`{"registry": "`+r.reg+`", "keys": [
		{"uri": "`+r.agentURI("t1", "k0")+`", "uses": ["keri"], "identities": ["EKYLUMmNPZeEs77Zvclf0bSN5IN-mLfLpx2ySb-HDlk4"]}]}`), 0o600)
	sock := filepath.Join(r.dir, "run", "agent.sock")
	startAgent(t, r.agentEnv, sock, "--config", cfg)
	code, out, errOut := r.cli(t, sock, "id", "rotate", "--registry", r.reg, "--id", prefix, "--key", r.uri("t1", "k0-next1"))
	want := "auths-agent: id rotate: agent: next-keys refused: refused by policy: key pkcs11:token=t1;object=k0-next1;id="
	if code != 1 || out != "" || !strings.HasPrefix(errOut, want) || !strings.HasSuffix(errOut, " may not sign for identity "+prefix+"\n") {
		t.Fatalf("id rotate: exit %d, stdout %q, stderr %q; want exit 1, %q…", code, out, errOut, want)
	}
	if l := r.labels(t, "t1"); strings.Join(l, " ") != "k0 k0-next1" {
		t.Errorf("keys on t1: %v, want k0 and k0-next1 only", l)
	}
}

// TestIDViaAgentRetry: an id create through the agent that fails after the
// agent made the next keys (its audit trail cannot be appended to, so it
// signs nothing) names the keys it left; the retry reuses them, and the
// tokens hold one next key each.
func TestIDViaAgentRetry(t *testing.T) {
	r := newIDAgentRig(t)
	sock := filepath.Join(r.dir, "run", "agent.sock")
	trail := filepath.Join(r.dir, "audit.jsonl")
	startAgent(t, r.agentEnv, sock, "--registry", r.reg, "--audit-file", trail,
		"--key", r.agentURI("t1", "k0"), "--key", r.agentURI("t2", "k0"))
	if err := os.WriteFile(trail, []byte("not an audit entry\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"id", "create", "--registry", r.reg, "--threshold", "2", "--key", r.uri("t1", "k0"), "--key", r.uri("t2", "k0")}
	code, out, errOut := r.cli(t, sock, args...)
	if code != 1 || out != "" {
		t.Fatalf("id create with a broken audit trail: exit %d, stdout %q, stderr %q; want exit 1", code, out, errOut)
	}
	left := regexp.MustCompile(`(?m)^auths-agent: id create: left unused on the tokens: (pkcs11:token=t1;object=k0-next1;id=[^ ,]+), (pkcs11:token=t2;object=k0-next1;id=[^ ,]+) \(a retry reuses them; or remove them with auths-agent key delete --yes URI\)$`).FindStringSubmatch(errOut)
	if left == nil || !strings.Contains(errOut, "the last line is not an audit entry") {
		t.Fatalf("id create with a broken audit trail: stderr %q; want the audit error and the keys left", errOut)
	}
	if n := strings.TrimSpace(run1(t, nil, r.dir, "", "git", "-C", r.reg, "rev-list", "--count", "refs/auths/registry")); n != "1" {
		t.Errorf("registry commits after the failed create: %s, want 1 (the init)", n)
	}

	if err := os.WriteFile(trail, nil, 0o600); err != nil { // repaired
		t.Fatal(err)
	}
	code, out, errOut = r.cli(t, sock, args...)
	if code != 0 || !prefixLine.MatchString(out) {
		t.Fatalf("retry: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for i, uri := range left[1:] {
		want := fmt.Sprintf("auths-agent: next key for key %d: %s (reused: an earlier attempt left it unused)\n", i, uri)
		if !strings.Contains(errOut, want) {
			t.Errorf("retry: stderr %q lacks %q", errOut, want)
		}
	}
	for _, tok := range []string{"t1", "t2"} {
		if l := r.labels(t, tok); strings.Join(l, " ") != "k0 k0-next1" {
			t.Errorf("keys on %s: %v, want k0 and one k0-next1", tok, l)
		}
	}
}

// TestThresholdText: the thresholds the CLI sends the agent parse back to
// the same threshold, counts above 9 (hex in KERI) and weighted ones too.
func TestThresholdText(t *testing.T) {
	for _, text := range []string{"1", "2", "10", "1/2,1/2,1/2", `[["1/2","1/2"],["1"]]`} {
		want, err := kel.ParseThresholdText(text)
		if err != nil {
			t.Fatal(err)
		}
		got, err := kel.ParseThresholdText(thresholdText(want))
		if err != nil || got.Text() != want.Text() || got.String() != want.String() {
			t.Errorf("%s: sent as %s, parsed back as %v (%v)", text, thresholdText(want), got.Text(), err)
		}
	}
}
