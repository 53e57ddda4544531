#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# tests/deps.sh as a fresh machine runs it: apt-get, dpkg-query and id are
# stubs first on PATH, and the policy-rc.d it may create is a file of this
# test (DEPS_POLICY_RC_D).  Every case checks the exit status, what the stubs
# were asked, and that policy-rc.d is left as it was found.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STUBS=$WORK/bin
mkdir -p "$STUBS"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $*"; }
check() { # description, then a command that must succeed
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

# dpkg-query: every package asked for is installed unless named in
# $STUB_MISSING (space-separated); the format is the one deps.sh asks for.
cat >"$STUBS/dpkg-query" <<'EOF'
#!/usr/bin/env bash
shift 2 # -W -f=...
for p in "$@"; do
	case " $STUB_MISSING " in
	*" $p "*) ;;
	*) printf '%s=installed ' "$p" ;;
	esac
done
EOF
# apt-get: logs its call and whether policy-rc.d existed at that moment;
# "install" fails $STUB_INSTALL_FAILS times (a counter file), then works.
cat >"$STUBS/apt-get" <<'EOF'
#!/usr/bin/env bash
if [ -e "$DEPS_POLICY_RC_D" ]; then pol=policy; else pol=nopolicy; fi
echo "$1 $pol" >>"$STUB_LOG"
if [ "$1" = install ]; then
	n=$(cat "$STUB_COUNT" 2>/dev/null || echo 0)
	echo $((n + 1)) >"$STUB_COUNT"
	[ "$n" -ge "${STUB_INSTALL_FAILS:-0}" ] || exit 100
fi
exit 0
EOF
printf '#!/bin/sh\necho 0\n' >"$STUBS/id"
chmod 0755 "$STUBS"/*

# run_deps NAME MISSING PREEXISTING(0|1) INSTALL_FAILS: sets rc, log, and
# the policy file's state after the run.
run_deps() {
	local name=$1 missing=$2 pre=$3 fails=$4
	D=$WORK/$name
	mkdir -p "$D"
	export DEPS_POLICY_RC_D=$D/policy-rc.d STUB_LOG=$D/log STUB_COUNT=$D/count
	export STUB_MISSING=$missing STUB_INSTALL_FAILS=$fails
	: >"$STUB_LOG"
	if [ "$pre" = 1 ]; then
		printf '#!/bin/sh\n# the machine own\nexit 101\n' >"$DEPS_POLICY_RC_D"
		touch -d '2020-01-02 03:04:05' "$DEPS_POLICY_RC_D"
	fi
	PATH=$STUBS:$PATH bash "${DEPS_SH:-$TOP/tests/deps.sh}" >"$D/out" 2>&1
	rc=$?
	log=$(cat "$STUB_LOG")
}
policy_untouched() { # the pre-existing file: same bytes, same mtime
	[ "$(cat "$DEPS_POLICY_RC_D")" = "$(printf '#!/bin/sh\n# the machine own\nexit 101')" ] &&
		[ "$(stat -c %Y "$DEPS_POLICY_RC_D")" = "$(date -d '2020-01-02 03:04:05' +%s)" ]
}

# 1. Nothing missing, no policy-rc.d: exit 0, apt-get never called.
run_deps nothing-missing "" 0 0
check "nothing missing: exit 0 (got $rc)" test "$rc" -eq 0
check "nothing missing: apt-get not called" test -z "$log"
check "nothing missing: no policy-rc.d left" test ! -e "$DEPS_POLICY_RC_D"

# 2. Nothing missing, a policy-rc.d already there.
run_deps nothing-missing-policy "" 1 0
check "nothing missing, policy-rc.d there: exit 0 (got $rc)" test "$rc" -eq 0
check "nothing missing, policy-rc.d there: apt-get not called" test -z "$log"
check "nothing missing, policy-rc.d there: left as it was" policy_untouched

# 3. Packages missing, no policy-rc.d: one is made for the install and
#    removed after it (the fresh-machine case).
run_deps missing "isync groff-base" 0 0
check "missing: exit 0 (got $rc)" test "$rc" -eq 0
check "missing: apt-get install ran with a policy-rc.d in place" test "$log" = "install policy"
check "missing: the policy-rc.d made for it is removed" test ! -e "$DEPS_POLICY_RC_D"
check "missing: says what it installs" grep -q "^tests/deps.sh: installing isync groff-base$" "$D/out"

# 4. Packages missing, a policy-rc.d already there (this project's CI image):
#    the case whose EXIT trap made the first run fail.
run_deps missing-policy "isync" 1 0
check "missing, policy-rc.d there: exit 0 (got $rc)" test "$rc" -eq 0
check "missing, policy-rc.d there: apt-get install ran" test "$log" = "install policy"
check "missing, policy-rc.d there: left as it was" policy_untouched

# 5. The first install fails (stale lists): update, then install again.
run_deps install-retry "isync" 0 1
check "install fails once: exit 0 (got $rc)" test "$rc" -eq 0
check "install fails once: install, update, install" \
	test "$log" = "$(printf 'install policy\nupdate policy\ninstall policy')"
check "install fails once: no policy-rc.d left" test ! -e "$DEPS_POLICY_RC_D"

# 6. Install fails for good: deps.sh fails, and still cleans up.
run_deps install-fails "isync" 0 2
check "install fails twice: exit non-zero (got $rc)" test "$rc" -ne 0
check "install fails twice: no policy-rc.d left" test ! -e "$DEPS_POLICY_RC_D"
run_deps install-fails-policy "isync" 1 2
check "install fails twice, policy-rc.d there: exit non-zero (got $rc)" test "$rc" -ne 0
check "install fails twice, policy-rc.d there: left as it was" policy_untouched

echo "deps: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
