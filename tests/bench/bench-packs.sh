#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Benchmark: the disk space pack files keep after deletions (store-pack.c:
# a body that goes is punched out, with the blocks it shares with a
# neighbour that went before it).  Run on demand (not by make check):
#
#   make all tests && tests/bench/bench-packs.sh [N]
#   OLD=build/old tests/bench/bench-packs.sh      (an older build beside,
#                                                  with tests/tools/pack-churn)
#
# For each scenario (ROUNDS rounds of PERCENT % deleted: 100x1, 10x10,
# 300x1, 1x50) it runs tests/tools/pack-churn on a new store of N messages
# (default 20000) with bodies of 4 KiB + 1 to 20 KiB, and prints the live
# bytes, the bytes the packs take on the disk, the waste ((allocated -
# live) / live) and the bytes written per deleted message, for B and OLD.
#
# Environment: B (build dir, default build), OLD (a second build dir),
# SEED (default 1), KEEP=1 keeps the work directory, BENCH_TMP (parent of
# the work directory, default /tmp; it needs about N x 13 KiB).
set -euo pipefail

BENCH=bench-packs
. "$(dirname "$0")/lib-bench.sh"
OLD=${OLD:-}
if [ -n "$OLD" ]; then
	case $OLD in /*) ;; *) OLD=$TOP/$OLD ;; esac
fi
N=${1:-20000}
if ! [[ $N =~ ^[0-9]+$ ]] || [ "$N" -lt 100 ]; then
	die "usage: $0 [N >= 100]"
fi
SEED=${SEED:-1}
[[ $SEED =~ ^[0-9]+$ ]] || die "SEED must be a number"

builds=("$B")
[ -n "$OLD" ] && builds+=("$OLD")
for b in "${builds[@]}"; do
	[ -x "$b/tests/tools/pack-churn" ] || die "no $b/tests/tools/pack-churn (make B=... all tests)"
done
bench_work bench-packs

printf '%-28s %-8s %10s %10s %7s %14s\n' build scenario "live MB" "disk MB" waste "written/del"
for scenario in 100x1 10x10 300x1 1x50; do
	rounds=${scenario%x*}
	percent=${scenario#*x}
	for b in "${builds[@]}"; do
		rm -rf "$WORK/store.db" "$WORK/store.db-packs" "$WORK/store.db-wal" "$WORK/store.db-shm"
		out=$("$b/tests/tools/pack-churn" "$WORK/store.db" "$N" "$rounds" "$percent" "$SEED") ||
			die "pack-churn failed in $b"
		line=$(tail -n 1 <<<"$out")
		read -r _ _ _ live _ alloc _ waste _ _ _ written <<<"$line"
		awk -v b="${b#"$TOP"/}" -v sc="$scenario" -v l="$live" -v a="$alloc" -v w="$waste" \
			-v d="${written%/deleted}" \
			'BEGIN { printf "%-28s %-8s %10.1f %10.1f %7s %14s\n", b, sc, l / 1e6, a / 1e6, w, d }'
	done
done
