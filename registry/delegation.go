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
// against its delegator's KEL in the same snapshot, which must be valid
// (replayed here: a registry written by auths may hold anything).
func (s *Snapshot) checkDelegation(prefix string) error {
	events, err := s.KEL(prefix)
	if err != nil {
		return err
	}
	delegator := ""
	for _, se := range events {
		if se.Event.Delegator != "" {
			delegator = se.Event.Delegator
		}
		if !isDelegated(se.Event) {
			continue
		}
		dk, err := s.delegatorKEL(se.Event, delegator)
		if err != nil {
			return err
		}
		if _, err := kel.ReplayParallel(dk, 0); err != nil {
			return unverified(se.Event, "its delegator's KEL is invalid: %v", err)
		}
		if err := checkAnchored(se, delegator, dk); err != nil {
			return err
		}
	}
	return nil
}

func isDelegated(e *kel.Event) bool {
	return e.Type == kel.TypeDelegatedInception || e.Type == kel.TypeDelegatedRotation
}

func unverified(e *kel.Event, format string, args ...any) error {
	return fmt.Errorf("%w: %s s=%x %s: %s", ErrUnverifiedDelegation, e.Type, e.Sn, e.SAID, fmt.Sprintf(format, args...))
}

// delegatorKEL returns the KEL of e's delegator in the snapshot.
func (s *Snapshot) delegatorKEL(e *kel.Event, delegator string) ([]kel.SignedEvent, error) {
	if delegator == "" || delegator == e.Prefix {
		return nil, unverified(e, "no delegator")
	}
	dk, err := s.KEL(delegator)
	if errors.Is(err, ErrNotFound) {
		return nil, unverified(e, "its delegator %s has no KEL in this registry", delegator)
	}
	return dk, err
}

// checkAnchored requires an event of the delegator's KEL dk that seals
// {"i":prefix,"s":sn,"d":SAID} of the delegated event se, and, when se
// carries -G source seals as auths writes them, one naming that event.
func checkAnchored(se kel.SignedEvent, delegator string, dk []kel.SignedEvent) error {
	e := se.Event
	var by *kel.Event
	for _, d := range dk {
		if sealsEvent(d.Event, e) {
			by = d.Event
			break
		}
	}
	if by == nil {
		return unverified(e, "no event of its delegator %s seals it", delegator)
	}
	if len(se.Sources) > 0 {
		ok := false
		for _, src := range se.Sources {
			ok = ok || (src.Sn == by.Sn && src.SAID == by.SAID)
		}
		if !ok {
			return unverified(e, "its -G source seal names s=%x %s, the delegator sealed it at s=%x %s", se.Sources[0].Sn, se.Sources[0].SAID, by.Sn, by.SAID)
		}
	}
	return nil
}

// checkDelegated is the commit-time check of a delegated event: its
// delegator's KEL, as it stands with the events of the batch before it,
// anchors it.
func (p *planner) checkDelegated(se kel.SignedEvent, st *kel.KeyState) error {
	delegator := se.Event.Delegator
	if delegator == "" && st.Delegator != nil {
		delegator = *st.Delegator
	}
	var dk []kel.SignedEvent
	if delegator != "" && delegator != se.Event.Prefix {
		stored, err := p.s.KEL(delegator)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		dk = stored
	}
	for _, ev := range p.events {
		if ev.e.Prefix == delegator {
			dk = append(dk, kel.SignedEvent{Event: ev.e})
		}
	}
	if len(dk) == 0 {
		if delegator == "" || delegator == se.Event.Prefix {
			return unverified(se.Event, "no delegator")
		}
		return unverified(se.Event, "its delegator %s has no KEL in this registry", delegator)
	}
	return checkAnchored(se, delegator, dk)
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
