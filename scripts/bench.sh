#!/usr/bin/env bash
# bench.sh: runs every Go benchmark (the card ones inside a virtual PIV rig)
# and regenerates docs/BENCHMARKS.md from their output with
# internal/benchreport. Figures are medians of BENCH_COUNT runs.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
COUNT=${BENCH_COUNT:-5}
BENCH=${BENCH:-.}
out=$(mktemp /tmp/bench.XXXXXX)

# Build every test binary first and let the file system settle, so the
# benchmarks do not pay for the build's write-back; then run the packages one
# at a time (-p 1) so no two benchmarks share the two cores.
"$GO" test -run '^$' -bench '^$' ./... >/dev/null
sync
"$GO" test -p 1 -run '^$' -bench "$BENCH" -benchmem -count "$COUNT" ./... | tee "$out" >/dev/null

# Packages with benchmarks that use the virtual cards (build tag vpiv).
card_pkgs=$(grep -l '^//go:build.*vpiv' $(git ls-files '*_test.go') | xargs -r grep -l '^func Benchmark' | xargs -r -n1 dirname | sort -u | sed 's|^|./|')
if [ -n "$card_pkgs" ]; then
	export VPIV_DIR
	VPIV_DIR=$(mktemp -d /tmp/vpiv.XXXXXX)
	trap 'softhsm-test/vpiv-down || true; rm -rf "$VPIV_DIR"' EXIT
	softhsm-test/vpiv-up 4 >"$VPIV_DIR/cards.tsv"
	VPIV_SERIALS=$(cut -f1 "$VPIV_DIR/cards.tsv" | paste -sd, -)
	export VPIV_SERIALS
	sync
	for pkg in $card_pkgs; do
		softhsm-test/vpiv-exec "$GO" test -tags vpiv -run '^$' -bench "$BENCH" -benchmem -count "$COUNT" "$pkg" | tee -a "$out" >/dev/null
	done
fi

"$GO" run ./internal/benchreport -goals docs/bench-goals.txt -o docs/BENCHMARKS.md <"$out"
rm -f "$out"
echo "wrote docs/BENCHMARKS.md" >&2
