#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Benchmark: the event loop's latency while the IMAP client logs in with
# SCRAM-SHA-256 for the first time.  Run on demand (not by make check):
#
#   make all tests && tests/bench/bench-scram.sh [RUNS [ITERATIONS]]
#   B=build/other tests/bench/bench-scram.sh 10       (another build dir)
#
# tests/tools/scram-latency forks a small SCRAM server on a socketpair that
# asks for ITERATIONS rounds of PBKDF2 (default: SASL_SCRAM_MAX_ITERATIONS,
# the most the client accepts) and checks the proof, empties the
# SaltedPassword cache before each login (a first login every time), and
# runs a 1 ms timer on the client's loop.  Per login: its wall time, the
# longest gap between two ticks (how long the loop could not serve another
# account or D-Bus) and the ticks counted.  With PBKDF2 on the loop the gap
# is about the login's time; off the loop (issue 13) it is the machine's
# scheduling noise.  Informational: the exit status is 0 unless a login
# failed.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
case $B in /*) BDIR=$B ;; *) BDIR=$TOP/$B ;; esac
TOOL=$BDIR/tests/tools/scram-latency
[ -x "$TOOL" ] || {
	echo "bench-scram: missing $TOOL (make all tests)" >&2
	exit 1
}
echo "# $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
exec "$TOOL" "${1:-10}" ${2:+"$2"}
