package piv_test

import (
	"context"
	"fmt"
	"log"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
)

// A Provider is built once, in main; signers share its cards.
func ExampleProvider_Signer() {
	p := piv.NewProvider(piv.Options{
		Touch: func(_ context.Context, what string) { fmt.Println("touch your YubiKey:", what) },
	})
	defer p.Close()

	ctx := context.Background()
	s, err := p.Signer(ctx, "piv:serial=12345678;slot=9c?pin-source=env:YK_PIN")
	if err != nil {
		log.Fatal(err) // e.g. "piv:serial=12345678;slot=9c: card 12345678: … not found in 1 reader(s): insert it, …"
	}
	v, _ := hsm.Verfer(s)
	sig, err := s.SignKERI(ctx, []byte(`{"v":"KERI10JSON…","t":"ixn",…}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.QB64(), len(sig))
}

// Generate makes a key; the management key comes from a file or a variable,
// never from the command line.
func ExampleProvider_Generate() {
	p := piv.NewProvider(piv.Options{})
	defer p.Close()
	mk, err := piv.ManagementKeyFrom("env:YK_MGMT_KEY", nil)
	if err != nil {
		log.Fatal(err)
	}
	s, err := p.Generate(context.Background(), "piv:serial=12345678;slot=9a?pin-source=env:YK_PIN",
		piv.GenerateOptions{ManagementKey: mk}) // P-256, PIN once, no touch
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.URI())
}
