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
#   bench_bus                 a private session bus, its address exported:
#                             dbus-daemon, or with BUS=broker dbus-broker
#                             (bench_broker); BUS_PID what to stop, BUS_CPU_PID
#                             the process that passes the messages on (its
#                             CPU time is the bus's), BUS_NAME its name
#   bench_dovecot             Dovecot in DC ($CTL start), its env sourced,
#                             dove ARGS... = doveadm against it

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$TOP/$B ;; esac
WORK=
DC=
BUS_PID=
BUS_CPU_PID=
BUS_NAME=
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
	case ${BUS:-daemon} in
	daemon) ;;
	broker)
		bench_broker
		return
		;;
	*) die "BUS: daemon or broker, not '$BUS'" ;;
	esac
	dbus-daemon --session --fork --nopidfile --print-address=3 --print-pid=4 \
		3>"$WORK/bus.addr" 4>"$WORK/bus.pid" || die "cannot start a private dbus-daemon"
	BUS_PID=$(cat "$WORK/bus.pid")
	# shellcheck disable=SC2034 # the sourcing script reads them
	BUS_CPU_PID=$BUS_PID BUS_NAME=dbus-daemon
	DBUS_SESSION_BUS_ADDRESS=$(head -n 1 "$WORK/bus.addr")
	export DBUS_SESSION_BUS_ADDRESS
}

# BUS=broker: a private session bus run by dbus-broker (Debian 12's
# dbus-broker 33; the package is installed here, for the benchmark alone,
# when missing).  dbus-broker-launch takes its listening socket from socket
# activation only (systemd-socket-activate passes it on the first
# connection), connects to the bus it launched (DBUS_SESSION_BUS_ADDRESS)
# and will not start without the journal's socket
# (/run/systemd/journal/socket; it logs there, lossy): where there is no
# journald, it runs in a mount namespace of its own (unshare -m, root) with
# a tmpfs over /run/systemd holding a socket nobody reads, bound by python3
# just before it execs the launcher.  BUS_PID: the launcher (dbus-broker, its
# child, ends with it); BUS_CPU_PID: dbus-broker.
bench_broker() {
	local sock=$WORK/bus i
	[ "$(id -u)" -eq 0 ] || die "BUS=broker needs root (a mount namespace for the journal socket)"
	if ! command -v dbus-broker-launch >/dev/null; then
		log "BUS=broker: installing dbus-broker (for this benchmark only)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			dbus-broker >"$WORK/apt.log" 2>&1 ||
			die "cannot install dbus-broker: $(tail -n 3 "$WORK/apt.log")"
	fi
	for i in unshare systemd-socket-activate /usr/bin/python3; do
		command -v "$i" >/dev/null || die "BUS=broker needs $i"
	done
	cat >"$WORK/broker.sh" <<-'EOF'
		set -eu
		if [ ! -S /run/systemd/journal/socket ]; then
			mount -t tmpfs tmpfs /run/systemd
			mkdir /run/systemd/journal
		fi
		exec systemd-socket-activate -E DBUS_SESSION_BUS_ADDRESS -E XDG_RUNTIME_DIR \
			-l "$1" /usr/bin/python3 -c 'import os, socket, sys
		path = "/run/systemd/journal/socket"
		if not os.path.exists(path):
		    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
		    s.bind(path)
		    os.set_inheritable(s.fileno(), True)
		os.execv(sys.argv[1], sys.argv[1:])' "$2" --scope user
	EOF
	DBUS_SESSION_BUS_ADDRESS=unix:path=$sock
	export DBUS_SESSION_BUS_ADDRESS
	XDG_RUNTIME_DIR=$WORK unshare -m --propagation private sh "$WORK/broker.sh" "$sock" \
		"$(command -v dbus-broker-launch)" \
		>"$WORK/broker.log" 2>&1 &
	BUS_PID=$!
	# shellcheck disable=SC2034 # the sourcing script reads it
	BUS_NAME=dbus-broker
	for ((i = 0; i < 100; i++)); do
		[ -S "$sock" ] && break
		sleep 0.05
	done
	# The first connection launches it.
	dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
		org.freedesktop.DBus.GetId >/dev/null 2>&1 ||
		die "dbus-broker did not answer: $(tail -n 5 "$WORK/broker.log")"
	# shellcheck disable=SC2034 # the sourcing script reads it
	BUS_CPU_PID=$(pgrep -P "$BUS_PID" -x dbus-broker) ||
		die "no dbus-broker below the launcher $BUS_PID: $(tail -n 5 "$WORK/broker.log")"
}

bench_dovecot() {
	mkdir -p "$DC"
	"$CTL" start "$DC" >/dev/null || die "cannot start Dovecot"
	# shellcheck disable=SC1091 # written by dovecot-ctl.sh start
	. "$DC/env"
}
dove() { "$CTL" doveadm "$DC" "$@"; }
