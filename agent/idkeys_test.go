package agent

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// TestDiscoverNextKeys: on a SoftHSM token, the agent holds the keys
// labelled BASE-nextN beside a controller key BASE (or BASE-nextM) with
// that key's policy, as controller keys only; not keys beside an SSH key,
// not other labels; and not a key found beside two keys with different
// policies. keys@auths.dev names the key each sits beside.
func TestDiscoverNextKeys(t *testing.T) {
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
	pub := map[string]string{}
	for _, label := range []string{"k0", "k0-next1", "k0-next2", "k0-nextx", "other-next1", "s0", "s0-next1"} {
		u, err := hsm.ParsePKCS11URI(rig.URI("t1", label))
		if err != nil {
			t.Fatal(err)
		}
		info, err := p.Generate(context.Background(), u, kel.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		pub[label] = info.Verfer.QB64()
	}
	p.Close()
	const idA, idB = "EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "EBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	keys := func(t *testing.T, cfg Config) map[string]KeyInfo {
		t.Helper()
		o := NewTokenOpener(TokenOptions{}) // one provider per module and process: closed before the next
		defer o.Close()
		a, err := New(cfg, Options{Opener: o})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		list, err := a.Keys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]KeyInfo{}
		for _, k := range list {
			if k.Error != "" {
				t.Errorf("%s: %s", k.URI, k.Error)
			}
			for label, pk := range pub {
				if k.PublicKey == pk {
					if _, dup := out[label]; dup {
						t.Errorf("key %s held twice", label)
					}
					out[label] = k
				}
			}
		}
		return out
	}
	k0 := Config{Keys: []KeySpec{
		{URI: rig.URI("t1", "k0"), Uses: []Use{UseKERI}, Identities: []string{idA}},
		{URI: rig.URI("t1", "s0"), Uses: []Use{UseSSH}},
	}}
	got := keys(t, k0)
	if l := slices.Sorted(maps.Keys(got)); !slices.Equal(l, []string{"k0", "k0-next1", "k0-next2", "s0"}) {
		t.Fatalf("held: %v, want k0, its next keys k0-next1 and k0-next2, and s0", l)
	}
	for _, label := range []string{"k0-next1", "k0-next2"} {
		k := got[label]
		if !slices.Equal(k.Uses, []Use{UseKERI}) || !slices.Equal(k.Policy, []string{idA}) || k.NextOf != got["k0"].URI {
			t.Errorf("%s: uses %v, policy %v, next of %q; want keri only, [%s], next of %s", label, k.Uses, k.Policy, k.NextOf, idA, got["k0"].URI)
		}
	}

	// k0-next1 in the config too (named without its id=, unlike the key
	// found on the token), same policy: held once, k0-next2 beside both.
	same := Config{Keys: []KeySpec{
		{URI: rig.URI("t1", "k0"), Uses: []Use{UseKERI}, Identities: []string{idA}},
		{URI: rig.URI("t1", "k0-next1"), Uses: []Use{UseKERI}, Identities: []string{idA}},
	}}
	got = keys(t, same)
	if l := slices.Sorted(maps.Keys(got)); !slices.Equal(l, []string{"k0", "k0-next1", "k0-next2"}) {
		t.Fatalf("held with k0-next1 in the config: %v, want k0, k0-next1, k0-next2", l)
	}
	if got["k0-next1"].NextOf != "" {
		t.Errorf("k0-next1 of the config held as a next key too")
	}

	// k0-next1 in the config with another policy: k0-next2 sits beside
	// both, so no policy is its; it is not held.
	conflict := Config{Keys: []KeySpec{
		{URI: rig.URI("t1", "k0"), Uses: []Use{UseKERI}, Identities: []string{idA}},
		{URI: rig.URI("t1", "k0-next1"), Uses: []Use{UseKERI}, Identities: []string{idB}},
	}}
	got = keys(t, conflict)
	if l := slices.Sorted(maps.Keys(got)); !slices.Equal(l, []string{"k0", "k0-next1"}) {
		t.Fatalf("held with conflicting policies: %v, want k0 and k0-next1 (from the config) only", l)
	}
	if k := got["k0-next1"]; k.NextOf != "" || !slices.Equal(k.Policy, []string{idB}) {
		t.Errorf("k0-next1 of the config: next of %q, policy %v; want its own policy [%s]", k.NextOf, k.Policy, idB)
	}
}
