#!/usr/bin/env bash
# Faults a real server will not produce on demand, injected by
# tests/tools/imap-proxy between cpm-syncd and a real Dovecot: the
# connection cut in the middle of a body literal, a server that stalls, a
# BYE, and a cut right after an APPEND reached the server.  Each faulty run
# must fail cleanly (exit 1, a reason on stderr, in bounded time) and the
# next run must converge with nothing lost and nothing duplicated.
# Then random rounds until FAULTS faults were injected in all (default 12):
# the server changed by another client and local changes queued (stores,
# flag changes), then one fault (cut, stall or BYE) at a random point: inside
# a body literal, after a random response, at a random byte offset, or in
# what the client sends (inside an APPEND literal, in a UID STORE).  Each
# faulty run must end within the total command deadline (10 x timeout =
# 30 s; else it hung), exit 0 or 1, leave a store that passes PRAGMA
# integrity_check, and a clean run after it must converge; at the end every
# local store is on the server exactly once.  The figures end the output in
# one block ("# stress faults: faults N, lost N, duplicated N, hung N, time
# N s"; make check-stress adds them up).  FAULTS_SEED=n reproduces the
# random choices.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init
[ -x "$PROXY" ] || bail "missing $PROXY (make all tests)"
NFAULTS=${FAULTS:-12}
case $NFAULTS in '' | *[!0-9]*) bail "FAULTS must be a number, not '$NFAULTS'" ;; esac
SEED=${FAULTS_SEED:-$((SRANDOM % 100000))}
echo "# FAULTS_SEED=$SEED FAULTS=$NFAULTS"
RANDOM=$SEED
T_START=$(date +%s)
FAULTS_DONE=0 HUNG=0 LOST=0 DUPS=0
dc_start dc

# A folder of 120 messages of about 20 KB: FETCH BODY[]<0> literals to cut
# (the answer to BODY.PEEK[]<0.n>, the new-message FETCH with every body).
da mailbox create -u "$USER1" Big
body=$(head -c 15000 /dev/zero | tr '\0' 'x' | fold -w 76)
big() { # big FIRST LAST: messages <bigN@faults.test>
	local i
	for i in $(seq "$1" "$2"); do
		printf 'From: a@x\r\nSubject: big %s\r\nMessage-ID: <big%s@faults.test>\r\n\r\n%s\r\n' \
			"$i" "$i" "$body" | da save -u "$USER1" -m Big
	done
}
bulk_save Big 1 120 faults "$body" || bail "writing the 120 messages of Big"
check "120 messages in Big on the server" \
	test "$(da -f tab mailbox status -u "$USER1" messages Big | tail -n 1 | cut -f2)" = 120

clear_conf "$WORK/direct.conf" "$WORK/store.db" "$IMAP_PORT"

# start_proxy FAULT-ARGS...: the proxy in front of the server (lib-sync.sh),
# faulty.conf through it
start_proxy() {
	proxy_start "$@"
	clear_conf "$WORK/faulty.conf" "$WORK/store.db" "$PROXY_PORT"
}
# injected: the proxy logged an injected fault (the pattern may never come)
injected() { grep -q ': fault ' "$WORK/proxy.log"; }

# faulty_run NAME PATTERN: runs --once through the proxy; must exit 1 with
# a reason naming the failure, within the deadline.
faulty_run() {
	local name=$1 want=$2 rc start end
	start=$(date +%s)
	timeout 60 "$SYNCD" -c "$WORK/faulty.conf" --once 2>"$WORK/err"
	rc=$?
	end=$(date +%s)
	[ $rc -eq 124 ] && HUNG=$((HUNG + 1))
	injected && FAULTS_DONE=$((FAULTS_DONE + 1))
	check "$name: exit 1 (got $rc)" test "$rc" -eq 1
	check "$name: reason on stderr ($(head -c 200 "$WORK/err" | tr '\n' ' '))" grep -qiE "$want" "$WORK/err"
	check "$name: failed within 20 s ($((end - start)) s)" test $((end - start)) -le 20
}
clean_run() {
	local name=$1
	check "$name: next run succeeds" sync_once "$WORK/direct.conf"
	check "$name: store equals the server" compare "$WORK/store.db"
}
# integrity: PRAGMA integrity_check of the store says ok
integrity() {
	local out
	out=$(sqlite3 "$WORK/store.db" 'PRAGMA integrity_check' 2>&1)
	[ "$out" = ok ] || { echo "    integrity_check: $(head -c 300 <<<"$out")"; return 1; }
}

# 1. Cut in the middle of the first body literal of the initial sync.
start_proxy --fault cut --after-pattern 'BODY[]<0> {' --after-bytes 7000
faulty_run "cut mid-literal" "connection|closed|reset|disconnect"
clean_run "cut mid-literal"
# Big as the store names it (INBOX/Big in Cyrus's classic namespace while
# namespaces are not mapped): the server's name for it that the store knows.
BIG=
while IFS= read -r f; do
	"$OP" --db "$WORK/store.db" folder a "$f" >/dev/null 2>&1 && { BIG=$f; break; }
done < <(selectable_folders "$USER1" | grep -E '(^|/)Big$')
[ -n "$BIG" ] || bail "the store has no folder for the server's Big ($(selectable_folders "$USER1" | tr '\n' ' '))"
echo "# Big is '$BIG' in the store"

# 2. New messages, then a server that stalls half-way through a literal.
big 121 140
da flags add -u "$USER1" '\Flagged' mailbox Big uid 1:10
start_proxy --fault stall --after-pattern 'BODY[]<0> {' --after-bytes 3000
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
check "queue a local store" "$OP" --db "$WORK/store.db" store a "$BIG" "$WORK/m1" '\Seen'
start_proxy --fault cut --after-pattern 'APPENDUID'
faulty_run "cut after APPEND" "connection|closed|reset|disconnect"
check "the APPEND reached the server before the cut" \
	test "$(da search -u "$USER1" mailbox Big header message-id exactly-once@faults.test | wc -l)" -eq 1
clean_run "cut after APPEND"
check "exactly one copy on the server" \
	test "$(da search -u "$USER1" mailbox Big header message-id exactly-once@faults.test | wc -l)" -eq 1
check "nothing pending" test "$("$OP" --db "$WORK/store.db" pending a | wc -l)" -eq 0

# --- random rounds ----------------------------------------------------------
# pick_fault -> FARGS: the proxy's fault arguments, FDESC: what they do
pick_fault() {
	local p types=(cut stall bye) pats=('FETCH' 'APPENDUID' 'OK [' 'EXISTS' 'VANISHED' 'LIST' 'STATUS' '* ')
	rnd 3
	local t=${types[$R]}
	rnd 4
	case $R in
	3)
		# in the client->server stream: inside an APPEND literal (the
		# local store of the round), or in a replayed flag change
		local cpats=('APPEND ' 'APPEND ' 'UID STORE ') cut=(cut stall)
		rnd 2
		t=${cut[$R]}
		rnd ${#cpats[@]}
		p=${cpats[$R]}
		rnd 20000
		[ "$p" = 'UID STORE ' ] && R=$((R % 100))
		FARGS=(--fault "$t" --fault-stream client --after-pattern "$p" --after-bytes "$R")
		FDESC="$t $R client bytes after '$p'"
		;;
	0)
		rnd 16000
		FARGS=(--fault "$t" --after-pattern 'BODY[]<0> {' --after-bytes "$R")
		FDESC="$t inside a body literal, $R bytes in"
		;;
	1)
		rnd ${#pats[@]}
		p=${pats[$R]}
		rnd 3000
		FARGS=(--fault "$t" --after-pattern "$p" --after-bytes "$R")
		FDESC="$t $R bytes after '$p'"
		;;
	*)
		rnd 60000
		FARGS=(--fault "$t" --after-bytes "$R")
		FDESC="$t at server byte $R"
		;;
	esac
}
# srv_change: another client changes Big's own messages (flags, expunge)
# or makes or deletes a folder; never the local stores (@local.test).
srv_change() {
	local uids u pool
	mapfile -t uids < <(da search -u "$USER1" mailbox Big header message-id '@faults.test' | awk '{print $2}')
	[ ${#uids[@]} -gt 0 ] || return 0
	rnd ${#uids[@]}
	u=${uids[$R]}
	rnd 4
	case $R in
	0) da flags add -u "$USER1" '\Flagged $Work' mailbox Big uid "$u" ;;
	1) da flags remove -u "$USER1" '\Seen \Flagged' mailbox Big uid "$u" ;;
	2) da expunge -u "$USER1" mailbox Big uid "$u" ;;
	*)
		pool="Fault Pool"
		if selectable_folders "$USER1" | grep -qxF -- "$pool"; then
			da mailbox delete -u "$USER1" "Fault Pool"
		else
			da mailbox create -u "$USER1" "Fault Pool" && msg_save "$USER1" "Fault Pool" "<pool.$RANDOM@faults.test>" 5000
		fi
		;;
	esac
}
NLOCAL=0
rounds=0
while [ "$FAULTS_DONE" -lt "$NFAULTS" ] && [ $rounds -lt $((3 * NFAULTS + 10)) ]; do
	rounds=$((rounds + 1))
	# the other client; new messages in Big for literals to cut
	srv_change || echo "    (a server change failed)"
	srv_change || echo "    (a server change failed)"
	big $((1000 + rounds * 3)) $((1002 + rounds * 3))
	# local changes: a store (an APPEND literal on the way), a flag change
	NLOCAL=$((NLOCAL + 1))
	msg_text "<local.$NLOCAL.$SEED@local.test>" $((200 + RANDOM % 30000)) >"$WORK/m"
	"$OP" --db "$WORK/store.db" store a "$BIG" "$WORK/m" >/dev/null || not_ok "round $rounds: queue a store"
	id=$("$OP" --db "$WORK/store.db" ids a "$BIG" | head -n 1)
	[ -n "$id" ] && { "$OP" --db "$WORK/store.db" flags "$id" -- +kw-fault$((rounds % 3)) >/dev/null ||
		not_ok "round $rounds: queue a flag change"; }
	pick_fault
	start_proxy "${FARGS[@]}"
	start=$(date +%s)
	timeout 30 "$SYNCD" -c "$WORK/faulty.conf" --once 2>"$WORK/err"
	rc=$?
	secs=$(($(date +%s) - start))
	proxy_stop
	if injected; then
		FAULTS_DONE=$((FAULTS_DONE + 1))
		echo "# round $rounds: $FDESC: exit $rc in $secs s: $(grep -v '^cpm-syncd: a: failed:' "$WORK/err" | head -n 1 | cut -c1-120)"
	else
		echo "# round $rounds: $FDESC: not reached (exit $rc in $secs s)"
	fi
	if [ $rc -eq 124 ]; then
		HUNG=$((HUNG + 1))
		not_ok "round $rounds ($FDESC): still running after 30 s"
	elif [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
		not_ok "round $rounds ($FDESC): exit $rc: $(tail -n 2 "$WORK/err" | tr '\n' ' ')"
	fi
	check "round $rounds: the store passes integrity_check" integrity
	check "round $rounds: a clean run succeeds" sync_once "$WORK/direct.conf"
	check "round $rounds: store equals the server" compare "$WORK/store.db"
done
check "$NFAULTS faults injected ($FAULTS_DONE in $rounds random rounds)" test "$FAULTS_DONE" -ge "$NFAULTS"
# every local store exactly once on the server (the other client never
# touches them)
server_dump "$USER1" >"$WORK/final.dump"
for ((n = 1; n <= NLOCAL; n++)); do
	c=$(awk -F'\t' -v m="<local.$n.$SEED@local.test>" '$5 == m' "$WORK/final.dump" | wc -l)
	if [ "$c" -gt 1 ]; then
		DUPS=$((DUPS + c - 1))
	elif [ "$c" -eq 0 ]; then
		LOST=$((LOST + 1))
	fi
done
check "every local store on the server once ($LOST missing, $DUPS extra)" test $((LOST + DUPS)) -eq 0
echo "# stress faults: faults $FAULTS_DONE, lost $LOST, duplicated $DUPS, hung $HUNG, time $(($(date +%s) - T_START)) s"
check "no faulty run hung ($HUNG)" test "$HUNG" -eq 0

finish
