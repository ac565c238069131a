package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/internal/attesttest"
	"github.com/auths-dev/auths-agent/internal/vectors"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run the CLI as the command "auths-agent".
func TestMain(m *testing.M) {
	testscript.Main(removeBinAfter{m}, map[string]func(){
		"auths-agent": func() {
			env := &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
			os.Exit(run(context.Background(), env, os.Args))
		},
	})
}

// TestScripts runs the CLI scenarios in testdata/*.txt. Each gets the keripy
// conformance vectors copied into $WORK/vectors.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			return vectors.WriteDir(filepath.Join(env.WorkDir, "vectors"))
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status": cmdStatus,
			"concat": cmdConcat,
			"tamper": cmdTamper,
			"attest": cmdAttest,
		},
	})
}

// cmdStatus: status N PROG ARGS... runs PROG like exec and checks that it
// exits with status N; its stdout and stderr are then the script's.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}

// cmdAttest: attest [-revoke] [-legacy] ISSUER DEVICE RID FILE writes to
// FILE an auths attestation of the device DID DEVICE issued by the KERI
// prefix ISSUER, signed by a device key derived from DEVICE; -revoke sets
// revoked_at, -legacy writes auths' legacy form (compact, bare-hex key,
// "+00:00" offset).
func cmdAttest(ts *testscript.TestScript, neg bool, args []string) {
	revoke, legacy := false, false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-revoke":
			revoke = true
		case "-legacy":
			legacy = true
		default:
			ts.Fatalf("attest: unknown flag %s", args[0])
		}
		args = args[1:]
	}
	if neg || len(args) != 4 {
		ts.Fatalf("usage: attest [-revoke] [-legacy] ISSUER DEVICE RID FILE")
	}
	ts0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if revoke {
		ts0 = ts0.Add(time.Hour)
	}
	a := attesttest.NewDevice(args[1]).Attestation(args[0], args[1], args[2], ts0, revoke)
	doc := a.Pretty()
	if legacy {
		doc = attesttest.Legacy(a)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[3]), doc, 0o644))
}

// cmdConcat: concat OUT IN... writes the files IN one after another to OUT,
// as a KEL stream is the events and attachments back to back.
func cmdConcat(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: concat OUT IN...")
	}
	var out []byte
	for _, in := range args[1:] {
		out = append(out, ts.ReadFile(in)...)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), out, 0o644))
}

// cmdTamper: tamper FILE OFFSET CHAR replaces the byte at OFFSET.
func cmdTamper(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 || len(args[2]) != 1 {
		ts.Fatalf("usage: tamper FILE OFFSET CHAR")
	}
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	data := []byte(ts.ReadFile(args[0]))
	if off < 0 || off >= len(data) {
		ts.Fatalf("offset %d outside %s (%d bytes)", off, args[0], len(data))
	}
	if data[off] == args[2][0] {
		ts.Fatalf("byte %d of %s is already %q", off, args[0], args[2])
	}
	data[off] = args[2][0]
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), data, 0o644))
}
