package vpiv

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestSelect(t *testing.T) {
	c := testCard(t, nil)
	if _, sw := sendHex(t, c, "00fd000000"); sw != swInsNotSupported {
		t.Errorf("GET VERSION before SELECT: %04x, want 6d00", sw)
	}
	resp, sw := sendHex(t, c, "00a4040005a000000308")
	if sw != swOK || !bytes.Equal(resp, selectAnswer) {
		t.Errorf("SELECT PIV: %x %04x, want the trace's %x 9000", resp, sw, selectAnswer)
	}
	if _, sw := sendHex(t, c, "00a404000ba0000003080000100001 00"); sw != swOK {
		t.Errorf("SELECT with the full AID: %04x", sw)
	}
	for _, tc := range []struct{ apdu, sw string }{
		{"00a4040008a000000527471117", "6a82"},
		{"00a4040003a00000", "6a82"},
		{"00a4000005a000000308", "6a86"},
		{"00a4040105a000000308", "6a86"},
	} {
		_, sw := sendHex(t, c, tc.apdu)
		if got := hex.EncodeToString([]byte{byte(sw >> 8), byte(sw)}); got != tc.sw {
			t.Errorf("%s: %s, want %s", tc.apdu, got, tc.sw)
		}
	}
	// A failed SELECT leaves PIV selected.
	if resp, sw := sendHex(t, c, "00fd000000"); sw != swOK || !bytes.Equal(resp, []byte{5, 7, 1}) {
		t.Errorf("GET VERSION: %x %04x, want 050701 9000", resp, sw)
	}
}

func TestVersionAndSerial(t *testing.T) {
	c := testCard(t, func(cfg *Config) { cfg.Serial = 0x01234567; cfg.Version = [3]byte{5, 4, 3} })
	selectPIV(t, c)
	if resp := mustOK(t, c, insGetVersion, 0, 0, nil); !bytes.Equal(resp, []byte{5, 4, 3}) {
		t.Errorf("version %x", resp)
	}
	if resp := mustOK(t, c, insGetSerial, 0, 0, nil); !bytes.Equal(resp, []byte{1, 0x23, 0x45, 0x67}) {
		t.Errorf("serial %x", resp)
	}
	if _, sw := sendHex(t, c, "00f8010000"); sw != swWrongP1P2 {
		t.Errorf("GET SERIAL with P1 01: %04x, want 6a86", sw)
	}
}

func TestVerifyCountsAndBlocks(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	steps := []struct {
		what string
		pin  string // "" = status query
		sw   uint16
	}{
		{"status on a fresh card", "", 0x63c3},
		{"wrong PIN", "654321", 0x63c2},
		{"status after a wrong PIN", "", 0x63c2},
		{"right PIN", DefaultPIN, swOK},
		{"status when verified", "", swOK},
		{"wrong PIN again", "000000", 0x63c2},
		{"status after: no longer verified", "", 0x63c2},
		{"second wrong PIN", "000001", 0x63c1},
		{"third wrong PIN", "000002", 0x63c0},
		{"right PIN on a blocked card", DefaultPIN, swAuthBlocked},
		{"status of a blocked card", "", swAuthBlocked},
	}
	for _, s := range steps {
		var sw uint16
		if s.pin == "" {
			_, sw = transmit(t, c, insVerify, 0, refPIN, nil)
		} else {
			sw = verifyPIN(t, c, s.pin)
		}
		if sw != s.sw {
			t.Fatalf("%s: %04x, want %04x", s.what, sw, s.sw)
		}
	}
	// Power cycling does not restore tries.
	c.PowerOff()
	c.PowerOn()
	selectPIV(t, c)
	if _, sw := transmit(t, c, insVerify, 0, refPIN, nil); sw != swAuthBlocked {
		t.Fatalf("after power cycle: %04x, want 6983", sw)
	}
	// Wrong PUK counts down, the right one unblocks and sets the new PIN.
	if _, sw := transmit(t, c, insResetRetry, 0, refPIN, append(padPIN("87654321"), padPIN("111111")...)); sw != 0x63c2 {
		t.Fatalf("wrong PUK: %04x, want 63c2", sw)
	}
	mustOK(t, c, insResetRetry, 0, refPIN, append(padPIN(DefaultPUK), padPIN("222222")...))
	if sw := verifyPIN(t, c, DefaultPIN); sw != 0x63c2 {
		t.Fatalf("old PIN after unblock: %04x, want 63c2", sw)
	}
	if sw := verifyPIN(t, c, "222222"); sw != swOK {
		t.Fatalf("new PIN after unblock: %04x", sw)
	}
	// VERIFY with P1 ff forgets the verification.
	mustOK(t, c, insVerify, 0xff, refPIN, nil)
	if _, sw := transmit(t, c, insVerify, 0, refPIN, nil); sw != 0x63c3 {
		t.Fatalf("status after reset of verification: %04x, want 63c3", sw)
	}
}

func TestPUKBlocks(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	for i, want := range []uint16{0x63c2, 0x63c1, 0x63c0, swAuthBlocked} {
		_, sw := transmit(t, c, insChangeReference, 0, refPUK, append(padPIN("00000000"), padPIN("11111111")...))
		if sw != want {
			t.Fatalf("wrong PUK #%d: %04x, want %04x", i+1, sw, want)
		}
	}
	if _, sw := transmit(t, c, insResetRetry, 0, refPIN, append(padPIN(DefaultPUK), padPIN("111111")...)); sw != swAuthBlocked {
		t.Fatalf("unblock with a blocked PUK: %04x, want 6983", sw)
	}
	// With PIN and PUK blocked, YK RESET restores the factory state.
	for range 3 {
		verifyPIN(t, c, "999999")
	}
	mustOK(t, c, insReset, 0, 0, nil)
	if sw := verifyPIN(t, c, DefaultPIN); sw != swOK {
		t.Fatalf("default PIN after reset: %04x", sw)
	}
}

func TestChangePINAndPUK(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	mustOK(t, c, insChangeReference, 0, refPIN, append(padPIN(DefaultPIN), padPIN("87654321")...))
	if sw := verifyPIN(t, c, DefaultPIN); sw != 0x63c2 {
		t.Fatalf("old PIN: %04x", sw)
	}
	if sw := verifyPIN(t, c, "87654321"); sw != swOK {
		t.Fatalf("new PIN: %04x", sw)
	}
	if _, sw := transmit(t, c, insChangeReference, 0, refPIN, append(padPIN("000000"), padPIN("123123")...)); sw != 0x63c2 {
		t.Fatalf("change with a wrong old PIN: %04x, want 63c2", sw)
	}
	if _, sw := transmit(t, c, insChangeReference, 0, refPIN, append(padPIN("87654321"), padPIN("12345")...)); sw != swWrongData {
		t.Fatalf("new PIN of 5 digits: %04x, want 6a80", sw)
	}
	mustOK(t, c, insChangeReference, 0, refPUK, append(padPIN(DefaultPUK), padPIN("11223344")...))
	md := mustOK(t, c, insGetMetadata, 0, refPUK, nil)
	if !bytes.Contains(md, []byte{0x05, 0x01, 0x00, 0x06, 0x02, 0x03, 0x03}) {
		t.Errorf("PUK metadata %x: want not default, 3 of 3 tries", md)
	}
	md = mustOK(t, c, insGetMetadata, 0, refPIN, nil)
	if !bytes.Contains(md, []byte{0x06, 0x02, 0x03, 0x02}) {
		t.Errorf("PIN metadata %x: want 2 of 3 tries left", md)
	}
}

func TestManagementKey(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	md := mustOK(t, c, insGetMetadata, 0, slotCardManagement, nil)
	if !bytes.Equal(md[:3], []byte{0x01, 0x01, alg3DES}) || !bytes.Contains(md, []byte{0x05, 0x01, 0x01}) {
		t.Fatalf("management key metadata %x: want 3DES, default", md)
	}
	if _, sw := transmit(t, c, insGenerate, 0, 0x9a, []byte{0xac, 0x03, 0x80, 0x01, algP256}); sw != swSecurityStatus {
		t.Fatalf("generate without management key: %04x, want 6982", sw)
	}
	wrong := bytes.Repeat([]byte{0x42}, 24)
	if sw := mgmtAuth(t, c, alg3DES, wrong); sw != swSecurityStatus {
		t.Fatalf("wrong management key: %04x, want 6982", sw)
	}
	if _, sw := transmit(t, c, insAuthenticate, algAES192, slotCardManagement, []byte{0x7c, 0x02, 0x80, 0x00}); sw != swWrongP1P2 {
		t.Fatalf("AES authentication with a 3DES key: %04x, want 6a86", sw)
	}
	if sw := mgmtAuth(t, c, alg3DES, DefaultManagementKey); sw != swOK {
		t.Fatalf("default management key: %04x", sw)
	}
	aesKey := bytes.Repeat([]byte{0x17}, 24)
	mustOK(t, c, insSetMgmKey, 0xff, 0xff, append([]byte{algAES192, 0x9b, 24}, aesKey...))
	md = mustOK(t, c, insGetMetadata, 0, slotCardManagement, nil)
	if md[2] != algAES192 || !bytes.Contains(md, []byte{0x05, 0x01, 0x00}) {
		t.Fatalf("metadata after SET MANAGEMENT KEY %x: want AES-192, not default", md)
	}
	if sw := mgmtAuth(t, c, algAES192, aesKey); sw != swOK {
		t.Fatalf("AES-192 key: %04x", sw)
	}
	if _, sw := transmit(t, c, insSetMgmKey, 0xff, 0xff, append([]byte{algAES128, 0x9b, 24}, aesKey...)); sw != swWrongData {
		t.Fatalf("AES-128 with 24 bytes: %04x, want 6a80", sw)
	}

	old := testCard(t, func(cfg *Config) { cfg.Version = [3]byte{5, 2, 7} })
	selectPIV(t, old)
	mgmtAuth(t, old, alg3DES, DefaultManagementKey)
	if _, sw := transmit(t, old, insSetMgmKey, 0xff, 0xff, append([]byte{algAES192, 0x9b, 24}, aesKey...)); sw != swWrongData {
		t.Fatalf("AES key on firmware 5.2: %04x, want 6a80", sw)
	}
	if _, sw := transmit(t, old, insGetMetadata, 0, slotCardManagement, nil); sw != swInsNotSupported {
		t.Fatalf("GET METADATA on firmware 5.2: %04x, want 6d00", sw)
	}
}

func TestMalformed(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	for _, tc := range []struct {
		name, apdu string
		sw         uint16
	}{
		{"three bytes", "00fd00", swWrongLength},
		{"Lc longer than data", "00cb3fff055c035fc1", swWrongLength},
		{"Lc shorter than data", "00cb3fff035c035fc10a00", swWrongLength},
		{"zero Lc of six bytes", "00cb3fff0000", swWrongLength},
		{"extended Lc without data", "00cb3fff000000ff", swWrongLength},
		{"class 80", "80fd000000", swClaNotSupported},
		{"class ff", "fffd000000", swClaNotSupported},
		{"secure messaging", "0cfd000000", swSecureMessaging},
		{"unknown instruction", "0012000000", swInsNotSupported},
		{"GET DATA wrong P1P2", "00cb3f00055c035fc10a", swWrongP1P2},
		{"GET DATA missing object", "00cb3fff055c035fc10a", swNotFound},
		{"GET DATA without a tag list", "00cb3fff03530100", swWrongData},
		{"GET DATA tag list of 4 bytes", "00cb3fff065c045fc10a01", swWrongData},
		{"GET DATA with bad TLV", "00cb3fff025c85", swWrongData},
		{"METADATA of an empty slot", "00f7009c00", swRefNotFound},
		{"METADATA of no slot", "00f7000000", swRefNotFound},
		{"METADATA with P1", "00f7019c00", swWrongP1P2},
		{"VERIFY a short PIN", "002000800431323334", swWrongData},
		{"VERIFY the PUK", "0020008108313233343536ffff", swWrongP1P2},
		{"CHANGE REFERENCE short", "0024008008313233343536ffff", swWrongData},
		{"RESET RETRY for the PUK", "002c008110313233343536373831323334353637ff", swWrongP1P2},
		{"sign in an empty slot", "0087119c067c04820081 00", swRefNotFound},
		{"sign in no slot", "008711 01067c0482008100", swWrongP1P2},
		{"ATTEST an empty slot", "00f99c0000", swWrongData},
		{"ATTEST no slot", "00f9000000", swWrongP1P2},
		{"GET RESPONSE with nothing pending", "00c0000000", swConditions},
		{"management auth garbage", "0087039b03010203", swWrongData},
		{"management auth without witness", "0087039b167c1480080102030405060708810801020304050607 08", swConditions},
		{"PUT DATA without management key", "00db3fff085c035fc10a530170", swSecurityStatus},
		{"SET MGMKEY without management key", "00ffffff1b039b18010203040506070801020304050607080102030405060708", swSecurityStatus},
		{"GENERATE wrong P1", "0047019a05ac03800111", swWrongP1P2},
		{"GENERATE in f9", "004700f905ac03800111", swWrongP1P2},
	} {
		_, sw := sendHex(t, c, tc.apdu)
		if sw != tc.sw {
			t.Errorf("%s (%s): %04x, want %04x", tc.name, tc.apdu, sw, tc.sw)
		}
	}
	if sw := mgmtAuth(t, c, alg3DES, DefaultManagementKey); sw != swOK {
		t.Fatal(sw)
	}
	for _, tc := range []struct {
		name, apdu string
		sw         uint16
	}{
		{"GENERATE RSA (not emulated)", "0047009a05ac03800107", swWrongData},
		{"GENERATE without algorithm", "0047009a05ac03aa0102", swWrongData},
		{"GENERATE bio PIN policy", "0047009a08ac06800111aa0104", swWrongData},
		{"GENERATE touch policy 7", "0047009a08ac06800111ab0107", swWrongData},
		{"GENERATE not a template", "0047009a03800111", swWrongData},
		{"PUT DATA discovery", "00db3fff065c017e530100", swWrongData},
		{"PUT DATA attestation cert", "00db3fff085c035fff01530100", swWrongData},
		{"PUT DATA without 53", "00db3fff085c035fc10a700100", swWrongData},
		{"SET MGMKEY wrong length byte", "00ffffff1b039b17010203040506070801020304050607080102030405060708", swWrongData},
		{"SET MGMKEY wrong P2", "00ffff001b039b18010203040506070801020304050607080102030405060708", swWrongP1P2},
	} {
		_, sw := sendHex(t, c, tc.apdu)
		if sw != tc.sw {
			t.Errorf("%s (%s): %04x, want %04x", tc.name, tc.apdu, sw, tc.sw)
		}
	}
	if _, sw := send(t, c, nil); sw != swWrongLength {
		t.Errorf("empty APDU: %04x", sw)
	}
}

func TestSelectOnly(t *testing.T) {
	c := testCard(t, func(cfg *Config) { cfg.SelectOnly = true })
	if resp, sw := sendHex(t, c, "00a4040005a000000308"); sw != swOK || len(resp) != 0 {
		t.Fatalf("SELECT: %x %04x, want 9000 and no data", resp, sw)
	}
	for _, h := range []string{"00fd000000", "00f8000000", "0020008000", "10dbffff0101", "00c0000000"} {
		if _, sw := sendHex(t, c, h); sw != swInsNotSupported {
			t.Errorf("%s: %04x, want 6d00", h, sw)
		}
	}
	if _, sw := sendHex(t, c, "00fd000000"); sw != swInsNotSupported {
		t.Errorf("GET VERSION: %04x, want 6d00", sw)
	}
}

func TestDiscoveryObject(t *testing.T) {
	c := testCard(t, nil)
	selectPIV(t, c)
	resp := mustOK(t, c, insGetData, 0x3f, 0xff, []byte{0x5c, 0x01, 0x7e})
	if !bytes.Equal(resp, discoveryObject) {
		t.Errorf("discovery object %x", resp)
	}
}
