#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-faults.sh against Cyrus IMAP 3.6 in the classic namespace
# (tests/cyrus/cyrus-ctl.sh): the suite finds the name the store gives the
# server's folder Big (INBOX/Big while namespaces are not mapped).
SERVER=cyrus-classic exec "$(dirname "$0")/test-sync-faults.sh" "$@"
