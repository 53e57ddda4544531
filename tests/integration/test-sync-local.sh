#!/usr/bin/env bash
# Local changes queued through the library's ops API (tests/tools/cpmsync-op)
# are replayed to a real Dovecot by `cpm-syncd --once`: stores (APPEND),
# flag changes, delete + expunge, copy, move, folders created, renamed and
# deleted, metadata; and conflicts with concurrent server-side changes
# (per-flag merge; a message expunged on the server under a pending flag
# change).  After each run the store must equal the server (read with
# doveadm), the server is checked directly, and nothing stays pending.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init

dc_start dc
dc_seed
da mailbox create -u "$USER1" "Entwürfe" || bail "doveadm mailbox create"
CONF=$WORK/local.conf
DB=$WORK/local.db
write_conf "$CONF" "$DB"
op() { "$OP" --db "$DB" "$@"; }
n=0

# sync_check NAME: --once, store equals server, nothing pending
sync_check() {
	local what=$1
	n=$((n + 1))
	if sync_once "$CONF" "$WORK/sync$n.log"; then
		ok "$what: cpm-syncd --once succeeds"
	else
		not_ok "$what: cpm-syncd --once succeeds"
	fi
	check "$what: store equals the server" compare "$DB"
	local p
	p=$(op pending a)
	if [ -z "$p" ]; then
		ok "$what: nothing pending"
	else
		not_ok "$what: nothing pending: $(wc -l <<<"$p") left"
		printf '%s\n' "$p" | head -n 5 | sed 's/^/    /'
	fi
}
# server_flags FOLDER MSGID: the flags (bytewise sorted, no \Recent) of the
# message(s) with that Message-ID on the server, one line each
server_flags() {
	server_dump "$USER1" | awk -F'\t' -v f="$1" -v m="$2" '$2 == f && $5 == m { print $4 }'
}
# server_count FOLDER MSGID: how many messages with that Message-ID
server_count() {
	server_dump "$USER1" | awk -F'\t' -v f="$1" -v m="$2" '$2 == f && $5 == m' | wc -l
}
# expect WHAT GOT WANT
# local_id FOLDER MSGID
local_id() { op find a "$1" "$2"; }

# conflicts LABEL: flags changed on both sides (per-flag merge), and a
# pending flag change on a message the server expunged
conflicts() {
	local L=$1 T=${1%%:*} cid cuid gid guid
	[ -n "$L" ] && L="$L: "
	msg_save "$USER1" INBOX "<conflict$T@sync.test>" 400 '\Seen' '\Answered'
	sync_check "${L}conflict setup"
	cid=$(local_id INBOX "<conflict$T@sync.test>")
	op flags "$cid" -- +'\Flagged' -'\Seen' >/dev/null || not_ok "op flags conflict"
	cuid=$(da search -u "$USER1" mailbox INBOX header message-id "conflict$T@sync.test" | awk '{print $2}')
	da flags add -u "$USER1" '$Work' mailbox INBOX uid "$cuid"
	da flags remove -u "$USER1" '\Answered' mailbox INBOX uid "$cuid"
	sync_check "${L}flag conflict"
	expect "${L}per-flag merge: local +\\Flagged -\\Seen and server +\$Work -\\Answered" \
		"$(server_flags INBOX "<conflict$T@sync.test>")" '$Work \Flagged'

	# a pending flag change on a message the server expunged
	msg_save "$USER1" Archive "<gone$T@sync.test>" 400
	sync_check "${L}expunge conflict setup"
	gid=$(local_id Archive "<gone$T@sync.test>")
	op flags "$gid" -- +'\Flagged' >/dev/null || not_ok "op flags gone"
	guid=$(da search -u "$USER1" mailbox Archive header message-id "gone$T@sync.test" | awk '{print $2}')
	da expunge -u "$USER1" mailbox Archive uid "$guid"
	sync_check "${L}flag change on a message expunged on the server"
	expect "${L}the message stays gone" "$(server_count Archive "<gone$T@sync.test>")" 0
	if local_id Archive "<gone$T@sync.test>" >/dev/null 2>&1; then
		not_ok "${L}the message is gone locally too"
	else
		ok "${L}the message is gone locally too"
	fi
}

# INBOX before the first sync: the store has no row for it yet; creating it
# adds it as every server has it (no CREATE queued), a message can be
# stored into it, and the first sync adopts it and appends the message.
inbox_id=$(op mkdir a INBOX) || not_ok "op mkdir a INBOX before the first sync"
msg_text "<early@sync.test>" 400 "before the first sync" >"$WORK/m0"
early=$(op store a INBOX "$WORK/m0") || not_ok "store into INBOX before the first sync"
expect "INBOX made before the first sync: only the APPEND is queued" \
	"$(op pending a | cut -f3,4 | tr '\t\n' ' ;')" "append $inbox_id;"
sync_check "initial sync"
expect "INBOX made before the first sync: the message once on the server" \
	"$(server_count INBOX '<early@sync.test>')" 1
expect "INBOX made before the first sync: the same local folder and message" \
	"$(op folder a INBOX) $(op find a INBOX '<early@sync.test>')" "$inbox_id $early"

# --- store (APPEND) ---------------------------------------------------------
msg_text "<local.1@sync.test>" 500 "local one" >"$WORK/m1"
msg_text "<local.2@sync.test>" 4000 "local two" >"$WORK/m2"
msg_text "<local.3@sync.test>" 25000 "local drei" >"$WORK/m3"
id1=$(op store a INBOX "$WORK/m1" '\Seen') || not_ok "store m1"
id2=$(op store a "Entwürfe" "$WORK/m2" '\Flagged' '$Work') || not_ok "store m2"
id3=$(op store a Archive "$WORK/m3") || not_ok "store m3"
"$CPMCTL" dump --db "$DB" a >"$WORK/before.dump"
expect "stored messages are in the store with uid 0 before the sync" \
	"$(awk -F'\t' '$3 == 0' "$WORK/before.dump" | cut -f2,4,5 | tr '\t\n' '|;')" \
	"Archive||<local.3@sync.test>;Entwürfe|\$Work \\Flagged|<local.2@sync.test>;INBOX|\\Seen|<local.1@sync.test>;"
check "3 changes pending before the sync" test "$(op pending a | wc -l)" -ge 3
sync_check "store"
expect "m1 on the server once, \\Seen" "$(server_flags INBOX '<local.1@sync.test>')" '\Seen'
expect "m2 on the server once in Entwürfe, \$Work \\Flagged" \
	"$(server_flags "Entwürfe" '<local.2@sync.test>')" '$Work \Flagged'
expect "m3 on the server once in Archive, no flags" "$(server_count Archive '<local.3@sync.test>')" 1
da fetch -u "$USER1" text mailbox "Entwürfe" header message-id local.2@sync.test |
	tail -n +2 | tr -d '\r' >"$WORK/m2.server"
if tr -d '\r' <"$WORK/m2" | cmp -s - "$WORK/m2.server"; then
	ok "m2 stored on the server byte for byte"
else
	not_ok "m2 stored on the server byte for byte"
fi

# --- flags ------------------------------------------------------------------
seed2=$(da -f tab fetch -u "$USER1" 'hdr.message-id' mailbox INBOX uid 2 | tail -n +2)
sid2=$(local_id INBOX "$seed2")
op flags "$id1" "$sid2" -- +'\Answered' -'\Seen' +'$Label1' >/dev/null || not_ok "op flags"
op flags "$id2" -- -'$Work' +kw-local >/dev/null || not_ok "op flags m2"
sync_check "flags"
expect "m1: +\\Answered +\$Label1 -\\Seen" "$(server_flags INBOX '<local.1@sync.test>')" '$Label1 \Answered'
expect "seeded INBOX/2: \\Flagged kept, +\\Answered +\$Label1 -\\Seen" \
	"$(server_flags INBOX "$seed2")" '$Label1 \Answered \Flagged'
expect "m2: -\$Work +kw-local" "$(server_flags "Entwürfe" '<local.2@sync.test>')" '\Flagged kw-local'

# --- delete + expunge: only our messages go -----------------------------------
msg_save "$USER1" INBOX "<other.deleted@sync.test>" 300
sync_check "a server message arrives"
op delete "$id1" >/dev/null || not_ok "op delete"
op expunge a INBOX >/dev/null || not_ok "op expunge"
# After the local expunge, before the sync: another client marks a message
# \Deleted.  Our expunge must not take it with it (UID EXPUNGE, not EXPUNGE).
ouid=$(da search -u "$USER1" mailbox INBOX header message-id other.deleted@sync.test | awk '{print $2}')
da flags add -u "$USER1" '\Deleted' mailbox INBOX uid "$ouid"
sync_check "delete + expunge"
expect "m1 expunged on the server" "$(server_count INBOX '<local.1@sync.test>')" 0
expect "the other \\Deleted message survives" "$(server_flags INBOX '<other.deleted@sync.test>')" '\Deleted'

# --- copy and move between folders ---------------------------------------------
op copy INBOX "$id3" >"$WORK/copy.ids" || not_ok "op copy"
op move Archive "$id2" >"$WORK/move.ids" || not_ok "op move"
check "copy and move print new ids" test -s "$WORK/copy.ids" -a -s "$WORK/move.ids"
sync_check "copy + move"
expect "copy: m3 still in Archive" "$(server_count Archive '<local.3@sync.test>')" 1
expect "copy: m3 now also in INBOX" "$(server_count INBOX '<local.3@sync.test>')" 1
expect "move: m2 gone from Entwürfe" "$(server_count "Entwürfe" '<local.2@sync.test>')" 0
expect "move: m2 in Archive with its flags" "$(server_flags Archive '<local.2@sync.test>')" '\Flagged kw-local'

# --- folders ---------------------------------------------------------------
op mkdir a "Neu Ordner" >/dev/null || not_ok "op mkdir"
op mkdir a "Neu Ordner/Kind ü ✓" >/dev/null || not_ok "op mkdir child"
msg_text "<local.4@sync.test>" 800 "in new folder" >"$WORK/m4"
op store a "Neu Ordner/Kind ü ✓" "$WORK/m4" '\Draft' >/dev/null || not_ok "store into new folder"
op mkdir a "Leer" >/dev/null || not_ok "op mkdir Leer"
sync_check "mkdir"
selectable_folders "$USER1" >"$WORK/folders"
check "folders created on the server" grep -qxF "Neu Ordner/Kind ü ✓" "$WORK/folders"
check "empty folder created on the server" grep -qxF "Leer" "$WORK/folders"
expect "message stored into the new folder" "$(server_flags "Neu Ordner/Kind ü ✓" '<local.4@sync.test>')" '\Draft'
op rename a "Projects/cpmsync" "Projekte Ä" >/dev/null || not_ok "op rename"
op rmdir a "Leer" >/dev/null || not_ok "op rmdir"
# meanwhile a message arrives on the server in the folder being renamed
msg_save "$USER1" "Projects/cpmsync" "<arrived@sync.test>" 600
sync_check "rename + rmdir"
selectable_folders "$USER1" >"$WORK/folders"
check "renamed folder exists on the server" grep -qxF "Projekte Ä" "$WORK/folders"
check "old name is gone on the server" test -z "$(grep -xF "Projects/cpmsync" "$WORK/folders")"
check "removed folder is gone on the server" test -z "$(grep -xF "Leer" "$WORK/folders")"
check "renamed folder kept its messages (one arrived meanwhile)" test "$(da search -u "$USER1" mailbox "Projekte Ä" all | wc -l)" -eq 2

# --- a folder deleted here while another client made it again on the server ------
# The DELETE goes by name; the folder now under that name is another one
# (another UIDVALIDITY) with another client's message: it must stay.
op mkdir a "Wieder" >/dev/null || not_ok "op mkdir Wieder"
sync_check "mkdir Wieder"
op rmdir a "Wieder" >/dev/null || not_ok "op rmdir Wieder"
da mailbox delete -u "$USER1" "Wieder" || not_ok "server: delete Wieder"
sleep 1 # Dovecot's UIDVALIDITY is the creation time, in seconds
da mailbox create -u "$USER1" "Wieder" || not_ok "server: create Wieder again"
msg_save "$USER1" "Wieder" "<again@sync.test>" 500 || not_ok "server: a message in the new Wieder"
sync_check "a folder made again on the server meanwhile"
expect "the other client's Wieder and its message stay" "$(server_count "Wieder" '<again@sync.test>')" 1

# --- two folders swap names here by way of a third ------------------------------
# Replayed straight to the folders' current names, Links -> Rechts found
# Rechts still there and Rechts -> Links found Links: both refused, for
# ever.  The first RENAME goes to the name its step gave (Tausch).
op mkdir a "Links" >/dev/null || not_ok "op mkdir Links"
op mkdir a "Rechts" >/dev/null || not_ok "op mkdir Rechts"
sync_check "mkdir Links Rechts"
msg_save "$USER1" "Links" "<links@sync.test>" 500 || not_ok "server: a message in Links"
msg_save "$USER1" "Rechts" "<rechts@sync.test>" 500 || not_ok "server: a message in Rechts"
sync_check "a message in each"
op rename a "Links" "Tausch" >/dev/null || not_ok "op rename Links Tausch"
op rename a "Rechts" "Links" >/dev/null || not_ok "op rename Rechts Links"
op rename a "Tausch" "Rechts" >/dev/null || not_ok "op rename Tausch Rechts"
sync_check "two folder names swapped"
expect "Links's message is in Rechts on the server" "$(server_count Rechts '<links@sync.test>')" 1
expect "Rechts's message is in Links on the server" "$(server_count Links '<rechts@sync.test>')" 1
selectable_folders "$USER1" >"$WORK/folders"
check "no folder Tausch left on the server" test -z "$(grep -xF "Tausch" "$WORK/folders")"

# --- a sub-folder renamed here, then its parent ---------------------------------
# Replayed to its current name (Unten/Umbenannt), the sub-folder's RENAME
# made Unten on the server before the parent's RENAME to it.
op mkdir a "Oben" >/dev/null || not_ok "op mkdir Oben"
op mkdir a "Oben/Kind" >/dev/null || not_ok "op mkdir Oben/Kind"
op mkdir a "Oben/Bleibt" >/dev/null || not_ok "op mkdir Oben/Bleibt"
sync_check "mkdir Oben Oben/Kind Oben/Bleibt"
msg_save "$USER1" "Oben/Kind" "<kind@sync.test>" 500 || not_ok "server: a message in Oben/Kind"
sync_check "a message in Oben/Kind"
op rename a "Oben/Kind" "Oben/Umbenannt" >/dev/null || not_ok "op rename Oben/Kind"
op rename a "Oben" "Unten" >/dev/null || not_ok "op rename Oben"
sync_check "a sub-folder renamed, then its parent"
expect "the message is in Unten/Umbenannt on the server" \
	"$(server_count "Unten/Umbenannt" '<kind@sync.test>')" 1
selectable_folders "$USER1" >"$WORK/folders"
check "Unten/Bleibt on the server" grep -qxF "Unten/Bleibt" "$WORK/folders"
check "nothing left under Oben on the server" test -z "$(grep "^Oben" "$WORK/folders")"

# --- copy and move of a message not yet on the server --------------------------
msg_text "<local.5@sync.test>" 900 "copied before upload" >"$WORK/m5"
msg_text "<local.6@sync.test>" 900 "moved before upload" >"$WORK/m6"
id5=$(op store a INBOX "$WORK/m5" '$Work') || not_ok "store m5"
id6=$(op store a INBOX "$WORK/m6") || not_ok "store m6"
op copy "Projekte Ä" "$id5" >/dev/null || not_ok "op copy m5"
op move "Entwürfe" "$id6" >/dev/null || not_ok "op move m6"
sync_check "copy + move before upload"
expect "m5 in INBOX" "$(server_flags INBOX '<local.5@sync.test>')" '$Work'
expect "m5 copied into Projekte Ä" "$(server_flags "Projekte Ä" '<local.5@sync.test>')" '$Work'
expect "m6 not in INBOX" "$(server_count INBOX '<local.6@sync.test>')" 0
expect "m6 in Entwürfe once" "$(server_count "Entwürfe" '<local.6@sync.test>')" 1

conflicts ""

# --- server-side renames that cross, while local flag changes wait -----------
# A folder renamed away is known by its UIDVALIDITY, not by its old name,
# which another folder took (plan.c renamed_away()); matched by name, the
# flags waiting on both were dropped without a word.
for f in X2 Y2 W1; do
	da mailbox create -u "$USER1" "$f" || bail "doveadm mailbox create $f"
	msg_save "$USER1" "$f" "<in-$f@sync.test>" 300 || bail "doveadm save into $f"
done
sync_check "crossing renames: setup"
for f in X2 Y2 W1; do
	op flags "$(local_id "$f" "<in-$f@sync.test>")" -- +"kw$f" >/dev/null || not_ok "op flags in $f"
done
for step in "rename X2 Tmp2" "rename Y2 X2" "rename Tmp2 Y2" "rename W1 W1old" "create W1"; do
	# shellcheck disable=SC2086 # the step's words are doveadm's arguments
	set -- $step
	da mailbox "$1" -u "$USER1" "${@:2}" || bail "doveadm mailbox $step"
done
sync_check "crossing renames"
expect "X2 and Y2 swapped: X2's message (now in Y2) has its flag" \
	"$(server_flags Y2 '<in-X2@sync.test>')" 'kwX2'
expect "X2 and Y2 swapped: Y2's message (now in X2) has its flag" \
	"$(server_flags X2 '<in-Y2@sync.test>')" 'kwY2'
expect "W1 renamed W1old, a new W1: the message has its flag" \
	"$(server_flags W1old '<in-W1@sync.test>')" 'kwW1'

# --- metadata ----------------------------------------------------------------
op metadata a INBOX /private/comment hello >/dev/null || not_ok "op metadata"
op metadata a "" /private/comment "server wide" >/dev/null || not_ok "op metadata server"
sync_check "metadata"
expect "INBOX /private/comment on the server" \
	"$(da mailbox metadata get -u "$USER1" INBOX /private/comment)" hello
expect "server /private/comment on the server" \
	"$(da mailbox metadata get -u "$USER1" -s "" /private/comment 2>&1)" "server wide"
op metadata a INBOX /private/comment "" >/dev/null || not_ok "op metadata remove"
sync_check "metadata removed"
expect "INBOX /private/comment removed on the server" \
	"$(da mailbox metadata get -u "$USER1" INBOX /private/comment)" ""

# --- sync_bodies: limited, then raised --------------------------------------------
# A store that keeps bodies up to 1 KiB reads headers first and only the small
# bodies; raising the limit later fetches the bodies now wanted even though
# nothing changed on the server (LIST-STATUS alone would skip the folders).
BCONF=$WORK/bodies.conf
write_conf "$BCONF" "$WORK/bodies.db"
printf 'sync_bodies = 1\n' >>"$BCONF"
check "bodies: sync with sync_bodies = 1" sync_once "$BCONF" "$WORK/bodies1.log"
check "bodies: headers first (BODY.PEEK[HEADER])" grep -q 'BODY.PEEK\[HEADER\]' "$WORK/bodies1.log"
sed -i 's/^sync_bodies = 1$/sync_bodies = all/' "$BCONF"
check "bodies: sync after raising to all" sync_once "$BCONF" "$WORK/bodies2.log"
check "bodies: the missing bodies are fetched" grep -qE ' C: a[0-9]+ UID FETCH [0-9:,]+ \(UID BODY.PEEK\[\]\)' "$WORK/bodies2.log"
check "bodies: a third run selects nothing" sync_once "$BCONF" "$WORK/bodies3.log"
if grep -q ' C: a[0-9]* SELECT' "$WORK/bodies3.log"; then
	not_ok "bodies: no SELECT once the bodies are complete"
else
	ok "bodies: no SELECT once the bodies are complete"
fi

# --- the same conflicts on a server without CONDSTORE/QRESYNC ----------------------
DOVECOT_HIDE_CAPABILITY="QRESYNC CONDSTORE" dc_start plain
dc_seed
CONF=$WORK/plain.conf
DB=$WORK/plain.db
write_conf "$CONF" "$DB"
sync_check "plain: initial sync"
nplain=$n
conflicts "plain"
# what was sent to the plain server: no CONDSTORE syntax (UNCHANGEDSINCE)
if sed -n '/ C: /p' $(seq -f "$WORK/sync%g.log" "$nplain" "$n") | grep -qE 'CONDSTORE|QRESYNC|CHANGEDSINCE'; then
	not_ok "plain: no CONDSTORE/QRESYNC syntax sent to a server without them"
else
	ok "plain: no CONDSTORE/QRESYNC syntax sent to a server without them"
fi

# --- a folder the user may only read: flag changes fail, they do not vanish ---
# Dovecot selects it [READ-ONLY] and answers a STORE there with OK, changing
# nothing: the change was dropped, the store and the server apart for good.
da mailbox create -u "$USER1" RO || bail "doveadm mailbox create RO"
msg_save "$USER1" RO "<ro@sync.test>" 300 || bail "doveadm save into RO"
sync_check "read-only folder: setup"
da acl set -u "$USER1" RO "user=$USER1" lookup read || bail "doveadm acl set RO lookup read"
op flags "$(local_id RO '<ro@sync.test>')" -- +kwRO >/dev/null || not_ok "op flags in RO"
n=$((n + 1))
check "read-only folder: cpm-syncd --once succeeds" sync_once "$CONF" "$WORK/sync$n.log"
expect "read-only folder: the flag change is a failed operation ([READ-ONLY]), not dropped" \
	"$(sqlite3 -readonly "$DB" "SELECT op || ' ' || failed || ' ' || code FROM journal")" \
	"flags 1 READ-ONLY"
expect "read-only folder: the local flag stays until retried or discarded" \
	"$("$CPMCTL" dump --db "$DB" a RO | cut -f4)" kwRO
expect "read-only folder: the server's flags unchanged" "$(server_flags RO '<ro@sync.test>')" ""

# --- a folder where the user may set \Seen and nothing else -----------------------
# ACL "s" without "w": Dovecot selects it READ-WRITE with [PERMANENTFLAGS
# (\Seen)], and answers a STORE of another flag with OK, changing nothing.
da mailbox create -u "$USER1" PF || bail "doveadm mailbox create PF"
msg_save "$USER1" PF "<pf1@sync.test>" 300 || bail "doveadm save into PF"
msg_save "$USER1" PF "<pf2@sync.test>" 300 || bail "doveadm save into PF"
n=$((n + 1))
# (The read-only folder's failed flag change above stays: no sync_check.)
check "seen-only folder: synced" sync_once "$CONF" "$WORK/sync$n.log"
check "seen-only folder: both messages in the store" test -n "$(local_id PF '<pf2@sync.test>')"
da acl set -u "$USER1" PF "user=$USER1" lookup read write-seen ||
	bail "doveadm acl set PF lookup read write-seen"
op flags "$(local_id PF '<pf1@sync.test>')" -- +'\Seen' >/dev/null || not_ok "op flags pf1"
op flags "$(local_id PF '<pf2@sync.test>')" -- +'\Flagged' >/dev/null || not_ok "op flags pf2"
n=$((n + 1))
check "seen-only folder: cpm-syncd --once succeeds" sync_once "$CONF" "$WORK/sync$n.log"
check "seen-only folder: the SELECT said so" grep -qF '[PERMANENTFLAGS (\Seen)]' "$WORK/sync$n.log"
expect "seen-only folder: \Seen reached the server" "$(server_flags PF '<pf1@sync.test>')" '\Seen'
expect "seen-only folder: \Flagged is a failed operation ([PERMANENTFLAGS]), not dropped" \
	"$(sqlite3 -readonly "$DB" "SELECT op || ' ' || failed || ' ' || code || ' ' || refused FROM journal WHERE failed = 1 AND code = 'PERMANENTFLAGS'")" \
	'flags 1 PERMANENTFLAGS not sent: the folder does not keep \Flagged for this account (PERMANENTFLAGS (\Seen)): the change cannot be made'
expect "seen-only folder: the local flag stays until retried or discarded" \
	"$("$CPMCTL" dump --db "$DB" a PF | awk -F'\t' '$5 == "<pf2@sync.test>" { print $4 }')" '\Flagged'
expect "seen-only folder: the server's flags unchanged" "$(server_flags PF '<pf2@sync.test>')" ""

# --- the account edited by hand to name another mailbox --------------------------
# The store's copy of one mailbox is not another's: with nothing queued it is
# dropped and synced again from the new one; with changes queued for the old
# one, the sync refuses (it would send them to the other mailbox) and says
# what to do, until the settings name the old one again.
IC=$WORK/ident.conf
ID=$WORK/ident.db
write_conf "$IC" "$ID"
{ printf '%s\n' "$PASS2" >"$WORK/bob.pw" && chmod 0600 "$WORK/bob.pw"; } || bail "bob.pw"
msg_save "$USER2" INBOX "<bob-ident@sync.test>" 300 || bail "doveadm save into bob's INBOX"
# as_user USER PWFILE: the account's user and password file in $IC
as_user() {
	sed -i -e "s/^user = .*/user = $1/" -e "s|^password_file = .*|password_file = $2|" "$IC"
}
# dump_equals USER: the store's dump of a equals USER's mailbox
dump_equals() {
	server_dump "$1" >"$WORK/ident.server" && "$CPMCTL" dump --db "$ID" a >"$WORK/ident.local" &&
		diff -u "$WORK/ident.server" "$WORK/ident.local"
}
check "identity: first sync as $USER1" sync_once "$IC" "$WORK/ident1.log"
check "identity: the store holds $USER1's mail" dump_equals "$USER1"
as_user "$USER2" "$WORK/bob.pw"
check "identity: the account edited to $USER2, nothing queued: the sync succeeds" \
	sync_once "$IC" "$WORK/ident2.log"
check "identity: the log says $USER1's copy is dropped" grep -qF \
	"a: the account now names $USER2@localhost, not $USER1@localhost: the local copy of $USER1@localhost is dropped (no local change waited for it), and synced again" \
	"$WORK/ident2.log"
check "identity: the store holds $USER2's mail, not $USER1's" dump_equals "$USER2"
bid=$("$OP" --db "$ID" find a INBOX "<bob-ident@sync.test>") || not_ok "identity: find bob's message"
check "identity: a flag queued on $USER2's message" "$OP" --db "$ID" flags "$bid" -- +kwBob
as_user "$USER1" "$WORK/alice.pw"
if sync_once "$IC" "$WORK/ident3.log" >/dev/null; then
	not_ok "identity: edited back to $USER1 with a change queued for $USER2: the sync fails"
else
	ok "identity: edited back to $USER1 with a change queued for $USER2: the sync fails"
fi
check "identity: ... saying what to do" grep -qF \
	"the store holds the mail of $USER2@localhost with 1 local change not yet sent there, and the account's settings now name $USER1@localhost: set host and user back to send them, or remove the account with D-Bus Manager1.RemoveAccount to drop them (saved as files first; removing its section from the configuration keeps them)" \
	"$WORK/ident3.log"
if grep -q ' C: ' "$WORK/ident3.log"; then
	not_ok "identity: ... before sending the server anything"
else
	ok "identity: ... before sending the server anything"
fi
expect "identity: the change is still queued" "$("$OP" --db "$ID" pending a | cut -f3)" flags
check "identity: the store still holds $USER2's mail (flags aside: kwBob waits)" bash -c \
	"diff <(cut -f1-3,5 '$WORK/ident.server') <('$CPMCTL' dump --db '$ID' a | cut -f1-3,5)"
as_user "$USER2" "$WORK/bob.pw"
check "identity: back to $USER2: the sync succeeds" sync_once "$IC" "$WORK/ident4.log"
expect "identity: the change reached $USER2's message" \
	"$(server_dump "$USER2" | awk -F'\t' '$5 == "<bob-ident@sync.test>" { print $4 }')" kwBob
check "identity: and equals the server" dump_equals "$USER2"

# --- a header over 1 MiB, bodies limited ------------------------------------
# A folded To: of 50,000 addresses (1.25 MB, valid RFC 5322), with sync_bodies
# limited (the header is fetched alone): the client dropped the connection
# at its 1 MiB header limit, and every sync of the account failed for ever
# on it, the rest of the folder and every other folder with it.
HC=$WORK/hdr.conf
write_conf "$HC" "$WORK/hdr.db"
printf 'sync_bodies = 1\n' >>"$HC"
da mailbox create -u "$USER1" BigHeader || bail "cannot create BigHeader"
"$PY" - "$WORK/bighdr.eml" <<'PYEND' || bail "cannot write bighdr.eml"
import sys
with open(sys.argv[1], "w") as f:
    f.write("Message-ID: <bighdr@sync.test>\r\nSubject: many\r\nFrom: a@sync.test\r\nTo: ")
    f.write(",\r\n ".join("user%05d@example.com" % i for i in range(50000)))
    f.write("\r\n\r\nbody\r\n")
PYEND
da save -u "$USER1" -m BigHeader <"$WORK/bighdr.eml" || bail "cannot save bighdr.eml"
msg_save "$USER1" BigHeader "<after-bighdr@sync.test>" 300 || bail "cannot save after-bighdr"
check "big header: its size is over 1 MiB ($(stat -c %s "$WORK/bighdr.eml"))" \
	test "$(stat -c %s "$WORK/bighdr.eml")" -gt 1048576
check "big header: the sync with sync_bodies = 1 succeeds" sync_once "$HC" "$WORK/hdr.log"
check "big header: the message is in the store with its Message-ID" \
	"$OP" --db "$WORK/hdr.db" find a BigHeader "<bighdr@sync.test>"
check "big header: ...and the one after it" \
	"$OP" --db "$WORK/hdr.db" find a BigHeader "<after-bighdr@sync.test>"
check "big header: the store equals the server" compare "$WORK/hdr.db" a

# --- a server that takes command lines of 1k only -------------------------------
# Dovecot with imap_max_line_length = 1k: 80 keywords set here (1,439 bytes
# of flags) went as one UID STORE, answered BAD "IMAP command line too
# large", and became a failed operation.  Now they go in parts that fit.
printf 'imap_max_line_length = 1k\n' >"$WORK/line.conf" || bail "cannot write line.conf"
DOVECOT_EXTRA_CONF=$WORK/line.conf dc_start short
LC=$WORK/line-client.conf
LDB=$WORK/line.db
write_conf "$LC" "$LDB"
msg_save "$USER1" INBOX "<long-flags@sync.test>" 300 || bail "cannot save long-flags"
check "1k lines: the first sync succeeds" sync_once "$LC" "$WORK/line1.log"
lid=$("$OP" --db "$LDB" find a INBOX "<long-flags@sync.test>") || bail "long-flags not synced"
kws=()
for i in $(seq -w 1 80); do kws+=("+keyword-number-$i"); done
"$OP" --db "$LDB" flags "$lid" -- "${kws[@]}" || bail "cannot set 80 keywords"
check "1k lines: the sync with 80 keywords to send succeeds" sync_once "$LC" "$WORK/line2.log"
expect "1k lines: nothing pending" "$("$OP" --db "$LDB" pending a)" ""
expect "1k lines: the 80 keywords are on the server" \
	"$(da fetch -u "$USER1" flags mailbox INBOX header Message-ID "<long-flags@sync.test>" |
		grep -o 'keyword-number-[0-9]*' | sort | tr '\n' ' ')" \
	"$(printf '%s\n' "${kws[@]#+}" | sort | tr '\n' ' ')"
expect "1k lines: in two UID STOREs" "$(grep -c ' C: a[0-9]* UID STORE ' "$WORK/line2.log")" 2
check "1k lines: the store equals the server" compare "$LDB" a

finish
