package main

import (
	"fmt"
	"io"
	"math"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// confidence is the level of every interval in the report.
const confidence = 0.95

// bench is one benchmark of one package and its runs (one per result line,
// in the order go test printed them: -count N gives N runs).
type bench struct {
	pkg, name string
	units     []string             // in the order of the first result line
	runs      []map[string]float64 // unit -> value, one map per result line
	procs     string               // GOMAXPROCS of the runs, from the name's suffix
}

// key is how goals and explanations name a benchmark: the package path and
// the benchmark name without go test's -GOMAXPROCS suffix.
func (b *bench) key() string { return b.pkg + " " + b.name }

// sample is the values of unit over the runs that reported it.
func (b *bench) sample(unit string) []float64 {
	var v []float64
	for _, r := range b.runs {
		if x, ok := r[unit]; ok {
			v = append(v, x)
		}
	}
	return v
}

type resultSet struct {
	benches []*bench
	byKey   map[string]*bench
	cpu     string
	goos    string
	goarch  string
}

// parse reads go test -bench output with benchfmt. Lines that are not
// results (PASS, ok, logs) are skipped, as benchfmt does; a malformed
// result line is an error naming its line.
func parse(r io.Reader, name string) (*resultSet, error) {
	set := &resultSet{byKey: map[string]*bench{}}
	rd := benchfmt.NewReader(r, name)
	for rd.Scan() {
		switch rec := rd.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, rec
		case *benchfmt.Result:
			set.add(rec)
		}
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(set.benches) == 0 {
		return nil, fmt.Errorf("%s: no benchmark results", name)
	}
	return set, nil
}

func (set *resultSet) add(res *benchfmt.Result) {
	full := res.Name.String()
	base, procs := splitProcs(full)
	pkg := res.GetConfig("pkg")
	set.cpu = firstNonEmpty(set.cpu, strings.TrimSpace(res.GetConfig("cpu")))
	set.goos = firstNonEmpty(set.goos, res.GetConfig("goos"))
	set.goarch = firstNonEmpty(set.goarch, res.GetConfig("goarch"))
	key := pkg + " Benchmark" + base
	b := set.byKey[key]
	if b == nil {
		b = &bench{pkg: pkg, name: "Benchmark" + base, procs: procs}
		set.byKey[key] = b
		set.benches = append(set.benches, b)
	}
	run := map[string]float64{}
	for _, v := range res.Values {
		// The report speaks the units the benchmarks report (ns/op, not
		// benchfmt's tidied sec/op), so goals name them as printed.
		unit, val := v.Unit, v.Value
		if v.OrigUnit != "" {
			unit, val = v.OrigUnit, v.OrigValue
		}
		if !contains(b.units, unit) {
			b.units = append(b.units, unit)
		}
		run[unit] = val
	}
	b.runs = append(b.runs, run)
}

// splitProcs splits "X/y-2" into "X/y" and "2" (benchfmt's names carry no
// "Benchmark" prefix).
func splitProcs(name string) (string, string) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i == len(name)-1 {
		return name, ""
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return name, ""
		}
	}
	return name[:i], name[i+1:]
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// lookup finds a benchmark by "PKGSUFFIX BenchmarkName": the package path
// must end with PKGSUFFIX at a path boundary.
func (set *resultSet) lookup(pkgSuffix, name string) *bench {
	for _, b := range set.benches {
		if b.name == name && (b.pkg == pkgSuffix || strings.HasSuffix(b.pkg, "/"+pkgSuffix)) {
			return b
		}
	}
	return nil
}

// summary is the median of values and its confidence interval, with no
// assumption on their distribution (too few values give an infinite
// interval, which no goal can meet).
func summary(values []float64) benchmath.Summary {
	s := benchmath.NewSample(values, &benchmath.DefaultThresholds)
	return benchmath.AssumeNothing.Summary(s, confidence)
}

func finite(s benchmath.Summary) bool {
	return !math.IsInf(s.Lo, 0) && !math.IsInf(s.Hi, 0) && !math.IsNaN(s.Lo) && !math.IsNaN(s.Hi)
}
