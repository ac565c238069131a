package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

// plantedPIN and splitPIN are PINs no path, key or message of this test
// holds by chance; splitPIN has '&' and ';' inside, so a URI parser cuts it
// into pieces. pinPieces are what must never be printed.
const (
	plantedPIN = "Zq7Wk3Xj5"
	splitPIN   = "Zq7&Wk3;Xj5"
	// spacePIN and quotePIN end a URI for a reader that looks for its
	// end, such as redactURIsIn; what follows would be shown.
	spacePIN = "Zq7 Wk3 Xj5"
	quotePIN = `Zq7"Wk3"Xj5`
)

var pinPieces = regexp.MustCompile(`Zq7|Wk3|Xj5`)

// pinShapes are the ways a PIN ends up in a key URI, well-formed (a wrong
// PIN) or not: typed without a name, under a made-up name, with '&' or ';'
// inside, in the path, twice, with a bad %-escape, beside pin-source, or
// as the whole argument. base names a real key (pkcs11:) or card (piv:).
func pinShapes(base string) []string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return []string{
		base + sep + "pin-value=" + plantedPIN,
		base + sep + plantedPIN,
		base + sep + "pin=" + plantedPIN,
		base + sep + "pin-value=" + splitPIN,
		base + sep + "pin-value=" + spacePIN,
		base + sep + "pin-value=" + quotePIN,
		base + sep + "pin-value=" + plantedPIN + "&pin-value=" + plantedPIN,
		base + sep + "pin-value=" + plantedPIN + "%zz",
		base + sep + "pin-value=" + plantedPIN + "&pin-source=file:/nonexistent",
		base + sep + "pin-source=" + plantedPIN,
		base + ";pin-value=" + plantedPIN,
		base + ";" + plantedPIN,
		base + "&pin-value=" + plantedPIN,
		plantedPIN,
		"pkcs12:token=t1?pin-value=" + plantedPIN,
	}
}

// keyScheme makes u a key URI if it is not one already.
func keyScheme(u string) string {
	if strings.HasPrefix(u, "pkcs11:") || strings.HasPrefix(u, "piv:") {
		return u
	}
	return "piv:" + u
}

// TestPINNeverShown runs every command that takes a key URI, with a PIN
// planted in every shape of pinShapes, each in its own process of the real
// CLI: the PIN is in no output, the error is one line, and the exit status
// follows the CLI's rules (2 for a URI that does not parse, 1 for a PIN the
// token refused).
func TestPINNeverShown(t *testing.T) {
	rig := newRig(t, softhsm.Token{Label: "t1", PIN: "1234"}, softhsm.Token{Label: "t2", PIN: "1234"})
	dir := t.TempDir()
	reg := filepath.Join(dir, "reg")
	event := filepath.Join(dir, "event.json")
	if err := os.WriteFile(event, readVector(t, "rot_remove.icp.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	k1, k2 := rig.URI("t1", "k1"), rig.URI("t2", "k2")
	must := func(args ...string) string {
		t.Helper()
		r := keyCLI(t, rig, "", args...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout
	}
	must("key", "generate", k1)
	must("key", "generate", k2)
	prefix := strings.TrimSpace(must("id", "create", "--init", "--registry", reg, "--threshold", "2", "--key", k1, "--key", k2))
	m := regexp.MustCompile(`^pending \S+ (\S+):`).FindStringSubmatch(must("anchor", "--registry", reg, "--id", prefix,
		"--seal", "d=EF_M_u7ASVHXfI8QzdWLq3V9ocSKqxkbujXGbi9QMtP9", "--key", k1))
	if m == nil {
		t.Fatal("anchor with one of two keys did not leave a pending proposal")
	}
	said := m[1]

	// The key URI without a PIN: k1's token, and a PIV card (no card is
	// needed: what parses fails on reaching it, still without the PIN).
	pk := strings.TrimSuffix(k1, "&pin-value=1234")
	var uris []string
	uris = append(uris, pinShapes(pk)...)
	uris = append(uris, pinShapes("piv:serial=7;slot=9c")...)

	commands := []struct {
		name string
		args func(uri string) []string
	}{
		{"key generate", func(u string) []string { return []string{"key", "generate", u} }},
		{"key list", func(u string) []string { return []string{"key", "list", u} }},
		{"key sign", func(u string) []string { return []string{"key", "sign", u, event} }},
		// A file name is shown as given; a URI in its place is not.
		{"key sign, arguments swapped", func(u string) []string {
			if u == plantedPIN {
				u = "pkcs11:" + u
			}
			return []string{"key", "sign", event, u}
		}},
		{"key list, stray argument", func(u string) []string { return []string{"key", "list", k1, u} }},
		{"piv list, stray argument", func(u string) []string { return []string{"piv", "list", u} }},
		{"id create", func(u string) []string {
			return []string{"id", "create", "--init", "--registry", filepath.Join(dir, "new"), "--threshold", "1", "--key", u}
		}},
		{"id create --next-key", func(u string) []string {
			// k2's token: a login on t1 for the --key would let any PIN
			// through for a next key on t1.
			return []string{"id", "create", "--init", "--registry", filepath.Join(dir, "new"), "--threshold", "1", "--key", k2, "--next-key", u}
		}},
		{"id create, forgotten --key", func(u string) []string {
			return []string{"id", "create", "--init", "--registry", filepath.Join(dir, "new"), "--threshold", "1", "--key", k1, u}
		}},
		{"id create, URI given to another flag", func(u string) []string {
			return []string{"id", "create", "--init", "--registry", filepath.Join(dir, "new"), "--threshold", "1", "--expires", u, "--key", k1}
		}},
		// A flag's own value is echoed by its error, unless it is a key
		// URI (pkcs11:, piv:): a bare word given as a seal is a seal.
		{"id create, URI given as the threshold", func(u string) []string {
			return []string{"id", "create", "--init", "--registry", filepath.Join(dir, "new"), "--threshold", keyScheme(u), "--key", k1}
		}},
		{"anchor, URI given as a seal", func(u string) []string {
			return []string{"anchor", "--registry", reg, "--id", prefix, "--seal", keyScheme(u), "--key", k1}
		}},
		{"id rotate", func(u string) []string {
			return []string{"id", "rotate", "--registry", reg, "--id", prefix, "--key", u}
		}},
		{"id rotate --next-key", func(u string) []string {
			return []string{"id", "rotate", "--registry", reg, "--id", prefix, "--key", rig.URI("t1", "k1-next1"), "--next-key", u}
		}},
		{"anchor", func(u string) []string {
			return []string{"anchor", "--registry", reg, "--id", prefix, "--seal", "d=EF_M_u7ASVHXfI8QzdWLq3V9ocSKqxkbujXGbi9QMtP9", "--key", u}
		}},
		{"pending sign", func(u string) []string {
			return []string{"pending", "sign", "--registry", reg, "--key", u, prefix, said}
		}},
	}
	runs := 0
	for _, c := range commands {
		for _, u := range uris {
			args := c.args(u)
			r := keyCLI(t, rig, "", args...)
			runs++
			what := fmt.Sprintf("%s %q", c.name, u)
			if pinPieces.MatchString(r.stdout + r.stderr) {
				t.Errorf("%s: the PIN is shown:\nstdout %q\nstderr %q", what, r.stdout, r.stderr)
			}
			if r.code != 1 && r.code != 2 {
				t.Errorf("%s: exit %d, want 1 or 2 (stdout %q, stderr %q)", what, r.code, r.stdout, r.stderr)
			}
			// One line, and for bad usage the line saying where the help is;
			// pending sign and anchor say what the signature approves before
			// they open a token (printApproval), the error is the line after.
			msg := approvalLines.ReplaceAllString(r.stderr, "")
			msg = usageHintLine.ReplaceAllString(msg, "\n")
			if !strings.HasPrefix(msg, "auths-agent: ") || strings.Count(msg, "\n") != 1 {
				t.Errorf("%s: stderr %q, want one line", what, r.stderr)
			}
			// A PIN the token refused is a negative answer; anything else
			// here is bad usage.
			wrongPIN := strings.Contains(msg, "wrong PIN")
			if wrongPIN && r.code != 1 || !wrongPIN && r.code != 2 {
				t.Errorf("%s: exit %d for %q", what, r.code, r.stderr)
			}
		}
	}
	t.Logf("%d commands run", runs)
}

// usageHintLine is the second line of a usage error.
var usageHintLine = regexp.MustCompile(`\nsee 'auths-agent [a-z ]*--help'\n$`)

// approvalLines matches what printApproval writes before pending sign and
// anchor open their tokens.
var approvalLines = regexp.MustCompile(`(?m)^auths-agent: (pending sign|anchor): (the signature approves|  .*)\n`)

func TestRedactURIsIn(t *testing.T) {
	for in, want := range map[string]string{
		`not a key URI (want piv: or pkcs11:)`:                 `not a key URI (want piv: or pkcs11:)`,
		`--seal piv:slot=9c?pin-value=1: malformed seal`:       `--seal piv:slot=9c?pin-value=…: malformed seal`,
		`threshold "pkcs11:token=a?pin=1": want N`:             `threshold "pkcs11:token=a?…": want N`,
		`pkcs11:token=a;object=k?module-path=/m.so: not found`: `pkcs11:token=a;object=k?module-path=/m.so: not found`,
		`(pkcs11:token=a;1234).`:                               `(pkcs11:token=a;…).`,
	} {
		if got := redactURIsIn(in); got != want {
			t.Errorf("redactURIsIn(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrubArgSecrets(t *testing.T) {
	args := []string{"anchor", "--seal", "piv:slot=9c?pin-value=" + spacePIN, "--registry", "/r/pkcs11:token=a?pin-value=" + quotePIN + "&Zq9", "x"}
	for in, want := range map[string]string{
		`--seal piv:slot=9c?pin-value=Zq7 Wk3 Xj5: malformed seal`:      `--seal piv:slot=9c?pin-value=…: malformed seal`,
		`registry "/r/pkcs11:token=a?pin-value=Zq7\"Wk3\"Xj5&Zq9": bad`: `registry "/r/pkcs11:token=a?pin-value=…&Zq9": bad`,
		`x 12 token a`: `x 12 token a`,
	} {
		if got := scrubArgSecrets(in, args); got != want {
			t.Errorf("scrubArgSecrets(%q) = %q, want %q", in, got, want)
		}
	}
}
