package hsm

import (
	"fmt"
	"strings"

	pkcs11uri "github.com/stefanberger/go-pkcs11uri"
)

// PKCS11URI is a parsed RFC 7512 URI naming a token and, for signing, one
// key on it:
//
//	pkcs11:token=ci-1;object=k0?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin
//
// Path attributes: token (label), serial, manufacturer, model, object (key
// label), id (key id, %-encoded bytes), type (must be private when given).
// Slot attributes are refused: slot numbers change, tokens are named by
// label or serial. Query attributes: module-path (absolute), pin-value,
// pin-source (see [PINSpec]); vendor attributes x-… are ignored.
type PKCS11URI struct {
	ModulePath   string
	Token        string
	Serial       string
	Manufacturer string
	Model        string
	Object       string
	ID           []byte
	HasID        bool
	Type         string
	PIN          PINSpec
}

// ParsePKCS11URI parses s. Errors name s without its PIN and match
// ErrBadURI.
func ParsePKCS11URI(s string) (*PKCS11URI, error) {
	bad := func(format string, args ...any) error {
		return NewURIError(s, fmt.Errorf("%w: %s", ErrBadURI, fmt.Sprintf(format, args...)))
	}
	if !strings.HasPrefix(s, "pkcs11:") {
		return nil, bad("does not start with pkcs11:")
	}
	p := pkcs11uri.New()
	if err := p.Parse(s); err != nil {
		msg := err.Error()
		if strings.Contains(msg, "escape") {
			// url.PathUnescape quotes the bad escape, which may be part of a PIN.
			msg = "bad %-encoding in an attribute value"
		}
		return nil, bad("%s", msg)
	}
	u := &PKCS11URI{}
	for _, a := range []struct {
		name string
		dst  *string
	}{
		{"token", &u.Token}, {"serial", &u.Serial}, {"manufacturer", &u.Manufacturer},
		{"model", &u.Model}, {"object", &u.Object}, {"type", &u.Type},
	} {
		*a.dst, _ = p.GetPathAttribute(a.name, false)
	}
	if id, ok := p.GetPathAttribute("id", false); ok {
		u.ID, u.HasID = []byte(id), true
	}
	for _, name := range []string{"slot-id", "slot-description", "slot-manufacturer"} {
		if _, ok := p.GetPathAttribute(name, false); ok {
			return nil, bad("attribute %s: name the token by token= (label) or serial=, never by slot", name)
		}
	}
	for _, name := range []string{"library-manufacturer", "library-description", "library-version"} {
		if _, ok := p.GetPathAttribute(name, false); ok {
			return nil, bad("attribute %s is not supported (use module-path)", name)
		}
	}
	if u.Type != "" && u.Type != "private" {
		return nil, bad("type=%s: signing keys are private keys (type=private or no type)", u.Type)
	}
	if _, ok := p.GetQueryAttribute("module-name", false); ok {
		return nil, bad("module-name is not supported: give module-path")
	}
	u.ModulePath, _ = p.GetQueryAttribute("module-path", false)
	u.PIN.Value, _ = p.GetQueryAttribute("pin-value", false)
	u.PIN.Source, _ = p.GetQueryAttribute("pin-source", false)
	if v, ok := p.GetQueryAttribute("pin-value", false); ok && v == "" {
		return nil, bad("empty pin-value")
	}
	if v, ok := p.GetQueryAttribute("pin-source", false); ok && v == "" {
		return nil, bad("empty pin-source")
	}
	u.PIN.For = u.tokenName()
	return u, nil
}

// tokenName names the token for people: label, serial, or both.
func (u *PKCS11URI) tokenName() string {
	switch {
	case u.Token != "" && u.Serial != "":
		return fmt.Sprintf("token %q (serial %s)", u.Token, u.Serial)
	case u.Token != "":
		return fmt.Sprintf("token %q", u.Token)
	case u.Serial != "":
		return "token with serial " + u.Serial
	}
	return "the token"
}

// HasKey reports whether the URI names a key (object or id).
func (u *PKCS11URI) HasKey() bool { return u.Object != "" || u.HasID }

// String returns the URI in a canonical order without pin-value (pin-source
// is kept: it says where the PIN is, not what it is).
func (u *PKCS11URI) String() string {
	var path []string
	add := func(name, v string) {
		if v != "" {
			path = append(path, name+"="+escapeAttr(v, false))
		}
	}
	add("token", u.Token)
	add("serial", u.Serial)
	add("manufacturer", u.Manufacturer)
	add("model", u.Model)
	add("object", u.Object)
	if u.HasID {
		var b strings.Builder
		for _, c := range u.ID {
			fmt.Fprintf(&b, "%%%02X", c)
		}
		path = append(path, "id="+b.String())
	}
	add("type", u.Type)
	s := "pkcs11:" + strings.Join(path, ";")
	var q []string
	if u.ModulePath != "" {
		q = append(q, "module-path="+escapeAttr(u.ModulePath, true))
	}
	if u.PIN.Source != "" {
		q = append(q, "pin-source="+escapeAttr(u.PIN.Source, true))
	}
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

// WithKey returns a copy of u naming the key with label and id.
func (u *PKCS11URI) WithKey(label string, id []byte) *PKCS11URI {
	c := *u
	c.Object, c.ID, c.HasID = label, append([]byte(nil), id...), id != nil
	return &c
}

// escapeAttr %-encodes an attribute value: RFC 3986 unreserved characters
// and a few safe sub-delimiters stay; in the query '/' and ':' stay too.
func escapeAttr(v string, query bool) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == ':', c == '@', c == '!',
			c == '$', c == '\'', c == '(', c == ')', c == '*', c == '+', c == ',':
			b.WriteByte(c)
		case query && (c == '/' || c == '?' || c == '|'):
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// RedactURI returns s with every pin-value attribute removed, whether or
// not s parses. pin-source is kept: it names a file or variable, not the
// PIN, and helps people see where the PIN was looked for.
func RedactURI(s string) string {
	scheme := ""
	if i := strings.IndexAny(s, ":;?&="); i > 0 && s[i] == ':' {
		scheme, s = s[:i+1], s[i+1:]
	}
	path, query, hasQuery := strings.Cut(s, "?")
	path = dropPINValue(path, ";")
	if hasQuery {
		if query = dropPINValue(query, "&"); query != "" {
			path += "?" + query
		}
	}
	return scheme + path
}

func dropPINValue(s, sep string) string {
	parts := strings.Split(s, sep)
	kept := parts[:0]
	for _, part := range parts {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(part)), "pin-value") {
			continue
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, sep)
}
