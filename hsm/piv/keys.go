package piv

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/go-piv/piv-go/v2/piv"
)

// KeyInfo describes the key in a slot.
type KeyInfo struct {
	Slot        uint8
	Algorithm   piv.Algorithm // AlgorithmEC256 or AlgorithmEd25519 for keys we sign with
	PINPolicy   piv.PINPolicy // 0 when the card does not say (firmware below 4.3, imported keys)
	TouchPolicy piv.TouchPolicy
	Public      crypto.PublicKey
	// Source says where Public came from: "metadata" (firmware 5.3+),
	// "certificate" (the certificate stored in the slot) or "attestation".
	Source string
	// Certificate is the certificate stored in the slot, when asked for and
	// present.
	Certificate *x509.Certificate
	// Attestation is the card's attestation of the slot, when asked for;
	// AttestationSigner is the certificate of the card's attestation key
	// (slot f9) that signed it, the intermediate up to the vendor's CA.
	Attestation       *x509.Certificate
	AttestationSigner *x509.Certificate
}

// AlgorithmName names a piv-go algorithm for people: "P-256", "Ed25519", ….
func AlgorithmName(a piv.Algorithm) string {
	switch a {
	case piv.AlgorithmEC256:
		return "P-256"
	case piv.AlgorithmEC384:
		return "P-384"
	case piv.AlgorithmEd25519:
		return "Ed25519"
	case piv.AlgorithmX25519:
		return "X25519"
	case piv.AlgorithmRSA1024:
		return "RSA-1024"
	case piv.AlgorithmRSA2048:
		return "RSA-2048"
	case piv.AlgorithmRSA3072:
		return "RSA-3072"
	case piv.AlgorithmRSA4096:
		return "RSA-4096"
	}
	return fmt.Sprintf("algorithm %d", int(a))
}

// pivSlot returns piv-go's slot for a slot number checked by
// hsm.ValidPIVSlot.
func pivSlot(n uint8) (piv.Slot, error) {
	switch n {
	case 0x9a:
		return piv.SlotAuthentication, nil
	case 0x9c:
		return piv.SlotSignature, nil
	case 0x9d:
		return piv.SlotKeyManagement, nil
	case 0x9e:
		return piv.SlotCardAuthentication, nil
	}
	if s, ok := piv.RetiredKeyManagementSlot(uint32(n)); ok {
		return s, nil
	}
	return piv.Slot{}, fmt.Errorf("%w: slot %02x: want 9a, 9c, 9d, 9e or 82–95", hsm.ErrBadURI, n)
}

// Slots lists the slots a signing key may live in, in the order listed.
func Slots() []uint8 {
	s := []uint8{0x9a, 0x9c, 0x9d, 0x9e}
	for n := uint8(0x82); n <= 0x95; n++ {
		s = append(s, n)
	}
	return s
}

var errEmptySlot = errors.New("slot is empty")

// slotInfo reads what the card says about the key in slot: GET METADATA on
// firmware 5.3+, else the slot's certificate, else its attestation. It
// returns errEmptySlot (matching hsm.ErrNotFound) for an empty slot.
func slotInfo(yk *piv.YubiKey, n uint8, withCert, withAttest bool) (KeyInfo, error) {
	slot, err := pivSlot(n)
	if err != nil {
		return KeyInfo{}, err
	}
	info := KeyInfo{Slot: n}
	if atLeast(yk.Version(), 5, 3) {
		ki, err := yk.KeyInfo(slot)
		if errors.Is(err, piv.ErrNotFound) {
			return KeyInfo{}, errEmptySlot
		}
		if err != nil {
			return KeyInfo{}, fmt.Errorf("reading metadata of slot %02x: %w", n, err)
		}
		info.Algorithm, info.PINPolicy, info.TouchPolicy = ki.Algorithm, ki.PINPolicy, ki.TouchPolicy
		info.Public, info.Source = ki.PublicKey, "metadata"
	}
	if info.Public == nil || withCert {
		cert, err := yk.Certificate(slot)
		switch {
		case err == nil:
			info.Certificate = cert
			if info.Public == nil {
				info.Public, info.Source = cert.PublicKey, "certificate"
			}
		case errors.Is(err, piv.ErrNotFound):
		default:
			return KeyInfo{}, fmt.Errorf("reading the certificate of slot %02x: %w", n, err)
		}
	}
	if info.Public == nil || info.PINPolicy == 0 || withAttest {
		att, err := yk.Attest(slot)
		switch {
		case err == nil:
			info.Attestation = att
			if withAttest {
				f9, err := yk.AttestationCertificate()
				if err != nil {
					return KeyInfo{}, fmt.Errorf("reading the attestation certificate (slot f9): %w", err)
				}
				info.AttestationSigner = f9
			}
			if info.Public == nil {
				info.Public, info.Source = att.PublicKey, "attestation"
			}
			if info.PINPolicy == 0 {
				info.PINPolicy, info.TouchPolicy = attestedPolicies(att)
			}
		case errors.Is(err, piv.ErrNotFound) || contains(err, "6d00", "6a80"):
			if withAttest && info.Public != nil {
				return KeyInfo{}, fmt.Errorf("attesting slot %02x: the card cannot attest it (imported key or old firmware): %w", n, err)
			}
		default:
			if info.Public == nil || withAttest {
				return KeyInfo{}, fmt.Errorf("attesting slot %02x: %w", n, err)
			}
		}
	}
	if info.Public == nil {
		return KeyInfo{}, errEmptySlot
	}
	if info.Algorithm == 0 {
		info.Algorithm = algorithmOf(info.Public)
	}
	return info, nil
}

func algorithmOf(pub crypto.PublicKey) piv.Algorithm {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return piv.AlgorithmEd25519
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return piv.AlgorithmEC256
		case elliptic.P384():
			return piv.AlgorithmEC384
		}
	}
	return 0
}

// oidYubicoPolicy is the attestation certificate extension holding the
// slot's PIN and touch policies (one byte each).
var oidYubicoPolicy = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 8}

// attestedPolicies reads the PIN and touch policies from an attestation
// certificate; zeros when absent.
func attestedPolicies(cert *x509.Certificate) (piv.PINPolicy, piv.TouchPolicy) {
	for _, e := range cert.Extensions {
		if !e.Id.Equal(oidYubicoPolicy) || len(e.Value) != 2 {
			continue
		}
		var pp piv.PINPolicy
		var tp piv.TouchPolicy
		if e.Value[0] >= 1 && e.Value[0] <= 5 {
			pp = piv.PINPolicy(e.Value[0]) // piv-go's constants follow Yubico's bytes
		}
		if e.Value[1] >= 1 && e.Value[1] <= 3 {
			tp = piv.TouchPolicy(e.Value[1])
		}
		return pp, tp
	}
	return 0, 0
}

// Key reads what the card says about the key the URI names: algorithm,
// policies, public key, and the slot's certificate. With attest, it also
// asks the card for an attestation certificate of the slot.
func (p *Provider) Key(ctx context.Context, uri string, attest bool) (KeyInfo, error) {
	u, err := hsm.ParsePIVURI(uri)
	if err != nil {
		return KeyInfo{}, err
	}
	return p.KeyURI(ctx, u, attest)
}

// KeyURI is Key for a parsed URI.
func (p *Provider) KeyURI(ctx context.Context, u hsm.PIVURI, attest bool) (KeyInfo, error) {
	u, c, err := p.resolveURI(ctx, u)
	if err != nil {
		return KeyInfo{}, err
	}
	var info KeyInfo
	err = c.do(ctx, func(yk *piv.YubiKey) (err error) {
		info, err = slotInfo(yk, u.Slot, true, attest)
		return err
	})
	if err != nil {
		return KeyInfo{}, hsm.NewURIError(u.String(), slotErr(u.Slot, err))
	}
	return info, nil
}

// slotErr makes an empty-slot error say what to do.
func slotErr(slot uint8, err error) error {
	if errors.Is(err, errEmptySlot) {
		return fmt.Errorf("%w: slot %02x is empty (generate a key there: auths-agent key generate)", hsm.ErrNotFound, slot)
	}
	return err
}

// resolveURI finds the card of u (the only one present when the URI
// names no serial). The returned URI has its serial filled in.
func (p *Provider) resolveURI(ctx context.Context, u hsm.PIVURI) (hsm.PIVURI, *card, error) {
	if !hsm.ValidPIVSlot(u.Slot) {
		return hsm.PIVURI{}, nil, hsm.NewURIError(u.String(), fmt.Errorf("%w: slot %02x: want 9a, 9c, 9d, 9e or 82–95", hsm.ErrBadURI, u.Slot))
	}
	if !u.HasSerial {
		s, err := p.onlySerial(ctx)
		if err != nil {
			return hsm.PIVURI{}, nil, hsm.NewURIError(u.String(), err)
		}
		u.Serial, u.HasSerial = s, true
		u.PIN.For = cardName(s)
	}
	c, err := p.card(u.Serial)
	if err != nil {
		return hsm.PIVURI{}, nil, hsm.NewURIError(u.String(), err)
	}
	return u, c, nil
}

func cardName(serial uint32) string { return fmt.Sprintf("PIV card %d", serial) }
