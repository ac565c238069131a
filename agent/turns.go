package agent

import (
	"context"
	"fmt"
)

// Bounds of what the agent remembers per identity. An identity's entry
// lives while a request waits for or holds its turn, or while the agent
// remembers an event it signed above the registry's tip.
const (
	// maxSignedPerID bounds the sequence numbers remembered for one
	// identity. Every event the agent signs is the next one on the tip,
	// and entries below it are dropped, so more than one entry only
	// happens when the registry's tip went back.
	maxSignedPerID = 16
	// maxSignedIDs bounds the identities with remembered events.
	maxSignedIDs = 4096
)

// identity is an identity's turn (one anchor or sign-event at a time) and
// the SAIDs the agent signed at sequence numbers above its registry tip.
type identity struct {
	turn   chan struct{}
	users  int               // requests waiting for or holding the turn
	signed map[uint64]string // sn -> SAID signed there
}

// lockIdentity queues the caller behind other anchors and sign-events of
// prefix in this agent. It returns when the caller's turn comes or ctx
// ends. The identity's entry is dropped when nobody uses it and it
// remembers nothing, so the map does not grow with every prefix ever
// named.
func (a *Agent) lockIdentity(ctx context.Context, prefix string) (func(), error) {
	a.idMu.Lock()
	id, ok := a.ids[prefix]
	if !ok {
		id = &identity{turn: make(chan struct{}, 1)}
		a.ids[prefix] = id
	}
	id.users++
	a.idMu.Unlock()
	select {
	case id.turn <- struct{}{}:
		return func() {
			<-id.turn
			a.leave(prefix, id)
		}, nil
	case <-ctx.Done():
		a.leave(prefix, id)
		return nil, fmt.Errorf("waiting for other anchors of %s: %w", prefix, context.Cause(ctx))
	}
}

func (a *Agent) leave(prefix string, id *identity) {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	id.users--
	if id.users == 0 && len(id.signed) == 0 {
		delete(a.ids, prefix)
	}
}

// notDuplicate refuses to sign said at sn of prefix when the agent signed
// a different event there. The caller holds the identity's turn and has
// checked the event as the next one on the registry's tip (sn-1), so what
// the agent remembers below sn is committed or superseded and is dropped.
func (a *Agent) notDuplicate(ctx context.Context, op, prefix string, sn uint64, said string) error {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	id := a.ids[prefix]
	for s := range id.signed {
		if s < sn {
			delete(id.signed, s)
		}
	}
	if got, ok := id.signed[sn]; ok {
		if got != said {
			return refuse(op, ErrDuplicity, "already signed %s at s=%d for this identity; refusing a different event at the same sequence number (duplicity)", got, sn)
		}
		return nil
	}
	if len(id.signed) >= maxSignedPerID {
		return refuse(op, ErrDuplicity, "the agent remembers %d signed events of identity %s above its tip, its limit; refusing more until the registry moves", len(id.signed), prefix)
	}
	if len(id.signed) == 0 && a.signedIDs() >= maxSignedIDs {
		a.pruneSigned()
		if a.signedIDs() >= maxSignedIDs {
			return refuse(op, ErrDuplicity, "the agent remembers signed, uncommitted events of %d identities, its limit; refusing another until the registry moves", maxSignedIDs)
		}
	}
	return nil
}

// remember notes that the agent signed said at sn of prefix (caller holds
// the turn and passed notDuplicate).
func (a *Agent) remember(prefix string, sn uint64, said string) {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	id := a.ids[prefix]
	if id.signed == nil {
		id.signed = map[uint64]string{}
	}
	id.signed[sn] = said
}

// forget drops said at sn of prefix: the agent abandoned that event and
// its signatures never left the agent (an anchor whose commit found the
// tip moved).
func (a *Agent) forget(prefix string, sn uint64, said string) {
	a.idMu.Lock()
	defer a.idMu.Unlock()
	if id := a.ids[prefix]; id != nil && id.signed[sn] == said {
		delete(id.signed, sn)
	}
}

func (a *Agent) signedIDs() int {
	n := 0
	for _, id := range a.ids {
		if len(id.signed) > 0 {
			n++
		}
	}
	return n
}

// pruneSigned drops, for every identity, what the agent remembers at or
// below the registry's tip. Caller holds idMu.
func (a *Agent) pruneSigned() {
	if a.reg == nil {
		return
	}
	snap, err := a.reg.Snapshot()
	if err != nil {
		a.log.Warn("registry unreadable; remembered signed events kept", "err", err)
		return
	}
	for p, id := range a.ids {
		if len(id.signed) == 0 {
			continue
		}
		tip, err := snap.Tip(p)
		if err != nil {
			continue // not incepted yet, or unreadable: keep
		}
		for s := range id.signed {
			if s <= tip.Sequence {
				delete(id.signed, s)
			}
		}
		if id.users == 0 && len(id.signed) == 0 {
			delete(a.ids, p)
		}
	}
}
