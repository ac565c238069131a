//go:build vpiv

package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"

	gopiv "github.com/go-piv/piv-go/v2/piv"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

// TestPIVSSHKeyNotController: on a virtual PIV card, an SSH key of the
// config in the retired slot 90 (its URI names no PIN) and a controller
// key in slot 9d with pin-source=env:. The search for next keys finds
// slot 90 under a URI with 9d's PIN source; it stays an SSH key only,
// and an inception by it is not signed. Before the fix it was held as a
// controller key with 9d's policy and signed.
func TestPIVSSHKeyNotController(t *testing.T) {
	ctx := context.Background()
	p := piv.NewProvider(piv.Options{})
	card, pub := pivKeys(t, p, "9d", "90")
	p.Close()
	t.Setenv("YK_PIN", "123456")
	cfg := Config{Keys: []KeySpec{
		{URI: card + "90", Uses: []Use{UseSSH}},
		{URI: card + "9d?pin-source=env:YK_PIN", Uses: []Use{UseKERI}},
	}}
	a := tokenAgent(t, cfg, Options{})
	list, err := a.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var uses [][]Use
	for _, k := range list {
		if k.PublicKey == pub["90"] {
			uses = append(uses, k.Uses)
		}
	}
	if len(uses) != 1 || len(uses[0]) != 1 || uses[0][0] != UseSSH {
		t.Errorf("the SSH key in slot 90 is held with uses %v, want once, for ssh only", uses)
	}
	if sigs, err := a.SignEvent(ctx, inception(t, pub["90"]).Raw()); !errors.Is(err, ErrNoKey) {
		t.Errorf("inception by the SSH key: signatures %v, err %v; want no held controller key", sigs, err)
	}
}

// TestPIVUnmarkedRetiredKeyNotHeld: a key a person put in a retired slot
// (slot 91, made as key generate makes keys, without NextPIV's
// certificate) on a card whose slot 9d holds a controller key is not held
// as a next key of 9d, and an inception by it is not signed; a key NextPIV
// made on the same card is held, as a next key of 9d. Before, every key
// in slots 82-95 was held as a controller key with 9d's policy.
func TestPIVUnmarkedRetiredKeyNotHeld(t *testing.T) {
	ctx := context.Background()
	p := piv.NewProvider(piv.Options{})
	card, pub := pivKeys(t, p, "9d", "91")
	u, err := hsm.ParsePIVURI(card + "9d?pin-value=123456")
	if err != nil {
		t.Fatal(err)
	}
	nu, made, _, err := NextPIV(ctx, p, u, kel.Ed25519, func(string) bool { return false })
	if err != nil {
		t.Fatalf("NextPIV: %v", err)
	}
	if nu.Slot == 0x91 {
		t.Fatalf("NextPIV took the person's key in slot 91")
	}
	p.Close()
	t.Setenv("YK_PIN", "123456")
	a := tokenAgent(t, Config{Keys: []KeySpec{{URI: card + "9d?pin-source=env:YK_PIN", Uses: []Use{UseKERI}}}}, Options{})
	list, err := a.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var heldMade bool
	for _, k := range list {
		if k.PublicKey == pub["91"] {
			t.Errorf("the person's key in slot 91 is held (uses %v, next of %q)", k.Uses, k.NextOf)
		}
		heldMade = heldMade || k.PublicKey == made && k.NextOf != ""
	}
	if !heldMade {
		t.Errorf("the key NextPIV made in slot %02x is not held as a next key: %+v", nu.Slot, list)
	}
	if sigs, err := a.SignEvent(ctx, inception(t, pub["91"]).Raw()); !errors.Is(err, ErrNoKey) {
		t.Errorf("inception by the person's key: signatures %v, err %v; want no held controller key", sigs, err)
	}
}

// pivKeys makes an Ed25519 key (PIN 123456, no NextPIV certificate) in each
// of slots of the first virtual card, and returns the card's URI prefix
// ("piv:serial=N;slot=") and each slot's CESR public key.
func pivKeys(t *testing.T, p *piv.Provider, slots ...string) (string, map[string]string) {
	t.Helper()
	serials, err := vpiv.Serials(1)
	if err != nil {
		t.Fatalf("%v (softhsm-test/vpiv-up 2)", err)
	}
	card := fmt.Sprintf("piv:serial=%d;slot=", serials[0])
	pub := map[string]string{}
	for _, slot := range slots {
		s, err := p.Generate(context.Background(), card+slot+"?pin-value=123456", piv.GenerateOptions{Algorithm: gopiv.AlgorithmEd25519, Overwrite: true})
		if err != nil {
			t.Fatalf("generate slot %s: %v", slot, err)
		}
		v, err := hsm.Verfer(s)
		if err != nil {
			t.Fatal(err)
		}
		pub[slot] = v.QB64()
	}
	return card, pub
}
