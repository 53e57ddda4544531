#!/usr/bin/env bash
# Mutual TLS against a real Dovecot that requires and verifies client
# certificates (ssl_verify_client_cert, auth_ssl_require_client_cert,
# auth_ssl_username_from_cert, auth_mechanisms = external), with a per-run
# client CA made here with openssl:
#   - a good certificate (CN=alice, signed by that CA) logs in with SASL
#     EXTERNAL and no password at all (--check, then a --once sync);
#   - an untrusted one (signed by another CA) and an expired one (the right
#     CA, valid for one day in 2020) are refused, and the reason says the
#     server did not accept the certificate and which one it was;
#   - without client_cert the login fails saying EXTERNAL needs one;
#   - a client_cert file whose key does not match is refused locally.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
case $B in /*) BDIR=$B ;; *) BDIR=$TOP/$B ;; esac
SYNCD=$BDIR/cpm-syncd
WORK=$(mktemp -d)
chmod 0755 "$WORK"
DC=$WORK/dovecot
PKI=$WORK/pki
mkdir -p "$DC" "$PKI/db"
trap '"$TOP"/tests/dovecot/dovecot-ctl.sh stop "$DC" >/dev/null 2>&1; rm -rf "$WORK"' EXIT

passed=0 failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
bail() {
	echo "not ok - setup: $1"
	echo "$passed passed, $((failed + 1)) failed"
	exit 1
}

# --- the client PKI -----------------------------------------------------
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
cd "$PKI" || bail "cd $PKI"
key ca.key || bail "CA key"
openssl req -x509 -new -key ca.key -sha256 -days 3 -subj "/O=cpmsync tests/CN=client CA" \
	-out ca.crt 2>/dev/null || bail "client CA"
key other.key || bail "other CA key"
openssl req -x509 -new -key other.key -sha256 -days 3 -subj "/O=cpmsync tests/CN=other CA" \
	-out other.crt 2>/dev/null || bail "other CA"
key alice.key || bail "alice key"
key stray.key || bail "stray key"
openssl req -new -key alice.key -subj "/O=cpmsync tests/CN=alice" -out alice.csr 2>/dev/null ||
	bail "alice CSR"
openssl x509 -req -in alice.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -sha256 \
	-out good.crt 2>/dev/null || bail "good certificate"
openssl x509 -req -in alice.csr -CA other.crt -CAkey other.key -CAcreateserial -days 2 \
	-sha256 -out untrusted.crt 2>/dev/null || bail "untrusted certificate"
# openssl x509 cannot back-date; openssl ca can (-startdate/-enddate).
: >db/index
echo 01 >db/serial
cat >ca.cnf <<'CNF'
[ca]
default_ca = d
[d]
dir = .
database = db/index
serial = db/serial
new_certs_dir = db
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
organizationName = optional
CNF
openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in alice.csr \
	-startdate 20200101000000Z -enddate 20200102000000Z -out expired.crt 2>/dev/null ||
	bail "expired certificate"
for c in good untrusted expired; do
	cat "$c.crt" alice.key >"$c.pem" || bail "$c.pem"
	chmod 0600 "$c.pem"
done
cat good.crt stray.key >mismatch.pem || bail "mismatch.pem"
chmod 0600 mismatch.pem
chmod 0644 ca.crt
cd "$TOP" || bail "cd $TOP"

# --- Dovecot requiring client certificates -----------------------------
cat >"$WORK/client-cert.conf" <<CONF || bail "extra conf"
ssl_ca = <$PKI/ca.crt
ssl_verify_client_cert = yes
ssl_require_crl = no
auth_ssl_require_client_cert = yes
auth_ssl_username_from_cert = yes
ssl_cert_username_field = commonName
auth_mechanisms = external
# EXTERNAL checks no password: the certificate is the credential.
passdb {
  driver = static
  args = nopassword=y
}
CONF
DOVECOT_EXTRA_CONF=$WORK/client-cert.conf "$TOP"/tests/dovecot/dovecot-ctl.sh start "$DC" \
	>"$WORK/start.log" 2>&1 || {
	cat "$WORK/start.log"
	bail "cannot start dovecot"
}
. "$DC/env"

conf=$WORK/cpmsync.conf
{
	echo "[general]"
	echo "database = $WORK/store.db"
	echo "outbox = $WORK/outbox"
	for c in good untrusted expired mismatch; do
		printf '\n[account %s]\nhost = localhost\nport = %s\nuser = %s\nca_file = %s\n' \
			"$c" "$IMAPS_PORT" "$USER1" "$CA_FILE"
		printf 'client_cert = %s\n' "$PKI/$c.pem"
	done
	printf '\n[account nocert]\nhost = localhost\nport = %s\nuser = %s\nca_file = %s\n' \
		"$IMAPS_PORT" "$USER1" "$CA_FILE"
	printf 'password_command = echo %s\n' "$PASS1"
} >"$conf" || bail "config"

# check NAME EXPECTED_EXIT EXPECTED_OUTPUT(exact) DESCRIPTION
check() {
	local name=$1 want=$2 text=$3 what=$4 out rc
	out=$(timeout 60 "$SYNCD" --config "$conf" --check "$name" 2>"$WORK/err")
	rc=$?
	if [ "$rc" -eq "$want" ] && [ "$out" = "$text" ]; then
		ok "$what"
		echo "    $out" | cut -c1-200
	else
		not_ok "$what (exit $rc)"
		echo "    got:  $out"
		echo "    want: $text"
		sed 's/^/    /' "$WORK/err" | tail -n 10
	fi
}

out=$(timeout 60 "$SYNCD" --config "$conf" --check good 2>"$WORK/err")
rc=$?
if [ $rc -eq 0 ] && [[ $out == "good: ok IMAP4rev1 "* ]]; then
	ok "a trusted certificate logs in with no password configured"
	echo "    ${out:0:120} ..."
else
	not_ok "a trusted certificate logs in with no password configured (exit $rc: $out)"
	sed 's/^/    /' "$WORK/err" | tail -n 10
fi
if grep -q "Login: user=<$USER1>, method=EXTERNAL" "$DOVECOT_LOG"; then
	ok "Dovecot logged $USER1 in by EXTERNAL"
else
	not_ok "Dovecot logged $USER1 in by EXTERNAL"
	tail -n 5 "$DOVECOT_LOG" | sed 's/^/    /'
fi
v=$(timeout 60 "$SYNCD" --config "$conf" -v --check good 2>&1 >/dev/null)
if grep -q ' C: a1 AUTHENTICATE EXTERNAL <redacted>$' <<<"$v" &&
	! grep -qiE ' C: a[0-9]+ (LOGIN|AUTHENTICATE (PLAIN|SCRAM))' <<<"$v"; then
	ok "the login was AUTHENTICATE EXTERNAL, nothing else"
else
	not_ok "the login was AUTHENTICATE EXTERNAL, nothing else"
	grep ' C: ' <<<"$v" | head -n 5 | sed 's/^/    /'
fi
"$TOP"/tests/dovecot/dovecot-ctl.sh seed "$DC" >/dev/null 2>&1 || bail "seed"
printf '[general]\ndatabase = %s\noutbox = %s\n\n[account good]\nhost = localhost\nport = %s\nuser = %s\nca_file = %s\nclient_cert = %s\n' \
	"$WORK/sync.db" "$WORK/outbox" "$IMAPS_PORT" "$USER1" "$CA_FILE" "$PKI/good.pem" >"$WORK/sync.conf"
if timeout 120 "$SYNCD" --config "$WORK/sync.conf" --once --no-dbus >"$WORK/once.log" 2>&1; then
	ok "cpm-syncd --once syncs over the certificate login"
	n=$("$BDIR/cpmctl" dump --db "$WORK/sync.db" good 2>/dev/null | grep -c '^good	INBOX	')
	want=$("$TOP"/tests/dovecot/dovecot-ctl.sh doveadm "$DC" search -u "$USER1" mailbox INBOX ALL | wc -l)
	if [ "$n" -gt 0 ] && [ "$n" -eq "$want" ]; then
		ok "the store holds INBOX's $want messages"
	else
		not_ok "the store holds INBOX's messages (store $n, server $want)"
	fi
else
	not_ok "cpm-syncd --once syncs over the certificate login"
	tail -n 5 "$WORK/once.log" | sed 's/^/    /'
fi

why="the server did not accept the client certificate"
check untrusted 1 "untrusted: authentication failed: $why (/O=cpmsync tests/CN=alice, issued by /O=cpmsync tests/CN=other CA, valid until $(openssl x509 -in "$PKI/untrusted.crt" -noout -enddate | sed 's/^notAfter=//')) for SASL EXTERNAL: Client didn't present valid SSL certificate" \
	"a certificate from another CA is refused, and the reason names it"
check expired 1 "expired: authentication failed: $why (/CN=alice/O=cpmsync tests, issued by /O=cpmsync tests/CN=client CA, valid until Jan  2 00:00:00 2020 GMT (expired)) for SASL EXTERNAL: Client didn't present valid SSL certificate" \
	"an expired certificate is refused, and the reason says it expired"
check nocert 1 "nocert: the server only offers SASL EXTERNAL, which needs a client certificate (client_cert)" \
	"without client_cert the login fails saying why"
out=$(timeout 60 "$SYNCD" --config "$conf" --check mismatch 2>/dev/null)
if [[ $out == "mismatch: cannot use client_cert '$PKI/mismatch.pem' (a PEM certificate and its key)"* ]]; then
	ok "a certificate with the wrong key is refused before the handshake"
else
	not_ok "a certificate with the wrong key is refused before the handshake ($out)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
