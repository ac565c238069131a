// Command auths-agent signs KERI events with controller keys kept on hardware
// tokens (PKCS#11 HSMs, YubiKeys over PIV) and writes them to the auths git
// registry in atomic, verified batches.
//
// Every command takes its flags before its positional arguments. Results go to
// stdout, diagnostics to stderr. Exit status: 0 success, 1 a negative answer
// (invalid, refused), 2 bad usage or unreadable input.
package main

import (
	"context"
	"os"
)

func main() {
	env := &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(context.Background(), env, os.Args))
}
