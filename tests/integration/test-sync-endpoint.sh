#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The address is not the server: only the port changes, same host and user
# (two Dovecots on 127.0.0.1 for one user, the same folder names, other
# messages), with local changes queued (a flag change, a delete, a move,
# an APPEND).
#
# (2. runs first: 1. changes server one.)
# 1. INBOX and Work on the second server have the first's UIDVALIDITY
#    (Dovecot sets it from the creation time: made in the same second, or
#    copied by dsync; forced here with doveadm mailbox update).  Before
#    engine-ident.c the folder check (UIDVALIDITY, MAILBOXID, HIGHESTMODSEQ
#    and UIDNEXT not down, EXISTS) saw nothing: the flag went to the other
#    server's UID 1, its UID 2 was expunged, its UID 3 moved to Work, and
#    its messages were mixed into the store.  Now the run is refused with
#    the account's error, naming the folder and what differs; nothing is
#    sent, nothing fetched.  With the port set back, everything goes to
#    the first server, and the store equals it.
# 2. The same with another UIDVALIDITY on the second server (the case the
#    folder check did catch already): no change addressed by UID reaches
#    its messages; the folders are re-read, so the store equals it, and the
#    APPEND is made there (it names no message: the user's new message
#    belongs in the account's INBOX, whichever server holds it).  The
#    changes to messages server two does not have go with them, logged.
# 3. The same server through a proxy on another port, changes queued: the
#    run checks INBOX by its messages, finds them the store's, sends the
#    changes and downloads nothing again.
# 4. A message stored here with bare LF line ends, appended, then changed:
#    the server counts its size with CRLF, and it is still the same message.
# 5. The daemon with 1.'s store and server two's port: the account's error,
#    no retry; the port set back in the file, the change goes to server one.
# 6. As 1., with nothing queued: no change to send, but the pull's QRESYNC
#    SELECT (the recorded HIGHESTMODSEQ, the known UIDs) is answered by
#    server two.  Before, nothing checked it: the flags of its UIDs went
#    onto the store's messages and its new UIDs were fetched, server two's
#    messages mixed into the store of server one's.  Now the pull checks
#    the newest UID the store holds of INBOX, pipelined with the SELECT,
#    and the run fails as in 1. with the store as it was.
# 7. Server one's INBOX gets another UIDVALIDITY while a delete waits: the
#    re-read matches the message again by content only, and its UID
#    EXPUNGE is not sent on that.  It was dropped without a word (the
#    message stayed on the server, hidden here); now it is a failed
#    operation naming the folder and the message, and the log says so.
# 8. Push, after a reconnect to another server (a long-lived session, the
#    proxy's target switched under it, as a server reinstalled under the
#    same address; two more Dovecots, without NOTIFY: IDLE keeps INBOX
#    selected): INBOX on server four shows the UIDVALIDITY, UIDNEXT,
#    MESSAGES and HIGHESTMODSEQ the store recorded of server three's, so
#    the pull of the new connection selects nothing and checks nothing.
#    Before, the next delivery there came by IDLE, and the run without
#    SELECT of the selected INBOX (engine.c fast_start()) added it to the
#    store of server three's.  Now that run checks the newest UID the
#    store holds first, once per connection, pipelined with its FETCHes:
#    the account's error, the store as it was.  On server three the same push costs no
#    check when INBOX was read whole on the connection, and one UID FETCH
#    (pipelined) at the first news after a reconnect, none at the next.
# 9. The host changes, the user the same, nothing queued (the identity is
#    user@host: a new DNS name, the address for the name).  The copy was
#    dropped and everything downloaded again.  Now the run first proves
#    the server the same (engine-ident.c engine_ident_host(): each synced
#    folder's numbers, and its oldest and newest message by UID) and keeps
#    the copy: server one as localhost downloads nothing again, the ids
#    stay.  Server two as localhost, with server one's UIDVALIDITYs (and
#    HIGHESTMODSEQ past the recorded one), holds other messages under those
#    UIDs: the copy is dropped and synced again from it, as before.  With a
#    change queued the run is refused before connecting, as before.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init
[ -x "$PROXY" ] || bail "missing $PROXY (make all tests)"
is_cyrus && {
	echo "# two servers of one kind on one host: Dovecot only"
	finish
}

dc_start one
P1=$IMAP_PORT C1=$DOVECOT_CONF PW1=$PASS1
dc_start two
P2=$IMAP_PORT C2=$DOVECOT_CONF PW2=$PASS1
d1() { doveadm -c "$C1" "$@"; }
d2() { doveadm -c "$C2" "$@"; }

# dump_of CONF: server_dump of $USER1 on that server (folder Sent etc. too)
dump_of() { DOVECOT_CONF=$1 server_dump "$USER1"; }
# use PORT PASSWORD: account a now names 127.0.0.1:PORT
use() {
	sed -i "s/^port = .*/port = $1/" "$CONF" || return 1
	printf '%s\n' "$2" >"$WORK/pw"
}
uidvalidity() { # CONF FOLDER
	doveadm -c "$1" -f tab mailbox status -u "$USER1" uidvalidity "$2" | tail -n 1 | cut -f2
}

for c in "$C1" "$C2"; do
	doveadm -c "$c" mailbox create -u "$USER1" Work || bail "cannot create Work"
done
for i in 1 2 3 4; do
	DOVECOT_CONF=$C1 msg_save "$USER1" INBOX "<a$i@one.test>" 400 || bail "cannot save <a$i>"
done
for i in 1 2 3 4 5 6; do
	DOVECOT_CONF=$C2 msg_save "$USER1" INBOX "<b$i@two.test>" 500 || bail "cannot save <b$i>"
done

# queue DB: the changes, offline (cpmsync-op on the store file)
queue() {
	local db=$1 a1 a2 a3
	a1=$("$OP" --db "$db" find a INBOX "<a1@one.test>") &&
		a2=$("$OP" --db "$db" find a INBOX "<a2@one.test>") &&
		a3=$("$OP" --db "$db" find a INBOX "<a3@one.test>") &&
		"$OP" --db "$db" flags "$a1" -- +'$Wrong' &&
		"$OP" --db "$db" delete "$a2" &&
		"$OP" --db "$db" expunge a INBOX &&
		"$OP" --db "$db" move Work "$a3" >/dev/null &&
		msg_text "<new@local.test>" 300 | "$OP" --db "$db" store a INBOX - >/dev/null
}
# ops DB: the queued rows' operations
ops() { "$OP" --db "$1" pending a | cut -f3 | tr '\n' ' '; }

# --- 2. another UIDVALIDITY: the folders are re-read --------------------------------
for f in INBOX Work; do
	uv=$(($(uidvalidity "$C1" "$f") + 1000))
	check "server two: $f gets another UIDVALIDITY ($uv)" \
		d2 mailbox update --uid-validity "$uv" -u "$USER1" "$f"
done
CONF=$WORK/other.conf
DB=$WORK/other.db
PASS1=$PW1 clear_conf "$CONF" "$DB" "$P1"
check "first sync, with server one" sync_once "$CONF" "$WORK/other1.log"
check "the changes are queued" queue "$DB"
before1=$(dump_of "$C1")
before2=$(dump_of "$C2")
use "$P2" "$PW2" || bail "cannot change the port"
check "the run with server two's port succeeds" sync_once "$CONF" "$WORK/other2.log"
check "the folder check saw INBOX's UIDVALIDITY change" grep -q 'INBOX.*UIDVALIDITY changed' "$WORK/other2.log"
check "the log names the changes that went with server one's messages" grep -qxF \
	"cpm-syncd: a: INBOX: 3 local changes to messages the server no longer has went with them: flags of <a1@one.test>, flags of <a2@one.test>, expunge of <a2@one.test>" \
	"$WORK/other2.log"
if grep -qE ' C: a[0-9]+ UID (STORE|EXPUNGE|MOVE|COPY)' "$WORK/other2.log"; then
	not_ok "no UID STORE, EXPUNGE, MOVE or COPY went to server two"
else
	ok "no UID STORE, EXPUNGE, MOVE or COPY went to server two"
fi
expect "server two's own messages are as they were" "$(dump_of "$C2" | grep -F '@two.test>')" \
	"$(grep -F '@two.test>' <<<"$before2")"
appended() { d2 search -u "$USER1" mailbox INBOX header message-id new@local.test | grep -q .; }
check "the APPEND went to server two's INBOX" appended
if DOVECOT_CONF=$C2 compare "$DB"; then ok "dump equals server two"; else not_ok "dump equals server two"; fi
expect "nothing waits" "$(ops "$DB")" ""
expect "server one is untouched" "$(dump_of "$C1")" "$before1"

# --- 1. the same UIDVALIDITY ------------------------------------------------------
for f in INBOX Work; do
	uv=$(uidvalidity "$C1" "$f")
	check "server two: $f gets server one's UIDVALIDITY $uv" \
		d2 mailbox update --uid-validity "$uv" -u "$USER1" "$f"
done
expect "INBOX has one UIDVALIDITY on both servers" "$(uidvalidity "$C2" INBOX)" "$(uidvalidity "$C1" INBOX)"
CONF=$WORK/same.conf
DB=$WORK/same.db
PASS1=$PW1 clear_conf "$CONF" "$DB" "$P1"
check "first sync, with server one" sync_once "$CONF" "$WORK/same1.log"
check "the changes are queued" queue "$DB"
expect "the journal" "$(ops "$DB")" "flags flags expunge move append "
before2=$(dump_of "$C2")
local_before=$("$CPMCTL" dump --db "$DB" a)
use "$P2" "$PW2" || bail "cannot change the port"
sync_once "$CONF" "$WORK/same2.log" >/dev/null
expect "the run with server two's port fails" "$?" 1
uv=$(uidvalidity "$C1" INBOX)
want="cpm-syncd: a: INBOX on this server is not the folder the store holds: its UID 1 is another message than the store's <a1@one.test> (RFC822.SIZE 530, not 428; the same UIDVALIDITY $uv), and local changes to 3 of its messages are not yet sent: set the account back to the server that has them to send them, or remove the account with D-Bus Manager1.RemoveAccount to drop them (saved as files first)"
if grep -qxF "$want" "$WORK/same2.log"; then
	ok "it says which folder and what differs"
else
	not_ok "it says which folder and what differs"
	grep -F 'is not the folder' "$WORK/same2.log" | sed 's/^/    /'
fi
expect "nothing was sent to server two" "$(dump_of "$C2")" "$before2"
expect "the changes still wait" "$(ops "$DB")" "flags flags expunge move append "
expect "the store is as it was" "$("$CPMCTL" dump --db "$DB" a)" "$local_before"
if grep -qE ' C: a[0-9]+ (UID (STORE|EXPUNGE|MOVE|COPY)|APPEND|LIST)' "$WORK/same2.log"; then
	not_ok "no STORE, EXPUNGE, MOVE, APPEND or LIST went to server two"
else
	ok "no STORE, EXPUNGE, MOVE, APPEND or LIST went to server two"
fi

use "$P1" "$PW1" || bail "cannot change the port back"
check "the port set back: the run sends the changes" sync_once "$CONF" "$WORK/same3.log"
expect "nothing waits" "$(ops "$DB")" ""
if DOVECOT_CONF=$C1 compare "$DB"; then ok "dump equals server one"; else not_ok "dump equals server one"; fi
got=$(d1 -f tab fetch -u "$USER1" 'hdr.message-id flags' mailbox INBOX | tail -n +2 | tr '\t\n' ' ')
expect "server one's INBOX" "$got" "<a1@one.test> \$Wrong <a4@one.test>  <new@local.test>  "
got=$(d1 -f tab fetch -u "$USER1" 'hdr.message-id' mailbox Work | tail -n +2 | tr '\n' ' ')
expect "server one's Work" "$got" "<a3@one.test> "
expect "server two is untouched" "$(dump_of "$C2")" "$before2"

# --- 3. the same server through a proxy on another port ------------------------------
CONF=$WORK/proxy.conf
DB=$WORK/proxy.db
PASS1=$PW1 clear_conf "$CONF" "$DB" "$P1"
check "first sync of a third store, with server one" sync_once "$CONF" "$WORK/proxy1.log"
a4=$("$OP" --db "$DB" find a INBOX "<a4@one.test>") || bail "no <a4> in the store"
check "a flag change queued" "$OP" --db "$DB" flags "$a4" -- +'$Proxied'
IMAP_PORT=$P1 # the proxy goes to server one
# shellcheck disable=SC2119 # no fault to inject: a plain proxy
proxy_start
use "$PROXY_PORT" "$PW1" || bail "cannot change the port"
check "the run through the proxy succeeds" sync_once "$CONF" "$WORK/proxy2.log"
check "INBOX was checked by its messages" grep -qF "a: INBOX holds the messages the store knows under 1 UID(s)" "$WORK/proxy2.log"
check "nothing downloaded again" grep -qE 'a: done: .* 0 messages added,' "$WORK/proxy2.log"
expect "nothing waits" "$(ops "$DB")" ""
if DOVECOT_CONF=$C1 compare "$DB"; then ok "dump equals server one"; else not_ok "dump equals server one"; fi
proxy_stop

# --- 4. a message stored here with bare LF line ends -------------------------------
# APPEND sends each LF as CRLF, so the server's RFC822.SIZE is not the size
# the store recorded: still the same message, the change to it goes.
use "$P1" "$PW1" || bail "cannot change the port"
check "a message with bare LFs stored" bash -c \
	"printf 'From: x@y\nSubject: lf\nMessage-ID: <lf@local.test>\n\nbare\nline ends\n' |
	'$OP' --db '$DB' store a INBOX - >/dev/null"
check "the run appends it" sync_once "$CONF" "$WORK/lf1.log"
lf=$("$OP" --db "$DB" find a INBOX "<lf@local.test>") || bail "no <lf> in the store"
check "a flag change to it queued" "$OP" --db "$DB" flags "$lf" -- +'$Later'
check "the run sends it" sync_once "$CONF" "$WORK/lf2.log"
got=$(d1 -f tab fetch -u "$USER1" 'flags' mailbox INBOX header message-id lf@local.test | tail -n +2)
expect "server one has the flag" "$got" '$Later'
# The flag change was recorded for a daemon's signals (cpmsync-op writes
# as an app does); a --once run has nobody to signal to and drops it.
expect "a --once run drops what an app recorded for signals" \
	"$(sqlite3 -readonly "$DB" 'SELECT count(*) FROM foreign_change')" 0

# --- 5. the daemon: the account's error, until the settings change -----------------
CONF=$WORK/same.conf
DB=$WORK/same.db
a4=$("$OP" --db "$DB" find a INBOX "<a4@one.test>") || bail "no <a4> in the store"
check "a flag change queued" "$OP" --db "$DB" flags "$a4" -- +'$Daemon'
use "$P2" "$PW2" || bail "cannot change the port"
LOG=$WORK/daemon.log
"$SYNCD" -c "$CONF" --no-dbus -v 2>"$LOG" &
DPID=$!
BG_PIDS+=("$DPID")
refused() { grep -q 'a: INBOX on this server is not the folder the store holds: .*; not retrying until the settings change' "$LOG"; }
check "the daemon refuses server two and waits for the settings" eventually 20 refused
use "$P1" "$PW1" || bail "cannot change the port back"
flagged() {
	d1 -f tab fetch -u "$USER1" 'flags' mailbox INBOX header message-id a4@one.test | tail -n +2 |
		grep -qF '$Daemon'
}
check "the port set back: the daemon sends the change to server one" eventually 20 flagged
# The flag change above was recorded for the daemon's signals (cpmsync-op
# writes as an app does); without D-Bus nothing takes it, and the daemon's
# 2 s store check drops it (cpmsync_store_forget_changes()).
foreign_gone() { test "$(sqlite3 -readonly "$DB" 'SELECT count(*) FROM foreign_change')" = 0; }
check "without D-Bus, what an app recorded for signals is dropped" eventually 5 foreign_gone
kill "$DPID" && wait "$DPID"
expect "the daemon stops on SIGTERM" "$?" 0
expect "nothing waits" "$(ops "$DB")" ""

# --- 6. the same UIDVALIDITY, nothing queued: the pull ---------------------------
CONF=$WORK/pull.conf
DB=$WORK/pull.db
PASS1=$PW1 clear_conf "$CONF" "$DB" "$P1"
check "first sync of a fourth store, with server one" sync_once "$CONF" "$WORK/pull1.log"
expect "nothing queued" "$(ops "$DB")" ""
# server two's INBOX past the HIGHESTMODSEQ the store recorded (lower is
# another folder, re-read by the folder check): a flag set on its UID 1
hms() { doveadm -c "$1" -f tab mailbox status -u "$USER1" highestmodseq INBOX | tail -n 1 | cut -f2; }
hms1=$(hms "$C1") || bail "no HIGHESTMODSEQ of server one's INBOX"
[ -n "$hms1" ] || bail "no HIGHESTMODSEQ of server one's INBOX"
for _ in $(seq 1 100); do
	d2 flags remove -u "$USER1" '$Two' mailbox INBOX uid 1 || bail "cannot unflag server two's UID 1"
	d2 flags add -u "$USER1" '$Two' mailbox INBOX uid 1 || bail "cannot flag server two's UID 1"
	hms2=$(hms "$C2") || bail "no HIGHESTMODSEQ of server two's INBOX"
	[ -n "$hms2" ] || bail "no HIGHESTMODSEQ of server two's INBOX"
	[ "$hms2" -gt "$hms1" ] && break
done
check "server two's INBOX is past HIGHESTMODSEQ $hms1" test "$hms2" -gt "$hms1"
DOVECOT_CONF=$C2 msg_save "$USER1" INBOX "<b7@two.test>" 500 || bail "cannot save <b7>"
local_before=$("$CPMCTL" dump --db "$DB" a)
before2=$(dump_of "$C2")
use "$P2" "$PW2" || bail "cannot change the port"
sync_once "$CONF" "$WORK/pull2.log" >/dev/null
expect "the run with server two's port fails" "$?" 1
uv=$(uidvalidity "$C1" INBOX)
# what the check compares: the newest UID the store holds of INBOX
newest=$(d1 -f tab fetch -u "$USER1" uid mailbox INBOX all | tail -n +2 | sort -n | tail -n 1)
[ -n "$newest" ] || bail "no UID in server one's INBOX"
field() { "$1" -f tab fetch -u "$USER1" "$2" mailbox INBOX uid "$newest" | tail -n +2; }
mid1=$(field d1 hdr.message-id) || bail "cannot read UID $newest of server one's INBOX"
size1=$(field d1 size.virtual) || bail "cannot read UID $newest of server one's INBOX"
size2=$(field d2 size.virtual) || bail "cannot read UID $newest of server two's INBOX"
want="cpm-syncd: a: INBOX on this server is not the folder the store holds: its UID $newest is another message than the store's $mid1 (RFC822.SIZE $size2, not $size1; the same UIDVALIDITY $uv): set the account back to the server that has it, or remove the account with D-Bus Manager1.RemoveAccount and add it again to sync this server's messages"
if grep -qxF "$want" "$WORK/pull2.log"; then
	ok "it says which folder and what differs"
else
	not_ok "it says which folder and what differs"
	grep -F 'cpm-syncd: a:' "$WORK/pull2.log" | sed 's/^/    /'
fi
expect "the store is as it was" "$("$CPMCTL" dump --db "$DB" a)" "$local_before"
expect "server two is as it was" "$(dump_of "$C2")" "$before2"
if grep -qE ' C: a[0-9]+ (UID (STORE|EXPUNGE|MOVE|COPY)|APPEND)' "$WORK/pull2.log"; then
	not_ok "no STORE, EXPUNGE, MOVE or APPEND went to server two"
else
	ok "no STORE, EXPUNGE, MOVE or APPEND went to server two"
fi
use "$P1" "$PW1" || bail "cannot change the port back"
check "the port set back: the run succeeds" sync_once "$CONF" "$WORK/pull3.log"
check "nothing downloaded again" grep -qE 'a: done: .* 0 messages added,' "$WORK/pull3.log"
if DOVECOT_CONF=$C1 compare "$DB"; then ok "dump equals server one"; else not_ok "dump equals server one"; fi
# --- 9. another host name, nothing queued: the same server proven -----------------
# host NAME: account a now names NAME
host() { sed -i "s/^host = .*/host = $1/" "$CONF"; }
# ids DB: the store's messages as id:folder:uid
ids() { sqlite3 "$1" "SELECT group_concat(id || ':' || folder_id || ':' || uid, ' ') FROM (SELECT * FROM message ORDER BY id)"; }
CONF6=$CONF DB6=$DB # 7. goes on with 6.'s store
CONF=$WORK/host.conf
DB=$WORK/host.db
PASS1=$PW1 clear_conf "$CONF" "$DB" "$P1"
check "host: first sync of a fifth store, with server one at 127.0.0.1" sync_once "$CONF" "$WORK/host1.log"
expect "host: nothing queued" "$(ops "$DB")" ""
ids_before=$(ids "$DB")
check "host: the store holds messages" test -n "$ids_before"
host localhost || bail "cannot change the host"
check "host: the run with server one at localhost succeeds" sync_once "$CONF" "$WORK/host2.log"
check "host: it says the store is kept" grep -qxF \
	"cpm-syncd: a: same server at the new address localhost: store kept (2 folders proven)" "$WORK/host2.log"
expect "host: no message fetched again" \
	"$(grep -cE ' C: a[0-9]+ (UID )?FETCH .*(BODY|RFC822[] ])' "$WORK/host2.log")" 0
check "host: nothing added" grep -qE 'a: done: .* 0 messages added,' "$WORK/host2.log"
expect "host: the message ids are the same" "$(ids "$DB")" "$ids_before"
expect "host: the new host is recorded" "$(sqlite3 "$DB" "SELECT server_host FROM account")" localhost
if DOVECOT_CONF=$C1 compare "$DB"; then ok "host: dump equals server one"; else not_ok "host: dump equals server one"; fi

# Server two at localhost: the same UIDVALIDITYs, other messages.
host 127.0.0.1 || bail "cannot change the host"
check "host: back at 127.0.0.1, proven again" sync_once "$CONF" "$WORK/host3.log"
check "host: ...kept again" grep -qF "a: same server at the new address 127.0.0.1: store kept" "$WORK/host3.log"
expect "host: INBOX has one UIDVALIDITY on both servers" "$(uidvalidity "$C2" INBOX)" "$(uidvalidity "$C1" INBOX)"
before2=$(dump_of "$C2")
host localhost || bail "cannot change the host"
use "$P2" "$PW2" || bail "cannot change the port"
check "host: the run with server two at localhost succeeds" sync_once "$CONF" "$WORK/host4.log"
uv=$(uidvalidity "$C1" INBOX)
check "host: it says another server, and why" grep -qxF \
	"cpm-syncd: a: a different server at the new address localhost: its INBOX has UID 1, the store's <a1@one.test>, as another message (RFC822.SIZE 530, not 428; the same UIDVALIDITY $uv)" \
	"$WORK/host4.log"
check "host: ...and that the copy is dropped" grep -qxF \
	"cpm-syncd: a: the account now names $USER1@localhost, not $USER1@127.0.0.1: the local copy of $USER1@127.0.0.1 is dropped (no local change waited for it), and synced again" \
	"$WORK/host4.log"
if DOVECOT_CONF=$C2 compare "$DB"; then ok "host: dump equals server two"; else not_ok "host: dump equals server two"; fi
expect "host: server two is untouched" "$(dump_of "$C2")" "$before2"

# A change queued: refused before connecting, as before.
CONF=$WORK/hostq.conf
DB=$WORK/hostq.db
PASS1=$PW1 clear_conf "$CONF" "$DB" "$P1"
check "host: a sixth store synced with server one" sync_once "$CONF" "$WORK/host5.log"
a4=$("$OP" --db "$DB" find a INBOX "<a4@one.test>") || bail "no <a4> in the store"
check "host: a flag change queued" "$OP" --db "$DB" flags "$a4" -- +'$Host'
local_before=$("$CPMCTL" dump --db "$DB" a)
host localhost || bail "cannot change the host"
sync_once "$CONF" "$WORK/host6.log" >/dev/null
expect "host: the run with a change queued fails" "$?" 1
check "host: ...saying what to do" grep -qF \
	"a: the store holds the mail of $USER1@127.0.0.1 with 1 local change not yet sent there, and the account's settings now name $USER1@localhost: set host and user back to send them, or remove the account with D-Bus Manager1.RemoveAccount to drop them (saved as files first; removing its section from the configuration keeps them)" \
	"$WORK/host6.log"
expect "host: ...sending nothing" "$(grep -c ' C: ' "$WORK/host6.log")" 0
expect "host: the change still waits" "$(ops "$DB")" "flags "
expect "host: the store is as it was" "$("$CPMCTL" dump --db "$DB" a)" "$local_before"
CONF=$CONF6 DB=$DB6

# --- 7. another UIDVALIDITY on the same server, a delete queued ----------------------
a4=$("$OP" --db "$DB" find a INBOX "<a4@one.test>") || bail "no <a4> in the store"
check "a delete of <a4> queued" "$OP" --db "$DB" delete "$a4"
check "and the expunge" "$OP" --db "$DB" expunge a INBOX
expect "the journal" "$(ops "$DB")" "flags expunge "
uv=$(($(uidvalidity "$C1" INBOX) + 5000))
check "server one: INBOX gets another UIDVALIDITY ($uv)" \
	d1 mailbox update --uid-validity "$uv" -u "$USER1" INBOX
check "the run succeeds" sync_once "$CONF" "$WORK/uv.log"
check "it says the delete failed" grep -qxF "cpm-syncd: a: INBOX is another folder now while 1 local delete waited for it: not sent to messages matched again by their content only; it failed (cpmctl failed)" "$WORK/uv.log"
if grep -qE ' C: a[0-9]+ (UID )?EXPUNGE' "$WORK/uv.log"; then
	not_ok "no EXPUNGE went to server one"
else
	ok "no EXPUNGE went to server one"
fi
expect "the expunge waits, failed" "$(ops "$DB")" "expunge "
got=$(sqlite3 "$DB" "SELECT failed || ' ' || refused FROM journal WHERE op = 'expunge'") ||
	bail "cannot read the journal"
expect "its reason names the folder and the message" "$got" \
	"1 the UIDVALIDITY of INBOX changed before the delete of <a4@one.test> (UID 4) was sent: not sent to a message matched again by its content only"
got=$(d1 -f tab fetch -u "$USER1" 'hdr.message-id' mailbox INBOX header message-id a4@one.test | tail -n +2)
expect "<a4> is still on server one" "$got" "<a4@one.test>"

# --- 8. push on the selected folder after a reconnect to another server -------------
# IDLE (NOTIFY hidden): the session keeps INBOX selected, and its news is
# taken without SELECT.  Two more servers, alice's INBOX on each.
WATCH=$BDIR/tests/tools/session-watch
[ -x "$WATCH" ] || bail "missing $WATCH (make all tests)"
DOVECOT_HIDE_CAPABILITY=NOTIFY dc_start three
P3=$IMAP_PORT C3=$DOVECOT_CONF PW3=$PASS1
DOVECOT_HIDE_CAPABILITY=NOTIFY dc_start four
P4=$IMAP_PORT C4=$DOVECOT_CONF
d3() { doveadm -c "$C3" "$@"; }
d4() { doveadm -c "$C4" "$@"; }
# server four takes alice's password of server three (Dovecot re-reads its users file)
h=$(grep "^$USER1:" "$WORK/three/users" | cut -d: -f2)
[ -n "$h" ] || bail "no hash of $USER1 on server three"
sed -i "s|^$USER1:[^:]*:|$USER1:$h:|" "$WORK/four/users" || bail "cannot set the password on server four"
for i in 1 2 3; do
	DOVECOT_CONF=$C3 msg_save "$USER1" INBOX "<c$i@three.test>" 400 || bail "cannot save <c$i>"
done
for i in 1 2 3 4 5 6; do
	DOVECOT_CONF=$C4 msg_save "$USER1" INBOX "<d$i@four.test>" 500 || bail "cannot save <d$i>"
done
istatus() { # CONF ITEM: of alice's INBOX
	doveadm -c "$1" -f tab mailbox status -u "$USER1" "$2" INBOX | tail -n 1 | cut -f2
}
CONF=$WORK/push.conf
DB=$WORK/push.db
PASS1=$PW3 clear_conf "$CONF" "$DB" 0
PROXY_TO_PORT=$P3 proxy_start
PP=$PROXY_PORT
sed -i "s/^port = .*/port = $PP/" "$CONF" || bail "cannot set the port"
WATCH_PID=
stop_watch() {
	if [ -n "$WATCH_PID" ]; then
		exec 7>&-
		kill "$WATCH_PID" 2>/dev/null
		wait "$WATCH_PID" 2>/dev/null
	fi
	WATCH_PID=
}
trap 'stop_watch; lib_cleanup' EXIT
OUT=$WORK/push.out
mkfifo "$WORK/push.cmd" || bail "cannot make the command fifo"
SESSION_WATCH_DEBUG=1 SESSION_WATCH_WIRE=1 "$WATCH" "$CONF" --retry 300 <"$WORK/push.cmd" \
	>"$OUT" 2>"$OUT.log" &
WATCH_PID=$!
exec 7>"$WORK/push.cmd"
MARK=0
LOGMARK=0
mark() {
	MARK=$(wc -l <"$OUT")
	LOGMARK=$(wc -l <"$OUT.log")
}
wait_for() { # REGEX SECONDS: a line of session-watch after the mark
	local i
	for i in $(seq $(($2 * 20))); do
		tail -n +$((MARK + 1)) "$OUT" | grep -qE "$1" && return 0
		sleep 0.05
	done
	echo "    no line matching '$1' within ${2}s; got:"
	tail -n +$((MARK + 1)) "$OUT" | tail -n 8 | sed 's/^/    /'
	return 1
}
# the check's FETCHes sent since the mark (one UID, for its size and date)
checks_since() {
	tail -n +$((LOGMARK + 1)) "$OUT.log" |
		grep -cE '^<7>a C: [A-Za-z0-9]+ UID FETCH [0-9]+ \(UID RFC822.SIZE INTERNALDATE\)$'
}
# the commands sent since the mark, the wire bytes each way (trace lines)
sent_since() { tail -n +$((LOGMARK + 1)) "$OUT.log" | grep -c '^<7>a C: '; }
bytes_since() { # C or S
	tail -n +$((LOGMARK + 1)) "$OUT.log" | sed -n "s/^<7>a $1: //p" | wc -c
}
selects_since() { tail -n +$((LOGMARK + 1)) "$OUT.log" | grep -c '^<7>a C: [A-Za-z0-9]* SELECT INBOX'; }
alice_dump() { DOVECOT_CONF=$1 server_dump "$USER1"; }
# wake NAME MSGID CONF: a delivery to INBOX, taken by the run without SELECT
wake() {
	mark
	DOVECOT_CONF=$3 msg_save "$USER1" INBOX "$2" 400 || bail "cannot save $2"
	check "push: $1: the delivery is added" wait_for '^added [0-9]+ [0-9]+$' 10
	check "push: $1: ...and idle again" wait_for '^state a idle idle$' 10
	expect "push: $1: ...without SELECT" "$(selects_since)" 0
	echo "# push, $1: $(sent_since) commands, $(bytes_since C) B out, $(bytes_since S) B in (trace)"
}
check "push: the session syncs server three and waits in IDLE" wait_for '^state a idle idle$' 20
wake "news on the connection that read INBOX whole" "<c4@three.test>" "$C3"
expect "push: ...no check (read whole on the connection)" "$(checks_since)" 0

# the same server again through a new connection: INBOX is checked once
# on it, by the pull (Dovecot's HIGHESTMODSEQ moved past the one the run
# without SELECT recorded: a QRESYNC SELECT) or else by the first news
mark
proxy_stop
PROXY_TO_PORT=$P3 proxy_start --listen-port "$PP"
check "push: reconnected to server three" wait_for '^state a (connecting|syncing)' 20
check "push: ...and idle again" wait_for '^state a idle idle$' 20
conn_mark=$LOGMARK
wake "the first news on a new connection" "<c5@three.test>" "$C3"
wake "the next news on it" "<c6@three.test>" "$C3"
expect "push: ...no check at the next news" "$(checks_since)" 0
LOGMARK=$conn_mark
expect "push: one check of INBOX on the new connection" "$(checks_since)" 1
expect "push: the store equals server three" "$("$CPMCTL" dump --db "$DB" a)" "$(alice_dump "$C3")"

# server four made to show what server three's INBOX shows: UIDVALIDITY,
# UIDNEXT 7, MESSAGES 6, HIGHESTMODSEQ; the session offline meanwhile,
# then back to server three to record it
mark
proxy_stop
check "server four: INBOX gets server three's UIDVALIDITY" \
	d4 mailbox update --uid-validity "$(istatus "$C3" uidvalidity)" -u "$USER1" INBOX
for _ in 1 2 3 4 5; do
	h3=$(istatus "$C3" highestmodseq)
	h4=$(istatus "$C4" highestmodseq)
	[ "$h3" = "$h4" ] && break
	t=$((h3 > h4 ? h3 : h4))
	d3 mailbox update --min-highest-modseq "$t" -u "$USER1" INBOX
	d4 mailbox update --min-highest-modseq "$t" -u "$USER1" INBOX
done
for f in uidvalidity uidnext messages highestmodseq; do
	expect "server four's INBOX shows server three's $f" "$(istatus "$C4" "$f")" "$(istatus "$C3" "$f")"
done
PROXY_TO_PORT=$P3 proxy_start --listen-port "$PP"
check "push: reconnected to server three" wait_for '^state a (connecting|syncing)' 20
check "push: ...and idle again" wait_for '^state a idle idle$' 20
expect "push: the store recorded server three's HIGHESTMODSEQ" \
	"$(sqlite3 "$DB" "SELECT highestmodseq FROM folder WHERE name = 'INBOX'")" "$(istatus "$C3" highestmodseq)"
local_before=$("$CPMCTL" dump --db "$DB" a)
mark
proxy_stop
PROXY_TO_PORT=$P4 proxy_start --listen-port "$PP"
check "push: reconnected, to server four" wait_for '^state a (connecting|syncing)' 20
check "push: ...the pull sees nothing new in INBOX, and waits" wait_for '^state a idle idle$' 20
expect "push: the pull did not SELECT INBOX for news (only the run without SELECT sees them)" \
	"$(tail -n +$((LOGMARK + 1)) "$OUT.log" | grep -c '^<7>a C: [A-Za-z0-9]* SELECT INBOX (QRESYNC')" 0
expect "push: the store is as it was" "$("$CPMCTL" dump --db "$DB" a)" "$local_before"
mark
DOVECOT_CONF=$C4 msg_save "$USER1" INBOX "<new@four.test>" 500 || bail "cannot save <new@four.test>"
check "push: server four's news fails the account" wait_for '^state a error ' 15
want="a: INBOX on this server is not the folder the store holds: its UID 6 is another message than the store's <c6@three.test> (RFC822.SIZE"
if grep -qF "$want" "$OUT.log" && grep -qF "; not retrying until the settings change" "$OUT.log"; then
	ok "push: it says which folder and what differs"
else
	not_ok "push: it says which folder and what differs"
	grep -F 'is not the folder' "$OUT.log" | sed 's/^/    /'
fi
sleep 0.5
expect "push: the store is as it was (no <new@four.test>)" "$("$CPMCTL" dump --db "$DB" a)" "$local_before"
stop_watch
finish
