package kel

import (
	"errors"
	"fmt"
)

// ErrDelegationUnverified means a delegated event (dip, drt) was refused
// because its delegation is not verified: see [DelegationError].
var ErrDelegationUnverified = errors.New("delegated events are not verified yet: the delegator's anchoring seal is unchecked")

// DelegationError is a delegated event that validation refuses. A dip or
// drt is valid only when its delegator's KEL anchors it with a seal of the
// event; validation sees one KEL at a time and has no delegator's KEL to
// look in, so it refuses every delegated event. Parsing, SAIDs and display
// of delegated events are not affected.
type DelegationError struct {
	Delegator string // the delegator's prefix ("" when the event names none)
	Err       error  // ErrDelegationUnverified
}

func (e *DelegationError) Error() string {
	if e.Delegator == "" {
		return fmt.Sprintf("no delegator named: %v", e.Err)
	}
	return fmt.Sprintf("delegator %s: %v", e.Delegator, e.Err)
}
func (e *DelegationError) Unwrap() error { return e.Err }

// checkDelegation is the one place where validation meets a delegated
// event: it refuses dip and drt until delegator seals are verified against
// the delegator's KEL, and passes every other event. st is the state
// before e (nil for an inception).
func checkDelegation(st *KeyState, e *Event) error {
	if e.Type != TypeDelegatedInception && e.Type != TypeDelegatedRotation {
		return nil
	}
	delegator := e.Delegator
	if delegator == "" && st != nil && st.Delegator != nil {
		delegator = *st.Delegator
	}
	return &DelegationError{Delegator: delegator, Err: ErrDelegationUnverified}
}
