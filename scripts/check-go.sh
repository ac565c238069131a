#!/usr/bin/env bash
# check-go.sh: the one stated prerequisite is Go 1.26.
set -euo pipefail
GO=${GO:-go}
if ! command -v "$GO" >/dev/null; then
	echo "auths-agent needs Go 1.26 (no '$GO' on PATH)" >&2
	exit 2
fi
v=$("$GO" env GOVERSION)
case "$v" in
go1.26 | go1.26.*) ;;
*)
	echo "auths-agent needs Go 1.26, found $v" >&2
	exit 2
	;;
esac
