#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Benchmark: what an idle cpm-syncd puts on the wire, against a throwaway
# Dovecot with many folders.  Run on demand (not by make check):
#
#   make all tests && tests/bench/bench-idle-bytes.sh [FOLDERS]   (default 1800)
#   SYNCD=/path/to/other/cpm-syncd tests/bench/bench-idle-bytes.sh  (to compare)
#
# It starts Dovecot (tests/dovecot/dovecot-ctl.sh) with FOLDERS empty
# folders for alice, tests/tools/imap-proxy --stats in front of it, and
# cpm-syncd --no-dbus -v on it with poll_interval POLL (default 20 s, so
# that polls come quickly; what one costs does not depend on it).  Once the
# first sync ended and the daemon waits with NOTIFY, it counts over POLLS
# polls (default 3), from one wait to the wait after the last poll: bytes
# each way (the proxy's totals), and the NOTIFY SET, NOTIFY NONE and LIST
# commands in the daemon's wire trace, and how much Dovecot wrote to the
# user's list index log meanwhile (dovecot.list.index.log: what a NOTIFY
# SET's STATUS rewrites, whose rotation makes Dovecot 2.3's NOTIFY deaf;
# see libsync/engine/session.c).  It prints them per poll, and per
# hour at the default poll interval (300 s: 12 polls; the refresh NOOP
# every 240 s under NOTIFY is some 30 bytes each way, left out).
#
# Environment: B (build dir, default build), SYNCD, POLL, POLLS, KEEP=1
# keeps the work directory (logs), BENCH_TMP (parent of the work directory,
# default /tmp).
set -euo pipefail

BENCH=bench-idle-bytes
. "$(dirname "$0")/lib-bench.sh"
SYNCD=${SYNCD:-$B/cpm-syncd}
PROXY=$B/tests/tools/imap-proxy
CTL=$TOP/tests/dovecot/dovecot-ctl.sh
FOLDERS=${1:-1800}
POLL=${POLL:-20}
POLLS=${POLLS:-3}
for f in "$SYNCD" "$PROXY"; do
	[ -x "$f" ] || die "missing $f (make all tests)"
done

bench_work bench-idle-bytes
DC=$WORK/dovecot
bench_dovecot

log "creating $FOLDERS folders"
names=()
for ((i = 1; i <= FOLDERS; i++)); do
	names+=("Folder$i")
	if [ ${#names[@]} -eq 200 ] || [ "$i" -eq "$FOLDERS" ]; then
		dove mailbox create -u "$USER1" "${names[@]}" || die "cannot create the folders"
		names=()
	fi
done

"$PROXY" --listen-port-file "$WORK/port" --to "127.0.0.1:$IMAP_PORT" \
	--stats "$WORK/stats" 2>"$WORK/proxy.log" &
PROXY_PIDS+=($!)
for ((i = 0; i < 100; i++)); do
	[ -s "$WORK/port" ] && break
	sleep 0.05
done
[ -s "$WORK/port" ] || die "imap-proxy did not start: $(cat "$WORK/proxy.log")"

printf '%s\n' "$PASS1" >"$WORK/alice.pw"
chmod 0600 "$WORK/alice.pw"
cat >"$WORK/idle.conf" <<EOF
[general]
database = $WORK/idle.db
[account a]
host = 127.0.0.1
port = $(cat "$WORK/port")
security = none
user = $USER1
password_file = $WORK/alice.pw
poll_interval = $POLL
EOF
"$SYNCD" -c "$WORK/idle.conf" --no-dbus -v 2>"$WORK/syncd.log" &
SYNCD_PID=$!

# waits: how many times the daemon began to wait with NOTIFY
waits() { grep -c 'a: idle, push notify$' "$WORK/syncd.log" || true; }
polls() { grep -c 'a: poll$' "$WORK/syncd.log" || true; }
# proxy_total NAME: the proxy's total NAME (client_to_server, server_to_client)
proxy_total() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/stats"; }
# wait_for WHAT N SECONDS: until WHAT (waits, polls) reaches N
wait_for() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$("$1")" -ge "$2" ] && return 0
		kill -0 "$SYNCD_PID" 2>/dev/null || die "cpm-syncd exited: $(tail -n 5 "$WORK/syncd.log")"
		sleep 0.1
	done
	die "$1 did not reach $2 within $3 s"
}

log "first sync"
wait_for waits 1 600
# the proxy rewrites its stats when a connection closes: a snapshot of
# the open one comes from its counters alone at exit, so the daemon's
# bytes are read from its own trace instead; the proxy's totals (all
# connections, when they end) are printed for reference
LIL=$(find "$DC/home/$USER1" -name dovecot.list.index.log | head -n 1)
[ -n "$LIL" ] || die "no dovecot.list.index.log under $DC/home/$USER1"
# lil: the list index log's inode and size
lil() { stat -c '%i %s' "$LIL"; }
read -r ino0 size0 < <(lil)
w0=$(waits)
p0=$(polls)
l0=$(wc -l <"$WORK/syncd.log")
log "waiting with NOTIFY; $POLLS polls every $POLL s"
wait_for polls $((p0 + POLLS)) $(((POLL + 120) * POLLS))
wait_for waits $((w0 + POLLS)) 600
sleep 1
l1=$(wc -l <"$WORK/syncd.log")
read -r ino1 size1 < <(lil)
sed -n "$((l0 + 1)),${l1}p" "$WORK/syncd.log" >"$WORK/window.log"
# C:/S: lines of the trace, each with its CRLF
read -r c_bytes s_bytes < <(awk '
	{ i = index($0, " C: "); j = index($0, " S: ") }
	i { c += length(substr($0, i + 4)) + 2 }
	j { s += length(substr($0, j + 4)) + 2 }
	END { print c + 0, s + 0 }' "$WORK/window.log")
n_set=$(grep -c ' C: a[0-9]* NOTIFY SET ' "$WORK/window.log" || true)
n_none=$(grep -c ' C: a[0-9]* NOTIFY NONE' "$WORK/window.log" || true)
n_list=$(grep -c ' C: a[0-9]* LIST ' "$WORK/window.log" || true)
n_status=$(grep -c ' S: \* STATUS ' "$WORK/window.log" || true)

printf '%s: %s folders, %s polls (poll_interval %s s), %s\n' "$BENCH" "$FOLDERS" "$POLLS" \
	"$POLL" "$SYNCD"
printf '  per poll: NOTIFY SET %s, NOTIFY NONE %s, LIST %s, untagged STATUS %s\n' \
	"$(awk -v n="$n_set" -v p="$POLLS" 'BEGIN { print n / p }')" \
	"$(awk -v n="$n_none" -v p="$POLLS" 'BEGIN { print n / p }')" \
	"$(awk -v n="$n_list" -v p="$POLLS" 'BEGIN { print n / p }')" \
	"$(awk -v n="$n_status" -v p="$POLLS" 'BEGIN { print n / p }')"
awk -v c="$c_bytes" -v s="$s_bytes" -v p="$POLLS" 'BEGIN {
	printf "  per poll (trace, before TLS): client %d B, server %d B\n", c / p, s / p
	printf "  per hour at poll_interval 300 s: %.1f MB (x24: %.0f MB a day)\n",
		(c + s) / p * 12 / 1e6, (c + s) / p * 12 * 24 / 1e6 }'
if [ "$ino0" = "$ino1" ]; then
	echo "  list index log: $((size1 - size0)) B written over the $POLLS polls"
else
	echo "  list index log: rotated during the polls ($size0 B before)"
fi
kill -TERM "$SYNCD_PID"
wait "$SYNCD_PID" || true
SYNCD_PID=
echo "  proxy totals (every connection, the first sync included):" \
	"client $(proxy_total client_to_server) B, server $(proxy_total server_to_client) B"
