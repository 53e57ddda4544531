#!/usr/bin/env bash
# The systemd user unit and the D-Bus activation file: `make install` puts
# them (with @BINDIR@ filled in) where pkg-config says systemd and dbus look,
# or under $(PREFIX) when it does not know; DESTDIR and the directory
# variables are honoured; and `systemd-analyze --user verify` accepts the
# installed unit (skipped, with a "skip" line, if systemd-analyze is not
# installed).  Needs neither root nor the network: everything goes into a
# temporary directory.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$TOP/$B ;; esac
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0 failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
skip() { echo "skip - $1"; }

# has FILE LINE DESCRIPTION: FILE has exactly this line.
has() {
	if [ -f "$1" ] && grep -qxF -- "$2" "$1"; then
		ok "$3"
	else
		not_ok "$3 ($1 lacks '$2')"
	fi
}

mk() { make -C "$TOP" --no-print-directory "$@" >"$WORK/make.log" 2>&1; }

# --- make install into DESTDIR with PREFIX=/usr ---------------------------
root=$WORK/root
if mk B="$B" PREFIX=/usr DESTDIR="$root" install; then
	ok "make install DESTDIR=... PREFIX=/usr succeeds"
else
	not_ok "make install DESTDIR=... PREFIX=/usr succeeds"
	sed 's/^/    /' "$WORK/make.log" | tail -n 20
fi
unit=$root/usr/lib/systemd/user/cpm-syncd.service
act=$root/usr/share/dbus-1/services/org.cpmsync.service
if [ -f "$unit" ]; then
	ok "unit installed in /usr/lib/systemd/user"
else
	not_ok "unit installed in /usr/lib/systemd/user ($unit)"
fi
if [ -f "$act" ]; then
	ok "activation file installed in /usr/share/dbus-1/services"
else
	not_ok "activation file installed in /usr/share/dbus-1/services ($act)"
fi
if [ -x "$root/usr/bin/cpm-syncd" ]; then
	ok "cpm-syncd installed in /usr/bin"
else
	not_ok "cpm-syncd installed in /usr/bin"
fi
# bash completion: pkg-config's completionsdir of bash-completion with the
# prefix replaced, else $(PREFIX)/share/bash-completion/completions.
compdir=/usr/share/bash-completion/completions
if pkg-config --exists bash-completion; then
	compdir=$(pkg-config --define-variable=prefix=/usr --variable=completionsdir bash-completion)
fi
if cmp -s "$TOP/agent/cpmctl.bash-completion" "$root$compdir/cpmctl"; then
	ok "bash completion installed as $compdir/cpmctl"
else
	not_ok "bash completion installed as $compdir/cpmctl"
fi

has "$unit" "[Service]" "unit: [Service]"
has "$unit" "Type=dbus" "unit: Type=dbus"
has "$unit" "BusName=org.cpmsync" "unit: BusName=org.cpmsync"
has "$unit" "ExecStart=/usr/bin/cpm-syncd" "unit: ExecStart=/usr/bin/cpm-syncd"
has "$unit" "Restart=on-failure" "unit: Restart=on-failure"
has "$unit" "[Install]" "unit: [Install]"
has "$unit" "WantedBy=default.target" "unit: WantedBy=default.target"
has "$act" "[D-BUS Service]" "activation: [D-BUS Service]"
has "$act" "Name=org.cpmsync" "activation: Name=org.cpmsync"
has "$act" "Exec=/usr/bin/cpm-syncd" "activation: Exec=/usr/bin/cpm-syncd"
has "$act" "SystemdService=cpm-syncd.service" "activation: SystemdService=cpm-syncd.service"
if ! grep -qE '@[A-Z_]+@' "$unit" "$act" 2>/dev/null; then
	ok "no @VARIABLE@ left"
else
	not_ok "no @VARIABLE@ left: $(grep -hE '@[A-Z_]+@' "$unit" "$act")"
fi
mode=$(stat -c %a "$unit" 2>/dev/null)
if [ "$mode" = 644 ]; then
	ok "unit mode 0644"
else
	not_ok "unit mode 0644 (is $mode)"
fi

# --- systemd-analyze verify ------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
	# The unit as installed, but pointing at the binary inside DESTDIR
	# (verify checks that ExecStart= is executable).
	mkdir -p "$WORK/verify" "$WORK/run"
	chmod 0700 "$WORK/run"
	sed "s|^ExecStart=/usr/bin/|ExecStart=$root/usr/bin/|" "$unit" >"$WORK/verify/cpm-syncd.service"
	out=$(XDG_RUNTIME_DIR=$WORK/run systemd-analyze --user --man=no verify \
		"$WORK/verify/cpm-syncd.service" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && [ -z "$out" ]; then
		ok "systemd-analyze --user verify: no complaints"
	else
		not_ok "systemd-analyze --user verify (exit $rc)"
		printf '%s\n' "$out" | sed 's/^/    /'
	fi
	# The check itself catches mistakes.
	printf 'Bogus=1\n' >>"$WORK/verify/cpm-syncd.service"
	out=$(XDG_RUNTIME_DIR=$WORK/run systemd-analyze --user --man=no verify \
		"$WORK/verify/cpm-syncd.service" 2>&1)
	if [ -n "$out" ]; then
		ok "systemd-analyze --user verify reports an unknown key"
	else
		not_ok "systemd-analyze --user verify reports an unknown key"
	fi
else
	skip "systemd-analyze --user verify: systemd-analyze is not installed (Debian package systemd)"
fi

# --- other PREFIX, overrides, no pkg-config ---------------------------------
# install-systemd needs no binaries: a build directory of its own.
alt=$WORK/alt
if mk B="$WORK/b1" PREFIX=/opt/cpm DESTDIR="$alt" install-systemd; then
	has "$alt/opt/cpm/lib/systemd/user/cpm-syncd.service" "ExecStart=/opt/cpm/bin/cpm-syncd" \
		"PREFIX=/opt/cpm: unit in /opt/cpm/lib/systemd/user, ExecStart follows BINDIR"
	has "$alt/opt/cpm/share/dbus-1/services/org.cpmsync.service" "Exec=/opt/cpm/bin/cpm-syncd" \
		"PREFIX=/opt/cpm: activation file in /opt/cpm/share/dbus-1/services"
else
	not_ok "make install-systemd PREFIX=/opt/cpm"
	sed 's/^/    /' "$WORK/make.log" | tail -n 20
fi

over=$WORK/over
if mk B="$WORK/b2" DESTDIR="$over" BINDIR=/x/bin SYSTEMD_USERUNITDIR=/units \
	DBUS_SESSIONBUSDIR=/services install-systemd; then
	has "$over/units/cpm-syncd.service" "ExecStart=/x/bin/cpm-syncd" \
		"SYSTEMD_USERUNITDIR and BINDIR can be overridden"
	has "$over/services/org.cpmsync.service" "Exec=/x/bin/cpm-syncd" \
		"DBUS_SESSIONBUSDIR can be overridden"
else
	not_ok "make install-systemd with overridden directories"
	sed 's/^/    /' "$WORK/make.log" | tail -n 20
fi

# The completion directory can be overridden, and uninstall removes the file.
if mk B="$B" DESTDIR="$WORK/bc" BASH_COMPLETIONSDIR=/bc install-completion &&
	[ -f "$WORK/bc/bc/cpmctl" ] &&
	mk B="$B" DESTDIR="$WORK/bc" BASH_COMPLETIONSDIR=/bc uninstall-completion &&
	[ ! -e "$WORK/bc/bc/cpmctl" ]; then
	ok "make install-completion BASH_COMPLETIONSDIR=/bc, then uninstall-completion"
else
	not_ok "make install-completion BASH_COMPLETIONSDIR=/bc, then uninstall-completion"
	sed 's/^/    /' "$WORK/make.log" | tail -n 20
fi

# pkg-config that knows neither systemd nor dbus-1: the fallbacks.
mkdir -p "$WORK/nopc"
fb=$WORK/fb
if PKG_CONFIG_LIBDIR=$WORK/nopc PKG_CONFIG_PATH='' mk B="$WORK/b3" PREFIX=/usr/local \
	DESTDIR="$fb" install-systemd; then
	if [ -f "$fb/usr/local/lib/systemd/user/cpm-syncd.service" ]; then
		ok "without pkg-config data: unit in \$(PREFIX)/lib/systemd/user"
	else
		not_ok "without pkg-config data: unit in \$(PREFIX)/lib/systemd/user"
	fi
	if [ -f "$fb/usr/local/share/dbus-1/services/org.cpmsync.service" ]; then
		ok "without pkg-config data: activation file in \$(PREFIX)/share/dbus-1/services"
	else
		not_ok "without pkg-config data: activation file in \$(PREFIX)/share/dbus-1/services"
	fi
else
	not_ok "make install-systemd without pkg-config data"
	sed 's/^/    /' "$WORK/make.log" | tail -n 20
fi

# A BINDIR change remakes the files in the same build directory.
if mk B="$WORK/b1" BINDIR=/changed/bin DESTDIR="$WORK/ch" SYSTEMD_USERUNITDIR=/u \
	DBUS_SESSIONBUSDIR=/s install-systemd; then
	has "$WORK/ch/u/cpm-syncd.service" "ExecStart=/changed/bin/cpm-syncd" \
		"a new BINDIR remakes the unit"
else
	not_ok "make install-systemd with a new BINDIR"
fi

# uninstall removes them again.
if mk B="$WORK/b1" PREFIX=/opt/cpm DESTDIR="$alt" uninstall-systemd &&
	[ ! -e "$alt/opt/cpm/lib/systemd/user/cpm-syncd.service" ] &&
	[ ! -e "$alt/opt/cpm/share/dbus-1/services/org.cpmsync.service" ]; then
	ok "make uninstall-systemd removes both files"
else
	not_ok "make uninstall-systemd removes both files"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
