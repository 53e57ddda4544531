#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Throwaway Cyrus IMAP 3.6 for tests, beside Dovecot.  Debian's cyrus-imapd
# conflicts with dovecot-imapd, so the server is never installed: its two
# packages (cyrus-imapd, cyrus-common) are fetched with `apt-get download`
# and unpacked with `dpkg -x` into a cache (no maintainer script runs), and
# run from there with `-C DIR/imapd.conf` given to every service (Cyrus's
# master does not hand its own -C on).  Everything else lives in DIR, on
# 127.0.0.1 only; /etc/imapd.conf, /var/lib/cyrus and /run/cyrus are never
# read or written.
#
#   cyrus-ctl.sh fetch              make sure the unpacked server is in the cache
#   cyrus-ctl.sh start DIR          generate certs/users/config, start, wait, write DIR/env
#   cyrus-ctl.sh stop DIR           stop master and every process it started (idempotent)
#   cyrus-ctl.sh status DIR         exit 0 if master is running
#   cyrus-ctl.sh seed DIR           the sample mail of dovecot-ctl.sh seed, for USER1
#   cyrus-ctl.sh imap DIR ARGS...   tests/cyrus/cyrus-imap.py ARGS... against it
#                                   (doveadm-like: mailbox create -u alice X, save ...)
#   cyrus-ctl.sh log DIR            print the server log
#
# After start, `. DIR/env` gives (all exported) the names dovecot-ctl.sh
# gives, so a test can use either server:
#   IMAP_HOST=127.0.0.1  IMAP_PORT (plain + STARTTLS)  IMAPS_PORT (implicit TLS)
#   CA_FILE (per-run CA)  OTHER_CA_FILE  CERT_HOST=localhost  CERT_IP=127.0.0.1
#   USER1=alice PASS1  USER2=bob PASS2  USER3=carol PASS3 (odd characters)
# and CYRUS_DIR CYRUS_CONF CYRUS_LOG CYRUS_PID CYRUS_NAMESPACE (alt|classic)
# CYRUS_PASSWORDS CYRUS_ADMIN CYRUS_ADMIN_PASS CYRUS_LMTP_SOCKET.
#
# Knobs (environment variables read by start):
#   CYRUS_NAMESPACE=alt|classic   alt (default): altnamespace, '/' separator,
#       personal folders at the top.  classic: '.' separator, personal
#       folders under INBOX. (cpmsync shows them as INBOX/...).
#   CYRUS_HIDE_CAPABILITY="QRESYNC ..."   suppress_capabilities: the words are
#       no longer advertised (the commands still work, as with Dovecot).
#   CYRUS_FSYNC=yes   keep fsync (by default the log shim makes it a no-op).
#   CYRUS_START_TIMEOUT=seconds (default 20).
#   CYRUS_CACHE=DIR   where the unpacked packages are kept (default
#       /var/cache/cpmsync as root, else ${XDG_CACHE_HOME:-~/.cache}/cpmsync).
#   CYRUS_ROOT=DIR    use this unpacked tree (DIR/usr/lib/cyrus/bin/master ...).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib-certs.sh
. "$HERE/../lib-certs.sh"
PKGS=(cyrus-common cyrus-imapd)

die() {
	echo "cyrus-ctl: $*" >&2
	exit 1
}

usage() {
	sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

# Single-quote for a POSIX shell.
q() {
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}

have() { command -v "$1" >/dev/null 2>&1; }

python() {
	# Debian's python3 (tests/deps.sh) first: a pyenv shim costs 100 ms a call.
	if [ -x /usr/bin/python3 ]; then /usr/bin/python3 "$@"; else python3 "$@"; fi
}

# --- obtaining the server ---------------------------------------------------

cache_dir() {
	if [ -n "${CYRUS_CACHE:-}" ]; then
		echo "$CYRUS_CACHE"
	elif [ "$(id -u)" -eq 0 ]; then
		echo /var/cache/cpmsync
	else
		echo "${XDG_CACHE_HOME:-$HOME/.cache}/cpmsync"
	fi
}

# The candidate version of cyrus-imapd in apt's lists, e.g. 3.6.1-4+deb12u5.
cyrus_version() {
	apt-cache policy cyrus-imapd 2>/dev/null | awk '/Candidate:/ { print $2; exit }'
}

root_ok() { [ -x "$1/usr/lib/cyrus/bin/master" ] && [ -x "$1/usr/lib/cyrus/bin/imapd" ]; }

# Prints the unpacked tree, fetching it first if needed.
cmd_fetch() {
	local cache ver root tmp rc
	if [ -n "${CYRUS_ROOT:-}" ]; then
		root_ok "$CYRUS_ROOT" || die "CYRUS_ROOT=$CYRUS_ROOT has no usr/lib/cyrus/bin/master and imapd"
		echo "$CYRUS_ROOT"
		return 0
	fi
	if ! have apt-get || ! have dpkg; then
		die "Cyrus is obtained with apt-get download and dpkg -x: not a Debian system"
	fi
	cache=$(cache_dir)
	mkdir -p "$cache" || die "cannot create $cache"
	ver=$(cyrus_version)
	if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
		# Lists never fetched on this machine: the newest unpacked one will do.
		root=$(find "$cache" -maxdepth 1 -name 'cyrus-*' -type d 2>/dev/null | sort -V | tail -n 1)
		if [ -n "$root" ] && root_ok "$root"; then
			echo "$root"
			return 0
		fi
		if [ "$(id -u)" -eq 0 ]; then
			apt-get update -q >&2 || die "apt-get update failed"
			ver=$(cyrus_version)
		fi
		if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
			die "apt knows no cyrus-imapd package (Debian's main archive has it; run apt-get update)"
		fi
	fi
	root=$cache/cyrus-$ver
	if root_ok "$root"; then
		echo "$root"
		return 0
	fi
	# One download at a time (parallel tests); the tree appears atomically.
	exec 9>"$cache/.cyrus.lock"
	flock 9
	if root_ok "$root"; then
		echo "$root"
		return 0
	fi
	tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
	chmod 0755 "$tmp"
	echo "cyrus-ctl: fetching cyrus-imapd $ver into $root (apt-get download; not installed)" >&2
	rc=0
	(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "${PKGS[@]/%/=$ver}" >&2) || rc=$?
	if [ $rc -ne 0 ] && [ "$(id -u)" -eq 0 ]; then
		apt-get update -q >&2 && (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "${PKGS[@]/%/=$ver}" >&2) && rc=0
	fi
	if [ $rc -ne 0 ]; then
		rm -rf "$tmp"
		die "apt-get download ${PKGS[*]} failed"
	fi
	mkdir "$tmp/root"
	for f in "$tmp"/*.deb; do
		dpkg -x "$f" "$tmp/root" || {
			rm -rf "$tmp"
			die "dpkg -x $f failed"
		}
	done
	root_ok "$tmp/root" || {
		rm -rf "$tmp"
		die "the packages hold no usr/lib/cyrus/bin/master and imapd"
	}
	rm -rf "$root"
	mv "$tmp/root" "$root"
	rm -rf "$tmp"
	echo "$root"
}

# --- ports, certificates (as tests/dovecot/dovecot-ctl.sh) -------------------

port_listening() {
	if have ss; then
		ss -Htln "sport = :$1" 2>/dev/null | grep -q .
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# N distinct free ports below the ephemeral range (as dovecot-ctl.sh).
pick_ports() {
	local n=$1 lo=32768 hi=60999 min max p picked=()
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	if [ "$lo" -gt 12000 ]; then
		min=10000 max=$((lo - 1))
	elif [ "$hi" -lt 63000 ]; then
		min=$((hi + 1)) max=65535
	else
		min=20000 max=30000
	fi
	while [ ${#picked[@]} -lt "$n" ]; do
		p=$((min + SRANDOM % (max - min + 1)))
		case " ${picked[*]} " in *" $p "*) continue ;; esac
		port_listening "$p" && continue
		picked+=("$p")
	done
	echo "${picked[@]}"
}


# Reads "* OK" from a port: $1 port, $2 = tls|plain.
greets() {
	local line
	if [ "$2" = tls ]; then
		line=$({ sleep 0.3; printf 'x LOGOUT\r\n'; } |
			timeout 5 openssl s_client -connect "127.0.0.1:$1" -CAfile "$DIR/tls/ca.crt" \
				-verify_return_error -quiet -nocommands 2>/dev/null | head -n 1) || true
	else
		line=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -n 1 <&3 && printf "x LOGOUT\r\n" >&3' _ "$1" 2>/dev/null) || true
	fi
	[[ $line == "* OK"* ]]
}

# --- processes ----------------------------------------------------------------

master_pid() {
	local pid comm
	[ -r "$DIR/master.pid" ] || return 1
	read -r pid <"$DIR/master.pid" || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	read -r comm <"/proc/$pid/comm" 2>/dev/null || return 1
	[ "$comm" = master ] || return 1
	echo "$pid"
}

# Every process whose command line holds "-C DIR/imapd.conf": master's
# services, also orphaned ones after a master killed with -9.
our_pids() {
	local re
	re=$(printf '%s' "-C $DIR/imapd.conf" | sed 's/[][\\.*^$+?(){}|]/\\&/g')
	pgrep -f -- "$re( |\$)" || true
}

cmd_stop() {
	local pid i pids
	if pid=$(master_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	for ((i = 0; i < 50; i++)); do
		pids=$(our_pids)
		[ -z "$pids" ] && break
		# shellcheck disable=SC2086 # a list of pids
		[ "$i" -eq 0 ] && kill -TERM $pids 2>/dev/null
		# shellcheck disable=SC2086
		[ "$i" -eq 30 ] && kill -KILL $pids 2>/dev/null
		sleep 0.1
	done
	pids=$(our_pids)
	[ -z "$pids" ] || die "processes of $DIR still running: $pids"
	if [ -r "$DIR/.sockdir" ]; then
		local s
		read -r s <"$DIR/.sockdir"
		[ "$s" != "$DIR/sock" ] && rm -rf -- "$s"
	fi
	return 0
}

cmd_status() {
	master_pid >/dev/null
}

# --- start --------------------------------------------------------------------

write_conf() { # ns hide imap-port imaps-port
	local altns=yes sep=yes
	if [ "$1" = classic ]; then altns=no sep=no; fi
	cat >"$DIR/imapd.conf" <<EOF
# written by tests/cyrus/cyrus-ctl.sh
configdirectory: $DIR/conf
partition-default: $DIR/spool
defaultpartition: default
servername: localhost
admins: cyradmin
cyrus_user: $RUN_USER
cyrus_group: $RUN_GROUP
altnamespace: $altns
unixhierarchysep: $sep
virtdomains: off
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $DIR/sasldb2
sasl_mech_list: SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN
allowplaintext: yes
tls_server_cert: $DIR/tls/server.crt
tls_server_key: $DIR/tls/server.key
tls_versions: tls1_2 tls1_3
idlesocket: $SOCK/idle
notifysocket: $SOCK/notify
lmtpsocket: $SOCK/lmtp
sievedir: $DIR/conf/sieve
annotation_allow_undefined: yes
syslog_prefix: cpmcyrus
EOF
	if [ -n "$2" ]; then
		echo "suppress_capabilities: $2" >>"$DIR/imapd.conf"
	fi
	local bin=$ROOT/usr/lib/cyrus/bin c="-C $DIR/imapd.conf"
	cat >"$DIR/cyrus.conf" <<EOF
# written by tests/cyrus/cyrus-ctl.sh; every command carries -C itself
START {
  recover cmd="$bin/ctl_cyrusdb $c -r"
}
SERVICES {
  imap cmd="$bin/imapd $c" listen="127.0.0.1:$3" prefork=0
  imaps cmd="$bin/imapd -s $c" listen="127.0.0.1:$4" prefork=0
  lmtpunix cmd="$bin/lmtpd $c" listen="$SOCK/lmtp" prefork=0
}
EVENTS {
  checkpoint cmd="$bin/ctl_cyrusdb $c -c" period=30
}
DAEMON {
  idled cmd="$bin/idled $c"
}
EOF
}

cmd_start() {
	local ns timeout attempt i ok pass1 pass2 pass3 passa w rc
	have openssl || die "openssl not found (run tests/deps.sh)"
	have saslpasswd2 || die "saslpasswd2 not found (sasl2-bin; run tests/deps.sh)"
	[[ $DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR must not contain spaces or special characters: $DIR"
	master_pid >/dev/null && die "an instance is already running in $DIR"
	[ -z "$(our_pids)" ] || die "processes of an earlier instance in $DIR still hold its ports: $(our_pids | tr '\n' ' ')(cyrus-ctl.sh stop $DIR)"
	ns=${CYRUS_NAMESPACE:-alt}
	case $ns in alt | classic) ;; *) die "CYRUS_NAMESPACE must be alt or classic" ;; esac
	timeout=${CYRUS_START_TIMEOUT:-20}
	ROOT=$(cmd_fetch) || die "cannot obtain Cyrus"
	export LD_LIBRARY_PATH=$ROOT/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	if LD_LIBRARY_PATH=$LD_LIBRARY_PATH ldd "$ROOT/usr/lib/cyrus/bin/imapd" | grep -q 'not found'; then
		die "libraries of Cyrus missing (run tests/deps.sh): $(ldd "$ROOT/usr/lib/cyrus/bin/imapd" | grep 'not found' | awk '{print $1}' | tr '\n' ' ')"
	fi

	if [ "$(id -u)" -eq 0 ]; then
		# master drops to this user; the cyrus user exists only where
		# cyrus-common was installed.
		if getent passwd cyrus >/dev/null; then RUN_USER=cyrus; else RUN_USER=nobody; fi
		RUN_GROUP=$(id -gn "$RUN_USER")
		chmod 0755 "$DIR"
		local p=$DIR
		while [ "$p" != / ]; do
			p=$(dirname "$p")
			[ -n "$(find "$p" -maxdepth 0 -perm -o+x)" ] ||
				die "$p is not traversable by other users; Cyrus runs as $RUN_USER (use a DIR under /tmp)"
		done
	else
		RUN_USER=$(id -un)
		RUN_GROUP=$(id -gn)
	fi
	SOCK=$DIR/sock
	if [ ${#SOCK} -gt 80 ]; then
		SOCK=$(mktemp -d /tmp/cpmcy.XXXXXX)
		chmod 0755 "$SOCK"
	fi
	echo "$SOCK" >"$DIR/.sockdir"
	trap 'rc=$?; if [ $rc -ne 0 ]; then cmd_stop >/dev/null 2>&1 || true; fi' EXIT

	rm -rf "$DIR/conf" "$DIR/spool"
	mkdir -p "$DIR/log" "$DIR/lib" "$SOCK" "$DIR/spool" \
		"$DIR"/conf/{db,proc,lock,log,socket,sieve,user,quota,msg,ptclient}
	gen_test_certs "$DIR/tls" || die "cannot make the TLS certificates (openssl)"
	# The log shim: Cyrus logs only to syslog, and there is no /dev/log.
	local shim=
	if have cc && cc -shared -fPIC -O2 -o "$DIR/lib/cyrus-log-shim.so" "$HERE/cyrus-log-shim.c" 2>"$DIR/log/shim-build.log"; then
		shim=$DIR/lib/cyrus-log-shim.so
	else
		echo "cyrus-ctl: no log shim (cc failed, see $DIR/log/shim-build.log): the server logs nothing" >&2
	fi

	pass1="alice-$(openssl rand -hex 6)"
	pass2="bob-$(openssl rand -hex 6)"
	pass3="c \"q\" \\ {3} $(openssl rand -hex 3)"
	passa="admin-$(openssl rand -hex 8)"
	rm -f "$DIR/sasldb2"
	printf '%s\t%s\n' alice "$pass1" bob "$pass2" carol "$pass3" >"$DIR/passwords"
	chmod 0600 "$DIR/passwords"
	for u in alice bob carol cyradmin; do
		case $u in
		alice) pw=$pass1 ;; bob) pw=$pass2 ;; carol) pw=$pass3 ;; *) pw=$passa ;;
		esac
		printf '%s' "$pw" | saslpasswd2 -f "$DIR/sasldb2" -u localhost -c -p "$u" ||
			die "saslpasswd2 $u failed"
	done
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$RUN_USER:$RUN_GROUP" "$DIR/conf" "$DIR/spool" "$DIR/sasldb2" "$DIR/log" "$SOCK"
		chown "$RUN_USER" "$DIR/tls/server.key" # read by imapd as $RUN_USER
	fi

	export CYRUS_SHIM_LOG=$DIR/log/cyrus.log
	export CYRUS_SHIM_NOFSYNC=1
	case ${CYRUS_FSYNC:-} in 1 | yes | true) CYRUS_SHIM_NOFSYNC=0 ;; esac
	[ -n "$shim" ] && export LD_PRELOAD=$shim
	: >"$DIR/log/cyrus.log"
	[ "$(id -u)" -eq 0 ] && chown "$RUN_USER:$RUN_GROUP" "$DIR/log/cyrus.log"

	ok=
	for ((attempt = 1; attempt <= 6 && !ok; attempt++)); do
		read -r IMAP_PORT IMAPS_PORT <<<"$(pick_ports 2)"
		write_conf "$ns" "${CYRUS_HIDE_CAPABILITY:-}" "$IMAP_PORT" "$IMAPS_PORT"
		rm -f "$DIR/master.pid"
		"$ROOT/usr/lib/cyrus/bin/master" -C "$DIR/imapd.conf" -M "$DIR/cyrus.conf" \
			-p "$DIR/master.pid" -d >"$DIR/log/master.out" 2>&1 </dev/null ||
			{
				cat "$DIR/log/master.out" "$DIR/log/cyrus.log" >&2
				die "master failed to start"
			}
		for ((i = 0; i < timeout * 5; i++)); do
			if greets "$IMAP_PORT" plain && greets "$IMAPS_PORT" tls; then
				ok=1
				break
			fi
			if ! master_pid >/dev/null && [ "$i" -gt 5 ]; then
				break
			fi
			# a port taken meanwhile: master logs it and the service is off
			if grep -q 'Address already in use' "$DIR/log/cyrus.log" 2>/dev/null; then
				break
			fi
			sleep 0.2
		done
		if [ -z "$ok" ]; then
			if grep -q 'Address already in use' "$DIR/log/cyrus.log" 2>/dev/null; then
				cmd_stop >/dev/null 2>&1 || true
				: >"$DIR/log/cyrus.log"
				continue
			fi
			echo "cyrus-ctl: cyrus did not answer within ${timeout}s; log:" >&2
			cat "$DIR/log/master.out" "$DIR/log/cyrus.log" >&2 2>/dev/null || true
			die "start failed"
		fi
	done
	[ -n "$ok" ] || die "start failed: no free ports after 6 attempts"

	w=$DIR/env.tmp
	{
		echo "# written by tests/cyrus/cyrus-ctl.sh start; source it"
		for v in \
			"CYRUS_DIR=$DIR" \
			"CYRUS_CONF=$DIR/imapd.conf" \
			"CYRUS_LOG=$DIR/log/cyrus.log" \
			"CYRUS_PID=$(master_pid)" \
			"CYRUS_ROOT=$ROOT" \
			"CYRUS_NAMESPACE=$ns" \
			"CYRUS_PASSWORDS=$DIR/passwords" \
			"CYRUS_ADMIN=cyradmin" "CYRUS_ADMIN_PASS=$passa" \
			"CYRUS_LMTP_SOCKET=$SOCK/lmtp" \
			"IMAP_HOST=127.0.0.1" \
			"IMAP_PORT=$IMAP_PORT" \
			"IMAPS_PORT=$IMAPS_PORT" \
			"CA_FILE=$DIR/tls/ca.crt" \
			"OTHER_CA_FILE=$DIR/tls/other-ca.crt" \
			"CERT_HOST=localhost" \
			"CERT_IP=127.0.0.1" \
			"USER1=alice" "PASS1=$pass1" \
			"USER2=bob" "PASS2=$pass2" \
			"USER3=carol" "PASS3=$pass3"; do
			printf 'export %s=%s\n' "${v%%=*}" "$(q "${v#*=}")"
		done
	} >"$w"
	chmod 0644 "$w"
	mv "$w" "$DIR/env"
	# The users' mailboxes and special-use folders.
	(. "$DIR/env" && python "$HERE/cyrus-imap.py" setup) || die "creating the users failed"
	trap - EXIT
	echo "cyrus-ctl: started in $DIR ($ns namespace): imap 127.0.0.1:$IMAP_PORT imaps 127.0.0.1:$IMAPS_PORT"
}

cmd_imap() {
	[ -r "$DIR/env" ] || die "$DIR/env missing (start first)"
	. "$DIR/env"
	python "$HERE/cyrus-imap.py" "$@"
}

[ $# -ge 1 ] || usage
cmd=$1
if [ "$cmd" = fetch ]; then
	cmd_fetch
	exit
fi
[ $# -ge 2 ] || usage
[ "$cmd" = start ] && mkdir -p -- "$2"
[ -d "$2" ] || die "no such directory: $2"
DIR=$(cd -- "$2" && pwd -P)
shift 2
case $cmd in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
seed) cmd_imap seed alice ;;
imap) cmd_imap "$@" ;;
log) cat "$DIR/log/cyrus.log" ;;
*) usage ;;
esac
