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

# A body's pack file removed (a user's rm, a damaged disk) while the daemon
# is stopped.  The server has the message: Fetch gets its copy there
# instead of failing, and the store says which file it could not read.
msg_save "$USER1" INBOX "<packed@store.test>" 20000 || bail "doveadm save of a 20 KB message"
call "$A" org.cpmsync.Account1 Sync >/dev/null || bail "Sync"
check "the 20 KB message synced" eventually 10 compare "$DB"
kill "$DAEMON_PID" && wait "$DAEMON_PID"
DAEMON_PID=
check "stopped: the log says the account stopped, not removed" \
	bash -c "grep -qF 'a: account stopped' '$WORK/daemon.log' && ! grep -qF 'a: account removed' '$WORK/daemon.log'"
PACKS=("$DB"-packs/*)
check "its body is in a pack file (${#PACKS[@]})" test -f "${PACKS[0]}"
check "the pack files removed" rm -f "${PACKS[@]}"
start_daemon || bail "cpm-syncd did not start again (see $WORK/daemon.log)"
check "started again: State idle" wait_state idle 20
INBOX=$(call "$A" org.cpmsync.Account1 FindFolder s INBOX) || bail "FindFolder INBOX"
PID_=
for id in $(call "$INBOX" org.cpmsync.Folder1 ListMessages tu 0 100 | grep -o 'Id=[0-9]*' | cut -d= -f2); do
	if call "$INBOX" org.cpmsync.Folder1 GetMessage t "$id" | grep -qx 'MessageId=<packed@store.test>'; then
		PID_=$id
	fi
done
[ -n "$PID_" ] || bail "no message <packed@store.test> in INBOX over D-Bus"
SRV_SIZE=$(da -f tab fetch -u "$USER1" size.virtual mailbox INBOX header message-id "<packed@store.test>" | tail -n 1)
call "$INBOX" org.cpmsync.Folder1 Fetch ts "$PID_" "" >"$WORK/packed.body"
check "Fetch of it: the server's copy ($SRV_SIZE bytes), not an error" \
	test "$(wc -c <"$WORK/packed.body")" -eq "$SRV_SIZE"
check "...the message itself" grep -qF "Message-ID: <packed@store.test>" "$WORK/packed.body"
check "the log names the file that could not be read" grep -qF \
	"reading the body of message $PID_: $(realpath "$WORK")/store.db-packs/" "$WORK/daemon.log"
check "the fetched copy is kept again (no warning)" \
	bash -c "! grep -F 'keeping the fetched body' '$WORK/daemon.log'"
check "...and the store says the lost pack's bodies went with it" grep -qF \
	"the pack file $(realpath "$WORK")/store.db-packs/1 is missing: the bodies it held are lost here; new bodies go to a new pack" "$WORK/daemon.log"
check "the kept copy is the server's" bash -c "'$DBUS' call '$INBOX' org.cpmsync.Folder1 Fetch ts '$PID_' '' | cmp -s - '$WORK/packed.body'"
msg_save "$USER1" INBOX "<packed2@store.test>" 20000 || bail "doveadm save of another 20 KB message"
call "$A" org.cpmsync.Account1 Sync >/dev/null || bail "Sync"
check "a new message's body is stored again: the store equals the server" eventually 10 compare "$DB"
check "...no sync failed" bash -c "! grep -E 'sync failed|store: ' '$WORK/daemon.log'"
finish
