#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# One short LIST must not delete folders here.  Dovecot, its mailbox list
# index corrupted ("name_id=62 not in index header"), answered one LIST
# with INBOX and the special folders alone, and cpm-syncd removed 40
# folders and their messages here, which the next sync brought back under
# new local ids.  tests/tools/imap-proxy drops the LIST (and STATUS) lines
# of Default/A, Default/B and Default/C, which hold messages, from the
# first LIST answer of a run only (--drop-line, --drop-count):
#   1. the engine lists again before removing them: nothing removed, the
#      local ids unchanged, the store equal to the server;
#   2. with Lone really deleted with doveadm meanwhile, in the same kind of
#      run: Lone removed in that run (missing from both answers), Default/*
#      kept.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init
[ -x "$PROXY" ] || bail "missing $PROXY (make all tests)"
dc_start srv
DB=$WORK/store.db
op() { "$OP" --db "$DB" "$@"; }
clear_conf "$WORK/direct.conf" "$DB" "$IMAP_PORT"

SUBS="Default/A Default/B Default/C"
for f in $SUBS Lone; do
	da mailbox create -u "$USER1" "$f" || bail "creating $f"
done
i=0
for f in $SUBS $SUBS Lone; do
	i=$((i + 1))
	msg_save "$USER1" "$f" "<m$i@flaky.test>" 2000 '\Seen' || bail "saving <m$i@flaky.test>"
done
check "initial sync" sync_once "$WORK/direct.conf" "$WORK/sync0.log"
check "initial sync: store equals the server" compare "$DB"

# ids: "folder: ids" of Default/A..C and Lone, local
ids() {
	local f
	for f in $SUBS Lone; do echo "$f: $(op ids a "$f" 2>&1 | tr '\n' ' ')"; done
}
before=$(ids)
# The lines to drop: those of the first LIST answer naming Default (the
# LIST of each folder, and its STATUS with LIST-STATUS), counted in the
# initial run's protocol log (-v: " S: " lines).
drops=$(awk '/ C: [^ ]+ LIST / { n++ } n == 1 && / S: \* (LIST|STATUS) .*Default/ { c++ } END { print c + 0 }' \
	"$WORK/sync0.log")
check "the first LIST names Default's folders ($drops lines)" test "$drops" -ge 3

# flaky_run NAME LACKING: --once through a proxy dropping those lines of one
# answer, which then lacks LACKING folders holding messages (Default's 3
# and those really deleted); Default's 3 must be kept
flaky_run() {
	proxy_start --drop-line Default --drop-count "$drops"
	clear_conf "$WORK/flaky.conf" "$DB" "$PROXY_PORT"
	check "$1: cpm-syncd --once succeeds" sync_once "$WORK/flaky.conf" "$WORK/$1.log"
	proxy_stop
	check "$1: the proxy dropped $drops lines ($(grep -c 'dropped the line' "$WORK/proxy.log"))" \
		test "$(grep -c 'dropped the line' "$WORK/proxy.log")" -eq "$drops"
	check "$1: the engine listed again ($(grep -o 'LIST lacks.*' "$WORK/$1.log" | head -n 1))" \
		grep -q "LIST lacks $2 folders holding messages here" "$WORK/$1.log"
	check "$1: Default's folders kept ($(grep -o '[0-9]* folders\{0,1\} holding messages, missing.*' "$WORK/$1.log"))" \
		grep -q "3 folders holding messages, missing from one LIST answer, listed again: kept" \
		"$WORK/$1.log"
}

# 1. one short LIST, then the server as it was
flaky_run flaky1 3
check "flaky1: nothing deleted ($(grep -o 'deleted on the server.*' "$WORK/flaky1.log" | head -n 1))" \
	test -z "$(grep 'deleted on the server' "$WORK/flaky1.log")"
after=$(ids)
check "flaky1: local ids unchanged" test "$before" = "$after"
[ "$before" = "$after" ] || diff <(echo "$before") <(echo "$after") | sed 's/^/    /'
check "flaky1: store equals the server" compare "$DB"

# 2. Lone really deleted, and one short LIST again
da mailbox delete -u "$USER1" Lone || bail "deleting Lone"
flaky_run flaky2 4
check "flaky2: Lone removed in this run" \
	grep -q "folder 'Lone' deleted on the server: its 1 message removed here" "$WORK/flaky2.log"
check "flaky2: nothing else deleted" test "$(grep -c 'deleted on the server' "$WORK/flaky2.log")" -eq 1
check "flaky2: Default's local ids unchanged" \
	test "$(grep -v '^Lone:' <<<"$before")" = "$(ids | grep -v '^Lone:')"
check "flaky2: store equals the server" compare "$DB"

finish
