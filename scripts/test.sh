#!/usr/bin/env bash
# test.sh: the whole test suite (run by `make test` after dependencies are in).
# 1. The tests of every package without card tests.
# 2. A virtual PIV card rig (private pcscd + vpcd + virtual cards in their own
#    mount and network namespace), and the packages with tests tagged `vpiv`
#    run inside it (all their tests, tagged or not), one package at a time so
#    no two test binaries fight for a card.
# Packages with goroutines run under the race detector in either step.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
mod=$("$GO" list -m)

# pkgs_of FILE...: the import paths of the packages the files belong to.
pkgs_of() {
	xargs -r -n1 dirname | sort -u | awk -v m="$mod" '{ print ($0 == "." ? m : m "/" $0) }'
}

# Packages with goroutines: those whose code (not tests) starts goroutines or
# shares values between them (a go statement, or an import of sync,
# sync/atomic or golang.org/x/sync). They run with -race. Commands under
# cmd/ are left out: the CLI is thin, its goroutines are those of agent/ and
# socket/, which run under the race detector themselves, and its tests start
# the race-built binary hundreds of times (about 2.5x the plain run's time).
race_pkgs=$(grep -lE '^[[:space:]]*go [A-Za-z_(]|"sync(/atomic)?"|"golang.org/x/sync/' $(git ls-files '*.go' | grep -v '_test\.go$' | grep -v '^cmd/') | pkgs_of)
# Packages whose tests use the virtual cards: those with a test file under
# the build tag vpiv.
card_pkgs=$(grep -l '^//go:build.*vpiv' $(git ls-files '*_test.go') | pkgs_of)
all_pkgs=$("$GO" list ./... | sort)

is_race() { grep -qxF "$1" <<<"$race_pkgs"; }
is_card() { grep -qxF "$1" <<<"$card_pkgs"; }

# A race-detector binary sleeps a second at exit so late goroutines can
# report; the tests start hundreds of helper processes, each would sleep.
export GORACE="atexit_sleep_ms=0 ${GORACE:-}"

plain=() race=()
for p in $all_pkgs; do
	is_card "$p" && continue
	if is_race "$p"; then race+=("$p"); else plain+=("$p"); fi
done
echo "== go test (no card): ${#plain[@]} packages"
"$GO" test -count=1 "${plain[@]}"
if [ ${#race[@]} -gt 0 ]; then
	echo "== go test -race (no card): ${race[*]#"$mod/"}"
	"$GO" test -race -count=1 "${race[@]}"
fi

if [ -z "$card_pkgs" ]; then
	exit 0
fi

export VPIV_DIR
VPIV_DIR=$(mktemp -d /tmp/vpiv.XXXXXX)
trap 'softhsm-test/vpiv-down || true; rm -rf "$VPIV_DIR"' EXIT
echo "== starting the virtual PIV rig in $VPIV_DIR"
softhsm-test/vpiv-up 4 >"$VPIV_DIR/cards.tsv"
cat "$VPIV_DIR/cards.tsv"
VPIV_SERIALS=$(cut -f1 "$VPIV_DIR/cards.tsv" | paste -sd, -)
export VPIV_SERIALS
for pkg in $card_pkgs; do
	flags=(-tags vpiv -count=1)
	if is_race "$pkg"; then
		flags+=(-race)
	fi
	echo "== go test ${flags[*]} ${pkg#"$mod/"} (inside the rig)"
	softhsm-test/vpiv-exec "$GO" test "${flags[@]}" "$pkg"
done
