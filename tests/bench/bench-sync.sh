#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Benchmark: cpm-syncd --once against mbsync (isync), side by side, on one
# big folder of a throwaway Dovecot.  Run on demand (not by make check):
#
#   make all tests && tests/bench/bench-sync.sh [N]        (N default 100000)
#   B=build/other tests/bench/bench-sync.sh 5000           (another build dir)
#
# It generates folder Bench with N messages (1-20 KiB each, ~N * 10.5 KiB)
# for alice and N/10 for bob, puts one imap-proxy in front of Dovecot for
# each tool (the proxies count the bytes each way), and measures with
# run-measure (wall time, CPU, peak RSS) each of these steps for both tools:
#   1 initial    first sync of the whole account (plus cpm-syncd at N/10)
#   2 nochange   a resync with nothing changed on the server, BENCH_ROUNDS
#                times (the first run is the one timed against the floor)
#   3 flags1%    after 1% of the messages had a flag change on the server,
#                BENCH_ROUNDS times (default 10; other messages each round)
#   4 new-only   after 100 new messages arrived, BENCH_NEW_ROUNDS times
#                (default 3): what the new messages of step 5 cost by themselves
#   5 expunge1%  after 1% were expunged and 100 new ones arrived, BENCH_ROUNDS
#                times
# and once the reference: imap-stream, a client that fetches every body and
# throws it away (after a warm-up run).  For steps 2-4 it also measures the
# floor: the shortest session any client needs to learn what changed
# (imap-stream --qresync: connect, LOGIN, ENABLE QRESYNC, SELECT Bench
# (QRESYNC (uidvalidity modseq-before-the-step)), LOGOUT; the median of 5).
# The first session after a change pays Dovecot's bringing its indexes up
# to date, every later one does not; cpm-syncd runs first in every round.
# So for steps 3 and 5 a round of its own (floor-round-STEP, the same kind
# and size of change, not counted in the step's sequences) is measured by
# the floor client first, and the time targets compare with that figure;
# the warm median is printed beside it.
# Bytes written to disk (written_bytes, from the kernel's I/O accounting:
# WAL, checkpoints and journals included) are measured for every run.
# cpm-syncd checkpoints its WAL when it passes a size threshold, not at
# every exit, so a run can leave writes for a later one: each step (the
# initial sync, the no-change run, each sequence of rounds) ends with a
# measured checkpoint (sqlite3 PRAGMA wal_checkpoint(TRUNCATE); none, and 0
# bytes, when the -wal file is empty) whose bytes count with the step, and the per-change figures are the whole sequence's
# bytes (its runs and its checkpoint) over its changes; for an expunge, less
# what the same number of new-only rounds (step 4) wrote.  The script reads
# the store with sqlite3 -readonly, which never checkpoints (a read-write
# connection would at close, and its writes would escape the measurement).
# Beside it, every run also measures the sectors the block device holding
# the work directory wrote (device bytes: run-measure --device-of, a sync()
# before the run and after it, so the run's writeback counts; write_bytes
# counts a whole page cache folio per small write into a cached file, the
# device what reached the disk).  The device figure is machine-wide: Dovecot
# and the proxies write to the same disk during a run, and any other process
# on the machine does too, so it is only meaningful on an otherwise quiet
# machine; the targets stay on write_bytes.  A third figure needs neither the
# page cache nor a quiet machine: the bytes each process handed to write
# calls on files (run-measure's wchar less what it sent to the server: SQLite's
# pages, WAL frames and journal writes as issued).  BENCH_TMP on tmpfs, overlayfs
# or btrfs has no block statistics: the script stops and says so.
# Then it prints a table and the
# benchmark targets with PASS/MISS (informational: the exit status is 0
# unless a command failed or a tool's copy does not match the server).
#
# Both tools sync one way in effect (mbsync: Sync Pull, Expunge Near; cpm-syncd
# has no local changes to send).  Before each measured run the script waits
# 1.1 s: mbsync sleeps a second when a Maildir was modified within the current
# second, which would otherwise count against it.
#
# Environment: B (build dir, default build), BENCH_ROUNDS, BENCH_NEW_ROUNDS
# (see above), BENCH_VERBOSE=1 runs cpm-syncd
# with -v (its log of the IMAP exchange costs time), KEEP=1 keeps the work directory
# (logs, stores), BENCH_TMP (parent of the work directory, default /tmp; it
# needs about 3.5 x N x 10.5 KiB of free space).
#
# BENCH_TRACE=1 (needs strace and python3): where the bytes go.  The
# cpm-syncd run of the first round of steps 3, 4 and 5 runs under
# strace -f -y -e trace=pwrite64,write,pwritev, and the end of the output
# gives, per changed message, the bytes each file was handed (store.db-wal,
# store.db when cpm-syncd checkpointed, the pack files, store.db-bodies and its journal)
# and the bytes per table or index: a WAL frame's page number (its 24-byte
# header) or a write's offset, mapped to the structure that holds the page
# after the run (SQLite's dbstat; a page freed by the run is "free").  The
# traced runs' own figures count strace's log as well: take the figures
# from a run without it.
set -euo pipefail

BENCH=bench-sync
. "$(dirname "$0")/lib-bench.sh"
SYNCD=${SYNCD:-$B/cpm-syncd} # another cpm-syncd (an older build) to compare
TOOLS=$B/tests/tools
CTL=$TOP/tests/dovecot/dovecot-ctl.sh

N=${1:-100000}
if ! [[ $N =~ ^[0-9]+$ ]] || [ "$N" -lt 100 ]; then
	echo "usage: $0 [N >= 100]" >&2
	exit 2
fi
SMALL=$((N / 10))
K=$((N / 100)) # messages changed in steps 3 and 5
NEW=100
ROUNDS=${BENCH_ROUNDS:-10}
NEW_ROUNDS=${BENCH_NEW_ROUNDS:-3}
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || ! [[ $NEW_ROUNDS =~ ^[1-9][0-9]*$ ]]; then
	echo "bench-sync: BENCH_ROUNDS and BENCH_NEW_ROUNDS must be positive integers" >&2
	exit 2
fi
CPM_V=()
[ "${BENCH_VERBOSE:-}" = 1 ] && CPM_V=(-v)
TRACE=${BENCH_TRACE:-}
if [ "$TRACE" = 1 ]; then
	command -v strace >/dev/null || die "BENCH_TRACE=1 needs strace (apt-get install strace)"
	command -v python3 >/dev/null || die "BENCH_TRACE=1 needs python3"
fi

for f in "$SYNCD" "$TOOLS/imap-proxy" "$TOOLS/bench-gen" "$TOOLS/run-measure" "$TOOLS/imap-stream"; do
	[ -x "$f" ] || die "$f missing: run make B=${B#"$TOP"/} all tests"
done
command -v mbsync >/dev/null || die "mbsync missing (apt-get install isync, or tests/deps.sh)"
command -v sqlite3 >/dev/null || die "sqlite3 missing (apt-get install sqlite3)"

bench_work cpmsync-bench
DC=$WORK/dovecot
bench_dovecot

# --- test data --------------------------------------------------------------

# gen USER COUNT [bench-gen options]: messages into USER's Bench folder;
# their total size (LF, CRLF) in WORK/gen.out.
gen() {
	local user=$1 count=$2 dir
	shift 2
	dir=$DC/home/$user/Maildir/.Bench
	dove mailbox status -u "$user" messages Bench >/dev/null 2>&1 ||
		dove mailbox create -u "$user" Bench
	"$TOOLS/bench-gen" "$@" "$dir" "$count" >"$WORK/gen.out" || die "bench-gen failed"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$MAIL_UID:$MAIL_GID" "$DC/home/$user/Maildir"
	fi
	dove force-resync -u "$user" Bench
}

log "generating $N messages for $USER1 and $SMALL for $USER2"
t0=$(date +%s.%N)
gen "$USER1" "$N"
read -r GEN_BYTES GEN_WIRE_BYTES <"$WORK/gen.out"
gen "$USER2" "$SMALL" --seed 3
t1=$(date +%s.%N)
log "generated $GEN_BYTES bytes ($GEN_WIRE_BYTES with CRLF) in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
server_count() { dove -f flow mailbox status -u "$1" messages Bench | sed 's/.*messages=//'; }
[ "$(server_count "$USER1")" = "$N" ] || die "Dovecot sees $(server_count "$USER1") messages, not $N"
[ "$(server_count "$USER2")" = "$SMALL" ] || die "Dovecot sees $(server_count "$USER2") messages, not $SMALL"

printf '%s\n' "$PASS1" >"$WORK/alice.pw"
printf '%s\n' "$PASS2" >"$WORK/bob.pw"
chmod 0600 "$WORK/alice.pw" "$WORK/bob.pw"

# --- proxies ----------------------------------------------------------------

# start_proxy NAME: an imap-proxy in front of IMAP_PORT; its port in WORK/NAME.port.
start_proxy() {
	local name=$1 i
	"$TOOLS/imap-proxy" --listen-port-file "$WORK/$name.port" --to "127.0.0.1:$IMAP_PORT" \
		--stats "$WORK/$name.stats" >"$WORK/$name.proxy.log" 2>&1 &
	PROXY_PIDS+=($!)
	for ((i = 0; i < 100; i++)); do
		[ -s "$WORK/$name.port" ] && break
		sleep 0.05
	done
	[ -s "$WORK/$name.port" ] || die "imap-proxy $name did not start: $(cat "$WORK/$name.proxy.log")"
}
start_proxy cpm
start_proxy mbsync
PORT_cpm=$(cat "$WORK/cpm.port")
PORT_mbsync=$(cat "$WORK/mbsync.port")

# stats NAME: "c2s s2c" (0 0 before the first connection closed)
stats() {
	if [ -r "$WORK/$1.stats" ]; then
		# As strings: mawk prints numbers beyond 2^31 as %.6g.
		awk '$1 == "client_to_server" { c = $2 } $1 == "server_to_client" { s = $2 }
			END { print (c == "" ? 0 : c), (s == "" ? 0 : s) }' "$WORK/$1.stats"
	else
		echo "0 0"
	fi
}

# Waits until the proxy NAME's stats differ from BEFORE and stay the same
# for 0.3 s (the proxy rewrites them when a connection has closed).
wait_stats() {
	local name=$1 before=$2 cur prev i
	for ((i = 0; i < 100; i++)); do
		cur=$(stats "$name")
		[ "$cur" != "$before" ] && break
		sleep 0.05
	done
	prev=
	while [ "$cur" != "$prev" ]; do
		prev=$cur
		sleep 0.3
		cur=$(stats "$name")
	done
	echo "$cur"
}

# --- configurations ---------------------------------------------------------

cpm_conf() { # file user password_file store
	cat >"$1" <<-EOF
		[general]
		database = $4
		outbox = $WORK/outbox

		[account bench]
		host = 127.0.0.1
		port = $PORT_cpm
		security = none
		user = $2
		password_file = $3
		folders = *
		sync_bodies = all
	EOF
}
cpm_conf "$WORK/cpm.conf" "$USER1" "$WORK/alice.pw" "$WORK/cpm-store.db"
cpm_conf "$WORK/cpm-small.conf" "$USER2" "$WORK/bob.pw" "$WORK/cpm-small-store.db"

mkdir -p "$WORK/mbsync"
cat >"$WORK/mbsyncrc" <<EOF
IMAPAccount bench
Host 127.0.0.1
Port $PORT_mbsync
User $USER1
PassCmd "cat $WORK/alice.pw"
SSLType None
AuthMechs LOGIN

IMAPStore bench-far
Account bench

MaildirStore bench-near
Path $WORK/mbsync/
Inbox $WORK/mbsync/INBOX
SubFolders Verbatim

Channel bench
Far :bench-far:
Near :bench-near:
Patterns *
Create Near
Sync Pull
Expunge Near
SyncState *
EOF

# --- measuring --------------------------------------------------------------

RESULTS=$WORK/results # step tool wall cpu rss_kib c2s s2c written_bytes device_written_bytes
: >"$RESULTS"
# measure OUTFILE COMMAND...: run-measure with the device of WORK.
measure() { "$TOOLS/run-measure" --device-of "$WORK" "$@"; }
measure "$WORK/probe.measure" -- true 2>"$WORK/probe.err" ||
	die "cannot measure the disk writes under $WORK: $(cat "$WORK/probe.err")"

# run STEP TOOL PROXY COMMAND...: one measured run through proxy PROXY.
# The tool's output reaches its log through a pipe (cat writes the file):
# the log is the bench's, not the tool's, and a log file created by the
# measured process cost it 8-12 KiB of written bytes (the new file's inode,
# its directory entry and its page), a sixth of the no-change target.  In
# use cpm-syncd's stderr is the journal or a terminal.  The same for both
# tools.
run() {
	local step=$1 tool=$2 proxy=$3 before after rc=0 out b_c2s b_s2c a_c2s a_s2c
	shift 3
	out=$WORK/${step//\//_}.$tool
	before=$(stats "$proxy")
	log "$step: $tool"
	measure "$out.measure" -- "$@" 2>&1 | cat >"$out.log" || rc=$? # pipefail: the tool's status
	after=$(wait_stats "$proxy" "$before")
	if [ "$rc" -ne 0 ]; then
		broken "$step: $tool exited with status $rc; the end of its output:"
		tail -n 20 "$out.log" | sed 's/^/    /' >&2
	fi
	# Byte counts in shell arithmetic (64 bits), not awk.
	read -r b_c2s b_s2c <<<"$before"
	read -r a_c2s a_s2c <<<"$after"
	awk -v step="$step" -v tool="$tool" -v c2s=$((a_c2s - b_c2s)) -v s2c=$((a_s2c - b_s2c)) '
		{ m[$1] = $2 }
		END {
			printf "%s %s %s %s %s %s %s %s %s %.0f\n", step, tool, m["wall"], m["cpu"],
				m["maxrss_kib"], c2s, s2c, m["written_bytes"], m["device_written_bytes"],
				m["wchar"] - c2s
		}' "$out.measure" >>"$RESULTS"
}

# The store's view of Bench before a step: "uidvalidity highestmodseq".
store_modseq() {
	sqlite3 -readonly "$WORK/cpm-store.db" "SELECT uidvalidity || ' ' || highestmodseq FROM folder WHERE name = 'Bench'"
}

# floor STEP UIDVALIDITY MODSEQ: the median of 5 QRESYNC sessions, as
# "STEP seconds select_seconds fetches" into WORK/floor.
floor() {
	local step=$1 i
	for i in 1 2 3 4 5; do
		"$TOOLS/imap-stream" 127.0.0.1 "$IMAP_PORT" "$USER1" "$WORK/alice.pw" Bench \
			--qresync "$2" "$3" >"$WORK/floor.out" || { broken "$step: imap-stream --qresync failed"; return; }
		echo "$(kv "$WORK/floor.out" seconds) $(kv "$WORK/floor.out" select_seconds) $(kv "$WORK/floor.out" messages)"
	done | sort -n | sed -n 3p | { read -r a b c; echo "$step $a $b $c"; } >>"$WORK/floor"
}

# floor_cold STEP UIDVALIDITY MODSEQ: the floor as the first session after
# a change, the way every tool meets it (Dovecot applies another process's
# change to its indexes when a session next opens the folder: at N=20,000,
# 1% flags, a first QRESYNC SELECT took 80-200 ms where a second took 5-10
# ms); one run, into $WORK/floor-cold, then floor() for the warm median.
# Taken in a round of its own before the measured rounds (floor_round),
# so that no tool's run is the one that finds the indexes up to date.
floor_cold() {
	"$TOOLS/imap-stream" 127.0.0.1 "$IMAP_PORT" "$USER1" "$WORK/alice.pw" Bench \
		--qresync "$2" "$3" >"$WORK/floor.out" || { broken "$1: imap-stream --qresync (first after the change) failed"; return; }
	echo "$1 $(kv "$WORK/floor.out" seconds) $(kv "$WORK/floor.out" select_seconds) $(kv "$WORK/floor.out" messages)" >>"$WORK/floor-cold"
	floor "$@"
}

# floor_round STEP CHANGE: CHANGE (a function making a round's change on the
# server, called with round number 0), then floor_cold for STEP, then both
# tools catch up (step floor-round-STEP: not in STEP's sequences, its own
# checkpoint after it so its writes do not land in theirs).
floor_round() {
	local step=$1 uv ms
	log "$step: floor round (the floor client first after the change)"
	"$2" 0
	read -r uv ms < <(store_modseq)
	floor_cold "$step" "$uv" "$ms"
	run_both "floor-round-$step"
	verify "floor-round-$step"
	checkpoint "floor-round-$step"
}

# traced STEP: whether cpm-syncd's run of STEP is traced (BENCH_TRACE=1).
traced() {
	[ "$TRACE" = 1 ] || return 1
	case $1 in 2-nochange | 3-flags1% | 4-new-only | 5-expunge1%+new) return 0 ;; esac
	return 1
}

# trace_maps STEP: after a traced run, which structure holds each page of
# the store and of the bodies database (a store from before the packs, schema
# 15, has one), and their page sizes.
trace_maps() {
	local db
	for db in cpm-store.db cpm-store.db-bodies; do
		[ -e "$WORK/$db" ] || continue
		sqlite3 -readonly "$WORK/$db" "SELECT pageno, name FROM dbstat" >"$WORK/$1.$db.map"
		sqlite3 -readonly "$WORK/$db" "PRAGMA page_size" >"$WORK/$1.$db.pagesize"
	done
}

# trace_report STEP CHANGES: the bytes of STEP's traced run by file and by
# structure, and per change.
trace_report() {
	python3 - "$WORK" "$1" "$2" <<-'EOF'
		import collections, re, sys
		work, step, changes = sys.argv[1], sys.argv[2], int(sys.argv[3])
		def unescape(d):
		    out, i = bytearray(), 0
		    while i < len(d):
		        if d[i] == "\\" and d[i + 1] == "x":
		            out.append(int(d[i + 2:i + 4], 16)); i += 4
		        elif d[i] == "\\":
		            out.append({"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "0": 0}.get(d[i + 1], ord(d[i + 1]))); i += 2
		        else:
		            out.append(ord(d[i])); i += 1
		    return bytes(out)
		def pages(db):
		    m = {}
		    try:
		        open(f"{work}/{step}.{db}.pagesize").close()
		    except FileNotFoundError:
		        return m, 1
		    for line in open(f"{work}/{step}.{db}.map"):
		        p, name = line.rstrip("\n").split("|", 1)
		        m[int(p)] = name
		    return m, int(open(f"{work}/{step}.{db}.pagesize").read())
		(main, ps), (bodies, bps) = pages("cpm-store.db"), pages("cpm-store.db-bodies")
		call = re.compile(r'^\d+\s+\w+\(\d+<([^>]*)>, "((?:[^"\\]|\\.)*)"(?:\.\.\.)?, \d+(?:, (\d+))?\) = (\d+)')
		files, where, frame = collections.Counter(), collections.Counter(), None
		for line in open(f"{work}/{step}.strace"):
		    m = call.match(line)
		    if not m:
		        continue
		    # The pack files (<store>-packs/<id>) count as one.
		    f, n = m.group(1).split("/")[-1], int(m.group(4))
		    if "/cpm-store.db-packs/" in m.group(1):
		        f = "cpm-store.db-packs"
		    elif not f.startswith("cpm-store.db"):
		        continue
		    off = int(m.group(3)) if m.group(3) else None
		    files[f] += n
		    if f == "cpm-store.db-wal":
		        if n == 24:
		            frame = int.from_bytes(unescape(m.group(2))[:4], "big")
		            where["store " + main.get(frame, "free")] += n
		        elif n == ps and frame is not None:
		            where["store " + main.get(frame, "free")] += n
		            frame = None
		        else:
		            where["store WAL header"] += n
		    elif f == "cpm-store.db" and off is not None:
		        where["store " + main.get(off // ps + 1, "free")] += n
		    elif f == "cpm-store.db-bodies" and off is not None:
		        where["bodies " + bodies.get(off // bps + 1, "free")] += n
		    else:
		        where[f] += n
		print(f"  {step}: {sum(files.values())} bytes handed to the store's files,"
		      f" {sum(files.values()) / changes:.0f} per change ({changes} changes)")
		for title, c in (("file", files), ("structure", where)):
		    for k, v in c.most_common():
		        if v >= changes:
		            print(f"    {title:9} {k:36} {v:10} {v / changes:8.0f}/change")
	EOF
}

# Runs cpm-syncd then mbsync for STEP.
run_both() {
	sleep 1.1
	if traced "$1"; then
		run "$1" cpm-syncd cpm strace -f -y -x -s 4 -e trace=pwrite64,write,pwritev \
			-o "$WORK/$1.strace" "$SYNCD" -c "$WORK/cpm.conf" --once --no-dbus "${CPM_V[@]}"
		trace_maps "$1"
	else
		run "$1" cpm-syncd cpm "$SYNCD" -c "$WORK/cpm.conf" --once --no-dbus "${CPM_V[@]}"
	fi
	sleep 1.1
	run "$1" mbsync mbsync mbsync -c "$WORK/mbsyncrc" -a
}

# The copies must match the server: message count and \Seen count.
verify() {
	local step=$1 srv srv_seen cpm cpm_seen mb mb_seen q
	srv=$(server_count "$USER1")
	srv_seen=$(dove search -u "$USER1" mailbox Bench seen | wc -l)
	q="FROM message m JOIN message_state ms ON ms.id = m.id
		JOIN folder f ON f.id = m.folder_id WHERE f.name = 'Bench' AND m.removed = 0"
	cpm=$(sqlite3 -readonly "$WORK/cpm-store.db" "SELECT count(*) $q")
	cpm_seen=$(sqlite3 -readonly "$WORK/cpm-store.db" "SELECT count(*) $q AND ' ' || ms.flags || ' ' LIKE '% \\Seen %'")
	mb=$(find "$WORK/mbsync/Bench/cur" "$WORK/mbsync/Bench/new" -type f ! -name '*:2,*T*' | wc -l)
	mb_seen=$(find "$WORK/mbsync/Bench/cur" "$WORK/mbsync/Bench/new" -type f -name '*:2,*S*' ! -name '*:2,*T*' | wc -l)
	echo "$step server $srv $srv_seen cpm-syncd $cpm $cpm_seen mbsync $mb $mb_seen" >>"$WORK/verify"
	if [ "$cpm" != "$srv" ] || [ "$cpm_seen" != "$srv_seen" ]; then
		broken "$step: cpm-syncd has $cpm messages ($cpm_seen seen), the server $srv ($srv_seen seen)"
	fi
	if [ "$mb" != "$srv" ] || [ "$mb_seen" != "$srv_seen" ]; then
		broken "$step: mbsync has $mb messages ($mb_seen seen), the server $srv ($srv_seen seen)"
	fi
}

# checkpoint STEP: a measured PRAGMA wal_checkpoint(TRUNCATE) on cpm-syncd's
# store (what its runs left in the WAL, copied into the database), recorded
# as tool "checkpoint" of STEP.  Exclusive locking (nothing else has the
# store open between runs): its WAL index is in memory, so sqlite3 writes
# no -shm file of its own (32 KiB that cpm-syncd would not have written).
# And it keeps the -wal file, as cpm-syncd does (SQLITE_FCNTL_PERSIST_WAL):
# sqlite3 on its own unlinks it at close, which cost the checkpoint 8-12 KiB
# of its own (the directory and inode) and the next run as much again to
# create it anew, charged to cpm-syncd.
checkpoint() {
	local step=$1 out=$WORK/${1//\//_}.checkpoint res
	# An empty -wal file (cpm-syncd checkpointed it at close and truncated
	# it): store.db holds everything, nothing is left to charge to the step.
	# sqlite3's TRUNCATE of the empty file would still cost 4 KiB of its own
	# (the inode's times), recorded here as 0.
	if [ ! -s "$WORK/cpm-store.db-wal" ]; then
		log "$step: checkpoint: the WAL is empty, nothing to do"
		echo "$step checkpoint 0 0 0 0 0 0 0 0" >>"$RESULTS"
		return
	fi
	log "$step: checkpoint"
	# Its output through a pipe, as the tools' (run()).
	if ! measure "$out.measure" -- sqlite3 -cmd ".filectrl persist_wal 1" "$WORK/cpm-store.db" \
		"PRAGMA locking_mode = EXCLUSIVE; PRAGMA wal_checkpoint(TRUNCATE)" 2>&1 | cat >"$out.log"; then
		broken "$step: the checkpoint failed: $(cat "$out.log")"
		return
	fi
	res=$(tail -n 1 "$out.log")
	# busy|frames in the WAL|frames checkpointed
	[ "${res%%|*}" = 0 ] || broken "$step: the checkpoint was not complete: $res"
	awk -v step="$step" '{ m[$1] = $2 }
		END { printf "%s checkpoint %s %s %s 0 0 %s %s %s\n", step, m["wall"], m["cpu"], m["maxrss_kib"],
			m["written_bytes"], m["device_written_bytes"], m["wchar"] }' "$out.measure" >>"$RESULTS"
}

# Deterministic random picks: COUNT lines of stdin, a different choice for
# each SEED.
pick() { shuf -n "$1" --random-source=<(yes "cpmsync-bench-$2"); }
join_commas() { paste -sd, -; }

# --- reference: the server streams the bodies to a discarding client --------

log "reference: imap-stream (warm-up, then measured; direct, then through a proxy)"
"$TOOLS/imap-stream" 127.0.0.1 "$IMAP_PORT" "$USER1" "$WORK/alice.pw" Bench >"$WORK/stream-warmup.out" ||
	broken "imap-stream warm-up failed"
measure "$WORK/stream.measure" -- \
	"$TOOLS/imap-stream" 127.0.0.1 "$IMAP_PORT" "$USER1" "$WORK/alice.pw" Bench >"$WORK/stream.out" ||
	broken "imap-stream failed"
before=$(stats cpm)
"$TOOLS/imap-stream" 127.0.0.1 "$PORT_cpm" "$USER1" "$WORK/alice.pw" Bench >"$WORK/stream-proxy.out" ||
	broken "imap-stream through the proxy failed"
wait_stats cpm "$before" >/dev/null
kv() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
STREAM_S=$(kv "$WORK/stream.out" seconds)
STREAM_FETCH_S=$(kv "$WORK/stream.out" fetch_seconds)
STREAM_BYTES=$(kv "$WORK/stream.out" bytes_in)
STREAM_PROXY_S=$(kv "$WORK/stream-proxy.out" seconds)
awk -v step=0-reference -v tool=imap-stream -v o="$(kv "$WORK/stream.out" bytes_out)" \
	-v i="$STREAM_BYTES" '{ m[$1] = $2 } END {
		printf "%s %s %s %s %s %s %s %s %s %.0f\n", step, tool, m["wall"], m["cpu"], m["maxrss_kib"], o, i,
			m["written_bytes"], m["device_written_bytes"], m["wchar"] - o }' \
	"$WORK/stream.measure" >>"$RESULTS"
[ "$(kv "$WORK/stream.out" messages)" = "$N" ] || broken "imap-stream saw $(kv "$WORK/stream.out" messages) messages, not $N"

# --- the steps ----------------------------------------------------------------

sleep 1.1
run 1-initial-N/10 cpm-syncd cpm "$SYNCD" -c "$WORK/cpm-small.conf" --once --no-dbus "${CPM_V[@]}"
run_both 1-initial
verify 1-initial
checkpoint 1-initial

read -r UV MS < <(store_modseq)
run_both 2-nochange
verify 2-nochange
floor 2-nochange "$UV" "$MS"
# A no-change run writes one page (the account's last sync time), which the
# WAL keeps until it is checkpointed with others (libsync/store/store.c):
# the bytes of a no-change run are a sequence's, its checkpoint included,
# per run, as for the steps below.
for ((r = 2; r <= ROUNDS; r++)); do
	run_both "2-nochange#$r"
	verify "2-nochange#$r"
done
checkpoint 2-nochange

# round_name BASE R: BASE for the first round (the one in the main table
# and measured against the floor), BASE#R for the others.
round_name() { if [ "$2" -eq 1 ]; then echo "$1"; else echo "$1#$2"; fi; }

# change_flags R: round R's flag changes on the server (1% of the messages).
change_flags() {
	local r=$1 unset_seen set_seen
	log "round $r: changing flags of $K messages"
	dove search -u "$USER1" mailbox Bench seen | awk '{ print $2 }' >"$WORK/seen"
	dove search -u "$USER1" mailbox Bench unseen | awk '{ print $2 }' >"$WORK/unseen"
	unset_seen=$(pick $((K / 2)) "s$r" <"$WORK/seen" | join_commas)
	set_seen=$(pick $((K - K / 2)) "u$r" <"$WORK/unseen" | join_commas)
	if [ -n "$unset_seen" ]; then
		dove flags remove -u "$USER1" '\Seen' mailbox Bench uid "$unset_seen"
	fi
	if [ -n "$set_seen" ]; then
		dove flags add -u "$USER1" '\Seen \Flagged' mailbox Bench uid "$set_seen"
	fi
}

floor_round 3-flags1% change_flags
for ((r = 1; r <= ROUNDS; r++)); do
	step=$(round_name 3-flags1% "$r")
	change_flags "$r"
	run_both "$step"
	verify "$step"
done
checkpoint 3-flags1%

NEXT=$((N + 1)) # bench-gen's number for the next new message
for ((r = 1; r <= NEW_ROUNDS; r++)); do
	step=$(round_name 4-new-only "$r")
	log "$step: adding $NEW"
	gen "$USER1" "$NEW" --seed $((100 + r)) --first "$NEXT"
	NEXT=$((NEXT + NEW))
	run_both "$step"
	verify "$step"
done
checkpoint 4-new-only

# change_expunge R: round R's expunges (1%) and new messages on the server.
change_expunge() {
	local r=$1 gone
	log "round $r: expunging $K messages, adding $NEW"
	gone=$(dove search -u "$USER1" mailbox Bench all | awk '{ print $2 }' | pick "$K" "x$r" | join_commas)
	if [ -n "$gone" ]; then
		dove expunge -u "$USER1" mailbox Bench uid "$gone"
	fi
	gen "$USER1" "$NEW" --seed $((200 + r)) --first "$NEXT"
	NEXT=$((NEXT + NEW))
	if [ "$r" -eq 1 ]; then
		read -r _ NEW_BYTES <"$WORK/gen.out"
	fi
}

floor_round 5-expunge1%+new change_expunge
for ((r = 1; r <= ROUNDS; r++)); do
	step=$(round_name 5-expunge1%+new "$r")
	change_expunge "$r"
	run_both "$step"
	verify "$step"
done
checkpoint 5-expunge1%+new

# --- report -----------------------------------------------------------------

echo
echo "cpm-syncd benchmark: N=$N messages in Bench ($GEN_BYTES bytes, $GEN_WIRE_BYTES with CRLF), $(nproc) CPUs, $(mbsync --version 2>&1 | head -n 1)"
echo "reference imap-stream: $STREAM_S s in all, $STREAM_FETCH_S s for the UID FETCH, $STREAM_BYTES bytes;" \
	"through a proxy $STREAM_PROXY_S s"
echo
awk 'BEGIN {
		printf "%-16s | %-11s | %8s | %8s | %12s | %14s | %14s | %14s | %14s\n", "step", "tool", "wall s",
			"CPU s", "peak RSS MiB", "client->server", "server->client", "written bytes", "device bytes"
		printf "%s\n", "-----------------+-------------+----------+----------+--------------+----------------+----------------+----------------+---------------"
	}
	$1 !~ /#/ && $1 !~ /^floor-round-/ { printf "%-16s | %-11s | %8.3f | %8.2f | %12.1f | %14s | %14s | %14s | %14s\n", $1, $2, $3, $4, $5 / 1024, $6, $7, $8, $9 }' \
	"$RESULTS"
echo "(rounds after the first of steps 3-5: in $RESULTS with KEEP=1; their sums below;"
echo "device bytes: what the disk holding $WORK wrote from a sync before the run to one after it,"
echo "machine-wide: only meaningful on an otherwise quiet machine)"
echo
echo "floor (imap-stream --qresync, median of 5): step, whole session s, the SELECT alone s, FETCH responses:"
awk '{ printf "  %-16s %8.4f %8.4f %6s\n", $1, $2, $3, $4 }' "$WORK/floor"
echo "floor, the first session after a change of the same size (one run, before any tool's; the time targets use it):"
awk '{ printf "  %-16s %8.4f %8.4f %6s\n", $1, $2, $3, $4 }' "$WORK/floor-cold"
echo
echo "copies checked against the server (messages, \\Seen):"
awk '{ printf "  %-16s server %s/%s  cpm-syncd %s/%s  mbsync %s/%s\n", $1, $3, $4, $6, $7, $9, $10 }' "$WORK/verify"
echo

# get STEP TOOL FIELD (3 wall, 4 cpu, 5 rss, 6 c2s, 7 s2c, 8 c2s+s2c, 9 written)
get() {
	awk -v s="$1" -v t="$2" -v f="$3" '$1 == s && $2 == t {
		if (f == 8) printf "%.0f\n", $6 + $7; else if (f == 9) print $8; else print $f }' "$RESULTS"
}
# seq_sum BASE TOOL [COLUMN]: the bytes written by TOOL over every round of
# BASE (BASE, BASE#2, ...); with TOOL cpm-syncd, and the checkpoint that ends
# it.  COLUMN 8 (default) write_bytes, 9 the device's, 10 the file bytes.
seq_sum() {
	awk -v s="$1" -v t="$2" -v c="${3:-8}" '($1 == s || index($1, s "#") == 1) &&
		($2 == t || (t == "cpm-syncd" && $2 == "checkpoint")) { w += $c }
		END { printf "%.0f\n", w }' "$RESULTS"
}
# floor_of STEP FIELD [FILE] (2 session, 3 select; FILE floor (warm, the
# default) or floor-cold)
floor_of() { awk -v s="$1" -v f="$2" '$1 == s { print $f }' "$WORK/${3:-floor}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }'; }
# per A K: A / K, rounded (0 when K is 0)
per() { awk -v a="$1" -v k="$2" 'BEGIN { printf "%.0f", (k > 0 ? a / k : 0) }'; }
verdict() { # awk condition over a, b (and c)
	if awk -v a="$2" -v b="$3" -v c="${4:-0}" "BEGIN { exit !($1) }"; then echo PASS; else echo MISS; fi
}

nc_bytes=$(get 2-nochange cpm-syncd 8)
nc_cpm=$(get 2-nochange cpm-syncd 3)
nc_mb=$(get 2-nochange mbsync 3)
fl_bytes=$(get 3-flags1% cpm-syncd 8)
fl_mb_bytes=$(get 3-flags1% mbsync 8)
ex_bytes=$(get 5-expunge1%+new cpm-syncd 8)
in_cpm=$(get 1-initial cpm-syncd 3)
in_mb=$(get 1-initial mbsync 3)
rss_cpm=$(get 1-initial cpm-syncd 5)
rss_small=$(get 1-initial-N/10 cpm-syncd 5)
rss_mb=$(get 1-initial mbsync 5)
per_change=$(awk -v a="$fl_bytes" -v b="$nc_bytes" -v k="$K" 'BEGIN { printf "%.1f", (a - b) / k }')
per_change_mb=$(awk -v a="$fl_mb_bytes" -v k="$K" 'BEGIN { printf "%.1f", a / k }')
ex_per=$(awk -v a="$ex_bytes" -v b="$nc_bytes" -v nb="$NEW_BYTES" -v k="$((K + NEW))" \
	'BEGIN { printf "%.1f", (a - b - nb) / k }')

# Written bytes: a step's runs plus the checkpoint that ends it.
w_in=$(seq_sum 1-initial cpm-syncd)
w_in_mb=$(get 1-initial mbsync 9)
w_nc=$(per "$(seq_sum 2-nochange cpm-syncd)" "$ROUNDS")
w_fl=$(get 3-flags1% cpm-syncd 9)
w_ex=$(get 5-expunge1%+new cpm-syncd 9)
w_fl_mb=$(get 3-flags1% mbsync 9)
w_ex_mb=$(get 5-expunge1%+new mbsync 9)
s_fl=$(seq_sum 3-flags1% cpm-syncd)
s_fl_mb=$(seq_sum 3-flags1% mbsync)
s_new=$(seq_sum 4-new-only cpm-syncd)
s_new_mb=$(seq_sum 4-new-only mbsync)
s_ex=$(seq_sum 5-expunge1%+new cpm-syncd)
s_ex_mb=$(seq_sum 5-expunge1%+new mbsync)
c_in=$(get 1-initial checkpoint 9)
c_nc=$(get 2-nochange checkpoint 9)
c_fl=$(get 3-flags1% checkpoint 9)
c_new=$(get 4-new-only checkpoint 9)
c_ex=$(get 5-expunge1%+new checkpoint 9)
fl_cpm=$(get 3-flags1% cpm-syncd 3)
fl_mb=$(get 3-flags1% mbsync 3)
ex_cpm=$(get 5-expunge1%+new cpm-syncd 3)
ex_mb=$(get 5-expunge1%+new mbsync 3)
f_nc=$(floor_of 2-nochange 2)
f_fl=$(floor_of 3-flags1% 2 floor-cold)
f_ex=$(floor_of 5-expunge1%+new 2 floor-cold)
f_fl_warm=$(floor_of 3-flags1% 2)
f_ex_warm=$(floor_of 5-expunge1%+new 2)
# The new bodies' transfer at the reference's streaming rate.
new_xfer=$(awk -v t="$STREAM_FETCH_S" -v b="$STREAM_BYTES" -v n="$NEW_BYTES" 'BEGIN { printf "%.4f", (b > 0 ? t * n / b : 0) }')
# Per change, over every round of the sequence and its checkpoint; an
# expunge round less what a new-only round wrote (the new messages' own
# bodies, rows and summaries).
w_per_flag=$(per "$s_fl" $((ROUNDS * K)))
w_per_flag_mb=$(per "$s_fl_mb" $((ROUNDS * K)))
w_new_round=$(per "$s_new" "$NEW_ROUNDS")
w_new_round_mb=$(per "$s_new_mb" "$NEW_ROUNDS")
w_per_ex=$(awk -v a="$s_ex" -v n="$w_new_round" -v r="$ROUNDS" -v k="$K" \
	'BEGIN { printf "%.0f", (a - r * n) / (r * k) }')
w_per_ex_mb=$(awk -v a="$s_ex_mb" -v n="$w_new_round_mb" -v r="$ROUNDS" -v k="$K" \
	'BEGIN { printf "%.0f", (a - r * n) / (r * k) }')
# per_change COLUMN: the flag and expunge sequences by column COLUMN of the
# results (9 the device's sectors, 10 the bytes handed to write calls on
# files: run-measure's wchar less what went to the server), as "flags
# per-flag per-flag-mbsync expunges per-expunge per-expunge-mbsync
# new-only-round": an expunge round less what a new-only round wrote.
per_change() {
	local c=$1 fl fl_mb nr nr_mb ex ex_mb
	fl=$(seq_sum 3-flags1% cpm-syncd "$c")
	fl_mb=$(seq_sum 3-flags1% mbsync "$c")
	nr=$(per "$(seq_sum 4-new-only cpm-syncd "$c")" "$NEW_ROUNDS")
	nr_mb=$(per "$(seq_sum 4-new-only mbsync "$c")" "$NEW_ROUNDS")
	ex=$(seq_sum 5-expunge1%+new cpm-syncd "$c")
	ex_mb=$(seq_sum 5-expunge1%+new mbsync "$c")
	echo "$fl $(per "$fl" $((ROUNDS * K))) $(per "$fl_mb" $((ROUNDS * K))) $ex" \
		"$(awk -v a="$ex" -v n="$nr" -v r="$ROUNDS" -v k="$K" 'BEGIN { printf "%.0f", (a - r * n) / (r * k) }')" \
		"$(awk -v a="$ex_mb" -v n="$nr_mb" -v r="$ROUNDS" -v k="$K" 'BEGIN { printf "%.0f", (a - r * n) / (r * k) }')" \
		"$nr"
}
read -r d_fl d_per_flag d_per_flag_mb d_ex d_per_ex d_per_ex_mb d_new_round < <(per_change 9)
read -r fb_fl fb_per_flag fb_per_flag_mb fb_ex fb_per_ex fb_per_ex_mb fb_new_round < <(per_change 10)
fb_in=$(seq_sum 1-initial cpm-syncd 10)
fb_nc=$(per "$(seq_sum 2-nochange cpm-syncd 10)" "$ROUNDS")

echo "side by side (wall s; bytes written to disk):"
printf '  %-22s %10s %10s %12s %14s %14s\n' step cpm-syncd mbsync floor "cpm written" "mbsync written"
printf '  %-22s %10s %10s %12s %14s %14s\n' "initial sync" "$in_cpm" "$in_mb" "$STREAM_S" "$w_in" "$w_in_mb"
printf '  %-22s %10s %10s %12s %14s %14s\n' "no change" "$nc_cpm" "$nc_mb" "$f_nc" "$w_nc" \
	"$(per "$(seq_sum 2-nochange mbsync)" "$ROUNDS")"
printf '  %-22s %10s %10s %12s %14s %14s\n' "1% flags changed" "$fl_cpm" "$fl_mb" "$f_fl" "$w_fl" "$w_fl_mb"
printf '  %-22s %10s %10s %12s %14s %14s\n' "1% expunged + $NEW new" "$ex_cpm" "$ex_mb" "$f_ex+$new_xfer" "$w_ex" "$w_ex_mb"
echo "  (cpm written: initial with the checkpoint after it; no change per run over $ROUNDS runs and"
echo "  their checkpoint; the other two the first round alone, before any checkpoint: see the sequences)"
echo
echo "sequences (bytes written; cpm-syncd's runs + the checkpoint that ends the sequence):"
printf '  %-30s %6s %8s %12s %12s %12s %10s %14s %10s\n' sequence rounds changes "cpm runs" checkpoint \
	"cpm total" "cpm/change" "mbsync total" "mb/change"
seq_line() { # name rounds changes total checkpoint mbsync per per_mb
	printf '  %-30s %6s %8s %12s %12s %12s %10s %14s %10s\n' "$1" "$2" "$3" $(($4 - $5)) "$5" "$4" "$7" "$6" "$8"
}
seq_line "1% flags" "$ROUNDS" $((ROUNDS * K)) "$s_fl" "$c_fl" "$s_fl_mb" "$w_per_flag" "$w_per_flag_mb"
seq_line "$NEW new only (per new message)" "$NEW_ROUNDS" $((NEW_ROUNDS * NEW)) "$s_new" "$c_new" "$s_new_mb" \
	"$(per "$s_new" $((NEW_ROUNDS * NEW)))" "$(per "$s_new_mb" $((NEW_ROUNDS * NEW)))"
seq_line "1% expunged + $NEW new" "$ROUNDS" $((ROUNDS * K)) "$s_ex" "$c_ex" "$s_ex_mb" "$w_per_ex" "$w_per_ex_mb"
echo "  (per expunge: the sequence less $ROUNDS new-only rounds ($w_new_round bytes each; mbsync $w_new_round_mb)," \
	"over the $((ROUNDS * K)) expunges; mbsync expunges by unlinking a file, so its figure is"
echo "  near 0 and within the noise of its new-message rounds, negative included)"
echo "  checkpoints after the initial sync: $c_in bytes; after the $ROUNDS no-change runs: $c_nc bytes"
echo

echo "targets:"
printf '  %-4s initial sync writes %s bytes = %sx the mail (%s bytes) (target <= 1.6x); mbsync %sx\n' \
	"$(verdict 'a <= 1.6 * b' "$w_in" "$GEN_BYTES")" "$w_in" "$(ratio "$w_in" "$GEN_BYTES")" "$GEN_BYTES" \
	"$(ratio "$w_in_mb" "$GEN_BYTES")"
printf '  %-4s no-change run writes %s bytes (per run over %s and their checkpoint; target <= 65536)\n' \
	"$(verdict 'a <= 65536' "$w_nc" 0)" "$w_nc" "$ROUNDS"
printf '  %-4s no-change run: %s s vs the whole-session floor %s s = %sx (target <= 2x)\n' \
	"$(verdict 'a <= 2 * b' "$nc_cpm" "$f_nc")" "$nc_cpm" "$f_nc" "$(ratio "$nc_cpm" "$f_nc")"
printf '  %-4s 1%% flags: %s bytes written over %s rounds and their checkpoint = %s per changed message (target <= 2048); mbsync %s\n' \
	"$(verdict 'a <= 2048' "$w_per_flag" 0)" "$s_fl" "$ROUNDS" "$w_per_flag" "$w_per_flag_mb"
printf '  info 1%% flags: the disk wrote %s bytes over the same = %s per changed message; mbsync %s (device sectors, machine-wide: only meaningful on a quiet machine)\n' \
	"$d_fl" "$d_per_flag" "$d_per_flag_mb"
printf '  info 1%% flags: the files were handed %s bytes over the same = %s per changed message; mbsync %s (write calls: SQLite pages, WAL frames and journals as written, load-independent)\n' \
	"$fb_fl" "$fb_per_flag" "$fb_per_flag_mb"
printf '  %-4s 1%% flags: %s s vs the floor %s s (first session after the change) = %sx (target <= 3x); %sx the warm floor %s s\n' \
	"$(verdict 'a <= 3 * b' "$fl_cpm" "$f_fl")" "$fl_cpm" "$f_fl" "$(ratio "$fl_cpm" "$f_fl")" \
	"$(ratio "$fl_cpm" "$f_fl_warm")" "$f_fl_warm"
printf '  %-4s 1%% expunged + %s new: %s bytes written over %s rounds and their checkpoint, %s per expunged message beyond %s per new-only round (target <= 2048); mbsync %s\n' \
	"$(verdict 'a <= 2048' "$w_per_ex" 0)" "$NEW" "$s_ex" "$ROUNDS" "$w_per_ex" "$w_new_round" "$w_per_ex_mb"
printf '  info 1%% expunged + %s new: the disk wrote %s bytes over the same, %s per expunged message beyond %s per new-only round; mbsync %s (device sectors, machine-wide: only meaningful on a quiet machine)\n' \
	"$NEW" "$d_ex" "$d_per_ex" "$d_new_round" "$d_per_ex_mb"
printf '  info 1%% expunged + %s new: the files were handed %s bytes over the same, %s per expunged message beyond %s per new-only round; mbsync %s (write calls)\n' \
	"$NEW" "$fb_ex" "$fb_per_ex" "$fb_new_round" "$fb_per_ex_mb"
printf '  info initial sync: the files were handed %s bytes = %sx the mail; the no-change run %s bytes (write calls, checkpoints included)\n' \
	"$fb_in" "$(ratio "$fb_in" "$GEN_BYTES")" "$fb_nc"
printf '  %-4s 1%% expunged + %s new: %s s vs the floor %s s (first session after the change) + %s s of new bodies (target <= 3x the floor plus the transfer); the warm floor %s s\n' \
	"$(verdict 'a <= 3 * b + c' "$ex_cpm" "$f_ex" "$new_xfer")" "$NEW" "$ex_cpm" "$f_ex" "$new_xfer" "$f_ex_warm"
printf '  %-4s no-change resync on the wire: %s bytes (target < 4096)\n' \
	"$(verdict 'a < 4096' "$nc_bytes" 0)" "$nc_bytes"
printf '  %-4s no-change resync vs mbsync: %s s vs %s s = %sx faster (target >= 20x)\n' \
	"$(verdict 'a >= 20 * b' "$nc_mb" "$nc_cpm")" "$nc_cpm" "$nc_mb" "$(ratio "$nc_mb" "$nc_cpm")"
printf '  %-4s 1%% flag changes: %s bytes = %s bytes per changed message beyond the no-change run (target: in proportion, ~60 from the server; PASS at <= 120); mbsync %s per change\n' \
	"$(verdict 'a <= 120' "$per_change" 0)" "$fl_bytes" "$per_change" "$per_change_mb"
printf '  info 1%% expunged + %d new: %s bytes, %s bytes per change beyond the no-change run and the %s new body bytes (CRLF)\n' \
	"$NEW" "$ex_bytes" "$ex_per" "$NEW_BYTES"
printf '  %-4s initial sync vs imap-stream: %s s vs %s s = %sx (target <= 4x)\n' \
	"$(verdict 'a <= 4 * b' "$in_cpm" "$STREAM_S")" "$in_cpm" "$STREAM_S" "$(ratio "$in_cpm" "$STREAM_S")"
printf '  %-4s initial sync vs mbsync: %s s vs %s s = %sx faster (target ~8x; PASS at >= 8x)\n' \
	"$(verdict 'a >= 8 * b' "$in_mb" "$in_cpm")" "$in_cpm" "$in_mb" "$(ratio "$in_mb" "$in_cpm")"
printf '  %-4s initial sync peak RSS: %s KiB vs mbsync %s KiB (target <= mbsync)\n' \
	"$(verdict 'a <= b' "$rss_cpm" "$rss_mb")" "$rss_cpm" "$rss_mb"
printf '  %-4s peak RSS not growing with folder size: %s KiB at N=%s, %s KiB at N/10 (PASS at <= 1.25x)\n' \
	"$(verdict 'a <= 1.25 * b' "$rss_cpm" "$rss_small")" "$rss_cpm" "$N" "$rss_small"
for step in 1-initial-N/10 1-initial 2-nochange 3-flags1% 4-new-only 5-expunge1%+new; do
	line=$(grep ': done: ' "$WORK/${step//\//_}.cpm-syncd.log" | tail -n 1 || true)
	echo "  cpm-syncd $step: ${line#*: bench: }"
done

if [ "$TRACE" = 1 ]; then
	echo
	echo "where cpm-syncd's bytes went (BENCH_TRACE=1; the first round of each step, its own run:"
	echo "the store's WAL pages are written once more by the checkpoint that ends the sequence;"
	echo "the traced runs' figures above count strace's log too):"
	trace_report 3-flags1% "$K" || broken "the trace of 3-flags1% could not be read"
	trace_report 4-new-only "$NEW" || broken "the trace of 4-new-only could not be read"
	trace_report 5-expunge1%+new "$K" || broken "the trace of 5-expunge1%+new could not be read"
fi

if [ "$BROKEN" -ne 0 ]; then
	echo "bench-sync: something broke (see above)" >&2
	exit 1
fi
exit 0
