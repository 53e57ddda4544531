#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-convergence.sh against Cyrus IMAP 3.6 in the alt namespace
# (tests/cyrus/cyrus-ctl.sh), so that `make check` runs it on both servers.
SERVER=cyrus-alt exec "$(dirname "$0")/test-sync-convergence.sh" "$@"
