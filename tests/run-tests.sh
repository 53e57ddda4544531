#!/usr/bin/env bash
# Runs test programs and scripts, prints their output, and ends with one
# summary line counting individual checks: Check suites report
# "Checks: N, Failures: F, Errors: E", other tests print "N passed, N failed".
# A test that exits non-zero without a count counts as one failure.
#
# RUN_JOBS=N runs up to N tests at once (default 1). Each test's output is
# kept apart and printed whole, in the order given, as soon as it and every
# test before it have ended, so the log reads the same as a serial run.
# Tests whose file name is in RUN_ALONE (space-separated base names) run with
# nothing else running: the ones that assert on latency.
# Each test's wall time is printed after its output, the slowest at the end.
set -u
passed=0 failed=0 broken=()
export MALLOC_PERTURB_=${MALLOC_PERTURB_:-165}
export ASAN_OPTIONS=${ASAN_OPTIONS:-strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
jobs_max=${RUN_JOBS:-1}
case $jobs_max in
'' | *[!0-9]* | 0)
	echo "run-tests.sh: RUN_JOBS must be a number >= 1, not '$jobs_max'" >&2
	exit 2
	;;
esac
alone=" ${RUN_ALONE:-} "
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# run_one I TEST: runs TEST with its output in $dir/I.log, then writes its
# status and wall time (ms) to $dir/I.rc and $dir/I.ms (rc last: it marks the end).
run_one() {
	local i=$1 t=$2 start rc
	start=$(date +%s%N)
	case $t in
	*/fuzz/fuzz-*)
		"$t" tests/fuzz/corpus/"$(basename "$t")" >"$dir/$i.log" 2>&1
		;;
	*)
		"$t" >"$dir/$i.log" 2>&1
		;;
	esac
	rc=$?
	echo $((($(date +%s%N) - start) / 1000000)) >"$dir/$i.ms"
	echo "$rc" >"$dir/$i.rc"
}

# report I TEST: prints the test's output and adds its counts.
report() {
	local i=$1 t=$2 log="$dir/$1.log" rc ms p=0 f=0 line check_line plain_line
	rc=$(cat "$dir/$i.rc") ms=$(cat "$dir/$i.ms")
	echo "=== $t"
	cat "$log"
	check_line=$(grep -E 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" | tail -n 1)
	plain_line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -n "$check_line" ]; then
		line=$check_line
		n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
		fl=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
		er=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
		f=$((fl + er)) p=$((n - f))
	elif [ -n "$plain_line" ]; then
		line=$plain_line
		p=$(sed -E 's/^([A-Za-z-]+: )?([0-9]+) passed.*/\2/' <<<"$line")
		f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
	elif [ "$rc" -eq 0 ]; then
		p=1
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	printf -- '--- %s: %d.%01d s\n' "$t" $((ms / 1000)) $((ms % 1000 / 100))
	printf '%d %s\n' "$ms" "$t" >>"$dir/times"
	[ "$f" -ne 0 ] && broken+=("$t")
	passed=$((passed + p)) failed=$((failed + f))
}

tests=("$@")
next=0    # the first test not yet reported
running=0 # tests started and not yet reaped
# flush: reports, in order, every finished test from $next on.
flush() {
	while [ "$next" -lt ${#tests[@]} ] && [ -e "$dir/$next.rc" ]; do
		report "$next" "${tests[$next]}"
		next=$((next + 1))
	done
}
reap_one() {
	wait -n
	running=$((running - 1))
	flush
}
for i in "${!tests[@]}"; do
	t=${tests[$i]}
	if [[ $alone == *" $(basename "$t") "* ]]; then
		while [ "$running" -gt 0 ]; do reap_one; done
		run_one "$i" "$t"
		flush
		continue
	fi
	while [ "$running" -ge "$jobs_max" ]; do reap_one; done
	run_one "$i" "$t" &
	running=$((running + 1))
done
while [ "$running" -gt 0 ]; do reap_one; done
flush

echo
if [ -s "$dir/times" ]; then
	echo "slowest:"
	sort -rn "$dir/times" | head -n 8 |
		while read -r ms t; do printf '  %5d.%01d s  %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$t"; done
fi
if [ ${#broken[@]} -gt 0 ]; then
	echo "FAILED:"
	printf '  %s\n' "${broken[@]}"
fi
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
