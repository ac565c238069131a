package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	p11 "github.com/miekg/pkcs11"

	"github.com/auths-dev/auths-agent/hsm"
)

// tokenID is what identifies a token across slot changes and reinsertion.
type tokenID struct{ label, serial string }

// token is one token of the provider: its slot, login state and session
// pool. Its mutex guards connecting and logging in; the hot path (take an
// idle session, sign, put it back) only touches the idle channel and the
// atomic generation.
type token struct {
	p    *Provider
	id   tokenID
	name string // for people: token "ci-1" (serial …)

	// gen counts connections: sessions and object handles of an older
	// generation are dead (the token went away and came back).
	gen  atomic.Uint64
	idle chan session

	mu        sync.Mutex
	slot      uint
	connected bool // slot valid and logged in for the current generation
	open      int  // sessions opened in the current generation
}

type session struct {
	h   p11.SessionHandle
	gen uint64
}

// pinID names the token in the provider's memory of refused PINs: by label
// and serial, which survive reconnects and slot changes.
func (t *token) pinID() string {
	return fmt.Sprintf("pkcs11:token=%q;serial=%q", t.id.label, t.id.serial)
}

func tokenName(id tokenID) string {
	return fmt.Sprintf("token %q (serial %s)", id.label, id.serial)
}

func trimPad(s string) string { return strings.TrimRight(s, " \x00") }

// tokenInfos lists the tokens present, by slot.
func (p *Provider) tokenInfos() (map[uint]p11.TokenInfo, error) {
	slots, err := p.ctx.GetSlotList(true)
	if err != nil {
		return nil, fmt.Errorf("module %s: C_GetSlotList: %w", p.module, err)
	}
	infos := make(map[uint]p11.TokenInfo, len(slots))
	for _, s := range slots {
		ti, err := p.ctx.GetTokenInfo(s)
		if err != nil || ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue // removed meanwhile, or a free slot
		}
		ti.Label, ti.SerialNumber = trimPad(ti.Label), trimPad(ti.SerialNumber)
		ti.ManufacturerID, ti.Model = trimPad(ti.ManufacturerID), trimPad(ti.Model)
		infos[s] = ti
	}
	return infos, nil
}

// findToken returns the one token u names.
func (p *Provider) findToken(u *hsm.PKCS11URI) (*token, error) {
	infos, err := p.tokenInfos()
	if err != nil {
		return nil, err
	}
	var found []uint
	var all []string
	for slot, ti := range infos {
		all = append(all, fmt.Sprintf("%q", ti.Label))
		if (u.Token == "" || u.Token == ti.Label) && (u.Serial == "" || u.Serial == ti.SerialNumber) &&
			(u.Manufacturer == "" || u.Manufacturer == ti.ManufacturerID) && (u.Model == "" || u.Model == ti.Model) {
			found = append(found, slot)
		}
	}
	switch len(found) {
	case 0:
		if len(all) == 0 {
			return nil, fmt.Errorf("%w: no token %s (module %s has no token present)", hsm.ErrNotFound, wantedToken(u), p.module)
		}
		return nil, fmt.Errorf("%w: no token %s (tokens present: %s)", hsm.ErrNotFound, wantedToken(u), strings.Join(slices.Sorted(slices.Values(all)), ", "))
	case 1:
	default:
		var serials []string
		for _, s := range found {
			serials = append(serials, infos[s].SerialNumber)
		}
		return nil, fmt.Errorf("%w: %d tokens match (serials %s): add serial= to the URI", hsm.ErrAmbiguous, len(found), strings.Join(slices.Sorted(slices.Values(serials)), ", "))
	}
	ti := infos[found[0]]
	id := tokenID{label: ti.Label, serial: ti.SerialNumber}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.tokens[id]
	if t == nil {
		t = &token{p: p, id: id, name: tokenName(id), slot: found[0], idle: make(chan session, p.opts.SessionsPerToken)}
		p.tokens[id] = t
	}
	return t, nil
}

// wantedToken says which token a URI asks for.
func wantedToken(u *hsm.PKCS11URI) string {
	var parts []string
	if u.Token != "" {
		parts = append(parts, fmt.Sprintf("labelled %q", u.Token))
	}
	for _, a := range []struct{ name, v string }{{"serial", u.Serial}, {"manufacturer", u.Manufacturer}, {"model", u.Model}} {
		if a.v != "" {
			parts = append(parts, fmt.Sprintf("with %s %q", a.name, a.v))
		}
	}
	if len(parts) == 0 {
		return "at all"
	}
	return strings.Join(parts, " and ")
}

// acquire returns a logged-in session of the current generation, opening
// one (and connecting and logging in) when none is idle and the pool is not
// full, or waiting for one otherwise.
func (t *token) acquire(ctx context.Context, pin hsm.PINSpec) (session, error) {
	for {
		if err := ctx.Err(); err != nil {
			return session{}, err
		}
		select {
		case s := <-t.idle:
			if s.gen == t.gen.Load() {
				return s, nil
			}
			t.p.ctx.CloseSession(s.h)
			continue
		default:
		}
		t.mu.Lock()
		if !t.connected {
			s, err := t.connectLocked(ctx, pin)
			t.mu.Unlock()
			return s, err
		}
		if t.open < cap(t.idle) {
			h, err := t.openSession(t.slot)
			if err != nil {
				err = t.failedLocked("C_OpenSession", err)
				t.mu.Unlock()
				return session{}, err
			}
			t.open++
			s := session{h: h, gen: t.gen.Load()}
			t.mu.Unlock()
			return s, nil
		}
		t.mu.Unlock()
		select {
		case s := <-t.idle:
			if s.gen == t.gen.Load() {
				return s, nil
			}
			t.p.ctx.CloseSession(s.h)
		case <-ctx.Done():
			return session{}, ctx.Err()
		}
	}
}

// release puts s back in the pool, or drops the whole connection when err
// says the token or session is gone.
func (t *token) release(s session, err error) {
	if err != nil && isGone(err) {
		t.mu.Lock()
		if s.gen == t.gen.Load() {
			t.resetLocked()
		}
		t.mu.Unlock()
		return
	}
	if s.gen != t.gen.Load() {
		t.p.ctx.CloseSession(s.h)
		return
	}
	select {
	case t.idle <- s:
	default:
		t.p.ctx.CloseSession(s.h)
	}
}

// discard closes s instead of returning it to the pool.
func (t *token) discard(s session) {
	t.p.ctx.CloseSession(s.h)
	t.mu.Lock()
	if s.gen == t.gen.Load() && t.open > 0 {
		t.open--
	}
	t.mu.Unlock()
}

// connectLocked finds the token's slot again, opens a session and logs in,
// and returns that session.
func (t *token) connectLocked(ctx context.Context, pin hsm.PINSpec) (session, error) {
	infos, err := t.p.tokenInfos()
	if err != nil {
		return session{}, fmt.Errorf("%s: %w: %v", t.name, hsm.ErrTokenAbsent, err)
	}
	slot, ok := uint(0), false
	for s, ti := range infos {
		if ti.Label == t.id.label && ti.SerialNumber == t.id.serial {
			slot, ok = s, true
		}
	}
	if !ok {
		return session{}, fmt.Errorf("%s: %w: not present", t.name, hsm.ErrTokenAbsent)
	}
	t.slot = slot
	h, err := t.openSession(slot)
	if err != nil {
		return session{}, fmt.Errorf("%s: %w: C_OpenSession: %v", t.name, hsm.ErrTokenAbsent, err)
	}
	if infos[slot].Flags&p11.CKF_LOGIN_REQUIRED != 0 {
		if err := t.loginLocked(ctx, h, p11.CKU_USER, pin); err != nil {
			t.p.ctx.CloseSession(h)
			return session{}, err
		}
	}
	t.connected = true
	t.open = 1
	return session{h: h, gen: t.gen.Load()}, nil
}

// openSession opens a read-write session (key generation needs one), or a
// read-only one on a write-protected token.
func (t *token) openSession(slot uint) (p11.SessionHandle, error) {
	h, err := t.p.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	var code p11.Error
	if errors.As(err, &code) && code == p11.CKR_TOKEN_WRITE_PROTECTED {
		return t.p.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION)
	}
	return h, err
}

// loginLocked logs in as userType with the PIN from pin. A PIN this token
// refused before is not tried again.
func (t *token) loginLocked(ctx context.Context, h p11.SessionHandle, userType uint, spec hsm.PINSpec) error {
	// The prompt names the token found (label and serial), as a refusal
	// does (WrongPINError.Token), so that a PIN cache keyed by the name
	// drops the PIN the token refused.
	spec.For = t.name
	pin, err := spec.Resolve(ctx, t.p.opts.Getenv, t.p.opts.Prompt)
	if err != nil {
		return err
	}
	if t.p.refused.Refused(t.pinID(), pin) {
		return &hsm.WrongPINError{Token: t.name, TriesLeft: -1, Repeated: true}
	}
	err = t.p.ctx.Login(h, userType, pin)
	var code p11.Error
	errors.As(err, &code)
	switch {
	case err == nil, code == p11.CKR_USER_ALREADY_LOGGED_IN:
		return nil
	case code == p11.CKR_PIN_INCORRECT, code == p11.CKR_PIN_LEN_RANGE, code == p11.CKR_PIN_INVALID:
		t.p.refused.Refuse(t.pinID(), pin)
		tries := -1
		if ti, err := t.p.ctx.GetTokenInfo(t.slot); err == nil {
			switch {
			case ti.Flags&p11.CKF_USER_PIN_LOCKED != 0:
				return fmt.Errorf("%s: %w", t.name, hsm.ErrPINBlocked)
			case ti.Flags&p11.CKF_USER_PIN_FINAL_TRY != 0:
				tries = 1
			}
		}
		return &hsm.WrongPINError{Token: t.name, TriesLeft: tries}
	case code == p11.CKR_PIN_LOCKED:
		return fmt.Errorf("%s: %w", t.name, hsm.ErrPINBlocked)
	case isGone(err):
		t.resetLocked()
		return fmt.Errorf("%s: %w: C_Login: %v", t.name, hsm.ErrTokenAbsent, err)
	}
	return fmt.Errorf("%s: C_Login: %w", t.name, err)
}

// failedLocked turns a PKCS#11 error into one naming the token, dropping
// the connection when the token is gone.
func (t *token) failedLocked(op string, err error) error {
	if isGone(err) {
		t.resetLocked()
		return fmt.Errorf("%s: %w: %s: %v", t.name, hsm.ErrTokenAbsent, op, err)
	}
	return fmt.Errorf("%s: %s: %w", t.name, op, err)
}

// resetLocked forgets the connection: the next call finds the token again,
// opens new sessions and logs in.
func (t *token) resetLocked() {
	if !t.connected {
		return
	}
	t.p.log.Warn("pkcs11: token connection lost; reconnecting on next use", "token", t.name)
	t.gen.Add(1)
	t.connected = false
	t.open = 0
	t.p.ctx.CloseAllSessions(t.slot)
	for {
		select {
		case <-t.idle:
		default:
			return
		}
	}
}

// isGone reports whether err means the token, the slot or the session (and
// with it the login and object handles) is gone.
func isGone(err error) bool {
	var code p11.Error
	if !errors.As(err, &code) {
		return false
	}
	switch code {
	case p11.CKR_DEVICE_REMOVED, p11.CKR_TOKEN_NOT_PRESENT, p11.CKR_TOKEN_NOT_RECOGNIZED,
		p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED, p11.CKR_SLOT_ID_INVALID,
		p11.CKR_DEVICE_ERROR, p11.CKR_USER_NOT_LOGGED_IN, p11.CKR_OBJECT_HANDLE_INVALID,
		p11.CKR_KEY_HANDLE_INVALID:
		return true
	}
	return false
}
