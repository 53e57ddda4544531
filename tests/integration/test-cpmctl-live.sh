#!/usr/bin/env bash
# cpmctl against a running cpm-syncd on a private dbus-daemon and a real
# Dovecot: fetch of a section (exact bytes), sync's exit status and reason
# when the server is down, one daemon per store (a second daemon and
# --once refused while `dump` still reads).
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
dc_start dc
stop_all() {
	[ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
	[ -n "$BUS_PID" ] && kill "$BUS_PID" 2>/dev/null
}
trap 'stop_all; lib_cleanup' EXIT
bus_start

# run EXPECTED_EXIT ARGS... : cpmctl; stdout in $WORK/out, stderr in $WORK/err, exit in $rc
run() {
	local want=$1
	shift
	"$CPMCTL" "$@" >"$WORK/out" 2>"$WORK/err"
	rc=$?
	[ "$rc" -eq "$want" ] || {
		echo "    cpmctl $* exited $rc, not $want; stderr:"
		sed 's/^/    /' "$WORK/err"
		return 1
	}
}
# same FILE1 FILE2: byte for byte, with a diff when not
same() { cmp -s "$1" "$2" || { diff -u "$1" "$2" | head -n 20 | sed 's/^/    /'; return 1; }; }

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"

# A fixed two-part message: its header and parts are known byte for byte.
printf '%s\r\n' 'From: Tester <tester@sync.test>' 'To: Alice <alice@sync.test>' \
	'Subject: sections' 'Date: Sat, 28 Nov 2026 10:00:00 +0000' \
	'Message-ID: <sections@live.test>' 'MIME-Version: 1.0' \
	'Content-Type: multipart/mixed; boundary="b1"' '' >"$WORK/header.want"
printf '%s\r\n' '--b1' 'Content-Type: text/plain; charset=us-ascii' '' 'first part' \
	'--b1' 'Content-Type: text/plain; charset=us-ascii' '' 'second part' '--b1--' \
	>"$WORK/text.want"
cat "$WORK/header.want" "$WORK/text.want" >"$WORK/whole.want"
printf 'second part' >"$WORK/part2.want"
da save -u "$USER1" -m INBOX <"$WORK/whole.want" || bail "cannot save the message"
msg_save "$USER1" INBOX "<big@live.test>" 300000 || bail "cannot save the big message"

start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "account reaches State idle" wait_state idle 20

# --- fetch: whole message and sections, byte for byte ----------------------------------
run 0 list a INBOX
cp "$WORK/out" "$WORK/list"
ID=$(awk -F '\t' '$6 == "sections" { print $1 }' "$WORK/list")
check "list shows the message" test -n "$ID"
check "fetch: the whole message" bash -c "'$CPMCTL' fetch a INBOX '$ID' >'$WORK/got' && cmp -s '$WORK/got' '$WORK/whole.want'"
run 0 fetch a INBOX "$ID" HEADER
check "fetch HEADER: exit 0, the header and its blank line" same "$WORK/header.want" "$WORK/out"
run 0 fetch a INBOX "$ID" TEXT
check "fetch TEXT: the body after the blank line" same "$WORK/text.want" "$WORK/out"
run 0 fetch a INBOX "$ID" 2
check "fetch 2: the second part's content" same "$WORK/part2.want" "$WORK/out"

# --- --json on the listing commands: one object per line ---------------------------------
# json_check FILE PYTHON-EXPRESSION: every line parses; the expression over
# the list of objects L is true
json_check() {
	python3 -c 'import json, sys
L = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
ok = eval(sys.argv[2])
if not ok:
    print("    " + repr(L)[:400])
sys.exit(0 if ok else 1)' "$1" "$2"
}
run 0 status --json
check "status --json: the account with its properties" json_check "$WORK/out" \
	'L == [{"Name": "a", "State": "idle", "PushState": "notify", "PendingOperations": 0, "LastSync": L[0]["LastSync"], "Online": True, "LastError": ""}] and L[0]["LastSync"] > 0'
run 0 folders --json a
check "folders --json: every folder, sorted, with its counts" json_check "$WORK/out" \
	'L == [{"Name": "Drafts", "Messages": 0, "Unseen": 0}, {"Name": "INBOX", "Messages": 2, "Unseen": 2}, {"Name": "Sent", "Messages": 0, "Unseen": 0}, {"Name": "Trash", "Messages": 0, "Unseen": 0}]'
run 0 list --json a INBOX
check "list --json: the messages, as list prints them" json_check "$WORK/out" \
	'[(m["Id"], m["Subject"], m["MessageId"], m["Flags"], m["From"], m["Date"]) for m in L] == [('"$ID"', "sections", "<sections@live.test>", [], "Tester <tester@sync.test>", 1795860000), (L[1]["Id"], "test <big@live.test>", "<big@live.test>", [], "Tester <tester@sync.test>", 1795860000)] and all(m["Uid"] > 0 for m in L)'
run 2 fetch --json a INBOX "$ID"
check "fetch --json: bad usage (not a listing command)" grep -q '^Usage: cpmctl fetch' "$WORK/err"

# --- bash completion (agent/cpmctl.bash-completion) against the daemon -----------------------
# complete WORDS...: the completions of the last word, one a line
complete_words() {
	PATH=$BDIR:$PATH bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _cpmctl
		printf "%s\n" "${COMPREPLY[@]}"' - "$TOP/agent/cpmctl.bash-completion" "$@"
}
check "completion: commands from --help" test "$(complete_words cpmctl f | tr '\n' ' ')" = "folders fetch flag failed "
check "completion: accounts from status" test "$(complete_words cpmctl list '')" = a
check "completion: folders of the account" \
	test "$(complete_words cpmctl list a '' | tr '\n' ' ')" = "Drafts INBOX Sent Trash "
check "completion: --json for list" test "$(complete_words cpmctl list --j)" = --json

# --- an unknown account names the known ones -----------------------------------------------
run 1 folders nope
check "folders of an unknown account: the known ones listed" \
	test "$(cat "$WORK/err")" = "cpmctl: unknown account 'nope'; the account is: a"

# --- a reader that goes away: SIGPIPE, quietly, as for cat ------------------------------
BIG=$(awk -F '\t' '$6 == "test <big@live.test>" { print $1 }' "$WORK/list")
"$CPMCTL" fetch a INBOX "$BIG" 2>"$WORK/err" | head -c 10 >"$WORK/head"
st=${PIPESTATUS[0]}
check "fetch | head -c 10: 10 bytes through, cpmctl killed by SIGPIPE (141, got $st), nothing on stderr" \
	bash -c "[ $st -eq 141 ] && [ \$(wc -c <'$WORK/head') -eq 10 ] && [ ! -s '$WORK/err' ]"

# --- one daemon per store ------------------------------------------------------------------
busy="the store $WORK/store.db is in use by another cpm-syncd (pid $DAEMON_PID); one daemon per store (cpmctl sync asks the running one to sync)"
timeout 10 "$SYNCD" -c "$CONF" --no-dbus >"$WORK/out" 2>"$WORK/err"
rc=$?
check "a second daemon on the store: exit 1, says which daemon holds it (exit $rc)" \
	bash -c "[ $rc -eq 1 ] && [ \"\$(cat '$WORK/err')\" = 'cpm-syncd: $busy' ]"
timeout 10 "$SYNCD" -c "$CONF" --once >"$WORK/out" 2>"$WORK/err"
rc=$?
check "--once on a store in use: exit 1, the same reason (exit $rc)" \
	bash -c "[ $rc -eq 1 ] && [ \"\$(cat '$WORK/err')\" = 'cpm-syncd: $busy' ]"
check "the running daemon still answers" test "$(acct State)" = idle
run 0 dump
check "cpmctl dump reads the store in use" grep -qx $'a\tINBOX\t[0-9]*\t\t<sections@live.test>' "$WORK/out"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
start_daemon || bail "cpm-syncd did not restart"
check "after a hard stop the lock is free: a new daemon starts and syncs" wait_state idle 20

# --- sync: done, or at once with the reason -----------------------------------------------
run 0 sync a
check "sync a: 'a: ok', exit 0" bash -c "[ \"\$(cat '$WORK/out')\" = 'a: ok' ] && [ ! -s '$WORK/err' ]"
run 0 online a off
check "online a off: State offline" wait_state offline 5
run 1 sync a
check "sync of an offline account: exit 1 at once with the reason" \
	test "$(cat "$WORK/err")" = "cpmctl: a: the account is offline (Online is off; see cpmctl online)"
run 0 online a on
check "online a on: State idle" wait_state idle 20

# The server stops: the daemon goes on retrying; sync says why within seconds.
dc_stop dc
want="cpmctl: a: cannot connect to localhost port $IMAPS_PORT: Connection refused"
check "server stopped: the daemon says it cannot connect" \
	eventually 15 bash -c "[ \"\$('$DBUS' get $A org.cpmsync.Account1 LastError)\" = '${want#cpmctl: a: }' ]"
t0=$(date +%s%N)
run 1 sync a
t=$((($(date +%s%N) - t0) / 1000000))
check "server stopped: sync a exits 1 with the reason ($t ms)" \
	bash -c "[ \"\$(cat '$WORK/err')\" = '$want' ] && [ ! -s '$WORK/out' ] && [ $t -lt 10000 ]"
t0=$(date +%s%N)
run 1 sync
t=$((($(date +%s%N) - t0) / 1000000))
check "server stopped: sync (every account) exits 1 with the reason ($t ms)" \
	bash -c "[ \"\$(cat '$WORK/err')\" = '$want' ] && [ $t -lt 10000 ]"

# --- no daemon: folders and list read the store --------------------------------------------
run 0 folders a
cp "$WORK/out" "$WORK/folders.daemon"
run 0 list a INBOX
cp "$WORK/out" "$WORK/list.daemon"
run 0 list --json a INBOX
cp "$WORK/out" "$WORK/list-json.daemon"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
DAEMON_PID=
note="cpmctl: the cpm-syncd daemon is not running: read from the store '$WORK/store.db'"
run 0 folders a
check "no daemon: folders reads the store, the same lines as the daemon's" same "$WORK/folders.daemon" "$WORK/out"
check "no daemon: folders says so on stderr" test "$(cat "$WORK/err")" = "$note"
run 0 list a INBOX
check "no daemon: list reads the store, the same lines as the daemon's" same "$WORK/list.daemon" "$WORK/out"
run 0 list --json a INBOX
check "no daemon: list --json, the same objects as the daemon's" same "$WORK/list-json.daemon" "$WORK/out"
run 1 folders nope
check "no daemon: an unknown account names the store's accounts" \
	test "$(cat "$WORK/err")" = "cpmctl: unknown account 'nope'; the store '$WORK/store.db' holds: a"
run 1 list a Nope
check "no daemon: an unknown folder" \
	test "$(cat "$WORK/err")" = "$note"$'\n'"cpmctl: account 'a' has no folder 'Nope'"
run 1 status
check "no daemon: status still says the daemon is not running" \
	test "$(cat "$WORK/err")" = "cpmctl: the cpm-syncd daemon is not running (no owner of org.cpmsync on the session bus)"

finish
