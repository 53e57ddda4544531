#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-convergence.sh against Cyrus IMAP 3.6 in the classic namespace
# (tests/cyrus/cyrus-ctl.sh), so that `make check` runs it on both servers.
SERVER=cyrus-classic exec "$(dirname "$0")/test-sync-convergence.sh" "$@"
