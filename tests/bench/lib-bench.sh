#!/usr/bin/env bash
# Shared set-up of the benchmarks (tests/bench/bench-*.sh; not one itself).
# Source it after `set -euo pipefail`, with BENCH set to the script's name
# (messages say "$BENCH: ..."):
#
#   TOP, B                    the tree, the build dir (B made absolute)
#   die MESSAGE               says it and exits 1
#   log MESSAGE               a timestamped line on stderr
#   broken MESSAGE            says it and sets BROKEN=1 (a step failed: the
#                             script ends with status 1 after its table)
#   bench_work NAME           WORK=$(mktemp -d ${BENCH_TMP:-/tmp}/NAME.XXXXXX),
#                             0755, and bench_cleanup at exit
#   bench_cleanup             stops what the script started: SYNCD_PID (TERM,
#                             KILL after 10 s), PROXY_PIDS, BUS_PID, the server
#                             in DC (with $CTL); removes WORK unless KEEP=1
#   bench_bus                 a private session dbus-daemon (BUS_PID), its
#                             address exported
#   bench_dovecot             Dovecot in DC ($CTL start), its env sourced,
#                             dove ARGS... = doveadm against it

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$TOP/$B ;; esac
WORK=
DC=
BUS_PID=
SYNCD_PID=
PROXY_PIDS=()
# shellcheck disable=SC2034 # the sourcing script reads it
BROKEN=0

die() { echo "$BENCH: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
# shellcheck disable=SC2034 # the sourcing script reads BROKEN
broken() { echo "$BENCH: BROKEN: $*" >&2; BROKEN=1; }

bench_cleanup() {
	local i pid
	if [ -n "$SYNCD_PID" ]; then
		kill -TERM "$SYNCD_PID" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$SYNCD_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$SYNCD_PID" 2>/dev/null || true
		wait "$SYNCD_PID" 2>/dev/null || true
	fi
	for pid in "${PROXY_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PROXY_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	[ -n "$BUS_PID" ] && kill -TERM "$BUS_PID" 2>/dev/null
	[ -n "$DC" ] && { "$CTL" stop "$DC" >/dev/null 2>&1 || true; }
	[ -n "$WORK" ] || return 0
	if [ "${KEEP:-}" = 1 ]; then
		echo "$BENCH: kept $WORK" >&2
	else
		rm -rf -- "$WORK"
	fi
}

bench_work() {
	WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/$1.XXXXXX")
	chmod 0755 "$WORK"
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_bus() {
	dbus-daemon --session --fork --nopidfile --print-address=3 --print-pid=4 \
		3>"$WORK/bus.addr" 4>"$WORK/bus.pid" || die "cannot start a private dbus-daemon"
	BUS_PID=$(cat "$WORK/bus.pid")
	DBUS_SESSION_BUS_ADDRESS=$(head -n 1 "$WORK/bus.addr")
	export DBUS_SESSION_BUS_ADDRESS
}

bench_dovecot() {
	mkdir -p "$DC"
	"$CTL" start "$DC" >/dev/null || die "cannot start Dovecot"
	# shellcheck disable=SC1091 # written by dovecot-ctl.sh start
	. "$DC/env"
}
dove() { "$CTL" doveadm "$DC" "$@"; }
