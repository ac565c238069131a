package registry

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRemoteText: the text of a transport error (which a remote can
// choose: an HTTP body, a hook's output) is shown on one line, at most
// maxRemoteText runes, with no user information left in a URL, and the
// error still unwraps to what go-git returned.
func FuzzRemoteText(f *testing.F) {
	f.Add("authentication required: credentials refused\n")
	f.Add(`Get "https://alice:s3cret@example.com/r.git/info/refs": x509: unknown authority`)
	f.Add("remote: line one\r\nremote: line two\x00\x1b[31m")
	f.Add("ssh://bob@127.0.0.1:22/srv/r.git: key mismatch")
	f.Add(strings.Repeat("é", 2*maxRemoteText))
	f.Add("https://@@@x/")
	f.Fuzz(func(t *testing.T, s string) {
		inner := errors.New(s)
		err := transportErr(inner)
		got := err.Error()
		if strings.ContainsAny(got, "\n\r\x00") {
			t.Fatalf("several lines or NUL: %q", got)
		}
		if n := utf8.RuneCountInString(got); n > maxRemoteText {
			t.Fatalf("%d runes, want at most %d", n, maxRemoteText)
		}
		if userInfo.MatchString(got) {
			t.Fatalf("user information left: %q", got)
		}
		if !errors.Is(err, inner) {
			t.Fatal("does not unwrap")
		}
	})
}
