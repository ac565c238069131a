package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/auths-dev/auths-agent/kel"
	"github.com/go-git/go-git/v5/plumbing"
)

// Batch is a list of registry writes that Commit verifies as a whole and
// writes as one commit, or not at all. The zero value is an empty batch.
type Batch struct {
	ops []batchOp
}

type opKind int

const (
	opAppend opKind = iota
	opStore
	opSupersede
)

func (k opKind) String() string {
	switch k {
	case opAppend:
		return "append"
	case opStore:
		return "store attestation"
	}
	return "supersede attestation"
}

type batchOp struct {
	kind opKind
	se   kel.SignedEvent
	did  string
	doc  []byte
}

func (o batchOp) who() string {
	if o.kind == opAppend {
		if o.se.Event == nil {
			return "(no event)"
		}
		return fmt.Sprintf("%s s=%x", o.se.Event.Prefix, o.se.Event.Sn)
	}
	return o.did
}

// Append adds a fully signed event. It must follow the tip of its KEL, or
// an earlier event of the same prefix in this batch; an inception starts a
// new identity.
func (b *Batch) Append(se kel.SignedEvent) { b.ops = append(b.ops, batchOp{kind: opAppend, se: se}) }

// StoreAttestation writes doc, an opaque JSON object about the device did,
// as the device's current attestation, with a copy under its history/.
func (b *Batch) StoreAttestation(did string, doc []byte) {
	b.ops = append(b.ops, batchOp{kind: opStore, did: did, doc: append([]byte(nil), doc...)})
}

// SupersedeAttestation replaces the device's current attestation with a
// newer document (a revocation is such a document); the device must have
// one. Nothing is deleted: the old document stays in history/.
func (b *Batch) SupersedeAttestation(did string, doc []byte) {
	b.ops = append(b.ops, batchOp{kind: opSupersede, did: did, doc: append([]byte(nil), doc...)})
}

// Len returns the number of operations.
func (b *Batch) Len() int { return len(b.ops) }

// planner verifies a batch against a snapshot and collects its writes.
type planner struct {
	s       *Snapshot
	now     time.Time
	ob      *objectBatch
	edits   map[string]plumbing.Hash
	states  map[string]*kel.KeyState // prefix → state after the ops so far
	saids   map[string]string        // prefix/sn → SAID appended by this batch
	devices map[string]bool          // device dir → has an attestation
	meta    Metadata
	summary []string
}

func newPlanner(s *Snapshot, now time.Time) (*planner, error) {
	meta, err := s.Metadata()
	if err != nil {
		return nil, err
	}
	return &planner{
		s: s, now: now, ob: newObjectBatch(), edits: map[string]plumbing.Hash{},
		states: map[string]*kel.KeyState{}, saids: map[string]string{},
		devices: map[string]bool{}, meta: meta,
	}, nil
}

func (p *planner) put(path string, data []byte) {
	p.edits[path] = p.ob.add(plumbing.BlobObject, data)
}

func (p *planner) op(i int, o batchOp) error {
	var err error
	switch o.kind {
	case opAppend:
		err = p.append(i, o.se)
	default:
		err = p.attest(o)
	}
	if err != nil {
		return &OpError{Index: i, Op: o.kind.String(), Who: o.who(), Err: err}
	}
	return nil
}

// state returns the key state of prefix before the next op: from this
// batch, else state.json when valid for the tip, else by replay; nil when
// the identity does not exist.
func (p *planner) state(prefix string) (*kel.KeyState, error) {
	if st, ok := p.states[prefix]; ok {
		return st, nil
	}
	tip, err := p.s.Tip(prefix)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := p.s.storedState(prefix, tip)
	if err != nil || st != nil {
		return st, err
	}
	return p.s.replay(prefix)
}

func (p *planner) append(i int, se kel.SignedEvent) error {
	e := se.Event
	if e == nil {
		return errors.New("no event")
	}
	dir, err := identityDir(e.Prefix)
	if err != nil {
		return err
	}
	st, err := p.state(e.Prefix)
	if err != nil {
		return err
	}
	if st != nil && e.Sn <= st.Sequence {
		key := e.Prefix + "/" + strconv.FormatUint(e.Sn, 10)
		said, ok := p.saids[key]
		if !ok {
			if said, err = p.s.eventSAIDAt(e.Prefix, e.Sn); err != nil {
				return err
			}
		}
		if said == e.SAID {
			return fmt.Errorf("%w: s=%x %s", ErrDuplicate, e.Sn, e.SAID)
		}
		return &ConflictError{Ref: RegistryRef, Op: i,
			Reason: fmt.Sprintf("%s s=%x is taken by %s (this event is %s)", e.Prefix, e.Sn, said, e.SAID)}
	}
	next, err := kel.Apply(st, se)
	if err != nil {
		return err
	}
	evPath := dir + "/events/" + eventName(e.Sn)
	if _, exists, err := p.s.lookup(evPath); err != nil {
		return err
	} else if exists {
		return corrupt(evPath, "exists beyond the tip")
	}
	blob, err := prettyEvent(e.Raw())
	if err != nil {
		return fmt.Errorf("event bytes: %w", err)
	}
	p.put(evPath, blob)
	if len(se.Sigs) > 0 {
		att, err := kel.EncodeSigGroup(se.Sigs)
		if err != nil {
			return err
		}
		p.put(dir+"/events/"+attachmentName(e.Sn), att)
	}
	tip, err := pretty(Tip{Version: layoutVersion, Sequence: e.Sn, SAID: e.SAID})
	if err != nil {
		return err
	}
	p.put(dir+"/tip.json", tip)
	stJSON, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("key state: %w", err)
	}
	state, err := pretty(stateFile{Version: layoutVersion, State: stJSON, ValidatedAgainstSAID: e.SAID})
	if err != nil {
		return fmt.Errorf("key state: %w", err)
	}
	p.put(dir+"/state.json", state)
	if e.IsInception() {
		p.meta.IdentityCount++
	}
	p.states[e.Prefix] = next
	p.saids[e.Prefix+"/"+strconv.FormatUint(e.Sn, 10)] = e.SAID
	p.summary = append(p.summary, fmt.Sprintf("%s %s s=%x %s", e.Type, e.Prefix, e.Sn, e.SAID))
	return nil
}

func (p *planner) attest(o batchOp) error {
	dir, err := DeviceDir(o.did)
	if err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(o.doc, &fields); err != nil || fields == nil {
		return errors.New("attestation: not a JSON object")
	}
	rid, err := historyRID(fields, o.doc)
	if err != nil {
		return err
	}
	current := dir + "/attestation.json"
	exists, ok := p.devices[dir]
	if !ok {
		if _, exists, err = p.s.lookup(current); err != nil {
			return err
		}
	}
	if o.kind == opSupersede && !exists {
		return fmt.Errorf("device %s has no attestation to supersede: %w", o.did, ErrNotFound)
	}
	hist := dir + "/history/" + historyName(p.now, rid)
	if _, taken := p.edits[hist]; taken {
		return fmt.Errorf("history copy %s written twice in one batch", hist)
	}
	if _, taken, err := p.s.lookup(hist); err != nil {
		return err
	} else if taken {
		return fmt.Errorf("history copy %s exists", hist)
	}
	p.put(current, o.doc)
	p.put(hist, o.doc)
	if !exists {
		p.meta.DeviceCount++
	}
	p.devices[dir] = true
	p.summary = append(p.summary, fmt.Sprintf("%s %s", o.kind, o.did))
	return nil
}

// historyRID returns the "rid" part of a history copy's name: the first 8
// characters of the document's "rid", or of its SAID when it has none.
func historyRID(fields map[string]json.RawMessage, doc []byte) (string, error) {
	var rid string
	if raw, ok := fields["rid"]; ok {
		if err := json.Unmarshal(raw, &rid); err != nil || rid == "" {
			return "", errors.New(`attestation: "rid" is not a non-empty string`)
		}
	} else {
		said, err := kel.AttestationSAID(doc)
		if err != nil {
			return "", err
		}
		rid = said
	}
	if len(rid) > 8 {
		rid = rid[:8]
	}
	for i := 0; i < len(rid); i++ {
		if !isB64(rid[i]) && rid[i] != '.' && rid[i] != ':' {
			return "", fmt.Errorf("attestation: rid %q cannot name a file", clip(rid))
		}
	}
	return rid, nil
}

// finish writes metadata.json and returns the commit message.
func (p *planner) finish() (string, error) {
	p.meta.Version = layoutVersion
	p.meta.UpdatedAt = p.now.UTC().Format(time.RFC3339)
	meta, err := pretty(p.meta)
	if err != nil {
		return "", err
	}
	p.put(metadataPath, meta)
	var b bytes.Buffer
	switch len(p.summary) {
	case 0:
		b.WriteString("auths-agent: initialize registry\n")
	case 1:
		b.WriteString("auths-agent: " + p.summary[0] + "\n")
	default:
		fmt.Fprintf(&b, "auths-agent: batch of %d operations\n\n", len(p.summary))
		b.WriteString(strings.Join(p.summary, "\n") + "\n")
	}
	return b.String(), nil
}
