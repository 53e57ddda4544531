#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-faults.sh against Cyrus IMAP 3.6 in the alt namespace
# (tests/cyrus/cyrus-ctl.sh); test-sync-faults-cyrus-classic.sh runs it in
# the classic namespace.
SERVER=cyrus-alt exec "$(dirname "$0")/test-sync-faults.sh" "$@"
