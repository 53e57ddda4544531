#!/usr/bin/env bash
# make demo: a throwaway Dovecot with sample data on 127.0.0.1, an account
# for it, cpm-syncd run against it (--check, --once), then the daemon on a
# private session bus with cpmctl, a delivery arriving through push, and a
# CPM chat history (tests/data/cpm) as a conversation list and a chat view
# whose delivered/displayed status follows IMDN reports.  Everything lives in
# one temporary directory, removed (and Dovecot stopped) at the end.  Set KEEP=1 to leave
# the server running and print how to use it.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
WORK=$(mktemp -d /tmp/cpmsync-demo.XXXXXX)
chmod 0755 "$WORK"
DC=$WORK/dovecot
mkdir -p "$DC" "$WORK/config/cpmsync" "$WORK/data"
BUS_PID=
DAEMON_PID=
cleanup() {
	if [ -n "$DAEMON_PID" ]; then kill "$DAEMON_PID" 2>/dev/null || true; fi
	if [ -n "$BUS_PID" ]; then kill "$BUS_PID" 2>/dev/null || true; fi
	if [ -z "${KEEP:-}" ]; then
		"$TOP"/tests/dovecot/dovecot-ctl.sh stop "$DC" >/dev/null 2>&1 || true
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Starting a throwaway Dovecot in $DC"
"$TOP"/tests/dovecot/dovecot-ctl.sh start "$DC"
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

step "The daemon: cpm-syncd on a private session bus (never your own)"
dbus-daemon --session --fork --nopidfile --print-address=3 --print-pid=4 \
	3>"$WORK/bus.addr" 4>"$WORK/bus.pid"
BUS_PID=$(cat "$WORK/bus.pid")
DBUS_SESSION_BUS_ADDRESS=$(head -n 1 "$WORK/bus.addr")
export DBUS_SESSION_BUS_ADDRESS
"$TOP/$B/cpm-syncd" 2>"$WORK/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 100); do
	"$TOP/$B/cpmctl" status >/dev/null 2>&1 && break
	sleep 0.1
done
for _ in $(seq 100); do
	"$TOP/$B/cpmctl" status 2>/dev/null | grep -q 'idle' && break
	sleep 0.1
done
step "cpmctl status: the account, its state and how pushes arrive"
"$TOP/$B/cpmctl" status | sed 's/^/  /'
step "cpmctl folders demo"
"$TOP/$B/cpmctl" folders demo | sed 's/^/  /'
step "cpmctl list demo INBOX"
"$TOP/$B/cpmctl" list demo INBOX | sed 's/^/  /'

step "Push: another client delivers a message to INBOX; nobody asks for a sync"
"$TOP/$B/tests/tools/cpmsync-dbus" monitor 5 >"$WORK/signals.log" 2>&1 &
MON=$!
sleep 0.3
t0=$(date +%s%N)
printf 'From: carol@cpmsync.test\r\nSubject: pushed to you\r\nMessage-ID: <demo-push@cpmsync.test>\r\n\r\nhello\r\n' |
	da save -u "$USER1" -m INBOX
for _ in $(seq 100); do
	grep -q 'MessagesAdded.*demo-push' "$WORK/signals.log" && break
	sleep 0.05
done
t1=$(date +%s%N)
grep -m1 'MessagesAdded' "$WORK/signals.log" | cut -c1-200 | sed 's/^/  signal: /'
echo "  MessagesAdded arrived $(((t1 - t0) / 1000000)) ms after 'doveadm save' started (Dovecot 2.3 holds IDLE/NOTIFY news for 500 ms)"
kill "$MON" 2>/dev/null || true
"$TOP/$B/cpmctl" list demo INBOX | sed 's/^/  /'

step "A local change: flag the new message from cpmctl; the server sees it"
ID=$("$TOP/$B/cpmctl" list demo INBOX | awk -F'\t' '/pushed to you/ {print $1}')
"$TOP/$B/cpmctl" flag demo INBOX "$ID" +'\Flagged'
sleep 0.5
da fetch -u "$USER1" 'uid flags' mailbox INBOX header message-id '<demo-push@cpmsync.test>' | sed 's/^/  server: /'

step "CPM: a chat history another device stored under Default/ (the OMA CPM folder model)"
CPM=$TOP/tests/data/cpm
PEER="Default/tel:+15551234567"
GROUP=Default/b9d3e6a0-group-47c1-8d2e-6f0a11c0ffee
for mb in Default "$PEER" "$GROUP" "$GROUP/grp-sess-0001"; do
	da mailbox create -u "$USER1" "$mb"
done
for f in chat-1to1-sent chat-1to1-received-qp imdn-delivered; do
	da save -u "$USER1" -m "$PEER" <"$CPM/$f.eml"
done
for f in group-session-1-info group-session-1-msg; do
	da save -u "$USER1" -m "$GROUP/grp-sess-0001" <"$CPM/$f.eml"
done
echo "  1-to-1 with tel:+15551234567 in $PEER: a sent message, a reply, a delivery report"
echo "  a group chat in $GROUP/grp-sess-0001: its session-info and one message"
"$TOP/$B/cpmctl" sync demo | sed 's/^/  /'

step "cpmctl conversations demo: the conversation list (newest first)"
"$TOP/$B/cpmctl" conversations demo | sed 's/^/  /'
CONV=$("$TOP/$B/cpmctl" conversations demo | awk -F'\t' '$2 == "tel:+15551234567" {print $1}')

step "cpmctl chat demo $CONV: the chat view (the sent message is delivered)"
"$TOP/$B/cpmctl" chat demo "$CONV" | sed 's/^/  /'

step "The peer reads it: a display report arrives by push; the same chat view"
da save -u "$USER1" -m "$PEER" <"$CPM/imdn-displayed.eml"
for _ in $(seq 60); do
	"$TOP/$B/cpmctl" chat demo "$CONV" | grep -q displayed && break
	sleep 0.1
done
"$TOP/$B/cpmctl" chat demo "$CONV" | sed 's/^/  /'

step "The daemon's log"
sed 's/^/  /' "$WORK/daemon.log"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true
DAEMON_PID=
kill "$BUS_PID" 2>/dev/null || true
BUS_PID=

if [ -n "${KEEP:-}" ]; then
	step "Left running: . $DC/env; XDG_CONFIG_HOME=$WORK/config XDG_DATA_HOME=$WORK/data $TOP/$B/cpm-syncd --once"
fi
