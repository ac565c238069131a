package softhsm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rig")
	rig, err := New(dir, Token{Label: "a", PIN: "1234"}, Token{Label: "b", PIN: "5678", SOPIN: "87654321"})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(rig.Conf)
	if err != nil || !strings.Contains(string(conf), "directories.tokendir = "+filepath.Join(dir, "tokens")) {
		t.Fatalf("conf %q: %v", conf, err)
	}
	cmd := exec.Command(Util, "--show-slots")
	cmd.Env = append(os.Environ(), rig.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s --show-slots: %v: %s", Util, err, out)
	}
	for _, l := range []string{"a", "b"} {
		if !strings.Contains(string(out), "Label:            "+l+" ") {
			t.Errorf("token %s not listed:\n%s", l, out)
		}
	}
	if got, want := rig.URI("b", "k"), "pkcs11:token=b;object=k?module-path="+rig.Module+"&pin-value=5678"; got != want {
		t.Errorf("URI = %q, want %q", got, want)
	}
	if _, err := New(dir); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("New over a used directory: %v", err)
	}
	if err := rig.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Remove left %s: %v", dir, err)
	}
}

func TestNewCleansUpOnError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rig")
	if _, err := New(dir, Token{Label: "a", PIN: "1234"}, Token{Label: "", PIN: "1"}); err == nil {
		t.Fatal("New with an empty label succeeded")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("failed New left %s: %v", dir, err)
	}
}
