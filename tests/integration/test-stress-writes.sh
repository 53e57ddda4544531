#!/usr/bin/env bash
# Local writes never fail because a sync is running (issue 10): the daemon
# on a private bus against a real Dovecot, another client appending large
# messages and changing flags on the server all along (so the daemon syncs
# by push, and a Sync call asks for more), while every write method of the
# contract is called in a loop: CreateFolder, SetMetadata, RenameFolder,
# DeleteFolder, Store, SetFlags, Copy, Move, Delete, Expunge.  Every call
# must succeed and be applied locally at once (a deleted folder is not found
# right after; at the end the store holds exactly the messages and flags the
# calls asked for).  Prints the figures (calls, failures).
#
# The server's end state is compared too: the server holds what the calls
# asked for, no deleted or renamed folder is left under its old name,
# renamed folders keep their metadata, and store == server.  (These include
# the replay races of a DeleteFolder or RenameFolder while the folder's
# CREATE is in flight, and of a SetFlags while its message's APPEND or
# STORE is in flight; tests/unit/test-engine-replay.c makes each happen
# deterministically.)
#
# STRESS_ROUNDS (default 40) sets the size; each round makes about 9 calls.
set -u
. "$(dirname "$0")/lib-sync.sh"
DBUS=$BDIR/tests/tools/cpmsync-dbus
ROUNDS=${STRESS_ROUNDS:-40}
lib_init
[ -x "$DBUS" ] || bail "missing $DBUS (make all tests)"
command -v dbus-daemon >/dev/null || bail "dbus-daemon is not installed"
dc_start dc

DAEMON_PID=
dbus_setup
A=/org/cpmsync/a
AC=org.cpmsync.Account1
F=org.cpmsync.Folder1
acct() { "$DBUS" get "$A" "$AC" "$1"; }

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"
"$SYNCD" -c "$CONF" -v 2>>"$WORK/daemon.log" &
DAEMON_PID=$!
"$DBUS" wait-owner 10 >/dev/null || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
for i in $(seq 100); do
	[ "$(acct State)" = idle ] && break
	sleep 0.1
done
check "account reaches State idle" test "$(acct State)" = idle
INBOX=$("$DBUS" call "$A" "$AC" FindFolder s INBOX)
check "FindFolder INBOX" test -n "$INBOX"

# --- the other client: appends and flag changes on the server, and Sync calls --
churn() {
	local n=0
	while [ ! -e "$WORK/stop" ]; do
		n=$((n + 1))
		msg_save "$USER1" INBOX "<srv$n@stress.test>" 120000 || echo "save $n failed" >>"$WORK/churn.err"
		[ $n -gt 1 ] && { da flags add -u "$USER1" '$Srv' mailbox INBOX header message-id \
			"<srv$((n - 1))@stress.test>" || echo "flags $n failed" >>"$WORK/churn.err"; }
		"$DBUS" call "$A" "$AC" Sync >>"$WORK/sync-calls.log" 2>&1
	done
	echo "$n" >"$WORK/churn.count"
}
churn &
CHURN_PID=$!
BG_PIDS+=("$CHURN_PID")

# --- the local calls ----------------------------------------------------------
calls=0 failures=0
: >"$WORK/failures"
# c DESCRIPTION ARGS...: one call through cpmsync-dbus; its output in OUT
c() {
	local what=$1
	shift
	calls=$((calls + 1))
	if ! OUT=$("$DBUS" call "$@" 2>&1); then
		failures=$((failures + 1))
		echo "$what: $OUT" >>"$WORK/failures"
		return 1
	fi
}
# gone NAME: FindFolder says NotFound (counted as a call; anything else fails)
gone() {
	local out want="error org.cpmsync.Error.NotFound: name: no folder '$1' in account 'a'"
	calls=$((calls + 1))
	out=$("$DBUS" call "$A" "$AC" FindFolder s "$1" 2>&1)
	if [ "$out" != "$want" ]; then
		failures=$((failures + 1))
		echo "FindFolder $1 right after its DeleteFolder: $out" >>"$WORK/failures"
	fi
}
: >"$WORK/expected"
t0=$(date +%s)
for i in $(seq "$ROUNDS"); do
	msg_text "<loc$i@stress.test>" 2000 >"$WORK/m.eml"
	c "CreateFolder Stress$i" "$A" "$AC" CreateFolder s "Stress$i"
	c "SetMetadata Stress$i" "$A" "$AC" SetMetadata 'sa{ss}' "Stress$i" "/private/comment=round $i"
	if [ $((i % 5)) -eq 0 ]; then
		c "RenameFolder Stress$i" "$A" "$AC" RenameFolder ss "Stress$i" "Kept$i"
	else
		c "DeleteFolder Stress$i" "$A" "$AC" DeleteFolder s "Stress$i" && gone "Stress$i"
	fi
	c "Store loc$i" "$INBOX" "$F" Store ayasx "@$WORK/m.eml" '' 0 || continue
	id=$OUT
	c "SetFlags loc$i" "$INBOX" "$F" SetFlags atasas "$id" '\Flagged,$Loc' ''
	where=INBOX
	if [ $((i % 3)) -eq 0 ]; then
		c "Copy loc$i" "$INBOX" "$F" Copy ats "$id" Sent
		printf 'Sent\t$Loc \\Flagged\t<loc%s@stress.test>\n' "$i" >>"$WORK/expected"
	fi
	if [ $((i % 4)) -eq 0 ]; then
		c "Delete loc$i" "$INBOX" "$F" Delete at "$id"
		c "Expunge" "$INBOX" "$F" Expunge
		where=
	elif [ $((i % 7)) -eq 0 ]; then
		c "Move loc$i" "$INBOX" "$F" Move ats "$id" Trash
		where=Trash
	fi
	[ -n "$where" ] && printf '%s\t$Loc \\Flagged\t<loc%s@stress.test>\n' "$where" "$i" >>"$WORK/expected"
done
t1=$(date +%s)
touch "$WORK/stop"
wait "$CHURN_PID"
echo "# $calls calls in $((t1 - t0)) s, $failures failed; the other client saved $(cat "$WORK/churn.count") messages;" \
	"$(grep -c . "$WORK/sync-calls.log" || true) Sync calls refused"
check "every local call succeeded ($failures of $calls failed)" test "$failures" -eq 0
[ "$failures" -eq 0 ] || head -n 10 "$WORK/failures" | sed 's/^/    /'
check "the other client's changes all reached the server" test ! -s "$WORK/churn.err"

# --- the end state --------------------------------------------------------------
quiet() { # the journal sent, the account idle
	"$DBUS" call "$A" "$AC" Sync >/dev/null || return 1
	for _ in $(seq 300); do
		[ "$(acct PendingOperations)" = 0 ] && [ "$(acct State)" = idle ] && return 0
		sleep 0.1
	done
	echo "    PendingOperations $(acct PendingOperations), State $(acct State), LastError $(acct LastError)"
	return 1
}
check "the daemon catches up (no pending operations)" quiet
server_dump "$USER1" >"$WORK/server.all"
grep -F '<loc' "$WORK/server.all" | cut -f2,4,5 | LC_ALL=C sort >"$WORK/got"
LC_ALL=C sort -o "$WORK/expected" "$WORK/expected"
"$CPMCTL" dump --db "$WORK/store.db" a >"$WORK/local.all" || bail "cpmctl dump failed"
grep -F '<loc' "$WORK/local.all" | cut -f2,4,5 | LC_ALL=C sort >"$WORK/got.local"
check "the store holds exactly the messages and flags the calls asked for ($(wc -l <"$WORK/expected"))" \
	diff -u "$WORK/expected" "$WORK/got.local"
check "the server holds exactly the messages the calls asked for ($(wc -l <"$WORK/expected"))" \
	diff -u "$WORK/expected" "$WORK/got"
da mailbox list -u "$USER1" >"$WORK/folders"
check "no folder the calls deleted or renamed is left on the server" \
	test -z "$(grep -E '^Stress[0-9]+$' "$WORK/folders")"
kept=$(seq 5 5 "$ROUNDS" | sed 's/^/Kept/')
missing=0
for k in $kept; do
	grep -qx "$k" "$WORK/folders" || { echo "    $k missing on the server"; missing=$((missing + 1)); }
	v=$(da mailbox metadata get -u "$USER1" "$k" /private/comment 2>&1)
	[ "$v" = "round ${k#Kept}" ] || { echo "    $k metadata: '$v'"; missing=$((missing + 1)); }
done
check "every renamed folder is on the server with its metadata" test "$missing" -eq 0
check "store == server" compare "$WORK/store.db"
finish
