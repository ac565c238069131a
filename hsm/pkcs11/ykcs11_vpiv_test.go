//go:build vpiv

package pkcs11

// The PKCS#11 backend through Yubico's own module, ykcs11, on a virtual PIV
// card of the rig (softhsm-test/vpiv-up): a P-256 key generated through
// hsm/piv is found, read and used through ykcs11 by this package. Run inside
// the rig (softhsm-test/vpiv-exec) with VPIV_DIR and VPIV_SERIALS set; make
// test does this.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	pivgo "github.com/go-piv/piv-go/v2/piv"
	p11 "github.com/miekg/pkcs11"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/hsmtest"
	hsmpiv "github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

const (
	// ykcs11Module is Debian's ykcs11 (package ykcs11).
	ykcs11Module = "/usr/lib/x86_64-linux-gnu/libykcs11.so"
	// vpivPIN is a fresh virtual card's PIN.
	vpivPIN = "123456"
	// ykcs11Slot is the PIV slot of the test key, and ykcs11KeyLabel the
	// label ykcs11 gives the private key in it (ykcs11 names objects by
	// slot: 9a "PIV Authentication", 9c "Digital Signature", …).
	ykcs11Slot     = "9c"
	ykcs11KeyLabel = "Private key for Digital Signature"
)

// lastVPIVSerial returns the last card serial of VPIV_SERIALS: hsm/piv's
// tests use the first ones, this package the last.
func lastVPIVSerial(t *testing.T) uint32 {
	t.Helper()
	out, err := vpiv.Serials(1)
	if err != nil {
		t.Fatalf("%v: run it as softhsm-test/vpiv-up 4, then softhsm-test/vpiv-exec go test -tags vpiv ./hsm/pkcs11/ (make test does this)", err)
	}
	return out[len(out)-1]
}

// verifyPINCount counts the VERIFY commands carrying a PIN in the card's
// APDU log (-1 when the rig keeps no log).
func verifyPINCount(t *testing.T, serial uint32) int {
	t.Helper()
	dir := os.Getenv("VPIV_DIR")
	if dir == "" {
		t.Fatal("VPIV_DIR is not set: run the tests through softhsm-test/vpiv-exec")
	}
	f, err := os.Open(filepath.Join(dir, fmt.Sprintf("card-%d.apdu.log", serial)))
	if err != nil {
		return -1
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "C-APDU 0020008008") {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// generateOnCard makes a P-256 key (PIN once, touch never) in slot on card
// serial through hsm/piv and returns its CESR public key. The PIV provider
// is closed before returning: piv-go holds a card exclusively, and ykcs11
// cannot open it meanwhile.
func generateOnCard(t *testing.T, serial uint32, slot string) kel.Verfer {
	t.Helper()
	ctx := context.Background()
	pp := hsmpiv.NewProvider(hsmpiv.Options{})
	defer func() {
		if err := pp.Close(); err != nil {
			t.Errorf("closing the PIV provider: %v", err)
		}
	}()
	uri := fmt.Sprintf("piv:serial=%d;slot=%s?pin-value=%s", serial, slot, vpivPIN)
	s, err := pp.Generate(ctx, uri, hsmpiv.GenerateOptions{
		Algorithm: pivgo.AlgorithmEC256, PINPolicy: pivgo.PINPolicyOnce, TouchPolicy: pivgo.TouchPolicyNever, Overwrite: true,
	})
	if err != nil {
		t.Fatalf("generating a P-256 key through hsm/piv: %v", err)
	}
	v, err := hsm.Verfer(s)
	if err != nil {
		t.Fatalf("hsm.Verfer of the PIV key: %v", err)
	}
	if v.Algorithm() != kel.P256 {
		t.Fatalf("hsm/piv generated a %v key, want P-256", v.Algorithm())
	}
	return v
}

// checkCardPIN signs with the key through hsm/piv and the factory PIN: the
// card's PIN is still the factory one and not blocked after ykcs11 used it.
func checkCardPIN(t *testing.T, serial uint32, slot string, want kel.Verfer) {
	t.Helper()
	ctx := context.Background()
	pp := hsmpiv.NewProvider(hsmpiv.Options{})
	defer pp.Close()
	s, err := pp.Signer(ctx, fmt.Sprintf("piv:serial=%d;slot=%s?pin-value=%s", serial, slot, vpivPIN))
	if err != nil {
		t.Fatalf("reopening the key through hsm/piv after ykcs11: %v", err)
	}
	msg := []byte("signed through hsm/piv after ykcs11")
	sig, err := s.SignKERI(ctx, msg)
	if err != nil {
		t.Fatalf("signing through hsm/piv with the factory PIN after ykcs11: %v", err)
	}
	if !want.Verify(msg, sig) {
		t.Error("signature through hsm/piv after ykcs11 does not verify")
	}
}

// TestYKCS11VirtualCard runs the hsm.Signer contract on the PKCS#11 backend
// through ykcs11, on a P-256 key that hsm/piv generated on a virtual card.
func TestYKCS11VirtualCard(t *testing.T) {
	serial := lastVPIVSerial(t)
	if _, err := os.Stat(ykcs11Module); err != nil {
		t.Fatalf("ykcs11: %v (install Debian's ykcs11 package; make test does)", err)
	}
	ctx := context.Background()

	want := generateOnCard(t, serial, ykcs11Slot)
	t.Logf("card %d slot %s: hsm/piv generated %s", serial, ykcs11Slot, want.QB64())
	verifiesBefore := verifyPINCount(t, serial)

	// A second provider, for another module than TestMain's SoftHSM one.
	yk, err := Open(ykcs11Module, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", ykcs11Module, err)
	}
	ykOpen := true
	closeYK := func() {
		if ykOpen {
			ykOpen = false
			if err := yk.Close(); err != nil {
				t.Errorf("closing the ykcs11 provider: %v", err)
			}
		}
	}
	defer closeYK()

	// The tokens ykcs11 reports: pick the card by its serial.
	infos, err := yk.tokenInfos()
	if err != nil {
		t.Fatalf("listing ykcs11 tokens: %v", err)
	}
	wantSerial := strconv.FormatUint(uint64(serial), 10)
	var label, tokSerial string
	var seen []string
	for _, ti := range infos {
		seen = append(seen, fmt.Sprintf("%q (serial %q, manufacturer %q, model %q)", ti.Label, ti.SerialNumber, ti.ManufacturerID, ti.Model))
		if ti.SerialNumber == wantSerial || strings.TrimLeft(ti.SerialNumber, "0") == wantSerial {
			label, tokSerial = ti.Label, ti.SerialNumber
		}
	}
	t.Logf("ykcs11 tokens: %s", strings.Join(seen, "; "))
	if tokSerial == "" {
		t.Fatalf("ykcs11 reports no token with serial %s among %d: %s", wantSerial, len(infos), strings.Join(seen, "; "))
	}

	base := &hsm.PKCS11URI{ModulePath: ykcs11Module, Token: label, Serial: tokSerial}
	withPIN := func(u *hsm.PKCS11URI) *hsm.PKCS11URI {
		t.Helper()
		return mustURI(t, u.String()+"&pin-value="+vpivPIN)
	}

	// The keys on the card's token, through ykcs11.
	keys, err := yk.List(ctx, withPIN(base))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var listed *KeyInfo
	for i, k := range keys {
		t.Logf("ykcs11 key %q id %s: %s %s", k.Label, k.IDHex(), k.Type, k.Verfer.QB64())
		if k.Label == ykcs11KeyLabel {
			listed = &keys[i]
		}
	}
	if listed == nil {
		t.Fatalf("List found no key labelled %q on token %q among %d keys", ykcs11KeyLabel, label, len(keys))
	}
	if listed.Algorithm != kel.P256 || listed.Verfer.QB64() != want.QB64() {
		t.Errorf("List: key %q is %s %s; hsm/piv generated P-256 %s", listed.Label, listed.Type, listed.Verfer.QB64(), want.QB64())
	}

	// The signer, by object label.
	u := withPIN(base.WithKey(ykcs11KeyLabel, nil))
	s, err := yk.Signer(ctx, u)
	if err != nil {
		t.Fatalf("Signer(%s): %v", u, err)
	}
	got, err := hsm.Verfer(s)
	if err != nil {
		t.Fatalf("hsm.Verfer of the ykcs11 signer: %v", err)
	}
	if got.QB64() != want.QB64() {
		t.Fatalf("the CESR public key through ykcs11 is %s; hsm/piv generated %s", got.QB64(), want.QB64())
	}
	t.Logf("signer %s; CKA_ALWAYS_AUTHENTICATE=%v", hsm.Describe(s), s.alwaysAuth)
	logECParams(t, yk, u)

	hsmtest.TestSigner(t, s, vpivPIN)

	// The same key, by id.
	byID := withPIN(base.WithKey("", listed.ID))
	s2, err := yk.Signer(ctx, byID)
	if err != nil {
		t.Fatalf("Signer(%s): %v", byID, err)
	}
	msg := []byte("signed through ykcs11, key named by id")
	sig, err := s2.SignKERI(ctx, msg)
	if err != nil {
		t.Fatalf("SignKERI by id: %v", err)
	}
	if !want.Verify(msg, sig) {
		t.Error("signature by id does not verify with the key hsm/piv generated")
	}

	closeYK()
	if before, after := verifiesBefore, verifyPINCount(t, serial); before >= 0 && after >= 0 {
		t.Logf("card %d: %d VERIFY commands with a PIN through ykcs11", serial, after-before)
	}
	checkCardPIN(t, serial, ykcs11Slot, want)
}

// logECParams says in what form ykcs11 gives the curve of the key u names
// (a named-curve OID, or explicit parameters, which x509 parsers refuse).
func logECParams(t *testing.T, p *Provider, u *hsm.PKCS11URI) {
	t.Helper()
	err := p.withSession(context.Background(), u, func(tk *token, sh p11.SessionHandle) error {
		k, err := tk.findKey(sh, u)
		if err != nil {
			return err
		}
		for _, o := range []struct {
			what  string
			class uint
		}{{"private", p11.CKO_PRIVATE_KEY}, {"public", p11.CKO_PUBLIC_KEY}} {
			hs, err := p.find(sh, []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, o.class), p11.NewAttribute(p11.CKA_ID, k.info.ID)}, 1)
			if err != nil || len(hs) != 1 {
				t.Logf("%s key object with id %x: %d found (%v)", o.what, k.info.ID, len(hs), err)
				continue
			}
			params, point := p.getAttr(sh, hs[0], p11.CKA_EC_PARAMS), p.getAttr(sh, hs[0], p11.CKA_EC_POINT)
			form := "absent"
			switch {
			case bytes.Equal(params, oidP256):
				form = "named curve (OID 1.2.840.10045.3.1.7)"
			case len(params) > 0 && params[0] == 0x30:
				form = fmt.Sprintf("explicit parameters (%d-byte SEQUENCE)", len(params))
			case len(params) > 0:
				form = fmt.Sprintf("%d bytes starting %02x", len(params), params[0])
			}
			t.Logf("ykcs11 %s key object: CKA_EC_PARAMS %s; CKA_EC_POINT %d bytes", o.what, form, len(point))
		}
		return nil
	})
	if err != nil {
		t.Errorf("reading the key's attributes: %v", err)
	}
}
