package vpiv

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"fmt"
)

// Asymmetric algorithms (NIST SP 800-78-4 and Yubico's 5.7 extensions).
// RSA is not emulated.
const (
	algP256    = 0x11
	algP384    = 0x14
	algEd25519 = 0xe0
	algX25519  = 0xe1
)

// PIN policies and key origins (Yubico).
const (
	pinDefault = 0x00
	pinNever   = 0x01
	pinOnce    = 0x02
	pinAlways  = 0x03

	originGenerated = 0x01
	originImported  = 0x02
)

// Tags of GENERATE ASYMMETRIC, IMPORT KEY and GET METADATA.
const (
	tagGenTemplate = 0xac
	tagAlgorithm   = 0x80
	tagPINPolicy   = 0xaa
	tagTouchPolicy = 0xab
	tagPublicKey   = 0x7f49
	tagPoint       = 0x86

	mdAlgorithm = 0x01
	mdPolicy    = 0x02
	mdOrigin    = 0x03
	mdPublic    = 0x04
	mdDefault   = 0x05
	mdRetries   = 0x06

	slotAttestation = 0xf9
)

// keySlot reports whether ref names a slot that can hold a user key.
func keySlot(ref byte) bool {
	switch {
	case ref == 0x9a, ref == 0x9c, ref == 0x9d, ref == 0x9e:
		return true
	case ref >= 0x82 && ref <= 0x95:
		return true
	}
	return false
}

func slotName(ref byte) string { return fmt.Sprintf("%02x", ref) }

// supportedAlg reports whether the card emulates alg at its firmware version.
func (c *Card) supportedAlg(alg byte) bool {
	switch alg {
	case algP256, algP384:
		return true
	case algEd25519, algX25519:
		return c.atLeast(5, 7, 0)
	}
	return false
}

// resolvePolicies validates the PIN and touch policies of a new key and
// replaces "default" with the slot's default, as a YubiKey does.
func (c *Card) resolvePolicies(slot, pp, tp byte) (byte, byte, bool) {
	switch pp {
	case pinDefault:
		pp = pinOnce
		switch slot {
		case 0x9c:
			pp = pinAlways
		case 0x9e:
			pp = pinNever
		}
	case pinNever, pinOnce, pinAlways:
	default:
		return 0, 0, false
	}
	switch tp {
	case touchDefault:
		tp = touchNever
	case touchNever, touchAlways, touchCached:
	default:
		return 0, 0, false
	}
	return pp, tp, true
}

// policyTLVs reads the optional one-byte aa and ab policies.
func policyTLVs(items []tlv) (pp, tp byte, ok bool) {
	if v, has := find(items, tagPINPolicy); has {
		if len(v) != 1 {
			return 0, 0, false
		}
		pp = v[0]
	}
	if v, has := find(items, tagTouchPolicy); has {
		if len(v) != 1 {
			return 0, 0, false
		}
		tp = v[0]
	}
	return pp, tp, true
}

// generate answers GENERATE ASYMMETRIC KEY PAIR: 00 47 00 slot with the
// template ac { 80 alg, aa pin policy, ab touch policy }.
func (c *Card) generate(cmd command) response {
	if cmd.p1 != 0 || !keySlot(cmd.p2) {
		return status(swWrongP1P2)
	}
	if !c.sess.mgmtAuth {
		return status(swSecurityStatus)
	}
	inner, err := parseOne(cmd.data, tagGenTemplate)
	if err != nil {
		return status(swWrongData)
	}
	items, err := parseTLVs(inner)
	if err != nil {
		return status(swWrongData)
	}
	a, has := find(items, tagAlgorithm)
	if !has || len(a) != 1 || !c.supportedAlg(a[0]) {
		return status(swWrongData)
	}
	pp, tp, good := policyTLVs(items)
	if !good {
		return status(swWrongData)
	}
	if pp, tp, good = c.resolvePolicies(cmd.p2, pp, tp); !good {
		return status(swWrongData)
	}
	priv, err := newPrivateKey(a[0], c.cfg)
	if err != nil {
		return status(swMemoryFailure)
	}
	k, err := newSlotKey(a[0], pp, tp, originGenerated, priv)
	if err != nil {
		return status(swMemoryFailure)
	}
	c.st.Slots[slotName(cmd.p2)] = k
	pub, err := publicPoint(priv)
	if err != nil {
		return status(swMemoryFailure)
	}
	return c.commit(ok(tlvBytes(tagPublicKey, tlvBytes(tagPoint, pub))))
}

// importKey answers the Yubico IMPORT ASYMMETRIC KEY command: P1 algorithm,
// P2 slot, private key TLV (06 EC scalar, 07 Ed25519 seed, 08 X25519) and
// the optional policies.
func (c *Card) importKey(cmd command) response {
	if !keySlot(cmd.p2) {
		return status(swWrongP1P2)
	}
	if !c.supportedAlg(cmd.p1) {
		return status(swWrongP1P2)
	}
	if !c.sess.mgmtAuth {
		return status(swSecurityStatus)
	}
	items, err := parseTLVs(cmd.data)
	if err != nil {
		return status(swWrongData)
	}
	pp, tp, good := policyTLVs(items)
	if !good {
		return status(swWrongData)
	}
	if pp, tp, good = c.resolvePolicies(cmd.p2, pp, tp); !good {
		return status(swWrongData)
	}
	var priv crypto.PrivateKey
	switch cmd.p1 {
	case algP256, algP384:
		curve := elliptic.P256()
		if cmd.p1 == algP384 {
			curve = elliptic.P384()
		}
		d, has := find(items, 0x06)
		if !has {
			return status(swWrongData)
		}
		if priv, err = ecdsa.ParseRawPrivateKey(curve, d); err != nil {
			return status(swWrongData)
		}
	case algEd25519:
		d, has := find(items, 0x07)
		if !has || len(d) != ed25519.SeedSize {
			return status(swWrongData)
		}
		priv = ed25519.NewKeyFromSeed(d)
	case algX25519:
		d, has := find(items, 0x08)
		if !has {
			return status(swWrongData)
		}
		if priv, err = ecdh.X25519().NewPrivateKey(d); err != nil {
			return status(swWrongData)
		}
	}
	k, err := newSlotKey(cmd.p1, pp, tp, originImported, priv)
	if err != nil {
		return status(swMemoryFailure)
	}
	c.st.Slots[slotName(cmd.p2)] = k
	return c.commit(ok(nil))
}

// newPrivateKey generates a key for alg.
func newPrivateKey(alg byte, cfg Config) (crypto.PrivateKey, error) {
	switch alg {
	case algP256:
		return ecdsa.GenerateKey(elliptic.P256(), cfg.Rand)
	case algP384:
		return ecdsa.GenerateKey(elliptic.P384(), cfg.Rand)
	case algEd25519:
		_, k, err := ed25519.GenerateKey(cfg.Rand)
		return k, err
	case algX25519:
		return ecdh.X25519().GenerateKey(cfg.Rand)
	}
	return nil, fmt.Errorf("algorithm %02x not emulated", alg)
}

func newSlotKey(alg, pp, tp, origin byte, priv crypto.PrivateKey) (*slotKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return &slotKey{Alg: alg, PINPolicy: pp, TouchPolicy: tp, Origin: origin, PKCS8: der}, nil
}

// private decodes the key of a slot.
func (k *slotKey) private() (crypto.PrivateKey, error) {
	return x509.ParsePKCS8PrivateKey(k.PKCS8)
}

// publicPoint is the public key as PIV encodes it under tag 86: an
// uncompressed point for NIST curves, 32 bytes for Ed25519 and X25519.
func publicPoint(priv crypto.PrivateKey) ([]byte, error) {
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		return k.PublicKey.Bytes()
	case ed25519.PrivateKey:
		return append([]byte(nil), k[32:]...), nil
	case *ecdh.PrivateKey:
		return k.PublicKey().Bytes(), nil
	}
	return nil, fmt.Errorf("unexpected key type %T", priv)
}

// metadata answers the Yubico GET METADATA command (00 f7 00 ref).
func (c *Card) metadata(cmd command) response {
	if cmd.p1 != 0 {
		return status(swWrongP1P2)
	}
	if len(cmd.data) != 0 {
		return status(swWrongLength)
	}
	if !c.atLeast(5, 3, 0) {
		return status(swInsNotSupported)
	}
	boolByte := func(b bool) byte {
		if b {
			return 1
		}
		return 0
	}
	ref := cmd.p2
	switch {
	case ref == refPIN || ref == refPUK:
		sec := c.st.PIN
		if ref == refPUK {
			sec = c.st.PUK
		}
		var out []byte
		out = appendTLV(out, mdAlgorithm, []byte{0xff})
		out = appendTLV(out, mdPolicy, []byte{0x00, 0x00})
		out = appendTLV(out, mdDefault, []byte{boolByte(!sec.NotDefault)})
		out = appendTLV(out, mdRetries, []byte{byte(sec.MaxTries), byte(sec.Tries)})
		return ok(out)
	case ref == slotCardManagement:
		def := c.st.MgmtAlg == alg3DES && string(c.st.MgmtKey) == string(DefaultManagementKey)
		var out []byte
		out = appendTLV(out, mdAlgorithm, []byte{c.st.MgmtAlg})
		out = appendTLV(out, mdPolicy, []byte{0x00, c.st.MgmtTouch})
		out = appendTLV(out, mdDefault, []byte{boolByte(def)})
		return ok(out)
	case ref == slotAttestation:
		priv, err := x509.ParsePKCS8PrivateKey(c.st.Attestation.Key)
		if err != nil {
			return status(swMemoryFailure)
		}
		return c.keyMetadata(&slotKey{Alg: algP256, PINPolicy: pinNever, TouchPolicy: touchNever, Origin: originImported}, priv)
	case keySlot(ref):
		k := c.st.Slots[slotName(ref)]
		if k == nil {
			return status(swRefNotFound)
		}
		priv, err := k.private()
		if err != nil {
			return status(swMemoryFailure)
		}
		return c.keyMetadata(k, priv)
	}
	return status(swRefNotFound)
}

func (c *Card) keyMetadata(k *slotKey, priv crypto.PrivateKey) response {
	pub, err := publicPoint(priv)
	if err != nil {
		return status(swMemoryFailure)
	}
	var out []byte
	out = appendTLV(out, mdAlgorithm, []byte{k.Alg})
	out = appendTLV(out, mdPolicy, []byte{k.PINPolicy, k.TouchPolicy})
	out = appendTLV(out, mdOrigin, []byte{k.Origin})
	out = appendTLV(out, mdPublic, tlvBytes(tagPoint, pub))
	return ok(out)
}
