package vpiv

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"
)

func TestSignP256(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	point := generate(t, c, 0x9a, algP256, pinOnce, touchNever)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		t.Fatal(err)
	}
	md := mustOK(t, c, insGetMetadata, 0, 0x9a, nil)
	want := append([]byte{0x01, 0x01, algP256, 0x02, 0x02, pinOnce, touchNever, 0x03, 0x01, originGenerated, 0x04, 0x43, 0x86, 0x41}, point...)
	if !bytes.Equal(md, want) {
		t.Fatalf("metadata\n got %x\nwant %x", md, want)
	}
	digest := sha256.Sum256([]byte("event"))
	if _, sw := transmit(t, c, insAuthenticate, algP256, 0x9a, signTemplate(digest[:])); sw != swSecurityStatus {
		t.Fatalf("sign before VERIFY: %04x, want 6982", sw)
	}
	if sw := verifyPIN(t, c, DefaultPIN); sw != swOK {
		t.Fatal(sw)
	}
	for i := range 2 { // PIN policy once: the verification lasts.
		resp := mustOK(t, c, insAuthenticate, algP256, 0x9a, signTemplate(digest[:]))
		inner, err := parseOne(resp, tagDynAuth)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := parseOne(inner, tagResponse)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			t.Fatalf("signature #%d does not verify", i+1)
		}
	}
	if _, sw := transmit(t, c, insAuthenticate, algEd25519, 0x9a, signTemplate(digest[:])); sw != swWrongP1P2 {
		t.Fatalf("sign with the wrong algorithm: %04x, want 6a86", sw)
	}
	if _, sw := transmit(t, c, insAuthenticate, algP256, 0x9a, signTemplate(make([]byte, 33))); sw != swWrongData {
		t.Fatalf("33-byte digest: %04x, want 6a80", sw)
	}
	// A power cycle forgets the PIN.
	c.PowerOff()
	c.PowerOn()
	selectPIV(t, c)
	if _, sw := transmit(t, c, insAuthenticate, algP256, 0x9a, signTemplate(digest[:])); sw != swSecurityStatus {
		t.Fatalf("sign after power cycle: %04x, want 6982", sw)
	}
}

func TestSignEd25519Chained(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	point := generate(t, c, 0x9c, algEd25519, pinNever, touchNever)
	msg := bytes.Repeat([]byte("KERI event "), 45)[:487]
	// The command is longer than 255 bytes: transmit chains it.
	resp := mustOK(t, c, insAuthenticate, algEd25519, 0x9c, signTemplate(msg))
	if len(resp) != 68 || !bytes.Equal(resp[:4], []byte{0x7c, 0x42, 0x82, 0x40}) {
		t.Fatalf("answer %x: want 7c 42 82 40 and 64 bytes", resp)
	}
	if !ed25519.Verify(ed25519.PublicKey(point), msg, resp[4:]) {
		t.Fatal("Ed25519 signature does not verify")
	}
	// A chain broken by another command is dropped.
	tmpl := signTemplate(msg)
	if _, sw := send(t, c, apdu(claChain, insAuthenticate, algEd25519, 0x9c, tmpl[:255])); sw != swOK {
		t.Fatal(sw)
	}
	mustOK(t, c, insGetVersion, 0, 0, nil)
	if _, sw := send(t, c, apdu(0, insAuthenticate, algEd25519, 0x9c, tmpl[255:])); sw != swWrongData {
		t.Fatalf("tail of a broken chain: %04x, want 6a80", sw)
	}
	// Ed25519 needs firmware 5.7.
	old := testCard(t, func(cfg *Config) { cfg.Version = [3]byte{5, 4, 3} })
	selectPIV(t, old)
	mgmtAuth(t, old, alg3DES, DefaultManagementKey)
	if _, sw := transmit(t, old, insGenerate, 0, 0x9a, []byte{0xac, 0x03, 0x80, 0x01, algEd25519}); sw != swWrongData {
		t.Fatalf("Ed25519 on 5.4.3: %04x, want 6a80", sw)
	}
}

func TestChainTooLong(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	chunk := make([]byte, 255)
	var sw uint16
	for i := 0; i < maxChain/255+2 && sw != swWrongLength; i++ {
		_, sw = send(t, c, apdu(claChain, insAuthenticate, algEd25519, 0x9c, chunk))
	}
	if sw != swWrongLength {
		t.Fatalf("endless chain: %04x, want 6700", sw)
	}
}

func TestPINPolicies(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	generate(t, c, 0x9c, algP256, pinDefault, touchDefault) // 9c defaults to PIN always
	generate(t, c, 0x9e, algP256, pinDefault, touchDefault) // 9e defaults to PIN never
	generate(t, c, 0x9d, algP256, pinDefault, touchDefault) // others default to once
	for slot, want := range map[byte]byte{0x9c: pinAlways, 0x9e: pinNever, 0x9d: pinOnce} {
		md := mustOK(t, c, insGetMetadata, 0, slot, nil)
		if md[5] != want || md[6] != touchNever {
			t.Errorf("slot %02x policies %x, want %02x 01", slot, md[5:7], want)
		}
	}
	digest := make([]byte, 32)
	sign := func(slot byte) uint16 {
		_, sw := transmit(t, c, insAuthenticate, algP256, slot, signTemplate(digest))
		return sw
	}
	if sw := sign(0x9e); sw != swOK {
		t.Fatalf("PIN never: %04x", sw)
	}
	if sw := sign(0x9c); sw != swSecurityStatus {
		t.Fatalf("PIN always without VERIFY: %04x", sw)
	}
	verifyPIN(t, c, DefaultPIN)
	if sw := sign(0x9c); sw != swOK {
		t.Fatalf("PIN always after VERIFY: %04x", sw)
	}
	if sw := sign(0x9c); sw != swSecurityStatus {
		t.Fatalf("PIN always, second sign: %04x, want 6982", sw)
	}
	if sw := sign(0x9d); sw != swOK {
		t.Fatalf("PIN once while verified: %04x", sw)
	}
}

func TestTouchAndLatency(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c := testCard(t, func(cfg *Config) {
		cfg.Now, cfg.Sleep = clk.Now, clk.Sleep
		cfg.TouchDelay = 700 * time.Millisecond
		cfg.Latency = 50 * time.Millisecond
	})
	selectPIV(t, c)
	generate(t, c, 0x9a, algP256, pinNever, touchAlways)
	generate(t, c, 0x9d, algP256, pinNever, touchCached)
	digest := make([]byte, 32)
	sign := func(slot byte) []time.Duration {
		clk.sleeps = nil
		mustOK(t, c, insAuthenticate, algP256, slot, signTemplate(digest))
		return clk.sleeps
	}
	touch, lat := 700*time.Millisecond, 50*time.Millisecond
	check := func(what string, got []time.Duration, want ...time.Duration) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: waits %v, want %v", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: waits %v, want %v", what, got, want)
			}
		}
	}
	check("touch always #1", sign(0x9a), touch, lat)
	check("touch always #2", sign(0x9a), touch, lat)
	check("touch cached right after a touch", sign(0x9d), lat)
	clk.now = clk.now.Add(16 * time.Second)
	check("touch cached after 16 s", sign(0x9d), touch, lat)
	check("touch cached again", sign(0x9d), lat)
}

// TestTouchNeverComes: a card with a touch timeout shorter than its touch
// delay waits the timeout and refuses with 6982, as a YubiKey does when
// nobody touches it; a cached touch policy is not satisfied by it.
func TestTouchNeverComes(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c := testCard(t, func(cfg *Config) {
		cfg.Now, cfg.Sleep = clk.Now, clk.Sleep
		cfg.TouchDelay, cfg.TouchTimeout = time.Hour, 15*time.Second
	})
	selectPIV(t, c)
	generate(t, c, 0x9a, algP256, pinNever, touchAlways)
	generate(t, c, 0x9d, algP256, pinNever, touchCached)
	digest := make([]byte, 32)
	for _, slot := range []byte{0x9a, 0x9d, 0x9d} {
		clk.sleeps = nil
		if _, sw := transmit(t, c, insAuthenticate, algP256, slot, signTemplate(digest)); sw != swSecurityStatus {
			t.Errorf("slot %02x: status %04x, want 6982", slot, sw)
		}
		if len(clk.sleeps) != 1 || clk.sleeps[0] != 15*time.Second {
			t.Errorf("slot %02x: waits %v, want [15s]", slot, clk.sleeps)
		}
	}
}

func TestECDH(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	point := generate(t, c, 0x9d, algP256, pinNever, touchNever)
	peer, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := tlvBytes(tagDynAuth, append([]byte{0x82, 0x00}, tlvBytes(tagExp, peer.PublicKey().Bytes())...))
	resp := mustOK(t, c, insAuthenticate, algP256, 0x9d, tmpl)
	cardPub, err := ecdh.P256().NewPublicKey(point)
	if err != nil {
		t.Fatal(err)
	}
	want, err := peer.ECDH(cardPub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp, tlvBytes(tagDynAuth, tlvBytes(tagResponse, want))) {
		t.Fatalf("shared secret answer %x, want %x", resp, want)
	}
}

func TestImportKey(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	seed := bytes.Repeat([]byte{7}, 32)
	data := append(tlvBytes(0x07, seed), 0xaa, 0x01, pinNever, 0xab, 0x01, touchNever)
	if _, sw := transmit(t, c, insImportKey, algEd25519, 0x9a, data); sw != swSecurityStatus {
		t.Fatalf("import without management key: %04x", sw)
	}
	mgmtAuth(t, c, alg3DES, DefaultManagementKey)
	mustOK(t, c, insImportKey, algEd25519, 0x9a, data)
	md := mustOK(t, c, insGetMetadata, 0, 0x9a, nil)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	if !bytes.Contains(md, []byte{0x03, 0x01, originImported}) || !bytes.HasSuffix(md, pub) {
		t.Fatalf("metadata %x: want imported, public %x", md, pub)
	}
	if _, sw := transmit(t, c, insAttest, 0x9a, 0, nil); sw != swWrongData {
		t.Fatalf("attest an imported key: %04x, want 6a80", sw)
	}
}
