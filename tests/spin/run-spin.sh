#!/usr/bin/env bash
# tests/spin/run-spin.sh — model-check the port protocol (ports.pml).
#
# Verifies each configuration exhaustively (no bitstate, no hash-compact:
# -DCOLLAPSE is lossless) and fails on any counterexample; then verifies
# each mutant (a known bug put back with -DBUG_...) and fails unless spin
# finds a counterexample for it, so the check cannot pass vacuously.
# See docs/ports.md, section 10.
#
# usage: run-spin.sh [--keep]     exit 0 ok, 1 failure, 77 spin missing
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
model=$here/ports.pml
keep=${1:-}

if ! command -v spin >/dev/null 2>&1; then
	echo "run-spin: SKIP: spin is not installed (scripts/deps.sh test installs it)"
	exit 77
fi
cc=${CC:-cc}
command -v "$cc" >/dev/null 2>&1 || cc=gcc

work=$(mktemp -d "${TMPDIR:-/tmp}/fltmgr-spin.XXXXXX")
if [ "$keep" = --keep ]; then echo "run-spin: keeping $work"; else trap 'rm -rf "$work"' EXIT; fi

# name | spin -D flags | what it covers
configs=(
	"replies|-DNS=2 -DNC=1 -DNO_COPY_SEND -DNO_CLOSER|two senders wanting replies (finite, infinite): leader/follower on R, hand-off, acks, late replies, service disconnect"
	"close|-DNS=1 -DNC=1|reply send and copy send against flt_close_client_port and the disconnect callback"
	"reuse|-DNS=1 -DNC=2 -DNO_COPY_SEND|reply send through the global across a reconnect; closer; slot reuse"
	"stale|-DNS=1 -DNC=2 -DNO_REPLY_SEND|send through a stale copy across a reconnect that may reuse the slot"
	"stray|-DNS=2 -DNC=1 -DNO_COPY_SEND -DNO_CLOSER -DSTRAY|a malformed frame on R, sent while senders wait or none does, ends the connection"
)
# name | config | spin -D flags | what the bug is
mutants=(
	"BUG_NO_REF|close|-DNS=1 -DNC=1 -DBUG_NO_REF|the seed: the handle becomes a pointer without a reference"
	"BUG_NO_GEN|stale|-DNS=1 -DNC=2 -DNO_REPLY_SEND -DBUG_NO_GEN|the table ignores the generation"
	"BUG_CLOSE_NOTIFIES|close|-DNS=1 -DNC=1 -DBUG_CLOSE_NOTIFIES|flt_close_client_port also runs the disconnect callback"
	"BUG_NO_HANDOFF|replies|-DNS=2 -DNC=1 -DNO_COPY_SEND -DNO_CLOSER -DBUG_NO_HANDOFF|a leaving reader does not pass the R role on"
	"BUG_NO_UNLINK|replies|-DNS=2 -DNC=1 -DNO_COPY_SEND -DNO_CLOSER -DBUG_NO_UNLINK|a timed-out request stays on the waiting list"
	"BUG_IDLE_R_UNWATCHED|stray|-DNS=2 -DNC=1 -DNO_COPY_SEND -DNO_CLOSER -DSTRAY -DBUG_IDLE_R_UNWATCHED|the thread reads R only while a late reply is possible"
)

# verify <dir> <flags...>: leaves pan's output in <dir>/out
verify() {
	local dir=$1
	shift
	mkdir -p "$dir"
	(
		cd "$dir"
		# shellcheck disable=SC2068
		spin $@ -a "$model" >spin.log 2>&1 || { cat spin.log; exit 1; }
		"$cc" "${opt:--O2}" -w -DSAFETY -DCOLLAPSE -DMEMLIM=2048 -o pan pan.c
		./pan -m100000 -w22 >out 2>&1 || true
	)
}

field() { # field <out> <regex>: first number on the matching line
	grep -E "$2" "$1" | head -1 | grep -Eo '[0-9][0-9.e+]*' | head -1
}

fail=0
total_states=0
start=$(date +%s)
for c in "${configs[@]}"; do
	IFS='|' read -r name flags what <<<"$c"
	verify "$work/$name" $flags
	out=$work/$name/out
	errors=$(grep -Eo 'errors: [0-9]+' "$out" | grep -Eo '[0-9]+' || echo missing)
	states=$(field "$out" 'states, stored')
	trans=$(field "$out" 'transitions \(')
	mem=$(field "$out" 'total actual memory')
	secs=$(field "$out" 'elapsed time')
	if [ "$errors" != 0 ] || grep -q 'Search not completed\|max search depth too small' "$out"; then
		echo "run-spin: FAIL $name ($flags): errors: $errors"
		grep -E 'pan:|violated|invalid end' "$out" | head -5
		(cd "$work/$name" && [ -f ports.pml.trail ] &&
			spin $flags -t -p -k ports.pml.trail "$model" | tail -60) || true
		fail=1
		continue
	fi
	total_states=$(awk -v a="$total_states" -v b="$states" 'BEGIN { printf "%d", a + b }')
	printf 'run-spin: ok   %-8s %10s states stored, %10s transitions, %7s MB, %5s s  (%s)\n' \
		"$name" "$states" "$trans" "$mem" "$secs" "$what"
done

for m in "${mutants[@]}"; do
	IFS='|' read -r name base flags what <<<"$m"
	# small searches: a quick compile beats a fast verifier
	opt=-O0 verify "$work/$name" $flags
	out=$work/$name/out
	errors=$(grep -Eo 'errors: [0-9]+' "$out" | grep -Eo '[0-9]+' || echo 0)
	if [ "$errors" = 0 ]; then
		echo "run-spin: FAIL mutant $name ($what): spin found no counterexample"
		fail=1
		continue
	fi
	why=$(grep -E '^pan:1:' "$out" | head -1 | sed 's/^pan:1: //')
	printf 'run-spin: ok   mutant %-18s on %-7s caught: %s\n' "$name" "$base" "$why"
done

echo "run-spin: $total_states states stored in all configurations; $(($(date +%s) - start)) s in all"
exit $fail
