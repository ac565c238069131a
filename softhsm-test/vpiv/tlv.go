package vpiv

import "errors"

// errTLV reports a BER-TLV encoding the card does not accept.
var errTLV = errors.New("malformed TLV")

// tlv is one BER-TLV element as PIV uses it: a tag of one to three bytes and
// a definite length of at most three bytes.
type tlv struct {
	tag   uint32
	value []byte
}

// readTLV reads the first element of b and returns the bytes after it.
func readTLV(b []byte) (tlv, []byte, error) {
	if len(b) < 2 {
		return tlv{}, nil, errTLV
	}
	tag := uint32(b[0])
	i := 1
	if b[0]&0x1f == 0x1f {
		for {
			if i >= len(b) || i >= 3 {
				return tlv{}, nil, errTLV
			}
			tag = tag<<8 | uint32(b[i])
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return tlv{}, nil, errTLV
	}
	n := int(b[i])
	i++
	switch {
	case n < 0x80:
	case n >= 0x81 && n <= 0x83:
		k := n - 0x80
		if i+k > len(b) {
			return tlv{}, nil, errTLV
		}
		n = 0
		for _, c := range b[i : i+k] {
			n = n<<8 | int(c)
		}
		i += k
	default:
		return tlv{}, nil, errTLV
	}
	if n > len(b)-i {
		return tlv{}, nil, errTLV
	}
	return tlv{tag: tag, value: b[i : i+n]}, b[i+n:], nil
}

// parseTLVs reads every element of b; trailing garbage is an error.
func parseTLVs(b []byte) ([]tlv, error) {
	var out []tlv
	for len(b) > 0 {
		t, rest, err := readTLV(b)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
		b = rest
	}
	return out, nil
}

// parseOne reads b as exactly one element with the given tag.
func parseOne(b []byte, tag uint32) ([]byte, error) {
	t, rest, err := readTLV(b)
	if err != nil || len(rest) != 0 || t.tag != tag {
		return nil, errTLV
	}
	return t.value, nil
}

// parseDynAuth reads a GENERAL AUTHENTICATE body: one dynamic
// authentication template (7c) and the elements inside it.
func parseDynAuth(b []byte) ([]tlv, error) {
	inner, err := parseOne(b, tagDynAuth)
	if err != nil {
		return nil, err
	}
	return parseTLVs(inner)
}

// find returns the value of the first element with tag.
func find(list []tlv, tag uint32) ([]byte, bool) {
	for _, t := range list {
		if t.tag == tag {
			return t.value, true
		}
	}
	return nil, false
}

// appendTLV appends the encoding of tag, the length of value and value.
func appendTLV(dst []byte, tag uint32, value []byte) []byte {
	switch {
	case tag > 0xffff:
		dst = append(dst, byte(tag>>16), byte(tag>>8), byte(tag))
	case tag > 0xff:
		dst = append(dst, byte(tag>>8), byte(tag))
	default:
		dst = append(dst, byte(tag))
	}
	n := len(value)
	switch {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n <= 0xff:
		dst = append(dst, 0x81, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, value...)
}

// tlvBytes is appendTLV onto a fresh slice.
func tlvBytes(tag uint32, value []byte) []byte {
	return appendTLV(nil, tag, value)
}
