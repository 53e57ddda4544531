#!/usr/bin/env bash
# Requests that need the server do not wait for a long sync (session.c,
# "The request connection").  The account's connection is held in a
# replay: imap-proxy stalls it at the replay's APPEND (a replay of 20,000
# changes, made endless; the command timeout is 60 s).  Meanwhile:
#   - Folder1.Search online answers within seconds, with what the same
#     Search found before the replay, on a second connection;
#   - a Fetch of a body the store does not keep (sync_bodies = 1 KiB, the
#     message 6 KB) answers within seconds with the server's bytes, and the
#     body is kept (HasBody true) though a sync is under way.
# Online false closes both connections; back online the replay goes on.
# The fallback: Dovecot's mail_max_userip_connections = 2, one slot held
# by another client, the other by the stalled connection: the second
# connection's login is refused, and a Search fails within the bound
# (CPMSYNC_REQUEST_WAIT_MS, 3 s here; 20 s by default, under D-Bus's 25 s)
# saying why, not NoReply after 25 s.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
cat >"$WORK/limit.conf" <<'EOF'
mail_max_userip_connections = 2
EOF
export DOVECOT_EXTRA_CONF=$WORK/limit.conf
dc_start dc
unset DOVECOT_EXTRA_CONF
dbus_setup
F=org.cpmsync.Folder1
CONF=$WORK/cpmsync.conf

check "server: a message whose body the store will not keep" \
	msg_save "$USER1" INBOX "<big@rq.test>" 6000
check "server: a small one" msg_save "$USER1" INBOX "<small@rq.test>" 300
BIG_SIZE=$(da -f tab fetch -u "$USER1" size.virtual mailbox INBOX header message-id "<big@rq.test>" | tail -n 1)
check "server: the big message's size ($BIG_SIZE)" test "$BIG_SIZE" -gt 5000

# now_ms: the monotonic-enough wall clock in milliseconds
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# timed OUT CMD...: runs CMD, its stdout in OUT, its duration in ms in MS
timed() {
	local out=$1 t0
	shift
	t0=$(now_ms)
	"$@" >"$out"
	MS=$(($(now_ms) - t0))
}
# server_has MESSAGE-ID: the server's INBOX holds it
server_has() { [ -n "$(da search -u "$USER1" mailbox INBOX header message-id "$1")" ]; }
# stalled: the proxy holds the daemon's first connection at its APPEND
stalled() { grep -q '^imap-proxy: connection 1: fault stall after ' "$WORK/proxy.log"; }

# --- the replay holds the connection; requests answer on a second one --------
proxy_start --verbose --fault stall --fault-stream client --after-pattern APPEND
clear_conf "$CONF" "$WORK/store.db" "$PROXY_PORT" 60
echo "sync_bodies = 1" >>"$CONF"
check "daemon started" start_daemon
check "account reaches State idle" wait_state idle 20
INBOX=$(call "$A" org.cpmsync.Account1 FindFolder s INBOX)
check "FindFolder INBOX" test -n "$INBOX"
call "$INBOX" $F Search 'a{sv}' "Subject=s:test <big@rq.test>" >"$WORK/search.idle"
check "Search while idle finds the big message" test "$(grep -c '^- ' "$WORK/search.idle")" -eq 1
BIG=$(sed -n 's/^- //p' "$WORK/search.idle")
check "its body is not stored (HasBody false)" \
	bash -c "'$DBUS' call $INBOX $F GetMessage t $BIG | grep -qx 'HasBody=false'"

msg_text "<replayed@rq.test>" 400 >"$WORK/replayed.eml"
check "Store accepted (the replay's APPEND)" \
	test "$(call "$INBOX" $F Store ayasx "@$WORK/replayed.eml" '' 0)" -gt 0
check "the replay's APPEND is stalled" eventually 10 stalled
check "the account is syncing" wait_state syncing 5

timed "$WORK/search.busy" call "$INBOX" $F Search 'a{sv}' "Subject=s:test <big@rq.test>"
check "Search during the replay answers within 10 s (took $MS ms)" test "$MS" -lt 10000
check "Search during the replay: the same answer as before it" \
	diff "$WORK/search.idle" "$WORK/search.busy"
timed "$WORK/fetch.busy" call "$INBOX" $F Fetch ts "$BIG" ""
check "Fetch during the replay answers within 10 s (took $MS ms)" test "$MS" -lt 10000
check "Fetch during the replay: the server's $BIG_SIZE bytes" \
	test "$(wc -c <"$WORK/fetch.busy")" -eq "$BIG_SIZE"
check "Fetch during the replay: the message's own bytes" grep -q 'big@rq.test' "$WORK/fetch.busy"
check "the fetched body is kept (HasBody true)" \
	bash -c "'$DBUS' call $INBOX $F GetMessage t $BIG | grep -qx 'HasBody=true'"
check "still syncing: the replay is stalled yet" test "$(acct State)" = syncing
check "the requests went over a second connection" \
	grep -q '^imap-proxy: connection 2: accepted' "$WORK/proxy.log"
check "no third one (at most one request connection)" \
	eval '! grep -q "^imap-proxy: connection 3: accepted" "$WORK/proxy.log"'


# --- offline closes it; back online the replay goes on --------------------------
"$DBUS" set "$A" org.cpmsync.Account1 Online b false >"$WORK/set.out"
check "Online false accepted" test ! -s "$WORK/set.out"
check "offline: the request connection is closed" \
	eventually 5 grep -q '^imap-proxy: connection 2: closed' "$WORK/proxy.log"
check "offline: the stalled one too" \
	eventually 5 grep -q '^imap-proxy: connection 1: closed' "$WORK/proxy.log"
"$DBUS" set "$A" org.cpmsync.Account1 Online b true >"$WORK/set.out"
check "Online true accepted" test ! -s "$WORK/set.out"
check "online again: the replay reaches the server" eventually 20 server_has "<replayed@rq.test>"
check "online again: idle" wait_state idle 20
check "store == server" compare "$WORK/store.db"

# --- no second connection: the request fails within the bound, saying why -----
kill "$DAEMON_PID"
wait "$DAEMON_PID"
DAEMON_PID=
# another client logged in as $USER1, holding one of the two slots
rm -f "$WORK/hold.in"
"$PY" - "$IMAP_PORT" "$USER1" "$PASS1" "$WORK/hold.in" <<'EOF' &
import socket, sys, time
port, user, pw, flag = sys.argv[1:5]
s = socket.create_connection(("127.0.0.1", int(port)))
f = s.makefile("rb")
f.readline()
s.sendall(b'h1 LOGIN "%s" "%s"\r\n' % (user.encode(), pw.encode()))
while True:
    line = f.readline()
    if not line:
        sys.exit("hold: connection closed")
    if line.startswith(b"h1 "):
        break
if not line.startswith(b"h1 OK"):
    sys.exit("hold: %r" % line)
open(flag, "w").close()
while True:
    time.sleep(60)
EOF
BG_PIDS+=($!)
check "another client holds one of the two connections" eventually 10 test -e "$WORK/hold.in"
proxy_start --verbose --fault stall --fault-stream client --after-pattern APPEND
clear_conf "$CONF" "$WORK/store.db" "$PROXY_PORT" 60
echo "sync_bodies = 1" >>"$CONF"
export CPMSYNC_REQUEST_WAIT_MS=3000
check "daemon started again" start_daemon
unset CPMSYNC_REQUEST_WAIT_MS
check "daemon: idle" wait_state idle 20
msg_text "<replayed2@rq.test>" 400 >"$WORK/replayed2.eml"
check "Store accepted (another replay's APPEND)" \
	test "$(call "$INBOX" $F Store ayasx "@$WORK/replayed2.eml" '' 0)" -gt 0
check "the replay's APPEND is stalled again" eventually 10 stalled
timed "$WORK/search.refused" "$DBUS" call "$INBOX" $F Search 'a{sv}' "Subject=s:test <big@rq.test>"
check "Search with no second connection answers within 3-10 s (took $MS ms)" \
	test "$MS" -ge 3000 -a "$MS" -lt 10000
expect "Search with no second connection: the error says why" "$(cat "$WORK/search.refused")" \
	"error org.cpmsync.Error.Failed: the account is busy syncing and a second connection for requests could not be opened (the server refused the login for now: [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)); try again"
check "the log says the second connection was refused" \
	grep -q '^.*a: no second connection for requests: the server refused the login for now: \[LIMIT\] .*; they wait for the sync (3000 ms at most)$' "$WORK/daemon.log"

finish
