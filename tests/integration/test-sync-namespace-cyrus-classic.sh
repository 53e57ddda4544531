#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-namespace.sh against Cyrus IMAP 3.6 in the classic namespace
# (tests/cyrus/cyrus-ctl.sh): personal prefix "INBOX.", delimiter '.'.
SERVER=cyrus-classic exec "$(dirname "$0")/test-sync-namespace.sh" "$@"
