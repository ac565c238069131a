//go:build vpiv

package piv

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/hsmtest"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/go-piv/piv-go/v2/piv"
)

// TestTwoCards generates P-256 and Ed25519 keys on two cards at once,
// runs the hsm.Signer contract on each, and reads every key back.
func TestTwoCards(t *testing.T) {
	serials := rigSerials(t, 2)
	p := newTestProvider(t, Options{})
	ctx := context.Background()
	keys := []struct {
		card int
		slot string
		alg  piv.Algorithm
	}{
		{0, "9c", piv.AlgorithmEC256},
		{0, "9a", piv.AlgorithmEd25519},
		{1, "9c", piv.AlgorithmEd25519},
		{1, "82", piv.AlgorithmEC256},
	}
	for _, k := range keys {
		uri := uriOf(serials[k.card], k.slot, "pin-value="+testPIN)
		t.Run(fmt.Sprintf("%d-%s-%s", serials[k.card], k.slot, AlgorithmName(k.alg)), func(t *testing.T) {
			t.Parallel() // keys on the two cards work side by side
			s, err := p.Generate(ctx, uri, GenerateOptions{Algorithm: k.alg, Overwrite: true})
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if got := algorithmOf(s.Public()); got != k.alg {
				t.Fatalf("generated %s, want %s", AlgorithmName(got), AlgorithmName(k.alg))
			}
			hsmtest.TestSigner(t, s, testPIN)

			// A fresh signer finds the same key (metadata on 5.7).
			again, err := p.Signer(ctx, uri)
			if err != nil {
				t.Fatalf("Signer: %v", err)
			}
			if !samePublic(again.Public(), s.Public()) {
				t.Fatal("reopened signer has another public key")
			}
			// The certificate stored beside the key holds it too, and the
			// card attests it with its test CA.
			info, err := p.Key(ctx, uri, true)
			if err != nil {
				t.Fatalf("Key: %v", err)
			}
			if info.Certificate == nil || !samePublic(info.Certificate.PublicKey, s.Public()) {
				t.Errorf("stored certificate missing or for another key")
			}
			if info.Attestation == nil || !samePublic(info.Attestation.PublicKey, s.Public()) {
				t.Errorf("attestation missing or for another key")
			}
			if info.PINPolicy != piv.PINPolicyOnce || info.TouchPolicy != piv.TouchPolicyNever {
				t.Errorf("policies %s/%s, want once/never", PINPolicyName(info.PINPolicy), TouchPolicyName(info.TouchPolicy))
			}
			checkAttestation(t, serials[k.card], info)
		})
	}
}

// checkAttestation verifies a slot attestation with the rig's test CA.
func checkAttestation(t *testing.T, serial uint32, info KeyInfo) {
	t.Helper()
	if info.Attestation == nil || info.AttestationSigner == nil {
		t.Fatal("no attestation")
	}
	data, err := os.ReadFile(filepath.Join(rigDir(t), fmt.Sprintf("card-%d.ca.pem", serial)))
	if err != nil {
		t.Fatalf("test CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data) {
		t.Fatal("no CA certificate in the rig's PEM file")
	}
	a, err := (&piv.Verifier{Roots: roots}).Verify(info.AttestationSigner, info.Attestation)
	if err != nil {
		t.Fatalf("attestation: %v", err)
	}
	if a.Serial != serial || a.Slot.Key != uint32(info.Slot) || a.PINPolicy != info.PINPolicy {
		t.Errorf("attestation says card %d slot %v PIN policy %v", a.Serial, a.Slot, a.PINPolicy)
	}
}

// TestPINBlockAndUnblock: three wrong PINs block the card, the backend
// sends exactly the VERIFY commands it was asked for (a PIN refused once
// is not sent again), and the PUK unblocks it.
func TestPINBlockAndUnblock(t *testing.T) {
	serial := rigSerials(t, 2)[0]
	p := newTestProvider(t, Options{})
	ctx := context.Background()
	good := uriOf(serial, "9d", "pin-value="+testPIN)
	if _, err := p.Generate(ctx, good, GenerateOptions{PINPolicy: piv.PINPolicyAlways, Overwrite: true}); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	const verifyPIN = "C-APDU 0020008008" // VERIFY with an 8-byte (padded) PIN
	verifies := func() int { return apduCount(t, serial, verifyPIN) }
	sign := func(pin string) error {
		t.Helper()
		s, err := p.Signer(ctx, uriOf(serial, "9d", "pin-value="+pin))
		if err != nil {
			t.Fatalf("Signer: %v", err)
		}
		_, err = s.SignKERI(ctx, []byte("event"))
		if err != nil && strings.Contains(err.Error(), pin) {
			t.Errorf("error %q shows the PIN", err)
		}
		return err
	}
	if err := sign(testPIN); err != nil {
		t.Fatalf("sign with the right PIN: %v", err)
	}
	start := verifies()
	steps := []struct {
		pin      string
		left     int // tries left reported; -1: refused without sending
		blocked  bool
		verifies int // VERIFY commands with a PIN sent so far
	}{
		{"111111", 2, false, 1},
		{"111111", -1, false, 1}, // the same wrong PIN: not sent again
		{"222222", 1, false, 2},
		{"333333", 0, true, 3},
		{testPIN, 0, true, 3}, // blocked: the right PIN is not sent either
	}
	for i, st := range steps {
		err := sign(st.pin)
		var we *hsm.WrongPINError
		switch {
		case st.blocked:
			if !errors.Is(err, hsm.ErrPINBlocked) || !strings.Contains(err.Error(), "PUK") || !strings.Contains(err.Error(), fmt.Sprint(serial)) {
				t.Fatalf("step %d: %v; want a blocked-PIN error naming the card and the PUK", i, err)
			}
		case !errors.As(err, &we):
			t.Fatalf("step %d: %v; want a WrongPINError", i, err)
		case st.left < 0 && !we.Repeated:
			t.Fatalf("step %d: %v; want the repeated PIN refused without sending it", i, err)
		case st.left >= 0 && we.TriesLeft != st.left:
			t.Fatalf("step %d: %v; want %d tries left", i, err, st.left)
		}
		if got := verifies() - start; got != st.verifies {
			t.Fatalf("step %d: %d VERIFY commands with a PIN so far; want %d", i, got, st.verifies)
		}
	}
	if err := p.Unblock(ctx, serial, "87654321", testPIN); !errors.Is(err, hsm.ErrWrongPIN) || !strings.Contains(err.Error(), "tries left") {
		t.Fatalf("Unblock with a wrong PUK: %v", err)
	}
	if err := p.Unblock(ctx, serial, testPUK, testPIN); err != nil {
		t.Fatalf("Unblock: %v", err)
	}
	if err := sign(testPIN); err != nil {
		t.Fatalf("sign after Unblock: %v", err)
	}
	if got := verifies() - start; got != 4 {
		t.Errorf("%d VERIFY commands with a PIN in all; want 4", got)
	}
	// Leave the PUK counter as the factory set it for later runs.
	resetPUKCounter(t, p, serial)
}

// resetPUKCounter undoes the wrong PUK try above: a right PUK resets its
// counter.
func resetPUKCounter(t *testing.T, p *Provider, serial uint32) {
	if err := p.Unblock(context.Background(), serial, testPUK, testPIN); err != nil {
		t.Errorf("resetting the PUK counter: %v", err)
	}
}

// TestCardRestart: the card process is killed; a sign during the outage
// fails naming the card, the first sign after the restart works.
func TestCardRestart(t *testing.T) {
	serial := rigSerials(t, 2)[1]
	p := newTestProvider(t, Options{})
	ctx := context.Background()
	uri := uriOf(serial, "9e", "pin-value="+testPIN)
	s, err := p.Generate(ctx, uri, GenerateOptions{Overwrite: true})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	v, err := hsm.Verfer(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignKERI(ctx, []byte("before")); err != nil {
		t.Fatalf("sign before: %v", err)
	}
	cardCtl(t, "stop", serial)
	_, err = s.SignKERI(ctx, []byte("during"))
	if err == nil {
		t.Fatal("sign during the outage succeeded")
	}
	if !errors.Is(err, hsm.ErrTokenAbsent) || !strings.Contains(err.Error(), fmt.Sprintf("card %d: ", serial)) {
		t.Fatalf("sign during the outage: %v; want ErrTokenAbsent naming card %d", err, serial)
	}
	t.Logf("during the outage: %v", err)
	cardCtl(t, "start", serial)
	msg := []byte("after")
	sig, err := s.SignKERI(ctx, msg)
	if err != nil {
		t.Fatalf("first sign after the restart: %v", err)
	}
	if !v.Verify(msg, sig) {
		t.Fatal("signature after the restart does not verify")
	}
}

// TestOldFirmware: a 5.6 card refuses Ed25519 with a clear error and signs
// with P-256; a 5.2 card (no metadata) finds its key through the stored
// certificate.
func TestOldFirmware(t *testing.T) {
	serial := rigSerials(t, 2)[1]
	ctx := context.Background()
	uri := uriOf(serial, "95", "pin-value="+testPIN)

	t.Run("5.6.0", func(t *testing.T) {
		restartCard(t, serial, "-version", "5.6.0")
		p := newTestProvider(t, Options{})
		_, err := p.Generate(ctx, uri, GenerateOptions{Algorithm: piv.AlgorithmEd25519, Overwrite: true})
		if !errors.Is(err, hsm.ErrUnsupportedKey) || !strings.Contains(err.Error(), "5.7") || !strings.Contains(err.Error(), "5.6.0") {
			t.Fatalf("Ed25519 on 5.6.0: %v; want ErrUnsupportedKey naming 5.7 and 5.6.0", err)
		}
		s, err := p.Generate(ctx, uri, GenerateOptions{Overwrite: true})
		if err != nil {
			t.Fatalf("P-256 on 5.6.0: %v", err)
		}
		hsmtest.TestSigner(t, s, testPIN)
	})
	t.Run("5.2.7", func(t *testing.T) {
		restartCard(t, serial, "-version", "5.2.7")
		p := newTestProvider(t, Options{})
		s, err := p.Signer(ctx, uri)
		if err != nil {
			t.Fatalf("Signer on 5.2.7: %v", err)
		}
		if s.Info().Source == "metadata" {
			t.Errorf("public key from %s on 5.2.7; want certificate or attestation", s.Info().Source)
		}
		hsmtest.TestSigner(t, s, testPIN)
	})
}

// TestTouch: a key whose touch policy asks for a touch tells the notifier
// before the card waits.
func TestTouch(t *testing.T) {
	serial := rigSerials(t, 2)[0]
	const delay = 300 * time.Millisecond
	restartCard(t, serial, "-touch-delay", delay.String())
	var mu sync.Mutex
	var notes []string
	var notedAt time.Time
	p := newTestProvider(t, Options{Touch: func(_ context.Context, what string) {
		mu.Lock()
		defer mu.Unlock()
		notes = append(notes, what)
		notedAt = time.Now()
	}})
	ctx := context.Background()
	uri := uriOf(serial, "83", "pin-value="+testPIN)
	s, err := p.Generate(ctx, uri, GenerateOptions{Algorithm: piv.AlgorithmEd25519, TouchPolicy: piv.TouchPolicyAlways, Overwrite: true})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	mu.Lock()
	notes = nil
	mu.Unlock()
	start := time.Now()
	msg := []byte("touch me")
	sig, err := s.SignKERI(ctx, msg)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("SignKERI: %v", err)
	}
	if !ed25519.Verify(s.Public().(ed25519.PublicKey), msg, sig) {
		t.Fatal("signature does not verify")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notes) != 1 || !strings.Contains(notes[0], fmt.Sprint(serial)) || !strings.Contains(notes[0], "83") {
		t.Fatalf("touch notices %q; want one naming card %d slot 83", notes, serial)
	}
	if took < delay || notedAt.Sub(start) > took-delay+50*time.Millisecond {
		t.Errorf("sign took %v, notice after %v; want the notice before the %v touch wait", took, notedAt.Sub(start), delay)
	}
}

// TestPrompt: without PIN attributes the Provider's prompt is asked once,
// naming the card; the PIN is not kept.
func TestPrompt(t *testing.T) {
	serial := rigSerials(t, 2)[0]
	ctx := context.Background()
	setup := newTestProvider(t, Options{})
	if _, err := setup.Generate(ctx, uriOf(serial, "84", "pin-value="+testPIN), GenerateOptions{PINPolicy: piv.PINPolicyAlways, Overwrite: true}); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	setup.Close()
	var asked []string
	p := newTestProvider(t, Options{Prompt: func(_ context.Context, what string) (string, error) {
		asked = append(asked, what)
		return testPIN, nil
	}})
	s, err := p.Signer(ctx, uriOf(serial, "84", ""))
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	for range 2 {
		if _, err := s.SignKERI(ctx, []byte("x")); err != nil {
			t.Fatalf("SignKERI: %v", err)
		}
	}
	if len(asked) != 2 || asked[0] != cardName(serial) {
		t.Errorf("prompts %q; want two (PIN policy always) for %q", asked, cardName(serial))
	}
}

// TestBadInput: missing cards, empty slots, several cards without serial=.
func TestBadInput(t *testing.T) {
	serials := rigSerials(t, 2)
	p := newTestProvider(t, Options{})
	ctx := context.Background()

	_, err := p.Signer(ctx, "piv:serial=4242;slot=9c")
	if !errors.Is(err, hsm.ErrTokenAbsent) || !strings.Contains(err.Error(), "card 4242: ") || !strings.Contains(err.Error(), "insert it") {
		t.Errorf("absent card: %v", err)
	}
	_, err = p.Signer(ctx, "piv:slot=9c")
	if !errors.Is(err, hsm.ErrAmbiguous) || !strings.Contains(err.Error(), "serial=") {
		t.Errorf("two cards, no serial: %v", err)
	}
	empty := uriOf(serials[0], "94", "")
	clearSlot(t, p, serials[0], 0x94)
	_, err = p.Signer(ctx, empty)
	if !errors.Is(err, hsm.ErrNotFound) || !strings.Contains(err.Error(), "slot 94 is empty") {
		t.Errorf("empty slot: %v", err)
	}
	_, err = p.Generate(ctx, uriOf(serials[0], "9c", "pin-value="+testPIN), GenerateOptions{})
	if !errors.Is(err, hsm.ErrExists) {
		t.Errorf("Generate over a key without Overwrite: %v", err)
	}
	// Both cards are held by p; a second Provider cannot open them.
	q := newTestProvider(t, Options{})
	_, err = q.Signer(ctx, uriOf(serials[0], "9c", ""))
	if !errors.Is(err, hsm.ErrTokenAbsent) || !strings.Contains(err.Error(), "another program") {
		t.Errorf("card held by another provider: %v", err)
	}
	cards, notes, err := p.Cards(ctx)
	if err != nil || len(cards) < 2 {
		t.Fatalf("Cards: %v %v %v", cards, notes, err)
	}
	for _, c := range cards {
		if c.Err != nil || c.VersionString() != "5.7.1" || c.Reader == "" {
			t.Errorf("card %+v", c)
		}
	}
}

// clearSlot makes sure slot n is empty: the virtual card has no DELETE, so
// the test uses a slot the other tests never fill.
func clearSlot(t *testing.T, p *Provider, serial uint32, n uint8) {
	t.Helper()
	info, err := p.Key(context.Background(), uriOf(serial, fmt.Sprintf("%02x", n), ""), false)
	if err == nil {
		t.Fatalf("slot %02x of card %d holds a %s key; the empty-slot test needs it empty", n, serial, AlgorithmName(info.Algorithm))
	}
}

// TestVerferOfGeneratedKeys checks that CESR keys of both algorithms come
// out of the card as KERI expects.
func TestVerferOfGeneratedKeys(t *testing.T) {
	serial := rigSerials(t, 2)[0]
	p := newTestProvider(t, Options{})
	s, err := p.Signer(context.Background(), uriOf(serial, "9c", "pin-value="+testPIN))
	if err != nil {
		t.Fatal(err)
	}
	v, err := hsm.Verfer(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Public().(*ecdsa.PublicKey); ok && v.Algorithm() != kel.P256 {
		t.Errorf("P-256 key has CESR algorithm %v", v.Algorithm())
	}
}

// TestCardReinserted: a card restarted while the Provider holds a handle
// to it (removed and re-inserted) is reopened by the next call, which
// succeeds.
func TestCardReinserted(t *testing.T) {
	serial := rigSerials(t, 2)[1]
	var log strings.Builder
	p := newTestProvider(t, Options{Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := context.Background()
	s, err := p.Generate(ctx, uriOf(serial, "9e", "pin-value="+testPIN), GenerateOptions{Overwrite: true})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	v, err := hsm.Verfer(s)
	if err != nil {
		t.Fatal(err)
	}
	cardCtl(t, "restart", serial)
	defer func() {
		if !strings.Contains(log.String(), "connection lost") || strings.Count(log.String(), "card opened") != 2 {
			t.Errorf("the old handle was not found stale and replaced; log:\n%s", log.String())
		}
	}()
	msg := []byte("after re-insertion")
	sig, err := s.SignKERI(ctx, msg)
	if err != nil {
		t.Fatalf("first sign after re-insertion: %v", err)
	}
	if !v.Verify(msg, sig) {
		t.Fatal("signature does not verify")
	}
}

// TestNotAYubiKey: a card that answers only SELECT gets a one-line error
// saying so.
func TestNotAYubiKey(t *testing.T) {
	serial := rigSerials(t, 2)[1]
	restartCard(t, serial, "-select-only")
	p := newTestProvider(t, Options{})
	_, err := p.Signer(context.Background(), uriOf(serial, "9c", ""))
	if !errors.Is(err, hsm.ErrTokenAbsent) || !strings.Contains(err.Error(), "not a YubiKey") || strings.Contains(err.Error(), "\n") {
		t.Errorf("select-only card: %v", err)
	}
	t.Logf("select-only card: %v", err)
	_, notes, err := p.Cards(context.Background())
	if err != nil || !strings.Contains(strings.Join(notes, "\n"), "not a YubiKey") {
		t.Errorf("Cards with a select-only card: notes %q, %v", notes, err)
	}
}

// TestRefusedPINSurvivesReconnect: a PIN read from a file that the card
// refused is not sent again after the card went away and came back (the
// card killed and restarted, as a USB hiccup or a pcscd restart does): the
// card's retry counter stays where the refusal left it, and the error says
// the PIN was refused before. A corrected file is a different PIN: tried.
func TestRefusedPINSurvivesReconnect(t *testing.T) {
	serial := rigSerials(t, 2)[1]
	p := newTestProvider(t, Options{})
	ctx := context.Background()
	if _, err := p.Generate(ctx, uriOf(serial, "84", "pin-value="+testPIN),
		GenerateOptions{PINPolicy: piv.PINPolicyAlways, Overwrite: true}); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte("654321\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	uri := uriOf(serial, "84", "pin-source=file:"+pinFile)
	const verifyPIN = "C-APDU 0020008008" // VERIFY with an 8-byte (padded) PIN
	retries := func() int { return pinTries(t, serial) }
	sign := func() error {
		s, err := p.Signer(ctx, uri)
		if err != nil {
			return err
		}
		_, err = s.SignKERI(ctx, []byte("event"))
		return err
	}
	full := retries()
	var we *hsm.WrongPINError
	if err := sign(); !errors.As(err, &we) || we.Repeated || we.TriesLeft != full-1 {
		t.Fatalf("sign with the wrong PIN: %v; want a WrongPINError with %d tries left", err, full-1)
	}
	left, sent := retries(), apduCount(t, serial, verifyPIN)
	if left != full-1 {
		t.Fatalf("retry counter %d after one wrong PIN, want %d", left, full-1)
	}

	away := true
	t.Cleanup(func() {
		if away {
			cardCtl(t, "start", serial)
		}
	})
	cardCtl(t, "stop", serial)
	if err := sign(); !errors.Is(err, hsm.ErrTokenAbsent) {
		t.Fatalf("sign while the card is away: %v; want ErrTokenAbsent", err)
	}
	cardCtl(t, "start", serial)
	away = false

	for i := range 2 {
		err := sign()
		if !errors.As(err, &we) || !we.Repeated || !strings.Contains(err.Error(), "refused before") {
			t.Fatalf("sign %d after the card came back: %v; want the PIN refused before, not sent", i+1, err)
		}
	}
	if got := retries(); got != left {
		t.Errorf("retry counter %d after the reconnect, want %d: the refused PIN was sent again", got, left)
	}
	if got := apduCount(t, serial, verifyPIN); got != sent {
		t.Errorf("%d VERIFY commands with a PIN after the reconnect, want none", got-sent)
	}

	if err := os.WriteFile(pinFile, []byte(testPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sign(); err != nil {
		t.Fatalf("sign with the corrected PIN file: %v", err)
	}
	if got := retries(); got != full {
		t.Errorf("retry counter %d after the right PIN, want %d", got, full)
	}
}

// TestTouchNoticeAfterPIN: a key that needs a touch and a PIN from the
// prompt (PIN policy once, on the first use after the card was opened;
// PIN policy always, on every use): the touch notice comes only after the
// prompt returned, so that a touch timeout counted from the notice never
// counts the time a person takes to type the PIN. Before the fix the
// notice came first and the prompt was asked while "waiting for touch"
// showed.
func TestTouchNoticeAfterPIN(t *testing.T) {
	serial := rigSerials(t, 2)[0]
	ctx := context.Background()
	for _, tc := range []struct {
		slot   string
		policy piv.PINPolicy
	}{{"86", piv.PINPolicyOnce}, {"87", piv.PINPolicyAlways}} {
		setup := newTestProvider(t, Options{})
		if _, err := setup.Generate(ctx, uriOf(serial, tc.slot, "pin-value="+testPIN), GenerateOptions{Algorithm: piv.AlgorithmEd25519,
			PINPolicy: tc.policy, TouchPolicy: piv.TouchPolicyAlways, Overwrite: true}); err != nil {
			t.Fatalf("Generate: %v", err)
		}
		setup.Close()
		var mu sync.Mutex
		var typed, noted []time.Time
		p := newTestProvider(t, Options{
			Prompt: func(_ context.Context, what string) (string, error) {
				time.Sleep(300 * time.Millisecond) // a person typing
				mu.Lock()
				defer mu.Unlock()
				typed = append(typed, time.Now())
				return testPIN, nil
			},
			Touch: func(_ context.Context, what string) {
				mu.Lock()
				defer mu.Unlock()
				noted = append(noted, time.Now())
			},
		})
		s, err := p.Signer(ctx, uriOf(serial, tc.slot, ""))
		if err != nil {
			t.Fatalf("Signer: %v", err)
		}
		if _, err := s.SignKERI(ctx, []byte("touch after the PIN")); err != nil {
			t.Fatalf("slot %s: SignKERI: %v", tc.slot, err)
		}
		mu.Lock()
		if len(typed) != 1 || len(noted) != 1 || noted[0].Before(typed[0]) {
			t.Errorf("slot %s (PIN policy %d): PIN typed at %v, touch notices at %v; want one of each, the notice after the PIN", tc.slot, tc.policy, typed, noted)
		}
		mu.Unlock()
		p.Close()
	}
}
