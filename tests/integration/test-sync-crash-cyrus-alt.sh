#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-crash.sh against Cyrus IMAP 3.6 in the alt namespace
# (tests/cyrus/cyrus-ctl.sh): the kills of the initial sync, the replay and
# the campaign on the other server.
SERVER=cyrus-alt exec "$(dirname "$0")/test-sync-crash.sh" "$@"
