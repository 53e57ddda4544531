#!/usr/bin/env bash
# make fuzz-run SECONDS=N: runs every libFuzzer binary given on the command
# line (build/fuzz/fuzz-*) for N seconds, one after the other, and prints
# one line per target: executions, corpus size, findings.
#
# Each target starts from tests/fuzz/corpus/<target>/ (read only: the
# inputs libFuzzer finds go to build/fuzz/run/<target>/corpus/) and writes
# crashes, leaks and timeouts to build/fuzz/run/<target>/findings/
# ($FUZZ_OUT/<target>/ when set).  The
# exit status is 1 when any target had a finding or did not run.
set -u
secs=${FUZZ_SECONDS:-60}
out=${FUZZ_OUT:-build/fuzz/run}
total_find=0 failed=0
for bin in "$@"; do
	name=$(basename "$bin")
	dir=$out/$name
	rm -rf "$dir/findings"
	mkdir -p "$dir/corpus" "$dir/findings" || exit 1
	seeds=tests/fuzz/corpus/$name
	[ -d "$seeds" ] || seeds=
	dict=
	[ -f "tests/fuzz/$name.dict" ] && dict=-dict=tests/fuzz/$name.dict
	# shellcheck disable=SC2086 # $seeds and $dict are empty or one word
	"$bin" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 \
		-artifact_prefix="$dir/findings/" $dict "$dir/corpus" $seeds \
		>"$dir/log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
	find=$(find "$dir/findings" -type f | wc -l)
	ncorpus=$(find "$dir/corpus" -type f | wc -l)
	if [ -z "$execs" ] || { [ "$rc" -ne 0 ] && [ "$find" -eq 0 ]; }; then
		echo "$name: did not run (exit $rc), see $dir/log"
		failed=$((failed + 1))
		continue
	fi
	echo "$name: ${secs}s, $execs executions, $ncorpus new corpus inputs, $find findings"
	for f in "$dir"/findings/*; do
		[ -e "$f" ] && echo "  finding: $f"
	done
	total_find=$((total_find + find))
done
echo "fuzz-run: $# targets, $total_find findings, $failed did not run"
[ "$total_find" -eq 0 ] && [ "$failed" -eq 0 ]
