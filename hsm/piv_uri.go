package hsm

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// PIVURI names a key in a PIV slot of a smart card (a YubiKey):
//
//	piv:serial=12345678;slot=9c?pin-source=env:YK_PIN
//
// Path attributes: slot (required, hex: 9a, 9c, 9d, 9e or a retired
// key-management slot 82–95) and serial (the card's decimal serial,
// optional when one card is present). Query attributes: pin-value and
// pin-source as in [PINSpec]. Values may be %-encoded.
type PIVURI struct {
	Serial    uint32
	HasSerial bool
	Slot      uint8
	PIN       PINSpec
}

// ValidPIVSlot reports whether slot holds a signing-capable PIV key: 9a
// (authentication), 9c (signature), 9d (key management), 9e (card
// authentication) or a retired key-management slot 82–95.
func ValidPIVSlot(slot uint8) bool {
	switch {
	case slot == 0x9a, slot == 0x9c, slot == 0x9d, slot == 0x9e:
		return true
	case slot >= 0x82 && slot <= 0x95:
		return true
	}
	return false
}

// ParsePIVURI parses s. Errors name s without its PIN and match ErrBadURI.
func ParsePIVURI(s string) (PIVURI, error) {
	bad := func(format string, args ...any) error {
		return NewURIError(s, fmt.Errorf("%w: %s", ErrBadURI, fmt.Sprintf(format, args...)))
	}
	rest, ok := strings.CutPrefix(s, "piv:")
	if !ok {
		return PIVURI{}, bad("does not start with piv:")
	}
	path, query, _ := strings.Cut(rest, "?")
	var u PIVURI
	hasSlot := false
	seen := map[string]bool{}
	// Errors name attributes by position or by a name this parser knows,
	// never by what was typed: a bare word or an unknown name may be a PIN.
	attrs := func(part, sep, where string, known func(string) bool, set func(name, v string) error) error {
		if part == "" {
			return nil
		}
		for i, a := range strings.Split(part, sep) {
			name, raw, ok := strings.Cut(a, "=")
			if !ok {
				return bad("%s attribute %d has no '=' (want name=value)", where, i+1)
			}
			if !known(name) {
				return bad("%s attribute %d is unknown (want %s)", where, i+1, wantAttrs[where])
			}
			if seen[name] {
				return bad("%s attribute %d repeats an earlier one", where, i+1)
			}
			seen[name] = true
			v, err := url.PathUnescape(raw)
			if err != nil {
				return bad("attribute %s: bad %%-encoding", name)
			}
			if err := set(name, v); err != nil {
				return err
			}
		}
		return nil
	}
	inPath := func(name string) bool {
		switch name {
		case "serial", "slot", "pin-value", "pin-source":
			return true
		}
		return false
	}
	inQuery := func(name string) bool {
		return name == "pin-value" || name == "pin-source" || strings.HasPrefix(name, "x-")
	}
	err := attrs(path, ";", "path", inPath, func(name, v string) error {
		switch name {
		case "serial":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return bad("serial: want a decimal number below 2^32")
			}
			u.Serial, u.HasSerial = uint32(n), true
		case "slot":
			n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(v), "0x"), 16, 8)
			if err != nil || !ValidPIVSlot(uint8(n)) {
				return bad("slot: want 9a, 9c, 9d, 9e or 82–95 (hex)")
			}
			u.Slot, hasSlot = uint8(n), true
		default: // pin-value, pin-source
			return bad("%s belongs in the query (after ?)", name)
		}
		return nil
	})
	if err != nil {
		return PIVURI{}, err
	}
	err = attrs(query, "&", "query", inQuery, func(name, v string) error {
		switch name {
		case "pin-value":
			u.PIN.Value = v
		case "pin-source":
			u.PIN.Source = v
		}
		if v == "" && !strings.HasPrefix(name, "x-") {
			return bad("empty %s", name)
		}
		return nil
	})
	if err != nil {
		return PIVURI{}, err
	}
	if u.PIN.Source != "" && !PINSourceShape(u.PIN.Source) {
		return PIVURI{}, NewURIError(s, errBadPINSource)
	}
	if u.PIN.Value != "" && u.PIN.Source != "" {
		return PIVURI{}, bad("pin-value and pin-source both given")
	}
	if !hasSlot {
		return PIVURI{}, bad("missing slot= (9a, 9c, 9d, 9e or 82–95)")
	}
	u.PIN.For = u.cardName()
	return u, nil
}

func (u PIVURI) cardName() string {
	if u.HasSerial {
		return fmt.Sprintf("PIV card %d", u.Serial)
	}
	return "the PIV card"
}

// String returns the URI without pin-value.
func (u PIVURI) String() string {
	s := "piv:"
	if u.HasSerial {
		s += fmt.Sprintf("serial=%d;", u.Serial)
	}
	s += fmt.Sprintf("slot=%02x", u.Slot)
	if u.PIN.Source != "" {
		s += "?pin-source=" + escapeAttr(u.PIN.Source, true)
	}
	return s
}

// wantAttrs says which attributes each part of a piv: URI takes.
var wantAttrs = map[string]string{"path": "serial, slot", "query": "pin-value, pin-source or x-…"}
