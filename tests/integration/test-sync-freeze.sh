#!/usr/bin/env bash
# cpm-syncd stopped (SIGSTOP: as a cgroup freezer or a debugger stops it)
# in the middle of a long FETCH, against a real Dovecot through
# tests/tools/imap-proxy, for 15 s: longer than the command's total
# deadline (10 command timeouts, timeout = 1 s here, plus one for each MB
# it brought).  At the thaw every deadline had passed, and the client
# dropped a live connection (the proxy, stopped with it, goes on 300 ms
# after the thaw); now the deadlines start again at the thaw, and the sync
# ends well, the store equal to the server.  A server that is dead (the
# proxy, stopped with it for 3 s, goes on only after the run) is still
# given up one command timeout after the thaw, not at once and not later.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init
[ -x "$PROXY" ] || bail "missing $PROXY (make all tests)"
# the proxy is stopped at times (SIGSTOP): continued before lib_cleanup
# stops it, or that would wait for it for ever
trap '[ -n "$PROXY_PID" ] && kill -CONT "$PROXY_PID"; lib_cleanup' EXIT
dc_start dc

# 200 messages of about 20 KB in Big (4 MB), written into its Maildir
da mailbox create -u "$USER1" Big || bail "cannot create Big"
body=$(head -c 20000 /dev/zero | tr '\0' 'x' | fold -w 76)
bulk_save Big 1 200 freeze "$body" || bail "writing the 200 messages of Big"
check "200 messages in Big on the server" \
	test "$(da -f tab mailbox status -u "$USER1" messages Big | tail -n 1 | cut -f2)" = 200

# 32 bytes a read: the FETCH of Big lasts long enough to be stopped in
proxy_start --chunk-size 32
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# in_fetch LOG: the run's UID FETCH of Big's messages has gone
in_fetch() {
	awk '/ C: a[0-9]+ SELECT Big / { s = 1 } s && / C: a[0-9]+ UID FETCH 1:\* / { f = 1 }
		END { exit !f }' "$1"
}
# frozen_run NAME SECONDS SERVER: cpm-syncd --once on a fresh store,
# stopped SECONDS once its FETCH of Big went, the proxy stopped just
# before it.  SERVER "live": the proxy goes on 300 ms after the thaw (a
# server whose next bytes come then); "dead": only once the run ended
# (nothing comes).  RC the run's exit status, THAW_MS how long after
# SIGCONT it ended.
frozen_run() {
	local name=$1 secs=$2 server=$3 pid t
	clear_conf "$WORK/$name.conf" "$WORK/$name.db" "$PROXY_PORT" 1
	"$SYNCD" -c "$WORK/$name.conf" --once -v 2>"$WORK/$name.log" &
	pid=$!
	BG_PIDS+=("$pid")
	eventually 10 in_fetch "$WORK/$name.log" || bail "$name: the FETCH of Big did not start"
	kill -STOP "$PROXY_PID" || bail "cannot stop the proxy"
	kill -STOP "$pid" || bail "cannot stop cpm-syncd"
	sleep "$secs"
	kill -CONT "$pid" || bail "cannot continue cpm-syncd"
	t=$(now_ms)
	if [ "$server" = live ]; then
		sleep 0.3
		kill -CONT "$PROXY_PID" || bail "cannot continue the proxy"
	fi
	wait "$pid"
	RC=$?
	THAW_MS=$(($(now_ms) - t))
	[ "$server" = live ] || kill -CONT "$PROXY_PID" || bail "cannot continue the proxy"
	echo "# $name: exit $RC $THAW_MS ms after the thaw"
}

# 15 s: past the FETCH's total deadline, 10 s and 1 s for each MB it
# brought (4 at most)
frozen_run live 15 live
check "live server: the sync ends well after the freeze" test "$RC" = 0
check "live server: the freeze was seen by the command deadline" \
	grep -qE 'the deadline timer is [0-9]+ ms late \(the process was stopped or frozen\): the deadlines start again' \
	"$WORK/live.log"
# after_thaw: the FETCH responses of Big read after the thaw
after_thaw=$(awk '/ms late \(the process was stopped or frozen\)/ { f = 1 }
	f && / S: \* [0-9]+ FETCH \(UID / { n++ } END { print n + 0 }' "$WORK/live.log")
check "live server: stopped in the FETCH ($after_thaw of its 200 responses read after the thaw)" \
	test "$after_thaw" -gt 0
check "live server: the store equals the server" compare "$WORK/live.db"

frozen_run dead 3 dead
check "dead server: the run fails" test "$RC" = 1
check "dead server: for want of an answer" \
	grep -qE '^cpm-syncd: a: [A-Z][A-Za-z ()]+: the server did not answer within 1 s$' "$WORK/dead.log"
check "dead server: one command timeout after the thaw (${THAW_MS} ms)" \
	test "$THAW_MS" -ge 900 -a "$THAW_MS" -lt 5000
finish
