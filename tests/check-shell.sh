#!/usr/bin/env bash
# make check-shell: shellcheck, with the top .shellcheckrc, on every shell
# script of the tree.  A script is a file named *.sh or one whose first line
# is a sh/bash/dash/ksh shebang, so a new script is checked without being
# listed anywhere.  In a git checkout the candidates are the tracked files
# and the untracked ones git does not ignore; elsewhere (an unpacked
# tarball), every file outside build/ and .git/.  Any finding fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v shellcheck >/dev/null 2>&1; then
	echo "check-shell: shellcheck is not installed (tests/deps.sh installs it)" >&2
	exit 1
fi

candidates() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -z --cached --others --exclude-standard
	else
		find . \( -path ./build -o -path ./.git \) -prune -o -type f -printf '%P\0'
	fi
}

shebang='^#![[:space:]]*[^[:space:]]*(/|env[[:space:]]+)(ba|da|k)?sh([[:space:]]|$)'
scripts=()
while IFS= read -r -d '' f; do
	# Still in the index but deleted from the work tree.
	[ -f "$f" ] || continue
	case $f in
	*.sh)
		scripts+=("$f")
		;;
	*)
		first=
		IFS= read -r first <"$f" || true
		if [[ $first =~ $shebang ]]; then
			scripts+=("$f")
		fi
		;;
	esac
done < <(candidates)

if [ ${#scripts[@]} -eq 0 ]; then
	echo "check-shell: no shell scripts found" >&2
	exit 1
fi
shellcheck "${scripts[@]}"
echo "check-shell: ok (${#scripts[@]} scripts)"
