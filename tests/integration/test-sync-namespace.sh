#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Namespaces (RFC 2342; issue 12) on the server SERVER names (lib-sync.sh).
# Local names are relative to the personal namespace's prefix ("INBOX." in
# Cyrus's classic namespace, "" on Cyrus alt and Dovecot):
# 1. folders made on the server are Work and Work/Sync in the dump (not
#    INBOX/Work/Sync), and the dump equals the server;
# 2. folders made locally (a top-level one, the CPM root Default and a
#    conversation under it) land under the prefix, as the server's own LIST
#    shows, and no operation is left pending or failed;
# 3. a store made before namespaces were known (names INBOX/Work..., the
#    namespace not recorded) keeps its local ids and a queued flag change on
#    its next sync: the folders are renamed in the store, nothing is
#    downloaded again, the change reaches the server;
# 4. (Cyrus) a folder another user shares is hidden by default and, with
#    other_namespaces = show, synced as "#Users/bob/Team";
# 5. a local name the server cannot hold (Cyrus classic: '.');
# 6. (Cyrus) a change queued for bob's shared folder, then other_namespaces
#    = hide: it waits (sent, its name would make a folder of alice's own),
#    and goes to bob's folder once shown again;
# 7. a folder the folders setting no longer matches, with changes queued
#    for it: kept, its changes sent as they are (not re-created: Cyrus
#    refuses a CREATE of what exists without a code, for ever), then
#    dropped locally.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init

dc_start srv
CONF=$WORK/ns.conf
DB=$WORK/ns.db
write_conf "$CONF" "$DB"

# The server's prefix and delimiter, as the test servers are set up.
case $SERVER in
cyrus-classic) PFX=INBOX. D=. ;;
*) PFX='' D=/ ;;
esac
# server_list: the server's own names (its LIST, as sent), sorted
server_list() {
	if is_cyrus; then
		da raw "$USER1" LIST '""' '"*"' | sed -n 's/^\* LIST ([^)]*) "[^"]*" //p' |
			sed 's/^"\(.*\)"$/\1/' | LC_ALL=C sort
	else
		doveadm -c "$DOVECOT_CONF" mailbox list -u "$USER1" | LC_ALL=C sort
	fi
}
# has_server NAME: the server lists NAME exactly
has_server() {
	local list
	list=$(server_list) || return 1
	grep -qxF -- "$1" <<<"$list" && return 0
	echo "    the server does not list '$1'; it lists:"
	local l
	while IFS= read -r l; do echo "      $l"; done <<<"$list"
	return 1
}
# dump_folders: the names of the folders that hold messages in the dump,
# sorted and unique
dump_folders() {
	"$CPMCTL" dump --db "$DB" a | cut -f2 | LC_ALL=C sort -u
}

# --- 1. server -> local -------------------------------------------------------
da mailbox create -u "$USER1" Work Work/Sync || bail "cannot create Work and Work/Sync"
msg_save "$USER1" Work "<w.1@ns.test>" 300 || bail "cannot save into Work"
msg_save "$USER1" Work/Sync "<s.1@ns.test>" 300 || bail "cannot save into Work/Sync"
msg_save "$USER1" Work/Sync "<s.2@ns.test>" 300 || bail "cannot save into Work/Sync"
check "the server has ${PFX}Work${D}Sync" has_server "${PFX}Work${D}Sync"
if sync_once "$CONF" "$WORK/sync1.log" && compare "$DB"; then
	ok "first sync equals the server"
else
	not_ok "first sync equals the server"
fi
got=$(dump_folders)
want=$(printf '%s\n' Work Work/Sync)
if [ "$got" = "$want" ]; then
	ok "the dump names the folders Work and Work/Sync"
else
	not_ok "the dump names the folders Work and Work/Sync"
	echo "    got: $(tr '\n' ' ' <<<"$got")"
fi

# --- 2. local -> server -------------------------------------------------------
printf 'From: a@ns.test\r\nMessage-ID: <cpm.1@ns.test>\r\nSubject: hi\r\n\r\nhello\r\n' \
	>"$WORK/cpm.eml"
if "$OP" --db "$DB" mkdir a TopLevel >/dev/null &&
	"$OP" --db "$DB" mkdir a Default >/dev/null &&
	"$OP" --db "$DB" mkdir a Default/conv-NS >/dev/null &&
	"$OP" --db "$DB" store a Default/conv-NS "$WORK/cpm.eml" >/dev/null; then
	ok "TopLevel, Default and Default/conv-NS made locally, a message stored"
else
	not_ok "TopLevel, Default and Default/conv-NS made locally, a message stored"
fi
check "the sync that sends them succeeds" sync_once "$CONF" "$WORK/sync2.log"
check "TopLevel is ${PFX}TopLevel on the server" has_server "${PFX}TopLevel"
check "the CPM root Default is ${PFX}Default on the server" has_server "${PFX}Default"
check "Default/conv-NS is ${PFX}Default${D}conv-NS on the server" \
	has_server "${PFX}Default${D}conv-NS"
pending=$("$OP" --db "$DB" pending a)
if [ -z "$pending" ]; then
	ok "nothing pending or failed"
else
	not_ok "nothing pending or failed"
	echo "    $pending"
fi
if sync_once "$CONF" "$WORK/sync3.log" && compare "$DB"; then
	ok "the next sync equals the server"
else
	not_ok "the next sync equals the server"
fi

# --- 3. a store from before namespaces ------------------------------------------
# What an older cpm-syncd made in the classic namespace: the server's whole
# names (INBOX/Work/Sync), no namespace recorded.  On the other servers the
# names were already the same: only the record is missing.
old_base=
[ "$SERVER" = cyrus-classic ] && old_base=INBOX/
ids_before=$("$OP" --db "$DB" ids a Work/Sync | sort -n | tr '\n' ' ')
id1=$("$OP" --db "$DB" find a Work/Sync "<s.1@ns.test>")
sqlite3 "$DB" "UPDATE folder SET name = '$old_base' || name,
		server_name = '$old_base' || server_name WHERE name != 'INBOX';
	UPDATE account SET namespace = NULL;" || bail "cannot age the store"
if [ -n "$old_base" ]; then
	check "the aged store names it INBOX/Work/Sync" test "$("$OP" --db "$DB" folder a INBOX/Work/Sync)" -gt 0
fi
# A change queued under the old names.
check "a flag change queued" "$OP" --db "$DB" flags "$id1" -- +\$Namespaced
if sync_once "$CONF" "$WORK/sync4.log" && compare "$DB"; then
	ok "the sync after the upgrade equals the server"
else
	not_ok "the sync after the upgrade equals the server"
fi
ids_after=$("$OP" --db "$DB" ids a Work/Sync | sort -n | tr '\n' ' ')
if [ -n "$ids_before" ] && [ "$ids_before" = "$ids_after" ]; then
	ok "Work/Sync keeps its local ids ($ids_after)"
else
	not_ok "Work/Sync keeps its local ids"
	echo "    before: $ids_before after: $ids_after"
fi
if [ -n "$old_base" ]; then
	n=$(grep -c 'renamed to be relative to the personal namespace' "$WORK/sync4.log")
	check "the folders were renamed in the store, once (log: $n)" test "$n" = 1
fi
flags=$(da -f tab fetch -u "$USER1" 'uid flags hdr.message-id' mailbox Work/Sync |
	awk -F'\t' '$3 == "<s.1@ns.test>" {print $2}')
case " $flags " in
*" \$Namespaced "* | *" \$namespaced "*) ok "the queued flag reached the server ($flags)" ;;
*)
	not_ok "the queued flag reached the server"
	echo "    flags: '$flags'"
	;;
esac
got=$(sqlite3 "$DB" "SELECT namespace FROM account WHERE name = 'a'")
want=
[ "$SERVER" = cyrus-classic ] && want=INBOX/
check "the store records the namespace '$want'" test "$got" = "$want"

# --- 4. other users' namespace (Cyrus: SETACL as the owner) -------------------
if is_cyrus; then
	team=${PFX}Team
	if da mailbox create -u "$USER2" Team &&
		msg_save "$USER2" Team "<team.1@ns.test>" 300 &&
		da raw "$USER2" SETACL "\"$team\"" "$USER1" lrs >/dev/null; then
		ok "$USER2 shares Team with $USER1"
	else
		not_ok "$USER2 shares Team with $USER1"
	fi
	if [ "$SERVER" = cyrus-classic ]; then
		other="user.$USER2.Team"
	else
		other="Other Users/$USER2/Team"
	fi
	check "$USER1's LIST has $other" has_server "$other"
	check "a sync with other_namespaces hidden succeeds" sync_once "$CONF" "$WORK/sync5.log"
	n=$("$CPMCTL" dump --db "$DB" a | grep -c 'team\.1@ns\.test')
	check "hidden by default: not in the dump ($n)" test "$n" = 0
	CONF2=$WORK/ns-show.conf
	write_conf "$CONF2" "$WORK/ns-show.db"
	echo "other_namespaces = show" >>"$CONF2"
	check "a sync with other_namespaces = show succeeds" sync_once "$CONF2" "$WORK/sync6.log"
	got=$("$CPMCTL" dump --db "$WORK/ns-show.db" a | awk -F'\t' '/team\.1@ns\.test/ {print $2}')
	check "shown as '#Users/$USER2/Team' ($got)" test "$got" = "#Users/$USER2/Team"
fi

# --- 5. a local name the server cannot hold --------------------------------------
# Cyrus classic: '.' is its delimiter, so "Loc.Dot" (or a CPM peer such as
# sip:bob@example.com) cannot be sent at all.  Once a sync has seen the
# delimiter, the store refuses such a name when it is made.  Before (a
# store from before version 28, or a folder made before the first sync,
# as here with the delimiter forgotten) it is accepted, and its CREATE
# fails at replay: taken for "out of memory", that stopped the account
# for good; now it is a failed operation ([CANNOT]), what depends on it
# waits with it, and the rest goes on.
if [ "$SERVER" = cyrus-classic ]; then
	check "the sync recorded the server's delimiter" \
		test "$(sqlite3 -readonly "$DB" "SELECT delimiter FROM account WHERE name = 'a'")" = .
	check "Loc.Dot is refused when made: exit 1" \
		bash -c "! '$OP' --db '$DB' mkdir a Loc.Dot 2>'$WORK/mkdir-dot.err'"
	check "...saying why" test "$(cat "$WORK/mkdir-dot.err")" = \
		"cpmsync-op: mkdir: \"Loc.Dot\" cannot be a folder name on this server: its hierarchy delimiter '.' is not allowed inside a level"
	check "...and nothing queued" test \
		"$(sqlite3 -readonly "$DB" "SELECT count(*) FROM journal WHERE op = 'create_folder'")" = 0
	sqlite3 "$DB" "UPDATE account SET delimiter = NULL" || bail "cannot forget the delimiter"
	printf 'From: a@ns.test\r\nMessage-ID: <dot.1@ns.test>\r\nSubject: dot\r\n\r\nx\r\n' \
		>"$WORK/dot.eml"
	check "Loc.Dot made locally while the delimiter is unknown" "$OP" --db "$DB" mkdir a Loc.Dot
	check "a message stored into Loc.Dot" "$OP" --db "$DB" store a Loc.Dot "$WORK/dot.eml"
	id2=$("$OP" --db "$DB" find a Work/Sync "<s.2@ns.test>")
	check "a flag change queued in Work/Sync" "$OP" --db "$DB" flags "$id2" -- +\$AfterDot
	check "the sync succeeds" sync_once "$CONF" "$WORK/sync7.log"
	check "no 'out of memory'" bash -c "! grep -q 'out of memory' '$WORK/sync7.log'"
	refusal=$(sqlite3 -readonly "$DB" "SELECT op || ' ' || failed || ' ' || code || ' ' || refused
		FROM journal WHERE op = 'create_folder'")
	check "its CREATE is a failed operation saying why ($refusal)" test "$refusal" = \
		"create_folder 1 CANNOT not sent: \"Loc.Dot\" cannot be a folder name on this server: its hierarchy delimiter '.' is not allowed inside a level"
	check "...logged as not sent, not as the server's refusal" grep -qF \
		"a: CREATE not sent: [CANNOT] \"Loc.Dot\" cannot be a folder name on this server: its hierarchy delimiter '.' is not allowed inside a level (a failed operation now)" "$WORK/sync7.log"
	check "the message waits with it (queued, not sent)" test \
		"$(sqlite3 -readonly "$DB" "SELECT count(*) FROM journal WHERE op = 'append'")" = 1
	flags=$(server_dump "$USER1" | awk -F'\t' '$5 == "<s.2@ns.test>" { print $4 }')
	check "the flag change behind it reached the server ($flags)" grep -qF '$AfterDot' <<<"$flags"
fi

# --- 6. a change queued for another user's folder, then its namespace hidden ------
if is_cyrus; then
	SHOWDB=$WORK/ns-show.db
	check "$USER2 lets $USER1 insert into Team" da raw "$USER2" SETACL "\"$team\"" "$USER1" lrswi
	printf 'From: a@ns.test\r\nMessage-ID: <forteam.1@ns.test>\r\nSubject: team\r\n\r\nx\r\n' \
		>"$WORK/forteam.eml"
	check "stored locally into #Users/$USER2/Team" \
		"$OP" --db "$SHOWDB" store a "#Users/$USER2/Team" "$WORK/forteam.eml"
	CONF3=$WORK/ns-hide.conf
	write_conf "$CONF3" "$SHOWDB" # other_namespaces hidden: the default
	check "hidden again: the sync succeeds" sync_once "$CONF3" "$WORK/sync8.log"
	check "...sending no CREATE or APPEND" \
		bash -c "! grep -E ' C: [^ ]+ (CREATE|APPEND) ' '$WORK/sync8.log'"
	no_own_users() { ! server_list | grep -F '#Users'; }
	check "...making no folder of $USER1's own" no_own_users
	check "the change waits, queued" test "$(sqlite3 -readonly "$SHOWDB" \
		"SELECT count(*) FROM journal WHERE op = 'append' AND failed = 0")" = 1
	check "the log says why and what to do" grep -qF \
		"a: 1 local change waits for folders of a namespace other_namespaces = hide leaves out (#Users/$USER2/Team): set other_namespaces = show to send them" \
		"$WORK/sync8.log"
	check "the folder stays in the store while it waits" \
		"$OP" --db "$SHOWDB" folder a "#Users/$USER2/Team"
	check "shown again: the sync succeeds" sync_once "$CONF2" "$WORK/sync9.log"
	n=$(da -f tab fetch -u "$USER2" 'uid flags hdr.message-id' mailbox Team | grep -c 'forteam\.1@ns\.test')
	check "the message is in $USER2's Team, once ($n)" test "$n" = 1
	check "nothing is queued any more" test "$(sqlite3 -readonly "$SHOWDB" \
		"SELECT count(*) FROM journal")" = 0
fi

# --- 7. a folder the folders setting leaves out, changes queued for it ------------
check "Narrow made on the server" da mailbox create -u "$USER1" Narrow
check "with a message" msg_save "$USER1" Narrow "<narrow.1@ns.test>" 300
check "synced" sync_once "$CONF" "$WORK/sync10.log"
nid=$("$OP" --db "$DB" find a Narrow "<narrow.1@ns.test>")
check "a flag change queued in Narrow" "$OP" --db "$DB" flags "$nid" -- +\$Narrowed
printf 'From: a@ns.test\r\nMessage-ID: <narrow.2@ns.test>\r\nSubject: n\r\n\r\nx\r\n' \
	>"$WORK/narrow.eml"
check "a message stored into Narrow" "$OP" --db "$DB" store a Narrow "$WORK/narrow.eml"
echo "folders = INBOX Work*" >>"$CONF"
check "folders = INBOX Work*: the sync succeeds" sync_once "$CONF" "$WORK/sync11.log"
check "...sending no CREATE" bash -c "! grep -E ' C: [^ ]+ CREATE ' '$WORK/sync11.log'"
check "...nor calling Narrow gone from the server" \
	bash -c "! grep -F 'Narrow was deleted on the server' '$WORK/sync11.log'"
check "the log says it is kept for its changes" grep -qF \
	"a: folder Narrow is no longer synced (not matched by the account's folders setting), but local changes wait for it: kept until they are sent" \
	"$WORK/sync11.log"
n=$(da -f tab fetch -u "$USER1" 'uid flags hdr.message-id' mailbox Narrow | grep -c 'narrow\.2@ns\.test')
check "the stored message reached Narrow, once ($n)" test "$n" = 1
flags=$(da -f tab fetch -u "$USER1" 'uid flags hdr.message-id' mailbox Narrow |
	awk -F'\t' '$3 == "<narrow.1@ns.test>" {print $2}')
check "the flag change reached it ($flags)" grep -qiF '$Narrowed' <<<"$flags"
check "nothing is queued for Narrow any more" test "$(sqlite3 -readonly "$DB" "SELECT count(*)
	FROM journal j JOIN folder f ON f.id = j.folder_id WHERE f.name = 'Narrow'")" = 0
check "the next sync succeeds" sync_once "$CONF" "$WORK/sync12.log"
check "...and drops Narrow locally, saying so" grep -qF \
	"a: folder Narrow is no longer synced (not matched by the account's folders setting): its local copy is dropped" \
	"$WORK/sync12.log"
check "Narrow is no longer in the store" test "$("$OP" --db "$DB" folder a Narrow 2>&1)" = \
	"cpmsync-op: folder: account 'a' has no folder 'Narrow'"
check "...and still on the server" has_server "${PFX}Narrow"
finish
