#!/usr/bin/env bash
# demo.sh: what `make demo` shows. It wipes and recreates .demo/ and never
# reads ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
rm -rf .demo
mkdir -p .demo bin
"$GO" build -o bin/auths-agent ./cmd/auths-agent
A=bin/auths-agent

echo "== a 2-of-3 KEL signed with keys made in memory (icp, rot, ixn)"
"$GO" run ./internal/keldemo .demo/kel.cesr
"$A" kel verify .demo/kel.cesr
