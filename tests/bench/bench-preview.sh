#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Benchmark: image previews as cpm-syncd makes them.  Run on demand (not by
# make check):
#
#   make all tests && tests/bench/bench-preview.sh [RUNS]     (default 20)
#   B=build/other tests/bench/bench-preview.sh 50             (another build dir)
#
# It makes two 12-megapixel (4000x3000) JPEGs with tests/tools/image-gen
# (libvips; a colour gradient with fine stripes): quality 75, 2.8 MB, about
# a phone photo's size, and quality 90, 12 MB, far heavier to decode than
# most photographs; then runs RUNS previews of each to
# 160x120 JPEG through tests/tools/preview-bench, which calls
# cpmsync_preview_image(): a memfd, fork + exec of cpm-preview with its
# resource limits and seccomp filter, shrink-on-load decode, scale,
# encode, reap.  Also, for comparison: the same image to PNG and WebP, a
# 12-megapixel PNG (no shrink-on-load for PNG), and a 200x150 JPEG (the
# helper's start-up cost alone).  Prints, per case: wall time per preview
# (min / median / max), the helper's CPU time per run and its peak RSS,
# the preview's size and dimensions (tests/tools/image-size).  The library
# keeps one helper started ahead of the next preview (a spare): the first
# and third lines pause 500 ms between previews, as between a user's, so
# that the spare is ready; "back to back" does not, and the next preview
# competes with the spare's start-up.  cpu_ms counts every helper started,
# spares included.  Last, the step before the helper for an image stored
# in a message: the 12 MB JPEG's 16 MB of base64 decoded (preview-bench
# --base64; the medians of the rounds, and CPU per decode).
#
# Old against new, in the same sitting (the machine's load changes from
# one minute to the next): OLD=build/main tests/bench/bench-preview.sh 10
# runs every case ROUNDS times (default 3) with each build in turn, RUNS
# previews a turn, and prints a line per build from all its runs (cpu_ms:
# the mean; rss_kib: the largest).  Each turn starts a fresh previewer, so
# its first preview has no spare, in both builds alike.
#
# Target (issue 12): a 12-megapixel JPEG to 160x120 in <= 150 ms locally.
# The "target" lines say PASS or MISS against the median, for each of the
# two JPEGs (informational:
# the exit status is 0 unless a step failed).  On a loaded machine the
# wall time includes waiting for a CPU; the helper's CPU time does not.
set -u -o pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
case $B in /*) BDIR=$B ;; *) BDIR=$TOP/$B ;; esac
RUNS=${1:-20}
ROUNDS=${ROUNDS:-3}
HELPER=$BDIR/cpm-preview
GEN=$BDIR/tests/tools/image-gen
PB=$BDIR/tests/tools/preview-bench
SIZE=$BDIR/tests/tools/image-size
BUILDS=("$BDIR")
if [ -n "${OLD:-}" ]; then
	case $OLD in /*) ODIR=$OLD ;; *) ODIR=$TOP/$OLD ;; esac
	BUILDS=("$ODIR" "$BDIR")
	for f in "$ODIR/cpm-preview" "$ODIR/tests/tools/preview-bench"; do
		[ -x "$f" ] || {
			echo "bench-preview: missing $f (OLD=$OLD)" >&2
			exit 1
		}
	done
else
	ROUNDS=1
fi
for f in "$HELPER" "$GEN" "$PB" "$SIZE"; do
	[ -x "$f" ] || {
		echo "bench-preview: missing $f (make all tests)" >&2
		exit 1
	}
done
WORK=$(mktemp -d /tmp/cpmsync-bench-preview.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

"$GEN" 4000 3000 "$WORK/12mp-q75.jpg[Q=75]" || exit 1
"$GEN" 4000 3000 "$WORK/12mp.jpg[Q=90]" || exit 1
"$GEN" 4000 3000 "$WORK/12mp.png" || exit 1
"$GEN" 200 150 "$WORK/small.jpg" || exit 1
echo "# $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); libvips $(pkg-config --modversion vips 2>/dev/null)"
echo "# input: 12mp-q75.jpg $(stat -c %s "$WORK/12mp-q75.jpg") bytes, 12mp.jpg (Q=90) $(stat -c %s "$WORK/12mp.jpg") bytes ($("$SIZE" "$WORK/12mp.jpg")), 12mp.png $(stat -c %s "$WORK/12mp.png") bytes"
printf '%-34s %8s %8s %8s %8s %9s %7s %s\n' case min_ms med_ms max_ms cpu_ms rss_kib bytes result

MEDIAN=
MEDIANS=()
run() { # NAME FILE FORMAT W H [PAUSE_MS]
	local out=$WORK/out stats b i tag
	local -A acc=()
	for ((i = 0; i < ROUNDS; i++)); do
		for b in "${BUILDS[@]}"; do
			stats=$("$b/tests/tools/preview-bench" "$b/cpm-preview" "$2" "$3" "$4" "$5" \
				"$RUNS" "$out" "${6:-0}") || {
				echo "bench-preview: $1 failed ($b)" >&2
				exit 1
			}
			# A build's preview-bench from before d8a74c0 prints no
			# per-run times: its rows would read 0.0.
			grep -q '^wall_ms_each ' <<<"$stats" || {
				echo "bench-preview: $1: $b/tests/tools/preview-bench prints no wall_ms_each" \
					"(a build from before d8a74c0: build OLD from d8a74c0 or later)" >&2
				exit 1
			}
			acc[$b]+="$stats"$'\n'
		done
	done
	for b in "${BUILDS[@]}"; do
		tag=$1
		if [ "${#BUILDS[@]}" -gt 1 ]; then
			if [ "$b" = "$BDIR" ]; then tag="$1 [new]"; else tag="$1 [old]"; fi
		fi
		# min, median (the upper one of an even count, as preview-bench), max
		stats=$(echo "${acc[$b]}" | awk '$1 == "wall_ms_each" { for (i = 2; i <= NF; i++) print $i }' |
			sort -n | awk '{ t[n++] = $1 } END { printf "%.1f %.1f %.1f", t[0], t[int(n / 2)], t[n - 1] }')
		stats+=" "$(echo "${acc[$b]}" | awk '
			$1 == "helper_cpu_ms_per_run" { cpu += $2; k++ }
			$1 == "helper_peak_rss_kib" && $2 > rss { rss = $2 }
			$1 == "preview_bytes" { bytes = $2 }
			END { printf "%.1f %d %d", cpu / k, rss, bytes }')
		read -r mn md mx cpu rss bytes <<<"$stats"
		printf '%-34s %8s %8s %8s %8s %9s %7s %s\n' "$tag" "$mn" "$md" "$mx" "$cpu" "$rss" \
			"$bytes" "$("$SIZE" "$out")"
		MEDIAN=$md
	done
	return 0
}
run "12MP JPEG Q75 -> JPEG 160x120" "$WORK/12mp-q75.jpg" image/jpeg 160 120 500
MEDIANS+=("2.8 MB (Q=75) $MEDIAN")
run "12MP JPEG Q90 -> JPEG 160x120" "$WORK/12mp.jpg" image/jpeg 160 120 500
MEDIANS+=("12 MB (Q=90) $MEDIAN")
run "  back to back (no pause)" "$WORK/12mp.jpg" image/jpeg 160 120 0
run "12MP JPEG -> PNG 160x120" "$WORK/12mp.jpg" image/png 160 120
run "12MP JPEG -> WebP 160x120" "$WORK/12mp.jpg" image/webp 160 120
run "12MP PNG -> JPEG 160x120" "$WORK/12mp.png" image/jpeg 160 120
run "200x150 JPEG -> JPEG 160x120" "$WORK/small.jpg" image/jpeg 160 120 500
# A stored message's image reaches the helper base64-decoded (16 MB of
# base64 for the 12 MB JPEG): that step alone, per build.
for ((i = 0; i < ROUNDS; i++)); do
	for b in "${BUILDS[@]}"; do
		"$b/tests/tools/preview-bench" --base64 "$WORK/12mp.jpg" "$RUNS" | sed "s|^|$b |" || {
			echo "bench-preview: --base64 failed ($b)" >&2
			exit 1
		}
	done
done >"$WORK/b64"
for b in "${BUILDS[@]}"; do
	tag="base64 of 12mp.jpg, decode"
	if [ "${#BUILDS[@]}" -gt 1 ]; then
		if [ "$b" = "$BDIR" ]; then tag="$tag [new]"; else tag="$tag [old]"; fi
	fi
	awk -v b="$b" -v tag="$tag" '$1 == b && $2 == "base64_ms_min" && (m == "" || $3 < m) { m = $3 }
		$1 == b && $2 == "base64_ms_median" { med = med " " $3 }
		$1 == b && $2 == "base64_cpu_ms_per_run" { c += $3; k++ }
		END { printf "%-34s %8s %8s %8s %8.1f   (medians of the rounds:%s)\n", tag, m, "", "", c / k, med }' \
		"$WORK/b64"
done
echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${MEDIANS[@]}"; do
	med=${m##* } # "2.8 MB (Q=75) 110.5" -> 110.5
	if awk -v m="$med" 'BEGIN { exit !(m <= 150) }'; then verdict=PASS; else verdict=MISS; fi
	echo "target 12MP JPEG of ${m% *} -> 160x120: median $med ms <= 150 ms: $verdict"
done
