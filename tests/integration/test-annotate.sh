#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Per-object annotations (Folder1.GetAnnotations/SetAnnotations, ANNOTATE
# RFC 5257) over D-Bus on a private bus, against real Cyrus IMAP 3.6 (alt
# namespace, tests/cyrus/cyrus-ctl.sh; it offers ANNOTATE-EXPERIMENT-1) and
# Dovecot (no ANNOTATE), one account each in one daemon:
#   - a value set over D-Bus is seen by another client (a raw IMAP session,
#     python3 imaplib), private and shared, and a removal too;
#   - one set by the other client is seen over D-Bus after a sync, with a
#     MessagesChanged of the message (Cyrus bumps MODSEQ);
#   - offline: SetAnnotations is accepted, read back at once
#     (read-your-writes), an entry not cached is Offline, and the value
#     reaches the server once online;
#   - bad entries are InvalidArgs naming them; Dovecot is NotSupported
#     "ANNOTATE";
#   - cpmctl annotation get|set: the same through the CLI (values seen by
#     the other client and back, --shared, --json, usage errors, and
#     NotSupported on Dovecot).
set -u
SERVER=cyrus-alt
. "$(dirname "$0")/lib-sync.sh"
lib_init
T0=$(date +%s)

dc_start cy
CY_HOST=$IMAP_HOST CY_PORT=$IMAP_PORT CY_PASS=$PASS1
CY_IMAPS=$IMAPS_PORT CY_CA=$CA_FILE
# Dovecot beside it, for the server without ANNOTATE (stopped by the trap).
DV=$WORK/dv
mkdir -p "$DV"
"$TOP/tests/dovecot/dovecot-ctl.sh" start "$DV" >"$WORK/dv.start.log" 2>&1 || {
	cat "$WORK/dv.start.log"
	bail "cannot start Dovecot"
}
DV_IMAPS=$(. "$DV/env" && echo "$IMAPS_PORT")
DV_CA=$(. "$DV/env" && echo "$CA_FILE")
DV_PASS=$(. "$DV/env" && echo "$PASS1")
DV_CONF=$(. "$DV/env" && echo "$DOVECOT_CONF")

dbus_setup
trap 'stop_all; "$TOP/tests/dovecot/dovecot-ctl.sh" stop "$DV" >/dev/null 2>&1; lib_cleanup' EXIT

F=org.cpmsync.Folder1
# prop_is PATH NAME WANT: Account1 property NAME of PATH is WANT (read anew
# at each try of eventually)
prop_is() { [ "$("$DBUS" get "$1" org.cpmsync.Account1 "$2")" = "$3" ]; }
# annotations_are FOLDER ID ENTRIES SHARED WANT: GetAnnotations, sorted, ' '-joined
annotations_are() {
	local got
	got=$(call "$1" org.cpmsync.Folder1 GetAnnotations 'tasb' "$2" "$3" "$4" | sed '/^$/d' | sort | tr '\n' ' ')
	[ "$got" = "$5" ] || {
		echo "    GetAnnotations gives '$got', not '$5'"
		return 1
	}
}

# The other client: python3 imaplib on Cyrus's plain port, as alice.
#   other append MESSAGE-ID,...         new messages in INBOX
#   other get MESSAGE-ID ENTRY ATTR      prints the value, or NIL
#   other set MESSAGE-ID ENTRY ATTR VALUE   (VALUE NIL removes)
cat >"$WORK/other.py" <<'EOF'
import imaplib, re, sys
host, port, user, pw, op, msgid = sys.argv[1:7]
entry, attr = (sys.argv[7:9] + ["", ""])[:2]
m = imaplib.IMAP4(host, int(port))
m.login(user, pw)
if op == "append":
    # msgid: the Message-IDs of new messages, ','-separated
    for mid in msgid.split(","):
        body = ("From: Tester <tester@sync.test>\r\nTo: Alice <alice@sync.test>\r\n"
                "Subject: annotate %s\r\nMessage-ID: %s\r\n\r\nhello\r\n" % (mid, mid))
        typ, data = m.append("INBOX", None, None, body.encode())
        if typ != "OK":
            sys.exit("other: APPEND refused: %r" % (data,))
    m.logout()
    sys.exit(0)
m.select("INBOX")
typ, data = m.uid("SEARCH", None, "HEADER", "Message-ID", msgid)
uids = data[0].split()
if typ != "OK" or len(uids) != 1:
    sys.exit("other: %s is not one message in INBOX: %r" % (msgid, data))
uid = uids[0].decode()
if op == "set":
    value = sys.argv[9]
    v = "NIL" if value == "NIL" else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    typ, data = m.uid("STORE", uid, "ANNOTATION", "(%s (%s %s))" % (entry, attr, v))
    if typ != "OK":
        sys.exit("other: STORE refused: %r" % (data,))
else:
    typ, data = m.uid("FETCH", uid, "(ANNOTATION (%s (%s)))" % (entry, attr))
    raw = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data if x).decode()
    mt = re.search(re.escape(attr) + r' (NIL|"((?:[^"\\]|\\.)*)")', raw)
    if typ != "OK" or not mt:
        sys.exit("other: no %s in %r" % (attr, raw))
    print("NIL" if mt.group(1) == "NIL" else re.sub(r"\\(.)", r"\1", mt.group(2)))
m.logout()
EOF
other() { "$PY" "$WORK/other.py" "$CY_HOST" "$CY_PORT" "$USER1" "$CY_PASS" "$@"; }
other_is() { # other_is WANT MESSAGE-ID ENTRY ATTR
	local want=$1 got
	shift
	got=$(other get "$@") || return 1
	[ "$got" = "$want" ] || {
		echo "    the other client sees '$got', not '$want'"
		return 1
	}
}

other append "<ann1@annotate.test>,<ann2@annotate.test>" || bail "cannot save messages on Cyrus"
(. "$DV/env" && msg_text "<dv@annotate.test>" 400 |
	doveadm -c "$DV_CONF" save -u "$USER1" -m INBOX) || bail "cannot save a message on Dovecot"

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
printf '%s\n' "$CY_PASS" >"$WORK/cy.pw"
printf '%s\n' "$DV_PASS" >"$WORK/dv.pw"
chmod 0600 "$WORK/cy.pw" "$WORK/dv.pw"
cat >"$CONF" <<EOF
[general]
database = $WORK/store.db
outbox = $WORK/outbox
[account a]
host = localhost
port = $CY_IMAPS
ca_file = $CY_CA
user = $USER1
password_file = $WORK/cy.pw
[account d]
host = localhost
port = $DV_IMAPS
ca_file = $DV_CA
user = $USER1
password_file = $WORK/dv.pw
EOF
"$DBUS" monitor >"$WORK/signals.log" 2>&1 &
MON_PID=$!
SIGMARK=0
sleep 0.2
start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "account a (Cyrus) reaches State idle" wait_state idle 30
D=/org/cpmsync/d
check "account d (Dovecot) reaches State idle" eventually 30 prop_is $D State idle

INBOX=$(call "$A" org.cpmsync.Account1 FindFolder s INBOX)
call "$INBOX" $F ListMessages tu 0 100 >"$WORK/list"
ids_by_mid() {
	awk -v mid="$1" '/^- /{id=""} /Id=[0-9]+/ && !id {match($0, /Id=[0-9]+/); id=substr($0, RSTART+3, RLENGTH-3)} index($0, "MessageId=" mid) {print id}' "$WORK/list"
}
ID1=$(ids_by_mid "<ann1@annotate.test>")
ID2=$(ids_by_mid "<ann2@annotate.test>")
check "both messages are listed (ids $ID1, $ID2)" test -n "$ID1" -a -n "$ID2"

# --- D-Bus -> the other client --------------------------------------------------------------
check "SetAnnotations (private) accepted" \
	call "$INBOX" $F SetAnnotations 'ta{ss}b' "$ID1" "/comment=hello dbus" false
check "the other client sees value.priv" \
	eventually 10 other_is "hello dbus" "<ann1@annotate.test>" /comment value.priv
check "SetAnnotations (shared) accepted" \
	call "$INBOX" $F SetAnnotations 'ta{ss}b' "$ID1" "/comment=for everyone,/altsubject=alt" true
check "the other client sees value.shared" \
	eventually 10 other_is "for everyone" "<ann1@annotate.test>" /comment value.shared
check "and the second shared entry" other_is alt "<ann1@annotate.test>" /altsubject value.shared
check "the private value is untouched" other_is "hello dbus" "<ann1@annotate.test>" /comment value.priv
check "GetAnnotations private" \
	annotations_are "$INBOX" "$ID1" /comment,/altsubject false "/comment=hello dbus "
check "GetAnnotations shared" \
	annotations_are "$INBOX" "$ID1" /comment,/altsubject true "/altsubject=alt /comment=for everyone "
check "an empty value removes the entry" \
	call "$INBOX" $F SetAnnotations 'ta{ss}b' "$ID1" "/altsubject=" true
check "the other client sees NIL" eventually 10 other_is NIL "<ann1@annotate.test>" /altsubject value.shared

# --- the other client -> D-Bus ------------------------------------------------------------
# Nothing cached for message 2 yet: the first Get asks the server (NIL).
check "GetAnnotations of an entry the server has not: empty" \
	annotations_are "$INBOX" "$ID2" /comment false ""
sigmark
other set "<ann2@annotate.test>" /comment value.priv "from python" || bail "the other client's STORE failed"
call "$A" org.cpmsync.Account1 Sync >/dev/null
check "after a sync: MessagesChanged of message 2" \
	eventually 10 saw_signal "$INBOX org.cpmsync.Folder1 MessagesChanged .*Id=$ID2"
check "after a sync: GetAnnotations gives the other client's value (cached)" \
	annotations_are "$INBOX" "$ID2" /comment false "/comment=from python "

# --- cpmctl annotation ---------------------------------------------------------------------------
# cli ARGS...: runs cpmctl, its stdout, stderr and status in $WORK/cli.{out,err,rc}
cli() {
	"$CPMCTL" "$@" >"$WORK/cli.out" 2>"$WORK/cli.err"
	echo $? >"$WORK/cli.rc"
}
# cli_is RC OUT [ERR-FIRST-LINE]: what the last cli gave, exactly
cli_is() {
	local rc out err
	rc=$(cat "$WORK/cli.rc") out=$(cat "$WORK/cli.out") err=$(head -n 1 "$WORK/cli.err")
	if [ "$rc" = "$1" ] && [ "$out" = "$2" ] && [ "$err" = "${3-}" ]; then
		return 0
	fi
	echo "    exit $rc, stdout '$out', stderr '$err'; want exit $1, stdout '$2', stderr '${3-}'"
	return 1
}
cli annotation set a INBOX "$ID2" /comment "from cpmctl"
check "cpmctl annotation set: exit 0, nothing printed" cli_is 0 ""
check "cpmctl annotation set: the other client sees value.priv" \
	eventually 10 other_is "from cpmctl" "<ann2@annotate.test>" /comment value.priv
cli annotation set --shared a INBOX "$ID2" /comment "shared cli" /altsubject "alt cli"
check "cpmctl annotation set --shared, two entries: exit 0" cli_is 0 ""
check "cpmctl annotation set --shared: the other client sees value.shared" \
	eventually 10 other_is "shared cli" "<ann2@annotate.test>" /comment value.shared
check "cpmctl annotation set --shared: and the second entry" \
	other_is "alt cli" "<ann2@annotate.test>" /altsubject value.shared
cli annotation get a INBOX "$ID2" /comment /altsubject
check "cpmctl annotation get: ENTRY TAB VALUE of value.priv (no private /altsubject)" \
	cli_is 0 $'/comment\tfrom cpmctl'
cli annotation get --shared a INBOX "$ID2" /comment /altsubject
check "cpmctl annotation get --shared: sorted by entry" \
	cli_is 0 $'/altsubject\talt cli\n/comment\tshared cli'
cli annotation get --json --shared a INBOX "$ID2" /altsubject
check "cpmctl annotation get --json" cli_is 0 '{"Entry":"/altsubject","Value":"alt cli"}'
other set "<ann2@annotate.test>" /comment value.priv "python again" || bail "the other client's STORE failed"
call "$A" org.cpmsync.Account1 Sync >/dev/null
# cli_get_is ID ENTRY WANT: cpmctl annotation get prints WANT (tried anew by eventually)
cli_get_is() { [ "$("$CPMCTL" annotation get a INBOX "$1" "$2")" = "$3" ]; }
check "cpmctl annotation get: the other client's change after a sync" \
	eventually 10 cli_get_is "$ID2" /comment $'/comment\tpython again'
cli annotation set a INBOX "$ID2" /altsubject ""
check "cpmctl annotation set ENTRY \"\": exit 0" cli_is 0 ""
check "cpmctl annotation set ENTRY \"\": removed on the server" \
	eventually 10 other_is NIL "<ann2@annotate.test>" /altsubject value.priv
cli annotation get a INBOX "$ID2" comment
check "cpmctl annotation get: an entry without '/' is refused, exit 2" \
	cli_is 2 "" "cpmctl annotation get: invalid entry 'comment': must start with '/'"
cli annotation set a INBOX "$ID2" /comment x /altsubject
check "cpmctl annotation set: an entry without a value, exit 2" \
	cli_is 2 "" "cpmctl annotation set: entry '/altsubject' has no value"
cli annotation set a INBOX "$ID2" /comment x /comment y
check "cpmctl annotation set: an entry given twice, exit 2" \
	cli_is 2 "" "cpmctl annotation set: entry '/comment' given twice"
cli annotation get a INBOX x1 /comment
check "cpmctl annotation get: a bad message id, exit 2" cli_is 2 "" "cpmctl: invalid message id 'x1'"
cli annotation get a INBOX "$ID2"
check "cpmctl annotation get: no entry, exit 2" cli_is 2 "" "cpmctl annotation get: missing argument"
cli annotation set --json a INBOX "$ID2" /comment x
check "cpmctl annotation set --json: not an option of set, exit 2" \
	cli_is 2 "" "cpmctl annotation set: unknown option '--json'"
cli annotation put a INBOX "$ID2" /comment
check "cpmctl annotation put: unknown subcommand, exit 2" \
	cli_is 2 "" "cpmctl annotation: unknown subcommand 'put'"
# bash completion (agent/cpmctl.bash-completion), as test-cpmctl-live.sh drives it
complete_words() {
	PATH=$BDIR:$PATH bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _cpmctl
		printf "%s\n" "${COMPREPLY[@]}"' - "$TOP/agent/cpmctl.bash-completion" "$@"
}
check "completion: annotation is offered (from --help)" test "$(complete_words cpmctl ann)" = annotation
check "completion: annotation's subcommands" \
	test "$(complete_words cpmctl annotation '' | tr '\n' ' ')" = "get set "
check "completion: the account after annotation get" \
	test "$(complete_words cpmctl annotation get '' | tr '\n' ' ')" = "a d "
check "completion: annotation entries" \
	test "$(complete_words cpmctl annotation get --shared a INBOX 5 /c)" = /comment
check "completion: annotation set's value is not an entry" \
	test -z "$(complete_words cpmctl annotation set a INBOX 5 /comment /c)"
check "completion: annotation get's options" \
	test "$(complete_words cpmctl annotation get -- | tr '\n' ' ')" = "--json --shared --help "
check "completion: annotation set's options (no --json)" \
	test "$(complete_words cpmctl annotation set -- | tr '\n' ' ')" = "--shared --help "
cli annotation get a INBOX 999999 /comment
check "cpmctl annotation get: an unknown message, exit 1" \
	cli_is 1 "" "cpmctl: GetAnnotations: NotFound: id: no message 999999 in this folder"

# --- offline ----------------------------------------------------------------------------------
"$DBUS" set "$A" org.cpmsync.Account1 Online b false >/dev/null
check "Online=false: State offline" wait_state offline 5
check "offline: SetAnnotations accepted" \
	call "$INBOX" $F SetAnnotations 'ta{ss}b' "$ID1" "/comment=written offline" false
check "offline: read-your-writes" \
	annotations_are "$INBOX" "$ID1" /comment false "/comment=written offline "
call "$INBOX" $F GetAnnotations 'tasb' "$ID1" /subject false >"$WORK/offline.get"
check "offline: an entry not cached is Offline" grep -q '^error org.cpmsync.Error.Offline' "$WORK/offline.get"
check "offline: PendingOperations 1" prop_is "$A" PendingOperations 1
check "offline: the server still has the old value" other_is "hello dbus" "<ann1@annotate.test>" /comment value.priv
"$DBUS" set "$A" org.cpmsync.Account1 Online b true >/dev/null
check "online again: the offline value reaches the server" \
	eventually 15 other_is "written offline" "<ann1@annotate.test>" /comment value.priv
check "online again: PendingOperations 0" eventually 10 prop_is "$A" PendingOperations 0
check "online again: no failed operation" \
	test -z "$(call "$A" org.cpmsync.Account1 ListFailedOperations)"

# One entry Cyrus refuses (its own /vendor/cmu/cyrus-imapd/ entries are the
# server's) and one it takes, set offline on one message: the whole STORE is
# refused, and the good one must land all the same, not wait with the bad.
"$DBUS" set "$A" org.cpmsync.Account1 Online b false >/dev/null
check "offline again: State offline" wait_state offline 5
check "offline: SetAnnotations of a Cyrus-owned entry accepted" \
	call "$INBOX" $F SetAnnotations 'ta{ss}b' "$ID2" "/vendor/cmu/cyrus-imapd/bar=x" false
check "offline: SetAnnotations /comment of the same message accepted" \
	call "$INBOX" $F SetAnnotations 'ta{ss}b' "$ID2" "/comment=good 2" false
"$DBUS" set "$A" org.cpmsync.Account1 Online b true >/dev/null
check "online: the good entry reaches the server although the other is refused" \
	eventually 15 other_is "good 2" "<ann2@annotate.test>" /comment value.priv
check "online: the refusal is logged naming the refused entry only" \
	eventually 10 grep -qxF "cpm-syncd: a: UID STORE ANNOTATION refused by the server: /vendor/cmu/cyrus-imapd/bar (value.priv): Permission denied (tried again later)" "$WORK/daemon.log"
check "online: the refused entry stays pending (read-your-writes)" \
	annotations_are "$INBOX" "$ID2" /vendor/cmu/cyrus-imapd/bar false "/vendor/cmu/cyrus-imapd/bar=x "
check "online: GetAnnotations /comment is the server's" \
	annotations_are "$INBOX" "$ID2" /comment false "/comment=good 2 "
# The refused entry is its row's, tried again on its own back-off (60 s
# first) or by RetryOperation: a later change of /comment goes at once and
# alone, and does not send the refused entry with it.
REFUSED="cpm-syncd: a: UID STORE ANNOTATION refused by the server: /vendor/cmu/cyrus-imapd/bar (value.priv): Permission denied (tried again later)"
check "online: a later SetAnnotations /comment of the same message accepted" \
	call "$INBOX" $F SetAnnotations 'ta{ss}b' "$ID2" "/comment=good 2b" false
check "online: the later change reaches the server at once, not held back with the refused entry" \
	eventually 15 other_is "good 2b" "<ann2@annotate.test>" /comment value.priv
check "online: the refused entry was not sent again with it (refused once)" \
	test "$(grep -cxF "$REFUSED" "$WORK/daemon.log")" -eq 1
check "online: the refused entry still pending (read-your-writes)" \
	annotations_are "$INBOX" "$ID2" /vendor/cmu/cyrus-imapd/bar false "/vendor/cmu/cyrus-imapd/bar=x "
check "online: PendingOperations 1 (the refused entry's row)" eventually 10 prop_is "$A" PendingOperations 1

# --- errors -----------------------------------------------------------------------------------
call "$INBOX" $F SetAnnotations 'ta{ss}b' "$ID1" "comment=x" false >"$WORK/bad1"
check "an entry without '/': InvalidArgs naming it" \
	grep -qx "error org.freedesktop.DBus.Error.InvalidArgs: values: entry \"comment\" must start with '/'" "$WORK/bad1"
MANY=$(seq -f '/e%g=v' 257 | paste -sd,)
check "SetAnnotations with 257 entries: InvalidArgs" \
	test "$(call "$INBOX" $F SetAnnotations 'ta{ss}b' "$ID1" "$MANY" false)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: values: at most 256 entries"
BIG=$(head -c 65537 /dev/zero | tr '\0' x)
check "SetAnnotations with a value of 65537 bytes: InvalidArgs naming the entry" \
	test "$(call "$INBOX" $F SetAnnotations 'ta{ss}b' "$ID1" "/ok=1,/big=$BIG" false)" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: values: value of '/big' longer than 65536 bytes"
call "$INBOX" $F GetAnnotations 'tasb' "$ID1" '/a*' false >"$WORK/bad2"
check "a wildcard entry: InvalidArgs naming it" grep -q "InvalidArgs: entries: entry \"/a\*\"" "$WORK/bad2"
call "$INBOX" $F GetAnnotations 'tasb' 999999 /comment false >"$WORK/bad3"
check "an unknown message: NotFound" grep -q '^error org.cpmsync.Error.NotFound' "$WORK/bad3"

# --- Dovecot: no ANNOTATE ---------------------------------------------------------------------
DINBOX=$(call $D org.cpmsync.Account1 FindFolder s INBOX)
DID=$(call "$DINBOX" $F ListMessages tu 0 1 | grep -o 'Id=[0-9]*' | head -n 1 | cut -d= -f2)
call "$DINBOX" $F SetAnnotations 'ta{ss}b' "$DID" "/comment=x" false >"$WORK/dv.set"
check "Dovecot: SetAnnotations is NotSupported(ANNOTATE)" \
	grep -qx 'error org.cpmsync.Error.NotSupported: ANNOTATE' "$WORK/dv.set"
call "$DINBOX" $F GetAnnotations 'tasb' "$DID" /comment false >"$WORK/dv.get"
check "Dovecot: GetAnnotations is NotSupported(ANNOTATE)" \
	grep -qx 'error org.cpmsync.Error.NotSupported: ANNOTATE' "$WORK/dv.get"
check "Dovecot: nothing journaled" prop_is $D PendingOperations 0
cli annotation get d INBOX "$DID" /comment
check "Dovecot: cpmctl annotation get is NotSupported(ANNOTATE), exit 1" \
	cli_is 1 "" "cpmctl: GetAnnotations: NotSupported: ANNOTATE"
cli annotation set d INBOX "$DID" /comment x
check "Dovecot: cpmctl annotation set is NotSupported(ANNOTATE), exit 1" \
	cli_is 1 "" "cpmctl: SetAnnotations: NotSupported: ANNOTATE"
check "Dovecot: still nothing journaled" prop_is $D PendingOperations 0

echo "# test-annotate: $(($(date +%s) - T0)) s"
finish
