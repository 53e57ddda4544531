#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-move-cut.sh against Cyrus IMAP 3.6 in the alt namespace
# (tests/cyrus/cyrus-ctl.sh): the server of issue 12's duplicate after
# interrupted MOVEs (Cyrus makes a MOVE as COPY + EXPUNGE).
SERVER=cyrus-alt exec "$(dirname "$0")/test-sync-move-cut.sh" "$@"
