#!/usr/bin/env bash
# The daemon over D-Bus, on a private dbus-daemon, against a real Dovecot:
# every method of the contract checked against the server state read back
# with doveadm; signals for server-side changes (push, no Sync call); the
# contract's errors; offline operation across a daemon restart; the server
# stopped and started under the daemon; Manager1.AddAccount/RemoveAccount;
# configuration reload (good and malformed files); the outbox (stored,
# dot-files ignored, unknown account); failed operations (an APPEND without
# the insert right, a keyword too long; retry, discard, cpmctl; the outbox's
# .why of a refused file; a message over the server's size limit and an
# APPEND over quota, both refusals that may pass).
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
# Dovecot's quota plugin (imap only: doveadm saves past it), with room for
# everything this test stores, and a largest message size, for the refusals
# of the failed-operations part.  (The count backend needs quota_vsizes.)
cat >"$WORK/quota.conf" <<'EOF'
protocol imap {
  mail_plugins = $mail_plugins quota imap_quota
}
plugin {
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage=1M
  quota_max_mail_size = 256k
}
EOF
export DOVECOT_EXTRA_CONF=$WORK/quota.conf
dc_start dc
unset DOVECOT_EXTRA_CONF

# --- a private bus, never the user's -----------------------------------------
dbus_setup

get() { "$DBUS" get "$@"; }
# prop PATH IFACE NAME
prop() { get "$1" "$2" "$3"; }
server_has() { # server_has FOLDER MESSAGE-ID
	[ -n "$(da search -u "$USER1" mailbox "$1" header message-id "$2" 2>/dev/null)" ]
}

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"
sed -i "s|^outbox = .*|outbox = $WORK/outbox|" "$CONF"
for i in 1 2 3 4 5; do msg_save "$USER1" INBOX "<seed$i@dbus.test>" 600 '\Seen'; done
msg_save "$USER1" INBOX "<unseen@dbus.test>" 400
"$DBUS" monitor >"$WORK/signals.log" 2>&1 &
MON_PID=$!
SIGMARK=0
sleep 0.2
start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "daemon owns org.cpmsync on the private bus" true
check "account reaches State idle" wait_state idle 20
check "store == server after the initial sync" compare "$WORK/store.db"

# --- Manager1, ObjectManager, Introspectable ------------------------------------
check "Manager1.Version is set" test -n "$(prop /org/cpmsync org.cpmsync.Manager1 Version)"
call /org/cpmsync org.freedesktop.DBus.ObjectManager GetManagedObjects >"$WORK/objects"
check "GetManagedObjects lists the account" grep -q "^$A=" "$WORK/objects"
check "GetManagedObjects lists folder objects" grep -q "^$A/folder[0-9]*=" "$WORK/objects"
call "$A" org.freedesktop.DBus.Introspectable Introspect >"$WORK/intro"
check "Introspect of the account names Account1 and Properties" \
	bash -c "grep -q 'org.cpmsync.Account1' '$WORK/intro' && grep -q 'org.freedesktop.DBus.Properties' '$WORK/intro'"

# --- Account1 properties ----------------------------------------------------------
check "Name" test "$(acct Name)" = a
check "Host" test "$(acct Host)" = localhost
check "User" test "$(acct User)" = "$USER1"
check "PushState notify (Dovecot offers NOTIFY)" test "$(acct PushState)" = notify
check "LastSync set" test "$(acct LastSync)" -gt 0
check "LastServerActivity set" test "$(acct LastServerActivity)" -gt 0
check "ServerCapabilities lists IMAP4rev1" bash -c "'$DBUS' get $A org.cpmsync.Account1 ServerCapabilities | grep -qx -- '- IMAP4rev1'"
check "PendingOperations 0" test "$(acct PendingOperations)" = 0
check "Online true" test "$(acct Online)" = true

# --- folders ------------------------------------------------------------------------
INBOX=$(call "$A" org.cpmsync.Account1 FindFolder s INBOX)
check "FindFolder INBOX gives a folder object" bash -c "[[ '$INBOX' == $A/folder* ]]"
check "FindFolder of an unknown folder: NotFound" \
	bash -c "'$DBUS' call $A org.cpmsync.Account1 FindFolder s Nope | grep -q 'org.cpmsync.Error.NotFound'"
F=org.cpmsync.Folder1
check "Folder Name" test "$(prop "$INBOX" $F Name)" = INBOX
check "Folder Account" test "$(prop "$INBOX" $F Account)" = "$A"
check "Folder Messages == server" test "$(prop "$INBOX" $F Messages)" = 6
check "Folder Unseen" test "$(prop "$INBOX" $F Unseen)" = 1
check "Folder UidValidity == server" \
	test "$(prop "$INBOX" $F UidValidity)" = "$(da -f flow mailbox status -u "$USER1" uidvalidity INBOX | sed 's/.*=//')"
check "Folder Active (INBOX by default)" test "$(prop "$INBOX" $F Active)" = true

# --- reading ----------------------------------------------------------------------------
call "$INBOX" $F ListMessages tu 0 1000 >"$WORK/list"
check "ListMessages returns the 6 summaries" test "$(grep -c '^- ' "$WORK/list")" -eq 6
check "ListMessages summaries carry the contract's keys" \
	bash -c "for k in Id Uid Flags InternalDate Size From To Subject Date MessageId ConversationId ContributionId Type HasBody; do grep -q \"\$k=\" '$WORK/list' || { echo missing \$k; exit 1; }; done"
ID1=$(grep -o 'Id=[0-9]*' "$WORK/list" | head -n 1 | cut -d= -f2)
call "$INBOX" $F ListMessages tu "$ID1" 2 >"$WORK/list2"
check "ListMessages after_id/limit pages" test "$(grep -c '^- ' "$WORK/list2")" -eq 2
check "ListMessages limit too large: InvalidArgs naming limit" \
	bash -c "'$DBUS' call $INBOX $F ListMessages tu 0 100000000 | grep -q 'InvalidArgs.*limit'"
check "ListMessages limit 0: at most 0, an empty array" \
	bash -c "out=\$('$DBUS' call $INBOX $F ListMessages tu 0 0) && [ -z \"\$out\" ]"
call "$INBOX" $F GetMessage t "$ID1" >"$WORK/msg1"
MID1=$(grep -o '^MessageId=.*' "$WORK/msg1" | cut -d= -f2-)
check "GetMessage gives the message" test -n "$MID1"
check "GetMessage of an unknown id: NotFound" \
	bash -c "'$DBUS' call $INBOX $F GetMessage t 999999 | grep -q 'org.cpmsync.Error.NotFound'"
call "$INBOX" $F Fetch ts "$ID1" "" >"$WORK/fetch.body"
SRV_SIZE=$(da -f tab fetch -u "$USER1" size.virtual mailbox INBOX header message-id "$MID1" | tail -n 1)
check "Fetch '' is the whole message (the server's RFC822.SIZE, $SRV_SIZE)" \
	test "$(wc -c <"$WORK/fetch.body")" -eq "$SRV_SIZE"
call "$INBOX" $F FetchFd ts "$ID1" "" >"$WORK/fetchfd.body"
check "FetchFd gives the same bytes" cmp -s "$WORK/fetch.body" "$WORK/fetchfd.body"
call "$INBOX" $F Fetch ts "$ID1" HEADER >"$WORK/fetch.header"
check "Fetch HEADER ends at the blank line" \
	bash -c "tail -c 4 '$WORK/fetch.header' | od -An -c | grep -q '\\\\r  *\\\\n  *\\\\r  *\\\\n' && grep -q 'Message-ID' '$WORK/fetch.header' && ! grep -q 'MIME-Version: 1.0..$' /dev/null"
check "Fetch with a bad section: InvalidArgs" \
	bash -c "'$DBUS' call $INBOX $F Fetch ts $ID1 'BODY[' | grep -q InvalidArgs"
call "$INBOX" $F Search 'a{sv}' "Subject=s:test <unseen@dbus.test>" >"$WORK/search"
check "Search by Subject finds the one message" test "$(grep -c '^- ' "$WORK/search")" -eq 1
call "$INBOX" $F Search 'a{sv}' "NotFlags=as:\\Seen" >"$WORK/search2"
check "Search NotFlags \\Seen finds the unseen one" test "$(grep -c '^- ' "$WORK/search2")" -eq 1
check "Search with an unknown key: InvalidArgs" \
	bash -c "'$DBUS' call $INBOX $F Search a{sv} 'Colour=s:red' | grep -q InvalidArgs"
# The server's SINCE/BEFORE are whole days: the exact bounds are ours.
LAST_DATE=$(grep -o 'InternalDate=[0-9]*' "$WORK/list" | cut -d= -f2 | sort -n | tail -n 1)
call "$INBOX" $F Search 'a{sv}' "Since=x:$((LAST_DATE + 1))" >"$WORK/search3"
check "Search Since a second after the newest message: none (online, as offline)" \
	test "$(grep -c '^- ' "$WORK/search3")" -eq 0
call "$INBOX" $F Search 'a{sv}' "Before=x:$((LAST_DATE + 1))" >"$WORK/search4"
check "Search Before a second after the newest message: all 6" \
	test "$(grep -c '^- ' "$WORK/search4")" -eq 6
call "$INBOX" $F Search 'a{sv}' "Before=x:253402300799" >"$WORK/search5"
check "Search Before the end of 9999 (no BEFORE the server could read): all 6" \
	test "$(grep -c '^- ' "$WORK/search5")" -eq 6
check "Search Since after 9999: InvalidArgs naming Since (it crashed the daemon)" \
	test "$(call "$INBOX" $F Search 'a{sv}' "Since=x:9223372036854775807")" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: criteria: Since after 9999-12-31 23:59:59 UTC (an IMAP date has a four-digit year)"
check "Search Before after 9999: InvalidArgs naming Before" \
	bash -c "'$DBUS' call $INBOX $F Search a{sv} 'Before=x:4611686018427387904' | grep -q '^error org.freedesktop.DBus.Error.InvalidArgs: criteria: Before after 9999'"

# --- changes -------------------------------------------------------------------------------
msg_text "<stored@dbus.test>" 500 >"$WORK/stored.eml"
sigmark
NEW=$(call "$INBOX" $F Store ayasx "@$WORK/stored.eml" '\Flagged' 0)
check "Store returns an id" test "$NEW" -gt 0 2>/dev/null
check "Store: the message reaches the server" eventually 10 server_has INBOX "<stored@dbus.test>"
check "Store: on the server with its flag" eventually 5 bash -c "(. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" -f flow fetch -u $USER1 flags mailbox INBOX header message-id '<stored@dbus.test>') | grep -q Flagged"
check "Store: the local message got its UID" eventually 5 bash -c "'$DBUS' call $INBOX $F GetMessage t $NEW | grep -q '^Uid=[1-9]'"
check "  MessagesChanged holds Id and Uid only (contract: the fields that changed)" \
	eventually 5 saw_signal "^$INBOX $F MessagesChanged \\[\\{Id=$NEW;Uid=[1-9][0-9]*\\}\\]\$"
check "Store: MessagesAdded was emitted" eventually 5 saw_signal "MessagesAdded"
msg_text "<storedfd@dbus.test>" 70000 >"$WORK/storedfd.eml"
NEWFD=$(call "$INBOX" $F StoreFd hasx "$WORK/storedfd.eml" "" 0)
check "StoreFd returns an id" test "$NEWFD" -gt 0 2>/dev/null
check "StoreFd: the message reaches the server" eventually 10 server_has INBOX "<storedfd@dbus.test>"
check "Store of an empty message: InvalidArgs" \
	bash -c "'$DBUS' call $INBOX $F Store ayasx '' '' 0 | grep -q InvalidArgs"
check "Store of text that is not a message: InvalidArgs naming content and line 1" \
	test "$(call "$INBOX" $F Store ayasx 'shopping list' '' 0)" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: content: not a message: line 1 ("shopping list") is not a header field (Name: value) or the continuation of one; a message starts with its header, ended by an empty line (RFC 5322)'
printf 'Subject: binary\r\n\r\n\0\1\2' >"$WORK/nul.eml" || bail "cannot write nul.eml"
check "StoreFd of a message with a NUL byte: InvalidArgs naming the byte" \
	test "$(call "$INBOX" $F StoreFd hasx "$WORK/nul.eml" '' 0)" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: content: not a message: byte 19 is NUL: an IMAP message cannot hold NUL bytes (RFC 3501)'
check "  the daemon logs the failed StoreFd, naming account, folder and reason" \
	grep -qxF "cpm-syncd: a: StoreFd into folder 'INBOX' failed: content: not a message: byte 19 is NUL: an IMAP message cannot hold NUL bytes (RFC 3501)" "$WORK/daemon.log"
# logged "CALL failed: REASON": the daemon's log holds "cpm-syncd: a: CALL failed: REASON"
logged() { grep -qxF -- "cpm-syncd: $1" "$WORK/daemon.log" || { echo "    not in the daemon's log: $1"; return 1; }; }
# logged_reply ACCOUNT-AND-CALL REPLY: REPLY is an error, logged with its text
logged_reply() {
	[[ $2 == "error "*": "* ]] || { echo "    not an error reply: $2"; return 1; }
	logged "$1 failed: ${2#error *: }"
}
check "SetFlags with a bad flag: InvalidArgs" \
	bash -c "'$DBUS' call $INBOX $F SetFlags atasas $ID1 'bad flag' '' | grep -q InvalidArgs"
check "SetFlags adding an unknown system flag: InvalidArgs naming add" \
	test "$(call "$INBOX" $F SetFlags atasas "$ID1" '\Bogus' '')" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: add: flag '\\Bogus' is not a system flag (\\Answered, \\Deleted, \\Draft, \\Flagged, \\Seen)"
check "  the daemon logs the failed SetFlags: account, folder, the argument and why" \
	logged "a: SetFlags in folder 'INBOX' failed: add: flag '\\Bogus' is not a system flag (\\Answered, \\Deleted, \\Draft, \\Flagged, \\Seen)"
check "SetFlags removing one: InvalidArgs naming remove" \
	test "$(call "$INBOX" $F SetFlags atasas "$ID1" '' '\Bogus')" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: remove: flag '\\Bogus' is not a system flag (\\Answered, \\Deleted, \\Draft, \\Flagged, \\Seen)"
check "SetFlags adding \\Recent: InvalidArgs naming add" \
	test "$(call "$INBOX" $F SetFlags atasas "$ID1" '\Recent' '')" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: add: flag \\Recent cannot be set (the server sets it)"
check "Store with \\Recent: InvalidArgs naming flags" \
	test "$(call "$INBOX" $F Store ayasx "@$WORK/stored.eml" '\Recent' 0)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: flags: flag \\Recent cannot be set (the server sets it)"
check "SetFlags of an unknown id: NotFound" \
	bash -c "'$DBUS' call $INBOX $F SetFlags atasas 999999 '\\Flagged' '' | grep -q NotFound"
sigmark
call "$INBOX" $F SetFlags atasas "$ID1" '$Work,\Answered' '\Seen' >/dev/null
check "  each failed SetFlags logged once (5), the one that worked not" \
	test "$(grep -c "^cpm-syncd: a: SetFlags in folder 'INBOX' failed: " "$WORK/daemon.log")" -eq 5
check "SetFlags: MessagesChanged holds Id and Flags only" \
	eventually 5 saw_signal "^$INBOX $F MessagesChanged \\[\\{Id=$ID1;Flags=\\[[^]]*Work[^]]*\\]\\}\\]\$"
check "SetFlags reaches the server" eventually 10 bash -c "f=\$(. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" -f flow fetch -u $USER1 flags mailbox INBOX header message-id '$MID1'); [[ \$f == *Answered* && \$f == *Work* && \$f != *Seen* ]]"
check "Copy into an unknown folder: NotFound" \
	test "$(call "$INBOX" $F Copy ats "$ID1" Nope)" = \
	"error org.cpmsync.Error.NotFound: no folder 'Nope' in account 'a'"
check "  the daemon logs the failed Copy" logged "a: Copy from folder 'INBOX' failed: no folder 'Nope' in account 'a'"
COPY=$(call "$INBOX" $F Copy ats "$ID1" Sent | sed 's/^- //')
check "Copy returns the new id" test "$COPY" -gt 0 2>/dev/null
check "Copy reaches the server" eventually 10 server_has Sent "$MID1"
MID2=$(call "$INBOX" $F GetMessage t "$NEWFD" | grep '^MessageId=' | cut -d= -f2-)
check "Move into the folder it is in: InvalidArgs naming destination" \
	test "$(call "$INBOX" $F Move ats "$NEWFD" INBOX)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: destination: message $NEWFD is already in \"INBOX\""
check "  the daemon logs the failed Move" \
	logged "a: Move from folder 'INBOX' failed: destination: message $NEWFD is already in \"INBOX\""
call "$INBOX" $F Move ats "$NEWFD" Trash >/dev/null
check "Move reaches the server (in Trash)" eventually 10 server_has Trash "$MID2"
check "Move reaches the server (gone from INBOX)" eventually 10 bash -c "! (. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" search -u $USER1 mailbox INBOX header message-id '$MID2' | grep -q .)"
check "Delete of an unknown id: NotFound, logged with its text" \
	logged_reply "a: Delete in folder 'INBOX'" "$(call "$INBOX" $F Delete at 999999)"
call "$INBOX" $F Delete at "$NEW" >/dev/null
check "Delete sets \\Deleted on the server" eventually 10 bash -c "(. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" -f flow fetch -u $USER1 flags mailbox INBOX header message-id '<stored@dbus.test>') | grep -q Deleted"
call "$INBOX" $F Expunge >/dev/null
check "Expunge removes it on the server" eventually 10 bash -c "! (. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" search -u $USER1 mailbox INBOX header message-id '<stored@dbus.test>' | grep -q .)"
NEWF=$(call "$A" org.cpmsync.Account1 CreateFolder s "Über Ordner")
check "CreateFolder returns a folder object" bash -c "[[ '$NEWF' == $A/folder* ]]"
check "CreateFolder with an empty level: InvalidArgs naming name" \
	test "$(call "$A" org.cpmsync.Account1 CreateFolder s "a/")" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: name: invalid folder name "a/": empty level'
check "  the daemon logs the failed CreateFolder" \
	logged 'a: CreateFolder failed: name: invalid folder name "a/": empty level'
check "DeleteFolder INBOX: InvalidArgs naming name" \
	bash -c "'$DBUS' call $A org.cpmsync.Account1 DeleteFolder s INBOX | grep -q '^error org.freedesktop.DBus.Error.InvalidArgs: name: '"
check "CreateFolder reaches the server" eventually 10 bash -c "(. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" mailbox list -u $USER1) | grep -qx 'Über Ordner'"
check "RenameFolder of INBOX: InvalidArgs naming name" \
	test "$(call "$A" org.cpmsync.Account1 RenameFolder ss INBOX Other)" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: name: INBOX cannot be renamed'
check "  the daemon logs the failed RenameFolder" logged 'a: RenameFolder failed: name: INBOX cannot be renamed'
check "RenameFolder to a name with an empty level: InvalidArgs naming new_name" \
	test "$(call "$A" org.cpmsync.Account1 RenameFolder ss "Über Ordner" "a/")" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: new_name: invalid folder name "a/": empty level'
check "RenameFolder below itself: InvalidArgs naming new_name" \
	test "$(call "$A" org.cpmsync.Account1 RenameFolder ss "Über Ordner" "Über Ordner/x")" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: new_name: cannot rename "Über Ordner" to itself or below itself'
check "RenameFolder to its own name: InvalidArgs naming new_name (was Failed)" \
	test "$(call "$A" org.cpmsync.Account1 RenameFolder ss "Über Ordner" "Über Ordner")" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: new_name: cannot rename "Über Ordner" to itself or below itself'
check "RenameFolder of an unknown folder to its own name: NotFound still" \
	bash -c "'$DBUS' call $A org.cpmsync.Account1 RenameFolder ss Nope Nope | grep -q '^error org.cpmsync.Error.NotFound: '"
call "$A" org.cpmsync.Account1 RenameFolder ss "Über Ordner" "Renamed" >/dev/null
check "RenameFolder reaches the server" eventually 10 bash -c "(. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" mailbox list -u $USER1) | grep -qx Renamed"
call "$A" org.cpmsync.Account1 DeleteFolder s Renamed >/dev/null
check "DeleteFolder reaches the server" eventually 10 bash -c "! (. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" mailbox list -u $USER1) | grep -qx Renamed"
check "DeleteFolder of an unknown folder: NotFound" \
	bash -c "'$DBUS' call $A org.cpmsync.Account1 DeleteFolder s Nope | grep -q NotFound"
check "  the daemon logs the failed DeleteFolder with its text" \
	logged_reply "a: DeleteFolder" "$(call "$A" org.cpmsync.Account1 DeleteFolder s Nope)"
check "SetMetadata of an unknown folder: NotFound, logged with its text" \
	logged_reply "a: SetMetadata" "$(call "$A" org.cpmsync.Account1 SetMetadata 'sa{ss}' Nope "/private/comment=x")"
call "$A" org.cpmsync.Account1 SetMetadata 'sa{ss}' INBOX "/private/comment=hello dbus" >/dev/null
check "SetMetadata reaches the server" eventually 10 bash -c "(. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" mailbox metadata get -u $USER1 INBOX /private/comment) | grep -q 'hello dbus'"
check "GetMetadata reads it back from the server" \
	bash -c "'$DBUS' call $A org.cpmsync.Account1 GetMetadata sas INBOX /private/comment | grep -qx '/private/comment=hello dbus'"
call "$A" org.cpmsync.Account1 SetAcl sss INBOX "$USER2" lr >/dev/null
check "SetAcl reaches the server" eventually 10 bash -c "'$DBUS' call $A org.cpmsync.Account1 GetAcl s INBOX | grep -q '^user=$USER2=lr\$\|^$USER2=lr\$'"
check "MyRights answers" bash -c "'$DBUS' call $A org.cpmsync.Account1 MyRights s INBOX | grep -q l"
call "$A" org.cpmsync.Account1 DeleteAcl ss INBOX "$USER2" >/dev/null
check "DeleteAcl reaches the server" eventually 10 bash -c "! '$DBUS' call $A org.cpmsync.Account1 GetAcl s INBOX | grep -q '$USER2'"
# Dovecot has no CONVERT: converted locally (test-preview.sh has the rest).
check "Preview of a text part as an image: NotSupported names its type" \
	test "$("$DBUS" call "$INBOX" $F Preview tssuu "$ID1" 1 image/jpeg 160 120)" = \
	"error org.cpmsync.Error.NotSupported: text/plain (no image/jpeg preview of it)"
sigmark
check "Sync returns at once" call "$A" org.cpmsync.Account1 Sync
check "Sync: SyncProgress for the account" eventually 5 saw_signal "$A org.cpmsync.Account1 SyncProgress"
check "store == server after the changes" eventually 10 compare "$WORK/store.db"

# --- push: server-side changes as signals, no Sync call -----------------------------------
sigmark
msg_save "$USER1" INBOX "<pushed@dbus.test>"
check "push: MessagesAdded for a delivery by another client" eventually 5 saw_signal "$INBOX org.cpmsync.Folder1 MessagesAdded .*pushed@dbus.test"
sigmark
da flags add -u "$USER1" '\Flagged' mailbox INBOX header message-id "<pushed@dbus.test>"
check "push: MessagesChanged for a flag change by another client" eventually 5 saw_signal "$INBOX org.cpmsync.Folder1 MessagesChanged"
check "  holding Id and Flags only (no Uid, HasBody, Status: unchanged)" \
	saw_signal "^$INBOX org.cpmsync.Folder1 MessagesChanged \\[\\{Id=[0-9]+;Flags=\\[[^]]*Flagged[^]]*\\]\\}\\]\$"
sigmark
da expunge -u "$USER1" mailbox INBOX header message-id "<pushed@dbus.test>"
T0=$(date +%s.%N)
check "push: MessagesRemoved for an expunge by another client" eventually 5 saw_signal "$INBOX org.cpmsync.Folder1 MessagesRemoved"
echo "# expunge by another client seen after <= $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s"
check "push: PropertiesChanged for the folder's Messages" saw_signal "$INBOX org.freedesktop.DBus.Properties PropertiesChanged org.cpmsync.Folder1"

# --- offline -------------------------------------------------------------------------------------
"$DBUS" set "$A" org.cpmsync.Account1 Online b false >/dev/null
check "Online=false: State offline" wait_state offline 5
check "Online=false: PushState off" test "$(acct PushState)" = off
check "Online=false: Sync fails with Offline, naming the account and why" \
	test "$(call "$A" org.cpmsync.Account1 Sync)" = \
	"error org.cpmsync.Error.Offline: account 'a' is offline (Online is false)"
msg_text "<offline@dbus.test>" 400 >"$WORK/offline.eml"
OFF=$(call "$INBOX" $F Store ayasx "@$WORK/offline.eml" "" 0)
check "offline: Store accepted" test "$OFF" -gt 0 2>/dev/null
check "offline: SetFlags accepted" call "$INBOX" $F SetFlags atasas "$ID1" '\Flagged' ''
SENTF=$(call "$A" org.cpmsync.Account1 FindFolder s Sent)
MV=$(call "$SENTF" $F ListMessages tu 0 1 | grep -o 'Id=[0-9]*' | head -n 1 | cut -d= -f2)
MVMID=$(call "$SENTF" $F GetMessage t "$MV" | grep '^MessageId=' | cut -d= -f2-)
check "offline: Move accepted" bash -c "'$DBUS' call $SENTF $F Move ats $MV Drafts | grep -q '^- [0-9]'"
check "offline: CreateFolder accepted" bash -c "'$DBUS' call $A org.cpmsync.Account1 CreateFolder s Offline | grep -q folder"
check "offline: PendingOperations counts them" test "$(acct PendingOperations)" -ge 4
check "offline: GetMetadata fails with Offline" \
	bash -c "'$DBUS' call $A org.cpmsync.Account1 GetMetadata sas INBOX /private/comment | grep -q org.cpmsync.Error.Offline"
sleep 1
check "offline: nothing reached the server" bash -c "! (. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" search -u $USER1 mailbox INBOX header message-id '<offline@dbus.test>' | grep -q .)"
# A hard stop while offline: the journal survives it.
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
start_daemon || bail "cpm-syncd did not restart"
# Online false is the user's and outlives the restart (kept in the store):
# still offline, nothing sent, until set true.
check "after a restart: still Online false" test "$(acct Online)" = false
check "after a restart: State offline" test "$(acct State)" = offline
check "after a restart: nothing reached the server" bash -c "! (. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" search -u $USER1 mailbox INBOX header message-id '<offline@dbus.test>' | grep -q .)"
"$DBUS" set "$A" org.cpmsync.Account1 Online b true >/dev/null
check "after a restart and Online=true: the offline Store reached the server" eventually 15 server_has INBOX "<offline@dbus.test>"
check "after a restart: the offline Move reached the server" eventually 10 server_has Drafts "$MVMID"
check "after a restart: the offline CreateFolder reached the server" eventually 10 bash -c "(. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" mailbox list -u $USER1) | grep -qx Offline"
check "after a restart: PendingOperations 0" eventually 10 test "$(acct PendingOperations)" = 0
check "after a restart: store == server" eventually 10 compare "$WORK/store.db"

# --- the server stops and starts under the daemon ----------------------------------------------
da stop >/dev/null 2>&1
check "server stopped: State leaves idle" eventually 10 bash -c "[ \"\$('$DBUS' get $A org.cpmsync.Account1 State)\" != idle ]"
check "server stopped: LastError says why" test -n "$(acct LastError)"
dovecot -c "$DOVECOT_CONF" || bail "cannot restart dovecot"
check "server back: State idle again" wait_state idle 30
sigmark
msg_save "$USER1" INBOX "<after-restart@dbus.test>"
check "server back: push works" eventually 5 saw_signal "MessagesAdded .*after-restart@dbus.test"

msg_save "$USER2" INBOX "<bob1@dbus.test>" 3000
# --- Manager1.AddAccount / RemoveAccount ----------------------------------------------------------
# Issue 13: paths are refused.  The exfiltration attempt: an account of the caller's own, on a
# server of its choosing, whose password is account a's password file.
cp "$CONF" "$WORK/conf.before-steal"
check "AddAccount with PasswordFile=a's password file: refused with InvalidArgs naming PasswordFile" \
	test "$("$DBUS" call /org/cpmsync org.cpmsync.Manager1 AddAccount 'sa{sv}' steal \
		"Host=s:127.0.0.1,Security=s:none,User=s:attacker,PasswordFile=s:$WORK/alice.pw")" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: settings: PasswordFile is not accepted: paths and commands belong in the configuration file only (give Password)"
check "  the daemon logs the failed AddAccount, naming the account and the argument" \
	logged "steal: AddAccount failed: settings: PasswordFile is not accepted: paths and commands belong in the configuration file only (give Password)"
check "AddAccount with PasswordCommand: refused naming it" \
	bash -c "'$DBUS' call /org/cpmsync org.cpmsync.Manager1 AddAccount 'sa{sv}' steal 'Host=s:127.0.0.1,Security=s:none,User=s:x,PasswordCommand=s:cat $WORK/alice.pw' | grep -qx 'error org.freedesktop.DBus.Error.InvalidArgs: settings: PasswordCommand is not accepted: .*'"
check "AddAccount with CaFile: refused naming it" \
	bash -c "'$DBUS' call /org/cpmsync org.cpmsync.Manager1 AddAccount 'sa{sv}' steal 'Host=s:localhost,User=s:x,Password=s:y,CaFile=s:$CA_FILE' | grep -qx 'error org.freedesktop.DBus.Error.InvalidArgs: settings: CaFile is not accepted: .*'"
check "the refused AddAccounts changed nothing in the configuration" cmp -s "$CONF" "$WORK/conf.before-steal"
check "the refused AddAccounts exported no account" \
	bash -c "'$DBUS' get /org/cpmsync/steal org.cpmsync.Account1 State | grep -q '^error'"
check "AddAccount with a CaCertificate that is not PEM: InvalidArgs naming it" \
	bash -c "'$DBUS' call /org/cpmsync org.cpmsync.Manager1 AddAccount 'sa{sv}' c 'Host=s:localhost,User=s:x,Password=s:y,CaCertificate=ay:$CA_FILE' | grep -qx 'error org.freedesktop.DBus.Error.InvalidArgs: settings: CaCertificate must be PEM: .*'"

B2=$(call /org/cpmsync org.cpmsync.Manager1 AddAccount 'sa{sv}' b \
	"Host=s:localhost,Port=q:$IMAPS_PORT,Security=s:tls,User=s:$USER2,Password=s:$PASS2,CaCertificate=ay:@$CA_FILE,SyncBodies=s:none")
check "AddAccount returns /org/cpmsync/b" test "$B2" = /org/cpmsync/b
check "AddAccount wrote the section" grep -q '^\[account b\]' "$CONF"
check "AddAccount: password file 0600 beside it" \
	bash -c "f=\$(sed -n 's/^password_file *= *//p' '$CONF' | tail -n 1); [ \"\$f\" = '$(dirname "$CONF")/b.password' ] && [ \"\$(stat -c %a \"\$f\")\" = 600 ]"
check "AddAccount: CaCertificate kept in a 0600 file of the daemon's, with the bytes given" \
	bash -c "f=\$(sed -n 's/^ca_file *= *//p' '$CONF' | tail -n 1); [ \"\$f\" = '$(dirname "$CONF")/b.ca.pem' ] && [ \"\$(stat -c %a \"\$f\")\" = 600 ] && cmp -s \"\$f\" '$CA_FILE'"
check "AddAccount: the password is not in the config" bash -c "! grep -qF -- '$PASS2' '$CONF'"
check "AddAccount: the new account syncs" eventually 20 bash -c "[ \"\$('$DBUS' get /org/cpmsync/b org.cpmsync.Account1 State)\" = idle ]"
# sync_bodies = none: bodies stay on the server and Fetch gets them there.
BIN=$(call /org/cpmsync/b org.cpmsync.Account1 FindFolder s INBOX)
BID=$(call "$BIN" $F ListMessages tu 0 10 | grep -o 'Id=[0-9]*' | head -n 1 | cut -d= -f2)
check "sync_bodies none: the body is not stored (HasBody false)" \
	bash -c "'$DBUS' call $BIN $F GetMessage t $BID | grep -qx 'HasBody=false'"
call "$BIN" $F Fetch ts "$BID" "" >"$WORK/remote.body"
BSIZE=$(da -f tab fetch -u "$USER2" size.virtual mailbox INBOX header message-id "<bob1@dbus.test>" | tail -n 1)
check "Fetch of a body kept on the server: fetched from it ($BSIZE bytes)" \
	test "$(wc -c <"$WORK/remote.body")" -eq "$BSIZE"
call "$BIN" $F FetchFd ts "$BID" HEADER >"$WORK/remote.header"
check "FetchFd HEADER of a body kept on the server" \
	bash -c "grep -q 'bob1@dbus.test' '$WORK/remote.header' && [ \$(wc -c <'$WORK/remote.header') -lt $BSIZE ]"
check "AddAccount with an unknown key: InvalidArgs naming it" \
	bash -c "'$DBUS' call /org/cpmsync org.cpmsync.Manager1 AddAccount sa{sv} c 'Host=s:x,User=s:y,Password=s:z,Colour=s:red' | grep -q 'InvalidArgs.*Colour'"
check "AddAccount of an existing name fails" \
	bash -c "'$DBUS' call /org/cpmsync org.cpmsync.Manager1 AddAccount sa{sv} b 'Host=s:x,User=s:y,Password=s:z' | grep -q '^error'"
# A change b queued offline, then b removed: it must not reach the mailbox of a
# later account of the same name (here alice's).
"$DBUS" set /org/cpmsync/b org.cpmsync.Account1 Online b false >/dev/null
msg_text "<b-private@dbus.test>" 400 >"$WORK/b-private.eml"
check "b offline: a Store is queued" test "$(call "$BIN" $F Store ayasx "@$WORK/b-private.eml" '' 0)" -gt 0
check "b offline: one change pending" test "$("$CPMCTL" pending --db "$WORK/store.db" b | grep -c 'store')" -eq 1
call /org/cpmsync org.cpmsync.Manager1 RemoveAccount o /org/cpmsync/b >/dev/null
check "RemoveAccount drops the section" bash -c "! grep -q '^\[account b\]' '$CONF'"
check "RemoveAccount deletes the daemon's files of the account" \
	bash -c "[ ! -e '$(dirname "$CONF")/b.password' ] && [ ! -e '$(dirname "$CONF")/b.ca.pem' ]"
check "RemoveAccount unexports the object" eventually 5 bash -c "'$DBUS' get /org/cpmsync/b org.cpmsync.Account1 State | grep -q '^error'"
# The store no longer knows b: dump and pending say so (exit 1), and list
# every account it holds, b not among them.
gone_b() {
	local out
	out=$("$CPMCTL" "$1" --db "$WORK/store.db" b 2>&1) && return 1
	[[ $out == "cpmctl: unknown account 'b'; the store '$WORK/store.db' holds: "* ]] &&
		! grep -qE 'holds: (.*, )?b(,|$)' <<<"$out"
}
# (once its saved files are synced to disk, after the reply)
check "RemoveAccount removes b's data from the store" eventually 10 gone_b dump
check "RemoveAccount removes b's queued change" gone_b pending
check "RemoveAccount: the daemon says what it dropped, and where it saved it" \
	eventually 5 grep -qxE "cpm-syncd: b: removed from the configuration, and its data from the store, with 1 local change\\(s\\) it had not sent, saved in $XDG_DATA_HOME/cpmsync/removed/b-[0-9]{8}T[0-9]{6}Z \\(1 new message\\(s\\) as \\.eml files, the 1 change\\(s\\) listed in unsent\\.txt\\)" "$WORK/daemon.log"
check "RemoveAccount saved b's queued message as it was stored" \
	cmp "$WORK/b-private.eml" "$XDG_DATA_HOME"/cpmsync/removed/b-*/001.eml
check "AddAccount with a CpmRoot that is not a folder name: InvalidArgs naming CpmRoot" \
	test "$(call /org/cpmsync org.cpmsync.Manager1 AddAccount 'sa{sv}' c 'Host=s:x,User=s:y,Password=s:z,CpmRoot=s:/Chats')" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: settings: CpmRoot must be a folder name ("": the top level)'
B3=$(call /org/cpmsync org.cpmsync.Manager1 AddAccount 'sa{sv}' b \
	"Host=s:localhost,Port=q:$IMAPS_PORT,Security=s:tls,User=s:$USER1,Password=s:$PASS1,CaCertificate=ay:@$CA_FILE,CpmRoot=s:Chats")
check "b added again, now alice's" test "$B3" = /org/cpmsync/b
check "AddAccount with CpmRoot (contract 2): cpm_root written" grep -qx 'cpm_root = Chats' "$CONF"
check "the new b syncs" eventually 20 bash -c "[ \"\$('$DBUS' get /org/cpmsync/b org.cpmsync.Account1 State)\" = idle ]"
check "the new b's Account1.CpmRoot is Chats" test "$("$DBUS" get /org/cpmsync/b org.cpmsync.Account1 CpmRoot)" = Chats
check "the old b's queued message did not reach alice's mailbox" \
	eval 'out=$(da search -u "$USER1" mailbox INBOX header message-id "<b-private@dbus.test>") && [ -z "$out" ]'
call /org/cpmsync org.cpmsync.Manager1 RemoveAccount o /org/cpmsync/b >/dev/null
check "the new b removed too" eventually 5 bash -c "'$DBUS' get /org/cpmsync/b org.cpmsync.Account1 State | grep -q '^error'"

# --- dates ---------------------------------------------------------------------------------------------
# A message without a Date header that can be read has its internal date
# as Date (RFC 5256), by Store and by the sync; a named zone other than the
# US ones is read (as UTC); an APPEND's date the server does not keep (Dovecot
# keeps the time of the APPEND for one at or after 2^31) is replaced by the
# server's, here and on the server alike.
da mailbox create -u "$USER1" Dates || bail "doveadm mailbox create Dates"
dates_found() { DATES=$(call "$A" org.cpmsync.Account1 FindFolder s Dates) && [[ $DATES == $A/folder* ]]; }
eventually 15 dates_found || bail "the folder Dates never came"
DATES=$(call "$A" org.cpmsync.Account1 FindFolder s Dates)
printf 'From: a@dates.test\r\nSubject: no date\r\nMessage-ID: <nodate@dates.test>\r\n\r\nx\r\n' \
	>"$WORK/nodate.eml"
# (A past date: Dovecot keeps none more than 2 hours ahead, and the sync
# that follows at once would put its own in.)
ND=$(call "$DATES" $F Store ayasx "@$WORK/nodate.eml" '' 1700000000)
call "$DATES" $F GetMessage t "$ND" >"$WORK/nodate.msg"
check "Store without Date: Date is the internal date asked" \
	bash -c "grep -qx 'Date=1700000000' '$WORK/nodate.msg' && grep -qx 'InternalDate=1700000000' '$WORK/nodate.msg'"
printf 'From: b@dates.test\r\nSubject: server no date\r\nMessage-ID: <srvnodate@dates.test>\r\n\r\nx\r\n' |
	da save -u "$USER1" -m Dates || bail "doveadm save (no Date)"
printf 'From: c@dates.test\r\nSubject: msk\r\nDate: Sat, 5 Dec 2026 09:00:00 MSK\r\nMessage-ID: <msk@dates.test>\r\n\r\nx\r\n' |
	da save -u "$USER1" -m Dates || bail "doveadm save (MSK)"
dates_list() {
	call "$DATES" "$F" ListMessages tu 0 100 >"$WORK/dates.list" &&
		[ "$(grep -c '^- ' "$WORK/dates.list")" -ge 3 ] 2>/dev/null
}
# field MESSAGE-ID KEY: KEY's value in that message's ListMessages summary
field() { grep -F "MessageId=$1;" "$WORK/dates.list" | grep -o "[{;]$2=[^;}]*" | cut -d= -f2; }
eventually 15 dates_list || true
undated_synced() {
	local d i
	d=$(field "<srvnodate@dates.test>" Date)
	i=$(field "<srvnodate@dates.test>" InternalDate)
	if [ -z "$d" ] || [ "$d" = 0 ] || [ "$d" != "$i" ]; then
		echo "    Date '$d' InternalDate '$i'"
		return 1
	fi
}
check "synced without Date: Date is the server's INTERNALDATE (not 0)" undated_synced
check "synced with a Date in MSK: read, as UTC" \
	test "$(field "<msk@dates.test>" Date)" = 1796461200
msg_text "<bigdate@dates.test>" 300 >"$WORK/bigdate.eml"
T0=$(date +%s)
BIG=$(call "$DATES" $F Store ayasx "@$WORK/bigdate.eml" '' 2147483648)
check "Store with date 2^31: on the server" eventually 10 server_has Dates "<bigdate@dates.test>"
adopted() { # the local InternalDate is the server's: the APPEND's time, not 2^31
	local i
	i=$("$DBUS" call "$DATES" "$F" GetMessage t "$BIG" | sed -n 's/^InternalDate=//p')
	[ -n "$i" ] && [ "$i" -ge "$T0" ] && [ "$i" -le "$(($(date +%s) + 1))" ]
}
check "  its InternalDate is the server's (the time of the APPEND), not 2^31" eventually 10 adopted
check "  Search Before 2^31 finds it, as the server's date says" \
	bash -c "'$DBUS' call '$DATES' $F Search a{sv} 'Before=x:2147483648' | grep -qx -- '- $BIG'"
# A date a year ahead (Dovecot keeps the time of the APPEND for one more
# than 2 hours ahead), queued offline and sent by the next connection: its
# pull compares the newest UID of Dates (this message) with the server's
# before anything of the folder is applied.  The store's date asked is no
# proof of another mailbox: the account stays idle, and takes the server's.
"$DBUS" set "$A" org.cpmsync.Account1 Online b false >/dev/null || bail "set Online false"
wait_state offline 5 || bail "Online=false: State $(acct State)"
msg_text "<fut400d@dates.test>" 300 >"$WORK/fut.eml"
FUT=$(call "$DATES" $F Store ayasx "@$WORK/fut.eml" '' $(($(date +%s) + 400 * 86400)))
[[ $FUT =~ ^[0-9]+$ ]] || bail "Store a year ahead: $FUT"
sigmark
"$DBUS" set "$A" org.cpmsync.Account1 Online b true >/dev/null || bail "set Online true"
check "Store a year ahead, offline, then online: on the server" \
	eventually 10 server_has Dates "<fut400d@dates.test>"
fut_server_date() {
	local d
	d=$(da fetch -u "$USER1" date.received mailbox Dates header message-id "<fut400d@dates.test>" |
		sed -n 's/^date.received: //p') && [ -n "$d" ] && date -d "$d" +%s
}
FUT_SRV=$(fut_server_date) || bail "doveadm fetch date.received of <fut400d@dates.test>"
sync_all_idle() { # SyncAll, then its run over (SyncGeneration moved): State idle
	local before
	if before=$(acct SyncGeneration) && call "$A" org.cpmsync.Account1 SyncAll >/dev/null &&
		eventually 10 bash -c "[ \"\$('$DBUS' get $A org.cpmsync.Account1 SyncGeneration)\" != '$before' ]" &&
		wait_state idle 5; then
		return 0
	fi
	echo "    State $(acct State): $(acct LastError)"
	return 1
}
check "  SyncAll: State stays idle" sync_all_idle
check "  SyncAll again: State stays idle" sync_all_idle
check "  LastError empty" test -z "$(acct LastError)"
check "  its InternalDate is the server's date.received" \
	test "$(call "$DATES" $F GetMessage t "$FUT" | sed -n 's/^InternalDate=//p')" = "$FUT_SRV"
check "  no failed operation" test "$(acct FailedOperations)" = 0
fut_changed() {
	saw_signal "^$DATES $F MessagesChanged \\[.*\\{Id=$FUT;[^}]*InternalDate=${FUT_SRV}[;}]" || {
		signals_since | grep "MessagesChanged" | sed 's/^/    /'
		return 1
	}
}
check "  MessagesChanged carries the server's InternalDate" eventually 5 fut_changed

# --- configuration reload ------------------------------------------------------------------------------
cp "$CONF" "$WORK/good.conf"
cat >>"$CONF.new" <"$CONF"
cat >>"$CONF.new" <<EOF
[account c]
host = localhost
port = $IMAPS_PORT
ca_file = $CA_FILE
user = $USER2
password_file = $WORK/alice.pw
EOF
mv "$CONF.new" "$CONF"
check "reload: an account added to the file appears (rename-over save)" \
	eventually 10 bash -c "'$DBUS' get /org/cpmsync/c org.cpmsync.Account1 Name | grep -qx c"
check "reload: c takes a local change (CreateFolder, queued)" \
	bash -c "'$DBUS' call /org/cpmsync/c org.cpmsync.Account1 CreateFolder s Orphan | grep -q '^/org/cpmsync/'"
printf '[account d]\nhost = x\nbogus line\n' >>"$CONF"
sleep 1.5
check "reload: a malformed file is refused with file:line:reason" \
	grep -qE "cpmsync.conf:[0-9]+: .*bogus|cpmsync.conf:[0-9]+:" "$WORK/daemon.log"
check "reload: the last good configuration stays" \
	bash -c "'$DBUS' get /org/cpmsync/c org.cpmsync.Account1 Name | grep -qx c && '$DBUS' get $A org.cpmsync.Account1 Name | grep -qx a"
cp "$WORK/good.conf" "$CONF"
check "reload: an account removed from the file goes away" \
	eventually 10 bash -c "'$DBUS' get /org/cpmsync/c org.cpmsync.Account1 Name | grep -q '^error'"
check "reload: ...saying that its queued change stays behind" grep -qF \
	"c: removed from the configuration with 1 local change(s) not yet sent and 0 failed operation(s): they stay in the store for an account of that name, to be sent if it comes back; D-Bus Manager1.RemoveAccount drops them" \
	"$WORK/daemon.log"
check "reload: ...and that it ended with its data kept" grep -qF \
	"c: account removed from the configuration (its data stays in the store)" "$WORK/daemon.log"
check "reload: ...which RemoveAccount, dropping them, does not say (b)" \
	bash -c "! grep -E 'b: removed from the configuration with|b: account removed from the configuration' '$WORK/daemon.log'"

# --- outbox ----------------------------------------------------------------------------------------------
OB=$WORK/outbox
mkdir -p "$OB/a/INBOX" "$OB/nosuch/INBOX"
msg_text "<outbox1@dbus.test>" 500 >"$OB/a/INBOX/.partial"
sleep 1
check "outbox: a dot-file is left alone" test -e "$OB/a/INBOX/.partial"
check "outbox: ...and not stored" bash -c "! (. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" search -u $USER1 mailbox INBOX header message-id '<outbox1@dbus.test>' | grep -q .)"
mv "$OB/a/INBOX/.partial" "$OB/a/INBOX/msg1.eml"
check "outbox: renamed into place, it reaches the server" eventually 10 server_has INBOX "<outbox1@dbus.test>"
check "outbox: the file is removed once stored" eventually 10 test ! -e "$OB/a/INBOX/msg1.eml"
check "outbox: exactly once" test "$(da search -u "$USER1" mailbox INBOX header message-id '<outbox1@dbus.test>' | wc -l)" -eq 1
msg_text "<outbox2@dbus.test>" 300 >"$OB/nosuch/INBOX/.t" && mv "$OB/nosuch/INBOX/.t" "$OB/nosuch/INBOX/lost.eml"
check "outbox: an unknown account goes to .failed" eventually 5 bash -c "ls '$OB/.failed' | grep -q lost"
check "outbox: with a .why naming the account" eventually 5 bash -c "cat '$OB'/.failed/*.why | grep -q nosuch"
# A file whose message is moved locally before it reached the server is
# stored anew in the destination (another id): the file waits for that one
# and is done when it is on the server, not failed (a middleware sending it
# again would make a duplicate).
"$CPMCTL" online a off >"$WORK/online.out" 2>&1 || bail "cpmctl online a off: $(cat "$WORK/online.out")"
check "outbox, offline: State offline" wait_state offline 5
msg_text "<outbox-moved@dbus.test>" 300 >"$OB/a/INBOX/.t" || bail "cannot write $OB/a/INBOX/.t"
mv "$OB/a/INBOX/.t" "$OB/a/INBOX/moved.eml" || bail "cannot rename $OB/a/INBOX/.t"
pending_id() { # the id of the .pending/ID/ holding the file $1
	local f
	for f in "$OB"/.pending/[0-9]*/"$1"; do
		[ -e "$f" ] && basename "$(dirname "$f")"
	done
}
check "outbox, offline: the file is stored, waiting in .pending" eventually 5 bash -c "compgen -G '$OB/.pending/[0-9]*/moved.eml' >/dev/null"
MOVED_ID=$(pending_id moved.eml)
check "outbox, offline: in one .pending/ID" test "$(echo "$MOVED_ID" | wc -w)" -eq 1
"$CPMCTL" move a INBOX "$MOVED_ID" Offline >"$WORK/move.out" 2>&1
check "outbox, offline: cpmctl move of message $MOVED_ID to Offline: exit 0" test $? -eq 0
"$CPMCTL" online a on >"$WORK/online.out" 2>&1 || bail "cpmctl online a on: $(cat "$WORK/online.out")"
check "outbox, moved offline: it reaches the server in Offline" eventually 15 server_has Offline "<outbox-moved@dbus.test>"
check "outbox, moved offline: the file is done, not failed" eventually 10 bash -c "[ -z \"\$(ls -A '$OB/.pending' | grep -v '^claimed\$')\" ]"
check "outbox, moved offline: no .failed/moved.eml" test ! -e "$OB/.failed/moved.eml" -a ! -e "$OB/.failed/moved.eml.why"
check "outbox, moved offline: once on the server, and not in INBOX" \
	test "$(da search -u "$USER1" mailbox '*' header message-id '<outbox-moved@dbus.test>' | wc -l)" -eq 1
check "outbox, moved offline: the log says where it went" \
	grep -qE "^cpm-syncd: outbox: message $MOVED_ID \($OB/.pending/$MOVED_ID\) was moved before it reached the server: it is message [0-9]+ in folder 'Offline' of account 'a' now\$" "$WORK/daemon.log"
# A file whose message reached the server and was moved right after, before
# the outbox deleted the file, is done too, not failed as "removed".  To hold
# the file there past the APPEND, while offline (no rescan comes then) it is
# put aside and a directory of its name takes its place: the outbox cannot
# delete that (EISDIR, even as root) and leaves it.
"$CPMCTL" online a off >"$WORK/online.out" 2>&1 || bail "cpmctl online a off: $(cat "$WORK/online.out")"
check "outbox, sent then moved: State offline" wait_state offline 5
msg_text "<outbox-sent-moved@dbus.test>" 300 >"$OB/a/INBOX/.t" || bail "cannot write $OB/a/INBOX/.t"
mv "$OB/a/INBOX/.t" "$OB/a/INBOX/sent.eml" || bail "cannot rename $OB/a/INBOX/.t"
check "outbox, sent then moved: stored, waiting in .pending" eventually 5 bash -c "compgen -G '$OB/.pending/[0-9]*/sent.eml' >/dev/null"
SENT_ID=$(pending_id sent.eml)
check "outbox, sent then moved: in one .pending/ID" test "$(echo "$SENT_ID" | wc -w)" -eq 1
mv "$OB/.pending/$SENT_ID/sent.eml" "$WORK/sent.eml" || bail "cannot move $OB/.pending/$SENT_ID/sent.eml aside"
mkdir "$OB/.pending/$SENT_ID/sent.eml" || bail "cannot make the directory $OB/.pending/$SENT_ID/sent.eml"
: >"$OB/.pending/$SENT_ID/sent.eml/keep" || bail "cannot write $OB/.pending/$SENT_ID/sent.eml/keep"
"$CPMCTL" online a on >"$WORK/online.out" 2>&1 || bail "cpmctl online a on: $(cat "$WORK/online.out")"
check "outbox, sent then moved: it reaches the server in INBOX" eventually 15 server_has INBOX "<outbox-sent-moved@dbus.test>"
check "outbox, sent then moved: the outbox tried to delete it (it is on the server)" \
	eventually 10 grep -qF "cpm-syncd: outbox: cannot delete $OB/.pending/$SENT_ID/sent.eml: Is a directory" "$WORK/daemon.log"
"$CPMCTL" move a INBOX "$SENT_ID" Offline >"$WORK/move.out" 2>&1
check "outbox, sent then moved: cpmctl move of message $SENT_ID to Offline: exit 0" test $? -eq 0
# From here on every rescan finds the message gone from INBOX: it either
# fails the file or tries to delete it again (one more warning).
undeletable() { grep -cF "cpm-syncd: outbox: cannot delete $OB/.pending/$SENT_ID/sent.eml: Is a directory" "$WORK/daemon.log"; }
check "outbox, sent then moved: the move reaches the server" eventually 15 server_has Offline "<outbox-sent-moved@dbus.test>"
# Counted once the move is on the server, then a sync (a rescan follows
# each): the move's own sync may have rescanned before the count was read.
UNDELETABLE=$(undeletable)
"$CPMCTL" sync a >"$WORK/sync.out" 2>&1 || bail "cpmctl sync a: $(cat "$WORK/sync.out")"
check "outbox, sent then moved: a rescan looked at it after the move" \
	eventually 15 bash -c "[ -e '$OB/.failed/sent.eml.why' ] || [ \"\$(grep -cF 'cpm-syncd: outbox: cannot delete $OB/.pending/$SENT_ID/sent.eml: Is a directory' '$WORK/daemon.log')\" -gt $UNDELETABLE ]"
check "outbox, sent then moved: not failed as removed" test ! -e "$OB/.failed/sent.eml" -a ! -e "$OB/.failed/sent.eml.why"
check "outbox, sent then moved: still in .pending (the directory cannot be deleted)" test -d "$OB/.pending/$SENT_ID/sent.eml"
# The file back (offline again: no rescan in between), then a sync: deleted.
"$CPMCTL" online a off >"$WORK/online.out" 2>&1 || bail "cpmctl online a off: $(cat "$WORK/online.out")"
check "outbox, sent then moved: State offline again" wait_state offline 5
rm -r "$OB/.pending/$SENT_ID/sent.eml" || bail "cannot remove the directory $OB/.pending/$SENT_ID/sent.eml"
mv "$WORK/sent.eml" "$OB/.pending/$SENT_ID/sent.eml" || bail "cannot put $OB/.pending/$SENT_ID/sent.eml back"
"$CPMCTL" online a on >"$WORK/online.out" 2>&1 || bail "cpmctl online a on: $(cat "$WORK/online.out")"
check "outbox, sent then moved: the file is done" eventually 15 test ! -e "$OB/.pending/$SENT_ID"
check "outbox, sent then moved: no .failed/sent.eml" test ! -e "$OB/.failed/sent.eml" -a ! -e "$OB/.failed/sent.eml.why"
check "outbox, sent then moved: the log says it reached the server and was moved since" \
	grep -qxF "cpm-syncd: outbox: sent.eml (message $SENT_ID) reached the server and was moved or removed since; deleted the outbox copy" "$WORK/daemon.log"
check "outbox, sent then moved: once on the server, in Offline" \
	test "$(da search -u "$USER1" mailbox '*' header message-id '<outbox-sent-moved@dbus.test>' | wc -l)" -eq 1
# --- failed operations: refusals by the real server ----------------------------------------------
# An APPEND into a folder whose ACL lacks the insert right ([NOPERM]) and a
# keyword longer than Dovecot's mail_max_keyword_length, 50 ([CANNOT]):
# both fail for good at once; neither blocks what comes after, the account
# stays idle with LastSync moving, and retry/discard act on them.
da mailbox create -u "$USER1" Locked
da acl set -u "$USER1" Locked "user=$USER1" lookup read >"$WORK/acl.out" 2>&1
ACL_RC=$?
check "doveadm acl set lookup read: exit 0, nothing printed" test "$ACL_RC" -eq 0 -a ! -s "$WORK/acl.out"
da acl get -u "$USER1" Locked >"$WORK/acl.get" 2>&1
check "Locked's ACL for $USER1 is exactly lookup read" grep -qE "^user=$USER1 +lookup read *\$" "$WORK/acl.get"
call "$A" org.cpmsync.Account1 Sync >/dev/null
check "after a Sync the daemon has Locked" \
	eventually 15 bash -c "'$DBUS' call $A org.cpmsync.Account1 FindFolder s Locked | grep -qx '$A/folder[0-9]*'"
LOCKED=$(call "$A" org.cpmsync.Account1 FindFolder s Locked)
failed_list() { call "$A" org.cpmsync.Account1 ListFailedOperations; }
acct_is() { [ "$(acct "$1")" = "$2" ]; } # acct_is PROPERTY VALUE
# An open IMAP session keeps the rights it has read: a new one sees a change.
reconnect() {
	"$DBUS" set "$A" org.cpmsync.Account1 Online b false >/dev/null &&
		wait_state offline 5 &&
		"$DBUS" set "$A" org.cpmsync.Account1 Online b true >/dev/null &&
		wait_state idle 20
}
# The daemon may have opened Locked between its CREATE and the ACL change
# (seen under load): reconnect so the APPEND meets the rights set above.
check "reconnected to see Locked's rights" reconnect
check "no failed operation yet" test "$(acct FailedOperations)" = 0
LS0=$(acct LastSync)
sleep 1.1 # LastSync is in seconds
sigmark
msg_text "<locked@dbus.test>" 300 >"$WORK/locked.eml"
LID=$(call "$LOCKED" $F Store ayasx "@$WORK/locked.eml" "" 0)
check "Store into Locked: accepted locally" test "$LID" -gt 0 2>/dev/null
check "APPEND refused: OperationFailed with the server's code and text" \
	eventually 15 saw_signal "^$A org.cpmsync.Account1 OperationFailed \{Id=[0-9]+;Operation=store;Folder=Locked;MessageIds=\[$LID\];Code=NOPERM;Text=Permission denied \(.*;Tries=1;Time=[0-9]+\}\$"
check "FailedOperations 1" eventually 5 acct_is FailedOperations 1
failed_list >"$WORK/failed1"
check "ListFailedOperations: the refused APPEND" \
	grep -qE "^- \{Id=[0-9]+;Operation=store;Folder=Locked;MessageIds=\[$LID\];Code=NOPERM;Text=Permission denied \(.*;Tries=1;Time=[0-9]+\}\$" "$WORK/failed1"
APPEND_OP=$(grep -o 'Id=[0-9]*' "$WORK/failed1" | head -n 1 | cut -d= -f2)
check "a failed operation leaves the account idle, without LastError" \
	bash -c "[ \"\$('$DBUS' get $A org.cpmsync.Account1 State)\" = idle ] && [ -z \"\$('$DBUS' get $A org.cpmsync.Account1 LastError)\" ]"
check "LastSync moves past the failed operation" eventually 10 bash -c "[ \"\$('$DBUS' get $A org.cpmsync.Account1 LastSync)\" -gt $LS0 ]"
check "the message stays locally (no UID) until discarded" \
	bash -c "'$DBUS' call $LOCKED $F GetMessage t $LID | grep -qx 'Uid=0'"
check "PendingOperations does not count it" eventually 5 acct_is PendingOperations 0

LONGKW=k$(printf 'x%.0s' $(seq 60))
sigmark
call "$INBOX" $F SetFlags atasas "$ID1" "$LONGKW" '' >/dev/null
check "keyword too long: OperationFailed with [CANNOT]" \
	eventually 15 saw_signal "OperationFailed \{Id=[0-9]+;Operation=flags;Folder=INBOX;MessageIds=\[$ID1\];Code=CANNOT;Text=Keyword length too long \(.*;Tries=1;"
UNSEEN_ID=$(call "$INBOX" $F ListMessages tu 0 1000 | grep 'unseen@dbus.test' | grep -o '{Id=[0-9]*' | cut -d= -f2)
call "$INBOX" $F SetFlags atasas "$UNSEEN_ID" '\Draft' '' >/dev/null
check "a later change still reaches the server" eventually 10 bash -c "(. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" -f flow fetch -u $USER1 flags mailbox INBOX header message-id '<unseen@dbus.test>') | grep -q Draft"
check "...and the refused keyword did not" bash -c "! (. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" -f flow fetch -u $USER1 flags mailbox INBOX header message-id '$MID1') | grep -q '$LONGKW'"

# cpmctl failed | retry | discard
"$CPMCTL" failed a >"$WORK/cpmctl.failed" 2>"$WORK/cpmctl.err"
check "cpmctl failed: exit 0, two lines" test $? -eq 0 -a "$(wc -l <"$WORK/cpmctl.failed")" -eq 2
check "cpmctl failed: the APPEND line" grep -qE "^a	$APPEND_OP	store	Locked	$LID	NOPERM	1	[0-9T:-]+Z	Permission denied \(" "$WORK/cpmctl.failed"
KW_OP=$(awk -F'\t' '$3 == "flags" { print $2 }' "$WORK/cpmctl.failed")
check "cpmctl failed: the keyword line" grep -qE "^a	$KW_OP	flags	INBOX	$ID1	CANNOT	1	" "$WORK/cpmctl.failed"
"$CPMCTL" retry a 999999 >"$WORK/cpmctl.out" 2>"$WORK/cpmctl.err"
check "cpmctl retry of an unknown id: exit 1, NotFound" \
	bash -c "[ $? -eq 1 ] && grep -q 'NotFound' '$WORK/cpmctl.err'"
for m in RetryOperation DiscardOperation; do
	for i in 0 999999; do
		check "$m $i: NotFound, like any id that names no failed operation" \
			test "$(call "$A" org.cpmsync.Account1 $m t $i)" = \
			"error org.cpmsync.Error.NotFound: account \"a\" has no failed operation $i"
	done
done
check "cpmctl discard of the keyword change: exit 0" "$CPMCTL" discard a "$KW_OP"
check "discard: the local flags are the server's again" \
	eventually 5 bash -c "f=\$('$DBUS' call $INBOX $F GetMessage t $ID1 | grep '^Flags='); [[ -n \$f && \$f != *$LONGKW* ]]"
da acl set -u "$USER1" Locked "user=$USER1" lookup read insert >"$WORK/acl.out" 2>&1
ACL_RC=$?
check "doveadm acl set lookup read insert: exit 0, nothing printed" test "$ACL_RC" -eq 0 -a ! -s "$WORK/acl.out"
check "reconnected to see the new rights" reconnect
check "cpmctl retry of the APPEND: exit 0" "$CPMCTL" retry a "$APPEND_OP"
check "retry: the message reaches the server" eventually 15 server_has Locked "<locked@dbus.test>"
check "retry: no failed operation left" eventually 5 acct_is FailedOperations 0

# The outbox: a file the server refuses for good goes to .failed, its .why
# carrying the server's code and text.
da acl set -u "$USER1" Locked "user=$USER1" lookup read >"$WORK/acl.out" 2>&1
ACL_RC=$?
check "doveadm acl set lookup read (again): exit 0, nothing printed" test "$ACL_RC" -eq 0 -a ! -s "$WORK/acl.out"
check "reconnected to see the rights taken back" reconnect
mkdir -p "$OB/a/Locked"
msg_text "<refused@dbus.test>" 300 >"$OB/a/Locked/.t" && mv "$OB/a/Locked/.t" "$OB/a/Locked/refused.eml"
check "outbox: a file the server refuses goes to .failed" eventually 15 test -e "$OB/.failed/refused.eml"
check "outbox: its .why carries the server's code and text" \
	grep -qE "^a/Locked/refused.eml: the server refused it \(message [0-9]+\): \[NOPERM\] Permission denied \(" "$OB/.failed/refused.eml.why"
check "outbox: the refused message is taken back locally" eventually 5 acct_is FailedOperations 0
check "outbox: nothing reached the server" bash -c "! (. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" search -u $USER1 mailbox Locked header message-id '<refused@dbus.test>' | grep -q .)"

# A message over the server's largest message size.  Dovecot 2.3 honours
# quota_max_mail_size and refuses such an APPEND with [LIMIT] (its [TOOBIG]
# is only a BYE for an oversized non-synchronizing literal under LITERAL-,
# which cpmsync does not send): a refusal that may pass by the contract, so
# it is kept with back-off, not a failed operation, and blocks nothing.
logged() { grep -cE "$1" "$WORK/daemon.log"; } # logged REGEX: how many lines
logged_once() { [ "$(logged "$1")" -eq 1 ]; }
props_are() { # props_are PROPERTY VALUE...: each of the account's is as said
	while [ $# -ge 2 ]; do
		[ "$(acct "$1")" = "$2" ] || return 1
		shift 2
	done
}
LIMIT_RE='APPEND refused by the server: \[LIMIT\] Mail size is larger than the maximum size allowed by server configuration \([0-9. +]*secs\)\. \(tried again later\)$'
check "no [LIMIT] refusal logged yet" test "$(logged "$LIMIT_RE")" -eq 0
msg_text "<big@dbus.test>" 300000 >"$WORK/big.eml"
BIG=$(call "$INBOX" $F Store ayasx "@$WORK/big.eml" "" 0)
check "Store of a message over quota_max_mail_size: accepted locally" test "$BIG" -gt 0 2>/dev/null
check "its APPEND is refused with [LIMIT] and the server's text, tried again later" \
	eventually 15 logged_once "$LIMIT_RE"
check "[LIMIT]: not a failed operation, still queued" \
	props_are FailedOperations 0 PendingOperations 1 State idle LastError ""
call "$INBOX" $F SetFlags atasas "$UNSEEN_ID" '$AfterLimit' '' >/dev/null
check "[LIMIT] blocks nothing: a later change reaches the server" \
	eventually 10 bash -c "(. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" -f flow fetch -u $USER1 flags mailbox INBOX header message-id '<unseen@dbus.test>') | grep -q AfterLimit"
call "$A" org.cpmsync.Account1 Sync >/dev/null
check "[LIMIT]: after a Sync, still backed off (not sent again), the account idle" \
	eventually 10 props_are State idle PendingOperations 1 FailedOperations 0
check "...one refusal logged" logged_once "$LIMIT_RE"
call "$INBOX" $F Delete at "$BIG" >/dev/null && call "$INBOX" $F Expunge >/dev/null
check "Delete + Expunge of the refused message takes it back (PendingOperations 0)" \
	eventually 5 acct_is PendingOperations 0
check "...and it never reached the server" bash -c "! (. '$DC/env'; doveadm -c \"\$DOVECOT_CONF\" search -u $USER1 mailbox INBOX header message-id '<big@dbus.test>' | grep -q .)"

# Over quota: doveadm (no quota plugin) fills the 1 MiB quota behind the
# daemon's back; the next APPEND is refused with [OVERQUOTA], a refusal that
# may pass: kept with back-off, not a failed operation.
OQ_RE='APPEND refused by the server: \[OVERQUOTA\] Quota exceeded \(mailbox for user is full\) \([0-9. +]*secs\)\. \(tried again later\)$'
da mailbox create -u "$USER1" Ballast
check "doveadm saves 1.1 MB past the quota" msg_save "$USER1" Ballast "<ballast@dbus.test>" 1100000
msg_text "<overquota@dbus.test>" 300 >"$WORK/oq.eml"
OQ=$(call "$INBOX" $F Store ayasx "@$WORK/oq.eml" "" 0)
check "Store over quota: accepted locally" test "$OQ" -gt 0 2>/dev/null
check "its APPEND is refused with [OVERQUOTA] and the server's text, tried again later" \
	eventually 15 logged_once "$OQ_RE"
check "[OVERQUOTA]: not a failed operation, still queued, the account idle" \
	props_are FailedOperations 0 PendingOperations 1 State idle LastError ""
check "[OVERQUOTA]: the message stays locally, without a UID" \
	bash -c "'$DBUS' call $INBOX $F GetMessage t $OQ | grep -qx 'Uid=0'"
call "$INBOX" $F Delete at "$OQ" >/dev/null && call "$INBOX" $F Expunge >/dev/null
check "Delete + Expunge of it takes it back (PendingOperations 0)" eventually 5 acct_is PendingOperations 0

# --- D-Bus activation with the installed activation file ---------------------------
# A second private bus whose service directory holds org.cpmsync.service as
# `make install` generates it (Exec= pointing at this build): the first
# cpmctl call starts the daemon.
mkdir -p "$WORK/services"
sed "s|@BINDIR@|$BDIR|" "$TOP/systemd/org.cpmsync.service.in" >"$WORK/services/org.cpmsync.service"
cat >"$WORK/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=$WORK</listen>
  <auth>EXTERNAL</auth>
  <servicedir>$WORK/services</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
# The daemon the bus starts has the bus's environment: its own configuration
# and store (the first daemon holds $WORK/store.db, one daemon per store: a
# second one there would exit at once, and cpmctl folders would answer from
# the store without it).
mkdir -p "$WORK/act-config/cpmsync"
write_conf "$WORK/act-config/cpmsync/cpmsync.conf" "$WORK/act-store.db"
sed -i "s|^outbox = .*|outbox = $WORK/act-outbox|" "$WORK/act-config/cpmsync/cpmsync.conf" ||
	bail "cannot write the activated daemon's configuration"
XDG_CONFIG_HOME=$WORK/act-config dbus-daemon --config-file="$WORK/bus.conf" --fork --nopidfile \
	--print-address=3 --print-pid=4 3>"$WORK/bus2.addr" 4>"$WORK/bus2.pid" ||
	bail "cannot start the second dbus-daemon"
BUS2_PID=$(cat "$WORK/bus2.pid")
BUS2=$(head -n 1 "$WORK/bus2.addr")
check "activation: nobody owns org.cpmsync yet" \
	bash -c "DBUS_SESSION_BUS_ADDRESS='$BUS2' '$DBUS' wait-owner 0.2 | grep -q 'no owner'"
DBUS_SESSION_BUS_ADDRESS=$BUS2 "$CPMCTL" folders a >"$WORK/act.out" 2>"$WORK/act.err"
act_folders() { # the activated daemon answers (no "not running" on stderr) with INBOX
	DBUS_SESSION_BUS_ADDRESS=$BUS2 "$CPMCTL" folders a >"$WORK/act.out" 2>"$WORK/act.err" &&
		grep -q '^INBOX' "$WORK/act.out" && [ ! -s "$WORK/act.err" ]
}
check "activation: cpmctl folders started the daemon, which answers once synced" eventually 20 act_folders
DBUS_SESSION_BUS_ADDRESS=$BUS2 "$DBUS" call /org/cpmsync org.freedesktop.DBus.Peer Ping >/dev/null
# The activated daemon is the owner of org.cpmsync on that bus: its pid from
# the bus itself (never a search by name: other tests run daemons of this
# build too), checked to be this build's cpm-syncd before it is used.
ACT_PID=$(DBUS_SESSION_BUS_ADDRESS=$BUS2 "$DBUS" owner-pid)
is_act_daemon() {
	[[ $ACT_PID =~ ^[1-9][0-9]*$ ]] &&
		[ "$(readlink -f "/proc/$ACT_PID/exe")" = "$(readlink -f "$BDIR/cpm-syncd")" ]
}
check "activation: the bus names the owner's pid ($ACT_PID), this build's cpm-syncd" is_act_daemon
kill "$BUS2_PID" 2>/dev/null
check "activation: the daemon stops when its bus goes away" \
	eventually 5 bash -c "! kill -0 '$ACT_PID' 2>/dev/null"
# Still there (the check above failed): stop it, by its own pid only.
if is_act_daemon; then
	kill -TERM "$ACT_PID"
fi

# --- a change written by another process (an app linking libcpmsync) --------------------------------------
# cpmsync-op opens the store read-write beside the daemon and journals a flag
# as an app's cpmsync_op_set_flags() does: no Sync(), no D-Bus call.  The
# daemon sees the other process's commit (store.h) and sends it.
msg_save "$USER1" INBOX "<app@dbus.test>" 300 || bail "doveadm save <app@dbus.test>"
app_find() { "$OP" --db "$WORK/store.db" find a INBOX "<app@dbus.test>"; }
check "<app@dbus.test> arrives by push" eventually 10 app_find
check "the account is idle" wait_state idle 10
app_id=$(app_find) || bail "<app@dbus.test> not in the store"
# Its changes get the daemon's signals, as the daemon's own would (the
# daemon takes what other processes recorded when it looks, every 2 s).
sigmark
"$OP" --db "$WORK/store.db" flags "$app_id" -- +kwApp || bail "cpmsync-op flags $app_id"
check "another process's flag: MessagesChanged with Id and Flags within 3 s" eventually 3 \
	saw_signal "^$INBOX org.cpmsync.Folder1 MessagesChanged \\[\\{Id=$app_id;Flags=\\[kwApp\\]\\}\\]\$"
srv_app_flags() {
	(
		. "$DC/env"
		doveadm -c "$DOVECOT_CONF" -f flow fetch -u "$USER1" flags mailbox INBOX header message-id "<app@dbus.test>"
	)
}
app_flag_on_server() { [[ $(srv_app_flags) == *kwApp* ]]; }
check "another process's flag reaches the server without a Sync() (within 10 s)" eventually 10 app_flag_on_server
check "PendingOperations is 0 again" eventually 5 bash -c "[ \"\$('$DBUS' get '$A' org.cpmsync.Account1 PendingOperations)\" = 0 ]"
# A message stored and then removed by the app: MessagesAdded with its
# summary, MessagesRemoved with its id.
msg_text "<app-stored@dbus.test>" 300 >"$WORK/app-stored.eml" || bail "cannot write app-stored.eml"
sigmark
stored_id=$("$OP" --db "$WORK/store.db" store a INBOX "$WORK/app-stored.eml") ||
	bail "cpmsync-op store <app-stored@dbus.test>"
check "another process's store: MessagesAdded with its summary within 3 s" eventually 3 \
	saw_signal "^$INBOX org.cpmsync.Folder1 MessagesAdded \\[\\{Id=$stored_id;.*MessageId=<app-stored@dbus.test>;"
sigmark
"$OP" --db "$WORK/store.db" delete "$stored_id" || bail "cpmsync-op delete $stored_id"
"$OP" --db "$WORK/store.db" expunge a INBOX || bail "cpmsync-op expunge a INBOX"
check "another process's expunge: MessagesRemoved with its id within 3 s" eventually 3 \
	saw_signal "^$INBOX org.cpmsync.Folder1 MessagesRemoved \\[$stored_id\\]\$"
check "store == server after the other process's changes" eventually 10 compare "$WORK/store.db"

# --- the daemon stops cleanly ---------------------------------------------------------------------------
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
check "SIGTERM: exit status 0" test $? -eq 0
DAEMON_PID=
check "no password in the log" bash -c "! grep -qF -- '$PASS1' '$WORK/daemon.log' && ! grep -qF -- '$PASS2' '$WORK/daemon.log'"
finish
