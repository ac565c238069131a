package agent

// This file holds where a next key goes beside a current key on its token
// (PKCS#11: the same label with -nextN; PIV: the first free retired slot),
// shared by the CLI's direct path and the agent, and how the agent finds
// next keys on the tokens of the keys it holds.

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	gopiv "github.com/go-piv/piv-go/v2/piv"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
)

var nextSuffix = regexp.MustCompile(`-next([0-9]+)$`)

// MaxNextLabels bounds the -nextN labels tried on one PKCS#11 token.
const MaxNextLabels = 100

// nextBase returns a label without its -nextN suffix, and the N after it
// (1 for a label without a suffix).
func nextBase(label string) (base string, n int) {
	if m := nextSuffix.FindStringSubmatch(label); m != nil {
		k, _ := strconv.Atoi(m[1])
		return strings.TrimSuffix(label, m[0]), k + 1
	}
	return label, 1
}

// NextPKCS11 makes a next key beside the key u names on its token: the
// same label with "-nextN", N one more than the label's own suffix, or 1.
// A key already at a -nextN label with the right algorithm that used does
// not claim (no identity uses it, no other key of this command) is one an
// earlier attempt generated and could not use: it is returned with reused
// true rather than left behind while another is made. The URI returned
// keeps u's module path and PIN source.
func NextPKCS11(ctx context.Context, p *pkcs11.Provider, u *hsm.PKCS11URI, alg kel.Algorithm, used func(key string) bool) (nu *hsm.PKCS11URI, key string, reused bool, err error) {
	if u.Object == "" {
		return nil, "", false, hsm.NewURIError(u.String(), fmt.Errorf("%w: no object= label to derive the next key's label from (give --next-key)", hsm.ErrBadURI))
	}
	base, n := nextBase(u.Object)
	for range MaxNextLabels {
		nu := u.WithKey(fmt.Sprintf("%s-next%d", base, n), nil)
		n++
		found, err := p.List(ctx, nu)
		if err != nil {
			return nil, "", false, err
		}
		if len(found) == 0 {
			info, err := p.Generate(ctx, nu, alg)
			if err != nil {
				return nil, "", false, err
			}
			return info.URI, info.Verfer.QB64(), false, nil
		}
		k := found[0]
		if len(found) > 1 || k.Algorithm != alg {
			continue // not one of ours
		}
		if used(k.Verfer.QB64()) {
			continue
		}
		return k.URI, k.Verfer.QB64(), true, nil
	}
	return nil, "", false, hsm.NewURIError(u.String(), fmt.Errorf("%w: labels %s-next1 to -next%d are all taken: give --next-key", hsm.ErrExists, base, n-1))
}

// firstRetired and lastRetired are the PIV retired key-management slots
// next keys go to.
const firstRetired, lastRetired = 0x82, 0x95

// NextPIV makes a next key in a retired slot (82-95) of u's card: the
// first slot that is empty, or that holds a key an earlier attempt made and
// could not use, whichever comes first. Such a key is returned with reused
// true, but only when NextPIV itself made it: the certificate in its slot
// is self-signed with nextPIVName of that slot, for the slot's public key,
// and used does not claim the key; a key a person put in a retired slot
// (any other certificate, or none) is never taken. The new slot's URI keeps
// u's PIN source (or value) as parsed.
func NextPIV(ctx context.Context, p *piv.Provider, u hsm.PIVURI, alg kel.Algorithm, used func(key string) bool) (nu hsm.PIVURI, key string, reused bool, err error) {
	galg := gopiv.AlgorithmEC256
	if alg == kel.Ed25519 {
		galg = gopiv.AlgorithmEd25519
	}
	for slot := uint8(firstRetired); slot <= lastRetired; slot++ {
		nu := u
		nu.Slot = slot
		info, err := p.KeyURI(ctx, nu, false)
		if err == nil {
			if k, ok := madeNextPIV(info, slot, alg); ok && !used(k) {
				return nu, k, true, nil
			}
			continue
		} else if !errors.Is(err, hsm.ErrNotFound) {
			return hsm.PIVURI{}, "", false, err
		}
		s, err := p.GenerateURI(ctx, nu, piv.GenerateOptions{Algorithm: galg, CommonName: nextPIVName(slot)})
		if err != nil {
			return hsm.PIVURI{}, "", false, err
		}
		v, err := hsm.Verfer(s)
		if err != nil {
			return hsm.PIVURI{}, "", false, err
		}
		return nu, v.QB64(), false, nil
	}
	return hsm.PIVURI{}, "", false, hsm.NewURIError(u.String(), fmt.Errorf("%w: no free retired slot (82-95) on the card: give --next-key", hsm.ErrExists))
}

// nextPIVName is the common name of the certificate NextPIV stores beside
// a next key it makes in slot.
func nextPIVName(slot uint8) string {
	return fmt.Sprintf("auths-agent next key, slot %02x", slot)
}

// madeNextPIV reports whether the key in slot (info, read with its
// certificate) is one NextPIV made, of algorithm alg, and returns its CESR
// public key: its certificate names the slot with nextPIVName, is signed
// by its own key, and that key is the slot's.
func madeNextPIV(info piv.KeyInfo, slot uint8, alg kel.Algorithm) (string, bool) {
	key, ok := nextPIVKey(info, slot)
	if !ok {
		return "", false
	}
	if v, err := kel.ParseVerfer(key); err != nil || v.Algorithm() != alg {
		return "", false
	}
	return key, true
}

// nextPIVKey is madeNextPIV for a key of either algorithm.
func nextPIVKey(info piv.KeyInfo, slot uint8) (string, bool) {
	cert := info.Certificate
	if cert == nil || cert.Subject.CommonName != nextPIVName(slot) || cert.Issuer.CommonName != nextPIVName(slot) {
		return "", false
	}
	// Its own signature (CheckSignatureFrom would want a CA certificate).
	if cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil {
		return "", false
	}
	pub, ok := info.Public.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return "", false
	}
	v, err := kel.VerferFromPublicKey(info.Public)
	if err != nil {
		return "", false
	}
	return v.QB64(), true
}

// foundKey is a key found on a token: its URI (with the PIN source of the
// key it was found beside) and CESR public key.
type foundKey struct {
	uri string
	key string
}

// nextKeyMaker is what an Opener needs to make and find next keys; the
// agent serves next-keys only with such an opener.
type nextKeyMaker interface {
	// MakeNext makes (or reuses, see NextPKCS11) a next key beside the key
	// uri names.
	MakeNext(ctx context.Context, uri string, alg kel.Algorithm, used func(key string) bool) (nuri, key string, reused bool, err error)
	// FindNext lists the keys on uri's token that are next keys of uri's
	// key: PKCS#11 keys labelled BASE-nextN, PIV keys NextPIV made in
	// retired slots (its certificate marks them).
	FindNext(ctx context.Context, uri string) ([]foundKey, error)
}

var _ nextKeyMaker = (*TokenOpener)(nil)

// MakeNext implements nextKeyMaker with the hsm backends.
func (o *TokenOpener) MakeNext(ctx context.Context, uri string, alg kel.Algorithm, used func(key string) bool) (string, string, bool, error) {
	switch {
	case strings.HasPrefix(uri, "pkcs11:"):
		u, err := hsm.ParsePKCS11URI(uri)
		if err != nil {
			return "", "", false, err
		}
		p, err := o.module(u)
		if err != nil {
			return "", "", false, err
		}
		nu, key, reused, err := NextPKCS11(ctx, p, u, alg, used)
		if err != nil {
			return "", "", false, err
		}
		return nu.String(), key, reused, nil
	case strings.HasPrefix(uri, "piv:"):
		u, err := hsm.ParsePIVURI(uri)
		if err != nil {
			return "", "", false, err
		}
		p, err := o.pivProvider()
		if err != nil {
			return "", "", false, err
		}
		nu, key, reused, err := NextPIV(ctx, p, u, alg, used)
		if err != nil {
			return "", "", false, err
		}
		return nu.String(), key, reused, nil
	}
	return "", "", false, hsm.NewURIError(uri, fmt.Errorf("%w: not a key URI (want pkcs11: or piv:)", hsm.ErrBadURI))
}

// FindNext implements nextKeyMaker. PKCS#11 public key objects are read
// without logging in; PIV slots are read without the PIN.
func (o *TokenOpener) FindNext(ctx context.Context, uri string) ([]foundKey, error) {
	switch {
	case strings.HasPrefix(uri, "pkcs11:"):
		u, err := hsm.ParsePKCS11URI(uri)
		if err != nil {
			return nil, err
		}
		if u.Object == "" {
			return nil, nil
		}
		p, err := o.module(u)
		if err != nil {
			return nil, err
		}
		keys, err := p.ListPublic(ctx, u.WithKey("", nil))
		if err != nil {
			return nil, err
		}
		base, _ := nextBase(u.Object)
		var out []foundKey
		for _, k := range keys {
			if k.Algorithm == 0 || !strings.HasPrefix(k.Label, base+"-next") || !nextSuffix.MatchString(k.Label) {
				continue
			}
			if b, _ := nextBase(k.Label); b != base {
				continue
			}
			out = append(out, foundKey{uri: u.WithKey(k.Label, k.ID).String(), key: k.Verfer.QB64()})
		}
		return out, nil
	case strings.HasPrefix(uri, "piv:"):
		u, err := hsm.ParsePIVURI(uri)
		if err != nil {
			return nil, err
		}
		p, err := o.pivProvider()
		if err != nil {
			return nil, err
		}
		var out []foundKey
		for slot := uint8(firstRetired); slot <= lastRetired; slot++ {
			nu := u
			nu.Slot = slot
			info, err := p.KeyURI(ctx, nu, false)
			if errors.Is(err, hsm.ErrNotFound) {
				continue
			}
			if err != nil {
				return out, err
			}
			// Only keys NextPIV made: a key a person put in a retired
			// slot (a decryption key, an SSH key, one made with key
			// generate) is not a next key of anything; the config
			// names it when the agent is to hold it.
			key, ok := nextPIVKey(info, slot)
			if !ok {
				continue
			}
			out = append(out, foundKey{uri: nu.String(), key: key})
		}
		return out, nil
	}
	return nil, hsm.NewURIError(uri, fmt.Errorf("%w: not a key URI (want pkcs11: or piv:)", hsm.ErrBadURI))
}
