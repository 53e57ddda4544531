#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A folder another user shared (other_namespaces = show), whose access is
# taken away while a change waits for it.  The tester's report: bob's
# `doveadm acl delete -u bob Shared2 user=alice` with alice's Store and
# flag change queued was logged as "folder #Users/bob/Shared2 was deleted
# on the server while local changes waited for it: creating it again",
# the sync sent a CREATE into bob's namespace (refused, NOPERM), and
# `cpmctl failed` listed a create-folder alice never asked for plus "not
# sent: depends on failed operation N".  Now the folder is not made
# again: no CREATE is sent, the log says the folder is no longer listed
# (access lost, or deleted by its owner), and the two changes are failed
# operations saying so; a second sync says nothing more and sends nothing
# for it.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init


dc_start srv
da mailbox create -u "$USER2" Shared2 || bail "doveadm mailbox create Shared2 for $USER2"
msg_save "$USER2" Shared2 "<shared.1@acl.test>" 300 || bail "doveadm save into Shared2"
da acl set -u "$USER2" Shared2 "user=$USER1" lookup read write write-seen insert ||
	bail "doveadm acl set: $USER2 shares Shared2 with $USER1"

C=$WORK/acl.conf
DB=$WORK/acl.db
write_conf "$C" "$DB"
echo "other_namespaces = show" >>"$C" || bail "other_namespaces = show"
check "first sync with other_namespaces = show" sync_once "$C" "$WORK/s1.log"
F="#Users/$USER2/Shared2"
id=$("$OP" --db "$DB" find a "$F" "<shared.1@acl.test>") || bail "<shared.1@acl.test> not synced into $F"
ok "bob's message synced into $F"

# Offline: a flag on bob's message and a Store into the folder.
check "a flag queued in $F" "$OP" --db "$DB" flags "$id" -- +kwLost
msg_text "<queued@acl.test>" 300 >"$WORK/queued.eml" || bail "write queued.eml"
"$OP" --db "$DB" store a "$F" "$WORK/queued.eml" >/dev/null || bail "store into $F"
da acl delete -u "$USER2" Shared2 "user=$USER1" || bail "doveadm acl delete"

check "the sync after the access is lost succeeds" sync_once "$C" "$WORK/s2.log"
check "the log says the folder is no longer listed and why it may be" grep -qF \
	"a: folder $F is no longer listed by the server (access to it lost, or deleted by its owner) while 2 local changes waited for it: not created again, as it is not this account's; they failed (cpmctl failed)" \
	"$WORK/s2.log"
if grep -qF "creating it again" "$WORK/s2.log"; then
	not_ok "the log does not say the folder is created again"
else
	ok "the log does not say the folder is created again"
fi
if grep -E ' C: [^ ]+ CREATE ' "$WORK/s2.log"; then
	not_ok "no CREATE sent"
else
	ok "no CREATE sent"
fi
expect "nothing left queued" \
	"$(sqlite3 -readonly "$DB" "SELECT count(*) FROM journal WHERE failed = 0")" 0
expect "the two changes are failed operations, with the reason" \
	"$(sqlite3 -readonly "$DB" "SELECT op || ': ' || refused FROM journal WHERE failed = 1 ORDER BY id")" \
	"flags: not sent: the folder $F is no longer listed by the server: access to it was lost, or its owner deleted it
append: not sent: the folder $F is no longer listed by the server: access to it was lost, or its owner deleted it"
expect "no create-folder operation" \
	"$(sqlite3 -readonly "$DB" "SELECT count(*) FROM journal WHERE op = 'create_folder'")" 0
expect "bob's Shared2 unchanged on the server (1 message)" \
	"$(da search -u "$USER2" mailbox Shared2 ALL | wc -l)" 1
expect "nothing landed in a folder of $USER1's own" \
	"$(da search -u "$USER1" mailbox '*' header message-id "<queued@acl.test>" | wc -l)" 0

check "a second sync succeeds" sync_once "$C" "$WORK/s3.log"
if grep -qF "is no longer listed" "$WORK/s3.log"; then
	not_ok "the second sync does not say it again"
else
	ok "the second sync does not say it again"
fi
if grep -E ' C: [^ ]+ (CREATE|APPEND|UID STORE) ' "$WORK/s3.log"; then
	not_ok "the second sync sends nothing for it"
else
	ok "the second sync sends nothing for it"
fi

# The daemon with the folder lost: it settles (idle), and does not sync
# again and again over a folder it keeps that LIST does not show.
dbus_setup
CONF=$C
start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "the daemon: State idle" wait_state idle 20
n1=$(grep -c ': sync done (' "$WORK/daemon.log")
check "the daemon: its first sync is logged ($n1)" test "$n1" -ge 1
sleep 5
n2=$(grep -c ': sync done (' "$WORK/daemon.log")
expect "the daemon: no sync after the first within 5 s" "$n2" "$n1"
expect "the daemon: still idle" "$(acct State)" idle
if grep -E ' C: [^ ]+ CREATE ' "$WORK/daemon.log"; then
	not_ok "the daemon sends no CREATE"
else
	ok "the daemon sends no CREATE"
fi

finish
