/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * push-latency: the push benchmark's measuring client (tests/bench/
 * bench-push.sh).  It talks to a running cpm-syncd over the session bus
 * (DBUS_SESSION_BUS_ADDRESS) and, as "another client", to the same IMAP
 * server over plaintext IMAP (LOGIN: loopback only).  See usage().
 *
 * Times are CLOCK_MONOTONIC; an arrival is timed when its bytes are read
 * from the socket (the IMAP socket and the bus are polled together, so
 * neither waits behind the other).
 */
#include <dbus/dbus.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG		"push-latency"
#define DEST		"org.cpmsync"
#define ROOT_PATH	"/org/cpmsync"
#define ACCOUNT_IFACE	"org.cpmsync.Account1"
#define FOLDER_IFACE	"org.cpmsync.Folder1"
#define OM_IFACE	"org.freedesktop.DBus.ObjectManager"
#define CALL_TIMEOUT_MS 60000
#define PAUSE_US	20000 /* between events */

static void usage(FILE *f)
{
	fputs("Usage: " PROG " added --imap HOST:PORT --user U --password-file F --account NAME\n"
	      "                    --count N [--folder INBOX] [--timeout S] [--bare] [-v]\n"
	      "       " PROG " flags (the same options) [--observe noop|idle] [--poll-ms MS]\n"
	      "       " PROG " list --account NAME --folder F [--count 1000] [--repeat R]\n"
	      "       " PROG " sync --account NAME --count N [--timeout S] [-v]\n"
	      "       " PROG
	      " wait --account NAME [--folder F [--messages N]] [--timeout S] [--sync]\n"
	      "       " PROG " convs --account NAME [--count 50] [--repeat R] [--paged]\n"
	      "                    [--save-reply FILE | --floor NAME [--path P]]\n"
	      "       " PROG " imdn --imap HOST:PORT --user U --password-file F --account NAME\n"
	      "                   --folder F --count N --deliver CMD [--timeout S]\n"
	      "                   [--bare-notify] [-v]\n"
	      "\n"
	      "added  N times: APPEND a message with a unique Message-ID to the folder over\n"
	      "       its own IMAP connection (t0: just before the APPEND is sent), then\n"
	      "       wait for the daemon's Folder1.MessagesAdded signal carrying that\n"
	      "       Message-ID (t1).  With --bare, a second connection of its own\n"
	      "       waits in IDLE on the folder (a bare IDLE client); each event also\n"
	      "       times that client's untagged EXISTS (tb), and it prints the bare\n"
	      "       client's wake-up (tb - t0) and the daemon's share above it\n"
	      "       (t1 - tb) as lines `bare-idle: ...` and `share: ...` too.\n"
	      "flags  SELECT on its own IMAP connection; N times: Folder1.SetFlags on one\n"
	      "       message of the folder (with a UID), adding and removing \\Flagged in\n"
	      "       turn (t0: just before the call), then wait for the untagged FETCH\n"
	      "       showing the new state on that connection (t1).  It looks with NOOP\n"
	      "       every MS milliseconds (default 5; --observe noop, the default) or\n"
	      "       waits in IDLE (--observe idle).  Note: Dovecot 2.3 delays IDLE and\n"
	      "       NOTIFY updates by 500 ms after a change (NOTIFY_DELAY_MSECS), so\n"
	      "       idle measures that delay too.\n"
	      "       Both print `MODE: n=N median=X ms p90=Y ms p95=V ms p99=Z ms max=W ms`\n"
	      "       (percentiles by nearest rank), with -v each latency before.\n"
	      "list   times Folder1.ListMessages(0, COUNT) REPEAT times (default 20) and\n"
	      "       prints `list: K summaries: median=X ms min=Y ms max=Z ms (R runs),\n"
	      "       reply bytes=B`.\n"
	      "sync   N times: Account1.Sync with nothing new on the server (t0: just\n"
	      "       before the call), then wait for the account's SyncGeneration to\n"
	      "       move (t1: the PropertiesChanged signal that says so); 100 ms apart.\n"
	      "       Prints `push: P` (PushState before the first call), then the same\n"
	      "       line as added/flags with MODE sync.\n"
	      "wait   until org.cpmsync has an owner, the account's State is \"idle\"\n"
	      "       after a complete sync (LastSync > 0) and, with --messages, the folder\n"
	      "       holds N messages (default timeout 60 s; progress on stderr every 10 s).\n"
	      "       --sync calls Account1.Sync once the account is there.\n"
	      "convs  times Account1.ListConversations REPEAT times, then\n"
	      "       ListConversationMessages(C, 0, COUNT) REPEAT times on the first\n"
	      "       conversation C with at least COUNT messages (else the largest);\n"
	      "       prints `NAME: K items: median=X ms p95=Y ms min= max= (R runs),\n"
	      "       reply bytes=B` for each.  With --paged instead (ListConversations\n"
	      "       called once, untimed): ListConversationsPage(0, COUNT) (the first\n"
	      "       page, the same line), and the whole list page by page\n"
	      "       (offset 0, COUNT, 2 x COUNT ... until a short page), REPEAT times:\n"
	      "       `ListConversationsPage walk (COUNT a page): K items in P calls:\n"
	      "       median=X ms ...` (fatal unless K is ListConversations' count).\n"
	      "       --save-reply FILE writes the last ListConversations reply, whole\n"
	      "       as dbus_message_marshal() gives it, to FILE.  --floor NAME times\n"
	      "       only ListConversations, called on NAME (tests/tools/dbus-floor\n"
	      "       answering with such a saved reply) and prints its line as\n"
	      "       `floor ListConversations: ...`; with NAME org.cpmsync, on\n"
	      "       cpm-syncd's account, as `ours ListConversations: ...`.  --path P\n"
	      "       calls it on object P, without looking the account up first (its\n"
	      "       GetManagedObjects is not then in the service's CPU time).\n"
	      "imdn   SELECTs the folder on its own IMAP connection and waits in IDLE (the\n"
	      "       bare client).  N times: delivers a sent CPIM chat message with a\n"
	      "       unique IMDN-Message-ID (CMD, run by /bin/sh, gets the message on its\n"
	      "       standard input, e.g. doveadm save) and waits for its MessagesAdded\n"
	      "       (its Id) and the IDLE EXISTS; then delivers a delivery report on it\n"
	      "       (t0: just before CMD starts) and waits for the EXISTS on the IDLE\n"
	      "       connection (t_idle) and the daemon's MessagesChanged for the\n"
	      "       original's Id with Status delivered (t_sig).  Prints idle (t_idle -\n"
	      "       t0), signal (t_sig - t0) and above-idle (t_sig - t_idle) as\n"
	      "       `MODE: n=N median= p90= p99= max=`.  With --bare-notify, another\n"
	      "       connection of its own (a bare NOTIFY client, no folder selected) sends the\n"
	      "       daemon's NOTIFY SET (personal (MessageNew MessageExpunge FlagChange\n"
	      "       MailboxName SubscriptionChange)), without the STATUS indicator\n"
	      "       (the folder read by one STATUS before), and each event also\n"
	      "       times its first STATUS for the folder with a higher UIDNEXT or\n"
	      "       MESSAGES (t_notify; the original's too, so that a late one is\n"
	      "       not taken for the report's); it prints notify (t_notify - t0)\n"
	      "       and above-notify (t_sig - t_notify) as well.  After each wake-up\n"
	      "       it sends NOTIFY NONE and SET again, as the daemon does after\n"
	      "       each sync (Dovecot 2.3.19 loses a NOTIFY watch when its list\n"
	      "       index log rotates).\n"
	      "\n"
	      "--timeout S is per event for added/flags/sync (default 5).  Exit status 1 on a\n"
	      "timeout, a D-Bus error or an IMAP failure (with the reason), 2 on bad usage.\n",
	      f);
}

static struct {
	const char *mode;
	const char *imap;
	const char *user;
	const char *password_file;
	const char *account;
	const char *folder;
	const char *deliver;
	const char *save_reply;
	const char *floor;
	const char *path;
	unsigned long count;
	unsigned long repeat;
	unsigned long messages;
	double timeout;
	unsigned long poll_ms;
	bool observe_idle;
	bool bare;
	bool bare_notify;
	bool paged;
	bool have_messages;
	bool sync;
	bool verbose;
} opt = { .folder = "INBOX", .repeat = 20, .poll_ms = 5 };

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry '" PROG " --help'.\n", stderr);
	exit(2);
}

/* Milliseconds, CLOCK_MONOTONIC. */
static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int remaining_ms(double deadline)
{
	double left = deadline - now_ms();

	return left <= 0 ? 0 : (int)left + 1;
}

/* ---- statistics ------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p% of the values <= it. */
static double percentile(const double *sorted, size_t n, unsigned p)
{
	size_t rank = (p * n + 99) / 100;

	return sorted[rank > 0 ? rank - 1 : 0];
}

static double median(const double *sorted, size_t n)
{
	return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

static void report(const char *what, double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	printf("%s: n=%zu median=%.1f ms p90=%.1f ms p95=%.1f ms p99=%.1f ms max=%.1f ms\n", what,
	       n, median(v, n), percentile(v, n, 90), percentile(v, n, 95), percentile(v, n, 99),
	       v[n - 1]);
}

/* ---- IMAP ------------------------------------------------------------- */

static int imap_fd = -1;
static char ibuf[65536];
static size_t ipos, ilen;
static uint64_t iskip; /* literal bytes still to skip */
static bool literal_plus;
static bool cap_notify;

static void imap_connect(const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	size_t hl;
	int r, one = 1;

	if (!colon || colon == hostport || !colon[1])
		usage_error("--imap wants HOST:PORT, not '%s'", hostport);
	hl = (size_t)(colon - hostport);
	if (hostport[0] == '[' && colon[-1] == ']') {
		hostport++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		usage_error("--imap: host too long");
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	r = getaddrinfo(host, colon + 1, &hints, &res);
	if (r)
		fatal("IMAP: %s: %s", host, gai_strerror(r));
	for (ai = res; ai; ai = ai->ai_next) {
		imap_fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (imap_fd < 0)
			continue;
		if (connect(imap_fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(imap_fd);
		imap_fd = -1;
	}
	freeaddrinfo(res);
	if (imap_fd < 0)
		fatal("IMAP: cannot connect to %s: %s", opt.imap, strerror(errno));
	setsockopt(imap_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void imap_send(const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = send(imap_fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fatal("IMAP: send: %s", n < 0 ? strerror(errno) : "connection closed");
		s += n;
		len -= (size_t)n;
	}
}

static void imap_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void imap_sendf(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		fatal("IMAP: command too long");
	imap_send(buf, (size_t)n);
	explicit_bzero(buf, sizeof(buf));
}

/* Reads what the socket has (it is readable or about to be). */
static void imap_recv(void)
{
	ssize_t n;

	if (ipos > 0) {
		memmove(ibuf, ibuf + ipos, ilen - ipos);
		ilen -= ipos;
		ipos = 0;
	}
	if (ilen == sizeof(ibuf))
		return; /* a full buffer: taken as a cut line */
	do
		n = recv(imap_fd, ibuf + ilen, sizeof(ibuf) - ilen, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fatal("IMAP: recv: %s", strerror(errno));
	if (n == 0)
		fatal("IMAP: the server closed the connection");
	ilen += (size_t)n;
}

/*
 * The next complete response line from the buffer, without its CRLF, into
 * line; false if there is none yet.  A literal ({N} at the end of a line)
 * is skipped: the line goes on after it as a new line (not looked at).
 */
static bool imap_take_line(char *line, size_t size)
{
	char *nl;
	size_t len, take;

	while (iskip > 0 && ipos < ilen) {
		take = ilen - ipos < iskip ? ilen - ipos : (size_t)iskip;
		ipos += take;
		iskip -= take;
	}
	if (iskip > 0 || ipos == ilen)
		return false;
	nl = memchr(ibuf + ipos, '\n', ilen - ipos);
	if (!nl && !(ipos == 0 && ilen == sizeof(ibuf)))
		return false;
	len = nl ? (size_t)(nl - (ibuf + ipos)) : ilen - ipos;
	take = len < size - 1 ? len : size - 1;
	memcpy(line, ibuf + ipos, take);
	line[take] = '\0';
	ipos += len + (nl ? 1 : 0);
	if (take > 0 && line[take - 1] == '\r')
		line[--take] = '\0';
	if (take >= 3 && line[take - 1] == '}') {
		char *p = line + take - 2;

		if (*p == '+')
			p--;
		while (p > line && *p >= '0' && *p <= '9')
			p--;
		if (*p == '{')
			iskip = strtoull(p + 1, NULL, 10);
	}
	return true;
}

/* Waits until fd is readable; fatal after the deadline ("IMAP<who>: timeout
 * waiting for <what>"). */
static void wait_readable(int fd, double deadline, const char *who, const char *what)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, remaining_ms(deadline));

		if (r > 0)
			return;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fatal("poll: %s", strerror(errno));
		fatal("IMAP%s: timeout waiting for %s", who, what);
	}
}

/* Blocking read of one line; fatal after the deadline (what: for the message). */
static void imap_read_line(char *line, size_t size, double deadline, const char *what)
{
	while (!imap_take_line(line, size)) {
		wait_readable(imap_fd, deadline, "", what);
		imap_recv();
	}
}

static bool is_tagged(const char *line, const char *tag)
{
	size_t tl = strlen(tag);

	return strncmp(line, tag, tl) == 0 && line[tl] == ' ';
}

static bool tagged_ok(const char *line, const char *tag)
{
	return strncasecmp(line + strlen(tag) + 1, "OK", 2) == 0;
}

/* Reads up to the tagged response of tag; fatal unless OK.  Each untagged
 * line goes to fn (if any). */
static void imap_wait_ok(const char *tag, const char *what, void (*fn)(const char *line, void *ud),
			 void *ud)
{
	double deadline = now_ms() + opt.timeout * 1e3;
	char line[8192];

	for (;;) {
		imap_read_line(line, sizeof(line), deadline, what);
		if (is_tagged(line, tag)) {
			if (!tagged_ok(line, tag))
				fatal("IMAP: %s failed: %s", what, line);
			return;
		}
		if (fn)
			fn(line, ud);
	}
}

/* s as an IMAP quoted string into out. */
static void quote(char *out, size_t size, const char *s)
{
	size_t o = 0;

	out[o++] = '"';
	for (; *s && o + 3 < size; s++) {
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = *s;
	}
	out[o++] = '"';
	out[o] = '\0';
}

static void check_caps(const char *line, void *ud)
{
	(void)ud;
	if (strncasecmp(line, "* CAPABILITY ", 13) == 0) {
		char *c = strcasestr(line, " LITERAL+");

		literal_plus = c && (c[9] == '\0' || c[9] == ' ');
		c = strcasestr(line, " NOTIFY");
		cap_notify = c && (c[7] == '\0' || c[7] == ' ');
	}
}

static void imap_login(void)
{
	char pw[1024], qpw[2100], quser[600];
	double deadline = now_ms() + opt.timeout * 1e3;
	char line[8192];
	FILE *f;

	f = fopen(opt.password_file, "r");
	if (!f || !fgets(pw, sizeof(pw), f))
		fatal("cannot read the password file %s", opt.password_file);
	fclose(f);
	pw[strcspn(pw, "\r\n")] = '\0';
	quote(qpw, sizeof(qpw), pw);
	quote(quser, sizeof(quser), opt.user);
	explicit_bzero(pw, sizeof(pw));

	imap_connect(opt.imap);
	imap_read_line(line, sizeof(line), deadline, "the greeting");
	if (strncasecmp(line, "* OK", 4) != 0)
		fatal("IMAP: unexpected greeting: %s", line);
	imap_sendf("L LOGIN %s %s\r\n", quser, qpw);
	explicit_bzero(qpw, sizeof(qpw));
	imap_wait_ok("L", "LOGIN", NULL, NULL);
	imap_sendf("C CAPABILITY\r\n");
	imap_wait_ok("C", "CAPABILITY", check_caps, NULL);
}

static void imap_logout(void)
{
	imap_sendf("Z LOGOUT\r\n");
	imap_wait_ok("Z", "LOGOUT", NULL, NULL);
	close(imap_fd);
	imap_fd = -1;
}

/* ---- D-Bus ------------------------------------------------------------ */

static DBusConnection *bus;
static double dbus_read_at; /* when the bus was last read */

static void bus_connect(void)
{
	DBusError err;

	dbus_error_init(&err);
	bus = dbus_bus_get(DBUS_BUS_SESSION, &err);
	if (!bus)
		fatal("cannot connect to the session bus: %s", err.message);
	dbus_connection_set_exit_on_disconnect(bus, FALSE);
}

/* Fatal if m is an error reply (what: the call, for the message). */
static void check_reply(DBusMessage *m, const char *what)
{
	const char *text = "";

	if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_ERROR)
		return;
	dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID);
	fatal("%s: %s: %s", what, dbus_message_get_error_name(m), text);
}

static DBusMessage *call_block(DBusMessage *m, const char *what)
{
	DBusMessage *reply;
	DBusError err;

	dbus_error_init(&err);
	reply = dbus_connection_send_with_reply_and_block(bus, m, CALL_TIMEOUT_MS, &err);
	dbus_message_unref(m);
	if (!reply)
		fatal("%s: %s: %s", what, err.name, err.message);
	check_reply(reply, what);
	return reply;
}

static DBusMessage *new_call(const char *path, const char *iface, const char *method)
{
	DBusMessage *m = dbus_message_new_method_call(DEST, path, iface, method);

	if (!m)
		fatal("out of memory");
	return m;
}

/* In the a{sv} at it, finds key; *val: inside its variant. */
static bool dict_find(DBusMessageIter *it, const char *key, DBusMessageIter *val)
{
	DBusMessageIter arr, e;

	if (dbus_message_iter_get_arg_type(it) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(it) != DBUS_TYPE_DICT_ENTRY)
		return false;
	dbus_message_iter_recurse(it, &arr);
	for (; dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&arr)) {
		const char *k;

		dbus_message_iter_recurse(&arr, &e);
		if (dbus_message_iter_get_arg_type(&e) != DBUS_TYPE_STRING)
			continue;
		dbus_message_iter_get_basic(&e, &k);
		if (strcmp(k, key) != 0)
			continue;
		dbus_message_iter_next(&e);
		if (dbus_message_iter_get_arg_type(&e) != DBUS_TYPE_VARIANT)
			return false;
		dbus_message_iter_recurse(&e, val);
		return true;
	}
	return false;
}

static const char *dict_str(DBusMessageIter *it, const char *key)
{
	DBusMessageIter v;
	const char *s;
	int t;

	if (!dict_find(it, key, &v))
		return NULL;
	t = dbus_message_iter_get_arg_type(&v);
	if (t != DBUS_TYPE_STRING && t != DBUS_TYPE_OBJECT_PATH)
		return NULL;
	dbus_message_iter_get_basic(&v, &s);
	return s;
}

static bool dict_uint(DBusMessageIter *it, const char *key, uint64_t *ret)
{
	DBusBasicValue b;
	DBusMessageIter v;

	if (!dict_find(it, key, &v))
		return false;
	switch (dbus_message_iter_get_arg_type(&v)) {
	case DBUS_TYPE_UINT32:
		dbus_message_iter_get_basic(&v, &b);
		*ret = b.u32;
		return true;
	case DBUS_TYPE_UINT64:
		dbus_message_iter_get_basic(&v, &b);
		*ret = b.u64;
		return true;
	default:
		return false;
	}
}

/* Does the "as" Flags of the summary at it hold flag? */
static bool dict_has_flag(DBusMessageIter *it, const char *flag)
{
	DBusMessageIter v, a;

	if (!dict_find(it, "Flags", &v) || dbus_message_iter_get_arg_type(&v) != DBUS_TYPE_ARRAY)
		return false;
	dbus_message_iter_recurse(&v, &a);
	for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING; dbus_message_iter_next(&a)) {
		const char *s;

		dbus_message_iter_get_basic(&a, &s);
		if (strcasecmp(s, flag) == 0)
			return true;
	}
	return false;
}

/* What GetManagedObjects says about the account and the folder. */
struct objects {
	char *account_path;
	const char *state;
	uint64_t last_sync;
	char *folder_path;
	uint64_t folder_messages;
	DBusMessage *reply; /* holds the strings */
};

static void objects_free(struct objects *o)
{
	free(o->account_path);
	free(o->folder_path);
	if (o->reply)
		dbus_message_unref(o->reply);
	memset(o, 0, sizeof(*o));
}

/*
 * Reads the objects of /org/cpmsync; folder NULL: only the account.  With
 * pass 0 the account is looked for, with pass 1 its folder (the order of
 * the objects in the reply is not fixed).
 */
static void find_objects(struct objects *o, const char *folder)
{
	DBusMessageIter top;

	memset(o, 0, sizeof(*o));
	o->reply =
		call_block(new_call(ROOT_PATH, OM_IFACE, "GetManagedObjects"), "GetManagedObjects");
	if (strcmp(dbus_message_get_signature(o->reply), "a{oa{sa{sv}}}") != 0)
		fatal("GetManagedObjects: unexpected reply signature %s",
		      dbus_message_get_signature(o->reply));
	for (int pass = 0; pass < (folder ? 2 : 1); pass++) {
		DBusMessageIter objs, ent, ifaces, ie;

		dbus_message_iter_init(o->reply, &top);
		dbus_message_iter_recurse(&top, &objs);
		for (; dbus_message_iter_get_arg_type(&objs) == DBUS_TYPE_DICT_ENTRY;
		     dbus_message_iter_next(&objs)) {
			const char *path;

			dbus_message_iter_recurse(&objs, &ent);
			dbus_message_iter_get_basic(&ent, &path);
			dbus_message_iter_next(&ent);
			dbus_message_iter_recurse(&ent, &ifaces);
			for (; dbus_message_iter_get_arg_type(&ifaces) == DBUS_TYPE_DICT_ENTRY;
			     dbus_message_iter_next(&ifaces)) {
				const char *iface, *name, *acct;

				dbus_message_iter_recurse(&ifaces, &ie);
				dbus_message_iter_get_basic(&ie, &iface);
				dbus_message_iter_next(&ie);
				name = dict_str(&ie, "Name");
				if (!name)
					continue;
				if (pass == 0 && strcmp(iface, ACCOUNT_IFACE) == 0 &&
				    strcmp(name, opt.account) == 0) {
					o->account_path = strdup(path);
					o->state = dict_str(&ie, "State");
					dict_uint(&ie, "LastSync", &o->last_sync);
				}
				if (pass == 1 && o->account_path &&
				    strcmp(iface, FOLDER_IFACE) == 0 && strcmp(name, folder) == 0 &&
				    (acct = dict_str(&ie, "Account")) &&
				    strcmp(acct, o->account_path) == 0) {
					o->folder_path = strdup(path);
					dict_uint(&ie, "Messages", &o->folder_messages);
				}
			}
		}
	}
}

/* The folder's object path (fatal if the account or folder is unknown). */
static char *folder_path(void)
{
	struct objects o;
	char *p;

	if (!dbus_bus_name_has_owner(bus, DEST, NULL))
		fatal("%s has no owner on the bus: is cpm-syncd running?", DEST);
	find_objects(&o, opt.folder);
	if (!o.account_path)
		fatal("no account '%s' on the bus", opt.account);
	if (!o.folder_path)
		fatal("account '%s' has no folder '%s' on the bus", opt.account, opt.folder);
	p = o.folder_path;
	o.folder_path = NULL;
	objects_free(&o);
	return p;
}

/* ---- waiting on both sockets ------------------------------------------ */

/*
 * One event: handlers are given each IMAP line and each D-Bus message
 * (with the time its bytes were read) until both sides are done.
 */
struct event {
	bool imap_done, dbus_done;
	double t1;
	void (*line)(struct event *ev, const char *line, double t);
	void (*msg)(struct event *ev, DBusMessage *m, double t);
	/* added */
	const char *tag;
	const char *token;
	bool bare_done; /* the bare IDLE client saw the new EXISTS (at tb) */
	double tb;
	bool notify_done; /* imdn --bare-notify: the NOTIFY client's STATUS (at tn) */
	double tn;
	/* flags, sync */
	dbus_uint32_t serial;
	/* sync */
	const char *path;
	uint64_t generation;
	bool replied;
	uint32_t uid;
	unsigned long seq;
	bool want;
};

/*
 * A connection read beside the main one (the bare IDLE client, the bare
 * NOTIFY client): set up on the main connection with the functions above,
 * then moved here by side_take().
 */
struct side {
	int fd;
	char buf[8192];
	size_t len;
	const char *who; /* in messages: "bare client", "NOTIFY client" */
};

/* The main connection becomes c (what was read past the last response
 * included); after is what that response was, for the message when more
 * came than c can hold. */
static void side_take(struct side *c, const char *who, const char *after)
{
	c->who = who;
	if (iskip || ilen - ipos >= sizeof(c->buf))
		fatal("IMAP: unexpected data after %s (%s)", after, who);
	memcpy(c->buf, ibuf + ipos, ilen - ipos);
	c->len = ilen - ipos;
	c->fd = imap_fd;
	imap_fd = -1;
	ipos = ilen = 0;
}

/* Reads what c's socket has and hands each whole line (CR LF stripped) to
 * fn(ev, line, t); a line longer than the buffer is dropped. */
static void side_recv(struct side *c, void (*fn)(struct event *ev, const char *line, double t),
		      struct event *ev, double t)
{
	ssize_t n;
	char *nl;

	do
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fatal("IMAP (%s): recv: %s", c->who, strerror(errno));
	if (n == 0)
		fatal("IMAP (%s): the server closed the connection", c->who);
	c->len += (size_t)n;
	while ((nl = memchr(c->buf, '\n', c->len))) {
		*nl = '\0';
		if (nl > c->buf && nl[-1] == '\r')
			nl[-1] = '\0';
		fn(ev, c->buf, t);
		c->len -= (size_t)(nl + 1 - c->buf);
		memmove(c->buf, nl + 1, c->len);
	}
	if (c->len == sizeof(c->buf) - 1)
		c->len = 0; /* an overlong line: not one we look at */
}

/*
 * The bare IDLE client of added --bare: its own connection, logged in and
 * in IDLE on the folder before the events start.  Only untagged lines come
 * while it idles.
 */
static struct {
	struct side c;
	unsigned long exists;
} bare = { .c.fd = -1 };

/* A line of the bare client: the first EXISTS above the count known so far
 * is the event's wake-up (tb = t). */
static void bare_line(struct event *ev, const char *line, double t)
{
	unsigned long num;
	char word[16];

	if (sscanf(line, "* %lu %15s", &num, word) == 2 && strcasecmp(word, "EXISTS") == 0 &&
	    num > bare.exists) {
		bare.exists = num;
		if (!ev->bare_done) {
			ev->bare_done = true;
			ev->tb = t;
		}
	}
}

/*
 * The bare NOTIFY client of imdn --bare-notify: its own connection, logged
 * in, no folder selected, NOTIFY set with the daemon's events.  Only untagged
 * lines come (STATUS for the folders that change).  The folder's UIDNEXT
 * and MESSAGES as last seen; a STATUS with either higher is a wake-up.
 */
static struct {
	struct side c;
	char *name; /* the folder, as the server names it (unquoted) */
	unsigned long uidnext, messages;
	const char *tag; /* of the command in flight (nfy_cmd()), or NULL */
} nfy = { .c.fd = -1 };

/* "* STATUS <mailbox> (...)" for nfy.name: its UIDNEXT and MESSAGES (0 if
 * not given); false for any other line. */
static bool nfy_parse(const char *line, unsigned long *uidnext, unsigned long *messages)
{
	char name[1024];
	const char *p, *q;
	size_t n = 0;

	if (strncasecmp(line, "* STATUS ", 9) != 0)
		return false;
	p = line + 9;
	if (*p == '"') {
		for (p++; *p && *p != '"' && n + 1 < sizeof(name); p++) {
			if (*p == '\\' && p[1])
				p++;
			name[n++] = *p;
		}
		if (*p != '"')
			return false;
		p++;
	} else {
		while (*p && *p != ' ' && n + 1 < sizeof(name))
			name[n++] = *p++;
	}
	name[n] = '\0';
	if (strcmp(name, nfy.name) != 0 || !(p = strchr(p, '(')))
		return false;
	*uidnext = (q = strcasestr(p, "UIDNEXT ")) ? strtoul(q + 8, NULL, 10) : 0;
	*messages = (q = strcasestr(p, "MESSAGES ")) ? strtoul(q + 9, NULL, 10) : 0;
	return true;
}

/* Takes a STATUS line of the NOTIFY client: true if it shows news. */
static bool nfy_line(const char *line)
{
	unsigned long uidnext, messages;
	bool news;

	if (!nfy_parse(line, &uidnext, &messages))
		return false;
	news = uidnext > nfy.uidnext || messages > nfy.messages;
	if (uidnext > nfy.uidnext)
		nfy.uidnext = uidnext;
	if (messages > nfy.messages)
		nfy.messages = messages;
	return news;
}

/* A line of the NOTIFY client: the first STATUS with news is the event's
 * wake-up (tn = t; ev NULL: between events).  The tagged response of
 * nfy.tag ends that command (fatal unless OK). */
static void nfy_recv_line(struct event *ev, const char *line, double t)
{
	if (nfy.tag && is_tagged(line, nfy.tag)) {
		if (!tagged_ok(line, nfy.tag))
			fatal("IMAP (NOTIFY client): %s", line);
		nfy.tag = NULL;
	} else if (nfy_line(line) && ev && !ev->notify_done) {
		ev->notify_done = true;
		ev->tn = t;
	}
}

/* The flags observer without IDLE: one NOOP at a time, every opt.poll_ms. */
static bool noop_polling, noop_busy;
static double next_noop;

static void pump(struct event *ev, double deadline, const char *what)
{
	static char line[8192];
	int bus_fd;

	if (!dbus_connection_get_unix_fd(bus, &bus_fd))
		fatal("no file descriptor for the bus connection");
	for (;;) {
		struct pollfd p[4] = {
			{ .fd = imap_fd, .events = POLLIN },
			{ .fd = bus_fd, .events = POLLIN },
			{ .fd = bare.c.fd, .events = POLLIN },
			{ .fd = nfy.c.fd, .events = POLLIN },
		};
		DBusMessage *m;
		double t;
		int r, wait;

		while ((m = dbus_connection_pop_message(bus))) {
			ev->msg(ev, m, dbus_read_at > 0 ? dbus_read_at : now_ms());
			dbus_message_unref(m);
		}
		if (!dbus_connection_get_is_connected(bus))
			fatal("the bus connection was closed");
		while (imap_take_line(line, sizeof(line)))
			ev->line(ev, line, now_ms());
		if (ev->imap_done && ev->dbus_done && (bare.c.fd < 0 || ev->bare_done) &&
		    (nfy.c.fd < 0 || ev->notify_done))
			return;
		wait = remaining_ms(deadline);
		if (noop_polling && !noop_busy) {
			t = now_ms();
			if (t >= next_noop) {
				imap_sendf("N NOOP\r\n");
				noop_busy = true;
				next_noop = t + (double)opt.poll_ms;
			} else if (next_noop - t < wait) {
				wait = (int)(next_noop - t) + 1;
			}
		}
		/* A negative fd (no bare client) is skipped by poll(). */
		r = poll(p, 4, wait);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fatal("poll: %s", strerror(errno));
		t = now_ms();
		if (r == 0 && t >= deadline)
			fatal("timeout (%.1f s) waiting for %s", opt.timeout, what);
		if (p[1].revents) {
			dbus_connection_read_write(bus, 0);
			dbus_read_at = t;
		}
		if (p[0].revents)
			imap_recv();
		if (bare.c.fd >= 0 && p[2].revents)
			side_recv(&bare.c, bare_line, ev, t);
		if (nfy.c.fd >= 0 && p[3].revents)
			side_recv(&nfy.c, nfy_recv_line, ev, t);
	}
}

/* ---- added ------------------------------------------------------------ */

static void added_line(struct event *ev, const char *line, double t)
{
	(void)t;
	if (!is_tagged(line, ev->tag))
		return;
	if (!tagged_ok(line, ev->tag))
		fatal("IMAP: APPEND failed: %s", line);
	ev->imap_done = true;
}

static void added_msg(struct event *ev, DBusMessage *m, double t)
{
	DBusMessageIter it, arr;

	if (ev->dbus_done || !dbus_message_is_signal(m, FOLDER_IFACE, "MessagesAdded") ||
	    !dbus_message_iter_init(m, &it) ||
	    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY)
		return;
	dbus_message_iter_recurse(&it, &arr);
	for (; dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_ARRAY;
	     dbus_message_iter_next(&arr)) {
		const char *mid = dict_str(&arr, "MessageId");

		if (mid && strstr(mid, ev->token)) {
			ev->dbus_done = true;
			ev->t1 = t;
			return;
		}
	}
}

/* A line to a socket other than the main connection's (whole or fatal). */
static void imap_send_fd(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len > 0) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fatal("IMAP: send: %s", n < 0 ? strerror(errno) : "connection closed");
		s += n;
		len -= (size_t)n;
	}
}

static void bare_select(const char *line, void *ud)
{
	unsigned long num;
	char word[16];

	(void)ud;
	if (sscanf(line, "* %lu %15s", &num, word) == 2 && strcasecmp(word, "EXISTS") == 0)
		bare.exists = num;
}

/* The bare IDLE client: logged in, the folder selected, in IDLE; then the
 * main connection's state is free for the APPENDing client. */
static void bare_start(const char *qfolder)
{
	char line[8192];

	imap_login();
	imap_sendf("S SELECT %s\r\n", qfolder);
	imap_wait_ok("S", "SELECT (bare client)", bare_select, NULL);
	imap_sendf("I IDLE\r\n");
	for (;;) {
		imap_read_line(line, sizeof(line), now_ms() + opt.timeout * 1e3,
			       "IDLE's continuation (bare client)");
		if (line[0] == '+')
			break;
		if (is_tagged(line, "I"))
			fatal("IMAP: IDLE refused (bare client): %s", line);
	}
	/* What came right after the continuation is read with the rest. */
	side_take(&bare.c, "bare client", "IDLE's continuation");
}

static void run_added(void)
{
	char *fpath = folder_path();
	char rule[1024], qfolder[1024], token[128], date[64], msg[1024], tag[32];
	double *lat = calloc(opt.count, sizeof(double));
	double *blat = calloc(opt.count, sizeof(double));
	double *share = calloc(opt.count, sizeof(double));
	DBusError err;

	if (!lat || !blat || !share)
		fatal("out of memory");
	snprintf(rule, sizeof(rule),
		 "type='signal',sender='%s',interface='%s',"
		 "member='MessagesAdded',path='%s'",
		 DEST, FOLDER_IFACE, fpath);
	dbus_error_init(&err);
	dbus_bus_add_match(bus, rule, &err);
	if (dbus_error_is_set(&err))
		fatal("AddMatch: %s: %s", err.name, err.message);
	quote(qfolder, sizeof(qfolder), opt.folder);
	if (opt.bare)
		bare_start(qfolder);
	imap_login();

	for (unsigned long i = 0; i < opt.count; i++) {
		struct event ev = {
			.line = added_line, .msg = added_msg, .tag = tag, .token = token
		};
		time_t now = time(NULL);
		struct tm tm;
		double t0;
		int len;

		snprintf(tag, sizeof(tag), "A%lu", i);
		snprintf(token, sizeof(token), "push-latency.%ld.%lu.%lld", (long)getpid(), i,
			 (long long)now);
		gmtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
		len = snprintf(msg, sizeof(msg),
			       "From: Push Bench <bench@push.test>\r\n"
			       "To: %s <%s@push.test>\r\n"
			       "Subject: push latency %lu\r\n"
			       "Date: %s\r\n"
			       "Message-ID: <%s@push.test>\r\n"
			       "MIME-Version: 1.0\r\n"
			       "Content-Type: text/plain; charset=us-ascii\r\n"
			       "\r\n"
			       "Event %lu of the push latency benchmark.\r\n",
			       opt.user, opt.user, i, date, token, i);

		t0 = now_ms();
		if (literal_plus) {
			imap_sendf("%s APPEND %s {%d+}\r\n%s\r\n", tag, qfolder, len, msg);
		} else {
			char line[8192];

			imap_sendf("%s APPEND %s {%d}\r\n", tag, qfolder, len);
			for (;;) {
				imap_read_line(line, sizeof(line), t0 + opt.timeout * 1e3,
					       "the APPEND continuation");
				if (line[0] == '+')
					break;
				if (is_tagged(line, tag))
					fatal("IMAP: APPEND refused: %s", line);
			}
			imap_sendf("%s\r\n", msg);
		}
		pump(&ev, t0 + opt.timeout * 1e3, "MessagesAdded after an APPEND");
		lat[i] = ev.t1 - t0;
		if (opt.bare) {
			blat[i] = ev.tb - t0;
			share[i] = ev.t1 - ev.tb;
		}
		if (opt.verbose && opt.bare)
			printf("added %lu: %.2f ms (bare IDLE client %.2f ms, share %.2f ms)\n",
			       i + 1, lat[i], blat[i], share[i]);
		else if (opt.verbose)
			printf("added %lu: %.2f ms\n", i + 1, lat[i]);
		usleep(PAUSE_US);
	}
	dbus_bus_remove_match(bus, rule, NULL);
	imap_logout();
	if (opt.bare) {
		imap_send_fd(bare.c.fd, "DONE\r\n");
		close(bare.c.fd);
		bare.c.fd = -1;
		report("bare-idle", blat, opt.count);
		report("share", share, opt.count);
	}
	report("added", lat, opt.count);
	free(lat);
	free(blat);
	free(share);
	free(fpath);
}

/* ---- flags ------------------------------------------------------------ */

/*
 * An untagged "* SEQ FETCH (...)": its sequence number, UID (0 if not
 * given) and whether FLAGS holds \Flagged (*has_flags: FLAGS given).
 */
static bool parse_fetch(const char *line, unsigned long *seq, uint32_t *uid, bool *has_flags,
			bool *flagged)
{
	const char *p, *f;
	char *end;

	if (strncmp(line, "* ", 2) != 0 || line[2] < '0' || line[2] > '9')
		return false;
	*seq = strtoul(line + 2, &end, 10);
	if (strncasecmp(end, " FETCH (", 8) != 0)
		return false;
	p = end + 7;
	*uid = 0;
	*has_flags = *flagged = false;
	for (const char *s = p; (s = strcasestr(s, "UID ")); s += 4)
		if (s[-1] == '(' || s[-1] == ' ') {
			*uid = (uint32_t)strtoul(s + 4, NULL, 10);
			break;
		}
	f = strcasestr(p, "FLAGS (");
	if (f && (f[-1] == '(' || f[-1] == ' ')) {
		const char *close = strchr(f + 7, ')');
		const char *fl = strcasestr(f + 7, "\\Flagged");

		*has_flags = true;
		*flagged = fl && (!close || fl < close);
	}
	return true;
}

static void flags_line(struct event *ev, const char *line, double t)
{
	unsigned long seq, n;
	uint32_t uid;
	bool has_flags, flagged;
	char *end;

	if (is_tagged(line, "I"))
		fatal("IMAP: IDLE ended: %s", line);
	if (is_tagged(line, "N")) {
		if (!tagged_ok(line, "N"))
			fatal("IMAP: NOOP failed: %s", line);
		noop_busy = false;
		return;
	}
	/* Keep the sequence number right if others expunge. */
	if (strncmp(line, "* ", 2) == 0 && (n = strtoul(line + 2, &end, 10)) > 0 &&
	    strcasecmp(end, " EXPUNGE") == 0) {
		if (n < ev->seq)
			ev->seq--;
		else if (n == ev->seq)
			fatal("IMAP: the benchmark's message was expunged");
		return;
	}
	if (ev->imap_done || !parse_fetch(line, &seq, &uid, &has_flags, &flagged) || !has_flags)
		return;
	if (uid ? uid != ev->uid : seq != ev->seq)
		return;
	if (flagged == ev->want) {
		ev->imap_done = true;
		ev->t1 = t;
	}
}

static void flags_msg(struct event *ev, DBusMessage *m, double t)
{
	(void)t;
	if (dbus_message_get_reply_serial(m) != ev->serial)
		return;
	check_reply(m, "SetFlags");
	ev->dbus_done = true;
}

struct fetch_result {
	uint32_t uid;
	unsigned long seq;
	bool found, flagged;
};

static void select_fetch(const char *line, void *ud)
{
	struct fetch_result *fr = ud;
	unsigned long seq;
	uint32_t uid;
	bool has_flags, flagged;

	if (parse_fetch(line, &seq, &uid, &has_flags, &flagged) && uid == fr->uid && has_flags) {
		fr->found = true;
		fr->seq = seq;
		fr->flagged = flagged;
	}
}

static void append_strings(DBusMessageIter *it, const char *s)
{
	DBusMessageIter a;

	dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "s", &a);
	if (s)
		dbus_message_iter_append_basic(&a, DBUS_TYPE_STRING, &s);
	dbus_message_iter_close_container(it, &a);
}

static void run_flags(void)
{
	char *fpath = folder_path();
	double *lat = calloc(opt.count, sizeof(double));
	struct fetch_result fr = { 0 };
	char qfolder[1024], line[8192];
	uint64_t id = 0, uid64 = 0;
	bool flagged, local_flagged = false;
	DBusMessageIter top, arr;
	DBusMessage *m, *reply;
	dbus_uint64_t after = 0;
	dbus_uint32_t limit = 100;
	unsigned long seq;

	if (!lat)
		fatal("out of memory");
	/* A message the server has: the first with a UID. */
	m = new_call(fpath, FOLDER_IFACE, "ListMessages");
	dbus_message_append_args(m, DBUS_TYPE_UINT64, &after, DBUS_TYPE_UINT32, &limit,
				 DBUS_TYPE_INVALID);
	reply = call_block(m, "ListMessages");
	if (dbus_message_iter_init(reply, &top) &&
	    dbus_message_iter_get_arg_type(&top) == DBUS_TYPE_ARRAY) {
		dbus_message_iter_recurse(&top, &arr);
		for (; dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_ARRAY;
		     dbus_message_iter_next(&arr)) {
			if (dict_uint(&arr, "Uid", &uid64) && uid64 != 0 &&
			    dict_uint(&arr, "Id", &id)) {
				local_flagged = dict_has_flag(&arr, "\\Flagged");
				break;
			}
			uid64 = 0;
		}
	}
	dbus_message_unref(reply);
	if (!uid64)
		fatal("no message with a UID among the first 100 of %s: put one there first "
		      "(e.g. run the added mode)",
		      opt.folder);
	fr.uid = (uint32_t)uid64;

	/* The other client: its sequence number and flags, then IDLE. */
	imap_login();
	quote(qfolder, sizeof(qfolder), opt.folder);
	imap_sendf("S SELECT %s\r\n", qfolder);
	imap_wait_ok("S", "SELECT", NULL, NULL);
	imap_sendf("F UID FETCH %" PRIu32 " (UID FLAGS)\r\n", fr.uid);
	imap_wait_ok("F", "UID FETCH", select_fetch, &fr);
	if (!fr.found)
		fatal("IMAP: the server has no UID %" PRIu32 " in %s", fr.uid, opt.folder);
	if (fr.flagged != local_flagged)
		fprintf(stderr, PROG ": warning: \\Flagged is %s on the server, %s locally\n",
			fr.flagged ? "set" : "unset", local_flagged ? "set" : "unset");
	flagged = fr.flagged;
	seq = fr.seq;
	if (opt.observe_idle) {
		imap_sendf("I IDLE\r\n");
		for (;;) {
			imap_read_line(line, sizeof(line), now_ms() + opt.timeout * 1e3,
				       "IDLE's continuation");
			if (line[0] == '+')
				break;
			if (is_tagged(line, "I"))
				fatal("IMAP: IDLE refused: %s", line);
		}
	} else {
		noop_polling = true;
	}

	for (unsigned long i = 0; i < opt.count; i++) {
		struct event ev = { .line = flags_line,
				    .msg = flags_msg,
				    .uid = fr.uid,
				    .seq = seq,
				    .want = !flagged };
		const char *flag = "\\Flagged";
		dbus_uint64_t mid = id;
		DBusMessageIter it, a;
		double t0;

		m = new_call(fpath, FOLDER_IFACE, "SetFlags");
		dbus_message_iter_init_append(m, &it);
		dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "t", &a);
		dbus_message_iter_append_basic(&a, DBUS_TYPE_UINT64, &mid);
		dbus_message_iter_close_container(&it, &a);
		append_strings(&it, ev.want ? flag : NULL);
		append_strings(&it, ev.want ? NULL : flag);

		t0 = now_ms();
		if (!dbus_connection_send(bus, m, &ev.serial))
			fatal("out of memory");
		dbus_connection_flush(bus);
		dbus_message_unref(m);
		pump(&ev, t0 + opt.timeout * 1e3,
		     ev.want ? "the server's FETCH with \\Flagged set"
			     : "the server's FETCH with \\Flagged cleared");
		lat[i] = ev.t1 - t0;
		if (opt.verbose)
			printf("flags %lu (%s): %.2f ms\n", i + 1, ev.want ? "+" : "-", lat[i]);
		flagged = ev.want;
		seq = ev.seq;
		usleep(PAUSE_US);
	}
	if (opt.observe_idle) {
		imap_sendf("DONE\r\n");
		imap_wait_ok("I", "IDLE", NULL, NULL);
	} else if (noop_busy) {
		imap_wait_ok("N", "NOOP", NULL, NULL);
	}
	noop_polling = noop_busy = false;
	imap_logout();
	report(opt.observe_idle ? "flags (idle)" : "flags", lat, opt.count);
	free(lat);
	free(fpath);
}

/* ---- list ------------------------------------------------------------- */

/* ---- sync ------------------------------------------------------------- */

static void sync_msg(struct event *ev, DBusMessage *m, double t)
{
	DBusMessageIter it;
	const char *iface;
	uint64_t g;

	if (dbus_message_get_reply_serial(m) == ev->serial) {
		check_reply(m, "Sync");
		ev->replied = true;
	} else if (dbus_message_is_signal(m, "org.freedesktop.DBus.Properties",
					  "PropertiesChanged") &&
		   strcmp(dbus_message_get_path(m) ? dbus_message_get_path(m) : "", ev->path) ==
			   0 &&
		   dbus_message_iter_init(m, &it) &&
		   dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_STRING) {
		dbus_message_iter_get_basic(&it, &iface);
		dbus_message_iter_next(&it);
		if (strcmp(iface, ACCOUNT_IFACE) == 0 && dict_uint(&it, "SyncGeneration", &g) &&
		    g > ev->generation && ev->t1 == 0)
			ev->t1 = t;
	}
	ev->dbus_done = ev->replied && ev->t1 > 0;
}

/* A property of the account, by Properties.Get: its variant's content. */
static DBusMessage *get_property(const char *path, const char *name, DBusMessageIter *val)
{
	DBusMessage *m = new_call(path, "org.freedesktop.DBus.Properties", "Get"), *reply;
	const char *iface = ACCOUNT_IFACE;
	DBusMessageIter it;

	dbus_message_append_args(m, DBUS_TYPE_STRING, &iface, DBUS_TYPE_STRING, &name,
				 DBUS_TYPE_INVALID);
	reply = call_block(m, name);
	if (!dbus_message_iter_init(reply, &it) ||
	    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_VARIANT)
		fatal("Get %s: no variant in the reply", name);
	dbus_message_iter_recurse(&it, val);
	return reply;
}

static void run_sync(void)
{
	double *lat = calloc(opt.count, sizeof(double));
	struct objects o;
	char rule[1024];
	DBusMessageIter val;
	DBusMessage *reply;
	const char *push;
	DBusError err;

	if (!lat)
		fatal("out of memory");
	if (!dbus_bus_name_has_owner(bus, DEST, NULL))
		fatal("%s has no owner on the bus: is cpm-syncd running?", DEST);
	find_objects(&o, NULL);
	if (!o.account_path)
		fatal("no account '%s' on the bus", opt.account);
	snprintf(rule, sizeof(rule),
		 "type='signal',interface='org.freedesktop.DBus.Properties',"
		 "member='PropertiesChanged',path='%s'",
		 o.account_path);
	dbus_error_init(&err);
	dbus_bus_add_match(bus, rule, &err);
	if (dbus_error_is_set(&err))
		fatal("AddMatch: %s", err.message);
	reply = get_property(o.account_path, "PushState", &val);
	if (dbus_message_iter_get_arg_type(&val) != DBUS_TYPE_STRING)
		fatal("PushState is not a string");
	dbus_message_iter_get_basic(&val, &push);
	printf("push: %s\n", push);
	dbus_message_unref(reply);
	for (unsigned long i = 0; i < opt.count; i++) {
		struct event ev = { .imap_done = true, .msg = sync_msg, .path = o.account_path };
		DBusMessage *m;
		double t0;

		reply = get_property(o.account_path, "SyncGeneration", &val);
		if (dbus_message_iter_get_arg_type(&val) != DBUS_TYPE_UINT64)
			fatal("SyncGeneration is not a uint64");
		dbus_message_iter_get_basic(&val, &ev.generation);
		dbus_message_unref(reply);
		m = new_call(o.account_path, ACCOUNT_IFACE, "Sync");
		t0 = now_ms();
		if (!dbus_connection_send(bus, m, &ev.serial))
			fatal("out of memory");
		dbus_message_unref(m);
		dbus_connection_flush(bus);
		pump(&ev, t0 + opt.timeout * 1e3, "SyncGeneration to move");
		lat[i] = ev.t1 - t0;
		if (opt.verbose)
			printf("sync %lu: %.2f ms\n", i + 1, lat[i]);
		usleep(100000);
	}
	report("sync", lat, opt.count);
	objects_free(&o);
	free(lat);
}

static void run_list(void)
{
	char *fpath = folder_path();
	double *t = calloc(opt.repeat, sizeof(double));
	dbus_uint32_t limit = (dbus_uint32_t)opt.count;
	dbus_uint64_t after = 0;
	unsigned long got = 0;
	int bytes = 0;

	if (!t)
		fatal("out of memory");
	for (unsigned long r = 0; r < opt.repeat; r++) {
		DBusMessage *m = new_call(fpath, FOLDER_IFACE, "ListMessages"), *reply;
		DBusMessageIter top, arr;
		double t0;

		dbus_message_append_args(m, DBUS_TYPE_UINT64, &after, DBUS_TYPE_UINT32, &limit,
					 DBUS_TYPE_INVALID);
		t0 = now_ms();
		reply = call_block(m, "ListMessages");
		t[r] = now_ms() - t0;
		got = 0;
		if (dbus_message_iter_init(reply, &top) &&
		    dbus_message_iter_get_arg_type(&top) == DBUS_TYPE_ARRAY) {
			dbus_message_iter_recurse(&top, &arr);
			for (; dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_ARRAY;
			     dbus_message_iter_next(&arr))
				got++;
		}
		if (r == 0) {
			char *buf;

			if (dbus_message_marshal(reply, &buf, &bytes))
				dbus_free(buf);
		}
		dbus_message_unref(reply);
		if (opt.verbose)
			printf("list %lu: %lu summaries in %.2f ms\n", r + 1, got, t[r]);
	}
	if (got < opt.count)
		fprintf(stderr, PROG ": warning: ListMessages gave %lu summaries, not %lu\n", got,
			opt.count);
	qsort(t, opt.repeat, sizeof(*t), cmp_double);
	printf("list: %lu summaries: median=%.1f ms min=%.1f ms max=%.1f ms (%lu runs), reply "
	       "bytes=%d\n",
	       got, median(t, opt.repeat), t[0], t[opt.repeat - 1], opt.repeat, bytes);
	free(t);
	free(fpath);
}

/* ---- convs ------------------------------------------------------------ */

/* Times R calls of m's method (m is copied for each); returns the last
 * reply.  t: R durations, sorted. */
static DBusMessage *time_calls(DBusMessage *m, const char *what, double *t, int *bytes)
{
	DBusMessage *reply = NULL;

	for (unsigned long r = 0; r < opt.repeat; r++) {
		DBusMessage *c = dbus_message_copy(m);
		double t0;

		if (!c)
			fatal("out of memory");
		if (reply)
			dbus_message_unref(reply);
		t0 = now_ms();
		reply = call_block(c, what);
		t[r] = now_ms() - t0;
		if (opt.verbose)
			printf("%s %lu: %.2f ms\n", what, r + 1, t[r]);
	}
	dbus_message_unref(m);
	if (bytes) {
		char *buf;

		*bytes = 0;
		if (dbus_message_marshal(reply, &buf, bytes))
			dbus_free(buf);
	}
	qsort(t, opt.repeat, sizeof(*t), cmp_double);
	return reply;
}

static void timing_line(const char *what, unsigned long items, const double *t, int bytes)
{
	printf("%s: %lu items: median=%.2f ms p95=%.2f ms min=%.2f ms max=%.2f ms (%lu runs), "
	       "reply bytes=%d\n",
	       what, items, median(t, opt.repeat), percentile(t, opt.repeat, 95), t[0],
	       t[opt.repeat - 1], opt.repeat, bytes);
}

static unsigned long count_items(DBusMessage *reply)
{
	DBusMessageIter top, arr;
	unsigned long n = 0;

	if (dbus_message_iter_init(reply, &top) &&
	    dbus_message_iter_get_arg_type(&top) == DBUS_TYPE_ARRAY) {
		dbus_message_iter_recurse(&top, &arr);
		for (; dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_ARRAY;
		     dbus_message_iter_next(&arr))
			n++;
	}
	return n;
}

/* convs --paged: ListConversationsPage (ours), the first page, then the
 * whole list of all conversations page by page. */
static void run_pages(const char *apath, unsigned long all, double *t)
{
	dbus_uint32_t off = 0, limit = (dbus_uint32_t)opt.count;
	unsigned long n, got = 0, calls = 0;
	DBusMessage *m, *reply;
	char what[256];
	int bytes;

	m = new_call(apath, ACCOUNT_IFACE, "ListConversationsPage");
	dbus_message_append_args(m, DBUS_TYPE_UINT32, &off, DBUS_TYPE_UINT32, &limit,
				 DBUS_TYPE_INVALID);
	reply = time_calls(m, "ListConversationsPage", t, &bytes);
	n = count_items(reply);
	dbus_message_unref(reply);
	snprintf(what, sizeof(what), "ListConversationsPage(0, %lu)", opt.count);
	timing_line(what, n, t, bytes);
	if (n != (all < opt.count ? all : opt.count))
		fatal("ListConversationsPage(0, %lu) gave %lu conversations of %lu", opt.count, n,
		      all);
	for (unsigned long r = 0; r < opt.repeat; r++) {
		double t0 = now_ms();

		got = calls = 0;
		for (off = 0;; off += limit) {
			m = new_call(apath, ACCOUNT_IFACE, "ListConversationsPage");
			dbus_message_append_args(m, DBUS_TYPE_UINT32, &off, DBUS_TYPE_UINT32,
						 &limit, DBUS_TYPE_INVALID);
			reply = call_block(m, "ListConversationsPage");
			n = count_items(reply);
			dbus_message_unref(reply);
			got += n;
			calls++;
			if (n < limit)
				break;
		}
		t[r] = now_ms() - t0;
		if (got != all)
			fatal("ListConversationsPage page by page gave %lu conversations, "
			      "ListConversations %lu",
			      got, all);
	}
	qsort(t, opt.repeat, sizeof(*t), cmp_double);
	printf("ListConversationsPage walk (%lu a page): %lu items in %lu calls: "
	       "median=%.2f ms p95=%.2f ms min=%.2f ms max=%.2f ms (%lu runs)\n",
	       opt.count, got, calls, median(t, opt.repeat), percentile(t, opt.repeat, 95), t[0],
	       t[opt.repeat - 1], opt.repeat);
}

/* convs --save-reply: the whole reply m, marshalled, into path. */
static void save_reply(DBusMessage *m, const char *path)
{
	FILE *f = fopen(path, "wb");
	char *buf;
	int len;

	if (!f)
		fatal("%s: %s", path, strerror(errno));
	if (!dbus_message_marshal(m, &buf, &len))
		fatal("out of memory");
	if (fwrite(buf, 1, (size_t)len, f) != (size_t)len || fclose(f) != 0)
		fatal("%s: cannot write", path);
	dbus_free(buf);
}

/* convs --floor NAME: only ListConversations, on NAME at "/" (dbus-floor
 * answers on any path), or on cpm-syncd's account when NAME is DEST: the
 * same calls timed the same way on both, for the figures side by side. */
static void run_floor(double *t)
{
	bool ours = strcmp(opt.floor, DEST) == 0;
	const char *what = ours ? "ours ListConversations" : "floor ListConversations";
	char *apath = NULL;
	DBusMessage *m, *reply;
	struct objects o;
	int bytes;

	if (!dbus_bus_name_has_owner(bus, opt.floor, NULL))
		fatal("%s has no owner on the bus", opt.floor);
	if (opt.path) {
		apath = strdup(opt.path);
		if (!apath)
			fatal("out of memory");
	} else if (ours) {
		find_objects(&o, NULL);
		if (!o.account_path)
			fatal("no account '%s' on the bus", opt.account);
		apath = strdup(o.account_path);
		objects_free(&o);
		if (!apath)
			fatal("out of memory");
	}
	m = dbus_message_new_method_call(opt.floor, apath ? apath : "/", ACCOUNT_IFACE,
					 "ListConversations");
	if (!m)
		fatal("out of memory");
	reply = time_calls(m, what, t, &bytes);
	timing_line(what, count_items(reply), t, bytes);
	dbus_message_unref(reply);
	free(apath);
}

static void run_convs(void)
{
	struct objects o;
	double *t = calloc(opt.repeat, sizeof(double));
	DBusMessage *reply, *m;
	DBusMessageIter top, arr;
	char *cid = NULL, *apath;
	uint64_t best = 0;
	dbus_uint64_t before = 0;
	dbus_uint32_t limit = (dbus_uint32_t)opt.count;
	unsigned long n;
	int bytes;

	if (!t)
		fatal("out of memory");
	if (opt.floor) {
		run_floor(t);
		free(t);
		return;
	}
	if (!dbus_bus_name_has_owner(bus, DEST, NULL))
		fatal("%s has no owner on the bus: is cpm-syncd running?", DEST);
	find_objects(&o, NULL);
	if (!o.account_path)
		fatal("no account '%s' on the bus", opt.account);
	apath = strdup(o.account_path);
	objects_free(&o);
	if (!apath)
		fatal("out of memory");

	if (opt.paged) {
		reply = call_block(new_call(apath, ACCOUNT_IFACE, "ListConversations"),
				   "ListConversations");
		n = count_items(reply);
		dbus_message_unref(reply);
		run_pages(apath, n, t);
		free(apath);
		free(t);
		return;
	}
	reply = time_calls(new_call(apath, ACCOUNT_IFACE, "ListConversations"), "ListConversations",
			   t, &bytes);
	n = count_items(reply);
	timing_line("ListConversations", n, t, bytes);
	if (opt.save_reply)
		save_reply(reply, opt.save_reply);
	if (dbus_message_iter_init(reply, &top) &&
	    dbus_message_iter_get_arg_type(&top) == DBUS_TYPE_ARRAY) {
		dbus_message_iter_recurse(&top, &arr);
		for (; dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_ARRAY;
		     dbus_message_iter_next(&arr)) {
			const char *id = dict_str(&arr, "ConversationId");
			uint64_t msgs = 0;

			if (!id || !dict_uint(&arr, "Messages", &msgs) || msgs <= best)
				continue;
			free(cid);
			cid = strdup(id);
			best = msgs;
			if (msgs >= opt.count)
				break;
		}
	}
	dbus_message_unref(reply);
	if (!cid)
		fatal("ListConversations: no conversation with messages");

	m = new_call(apath, ACCOUNT_IFACE, "ListConversationMessages");
	dbus_message_append_args(m, DBUS_TYPE_STRING, &cid, DBUS_TYPE_UINT64, &before,
				 DBUS_TYPE_UINT32, &limit, DBUS_TYPE_INVALID);
	reply = time_calls(m, "ListConversationMessages", t, &bytes);
	n = count_items(reply);
	dbus_message_unref(reply);
	{
		char what[256];

		snprintf(what, sizeof(what), "ListConversationMessages(%s, 0, %lu)", cid,
			 opt.count);
		timing_line(what, n, t, bytes);
	}
	if (n < opt.count && best >= opt.count)
		fatal("ListConversationMessages gave %lu summaries, not %lu", n, opt.count);
	free(cid);
	free(apath);
	free(t);
}

/* ---- imdn ------------------------------------------------------------- */

/* Runs opt.deliver with msg on its standard input; returns its pid (not
 * waited for: the caller times what happens meanwhile). */
static pid_t deliver_start(const char *msg, size_t len)
{
	int p[2];
	pid_t pid;

	if (pipe(p) < 0)
		fatal("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(p[0], 0);
		close(p[0]);
		close(p[1]);
		execl("/bin/sh", "sh", "-c", opt.deliver, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	while (len > 0) {
		ssize_t n = write(p[1], msg, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fatal("writing to the deliver command: %s", strerror(errno));
		msg += n;
		len -= (size_t)n;
	}
	close(p[1]);
	return pid;
}

static void deliver_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			fatal("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fatal("the deliver command failed (status %d): %s", st, opt.deliver);
}

struct imdn_event {
	double t_idle, t_sig;
	uint64_t id;	   /* the original's Id (from MessagesAdded, then awaited) */
	const char *token; /* the original's Message-ID part (MessagesAdded) */
	bool want_changed; /* waiting for MessagesChanged, not MessagesAdded */
};

static struct imdn_event *imdn_ev;

static void imdn_line(struct event *ev, const char *line, double t)
{
	unsigned long n;
	char word[16];

	if (ev->imap_done || sscanf(line, "* %lu %15s", &n, word) != 2 ||
	    strcasecmp(word, "EXISTS") != 0)
		return;
	ev->imap_done = true;
	imdn_ev->t_idle = t;
}

static void imdn_msg(struct event *ev, DBusMessage *m, double t)
{
	bool changed = imdn_ev->want_changed;
	DBusMessageIter it, arr;

	if (ev->dbus_done ||
	    !dbus_message_is_signal(m, FOLDER_IFACE,
				    changed ? "MessagesChanged" : "MessagesAdded") ||
	    !dbus_message_iter_init(m, &it) ||
	    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY)
		return;
	dbus_message_iter_recurse(&it, &arr);
	for (; dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_ARRAY;
	     dbus_message_iter_next(&arr)) {
		uint64_t id = 0;

		if (changed) {
			const char *st = dict_str(&arr, "Status");

			if (!dict_uint(&arr, "Id", &id) || id != imdn_ev->id || !st ||
			    strcmp(st, "delivered") != 0)
				continue;
		} else {
			const char *mid = dict_str(&arr, "MessageId");

			if (!mid || !strstr(mid, imdn_ev->token) || !dict_uint(&arr, "Id", &id))
				continue;
			imdn_ev->id = id;
		}
		ev->dbus_done = true;
		imdn_ev->t_sig = t;
		return;
	}
}

static void nfy_select(const char *line, void *ud)
{
	(void)ud;
	nfy_line(line);
}

#define NFY_SET                                                                                    \
	"NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName "                  \
	"SubscriptionChange))"

/* Sends "TAG CMD" on the NOTIFY client's connection, reads up to its OK. */
static void nfy_cmd(const char *tag, const char *cmd)
{
	double deadline = now_ms() + opt.timeout * 1e3;
	char line[1024];

	snprintf(line, sizeof(line), "%s %s\r\n", tag, cmd);
	imap_send_fd(nfy.c.fd, line);
	nfy.tag = tag;
	while (nfy.tag) {
		wait_readable(nfy.c.fd, deadline, " (NOTIFY client)", cmd);
		side_recv(&nfy.c, nfy_recv_line, NULL, now_ms());
	}
}

/*
 * Between events, like the daemon after each sync: NOTIFY NONE, then SET
 * again (not a SET over the SET: session.c notify_done()).  Dovecot 2.3.19
 * keeps its inotify watch on the list index log as it was at NOTIFY SET;
 * the saves rotate that log now and then, and a client that never sets
 * NOTIFY again hears nothing more but after mailbox_idle_check_interval.
 */
static void nfy_rearm(void)
{
	nfy_cmd("NN", "NOTIFY NONE");
	nfy_cmd("NS", NFY_SET);
}

/* The bare NOTIFY client (see nfy): logged in, the folder's UIDNEXT and
 * MESSAGES read, NOTIFY set with the daemon's events (session.c notify_set());
 * then the main connection's state is free for the IDLE client. */
static void nfy_start(const char *qfolder)
{
	nfy.name = strdup(opt.folder);
	if (!nfy.name)
		fatal("out of memory");
	imap_login();
	if (!cap_notify)
		fatal("IMAP: the server does not offer NOTIFY (--bare-notify)");
	imap_sendf("S STATUS %s (UIDNEXT MESSAGES)\r\n", qfolder);
	imap_wait_ok("S", "STATUS (NOTIFY client)", nfy_select, NULL);
	if (!nfy.uidnext)
		fatal("IMAP: no STATUS UIDNEXT for %s (NOTIFY client)", opt.folder);
	/* Without the STATUS indicator: its STATUS of every folder rewrites
	 * Dovecot's list index records and may rotate the list index log,
	 * whose inotify watch Dovecot 2.3.19 keeps on the old file (see
	 * session.c): this client's and the daemon's NOTIFY would then be
	 * silent up to mailbox_idle_check_interval (30 s).  The folder's own
	 * state was read by the STATUS above. */
	imap_sendf("N " NFY_SET "\r\n");
	imap_wait_ok("N", "NOTIFY SET (NOTIFY client)", nfy_select, NULL);
	/* What came right after the tagged OK is read with the rest. */
	side_take(&nfy.c, "NOTIFY client", "NOTIFY SET");
}

static void run_imdn(void)
{
	char *fpath = folder_path();
	double *idle = calloc(opt.count, sizeof(double)), *sig = calloc(opt.count, sizeof(double)),
	       *above = calloc(opt.count, sizeof(double)),
	       *notify = calloc(opt.count, sizeof(double)),
	       *above_n = calloc(opt.count, sizeof(double));
	char rule[1024], qfolder[1024], line[8192], token[128], msg[2048];
	DBusError err;

	if (!idle || !sig || !above || !notify || !above_n)
		fatal("out of memory");
	for (int k = 0; k < 2; k++) {
		snprintf(rule, sizeof(rule),
			 "type='signal',sender='%s',interface='%s',member='%s',path='%s'", DEST,
			 FOLDER_IFACE, k ? "MessagesChanged" : "MessagesAdded", fpath);
		dbus_error_init(&err);
		dbus_bus_add_match(bus, rule, &err);
		if (dbus_error_is_set(&err))
			fatal("AddMatch: %s: %s", err.name, err.message);
	}
	quote(qfolder, sizeof(qfolder), opt.folder);
	if (opt.bare_notify)
		nfy_start(qfolder);
	imap_login();
	imap_sendf("S SELECT %s\r\n", qfolder);
	imap_wait_ok("S", "SELECT", NULL, NULL);
	imap_sendf("I IDLE\r\n");
	for (;;) {
		imap_read_line(line, sizeof(line), now_ms() + opt.timeout * 1e3,
			       "IDLE's continuation");
		if (line[0] == '+')
			break;
		if (is_tagged(line, "I"))
			fatal("IMAP: IDLE refused: %s", line);
	}

	for (unsigned long i = 0; i < opt.count; i++) {
		struct imdn_event ie = { .token = token };
		struct event ev = { .line = imdn_line, .msg = imdn_msg };
		time_t now = time(NULL);
		char date[64];
		struct tm tm;
		double t0;
		pid_t pid;
		int len;

		imdn_ev = &ie;
		gmtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
		snprintf(token, sizeof(token), "lat-%ld-%lu-%lld", (long)getpid(), i,
			 (long long)now);
		/* The original: a sent chat message. */
		len = snprintf(msg, sizeof(msg),
			       "Date: %s\r\nFrom: tel:+15550000000\r\nTo: tel:+15559990000\r\n"
			       "Message-ID: <%s@push.test>\r\nContent-Type: Message/CPIM\r\n"
			       "Conversation-ID: conv-latency\r\nIMDN-Message-ID: %s\r\n"
			       "Message-Direction: sent\r\n\r\n"
			       "From: <tel:+15550000000>\r\nTo: <tel:+15559990000>\r\n"
			       "NS: imdn <urn:ietf:params:imdn>\r\n\r\n"
			       "Content-Type: text/plain; charset=utf-8\r\n\r\nlatency %lu\r\n",
			       date, token, token, i);
		pid = deliver_start(msg, (size_t)len);
		pump(&ev, now_ms() + opt.timeout * 1e3, "MessagesAdded of the original");
		deliver_wait(pid);
		if (opt.bare_notify)
			nfy_rearm();
		usleep(PAUSE_US * 5);

		/* Its delivery report, by "another client". */
		ie.want_changed = true;
		ev = (struct event){ .line = imdn_line, .msg = imdn_msg };
		len = snprintf(
			msg, sizeof(msg),
			"Date: %s\r\nFrom: tel:+15559990000\r\nTo: tel:+15550000000\r\n"
			"Message-ID: <rep-%s@push.test>\r\nContent-Type: Message/CPIM\r\n"
			"Conversation-ID: conv-latency\r\nIMDN-Message-ID: rep-%s\r\n"
			"Message-Direction: received\r\n\r\n"
			"From: <tel:+15559990000>\r\nTo: <tel:+15550000000>\r\n"
			"NS: imdn <urn:ietf:params:imdn>\r\n\r\n"
			"Content-Type: message/imdn+xml; charset=utf-8\r\n"
			"Content-Disposition: notification\r\n\r\n"
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
			"<imdn xmlns=\"urn:ietf:params:xml:ns:imdn\"><message-id>%s</message-id>"
			"<delivery-notification><status><delivered/></status>"
			"</delivery-notification></imdn>\r\n",
			date, token, token, token);
		t0 = now_ms();
		pid = deliver_start(msg, (size_t)len);
		pump(&ev, t0 + opt.timeout * 1e3, "MessagesChanged on the original");
		deliver_wait(pid);
		if (opt.bare_notify)
			nfy_rearm();
		idle[i] = ie.t_idle - t0;
		sig[i] = ie.t_sig - t0;
		above[i] = ie.t_sig - ie.t_idle;
		if (opt.bare_notify) {
			notify[i] = ev.tn - t0;
			above_n[i] = ie.t_sig - ev.tn;
		}
		if (opt.verbose && opt.bare_notify)
			printf("imdn %lu: idle %.2f ms, notify %.2f ms, signal %.2f ms, "
			       "above idle %.2f ms, above notify %.2f ms\n",
			       i + 1, idle[i], notify[i], sig[i], above[i], above_n[i]);
		else if (opt.verbose)
			printf("imdn %lu: idle %.2f ms, signal %.2f ms, above idle %.2f ms\n",
			       i + 1, idle[i], sig[i], above[i]);
		usleep(PAUSE_US);
	}
	imap_sendf("DONE\r\n");
	imap_wait_ok("I", "IDLE", NULL, NULL);
	imap_logout();
	report("idle", idle, opt.count);
	report("signal", sig, opt.count);
	report("above-idle", above, opt.count);
	if (opt.bare_notify) {
		imap_send_fd(nfy.c.fd, "Z LOGOUT\r\n");
		close(nfy.c.fd);
		nfy.c.fd = -1;
		report("notify", notify, opt.count);
		report("above-notify", above_n, opt.count);
	}
	free(notify);
	free(above_n);
	free(idle);
	free(sig);
	free(above);
	free(fpath);
}

/* ---- wait ------------------------------------------------------------- */

static void run_wait(void)
{
	double deadline = now_ms() + (opt.timeout > 0 ? opt.timeout : 60) * 1e3;
	double next_note = now_ms() + 10e3;
	bool synced = false;

	for (;;) {
		struct objects o = { 0 };
		char note[256];
		bool done;

		if (dbus_bus_name_has_owner(bus, DEST, NULL)) {
			find_objects(&o, opt.have_messages ? opt.folder : NULL);
			if (o.account_path && opt.sync && !synced) {
				dbus_message_unref(call_block(
					new_call(o.account_path, ACCOUNT_IFACE, "Sync"), "Sync"));
				synced = true;
				objects_free(&o);
				continue;
			}
			done = o.account_path && o.state && strcmp(o.state, "idle") == 0 &&
			       o.last_sync > 0 &&
			       (!opt.have_messages ||
				(o.folder_path && o.folder_messages == opt.messages));
			snprintf(note, sizeof(note),
				 "account %s: %s, state %s, last sync %" PRIu64
				 "; folder %s: %s%" PRIu64 " messages",
				 opt.account, o.account_path ? "found" : "not found",
				 o.state ? o.state : "-", o.last_sync, opt.folder,
				 o.folder_path ? "" : "(not found) ", o.folder_messages);
			objects_free(&o);
		} else {
			done = false;
			snprintf(note, sizeof(note), "%s has no owner", DEST);
		}
		if (done)
			return;
		if (now_ms() >= deadline)
			fatal("wait: timeout: %s", note);
		if (now_ms() >= next_note) {
			fprintf(stderr, PROG ": wait: %s\n", note);
			next_note += 10e3;
		}
		usleep(200000);
	}
}

/* ---- main ------------------------------------------------------------- */

static unsigned long parse_count(const char *name, const char *s, unsigned long min)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > 100000000)
		usage_error("%s: bad number '%s'", name, s);
	return v;
}

int main(int argc, char **argv)
{
	enum {
		O_IMAP = 256,
		O_USER,
		O_PWFILE,
		O_ACCOUNT,
		O_FOLDER,
		O_COUNT,
		O_REPEAT,
		O_TIMEOUT,
		O_MESSAGES,
		O_SYNC,
		O_OBSERVE,
		O_POLL_MS,
		O_BARE,
		O_DELIVER,
		O_BARE_NOTIFY,
		O_PAGED,
		O_SAVE_REPLY,
		O_FLOOR,
		O_PATH
	};
	static const struct option longopts[] = {
		{ "imap", required_argument, NULL, O_IMAP },
		{ "user", required_argument, NULL, O_USER },
		{ "password-file", required_argument, NULL, O_PWFILE },
		{ "account", required_argument, NULL, O_ACCOUNT },
		{ "folder", required_argument, NULL, O_FOLDER },
		{ "count", required_argument, NULL, O_COUNT },
		{ "repeat", required_argument, NULL, O_REPEAT },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "messages", required_argument, NULL, O_MESSAGES },
		{ "sync", no_argument, NULL, O_SYNC },
		{ "observe", required_argument, NULL, O_OBSERVE },
		{ "poll-ms", required_argument, NULL, O_POLL_MS },
		{ "bare", no_argument, NULL, O_BARE },
		{ "deliver", required_argument, NULL, O_DELIVER },
		{ "bare-notify", no_argument, NULL, O_BARE_NOTIFY },
		{ "paged", no_argument, NULL, O_PAGED },
		{ "save-reply", required_argument, NULL, O_SAVE_REPLY },
		{ "floor", required_argument, NULL, O_FLOOR },
		{ "path", required_argument, NULL, O_PATH },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool imap_mode;
	char *end;
	int ch;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || argv[1][0] == '-')
		usage_error("no mode given (added, flags, list, sync or wait)");
	opt.mode = argv[1];
	while ((ch = getopt_long(argc - 1, argv + 1, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case O_IMAP:
			opt.imap = optarg;
			break;
		case O_USER:
			opt.user = optarg;
			break;
		case O_PWFILE:
			opt.password_file = optarg;
			break;
		case O_ACCOUNT:
			opt.account = optarg;
			break;
		case O_FOLDER:
			opt.folder = optarg;
			break;
		case O_COUNT:
			opt.count = parse_count("--count", optarg, 1);
			break;
		case O_REPEAT:
			opt.repeat = parse_count("--repeat", optarg, 1);
			break;
		case O_MESSAGES:
			opt.messages = parse_count("--messages", optarg, 0);
			opt.have_messages = true;
			break;
		case O_TIMEOUT:
			opt.timeout = strtod(optarg, &end);
			if (end == optarg || *end || !(opt.timeout > 0))
				usage_error("--timeout: bad number of seconds '%s'", optarg);
			break;
		case O_SYNC:
			opt.sync = true;
			break;
		case O_OBSERVE:
			if (strcmp(optarg, "idle") != 0 && strcmp(optarg, "noop") != 0)
				usage_error("--observe: noop or idle, not '%s'", optarg);
			opt.observe_idle = strcmp(optarg, "idle") == 0;
			break;
		case O_POLL_MS:
			opt.poll_ms = parse_count("--poll-ms", optarg, 1);
			break;
		case O_BARE:
			opt.bare = true;
			break;
		case O_DELIVER:
			opt.deliver = optarg;
			break;
		case O_BARE_NOTIFY:
			opt.bare_notify = true;
			break;
		case O_PAGED:
			opt.paged = true;
			break;
		case O_SAVE_REPLY:
			opt.save_reply = optarg;
			break;
		case O_FLOOR:
			opt.floor = optarg;
			break;
		case O_PATH:
			opt.path = optarg;
			break;
		case 'v':
			opt.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage_error("bad option");
		}
	}
	if (optind + 1 != argc)
		usage_error("unexpected argument '%s'", argv[optind + 1]);
	imap_mode = strcmp(opt.mode, "added") == 0 || strcmp(opt.mode, "flags") == 0 ||
		    strcmp(opt.mode, "imdn") == 0;
	if (!imap_mode && strcmp(opt.mode, "list") != 0 && strcmp(opt.mode, "wait") != 0 &&
	    strcmp(opt.mode, "convs") != 0 && strcmp(opt.mode, "sync") != 0)
		usage_error("unknown mode '%s'", opt.mode);
	if (strcmp(opt.mode, "imdn") == 0 && !opt.deliver)
		usage_error("imdn needs --deliver");
	if (strcmp(opt.mode, "convs") == 0 && !opt.count)
		opt.count = 50;
	if (!opt.account)
		usage_error("--account is required");
	if (imap_mode && (!opt.imap || !opt.user || !opt.password_file || !opt.count))
		usage_error("%s needs --imap, --user, --password-file and --count", opt.mode);
	if (opt.bare && strcmp(opt.mode, "added") != 0)
		usage_error("--bare is for the added mode only");
	if (opt.bare_notify && strcmp(opt.mode, "imdn") != 0)
		usage_error("--bare-notify is for the imdn mode only");
	if (opt.paged && strcmp(opt.mode, "convs") != 0)
		usage_error("--paged is for the convs mode only");
	if ((opt.save_reply || opt.floor) && (strcmp(opt.mode, "convs") != 0 || opt.paged))
		usage_error("--save-reply and --floor are for the convs mode without --paged");
	if (opt.path && !opt.floor)
		usage_error("--path is for --floor only");
	if (opt.save_reply && opt.floor)
		usage_error("--save-reply is cpm-syncd's reply, --floor does not call it");
	if (strcmp(opt.mode, "list") == 0 && !opt.count)
		opt.count = 1000;
	if (strcmp(opt.mode, "sync") == 0 && !opt.count)
		usage_error("sync needs --count");
	if ((imap_mode || strcmp(opt.mode, "sync") == 0) && opt.timeout == 0)
		opt.timeout = 5;
	if (opt.timeout == 0)
		opt.timeout = 60;

	setvbuf(stdout, NULL, _IOLBF, 0);
	bus_connect();
	if (strcmp(opt.mode, "added") == 0)
		run_added();
	else if (strcmp(opt.mode, "flags") == 0)
		run_flags();
	else if (strcmp(opt.mode, "list") == 0)
		run_list();
	else if (strcmp(opt.mode, "convs") == 0)
		run_convs();
	else if (strcmp(opt.mode, "imdn") == 0)
		run_imdn();
	else if (strcmp(opt.mode, "sync") == 0)
		run_sync();
	else
		run_wait();
	return 0;
}
