package piv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/go-piv/piv-go/v2/piv"
)

func TestDERToRaw(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		d := sha256.Sum256([]byte{byte(i)})
		der, err := ecdsa.SignASN1(rand.Reader, key, d[:])
		if err != nil {
			t.Fatal(err)
		}
		raw, err := derToRaw(der, 32)
		if err != nil {
			t.Fatalf("derToRaw(%x): %v", der, err)
		}
		if len(raw) != 64 {
			t.Fatalf("len %d", len(raw))
		}
		r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
		if !ecdsa.Verify(&key.PublicKey, d[:], r, s) {
			t.Fatalf("raw signature %x does not verify", raw)
		}
	}
}

// derSig builds a DER signature from r and s given as bytes, as a card may
// send them (short values, leading zeros).
func derSig(r, s []byte) []byte {
	intTLV := func(b []byte) []byte { return append([]byte{0x02, byte(len(b))}, b...) }
	body := append(intTLV(r), intTLV(s)...)
	return append([]byte{0x30, byte(len(body))}, body...)
}

func TestDERToRawPadsShortValues(t *testing.T) {
	raw, err := derToRaw(derSig([]byte{0x01}, []byte{0x00, 0x80}), 32)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 64)
	want[31], want[63] = 0x01, 0x80
	if !bytes.Equal(raw, want) {
		t.Errorf("got %x, want %x", raw, want)
	}
}

func TestDERToRawRejects(t *testing.T) {
	big33 := append([]byte{0x01}, bytes.Repeat([]byte{0xff}, 32)...)
	good := derSig([]byte{1}, []byte{2})
	for name, der := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("not DER"),
		"trailing":  append(append([]byte(nil), good...), 0),
		"zero r":    derSig([]byte{0}, []byte{2}),
		"negative":  derSig([]byte{0x80}, []byte{2}),
		"r too big": derSig(big33, []byte{2}),
		"truncated": good[:len(good)-1],
	} {
		if _, err := derToRaw(der, 32); err == nil {
			t.Errorf("%s: derToRaw(%x) succeeded", name, der)
		}
	}
}

// metadataLike indexes an answer the way piv-go v2.6 reads the GET
// METADATA answer for key 9b (resp[2:][0]) without a length check.
func metadataLike(resp []byte) error {
	if resp[2:][0] != 0x03 {
		return errors.New("not 3DES")
	}
	return nil
}

func TestGuardRecoversPanics(t *testing.T) {
	err := guard(func() error { return metadataLike([]byte{0x01, 0x01}) })
	if !errors.Is(err, ErrCardPanic) {
		t.Fatalf("guard: %v; want ErrCardPanic", err)
	}
	if !strings.Contains(err.Error(), "index out of range") {
		t.Errorf("error %q does not say what panicked", err)
	}
	err = explain(10000001, err)
	if !strings.HasPrefix(err.Error(), "card 10000001: ") || !errors.Is(err, ErrCardPanic) {
		t.Errorf("explain: %q", err)
	}
	if err := guard(func() error { return metadataLike([]byte{1, 1, 3}) }); err != nil {
		t.Errorf("guard on a good answer: %v", err)
	}
	err = guard(func() error { panic("secret-looking value 123456") })
	if !errors.Is(err, ErrCardPanic) || strings.Contains(err.Error(), "123456") {
		t.Errorf("guard(panic(string)) = %q; want ErrCardPanic without the value", err)
	}
}

// pcscErr makes an error with the text piv-go gives a PC/SC return code.
func pcscErr(msg string) error { return fmt.Errorf("transmitting request: %w", errors.New(msg)) }

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		err   error
		is    error
		parts []string
	}{
		{pcscErr("the Smart card resource manager is not running"), ErrNoPCSCD, []string{"start pcscd"}},
		{pcscErr("the smart card has been removed, so further communication is not possible"), hsm.ErrTokenAbsent, []string{"card 7: ", "reopens"}},
		{fmt.Errorf("verify pin: %w", piv.AuthErr{Retries: 0}), hsm.ErrPINBlocked, []string{"card 7: ", "PUK"}},
	} {
		got := explain(7, tc.err)
		if !errors.Is(got, tc.is) {
			t.Errorf("explain(%v) = %v; want it to match %v", tc.err, got, tc.is)
		}
		for _, p := range tc.parts {
			if !strings.Contains(got.Error(), p) {
				t.Errorf("explain(%v) = %q; want %q in it", tc.err, got, p)
			}
		}
	}
	if !isStale(pcscErr("the smart card has been reset, so any shared state information is invalid")) {
		t.Error("reset card is not stale")
	}
	if isTransport(errors.New("smart card error 6982: security status not satisfied")) {
		t.Error("6982 taken for a transport error")
	}
}

func TestReaderNote(t *testing.T) {
	if n := readerNote("R", errors.New("getting yubikey version: command failed: smart card error 6d00")); !strings.Contains(n, "not a YubiKey") {
		t.Errorf("not-a-YubiKey note: %q", n)
	}
	if n := readerNote("R", pcscErr("the operation requires a Smart Card, but no Smart Card is currently in the device")); n != "" {
		t.Errorf("empty reader note: %q", n)
	}
	if n := readerNote("R", pcscErr("the smart card cannot be accessed because of other connections outstanding")); !strings.Contains(n, "another program") {
		t.Errorf("sharing violation note: %q", n)
	}
}

func TestManagementKeyFrom(t *testing.T) {
	dir := t.TempDir()
	aes := bytes.Repeat([]byte{0xab}, 16)
	file := filepath.Join(dir, "mk")
	if err := os.WriteFile(file, []byte(" abababababababababababababababab\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MK": "0102030405060708010203040506070801020304050607080", "MK24": strings.Repeat("0a", 24)}
	getenv := func(k string) string { return env[k] }

	if k, err := ManagementKeyFrom("", getenv); err != nil || !bytes.Equal(k, piv.DefaultManagementKey) {
		t.Errorf("default: %x, %v", k, err)
	}
	if k, err := ManagementKeyFrom("file:"+file, getenv); err != nil || !bytes.Equal(k, aes) {
		t.Errorf("file: %x, %v", k, err)
	}
	if k, err := ManagementKeyFrom("env:MK24", getenv); err != nil || len(k) != 24 {
		t.Errorf("env: %x, %v", k, err)
	}
	for _, src := range []string{"env:MK", "env:NONE", "env:", "file:", "file:" + filepath.Join(dir, "missing"),
		"010203040506070801020304050607080102030405060708", "hex:0102"} {
		k, err := ManagementKeyFrom(src, getenv)
		if err == nil {
			t.Errorf("ManagementKeyFrom(%q) = %x; want an error", src, k)
			continue
		}
		if strings.Contains(err.Error(), "0102030405") {
			t.Errorf("ManagementKeyFrom(%q): error %q shows key material", src, err)
		}
	}
}

func TestParsePolicies(t *testing.T) {
	if a, err := ParseAlgorithm("ed25519"); err != nil || a != piv.AlgorithmEd25519 {
		t.Errorf("ed25519: %v %v", a, err)
	}
	if a, err := ParseAlgorithm("P256"); err != nil || a != piv.AlgorithmEC256 {
		t.Errorf("P256: %v %v", a, err)
	}
	if _, err := ParseAlgorithm("rsa2048"); err == nil {
		t.Error("rsa2048 accepted")
	}
	for s, want := range map[string]piv.PINPolicy{"never": piv.PINPolicyNever, "once": piv.PINPolicyOnce, "always": piv.PINPolicyAlways} {
		if p, err := ParsePINPolicy(s); err != nil || p != want || PINPolicyName(p) != s {
			t.Errorf("PIN policy %s: %v %v", s, p, err)
		}
	}
	for s, want := range map[string]piv.TouchPolicy{"never": piv.TouchPolicyNever, "always": piv.TouchPolicyAlways, "cached": piv.TouchPolicyCached} {
		if p, err := ParseTouchPolicy(s); err != nil || p != want || TouchPolicyName(p) != s {
			t.Errorf("touch policy %s: %v %v", s, p, err)
		}
	}
	if _, err := ParsePINPolicy("sometimes"); err == nil {
		t.Error("PIN policy sometimes accepted")
	}
	if _, err := ParseTouchPolicy("maybe"); err == nil {
		t.Error("touch policy maybe accepted")
	}
}

func TestSlots(t *testing.T) {
	s := Slots()
	if len(s) != 24 {
		t.Fatalf("%d slots", len(s))
	}
	for _, n := range s {
		if !hsm.ValidPIVSlot(n) {
			t.Errorf("slot %02x not valid for hsm", n)
		}
		if _, err := pivSlot(n); err != nil {
			t.Errorf("pivSlot(%02x): %v", n, err)
		}
	}
	if _, err := pivSlot(0x9b); !errors.Is(err, hsm.ErrBadURI) {
		t.Errorf("pivSlot(9b): %v", err)
	}
}

func TestSignerURIBadInput(t *testing.T) {
	p := NewProvider(Options{})
	defer p.Close()
	ctx := context.Background()
	for _, uri := range []string{"piv:serial=1", "piv:serial=1;slot=9b", "pkcs11:token=x", "piv:slot=9c;pin-value=1234"} {
		_, err := p.Signer(ctx, uri)
		if !errors.Is(err, hsm.ErrBadURI) {
			t.Errorf("Signer(%q): %v; want ErrBadURI", uri, err)
		}
		if err != nil && strings.Contains(err.Error(), "1234") {
			t.Errorf("Signer(%q): error %q shows the PIN", uri, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Signer(cctx, "piv:serial=1;slot=9c"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Signer: %v", err)
	}
}

// TestNoPCSCD runs itself again with libpcsclite pointed at a socket that
// does not exist: every call fails with "start pcscd", nothing panics.
func TestNoPCSCD(t *testing.T) {
	if os.Getenv("PIV_TEST_NO_PCSCD") == "1" {
		p := NewProvider(Options{})
		defer p.Close()
		ctx := context.Background()
		for _, uri := range []string{"piv:slot=9c", "piv:serial=10000001;slot=9c"} {
			_, err := p.Signer(ctx, uri)
			if !errors.Is(err, ErrNoPCSCD) || !strings.Contains(err.Error(), "start pcscd") {
				t.Errorf("Signer(%q) without pcscd: %v", uri, err)
			}
		}
		if _, _, err := p.Cards(ctx); !errors.Is(err, ErrNoPCSCD) {
			t.Errorf("Cards without pcscd: %v", err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoPCSCD$", "-test.v")
	cmd.Env = append(os.Environ(), "PIV_TEST_NO_PCSCD=1", "PCSCLITE_CSOCK_NAME="+filepath.Join(t.TempDir(), "no-pcscd.comm"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNoPCSCD") {
		t.Fatalf("child test: %v\n%s", err, out)
	}
}
