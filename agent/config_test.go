package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testURI = "pkcs11:token=t;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=secret1234"

func TestParseConfig(t *testing.T) {
	good := `{"registry":"/r","keys":[{"uri":"` + testURI + `","uses":["keri","ssh"],"identities":["EAAA"]},{"uri":"piv:serial=1;slot=9a","uses":["ssh"]}]}`
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Registry != "/r" || len(c.Keys) != 2 || !c.Keys[0].Has(UseSSH) || !c.Keys[0].Allows("EAAA") || c.Keys[0].Allows("EBBB") {
		t.Errorf("parsed %+v", c)
	}
	if !(KeySpec{URI: testURI, Uses: []Use{UseKERI}}).Allows("EBBB") {
		t.Error("a key without identities must sign for any identity listing it")
	}
	if (KeySpec{URI: testURI, Uses: []Use{UseSSH}}).Allows("EBBB") {
		t.Error("an SSH-only key signs KERI events")
	}
	bad := []struct{ text, want string }{
		{`{"keys":[{"uri":"` + testURI + `"}]}`, `key 0 (pkcs11:token=t;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=…): no uses`},
		{`{"keys":[{"uri":"` + testURI + `","uses":["gpg"]}]}`, `unknown use "gpg"`},
		{`{"keys":[{"uri":"` + testURI + `","uses":["ssh"],"identities":["E"]}]}`, `identities given for a key not used for keri`},
		{`{"keys":[{"uri":"http://x","uses":["ssh"]}]}`, `key 0: uri must start with pkcs11: or piv:`},
		{`{"keys":[{"uri":"piv:slot=77","uses":["ssh"]}]}`, `piv:slot=77: bad key URI: slot`},
		{`{"keys":[{"uri":"` + testURI + `","uses":["ssh"]},{"uri":"` + testURI + `","uses":["keri"]}]}`, `same URI as key 0`},
		{`{"keys":[],"pin":"x"}`, `unknown field "pin"`},
		{`{"keys":[{"uri":1}]}`, `field keys.uri: want string`},
		{`{"keys":[`, `unexpected EOF`},
		{`{"keys":[]} {}`, `more than one JSON value`},
		{`{"keys":[}`, `JSON syntax error at byte 10`},
		{`{"keys":[],"touch_timeout":"soon"}`, `touch_timeout "soon": want a positive duration such as "30s"`},
		{`{"keys":[],"touch_timeout":"-1s"}`, `touch_timeout "-1s": want a positive duration`},
		{`{"keys":[],"touch_timeout":30}`, `field touch_timeout: want string`},
	}
	for _, tc := range bad {
		_, err := ParseConfig([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.text, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "secret1234") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q shows the PIN or spans lines", tc.text, err)
		}
	}
	if c, err := ParseConfig([]byte(`{"keys":[],"touch_timeout":"45s"}`)); err != nil || c.TouchWait() != 45*time.Second {
		t.Errorf("touch_timeout 45s: %v %v", c.TouchWait(), err)
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big.json")
	os.WriteFile(big, make([]byte, maxConfig+1), 0o600)
	if _, err := LoadConfig(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized config: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "none.json")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing config: %v", err)
	}
}
