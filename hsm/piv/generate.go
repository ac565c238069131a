package piv

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/go-piv/piv-go/v2/piv"
)

// GenerateOptions choose the key Generate makes.
type GenerateOptions struct {
	Algorithm   piv.Algorithm   // piv.AlgorithmEC256 (zero means this) or piv.AlgorithmEd25519 (firmware 5.7+)
	PINPolicy   piv.PINPolicy   // zero means piv.PINPolicyOnce
	TouchPolicy piv.TouchPolicy // zero means piv.TouchPolicyNever
	// ManagementKey authenticates to the card (3DES or AES, 16, 24 or 32
	// bytes); nil means the factory default key. See ManagementKeyFrom.
	ManagementKey []byte
	// Overwrite replaces a key already in the slot; without it Generate
	// refuses (hsm.ErrExists).
	Overwrite bool
	// CommonName is the subject and issuer common name of the self-signed
	// certificate stored in the slot; empty means "auths-agent key, card
	// SERIAL slot SLOT". It tells later readers what made the key (the
	// agent marks the next keys it makes, see agent.NextPIV).
	CommonName string
}

// Generate makes a new key in the slot the URI names, after management-key
// authentication, and stores a self-signed certificate of it in the slot
// (signed by the new key, so the PIN and a touch may be needed) so that
// its public key can be read back on any firmware; 5.3+ also keeps it in
// the slot's metadata. The PIN (from the URI or the prompt) is checked
// before anything is written, so a wrong PIN leaves the slot as it was.
func (p *Provider) Generate(ctx context.Context, uri string, o GenerateOptions) (*Signer, error) {
	u, err := hsm.ParsePIVURI(uri)
	if err != nil {
		return nil, err
	}
	return p.GenerateURI(ctx, u, o)
}

// GenerateURI is Generate for a parsed URI.
func (p *Provider) GenerateURI(ctx context.Context, u hsm.PIVURI, o GenerateOptions) (*Signer, error) {
	u, c, err := p.resolveURI(ctx, u)
	if err != nil {
		return nil, err
	}
	if o.Algorithm == 0 {
		o.Algorithm = piv.AlgorithmEC256
	}
	if o.PINPolicy == 0 {
		o.PINPolicy = piv.PINPolicyOnce
	}
	if o.TouchPolicy == 0 {
		o.TouchPolicy = piv.TouchPolicyNever
	}
	mk := o.ManagementKey
	if mk == nil {
		mk = piv.DefaultManagementKey
	}
	slot, err := pivSlot(u.Slot)
	if err != nil {
		return nil, hsm.NewURIError(u.String(), err)
	}
	var s *Signer
	err = c.do(ctx, func(yk *piv.YubiKey) error {
		var err error
		s, err = c.generateLocked(ctx, yk, u, slot, o, mk)
		return err
	})
	if err != nil {
		return nil, hsm.NewURIError(u.String(), err)
	}
	return s, nil
}

func (c *card) generateLocked(ctx context.Context, yk *piv.YubiKey, u hsm.PIVURI, slot piv.Slot, o GenerateOptions, mk []byte) (*Signer, error) {
	v := yk.Version()
	switch o.Algorithm {
	case piv.AlgorithmEC256:
	case piv.AlgorithmEd25519:
		if !atLeast(v, 5, 7) {
			return nil, fmt.Errorf("%w: Ed25519 needs YubiKey firmware 5.7 or newer; this card runs %s (use P-256)", hsm.ErrUnsupportedKey, versionString(v))
		}
	default:
		return nil, fmt.Errorf("%w: %s (auths-agent generates P-256 or Ed25519)", hsm.ErrUnsupportedKey, AlgorithmName(o.Algorithm))
	}
	if !o.Overwrite {
		info, err := slotInfo(yk, u.Slot, false, false)
		switch {
		case err == nil:
			return nil, fmt.Errorf("%w: slot %02x holds a %s key (choose another slot, or overwrite it on purpose: key generate --overwrite)", hsm.ErrExists, u.Slot, AlgorithmName(info.Algorithm))
		case !errors.Is(err, errEmptySlot):
			return nil, err
		}
	}
	a := &pinAttempt{spec: u.PIN}
	if o.PINPolicy != piv.PINPolicyNever {
		if err := c.verifyPINLocked(ctx, yk, a); err != nil {
			return nil, err
		}
	}
	pub, err := yk.GenerateKey(mk, slot, piv.Key{Algorithm: o.Algorithm, PINPolicy: o.PINPolicy, TouchPolicy: o.TouchPolicy})
	if err != nil {
		if contains(err, "authenticating with management key") {
			return nil, fmt.Errorf("management key refused (give the card's key with --management-key-source file:PATH or env:NAME): %w", err)
		}
		return nil, fmt.Errorf("generating a %s key in slot %02x: %w", AlgorithmName(o.Algorithm), u.Slot, err)
	}
	c.slotEpoch[u.Slot]++
	s := &Signer{p: c.p, c: c, uri: u, slot: slot, conn: c.conn, epoch: c.slotEpoch[u.Slot],
		info: KeyInfo{Slot: u.Slot, Algorithm: o.Algorithm, PINPolicy: o.PINPolicy, TouchPolicy: o.TouchPolicy, Public: pub, Source: "generated"}}
	if err := checkPublic(pub); err != nil {
		return nil, err
	}
	cert, err := selfSign(lockedSigner{s: s, ctx: ctx, yk: yk, a: a}, u, o.CommonName)
	if err != nil {
		return nil, fmt.Errorf("key generated in slot %02x, but its self-signed certificate failed: %w", u.Slot, err)
	}
	if err := yk.SetCertificate(mk, slot, cert); err != nil {
		return nil, fmt.Errorf("key generated in slot %02x, but storing its certificate failed: %w", u.Slot, err)
	}
	s.info.Certificate = cert
	return s, nil
}

// lockedSigner signs with s on an open connection whose lock is held.
type lockedSigner struct {
	s   *Signer
	ctx context.Context
	yk  *piv.YubiKey
	a   *pinAttempt
}

func (l lockedSigner) Public() crypto.PublicKey { return l.s.info.Public }

func (l lockedSigner) Sign(_ io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return l.s.signLocked(l.ctx, l.yk, d, o, l.a)
}

// selfSign makes the certificate stored beside a generated key. It holds
// the public key for firmware without metadata; its signature shows that
// the new key signs.
func selfSign(key crypto.Signer, u hsm.PIVURI, cn string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	if cn == "" {
		cn = fmt.Sprintf("auths-agent key, card %d slot %02x", u.Serial, u.Slot)
	}
	name := pkix.Name{CommonName: cn}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      name,
		Issuer:       name,
		NotBefore:    time.Now().Add(-time.Hour).UTC().Truncate(time.Second),
		NotAfter:     time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), // RFC 5280: no expiry
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// maxKeyFile caps how much of a management-key file is read.
const maxKeyFile = 1024

// ManagementKeyFrom reads a management key, hex-encoded (16, 24 or 32
// bytes), from file:PATH (the file's content, surrounding space ignored)
// or env:NAME (getenv nil means os.Getenv). An empty src means the factory
// default key. A key given any other way is refused: it would show in
// argv. Errors never include key material.
func ManagementKeyFrom(src string, getenv func(string) string) ([]byte, error) {
	var text, where string
	switch {
	case src == "":
		return append([]byte(nil), piv.DefaultManagementKey...), nil
	case strings.HasPrefix(src, "file:"):
		path := strings.TrimPrefix(src, "file:")
		if path == "" {
			return nil, errors.New("management key source file: has no path")
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("management key: %w", err)
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
		if err != nil {
			return nil, fmt.Errorf("management key: reading %s: %w", path, err)
		}
		if len(data) > maxKeyFile {
			return nil, fmt.Errorf("management key file %s is larger than %d bytes", path, maxKeyFile)
		}
		text, where = string(data), "file "+path
	case strings.HasPrefix(src, "env:"):
		name := strings.TrimPrefix(src, "env:")
		if name == "" {
			return nil, errors.New("management key source env: has no variable name")
		}
		if getenv == nil {
			getenv = os.Getenv
		}
		text, where = getenv(name), "environment variable "+name
		if text == "" {
			return nil, fmt.Errorf("management key: %s is empty or unset", where)
		}
	default:
		return nil, errors.New("management key source: want file:PATH or env:NAME (never the key itself)")
	}
	key, err := hex.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("management key in %s is not hex", where)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("management key in %s has %d bytes; want 24 (3DES, AES-192), 16 or 32 (AES)", where, len(key))
}

// ParseAlgorithm reads p256 or ed25519.
func ParseAlgorithm(s string) (piv.Algorithm, error) {
	switch strings.ToLower(s) {
	case "p256", "p-256", "ecdsa-p256", "ecccp256":
		return piv.AlgorithmEC256, nil
	case "ed25519":
		return piv.AlgorithmEd25519, nil
	}
	return 0, fmt.Errorf("algorithm %q: want p256 or ed25519", s)
}

// ParsePINPolicy reads never, once or always.
func ParsePINPolicy(s string) (piv.PINPolicy, error) {
	switch strings.ToLower(s) {
	case "never":
		return piv.PINPolicyNever, nil
	case "once":
		return piv.PINPolicyOnce, nil
	case "always":
		return piv.PINPolicyAlways, nil
	}
	return 0, fmt.Errorf("PIN policy %q: want never, once or always", s)
}

// ParseTouchPolicy reads never, always or cached.
func ParseTouchPolicy(s string) (piv.TouchPolicy, error) {
	switch strings.ToLower(s) {
	case "never":
		return piv.TouchPolicyNever, nil
	case "always":
		return piv.TouchPolicyAlways, nil
	case "cached":
		return piv.TouchPolicyCached, nil
	}
	return 0, fmt.Errorf("touch policy %q: want never, always or cached", s)
}

// PINPolicyName and TouchPolicyName name policies for people.
func PINPolicyName(p piv.PINPolicy) string {
	switch p {
	case piv.PINPolicyNever:
		return "never"
	case piv.PINPolicyOnce:
		return "once"
	case piv.PINPolicyAlways:
		return "always"
	case piv.PINPolicyMatchOnce:
		return "match-once"
	case piv.PINPolicyMatchAlways:
		return "match-always"
	}
	return "unknown"
}

// TouchPolicyName names a touch policy for people.
func TouchPolicyName(t piv.TouchPolicy) string {
	switch t {
	case piv.TouchPolicyNever:
		return "never"
	case piv.TouchPolicyAlways:
		return "always"
	case piv.TouchPolicyCached:
		return "cached"
	}
	return "unknown"
}
