package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/internal/vectors"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// The key command tests run every command in a new process (this test
// binary re-executed into TestKeyCLIHelper), because a process loads a
// PKCS#11 module once: so every list and sign also shows that keys are
// found again by a new process. The tokens are SoftHSM tokens in a private
// directory; the children get only SOFTHSM2_CONF.

const keyHelperEnv = "AUTHS_KEY_CLI_HELPER_ARGS"

// TestKeyCLIHelper is the child process: it runs the CLI with the arguments
// in keyHelperEnv and exits with its status.
func TestKeyCLIHelper(t *testing.T) {
	argsText := os.Getenv(keyHelperEnv)
	if argsText == "" {
		return // only runs as a child of the key CLI tests
	}
	var args []string
	if err := json.Unmarshal([]byte(argsText), &args); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"auths-agent"}, args...)
	env := &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(context.Background(), env, args))
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// keyCLI runs `auths-agent args…` in a child process with SOFTHSM2_CONF of rig.
func keyCLI(t *testing.T, rig *softhsm.Rig, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKeyCLIHelper$", "-test.count=1")
	argsText, _ := json.Marshal(args)
	cmd.Env = append(os.Environ(), keyHelperEnv+"="+string(argsText))
	if rig != nil {
		cmd.Env = append(cmd.Env, rig.Env()...)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// newRig makes SoftHSM tokens for one test, removed at its end.
func newRig(t testing.TB, tokens ...softhsm.Token) *softhsm.Rig {
	t.Helper()
	rig, err := softhsm.New(filepath.Join(t.TempDir(), "softhsm"), tokens...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rig.Remove() })
	return rig
}

func TestKeyGenerateListSign(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "ci-1", PIN: "1234"})
	mod := rig.Module
	keys := map[string]kel.Verfer{}
	for _, k := range []struct{ label, alg string }{{"k0", "ed25519"}, {"k1", "p256"}} {
		r := keyCLI(t, rig, "", "key", "generate", "--algorithm", k.alg, rig.URI("ci-1", k.label))
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("generate %s: exit %d, stderr %q", k.label, r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		wantURI := regexp.MustCompile(`^pkcs11:token=ci-1;object=` + k.label + `;id=(%[0-9A-F]{2}){16}\?module-path=` + regexp.QuoteMeta(mod) + `$`)
		if len(lines) != 2 || !wantURI.MatchString(lines[0]) {
			t.Fatalf("generate %s printed %q", k.label, r.stdout)
		}
		v, err := kel.ParseVerfer(lines[len(lines)-1])
		if err != nil || v.Algorithm().String() != k.alg {
			t.Fatalf("generate %s: last line %q: %v", k.label, lines[len(lines)-1], err)
		}
		keys[k.label] = v
	}

	r := keyCLI(t, rig, "", "key", "list", rig.URI("ci-1", ""))
	listLine := regexp.MustCompile(`^(k[01])\t([0-9a-f]{32})\t(ed25519|p256)\t(\S+)$`)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("list: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, l := range lines {
		m := listLine.FindStringSubmatch(l)
		if m == nil || keys[m[1]].QB64() != m[4] || keys[m[1]].Algorithm().String() != m[3] {
			t.Errorf("list line %q does not match the generated keys", l)
		}
	}

	// A KERI event (keripy's exact bytes) signs as it is, from a file or
	// stdin; pretty-printed, it signs as its compact serialization.
	msg := readVector(t, "rot_remove.icp.json")
	event := filepath.Join(t.TempDir(), "event.json")
	os.WriteFile(event, msg, 0o600)
	var pretty bytes.Buffer
	json.Indent(&pretty, msg, "", "  ")
	prettyFile := filepath.Join(t.TempDir(), "pretty.json")
	os.WriteFile(prettyFile, append(pretty.Bytes(), '\n'), 0o600)
	raw := []byte("any bytes at all\n")
	rawFile := filepath.Join(t.TempDir(), "raw")
	os.WriteFile(rawFile, raw, 0o600)
	for label, v := range keys {
		for _, tc := range []struct {
			args   []string
			stdin  string
			signed []byte
		}{
			{[]string{event}, "", msg},
			{[]string{"-"}, string(msg), msg},
			{[]string{prettyFile}, "", msg},
			{[]string{"--raw", rawFile}, "", raw},
			{[]string{"--raw", "-"}, string(raw), raw},
		} {
			args := append([]string{"key", "sign"}, tc.args[:len(tc.args)-1]...)
			args = append(args, rig.URI("ci-1", label), tc.args[len(tc.args)-1])
			r := keyCLI(t, rig, tc.stdin, args...)
			sig, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(r.stdout))
			if r.code != 0 || err != nil || len(sig) != 64 || !v.Verify(tc.signed, sig) {
				t.Errorf("sign %s %s: exit %d, stdout %q, stderr %q", label, tc.args, r.code, r.stdout, r.stderr)
			}
		}
	}

	// The documented URI form works with only SOFTHSM2_CONF set.
	r = keyCLI(t, rig, "", "key", "sign", "pkcs11:token=ci-1;object=k0?module-path="+mod+"&pin-value=1234", event)
	if r.code != 0 {
		t.Errorf("sign with the documented URI: exit %d, %s", r.code, r.stderr)
	}
	// PIN from a file and from the environment.
	pinFile := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pinFile, []byte("1234\n"), 0o600)
	t.Setenv("TEST_TOKEN_PIN", "1234")
	for _, src := range []string{"file:" + pinFile, pinFile, "env:TEST_TOKEN_PIN"} {
		r = keyCLI(t, rig, "", "key", "sign", "pkcs11:token=ci-1;object=k1?module-path="+mod+"&pin-source="+src, event)
		if r.code != 0 {
			t.Errorf("sign with pin-source=%s: exit %d, %s", src, r.code, r.stderr)
		}
	}
}

// readVector reads a keripy conformance vector (kept in internal/vectors).
func readVector(t *testing.T, name string) []byte {
	t.Helper()
	data, err := vectors.File(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestKeySignRefusesNonEvents: without --raw, `key sign` signs nothing it
// could not parse as a KERI event with a matching SAID, and refuses before
// it opens the token (the wrong PIN in the URI is never sent).
func TestKeySignRefusesNonEvents(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "ci-1", PIN: "1234"})
	if r := keyCLI(t, rig, "", "key", "generate", rig.URI("ci-1", "k0")); r.code != 0 {
		t.Fatalf("generate: %d %s", r.code, r.stderr)
	}
	wrongPIN := strings.Replace(rig.URI("ci-1", "k0"), "pin-value=1234", "pin-value=9999", 1)
	dir := t.TempDir()
	event := readVector(t, "rot_remove.icp.json")
	files := map[string][]byte{
		"text":     []byte("please sign me\n"),
		"json":     []byte(`{"hello":"world"}`),
		"stub":     []byte(`{"v":"KERI10JSON000000_","t":"ixn"}`),
		"qry":      []byte(`{"v":"KERI10JSON000000_","t":"qry","d":""}`),
		"tampered": bytes.Replace(event, []byte(`"s":"0"`), []byte(`"s":"1"`), 1),
	}
	for name, data := range files {
		os.WriteFile(filepath.Join(dir, name), data, 0o600)
	}
	for _, tc := range []struct {
		file string
		code int
		want string
	}{
		{"text", 2, `^auths-agent: key sign: \S+/text: not a KERI event: not JSON: .* \(sign other bytes with --raw\)\n$`},
		{"json", 2, `^auths-agent: key sign: \S+/json: not a KERI event: event: must start with fields "v" and "t" \(sign other bytes with --raw\)\n$`},
		{"stub", 2, `^auths-agent: key sign: \S+/stub: not a KERI event: .* \(sign other bytes with --raw\)\n$`},
		{"qry", 2, `^auths-agent: key sign: \S+/qry: not a KERI event: field "t": event type "qry" unsupported .*\n$`},
		{"tampered", 1, `^auths-agent: key sign: \S+/tampered: icp event: field "d": SAID mismatch: .*; not signed\n$`},
	} {
		for _, uri := range []string{rig.URI("ci-1", "k0"), wrongPIN} {
			r := keyCLI(t, rig, "", "key", "sign", uri, filepath.Join(dir, tc.file))
			if r.code != tc.code || r.stdout != "" || !regexp.MustCompile(tc.want).MatchString(r.stderr) {
				t.Errorf("key sign %s: exit %d, stdout %q, stderr %q; want exit %d, stderr matching %s", tc.file, r.code, r.stdout, r.stderr, tc.code, tc.want)
			}
		}
		// The escape hatch signs the same bytes as they are.
		r := keyCLI(t, rig, "", "key", "sign", "--raw", rig.URI("ci-1", "k0"), filepath.Join(dir, tc.file))
		if r.code != 0 || len(strings.TrimSpace(r.stdout)) != 86 {
			t.Errorf("key sign --raw %s: exit %d, stdout %q, stderr %q", tc.file, r.code, r.stdout, r.stderr)
		}
	}
}

func TestKeyRefusals(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "ci-1", PIN: "1234"})
	mod := rig.Module
	if r := keyCLI(t, rig, "", "key", "generate", rig.URI("ci-1", "k0")); r.code != 0 {
		t.Fatalf("generate: %d %s", r.code, r.stderr)
	}
	serial := tokenSerialFromList(t, rig)
	event := filepath.Join(t.TempDir(), "event")
	os.WriteFile(event, readVector(t, "rot_remove.icp.json"), 0o600)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"key", "generate", "--algorithm", "p256", rig.URI("ci-1", "k0")}, 1,
			`key generate: pkcs11:token=ci-1;object=k0?module-path=` + mod + `: already exists: a key labelled "k0" is already on token "ci-1" (serial ` + serial + `)`},
		{[]string{"key", "sign", "pkcs11:token=ci-1;object=k0?module-path=" + mod + "&pin-value=9999", event}, 1,
			`key sign: pkcs11:token=ci-1;object=k0?module-path=` + mod + `: wrong PIN for token "ci-1" (serial ` + serial + `)`},
		{[]string{"key", "list", "pkcs11:token=ci-1?module-path=/nonexistent/lib.so&pin-value=1234"}, 2,
			`key list: pkcs11:token=ci-1?module-path=/nonexistent/lib.so: module /nonexistent/lib.so: no such file or directory`},
		{[]string{"key", "list", "pkcs11:token=ci-1?module-path=" + event + "&pin-value=1234"}, 2,
			`key list: pkcs11:token=ci-1?module-path=` + event + `: module ` + event + `: not a PKCS#11 module (not a shared library)`},
		{[]string{"key", "list", "pkcs11:token=ci-9?module-path=" + mod + "&pin-value=1234"}, 2,
			`key list: pkcs11:token=ci-9?module-path=` + mod + `: not found: no token labelled "ci-9" (tokens present: "ci-1")`},
		{[]string{"key", "sign", rig.URI("ci-1", "nokey"), event}, 2,
			`key sign: pkcs11:token=ci-1;object=nokey?module-path=` + mod + `: not found: no private key labelled "nokey" on token "ci-1" (serial ` + serial + `)`},
		{[]string{"key", "list", "pkcs11:token=ci-1?pin-value=1234"}, 2,
			`key list: pkcs11:token=ci-1: bad key URI: no module-path (add ?module-path=/path/to/module.so)`},
		{[]string{"key", "list", "ssh:ci-1?pin-value=1234"}, 2,
			`key list: "…:…?pin-value=…": not a key URI (want piv: or pkcs11:)`},
		{[]string{"key", "list", "pkcs11:slot-id=1?pin-value=1234"}, 2,
			`key list: pkcs11:slot-id=…?pin-value=…: bad key URI: attribute slot-id: name the token by token= (label) or serial=, never by slot`},
		{[]string{"key", "generate", "--algorithm", "rsa", rig.URI("ci-1", "k2")}, 2,
			`key generate: --algorithm "rsa": want ed25519 or p256`},
		{[]string{"key", "generate", rig.URI("ci-1", "k2"), "--algorithm", "p256"}, 2,
			`key generate: unexpected argument 2, the flag --algorithm (flags go before arguments)` + "\nsee 'auths-agent key generate --help'"},
		{[]string{"key", "sign", rig.URI("ci-1", "k0")}, 2, `key sign: missing argument FILE` + "\nsee 'auths-agent key sign --help'"},
		{[]string{"key", "sign", rig.URI("ci-1", "k0"), event + ".missing"}, 2,
			`cannot read ` + event + `.missing: no such file or directory`},
		{[]string{"key", "generate", rig.URI("ci-1", "")}, 2,
			`key generate: pkcs11:token=ci-1?module-path=` + mod + `: bad key URI: no object= (the new key's label)`},
	}
	for _, tc := range cases {
		r := keyCLI(t, rig, "", tc.args...)
		want := "auths-agent: " + tc.want + "\n"
		if r.code != tc.code || r.stderr != want || r.stdout != "" {
			t.Errorf("%s:\n  exit %d, stderr %q\n  want exit %d, stderr %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, want)
		}
		if regexp.MustCompile(`pin-value=[^…]|9999`).MatchString(r.stderr) {
			t.Errorf("%s: stderr shows a PIN: %s", strings.Join(tc.args, " "), r.stderr)
		}
	}
}

// tokenSerialFromList reads the token's serial from an error message that
// names it (the CLI prints no serials otherwise).
func tokenSerialFromList(t *testing.T, rig *softhsm.Rig) string {
	r := keyCLI(t, rig, "", "key", "sign", "--raw", rig.URI("ci-1", "serial-probe"), "-")
	m := regexp.MustCompile(`\(serial ([0-9a-f]+)\)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no serial in %q", r.stderr)
	}
	return m[1]
}
