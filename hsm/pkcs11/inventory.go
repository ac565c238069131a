package pkcs11

// This file holds what an operator reads or tidies on a module without
// signing: the tokens present, the public keys (no PIN needed), and the
// deletion of one key pair.

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	p11 "github.com/miekg/pkcs11"

	"github.com/auths-dev/auths-agent/hsm"
)

// TokenInfo is one token present in a module's slots.
type TokenInfo struct {
	Slot         uint
	Label        string
	Serial       string
	Manufacturer string
	Model        string
}

// Tokens lists the initialized tokens of the module, by label, and counts
// the slots without one (where a new token can be initialized). It needs no
// PIN.
func (p *Provider) Tokens() (tokens []TokenInfo, freeSlots int, err error) {
	if err := p.enter(); err != nil {
		return nil, 0, err
	}
	defer p.leave()
	all, err := p.ctx.GetSlotList(false)
	if err != nil {
		return nil, 0, fmt.Errorf("module %s: C_GetSlotList: %w", p.module, err)
	}
	infos, err := p.tokenInfos()
	if err != nil {
		return nil, 0, err
	}
	for _, s := range all {
		ti, ok := infos[s]
		if !ok {
			freeSlots++
			continue
		}
		tokens = append(tokens, TokenInfo{Slot: s, Label: ti.Label, Serial: ti.SerialNumber, Manufacturer: ti.ManufacturerID, Model: ti.Model})
	}
	slices.SortFunc(tokens, func(a, b TokenInfo) int {
		if c := strings.Compare(a.Label, b.Label); c != 0 {
			return c
		}
		return strings.Compare(a.Serial, b.Serial)
	})
	return tokens, freeSlots, nil
}

// ListPublic returns the public key objects on the token u names (object=
// and id= narrow the list) without logging in: tokens keep public keys
// readable without the PIN (CKA_PRIVATE false), so listing needs none. A key
// whose public object is private or missing does not show.
func (p *Provider) ListPublic(ctx context.Context, u *hsm.PKCS11URI) ([]KeyInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := p.checkURI(u); err != nil {
		return nil, hsm.NewURIError(u.String(), err)
	}
	if err := p.enter(); err != nil {
		return nil, hsm.NewURIError(u.String(), err)
	}
	defer p.leave()
	t, err := p.findToken(u)
	if err != nil {
		return nil, hsm.NewURIError(u.String(), err)
	}
	t.mu.Lock()
	slot := t.slot
	t.mu.Unlock()
	sh, err := p.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION)
	if err != nil {
		return nil, hsm.NewURIError(u.String(), fmt.Errorf("%s: C_OpenSession: %w", t.name, err))
	}
	defer p.ctx.CloseSession(sh)
	hs, err := p.find(sh, keyTemplate(p11.CKO_PUBLIC_KEY, u), 1<<20)
	if err != nil {
		return nil, hsm.NewURIError(u.String(), fmt.Errorf("%s: %w", t.name, err))
	}
	var keys []KeyInfo
	for _, h := range hs {
		k, err := t.readKey(sh, h, u.WithKey("", nil))
		if err != nil {
			return nil, hsm.NewURIError(u.String(), err)
		}
		keys = append(keys, k.info)
	}
	slices.SortFunc(keys, func(a, b KeyInfo) int {
		if c := strings.Compare(a.Label, b.Label); c != 0 {
			return c
		}
		return bytes.Compare(a.ID, b.ID)
	})
	return keys, nil
}

// Delete destroys the key pair u names: the one private key and the public
// key objects with its id (or, without an id, its label). It logs in with
// u's PIN. The key is gone for good; callers confirm first.
func (p *Provider) Delete(ctx context.Context, u *hsm.PKCS11URI) (KeyInfo, error) {
	if u.Object == "" && !u.HasID {
		return KeyInfo{}, hsm.NewURIError(u.String(), fmt.Errorf("%w: name the key to delete by object= or id=", hsm.ErrBadURI))
	}
	var info KeyInfo
	err := p.withSession(ctx, u, func(t *token, sh p11.SessionHandle) error {
		k, err := t.findKey(sh, u)
		if err != nil {
			return err
		}
		info = k.info
		tmpl := []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY)}
		if len(k.info.ID) > 0 {
			tmpl = append(tmpl, p11.NewAttribute(p11.CKA_ID, k.info.ID))
		} else {
			tmpl = append(tmpl, p11.NewAttribute(p11.CKA_LABEL, k.info.Label))
		}
		pubs, err := p.find(sh, tmpl, 16)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		// The private key first: once it is gone the pair can sign nothing,
		// whatever happens to the public objects.
		if err := p.ctx.DestroyObject(sh, k.h); err != nil {
			return fmt.Errorf("%s: C_DestroyObject: %w", t.name, err)
		}
		for _, h := range pubs {
			if err := p.ctx.DestroyObject(sh, h); err != nil {
				return fmt.Errorf("%s: private key deleted, its public key object not: C_DestroyObject: %w", t.name, err)
			}
		}
		return nil
	})
	return info, err
}
