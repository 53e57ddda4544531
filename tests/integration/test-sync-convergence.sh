#!/usr/bin/env bash
# Server-side changes converge into the store on every rung of the resync
# ladder: QRESYNC, CONDSTORE only (QRESYNC and LIST-STATUS hidden), plain IMAP
# (QRESYNC and CONDSTORE hidden).  Each rung has its own Dovecot and store: a seeded
# initial sync, then rounds of random mutations made with doveadm (new
# messages, flag changes, expunges, folders created/renamed/deleted/
# re-created with a new UIDVALIDITY, non-ASCII names), each followed by
# `cpm-syncd --once` and a comparison of `cpmctl dump` with the server's
# state read with doveadm.  The -v logs show each rung uses its mechanism.
#
# Reproduce a failure: CONVERGENCE_SEED=<printed seed> (the seed of rung i
# is SEED+i), ROUNDS=n, KEEP_WORK=1 keeps the temp dir with the mutation logs.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init

SEED=${CONVERGENCE_SEED:-4711}
ROUNDS=${ROUNDS:-15}

# c_lines LOG...: the commands the client sent
c_lines() { grep -h ' C: ' "$@"; }

run_rung() { # NAME HIDE SEED
	local name=$1 hide=$2 seed=$3 conf db r n logs=() rc
	echo "# rung $name: DOVECOT_HIDE_CAPABILITY=\"$hide\" RANDOM seed $seed"
	DOVECOT_HIDE_CAPABILITY=$hide dc_start "$name"
	dc_seed
	conf=$WORK/$name.conf
	db=$WORK/$name.db
	write_conf "$conf" "$db"
	MUT_TAG=$name
	MUT_SEQ=0
	MUT_LOG=$WORK/$name.mutations
	: >"$MUT_LOG"
	RANDOM=$seed

	if sync_once "$conf" "$WORK/$name.sync0.log" && compare "$db"; then
		ok "$name: initial sync equals the server"
	else
		not_ok "$name: initial sync equals the server"
	fi
	for ((r = 1; r <= ROUNDS; r++)); do
		n=$((2 + RANDOM % 6))
		echo "round $r: $n mutations" >>"$MUT_LOG"
		mutate "$n"
		logs+=("$WORK/$name.sync$r.log")
		if sync_once "$conf" "$WORK/$name.sync$r.log" && compare "$db"; then
			ok "$name: round $r ($n mutations) equals the server"
		else
			not_ok "$name: round $r ($n mutations) equals the server (seed $seed; mutations:)"
			sed -n "/^round $r:/,\$p" "$MUT_LOG" | sed 's/^/    /'
		fi
	done

	# Scripted: a folder deleted and created again under the same name gets
	# a new UIDVALIDITY and the same UIDs 1, 2 for different messages.
	local fx="Fest Ü ✓" v1 v2
	da mailbox create -u "$USER1" "$fx"
	for r in 1 2 3; do msg_save "$USER1" "$fx" "<$name.fixed.$r@sync.test>" 500 '\Seen'; done
	if sync_once "$conf" "$WORK/$name.fx1.log" && compare "$db"; then
		ok "$name: folder '$fx' synced"
	else
		not_ok "$name: folder '$fx' synced"
	fi
	v1=$(da -f tab mailbox status -u "$USER1" uidvalidity "$fx" | tail -n 1 | cut -f2)
	da mailbox delete -u "$USER1" "$fx"
	da mailbox create -u "$USER1" "$fx"
	for r in 4 5; do msg_save "$USER1" "$fx" "<$name.fixed.$r@sync.test>" 700 '$Work'; done
	v2=$(da -f tab mailbox status -u "$USER1" uidvalidity "$fx" | tail -n 1 | cut -f2)
	check "$name: re-created folder has a new UIDVALIDITY ($v1 -> $v2)" test "$v1" != "$v2"
	if sync_once "$conf" "$WORK/$name.fx2.log" && compare "$db"; then
		ok "$name: re-created folder (same UIDs, other messages) converges"
	else
		not_ok "$name: re-created folder (same UIDs, other messages) converges"
	fi
	da mailbox rename -u "$USER1" "$fx" "Umbenannt/$fx"
	da flags add -u "$USER1" '\Flagged' mailbox "Umbenannt/$fx" uid 1
	if sync_once "$conf" "$WORK/$name.fx3.log" && compare "$db"; then
		ok "$name: renamed folder converges"
	else
		not_ok "$name: renamed folder converges"
	fi

	# The mechanism each rung must use on the resyncs (rounds 1..n)
	case $name in
	qresync)
		check "$name: resyncs use SELECT ... (QRESYNC (" \
			grep -qE 'C: [^ ]+ SELECT .*\(QRESYNC \(' "${logs[@]}"
		check "$name: ENABLE QRESYNC sent" grep -qE 'C: [^ ]+ ENABLE .*QRESYNC' "${logs[@]}"
		;;
	condstore)
		check "$name: resyncs use CHANGEDSINCE" grep -qE 'C: .*CHANGEDSINCE' "${logs[@]}"
		if c_lines "$WORK/$name".sync*.log | grep -q 'QRESYNC'; then
			not_ok "$name: QRESYNC (not advertised) never used"
			c_lines "$WORK/$name".sync*.log | grep 'QRESYNC' | head -n 3 | sed 's/^/    /'
		else
			ok "$name: QRESYNC (not advertised) never used"
		fi
		;;
	plain)
		if c_lines "$WORK/$name".sync*.log | grep -qE 'QRESYNC|CONDSTORE|CHANGEDSINCE|MODSEQ'; then
			not_ok "$name: neither QRESYNC nor CONDSTORE (CHANGEDSINCE, MODSEQ) used"
			c_lines "$WORK/$name".sync*.log | grep -E 'QRESYNC|CONDSTORE|CHANGEDSINCE|MODSEQ' |
				head -n 3 | sed 's/^/    /'
		else
			ok "$name: neither QRESYNC nor CONDSTORE (CHANGEDSINCE, MODSEQ) used"
		fi
		check "$name: resyncs re-read the flags of known messages (UID FETCH 1:N (UID FLAGS))" \
			grep -qE 'C: [^ ]+ UID FETCH 1:[0-9]+ \(UID FLAGS\)' "${logs[@]}"
		;;
	esac

	# Nothing changed: converged still; with QRESYNC or CONDSTORE no folder
	# is selected at all (LIST-STATUS, or STATUS per folder, shows nothing
	# changed).
	sync_once "$conf" "$WORK/$name.idle.log"
	rc=$?
	if [ $rc -eq 0 ] && compare "$db"; then
		ok "$name: a run without changes keeps the store equal to the server"
	else
		not_ok "$name: a run without changes keeps the store equal to the server"
	fi
	if [ "$name" = condstore ]; then
		# without LIST-STATUS: one pipelined STATUS per folder instead
		check "$name: a run without changes checks each folder with STATUS" \
			grep -qE 'C: [^ ]+ STATUS .* \(UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ\)' \
			"$WORK/$name.idle.log"
	fi
	if [ "$name" = qresync ] || [ "$name" = condstore ]; then
		n=$(c_lines "$WORK/$name.idle.log" | grep -cE 'C: [^ ]+ (SELECT|EXAMINE) ')
		if [ "$n" -eq 0 ]; then
			ok "$name: a run without changes sends no SELECT"
		else
			not_ok "$name: a run without changes sends no SELECT ($n sent)"
			c_lines "$WORK/$name.idle.log" | grep -E 'C: [^ ]+ (SELECT|EXAMINE) ' | head -n 5 | sed 's/^/    /'
		fi
	fi
	dc_stop "$name"
}

run_rung qresync "" "$SEED"
run_rung condstore "QRESYNC LIST-STATUS" $((SEED + 1))
run_rung plain "QRESYNC CONDSTORE" $((SEED + 2))

finish
