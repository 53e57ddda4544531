#!/usr/bin/env bash
# A login the server refuses for now is retried, not taken for a wrong
# password: Dovecot with mail_max_userip_connections = 1 and the one slot
# held by another client answers LOGIN with NO [LIMIT] (RFC 5530).
# cpm-syncd --check and --once say so and fail (exit 1) without calling it
# an authentication failure; the daemon stays in back-off (State
# "connecting", never "error") and reaches "idle" by itself once the slot
# is free, with no `cpmctl sync`.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
cat >"$WORK/limit.conf" <<'EOF'
mail_max_userip_connections = 1
EOF
export DOVECOT_EXTRA_CONF=$WORK/limit.conf
dc_start dc
unset DOVECOT_EXTRA_CONF
dc_seed
dbus_setup
CONF=$WORK/cpmsync.conf
clear_conf "$CONF" "$WORK/store.db" "$IMAP_PORT"

# hold_start: another client logged in as $USER1 from 127.0.0.1, holding
# the one slot (HOLD_PID) until hold_stop; fails unless it is in within 10 s
HOLD_PID=
hold_start() {
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
	HOLD_PID=$!
	BG_PIDS+=("$HOLD_PID")
	eventually 10 test -e "$WORK/hold.in"
}
hold_stop() {
	kill "$HOLD_PID" 2>/dev/null
	wait "$HOLD_PID" 2>/dev/null
	HOLD_PID=
}

check "another client holds the one connection" hold_start

# --- --check and --once --------------------------------------------------------
"$SYNCD" -c "$CONF" --check >"$WORK/check.out" 2>"$WORK/check.err"
expect "--check: exit 1" "$?" 1
check "--check: the server refused the login for now" \
	grep -q '^a: the server refused the login for now: \[LIMIT\] ' "$WORK/check.out"
check "--check: not an authentication failure" \
	eval '! grep -qi "authentication failed" "$WORK/check.out" "$WORK/check.err"'
"$SYNCD" -c "$CONF" --once >"$WORK/once.out" 2>"$WORK/once.err"
expect "--once: exit 1" "$?" 1
check "--once: the server refused the login for now" \
	grep -q 'a: the server refused the login for now: \[LIMIT\] ' "$WORK/once.err"
check "--once: not an authentication failure" \
	eval '! grep -qi "authentication failed" "$WORK/once.out" "$WORK/once.err"'

# --- the daemon: back-off, then idle by itself ---------------------------------
check "daemon started" start_daemon
lasterr_limit() { acct LastError | grep -q 'the server refused the login for now: \[LIMIT\]'; }
check "daemon: LastError says the login was refused for now" eventually 15 lasterr_limit
check "daemon: State connecting (back-off), not error" wait_state connecting 5
check "daemon: the log says it retries" \
	eventually 5 grep -q 'a: the server refused the login for now: \[LIMIT\] .*; retrying in ' \
	"$WORK/daemon.log"
# A few retries refused while the slot stays held: still not "error".
refusals() { grep -c 'the server refused the login for now' "$WORK/daemon.log"; }
more_refusals() { [ "$(refusals)" -ge 2 ]; }
check "daemon: refused again on a retry" eventually 15 more_refusals
expect "daemon: State still connecting" "$(acct State)" connecting
check "daemon: never stopped for good" \
	eval '! grep -q "not retrying until the settings change" "$WORK/daemon.log"'
hold_stop
# The back-off after two or three refusals is 4 to 8 s (+-25 %).
check "daemon: idle by itself once the slot is free" wait_state idle 20
check "daemon: no error left" eventually 5 test -z "$(acct LastError)"
check "store == server" compare "$WORK/store.db"

finish
