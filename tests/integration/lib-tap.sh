#!/usr/bin/env bash
# The counting every integration script shares (lib-sync.sh sources it;
# scripts that start no sync server source it alone).  Not a test itself.
#
#   ok DESCRIPTION / not_ok DESCRIPTION   one check's result, counted
#   check DESCRIPTION COMMAND...          ok when COMMAND succeeds
#   expect DESCRIPTION GOT WANT           ok when GOT is WANT, else both in the line
#   finish                                "N passed, N failed" (after TAP_PREFIX,
#                                         lib-sync.sh's "SERVER: "), then exit,
#                                         0 only when none failed
passed=0 failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}
expect() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (got '$2', want '$3')"; fi
}
finish() {
	echo "${TAP_PREFIX:-}$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}
