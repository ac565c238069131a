package kel

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/gowebpki/jcs"
)

// AttestationSAID returns the SAID auths anchors for a device attestation
// document (a JSON object), computed as the registry layout describes:
//
//  1. drop the top-level "x" field (the signatures) if present;
//  2. canonicalize with RFC 8785 (sorted keys, canonical numbers);
//  3. set "d" to 44 '#' and "v" to the version string; keys already present
//     keep their sorted place, absent ones are appended, "d" before "v";
//  4. the version string is KERI10JSON + six hex digits of the size of that
//     serialization + "_", and the SAID is its Blake3-256 digest (code E).
//
// The document itself is not changed.
func AttestationSAID(doc []byte) (string, error) {
	ser, err := attestationSAIDInput(doc)
	if err != nil {
		return "", err
	}
	return Digest(ser), nil
}

// attestationSAIDInput returns the exact bytes whose digest is the
// attestation's SAID.
func attestationSAIDInput(doc []byte) ([]byte, error) {
	// RFC 8785 parsing also rejects duplicate keys and invalid text.
	if _, err := jcs.Transform(doc); err != nil {
		return nil, fmt.Errorf("attestation: not canonicalizable JSON: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("attestation: not a JSON object")
	}
	delete(fields, "x")
	_, hasD := fields["d"]
	_, hasV := fields["v"]
	placeholder, _ := json.Marshal(saidPlaceholder)

	build := func(version string) ([]byte, error) {
		vjson, _ := json.Marshal(version)
		if hasD {
			fields["d"] = placeholder
		}
		if hasV {
			fields["v"] = vjson
		}
		// Re-encoding a map of raw values only reorders members; the RFC 8785
		// pass below restores canonical key order, numbers and escapes.
		enc, err := json.Marshal(fields)
		if err != nil {
			return nil, fmt.Errorf("attestation: %w", err)
		}
		out, err := jcs.Transform(enc)
		if err != nil {
			return nil, fmt.Errorf("attestation: canonicalizing: %w", err)
		}
		if !hasD {
			out = appendMember(out, "d", placeholder)
		}
		if !hasV {
			out = appendMember(out, "v", vjson)
		}
		return out, nil
	}
	// The version string has a fixed width, so a first pass with any size
	// gives the final size.
	first, err := build(versionString(0))
	if err != nil {
		return nil, err
	}
	if len(first) > MaxEventSize {
		return nil, fmt.Errorf("attestation: %d bytes, larger than a version string can describe", len(first))
	}
	return build(versionString(len(first)))
}

// appendMember adds "name":value at the end of a compact JSON object.
func appendMember(obj []byte, name string, value []byte) []byte {
	obj = bytes.TrimSuffix(obj, []byte("}"))
	var b bytes.Buffer
	b.Write(obj)
	if len(obj) > 1 {
		b.WriteByte(',')
	}
	b.WriteString(`"` + name + `":`)
	b.Write(value)
	b.WriteByte('}')
	return b.Bytes()
}
