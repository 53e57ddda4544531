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
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
dc_start dc
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

finish
