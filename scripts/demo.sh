#!/usr/bin/env bash
# demo.sh: what `make demo` shows. It wipes and recreates .demo/ and needs
# nothing outside the project. Needs (installed by `make demo`): go, gcc, git, softhsm2.
#
# 1. A 2-of-3 KEL signed with keys made in memory (icp, rot, ixn).
# 2. Three SoftHSM tokens, one controller key on each; a 2-of-3 identity in
#    the git registry .demo/registry; a device key made here signs an auths
#    device attestation, anchored by an interaction event whose signatures
#    from two tokens are folded into one event, committed with the
#    attestation in one commit.
# 3. A second anchor signed by one token only stays pending under
#    refs/auths-agent/pending/; a separate process adds the missing signature from
#    another token and commits it.
# 4. The KEL verifies; every attestation in the registry is one auths can
#    load; the prefix and the KEL are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
rm -rf .demo
mkdir -p .demo bin
"$GO" build -o bin/auths-agent ./cmd/auths-agent
A=bin/auths-agent
DEMO=$PWD/.demo

echo "== a 2-of-3 KEL signed with keys made in memory (icp, rot, ixn)"
"$GO" run ./internal/keldemo .demo/kel.cesr
"$A" kel verify .demo/kel.cesr

echo
echo "== three SoftHSM tokens in .demo/softhsm (SOFTHSM2_CONF=.demo/softhsm/softhsm2.conf)"
module=
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
	/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so \
	/usr/lib/pkcs11/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
	if [ -e "$m" ]; then module=$m; break; fi
done
if [ -z "$module" ]; then
	echo "demo: libsofthsm2.so not found: install softhsm2 (make demo does)" >&2
	exit 1
fi
mkdir -p .demo/softhsm/tokens
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
	"$DEMO/softhsm/tokens" >.demo/softhsm/softhsm2.conf
export SOFTHSM2_CONF=$DEMO/softhsm/softhsm2.conf
# The PIN reaches auths-agent through a file (pin-source), never its argv.
# softhsm2-util takes the PINs of the throw-away demo tokens on its command line.
echo 1234 >.demo/pin
for i in 1 2 3; do
	softhsm2-util --init-token --free --label "demo-$i" --pin 1234 --so-pin 123456 >/dev/null
done
key() { echo "pkcs11:token=demo-$1;object=controller?module-path=$module&pin-source=file:$DEMO/pin"; }
for i in 1 2 3; do
	printf 'token demo-%s: controller key ' "$i"
	"$A" key generate --algorithm ed25519 "$(key "$i")" | tail -1
done

echo
echo "== a 2-of-3 identity, one key per token (next keys generated beside them)"
prefix=$("$A" id create --init --registry .demo/registry --threshold 2 --key "$(key 1)" --key "$(key 2)" --key "$(key 3)" 2>.demo/id-create.log)
sed 's/^/  /' .demo/id-create.log
echo "prefix: $prefix"

echo
echo "== anchor a device attestation, signed by tokens 1 and 2 at once, in one commit"
# A device key made here signs an auths attestation (given in auths' legacy
# form: compact, bare-hex key, +00:00); the registry stores auths' form.
"$GO" build -o bin/attestdemo ./internal/attestdemo
laptop=$(bin/attestdemo new -legacy .demo/laptop.key "$prefix" laptop-0001 .demo/laptop.json)
echo "device key .demo/laptop.key: $laptop"
"$A" anchor --registry .demo/registry --id "$prefix" --attestation .demo/laptop.json --device "$laptop" \
	--key "$(key 1)" --key "$(key 2)"
git -C .demo/registry show --stat --format='commit %h: %s' refs/auths/registry | sed 's/^/  /'

echo
echo "== a second anchor signed by token 3 alone: it waits in escrow"
phone=$(bin/attestdemo new .demo/phone.key "$prefix" phone-0001 .demo/phone.json)
echo "device key .demo/phone.key: $phone"
out=$("$A" anchor --registry .demo/registry --id "$prefix" --attestation .demo/phone.json --device "$phone" \
	--key "$(key 3)")
echo "$out"
said=$(echo "$out" | awk '$1 == "pending" { sub(":", "", $3); print $3 }')
[ -n "$said" ] || { echo "demo: expected a pending proposal" >&2; exit 1; }
"$A" pending list --registry .demo/registry
git -C .demo/registry for-each-ref refs/auths-agent/pending/ | sed 's/^/  /'

echo
echo "== another process adds token 1's signature and commits"
"$A" pending sign --registry .demo/registry --key "$(key 1)" "$prefix" "$said"
echo "pending proposals left: $("$A" pending list --registry .demo/registry | wc -l)"

echo
echo "== the agent: one process holds the three tokens on a temporary socket"
sock=$(mktemp -d /tmp/auths-demo.XXXXXX)/agent.sock
"$A" serve --socket "$sock" --registry .demo/registry --audit-file .demo/audit.jsonl --key "$(key 1)" --key "$(key 2)" --key "$(key 3)" \
	>.demo/agent.out 2>.demo/agent.log &
agent_pid=$!
trap 'kill -TERM $agent_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -qs '^listening on ' .demo/agent.out && break; sleep 0.1; done
sed 's/^/  /' .demo/agent.out
export AUTHS_AGENT_SOCK=$sock
"$A" agent keys | awk -F'\t' '{ print "  " $2 " " $1 " " $4 }'
echo "  three anchors at once through the agent (queued, each on the tip the last one left):"
pids=()
for n in 1 2 3; do
	"$A" anchor --registry .demo/registry --id "$prefix" --seal "i=$prefix,s=0,d=$prefix" >.demo/anchor-$n.out &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
cat .demo/anchor-*.out | sort | sed 's/^/    /'
kill -TERM $agent_pid
wait $agent_pid || true
trap - EXIT
unset AUTHS_AGENT_SOCK
echo "  agent stopped; socket removed: $([ -e "$sock" ] && echo no || echo yes)"
rmdir "$(dirname "$sock")" 2>/dev/null || true

echo
echo "== verify the KEL in the registry"
"$A" kel verify --registry .demo/registry "$prefix"
git -C .demo/registry fsck --strict --no-dangling 2>&1 | grep -v '^notice:' || true
echo
echo "== every attestation in the registry is one auths can load (parsed as auths does, device signature checked)"
mkdir -p .demo/check
git -C .demo/registry ls-tree -r --name-only refs/auths/registry -- v1/devices | grep -E '(attestation|history/.*)\.json$' |
	while read -r f; do
		git -C .demo/registry show "refs/auths/registry:$f" >".demo/check/$(echo "$f" | tr / _)"
		echo "  $f"
	done
bin/attestdemo check .demo/check/*.json | sed 's/^/  /'

echo
echo "prefix: $prefix"
"$A" kel show --registry .demo/registry "$prefix"
echo
git -C .demo/registry log --format='%h %s' refs/auths/registry
