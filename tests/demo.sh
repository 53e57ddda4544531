#!/usr/bin/env bash
# make demo: a throwaway Dovecot with sample data on 127.0.0.1, an account
# for it, and cpm-syncd run against it.  Everything lives in one temporary
# directory, removed (and Dovecot stopped) at the end.  Set KEEP=1 to leave
# the server running and print how to use it.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
WORK=$(mktemp -d /tmp/cpmsync-demo.XXXXXX)
chmod 0755 "$WORK"
DC=$WORK/dovecot
mkdir -p "$DC" "$WORK/config/cpmsync" "$WORK/data"
cleanup() {
	if [ -z "${KEEP:-}" ]; then
		"$TOP"/tests/dovecot/dovecot-ctl.sh stop "$DC" >/dev/null 2>&1 || true
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Starting a throwaway Dovecot in $DC"
"$TOP"/tests/dovecot/dovecot-ctl.sh start "$DC"
# shellcheck disable=SC1091
. "$DC/env"
"$TOP"/tests/dovecot/dovecot-ctl.sh seed "$DC" >/dev/null
echo "alice's mailboxes on the server:"
"$TOP"/tests/dovecot/dovecot-ctl.sh doveadm "$DC" mailbox status -u "$USER1" "messages uidvalidity highestmodseq" '*' | sed 's/^/  /'

step "Writing the account to $WORK/config/cpmsync/cpmsync.conf"
printf '%s\n' "$PASS1" >"$WORK/config/cpmsync/demo.pw"
chmod 0600 "$WORK/config/cpmsync/demo.pw"
cat >"$WORK/config/cpmsync/cpmsync.conf" <<CONF
[general]
database = $WORK/data/store.db
outbox = $WORK/data/outbox

[account demo]
host = localhost
port = $IMAPS_PORT
security = tls
user = $USER1
password_file = demo.pw
ca_file = $CA_FILE
CONF
sed 's/^/  /' "$WORK/config/cpmsync/cpmsync.conf"

export XDG_CONFIG_HOME=$WORK/config XDG_DATA_HOME=$WORK/data
step "cpm-syncd --check: connect, verify the certificate, log in with SCRAM-SHA-256"
"$TOP/$B/cpm-syncd" --check
step "The same with -v: the protocol exchange (the password never appears)"
"$TOP/$B/cpm-syncd" -v --check demo 2>&1 | sed 's/^/  /'

da() { "$TOP"/tests/dovecot/dovecot-ctl.sh doveadm "$DC" "$@"; }
step "cpm-syncd --once: the first sync mirrors every folder into $WORK/data/store.db"
"$TOP/$B/cpm-syncd" --once
step "cpmctl dump: what the store holds (account, folder, UID, flags, Message-ID)"
"$TOP/$B/cpmctl" dump | sed 's/^/  /'

step "Changes on the server: a new message, a flag, an expunge, a new folder"
printf 'From: bob@cpmsync.test\r\nSubject: news\r\nMessage-ID: <demo-news@cpmsync.test>\r\n\r\nhi\r\n' |
	da save -u "$USER1" -m INBOX
da flags add -u "$USER1" '$Important' mailbox INBOX uid 3
da expunge -u "$USER1" mailbox Archive uid 1
da mailbox create -u "$USER1" "Reisen/2026"
step "cpm-syncd -v --once: QRESYNC brings only the changes (the IMAP commands)"
"$TOP/$B/cpm-syncd" -v --once 2>&1 | grep -E ' C: |: done' | grep -v redacted | sed 's/^/  /'
"$TOP/$B/cpmctl" dump | sed 's/^/  /'

step "A no-change run: one LIST-STATUS after login, no folder selected"
"$TOP/$B/cpm-syncd" -v --once 2>&1 | grep -E ' C: |: done' | grep -v redacted | sed 's/^/  /'

if [ -n "${KEEP:-}" ]; then
	step "Left running: . $DC/env; XDG_CONFIG_HOME=$WORK/config XDG_DATA_HOME=$WORK/data $TOP/$B/cpm-syncd --once"
fi
