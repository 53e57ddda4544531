#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Benchmark: push latency of the running cpm-syncd, over D-Bus, against a
# throwaway Dovecot or Cyrus.  Run on demand (not by make check):
#
#   make all tests && tests/bench/bench-push.sh [N]       (N events, default 200)
#   B=build/other tests/bench/bench-push.sh 500           (another build dir)
#   SERVER=cyrus-alt tests/bench/bench-push.sh            (Cyrus IMAP, alt namespace)
#
# It starts the server (SERVER: dovecot, the default, with tests/dovecot/
# dovecot-ctl.sh; cyrus-alt or cyrus-classic with tests/cyrus/cyrus-ctl.sh),
# a private session bus (never the user's) and cpm-syncd on it with one
# account "bench" (alice), waits for the first sync, then measures with
# tests/tools/push-latency:
#   added  N times: a server-side APPEND to INBOX by another IMAP client ->
#          the daemon's Folder1.MessagesAdded signal carrying its Message-ID,
#          side by side with a bare IDLE client (its own connection in IDLE
#          on INBOX: APPEND -> its untagged EXISTS), and the daemon's share
#          above that client per event (MessagesAdded - the bare EXISTS)
#   flags  N times: Folder1.SetFlags (\Flagged on, off, ...) on one INBOX
#          message -> the FETCH seen by another client that has INBOX
#          selected and sends NOOP every 5 ms
#   sync   N times: Account1.Sync with nothing new on the server -> the
#          account's SyncGeneration moving (with NOTIFY active the daemon
#          answers from what push already told it, without a round trip)
#   flags-idle  the same, min(N, 50) times, with the other client in IDLE
#          (informational: Dovecot 2.3 sends IDLE and NOTIFY updates 500 ms
#          after a change, NOTIFY_DELAY_MSECS in its mailbox-watch.c and
#          mailbox-list-notify-index.c; the daemon learns of the APPENDs of
#          "added" through the same path, so that floor is in "added" too)
# Then (Dovecot only: it writes Maildir files; BIG=0 skips it) it drops BIG
# (default 100000) small messages (~0.5 KiB) into folder
# Bench (Maildir files, indexed by doveadm force-resync), asks the daemon to
# sync (Account1.Sync) and waits until Bench holds them all, and measures
#   list   Folder1.ListMessages(0, 1000) on Bench, 20 times
#   RSS    the daemon's VmRSS (and VmHWM, its peak) 5 s after that, idle
# and, during that sync, D-Bus calls to the daemon (Manager1.Version read
# every 20 ms for BENCH_BUSY_S seconds, default 10: their median and max),
# and prints a table and the targets with PASS/MISS (informational: the
# exit status is 0 unless a step failed or timed out).
#
# Targets (from the issues): median <= 100 ms and p99 <= 500 ms (nearest
# rank) for both added and flags, over at least 200 events; the daemon's
# share above the bare IDLE client <= 20 ms (median); Sync() with nothing
# new <= 1 ms (median) when PushState is notify, else <= 2x a bare client's
# LIST-STATUS round trip (median, measured here: "floor").
#
# Environment: B (build dir, default build), SYNCD (another cpm-syncd, e.g.
# an older build, to compare), BIG (messages in Bench, default
# 100000), BENCH_TLS=1 (the account uses implicit TLS with the test CA
# instead of security = none), BENCH_SYNC_BODIES (the account's sync_bodies,
# default all), BENCH_SYNC_TIMEOUT (seconds to wait for the big sync, default
# 3600), BENCH_VERBOSE=1 (cpm-syncd -v and each latency printed),
# BENCH_SEGMENTS=1 (with perf: the Sync() step split into the daemon's
# time before its IMAP command, the server's, and the daemon's after it, by
# the syscall tracepoints of its socket calls), BUS=broker (the private bus
# run by dbus-broker: bench_broker in lib-bench.sh), KEEP=1
# keeps the work directory (logs, store), BENCH_TMP (parent of the work
# directory, default /tmp).
set -euo pipefail

BENCH=bench-push
. "$(dirname "$0")/lib-bench.sh"
SYNCD=${SYNCD:-$B/cpm-syncd}
PL=$B/tests/tools/push-latency
SERVER=${SERVER:-dovecot}
case $SERVER in
dovecot) CTL=$TOP/tests/dovecot/dovecot-ctl.sh ;;
cyrus-alt | cyrus-classic) CTL=$TOP/tests/cyrus/cyrus-ctl.sh ;;
*)
	echo "bench-push: SERVER must be dovecot, cyrus-alt or cyrus-classic, not '$SERVER'" >&2
	exit 2
	;;
esac

N=${1:-200}
BIG=${BIG:-100000}
[ "$SERVER" = dovecot ] || BIG=0
if ! [[ $N =~ ^[0-9]+$ ]] || [ "$N" -lt 1 ] || ! [[ $BIG =~ ^[0-9]+$ ]] ||
	{ [ "$BIG" -ne 0 ] && [ "$BIG" -lt 1000 ]; }; then
	echo "usage: [SERVER=dovecot|cyrus-alt|cyrus-classic] [BIG=0 or messages >= 1000] $0 [N >= 1]" >&2
	exit 2
fi
# Seconds of D-Bus calls measured at the start of the big sync.
BUSY_S=${BENCH_BUSY_S:-10}
LIST_COUNT=1000
LIST_REPEAT=20
SYNC_TIMEOUT=${BENCH_SYNC_TIMEOUT:-3600}
SYNC_BODIES=${BENCH_SYNC_BODIES:-all}
CPM_V=()
PL_V=()
if [ "${BENCH_VERBOSE:-}" = 1 ]; then
	CPM_V=(-v)
	PL_V=(-v)
fi

for f in "$SYNCD" "$PL"; do
	[ -x "$f" ] || die "$f missing: run make B=${B#"$TOP"/} all tests"
done
[ "${BUS:-daemon}" = broker ] || command -v dbus-daemon >/dev/null ||
	die "dbus-daemon missing (apt-get install dbus-daemon)"
[ "$N" -ge 200 ] || echo "bench-push: note: N=$N; the targets are stated over at least 200 events" >&2

bench_work cpmsync-bench-push
DC=$WORK/server
syncd_alive() {
	kill -0 "$SYNCD_PID" 2>/dev/null || {
		broken "cpm-syncd is gone; the end of its log:"
		tail -n 20 "$WORK/syncd.log" | sed 's/^/    /' >&2
		exit 1
	}
}

# --- the server, bus, daemon ---------------------------------------------------

mkdir -p "$DC"
if [ "$SERVER" = dovecot ]; then
	"$CTL" start "$DC" >/dev/null || die "cannot start Dovecot"
	. "$DC/env"
	dove() { "$CTL" doveadm "$DC" "$@"; }
	SERVER_NAME=$("${DOVECOT_BIN:-/usr/sbin/dovecot}" --version 2>/dev/null | head -n 1)
	SERVER_NAME="Dovecot $SERVER_NAME"
else
	CYRUS_NAMESPACE=${SERVER#cyrus-} "$CTL" start "$DC" >/dev/null || die "cannot start Cyrus"
	. "$DC/env"
	dove() { "$CTL" imap "$DC" "$@"; } # the doveadm subset of tests/cyrus/cyrus-imap.py
	# The version as the greeting gives it.
	greeting=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; head -n 1 <&3' _ \
		"$IMAP_PORT") || greeting=
	SERVER_NAME=$(grep -o 'Cyrus IMAP [^ ]*' <<<"$greeting") || SERVER_NAME="Cyrus IMAP"
	SERVER_NAME="$SERVER_NAME ($CYRUS_NAMESPACE namespace)"
fi
dove mailbox create -u "$USER1" Bench

printf '%s\n' "$PASS1" >"$WORK/alice.pw"
chmod 0600 "$WORK/alice.pw"

if [ "${BENCH_TLS:-}" = 1 ]; then
	SECURITY=tls
	SRV_CONF="host = localhost
port = $IMAPS_PORT
security = tls
ca_file = $CA_FILE"
else
	SECURITY=none
	SRV_CONF="host = 127.0.0.1
port = $IMAP_PORT
security = none"
fi
cat >"$WORK/cpm.conf" <<EOF
[general]
database = $WORK/store.db
outbox = $WORK/outbox

[account bench]
$SRV_CONF
user = $USER1
password_file = $WORK/alice.pw
folders = *
sync_bodies = $SYNC_BODIES
EOF

bench_bus

log "starting cpm-syncd (security $SECURITY) on a private bus"
"$SYNCD" -c "$WORK/cpm.conf" "${CPM_V[@]}" 2>"$WORK/syncd.log" &
SYNCD_PID=$!
"$PL" wait --account bench --timeout 60 ||
	{ syncd_alive; die "cpm-syncd did not reach state idle; the end of its log:
$(tail -n 20 "$WORK/syncd.log")"; }

# --- latency ------------------------------------------------------------------

IMAP_ARGS=(--imap "127.0.0.1:$IMAP_PORT" --user "$USER1" --password-file "$WORK/alice.pw"
	--account bench --folder INBOX)

# measure NAME MODE COUNT [ARGS...]: push-latency MODE ...; output in WORK/NAME.out
measure() {
	local name=$1 mode=$2 count=$3
	shift 3
	log "$name: $count events"
	if ! "$PL" "$mode" "${IMAP_ARGS[@]}" --count "$count" "$@" "${PL_V[@]}" \
		>"$WORK/$name.out" 2>"$WORK/$name.err"; then
		broken "$name: $(tail -n 3 "$WORK/$name.err")"
		syncd_alive
	fi
	[ "${BENCH_VERBOSE:-}" = 1 ] && sed 's/^/    /' "$WORK/$name.out" >&2
	cat "$WORK/$name.err" >&2
}
IDLE_N=$((N < 50 ? N : 50))
measure added added "$N" --bare
measure flags flags "$N" --observe noop --poll-ms 5
measure flags-idle flags "$IDLE_N" --observe idle

# Dovecot sends NOTIFY events 500 ms after a change: let the last ones land.
sleep 2
log "sync: Account1.Sync with nothing new, $N times"
# BENCH_SEGMENTS=1: the daemon's socket calls during these syncs, timed
# by the kernel's syscall tracepoints (perf record; nothing traced but
# four calls, so the daemon runs at its speed), split per Sync() below.
SEG_PID=
: >"$WORK/segments.out"
if [ "${BENCH_SEGMENTS:-}" = 1 ]; then
	if command -v perf >/dev/null; then
		perf record -q -e syscalls:sys_exit_recvmsg -e syscalls:sys_enter_sendmsg \
			-e syscalls:sys_enter_sendto -e syscalls:sys_exit_recvfrom -p "$SYNCD_PID" \
			-o "$WORK/sync.perf" >"$WORK/perf.err" 2>&1 &
		SEG_PID=$!
		sleep 0.5 # attached
	else
		echo "BENCH_SEGMENTS=1: no perf (apt-get install linux-perf)" >"$WORK/segments.out"
	fi
fi
if ! "$PL" sync --account bench --count "$N" "${PL_V[@]}" >"$WORK/sync.out" 2>"$WORK/sync.err"; then
	broken "sync: $(tail -n 3 "$WORK/sync.err")"
	syncd_alive
fi
SYNC_PUSH=$(sed -n 's/^push: //p' "$WORK/sync.out")
if [ -n "$SEG_PID" ]; then
	kill -INT "$SEG_PID" 2>/dev/null || true
	wait "$SEG_PID" || true
	# Per Sync(): its call read from the bus (the last recvmsg before
	# the IMAP command that follows it), that command sent (its first
	# sendto), the server's answer read (the last recvfrom before the
	# daemon's next signal burst ends), and the last signal sent before
	# the next IMAP command (IDLE again): SyncGeneration.  The bus's hops
	# to and from push-latency are the rest of its figure.
	if perf script -i "$WORK/sync.perf" -F time,event,trace >"$WORK/sync.trace" 2>>"$WORK/perf.err"; then
		python3 - "$WORK/sync.trace" >"$WORK/segments.out" 2>>"$WORK/perf.err" <<'EOF2' ||
import re, statistics, sys
ev = []
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+):\s+syscalls:(\w+): (.*)", line)
    if not m:
        continue
    call, rest = m.group(2), m.group(3).strip()
    if call.startswith("sys_exit_"):
        ok = int(rest, 16) < (1 << 63)  # not -errno
        if not ok or int(rest, 16) == 0:
            continue
    ev.append((float(m.group(1)), call))
runs, i = [], 0
while i < len(ev):
    # the IMAP command a Sync() sends: a sendto after a bus read
    if ev[i][1] != "sys_enter_sendto":
        i += 1
        continue
    j = i - 1
    while j >= 0 and ev[j][1] != "sys_exit_recvmsg":
        j -= 1
    k = i + 1  # up to the next IMAP command, or the next call (20 ms on)
    while k < len(ev) and ev[k][1] != "sys_enter_sendto" and not (
            ev[k][1] == "sys_exit_recvmsg" and ev[k][0] - ev[i][0] > 0.02):
        k += 1
    span = ev[i + 1:k]
    reads = [t for t, c in span if c == "sys_exit_recvfrom"]
    sends = [t for t, c in span if c == "sys_enter_sendmsg"]
    first = j >= 0 and all(c != "sys_enter_sendto" for _, c in ev[j:i])
    if first and reads and sends and sends[-1] > reads[-1] and ev[i][0] - ev[j][0] < 0.05:
        last_read = max(t for t in reads if t < sends[-1])
        runs.append((ev[j][0], ev[i][0], last_read, sends[-1]))
    i = k
if not runs:
    sys.exit("no Sync() found in the trace")
def seg(a, b, what):
    d = sorted((r[b] - r[a]) * 1000 for r in runs)
    print("%s: n=%d median=%.3f ms min=%.3f ms max=%.3f ms" % (what, len(d), statistics.median(d), d[0], d[-1]))
seg(0, 1, "call read -> IMAP command sent (daemon)")
seg(1, 2, "IMAP command sent -> answer read (server)")
seg(2, 3, "answer read -> SyncGeneration sent (daemon)")
seg(0, 3, "call read -> SyncGeneration sent")
EOF2
			echo "BENCH_SEGMENTS=1: $(tail -n 1 "$WORK/perf.err")" >"$WORK/segments.out"
	else
		echo "BENCH_SEGMENTS=1: perf failed: $(tail -n 1 "$WORK/perf.err")" >"$WORK/segments.out"
	fi
fi

# The floor of a Sync() without NOTIFY: one LIST-STATUS round trip (what
# the run sends when nothing changed, pipelined with the DONE of its IDLE),
# timed by a bare client on its own logged-in connection, N times.
log "floor: LIST-STATUS round trip, $N times"
if ! python3 - "$IMAP_PORT" "$USER1" "$WORK/alice.pw" "$N" >"$WORK/floor.out" \
	2>"$WORK/floor.err" <<'EOF'
import socket, statistics, sys, time
port, user, pwfile, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
pw = open(pwfile).read().strip()
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = b""
# Lines as they come, with TCP_QUICKACK before each read: a server that
# writes a reply in pieces under Nagle (Cyrus) waits for our ACK, as the
# daemon's connection does not (imap_client_set_quick_ack()).
def readline():
    global buf
    while b"\n" not in buf:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        d = s.recv(65536)
        if not d:
            return b""
        buf += d
    l, buf = buf.split(b"\n", 1)
    return l + b"\n"
readline()
def cmd(tag, line, before=b""):
    s.sendall(before + ("%s %s\r\n" % (tag, line)).encode())
    while True:
        l = readline()
        if not l:
            sys.exit("floor: the server closed the connection")
        if l.startswith(tag.encode() + b" "):
            if not l.startswith(tag.encode() + b" OK"):
                sys.exit("floor: %s: %s" % (line.split()[0], l.decode(errors="replace").strip()))
            return
LIST = 'LIST "" "*" RETURN (SPECIAL-USE STATUS (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ))'
cmd("l", 'LOGIN "%s" "%s"' % (user, pw))
cmd("x", "SELECT INBOX")
lat = []
for i in range(n):
    t0 = time.perf_counter()
    cmd("s%d" % i, LIST)
    lat.append((time.perf_counter() - t0) * 1000)
print("list-status: n=%d median=%.2f" % (n, statistics.median(lat)))
# What a Sync() in IDLE must do on the one connection: DONE, and the
# LIST-STATUS behind it (sent together, as the daemon does).
lat = []
for i in range(n):
    s.sendall(b"i%d IDLE\r\n" % i)
    while not readline().startswith(b"+"):
        pass
    time.sleep(0.02)
    t0 = time.perf_counter()
    cmd("t%d" % i, LIST, b"DONE\r\n")
    lat.append((time.perf_counter() - t0) * 1000)
print("idle-list-status: n=%d median=%.2f" % (n, statistics.median(lat)))
cmd("o", "LOGOUT")
EOF
then
	broken "floor: $(tail -n 3 "$WORK/floor.err")"
fi

# --- a big folder: ListMessages and RSS ---------------------------------------

GEN_BYTES=0 SYNC_S=-
[ "$BIG" -ne 0 ] && {
log "generating $BIG small messages in Bench"
t0=$(date +%s.%N)
LC_ALL=C awk -v dir="$DC/home/$USER1/Maildir/.Bench" -v n="$BIG" 'BEGIN {
	split("alice bob carol dave erin frank grace heidi", names, " ")
	split("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor", words, " ")
	system("mkdir -p \"" dir "/cur\" \"" dir "/new\" \"" dir "/tmp\"")
	for (k = 1; k <= n; k++) {
		m = k % 1440
		from = names[1 + k % 8]
		to = names[1 + int(k / 8) % 8]
		body = ""
		for (l = 0; l < 4; l++) {
			line = ""
			for (w = 0; w < 10; w++)
				line = line (w ? " " : "") words[1 + (k * 7 + l * 5 + w * 3) % 12]
			body = body line "\n"
		}
		msg = sprintf("Message-ID: <small-%d@bench.example>\n" \
			"Date: %02d Jan 2024 %02d:%02d:00 +0000\n" \
			"From: %s <%s@bench.example>\nTo: %s <%s@bench.example>\n" \
			"Subject: Small benchmark message %d\n" \
			"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n%s",
			k, 1 + int(k / 1440) % 28, int(m / 60), m % 60, from, from, to, to, k, body)
		size = length(msg)
		lines = gsub(/\n/, "\n", msg)
		f = sprintf("%s/cur/%d.M%dP0.small,S=%d,W=%d:2,", dir, 1704067200 + k * 60, k,
			size, size + lines)
		printf "%s", msg > f
		close(f)
		total += size
	}
	print total > "/dev/stderr"
}' 2>"$WORK/gen.out" || die "generating the messages failed"
if [ "$(id -u)" -eq 0 ]; then
	chown -R "$MAIL_UID:$MAIL_GID" "$DC/home/$USER1/Maildir"
fi
dove force-resync -u "$USER1" Bench
GEN_BYTES=$(cat "$WORK/gen.out")
server_count=$(dove -f flow mailbox status -u "$USER1" messages Bench | sed 's/.*messages=//')
[ "$server_count" = "$BIG" ] || die "Dovecot sees $server_count messages in Bench, not $BIG"
t1=$(date +%s.%N)
log "generated and indexed $BIG messages ($GEN_BYTES bytes) in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"

log "waiting for cpm-syncd to sync them (timeout $SYNC_TIMEOUT s)"
t0=$(date +%s.%N)
# Meanwhile, D-Bus calls to the busy daemon (a property read every 20 ms):
# how long an app waits while a big sync has the loop.
"$B/tests/tools/cpmsync-dbus" latency "$BUSY_S" >"$WORK/busy.out" 2>&1 &
BUSY_PID=$!
BIG_SYNCED=1
if ! "$PL" wait --account bench --folder Bench --messages "$BIG" --sync \
	--timeout "$SYNC_TIMEOUT" 2>"$WORK/wait.err"; then
	broken "the daemon did not sync Bench: $(tail -n 1 "$WORK/wait.err")"
	BIG_SYNCED=0
	syncd_alive
fi
t1=$(date +%s.%N)
SYNC_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
log "synced in $SYNC_S s"
wait "$BUSY_PID" || broken "D-Bus calls during the sync: $(tail -n 1 "$WORK/busy.out")"

if [ "$BIG_SYNCED" = 1 ]; then
	log "list: ListMessages(0, $LIST_COUNT) x $LIST_REPEAT"
	"$PL" list --account bench --folder Bench --count "$LIST_COUNT" --repeat "$LIST_REPEAT" \
		>"$WORK/list.out" 2>"$WORK/list.err" || broken "list: $(tail -n 3 "$WORK/list.err")"
	cat "$WORK/list.err" >&2
fi
}
sleep 5
syncd_alive
RSS_KIB=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$SYNCD_PID/status")
HWM_KIB=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$SYNCD_PID/status")
STORE_BYTES=$(du -cb "$WORK"/store.db* | tail -n 1 | cut -f1) # with -wal, -shm and -packs/

# --- report -------------------------------------------------------------------

# field FILE KEY: the value of KEY=VALUE on the last line of FILE ("-" if none)
field() {
	local v=
	[ -s "$1" ] && v=$(tail -n 1 "$1" | tr ' ' '\n' | sed -n "s/^$2=//p")
	echo "${v:--}"
}
verdict() { # VALUE LIMIT
	if [ "$1" = - ]; then
		echo MISS
	elif awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; then
		echo PASS
	else
		echo MISS
	fi
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

echo
echo "cpm-syncd push benchmark: N=$N events each, security $SECURITY, sync_bodies $SYNC_BODIES," \
	"$(nproc) CPUs, $SERVER_NAME, bus $BUS_NAME; load at the end: $(cut -d" " -f1-3 /proc/loadavg)"
echo
printf '%-46s | %5s | %9s | %9s | %9s | %9s | %9s\n' measure n "median ms" "p90 ms" "p95 ms" \
	"p99 ms" "max ms"
echo "-----------------------------------------------+-------+-----------+-----------+-----------+-----------+----------"
# row FILE PREFIX TEXT: the line "PREFIX: ..." of FILE as a table row
row() {
	local line
	line=$(grep "^$2: " "$1" | tail -n 1) || line=
	printf '%s\n' "$line" >"$WORK/row"
	printf '%-46s | %5s | %9s | %9s | %9s | %9s | %9s\n' "$3" "$(field "$WORK/row" n)" \
		"$(field "$WORK/row" median)" "$(field "$WORK/row" p90)" "$(field "$WORK/row" p95)" \
		"$(field "$WORK/row" p99)" "$(field "$WORK/row" max)"
}
row "$WORK/added.out" bare-idle "bare IDLE client: APPEND -> its EXISTS"
row "$WORK/added.out" added "daemon: APPEND -> MessagesAdded"
row "$WORK/added.out" share "daemon's share above the bare client"
row "$WORK/flags.out" flags "SetFlags -> FETCH at another client (NOOP)"
row "$WORK/flags-idle.out" "flags (idle)" "(info) the same, other client in IDLE"
row "$WORK/sync.out" sync "Sync() with nothing new (push ${SYNC_PUSH:-?})"
grep '^list-status: ' "$WORK/floor.out" >"$WORK/row" || true
FLOOR=$(field "$WORK/row" median)
grep '^idle-list-status: ' "$WORK/floor.out" >"$WORK/row" || true
IDLE_FLOOR=$(field "$WORK/row" median)
echo "(floor: a bare client's LIST-STATUS round trip, median $FLOOR ms; from IDLE, DONE and" \
	"LIST-STATUS sent together, median $IDLE_FLOOR ms; $N runs each)"
if [ -s "$WORK/segments.out" ]; then
	echo "Sync() inside the daemon (BENCH_SEGMENTS=1, its socket calls traced):"
	sed 's/^/  /' "$WORK/segments.out"
fi
echo
echo "(the bare client and the daemon wait on the same server for the same APPENDs: the share is" \
	"the daemon's own time, from the server's EXISTS to the D-Bus signal, per event)"
[ "$SERVER" = dovecot ] &&
	echo "(flags-idle shows Dovecot's own delay of IDLE/NOTIFY updates, 500 ms after a change;" \
		"the daemon learns of the APPENDs in \"added\" through NOTIFY, the bare client through" \
		"IDLE: their delays in Dovecot differ, so there the share is not the daemon's alone.)"
echo
if [ "$BIG" -eq 0 ]; then
	echo "ListMessages and the big sync: not measured (BIG=0; Dovecot only)"
elif [ -s "$WORK/list.out" ]; then
	echo "ListMessages on Bench ($BIG messages): $(sed 's/^list: //' "$WORK/list.out")"
else
	echo "ListMessages on Bench: not measured"
fi
[ "$BIG" -eq 0 ] ||
	echo "sync of $BIG new messages in Bench ($GEN_BYTES bytes): $SYNC_S s (Account1.Sync to all listed)"
[ "$BIG" -eq 0 ] || [ ! -s "$WORK/busy.out" ] ||
	echo "D-Bus calls during that sync (its first $BUSY_S s, a property read every 20 ms): $(tail -n 1 "$WORK/busy.out")"
echo "daemon idle with $((BIG + N)) messages stored (store $((STORE_BYTES / 1024)) KiB):" \
	"VmRSS $RSS_KIB KiB ($(mib "$RSS_KIB") MiB), VmHWM (peak) $HWM_KIB KiB ($(mib "$HWM_KIB") MiB)"
echo
echo "targets:"
for m in added flags; do
	med=$(field "$WORK/$m.out" median)
	p99=$(field "$WORK/$m.out" p99)
	printf '  %-4s %s: median %s ms (target <= 100 ms)\n' "$(verdict "$med" 100)" "$m" "$med"
	printf '  %-4s %s: p99 %s ms (target <= 500 ms)\n' "$(verdict "$p99" 500)" "$m" "$p99"
done
{ grep '^share: ' "$WORK/added.out" || true; } | tail -n 1 >"$WORK/row"
share=$(field "$WORK/row" median)
share95=$(field "$WORK/row" p95)
printf '  %-4s share above the bare IDLE client: median %s ms (target <= 20 ms), p95 %s ms\n' \
	"$(verdict "$share" 20)" "$share" "$share95"
med=$(field "$WORK/sync.out" median)
if [ "$SYNC_PUSH" = notify ]; then
	printf '  %-4s Sync() with nothing new, push notify: median %s ms (target <= 1 ms)\n' \
		"$(verdict "$med" 1)" "$med"
elif [ "$FLOOR" != - ]; then
	limit=$(awk -v f="$FLOOR" 'BEGIN { printf "%.2f", 2 * f }')
	printf '  %-4s Sync() with nothing new, push %s: median %s ms (target <= 2 x LIST-STATUS %s ms = %s ms;' \
		"$(verdict "$med" "$limit")" "${SYNC_PUSH:-?}" "$med" "$FLOOR" "$limit"
	printf ' DONE + LIST-STATUS from IDLE: %s ms)\n' "$IDLE_FLOOR"
else
	printf '  MISS Sync() with nothing new, push %s: median %s ms (no LIST-STATUS floor measured)\n' \
		"${SYNC_PUSH:-?}" "$med"
fi
[ "$N" -ge 200 ] || echo "  (N=$N: fewer than the 200 events the targets are stated over)"

if [ "$BROKEN" -ne 0 ]; then
	echo "bench-push: something broke (see above)" >&2
	exit 1
fi
exit 0
