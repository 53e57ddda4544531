#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Exactly once across an interrupted UID MOVE (issue 12: a message found
# twice in Archive on Cyrus after kills during unanswered MOVEs), on the
# server SERVER names (lib-sync.sh).  Each state an interrupted MOVE can
# leave, made on purpose with tests/tools/imap-proxy cutting the connection
# at a chosen point, one message of INBOX moved to Archive in each:
#   A. nothing done: cut inside the command line ("aN UID MOVE " reaches
#      the server without its end), so the server never runs it;
#   B. copied, not expunged: as A, then another client copies the message
#      to Archive (what a MOVE made of COPY + EXPUNGE, or a server dying
#      between the two, leaves);
#   C. moved, answer lost: cut right after the server's COPYUID.
# The state the cut left is checked on the server first; then a clean run
# must leave the message exactly once on the server, in Archive only, the
# store equal to the server and nothing pending.
# D. As C, but the next run is cut too, inside its replay's first command
#    of its own (a store queued meanwhile, whose APPEND comes after the
#    move's row): the run after must still end with the message once.
# E. As C, from a folder Src that is then deleted locally before the next
#    run: the move loses its source and becomes an append of our copy,
#    which must still know that the MOVE may have been made (it was: the
#    copy is in Archive) and not append a second one.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init
[ -x "$PROXY" ] || bail "missing $PROXY (make all tests)"
dc_start srv
DB=$WORK/store.db
op() { "$OP" --db "$DB" "$@"; }

clear_conf "$WORK/direct.conf" "$DB" "$IMAP_PORT"
# start_proxy FAULT-ARGS...: the proxy in front of the server (lib-sync.sh),
# faulty.conf through it
start_proxy() {
	proxy_start "$@"
	clear_conf "$WORK/faulty.conf" "$DB" "$PROXY_PORT"
}
# faulty_run NAME: --once through the proxy, whose fault must have fired;
# the run must fail (exit 1) for the lost connection
faulty_run() {
	local rc
	timeout 60 "$SYNCD" -c "$WORK/faulty.conf" --once -v 2>"$WORK/$1.log"
	rc=$?
	proxy_stop
	check "$1: the fault was injected ($(grep ': fault ' "$WORK/proxy.log" | head -n 1))" \
		grep -q ': fault ' "$WORK/proxy.log"
	check "$1: the run failed for it (exit $rc: $(grep -v ' [CS]: ' "$WORK/$1.log" | tail -n 1 | cut -c1-120))" \
		test "$rc" -eq 1
}
# count FOLDER MESSAGE-ID: how many messages with that Message-ID FOLDER
# holds on the server
count() {
	local out
	out=$(da search -u "$USER1" mailbox "$1" header message-id "$2") || {
		echo "search of $1 failed" >&2
		echo -1
		return
	}
	grep -c . <<<"$out"
}
# where MESSAGE-ID: "INBOX=n Archive=n" on the server
where() { echo "INBOX=$(count INBOX "$1") Archive=$(count Archive "$1")"; }
# uid_of FOLDER MESSAGE-ID: its UID on the server
uid_of() { da search -u "$USER1" mailbox "$1" header message-id "$2" | awk '{print $2}' | tail -n 1; }
# queue_move MESSAGE-ID: the local message moved to Archive (a journal row)
queue_move() {
	local id
	id=$(op find a INBOX "$1") || bail "no local message $1 in INBOX"
	op move Archive "$id" >/dev/null || bail "op move $1"
}
# converged NAME MESSAGE-ID: a clean run, then the message once, in Archive
converged() {
	check "$1: a clean run succeeds" sync_once "$WORK/direct.conf" "$WORK/$1.next.log"
	check "$1: the message once on the server, in Archive ($(where "$2"))" \
		test "$(where "$2")" = "INBOX=0 Archive=1"
	check "$1: store equals the server" compare "$DB"
	check "$1: nothing pending ($(op pending a | tr '\t\n' ' ;'))" test -z "$(op pending a)"
}

da mailbox create -u "$USER1" Archive || bail "creating Archive"
da mailbox create -u "$USER1" Src || bail "creating Src"
msg_save "$USER1" Src '<move.e@cut.test>' 3000 '\Seen' || bail "saving <move.e@cut.test>"
for s in a b c d; do
	msg_save "$USER1" INBOX "<move.$s@cut.test>" 3000 '\Seen' || bail "saving <move.$s@cut.test>"
done
check "initial sync" sync_once "$WORK/direct.conf"
check "initial sync: store equals the server" compare "$DB"

# A. nothing done
M='<move.a@cut.test>'
queue_move "$M"
start_proxy --fault cut --fault-stream client --after-pattern 'UID MOVE '
faulty_run "A (nothing done)"
check "A: the server did not run the MOVE ($(where "$M"))" test "$(where "$M")" = "INBOX=1 Archive=0"
converged A "$M"

# B. copied, not expunged
M='<move.b@cut.test>'
queue_move "$M"
start_proxy --fault cut --fault-stream client --after-pattern 'UID MOVE '
faulty_run "B (copied, not expunged)"
src_uid=$(uid_of INBOX "$M")
check "B: the message still in INBOX (UID '$src_uid')" test -n "$src_uid"
da copy -u "$USER1" Archive mailbox INBOX uid "$src_uid" || not_ok "B: copying UID $src_uid to Archive"
check "B: in both folders, as a half-made MOVE leaves it ($(where "$M"))" \
	test "$(where "$M")" = "INBOX=1 Archive=1"
converged B "$M"

# moved_answer_lost X MESSAGE-ID: its move queued and sent, the connection cut
# right after the server's COPYUID; the server made the MOVE
moved_answer_lost() {
	queue_move "$2"
	start_proxy --fault cut --after-pattern 'COPYUID'
	faulty_run "$1 (moved, answer lost)"
	check "$1: the server made the MOVE ($(where "$2"))" test "$(where "$2")" = "INBOX=0 Archive=1"
}

# C. moved, answer lost
M='<move.c@cut.test>'
moved_answer_lost C "$M"
converged C "$M"

# D. moved, answer lost; the next run cut in its replay too
M='<move.d@cut.test>'
moved_answer_lost D "$M"
msg_text "<later.d@cut.test>" 2000 >"$WORK/later"
op store a INBOX "$WORK/later" >/dev/null || bail "op store <later.d@cut.test>"
start_proxy --fault cut --fault-stream client --after-pattern 'APPEND '
faulty_run "D (next run cut in its APPEND)"
converged D "$M"
check "D: the later store once on the server ($(where '<later.d@cut.test>'))" \
	test "$(where '<later.d@cut.test>')" = "INBOX=1 Archive=0"

# E. moved, answer lost, then the source's folder deleted locally
M='<move.e@cut.test>'
id=$(op find a Src "$M") || bail "no local message $M in Src"
op move Archive "$id" >/dev/null || bail "op move $M"
start_proxy --fault cut --after-pattern 'COPYUID'
faulty_run "E (moved, answer lost)"
check "E: the server made the MOVE (Src=$(count Src "$M") Archive=$(count Archive "$M"))" \
	test "$(count Src "$M") $(count Archive "$M")" = "0 1"
check "E: Src deleted locally" op rmdir a Src
check "E: a clean run succeeds" sync_once "$WORK/direct.conf" "$WORK/E.next.log"
check "E: the message once on the server, in Archive ($(count Archive "$M"))" \
	test "$(count Archive "$M")" = 1
check "E: Src deleted on the server" test -z "$(selectable_folders "$USER1" | grep -x Src)"
check "E: store equals the server" compare "$DB"
check "E: nothing pending ($(op pending a | tr '\t\n' ' ;'))" test -z "$(op pending a)"

finish
