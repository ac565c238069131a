package hsm

import (
	"errors"
	"fmt"
)

// Errors every backend returns (wrapped) so callers can branch with
// errors.Is, whatever the token.
var (
	// ErrBadURI: a key URI that cannot be parsed or names something this
	// backend cannot address.
	ErrBadURI = errors.New("bad key URI")
	// ErrWrongPIN: the token refused the PIN. See [WrongPINError].
	ErrWrongPIN = errors.New("wrong PIN")
	// ErrPINBlocked: the PIN is blocked (too many wrong tries); the token
	// needs its PUK or security officer.
	ErrPINBlocked = errors.New("PIN blocked")
	// ErrNoPIN: a PIN is needed and no source gave one.
	ErrNoPIN = errors.New("no PIN available")
	// ErrNotFound: no token, card or key matches.
	ErrNotFound = errors.New("not found")
	// ErrAmbiguous: several tokens or keys match where one was wanted.
	ErrAmbiguous = errors.New("ambiguous")
	// ErrExists: a key with that label (or slot content) already exists.
	ErrExists = errors.New("already exists")
	// ErrTokenAbsent: the token or card went away or cannot be reached.
	// The next call tries to reach it again.
	ErrTokenAbsent = errors.New("token absent or unreachable")
	// ErrUnsupportedKey: the key is not Ed25519 or P-256, or the object is
	// not a private key.
	ErrUnsupportedKey = errors.New("unsupported key")
	// ErrKeyChanged: a key opened before is not the same key any more
	// (another key was generated in its slot or under its label, or the
	// card was swapped); it also matches ErrNotFound. Open the key again.
	ErrKeyChanged = errors.New("key changed since it was opened")
	// ErrNoTouch: the card waited for a touch that did not come and gave
	// up (a YubiKey does after about 15 s).
	ErrNoTouch = errors.New("no touch")
)

// WrongPINError reports a PIN the token refused. It matches ErrWrongPIN with
// errors.Is. It never holds the PIN.
type WrongPINError struct {
	Token     string // token label or card serial, for people
	TriesLeft int    // tries left before the PIN blocks; -1 when unknown
	Repeated  bool   // the same PIN failed before and was not tried again
}

func (e *WrongPINError) Error() string {
	msg := "wrong PIN for " + e.Token
	switch {
	case e.Repeated:
		msg += " (this PIN was refused before; not tried again)"
	case e.TriesLeft == 1:
		msg += " (1 try left)"
	case e.TriesLeft >= 0:
		msg += fmt.Sprintf(" (%d tries left)", e.TriesLeft)
	}
	return msg
}

// Is makes errors.Is(err, ErrWrongPIN) true.
func (e *WrongPINError) Is(target error) bool { return target == ErrWrongPIN }

// URIError names the key URI (without PIN attributes) an operation failed
// on. Backends return it so that every error says which key it is about.
type URIError struct {
	URI string // already redacted with RedactURI
	Err error
}

// NewURIError wraps err with uri, redacting the URI.
func NewURIError(uri string, err error) *URIError {
	return &URIError{URI: RedactURI(uri), Err: err}
}

func (e *URIError) Error() string { return e.URI + ": " + e.Err.Error() }

func (e *URIError) Unwrap() error { return e.Err }
