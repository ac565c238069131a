package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestIDViaAgentPendingNextKey: through the real agent, id create with a
// contribution stays pending with the agent's next key k0-next1; a second
// id create with the same key gets a new next key (k0-next2), not the one
// the waiting proposal commits to. Before the fix the agent reused
// k0-next1 and both identities committed to one next key.
func TestIDViaAgentPendingNextKey(t *testing.T) {
	r := newIDAgentRig(t)
	sock := filepath.Join(r.dir, "run", "agent.sock")
	startAgent(t, r.agentEnv, sock, "--registry", r.reg, "--key", r.agentURI("t1", "k0"))
	line := strings.TrimSpace(run1(t, r.agentEnv, r.dir, "", r.bin, "id", "contribute", "--registry", r.reg, "--key", r.agentURI("t2", "k0")))
	code, out, errOut := r.cli(t, sock, "id", "create", "--registry", r.reg, "--threshold", "2",
		"--key", r.uri("t1", "k0"), "--contribution", line)
	if code != 0 || !strings.HasPrefix(out, "pending ") || !strings.Contains(errOut, "next key for key 0: pkcs11:token=t1;object=k0-next1;") {
		t.Fatalf("id create through the agent with a contribution: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = r.cli(t, sock, "id", "create", "--registry", r.reg, "--threshold", "1", "--key", r.uri("t1", "k0"))
	if code != 0 || !strings.Contains(errOut, "next key for key 0: pkcs11:token=t1;object=k0-next2;") || strings.Contains(errOut, "k0-next1") {
		t.Fatalf("second id create through the agent with the same key: exit %d, stdout %q, stderr %q; want a new next key k0-next2", code, out, errOut)
	}
}
