#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Benchmark: the CPU of cpm-syncd's initial sync of many small messages
# (what a per-message cost in the engine's writes shows most), on demand,
# not by make check:
#
#   make all tests && tests/bench/bench-initial.sh [N [SIZE]]
#
# One folder Bench of N messages (default 20000) of SIZE bytes each
# (default 1024) on a throwaway Dovecot; `cpm-syncd --once` from an empty
# store BENCH_RUNS times (default 5), each run's user+sys CPU seconds, and
# their median.  BENCH_CALLGRIND=1 instead runs it once under
# valgrind --tool=callgrind and prints the instructions it executed (Ir):
# repeatable to a fraction of a percent, whatever else loads the machine.
# B: the build dir (default build); SYNCD: another cpm-syncd to compare.
set -euo pipefail

BENCH=bench-initial
. "$(dirname "$0")/lib-bench.sh"
SYNCD=${SYNCD:-$B/cpm-syncd}
CTL=$TOP/tests/dovecot/dovecot-ctl.sh
N=${1:-20000}
SIZE=${2:-1024}
RUNS=${BENCH_RUNS:-5}
if ! [[ $N =~ ^[1-9][0-9]*$ ]] || ! [[ $SIZE =~ ^[1-9][0-9]*$ ]] || [ "$SIZE" -lt 200 ]; then
	die "usage: $0 [N [SIZE >= 200]]"
fi
[ -x "$SYNCD" ] || die "$SYNCD missing: run make B=${B#"$TOP"/} all"

bench_work cpmsync-initial
DC=$WORK/dovecot
bench_dovecot

log "generating $N messages of $SIZE bytes"
dir=$DC/home/$USER1/Maildir/.Bench
dove mailbox create -u "$USER1" Bench
mkdir -p "$dir/cur"
awk -v n="$N" -v size="$SIZE" -v dir="$dir/cur" 'BEGIN {
	line = sprintf("%075d", 0)
	for (i = 1; i <= n; i++) {
		head = sprintf("From: a@example.org\nTo: b@example.org\nSubject: message %d\n" \
			"Date: Thu, 01 Jan 2026 00:00:00 +0000\nMessage-ID: <m%d@bench>\n\n", i, i)
		body = ""
		while (length(head) + length(body) + 76 <= size)
			body = body line "\n"
		f = sprintf("%s/%d.%d.bench:2,S", dir, 1767225600 + i, i)
		printf "%s%s", head, body > f
		close(f)
	}
}'
if [ "$(id -u)" -eq 0 ]; then
	chown -R "$MAIL_UID:$MAIL_GID" "$DC/home/$USER1/Maildir"
fi
dove force-resync -u "$USER1" Bench
got=$(dove -f flow mailbox status -u "$USER1" messages Bench | sed 's/.*messages=//')
[ "$got" = "$N" ] || die "Dovecot sees $got messages, not $N"

(umask 077 && printf '%s\n' "$PASS1" >"$WORK/alice.pw")
cat >"$WORK/cpm.conf" <<EOF
[general]
database = $WORK/store.db
outbox = $WORK/outbox

[account bench]
host = 127.0.0.1
port = $IMAP_PORT
security = none
user = $USER1
password_file = $WORK/alice.pw
folders = *
sync_bodies = all
EOF

fresh() { rm -rf -- "$WORK/store.db" "$WORK/store.db"-*; }
# A warm-up run: Dovecot's indexes and caches.
fresh
"$SYNCD" -c "$WORK/cpm.conf" --once --no-dbus >"$WORK/warm.log" 2>&1 ||
	die "cpm-syncd failed: $(tail -n 5 "$WORK/warm.log")"
[ "$(sqlite3 -readonly "$WORK/store.db" 'SELECT count(*) FROM message')" = "$N" ] ||
	die "the store does not hold $N messages"

if [ "${BENCH_CALLGRIND:-}" = 1 ]; then
	fresh
	valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
		"$SYNCD" -c "$WORK/cpm.conf" --once --no-dbus >"$WORK/cg.log" 2>&1 ||
		die "cpm-syncd under callgrind failed: $(tail -n 5 "$WORK/cg.log")"
	ir=$(sed -n 's/^summary: //p' "$WORK/cg.out")
	echo "$BENCH: N=$N SIZE=$SIZE Ir=$ir"
	[ -z "${BENCH_CG_KEEP:-}" ] || cp "$WORK/cg.out" "$BENCH_CG_KEEP"
	exit 0
fi

cpu=()
for ((i = 1; i <= RUNS; i++)); do
	fresh
	/usr/bin/time -f '%U %S' -o "$WORK/time" \
		"$SYNCD" -c "$WORK/cpm.conf" --once --no-dbus >"$WORK/run.log" 2>&1 ||
		die "cpm-syncd failed: $(tail -n 5 "$WORK/run.log")"
	cpu+=("$(awk '{ printf "%.2f", $1 + $2 }' "$WORK/time")")
done
median=$(printf '%s\n' "${cpu[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
echo "$BENCH: N=$N SIZE=$SIZE CPU (user+sys, s) runs: ${cpu[*]} median: $median"
