package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/auths-dev/auths-agent/kel"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

// Metadata returns v1/metadata.json (zero counts when absent).
func (s *Snapshot) Metadata() (Metadata, error) {
	m := Metadata{Version: layoutVersion}
	data, ok, err := s.readFile(metadataPath)
	if err != nil || !ok {
		return m, err
	}
	if err := decodeStrict(metadataPath, data, &m); err != nil {
		return m, err
	}
	if m.Version != layoutVersion {
		return m, corrupt(metadataPath, "version %d, want %d", m.Version, layoutVersion)
	}
	return m, nil
}

// Tip returns the tip of a KEL, ErrNotFound when the prefix has none.
func (s *Snapshot) Tip(prefix string) (Tip, error) {
	dir, err := identityDir(prefix)
	if err != nil {
		return Tip{}, err
	}
	path := dir + "/tip.json"
	data, ok, err := s.readFile(path)
	if err != nil {
		return Tip{}, err
	}
	if !ok {
		if _, exists, err := s.lookup(dir); err != nil {
			return Tip{}, err
		} else if exists {
			return Tip{}, corrupt(path, "missing")
		}
		return Tip{}, fmt.Errorf("identity %s: %w", prefix, ErrNotFound)
	}
	var t Tip
	if err := decodeStrict(path, data, &t); err != nil {
		return Tip{}, err
	}
	if t.Version != layoutVersion {
		return Tip{}, corrupt(path, "version %d, want %d", t.Version, layoutVersion)
	}
	if len(t.SAID) != kel.SAIDLen {
		return Tip{}, corrupt(path, "said %q is not a SAID", clip(t.SAID))
	}
	return t, nil
}

// storedState returns the key state of state.json when it was validated
// against the tip's SAID, else nil.
func (s *Snapshot) storedState(prefix string, tip Tip) (*kel.KeyState, error) {
	dir, _ := identityDir(prefix)
	path := dir + "/state.json"
	data, ok, err := s.readFile(path)
	if err != nil || !ok {
		return nil, err
	}
	var sf stateFile
	if err := decodeStrict(path, data, &sf); err != nil {
		return nil, err
	}
	if sf.Version != layoutVersion || sf.ValidatedAgainstSAID != tip.SAID {
		return nil, nil
	}
	var st kel.KeyState
	if err := json.Unmarshal(sf.State, &st); err != nil {
		return nil, &CorruptError{Path: path, Reason: "key state unreadable", Err: err}
	}
	if st.Prefix != prefix || st.Sequence != tip.Sequence || st.LastEventSAID != tip.SAID {
		return nil, corrupt(path, "key state (prefix %s, s=%d, %s) does not match the tip (s=%d, %s)",
			st.Prefix, st.Sequence, st.LastEventSAID, tip.Sequence, tip.SAID)
	}
	return &st, nil
}

// KeyState returns the key state of prefix: from state.json when it was
// validated against the tip, else by replaying the KEL.
func (s *Snapshot) KeyState(prefix string) (*kel.KeyState, error) {
	tip, err := s.Tip(prefix)
	if err != nil {
		return nil, err
	}
	st, err := s.storedState(prefix, tip)
	if err != nil || st != nil {
		return st, err
	}
	return s.replay(prefix)
}

// Verify replays the whole KEL of prefix, checking every SAID, sequence
// number, prior SAID and signature, that the tip names its last event, and
// that state.json, when it claims to be valid for the tip, holds the
// replayed state.
func (s *Snapshot) Verify(prefix string) (*kel.KeyState, error) {
	st, err := s.replay(prefix)
	if err != nil {
		return nil, err
	}
	if st.Delegator != nil {
		if err := s.checkDelegation(prefix); err != nil {
			return nil, err
		}
	}
	tip, err := s.Tip(prefix)
	if err != nil {
		return nil, err
	}
	stored, err := s.storedState(prefix, tip)
	if err != nil {
		return nil, err
	}
	if stored != nil {
		a, _ := json.Marshal(st)
		b, _ := json.Marshal(stored)
		if string(a) != string(b) {
			dir, _ := identityDir(prefix)
			return nil, corrupt(dir+"/state.json", "key state differs from the replayed KEL")
		}
	}
	return st, nil
}

func (s *Snapshot) replay(prefix string) (*kel.KeyState, error) {
	events, err := s.KEL(prefix)
	if err != nil {
		return nil, err
	}
	st, err := kel.ReplayParallel(events, 0)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", prefix, err)
	}
	return st, nil
}

// Event returns the stored event s=sn of prefix with its signatures.
func (s *Snapshot) Event(prefix string, sn uint64) (kel.SignedEvent, error) {
	tip, err := s.Tip(prefix)
	if err != nil {
		return kel.SignedEvent{}, err
	}
	if sn > tip.Sequence {
		return kel.SignedEvent{}, fmt.Errorf("identity %s event s=%x: %w", prefix, sn, ErrNotFound)
	}
	dir, _ := identityDir(prefix)
	p := dir + "/events/" + eventName(sn)
	data, ok, err := s.readFile(p)
	if err != nil {
		return kel.SignedEvent{}, err
	}
	if !ok {
		return kel.SignedEvent{}, corrupt(p, "missing (the tip is s=%d)", tip.Sequence)
	}
	e, err := parseStoredEvent(p, data, prefix, sn)
	if err != nil {
		return kel.SignedEvent{}, err
	}
	se := kel.SignedEvent{Event: e}
	ap := dir + "/events/" + attachmentName(sn)
	att, ok, err := s.readFile(ap)
	if err != nil {
		return kel.SignedEvent{}, err
	}
	if ok {
		if se.Sigs, se.Sources, err = parseAttachment(ap, att); err != nil {
			return kel.SignedEvent{}, err
		}
	}
	return se, nil
}

// parseStoredEvent reads an event blob back to the signed event.
func parseStoredEvent(path string, blob []byte, prefix string, sn uint64) (*kel.Event, error) {
	raw, err := compactEvent(blob)
	if err != nil {
		return nil, &CorruptError{Path: path, Reason: "not JSON", Err: err}
	}
	e, err := kel.ParseEvent(raw)
	if err != nil {
		return nil, &CorruptError{Path: path, Reason: "not a KERI event", Err: err}
	}
	if e.Sn != sn {
		return nil, corrupt(path, "holds s=%x, out of order", e.Sn)
	}
	if e.Prefix != prefix {
		return nil, corrupt(path, "holds an event of %s", e.Prefix)
	}
	return e, nil
}

// parseAttachment reads an .attachments.cesr file: the -A group, then for
// a delegated event written by auths its -G source seal group.
func parseAttachment(path string, att []byte) ([]kel.Siger, []kel.SourceSeal, error) {
	sigs, n, err := kel.ParseSigGroup(att)
	if err != nil {
		return nil, nil, &CorruptError{Path: path, Reason: "bad attachment", Err: err}
	}
	var src []kel.SourceSeal
	if n < len(att) && bytes.HasPrefix(att[n:], []byte("-G")) {
		var m int
		if src, m, err = kel.ParseSourceGroup(att[n:]); err != nil {
			return nil, nil, &CorruptError{Path: path, Reason: "bad source seal group", Err: err}
		}
		n += m
	}
	if n != len(att) {
		return nil, nil, corrupt(path, "%d bytes after the signature group", len(att)-n)
	}
	return sigs, src, nil
}

// KEL returns the events of prefix in order with their signatures, checked
// against the layout (contiguous file names, s and i matching, the tip
// naming the last one) but not validated: see Verify.
func (s *Snapshot) KEL(prefix string) ([]kel.SignedEvent, error) {
	tip, err := s.Tip(prefix)
	if err != nil {
		return nil, err
	}
	dir, _ := identityDir(prefix)
	evDir := dir + "/events"
	entries, ok, err := s.listDir(evDir)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, corrupt(evDir, "missing")
	}
	// Every event is a file of its own: a tip beyond the number of files
	// cannot be right, and the slots are sized by what the tree holds, never
	// by the number tip.json claims (18446744073709551615 would wrap to zero
	// slots, 100000000000 would exhaust memory).
	if tip.Sequence >= uint64(len(entries)) {
		return nil, corrupt(dir+"/tip.json", "sequence %d, but %s holds %d files", tip.Sequence, evDir, len(entries))
	}
	type slot struct{ ev, att []byte }
	slots := make([]slot, tip.Sequence+1)
	for _, e := range entries {
		p := evDir + "/" + e.Name
		sn, isAtt, ok := parseEventName(e.Name)
		if !ok || e.Mode == filemode.Dir {
			return nil, corrupt(p, "not an event or attachment file")
		}
		if sn > tip.Sequence {
			return nil, corrupt(p, "beyond the tip (s=%d)", tip.Sequence)
		}
		data, err := s.r.readBlob(e.Hash)
		if err != nil {
			return nil, corrupt(p, "unreadable: %v", err)
		}
		if isAtt {
			slots[sn].att = data
		} else {
			slots[sn].ev = data
		}
	}
	out := make([]kel.SignedEvent, 0, len(slots))
	for sn, sl := range slots {
		p := evDir + "/" + eventName(uint64(sn))
		if sl.ev == nil {
			return nil, corrupt(p, "missing (the tip is s=%d)", tip.Sequence)
		}
		e, err := parseStoredEvent(p, sl.ev, prefix, uint64(sn))
		if err != nil {
			return nil, err
		}
		se := kel.SignedEvent{Event: e}
		if sl.att != nil {
			if se.Sigs, se.Sources, err = parseAttachment(evDir+"/"+attachmentName(uint64(sn)), sl.att); err != nil {
				return nil, err
			}
		}
		out = append(out, se)
	}
	if last := out[len(out)-1].Event; last.SAID != tip.SAID {
		return nil, corrupt(dir+"/tip.json", "said %s, but event s=%d is %s", tip.SAID, tip.Sequence, last.SAID)
	}
	return out, nil
}

// KELStream returns the KEL of prefix as a verifiable stream: each event's
// exact signed bytes followed by its -A## group.
func (s *Snapshot) KELStream(prefix string) ([]byte, error) {
	events, err := s.KEL(prefix)
	if err != nil {
		return nil, err
	}
	return kel.EncodeStream(events)
}

// eventSAIDAt returns the SAID of the stored event s=sn of prefix.
func (s *Snapshot) eventSAIDAt(prefix string, sn uint64) (string, error) {
	se, err := s.Event(prefix, sn)
	if err != nil {
		return "", err
	}
	return se.Event.SAID, nil
}

// Prefixes lists the identifiers in the registry, sorted.
func (s *Snapshot) Prefixes() ([]string, error) {
	var out []string
	l1, ok, err := s.listDir(identitiesPath)
	if err != nil || !ok {
		return nil, err
	}
	for _, a := range l1 {
		pa := identitiesPath + "/" + a.Name
		l2, _, err := s.listDir(pa)
		if err != nil {
			return nil, err
		}
		for _, b := range l2 {
			pb := pa + "/" + b.Name
			l3, _, err := s.listDir(pb)
			if err != nil {
				return nil, err
			}
			for _, c := range l3 {
				if !strings.HasPrefix(c.Name, a.Name+b.Name) {
					return nil, corrupt(pb+"/"+c.Name, "identity in the wrong shard")
				}
				out = append(out, c.Name)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Attestation returns the current attestation document of a device DID.
func (s *Snapshot) Attestation(did string) ([]byte, error) {
	dir, err := DeviceDir(did)
	if err != nil {
		return nil, err
	}
	data, ok, err := s.readFile(dir + "/attestation.json")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("device %s: %w", did, ErrNotFound)
	}
	return data, nil
}

// AttestationHistory lists the names of a device's history copies, oldest
// first.
func (s *Snapshot) AttestationHistory(did string) ([]string, error) {
	dir, err := DeviceDir(did)
	if err != nil {
		return nil, err
	}
	entries, ok, err := s.listDir(dir + "/history")
	if err != nil || !ok {
		return nil, err
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name)
	}
	return out, nil
}
