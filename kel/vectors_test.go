package kel

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// vectorCase is one event of the keripy conformance vectors and what keri.md
// says about it.
type vectorCase struct {
	name      string
	event     string // file with the exact signed bytes
	att       string // file with its -A## group
	typ       string
	said      string
	codes     []string
	indexes   [][2]int // index, ondex
	kt        string   // threshold the signatures satisfy
	priorNt   string   // for a rotation: the prior next threshold
	keysAfter int
}

var vectorCases = []vectorCase{
	{
		name: "icp", event: "rot_remove.icp.json", att: "rot_remove.icp.att",
		typ: TypeInception, said: "EMd282TNa216KX7fuXQyuic3SSv7J6dpv6YLqQFlT5_S",
		codes: []string{"A", "A"}, indexes: [][2]int{{0, 0}, {1, 1}},
		kt: `"2"`, keysAfter: 3,
	},
	{
		name: "rot", event: "rot_remove.rot.json", att: "rot_remove.rot.att",
		typ: TypeRotation, said: "ENb3ofWuID9qeLGISJKezex1h2HgG4EbIqI0BE5Uee1a",
		codes: []string{"2A", "2A"}, indexes: [][2]int{{0, 1}, {1, 2}},
		kt: `"2"`, priorNt: `"2"`, keysAfter: 2,
	},
}

// TestKeripyVectors walks the conformance vectors: SAIDs recompute,
// attachments decode to the documented codes and indexes and re-encode to the
// same bytes (with the decoded code kept and with the encoder choosing), and
// the signatures satisfy the thresholds as Apply checks them.
func TestKeripyVectors(t *testing.T) {
	var st *KeyState
	for _, vc := range vectorCases {
		t.Run(vc.name, func(t *testing.T) {
			raw := readVector(t, vc.event)
			att := readVector(t, vc.att)
			e, err := ParseEvent(raw)
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if !bytes.Equal(e.Raw(), raw) {
				t.Fatalf("Raw() differs from the vector bytes")
			}
			if e.Type != vc.typ {
				t.Errorf("type %s, want %s", e.Type, vc.typ)
			}
			if got := e.ComputeSAID(); got != vc.said || e.SAID != vc.said {
				t.Errorf("SAID: computed %s, d %s, want %s", got, e.SAID, vc.said)
			}
			if err := e.CheckSAID(); err != nil {
				t.Errorf("CheckSAID: %v", err)
			}

			sigs, n, err := ParseSigGroup(att)
			if err != nil {
				t.Fatalf("ParseSigGroup: %v", err)
			}
			if n != len(att) {
				t.Errorf("ParseSigGroup took %d bytes of %d", n, len(att))
			}
			if len(sigs) != len(vc.codes) {
				t.Fatalf("%d signatures, want %d", len(sigs), len(vc.codes))
			}
			for i, s := range sigs {
				if s.Code != vc.codes[i] || s.Index != vc.indexes[i][0] || s.Ondex != vc.indexes[i][1] || s.Alg != Ed25519 {
					t.Errorf("signature %d: code %s index %d ondex %d alg %v, want %s %d %d ed25519",
						i, s.Code, s.Index, s.Ondex, s.Alg, vc.codes[i], vc.indexes[i][0], vc.indexes[i][1])
				}
			}
			for _, keep := range []bool{true, false} {
				re := append([]Siger(nil), sigs...)
				if !keep {
					for i := range re {
						re[i].Code = ""
					}
				}
				out, err := EncodeSigGroup(re)
				if err != nil {
					t.Fatalf("EncodeSigGroup (code kept %v): %v", keep, err)
				}
				if !bytes.Equal(out, att) {
					t.Errorf("re-encoded attachment (code kept %v):\n got %s\nwant %s", keep, out, att)
				}
			}

			// Each signature alone is valid but below kt.
			for i := range sigs {
				_, err := Apply(st, SignedEvent{Event: e, Sigs: sigs[i : i+1]})
				if !errors.Is(err, ErrThreshold) {
					t.Errorf("one signature (%d) of kt=%s: err %v, want ErrThreshold", i, vc.kt, err)
				}
			}
			next, err := Apply(st, SignedEvent{Event: e, Sigs: sigs})
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if next.Threshold.String() != vc.kt {
				t.Errorf("kt %s, want %s", next.Threshold, vc.kt)
			}
			if st != nil && st.NextThreshold.String() != vc.priorNt {
				t.Errorf("prior nt %s, want %s", st.NextThreshold, vc.priorNt)
			}
			if len(next.CurrentKeys) != vc.keysAfter || next.LastEventSAID != vc.said {
				t.Errorf("state: %d keys, last %s; want %d, %s", len(next.CurrentKeys), next.LastEventSAID, vc.keysAfter, vc.said)
			}
			st = next
		})
	}
}

func TestKeripyVectorStream(t *testing.T) {
	stream := vectorStream(t)
	events, err := ParseStream(stream)
	if err != nil {
		t.Fatalf("ParseStream: %v", err)
	}
	if len(events) != 2 {
		t.Fatalf("%d events, want 2", len(events))
	}
	st, err := Replay(events)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if st.Prefix != vectorCases[0].said || st.Sequence != 1 || len(st.CurrentKeys) != 2 || st.Threshold.Count() != 2 {
		t.Errorf("final state %+v", st)
	}
	par, err := ReplayParallel(events, 2)
	if err != nil {
		t.Fatalf("ReplayParallel: %v", err)
	}
	if !reflect.DeepEqual(st, par) {
		t.Errorf("ReplayParallel state differs:\n%+v\n%+v", par, st)
	}
	re, err := EncodeStream(events)
	if err != nil || !bytes.Equal(re, stream) {
		t.Errorf("EncodeStream: err %v, equal %v", err, bytes.Equal(re, stream))
	}
}

// TestKeripyVectorNextDigests checks the rotation's keys against the
// inception's next digests, and the next-key digest vector of keri.md.
func TestKeripyVectorNextDigests(t *testing.T) {
	raw := make([]byte, ed25519.PublicKeySize)
	for i := range raw {
		raw[i] = byte(i)
	}
	v, err := VerferFromPublicKey(ed25519.PublicKey(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.QB64(), "DAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"; got != want {
		t.Errorf("qb64 %s, want %s", got, want)
	}
	if got, want := NextKeyDigest(v.QB64()), "EF_M_u7ASVHXfI8QzdWLq3V9ocSKqxkbujXGbi9QMtP9"; got != want {
		t.Errorf("next-key digest %s, want %s", got, want)
	}
	back, err := ParseVerfer(v.QB64())
	if err != nil || !bytes.Equal(back.Raw, raw) || back.Code != CodeEd25519 {
		t.Errorf("ParseVerfer: %v %x", err, back.Raw)
	}

	icp, err := ParseEvent(readVector(t, "rot_remove.icp.json"))
	if err != nil {
		t.Fatal(err)
	}
	rot, err := ParseEvent(readVector(t, "rot_remove.rot.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, ondex := range []int{1, 2} {
		if got := NextKeyDigest(rot.Keys[i]); got != icp.NextDigests[ondex] {
			t.Errorf("rot k[%d] digest %s, want icp n[%d] %s", i, got, ondex, icp.NextDigests[ondex])
		}
	}
}

// TestKeripyVectorTamper changes one byte of the stream at several places in
// events and attachments: each must make ParseStream or Replay fail.
func TestKeripyVectorTamper(t *testing.T) {
	icpLen := len(readVector(t, "rot_remove.icp.json"))
	icpAtt := icpLen + len(readVector(t, "rot_remove.icp.att"))
	rotLen := icpAtt + len(readVector(t, "rot_remove.rot.json"))
	stream := vectorStream(t)
	tests := []struct {
		name string
		off  int
		to   byte // replacement; 0: 'A', or 'B' where the byte is 'A'
	}{
		{"icp version size", 17, 0},
		{"icp type", 25, 0},
		{"icp d", 40, 0},
		{"icp i", 90, 0},
		{"icp s", 135, 0},
		{"icp kt", 145, 0},
		{"icp first key", 160, 0},
		{"icp next digest", 350, 0},
		{"icp last byte", icpLen - 1, 0},
		{"icp att counter", icpLen + 3, 0},
		{"icp att first code to unknown", icpLen + 4, 'Z'},
		{"icp att first code to 2-char", icpLen + 4, '2'},
		{"icp att first index", icpLen + 5, 0},
		{"icp att first sig pad char", icpLen + 6, 0},
		{"icp att first sig middle", icpLen + 50, 0},
		{"icp att first sig last", icpLen + 4 + 87, 0},
		{"icp att second index", icpLen + 4 + 88 + 1, 0},
		{"icp att second sig", icpLen + 4 + 88 + 40, 0},
		{"icp att last byte", icpAtt - 1, 0},
		{"rot d", icpAtt + 40, 0},
		{"rot p", icpAtt + 150, 0},
		{"rot key", icpAtt + 220, 0},
		{"rot last byte", rotLen - 1, 0},
		{"rot att code", rotLen + 5, 0},
		{"rot att index", rotLen + 7, 0},
		{"rot att ondex", rotLen + 9, 0},
		{"rot att sig", rotLen + 60, 0},
		{"rot att second ondex", rotLen + 4 + 92 + 5, 0},
		{"rot att last byte", len(stream) - 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := append([]byte(nil), stream...)
			switch {
			case tt.to != 0:
				bad[tt.off] = tt.to
			case bad[tt.off] == 'A':
				bad[tt.off] = 'B'
			default:
				bad[tt.off] = 'A'
			}
			events, err := ParseStream(bad)
			if err != nil {
				t.Logf("ParseStream: %v", err)
				return
			}
			if _, err := Replay(events); err == nil {
				t.Fatalf("byte %d (%q→%q) changed: Replay accepted the KEL", tt.off, stream[tt.off], bad[tt.off])
			} else {
				t.Logf("Replay: %v", err)
			}
			if _, err := ReplayParallel(events, 2); err == nil {
				t.Fatalf("byte %d changed: ReplayParallel accepted the KEL", tt.off)
			}
		})
	}
	// Relabelling an inception signature A (both lists) as B (current only)
	// changes no signed byte and no meaning: the prior-next list plays no
	// part in an inception, so keripy accepts it, and so do we.
	relabel := append([]byte(nil), stream...)
	relabel[icpLen+4] = 'B'
	if events, err := ParseStream(relabel); err != nil {
		t.Errorf("A→B relabelled icp signature: %v", err)
	} else if _, err := Replay(events); err != nil {
		t.Errorf("A→B relabelled icp signature: %v", err)
	}
	// A truncated stream and a dropped attachment fail too.
	for _, cut := range []int{len(stream) - 1, rotLen, icpAtt + 10, icpLen + 50} {
		events, err := ParseStream(stream[:cut])
		if err == nil {
			_, err = Replay(events)
		}
		if err == nil {
			t.Errorf("stream cut at %d accepted", cut)
		}
	}
}

// TestParseStreamParallel checks that parsing with several workers gives
// the events and the errors of the serial parser, on the vector stream, on
// a long generated one, and on each tampered vector stream.
func TestParseStreamParallel(t *testing.T) {
	stream := vectorStream(t)
	streams := [][]byte{stream, bytes.Repeat(stream, 50)}
	for _, pos := range []int{0, 7, 30, 200, 486, 487, 500, 600, 700, len(stream) - 1} {
		bad := bytes.Clone(stream)
		bad[pos] ^= 0x01
		streams = append(streams, bad, append(bytes.Repeat(stream, 20), bad...))
	}
	for i, s := range streams {
		want, wantErr := ParseStream(s)
		for _, workers := range []int{2, 3, 8} {
			got, err := ParseStreamParallel(s, workers)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("stream %d, %d workers: error %v, want %v", i, workers, err, wantErr)
			}
			if len(got) != len(want) {
				t.Fatalf("stream %d, %d workers: %d events, want %d", i, workers, len(got), len(want))
			}
			for j := range got {
				if !bytes.Equal(got[j].Event.Raw(), want[j].Event.Raw()) || len(got[j].Sigs) != len(want[j].Sigs) {
					t.Fatalf("stream %d, %d workers: event %d differs", i, workers, j)
				}
			}
		}
	}
}
