package kel

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// codeSourceGroup is the CESR counter of a group of seal source couples.
const codeSourceGroup = "-G"

// SourceSeal is a delegated event's back-reference to the delegator event
// that anchors it: a -G couple of a Seqner (code 0A, 16-byte big-endian
// sequence number) and a Saider (the event's SAID). auths attaches one to
// every dip and drt it writes, after the -A group (auths-keri's events.rs,
// SourceSeal).
type SourceSeal struct {
	Sn   uint64
	SAID string
}

// seqnerLen is the qb64 length of a Seqner.
const seqnerLen = 24

// ParseSourceGroup parses a -G## group at the start of data and returns its
// couples and the bytes it took.
func ParseSourceGroup(data []byte) ([]SourceSeal, int, error) {
	if !bytes.HasPrefix(data, []byte(codeSourceGroup)) || len(data) < 4 {
		return nil, 0, fmt.Errorf("source seal group: want -G## at the start")
	}
	count, err := b64Int(string(data[2:4]))
	if err != nil {
		return nil, 0, fmt.Errorf("source seal group count %q: %w", data[2:4], err)
	}
	if count == 0 {
		return nil, 0, fmt.Errorf("source seal group: no couples")
	}
	off := 4
	out := make([]SourceSeal, 0, min(count, (len(data)-off)/(seqnerLen+SAIDLen)))
	for i := 0; i < count; i++ {
		if len(data)-off < seqnerLen+SAIDLen {
			return nil, 0, fmt.Errorf("source seal %d: truncated (%d bytes left)", i, len(data)-off)
		}
		sq := string(data[off : off+seqnerLen])
		if sq[:2] != "0A" {
			return nil, 0, fmt.Errorf("source seal %d: sequence number code %q, want 0A", i, sq[:2])
		}
		raw, err := decodeSeqner(sq)
		if err != nil {
			return nil, 0, fmt.Errorf("source seal %d: %w", i, err)
		}
		if binary.BigEndian.Uint64(raw[:8]) != 0 {
			return nil, 0, fmt.Errorf("source seal %d: sequence number beyond 64 bits", i)
		}
		said := string(data[off+seqnerLen : off+seqnerLen+SAIDLen])
		if _, err := ParseDigest(said); err != nil {
			return nil, 0, fmt.Errorf("source seal %d: %w", i, err)
		}
		out = append(out, SourceSeal{Sn: binary.BigEndian.Uint64(raw[8:]), SAID: said})
		off += seqnerLen + SAIDLen
	}
	return out, off, nil
}

// decodeSeqner decodes the 16 raw bytes of a Seqner: its two-character
// code stands for the two lead bytes of padding.
func decodeSeqner(qb64 string) ([]byte, error) {
	if err := checkB64(qb64[2:], 2); err != nil {
		return nil, fmt.Errorf("sequence number %q: %w", qb64, err)
	}
	buf, err := b64.DecodeString("AA" + qb64[2:])
	if err != nil {
		return nil, fmt.Errorf("sequence number %q: bad base64: %w", qb64, err)
	}
	if buf[0] != 0 || buf[1] != 0 {
		return nil, fmt.Errorf("sequence number %q: non-zero pad bits", qb64)
	}
	return buf[2:], nil
}

// EncodeSourceGroup writes couples as a -G## group (several when there are
// more than a two-character count can say).
func EncodeSourceGroup(couples []SourceSeal) ([]byte, error) {
	if len(couples) == 0 {
		return nil, fmt.Errorf("source seal group: no couples")
	}
	const maxCount = 64*64 - 1
	var b bytes.Buffer
	for start := 0; start < len(couples); start += maxCount {
		part := couples[start:min(len(couples), start+maxCount)]
		b.WriteString(codeSourceGroup + intB64(len(part), 2))
		for _, c := range part {
			if len(c.SAID) != SAIDLen {
				return nil, fmt.Errorf("source seal: SAID %q", clip(c.SAID))
			}
			raw := make([]byte, 18)
			binary.BigEndian.PutUint64(raw[10:], c.Sn)
			b.WriteString("0A" + b64.EncodeToString(raw)[2:])
			b.WriteString(c.SAID)
		}
	}
	return b.Bytes(), nil
}
