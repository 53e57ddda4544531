#!/usr/bin/env bash
# Crash safety: `cpm-syncd --once` killed with SIGKILL at random points must
# never lose, duplicate or corrupt anything; the next run converges.
#  (a) the initial sync of a folder of 3000 messages, killed 15 times after
#      growing random delays (during the fetch and later); after each kill the
#      store is readable and holds nothing the server does not have; then the
#      same on a resync after server-side changes; a final run equals the
#      server.
#  (b) replay: ~230 local changes queued with cpmsync-op (stores with unique
#      Message-IDs, flag changes, moves of new and old messages), runs killed
#      at random points, then a final run: every message exactly once on the
#      server, in the folder and with the flags wanted, store equals server,
#      nothing pending.
# CRASH_SEED=n reproduces the random choices; KEEP_WORK=1 keeps the temp dir.
set -u
# shellcheck source=lib-sync.sh
. "$(dirname "$0")/lib-sync.sh"
lib_init

SEED=${CRASH_SEED:-$((SRANDOM % 100000))}
echo "# CRASH_SEED=$SEED"
RANDOM=$SEED
dc_start dc
CONF=$WORK/crash.conf
DB=$WORK/crash.db
write_conf "$CONF" "$DB"
op() { "$OP" --db "$DB" "$@"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# ms_sleep MS
ms_sleep() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

KILLED=0 FINISHED=0
# killed_run TAG DELAY-MS: --once in the background, SIGKILL after DELAY-MS
killed_run() {
	local tag=$1 delay=$2 pid rc
	"$SYNCD" -c "$CONF" --once -v 2>"$WORK/$tag.log" &
	pid=$!
	BG_PIDS=("$pid")
	ms_sleep "$delay"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rc=$?
	BG_PIDS=()
	if [ $rc -eq 137 ]; then
		KILLED=$((KILLED + 1))
		echo "# $tag: killed after $delay ms ($(grep -c ' C: ' "$WORK/$tag.log") commands sent)"
	elif [ $rc -eq 0 ]; then
		FINISHED=$((FINISHED + 1))
		echo "# $tag: finished before the kill at $delay ms"
	else
		# a run after a crash must not fail: that is a finding in itself
		not_ok "$tag: run exited $rc before the kill: $(grep -v ' [CS]: ' "$WORK/$tag.log" | tail -n 2 | tr '\n' ' ')"
	fi
}

# store_sane [noflags|nodiff]: the store is readable and holds no message
# the server does not have (same folder, uid, flags, Message-ID; with
# noflags, flags are not compared: queued local flag changes may not have
# reached the server yet; with nodiff, not at all: the server changed since)
# and no (folder, uid) twice.  Messages not yet on the server (uid 0) are
# left out.
store_sane() {
	local extra dup fields=1-5
	[ "${1:-}" = noflags ] && fields=1,2,3,5
	if ! "$CPMCTL" dump --db "$DB" a >"$WORK/sane.local" 2>"$WORK/sane.err"; then
		# Killed before the store's schema was committed (it is made in
		# one transaction): it holds nothing, so nothing wrong.
		if [ "$(cat "$WORK/sane.err")" = "cpmctl: cannot open database '$DB': the store is empty (cpm-syncd stopped before creating it)" ]; then
			echo "    (store not created yet)"
			return 0
		fi
		echo "    cpmctl dump failed: $(head -c 300 "$WORK/sane.err")"
		return 1
	fi
	server_dump "$USER1" >"$WORK/sane.server"
	extra=$(awk -F'\t' '$3 != 0' "$WORK/sane.local" | cut -f"$fields" | LC_ALL=C sort |
		LC_ALL=C comm -23 - <(cut -f"$fields" "$WORK/sane.server" | LC_ALL=C sort))
	[ "${1:-}" = nodiff ] && extra=
	dup=$(cut -f2,3 "$WORK/sane.local" | awk -F'\t' '$2 != 0' | LC_ALL=C sort | uniq -d)
	if [ -n "$extra$dup" ]; then
		echo "    not on the server: $(head -n 5 <<<"$extra")"
		echo "    twice: $(head -n 5 <<<"$dup")"
		return 1
	fi
}

# --- (a) initial sync of a big folder, killed ---------------------------------
da mailbox create -u "$USER1" Big || bail "doveadm mailbox create Big"
if is_cyrus; then
	# Generated into a Maildir-like directory, then APPENDed in one session.
	md=$WORK/big-maildir
	mkdir -p "$md/cur"
else
	md=$(da mailbox path -u "$USER1" Big)
fi
[ -d "$md/cur" ] || bail "no Maildir for Big at $md"
# 3000 messages of 1-16 KB written straight into the Maildir (doveadm save
# takes ~30 ms per message); some \Seen, some \Flagged.
awk -v dir="$md/cur" -v n=3000 -v t="$(date +%s)" -v seed="$SEED" 'BEGIN {
	srand(seed); line = sprintf("%76s", ""); gsub(/ /, "x", line)
	for (i = 1; i <= n; i++) {
		fl = (i % 7 == 0 ? "F" : "") (i % 3 == 0 ? "S" : "")
		f = dir "/" t ".M" i "P" seed ".crashtest:2," fl
		k = 12 + int(rand() * 200)
		printf "From: gen@sync.test\r\nTo: alice@sync.test\r\nSubject: big %d\r\nMessage-ID: <big.%d@crash.test>\r\n\r\n", i, i > f
		for (j = 0; j < k; j++) printf "%s %d\r\n", line, j > f
		close(f)
	} }' || bail "generating the Maildir"
if is_cyrus; then
	da import-maildir -u "$USER1" Big "$md/cur" || bail "APPENDing the 3000 messages to Cyrus"
else
	chown -R "$MAIL_UID:$MAIL_GID" "$md"
fi
check "3000 messages in Big on the server" \
	test "$(da -f tab mailbox status -u "$USER1" messages Big | tail -n 1 | cut -f2)" = 3000
da flags add -u "$USER1" '$Work' mailbox Big uid 100:300

# How long a full initial sync takes here (into a scratch store): the kill
# delays are fractions of it.
write_conf "$WORK/ref.conf" "$WORK/ref.db"
t0=$(now_ms)
timeout 120 "$SYNCD" -c "$WORK/ref.conf" --once 2>"$WORK/ref.log" || bail "reference sync failed: $(tail -n 3 "$WORK/ref.log")"
T=$(($(now_ms) - t0))
echo "# a full initial sync takes $T ms"
rm -f "$WORK"/ref.db*

for ((i = 1; i <= 15; i++)); do
	# growing: up to i/12 of T, at least 5 ms, plus jitter
	d=$((5 + (T * i / 12) * (50 + RANDOM % 51) / 100))
	killed_run "a-kill$i" "$d"
	check "(a) kill $i: store readable, nothing the server lacks, nothing twice" store_sane
done
echo "# (a) initial sync: $KILLED runs killed, $FINISHED finished first"
check "(a) at least 5 of 15 runs were killed mid-way ($KILLED)" test "$KILLED" -ge 5
check "(a) a run after the kills succeeds" sync_once "$CONF" "$WORK/a-final.log"
check "(a) store equals the server" compare "$DB"

# Resync after server-side changes, killed.
da flags add -u "$USER1" '\Answered' mailbox Big uid 1:1500
da flags remove -u "$USER1" '\Seen' mailbox Big uid 1000:2000
da expunge -u "$USER1" mailbox Big uid 2500:2600
for ((i = 1; i <= 20; i++)); do
	msg_save "$USER1" Big "<late.$i@crash.test>" $((200 + RANDOM % 5000))
done
KILLED=0 FINISHED=0
for ((i = 1; i <= 6; i++)); do
	d=$((5 + i * (5 + RANDOM % 20)))
	killed_run "a-resync-kill$i" "$d"
	check "(a) resync kill $i: store readable, nothing twice" store_sane nodiff
done
echo "# (a) resync: $KILLED runs killed, $FINISHED finished first"
check "(a) resync after the kills succeeds" sync_once "$CONF" "$WORK/a-resync-final.log"
check "(a) resync: store equals the server" compare "$DB"

# --- (b) replay of queued local changes, killed -----------------------------
# The model of what the server must end up with: per Message-ID, the folder
# (FOLD) and the flags (FLG, bytewise sorted); ID = its current local id.
declare -A FOLD FLG ID
sort_flags() { tr ' ' '\n' | grep -v '^$' | LC_ALL=C sort -u | paste -sd ' '; }
TARGETS=(INBOX Archive "Entwürfe" "Big")
da mailbox create -u "$USER1" Archive "Entwürfe" || true
check "(b) sync before queueing" sync_once "$CONF" "$WORK/b-pre.log"
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
	id=$(op store a "$f" "$WORK/msg" "${fl[@]}") || { not_ok "(b) op store $i"; continue; }
	ID[$mid]=$id FOLD[$mid]=$f FLG[$mid]=$(printf '%s ' "${fl[@]}" | sort_flags)
	nops=$((nops + 1))
done
# 20 messages that are on the server already (in Big) join the model
server_dump "$USER1" >"$WORK/b.server"
for ((i = 1; i <= 20; i++)); do
	n=$((1 + RANDOM % 2400))
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
			FLG[$mid]=$(printf '%s %s' "${FLG[$mid]}" "$flag" | sort_flags)
		else
			op flags "${ID[$mid]}" -- "-$flag" >/dev/null || { not_ok "(b) op flags -$flag $mid"; continue; }
			FLG[$mid]=$(tr ' ' '\n' <<<"${FLG[$mid]}" | grep -vxF -- "$flag" | sort_flags)
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

KILLED=0 FINISHED=0
for ((i = 1; i <= 12; i++)); do
	d=$((5 + i * (5 + RANDOM % 15)))
	killed_run "b-kill$i" "$d"
	echo "#   $(op pending a | wc -l) journal rows left"
	check "(b) kill $i: store readable, nothing the server lacks, nothing twice" store_sane noflags
done
echo "# (b) replay: $KILLED runs killed, $FINISHED finished first"
check "(b) at least 3 of 12 runs were killed mid-way ($KILLED)" test "$KILLED" -ge 3
check "(b) a run after the kills succeeds" sync_once "$CONF" "$WORK/b-final.log"
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
check "(b) no Message-ID twice on the server" \
	test -z "$(awk -F'\t' '$5 ~ /crash\.test/ { print $5 }' "$WORK/b.final" | sort | uniq -d)"

finish
