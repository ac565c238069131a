package kel

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// resize rewrites the version string of an event to its actual size.
func resize(raw []byte) []byte {
	out := append([]byte(nil), raw...)
	copy(out[len(`{"v":"KERI10JSON`):], fmt.Sprintf("%06x", len(out)))
	return out
}

func TestParseEventErrors(t *testing.T) {
	icp := string(readVector(t, "rot_remove.icp.json"))
	rep := func(old, new string) string {
		if !strings.Contains(icp, old) {
			t.Fatalf("%q not in the icp vector", old)
		}
		return string(resize([]byte(strings.Replace(icp, old, new, 1))))
	}
	tests := []struct {
		name  string
		raw   string
		field string
		text  string
	}{
		{"not JSON", "xyz", "", "not JSON"},
		{"not an object", `["v"]`, "", "not a JSON object"},
		{"v not first", `{"t":"icp","v":"KERI10JSON000000_"}`, "", `must start with fields "v" and "t"`},
		{"unknown type", rep(`"t":"icp"`, `"t":"xyz"`), "t", `event type "xyz" unsupported`},
		{"type not a string", rep(`"t":"icp"`, `"t":7`), "t", "want a string"},
		{"fields out of order", rep(`"s":"0","kt":"2"`, `"kt":"2","s":"0"`), "kt", "at position 4, want \"s\""},
		{"missing field", rep(`,"a":[]`, ``), "a", "missing"},
		{"extra field", rep(`"a":[]`, `"a":[],"x":1`), "x", "unexpected in a icp event"},
		{"duplicate field", rep(`"s":"0"`, `"d":"x","s":"0"`), "d", "appears twice"},
		{"whitespace", rep(`"s":"0"`, `"s": "0"`), "", "not in compact serialization"},
		{"whitespace inside a value", rep(`"b":[]`, `"b":[ ]`), "", "not in compact serialization"},
		{"newline inside a list", rep(`"k":["DCJn`, "\"k\":[\n\"DCJn"), "", "not in compact serialization"},
		{"escaped field name", rep(`"s":"0"`, `"\u0073":"0"`), "", "not in compact serialization"},
		{"trailing data", icp + "x", "", "at offset 487"},
		{"truncated", icp[:200], "", "at offset"},
		{"version size", strings.Replace(icp, "0001e7", "0001e8", 1), "v", "says 488 bytes, the event has 487"},
		{"version uppercase", strings.Replace(icp, "0001e7", "0001E7", 1), "v", "lowercase hex"},
		{"version kind", strings.Replace(icp, "KERI10JSON", "KERI10CBOR", 1), "v", "not a KERI 1.0 JSON version string"},
		{"d null", rep(`"d":"EMd282TNa216KX7fuXQyuic3SSv7J6dpv6YLqQFlT5_S"`, `"d":null`), "d", "want a string"},
		{"s leading zero", rep(`"s":"0"`, `"s":"00"`), "s", "leading zero"},
		{"s not hex", rep(`"s":"0"`, `"s":"g"`), "s", "not a lowercase hex number"},
		{"kt nested map", rep(`"kt":"2"`, `"kt":[{"1/2":["1"]}]`), "kt", "nested weight maps"},
		{"nt bad", rep(`"nt":"2"`, `"nt":"-1"`), "nt", "not a lowercase hex"},
		{"k not a list", rep(`"kt":"2","k":[`, `"kt":"2","k":"x","y":[`), "y", "at position"},
		{"k entry null", rep(`"k":["DCJn`, `"k":[null,"DCJn`), "k", "entry 0: want a string"},
		{"n entry number", rep(`"n":["EOBL`, `"n":[1,"EOBL`), "n", "entry 0"},
		{"bt not hex", rep(`"bt":"0"`, `"bt":"x"`), "bt", "not a lowercase hex"},
		{"a not a list", rep(`"a":[]`, `"a":{}`), "a", "want a list"},
		{"c not a list", rep(`"c":[]`, `"c":"EO"`), "c", "want a list of strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseEvent([]byte(tt.raw))
			if err == nil {
				t.Fatalf("parsed: %+v", e)
			}
			checkErr(t, err, nil, tt.field, tt.text)
		})
	}
	if _, err := ParseEvent(make([]byte, MaxEventSize+1)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized event: %v", err)
	}
}

func TestParseStreamErrors(t *testing.T) {
	stream := vectorStream(t)
	icpLen := len(readVector(t, "rot_remove.icp.json"))
	att := string(readVector(t, "rot_remove.icp.att"))
	evt := string(stream[:icpLen])
	tests := []struct {
		name string
		data string
		text string
	}{
		{"junk first", "xx", "stream at offset 0: want an event ('{'), found \"xx\""},
		{"junk after attachment", evt + att + "zz", fmt.Sprintf("stream at offset %d: want an event", icpLen+len(att))},
		{"not a KERI event", `{"a":1,"b":"xxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`, "stream at offset 0: event does not start with a KERI 1.0 JSON version string"},
		{"size beyond the data", evt[:300], "version string says 487 bytes, only 300 follow"},
		{"size too small", `{"v":"KERI10JSON000001_"}`, "version string size 1 too small"},
		{"size not hex", `{"v":"KERI10JSONxyzxyz_"}`, "want 6 hex digits"},
		{"other group", evt + "-VAB" + att, fmt.Sprintf("stream at offset %d: attachment group \"-VAB\" unsupported", icpLen)},
		{"first-seen couple", evt + "-EAB0AAAAAAAAAAAAAAAAAAAAAA", fmt.Sprintf("stream at offset %d: attachment group \"-EAB\" unsupported", icpLen)},
		{"count larger than the bytes", evt + "-AAD" + att[4:], fmt.Sprintf("stream at offset %d: attachment at offset 2: count 3 needs at least 264 bytes, 176 follow", icpLen)},
		{"huge count", evt + "-A__" + att[4:], "count 4095 needs at least 360360 bytes, 176 follow"},
		{"empty group", evt + "-AAA", "empty signature group"},
		{"bad count char", evt + "-A*A" + att[4:], "attachment at offset 2: count: bad base64 character '*'"},
		{"short counter", evt + "-A", "want a 4-character counter"},
		{"bad siger code", evt + "-AAB" + "Z" + att[5:92], fmt.Sprintf("stream at offset %d: attachment at offset 4 (signature 1 of 1): signature code \"Z\": unsupported", icpLen)},
		{"siger bad char", evt + "-AAB" + att[4:50] + "{" + att[51:92], "signature code A: bad base64 character '{' at position 46"},
		{"siger with newline", evt + "-AAB" + att[4:50] + "\n" + att[51:92], "bad base64 character '\\n' at position 46"},
		{"siger pad bits", evt + "-AAB" + att[4:6] + "_" + att[7:92], "non-zero pad bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseStream([]byte(tt.data))
			if err == nil {
				t.Fatal("parsed")
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not say %q", err, tt.text)
			}
		})
	}
	if _, err := Replay(nil); err == nil {
		t.Errorf("empty KEL replayed")
	}
}

// allocated returns the bytes f allocates (the least of three runs, as the
// runtime allocates a little on its own now and then).
func allocated(f func()) uint64 {
	least := ^uint64(0)
	for range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// TestOversizedRefusedBeforeAllocation checks that a stream over 64 MiB, a
// signature count larger than the bytes that follow and an event size larger
// than the stream are refused without allocating for them.
func TestOversizedRefusedBeforeAllocation(t *testing.T) {
	const budget = 4 << 10 // an error message, nothing sized by the input
	big := make([]byte, MaxStreamSize+1)
	big[0] = '{'
	group := []byte("-A__" + strings.Repeat("A", 88*10))
	claim := []byte(`{"v":"KERI10JSONffffff_","t":"icp"}`)
	tests := []struct {
		name string
		f    func() error
		text string
	}{
		{"stream over 64 MiB", func() error { _, err := ParseStream(big); return err }, fmt.Sprintf("%d bytes, larger than %d", MaxStreamSize+1, MaxStreamSize)},
		{"event over the version string's limit", func() error { _, err := ParseEvent(big[:MaxEventSize+1]); return err }, "larger than"},
		{"count 4095 over 880 bytes", func() error {
			_, _, err := ParseSigGroup(group)
			return err
		}, "count 4095 needs at least"},
		{"event claiming 16 MiB", func() error {
			_, err := ParseStream(claim)
			return err
		}, "only 35 follow"},
	}
	for _, tt := range tests {
		var err error
		n := allocated(func() { err = tt.f() })
		if err == nil || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.text)
		}
		if n > budget {
			t.Errorf("%s: %d bytes allocated before refusing", tt.name, n)
		}
	}
}

func TestEventErrorNamesEvent(t *testing.T) {
	stream := vectorStream(t)
	events, err := ParseStream(stream)
	if err != nil {
		t.Fatal(err)
	}
	events[1].Sigs = events[1].Sigs[:1]
	_, err = Replay(events)
	var ee *EventError
	if !errors.As(err, &ee) || ee.Sn != 1 || ee.Type != TypeRotation || !errors.Is(err, ErrThreshold) {
		t.Fatalf("error %v", err)
	}
	if want := "event s=1 (rot ENb3ofWuID9qeLGISJKezex1h2HgG4EbIqI0BE5Uee1a): signatures do not meet the threshold: kt 2"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want prefix %q", err, want)
	}
	if bytes.Contains([]byte(err.Error()), []byte("\n")) {
		t.Errorf("multi-line error")
	}
}

// TestSAIDInputFastPath checks the one-pass SAID input against the two-pass
// form it replaces.
func TestSAIDInputFastPath(t *testing.T) {
	raws := [][]byte{readVector(t, "rot_remove.icp.json"), readVector(t, "rot_remove.rot.json")}
	k := newEd25519Key(t, 1)
	basic, err := NewInception(InceptionSpec{Keys: pubs(k), Threshold: SimpleThreshold(1), NextThreshold: SimpleThreshold(0), Basic: true})
	if err != nil {
		t.Fatal(err)
	}
	raws = append(raws, basic.Raw())
	for _, raw := range raws {
		e, err := ParseEvent(raw)
		if err != nil {
			t.Fatal(err)
		}
		if fast, slow := e.saidInput(), e.saidInputSlow(); !bytes.Equal(fast, slow) {
			t.Errorf("SAID input:\n fast %s\n slow %s", fast, slow)
		}
	}
}
