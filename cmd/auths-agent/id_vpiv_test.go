//go:build vpiv

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	gopiv "github.com/go-piv/piv-go/v2/piv"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/auths-dev/auths-agent/hsm/piv"
)

// TestIDPIVScripts runs testdata/idpiv/*.txt on two cards of the virtual
// card rig: Setup puts a fresh P-256 key in slot 9a of each card; the
// scripts see $C1 and $C2, the URIs of those keys (PIN 123456), and make
// SoftHSM tokens of their own with machine (see cmdMachine).
func TestIDPIVScripts(t *testing.T) {
	serials := rigSerials(t, "the id scenarios on PIV need two cards")
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "idpiv"),
		Setup: func(env *testscript.Env) error {
			cardsMu.Lock() // piv-go holds a card exclusively: one scenario at a time
			env.Defer(cardsMu.Unlock)
			// Empty retired slots: a next key an earlier scenario made
			// (and committed in its own registry) would be reused.
			if err := resetCardsErr(serials[:2]); err != nil {
				return err
			}
			p := piv.NewProvider(piv.Options{})
			defer p.Close()
			for i, s := range serials[:2] {
				uri := fmt.Sprintf("piv:serial=%s;slot=9a?pin-value=123456", strings.TrimSpace(s))
				if _, err := p.Generate(context.Background(), uri, piv.GenerateOptions{Algorithm: gopiv.AlgorithmEC256, Overwrite: true}); err != nil {
					return err
				}
				env.Setenv(fmt.Sprintf("C%d", i+1), uri)
			}
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":  cmdStatus,
			"capture": cmdCapture,
			"attest":  cmdAttest,
			"machine": cmdMachine,
		},
	})
}
