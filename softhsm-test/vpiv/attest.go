package vpiv

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"time"
)

// Yubico's attestation certificate extensions.
var (
	oidFirmware   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 3}
	oidSerial     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 7}
	oidPolicy     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 8}
	oidFormFactor = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 9}
)

// formFactorUSBAKeychain is the form factor the card claims.
const formFactorUSBAKeychain = 0x01

// notAfter is the end of validity Yubico uses for attestation certificates.
var notAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// makeAttestationKey creates the card's test CA and its attestation key in
// slot f9 with a certificate the CA issued.
func (c *Card) makeAttestationKey() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), c.cfg.Rand)
	if err != nil {
		return err
	}
	start := c.cfg.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	caTmpl := &x509.Certificate{
		SerialNumber:          c.randomSerial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("vpiv Test PIV Root CA Serial %d", c.cfg.Serial)},
		NotBefore:             start,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(c.cfg.Rand, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), c.cfg.Rand)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          c.randomSerial(),
		Subject:               pkix.Name{CommonName: "Yubico PIV Attestation"},
		NotBefore:             start,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
		ExtraExtensions:       c.deviceExtensions(),
	}
	der, err := x509.CreateCertificate(c.cfg.Rand, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return err
	}
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	c.st.Attestation = attestation{CAKey: caKeyDER, CACert: caDER, Key: keyDER, Cert: der}
	return nil
}

// publicKey is the public half of a slot's private key.
func publicKey(priv crypto.PrivateKey) crypto.PublicKey {
	switch k := priv.(type) {
	case *ecdh.PrivateKey:
		return k.PublicKey()
	case crypto.Signer:
		return k.Public()
	}
	return nil
}

// randomSerial is a positive 127-bit certificate serial number.
func (c *Card) randomSerial() *big.Int {
	b := make([]byte, 16)
	if _, err := io.ReadFull(c.cfg.Rand, b); err != nil {
		return big.NewInt(c.cfg.Now().UnixNano())
	}
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

// deviceExtensions are the firmware, serial and form factor extensions.
func (c *Card) deviceExtensions() []pkix.Extension {
	serial, _ := asn1.Marshal(int64(c.cfg.Serial))
	return []pkix.Extension{
		{Id: oidFirmware, Value: append([]byte(nil), c.cfg.Version[:]...)},
		{Id: oidSerial, Value: serial},
		{Id: oidFormFactor, Value: []byte{formFactorUSBAKeychain}},
	}
}

// CACertificatePEM returns the test CA that issued the card's attestation
// certificate (slot f9): the root to verify attestations against.
func (c *Card) CACertificatePEM() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.st.Attestation.CACert})
}

// attest answers the Yubico ATTEST command (00 f9 slot 00) with a DER
// certificate for the key in the slot, signed by the attestation key. Only
// keys generated on the card can be attested.
func (c *Card) attest(cmd command) response {
	if cmd.p2 != 0 || !keySlot(cmd.p1) {
		return status(swWrongP1P2)
	}
	if len(cmd.data) != 0 {
		return status(swWrongLength)
	}
	k := c.st.Slots[slotName(cmd.p1)]
	if k == nil || k.Origin != originGenerated {
		return status(swWrongData)
	}
	priv, err := k.private()
	if err != nil {
		return status(swMemoryFailure)
	}
	pub := publicKey(priv)
	if pub == nil {
		return status(swMemoryFailure)
	}
	issuer, err := x509.ParseCertificate(c.st.Attestation.Cert)
	if err != nil {
		return status(swMemoryFailure)
	}
	attKey, err := x509.ParsePKCS8PrivateKey(c.st.Attestation.Key)
	if err != nil {
		return status(swMemoryFailure)
	}
	tmpl := &x509.Certificate{
		SerialNumber: c.randomSerial(),
		Subject:      pkix.Name{CommonName: fmt.Sprintf("YubiKey PIV Attestation %02x", cmd.p1)},
		NotBefore:    issuer.NotBefore,
		NotAfter:     notAfter,
		ExtraExtensions: append(c.deviceExtensions(),
			pkix.Extension{Id: oidPolicy, Value: []byte{k.PINPolicy, k.TouchPolicy}}),
	}
	der, err := x509.CreateCertificate(c.cfg.Rand, tmpl, issuer, pub, attKey)
	if err != nil {
		return status(swMemoryFailure)
	}
	return ok(der)
}
