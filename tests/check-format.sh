#!/usr/bin/env bash
# make check-format: clang-format --dry-run -Werror, with the top
# .clang-format, on every C source and header of the tree.  In a git
# checkout the candidates are the tracked files and the untracked ones git
# does not ignore; elsewhere every *.c and *.h outside build/ and .git/.
# Any file that clang-format would change fails, with the places named.
# To fix: clang-format -i FILE.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v clang-format >/dev/null 2>&1; then
	echo "check-format: clang-format is not installed (tests/deps.sh installs it)" >&2
	exit 1
fi

files=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	while IFS= read -r -d '' f; do
		[ -f "$f" ] && files+=("$f")
	done < <(git ls-files -z --cached --others --exclude-standard -- '*.c' '*.h')
else
	while IFS= read -r -d '' f; do
		files+=("$f")
	done < <(find . \( -path ./build -o -path ./.git \) -prune -o -type f \( -name '*.c' -o -name '*.h' \) -printf '%P\0')
fi
if ! clang-format --dry-run -Werror "${files[@]}"; then
	echo "check-format: the files above are not formatted as .clang-format says (clang-format -i FILE)" >&2
	exit 1
fi
echo "check-format: ok (${#files[@]} files)"
