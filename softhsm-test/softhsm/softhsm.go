// Package softhsm makes real PKCS#11 tokens without hardware for tests, CI
// and the demo: SoftHSM 2 tokens in a private directory with their own
// SOFTHSM2_CONF, created with softhsm2-util and removed afterwards.
//
// SoftHSM reads SOFTHSM2_CONF once per process, when the module is
// initialized. A test that loads the module in its own process must build
// the [Rig] and set SOFTHSM2_CONF (see [Rig.Setenv]) in TestMain before any
// provider is opened; tests that run other processes pass [Rig.Env] to them.
//
//	rig, err := softhsm.New(dir, softhsm.Token{Label: "ci-1", PIN: "1234"})
//	...
//	defer rig.Remove()
//	os.Setenv("SOFTHSM2_CONF", rig.Conf)
package softhsm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Token is a token to create.
type Token struct {
	Label string
	PIN   string // user PIN
	SOPIN string // security officer PIN; defaults to "so-" + PIN
}

// Rig is a set of SoftHSM tokens in a private directory.
type Rig struct {
	Dir    string  // the private directory; Remove deletes it
	Conf   string  // the SOFTHSM2_CONF file
	Module string  // path of libsofthsm2.so
	Tokens []Token // the tokens created, in order
}

// Util is the softhsm2-util command.
const Util = "softhsm2-util"

// moduleCandidates are where Debian, Ubuntu, Fedora and Homebrew put the module.
var moduleCandidates = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/lib/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",
}

// ModulePath returns the path of the SoftHSM PKCS#11 module, or an error
// saying what to install.
func ModulePath() (string, error) {
	for _, p := range moduleCandidates {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("softhsm: libsofthsm2.so not found in %s: install softhsm2 (apt-get install softhsm2)", strings.Join(moduleCandidates, ", "))
}

// New creates dir (which must not exist or be empty), writes its
// softhsm2.conf and a tokens/ directory inside it, and initializes one
// token per entry of tokens. On error nothing is left behind.
func New(dir string, tokens ...Token) (*Rig, error) {
	module, err := ModulePath()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(Util); err != nil {
		return nil, fmt.Errorf("softhsm: %s not found: install softhsm2 (apt-get install softhsm2)", Util)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("softhsm: %w", err)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("softhsm: %s is not empty", dir)
	}
	created := false
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		created = true
	}
	r := &Rig{Dir: dir, Conf: filepath.Join(dir, "softhsm2.conf"), Module: module}
	fail := func(err error) (*Rig, error) {
		if created {
			os.RemoveAll(dir)
		} else {
			os.RemoveAll(filepath.Join(dir, "tokens"))
			os.Remove(r.Conf)
		}
		return nil, err
	}
	tokdir := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokdir, 0o700); err != nil {
		return fail(fmt.Errorf("softhsm: %w", err))
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokdir)
	if err := os.WriteFile(r.Conf, []byte(conf), 0o600); err != nil {
		return fail(fmt.Errorf("softhsm: %w", err))
	}
	for _, tok := range tokens {
		if err := r.AddToken(tok); err != nil {
			return fail(err)
		}
	}
	return r, nil
}

// AddToken initializes one more token in the rig. A process that already
// loaded the module sees it only after it initializes the module again.
func (r *Rig) AddToken(tok Token) error {
	if tok.Label == "" || tok.PIN == "" {
		return fmt.Errorf("softhsm: token %q: label and PIN are required", tok.Label)
	}
	if tok.SOPIN == "" {
		tok.SOPIN = "so-" + tok.PIN
	}
	// The PINs are on the command line of softhsm2-util: acceptable for
	// throw-away test tokens only; softhsm2-util has no other way to take them.
	cmd := exec.Command(Util, "--init-token", "--free", "--label", tok.Label, "--so-pin", tok.SOPIN, "--pin", tok.PIN)
	cmd.Env = append(os.Environ(), r.Env()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("softhsm: %s --init-token --label %s: %v: %s", Util, tok.Label, err, strings.TrimSpace(out.String()))
	}
	r.Tokens = append(r.Tokens, tok)
	return nil
}

// Env returns the environment a process needs to see the rig's tokens.
func (r *Rig) Env() []string { return []string{"SOFTHSM2_CONF=" + r.Conf} }

// Setenv sets SOFTHSM2_CONF in this process, for a TestMain that loads the
// module in-process; call it before opening any provider.
func (r *Rig) Setenv() error { return os.Setenv("SOFTHSM2_CONF", r.Conf) }

// URI returns the PKCS#11 URI of key object on token label, with the PIN as
// pin-value (test tokens only) and the module path.
func (r *Rig) URI(label, object string) string {
	pin := ""
	for _, t := range r.Tokens {
		if t.Label == label {
			pin = t.PIN
		}
	}
	u := "pkcs11:token=" + label
	if object != "" {
		u += ";object=" + object
	}
	u += "?module-path=" + r.Module
	if pin != "" {
		u += "&pin-value=" + pin
	}
	return u
}

// Remove deletes the rig's directory and everything in it.
func (r *Rig) Remove() error {
	if r == nil || r.Dir == "" {
		return nil
	}
	return os.RemoveAll(r.Dir)
}
