package kel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// The fuzz targets prove that nothing panics on input and that whatever
// parses re-encodes to the bytes it came from. Seeds: the keripy vectors
// (f.Add) and testdata/fuzz/<FuzzName>/.

func FuzzParseEvent(f *testing.F) {
	f.Add(readVector(f, "rot_remove.icp.json"))
	f.Add(readVector(f, "rot_remove.rot.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEvent(data)
		if err != nil {
			if e != nil {
				t.Fatalf("event and error: %v", err)
			}
			return
		}
		if !bytes.Equal(e.Raw(), data) {
			t.Fatalf("Raw() differs from the input")
		}
		said := e.ComputeSAID()
		if len(said) != SAIDLen {
			t.Fatalf("SAID %q", said)
		}
		_ = e.CheckSAID()
		if e.IsEstablishment() {
			for _, th := range []Threshold{e.KeyThreshold, e.NextThreshold} {
				back, err := ParseThreshold([]byte(th.String()))
				if err != nil || back.String() != th.String() {
					t.Fatalf("threshold %s does not round-trip: %v", th, err)
				}
			}
		}
		// Validation must fail cleanly (no signatures), never panic.
		if _, err := Apply(nil, SignedEvent{Event: e}); err == nil && e.KeyThreshold.Count() != 0 {
			t.Fatalf("unsigned event accepted")
		}
	})
}

func FuzzParseSigGroup(f *testing.F) {
	f.Add(readVector(f, "rot_remove.icp.att"))
	f.Add(readVector(f, "rot_remove.rot.att"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sigs, n, err := ParseSigGroup(data)
		if err != nil {
			return
		}
		if n > len(data) || len(sigs) == 0 {
			t.Fatalf("took %d of %d bytes, %d signatures", n, len(data), len(sigs))
		}
		out, err := EncodeSigGroup(sigs)
		if err != nil {
			t.Fatalf("decoded group does not encode: %v", err)
		}
		if !bytes.Equal(out, data[:n]) {
			t.Fatalf("re-encoded with codes kept:\n got %q\nwant %q", out, data[:n])
		}
		// With the codes cleared the encoder picks its own; the decoded
		// fields must survive.
		fresh := make([]Siger, len(sigs))
		for i, s := range sigs {
			fresh[i] = NewSiger(s.Alg, s.Index, s.Ondex, s.Raw)
		}
		out, err = EncodeSigGroup(fresh)
		if err != nil {
			t.Fatalf("encoder-chosen codes: %v", err)
		}
		back, m, err := ParseSigGroup(out)
		if err != nil || m != len(out) || len(back) != len(sigs) {
			t.Fatalf("re-parse: %v", err)
		}
		for i := range back {
			if back[i].Index != sigs[i].Index || back[i].Ondex != sigs[i].Ondex || back[i].Alg != sigs[i].Alg || !bytes.Equal(back[i].Raw, sigs[i].Raw) {
				t.Fatalf("signature %d changed: %+v → %+v", i, sigs[i], back[i])
			}
		}
	})
}

func FuzzParseStream(f *testing.F) {
	f.Add(vectorStream(f))
	f.Add(append(readVector(f, "rot_remove.icp.json"), readVector(f, "rot_remove.icp.att")...))
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := ParseStream(data)
		// The parallel parser must give the same events and the same error.
		pevents, perr := ParseStreamParallel(data, 3)
		if fmt.Sprint(err) != fmt.Sprint(perr) || len(events) != len(pevents) {
			t.Fatalf("ParseStream: %d events, %v; ParseStreamParallel: %d events, %v", len(events), err, len(pevents), perr)
		}
		for i := range pevents {
			if !bytes.Equal(events[i].Event.Raw(), pevents[i].Event.Raw()) || len(events[i].Sigs) != len(pevents[i].Sigs) {
				t.Fatalf("event %d differs between the serial and parallel parsers", i)
			}
		}
		if err != nil {
			return
		}
		out, err := EncodeStream(events)
		if err != nil {
			t.Fatalf("parsed stream does not encode: %v", err)
		}
		again, err := ParseStream(out)
		if err != nil || len(again) != len(events) {
			t.Fatalf("re-encoded stream: %d events, %v", len(again), err)
		}
		// Validate everything but the cryptography (which the coverage
		// instrumentation makes thousands of times slower): each signature
		// is taken as verifying, so thresholds, indexes, digests and the
		// state machine all run.
		var st *KeyState
		for _, se := range events {
			ok := make([]bool, len(se.Sigs))
			for i := range ok {
				ok[i] = true
			}
			next, err := applyChecked(st, se, ok, "")
			if err != nil {
				return
			}
			st = next
		}
	})
}

// FuzzJSONScan checks the fast JSON paths of event parsing against
// encoding/json: same members, same strings, same lists.
func FuzzJSONScan(f *testing.F) {
	f.Add(readVector(f, "rot_remove.icp.json"))
	f.Add(readVector(f, "rot_remove.rot.json"))
	f.Add([]byte(`{"a\u0041":1, "b" : [ "x\"y" , "\u00e9", null ] ,"c":{"d":[1,{"e":"}"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		keys, values, ok := splitValidObject(data)
		if ok {
			k2, v2, err := splitObject(data)
			if err != nil || !slices.Equal(keys, k2) || len(values) != len(v2) {
				t.Fatalf("fast split %q, slow %q (%v)", keys, k2, err)
			}
			for k, v := range values {
				if !bytes.Equal(v, v2[k]) {
					t.Fatalf("member %q: fast %q, slow %q", k, v, v2[k])
				}
			}
		}
		// Values reach the decoders without surrounding whitespace.
		data = bytes.TrimSpace(data)
		var want string
		errWant := json.Unmarshal(data, &want)
		got, isStr := decodeString(data)
		if isStr != (errWant == nil && data[0] == '"') || isStr && got != want {
			t.Fatalf("decodeString %q, %v; encoding/json %q, %v", got, isStr, want, errWant)
		}
		var wantList []json.RawMessage
		list, _, isList := decodeStringList(data)
		if json.Unmarshal(data, &wantList) == nil && wantList != nil {
			allStrings := true
			var strs []string
			for _, it := range wantList {
				s, ok := decodeString(it)
				allStrings = allStrings && ok
				strs = append(strs, s)
			}
			if isList != allStrings || isList && len(list) != len(strs) {
				t.Fatalf("decodeStringList %q, %v; want %q, %v", list, isList, strs, allStrings)
			}
			for i := range list {
				if list[i] != strs[i] {
					t.Fatalf("entry %d: %q, want %q", i, list[i], strs[i])
				}
			}
		} else if isList {
			t.Fatalf("decodeStringList accepted %q", data)
		}
	})
}
