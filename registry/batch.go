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
	return clip(strconv.QuoteToASCII(o.did))
}

// Append adds a fully signed event. It must follow the tip of its KEL, or
// an earlier event of the same prefix in this batch; an inception starts a
// new identity.
func (b *Batch) Append(se kel.SignedEvent) { b.ops = append(b.ops, batchOp{kind: opAppend, se: se}) }

// StoreAttestation writes doc, an auths attestation (kel.Attestation) whose
// subject is the device did, as the device's current attestation, with a
// copy under its history/, both as auths serializes it. Its device
// signature must verify, and an event of its issuer in the same batch must
// anchor its SAID.
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
	// events appended by the batch with the state after each; attested
	// are its attestations, checked against events once all ops ran.
	events   []appended
	attested []attested
}

type appended struct {
	e  *kel.Event
	st *kel.KeyState
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
		err = p.attest(i, o)
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
	// auths shares the registry: only threshold forms it reads alike.
	if err := kel.CheckAuthsForm(e); err != nil {
		return err
	}
	next, err := kel.Apply(st, se)
	if err != nil {
		return err
	}
	// A delegated event enters only when its delegator anchors it.
	if isDelegated(e) {
		if err := p.checkDelegated(se, next); err != nil {
			return err
		}
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
	if len(se.Sigs) > 0 || len(se.Sources) > 0 {
		var att []byte
		if len(se.Sigs) > 0 {
			if att, err = kel.EncodeSigGroup(se.Sigs); err != nil {
				return err
			}
		}
		if len(se.Sources) > 0 {
			src, err := kel.EncodeSourceGroup(se.Sources)
			if err != nil {
				return err
			}
			att = append(att, src...)
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
	p.events = append(p.events, appended{e: e, st: next})
	p.saids[e.Prefix+"/"+strconv.FormatUint(e.Sn, 10)] = e.SAID
	p.summary = append(p.summary, fmt.Sprintf("%s %s s=%x %s", e.Type, e.Prefix, e.Sn, e.SAID))
	return nil
}

func (p *planner) attest(i int, o batchOp) error {
	a, err := kel.ParseAttestation(o.doc)
	if err != nil {
		return err
	}
	did, err := kel.CanonicalDID(o.did)
	if err != nil {
		return fmt.Errorf("device DID: %w", err)
	}
	if a.Subject != did {
		return fmt.Errorf("%w: the document's subject is %s, not the device %s", kel.ErrBadAttestation, clip(a.Subject), clip(did))
	}
	issuer, ok := strings.CutPrefix(a.Issuer, "did:keri:")
	if !ok {
		return fmt.Errorf("%w: issuer %s is not a did:keri identity, so no KEL of the registry can anchor it", kel.ErrBadAttestation, clip(a.Issuer))
	}
	if err := a.VerifyDevice(); err != nil {
		return err
	}
	said, err := a.SAID()
	if err != nil {
		return err
	}
	dir, err := DeviceDir(did)
	if err != nil {
		return err
	}
	if err := checkRID(a.RID); err != nil {
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
	hist := dir + "/history/" + historyName(p.now, a.RID)
	if _, taken := p.edits[hist]; taken {
		return fmt.Errorf("history copy %s written twice in one batch", hist)
	}
	if _, taken, err := p.s.lookup(hist); err != nil {
		return err
	} else if taken {
		return fmt.Errorf("history copy %s exists", hist)
	}
	// Stored as auths serializes it, so that auths loads it and finds the
	// SAID it computes anchored.
	doc := a.Pretty()
	p.put(current, doc)
	p.put(hist, doc)
	if !exists {
		p.meta.DeviceCount++
	}
	p.devices[dir] = true
	p.attested = append(p.attested, attested{op: i, o: o, att: a, issuer: issuer, said: said})
	p.summary = append(p.summary, fmt.Sprintf("%s %s", o.kind, did))
	return nil
}

// attested is an attestation of the batch waiting for its anchor.
type attested struct {
	op     int
	o      batchOp
	att    *kel.Attestation
	issuer string // KERI prefix of the issuing identity
	said   string
}

// checkAnchors requires that every attestation of the batch is anchored
// (a digest seal of its SAID) by an event of its issuer appended in the
// same batch, and that an identity_signature verifies with that event's
// keys: nothing unsigned changes what a verifier trusts.
func (p *planner) checkAnchors() error {
	for _, at := range p.attested {
		seal := string(kel.DigestSeal(at.said))
		var by *kel.KeyState
		for _, ev := range p.events {
			if ev.e.Prefix != at.issuer {
				continue
			}
			for _, s := range ev.e.Seals {
				if string(s) == seal {
					by = ev.st
				}
			}
		}
		err := error(nil)
		if by == nil {
			err = fmt.Errorf("%w: no event of %s in this batch seals its SAID %s", ErrUnanchored, clip(at.issuer), at.said)
		} else {
			err = at.att.VerifyIdentity(by.CurrentKeys)
		}
		if err != nil {
			return &OpError{Index: at.op, Op: at.o.kind.String(), Who: at.o.who(), Err: err}
		}
	}
	return nil
}

// checkRID refuses a rid that cannot name the history copy: auths writes
// the whole rid into the file name.
func checkRID(rid string) error {
	if rid == "" || len(rid) > 200 || rid == "." || rid == ".." {
		return fmt.Errorf("%w: rid %q cannot name a history file", kel.ErrBadAttestation, clip(rid))
	}
	for i := 0; i < len(rid); i++ {
		if c := rid[i]; !isB64(c) && !strings.ContainsRune(".:+=@~", rune(c)) {
			return fmt.Errorf("%w: rid %q: character %q cannot name a history file", kel.ErrBadAttestation, clip(rid), c)
		}
	}
	return nil
}

// finish writes metadata.json and returns the commit message.
func (p *planner) finish() (string, error) {
	p.meta.Version = layoutVersion
	// chrono's form, as auths writes it; auths' initial commit carries the
	// Unix epoch.
	p.meta.UpdatedAt = kel.FormatTime(p.now)
	if len(p.summary) == 0 {
		p.meta.UpdatedAt = kel.FormatTime(time.Unix(0, 0))
	}
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
