package socket_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/kel"
)

// exampleAgent serves, for the examples, an agent holding the two keys of
// a new 2-of-2 identity on tokens sock-1 and sock-2, at $AUTHS_AGENT_SOCK
// until stop. It returns the identity, a digest to seal, and stop.
// Setup failures panic: an example has no *testing.T.
func exampleAgent() (prefix, seal string, stop func()) {
	t := &exampleT{}
	reg := newRegistry(t)
	k1, k2 := newKey(t, tokens[0], kel.Ed25519), newKey(t, tokens[1], kel.Ed25519)
	prefix = incept(t, reg, "2", k1, k2)
	sock := serve(t, agent.Config{Keys: keri(k1, k2)}, reg)
	old, had := os.LookupEnv("AUTHS_AGENT_SOCK")
	os.Setenv("AUTHS_AGENT_SOCK", sock)
	return prefix, kel.NextKeyDigest(verfer(t, k1)), func() {
		if had {
			os.Setenv("AUTHS_AGENT_SOCK", old)
		} else {
			os.Unsetenv("AUTHS_AGENT_SOCK")
		}
		t.cleanup()
	}
}

// exampleT is the part of testing.TB the rig's helpers use, for examples.
type exampleT struct {
	testing.TB // nil: a helper calling another method panics, failing the example
	cleanups   []func()
	dirs       []string
}

func (*exampleT) Helper()                      {}
func (*exampleT) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (*exampleT) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (*exampleT) Errorf(f string, args ...any) { fmt.Fprintf(os.Stderr, f+"\n", args...) }
func (e *exampleT) Cleanup(f func())           { e.cleanups = append(e.cleanups, f) }
func (e *exampleT) TempDir() string {
	d, err := os.MkdirTemp("", "auths-socket-example-")
	if err != nil {
		panic(err)
	}
	e.dirs = append(e.dirs, d)
	return d
}

func (e *exampleT) cleanup() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	for _, d := range e.dirs {
		os.RemoveAll(d)
	}
}

// TestReadmeGoClient: the README's Go client is ExampleClient_Anchor, which
// runs: every line of its go block appears, in order, in example_test.go.
func TestReadmeGoClient(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "\n```go\n")
	if !ok {
		t.Fatal("README.md has no go block")
	}
	block, _, _ = strings.Cut(block, "\n```\n")
	_, rest, ok := strings.Cut(string(example), "func ExampleClient_Anchor() {")
	if !ok {
		t.Fatal("example_test.go has no ExampleClient_Anchor")
	}
	rest, _, _ = strings.Cut(rest, "\n}\n")
	for _, l := range strings.Split(block, "\n") {
		l = strings.TrimSpace(l)
		i := strings.Index(rest, l)
		if i < 0 {
			t.Fatalf("README.md's go block line %q is not in ExampleClient_Anchor (or not in order)", l)
		}
		rest = rest[i+len(l):]
	}
}
