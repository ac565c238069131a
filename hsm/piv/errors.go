package piv

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/go-piv/piv-go/v2/piv"
)

// ErrCardPanic matches errors made from a panic inside piv-go (a malformed
// card answer). The connection it happened on is closed and reopened on the
// next call.
var ErrCardPanic = errors.New("piv-go panicked on a card answer")

// ErrNoPCSCD matches errors saying that the PC/SC daemon is not reachable.
var ErrNoPCSCD = errors.New("pcscd is not running")

// panicError is a recovered panic. The stack stays out of Error (it is for
// debugging, through a logger) and the value is shown only by type, since a
// panic value built from card data could hold anything.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string {
	if err, ok := e.value.(error); ok && isRuntimeError(err) {
		return fmt.Sprintf("%v: %v (malformed card answer?)", ErrCardPanic, err)
	}
	return fmt.Sprintf("%v: %T (malformed card answer?)", ErrCardPanic, e.value)
}

func (e *panicError) Unwrap() error { return ErrCardPanic }

func isRuntimeError(err error) bool {
	_, ok := err.(interface{ RuntimeError() })
	return ok
}

// guard runs f and turns a panic inside it into an error matching
// ErrCardPanic. piv-go indexes some card answers without checking their
// length (GET METADATA of 9b on firmware 5.3+), so every call into it goes
// through here.
func guard(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return f()
}

// PC/SC conditions piv-go reports only as text (its error type is
// unexported); the texts come from pcsc-lite's error table in piv-go.
const (
	msgNoService     = "resource manager is not running"
	msgServiceDown   = "resource manager has shut down"
	msgNoCard        = "no Smart Card is currently in the device"
	msgRemoved       = "smart card has been removed"
	msgReset         = "smart card has been reset"
	msgUnpowered     = "power has been removed from the smart card"
	msgBadHandle     = "supplied handle was invalid"
	msgUnknownReader = "reader name is not recognized"
	msgReaderGone    = "reader is not currently available"
	msgNoReaders     = "cannot find a smart card reader"
	msgCommError     = "communications error with the smart card"
	msgUnresponsive  = "smart card is not responding"
	msgSharing       = "cannot be accessed because of other connections outstanding"
	msgNotYubiKey    = "smart card error 6d00"
)

func contains(err error, texts ...string) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	for _, t := range texts {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

// isNoService reports whether err says pcscd is not there.
func isNoService(err error) bool { return contains(err, msgNoService, msgServiceDown) }

// isTransport reports whether err says the connection to the card is gone
// (card removed, reset, reader gone, pcscd gone): the handle is useless and
// the card must be opened again.
func isTransport(err error) bool {
	return contains(err, msgNoService, msgServiceDown, msgNoCard, msgRemoved, msgReset,
		msgUnpowered, msgBadHandle, msgUnknownReader, msgReaderGone, msgNoReaders,
		msgCommError, msgUnresponsive)
}

// isStale reports whether err says that a handle which used to work went
// stale (the card was removed and maybe re-inserted, or reset): reopening
// may succeed at once.
func isStale(err error) bool {
	return contains(err, msgRemoved, msgReset, msgUnpowered, msgBadHandle, msgNoCard)
}

// cardError prefixes err with the card it is about: "card 10000001: …".
type cardError struct {
	serial uint32
	err    error
}

func (e *cardError) Error() string { return fmt.Sprintf("card %d: %v", e.serial, e.err) }
func (e *cardError) Unwrap() error { return e.err }

func cardErr(serial uint32, err error) error {
	var ce *cardError
	if errors.As(err, &ce) && ce.serial == serial {
		return err
	}
	return &cardError{serial: serial, err: err}
}

// explain turns an error from piv-go about card serial into one that says
// what to do. Wrong and blocked PINs are handled where the PIN is known.
func explain(serial uint32, err error) error {
	var pe *panicError
	var ae piv.AuthErr
	var we *hsm.WrongPINError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &we), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &pe):
		return cardErr(serial, err)
	case isNoService(err):
		return fmt.Errorf("%w (start pcscd): %w", ErrNoPCSCD, err)
	case isTransport(err):
		return cardErr(serial, fmt.Errorf("%w: %w (is it plugged in? the next call reopens it)", hsm.ErrTokenAbsent, err))
	case errors.As(err, &ae) && ae.Retries == 0:
		return cardErr(serial, fmt.Errorf("%w: %w (unblock it with the PUK)", hsm.ErrPINBlocked, err))
	}
	return cardErr(serial, err)
}
