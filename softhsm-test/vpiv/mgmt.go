package vpiv

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"io"
)

// Management key algorithms (NIST SP 800-78-4).
const (
	alg3DES   = 0x03
	algAES128 = 0x08
	algAES192 = 0x0a
	algAES256 = 0x0c

	slotCardManagement = 0x9b
)

// Touch policies (Yubico).
const (
	touchDefault = 0x00
	touchNever   = 0x01
	touchAlways  = 0x02
	touchCached  = 0x03
)

// Dynamic authentication template tags.
const (
	tagDynAuth   = 0x7c
	tagWitness   = 0x80
	tagChallenge = 0x81
	tagResponse  = 0x82
	tagExp       = 0x85
)

// mgmtKeyLen is the key length of each management key algorithm.
func mgmtKeyLen(alg byte) int {
	switch alg {
	case alg3DES, algAES192:
		return 24
	case algAES128:
		return 16
	case algAES256:
		return 32
	}
	return 0
}

// mgmtCipher is the block cipher of the current management key.
func (c *Card) mgmtCipher() (cipher.Block, error) {
	if c.st.MgmtAlg == alg3DES {
		return des.NewTripleDESCipher(c.st.MgmtKey)
	}
	return aes.NewCipher(c.st.MgmtKey)
}

// mgmtAuthenticate runs the management key's mutual authentication, the way
// piv-go and yubico-piv-tool do it: the card sends an encrypted witness
// (7c 80 00 asks for it); the host returns it decrypted together with its
// own challenge (7c 80 W 81 C), which the card answers encrypted (7c 82 R).
func (c *Card) mgmtAuthenticate(cmd command) response {
	if cmd.p1 != c.st.MgmtAlg {
		return status(swWrongP1P2)
	}
	items, err := parseDynAuth(cmd.data)
	if err != nil {
		return status(swWrongData)
	}
	block, err := c.mgmtCipher()
	if err != nil {
		return status(swMemoryFailure)
	}
	n := block.BlockSize()
	witness, hasW := find(items, tagWitness)
	challenge, hasC := find(items, tagChallenge)
	switch {
	case hasW && len(witness) == 0 && !hasC:
		c.sess.mgmtAuth = false
		if c.st.MgmtTouch == touchAlways && !c.touch(true) {
			return status(swSecurityStatus)
		}
		w := make([]byte, n)
		if _, err := io.ReadFull(c.cfg.Rand, w); err != nil {
			return status(swMemoryFailure)
		}
		c.sess.witness = w
		enc := make([]byte, n)
		block.Encrypt(enc, w)
		return ok(tlvBytes(tagDynAuth, tlvBytes(tagWitness, enc)))
	case hasW && hasC:
		expected := c.sess.witness
		c.sess.witness = nil
		if expected == nil {
			return status(swConditions)
		}
		if len(witness) != n || len(challenge) != n {
			return status(swWrongData)
		}
		if subtle.ConstantTimeCompare(witness, expected) != 1 {
			c.sess.mgmtAuth = false
			return status(swSecurityStatus)
		}
		c.sess.mgmtAuth = true
		enc := make([]byte, n)
		block.Encrypt(enc, challenge)
		return ok(tlvBytes(tagDynAuth, tlvBytes(tagResponse, enc)))
	}
	return status(swWrongData)
}

// setMgmtKey answers the Yubico SET MANAGEMENT KEY command (P1 ff; P2 ff, or
// fe to require touch): algorithm, 9b, length, key. AES keys need firmware
// 5.4 or later.
func (c *Card) setMgmtKey(cmd command) response {
	if cmd.p1 != 0xff || (cmd.p2 != 0xff && cmd.p2 != 0xfe) {
		return status(swWrongP1P2)
	}
	if !c.sess.mgmtAuth {
		return status(swSecurityStatus)
	}
	d := cmd.data
	if len(d) < 3 || d[1] != slotCardManagement || int(d[2]) != len(d)-3 {
		return status(swWrongData)
	}
	alg, key := d[0], d[3:]
	if mgmtKeyLen(alg) == 0 || mgmtKeyLen(alg) != len(key) {
		return status(swWrongData)
	}
	if alg != alg3DES && !c.atLeast(5, 4, 0) {
		return status(swWrongData)
	}
	c.st.MgmtAlg = alg
	c.st.MgmtKey = append([]byte(nil), key...)
	c.st.MgmtTouch = touchNever
	if cmd.p2 == 0xfe {
		c.st.MgmtTouch = touchAlways
	}
	return c.commit(ok(nil))
}

// atLeast reports whether the configured firmware is at least v.
func (c *Card) atLeast(major, minor, patch byte) bool {
	v := c.cfg.Version
	if v[0] != major {
		return v[0] > major
	}
	if v[1] != minor {
		return v[1] > minor
	}
	return v[2] >= patch
}

// touch waits for the touch to "arrive" if the policy asks for one now,
// and reports whether it came before the card's TouchTimeout.
func (c *Card) touch(always bool) bool {
	now := c.cfg.Now()
	if always || c.lastTouch.IsZero() || now.Sub(c.lastTouch) >= touchCache {
		if t := c.cfg.TouchTimeout; t > 0 && c.cfg.TouchDelay > t {
			c.tracef("waiting %s for a touch that comes after %s: no touch", t, c.cfg.TouchDelay)
			c.cfg.Sleep(t)
			return false
		}
		if c.cfg.TouchDelay > 0 {
			c.tracef("waiting %s for touch", c.cfg.TouchDelay)
			c.cfg.Sleep(c.cfg.TouchDelay)
		}
		c.lastTouch = c.cfg.Now()
	}
	return true
}
