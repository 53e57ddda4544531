#!/usr/bin/env bash
# Shared functions for the sync integration tests (tests/integration/
# test-sync-*.sh).  Not a test itself: `make check` runs test-*.sh only.
# Source it after `set -u`:
#
#   . "$(dirname "$0")/lib-sync.sh"
#   lib_init                      WORK (0755 temp dir), trap cleanup, tools checked
#   dc_start NAME                 the test server in $WORK/NAME (knobs such as
#                                 DOVECOT_HIDE_CAPABILITY come from the environment);
#                                 sources its env; it becomes the current one (DC)
#   dc_stop NAME                  stops it early (cleanup stops every one anyway)
#   da ARGS...                    doveadm against the current Dovecot, or on Cyrus
#                                 the same command line through tests/cyrus/cyrus-imap.py
#
# SERVER (environment) picks the server every dc_start starts:
#   dovecot (default)   tests/dovecot/dovecot-ctl.sh
#   cyrus-alt           tests/cyrus/cyrus-ctl.sh, alt namespace ('/', no INBOX. prefix)
#   cyrus-classic       tests/cyrus/cyrus-ctl.sh, classic namespace (INBOX., '.')
# DOVECOT_HIDE_CAPABILITY is applied to Cyrus too (suppress_capabilities).
# finish prints the count as "SERVER: N passed, N failed".
#   write_conf FILE DB            a config with one account "a" = $USER1 over TLS
#   server_dump USER [ACCOUNT]    the server's state in `cpmctl dump` format,
#                                 read with doveadm only (default account "a")
#   compare CONF-DB [ACCOUNT]     diffs `cpmctl dump` against server_dump $USER1;
#                                 prints the diff and returns 1 on mismatch
#   msg_save USER FOLDER MSGID [SIZE [FLAG...]]   one message saved with doveadm
#   clear_conf FILE DB PORT [TIMEOUT]   account "a" = $USER1 over clear text to 127.0.0.1:PORT
#   proxy_start ARGS... / proxy_stop   tests/tools/imap-proxy in front of the server
#   mut_* / mutate N              random server-side mutations (see below)
#   ok / not_ok / check NAME CMD... / expect WHAT GOT WANT
#                                 TAP-like counting; finish prints the
#                                 "N passed, N failed" line and exits
#
# Random choices use $RANDOM in the calling shell only (never in a
# subshell), so seeding RANDOM reproduces the same sequence of mutations.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=${B:-build}
case $B in /*) BDIR=$B ;; *) BDIR=$TOP/$B ;; esac
SYNCD=$BDIR/cpm-syncd
CPMCTL=$BDIR/cpmctl
OP=$BDIR/tests/tools/cpmsync-op
SERVER=${SERVER:-dovecot}
case $SERVER in
dovecot) CTL=$TOP/tests/dovecot/dovecot-ctl.sh ;;
cyrus-alt | cyrus-classic) CTL=$TOP/tests/cyrus/cyrus-ctl.sh ;;
*)
	echo "lib-sync: SERVER must be dovecot, cyrus-alt or cyrus-classic, not '$SERVER'" >&2
	exit 1
	;;
esac
export LC_ALL=C.UTF-8
# Debian's python3 (tests/deps.sh) first: a pyenv shim costs 100 ms a call.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
is_cyrus() { [ "$SERVER" != dovecot ]; }
# Folder names are the same on every server: relative to the personal
# namespace (the NAME the tests create is INBOX.NAME in Cyrus's classic
# namespace, and cpmsync, cpmctl dump and cyrus-imap.py all call it NAME).

. "$(dirname "${BASH_SOURCE[0]}")/lib-tap.sh"
TAP_PREFIX="$SERVER: "
# bail REASON: a fatal setup problem
bail() {
	not_ok "$1"
	finish
}

WORK=
DCS=()
BG_PIDS=()
lib_cleanup() {
	local p d
	proxy_stop
	for p in "${BG_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for d in "${DCS[@]}"; do
		"$CTL" stop "$d" >/dev/null 2>&1
	done
	[ -n "$WORK" ] || return 0
	if [ -n "${KEEP_WORK:-}" ]; then
		echo "# kept $WORK" >&2
	elif [ "$failed" -gt 0 ]; then
		# the logs of the runs are what tells a rare failure's cause
		echo "# kept $WORK: $failed checks failed (its logs tell why; remove it when done)" >&2
	else
		rm -rf "$WORK"
	fi
}
lib_init() {
	local f
	WORK=$(mktemp -d /tmp/cpmsync-it.XXXXXX)
	chmod 0755 "$WORK"
	trap lib_cleanup EXIT
	for f in "$SYNCD" "$CPMCTL" "$OP"; do
		[ -x "$f" ] || bail "missing $f (make all tests)"
	done
}

DC=
dc_start() { # NAME
	local d=$WORK/$1
	mkdir -p "$d"
	chmod 0755 "$d"
	DCS+=("$d")
	if is_cyrus; then
		CYRUS_NAMESPACE=${SERVER#cyrus-} CYRUS_HIDE_CAPABILITY=${DOVECOT_HIDE_CAPABILITY:-} \
			"$CTL" start "$d" >"$WORK/$1.start.log" 2>&1
	else
		"$CTL" start "$d" >"$WORK/$1.start.log" 2>&1
	fi || {
		cat "$WORK/$1.start.log"
		bail "cannot start $SERVER $1"
	}
	DC=$d
	. "$d/env"
}
dc_stop() { # NAME
	"$CTL" stop "$WORK/$1" >/dev/null 2>&1
}
dc_seed() {
	"$CTL" seed "$DC" >/dev/null
}

da() {
	if is_cyrus; then
		"$PY" "$TOP/tests/cyrus/cyrus-imap.py" "$@"
	else
		doveadm -c "$DOVECOT_CONF" "$@"
	fi
}

# --- the daemon on a private bus (tests/integration/test-dbus.sh, test-cpmctl-live.sh) ---
DBUS=$BDIR/tests/tools/cpmsync-dbus
A=/org/cpmsync/a
BUS_PID=
DAEMON_PID=
# bus_start: a private session dbus-daemon, never the user's (BUS_PID: the
# caller stops it), and HOME and XDG_* inside WORK
bus_start() {
	[ -x "$DBUS" ] || bail "missing $DBUS (make all tests)"
	command -v dbus-daemon >/dev/null || bail "dbus-daemon is not installed"
	dbus-daemon --session --fork --nopidfile --print-address=3 --print-pid=4 \
		3>"$WORK/bus.addr" 4>"$WORK/bus.pid" || bail "cannot start dbus-daemon"
	# shellcheck disable=SC2034 # the sourcing test stops it
	BUS_PID=$(cat "$WORK/bus.pid")
	DBUS_SESSION_BUS_ADDRESS=$(head -n 1 "$WORK/bus.addr")
	export DBUS_SESSION_BUS_ADDRESS
	unset DBUS_SYSTEM_BUS_ADDRESS
	export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config XDG_DATA_HOME=$WORK/home/.local/share
	mkdir -p "$HOME"
}
# dbus_setup: what every D-Bus test does first: stop_all (the signal
# monitor MON_PID if the test starts one, the daemon DAEMON_PID, the bus
# BUS_PID) and lib_cleanup at exit, then bus_start.  A test with more to
# stop sets its own EXIT trap calling stop_all.
MON_PID=
stop_all() {
	[ -n "$MON_PID" ] && kill "$MON_PID" 2>/dev/null
	[ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
	[ -n "$BUS_PID" ] && kill "$BUS_PID" 2>/dev/null
}
dbus_setup() {
	trap 'stop_all; lib_cleanup' EXIT
	bus_start
}
call() { "$DBUS" call "$@"; }
# Signals ($WORK/signals.log, written by a `cpmsync-dbus monitor` the test
# starts): sigmark, then saw_signal REGEX looks only at the lines after it.
sigmark() { SIGMARK=$(wc -l <"$WORK/signals.log"); }
signals_since() { tail -n +$((SIGMARK + 1)) "$WORK/signals.log"; }
saw_signal() { signals_since | grep -qE "$1"; }
# start_daemon: cpm-syncd -c $CONF in the background (DAEMON_PID, log in
# $WORK/daemon.log); fails unless it takes org.cpmsync within 10 s
start_daemon() {
	"$SYNCD" -c "${CONF:?}" -v 2>>"$WORK/daemon.log" &
	# shellcheck disable=SC2034 # the sourcing test stops it
	DAEMON_PID=$!
	"$DBUS" wait-owner 10 >/dev/null || return 1
}
# eventually SECONDS COMMAND...: retries until it succeeds
eventually() {
	local t=$1 i
	shift
	for i in $(seq $((t * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	"$@"
}
acct() { "$DBUS" get "$A" org.cpmsync.Account1 "$1"; }
wait_state() { # wait_state STATE SECONDS
	local i
	for i in $(seq $(($2 * 10))); do
		[ "$(acct State 2>/dev/null)" = "$1" ] && return 0
		sleep 0.1
	done
	echo "    State is '$(acct State 2>&1)', not $1 (LastError: $(acct LastError 2>&1))"
	return 1
}

write_conf() { # FILE DB
	local pw=$WORK/alice.pw
	printf '%s\n' "$PASS1" >"$pw"
	chmod 0600 "$pw"
	cat >"$1" <<EOF
[general]
database = $2
outbox = $WORK/outbox
[account a]
host = localhost
port = $IMAPS_PORT
ca_file = $CA_FILE
user = $USER1
password_file = $pw
EOF
}

# selectable_folders USER: the names of the user's mailboxes that exist
# (`mailbox status` skips \Noselect/\NonExistent ones, which `mailbox list`
# shows, e.g. the parents of A/B/C)
selectable_folders() {
	da -f tab mailbox status -u "$1" messages '*' | tail -n +2 | cut -f1
}

# The server's state in the contract's dump format, read with doveadm only:
# ACCOUNT TAB FOLDER TAB UID TAB FLAGS TAB MESSAGE-ID, flags without \Recent
# sorted bytewise, Message-ID trimmed, sorted by folder then uid.  Mailboxes
# that cannot be selected (\Noselect, \NonExistent) are skipped.
server_dump() { # USER [ACCOUNT]
	local user=$1 acct=${2:-a} mb
	if is_cyrus; then
		da dump "$user" "$acct" | LC_ALL=C sort -t$'\t' -k2,2 -k3,3n
		return
	fi
	selectable_folders "$user" | while IFS= read -r mb; do
		# -f tab: a header line, then uid TAB flags TAB value; a folded
		# header continues on the next line(s) (no leading uid)
		da -f tab fetch -u "$user" 'uid flags hdr.message-id' mailbox "$mb" |
			tail -n +2 | MB=$mb ACCT=$acct LC_ALL=C awk -F'\t' '
			function flush() {
				if (!have) return
				gsub(/^[ \t\r\n]+|[ \t\r\n]+$/, "", mid)
				printf "%s\t%s\t%s\t%s\t%s\n", ENVIRON["ACCT"], ENVIRON["MB"], uid, fl, mid
				have = 0
			}
			/^[0-9]+\t/ {
				flush()
				uid = $1
				n = split($2, f, " ")
				for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
					if (f[j] < f[i]) { t = f[i]; f[i] = f[j]; f[j] = t }
				fl = ""
				for (i = 1; i <= n; i++) if (f[i] != "\\Recent") fl = fl (fl == "" ? "" : " ") f[i]
				mid = $0; sub(/^[^\t]*\t[^\t]*\t/, "", mid)
				have = 1
				next
			}
			{ mid = mid "\n" $0 }
			END { flush() }'
	done | LC_ALL=C sort -t$'\t' -k2,2 -k3,3n
}

# compare DB [ACCOUNT]: cpmctl dump == server_dump $USER1
compare() {
	local db=$1 acct=${2:-a}
	server_dump "$USER1" "$acct" >"$WORK/server.dump"
	"$CPMCTL" dump --db "$db" "$acct" >"$WORK/local.dump" 2>"$WORK/dump.err" || {
		echo "    cpmctl dump failed: $(head -c 300 "$WORK/dump.err")"
		return 1
	}
	if ! diff -u "$WORK/server.dump" "$WORK/local.dump" >"$WORK/compare.diff"; then
		echo "    dump differs (--- server, +++ local; $(wc -l <"$WORK/server.dump") vs $(wc -l <"$WORK/local.dump") lines):"
		tail -n +3 "$WORK/compare.diff" | grep '^[-+]' | head -n 30 | sed 's/^/    /'
		return 1
	fi
}

# sync CONF [LOG]: cpm-syncd --once -v, stderr to LOG; prints the reason on failure
SYNC_TIMEOUT=${SYNC_TIMEOUT:-120}
sync_once() {
	local conf=$1 log=${2:-$WORK/sync.log} rc
	timeout "$SYNC_TIMEOUT" "$SYNCD" -c "$conf" --once -v 2>"$log"
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "    cpm-syncd --once exited $rc:"
		grep -v ' [CS]: ' "$log" | tail -n 8 | sed 's/^/    /'
	fi
	return $rc
}

# --- tests/tools/imap-proxy between cpm-syncd and the server -----------------
# (test-sync-faults.sh, test-sync-move-cut.sh, test-session-push.sh)

# clear_conf FILE DB PORT [TIMEOUT]: a config with one account "a" = $USER1
# over clear text to 127.0.0.1:PORT (the server's IMAP_PORT, or a proxy's),
# its password in $WORK/pw (written here), the command timeout TIMEOUT s
# (default 3)
clear_conf() {
	printf '%s\n' "$PASS1" >"$WORK/pw"
	chmod 0600 "$WORK/pw"
	cat >"$1" <<EOF
[general]
database = $2
[account a]
host = 127.0.0.1
port = $3
security = none
user = $USER1
password_file = $WORK/pw
timeout = ${4:-3}
EOF
}

# proxy_start ARGS...: an imap-proxy from a free port to the current server's
# IMAP_PORT (PROXY_TO_PORT if set), with ARGS (the fault to inject, or
# --delay-ms), its log in $WORK/proxy.log:
# PROXY_PID, and PROXY_PORT to connect to.  The proxy before is stopped
# first; bails unless the new one listens within 5 s.  lib_cleanup stops it.
# proxy_stop: stops the proxy (if one runs) and waits for it.
PROXY=$BDIR/tests/tools/imap-proxy
PROXY_PID=
PROXY_PORT=
# bulk_save FOLDER FIRST LAST TAG BODY: messages FIRST..LAST of FOLDER
# ("Subject: big N", Message-ID <bigN@TAG.test>, BODY) at once, written
# into its Maildir (Dovecot) or APPENDed in one session (Cyrus), not one
# doveadm call each.  FOLDER must exist.
bulk_save() {
	local folder=$1 first=$2 last=$3 tag=$4 body=$5 i md
	if is_cyrus; then
		md=$WORK/bulk-maildir
		rm -rf "$md"
		mkdir -p "$md/cur" || return 1
	else
		md=$(da mailbox path -u "$USER1" "$folder") || return 1
	fi
	[ -d "$md/cur" ] || { echo "    no Maildir for $folder at $md"; return 1; }
	for i in $(seq "$first" "$last"); do
		printf 'From: a@x\r\nSubject: big %s\r\nMessage-ID: <big%s@%s.test>\r\n\r\n%s\r\n' \
			"$i" "$i" "$tag" "$body" >"$md/cur/$(printf '%06d' "$i").M${i}P$$.$tag:2," || return 1
	done
	if is_cyrus; then
		da import-maildir -u "$USER1" "$folder" "$md/cur"
	else
		chown -R "$MAIL_UID:$MAIL_GID" "$md"
	fi
}
proxy_start() {
	proxy_stop
	rm -f "$WORK/port"
	"$PROXY" --listen-port-file "$WORK/port" --to "127.0.0.1:${PROXY_TO_PORT:-$IMAP_PORT}" "$@" \
		2>"$WORK/proxy.log" &
	PROXY_PID=$!
	for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
	[ -s "$WORK/port" ] || bail "imap-proxy did not start: $(cat "$WORK/proxy.log")"
	# shellcheck disable=SC2034 # read by the sourcing test
	PROXY_PORT=$(cat "$WORK/port")
}
proxy_stop() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=
}

# --- messages ---------------------------------------------------------------

# msg_text MSGID SIZE [SUBJECT]: an RFC 5322 message of about SIZE bytes
# (MSGID "": without a Message-ID header)
msg_text() {
	local mid=$1 size=${2:-300} subj=${3:-test $1} n
	n=$((size > 200 ? (size - 200) * 3 / 4 : 1))
	printf 'From: Tester <tester@sync.test>\r\nTo: Alice <alice@sync.test>\r\nSubject: %s\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n' "$subj"
	[ -n "$mid" ] && printf 'Message-ID: %s\r\n' "$mid"
	printf 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n'
	# what base64 -w 76 makes of n random bytes, CRLF-terminated, drawn by
	# one awk (head|base64|sed took 44 ms of CPU a message, this 16)
	awk -v n="$n" -v s="$SRANDOM" 'BEGIN {
		srand(s); a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		c = 4 * int((n + 2) / 3); line = ""
		for (i = 0; i < c; i++) {
			line = line substr(a, 1 + int(rand() * 64), 1)
			if (length(line) == 76) { printf "%s\r\n", line; line = "" }
		}
		if (line != "") printf "%s\r\n", line
	}'
}

# msg_save USER FOLDER MSGID [SIZE [FLAG...]]: saves one message with
# doveadm, then sets its flags (doveadm save cannot).
msg_save() {
	local user=$1 folder=$2 mid=$3 size=${4:-300} uid
	shift 4 2>/dev/null || shift $#
	msg_text "$mid" "$size" | da save -u "$user" -m "$folder" || return 1
	if [ $# -gt 0 ] && [ -n "$mid" ]; then
		uid=$(da search -u "$user" mailbox "$folder" header message-id "$mid" | awk '{print $2}' | tail -n 1)
		[ -n "$uid" ] && da flags add -u "$user" "$*" mailbox "$folder" uid "$uid"
	fi
}

# --- random server-side mutations -------------------------------------------
# All choices come from $RANDOM in this shell.  MUT_USER is the mailbox owner,
# MUT_TAG makes Message-IDs unique across rungs/runs.

MUT_USER=${MUT_USER:-alice}
MUT_TAG=${MUT_TAG:-m}
MUT_SEQ=0
MUT_LOG=/dev/null
# Names for folders the mutations create, rename and delete (never INBOX or
# the special-use folders).
MUT_POOL=("Entwürfe" "With Space" "Ärger/Unter Ordner" "Rüben" "Projects/Neu"
	"x y/z ü" "Notes ✓" "Grüße & Co" "Deep/er/st")
MUT_FLAGS=('\Seen' '\Flagged' '\Answered' '\Draft' '\Deleted' '$Work' '$Label1' 'kw-x' 'Junk')

rnd() { # rnd N -> R in [0, N)
	R=$((RANDOM % $1))
}
mlog() { echo "$*" >>"$MUT_LOG"; }

# FOLDERS: the user's selectable folders
load_folders() {
	mapfile -t FOLDERS < <(selectable_folders "$MUT_USER")
}
# UIDS: uids in folder $1; fails (the server's error on stderr) when the
# search does, so that a broken search is a failed mutation, not an empty
# folder
load_uids() {
	local out
	UIDS=()
	out=$(da search -u "$MUT_USER" mailbox "$1" all) || return 1
	[ -n "$out" ] || return 0
	mapfile -t UIDS < <(awk '{print $2}' <<<"$out")
}
pick_folder() { # -> F (any existing folder)
	load_folders
	rnd ${#FOLDERS[@]}
	F=${FOLDERS[$R]}
}
# picks up to N random uids from folder F -> PICKED (comma list) or empty
pick_uids() {
	local n=$1 i u=()
	PICKED=
	if ! load_uids "$F"; then
		mlog "search in '$F' failed"
		echo "    (mutation skipped: searching '$F' failed)"
		return 1
	fi
	[ ${#UIDS[@]} -eq 0 ] && return 1
	for ((i = 0; i < n; i++)); do
		rnd ${#UIDS[@]}
		u+=("${UIDS[$R]}")
	done
	PICKED=$(IFS=,; echo "${u[*]}")
}
random_flags() { # -> FL: 1 or 2 flags
	local a b
	rnd ${#MUT_FLAGS[@]}; a=${MUT_FLAGS[$R]}
	rnd 3
	if [ $R -eq 0 ]; then
		rnd ${#MUT_FLAGS[@]}; b=${MUT_FLAGS[$R]}
		[ "$b" != "$a" ] && a="$a $b"
	fi
	FL=$a
}

mut_save() { # [FOLDER]
	local size mid fl=()
	if [ $# -gt 0 ]; then F=$1; else pick_folder; fi
	MUT_SEQ=$((MUT_SEQ + 1))
	mid="<$MUT_TAG.$MUT_SEQ.$RANDOM@sync.test>"
	size=$((200 + RANDOM % 29800))
	rnd 12
	[ $R -eq 0 ] && mid=
	rnd 3
	if [ $R -eq 0 ]; then random_flags; read -ra fl <<<"$FL"; fi
	mlog "save '$F' $mid size=$size flags=${fl[*]}"
	msg_save "$MUT_USER" "$F" "$mid" "$size" "${fl[@]}"
}
mut_flags() {
	local op
	pick_folder
	rnd 3
	pick_uids $((R + 1)) || return 0
	random_flags
	rnd 2
	if [ $R -eq 0 ]; then op=add; else op=remove; fi
	mlog "flags $op '$FL' '$F' uid $PICKED"
	da flags "$op" -u "$MUT_USER" "$FL" mailbox "$F" uid "$PICKED"
}
mut_replace_flags() {
	pick_folder
	pick_uids 1 || return 0
	random_flags
	mlog "flags replace '$FL' '$F' uid $PICKED"
	da flags replace -u "$MUT_USER" "$FL" mailbox "$F" uid "$PICKED"
}
mut_expunge() {
	pick_folder
	rnd 3
	pick_uids $((R + 1)) || return 0
	mlog "expunge '$F' uid $PICKED"
	da expunge -u "$MUT_USER" mailbox "$F" uid "$PICKED"
}
# doveadm copy/move of 1-3 messages to another folder (the same
# Message-ID then appears in two folders, or moves)
mut_copy_move() { # copy|move
	local src
	pick_folder
	src=$F
	rnd 3
	pick_uids $((R + 1)) || return 0
	pick_folder
	[ "$F" = "$src" ] && return 0
	mlog "$1 '$src' uid $PICKED -> '$F'"
	da "$1" -u "$MUT_USER" "$F" mailbox "$src" uid "$PICKED"
}
# a pool name that does not exist yet -> N (1 if none)
pool_free() {
	local i tries
	load_folders
	for ((tries = 0; tries < 10; tries++)); do
		rnd ${#MUT_POOL[@]}
		N=${MUT_POOL[$R]}
		for i in "${FOLDERS[@]}"; do [ "$i" = "$N" ] && continue 2; done
		return 0
	done
	return 1
}
# a pool name that exists and has no children -> N
pool_used() {
	local i c used=()
	load_folders
	for i in "${MUT_POOL[@]}"; do
		for c in "${FOLDERS[@]}"; do
			[ "$c" = "$i" ] || continue
			printf '%s\n' "${FOLDERS[@]}" | grep -qF -- "$i/" && continue 2
			used+=("$i")
		done
	done
	[ ${#used[@]} -eq 0 ] && return 1
	rnd ${#used[@]}
	N=${used[$R]}
}
mut_create() {
	local n
	pool_free || return 0
	mlog "create '$N'"
	da mailbox create -u "$MUT_USER" "$N" || return 1
	rnd 3
	for ((n = 0; n <= R; n++)); do mut_save "$N"; done
}
mut_rename() {
	local old
	pool_used || return 0
	old=$N
	pool_free || return 0
	mlog "rename '$old' -> '$N'"
	da mailbox rename -u "$MUT_USER" "$old" "$N"
}
mut_delete() {
	pool_used || return 0
	mlog "delete '$N'"
	da mailbox delete -u "$MUT_USER" "$N"
}
# delete a folder and create it again with other messages: a new UIDVALIDITY
mut_recreate() {
	local n name
	pool_used || return 0
	name=$N
	mlog "recreate '$name'"
	da mailbox delete -u "$MUT_USER" "$name" || return 1
	da mailbox create -u "$MUT_USER" "$name" || return 1
	rnd 3
	for ((n = 0; n <= R; n++)); do mut_save "$name"; done
}

# mutate N: N random mutations, weighted
mutate() {
	local i
	for ((i = 0; i < $1; i++)); do
		rnd 100
		if [ $R -lt 30 ]; then mut_save
		elif [ $R -lt 48 ]; then mut_flags
		elif [ $R -lt 54 ]; then mut_replace_flags
		elif [ $R -lt 66 ]; then mut_expunge
		elif [ $R -lt 70 ]; then mut_copy_move copy
		elif [ $R -lt 75 ]; then mut_copy_move move
		elif [ $R -lt 83 ]; then mut_create
		elif [ $R -lt 89 ]; then mut_rename
		elif [ $R -lt 94 ]; then mut_delete
		else mut_recreate
		fi || echo "    (mutation failed: see $MUT_LOG)"
	done
}
