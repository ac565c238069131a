package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/hsmtest"
	"github.com/auths-dev/auths-agent/kel"
)

var labelSeq atomic.Int64

// unique makes labels unique in this process, so the tests and benchmarks
// also pass with -count N.
func unique(label string) string { return fmt.Sprintf("%s-%d", label, labelSeq.Add(1)) }

// generate makes a key labelled unique(label) on a test token and opens it
// as a Signer.
func generate(t testing.TB, token, label string, alg kel.Algorithm) *Signer {
	t.Helper()
	label = unique(label)
	ctx := context.Background()
	u := mustURI(t, uri(token, label))
	info, err := testProvider.Generate(ctx, u, alg)
	if err != nil {
		t.Fatalf("Generate %s/%s: %v", token, label, err)
	}
	if info.Algorithm != alg || info.Label != label || len(info.ID) != randomIDSize {
		t.Fatalf("Generate returned %+v", info)
	}
	s, err := testProvider.Signer(ctx, u)
	if err != nil {
		t.Fatalf("Signer %s/%s: %v", token, label, err)
	}
	if s.Info().Verfer.QB64() != info.Verfer.QB64() {
		t.Fatalf("Signer key %s differs from generated key %s", s.Info().Verfer.QB64(), info.Verfer.QB64())
	}
	return s
}

func TestGenerateSignVerify(t *testing.T) {
	for _, alg := range []kel.Algorithm{kel.Ed25519, kel.P256} {
		t.Run(alg.String(), func(t *testing.T) {
			s := generate(t, "ci-1", "gen-"+alg.String(), alg)
			msg := []byte(`{"v":"KERI10JSON0000fd_","t":"ixn"}`)
			sig, err := s.SignKERI(context.Background(), msg)
			if err != nil {
				t.Fatal(err)
			}
			// Verify with Go's crypto against the public key read back from the token.
			switch pub := s.Public().(type) {
			case ed25519.PublicKey:
				if !ed25519.Verify(pub, msg, sig) {
					t.Error("Ed25519 signature does not verify")
				}
			case *ecdsa.PublicKey:
				h := sha256.Sum256(msg)
				der, err := s.Sign(rand.Reader, h[:], crypto.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				if !ecdsa.VerifyASN1(pub, h[:], der) {
					t.Error("ECDSA DER signature does not verify")
				}
				if !s.Info().Verfer.Verify(msg, sig) {
					t.Error("ECDSA r‖s signature does not verify")
				}
			default:
				t.Fatalf("public key %T", pub)
			}
		})
	}
}

func TestContract(t *testing.T) {
	for _, alg := range []kel.Algorithm{kel.Ed25519, kel.P256} {
		t.Run(alg.String(), func(t *testing.T) {
			hsmtest.TestSigner(t, generate(t, "ci-2", "contract-"+alg.String(), alg), testPIN)
		})
	}
}

func TestGenerateRefusesExistingLabel(t *testing.T) {
	label := generate(t, "ci-1", "taken", kel.Ed25519).Info().Label
	_, err := testProvider.Generate(context.Background(), mustURI(t, uri("ci-1", label)), kel.P256)
	serial := tokenSerial(t, "ci-1")
	want := fmt.Sprintf(`pkcs11:token=ci-1;object=%s?module-path=%s: already exists: a key labelled %q is already on token "ci-1" (serial %s)`, label, testModule, label, serial)
	if err == nil || err.Error() != want || !errors.Is(err, hsm.ErrExists) {
		t.Errorf("Generate over an existing label: %v\nwant %s", err, want)
	}
}

func TestList(t *testing.T) {
	a := generate(t, "ci-3", "list-a", kel.Ed25519)
	b := generate(t, "ci-3", "list-b", kel.P256)
	keys, err := testProvider.List(context.Background(), mustURI(t, uri("ci-3", "")))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]KeyInfo{}
	for _, k := range keys {
		got[k.Label] = k
	}
	for _, s := range []*Signer{a, b} {
		k, ok := got[s.Info().Label]
		if !ok || k.Verfer.QB64() != s.Info().Verfer.QB64() || k.IDHex() != hex.EncodeToString(s.Info().ID) || k.Algorithm != s.Info().Algorithm {
			t.Errorf("List: %s missing or different: %+v", s.Info().Label, k)
		}
	}
}

func TestThreeTokensConcurrently(t *testing.T) {
	var signers []*Signer
	for _, tok := range []string{"ci-1", "ci-2", "ci-3"} {
		signers = append(signers, generate(t, tok, "conc", kel.Ed25519), generate(t, tok, "conc-p", kel.P256))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for _, s := range signers {
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					msg := fmt.Appendf(nil, "%s %d %d", s.Describe(), g, i)
					sig, err := s.SignKERI(context.Background(), msg)
					if err != nil {
						errs <- err
						return
					}
					if !s.Info().Verfer.Verify(msg, sig) {
						errs <- fmt.Errorf("%s: signature does not verify", s.Describe())
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestKeysFoundByNewProcess: a key generated here is found and used by
// another process.
func TestKeysFoundByNewProcess(t *testing.T) {
	s := generate(t, "ci-2", "persist", kel.P256)
	out := runChild(t, "TestChildSign", "PERSIST_LABEL="+s.Info().Label)
	m := regexp.MustCompile(`(?m)^RESULT (\S+) ([0-9a-f]+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("child printed no result:\n%s", out)
	}
	if m[1] != s.Info().Verfer.QB64() {
		t.Errorf("child found key %s, want %s", m[1], s.Info().Verfer.QB64())
	}
	sig, _ := hex.DecodeString(m[2])
	if !s.Info().Verfer.Verify([]byte("from another process"), sig) {
		t.Error("the child's signature does not verify")
	}
}

func TestChildSign(t *testing.T) {
	if !isChild(t) {
		return // runs only as the child of TestKeysFoundByNewProcess
	}
	s, err := testProvider.Signer(context.Background(), mustURI(t, uri("ci-2", os.Getenv("PERSIST_LABEL"))))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.SignKERI(context.Background(), []byte("from another process"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("RESULT %s %x\n", s.Info().Verfer.QB64(), sig)
}

// TestWrongPINLoginOnce: a wrong PIN is a clear error naming the token, and
// C_Login reaches the module exactly once however often the key is asked
// for. Counted through OpenSC's pkcs11-spy, in a child process that loads
// the spy module in front of SoftHSM.
func TestWrongPINLoginOnce(t *testing.T) {
	spy := findSpy(t)
	log := filepath.Join(t.TempDir(), "spy.log")
	out := runChild(t, "TestChildWrongPIN", moduleEnv+"="+spy, "PKCS11SPY="+softhsmPath, "PKCS11SPY_OUTPUT="+log)
	serial := tokenSerial(t, "pin-test")
	want := strings.Join([]string{
		fmt.Sprintf(`RESULT pkcs11:token=pin-test;object=k?module-path=%s: wrong PIN for token "pin-test" (serial %s)`, spy, serial),
		fmt.Sprintf(`RESULT pkcs11:token=pin-test;object=k?module-path=%s: wrong PIN for token "pin-test" (serial %s) (this PIN was refused before; not tried again)`, spy, serial),
		fmt.Sprintf(`RESULT pkcs11:token=pin-test?module-path=%s: wrong PIN for token "pin-test" (serial %s) (this PIN was refused before; not tried again)`, spy, serial),
	}, "\n")
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "RESULT ") {
			got = append(got, l)
		}
	}
	if strings.Join(got, "\n") != want {
		t.Errorf("child said:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("pkcs11-spy wrote no log: %v", err)
	}
	if n := len(regexp.MustCompile(`(?m)^\d+: C_Login$`).FindAll(data, -1)); n != 1 {
		t.Errorf("C_Login called %d times, want exactly 1", n)
	}
}

func TestChildWrongPIN(t *testing.T) {
	if !isChild(t) {
		return // runs only as the child of TestWrongPINLoginOnce
	}
	ctx := context.Background()
	bad := func(s string) *hsm.PKCS11URI {
		return mustURI(t, strings.Replace(s, "pin-value="+testPIN, "pin-value=0000", 1))
	}
	for _, try := range []func() error{
		func() error { _, err := testProvider.Signer(ctx, bad(uri("pin-test", "k"))); return err },
		func() error { _, err := testProvider.Signer(ctx, bad(uri("pin-test", "k"))); return err },
		func() error { _, err := testProvider.List(ctx, bad(uri("pin-test", ""))); return err },
	} {
		err := try()
		if !errors.Is(err, hsm.ErrWrongPIN) {
			t.Errorf("got %v, want a wrong-PIN error", err)
		}
		if err != nil && strings.Contains(err.Error(), "0000") {
			t.Errorf("error shows the PIN: %v", err)
		}
		fmt.Printf("RESULT %v\n", err)
	}
}

func findSpy(t *testing.T) string {
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/pkcs11-spy.so", "/usr/lib/aarch64-linux-gnu/pkcs11-spy.so", "/usr/lib64/pkcs11-spy.so", "/usr/lib/pkcs11-spy.so"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("pkcs11-spy.so not found: install opensc-pkcs11 (apt-get install opensc-pkcs11)")
	return ""
}

// tokenSerial reads the serial SoftHSM gave a test token.
func tokenSerial(t *testing.T, label string) string {
	t.Helper()
	infos, err := testProvider.tokenInfos()
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range infos {
		if ti.Label == label {
			return ti.SerialNumber
		}
	}
	t.Fatalf("no token %q", label)
	return ""
}

// TestTokenReopened: when the token's sessions vanish (as when it is
// unplugged), the call fails naming the token and the next call reconnects
// and logs in again.
func TestTokenReopened(t *testing.T) {
	s := generate(t, "ci-3", "reopen", kel.Ed25519)
	ctx := context.Background()
	if _, err := s.SignKERI(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := testProvider.ctx.CloseAllSessions(s.t.slot); err != nil {
		t.Fatal(err)
	}
	_, err := s.SignKERI(ctx, []byte("while gone"))
	want := fmt.Sprintf(`pkcs11:token=ci-3;object=%s?module-path=%s: token "ci-3" (serial %s): token absent or unreachable: C_SignInit: pkcs11: 0xB3: CKR_SESSION_HANDLE_INVALID`, s.Info().Label, testModule, tokenSerial(t, "ci-3"))
	if err == nil || err.Error() != want || !errors.Is(err, hsm.ErrTokenAbsent) {
		t.Errorf("sign while gone: %v\nwant %s", err, want)
	}
	sig, err := s.SignKERI(ctx, []byte("after"))
	if err != nil {
		t.Fatalf("sign after reconnect: %v", err)
	}
	if !s.Info().Verfer.Verify([]byte("after"), sig) {
		t.Error("signature after reconnect does not verify")
	}
}

// TestKeyChangedWhileGone: the token's sessions vanish, and meanwhile
// another key is generated under the signer's label and id (a key under
// another id is simply not found); when the signer
// reaches the token again it finds the other key and signs nothing: an
// error matching hsm.ErrKeyChanged (and hsm.ErrNotFound) that names the
// key and the token.
func TestKeyChangedWhileGone(t *testing.T) {
	s := generate(t, "ci-3", unique("changed"), kel.Ed25519)
	ctx := context.Background()
	if _, err := s.SignKERI(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := testProvider.ctx.CloseAllSessions(s.t.slot); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignKERI(ctx, []byte("while gone")); !errors.Is(err, hsm.ErrTokenAbsent) {
		t.Fatalf("sign while gone: %v, want token absent", err)
	}
	u := mustURI(t, uri("ci-3", s.Info().Label))
	if _, err := testProvider.Delete(ctx, u); err != nil {
		t.Fatal(err)
	}
	u.ID, u.HasID = s.Info().ID, true
	if info, err := testProvider.Generate(ctx, u, kel.Ed25519); err != nil || !bytes.Equal(info.ID, s.Info().ID) {
		t.Fatalf("generate under the same label and id: %+v, %v", info, err)
	}
	sig, err := s.SignKERI(ctx, []byte("after"))
	want := fmt.Sprintf(`pkcs11:token=ci-3;object=%s?module-path=%s: not found: key changed since it was opened: key %q on token "ci-3" (serial %s)`,
		s.Info().Label, testModule, s.Info().Label, tokenSerial(t, "ci-3"))
	if err == nil || err.Error() != want || !errors.Is(err, hsm.ErrKeyChanged) || !errors.Is(err, hsm.ErrNotFound) {
		t.Errorf("sign after the key changed: signature %x, err %v\nwant %s", sig, err, want)
	}
}

// TestAlwaysAuthenticate: a key with CKA_ALWAYS_AUTHENTICATE signs after a
// context-specific login.
func TestAlwaysAuthenticate(t *testing.T) {
	label := unique("always")
	u := mustURI(t, uri("ci-1", label))
	err := testProvider.withSession(context.Background(), u, func(tk *token, sh p11.SessionHandle) error {
		id := []byte(label)
		_, _, err := testProvider.ctx.GenerateKeyPair(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_EC_KEY_PAIR_GEN, nil)},
			[]*p11.Attribute{p11.NewAttribute(p11.CKA_TOKEN, true), p11.NewAttribute(p11.CKA_EC_PARAMS, oidP256),
				p11.NewAttribute(p11.CKA_LABEL, label), p11.NewAttribute(p11.CKA_ID, id), p11.NewAttribute(p11.CKA_VERIFY, true)},
			[]*p11.Attribute{p11.NewAttribute(p11.CKA_TOKEN, true), p11.NewAttribute(p11.CKA_PRIVATE, true), p11.NewAttribute(p11.CKA_SIGN, true),
				p11.NewAttribute(p11.CKA_SENSITIVE, true), p11.NewAttribute(p11.CKA_ALWAYS_AUTHENTICATE, true),
				p11.NewAttribute(p11.CKA_LABEL, label), p11.NewAttribute(p11.CKA_ID, id)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := testProvider.Signer(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if !s.alwaysAuth {
		t.Fatal("CKA_ALWAYS_AUTHENTICATE not seen")
	}
	for i := range 3 {
		msg := fmt.Appendf(nil, "always %d", i)
		sig, err := s.SignKERI(context.Background(), msg)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Info().Verfer.Verify(msg, sig) {
			t.Error("signature does not verify")
		}
	}
}

// TestRefusedPINsAllRemembered: every PIN the token refused stays refused,
// not just the last one (the memory held one PIN, so two wrong PINs typed
// in turn were each sent again); the right PIN still logs in.
func TestRefusedPINsAllRemembered(t *testing.T) {
	ctx := context.Background()
	withPIN := func(pin string) *hsm.PKCS11URI {
		return mustURI(t, strings.Replace(uri("pin-test", ""), "pin-value="+testPIN, "pin-value="+pin, 1))
	}
	for i, step := range []struct {
		pin      string
		repeated bool
	}{{"0001", false}, {"0002", false}, {"0001", true}, {"0002", true}} {
		_, err := testProvider.List(ctx, withPIN(step.pin))
		var we *hsm.WrongPINError
		if !errors.As(err, &we) || we.Repeated != step.repeated {
			t.Fatalf("step %d (PIN %s): %v; want a WrongPINError, repeated=%v", i, step.pin, err, step.repeated)
		}
	}
	if _, err := testProvider.List(ctx, withPIN(testPIN)); err != nil {
		t.Fatalf("the right PIN after two wrong ones: %v", err)
	}
}
