#!/usr/bin/env bash
# The one list of Debian 12 packages cpmsync needs to build, test and run
# its demo.  Installs what is missing (apt-get as root, sudo otherwise) and
# is silent and quick when nothing is.  Called by `make check`, `make demo`
# and .ci/run.
set -euo pipefail

PACKAGES=(
	# build
	make gcc libc6-dev pkg-config
	libsqlite3-dev libssl-dev libexpat1-dev libdbus-1-dev libinotifytools0-dev check
	# the preview helper (agent/cpm-preview.c, never cpm-syncd): image
	# thumbnails that decode only what they need, and its seccomp sandbox
	libvips-dev libseccomp-dev
	# fuzzing (make fuzz) and the sanitizer runtime
	clang libclang-rt-14-dev
	# tests and demo: a real IMAP server (conflicts with cyrus-imapd: apt
	# would remove that), a private bus (dbus-daemon, dbus-run-session),
	# certificates, pgrep, ss, and the sqlite3 tool (a few scripts read the
	# store behind the daemon's back: test-online-restart, test-sync-endpoint)
	dovecot-imapd dbus dbus-daemon openssl procps iproute2 sqlite3
	# the second test server, Cyrus IMAP 3.6 (tests/cyrus/cyrus-ctl.sh): its
	# own packages conflict with dovecot-imapd and are only unpacked there
	# (apt-get download + dpkg -x); these are the libraries it needs that
	# the base system lacks, saslpasswd2 for its password file, and
	# python3 for tests/cyrus/cyrus-imap.py (the tests' doveadm on Cyrus)
	libical3 libxapian30 sasl2-bin python3
	# the benchmark's peer (mbsync)
	isync
	# the man pages' lint (make check-man: groff -ww)
	groff-base
	# systemd-analyze: verify the user unit (test-systemd.sh) and expand its
	# SystemCallFilter= (test-unit-syscall-filter.sh); a container may lack it
	systemd
	# the installed interface description's check (xmllint)
	libxml2-utils
	# the shell scripts' lint (make check-shell) and the C format check
	# (make check-format)
	shellcheck clang-format
)

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "tests/deps.sh: not a Debian system; install the equivalents of: ${PACKAGES[*]}" >&2
	exit 0
fi
# One dpkg-query for all: this runs at every `make check`.
installed=" $(dpkg-query -W -f='${Package}=${db:Status-Status} ' "${PACKAGES[@]}" 2>/dev/null || true) "
missing=()
for p in "${PACKAGES[@]}"; do
	[[ $installed == *" $p=installed "* ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "tests/deps.sh: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
	SUDO=()
elif command -v sudo >/dev/null 2>&1; then
	SUDO=(sudo)
else
	echo "tests/deps.sh: need root or sudo to install: ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The packages' own services (the system Dovecot) are not needed: the tests
# run their own from a temporary directory.  Keep postinst from starting them.
# An existing policy-rc.d is left exactly as it is.  The EXIT trap must not
# change the script's status: its last command's status would become it.
# DEPS_POLICY_RC_D lets tests/integration/test-deps.sh point elsewhere.
policy_rc_d=${DEPS_POLICY_RC_D:-/usr/sbin/policy-rc.d}
policy=
if [ ! -e "$policy_rc_d" ] && [ "$(id -u)" -eq 0 ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy_rc_d"
	chmod 0755 "$policy_rc_d"
	policy=1
fi
cleanup() {
	if [ -n "$policy" ]; then
		rm -f "$policy_rc_d"
	fi
	return 0
}
trap cleanup EXIT
install() {
	"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}
if ! install; then
	"${SUDO[@]}" apt-get update -q
	install
fi
