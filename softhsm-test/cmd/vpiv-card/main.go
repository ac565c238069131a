// Command vpiv-card is a virtual YubiKey PIV card for tests. It connects as
// a TCP client to vpcd (vsmartcard's reader driver inside pcscd) and answers
// the reader until it is killed, reconnecting when vpcd goes away.
//
//	vpiv-card [-addr 127.0.0.1:35963] -state FILE [-serial N] [-version 5.7.1]
//	          [-latency D] [-touch-delay D] [-touch-timeout D] [-select-only]
//	          [-log FILE] [-ca-out FILE]
//	          [-ready FILE]
//
// The card's keys, PIN counters and data objects live in the JSON state file;
// a missing file makes a factory-fresh card (PIN 123456, PUK 12345678, the
// default 3DES management key) with its own attestation CA, whose certificate
// -ca-out writes as PEM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	flags := flag.NewFlagSet("vpiv-card", flag.ContinueOnError)
	addr := flags.String("addr", "127.0.0.1:35963", "vpcd `host:port` to connect to")
	statePath := flags.String("state", "", "JSON state `file` (created when missing; required)")
	serial := flags.Uint("serial", 10000001, "card serial `number`")
	version := flags.String("version", "5.7.1", "firmware `version` GET VERSION reports")
	latency := flags.Duration("latency", 0, "added to every signature to emulate a real device")
	touchDelay := flags.Duration("touch-delay", 0, "how long after a request a touch arrives")
	touchTimeout := flags.Duration("touch-timeout", 0, "how long the card waits for a touch before it refuses (6982), as a YubiKey does after 15s; 0: for ever")
	selectOnly := flags.Bool("select-only", false, "answer only SELECT (9000), everything else 6d00: not a YubiKey")
	logPath := flags.String("log", "", "append one line per APDU to `file` (PINs redacted)")
	caOut := flags.String("ca-out", "", "write the attestation CA certificate (PEM) to `file`")
	readyPath := flags.String("ready", "", "create `file` when the reader first powers the card on (removed at start)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "vpiv-card: unexpected argument %q\n", flags.Arg(0))
		return 2
	}
	if *statePath == "" {
		fmt.Fprintln(os.Stderr, "vpiv-card: -state is required")
		return 2
	}
	if *serial == 0 || *serial > 0xffffffff {
		fmt.Fprintf(os.Stderr, "vpiv-card: -serial %d: want 1 to 4294967295\n", *serial)
		return 2
	}
	v, err := parseVersion(*version)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vpiv-card: -version: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := vpiv.Config{
		Serial:       uint32(*serial),
		Version:      v,
		SelectOnly:   *selectOnly,
		Latency:      *latency,
		TouchDelay:   *touchDelay,
		TouchTimeout: *touchTimeout,
		StatePath:    *statePath,
	}
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vpiv-card: -log: %v\n", err)
			return 2
		}
		defer f.Close()
		cfg.Trace = f
	}
	card, err := vpiv.New(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vpiv-card: %v\n", err)
		return 2
	}
	if *caOut != "" {
		if err := os.WriteFile(*caOut, card.CACertificatePEM(), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "vpiv-card: -ca-out: %v\n", err)
			return 1
		}
	}
	opts := vpiv.ServeOptions{Logger: logger}
	if *readyPath != "" {
		if err := os.Remove(*readyPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "vpiv-card: -ready: %v\n", err)
			return 1
		}
		opts.Ready = func() {
			if err := os.WriteFile(*readyPath, nil, 0o644); err != nil {
				logger.Error("writing the ready file", "err", err)
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = vpiv.Serve(ctx, *addr, card, opts)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "vpiv-card: %v\n", err)
		return 1
	}
	return 0
}

// parseVersion reads "major.minor.patch", each 0 to 255.
func parseVersion(s string) ([3]byte, error) {
	var v [3]byte
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("%q: want major.minor.patch", s)
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil {
			return v, fmt.Errorf("%q: %q is not a number from 0 to 255", s, p)
		}
		v[i] = byte(n)
	}
	return v, nil
}
