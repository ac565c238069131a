package socket_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
	"github.com/auths-dev/auths-agent/socket"
	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// The tests serve an agent in-process on a temporary socket, with keys on
// real SoftHSM tokens made by TestMain (SoftHSM reads SOFTHSM2_CONF once
// per process, so the one PKCS#11 provider is opened there and the agent
// reaches it through providerOpener).

const testPIN = "1234"

var tokens = []string{"sock-1", "sock-2", "sock-3"}

// benchTokens: one token for each benchmark, holding only its key
// (benchKey), so that every run of a benchmark, whatever -count and b.N,
// signs on a token of the same size (SoftHSM's per-signature work grows
// with the objects on the token).
var benchTokens = []string{"sock-bench-ssh", "sock-bench-event"}

var (
	rig      *softhsm.Rig
	provider *pkcs11.Provider
	keySeq   atomic.Int64
	// scratch is a directory that lives as long as the test process
	// (benchmark fixtures made once per process).
	scratch string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "auths-socket-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	scratch = dir
	var toks []softhsm.Token
	for _, l := range append(tokens, benchTokens...) {
		toks = append(toks, softhsm.Token{Label: l, PIN: testPIN})
	}
	if rig, err = softhsm.New(filepath.Join(dir, "softhsm"), toks...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := rig.Setenv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if provider, err = pkcs11.Open(rig.Module, pkcs11.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer provider.Close()
	return m.Run()
}

// providerOpener opens pkcs11: URIs with the test process's provider.
type providerOpener struct{}

func (providerOpener) Open(ctx context.Context, uri string) (hsm.Signer, error) {
	u, err := hsm.ParsePKCS11URI(uri)
	if err != nil {
		return nil, err
	}
	return provider.Signer(ctx, u)
}

// newKey generates a key on token and returns its URI.
func newKey(t testing.TB, token string, alg kel.Algorithm) string {
	t.Helper()
	uri := rig.URI(token, fmt.Sprintf("k%d", keySeq.Add(1)))
	u, err := hsm.ParsePKCS11URI(uri)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Generate(context.Background(), u, alg); err != nil {
		t.Fatalf("generate on %s: %v", token, err)
	}
	return uri
}

func openKey(t testing.TB, uri string) hsm.Signer {
	t.Helper()
	s, err := providerOpener{}.Open(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func verfer(t testing.TB, uri string) string {
	t.Helper()
	v, err := hsm.Verfer(openKey(t, uri))
	if err != nil {
		t.Fatal(err)
	}
	return v.QB64()
}

// newRegistry makes an empty registry in a temp dir.
func newRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	reg, _, err := registry.Init(context.Background(), filepath.Join(t.TempDir(), "reg"), true)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// incept commits an identity whose current keys are uris (threshold kt),
// with next keys made beside them, signed by the keys directly (not
// through the agent).
func incept(t testing.TB, reg *registry.Registry, kt string, uris ...string) string {
	t.Helper()
	return inceptWith(t, reg, providerOpener{}, kt, uris...)
}

// inceptWith is incept with keys opened by o.
func inceptWith(t testing.TB, reg *registry.Registry, o agent.Opener, kt string, uris ...string) string {
	t.Helper()
	ctx := context.Background()
	th, err := kel.ParseThresholdText(kt)
	if err != nil {
		t.Fatal(err)
	}
	spec := kel.InceptionSpec{Threshold: th, NextThreshold: th}
	var signers []hsm.Signer
	for _, u := range uris {
		s, err := o.Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := hsm.Verfer(s)
		spec.Keys = append(spec.Keys, v.QB64())
		next := verfer(t, newKey(t, tokens[0], kel.Ed25519))
		spec.NextDigests = append(spec.NextDigests, kel.NextKeyDigest(next))
		signers = append(signers, s)
	}
	a := anchor.New(reg)
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

// serveWith starts a server on a temp socket and returns the socket path;
// the server stops at the end of the test.
func serveWith(t testing.TB, cfg agent.Config, ao agent.Options, opts socket.Options) string {
	t.Helper()
	a, err := agent.New(cfg, ao)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := socket.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if opts.UID == 0 {
		opts.UID = -1
	}
	srv := socket.NewServer(a, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln.UnixListener) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not stop")
		}
		ln.Close()
		a.Close()
	})
	return path
}

// serve is serveWith the test provider.
func serve(t testing.TB, cfg agent.Config, reg *registry.Registry) string {
	t.Helper()
	return serveWith(t, cfg, agent.Options{Opener: providerOpener{}, Registry: reg}, socket.Options{})
}

func dial(t testing.TB, path string) *socket.Client {
	t.Helper()
	c, err := socket.Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func keri(uris ...string) []agent.KeySpec {
	var out []agent.KeySpec
	for _, u := range uris {
		out = append(out, agent.KeySpec{URI: u, Uses: []agent.Use{agent.UseKERI}})
	}
	return out
}
