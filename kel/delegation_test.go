package kel

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// delegatedEvent assembles a dip or drt as a delegating controller's
// software would, without the validation the builders apply (which
// refuses delegated events).
func delegatedEvent(t *testing.T, typ string, fields map[string]any) *Event {
	t.Helper()
	fields["t"] = typ
	e, err := assemble(typ, fields)
	if err != nil {
		t.Fatalf("assemble %s: %v", typ, err)
	}
	return e
}

// TestDelegatedEventsRefused: a well-formed, well-signed dip naming a
// delegator, and a drt, parse and validate as events, but a KEL without
// its delegator's KEL is refused by RefuseDelegated with
// ErrDelegationUnverified naming the delegator: nothing there can check the
// delegator's anchoring seal.
func TestDelegatedEventsRefused(t *testing.T) {
	delegatorICP, _, _ := twoOfThree(t)
	delegator := delegatorICP.Event.Prefix
	keys := []testKey{newEd25519Key(t, 21), newEd25519Key(t, 22)}
	next := newEd25519Key(t, 23)
	dip := delegatedEvent(t, TypeDelegatedInception, map[string]any{
		"i": saidPlaceholder, "s": "0",
		"kt": SimpleThreshold(2), "k": pubs(keys...),
		"nt": SimpleThreshold(1), "n": digests(next),
		"bt": "0", "b": []string{}, "c": []string{}, "a": []any{},
		"di": delegator,
	})

	// Reading for display stays possible.
	parsed, err := ParseEvent(dip.Raw())
	if err != nil {
		t.Fatalf("ParseEvent(dip): %v", err)
	}
	if parsed.Type != TypeDelegatedInception || parsed.Delegator != delegator || parsed.Prefix != dip.SAID {
		t.Errorf("parsed dip: type %s, di %s, i %s", parsed.Type, parsed.Delegator, parsed.Prefix)
	}
	if err := parsed.CheckSAID(); err != nil {
		t.Errorf("dip SAID: %v", err)
	}
	se := SignedEvent{Event: dip, Sigs: []Siger{keys[0].siger(t, dip, 0, 0), keys[1].siger(t, dip, 1, 1)}}
	stream, err := EncodeStream([]SignedEvent{se})
	if err != nil {
		t.Fatal(err)
	}
	events, err := ParseStream(stream)
	if err != nil || len(events) != 1 || events[0].Event.SAID != dip.SAID {
		t.Fatalf("ParseStream of a dip: %d events, %v", len(events), err)
	}

	checkRefused := func(what string, err error, sn uint64, typ, delegator string) {
		t.Helper()
		if !errors.Is(err, ErrDelegationUnverified) {
			t.Fatalf("%s: %v, want ErrDelegationUnverified", what, err)
		}
		var de *DelegationError
		var ee *EventError
		if !errors.As(err, &de) || de.Delegator != delegator {
			t.Errorf("%s: %v, want a DelegationError naming delegator %q", what, err, delegator)
		}
		if !errors.As(err, &ee) || ee.Sn != sn || ee.Type != typ {
			t.Errorf("%s: %v, want an EventError for %s s=%x", what, err, typ, sn)
		}
		msg := err.Error()
		for _, want := range []string{"(" + typ + " ", "delegated events are not verified yet", delegator} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: %q does not say %q", what, msg, want)
			}
		}
	}
	st0, err := Apply(nil, se)
	if err != nil || st0.Delegator == nil || *st0.Delegator != delegator {
		t.Fatalf("Apply(dip): %v", err)
	}
	if _, err := ReplayParallel(events, 2); err != nil {
		t.Fatalf("ReplayParallel(dip): %v", err)
	}
	checkRefused("RefuseDelegated(dip)", RefuseDelegated(events), 0, TypeDelegatedInception, delegator)

	// A drt after an ordinary inception, revealing the committed next key.
	icp, st, _ := twoOfThree(t)
	rotKey := newEd25519Key(t, 9)
	drt := delegatedEvent(t, TypeDelegatedRotation, map[string]any{
		"i": st.Prefix, "s": strconv.FormatUint(st.Sequence+1, 16), "p": st.LastEventSAID,
		"kt": SimpleThreshold(1), "k": pubs(rotKey),
		"nt": SimpleThreshold(1), "n": digests(newEd25519Key(t, 10)),
		"bt": "0", "br": []string{}, "ba": []string{}, "a": []any{},
		"di": "",
	})
	if _, err := ParseEvent(drt.Raw()); err != nil {
		t.Fatalf("ParseEvent(drt): %v", err)
	}
	rse := SignedEvent{Event: drt, Sigs: []Siger{rotKey.siger(t, drt, 0, 0)}}
	checkRefused("RefuseDelegated(icp, drt)", RefuseDelegated([]SignedEvent{icp, rse}), 1, TypeDelegatedRotation, "")

	// Without delegated events there is nothing to refuse.
	rot, err := NewRotation(st, RotationSpec{Keys: pubs(rotKey), Threshold: SimpleThreshold(1),
		NextDigests: digests(newEd25519Key(t, 10)), NextThreshold: SimpleThreshold(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := RefuseDelegated([]SignedEvent{icp, {Event: rot}}); err != nil {
		t.Errorf("RefuseDelegated(icp, rot): %v", err)
	}
}
