package anchor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/auths-dev/auths-agent/kel"
)

// ParseSeal parses a seal as a person writes it: "d=SAID" for a digest
// seal, "i=AID,s=HEX,d=SAID" for an event seal (attributes in any order),
// or the seal's JSON. Errors match ErrBadSeal.
func ParseSeal(text string) (json.RawMessage, error) {
	text = strings.TrimSpace(text)
	if strings.HasPrefix(text, "{") {
		raw := compact([]byte(text))
		if raw == nil {
			return nil, fmt.Errorf("%w: %q is not JSON", ErrBadSeal, clip(text))
		}
		if err := checkSeal(raw); err != nil {
			return nil, err
		}
		return raw, nil
	}
	attrs := map[string]string{}
	for _, part := range strings.Split(text, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("%w: %q: want d=SAID or i=AID,s=HEX,d=SAID", ErrBadSeal, clip(text))
		}
		if _, dup := attrs[name]; dup {
			return nil, fmt.Errorf("%w: %q: %s given twice", ErrBadSeal, clip(text), name)
		}
		switch name {
		case "d", "i", "s":
		default:
			return nil, fmt.Errorf("%w: %q: unknown attribute %q (want d, or i, s and d)", ErrBadSeal, clip(text), clip(name))
		}
		attrs[name] = v
	}
	d, ok := attrs["d"]
	if !ok {
		return nil, fmt.Errorf("%w: %q: no d=SAID", ErrBadSeal, clip(text))
	}
	if _, err := kel.ParseDigest(d); err != nil {
		return nil, fmt.Errorf("%w: d=%s: %v", ErrBadSeal, clip(d), err)
	}
	switch len(attrs) {
	case 1:
		return kel.DigestSeal(d), nil
	case 3:
	default:
		return nil, fmt.Errorf("%w: %q: an event seal needs i, s and d", ErrBadSeal, clip(text))
	}
	if err := checkAID(attrs["i"]); err != nil {
		return nil, fmt.Errorf("%w: i=%s: %v", ErrBadSeal, clip(attrs["i"]), err)
	}
	sn, err := parseHexSn(attrs["s"])
	if err != nil {
		return nil, fmt.Errorf("%w: s=%s: %v", ErrBadSeal, clip(attrs["s"]), err)
	}
	return kel.EventSeal(attrs["i"], sn, d), nil
}

// parseHexSn parses a KERI sequence number: lowercase hex without leading
// zeros.
func parseHexSn(s string) (uint64, error) {
	if s == "" || len(s) > 16 || (len(s) > 1 && s[0] == '0') || strings.ToLower(s) != s {
		return 0, fmt.Errorf("%q is not a lowercase hex number without leading zeros", clip(s))
	}
	n, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a lowercase hex number", clip(s))
	}
	return n, nil
}

func mustHex(s string) uint64 {
	n, _ := strconv.ParseUint(s, 16, 64)
	return n
}

// compact returns the compact form of JSON text, nil when it is not JSON.
func compact(b []byte) []byte {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil
	}
	return out.Bytes()
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}
