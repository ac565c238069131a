package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/auths-dev/auths-agent/hsm"
)

// Use is what a key is held for.
type Use string

// Uses of a key.
const (
	UseKERI Use = "keri" // a controller key: signs checked KERI events
	UseSSH  Use = "ssh"  // an SSH key: listed, signs SSH requests
)

// KeySpec is one key the agent holds.
type KeySpec struct {
	// URI names the key (pkcs11: or piv:). It may carry a PIN attribute;
	// the agent shows it only through hsm.RedactURI.
	URI string `json:"uri"`
	// Uses says what the key is for: keri, ssh, or both.
	Uses []Use `json:"uses"`
	// Identities restricts a controller key to these prefixes; empty means
	// every identity whose key list holds the key.
	Identities []string `json:"identities,omitempty"`
}

// Has reports whether the key is held for use u.
func (k KeySpec) Has(u Use) bool { return slices.Contains(k.Uses, u) }

// Allows reports whether the policy lets the key sign for prefix.
func (k KeySpec) Allows(prefix string) bool {
	return k.Has(UseKERI) && (len(k.Identities) == 0 || slices.Contains(k.Identities, prefix))
}

// Config is what the agent holds and where it writes.
type Config struct {
	// Registry is the registry's git repository, for sign-event checks of
	// non-inception events and for anchors; empty means none.
	Registry string `json:"registry,omitempty"`
	// Keys are the keys held.
	Keys []KeySpec `json:"keys"`
	// TouchTimeout bounds the wait for a touch (Options.TouchTimeout), as
	// a Go duration ("30s", "1m"); empty means the default.
	TouchTimeout string `json:"touch_timeout,omitempty"`
}

// TouchWait returns TouchTimeout as a duration, 0 when it is empty. Check
// has refused one that does not parse or is not positive.
func (c Config) TouchWait() time.Duration {
	d, _ := time.ParseDuration(c.TouchTimeout)
	return d
}

// maxConfig caps a config file.
const maxConfig = 1 << 20

// ErrBadConfig is matched by every config error.
var ErrBadConfig = errors.New("bad config")

// LoadConfig reads a config file (JSON, see docs/PROTOCOL.md). Unknown
// fields are errors; every error names the file and says what was wrong
// without quoting a URI's PIN.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err != nil {
		return Config{}, fmt.Errorf("%w: %s: %v", ErrBadConfig, path, err)
	}
	if len(data) > maxConfig {
		return Config{}, fmt.Errorf("%w: %s: larger than %d bytes", ErrBadConfig, path, maxConfig)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses and checks the JSON form of a Config.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Config{}, fmt.Errorf("%w: JSON syntax error at byte %d", ErrBadConfig, se.Offset)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Config{}, fmt.Errorf("%w: field %s: want %s", ErrBadConfig, te.Field, te.Type)
		}
		// The remaining decoder errors (unknown field, EOF) quote field
		// names, never values.
		return Config{}, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("%w: more than one JSON value", ErrBadConfig)
	}
	return c, c.Check()
}

// Check refuses keys without a usable URI or use, a URI given twice, and a
// touch_timeout that is not a positive duration.
func (c Config) Check() error {
	if c.TouchTimeout != "" {
		if d, err := time.ParseDuration(c.TouchTimeout); err != nil || d <= 0 {
			return fmt.Errorf("%w: touch_timeout %q: want a positive duration such as \"30s\"", ErrBadConfig, clip(c.TouchTimeout))
		}
	}
	seen := map[string]int{}
	for i, k := range c.Keys {
		where := fmt.Sprintf("key %d", i)
		if !strings.HasPrefix(k.URI, "pkcs11:") && !strings.HasPrefix(k.URI, "piv:") {
			return fmt.Errorf("%w: %s: uri must start with pkcs11: or piv:", ErrBadConfig, where)
		}
		where += " (" + hsm.RedactURI(k.URI) + ")"
		if _, err := TokenOf(k.URI); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrBadConfig, where, err)
		}
		if len(k.Uses) == 0 {
			return fmt.Errorf("%w: %s: no uses (want \"keri\", \"ssh\" or both)", ErrBadConfig, where)
		}
		for _, u := range k.Uses {
			if u != UseKERI && u != UseSSH {
				return fmt.Errorf("%w: %s: unknown use %q (want keri or ssh)", ErrBadConfig, where, clip(string(u)))
			}
		}
		if len(k.Identities) > 0 && !k.Has(UseKERI) {
			return fmt.Errorf("%w: %s: identities given for a key not used for keri", ErrBadConfig, where)
		}
		r := hsm.RedactURI(k.URI)
		if j, ok := seen[r]; ok {
			return fmt.Errorf("%w: %s: same URI as key %d", ErrBadConfig, where, j)
		}
		seen[r] = i
	}
	return nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}
