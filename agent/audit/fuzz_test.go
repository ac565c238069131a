package audit

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzVerify: no file makes Verify panic; what it accepts, Scan accepts,
// and a broken chain is always a *BadLineError naming a line that exists.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2026-12-01T12:00:00Z","outcome":"signed","peer":{"uid":0,"pid":1},"op":"sign-event","prev":"` + Genesis + "\"}\n"))
	f.Add([]byte("{}\n{\"seq\":2}\n"))
	f.Add([]byte("not json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		head, err := Verify(bytes.NewReader(data), nil)
		var bad *BadLineError
		if err != nil {
			if !errors.As(err, &bad) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if lines := bytes.Count(data, []byte("\n")) + 1; bad.Line < 1 || bad.Line > lines {
				t.Fatalf("line %d of %d", bad.Line, lines)
			}
			return
		}
		if err := Scan(bytes.NewReader(data), nil); err != nil {
			t.Fatalf("Verify accepts, Scan says %v", err)
		}
		if head.Lines != bytes.Count(data, []byte("\n")) {
			t.Fatalf("head %d lines of %d", head.Lines, bytes.Count(data, []byte("\n")))
		}
	})
}
