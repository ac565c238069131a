//go:build vpiv

// End-to-end tests: piv-go against virtual cards behind the real pcscd and
// vpcd. They run inside the rig:
//
//	export VPIV_DIR=$(mktemp -d)
//	softhsm-test/vpiv-up 4 >"$VPIV_DIR/cards.tsv"
//	export VPIV_SERIALS=$(cut -f1 "$VPIV_DIR/cards.tsv" | paste -sd, -)
//	softhsm-test/vpiv-exec go test -tags vpiv -run E2E ./softhsm-test/vpiv/
//	softhsm-test/vpiv-down
//
// They use the last card of VPIV_SERIALS and leave it factory-fresh.

package vpiv_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"

	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

// rig is the running card rig, from VPIV_DIR and VPIV_SERIALS.
type rig struct {
	dir     string
	serials []uint32
}

func rigFromEnv(t testing.TB) rig {
	t.Helper()
	const how = "run inside the rig: softhsm-test/vpiv-up N, then softhsm-test/vpiv-exec go test -tags vpiv ./softhsm-test/vpiv/ with VPIV_DIR and VPIV_SERIALS exported"
	dir := os.Getenv("VPIV_DIR")
	if dir == "" {
		t.Fatalf("VPIV_DIR is not set: %s", how)
	}
	serials, err := vpiv.Serials(1)
	if err != nil {
		t.Fatalf("%v: %s", err, how)
	}
	return rig{dir: dir, serials: serials}
}

// open finds the card with serial among the readers, retrying while pcscd
// catches up. The caller closes it.
func open(t testing.TB, serial uint32) *piv.YubiKey {
	t.Helper()
	var lastErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		readers, err := piv.Cards()
		if err != nil {
			lastErr = err
			continue
		}
		for _, r := range readers {
			yk, err := piv.Open(r)
			if err != nil {
				lastErr = fmt.Errorf("%s: %w", r, err)
				continue
			}
			s, err := yk.Serial()
			if err == nil && s == serial {
				return yk
			}
			yk.Close()
		}
	}
	t.Fatalf("card %d not found: %v", serial, lastErr)
	return nil
}

// testCard is the card a test uses: the last of the rig.
type testCard struct {
	yk     *piv.YubiKey // replaced when a test reopens the card
	serial uint32
	rig    rig
}

// fresh opens the test card after a factory reset and resets it again when
// the test ends.
func fresh(t testing.TB) *testCard {
	t.Helper()
	r := rigFromEnv(t)
	c := &testCard{serial: r.serials[len(r.serials)-1], rig: r}
	c.yk = open(t, c.serial)
	if err := c.yk.Reset(); err != nil {
		c.yk.Close()
		t.Fatalf("reset: %v", err)
	}
	t.Cleanup(func() {
		if err := c.yk.Reset(); err != nil {
			t.Errorf("reset at the end: %v", err)
		}
		c.yk.Close()
	})
	return c
}

// apduLog is the card's APDU log; ok is false when the rig runs without
// one (VPIV_APDU_LOG=0).
func apduLog(t testing.TB, r rig, serial uint32) (log string, ok bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("card-%d.apdu.log", serial)))
	if errors.Is(err, os.ErrNotExist) {
		t.Logf("no APDU log for card %d (VPIV_APDU_LOG=0?): not checking it", serial)
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func TestE2EOpenSerialVersion(t *testing.T) {
	r := rigFromEnv(t)
	want := os.Getenv("VPIV_VERSION")
	if want == "" {
		want = "5.7.1"
	}
	for _, s := range r.serials {
		yk := open(t, s)
		v := yk.Version()
		if got := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch); got != want {
			t.Errorf("card %d: version %s, want %s", s, got, want)
		}
		yk.Close()
	}
}

func TestE2EGenerateSignP256(t *testing.T) {
	c := fresh(t)
	yk, serial, r := c.yk, c.serial, c.rig
	pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotSignature, piv.Key{
		Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever,
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := yk.KeyInfo(piv.SlotSignature)
	if err != nil {
		t.Fatal(err)
	}
	if info.Algorithm != piv.AlgorithmEC256 || info.PINPolicy != piv.PINPolicyOnce ||
		info.TouchPolicy != piv.TouchPolicyNever || info.Origin != piv.OriginGenerated {
		t.Errorf("KeyInfo %+v", info)
	}
	ecPub := pub.(*ecdsa.PublicKey)
	if !ecPub.Equal(info.PublicKey) {
		t.Fatal("KeyInfo's public key differs from GenerateKey's")
	}
	priv, err := yk.PrivateKey(piv.SlotSignature, pub, piv.KeyAuth{PIN: piv.DefaultPIN})
	if err != nil {
		t.Fatal(err)
	}
	signer := priv.(crypto.Signer)
	for i := range 3 {
		digest := sha256.Sum256([]byte(fmt.Sprintf("event %d", i)))
		sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("sign #%d: %v", i+1, err)
		}
		if !ecdsa.VerifyASN1(ecPub, digest[:], sig) {
			t.Fatalf("signature #%d does not verify", i+1)
		}
	}
	if log, ok := apduLog(t, r, serial); ok && strings.Contains(log, "313233343536ffff") {
		t.Error("the card's APDU log holds the PIN")
	}
}

func TestE2EEd25519LongMessage(t *testing.T) {
	c := fresh(t)
	yk, serial, r := c.yk, c.serial, c.rig
	pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotAuthentication, piv.Key{
		Algorithm: piv.AlgorithmEd25519, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever,
	})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := yk.PrivateKey(piv.SlotAuthentication, pub, piv.KeyAuth{PIN: piv.DefaultPIN})
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte(`{"v":"KERI10JSON"}`), 28)[:487]
	sig, err := priv.(crypto.Signer).Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub.(ed25519.PublicKey), msg, sig) {
		t.Fatal("Ed25519 signature over 487 bytes does not verify")
	}
	if log, ok := apduLog(t, r, serial); ok && !strings.Contains(log, "C-APDU 1087e09a") {
		t.Error("no chained GENERAL AUTHENTICATE (CLA 10) in the card's APDU log")
	}
}

func TestE2EWrongPINBlockUnblock(t *testing.T) {
	yk := fresh(t).yk
	var authErr piv.AuthErr
	if err := yk.VerifyPIN("654321"); !errors.As(err, &authErr) || authErr.Retries != 2 {
		t.Fatalf("wrong PIN: %v, want 2 retries left", err)
	}
	if n, err := yk.Retries(); err != nil || n != 2 {
		t.Fatalf("Retries: %d, %v", n, err)
	}
	if err := yk.VerifyPIN(piv.DefaultPIN); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		yk.VerifyPIN(fmt.Sprintf("00000%d", i))
	}
	err := yk.VerifyPIN(piv.DefaultPIN)
	if !errors.As(err, &authErr) || authErr.Retries != 0 || !strings.Contains(err.Error(), "6983") {
		t.Fatalf("right PIN on a blocked card: %v, want 6983", err)
	}
	if err := yk.Unblock("00000000", "111111"); !errors.As(err, &authErr) || authErr.Retries != 2 {
		t.Fatalf("unblock with a wrong PUK: %v, want 2 retries left", err)
	}
	if err := yk.Unblock(piv.DefaultPUK, "111111"); err != nil {
		t.Fatal(err)
	}
	if err := yk.VerifyPIN("111111"); err != nil {
		t.Fatalf("new PIN after unblock: %v", err)
	}
	if err := yk.SetPIN("111111", piv.DefaultPIN); err != nil {
		t.Fatal(err)
	}
}

func TestE2EAttestation(t *testing.T) {
	c := fresh(t)
	yk, serial, r := c.yk, c.serial, c.rig
	if _, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotKeyManagement, piv.Key{
		Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyAlways, TouchPolicy: piv.TouchPolicyCached,
	}); err != nil {
		t.Fatal(err)
	}
	slotCert, err := yk.Attest(piv.SlotKeyManagement)
	if err != nil {
		t.Fatal(err)
	}
	attCert, err := yk.AttestationCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := piv.Verify(attCert, slotCert); err == nil {
		t.Error("a virtual card's attestation verified against Yubico's roots")
	}
	pemBytes, err := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("card-%d.ca.pem", serial)))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("the card's CA PEM does not parse")
	}
	a, err := (&piv.Verifier{Roots: roots}).Verify(attCert, slotCert)
	if err != nil {
		t.Fatal(err)
	}
	if a.Serial != serial || a.Slot != piv.SlotKeyManagement || a.PINPolicy != piv.PINPolicyAlways ||
		a.TouchPolicy != piv.TouchPolicyCached || a.Version != yk.Version() || a.Formfactor != piv.FormfactorUSBAKeychain {
		t.Errorf("attestation %+v", a)
	}
	if _, err := yk.Attest(piv.SlotSignature); !errors.Is(err, piv.ErrNotFound) {
		t.Errorf("attest an empty slot: %v, want ErrNotFound", err)
	}
}

func TestE2ECertificatePutGet(t *testing.T) {
	yk := fresh(t).yk
	pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotAuthentication, piv.Key{
		Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever,
	})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := yk.PrivateKey(piv.SlotAuthentication, pub, piv.KeyAuth{})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "vpiv e2e", Organization: []string{"auths-agent tests"}},
		DNSNames:     []string{"a.example", "b.example", "c.example", "d.example", "e.example", "f.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(der) < 300 {
		t.Fatalf("certificate of %d bytes does not exercise chaining", len(der))
	}
	if err := yk.SetCertificate(piv.DefaultManagementKey, piv.SlotAuthentication, cert); err != nil {
		t.Fatal(err)
	}
	got, err := yk.Certificate(piv.SlotAuthentication)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Raw, der) {
		t.Fatal("certificate read back differs")
	}
	if _, err := yk.Certificate(piv.SlotSignature); !errors.Is(err, piv.ErrNotFound) {
		t.Errorf("empty certificate slot: %v, want ErrNotFound", err)
	}
}

func TestE2EManagementKeyAES(t *testing.T) {
	yk := fresh(t).yk
	aesKey := bytes.Repeat([]byte{0x5a}, 24)
	if err := yk.SetManagementKey(piv.DefaultManagementKey, aesKey); err != nil {
		t.Fatal(err)
	}
	opts := piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever}
	if _, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotAuthentication, opts); err == nil {
		t.Fatal("the old management key still works")
	}
	if _, err := yk.GenerateKey(aesKey, piv.SlotAuthentication, opts); err != nil {
		t.Fatalf("AES-192 management key: %v", err)
	}
}

func TestE2EPINAlwaysTouchCached(t *testing.T) {
	yk := fresh(t).yk
	pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotSignature, piv.Key{
		Algorithm: piv.AlgorithmEd25519, PINPolicy: piv.PINPolicyAlways, TouchPolicy: piv.TouchPolicyCached,
	})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := yk.PrivateKey(piv.SlotSignature, pub, piv.KeyAuth{PIN: piv.DefaultPIN})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		msg := []byte(fmt.Sprintf("message %d", i))
		sig, err := priv.(crypto.Signer).Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			t.Fatalf("sign #%d: %v", i+1, err)
		}
		if !ed25519.Verify(pub.(ed25519.PublicKey), msg, sig) {
			t.Fatalf("signature #%d does not verify", i+1)
		}
	}
	noPIN, err := yk.PrivateKey(piv.SlotSignature, pub, piv.KeyAuth{PINPolicy: piv.PINPolicyNever})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noPIN.(crypto.Signer).Sign(rand.Reader, []byte("x"), crypto.Hash(0)); err == nil || !strings.Contains(err.Error(), "6982") {
		t.Fatalf("sign without the PIN a PIN-always key needs: %v, want 6982", err)
	}
}
