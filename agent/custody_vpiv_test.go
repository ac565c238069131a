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
	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

// TestPIVSSHKeyNotController: on a virtual PIV card, an SSH key of the
// config in the retired slot 90 (its URI names no PIN) and a controller
// key in slot 9d with pin-source=env:. The search for next keys finds
// slot 90 under a URI with 9d's PIN source; it stays an SSH key only,
// and an inception by it is not signed. Before the fix it was held as a
// controller key with 9d's policy and signed.
func TestPIVSSHKeyNotController(t *testing.T) {
	serials, err := vpiv.Serials(1)
	if err != nil {
		t.Fatalf("%v (softhsm-test/vpiv-up 2)", err)
	}
	card := fmt.Sprintf("piv:serial=%d;slot=", serials[0])
	ctx := context.Background()
	p := piv.NewProvider(piv.Options{})
	pub := map[string]string{}
	for _, slot := range []string{"9d", "90"} {
		s, err := p.Generate(ctx, card+slot+"?pin-value=123456", piv.GenerateOptions{Algorithm: gopiv.AlgorithmEd25519, Overwrite: true})
		if err != nil {
			t.Fatalf("generate slot %s: %v", slot, err)
		}
		v, err := hsm.Verfer(s)
		if err != nil {
			t.Fatal(err)
		}
		pub[slot] = v.QB64()
	}
	p.Close()
	t.Setenv("YK_PIN", "123456")
	cfg := Config{Keys: []KeySpec{
		{URI: card + "90", Uses: []Use{UseSSH}},
		{URI: card + "9d?pin-source=env:YK_PIN", Uses: []Use{UseKERI}},
	}}
	o := NewTokenOpener(TokenOptions{})
	defer o.Close()
	a, err := New(cfg, Options{Opener: o})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
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
