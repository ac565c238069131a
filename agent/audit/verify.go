package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// BadLineError names the first line of a file where the chain breaks.
type BadLineError struct {
	Line   int // from 1
	Reason string
}

func (e *BadLineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// Head is what Verify found: how many lines, and the hash of the last one
// (Genesis for an empty file).
type Head struct {
	Lines int
	Hash  string
}

// Verify reads a whole audit file and checks its chain; fn, when not nil,
// sees each good line in order (its bytes without the newline, and the
// entry). A broken chain is a *BadLineError; a read error or an error from
// fn is returned as is.
func Verify(r io.Reader, fn func(line []byte, e Entry) error) (Head, error) {
	return walk(r, true, fn)
}

// Scan reads an audit file line by line without checking the chain, for
// showing a file that Verify would refuse. Lines that are not entries are
// still a *BadLineError.
func Scan(r io.Reader, fn func(line []byte, e Entry) error) error {
	_, err := walk(r, false, fn)
	return err
}

func walk(r io.Reader, check bool, fn func([]byte, Entry) error) (Head, error) {
	br := bufio.NewReaderSize(r, MaxLine)
	head := Head{Hash: Genesis}
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return head, &BadLineError{n, fmt.Sprintf("longer than %d bytes", MaxLine)}
		case errors.Is(err, io.EOF):
			if len(line) > 0 {
				return head, &BadLineError{n, "cut short (no newline at the end)"}
			}
			return head, nil
		case err != nil:
			return head, err
		}
		line = line[:len(line)-1]
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return head, &BadLineError{n, "not a JSON audit entry"}
		}
		if check {
			want := uint64(n)
			switch {
			case e.Seq != want:
				return head, &BadLineError{n, fmt.Sprintf("seq %d where %d was expected: a line was removed or moved", e.Seq, want)}
			case e.Prev != head.Hash && n == 1:
				return head, &BadLineError{n, "prev is not the genesis hash: the start of the file was removed or edited"}
			case e.Prev != head.Hash:
				// The line before does not hash to what this one recorded:
				// that line was edited (or this line's prev was).
				return head, &BadLineError{n - 1, fmt.Sprintf("edited: its hash is not the prev of line %d", n)}
			}
		}
		head = Head{Lines: n, Hash: hashLine(line)}
		if fn != nil {
			if err := fn(line, e); err != nil {
				return head, err
			}
		}
	}
}
