#!/usr/bin/env bash
# The daemon and the network under it (agent/netwatch.c, cpmsync_session_
# network_changed()), against a real Dovecot, in a network namespace of the
# test's own (`ip netns`, so root; as another user the test says "skip"):
# there a veth pair given an address and a default route is a network
# change that touches nothing else on the machine.  The daemon reaches
# Dovecot through tests/tools/imap-proxy, whose SIGUSR1 kills the open
# connections without a word (nothing forwarded either way, the sockets
# left open: a NAT that forgot them).  Shown here:
#   - a dead connection, then a network change: the daemon asks the server
#     for news, takes the connection for dead when nothing comes within
#     10 s (not the 60 s command timeout, nor the 4 min of the wait's
#     refresh), reconnects, and a message delivered meanwhile arrives;
#   - backing off (the server unreachable; the next try seconds away),
#     then a network change: it connects at once;
#   - the store equals the server after each, and push works after both.
set -u
. "$(dirname "$0")/lib-sync.sh"

if [ -z "${CPMSYNC_TEST_NETNS:-}" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "skip - network changes need a network namespace of the test's own (ip netns: root)"
		echo "$SERVER: 0 passed, 0 failed"
		exit 0
	fi
	command -v ip >/dev/null || {
		echo "not ok - ip (Debian package iproute2) is not installed"
		echo "$SERVER: 0 passed, 1 failed"
		exit 1
	}
	ns=cpmsync-net-$$
	if ! out=$(ip netns add "$ns" 2>&1 && ip -n "$ns" link set lo up 2>&1); then
		ip netns del "$ns" 2>/dev/null
		echo "not ok - cannot make network namespace $ns: $out"
		echo "$SERVER: 0 passed, 1 failed"
		exit 1
	fi
	CPMSYNC_TEST_NETNS=$ns ip netns exec "$ns" "$0" "$@"
	rc=$?
	ip netns del "$ns" || rc=1
	exit $rc
fi

NS=$CPMSYNC_TEST_NETNS
PROXY=$BDIR/tests/tools/imap-proxy
lib_init
[ -x "$PROXY" ] || bail "missing $PROXY (make all tests)"
DAEMON_PID=
trap '[ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null; lib_cleanup' EXIT
dc_start dc
LOG=$WORK/daemon.log
: >"$LOG"

# in_store MSGID: the message is in the daemon's store
# (status 2, saying why, when the store cannot be read: a "not there" must
# not pass on a failed dump)
in_store() {
	local out
	out=$("$CPMCTL" dump --db "$WORK/a.db" a 2>&1) || {
		echo "    cpmctl dump failed: $out"
		return 2
	}
	grep -qF "$1" <<<"$out"
}
not_in_store() {
	in_store "$1"
	[ $? -eq 1 ]
}
# log_since MARK: the daemon's log after line MARK
log_since() { tail -n +$(($1 + 1)) "$LOG"; }
# wait_log MARK REGEX SECONDS: a log line after MARK matching REGEX
wait_log() {
	local i
	for i in $(seq $(($3 * 10))); do
		log_since "$1" | grep -qE "$2" && return 0
		sleep 0.1
	done
	echo "    no log line matching '$2' within $3 s; the log since:"
	log_since "$1" | grep -v ' [CS]: ' | tail -n 12 | sed 's/^/    /'
	return 1
}
# waiting MARK: the daemon waits with NOTIFY (after line MARK of its log)
waiting() { wait_log "$1" ': idle, push notify$' 20; }
mark() { wc -l <"$LOG"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# recovered WHAT MARK MSGID SECONDS WHY MSGID2: after the change made at t0,
# MSGID (delivered meanwhile) arrives within SECONDS, the store equals the
# server, the daemon waits with NOTIFY again (after log line MARK), and
# MSGID2 delivered then arrives by push.
recovered() {
	local what=$1 m=$2 mid=$3 secs=$4 why=$5 mid2=$6 t1
	check "$what: the message arrives" eventually "$secs" in_store "$mid"
	t1=$(now_ms)
	echo "    # arrived $((t1 - t0)) ms after the network change $why"
	check "$what: within $secs s" test $((t1 - t0)) -lt $((secs * 1000))
	check "$what: the store equals the server" compare "$WORK/a.db"
	check "$what: waiting with NOTIFY again" waiting "$m"
	msg_save "$USER1" INBOX "$mid2" || bail "doveadm save failed"
	check "$what: push works after it" eventually 10 in_store "$mid2"
}

proxy_start
# The command timeout stays the default 60 s: what finds the dead
# connection below must be the network change's probe.
clear_conf "$WORK/a.conf" "$WORK/a.db" "$PROXY_PORT" 60
"$SYNCD" -c "$WORK/a.conf" --no-dbus -v 2>>"$LOG" &
DAEMON_PID=$!
BG_PIDS+=("$DAEMON_PID")
check "daemon: first sync done, waiting with NOTIFY" waiting 0

# --- a dead connection, then a network change ---------------------------
m=$(mark)
kill -USR1 "$PROXY_PID"
check "proxy: the daemon's connection stalled" \
	eventually 5 grep -q 'stalled (SIGUSR1)' "$WORK/proxy.log"
msg_save "$USER1" INBOX "<net1@net.test>" || bail "doveadm save failed"
sleep 2
check "dead connection: the new message has not arrived (nothing tells the daemon)" \
	not_in_store "<net1@net.test>"
t0=$(now_ms)
ip link add cpmv0 type veth peer name cpmv1 || bail "ip link add veth failed"
ip link set cpmv1 up || bail "ip link set cpmv1 up failed"
ip link set cpmv0 up || bail "ip link set cpmv0 up failed"
ip addr add 10.99.0.2/24 dev cpmv0 || bail "ip addr add failed"
ip route add default via 10.99.0.1 dev cpmv0 || bail "ip route add default failed"
check "network change: seen, the connections checked" \
	wait_log "$m" 'the network changed \(an address was added\): checking the accounts. connections' 5
check "network change: the dead connection found by the probe" \
	wait_log "$m" 'no answer from the server within 10000 ms after the network changed' 15
recovered "network change" "$m" "<net1@net.test>" 20 "(probe 10 s; not the 60 s command timeout)" \
	"<net2@net.test>"

# --- backing off, then a network change ---------------------------------
m=$(mark)
proxy_stop
check "server unreachable: the daemon backs off to a retry 6 s or more away" \
	wait_log "$m" 'retrying in ([6-9][0-9]{3}|[0-9]{5,}) ms' 30
t0=$(now_ms)
m2=$(mark)
proxy_start --listen-port "$PROXY_PORT"
msg_save "$USER1" INBOX "<net3@net.test>" || bail "doveadm save failed"
ip route del default || bail "ip route del default failed"
check "back-off: the network change connects at once" \
	wait_log "$m2" 'the network changed \(a default route was removed\): connecting now' 5
recovered "back-off" "$m2" "<net3@net.test>" 5 "(the retry was 6 s or more away)" \
	"<net4@net.test>"
check "the namespace is the test's own ($NS)" test "$(ip netns identify $$)" = "$NS"
finish
