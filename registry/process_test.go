package registry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperMain runs in a child process (the test binary re-executed): a writer
// that commits batches to REGISTRY_DIR and prints "ack K" after each one.
//
// Mode "kel": the process owns the identity of seed REGISTRY_ID; batch K
// appends its event s=K (batch 0 is the inception) and stores the
// attestation of device did:key:z6MkW<ID>N<K>. After a restart it resumes
// from the registry's tip. Mode "attest": batch K stores one attestation
// only.
func helperMain(role string) int {
	dir := os.Getenv("REGISTRY_DIR")
	name := os.Getenv("REGISTRY_ID")
	total, _ := strconv.Atoi(os.Getenv("REGISTRY_N"))
	n := 0
	clock := func() time.Time {
		n++
		return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Millisecond)
	}
	opts := []Option{WithClock(clock),
		WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil)))}
	if n, err := strconv.Atoi(os.Getenv("REGISTRY_MAXPACKS")); err == nil {
		opts = append(opts, WithMaxPacks(n))
	}
	r, err := Open(dir, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	switch role {
	case "kel":
		return helperKEL(ctx, r, name, total)
	case "attest":
		for k := 0; k < total; k++ {
			did := fmt.Sprintf("did:key:z6MkA%sN%d", name, k)
			var b Batch
			attestBatch(&b, did, fmt.Sprintf("r%s-%d", name, k))
			if _, err := r.CommitRetry(ctx, &b, 1000); err != nil {
				fmt.Fprintln(os.Stderr, "commit:", err)
				return 1
			}
			fmt.Printf("ack %d\n", k)
		}
		return 0
	}
	return 2
}

func helperKEL(ctx context.Context, r *Registry, name string, total int) int {
	id, icp, err := newTestID(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := r.Snapshot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := 0
	if st, err := s.KeyState(id.st.Prefix); err == nil {
		id.st = st
		start = int(st.Sequence) + 1
	} else if !errors.Is(err, ErrNotFound) {
		fmt.Fprintln(os.Stderr, "state:", err)
		return 1
	}
	for k := start; k < total; k++ {
		var b Batch
		did := fmt.Sprintf("did:key:z6MkW%sN%d", name, k)
		if k == 0 {
			b.Append(icp) // an inception cannot anchor: no attestation
		} else {
			doc := attestationDoc(id.st.Prefix, did, fmt.Sprintf("r%s-%d", name, k))
			b.StoreAttestation(did, doc)
			se, err := id.ixn(anchorSeal(doc))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			b.Append(se)
		}
		if _, err := r.CommitRetry(ctx, &b, 1000); err != nil {
			fmt.Fprintln(os.Stderr, "commit:", err)
			return 1
		}
		fmt.Printf("ack %d\n", k)
	}
	return 0
}

// child is a running helper process and the acks it printed.
type child struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	acks   []int
	stderr strings.Builder
	done   chan struct{}
}

func startHelper(t *testing.T, role, dir, name string, n int, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REGISTRY_TEST_HELPER="+role, "REGISTRY_DIR="+dir,
		"REGISTRY_ID="+name, "REGISTRY_N="+strconv.Itoa(n))
	cmd.Env = append(cmd.Env, env...)
	c := &child{cmd: cmd, done: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{mu: &c.mu, w: &c.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if k, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				v, _ := strconv.Atoi(k)
				c.mu.Lock()
				c.acks = append(c.acks, v)
				c.mu.Unlock()
			}
		}
		io.Copy(io.Discard, out)
	}()
	return c
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// wait waits for the process and returns its exit error.
func (c *child) wait() error {
	<-c.done
	return c.cmd.Wait()
}

func (c *child) ackList() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.acks...)
}

// checkKELWriter checks, after writers of mode kel, that identity name has
// exactly the events 0..tip, verifies, and that the device of every acked
// batch is present.
func checkKELWriter(t *testing.T, s *Snapshot, name string, acked []int) uint64 {
	t.Helper()
	id, _, err := newTestID(name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Verify(id.st.Prefix)
	if len(acked) == 0 && errors.Is(err, ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("identity %s: %v", name, err)
	}
	for _, k := range acked {
		if uint64(k) > st.Sequence {
			t.Errorf("identity %s: batch %d acknowledged, tip is s=%d", name, k, st.Sequence)
		}
		did := fmt.Sprintf("did:key:z6MkW%sN%d", name, k)
		if _, err := s.Attestation(did); err != nil && k > 0 {
			t.Errorf("batch %d acknowledged, %v", k, err)
		}
	}
	return st.Sequence
}

func TestConcurrentProcesses(t *testing.T) {
	const procs, batches = 8, 50
	dir := newGitRepo(t, false)
	var children []*child
	for p := 0; p < procs; p++ {
		children = append(children, startHelper(t, "kel", dir, fmt.Sprintf("P%d", p), batches))
	}
	for p, c := range children {
		if err := c.wait(); err != nil {
			t.Fatalf("writer %d: %v\n%s", p, err, c.stderr.String())
		}
		if n := len(c.ackList()); n != batches {
			t.Errorf("writer %d acknowledged %d batches, want %d", p, n, batches)
		}
	}
	fsck(t, dir)
	r := openTest(t, dir)
	s, err := r.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range children {
		if tip := checkKELWriter(t, s, fmt.Sprintf("P%d", p), c.ackList()); tip != batches-1 {
			t.Errorf("writer %d: tip s=%d, want %d", p, tip, batches-1)
		}
	}
	m, _ := s.Metadata()
	if m.IdentityCount != procs || m.DeviceCount != procs*(batches-1) {
		t.Errorf("metadata %+v, want %d identities and %d devices", m, procs, procs*(batches-1))
	}
	if n := len(commitLog(t, dir)); n != procs*batches {
		t.Errorf("git log shows %d commits, want %d (one per batch)", n, procs*batches)
	}
}

// TestWithGitUpdateRef runs one writer of ours against a loop of the real
// git making commits on the same ref with git update-ref's own lock-file
// compare-and-swap.
func TestWithGitUpdateRef(t *testing.T) {
	dir := newGitRepo(t, true)
	if _, _, err := Init(bg(), dir, true, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	const batches = 100
	c := startHelper(t, "attest", dir, "G", batches)
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan int)
	go func() {
		won := 0
		defer func() { loopDone <- won }()
		for ctx.Err() == nil {
			cur := strings.TrimSpace(runGit(t, dir, "rev-parse", RegistryRef))
			cmd := exec.Command("git", "-c", "user.name=git", "-c", "user.email=git@example.com",
				"commit-tree", cur+"^{tree}", "-p", cur, "-m", "foreign")
			cmd.Dir = dir
			out, err := cmd.Output()
			if err != nil {
				continue
			}
			upd := exec.Command("git", "update-ref", RegistryRef, strings.TrimSpace(string(out)), cur)
			upd.Dir = dir
			if upd.Run() == nil {
				won++
			}
		}
	}()
	err := c.wait()
	cancel()
	won := <-loopDone
	if err != nil {
		t.Fatalf("writer: %v\n%s", err, c.stderr.String())
	}
	t.Logf("git update-ref won %d times while we committed %d batches", won, batches)
	fsck(t, dir)
	r := openTest(t, dir)
	s, _ := r.Snapshot()
	for _, k := range c.ackList() {
		did := fmt.Sprintf("did:key:z6MkAGN%d", k)
		if _, err := s.Attestation(did); err != nil {
			t.Errorf("batch %d: %v", k, err)
		}
	}
	if n := len(c.ackList()); n != batches {
		t.Errorf("%d batches acknowledged, want %d", n, batches)
	}
	if n := len(commitLog(t, dir)); n != 1+batches+won {
		t.Errorf("%d commits, want %d", n, 1+batches+won)
	}
}

// TestCrash kills a writer at random moments until it has made 200
// commits, checking the registry after each kill.
func TestCrash(t *testing.T) {
	dir := newGitRepo(t, false)
	crashWriter(t, dir, 200, func(rng *rand.Rand) time.Duration {
		return time.Duration(5+rng.Intn(60)) * time.Millisecond
	})
}

// crashWriter runs a writer of mode kel on dir, killing it a random
// delay after each start, until it has made total commits; after each
// kill the registry must be intact. The next batch commits at the end.
func crashWriter(t *testing.T, dir string, total int, delay func(*rand.Rand) time.Duration, env ...string) {
	t.Helper()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	var acked []int
	kills, leftovers, tmpLeft := 0, 0, 0
	// On a loaded machine a writer may not get through one commit before
	// its kill: the delays stretch while rounds make no progress.
	stretch := 1.0
	for round := 0; ; round++ {
		if round > 400 {
			t.Fatalf("writer did not finish after %d rounds", round)
		}
		c := startHelper(t, "kel", dir, "crash", total, env...)
		timer := time.AfterFunc(time.Duration(float64(delay(rng))*stretch), func() {
			c.cmd.Process.Signal(syscall.SIGKILL)
		})
		err := c.wait()
		finished := timer.Stop() && err == nil
		acked = append(acked, c.ackList()...)
		if len(c.ackList()) == 0 {
			stretch = min(stretch*1.25, 50)
		} else {
			stretch = max(stretch/1.25, 1)
		}
		if err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("writer failed: %v\n%s", err, c.stderr.String())
			}
			kills++
		}
		data, err := os.ReadFile(dir + "/.git/" + RegistryRef)
		if err == nil && len(strings.TrimSpace(string(data))) != 40 {
			t.Fatalf("ref file holds %q after a kill", data)
		}
		if _, err := os.Stat(dir + "/.git/" + RegistryRef + ".lock"); err == nil {
			// A kill between the lock's creation and its rename: the
			// next writer would wait and fail, as git would. The
			// operator's recovery removes it (no writer runs now).
			leftovers++
			if removed, err := openTest(t, dir).Unlock(); err != nil || len(removed) != 1 {
				t.Fatalf("Unlock after a kill = %v, %v", removed, err)
			}
		}
		if _, other := packFiles(t, dir+"/.git"); slices.ContainsFunc(other, func(name string) bool {
			return strings.HasPrefix(name, tmpPrefix)
		}) {
			tmpLeft++
		}
		fsck(t, dir)
		r := openTest(t, dir)
		s, err := r.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		tip := checkKELWriter(t, s, "crash", acked)
		if t.Failed() {
			return
		}
		if finished || tip == uint64(total-1) {
			break
		}
	}
	t.Logf("%d kills, %d leftover ref locks removed by Unlock, %d times temporary pack files left, %d acknowledged batches", kills, leftovers, tmpLeft, len(acked))
	if n := len(commitLog(t, dir)); n != total {
		t.Errorf("%d commits, want %d", n, total)
	}
	// The next batch commits.
	r := openTest(t, dir)
	var b Batch
	attestBatch(&b, "did:key:z6MkAfterCrash", "after")
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	fsck(t, dir)
}
