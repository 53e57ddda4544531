#!/usr/bin/env bash
# Account1.GetMetadata online with a SetMetadata still queued (issue 10):
# the answer is the server's values merged with the local queued ones
# (contract "Online and offline": read-your-writes).
#
# Holding a set queued on a real Dovecot: its METADATA lives in a dict file
# in the user's home (mail_attribute_dict = file:%h/dovecot-attributes); with
# the home made read-only, SETMETADATA is refused with [SERVERBUG] (the
# dict's dotlock cannot be made) while GETMETADATA still reads the file.
# The engine keeps such a refusal queued for a later try (a refusal that may
# pass), so the set stays journaled, not on the server, as long as needed.
# Also: entry names GetMetadata and SetMetadata refuse alike, naming their
# argument, before the server is asked.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
dc_start dc
HOME_A=$DC/home/$USER1
[ -d "$HOME_A" ] || bail "no home directory $HOME_A for $USER1"
dbus_setup
trap 'chmod 0755 "$HOME_A"; stop_all; lib_cleanup' EXIT

ACC=org.cpmsync.Account1
md_set() { # md_set ENTRY VALUE: on the server, by another client (doveadm)
	da mailbox metadata set -u "$USER1" INBOX "$1" "$2"
}
md_server() { # md_server ENTRY: the server's value
	da mailbox metadata get -u "$USER1" INBOX "$1"
}
# get_is WANT ENTRY...: GetMetadata INBOX ENTRY... answers WANT (the
# key=value lines, sorted, '|'-separated)
get_is() {
	local want=$1 got
	shift
	got=$(call "$A" "$ACC" GetMetadata sas INBOX "$(IFS=,; echo "$*")" | LC_ALL=C sort | paste -sd'|')
	[ "$got" = "$want" ] && return 0
	echo "    GetMetadata $* gave '$got', not '$want'"
	return 1
}
pending_is() { test "$(acct PendingOperations)" = "$1"; }

md_set /private/comment "server c" || bail "doveadm mailbox metadata set /private/comment"
md_set /shared/vendor/cpmsync/x "server x" || bail "doveadm mailbox metadata set x"
md_set /shared/vendor/cpmsync/y "server y" || bail "doveadm mailbox metadata set y"

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"
start_daemon || bail "cpm-syncd did not take org.cpmsync (see $WORK/daemon.log)"
check "connected: State idle" wait_state idle 20
check "online, nothing queued: GetMetadata answers the server's values" \
	get_is "/private/comment=server c|/shared/vendor/cpmsync/x=server x|/shared/vendor/cpmsync/y=server y" \
	/private/comment /shared/vendor/cpmsync/x /shared/vendor/cpmsync/y

# SETMETADATA refused for now: the home read-only.
chmod 0555 "$HOME_A" || bail "chmod 0555 $HOME_A"
check "SetMetadata (a value and a removal) accepted" \
	call "$A" "$ACC" SetMetadata 'sa{ss}' INBOX "/private/comment=local c,/shared/vendor/cpmsync/y="
check "the server refuses it for now ([SERVERBUG]); the daemon keeps it for a later try" \
	eventually 20 grep -qF "a: SETMETADATA refused by the server: [SERVERBUG] " "$WORK/daemon.log"
check "...still queued: PendingOperations 2" pending_is 2
check "...not on the server: /private/comment" test "$(md_server /private/comment)" = "server c"
check "...not on the server: /shared/vendor/cpmsync/y" \
	test "$(md_server /shared/vendor/cpmsync/y)" = "server y"
check "State idle (a refusal that may pass is no error)" wait_state idle 10

# Another client changes x meanwhile: only a round trip can know it.  (The
# home writable for that moment: the queued set's next try is a minute
# away, STORE_JOURNAL_BACKOFF.)
set_x2() { chmod 0755 "$HOME_A" && md_set /shared/vendor/cpmsync/x "server x2" && chmod 0555 "$HOME_A"; }
set_x2 || not_ok "doveadm mailbox metadata set x (2)"
check "online with sets queued: the server's x, the local comment, y removed" \
	get_is "/private/comment=local c|/shared/vendor/cpmsync/x=server x2" \
	/private/comment /shared/vendor/cpmsync/x /shared/vendor/cpmsync/y
check "online with sets queued: an entry queued alone answers the local value" \
	get_is "/private/comment=local c" /private/comment
check "online with sets queued: a removed entry alone answers nothing" \
	get_is "" /shared/vendor/cpmsync/y
check "online with sets queued: an entry the server lacks is absent" \
	get_is "/private/comment=local c" /private/comment /shared/vendor/cpmsync/none

# The values' limits (CPM_MAX_METADATA entries, CPMSYNC_METADATA_VALUE_MAX bytes a value):
# InvalidArgs, nothing queued.
MANY=$(seq -f '/private/e%g=v' 257 | paste -sd,)
BIG=$(head -c 65537 /dev/zero | tr '\0' x)
check "SetMetadata with 257 entries: InvalidArgs" \
	test "$(call "$A" "$ACC" SetMetadata 'sa{ss}' INBOX "$MANY")" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: values: at most 256 entries"
check "SetMetadata with a value of 65537 bytes: InvalidArgs naming the entry" \
	test "$(call "$A" "$ACC" SetMetadata 'sa{ss}' INBOX "/private/ok=1,/private/big=$BIG")" = \
	"error org.freedesktop.DBus.Error.InvalidArgs: values: value of '/private/big' longer than 65536 bytes"
# Entry names: both calls refuse what the store would not journal, the
# same way, naming their argument; GetMetadata before asking the server
# (which answered BAD for the first one).
check "GetMetadata of a non-ASCII entry: InvalidArgs naming entries, not the server's BAD" \
	test "$(call "$A" "$ACC" GetMetadata sas INBOX "/private/é")" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: entries: entry name "/private/é" contains a space or a character that is not printable ASCII'
check "SetMetadata of the same entry: the same refusal, naming values" \
	test "$(call "$A" "$ACC" SetMetadata 'sa{ss}' INBOX "/private/é=v")" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: values: entry name "/private/é" contains a space or a character that is not printable ASCII'
check "SetMetadata of an entry with a space: InvalidArgs naming values" \
	test "$(call "$A" "$ACC" SetMetadata 'sa{ss}' "" "/private/a b=v")" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: values: entry name "/private/a b" contains a space or a character that is not printable ASCII'
check "GetMetadata of it: the same refusal (it answered nothing)" \
	test "$(call "$A" "$ACC" GetMetadata sas "" "/private/a b")" = \
	'error org.freedesktop.DBus.Error.InvalidArgs: entries: entry name "/private/a b" contains a space or a character that is not printable ASCII'
check "the answers changed nothing: still 2 queued" pending_is 2
check "the answers changed nothing on the server" test "$(md_server /private/comment)" = "server c"

finish
