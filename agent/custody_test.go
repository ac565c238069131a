package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// custodyRig is a SoftHSM token t1 (PIN 1234) with Ed25519 keys at the
// given labels; it returns the rig and each label's CESR public key and
// key id.
func custodyRig(t *testing.T, labels ...string) (*softhsm.Rig, map[string]string, map[string][]byte) {
	t.Helper()
	rig, err := softhsm.New(filepath.Join(t.TempDir(), "softhsm"), softhsm.Token{Label: "t1", PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rig.Remove() })
	t.Setenv("SOFTHSM2_CONF", rig.Conf)
	p, err := pkcs11.Open(rig.Module, pkcs11.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pub, ids := map[string]string{}, map[string][]byte{}
	for _, label := range labels {
		u, err := hsm.ParsePKCS11URI(rig.URI("t1", label))
		if err != nil {
			t.Fatal(err)
		}
		info, err := p.Generate(context.Background(), u, kel.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		pub[label], ids[label] = info.Verfer.QB64(), info.ID
	}
	return rig, pub, ids
}

// inception is an unsigned inception event whose one current key is key.
func inception(t *testing.T, key string) *kel.Event {
	t.Helper()
	e, err := kel.NewInception(kel.InceptionSpec{Keys: []string{key}, Threshold: kel.SimpleThreshold(1),
		NextDigests: []string{kel.NextKeyDigest(key)}, NextThreshold: kel.SimpleThreshold(1)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestDeniedKeyHeldOnce: key A (object k0, any identity) and key B, the
// key at k0-next1 named by its id only and restricted to identity X. The
// first request's PIN prompt is cancelled, so the agent cannot open A or
// B when it searches the token for next keys and finds k0-next1 beside A.
// Afterwards an inception by k0-next1 (whose prefix is not X) is refused
// by B's policy: the key is not held a second time with A's looser
// policy. Before the fix the copy signed it.
func TestDeniedKeyHeldOnce(t *testing.T) {
	rig, pub, ids := custodyRig(t, "k0", "k0-next1")
	const idX = "EXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
	var id strings.Builder
	for _, c := range ids["k0-next1"] {
		fmt.Fprintf(&id, "%%%02X", c)
	}
	mod := "?module-path=" + rig.Module
	cfg := Config{Keys: []KeySpec{
		{URI: "pkcs11:token=t1;object=k0" + mod, Uses: []Use{UseKERI}},
		{URI: "pkcs11:token=t1;id=" + id.String() + mod, Uses: []Use{UseKERI}, Identities: []string{idX}},
	}}
	var cancelled atomic.Bool
	cancelled.Store(true)
	o := NewTokenOpener(TokenOptions{Prompt: func(ctx context.Context, what string) (string, error) {
		if cancelled.Load() {
			return "", errors.New("pinentry: operation cancelled")
		}
		return "1234", nil
	}})
	defer o.Close()
	a, err := New(cfg, Options{Opener: o})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	e := inception(t, pub["k0-next1"])
	if _, err := a.SignEvent(ctx, e.Raw()); err == nil {
		t.Fatal("signed with the PIN prompt cancelled")
	}
	cancelled.Store(false)
	sigs, err := a.SignEvent(ctx, e.Raw())
	if !errors.Is(err, ErrPolicy) {
		t.Fatalf("inception by k0-next1 (restricted to %s) for %s: signatures %v, err %v; want refused by policy", idX, e.Prefix, sigs, err)
	}
}

// TestSSHKeyNotController: an SSH key of the config at k0-next1, beside
// the controller key k0 on the token. The search for next keys finds it
// under another URI (with its id=); it stays an SSH key only: listed
// once, and an inception by it is not signed. Before the fix it was held
// a second time as a controller key with k0's policy and signed.
func TestSSHKeyNotController(t *testing.T) {
	rig, pub, _ := custodyRig(t, "k0", "k0-next1")
	cfg := Config{Keys: []KeySpec{
		{URI: rig.URI("t1", "k0"), Uses: []Use{UseKERI}},
		{URI: rig.URI("t1", "k0-next1"), Uses: []Use{UseSSH}},
	}}
	a := tokenAgent(t, cfg, Options{})
	ctx := context.Background()
	list, err := a.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var uses [][]Use
	for _, k := range list {
		if k.PublicKey == pub["k0-next1"] {
			uses = append(uses, k.Uses)
		}
	}
	if len(uses) != 1 || len(uses[0]) != 1 || uses[0][0] != UseSSH {
		t.Errorf("the SSH key k0-next1 is held with uses %v, want once, for ssh only", uses)
	}
	e := inception(t, pub["k0-next1"])
	if sigs, err := a.SignEvent(ctx, e.Raw()); !errors.Is(err, ErrNoKey) {
		t.Errorf("inception by the SSH key: signatures %v, err %v; want no held controller key", sigs, err)
	}
}

// TestNextKeyKeepsPINValue: k0's URI carries its PIN as pin-value and the
// agent has no PIN prompt. The next key found beside it signs after the
// token sessions were closed (lock, SIGHUP), which needs a login with
// k0's PIN. Before the fix the found key's URI had lost the pin-value and
// the login failed for want of a PIN.
func TestNextKeyKeepsPINValue(t *testing.T) {
	rig, pub, _ := custodyRig(t, "k0", "k0-next1")
	cfg := Config{Keys: []KeySpec{{URI: rig.URI("t1", "k0"), Uses: []Use{UseKERI}}}}
	a := tokenAgent(t, cfg, Options{})
	ctx := context.Background()
	list, err := a.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range list {
		if strings.Contains(k.URI, "1234") {
			t.Errorf("keys@auths.dev shows a PIN: %s", k.URI)
		}
	}
	if err := a.DropSessions(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SignEvent(ctx, inception(t, pub["k0-next1"]).Raw()); err != nil {
		t.Fatalf("inception by the next key after the sessions closed: %v", err)
	}
}

// TestNextKeysStrictestCopy: the config names the key k0 twice, by its
// label (any identity) and by its id (restricted to identity X). A
// contribution by k0 (which names no identity, so a restricted key may
// not make one) is refused, whichever copy the agent finds first: a key
// held twice answers to the strictest of its policies, as signing does
// (matchHeld). Before, next-keys checked only the first copy and made a
// next key for the contribution.
func TestNextKeysStrictestCopy(t *testing.T) {
	rig, pub, ids := custodyRig(t, "k0")
	const idX = "EXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
	var id strings.Builder
	for _, c := range ids["k0"] {
		fmt.Fprintf(&id, "%%%02X", c)
	}
	mod := "?module-path=" + rig.Module + "&pin-value=1234"
	cfg := Config{Keys: []KeySpec{
		{URI: "pkcs11:token=t1;object=k0" + mod, Uses: []Use{UseKERI}},
		{URI: "pkcs11:token=t1;id=" + id.String() + mod, Uses: []Use{UseKERI}, Identities: []string{idX}},
	}}
	a := registryAgent(t, cfg)
	ctx := context.Background()
	if _, err := a.Keys(ctx); err != nil { // opens both copies
		t.Fatal(err)
	}
	next, err := a.NextKeys(ctx, NextKeysSpec{Keys: []string{pub["k0"]}, Generate: true, Contribution: true})
	if !errors.Is(err, ErrPolicy) {
		t.Fatalf("a contribution by k0 (restricted to %s by one copy): next keys %v, err %v; want refused by policy", idX, next, err)
	}
}

// TestNextKeyNeverAnSSHKey: the config's SSH key sits at k0-next1, where
// a next key of the controller key k0 would be. Next keys for k0 never
// reuse it (the identity would commit to an SSH key it could never rotate
// to): a new key k0-next2 is made. Before, the SSH key was handed out as
// k0's next key.
func TestNextKeyNeverAnSSHKey(t *testing.T) {
	rig, pub, _ := custodyRig(t, "k0", "k0-next1")
	cfg := Config{Keys: []KeySpec{
		{URI: rig.URI("t1", "k0"), Uses: []Use{UseKERI}},
		{URI: rig.URI("t1", "k0-next1"), Uses: []Use{UseSSH}},
	}}
	a := registryAgent(t, cfg)
	ctx := context.Background()
	if _, err := a.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	next, err := a.NextKeys(ctx, NextKeysSpec{Keys: []string{pub["k0"]}, Generate: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(next) != 1 || next[0].PublicKey == pub["k0-next1"] || !strings.Contains(next[0].URI, "object=k0-next2") {
		t.Errorf("next keys of k0: %+v; want a new key k0-next2, never the SSH key k0-next1", next)
	}
}

// tokenAgent is an agent on cfg's keys, opened with a TokenOpener of its
// own, with opts otherwise; both are closed at the end of the test.
func tokenAgent(t testing.TB, cfg Config, opts Options) *Agent {
	t.Helper()
	o := NewTokenOpener(TokenOptions{})
	t.Cleanup(func() { o.Close() })
	opts.Opener = o
	a, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// registryAgent is tokenAgent with a new registry.
func registryAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	reg, _, err := registry.Init(context.Background(), filepath.Join(t.TempDir(), "reg"), true)
	if err != nil {
		t.Fatal(err)
	}
	return tokenAgent(t, cfg, Options{Registry: reg})
}
