#!/usr/bin/env bash
# Proves the throwaway Dovecot launcher (tests/dovecot/dovecot-ctl.sh): TLS and
# STARTTLS with verification, LOGIN / PLAIN / SCRAM-SHA-256, the capabilities
# the sync engine relies on, the wrong-CA and wrong-host certificates, the
# capability knob, seeding, and that stop leaves nothing behind.
# Needs only bash, coreutils, openssl and iproute2 (ss); no build.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
CTL=$TOP/tests/dovecot/dovecot-ctl.sh
WORK=$(mktemp -d)
chmod 0755 "$WORK"
D=$WORK/main
H=$WORK/hidden
cleanup() {
	[ -n "${CPID:-}" ] && kill "$CPID" 2>/dev/null
	"$CTL" stop "$D" >/dev/null 2>&1
	"$CTL" stop "$H" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

. "$(dirname "$0")/lib-tap.sh"

mkdir -p "$D" "$H"
t0=$SECONDS
if ! "$CTL" start "$D" >"$WORK/start.out" 2>&1; then
	not_ok "start"
	cat "$WORK/start.out"
	finish
fi
ok "start ($((SECONDS - t0))s)"
. "$D/env"

missing=
for v in DOVECOT_DIR IMAP_HOST IMAP_PORT IMAPS_PORT CA_FILE OTHER_CA_FILE CERT_HOST \
	WRONGHOST_PORT WRONGHOST_STARTTLS_PORT WRONG_CERT_HOST USER1 PASS1 USER2 PASS2 USER3 PASS3; do
	[ -n "${!v:-}" ] || missing+=" $v"
done
check "env defines every variable${missing:+ (missing:$missing)}" [ -z "$missing" ]
check "config is self-contained (no include, no /etc/dovecot)" \
	bash -c '! grep -v "^[[:space:]]*#" "$1" | grep -Eq "!include|/etc/dovecot"' _ "$DOVECOT_CONF"
check "listens on 127.0.0.1 only" bash -c \
	'ss -Htln | awk "{print \$4}" | grep -E ":($1|$2)\$" | grep -vq "^127\.0\.0\.1:"; [ $? -ne 0 ]' _ "$IMAP_PORT" "$IMAPS_PORT"

# --- one IMAP session at a time over openssl s_client, as a coprocess
CPID=
imap_open() { # port tls|starttls [s_client args...]
	local port=$1 mode=$2
	shift 2
	local args=(-connect "127.0.0.1:$port" -CAfile "$CA_FILE" -verify_return_error -quiet -nocommands)
	[ "$mode" = starttls ] && args+=(-starttls imap)
	coproc IMAP { exec openssl s_client "${args[@]}" "$@" 2>>"$WORK/s_client.err"; }
	IN=${IMAP[1]} OUT=${IMAP[0]} CPID=$IMAP_PID
	if [ "$mode" = tls ]; then
		imap_line && [[ $line == "* OK"* ]] && GREETING=$line
	fi
}
imap_line() {
	line=
	IFS= read -r -t 10 line <&"$OUT" || return 1
	line=${line%$'\r'}
}
imap_send() { printf '%s\r\n' "$1" >&"$IN"; }
# imap_cmd TAG COMMAND: RESP gets every line; true if tagged OK
imap_cmd() {
	RESP=
	imap_send "$1 $2" || return 1
	while imap_line; do
		RESP+=$line$'\n'
		if [[ $line == "$1 "* ]]; then
			[[ $line == "$1 OK"* ]]
			return
		fi
	done
	return 1
}
imap_close() {
	[ -n "$CPID" ] || return 0
	imap_send "z LOGOUT" 2>/dev/null
	local i
	for ((i = 0; i < 30; i++)); do
		kill -0 "$CPID" 2>/dev/null || break
		sleep 0.1
	done
	kill "$CPID" 2>/dev/null
	wait "$CPID" 2>/dev/null
	CPID=
}
quote() { # IMAP quoted string
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}
has_caps() { # "text" CAP... : all present as words
	local c
	for c in "${@:2}"; do
		[[ " $1 " == *" $c "* ]] || { echo "    missing capability $c" >&2; return 1; }
	done
}
resp_has() { [[ $RESP == *"$1"* ]] || { printf '    %s\n' "$RESP" >&2; return 1; }; }
caps_of() { sed -n 's/^\* CAPABILITY //p' <<<"$RESP" | tr -d '\r'; }

# --- SCRAM-SHA-256 client in bash + openssl (RFC 5802 / 7677)
unhex() { # hex digits -> the bytes they spell
	local i esc=
	for ((i = 0; i < ${#1}; i += 2)); do
		esc+=\\x${1:i:2}
	done
	printf '%b' "$esc"
}
hmac() { openssl mac -digest SHA256 -macopt "hexkey:$1" HMAC | tr 'A-F' 'a-f'; }
xorhex() {
	local a=$1 b=$2 i out=
	for ((i = 0; i < ${#a}; i += 2)); do
		out+=$(printf '%02x' $((16#${a:i:2} ^ 16#${b:i:2})))
	done
	echo "$out"
}
scram_login() { # user password -> true if authenticated and the server proved itself
	local user=$1 pass=$2 cnonce cfb sfirst r s i salted ckey stored authm csig proof skey ssig final
	cnonce=$(openssl rand -hex 12)
	cfb="n=$user,r=$cnonce"
	imap_send "s AUTHENTICATE SCRAM-SHA-256 $(printf 'n,,%s' "$cfb" | base64 -w0)"
	if ! imap_line || [[ $line != "+ "* ]]; then
		echo "    no server-first: $line" >&2
		return 1
	fi
	sfirst=$(base64 -d <<<"${line#+ }")
	r=$(tr ',' '\n' <<<"$sfirst" | sed -n 's/^r=//p')
	s=$(tr ',' '\n' <<<"$sfirst" | sed -n 's/^s=//p')
	i=$(tr ',' '\n' <<<"$sfirst" | sed -n 's/^i=//p')
	[[ $r == "$cnonce"* ]] || { echo "    bad nonce" >&2; return 1; }
	salted=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "pass:$pass" \
		-kdfopt "hexsalt:$(base64 -d <<<"$s" | od -An -v -tx1 | tr -d ' \n')" \
		-kdfopt "iter:$i" PBKDF2 | tr -d ':\n' | tr 'A-F' 'a-f')
	ckey=$(printf 'Client Key' | hmac "$salted")
	stored=$(unhex "$ckey" | sha256sum | cut -c1-64)
	authm="$cfb,$sfirst,c=biws,r=$r"
	csig=$(printf '%s' "$authm" | hmac "$stored")
	proof=$(unhex "$(xorhex "$ckey" "$csig")" | base64 -w0)
	imap_send "$(printf 'c=biws,r=%s,p=%s' "$r" "$proof" | base64 -w0)"
	if ! imap_line || [[ $line != "+ "* ]]; then
		echo "    no server-final: $line" >&2
		return 1
	fi
	final=$(base64 -d <<<"${line#+ }")
	skey=$(printf 'Server Key' | hmac "$salted")
	ssig=$(unhex "$(printf '%s' "$authm" | hmac "$skey")" | base64 -w0)
	[ "$final" = "v=$ssig" ] || { echo "    bad server signature" >&2; return 1; }
	imap_send ""
	if ! imap_line || [[ $line != "s OK"* ]]; then
		echo "    $line" >&2
		return 1
	fi
}

# --- implicit TLS, verified against CA_FILE and the name localhost
imap_open "$IMAPS_PORT" tls -verify_hostname "$CERT_HOST"
check "implicit TLS verifies (CA_FILE, host $CERT_HOST)" [ -n "${GREETING:-}" ]
check "pre-login advertises AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN" \
	has_caps "$(tr "[]" "  " <<<"${GREETING:-}")" AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN
check "LOGIN $USER1" imap_cmd a1 "LOGIN $USER1 $(quote "$PASS1")"
imap_cmd a2 CAPABILITY
CAPS=$(caps_of)
check "post-login CAPABILITY has everything the engine uses" has_caps "$CAPS" \
	IMAP4rev1 CONDSTORE QRESYNC IDLE NOTIFY METADATA ACL UIDPLUS MOVE SPECIAL-USE \
	LITERAL+ BINARY ENABLE ESEARCH LIST-EXTENDED LIST-STATUS NAMESPACE ID UNSELECT
imap_cmd a3 'LIST (SPECIAL-USE) "" "*"'
check "special-use Sent/Trash/Drafts exist" bash -c \
	'grep -q "\\\\Sent" <<<"$1" && grep -q "\\\\Trash" <<<"$1" && grep -q "\\\\Drafts" <<<"$1"' _ "$RESP"
imap_cmd a4 'ENABLE QRESYNC'
check "ENABLE QRESYNC" resp_has "* ENABLED QRESYNC"
imap_cmd a5 'SETMETADATA INBOX (/private/comment "hello")' && imap_cmd a6 'GETMETADATA INBOX /private/comment'
check "SETMETADATA/GETMETADATA (mail_attribute_dict works)" resp_has $'/private/comment {5}\nhello)'
imap_cmd a7 'MYRIGHTS INBOX'
check "MYRIGHTS INBOX (imap_acl loaded)" resp_has "* MYRIGHTS INBOX "
# NOTIFY needs mailbox_list_index: another client's delivery must be announced.
"$CTL" doveadm "$D" mailbox create -u "$USER1" NotifyBox
notified=
if imap_cmd a8 'NOTIFY SET (personal (MessageNew MessageExpunge))'; then
	printf 'Subject: n\r\n\r\nnotify me\r\n' | "$CTL" doveadm "$D" save -u "$USER1" -m NotifyBox
	while imap_line; do
		[[ $line == "* STATUS NotifyBox "*"MESSAGES 1"* ]] && { notified=1; break; }
	done
fi
check "NOTIFY reports another client's delivery (STATUS)" [ -n "$notified" ]
imap_close

check "implicit TLS also verifies by IP (SAN 127.0.0.1)" bash -c \
	'openssl s_client -connect "127.0.0.1:$1" -CAfile "$2" -verify_return_error -verify_ip 127.0.0.1 </dev/null >/dev/null 2>&1' \
	_ "$IMAPS_PORT" "$CA_FILE"

# --- SCRAM-SHA-256, and a password that needs quoting
imap_open "$IMAPS_PORT" tls -verify_hostname "$CERT_HOST"
check "AUTHENTICATE SCRAM-SHA-256 $USER1 (server signature checked)" scram_login "$USER1" "$PASS1"
imap_close
imap_open "$IMAPS_PORT" tls -verify_hostname "$CERT_HOST"
check "AUTHENTICATE SCRAM-SHA-256 $USER3 (password with \" \\ space {})" scram_login "$USER3" "$PASS3"
imap_close
imap_open "$IMAPS_PORT" tls -verify_hostname "$CERT_HOST"
check "LOGIN $USER3 with quoted special password" imap_cmd c1 "LOGIN $USER3 $(quote "$PASS3")"
imap_close
imap_open "$IMAPS_PORT" tls -verify_hostname "$CERT_HOST"
imap_cmd w1 "LOGIN $USER1 $(quote "wrong-$PASS1")"
check "wrong password is refused" resp_has "w1 NO "
imap_close

# --- STARTTLS + AUTHENTICATE PLAIN
check "plain port greets and offers STARTTLS" bash -c \
	'exec 3<>"/dev/tcp/127.0.0.1/$1"; read -r -t 5 g <&3; printf "c CAPABILITY\r\n" >&3;
	 read -r -t 5 c <&3; printf "z LOGOUT\r\n" >&3; [[ $g == "* OK"* && $c == *" STARTTLS"* ]]' _ "$IMAP_PORT"
imap_open "$IMAP_PORT" starttls -verify_hostname "$CERT_HOST"
check "STARTTLS AUTHENTICATE PLAIN $USER2" \
	imap_cmd p1 "AUTHENTICATE PLAIN $(printf '\0%s\0%s' "$USER2" "$PASS2" | base64 -w0)"
imap_cmd p2 CAPABILITY
check "post-STARTTLS-login CAPABILITY has CONDSTORE QRESYNC NOTIFY" has_caps "$(caps_of)" CONDSTORE QRESYNC NOTIFY
imap_close

# --- certificate failures
check "verification against OTHER_CA_FILE fails" bash -c \
	'! openssl s_client -connect "127.0.0.1:$1" -CAfile "$2" -verify_return_error </dev/null >/dev/null 2>&1' \
	_ "$IMAPS_PORT" "$OTHER_CA_FILE"
check "STARTTLS verification against OTHER_CA_FILE fails" bash -c \
	'! openssl s_client -connect "127.0.0.1:$1" -starttls imap -CAfile "$2" -verify_return_error </dev/null >/dev/null 2>&1' \
	_ "$IMAP_PORT" "$OTHER_CA_FILE"
check "WRONGHOST_PORT fails hostname verification for localhost" bash -c \
	'! openssl s_client -connect "127.0.0.1:$1" -CAfile "$2" -verify_return_error -verify_hostname localhost </dev/null >/dev/null 2>&1' \
	_ "$WRONGHOST_PORT" "$CA_FILE"
check "WRONGHOST_PORT fails IP verification for 127.0.0.1" bash -c \
	'! openssl s_client -connect "127.0.0.1:$1" -CAfile "$2" -verify_return_error -verify_ip 127.0.0.1 </dev/null >/dev/null 2>&1' \
	_ "$WRONGHOST_PORT" "$CA_FILE"
check "WRONGHOST_PORT verifies as $WRONG_CERT_HOST (same CA)" bash -c \
	'openssl s_client -connect "127.0.0.1:$1" -CAfile "$2" -verify_return_error -verify_hostname "$3" </dev/null >/dev/null 2>&1' \
	_ "$WRONGHOST_PORT" "$CA_FILE" "$WRONG_CERT_HOST"
check "WRONGHOST_STARTTLS_PORT fails hostname verification for localhost" bash -c \
	'! openssl s_client -connect "127.0.0.1:$1" -starttls imap -CAfile "$2" -verify_return_error -verify_hostname localhost </dev/null >/dev/null 2>&1' \
	_ "$WRONGHOST_STARTTLS_PORT" "$CA_FILE"

# --- seed + doveadm wrapper
check "seed" bash -c '"$1" seed "$2" >/dev/null' _ "$CTL" "$D"
check "doveadm wrapper sees seeded INBOX (4 messages)" bash -c \
	'[ "$("$1" doveadm "$2" -f flow mailbox status -u "$3" messages INBOX)" = "INBOX messages=4" ]' _ "$CTL" "$D" "$USER1"
imap_open "$IMAPS_PORT" tls -verify_hostname "$CERT_HOST"
imap_cmd s1 "LOGIN $USER1 $(quote "$PASS1")"
imap_cmd s2 'STATUS Projects/cpmsync (MESSAGES)'
check "IMAP sees seeded folder Projects/cpmsync" resp_has "(MESSAGES 1)"
imap_close

# --- capability knob: a second server with QRESYNC hidden
t0=$SECONDS
if DOVECOT_HIDE_CAPABILITY=QRESYNC "$CTL" start "$H" >"$WORK/start2.out" 2>&1; then
	ok "start with DOVECOT_HIDE_CAPABILITY=QRESYNC ($((SECONDS - t0))s)"
	HPORT=$(. "$H/env" && echo "$IMAPS_PORT")
	MAIN_CA=$CA_FILE
	CA_FILE=$(. "$H/env" && echo "$CA_FILE")
	imap_open "$HPORT" tls -verify_hostname "$CERT_HOST"
	HCAPS=
	if imap_cmd h1 "LOGIN $USER1 $(quote "$(. "$H/env" && echo "$PASS1")")" && imap_cmd h2 CAPABILITY; then
		HCAPS=$(caps_of)
	fi
	imap_close
	CA_FILE=$MAIN_CA
	check "knob hides QRESYNC" bash -c '[ -n "$1" ] && [[ " $1 " != *" QRESYNC "* ]]' _ "$HCAPS"
	check "knob keeps CONDSTORE NOTIFY ACL METADATA" has_caps "$HCAPS" CONDSTORE NOTIFY ACL METADATA
else
	not_ok "start with DOVECOT_HIDE_CAPABILITY=QRESYNC"
	cat "$WORK/start2.out"
fi

# --- stop leaves nothing behind
pids="$DOVECOT_PID $DOVECOT_WRONGHOST_PID"
check "stop" "$CTL" stop "$D"
left=
for p in $pids; do
	kill -0 "$p" 2>/dev/null && left+=" $p"
	pgrep -g "$p" >/dev/null && left+=" group-$p"
done
check "no process of the instance left${left:+ (left:$left)}" [ -z "$left" ]
open=
for p in "$IMAP_PORT" "$IMAPS_PORT" "$WRONGHOST_PORT" "$WRONGHOST_STARTTLS_PORT"; do
	ss -Htln "sport = :$p" | grep -q . && open+=" $p"
done
check "ports closed${open:+ (still open:$open)}" [ -z "$open" ]
check "stop again is harmless" "$CTL" stop "$D"
check "stop of the knob instance" "$CTL" stop "$H"
finish
