package main

// This file holds the CLI's output and exit-status rules; every command uses
// its helpers rather than printing errors itself.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
)

// Exit statuses shared by every command. The same kind of error gets the
// same status everywhere:
//
//   - 2: bad usage, or input that cannot be read or parsed at all: a missing
//     file, a KEL stream that does not parse (truncated, garbage), a
//     malformed prefix, a corrupt registry (ErrCorrupt), not a registry.
//   - 1: input that parses but is refused or invalid: a bad signature or
//     SAID, a threshold not met, an unknown prefix, a conflict, a wrong PIN.
const (
	exitOK       = 0
	exitNegative = 1 // a negative answer: invalid, refused
	exitUsage    = 2 // bad usage or unreadable input
)

// cliEnv is everything a command touches in the outside world, so tests can
// run commands in-process.
type cliEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// exitError carries an exit status and a one-line message; hint, for bad
// usage, is a second line saying where the command's help is.
type exitError struct {
	code int
	msg  string
	hint string
}

func (e *exitError) Error() string { return e.msg }

// usageErr reports bad usage or unreadable input (exit 2).
func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// negativeErr reports a negative answer (exit 1).
func negativeErr(format string, args ...any) error {
	return &exitError{code: exitNegative, msg: fmt.Sprintf(format, args...)}
}

// silentExit ends a command with a status and no further message (the command
// already wrote what it had to say).
func silentExit(code int) error { return &exitError{code: code} }

// wantArgs checks the number of positional arguments of a command.
func wantArgs(c *cli.Context, names ...string) error {
	n := c.Args().Len()
	if n < len(names) {
		return cmdUsageErr(c, "%s: missing argument %s", commandPath(c), strings.ToUpper(names[n]))
	}
	if n > len(names) {
		return cmdUsageErr(c, "%s: unexpected argument %d%s (flags go before arguments)", commandPath(c), len(names)+1, argKind(c, c.Args().Get(len(names))))
	}
	return nil
}

// argKind says what kind of argument s is without showing what was typed:
// a stray argument is often a key URI whose PIN would be shown (a
// forgotten --key before pkcs11:…&pin-value=…). Only a flag of the command
// itself is named, as the command defines it.
func argKind(c *cli.Context, s string) string {
	if scheme, _, ok := strings.Cut(s, ":"); ok && slices.Contains([]string{"pkcs11", "piv"}, scheme) {
		return ", a " + scheme + ": URI"
	}
	name, _, _ := strings.Cut(strings.TrimLeft(s, "-"), "=")
	if strings.HasPrefix(s, "-") && c.Command != nil {
		for _, f := range c.Command.Flags {
			if slices.Contains(f.Names(), name) {
				return ", the flag --" + f.Names()[0]
			}
		}
	}
	return ""
}

// shownName is a file name as messages show it: a URI given where a file
// belongs (a key URI, arguments swapped) is shown redacted.
func shownName(s string) string {
	scheme, rest, ok := strings.Cut(s, ":")
	if ok && (slices.Contains([]string{"pkcs11", "piv"}, scheme) || !strings.ContainsAny(scheme, "/.") && strings.ContainsAny(rest, "=?;&")) {
		return hsm.RedactURI(s)
	}
	return s
}

// prefixArg checks that p is a KERI identifier prefix (a Blake3-256 digest,
// or a basic Ed25519 or P-256 key prefix) before anything is opened: a
// malformed prefix is bad usage, exit 2.
func prefixArg(c *cli.Context, p string) (string, error) {
	if _, err := kel.ParseDigest(p); err == nil {
		return p, nil
	}
	if _, err := kel.ParseVerfer(p); err == nil {
		return p, nil
	}
	shown := p
	if len(shown) > 60 {
		shown = shown[:60] + "..."
	}
	return "", cmdUsageErr(c, "%s: %q is not a KERI prefix (want 44 base64url characters, e.g. E...)", commandPath(c), shown)
}

// readInput reads FILE, or stdin when the name is "-". limit caps the size.
func readInput(env *cliEnv, name string, limit int64) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = env.stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageErr("cannot read %s: %v", shownName(name), unwrapPathErr(err))
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, usageErr("cannot read %s: %v", shownName(name), unwrapPathErr(err))
	}
	if int64(len(data)) > limit {
		return nil, usageErr("%s: input larger than %d bytes", shownName(name), limit)
	}
	return data, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// run builds the application and runs it, turning errors into exit statuses.
func run(ctx context.Context, env *cliEnv, args []string) int {
	app := newApp(env)
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(env.stderr, "auths-agent: %s\n", redactURIsIn(scrubArgSecrets(ee.msg, args)))
		}
		if ee.hint != "" {
			fmt.Fprintln(env.stderr, ee.hint)
		}
		return ee.code
	}
	// Errors from urfave/cli itself (unknown flag, bad flag value) are usage
	// errors; anything else is a failed operation.
	fmt.Fprintf(env.stderr, "auths-agent: %s\n", redactURIsIn(scrubArgSecrets(oneLine(err.Error()), args)))
	return exitUsage
}

// minScrubbed is the shortest secret scrubArgSecrets removes from free
// text: shorter ones would eat ordinary words and numbers of the message,
// and no token takes so short a PIN by default.
const minScrubbed = 4

// scrubArgSecrets removes from msg what the key URIs among args hide (their
// PIN, unknown attributes), as typed and as %q quotes it. redactURIsIn
// finds a URI's end at a space or a quote; a PIN may hold either, and its
// tail would be shown after the redacted URI.
func scrubArgSecrets(msg string, args []string) string {
	for _, a := range args {
		i := strings.Index(a, "pkcs11:")
		if j := strings.Index(a, "piv:"); j >= 0 && (i < 0 || j < i) {
			i = j
		}
		if i < 0 {
			continue
		}
		for _, sec := range hsm.URISecrets(a[i:]) {
			if len(sec) < minScrubbed {
				continue
			}
			quoted := strconv.Quote(sec)
			msg = strings.ReplaceAll(msg, quoted[1:len(quoted)-1], "…")
			msg = strings.ReplaceAll(msg, sec, "…")
		}
	}
	return msg
}

// keyURIText is a key URI inside a message, up to a space or a quote.
var keyURIText = regexp.MustCompile(`(?:pkcs11|piv):[^\s"]*`)

// redactURIsIn redacts every key URI a message holds, whatever put it
// there: a key URI given to a flag that expects something else (--seal,
// --threshold) is echoed by that flag's error. Redacting twice changes
// nothing, so messages built with hsm.RedactURI pass unchanged.
func redactURIsIn(msg string) string {
	return keyURIText.ReplaceAllStringFunc(msg, func(u string) string {
		// The punctuation of the message that follows a URI stays.
		trimmed := strings.TrimRight(u, ":,).")
		if !strings.Contains(trimmed, ":") {
			return u // a scheme named in prose: "want piv: or pkcs11:"
		}
		return hsm.RedactURI(trimmed) + u[len(trimmed):]
	})
}

// snText shows a sequence number as KERI does, in hex, with the decimal
// beside it once the two differ ("1a (26)"). Lines meant for scripts print
// s=HEX alone.
func snText(sn uint64) string {
	if sn < 10 {
		return fmt.Sprintf("%x", sn)
	}
	return fmt.Sprintf("%x (%d)", sn, sn)
}

func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
}

// newApp builds the application. Explicit help (help, --help) goes to
// stdout; everything else urfave/cli would print goes through our hooks
// (help.go) and ends as one line on stderr.
func newApp(env *cliEnv) *cli.App {
	cmds := append(commands(env), helpCommand())
	prepareCommands(cmds, "", map[cli.Flag]bool{})
	return &cli.App{
		Name:            "auths-agent",
		Usage:           "sign KERI events with keys on hardware tokens",
		Version:         version(),
		Writer:          env.stdout,
		ErrWriter:       env.stderr,
		Reader:          env.stdin,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // run() decides the status
		OnUsageError:    onUsageError,
		// The application's own action runs when no command matched.
		Action: func(c *cli.Context) error {
			if c.Args().Len() == 0 {
				cli.HelpPrinter(env.stderr, cli.AppHelpTemplate, c.App)
				return silentExit(exitUsage)
			}
			return unknownCommand("", c.Args().First(), c.App.Commands)
		},
		Commands: cmds,
	}
}

// commandPath names the running command with its parents ("key sign"):
// urfave/cli v2.27's Command.FullName returns only the last name.
func commandPath(c *cli.Context) string {
	var names []string
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" && l.Command.Name != c.App.Name {
			names = append([]string{l.Command.Name}, names...)
		}
	}
	if len(names) == 0 {
		if c.Command == nil || c.Command.Name == c.App.Name {
			return ""
		}
		return c.Command.Name
	}
	return strings.Join(names, " ")
}
