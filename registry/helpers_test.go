package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"github.com/auths-dev/auths-agent/internal/attesttest"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/internal/vectors"
	"github.com/auths-dev/auths-agent/kel"
)

func TestMain(m *testing.M) {
	if role := os.Getenv("REGISTRY_TEST_HELPER"); role != "" {
		os.Exit(helperMain(role))
	}
	if _, err := exec.LookPath("git"); err != nil {
		fmt.Fprintln(os.Stderr, "registry tests need the real git binary on PATH (make test installs it):", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// vectorStream returns the keripy two-event KEL stream, failing loudly when
// the vectors are missing.
func vectorStream(t testing.TB) ([]byte, [][]byte) {
	t.Helper()
	var stream []byte
	var events [][]byte
	for _, name := range vectors.Names {
		data, err := vectors.File(name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".json") {
			events = append(events, data)
		}
		stream = append(stream, data...)
	}
	return stream, events
}

func fixedClock() func() time.Time {
	return func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 678_000_000, time.UTC) }
}

// runGit runs the real git binary in dir and returns its stdout.
func runGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// newGitRepo creates a repository with the real git binary.
func newGitRepo(t testing.TB, bare bool) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"init", "-q"}
	if bare {
		args = append(args, "--bare")
	}
	runGit(t, dir, append(args, dir)...)
	return dir
}

// fsck runs git fsck --strict and fails on any complaint.
func fsck(t testing.TB, dir string) {
	t.Helper()
	runGit(t, dir, "fsck", "--strict", "--no-progress", "--no-dangling")
}

func openTest(t testing.TB, dir string, opts ...Option) *Registry {
	t.Helper()
	opts = append([]Option{WithClock(fixedClock()), WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, nil)))}, opts...)
	r, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

func commitLog(t testing.TB, dir string) []string {
	t.Helper()
	return strings.Fields(runGit(t, dir, "log", "--format=%H", RegistryRef))
}

// testID is an identity with one Ed25519 key (kt=1), signed in the test.
type testID struct {
	key  ed25519.PrivateKey
	next ed25519.PrivateKey
	st   *kel.KeyState
}

func seedKey(seed string) ed25519.PrivateKey {
	var s [32]byte
	copy(s[:], seed)
	return ed25519.NewKeyFromSeed(s[:])
}

func keyQB64(k ed25519.PrivateKey) string {
	v, err := kel.VerferFromPublicKey(k.Public())
	if err != nil {
		panic(err)
	}
	return v.QB64()
}

func sign(k ed25519.PrivateKey, idx int, e *kel.Event) kel.SignedEvent {
	return kel.SignedEvent{Event: e, Sigs: []kel.Siger{kel.NewSiger(kel.Ed25519, idx, idx, ed25519.Sign(k, e.Raw()))}}
}

// newTestID builds and signs an inception; the state advances only when the
// caller applies the event (see advance).
func newTestID(seed string) (*testID, kel.SignedEvent, error) {
	id := &testID{key: seedKey(seed + "/0"), next: seedKey(seed + "/1")}
	e, err := kel.NewInception(kel.InceptionSpec{
		Keys: []string{keyQB64(id.key)}, Threshold: kel.SimpleThreshold(1),
		NextDigests: []string{kel.NextKeyDigest(keyQB64(id.next))}, NextThreshold: kel.SimpleThreshold(1),
	})
	if err != nil {
		return nil, kel.SignedEvent{}, err
	}
	se := sign(id.key, 0, e)
	id.st, err = kel.Apply(nil, se)
	return id, se, err
}

// clone returns a copy whose events do not advance id.
func (id *testID) clone() *testID { c := *id; return &c }

// ixn builds, signs and applies the next interaction event.
func (id *testID) ixn(seals ...json.RawMessage) (kel.SignedEvent, error) {
	e, err := kel.NewInteraction(id.st, seals)
	if err != nil {
		return kel.SignedEvent{}, err
	}
	se := sign(id.key, 0, e)
	st, err := kel.Apply(id.st, se)
	if err != nil {
		return kel.SignedEvent{}, err
	}
	id.st = st
	return se, nil
}

// attestationDoc is an auths attestation of did issued by the identity
// issuer, signed by a device key derived from did.
func attestationDoc(issuer, did, rid string) []byte {
	return attesttest.Doc(issuer, did, rid)
}

// anchorSeal is the digest seal that anchors doc.
func anchorSeal(doc []byte) json.RawMessage {
	said, err := kel.AttestationSAID(doc)
	if err != nil {
		panic(err)
	}
	return kel.DigestSeal(said)
}

// attestBatch adds to b an attestation of did and what anchors it: the
// inception of an identity of its own and an interaction event sealing
// the attestation's SAID.
func attestBatch(b *Batch, did, rid string) {
	id, icp, err := newTestID("issuer of " + did)
	if err != nil {
		panic(err)
	}
	doc := attestationDoc(id.st.Prefix, did, rid)
	ixn, err := id.ixn(anchorSeal(doc))
	if err != nil {
		panic(err)
	}
	b.Append(icp)
	b.Append(ixn)
	b.StoreAttestation(did, doc)
}

func bg() context.Context { return context.Background() }

const (
	time100ms = 100 * time.Millisecond
	time2s    = 2 * time.Second
)

func nowMinus(sec int) time.Time { return time.Now().Add(-time.Duration(sec) * time.Second) }
func sleepMs(ms int)             { time.Sleep(time.Duration(ms) * time.Millisecond) }

func newTestLogger(w *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{mu: new(sync.Mutex), w: w}, nil))
}
