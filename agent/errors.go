package agent

import (
	"errors"
	"fmt"
	"time"
)

// Reasons a request is refused; a *RefusedError wraps one of them.
var (
	// ErrNotSSHData: the data of an SSH sign request is neither an SSH
	// user-authentication request nor an SSHSIG blob (a KERI event, for
	// instance).
	ErrNotSSHData = errors.New("not SSH data")
	// ErrUnknownKey: no held key matches.
	ErrUnknownKey = errors.New("key not held")
	// ErrBadEvent: the bytes are not a well-formed KERI event.
	ErrBadEvent = errors.New("malformed event")
	// ErrSAID: the event's SAID does not match its bytes.
	ErrSAID = errors.New("SAID mismatch")
	// ErrNotNext: the event is not the valid next event of its identity.
	ErrNotNext = errors.New("not the next event")
	// ErrDuplicity: the agent signed a different event at the same
	// sequence number of the identity, above the registry's tip.
	ErrDuplicity = errors.New("duplicity")
	// ErrPolicy: the policy does not let a held key sign for the identity.
	ErrPolicy = errors.New("refused by policy")
	// ErrNoKey: no held key is in the event's signing key list.
	ErrNoKey = errors.New("no held key in the key list")
	// ErrNoRegistry: the request needs a registry and the agent has none.
	ErrNoRegistry = errors.New("no registry")
	// ErrKeyChanged: a held key's token no longer holds the public key
	// the request was checked against (a card swapped, a key replaced
	// under its label or in its slot); that key signs nothing.
	ErrKeyChanged = errors.New("key changed on its token")
	// ErrUnsupported: a request the agent never serves (adding keys over
	// the socket, raw signing).
	ErrUnsupported = errors.New("not supported")
)

// RefusedError is a request the agent refused before signing anything.
type RefusedError struct {
	Op     string // the request
	Reason error  // one of the Err… values above, wrapped with details
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%s refused: %v", e.Op, e.Reason) }
func (e *RefusedError) Unwrap() error { return e.Reason }

func refuse(op string, sentinel error, format string, args ...any) *RefusedError {
	return &RefusedError{Op: op, Reason: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))}
}

// TouchTimeoutError: the card waited for a touch that did not come, within
// the agent's touch timeout or until the card gave up (ByCard). At the
// agent's timeout the request gets this error at once; the card's call,
// which cannot be taken back, keeps the card until it ends (touched late,
// or the card gives up), and what it signs then is discarded.
type TouchTimeoutError struct {
	Token  string        // what waits: "PIV card 12345678 slot 9c"
	After  time.Duration // the touch timeout, or how long the card waited
	ByCard bool          // the card gave up first (and is free again)
}

func (e *TouchTimeoutError) Error() string {
	if e.ByCard {
		return fmt.Sprintf("no touch on %s within %v (the card stopped waiting)", e.Token, e.After)
	}
	return fmt.Sprintf("no touch on %s within %v", e.Token, e.After)
}

// BusyError: a token still waits for the touch of a request that timed
// out; requests for it are answered with this error rather than queued
// behind a touch that may never come.
type BusyError struct {
	Token string    // what waits: "PIV card 12345678 slot 9c"
	Since time.Time // when the request waiting for the touch gave up
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is busy: it still waits for the touch of a request that timed out at %s (touch it to free it; that signature is discarded)",
		e.Token, e.Since.Format(time.TimeOnly))
}

// withKey says which key err is the error of: its text starts with the
// key's URI (without PIN attributes), except for the touch errors, which
// name the card and slot themselves and are shown to people as they are.
// The audit trail reads the key from it (recordNotSigned).
func withKey(uri string, err error) error {
	return &keyError{uri: uri, err: err}
}

// keyError is the error of one key of a request.
type keyError struct {
	uri string
	err error
}

func (e *keyError) Error() string {
	var te *TouchTimeoutError
	var be *BusyError
	if errors.As(e.err, &te) || errors.As(e.err, &be) {
		return e.err.Error()
	}
	return e.uri + ": " + e.err.Error()
}

func (e *keyError) Unwrap() error { return e.err }
