package vpiv

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// testCard makes an in-memory card; mod may adjust its Config.
func testCard(t testing.TB, mod func(*Config)) *Card {
	t.Helper()
	cfg := Config{Serial: 12345678}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.internalErrors != 0 {
			t.Errorf("card recovered from %d internal errors", c.internalErrors)
		}
	})
	return c
}

// apdu builds a short command APDU.
func apdu(cla, ins, p1, p2 byte, data []byte) []byte {
	b := []byte{cla, ins, p1, p2}
	if len(data) > 0 {
		b = append(b, byte(len(data)))
		b = append(b, data...)
	}
	return b
}

// send transmits raw bytes and splits the answer.
func send(t testing.TB, c *Card, raw []byte) ([]byte, uint16) {
	t.Helper()
	out := c.Transmit(raw)
	if len(out) < 2 {
		t.Fatalf("answer to %x is %x: shorter than a status word", raw, out)
	}
	n := len(out) - 2
	return out[:n], uint16(out[n])<<8 | uint16(out[n+1])
}

// sendHex transmits an APDU written in hex (spaces allowed).
func sendHex(t testing.TB, c *Card, h string) ([]byte, uint16) {
	t.Helper()
	raw, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return send(t, c, raw)
}

// transmit sends a command the way piv-go does: command chaining over 255
// bytes, GET RESPONSE while the card answers 61xx.
func transmit(t testing.TB, c *Card, ins, p1, p2 byte, data []byte) ([]byte, uint16) {
	t.Helper()
	for len(data) > 255 {
		if _, sw := send(t, c, apdu(claChain, ins, p1, p2, data[:255])); sw != swOK {
			return nil, sw
		}
		data = data[255:]
	}
	resp, sw := send(t, c, apdu(0, ins, p1, p2, data))
	for sw&0xff00 == swMoreData {
		var more []byte
		more, sw = send(t, c, []byte{0, insGetResponse, 0, 0, 0})
		resp = append(resp, more...)
	}
	return resp, sw
}

// mustOK runs transmit and requires 9000.
func mustOK(t testing.TB, c *Card, ins, p1, p2 byte, data []byte) []byte {
	t.Helper()
	resp, sw := transmit(t, c, ins, p1, p2, data)
	if sw != swOK {
		t.Fatalf("%s %02x %02x: status %04x, want 9000", insName(ins), p1, p2, sw)
	}
	return resp
}

func selectPIV(t testing.TB, c *Card) {
	t.Helper()
	mustOK(t, c, insSelect, 0x04, 0x00, aidPIV[:5])
}

func verifyPIN(t testing.TB, c *Card, pin string) uint16 {
	t.Helper()
	_, sw := transmit(t, c, insVerify, 0, refPIN, padPIN(pin))
	return sw
}

// mgmtAuth authenticates with a 3DES or AES key the way piv-go does and
// returns the final status word.
func mgmtAuth(t testing.TB, c *Card, alg byte, key []byte) uint16 {
	t.Helper()
	var block cipher.Block
	var err error
	if alg == alg3DES {
		block, err = des.NewTripleDESCipher(key)
	} else {
		block, err = newAES(key)
	}
	if err != nil {
		t.Fatal(err)
	}
	n := block.BlockSize()
	resp, sw := transmit(t, c, insAuthenticate, alg, slotCardManagement, []byte{0x7c, 0x02, 0x80, 0x00})
	if sw != swOK {
		return sw
	}
	if len(resp) != 4+n || !bytes.Equal(resp[:4], []byte{0x7c, byte(n + 2), 0x80, byte(n)}) {
		t.Fatalf("witness answer %x", resp)
	}
	witness := make([]byte, n)
	block.Decrypt(witness, resp[4:])
	challenge := make([]byte, n)
	rand.Read(challenge)
	data := []byte{0x7c, byte(2 * (n + 2)), 0x80, byte(n)}
	data = append(data, witness...)
	data = append(data, 0x81, byte(n))
	data = append(data, challenge...)
	resp, sw = transmit(t, c, insAuthenticate, alg, slotCardManagement, data)
	if sw != swOK {
		return sw
	}
	want := make([]byte, n)
	block.Encrypt(want, challenge)
	if !bytes.Equal(resp, append([]byte{0x7c, byte(n + 2), 0x82, byte(n)}, want...)) {
		t.Fatalf("card's response %x, want encrypted challenge %x", resp, want)
	}
	return sw
}

// generate makes a key in slot after authenticating with the default key.
func generate(t testing.TB, c *Card, slot, alg, pp, tp byte) []byte {
	t.Helper()
	if sw := mgmtAuth(t, c, alg3DES, DefaultManagementKey); sw != swOK {
		t.Fatalf("management key authentication: %04x", sw)
	}
	resp := mustOK(t, c, insGenerate, 0, slot, []byte{0xac, 0x09, 0x80, 0x01, alg, 0xaa, 0x01, pp, 0xab, 0x01, tp})
	inner, err := parseOne(resp, tagPublicKey)
	if err != nil {
		t.Fatalf("generate answer %x: %v", resp, err)
	}
	point, err := parseOne(inner, tagPoint)
	if err != nil {
		t.Fatalf("generate answer %x: %v", resp, err)
	}
	return point
}

// signTemplate is GENERAL AUTHENTICATE's 7c { 82 00, 81 msg }.
func signTemplate(msg []byte) []byte {
	return tlvBytes(tagDynAuth, append([]byte{0x82, 0x00}, tlvBytes(tagChallenge, msg)...))
}

// fakeClock is a clock whose Sleep advances it and records the waits.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (f *fakeClock) Now() time.Time { return f.now }

func (f *fakeClock) Sleep(d time.Duration) {
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
}

func newAES(key []byte) (cipher.Block, error) { return aes.NewCipher(key) }
