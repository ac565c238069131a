package hsm

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
)

// RefusedPINs remembers which PINs each token refused, so that a refused
// PIN is never sent to that token again: every wrong try brings a PIN
// closer to being blocked, and a PIN read from a file or a variable would
// otherwise be sent again on every call, and again after every reconnect
// (a USB hiccup, a pcscd restart, a token removed and re-inserted).
//
// Tokens are named by an identity that survives reconnects, chosen by the
// backend (a PIV card's serial; a PKCS#11 token's label and serial), never
// by a connection or slot. What is kept is an HMAC-SHA256 of the PIN under
// a key drawn when the RefusedPINs is made, so the PIN itself is not held
// and a fingerprint means nothing outside this process. Because the PIN's
// value is remembered, not where it came from, a changed source (a
// corrected PIN file, another variable, a new prompt answer) that yields
// another PIN is tried, and the same wrong PIN from any source is not.
//
// Backends make one in their constructor unless given one; a process that
// reaches the same token through several providers can share one. The
// zero value is not usable: use NewRefusedPINs. It is safe for concurrent
// use.
type RefusedPINs struct {
	key [32]byte

	mu      sync.Mutex
	refused map[string]map[[sha256.Size]byte]bool
}

// NewRefusedPINs returns an empty memory with a fresh random key.
func NewRefusedPINs() *RefusedPINs {
	r := &RefusedPINs{refused: map[string]map[[sha256.Size]byte]bool{}}
	// crypto/rand.Read does not fail (Go 1.24+): it crashes the program
	// rather than return predictable bytes.
	rand.Read(r.key[:])
	return r
}

func (r *RefusedPINs) fingerprint(pin string) [sha256.Size]byte {
	m := hmac.New(sha256.New, r.key[:])
	m.Write([]byte(pin))
	var f [sha256.Size]byte
	copy(f[:], m.Sum(nil))
	return f
}

// Refused reports whether token refused pin before.
func (r *RefusedPINs) Refused(token, pin string) bool {
	f := r.fingerprint(pin)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused[token][f]
}

// Refuse records that token refused pin.
func (r *RefusedPINs) Refuse(token, pin string) {
	f := r.fingerprint(pin)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refused[token] == nil {
		r.refused[token] = map[[sha256.Size]byte]bool{}
	}
	r.refused[token][f] = true
}

// Forget drops what token refused, after its PIN was set anew (unblocked
// with the PUK): a PIN refused before may be the new one.
func (r *RefusedPINs) Forget(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.refused, token)
}
