package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/perf/benchmath"
)

// A goal compares a measured figure with a bound. Goals file lines:
//
//	DESCRIPTION | A | B | KIND | BOUND
//
// A and B are "PKGSUFFIX BenchmarkName unit" (the name without go test's
// -GOMAXPROCS suffix). The figure is A/B, or A itself when B is "-". KIND is
// max (the figure must stay at or under BOUND), min (at or over BOUND) or
// peer (a comparison reported without a bound; BOUND is "-"). Blank lines
// and lines starting with # are ignored. Adding a goal is adding a line.
type goal struct {
	desc  string
	a, b  ref
	kind  string
	bound float64
	line  int
}

type ref struct{ pkg, name, unit string }

func (r ref) String() string { return r.pkg + " " + r.name + " " + r.unit }

func parseRef(s string) (ref, error) {
	f := strings.Fields(s)
	if len(f) != 3 || !strings.HasPrefix(f[1], "Benchmark") {
		return ref{}, fmt.Errorf("%q is not PKGSUFFIX BenchmarkName unit", s)
	}
	return ref{f[0], f[1], f[2]}, nil
}

func readGoals(path string) ([]goal, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var goals []goal
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		g, err := parseGoal(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		g.line = n
		goals = append(goals, g)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return goals, nil
}

func parseGoal(line string) (goal, error) {
	f := strings.Split(line, "|")
	if len(f) != 5 {
		return goal{}, fmt.Errorf("%d fields separated by |, want 5 (DESCRIPTION | A | B | max|min|peer | BOUND)", len(f))
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	g := goal{desc: f[0], kind: f[3]}
	if g.desc == "" {
		return goal{}, fmt.Errorf("empty description")
	}
	var err error
	if g.a, err = parseRef(f[1]); err != nil {
		return goal{}, fmt.Errorf("A: %w", err)
	}
	if f[2] != "-" {
		if g.b, err = parseRef(f[2]); err != nil {
			return goal{}, fmt.Errorf("B: %w", err)
		}
	}
	switch g.kind {
	case "max", "min":
		if g.bound, err = strconv.ParseFloat(f[4], 64); err != nil {
			return goal{}, fmt.Errorf("bound %q is not a number", f[4])
		}
	case "peer":
		if f[4] != "-" {
			return goal{}, fmt.Errorf("a peer comparison has no bound (write -), got %q", f[4])
		}
	default:
		return goal{}, fmt.Errorf("kind %q is not max, min or peer", g.kind)
	}
	return g, nil
}

type verdict string

const (
	met          verdict = "met"
	missed       verdict = "missed"
	inconclusive verdict = "inconclusive"
	unmeasured   verdict = "not measured"
	peer         verdict = "peer"
)

// outcome is a goal checked against a run.
type outcome struct {
	goal    goal
	figure  benchmath.Summary
	how     string // how the interval was obtained
	inputs  string // the medians it comes from
	verdict verdict
	why     string // for unmeasured: what is missing
	// previous is the same goal on the previous run's output, if given.
	previous *outcome
}

// agreement tells whether the previous run's figure agrees with this
// one's: their intervals overlap.
func (o outcome) agreement() string {
	p := o.previous
	switch {
	case p == nil:
		return ""
	case p.verdict == unmeasured || o.verdict == unmeasured:
		return "not comparable"
	case !finite(p.figure) || !finite(o.figure):
		return format(p.figure.Center) + ", no interval"
	case p.figure.Hi < o.figure.Lo || p.figure.Lo > o.figure.Hi:
		return format(p.figure.Center) + " " + interval(p.figure) + ", **differs**"
	}
	return format(p.figure.Center) + " " + interval(p.figure) + ", agrees"
}

// evaluate computes the goal's figure with its interval and the verdict.
//
// The interval of a ratio: when A and B are metrics of the same benchmark
// (an interleaved pair, measured in the same iterations), the ratio is
// taken run by run and summarized like any sample. Otherwise the two
// samples are independent and the interval is the widest ratio of their
// two intervals, [A.lo/B.hi, A.hi/B.lo]: it holds whenever both intervals
// hold.
func (g goal) evaluate(set *resultSet) outcome {
	o := outcome{goal: g}
	missing := func(why string) outcome {
		o.verdict, o.why = unmeasured, why
		return o
	}
	ba := set.lookup(g.a.pkg, g.a.name)
	if ba == nil {
		return missing(fmt.Sprintf("no benchmark %s %s", g.a.pkg, g.a.name))
	}
	va := ba.sample(g.a.unit)
	if len(va) == 0 {
		return missing(fmt.Sprintf("%s reports no %s", ba.name, g.a.unit))
	}
	sa := summary(va)
	switch {
	case g.b == (ref{}):
		o.figure, o.how = sa, "median of the runs"
		o.inputs = fmt.Sprintf("%d runs", len(va))
	default:
		bb := set.lookup(g.b.pkg, g.b.name)
		if bb == nil {
			return missing(fmt.Sprintf("no benchmark %s %s", g.b.pkg, g.b.name))
		}
		vb := bb.sample(g.b.unit)
		if len(vb) == 0 {
			return missing(fmt.Sprintf("%s reports no %s", bb.name, g.b.unit))
		}
		sb := summary(vb)
		o.inputs = fmt.Sprintf("%s / %s", format(sa.Center)+" "+g.a.unit, format(sb.Center)+" "+g.b.unit)
		if ba == bb {
			var ratios []float64
			for _, r := range ba.runs {
				x, okx := r[g.a.unit]
				y, oky := r[g.b.unit]
				if okx && oky && y != 0 {
					ratios = append(ratios, x/y)
				}
			}
			if len(ratios) == 0 {
				return missing(fmt.Sprintf("%s never reports %s and a non-zero %s together", ba.name, g.a.unit, g.b.unit))
			}
			o.figure, o.how = summary(ratios), "paired runs"
		} else {
			if sb.Center == 0 || sb.Lo <= 0 || sa.Lo < 0 {
				return missing(fmt.Sprintf("%s %s is not positive", bb.name, g.b.unit))
			}
			o.figure = benchmath.Summary{Center: sa.Center / sb.Center, Lo: sa.Lo / sb.Hi, Hi: sa.Hi / sb.Lo}
			o.how = "separate benchmarks"
		}
	}
	o.verdict = judge(g.kind, g.bound, o.figure)
	return o
}

// judge: met only when the whole interval satisfies the bound, missed when
// the whole interval violates it, inconclusive otherwise (including an
// infinite interval from too few runs).
func judge(kind string, bound float64, s benchmath.Summary) verdict {
	if kind == "peer" {
		return peer
	}
	if !finite(s) {
		return inconclusive
	}
	lo, hi := s.Lo, s.Hi
	switch {
	case kind == "max" && hi <= bound, kind == "min" && lo >= bound:
		return met
	case kind == "max" && lo > bound, kind == "min" && hi < bound:
		return missed
	}
	return inconclusive
}

// readRows reads one-line explanations: "PKGSUFFIX BenchmarkName | text".
// The returned map is keyed by the full package path once matched; here
// it is keyed by the suffix form and resolved in explain.
func readRows(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, text, ok := strings.Cut(line, "|")
		fields := strings.Fields(name)
		if !ok || len(fields) != 2 || strings.TrimSpace(text) == "" {
			return nil, fmt.Errorf("%s:%d: want PKGSUFFIX BenchmarkName | explanation", path, n)
		}
		rows[fields[0]+" "+fields[1]] = strings.TrimSpace(text)
	}
	return rows, sc.Err()
}

// explain finds the explanation of b: rows are keyed by a package suffix.
func explain(rows map[string]string, b *bench) string {
	for k, text := range rows {
		pkg, name, _ := strings.Cut(k, " ")
		if name == b.name && (b.pkg == pkg || strings.HasSuffix(b.pkg, "/"+pkg)) {
			return text
		}
	}
	return ""
}
