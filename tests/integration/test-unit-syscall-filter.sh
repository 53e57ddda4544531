#!/usr/bin/env bash
# cpm-syncd under the system call filter of its own systemd unit, on a
# machine whose PID 1 need not be systemd: the unit's SystemCallFilter=
# lines (as built, $B/systemd/cpm-syncd.service) are expanded by
# `systemd-analyze syscall-filter`, plus @default which systemd always
# allows, and tests/tools/syscall-filter applies them the way systemd does
# (anything else fails with EPERM, SystemCallErrorNumber=EPERM).  Under
# it the daemon syncs and an image Preview succeeds: cpm-preview installs a
# seccomp filter of its own, with seccomp(), which @system-service alone
# does not allow.  Then, with seccomp taken out of the list, the Preview
# error says what happened.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
FILTER=$BDIR/tests/tools/syscall-filter
SIZE=$BDIR/tests/tools/image-size
UNIT=$BDIR/systemd/cpm-syncd.service
for f in "$FILTER" "$SIZE" "$BDIR/cpm-preview" "$UNIT"; do
	[ -e "$f" ] || bail "missing $f (make all tests)"
done
command -v systemd-analyze >/dev/null || bail "systemd-analyze is not installed (tests/deps.sh: systemd)"

# --- the unit's filter, expanded ------------------------------------------------
grep -qxF 'SystemCallErrorNumber=EPERM' "$UNIT" || bail "the unit lacks SystemCallErrorNumber=EPERM (the tool emulates that)"
items=$(sed -n 's/^SystemCallFilter=//p' "$UNIT") || bail "sed $UNIT"
[ -n "$items" ] || bail "the unit has no SystemCallFilter="
case $items in *'~'*) bail "a deny list (~): the tool emulates an allow list" ;; esac
# expand ITEM...: the system calls, groups expanded recursively
expand() {
	local x out
	for x in "$@"; do
		case $x in
		@*)
			out=$(systemd-analyze syscall-filter "$x") || bail "systemd-analyze syscall-filter $x"
			# shellcheck disable=SC2046 # one word per line
			expand $(printf '%s\n' "$out" | tail -n +2 | sed -e 's/^[[:space:]]*//' -e '/^#/d' -e '/^$/d')
			;;
		*) printf '%s\n' "$x" ;;
		esac
	done
}
# shellcheck disable=SC2086 # the unit's items, one word each
expand @default $items | sort -u >"$WORK/allowed" || bail "expanding the filter"
check "the filter allows read, recvmsg, execve (sanity: $(wc -l <"$WORK/allowed") names)" \
	bash -c "grep -qxF read '$WORK/allowed' && grep -qxF recvmsg '$WORK/allowed' && grep -qxF execve '$WORK/allowed'"
check "the filter forbids mount and kexec_load" \
	bash -c "! grep -qxE 'mount|kexec_load' '$WORK/allowed'"
grep -vxF seccomp "$WORK/allowed" >"$WORK/no-seccomp"

dc_start dc
dbus_setup
GEN=$BDIR/tests/tools/image-gen
[ -x "$GEN" ] || bail "missing $GEN"
"$GEN" 200 150 "$WORK/img.jpg" || bail "image-gen 200x150"
{
	printf 'From: bob@example.org\r\nTo: %s@example.org\r\nSubject: photo\r\n' "$USER1"
	printf 'Message-ID: <jpeg@filter.test>\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n'
	printf 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="=b="\r\n\r\n'
	printf -- '--=b=\r\nContent-Type: text/plain\r\n\r\nhello\r\n'
	printf -- '--=b=\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n'
	base64 -w 76 "$WORK/img.jpg" | sed 's/$/\r/'
	printf -- '--=b=--\r\n'
} | da save -u "$USER1" -m INBOX || bail "doveadm save"

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"
export CPMSYNC_PREVIEW_HELPER=$BDIR/cpm-preview
# start_filtered LIST: cpm-syncd under the filter of LIST
start_filtered() {
	"$FILTER" "$1" "$SYNCD" -c "$CONF" -v 2>>"$WORK/daemon.log" &
	DAEMON_PID=$!
	"$DBUS" wait-owner 10 >/dev/null
}
stop_daemon() {
	kill "$DAEMON_PID" && wait "$DAEMON_PID"
	DAEMON_PID=
}
start_filtered "$WORK/allowed" || bail "cpm-syncd under the filter did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "under the unit's filter: account reaches State idle" wait_state idle 30
F=org.cpmsync.Folder1
INBOX=$("$DBUS" call "$A" org.cpmsync.Account1 FindFolder s INBOX)
"$DBUS" call "$INBOX" "$F" ListMessages tu 0 10 >"$WORK/list" || bail "ListMessages"
ID=$(grep -F 'MessageId=<jpeg@filter.test>;' "$WORK/list" | grep -o '{Id=[0-9]*' | cut -d= -f2)
[ -n "$ID" ] || bail "the message is not listed: $(cat "$WORK/list")"
preview() { "$DBUS" call "$INBOX" "$F" Preview tssuu "$ID" 2 image/jpeg "$1" "$1" >"$WORK/out"; }
if preview 160; then
	check "under the unit's filter: the JPEG preview is jpeg 160x120" \
		test "$("$SIZE" "$WORK/out")" = "jpeg 160x120"
else
	not_ok "under the unit's filter: Preview succeeds ($(head -c 300 "$WORK/out"))"
fi
stop_daemon || bail "stopping cpm-syncd"

# --- seccomp forbidden: the error says so --------------------------------------
start_filtered "$WORK/no-seccomp" || bail "cpm-syncd under the filter without seccomp did not start"
check "without seccomp: account reaches State idle" wait_state idle 30
preview 100
check "without seccomp: Preview fails, naming the filter around cpm-syncd" test "$(cat "$WORK/out")" = \
	"error org.cpmsync.Error.Failed: part 2: the kernel refused to install the seccomp filter: seccomp() fails with \"Operation not permitted\"; a system call filter around cpm-syncd (systemd's SystemCallFilter=) may forbid seccomp()"
stop_daemon || bail "stopping cpm-syncd"
finish
