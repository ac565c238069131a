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
	attrs := func(part, sep string, set func(name, v string) error) error {
		if part == "" {
			return nil
		}
		for _, a := range strings.Split(part, sep) {
			name, raw, ok := strings.Cut(a, "=")
			if !ok {
				// Not quoted: a bare word here may be a PIN typed without pin-value=.
				return bad("an attribute has no '=' (want name=value)")
			}
			if seen[name] {
				return bad("attribute %s given twice", clipAttr(name))
			}
			seen[name] = true
			v, err := url.PathUnescape(raw)
			if err != nil {
				return bad("attribute %s: bad %%-encoding", clipAttr(name))
			}
			if err := set(name, v); err != nil {
				return err
			}
		}
		return nil
	}
	err := attrs(path, ";", func(name, v string) error {
		switch name {
		case "serial":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return bad("serial=%q: want a decimal number below 2^32", v)
			}
			u.Serial, u.HasSerial = uint32(n), true
		case "slot":
			n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(v), "0x"), 16, 8)
			if err != nil || !ValidPIVSlot(uint8(n)) {
				return bad("slot=%q: want 9a, 9c, 9d, 9e or 82–95 (hex)", v)
			}
			u.Slot, hasSlot = uint8(n), true
		case "pin-value", "pin-source":
			return bad("%s belongs in the query (after ?)", name)
		default:
			return bad("unknown attribute %s (want serial, slot)", clipAttr(name))
		}
		return nil
	})
	if err != nil {
		return PIVURI{}, err
	}
	err = attrs(query, "&", func(name, v string) error {
		switch name {
		case "pin-value":
			u.PIN.Value = v
		case "pin-source":
			u.PIN.Source = v
		default:
			if !strings.HasPrefix(name, "x-") {
				return bad("unknown query attribute %s (want pin-value, pin-source)", clipAttr(name))
			}
		}
		if v == "" {
			return bad("empty %s", name)
		}
		return nil
	})
	if err != nil {
		return PIVURI{}, err
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

func clipAttr(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
