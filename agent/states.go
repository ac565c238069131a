package agent

import (
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
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
// read at: while the registry ref still names that commit, the tip, state
// file and trees of the identity are not read and decoded again. Whether
// the ref moved is asked of the ref's file with one stat(2) while the
// registry says that is certain (registry.Unchanged: the file read is
// still there, unmodified, was not modified or changed in the second
// before it was read, and is on a local file system), and by reading the
// ref file otherwise. A ref that moved, by this
// agent's commits or another process's, means reading them again. Errors
// are not kept.
func (a *Agent) keyState(prefix string) (*kel.KeyState, error) {
	head, err := a.registryHead()
	if err != nil {
		// No registry yet among them: the snapshot's to report.
		snap, err := a.reg.Snapshot()
		if err != nil {
			return nil, err
		}
		return snap.KeyState(prefix)
	}
	a.statesMu.Lock()
	h, ok := a.states[prefix]
	a.statesMu.Unlock()
	if ok && h.commit == head.Commit() {
		return h.state, nil
	}
	snap, err := a.reg.SnapshotAt(head)
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

// registryHead is the registry ref's commit now: the one last read while
// the registry says its file is unchanged, else read again.
func (a *Agent) registryHead() (registry.HeadStamp, error) {
	a.statesMu.Lock()
	last := a.head
	a.statesMu.Unlock()
	if a.reg.Unchanged(last) {
		return last, nil
	}
	head, err := a.reg.ReadHead()
	if err != nil {
		return registry.HeadStamp{}, err
	}
	a.statesMu.Lock()
	a.head = head
	a.statesMu.Unlock()
	return head, nil
}
