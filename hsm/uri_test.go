package hsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePKCS11URI(t *testing.T) {
	u, err := ParsePKCS11URI("pkcs11:token=ci-1;object=k0;id=%01%ff?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234")
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "ci-1" || u.Object != "k0" || !bytes.Equal(u.ID, []byte{1, 0xff}) || !u.HasID ||
		u.ModulePath != "/usr/lib/softhsm/libsofthsm2.so" || u.PIN.Value != "1234" {
		t.Fatalf("parsed %+v", u)
	}
	if got, want := u.String(), "pkcs11:token=ci-1;object=k0;id=%01%FF?module-path=/usr/lib/softhsm/libsofthsm2.so"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if s := fmt.Sprintf("%v %+v %#v %s", u.PIN, u.PIN, u.PIN, u.PIN); strings.Contains(s, "1234") {
		t.Errorf("PINSpec prints its value: %s", s)
	}
	u, err = ParsePKCS11URI("pkcs11:serial=abc;object=my%20key?pin-source=file:/run/pin")
	if err != nil {
		t.Fatal(err)
	}
	if u.Serial != "abc" || u.Object != "my key" || u.PIN.Source != "file:/run/pin" {
		t.Fatalf("parsed %+v", u)
	}
	if got, want := u.String(), "pkcs11:serial=abc;object=my%20key?pin-source=file:/run/pin"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestParsePKCS11URIErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"pkcs12:token=a", "pkcs12:token=a: bad key URI: does not start with pkcs11:"},
		{"pkcs11:slot-id=3;object=k?pin-value=9999", "pkcs11:slot-id=3;object=k: bad key URI: attribute slot-id: name the token by token= (label) or serial=, never by slot"},
		{"pkcs11:token=a?pin-value=12%zz", "pkcs11:token=a: bad key URI: bad %-encoding in an attribute value"},
		{"pkcs11:token=a?pin-value=1&pin-source=file:/x", "pkcs11:token=a?pin-source=file:/x: bad key URI: URI must not contain pin-source and pin-value"},
		{"pkcs11:token=a;type=public", "pkcs11:token=a;type=public: bad key URI: type=public: signing keys are private keys (type=private or no type)"},
		{"pkcs11:token=a?module-path=lib.so", "pkcs11:token=a?module-path=lib.so: bad key URI: path lib.so of module-name attribute must be absolute"},
		{"pkcs11:token=a;token=b", "pkcs11:token=a;token=b: bad key URI: Malformed pkcs11 URI: duplicate path attribute"},
	} {
		_, err := ParsePKCS11URI(tc.in)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrBadURI) {
			t.Errorf("ParsePKCS11URI(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestParsePIVURI(t *testing.T) {
	u, err := ParsePIVURI("piv:serial=12345678;slot=9c?pin-value=123456")
	if err != nil {
		t.Fatal(err)
	}
	if !u.HasSerial || u.Serial != 12345678 || u.Slot != 0x9c || u.PIN.Value != "123456" || u.PIN.For != "PIV card 12345678" {
		t.Fatalf("parsed %+v", u)
	}
	if got := u.String(); got != "piv:serial=12345678;slot=9c" {
		t.Errorf("String() = %q", got)
	}
	u, err = ParsePIVURI("piv:slot=95?pin-source=env:YK_PIN")
	if err != nil {
		t.Fatal(err)
	}
	if u.HasSerial || u.Slot != 0x95 || u.PIN.Source != "env:YK_PIN" {
		t.Fatalf("parsed %+v", u)
	}
	if got := u.String(); got != "piv:slot=95?pin-source=env:YK_PIN" {
		t.Errorf("String() = %q", got)
	}
	for _, tc := range []struct{ in, want string }{
		{"piv:serial=1", "piv:serial=1: bad key URI: missing slot= (9a, 9c, 9d, 9e or 82–95)"},
		{"piv:slot=9b", `piv:slot=9b: bad key URI: slot="9b": want 9a, 9c, 9d, 9e or 82–95 (hex)`},
		{"piv:slot=96", `piv:slot=96: bad key URI: slot="96": want 9a, 9c, 9d, 9e or 82–95 (hex)`},
		{"piv:slot=9a;serial=x1", `piv:slot=9a;serial=x1: bad key URI: serial="x1": want a decimal number below 2^32`},
		{"piv:slot=9a;slot=9c", "piv:slot=9a;slot=9c: bad key URI: attribute slot given twice"},
		{"piv:slot=9a?4321", "piv:slot=9a?4321: bad key URI: an attribute has no '=' (want name=value)"},
		{"piv:slot=9a?pin-value=1&pin-source=env:X", "piv:slot=9a?pin-source=env:X: bad key URI: pin-value and pin-source both given"},
		{"piv:slot=9a;pin=1", "piv:slot=9a;pin=1: bad key URI: unknown attribute pin (want serial, slot)"},
		{"pkcs11:slot=9a", "pkcs11:slot=9a: bad key URI: does not start with piv:"},
	} {
		_, err := ParsePIVURI(tc.in)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrBadURI) {
			t.Errorf("ParsePIVURI(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestRedactURI(t *testing.T) {
	for in, want := range map[string]string{
		"pkcs11:token=a?pin-value=1234":                       "pkcs11:token=a",
		"pkcs11:token=a?module-path=/m.so&pin-value=1234":     "pkcs11:token=a?module-path=/m.so",
		"pkcs11:pin-value=1234;token=a":                       "pkcs11:token=a",
		"piv:slot=9c?pin-source=file:/p":                      "piv:slot=9c?pin-source=file:/p",
		"piv:slot=9c?PIN-VALUE=1&pin-value=2&x-a=b":           "piv:slot=9c?x-a=b",
		"not a uri pin-value=5":                               "not a uri pin-value=5",
		"pkcs11:token=a?pin-value=12&pin-value=34&pin-value=": "pkcs11:token=a",
	} {
		if got := RedactURI(in); got != want {
			t.Errorf("RedactURI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPINSpecResolve(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "pin")
	if err := os.WriteFile(file, []byte("2468\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MY_PIN": "1357"}
	getenv := func(k string) string { return env[k] }
	prompt := func(_ context.Context, what string) (string, error) { return "prompted:" + what, nil }
	for _, tc := range []struct {
		spec PINSpec
		want string
	}{
		{PINSpec{Value: "1111"}, "1111"},
		{PINSpec{Source: "file:" + file}, "2468"},
		{PINSpec{Source: "file://" + file}, "2468"},
		{PINSpec{Source: file}, "2468"},
		{PINSpec{Source: "env:MY_PIN"}, "1357"},
		{PINSpec{For: `token "t"`}, `prompted:token "t"`},
	} {
		got, err := tc.spec.Resolve(ctx, getenv, prompt)
		if err != nil || got != tc.want {
			t.Errorf("%v.Resolve = %q, %v; want %q", tc.spec, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		spec PINSpec
		want string
	}{
		{PINSpec{For: `token "t"`}, `no PIN available for token "t": add pin-source or pin-value to the URI`},
		{PINSpec{Source: "env:NOPE", For: "x"}, "no PIN available for x: environment variable NOPE is empty or unset"},
		{PINSpec{Source: "file:" + dir + "/none", For: "x"}, "no PIN available for x: cannot read PIN file " + dir + "/none: no such file or directory"},
		{PINSpec{Source: "|/bin/echo 1"}, `pin-source "|/bin/echo 1": commands are not supported (use file:, env: or a path)`},
		{PINSpec{Source: "https://x/pin"}, `pin-source "https://x/pin": unsupported scheme "https" (use file:, env: or a path)`},
		{PINSpec{Source: "file://host/pin"}, `pin-source "file://host/pin": file URI on host "host" (want a local path)`},
	} {
		_, err := tc.spec.Resolve(ctx, getenv, nil)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v.Resolve = %v, want %q", tc.spec, err, tc.want)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := (PINSpec{Value: "1"}).Resolve(cctx, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Resolve = %v", err)
	}
}

func TestWrongPINError(t *testing.T) {
	err := fmt.Errorf("wrap: %w", &WrongPINError{Token: `token "a"`, TriesLeft: 2})
	if !errors.Is(err, ErrWrongPIN) || err.Error() != `wrap: wrong PIN for token "a" (2 tries left)` {
		t.Errorf("got %v", err)
	}
}
