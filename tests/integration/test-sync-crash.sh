#!/usr/bin/env bash
# Crash safety: `cpm-syncd --once` killed with SIGKILL at random points must
# never lose, duplicate or corrupt anything; the next run converges.
#  (a) the initial sync of a folder of 3000 messages (CRASH_BIG), killed
#      during the body streaming after growing random delays; after each kill the store is
#      readable and holds nothing the server does not have; then the same on
#      a resync after server-side changes; a final run equals the server.
#  (b) replay: ~230 local changes queued with cpmsync-op (stores with unique
#      Message-IDs, flag changes, moves of new and old messages), runs killed
#      at random points of the replay, then a final run: every message
#      exactly once on the server, in the folder and with the flags wanted,
#      store equals server, nothing pending.
#  (c) the campaign: rounds of server-side changes by another client
#      (doveadm, or cyrus-imap.py: appends, flag changes, expunges, folders
#      created, renamed and deleted) and local changes (APPEND, COPY, MOVE,
#      STORE, EXPUNGE, CREATE/RENAME/DELETE of folders), each round's run
#      killed at a random moment after the first command of the kind the
#      round aims at (or of the body streaming of new messages); then one
#      clean run: store equals server, every local change on the server
#      (lost = model messages missing or not as wanted, and local folder
#      changes missing), nothing twice (duplicated).
# Every kill is a `kill -9` of a run that had not ended; the kills are
# counted by the kind of the last command the run had sent.  The figures end
# the output in one block ("# stress crash: kills N, lost N, duplicated N,
# hung N, time N s"; make check-stress adds them up).
# CRASH_KILLS=n kills in all (default 24; (a) 15%, resync 6%, (b) 12%, the
# rest in (c)); CRASH_SEED=n reproduces the random choices; KEEP_WORK=1
# keeps the temp dir.  CRASH_BIG=n messages in Big (default 3000, at least
# 300; the uid ranges of the server changes are the same fractions of it),
# each CRASH_BIG_SCALE=n times 1-16 KB (default 1): fewer, bigger messages
# keep the initial sync long enough to kill where importing is slow (Cyrus).
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init

SEED=${CRASH_SEED:-$((SRANDOM % 100000))}
NKILLS=${CRASH_KILLS:-24}
case $NKILLS in '' | *[!0-9]*) bail "CRASH_KILLS must be a number, not '$NKILLS'" ;; esac
[ "$NKILLS" -ge 10 ] || bail "CRASH_KILLS must be at least 10, not $NKILLS"
NBIG=${CRASH_BIG:-3000}
case $NBIG in '' | *[!0-9]*) bail "CRASH_BIG must be a number, not '$NBIG'" ;; esac
[ "$NBIG" -ge 300 ] || bail "CRASH_BIG must be at least 300, not $NBIG"
BSCALE=${CRASH_BIG_SCALE:-1}
case $BSCALE in '' | *[!0-9]* | 0) bail "CRASH_BIG_SCALE must be a number from 1, not '$BSCALE'" ;; esac
echo "# CRASH_SEED=$SEED CRASH_KILLS=$NKILLS CRASH_BIG=$NBIG CRASH_BIG_SCALE=$BSCALE"
RANDOM=$SEED
T_START=$(date +%s)
dc_start dc
CONF=$WORK/crash.conf
DB=$WORK/crash.db
write_conf "$CONF" "$DB"
op() { "$OP" --db "$DB" "$@"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# ms_sleep MS
ms_sleep() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
# at_least MIN N: prints the larger
at_least() { echo $(($2 > $1 ? $2 : $1)); }

# The kinds of command a kill is counted under, and the regular expression
# (grep -E, on the -v log) of the first command of each.
KINDS=(BODY APPEND COPY MOVE STORE EXPUNGE FOLDER)
declare -A PAT=(
	[BODY]=' C: a[0-9]+ UID FETCH .*BODY\.PEEK\[\]'
	[APPEND]=' C: a[0-9]+ APPEND '
	[COPY]=' C: a[0-9]+ UID COPY '
	[MOVE]=' C: a[0-9]+ UID MOVE '
	[STORE]=' C: a[0-9]+ UID STORE '
	[EXPUNGE]=' C: a[0-9]+ (UID )?EXPUNGE'
	[FOLDER]=' C: a[0-9]+ (CREATE|RENAME|DELETE) '
	[REPLAY]=' C: a[0-9]+ (APPEND|UID COPY|UID MOVE|UID STORE|UID EXPUNGE|EXPUNGE|CREATE|RENAME|DELETE) '
)
# kind_of LINE: the kind of a logged command line
kind_of() {
	local k
	for k in "${KINDS[@]}"; do
		grep -qE -- "${PAT[$k]}" <<<"$1" && { echo "$k"; return; }
	done
	echo OTHER
}

KILLS=0 FINISHED=0 HUNG=0 LOST=0 DUPS=0
declare -A BYKIND=() UNANSWERED=()
# counted TAG RC: counts a run that was killed (137), finished (0) or
# failed (a run after a crash must not fail: that is a finding in itself)
counted() {
	local tag=$1 rc=$2 log=$WORK/$1.log last kind tagno
	if [ "$rc" -eq 137 ]; then
		KILLS=$((KILLS + 1))
		last=$(grep -E ' C: a[0-9]+ ' "$log" | tail -n 1)
		kind=$(kind_of "$last")
		BYKIND[$kind]=$((${BYKIND[$kind]:-0} + 1))
		tagno=$(sed -E 's/.* C: (a[0-9]+) .*/\1/' <<<"$last")
		if [ -n "$last" ] && ! grep -qE " S: $tagno (OK|NO|BAD)" "$log"; then
			UNANSWERED[$kind]=$((${UNANSWERED[$kind]:-0} + 1))
		fi
		echo "# $tag: killed during $kind ($(grep -c ' C: ' "$log") commands sent; last: $(cut -c1-90 <<<"${last#* C: }"))"
	elif [ "$rc" -eq 0 ]; then
		FINISHED=$((FINISHED + 1))
		echo "# $tag: finished before the kill"
	else
		not_ok "$tag: run exited $rc before the kill: $(grep -v ' [CS]: ' "$log" | tail -n 2 | tr '\n' ' ')"
	fi
}

# kill_at TAG KIND MAX-MS: --once in the background; once its log shows the
# first command of KIND (PAT), SIGKILL after a random 0..MAX-MS ms.  A run
# that never sends one ends by itself (counted as finished); one still
# running after SYNC_TIMEOUT is a hang (HUNG).
kill_at() {
	local tag=$1 kind=$2 max=$3 log=$WORK/$1.log pid rc d
	: >"$log"
	"$SYNCD" -c "$CONF" --once -v 2>"$log" &
	pid=$!
	BG_PIDS=("$pid")
	d=$((RANDOM % (max + 1)))
	if grep -qE -m 1 -- "${PAT[$kind]}" < <(timeout "$SYNC_TIMEOUT" tail -n +1 -f --pid="$pid" "$log"); then
		ms_sleep "$d"
		kill -KILL "$pid" 2>/dev/null
	elif kill -0 "$pid" 2>/dev/null; then
		HUNG=$((HUNG + 1))
		not_ok "$tag: still running after $SYNC_TIMEOUT s: $(grep -v ' [CS]: ' "$log" | tail -n 2 | tr '\n' ' ')"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	rc=$?
	BG_PIDS=()
	counted "$tag" $rc
}

# clean_run TAG: a run that must succeed (sync_once); a timeout is a hang
clean_run() {
	local rc
	sync_once "$CONF" "$WORK/$1.log"
	rc=$?
	[ "$rc" -eq 124 ] && HUNG=$((HUNG + 1))
	return "$rc"
}

# integrity: PRAGMA integrity_check of the store says ok
integrity() {
	local out
	[ -e "$DB" ] || return 0
	out=$(sqlite3 "$DB" 'PRAGMA integrity_check' 2>&1)
	[ "$out" = ok ] || { echo "    integrity_check: $(head -c 300 <<<"$out")"; return 1; }
}

# store_sane [noflags|nodiff]: the store is readable, every stored body
# reads back whole, and it holds no message
# the server does not have (same folder, uid, flags, Message-ID; with
# noflags, flags are not compared: queued local flag changes may not have
# reached the server yet; with nodiff, not at all: the server changed since)
# and no (folder, uid) twice.  Messages not yet on the server (uid 0) are
# left out.
store_sane() {
	local extra='' dup fields=1-5
	[ "${1:-}" = noflags ] && fields=1,2,3,5
	integrity || return 1
	if ! "$CPMCTL" dump --db "$DB" a >"$WORK/sane.local" 2>"$WORK/sane.err"; then
		# Killed before the store's schema was committed (it is made in
		# one transaction): it holds nothing, so nothing wrong.
		if [ "$(cat "$WORK/sane.err")" = "cpmctl: cannot open database '$DB': the store is empty (cpm-syncd has not made it yet: it is starting, or stopped before it could)" ]; then
			echo "    (store not created yet)"
			return 0
		fi
		echo "    cpmctl dump failed: $(head -c 300 "$WORK/sane.err")"
		return 1
	fi
	# Every body the store says it has reads back whole: its message's size,
	# with its Message-ID (the pack files and their holes, store-pack.c).
	if ! op bodies a >"$WORK/sane.bodies" 2>&1; then
		echo "    stored bodies wrong: $(head -n 5 "$WORK/sane.bodies")"
		return 1
	fi
	if [ "${1:-}" != nodiff ]; then
		server_dump "$USER1" >"$WORK/sane.server"
		extra=$(awk -F'\t' '$3 != 0' "$WORK/sane.local" | cut -f"$fields" | LC_ALL=C sort |
			LC_ALL=C comm -23 - <(cut -f"$fields" "$WORK/sane.server" | LC_ALL=C sort))
	fi
	dup=$(cut -f2,3 "$WORK/sane.local" | awk -F'\t' '$2 != 0' | LC_ALL=C sort | uniq -d)
	if [ -n "$extra$dup" ]; then
		echo "    not on the server: $(head -n 5 <<<"$extra")"
		echo "    twice: $(head -n 5 <<<"$dup")"
		return 1
	fi
}

# --- (a) initial sync of a big folder, killed ---------------------------------
NA=$(at_least 3 $((NKILLS * 15 / 100)))
NR=$(at_least 1 $((NKILLS * 6 / 100)))
NB=$(at_least 2 $((NKILLS * 12 / 100)))
da mailbox create -u "$USER1" Big || bail "doveadm mailbox create Big"
if is_cyrus; then
	# Generated into a Maildir-like directory, then APPENDed in one session.
	md=$WORK/big-maildir
	mkdir -p "$md/cur"
else
	md=$(da mailbox path -u "$USER1" Big)
fi
[ -d "$md/cur" ] || bail "no Maildir for Big at $md"
# NBIG messages of 1-16 KB (times BSCALE) written straight into the Maildir
# (doveadm save takes ~30 ms per message); some \Seen, some \Flagged.
awk -v dir="$md/cur" -v n="$NBIG" -v sc="$BSCALE" -v t="$(date +%s)" -v seed="$SEED" 'BEGIN {
	srand(seed); line = sprintf("%76s", ""); gsub(/ /, "x", line)
	for (i = 1; i <= n; i++) {
		fl = (i % 7 == 0 ? "F" : "") (i % 3 == 0 ? "S" : "")
		f = dir "/" t ".M" i "P" seed ".crashtest:2," fl
		k = sc * (12 + int(rand() * 200))
		printf "From: gen@sync.test\r\nTo: alice@sync.test\r\nSubject: big %d\r\nMessage-ID: <big.%d@crash.test>\r\n\r\n", i, i > f
		for (j = 0; j < k; j++) printf "%s %d\r\n", line, j > f
		close(f)
	} }' || bail "generating the Maildir"
if is_cyrus; then
	da import-maildir -u "$USER1" Big "$md/cur" || bail "APPENDing the $NBIG messages to Cyrus"
else
	chown -R "$MAIL_UID:$MAIL_GID" "$md"
fi
check "$NBIG messages in Big on the server" \
	test "$(da -f tab mailbox status -u "$USER1" messages Big | tail -n 1 | cut -f2)" = "$NBIG"
da flags add -u "$USER1" '$Work' mailbox Big uid $((NBIG / 30)):$((NBIG / 10))

# How long a full initial sync takes here (into a scratch store): the kill
# delays are fractions of it.
write_conf "$WORK/ref.conf" "$WORK/ref.db"
t0=$(now_ms)
timeout 120 "$SYNCD" -c "$WORK/ref.conf" --once 2>"$WORK/ref.log" || bail "reference sync failed: $(tail -n 3 "$WORK/ref.log")"
T=$(($(now_ms) - t0))
echo "# a full initial sync takes $T ms"
rm -rf "$WORK"/ref.db*

k0=$KILLS
for ((i = 1; i <= NA; i++)); do
	# In rounds of four runs, each resuming from the store the last one left:
	# killed after the first body FETCH, at most 5/16, 10/16, 15/16, 20/16 of
	# T.  Each round after the first starts again from an empty store: with
	# growing delays alone, the first few runs finish the sync and the rest
	# find nothing left to kill (4 of 15 at 100 kills on a quiet machine).
	# A run that finished before its kill left the sync done, and the
	# rest of its round would find nothing to kill (CRASH_SEED=31217 on
	# Cyrus alt, beside a CI run: 0 of 3): the next run starts again
	# from an empty store too.
	j=$(((i - 1) % 4 + 1))
	if { [ "$j" = 1 ] && [ "$i" -gt 1 ]; } || [ "${finished:-}" = 1 ]; then
		# -r: the pack files' directory (<store>-packs) goes too.
		rm -rf "$DB" "$DB"-* || bail "removing the store before run $i"
	fi
	k1=$KILLS
	kill_at "a-kill$i" BODY $((5 + T * j * 5 / 16))
	finished=$((KILLS == k1))
	check "(a) kill $i: store readable, nothing the server lacks, nothing twice" store_sane
done
echo "# (a) initial sync: $((KILLS - k0)) of $NA runs killed"
check "(a) at least a third of the runs were killed mid-way ($((KILLS - k0)) of $NA)" \
	test $((KILLS - k0)) -ge $((NA / 3))
check "(a) a run after the kills succeeds" clean_run a-final
check "(a) store equals the server" compare "$DB"

# Resync after server-side changes, killed.
da flags add -u "$USER1" '\Answered' mailbox Big uid 1:$((NBIG / 2))
da flags remove -u "$USER1" '\Seen' mailbox Big uid $((NBIG / 3)):$((NBIG * 2 / 3))
da expunge -u "$USER1" mailbox Big uid $((NBIG * 5 / 6)):$((NBIG * 5 / 6 + NBIG / 30))
if is_cyrus; then
	# one session (a python start and a login per message otherwise)
	mkdir -p "$WORK/late/cur" || bail "mkdir $WORK/late/cur"
	for ((i = 1; i <= 20; i++)); do
		msg_text "<late.$i@crash.test>" $((200 + RANDOM % 5000)) >"$WORK/late/cur/$((1000 + i))"
	done
	da import-maildir -u "$USER1" Big "$WORK/late/cur" || bail "APPENDing the 20 late messages to Cyrus"
else
	for ((i = 1; i <= 20; i++)); do
		msg_save "$USER1" Big "<late.$i@crash.test>" $((200 + RANDOM % 5000))
	done
fi
k0=$KILLS
for ((i = 1; i <= NR; i++)); do
	# during the fetch of the changes and the new messages
	kill_at "a-resync-kill$i" BODY $((i * 30))
	check "(a) resync kill $i: store readable, nothing twice" store_sane nodiff
done
echo "# (a) resync: $((KILLS - k0)) of $NR runs killed"
check "(a) resync after the kills succeeds" clean_run a-resync-final
check "(a) resync: store equals the server" compare "$DB"

# --- (b) replay of queued local changes, killed -----------------------------
# The model of what the server must end up with: per Message-ID, the folder
# (FOLD) and the flags (FLG, bytewise sorted); ID = its current local id.
declare -A FOLD FLG ID
# flags_sorted WORDS...: SORTED = the flags among the words (split at
# spaces), each once, bytewise sorted (C.UTF-8 collates by code point),
# space-separated; flags_without FLAG WORDS...: the same without FLAG.  In
# the shell: 230 queued changes made 1,000 tr|grep|sort|paste processes.
flags_sorted() {
	local words w x out=() next placed
	read -ra words <<<"$*"
	for w in "${words[@]}"; do
		next=() placed=0
		for x in "${out[@]}"; do
			if [ $placed = 0 ] && [[ $w == "$x" ]]; then
				placed=1
			elif [ $placed = 0 ] && [[ $w < $x ]]; then
				next+=("$w")
				placed=1
			fi
			next+=("$x")
		done
		[ $placed = 1 ] || next+=("$w")
		out=("${next[@]}")
	done
	SORTED="${out[*]}"
}
flags_without() {
	local drop=$1 words w keep=()
	shift
	read -ra words <<<"$*"
	for w in "${words[@]}"; do [[ $w == "$drop" ]] || keep+=("$w"); done
	flags_sorted "${keep[@]}"
}
TARGETS=(INBOX Archive "Entwürfe" "Big")
da mailbox create -u "$USER1" Archive "Entwürfe" || true
check "(b) sync before queueing" clean_run b-pre
OPFLAGS=('\Seen' '\Flagged' '\Answered' '$Work' 'kw-crash')
nops=0
# 120 stores
for ((i = 1; i <= 120; i++)); do
	mid="<stored.$i.$SEED@crash.test>"
	rnd ${#TARGETS[@]}
	f=${TARGETS[$R]}
	fl=()
	rnd 4
	[ $R -ge 1 ] && { rnd ${#OPFLAGS[@]}; fl+=("${OPFLAGS[$R]}"); }
	[ $R -ge 3 ] && { rnd ${#OPFLAGS[@]}; fl+=("${OPFLAGS[$R]}"); }
	msg_text "$mid" $((200 + RANDOM % 20000)) "stored $i" >"$WORK/msg"
	# One in four with LF line ends (a file written on Unix): sent as CRLF
	# (Cyrus refuses bare LFs), which is what the server counts, so an
	# APPEND of one cut short is still re-matched (find_rematch()), not
	# sent twice.
	if [ $((i % 4)) -eq 0 ]; then
		tr -d '\r' <"$WORK/msg" >"$WORK/msg.lf" && mv "$WORK/msg.lf" "$WORK/msg"
	fi
	id=$(op store a "$f" "$WORK/msg" "${fl[@]}") || { not_ok "(b) op store $i"; continue; }
	flags_sorted "${fl[@]}"
	ID[$mid]=$id FOLD[$mid]=$f FLG[$mid]=$SORTED
	nops=$((nops + 1))
done
# 20 messages that are on the server already (in Big) join the model
server_dump "$USER1" >"$WORK/b.server"
for ((i = 1; i <= 20; i++)); do
	n=$((1 + RANDOM % (NBIG * 4 / 5)))
	mid="<big.$n@crash.test>"
	[ -n "${ID[$mid]:-}" ] && continue
	line=$(awk -F'\t' -v m="$mid" '$5 == m' "$WORK/b.server")
	[ -n "$line" ] || continue
	id=$(op find a Big "$mid") || { not_ok "(b) op find $mid"; continue; }
	ID[$mid]=$id FOLD[$mid]=Big FLG[$mid]=$(cut -f4 <<<"$line")
done
MIDS=("${!ID[@]}")
# 80 flag changes and 30 moves, interleaved, on random model messages
for ((i = 1; i <= 110; i++)); do
	rnd ${#MIDS[@]}
	mid=${MIDS[$R]}
	rnd 11
	if [ $R -lt 8 ]; then
		rnd ${#OPFLAGS[@]}
		flag=${OPFLAGS[$R]}
		rnd 2
		if [ $R -eq 0 ]; then
			op flags "${ID[$mid]}" -- "+$flag" >/dev/null || { not_ok "(b) op flags +$flag $mid"; continue; }
			flags_sorted "${FLG[$mid]}" "$flag"
			FLG[$mid]=$SORTED
		else
			op flags "${ID[$mid]}" -- "-$flag" >/dev/null || { not_ok "(b) op flags -$flag $mid"; continue; }
			flags_without "$flag" "${FLG[$mid]}"
			FLG[$mid]=$SORTED
		fi
	else
		rnd ${#TARGETS[@]}
		f=${TARGETS[$R]}
		[ "$f" = "${FOLD[$mid]}" ] && continue
		id=$(op move "$f" "${ID[$mid]}") || { not_ok "(b) op move $mid to $f"; continue; }
		ID[$mid]=$id FOLD[$mid]=$f
	fi
	nops=$((nops + 1))
done
npend=$(op pending a | wc -l)
echo "# (b) $nops operations queued, $npend journal rows"
check "(b) changes are pending" test "$npend" -gt 100

k0=$KILLS
for ((i = 1; i <= NB; i++)); do
	# after the first replayed command, growing
	kill_at "b-kill$i" REPLAY $((10 + i * 40))
	echo "#   $(op pending a | wc -l) journal rows left"
	check "(b) kill $i: store readable, nothing the server lacks, nothing twice" store_sane noflags
done
echo "# (b) replay: $((KILLS - k0)) of $NB runs killed"
check "(b) at least a quarter of the runs were killed mid-way ($((KILLS - k0)) of $NB)" \
	test $((KILLS - k0)) -ge $((NB / 4))
check "(b) a run after the kills succeeds" clean_run b-final
check "(b) store equals the server" compare "$DB"
check "(b) nothing pending" test -z "$(op pending a)"

# Every model message exactly once on the server, where and as wanted.
server_dump "$USER1" >"$WORK/b.final"
bad=0
for mid in "${MIDS[@]}"; do
	got=$(awk -F'\t' -v m="$mid" '$5 == m { print $2 "|" $4 }' "$WORK/b.final")
	want="${FOLD[$mid]}|${FLG[$mid]}"
	if [ "$got" != "$want" ]; then
		bad=$((bad + 1))
		[ $bad -le 10 ] && echo "    $mid: server has '$(tr '\n' ';' <<<"$got")', want '$want'"
	fi
done
if [ $bad -eq 0 ]; then
	ok "(b) all ${#MIDS[@]} messages exactly once on the server, in the right folder, with the right flags"
else
	not_ok "(b) $bad of ${#MIDS[@]} messages missing, duplicated, misplaced or with wrong flags"
fi
twice=$(awk -F'\t' '$5 ~ /crash\.test/ { print $5 }' "$WORK/b.final" | sort | uniq -d)
check "(b) no Message-ID twice on the server" test -z "$twice"
# a model message twice is a duplicate, any other mismatch a lost change
ndup=$(grep -c . <<<"$twice")
DUPS=$((DUPS + ndup)) LOST=$((LOST + (bad > ndup ? bad - ndup : 0)))

# --- (c) the campaign: local and server changes, runs killed during each kind --
# The model: M["FOLDER<TAB>MESSAGE-ID"] = flags (bytewise sorted) of every
# message stored locally in (c), where the server must end up with it;
# never two copies of one Message-ID in one folder.  LF: the folders local
# changes go to; LPOOL: names of folders made, renamed and deleted locally;
# SPOOL: the other client's.  The other client touches only its own
# messages (<srv.N...>) and folders, so the model stays exact.
declare -A M=()
LF=(INBOX Archive "Entwürfe")
LPOOL=("Lokal Eins" "Lökal Zwei" "L3 ✓" "L4 & Co" "L5 [x]")
SPOOL=("Server Eins" "Sérver Zwei" "Server Drei")
CFLAGS=('\Seen' '\Flagged' '\Answered' '$Work' 'kw-crash')
NSTORE=0 NSRV=0

in_list() { # in_list WORD LIST...: WORD is one of LIST
	local w=$1 x
	shift
	for x; do [ "$x" = "$w" ] && return 0; done
	return 1
}
# m_pick: a random model message -> PF (folder), PM (Message-ID); 1 if none
m_pick() {
	local keys=("${!M[@]}")
	[ ${#keys[@]} -gt 0 ] || return 1
	rnd ${#keys[@]}
	PF=${keys[$R]%%$'\t'*} PM=${keys[$R]#*$'\t'}
}
# m_id FOLDER MESSAGE-ID: its local id
m_id() { op find a "$1" "$2"; }

l_store() { # [FOLDER]
	local f fl=() mid id
	if [ $# -gt 0 ]; then f=$1; else rnd ${#LF[@]}; f=${LF[$R]}; fi
	NSTORE=$((NSTORE + 1))
	mid="<c.$NSTORE.$SEED@crash.test>"
	rnd 3
	[ $R -ge 1 ] && { rnd ${#CFLAGS[@]}; fl+=("${CFLAGS[$R]}"); }
	msg_text "$mid" $((200 + RANDOM % 60000)) "campaign $NSTORE" >"$WORK/msg"
	id=$(op store a "$f" "$WORK/msg" "${fl[@]}") || { not_ok "(c) op store into $f"; return 1; }
	flags_sorted "${fl[@]}"
	M["$f"$'\t'"$mid"]=$SORTED
}
# l_copy copy|move: a model message to a folder without that Message-ID
l_copy() {
	local d id tries k
	m_pick || return 0
	for ((tries = 0; tries < 5; tries++)); do
		rnd ${#LF[@]}
		d=${LF[$R]}
		[ "$d" != "$PF" ] && [ -z "${M["$d"$'\t'"$PM"]+x}" ] && break
		d=
	done
	[ -n "$d" ] || return 0
	id=$(m_id "$PF" "$PM") || { not_ok "(c) op find $PM in $PF"; return 1; }
	op "$1" "$d" "$id" >/dev/null || { not_ok "(c) op $1 $PM from $PF to $d"; return 1; }
	k="$PF"$'\t'"$PM"
	M["$d"$'\t'"$PM"]=${M[$k]}
	[ "$1" = move ] && unset 'M[$k]'
	return 0
}
l_flags() {
	local id flag
	m_pick || return 0
	id=$(m_id "$PF" "$PM") || { not_ok "(c) op find $PM in $PF"; return 1; }
	rnd ${#CFLAGS[@]}
	flag=${CFLAGS[$R]}
	rnd 2
	if [ $R -eq 0 ]; then
		op flags "$id" -- "+$flag" >/dev/null || { not_ok "(c) op flags +$flag"; return 1; }
		flags_sorted "${M["$PF"$'\t'"$PM"]}" "$flag"
		M["$PF"$'\t'"$PM"]=$SORTED
	else
		op flags "$id" -- "-$flag" >/dev/null || { not_ok "(c) op flags -$flag"; return 1; }
		flags_without "$flag" "${M["$PF"$'\t'"$PM"]}"
		M["$PF"$'\t'"$PM"]=$SORTED
	fi
}
# l_expunge: 1-3 model messages of one folder deleted, the folder expunged
l_expunge() {
	local n id k cnt
	m_pick || return 0
	rnd 3
	cnt=$((R + 1))
	for ((n = 0; n < cnt; n++)); do
		k="$PF"$'\t'"$PM"
		[ -n "${M[$k]+x}" ] || continue
		id=$(m_id "$PF" "$PM") || { not_ok "(c) op find $PM in $PF"; return 1; }
		op delete "$id" >/dev/null || { not_ok "(c) op delete $PM"; return 1; }
		unset 'M[$k]'
		# another one of the same folder, if any
		for k in "${!M[@]}"; do [ "${k%%$'\t'*}" = "$PF" ] && { PM=${k#*$'\t'}; break; }; done
	done
	op expunge a "$PF" >/dev/null || { not_ok "(c) op expunge $PF"; return 1; }
}
l_free() { # -> N: a local pool name not in LF
	local tries
	for ((tries = 0; tries < 10; tries++)); do
		rnd ${#LPOOL[@]}
		N=${LPOOL[$R]}
		in_list "$N" "${LF[@]}" || return 0
	done
	return 1
}
l_used() { # -> N: a local pool name in LF
	local x used=()
	for x in "${LPOOL[@]}"; do in_list "$x" "${LF[@]}" && used+=("$x"); done
	[ ${#used[@]} -gt 0 ] || return 1
	rnd ${#used[@]}
	N=${used[$R]}
}
# deleting NAME OP: OP was refused, as the store documents, because a
# folder NAME deleted locally is not deleted on the server yet (nothing
# was accepted, so nothing to model)
deleting() {
	[ "$(cat "$WORK/op.err")" = "cpmsync-op: $2: folder \"$1\" is still being deleted: the deletion must reach the server first" ] || return 1
	echo "#   $2 $1 refused: its deletion has not reached the server yet"
}
l_folder() {
	local old k x keep=()
	rnd 3
	if [ $R -eq 0 ] && l_free; then
		if ! op mkdir a "$N" >/dev/null 2>"$WORK/op.err"; then
			deleting "$N" mkdir && return 0
			not_ok "(c) op mkdir $N: $(cat "$WORK/op.err")"
			return 1
		fi
		echo "#   mkdir $N"
		LF+=("$N")
		l_store "$N"
	elif [ $R -eq 1 ] && l_used; then
		old=$N
		l_free || return 0
		if ! op rename a "$old" "$N" 2>"$WORK/op.err"; then
			deleting "$N" rename && return 0
			not_ok "(c) op rename $old $N: $(cat "$WORK/op.err")"
			return 1
		fi
		echo "#   rename $old -> $N"
		for x in "${LF[@]}"; do [ "$x" != "$old" ] && keep+=("$x"); done
		LF=("${keep[@]}" "$N")
		for k in "${!M[@]}"; do
			[ "${k%%$'\t'*}" = "$old" ] || continue
			M["$N"$'\t'"${k#*$'\t'}"]=${M[$k]}
			unset 'M[$k]'
		done
	elif l_used; then
		op rmdir a "$N" || { not_ok "(c) op rmdir $N"; return 1; }
		echo "#   rmdir $N"
		for x in "${LF[@]}"; do [ "$x" != "$N" ] && keep+=("$x"); done
		LF=("${keep[@]}")
		for k in "${!M[@]}"; do [ "${k%%$'\t'*}" = "$N" ] && unset 'M[$k]'; done
	fi
	return 0
}

# The other client, between the runs: its own messages and folders only.
# SRVM: "FOLDER<TAB>MESSAGE-ID" of what it saved (stale once its folder was
# renamed or deleted, or the message expunged: then skipped).
SRVM=()
srv_pick() { # -> SF (folder), SU (uid); 1 if none
	local e
	[ ${#SRVM[@]} -gt 0 ] || return 1
	rnd ${#SRVM[@]}
	e=${SRVM[$R]}
	SF=${e%%$'\t'*}
	SU=$(da search -u "$USER1" mailbox "$SF" header message-id "${e#*$'\t'}" 2>/dev/null | awk '{print $2}' | tail -n 1)
	[ -n "$SU" ]
}
srv_save() { # [FOLDER [SIZE]]
	local f=${1:-} folders
	if [ -z "$f" ]; then
		mapfile -t folders < <(selectable_folders "$USER1")
		rnd ${#folders[@]}
		f=${folders[$R]}
	fi
	NSRV=$((NSRV + 1))
	msg_save "$USER1" "$f" "<srv.$NSRV.$SEED@crash.test>" "${2:-$((200 + RANDOM % 20000))}" &&
		SRVM+=("$f"$'\t'"<srv.$NSRV.$SEED@crash.test>")
}
srv_change() {
	local x how used=() free=()
	rnd 10
	if [ $R -lt 4 ]; then
		srv_save
	elif [ $R -lt 6 ]; then
		srv_pick || return 0
		rnd ${#CFLAGS[@]}
		x=${CFLAGS[$R]}
		rnd 2
		if [ $R -eq 0 ]; then how=add; else how=remove; fi
		da flags "$how" -u "$USER1" "$x" mailbox "$SF" uid "$SU"
	elif [ $R -lt 8 ]; then
		srv_pick || return 0
		da expunge -u "$USER1" mailbox "$SF" uid "$SU"
	else
		mapfile -t FOLDERS < <(selectable_folders "$USER1")
		for x in "${SPOOL[@]}"; do
			if in_list "$x" "${FOLDERS[@]}"; then used+=("$x"); else free+=("$x"); fi
		done
		rnd 3
		if [ $R -eq 0 ] && [ ${#free[@]} -gt 0 ]; then
			rnd ${#free[@]}
			echo "#   the other client: create ${free[$R]}"
			da mailbox create -u "$USER1" "${free[$R]}" && srv_save "${free[$R]}"
		elif [ $R -eq 1 ] && [ ${#used[@]} -gt 0 ] && [ ${#free[@]} -gt 0 ]; then
			echo "#   the other client: rename ${used[0]} -> ${free[0]}"
			da mailbox rename -u "$USER1" "${used[0]}" "${free[0]}"
		elif [ ${#used[@]} -gt 0 ]; then
			echo "#   the other client: delete ${used[0]}"
			da mailbox delete -u "$USER1" "${used[0]}"
		fi
	fi
}

check "(c) sync before the campaign" clean_run c-pre
for ((i = 0; i < 6; i++)); do l_store; done
NC=$((NKILLS - KILLS))
[ $NC -lt ${#KINDS[@]} ] && NC=${#KINDS[@]}
k0=$KILLS
declare -A AIMED=()
# all_aimed: every kind has had a run killed after its first command of it
all_aimed() {
	local k
	for k in "${KINDS[@]}"; do [ "${AIMED[$k]:-0}" -ge 1 ] || return 1; done
}
# next_kind: the kinds in turn; once NC runs are killed, only the kinds not
# hit yet (a run may end before its kill lands: a STORE is over in ms).
next_kind() {
	local k
	if [ $((KILLS - k0)) -ge "$NC" ]; then
		for k in "${KINDS[@]}"; do
			[ "${AIMED[$k]:-0}" -ge 1 ] || {
				echo "$k"
				return
			}
		done
	fi
	echo "${KINDS[$((i % ${#KINDS[@]}))]}"
}
for ((i = 1; i <= 2 * NC + 30; i++)); do
	[ $((KILLS - k0)) -ge "$NC" ] && all_aimed && break
	kind=$(next_kind)
	# the other client
	rnd 3
	nsrv=$((R + 1))
	for ((n = 0; n < nsrv; n++)); do srv_change || echo "    (a server change failed)"; done
	# the local changes, mostly of the kind aimed at
	case $kind in
	BODY)
		rnd ${#LF[@]}
		f=${LF[$R]}
		for ((n = 0; n < 4; n++)); do srv_save "$f" $((20000 + RANDOM % 60000)) || echo "    (a server save failed)"; done
		;;
	APPEND) for ((n = 0; n < 6; n++)); do l_store; done ;;
	COPY) for ((n = 0; n < 5; n++)); do l_copy copy; done ;;
	MOVE) for ((n = 0; n < 5; n++)); do l_copy move; done ;;
	STORE) for ((n = 0; n < 12; n++)); do l_flags; done ;;
	EXPUNGE) for ((n = 0; n < 3; n++)); do l_expunge; done ;;
	FOLDER) for ((n = 0; n < 3; n++)); do l_folder; done ;;
	esac
	rnd 4
	case $R in
	0) l_store ;; 1) l_flags ;; 2) l_copy copy ;; 3) l_copy move ;;
	esac
	k=$KILLS
	# soon after: a single command of a kind is over in milliseconds
	if [ "$kind" = BODY ]; then kmax=80; else kmax=25; fi
	kill_at "c-kill$i" "$kind" "$kmax"
	[ $KILLS -gt $k ] && AIMED[$kind]=$((${AIMED[$kind]:-0} + 1))
	check "(c) run $i ($kind): store intact and readable, nothing twice" store_sane nodiff
done
echo "# (c) campaign: $((KILLS - k0)) runs killed in $((i - 1)) rounds, $NSTORE local stores, $NSRV server appends"
check "(c) $NC runs killed ($((KILLS - k0)))" test $((KILLS - k0)) -ge "$NC"
for kind in "${KINDS[@]}"; do
	check "(c) a run killed after its first $kind command (${AIMED[$kind]:-0})" test "${AIMED[$kind]:-0}" -ge 1
done
check "(c) a clean run after the kills succeeds" clean_run c-final
check "(c) store equals the server" compare "$DB"
check "(c) every stored body reads back whole" op bodies a
check "(c) nothing pending" test -z "$(op pending a)"

# lost: a model message not on the server as wanted (folder, flags), or a
# local folder change missing; duplicated: a Message-ID of the campaign more
# often on the server than wanted.
server_dump "$USER1" >"$WORK/c.final"
for k in "${!M[@]}"; do printf '%s\t%s\t%s\n' "${k%%$'\t'*}" "${M[$k]}" "${k#*$'\t'}"; done |
	LC_ALL=C sort >"$WORK/c.want"
awk -F'\t' '$5 ~ /^<(c|srv)\./ { print $2 "\t" $4 "\t" $5 }' "$WORK/c.final" | LC_ALL=C sort >"$WORK/c.have"
grep -P '\t<c\.' "$WORK/c.have" >"$WORK/c.have.local" || true
missing=$(LC_ALL=C comm -23 "$WORK/c.want" "$WORK/c.have.local")
extra=$(LC_ALL=C comm -13 "$WORK/c.want" "$WORK/c.have.local")
nlost=$(grep -c . <<<"$missing")
# per Message-ID: how often on the server, how often wanted (a <srv.> one: once)
read -r ndup nstale < <(cut -f3 "$WORK/c.have" | LC_ALL=C sort | uniq -c | awk '{print $2, $1}' |
	LC_ALL=C join -a 1 -e 0 -o 0,1.2,2.2 - <(cut -f3 "$WORK/c.want" | LC_ALL=C sort | uniq -c | awk '{print $2, $1}') |
	awk '$1 ~ /^<srv\./ { if ($2 > 1) d += $2 - 1; next }
		$3 == 0 { s += $2; next }
		$2 > $3 { d += $2 - $3 }
		END { print d + 0, s + 0 }')
nfold=0
mapfile -t FOLDERS < <(selectable_folders "$USER1")
for x in "${LPOOL[@]}"; do
	a=0 b=0
	in_list "$x" "${LF[@]}" && a=1
	in_list "$x" "${FOLDERS[@]}" && b=1
	if [ $a != $b ]; then
		nfold=$((nfold + 1))
		echo "    folder '$x': wanted $([ $a = 1 ] && echo present || echo absent), the server has it $([ $b = 1 ] && echo present || echo absent)"
	fi
done
[ -n "$missing" ] && echo "    not on the server as wanted: $(head -n 5 <<<"$missing" | tr '\t\n' ' ;')"
[ -n "$extra" ] && echo "    on the server, not wanted: $(head -n 5 <<<"$extra" | tr '\t\n' ' ;')"
check "(c) all ${#M[@]} model messages on the server as wanted ($nlost not)" test "$nlost" -eq 0
check "(c) no message expunged locally left on the server ($nstale)" test "$nstale" -eq 0
check "(c) local folder changes on the server ($nfold not)" test "$nfold" -eq 0
check "(c) no message twice on the server ($ndup)" test "$ndup" -eq 0
LOST=$((LOST + nlost + nstale + nfold)) DUPS=$((DUPS + ndup))

# --- the figures ----------------------------------------------------------------
by=
for kind in "${KINDS[@]}" OTHER; do
	by="$by, $kind ${BYKIND[$kind]:-0} (${UNANSWERED[$kind]:-0} unanswered)"
done
echo "# kills by the last command sent: ${by#, }"
echo "# stress crash: kills $KILLS, lost $LOST, duplicated $DUPS, hung $HUNG, time $(($(date +%s) - T_START)) s"
check "$NKILLS runs killed in all ($KILLS)" test "$KILLS" -ge "$NKILLS"
check "nothing lost ($LOST), nothing duplicated ($DUPS), no run hung ($HUNG)" \
	test $((LOST + DUPS + HUNG)) -eq 0

finish
