package vpiv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

func TestPutGetDataChained(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	obj := bytes.Repeat([]byte{0xab}, 1000)
	put := append([]byte{0x5c, 0x03, 0x5f, 0xc1, 0x0a}, tlvBytes(tagDataObject, obj)...)
	if _, sw := transmit(t, c, insPutData, 0x3f, 0xff, put); sw != swSecurityStatus {
		t.Fatalf("PUT DATA without management key: %04x", sw)
	}
	mgmtAuth(t, c, alg3DES, DefaultManagementKey)
	mustOK(t, c, insPutData, 0x3f, 0xff, put)

	// The answer comes in 256-byte pieces: 61xx, then GET RESPONSE.
	resp, sw := send(t, c, apdu(0, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x0a}))
	if sw != swMoreData || len(resp) != 256 {
		t.Fatalf("first piece: %d bytes, %04x, want 256 bytes and 6100", len(resp), sw)
	}
	all := resp
	var pieces int
	for sw != swOK {
		if sw&0xff00 != swMoreData {
			t.Fatalf("status %04x", sw)
		}
		resp, sw = send(t, c, []byte{0, insGetResponse, 0, 0, 0})
		all = append(all, resp...)
		pieces++
	}
	if pieces != 3 || !bytes.Equal(all, tlvBytes(tagDataObject, obj)) {
		t.Fatalf("%d GET RESPONSEs, %d bytes: want 3 and the object back", pieces, len(all))
	}
	// Another command drops the pending answer.
	send(t, c, apdu(0, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x0a}))
	mustOK(t, c, insGetVersion, 0, 0, nil)
	if _, sw := send(t, c, []byte{0, insGetResponse, 0, 0, 0}); sw != swConditions {
		t.Fatalf("GET RESPONSE after another command: %04x, want 6985", sw)
	}
	// Empty content deletes; too much is refused.
	mustOK(t, c, insPutData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x0a, 0x53, 0x00})
	if _, sw := transmit(t, c, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x0a}); sw != swNotFound {
		t.Fatalf("deleted object: %04x, want 6a82", sw)
	}
	big := append([]byte{0x5c, 0x03, 0x5f, 0xc1, 0x0a}, tlvBytes(tagDataObject, make([]byte, maxObject+1))...)
	if _, sw := transmit(t, c, insPutData, 0x3f, 0xff, big); sw != swNoSpace {
		t.Fatalf("oversized object: %04x, want 6a84", sw)
	}
	// The printed information object needs the PIN.
	mustOK(t, c, insPutData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x09, 0x53, 0x02, 0x88, 0x00})
	if _, sw := transmit(t, c, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x09}); sw != swSecurityStatus {
		t.Fatalf("printed object without PIN: %04x, want 6982", sw)
	}
	verifyPIN(t, c, DefaultPIN)
	mustOK(t, c, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xc1, 0x09})
}

func TestAttest(t *testing.T) {
	c := testCard(t, func(cfg *Config) { cfg.Serial = 10000042 })
	selectPIV(t, c)
	point := generate(t, c, 0x9d, algP256, pinAlways, touchCached)
	der := mustOK(t, c, insAttest, 0x9d, 0, nil)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	obj := mustOK(t, c, insGetData, 0x3f, 0xff, []byte{0x5c, 0x03, 0x5f, 0xff, 0x01})
	v, err := parseOne(obj, tagDataObject)
	if err != nil {
		t.Fatal(err)
	}
	items, err := parseTLVs(v)
	if err != nil {
		t.Fatal(err)
	}
	attDER, _ := find(items, 0x70)
	att, err := x509.ParseCertificate(attDER)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(c.CACertificatePEM()) {
		t.Fatal("CA PEM does not parse")
	}
	inter := x509.NewCertPool()
	inter.AddCert(att)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("attestation chain: %v", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(cert.PublicKey) {
		t.Fatal("attested key is not the slot's key")
	}
	if cert.Subject.CommonName != "YubiKey PIV Attestation 9d" {
		t.Errorf("subject %q", cert.Subject.CommonName)
	}
	exts := map[string][]byte{}
	for _, e := range cert.Extensions {
		exts[e.Id.String()] = e.Value
	}
	var serial int64
	if _, err := asn1.Unmarshal(exts[oidSerial.String()], &serial); err != nil || serial != 10000042 {
		t.Errorf("serial extension %x (%v)", exts[oidSerial.String()], err)
	}
	if !bytes.Equal(exts[oidPolicy.String()], []byte{pinAlways, touchCached}) {
		t.Errorf("policy extension %x", exts[oidPolicy.String()])
	}
	if !bytes.Equal(exts[oidFirmware.String()], []byte{5, 7, 1}) {
		t.Errorf("firmware extension %x", exts[oidFirmware.String()])
	}
}

func TestStatePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.json")
	c := testCard(t, func(cfg *Config) { cfg.StatePath = path; cfg.Serial = 77 })
	selectPIV(t, c)
	point := generate(t, c, 0x9a, algEd25519, pinOnce, touchNever)
	verifyPIN(t, c, "000000")
	ca := c.CACertificatePEM()

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(DefaultPIN)) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(padPIN(DefaultPIN)))) {
		t.Fatal("the state file holds a PIN in the clear")
	}
	again := testCard(t, func(cfg *Config) { cfg.StatePath = path; cfg.Serial = 77 })
	selectPIV(t, again)
	md := mustOK(t, again, insGetMetadata, 0, 0x9a, nil)
	if !bytes.HasSuffix(md, point) {
		t.Fatal("key lost across restart")
	}
	if _, sw := transmit(t, again, insVerify, 0, refPIN, nil); sw != 0x63c2 {
		t.Fatalf("PIN tries after restart: %04x, want 63c2", sw)
	}
	if !bytes.Equal(again.CACertificatePEM(), ca) {
		t.Fatal("attestation CA changed across restart")
	}
	if _, err := New(Config{Serial: 999, StatePath: path}); err == nil {
		t.Fatal("a state file of another serial was accepted")
	}
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Serial: 77, StatePath: path}); err == nil {
		t.Fatal("a corrupt state file was accepted")
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	if len(matches) != 0 {
		t.Fatalf("temporary files left: %v", matches)
	}
}
