package kel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// Threshold is a signing threshold: simple (a count of signatures) or
// weighted (clauses of fractional weights, keripy semantics: the clauses
// split the key list in order and each must reach a weight sum of 1).
type Threshold struct {
	weighted bool
	count    uint64
	clauses  [][]*big.Rat
}

// SimpleThreshold returns the threshold "n signatures".
func SimpleThreshold(n uint64) Threshold { return Threshold{count: n} }

// WeightedThreshold returns a weighted threshold from clauses of fractions
// written "n/d" or as whole numbers.
func WeightedThreshold(clauses [][]string) (Threshold, error) {
	if len(clauses) == 0 {
		return Threshold{}, fmt.Errorf("weighted threshold: no clauses")
	}
	t := Threshold{weighted: true}
	for ci, c := range clauses {
		if len(c) == 0 {
			return Threshold{}, fmt.Errorf("weighted threshold clause %d: empty", ci)
		}
		var clause []*big.Rat
		sum := new(big.Rat)
		for wi, w := range c {
			r, err := parseWeight(w)
			if err != nil {
				return Threshold{}, fmt.Errorf("weighted threshold clause %d weight %d: %w", ci, wi, err)
			}
			clause = append(clause, r)
			sum.Add(sum, r)
		}
		if sum.Cmp(big.NewRat(1, 1)) < 0 {
			return Threshold{}, fmt.Errorf("weighted threshold clause %d: weights sum to %s, less than 1: never satisfiable", ci, sum.RatString())
		}
		t.clauses = append(t.clauses, clause)
	}
	return t, nil
}

func parseWeight(w string) (*big.Rat, error) {
	num, den, frac := strings.Cut(w, "/")
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || num == "" || (len(num) > 1 && num[0] == '0') {
		return nil, fmt.Errorf("weight %q: want n/d or a whole number", clip(w))
	}
	d := uint64(1)
	if frac {
		d, err = strconv.ParseUint(den, 10, 32)
		if err != nil || d == 0 || den == "" || den[0] == '0' {
			return nil, fmt.Errorf("weight %q: bad denominator", clip(w))
		}
	}
	r := new(big.Rat).SetFrac(new(big.Int).SetUint64(n), new(big.Int).SetUint64(d))
	if r.Cmp(big.NewRat(1, 1)) > 0 {
		return nil, fmt.Errorf("weight %q: greater than 1", clip(w))
	}
	return r, nil
}

// ParseThreshold parses a threshold as it appears in an event: a hex string,
// a flat list of weights (one clause), or a list of lists of weights.
// Nested weight maps ({"1/3": [...]}) are refused.
func ParseThreshold(raw json.RawMessage) (Threshold, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return Threshold{}, fmt.Errorf("threshold: empty")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Threshold{}, fmt.Errorf("threshold: %w", err)
		}
		n, err := parseHex(s)
		if err != nil {
			return Threshold{}, fmt.Errorf("threshold %q: %w", clip(s), err)
		}
		return SimpleThreshold(n), nil
	case '[':
		if containsObject(raw) {
			return Threshold{}, fmt.Errorf("threshold: nested weight maps are not supported (want weight strings or lists of them)")
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return Threshold{}, fmt.Errorf("threshold: %w", err)
		}
		if len(items) == 0 {
			return Threshold{}, fmt.Errorf("threshold: empty list")
		}
		var clauses [][]string
		flat := bytes.HasPrefix(bytes.TrimSpace(items[0]), []byte(`"`))
		if flat {
			var c []string
			if err := json.Unmarshal(raw, &c); err != nil {
				return Threshold{}, fmt.Errorf("threshold: flat weight list: %w", err)
			}
			clauses = [][]string{c}
		} else {
			for i, it := range items {
				var c []string
				if err := json.Unmarshal(it, &c); err != nil {
					if bytes.HasPrefix(bytes.TrimSpace(it), []byte("{")) {
						return Threshold{}, fmt.Errorf("threshold clause %d: nested weight maps are not supported", i)
					}
					return Threshold{}, fmt.Errorf("threshold clause %d: want a list of weight strings", i)
				}
				clauses = append(clauses, c)
			}
		}
		return WeightedThreshold(clauses)
	}
	return Threshold{}, fmt.Errorf("threshold %s: want a hex string or a list of weights", clip(string(raw)))
}

// containsObject reports whether a JSON value holds an object anywhere.
func containsObject(raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if d, ok := tok.(json.Delim); ok && d == '{' {
			return true
		}
	}
}

// ParseThresholdText parses a threshold as a person writes it on a command
// line: "N" (decimal count), a comma list of fractions for one weighted
// clause ("1/2,1/2,1/2"), or JSON in any form an event accepts.
func ParseThresholdText(s string) (Threshold, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Threshold{}, fmt.Errorf("threshold: empty")
	}
	if s[0] == '[' || s[0] == '"' {
		return ParseThreshold(json.RawMessage(s))
	}
	if strings.ContainsAny(s, ",/") {
		return WeightedThreshold([][]string{strings.Split(s, ",")})
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return Threshold{}, fmt.Errorf("threshold %q: want N, a comma list of fractions, or JSON", clip(s))
	}
	return SimpleThreshold(n), nil
}

// Weighted reports whether the threshold is weighted.
func (t Threshold) Weighted() bool { return t.weighted }

// Count returns a simple threshold's count (0 for weighted ones).
func (t Threshold) Count() uint64 { return t.count }

// Size returns the number of keys a weighted threshold weighs (0 for simple).
func (t Threshold) Size() int {
	n := 0
	for _, c := range t.clauses {
		n += len(c)
	}
	return n
}

// CheckKeys reports whether the threshold fits a list of n keys.
func (t Threshold) CheckKeys(n int) error {
	if t.weighted {
		if t.Size() != n {
			return fmt.Errorf("weighted threshold has %d weights for %d keys", t.Size(), n)
		}
		return nil
	}
	if t.count > uint64(n) {
		return fmt.Errorf("threshold %d is larger than the %d keys", t.count, n)
	}
	if n > 0 && t.count == 0 {
		return fmt.Errorf("threshold 0 with %d keys", n)
	}
	return nil
}

// Satisfied reports whether signatures by the keys at the given indexes
// (duplicates count once) meet the threshold.
func (t Threshold) Satisfied(indexes []int) bool {
	var seen indexSet
	for _, i := range indexes {
		seen.add(i)
	}
	if !t.weighted {
		return uint64(seen.len()) >= t.count
	}
	one := big.NewRat(1, 1)
	off := 0
	for _, c := range t.clauses {
		sum := new(big.Rat)
		for j, w := range c {
			if seen.has(off + j) {
				sum.Add(sum, w)
			}
		}
		if sum.Cmp(one) < 0 {
			return false
		}
		off += len(c)
	}
	return true
}

// indexSet is a set of key indexes: a bitmap for the first 64, a map
// beyond (rare: key lists that long are).
type indexSet struct {
	small uint64
	big   map[int]bool
}

func (s *indexSet) add(i int) {
	switch {
	case i < 0:
	case i < 64:
		s.small |= 1 << uint(i)
	default:
		if s.big == nil {
			s.big = make(map[int]bool)
		}
		s.big[i] = true
	}
}

func (s *indexSet) has(i int) bool {
	if i >= 0 && i < 64 {
		return s.small&(1<<uint(i)) != 0
	}
	return s.big[i]
}

func (s *indexSet) len() int { return bits.OnesCount64(s.small) + len(s.big) }

// String returns the threshold as keripy and auths both read it: a hex count,
// or a list of lists of "n/d" strings.
func (t Threshold) String() string {
	b, _ := t.MarshalJSON()
	return string(b)
}

// Text returns the threshold for people: "2", or "1/2,1/2,1/2" / JSON.
func (t Threshold) Text() string {
	if !t.weighted {
		return strconv.FormatUint(t.count, 10)
	}
	if len(t.clauses) == 1 {
		var parts []string
		for _, w := range t.clauses[0] {
			parts = append(parts, ratString(w))
		}
		return strings.Join(parts, ",")
	}
	return t.String()
}

func ratString(r *big.Rat) string {
	return r.Num().String() + "/" + r.Denom().String()
}

// MarshalJSON emits a hex string or a list of lists of "n/d" strings.
func (t Threshold) MarshalJSON() ([]byte, error) {
	if !t.weighted {
		return []byte(`"` + strconv.FormatUint(t.count, 16) + `"`), nil
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, c := range t.clauses {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		for j, w := range c {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"` + ratString(w) + `"`)
		}
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// UnmarshalJSON accepts every form ParseThreshold does.
func (t *Threshold) UnmarshalJSON(b []byte) error {
	v, err := ParseThreshold(b)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// parseHex parses a KERI hex number: lowercase, no leading zeros.
func parseHex(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty hex number")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("hex number with a leading zero")
	}
	if len(s) > 16 {
		return 0, fmt.Errorf("hex number too large")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return 0, fmt.Errorf("not a lowercase hex number")
		}
	}
	return strconv.ParseUint(s, 16, 64)
}
