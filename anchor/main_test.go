package anchor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/internal/attesttest"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// The tests sign with keys on real SoftHSM tokens that TestMain makes in a
// private directory; SoftHSM reads SOFTHSM2_CONF once per process, so
// TestMain sets it before the one provider of this process is opened. The
// escrow test re-runs this binary as a child process (helperEnv names what
// it does); a child inherits SOFTHSM2_CONF and makes no tokens.
const (
	helperEnv = "AUTHS_ANCHOR_TEST_HELPER"
	testPIN   = "1234"
)

var tokenLabels = []string{"anchor-1", "anchor-2", "anchor-3", "anchor-4"}

var (
	rig      *softhsm.Rig
	provider *pkcs11.Provider
	module   string
	keySeq   atomic.Int64
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	var err error
	module, err = softhsm.ModulePath()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	helper := os.Getenv(helperEnv)
	if helper == "" {
		dir, err := os.MkdirTemp("", "auths-anchor-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		var toks []softhsm.Token
		for _, l := range tokenLabels {
			toks = append(toks, softhsm.Token{Label: l, PIN: testPIN})
		}
		rig, err = softhsm.New(filepath.Join(dir, "softhsm"), toks...)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := rig.Setenv(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	provider, err = pkcs11.Open(module, pkcs11.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer provider.Close()
	if helper != "" {
		if err := runHelper(helper); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		return 0
	}
	return m.Run()
}

func keyURI(token, label string) string {
	return "pkcs11:token=" + token + ";object=" + label + "?module-path=" + module + "&pin-value=" + testPIN
}

func parseURI(t testing.TB, s string) *hsm.PKCS11URI {
	t.Helper()
	u, err := hsm.ParsePKCS11URI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// newKey generates a key on token and returns its signer and URI.
func newKey(t testing.TB, token string, alg kel.Algorithm) (hsm.Signer, string) {
	t.Helper()
	uri := keyURI(token, fmt.Sprintf("k%d-%d", os.Getpid(), keySeq.Add(1)))
	ctx := context.Background()
	if _, err := provider.Generate(ctx, parseURI(t, uri), alg); err != nil {
		t.Fatalf("generate on %s: %v", token, err)
	}
	s, err := provider.Signer(ctx, parseURI(t, uri))
	if err != nil {
		t.Fatal(err)
	}
	return s, uri
}

func openKey(t testing.TB, uri string) hsm.Signer {
	t.Helper()
	s, err := provider.Signer(context.Background(), parseURI(t, uri))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func qb64(t testing.TB, s hsm.Signer) string {
	t.Helper()
	v, err := hsm.Verfer(s)
	if err != nil {
		t.Fatal(err)
	}
	return v.QB64()
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newRegistry makes a non-bare git repository with an empty registry.
func newRegistry(t testing.TB) (*registry.Registry, string) {
	t.Helper()
	dir := t.TempDir()
	reg, _, err := registry.Init(context.Background(), dir, false, registry.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	return reg, dir
}

// incept makes an identity whose current keys are signers (all sign) and
// whose next keys are next.
func incept(t testing.TB, a *anchor.Anchorer, signers []hsm.Signer, kt string, next []hsm.Signer, nt string) string {
	t.Helper()
	ctx := context.Background()
	spec := kel.InceptionSpec{Threshold: mustThreshold(t, kt), NextThreshold: mustThreshold(t, nt)}
	for _, s := range signers {
		spec.Keys = append(spec.Keys, qb64(t, s))
	}
	for _, s := range next {
		spec.NextDigests = append(spec.NextDigests, kel.NextKeyDigest(qb64(t, s)))
	}
	p, err := a.Incept(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anchor.Sign(ctx, p, signers); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Commit(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p.Prefix()
}

func mustThreshold(t testing.TB, s string) kel.Threshold {
	t.Helper()
	th, err := kel.ParseThresholdText(s)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// git runs the real git binary in dir and returns its stdout.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func fsck(t testing.TB, dir string) {
	t.Helper()
	// git fails on errors; it also prints notices (an unborn HEAD: the
	// registry lives under its own ref) and dangling objects (earlier
	// commits of removed pending refs), which are not damage.
	out := git(t, dir, "fsck", "--strict", "--no-progress", "--no-dangling")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "notice:") {
			t.Errorf("git fsck --strict: %s", out)
			break
		}
	}
}

// fixedClock is a clock tests move by hand.
type fixedClock struct{ now atomic.Int64 }

func newClock(t time.Time) *fixedClock {
	c := &fixedClock{}
	c.now.Store(t.UnixNano())
	return c
}
func (c *fixedClock) Now() time.Time      { return time.Unix(0, c.now.Load()).UTC() }
func (c *fixedClock) Add(d time.Duration) { c.now.Add(int64(d)) }

// attestation is an auths attestation of did issued by prefix, signed by
// a device key derived from did, in auths' legacy form.
func attestation(prefix, did string, n int) []byte {
	ts := time.Date(2026, 1, 2, 3, 4, 5, n*1000, time.UTC)
	return attesttest.Legacy(attesttest.NewDevice(did).Attestation(prefix, did, fmt.Sprintf("rid%05d", n), ts, false))
}

// revocation is attestation with revoked_at set.
func revocation(prefix, did string, n int) []byte {
	ts := time.Date(2026, 1, 2, 3, 4, 5, n*1000, time.UTC)
	return attesttest.NewDevice(did).Attestation(prefix, did, fmt.Sprintf("rid%05d", n), ts, true).Pretty()
}
