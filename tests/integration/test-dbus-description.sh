#!/usr/bin/env bash
# The interface description `make install` installs ($B/dbus/org.cpmsync.xml,
# made from dbus/org.cpmsync.xml) against the running daemon: its
# org.cpmsync.* interfaces have exactly the members (methods with their
# args, signals with theirs, properties with type and access) that
# cpm-syncd's Introspect gives on /org/cpmsync, an account and a folder,
# whatever their order; and it keeps every member of the contract
# (tests/data/org.cpmsync.xml) unchanged.  So a member the daemon adds
# needs its entry in dbus/org.cpmsync.xml, and nothing more.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
DESC=$BDIR/dbus/org.cpmsync.xml
CONTRACT=$TOP/tests/data/org.cpmsync.xml
[ -f "$DESC" ] || bail "missing $DESC (make all)"
command -v xmllint >/dev/null || bail "xmllint is not installed (tests/deps.sh: libxml2-utils)"

# members FILE: one line per member of the org.cpmsync.* interfaces,
# "INTERFACE method NAME arg=NAME:TYPE:DIRECTION ...", sorted
members() {
	xmllint --format "$1" | awk '
		function at(n) {
			if (match($0, " " n "=\"[^\"]*\""))
				return substr($0, RSTART + length(n) + 3, RLENGTH - length(n) - 4)
			return ""
		}
		function flush() { if (cur != "") print cur; cur = "" }
		/<interface[ >]/ { flush(); iface = at("name"); ours = iface ~ /^org\.cpmsync\./; next }
		/<\/interface>/ { flush(); ours = 0; next }
		!ours { next }
		/<(method|signal)[ >\/]/ {
			flush()
			kind = $0; sub(/^[ \t]*</, "", kind); sub(/[ >\/].*/, "", kind)
			cur = iface " " kind " " at("name")
			next
		}
		/<property[ >\/]/ { flush(); print iface " property " at("name") " " at("type") " " at("access"); next }
		/<arg[ >\/]/ { cur = cur " arg=" at("name") ":" at("type") ":" at("direction"); next }
		END { flush() }
	' | sort
}
members "$DESC" >"$WORK/desc" || bail "reading $DESC"
members "$CONTRACT" >"$WORK/contract" || bail "reading $CONTRACT"
check "the description has members ($(wc -l <"$WORK/desc")), the contract too ($(wc -l <"$WORK/contract"))" \
	test "$(wc -l <"$WORK/contract")" -gt 40 -a "$(wc -l <"$WORK/desc")" -ge "$(wc -l <"$WORK/contract")"
comm -23 "$WORK/contract" "$WORK/desc" >"$WORK/lost"
if [ -s "$WORK/lost" ]; then
	not_ok "every member of the contract is in the description, unchanged"
	sed 's/^/    missing: /' "$WORK/lost"
else
	ok "every member of the contract is in the description, unchanged"
fi

# --- the daemon's own ----------------------------------------------------------------
dc_start dc
dbus_setup
CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db"
start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "account reaches State idle" wait_state idle 30
INBOX=$("$DBUS" call "$A" org.cpmsync.Account1 FindFolder s INBOX) || bail "FindFolder INBOX: $INBOX"
: >"$WORK/live"
for path in /org/cpmsync "$A" "$INBOX"; do
	"$DBUS" call "$path" org.freedesktop.DBus.Introspectable Introspect >"$WORK/introspect.xml" ||
		bail "Introspect $path: $(head -c 300 "$WORK/introspect.xml")"
	members "$WORK/introspect.xml" >>"$WORK/live" || bail "reading the introspection of $path"
done
sort -o "$WORK/live" "$WORK/live"
check "the daemon introspects Manager1, Account1 and Folder1" \
	test "$(cut -d' ' -f1 "$WORK/live" | sort -u | tr '\n' ' ')" = \
	"org.cpmsync.Account1 org.cpmsync.Folder1 org.cpmsync.Manager1 "
if cmp -s "$WORK/live" "$WORK/desc"; then
	ok "the description's members are the daemon's ($(wc -l <"$WORK/live"))"
else
	not_ok "the description's members are the daemon's"
	diff "$WORK/desc" "$WORK/live" | grep '^[<>]' | sed -e 's/^</    only in the description:/' \
		-e 's/^>/    only in the daemon:/'
fi
finish
