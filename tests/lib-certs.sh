# shellcheck shell=bash
# gen_test_certs DIR: the per-run TLS material of a test server, made with
# openssl into DIR: a CA (ca.crt/ca.key), an unrelated CA (other-ca.*), the
# server's certificate for localhost and 127.0.0.1 (server.*) signed by ca,
# and one for another name (wrong.*, "wrong.example"). Keys 0600, certs 0644.
# Returns 1 with openssl's last lines on stderr when a step fails.
# Sourced by tests/dovecot/dovecot-ctl.sh and tests/cyrus/cyrus-ctl.sh.
gen_test_certs() {
	local d=$1
	mkdir -p "$d" || return 1
	# Every step ends in `|| exit 1`: set -e does not apply inside a subshell
	# whose status is tested, as this one's is.
	if (
		cd "$d" || exit 1
		: >openssl.log || exit 1
		key() {
			openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
				-out "$1" 2>>openssl.log || exit 1
		}
		for ca in ca other-ca; do
			key "$ca.key"
			openssl req -x509 -new -key "$ca.key" -sha256 -days 3 \
				-subj "/O=cpmsync tests/CN=cpmsync test $ca $$" \
				-addext "basicConstraints=critical,CA:TRUE" \
				-addext "keyUsage=critical,keyCertSign,cRLSign" \
				-addext "subjectKeyIdentifier=hash" \
				-out "$ca.crt" 2>>openssl.log || exit 1
		done
		leaf() { # name cn san
			key "$1.key"
			openssl req -new -key "$1.key" -subj "/O=cpmsync tests/CN=$2" \
				-out "$1.csr" 2>>openssl.log || exit 1
			printf '%s\n' "basicConstraints=critical,CA:FALSE" \
				"keyUsage=critical,digitalSignature,keyEncipherment" \
				"extendedKeyUsage=serverAuth" \
				"subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" \
				"subjectAltName=$3" >"$1.ext" || exit 1
			openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
				-sha256 -days 2 -extfile "$1.ext" -out "$1.crt" 2>>openssl.log || exit 1
			rm -f "$1.csr" "$1.ext"
		}
		leaf server localhost "DNS:localhost,IP:127.0.0.1"
		leaf wrong wrong.example "DNS:wrong.example"
		# The servers' masters read the keys as root only; keep them private.
		chmod 0600 ./*.key && chmod 0644 ./*.crt || exit 1
	); then
		rm -f "$d/openssl.log"
		return 0
	fi
	echo "certificate generation failed in $d:" >&2
	tail -n 5 "$d/openssl.log" >&2 2>/dev/null
	return 1
}
