package agent

import (
	"github.com/auths-dev/auths-agent/kel"
)

// maxHeldStates bounds the key states the agent keeps; past it they are
// all dropped and read again as requests come.
const maxHeldStates = 4096

// heldState is an identity's key state as of a registry commit.
type heldState struct {
	commit string
	state  *kel.KeyState // never modified: kel.Next works on a clone
}

// keyState returns the key state of prefix as of the registry's current
// commit. The state read for an identity is kept with the commit it was
// read at: while the registry ref still names that commit (the ref is one
// small file to read), the tip, state file and trees of the identity are
// not read and decoded again. A ref that moved, by this agent's commits or
// another process's, means reading them again. Errors are not kept.
func (a *Agent) keyState(prefix string) (*kel.KeyState, error) {
	if head, err := a.reg.Head(); err == nil {
		a.statesMu.Lock()
		h, ok := a.states[prefix]
		a.statesMu.Unlock()
		if ok && h.commit == head {
			return h.state, nil
		}
	} // an error (no registry yet among them) is the snapshot's to report
	snap, err := a.reg.Snapshot()
	if err != nil {
		return nil, err
	}
	st, err := snap.KeyState(prefix)
	if err != nil {
		return nil, err
	}
	a.statesMu.Lock()
	if len(a.states) >= maxHeldStates {
		clear(a.states)
	}
	a.states[prefix] = heldState{commit: snap.Commit(), state: st}
	a.statesMu.Unlock()
	return st, nil
}
