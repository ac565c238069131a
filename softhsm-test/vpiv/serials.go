package vpiv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// SerialsEnv names the variable in which softhsm-test/vpiv-exec hands the
// rig's card serials to the tests it runs: decimal, comma-separated, in the
// order vpiv-up created the cards.
const SerialsEnv = "VPIV_SERIALS"

// Serials returns every card serial of VPIV_SERIALS, in order. It is for the
// vpiv-tagged tests of every package, which each add their own hint on how
// to run them in the rig; it fails when the variable is empty, holds
// something other than a decimal serial, or names fewer than want cards.
func Serials(want int) ([]uint32, error) {
	env := os.Getenv(SerialsEnv)
	if strings.TrimSpace(env) == "" {
		return nil, fmt.Errorf("%s is empty: these tests need %d cards of the virtual card rig", SerialsEnv, want)
	}
	var out []uint32
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %q is not a decimal serial", SerialsEnv, env, f)
		}
		out = append(out, uint32(n))
	}
	if len(out) < want {
		return nil, fmt.Errorf("%s=%q: these tests need %d cards, it names %d", SerialsEnv, env, want, len(out))
	}
	return out, nil
}
