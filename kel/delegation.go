package kel

import (
	"errors"
	"fmt"
)

// ErrDelegationUnverified means a delegated event (dip, drt) was refused
// because its delegation is not verified: see [DelegationError].
var ErrDelegationUnverified = errors.New("delegated events are not verified yet: the delegator's anchoring seal is unchecked")

// DelegationError is a delegated event refused because nothing verifies
// its delegation: a dip or drt is valid only when its delegator's KEL
// anchors it with a seal of the event, and a KEL stream on its own holds no
// delegator's KEL to look in. Parsing, SAIDs and display of delegated
// events are not affected.
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

// RefuseDelegated returns, for the first delegated event (dip, drt) of a
// KEL validated without its delegator's KEL, a *DelegationError inside an
// *EventError; nil when there is none. The registry verifies delegations
// against the delegator's KEL it holds; a KEL stream alone cannot.
func RefuseDelegated(events []SignedEvent) error {
	var delegator string
	for _, se := range events {
		e := se.Event
		if e == nil {
			continue
		}
		if e.Delegator != "" {
			delegator = e.Delegator
		}
		if e.Type != TypeDelegatedInception && e.Type != TypeDelegatedRotation {
			continue
		}
		return &EventError{Sn: e.Sn, SAID: e.SAID, Type: e.Type,
			Err: &DelegationError{Delegator: delegator, Err: ErrDelegationUnverified}}
	}
	return nil
}
