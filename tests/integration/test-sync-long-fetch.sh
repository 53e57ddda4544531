#!/usr/bin/env bash
# One message must not stop an account's sync for good, against a real
# Dovecot: a message of 1,500 MIME parts, whose BODYSTRUCTURE (over
# 100 KB) makes the new-message FETCH response longer than the parser's
# 64 KiB line limit, with sync_bodies limited (the FETCH that asks for
# BODYSTRUCTURE).  The run must succeed (the response skipped, the message
# fetched again without BODYSTRUCTURE and kept without one, one log line
# naming folder and UID), the store must equal the server, and the next
# run must succeed too.
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
finish
