//go:build vpiv

package vpiv_test

// Card process lifecycle through the real stack: restart, a card that
// answers only SELECT, older firmware; and the end-to-end signing benchmark.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"
)

// ctl runs softhsm-test/vpiv-card-ctl through the rig's bin/ link.
func ctl(t *testing.T, r rig, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(r.dir, "bin", "vpiv-card-ctl"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("vpiv-card-ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestE2ECardRestart(t *testing.T) {
	c := fresh(t)
	yk, serial, r := c.yk, c.serial, c.rig
	pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotSignature, piv.Key{
		Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever,
	})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := yk.PrivateKey(piv.SlotSignature, pub, piv.KeyAuth{})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("before"))
	if _, err := priv.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	s := strconv.FormatUint(uint64(serial), 10)
	ctl(t, r, "stop", s)
	_, err = priv.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
	if err == nil {
		t.Fatal("sign while the card process is down succeeded")
	}
	t.Logf("sign during the outage: %v", err)
	out := ctl(t, r, "start", s)
	if !strings.HasPrefix(out, s+"\t") {
		t.Errorf("vpiv-card-ctl start printed %q", out)
	}
	_, err = priv.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
	t.Logf("sign on the old handle after the restart: %v", err)
	yk.Close()
	yk2 := open(t, serial)
	c.yk = yk2
	info, err := yk2.KeyInfo(piv.SlotSignature)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.(*ecdsa.PublicKey).Equal(info.PublicKey) {
		t.Fatal("the key did not survive the restart")
	}
	priv2, err := yk2.PrivateKey(piv.SlotSignature, pub, piv.KeyAuth{})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := priv2.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("sign after restart: %v", err)
	}
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("signature after restart does not verify")
	}
}

func TestE2ESelectOnly(t *testing.T) {
	r := rigFromEnv(t)
	serial := r.serials[len(r.serials)-1]
	s := strconv.FormatUint(uint64(serial), 10)
	reader := readerOf(t, r, serial)
	ctl(t, r, "restart", s, "-select-only")
	t.Cleanup(func() { ctl(t, r, "restart", s) })
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var yk *piv.YubiKey
		yk, err = piv.Open(reader)
		if err == nil {
			yk.Close()
			t.Fatal("piv-go opened a card that answers only SELECT")
		}
		if strings.Contains(err.Error(), "6d00") {
			return
		}
	}
	t.Fatalf("Open of the select-only card: %v, want smart card error 6d00", err)
}

// TestE2EOlderFirmware restarts the card as firmware 5.2.7: no GET METADATA,
// so piv-go authenticates with 3DES without asking and learns a key's PIN
// policy from its attestation.
func TestE2EOlderFirmware(t *testing.T) {
	r := rigFromEnv(t)
	serial := r.serials[len(r.serials)-1]
	s := strconv.FormatUint(uint64(serial), 10)
	ctl(t, r, "restart", s, "-version", "5.2.7")
	t.Cleanup(func() { ctl(t, r, "restart", s) })
	c := fresh(t)
	if v := c.yk.Version(); v != (piv.Version{Major: 5, Minor: 2, Patch: 7}) {
		t.Fatalf("version %+v, want 5.2.7", v)
	}
	if got, err := c.yk.Serial(); err != nil || got != serial {
		t.Fatalf("serial %d, %v", got, err)
	}
	pub, err := c.yk.GenerateKey(piv.DefaultManagementKey, piv.SlotSignature, piv.Key{
		Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.yk.KeyInfo(piv.SlotSignature); err == nil {
		t.Error("KeyInfo worked on firmware 5.2.7")
	}
	priv, err := c.yk.PrivateKey(piv.SlotSignature, pub, piv.KeyAuth{PIN: piv.DefaultPIN})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("old firmware"))
	sig, err := priv.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("signature does not verify")
	}
	if _, err := c.yk.GenerateKey(piv.DefaultManagementKey, piv.SlotAuthentication, piv.Key{
		Algorithm: piv.AlgorithmEd25519, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever,
	}); err == nil {
		t.Error("Ed25519 key generated on firmware 5.2.7")
	}
}

// readerOf is the reader vpiv-up reported for serial.
func readerOf(t *testing.T, r rig, serial uint32) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "readers.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		s, reader, _ := strings.Cut(line, "\t")
		if s == strconv.FormatUint(uint64(serial), 10) {
			return reader
		}
	}
	t.Fatalf("card %d not in readers.tsv", serial)
	return ""
}

// BenchmarkE2ESign measures one piv-go signature through pcscd and vpcd
// (PIN policy once: VERIFY status query plus GENERAL AUTHENTICATE), plus the
// card's VPIV_LATENCY if the rig has one.
func BenchmarkE2ESign(b *testing.B) {
	for _, tc := range []struct {
		name string
		alg  piv.Algorithm
	}{{"P256", piv.AlgorithmEC256}, {"Ed25519", piv.AlgorithmEd25519}} {
		b.Run(tc.name, func(b *testing.B) {
			yk := fresh(b).yk
			pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotSignature, piv.Key{
				Algorithm: tc.alg, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever,
			})
			if err != nil {
				b.Fatal(err)
			}
			priv, err := yk.PrivateKey(piv.SlotSignature, pub, piv.KeyAuth{PIN: piv.DefaultPIN})
			if err != nil {
				b.Fatal(err)
			}
			signer := priv.(crypto.Signer)
			digest := sha256.Sum256([]byte("event"))
			var opts crypto.SignerOpts = crypto.SHA256
			if tc.alg == piv.AlgorithmEd25519 {
				opts = crypto.Hash(0)
			}
			for b.Loop() {
				if _, err := signer.Sign(rand.Reader, digest[:], opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
