package piv

import (
	"context"
	"errors"
	"fmt"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/go-piv/piv-go/v2/piv"
)

// pinAttempt is the PIN state of one call: the PIN is resolved at most once
// per call (a prompt is not repeated when the call is retried on a reopened
// card) and forgotten when the call ends.
type pinAttempt struct {
	spec   hsm.PINSpec
	pin    string
	have   bool
	sent   bool  // a VERIFY with the PIN went to the card
	err    error // why the PIN was not given to piv-go
	always bool  // PIN policy "always": no VERIFY status probe
}

// pinID names the card in the Provider's memory of refused PINs.
func (c *card) pinID() string { return fmt.Sprintf("piv:serial=%d", c.serial) }

func (c *card) blockedErr() error {
	return cardErr(c.serial, fmt.Errorf("%w after too many wrong PINs: unblock it with the PUK (ykman piv access unblock-pin)", hsm.ErrPINBlocked))
}

// pinLocked returns the PIN to send, or an error without sending anything:
// the PIN is blocked, the PIN was refused before, or no source gave one.
// It is what piv-go's PIN prompt calls, only when the card needs a PIN.
func (c *card) pinLocked(ctx context.Context, yk *piv.YubiKey, a *pinAttempt) (string, error) {
	fail := func(err error) (string, error) {
		a.err = err
		return "", err
	}
	if c.blocked {
		return fail(c.blockedErr())
	}
	if !a.have {
		spec := a.spec
		spec.For = cardName(c.serial)
		pin, err := spec.Resolve(ctx, c.p.opts.Getenv, c.p.opts.Prompt)
		if err != nil {
			return fail(cardErr(c.serial, err))
		}
		a.pin, a.have = pin, true
	}
	if n := len(a.pin); n < 1 || n > 8 {
		return fail(cardErr(c.serial, fmt.Errorf("%w: a PIV PIN has 1 to 8 characters (6 to 8 on a YubiKey); not sent", hsm.ErrWrongPIN)))
	}
	if c.p.refused.Refused(c.pinID(), a.pin) {
		return fail(&hsm.WrongPINError{Token: cardName(c.serial), TriesLeft: -1, Repeated: true})
	}
	if !a.always {
		// piv-go just learned that a PIN is needed; make sure the PIN is
		// not blocked before sending one (one status VERIFY, once per login).
		if n, err := yk.Retries(); err == nil && n == 0 {
			c.blocked = true
			return fail(c.blockedErr())
		}
	}
	a.sent = true
	return a.pin, nil
}

// pinResultLocked interprets the error of an operation that may have sent
// a PIN: a refused PIN is remembered and reported with the tries left, a
// blocked PIN says to use the PUK.
func (c *card) pinResultLocked(err error, a *pinAttempt) error {
	if a.err != nil {
		return a.err
	}
	var ae piv.AuthErr
	if err == nil || !a.sent || !errors.As(err, &ae) {
		return err
	}
	if ae.Retries == 0 {
		c.blocked = true
		return c.blockedErr()
	}
	c.p.refused.Refuse(c.pinID(), a.pin)
	return &hsm.WrongPINError{Token: cardName(c.serial), TriesLeft: ae.Retries}
}

// verifyPINLocked sends the PIN (for operations that need it up front,
// such as key generation), with the same checks as signing.
func (c *card) verifyPINLocked(ctx context.Context, yk *piv.YubiKey, a *pinAttempt) error {
	pin, err := c.pinLocked(ctx, yk, a)
	if err != nil {
		return err
	}
	return c.pinResultLocked(yk.VerifyPIN(pin), a)
}

// Unblock sets a new PIN on the card with the given serial using its PUK
// (RESET RETRY COUNTER), after the PIN was blocked by wrong tries. A wrong
// PUK is not retried; its error says how many PUK tries are left.
func (p *Provider) Unblock(ctx context.Context, serial uint32, puk, newPIN string) error {
	if len(newPIN) < 6 || len(newPIN) > 8 {
		return cardErr(serial, errors.New("the new PIN must have 6 to 8 characters"))
	}
	if len(puk) < 1 || len(puk) > 8 {
		return cardErr(serial, errors.New("a PUK has 1 to 8 characters"))
	}
	c, err := p.card(serial)
	if err != nil {
		return err
	}
	return c.do(ctx, func(yk *piv.YubiKey) error {
		err := yk.Unblock(puk, newPIN)
		var ae piv.AuthErr
		switch {
		case err == nil:
			c.blocked = false
			c.p.refused.Forget(c.pinID())
			return nil
		case errors.As(err, &ae) && ae.Retries == 0:
			return cardErr(serial, fmt.Errorf("%w: the PUK is blocked too; only a reset of the PIV application (which erases its keys) helps", hsm.ErrPINBlocked))
		case errors.As(err, &ae):
			return cardErr(serial, fmt.Errorf("%w: PUK refused (%d tries left); not tried again", hsm.ErrWrongPIN, ae.Retries))
		}
		return fmt.Errorf("unblocking the PIN: %w", err)
	})
}
