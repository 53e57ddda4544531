#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# test-sync-identity.sh against Cyrus IMAP 3.6 in the alt namespace
# (tests/cyrus/cyrus-ctl.sh): the server where UIDVALIDITY alone misleads.
SERVER=cyrus-alt exec "$(dirname "$0")/test-sync-identity.sh" "$@"
