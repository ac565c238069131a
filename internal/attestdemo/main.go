// Command attestdemo is the device side of `make demo`: it makes a device
// key and signs auths attestations with it, and checks that documents are
// ones auths can load.
//
//	attestdemo new [-legacy] KEYFILE ISSUER_PREFIX RID OUT
//	    creates KEYFILE (an Ed25519 seed, mode 0600) when missing, writes to
//	    OUT an attestation of the key's did:key issued by did:keri:ISSUER_PREFIX
//	    and signed by the key (auths' stored form, or with -legacy its legacy
//	    form: compact, bare-hex key, +00:00 offset), and prints the did:key.
//	attestdemo check FILE...
//	    reads each FILE as auths reads an attestation, checks its device
//	    signature and prints its subject and SAID; exits 1 on the first one
//	    that fails.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/auths-dev/auths-agent/internal/attesttest"
	"github.com/auths-dev/auths-agent/kel"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "attestdemo:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: attestdemo new [-legacy] KEYFILE ISSUER_PREFIX RID OUT | attestdemo check FILE...")
	}
	switch args[0] {
	case "new":
		args = args[1:]
		legacy := len(args) > 0 && args[0] == "-legacy"
		if legacy {
			args = args[1:]
		}
		if len(args) != 4 {
			return errors.New("usage: attestdemo new [-legacy] KEYFILE ISSUER_PREFIX RID OUT")
		}
		priv, err := deviceKey(args[0])
		if err != nil {
			return err
		}
		d := attesttest.FromKey(priv)
		a := d.Attestation(args[1], d.DID, args[2], time.Now(), false)
		doc := a.Pretty()
		if legacy {
			doc = attesttest.Legacy(a)
		}
		if err := os.WriteFile(args[3], doc, 0o644); err != nil {
			return err
		}
		fmt.Println(d.DID)
		return nil
	case "check":
		for _, f := range args[1:] {
			doc, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			a, err := kel.ParseAttestation(doc)
			if err == nil {
				err = a.VerifyDevice()
			}
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			said, err := a.SAID()
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			fmt.Printf("ok %s %s\n", a.Subject, said)
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// deviceKey reads the seed in path, or makes one there.
func deviceKey(path string) (ed25519.PrivateKey, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed = make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, seed, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: %d bytes, want a %d-byte Ed25519 seed", path, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
