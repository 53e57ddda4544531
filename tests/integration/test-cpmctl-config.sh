#!/usr/bin/env bash
# The daemon's state around its configuration, seen with cpmctl on a private
# dbus-daemon and a real Dovecot: Manager1.ConfigError set by a refused
# reload (one log line naming the problem) and cleared by a good one
# (PropertiesChanged, "configuration reloaded"); a changed database said
# there until the file names the store in use again, and cpmctl dump and
# pending read the store in use meanwhile, saying so; after a refused login, a
# changed password file is tried at once without a restart, and a
# password_command's new output on the next Sync(); a file refused for its
# mode loads once chmod'ed as the refusal asks.
set -u
. "$(dirname "$0")/lib-sync.sh"
lib_init
dc_start dc
dbus_setup

CONF=$XDG_CONFIG_HOME/cpmsync/cpmsync.conf
mkdir -p "$(dirname "$CONF")"
write_conf "$CONF" "$WORK/store.db" || bail "cannot write the configuration"
chmod 0600 "$CONF"
cp "$CONF" "$WORK/good.conf" || bail "cannot copy the configuration"
PW=$WORK/alice.pw

mgr() { "$DBUS" get /org/cpmsync org.cpmsync.Manager1 "$1"; }
# replace FILE CONTENT-FILE: as an editor saves (write aside, rename over)
replace() {
	cp "$2" "$1.tmp" && chmod 0600 "$1.tmp" && mv "$1.tmp" "$1"
}
# has_line FILE LINE: the file has that line, or it is shown
has_line() { grep -qxF -- "$2" "$1" || { sed 's/^/    | /' "$1" | tail -n 20; return 1; }; }
log_count() { grep -cF -- "$1" "$WORK/daemon.log"; }
# config_error_is WANT: Manager1.ConfigError is exactly WANT (else shown)
config_error_is() {
	local got
	got=$(mgr ConfigError) || return 1
	[ "$got" = "$1" ] && return 0
	printf '    want: %s\n    got:  %s\n' "$1" "$got"
	return 1
}

msg_save "$USER1" INBOX "<seed@config.test>" 300 || bail "doveadm save"
start_daemon || bail "cpm-syncd did not take org.cpmsync: $(tail -n 5 "$WORK/daemon.log")"
check "account reaches State idle" wait_state idle 20
check "ConfigError is empty at start" test "$(mgr ConfigError)" = ""

"$CPMCTL" watch >"$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH_PID=$!
BG_PIDS+=("$WATCH_PID")
check "cpmctl watch listens" eventually 10 grep -qx "cpmctl: watching every account; interrupt to stop" "$WORK/watch.err"

# --- a refused reload ----------------------------------------------------------------------
sed 's/^port = .*/port = many/' "$WORK/good.conf" >"$WORK/bad.conf" || bail "sed failed"
line=$(grep -n '^port = many' "$WORK/bad.conf" | cut -d: -f1)
[ -n "$line" ] || bail "the bad configuration has no bad port line"
replace "$CONF" "$WORK/bad.conf" || bail "cannot replace the configuration"
check "a bad file sets ConfigError to FILE:LINE: reason" \
	eventually 10 bash -c "[[ \"\$('$DBUS' get /org/cpmsync org.cpmsync.Manager1 ConfigError)\" == '$CONF:$line: '?* ]]"
err=$(mgr ConfigError)
echo "# ConfigError: $err"
check "ConfigError names the port" bash -c "[[ '$err' == *port* ]]"
one_log_line() {
	if [ "$(log_count "$err")" -eq 1 ] &&
		grep -qF -- "$err; keeping the last good configuration" "$WORK/daemon.log"; then
		return 0
	fi
	grep -F -- "$err" "$WORK/daemon.log" | sed 's/^/    | /'
	return 1
}
check "the log has one line with it, saying the last good configuration stays" one_log_line
check "watch: PropertiesChanged of ConfigError" \
	eventually 5 has_line "$WORK/watch.out" $'\t\tPropertiesChanged\tConfigError='"$err"
check "the last good configuration stays: the account is idle" test "$(acct State)" = idle
# status_says RC OUT-PATTERN ERR: cpmctl status exits RC, its stdout matches
# the extended regex OUT-PATTERN, and its stderr is exactly ERR (else shown)
status_says() {
	local rc=0
	"$CPMCTL" status >"$WORK/status.out" 2>"$WORK/status.err" || rc=$?
	if [ "$rc" -eq "$1" ] && grep -qE -- "$2" "$WORK/status.out" &&
		[ "$(cat "$WORK/status.err")" = "$3" ]; then
		return 0
	fi
	echo "    rc $rc (want $1)"
	sed 's/^/    out | /' "$WORK/status.out"
	sed 's/^/    err | /' "$WORK/status.err"
	return 1
}
check "cpmctl status: the account's line, and on stderr why the file was refused" \
	status_says 0 $'^a\tidle\t' "cpmctl: configuration: $err"
run_sync() { "$CPMCTL" sync a >"$WORK/out" 2>"$WORK/err"; }
check "and syncs" run_sync
reloaded=$(log_count "configuration reloaded")
check "no 'configuration reloaded' for the refused file" test "$reloaded" -eq 0

# --- a good reload clears it ----------------------------------------------------------------
replace "$CONF" "$WORK/good.conf" || bail "cannot restore the configuration"
check "a good file clears ConfigError" eventually 10 bash -c "[ -z \"\$('$DBUS' get /org/cpmsync org.cpmsync.Manager1 ConfigError)\" ]"
check "the log says 'configuration reloaded'" eventually 5 bash -c "grep -q 'configuration reloaded\$' '$WORK/daemon.log'"
check "watch: PropertiesChanged of ConfigError, now empty" \
	eventually 5 has_line "$WORK/watch.out" $'\t\tPropertiesChanged\tConfigError='
check "exactly two ConfigError changes were signalled" \
	test "$(grep -c $'^\t\tPropertiesChanged\tConfigError=' "$WORK/watch.out")" -eq 2

# --- a changed database: said until the file names the store in use again -------------------
sed "s|^database = .*|database = $WORK/other.db|" "$WORK/good.conf" >"$WORK/db.conf" || bail "sed failed"
ld=$(grep -n '^database = ' "$WORK/db.conf" | cut -d: -f1)
[ -n "$ld" ] || bail "the configuration has no database line"
db_err="$CONF:$ld: database changed from $WORK/store.db to $WORK/other.db: restart cpm-syncd to use it"
db_log="$CONF: database changed to $WORK/other.db; restart cpm-syncd to use it (still using $WORK/store.db)"
replace "$CONF" "$WORK/db.conf" || bail "cannot replace the configuration"
check "database changed: ConfigError says a restart is needed" eventually 10 config_error_is "$db_err"
check "the log says so once" eventually 5 bash -c "[ \"\$(grep -cxF -- 'cpm-syncd: $db_log' '$WORK/daemon.log')\" -eq 1 ]"
check "the old store stays in use: it syncs" run_sync
check "no new store was made" test ! -e "$WORK/other.db"
# cpmctl reads the store the daemon uses (Manager1.Database), not the file's.
expect "Manager1.Database is the store in use" "$(mgr Database)" "$WORK/store.db"
expect "Manager1.ConfigFile is the file it reads" "$(mgr ConfigFile)" "$CONF"
"$CPMCTL" dump --db "$WORK/store.db" >"$WORK/dump.want" || bail "cpmctl dump --db"
[ -s "$WORK/dump.want" ] || bail "the store holds no message to dump"
db_note="cpmctl: reading '$WORK/store.db', the store the running cpm-syncd uses; $CONF names '$WORK/other.db', which it uses after a restart"
"$CPMCTL" dump >"$WORK/dump.got" 2>"$WORK/dump.err"
expect "dump: exit 0" "$?" 0
check "dump reads the store in use" cmp "$WORK/dump.want" "$WORK/dump.got"
expect "dump says which store it read" "$(cat "$WORK/dump.err")" "$db_note"
"$CPMCTL" pending a >"$WORK/pending.got" 2>"$WORK/pending.err"
expect "pending: exit 0, nothing queued" "$?:$(cat "$WORK/pending.got")" "0:"
expect "pending says which store it read" "$(cat "$WORK/pending.err")" "$db_note"
check "still no new store" test ! -e "$WORK/other.db"
replace "$CONF" "$WORK/good.conf" || bail "cannot restore the configuration"
check "the file names the store in use again: ConfigError cleared" eventually 10 config_error_is ""
"$CPMCTL" dump >"$WORK/dump.got" 2>"$WORK/dump.err"
expect "the same file again: dump exit 0" "$?" 0
check "the same file again: dump reads that store" cmp "$WORK/dump.want" "$WORK/dump.got"
expect "the same file again: nothing said" "$(cat "$WORK/dump.err")" ""
# A D-Bus command goes to the running daemon whatever --config says: with
# another file, cpmctl says so (once), and goes on.
cp "$CONF" "$WORK/copy.conf" || bail "cannot copy the configuration"
"$CPMCTL" -c "$WORK/copy.conf" folders a >"$WORK/folders.got" 2>"$WORK/folders.err"
expect "folders with another --config: exit 0" "$?" 0
check "...lists the daemon's folders (INBOX)" grep -q 'INBOX' "$WORK/folders.got"
expect "...and says whose they are" "$(cat "$WORK/folders.err")" \
	"cpmctl: the running cpm-syncd reads '$CONF', not '$WORK/copy.conf': this command goes to it (--config is for dump and pending)"
"$CPMCTL" -c "$CONF" folders a >"$WORK/folders.got" 2>"$WORK/folders.err"
expect "folders with the daemon's own --config: exit 0, nothing said" \
	"$?:$(cat "$WORK/folders.err")" "0:"

# --- a refused login, then a new password file ------------------------------------------------
printf 'not-the-password\n' >"$PW" || bail "cannot write the password file"
"$CPMCTL" online a off >/dev/null || bail "online a off failed"
wait_state offline 5 || bail "the account did not go offline"
"$CPMCTL" online a on >/dev/null || bail "online a on failed"
check "a wrong password: State error" wait_state error 20
auth_err=$(acct LastError)
check "LastError says the login was refused ($auth_err)" bash -c "[[ '$auth_err' == *[Aa]uthentication* ]]"
sleep 2
check "it does not retry by itself: still error 2 s later" test "$(acct State)" = error
n_changed=$(log_count "alice.pw changed, logging in again")
printf '%s\n' "$PASS1" >"$PW" || bail "cannot write the password file"
t0=$(date +%s%N)
check "the password file rewritten: it logs in again, no restart, no Sync (State idle)" wait_state idle 20
t=$((($(date +%s%N) - t0) / 1000000))
echo "# idle again $t ms after the password file was written"
check "the log says why it logged in again" \
	test "$(log_count "a: $PW changed, logging in again")" -eq $((n_changed + 1))
check "the same daemon" kill -0 "$DAEMON_PID"
check "LastError cleared" test -z "$(acct LastError)"

# A password file changed while the account is fine: no needless login.
printf '%s\n' "$PASS1" >"$PW"
sleep 1
check "a password file change while idle: nothing logged in again" \
	test "$(log_count "a: $PW changed, logging in again")" -eq $((n_changed + 1))

# --- password_command: its new output on the next Sync() ---------------------------------------
printf 'not-the-password\n' >"$WORK/pw-out"
sed -e "s|^password_file = .*|password_command = cat $WORK/pw-out|" "$WORK/good.conf" >"$WORK/cmd.conf" ||
	bail "sed failed"
lc=$(grep -n '^password_command = ' "$WORK/cmd.conf" | cut -d: -f1)
[ -n "$lc" ] || bail "no password_command line"
# First with a mode that lets others write it: refused, "chmod go-w it"; the
# chmod as told is seen (inotify IN_ATTRIB), without an edit or SIGHUP.
# write_mode FILE CONTENT-FILE MODE: as replace, with that mode
write_mode() { cp "$2" "$1.tmp" && chmod "$3" "$1.tmp" && mv "$1.tmp" "$1"; }
write_mode "$CONF" "$WORK/cmd.conf" 0666 || bail "cannot write the configuration with mode 0666"
mode_err="$CONF:$lc: account 'a': password_command in a file writable by group or others (mode 0666): whoever can write it can run commands as you; chmod go-w it"
check "password_command in a file of mode 0666: ConfigError asks for chmod go-w" \
	eventually 10 config_error_is "$mode_err"
check "the last good configuration stays: the account is idle" test "$(acct State)" = idle
reloaded=$(log_count "configuration reloaded")
chmod go-w "$CONF" || bail "chmod go-w failed"
check "chmod go-w as told: ConfigError cleared, without an edit or SIGHUP" \
	eventually 10 config_error_is ""
reloaded_once_more() { [ "$(log_count "configuration reloaded")" -eq $((reloaded + 1)) ]; }
check "the log says 'configuration reloaded' once more" eventually 5 reloaded_once_more
check "password_command with a wrong password: State error" wait_state error 20
check "ConfigError stays empty (the file is fine)" test -z "$(mgr ConfigError)"
printf '%s\n' "$PASS1" >"$WORK/pw-out"
sleep 2
check "the command's output is not watched: still error" test "$(acct State)" = error
t0=$(date +%s%N)
"$CPMCTL" sync a >"$WORK/out" 2>"$WORK/err"
rc=$?
t=$((($(date +%s%N) - t0) / 1000000))
sync_ok() {
	if [ "$rc" -eq 0 ] && [ "$(cat "$WORK/out")" = 'a: ok' ] && [ ! -s "$WORK/err" ]; then
		return 0
	fi
	sed 's/^/    | /' "$WORK/out" "$WORK/err"
	return 1
}
check "cpmctl sync a (Sync()): the command runs again, 'a: ok', exit 0 ($rc, $t ms)" sync_ok
check "State idle" wait_state idle 5

# --- an unknown key: a warning, in ConfigWarnings and on cpmctl status's stderr ---------------
check "no ConfigWarnings for a file without warnings" test -z "$(mgr ConfigWarnings)"
check "cpmctl status: nothing on stderr" status_says 0 $'^a\tidle\t' ""
cp "$CONF" "$WORK/cur.conf" || bail "cannot copy the configuration"
{ cat "$WORK/cur.conf" && echo "intervall = 5"; } >"$WORK/warn.conf" || bail "cannot write warn.conf"
lw=$(grep -n '^intervall = 5$' "$WORK/warn.conf" | cut -d: -f1)
[ -n "$lw" ] || bail "no intervall line"
grep -q '^\[account a\]$' "$WORK/warn.conf" || bail "the configuration has no [account a]"
want_w="$CONF:$lw: unknown key 'intervall' in [account a], ignoring it"
reloaded=$(log_count "configuration reloaded")
replace "$CONF" "$WORK/warn.conf" || bail "cannot replace the configuration"
check "the file is taken: 'configuration reloaded' once more" eventually 10 reloaded_once_more
check "ConfigWarnings is exactly the warning, FILE:LINE: text" test "$(mgr ConfigWarnings)" = "- $want_w"
check "ConfigError stays empty (a warning is not a refusal)" test -z "$(mgr ConfigError)"
check "the log has the warning" bash -c "grep -qF -- \"$want_w\" '$WORK/daemon.log'"
check "cpmctl status: the account's line, and the warning on stderr" \
	status_says 0 $'^a\tidle\t' "cpmctl: configuration warning: $want_w"
reloaded=$(log_count "configuration reloaded")
replace "$CONF" "$WORK/cur.conf" || bail "cannot restore the configuration"
check "the key removed: reloaded" eventually 10 reloaded_once_more
check "ConfigWarnings is empty again" test -z "$(mgr ConfigWarnings)"
check "cpmctl status: nothing on stderr again" status_says 0 $'^a\tidle\t' ""

kill "$WATCH_PID"
wait "$WATCH_PID" 2>/dev/null
finish
