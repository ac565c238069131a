package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/auths-dev/auths-agent/kel"
)

// ErrUnverifiedDelegation means a delegated identity's establishment event
// (dip, drt) is not anchored by its delegator's KEL in this registry: the
// events may be well formed and signed, but nothing shows the delegator
// approved them.
var ErrUnverifiedDelegation = errors.New("unverified delegation")

// checkDelegation checks every delegated establishment event of prefix
// against its delegator's KEL in the same snapshot: a valid KEL (replayed)
// with an event that seals {"i":prefix,"s":sn,"d":SAID}, and, when the event
// carries -G source seals as auths writes them, one naming that event.
func (s *Snapshot) checkDelegation(prefix string) error {
	events, err := s.KEL(prefix)
	if err != nil {
		return err
	}
	delegator := ""
	for _, se := range events {
		e := se.Event
		if e.Type != kel.TypeDelegatedInception && e.Type != kel.TypeDelegatedRotation {
			continue
		}
		if e.Delegator != "" {
			delegator = e.Delegator
		}
		unverified := func(format string, args ...any) error {
			return fmt.Errorf("%w: %s s=%x %s: %s", ErrUnverifiedDelegation, e.Type, e.Sn, e.SAID, fmt.Sprintf(format, args...))
		}
		if delegator == "" || delegator == prefix {
			return unverified("no delegator")
		}
		dk, err := s.KEL(delegator)
		if errors.Is(err, ErrNotFound) {
			return unverified("its delegator %s has no KEL in this registry", delegator)
		}
		if err != nil {
			return err
		}
		if _, err := kel.ReplayParallel(dk, 0); err != nil {
			return unverified("its delegator's KEL is invalid: %v", err)
		}
		var by *kel.Event
		for _, d := range dk {
			if sealsEvent(d.Event, e) {
				by = d.Event
				break
			}
		}
		if by == nil {
			return unverified("no event of its delegator %s seals it", delegator)
		}
		if len(se.Sources) > 0 {
			ok := false
			for _, src := range se.Sources {
				ok = ok || (src.Sn == by.Sn && src.SAID == by.SAID)
			}
			if !ok {
				return unverified("its -G source seal names s=%x %s, the delegator sealed it at s=%x %s", se.Sources[0].Sn, se.Sources[0].SAID, by.Sn, by.SAID)
			}
		}
	}
	return nil
}

// sealsEvent reports whether d carries the event seal of e.
func sealsEvent(d, e *kel.Event) bool {
	for _, raw := range d.Seals {
		var seal struct {
			I string `json:"i"`
			S string `json:"s"`
			D string `json:"d"`
		}
		if json.Unmarshal(raw, &seal) != nil {
			continue
		}
		sn, err := strconv.ParseUint(seal.S, 16, 64)
		if err == nil && seal.I == e.Prefix && sn == e.Sn && seal.D == e.SAID {
			return true
		}
	}
	return false
}
