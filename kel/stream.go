package kel

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
)

// MaxStreamSize is the largest KEL stream ParseStream accepts.
const MaxStreamSize = 64 << 20

// ParseStream splits a KEL stream (each event's bytes immediately followed
// by its -A## signature group, event after event, as keripy writes them;
// a delegated event may carry a -G## source seal group as auths writes it)
// into signed events. Other attachment groups are refused with their offset
// and code.
func ParseStream(data []byte) ([]SignedEvent, error) {
	return ParseStreamParallel(data, 1)
}

// ParseStreamParallel is ParseStream with the events' JSON parsed by up to
// workers goroutines (GOMAXPROCS when workers < 1). Framing the stream
// (event sizes from their version strings, signature groups) stays
// sequential and cheap; the result and any error are those ParseStream
// gives: the error of the first bad event or group in stream order.
func ParseStreamParallel(data []byte, workers int) ([]SignedEvent, error) {
	if len(data) > MaxStreamSize {
		return nil, fmt.Errorf("stream: %d bytes, larger than %d", len(data), MaxStreamSize)
	}
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	var (
		out    []SignedEvent
		starts []int // offset of each event in data
		ferr   error // the framing error that ended the scan, if any
	)
	off := 0
	for off < len(data) && ferr == nil {
		if data[off] != '{' {
			ferr = fmt.Errorf("stream at offset %d: want an event ('{'), found %q", off, clip(string(data[off:min(len(data), off+8)])))
			break
		}
		size, err := eventSize(data[off:])
		if err != nil {
			ferr = fmt.Errorf("stream at offset %d: %w", off, err)
			break
		}
		var se SignedEvent
		if workers == 1 {
			// Parse in order: the first error is the one to report.
			if se.Event, err = ParseEvent(data[off : off+size]); err != nil {
				return nil, fmt.Errorf("stream at offset %d: %w", off, err)
			}
		}
		starts = append(starts, off)
		off += size
		for off < len(data) && data[off] == '-' {
			if bytes.HasPrefix(data[off:], []byte(codeSourceGroup)) {
				// auths' delegated events: the source seal after -A.
				src, n, err := ParseSourceGroup(data[off:])
				if err != nil {
					ferr = fmt.Errorf("stream at offset %d: %w", off, err)
					break
				}
				se.Sources = append(se.Sources, src...)
				off += n
				continue
			}
			if !bytes.HasPrefix(data[off:], []byte(codeSigGroup)) {
				ferr = fmt.Errorf("stream at offset %d: attachment group %q unsupported (only -A controller signatures and -G source seals)", off, clip(string(data[off:min(len(data), off+4)])))
				break
			}
			sigs, n, err := ParseSigGroup(data[off:])
			if err != nil {
				ferr = fmt.Errorf("stream at offset %d: %w", off, err)
				break
			}
			se.Sigs = append(se.Sigs, sigs...)
			off += n
		}
		out = append(out, se)
	}
	if workers > 1 {
		// An event before the framing error that does not parse comes first
		// in the stream, so its error is the one to report.
		if err := parseEvents(data, starts, out, workers); err != nil {
			return nil, err
		}
	}
	if ferr != nil {
		return nil, ferr
	}
	return out, nil
}

// parseEvents parses the events starting at starts into out[i].Event with
// up to workers goroutines, and returns the error of the first event (in
// stream order) that does not parse.
func parseEvents(data []byte, starts []int, out []SignedEvent, workers int) error {
	errs := make([]error, len(starts))
	var wg sync.WaitGroup
	chunk := (len(starts) + workers - 1) / workers
	for lo := 0; lo < len(starts); lo += chunk {
		hi := min(lo+chunk, len(starts))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				size, _ := eventSize(data[starts[i]:]) // checked while framing
				out[i].Event, errs[i] = ParseEvent(data[starts[i] : starts[i]+size])
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("stream at offset %d: %w", starts[i], err)
		}
	}
	return nil
}

// eventSize reads the size from the version string at the start of an
// event: {"v":"KERI10JSON######_".
func eventSize(data []byte) (int, error) {
	const head = `{"v":"` + versionPrefix
	if len(data) < len(head)+7 {
		return 0, fmt.Errorf("truncated event: %d bytes", len(data))
	}
	if !bytes.HasPrefix(data, []byte(head)) {
		return 0, fmt.Errorf("event does not start with a KERI 1.0 JSON version string ({\"v\":\"KERI10JSON…)")
	}
	hex := string(data[len(head) : len(head)+6])
	n, err := strconv.ParseUint(hex, 16, 32)
	if err != nil || data[len(head)+6] != '_' {
		return 0, fmt.Errorf("version string size %q: want 6 hex digits and '_'", hex)
	}
	if int(n) > len(data) {
		return 0, fmt.Errorf("version string says %d bytes, only %d follow", n, len(data))
	}
	if int(n) < len(head)+8 {
		return 0, fmt.Errorf("version string size %d too small", n)
	}
	return int(n), nil
}

// EncodeStream writes signed events as a KEL stream.
func EncodeStream(events []SignedEvent) ([]byte, error) {
	var b bytes.Buffer
	for _, se := range events {
		b.Write(se.Event.Raw())
		if len(se.Sigs) > 0 {
			g, err := EncodeSigGroup(se.Sigs)
			if err != nil {
				return nil, fmt.Errorf("event s=%x: %w", se.Event.Sn, err)
			}
			b.Write(g)
		}
		if len(se.Sources) > 0 {
			g, err := EncodeSourceGroup(se.Sources)
			if err != nil {
				return nil, fmt.Errorf("event s=%x: %w", se.Event.Sn, err)
			}
			b.Write(g)
		}
	}
	return b.Bytes(), nil
}

// Replay validates a whole KEL from its inception and returns the final key
// state. Signatures are verified serially.
func Replay(events []SignedEvent) (*KeyState, error) {
	return ReplayFrom(nil, events, 1)
}

// ReplayParallel is Replay with the signatures verified by up to workers
// goroutines (GOMAXPROCS when workers < 1). State transitions still happen
// in order; only the signature checks run ahead.
func ReplayParallel(events []SignedEvent, workers int) (*KeyState, error) {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	return ReplayFrom(nil, events, workers)
}

// ReplayFrom validates events as the continuation of st (nil: from
// inception).
func ReplayFrom(st *KeyState, events []SignedEvent, workers int) (*KeyState, error) {
	if len(events) == 0 {
		if st == nil {
			return nil, fmt.Errorf("empty KEL")
		}
		return st, nil
	}
	if workers <= 1 {
		for _, se := range events {
			next, err := Apply(st, se)
			if err != nil {
				return nil, err
			}
			st = next
		}
		return st, nil
	}
	return replayParallel(st, events, workers)
}

// replayParallel verifies each event's signatures against the keys that
// sign it: an establishment event's own keys, or for an interaction the keys
// of the latest establishment event before it. Those are known from the
// events themselves, so verification can run ahead of the state machine,
// which then only checks the results. A wrong guess (a KEL whose keys come
// from elsewhere) cannot pass: the state machine re-verifies any signature
// whose precomputed key differs from the state's key.
func replayParallel(st *KeyState, events []SignedEvent, workers int) (*KeyState, error) {
	keysFor := make([][]string, len(events))
	var cur []string
	if st != nil {
		cur = st.CurrentKeys
	}
	for i, se := range events {
		if se.Event.IsEstablishment() {
			cur = se.Event.Keys
		}
		keysFor[i] = cur
	}
	results := make([][]bool, len(events))
	saids := make([]string, len(events))
	var wg sync.WaitGroup
	chunk := (len(events) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(events))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				se := events[i]
				ok := make([]bool, len(se.Sigs))
				for j, s := range se.Sigs {
					ok[j] = verifyIndexed(keysFor[i], se.Event.Raw(), s)
				}
				results[i] = ok
				saids[i] = se.Event.ComputeSAID()
			}
		}(lo, hi)
	}
	wg.Wait()
	for i, se := range events {
		var sigOK []bool
		if st == nil || se.Event.IsEstablishment() || sameKeys(st.CurrentKeys, keysFor[i]) {
			sigOK = results[i]
		}
		next, err := applyChecked(st, se, sigOK, saids[i])
		if err != nil {
			return nil, err
		}
		st = next
	}
	return st, nil
}

func sameKeys(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
