#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-crash.sh against Cyrus IMAP 3.6 in the alt namespace
# (tests/cyrus/cyrus-ctl.sh), sized for make check: every phase, check and
# kind of kill of the Dovecot run, with fewer kills (12: 3 of the initial
# sync, 1 of the resync, 2 of the replay, the rest in the campaign, at least
# one per kind) and a Big folder of 600 messages of 4-64 KB instead of 3000
# of 1-16 KB (APPENDed with MULTIAPPEND).  The full campaign there:
#   SERVER=cyrus-alt CRASH_KILLS=100 tests/integration/test-sync-crash.sh
export CRASH_KILLS=${CRASH_KILLS:-12} CRASH_BIG=${CRASH_BIG:-600} CRASH_BIG_SCALE=${CRASH_BIG_SCALE:-4}
SERVER=cyrus-alt exec "$(dirname "$0")/test-sync-crash.sh" "$@"
