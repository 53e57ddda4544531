#!/usr/bin/env bash
# Runs test programs and scripts, prints their output, and ends with one
# summary line counting individual checks: Check suites report
# "Checks: N, Failures: F, Errors: E", other tests print "N passed, N failed".
# A test that exits non-zero without a count counts as one failure.
set -u
passed=0 failed=0 broken=()
export MALLOC_PERTURB_=${MALLOC_PERTURB_:-165}
export ASAN_OPTIONS=${ASAN_OPTIONS:-strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "$@"; do
	echo "=== $t"
	case $t in
	*/fuzz/fuzz-*)
		name=$(basename "$t")
		"$t" tests/fuzz/corpus/"$name" >"$log" 2>&1
		;;
	*)
		"$t" >"$log" 2>&1
		;;
	esac
	rc=$?
	cat "$log"
	p=0 f=0
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
	elif [ $rc -eq 0 ]; then
		p=1
	fi
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	[ "$f" -ne 0 ] && broken+=("$t")
	passed=$((passed + p)) failed=$((failed + f))
done
echo
if [ ${#broken[@]} -gt 0 ]; then
	echo "FAILED:"
	printf '  %s\n' "${broken[@]}"
fi
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
