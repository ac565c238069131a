package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func u64(n uint64) *uint64 { return &n }

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// entries are one of each kind the agent writes.
func entries() []Entry {
	return []Entry{
		{Time: t0, Outcome: Signed, Peer: Peer{UID: 1000, PID: 4242, Exe: "/usr/bin/auths-agent"}, Op: "sign-event",
			Key: "piv:serial=12345678;slot=9c", Prefix: "EAbc", Type: "ixn", Sn: u64(3), SAID: "EBsaid"},
		{Time: t0.Add(time.Second), Outcome: Refused, Peer: Peer{UID: 1000, PID: 4243, Exe: "/usr/bin/git"}, Op: "sign-event",
			Prefix: "EAbc", Type: "ixn", Sn: u64(5), Reason: "not the next event of EAbc (sn 5, want 4)"},
		{Time: t0.Add(2 * time.Second), Outcome: Signed, Peer: Peer{UID: 1000, PID: 4244, Exe: "/usr/bin/ssh-keygen"}, Op: "ssh-sign",
			Key: "pkcs11:token=ci;object=ssh", Fingerprint: "SHA256:abc", What: "sshsig", Namespace: "git"},
		{Time: t0.Add(3 * time.Second), Outcome: Signed, Peer: Peer{UID: 1000, PID: 4245, Exe: "/usr/bin/ssh"}, Op: "ssh-sign",
			Key: "pkcs11:token=ci;object=ssh", Fingerprint: "SHA256:abc", What: "userauth", HostKey: "SHA256:host"},
		{Time: t0.Add(4 * time.Second), Outcome: Refused, Peer: Peer{UID: 1000, PID: 4246}, Op: "sign-event", Reason: "audit test"},
	}
}

func writeTrail(t *testing.T) (string, [][]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "auths-agent", "audit.jsonl")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, e := range entries() {
		if err := s.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, bytes.SplitAfter(data, []byte("\n"))[:5]
}

func TestAppendAndVerify(t *testing.T) {
	path, lines := writeTrail(t)
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", p, st.Mode().Perm(), want)
		}
	}
	// The exact first line: the fields of a KERI signature, seq 1, the
	// genesis prev.
	wantFirst := `{"seq":1,"time":"2026-12-01T12:00:00Z","outcome":"signed","peer":{"uid":1000,"pid":4242,"exe":"/usr/bin/auths-agent"},"op":"sign-event","key":"piv:serial=12345678;slot=9c","prefix":"EAbc","type":"ixn","sn":3,"said":"EBsaid","prev":"` + Genesis + "\"}\n"
	if string(lines[0]) != wantFirst {
		t.Errorf("line 1:\n%s\nwant\n%s", lines[0], wantFirst)
	}
	if g := sha256.Sum256([]byte("auths-agent audit trail v1")); Genesis != hex.EncodeToString(g[:]) {
		t.Errorf("Genesis = %s", Genesis)
	}
	for i := 1; i < len(lines); i++ {
		var e Entry
		if err := json.Unmarshal(lines[i], &e); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(bytes.TrimSuffix(lines[i-1], []byte("\n")))
		if e.Seq != uint64(i+1) || e.Prev != hex.EncodeToString(h[:]) {
			t.Errorf("line %d: seq %d prev %s, want seq %d and the hash of line %d", i+1, e.Seq, e.Prev, i+1, i)
		}
	}
	if !bytes.Contains(lines[3], []byte(`"what":"userauth","host_key":"SHA256:host"`)) ||
		!bytes.Contains(lines[1], []byte(`"outcome":"refused"`)) || !bytes.Contains(lines[1], []byte(`"reason":"not the next event`)) {
		t.Errorf("SSH or refusal fields missing:\n%s%s", lines[1], lines[3])
	}

	f, _ := os.Open(path)
	defer f.Close()
	var seen []string
	head, err := Verify(f, func(_ []byte, e Entry) error { seen = append(seen, e.Op); return nil })
	if err != nil {
		t.Fatal(err)
	}
	last := sha256.Sum256(bytes.TrimSuffix(lines[4], []byte("\n")))
	if head.Lines != 5 || head.Hash != hex.EncodeToString(last[:]) || len(seen) != 5 {
		t.Errorf("head %+v, saw %d lines", head, len(seen))
	}

	// A second Sink (as after a restart) continues the chain.
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(Entry{Time: t0, Outcome: Signed, Op: "anchor"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	f2, _ := os.Open(path)
	defer f2.Close()
	if head, err := Verify(f2, nil); err != nil || head.Lines != 6 {
		t.Errorf("after reopening: %+v, %v", head, err)
	}
}

// TestVerifyNamesTheBadLine: each way of damaging the file is named at the
// line where it happened.
func TestVerifyNamesTheBadLine(t *testing.T) {
	_, lines := writeTrail(t)
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	edited := bytes.Replace(lines[2], []byte(`"namespace":"git"`), []byte(`"namespace":"file"`), 1)
	for _, c := range []struct {
		name string
		data []byte
		line int
		want string
	}{
		{"edited line 3", join(lines[0], lines[1], edited, lines[3], lines[4]), 3, "line 3: edited: its hash is not the prev of line 4"},
		{"line 3 removed", join(lines[0], lines[1], lines[3], lines[4]), 3, "line 3: seq 4 where 3 was expected: a line was removed or moved"},
		{"lines 2 and 3 swapped", join(lines[0], lines[2], lines[1], lines[3], lines[4]), 2, "line 2: seq 3 where 2 was expected"},
		{"first line removed", join(lines[1], lines[2], lines[3], lines[4]), 1, "line 1: seq 2 where 1 was expected"},
		{"last line cut short", join(lines[0], lines[1], lines[2], lines[3], lines[4][:40]), 5, "line 5: cut short (no newline at the end)"},
		{"garbage line", join(lines[0], []byte("not json\n"), lines[2]), 2, "line 2: not a JSON audit entry"},
		{"seq kept, prev forged", join(bytes.Replace(lines[0], []byte(Genesis), []byte(strings.Repeat("0", 64)), 1), lines[1]), 1, "line 1: prev is not the genesis hash"},
		{"overlong line", join(lines[0], bytes.Repeat([]byte("x"), MaxLine+10)), 2, "line 2: longer than 65536 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(c.data), nil)
			var bad *BadLineError
			if !errors.As(err, &bad) || bad.Line != c.line || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("Verify: %v, want %q", err, c.want)
			}
		})
	}
}

// TestAppendRefusesAfterDamage: a file whose end is not a whole entry is
// not appended to; the error says to verify it.
func TestAppendRefusesAfterDamage(t *testing.T) {
	path, lines := writeTrail(t)
	for _, tail := range [][]byte{lines[4][:30], []byte("garbage\n")} {
		data := append(bytes.Join(lines[:4], nil), tail...)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Append(Entry{Outcome: Signed, Op: "sign-event"})
		s.Close()
		if err == nil || !strings.Contains(err.Error(), "run auths-agent audit --verify") {
			t.Errorf("append after %q: %v", tail, err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
			t.Errorf("the damaged file was appended to")
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	wide := filepath.Join(dir, "wide.jsonl")
	os.WriteFile(wide, nil, 0o644)
	os.Chmod(wide, 0o644)
	if _, err := Open(wide); err == nil || !strings.Contains(err.Error(), "mode 0644 lets others read or write it (want 0600)") {
		t.Errorf("Open of a 0644 file: %v", err)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Open(filepath.Join(file, "audit.jsonl")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Open under a file: %v", err)
	}
}

// TestUnwritable: when the file cannot grow (here RLIMIT_FSIZE, which binds
// root as well, in a child process), Append fails and the file keeps only
// whole lines.
func TestUnwritable(t *testing.T) {
	if os.Getenv("AUDIT_CHILD") == "1" {
		s, err := Open(os.Getenv("AUDIT_PATH"))
		if err != nil {
			os.Stdout.WriteString("open: " + err.Error())
			return
		}
		err = s.Append(Entry{Outcome: Signed, Op: "sign-event", Reason: strings.Repeat("r", 200)})
		os.Stdout.WriteString("append: " + err.Error())
		return
	}
	path, lines := writeTrail(t)
	st, _ := os.Stat(path)
	cmd := exec.Command("prlimit", "--fsize="+strconv.FormatInt(st.Size()+10, 10), os.Args[0], "-test.run=^TestUnwritable$")
	cmd.Env = append(os.Environ(), "AUDIT_CHILD=1", "AUDIT_PATH="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "append: audit trail "+path+": write: file too large") {
		t.Errorf("child said %q", out)
	}
	// The short write was cut off again: the file holds its five whole
	// lines, and the chain verifies.
	data, _ := os.ReadFile(path)
	if !bytes.Equal(data, bytes.Join(lines, nil)) {
		t.Errorf("the file changed:\n%s", data)
	}
	if _, err := Verify(bytes.NewReader(data), nil); err != nil {
		t.Error(err)
	}
}

// TestConcurrentAppends: goroutines of two Sinks (as two processes would
// hold) append to one file through the flock; the chain holds every line once, in order.
func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var sinks []*Sink
	for range 2 {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sinks = append(sinks, s)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if err := sinks[g%2].Append(Entry{Outcome: Signed, Op: "sign-event", SAID: strconv.Itoa(g*100 + i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	f, _ := os.Open(path)
	defer f.Close()
	saids := map[string]bool{}
	head, err := Verify(f, func(_ []byte, e Entry) error { saids[e.SAID] = true; return nil })
	if err != nil || head.Lines != 200 || len(saids) != 200 {
		t.Errorf("head %+v, %d distinct entries, %v", head, len(saids), err)
	}
}

func TestDefaultPath(t *testing.T) {
	env := map[string]string{"XDG_STATE_HOME": "/s", "HOME": "/h"}
	get := func(k string) string { return env[k] }
	if p, err := DefaultPath(get); err != nil || p != "/s/auths-agent/audit.jsonl" {
		t.Errorf("%s %v", p, err)
	}
	env["XDG_STATE_HOME"] = "relative"
	if p, err := DefaultPath(get); err != nil || p != "/h/.local/state/auths-agent/audit.jsonl" {
		t.Errorf("%s %v", p, err)
	}
	env["HOME"] = ""
	if _, err := DefaultPath(get); err == nil {
		t.Error("no HOME: no error")
	}
}

func TestPeerExe(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got := PeerExe(os.Getpid()); got != self {
		t.Errorf("PeerExe(self) = %q, want %q", got, self)
	}
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if got, want := PeerExe(cmd.Process.Pid), "/usr/bin/sleep"; got != want {
		if resolved, _ := filepath.EvalSymlinks(want); got != resolved {
			t.Errorf("PeerExe(sleep) = %q, want %q", got, want)
		}
	}
	if got := PeerExe(-1); got != "" {
		t.Errorf("PeerExe(-1) = %q", got)
	}
}

// TestGroupCommit: lines written while an fsync is in flight wait for it
// and are then covered together by one more fsync, not one each; a Sync of
// a line an earlier fsync covered returns without flushing again.
func TestGroupCommit(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	calls := 0
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	flush := s.fsync
	s.fsync = func() error {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			entered <- struct{}{}
			<-release
		}
		return flush()
	}
	w0, err := s.Write(entries()[0])
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 11)
	go func() { done <- s.Sync(w0) }()
	<-entered // the first fsync is in flight and covers w0 only
	const n = 10
	ws := make([]Written, n)
	for i := range n {
		if ws[i], err = s.Write(entries()[i%5]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		go func() { done <- s.Sync(ws[i]) }()
	}
	time.Sleep(50 * time.Millisecond) // let the syncs queue behind the first
	close(release)
	for range n + 1 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ws[3]); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Errorf("%d fsyncs for 11 lines written around one in flight, want 2", calls)
	}
	f, err := os.Open(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if h, err := Verify(f, nil); err != nil || h.Lines != n+1 {
		t.Fatalf("Verify: %+v, %v; want %d lines", h, err, n+1)
	}
}

// TestFailedFsyncStops: after an fsync failed, the sink records nothing
// more: Linux may have dropped the pages it could not write, and a later
// fsync would succeed without them.
func TestFailedFsyncStops(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fail := true
	flush := s.fsync
	s.fsync = func() error {
		if fail {
			return &os.PathError{Op: "sync", Path: s.Path(), Err: errors.New("input/output error")}
		}
		return flush()
	}
	err = s.Append(entries()[0])
	if err == nil || !strings.Contains(err.Error(), "fsync: input/output error") {
		t.Fatalf("Append with a failing fsync: %v", err)
	}
	fail = false
	_, err = s.Write(entries()[1])
	if err == nil || !strings.Contains(err.Error(), "fsync: input/output error (restart the agent") {
		t.Fatalf("Write after a failed fsync: %v, want the fsync's error", err)
	}
	if err := s.Append(entries()[1]); err == nil {
		t.Fatal("Append after a failed fsync succeeded")
	}
}
