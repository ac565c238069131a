package softhsm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// StartOpenSSHAgent runs OpenSSH's ssh-agent on a socket in dir, allowed to
// load the rig's PKCS#11 module, and adds the module's keys with
// `ssh-add -s` (pin reaches ssh-add through an askpass script in dir, never
// its argv). It returns the socket path and a function that stops the
// agent. Benchmarks use it as the peer of our own agent.
func (r *Rig) StartOpenSSHAgent(dir, pin string) (sock string, stop func(), err error) {
	sock = filepath.Join(dir, "openssh.sock")
	// ssh-agent matches the module's real path against its allow-list.
	real, err := filepath.EvalSymlinks(r.Module)
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command("ssh-agent", "-D", "-a", sock, "-P", r.Module+","+real)
	cmd.Env = append(os.Environ(), r.Env()...)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("ssh-agent: %w", err)
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 100 {
			stop()
			return "", nil, fmt.Errorf("ssh-agent: no socket at %s after 2 s", sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
	askpass := filepath.Join(dir, "askpass")
	if err := os.WriteFile(askpass, []byte("#!/bin/sh\necho "+pin+"\n"), 0o700); err != nil {
		stop()
		return "", nil, err
	}
	add := exec.Command("ssh-add", "-s", r.Module)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock, "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	add.Env = append(add.Env, r.Env()...)
	if out, err := add.CombinedOutput(); err != nil {
		stop()
		return "", nil, fmt.Errorf("ssh-add -s: %w: %s", err, out)
	}
	return sock, stop, nil
}
