package main

// This file holds tokenSet, which opens the key URIs of one command with one
// provider per PKCS#11 module and one for PIV cards, and makes next keys
// beside current ones.

import (
	"context"
	"fmt"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
)

// tokenSet opens the keys of one command: one provider per PKCS#11 module
// (a module loads once per process) and one for PIV cards.
type tokenSet struct {
	env    *cliEnv
	pkcs11 map[string]*pkcs11.Provider
	piv    *piv.Provider
}

func newTokenSet(env *cliEnv) *tokenSet {
	return &tokenSet{env: env, pkcs11: map[string]*pkcs11.Provider{}}
}

func (ts *tokenSet) Close() {
	for _, p := range ts.pkcs11 {
		p.Close()
	}
	if ts.piv != nil {
		ts.piv.Close()
	}
}

func (ts *tokenSet) module(u *hsm.PKCS11URI) (*pkcs11.Provider, error) {
	if u.ModulePath == "" {
		return nil, hsm.NewURIError(u.String(), fmt.Errorf("%w: no module-path (add ?module-path=/path/to/module.so)", hsm.ErrBadURI))
	}
	if p, ok := ts.pkcs11[u.ModulePath]; ok {
		return p, nil
	}
	p, err := pkcs11.Open(u.ModulePath, pkcs11.Options{Getenv: ts.env.getenv})
	if err != nil {
		return nil, hsm.NewURIError(u.String(), err)
	}
	ts.pkcs11[u.ModulePath] = p
	return p, nil
}

func (ts *tokenSet) pivProvider() *piv.Provider {
	if ts.piv == nil {
		ts.piv = newPIVProvider(ts.env)
	}
	return ts.piv
}

// signer opens the key r names.
func (ts *tokenSet) signer(ctx context.Context, r keyRef) (hsm.Signer, error) {
	if r.piv != nil {
		return ts.pivProvider().SignerURI(ctx, *r.piv)
	}
	p, err := ts.module(r.pkcs11)
	if err != nil {
		return nil, err
	}
	return p.Signer(ctx, r.pkcs11)
}

// open opens every URI and returns the signers and their CESR keys,
// refusing two URIs that name the same key.
func (ts *tokenSet) open(ctx context.Context, cmd string, uris []keyRef) ([]hsm.Signer, []string, error) {
	var signers []hsm.Signer
	var keys []string
	for _, u := range uris {
		warnPINFile(ts.env, u.pinSpec())
		s, err := ts.signer(ctx, u)
		if err != nil {
			return nil, nil, keyErrMsg(cmd, err)
		}
		v, err := hsm.Verfer(s)
		if err != nil {
			return nil, nil, usageErr("%s: %s: %v", cmd, u, err)
		}
		for j, k := range keys {
			if k == v.QB64() {
				return nil, nil, usageErr("%s: key listed twice: %s and %s are the same key %s", cmd, uris[j], u, k)
			}
		}
		signers, keys = append(signers, s), append(keys, v.QB64())
	}
	return signers, keys, nil
}

// generateNext makes a next key beside the key r names (agent.NextPKCS11:
// the same label with "-nextN"; agent.NextPIV: the first free retired
// slot) and returns its URI (without PIN) and CESR public key. A key
// already at a -nextN label, or in a retired slot with the certificate
// agent.NextPIV stores, that no identity uses (inUse) is one an earlier
// attempt generated and could not use: it is reused (reused is true)
// rather than left behind while another is made.
// The agent makes next keys with the same functions.
func (ts *tokenSet) generateNext(ctx context.Context, r keyRef, alg kel.Algorithm, inUse keyUses) (nuri, key string, reused bool, err error) {
	used := func(k string) bool { _, u := inUse.used(k); return u }
	if r.piv != nil {
		nu, key, reused, err := agent.NextPIV(ctx, ts.pivProvider(), *r.piv, alg, used)
		if err != nil {
			return "", "", false, err
		}
		return nu.String(), key, reused, nil
	}
	p, err := ts.module(r.pkcs11)
	if err != nil {
		return "", "", false, err
	}
	nu, key, reused, err := agent.NextPKCS11(ctx, p, r.pkcs11, alg, used)
	if err != nil {
		return "", "", false, err
	}
	return nu.String(), key, reused, nil
}
