#!/usr/bin/env bash
# make install and make uninstall, into a DESTDIR:
#  - `make` then `make install PREFIX=/usr` installs programs that look for
#    cpm-preview in /usr/libexec/cpmsync/, not in the $(LIBEXECDIR) of the
#    first build (the object with the path written in is rebuilt when
#    LIBEXECDIR changes, and only then);
#  - `make uninstall` removes every file `make install` put there: nothing
#    but empty directories is left.
# Needs neither root nor the network.  Runs alone (CHECK_ALONE): installing
# with another PREFIX relinks the programs in $B that other scripts run; at
# the end $B is made again with the default PREFIX.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$TOP/$B ;; esac
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

. "$(dirname "$0")/lib-tap.sh"
mk() { make -C "$TOP" --no-print-directory "$@" >"$WORK/make.log" 2>&1; }
mk_or_bail() { # ARGS...: make, or report and finish
	mk "$@" && return 0
	not_ok "make $*"
	sed 's/^/    /' "$WORK/make.log" | tail -n 20
	finish
}
# helper_paths FILE: the cpm-preview paths written in FILE
helper_paths() { strings "$1" | grep -E '/cpmsync/cpm-preview$' | sort -u; }

# --- the helper's path follows PREFIX and LIBEXECDIR ----------------------------
# The one object that has it, in a build directory of its own.
b1=$WORK/b1
obj=$b1/libsync/engine/preview.o
mk_or_bail B="$b1" "$obj"
check "default PREFIX: preview.o has /usr/local/libexec/cpmsync/cpm-preview" \
	test "$(helper_paths "$obj")" = /usr/local/libexec/cpmsync/cpm-preview
mk_or_bail B="$b1" PREFIX=/usr "$obj"
check "PREFIX=/usr: preview.o is rebuilt with /usr/libexec/cpmsync/cpm-preview" \
	test "$(helper_paths "$obj")" = /usr/libexec/cpmsync/cpm-preview
mk_or_bail B="$b1" LIBEXECDIR=/opt/lx "$obj"
check "LIBEXECDIR=/opt/lx: /opt/lx/cpmsync/cpm-preview" \
	test "$(helper_paths "$obj")" = /opt/lx/cpmsync/cpm-preview
before=$(stat -c %y "$obj") # to the nanosecond
mk_or_bail B="$b1" LIBEXECDIR=/opt/lx "$obj"
check "the same LIBEXECDIR again: not rebuilt" test "$(stat -c %y "$obj")" = "$before"

# The tester's sequence: make, then make install PREFIX=/usr.
mk_or_bail B="$B" all
root=$WORK/root
mk_or_bail B="$B" PREFIX=/usr DESTDIR="$root" install
ok "make install PREFIX=/usr DESTDIR=... succeeds"
for f in usr/bin/cpm-syncd usr/lib/libcpmsync.so.0 usr/lib/libcpmsync.a; do
	check "installed $f looks for /usr/libexec/cpmsync/cpm-preview" \
		test "$(helper_paths "$root/$f")" = /usr/libexec/cpmsync/cpm-preview
done
check "cpm-preview installed there" test -x "$root/usr/libexec/cpmsync/cpm-preview"

# --- uninstall ---------------------------------------------------------------------
find "$root" -not -type d | sed "s|^$root||" | sort >"$WORK/installed"
n=$(wc -l <"$WORK/installed")
# What install puts there, each kind at least once.
for f in /usr/bin/cpm-syncd /usr/bin/cpmctl /usr/libexec/cpmsync/cpm-preview \
	/usr/lib/libcpmsync.a /usr/lib/libcpmsync.so /usr/lib/libcpmsync.so.0 \
	/usr/include/cpmsync/sync.h /usr/lib/pkgconfig/cpmsync.pc \
	/usr/share/man/man1/cpm-syncd.1 /usr/share/man/man1/cpmctl.1 \
	/usr/share/man/man5/cpmsync.conf.5 /usr/share/dbus-1/interfaces/org.cpmsync.xml; do
	check "installed: $f" grep -qxF "$f" "$WORK/installed"
done
check "install put 20 files or more there ($n)" test "$n" -ge 20
mk_or_bail B="$B" PREFIX=/usr DESTDIR="$root" uninstall
find "$root" -not -type d | sed "s|^$root||" >"$WORK/left"
if [ -s "$WORK/left" ]; then
	not_ok "uninstall leaves only directories ($(wc -l <"$WORK/left") of $n files left)"
	sed 's/^/    /' "$WORK/left"
else
	ok "uninstall removes all $n files"
fi
check "uninstall removes cpmsync's own directories (include/cpmsync, libexec/cpmsync)" \
	test ! -e "$root/usr/include/cpmsync" -a ! -e "$root/usr/libexec/cpmsync"
check "uninstall again: nothing to remove, no error" mk B="$B" PREFIX=/usr DESTDIR="$root" uninstall

# $B as it was: the default PREFIX.
mk_or_bail B="$B" all
finish
