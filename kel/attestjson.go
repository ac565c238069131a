package kel

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds the small JSON model that attestations need to be read
// and written exactly as auths reads and writes them with serde_json:
// objects keep their members in input order (auths builds serde_json with
// "preserve_order"; a repeated key keeps its first place and its last
// value), numbers keep serde_json's three kinds (unsigned, negative and
// float, printed the way serde_json prints them), strings are escaped only
// where serde_json escapes them. encoding/json cannot do this: it escapes
// U+2028 and HTML characters, replaces bad UTF-8 silently and sorts maps.

type jsonKind uint8

const (
	jNull jsonKind = iota
	jBool
	jUint  // serde_json's PosInt
	jInt   // serde_json's NegInt
	jFloat // serde_json's Float
	jString
	jArray
	jObject
)

// jvalue is one JSON value.
type jvalue struct {
	kind    jsonKind
	b       bool
	u       uint64
	i       int64
	f       float64
	s       string
	arr     []*jvalue
	members []jmember
}

type jmember struct {
	key string
	val *jvalue
}

// get returns the value of the member named key, nil when absent.
func (v *jvalue) get(key string) *jvalue {
	for _, m := range v.members {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// set replaces the value of key in place, or appends it.
func (v *jvalue) set(key string, val *jvalue) {
	for i := range v.members {
		if v.members[i].key == key {
			v.members[i].val = val
			return
		}
	}
	v.members = append(v.members, jmember{key, val})
}

func jstr(s string) *jvalue { return &jvalue{kind: jString, s: s} }

// maxJSONDepth is serde_json's recursion limit.
const maxJSONDepth = 128

// jsonSyntaxError is a syntax error at a byte offset.
type jsonSyntaxError struct {
	off int
	msg string
}

func (e *jsonSyntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.off) }

type jparser struct {
	data []byte
	pos  int
	// dup, when set, is called for a key repeated in the top-level object
	// (serde refuses duplicate struct fields; values keep the last one).
	topDup func(key string) error
}

// parseJSON parses one JSON document the way serde_json does (strict UTF-8,
// no lone surrogates, no trailing data).
func parseJSON(data []byte, topDup func(string) error) (*jvalue, error) {
	p := &jparser{data: data, topDup: topDup}
	p.ws()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.pos != len(p.data) {
		return nil, p.errf("trailing characters")
	}
	return v, nil
}

func (p *jparser) errf(format string, args ...any) error {
	return &jsonSyntaxError{off: p.pos, msg: fmt.Sprintf(format, args...)}
}

func (p *jparser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jparser) lit(word string, v *jvalue) (*jvalue, error) {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		return nil, p.errf("expected value")
	}
	p.pos += len(word)
	return v, nil
}

func (p *jparser) value(depth int) (*jvalue, error) {
	if p.pos >= len(p.data) {
		return nil, p.errf("EOF while parsing a value")
	}
	switch c := p.data[p.pos]; {
	case c == 'n':
		return p.lit("null", &jvalue{kind: jNull})
	case c == 't':
		return p.lit("true", &jvalue{kind: jBool, b: true})
	case c == 'f':
		return p.lit("false", &jvalue{kind: jBool})
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return jstr(s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == '[' || c == '{':
		if depth >= maxJSONDepth {
			return nil, p.errf("recursion limit exceeded")
		}
		if c == '[' {
			return p.array(depth + 1)
		}
		return p.object(depth + 1)
	}
	return nil, p.errf("expected value")
}

func (p *jparser) array(depth int) (*jvalue, error) {
	p.pos++ // [
	v := &jvalue{kind: jArray, arr: []*jvalue{}}
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		p.ws()
		el, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.arr = append(v.arr, el)
		p.ws()
		if p.pos >= len(p.data) {
			return nil, p.errf("EOF while parsing a list")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return v, nil
		default:
			return nil, p.errf("expected `,` or `]`")
		}
	}
}

func (p *jparser) object(depth int) (*jvalue, error) {
	p.pos++ // {
	v := &jvalue{kind: jObject, members: []jmember{}}
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errf("key must be a string")
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errf("expected `:`")
		}
		p.pos++
		p.ws()
		val, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		if depth == 1 && p.topDup != nil && v.get(key) != nil {
			if err := p.topDup(key); err != nil {
				return nil, err
			}
		}
		v.set(key, val)
		p.ws()
		if p.pos >= len(p.data) {
			return nil, p.errf("EOF while parsing an object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return v, nil
		default:
			return nil, p.errf("expected `,` or `}`")
		}
	}
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return rune(n), err == nil
}

func (p *jparser) str() (string, error) {
	p.pos++ // opening quote
	var sb strings.Builder
	for {
		if p.pos >= len(p.data) {
			return "", p.errf("EOF while parsing a string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return sb.String(), nil
		case c < 0x20:
			return "", p.errf("control character (\\u%04x) found while parsing a string", c)
		case c == '\\':
			if p.pos+1 >= len(p.data) {
				return "", p.errf("EOF while parsing a string")
			}
			e := p.data[p.pos+1]
			p.pos += 2
			switch e {
			case '"', '\\', '/':
				sb.WriteByte(e)
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'u':
				r, ok := hex4(p.data[p.pos:])
				if !ok {
					return "", p.errf("invalid escape")
				}
				p.pos += 4
				if utf16.IsSurrogate(r) {
					if r >= 0xDC00 || p.pos+6 > len(p.data) || p.data[p.pos] != '\\' || p.data[p.pos+1] != 'u' {
						return "", p.errf("lone surrogate in hex escape")
					}
					r2, ok := hex4(p.data[p.pos+2:])
					if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
						return "", p.errf("lone surrogate in hex escape")
					}
					p.pos += 6
					r = utf16.DecodeRune(r, r2)
				}
				sb.WriteRune(r)
			default:
				return "", p.errf("invalid escape")
			}
		case c < utf8.RuneSelf:
			sb.WriteByte(c)
			p.pos++
		default:
			r, n := utf8.DecodeRune(p.data[p.pos:])
			if r == utf8.RuneError && n <= 1 {
				return "", p.errf("invalid unicode code point")
			}
			sb.WriteString(string(p.data[p.pos : p.pos+n]))
			p.pos += n
		}
	}
}

// number parses a JSON number into serde_json's kinds: an integer literal
// is unsigned when it fits u64, negative when it fits i64, else a float;
// anything with a fraction or an exponent is a float.
func (p *jparser) number() (*jvalue, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	intStart := p.pos
	if digits() == 0 {
		return nil, p.errf("invalid number")
	}
	if p.data[intStart] == '0' && p.pos-intStart > 1 {
		return nil, &jsonSyntaxError{off: intStart, msg: "invalid number (leading zero)"}
	}
	isFloat := false
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		isFloat = true
		p.pos++
		if digits() == 0 {
			return nil, p.errf("invalid number")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		isFloat = true
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errf("invalid number")
		}
	}
	text := string(p.data[start:p.pos])
	neg := text[0] == '-'
	if !isFloat {
		mag := strings.TrimPrefix(text, "-")
		if u, err := strconv.ParseUint(mag, 10, 64); err == nil {
			if !neg {
				return &jvalue{kind: jUint, u: u}, nil
			}
			// serde_json: -(u as i64), a float when that wraps to >= 0
			// (which makes "-0" the float -0.0).
			if n := -int64(u); n < 0 {
				return &jvalue{kind: jInt, i: n}, nil
			}
			return &jvalue{kind: jFloat, f: -float64(u)}, nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, &jsonSyntaxError{off: start, msg: "number out of range"}
	}
	return &jvalue{kind: jFloat, f: f}, nil
}

// writeCompact appends v as serde_json::to_vec would write it.
func writeCompact(b *bytes.Buffer, v *jvalue) {
	writeJSON(b, v, -1)
}

// writePretty appends v as serde_json::to_vec_pretty would write it (two
// spaces per level, "key": value, empty containers as {} and []).
func writePretty(b *bytes.Buffer, v *jvalue) {
	writeJSON(b, v, 0)
}

// writeJSON writes v; indent < 0 is compact, else the current depth.
func writeJSON(b *bytes.Buffer, v *jvalue, indent int) {
	nl := func(depth int) {
		if indent >= 0 {
			b.WriteByte('\n')
			for i := 0; i < depth; i++ {
				b.WriteString("  ")
			}
		}
	}
	child := indent
	if indent >= 0 {
		child = indent + 1
	}
	switch v.kind {
	case jNull:
		b.WriteString("null")
	case jBool:
		b.WriteString(strconv.FormatBool(v.b))
	case jUint:
		b.WriteString(strconv.FormatUint(v.u, 10))
	case jInt:
		b.WriteString(strconv.FormatInt(v.i, 10))
	case jFloat:
		b.WriteString(formatFloatSerde(v.f))
	case jString:
		writeString(b, v.s)
	case jArray:
		if len(v.arr) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i, el := range v.arr {
			if i > 0 {
				b.WriteByte(',')
			}
			nl(child)
			writeJSON(b, el, child)
		}
		nl(indent)
		b.WriteByte(']')
	case jObject:
		if len(v.members) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteByte('{')
		for i, m := range v.members {
			if i > 0 {
				b.WriteByte(',')
			}
			nl(child)
			writeString(b, m.key)
			b.WriteByte(':')
			if indent >= 0 {
				b.WriteByte(' ')
			}
			writeJSON(b, m.val, child)
		}
		nl(indent)
		b.WriteByte('}')
	}
}

// writeString escapes as serde_json does: '"', '\\', and control
// characters below U+0020 only (short forms where JSON has them, else
// \u00xx in lower-case hex); everything else, U+2028 included, is literal.
func writeString(b *bytes.Buffer, s string) {
	const hexd = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hexd[c>>4])
			b.WriteByte(hexd[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// formatFloatSerde prints a finite float as serde_json does (Ryū's
// shortest digits, laid out as in its "pretty" formatter): plain notation
// with ".0" for integers up to 16 digits, "0.000ddd" down to 1e-5, else
// d.ddde±x with no '+'.
func formatFloatSerde(f float64) string {
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	var b strings.Builder
	if f < 0 {
		b.WriteByte('-')
		f = -f
	}
	// Shortest round-trip digits, as Ryū finds them.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddddde±xx
	mant, exps, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(exps)
	length := len(digits)
	k := exp - (length - 1) // value = digits × 10^k
	kk := length + k        // 10^(kk-1) <= value < 10^kk
	switch {
	case k >= 0 && kk <= 16:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", k))
		b.WriteString(".0")
	case kk > 0 && kk <= 16:
		b.WriteString(digits[:kk])
		b.WriteByte('.')
		b.WriteString(digits[kk:])
	case kk > -5 && kk <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -kk))
		b.WriteString(digits)
	default:
		b.WriteByte(digits[0])
		if length > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('e')
		b.WriteString(strconv.Itoa(kk - 1))
	}
	return b.String()
}

// errNotObject is returned for a document that is not a JSON object.
var errNotObject = errors.New("not a JSON object")
