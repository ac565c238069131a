package anchor

import (
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/auths-dev/auths-agent/kel"
)

// Status says how far a proposal is from its thresholds.
type Status struct {
	Complete bool
	Keys     int   // number of signing keys
	Have     []int // indexes with a valid signature, sorted
	Missing  []int // indexes without one, sorted
	// Threshold is the signing threshold kt.
	Threshold    kel.Threshold
	ThresholdMet bool
	// Rotation only: the prior next threshold and whether the signatures
	// reveal enough pre-committed keys for it.
	Rotation         bool
	PriorNext        kel.Threshold
	PriorNextMet     bool
	Ondexes          []int // prior-next positions revealed, sorted
	PriorNextDigests int
}

// Status returns the proposal's progress.
func (p *Proposal) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{Keys: len(p.keys), Threshold: p.kt, Rotation: p.event.Type == kel.TypeRotation}
	for _, k := range p.keys {
		if _, ok := p.sigs[k.Index]; ok {
			st.Have = append(st.Have, k.Index)
			if k.Ondex != kel.NoOndex {
				st.Ondexes = append(st.Ondexes, k.Ondex)
			}
		} else {
			st.Missing = append(st.Missing, k.Index)
		}
	}
	st.ThresholdMet = p.kt.Satisfied(st.Have)
	st.Complete = st.ThresholdMet
	if st.Rotation {
		st.PriorNext, st.PriorNextDigests = p.priorNT, len(p.priorNext)
		slices.Sort(st.Ondexes)
		st.PriorNextMet = p.priorNT.Satisfied(st.Ondexes)
		st.Complete = st.Complete && st.PriorNextMet
	}
	return st
}

// Needs says in one line what the proposal has and still needs, e.g.
// "2 of 3, has index 0" or, for a weighted threshold, "weights 1/2,1/2,1/2
// (each clause must reach 1): has 1/2 (index 0)".
func (s Status) Needs() string {
	out := thresholdProgress(s.Threshold, s.Keys, s.Have, "index")
	if s.Rotation {
		out += "; prior next keys: " + thresholdProgress(s.PriorNext, s.PriorNextDigests, s.Ondexes, "position")
	}
	if s.Complete {
		out += " (complete)"
	}
	return out
}

func thresholdProgress(t kel.Threshold, n int, have []int, what string) string {
	if !t.Weighted() {
		return fmt.Sprintf("%d of %d, %s", t.Count(), n, hasText(have, what))
	}
	clauses := weights(t)
	var parts []string
	off := 0
	for ci, c := range clauses {
		sum := new(big.Rat)
		var idx []int
		for j, w := range c {
			if slices.Contains(have, off+j) {
				sum.Add(sum, w)
				idx = append(idx, off+j)
			}
		}
		label := "has"
		if len(clauses) > 1 {
			label = fmt.Sprintf("clause %d has", ci+1)
		}
		parts = append(parts, fmt.Sprintf("%s %s of 1 (%s)", label, ratText(sum), hasList(idx, what)))
		off += len(c)
	}
	return fmt.Sprintf("weights %s (each clause must reach 1): %s", t.Text(), strings.Join(parts, "; "))
}

func hasText(have []int, what string) string {
	if len(have) == 0 {
		return "has none"
	}
	return "has " + hasList(have, what)
}

func hasList(l []int, what string) string {
	if len(l) == 0 {
		return "none"
	}
	var s []string
	for _, i := range l {
		s = append(s, fmt.Sprint(i))
	}
	if len(l) == 1 {
		return what + " " + s[0]
	}
	plural := what + "es"
	if what == "position" {
		plural = "positions"
	}
	return plural + " " + strings.Join(s, ", ")
}

// weights returns the clauses of a weighted threshold from its JSON form
// (kel keeps them private).
func weights(t kel.Threshold) [][]*big.Rat {
	b, err := t.MarshalJSON()
	if err != nil {
		return nil
	}
	var cl [][]string
	if json.Unmarshal(b, &cl) != nil {
		return nil
	}
	out := make([][]*big.Rat, len(cl))
	for i, c := range cl {
		for _, w := range c {
			r, ok := new(big.Rat).SetString(w)
			if !ok {
				r = new(big.Rat)
			}
			out[i] = append(out[i], r)
		}
	}
	return out
}

func ratText(r *big.Rat) string {
	if r.Sign() == 0 {
		return "0"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	return r.Num().String() + "/" + r.Denom().String()
}
