#!/usr/bin/env bash
# Throwaway Dovecot 2.3 for tests and demos.  Everything lives in DIR; it
# never reads or touches /etc/dovecot or the system dovecot service, never uses
# ports 143/993, and listens on 127.0.0.1 only.
#
#   dovecot-ctl.sh start DIR      generate certs/users/config, start, wait, write DIR/env
#   dovecot-ctl.sh stop DIR       stop both instances, wait until ports are closed (idempotent)
#   dovecot-ctl.sh status DIR     exit 0 if the main instance is running
#   dovecot-ctl.sh seed DIR       deliver sample mail to USER1 (and USER2)
#   dovecot-ctl.sh doveadm DIR ARGS...   doveadm -c DIR/dovecot.conf ARGS...
#   dovecot-ctl.sh log DIR        print the server logs
#
# DIR must exist or be creatable; use a fresh `mktemp -d` (start chmods it
# 0755 when run as root, since Dovecot's unprivileged processes must reach it).
# After start, `. DIR/env` gives (all exported):
#   DOVECOT_DIR DOVECOT_CONF DOVECOT_LOG
#   IMAP_HOST=127.0.0.1  IMAP_PORT (plain + STARTTLS)  IMAPS_PORT (implicit TLS)
#   CA_FILE (per-run CA)  OTHER_CA_FILE (a CA that did not sign anything used)
#   CERT_HOST=localhost   CERT_IP=127.0.0.1   (both are SANs of the server cert)
#   WRONGHOST_PORT (implicit TLS) WRONGHOST_STARTTLS_PORT: a second instance,
#     same users and mail, whose cert (same CA) names only WRONG_CERT_HOST=wrong.example
#   USER1=alice PASS1  USER2=bob PASS2  USER3=carol PASS3 (PASS3 holds a space,
#     double quotes, a backslash and braces, to exercise quoting)
#   MAIL_UID MAIL_GID (owner of the mail files)
#
# Knobs (environment variables read by start):
#   DOVECOT_IMAP_CAPABILITY="..."  imap_capability verbatim ("+FOO" appends to
#       the default).  A full override replaces everything: Dovecot then no
#       longer adds ACL/METADATA itself, and the pre-login greeting advertises
#       the same list (plus AUTH=...).
#   DOVECOT_HIDE_CAPABILITY="QRESYNC CONDSTORE ..."  Dovecot 2.3.19's default
#       post-login list minus these words (hiding ACL also drops RIGHTS=texk and
#       the imap_acl plugin; hiding METADATA sets imap_metadata = no).  Dovecot
#       still accepts e.g. ENABLE QRESYNC: hiding only changes what is advertised.
#   DOVECOT_PLAINTEXT_AUTH=yes  disable_plaintext_auth = no.  Note: Dovecot treats
#       127.0.0.1 -> 127.0.0.1 as secured, so LOGIN/AUTHENTICATE PLAIN without
#       STARTTLS already work on IMAP_PORT (no LOGINDISABLED) either way.
#   DOVECOT_DEBUG=yes  auth_debug, mail_debug, verbose_ssl.
#   DOVECOT_EXTRA_CONF=FILE  appended to both generated configs (last wins).
#   DOVECOT_START_TIMEOUT=seconds (default 20).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib-certs.sh
. "$HERE/../lib-certs.sh"
DOVECOT_BIN=${DOVECOT_BIN:-/usr/sbin/dovecot}
DOVEADM_BIN=${DOVEADM_BIN:-/usr/bin/doveadm}

# Dovecot 2.3.19's default post-login capability with imap_metadata = yes and
# imap_acl loaded (as seen on Debian 12's 2.3.19.1).
DEFAULT_CAPS="IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY \
THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL \
CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 \
CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS \
BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ \
NOTIFY METADATA SPECIAL-USE ACL RIGHTS=texk"

die() {
	echo "dovecot-ctl: $*" >&2
	exit 1
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

# Single-quote for a POSIX shell.
q() {
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}

abs_dir() { # dir create?
	[ -n "$1" ] || die "missing DIR"
	[ "$2" = create ] && mkdir -p -- "$1"
	[ -d "$1" ] || die "no such directory: $1"
	(cd -- "$1" && pwd -P)
}

have() { command -v "$1" >/dev/null 2>&1; }

port_listening() {
	if have ss; then
		ss -Htln "sport = :$1" 2>/dev/null | grep -q .
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# Prints N distinct ports that nothing listens on, below the ephemeral range
# (so no outgoing connection can be holding them).  A race with another
# process is still possible; start retries with new ports on EADDRINUSE.
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

# name password uid gid home -> passwd-file line with a SCRAM-SHA-256 hash
# (which also verifies PLAIN and LOGIN).
user_line() {
	local hash
	hash=$("$DOVEADM_BIN" -c "$CONF" pw -s SCRAM-SHA-256 -p "$2") || die "doveadm pw failed"
	printf '%s:%s:%s:%s::%s::\n' "$1" "$hash" "$3" "$4" "$5"
}

subst_conf() { # template out instance-short cert key imap-port imaps-port
	local sedargs=() k v
	local -A vals=(
		[DIR]=$DIR [BASE_DIR]=$BASE_ROOT/$3 [STATE_DIR]=$DIR/state/$3
		[INSTANCE]="cpmsync-test-$ID-$3" [INSTANCE_SHORT]=$3
		[DEBUG]=$DEBUG [INTERNAL_USER]=$INTERNAL_USER [INTERNAL_GROUP]=$INTERNAL_GROUP
		[LOGIN_USER]=$LOGIN_USER [MAIL_UID]=$MAIL_UID [MAIL_GID]=$MAIL_GID
		[CERT_FILE]=$4 [KEY_FILE]=$5 [IMAP_PORT]=$6 [IMAPS_PORT]=$7
		[DISABLE_PLAINTEXT_AUTH]=$DISABLE_PLAINTEXT_AUTH
		[IMAP_CAPABILITY]=$IMAP_CAPABILITY [IMAP_ACL_PLUGIN]=$IMAP_ACL_PLUGIN
		[IMAP_METADATA]=$IMAP_METADATA
		[CHROOT_LOGIN]=$CHROOT_LOGIN [CHROOT_ANVIL]=$CHROOT_ANVIL [CHROOT_TOKEN]=$CHROOT_TOKEN
	)
	for k in "${!vals[@]}"; do
		v=${vals[$k]}
		v=${v//\\/\\\\}
		v=${v//|/\\|}
		v=${v//&/\\&}
		sedargs+=(-e "s|@$k@|$v|g")
	done
	sed "${sedargs[@]}" "$1" >"$2"
	if [ -n "${DOVECOT_EXTRA_CONF:-}" ]; then
		printf '\n# --- DOVECOT_EXTRA_CONF=%s\n' "$DOVECOT_EXTRA_CONF" >>"$2"
		cat -- "$DOVECOT_EXTRA_CONF" >>"$2"
	fi
	if grep -v '^[[:space:]]*#' "$2" | grep -qE '@[A-Z_]+@'; then
		die "unsubstituted placeholder in $2"
	fi
}

master_pid() { # base_dir
	local pid comm
	[ -r "$1/master.pid" ] || return 1
	read -r pid <"$1/master.pid" || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	# not some unrelated process that reused the pid
	read -r comm <"/proc/$pid/comm" 2>/dev/null || return 1
	[ "$comm" = dovecot ] || return 1
	echo "$pid"
}

# stop_instances BASE_DIR... -- PORT...: SIGTERM every master at once (each
# takes ~2.5 s to exit: Dovecot sleeps while its log process flushes), wait
# for them and their process groups, SIGKILL what is left after 10 s, then
# wait until the ports are closed.
stop_instances() {
	local pids=() pid b i p busy alive
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		if pid=$(master_pid "$1"); then
			kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
		fi
		shift
	done
	[ $# -gt 0 ] && shift
	# Masters whose pid file is not where expected (e.g. DOVECOT_EXTRA_CONF
	# moved base_dir): found by their exact command line.
	for b in "$DIR/dovecot.conf" "$DIR/dovecot-wronghost.conf"; do
		for pid in $(pgrep -fx "$DOVECOT_BIN -c $b" 2>/dev/null); do
			case " ${pids[*]} " in *" $pid "*) continue ;; esac
			kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
		done
	done
	for ((i = 0; i < 100 && ${#pids[@]} > 0; i++)); do
		alive=
		for pid in "${pids[@]}"; do
			# The master setsid()s when it daemonizes: its children share
			# its process group.
			if kill -0 "$pid" 2>/dev/null || pgrep -g "$pid" >/dev/null; then
				alive=1
			fi
		done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for pid in "${pids[@]}"; do
		if kill -0 "$pid" 2>/dev/null || pgrep -g "$pid" >/dev/null; then
			echo "dovecot-ctl: dovecot $pid did not stop, killing its process group" >&2
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
		fi
	done
	for ((i = 0; i < 50; i++)); do
		busy=
		for p in "$@"; do
			[ -n "$p" ] && port_listening "$p" && busy=$p
		done
		[ -z "$busy" ] && return 0
		sleep 0.1
	done
	echo "dovecot-ctl: port $busy still listening after stop" >&2
	return 1
}

# Reads "* OK" from a port: $1 port, $2 = tls|plain.
greets() {
	local line
	if [ "$2" = tls ]; then
		line=$({ sleep 0.3; printf 'x LOGOUT\r\n'; } |
			timeout 5 openssl s_client -connect "127.0.0.1:$1" -CAfile "$CA" \
				-verify_return_error -quiet -nocommands 2>/dev/null | head -n 1) || true
	else
		line=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -n 1 <&3 && printf "x LOGOUT\r\n" >&3' _ "$1" 2>/dev/null) || true
	fi
	[[ $line == "* OK"* ]]
}

load_env() {
	[ -r "$DIR/env" ] || return 1
	. "$DIR/env"
}

cmd_stop() {
	local rc=0 root
	if [ -r "$DIR/env" ]; then
		load_env
		stop_instances "$DOVECOT_BASE_DIR" "$DOVECOT_WRONGHOST_BASE_DIR" -- \
			"$IMAP_PORT" "$IMAPS_PORT" "$WRONGHOST_PORT" "$WRONGHOST_STARTTLS_PORT" || rc=1
	fi
	# Also covers a start that failed before writing env.
	if [ -r "$DIR/.base_root" ]; then
		read -r root <"$DIR/.base_root"
		stop_instances "$root/main" "$root/wronghost" || rc=1
		if [ "$root" != "$DIR/run" ] && [ -d "$root" ]; then
			rm -rf -- "$root"
		fi
	fi
	return $rc
}

start_one() { # conf short -> 0 ok, 2 address in use, 1 other failure
	local out rc=0
	# Not $(...): the daemonized master keeps inherited pipes open, and a
	# command substitution would wait for them forever.
	local so
	so=$DIR/log/$(basename "$1" .conf).start-out
	"$DOVECOT_BIN" -c "$1" >"$so" 2>&1 </dev/null || rc=$?
	out=$(cat "$so")
	if [ $rc -ne 0 ]; then
		if grep -q 'Address already in use' <<<"$out"; then
			return 2
		fi
		echo "$out" >&2
		return 1
	fi
	return 0
}

cmd_start() {
	local uid timeout attempt rc i ok w
	[ -x "$DOVECOT_BIN" ] || die "$DOVECOT_BIN not found (run tests/deps.sh)"
	have openssl || die "openssl not found (run tests/deps.sh)"
	[[ $DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "DIR must not contain spaces or special characters: $DIR"
	if load_env 2>/dev/null && master_pid "$DOVECOT_BASE_DIR" >/dev/null; then
		die "an instance is already running in $DIR"
	fi
	ID=$$
	uid=$(id -u)
	timeout=${DOVECOT_START_TIMEOUT:-20}
	DEBUG=no
	case ${DOVECOT_DEBUG:-} in 1 | yes | true) DEBUG=yes ;; esac
	DISABLE_PLAINTEXT_AUTH=yes
	case ${DOVECOT_PLAINTEXT_AUTH:-} in 1 | yes | true) DISABLE_PLAINTEXT_AUTH=no ;; esac
	IMAP_CAPABILITY=${DOVECOT_IMAP_CAPABILITY:-}
	IMAP_ACL_PLUGIN=imap_acl
	IMAP_METADATA=yes
	if [ -n "${DOVECOT_HIDE_CAPABILITY:-}" ]; then
		local c h caps=()
		for c in ${IMAP_CAPABILITY:-$DEFAULT_CAPS}; do
			for h in $DOVECOT_HIDE_CAPABILITY; do
				[ "${c^^}" = "${h^^}" ] && continue 2
				[ "${h^^}" = ACL ] && [[ ${c^^} == RIGHTS=* ]] && continue 2
			done
			caps+=("$c")
		done
		IMAP_CAPABILITY="${caps[*]}"
		for h in ${DOVECOT_HIDE_CAPABILITY^^}; do
			case $h in
			ACL) IMAP_ACL_PLUGIN= ;;
			METADATA) IMAP_METADATA=no ;;
			esac
		done
	fi

	if [ "$uid" -eq 0 ]; then
		if ! getent passwd dovecot >/dev/null || ! getent passwd dovenull >/dev/null; then
			die "users dovecot/dovenull missing (is dovecot-core installed?)"
		fi
		INTERNAL_USER=dovecot
		INTERNAL_GROUP=$(id -gn dovecot)
		LOGIN_USER=dovenull
		MAIL_UID=$(id -u dovecot)
		MAIL_GID=$(id -g dovecot)
		CHROOT_LOGIN=login CHROOT_ANVIL=empty CHROOT_TOKEN=token-login
		# dovecot/dovenull/the mail uid must be able to reach DIR.
		chmod 0755 "$DIR"
		local p=$DIR
		while [ "$p" != / ]; do
			p=$(dirname "$p")
			[ -n "$(find "$p" -maxdepth 0 -perm -o+x)" ] ||
				die "$p is not traversable by other users; Dovecot's unprivileged processes need it (use a DIR under /tmp)"
		done
	else
		INTERNAL_USER=$(id -un)
		INTERNAL_GROUP=$(id -gn)
		LOGIN_USER=$INTERNAL_USER
		MAIL_UID=$uid
		MAIL_GID=$(id -g)
		CHROOT_LOGIN='' CHROOT_ANVIL='' CHROOT_TOKEN=""
	fi

	# base_dir holds unix sockets (sun_path <= 107 bytes): keep it short.
	BASE_ROOT=$DIR/run
	if [ ${#BASE_ROOT} -gt 60 ]; then
		BASE_ROOT=$(mktemp -d /tmp/cpmdc.XXXXXX)
		chmod 0755 "$BASE_ROOT"
	fi
	echo "$BASE_ROOT" >"$DIR/.base_root"
	trap 'rc=$?; if [ $rc -ne 0 ]; then cmd_stop >/dev/null 2>&1 || true; fi' EXIT

	mkdir -p "$DIR/log" "$DIR/state/main" "$DIR/state/wronghost" "$BASE_ROOT" "$DIR/home" "$DIR/shared"
	CA=$DIR/tls/ca.crt
	gen_test_certs "$DIR/tls" || die "cannot make the TLS certificates (openssl)"

	# A minimal config for `doveadm pw` (it would otherwise read /etc/dovecot).
	CONF=$DIR/dovecot.conf
	: >"$CONF"
	local pass1 pass2 pass3
	pass1="alice-$(openssl rand -hex 6)"
	pass2="bob-$(openssl rand -hex 6)"
	pass3="c \"q\" \\ {3} $(openssl rand -hex 3)"
	{
		user_line alice "$pass1" "$MAIL_UID" "$MAIL_GID" "$DIR/home/alice"
		user_line bob "$pass2" "$MAIL_UID" "$MAIL_GID" "$DIR/home/bob"
		user_line carol "$pass3" "$MAIL_UID" "$MAIL_GID" "$DIR/home/carol"
	} >"$DIR/users"
	chmod 0644 "$DIR/users"
	mkdir -p "$DIR/home/alice" "$DIR/home/bob" "$DIR/home/carol"
	if [ "$uid" -eq 0 ]; then
		chown -R "$MAIL_UID:$MAIL_GID" "$DIR/home" "$DIR/shared"
	fi

	rc=2
	for ((attempt = 1; attempt <= 8 && rc == 2; attempt++)); do
		read -r IMAP_PORT IMAPS_PORT WH_IMAP_PORT WH_IMAPS_PORT <<<"$(pick_ports 4)"
		subst_conf "$HERE/dovecot.conf.in" "$DIR/dovecot.conf" main \
			"$DIR/tls/server.crt" "$DIR/tls/server.key" "$IMAP_PORT" "$IMAPS_PORT"
		subst_conf "$HERE/dovecot.conf.in" "$DIR/dovecot-wronghost.conf" wronghost \
			"$DIR/tls/wrong.crt" "$DIR/tls/wrong.key" "$WH_IMAP_PORT" "$WH_IMAPS_PORT"
		rc=0
		start_one "$DIR/dovecot.conf" || rc=$?
		if [ $rc -eq 0 ]; then
			start_one "$DIR/dovecot-wronghost.conf" || rc=$?
			if [ $rc -ne 0 ]; then
				stop_instances "$BASE_ROOT/main" -- "$IMAP_PORT" "$IMAPS_PORT" || true
			fi
		fi
	done
	if [ $rc -ne 0 ]; then
		echo "dovecot-ctl: dovecot failed to start; log:" >&2
		cat "$DIR"/log/*.log >&2 2>/dev/null || true
		die "start failed"
	fi

	ok=
	for ((i = 0; i < timeout * 5; i++)); do
		if greets "$IMAP_PORT" plain && greets "$IMAPS_PORT" tls &&
			greets "$WH_IMAP_PORT" plain && greets "$WH_IMAPS_PORT" tls; then
			ok=1
			break
		fi
		sleep 0.2
	done
	if [ -z "$ok" ]; then
		echo "dovecot-ctl: dovecot did not answer within ${timeout}s; log:" >&2
		cat "$DIR"/log/*.log >&2 2>/dev/null || true
		die "start failed"
	fi

	w=$DIR/env.tmp
	{
		echo "# written by tests/dovecot/dovecot-ctl.sh start; source it"
		for v in \
			"DOVECOT_DIR=$DIR" \
			"DOVECOT_CONF=$DIR/dovecot.conf" \
			"DOVECOT_LOG=$DIR/log/main.log" \
			"DOVECOT_BASE_DIR=$BASE_ROOT/main" \
			"DOVECOT_PID=$(master_pid "$BASE_ROOT/main")" \
			"DOVECOT_WRONGHOST_CONF=$DIR/dovecot-wronghost.conf" \
			"DOVECOT_WRONGHOST_BASE_DIR=$BASE_ROOT/wronghost" \
			"DOVECOT_WRONGHOST_PID=$(master_pid "$BASE_ROOT/wronghost")" \
			"IMAP_HOST=127.0.0.1" \
			"IMAP_PORT=$IMAP_PORT" \
			"IMAPS_PORT=$IMAPS_PORT" \
			"CA_FILE=$DIR/tls/ca.crt" \
			"OTHER_CA_FILE=$DIR/tls/other-ca.crt" \
			"CERT_HOST=localhost" \
			"CERT_IP=127.0.0.1" \
			"WRONGHOST_PORT=$WH_IMAPS_PORT" \
			"WRONGHOST_STARTTLS_PORT=$WH_IMAP_PORT" \
			"WRONG_CERT_HOST=wrong.example" \
			"USER1=alice" "PASS1=$pass1" \
			"USER2=bob" "PASS2=$pass2" \
			"USER3=carol" "PASS3=$pass3" \
			"MAIL_UID=$MAIL_UID" "MAIL_GID=$MAIL_GID"; do
			printf 'export %s=%s\n' "${v%%=*}" "$(q "${v#*=}")"
		done
	} >"$w"
	chmod 0644 "$w"
	mv "$w" "$DIR/env"
	trap - EXIT
	echo "dovecot-ctl: started in $DIR: imap 127.0.0.1:$IMAP_PORT imaps 127.0.0.1:$IMAPS_PORT (wronghost imaps :$WH_IMAPS_PORT)"
}

cmd_status() {
	load_env || return 1
	master_pid "$DOVECOT_BASE_DIR" >/dev/null
}

cmd_doveadm() {
	[ -r "$DIR/dovecot.conf" ] || die "no dovecot.conf in $DIR (not started?)"
	exec "$DOVEADM_BIN" -c "$DIR/dovecot.conf" "$@"
}

# msg FROM TO SUBJECT BODY [EXTRA-HEADER...]
msg() {
	local from=$1 to=$2 subj=$3 body=$4 h
	shift 4
	printf 'From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s.%s@cpmsync.test>\r\n' \
		"$from" "$to" "$subj" "$(date -R)" "$(date +%s%N)" "$RANDOM"
	for h in "$@"; do printf '%s\r\n' "$h"; done
	printf 'MIME-Version: 1.0\r\n'
	case $body in
	multipart)
		printf 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
		printf -- '--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSee attachment \xe2\x80\x94 r\xc3\xa9sum\xc3\xa9.\r\n'
		printf -- '--b1\r\nContent-Type: application/octet-stream; name="data.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
		head -c 3000 /dev/urandom | base64 | sed 's/$/\r/'
		printf -- '--b1--\r\n'
		;;
	*)
		printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n' "$body"
		;;
	esac
}

cmd_seed() {
	load_env || die "$DIR/env missing (start first)"
	local da=("$DOVEADM_BIN" -c "$DOVECOT_CONF") u=$USER1 i
	"${da[@]}" mailbox create -u "$u" Archive Projects Projects/cpmsync
	for i in 1 2 3; do
		msg "Bob <bob@cpmsync.test>" "Alice <alice@cpmsync.test>" "Hello $i" \
			"Plain message number $i." | "${da[@]}" save -u "$u" -m INBOX
	done
	msg "Carol <carol@cpmsync.test>" "Alice <alice@cpmsync.test>" \
		"=?UTF-8?Q?R=C3=A9sum=C3=A9_attached?=" multipart | "${da[@]}" save -u "$u" -m INBOX
	for i in 1 2; do
		msg "Alice <alice@cpmsync.test>" "Bob <bob@cpmsync.test>" "Archived $i" \
			"Old message $i." | "${da[@]}" save -u "$u" -m Archive
	done
	msg "Alice <alice@cpmsync.test>" "Team <team@cpmsync.test>" "Release plan" \
		"Ship it." | "${da[@]}" save -u "$u" -m Projects/cpmsync
	msg "Alice <alice@cpmsync.test>" "Bob <bob@cpmsync.test>" "Sent one" \
		"Sent." | "${da[@]}" save -u "$u" -m Sent
	"${da[@]}" flags add -u "$u" '\Seen' mailbox INBOX uid 1:2
	"${da[@]}" flags add -u "$u" '\Flagged' mailbox INBOX uid 2
	"${da[@]}" flags add -u "$u" '\Seen' mailbox Archive all
	"${da[@]}" flags add -u "$u" '\Seen' mailbox Sent all
	msg "Alice <alice@cpmsync.test>" "Bob <bob@cpmsync.test>" "Hi Bob" \
		"For bob." | "${da[@]}" save -u "$USER2" -m INBOX
	echo "dovecot-ctl: seeded $u (INBOX 4, Archive 2, Projects/cpmsync 1, Sent 1) and $USER2 (INBOX 1)"
}

[ $# -ge 2 ] || usage
cmd=$1
DIR=$(abs_dir "$2" "$([ "$cmd" = start ] && echo create)")
shift 2
case $cmd in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
seed) cmd_seed ;;
doveadm) cmd_doveadm "$@" ;;
log) cat "$DIR"/log/*.log ;;
*) usage ;;
esac
