package pkcs11

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// The tests run on real SoftHSM tokens made by TestMain in a private
// directory. SoftHSM reads SOFTHSM2_CONF once per process, so TestMain sets
// it before the one provider of this process is opened.
//
// Some tests re-run this test binary as a child process (a second process
// finding the keys again, the wrong PIN counted through pkcs11-spy). A child
// inherits SOFTHSM2_CONF and gets childEnv; it does not make tokens.
const (
	childEnv  = "AUTHS_PKCS11_TEST_CHILD"  // the name of the child test to run
	moduleEnv = "AUTHS_PKCS11_TEST_MODULE" // the module a child loads instead of SoftHSM
	testPIN   = "1234"
)

// The tokens TestMain makes. "dup" exists twice: a label matching several tokens.
var testTokens = []softhsm.Token{
	{Label: "ci-1", PIN: testPIN}, {Label: "ci-2", PIN: testPIN}, {Label: "ci-3", PIN: testPIN},
	{Label: "pin-test", PIN: testPIN}, {Label: "dup", PIN: testPIN}, {Label: "dup", PIN: testPIN},
	{Label: "bench-1", PIN: testPIN}, {Label: "bench-2", PIN: testPIN},
}

var (
	testModule   string    // the module the provider loaded
	softhsmPath  string    // libsofthsm2.so
	testProvider *Provider // the one provider of this process
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	var err error
	softhsmPath, err = softhsm.ModulePath()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if os.Getenv(childEnv) == "" {
		dir, err := os.MkdirTemp("", "auths-pkcs11-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		rig, err := softhsm.New(filepath.Join(dir, "softhsm"), testTokens...)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := rig.Setenv(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	testModule = softhsmPath
	if m := os.Getenv(moduleEnv); m != "" {
		testModule = m
	}
	testProvider, err = Open(testModule, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testProvider.Close()
	return m.Run()
}

// uri returns the URI of key object on token label, with the test PIN.
func uri(label, object string) string {
	s := "pkcs11:token=" + label
	if object != "" {
		s += ";object=" + object
	}
	return s + "?module-path=" + testModule + "&pin-value=" + testPIN
}

func mustURI(t testing.TB, s string) *hsm.PKCS11URI {
	t.Helper()
	u, err := hsm.ParsePKCS11URI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// runChild runs the test named name in a new process of this test binary,
// with extra environment, and returns its stdout. The child fails the
// calling test if it exits non-zero.
func runChild(t *testing.T, name string, env ...string) string {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + name}, env...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v\nstdout:\n%s\nstderr:\n%s", name, err, out, stderr.String())
	}
	return string(out)
}

// isChild reports whether this process is the child running test t; the
// test does nothing in the parent process.
func isChild(t *testing.T) bool { return os.Getenv(childEnv) == t.Name() }
