#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-faults.sh against Cyrus IMAP 3.6 in the alt namespace
# (tests/cyrus/cyrus-ctl.sh).  Not in the classic namespace: the suite
# names local folders as the server does ("Big"), which there is INBOX/Big.
SERVER=cyrus-alt exec "$(dirname "$0")/test-sync-faults.sh" "$@"
