// Command benchreport turns `go test -bench` output into docs/BENCHMARKS.md:
// for every benchmark and metric the median of the runs with its 95%
// confidence interval (golang.org/x/perf: benchfmt reads the output,
// benchmath summarizes each sample without assuming a distribution), a
// one-line explanation of each benchmark (docs/bench-rows.txt), the
// machine, Go version, date and load, and the project's performance goals
// (docs/bench-goals.txt) checked against the figures of the same run. No
// figure in the report is typed by hand.
//
// A goal is met only when its whole confidence interval is on the right
// side of its bound, missed when the whole interval is on the wrong side,
// and inconclusive when the interval straddles the bound. The command
// exits 1 when a goal is missed or not measured, 2 on unreadable input, and
// 0 otherwise (inconclusive goals are listed on stderr).
//
// Usage:
//
//	go test -run '^$' -bench . -count 6 ./... > bench.txt
//	benchreport -goals docs/bench-goals.txt -rows docs/bench-rows.txt -o docs/BENCHMARKS.md bench.txt
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// run is the command with its arguments and standard streams; it returns
// the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	goalsPath := fs.String("goals", "", "goals file (one goal a line)")
	rowsPath := fs.String("rows", "", "file of one-line explanations of the benchmarks")
	out := fs.String("o", "-", "output file (- for stdout)")
	previous := fs.String("previous", "", "raw output of the previous run: each goal shows whether its figure agrees with this run's")
	var env environment
	fs.StringVar(&env.note, "note", "", "a line on how the figures were taken (command, load), shown under the header")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "benchreport: one input file at most, got %d\n", fs.NArg())
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "benchreport:", err)
		return 2
	}
	var set *resultSet
	var err error
	if fs.NArg() == 1 {
		set, err = parseFile(fs.Arg(0))
	} else {
		set, err = parse(stdin, "stdin")
	}
	if err != nil {
		return fail(err)
	}
	var goals []goal
	if *goalsPath != "" {
		if goals, err = readGoals(*goalsPath); err != nil {
			return fail(err)
		}
	}
	rows := map[string]string{}
	if *rowsPath != "" {
		if rows, err = readRows(*rowsPath); err != nil {
			return fail(err)
		}
	}
	env.fill(set)
	outcomes := make([]outcome, len(goals))
	for i, g := range goals {
		outcomes[i] = g.evaluate(set)
	}
	if *previous != "" {
		prev, err := parseFile(*previous)
		if err != nil {
			return fail(fmt.Errorf("previous run: %w", err))
		}
		env.previous = *previous
		for i, g := range goals {
			p := g.evaluate(prev)
			outcomes[i].previous = &p
		}
	}
	if *out == "-" {
		write(stdout, set, env, outcomes, rows)
	} else if err := writeFile(*out, func(w io.Writer) { write(w, set, env, outcomes, rows) }); err != nil {
		return fail(err)
	}
	for _, b := range set.benches {
		if explain(rows, b) == "" {
			fmt.Fprintf(stderr, "benchreport: %s has no explanation in %s\n", b.key(), orNone(*rowsPath))
		}
	}
	counts := map[verdict]int{}
	for _, o := range outcomes {
		counts[o.verdict]++
		if o.verdict != met && o.verdict != peer {
			fmt.Fprintf(stderr, "benchreport: %s: %s\n", o.verdict, o.goal.desc)
		}
	}
	if len(goals) > 0 {
		fmt.Fprintf(stderr, "benchreport: %d goal(s): %d met, %d inconclusive, %d missed, %d not measured\n",
			len(goals)-counts[peer], counts[met], counts[inconclusive], counts[missed], counts[unmeasured])
	}
	if counts[missed]+counts[unmeasured] > 0 {
		return 1
	}
	return 0
}

// parseFile reads go test -bench output from a file.
func parseFile(path string) (*resultSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parse(f, path)
}

func orNone(s string) string {
	if s == "" {
		return "(no -rows file)"
	}
	return s
}

// writeFile writes through a temporary file renamed into place, so a
// failed run leaves the previous report whole.
func writeFile(path string, fill func(io.Writer)) error {
	f, err := os.CreateTemp(dirOf(path), ".benchreport-*")
	if err != nil {
		return err
	}
	fill(f)
	f.Chmod(0o644)
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

func dirOf(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[:i+1]
		}
	}
	return "."
}
