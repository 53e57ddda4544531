#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `cpmctl sync` of an account whose every sync fails the same way (the
# connection cut at each LIST, by imap-proxy): it reports the failure once
# the attempt its Sync started has failed, not after its --timeout.  The
# failed attempt moves State from syncing back to connecting with the same
# LastError as the one before; cpmctl took that for the start of another
# attempt and waited out the timeout (600 s by default: a tester waited it).
# The same for an account the daemon stopped until its settings change.
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
# Each failed attempt is logged once, "a: sync failed: $err", then its
# retry, with -v too (the engine logged the same line a second time, and a
# debug line "a: sync failed (N bytes in, M out)" a third): the lines that
# start "a: sync failed", all of them that one, counted up to the last retry.
cp "$WORK/daemon.log" "$WORK/daemon.snap" || bail "cannot copy daemon.log"
per_try=$(awk -v f="cpm-syncd: a: sync failed: $err" -v t="cpm-syncd: a: $err; retrying in " '
	index($0, "cpm-syncd: a: sync failed") == 1 { nf++; if ($0 != f) other++ }
	index($0, t) == 1 { nt++; f_at_t = nf }
	END { print f_at_t + 0 "/" nt + 0 "/" other + 0 }' "$WORK/daemon.snap")
n=${per_try%%/*}
once_each() { [ "$per_try" = "$n/$n/0" ] && [ "$n" -gt 0 ]; }
check "the daemon logs each failed sync once, then its retry (failed/retried/other: $per_try)" \
	once_each

# --- an account the daemon stopped: its store holds another mailbox's change ---
# (engine_account_identity()).  Sync retries it at once and the store check
# fails again before any State change: no news, which cpmctl waited out to
# its --timeout.
BP=/org/cpmsync/b
bacct() { "$DBUS" get "$BP" org.cpmsync.Account1 "$1"; }
{ printf '%s\n' "$PASS2" >"$WORK/bob.pw" && chmod 0600 "$WORK/bob.pw"; } || bail "bob.pw"
{ printf '%s\n' "$PASS1" >"$WORK/alice.pw" && chmod 0600 "$WORK/alice.pw"; } || bail "alice.pw"
msg_save "$USER2" INBOX "<bob-stop@sync.test>" 300 || bail "cannot save bob's message"
printf '[account b]\nhost = localhost\nport = %s\nca_file = %s\nuser = %s\npassword_file = %s\n' \
	"$IMAPS_PORT" "$CA_FILE" "$USER2" "$WORK/bob.pw" >>"$CONF" || bail "cannot add account b"
b_idle() { [ "$(bacct State)" = idle ] && [ "$(bacct LastSync)" != 0 ]; }
check "account b ($USER2) added and synced" eventually 20 b_idle
bid=$("$CPMCTL" list b INBOX | awk -F'\t' 'NR == 1 { print $1 }')
check "b's message listed (id $bid)" test -n "$bid"
check "b offline" "$CPMCTL" online b off
check "a flag queued on it" "$CPMCTL" flag b INBOX "$bid" '+\Flagged'
sed -i "s/^user = $USER2\$/user = $USER1/; s|^password_file = $WORK/bob.pw\$|password_file = $WORK/alice.pw|" \
	"$CONF" || bail "cannot edit account b"
b_user() { [ "$(bacct User)" = "$USER1" ]; }
check "b now names $USER1 (reloaded)" eventually 10 b_user
check "b online" "$CPMCTL" online b on
b_stopped() { [ "$(bacct State)" = error ] && [ -n "$(bacct LastError)" ]; }
check "b stopped: State error" eventually 10 b_stopped
berr=$(bacct LastError)
echo "# LastError: $berr"
t0=$(date +%s%N)
"$CPMCTL" sync --timeout 30 b >"$WORK/sync-b.out" 2>&1
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "cpmctl sync b exits 1 (exit $rc)" test "$rc" = 1
check "... within 10 s, not at its 30 s timeout ($ms ms)" test "$ms" -lt 10000
check "... saying why: $(head -c 300 "$WORK/sync-b.out")" grep -qxF "cpmctl: b: $berr" "$WORK/sync-b.out"
check "... the store check: $USER2's change waits for $USER2" grep -qF \
	"the store holds the mail of $USER2@localhost with 1 local change not yet sent there" \
	"$WORK/sync-b.out"
finish
