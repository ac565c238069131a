#!/usr/bin/env bash
# bench.sh: runs every Go benchmark (the card ones inside a virtual PIV rig),
# one package at a time, printing each result line on stderr as it comes,
# and regenerates docs/BENCHMARKS.md (and docs/bench-raw.txt, the raw
# output) with internal/benchreport: medians of BENCH_COUNT runs with their
# 95% intervals, the goals of docs/bench-goals.txt, and each goal's figure
# in the previous run (the docs/bench-raw.txt it replaces). Exits 1 when a
# goal is missed or not measured, or a benchmark failed.
#
#   BENCH_COUNT   runs of every benchmark (default 10; 6 is the fewest that
#                 give a 95% interval of the median, and that interval is
#                 the whole range; 10 leave out the extreme run at each end)
#   BENCH         -bench pattern (default: all)
#   BENCHTIME     -benchtime (default 0.5s)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
COUNT=${BENCH_COUNT:-10}
BENCH=${BENCH:-.}
BENCHTIME=${BENCHTIME:-0.5s}
raw=$(mktemp /tmp/bench.XXXXXX)
start=$(date +%s)
load0=$(cut -d' ' -f1 /proc/loadavg)
failed=0

say() { printf 'bench: [%s] %s\n' "$(date -u -d "@$(($(date +%s) - start))" +%M:%S)" "$*" >&2; }

# Benchmark functions declared in the given test files.
bench_funcs() { grep -ho '^func Benchmark[A-Za-z0-9_]*' "$@" | sed 's/^func //' | sort -u | paste -sd' ' -; }

# runpkg LABEL PKG BENCHRE FUNCS [COMMAND PREFIX…]: one package's
# benchmarks; result lines go to the raw file and, as progress, to stderr.
runpkg() {
	local label=$1 pkg=$2 re=$3 funcs=$4
	shift 4
	say "$label $pkg: $funcs"
	if ! "$@" "$GO" test $tags -run '^$' -bench "$re" -benchtime "$BENCHTIME" -benchmem -count "$COUNT" "$pkg" |
		tee -a "$raw" | grep --line-buffered -E '^(Benchmark|--- FAIL|FAIL|panic| +[a-z_]+_test\.go:)' | sed -u 's/^/bench:   /' >&2; then
		say "$pkg: FAILED (see above)"
		failed=1
	fi
}

# Build every test binary first and let the file system settle, so the
# benchmarks do not pay for the build's write-back.
say "building the test binaries"
"$GO" test -run '^$' -bench '^$' ./... >/dev/null
sync

test_files=$(git ls-files '*_test.go')
card_files=$(grep -l '^//go:build.*vpiv' $test_files || true)
plain_pkgs=$(grep -L '^//go:build.*vpiv' $test_files | xargs -r grep -l '^func Benchmark' | xargs -r -n1 dirname | sort -u | sed 's|^|./|')
card_pkgs=$(echo "$card_files" | xargs -r grep -l '^func Benchmark' | xargs -r -n1 dirname | sort -u | sed 's|^|./|')
n=$(echo $plain_pkgs $card_pkgs | wc -w)
i=0
tags=
for pkg in $plain_pkgs; do
	i=$((i + 1))
	runpkg "($i/$n)" "$pkg" "$BENCH" "$(bench_funcs $(grep -L '^//go:build.*vpiv' $(git ls-files "${pkg#./}/*_test.go")))"
done

if [ -n "$card_pkgs" ]; then
	export VPIV_DIR
	VPIV_DIR=$(mktemp -d /tmp/vpiv.XXXXXX)
	trap 'softhsm-test/vpiv-down || true; rm -rf "$VPIV_DIR"' EXIT
	say "starting the virtual PIV rig"
	softhsm-test/vpiv-up 4 >"$VPIV_DIR/cards.tsv"
	VPIV_SERIALS=$(cut -f1 "$VPIV_DIR/cards.tsv" | paste -sd, -)
	export VPIV_SERIALS
	sync
	tags="-tags vpiv"
	for pkg in $card_pkgs; do
		i=$((i + 1))
		# Only the benchmarks of the card files: the others ran above.
		funcs=$(bench_funcs $(echo "$card_files" | grep "^${pkg#./}/[^/]*$"))
		re="^($(echo "$funcs" | tr ' ' '|'))\$"
		if [ "$BENCH" != . ]; then
			re="$re/$BENCH"
		fi
		runpkg "($i/$n, card)" "$pkg" "$re" "$funcs" softhsm-test/vpiv-exec
	done
fi

elapsed=$(($(date +%s) - start))
note="figures from BENCH_COUNT=$COUNT runs of each benchmark at -benchtime $BENCHTIME, one package at a time, in $((elapsed / 60))m$((elapsed % 60))s; load average (1 min) $load0 at the start and $(cut -d' ' -f1 /proc/loadavg) at the end, on $(nproc) cores shared with other work"
say "writing docs/BENCHMARKS.md"
# The previous run's raw output, if any, shows whether the goals' figures
# agree from one run to the next.
prev=()
if [ -s docs/bench-raw.txt ]; then
	prev=(-previous docs/bench-raw.txt)
fi
status=0
"$GO" run ./internal/benchreport -goals docs/bench-goals.txt -rows docs/bench-rows.txt -note "$note" "${prev[@]}" -o docs/BENCHMARKS.md "$raw" || status=$?
cp "$raw" docs/bench-raw.txt
rm -f "$raw"
if [ "$failed" -ne 0 ]; then
	say "a benchmark failed"
	exit 1
fi
exit "$status"
