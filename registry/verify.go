package registry

// Verifying registry commits that came from elsewhere. A remote is not
// trusted: before the local registry ref moves to a commit fetched from
// one, every commit between the local tip and it is checked as if this
// package had written it. For each commit, the identities whose folder
// changed have their KEL replayed from the events themselves (SAIDs,
// sequence numbers, prior SAIDs, signatures against the thresholds), never
// taken from the remote's state.json (which must agree with the replay
// when it claims to be valid); the events the parent already held must
// still be there, byte for byte; no identity or device disappears; and the
// SAID of every changed device attestation must be anchored by a digest
// seal in the KEL of the identity that issued it (the checks a batch
// makes before storing one). The registry's history is linear, so the walk follows one
// parent.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/auths-dev/auths-agent/kel"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

// maxFetchedCommits bounds how many registry commits one fetch may bring.
const maxFetchedCommits = 1 << 20

// ErrNotFastForward means a remote's registry ref does not descend from
// the local one: taking it would drop local history.
var ErrNotFastForward = errors.New("not a fast-forward")

// RefusedError is a fetched registry commit that failed verification.
type RefusedError struct {
	Commit string // the first commit that failed
	Reason error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("registry commit %s refused: %v", e.Commit, e.Reason)
}

func (e *RefusedError) Unwrap() error { return e.Reason }

// chainTo lists the commits from local (exclusive; zero: from the root) to
// remote (inclusive), oldest first. ahead is true when remote is an
// ancestor of local (nothing to take). A remote that does not descend from
// local is ErrNotFastForward.
func (r *Registry) chainTo(ctx context.Context, local, remote plumbing.Hash) (chain []plumbing.Hash, ahead bool, err error) {
	if local == remote {
		return nil, true, nil
	}
	for h := remote; ; {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		if len(chain) >= maxFetchedCommits {
			return nil, false, fmt.Errorf("more than %d new registry commits", maxFetchedCommits)
		}
		chain = append(chain, h)
		c, err := r.readCommit(h)
		if err != nil {
			return nil, false, &RefusedError{Commit: h.String(), Reason: fmt.Errorf("unreadable: %w", err)}
		}
		switch len(c.ParentHashes) {
		case 0:
			if local.IsZero() {
				slices.Reverse(chain)
				return chain, false, nil
			}
			// The remote's history does not hold the local tip: it may be
			// behind (an ancestor of the local tip) or diverged.
			for l := local; ; {
				lc, err := r.readCommit(l)
				if err != nil {
					return nil, false, corrupt(RegistryRef, "commit %s unreadable: %v", l, err)
				}
				if len(lc.ParentHashes) == 0 {
					return nil, false, fmt.Errorf("%w: the remote's %s does not contain the local %s", ErrNotFastForward, remote, local)
				}
				l = lc.ParentHashes[0]
				if l == remote {
					return nil, true, nil
				}
			}
		case 1:
			h = c.ParentHashes[0]
			if h == local {
				slices.Reverse(chain)
				return chain, false, nil
			}
		default:
			return nil, false, &RefusedError{Commit: h.String(), Reason: errors.New("a merge commit (the registry's history is linear)")}
		}
	}
}

// verifyStep checks commit c against its parent p (zero for a root).
func (r *Registry) verifyStep(p, c plumbing.Hash) error {
	sp, err := r.snapshotAt(p)
	if err != nil {
		return err
	}
	sc, err := r.snapshotAt(c)
	if err != nil {
		return err
	}
	if _, err := sc.Metadata(); err != nil {
		return err
	}
	before, err := sp.subtrees(identitiesPath)
	if err != nil {
		return err
	}
	after, err := sc.subtrees(identitiesPath)
	if err != nil {
		return err
	}
	for path, h := range after {
		if before[path] == h {
			continue
		}
		prefix := path[strings.LastIndexByte(path, '/')+1:]
		if dir, err := identityDir(prefix); err != nil || dir != identitiesPath+"/"+path {
			return corrupt(identitiesPath+"/"+path, "identity in the wrong shard")
		}
		if _, err := sc.Verify(prefix); err != nil {
			return err // names the identity
		}
		events, err := sc.KEL(prefix)
		if err != nil {
			return err
		}
		var old []kel.SignedEvent
		if _, had := before[path]; had {
			if old, err = sp.KEL(prefix); err != nil {
				return fmt.Errorf("identity %s in the parent: %w", prefix, err)
			}
		}
		if len(events) < len(old) {
			return fmt.Errorf("identity %s: KEL shortened from %d to %d events", prefix, len(old), len(events))
		}
		for i, se := range old {
			if string(events[i].Event.Raw()) != string(se.Event.Raw()) {
				return fmt.Errorf("identity %s: event s=%x rewritten (%s, was %s)", prefix, i, events[i].Event.SAID, se.Event.SAID)
			}
		}
	}
	for path := range before {
		if _, ok := after[path]; !ok {
			return fmt.Errorf("identity %s removed", path[strings.LastIndexByte(path, '/')+1:])
		}
	}
	devBefore, err := sp.subtrees(devicesPath)
	if err != nil {
		return err
	}
	devAfter, err := sc.subtrees(devicesPath)
	if err != nil {
		return err
	}
	for path := range devBefore {
		if _, ok := devAfter[path]; !ok {
			return fmt.Errorf("device %s removed (revocation is a newer document, never a deletion)", path)
		}
	}
	for path, h := range devAfter {
		if devBefore[path] == h {
			continue
		}
		if err := sc.checkAnchored(devicesPath + "/" + path); err != nil {
			return err
		}
	}
	return nil
}

// checkAnchored checks the attestation.json under dir as a batch checks
// one before storing it: an auths attestation whose device signature
// verifies, issued by a did:keri identity of the registry whose KEL holds a
// digest seal of its SAID, and whose identity_signature, when present,
// verifies with the keys of that anchoring event.
func (s *Snapshot) checkAnchored(dir string) error {
	path := dir + "/attestation.json"
	doc, ok, err := s.readFile(path)
	if err != nil {
		return err
	}
	if !ok {
		return corrupt(path, "missing")
	}
	a, err := kel.ParseAttestation(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := a.VerifyDevice(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	said, err := a.SAID()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	issuer, ok := strings.CutPrefix(a.Issuer, "did:keri:")
	if !ok || checkPrefix(issuer) != nil {
		return fmt.Errorf("%s: issuer %s is not a did:keri identity: %w", path, clip(a.Issuer), ErrUnanchored)
	}
	events, err := s.KEL(issuer)
	if err != nil {
		return fmt.Errorf("%s: issuer: %w", path, err)
	}
	seal := string(kel.DigestSeal(said))
	for i, se := range events {
		if !slices.ContainsFunc(se.Event.Seals, func(x json.RawMessage) bool { return string(x) == seal }) {
			continue
		}
		st, err := kel.Replay(events[:i+1])
		if err != nil {
			return fmt.Errorf("%s: issuer %s: %w", path, issuer, err)
		}
		if err := a.VerifyIdentity(st.CurrentKeys); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	return fmt.Errorf("%s: %w: the KEL of %s seals no SAID %s", path, ErrUnanchored, issuer, said)
}

// subtrees lists the folders three levels below base (<a>/<b>/<name>,
// the sharded layout of identities and devices) with their tree ids.
func (s *Snapshot) subtrees(base string) (map[string]plumbing.Hash, error) {
	out := map[string]plumbing.Hash{}
	var walk func(dir, rel string, depth int) error
	walk = func(dir, rel string, depth int) error {
		entries, ok, err := s.listDir(dir)
		if err != nil || !ok {
			return err
		}
		for _, e := range entries {
			if e.Mode != filemode.Dir {
				return corrupt(dir+"/"+e.Name, "a file where a folder belongs")
			}
			r := joinPath(rel, e.Name)
			if depth == 2 {
				out[r] = e.Hash
				continue
			}
			if err := walk(dir+"/"+e.Name, r, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(base, "", 0)
}
