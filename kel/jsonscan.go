package kel

import (
	"bytes"
	"encoding/json"
)

// This file holds the fast paths of event parsing: splitting a valid JSON
// object into its members and decoding plain strings without going through
// encoding/json's reflection. Anything unusual (invalid JSON, escapes) falls
// back to encoding/json, which also words the errors.

// splitValidObject splits raw, which json.Valid accepted, into its keys in
// order and their values. ok is false when raw is not an object or a key
// holds an escape or appears twice: the caller then takes the slow path.
func splitValidObject(raw []byte) (keys []string, values map[string]json.RawMessage, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, nil, false
	}
	keys = make([]string, 0, 16)
	values = make(map[string]json.RawMessage, 16)
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return keys, values, i+1 == len(raw)
	}
	for i < len(raw) {
		if raw[i] != '"' {
			return nil, nil, false
		}
		end := stringEnd(raw, i)
		key := raw[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			return nil, nil, false
		}
		k := string(key)
		if _, dup := values[k]; dup {
			return nil, nil, false
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return nil, nil, false
		}
		start := skipSpace(raw, i+1)
		end = valueEnd(raw, start)
		keys = append(keys, k)
		values[k] = raw[start:end:end]
		i = skipSpace(raw, end)
		if i >= len(raw) {
			return nil, nil, false
		}
		if raw[i] == '}' {
			return keys, values, i+1 == len(raw)
		}
		if raw[i] != ',' {
			return nil, nil, false
		}
		i = skipSpace(raw, i+1)
	}
	return nil, nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the closing quote of the string that
// starts at b[i] (valid JSON assumed; len(b) if unterminated).
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd returns the index after the JSON value that starts at b[i]
// (valid JSON assumed).
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// decodeString decodes a JSON string value; ok is false when v is not a
// string (null included).
func decodeString(v json.RawMessage) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	if plainASCII(v[1 : len(v)-1]) {
		return string(v[1 : len(v)-1]), true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// plainASCII reports whether a string's body needs no decoding: ASCII
// without escapes or quotes (encoding/json would also rewrite invalid UTF-8).
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || c == '\\' || c == '"' || c < 0x20 {
			return false
		}
	}
	return true
}

// decodeStringList decodes a JSON list of strings; ok is false for
// anything else (null, or a list holding a non-string), with bad the index
// of the first entry that is not a string (-1 when v is not a list).
func decodeStringList(v json.RawMessage) (l []string, bad int, ok bool) {
	if len(v) < 2 || v[0] != '[' || v[len(v)-1] != ']' {
		return nil, -1, false
	}
	l = []string{}
	i := skipSpace(v, 1)
	if i == len(v)-1 {
		return l, 0, true
	}
	for n := 0; i < len(v); n++ {
		end := valueEnd(v, i)
		s, isStr := decodeString(v[i:end])
		if !isStr {
			return nil, n, false
		}
		l = append(l, s)
		i = skipSpace(v, end)
		if i >= len(v) {
			return nil, -1, false
		}
		if v[i] == ']' {
			return l, 0, i == len(v)-1
		}
		if v[i] != ',' {
			return nil, -1, false
		}
		i = skipSpace(v, i+1)
	}
	return nil, -1, false
}

// isCompact reports whether raw has no whitespace outside strings, as
// keripy's serialization (separators "," and ":") has none.
func isCompact(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			i = stringEnd(raw, i) - 1
		case ' ', '\t', '\n', '\r':
			return false
		}
	}
	return true
}
