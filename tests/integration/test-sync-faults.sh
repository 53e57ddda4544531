#!/usr/bin/env bash
# Faults a real server will not produce on demand, injected by
# tests/tools/imap-proxy between cpm-syncd and a real Dovecot: the
# connection cut in the middle of a body literal, a server that stalls, a
# BYE, and a cut right after an APPEND reached the server.  Each faulty run
# must fail cleanly (exit 1, a reason on stderr, in bounded time) and the
# next run must converge with nothing lost and nothing duplicated.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
SYNCD=$TOP/$B/cpm-syncd
CPMCTL=$TOP/$B/cpmctl
PROXY=$TOP/$B/tests/tools/imap-proxy
OP=$TOP/$B/tests/tools/cpmsync-op
CTL=$TOP/tests/dovecot/dovecot-ctl.sh
WORK=$(mktemp -d)
chmod 0755 "$WORK"
DC=$WORK/dovecot
PROXY_PID=
cleanup() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
	"$CTL" stop "$DC" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

passed=0 failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
check() { # check NAME COMMAND...
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

for f in "$SYNCD" "$CPMCTL" "$PROXY" "$OP"; do
	[ -x "$f" ] || { echo "missing $f (make all tests)"; echo "0 passed, 1 failed"; exit 1; }
done
"$CTL" start "$DC" >/dev/null || { echo "cannot start dovecot"; echo "0 passed, 1 failed"; exit 1; }
# shellcheck disable=SC1091
. "$DC/env"
da() { "$CTL" doveadm "$DC" "$@"; }

# A folder of 120 messages of about 20 KB: FETCH BODY[] literals to cut.
da mailbox create -u "$USER1" Big
body=$(head -c 15000 /dev/zero | tr '\0' 'x' | fold -w 76)
for i in $(seq 1 120); do
	printf 'From: a@x\r\nSubject: big %s\r\nMessage-ID: <big%s@faults.test>\r\n\r\n%s\r\n' \
		"$i" "$i" "$body" | da save -u "$USER1" -m Big
done

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

# The server's state in the contract's dump format, read with doveadm.
server_dump() {
	local mb
	da mailbox list -u "$USER1" | while IFS= read -r mb; do
		# tab-separated with a header line; empty fields stay (awk, not read)
		da -f tab fetch -u "$USER1" 'uid flags hdr.message-id' mailbox "$mb" 2>/dev/null |
			tail -n +2 | MB=$mb awk -F'\t' '{
				n = split($2, f, " "); out = ""
				# sort the flags bytewise, drop \Recent
				for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (f[j] < f[i]) { t = f[i]; f[i] = f[j]; f[j] = t }
				for (i = 1; i <= n; i++) if (f[i] != "\\Recent") out = out (out == "" ? "" : " ") f[i]
				mid = $3; gsub(/^[ \t]+|[ \t]+$/, "", mid)
				printf "a\t%s\t%s\t%s\t%s\n", ENVIRON["MB"], $1, out, mid
			}'
	done | LC_ALL=C sort -t$'\t' -k2,2 -k3,3n
}
converged() {
	diff <(server_dump) <("$CPMCTL" dump --db "$WORK/store.db" a) >"$WORK/diff" || {
		head -20 "$WORK/diff"
		return 1
	}
}

# start_proxy FAULT-ARGS...: a proxy in front of Dovecot, writes its config.
start_proxy() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
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
	check "$name: next run succeeds" "$SYNCD" -c "$WORK/direct.conf" --once ${SYNC_VERBOSE:+-v}
	check "$name: store equals the server" converged
}

# 1. Cut in the middle of the first body literal of the initial sync.
start_proxy --fault cut --after-pattern 'BODY[] {' --after-bytes 7000
faulty_run "cut mid-literal" "connection|closed|reset|disconnect"
clean_run "cut mid-literal"

# 2. New messages, then a server that stalls half-way through a literal.
for i in $(seq 121 140); do
	printf 'From: a@x\r\nSubject: big %s\r\nMessage-ID: <big%s@faults.test>\r\n\r\n%s\r\n' \
		"$i" "$i" "$body" | da save -u "$USER1" -m Big
done
da flags add -u "$USER1" '\Flagged' mailbox Big uid 1:10
start_proxy --fault stall --after-pattern 'BODY[] {' --after-bytes 3000
faulty_run "stalled server" "time|answer|respond"
clean_run "stalled server"

# 3. BYE in the middle of the resync.
da expunge -u "$USER1" mailbox Big uid 20:30
for i in $(seq 141 150); do
	printf 'From: a@x\r\nSubject: big %s\r\nMessage-ID: <big%s@faults.test>\r\n\r\n%s\r\n' \
		"$i" "$i" "$body" | da save -u "$USER1" -m Big
done
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

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
