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
# The same over TLS, where the cut is OpenSSL's "unexpected eof while
# reading" (CPMSYNC_E_TLS), not a plain close.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init
[ -x "$PROXY" ] || bail "missing $PROXY (make all tests)"
dc_start dc

# 200 messages of about 20 KB in Big (4 MB), written into its Maildir
# at once (not one doveadm call each)
da mailbox create -u "$USER1" Big || bail "cannot create Big"
body=$(head -c 20000 /dev/zero | tr '\0' 'x' | fold -w 76)
bulk_save Big 1 200 cuts "$body" || bail "writing the 200 messages of Big"
check "200 messages in Big on the server" \
	test "$(da -f tab mailbox status -u "$USER1" messages Big | tail -n 1 | cut -f2)" = 200

# stored DB: the messages of Big in the store DB (0 before a run made it)
stored() {
	if [ -e "$1" ]; then
		sqlite3 "$1" "SELECT count(*) FROM message m JOIN folder f ON f.id = m.folder_id
			WHERE f.name = 'Big'"
	else
		echo 0
	fi
}
# cut_runs NAME CONF DB CUT: cpm-syncd --once with CONF until a run ends
# well (8 at most), each one that does not ended by CUT (the log's text)
# and the store grown, Big's UIDNEXT unrecorded; then the store complete
cut_runs() {
	local name=$1 conf=$2 db=$3 cut=$4 before=0 done_in=0 run now uidnext
	for run in $(seq 1 8); do
		if timeout 60 "$SYNCD" -c "$conf" --once -v 2>"$WORK/$name$run.log"; then
			done_in=$run
			break
		fi
		check "$name, run $run: ended by the cut" grep -qF "$cut" "$WORK/$name$run.log"
		now=$(stored "$db") || bail "cannot read $db"
		echo "# $name, run $run: $now messages of Big stored"
		check "$name, run $run: the store grew ($before -> $now messages)" test "$now" -gt "$before"
		uidnext=$(sqlite3 "$db" "SELECT coalesce(uidnext, 0) FROM folder WHERE name = 'Big'") ||
			bail "cannot read $db"
		check "$name, run $run: Big's UIDNEXT not recorded before it is complete (got '$uidnext')" \
			test "$uidnext" = 0
		before=$now
	done
	echo "# $name: a run ended well: run $done_in"
	check "$name: a run ends well within 8, after two or more cut" test "$done_in" -ge 3
	check "$name: all 200 messages of Big stored" test "$(stored "$db")" = 200
	check "$name: the store equals the server" compare "$db"
}

proxy_start --fault cut --after-bytes 1000000 --fault-connection 0
clear_conf "$WORK/cuts.conf" "$WORK/cuts.db" "$PROXY_PORT"
cut_runs "clear text" "$WORK/cuts.conf" "$WORK/cuts.db" 'the server closed the connection'

# Over TLS a cut is OpenSSL's "unexpected eof" (CPMSYNC_E_TLS), the same
# loss: the proxy in front of the server's TLS port
proxy_start --fault cut --after-bytes 1000000 --fault-connection 0 --to "127.0.0.1:$IMAPS_PORT"
write_conf "$WORK/tls.conf" "$WORK/tls.db"
sed -i "s/^port = $IMAPS_PORT\$/port = $PROXY_PORT/" "$WORK/tls.conf" || bail "cannot edit tls.conf"
grep -qx "port = $PROXY_PORT" "$WORK/tls.conf" || bail "tls.conf does not name the proxy's port"
cut_runs TLS "$WORK/tls.conf" "$WORK/tls.db" 'unexpected eof while reading'
finish
