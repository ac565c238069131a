package agent

import (
	"errors"
	"fmt"
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
