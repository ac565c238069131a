package hsm

import (
	"fmt"
	"net/url"
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
		return nil, bad("%s", libraryErrText(err))
	}
	// RFC 7512 keeps '&' out of path values and ';' out of query values;
	// go-pkcs11uri does not, so module-path=/m.so;pin-value=1234 would be
	// a module path holding a PIN, printed by every error about the module.
	path, query, hasQuery := strings.Cut(s, "?")
	for i, a := range strings.Split(path, ";") {
		if strings.Contains(a, "&") {
			return nil, bad("path attribute %d holds '&' (separate path attributes with ';', or %%-encode it as %%26)", i+1)
		}
	}
	if hasQuery {
		for i, a := range strings.Split(query, "&") {
			if strings.Contains(a, ";") {
				return nil, bad("query attribute %d holds ';' (separate query attributes with '&', or %%-encode it as %%3B)", i+1)
			}
		}
	}
	// Unknown query attributes are refused rather than ignored: pin=1234
	// would otherwise be dropped silently and the PIN asked for elsewhere.
	if hasQuery {
		for i, a := range strings.Split(query, "&") {
			name, _, _ := strings.Cut(a, "=")
			switch {
			case name == "module-path", name == "module-name", name == "pin-value", name == "pin-source",
				strings.HasPrefix(name, "x-"):
			default:
				return nil, bad("query attribute %d is unknown (want module-path, pin-value, pin-source or x-…)", i+1)
			}
		}
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
		return nil, bad("type: signing keys are private keys (type=private or no type)")
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
	if u.PIN.Source != "" && !PINSourceShape(u.PIN.Source) {
		return nil, NewURIError(s, errBadPINSource)
	}
	u.PIN.For = u.tokenName()
	return u, nil
}

// libraryErrText words an error of go-pkcs11uri without quoting the URI:
// its messages quote attribute values, and a value may hold a PIN (a
// module-path=/x;pin-value=1234 typed with ';' for '&' is one value).
func libraryErrText(err error) string {
	msg := err.Error()
	for _, m := range []struct{ in, out string }{
		{"escape", "bad %-encoding in an attribute value"},
		{"duplicate path attribute", "a path attribute is given twice"},
		{"duplicate query attribute", "a query attribute is given twice"},
		{"malformed path attribute", "a path attribute has no '=' (want name=value)"},
		{"malformed query attribute", "a query attribute has no '=' (want name=value)"},
		{"slot-id", "attribute slot-id: name the token by token= (label) or serial=, never by slot"},
		{"library-version", "attribute library-version is not supported (use module-path)"},
		{"Invalid type", "type: signing keys are private keys (type=private or no type)"},
		{"pin-source and pin-value", "pin-value and pin-source both given"},
		{"must be absolute", "module-path: want an absolute path"},
	} {
		if strings.Contains(msg, m.in) {
			return m.out
		}
	}
	return "malformed URI"
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

// InheritPINValue returns uri, a key URI as String writes it (without
// pin-value), with the pin-value of from added when from has one and uri
// names no PIN: a next key made or found beside the key from names opens
// with that key's PIN. The result holds the PIN: show it through
// RedactURI only.
func InheritPINValue(uri, from string) string {
	pin := keyPIN(from)
	if pin.Value == "" || !keyPIN(uri).IsZero() {
		return uri
	}
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + "pin-value=" + escapeAttr(pin.Value, false) // everything but unreserved characters %-encoded: a PIN never splits when redacted
}

// keyPIN returns the PIN attributes of a key URI; none when it does not
// parse.
func keyPIN(uri string) PINSpec {
	if u, err := ParsePKCS11URI(uri); err == nil {
		return u.PIN
	}
	if u, err := ParsePIVURI(uri); err == nil {
		return u.PIN
	}
	return PINSpec{}
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

// RedactURI returns s for people: only the attributes known to be safe to
// show keep their values (token, object, id, serial, slot, module-path,
// module-name, pin-source: labels and places, never secrets), the other
// attributes this package knows keep their name (pin-value=…), and
// everything else becomes "…", whether or not s parses. An allow-list,
// because a PIN turns up where nobody looks for it: typed without a name
// (piv:slot=9c?123456), under a made-up name (pin=123456), split by the
// '&' or ';' inside it, or glued to the scheme (123456pkcs11:…). Only the
// schemes pkcs11 and piv are shown.
func RedactURI(s string) string {
	r, _ := redactURI(s)
	return r
}

// URISecrets returns the parts of s that RedactURI hides and that may be a
// PIN (pin-value's value, unknown attributes, an unknown scheme; not the
// values of attributes shown by name only, such as type or model), so
// that text which quotes s in ways RedactURI cannot see the ends of (a
// PIN holding a space or a quote) can be cleaned of them.
func URISecrets(s string) []string {
	_, secrets := redactURI(s)
	return secrets
}

func redactURI(s string) (string, []string) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		if s == "" {
			return "", nil
		}
		return redacted, []string{s}
	}
	var secrets []string
	if scheme != "pkcs11" && scheme != "piv" {
		secrets = append(secrets, scheme)
		scheme = redacted
	}
	var b strings.Builder
	b.WriteString(scheme + ":")
	for rest != "" {
		i := strings.IndexAny(rest, ";&?")
		attr, sep := rest, ""
		if i >= 0 {
			attr, sep, rest = rest[:i], rest[i:i+1], rest[i+1:]
		} else {
			rest = ""
		}
		r := redactAttr(attr)
		if r != attr {
			name, v, ok := strings.Cut(attr, "=")
			switch {
			case !ok || !namedAttrs[name] && name != "pin-source":
				secrets = append(secrets, attr)
			case name == "pin-value" || name == "pin-source":
				secrets = append(secrets, v)
			}
		}
		b.WriteString(r)
		b.WriteString(sep)
	}
	return b.String(), secrets
}

// redacted stands for what RedactURI does not show.
const redacted = "…"

// shownAttrs are the attributes whose values RedactURI shows; namedAttrs
// those it shows by name only.
var (
	shownAttrs = map[string]bool{"token": true, "object": true, "id": true, "serial": true,
		"slot": true, "module-path": true, "module-name": true, "pin-source": true}
	namedAttrs = map[string]bool{"pin-value": true, "manufacturer": true, "model": true,
		"type": true, "slot-id": true, "slot-description": true, "slot-manufacturer": true,
		"library-manufacturer": true, "library-description": true, "library-version": true}
)

func redactAttr(a string) string {
	if a == "" {
		return ""
	}
	name, _, ok := strings.Cut(a, "=")
	switch {
	case ok && name == "pin-source":
		// A PIN typed under the wrong name (pin-source=123456) is not shown.
		v, err := url.PathUnescape(a[len(name)+1:])
		if err != nil || !PINSourceShape(v) {
			return name + "=" + redacted
		}
		return a
	case ok && shownAttrs[name]:
		return a
	case ok && namedAttrs[name]:
		return name + "=" + redacted
	}
	return redacted
}
