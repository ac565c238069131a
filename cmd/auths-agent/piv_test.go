//go:build vpiv

package main

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

var cardsMu sync.Mutex

// TestPIVScripts runs the CLI scenarios of testdata/piv/ on the virtual
// card rig: softhsm-test/vpiv-up 2, then, inside the rig,
// VPIV_SERIALS=<serial1>,<serial2> go test -tags vpiv ./cmd/auths-agent/.
// The scripts see the serials as $SERIAL1 and $SERIAL2.
func TestPIVScripts(t *testing.T) {
	serials := strings.Split(os.Getenv("VPIV_SERIALS"), ",")
	if len(serials) < 2 || serials[0] == "" {
		t.Fatalf("VPIV_SERIALS=%q: the piv: CLI scenarios need two cards of the virtual card rig (softhsm-test/vpiv-up 2; make test sets it)", os.Getenv("VPIV_SERIALS"))
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/piv",
		Setup: func(env *testscript.Env) error {
			// piv-go holds a card exclusively: one scenario at a time.
			cardsMu.Lock()
			env.Defer(cardsMu.Unlock)
			env.Setenv("SERIAL1", strings.TrimSpace(serials[0]))
			env.Setenv("SERIAL2", strings.TrimSpace(serials[1]))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status": cmdStatus,
		},
	})
}
