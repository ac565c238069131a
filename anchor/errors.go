package anchor

import (
	"errors"
	"fmt"
)

// Errors callers branch on with errors.Is.
var (
	// ErrStale means the identity's tip moved since the proposal was
	// staged: the proposal can never be committed and must be staged anew.
	ErrStale = errors.New("proposal is stale")
	// ErrCommitted means the proposal's event is already in the KEL.
	ErrCommitted = errors.New("event already committed")
	// ErrExpired means the proposal passed its expiry time.
	ErrExpired = errors.New("proposal expired")
	// ErrIncomplete means the collected signatures do not meet the
	// thresholds yet. See [IncompleteError].
	ErrIncomplete = errors.New("not enough signatures")
	// ErrUnknownIdentity means the registry has no KEL for the prefix.
	ErrUnknownIdentity = errors.New("unknown identity")
	// ErrNonTransferable means the identity cannot have events after its
	// inception.
	ErrNonTransferable = errors.New("identity is non-transferable")
	// ErrEstablishmentOnly means the identity was incepted with the EO
	// trait and cannot anchor with interaction events.
	ErrEstablishmentOnly = errors.New("identity is establishment-only (EO)")
	// ErrBadSeal means a seal is not {"d": SAID} or {"i": AID, "s": hex, "d": SAID}.
	ErrBadSeal = errors.New("malformed seal")
	// ErrBadAttestation means an attestation's device DID or document
	// cannot be stored (not a JSON object, a DID that names no path).
	ErrBadAttestation = errors.New("bad attestation")

	// ErrOtherEvent means a signature was made for another event.
	ErrOtherEvent = errors.New("signature for another event")
	// ErrWrongIndex means a signature's index (or prior-next index) does
	// not name the key that made it.
	ErrWrongIndex = errors.New("wrong signature index")
	// ErrBadSignature means a signature does not verify against the key
	// at its index over the proposal's bytes.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrSignerNotInKeys means a signer's key is not a signing key of the
	// proposal.
	ErrSignerNotInKeys = errors.New("signer's key is not in the key list")
	// ErrDuplicateSigner means two signers hold the same key.
	ErrDuplicateSigner = errors.New("key given twice")
)

// SignatureError is a refused signature: which index, and why (one of
// ErrOtherEvent, ErrWrongIndex, ErrBadSignature, wrapped).
type SignatureError struct {
	Index int
	Err   error
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("signature at index %d refused: %v", e.Index, e.Err)
}
func (e *SignatureError) Unwrap() error { return e.Err }

// SignerError is the failure of one signer in [Sign]: it names the signer
// (for people: token and key, never a PIN) and the key index it holds (-1
// when its key is not in the key list).
type SignerError struct {
	Signer string
	Index  int
	Err    error
}

func (e *SignerError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("signer %s: %v", e.Signer, e.Err)
	}
	return fmt.Sprintf("signer %s (index %d): %v", e.Signer, e.Index, e.Err)
}
func (e *SignerError) Unwrap() error { return e.Err }

// IncompleteError says what a proposal still needs.
type IncompleteError struct {
	Status Status
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("%s: %s", ErrIncomplete, e.Status.Needs())
}

// Is makes errors.Is(err, ErrIncomplete) true.
func (e *IncompleteError) Is(target error) bool { return target == ErrIncomplete }

// StaleError says why a proposal is stale: the tip it was staged on and the
// tip found.
type StaleError struct {
	Prefix   string
	SAID     string // the proposal's event
	StagedOn string // prior SAID the proposal follows ("" for an inception)
	Tip      string // the identity's tip now
	Reason   string
}

func (e *StaleError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("%s %s: %s: %s", e.Prefix, e.SAID, ErrStale, e.Reason)
	}
	return fmt.Sprintf("%s %s: %s: staged on %s, the tip is now %s", e.Prefix, e.SAID, ErrStale, e.StagedOn, e.Tip)
}

// Is makes errors.Is(err, ErrStale) true.
func (e *StaleError) Is(target error) bool { return target == ErrStale }
