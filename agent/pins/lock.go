package pins

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
)

// Errors of Lock and Unlock, worded as ssh-agent's messages are.
var (
	ErrLocked      = errors.New("agent is locked")
	ErrNotLocked   = errors.New("agent is not locked")
	ErrPassphrase  = errors.New("incorrect passphrase")
	errLockedTwice = errors.New("agent is already locked")
)

// Lock locks the cache with a passphrase (the ssh-agent lock message):
// every PIN is forgotten, and until Unlock, Prompt refuses with ErrLocked
// instead of asking. The agent also refuses every signature while locked
// and closes its token sessions, so that a card logged in before the lock
// cannot sign either. Only an HMAC of the passphrase, under a key drawn
// here, is kept.
func (c *Cache) Lock(passphrase []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locked {
		return errLockedTwice
	}
	rand.Read(c.lockKey[:])
	c.lockMAC = mac(c.lockKey[:], passphrase)
	c.locked = true
	c.forgetLocked()
	return nil
}

// Unlock unlocks the cache when passphrase is the one given to Lock.
func (c *Cache) Unlock(passphrase []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.locked {
		return ErrNotLocked
	}
	if !hmac.Equal(mac(c.lockKey[:], passphrase), c.lockMAC) {
		return ErrPassphrase
	}
	c.locked, c.lockMAC = false, nil
	return nil
}

// Locked reports whether the cache is locked.
func (c *Cache) Locked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.locked
}

func mac(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}
