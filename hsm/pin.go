package hsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
)

// PINPrompt asks a person for a PIN. what says which token or card the PIN
// unlocks (never a secret). It stops waiting when ctx is done. The agent
// supplies one; commands without a terminal pass nil.
type PINPrompt func(ctx context.Context, what string) (string, error)

// maxPINFile caps how much of a PIN file is read.
const maxPINFile = 1024

// PINSpec says where the PIN of a token comes from, as written in a key URI:
//
//   - pin-value=1234: the PIN itself (tests and scripts only: it is visible
//     in the URI);
//   - pin-source=file:/run/pin, pin-source=file:///run/pin or a bare path
//     pin-source=/run/pin (RFC 7512): the first line of that file;
//   - pin-source=env:NAME: the environment variable NAME (an auths-agent
//     extension of RFC 7512);
//   - neither: the interactive prompt, when there is one.
//
// A PINSpec prints (%v, %s, %+v, %#v) without its Value.
type PINSpec struct {
	Value  string // pin-value; a secret
	Source string // pin-source; not a secret
	For    string // what the PIN unlocks, for prompts and errors (set by the URI parsers)
}

// IsZero reports whether the URI gave neither pin-value nor pin-source.
func (p PINSpec) IsZero() bool { return p.Value == "" && p.Source == "" }

func (p PINSpec) String() string {
	switch {
	case p.Value != "":
		return "pin-value (redacted)"
	case p.Source != "":
		return "pin-source=" + shownPINSource(p.Source)
	}
	return "PIN prompt"
}

// GoString keeps %#v from printing the PIN.
func (p PINSpec) GoString() string { return "hsm.PINSpec{" + p.String() + "}" }

// Resolve returns the PIN. getenv reads the environment for env: sources
// (nil means os.Getenv); prompt is asked when the URI names no source (nil
// means no prompt: ErrNoPIN). A trailing newline (LF or CRLF) of a PIN file
// is stripped. Errors name the source, never the PIN.
func (p PINSpec) Resolve(ctx context.Context, getenv func(string) string, prompt PINPrompt) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if p.Value != "" {
		return p.Value, nil
	}
	what := p.For
	if what == "" {
		what = "the token"
	}
	if p.Source == "" {
		if prompt == nil {
			return "", fmt.Errorf("%w for %s: add pin-source or pin-value to the URI", ErrNoPIN, what)
		}
		pin, err := prompt(ctx, what)
		if err != nil {
			return "", fmt.Errorf("PIN prompt for %s: %w", what, err)
		}
		if pin == "" {
			return "", fmt.Errorf("%w for %s: empty PIN entered", ErrNoPIN, what)
		}
		return pin, nil
	}
	if !PINSourceShape(p.Source) {
		return "", errBadPINSource
	}
	if name, ok := strings.CutPrefix(p.Source, "env:"); ok {
		if getenv == nil {
			getenv = os.Getenv
		}
		pin := getenv(name)
		if pin == "" {
			return "", fmt.Errorf("%w for %s: environment variable %s is empty or unset", ErrNoPIN, what, name)
		}
		return pin, nil
	}
	path, err := pinFilePath(p.Source)
	if err != nil {
		return "", err
	}
	return readPINFile(path, what)
}

// FilePath returns the path of the PIN file the spec names, if it names one
// (pin-source=file:…, or a bare path).
func (p PINSpec) FilePath() (string, bool) {
	if p.Value != "" || p.Source == "" || strings.HasPrefix(p.Source, "env:") {
		return "", false
	}
	path, err := pinFilePath(p.Source)
	return path, err == nil
}

// errBadPINSource is the error for a pin-source of no known shape. It
// does not quote the value: a pin-source that is not file:…, env:NAME or an
// absolute path is most often a PIN typed under the wrong name
// (pin-source=123456), which every message would otherwise show.
var errBadPINSource = fmt.Errorf("%w: pin-source: want file:PATH, env:NAME or an absolute path (a PIN itself goes in pin-value)", ErrBadURI)

// PINSourceShape reports whether src has the shape of a PIN source:
// file:PATH, env:NAME (NAME letters, digits and '_', not starting with a
// digit) or an absolute path. Only a source of this shape is shown in
// messages; commands (|…) and other schemes are refused.
func PINSourceShape(src string) bool {
	if name, ok := strings.CutPrefix(src, "env:"); ok {
		if name == "" || '0' <= name[0] && name[0] <= '9' {
			return false
		}
		for _, c := range []byte(name) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
				return false
			}
		}
		return true
	}
	return len(src) > len("file:") && strings.HasPrefix(src, "file:") || strings.HasPrefix(src, "/")
}

// shownPINSource is src as messages show it.
func shownPINSource(src string) string {
	if PINSourceShape(src) {
		return src
	}
	return redacted
}

// pinFilePath turns a pin-source of PINSourceShape into a file path:
// file:PATH, file://PATH (file:///abs or file://localhost/abs) or an
// absolute path.
func pinFilePath(src string) (string, error) {
	rest, ok := strings.CutPrefix(src, "file:")
	if !ok {
		return src, nil
	}
	if strings.HasPrefix(rest, "//") {
		u, err := url.Parse(src)
		if err != nil {
			return "", fmt.Errorf("pin-source %q: %v", src, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return "", fmt.Errorf("pin-source %q: file URI on host %q (want a local path)", src, u.Host)
		}
		rest = u.Path
	}
	if rest == "" {
		return "", fmt.Errorf("pin-source %q: empty path", src)
	}
	return rest, nil
}

func readPINFile(path, what string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("%w for %s: cannot read PIN file %s: %v", ErrNoPIN, what, path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPINFile+1))
	if err != nil {
		return "", fmt.Errorf("%w for %s: cannot read PIN file %s: %v", ErrNoPIN, what, path, err)
	}
	if len(data) > maxPINFile {
		return "", fmt.Errorf("%w for %s: PIN file %s is larger than %d bytes", ErrNoPIN, what, path, maxPINFile)
	}
	pin := string(data)
	pin = strings.TrimSuffix(pin, "\n")
	pin = strings.TrimSuffix(pin, "\r")
	if pin == "" {
		return "", fmt.Errorf("%w for %s: PIN file %s is empty", ErrNoPIN, what, path)
	}
	if strings.ContainsAny(pin, "\r\n") {
		return "", fmt.Errorf("%w for %s: PIN file %s holds more than one line", ErrNoPIN, what, path)
	}
	return pin, nil
}
