#!/usr/bin/env bash
# `make install` puts the D-Bus interface description org.cpmsync.xml, with
# the contract's comments as org.gtk.GDBus.DocString annotations, under
# $(datadir)/dbus-1/interfaces/ (pkg-config's interfaces_dir of dbus-1);
# DESTDIR and DBUS_INTERFACESDIR are honoured, uninstall removes it, and
# nothing but the annotations differs from dbus/org.cpmsync.xml: the
# contract's description plus what cpm-syncd adds (test-dbus-description.sh
# checks it against the contract copy tests/data/org.cpmsync.xml and the
# daemon's introspection).  Needs neither root nor the network.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$TOP/$B ;; esac
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

. "$(dirname "$0")/lib-tap.sh"
command -v xmllint >/dev/null || {
	not_ok "xmllint is installed (tests/deps.sh: libxml2-utils)"
	finish
}
mk() { make -C "$TOP" --no-print-directory "$@" >"$WORK/make.log" 2>&1; }
SRC=$TOP/dbus/org.cpmsync.xml

root=$WORK/root
if mk B="$B" PREFIX=/usr DESTDIR="$root" install; then
	ok "make install DESTDIR=... PREFIX=/usr succeeds"
else
	not_ok "make install DESTDIR=... PREFIX=/usr succeeds"
	sed 's/^/    /' "$WORK/make.log" | tail -n 20
	finish
fi
XML=$root/usr/share/dbus-1/interfaces/org.cpmsync.xml
check "installed as /usr/share/dbus-1/interfaces/org.cpmsync.xml" test -f "$XML"
check "mode 0644" test "$(stat -c %a "$XML")" = 644
check "well-formed XML" xmllint --noout "$XML"

# One DocString per comment of the source, the preamble (before <node>) excepted.
comments=$(grep -c '<!--' "$SRC")
docs=$(grep -c 'name="org.gtk.GDBus.DocString"' "$XML")
check "one DocString for each comment but the preamble ($docs of $((comments - 1)))" \
	test "$docs" = $((comments - 1))
check "the preamble stays a comment" grep -q 'The public D-Bus API of cpm-syncd' "$XML"
check "an addition's doc (Account1.SyncAll) says it is beyond the contract" \
	grep -q '<annotation name="org.gtk.GDBus.DocString" value="Added by cpmsync, beyond the contract: as Sync' "$XML"
doc() { # doc XPATH-TO-ELEMENT: its DocString
	xmllint --xpath "string($1/annotation[@name='org.gtk.GDBus.DocString']/@value)" "$XML"
}
check "StoreObject's doc text, line breaks kept" test "$(doc "//interface[@name='org.cpmsync.Account1']/method[@name='StoreObject']")" = \
	'CPM objects (README: "CPM objects and conversations").
Stores one CPM object where the CPM folder model files it (conversation history
folder, session history folder, or the peer'"'"'s folder for SMS/MMS), creating the
folders it needs; offline too. date 0: now. InvalidArgs when the content is not a
CPM object.'
check "a property's doc (Folder1.Kind), escapes undone" \
	test "$(doc "//interface[@name='org.cpmsync.Folder1']/property[@name='Kind']")" = \
	'"conversation-history" | "session-history" | "user" (README: CPM folder model).'
check "a signal's doc (ConversationChanged)" \
	test "$(doc "//signal[@name='ConversationChanged']")" = \
	'A conversation was added or its summary changed (new message, Unseen, status).'
check "Manager1.AddAccount's doc: the comment's seven lines" \
	test "$(doc "//method[@name='AddAccount']" | wc -l)" = 7
# Nothing else changed: without annotations and comments, the same document.
canon() { # FILE: the elements and attributes; comments and whitespace between tags dropped
	xmllint --nocdata --noblanks --c14n "$1" | tr -d '\n' |
		sed -e 's/-->/\x01/g' -e 's/<!--[^\x01]*\x01//g' \
			-e 's|<annotation name="org.gtk.GDBus.DocString" value="[^"]*"></annotation>||g' \
			-e 's/>[[:space:]]*</></g'
}
canon "$XML" >"$WORK/installed.canon"
canon "$SRC" >"$WORK/source.canon"
check "apart from the annotations, the installed file is the source" \
	cmp -s "$WORK/installed.canon" "$WORK/source.canon"
check "  (and the comparison sees the interfaces)" grep -q 'org.cpmsync.Folder1' "$WORK/source.canon"

# gdbus-codegen, where installed, builds its documentation from it.
if command -v gdbus-codegen >/dev/null; then
	(cd "$WORK" && gdbus-codegen --generate-docbook doc "$XML") >"$WORK/gdbus.log" 2>&1
	check "gdbus-codegen carries the doc text" \
		grep -q 'Sets \\Seen on every message of the conversation' "$WORK/doc-org.cpmsync.Account1.xml"
else
	echo "skip - gdbus-codegen not installed"
fi

if mk B="$B" DESTDIR="$WORK/alt" DBUS_INTERFACESDIR=/ifs install-interfaces; then
	check "DBUS_INTERFACESDIR is honoured" test -f "$WORK/alt/ifs/org.cpmsync.xml"
else
	not_ok "make install-interfaces DBUS_INTERFACESDIR=/ifs succeeds"
fi
if mk B="$B" PREFIX=/usr DESTDIR="$root" uninstall-interfaces; then
	check "uninstall removes it" test ! -e "$XML"
else
	not_ok "make uninstall-interfaces succeeds"
fi
finish
