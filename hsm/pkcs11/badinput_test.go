package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
)

func TestOpenBadModule(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("not a library"), 0o600)
	libc := "/lib/x86_64-linux-gnu/libc.so.6"
	if _, err := os.Stat(libc); err != nil {
		t.Fatalf("need a shared library that is not a PKCS#11 module: %v", err)
	}
	for _, tc := range []struct{ path, want string }{
		{dir + "/missing.so", "module " + dir + "/missing.so: no such file or directory"},
		{dir, "module " + dir + ": is a directory, not a PKCS#11 module"},
		{text, "module " + text + ": not a PKCS#11 module (not a shared library)"},
		{libc, "module " + libc + ": not a PKCS#11 module (cannot load it, or it has no C_GetFunctionList)"},
		{testModule, "module " + testModule + ": already loaded by another provider in this process (open one provider per module and pass it down)"},
	} {
		p, err := Open(tc.path, Options{})
		if err == nil {
			p.Close()
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("Open(%s) = %v\nwant %s", tc.path, err, tc.want)
		}
	}
}

func TestBadKeyURIs(t *testing.T) {
	ctx := context.Background()
	// An RSA key and a data object on ci-3, and one public key with no private key.
	rsa, data := unique("rsa"), unique("data")
	err := testProvider.withSession(ctx, mustURI(t, uri("ci-3", "")), func(tk *token, sh p11.SessionHandle) error {
		_, _, err := testProvider.ctx.GenerateKeyPair(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)},
			[]*p11.Attribute{p11.NewAttribute(p11.CKA_TOKEN, true), p11.NewAttribute(p11.CKA_MODULUS_BITS, 2048),
				p11.NewAttribute(p11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}), p11.NewAttribute(p11.CKA_LABEL, rsa)},
			[]*p11.Attribute{p11.NewAttribute(p11.CKA_TOKEN, true), p11.NewAttribute(p11.CKA_PRIVATE, true),
				p11.NewAttribute(p11.CKA_SIGN, true), p11.NewAttribute(p11.CKA_LABEL, rsa)})
		if err != nil {
			return err
		}
		_, err = testProvider.ctx.CreateObject(sh, []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, p11.CKO_DATA),
			p11.NewAttribute(p11.CKA_TOKEN, true), p11.NewAttribute(p11.CKA_LABEL, data), p11.NewAttribute(p11.CKA_VALUE, []byte("x"))})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	mod := testModule
	s3 := tokenSerial(t, "ci-3")
	var dupSerials []string
	infos, _ := testProvider.tokenInfos()
	for _, ti := range infos {
		if ti.Label == "dup" {
			dupSerials = append(dupSerials, ti.SerialNumber)
		}
	}
	if dupSerials[0] > dupSerials[1] {
		dupSerials[0], dupSerials[1] = dupSerials[1], dupSerials[0]
	}
	for _, tc := range []struct {
		uri  string
		is   error
		want string
	}{
		{uri("nosuch", "k"), hsm.ErrNotFound,
			`pkcs11:token=nosuch;object=k?module-path=` + mod + `: not found: no token labelled "nosuch" (tokens present: "bench-1", "bench-2", "ci-1", "ci-2", "ci-3", "dup", "dup", "pin-test")`},
		{uri("dup", "k"), hsm.ErrAmbiguous,
			fmt.Sprintf(`pkcs11:token=dup;object=k?module-path=%s: ambiguous: 2 tokens match (serials %s, %s): add serial= to the URI`, mod, dupSerials[0], dupSerials[1])},
		{uri("ci-3", "nokey"), hsm.ErrNotFound,
			fmt.Sprintf(`pkcs11:token=ci-3;object=nokey?module-path=%s: not found: no private key labelled "nokey" on token "ci-3" (serial %s)`, mod, s3)},
		{uri("ci-3", rsa), hsm.ErrUnsupportedKey,
			fmt.Sprintf(`pkcs11:token=ci-3;object=%s?module-path=%s: unsupported key: key labelled %q on token "ci-3" (serial %s) is rsa: want Ed25519 or P-256`, rsa, mod, rsa, s3)},
		{uri("ci-3", data), hsm.ErrUnsupportedKey,
			fmt.Sprintf(`pkcs11:token=ci-3;object=%s?module-path=%s: unsupported key: the object labelled %q on token "ci-3" (serial %s) is a data object, not a private key`, data, mod, data, s3)},
		{uri("ci-3", ""), hsm.ErrBadURI,
			`pkcs11:token=ci-3?module-path=` + mod + `: bad key URI: no key named: add object= (label) or id=`},
		{"pkcs11:token=ci-3;object=k?module-path=/usr/lib/other.so&pin-value=1234", hsm.ErrBadURI,
			"pkcs11:token=ci-3;object=k?module-path=/usr/lib/other.so: bad key URI: module-path /usr/lib/other.so, but this provider loaded " + mod},
	} {
		_, err := testProvider.Signer(ctx, mustURI(t, tc.uri))
		if err == nil || err.Error() != tc.want || !errors.Is(err, tc.is) {
			t.Errorf("Signer(%s) =\n  %v\nwant\n  %s", hsm.RedactURI(tc.uri), err, tc.want)
		}
	}
	// A public key without its private key is not a signer either.
	pubOnly := mustURI(t, uri("ci-3", rsa))
	err = testProvider.withSession(ctx, pubOnly, func(tk *token, sh p11.SessionHandle) error {
		hs, err := testProvider.find(sh, keyTemplate(p11.CKO_PRIVATE_KEY, pubOnly), 1)
		if err != nil {
			return err
		}
		return testProvider.ctx.DestroyObject(sh, hs[0])
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = testProvider.Signer(ctx, pubOnly)
	want := fmt.Sprintf(`pkcs11:token=ci-3;object=%s?module-path=%s: unsupported key: the object labelled %q on token "ci-3" (serial %s) is a public key, not a private key`, rsa, mod, rsa, s3)
	if err == nil || err.Error() != want {
		t.Errorf("Signer(public key only) = %v\nwant %s", err, want)
	}
}

// TestClosedProvider: signers of a closed provider fail cleanly, and the
// module can be opened again after Close. It runs in a child process, which
// may close its provider.
func TestClosedProvider(t *testing.T) {
	out := runChild(t, "TestChildClosed")
	if !strings.Contains(out, "RESULT ok") {
		t.Errorf("child said:\n%s", out)
	}
}

func TestChildClosed(t *testing.T) {
	if !isChild(t) {
		return // runs only as the child of TestClosedProvider
	}
	s := generate(t, "ci-1", "closed", kel.Ed25519)
	if err := testProvider.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.SignKERI(context.Background(), []byte("x"))
	want := "pkcs11:token=ci-1;object=" + s.Info().Label + "?module-path=" + testModule + ": module " + testModule + ": provider closed"
	if err == nil || err.Error() != want {
		t.Fatalf("SignKERI after Close = %v, want %s", err, want)
	}
	if err := testProvider.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	p, err := Open(testModule, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	testProvider = p
	s2, err := p.Signer(context.Background(), s.uri)
	if err != nil {
		t.Fatal(err)
	}
	if sig, err := s2.SignKERI(context.Background(), []byte("x")); err != nil || !s.Info().Verfer.Verify([]byte("x"), sig) {
		t.Fatalf("sign after reopening: %v", err)
	}
	fmt.Println("RESULT ok")
}
