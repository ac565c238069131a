package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	p11 "github.com/miekg/pkcs11"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
)

// PKCS#11 3.0 constants missing from miekg/pkcs11's 2.40 headers.
const (
	ckkECEdwards            = 0x40
	ckmECEdwardsKeyPairGen  = 0x1055
	ckmEdDSA                = 0x1057
	ckuContextSpecific      = 2
	maxObjectsPerFind       = 64
	randomIDSize            = 16
	ckaAlwaysAuthenticate   = p11.CKA_ALWAYS_AUTHENTICATE
	keyTypeUnknownAttribute = ^uint(0)
)

// DER encodings of the curves: CKA_EC_PARAMS values.
var (
	oidP256           = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	oidEd25519        = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}
	oidEd25519Old     = []byte{0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01}
	nameEd25519Params = append([]byte{0x13, 0x0c}, "edwards25519"...)
)

// KeyInfo describes a private key on a token.
type KeyInfo struct {
	Label     string
	ID        []byte
	Algorithm kel.Algorithm // 0 when the key type is not supported
	Type      string        // "ed25519", "p256", or what else it is ("rsa", "ec (other curve)")
	Verfer    kel.Verfer    // the CESR public key; zero when unsupported
	Public    crypto.PublicKey
	URI       *hsm.PKCS11URI // names this key (label and id), with the PIN source of the query
}

// IDHex returns the key id in hex.
func (k KeyInfo) IDHex() string { return hex.EncodeToString(k.ID) }

// keyObject is a private key found on a session.
type keyObject struct {
	h          p11.ObjectHandle
	info       KeyInfo
	alwaysAuth bool
}

// getAttr reads one attribute; missing or unreadable attributes give nil.
func (p *Provider) getAttr(sh p11.SessionHandle, o p11.ObjectHandle, typ uint) []byte {
	a, err := p.ctx.GetAttributeValue(sh, o, []*p11.Attribute{p11.NewAttribute(typ, nil)})
	if err != nil || len(a) != 1 {
		return nil
	}
	return a[0].Value
}

// find returns up to max+1 objects matching tmpl.
func (p *Provider) find(sh p11.SessionHandle, tmpl []*p11.Attribute, max int) ([]p11.ObjectHandle, error) {
	if err := p.ctx.FindObjectsInit(sh, tmpl); err != nil {
		return nil, fmt.Errorf("C_FindObjectsInit: %w", err)
	}
	var all []p11.ObjectHandle
	for len(all) <= max {
		hs, _, err := p.ctx.FindObjects(sh, maxObjectsPerFind)
		if err != nil {
			p.ctx.FindObjectsFinal(sh)
			return nil, fmt.Errorf("C_FindObjects: %w", err)
		}
		if len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	if err := p.ctx.FindObjectsFinal(sh); err != nil {
		return nil, fmt.Errorf("C_FindObjectsFinal: %w", err)
	}
	return all, nil
}

func keyTemplate(class uint, u *hsm.PKCS11URI) []*p11.Attribute {
	t := []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, class)}
	if u.Object != "" {
		t = append(t, p11.NewAttribute(p11.CKA_LABEL, u.Object))
	}
	if u.HasID {
		t = append(t, p11.NewAttribute(p11.CKA_ID, u.ID))
	}
	return t
}

// keyName names the key the URI asks for.
func keyName(u *hsm.PKCS11URI) string {
	var parts []string
	if u.Object != "" {
		parts = append(parts, fmt.Sprintf("labelled %q", u.Object))
	}
	if u.HasID {
		parts = append(parts, "with id "+hex.EncodeToString(u.ID))
	}
	return strings.Join(parts, " and ")
}

var classNames = map[uint]string{
	p11.CKO_DATA: "a data object", p11.CKO_CERTIFICATE: "a certificate", p11.CKO_PUBLIC_KEY: "a public key",
	p11.CKO_PRIVATE_KEY: "a private key", p11.CKO_SECRET_KEY: "a secret key",
}

// findKey finds the one private key u names on session sh of token t.
func (t *token) findKey(sh p11.SessionHandle, u *hsm.PKCS11URI) (*keyObject, error) {
	p := t.p
	hs, err := p.find(sh, keyTemplate(p11.CKO_PRIVATE_KEY, u), 1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.name, err)
	}
	switch {
	case len(hs) > 1:
		return nil, fmt.Errorf("%w: several private keys %s on %s: add id= to the URI", hsm.ErrAmbiguous, keyName(u), t.name)
	case len(hs) == 0:
		tmpl := keyTemplate(p11.CKO_PRIVATE_KEY, u)[1:]
		others, _ := p.find(sh, tmpl, 4)
		var what []string
		for _, o := range others {
			c := p.getAttr(sh, o, p11.CKA_CLASS)
			name := "an object of unknown class"
			if len(c) > 0 {
				if n, ok := classNames[uint(bytesToUint(c))]; ok {
					name = n
				}
			}
			what = append(what, name)
		}
		if len(what) > 0 {
			return nil, fmt.Errorf("%w: the object %s on %s is %s, not a private key", hsm.ErrUnsupportedKey, keyName(u), t.name, strings.Join(what, " and "))
		}
		return nil, fmt.Errorf("%w: no private key %s on %s", hsm.ErrNotFound, keyName(u), t.name)
	}
	k, err := t.readKey(sh, hs[0], u)
	if err != nil {
		return nil, err
	}
	if k.info.Algorithm == 0 {
		return nil, fmt.Errorf("%w: key %s on %s is %s: want Ed25519 or P-256", hsm.ErrUnsupportedKey, keyName(u), t.name, k.info.Type)
	}
	return k, nil
}

// readKey reads what a private key is: label, id, type and public key (from
// the public key object with the same id, or the private key itself).
func (t *token) readKey(sh p11.SessionHandle, h p11.ObjectHandle, u *hsm.PKCS11URI) (*keyObject, error) {
	p := t.p
	k := &keyObject{h: h}
	k.info.Label = string(p.getAttr(sh, h, p11.CKA_LABEL))
	k.info.ID = p.getAttr(sh, h, p11.CKA_ID)
	if v := p.getAttr(sh, h, ckaAlwaysAuthenticate); len(v) > 0 && v[0] != 0 {
		k.alwaysAuth = true
	}
	kt := uint(keyTypeUnknownAttribute)
	if v := p.getAttr(sh, h, p11.CKA_KEY_TYPE); len(v) > 0 {
		kt = uint(bytesToUint(v))
	}
	k.info.URI = u.WithKey(k.info.Label, k.info.ID)
	switch kt {
	case p11.CKK_EC, ckkECEdwards:
	case p11.CKK_RSA:
		k.info.Type = "rsa"
		return k, nil
	default:
		k.info.Type = fmt.Sprintf("key type 0x%x", kt)
		return k, nil
	}
	params, point := p.getAttr(sh, h, p11.CKA_EC_PARAMS), p.getAttr(sh, h, p11.CKA_EC_POINT)
	if point == nil {
		tmpl := []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY), p11.NewAttribute(p11.CKA_KEY_TYPE, kt)}
		if len(k.info.ID) > 0 {
			tmpl = append(tmpl, p11.NewAttribute(p11.CKA_ID, k.info.ID))
		} else {
			tmpl = append(tmpl, p11.NewAttribute(p11.CKA_LABEL, k.info.Label))
		}
		pubs, err := p.find(sh, tmpl, 1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.name, err)
		}
		if len(pubs) == 1 {
			point = p.getAttr(sh, pubs[0], p11.CKA_EC_POINT)
			if params == nil {
				params = p.getAttr(sh, pubs[0], p11.CKA_EC_PARAMS)
			}
		}
	}
	pub, typ := parsePublic(kt, params, point)
	k.info.Type = typ
	if pub == nil {
		return k, nil
	}
	v, err := kel.VerferFromPublicKey(pub)
	if err != nil {
		k.info.Type = err.Error()
		return k, nil
	}
	k.info.Public, k.info.Verfer, k.info.Algorithm = pub, v, v.Algorithm()
	return k, nil
}

// parsePublic decodes CKA_EC_POINT (DER OCTET STRING or raw) for Ed25519
// and P-256 keys; for anything else it says what the key is.
func parsePublic(kt uint, params, point []byte) (crypto.PublicKey, string) {
	if point == nil {
		return nil, "key with no readable public key (no public key object with the same id)"
	}
	if kt == ckkECEdwards {
		if len(point) == 2+ed25519.PublicKeySize && point[0] == 0x04 && point[1] == ed25519.PublicKeySize {
			point = point[2:]
		}
		known := params == nil || bytes.Equal(params, oidEd25519) || bytes.Equal(params, oidEd25519Old) || bytes.Equal(params, nameEd25519Params)
		if !known || len(point) != ed25519.PublicKeySize {
			return nil, "EdDSA key on another curve (Ed448?)"
		}
		return ed25519.PublicKey(bytes.Clone(point)), "ed25519"
	}
	if len(point) == 67 && point[0] == 0x04 && point[1] == 0x41 {
		point = point[2:]
	}
	if params != nil && params[0] == 0x06 && !bytes.Equal(params, oidP256) {
		return nil, "ec (a curve other than P-256)"
	}
	// Explicit curve parameters (ykcs11) are accepted when the point is on P-256.
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic256(), point)
	if err != nil {
		return nil, "ec (a curve other than P-256, or a bad point)"
	}
	return pub, "p256"
}

func bytesToUint(b []byte) uint64 {
	// CK_ULONG values come in host byte order (little-endian here).
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// withSession runs f on a session of the token u names.
func (p *Provider) withSession(ctx context.Context, u *hsm.PKCS11URI, f func(t *token, sh p11.SessionHandle) error) error {
	if err := p.checkURI(u); err != nil {
		return hsm.NewURIError(u.String(), err)
	}
	if err := p.enter(); err != nil {
		return hsm.NewURIError(u.String(), err)
	}
	defer p.leave()
	t, err := p.findToken(u)
	if err != nil {
		return hsm.NewURIError(u.String(), err)
	}
	s, err := t.acquire(ctx, u.PIN)
	if err != nil {
		return hsm.NewURIError(u.String(), err)
	}
	err = f(t, s.h)
	t.release(s, err)
	if err != nil {
		return hsm.NewURIError(u.String(), err)
	}
	return nil
}

// List returns the private keys on the token u names (object= and id=
// narrow the list).
func (p *Provider) List(ctx context.Context, u *hsm.PKCS11URI) ([]KeyInfo, error) {
	var keys []KeyInfo
	err := p.withSession(ctx, u, func(t *token, sh p11.SessionHandle) error {
		hs, err := p.find(sh, keyTemplate(p11.CKO_PRIVATE_KEY, u), 1<<20)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		for _, h := range hs {
			k, err := t.readKey(sh, h, u.WithKey("", nil))
			if err != nil {
				return err
			}
			keys = append(keys, k.info)
		}
		return nil
	})
	slices.SortFunc(keys, func(a, b KeyInfo) int {
		if c := strings.Compare(a.Label, b.Label); c != 0 {
			return c
		}
		return bytes.Compare(a.ID, b.ID)
	})
	return keys, err
}

// Generate makes a key pair on the token u names, labelled u's object=
// (required) with u's id= or a random 16-byte id. A label already used by
// any object on the token is refused (hsm.ErrExists).
func (p *Provider) Generate(ctx context.Context, u *hsm.PKCS11URI, alg kel.Algorithm) (KeyInfo, error) {
	if u.Object == "" {
		return KeyInfo{}, hsm.NewURIError(u.String(), fmt.Errorf("%w: no object= (the new key's label)", hsm.ErrBadURI))
	}
	var mech uint
	var kt uint
	var params []byte
	switch alg {
	case kel.Ed25519:
		mech, kt, params = ckmECEdwardsKeyPairGen, ckkECEdwards, oidEd25519
	case kel.P256:
		mech, kt, params = p11.CKM_EC_KEY_PAIR_GEN, p11.CKK_EC, oidP256
	default:
		return KeyInfo{}, hsm.NewURIError(u.String(), fmt.Errorf("%w: algorithm %v (want ed25519 or p256)", hsm.ErrUnsupportedKey, alg))
	}
	id := u.ID
	if !u.HasID {
		id = make([]byte, randomIDSize)
		rand.Read(id)
	}
	var info KeyInfo
	err := p.withSession(ctx, u, func(t *token, sh p11.SessionHandle) error {
		existing, err := p.find(sh, []*p11.Attribute{p11.NewAttribute(p11.CKA_LABEL, u.Object)}, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if len(existing) > 0 {
			return fmt.Errorf("%w: a key labelled %q is already on %s", hsm.ErrExists, u.Object, t.name)
		}
		pubT := []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY), p11.NewAttribute(p11.CKA_KEY_TYPE, kt),
			p11.NewAttribute(p11.CKA_TOKEN, true), p11.NewAttribute(p11.CKA_VERIFY, true),
			p11.NewAttribute(p11.CKA_EC_PARAMS, params), p11.NewAttribute(p11.CKA_LABEL, u.Object),
			p11.NewAttribute(p11.CKA_ID, id),
		}
		privT := []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY), p11.NewAttribute(p11.CKA_KEY_TYPE, kt),
			p11.NewAttribute(p11.CKA_TOKEN, true), p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, true), p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
			p11.NewAttribute(p11.CKA_SIGN, true), p11.NewAttribute(p11.CKA_LABEL, u.Object),
			p11.NewAttribute(p11.CKA_ID, id),
		}
		_, priv, err := p.ctx.GenerateKeyPair(sh, []*p11.Mechanism{p11.NewMechanism(mech, nil)}, pubT, privT)
		if err != nil {
			var code p11.Error
			if errors.As(err, &code) && (code == p11.CKR_MECHANISM_INVALID || code == p11.CKR_CURVE_NOT_SUPPORTED) {
				return fmt.Errorf("%w: %s cannot generate %v keys: %v", hsm.ErrUnsupportedKey, t.name, alg, err)
			}
			return fmt.Errorf("%s: C_GenerateKeyPair: %w", t.name, err)
		}
		k, err := t.readKey(sh, priv, u)
		if err != nil {
			return err
		}
		info = k.info
		if info.Algorithm != alg {
			return fmt.Errorf("%s: generated a %s key, wanted %v", t.name, info.Type, alg)
		}
		return nil
	})
	return info, err
}
