#!/usr/bin/env bash
# Faults a real server will not produce on demand, injected by
# tests/tools/imap-proxy between cpm-syncd and a real Dovecot: the
# connection cut in the middle of a body literal, a server that stalls, a
# BYE, and a cut right after an APPEND reached the server.  Each faulty run
# must fail cleanly (exit 1, a reason on stderr, in bounded time) and the
# next run must converge with nothing lost and nothing duplicated.
set -u
. "$(dirname "$0")/lib-sync.sh"
PROXY=$BDIR/tests/tools/imap-proxy
PROXY_PID=
lib_init
[ -x "$PROXY" ] || bail "missing $PROXY (make all tests)"
dc_start dc
stop_proxy() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=
}
trap 'stop_proxy; lib_cleanup' EXIT

# A folder of 120 messages of about 20 KB: FETCH BODY[] literals to cut.
da mailbox create -u "$USER1" Big
body=$(head -c 15000 /dev/zero | tr '\0' 'x' | fold -w 76)
big() { # big FIRST LAST: messages <bigN@faults.test>
	local i
	for i in $(seq "$1" "$2"); do
		printf 'From: a@x\r\nSubject: big %s\r\nMessage-ID: <big%s@faults.test>\r\n\r\n%s\r\n' \
			"$i" "$i" "$body" | da save -u "$USER1" -m Big
	done
}
big 1 120

printf '%s\n' "$PASS1" >"$WORK/pw"
chmod 0600 "$WORK/pw"
# conf NAME PORT: an account "a" over clear text to 127.0.0.1:PORT
conf() {
	cat >"$WORK/$1.conf" <<EOF
[general]
database = $WORK/store.db
[account a]
host = 127.0.0.1
port = $2
security = none
user = $USER1
password_file = $WORK/pw
timeout = 3
EOF
}
conf direct "$IMAP_PORT"

# start_proxy FAULT-ARGS...: a proxy in front of Dovecot, writes its config.
start_proxy() {
	stop_proxy
	rm -f "$WORK/port"
	"$PROXY" --listen-port-file "$WORK/port" --to "127.0.0.1:$IMAP_PORT" "$@" 2>"$WORK/proxy.log" &
	PROXY_PID=$!
	for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
	conf faulty "$(cat "$WORK/port")"
}

# faulty_run NAME PATTERN: runs --once through the proxy; must exit 1 with
# a reason naming the failure, within the deadline.
faulty_run() {
	local name=$1 want=$2 rc start end
	start=$(date +%s)
	timeout 60 "$SYNCD" -c "$WORK/faulty.conf" --once 2>"$WORK/err"
	rc=$?
	end=$(date +%s)
	check "$name: exit 1 (got $rc)" test "$rc" -eq 1
	check "$name: reason on stderr ($(head -c 200 "$WORK/err" | tr '\n' ' '))" grep -qiE "$want" "$WORK/err"
	check "$name: failed within 20 s ($((end - start)) s)" test $((end - start)) -le 20
}
clean_run() {
	local name=$1
	check "$name: next run succeeds" sync_once "$WORK/direct.conf"
	check "$name: store equals the server" compare "$WORK/store.db"
}

# 1. Cut in the middle of the first body literal of the initial sync.
start_proxy --fault cut --after-pattern 'BODY[] {' --after-bytes 7000
faulty_run "cut mid-literal" "connection|closed|reset|disconnect"
clean_run "cut mid-literal"

# 2. New messages, then a server that stalls half-way through a literal.
big 121 140
da flags add -u "$USER1" '\Flagged' mailbox Big uid 1:10
start_proxy --fault stall --after-pattern 'BODY[] {' --after-bytes 3000
faulty_run "stalled server" "time|answer|respond"
clean_run "stalled server"

# 3. BYE in the middle of the resync.
da expunge -u "$USER1" mailbox Big uid 20:30
big 141 150
start_proxy --fault bye --after-pattern 'FETCH'
faulty_run "BYE" "BYE|injected"
clean_run "BYE"

# 4. The connection cut right after the server stored an APPEND, before the
# client saw APPENDUID: the next run must find it, not append it again.
printf 'From: me@x\r\nSubject: once\r\nMessage-ID: <exactly-once@faults.test>\r\n\r\nonly once\r\n' >"$WORK/m1"
check "queue a local store" "$OP" --db "$WORK/store.db" store a Big "$WORK/m1" '\Seen'
start_proxy --fault cut --after-pattern 'APPENDUID'
faulty_run "cut after APPEND" "connection|closed|reset|disconnect"
check "the APPEND reached the server before the cut" \
	test "$(da search -u "$USER1" mailbox Big header message-id exactly-once@faults.test | wc -l)" -eq 1
clean_run "cut after APPEND"
check "exactly one copy on the server" \
	test "$(da search -u "$USER1" mailbox Big header message-id exactly-once@faults.test | wc -l)" -eq 1
check "nothing pending" test "$("$OP" --db "$WORK/store.db" pending a | wc -l)" -eq 0

finish
