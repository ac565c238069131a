package pinentry

import (
	"strings"
	"testing"
)

// FuzzEscape: Escape yields one Assuan-safe line (no CR, LF or control
// byte) that Unescape turns back; Unescape never panics.
func FuzzEscape(f *testing.F) {
	f.Add("The previous PIN was refused.\nEnter the PIN of YubiKey 1 (100%).")
	f.Add("%0A%zz%")
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if strings.ContainsFunc(e, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("Escape(%q) = %q holds a control byte", s, e)
		}
		if back, err := Unescape(e); err != nil || back != s {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", s, back, err)
		}
		Unescape(s)
	})
}
