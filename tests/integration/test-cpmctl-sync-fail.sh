#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `cpmctl sync` of an account whose every sync fails the same way (the
# connection cut at each LIST, by imap-proxy): it reports the failure once
# the attempt its Sync started has failed, not after its --timeout.  The
# failed attempt moves State from syncing back to connecting with the same
# LastError as the one before; cpmctl took that for the start of another
# attempt and waited out the timeout (600 s by default: a tester waited it).
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
dc_start dc
proxy_start --fault cut --fault-connection 0 --after-pattern '* LIST ('
dbus_setup
CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")" || bail "mkdir $(dirname "$CONF")"
clear_conf "$CONF" "$WORK/store.db" "$PROXY_PORT"
start_daemon || bail "cpm-syncd did not take org.cpmsync (see $WORK/daemon.log)"

# failing: State connecting with a LastError (between failed attempts)
failing() { [ "$(acct State)" = connecting ] && [ -n "$(acct LastError)" ]; }
check "every sync fails: State connecting, with a LastError" eventually 20 failing
err=$(acct LastError)
echo "# LastError: $err"
# tries: the failed attempts the daemon logged so far
tries() { grep -c "a: $err; retrying in" "$WORK/daemon.log"; }
before=$(tries)
t0=$(date +%s%N)
"$CPMCTL" sync --timeout 30 a >"$WORK/sync.out" 2>&1
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "cpmctl sync exits 1 (exit $rc)" test "$rc" = 1
check "... after the attempt its Sync started failed too (failed attempts: $before, then $(tries))" \
	test "$(tries)" -gt "$before"
check "... within 10 s, not at its 30 s timeout ($ms ms)" test "$ms" -lt 10000
check "... naming the account and the error: $(head -c 200 "$WORK/sync.out")" \
	grep -qxF "cpmctl: a: $err" "$WORK/sync.out"
finish
