package vpiv

import (
	"encoding/json"
	"testing"
)

// FuzzTransmit feeds APDU sequences to a card that has keys in 9a (P-256,
// PIN once) and 9c (Ed25519, PIN never), PIV selected, the PIN verified and
// the management key authenticated. The input is a sequence of
// length-prefixed APDUs (one length byte each). The card must answer every
// one with at least a status word, never fail internally, and only attach
// data to 9000 or 61xx.
func FuzzTransmit(f *testing.F) {
	base := testCard(f, nil)
	selectPIV(f, base)
	generate(f, base, 0x9a, algP256, pinOnce, touchNever)
	generate(f, base, 0x9c, algEd25519, pinNever, touchNever)
	if sw := mgmtAuth(f, base, alg3DES, DefaultManagementKey); sw != swOK {
		f.Fatal(sw)
	}
	verifyPIN(f, base, DefaultPIN)
	snapshot, err := json.Marshal(base.st)
	if err != nil {
		f.Fatal(err)
	}
	sess := base.sess
	f.Add([]byte{5, 0x00, 0xfd, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		var st state
		if err := json.Unmarshal(snapshot, &st); err != nil {
			t.Fatal(err)
		}
		c := &Card{cfg: base.cfg, st: &st, sess: sess}
		for len(in) > 0 {
			n := int(in[0])
			in = in[1:]
			if n > len(in) {
				n = len(in)
			}
			cmd := in[:n]
			in = in[n:]
			out := c.Transmit(cmd)
			if len(out) < 2 {
				t.Fatalf("answer to %x: %x", cmd, out)
			}
			sw := uint16(out[len(out)-2])<<8 | uint16(out[len(out)-1])
			if c.internalErrors != 0 || sw == swNoPreciseDiagnos {
				t.Fatalf("internal error on %x", cmd)
			}
			if len(out) > 2 && sw != swOK && sw&0xff00 != swMoreData {
				t.Fatalf("answer to %x has data with status %04x", cmd, sw)
			}
		}
	})
}
