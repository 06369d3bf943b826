#!/usr/bin/env bash
# End-to-end check of the compose federation, for operators and CI:
#
#   deploy/compose/smoke.sh
#
# It builds the image, creates a federation with init.sh in a temporary
# directory, starts it under its own compose project (host API ports
# 127.0.0.1:27400-27403; HASHFED_PORT_PREFIX=2740 to change), then checks:
# a leader and the non-voter's join, a publish as ngo with an offline-verified
# receipt, a subscription as the platform org through its non-voting node, an
# audit as the auditor, a publish with one voter stopped, and the voter's
# catch-up once restarted. It always removes the containers, volumes,
# network and temporary files, and exits non-zero on the first failure.
# Needs bash, Go and a Docker engine with docker-compose; pulls nothing.
#
# Environment: HASHFED_IMAGE (default hashfed:dev), SMOKE_SKIP_BUILD=1 to
# use the image as it is.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=${HASHFED_IMAGE:-hashfed:dev}
project=hashfed-smoke-$$
prefix=${HASHFED_PORT_PREFIX:-2740}
start=$(date +%s)

docker info >/dev/null 2>&1 || { echo "smoke: FAIL: no Docker engine (docker info failed)" >&2; exit 1; }
command -v docker-compose >/dev/null || { echo "smoke: FAIL: docker-compose not found" >&2; exit 1; }

tmp=$(mktemp -d)
gen=$tmp/generated
work=$tmp/work
mkdir -p "$work"

export HASHFED_IMAGE=$image HASHFED_GENERATED=$gen HASHFED_GID=$(id -g) HASHFED_PORT_PREFIX=$prefix
dc() { docker-compose -p "$project" -f "$here/compose.yaml" "$@"; }

step=setup
cleanup() {
	rc=$?
	set +e
	if [ $rc -ne 0 ]; then
		echo "smoke: FAIL at step: $step" >&2
		dc logs --no-color --tail=40 >&2 2>/dev/null
	fi
	dc down -v --remove-orphans >/dev/null 2>&1
	rm -rf "$tmp"
	if [ $rc -eq 0 ]; then
		echo "smoke: OK in $(($(date +%s) - start))s"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { printf "ok %4ss  %s\n" "$(($(date +%s) - start))" "$*"; }
fail() { echo "smoke: $*" >&2; exit 1; }

# hf ORG NODE ARGS...: the hashfed CLI from the image, as ORG's client
# certificate, against NODE's API port on 127.0.0.1 (the published ports),
# in $work. NODE is 0 (ngo-1), 1 (techco-1), 2 (auditor-1) or 3 (platform-1).
hf() {
	local org=$1 n=$2
	shift 2
	timeout 120 docker run --rm --pull never --user "$(id -u):$(id -g)" --network host \
		-v "$gen:/gen:ro" -v "$work:/work" -w /work \
		-e HASHFED_NODE="127.0.0.1:${prefix}$n" -e HASHFED_GENESIS=/gen/genesis.json \
		-e HASHFED_CERT="/gen/$org/client-cli.crt" -e HASHFED_KEY="/gen/$org/client-cli.key" \
		"$image" "$@"
}

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND until it succeeds.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local deadline=$(($(date +%s) + secs))
	until "$@" >/dev/null 2>&1; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			"$@" || true
			fail "timed out after ${secs}s waiting for $what"
		fi
		sleep 1
	done
}

# status_has ORG NODE PATTERN...: the node's status output matches every
# extended regular expression.
status_has() {
	local org=$1 n=$2 out
	shift 2
	out=$(hf "$org" "$n" status 2>&1) || return 1
	for p in "$@"; do
		grep -Eq -- "$p" <<<"$out" || return 1
	done
}

step=build
if [ "${SMOKE_SKIP_BUILD:-}" != 1 ]; then
	bash "$here/../build-image.sh" "$image" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }
	ok "built image $image (deploy/build-image.sh)"
fi

step=init
"$here/init.sh" "$gen" >/dev/null
ok "init.sh: CAs, keys, certificates, genesis and node configurations in a temporary directory"

step=up
dc up -d >/dev/null 2>&1 || { dc up -d; exit 1; }
ok "docker-compose up -d: project $project, API ports 127.0.0.1:${prefix}0-${prefix}3"

step=leader
wait_for 60 "a leader and the genesis entry on ngo-1" status_has ngo 0 '^leader [a-z]+-1 ' 'ledger size [1-9]'
leader=$(hf ngo 0 status | sed -n 's/^leader \([^ ]*\) .*/\1/p')
ok "leader $leader elected, genesis recorded (hashfed status on 127.0.0.1:${prefix}0)"

step=join
wait_for 60 "platform-1 to join as a non-voter" status_has platform 3 \
	'^node platform-1: Follower' 'ledger size [1-9]' 'member platform-1 +platform-1:7401 +non-voter'
for n in 1 2; do
	wait_for 30 "node $n to hold the genesis" status_has ngo "$n" '^leader [a-z]+-1 ' 'ledger size [1-9]'
done
ok "platform-1 joined as a non-voter and holds the ledger; all four API ports answer"

step=publish
cat >"$work/batch1.csv" <<'EOF'
type,value,labels
md5,0cc175b9c0f1b6a831c399e269772661,A1
sha256,ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb,A1 B2
pdq,f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22,B1
EOF
out=$(hf ngo 0 publish --set ngo/csam --signing-key /gen/ngo/signing.key --file batch1.csv 2>/dev/null)
grep -q 'committed 3 signals to ngo/csam as sequence 1: ledger entry 1' <<<"$out" || fail "publish said: $out"
out=$(hf ngo 0 verify-receipt ngo_csam_1.tlog-proof)
grep -q '^OK ngo_csam_1.tlog-proof: entry 1' <<<"$out" || fail "verify-receipt said: $out"
ok "ngo published 3 signals through ngo-1 as ledger entry 1; its receipt verifies offline"

step=subscribe
out=$(hf platform 3 subscribe --cursor-file platform.cursor --jsonl platform.jsonl 2>&1)
grep -q 'read 2 entries (3 signals); next entry 2' <<<"$out" || fail "subscribe said: $out"
for v in 0cc175b9c0f1b6a831c399e269772661 ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22; do
	grep -q "\"value\":\"$v\"" "$work/platform.jsonl" || fail "platform did not receive $v"
done
[ "$(wc -l <"$work/platform.jsonl")" -eq 3 ] || fail "platform received $(wc -l <"$work/platform.jsonl") signals, want 3"
ok "platform subscribed through non-voting platform-1: the 3 signals, verified"

step=audit
out=$(hf auditor 2 audit --node "127.0.0.1:${prefix}2,127.0.0.1:${prefix}0,127.0.0.1:${prefix}1,127.0.0.1:${prefix}3")
grep -q '^OK: checkpoint of "compose.hashfed" size 2' <<<"$out" || fail "audit said: $out"
ok "auditor: full audit OK, the four nodes agree on a cosigned checkpoint of size 2"

step=stop-voter
dc stop techco-1 >/dev/null 2>&1
wait_for 30 "a leader other than techco-1" status_has ngo 0 '^leader (ngo|auditor)-1 '
ok "techco-1 stopped; $(hf ngo 0 status | sed -n 's/^leader \([^ ]*\) .*/\1/p') leads with two of three voters"

step=publish-degraded
printf 'type,value\nmd5,92eb5ffee6ae2fec3ad71c777531578f\n' >"$work/batch2.csv"
out=$(hf ngo 0 publish --set ngo/csam --signing-key /gen/ngo/signing.key --file batch2.csv 2>/dev/null)
grep -q 'committed 1 signals to ngo/csam as sequence 2: ledger entry 2' <<<"$out" || fail "publish said: $out"
grep -q 'cosigned by ngo, auditor' <<<"$out" || fail "publish said: $out"
out=$(hf platform 3 subscribe --cursor-file platform.cursor --jsonl platform.jsonl 2>&1)
grep -q 'read 1 entries (1 signals); next entry 3' <<<"$out" || fail "subscribe said: $out"
out=$(hf auditor 2 audit --node "127.0.0.1:${prefix}2,127.0.0.1:${prefix}0")
grep -q '^OK: checkpoint of "compose.hashfed" size 3' <<<"$out" || fail "audit said: $out"
ok "with techco-1 down: published entry 2 (checkpoint cosigned by ngo, auditor), platform resumed from its cursor, incremental audit OK"

step=restart-voter
dc start techco-1 >/dev/null 2>&1
wait_for 60 "techco-1 to catch up" status_has techco 1 '^leader [a-z]+-1 ' 'ledger size 3'
ok "techco-1 restarted from its volume and caught up to ledger size 3"

step=retire-non-voter
dc stop platform-1 >/dev/null 2>&1
out=$(timeout 120 docker run --rm --pull never --user "$(id -u):$(id -g)" --network host \
	-v "$gen/nodes/platform-1:/etc/hashfed:ro" "$image" \
	node leave --config /etc/hashfed/node.yaml --via "127.0.0.1:${prefix}1,127.0.0.1:${prefix}2,127.0.0.1:${prefix}0" 2>&1) ||
	fail "hashfed node leave said: $out"
grep -q '^node platform-1 left the Raft configuration' <<<"$out" || fail "hashfed node leave said: $out"
out=$(hf ngo 0 status)
! grep -q platform-1 <<<"$out" || fail "platform-1 still a member after leaving: $out"
ok "platform-1 stopped and retired with hashfed node leave (as itself); the leader's configuration holds the three voters"

step=down
dc down -v --remove-orphans >/dev/null 2>&1
left=$(docker ps -aq --filter "label=com.docker.compose.project=$project"; docker volume ls -q --filter "label=com.docker.compose.project=$project")
[ -z "$left" ] || fail "left behind: $left"
ok "docker-compose down -v: no container or volume of project $project left"
