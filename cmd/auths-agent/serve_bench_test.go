package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// rssKiB reads a VmRSS-like field of /proc/PID/status in KiB.
func rssKiB(b *testing.B, pid int, field string) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// BenchmarkServeRSS: the memory of the real `auths-agent serve` holding a
// SoftHSM P-256 SSH key: resident size idle (after listing its key once)
// and the peak under 64 concurrent clients sending SSH sign requests.
func BenchmarkServeRSS(b *testing.B) {
	rig, err := softhsm.New(filepath.Join(b.TempDir(), "softhsm"), softhsm.Token{Label: "rss", PIN: "1234"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rig.Remove() })
	uri := rig.URI("rss", "ssh")
	bin := agentBinaryB(b)
	if out, err := execEnv(rig.Env(), bin, "key", "generate", "--algorithm", "p256", uri); err != nil {
		b.Fatalf("key generate: %v: %s", err, out)
	}
	sock := filepath.Join(b.TempDir(), "agent.sock")
	ra := startAgentB(b, rig.Env(), sock, "--log-level", "error", "--ssh-key", uri)
	pid := ra.cmd.Process.Pid
	conn, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := sshagent.NewClient(conn).List()
	conn.Close()
	if err != nil || len(keys) != 1 {
		b.Fatalf("List: %v (%d keys)", err, len(keys))
	}
	pub, _ := ssh.ParsePublicKey(keys[0].Blob)
	data := ssh.Marshal(struct {
		Session []byte
		Msg     byte
		User    string
		Service string
		Method  string
		Sign    bool
		Alg     string
		Blob    []byte
	}{bytes.Repeat([]byte{7}, 32), 50, "me", "ssh-connection", "publickey", true, pub.Type(), pub.Marshal()})
	idle := rssKiB(b, pid, "VmRSS")
	b.ResetTimer()
	const clients = 64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("unix", sock)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			c := sshagent.NewClient(conn)
			for j := i; j < b.N; j += clients {
				if _, err := c.Sign(pub, data); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(idle/1024, "idle-RSS-MiB")
	b.ReportMetric(rssKiB(b, pid, "VmHWM")/1024, "peak-RSS-MiB")
}
