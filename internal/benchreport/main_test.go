package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// benchOutput renders go test -bench output for package pkg: one result
// line per run, each metric given as unit -> values (one per run).
func benchOutput(pkg string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "goos: linux\ngoarch: amd64\npkg: %s\ncpu: Test CPU\n", pkg)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	b.WriteString("PASS\nok  \t" + pkg + "\t1.0s\n")
	return b.String()
}

// pairLines makes runs of an interleaved benchmark reporting a-ns and b-ns
// per run.
func pairLines(name string, a, b []float64) []string {
	var out []string
	for i := range a {
		out = append(out, fmt.Sprintf("%s-2 \t10\t%g ns/op\t%g a-ns\t%g b-ns", name, a[i]+b[i], a[i], b[i]))
	}
	return out
}

type result struct {
	code           int
	report, stderr string
}

func runReport(t *testing.T, input, goals string, extra ...string) result {
	t.Helper()
	dir := t.TempDir()
	goalsPath := filepath.Join(dir, "goals.txt")
	if err := os.WriteFile(goalsPath, []byte(goals), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "BENCHMARKS.md")
	var stdout, stderr bytes.Buffer
	args := append([]string{"-goals", goalsPath, "-o", out}, extra...)
	code := run(args, strings.NewReader(input), &stdout, &stderr)
	report, _ := os.ReadFile(out)
	return result{code, string(report), stderr.String()}
}

// goalRow returns the goals table row of desc.
func goalRow(t *testing.T, report, desc string) string {
	t.Helper()
	for _, l := range strings.Split(report, "\n") {
		if strings.HasPrefix(l, "| "+desc+" |") {
			return l
		}
	}
	t.Fatalf("no row for %q in:\n%s", desc, report)
	return ""
}

// ratios a/b of 9 paired runs: 1.10 ... 1.20, straddling 1.15.
var (
	straddleA = []float64{110, 111, 113, 114, 115, 116, 117, 119, 120}
	straddleB = []float64{100, 100, 100, 100, 100, 100, 100, 100, 100}
)

func TestStraddlingGoalIsInconclusive(t *testing.T) {
	in := benchOutput("example.com/m/kel", pairLines("BenchmarkPair", straddleA, straddleB)...)
	r := runReport(t, in, "overhead at most 15% | kel BenchmarkPair a-ns | kel BenchmarkPair b-ns | max | 1.15\n")
	row := goalRow(t, r.report, "overhead at most 15%")
	// The median ratio (1.15) is within the bound, but its interval is not.
	if !strings.Contains(row, "| 1.15 |") || !strings.HasSuffix(row, "| **inconclusive** |") {
		t.Errorf("row %q: want median 1.15 and inconclusive", row)
	}
	if strings.Contains(row, "| met |") {
		t.Errorf("a straddling goal reported met: %q", row)
	}
	if r.code != 0 {
		t.Errorf("exit %d for an inconclusive goal, want 0; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "inconclusive: overhead at most 15%") {
		t.Errorf("stderr does not list the inconclusive goal:\n%s", r.stderr)
	}
}

func TestMissedGoalFailsTheCommand(t *testing.T) {
	a := []float64{130, 131, 129, 133, 130, 128, 132, 131, 130}
	in := benchOutput("example.com/m/kel", pairLines("BenchmarkPair", a, straddleB)...)
	r := runReport(t, in, "overhead at most 15% | kel BenchmarkPair a-ns | kel BenchmarkPair b-ns | max | 1.15\n")
	if r.code != 1 {
		t.Fatalf("exit %d for a missed goal, want 1; stderr:\n%s", r.code, r.stderr)
	}
	row := goalRow(t, r.report, "overhead at most 15%")
	if !strings.HasSuffix(row, "| **missed** |") || !strings.Contains(row, "| 1.3 |") {
		t.Errorf("row %q: want median 1.3 and missed", row)
	}
	if !strings.Contains(r.stderr, "1 missed") {
		t.Errorf("stderr has no summary of the missed goal:\n%s", r.stderr)
	}
	// The report is still written, so the miss can be read.
	if !strings.Contains(r.report, "## example.com/m/kel") {
		t.Errorf("report lacks the package table:\n%s", r.report)
	}
}

func TestMetGoalAndMinGoal(t *testing.T) {
	a := []float64{104, 105, 103, 106, 105, 104, 105, 104, 106}
	in := benchOutput("example.com/m/kel", pairLines("BenchmarkPair", a, straddleB)...)
	r := runReport(t, in, "at most 15% | kel BenchmarkPair a-ns | kel BenchmarkPair b-ns | max | 1.15\n"+
		"at least 1.2 | kel BenchmarkPair a-ns | kel BenchmarkPair b-ns | min | 1.2\n"+
		"at least 1.0 | kel BenchmarkPair a-ns | kel BenchmarkPair b-ns | min | 1.0\n")
	if got := goalRow(t, r.report, "at most 15%"); !strings.HasSuffix(got, "| met |") || !strings.Contains(got, "[1.04, 1.06]") {
		t.Errorf("row %q: want met with interval [1.04, 1.06] (2nd smallest, 2nd largest of 9)", got)
	}
	if got := goalRow(t, r.report, "at least 1.2"); !strings.HasSuffix(got, "| **missed** |") {
		t.Errorf("row %q: want missed", got)
	}
	if got := goalRow(t, r.report, "at least 1.0"); !strings.HasSuffix(got, "| met |") {
		t.Errorf("row %q: want met", got)
	}
	if r.code != 1 {
		t.Errorf("exit %d, want 1 (one goal missed)", r.code)
	}
}

// Five runs give no 95% interval of the median: nothing can be met.
func TestTooFewRunsAreInconclusive(t *testing.T) {
	in := benchOutput("example.com/m/kel", pairLines("BenchmarkPair", []float64{101, 101, 101, 101, 101}, []float64{100, 100, 100, 100, 100})...)
	r := runReport(t, in, "at most 15% | kel BenchmarkPair a-ns | kel BenchmarkPair b-ns | max | 1.15\n")
	if got := goalRow(t, r.report, "at most 15%"); !strings.Contains(got, "too few runs") || !strings.HasSuffix(got, "| **inconclusive** |") {
		t.Errorf("row %q: want too few runs, inconclusive", got)
	}
}

// Two separate benchmarks: the interval is the widest ratio of their
// intervals, and an absolute goal compares a median alone.
func TestSeparateBenchmarksAndAbsoluteGoal(t *testing.T) {
	var lines []string
	for _, v := range []float64{10, 11, 12, 13, 14, 15, 16, 17, 18} {
		lines = append(lines, fmt.Sprintf("BenchmarkA \t1\t%g ns/op\t%g ms/anchor", v*1e6, v))
	}
	for _, v := range []float64{20, 21, 22, 23, 24, 25, 26, 27, 28} {
		lines = append(lines, fmt.Sprintf("BenchmarkB/sub=1-2 \t1\t%g ns/op", v*1e6))
	}
	in := benchOutput("example.com/m/anchor", lines...)
	r := runReport(t, in, "A within 0.9 of B | anchor BenchmarkA ns/op | anchor BenchmarkB/sub=1 ns/op | max | 0.9\n"+
		"A at most 20 ms | anchor BenchmarkA ms/anchor | - | max | 20\n"+
		"A at most 13 ms | anchor BenchmarkA ms/anchor | - | max | 13\n"+
		"A beside B | anchor BenchmarkA ns/op | anchor BenchmarkB/sub=1 ns/op | peer | -\n")
	// Medians 14 and 24: 0.5833; intervals [11, 17] and [21, 27]:
	// [11/27, 17/21] = [0.4074, 0.8095].
	if got := goalRow(t, r.report, "A within 0.9 of B"); !strings.Contains(got, "| 0.5833 | [0.4074, 0.8095] |") || !strings.HasSuffix(got, "| met |") {
		t.Errorf("row %q", got)
	}
	if got := goalRow(t, r.report, "A at most 20 ms"); !strings.Contains(got, "| 14 | [11, 17] |") || !strings.HasSuffix(got, "| met |") {
		t.Errorf("row %q", got)
	}
	if got := goalRow(t, r.report, "A at most 13 ms"); !strings.HasSuffix(got, "| **inconclusive** |") {
		t.Errorf("row %q", got)
	}
	if got := goalRow(t, r.report, "A beside B"); !strings.Contains(got, "| 0.5833 |") || !strings.Contains(r.report, "## Peers") {
		t.Errorf("peer row %q", got)
	}
	if r.code != 0 {
		t.Errorf("exit %d, want 0:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.report, "`BenchmarkB/sub=1` (GOMAXPROCS 2)") {
		t.Errorf("report does not name the GOMAXPROCS of the runs:\n%s", r.report)
	}
}

func TestUnmeasuredGoalFails(t *testing.T) {
	in := benchOutput("example.com/m/kel", pairLines("BenchmarkPair", straddleA, straddleB)...)
	r := runReport(t, in, "gone | kel BenchmarkGone ns/op | kel BenchmarkPair b-ns | max | 1.15\n")
	if r.code != 1 {
		t.Errorf("exit %d for a goal not measured, want 1", r.code)
	}
	if got := goalRow(t, r.report, "gone"); !strings.Contains(got, "no benchmark kel BenchmarkGone") {
		t.Errorf("row %q", got)
	}
}

func TestBadInputIsUsageError(t *testing.T) {
	in := benchOutput("example.com/m/kel", pairLines("BenchmarkPair", straddleA, straddleB)...)
	for _, tc := range []struct{ name, goals, input, want string }{
		{"four fields", "x | kel BenchmarkPair a-ns | - | max\n", in, "goals.txt:1: 4 fields"},
		{"bad kind", "# c\nx | kel BenchmarkPair a-ns | - | below | 1\n", in, `goals.txt:2: kind "below"`},
		{"bad ref", "x | kel Pair a-ns | - | max | 1\n", in, `A: "kel Pair a-ns" is not PKGSUFFIX BenchmarkName unit`},
		{"bad bound", "x | kel BenchmarkPair a-ns | - | max | lots\n", in, `bound "lots" is not a number`},
		{"no results", "", "PASS\n", "stdin: no benchmark results"},
		{"bad line", "", "pkg: x\nBenchmarkX 10 12 ns/op 5\n", "stdin:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runReport(t, tc.input, tc.goals)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tc.want)
			}
			if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("error is not one line: %q", r.stderr)
			}
		})
	}
}

// The committed goals and explanations parse, and every benchmark they name
// exists in the sources (top-level function), so a renamed benchmark fails
// here rather than at the end of a fifteen-minute make bench.
func TestCommittedGoalsNameExistingBenchmarks(t *testing.T) {
	goals, err := readGoals("../../docs/bench-goals.txt")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := readRows("../../docs/bench-rows.txt")
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func (Benchmark\w+)\(b \*testing\.B\)`)
	err = filepath.Walk("../..", func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() && path != "../.." && (strings.HasPrefix(fi.Name(), ".") || fi.Name() == "testdata") {
			return filepath.SkipDir
		}
		if fi.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../..", filepath.Dir(path))
		for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
			funcs[filepath.ToSlash(rel)+" "+m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	exists := func(pkg, name string) bool {
		top, _, _ := strings.Cut(name, "/")
		return funcs[pkg+" "+top]
	}
	for _, g := range goals {
		for _, r := range []ref{g.a, g.b} {
			if r != (ref{}) && !exists(r.pkg, r.name) {
				t.Errorf("goal on line %d (%s) names %s %s: no such benchmark function", g.line, g.desc, r.pkg, r.name)
			}
		}
	}
	for k := range rows {
		pkg, name, _ := strings.Cut(k, " ")
		if !exists(pkg, name) {
			t.Errorf("bench-rows.txt explains %s: no such benchmark function", k)
		}
	}
	for k := range funcs {
		found := false
		for r := range rows {
			if r == k || strings.HasPrefix(r, k+"/") {
				found = true
			}
		}
		if !found {
			t.Errorf("benchmark %s has no explanation in docs/bench-rows.txt", k)
		}
	}
}

// -previous compares every goal with the previous run: intervals that
// overlap agree, disjoint ones differ.
func TestPreviousRun(t *testing.T) {
	dir := t.TempDir()
	prev := filepath.Join(dir, "prev.txt")
	a := []float64{130, 131, 129, 133, 130, 128, 132, 131, 130}
	if err := os.WriteFile(prev, []byte(benchOutput("example.com/m/kel", append(pairLines("BenchmarkPair", straddleA, straddleB), pairLines("BenchmarkOther", a, straddleB)...)...)), 0o644); err != nil {
		t.Fatal(err)
	}
	b := []float64{112, 113, 114, 115, 116, 117, 118, 114, 115}
	in := benchOutput("example.com/m/kel", append(pairLines("BenchmarkPair", b, straddleB), pairLines("BenchmarkOther", b, straddleB)...)...)
	r := runReport(t, in, "same | kel BenchmarkPair a-ns | kel BenchmarkPair b-ns | max | 1.2\n"+
		"moved | kel BenchmarkOther a-ns | kel BenchmarkOther b-ns | max | 1.2\n", "-previous", prev)
	if got := goalRow(t, r.report, "same"); !strings.HasSuffix(got, "| 1.15 [1.11, 1.19], agrees |") {
		t.Errorf("row %q: want the previous figure, agreeing", got)
	}
	if got := goalRow(t, r.report, "moved"); !strings.HasSuffix(got, "| 1.3 [1.29, 1.32], **differs** |") {
		t.Errorf("row %q: want the previous figure, differing", got)
	}
	if r.code != 0 {
		t.Errorf("exit %d:\n%s", r.code, r.stderr)
	}
}
