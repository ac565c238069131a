package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"
	"golang.org/x/sys/unix"

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
	rig := newRig(b, softhsm.Token{Label: "rss", PIN: "1234"})
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

// BenchmarkServeSSHSign: ssh-agent sign requests to the real `auths-agent
// serve` process and to OpenSSH's ssh-agent holding the same SoftHSM P-256
// key (ssh-add -s), both separate processes, the same client loop (one
// connection each, requests alternating), medians in µs. socket's
// BenchmarkSSHSign runs our server inside the benchmark's process; this one
// pays the same process boundary as OpenSSH.
//
// auths-median-us is the agent as it runs: its audit trail on the same
// disk as the test's temporary directory, and every signature waits for
// its record's fsync (overlapped with the token's signature, see
// docs/DESIGN.md). A second `serve`, alternating with the two, keeps its
// trail on tmpfs (/dev/shm), where fsync returns at once: the same code and
// the same audit lines, without the disk's flush. Its median,
// auths-tmpfs-audit-median-us, is the agent's own cost; the goal is the
// first figure. On this machine an fsync of an appended line alone takes
// ≈300-400 µs idle (O_DSYNC, fdatasync and overwriting a preallocated file
// cost the same: the device flush dominates), about half of OpenSSH's whole
// request, so the 0.35× goal cannot be met with a durable record per
// signature.
func BenchmarkServeSSHSign(b *testing.B) {
	rig := newRig(b, softhsm.Token{Label: "sshb", PIN: "1234"})
	uri := rig.URI("sshb", "ssh")
	bin := agentBinaryB(b)
	if out, err := execEnv(rig.Env(), bin, "key", "generate", "--algorithm", "p256", uri); err != nil {
		b.Fatalf("key generate: %v: %s", err, out)
	}
	dir := b.TempDir()
	ours := filepath.Join(dir, "agent.sock")
	startAgentB(b, rig.Env(), ours, "--log-level", "error", "--ssh-key", uri)
	shm, err := os.MkdirTemp("/dev/shm", "auths-bench-")
	if err != nil {
		b.Fatalf("tmpfs for the second agent's audit trail: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(shm) })
	if fs := statfsType(b, shm); fs != unix.TMPFS_MAGIC {
		b.Fatalf("%s is not on tmpfs (file system type %#x)", shm, fs)
	}
	oursTmpfs := filepath.Join(dir, "agent-tmpfs.sock")
	startAgentB(b, rig.Env(), oursTmpfs, "--log-level", "error", "--ssh-key", uri, "--audit-file", filepath.Join(shm, "audit.jsonl"))

	theirs, stopTheirs, err := rig.StartOpenSSHAgent(dir, "1234")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stopTheirs)

	var pub ssh.PublicKey
	client := func(name, sock string) sshagent.ExtendedAgent {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		c := sshagent.NewClient(conn)
		keys, err := c.List()
		if err != nil || len(keys) != 1 {
			b.Fatalf("%s: List: %v (%d keys)", name, err, len(keys))
		}
		k, err := ssh.ParsePublicKey(keys[0].Blob)
		if err != nil {
			b.Fatal(err)
		}
		if pub != nil && !bytes.Equal(pub.Marshal(), k.Marshal()) {
			b.Fatalf("%s lists another key than the other agent", name)
		}
		pub = k
		return c
	}
	a, m, o := client("auths-agent", ours), client("auths-agent with its audit trail on tmpfs", oursTmpfs), client("ssh-agent", theirs)
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
	var ta, tm, to []time.Duration
	b.ResetTimer()
	for range b.N {
		for _, s := range []struct {
			c   sshagent.ExtendedAgent
			out *[]time.Duration
		}{{a, &ta}, {o, &to}, {m, &tm}} {
			start := time.Now()
			sig, err := s.c.Sign(pub, data)
			*s.out = append(*s.out, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if err := pub.Verify(data, sig); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds()) / 1e3
	}
	b.ReportMetric(median(ta), "auths-median-us")
	b.ReportMetric(median(tm), "auths-tmpfs-audit-median-us")
	b.ReportMetric(median(to), "openssh-median-us")
}

// statfsType is the file system type (f_type of statfs(2)) of path.
func statfsType(b *testing.B, path string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		b.Fatal(err)
	}
	return int64(st.Type)
}
