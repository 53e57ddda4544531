#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The store's file removed under a running daemon (a user starting over with
# rm).  Before, the daemon went on writing to the unlinked file: every change
# accepted from then on was lost at the next start, and nothing said so.
# Now it stops within STORE_CHECK_MS (2 s) with an error naming the file,
# exit status 1 (systemd's Restart=on-failure or D-Bus activation starts it
# again), and the next start makes a new store and syncs it again from the
# server.  (Each write's own check, the commit failing, is test-store.c's.)
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
dc_start dc
msg_save "$USER1" INBOX "<gone1@store.test>" 400 || bail "doveadm save into INBOX"
dbus_setup

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
DB=$WORK/store.db
mkdir -p "$(dirname "$CONF")" || bail "mkdir $(dirname "$CONF")"
write_conf "$CONF" "$DB"
start_daemon || bail "cpm-syncd did not take org.cpmsync (see $WORK/daemon.log)"
check "connected: State idle" wait_state idle 20
check "the store holds the server's message" compare "$DB"

# exited_within SECONDS: the daemon ended by then (its status in $WORK/rc)
exited_within() {
	local i
	for i in $(seq $(($1 * 10))); do
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			wait "$DAEMON_PID"
			echo $? >"$WORK/rc"
			return 0
		fi
		sleep 0.1
	done
	echo "    cpm-syncd still runs after $1 s"
	return 1
}
check "the store removed" rm "$DB"
check "cpm-syncd stops within 5 s" exited_within 5
DAEMON_PID=
check "...with exit status 1 (exit status $(cat "$WORK/rc" 2>/dev/null))" test "$(cat "$WORK/rc" 2>/dev/null)" = 1
check "...saying why, naming the file" grep -qF \
	"the store file $(realpath "$WORK")/store.db was removed or replaced while in use: nothing more is written to it (it would be lost with it); stopping, so that a new start makes a new store and syncs it again" \
	"$WORK/daemon.log"
check "no store file made again by the old process" test ! -e "$DB"

start_daemon || bail "cpm-syncd did not start again (see $WORK/daemon.log)"
check "started again: State idle" wait_state idle 20
check "a new store, synced again from the server" compare "$DB"
finish
