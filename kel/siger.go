package kel

import (
	"fmt"
	"sort"
)

// Indexed signature codes (keripy's IdrDex).
const (
	SigEd25519      = "A"  // Ed25519, same index in current and prior-next lists
	SigEd25519Crt   = "B"  // Ed25519, current list only
	SigP256         = "E"  // P-256, both lists
	SigP256Crt      = "F"  // P-256, current list only
	SigEd25519Big   = "2A" // Ed25519, two-character index and ondex
	SigEd25519BigCr = "2B" // Ed25519, big, current only
	SigP256Big      = "2E" // P-256, big, both
	SigP256BigCrt   = "2F" // P-256, big, current only
)

// NoOndex marks a signature that has no position in the prior next list.
const NoOndex = -1

// Siger is an indexed signature: a signature by the key at Index of the
// event's current key list and, for rotations, at Ondex of the prior next
// key list (NoOndex for a current-only signature).
type Siger struct {
	Index int
	Ondex int
	Alg   Algorithm
	Raw   []byte // 64 bytes
	// Code is the CESR code it was decoded from, or empty for a new one;
	// QB64 uses it when set, so a decoded attachment re-encodes to the same
	// bytes.
	Code string
}

type sigCode struct {
	alg     Algorithm
	big     bool
	current bool // current-only: no ondex
}

var sigCodes = map[string]sigCode{
	SigEd25519:      {Ed25519, false, false},
	SigEd25519Crt:   {Ed25519, false, true},
	SigP256:         {P256, false, false},
	SigP256Crt:      {P256, false, true},
	SigEd25519Big:   {Ed25519, true, false},
	SigEd25519BigCr: {Ed25519, true, true},
	SigP256Big:      {P256, true, false},
	SigP256BigCrt:   {P256, true, true},
}

const (
	smallSigLen = 88
	bigSigLen   = 92
	maxBigIndex = 64*64 - 1
)

// NewSiger returns an indexed signature whose code follows keri.md: the
// small both-lists code when index == ondex < 64, the big code with both
// indexes when they differ or pass 63, and the current-only code when
// ondex is NoOndex.
func NewSiger(alg Algorithm, index, ondex int, raw []byte) Siger {
	return Siger{Index: index, Ondex: ondex, Alg: alg, Raw: append([]byte(nil), raw...)}
}

// code picks the CESR code for s.
func (s Siger) code() (string, error) {
	if s.Code != "" {
		return s.Code, nil
	}
	if s.Index < 0 || s.Index > maxBigIndex || s.Ondex < NoOndex || s.Ondex > maxBigIndex {
		return "", fmt.Errorf("signature index %d/%d out of range", s.Index, s.Ondex)
	}
	small := s.Index < 64 && (s.Ondex == NoOndex || s.Ondex == s.Index)
	switch {
	case s.Alg == Ed25519 && s.Ondex == NoOndex && small:
		return SigEd25519Crt, nil
	case s.Alg == Ed25519 && s.Ondex == NoOndex:
		return SigEd25519BigCr, nil
	case s.Alg == Ed25519 && small:
		return SigEd25519, nil
	case s.Alg == Ed25519:
		return SigEd25519Big, nil
	case s.Alg == P256 && s.Ondex == NoOndex && small:
		return SigP256Crt, nil
	case s.Alg == P256 && s.Ondex == NoOndex:
		return SigP256BigCrt, nil
	case s.Alg == P256 && small:
		return SigP256, nil
	case s.Alg == P256:
		return SigP256Big, nil
	}
	return "", fmt.Errorf("signature algorithm %v: unsupported", s.Alg)
}

// QB64 returns the CESR text of the indexed signature.
func (s Siger) QB64() (string, error) {
	code, err := s.code()
	if err != nil {
		return "", err
	}
	c, ok := sigCodes[code]
	if !ok {
		return "", fmt.Errorf("signature code %q: unknown", code)
	}
	if len(s.Raw) != SignatureSize {
		return "", fmt.Errorf("signature: %d bytes, want %d", len(s.Raw), SignatureSize)
	}
	if !c.big {
		if s.Index > 63 || (!c.current && s.Ondex != s.Index) {
			return "", fmt.Errorf("signature code %s cannot carry index %d/ondex %d", code, s.Index, s.Ondex)
		}
		// code (1) + index (1) + 86 chars of 64 bytes with two lead pad bytes.
		buf := make([]byte, 2+SignatureSize)
		copy(buf[2:], s.Raw)
		enc := b64.EncodeToString(buf) // 88 chars, first two are "AA"
		return code + string(b64chars[s.Index]) + enc[2:], nil
	}
	ondex := s.Ondex
	if c.current {
		ondex = 0
	}
	if s.Index > maxBigIndex || ondex > maxBigIndex || ondex < 0 {
		return "", fmt.Errorf("signature index %d/ondex %d out of range", s.Index, s.Ondex)
	}
	buf := make([]byte, 2+SignatureSize)
	copy(buf[2:], s.Raw)
	enc := b64.EncodeToString(buf)
	return code + intB64(s.Index, 2) + intB64(ondex, 2) + enc[2:], nil
}

const b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func intB64(v, n int) string {
	out := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		out[i] = b64chars[v&63]
		v >>= 6
	}
	return string(out)
}

func b64Int(s string) (int, error) {
	v := 0
	for i := 0; i < len(s); i++ {
		d := b64val(s[i])
		if d < 0 {
			return 0, fmt.Errorf("bad base64 character %q", s[i])
		}
		v = v<<6 | d
	}
	return v, nil
}

func b64val(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// ParseSiger decodes one indexed signature from the start of text and
// returns it with the number of characters it took.
func ParseSiger(text []byte) (Siger, int, error) {
	if len(text) == 0 {
		return Siger{}, 0, fmt.Errorf("signature: empty input")
	}
	code := string(text[:1])
	if text[0] == '2' {
		if len(text) < 2 {
			return Siger{}, 0, fmt.Errorf("signature: truncated code")
		}
		code = string(text[:2])
	}
	c, ok := sigCodes[code]
	if !ok {
		return Siger{}, 0, fmt.Errorf("signature code %q: unsupported (want A, B, E, F, 2A, 2B, 2E or 2F)", code)
	}
	size := smallSigLen
	if c.big {
		size = bigSigLen
	}
	if len(text) < size {
		return Siger{}, 0, fmt.Errorf("signature code %s: %d characters left, want %d", code, len(text), size)
	}
	s := Siger{Alg: c.alg, Code: code}
	var body string
	if c.big {
		idx, err := b64Int(string(text[2:4]))
		if err != nil {
			return Siger{}, 0, fmt.Errorf("signature index: %w", err)
		}
		ond, err := b64Int(string(text[4:6]))
		if err != nil {
			return Siger{}, 0, fmt.Errorf("signature ondex: %w", err)
		}
		s.Index, s.Ondex = idx, ond
		if c.current {
			if ond != 0 {
				return Siger{}, 0, fmt.Errorf("signature code %s: current-only signature with ondex %d", code, ond)
			}
			s.Ondex = NoOndex
		}
		body = "AA" + string(text[6:size])
	} else {
		idx, err := b64Int(string(text[1:2]))
		if err != nil {
			return Siger{}, 0, fmt.Errorf("signature index: %w", err)
		}
		s.Index, s.Ondex = idx, idx
		if c.current {
			s.Ondex = NoOndex
		}
		body = "AA" + string(text[2:size])
	}
	if err := checkB64(body, 0); err != nil {
		return Siger{}, 0, fmt.Errorf("signature code %s: %w", code, err)
	}
	buf, err := b64.DecodeString(body)
	if err != nil {
		return Siger{}, 0, fmt.Errorf("signature code %s: bad base64: %w", code, err)
	}
	if buf[0] != 0 || buf[1] != 0 {
		return Siger{}, 0, fmt.Errorf("signature code %s: non-zero pad bits", code)
	}
	s.Raw = buf[2:]
	return s, size, nil
}

// Counter code of the controller indexed signature group.
const codeSigGroup = "-A"

// maxGroupCount is the largest count a -A## group can carry.
const maxGroupCount = 64*64 - 1

// EncodeSigGroup returns the -A## attachment group of sigs, in the order
// given.
func EncodeSigGroup(sigs []Siger) ([]byte, error) {
	if len(sigs) > maxGroupCount {
		return nil, fmt.Errorf("attachment: %d signatures, at most %d", len(sigs), maxGroupCount)
	}
	out := make([]byte, 0, 4+len(sigs)*bigSigLen)
	out = append(out, codeSigGroup...)
	out = append(out, intB64(len(sigs), 2)...)
	for i, s := range sigs {
		q, err := s.QB64()
		if err != nil {
			return nil, fmt.Errorf("attachment signature %d: %w", i, err)
		}
		out = append(out, q...)
	}
	return out, nil
}

// ParseSigGroup decodes one -A## group at the start of data and returns the
// signatures and the number of bytes it took. The count is checked against
// the bytes that follow before anything is allocated.
func ParseSigGroup(data []byte) ([]Siger, int, error) {
	if len(data) < 4 {
		return nil, 0, fmt.Errorf("attachment at offset 0: %d bytes, want a 4-character counter", len(data))
	}
	if string(data[:2]) != codeSigGroup {
		return nil, 0, fmt.Errorf("attachment at offset 0: counter %q unsupported (want -A, controller signatures)", clip(string(data[:min(len(data), 4)])))
	}
	n, err := b64Int(string(data[2:4]))
	if err != nil {
		return nil, 0, fmt.Errorf("attachment at offset 2: count: %w", err)
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("attachment at offset 0: empty signature group")
	}
	if n*smallSigLen > len(data)-4 {
		return nil, 0, fmt.Errorf("attachment at offset 2: count %d needs at least %d bytes, %d follow", n, n*smallSigLen, len(data)-4)
	}
	sigs := make([]Siger, 0, n)
	off := 4
	for i := 0; i < n; i++ {
		s, size, err := ParseSiger(data[off:])
		if err != nil {
			return nil, 0, fmt.Errorf("attachment at offset %d (signature %d of %d): %w", off, i+1, n, err)
		}
		sigs = append(sigs, s)
		off += size
	}
	return sigs, off, nil
}

// SortSigers orders signatures by index, as an attachment lists them.
func SortSigers(sigs []Siger) {
	sort.SliceStable(sigs, func(i, j int) bool { return sigs[i].Index < sigs[j].Index })
}
