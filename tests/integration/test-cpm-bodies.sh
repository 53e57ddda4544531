#!/usr/bin/env bash
# CPM objects whose body comes after their header (issue 11), against a
# real Dovecot on a private bus, with sync_bodies = 1 (KiB): the engine
# stores every new object from its header first (BODY.PEEK[HEADER]), then
# fetches the bodies within the limit.  The body's CPM parse must be
# applied when it arrives: an IMDN report is not a chat message, it raises
# its original's Status (MessagesChanged on the original, ConversationChanged),
# and a chat message gets its Snippet; in the initial sync and when a report
# is delivered by another client while the daemon runs.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
dc_start dc

MON_PID=
stop_all() {
	[ -n "$MON_PID" ] && kill "$MON_PID" 2>/dev/null
	[ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
	[ -n "$BUS_PID" ] && kill "$BUS_PID" 2>/dev/null
}
trap 'stop_all; lib_cleanup' EXIT
bus_start

F=org.cpmsync.Folder1
AC=org.cpmsync.Account1
call() { "$DBUS" call "$@"; }

# chat FILE MESSAGE-ID IMDN-MESSAGE-ID DIRECTION TIME: a CPIM chat message in conv-B
chat() {
	{
		printf 'Date: Sat, 5 Dec 2026 %s +0000\r\nMessage-ID: %s\r\n' "$5" "$2"
		printf 'From: tel:+15550100\r\nTo: tel:+15550300\r\n'
		printf 'Conversation-ID: conv-B\r\nIMDN-Message-ID: %s\r\nMessage-Direction: %s\r\n' "$3" "$4"
		printf 'MIME-Version: 1.0\r\nContent-Type: Message/CPIM\r\n\r\n'
		printf 'From: <tel:+15550100>\r\nTo: <tel:+15550300>\r\nNS: imdn <urn:ietf:params:imdn>\r\n\r\n'
		printf 'Content-Type: text/plain; charset=utf-8\r\n\r\nhello %s\r\n' "$3"
	} >"$1"
}
# report FILE MESSAGE-ID ORIGINAL-IMDN-ID STATUS: the peer's IMDN report on it
report() {
	local kind=delivery
	[ "$4" = displayed ] && kind=display
	{
		printf 'Date: Sat, 5 Dec 2026 06:05:00 +0000\r\nFrom: tel:+15550300\r\nTo: tel:+15550100\r\n'
		printf 'Message-ID: %s\r\nContent-Type: Message/CPIM\r\n' "$2"
		printf 'Conversation-ID: conv-B\r\nIMDN-Message-ID: rep-%s\r\n' "$3"
		printf 'Message-Direction: received\r\n\r\n'
		printf 'From: <tel:+15550300>\r\nTo: <tel:+15550100>\r\nNS: imdn <urn:ietf:params:imdn>\r\n\r\n'
		printf 'Content-Type: message/imdn+xml; charset=utf-8\r\nContent-Disposition: notification\r\n\r\n'
		printf '<?xml version="1.0" encoding="UTF-8"?>\r\n<imdn xmlns="urn:ietf:params:xml:ns:imdn">'
		printf '<message-id>%s</message-id><datetime>2026-12-05T06:05:00Z</datetime>' "$3"
		printf '<%s-notification><status><%s/></status></%s-notification></imdn>\r\n' \
			"$kind" "$4" "$kind"
	} >"$1"
}

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"
printf 'sync_bodies = 1\n' >>"$CONF"

# --- the initial sync: a message and its display report on the server ---------------------------
da mailbox create -u "$USER1" Default/conv-B || bail "cannot create Default/conv-B"
chat "$WORK/m1" "<b-1@cpm.test>" imdn-b-1 sent 06:00:00
report "$WORK/r1" "<b-rep-1@cpm.test>" imdn-b-1 displayed
for f in m1 r1; do
	[ "$(stat -c %s "$WORK/$f")" -le 1024 ] || bail "$f is larger than sync_bodies"
	da save -u "$USER1" -m Default/conv-B <"$WORK/$f" || bail "cannot save $f"
done
"$DBUS" monitor >"$WORK/signals.log" 2>&1 &
MON_PID=$!
sleep 0.2
sigmark() { SIGMARK=$(wc -l <"$WORK/signals.log"); }
saw_signal() { tail -n +$((SIGMARK + 1)) "$WORK/signals.log" | grep -qE "$1"; }
start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "account reaches State idle" wait_state idle 20
BF=$(call "$A" "$AC" FindFolder s Default/conv-B) || bail "FindFolder Default/conv-B: $BF"

# summary MESSAGE-ID: the folder's summary dict of that message
summary() { call "$BF" "$F" ListMessages tu 0 0 | grep -F -- ";MessageId=$1;"; }
has() { # has MESSAGE-ID TEXT...: its summary contains each TEXT
	local s t
	s=$(summary "$1")
	shift
	for t in "$@"; do
		case $s in *"$t"*) ;; *)
			echo "    no '$t' in: ${s:0:600}"
			return 1
			;;
		esac
	done
}
check "bodies kept within sync_bodies (HasBody)" \
	has "<b-rep-1@cpm.test>" ";HasBody=true"
check "the report, header first, is classified by its body: Type imdn, Status displayed" \
	has "<b-rep-1@cpm.test>" ";Type=imdn;Status=displayed;"
check "its original's Status is displayed, its Snippet from the body" \
	has "<b-1@cpm.test>" ";Type=message;Status=displayed;Snippet=hello imdn-b-1;"
conv_b() { call "$A" "$AC" ListConversations | grep -F -- "- {ConversationId=conv-B;"; }
check "conv-B counts one message (the report is not one)" \
	bash -c "grep -q ';Messages=1;' <<<\"\$1\"" _ "$(conv_b)"

# --- a report delivered by another client while the daemon runs ---------------------------------
chat "$WORK/m2" "<b-2@cpm.test>" imdn-b-2 sent 06:01:00
sigmark
da save -u "$USER1" -m Default/conv-B <"$WORK/m2" || bail "cannot save m2"
check "a new message: ConversationChanged with Messages=2" \
	eventually 10 saw_signal "^$A $AC ConversationChanged .*ConversationId=conv-B;.*Messages=2;"
ID2=$(summary "<b-2@cpm.test>" | grep -o '^- {Id=[0-9]*' | cut -d= -f2)
[ -n "$ID2" ] || bail "no Id for <b-2@cpm.test>"
report "$WORK/r2" "<b-rep-2@cpm.test>" imdn-b-2 delivered
sigmark
da save -u "$USER1" -m Default/conv-B <"$WORK/r2" || bail "cannot save r2"
check "a delivery report by another client: MessagesChanged on its original, Status delivered" \
	eventually 10 saw_signal "^$BF $F MessagesChanged .*\\{Id=$ID2;[^}]*Status=delivered"
check "  and ConversationChanged with it in LastMessage, still 2 messages" \
	eventually 5 saw_signal "^$A $AC ConversationChanged .*ConversationId=conv-B;.*Messages=2;.*LastMessage=\\{.*MessageId=<b-2@cpm.test>;.*Status=delivered;"
check "  the report itself: Type imdn, Status delivered" \
	has "<b-rep-2@cpm.test>" ";Type=imdn;Status=delivered;"

finish
