package touch

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNoticeText(t *testing.T) {
	if got := (Notice{Token: "YubiKey 12345678", N: 1, Of: 2}).String(); got != "waiting for touch on YubiKey 12345678 (1 of 2)" {
		t.Errorf("got %q", got)
	}
	if got := (Notice{Token: "YubiKey 12345678"}).String(); got != "waiting for touch on YubiKey 12345678" {
		t.Errorf("got %q", got)
	}
}

// script writes an executable shell script standing in for notify-send:
// the real one needs a desktop notification daemon on D-Bus, which a test
// machine lacks, so only its arguments and its hangs are observed.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "notify-send")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNotify(t *testing.T) {
	out := filepath.Join(t.TempDir(), "args")
	var logs bytes.Buffer
	var forwarded []Notice
	n := New(Options{
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		NotifySend: script(t, `printf '%s\n' "$@" > `+out),
		Forward:    func(_ context.Context, no Notice) { forwarded = append(forwarded, no) },
	})
	n.Notify(WithPosition(context.Background(), 1, 2), "YubiKey 12345678")
	n.Wait()
	args, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(args) != "--app-name=auths-agent\n--expire-time=15000\nauths-agent\nwaiting for touch on YubiKey 12345678 (1 of 2)\n" {
		t.Errorf("notify-send got:\n%s", args)
	}
	if !strings.Contains(logs.String(), `msg="waiting for touch on YubiKey 12345678 (1 of 2)"`) {
		t.Errorf("log: %s", logs.String())
	}
	if len(forwarded) != 1 || forwarded[0] != (Notice{"YubiKey 12345678", 1, 2}) {
		t.Errorf("forwarded %v", forwarded)
	}
}

// TestNotifyNeverBlocks: a notify-send that hangs or fails, or none at all,
// does not hold up the caller, and the log line is still written.
func TestNotifyNeverBlocks(t *testing.T) {
	for name, prog := range map[string]string{
		"hangs":  script(t, "exec sleep 60"),
		"fails":  script(t, "exit 1"),
		"absent": filepath.Join(t.TempDir(), "no-notify-send"),
		"off":    "-",
	} {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			n := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), NotifySend: prog, Timeout: 300 * time.Millisecond})
			start := time.Now()
			n.Notify(context.Background(), "YubiKey 7")
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("Notify took %v", d)
			}
			n.Wait()
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("a hung notify-send lived %v", d)
			}
			if !strings.Contains(logs.String(), "waiting for touch on YubiKey 7") {
				t.Errorf("log: %s", logs.String())
			}
		})
	}
}
