package registry

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors callers branch on with errors.Is.
var (
	// ErrConflict means another writer changed the registry: the ref moved
	// under the batch, or an event's sequence number was taken meanwhile.
	ErrConflict = errors.New("concurrent modification")
	// ErrCorrupt means the registry holds something this package cannot read
	// as the auths v1 layout; it is never overwritten.
	ErrCorrupt = errors.New("corrupt registry")
	// ErrNotFound means the prefix, event, device or ref does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNoRegistry means the repository has no refs/auths/registry yet.
	ErrNoRegistry = errors.New("no registry ref")
	// ErrDuplicate means an event with the same SAID is already in the KEL.
	ErrDuplicate = errors.New("event already present")
	// ErrUnanchored means a batch stores an attestation that no event of
	// its issuer in the same batch anchors.
	ErrUnanchored = errors.New("attestation not anchored")
)

// ConflictError is a lost compare-and-swap (Op < 0) or an event whose
// sequence number another writer took (Op is its index in the batch).
type ConflictError struct {
	Ref      string
	Expected string // the value the writer read (empty: absent)
	Actual   string // the value found (empty: absent)
	Op       int    // batch operation index, -1 for a ref conflict
	Reason   string
}

func (e *ConflictError) Error() string {
	if e.Op >= 0 {
		return fmt.Sprintf("operation %d: %s: %s", e.Op, ErrConflict, e.Reason)
	}
	exp, act := e.Expected, e.Actual
	if exp == "" {
		exp = "(absent)"
	}
	if act == "" {
		act = "(absent)"
	}
	return fmt.Sprintf("%s: %s: expected %s, found %s", e.Ref, ErrConflict, exp, act)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// refConflict reports whether err is a lost compare-and-swap on the ref
// (worth retrying), as opposed to an event conflict (never retried).
func refConflict(err error) bool {
	var ce *ConflictError
	return errors.As(err, &ce) && ce.Op < 0
}

// OpError says which operation of a batch failed verification and why.
type OpError struct {
	Index int    // position in the batch
	Op    string // "append", "store attestation", "supersede attestation"
	Who   string // prefix and s, or device DID
	Err   error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("operation %d (%s %s): %v", e.Index, e.Op, e.Who, e.Err)
}
func (e *OpError) Unwrap() error { return e.Err }

// CorruptError names a path of the registry tree that does not follow the
// layout and why.
type CorruptError struct {
	Path   string
	Reason string
	Err    error
}

func (e *CorruptError) Error() string {
	msg := fmt.Sprintf("%s: %s: %s", ErrCorrupt, e.Path, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return escapeControls(msg)
}

// escapeControls writes control characters and invalid UTF-8 as Go
// escapes: a corrupt registry names its paths and contents, which are
// anyone's bytes, and an error must stay one line that cannot rewrite a
// terminal.
func escapeControls(s string) string {
	clean := true
	for _, c := range s {
		if c == utf8.RuneError || unicode.IsControl(c) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		switch {
		case c == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(c):
			q := strconv.QuoteRune(c)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
func (e *CorruptError) Unwrap() error        { return e.Err }

func corrupt(path, format string, args ...any) error {
	return &CorruptError{Path: path, Reason: fmt.Sprintf(format, args...)}
}
