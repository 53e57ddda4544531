#!/usr/bin/env bash
# cpm-syncd --check against a real Dovecot: TLS, STARTTLS, and each way it
# must fail with a clear reason.  The password must never appear in any
# output, even with -v.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
SYNCD=$TOP/$B/cpm-syncd
WORK=$(mktemp -d)
chmod 0755 "$WORK"
DC=$WORK/dovecot
mkdir -p "$DC"
trap '"$TOP"/tests/dovecot/dovecot-ctl.sh stop "$DC" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
"$TOP"/tests/dovecot/dovecot-ctl.sh start "$DC" >/dev/null || { echo "cannot start dovecot"; echo "0 passed, 1 failed"; exit 1; }
. "$DC/env"

passed=0 failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }

pw=$WORK/alice.pw
printf '%s\n' "$PASS1" >"$pw"
chmod 0600 "$pw"
badpw=$WORK/bad.pw
printf 'not-%s\n' "$PASS1" >"$badpw"
chmod 0600 "$badpw"
openpw=$WORK/open.pw
printf '%s\n' "$PASS1" >"$openpw"
chmod 0644 "$openpw"

# account NAME KEY=VALUE... : one [account] section
account() {
	local name=$1
	shift
	echo "[account $name]"
	echo "user = $USER1"
	for kv in "$@"; do
		echo "${kv%%=*} = ${kv#*=}"
	done
	echo
}

conf=$WORK/cpmsync.conf
{
	echo "[general]"
	echo "database = $WORK/store.db"
	echo
	account tls "host=localhost" "port=$IMAPS_PORT" "ca_file=$CA_FILE" "password_file=$pw"
	account starttls "host=localhost" "port=$IMAP_PORT" "security=starttls" "ca_file=$CA_FILE" "password_file=$pw"
	account byip "host=127.0.0.1" "port=$IMAPS_PORT" "ca_file=$CA_FILE" "password_file=$pw"
	account plain "host=127.0.0.1" "port=$IMAP_PORT" "security=none" "password_file=$pw"
	account command "host=localhost" "port=$IMAPS_PORT" "ca_file=$CA_FILE" "password_command=cat $pw"
	account wrongpw "host=localhost" "port=$IMAPS_PORT" "ca_file=$CA_FILE" "password_file=$badpw"
	account untrusted "host=localhost" "port=$IMAPS_PORT" "ca_file=$OTHER_CA_FILE" "password_file=$pw"
	account wronghost "host=localhost" "port=$WRONGHOST_PORT" "ca_file=$CA_FILE" "password_file=$pw"
	account openpw "host=localhost" "port=$IMAPS_PORT" "ca_file=$CA_FILE" "password_file=$openpw"
	account closed "host=127.0.0.1" "port=1" "ca_file=$CA_FILE" "password_file=$pw"
} >"$conf"

ALL_OUT=$WORK/all-output
: >"$ALL_OUT"
# check NAME EXPECTED_EXIT PATTERN DESCRIPTION
check() {
	local name=$1 want=$2 pattern=$3 what=$4 out rc
	out=$("$SYNCD" --config "$conf" -v --check "$name" 2>"$WORK/err")
	rc=$?
	cat "$WORK/err" >>"$ALL_OUT"
	printf '%s\n' "$out" >>"$ALL_OUT"
	if [ "$rc" -eq "$want" ] && grep -qE -- "$pattern" <<<"$out"; then
		ok "$what"
	else
		not_ok "$what (exit $rc, output: $out)"
		sed 's/^/    /' "$WORK/err" | tail -n 20
	fi
}

check tls 0 '^tls: ok .*QRESYNC' "implicit TLS: ok and the capabilities after login"
check tls 0 '^tls: ok .*(CONDSTORE.*IDLE|IDLE.*CONDSTORE)' "post-login capabilities include CONDSTORE and IDLE"
check starttls 0 '^starttls: ok .*QRESYNC' "STARTTLS: ok"
check byip 0 '^byip: ok ' "certificate checked against an IP address"
check plain 0 '^plain: ok ' "security=none to a loopback host"
check command 0 '^command: ok ' "password_command"
check wrongpw 1 '^wrongpw: authentication failed' "wrong password: authentication failed"
check untrusted 1 '^untrusted: server certificate refused: .*(issuer|self.signed|unable)' "untrusted certificate refused"
check wronghost 1 '^wronghost: server certificate refused: the certificate does not match the host name' "certificate for another host refused"
check openpw 1 "^openpw: .*password file '$openpw' is readable by group or others" "password file readable by others refused"
check closed 1 '^closed: cannot connect to 127.0.0.1 port 1: Connection refused' "closed port"
check nosuch 1 '^nosuch: no such account' "unknown account named"

if grep -q "AUTHENTICATE SCRAM-SHA-256" "$ALL_OUT"; then
	ok "SCRAM-SHA-256 is the mechanism chosen"
else
	not_ok "SCRAM-SHA-256 is the mechanism chosen"
fi
# Each --check is a first login (nothing cached): its PBKDF2 ran on a
# thread, and the login went on from the result (issue 13).
if grep -q "[ >]tls: SCRAM: key derivation on its thread$" "$ALL_OUT" &&
	grep -q "[ >]tls: SCRAM: key derivation done$" "$ALL_OUT"; then
	ok "SCRAM's PBKDF2 ran off the event loop"
else
	not_ok "SCRAM's PBKDF2 ran off the event loop"
fi

# Every account at once: exit 1 because some fail, one line per account.
out=$("$SYNCD" --config "$conf" --check 2>>"$ALL_OUT")
rc=$?
printf '%s\n' "$out" >>"$ALL_OUT"
if [ $rc -eq 1 ] && [ "$(grep -c '^[a-z]*: ' <<<"$out")" -eq 10 ]; then
	ok "--check without an account checks all ten, exit 1"
else
	not_ok "--check without an account (exit $rc): $out"
fi

# --check reads which accounts are set offline from the store, when there
# is one (test-online-restart.sh); it makes none.
if [ -e "$WORK/store.db" ]; then
	not_ok "--check made no store: $(ls -l "$WORK/store.db")"
else
	ok "--check made no store"
fi

if grep -qF -- "$PASS1" "$ALL_OUT"; then
	not_ok "the password never appears in any output"
else
	ok "the password never appears in any output"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
