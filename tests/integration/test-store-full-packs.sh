#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A store with less room than a folder's bodies, filling up in a pack file
# (bodies over 4 KiB), on a fast link: `cpm-syncd --once` twice under a
# file size limit (ulimit -f, SIGXFSZ ignored: the pack cannot grow past
# it, EFBIG, as a full disk gives ENOSPC; no root needed, unlike a small
# tmpfs).  Folder Big (40 messages of 40 KB, 1.6 MB, fetched well within
# one batch) comes before INBOX by name.  Each run fails naming the pack,
# but keeps what fitted: INBOX (synced first) and the same part of Big
# both times, and its summary counts what it kept.  Before, every run
# rolled back all it had fetched: nothing of Big nor of INBOX was kept,
# however often it ran.  With the limit lifted the next run completes.
# (The scripted case: tests/unit/test-engine.c
# test_store_full_keeps_whole_messages.)
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init

dc_start dc
for i in 1 2 3; do
	msg_save "$USER1" INBOX "<in$i@packs.test>" 400 || bail "doveadm save into INBOX"
done
da mailbox create -u "$USER1" Big || bail "doveadm mailbox create Big"
for i in $(seq 40); do
	msg_save "$USER1" Big "<big$i@packs.test>" 40000 || bail "doveadm save into Big"
done
expect "Big holds 40 messages" "$(da search -u "$USER1" mailbox Big all | wc -l)" 40
CONF=$WORK/packs.conf
DB=$WORK/packs.db
write_conf "$CONF" "$DB"

# No file may grow past 1 MiB: the new store's database and WAL stay well
# under it, the pack takes about 26 of Big's bodies.
limited_run() { # LOG: cpm-syncd --once under the limit; its exit status
	(
		trap '' XFSZ
		ulimit -f 1024
		exec timeout "$SYNC_TIMEOUT" "$SYNCD" -c "$CONF" --once -v
	) 2>&1 | cat >"$1"
	return "${PIPESTATUS[0]}"
}
# stored FOLDER: the messages of FOLDER in the store
stored() {
	"$CPMCTL" dump --db "$DB" a >"$WORK/dump" || bail "cpmctl dump"
	awk -F'\t' -v f="$1" '$2 == f' "$WORK/dump" | wc -l
}
# summary LOG: the run's "N messages added" figure
summary() {
	sed -n 's/^cpm-syncd: a: failed: .*, \([0-9]*\) messages\{0,1\} added, .*/\1/p' "$1"
}
# folders LOG: the run's "N folders synced, M unchanged"
folders() {
	sed -n 's/^cpm-syncd: a: failed: \([0-9]* folders\{0,1\} synced, [0-9]* unchanged\), .*/\1/p' "$1"
}

limited_run "$WORK/run1.log"
expect "run 1 under the limit fails (exit status)" "$?" 1
kept=$(stored Big)
check "run 1 keeps part of Big ($kept of 40)" test "$kept" -gt 0 -a "$kept" -lt 40
expect "run 1 keeps INBOX" "$(stored INBOX)" 3
check "...naming the pack and the first message not kept" grep -qxF \
	"cpm-syncd: a: storing the body of UID $((kept + 1)): writing $(realpath "$DB")-packs/1: File too large" \
	"$WORK/run1.log"
expect "...and counting what it kept" "$(summary "$WORK/run1.log")" $((kept + 3))
# Only INBOX was synced to its end (Big was begun): before, the summary
# counted the folders begun ("2 folders synced").
expect "...and the folders it finished" "$(folders "$WORK/run1.log")" "1 folder synced, 0 unchanged"
check "...saying what it kept" grep -qxF \
	"cpm-syncd: a: no room in the store: the $((kept + 3)) new messages stored whole before are kept" \
	"$WORK/run1.log"

limited_run "$WORK/run2.log"
expect "run 2 under the limit fails (exit status)" "$?" 1
expect "run 2 keeps as much of Big" "$(stored Big)" "$kept"
expect "...and INBOX" "$(stored INBOX)" 3
check "...failing at the same message" grep -qxF \
	"cpm-syncd: a: storing the body of UID $((kept + 1)): writing $(realpath "$DB")-packs/1: File too large" \
	"$WORK/run2.log"
expect "...counting nothing added" "$(summary "$WORK/run2.log")" 0
# Before: "the 0 new messages stored whole before are kept".
check "...saying it kept none" grep -qxF \
	"cpm-syncd: a: no room in the store: no new message of this run could be kept" \
	"$WORK/run2.log"
expect "the store is whole (integrity_check)" "$(sqlite3 "$DB" 'PRAGMA integrity_check')" ok

check "with room again: cpm-syncd --once succeeds" sync_once "$CONF" "$WORK/run3.log"
check "the store equals the server" compare "$DB"
finish
