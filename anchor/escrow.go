package anchor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// Escrow layout: the files of a pending proposal in its ref's tree.
//
//	event.json              the unsigned event, exactly the bytes to sign
//	meta.json               type, prefix, SAID, s, prior SAID, created,
//	                        expires, and the attestations of the change
//	attestations/<n>.json   the documents the change will store, as given
//	sigs/<index>.qb64       one indexed signature (CESR qb64) per key index
//
// Every file is written once and never changed, so two copies of a
// proposal merge by union, file by file. Two valid signatures for one
// index (P-256 signatures are randomized) are equivalent: the first one
// stored stays.
const (
	fileEvent = "event.json"
	fileMeta  = "meta.json"
	dirSigs   = "sigs/"
	dirAtts   = "attestations/"
)

const metaVersion = 1

type meta struct {
	Version      int        `json:"version"`
	Type         string     `json:"type"`
	Prefix       string     `json:"prefix"`
	SAID         string     `json:"said"`
	Sn           uint64     `json:"sn"`
	Prior        string     `json:"prior,omitempty"`
	Created      time.Time  `json:"created"`
	Expires      time.Time  `json:"expires"`
	Attestations []metaAtts `json:"attestations,omitempty"`
}

type metaAtts struct {
	Device    string `json:"device"`
	File      string `json:"file"`
	SAID      string `json:"said"`
	Supersede bool   `json:"supersede,omitempty"`
}

func pendingID(p *Proposal) registry.PendingID {
	return registry.PendingID{Prefix: p.Prefix(), SAID: p.SAID()}
}

// Save writes the proposal, with every signature collected so far, to its
// pending ref refs/auths-agent/pending/<prefix>/<said>, merging by union with
// what is there (signatures another process added stay).
func (a *Anchorer) Save(ctx context.Context, p *Proposal) error {
	files, err := escrowFiles(p)
	if err != nil {
		return err
	}
	if _, err := a.reg.PutPending(ctx, pendingID(p), files); err != nil {
		return fmt.Errorf("save pending %s %s: %w", p.Prefix(), p.SAID(), err)
	}
	return nil
}

func escrowFiles(p *Proposal) (registry.PendingFiles, error) {
	m := meta{
		Version: metaVersion, Type: p.Type(), Prefix: p.Prefix(), SAID: p.SAID(), Sn: p.Sn(),
		Prior: p.Prior(), Created: p.created, Expires: p.expires,
	}
	files := registry.PendingFiles{fileEvent: p.Bytes()}
	for i, at := range p.attestations {
		name := dirAtts + strconv.Itoa(i) + ".json"
		files[name] = at.Document
		m.Attestations = append(m.Attestations, metaAtts{Device: at.Device, File: name, SAID: at.SAID, Supersede: at.Supersede})
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	files[fileMeta] = mb
	for _, s := range p.Signatures() {
		q, err := s.QB64()
		if err != nil {
			return nil, fmt.Errorf("signature %d: %w", s.Index, err)
		}
		files[dirSigs+strconv.Itoa(s.Index)+".qb64"] = []byte(q)
	}
	return files, nil
}

// Pending is a proposal found in escrow.
type Pending struct {
	ID       registry.PendingID
	Proposal *Proposal // nil when it cannot be loaded (see Err)
	// Refused lists signature files that were not kept (bad signature,
	// wrong index, unreadable), each naming its file.
	Refused []error
	// Err is why the proposal cannot be committed: a *StaleError,
	// ErrCommitted, ErrExpired (Proposal is then set), or a damaged ref.
	Err error
}

// Load reads a pending proposal back: its event, attestations and every
// valid signature. The identity's current tip decides whether it is still
// committable: a moved tip gives a Pending whose Err is a *StaleError, an
// event already in the KEL ErrCommitted, a passed expiry ErrExpired. A
// missing ref is an error matching registry.ErrNotFound.
func (a *Anchorer) Load(ctx context.Context, prefix, said string) (*Pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id := registry.PendingID{Prefix: prefix, SAID: said}
	files, err := a.reg.ReadPending(id)
	if err != nil {
		return nil, err
	}
	pd := &Pending{ID: id}
	pd.Proposal, pd.Refused, pd.Err = a.decode(id, files)
	return pd, nil
}

func (a *Anchorer) decode(id registry.PendingID, files registry.PendingFiles) (*Proposal, []error, error) {
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("pending %s: damaged: %s", id, fmt.Sprintf(format, args...))
	}
	var m meta
	if err := json.Unmarshal(files[fileMeta], &m); err != nil {
		return nil, nil, damaged("%s: %v", fileMeta, err)
	}
	if m.Version != metaVersion {
		return nil, nil, damaged("%s: version %d, want %d", fileMeta, m.Version, metaVersion)
	}
	e, err := kel.ParseEvent(files[fileEvent])
	if err != nil {
		return nil, nil, damaged("%s: %v", fileEvent, err)
	}
	if err := e.CheckSAID(); err != nil {
		return nil, nil, damaged("%s: %v", fileEvent, err)
	}
	if e.SAID != id.SAID || e.Prefix != id.Prefix || m.SAID != e.SAID || m.Prefix != e.Prefix || m.Type != e.Type || m.Sn != e.Sn || m.Prior != e.Prior {
		return nil, nil, damaged("%s and %s do not describe the event the ref names", fileEvent, fileMeta)
	}
	var atts []Attestation
	for i, ma := range m.Attestations {
		doc, ok := files[ma.File]
		if !ok || !strings.HasPrefix(ma.File, dirAtts) {
			return nil, nil, damaged("attestation %d: file %q missing", i, ma.File)
		}
		// meta.json is not signed: what it says must agree with the document
		// the event anchors (its subject, and revoked_at for a supersede).
		ad, err := kel.ParseAttestation(doc)
		if err != nil {
			return nil, nil, damaged("attestation %d (%s): %v", i, ma.File, err)
		}
		said, err := ad.SAID()
		if err != nil || said != ma.SAID {
			return nil, nil, damaged("attestation %d (%s): its SAID is not %s", i, ma.File, ma.SAID)
		}
		if ad.Subject != ma.Device {
			return nil, nil, damaged("attestation %d (%s): %s names device %s, the signed document %s", i, ma.File, fileMeta, clipDID(ma.Device), ad.Subject)
		}
		if ma.Supersede != (ad.RevokedAt != nil) {
			return nil, nil, damaged("attestation %d (%s): %s says supersede=%v, the signed document has revoked_at=%v", i, ma.File, fileMeta, ma.Supersede, ad.RevokedAt != nil)
		}
		if !slices.ContainsFunc(e.Seals, func(s json.RawMessage) bool { return string(s) == string(kel.DigestSeal(said)) }) {
			return nil, nil, damaged("attestation %d (%s): the event does not anchor its SAID %s", i, ma.File, said)
		}
		atts = append(atts, Attestation{Device: ma.Device, Document: doc, SAID: said, Supersede: ma.Supersede})
	}
	snap, err := a.reg.Snapshot()
	if err != nil {
		return nil, nil, err
	}
	var prior *kel.KeyState
	if e.Type != kel.TypeInception {
		tip, err := snap.Tip(e.Prefix)
		if err != nil {
			return nil, nil, fmt.Errorf("pending %s: identity: %w", id, err)
		}
		if tip.SAID != e.Prior || tip.Sequence+1 != e.Sn {
			stale := &StaleError{Prefix: e.Prefix, SAID: e.SAID, StagedOn: e.Prior, Tip: tip.SAID}
			if tip.Sequence >= e.Sn {
				if kl, err := snap.KEL(e.Prefix); err == nil && e.Sn < uint64(len(kl)) && kl[e.Sn].Event.SAID == e.SAID {
					return nil, nil, fmt.Errorf("%s %s: %w", e.Prefix, e.SAID, ErrCommitted)
				}
			}
			return nil, nil, stale
		}
		if prior, err = snap.KeyState(e.Prefix); err != nil {
			return nil, nil, fmt.Errorf("pending %s: %w", id, err)
		}
	} else if _, err := snap.Tip(e.Prefix); err == nil {
		return nil, nil, fmt.Errorf("%s %s: %w", e.Prefix, e.SAID, ErrCommitted)
	}
	p, err := newProposal(e, prior, atts, m.Created, 0)
	if err != nil {
		return nil, nil, damaged("%v", err)
	}
	p.created, p.expires = m.Created.UTC(), m.Expires.UTC()
	var refused []error
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !strings.HasPrefix(name, dirSigs) {
			continue
		}
		text := strings.TrimSpace(string(files[name]))
		s, n, err := kel.ParseSiger([]byte(text))
		if err == nil && n != len(text) {
			err = fmt.Errorf("%d bytes after the signature", len(text)-n)
		}
		if err == nil {
			_, err = p.Add(id.SAID, s)
		}
		if err != nil {
			refused = append(refused, &FileError{File: name, Err: err})
		}
	}
	if p.Expired(a.clock()) {
		return p, refused, fmt.Errorf("%s %s: %w at %s", e.Prefix, e.SAID, ErrExpired, p.expires.Format(time.RFC3339))
	}
	return p, refused, nil
}

// List returns every pending proposal of the registry, each loaded as
// Load does; a ref that cannot be read is listed with its Err.
func (a *Anchorer) List(ctx context.Context) ([]*Pending, error) {
	ids, err := a.reg.ListPending()
	if err != nil {
		return nil, err
	}
	out := make([]*Pending, 0, len(ids))
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pd, err := a.Load(ctx, id.Prefix, id.SAID)
		if err != nil {
			pd = &Pending{ID: id, Err: err}
		}
		out = append(out, pd)
	}
	return out, nil
}

// Discard removes a proposal's pending ref.
func (a *Anchorer) Discard(ctx context.Context, prefix, said string) error {
	return a.reg.DeletePending(ctx, registry.PendingID{Prefix: prefix, SAID: said})
}

// Prune removes the pending proposals that can never be committed: stale,
// already committed or expired. It returns the ones removed.
func (a *Anchorer) Prune(ctx context.Context) ([]*Pending, error) {
	all, err := a.List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []*Pending
	var errs []error
	for _, pd := range all {
		if !Dead(pd.Err) {
			continue
		}
		if err := a.reg.DeletePending(ctx, pd.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, pd)
	}
	return removed, errors.Join(errs...)
}

// Dead reports whether err means a proposal can never be committed.
func Dead(err error) bool {
	return errors.Is(err, ErrStale) || errors.Is(err, ErrCommitted) || errors.Is(err, ErrExpired)
}
