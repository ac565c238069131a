//go:build vpiv

package touch_test

// On the virtual card rig (softhsm-test/vpiv-up 2; softhsm-test/vpiv-exec
// go test -tags vpiv ./agent/touch/): the Notifier as the PIV backend's
// touch notifier, with the card's touch delay emulated.

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gopiv "github.com/go-piv/piv-go/v2/piv"

	"github.com/auths-dev/auths-agent/agent/touch"
	"github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

func rigSerials(t *testing.T) []uint32 {
	t.Helper()
	out, err := vpiv.Serials(2)
	if err != nil {
		t.Fatalf("%v (softhsm-test/vpiv-up 2)", err)
	}
	return out[:2]
}

func cardCtl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(os.Getenv("VPIV_DIR"), "bin", "vpiv-card-ctl"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("vpiv-card-ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestTouchNoticeTwoCards: a key that needs a touch on one card (the
// touch takes 1.5 s) and a plain key on another. The notice comes before
// the card waits, in the words people see, and the second card signs
// while the first waits.
func TestTouchNoticeTwoCards(t *testing.T) {
	serials := rigSerials(t)
	const delay = 1500 * time.Millisecond
	slow := strconv.FormatUint(uint64(serials[0]), 10)
	t.Cleanup(func() { cardCtl(t, "restart", slow) })
	cardCtl(t, "restart", slow, "-touch-delay", delay.String())

	var logs bytes.Buffer
	var mu sync.Mutex
	var forwarded []string
	var notedAt time.Time
	n := touch.New(touch.Options{
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		NotifySend: "-",
		Forward: func(_ context.Context, no touch.Notice) {
			mu.Lock()
			defer mu.Unlock()
			forwarded = append(forwarded, no.String())
			notedAt = time.Now()
		},
	})
	p := piv.NewProvider(piv.Options{Touch: n.Notify})
	defer p.Close()
	ctx := context.Background()
	uriA := "piv:serial=" + slow + ";slot=85?pin-value=123456"
	uriB := "piv:serial=" + strconv.FormatUint(uint64(serials[1]), 10) + ";slot=86?pin-value=123456"
	a, err := p.Generate(ctx, uriA, piv.GenerateOptions{Algorithm: gopiv.AlgorithmEd25519, TouchPolicy: gopiv.TouchPolicyAlways, Overwrite: true})
	if err != nil {
		t.Fatalf("Generate A: %v", err)
	}
	b, err := p.Generate(ctx, uriB, piv.GenerateOptions{Algorithm: gopiv.AlgorithmEd25519, Overwrite: true})
	if err != nil {
		t.Fatalf("Generate B: %v", err)
	}
	mu.Lock()
	forwarded = nil
	mu.Unlock()

	start := time.Now()
	var aDone, bDone time.Time
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if _, err := a.SignKERI(touch.WithPosition(ctx, 1, 2), []byte("event")); err != nil {
			t.Errorf("sign on the touch card: %v", err)
		}
		aDone = time.Now()
	}()
	go func() {
		defer wg.Done()
		time.Sleep(200 * time.Millisecond) // once the first card waits
		if _, err := b.SignKERI(touch.WithPosition(ctx, 2, 2), []byte("event")); err != nil {
			t.Errorf("sign on the other card: %v", err)
		}
		bDone = time.Now()
	}()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	want := "waiting for touch on PIV card " + slow + " slot 85 (1 of 2)"
	if len(forwarded) != 1 || forwarded[0] != want {
		t.Fatalf("notices %q, want [%q]", forwarded, want)
	}
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks the notice: %s", logs.String())
	}
	if aDone.Sub(start) < delay || notedAt.Sub(start) > aDone.Sub(start)-delay+100*time.Millisecond {
		t.Errorf("touch sign took %v, notice after %v: want the notice before the %v wait", aDone.Sub(start), notedAt.Sub(start), delay)
	}
	if !bDone.Before(aDone) {
		t.Errorf("the other card finished after the touch card (%v vs %v)", bDone.Sub(start), aDone.Sub(start))
	}
}
