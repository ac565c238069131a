package hsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
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
		{"pkcs12:token=a", "…:token=a: bad key URI: does not start with pkcs11:"},
		{"pkcs11:slot-id=3;object=k?pin-value=9999", "pkcs11:slot-id=…;object=k?pin-value=…: bad key URI: attribute slot-id: name the token by token= (label) or serial=, never by slot"},
		{"pkcs11:token=a?pin-value=12%zz", "pkcs11:token=a?pin-value=…: bad key URI: bad %-encoding in an attribute value"},
		{"pkcs11:token=a?pin-value=1&pin-source=file:/x", "pkcs11:token=a?pin-value=…&pin-source=file:/x: bad key URI: pin-value and pin-source both given"},
		{"pkcs11:token=a;type=public", "pkcs11:token=a;type=…: bad key URI: type: signing keys are private keys (type=private or no type)"},
		{"pkcs11:token=a?module-path=lib.so", "pkcs11:token=a?module-path=lib.so: bad key URI: module-path: want an absolute path"},
		{"pkcs11:token=a;token=b", "pkcs11:token=a;token=b: bad key URI: a path attribute is given twice"},
		{"pkcs11:token=a?pin=1234", "pkcs11:token=a?…: bad key URI: query attribute 1 is unknown (want module-path, pin-value, pin-source or x-…)"},
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
		{"piv:slot=9b", `piv:slot=9b: bad key URI: slot: want 9a, 9c, 9d, 9e or 82–95 (hex)`},
		{"piv:slot=96", `piv:slot=96: bad key URI: slot: want 9a, 9c, 9d, 9e or 82–95 (hex)`},
		{"piv:slot=9a;serial=x1", `piv:slot=9a;serial=x1: bad key URI: serial: want a decimal number below 2^32`},
		{"piv:slot=9a;slot=9c", "piv:slot=9a;slot=9c: bad key URI: path attribute 2 repeats an earlier one"},
		{"piv:slot=9a?4321", "piv:slot=9a?…: bad key URI: query attribute 1 has no '=' (want name=value)"},
		{"piv:slot=9a?pin-value=1&pin-source=env:X", "piv:slot=9a?pin-value=…&pin-source=env:X: bad key URI: pin-value and pin-source both given"},
		{"piv:slot=9a;pin=1", "piv:slot=9a;…: bad key URI: path attribute 2 is unknown (want serial, slot)"},
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
		"pkcs11:token=a?pin-value=1234":                       "pkcs11:token=a?pin-value=…",
		"pkcs11:token=a?module-path=/m.so&pin-value=1234":     "pkcs11:token=a?module-path=/m.so&pin-value=…",
		"pkcs11:pin-value=1234;token=a":                       "pkcs11:pin-value=…;token=a",
		"piv:slot=9c?pin-source=file:/p":                      "piv:slot=9c?pin-source=file:/p",
		"piv:slot=9c?pin-source=123456":                       "piv:slot=9c?pin-source=…",
		"piv:slot=9c?pin-source=env:YK_PIN":                   "piv:slot=9c?pin-source=env:YK_PIN",
		"pkcs11:token=a?pin-source=%2Frun%2Fpin":              "pkcs11:token=a?pin-source=%2Frun%2Fpin",
		"piv:serial=7;slot=9c?PIN-VALUE=1&pin-value=2&x-a=b":  "piv:serial=7;slot=9c?…&pin-value=…&…",
		"not a uri pin-value=5":                               "…",
		"1234":                                                "…",
		"":                                                    "",
		"pkcs11:token=a?pin-value=12&pin-value=34&pin-value=": "pkcs11:token=a?pin-value=…&pin-value=…&pin-value=…",
		"piv:slot=9c?1234":                                    "piv:slot=9c?…",
		"piv:slot=9c?pin=1234":                                "piv:slot=9c?…",
		"pkcs11:token=a;object=k;id=%01?module-name=m&pin-value=ab&cd;ef": "pkcs11:token=a;object=k;id=%01?module-name=m&pin-value=…&…;…",
		"pkcs11:token=a?module-path=/m.so;pin-value=1234":                 "pkcs11:token=a?module-path=/m.so;pin-value=…",
		"piv:slot=9c&pin-value=1234":                                      "piv:slot=9c&pin-value=…",
		"pkcs11:manufacturer=SoftHSM;model=x;type=private":                "pkcs11:manufacturer=…;model=…;type=…",
	} {
		if got := RedactURI(in); got != want {
			t.Errorf("RedactURI(%q) = %q, want %q", in, got, want)
		}
	}
}

// plantedPIN is a PIN no URI, path or message of these tests contains by
// chance; pinParts are the pieces a PIN with '&' or ';' splits into.
const plantedPIN = "Zq7&Wk3;Pm"

var pinParts = []string{"Zq7", "Wk3", "Pm"}

// pinShapes are URIs in which a PIN hides where nobody looks for it: typed
// without a name, under a made-up name, with '&' or ';' inside, in the
// wrong part of the URI, with the wrong separator. (A PIN typed as the
// value of serial= or slot= is shown: nothing tells it from a serial.)
func pinShapes(pin string) []string {
	var out []string
	for _, scheme := range []string{"piv:serial=7;slot=9c", "pkcs11:token=a;object=k"} {
		out = append(out,
			scheme+"?"+pin,
			scheme+"?pin="+pin,
			scheme+"?pin-value="+pin,
			scheme+"?pin-value="+pin+"&pin-source=file:/p",
			scheme+"?pin-value="+pin+"&pin-value="+pin,
			scheme+"&pin-value="+pin,
			scheme+";pin-value="+pin,
			scheme+";"+pin,
			scheme+"?x-a=1&"+pin+"=",
			scheme+"?pin-value="+pin+"%zz",
			scheme+"?pin-source="+pin,
			scheme+"?pin-source="+pin+"%zz",
			scheme+"?module-path=rel;pin-value="+pin,
			scheme+";type="+pin,
			scheme+";slot-id="+pin,
			scheme+";library-version="+pin,
			pin+scheme,
		)
	}
	return append(out, pin, "pkcs12:token=a?pin-value="+pin, "piv:"+pin)
}

// looksLikePINSource reports whether pin, typed as a pin-source, is one
// that messages show (a path, a file: or env: source): nothing tells it
// from a real source.
func looksLikePINSource(pin string) bool {
	v, err := url.PathUnescape(pin)
	return PINSourceShape(pin) || err == nil && PINSourceShape(v)
}

func showsPIN(s string) bool {
	for _, p := range pinParts {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// TestURIErrorsHidePIN: a PIN planted in every malformed shape never
// reaches the parsers' errors or RedactURI, for both schemes.
func TestURIErrorsHidePIN(t *testing.T) {
	for _, in := range pinShapes(plantedPIN) {
		if got := RedactURI(in); showsPIN(got) {
			t.Errorf("RedactURI(%q) = %q shows the PIN", in, got)
		}
		for name, parse := range map[string]func(string) error{
			"ParsePIVURI":    func(s string) error { _, err := ParsePIVURI(s); return err },
			"ParsePKCS11URI": func(s string) error { _, err := ParsePKCS11URI(s); return err },
		} {
			err := parse(in)
			if err == nil {
				continue // well-formed for this parser: the PIN is a PIN
			}
			if showsPIN(err.Error()) {
				t.Errorf("%s(%q): %q shows the PIN", name, in, err)
			}
			if !errors.Is(err, ErrBadURI) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s(%q): %v; want a one-line ErrBadURI", name, in, err)
			}
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
		{PINSpec{Source: "|/bin/echo 1"}, `bad key URI: pin-source: want file:PATH, env:NAME or an absolute path (a PIN itself goes in pin-value)`},
		{PINSpec{Source: "https://x/pin"}, `bad key URI: pin-source: want file:PATH, env:NAME or an absolute path (a PIN itself goes in pin-value)`},
		// A PIN typed as the source is not shown (nor read as a file name).
		{PINSpec{Source: "123456"}, `bad key URI: pin-source: want file:PATH, env:NAME or an absolute path (a PIN itself goes in pin-value)`},
		{PINSpec{Source: "env:"}, `bad key URI: pin-source: want file:PATH, env:NAME or an absolute path (a PIN itself goes in pin-value)`},
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

// FuzzPINHidden: whatever a PIN is (but see the first lines), in whatever shape of pinShapes it is typed,
// neither RedactURI nor the parsers' errors show it, and nothing panics.
func FuzzPINHidden(f *testing.F) {
	for _, pin := range []string{"123456", plantedPIN, "ab;cd&ef", "12%zz", "?1234", "slot;9c", "x-1234"} {
		f.Add(pin)
	}
	f.Fuzz(func(t *testing.T, pin string) {
		// A PIN that is an attribute's name is shown as one, and the
		// separators and "…" that RedactURI keeps are shown anyway.
		if len(pin) < 4 || strings.Contains(pin, "=") || shownAttrs[pin] || namedAttrs[pin] ||
			strings.Contains(pin, redacted) || strings.Trim(pin, ";&?:") == "" || looksLikePINSource(pin) {
			return
		}
		for _, in := range pinShapes(pin) {
			if strings.Contains(strings.Replace(in, pin, "", 1), pin) {
				continue // the PIN is also a piece of the URI itself
			}
			check := func(what, out string) {
				if strings.Contains(out, pin) && !strings.Contains(RedactURI(strings.Replace(in, pin, "", 1)), pin) {
					t.Errorf("%s(%q) = %q shows the PIN %q", what, in, out, pin)
				}
			}
			check("RedactURI", RedactURI(in))
			if _, err := ParsePIVURI(in); err != nil {
				check("ParsePIVURI", err.Error())
			}
			if _, err := ParsePKCS11URI(in); err != nil {
				check("ParsePKCS11URI", err.Error())
			}
		}
	})
}

// TestInheritPINValue: a next key's URI takes the pin-value of the key it
// sits beside, whatever characters the PIN has; a URI with a PIN source of
// its own, or beside a key without pin-value, is kept as it is.
func TestInheritPINValue(t *testing.T) {
	const pin = "a&b;c%d e?f"
	for _, tc := range []struct{ from, uri string }{
		{"pkcs11:token=t;object=k?module-path=/m.so&pin-value=" + escapeAttr(pin, false), "pkcs11:token=t;object=k-next1;id=%01?module-path=/m.so"},
		{"piv:serial=1;slot=9c?pin-value=" + escapeAttr(pin, false), "piv:serial=1;slot=82"},
	} {
		got := InheritPINValue(tc.uri, tc.from)
		if p := keyPIN(got); p.Value != pin || RedactURI(got) != RedactURI(tc.uri)+strings.Replace("?pin-value=…", "?", sepOf(tc.uri), 1) {
			t.Errorf("InheritPINValue(%s): %s (PIN %q)", RedactURI(tc.uri), RedactURI(got), p.Value)
		}
	}
	for _, tc := range []struct{ from, uri string }{
		{"piv:slot=9c?pin-source=env:P", "piv:slot=82?pin-source=env:P"},
		{"piv:slot=9c?pin-value=123456", "piv:slot=82?pin-source=env:P"},
	} {
		if got := InheritPINValue(tc.uri, tc.from); got != tc.uri {
			t.Errorf("InheritPINValue(%s, %s) = %s, want it unchanged", tc.uri, RedactURI(tc.from), RedactURI(got))
		}
	}
}

func sepOf(uri string) string {
	if strings.Contains(uri, "?") {
		return "&"
	}
	return "?"
}
