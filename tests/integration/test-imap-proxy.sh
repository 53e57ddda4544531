#!/usr/bin/env bash
# tests/tools/imap-proxy (the fault-injecting TCP proxy other integration tests
# and benchmarks put between a client and Dovecot), driven against a real
# Dovecot with scripted IMAP sessions over bash's /dev/tcp: bytes pass through
# unchanged both ways, concurrent connections, the --stats totals, cut / stall
# / bye at a pattern (also across reads: --chunk-size 3), --delay-ms, only the Nth
# connection faulted, usage and startup errors, exit on SIGTERM.
# Needs bash, coreutils, Dovecot; the proxy is built by `make tests` (compiled
# here with cc if missing; IMAP_PROXY=PATH runs another build, e.g. a sanitized one).
set -u
export LC_ALL=C # ${#var} counts bytes
TOP=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
CTL=$TOP/tests/dovecot/dovecot-ctl.sh
PROXY=${IMAP_PROXY:-$TOP/$B/tests/tools/imap-proxy}
WORK=$(mktemp -d)
chmod 0755 "$WORK"
DC=$WORK/dovecot
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	"$CTL" stop "$DC" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap '' PIPE # a write to a closed connection fails instead of killing us

. "$(dirname "$0")/lib-tap.sh"

if [ ! -x "$PROXY" ]; then
	echo "# $PROXY not built (make tests); compiling it here"
	PROXY=$WORK/imap-proxy
	if ! "${CC:-cc}" -std=gnu17 -O2 -Wall -o "$PROXY" "$TOP/tests/tools/imap-proxy.c"; then
		not_ok "build imap-proxy"
		finish
	fi
fi

mkdir -p "$DC"
if ! "$CTL" start "$DC" >"$WORK/start.out" 2>&1 || ! "$CTL" seed "$DC" >>"$WORK/start.out" 2>&1; then
	cat "$WORK/start.out"
	not_ok "start and seed dovecot"
	finish
fi
. "$DC/env"

# ---- IMAP client over /dev/tcp ----------------------------------------------
# One connection at a time: FD, transcript file OUT ("S: line", "C: line",
# and a final "EOF" or "TIMEOUT" when the server side ended or fell silent),
# SENT / RECV byte counts (exact: the server's lines all end in CRLF).
READ_TIMEOUT=5
FD='' OUT='' SENT=0 RECV=0 NTAG=0

# await PREFIX: read lines until one starts with PREFIX; 1 on EOF or timeout
await() {
	local line rc
	while :; do
		line=
		IFS= read -r -t "$READ_TIMEOUT" -u "$FD" line
		rc=$?
		if [ $rc -eq 0 ]; then
			RECV=$((RECV + ${#line} + 1))
			line=${line%$'\r'}
			echo "S: $line" >>"$OUT"
			[[ $line == "$1"* ]] && return 0
		else
			# partial line (bash keeps it on EOF and timeout)
			if [ -n "$line" ]; then
				RECV=$((RECV + ${#line}))
				echo "S: ${line%$'\r'}" >>"$OUT"
			fi
			if [ $rc -gt 128 ]; then echo TIMEOUT >>"$OUT"; else echo EOF >>"$OUT"; fi
			return 1
		fi
	done
}
# imap_open PORT OUTFILE: connect and read the greeting
imap_open() {
	OUT=$2 SENT=0 RECV=0 NTAG=0
	: >"$OUT"
	if ! exec {FD}<>"/dev/tcp/127.0.0.1/$1"; then
		echo CONNECT-FAILED >>"$OUT"
		return 1
	fi
	await "* OK ["
}
# imap_send COMMAND: send it with the next tag (no wait)
imap_send() {
	local l
	NTAG=$((NTAG + 1))
	l="a$NTAG $1"
	{ printf '%s\r\n' "$l" >&"$FD"; } 2>/dev/null
	SENT=$((SENT + ${#l} + 2))
	echo "C: $l" >>"$OUT"
}
# imap_cmd COMMAND: send it and read up to its tagged reply
imap_cmd() {
	imap_send "$1"
	await "a$NTAG "
}
imap_close() {
	exec {FD}>&-
}
# session PORT OUTFILE COMMAND...: a whole session; stops at the first
# command left without a tagged reply
session() {
	local port=$1 out=$2 cmd
	shift 2
	if imap_open "$port" "$out"; then
		for cmd in "$@"; do
			imap_cmd "$cmd" || break
		done
	fi
	imap_close
}
# normalize FILE: drop what varies between two runs of the same session
normalize() {
	sed -E -e 's/ \([0-9.]+( \+ [0-9.]+)* secs\)//' \
		-e '/^S: \* OK Waiting for authentication process to respond/d' "$1"
}
same() { # same FILE1 FILE2
	if cmp -s <(normalize "$1") <(normalize "$2"); then
		return 0
	fi
	diff <(normalize "$1") <(normalize "$2") | head -n 20 | sed 's/^/    /'
	return 1
}

LOGIN="LOGIN $USER1 \"$PASS1\""
FETCH_ALL=("$LOGIN" "EXAMINE INBOX" "FETCH 1:* (UID BODY.PEEK[])" "LOGOUT")
FETCH_ONE=("$LOGIN" "EXAMINE INBOX" "FETCH 1 (BODY.PEEK[])" "LOGOUT")

# ---- proxy control ------------------------------------------------------------
# start_proxy NAME ARGS...: PROXY_PID, PROXY_PORT; files $WORK/NAME.{port,stats,log}
start_proxy() {
	local name=$1
	shift
	rm -f "$WORK/$name.port" "$WORK/$name.stats"
	"$PROXY" --listen-port-file "$WORK/$name.port" --to "127.0.0.1:$IMAP_PORT" \
		--stats "$WORK/$name.stats" "$@" 2>"$WORK/$name.log" &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	for _ in $(seq 100); do
		[ -s "$WORK/$name.port" ] && break
		kill -0 "$PROXY_PID" 2>/dev/null || break
		sleep 0.05
	done
	PROXY_PORT=$(cat "$WORK/$name.port" 2>/dev/null)
	[[ $PROXY_PORT =~ ^[0-9]+$ ]]
}
# stop_proxy PID: SIGTERM, wait; returns the proxy's exit status
stop_proxy() {
	kill -TERM "$1" 2>/dev/null
	wait "$1"
}
# stat_of NAME KEY: a value from NAME's stats file
stat_of() {
	sed -n "s/^$2 //p" "$WORK/$1.stats" 2>/dev/null
}
# wait_stats NAME CONNECTIONS C2S S2C: until the stats file says exactly that
wait_stats() {
	local want got _
	want=$(printf 'connections %s\nclient_to_server %s\nserver_to_client %s' "$2" "$3" "$4")
	for _ in $(seq 50); do
		got=$(cat "$WORK/$1.stats" 2>/dev/null)
		[ "$got" = "$want" ] && return 0
		sleep 0.1
	done
	echo "    stats: $(tr '\n' ' ' <<<"$got")  expected: $(tr '\n' ' ' <<<"$want")"
	return 1
}
# cpu_ticks PID: user + system clock ticks used so far
cpu_ticks() {
	local f
	read -r -a f <"/proc/$1/stat"
	# fields after the "(comm)" one; comm has no spaces here
	echo $((f[13] + f[14]))
}

# ---- usage and startup errors ---------------------------------------------
# runs PROXY ARGS..., expects exit status WANT and stderr matching PATTERN
expect_exit() {
	local want=$1 pattern=$2 rc
	shift 2
	timeout 10 "$PROXY" "$@" >"$WORK/out" 2>"$WORK/err"
	rc=$?
	if [ "$rc" -eq "$want" ] && grep -qE -- "$pattern" "$WORK/err"; then
		return 0
	fi
	echo "    exit $rc, stderr: $(head -c 300 "$WORK/err")"
	return 1
}
PF=$WORK/usage.port
check "no arguments: usage error (2)" expect_exit 2 'listen-port-file.*required' 
check "missing --to: usage error (2)" expect_exit 2 '--to HOST:PORT is required' --listen-port-file "$PF"
check "--fault with an unknown kind: usage error (2)" expect_exit 2 "'boom' is not one of cut, stall, bye" \
	--listen-port-file "$PF" --to "127.0.0.1:$IMAP_PORT" --fault boom
check "--fault bye with --fault-stream client: usage error (2)" \
	expect_exit 2 "not with --fault-stream client" \
	--listen-port-file "$PF" --to "127.0.0.1:$IMAP_PORT" --fault bye --fault-stream client
check "--fault-stream with an unknown stream: usage error (2)" \
	expect_exit 2 "'both' is not one of server, client" \
	--listen-port-file "$PF" --to "127.0.0.1:$IMAP_PORT" --fault cut --fault-stream both
check "--after-pattern without --fault: usage error (2)" expect_exit 2 'need --fault' \
	--listen-port-file "$PF" --to "127.0.0.1:$IMAP_PORT" --after-pattern FETCH
check "--after-bytes not a number: usage error (2)" expect_exit 2 "'12x' is not a number" \
	--listen-port-file "$PF" --to "127.0.0.1:$IMAP_PORT" --fault cut --after-bytes 12x
check "--delay-ms over a minute: usage error (2)" expect_exit 2 "--delay-ms: 60001 is too large" \
	--listen-port-file "$PF" --to 127.0.0.1:1 --delay-ms 60001
check "--drop-count without --drop-line: usage error (2)" expect_exit 2 '--drop-count needs --drop-line' \
	--listen-port-file "$PF" --to "127.0.0.1:$IMAP_PORT" --drop-count 3
check "--drop-line with --fault: usage error (2)" expect_exit 2 '--drop-line: not with --fault nor --delay-ms' \
	--listen-port-file "$PF" --to "127.0.0.1:$IMAP_PORT" --drop-line LIST --fault cut
check "unknown option: usage error (2)" expect_exit 2 "unknown option '--bogus'" \
	--listen-port-file "$PF" --to "127.0.0.1:$IMAP_PORT" --bogus
check "--to without a port: usage error (2)" expect_exit 2 "is not HOST:PORT" \
	--listen-port-file "$PF" --to 127.0.0.1
check "closed target port: startup error (1) naming the connect" \
	expect_exit 1 'cannot connect to target 127.0.0.1:1: Connection refused' \
	--listen-port-file "$PF" --to 127.0.0.1:1
check "unwritable port file: startup error (1)" expect_exit 1 "cannot write port file $WORK/nodir/p" \
	--listen-port-file "$WORK/nodir/p" --to "127.0.0.1:$IMAP_PORT"
if "$PROXY" --help >"$WORK/help" 2>&1 && grep -q -- '--after-pattern STR' "$WORK/help" &&
	grep -q -- '--fault-connection N' "$WORK/help" && grep -q 'server_to_client' "$WORK/help"; then
	ok "--help: exit 0, describes the options and the stats file"
else
	not_ok "--help"
fi

# ---- plain forwarding, stats ---------------------------------------------
session "$IMAP_PORT" "$WORK/direct-all" "${FETCH_ALL[@]}"
session "$IMAP_PORT" "$WORK/direct-one" "${FETCH_ONE[@]}"
if grep -q '^S: a4 OK' "$WORK/direct-all" && grep -q '^S: a4 OK' "$WORK/direct-one" &&
	grep -q '^S: \* 4 FETCH' "$WORK/direct-all"; then
	ok "reference sessions straight to Dovecot (LOGIN, EXAMINE, FETCH BODY[], LOGOUT)"
else
	not_ok "reference sessions straight to Dovecot"
	sed 's/^/    /' "$WORK/direct-all" | tail -n 5
	finish
fi

if start_proxy plain; then
	ok "proxy started, port file holds a port number ($PROXY_PORT)"
else
	not_ok "proxy started"
	sed 's/^/    /' "$WORK/plain.log"
	finish
fi
PLAIN_PID=$PROXY_PID
session "$PROXY_PORT" "$WORK/plain-1" "${FETCH_ALL[@]}"
check "through the proxy: the same session, byte for byte (LOGIN accepted: client->server works)" \
	same "$WORK/direct-all" "$WORK/plain-1"
check "stats after the connection closed: 1 connection, the bytes sent and received" \
	wait_stats plain 1 "$SENT" "$RECV"
S1=$SENT R1=$RECV

# two connections open at once, commands interleaved
c2=0
if exec {A}<>"/dev/tcp/127.0.0.1/$PROXY_PORT" && exec {C}<>"/dev/tcp/127.0.0.1/$PROXY_PORT"; then
	# shellcheck disable=SC2034 # read into a scratch variable
	for fd in "$A" "$C"; do
		while IFS= read -r -t 5 -u "$fd" line && [[ $line != '* OK ['* ]]; do :; done
	done
	printf 'b1 %s\r\n' "$LOGIN" >&"$C"
	printf 'x1 %s\r\n' "$LOGIN" >&"$A"
	while IFS= read -r -t 5 -u "$C" line; do [[ $line == 'b1 OK'* ]] && { c2=$((c2 + 1)); break; }; done
	while IFS= read -r -t 5 -u "$A" line; do [[ $line == 'x1 OK'* ]] && { c2=$((c2 + 1)); break; }; done
	printf 'x2 LOGOUT\r\n' >&"$A"
	printf 'b2 LOGOUT\r\n' >&"$C"
	while IFS= read -r -t 5 -u "$A" line; do [[ $line == 'x2 OK'* ]] && { c2=$((c2 + 1)); break; }; done
	while IFS= read -r -t 5 -u "$C" line; do [[ $line == 'b2 OK'* ]] && { c2=$((c2 + 1)); break; }; done
	exec {A}>&- {C}>&-
fi
check "two concurrent connections, interleaved commands" test "$c2" -eq 4
if stop_proxy "$PLAIN_PID"; then
	ok "SIGTERM: proxy exits 0"
else
	not_ok "SIGTERM: proxy exits 0 (exit $?)"
fi
n=$(stat_of plain connections) c2s=$(stat_of plain client_to_server) s2c=$(stat_of plain server_to_client)
if [ "$n" = 3 ] && [ "$c2s" -gt "$S1" ] && [ "$s2c" -gt "$R1" ]; then
	ok "stats on exit: 3 connections, totals grew"
else
	not_ok "stats on exit: connections $n c2s $c2s s2c $s2c"
fi

# ---- --delay-ms: a server 300 ms away (3-byte reads: more than its 64 marks) ----
if start_proxy delay --delay-ms 300 --chunk-size 3; then
	t0=$(date +%s%N)
	session "$PROXY_PORT" "$WORK/delay-1" "${FETCH_ALL[@]}"
	ms=$((($(date +%s%N) - t0) / 1000000))
	check "--delay-ms 300: the same session, byte for byte" same "$WORK/direct-all" "$WORK/delay-1"
	# greeting, LOGIN, EXAMINE, FETCH, LOGOUT: five answers, none sooner
	check "--delay-ms 300: five answers waited for took $ms ms, at least 1500" test "$ms" -ge 1500
	stop_proxy "$PROXY_PID"
else
	not_ok "proxy --delay-ms 300 started"
	sed 's/^/    /' "$WORK/delay.log"
fi

# ---- cut, on the 2nd connection only, pattern matched 3 bytes at a time --------
# The literal's first line in the reference session: the cut keeps the
# "{SIZE}\r\n" after the pattern plus 10 - (len(SIZE) + 3) bytes of it.
size=$(sed -nE 's/^S: \* 1 FETCH \(BODY\[\] \{([0-9]+)\}$/\1/p' "$WORK/direct-one")
first=$(grep -A1 -E '^S: \* 1 FETCH \(BODY\[\] \{' "$WORK/direct-one" | sed -n '2s/^S: //p')
want_partial=${first:0:$((10 - ${#size} - 3))}
if start_proxy cut --fault cut --fault-connection 2 --after-pattern 'BODY[] {' --after-bytes 10 --chunk-size 3; then
	session "$PROXY_PORT" "$WORK/cut-1" "${FETCH_ONE[@]}"
	S1=$SENT R1=$RECV
	check "cut on connection 2: connection 1 untouched" same "$WORK/direct-one" "$WORK/cut-1"
	session "$PROXY_PORT" "$WORK/cut-2" "${FETCH_ONE[@]}"
	S2=$SENT R2=$RECV
	tail2=$(tail -n 3 "$WORK/cut-2" | tr '\n' '|')
	want2="S: * 1 FETCH (BODY[] {$size}|S: $want_partial|EOF|"
	if [ "$tail2" = "$want2" ] && ! grep -q '^S: a3 ' "$WORK/cut-2"; then
		ok "cut on connection 2: closed 10 bytes after 'BODY[] {', mid-literal, across 3-byte reads"
	else
		not_ok "cut on connection 2: got '$tail2', expected '$want2'"
	fi
	session "$PROXY_PORT" "$WORK/cut-3" "${FETCH_ONE[@]}"
	S3=$SENT R3=$RECV
	check "cut on connection 2: connection 3 untouched" same "$WORK/direct-one" "$WORK/cut-3"
	check "cut: stats add up over the 3 connections" \
		wait_stats cut 3 $((S1 + S2 + S3)) $((R1 + R2 + R3))
	check "cut: logged on stderr" grep -q 'connection 2: fault cut' "$WORK/cut.log"
	stop_proxy "$PROXY_PID"
else
	not_ok "start proxy (cut)"
fi

# ---- bye after a pattern in a literal header: after the whole response ---------
if start_proxy bye --fault bye --after-pattern 'BODY[] {'; then
	session "$PROXY_PORT" "$WORK/bye-1" "${FETCH_ALL[@]}"
	{
		normalize "$WORK/direct-all" | sed '/^S: \* 2 FETCH/,$d'
		echo "S: * BYE proxy: injected fault"
		echo EOF
	} >"$WORK/bye-want"
	check "bye after 'BODY[] {': BYE at the end of the first FETCH response (literal skipped), then closed" \
		same "$WORK/bye-want" "$WORK/bye-1"
	check "bye: the injected BYE is not counted in server_to_client" \
		wait_stats bye 1 "$SENT" $((RECV - 29))
	stop_proxy "$PROXY_PID"
else
	not_ok "start proxy (bye)"
fi

# ---- bye after a pattern + bytes past a line end: at the next line end ------
if start_proxy byeb --fault bye --after-pattern ' EXISTS' --after-bytes 3; then
	session "$PROXY_PORT" "$WORK/byeb-1" "${FETCH_ALL[@]}"
	{
		normalize "$WORK/direct-all" | sed -n '1,/^S: \* [0-9]* EXISTS/p'
		normalize "$WORK/direct-all" | sed -n '/^S: \* [0-9]* EXISTS/{n;p}'
		echo "S: * BYE proxy: injected fault"
		echo EOF
	} >"$WORK/byeb-want"
	check "bye after ' EXISTS' + 3 bytes: BYE after the next whole line" \
		same "$WORK/byeb-want" "$WORK/byeb-1"
	stop_proxy "$PROXY_PID"
else
	not_ok "start proxy (bye + bytes)"
fi

# ---- bye at offset 0 on every connection: instead of the greeting ------------
if start_proxy byeall --fault bye --fault-connection 0; then
	session "$PROXY_PORT" "$WORK/byeall-1" "$LOGIN"
	session "$PROXY_PORT" "$WORK/byeall-2" "$LOGIN"
	printf 'S: * BYE proxy: injected fault\nEOF\n' >"$WORK/byeall-want"
	if same "$WORK/byeall-want" "$WORK/byeall-1" && same "$WORK/byeall-want" "$WORK/byeall-2"; then
		ok "bye, --fault-connection 0: every connection gets the BYE instead of the greeting"
	else
		not_ok "bye, --fault-connection 0"
	fi
	check "bye at offset 0: no server byte counted" wait_stats byeall 2 0 0
	stop_proxy "$PROXY_PID"
else
	not_ok "start proxy (bye, every connection)"
fi

# ---- cut in the client->server stream: the server sees a truncated command ----
# 'EXAMIN' + 3 bytes: the server gets "a2 EXAMINE I" and no line end, so it
# never answers; the client sees the connection closed after LOGIN's OK.
if start_proxy cutc --fault cut --fault-stream client --after-pattern 'EXAMIN' --after-bytes 3; then
	session "$PROXY_PORT" "$WORK/cutc-1" "${FETCH_ONE[@]}"
	tailc=$(tail -n 3 "$WORK/cutc-1" | normalize /dev/stdin | tr '\n' '|')
	wantc="$(normalize "$WORK/direct-one" | grep '^S: a1 ')|C: a2 EXAMINE INBOX|EOF|"
	if [ "$tailc" = "$wantc" ]; then
		ok "cut in the client stream 3 bytes after 'EXAMIN': no answer to EXAMINE, closed"
	else
		not_ok "cut in the client stream: got '$tailc', expected '$wantc'"
	fi
	login_len=$((${#LOGIN} + 5)) # "a1 " LOGIN CRLF
	check "cut in the client stream: the server got LOGIN and 'a2 EXAMINE I' only" \
		wait_stats cutc 1 $((login_len + 12)) "$RECV"
	check "cut in the client stream: logged on stderr" \
		grep -q 'connection 1: fault cut after [0-9]* client->server bytes' "$WORK/cutc.log"
	stop_proxy "$PROXY_PID"
else
	not_ok "start proxy (cut, client stream)"
fi

# ---- stall: silence both ways, sockets open, until the client closes --------
if start_proxy stall --fault stall --after-pattern 'BODY[] {' --after-bytes 5; then
	t0=$(cpu_ticks "$PROXY_PID")
	READ_TIMEOUT=2
	imap_open "$PROXY_PORT" "$WORK/stall-1" && imap_cmd "$LOGIN" && imap_cmd "EXAMINE INBOX" &&
		imap_cmd "FETCH 1 (BODY.PEEK[])"
	S1=$SENT R1=$RECV
	tail1=$(tail -n 2 "$WORK/stall-1" | tr '\n' '|')
	want1="S: * 1 FETCH (BODY[] {$size}|TIMEOUT|"
	if [ "$tail1" = "$want1" ]; then
		ok "stall 5 bytes after 'BODY[] {': the client times out reading"
	else
		not_ok "stall: got '$tail1', expected '$want1'"
	fi
	READ_TIMEOUT=1
	imap_cmd "NOOP"
	check "stall: a command sent meanwhile gets no answer" test "$(tail -n 1 "$WORK/stall-1")" = TIMEOUT
	check "stall: the connection stays open while the client waits" kill -0 "$PROXY_PID"
	check "stall: the proxy does not spin (CPU < 0.2 s over 3 s of stall)" \
		test $(($(cpu_ticks "$PROXY_PID") - t0)) -lt 20
	imap_close
	READ_TIMEOUT=5
	check "stall: closed once the client closes; nothing counted after the stall point" \
		wait_stats stall 1 "$S1" "$R1"
	stop_proxy "$PROXY_PID"
else
	not_ok "start proxy (stall)"
fi

finish
