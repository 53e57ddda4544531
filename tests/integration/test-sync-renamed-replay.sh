#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A local change waiting for a folder another client renamed reaches the
# folder under its new name in the sync that finds the rename, not after
# the journal's retry back-off (60 s), and no failed operation is left.
#
# The server offers no NOTIFY: the daemon waits in IDLE on INBOX, and a
# rename of another folder reaches it only with a LIST.
# 1. Offline: another client (doveadm) renames Proj to Proj2 while the
#    daemon is offline, the user flags a message of Proj here, the daemon
#    goes online: the first sync's LIST renames the folder in the store,
#    and its replay sends the flag to Proj2.
# 2. Online: Proj2 renamed to Proj3 on the server, then a SetFlags here:
#    the run it starts (the IDLE folder alone, no LIST) has its SELECT of
#    Proj2 refused; the change is not counted as refused (no back-off),
#    and the full sync that follows at once sends it to Proj3.
# 3. Online: Proj3 renamed to Proj4 on the server, then a copy from INBOX
#    to Proj3 queued here (by the library, so that no sync starts), then a
#    SetFlags: the run it starts (no LIST) replays the copy, whose UID COPY
#    is answered [TRYCREATE]; the copy waits for the full sync that follows
#    at once (no back-off), which makes it in Proj4, once.
# 4. A folder the server refuses to SELECT (Locked, which the ACL lets the
#    user look up only): each full sync skips it; the daemon says so once,
#    and why, not at every sync.
# 5. Online: Proj4 renamed to Proj5 on the server, then a message stored
#    into Proj4 here (by the library), then a SetFlags: the run without
#    LIST sends its APPEND, answered [TRYCREATE]; the message waits for the
#    full sync that follows at once, which appends it to Proj5, once.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
DOVECOT_HIDE_CAPABILITY=NOTIFY dc_start dc
dbus_setup

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")" || bail "mkdir $(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"
da mailbox create -u "$USER1" Proj || bail "doveadm mailbox create Proj"
msg_save "$USER1" Proj "<p1@renamed.test>" 300 || bail "doveadm save"
msg_save "$USER1" Proj "<p2@renamed.test>" 300 || bail "doveadm save"

# on_server FOLDER FLAG: how many of FOLDER's messages have FLAG on the server
on_server() { da fetch -u "$USER1" flags mailbox "$1" all | grep -c "$2"; }
has_one() { test "$(on_server "$1" "$2")" = 1; }
# within SECONDS COMMAND...: retries until it succeeds, for SECONDS of wall
# time (doveadm itself takes a while: eventually's count of tries is not)
within() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.2
	done
}
nothing_pending() { test -z "$("$CPMCTL" pending a)"; }
no_refusal() { # WHAT: the daemon's log has no refusal of a journal row
	if grep -q 'refused by the server' "$WORK/daemon.log"; then
		not_ok "$1: no refusal: $(grep 'refused by the server' "$WORK/daemon.log" | head -n 2)"
	else
		ok "$1: no refusal"
	fi
}

start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "first start: State idle" wait_state idle 20
expect "push is IDLE" "$(acct PushState)" idle
check "Proj synced" eventually 10 sh -c "\"$CPMCTL\" list a Proj | grep -q ."

# --- 1. renamed while offline ---------------------------------------------------
"$CPMCTL" online a off || bail "cpmctl online a off"
check "online a off: State offline" wait_state offline 5
check "server: RENAME Proj Proj2" da mailbox rename -u "$USER1" Proj Proj2
id=$("$CPMCTL" list a Proj | sed -n 1p | cut -f1)
[ -n "$id" ] || bail "no message in Proj"
"$CPMCTL" flag a Proj "$id" +\\Flagged || bail "cpmctl flag (offline)"
expect "offline: the flag change is queued" "$("$CPMCTL" pending a | cut -f3)" flags
: >"$WORK/daemon.log"
"$CPMCTL" online a on || bail "cpmctl online a on"
check "offline: the flag reached Proj2" within 20 has_one Proj2 Flagged
check "offline: nothing pending" eventually 10 nothing_pending
expect "offline: no failed operation" "$("$CPMCTL" failed a)" ""
expect "offline: the folder is Proj2 here" "$("$CPMCTL" folders a | cut -f1 | grep '^Proj')" Proj2
no_refusal offline

# --- 2. renamed while online, the change made before any LIST ------------------
check "online: State idle" wait_state idle 20
check "server: RENAME Proj2 Proj3" da mailbox rename -u "$USER1" Proj2 Proj3
id=$("$CPMCTL" list a Proj2 | sed -n 2p | cut -f1)
[ -n "$id" ] || bail "no second message in Proj2"
: >"$WORK/daemon.log"
t0=$SECONDS
"$CPMCTL" flag a Proj2 "$id" +\\Seen || bail "cpmctl flag (online)"
check "online: the flag reached Proj3 (within 20 s; the back-off is 60 s)" \
	within 20 has_one Proj3 Seen
echo "# reached Proj3 after $((SECONDS - t0)) s"
check "online: the run without LIST had the SELECT refused" \
	grep -qF "the local changes of Proj2 wait for a full sync" "$WORK/daemon.log"
check "online: nothing pending" eventually 10 nothing_pending
expect "online: no failed operation" "$("$CPMCTL" failed a)" ""
expect "online: the folder is Proj3 here" "$("$CPMCTL" folders a | cut -f1 | grep '^Proj')" Proj3
no_refusal online
expect "online: the flag went once" "$(grep -c 'UID STORE .*Seen' "$WORK/daemon.log")" 1
# --- 3. a copy into a folder renamed while online ------------------------------
check "copy: State idle" wait_state idle 20
msg_save "$USER1" INBOX "<c1@renamed.test>" 300 || bail "doveadm save into INBOX"
check "copy: the INBOX message synced" eventually 10 sh -c "\"$CPMCTL\" list a INBOX | grep -q ."
cid=$("$CPMCTL" list a INBOX | sed -n 1p | cut -f1)
[ -n "$cid" ] || bail "no message in INBOX"
check "copy: State idle again" wait_state idle 20
check "server: RENAME Proj3 Proj4" da mailbox rename -u "$USER1" Proj3 Proj4
# copies FOLDER: how many messages of FOLDER are <c1@renamed.test> on the server
copies() { da search -u "$USER1" mailbox "$1" header Message-ID "<c1@renamed.test>" | wc -l; }
has_copy() { test "$(copies "$1")" = 1; }
: >"$WORK/daemon.log"
"$OP" --db "$WORK/store.db" copy Proj3 "$cid" >/dev/null || bail "cpmsync-op copy (online)"
t0=$SECONDS
"$CPMCTL" flag a INBOX "$cid" +\\Flagged || bail "cpmctl flag (copy)"
check "copy: the copy reached Proj4 (within 20 s; the back-off is 60 s)" within 20 has_copy Proj4
echo "# reached Proj4 after $((SECONDS - t0)) s"
check "copy: the run without LIST had the UID COPY answered [TRYCREATE]" \
	grep -qF "the local changes of Proj3 wait for a full sync" "$WORK/daemon.log"
check "copy: nothing pending" eventually 10 nothing_pending
expect "copy: no failed operation" "$("$CPMCTL" failed a)" ""
expect "copy: the folder is Proj4 here" "$("$CPMCTL" folders a | cut -f1 | grep '^Proj')" Proj4
no_refusal copy
expect "copy: one copy in Proj4" "$(copies Proj4)" 1
# --- 4. a folder the server refuses to SELECT: said once, and why ------------------
check "server: create Locked" da mailbox create -u "$USER1" Locked
check "server: Locked may only be looked up (ACL owner lookup)" \
	da acl set -u "$USER1" Locked owner lookup
: >"$WORK/daemon.log"
expect "locked: a full sync" "$("$CPMCTL" sync --timeout 30 a 2>&1)" "a: ok"
expect "locked: another full sync" "$("$CPMCTL" sync --timeout 30 a 2>&1)" "a: ok"
locked='cpm-syncd: a: skipping folder Locked: the server refuses to select it: \[NOPERM\] Permission denied \([0-9.]+ \+ [0-9. +]+ secs\)\.'
expect "locked: warned once, saying why" \
	"$(grep -cxE "$locked \(warned once while the store is open\)" "$WORK/daemon.log")" 1
expect "locked: the second sync's is a debug line (-v)" \
	"$(grep -cxE "$locked" "$WORK/daemon.log")" 1
# --- 5. a message stored into a folder renamed while online -------------------------
check "append: State idle" wait_state idle 20
check "server: RENAME Proj4 Proj5" da mailbox rename -u "$USER1" Proj4 Proj5
printf 'Message-ID: <a1@renamed.test>\r\nSubject: stored\r\n\r\nbody\r\n' >"$WORK/a1.eml"
# stored FOLDER: how many messages of FOLDER are <a1@renamed.test> on the server
stored() { da search -u "$USER1" mailbox "$1" header Message-ID "<a1@renamed.test>" | wc -l; }
has_stored() { test "$(stored "$1")" = 1; }
: >"$WORK/daemon.log"
"$OP" --db "$WORK/store.db" store a Proj4 "$WORK/a1.eml" >/dev/null || bail "cpmsync-op store"
t0=$SECONDS
"$CPMCTL" flag a INBOX "$cid" -\\Flagged || bail "cpmctl flag (append)"
check "append: the message reached Proj5 (within 20 s; the back-off is 60 s)" within 20 has_stored Proj5
echo "# reached Proj5 after $((SECONDS - t0)) s"
check "append: the run without LIST had the APPEND answered [TRYCREATE]" \
	grep -qF "the local changes of Proj4 wait for a full sync" "$WORK/daemon.log"
check "append: nothing pending" eventually 10 nothing_pending
expect "append: no failed operation" "$("$CPMCTL" failed a)" ""
expect "append: the folder is Proj5 here" "$("$CPMCTL" folders a | cut -f1 | grep '^Proj')" Proj5
no_refusal append
expect "append: one message in Proj5" "$(stored Proj5)" 1
finish
