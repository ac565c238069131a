package main

// This file holds tokenSet, which opens the key URIs of one command with one
// provider per PKCS#11 module and one for PIV cards, and makes next keys
// beside current ones.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
	gopiv "github.com/go-piv/piv-go/v2/piv"
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

var nextSuffix = regexp.MustCompile(`-next([0-9]+)$`)

// generateNext makes a next key beside the key r names: on a PKCS#11
// token the same label with "-nextN" (N one more than the label's own
// suffix, or 1), on a PIV card the first free retired slot 82-95. It
// returns the new key's URI (without PIN) and CESR public key. On a
// PKCS#11 token, a key already at a -nextN label that no identity uses
// (inUse) is one an earlier attempt generated and could not use: it is
// reused (reused is true) rather than left behind while another is made.
func (ts *tokenSet) generateNext(ctx context.Context, r keyRef, alg kel.Algorithm, inUse keyUses) (nuri, key string, reused bool, err error) {
	if r.piv != nil {
		nuri, key, err := ts.generateNextPIV(ctx, *r.piv, alg)
		return nuri, key, false, err
	}
	u := r.pkcs11
	if u.Object == "" {
		return "", "", false, hsm.NewURIError(u.String(), fmt.Errorf("%w: no object= label to derive the next key's label from (give --next-key)", hsm.ErrBadURI))
	}
	p, err := ts.module(u)
	if err != nil {
		return "", "", false, err
	}
	base, n := u.Object, 1
	if m := nextSuffix.FindStringSubmatch(base); m != nil {
		k, _ := strconv.Atoi(m[1])
		base, n = strings.TrimSuffix(base, m[0]), k+1
	}
	for range maxNextLabels {
		nu := u.WithKey(fmt.Sprintf("%s-next%d", base, n), nil)
		n++
		found, err := p.List(ctx, nu)
		if err != nil {
			return "", "", false, err
		}
		if len(found) == 0 {
			info, err := p.Generate(ctx, nu, alg)
			if err != nil {
				return "", "", false, err
			}
			return info.URI.String(), info.Verfer.QB64(), false, nil
		}
		k := found[0]
		if len(found) > 1 || k.Algorithm != alg {
			continue // not one of ours
		}
		if _, used := inUse.used(k.Verfer.QB64()); used {
			continue
		}
		return k.URI.String(), k.Verfer.QB64(), true, nil
	}
	return "", "", false, hsm.NewURIError(u.String(), fmt.Errorf("%w: labels %s-next1 to -next%d are all taken: give --next-key", hsm.ErrExists, base, n-1))
}

// maxNextLabels bounds the -nextN labels tried on one token.
const maxNextLabels = 100

// generateNextPIV generates in the first empty retired slot of u's card;
// the new slot's URI keeps u's PIN source (or value) as parsed.
func (ts *tokenSet) generateNextPIV(ctx context.Context, u hsm.PIVURI, alg kel.Algorithm) (string, string, error) {
	p := ts.pivProvider()
	galg := gopiv.AlgorithmEC256
	if alg == kel.Ed25519 {
		galg = gopiv.AlgorithmEd25519
	}
	for slot := uint8(0x82); slot <= 0x95; slot++ {
		nu := u
		nu.Slot = slot
		if _, err := p.KeyURI(ctx, nu, false); err == nil {
			continue
		} else if !errors.Is(err, hsm.ErrNotFound) {
			return "", "", err
		}
		s, err := p.GenerateURI(ctx, nu, piv.GenerateOptions{Algorithm: galg})
		if err != nil {
			return "", "", err
		}
		v, err := hsm.Verfer(s)
		if err != nil {
			return "", "", err
		}
		return nu.String(), v.QB64(), nil
	}
	return "", "", hsm.NewURIError(u.String(), fmt.Errorf("%w: no free retired slot (82-95) on the card: give --next-key", hsm.ErrExists))
}
