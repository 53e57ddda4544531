#!/usr/bin/env bash
# One message must not stop an account's sync for good, against a real
# Dovecot: a message of 1,500 MIME parts, whose BODYSTRUCTURE (over
# 100 KB) makes the new-message FETCH response longer than the parser's
# 64 KiB line limit, with sync_bodies limited (the FETCH that asks for
# BODYSTRUCTURE).  The run must succeed (the response skipped, the message
# fetched again without BODYSTRUCTURE and kept without one, one log line
# naming folder and UID), the store must equal the server, and the next
# run must succeed too.
# Then a body over the literal cap with sync_bodies = all, the cap lowered
# to 100,000 bytes for the test (CPMSYNC_TEST_MAX_BODY_LITERAL; 256 MiB
# otherwise): only that much of it is asked for (BODY.PEEK[]<0.n>), the
# message is kept without a body (its row, flags and summary are), the
# smaller one with its body, and the next run neither fails nor fetches it
# again; nor does the pass over missing bodies after sync_bodies grew.
# Last, a Message-ID after a 320 KB To: is stored as the server has it.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init

dc_start dc
CONF=$WORK/long.conf
DB=$WORK/long.db
write_conf "$CONF" "$DB"
printf 'sync_bodies = 1\n' >>"$CONF"
da mailbox create -u "$USER1" Parts || bail "cannot create Parts"

# msg MSGID: a small message
msg() { printf 'From: a@x\r\nSubject: small\r\nMessage-ID: <%s>\r\n\r\nhello\r\n' "$1"; }
# many_parts N MSGID: a multipart/mixed message of N text parts
many_parts() {
	printf 'From: a@x\r\nSubject: many parts\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n' "$2"
	printf 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
	awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"; printf "--b--\r\n" }'
}
msg a@long.test | da save -u "$USER1" -m Parts || bail "cannot save a@long.test"
many_parts 1500 parts@long.test >"$WORK/parts.eml"
da save -u "$USER1" -m Parts <"$WORK/parts.eml" || bail "cannot save parts@long.test"
msg c@long.test | da save -u "$USER1" -m Parts || bail "cannot save c@long.test"
size=$(stat -c %s "$WORK/parts.eml")
# the length of the server's "* 2 FETCH (UID 2 BODYSTRUCTURE (...))" line
bs=$("$PY" - "$IMAP_PORT" "$USER1" "$PASS1" <<'PYEOF'
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
m.select("Parts", readonly=True)
typ, data = m.uid("FETCH", "2", "(BODYSTRUCTURE)")
print(len(data[0]) if typ == "OK" else 0)
m.logout()
PYEOF
) || bail "cannot read the BODYSTRUCTURE of parts@long.test"
echo "# parts@long.test: $size bytes, its FETCH BODYSTRUCTURE response $bs bytes"
check "the BODYSTRUCTURE response is over the 65536-byte line limit" test "$bs" -gt 65536

if sync_once "$CONF" "$WORK/sync1.log"; then
	ok "first sync succeeds"
else
	not_ok "first sync succeeds"
fi
want="a: Parts: UID 2: the server's FETCH response is over the 65536-byte line limit (the BODYSTRUCTURE of a message with very many MIME parts): fetched again without BODYSTRUCTURE"
check "one log line names the folder and UID" \
	test "$(grep -cF -- "$want" "$WORK/sync1.log")" = 1
check "store equals the server" compare "$DB"
got=$(sqlite3 "$DB" "SELECT group_concat(m.uid || ' ' || m.message_id || ' ' || m.size || ' ' ||
	(s.bodystructure IS NULL), ',') FROM (SELECT * FROM message ORDER BY uid) m
	JOIN folder f ON f.id = m.folder_id LEFT JOIN summary s ON s.id = m.id WHERE f.name = 'Parts'")
small=$(msg a@long.test | wc -c)
wantrows="1 <a@long.test> $small 0,2 <parts@long.test> $size 1,3 <c@long.test> $small 0"
check "the message is kept with its size and no BODYSTRUCTURE (got '$got')" test "$got" = "$wantrows"
msg d@long.test | da save -u "$USER1" -m Parts || bail "cannot save d@long.test"
if sync_once "$CONF" "$WORK/sync2.log"; then
	ok "the next sync succeeds"
else
	not_ok "the next sync succeeds"
fi
check "the next sync fetches nothing again" test "$(grep -cF -- "line limit" "$WORK/sync2.log")" = 0
check "store equals the server after the next sync" compare "$DB"

# --- a body over the literal cap ---
CONF2=$WORK/cap.conf
DB2=$WORK/cap.db
write_conf "$CONF2" "$DB2"
printf 'sync_bodies = all\n' >>"$CONF2"
da mailbox create -u "$USER1" Bodies || bail "cannot create Bodies"
# body MSGID SUBJECT SIZE: a message of about SIZE bytes
body() {
	printf 'From: a@x\r\nSubject: %s\r\nMessage-ID: <%s>\r\n\r\n' "$2" "$1"
	awk -v n="$3" 'BEGIN { l = sprintf("%76s", ""); gsub(/ /, "x", l); for (i = 0; i < n; i += 78) printf "%s\r\n", l }'
}
body huge@long.test huge 150000 >"$WORK/huge.eml"
body fits@long.test fits 50000 >"$WORK/fits.eml"
da save -u "$USER1" -m Bodies <"$WORK/huge.eml" || bail "cannot save huge@long.test"
da save -u "$USER1" -m Bodies <"$WORK/fits.eml" || bail "cannot save fits@long.test"
da flags add -u "$USER1" '\Flagged' mailbox Bodies uid 1 || bail "cannot flag huge@long.test"
cap_sync() { CPMSYNC_TEST_MAX_BODY_LITERAL=100000 sync_once "$CONF2" "$1"; }
if cap_sync "$WORK/cap1.log"; then
	ok "a body over the cap: the sync succeeds"
else
	not_ok "a body over the cap: the sync succeeds"
fi
check "a body over the cap: only 100000 bytes of it asked for" \
	grep -qE 'UID FETCH 1:\* \(UID FLAGS .* BODY\.PEEK\[\]<0\.100000>\)$' "$WORK/cap1.log"
check "a body over the cap: store equals the server" compare "$DB2"
got=$(sqlite3 "$DB2" "SELECT group_concat(m.uid || ' ' || m.message_id || ' ' || m.size || ' ' ||
	m.has_body || ' ' || s.subject, ',') FROM (SELECT * FROM message ORDER BY uid) m
	JOIN folder f ON f.id = m.folder_id LEFT JOIN summary s ON s.id = m.id WHERE f.name = 'Bodies'")
wantrows="1 <huge@long.test> $(stat -c %s "$WORK/huge.eml") 0 huge,2 <fits@long.test> $(stat -c %s "$WORK/fits.eml") 1 fits"
check "a body over the cap: kept without it, the other with its body (got '$got')" \
	test "$got" = "$wantrows"
if cap_sync "$WORK/cap2.log"; then
	ok "a body over the cap: the next sync succeeds"
else
	not_ok "a body over the cap: the next sync succeeds"
fi
check "a body over the cap: the next sync fetches no body" grep -q ' 0 body bytes' "$WORK/cap2.log"
check "a body over the cap: store equals the server after the next sync" compare "$DB2"
# The first store (sync_bodies = 1) gets the headers of Bodies, then
# sync_bodies = all: the pass over the bodies still missing leaves out
# the one over the cap (it could not come whole).
if CPMSYNC_TEST_MAX_BODY_LITERAL=100000 sync_once "$CONF" "$WORK/cap3.log"; then
	ok "a body over the cap: headers first, the sync succeeds"
else
	not_ok "a body over the cap: headers first, the sync succeeds"
fi
sed -i 's/^sync_bodies = 1$/sync_bodies = all/' "$CONF"
check "the first store's sync_bodies is all now" grep -qx 'sync_bodies = all' "$CONF"
if CPMSYNC_TEST_MAX_BODY_LITERAL=100000 sync_once "$CONF" "$WORK/cap4.log"; then
	ok "a body over the cap: then sync_bodies = all, the sync succeeds"
else
	not_ok "a body over the cap: then sync_bodies = all, the sync succeeds"
fi
got=$(sqlite3 "$DB" "SELECT group_concat(m.uid || ' ' || m.has_body, ',') FROM
	(SELECT * FROM message ORDER BY uid) m JOIN folder f ON f.id = m.folder_id WHERE f.name = 'Bodies'")
check "a body over the cap: not asked for in the pass over bodies (got '$got')" test "$got" = "1 0,2 1"
check "a body over the cap: the first store equals the server" compare "$DB"

# --- a Message-ID after a 320 KB To: ---
da mailbox create -u "$USER1" Wide || bail "cannot create Wide"
{
	printf 'From: a@x\r\nSubject: wide\r\nTo: u0@example.org'
	awk 'BEGIN { for (i = 1; i < 16000; i++) printf ",\r\n u%d@example.org", i }'
	printf '\r\nMessage-ID: <wide@long.test>\r\n\r\nhello\r\n'
} >"$WORK/wide.eml"
check "the To: of wide@long.test is over 320 KB" test "$(stat -c %s "$WORK/wide.eml")" -gt 320000
da save -u "$USER1" -m Wide <"$WORK/wide.eml" || bail "cannot save wide@long.test"
CONF3=$WORK/wide.conf
DB3=$WORK/wide.db
write_conf "$CONF3" "$DB3"
printf 'sync_bodies = 1\n' >>"$CONF3"
for c in "$CONF:sync_bodies = all (BODY[])" "$CONF3:sync_bodies = 1 (BODY[HEADER])"; do
	if sync_once "${c%%:*}" "$WORK/wide.log"; then
		ok "a 320 KB To:, ${c#*:}: the sync succeeds"
	else
		not_ok "a 320 KB To:, ${c#*:}: the sync succeeds"
	fi
done
check "a 320 KB To:, sync_bodies = all: the Message-ID after it is stored" compare "$DB"
check "a 320 KB To:, sync_bodies = 1: the Message-ID after it is stored" compare "$DB3"
finish
