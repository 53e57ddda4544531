#!/usr/bin/env bash
# The CPM folder model over D-Bus, against a real Dovecot on a private bus
# (contract README "CPM objects and conversations"; issue 11):
# Account1.CpmRoot and the Folder1 Kind/SpecialUse/ConversationId/
# ContributionId of folders seeded on the server; StoreObject and the
# outbox's account-level files with the server stopped (a new 1-to-1
# conversation, a new group session, an SMS to a new peer): folders and
# objects on the server exactly once when it is back; bad objects refused
# with InvalidArgs and nothing left behind; MarkConversationRead reaching
# the server; a cpm_root change applied by a configuration reload.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
dc_start dc

dbus_setup

F=org.cpmsync.Folder1
AC=org.cpmsync.Account1
fprop() { "$DBUS" get "$1" "$F" "$2"; }
# folder_is NAME KIND CONVERSATION-ID CONTRIBUTION-ID SPECIAL-USE: the
# folder's four CPM properties, exactly
folder_is() {
	local path got want
	path=$(call "$A" "$AC" FindFolder s "$1") || {
		echo "    FindFolder $1: $path"
		return 1
	}
	got="$(fprop "$path" Kind)|$(fprop "$path" ConversationId)|$(fprop "$path" ContributionId)|$(fprop "$path" SpecialUse)"
	want="$2|$3|$4|$5"
	[ "$got" = "$want" ] || {
		echo "    $1: got '$got', want '$want'"
		return 1
	}
}
# server_count MESSAGE-ID: how many messages of any folder of the server carry it
server_count() {
	da search -u "$USER1" mailbox '*' header message-id "$1" 2>/dev/null | wc -l
}
# server_in FOLDER MESSAGE-ID: exactly once on the server, and in FOLDER
server_in() {
	[ "$(server_count "$2")" = 1 ] &&
		[ -n "$(da search -u "$USER1" mailbox "$1" header message-id "$2" 2>/dev/null)" ]
}
# acct_is PROPERTY VALUE (for eventually: evaluated on each try)
acct_is() { [ "$(acct "$1")" = "$2" ]; }
server_folder() { da mailbox list -u "$USER1" | grep -qxF -- "$1"; }
local_folders() { "$CPMCTL" dump --db "$WORK/store.db" a | cut -f2 | sort -u; }

# cpm_obj FILE MESSAGE-ID HEADERS...: a CPM object (Message/CPIM text chat
# unless a Content-Type header is given) with the given outer headers,
# dated $DATE (default 06:00:00)
cpm_obj() {
	local file=$1 mid=$2 h ct="Message/CPIM"
	shift 2
	{
		printf 'Date: %s\r\nMessage-ID: %s\r\n' "${DATE:-Sat, 5 Dec 2026 06:00:00 +0000}" "$mid"
		for h in "$@"; do
			case $h in Content-Type:*) ct=${h#Content-Type: } ;; *) printf '%s\r\n' "$h" ;; esac
		done
		printf 'MIME-Version: 1.0\r\nContent-Type: %s\r\n\r\n' "$ct"
		printf 'From: <tel:+15550100>\r\nTo: <tel:+15550200>\r\nNS: imdn <urn:ietf:params:imdn>\r\n\r\n'
		printf 'Content-Type: text/plain; charset=utf-8\r\n\r\nhello %s\r\n' "$mid"
	} >"$file"
}

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"

# --- a chat history on the server ---------------------------------------------------------------
for mb in Default Default/conv-ABC Default/conv-ABC/contrib-1 "Default/tel:+15550001" \
	"Default/tel:+15550002" Default/a/b/c Default/conv-Z; do
	da mailbox create -u "$USER1" "$mb" || bail "cannot create $mb on the server"
done
cpm_obj "$WORK/s1" "<abc-1@cpm.test>" "From: tel:+15550100" "To: tel:+15550200" \
	"Conversation-ID: conv-ABC" "Contribution-ID: contrib-0" "Message-Direction: sent"
da save -u "$USER1" -m Default/conv-ABC <"$WORK/s1" || bail "cannot save into Default/conv-ABC"
cpm_obj "$WORK/s2" "<abc-info@cpm.test>" "From: tel:+15550100" "Subject: Lunch" \
	"Conversation-ID: conv-ABC" "Contribution-ID: contrib-1" \
	"Content-Type: Application/X-CPM-Session"
da save -u "$USER1" -m Default/conv-ABC/contrib-1 <"$WORK/s2" || bail "cannot save the session-info"
DATE='Sat, 5 Dec 2026 06:01:00 +0000' cpm_obj "$WORK/s3" "<abc-2@cpm.test>" "From: tel:+15550300" "To: tel:+15550100" \
	"Conversation-ID: conv-ABC" "Contribution-ID: contrib-1" "Message-Direction: received"
da save -u "$USER1" -m Default/conv-ABC/contrib-1 <"$WORK/s3" || bail "cannot save into contrib-1"
cpm_obj "$WORK/s4" "<p2p-1@cpm.test>" "From: tel:+15550001" "To: tel:+15550100" \
	"Conversation-ID: conv-P2P" "Message-Direction: received"
da save -u "$USER1" -m "Default/tel:+15550001" <"$WORK/s4" || bail "cannot save into the peer folder"
cpm_obj "$WORK/s5" "<sms-1@cpm.test>" "From: tel:+15550002" "To: tel:+15550100" \
	"Message-Context: pager-message" "Message-Direction: received" "Content-Type: text/plain"
da save -u "$USER1" -m "Default/tel:+15550002" <"$WORK/s5" || bail "cannot save the SMS"

# A conversation folder whose object names another Conversation-ID: the
# store's conversation takes the object's, the folder keeps its name.
cpm_obj "$WORK/s6" "<z-1@cpm.test>" "From: tel:+15550009" "To: tel:+15550100" \
	"Conversation-ID: conv-Zeta" "Message-Direction: received"
da save -u "$USER1" -m Default/conv-Z <"$WORK/s6" || bail "cannot save into Default/conv-Z"
"$DBUS" monitor >"$WORK/signals.log" 2>&1 &
MON_PID=$!
sleep 0.2
start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "account reaches State idle" wait_state idle 20

# --- CpmRoot and the folder model ---------------------------------------------------------------
check "Account1.CpmRoot is Default (cpm_root not set)" test "$(acct CpmRoot)" = Default
check "Default/conv-ABC: conversation-history" \
	folder_is Default/conv-ABC conversation-history conv-ABC "" ""
check "Default/conv-ABC/contrib-1: session-history" \
	folder_is Default/conv-ABC/contrib-1 session-history conv-ABC contrib-1 ""
check "a peer's folder: ConversationId from its objects" \
	folder_is "Default/tel:+15550001" conversation-history conv-P2P "" ""
check "a peer's folder of SMS without Conversation-ID: ConversationId is the address" \
	folder_is "Default/tel:+15550002" conversation-history "tel:+15550002" "" ""
check "the root itself: user" folder_is Default user "" "" ""
check "deeper than a session: user" folder_is Default/a/b/c user "" "" ""
check "INBOX: user" folder_is INBOX user "" "" ""
check "Sent: user with SpecialUse \\Sent" folder_is Sent user "" "" '\Sent'
check "Drafts: SpecialUse \\Drafts" folder_is Drafts user "" "" '\Drafts'

# --- StoreObject and outbox files with the server stopped ---------------------------------------
da stop >/dev/null 2>&1
check "server stopped: State leaves idle" \
	eventually 15 bash -c "[ \"\$('$DBUS' get $A $AC State)\" != idle ]"
PENDING0=$(acct PendingOperations)

# A new 1-to-1 chat conversation.
cpm_obj "$WORK/o1" "<new1@cpm.test>" "From: tel:+15550100" "To: tel:+15550400" \
	"Conversation-ID: conv-NEW1" "Contribution-ID: contrib-N1" "Message-Direction: sent"
call "$A" "$AC" StoreObject hasx "$WORK/o1" '\Seen' 0 >"$WORK/r1"
check "offline StoreObject, new 1-to-1 chat: answered with folder and id" \
	grep -qE "^$A/folder[0-9]+\$" <(head -n 1 "$WORK/r1")
check "  its id is a number" grep -qE '^[0-9]+$' <(sed -n 2p "$WORK/r1")
check "  filed in Default/conv-NEW1" test "$(fprop "$(head -n 1 "$WORK/r1")" Name)" = Default/conv-NEW1
check "  which is a conversation-history folder" \
	folder_is Default/conv-NEW1 conversation-history conv-NEW1 "" ""
# The same object again (an app's retry after a D-Bus timeout whose first
# call did succeed): answered with the first copy, nothing queued.
PENDING_R1=$(acct PendingOperations) || bail "cannot read PendingOperations"
[[ $PENDING_R1 =~ ^[0-9]+$ ]] || bail "PendingOperations: '$PENDING_R1'"
call "$A" "$AC" StoreObject hasx "$WORK/o1" '\Seen' 0 >"$WORK/r1again"
check "offline StoreObject of the same object again: the same folder and id" \
	test "$(cat "$WORK/r1again")" = "$(cat "$WORK/r1")"
check "  nothing more queued" test "$(acct PendingOperations)" = "$PENDING_R1"
# The retry written anew by the app: LF line ends; the text in base64.
# The same object (its Message-ID, the same content decoded): the
# first copy again (and on the server once, below).
sed 's/\r$//' "$WORK/o1" >"$WORK/o1lf" || bail "cannot write o1lf"
{
	sed -n '1,/^Content-Type: text\/plain/p' "$WORK/o1" &&
		printf 'Content-Transfer-Encoding: base64\r\n\r\n' &&
		printf 'hello <new1@cpm.test>\r\n' | base64 | sed 's/$/\r/'
} >"$WORK/o1b64" || bail "cannot write o1b64"
grep -q '^aGVsbG8gPG5ldzFAY3BtLnRlc3Q+DQo=' "$WORK/o1b64" || bail "o1b64: no base64 text"
call "$A" "$AC" StoreObject hasx "$WORK/o1lf" '\Seen' 0 >"$WORK/r1lf"
check "offline StoreObject of the same object with LF line ends: the same folder and id" \
	test "$(cat "$WORK/r1lf")" = "$(cat "$WORK/r1")"
call "$A" "$AC" StoreObject hasx "$WORK/o1b64" '\Seen' 0 >"$WORK/r1b64"
check "  with its text in base64: the same folder and id" \
	test "$(cat "$WORK/r1b64")" = "$(cat "$WORK/r1")"
check "  nothing more queued" test "$(acct PendingOperations)" = "$PENDING_R1"
# A new group session: its session-info, then a message of the session.
cpm_obj "$WORK/o2" "<grp-info@cpm.test>" "From: tel:+15550100" "Subject: Team" \
	"Conversation-ID: conv-GRP" "Contribution-ID: contrib-G1" \
	"Content-Type: Application/X-CPM-Session"
call "$A" "$AC" StoreObject hasx "$WORK/o2" '' 0 >"$WORK/r2"
check "offline StoreObject, new group session: filed in Default/conv-GRP/contrib-G1" \
	test "$(fprop "$(head -n 1 "$WORK/r2")" Name)" = Default/conv-GRP/contrib-G1
check "  a session-history folder" \
	folder_is Default/conv-GRP/contrib-G1 session-history conv-GRP contrib-G1 ""
cpm_obj "$WORK/o3" "<grp-1@cpm.test>" "From: tel:+15550100" "To: tel:+15550500" \
	"Conversation-ID: conv-GRP" "Contribution-ID: contrib-G1" "Message-Direction: sent"
call "$A" "$AC" StoreObject hasx "$WORK/o3" '' 0 >"$WORK/r3"
check "  a message of that session goes into the session folder" \
	test "$(head -n 1 "$WORK/r3")" = "$(head -n 1 "$WORK/r2")"
# An SMS to a new peer.
cpm_obj "$WORK/o4" "<sms-new@cpm.test>" "From: tel:+15550100" "To: tel:+15559999" \
	"Message-Context: pager-message" "Message-Direction: sent" "Content-Type: text/plain"
call "$A" "$AC" StoreObject hasx "$WORK/o4" '' 0 >"$WORK/r4"
check "offline StoreObject, SMS to a new peer: filed in Default/tel:+15559999" \
	test "$(fprop "$(head -n 1 "$WORK/r4")" Name)" = "Default/tel:+15559999"
# The same three through the outbox: files directly in <outbox>/a/.
mkdir -p "$WORK/outbox/a"
cpm_obj "$WORK/outbox/a/.x1" "<obx-new@cpm.test>" "From: tel:+15550100" "To: tel:+15550600" \
	"Conversation-ID: conv-OBX" "Message-Direction: sent"
cpm_obj "$WORK/outbox/a/.x2" "<obx-grp-info@cpm.test>" "From: tel:+15550100" \
	"Conversation-ID: conv-OBXG" "Contribution-ID: contrib-X1" \
	"Content-Type: application/group-state-object+xml"
cpm_obj "$WORK/outbox/a/.x3" "<obx-sms@cpm.test>" "From: tel:+15558888" "To: tel:+15550100" \
	"Message-Context: multimedia-message" "Message-Direction: received" \
	"Content-Type: text/plain"
printf 'From: a@b\r\nTo: c@d\r\nSubject: plain mail\r\nMessage-ID: <obx-bad@cpm.test>\r\n\r\nhi\r\n' \
	>"$WORK/outbox/a/.x4"
for i in 1 2 3 4; do mv "$WORK/outbox/a/.x$i" "$WORK/outbox/a/obj$i.eml"; done
check "outbox: the three objects leave the drop folder" \
	eventually 10 bash -c "! ls '$WORK/outbox/a/obj1.eml' '$WORK/outbox/a/obj2.eml' '$WORK/outbox/a/obj3.eml' 2>/dev/null | grep -q ."
# obj1 dropped a second time, the same bytes (filed again after a crash
# between its store and its unlink, say): no second copy.
cpm_obj "$WORK/outbox/a/.x1" "<obx-new@cpm.test>" "From: tel:+15550100" "To: tel:+15550600" \
	"Conversation-ID: conv-OBX" "Message-Direction: sent"
check "outbox: obj1.eml waits in .pending/ID/" eventually 10 compgen -G "$WORK/outbox/.pending/*/obj1.eml"
OBJ1=$(compgen -G "$WORK/outbox/.pending/*/obj1.eml") || bail "no .pending/ID/obj1.eml"
cmp "$WORK/outbox/a/.x1" "$OBJ1" || bail "the second drop is not obj1.eml's bytes"
mv "$WORK/outbox/a/.x1" "$WORK/outbox/a/obj1again.eml" || bail "mv obj1again.eml"
check "outbox: the same object dropped again leaves the drop folder" \
	eventually 10 test ! -e "$WORK/outbox/a/obj1again.eml"
# (Claimed first, into .pending/claimed/a/, then filed: not at once in .pending/ID/.)
check "  it waits for the first one's message, in ${OBJ1#"$WORK/outbox/"}'s directory" \
	eventually 10 test -f "${OBJ1%/obj1.eml}/obj1again.eml"
check "outbox: a new conversation folder" eventually 5 folder_is Default/conv-OBX conversation-history conv-OBX "" ""
check "outbox: a new session folder for a group-state object" \
	folder_is Default/conv-OBXG/contrib-X1 session-history conv-OBXG contrib-X1 ""
check "outbox: a new peer's folder for an MMS" \
	folder_is "Default/tel:+15558888" conversation-history "tel:+15558888" "" ""
check "outbox: a plain mail at the account level goes to .failed" \
	eventually 5 test -f "$WORK/outbox/.failed/obj4.eml"
check "outbox: its .why says why" test "$(cat "$WORK/outbox/.failed/obj4.eml.why" 2>/dev/null)" = \
	"a/obj4.eml: cannot file it as a CPM object in account 'a': content: not a CPM object: it has neither Conversation-ID nor Message-Context"

# Bad objects: InvalidArgs naming what is wrong, nothing left behind.
FOLDERS_BEFORE=$(local_folders | wc -l)
PENDING1=$(acct PendingOperations)
printf 'From: a@b\r\nTo: c@d\r\nSubject: plain\r\n\r\nhi\r\n' >"$WORK/bad1"
check "StoreObject of a plain mail: InvalidArgs saying it is not a CPM object" \
	test "$(call "$A" "$AC" StoreObject hasx "$WORK/bad1" '' 0)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: content: not a CPM object: it has neither Conversation-ID nor Message-Context"
cpm_obj "$WORK/bad2" "<bad2@cpm.test>" "Conversation-ID: conv/evil" "From: tel:+1"
check "StoreObject with a '/' in Conversation-ID: InvalidArgs naming it" \
	test "$(call "$A" "$AC" StoreObject hasx "$WORK/bad2" '' 0)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: content: the Conversation-ID \"conv/evil\" contains '/'"
cpm_obj "$WORK/bad3" "<bad3@cpm.test>" "Conversation-ID: conv-S" \
	"Content-Type: Application/X-CPM-Session"
check "StoreObject of a session-info without Contribution-ID: InvalidArgs" \
	test "$(call "$A" "$AC" StoreObject hasx "$WORK/bad3" '' 0)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: content: a session-info or group-state object needs both Conversation-ID and Contribution-ID"
cpm_obj "$WORK/bad4" "<bad4@cpm.test>" "Conversation-ID: conv-F"
check "StoreObject with \\Recent: InvalidArgs naming the flag" \
	bash -c "'$DBUS' call $A $AC StoreObject hasx '$WORK/bad4' '\\Recent' 0 | grep -q '^error org.freedesktop.DBus.Error.InvalidArgs: .*Recent'"
: >"$WORK/bad5"
check "StoreObject of an empty file: InvalidArgs" \
	test "$(call "$A" "$AC" StoreObject hasx "$WORK/bad5" '' 0)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: content: empty"
check "StoreObject with a negative date: InvalidArgs" \
	test "$(call "$A" "$AC" StoreObject hasx "$WORK/o1" '' -5)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: date: must not be negative (0: now)"
check "StoreObject with a date after 9999: InvalidArgs (IMAP cannot write it)" \
	test "$(call "$A" "$AC" StoreObject hasx "$WORK/o1" '' 253402300800)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: date: after 9999-12-31 23:59:59 UTC (an IMAP date has a four-digit year)"
check "bad objects: no folder left behind" test "$(local_folders | wc -l)" = "$FOLDERS_BEFORE"
check "bad objects: no Default/conv-F, conv-S" bash -c "! '$DBUS' call $A $AC FindFolder s Default/conv-F | grep -q '^/'"
check "bad objects: nothing journaled" test "$(acct PendingOperations)" = "$PENDING1"
# 7 CREATEs and 8 APPENDs.
check "offline: the work is pending (CREATEs and APPENDs)" \
	test "$(acct PendingOperations)" = $((PENDING0 + 15))

# --- the server is back: everything lands exactly once ------------------------------------------
NEW1_UID0=$(call "$A" "$AC" ListConversations | grep -F -- "- {ConversationId=conv-NEW1;")
sigmark
dovecot -c "$DOVECOT_CONF" || bail "cannot restart dovecot"
# Sync: the outband-notification hook, so the test need not wait out the back-off.
call "$A" "$AC" Sync >/dev/null
check "server back: State idle" wait_state idle 60
check "server back: PendingOperations 0" eventually 30 acct_is PendingOperations 0
for f in Default/conv-NEW1 Default/conv-GRP Default/conv-GRP/contrib-G1 "Default/tel:+15559999" \
	Default/conv-OBX Default/conv-OBXG/contrib-X1 "Default/tel:+15558888"; do
	check "on the server: folder $f" server_folder "$f"
done
check "on the server once: the 1-to-1 chat in Default/conv-NEW1" server_in Default/conv-NEW1 "<new1@cpm.test>"
check "on the server once: the session-info in the session folder" \
	server_in Default/conv-GRP/contrib-G1 "<grp-info@cpm.test>"
check "on the server once: the group message in the session folder" \
	server_in Default/conv-GRP/contrib-G1 "<grp-1@cpm.test>"
check "on the server once: the SMS in the new peer's folder" server_in "Default/tel:+15559999" "<sms-new@cpm.test>"
check "on the server once: outbox chat" server_in Default/conv-OBX "<obx-new@cpm.test>"
check "on the server once: outbox group-state" server_in Default/conv-OBXG/contrib-X1 "<obx-grp-info@cpm.test>"
check "on the server once: outbox MMS" server_in "Default/tel:+15558888" "<obx-sms@cpm.test>"
check "the plain mail never reached the server" test "$(server_count "<obx-bad@cpm.test>")" = 0
check "StoreObject's flags reached the server" \
	bash -c "(. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" fetch -u $USER1 flags mailbox Default/conv-NEW1 all) | grep -q 'Seen'"
check "outbox: the filed files are gone once on the server" \
	eventually 10 bash -c "! find '$WORK/outbox' -name 'obj[123].eml' -o -name obj1again.eml | grep -q ."
check "store == server" eventually 10 compare "$WORK/store.db"
# The APPEND answered gives conv-NEW1's last message its Uid: what
# ListConversations shows of it changed, and a ConversationChanged says so.
# conv_said CID: the dict of the last ConversationChanged of CID since the sigmark
conv_said() { signals_since | grep -F "$AC ConversationChanged {ConversationId=$1;" | tail -n 1 | sed 's/^[^{]*//'; }
# conv_listed CID: ListConversations' dict of CID
conv_listed() { call "$A" "$AC" ListConversations | grep -F -- "- {ConversationId=$1;" | sed 's/^- //'; }
check "offline, conv-NEW1's LastMessage had Uid 0" grep -qF ";LastMessage={Id=$(sed -n 2p "$WORK/r1");Uid=0;" <<<"$NEW1_UID0"
check "  now a Uid from the server" bash -c '[[ $1 == *";LastMessage={Id="*";Uid="[1-9]* ]]' _ "$(conv_listed conv-NEW1)"
# conv_said_listed CID: the last ConversationChanged of CID says what ListConversations says
conv_said_listed() { [ "$(conv_said "$1")" = "$(conv_listed "$1")" ]; }
check "  the last ConversationChanged of conv-NEW1 says what ListConversations says" \
	eventually 5 conv_said_listed conv-NEW1
# Another sync changes nothing: still once.
call "$A" "$AC" Sync >/dev/null
sleep 1
check "after another sync: still exactly once" \
	bash -c "[ \$(cd / && for m in '<new1@cpm.test>' '<grp-info@cpm.test>' '<sms-new@cpm.test>' '<obx-new@cpm.test>'; do (. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" search -u $USER1 mailbox '*' header message-id \"\$m\"); done | wc -l) = 4 ]"

# Online, a session folder that exists takes a message of its session.
DATE='Sat, 5 Dec 2026 06:02:00 +0000' cpm_obj "$WORK/o5" "<abc-3@cpm.test>" "From: tel:+15550100" "To: tel:+15550300" \
	"Conversation-ID: conv-ABC" "Contribution-ID: contrib-1" "Message-Direction: sent" \
	"IMDN-Message-ID: imdn-abc-3"
sigmark
call "$A" "$AC" StoreObject hasx "$WORK/o5" '' 0 >"$WORK/r5"
check "online StoreObject into an existing session folder" \
	test "$(fprop "$(head -n 1 "$WORK/r5")" Name)" = Default/conv-ABC/contrib-1
check "  on the server once" eventually 10 server_in Default/conv-ABC/contrib-1 "<abc-3@cpm.test>"
S1F_=$(call "$A" "$AC" FindFolder s Default/conv-ABC/contrib-1)
check "  ConversationChanged for conv-ABC" \
	eventually 5 saw_signal "^$A $AC ConversationChanged .*ConversationId=conv-ABC;.*Messages=3;"

# A display report for it, stored by another client (the peer's side).
{
	printf 'Date: Sat, 5 Dec 2026 06:05:00 +0000\r\nFrom: tel:+15550300\r\nTo: tel:+15550100\r\n'
	printf 'Message-ID: <rep-1@cpm.test>\r\nContent-Type: Message/CPIM\r\n'
	printf 'Conversation-ID: conv-ABC\r\nContribution-ID: contrib-1\r\nIMDN-Message-ID: rep-1\r\n'
	printf 'Message-Direction: received\r\n\r\n'
	printf 'From: <tel:+15550300>\r\nTo: <tel:+15550100>\r\nNS: imdn <urn:ietf:params:imdn>\r\n\r\n'
	printf 'Content-Type: message/imdn+xml; charset=utf-8\r\nContent-Disposition: notification\r\n\r\n'
	printf '<?xml version="1.0" encoding="UTF-8"?>\r\n<imdn xmlns="urn:ietf:params:xml:ns:imdn">'
	printf '<message-id>imdn-abc-3</message-id><datetime>2026-12-05T06:05:00Z</datetime>'
	printf '<display-notification><status><displayed/></status></display-notification></imdn>\r\n'
} >"$WORK/rep1"
sigmark
da save -u "$USER1" -m Default/conv-ABC/contrib-1 <"$WORK/rep1" || bail "cannot save the report"
check "a display report by another client: MessagesChanged with Status displayed" \
	eventually 10 saw_signal "^$S1F_ $F MessagesChanged .*Status=displayed"
check "  and ConversationChanged with it in LastMessage" \
	eventually 5 saw_signal "^$A $AC ConversationChanged .*ConversationId=conv-ABC;.*LastMessage=\\{.*MessageId=<abc-3@cpm.test>;.*Status=displayed;"

# --- conversations ------------------------------------------------------------------------------
call "$A" "$AC" ListConversations >"$WORK/convs"
conv() { grep -F -- "- {ConversationId=$1;" "$WORK/convs"; }
has() { # has CONVERSATION-ID TEXT: its dict contains TEXT
	conv "$1" | grep -qF -- "$2" || {
		echo "    $1: no '$2' in: $(conv "$1" | head -c 600)"
		return 1
	}
}
ABCF=$(call "$A" "$AC" FindFolder s Default/conv-ABC)
S1F=$(call "$A" "$AC" FindFolder s Default/conv-ABC/contrib-1)
# conv-ABC, conv-P2P, tel:+15550002, conv-Zeta, conv-NEW1, conv-GRP,
# tel:+15559999, conv-OBX, conv-OBXG, tel:+15558888
check "ListConversations: one dict per conversation (10)" test "$(grep -c '^- {ConversationId=' "$WORK/convs")" = 10
check "  newest activity first: conv-ABC (06:02) leads" \
	grep -q '^- {ConversationId=conv-ABC;' <(head -n 1 "$WORK/convs")
check "  conv-ABC: its folder, a group (session folder), no peer" \
	has conv-ABC "ConversationId=conv-ABC;Folder=$ABCF;Peer=;IsGroup=true;"
check "  conv-ABC: 3 messages (the session-info is not one), 3 unseen, LastActivity 06:02" \
	has conv-ABC ";Messages=3;Unseen=3;LastActivity=$(date -d '2026-12-05 06:02:00Z' +%s);"
check "  conv-ABC: LastMessage is abc-3 with Folder, Direction, Snippet" \
	bash -c "grep -F -- '- {ConversationId=conv-ABC;' '$WORK/convs' | grep -q 'LastMessage={Id=[0-9]*;.*MessageId=<abc-3@cpm.test>;.*Direction=sent;.*Snippet=hello <abc-3@cpm.test>;.*Folder=$S1F}'"
check "  conv-P2P: 1-to-1 with its peer" has conv-P2P ";Peer=tel:+15550001;IsGroup=false;Participants=[tel:+15550001];"
check "  the SMS peer's conversation is named by the address" \
	has "tel:+15550002" ";Peer=tel:+15550002;IsGroup=false;"
check "  conv-GRP (filed offline): a group" has conv-GRP ";IsGroup=true;"

# ListConversationsPage (ours): the same list, a page at a time.
call "$A" "$AC" ListConversationsPage uu 0 4 >"$WORK/cpage1"
call "$A" "$AC" ListConversationsPage uu 4 4 >"$WORK/cpage2"
call "$A" "$AC" ListConversationsPage uu 8 4 >"$WORK/cpage3"
check "ListConversationsPage(0, 4), (4, 4), (8, 4): 4, 4 and 2 dicts" \
	test "$(grep -c '^- {ConversationId=' "$WORK/cpage1") $(grep -c '^- {ConversationId=' "$WORK/cpage2") $(grep -c '^- {ConversationId=' "$WORK/cpage3")" = "4 4 2"
check "  together, ListConversations' dicts in its order" \
	test "$(cat "$WORK/cpage1" "$WORK/cpage2" "$WORK/cpage3")" = "$(cat "$WORK/convs")"
check "  past the end: none" test "$(call "$A" "$AC" ListConversationsPage uu 10 4 | grep -c .)" = 0
check "  limit 0: the default page (all 10)" \
	test "$(call "$A" "$AC" ListConversationsPage uu 0 0)" = "$(cat "$WORK/convs")"
check "ListConversationsPage limit over 10000: InvalidArgs" \
	test "$(call "$A" "$AC" ListConversationsPage uu 0 10001)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: limit: at most 10000"

call "$A" "$AC" ListConversationMessages stu conv-ABC 0 2 >"$WORK/page1"
check "ListConversationMessages, page 1: the two newest, newest first" \
	test "$(grep -o ';MessageId=[^;]*' "$WORK/page1" | tr '\n' ' ')" = ";MessageId=<abc-3@cpm.test> ;MessageId=<abc-2@cpm.test> "
check "  each with its Folder (the session folder)" test "$(grep -c "Folder=$S1F}\$" "$WORK/page1")" = 2
LAST=$(sed -n 2p "$WORK/page1" | grep -o '^- {Id=[0-9]*' | cut -d= -f2)
call "$A" "$AC" ListConversationMessages stu conv-ABC "$LAST" 2 >"$WORK/page2"
check "  page 2 after the last Id: the oldest, in the conversation folder" \
	bash -c "[ \"\$(grep -c . '$WORK/page2')\" = 1 ] && grep -q 'MessageId=<abc-1@cpm.test>;.*Direction=sent;.*Folder=$ABCF}' '$WORK/page2'"
check "  a summary carries the v2 keys" \
	grep -q ';InReplyToContributionId=;ImdnMessageId=;Direction=received;Context=;Type=message;Status=;Snippet=hello <abc-2@cpm.test>;HasBody=true;Folder=' "$WORK/page1"
check "ListConversationMessages of an unknown conversation: NotFound" \
	test "$(call "$A" "$AC" ListConversationMessages stu conv-NOPE 0 10)" = \
	"error org.cpmsync.Error.NotFound: conversation_id: no conversation 'conv-NOPE' in account 'a'"
check "ListConversationMessages with a '/' in the id: InvalidArgs" \
	test "$(call "$A" "$AC" ListConversationMessages stu a/b 0 10)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: conversation_id: 'a/b' contains '/'"
check "ListConversationMessages limit over 10000: InvalidArgs" \
	test "$(call "$A" "$AC" ListConversationMessages stu conv-ABC 0 10001)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: limit: at most 10000"
check "ListConversationMessages limit 0: at most 0, an empty array" \
	bash -c "out=\$('$DBUS' call $A $AC ListConversationMessages stu conv-ABC 0 0) && [ -z \"\$out\" ]"
check "  limit 0 of an unknown conversation: NotFound still" \
	test "$(call "$A" "$AC" ListConversationMessages stu conv-NOPE 0 0)" = \
	"error org.cpmsync.Error.NotFound: conversation_id: no conversation 'conv-NOPE' in account 'a'"
sigmark

# --- MarkConversationRead -----------------------------------------------------------------------
unseen_on_server() { # FOLDER: messages without \Seen
	da search -u "$USER1" mailbox "$1" unseen 2>/dev/null | wc -l
}
unseen_is() { [ "$(unseen_on_server "$1")" = "$2" ]; }
check "before: conv-ABC has unseen messages on the server" \
	test "$(($(unseen_on_server Default/conv-ABC) + $(unseen_on_server Default/conv-ABC/contrib-1)))" -gt 0
# --- cpmctl conversations, chat, send -------------------------------------------------------------
export TZ=UTC
TZ=UTC "$CPMCTL" conversations a >"$WORK/ctl-convs" 2>"$WORK/ctl.err"
check "cpmctl conversations: exit 0" test $? = 0
check "  one line per conversation, newest first" \
	test "$(cut -f1 "$WORK/ctl-convs" | head -n 1)/$(wc -l <"$WORK/ctl-convs")" = conv-ABC/10
# (Participants of a group without a participant list: the senders of its
# received messages, the store's rule.)
check "  a group: participants, unseen/messages, time, the last message with its arrow" \
	test "$(grep '^conv-ABC' "$WORK/ctl-convs")" = \
	"$(printf 'conv-ABC\tgroup: tel:+15550300\t3/3\t2026-12-05 06:02\t→ hello <abc-3@cpm.test>')"
check "  a 1-to-1: the peer" \
	test "$(grep '^conv-P2P' "$WORK/ctl-convs")" = \
	"$(printf 'conv-P2P\ttel:+15550001\t1/1\t2026-12-05 06:00\t← hello <p2p-1@cpm.test>')"
"$CPMCTL" conversations --json a >"$WORK/ctl-convs.json"
check "cpmctl conversations --json: one object per line, keys as the D-Bus dict" \
	bash -c "[ \$(grep -c '^{\"ConversationId\":' '$WORK/ctl-convs.json') = 10 ] && grep -q '^{\"ConversationId\":\"conv-P2P\",\"Folder\":\"/org/cpmsync/a/folder[0-9]*\",\"Peer\":\"tel:+15550001\",\"IsGroup\":false,\"Participants\":\[\"tel:+15550001\"\],\"Subject\":\"\",\"Messages\":1,\"Unseen\":1,' '$WORK/ctl-convs.json'"
"$CPMCTL" chat a conv-ABC >"$WORK/ctl-chat" 2>"$WORK/ctl.err"
check "cpmctl chat: oldest first, time, direction, status, text (sender in a group)" \
	test "$(cat "$WORK/ctl-chat")" = "$(printf '%s\n' \
		'2026-12-05 06:00 → -         hello <abc-1@cpm.test>' \
		'2026-12-05 06:01 ← -         tel:+15550300: hello <abc-2@cpm.test>' \
		'2026-12-05 06:02 → displayed hello <abc-3@cpm.test>')"
"$CPMCTL" chat --limit 1 a conv-ABC >"$WORK/ctl-chat1"
check "cpmctl chat --limit 1: the newest only" \
	test "$(cat "$WORK/ctl-chat1")" = '2026-12-05 06:02 → displayed hello <abc-3@cpm.test>'
"$CPMCTL" chat --json a conv-ABC >"$WORK/ctl-chat.json"
check "cpmctl chat --json: summaries with Folder, oldest first" \
	bash -c "[ \$(grep -c '\"Folder\":\"/org/cpmsync/a/folder' '$WORK/ctl-chat.json') = 3 ] && head -n 1 '$WORK/ctl-chat.json' | grep -q '\"MessageId\":\"<abc-1@cpm.test>\"'"
check "cpmctl chat of an unknown conversation: exit 1 with the daemon's reason" \
	bash -c "! '$CPMCTL' chat a conv-NOPE 2>'$WORK/ctl.err' && [ \"\$(cat '$WORK/ctl.err')\" = \"cpmctl: ListConversationMessages: NotFound: conversation_id: no conversation 'conv-NOPE' in account 'a'\" ]"
check "cpmctl conversations of an unknown account: exit 1, naming the accounts there are" \
	bash -c "! '$CPMCTL' conversations nope 2>'$WORK/ctl.err' && [ \"\$(cat '$WORK/ctl.err')\" = \"cpmctl: unknown account 'nope'; the account is: a\" ]"
check "cpmctl chat without a conversation: usage, exit 2" \
	bash -c "'$CPMCTL' chat a >/dev/null 2>&1; [ \$? = 2 ]"
complete_words() { # the bash completions of the last word, one a line
	PATH=$BDIR:$PATH bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _cpmctl
		printf "%s\n" "${COMPREPLY[@]}"' - "$TOP/agent/cpmctl.bash-completion" "$@"
}
# (copy, from the same --help, starts with c too)
check "completion: the new commands from --help" \
	test "$(complete_words cpmctl c | tr '\n' ' ')" = "copy conversations chat "
check "completion: conversation ids for chat" \
	test "$(complete_words cpmctl chat a conv-A | tr '\n' ' ')" = "conv-ABC "
check "completion: chat's options" \
	test "$(complete_words cpmctl chat --l | tr '\n' ' ')" = "--limit "
DATE='Sat, 5 Dec 2026 06:03:00 +0000' cpm_obj "$WORK/o6" "<ctl-send@cpm.test>" "From: tel:+15550100" \
	"To: tel:+15557777" "Conversation-ID: conv-CTL" "Message-Direction: sent"
"$CPMCTL" send a "$WORK/o6" >"$WORK/ctl-send" 2>"$WORK/ctl.err"
check "cpmctl send: FOLDER TAB ID" grep -qE $'^Default/conv-CTL\t[0-9]+$' "$WORK/ctl-send"
check "  on the server once" eventually 10 server_in Default/conv-CTL "<ctl-send@cpm.test>"
check "cpmctl send of a plain mail: exit 1 with InvalidArgs" \
	bash -c "! '$CPMCTL' send a '$WORK/bad1' 2>'$WORK/ctl.err' && [ \"\$(cat '$WORK/ctl.err')\" = 'cpmctl: StoreObject: InvalidArgs: content: not a CPM object: it has neither Conversation-ID nor Message-Context' ]"
check "cpmctl send of a missing file: exit 1 before any daemon" \
	bash -c "! '$CPMCTL' send a '$WORK/nonexistent' 2>'$WORK/ctl.err' && grep -q \"cannot read '$WORK/nonexistent': No such file\" '$WORK/ctl.err'"

check "MarkConversationRead conv-ABC" call "$A" "$AC" MarkConversationRead s conv-ABC
check "  ConversationChanged with Unseen 0" \
	eventually 5 saw_signal "^$A $AC ConversationChanged .*ConversationId=conv-ABC;.*;Unseen=0;"
check "  \\Seen set locally at once (Unseen 0 on the session folder)" \
	test "$(fprop "$(call "$A" "$AC" FindFolder s Default/conv-ABC/contrib-1)" Unseen)" = 0
check "  reaches the server: conversation folder" eventually 15 unseen_is Default/conv-ABC 0
check "  reaches the server: session folder" eventually 15 unseen_is Default/conv-ABC/contrib-1 0
check "  other conversations untouched" test "$(unseen_on_server "Default/tel:+15550002")" = 1
check "MarkConversationRead of a peer folder's conversation (by its objects' id)" \
	call "$A" "$AC" MarkConversationRead s conv-P2P
check "  reaches the server" eventually 15 unseen_is "Default/tel:+15550001" 0
check "MarkConversationRead by the store's conversation id (conv-Zeta in Default/conv-Z)" \
	call "$A" "$AC" MarkConversationRead s conv-Zeta
check "  reaches the server" eventually 15 unseen_is Default/conv-Z 0
check "MarkConversationRead of an unknown conversation: NotFound" \
	test "$(call "$A" "$AC" MarkConversationRead s conv-NOPE)" = \
	"error org.cpmsync.Error.NotFound: conversation_id: no conversation 'conv-NOPE' in account 'a'"
check "MarkConversationRead of '': InvalidArgs" \
	test "$(call "$A" "$AC" MarkConversationRead s '')" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: conversation_id: empty"

# A report in another folder than its original (INBOX): the push syncs INBOX
# alone (a NOTIFY STATUS for it), and the original's Status still follows.
DATE='Sat, 5 Dec 2026 06:04:00 +0000' cpm_obj "$WORK/o7" "<xf-1@cpm.test>" "From: tel:+15550100" \
	"To: tel:+15556666" "Conversation-ID: conv-XF" "Message-Direction: sent" \
	"IMDN-Message-ID: imdn-xf-1"
call "$A" "$AC" StoreObject hasx "$WORK/o7" '' 0 >"$WORK/r7"
XFF=$(head -n 1 "$WORK/r7")
XID=$(sed -n 2p "$WORK/r7")
check "an original in Default/conv-XF" test "$(fprop "$XFF" Name)" = Default/conv-XF
check "  its Id" grep -qE '^[0-9]+$' <<<"$XID"
check "  on the server once" eventually 10 server_in Default/conv-XF "<xf-1@cpm.test>"
{
	printf 'Date: Sat, 5 Dec 2026 06:05:00 +0000\r\nFrom: tel:+15556666\r\nTo: tel:+15550100\r\n'
	printf 'Message-ID: <rep-xf@cpm.test>\r\nContent-Type: Message/CPIM\r\n'
	printf 'Conversation-ID: conv-XF\r\nIMDN-Message-ID: rep-xf\r\nMessage-Direction: received\r\n\r\n'
	printf 'From: <tel:+15556666>\r\nTo: <tel:+15550100>\r\nNS: imdn <urn:ietf:params:imdn>\r\n\r\n'
	printf 'Content-Type: message/imdn+xml; charset=utf-8\r\nContent-Disposition: notification\r\n\r\n'
	printf '<?xml version="1.0" encoding="UTF-8"?>\r\n<imdn xmlns="urn:ietf:params:xml:ns:imdn">'
	printf '<message-id>imdn-xf-1</message-id><datetime>2026-12-05T06:05:00Z</datetime>'
	printf '<delivery-notification><status><delivered/></status></delivery-notification></imdn>\r\n'
} >"$WORK/rep-xf"
sigmark
da save -u "$USER1" -m INBOX <"$WORK/rep-xf" || bail "cannot save the report into INBOX"
check "a delivery report in INBOX by another client: MessagesChanged on the original in conv-XF" \
	eventually 10 saw_signal "^$XFF $F MessagesChanged .*\\{Id=$XID;Status=delivered\\}"

# --- cpm_root from the configuration, applied on reload ------------------------------------------
printf 'cpm_root = Default/conv-ABC\n' >>"$CONF"
check "reload: CpmRoot follows cpm_root" eventually 10 acct_is CpmRoot Default/conv-ABC
check "  Default/conv-ABC is now the root: user" folder_is Default/conv-ABC user "" "" ""
# Its ConversationId is its objects' Conversation-ID, as ListConversations'
# (contract: "the objects' Conversation-ID, else the address"; the name
# only names a folder without one).
check "  contrib-1 is now a conversation folder (of conv-ABC, its objects')" \
	folder_is Default/conv-ABC/contrib-1 conversation-history conv-ABC "" ""
check "  no reconnection for it" test "$(acct State)" = idle
conv_folders_are() { # EXPECTED: the Folder of each conversation, sorted, ' '-joined
	[ "$(call "$A" "$AC" ListConversations | grep -o '{ConversationId=[^;]*;Folder=[^;]*' |
		sed 's/.*;Folder=//' | sort | tr '\n' ' ')" = "$1" ]
}
check "  the store's conversations follow: only contrib-1's, now a conversation folder" \
	eventually 5 conv_folders_are "$S1F_ "
sed -i 's|^cpm_root = .*|cpm_root = ""|' "$CONF"
check "reload: cpm_root \"\" is the top level" eventually 10 acct_is CpmRoot ""
DEFP=$(call "$A" "$AC" FindFolder s Default)
check "  Default is a conversation folder now, of the conversation ListConversations says" \
	bash -c "c=\$('$DBUS' call $A $AC ListConversations | grep -F ';Folder=$DEFP;' | grep -o '^- {ConversationId=[^;]*' | cut -d= -f2) && [ -n \"\$c\" ] && [ \"\$('$DBUS' get $DEFP $F ConversationId)|\$('$DBUS' get $DEFP $F Kind)\" = \"\$c|conversation-history\" ]"
check "  INBOX stays user" folder_is INBOX user "" "" ""
sed -i '/^cpm_root = /d' "$CONF"
check "reload without cpm_root: Default again" eventually 10 acct_is CpmRoot Default
check "  and the folders as before" folder_is Default/conv-ABC conversation-history conv-ABC "" ""

# --- one conversation per Conversation-ID ------------------------------------------------------
# A 1-to-1 chat in its peer's folder and in the conversation folder named
# after it: one conversation, its messages from both.
da mailbox create -u "$USER1" "Default/tel:+15550302" || bail "cannot create the peer folder"
da mailbox create -u "$USER1" Default/conv-K || bail "cannot create Default/conv-K"
DATE='Sat, 5 Dec 2026 07:00:00 +0000' cpm_obj "$WORK/cq1" "<cq-1@cpm.test>" "From: tel:+15550302" \
	"To: tel:+15550100" "Conversation-ID: conv-K" "Message-Direction: received"
DATE='Sat, 5 Dec 2026 07:01:00 +0000' cpm_obj "$WORK/cq2" "<cq-2@cpm.test>" "From: tel:+15550302" \
	"To: tel:+15550100" "Conversation-ID: conv-K" "Message-Direction: received"
DATE='Sat, 5 Dec 2026 07:02:00 +0000' cpm_obj "$WORK/cq3" "<cq-3@cpm.test>" "From: tel:+15550302" \
	"To: tel:+15550100" "Conversation-ID: conv-K" "Message-Direction: received"
da save -u "$USER1" -m "Default/tel:+15550302" <"$WORK/cq1" || bail "cannot save cq-1"
da save -u "$USER1" -m Default/conv-K <"$WORK/cq2" || bail "cannot save cq-2"
da save -u "$USER1" -m Default/conv-K <"$WORK/cq3" || bail "cannot save cq-3"
call "$A" "$AC" Sync >/dev/null
check "conv-K in a peer folder and in Default/conv-K: one conversation" \
	eventually 15 bash -c "[ \"\$('$DBUS' call $A $AC ListConversations | grep -c -- '- {ConversationId=conv-K;')\" = 1 ]"
QF=$(call "$A" "$AC" FindFolder s Default/conv-K)
check "  its Folder the one named after it, Messages 3 over both" \
	bash -c "convs_k() { '$DBUS' call $A $AC ListConversations | grep -F -- '- {ConversationId=conv-K;'; }; convs_k | grep -qF 'ConversationId=conv-K;Folder=$QF;Peer=tel:+15550302;' && convs_k | grep -qF ';Messages=3;Unseen=3;'"
call "$A" "$AC" ListConversationMessages stu conv-K 0 50 >"$WORK/qpage"
check "  ListConversationMessages: the messages of both folders, newest first" \
	test "$(grep -o ';MessageId=[^;]*' "$WORK/qpage" | tr '\n' ' ')" = ";MessageId=<cq-3@cpm.test> ;MessageId=<cq-2@cpm.test> ;MessageId=<cq-1@cpm.test> "
check "  the peer folder's ConversationId is conv-K" \
	test "$(fprop "$(call "$A" "$AC" FindFolder s "Default/tel:+15550302")" ConversationId)" = conv-K

# Scrolling back: the last message of a page expunged on the server.
QCUR=$(sed -n 2p "$WORK/qpage" | grep -o '^- {Id=[0-9]*' | cut -d= -f2)
da expunge -u "$USER1" mailbox Default/conv-K header message-id "<cq-2@cpm.test>" || bail "cannot expunge cq-2"
call "$A" "$AC" Sync >/dev/null
check "the page's last message expunged on the server: gone here" \
	eventually 15 bash -c "! '$DBUS' call $A $AC ListConversationMessages stu conv-K 0 50 | grep -qF '<cq-2@cpm.test>'"
check "  the next page below it still comes: cq-1" \
	bash -c "'$DBUS' call $A $AC ListConversationMessages stu conv-K $QCUR 50 | grep -qF ';MessageId=<cq-1@cpm.test>;'"
check "  a before_id never known: InvalidArgs naming before_id" \
	test "$(call "$A" "$AC" ListConversationMessages stu conv-K 987654 50)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: before_id: message 987654 is no longer in the store (expunged); list from the newest again (before_id 0)"

# Default/conv-Z holds an object of conv-Zeta: every call says conv-Zeta.
check "Default/conv-Z: Folder1.ConversationId is its object's, conv-Zeta" \
	folder_is Default/conv-Z conversation-history conv-Zeta "" ""
check "  ListConversationMessages conv-Zeta: its message" \
	bash -c "'$DBUS' call $A $AC ListConversationMessages stu conv-Zeta 0 50 | grep -qF '<z-1@cpm.test>'"
check "  conv-Z names no conversation: MarkConversationRead NotFound" \
	test "$(call "$A" "$AC" MarkConversationRead s conv-Z)" = \
	"error org.cpmsync.Error.NotFound: conversation_id: no conversation 'conv-Z' in account 'a'"

# A conversation that goes: ConversationRemoved (ours, beyond the
# contract), once, and for it only.
sigmark
da expunge -u "$USER1" mailbox Default/conv-K all || bail "cannot expunge Default/conv-K"
da expunge -u "$USER1" mailbox "Default/tel:+15550302" all || bail "cannot expunge the peer folder"
call "$A" "$AC" Sync >/dev/null
check "conv-K's messages expunged on the server (both folders): ConversationRemoved conv-K" \
	eventually 15 saw_signal "^$A $AC ConversationRemoved conv-K\$"
check "  no longer listed" bash -c "! '$DBUS' call $A $AC ListConversations | grep -qF 'ConversationId=conv-K;'"
da mailbox delete -u "$USER1" Default/conv-Z || bail "cannot delete Default/conv-Z"
call "$A" "$AC" Sync >/dev/null
check "Default/conv-Z deleted on the server: ConversationRemoved conv-Zeta" \
	eventually 15 saw_signal "^$A $AC ConversationRemoved conv-Zeta\$"
check "  these two only, once each" \
	test "$(signals_since | grep ' ConversationRemoved ' | sed 's/.* ConversationRemoved //' | tr '\n' ' ')" = "conv-K conv-Zeta "

# \Deleted, not yet expunged (by another client): not a message of its
# conversation; the flag gone, it is back.  Folder listings keep it.
P2PF=$(call "$A" "$AC" FindFolder s "Default/tel:+15550001")
da flags add -u "$USER1" '\Deleted' mailbox "Default/tel:+15550001" all || bail "cannot flag p2p-1 \\Deleted"
call "$A" "$AC" Sync >/dev/null
check "p2p-1 flagged \\Deleted on the server: conv-P2P no longer listed" \
	eventually 15 bash -c "! '$DBUS' call $A $AC ListConversations | grep -qF 'ConversationId=conv-P2P;'"
check "  ListConversationMessages conv-P2P: NotFound" \
	test "$(call "$A" "$AC" ListConversationMessages stu conv-P2P 0 50)" = \
	"error org.cpmsync.Error.NotFound: conversation_id: no conversation 'conv-P2P' in account 'a'"
check "  the folder still lists it, with the flag" \
	bash -c "'$DBUS' call $P2PF $F ListMessages tu 0 100 | grep -F '<p2p-1@cpm.test>' | grep -qF '\\Deleted'"
da flags remove -u "$USER1" '\Deleted' mailbox "Default/tel:+15550001" all || bail "cannot unflag p2p-1"
call "$A" "$AC" Sync >/dev/null
check "  the flag removed: conv-P2P listed again, Messages 1" \
	eventually 15 bash -c "'$DBUS' call $A $AC ListConversations | grep -qF 'ConversationId=conv-P2P;' && '$DBUS' call $A $AC ListConversations | grep -F -- '- {ConversationId=conv-P2P;' | grep -qF ';Messages=1;'"

# A report before its original, in a folder of its own: no conversation.
sed -e 's/conv-ABC/conv-R2/; s/rep-1@/rep-r2@/; s/imdn-abc-3/imdn-r2-0/' "$WORK/rep1" >"$WORK/repr2"
da mailbox create -u "$USER1" Default/conv-R2 || bail "cannot create Default/conv-R2"
R2MARK=$(wc -l <"$WORK/signals.log")
da save -u "$USER1" -m Default/conv-R2 <"$WORK/repr2" || bail "cannot save the early report"
call "$A" "$AC" Sync >/dev/null
check "a report alone in Default/conv-R2: synced" \
	eventually 15 bash -c "'$DBUS' call $A $AC FindFolder s Default/conv-R2 | grep -q '^/'"
check "  no conversation conv-R2 listed" \
	bash -c "! '$DBUS' call $A $AC ListConversations | grep -qF 'ConversationId=conv-R2;'"
check "  and no ConversationChanged for it" \
	bash -c "! tail -n +$((R2MARK + 1)) '$WORK/signals.log' | grep -q 'ConversationChanged {ConversationId=conv-R2;'"

# A second display report for abc-3 (already displayed): the summary
# does not change, so no ConversationChanged.
sed -e 's/rep-1@/rep-dup@/' "$WORK/rep1" >"$WORK/repdup"
sigmark
da save -u "$USER1" -m Default/conv-ABC/contrib-1 <"$WORK/repdup" || bail "cannot save the duplicate report"
check "a duplicate display report: stored (MessagesAdded)" \
	eventually 15 saw_signal "^$S1F $F MessagesAdded "
sleep 0.5
check "  no ConversationChanged for conv-ABC" \
	bash -c "! tail -n +$((SIGMARK + 1)) '$WORK/signals.log' | grep -q 'ConversationChanged {ConversationId=conv-ABC;'"

# --- leaving the list: only what was listed, every way ------------------------------------------
# A group listed only for its session-info, a report beside it; a session
# folder holding one report only (no conversation, never listed).  The
# session-info expunged on the server: ConversationRemoved conv-G3, once;
# the lone report expunged: nothing.
for mb in Default/conv-G3 Default/conv-G3/contrib-g3 Default/conv-R3 Default/conv-R3/contrib-r3; do
	da mailbox create -u "$USER1" "$mb" || bail "cannot create $mb on the server"
done
cpm_obj "$WORK/g3info" "<g3-info@cpm.test>" "From: tel:+15550100" "Subject: Hike" \
	"Conversation-ID: conv-G3" "Contribution-ID: contrib-g3" \
	"Content-Type: Application/X-CPM-Session"
sed -e 's/conv-ABC/conv-G3/; s/contrib-1/contrib-g3/; s/rep-1@/rep-g3@/; s/imdn-abc-3/imdn-g3-0/' \
	"$WORK/rep1" >"$WORK/repg3"
sed -e 's/conv-ABC/conv-R3/; s/contrib-1/contrib-r3/; s/rep-1@/rep-r3@/; s/imdn-abc-3/imdn-r3-0/' \
	"$WORK/rep1" >"$WORK/repr3"
da save -u "$USER1" -m Default/conv-G3/contrib-g3 <"$WORK/g3info" || bail "cannot save g3-info"
da save -u "$USER1" -m Default/conv-G3/contrib-g3 <"$WORK/repg3" || bail "cannot save rep-g3"
da save -u "$USER1" -m Default/conv-R3/contrib-r3 <"$WORK/repr3" || bail "cannot save rep-r3"
call "$A" "$AC" Sync >/dev/null
check "conv-G3 (a session-info and a report): listed, Messages 0" \
	eventually 15 bash -c "'$DBUS' call $A $AC ListConversations | grep -F -- '- {ConversationId=conv-G3;' | grep -qF ';Messages=0;'"
R3F=$(call "$A" "$AC" FindFolder s Default/conv-R3/contrib-r3)
check "conv-R3 (a session folder of one report): synced, not listed" \
	bash -c "[ \"\$('$DBUS' get $R3F $F Messages)\" = 1 ] && ! '$DBUS' call $A $AC ListConversations | grep -qF 'ConversationId=conv-R3;'"
sigmark
da expunge -u "$USER1" mailbox Default/conv-R3/contrib-r3 all || bail "cannot expunge rep-r3"
da expunge -u "$USER1" mailbox Default/conv-G3/contrib-g3 header message-id "<g3-info@cpm.test>" ||
	bail "cannot expunge g3-info"
call "$A" "$AC" Sync >/dev/null
check "conv-G3's session-info expunged on the server, a report left: ConversationRemoved conv-G3" \
	eventually 15 saw_signal "^$A $AC ConversationRemoved conv-G3\$"
check "  no longer listed" bash -c "! '$DBUS' call $A $AC ListConversations | grep -qF 'ConversationId=conv-G3;'"
check "  conv-R3's report expunged here too" eventually 15 bash -c "[ \"\$('$DBUS' get $R3F $F Messages)\" = 0 ]"
sleep 0.5
check "  ConversationRemoved for conv-G3 only, once" \
	test "$(signals_since | grep ' ConversationRemoved ' | sed 's/.* ConversationRemoved //' | tr '\n' ' ')" = "conv-G3 "

# --- a folder outside the account's folders setting ------------------------------------------
# An account that syncs only INBOX and Work*: StoreObject would create
# Default/conv-Q1 on the server and the next sync drop it from the store
# ("not matched by the account's folders setting"): the sent message
# vanished from the app.  Refused instead, as CreateFolder and a
# RenameFolder to such a name; an outbox object goes to .failed.
Q=/org/cpmsync/q
qacct() { "$DBUS" get "$Q" "$AC" "$1"; }
printf '[account q]\nhost = localhost\nport = %s\nca_file = %s\nuser = %s\npassword_file = %s\nfolders = INBOX Work*\n' \
	"$IMAPS_PORT" "$CA_FILE" "$USER1" "$WORK/alice.pw" >>"$CONF" || bail "cannot add account q"
check "reload: account q (folders = INBOX Work*) is idle" \
	eventually 20 bash -c "[ \"\$('$DBUS' get $Q $AC State 2>/dev/null)\" = idle ]"
QPENDING=$(qacct PendingOperations)
cpm_obj "$WORK/q1" "<q-1@cpm.test>" "From: tel:+15550100" "To: tel:+15553333" \
	"Conversation-ID: conv-Q1" "Message-Direction: sent"
NOT_KEPT="is not in the account's folders setting: it would be created on the server but not kept here"
check "StoreObject into a folder q does not sync: InvalidArgs naming it" \
	test "$(call "$Q" "$AC" StoreObject hasx "$WORK/q1" '' 0)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: content: 'Default/conv-Q1' $NOT_KEPT"
check "CreateFolder of a name q does not sync: InvalidArgs" \
	test "$(call "$Q" "$AC" CreateFolder s Default/conv-Q9)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: name: 'Default/conv-Q9' $NOT_KEPT"
check "  nothing queued, no folder made" test "$(qacct PendingOperations)" = "$QPENDING"
check "CreateFolder Work (synced): a folder" grep -qE "^$Q/folder[0-9]+\$" <(call "$Q" "$AC" CreateFolder s Work)
check "RenameFolder Work to a name q does not sync: InvalidArgs" \
	test "$(call "$Q" "$AC" RenameFolder ss Work Elsewhere)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: new_name: 'Elsewhere' $NOT_KEPT"
check "RenameFolder Work to Work2 (synced): done" test -z "$(call "$Q" "$AC" RenameFolder ss Work Work2)"
mkdir -p "$WORK/outbox/q" || bail "mkdir outbox/q"
cpm_obj "$WORK/outbox/q/.q2" "<q-2@cpm.test>" "From: tel:+15550100" "To: tel:+15553334" \
	"Conversation-ID: conv-Q2" "Message-Direction: sent"
mv "$WORK/outbox/q/.q2" "$WORK/outbox/q/q2.eml" || bail "mv q2.eml"
check "outbox: an object for a folder q does not sync goes to .failed" \
	eventually 10 test -f "$WORK/outbox/.failed/q2.eml"
check "  its .why says why" test "$(cat "$WORK/outbox/.failed/q2.eml.why" 2>/dev/null)" = \
	"q/q2.eml: its folder 'Default/conv-Q2' is not in the folders setting of account 'q': it would be created on the server but not kept here"
da mailbox list -u "$USER1" >"$WORK/q-server" || bail "doveadm mailbox list"
check "  no folder of it on the server" bash -c "! grep -q conv-Q '$WORK/q-server'"

# --- the same object filed again, online -----------------------------------------------------
cpm_obj "$WORK/d1" "<dup-1@cpm.test>" "From: tel:+15550100" "To: tel:+15550700" \
	"Conversation-ID: conv-DUP" "Message-Direction: sent" "IMDN-Message-ID: imdn-dup-1"
call "$A" "$AC" StoreObject hasx "$WORK/d1" '' 0 >"$WORK/rd1"
check "online StoreObject: on the server once" eventually 10 server_in Default/conv-DUP "<dup-1@cpm.test>"
check "  nothing pending" eventually 10 acct_is PendingOperations 0
call "$A" "$AC" StoreObject hasx "$WORK/d1" '' 0 >"$WORK/rd2"
check "online StoreObject of the same object again: the same folder and id" \
	test "$(cat "$WORK/rd2")" = "$(cat "$WORK/rd1")"
check "  nothing queued" test "$(acct PendingOperations)" = 0
call "$A" "$AC" Sync >/dev/null
check "  still once on the server after a sync" server_in Default/conv-DUP "<dup-1@cpm.test>"
# The same Message-ID and IMDN-Message-ID, other bytes: another object.
DATE='Sat, 5 Dec 2026 06:09:00 +0000' cpm_obj "$WORK/d2" "<dup-1@cpm.test>" "From: tel:+15550100" \
	"To: tel:+15550700" "Conversation-ID: conv-DUP" "Message-Direction: sent" \
	"IMDN-Message-ID: imdn-dup-1"
call "$A" "$AC" StoreObject hasx "$WORK/d2" '' 0 >"$WORK/rd3"
check "the same ids with other bytes: stored, another id in the same folder" \
	bash -c "[ \"\$(head -n 1 '$WORK/rd3')\" = \"\$(head -n 1 '$WORK/rd1')\" ] && [ \"\$(sed -n 2p '$WORK/rd3')\" != \"\$(sed -n 2p '$WORK/rd1')\" ]"
server_count_is() { [ "$(server_count "$1")" = "$2" ]; }
check "  both on the server" eventually 10 server_count_is "<dup-1@cpm.test>" 2

finish
