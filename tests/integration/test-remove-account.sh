#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Manager1.RemoveAccount's log.  The tester's report: it said "account
# removed from the configuration (its data stays in the store)" and then
# "removed with 3 local change(s) it had not sent": the first is not true
# (RemoveAccount drops the data), and with an APPEND in flight whose
# APPENDUID the server had already answered (a proxy stalled after
# "[APPENDUID") the 3 counted it as not sent.  Now one line says what
# went: "2 local change(s) it had not sent and 1 it had sent without its
# answer yet (on the server, maybe)", and the message is on the server.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
dc_start dc
dbus_setup

on_server() { # MESSAGE-ID: how many of INBOX's messages have it
	da search -u "$USER1" mailbox INBOX header message-id "$1" | wc -l
}

msg_save "$USER1" INBOX "<one@remove.test>" 300 || bail "doveadm save one"
msg_save "$USER1" INBOX "<two@remove.test>" 300 || bail "doveadm save two"
# The server's answer to the APPEND stops after "[APPENDUID": the message
# is stored there, the daemon never reads which UID it got (any connection:
# going offline drops the first).
proxy_start --fault stall --fault-connection 0 --after-pattern '[APPENDUID'
CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")" || bail "mkdir $(dirname "$CONF")"
DB=$WORK/store.db
clear_conf "$CONF" "$DB" "$PROXY_PORT" 60
start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "first sync: State idle" wait_state idle 20

"$CPMCTL" online a off || bail "cpmctl online a off"
check "offline" wait_state offline 5
msg_text "<stalled@remove.test>" 300 >"$WORK/stalled.eml" || bail "write stalled.eml"
"$CPMCTL" store a INBOX "$WORK/stalled.eml" >/dev/null || bail "cpmctl store"
for m in one two; do
	id=$("$OP" --db "$DB" find a INBOX "<$m@remove.test>") || bail "find <$m@remove.test>"
	"$CPMCTL" flag a INBOX "$id" +kwQueued >/dev/null || bail "cpmctl flag $id"
done
expect "3 changes queued" "$("$CPMCTL" pending a | cut -f3 | tr '\n' ' ')" "store flags flags "
"$CPMCTL" online a on || bail "cpmctl online a on"
# stalled_append: the server holds the message, the journal's APPEND was
# sent (attempts 1) and its answer not read
stalled_append() {
	[ "$(on_server "<stalled@remove.test>")" = 1 ] &&
		[ "$(sqlite3 -readonly "$DB" "SELECT attempts FROM journal WHERE op = 'append'")" = 1 ]
}
check "the APPEND reached the server, its answer stalled" eventually 20 stalled_append
expect "still 3 in the journal" "$(sqlite3 -readonly "$DB" "SELECT count(*) FROM journal")" 3

mark=$(wc -l <"$WORK/daemon.log")
call /org/cpmsync org.cpmsync.Manager1 RemoveAccount o "$A" >/dev/null || bail "RemoveAccount"
check "RemoveAccount drops the section" bash -c "! grep -q '^\[account a\]' '$CONF'"
tail -n +$((mark + 1)) "$WORK/daemon.log" | grep -v ' [CS]: ' >"$WORK/removal.log"
check "the log says what went, in one line" grep -qxF \
	"cpm-syncd: a: removed from the configuration, and its data from the store, with 2 local change(s) it had not sent and 1 it had sent without its answer yet (on the server, maybe)" \
	"$WORK/removal.log"
expect "and nothing else about the removal" "$(grep -c 'a: removed\|a: account removed' "$WORK/removal.log")" 1
if grep -qF "its data stays in the store" "$WORK/removal.log"; then
	not_ok "no line says its data stays in the store"
else
	ok "no line says its data stays in the store"
fi
expect "the journal is empty" "$(sqlite3 -readonly "$DB" "SELECT count(*) FROM journal")" 0

finish
