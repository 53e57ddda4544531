#!/usr/bin/env bash
# cpmctl: `dump` byte for byte against a fixed store (tests/tools/store-fixture),
# its filters, its errors (missing database, unknown account or folder,
# write errors), reading beside a writer that holds a write transaction,
# where the database comes from (--db, --config, the XDG default), and the
# exit statuses of --help, --version, bad usage and the commands that need
# the daemon's D-Bus API; as root, a store on a read-only medium without its
# -shm (a read-only bind mount).  No daemon, no server, no sqlite3 tool.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$TOP/$B ;; esac
CPMCTL=$B/cpmctl
FIXTURE=$B/tests/tools/store-fixture
WORK=$(mktemp -d)
writer_pid=
cleanup() {
	[ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

passed=0 failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }

for f in "$CPMCTL" "$FIXTURE"; do
	if [ ! -x "$f" ]; then
		echo "$f is missing: build with make B=... all tests"
		echo "0 passed, 1 failed"
		exit 1
	fi
done

# Keep the user's configuration and data out of it.
export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/home/.config XDG_DATA_HOME=$WORK/home/.local/share
mkdir -p "$HOME"

db=$WORK/store.db
if ! "$FIXTURE" "$db"; then
	echo "cannot create the fixture"
	echo "0 passed, 1 failed"
	exit 1
fi

# The whole dump of the fixture: accounts and folders bytewise ("B" < "a"
# < "ä"; "INBOX" < "archive" < "Éte"), uid 0 (not on the server) first in
# id order, then uids numerically (9 10 100), \Recent never listed, an
# absent Message-ID empty, a TAB and a newline in one shown as spaces;
# removed messages, the removed folder and the empty account absent.
printf '%s\n' \
	$'B\tINBOX\t1\t\t<b@x>' \
	$'a\tArchive/2024\t0\t\t<pending@x>' \
	$'a\tINBOX\t0\t\t<first-local@x>' \
	$'a\tINBOX\t0\t\\Draft\t<local2@x>' \
	$'a\tINBOX\t2\t\t' \
	$'a\tINBOX\t4\t\thas tab and newline' \
	$'a\tINBOX\t9\t\\Seen\t<m9@x>' \
	$'a\tINBOX\t10\t$Label \\Answered \\Seen\t<m10@x>' \
	$'a\tINBOX\t100\t\\Flagged \\Seen\t<m100@x>' \
	$'a\tarchive\t1\t\\Seen\t<arch@x>' \
	$'a\t\xc3\x89te\t5\tSeen\t<ete@x>' \
	$'\xc3\xa4\tINBOX\t1\t\t<ae@x>' >"$WORK/all.want"
grep -a $'^a\t' "$WORK/all.want" >"$WORK/a.want"
grep -a $'^a\tINBOX\t' "$WORK/all.want" >"$WORK/a-inbox.want"
grep -a $'^a\t\xc3\x89te\t' "$WORK/all.want" >"$WORK/a-ete.want"
grep -a $'^\xc3\xa4\t' "$WORK/all.want" >"$WORK/ae.want"
: >"$WORK/empty.want"

# run EXPECTED_EXIT ARGS... : runs cpmctl; stdout in $WORK/out, stderr in $WORK/err, exit in $rc
run() {
	local want=$1
	shift
	"$CPMCTL" "$@" >"$WORK/out" 2>"$WORK/err"
	rc=$?
	[ "$rc" -eq "$want" ]
}

# dump_is WANT_FILE DESCRIPTION ARGS... : exit 0, stdout byte for byte, stderr empty
dump_is() {
	local want=$1 what=$2
	shift 2
	if run 0 "$@" && cmp -s "$WORK/out" "$want" && [ ! -s "$WORK/err" ]; then
		ok "$what"
	else
		not_ok "$what (exit $rc)"
		diff <(od -c "$want") <(od -c "$WORK/out") | head -n 20 | sed 's/^/    /'
		sed 's/^/    stderr: /' "$WORK/err"
	fi
}

# fails_with EXIT PATTERN DESCRIPTION ARGS... : that exit, stderr matches, stdout empty
fails_with() {
	local want=$1 pattern=$2 what=$3
	shift 3
	if run "$want" "$@" && grep -qE -- "$pattern" "$WORK/err" && [ ! -s "$WORK/out" ]; then
		ok "$what"
	else
		not_ok "$what (exit $rc)"
		sed 's/^/    stderr: /' "$WORK/err"
		sed 's/^/    stdout: /' "$WORK/out" | head -n 5
	fi
}

dump_is "$WORK/all.want" "dump: every visible message, sorted, exact format" dump --db "$db"
dump_is "$WORK/all.want" "dump: --db=PATH" dump --db="$db"
dump_is "$WORK/a.want" "dump ACCOUNT" dump --db "$db" a
dump_is "$WORK/ae.want" "dump ACCOUNT with a UTF-8 name" dump --db "$db" ä
dump_is "$WORK/a-inbox.want" "dump ACCOUNT FOLDER" dump --db "$db" a INBOX
dump_is "$WORK/a-inbox.want" "dump: INBOX in any case" dump --db "$db" a inbox
dump_is "$WORK/a-ete.want" "dump ACCOUNT FOLDER with a UTF-8 name" dump --db "$db" a Éte
dump_is "$WORK/empty.want" "dump of an account that has no message: nothing, exit 0" \
	dump --db "$db" empty
dump_is "$WORK/empty.want" "dump of an empty folder: nothing, exit 0" dump --db "$db" empty INBOX
dump_is "$WORK/a.want" "global --config before the command, --db wins" \
	--config "$WORK/nonexistent.conf" dump --db "$db" a

fails_with 1 "^cpmctl: unknown account 'nope'; the store '$db' holds: B, a, empty, ä\$" \
	"unknown account: exit 1, named, with the store's accounts" dump --db "$db" nope
fails_with 1 "^cpmctl: unknown account 'A'; the store " "account names are exact (A is not a)" \
	dump --db "$db" A
fails_with 1 "^cpmctl: unknown account 'nope'; the store '$db' holds: B, a, empty, ä\$" \
	"unknown account with a folder: the same" dump --db "$db" nope INBOX
fails_with 1 "^cpmctl: account 'a' has no folder 'Nope' in '$db'\$" \
	"unknown folder: exit 1, named" dump --db "$db" a Nope
fails_with 1 "^cpmctl: account 'a' has no folder 'Zeta' in " "a removed folder is unknown" \
	dump --db "$db" a Zeta

missing=$WORK/nodir/store.db
fails_with 1 "^cpmctl: cannot open database '$missing': No such file or directory\$" \
	"missing database: exit 1, names the file and the reason" dump --db "$missing"
fails_with 1 "^cpmctl: cannot open database '$WORK/missing.db': No such file or directory\$" \
	"missing database in an existing directory" dump --db "$WORK/missing.db"
if [ ! -e "$WORK/missing.db" ]; then
	ok "a missing database is not created"
else
	not_ok "a missing database is not created"
fi
printf 'not a database, clearly, not at all, no, not even close to one\n' >"$WORK/garbage.db"
fails_with 1 "^cpmctl: cannot open database '$WORK/garbage.db': " "not a database: exit 1" \
	dump --db "$WORK/garbage.db"

# Where the database comes from without --db.
conf=$WORK/cpmsync.conf
printf '[general]\ndatabase = %s\n' "$db" >"$conf"
dump_is "$WORK/a.want" "--config FILE: its [general] database" --config "$conf" dump a
dump_is "$WORK/a.want" "-c FILE after the command" dump -c "$conf" a
fails_with 1 "^cpmctl: cannot open database '$XDG_DATA_HOME/cpmsync/store.db': " \
	"no configuration file: the default \$XDG_DATA_HOME/cpmsync/store.db" dump
mkdir -p "$XDG_DATA_HOME/cpmsync"
cp "$db" "$XDG_DATA_HOME/cpmsync/store.db"
dump_is "$WORK/ae.want" "the default database is read" dump ä
mkdir -p "$XDG_CONFIG_HOME/cpmsync"
printf '[general]\ndatabase = %s\n' "$db" >"$XDG_CONFIG_HOME/cpmsync/cpmsync.conf"
dump_is "$WORK/a-ete.want" "the default configuration file's database" dump a Éte
printf '[general]\ndatabase =\n' >"$XDG_CONFIG_HOME/cpmsync/cpmsync.conf"
fails_with 1 "cpmsync.conf:2: " "a bad configuration file: exit 1, file and line" dump
rm "$XDG_CONFIG_HOME/cpmsync/cpmsync.conf"
fails_with 1 "^cpmctl: .*nonexistent.conf" "--config of a missing file: exit 1, named" \
	--config "$WORK/nonexistent.conf" dump

# Reading beside a writer that holds a write transaction (WAL): no
# waiting for the busy timeout, and nothing uncommitted is seen.
coproc HOLD { "$FIXTURE" --hold "$db"; }
# bash unsets HOLD and HOLD_PID once it has reaped the coprocess: keep copies.
writer_pid=$HOLD_PID writer_out=${HOLD[0]} writer_in=${HOLD[1]}
line=
read -r -t 10 line <&"$writer_out"
if [ "$line" = holding ]; then
	start=$(date +%s%N)
	dump_is "$WORK/all.want" "dump while another connection holds a write transaction" \
		dump --db "$db"
	ms=$((($(date +%s%N) - start) / 1000000))
	if [ "$ms" -lt 3000 ]; then
		ok "... without waiting for the writer (${ms} ms)"
	else
		not_ok "... without waiting for the writer (${ms} ms)"
	fi
else
	not_ok "store-fixture --hold did not start (got '$line')"
fi
exec {writer_in}>&- # end of file on its stdin: it rolls back and exits
wait "$writer_pid" 2>/dev/null
writer_pid=
dump_is "$WORK/all.want" "the writer's rolled-back row never shows" dump --db "$db"

# A store on a read-only medium without its -shm file (a backup disk or
# stick mounted read-only): SQLite reads a WAL store through that file and
# cannot make it there, so dump failed with "unable to open database file".
# The medium here is a read-only bind mount in a mount namespace of the
# test's own (unshare -m: root).
ro_dump_is() { # WANT DESCRIPTION: dump of $WORK/ro-src/store.db through $WORK/ro, read-only
	local want=$1 what=$2
	# shellcheck disable=SC2016 # expanded by the inner sh
	unshare -m sh -c 'mount --bind -o ro "$1" "$2" && exec "$3" dump --db "$2/store.db"' \
		sh "$WORK/ro-src" "$WORK/ro" "$CPMCTL" >"$WORK/out" 2>"$WORK/err"
	rc=$?
	if [ "$rc" -eq 0 ] && cmp -s "$WORK/out" "$want" && [ ! -s "$WORK/err" ]; then
		ok "$what"
	else
		not_ok "$what (exit $rc)"
		diff "$want" "$WORK/out" | head -n 20 | sed 's/^/    /'
		sed 's/^/    stderr: /' "$WORK/err"
	fi
}
# As root the namespace must be there (a skip would hide a broken set-up);
# only another user skips.
if [ "$(id -u)" -eq 0 ] && ! unshare -m true 2>"$WORK/unshare.err"; then
	not_ok "root cannot make a mount namespace (unshare -m): $(cat "$WORK/unshare.err")"
fi
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>"$WORK/unshare.err"; then
	if mkdir "$WORK/ro-src" "$WORK/ro" && "$FIXTURE" "$WORK/ro-src/store.db" &&
		rm "$WORK/ro-src/store.db-shm" && [ ! -s "$WORK/ro-src/store.db-wal" ]; then
		ro_dump_is "$WORK/all.want" "read-only medium, no -shm, an empty -wal: the whole dump"
	else
		not_ok "cannot make the store for the read-only medium"
	fi
	if rm "$WORK/ro-src/store.db-wal"; then
		ro_dump_is "$WORK/all.want" "... no -wal either: the same"
	else
		not_ok "cannot remove the -wal"
	fi
	# A commit the -wal holds (the daemon keeps its WAL): read too.
	{ head -n 1 "$WORK/all.want" && printf 'B\tINBOX\t2\t\t<in-wal@x>\n' &&
		tail -n +2 "$WORK/all.want"; } >"$WORK/in-wal.want"
	if "$FIXTURE" --in-wal "$WORK/ro-src/store.db" && rm "$WORK/ro-src/store.db-shm" &&
		[ -s "$WORK/ro-src/store.db-wal" ]; then
		ro_dump_is "$WORK/in-wal.want" "... a -wal holding a commit: the dump has it"
	else
		not_ok "cannot leave a commit in the -wal"
	fi
	# A body in a pack: read, and checked through a second connection
	# opened the same way (cpmsync-op bodies reads every body back).
	{ printf 'Message-ID: <big@x>\r\nSubject: big\r\n\r\n' && printf '%06000d\r\n' 0; } >"$WORK/big.eml"
	if "$B/tests/tools/cpmsync-op" --db "$WORK/ro-src/store.db" store a INBOX "$WORK/big.eml" >/dev/null &&
		rm "$WORK/ro-src/store.db-shm" && [ -s "$WORK/ro-src/store.db-packs/1" ]; then
		# shellcheck disable=SC2016 # expanded by the inner sh
		unshare -m sh -c 'mount --bind -o ro "$1" "$2" && exec "$3" --db "$2/store.db" bodies a' \
			sh "$WORK/ro-src" "$WORK/ro" "$B/tests/tools/cpmsync-op" >"$WORK/out" 2>&1
		rc=$?
		if [ "$rc" -eq 0 ] && [ "$(cat "$WORK/out")" = "1 bodies, 0 wrong" ]; then
			ok "... a body in a pack read back whole"
		else
			not_ok "... a body in a pack read back whole (exit $rc: $(cat "$WORK/out"))"
		fi
	else
		not_ok "cannot store a body in a pack"
	fi
	# Not a read-only medium: a directory this user cannot write (another
	# user's store, which its owner's daemon may be writing) is not read
	# that way; the error says what is missing and why.
	theirs=$WORK/theirs
	if mkdir "$theirs" && "$FIXTURE" "$theirs/store.db" && rm "$theirs/store.db-shm" &&
		chmod 0644 "$theirs/store.db" "$theirs/store.db-wal" && chmod 0755 "$theirs" &&
		chmod 0711 "$WORK"; then
		setpriv --reuid=65534 --regid=65534 --clear-groups \
			"$CPMCTL" dump --db "$theirs/store.db" >"$WORK/out" 2>"$WORK/err"
		rc=$?
		printf '%s\n' "cpmctl: cannot open database '$theirs/store.db': SQLite reads a store in WAL mode through $theirs/store.db-shm, which is missing and cannot be made in $theirs: Permission denied" >"$WORK/want"
		if [ "$rc" -eq 1 ] && cmp -s "$WORK/want" "$WORK/err" && [ ! -s "$WORK/out" ]; then
			ok "a store without its -shm in a directory the user cannot write: exit 1, the cause"
		else
			not_ok "a store without its -shm in a directory the user cannot write: exit 1, the cause (exit $rc)"
			sed 's/^/    stderr: /' "$WORK/err"
		fi
	else
		not_ok "cannot make another user's store"
	fi
else
	echo "skip - a read-only medium needs a mount namespace of the test's own (unshare -m: root)"
fi

# pending: the fixture's queued APPENDs, read from the store like dump.
printf '%s\n' $'a\t1\tstore\tINBOX\t98\t\t0\t\t' $'a\t2\tstore\tINBOX\t102\t\t0\t\t' >"$WORK/pending.want"
dump_is "$WORK/pending.want" "pending: the queued operations, read from the store" pending --db "$db"
dump_is "$WORK/pending.want" "pending ACCOUNT" pending --db "$db" a
: >"$WORK/empty.want"
dump_is "$WORK/empty.want" "pending of an account with nothing queued: nothing, exit 0" pending --db "$db" B
printf '%s\n' '{"Account":"a","Id":1,"Operation":"store","Folder":"INBOX","MessageIds":[98],"Code":"","Tries":0,"Time":0,"Text":""}' \
	'{"Account":"a","Id":2,"Operation":"store","Folder":"INBOX","MessageIds":[102],"Code":"","Tries":0,"Time":0,"Text":""}' >"$WORK/pending-json.want"
dump_is "$WORK/pending-json.want" "pending --json" pending --json --db "$db" a
fails_with 1 "^cpmctl: unknown account 'zz'; the store '$db' holds: B, a, empty, ä\$" \
	"pending of an unknown account: the store's accounts" pending --db "$db" zz
fails_with 2 "needs a path" "pending --db '': exit 2" pending --db ""

# Write errors are errors.
"$CPMCTL" dump --db "$db" >/dev/full 2>"$WORK/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "^cpmctl: cannot write the output: No space left on device" "$WORK/err"; then
	ok "a full disk (/dev/full): exit 1 with the reason"
else
	not_ok "a full disk (/dev/full): exit 1 with the reason (exit $rc: $(cat "$WORK/err"))"
fi
# A pipe whose reader is gone: open a FIFO read-write (so that opening it
# for writing does not block), open its write end, close the reader.
mkfifo "$WORK/fifo"
exec {rw}<>"$WORK/fifo"
exec {wr}>"$WORK/fifo"
exec {rw}<&-
"$CPMCTL" dump --db "$db" 1>&"$wr" 2>"$WORK/err"
rc=$?
exec {wr}>&-
if [ "$rc" -eq 141 ] && [ ! -s "$WORK/err" ]; then
	ok "a closed pipe: killed by SIGPIPE (141) as cat is, nothing on stderr"
else
	not_ok "a closed pipe: killed by SIGPIPE (141) as cat is, nothing on stderr (exit $rc: $(cat "$WORK/err"))"
fi
# The same for --help, with SIGPIPE ignored by the caller as well.
exec {rw}<>"$WORK/fifo"
exec {wr}>"$WORK/fifo"
exec {rw}<&-
(
	trap '' PIPE
	exec "$CPMCTL" --help 1>&"$wr" 2>"$WORK/err"
)
rc=$?
exec {wr}>&-
if [ "$rc" -eq 141 ] && [ ! -s "$WORK/err" ]; then
	ok "--help to a closed pipe, SIGPIPE ignored by the caller: 141, nothing on stderr"
else
	not_ok "--help to a closed pipe, SIGPIPE ignored by the caller: 141, nothing on stderr (exit $rc: $(cat "$WORK/err"))"
fi

"$CPMCTL" --help >/dev/full 2>"$WORK/err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "No space left on device" "$WORK/err"; then
	ok "--help to a full disk: exit 1"
else
	not_ok "--help to a full disk: exit 1 (exit $rc)"
fi

# Help, version, usage.
if run 0 --help && grep -q '^Usage: cpmctl' "$WORK/out" && grep -q 'dump \[--db PATH\] \[ACCOUNT \[FOLDER\]\]' "$WORK/out" && [ ! -s "$WORK/err" ]; then
	ok "--help: usage on stdout, exit 0"
else
	not_ok "--help: usage on stdout, exit 0 (exit $rc)"
fi
if run 0 -h && grep -q '^Usage: cpmctl' "$WORK/out"; then ok "-h"; else not_ok "-h (exit $rc)"; fi
if run 0 dump --help && grep -q '^Usage: cpmctl dump' "$WORK/out"; then
	ok "dump --help: exit 0"
else
	not_ok "dump --help: exit 0 (exit $rc)"
fi
if run 0 --version && grep -qE '^cpmctl [0-9]+\.[0-9]+\.[0-9]+$' "$WORK/out"; then
	ok "--version"
else
	not_ok "--version (exit $rc: $(cat "$WORK/out"))"
fi
fails_with 2 "no command given" "no command: exit 2" 
fails_with 2 "unknown command 'frobnicate'" "unknown command: exit 2" frobnicate
fails_with 2 "unexpected argument 'c'" "dump with three arguments: exit 2" dump --db "$db" a b c
fails_with 2 "^Usage: cpmctl dump" "dump with an unknown option: exit 2" dump --bogus
fails_with 2 "^Usage: cpmctl dump" "dump --db without its argument: exit 2" dump --db
fails_with 2 "needs a path" "dump --db '': exit 2" dump --db ""
fails_with 2 "Usage: cpmctl" "unknown global option: exit 2" --bogus dump
# getopt's own refusals say "cpmctl" (and the command), not the path run
first_err_is() { # WANT-FIRST-LINE WHAT ARGS...
	local want=$1 what=$2
	shift 2
	if run 2 "$@" && [ "$(head -n 1 "$WORK/err")" = "$want" ] && grep -q '^Usage: cpmctl' "$WORK/err"; then
		ok "$what"
	else
		not_ok "$what (exit $rc)"
		sed 's/^/    stderr: /' "$WORK/err"
	fi
}
first_err_is "cpmctl: option '--config' requires an argument" "--config without its file: exit 2, said by cpmctl" --config
first_err_is "cpmctl status: unrecognized option '--bogus'" "status --bogus: exit 2, said by cpmctl status" status --bogus
first_err_is "cpmctl dump: unrecognized option '--bogus'" "dump --bogus: exit 2, said by cpmctl dump" dump --bogus
# A bad id is named for what it is: retry and discard take an operation id,
# fetch a message id.  Exit 2, that line and the command's usage, exactly.
stderr_is() { # WANT-STDERR WHAT ARGS...
	local want=$1 what=$2
	shift 2
	if run 2 "$@" && [ "$(cat "$WORK/err")" = "$want" ] && [ ! -s "$WORK/out" ]; then
		ok "$what"
	else
		not_ok "$what (exit $rc)"
		sed 's/^/    stderr: /' "$WORK/err"
	fi
}
stderr_is "cpmctl: invalid operation id 'abc'"$'\n''Usage: cpmctl retry ACCOUNT ID' \
	"retry a abc: exit 2, an invalid operation id" retry a abc
stderr_is "cpmctl: invalid operation id '-1'"$'\n''Usage: cpmctl discard ACCOUNT ID' \
	"discard a -1: exit 2, an invalid operation id" discard a -1
stderr_is "cpmctl: invalid message id 'x'"$'\n''Usage: cpmctl fetch ACCOUNT FOLDER ID [SECTION]' \
	"fetch a INBOX x: exit 2, an invalid message id" fetch a INBOX x

# An argument that is not UTF-8 (a Latin-1 terminal, a raw file name) is
# named, exit 2: libdbus aborted cpmctl on it (exit 134).  A FILE is a
# path, only opened here: store's and send's are taken as they are.
bad=$(printf 'bad\xffname')
utf8_why="' is not UTF-8 (names, flags and text go to the daemon as UTF-8)"
stderr_is "cpmctl folder: argument 'bad\\xffname$utf8_why" \
	"folder create with a name that is not UTF-8: exit 2, named" folder create a "$bad"
stderr_is "cpmctl list: argument 'bad\\xffname$utf8_why" \
	"list with a folder that is not UTF-8: exit 2, named" list a "$bad"
stderr_is "cpmctl flag: argument '+\\xe9$utf8_why" \
	"flag with a flag that is not UTF-8: exit 2, named" flag a INBOX 1 "$(printf '+\xe9')"
stderr_is "cpmctl search: argument 'subject:\\xe9t\\xe9$utf8_why" \
	"search with text that is not UTF-8: exit 2, named" search a INBOX "$(printf 'subject:\xe9t\xe9')"
stderr_is "cpmctl metadata: argument 'v\\xff$utf8_why" \
	"metadata set with a value that is not UTF-8: exit 2, named" \
	metadata set a INBOX /private/comment "$(printf 'v\xff')"
stderr_is "cpmctl store: argument 'bad\\xffname$utf8_why" \
	"store: a flag that is not UTF-8 after the FILE: exit 2, named" store a INBOX "$WORK/f0" "$bad"
for cmd in store send; do
	if [ "$cmd" = store ]; then args=(store a INBOX "$WORK/$bad"); else args=(send a "$WORK/$bad"); fi
	run 1 "${args[@]}"
	if grep -qF "cannot read '$WORK/$bad': No such file or directory" "$WORK/err" &&
		! grep -q 'not UTF-8' "$WORK/err"; then
		ok "$cmd: a FILE whose name is not UTF-8 is a path: opened, not refused as text"
	else
		not_ok "$cmd: a FILE whose name is not UTF-8 is a path (exit $rc)"
		sed 's/^/    stderr: /' "$WORK/err"
	fi
done

# The D-Bus commands with nobody owning org.cpmsync, on a private bus (never
# the user's): each says the daemon is not running, exit 1.  Without any
# session bus: says so.
printf 'Subject: x\r\n\r\nx\r\n' >"$WORK/f"
if command -v dbus-daemon >/dev/null; then
	dbus-daemon --session --fork --nopidfile --print-address=3 --print-pid=4 \
		3>"$WORK/bus.addr" 4>"$WORK/bus.pid"
	BUS_PID=$(cat "$WORK/bus.pid")
	for cmd in status "sync a" "fetch a INBOX 1" "store a INBOX $WORK/f" \
		"flag a INBOX 1 +\\Seen" "online a off" "folder create a X" "copy a INBOX 1 X" \
		"move a INBOX 1 X" "delete a INBOX 1" "expunge a INBOX" "metadata get a INBOX /private/c" \
		"acl get a INBOX" "search a INBOX" "watch" "failed --json"; do
		# shellcheck disable=SC2086
		DBUS_SESSION_BUS_ADDRESS=$(head -n 1 "$WORK/bus.addr") \
			fails_with 1 "the cpm-syncd daemon is not running" \
			"cpmctl ${cmd%% *}: no daemon on the bus, exit 1" $cmd
	done
	# folders and list read the (default) store instead.
	note="cpmctl: the cpm-syncd daemon is not running: read from the store '$XDG_DATA_HOME/cpmsync/store.db'"
	printf '%s\n' $'Archive/2024\t1\t1' $'INBOX\t7\t4' $'archive\t1\t0' $'\xc3\x89te\t1\t1' \
		>"$WORK/folders.want"
	DBUS_SESSION_BUS_ADDRESS=$(head -n 1 "$WORK/bus.addr") run 0 folders a
	if cmp -s "$WORK/out" "$WORK/folders.want" && [ "$(cat "$WORK/err")" = "$note" ]; then
		ok "cpmctl folders: no daemon, the store's folders with their counts"
	else
		not_ok "cpmctl folders: no daemon, the store's folders with their counts (exit $rc)"
		sed 's/^/    /' "$WORK/out" "$WORK/err"
	fi
	DBUS_SESSION_BUS_ADDRESS=$(head -n 1 "$WORK/bus.addr") run 0 list a INBOX
	if [ "$(cut -f 2,3 "$WORK/out" | sort)" = "$(cut -f 3,4 "$WORK/a-inbox.want" | sort)" ] &&
		[ "$(cat "$WORK/err")" = "$note" ]; then
		ok "cpmctl list: no daemon, the store's messages (uids and flags as dump has them)"
	else
		not_ok "cpmctl list: no daemon, the store's messages (uids and flags as dump has them) (exit $rc)"
		sed 's/^/    /' "$WORK/out" "$WORK/err"
	fi
	kill "$BUS_PID"
else
	not_ok "dbus-daemon is not installed"
fi
# shellcheck disable=SC2086
DBUS_SESSION_BUS_ADDRESS=unix:path=$WORK/no-such-bus fails_with 1 "cannot connect to the session bus" \
	"cpmctl status: no session bus, exit 1" status

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
