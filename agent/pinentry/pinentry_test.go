package pinentry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// standin builds the scripted pinentry once per test binary run.
var standin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pinentry-standin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "standin")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/standin").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

func standinPrompter(t *testing.T, mode string) (*Prompter, string) {
	t.Helper()
	bin, err := standin()
	if err != nil {
		t.Fatalf("building the stand-in: %v", err)
	}
	rec := filepath.Join(t.TempDir(), "record")
	return &Prompter{
		Program: bin,
		Env:     []string{"STANDIN_MODE=" + mode, "STANDIN_RECORD=" + rec, "STANDIN_PIN=12%2534"},
		Timeout: 5 * time.Second,
		Getenv:  func(string) string { return "" },
	}, rec
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":       "plain text",
		"100% sure":        "100%25 sure",
		"two\nlines\r\n":   "two%0Alines%0D%0A",
		"tab\there\x7f":    "tab%09here%7F",
		"YubiKey 12345678": "YubiKey 12345678",
		"ünïcode stays":    "ünïcode stays",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		if back, err := Unescape(Escape(in)); err != nil || back != in {
			t.Errorf("Unescape(Escape(%q)) = %q, %v", in, back, err)
		}
	}
	for _, bad := range []string{"12%", "12%4", "12%G4", "%%%"} {
		if _, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%q) succeeded", bad)
		}
	}
}

func TestDescription(t *testing.T) {
	for _, c := range []struct {
		r    Request
		want string
	}{
		{Request{Token: "YubiKey 12345678", Key: "slot 9c", TriesLeft: 3}, "Enter the PIN of YubiKey 12345678 for slot 9c.\n3 tries left."},
		{Request{Token: "YubiKey 12345678", Key: "slot 9c", TriesLeft: 1, Refused: true}, "The previous PIN was refused.\nEnter the PIN of YubiKey 12345678 for slot 9c.\n1 try left before the PIN is blocked."},
		{Request{TriesLeft: -1}, "Enter the PIN of the token."},
	} {
		if got := c.r.Description(); got != c.want {
			t.Errorf("Description(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}

// TestStandinConversation checks the exact lines sent: options only when
// set, escaped texts, SETERROR after a refusal, GETPIN then BYE; and that
// the data line is unescaped.
func TestStandinConversation(t *testing.T) {
	p, rec := standinPrompter(t, "ok")
	p.TTYName, p.TTYType = "/dev/pts/9", "xterm"
	var logs bytes.Buffer
	p.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pin, err := p.GetPIN(context.Background(), Request{Token: "SoftHSM 100% token", Key: "slot 9c", TriesLeft: 2, Refused: true})
	if err != nil {
		t.Fatal(err)
	}
	if pin != "12%34" {
		t.Errorf("PIN = %q, want 12%%34 (data line %%25 unescaped)", pin)
	}
	got, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := "OPTION ttyname=/dev/pts/9\nOPTION ttytype=xterm\nSETTITLE auths-agent\n" +
		"SETDESC The previous PIN was refused.%0AEnter the PIN of SoftHSM 100%25 token for slot 9c.%0A2 tries left.\n" +
		"SETPROMPT PIN:\nSETERROR PIN refused\nGETPIN\nBYE\n"
	if string(got) != want {
		t.Errorf("lines sent:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(logs.String(), "12%34") || strings.Contains(logs.String(), "1234") {
		t.Errorf("the log holds the PIN: %s", logs.String())
	}
	if !strings.Contains(logs.String(), "pinentry answered") {
		t.Errorf("no debug record of the answer: %s", logs.String())
	}
}

// TestStandinFaults: a pinentry that dies, hangs, or answers garbage ends
// the prompt with a one-line error that holds neither the PIN nor the line.
func TestStandinFaults(t *testing.T) {
	for _, c := range []struct {
		mode string
		want string
		is   error
	}{
		{"die-at-start", "the program ended before answering (exit status 7)", nil},
		{"die", "the program ended before answering (exit status 9)", nil},
		{"hang-at-start", "no answer within 300ms (killed)", nil},
		{"hang", "no answer within 300ms (killed)", nil},
		{"garbage-greeting", "answer to the greeting: not an Assuan line", nil},
		{"garbage", "answer to GETPIN: not an Assuan line", nil},
		{"long", "answer to GETPIN: line longer than 1000 bytes", nil},
		{"badescape", "answer to GETPIN: data line: malformed percent-escape at byte 3", nil},
		{"error", "GETPIN refused: error code 83886081", nil},
		{"empty", "empty PIN entered", nil},
		{"cancel", "PIN entry cancelled", ErrCancelled},
	} {
		t.Run(c.mode, func(t *testing.T) {
			p, _ := standinPrompter(t, c.mode)
			p.Timeout = 300 * time.Millisecond
			start := time.Now()
			pin, err := p.GetPIN(context.Background(), Request{Token: "YubiKey 1", TriesLeft: -1})
			if err == nil {
				t.Fatalf("got PIN %q, want an error", pin)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q, want it to hold %q", msg, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			if strings.Contains(msg, "\n") || strings.Contains(msg, "1234") || strings.Contains(msg, "xyzzy") {
				t.Errorf("error %q is not one line, or holds what the program sent", msg)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestContextCancelKills: cancelling the request kills the program at once.
func TestContextCancelKills(t *testing.T) {
	p, _ := standinPrompter(t, "hang")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := p.GetPIN(ctx, Request{TriesLeft: -1})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "(killed)") {
		t.Fatalf("error %v, want context canceled (killed)", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v after the cancel", d)
	}
}

// TestTerminalFromEnvironment: with no terminal set, GPG_TTY, TERM and the
// locale variables give the options, as gpg-agent does.
func TestTerminalFromEnvironment(t *testing.T) {
	p, rec := standinPrompter(t, "ok")
	env := map[string]string{"GPG_TTY": "/dev/pts/3", "TERM": "xterm-256color", "LC_CTYPE": "de_DE.UTF-8", "LANG": "C"}
	p.Getenv = func(k string) string { return env[k] }
	if _, err := p.GetPIN(context.Background(), Request{TriesLeft: -1}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(rec)
	if want := "OPTION ttyname=/dev/pts/3\nOPTION ttytype=xterm-256color\nOPTION lc-ctype=de_DE.UTF-8\nSETTITLE"; !strings.HasPrefix(string(got), want) {
		t.Errorf("lines sent:\n%s\nwant them to start with\n%s", got, want)
	}
}

func TestProgramChoice(t *testing.T) {
	env := map[string]string{"PINENTRY_PROGRAM": "/nonexistent/pinentry-x"}
	p := &Prompter{Getenv: func(k string) string { return env[k] }}
	_, err := p.GetPIN(context.Background(), Request{TriesLeft: -1})
	if err == nil || err.Error() != "pinentry /nonexistent/pinentry-x: cannot start: no such file or directory" {
		t.Errorf("error %v", err)
	}
	p.Program = "/nonexistent/chosen"
	_, err = p.GetPIN(context.Background(), Request{TriesLeft: -1})
	if err == nil || !strings.Contains(err.Error(), "pinentry /nonexistent/chosen: cannot start") {
		t.Errorf("Program does not win over PINENTRY_PROGRAM: %v", err)
	}
}

// TestPinentryTTY drives Debian's pinentry-tty on a pseudo-terminal as a
// person would: the prompt names the token, key and tries left, says that the
// previous PIN was refused, the PIN typed comes back and is not echoed.
func TestPinentryTTY(t *testing.T) {
	prog, err := exec.LookPath("pinentry-tty")
	if err != nil {
		t.Fatalf("pinentry-tty is needed (make test-deps installs it): %v", err)
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()

	var mu sync.Mutex
	var screen bytes.Buffer
	prompted := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		once := sync.Once{}
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			seen := strings.Contains(screen.String(), "PIN:")
			mu.Unlock()
			if seen {
				once.Do(func() { close(prompted) })
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		select {
		case <-prompted:
			io.WriteString(ptmx, "246810\r")
		case <-time.After(10 * time.Second):
		}
	}()

	p := &Prompter{Program: prog, TTYName: tty.Name(), TTYType: "dumb", LCCType: "C.UTF-8", Timeout: 15 * time.Second}
	pin, err := p.GetPIN(context.Background(), Request{Token: "YubiKey 12345678", Key: "slot 9c", TriesLeft: 2, Refused: true})
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%v; screen:\n%s", err, screen.String())
	}
	if pin != "246810" {
		t.Errorf("PIN = %q, want 246810", pin)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	s := screen.String()
	for _, want := range []string{"The previous PIN was refused.", "Enter the PIN of YubiKey 12345678 for slot 9c.", "2 tries left.", "PIN:"} {
		if !strings.Contains(s, want) {
			t.Errorf("screen lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "246810") {
		t.Errorf("the PIN was echoed:\n%s", s)
	}
}
