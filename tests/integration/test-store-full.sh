#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A store that runs out of room in the middle of a folder's initial sync,
# with local changes queued offline before it (a flag change, a Store):
# `cpm-syncd --once` under a file size limit (ulimit -f, SIGXFSZ ignored:
# the store's WAL cannot grow past it, EFBIG, which SQLite reports as
# "disk I/O error" and the store as EFBIG since 53d0504).  The pull stops,
# and the local changes still reach the server, each once; the run fails
# naming the lack of room and the file; the store is whole (integrity_check,
# cpmctl dump).  With the limit lifted, the next run completes and the
# store equals the server.  (The scripted cases, SQLITE_FULL, the folder
# checks of the replay: tests/unit/test-engine.c test_store_full_*.)
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init

dc_start dc
msg_save "$USER1" INBOX "<one@full.test>" 400 '\Seen' || bail "doveadm save into INBOX"
msg_save "$USER1" INBOX "<two@full.test>" 400 || bail "doveadm save into INBOX"
CONF=$WORK/full.conf
DB=$WORK/full.db
write_conf "$CONF" "$DB"
op() { "$OP" --db "$DB" "$@"; }
server_count() { # FOLDER MSGID: how many messages with that Message-ID
	server_dump "$USER1" | awk -F'\t' -v f="$1" -v m="$2" '$2 == f && $5 == m' | wc -l
}
server_flags() { # FOLDER MSGID
	server_dump "$USER1" | awk -F'\t' -v f="$1" -v m="$2" '$2 == f && $5 == m { print $4 }'
}
dump_to() { "$CPMCTL" dump --db "$DB" a >"$1"; }

sync_once "$CONF" "$WORK/sync1.log" || bail "the first sync failed"
check "first sync: the store equals the server" compare "$DB"

# Offline: \Flagged on <one@>, a new message stored in INBOX.
one=$(op find a INBOX "<one@full.test>") || bail "no <one@full.test> in the store"
op flags "$one" -- +'\Flagged' >/dev/null || bail "op flags"
msg_text "<mine@full.test>" 500 "stored offline" >"$WORK/mine.eml"
op store a INBOX "$WORK/mine.eml" >/dev/null || bail "op store"
expect "two changes queued" "$(op pending a | cut -f3 | tr '\n' ' ')" "flags append "

# Meanwhile the server has a new folder of 320 messages of ~3 KB (bodies
# kept in the database, not in pack files): about 1 MB to store.
da mailbox create -u "$USER1" Big || bail "doveadm mailbox create Big"
for i in $(seq 10); do
	msg_save "$USER1" Big "<big$i@full.test>" 3000 || bail "doveadm save into Big"
done
for i in $(seq 5); do
	da copy -u "$USER1" Big mailbox Big all || bail "doveadm copy (round $i)"
done
expect "Big holds 320 messages" "$(da search -u "$USER1" mailbox Big all | wc -l)" 320

# No file may grow past 256 KiB beyond the store's size now (its WAL was
# checkpointed into it and emptied at the last exit).
test ! -s "$DB-wal" || bail "the WAL was not emptied at the last exit"
limit=$(($(stat -c %s "$DB") / 1024 + 256))
# The log through a pipe: cat is not under the limit.
(
	trap '' XFSZ
	ulimit -f "$limit"
	exec timeout "$SYNC_TIMEOUT" "$SYNCD" -c "$CONF" --once -v
) 2>&1 | cat >"$WORK/full.log"
rc=${PIPESTATUS[0]}
expect "the run under the limit fails (exit status)" "$rc" 1
check "...naming the lack of room and the file" grep -qxF \
	"cpm-syncd: a: syncing Big stopped, the local store has no room: store: $(realpath "$DB"): disk I/O error (778): File too large; the local changes were sent all the same (2 sent)" \
	"$WORK/full.log"
expect "\\Flagged reached the server" "$(server_flags INBOX "<one@full.test>")" '\Flagged \Seen'
expect "the stored message reached the server, once" "$(server_count INBOX "<mine@full.test>")" 1
expect "nothing pending" "$(op pending a | wc -l)" 0
expect "the store is whole (integrity_check)" "$(sqlite3 "$DB" 'PRAGMA integrity_check')" ok
check "cpmctl dump reads it" dump_to "$WORK/stopped.dump"
big=$(awk -F'\t' '$2 == "Big"' "$WORK/stopped.dump" | wc -l)
check "Big not complete in the store ($big of 320)" test "$big" -lt 320

# Room again: the next run completes, and sends nothing twice.
check "with room again: cpm-syncd --once succeeds" sync_once "$CONF" "$WORK/sync2.log"
check "the store equals the server" compare "$DB"
expect "Big complete in the store" "$("$CPMCTL" dump --db "$DB" a | awk -F'\t' '$2 == "Big"' | wc -l)" 320
expect "the stored message still once on the server" "$(server_count INBOX "<mine@full.test>")" 1
expect "still nothing pending" "$(op pending a | wc -l)" 0
finish
