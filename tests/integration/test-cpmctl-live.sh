#!/usr/bin/env bash
# cpmctl against a running cpm-syncd on a private dbus-daemon and a real
# Dovecot: fetch of a section (exact bytes), sync's exit status and reason
# when the server is down, one daemon per store (a second daemon and
# --once refused while `dump` still reads); RFC 2047 From, To and Subject
# and a KOI8-R text as list, GetMessage and search show them.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
# Dovecot's quota plugin (imap only: doveadm saves past it), with room for
# everything this test stores: an APPEND over it is refused with
# [OVERQUOTA], a refusal that may pass (sync with a change refused for now).
cat >"$WORK/quota.conf" <<'EOF'
protocol imap {
  mail_plugins = $mail_plugins quota imap_quota
}
plugin {
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage=1M
}
EOF
export DOVECOT_EXTRA_CONF=$WORK/quota.conf
dc_start dc
unset DOVECOT_EXTRA_CONF
dbus_setup

# run EXPECTED_EXIT ARGS... : cpmctl; stdout in $WORK/out, stderr in $WORK/err, exit in $rc
run() {
	local want=$1
	shift
	"$CPMCTL" "$@" >"$WORK/out" 2>"$WORK/err"
	rc=$?
	[ "$rc" -eq "$want" ] || {
		echo "    cpmctl $* exited $rc, not $want; stderr:"
		sed 's/^/    /' "$WORK/err"
		return 1
	}
}
# same FILE1 FILE2: byte for byte, with a diff when not
same() { cmp -s "$1" "$2" || { diff -u "$1" "$2" | head -n 20 | sed 's/^/    /'; return 1; }; }

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"

# A fixed two-part message: its header and parts are known byte for byte.
printf '%s\r\n' 'From: Tester <tester@sync.test>' 'To: Alice <alice@sync.test>' \
	'Subject: sections' 'Date: Sat, 28 Nov 2026 10:00:00 +0000' \
	'Message-ID: <sections@live.test>' 'MIME-Version: 1.0' \
	'Content-Type: multipart/mixed; boundary="b1"' '' >"$WORK/header.want"
printf '%s\r\n' '--b1' 'Content-Type: text/plain; charset=us-ascii' '' 'first part' \
	'--b1' 'Content-Type: text/plain; charset=us-ascii' '' 'second part' '--b1--' \
	>"$WORK/text.want"
cat "$WORK/header.want" "$WORK/text.want" >"$WORK/whole.want"
printf 'second part' >"$WORK/part2.want"
da save -u "$USER1" -m INBOX <"$WORK/whole.want" || bail "cannot save the message"
msg_save "$USER1" INBOX "<big@live.test>" 300000 || bail "cannot save the big message"

start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "account reaches State idle" wait_state idle 20

# --- fetch: whole message and sections, byte for byte ----------------------------------
run 0 list a INBOX
cp "$WORK/out" "$WORK/list"
ID=$(awk -F '\t' '$6 == "sections" { print $1 }' "$WORK/list")
check "list shows the message" test -n "$ID"
check "fetch: the whole message" bash -c "'$CPMCTL' fetch a INBOX '$ID' >'$WORK/got' && cmp -s '$WORK/got' '$WORK/whole.want'"
run 0 fetch a INBOX "$ID" HEADER
check "fetch HEADER: exit 0, the header and its blank line" same "$WORK/header.want" "$WORK/out"
run 0 fetch a INBOX "$ID" TEXT
check "fetch TEXT: the body after the blank line" same "$WORK/text.want" "$WORK/out"
run 0 fetch a INBOX "$ID" 2
check "fetch 2: the second part's content" same "$WORK/part2.want" "$WORK/out"

# --- --json on the listing commands: one object per line ---------------------------------
# json_check FILE PYTHON-EXPRESSION: every line parses; the expression over
# the list of objects L is true
json_check() {
	python3 -c 'import json, sys
L = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
ok = eval(sys.argv[2])
if not ok:
    print("    " + repr(L)[:400])
sys.exit(0 if ok else 1)' "$1" "$2"
}
run 0 status --json
check "status --json: the account with its properties" json_check "$WORK/out" \
	'L == [{"Name": "a", "State": "idle", "PushState": "notify", "PendingOperations": 0, "LastSync": L[0]["LastSync"], "Online": True, "LastError": ""}] and L[0]["LastSync"] > 0'
run 0 folders --json a
check "folders --json: every folder, sorted, with its counts" json_check "$WORK/out" \
	'L == [{"Name": "Drafts", "Messages": 0, "Unseen": 0}, {"Name": "INBOX", "Messages": 2, "Unseen": 2}, {"Name": "Sent", "Messages": 0, "Unseen": 0}, {"Name": "Trash", "Messages": 0, "Unseen": 0}]'
run 0 list --json a INBOX
check "list --json: the messages, as list prints them" json_check "$WORK/out" \
	'[(m["Id"], m["Subject"], m["MessageId"], m["Flags"], m["From"], m["Date"]) for m in L] == [('"$ID"', "sections", "<sections@live.test>", [], "Tester <tester@sync.test>", 1795860000), (L[1]["Id"], "test <big@live.test>", "<big@live.test>", [], "Tester <tester@sync.test>", 1795860000)] and all(m["Uid"] > 0 for m in L)'
run 2 fetch --json a INBOX "$ID"
check "fetch --json: bad usage (not a listing command)" grep -q '^Usage: cpmctl fetch' "$WORK/err"

# --- bash completion (agent/cpmctl.bash-completion) against the daemon -----------------------
# complete WORDS...: the completions of the last word, one a line
complete_words() {
	PATH=$BDIR:$PATH bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _cpmctl
		printf "%s\n" "${COMPREPLY[@]}"' - "$TOP/agent/cpmctl.bash-completion" "$@"
}
check "completion: commands from --help" test "$(complete_words cpmctl f | tr '\n' ' ')" = "folders fetch flag failed folder "
check "completion: accounts from status" test "$(complete_words cpmctl list '')" = a
check "completion: folders of the account" \
	test "$(complete_words cpmctl list a '' | tr '\n' ' ')" = "Drafts INBOX Sent Trash "
check "completion: --json for list" test "$(complete_words cpmctl list --j)" = --json
check "completion: folder's subcommands" test "$(complete_words cpmctl folder '' | tr '\n' ' ')" = "create rename delete "
check "completion: acl's subcommands" test "$(complete_words cpmctl acl m)" = myrights
check "completion: the account after a subcommand" test "$(complete_words cpmctl metadata get '')" = a
check "completion: folders for acl get ACCOUNT" \
	test "$(complete_words cpmctl acl get a '' | tr '\n' ' ')" = "Drafts INBOX Sent Trash "
check "completion: the destination of copy" test "$(complete_words cpmctl copy a INBOX 5 T)" = Trash
check "completion: metadata entries" test "$(complete_words cpmctl metadata get a INBOX /p)" = /private/comment
check "completion: search keys" test "$(complete_words cpmctl search a INBOX su)" = subject:
check "completion: pending's options" test "$(complete_words cpmctl pending -- | tr '\n' ' ')" = "--json --db --help "
check "completion: the new commands are offered" test "$(complete_words cpmctl w)" = watch

# --- an unknown account names the known ones -----------------------------------------------
run 1 folders nope
check "folders of an unknown account: the known ones listed" \
	test "$(cat "$WORK/err")" = "cpmctl: unknown account 'nope'; the account is: a"

# --- the commands that change things, each checked on the server -------------------------
# is_out TEXT: stdout is exactly TEXT (a final newline added), stderr empty
is_out() {
	printf '%s\n' "$1" >"$WORK/want"
	same "$WORK/want" "$WORK/out" && { [ ! -s "$WORK/err" ] || { sed 's/^/    stderr: /' "$WORK/err"; return 1; }; }
}
# no_out: stdout and stderr empty
no_out() {
	if [ -s "$WORK/out" ] || [ -s "$WORK/err" ]; then
		sed 's/^/    /' "$WORK/out" "$WORK/err"
		return 1
	fi
}
# err_is TEXT: stderr is exactly TEXT, stdout empty
err_is() {
	printf '%s\n' "$1" >"$WORK/want"
	same "$WORK/want" "$WORK/err" && [ ! -s "$WORK/out" ]
}
# usage_err EXIT-2-ARGS... : exit 2, the first line of stderr as given, then the usage
usage_err() { # FIRST-LINE CMD-ARGS...
	local first=$1
	shift
	run 2 "$@" || return 1
	if [ "$(head -n 1 "$WORK/err")" != "$first" ] || ! grep -q '^Usage: cpmctl' "$WORK/err" ||
		[ -s "$WORK/out" ]; then
		sed 's/^/    stderr: /' "$WORK/err"
		return 1
	fi
}
mailboxes() { echo " $(da mailbox list -u "$USER1" | sort | tr '\n' ' ')"; }
# uid_of FOLDER MESSAGE-ID: the server's uid of the message, "" when absent
uid_of() { da search -u "$USER1" mailbox "$1" header message-id "$2" | awk '{print $2}'; }
flags_of() { da -f tab fetch -u "$USER1" flags mailbox "$1" header message-id "$2" | tail -n +2; }

# folder create / rename / delete
run 0 folder create a Work
check "folder create a Work: exit 0, nothing printed" no_out
run 0 sync a
check "folder create: the folder is on the server" bash -c "[[ '$(mailboxes)' == *' Work '* ]]"
run 0 folder rename a Work Done
check "folder rename a Work Done: exit 0, nothing printed" no_out
run 0 sync a
m=$(mailboxes)
check "folder rename: Done on the server, Work gone ($m)" bash -c "[[ '$m' == *' Done '* && '$m' != *' Work '* ]]"
run 0 folders a
check "folder rename: folders lists Done" grep -q $'^Done\t0\t0$' "$WORK/out"
run 0 folder delete a Done
run 0 sync a
check "folder delete: gone from the server" bash -c "[[ '$(mailboxes)' != *' Done '* ]]"
run 1 folder delete a Nope
check "folder delete of an unknown folder: exit 1, the daemon's reason" \
	err_is "cpmctl: DeleteFolder: NotFound: no folder 'Nope' in account 'a'"
check "folder frob: exit 2" usage_err "cpmctl folder: unknown subcommand 'frob'" folder frob a X
check "folder: exit 2" usage_err "cpmctl folder: missing subcommand" folder
check "folder create a: exit 2" usage_err "cpmctl folder: missing argument" folder create a
check "folder rename a X: exit 2" usage_err "cpmctl folder: missing argument" folder rename a X
check "folder create a X Y: exit 2" usage_err "cpmctl folder: too many arguments" folder create a X Y
check "folder create a '': exit 2" usage_err "cpmctl folder: empty folder name" folder create a ''
run 1 folder create nope X
check "folder create in an unknown account: the known ones listed" \
	err_is "cpmctl: unknown account 'nope'; the account is: a"

# copy, move, delete, expunge
msg_text "<copy@live.test>" 400 "to copy" >"$WORK/copy.eml"
msg_text "<move@live.test>" 400 "to move" >"$WORK/move.eml"
run 0 store a INBOX "$WORK/copy.eml"
C=$(cat "$WORK/out")
run 0 store a INBOX "$WORK/move.eml"
M=$(cat "$WORK/out")
run 0 folder create a Keep
run 0 sync a
check "two messages stored and a folder Keep made, on the server" \
	bash -c "[ -n '$(uid_of INBOX '<copy@live.test>')' ] && [ -n '$(uid_of INBOX '<move@live.test>')' ] && [[ '$(mailboxes)' == *' Keep '* ]]"
run 0 copy a INBOX "$C" Keep
C2=$(cut -f 2 "$WORK/out")
check "copy a INBOX $C Keep: 'ID TAB NEW-ID'" bash -c "[ \"\$(cut -f 1 '$WORK/out')\" = '$C' ] && [ '$C2' -gt 0 ] && [ \$(wc -l <'$WORK/out') -eq 1 ] && [ ! -s '$WORK/err' ]"
run 0 move a INBOX "$M" Keep
M2=$(cut -f 2 "$WORK/out")
check "move a INBOX $M Keep: 'ID TAB NEW-ID'" bash -c "[ \"\$(cut -f 1 '$WORK/out')\" = '$M' ] && [ '$M2' -gt 0 ] && [ ! -s '$WORK/err' ]"
run 0 sync a
check "copy: on the server in both folders" \
	bash -c "[ -n '$(uid_of INBOX '<copy@live.test>')' ] && [ -n '$(uid_of Keep '<copy@live.test>')' ]"
check "move: on the server in Keep only" \
	bash -c "[ -z '$(uid_of INBOX '<move@live.test>')' ] && [ -n '$(uid_of Keep '<move@live.test>')' ]"
run 0 list a Keep
check "list a Keep: the copy and the moved message under their new ids" \
	test "$(cut -f 1 "$WORK/out" | sort -n | tr '\n' ' ')" = "$(printf '%s\n' "$C2" "$M2" | sort -n | tr '\n' ' ')"
run 0 delete a INBOX "$C"
check "delete a INBOX $C: exit 0, nothing printed" no_out
run 0 sync a
f=$(flags_of INBOX "<copy@live.test>")
check "delete: \\Deleted on the server ($f)" bash -c "[[ '$f' == *'\\Deleted'* ]]"
run 0 expunge a INBOX
check "expunge a INBOX: exit 0, nothing printed" no_out
run 0 sync a
check "expunge: gone from the server's INBOX, the copy in Keep stays" \
	bash -c "[ -z '$(uid_of INBOX '<copy@live.test>')' ] && [ -n '$(uid_of Keep '<copy@live.test>')' ]"
check "copy a INBOX x Keep: exit 2" usage_err "cpmctl: invalid message id 'x'" copy a INBOX x Keep
check "copy a INBOX 5: exit 2" usage_err "cpmctl copy: missing argument" copy a INBOX 5
check "move a INBOX -1 Keep: exit 2" usage_err "cpmctl: invalid message id '-1'" move a INBOX -1 Keep
check "move a INBOX 5 '': exit 2" usage_err "cpmctl move: empty destination folder" move a INBOX 5 ''
check "delete a INBOX: exit 2" usage_err "cpmctl delete: missing argument" delete a INBOX
check "expunge a: exit 2" usage_err "cpmctl expunge: missing argument" expunge a
run 1 copy a INBOX 999999 Keep
check "copy of an unknown id: exit 1, the daemon's reason" grep -q '^cpmctl: Copy: NotFound: ' "$WORK/err"
run 1 delete a Nope 1
check "delete in an unknown folder: exit 1" err_is "cpmctl: account 'a' has no folder 'Nope'"
check "flag +\\Bogus: exit 1" run 1 flag a Keep "$M2" +'\Bogus'
check "  the daemon's reason, for the argument as typed (not SetFlags' add)" \
	err_is "cpmctl flag: '+\\Bogus': flag '\\Bogus' is not a system flag (\\Answered, \\Deleted, \\Draft, \\Flagged, \\Seen)"
check "flag +\\Seen -\\Bogus +\\Flagged: exit 1" run 1 flag a Keep "$M2" +'\Seen' -'\Bogus' +'\Flagged'
check "  the -FLAG it is about (not SetFlags' remove)" \
	err_is "cpmctl flag: '-\\Bogus': flag '\\Bogus' is not a system flag (\\Answered, \\Deleted, \\Draft, \\Flagged, \\Seen)"
check "flag +\\Seen +\\recent: exit 1" run 1 flag a Keep "$M2" +'\Seen' +'\recent'
check "  the +FLAG it is about" \
	err_is "cpmctl flag: '+\\recent': flag \\Recent cannot be set (the server sets it)"
check "move into its own folder: exit 1" run 1 move a Keep "$M2" Keep
check "  the daemon's reason names the destination" \
	err_is "cpmctl: Move: InvalidArgs: destination: message $M2 is already in \"Keep\""

# metadata
run 0 metadata set a INBOX /private/comment "hello cli"
check "metadata set: exit 0, nothing printed" no_out
run 0 sync a
check "metadata set: the value on the server" \
	test "$(da mailbox metadata get -u "$USER1" INBOX /private/comment)" = "hello cli"
da mailbox metadata set -u "$USER1" INBOX /private/other "from doveadm" || bail "doveadm metadata set failed"
run 0 metadata get a INBOX /private/comment /private/other
check "metadata get: ENTRY TAB VALUE, sorted" is_out $'/private/comment\thello cli\n/private/other\tfrom doveadm'
run 0 metadata get --json a INBOX /private/other
check "metadata get --json" is_out '{"Entry":"/private/other","Value":"from doveadm"}'
run 0 metadata set a "" /private/comment "server wide"
run 0 sync a
check "metadata set on the server (FOLDER \"\")" \
	test "$(da mailbox metadata get -u "$USER1" -s "" /private/comment 2>&1)" = "server wide"
run 0 metadata get a "" /private/comment
check "metadata get of a server entry" is_out $'/private/comment\tserver wide'
run 0 metadata set a INBOX /private/comment ""
run 0 sync a
check "metadata set ENTRY '': removed on the server" \
	test -z "$(da mailbox metadata get -u "$USER1" INBOX /private/comment)"
check "metadata get a INBOX comment: exit 2" \
	usage_err "cpmctl metadata: invalid entry 'comment' (it starts with /private/ or /shared/)" metadata get a INBOX comment
check "metadata set without a value: exit 2" \
	usage_err "cpmctl metadata set: entry '/private/x' has no value" metadata set a INBOX /private/x v /private/x
check "metadata set, an entry twice: exit 2" \
	usage_err "cpmctl metadata set: entry '/private/x' given twice" metadata set a INBOX /private/x 1 /private/x 2
check "metadata frob: exit 2" usage_err "cpmctl metadata: unknown subcommand 'frob'" metadata frob
check "metadata get a INBOX: exit 2" usage_err "cpmctl metadata get: missing argument" metadata get a INBOX

# ACL
run 0 acl set a Keep "$USER2" lr
check "acl set a Keep $USER2 lr: exit 0, nothing printed" no_out
run 0 sync a
da acl get -u "$USER1" Keep >"$WORK/acl.get" 2>&1
check "acl set: on the server" grep -qE "^user=$USER2 +lookup read *\$" "$WORK/acl.get"
run 0 acl get a Keep
check "acl get: the identifier with its rights" grep -qx "$USER2"$'\tlr' "$WORK/out"
check "acl get: the owner too, sorted" \
	bash -c "[ \"\$(cut -f 1 '$WORK/out' | tr '\n' ' ')\" = \"\$(cut -f 1 '$WORK/out' | LC_ALL=C sort | tr '\n' ' ')\" ] && [ \$(wc -l <'$WORK/out') -ge 2 ]"
run 0 acl get --json a Keep
check "acl get --json" grep -qx '{"Identifier":"'"$USER2"'","Rights":"lr"}' "$WORK/out"
run 0 acl myrights a Keep
# all_rights: one line of RFC 4314 rights holding every right of RFC 4314 2.1
all_rights() {
	local r c
	r=$(cat "$WORK/out")
	[[ $r =~ ^[a-z0-9]+$ ]] || { echo "    got '$r'"; return 1; }
	for c in l r s w i p k x t e a; do
		[[ $r == *$c* ]] || { echo "    got '$r': no $c"; return 1; }
	done
}
check "acl myrights: the owner's rights (every right)" all_rights
run 0 acl delete a Keep "$USER2"
run 0 sync a
da acl get -u "$USER1" Keep >"$WORK/acl.get" 2>&1
check "acl delete: gone from the server" bash -c "! grep -q 'user=$USER2' '$WORK/acl.get'"
check "acl set with +rights: exit 2" usage_err \
	"cpmctl acl set: invalid rights '+l' (RFC 4314 letters such as lrswipkxtea; use acl delete to remove them all)" \
	acl set a Keep "$USER2" +l
check "acl set a Keep $USER2: exit 2" usage_err "cpmctl acl set: missing argument" acl set a Keep "$USER2"
check "acl get a: exit 2" usage_err "cpmctl acl get: missing argument" acl get a
check "acl frob: exit 2" usage_err "cpmctl acl: unknown subcommand 'frob'" acl frob a Keep

# search
run 0 search a INBOX subject:sections
grep $'\tsections$' "$WORK/list" >"$WORK/want"
check "search subject:sections: the message, as list prints it" same "$WORK/want" "$WORK/out"
run 0 search --json a INBOX subject:sections from:tester
check "search --json subject: from:" json_check "$WORK/out" '[m["Id"] for m in L] == ['"$ID"']'
run 0 search a INBOX from:nobody-at-all
check "search with no match: nothing, exit 0" no_out
run 0 search a INBOX since:2026-11-28 before:2099-01-01 not-flag:'\Deleted'
check "search since: before: not-flag: the two INBOX messages" \
	test "$(cut -f 1 "$WORK/out" | sort -n | tr '\n' ' ')" = "$(cut -f 1 "$WORK/list" | sort -n | tr '\n' ' ')"
# Over 64 matches: printed from ListMessages pages (cpmctl-edit.c
# print_listed()) instead of a GetMessage each: the same lines.
da mailbox create -u "$USER1" Many || bail "doveadm mailbox create Many"
for i in $(seq 1 75); do
	subj="bulk $i"
	[ $((i % 15)) -eq 0 ] && subj="other $i"
	msg_text "<many$i@cpmctl.test>" 300 "$subj" | da save -u "$USER1" -m Many ||
		bail "doveadm save into Many ($i)"
done
run 0 sync a || bail "cpmctl sync a (Many)"
run 0 list a Many || bail "cpmctl list a Many"
check "list a Many: the 75 messages" test "$(wc -l <"$WORK/out")" -eq 75
grep -v $'\tother [0-9]*$' "$WORK/out" >"$WORK/want"
run 0 search a Many subject:bulk
check "search of 70 matches (over 64): the 70, as list prints them" same "$WORK/want" "$WORK/out"
run 0 search --json a Many subject:bulk
check "search --json of 70 matches: their Ids in order" json_check "$WORK/out" \
	'[m["Id"] for m in L] == ['"$(cut -f 1 "$WORK/want" | paste -sd,)"']'
# A subject with bidirectional formatting characters (U+202E RIGHT-TO-LEFT
# OVERRIDE, U+2067 RIGHT-TO-LEFT ISOLATE, U+200F RIGHT-TO-LEFT MARK) is
# printed with a space for each: raw, the override reversed the columns
# after it on a terminal.  The text around them stays (Arabic included).
da mailbox create -u "$USER1" Bidi || bail "doveadm mailbox create Bidi"
printf 'From: x@cpmctl.test\r\nMessage-ID: <bidi@cpmctl.test>\r\nSubject: a\xe2\x80\xaeevil\xe2\x81\xa7 \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7\xe2\x80\x8f end\r\n\r\nx\r\n' |
	da save -u "$USER1" -m Bidi || bail "doveadm save into Bidi"
run 0 sync a || bail "cpmctl sync a (Bidi)"
run 0 list a Bidi || bail "cpmctl list a Bidi"
check "list: bidi formatting characters printed as spaces, the text kept ($(cut -f 6- "$WORK/out"))" \
	test "$(awk -F '\t' '{ print $NF }' "$WORK/out")" = "$(printf 'a evil  \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7  end')"
# A keyword removed in another case than it was added: Dovecot and Cyrus
# compare keywords case-insensitively, and so does the store now (-foo
# did nothing and sent nothing; +UPPER then +upper kept both).
BIDI_ID=$(cut -f 1 "$WORK/out")
run 0 flag a Bidi "$BIDI_ID" +Foo || bail "cpmctl flag +Foo"
run 0 sync a || bail "cpmctl sync a (+Foo)"
[[ $(flags_of Bidi '<bidi@cpmctl.test>') == *Foo* ]] || bail "+Foo did not reach the server: $(flags_of Bidi '<bidi@cpmctl.test>')"
run 0 flag a Bidi "$BIDI_ID" -foo +Urgent +urgent || bail "cpmctl flag -foo"
run 0 list a Bidi
check "flag -foo +Urgent +urgent: here at once, Foo gone and one Urgent ($(cut -f 3 "$WORK/out"))" \
	test "$(cut -f 3 "$WORK/out")" = Urgent
run 0 sync a || bail "cpmctl sync a (-foo)"
check "-foo removed Foo on the server, +Urgent +urgent is one keyword ($(flags_of Bidi '<bidi@cpmctl.test>'))" \
	test "$(flags_of Bidi '<bidi@cpmctl.test>')" = Urgent
run 0 list a Bidi
check "  and here ($(cut -f 3 "$WORK/out"))" test "$(cut -f 3 "$WORK/out")" = Urgent
# RFC 2047 encoded-words as a tester found them: a From display name in
# UTF-8 (was shown raw), a Subject in KOI8-R (raw), a CPIM text in KOI8-R
# (no Snippet), through ListMessages (cpmctl list), GetMessage and the
# server's search (cpmctl search, a GetMessage per match).
da mailbox create -u "$USER1" Intl || bail "doveadm mailbox create Intl"
printf '%s\r\n' 'From: =?utf-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan@intl.test>' \
	'To: "=?utf-8?Q?kept?=" <k@intl.test>, =?iso-8859-1?Q?J=F6rg?= <j@intl.test>' \
	'Subject: =?KOI8-R?B?8NLJ18XU?=' 'Date: Sat, 28 Nov 2026 10:00:00 +0000' \
	'Message-ID: <intl@live.test>' 'Message-Context: pager-message' \
	'Content-Type: text/plain; charset=koi8-r' '' >"$WORK/intl"
printf '\xf0\xd2\xc9\xd7\xc5\xd4\r\n' >>"$WORK/intl"
da save -u "$USER1" -m Intl <"$WORK/intl" || bail "doveadm save into Intl"
run 0 sync a || bail "cpmctl sync a (Intl)"
run 0 list --json a Intl
check "list --json: From and Subject decoded" json_check "$WORK/out" \
	'[(m["From"], m["Subject"]) for m in L] == [("Иван Петров <ivan@intl.test>", "Привет")]'
INTL=$(call "$A" org.cpmsync.Account1 FindFolder s Intl)
INTL_ID=$(python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["Id"])' "$WORK/out")
call "$INTL" org.cpmsync.Folder1 GetMessage t "$INTL_ID" >"$WORK/intl.msg"
check "GetMessage: From, To (both addresses, the quoted name too), Snippet decoded" \
	bash -c "grep -qxF 'From=Иван Петров <ivan@intl.test>' '$WORK/intl.msg' &&
		grep -qxF 'To=[\"kept\" <k@intl.test>|Jörg <j@intl.test>]' '$WORK/intl.msg' &&
		grep -qxF 'Snippet=Привет' '$WORK/intl.msg'"
run 0 search --json a Intl from:ИВАН
check "search from:ИВАН: the message" json_check "$WORK/out" '[m["Id"] for m in L] == ['"$INTL_ID"']'
run 0 search a INBOX flag:'\Seen'
check "search flag:\\Seen: none is seen" no_out
check "search bogus:x: exit 2" usage_err \
	"cpmctl search: unknown criterion 'bogus:' (keys: text from to subject since before flag not-flag conversation)" \
	search a INBOX bogus:x
check "search since:yesterday: exit 2" usage_err \
	"cpmctl search: invalid date 'yesterday' in 'since:yesterday' (YYYY-MM-DD or @SECONDS)" \
	search a INBOX since:yesterday
check "search since:2026-02-31: exit 2, not March 3" usage_err \
	"cpmctl search: invalid date '2026-02-31' in 'since:2026-02-31' (no such day)" \
	search a INBOX since:2026-02-31
check "search before:2026-02-29 (not a leap year): exit 2" usage_err \
	"cpmctl search: invalid date '2026-02-29' in 'before:2026-02-29' (no such day)" \
	search a INBOX before:2026-02-29
# Before 0 (1970-01-01) is a time, not "no criterion": nothing matches;
# since:1970-01-01 matches every message.
run 0 search a INBOX before:1970-01-01
check "search before:1970-01-01: nothing" no_out
run 0 search a INBOX before:@0
check "search before:@0: nothing" no_out
run 0 list a INBOX
cut -f 1 "$WORK/out" | sort -n >"$WORK/inbox.ids"
run 0 search a INBOX since:1970-01-01
check "search since:1970-01-01: every INBOX message" \
	bash -c "[ -s '$WORK/inbox.ids' ] && cut -f 1 '$WORK/out' | sort -n | cmp -s - '$WORK/inbox.ids'"
run 0 search a INBOX since:2028-02-29
check "search since:2028-02-29 (a leap day): accepted, nothing" no_out
check "search subject twice: exit 2" usage_err "cpmctl search: 'subject:' given twice" \
	search a INBOX subject:a subject:b
check "search a word: exit 2" usage_err \
	"cpmctl search: 'hello' is not a criterion (KEY:VALUE; keys: text from to subject since before flag not-flag conversation)" \
	search a INBOX hello
check "search text:: exit 2" usage_err "cpmctl search: 'text:' has no value" search a INBOX text:

# watch: signals as they come, and pending: the queue while offline
"$CPMCTL" watch a >"$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH_PID=$!
"$CPMCTL" watch --json >"$WORK/watch.json" 2>"$WORK/watch-json.err" &
WATCHJ_PID=$!
BG_PIDS+=("$WATCH_PID" "$WATCHJ_PID")
check "watch says that it listens" eventually 10 grep -qx "cpmctl: watching account 'a'; interrupt to stop" "$WORK/watch.err"
check "watch --json says that it listens" eventually 10 grep -qx "cpmctl: watching every account; interrupt to stop" "$WORK/watch-json.err"
run 0 online a off
check "online a off: State offline" wait_state offline 5
run 0 flag a Keep "$M2" +'\Flagged'
run 0 pending a
check "pending a: the queued flag change" \
	bash -c "[ \"\$(cut -f 1,3- '$WORK/out')\" = \"\$(printf 'a\tflags\tKeep\t%s\t\t0\t\t' '$M2')\" ] && [ ! -s '$WORK/err' ]"
run 0 pending --json a
check "pending --json a" json_check "$WORK/out" \
	'len(L) == 1 and {k: v for k, v in L[0].items() if k != "Id"} == {"Account": "a", "Operation": "flags", "Folder": "Keep", "MessageIds": ['"$M2"'], "Code": "", "Tries": 0, "Time": 0, "Text": ""}'
run 0 pending
check "pending (every account): the same line" test "$(cut -f 1,3- "$WORK/out")" = "$(printf 'a\tflags\tKeep\t%s\t\t0\t\t' "$M2")"
run 1 pending nope
check "pending nope: the store's accounts" err_is "cpmctl: unknown account 'nope'; the store '$WORK/store.db' holds: a"
check "pending a b: exit 2" usage_err "cpmctl pending: too many arguments" pending a b
check "watch: the flag change, one line" \
	eventually 5 grep -qx $'a\tKeep\tMessagesChanged\t'"$M2" "$WORK/watch.out"
# has_line FILE LINE: the file has that line, or it is shown
has_line() { grep -qxF -- "$2" "$1" || { sed 's/^/    | /' "$1" | head -n 40; return 1; }; }
check "watch: the account going offline" \
	has_line "$WORK/watch.out" $'a\t\tPropertiesChanged\tState=offline PushState=off LastServerActivity=0'
check "watch: Online" has_line "$WORK/watch.out" $'a\t\tPropertiesChanged\tOnline=false'
check "watch: PendingOperations" grep -qx $'a\t\tPropertiesChanged\tPendingOperations=1' "$WORK/watch.out"
run 0 online a on
check "online a on: State idle" wait_state idle 20
run 0 sync a
run 0 pending a
check "pending a after the sync: nothing queued" no_out
check "the flag reached the server" bash -c "[[ '$(flags_of Keep '<move@live.test>')' == *'\\Flagged'* ]]"
check "watch --json: the change, with its flags" eventually 5 json_check "$WORK/watch.json" \
	'any(m["Account"] == "a" and m["Folder"] == "Keep" and m["Signal"] == "MessagesChanged" and m["Messages"][0]["Id"] == '"$M2"' and "\\Flagged" in m["Messages"][0]["Flags"] for m in L)'
check "watch --json: SyncProgress of the sync" json_check "$WORK/watch.json" \
	'any(m["Signal"] == "SyncProgress" and m["Account"] == "a" and m["Folder"] == "" and m["Total"] >= m["Done"] for m in L)'
run 0 folder create a Fresh
check "watch: a new folder" eventually 5 grep -qx $'a\tFresh\tInterfacesAdded\tFolder1' "$WORK/watch.out"
kill -TERM "$WATCH_PID"
wait "$WATCH_PID"
st=$?
check "watch runs until stopped by a signal (exit $st), nothing on stderr but the first line" \
	bash -c "[ $st -eq 143 ] && [ \$(wc -l <'$WORK/watch.err') -eq 1 ]"
kill "$WATCHJ_PID"
wait "$WATCHJ_PID" 2>/dev/null
run 1 watch nope
check "watch nope: the known accounts" err_is "cpmctl: unknown account 'nope'; the account is: a"
check "watch a b: exit 2" usage_err "cpmctl watch: too many arguments" watch a b

# --- sync with a change the server refuses: at once, the reason, exit 1 ---------------------
da mailbox create -u "$USER1" Locked || bail "doveadm mailbox create Locked failed"
# A message there for the read-only flag change below (saved while the ACL allows it).
msg_save "$USER1" Locked "<readonly@live.test>" 300 || bail "doveadm save into Locked failed"
da acl set -u "$USER1" Locked "user=$USER1" lookup read || bail "doveadm acl set failed"
# A new IMAP session reads the new ACL (the daemon's own may have cached the
# folder's rights when NOTIFY told it of the folder, before the ACL was set).
run 0 online a off
wait_state offline 5 || bail "the account did not go offline"
run 0 online a on
wait_state idle 20 || bail "the account did not come back"
run 0 sync a
msg_text "<locked@live.test>" 300 "refused" >"$WORK/locked.eml"
run 0 store a Locked "$WORK/locked.eml"
t0=$(date +%s%N)
run 1 sync a
t=$((($(date +%s%N) - t0) / 1000000))
refused_at_once() {
	if grep -qx "cpmctl: a: a change was refused by the server: store in 'Locked': \[NOPERM\] Permission denied.* (cpmctl failed a; retry or discard it)" "$WORK/err" &&
		[ "$(wc -l <"$WORK/err")" -eq 1 ] && [ ! -s "$WORK/out" ] && [ "$t" -lt 10000 ]; then
		return 0
	fi
	sed 's/^/    /' "$WORK/err"
	return 1
}
check "sync with a refused change: exit 1 at once ($t ms) with the server's reason" refused_at_once
run 1 sync a
check "sync again: the same reason while the change is kept" grep -q "^cpmctl: a: a change was refused by the server: store in 'Locked'" "$WORK/err"
run 0 failed a
FID=$(cut -f 2 "$WORK/out")
run 0 discard a "$FID"
run 0 sync a
check "after discard: sync a is ok again" is_out "a: ok"
check "the refused message never reached the server" test -z "$(uid_of Locked '<locked@live.test>')"

# --- sync with a change given up here, never sent: said so, not as the server's ----------
# Locked is read-only for the user: Dovecot selects it [READ-ONLY] and would
# answer a STORE with OK, changing nothing; the daemon does not send it.
run 0 sync a || bail "sync a before the flag change failed"
run 0 list a Locked || bail "list a Locked failed"
[ "$(wc -l <"$WORK/out")" -eq 1 ] || bail "list a Locked: not one message: $(cat "$WORK/out")"
RO=$(cut -f 1 "$WORK/out")
run 0 flag a Locked "$RO" +'\Flagged' || bail "flag a Locked $RO failed"
run 1 sync a
check "sync with a change not sent: exit 1, 'not sent', not 'refused by the server'" \
	err_is "cpmctl: a: a change was not sent: flags in 'Locked': [READ-ONLY] the folder is read-only for this account: its flags cannot be changed (cpmctl failed a; retry or discard it)"
run 0 failed a
check "failed a: the change, its text beginning 'not sent: '" \
	bash -c "[ \"\$(cut -f 1,3-7,9 '$WORK/out')\" = \"\$(printf 'a\tflags\tLocked\t%s\tREAD-ONLY\t1\tnot sent: the folder is read-only for this account: its flags cannot be changed' '$RO')\" ]"
FID=$(cut -f 2 "$WORK/out")
run 0 discard a "$FID" || bail "discard a $FID failed"
run 0 sync a
check "after discard: sync a is ok again" is_out "a: ok"

# --- sync with a change refused for now (over quota): what, why, next try; exit 1 --------
# doveadm (no quota plugin) fills the 1 MiB quota behind the daemon's back.
da mailbox create -u "$USER1" Ballast || bail "doveadm mailbox create Ballast failed"
msg_save "$USER1" Ballast "<ballast@live.test>" 1100000 || bail "cannot save past the quota"
msg_text "<overquota@live.test>" 300 "over quota" >"$WORK/oq.eml"
run 0 store a INBOX "$WORK/oq.eml"
OQ=$(cat "$WORK/out")
t0=$(date +%s%N)
run 1 sync a
t=$((($(date +%s%N) - t0) / 1000000))
OQ_RE="^cpmctl: a: a change was refused by the server for now and waits: store in 'INBOX': \[OVERQUOTA\] Quota exceeded .* \(tried 1 time, next try [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}\) \(cpmctl pending a\)$"
waits_said() {
	if grep -Eq "$OQ_RE" "$WORK/err" && [ "$(wc -l <"$WORK/err")" -eq 1 ] && [ ! -s "$WORK/out" ] &&
		[ "$t" -lt 10000 ]; then
		return 0
	fi
	sed 's/^/    /' "$WORK/err"
	return 1
}
check "sync with a change refused for now: exit 1 ($t ms), operation, folder, server's text, next try" waits_said
run 0 failed a
check "...not a failed operation" no_out
run 0 pending a
check "...queued, with the refusal (cpmctl pending)" \
	grep -Eq "^a	[0-9]+	store	INBOX	$OQ	OVERQUOTA	1	[0-9TZ:-]+	Quota exceeded" "$WORK/out"
run 1 sync a
check "sync again within the back-off: the same reason" grep -Eq "$OQ_RE" "$WORK/err"
run 0 delete a INBOX "$OQ"
run 0 expunge a INBOX
run 0 sync a
check "the refused message taken back: sync a is ok again" is_out "a: ok"
da mailbox delete -u "$USER1" Ballast || bail "doveadm mailbox delete Ballast failed"

# --- a reader that goes away: SIGPIPE, quietly, as for cat ------------------------------
BIG=$(awk -F '\t' '$6 == "test <big@live.test>" { print $1 }' "$WORK/list")
"$CPMCTL" fetch a INBOX "$BIG" 2>"$WORK/err" | head -c 10 >"$WORK/head"
st=${PIPESTATUS[0]}
check "fetch | head -c 10: 10 bytes through, cpmctl killed by SIGPIPE (141, got $st), nothing on stderr" \
	bash -c "[ $st -eq 141 ] && [ \$(wc -c <'$WORK/head') -eq 10 ] && [ ! -s '$WORK/err' ]"

# --- one daemon per store ------------------------------------------------------------------
busy="the store $WORK/store.db is in use by another cpm-syncd (pid $DAEMON_PID); one daemon per store (cpmctl sync asks the running one to sync)"
timeout 10 "$SYNCD" -c "$CONF" --no-dbus >"$WORK/out" 2>"$WORK/err"
rc=$?
check "a second daemon on the store: exit 1, says which daemon holds it (exit $rc)" \
	bash -c "[ $rc -eq 1 ] && [ \"\$(cat '$WORK/err')\" = 'cpm-syncd: $busy' ]"
timeout 10 "$SYNCD" -c "$CONF" --once >"$WORK/out" 2>"$WORK/err"
rc=$?
check "--once on a store in use: exit 1, the same reason (exit $rc)" \
	bash -c "[ $rc -eq 1 ] && [ \"\$(cat '$WORK/err')\" = 'cpm-syncd: $busy' ]"
check "the running daemon still answers" test "$(acct State)" = idle
run 0 dump
check "cpmctl dump reads the store in use" grep -qx $'a\tINBOX\t[0-9]*\t\t<sections@live.test>' "$WORK/out"
check "the lock holds no pid (the refused learn it from a record lock): store.db.lock is empty" \
	test -f "$WORK/store.db.lock" -a ! -s "$WORK/store.db.lock"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
# A daemon of an older cpmsync: flock only, its pid written in the file.
printf '4242\n' >"$WORK/store.db.lock" || bail "cannot write $WORK/store.db.lock"
flock -n "$WORK/store.db.lock" timeout 10 "$SYNCD" -c "$CONF" --once >"$WORK/out" 2>"$WORK/err"
rc=$?
check "an older daemon's flock still excludes, and its pid from the file is named (exit $rc)" \
	bash -c "[ $rc -eq 1 ] && [ \"\$(cat '$WORK/err')\" = 'cpm-syncd: ${busy/$DAEMON_PID/4242}' ]"
start_daemon || bail "cpm-syncd did not restart"
check "after a hard stop the lock is free: a new daemon starts and syncs" wait_state idle 20

# --- sync: done, or at once with the reason -----------------------------------------------
run 0 sync a
check "sync a: 'a: ok', exit 0" bash -c "[ \"\$(cat '$WORK/out')\" = 'a: ok' ] && [ ! -s '$WORK/err' ]"
# sync is a full pass under NOTIFY too (Account1.SyncAll): a folder renamed
# on the server is listed under its new name as soon as sync returns, told
# by NOTIFY or not (Dovecot 2.3 missed such a rename in a 2,000-folder
# mailbox; Account1.Sync answers a quiet NOTIFY wait with a NOOP alone).
push_is_notify() { test "$(acct PushState)" = notify; }
# names_are FILE NAME...: FILE's first column is NAME..., one a line
names_are() {
	local f=$1
	shift
	cut -f 1 "$f" >"$WORK/names.got"
	printf '%s\n' "$@" >"$WORK/names.want"
	same "$WORK/names.want" "$WORK/names.got"
}
da mailbox create -u "$USER1" Before || bail "cannot create Before"
check "sync a after a folder made on the server: exit 0" run 0 sync a
run 0 folders a
check "  folders lists Before" grep -qx $'Before\t0\t0' "$WORK/out"
check "  the daemon waits with PushState notify" eventually 10 push_is_notify
check "  ...and State idle" wait_state idle 10
sleep 1 # NOTIFY's own echoes of that sync are over
da mailbox rename -u "$USER1" Before After || bail "cannot rename Before"
run 0 sync a
check "sync a right after a rename on the server: 'a: ok', exit 0" \
	bash -c "[ \"\$(cat '$WORK/out')\" = 'a: ok' ] && [ ! -s '$WORK/err' ]"
da mailbox list -u "$USER1" >"$WORK/server.list" || bail "cannot list the server's folders"
mapfile -t server_names < <(LC_ALL=C sort "$WORK/server.list")
run 0 folders a
check "  folders at once: After, not Before (the server's ${#server_names[@]} folders)" \
	names_are "$WORK/out" "${server_names[@]}"
check "  (the server has After)" grep -qx After < <(printf '%s\n' "${server_names[@]}")
run 0 online a off
check "online a off: State offline" wait_state offline 5
run 1 sync a
check "sync of an offline account: exit 1 at once with the reason" \
	test "$(cat "$WORK/err")" = "cpmctl: a: the account is offline (Online is off; see cpmctl online)"
run 0 online a on
check "online a on: State idle" wait_state idle 20

# The server stops: the daemon goes on retrying; sync says why within seconds.
dc_stop dc
want="cpmctl: a: cannot connect to localhost port $IMAPS_PORT: Connection refused"
check "server stopped: the daemon says it cannot connect" \
	eventually 15 bash -c "[ \"\$('$DBUS' get $A org.cpmsync.Account1 LastError)\" = '${want#cpmctl: a: }' ]"
t0=$(date +%s%N)
run 1 sync a
t=$((($(date +%s%N) - t0) / 1000000))
check "server stopped: sync a exits 1 with the reason ($t ms)" \
	bash -c "[ \"\$(cat '$WORK/err')\" = '$want' ] && [ ! -s '$WORK/out' ] && [ $t -lt 10000 ]"
t0=$(date +%s%N)
run 1 sync
t=$((($(date +%s%N) - t0) / 1000000))
check "server stopped: sync (every account) exits 1 with the reason ($t ms)" \
	bash -c "[ \"\$(cat '$WORK/err')\" = '$want' ] && [ $t -lt 10000 ]"

# --- no daemon: folders and list read the store --------------------------------------------
run 0 folders a
cp "$WORK/out" "$WORK/folders.daemon"
run 0 list a INBOX
cp "$WORK/out" "$WORK/list.daemon"
run 0 list --json a INBOX
cp "$WORK/out" "$WORK/list-json.daemon"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
DAEMON_PID=
note="cpmctl: the cpm-syncd daemon is not running: read from the store '$WORK/store.db'"
run 0 folders a
check "no daemon: folders reads the store, the same lines as the daemon's" same "$WORK/folders.daemon" "$WORK/out"
check "no daemon: folders says so on stderr" test "$(cat "$WORK/err")" = "$note"
run 0 list a INBOX
check "no daemon: list reads the store, the same lines as the daemon's" same "$WORK/list.daemon" "$WORK/out"
run 0 list --json a INBOX
check "no daemon: list --json, the same objects as the daemon's" same "$WORK/list-json.daemon" "$WORK/out"
run 1 folders nope
check "no daemon: an unknown account names the store's accounts" \
	test "$(cat "$WORK/err")" = "cpmctl: unknown account 'nope'; the store '$WORK/store.db' holds: a"
run 1 list a Nope
check "no daemon: an unknown folder" \
	test "$(cat "$WORK/err")" = "$note"$'\n'"cpmctl: account 'a' has no folder 'Nope'"
run 1 status
check "no daemon: status still says the daemon is not running" \
	test "$(cat "$WORK/err")" = "cpmctl: the cpm-syncd daemon is not running (no owner of org.cpmsync on the session bus)"

finish
