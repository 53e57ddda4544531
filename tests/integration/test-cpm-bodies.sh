#!/usr/bin/env bash
# CPM objects whose body comes after their header (issue 11), against a
# real Dovecot on a private bus, with sync_bodies = 1 (KiB): the engine
# stores every new object from its header first (BODY.PEEK[HEADER]), then
# fetches the bodies within the limit.  The body's CPM parse must be
# applied when it arrives: an IMDN report is not a chat message, it raises
# its original's Status (MessagesChanged on the original, ConversationChanged),
# and a chat message gets its Snippet; in the initial sync and when a report
# is delivered by another client while the daemon runs.  A body over the
# limit fetched on demand (Folder1.Fetch "") is kept in the store (contract
# "Online and offline"): it gets the same CPM parse, and the next Fetch
# works with the server stopped, with the same bytes.  MessagesChanged holds
# Id and what changed only: HasBody and Snippet for that chat message,
# HasBody alone for plain mail, Status alone for a report's original.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
dc_start dc

dbus_setup

F=org.cpmsync.Folder1
AC=org.cpmsync.Account1

# chat FILE MESSAGE-ID IMDN-MESSAGE-ID DIRECTION TIME [TEXT]: a CPIM chat message in conv-B
chat() {
	{
		printf 'Date: Sat, 5 Dec 2026 %s +0000\r\nMessage-ID: %s\r\n' "$5" "$2"
		printf 'From: tel:+15550100\r\nTo: tel:+15550300\r\n'
		printf 'Conversation-ID: conv-B\r\nIMDN-Message-ID: %s\r\nMessage-Direction: %s\r\n' "$3" "$4"
		printf 'MIME-Version: 1.0\r\nContent-Type: Message/CPIM\r\n\r\n'
		printf 'From: <tel:+15550100>\r\nTo: <tel:+15550300>\r\nNS: imdn <urn:ietf:params:imdn>\r\n\r\n'
		printf 'Content-Type: text/plain; charset=utf-8\r\n\r\nhello %s%s\r\n' "$3" "${6:-}"
	} >"$1"
}
# report FILE MESSAGE-ID ORIGINAL-IMDN-ID STATUS [PADDING]: the peer's IMDN report on it
# (PADDING: an XML comment of that many characters)
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
		printf '<%s-notification><status><%s/></status></%s-notification>' "$kind" "$4" "$kind"
		[ -n "${5:-}" ] && printf '<!-- %s -->' "$(head -c "$5" /dev/zero | tr '\0' x)"
		printf '</imdn>\r\n'
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
# Over the limit: a long chat message, and a display report on a third
# message padded with an XML comment.
chat "$WORK/big" "<b-big@cpm.test>" imdn-b-big received 06:00:30 " $(printf 'word %.0s' $(seq 600))"
chat "$WORK/m3" "<b-3@cpm.test>" imdn-b-3 sent 06:00:40
report "$WORK/r3" "<b-rep-3@cpm.test>" imdn-b-3 displayed 2000
for f in m1 r1 big m3 r3; do
	case $f in big | r3) [ "$(stat -c %s "$WORK/$f")" -gt 1024 ] || bail "$f is not over sync_bodies" ;;
	*) [ "$(stat -c %s "$WORK/$f")" -le 1024 ] || bail "$f is larger than sync_bodies" ;;
	esac
	da save -u "$USER1" -m Default/conv-B <"$WORK/$f" || bail "cannot save $f"
done
"$DBUS" monitor >"$WORK/signals.log" 2>&1 &
MON_PID=$!
sleep 0.2
# Plain mail over the limit, in INBOX: its body fetched on demand changes
# nothing but HasBody (no CPM parse).
msg_save "$USER1" INBOX "<mail-big@cpm.test>" 3000 || bail "cannot save <mail-big@cpm.test>"
start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "account reaches State idle" wait_state idle 20
BF=$(call "$A" "$AC" FindFolder s Default/conv-B) || bail "FindFolder Default/conv-B: $BF"

# summary MESSAGE-ID: the folder's summary dict of that message
summary() { call "$BF" "$F" ListMessages tu 0 1000 | grep -F -- ";MessageId=$1;"; }
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
check "conv-B counts 4 messages: not the first report; the one over the limit, from its header, for now" \
	bash -c "grep -q ';Messages=4;' <<<\"\$1\"" _ "$(conv_b)"

# --- bodies over the limit, fetched on demand --------------------------------------------------
check "over the limit: no body, Type message from the header, no Snippet" \
	has "<b-big@cpm.test>" ";Type=message;Status=;Snippet=;HasBody=false"
check "  a report over the limit counts as a message, its original has no Status" \
	bash -c "[[ \$1 == *';Type=message;Status=;'* && \$2 == *';Type=message;Status=;'* ]]" _ \
	"$(summary "<b-rep-3@cpm.test>")" "$(summary "<b-3@cpm.test>")"
id_of() { summary "$1" | grep -o '^- {Id=[0-9]*' | cut -d= -f2; }
BIG=$(id_of "<b-big@cpm.test>")
REP3=$(id_of "<b-rep-3@cpm.test>")
if [ -z "$BIG" ] || [ -z "$REP3" ]; then bail "no Id for the big objects"; fi
sigmark
call "$BF" "$F" Fetch ts "$BIG" "" >"$WORK/big.fetched"
check "Fetch '' of a body over the limit: the server's bytes" cmp "$WORK/big" "$WORK/big.fetched"
check "  kept in the store: HasBody true, the Snippet of its body" \
	has "<b-big@cpm.test>" ";Snippet=hello imdn-b-big word word" ";HasBody=true"
check "  MessagesChanged with HasBody=true" \
	eventually 5 saw_signal "^$BF $F MessagesChanged .*\\{Id=$BIG;HasBody=true;"
check "  ...holding Id and what changed only: HasBody and the Snippet (contract)" \
	saw_signal "^$BF $F MessagesChanged .*\\{Id=$BIG;HasBody=true;Snippet=hello imdn-b-big word[^;}]*\\}"
INBOXF=$(call "$A" "$AC" FindFolder s INBOX) || bail "FindFolder INBOX: $INBOXF"
MAILID=$(call "$INBOXF" "$F" ListMessages tu 0 1000 | grep -F -- ";MessageId=<mail-big@cpm.test>;" |
	grep -o '^- {Id=[0-9]*' | cut -d= -f2)
[ -n "$MAILID" ] || bail "no Id for <mail-big@cpm.test>"
check "plain mail over the limit: no body" \
	bash -c "'$DBUS' call '$INBOXF' $F GetMessage t $MAILID | grep -qx 'HasBody=false'"
sigmark
check "Fetch '' of it: exit 0" bash -c "'$DBUS' call '$INBOXF' $F Fetch ts $MAILID '' >/dev/null"
check "  MessagesChanged holds Id and HasBody only" \
	eventually 5 saw_signal "^$INBOXF $F MessagesChanged \\[\\{Id=$MAILID;HasBody=true\\}\\]\$"
call "$BF" "$F" Fetch ts "$REP3" "" >"$WORK/r3.fetched"
check "Fetch '' of a report over the limit: the server's bytes" cmp "$WORK/r3" "$WORK/r3.fetched"
check "  now Type imdn, Status displayed" has "<b-rep-3@cpm.test>" ";Type=imdn;Status=displayed;"
check "  and its original's Status is displayed" has "<b-3@cpm.test>" ";Type=message;Status=displayed;"
call "$BF" "$F" Fetch ts "$BIG" HEADER >"$WORK/big.header.online"

da stop >/dev/null 2>&1
check "server stopped: State leaves idle" \
	eventually 15 bash -c "[ \"\$('$DBUS' get $A $AC State)\" != idle ]"
call "$BF" "$F" Fetch ts "$BIG" "" >"$WORK/big.offline"
check "offline: Fetch '' of the kept body gives the same bytes" cmp "$WORK/big" "$WORK/big.offline"
call "$BF" "$F" Fetch ts "$BIG" HEADER >"$WORK/big.header.offline"
check "offline: Fetch HEADER of it as online" cmp "$WORK/big.header.online" "$WORK/big.header.offline"
check "offline: FetchFd '' of the report, the same bytes" \
	bash -c "'$DBUS' call '$BF' $F FetchFd ts $REP3 '' | cmp - '$WORK/r3'"
dovecot -c "$DOVECOT_CONF" || bail "cannot restart dovecot"
check "server back: State idle again" wait_state idle 30

# --- a report delivered by another client while the daemon runs ---------------------------------
chat "$WORK/m2" "<b-2@cpm.test>" imdn-b-2 sent 06:01:00
sigmark
da save -u "$USER1" -m Default/conv-B <"$WORK/m2" || bail "cannot save m2"
check "a new message: ConversationChanged with Messages=4" \
	eventually 10 saw_signal "^$A $AC ConversationChanged .*ConversationId=conv-B;.*Messages=4;"
ID2=$(summary "<b-2@cpm.test>" | grep -o '^- {Id=[0-9]*' | cut -d= -f2)
[ -n "$ID2" ] || bail "no Id for <b-2@cpm.test>"
report "$WORK/r2" "<b-rep-2@cpm.test>" imdn-b-2 delivered
sigmark
da save -u "$USER1" -m Default/conv-B <"$WORK/r2" || bail "cannot save r2"
check "a delivery report by another client: MessagesChanged on its original, Status delivered" \
	eventually 10 saw_signal "^$BF $F MessagesChanged .*\\{Id=$ID2;Status=delivered\\}"
check "  and ConversationChanged with it in LastMessage, still 4 messages" \
	eventually 5 saw_signal "^$A $AC ConversationChanged .*ConversationId=conv-B;.*Messages=4;.*LastMessage=\\{.*MessageId=<b-2@cpm.test>;.*Status=delivered;"
check "  the report itself: Type imdn, Status delivered" \
	has "<b-rep-2@cpm.test>" ";Type=imdn;Status=delivered;"

# --- the last message's body fetched on demand -------------------------------------------------
# Its HasBody and Snippet show in conv-B's LastMessage: one ConversationChanged
# says so, and nothing else of conv-B changes after it.
# conv_said: the dict of the last ConversationChanged of conv-B since the sigmark
conv_said() { signals_since | grep -F "$AC ConversationChanged {ConversationId=conv-B;" | tail -n 1 | sed 's/^[^{]*//'; }
said_listed() { [ "$(conv_said)" = "$(conv_b | sed 's/^- //')" ]; }
chat "$WORK/m4" "<b-4@cpm.test>" imdn-b-4 received 06:02:00 " $(printf 'more %.0s' $(seq 600))"
[ "$(stat -c %s "$WORK/m4")" -gt 1024 ] || bail "m4 is not over sync_bodies"
sigmark
da save -u "$USER1" -m Default/conv-B <"$WORK/m4" || bail "cannot save m4"
check "a newer message over the limit: ConversationChanged with it in LastMessage, no body" \
	eventually 10 saw_signal "^$A $AC ConversationChanged .*ConversationId=conv-B;.*Messages=5;.*LastMessage=\\{.*MessageId=<b-4@cpm.test>;.*;Snippet=;HasBody=false;"
ID4=$(id_of "<b-4@cpm.test>")
[ -n "$ID4" ] || bail "no Id for <b-4@cpm.test>"
check "  and it says what ListConversations says" eventually 5 said_listed
sigmark
call "$BF" "$F" Fetch ts "$ID4" "" >/dev/null
check "its body fetched on demand: ConversationChanged with HasBody true and its Snippet" \
	eventually 5 saw_signal "^$A $AC ConversationChanged .*ConversationId=conv-B;.*LastMessage=\\{Id=$ID4;.*;Snippet=hello imdn-b-4 more [^;]*;HasBody=true;"
check "  the last one says what ListConversations says" eventually 5 said_listed
sleep 0.5
check "  one ConversationChanged of conv-B for it" \
	test "$(signals_since | grep -cF "$AC ConversationChanged {ConversationId=conv-B;")" = 1

finish
