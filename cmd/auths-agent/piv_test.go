//go:build vpiv

package main

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

var cardsMu sync.Mutex

// TestPIVScripts runs the CLI scenarios of testdata/piv/ on the virtual
// card rig: softhsm-test/vpiv-up 2, then, inside the rig,
// VPIV_SERIALS=<serial1>,<serial2> go test -tags vpiv ./cmd/auths-agent/.
// The scripts see the serials as $SERIAL1 and $SERIAL2.
func TestPIVScripts(t *testing.T) {
	serials := rigSerials(t, "the piv: CLI scenarios need two cards")
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

// rigSerials returns the first two card serials of the virtual card rig, in
// decimal, as the scenarios see them; what says which tests need them.
func rigSerials(t *testing.T, what string) []string {
	t.Helper()
	serials, err := vpiv.Serials(2)
	if err != nil {
		t.Fatalf("%v: %s of the virtual card rig (softhsm-test/vpiv-up 2; make test sets it)", err, what)
	}
	return []string{strconv.FormatUint(uint64(serials[0]), 10), strconv.FormatUint(uint64(serials[1]), 10)}
}
