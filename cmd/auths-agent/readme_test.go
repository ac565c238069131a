package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmePath is the project's README, two levels up from this package.
var readmePath = filepath.Join("..", "..", "README.md")

// readmeBlock is one ```sh block of the README and the marker before it.
type readmeBlock struct {
	line   int    // of the opening fence
	marker string // "test: NAME", "not run by the README test: WHY", or ""
	text   string
}

var markerRE = regexp.MustCompile(`^<!-- (test: [a-z0-9-]+|not run by the README test: .+) -->$`)

func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	prev := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur != nil && l == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		case strings.HasPrefix(l, "```sh"):
			cur = &readmeBlock{line: n}
			if m := markerRE.FindStringSubmatch(prev); m != nil {
				cur.marker = m[1]
			}
		}
		if strings.TrimSpace(l) != "" {
			prev = l
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: unterminated code block", cur.line)
	}
	return blocks
}

// readmeTested names the README blocks a test runs: the CI guide
// (TestReadmeCIGuide) and the YubiKey guide (TestReadmeYubiKeyGuide, vpiv).
var readmeTested = map[string]bool{
	"ci-guide": true, "ci-guide-anchor": true,
	"yubikey-guide": true, "yubikey-guide-use": true,
}

// TestReadmeBlocks: every sh block of the README is run by a test, or says
// why not, so none can drift from the CLI unnoticed.
func TestReadmeBlocks(t *testing.T) {
	blocks := readmeBlocks(t)
	tested := 0
	for _, b := range blocks {
		switch {
		case b.marker == "":
			t.Errorf("README.md:%d: sh block without <!-- test: NAME --> or <!-- not run by the README test: WHY --> before it", b.line)
		case strings.HasPrefix(b.marker, "test: "):
			tested++
			if name := strings.TrimPrefix(b.marker, "test: "); !readmeTested[name] {
				t.Errorf("README.md:%d: no test runs block %q", b.line, name)
			}
		}
	}
	if tested == 0 {
		t.Error("no README block is run by a test")
	}
}

// readmeCommandPath returns a directory holding `auths-agent`: this test
// binary under that name, which TestMain runs as the CLI.
func readmeCommandPath(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, "auths-agent")); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestReadmeCIGuide runs the README's CI guide exactly as written, with
// the secrets it names in the environment, and checks what it produced.
// Between its two blocks it stands in for auths, which pairs a device with
// the new identity: a device key of its own signs laptop.json (attestdemo,
// the device side of make demo) and $DEVICE names it.
func TestReadmeCIGuide(t *testing.T) {
	blocks := map[string]string{}
	for _, b := range readmeBlocks(t) {
		blocks[b.marker] = b.text
	}
	first, second := blocks["test: ci-guide"], blocks["test: ci-guide-anchor"]
	if first == "" || second == "" {
		t.Fatal("README.md needs the blocks marked <!-- test: ci-guide --> and <!-- test: ci-guide-anchor -->")
	}
	attestdemo := filepath.Join(t.TempDir(), "attestdemo")
	if out, err := exec.Command("go", "build", "-o", attestdemo, "../../internal/attestdemo").CombinedOutput(); err != nil {
		t.Fatalf("build attestdemo: %v\n%s", err, out)
	}
	script := first + "\n# auths pairs a device (stand-in)\n" +
		`DEVICE=$("$ATTESTDEMO" new device.key "$P" laptop-0001 laptop.json)` + "\n" + second
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		t.Fatalf("the CI guide needs softhsm2-util (make test installs softhsm2): %v", err)
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+readmeCommandPath(t)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+dir, "PIN1=1111", "PIN2=2222", "PIN3=3333", "SO_PIN=0000", "ATTESTDEMO="+attestdemo)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("the CI guide failed: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	stdout := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ci-1\t[0-9a-f]+\tSoftHSM project\tSoftHSM v2$`),
		regexp.MustCompile(`(?m)^identity E[A-Za-z0-9_-]{43}$`),
		regexp.MustCompile(`(?m)^committed E[A-Za-z0-9_-]{43} s=1 E[A-Za-z0-9_-]{43}$`),
		regexp.MustCompile(`(?m)^sn         1\nkeys       (D[A-Za-z0-9_-]{43} ?){3}\nthreshold  2\n(.|\n)*^sn         1\n`),
	} {
		if !want.MatchString(stdout) {
			t.Errorf("stdout of the CI guide does not match %s:\n%s", want, stdout)
		}
	}
	for _, pin := range []string{"1111", "2222", "3333"} {
		if strings.Contains(stdout+errb.String(), pin) {
			t.Errorf("a PIN shows in the guide's output:\n%s\n%s", stdout, errb.String())
		}
	}
	if n, err := exec.Command("git", "-C", filepath.Join(dir, "registry"), "rev-list", "--count", "refs/auths/registry").Output(); err != nil || strings.TrimSpace(string(n)) != "3" {
		t.Errorf("registry commits: %q %v, want 3 (init, inception, anchor)", n, err)
	}
}

// TestMakeInstall runs the README's `make install` with PREFIX and the
// installed binary's --version.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make install needs make: %v", err)
	}
	prefix := t.TempDir()
	cmd := exec.Command("make", "-s", "-C", filepath.Join("..", ".."), "install", "PREFIX="+prefix)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	bin := filepath.Join(prefix, "bin", "auths-agent")
	if !strings.Contains(string(out), "installed "+bin) {
		t.Errorf("make install says:\n%s\nwant installed %s", out, bin)
	}
	v, err := exec.Command(bin, "--version").Output()
	if err != nil || !regexp.MustCompile(`^auths-agent version \S+.* go1\.\d+`).Match(v) {
		t.Errorf("%s --version: %q %v", bin, v, err)
	}
}

// TestMakeDemo runs what the README's `make demo` runs (scripts/demo.sh,
// after make's dependency check) and checks what it shows: the anchors
// committed, one left pending and completed by another process, and the
// agent started on a temporary socket, three concurrent anchors through it
// committed one after the other, the agent stopped and its socket removed;
// then the KEL verifies and the stored attestations load.
func TestMakeDemo(t *testing.T) {
	cmd := exec.Command(filepath.Join("..", "..", "scripts", "demo.sh"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{
		"== the agent: one process holds the three tokens on a temporary socket\n  listening on /tmp/auths-demo.",
		"pending proposals left: 0\n",
		"  agent stopped; socket removed: yes\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
	through := regexp.MustCompile(`(?m)^    committed (E\S{43}) s=(\d+) (E\S{43})$`).FindAllStringSubmatch(s, -1)
	if len(through) != 3 || through[0][2] == through[1][2] || through[1][2] == through[2][2] || through[0][2] == through[2][2] {
		t.Errorf("three anchors through the agent: %q, want three commits at three sequence numbers:\n%s", through, s)
	}
	// scripts/demo.sh stops at the first command that fails (set -e): the
	// KEL verified, at the last anchor's sequence number, and each stored
	// attestation loads.
	if len(through) == 3 && !strings.Contains(s, "== verify the KEL in the registry\nprefix     "+through[0][1]+"\nsn         5\n") {
		t.Errorf("the registry's KEL does not verify up to s=5 (the third anchor through the agent):\n%s", s)
	}
	if n := strings.Count(s, "\n  ok did:key:"); n != 4 {
		t.Errorf("%d attestations checked ok, want 4 (two devices, each with its history copy):\n%s", n, s)
	}
}
