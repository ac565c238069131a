//go:build vpiv

package piv

// Helpers for tests on the virtual card rig (softhsm-test/vpiv-up): they
// run inside the rig's namespace (softhsm-test/vpiv-exec) with VPIV_DIR and
// VPIV_SERIALS set.

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

const (
	testPIN = "123456"
	testPUK = "12345678"
)

// rigSerials returns the card serials the rig gave this package; it fails
// the test loudly when there are fewer than want.
func rigSerials(t testing.TB, want int) []uint32 {
	t.Helper()
	out, err := vpiv.Serials(want)
	if err != nil {
		t.Fatalf("%v: run them as softhsm-test/vpiv-up %d, then softhsm-test/vpiv-exec go test -tags vpiv ./hsm/piv/ (make test does this)", err, want)
	}
	return out[:want]
}

func rigDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("VPIV_DIR")
	if d == "" {
		t.Fatal("VPIV_DIR is not set: run the tests through softhsm-test/vpiv-exec")
	}
	return d
}

func newTestProvider(t testing.TB, opts Options) *Provider {
	t.Helper()
	p := NewProvider(opts)
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Provider.Close: %v", err)
		}
	})
	return p
}

func uriOf(serial uint32, slot string, query string) string {
	u := "piv:serial=" + strconv.FormatUint(uint64(serial), 10) + ";slot=" + slot
	if query != "" {
		u += "?" + query
	}
	return u
}

// apduCount counts the lines of the card's APDU log that contain substr
// (for example "C-APDU 0020008008": a VERIFY carrying a PIN).
func apduCount(t testing.TB, serial uint32, substr string) int {
	t.Helper()
	f, err := os.Open(filepath.Join(rigDir(t), "card-"+strconv.FormatUint(uint64(serial), 10)+".apdu.log"))
	if err != nil {
		t.Fatalf("APDU log of card %d: %v", serial, err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// cardCtl runs softhsm-test/vpiv-card-ctl ACTION SERIAL [FLAG…].
func cardCtl(t testing.TB, action string, serial uint32, flags ...string) {
	t.Helper()
	ctl := filepath.Join(rigDir(t), "bin", "vpiv-card-ctl")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{action, strconv.FormatUint(uint64(serial), 10)}, flags...)
	out, err := exec.CommandContext(ctx, ctl, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("vpiv-card-ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// restartCard restarts the card process with extra vpiv-card flags (for
// example -version 5.6.0 or -latency 50ms) and restarts it as the rig made
// it when the test ends. The card's state (keys, PIN counters) is kept.
// Close Providers that hold the card before the test ends: cleanups run
// last-registered first.
func restartCard(t testing.TB, serial uint32, flags ...string) {
	t.Helper()
	t.Cleanup(func() { cardCtl(t, "restart", serial) })
	cardCtl(t, "restart", serial, flags...)
}

// pinTries reads the PIN retry counter of a card from the state file the
// rig's card writes after every command that changes it (the card's own
// answer to an empty VERIFY cannot be had while the PIN is verified).
func pinTries(t testing.TB, serial uint32) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(rigDir(t), "card-"+strconv.FormatUint(uint64(serial), 10)+".json"))
	if err != nil {
		t.Fatalf("state of card %d: %v", serial, err)
	}
	var st struct {
		PIN struct {
			Tries *int `json:"tries"`
		} `json:"pin"`
	}
	if err := json.Unmarshal(data, &st); err != nil || st.PIN.Tries == nil {
		t.Fatalf("state of card %d: no pin.tries (%v)", serial, err)
	}
	return *st.PIN.Tries
}
