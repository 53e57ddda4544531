#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-faults.sh against Cyrus IMAP 3.6 in the classic namespace
# (tests/cyrus/cyrus-ctl.sh), with FAULTS=8 instead of 12 to keep make
# check short: the 4 fixed faults, then random rounds until 8 in all.
export FAULTS=${FAULTS:-8}
SERVER=cyrus-classic exec "$(dirname "$0")/test-sync-faults.sh" "$@"
