package vpiv

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
)

// keyAuthenticate answers GENERAL AUTHENTICATE on a key slot: P1 algorithm,
// P2 slot, template 7c { 82 00, 81 challenge } to sign, or
// 7c { 82 00, 85 peer point } for key agreement. P-256 and P-384 sign a
// digest (DER ECDSA answer); Ed25519 signs the whole message (raw 64 bytes).
func (c *Card) keyAuthenticate(cmd command) response {
	if !keySlot(cmd.p2) {
		return status(swWrongP1P2)
	}
	k := c.st.Slots[slotName(cmd.p2)]
	if k == nil {
		return status(swRefNotFound)
	}
	if cmd.p1 != k.Alg {
		return status(swWrongP1P2)
	}
	items, err := parseDynAuth(cmd.data)
	if err != nil {
		return status(swWrongData)
	}
	if r, has := find(items, tagResponse); !has || len(r) != 0 {
		return status(swWrongData)
	}
	msg, sign := find(items, tagChallenge)
	peer, agree := find(items, tagExp)
	if sign == agree {
		return status(swWrongData)
	}
	if agree && k.Alg == algEd25519 || sign && k.Alg == algX25519 {
		return status(swWrongData)
	}
	if sign && (k.Alg == algP256 && len(msg) > 32 || k.Alg == algP384 && len(msg) > 48) {
		return status(swWrongData)
	}
	if sw := c.checkPIN(k.PINPolicy); sw != swOK {
		return status(sw)
	}
	if k.TouchPolicy == touchAlways || k.TouchPolicy == touchCached {
		if !c.touch(k.TouchPolicy == touchAlways) {
			return status(swSecurityStatus) // as a YubiKey that waited in vain
		}
	}
	priv, err := k.private()
	if err != nil {
		return status(swMemoryFailure)
	}
	var out []byte
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		if agree {
			out, err = ecdhShared(p, peer)
			if err != nil {
				return status(swWrongData)
			}
			break
		}
		if out, err = ecdsa.SignASN1(c.cfg.Rand, p, msg); err != nil {
			return status(swMemoryFailure)
		}
	case ed25519.PrivateKey:
		out = ed25519.Sign(p, msg)
	case *ecdh.PrivateKey:
		pk, err := ecdh.X25519().NewPublicKey(peer)
		if err != nil {
			return status(swWrongData)
		}
		if out, err = p.ECDH(pk); err != nil {
			return status(swWrongData)
		}
	default:
		return status(swMemoryFailure)
	}
	if c.cfg.Latency > 0 {
		c.cfg.Sleep(c.cfg.Latency)
	}
	return ok(tlvBytes(tagDynAuth, tlvBytes(tagResponse, out)))
}

// ecdhShared is the NIST-curve key agreement with an uncompressed peer point.
func ecdhShared(p *ecdsa.PrivateKey, peer []byte) ([]byte, error) {
	k, err := p.ECDH()
	if err != nil {
		return nil, err
	}
	pk, err := k.Curve().NewPublicKey(peer)
	if err != nil {
		return nil, err
	}
	return k.ECDH(pk)
}

// checkPIN enforces a key's PIN policy: "once" needs the PIN verified in
// this session, "always" a VERIFY since the last such operation.
func (c *Card) checkPIN(policy byte) uint16 {
	switch policy {
	case pinNever:
		return swOK
	case pinAlways:
		fresh := c.sess.pinFresh
		c.sess.pinFresh = false
		if !fresh {
			return swSecurityStatus
		}
		return swOK
	}
	if !c.sess.pinVerified {
		return swSecurityStatus
	}
	return swOK
}
