/*
 * imap-proxy: a single-threaded, poll()-based TCP proxy for tests and
 * benchmarks.  It forwards connections to an IMAP server, counts the bytes
 * each way, and can inject one fault (cut, stall, BYE) at a chosen point of
 * the server->client stream (cut and stall also in the client->server one),
 * or hold the server->client stream back by a fixed latency.  Plain libc
 * only; see usage() for the CLI.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, ppoll */
#endif
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROG		 "imap-proxy"
#define BUF_SIZE	 65536
#define LINGER_MS	 2000 /* wait for the peer's EOF after our shutdown */
#define PROBE_TIMEOUT_MS 5000 /* startup check of the target */
#define ACCEPT_PAUSE_MS	 200  /* after EMFILE and the like */
#define BYE_LINE	 "* BYE proxy: injected fault\r\n"
#define DELAY_MARKS	 64   /* reads remembered for --delay-ms, per connection */
#define DROP_LINE_MAX	 8192 /* --drop-line: longer lines are forwarded */

static void usage(FILE *f)
{
	fputs("Usage: " PROG " --listen-port-file FILE --to HOST:PORT [--stats FILE]\n"
	      "                  [--listen-port N]\n"
	      "                  [--fault cut|stall|bye [--after-pattern STR] [--after-bytes N]\n"
	      "                   [--fault-connection N] [--fault-stream server|client]]\n"
	      "                  [--chunk-size N] [--delay-ms N] [--verbose]\n"
	      "                  [--drop-line STR [--drop-count N]]\n"
	      "\n"
	      "A single-threaded TCP proxy for tests and benchmarks.  It listens on\n"
	      "127.0.0.1 on a free port, writes that port number and a newline to FILE\n"
	      "(written as FILE.tmp, then renamed: a reader never sees a partial file),\n"
	      "then forwards every connection it accepts to HOST:PORT, any number at once,\n"
	      "until SIGTERM or SIGINT (then exit status 0).  At startup it checks that\n"
	      "HOST:PORT accepts a connection (it opens and closes one).\n"
	      "\n"
	      "  --listen-port-file FILE  where to write the listening port (required)\n"
	      "  --listen-port N          listen on port N, not on a free one (a proxy\n"
	      "                           started again where the last one was)\n"
	      "  --to HOST:PORT           server to forward to (required; [IPv6]:PORT too)\n"
	      "  --stats FILE             after each connection closes and on exit, rewrite\n"
	      "                           FILE (FILE.tmp, then rename) with the totals over\n"
	      "                           all connections, three lines:\n"
	      "                             connections N            (accepted)\n"
	      "                             client_to_server BYTES   (forwarded)\n"
	      "                             server_to_client BYTES   (forwarded; an\n"
	      "                                                      injected BYE not counted)\n"
	      "  --fault cut|stall|bye    inject a fault into one connection (see below)\n"
	      "  --after-pattern STR      trigger once STR has been seen in the\n"
	      "                           server->client stream (bytes taken verbatim, no\n"
	      "                           escapes; matched across reads) ...\n"
	      "  --after-bytes N          ... and N more server->client bytes have been\n"
	      "                           forwarded after its end (default 0).  Without\n"
	      "                           --after-pattern, N counts from the start.\n"
	      "  --fault-connection N     the connection to fault, in accept order: 1 (the\n"
	      "                           default) is the first; 0 means every connection\n"
	      "  --fault-stream client    take the pattern and the bytes from the\n"
	      "                           client->server stream instead (the default is\n"
	      "                           server): a cut or stall inside an APPEND literal;\n"
	      "                           not with bye\n"
	      "  --chunk-size N           read at most N bytes at a time (default and\n"
	      "                           maximum 65536); small values exercise matching\n"
	      "                           across reads and slow the transfer down\n"
	      "  --delay-ms N             forward each server->client byte N ms after it\n"
	      "                           was read, not at once: a server N ms away (the\n"
	      "                           client->server stream is not held)\n"
	      "  --drop-line STR          drop the server->client response lines that\n"
	      "                           contain STR (bytes verbatim), outside literals:\n"
	      "                           a flaky server's answer (a LIST lacking folders);\n"
	      "                           a line with a literal, or longer than 8192\n"
	      "                           bytes, is never dropped; not with --fault nor\n"
	      "                           --delay-ms.  Each drop is logged on stderr\n"
	      "  --drop-count N           drop N such lines in all, over all connections\n"
	      "                           (default 1); later ones are forwarded\n"
	      "  -v, --verbose            log each connection on stderr\n"
	      "  -h, --help               show this text\n"
	      "\n"
	      "The trigger point is an offset in the server->client stream (or with\n"
	      "--fault-stream client, the client->server one): everything before it is\n"
	      "forwarded, nothing after it.  Then:\n"
	      "  cut    close both sockets at once.\n"
	      "  stall  forward nothing more in either direction, but keep both sockets\n"
	      "         open (what the client sends is read and discarded) until the\n"
	      "         client closes: the client must notice the silence itself.\n"
	      "  bye    forward on up to the next line boundary, then send\n"
	      "         \"* BYE proxy: injected fault\\r\\n\" to the client and close both.\n"
	      "         A line boundary is the CRLF ending a response line, outside any\n"
	      "         literal: a line ending in {N} (or {N+}) is followed by N bytes of\n"
	      "         literal data, forwarded whole, and the line goes on after them.\n"
	      "         If the trigger point already is a line boundary (the start of the\n"
	      "         stream is one), the BYE goes right there.\n"
	      "If the pattern never appears, or the stream ends first, nothing happens.\n"
	      "SIGUSR1 stalls every connection open at that moment, whatever --fault\n"
	      "says (a path that died without a word, as behind a NAT that forgot it);\n"
	      "connections accepted after it are forwarded as usual.\n"
	      "Faults are logged on stderr.\n"
	      "\n"
	      "When one side closes (or fails), what is already buffered toward the other\n"
	      "side is delivered, then both are closed.\n"
	      "\n"
	      "Exit status: 0 after SIGTERM/SIGINT, 1 startup error (bind, connect to the\n"
	      "target, ...), 2 usage error.\n",
	      f);
}

static void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnx_(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
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

#define fatal(...)                                                                                 \
	do {                                                                                       \
		warnx_(__VA_ARGS__);                                                               \
		exit(1);                                                                           \
	} while (0)

/* ---- options ---------------------------------------------------------- */

enum fault_kind { FAULT_NONE, FAULT_CUT, FAULT_STALL, FAULT_BYE };
static const char *const fault_names[] = { "none", "cut", "stall", "bye" };

static struct {
	const char *port_file;
	const char *to;
	const char *stats_file;
	enum fault_kind fault;
	const unsigned char *pattern;
	size_t pattern_len;
	size_t *kmp; /* failure function of pattern */
	uint64_t after_bytes;
	unsigned long fault_conn;
	size_t chunk;
	uint64_t delay_ms; /* --delay-ms; 0: none */
	bool verbose;
	const char *drop_line; /* --drop-line; NULL: none */
	uint64_t drop_left;    /* --drop-count, then what is left of it */
	bool client_stream;    /* --fault-stream client */
	unsigned listen_port;  /* --listen-port; 0: a free one */
} opt = { .fault_conn = 1, .chunk = BUF_SIZE, .drop_left = 1 };

static uint64_t parse_number(const char *name, const char *s, uint64_t max)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		usage_error("%s: '%s' is not a number", name, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		usage_error("%s: '%s' is not a number", name, s);
	if (errno == ERANGE || v > max)
		usage_error("%s: %s is too large", name, s);
	return v;
}

static void parse_options(int argc, char **argv)
{
	enum {
		O_PORTFILE = 256,
		O_TO,
		O_STATS,
		O_FAULT,
		O_PATTERN,
		O_BYTES,
		O_FCONN,
		O_FSTREAM,
		O_CHUNK,
		O_LPORT,
		O_DELAY,
		O_DROP,
		O_DROPN
	};
	static const struct option longopts[] = {
		{ "listen-port-file", required_argument, NULL, O_PORTFILE },
		{ "to", required_argument, NULL, O_TO },
		{ "stats", required_argument, NULL, O_STATS },
		{ "fault", required_argument, NULL, O_FAULT },
		{ "after-pattern", required_argument, NULL, O_PATTERN },
		{ "after-bytes", required_argument, NULL, O_BYTES },
		{ "fault-connection", required_argument, NULL, O_FCONN },
		{ "fault-stream", required_argument, NULL, O_FSTREAM },
		{ "chunk-size", required_argument, NULL, O_CHUNK },
		{ "delay-ms", required_argument, NULL, O_DELAY },
		{ "listen-port", required_argument, NULL, O_LPORT },
		{ "drop-line", required_argument, NULL, O_DROP },
		{ "drop-count", required_argument, NULL, O_DROPN },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_bytes = false, have_fconn = false, have_fstream = false, have_dropn = false;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hv", longopts, NULL)) != -1) {
		switch (c) {
		case O_PORTFILE:
			opt.port_file = optarg;
			break;
		case O_DROP:
			if (!*optarg)
				usage_error("--drop-line: empty string");
			opt.drop_line = optarg;
			break;
		case O_DROPN:
			opt.drop_left = parse_number("--drop-count", optarg, UINT64_MAX);
			have_dropn = true;
			break;
		case O_TO:
			opt.to = optarg;
			break;
		case O_STATS:
			opt.stats_file = optarg;
			break;
		case O_FAULT:
			if (strcmp(optarg, "cut") == 0)
				opt.fault = FAULT_CUT;
			else if (strcmp(optarg, "stall") == 0)
				opt.fault = FAULT_STALL;
			else if (strcmp(optarg, "bye") == 0)
				opt.fault = FAULT_BYE;
			else
				usage_error("--fault: '%s' is not one of cut, stall, bye", optarg);
			break;
		case O_PATTERN:
			if (*optarg == '\0')
				usage_error("--after-pattern: empty pattern");
			opt.pattern = (const unsigned char *)optarg;
			opt.pattern_len = strlen(optarg);
			break;
		case O_BYTES:
			opt.after_bytes = parse_number("--after-bytes", optarg, UINT64_MAX / 2);
			have_bytes = true;
			break;
		case O_FCONN:
			opt.fault_conn = parse_number("--fault-connection", optarg, ULONG_MAX);
			have_fconn = true;
			break;
		case O_FSTREAM:
			if (strcmp(optarg, "client") == 0)
				opt.client_stream = true;
			else if (strcmp(optarg, "server") == 0)
				opt.client_stream = false;
			else
				usage_error("--fault-stream: '%s' is not one of server, client",
					    optarg);
			have_fstream = true;
			break;
		case O_DELAY:
			opt.delay_ms = parse_number("--delay-ms", optarg, 60000);
			break;
		case O_CHUNK:
			opt.chunk = parse_number("--chunk-size", optarg, BUF_SIZE);
			if (opt.chunk == 0)
				usage_error("--chunk-size: must be at least 1");
			break;
		case O_LPORT:
			opt.listen_port = (unsigned)parse_number("--listen-port", optarg, 65535);
			if (opt.listen_port == 0)
				usage_error("--listen-port: must be 1 to 65535");
			break;
		case 'v':
			opt.verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt)
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!opt.port_file)
		usage_error("--listen-port-file FILE is required");
	if (!opt.to)
		usage_error("--to HOST:PORT is required");
	if (opt.fault == FAULT_NONE && (opt.pattern || have_bytes || have_fconn || have_fstream))
		usage_error("--after-pattern, --after-bytes, --fault-connection and --fault-stream "
			    "need --fault");
	if (have_dropn && !opt.drop_line)
		usage_error("--drop-count needs --drop-line");
	if (opt.drop_line && (opt.fault != FAULT_NONE || opt.delay_ms))
		usage_error("--drop-line: not with --fault nor --delay-ms");
	if (opt.fault == FAULT_BYE && opt.client_stream)
		usage_error("--fault bye goes into the server->client stream: not with "
			    "--fault-stream client");

	if (opt.pattern) { /* KMP failure function */
		size_t k = 0;

		opt.kmp = calloc(opt.pattern_len, sizeof *opt.kmp);
		if (!opt.kmp)
			fatal("out of memory");
		for (size_t i = 1; i < opt.pattern_len; i++) {
			while (k > 0 && opt.pattern[i] != opt.pattern[k])
				k = opt.kmp[k - 1];
			if (opt.pattern[i] == opt.pattern[k])
				k++;
			opt.kmp[i] = k;
		}
	}
}

/* ---- target address --------------------------------------------------- */

static struct addrinfo *target;

static void resolve_target(void)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	char *copy, *host, *port, *colon;
	size_t len;
	int rc, err;

	copy = host = strdup(opt.to);
	if (!host)
		fatal("out of memory");
	colon = strrchr(host, ':');
	if (!colon || colon == host || colon[1] == '\0')
		usage_error("--to: '%s' is not HOST:PORT", opt.to);
	*colon = '\0';
	port = colon + 1;
	len = strlen(host);
	if (host[0] == '[') {
		if (len < 3 || host[len - 1] != ']')
			usage_error("--to: '%s' is not HOST:PORT", opt.to);
		host[len - 1] = '\0';
		host++;
	}
	rc = getaddrinfo(host, port, &hints, &target);
	err = errno;
	free(copy);
	if (rc != 0)
		fatal("cannot resolve target %s: %s", opt.to,
		      rc == EAI_SYSTEM ? strerror(err) : gai_strerror(rc));
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Startup check: blocking-with-timeout connect to each address in turn. */
static void probe_target(void)
{
	int err = ECONNREFUSED;

	for (struct addrinfo *ai = target; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			close(fd);
			return;
		}
		err = errno;
		if (err == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int64_t deadline = now_ms() + PROBE_TIMEOUT_MS;
			int n;
			socklen_t sl = sizeof err;

			do {
				int64_t left = deadline - now_ms();
				n = poll(&p, 1, left > 0 ? (int)left : 0);
			} while (n < 0 && errno == EINTR);
			if (n == 0)
				err = ETIMEDOUT;
			else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
				err = errno;
			if (n > 0 && err == 0) {
				close(fd);
				return;
			}
		}
		close(fd);
	}
	fatal("cannot connect to target %s: %s", opt.to, strerror(err));
}

/* ---- files ------------------------------------------------------------ */

/* Write CONTENT to PATH.tmp, then rename it to PATH.  -1 (errno set) on error. */
static int write_atomic(const char *path, const char *content)
{
	size_t len = strlen(path) + 5;
	char *tmp = malloc(len);
	FILE *f;
	int ok, saved;

	if (!tmp)
		return -1;
	snprintf(tmp, len, "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f) {
		saved = errno;
		free(tmp);
		errno = saved;
		return -1;
	}
	ok = fputs(content, f) >= 0;
	saved = errno;
	if (fclose(f) != 0 && ok) {
		ok = 0;
		saved = errno;
	}
	if (ok && rename(tmp, path) != 0) {
		ok = 0;
		saved = errno;
	}
	if (!ok)
		unlink(tmp);
	free(tmp);
	errno = saved;
	return ok ? 0 : -1;
}

static struct {
	unsigned long connections;
	uint64_t c2s, s2c;
} totals;

static void write_stats(void)
{
	char text[160];

	if (!opt.stats_file)
		return;
	snprintf(text, sizeof text,
		 "connections %lu\nclient_to_server %llu\nserver_to_client %llu\n",
		 totals.connections, (unsigned long long)totals.c2s,
		 (unsigned long long)totals.s2c);
	if (write_atomic(opt.stats_file, text) != 0)
		warnx_("cannot write stats file %s: %s", opt.stats_file, strerror(errno));
}

/* ---- buffers ---------------------------------------------------------- */

struct buf {
	size_t start, end;
	unsigned char data[BUF_SIZE];
};

static size_t buf_len(const struct buf *b)
{
	return b->end - b->start;
}

/* Free space at the end, compacting first when that helps. */
static size_t buf_room(struct buf *b)
{
	if (b->start == b->end) {
		b->start = b->end = 0;
	} else if (b->start > 0 && b->end == BUF_SIZE) {
		memmove(b->data, b->data + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
	}
	return BUF_SIZE - b->end;
}

static void buf_clear(struct buf *b)
{
	b->start = b->end = 0;
}

/* ---- connections ------------------------------------------------------ */

enum conn_state {
	ST_CONNECTING, /* non-blocking connect to the target in progress */
	ST_OPEN,       /* forwarding both ways */
	ST_STALLED,    /* stall fault: nothing forwarded; waiting for the client to close */
	ST_FLUSH,      /* one side gone: deliver what is buffered toward the other */
	ST_LINGER,     /* other side shut down for writing: discard input until EOF */
	ST_DONE,
};

enum side { CLIENT, SERVER };

enum lit_state { LIT_NONE, LIT_OPEN, LIT_DIGITS, LIT_PLUS, LIT_CLOSE };

struct conn {
	unsigned long id;
	int fd[2]; /* [CLIENT], [SERVER]; -1 once closed */
	enum conn_state state;
	enum side flush_to;		/* ST_FLUSH, ST_LINGER: the side still open */
	int64_t deadline;		/* ST_LINGER */
	const struct addrinfo *next_ai; /* ST_CONNECTING: addresses left to try */
	int connect_err;
	struct buf c2s, s2c;
	uint64_t s2c_read, s2c_written, c2s_read, c2s_written;
	/* --delay-ms: the server->client stream's reads not yet due, oldest
	 * first: up to s2c_read offset end, read at time at (ring). */
	struct {
		uint64_t end;
		int64_t at;
	} mark[DELAY_MARKS];
	unsigned mark_head, mark_n;
	bool count_s2c; /* false once the BYE is queued */

	/* fault */
	bool faulty;	/* armed on this connection, not fired yet */
	size_t matched; /* pattern bytes matched so far (KMP) */
	bool trigger_known, fire_known;
	uint64_t trigger; /* offset in the faulted stream: pattern end + after_bytes */
	uint64_t fire_at; /* trigger, or for bye the boundary after it */

	/* server->client line/literal tracker (bye only) */
	enum lit_state lit;
	bool cr;
	uint64_t lit_len, lit_left;
	uint64_t last_boundary;

	/* --drop-line: the server->client line read so far (a line with a
	 * literal, or too long, is forwarded as it comes: kept), the bytes of
	 * the literal under way */
	unsigned char line[DROP_LINE_MAX];
	size_t line_len;
	bool line_kept;
	uint64_t drop_lit_left;
};

static struct conn **conns;
static size_t nconns, conns_cap;

static void close_fd(struct conn *c, enum side s)
{
	if (c->fd[s] >= 0) {
		close(c->fd[s]);
		c->fd[s] = -1;
	}
}

static void conn_done(struct conn *c, const char *why)
{
	close_fd(c, CLIENT);
	close_fd(c, SERVER);
	c->state = ST_DONE;
	if (opt.verbose)
		warnx_("connection %lu: closed (%s): client->server %llu bytes, server->client "
		       "%llu bytes",
		       c->id, why, (unsigned long long)c->c2s_written,
		       (unsigned long long)c->s2c_written);
}

static void set_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Start connecting to the next target address; false when none is left. */
static bool start_connect(struct conn *c)
{
	while (c->next_ai) {
		const struct addrinfo *ai = c->next_ai;
		int fd;

		c->next_ai = ai->ai_next;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			c->connect_err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
			c->fd[SERVER] = fd;
			c->state = ST_CONNECTING;
			return true;
		}
		c->connect_err = errno;
		close(fd);
	}
	warnx_("connection %lu: cannot connect to target %s: %s", c->id, opt.to,
	       strerror(c->connect_err));
	conn_done(c, "connect failed");
	return false;
}

static void check_fire(struct conn *c);

static void finish_connect(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(c->fd[SERVER], SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY)
		return;
	if (err != 0) {
		c->connect_err = err;
		close_fd(c, SERVER);
		start_connect(c);
		return;
	}
	set_nodelay(c->fd[SERVER]);
	c->state = ST_OPEN;
	if (opt.verbose)
		warnx_("connection %lu: connected to %s", c->id, opt.to);
	check_fire(c);
}

static void new_conn(int cfd)
{
	struct conn *c;

	if (nconns == conns_cap) {
		size_t cap = conns_cap ? conns_cap * 2 : 16;
		struct conn **n = realloc(conns, cap * sizeof *n);

		if (!n) {
			warnx_("out of memory: connection refused");
			close(cfd);
			return;
		}
		conns = n;
		conns_cap = cap;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		warnx_("out of memory: connection refused");
		close(cfd);
		return;
	}
	totals.connections++;
	c->id = totals.connections;
	c->fd[CLIENT] = cfd;
	c->fd[SERVER] = -1;
	c->next_ai = target;
	c->connect_err = ECONNREFUSED;
	c->count_s2c = true;
	set_nodelay(cfd);
	if (opt.fault != FAULT_NONE && (opt.fault_conn == 0 || opt.fault_conn == c->id)) {
		c->faulty = true;
		if (!opt.pattern) {
			c->trigger_known = true;
			c->trigger = opt.after_bytes;
			if (opt.fault != FAULT_BYE || c->trigger == 0) {
				c->fire_known = true;
				c->fire_at = c->trigger;
			}
		}
	}
	conns[nconns++] = c;
	if (opt.verbose)
		warnx_("connection %lu: accepted%s", c->id, c->faulty ? " (fault armed)" : "");
	start_connect(c);
}

/* Bye tracker: one server->client byte, at stream offset POS - 1. */
static void track_byte(struct conn *c, unsigned char ch, uint64_t pos)
{
	if (c->lit_left > 0) {
		c->lit_left--;
		return;
	}
	if (c->cr) {
		c->cr = false;
		if (ch == '\n') {
			if (c->lit == LIT_CLOSE)
				c->lit_left = c->lit_len; /* the line goes on after it */
			else
				c->last_boundary = pos;
			c->lit = LIT_NONE;
			return;
		}
		c->lit = LIT_NONE;
	}
	if (ch == '\r') {
		c->cr = true;
		return;
	}
	if (ch == '{') {
		c->lit = LIT_OPEN;
		c->lit_len = 0;
	} else if (ch >= '0' && ch <= '9' && (c->lit == LIT_OPEN || c->lit == LIT_DIGITS)) {
		c->lit = LIT_DIGITS;
		if (c->lit_len < UINT64_MAX / 20)
			c->lit_len = c->lit_len * 10 + (uint64_t)(ch - '0');
	} else if (ch == '+' && c->lit == LIT_DIGITS) {
		c->lit = LIT_PLUS;
	} else if (ch == '}' && (c->lit == LIT_DIGITS || c->lit == LIT_PLUS)) {
		c->lit = LIT_CLOSE;
	} else {
		c->lit = LIT_NONE;
	}
}

/* Look for the trigger point and fire point in N new bytes of the faulted
 * stream (server->client unless --fault-stream client) that start at stream
 * offset BASE. */
static void scan_stream(struct conn *c, const unsigned char *p, size_t n, uint64_t base)
{
	for (size_t i = 0; i < n && !c->fire_known; i++) {
		uint64_t pos = base + i + 1;

		if (opt.fault == FAULT_BYE)
			track_byte(c, p[i], pos);
		if (!c->trigger_known) {
			while (c->matched > 0 && p[i] != opt.pattern[c->matched])
				c->matched = opt.kmp[c->matched - 1];
			if (p[i] == opt.pattern[c->matched])
				c->matched++;
			if (c->matched == opt.pattern_len) {
				c->trigger_known = true;
				c->trigger = pos + opt.after_bytes;
			}
		}
		if (c->trigger_known) {
			if (opt.fault != FAULT_BYE) {
				c->fire_known = true;
				c->fire_at = c->trigger;
			} else if (c->last_boundary >= c->trigger) {
				c->fire_known = true;
				c->fire_at = c->last_boundary;
			}
		}
	}
}

static void fire(struct conn *c)
{
	c->faulty = false;
	warnx_("connection %lu: fault %s after %llu %s bytes", c->id, fault_names[opt.fault],
	       (unsigned long long)(opt.client_stream ? c->c2s_written : c->s2c_written),
	       opt.client_stream ? "client->server" : "server->client");
	switch (opt.fault) {
	case FAULT_CUT:
		conn_done(c, "fault cut");
		break;
	case FAULT_STALL:
		buf_clear(&c->c2s);
		buf_clear(&c->s2c);
		c->state = ST_STALLED;
		break;
	case FAULT_BYE:
		close_fd(c, SERVER);
		buf_clear(&c->c2s);
		buf_clear(&c->s2c);
		memcpy(c->s2c.data, BYE_LINE, strlen(BYE_LINE));
		c->s2c.end = strlen(BYE_LINE);
		c->count_s2c = false;
		c->state = ST_FLUSH;
		c->flush_to = CLIENT;
		break;
	case FAULT_NONE:
		break;
	}
}

static void check_fire(struct conn *c)
{
	enum side to = opt.client_stream ? SERVER : CLIENT;
	uint64_t written = opt.client_stream ? c->c2s_written : c->s2c_written;

	if (c->faulty && c->fire_known && written >= c->fire_at &&
	    (c->state == ST_OPEN || (c->state == ST_FLUSH && c->flush_to == to)))
		fire(c);
}

/* --delay-ms: the server->client bytes read until now are due at now +
 * delay.  A full ring takes them into its newest mark (due a little later
 * than they would be: never sooner). */
static void delay_mark(struct conn *c)
{
	int64_t now = now_ms();
	unsigned i;

	if (c->mark_n == DELAY_MARKS) {
		i = (c->mark_head + c->mark_n - 1) % DELAY_MARKS;
	} else {
		i = (c->mark_head + c->mark_n++) % DELAY_MARKS;
	}
	c->mark[i].end = c->s2c_read;
	c->mark[i].at = now;
}

/* The server->client offset up to which bytes are due now (all of them
 * without --delay-ms); *ret_next: when the next ones are (-1: none). */
static uint64_t delay_due(const struct conn *c, int64_t now, int64_t *ret_next)
{
	uint64_t due = c->s2c_written;

	*ret_next = -1;
	if (!opt.delay_ms)
		return c->s2c_read;
	for (unsigned k = 0; k < c->mark_n; k++) {
		unsigned i = (c->mark_head + k) % DELAY_MARKS;

		if (c->mark[i].at + (int64_t)opt.delay_ms > now) {
			*ret_next = c->mark[i].at + (int64_t)opt.delay_ms;
			break;
		}
		due = c->mark[i].end;
	}
	return due;
}

/* Marks wholly written are dropped. */
static void delay_written(struct conn *c)
{
	while (c->mark_n && c->mark[c->mark_head].end <= c->s2c_written) {
		c->mark_head = (c->mark_head + 1) % DELAY_MARKS;
		c->mark_n--;
	}
}

/* Bytes that may go to side TO now (the faulted stream held back at the
 * fire point; with --delay-ms, what is not due yet). */
static size_t sendable(const struct conn *c, enum side to)
{
	bool faulted = opt.client_stream ? to == SERVER : to == CLIENT;
	size_t n = buf_len(to == CLIENT ? &c->s2c : &c->c2s);
	uint64_t written = to == CLIENT ? c->s2c_written : c->c2s_written;

	if (faulted && c->faulty && c->fire_known && c->fire_at - written < n)
		n = (size_t)(c->fire_at - written);
	if (to == CLIENT && opt.delay_ms && c->count_s2c) {
		int64_t next;
		uint64_t due = delay_due(c, now_ms(), &next);

		if (due - written < n)
			n = (size_t)(due - written);
	}
	return n;
}

/* The literal size a line ending in "{N}\r\n" or "{N+}\r\n" announces, or
 * -1 (not such a line). */
static int64_t line_literal(const unsigned char *l, size_t n)
{
	uint64_t v = 0, scale = 1;
	size_t i;

	if (n < 5 || l[n - 1] != '\n' || l[n - 2] != '\r' || l[n - 3] != '}')
		return -1;
	i = n - 4;
	if (l[i] == '+')
		i--;
	if (l[i] < '0' || l[i] > '9')
		return -1;
	for (; i > 0 && l[i] >= '0' && l[i] <= '9' && scale < 1000000000000ULL; i--) {
		v += (uint64_t)(l[i] - '0') * scale;
		scale *= 10;
	}
	return l[i] == '{' ? (int64_t)v : -1;
}

/* --drop-line: the n server->client bytes p go to out (what is forwarded,
 * at most n + DROP_LINE_MAX bytes), but the whole lines that contain the
 * string while drops are left; returns the length put in out. */
static size_t drop_filter(struct conn *c, const unsigned char *p, size_t n, unsigned char *out)
{
	size_t o = 0, slen = strlen(opt.drop_line);

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = p[i];
		int64_t lit;

		if (c->drop_lit_left > 0) {
			c->drop_lit_left--;
			out[o++] = ch;
			continue;
		}
		if (c->line_kept) {
			out[o++] = ch;
			if (ch == '\n')
				c->line_kept = false;
			continue;
		}
		c->line[c->line_len++] = ch;
		if (ch != '\n' && c->line_len < DROP_LINE_MAX)
			continue;
		lit = line_literal(c->line, c->line_len);
		if (ch == '\n' && lit < 0 && opt.drop_left > 0 &&
		    memmem(c->line, c->line_len, opt.drop_line, slen)) {
			opt.drop_left--;
			warnx_("connection %lu: dropped the line %.*s", c->id,
			       (int)(c->line_len - (c->line_len > 1 ? 2 : 1)), (char *)c->line);
			c->line_len = 0;
			continue;
		}
		memcpy(out + o, c->line, c->line_len);
		o += c->line_len;
		c->line_len = 0;
		if (lit >= 0) {
			c->drop_lit_left = (uint64_t)lit;
			c->line_kept = true; /* the line goes on after the literal */
		} else if (ch != '\n') {
			c->line_kept = true; /* too long */
		}
	}
	return o;
}

/* What may be read from side S now: the room in its buffer, less a
 * line drop_filter() holds back. */
static size_t read_room(struct conn *c, enum side s)
{
	size_t room = buf_room(s == CLIENT ? &c->c2s : &c->s2c);

	if (s == SERVER && opt.drop_line)
		room = room > DROP_LINE_MAX ? room - DROP_LINE_MAX : 0;
	return room;
}

/* read_side() of the server with --drop-line: at most room bytes read,
 * drop_filter() puts what is kept into b. */
static int read_dropping(struct conn *c, struct buf *b, size_t room)
{
	static unsigned char in[BUF_SIZE];
	ssize_t n;

	do
		n = read(c->fd[SERVER], in, room);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0) {
		if (n < 0 && opt.verbose)
			warnx_("connection %lu: read from server: %s", c->id, strerror(errno));
		return -1;
	}
	c->s2c_read += (uint64_t)n;
	b->end += drop_filter(c, in, (size_t)n, b->data + b->end);
	return 1;
}

/* Read from side S into its buffer.  1 data, 0 would block, -1 EOF/error. */
static int read_side(struct conn *c, enum side s)
{
	struct buf *b = s == CLIENT ? &c->c2s : &c->s2c;
	size_t room = read_room(c, s);
	ssize_t n;

	if (room == 0)
		return 0;
	if (room > opt.chunk)
		room = opt.chunk;
	if (s == SERVER && opt.drop_line)
		return read_dropping(c, b, room);
	do
		n = read(c->fd[s], b->data + b->end, room);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0) {
		if (n < 0 && opt.verbose)
			warnx_("connection %lu: read from %s: %s", c->id,
			       s == CLIENT ? "client" : "server", strerror(errno));
		return -1;
	}
	if (c->faulty && !c->fire_known && (s == CLIENT) == opt.client_stream)
		scan_stream(c, b->data + b->end, (size_t)n,
			    s == SERVER ? c->s2c_read : c->c2s_read);
	if (s == SERVER)
		c->s2c_read += (uint64_t)n;
	else
		c->c2s_read += (uint64_t)n;
	b->end += (size_t)n;
	if (s == SERVER && opt.delay_ms)
		delay_mark(c);
	return 1;
}

/* Write what may be sent toward side TO.  0 ok (maybe partial), -1 error. */
static int write_side(struct conn *c, enum side to)
{
	struct buf *b = to == CLIENT ? &c->s2c : &c->c2s;

	for (;;) {
		size_t want = sendable(c, to);
		ssize_t n;

		if (want == 0)
			return 0;
		n = send(c->fd[to], b->data + b->start, want, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (opt.verbose)
				warnx_("connection %lu: write to %s: %s", c->id,
				       to == CLIENT ? "client" : "server", strerror(errno));
			return -1;
		}
		b->start += (size_t)n;
		if (to == SERVER) {
			c->c2s_written += (uint64_t)n;
			totals.c2s += (uint64_t)n;
		} else {
			c->s2c_written += (uint64_t)n;
			if (c->count_s2c)
				totals.s2c += (uint64_t)n;
			delay_written(c);
		}
		check_fire(c);
		if (c->state != ST_OPEN && c->state != ST_FLUSH)
			return 0;
	}
}

static void start_linger(struct conn *c, enum side s)
{
	shutdown(c->fd[s], SHUT_WR);
	c->state = ST_LINGER;
	c->flush_to = s;
	c->deadline = now_ms() + LINGER_MS;
}

/* Side GONE closed or failed: deliver what is buffered toward the other side,
 * drop what was going to GONE, then close both. */
static void side_gone(struct conn *c, enum side gone)
{
	enum side other = gone == CLIENT ? SERVER : CLIENT;

	close_fd(c, gone);
	buf_clear(gone == CLIENT ? &c->s2c : &c->c2s);
	if (c->fd[other] < 0) {
		conn_done(c, "both sides closed");
		return;
	}
	c->state = ST_FLUSH;
	c->flush_to = other;
	check_fire(c);
}

/* Discard whatever side S sends.  -1 on EOF/error. */
static int discard_input(struct conn *c, enum side s)
{
	unsigned char scratch[4096];
	ssize_t n;

	for (;;) {
		n = read(c->fd[s], scratch, sizeof scratch);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
}

/* Poll events wanted on side S, or -1 not to poll that fd at all. */
static short wanted_events(struct conn *c, enum side s)
{
	short ev = 0;

	if (c->fd[s] < 0)
		return -1;
	switch (c->state) {
	case ST_CONNECTING:
		return s == SERVER ? POLLOUT : -1;
	case ST_OPEN:
		if (read_room(c, s) > 0)
			ev |= POLLIN;
		if (sendable(c, s) > 0)
			ev |= POLLOUT;
		return ev;
	case ST_STALLED:
		return s == CLIENT ? POLLIN : -1;
	case ST_FLUSH:
		return s == c->flush_to ? POLLOUT : -1;
	case ST_LINGER:
		return s == c->flush_to ? POLLIN : -1;
	case ST_DONE:
		break;
	}
	return -1;
}

static void service_open(struct conn *c, const short rev[2])
{
	for (int i = 0; i < 2 && c->state == ST_OPEN; i++) {
		enum side s = i == 0 ? CLIENT : SERVER;
		enum side other = s == CLIENT ? SERVER : CLIENT;

		if (rev[s] & (POLLIN | POLLHUP | POLLERR)) {
			int r = read_side(c, s);

			if (r < 0) {
				side_gone(c, s);
				break;
			}
			/* full buffer and a hung-up/failed socket: give up on it */
			if (r == 0 && !(rev[s] & POLLIN) &&
			    buf_room(s == CLIENT ? &c->c2s : &c->s2c) == 0) {
				side_gone(c, s);
				break;
			}
		}
		if (c->state == ST_OPEN && write_side(c, other) < 0)
			side_gone(c, other);
	}
}

static void service_flush(struct conn *c)
{
	enum side to = c->flush_to;

	if (write_side(c, to) < 0) {
		conn_done(c, "write failed");
		return;
	}
	if (c->state == ST_FLUSH && buf_len(to == CLIENT ? &c->s2c : &c->c2s) == 0)
		start_linger(c, to);
}

static void service(struct conn *c, const short rev[2])
{
	switch (c->state) {
	case ST_CONNECTING:
		if (rev[SERVER])
			finish_connect(c);
		break;
	case ST_OPEN:
		service_open(c, rev);
		break;
	case ST_STALLED:
		if (rev[CLIENT] && discard_input(c, CLIENT) < 0)
			conn_done(c, "client closed during stall");
		break;
	case ST_FLUSH:
		if (rev[c->flush_to])
			service_flush(c);
		break;
	case ST_LINGER:
		if (rev[c->flush_to] && discard_input(c, c->flush_to) < 0)
			conn_done(c, "closed");
		else if (now_ms() >= c->deadline)
			conn_done(c, "linger timeout");
		break;
	case ST_DONE:
		break;
	}
	/* A flush may have nothing to write (e.g. after a stall-free EOF). */
	if (c->state == ST_FLUSH && sendable(c, c->flush_to) == 0 &&
	    buf_len(c->flush_to == CLIENT ? &c->s2c : &c->c2s) == 0)
		start_linger(c, c->flush_to);
}

/* ---- main loop -------------------------------------------------------- */

static volatile sig_atomic_t stop_signal, stall_signal;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		stall_signal = 1;
	else
		stop_signal = sig;
}

/* SIGUSR1: every connection open now stalls (as the stall fault). */
static void stall_all(void)
{
	stall_signal = 0;
	for (size_t i = 0; i < nconns; i++) {
		struct conn *c = conns[i];

		if (c->state != ST_OPEN && c->state != ST_CONNECTING)
			continue;
		warnx_("connection %lu: stalled (SIGUSR1)", c->id);
		buf_clear(&c->c2s);
		buf_clear(&c->s2c);
		c->faulty = false;
		c->state = ST_STALLED;
	}
}

static int listen_socket(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof sin;
	char text[32];
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)opt.listen_port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fatal("cannot create the listening socket: %s", strerror(errno));
	/* On every listener, so that its connections (which inherit it) in
	 * TIME_WAIT do not keep a proxy started again with --listen-port off
	 * the port. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
		fatal("cannot bind to 127.0.0.1:%u: %s", opt.listen_port, strerror(errno));
	if (listen(fd, 128) < 0)
		fatal("cannot listen on 127.0.0.1: %s", strerror(errno));
	if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		fatal("cannot get the listening port: %s", strerror(errno));
	snprintf(text, sizeof text, "%u\n", (unsigned)ntohs(sin.sin_port));
	if (write_atomic(opt.port_file, text) != 0)
		fatal("cannot write port file %s: %s", opt.port_file, strerror(errno));
	if (opt.verbose)
		warnx_("listening on 127.0.0.1:%u, forwarding to %s", (unsigned)ntohs(sin.sin_port),
		       opt.to);
	return fd;
}

static int64_t accept_paused_until;

static void accept_all(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			new_conn(fd);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		default:
			warnx_("accept: %s", strerror(errno));
			accept_paused_until = now_ms() + ACCEPT_PAUSE_MS;
			return;
		}
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block, orig;
	struct pollfd *pfds = NULL;
	size_t pfds_cap = 0;
	int lfd;

	parse_options(argc, argv);

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &orig);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigdelset(&orig, SIGTERM);
	sigdelset(&orig, SIGINT);
	sigdelset(&orig, SIGUSR1);

	resolve_target();
	probe_target();
	lfd = listen_socket();

	while (!stop_signal) {
		size_t n = 0, polled = nconns;
		int64_t now = now_ms(), wake = -1;
		struct timespec ts, *tsp = NULL;
		int rc;

		if (pfds_cap < 1 + 2 * nconns) {
			size_t cap = 2 * (1 + 2 * nconns);
			struct pollfd *p = realloc(pfds, cap * sizeof *p);

			if (!p)
				fatal("out of memory");
			pfds = p;
			pfds_cap = cap;
		}
		pfds[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		if (accept_paused_until > now) {
			pfds[0].fd = -1;
			wake = accept_paused_until;
		}
		for (size_t i = 0; i < polled; i++) {
			struct conn *c = conns[i];

			for (int s = CLIENT; s <= SERVER; s++) {
				short ev = wanted_events(c, (enum side)s);

				pfds[n++] = (struct pollfd){ .fd = ev < 0 ? -1 : c->fd[s],
							     .events = ev < 0 ? 0 : ev };
			}
			if (c->state == ST_LINGER && (wake < 0 || c->deadline < wake))
				wake = c->deadline;
			if (opt.delay_ms && (c->state == ST_OPEN || c->state == ST_FLUSH)) {
				int64_t next;

				delay_due(c, now, &next);
				if (next >= 0 && (wake < 0 || next < wake))
					wake = next;
			}
		}
		if (wake >= 0) {
			int64_t left = wake > now ? wake - now : 0;

			ts.tv_sec = left / 1000;
			ts.tv_nsec = (left % 1000) * 1000000;
			tsp = &ts;
		}
		rc = ppoll(pfds, n, tsp, &orig);
		if (stall_signal)
			stall_all();
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			fatal("poll: %s", strerror(errno));
		}
		if (pfds[0].revents & POLLIN)
			accept_all(lfd);
		for (size_t i = 0; i < polled; i++) {
			struct conn *c = conns[i];
			short rev[2] = { pfds[1 + 2 * i].revents, pfds[2 + 2 * i].revents };

			service(c, rev);
		}
		/* drop finished connections, keeping accept order */
		{
			size_t kept = 0;
			bool closed = false;

			for (size_t i = 0; i < nconns; i++) {
				if (conns[i]->state == ST_DONE) {
					free(conns[i]);
					closed = true;
				} else {
					conns[kept++] = conns[i];
				}
			}
			nconns = kept;
			if (closed)
				write_stats();
		}
	}

	if (opt.verbose)
		warnx_("signal %d: exiting", (int)stop_signal);
	for (size_t i = 0; i < nconns; i++) {
		conn_done(conns[i], "exiting");
		free(conns[i]);
	}
	nconns = 0;
	close(lfd);
	write_stats();
	free(conns);
	free(pfds);
	free(opt.kmp);
	freeaddrinfo(target);
	return 0;
}
