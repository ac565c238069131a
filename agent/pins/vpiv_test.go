//go:build vpiv

package pins_test

// These tests run on the virtual card rig (softhsm-test/vpiv-up, then
// softhsm-test/vpiv-exec go test -tags vpiv ./agent/pins/): a PIV card, the
// real pinentry-tty on a pseudo-terminal, and the PIN cache between them,
// playing the agent's part by hand (reporting the card's refusal back).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	gopiv "github.com/go-piv/piv-go/v2/piv"

	"github.com/auths-dev/auths-agent/agent/pinentry"
	"github.com/auths-dev/auths-agent/agent/pins"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

const testPIN = "123456"

func rigSerial(t *testing.T) uint32 {
	t.Helper()
	out, err := vpiv.Serials(1)
	if err != nil {
		t.Fatalf("%v (softhsm-test/vpiv-up 1; softhsm-test/vpiv-exec go test -tags vpiv ./agent/pins/)", err)
	}
	return out[0]
}

// pinTries reads the card's PIN retry counter from the state file the
// rig's card keeps.
func pinTries(t *testing.T, serial uint32) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(os.Getenv("VPIV_DIR"), "card-"+strconv.FormatUint(uint64(serial), 10)+".json"))
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

// typist sits at a pseudo-terminal: for every "PIN:" pinentry-tty shows, it
// types the next PIN of its list and keeps what the screen showed.
type typist struct {
	ptmx, tty *os.File

	mu      sync.Mutex
	screen  bytes.Buffer
	screens []string // what each prompt showed
	pins    []string
}

func newTypist(t *testing.T) *typist {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	ty := &typist{ptmx: ptmx, tty: tty}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	go ty.run()
	return ty
}

func (ty *typist) run() {
	buf := make([]byte, 4096)
	for {
		n, err := ty.ptmx.Read(buf)
		ty.mu.Lock()
		ty.screen.Write(buf[:n])
		if s := ty.screen.String(); strings.Contains(s, "PIN:") {
			ty.screens = append(ty.screens, s)
			ty.screen.Reset()
			if len(ty.pins) > 0 {
				io.WriteString(ty.ptmx, ty.pins[0]+"\r")
				ty.pins = ty.pins[1:]
			}
		}
		ty.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (ty *typist) will(pins ...string) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	ty.pins = append(ty.pins, pins...)
}

func (ty *typist) prompts() []string {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	return append([]string(nil), ty.screens...)
}

// TestPinentryCardFlow: a key whose PIN policy is "always" on a card, no PIN
// in its URI. A wrong PIN typed in pinentry-tty is refused once and the
// card's counter drops by exactly one; the next prompt says so with the
// tries left; the right PIN signs and is then served from the cache; a lock
// refuses, and after unlock the person is asked again.
func TestPinentryCardFlow(t *testing.T) {
	prog, err := exec.LookPath("pinentry-tty")
	if err != nil {
		t.Fatalf("pinentry-tty is needed (make test-deps installs it): %v", err)
	}
	serial := rigSerial(t)
	ctx := context.Background()
	setup := piv.NewProvider(piv.Options{})
	uri := "piv:serial=" + strconv.FormatUint(uint64(serial), 10) + ";slot=9d"
	if _, err := setup.Generate(ctx, uri+"?pin-value="+testPIN, piv.GenerateOptions{PINPolicy: gopiv.PINPolicyAlways, Overwrite: true}); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	setup.Close()

	ty := newTypist(t)
	pe := &pinentry.Prompter{Program: prog, TTYName: ty.tty.Name(), TTYType: "dumb", LCCType: "C.UTF-8", Timeout: 20 * time.Second}
	cache, err := pins.New(pins.Options{Ask: pe.GetPIN})
	if err != nil {
		t.Fatal(err)
	}
	p := piv.NewProvider(piv.Options{Prompt: cache.Prompt})
	defer p.Close()
	s, err := p.Signer(ctx, uri)
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	// sign is what the agent does around a signature: a refusal goes back
	// to the cache.
	sign := func() error {
		_, err := s.SignKERI(ctx, []byte("event"))
		var we *hsm.WrongPINError
		if errors.As(err, &we) {
			cache.Reject(we.Token, we.TriesLeft)
		} else if err == nil {
			cache.Accepted("PIV card " + strconv.FormatUint(uint64(serial), 10))
		}
		return err
	}

	before := pinTries(t, serial)
	ty.will("111111")
	err = sign()
	var we *hsm.WrongPINError
	if !errors.As(err, &we) || we.TriesLeft != before-1 {
		t.Fatalf("wrong PIN: %v; want a WrongPINError with %d tries left", err, before-1)
	}
	if strings.Contains(err.Error(), "111111") {
		t.Errorf("the error shows the PIN: %v", err)
	}
	if got := pinTries(t, serial); got != before-1 {
		t.Fatalf("card counter %d after one wrong PIN, want %d", got, before-1)
	}

	ty.will(testPIN)
	if err := sign(); err != nil {
		t.Fatalf("right PIN: %v", err)
	}
	ps := ty.prompts()
	if len(ps) != 2 {
		t.Fatalf("%d prompts, want 2", len(ps))
	}
	name := "PIV card " + strconv.FormatUint(uint64(serial), 10)
	if strings.Contains(ps[0], "refused") || !strings.Contains(ps[0], "Enter the PIN of "+name+".") {
		t.Errorf("first prompt:\n%s", ps[0])
	}
	if !strings.Contains(ps[1], "The previous PIN was refused.") || !strings.Contains(ps[1], strconv.Itoa(before-1)+" tries left.") {
		t.Errorf("prompt after the refusal does not say so:\n%s", ps[1])
	}
	if got := pinTries(t, serial); got != before {
		t.Errorf("card counter %d after the right PIN, want %d", got, before)
	}

	// PIN policy "always": the card wants the PIN again; the cache gives it.
	if err := sign(); err != nil {
		t.Fatalf("sign from the cache: %v", err)
	}
	if n := len(ty.prompts()); n != 2 {
		t.Errorf("%d prompts after a cached sign, want 2", n)
	}

	if err := cache.Lock([]byte("lock")); err != nil {
		t.Fatal(err)
	}
	if err := sign(); !errors.Is(err, pins.ErrLocked) {
		t.Errorf("sign while locked: %v", err)
	}
	if err := cache.Unlock([]byte("lock")); err != nil {
		t.Fatal(err)
	}
	ty.will(testPIN)
	if err := sign(); err != nil {
		t.Fatalf("sign after unlock: %v", err)
	}
	ps = ty.prompts()
	if len(ps) != 3 || strings.Contains(ps[2], "refused") {
		t.Errorf("want a third, plain prompt after unlock; got %d prompts, last:\n%s", len(ps), ps[len(ps)-1])
	}
}
