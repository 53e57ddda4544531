#!/usr/bin/env bash
# A long first sync over a link cut every 1 MB, against a real Dovecot
# through tests/tools/imap-proxy (every connection cut after 1,000,000
# bytes from the server): on loopback 1 MB comes in far less than the
# engine's 2 s batch bound (ENGINE_BATCH_MAX_MS), so a run that rolled its
# open batch back at the cut kept nothing, and every run fetched the same
# first megabyte again.  Each run must fail (the cut), keep what it
# fetched, leave the folder's UIDNEXT unrecorded until the folder is
# complete, and the next run go on from there: the store grows at every
# run, a run ends well within 8, and the store then equals the server.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init
[ -x "$PROXY" ] || bail "missing $PROXY (make all tests)"
dc_start dc

# 200 messages of about 20 KB in Big (4 MB), written into its Maildir
# at once (not one doveadm call each)
da mailbox create -u "$USER1" Big || bail "cannot create Big"
md=$(da mailbox path -u "$USER1" Big) || bail "no Maildir path for Big"
[ -d "$md/cur" ] || bail "no Maildir for Big at $md"
body=$(head -c 20000 /dev/zero | tr '\0' 'x' | fold -w 76)
for i in $(seq 1 200); do
	printf 'From: a@x\r\nSubject: big %s\r\nMessage-ID: <big%s@cuts.test>\r\n\r\n%s\r\n' \
		"$i" "$i" "$body" >"$md/cur/$(printf '%06d' "$i").M${i}P$$.cuts:2,"
done
chown -R "$MAIL_UID:$MAIL_GID" "$md" || bail "cannot chown $md"
check "200 messages in Big on the server" \
	test "$(da -f tab mailbox status -u "$USER1" messages Big | tail -n 1 | cut -f2)" = 200

proxy_start --fault cut --after-bytes 1000000 --fault-connection 0
DB=$WORK/cuts.db
clear_conf "$WORK/cuts.conf" "$DB" "$PROXY_PORT"

# stored: the messages of Big in the store (0 before the first run made it)
stored() {
	if [ -e "$DB" ]; then
		sqlite3 "$DB" "SELECT count(*) FROM message m JOIN folder f ON f.id = m.folder_id
			WHERE f.name = 'Big'"
	else
		echo 0
	fi
}
before=0 done_in=0
for run in $(seq 1 8); do
	if timeout 60 "$SYNCD" -c "$WORK/cuts.conf" --once -v 2>"$WORK/run$run.log"; then
		done_in=$run
		break
	fi
	check "run $run: ended by the cut" grep -q 'the server closed the connection' "$WORK/run$run.log"
	now=$(stored) || bail "cannot read $DB"
	echo "# run $run: $now messages of Big stored"
	check "run $run: the store grew ($before -> $now messages)" test "$now" -gt "$before"
	uidnext=$(sqlite3 "$DB" "SELECT coalesce(uidnext, 0) FROM folder WHERE name = 'Big'") ||
		bail "cannot read $DB"
	check "run $run: Big's UIDNEXT not recorded before it is complete (got '$uidnext')" \
		test "$uidnext" = 0
	before=$now
done
echo "# a run ended well: run $done_in"
check "a run ends well within 8, after two or more cut" test "$done_in" -ge 3
check "all 200 messages of Big stored" test "$(stored)" = 200
check "the store equals the server" compare "$DB"
finish
