#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Online = false ("no network at all; changes keep being journaled") outlives
# a restart of the daemon.  The tester's report: after `cpmctl online a off`
# a restart (SIGTERM, a crash and systemd's Restart=on-failure, D-Bus
# activation) connected at once and sent the queued changes.  Now the
# choice is kept in the store: after a SIGTERM and after a SIGKILL the
# restarted daemon says Online false (Account1.Online, `cpmctl online a`,
# State offline), logs in to no server (Dovecot's log has no new login)
# and the change stays queued; `cpmctl online a on` then sends it, and on
# stays on across the next restart.
#
# cpm-syncd --once honours it too: an account left offline is not synced
# (no login, its changes stay queued), a line on stderr says so and how
# to sync it, and the run exits 0; `cpm-syncd --once a`, the account
# named, syncs it all the same and leaves the switch off.  So does
# cpm-syncd --check: the account's line says it was skipped (no login),
# the others are checked, exit 0; `--check a` checks it all the same.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
dc_start dc
dbus_setup

# logins: how many times Dovecot's log says $USER1 logged in over IMAP
logins() {
	grep -c "imap-login: Info: Login: user=<$USER1>," "$DOVECOT_LOG"
}
# logged_in_since N: more logins than N
logged_in_since() { test "$(logins)" -gt "$1"; }
# stop_daemon SIGNAL: the daemon ended with it, and waited for
stop_daemon() {
	kill "-$1" "$DAEMON_PID" || return 1
	wait "$DAEMON_PID"
	DAEMON_PID=
}
on_server() { # MESSAGE-ID: how many of INBOX's messages have it
	da search -u "$USER1" mailbox INBOX header message-id "$1" | wc -l
}

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")" || bail "mkdir $(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"
msg_save "$USER1" INBOX "<first@online.test>" 300 || bail "doveadm save"

start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "first start: State idle" wait_state idle 20
check "Dovecot's log shows the login" eventually 5 logged_in_since 0
"$CPMCTL" online a off || bail "cpmctl online a off"
check "online a off: State offline" wait_state offline 5
msg_text "<queued@online.test>" 300 >"$WORK/queued.eml" || bail "write queued.eml"
"$CPMCTL" store a INBOX "$WORK/queued.eml" >"$WORK/store.out" || bail "cpmctl store offline"
expect "the stored message is queued" "$("$CPMCTL" pending a | cut -f3)" store

for sig in TERM KILL; do
	stop_daemon "$sig"
	before=$(logins)
	: >"$WORK/daemon.log"
	start_daemon || bail "cpm-syncd did not take org.cpmsync after SIG$sig"
	expect "after SIG$sig: cpmctl online a says off" "$("$CPMCTL" online a)" off
	expect "after SIG$sig: Account1.Online is false" "$(acct Online)" false
	expect "after SIG$sig: State offline" "$(acct State)" offline
	# an online session connects at once: it would have by now
	sleep 3
	expect "after SIG$sig: no login on the server within 3 s" "$(logins)" "$before"
	check "after SIG$sig: the log says why" grep -qF \
		"a: offline, as the user left it (Online is off)" "$WORK/daemon.log"
	if grep -q ' C: ' "$WORK/daemon.log"; then
		not_ok "after SIG$sig: no IMAP command sent"
	else
		ok "after SIG$sig: no IMAP command sent"
	fi
	expect "after SIG$sig: the message is still queued" "$("$CPMCTL" pending a | cut -f3)" store
	expect "after SIG$sig: not on the server" "$(on_server "<queued@online.test>")" 0
done

"$CPMCTL" online a on || bail "cpmctl online a on"
check "online a on: State idle" wait_state idle 20
"$CPMCTL" sync a >/dev/null || bail "cpmctl sync a"
expect "online a on: the message reached the server" "$(on_server "<queued@online.test>")" 1
expect "online a on: nothing queued" "$("$CPMCTL" pending a)" ""
stop_daemon TERM
before=$(logins)
start_daemon || bail "cpm-syncd did not take org.cpmsync after the last SIGTERM"
expect "on stays on across a restart: cpmctl online a says on" "$("$CPMCTL" online a)" on
check "on stays on across a restart: State idle" wait_state idle 20
check "on stays on across a restart: it logged in again" eventually 5 logged_in_since "$before"

# --- cpm-syncd --once -----------------------------------------------------------
"$CPMCTL" online a off || bail "cpmctl online a off (again)"
check "off again: State offline" wait_state offline 5
msg_text "<once@online.test>" 300 >"$WORK/once.eml" || bail "write once.eml"
"$CPMCTL" store a INBOX "$WORK/once.eml" >/dev/null || bail "cpmctl store for --once"
stop_daemon TERM
before=$(logins)
"$SYNCD" -c "$CONF" --once 2>"$WORK/once.err"
expect "--once with a off: exit 0" "$?" 0
expect "--once with a off: says it was left out, and how to sync it" "$(grep -v ' [CS]: ' "$WORK/once.err")" \
	"cpm-syncd: a: not synced: set offline (Online is off); \`cpmctl online a on\` turns it on, \`cpm-syncd --once a\` syncs it once"
expect "--once with a off: no login on the server" "$(logins)" "$before"
expect "--once with a off: the message is still queued" "$("$CPMCTL" pending a | cut -f3)" store
expect "--once with a off: not on the server" "$(on_server "<once@online.test>")" 0
"$SYNCD" -c "$CONF" --once a 2>"$WORK/once-a.err"
expect "--once a: exit 0" "$?" 0
check "--once a: says it synced an account set offline" grep -qxF \
	"cpm-syncd: a: Online is off; synced once as named (it stays off)" "$WORK/once-a.err"
expect "--once a: the message reached the server" "$(on_server "<once@online.test>")" 1
expect "--once a: nothing queued" "$("$CPMCTL" pending a)" ""
expect "--once a: the switch stays off in the store" \
	"$(sqlite3 -readonly "$WORK/store.db" "SELECT online FROM account WHERE name = 'a'")" 0
"$SYNCD" -c "$CONF" --once nobody 2>"$WORK/once-nobody.err"
expect "--once nobody: exit 1" "$?" 1
expect "--once nobody: says so" "$(cat "$WORK/once-nobody.err")" "cpm-syncd: nobody: no such account in $CONF"

# --- cpm-syncd --check ----------------------------------------------------------
# a is still off; b, the same mailbox, is not in the store (on).
CHECK_CONF=$WORK/check.conf
{ cat "$CONF" && printf '[account b]\nhost = localhost\nport = %s\nca_file = %s\nuser = %s\npassword_file = %s\n' \
	"$IMAPS_PORT" "$CA_FILE" "$USER1" "$WORK/alice.pw"; } >"$CHECK_CONF" || bail "write $CHECK_CONF"
before=$(logins)
"$SYNCD" -c "$CHECK_CONF" --check >"$WORK/check.out" 2>"$WORK/check.err"
expect "--check with a off: exit 0" "$?" 0
expect "--check with a off: a's line says it was skipped, and how to check it" "$(sed -n 1p "$WORK/check.out")" \
	"a: skipped: set offline (Online is off); \`cpm-syncd --check a\` checks it all the same"
check "--check with a off: b is checked" grep -qE '^b: ok .*IMAP4rev1' "$WORK/check.out"
expect "--check with a off: two lines" "$(wc -l <"$WORK/check.out")" 2
expect "--check with a off: nothing on stderr" "$(cat "$WORK/check.err")" ""
check "--check with a off: b logged in" eventually 5 logged_in_since "$before"
sleep 1
expect "--check with a off: one login, b's" "$(logins)" $((before + 1))
before=$(logins)
"$SYNCD" -c "$CHECK_CONF" --check a >"$WORK/check-a.out" 2>"$WORK/check-a.err"
expect "--check a: exit 0" "$?" 0
check "--check a: a is checked" grep -qE '^a: ok .*IMAP4rev1' "$WORK/check-a.out"
expect "--check a: one line" "$(wc -l <"$WORK/check-a.out")" 1
expect "--check a: says it checked an account set offline" "$(cat "$WORK/check-a.err")" \
	"cpm-syncd: a: Online is off; checked as named (it stays off)"
check "--check a: a logged in" eventually 5 logged_in_since "$before"
expect "--check a: the switch stays off in the store" \
	"$(sqlite3 -readonly "$WORK/store.db" "SELECT online FROM account WHERE name = 'a'")" 0

finish
