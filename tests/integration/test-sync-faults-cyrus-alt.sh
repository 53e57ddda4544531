#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-faults.sh against Cyrus IMAP 3.6 in the alt namespace
# (tests/cyrus/cyrus-ctl.sh).  SERVER=cyrus-classic runs it in the classic
# namespace too (Big is found by name), but is not part of make check: 577 s
# at load 20-25, against 270 s for Dovecot.
SERVER=cyrus-alt exec "$(dirname "$0")/test-sync-faults.sh" "$@"
