#!/usr/bin/env bash
# test.sh: the whole test suite (run by `make test` after dependencies are in).
# 1. Every package's tests that need no PIV card.
# 2. A virtual PIV card rig (private pcscd + vpcd + virtual cards in their own
#    mount and network namespace), and the tests tagged `vpiv` run inside it,
#    one package at a time so no two test binaries fight for a card.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

echo "== go test ./... (no card)"
"$GO" test -count=1 ./...

# Packages whose tests use the virtual cards: those with a test file under
# the build tag vpiv.
card_pkgs=$(grep -l '^//go:build.*vpiv' $(git ls-files '*_test.go') | xargs -r -n1 dirname | sort -u | sed 's|^|./|')
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
	echo "== go test -tags vpiv $pkg (inside the rig)"
	softhsm-test/vpiv-exec "$GO" test -tags vpiv -count=1 "$pkg"
done
