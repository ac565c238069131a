package vpiv

// Key references of the PIN and the PUK.
const (
	refPIN = 0x80
	refPUK = 0x81
)

// verify answers VERIFY on the PIN: a status query without data, a reset of
// the verified state with P1 ff, or a PIN attempt. Tries are counted per
// card; the third wrong PIN blocks it.
func (c *Card) verify(cmd command) response {
	if cmd.p2 != refPIN || (cmd.p1 != 0x00 && cmd.p1 != 0xff) {
		return status(swWrongP1P2)
	}
	pin := &c.st.PIN
	if cmd.p1 == 0xff {
		if len(cmd.data) != 0 {
			return status(swWrongLength)
		}
		c.sess.pinVerified, c.sess.pinFresh = false, false
		return ok(nil)
	}
	if len(cmd.data) == 0 {
		switch {
		case pin.Tries == 0:
			return status(swAuthBlocked)
		case c.sess.pinVerified:
			return ok(nil)
		}
		return status(triesLeft(pin.Tries))
	}
	if len(cmd.data) != 8 {
		return status(swWrongData)
	}
	if pin.Tries == 0 {
		return status(swAuthBlocked)
	}
	if !c.st.matches(pin, cmd.data) {
		pin.Tries--
		c.sess.pinVerified, c.sess.pinFresh = false, false
		return c.commit(status(triesLeft(pin.Tries)))
	}
	c.sess.pinVerified, c.sess.pinFresh = true, true
	if pin.Tries == pin.MaxTries {
		return ok(nil)
	}
	pin.Tries = pin.MaxTries
	return c.commit(ok(nil))
}

// changeReference answers CHANGE REFERENCE DATA for the PIN (P2 80) or the
// PUK (P2 81): old value then new value, each padded to 8 bytes.
func (c *Card) changeReference(cmd command) response {
	if cmd.p1 != 0 || (cmd.p2 != refPIN && cmd.p2 != refPUK) {
		return status(swWrongP1P2)
	}
	sec := &c.st.PIN
	if cmd.p2 == refPUK {
		sec = &c.st.PUK
	}
	if len(cmd.data) != 16 {
		return status(swWrongData)
	}
	old, next := cmd.data[:8], cmd.data[8:]
	if !validPadded(next, 6) {
		return status(swWrongData)
	}
	if sec.Tries == 0 {
		return status(swAuthBlocked)
	}
	if !c.st.matches(sec, old) {
		sec.Tries--
		if cmd.p2 == refPIN {
			c.sess.pinVerified, c.sess.pinFresh = false, false
		}
		return c.commit(status(triesLeft(sec.Tries)))
	}
	c.st.set(sec, next)
	return c.commit(ok(nil))
}

// resetRetry answers RESET RETRY COUNTER: the PUK and a new PIN unblock the
// PIN.
func (c *Card) resetRetry(cmd command) response {
	if cmd.p1 != 0 || cmd.p2 != refPIN {
		return status(swWrongP1P2)
	}
	if len(cmd.data) != 16 {
		return status(swWrongData)
	}
	puk, next := cmd.data[:8], cmd.data[8:]
	if !validPadded(next, 6) {
		return status(swWrongData)
	}
	if c.st.PUK.Tries == 0 {
		return status(swAuthBlocked)
	}
	if !c.st.matches(&c.st.PUK, puk) {
		c.st.PUK.Tries--
		return c.commit(status(triesLeft(c.st.PUK.Tries)))
	}
	c.st.PUK.Tries = c.st.PUK.MaxTries
	c.st.set(&c.st.PIN, next)
	return c.commit(ok(nil))
}

// setPINRetries answers the Yubico SET PIN RETRIES command: it needs the
// management key and the PIN, sets both counters and restores the factory
// PIN and PUK.
func (c *Card) setPINRetries(cmd command) response {
	if cmd.p1 == 0 || cmd.p2 == 0 {
		return status(swWrongP1P2)
	}
	if len(cmd.data) != 0 {
		return status(swWrongLength)
	}
	if !c.sess.mgmtAuth || !c.sess.pinVerified {
		return status(swSecurityStatus)
	}
	c.st.PIN = secret{Hash: c.st.hash(padPIN(DefaultPIN)), Tries: int(cmd.p1), MaxTries: int(cmd.p1)}
	c.st.PUK = secret{Hash: c.st.hash(padPIN(DefaultPUK)), Tries: int(cmd.p2), MaxTries: int(cmd.p2)}
	return c.commit(ok(nil))
}

// factoryReset answers the Yubico RESET command, allowed only once both the
// PIN and the PUK are blocked.
func (c *Card) factoryReset(cmd command) response {
	if cmd.p1 != 0 || cmd.p2 != 0 {
		return status(swWrongP1P2)
	}
	if c.st.PIN.Tries != 0 || c.st.PUK.Tries != 0 {
		return status(swConditions)
	}
	c.st.factoryReset()
	c.sess = session{selected: true}
	return c.commit(ok(nil))
}
