package vpiv

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// stateFormat is the version of the JSON state file.
const stateFormat = 1

// Factory values of a fresh card.
const (
	DefaultPIN = "123456"
	DefaultPUK = "12345678"
	maxTries   = 3
)

// DefaultManagementKey is the factory 3DES management key.
var DefaultManagementKey = []byte{
	1, 2, 3, 4, 5, 6, 7, 8,
	1, 2, 3, 4, 5, 6, 7, 8,
	1, 2, 3, 4, 5, 6, 7, 8,
}

// state is everything the card keeps across power cycles and restarts. It is
// test tooling: private keys and the management key are stored in the clear;
// PIN and PUK only as salted SHA-256 hashes so that no file holds them.
type state struct {
	Format  uint32 `json:"format"`
	Serial  uint32 `json:"serial"`
	Salt    []byte `json:"salt"`
	PIN     secret `json:"pin"`
	PUK     secret `json:"puk"`
	MgmtAlg byte   `json:"mgmt_alg"`
	MgmtKey []byte `json:"mgmt_key"`
	// MgmtTouch is the management key's touch policy (1 never, 2 always).
	MgmtTouch   byte                `json:"mgmt_touch"`
	Slots       map[string]*slotKey `json:"slots"`
	Objects     map[string][]byte   `json:"objects"`
	Attestation attestation         `json:"attestation"`
}

// secret is a PIN or PUK with its retry counter.
type secret struct {
	Hash       []byte `json:"hash"`
	Tries      int    `json:"tries"`
	MaxTries   int    `json:"max_tries"`
	NotDefault bool   `json:"not_default"`
}

// slotKey is an asymmetric key in a slot.
type slotKey struct {
	Alg         byte   `json:"alg"`
	PINPolicy   byte   `json:"pin_policy"`
	TouchPolicy byte   `json:"touch_policy"`
	Origin      byte   `json:"origin"`
	PKCS8       []byte `json:"pkcs8"`
}

// attestation holds the card's attestation key (slot f9), its certificate
// and the test CA that issued it.
type attestation struct {
	CAKey  []byte `json:"ca_key"`
	CACert []byte `json:"ca_cert"`
	Key    []byte `json:"key"`
	Cert   []byte `json:"cert"`
}

// newState makes the state of a factory-fresh card.
func newState(serial uint32, rand io.Reader) (*state, error) {
	s := &state{Format: stateFormat, Serial: serial, Salt: make([]byte, 16)}
	if _, err := io.ReadFull(rand, s.Salt); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	s.factoryReset()
	return s, nil
}

// factoryReset restores PIN, PUK, management key, slots and data objects;
// the serial and the attestation key stay.
func (s *state) factoryReset() {
	s.PIN = secret{Hash: s.hash(padPIN(DefaultPIN)), Tries: maxTries, MaxTries: maxTries}
	s.PUK = secret{Hash: s.hash(padPIN(DefaultPUK)), Tries: maxTries, MaxTries: maxTries}
	s.MgmtAlg = alg3DES
	s.MgmtKey = append([]byte(nil), DefaultManagementKey...)
	s.MgmtTouch = touchNever
	s.Slots = map[string]*slotKey{}
	s.Objects = map[string][]byte{}
}

func (s *state) hash(padded []byte) []byte {
	h := sha256.New()
	h.Write(s.Salt)
	h.Write(padded)
	return h.Sum(nil)
}

// matches compares an 8-byte padded PIN or PUK with sec in constant time.
func (s *state) matches(sec *secret, padded []byte) bool {
	return subtle.ConstantTimeCompare(s.hash(padded), sec.Hash) == 1
}

// set stores a new value for sec and restores its tries.
func (s *state) set(sec *secret, padded []byte) {
	sec.Hash = s.hash(padded)
	sec.Tries = sec.MaxTries
	sec.NotDefault = true
}

// padPIN pads a PIN or PUK with ff to 8 bytes.
func padPIN(p string) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = 0xff
	}
	copy(b, p)
	return b
}

// validPadded reports whether b is 8 bytes: min to 8 bytes of value, then ff
// padding.
func validPadded(b []byte, min int) bool {
	if len(b) != 8 {
		return false
	}
	n := 0
	for n < 8 && b[n] != 0xff {
		n++
	}
	for _, c := range b[n:] {
		if c != 0xff {
			return false
		}
	}
	return n >= min
}

// loadState reads the state file at path; a missing file gives (nil, nil).
func loadState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Format != stateFormat {
		return nil, fmt.Errorf("%s: state format %d, want %d", path, s.Format, stateFormat)
	}
	if s.Slots == nil {
		s.Slots = map[string]*slotKey{}
	}
	if s.Objects == nil {
		s.Objects = map[string][]byte{}
	}
	return &s, nil
}

// save writes s to path atomically: a temporary file in the same directory,
// synced, then renamed over path.
func (s *state) save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
