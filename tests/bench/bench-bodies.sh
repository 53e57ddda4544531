#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Benchmark: where bodies go (store-body.c: up to STORE_BODY_INLINE_MAX bytes
# in the store's body_inline table, larger ones in pack files, <store>-packs/,
# since schema version 25, in the bodies database <store>-bodies before), by
# what an initial sync writes, against a throwaway Dovecot.  Run on demand
# (not by make check):
#
#   make all tests && tests/bench/bench-bodies.sh [MAIL_N [CHAT_N]]
#   OLD=build/main tests/bench/bench-bodies.sh 5000 20000   (an older build beside)
#
# It generates with tests/tools/bench-gen a mail-sized corpus (MAIL_N
# messages of 1-20 KiB in one folder, default 5000) and a chat-sized one
# (bench-gen --cpm: CHAT_N CPM objects of a few hundred bytes over CHAT_N/100
# conversations, default 20000), then RUNS times (default 3) for each corpus
# and each build (B, and OLD when given, alternated): cpm-syncd --once
# (sync_bodies = all) from an empty store, then a checkpoint of what it left
# in the WAL (sqlite3, exclusive locking: no -shm of its own), each under
# run-measure.  It prints per run the bytes written (write_bytes of the
# sync and of the checkpoint) over the corpus's bytes (the issue 9 target for
# mail: <= 1.6x), the wall time, how many bodies ended up inline and outside
# the store (packs, or the bodies database of an older build), and the sizes
# of the store and of those; then the medians.
#
# Environment: B (build dir, default build), OLD (a second build dir),
# RUNS, KEEP=1 keeps the work directory, BENCH_TMP (parent of the work
# directory, default /tmp; it needs about 4 x (MAIL_N x 11 + CHAT_N) KiB).
set -euo pipefail

BENCH=bench-bodies
. "$(dirname "$0")/lib-bench.sh"
TOOLS=$B/tests/tools
CTL=$TOP/tests/dovecot/dovecot-ctl.sh
OLD=${OLD:-}
if [ -n "$OLD" ]; then
	case $OLD in /*) ;; *) OLD=$TOP/$OLD ;; esac
fi

MAIL_N=${1:-5000}
CHAT_N=${2:-20000}
RUNS=${RUNS:-3}
if ! [[ $MAIL_N =~ ^[0-9]+$ ]] || ! [[ $CHAT_N =~ ^[0-9]+$ ]] || [ "$MAIL_N" -lt 100 ] ||
	[ "$CHAT_N" -lt 1000 ] || ! [[ $RUNS =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: [RUNS=n >= 1] [OLD=build dir] $0 [MAIL_N >= 100 [CHAT_N >= 1000]]" >&2
	exit 2
fi
BUILDS=("$B")
[ -z "$OLD" ] || BUILDS=("$OLD" "$B")
for b in "${BUILDS[@]}"; do
	[ -x "$b/cpm-syncd" ] || die "$b/cpm-syncd missing: run make B=${b#"$TOP"/} all"
done
for f in "$TOOLS/bench-gen" "$TOOLS/run-measure"; do
	[ -x "$f" ] || die "$f missing: run make B=${B#"$TOP"/} all tests"
done
command -v sqlite3 >/dev/null || die "sqlite3 missing (apt-get install sqlite3)"

bench_work cpmsync-bench-bodies
DC=$WORK/dovecot
bench_dovecot

# --- the corpora --------------------------------------------------------------

log "generating $MAIL_N messages for $USER1 and $CHAT_N CPM objects for $USER2"
dove mailbox create -u "$USER1" Bench || die "cannot create Bench"
"$TOOLS/bench-gen" "$DC/home/$USER1/Maildir/.Bench" "$MAIL_N" >"$WORK/gen.mail" ||
	die "bench-gen failed"
C=$((CHAT_N / 100))
"$TOOLS/bench-gen" --cpm "$C" --list-folders "$WORK" "$CHAT_N" >"$WORK/folders" ||
	die "bench-gen --list-folders failed"
xargs -d '\n' -n 200 "$CTL" doveadm "$DC" mailbox create -u "$USER2" <"$WORK/folders" ||
	die "cannot create the folders of $USER2"
"$TOOLS/bench-gen" --cpm "$C" "$DC/home/$USER2/Maildir" "$CHAT_N" >"$WORK/gen.chat" ||
	die "bench-gen --cpm failed"
if [ "$(id -u)" -eq 0 ]; then
	chown -R "$MAIL_UID:$MAIL_GID" "$DC/home/$USER1/Maildir" "$DC/home/$USER2/Maildir"
fi
dove force-resync -u "$USER1" '*'
dove force-resync -u "$USER2" '*'
read -r MAIL_BYTES _ <"$WORK/gen.mail"
read -r CHAT_BYTES _ <"$WORK/gen.chat"

printf '%s\n' "$PASS1" >"$WORK/mail.pw"
printf '%s\n' "$PASS2" >"$WORK/chat.pw"
chmod 0600 "$WORK/mail.pw" "$WORK/chat.pw"
conf() { # SET USER
	cat >"$WORK/$1.conf" <<-EOC
		[general]
		database = $WORK/$1.db
		outbox = $WORK/outbox

		[account bench]
		host = 127.0.0.1
		port = $IMAP_PORT
		security = none
		user = $2
		password_file = $WORK/$1.pw
		folders = *
		sync_bodies = all
	EOC
}
conf mail "$USER1"
conf chat "$USER2"

# --- the runs -----------------------------------------------------------------

RESULTS=$WORK/results # build set run written ratio wall inline_n large_n store_size large_size cpu
: >"$RESULTS"
field() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
# count DB SQL: one number, 0 when the table is not there (an older build)
count() { sqlite3 -readonly "$1" "$2" 2>/dev/null || echo 0; }
run() { # BUILD SET RUN
	local build=$1 set=$2 run=$3 db=$WORK/$2.db bytes sw cw
	rm -rf "$db" "$db"-* # -wal, -shm, -bodies, -packs/
	log "$set $run/$RUNS: ${build#"$TOP"/}"
	"$TOOLS/run-measure" "$WORK/m.sync" -- "$build/cpm-syncd" -c "$WORK/$set.conf" --once --no-dbus \
		>"$WORK/sync.log" 2>&1 || die "the sync failed: $(tail -n 5 "$WORK/sync.log")"
	"$TOOLS/run-measure" "$WORK/m.ckpt" -- sqlite3 "$db" \
		"PRAGMA locking_mode = EXCLUSIVE; PRAGMA wal_checkpoint(TRUNCATE)" >"$WORK/ckpt.log" 2>&1 ||
		die "the checkpoint failed: $(cat "$WORK/ckpt.log")"
	[ "$(tail -n 1 "$WORK/ckpt.log" | cut -d'|' -f1)" = 0 ] ||
		die "the checkpoint was not complete: $(cat "$WORK/ckpt.log")"
	bytes=$MAIL_BYTES
	[ "$set" = chat ] && bytes=$CHAT_BYTES
	sw=$(field "$WORK/m.sync" written_bytes)
	cw=$(field "$WORK/m.ckpt" written_bytes)
	echo "${build#"$TOP"/} $set $run $((sw + cw)) $(awk -v a=$((sw + cw)) -v b="$bytes" 'BEGIN { printf "%.2f", a / b }')" \
		"$(field "$WORK/m.sync" wall)" \
		"$(count "$db" "SELECT count(*) FROM body_inline")" \
		"$(($(count "$db-bodies" "SELECT count(*) FROM body") + $(count "$db" "SELECT count(*) FROM body_pack")))" \
		"$(stat -c %s "$db")" "$(du -cb "$db-bodies" "$db-packs" 2>/dev/null | tail -n 1 | cut -f1)" \
		"$(field "$WORK/m.sync" cpu)" >>"$RESULTS"
}
for ((r = 1; r <= RUNS; r++)); do
	for set in mail chat; do
		for b in "${BUILDS[@]}"; do
			run "$b" "$set" "$r"
		done
	done
done

# --- report -------------------------------------------------------------------

echo
echo "cpm-syncd bodies benchmark: mail $MAIL_N messages, $MAIL_BYTES bytes; chat $CHAT_N CPM objects in $C conversations, $CHAT_BYTES bytes; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "initial sync (cpm-syncd --once, sync_bodies = all, from an empty store) + the checkpoint after it:"
awk 'BEGIN { printf "  %-24s %-4s %3s | %12s | %8s | %7s | %7s | %7s | %9s | %12s | %12s\n", "build", "set", "run",
		"written", "x corpus", "wall s", "CPU s", "inline", "large", "store bytes", "large bytes" }
	{ printf "  %-24s %-4s %3s | %12s | %8s | %7.2f | %7.2f | %7s | %9s | %12s | %12s\n", $1, $2, $3, $4, $5, $6, $11, $7, $8, $9, $10 }' \
	"$RESULTS"
echo "medians:"
# median SET BUILD COLUMN: the median of COLUMN over the runs
median() {
	awk -v b="$2" -v s="$1" -v c="$3" '$1 == b && $2 == s { print $c }' "$RESULTS" | sort -g |
		awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
for b in "${BUILDS[@]}"; do
	for set in mail chat; do
		bn=${b#"$TOP"/}
		x=$(median "$set" "$bn" 5)
		verdict=
		if [ "$set" = mail ]; then
			verdict=" (MISS: target <= 1.6x)"
			awk -v x="$x" 'BEGIN { exit !(x <= 1.6) }' && verdict=" (PASS: target <= 1.6x)"
		fi
		printf '  %-24s %-4s written %s bytes = %sx the corpus, wall %s s, CPU %s s%s\n' "$bn" "$set" \
			"$(median "$set" "$bn" 4)" "$x" "$(median "$set" "$bn" 6)" "$(median "$set" "$bn" 11)" "$verdict"
	done
done
[ "$BROKEN" -eq 0 ]
