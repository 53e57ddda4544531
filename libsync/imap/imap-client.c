/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "imap/imap-client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cpmsync/error.h>

#include "imap/imap-quote.h"
#include "imap/imap-tls.h"
#include "imap/imap-utf7.h"
#include "imap/sasl.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/loop-stall.h"
#include "util/rangeset.h"
#include "util/text.h"

#define CAT  CPMSYNC_LOG_CAT_IMAP
#define WIRE CPMSYNC_LOG_CAT_IMAP_WIRE

/* Limits of what we build and buffer. */
#define MAX_OUT_BYTES (128u << 20)
#define READ_CHUNK    65536
/* Literals up to this size may be non-synchronizing under LITERAL-. */
#define LITERAL_MINUS_MAX 4096

struct imap_cmd {
	struct imap_client *client;
	struct imap_cmd *next;
	int64_t id;
	unsigned flags;
	char tag[16];
	imap_cmd_cb_t cb;
	void *userdata;
	imap_cont_cb_t cont_cb;
	/* The command without tag: text and literals, ending in CRLF. */
	struct buf wire;
	/* Offsets in wire after which a synchronizing literal's "+" is
	 * awaited before the rest is sent. */
	size_t *sync;
	size_t n_sync;
	size_t next_sync;     /* index into sync of the next wait */
	size_t sent;	      /* bytes of wire already queued for output */
	uint64_t max_literal; /* 0: none of its own */
	uint64_t deadline;    /* monotonic ms by which it must be answered */
	uint64_t sent_ms;     /* monotonic ms it was queued for output (an IDLE: its DONE) */
	bool cancelled;
	bool submitted;
	bool continued; /* a "+" for its continuation handler arrived */
};

struct imap_client {
	struct cpmsync_loop *loop;
	struct imap_client_callbacks cb;
	void *userdata;

	/* Settings (copied). */
	char *name;
	char *host;
	char *user;
	char *ca_file;
	char *client_cert;
	uint16_t port;
	enum cpmsync_security security;
	struct cpmsync_account account; /* our copy, strings above */
	unsigned connect_timeout_ms;
	unsigned command_timeout_ms;
	/* The last read ended inside a response (the -v wire log). */
	bool wire_mid_response;

	enum imap_client_state state;
	int fd;
	bool local_peer; /* loopback or AF_UNIX */
	struct addrinfo *addrs, *addr_next;
	struct resolve *resolve; /* a name lookup in flight, or NULL */
	struct cpmsync_loop_source *resolve_io;
	int resolve_fd; /* our end of its socketpair, or -1 */
	struct cpmsync_loop_source *io;
	struct cpmsync_loop_source *timer;
	/* read_input() yielded with input perhaps left: goes on from here */
	struct cpmsync_loop_source *read_more;
	struct imap_tls *tls;
	uint32_t tls_want;
	struct imap_parser *parser;

	struct buf out;
	size_t out_pos;

	struct imap_cmd *queue, *queue_tail; /* not yet sent */
	struct imap_cmd *inflight;	     /* sent, oldest first */
	unsigned n_inflight;
	bool quick_acks;	       /* imap_client_set_quick_ack() */
	struct imap_cmd *waiting_cont; /* stopped at a literal */
	unsigned tag_counter;
	int64_t id_counter;

	struct imap_caps caps;
	bool have_caps;
	unsigned enabled; /* bitmask over enum imap_cap, as far as it fits */
	struct imap_caps enabled_caps;
	char delimiter;
	bool utf8_enabled;
	/* NAMESPACE's answer on this connection (the default until then). */
	struct imap_ns_map ns;
	char ns_error[128]; /* why the NAMESPACE response was refused, "" if it was not */

	struct sasl_scram *scram;
	/* A first SCRAM login's PBKDF2 on its thread (scram_job_start()): the
	 * AUTHENTICATE waits, in flight, until scram_derived_cb(). */
	struct scram_job *scram_job;
	struct cpmsync_loop_source *scram_io;
	int scram_fd; /* our end of its socketpair, or -1 */
	/* Asked for before the mechanism is chosen; given to the first use. */
	char *password;
	char *password_reason; /* why the host had none (ask_password()), or NULL */
	bool auth_pending;     /* password_cb said -EINPROGRESS: waiting for it */
	bool external;	       /* the login in flight is SASL EXTERNAL */
	char *bye_text;
	char error[512];
	char literal_error[256]; /* why literal_check refused, "" if it did not */

	/* imap_client_user_mark(): false on each new connection; and
	 * imap_client_user_set(): empty on each. */
	bool user_mark;
	struct rangeset user_set;

	uint64_t bytes_in, bytes_out;
	uint64_t progress;     /* bytes received towards the next deadline extension */
	uint64_t last_read;    /* Unix time of the last bytes from the server */
	uint64_t last_read_ms; /* the same, monotonic ms (arm_deadline()) */
	/* Monotonic ms the deadline timer is due (0: disarmed), and of the
	 * last thaw (check_thaw()). */
	uint64_t timer_due, thaw_ms;
	/* loop_own_work_ms() when the deadline timer was armed. */
	uint64_t timer_own_ms;
	/* imap_client_probe() until the server sends anything: its length
	 * and cause, and the monotonic ms by which bytes must come, set once
	 * an answer is awaited (0 while none is). */
	bool probe;
	unsigned probe_ms;
	uint64_t probe_until;
	char probe_why[64];

	/* Re-entrancy: callbacks may free the client. */
	unsigned dispatching;
	bool free_pending;
};

static const char *const state_names[IMAP_CLIENT_STATE_MAX] = {
	[IMAP_CLIENT_DISCONNECTED] = "disconnected",
	[IMAP_CLIENT_CONNECTING] = "connecting",
	[IMAP_CLIENT_TLS_HANDSHAKE] = "tls-handshake",
	[IMAP_CLIENT_GREETING] = "greeting",
	[IMAP_CLIENT_PREAUTH_CAPABILITY] = "capability",
	[IMAP_CLIENT_STARTTLS] = "starttls",
	[IMAP_CLIENT_AUTHENTICATING] = "authenticating",
	[IMAP_CLIENT_POSTAUTH] = "post-auth",
	[IMAP_CLIENT_READY] = "ready",
	[IMAP_CLIENT_LOGOUT] = "logout",
	[IMAP_CLIENT_CLOSED] = "closed",
};

const char *imap_client_state_name(enum imap_client_state s)
{
	return (unsigned)s < IMAP_CLIENT_STATE_MAX ? state_names[s] : "?";
}

static void client_set_state(struct imap_client *c, enum imap_client_state s)
{
	if (c->state == s)
		return;
	log_debug(CAT, "%s: %s -> %s", c->name, imap_client_state_name(c->state),
		  imap_client_state_name(s));
	c->state = s;
}

static void set_error(struct imap_client *c, const char *fmt, ...) ATTR_FORMAT(2, 3);
static void set_error(struct imap_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

static void client_fail(struct imap_client *c, int r, const char *fmt, ...) ATTR_FORMAT(3, 4);
static void update_io(struct imap_client *c);
static void pump(struct imap_client *c);
static void arm_deadline(struct imap_client *c);
static void timer_arm(struct imap_client *c, uint64_t ms);

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Commands */

static void cmd_destroy(struct imap_cmd *cmd)
{
	if ((cmd->flags & IMAP_CMD_SECRET) && cmd->wire.data)
		explicit_bzero(cmd->wire.data, cmd->wire.len);
	buf_free(&cmd->wire);
	free(cmd->sync);
	free(cmd);
}

struct imap_cmd *imap_cmd_free(struct imap_cmd *cmd)
{
	if (cmd && !cmd->submitted)
		cmd_destroy(cmd);
	return NULL;
}

int imap_cmd_new(struct imap_client *client, unsigned flags, imap_cmd_cb_t cb, void *userdata,
		 struct imap_cmd **ret_cmd)
{
	struct imap_cmd *cmd;

	if (!client || !ret_cmd)
		return -EINVAL;
	cmd = calloc(1, sizeof(*cmd));
	if (!cmd)
		return -ENOMEM;
	cmd->client = client;
	cmd->flags = flags;
	cmd->cb = cb;
	cmd->userdata = userdata;
	buf_init(&cmd->wire, IMAP_MAX_COMMAND_BYTES);
	*ret_cmd = cmd;
	return 0;
}

int imap_cmd_add(struct imap_cmd *cmd, const char *text)
{
	return buf_append_str(&cmd->wire, text);
}

int imap_cmd_addf(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(&cmd->wire, fmt, ap);
	va_end(ap);
	return r;
}

static int cmd_add_sync_point(struct imap_cmd *cmd)
{
	size_t *p = realloc(cmd->sync, (cmd->n_sync + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	cmd->sync = p;
	cmd->sync[cmd->n_sync++] = cmd->wire.len;
	return 0;
}

int imap_cmd_add_literal(struct imap_cmd *cmd, const void *data, size_t len, bool literal8)
{
	struct imap_client *c = cmd->client;
	bool nonsync = imap_caps_has(&c->caps, IMAP_CAP_LITERALPLUS) ||
		       (imap_caps_has(&c->caps, IMAP_CAP_LITERALMINUS) && len <= LITERAL_MINUS_MAX);
	int r;

	r = buf_printf(&cmd->wire, "%s{%zu%s}\r\n", literal8 ? "~" : "", len, nonsync ? "+" : "");
	if (r < 0)
		return r;
	if (!nonsync) {
		r = cmd_add_sync_point(cmd);
		if (r < 0)
			return r;
	}
	return buf_append(&cmd->wire, data, len);
}

int imap_cmd_add_string(struct imap_cmd *cmd, const char *s, size_t len)
{
	switch (imap_str_form(s, len, cmd->client->utf8_enabled)) {
	case IMAP_STR_ATOM:
		return buf_append(&cmd->wire, s, len);
	case IMAP_STR_QUOTED:
		return imap_append_quoted(&cmd->wire, s, len);
	case IMAP_STR_LITERAL:
	default:
		return imap_cmd_add_literal(cmd, s, len, false);
	}
}

int imap_cmd_add_nstring(struct imap_cmd *cmd, const char *s, size_t len)
{
	if (imap_str_form(s, len, cmd->client->utf8_enabled) == IMAP_STR_LITERAL)
		return imap_cmd_add_literal(cmd, s, len, false);
	return imap_append_quoted(&cmd->wire, s, len);
}

int imap_cmd_add_mailbox(struct imap_cmd *cmd, const char *name)
{
	struct imap_client *c = cmd->client;
	_cleanup_buf_ struct buf enc = BUF_INIT(4096);
	int r;

	r = imap_ns_from_local(&c->ns, name, c->delimiter, c->utf8_enabled, &enc);
	if (r < 0)
		return r;
	return imap_cmd_add_string(cmd, enc.data ? enc.data : "", enc.len);
}

void imap_cmd_set_max_literal(struct imap_cmd *cmd, uint64_t max)
{
	cmd->max_literal = max;
}

void imap_cmd_set_continuation(struct imap_cmd *cmd, imap_cont_cb_t cb)
{
	cmd->cont_cb = cb;
}

int64_t imap_cmd_submit(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	int r;

	if (c->state == IMAP_CLIENT_DISCONNECTED || c->state == IMAP_CLIENT_CLOSED ||
	    c->free_pending) {
		cmd_destroy(cmd);
		return -CPMSYNC_E_DISCONNECTED;
	}
	r = buf_append(&cmd->wire, "\r\n", 2);
	if (r < 0) {
		cmd_destroy(cmd);
		return r;
	}
	cmd->submitted = true;
	cmd->id = ++c->id_counter;
	if (c->queue_tail)
		c->queue_tail->next = cmd;
	else
		c->queue = cmd;
	c->queue_tail = cmd;
	pump(c);
	return cmd->id;
}

int64_t imap_client_simple(struct imap_client *client, unsigned flags, imap_cmd_cb_t cb,
			   void *userdata, const char *text)
{
	struct imap_cmd *cmd;
	int r;

	r = imap_cmd_new(client, flags, cb, userdata, &cmd);
	if (r < 0)
		return r;
	r = imap_cmd_add(cmd, text);
	if (r < 0) {
		imap_cmd_free(cmd);
		return r;
	}
	return imap_cmd_submit(cmd);
}

/* Calls a command's callback once, unless it was cancelled. */
static void cmd_complete(struct imap_client *c, struct imap_cmd *cmd, int r,
			 enum imap_status status, const struct imap_response *resp,
			 const char *text)
{
	struct imap_cmd_result res = {
		.r = r,
		.status = status,
		.resp = resp,
		.text = text ? text : "",
	};

	if (!cmd->cancelled && cmd->cb) {
		c->dispatching++;
		cmd->cb(c, &res, cmd->userdata);
		c->dispatching--;
	}
	cmd_destroy(cmd);
}

/* Completes every queued and in-flight command with r. */
static void fail_all_commands(struct imap_client *c, int r, const char *text)
{
	while (c->inflight || c->queue) {
		struct imap_cmd *cmd;

		if (c->inflight) {
			cmd = c->inflight;
			c->inflight = cmd->next;
			c->n_inflight--;
		} else {
			cmd = c->queue;
			c->queue = cmd->next;
			if (!c->queue)
				c->queue_tail = NULL;
		}
		cmd->next = NULL;
		cmd_complete(c, cmd, r, IMAP_STATUS_NONE, NULL, text);
	}
	c->waiting_cont = NULL;
}

struct cancel_ctx {
	struct imap_client *client;
	struct imap_cmd *cmd;
};

static void cancel_deferred(struct cpmsync_loop_source *src, void *userdata)
{
	struct cancel_ctx *ctx = userdata;

	(void)src;
	cmd_complete(ctx->client, ctx->cmd, -CPMSYNC_E_CANCELED, IMAP_STATUS_NONE, NULL,
		     "cancelled");
	free(ctx);
}

int imap_client_cancel(struct imap_client *client, int64_t id)
{
	struct imap_cmd **p;

	/* Not sent yet: take it out of the queue; its callback runs from
	 * the loop. */
	for (p = &client->queue; *p; p = &(*p)->next) {
		struct imap_cmd *cmd = *p;
		struct cancel_ctx *ctx;
		int r;

		if (cmd->id != id)
			continue;
		ctx = malloc(sizeof(*ctx));
		if (!ctx)
			return -ENOMEM;
		*p = cmd->next;
		if (client->queue_tail == cmd) {
			struct imap_cmd *t = client->queue;

			while (t && t->next)
				t = t->next;
			client->queue_tail = t;
		}
		cmd->next = NULL;
		ctx->client = client;
		ctx->cmd = cmd;
		r = cpmsync_loop_defer(client->loop, cancel_deferred, ctx, NULL, NULL);
		if (r < 0) {
			free(ctx);
			cmd_destroy(cmd);
		}
		return 0;
	}
	/* In flight: report now-from-the-loop, ignore the late answer. */
	for (struct imap_cmd *cmd = client->inflight; cmd; cmd = cmd->next) {
		struct imap_cmd_result res = {
			.r = -CPMSYNC_E_CANCELED,
			.text = "cancelled",
		};

		if (cmd->id != id || cmd->cancelled)
			continue;
		cmd->cancelled = true;
		/* We are called by the owner, usually from a loop callback;
		 * call back now rather than inside a later tagged reply. */
		if (cmd->cb)
			cmd->cb(client, &res, cmd->userdata);
		return 0;
	}
	return -CPMSYNC_E_NOT_FOUND;
}

/* ------------------------------------------------------------------ */
/* Output */

static void wire_log_out(struct imap_client *c, struct imap_cmd *cmd, const char *data, size_t len)
{
	size_t n = 0;

	if (!log_enabled(CPMSYNC_LOG_DEBUG, WIRE))
		return;
	if (cmd && (cmd->flags & IMAP_CMD_SECRET)) {
		/* The command word, and for AUTHENTICATE the mechanism. */
		size_t words = strncasecmp(data, "AUTHENTICATE ", 13) == 0 ? 2 : 1;

		while (n < len && data[n] != '\r' && n < 64) {
			if (data[n] == ' ' && --words == 0)
				break;
			n++;
		}
		log_debug(WIRE, "%s C: %s %.*s <redacted>", c->name, cmd->tag, (int)n, data);
		return;
	}
	while (n < len && n < 300 && data[n] != '\r' && data[n] != '\n')
		n++;
	log_debug(WIRE, "%s C: %s%s%.*s%s", c->name, cmd ? cmd->tag : "", cmd ? " " : "", (int)n,
		  data, n < len - 2 ? " ..." : "");
}

/*
 * The output buffer, all sent: emptied, and its memory given back when a
 * large command (an APPEND's literal) made it large.  Kept, it stayed
 * allocated for the connection's life: 130 MB of RSS after a 40 MB
 * message.
 */
#define OUT_KEEP_BYTES (256u * 1024)

static void out_drained(struct imap_client *c)
{
	if (c->out.alloc > OUT_KEEP_BYTES)
		buf_free(&c->out);
	else
		buf_reset(&c->out);
	c->out_pos = 0;
}

static int out_append(struct imap_client *c, const void *data, size_t len)
{
	if (c->out_pos > 0 && c->out_pos == c->out.len)
		out_drained(c);
	return buf_append(&c->out, data, len);
}

/* Queues the next piece of cmd (up to its next sync point or the end). */
static int cmd_send_piece(struct imap_client *c, struct imap_cmd *cmd)
{
	size_t end = cmd->wire.len;
	int r;

	if (cmd->next_sync < cmd->n_sync)
		end = cmd->sync[cmd->next_sync];
	if (cmd->sent == 0) {
		wire_log_out(c, cmd, cmd->wire.data, cmd->wire.len);
		r = out_append(c, cmd->tag, strlen(cmd->tag));
		if (r >= 0)
			r = out_append(c, " ", 1);
		if (r < 0)
			return r;
	}
	r = out_append(c, cmd->wire.data + cmd->sent, end - cmd->sent);
	if (r < 0)
		return r;
	cmd->sent = end;
	if (cmd->next_sync < cmd->n_sync) {
		cmd->next_sync++;
		c->waiting_cont = cmd;
	}
	return 0;
}

static bool inflight_exclusive(const struct imap_client *c)
{
	for (struct imap_cmd *cmd = c->inflight; cmd; cmd = cmd->next)
		if (cmd->flags & IMAP_CMD_EXCLUSIVE)
			return true;
	return false;
}

/* Moves queued commands to the wire as far as the pipelining rules allow. */
static void pump(struct imap_client *c)
{
	bool sent = false;

	if (c->fd < 0 || c->state < IMAP_CLIENT_GREETING || c->state == IMAP_CLIENT_GREETING)
		return;
	while (c->queue && !c->waiting_cont && c->n_inflight < IMAP_MAX_IN_FLIGHT) {
		struct imap_cmd *cmd = c->queue;
		struct imap_cmd **tail;
		int r;

		if (c->state != IMAP_CLIENT_READY && !(cmd->flags & IMAP_CMD_PREAUTH))
			break;
		if ((cmd->flags & IMAP_CMD_EXCLUSIVE) && c->n_inflight > 0)
			break;
		if (inflight_exclusive(c))
			break;
		c->queue = cmd->next;
		if (!c->queue)
			c->queue_tail = NULL;
		cmd->next = NULL;
		for (tail = &c->inflight; *tail; tail = &(*tail)->next)
			;
		*tail = cmd;
		c->n_inflight++;
		snprintf(cmd->tag, sizeof(cmd->tag), "a%u", ++c->tag_counter);
		cmd->sent_ms = now_ms();
		cmd->deadline =
			cmd->sent_ms + (uint64_t)c->command_timeout_ms * IMAP_COMMAND_TOTAL_FACTOR;
		r = cmd_send_piece(c, cmd);
		if (r < 0) {
			client_fail(c, r, "cannot queue a command: %s", cpmsync_strerror(r));
			return;
		}
		sent = true;
	}
	if (sent) {
		arm_deadline(c);
		update_io(c);
	}
}

int imap_client_send_line(struct imap_client *client, const char *line)
{
	int r;

	if (client->fd < 0)
		return -CPMSYNC_E_DISCONNECTED;
	log_debug(WIRE, "%s C: %s", client->name, line);
	r = out_append(client, line, strlen(line));
	if (r >= 0)
		r = out_append(client, "\r\n", 2);
	if (r < 0)
		return r;
	arm_deadline(client);
	update_io(client);
	return 0;
}

int imap_client_end_idle(struct imap_client *client, int64_t id)
{
	struct imap_cmd *cmd;
	int r;

	if (client->fd < 0)
		return -CPMSYNC_E_DISCONNECTED;
	for (cmd = client->inflight; cmd; cmd = cmd->next)
		if (cmd->id == id && !cmd->cancelled)
			break;
	if (!cmd || !(cmd->flags & IMAP_CMD_IDLE) || !cmd->continued)
		return -CPMSYNC_E_NOT_FOUND;
	/* RFC 2177: after DONE the server sends what it still has, the
	 * tagged answer, and reads the next command; so what is queued may
	 * follow DONE at once, and the answer is awaited like any other: its
	 * silence (arm_deadline()) and its total deadline counted from now,
	 * not from the IDLE.  Counted from the IDLE, the DONE of an IDLE
	 * older than the command timeout timed out at once. */
	cmd->flags &= ~(unsigned)(IMAP_CMD_IDLE | IMAP_CMD_EXCLUSIVE);
	cmd->sent_ms = now_ms();
	cmd->deadline =
		cmd->sent_ms + (uint64_t)client->command_timeout_ms * IMAP_COMMAND_TOTAL_FACTOR;
	r = imap_client_send_line(client, "DONE");
	if (r < 0)
		return r;
	pump(client);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Connection */

static void resolve_cancel(struct imap_client *c);
static void scram_job_cancel(struct imap_client *c);

static void close_connection(struct imap_client *c)
{
	resolve_cancel(c);
	scram_job_cancel(c);
	if (c->addrs) {
		freeaddrinfo(c->addrs);
		c->addrs = c->addr_next = NULL;
	}
	c->io = cpmsync_loop_source_remove(c->io);
	c->read_more = cpmsync_loop_source_remove(c->read_more);
	c->tls = imap_tls_free(c->tls);
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	out_drained(c);
	if (c->timer)
		timer_arm(c, 0);
	c->scram = sasl_scram_free(c->scram);
}

static void client_fail(struct imap_client *c, int r, const char *fmt, ...)
{
	va_list ap;
	bool was_logout = c->state == IMAP_CLIENT_LOGOUT;
	char why[sizeof(c->error)];

	if (c->state == IMAP_CLIENT_DISCONNECTED || c->state == IMAP_CLIENT_CLOSED)
		return;
	/* Format aside first: the arguments may point into c->error. */
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* It may quote the server (BYE, NO texts): no control characters
	 * reach the owner's logs, D-Bus or a terminal. */
	text_escape(c->error, sizeof(c->error), why);
	log_debug(CAT, "%s: connection closed: %s", c->name, c->error);
	c->probe = false;
	close_connection(c);
	client_set_state(c, was_logout ? IMAP_CLIENT_CLOSED : IMAP_CLIENT_DISCONNECTED);
	c->dispatching++;
	fail_all_commands(c, r, c->error);
	if (c->cb.state && !c->free_pending)
		c->cb.state(c, r, c->error, c->userdata);
	c->dispatching--;
}

unsigned imap_freeze_late_ms = IMAP_FREEZE_LATE_MS;

/* The deadline timer, due ms from now (0: disarmed). */
static void timer_arm(struct imap_client *c, uint64_t ms)
{
	c->timer_due = ms ? now_ms() + ms : 0;
	c->timer_own_ms = loop_own_work_ms();
	cpmsync_loop_timer_set(c->timer, ms, 0);
}

/*
 * The deadline timer was due imap_freeze_late_ms or more before now, and
 * did not fire (deadline_cb() is here, or a read re-arms it first), and
 * that long of it was a stop, not our own work (util/loop-stall.h): the
 * loop did not run meanwhile (the process was stopped or frozen: SIGSTOP, a
 * cgroup freezer; or the loop's host did not call it), and nothing read
 * the socket either, while CLOCK_MONOTONIC went on.  Every deadline passed
 * at the thaw, and a live connection was dropped: one whose answer was
 * waiting in the socket (a long FETCH past its total deadline after its
 * first read), or that the server was about to answer.  The deadlines
 * start again instead: the silence counts from now (thaw_ms); each
 * command's total deadline and a probe's limit are put off by the time the
 * stop, to one command timeout (probe_ms) from now at least.
 * What waits is read next; a dead server is found one timeout later (the
 * timer then fires on time).  A timer late because our own work held the
 * loop (a store write of seconds) is no freeze: the server's silence
 * meanwhile was real, and its deadlines stand (taken for a freeze, a
 * dead server's deadline started again at each slow write).  true: a
 * freeze (the caller re-arms).
 */
static bool check_thaw(struct imap_client *c, uint64_t now)
{
	uint64_t due = c->timer_due, late, min_end = now + c->command_timeout_ms;

	if (!due || now < due + imap_freeze_late_ms)
		return false;
	late = loop_stalled_since(c->loop, due, loop_own_work_ms() - c->timer_own_ms);
	if (late < imap_freeze_late_ms)
		return false;
	c->timer_due = 0;
	log_debug(CAT,
		  "%s: the deadline timer is %" PRIu64 " ms late (the process was stopped or "
		  "frozen): the deadlines start again",
		  c->name, late);
	c->thaw_ms = now;
	for (struct imap_cmd *cmd = c->inflight; cmd; cmd = cmd->next)
		cmd->deadline = cmd->deadline + late > min_end ? cmd->deadline + late : min_end;
	if (c->probe_until)
		c->probe_until = c->probe_until + late > now + c->probe_ms ? c->probe_until + late
									   : now + c->probe_ms;
	return true;
}

/*
 * A timeout as the messages give it: "N s" for whole seconds, else "N ms"
 * (the tests' sub-second timeouts read "500 ms", not "0 s").
 */
static const char *timeout_text(char buf[static 24], unsigned ms)
{
	if (ms >= 1000 && ms % 1000 == 0)
		snprintf(buf, 24, "%u s", ms / 1000);
	else
		snprintf(buf, 24, "%u ms", ms);
	return buf;
}

static void deadline_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct imap_client *c = userdata;
	unsigned ms = c->state < IMAP_CLIENT_PREAUTH_CAPABILITY ? c->connect_timeout_ms
								: c->command_timeout_ms;
	char t[24];

	(void)src;
	if (check_thaw(c, now_ms())) {
		if (c->state == IMAP_CLIENT_CONNECTING || c->state == IMAP_CLIENT_TLS_HANDSHAKE)
			timer_arm(c, c->connect_timeout_ms);
		else
			arm_deadline(c);
		return;
	}
	timer_arm(c, 0);
	c->dispatching++;
	if (c->state == IMAP_CLIENT_CONNECTING)
		client_fail(c, -ETIMEDOUT, "cannot connect to %s port %u: timed out after %s",
			    c->host, c->port, timeout_text(t, ms));
	else if (c->state == IMAP_CLIENT_TLS_HANDSHAKE)
		client_fail(c, -ETIMEDOUT, "TLS handshake timed out after %s", timeout_text(t, ms));
	else if (c->state == IMAP_CLIENT_GREETING)
		client_fail(c, -ETIMEDOUT, "no greeting from the server within %s",
			    timeout_text(t, ms));
	else if (c->scram_job)
		client_fail(c, -ETIMEDOUT,
			    "SCRAM: the key derivation (PBKDF2) did not finish within %s",
			    timeout_text(t, ms));
	else if (c->probe && c->probe_until && now_ms() >= c->probe_until)
		client_fail(c, -ETIMEDOUT,
			    "no answer from the server within %u ms after %s; the connection "
			    "is taken for dead",
			    c->probe_ms, c->probe_why);
	else if (c->inflight && now_ms() >= c->inflight->deadline)
		client_fail(c, -ETIMEDOUT,
			    "the server did not finish answering %.32s within its total limit of "
			    "%s (it answers, but too slowly)",
			    c->inflight->tag, timeout_text(t, ms * IMAP_COMMAND_TOTAL_FACTOR));
	else
		client_fail(c, -ETIMEDOUT, "the server did not answer within %s",
			    timeout_text(t, ms));
	c->dispatching--;
	if (c->free_pending && c->dispatching == 0)
		imap_client_free(c);
}

/* (Re)starts the silence deadline while anything is awaited. */
static void arm_deadline(struct imap_client *c)
{
	uint64_t ms = 0;

	if (!c->timer)
		return;
	if (c->state == IMAP_CLIENT_CONNECTING || c->state == IMAP_CLIENT_TLS_HANDSHAKE)
		return; /* armed once by connect */
	check_thaw(c, now_ms());
	if (c->state == IMAP_CLIENT_GREETING)
		ms = c->connect_timeout_ms;
	else if (c->n_inflight > 0) {
		/* An IDLE that the server accepted waits without limit here;
		 * the engine watches IDLE silence itself. */
		bool idling = c->n_inflight == 1 && (c->inflight->flags & IMAP_CMD_IDLE) &&
			      c->inflight->continued;

		if (!idling) {
			uint64_t now = now_ms(), end = c->inflight->deadline;
			/*
			 * Silence counts from the server's last bytes or from
			 * when the oldest command awaiting its answer went,
			 * whichever came later: not from our own latest
			 * command.  Restarted at each command sent, a stalled
			 * connection with a NOOP out was taken for dead 110 s
			 * after it, not 60, when a D-Bus call sent one more 50 s
			 * on (and 120-300 s when the poll's NOTIFY NONE went
			 * just before the refresh NOOP's deadline).  An IDLE
			 * at the head waits for its DONE's answer, awaited
			 * only since the DONE: from now, as before.
			 */
			uint64_t quiet = c->last_read_ms > c->inflight->sent_ms
						 ? c->last_read_ms
						 : c->inflight->sent_ms;

			/* After a thaw (check_thaw()): from then. */
			if (c->thaw_ms > quiet)
				quiet = c->thaw_ms;

			ms = c->command_timeout_ms;
			if (c->inflight->flags & IMAP_CMD_IDLE)
				;
			else if (quiet + ms <= now)
				ms = 1;
			else
				ms = quiet + ms - now;
			/* The oldest command's total deadline may come first
			 * (1 ms: at once, 0 would disarm the timer). */
			if (end <= now)
				ms = 1;
			else if (end - now < ms)
				ms = end - now;
			if (c->probe) {
				/* Counted from when an answer is awaited. */
				if (!c->probe_until)
					c->probe_until = now + c->probe_ms;
				if (c->probe_until <= now)
					ms = 1;
				else if (c->probe_until - now < ms)
					ms = c->probe_until - now;
			}
		} else {
			c->probe_until = 0;
		}
	} else {
		c->probe_until = 0;
	}
	timer_arm(c, ms);
}

static void update_io(struct imap_client *c)
{
	uint32_t ev = CPMSYNC_LOOP_IN;

	if (!c->io)
		return;
	if (c->state == IMAP_CLIENT_CONNECTING)
		ev = CPMSYNC_LOOP_OUT;
	else if (c->tls_want)
		ev = c->tls_want;
	else if (c->out_pos < c->out.len)
		ev |= CPMSYNC_LOOP_OUT;
	cpmsync_loop_modify_fd(c->io, ev);
}

static void flush_out(struct imap_client *c)
{
	while (c->out_pos < c->out.len) {
		ssize_t n;
		uint32_t want = 0;

		if (c->tls)
			n = imap_tls_write(c->tls, c->out.data + c->out_pos,
					   c->out.len - c->out_pos, &want);
		else {
			n = send(c->fd, c->out.data + c->out_pos, c->out.len - c->out_pos,
				 MSG_NOSIGNAL);
			if (n < 0)
				n = errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
		}
		if (n == -EAGAIN) {
			if (c->tls)
				c->tls_want = want == CPMSYNC_LOOP_IN ? want : 0;
			break;
		}
		if (n < 0) {
			client_fail(c, -CPMSYNC_E_DISCONNECTED, "cannot send to %s: %s", c->host,
				    c->tls ? imap_tls_error(c->tls) : strerror((int)-n));
			return;
		}
		c->bytes_out += (uint64_t)n;
		c->out_pos += (size_t)n;
	}
	if (c->out_pos == c->out.len) {
		/* It may have held a password: leave nothing behind. */
		if (c->out.data)
			explicit_bzero(c->out.data, c->out.len);
		out_drained(c);
	} else if (c->out_pos > (1u << 20)) {
		buf_consume(&c->out, c->out_pos);
		c->out_pos = 0;
	}
}

static void start_tls(struct imap_client *c);
static void handle_response(struct imap_client *c, const struct imap_response *resp);

/* imap_client_set_quick_ack(): TCP_QUICKACK again after each read (Linux
 * leaves quick-ACK mode on its own). */
static void quick_ack(struct imap_client *c)
{
#ifdef TCP_QUICKACK
	int one = 1;

	if (c->quick_acks)
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
#else
	(void)c;
#endif
}

void imap_client_set_quick_ack(struct imap_client *client, bool on)
{
	client->quick_acks = on;
}

int imap_client_probe(struct imap_client *client, unsigned ms, const char *why)
{
	if (!client || !ms)
		return -EINVAL;
	if (client->state != IMAP_CLIENT_READY)
		return -EBUSY;
	client->probe = true;
	client->probe_until = 0;
	client->probe_ms = ms;
	snprintf(client->probe_why, sizeof(client->probe_why), "%s", why ? why : "a probe");
	arm_deadline(client);
	return 0;
}

unsigned imap_read_budget_ms = IMAP_READ_BUDGET_MS;

static void read_more_cb(struct cpmsync_loop_source *src, void *userdata);

/*
 * read_input() has read for imap_read_budget_ms and the server may have
 * sent more: it goes on from a deferred call, after the loop's other
 * sources.  Reading until the socket was empty, a sync of a large folder
 * kept the loop for seconds (5.3 s between two epoll_wait()s for 5,000
 * messages, a tester's strace): D-Bus calls waited up to 2.7 s.  False
 * when the deferred call cannot be made (it reads on, as before).
 */
static bool read_later(struct imap_client *c)
{
	if (c->read_more)
		return true;
	return cpmsync_loop_defer(c->loop, read_more_cb, c, NULL, &c->read_more) == 0;
}

static void read_input(struct imap_client *c)
{
	char data[READ_CHUNK];
	uint64_t start = now_ms();
	bool first = true;

	for (;;) {
		ssize_t n;
		size_t off = 0;
		uint32_t want = 0;

		if (c->fd < 0 || c->free_pending)
			return;
		if (!first && now_ms() - start >= imap_read_budget_ms && read_later(c))
			return;
		first = false;
		if (c->tls)
			n = imap_tls_read(c->tls, data, sizeof(data), &want);
		else {
			n = recv(c->fd, data, sizeof(data), 0);
			if (n < 0)
				n = errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
		}
		if (n == -EAGAIN) {
			if (c->tls)
				c->tls_want = want == CPMSYNC_LOOP_OUT ? want : 0;
			return;
		}
		if (n == 0) {
			if (c->state == IMAP_CLIENT_LOGOUT) {
				client_fail(c, 0, "logged out");
			} else if (c->bye_text) {
				client_fail(c, -CPMSYNC_E_BYE, "the server closed the session: %s",
					    c->bye_text);
			} else {
				client_fail(c, -CPMSYNC_E_DISCONNECTED,
					    "the server closed the connection%s",
					    c->state == IMAP_CLIENT_GREETING
						    ? " before its greeting"
						    : "");
			}
			return;
		}
		if (n < 0) {
			client_fail(c,
				    n == -CPMSYNC_E_TLS ? -CPMSYNC_E_TLS : -CPMSYNC_E_DISCONNECTED,
				    "connection to %s lost: %s", c->host,
				    c->tls ? imap_tls_error(c->tls) : strerror((int)-n));
			return;
		}
		quick_ack(c);
		c->bytes_in += (uint64_t)n;
		c->last_read = (uint64_t)time(NULL);
		c->last_read_ms = now_ms();
		c->probe = false; /* alive */
		c->probe_until = 0;
		c->progress += (uint64_t)n;
		while (c->progress >= IMAP_COMMAND_PROGRESS_BYTES) {
			c->progress -= IMAP_COMMAND_PROGRESS_BYTES;
			if (c->inflight)
				c->inflight->deadline += c->command_timeout_ms;
		}
		arm_deadline(c);
		while (off < (size_t)n) {
			const struct imap_response *resp = NULL;
			size_t used = 0;
			int r;

			/* The first line of each response, never bytes from the
			 * middle of one (a literal split across reads). */
			if (!c->wire_mid_response && log_enabled(CPMSYNC_LOG_DEBUG, WIRE)) {
				size_t m = 0;

				while (off + m < (size_t)n && m < 300 && data[off + m] != '\r' &&
				       data[off + m] != '\n')
					m++;
				log_debug(WIRE, "%s S: %.*s%s", c->name, (int)m, data + off,
					  off + m + 2 < (size_t)n ? " ..." : "");
			}

			r = imap_parser_feed(c->parser, data + off, (size_t)n - off, &used, &resp);
			off += used;
			if (r < 0 && c->literal_error[0]) {
				client_fail(c, -CPMSYNC_E_PROTOCOL, "%s", c->literal_error);
				return;
			}
			if (r < 0) {
				client_fail(c, -CPMSYNC_E_PROTOCOL,
					    "cannot parse the server's response: %s",
					    imap_parser_error(c->parser)
						    ? imap_parser_error(c->parser)
						    : cpmsync_strerror(r));
				return;
			}
			c->wire_mid_response = r == IMAP_PARSE_NEED_MORE;
			if (r == IMAP_PARSE_NEED_MORE)
				break;
			handle_response(c, resp);
			if (c->fd < 0 || c->free_pending)
				return;
			if (c->state == IMAP_CLIENT_TLS_HANDSHAKE) {
				/* STARTTLS accepted: anything the server sent
				 * after its OK would be injected plain text. */
				if (off < (size_t)n) {
					client_fail(
						c, -CPMSYNC_E_STARTTLS,
						"the server sent data after accepting STARTTLS");
					return;
				}
				start_tls(c);
				return;
			}
		}
	}
}

/* ------------------------------------------------------------------ */
/* Login sequence */

static void become_ready(struct imap_client *c);
static void authenticate(struct imap_client *c);
static void after_capability(struct imap_client *c);

static int capability_cmd(struct imap_client *c, imap_cmd_cb_t cb)
{
	int64_t id = imap_client_simple(c, IMAP_CMD_PREAUTH, cb, NULL, "CAPABILITY");

	return id < 0 ? (int)id : 0;
}

static void fail_from_result(struct imap_client *c, const struct imap_cmd_result *res, int r,
			     const char *what)
{
	if (res->r == -CPMSYNC_E_SERVER)
		client_fail(c, r, "%s: %s", what, res->text);
	else if (res->r != -CPMSYNC_E_CANCELED)
		client_fail(c, res->r, "%s", res->text);
}

static void preauth_capability_done(struct imap_client *client, const struct imap_cmd_result *res,
				    void *userdata)
{
	(void)userdata;
	if (res->r < 0) {
		fail_from_result(client, res, -CPMSYNC_E_SERVER, "CAPABILITY failed");
		return;
	}
	after_capability(client);
}

static void starttls_done(struct imap_client *c, const struct imap_cmd_result *res, void *userdata)
{
	(void)userdata;
	if (res->r < 0) {
		fail_from_result(c, res, -CPMSYNC_E_STARTTLS, "the server refused STARTTLS");
		return;
	}
	/* read_input() starts the handshake once this response is done. */
	imap_caps_clear(&c->caps);
	c->have_caps = false;
	client_set_state(c, IMAP_CLIENT_TLS_HANDSHAKE);
}

/* Called once the capabilities before login are known. */
static void after_capability(struct imap_client *c)
{
	if (c->state == IMAP_CLIENT_POSTAUTH) {
		become_ready(c);
		return;
	}
	if (!c->tls && c->security == CPMSYNC_SECURITY_STARTTLS) {
		int64_t id;

		if (!imap_caps_has(&c->caps, IMAP_CAP_STARTTLS)) {
			client_fail(c, -CPMSYNC_E_STARTTLS,
				    "the server does not offer STARTTLS (security=starttls refuses "
				    "to continue without TLS)");
			return;
		}
		client_set_state(c, IMAP_CLIENT_STARTTLS);
		id = imap_client_simple(c, IMAP_CMD_PREAUTH | IMAP_CMD_EXCLUSIVE, starttls_done,
					NULL, "STARTTLS");
		if (id < 0)
			client_fail(c, (int)id, "cannot send STARTTLS");
		return;
	}
	authenticate(c);
}

static void greeting(struct imap_client *c, const struct imap_response *resp)
{
	if (resp->kind != IMAP_RESP_UNTAGGED ||
	    (resp->status != IMAP_STATUS_OK && resp->status != IMAP_STATUS_PREAUTH &&
	     resp->status != IMAP_STATUS_BYE)) {
		client_fail(c, -CPMSYNC_E_PROTOCOL,
			    "the server's greeting is not an IMAP greeting");
		return;
	}
	if (resp->status == IMAP_STATUS_BYE) {
		client_fail(c, -CPMSYNC_E_BYE, "the server refused the connection: %s", resp->text);
		return;
	}
	if (resp->status == IMAP_STATUS_PREAUTH) {
		/* Already authenticated: with STARTTLS required this is the
		 * classic stripping attack, so refuse. */
		if (!c->tls && c->security != CPMSYNC_SECURITY_NONE) {
			client_fail(c, -CPMSYNC_E_STARTTLS,
				    "the server sent PREAUTH, so TLS cannot be started "
				    "(security=starttls)");
			return;
		}
		client_set_state(c, IMAP_CLIENT_POSTAUTH);
	} else {
		client_set_state(c, IMAP_CLIENT_PREAUTH_CAPABILITY);
	}
	if (c->have_caps) {
		after_capability(c);
		return;
	}
	if (capability_cmd(c, preauth_capability_done) < 0)
		client_fail(c, -ENOMEM, "cannot send CAPABILITY");
}

/* Updates caps from an untagged CAPABILITY or a [CAPABILITY] code. */
static void track_capabilities(struct imap_client *c, const struct imap_response *resp)
{
	int r = 0;
	bool got = false;

	if (resp->kind == IMAP_RESP_UNTAGGED && resp->name &&
	    strcasecmp(resp->name, "CAPABILITY") == 0) {
		r = imap_caps_parse_response(&c->caps, resp);
		got = true;
	} else if (resp->code && strcasecmp(resp->code, "CAPABILITY") == 0) {
		r = imap_caps_parse_code(&c->caps, resp);
		got = true;
	}
	if (got && r >= 0)
		c->have_caps = true;
}

static void postauth_capability_done(struct imap_client *c, const struct imap_cmd_result *res,
				     void *userdata)
{
	(void)userdata;
	if (res->r < 0) {
		fail_from_result(c, res, -CPMSYNC_E_SERVER, "CAPABILITY failed");
		return;
	}
	become_ready(c);
}

/* The SCRAM cache key of this account and server (sasl.h). */
static int scram_cache_key(struct imap_client *c)
{
	_cleanup_free_ char *key = NULL;

	if (asprintf(&key, "%s\n%s:%u\n%s", c->name ? c->name : "", c->host ? c->host : "",
		     (unsigned)c->port, c->user) < 0) {
		key = NULL;
		return -ENOMEM;
	}
	return sasl_scram_set_cache_key(c->scram, key);
}

/*
 * Whether a NO to LOGIN or AUTHENTICATE says "not now" rather than "not
 * these credentials" (RFC 5530): UNAVAILABLE (a subsystem the login needs
 * is down), LIMIT (a limit such as connections per user and address, held
 * by other clients), INUSE (someone else holds what the login needs) and
 * SERVERBUG pass by themselves, so the login is retried with the normal
 * back-off.  AUTHENTICATIONFAILED, AUTHORIZATIONFAILED, EXPIRED (a new
 * password is needed), PRIVACYREQUIRED and CONTACTADMIN (the user must act),
 * any other code and a NO without one still stop the account until the
 * settings change: retrying a wrong password only gets the account locked.
 */
static bool login_refused_for_now(const struct imap_cmd_result *res)
{
	if (res->r != -CPMSYNC_E_SERVER || res->status != IMAP_STATUS_NO || !res->resp ||
	    !res->resp->code)
		return false;
	switch (imap_code_from_name(res->resp->code)) {
	case IMAP_CODE_UNAVAILABLE:
	case IMAP_CODE_LIMIT:
	case IMAP_CODE_INUSE:
	case IMAP_CODE_SERVERBUG:
		return true;
	default:
		return false;
	}
}

static void login_done(struct imap_client *c, const struct imap_cmd_result *res, void *userdata)
{
	(void)userdata;
	/* Answered while our PBKDF2 still ran (the server gave up): dropped. */
	scram_job_cancel(c);
	if (res->r == 0 && c->scram) {
		/* SCRAM: the server must prove it knows the password too.
		 * Its final message came in the continuation or in the
		 * tagged OK's text; sasl already checked a continuation. */
		if (!sasl_scram_verified(c->scram)) {
			client_fail(c, -CPMSYNC_E_AUTH,
				    "the server did not prove it knows the password (SCRAM server "
				    "signature missing)");
			return;
		}
	}
	/* A refused login may be a stale SaltedPassword: computed afresh next time. */
	if (res->r < 0 && c->scram)
		sasl_scram_uncache(c->scram);
	if (res->r < 0 && c->scram && sasl_scram_error(c->scram)[0]) {
		client_fail(c, -CPMSYNC_E_AUTH, "authentication failed: %s",
			    sasl_scram_error(c->scram));
		return;
	}
	c->scram = sasl_scram_free(c->scram);
	if (login_refused_for_now(res)) {
		/* -CPMSYNC_E_SERVER: the session retries with its back-off.
		 * The code (an atom: nothing to escape) says which limit. */
		client_fail(c, -CPMSYNC_E_SERVER, "the server refused the login for now: [%s] %s",
			    res->resp->code, res->text);
		return;
	}
	if (res->r < 0 && c->external && res->r == -CPMSYNC_E_SERVER) {
		client_fail(c, -CPMSYNC_E_AUTH,
			    "authentication failed: the server did not accept the client "
			    "certificate (%s) for SASL EXTERNAL: %s",
			    c->tls ? imap_tls_client_cert_info(c->tls) : c->client_cert, res->text);
		return;
	}
	if (res->r < 0) {
		if (res->r == -CPMSYNC_E_SERVER)
			client_fail(c, -CPMSYNC_E_AUTH, "authentication failed: %s", res->text);
		else
			fail_from_result(c, res, res->r, "authentication");
		return;
	}
	client_set_state(c, IMAP_CLIENT_POSTAUTH);
	/* Capabilities before login are not authoritative. */
	if (res->resp && res->resp->code && strcasecmp(res->resp->code, "CAPABILITY") == 0) {
		become_ready(c);
		return;
	}
	imap_caps_clear(&c->caps);
	c->have_caps = false;
	if (capability_cmd(c, postauth_capability_done) < 0)
		client_fail(c, -ENOMEM, "cannot send CAPABILITY");
}

/* Whether the host gives passwords (password_reason_cb or password_cb). */
static bool has_password_cb(const struct imap_client *c)
{
	return c->account.password_reason_cb || c->account.password_cb;
}

/* The host's password callback: its answer, and on failure the reason it
 * gave (password_reason_cb) in c->password_reason. */
static int ask_password(struct imap_client *c, char **ret)
{
	char *reason = NULL;
	int r;

	free(c->password_reason);
	c->password_reason = NULL;
	if (c->account.password_reason_cb)
		r = c->account.password_reason_cb(&c->account, ret, &reason,
						  c->account.password_userdata);
	else
		r = c->account.password_cb(&c->account, ret, c->account.password_userdata);
	if (r < 0 && r != -EINPROGRESS && reason && *reason)
		c->password_reason = TAKE_PTR(reason);
	free(reason);
	return r;
}

/* Why there is no password (r from ask_password()), for the error text. */
static const char *password_error(const struct imap_client *c, int r)
{
	return c->password_reason ? c->password_reason : cpmsync_strerror(r);
}

static int get_password(struct imap_client *c, char **ret)
{
	int r;

	if (c->password) {
		*ret = TAKE_PTR(c->password);
		return 0;
	}
	if (!has_password_cb(c))
		return -CPMSYNC_E_CONFIG;
	r = ask_password(c, ret);
	if (r < 0)
		return r;
	if (!*ret)
		return -CPMSYNC_E_CONFIG;
	return 0;
}

/* Cancels the exchange the standard way ("*"); login_done reports why. */
static int scram_abort(struct imap_client *c, char **ret_line)
{
	set_error(c, "SCRAM: %s", sasl_scram_error(c->scram));
	*ret_line = strdup("*");
	return *ret_line ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------------ */
/*
 * SCRAM's PBKDF2 off the loop.  A first login (nothing in the sasl cache
 * for this account, salt and count) costs up to SASL_SCRAM_MAX_ITERATIONS
 * rounds: they run on a thread of their own, the way a name lookup does
 * (resolve_start(): a request both sides reference, a socketpair whose
 * byte says "done").  Meanwhile the connection waits authenticating, its
 * AUTHENTICATE in flight and nothing sent, like a password that is not
 * ready yet (auth_pending); the loop serves every other source.  Closing
 * the connection or freeing the client drops the request: the thread
 * finishes on its own copies (sasl_scram_derive_new()) and whoever lets
 * go last frees them.
 */
struct scram_job {
	int refs; /* atomic */
	int fd;	  /* the thread's end */
	struct sasl_scram_derive *derive;
};

static const char *scram_nonce_for_test;

void imap_client_set_scram_nonce_for_test(const char *nonce)
{
	scram_nonce_for_test = nonce;
}

static void send_cont_line(struct imap_client *c, bool secret, char *line);

static void scram_job_unref(struct scram_job *job)
{
	if (__atomic_sub_fetch(&job->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	sasl_scram_derive_free(job->derive);
	if (job->fd >= 0)
		close(job->fd);
	free(job);
}

static void *scram_thread(void *arg)
{
	struct scram_job *job = arg;
	char done = 1;

	sasl_scram_derive_run(job->derive);
	/* The loop reads the result after this byte (the socket orders it). */
	(void)!send(job->fd, &done, 1, MSG_NOSIGNAL);
	scram_job_unref(job);
	return NULL;
}

/* Forgets a PBKDF2 in flight (its thread finishes on its own). */
static void scram_job_cancel(struct imap_client *c)
{
	c->scram_io = cpmsync_loop_source_remove(c->scram_io);
	if (c->scram_fd >= 0) {
		close(c->scram_fd);
		c->scram_fd = -1;
	}
	if (c->scram_job) {
		log_debug(CAT, "%s: SCRAM: the key derivation's result will be dropped", c->name);
		scram_job_unref(c->scram_job);
		c->scram_job = NULL;
	}
}

/* The thread is done: client-final (or "*" if it failed) goes out. */
static void scram_derived_cb(struct cpmsync_loop_source *src, int fd, uint32_t events,
			     void *userdata)
{
	struct imap_client *c = userdata;
	struct scram_job *job = c->scram_job;
	char byte, *line = NULL, *msg = NULL;
	int r;

	(void)src;
	(void)events;
	if (recv(fd, &byte, 1, MSG_DONTWAIT) != 1 && (errno == EAGAIN || errno == EINTR))
		return;
	c->scram_job = NULL;
	scram_job_cancel(c); /* closes our end; job is ours */
	c->dispatching++;
	r = sasl_scram_client_final_finish(c->scram, job->derive, &msg);
	scram_job_unref(job);
	if (r < 0) {
		r = scram_abort(c, &line);
	} else {
		log_debug(CAT, "%s: SCRAM: key derivation done", c->name);
		r = base64_encode(msg, strlen(msg), &line);
		explicit_bzero(msg, strlen(msg));
		free(msg);
	}
	if (r < 0) {
		client_fail(c, r, "SCRAM: cannot answer the server: %s", cpmsync_strerror(r));
	} else {
		send_cont_line(c, true, line);
		if (c->fd >= 0)
			arm_deadline(c); /* the server's turn again */
	}
	c->dispatching--;
	if (c->free_pending && c->dispatching == 0)
		imap_client_free(c);
}

static int scram_job_start(struct imap_client *c)
{
	struct scram_job *job = calloc(1, sizeof(*job));
	pthread_attr_t attr;
	pthread_t thread;
	int sv[2], r;

	if (!job)
		return -ENOMEM;
	job->fd = -1;
	job->refs = 1;
	r = sasl_scram_derive_new(c->scram, &job->derive);
	if (r < 0) {
		scram_job_unref(job);
		return r;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		scram_job_unref(job);
		return r;
	}
	job->fd = sv[1];
	r = cpmsync_loop_add_fd(c->loop, sv[0], CPMSYNC_LOOP_IN, scram_derived_cb, c, NULL,
				&c->scram_io);
	if (r < 0) {
		close(sv[0]);
		scram_job_unref(job);
		return r;
	}
	job->refs = 2;
	c->scram_job = job;
	c->scram_fd = sv[0];
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&thread, &attr, scram_thread, job);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		scram_job_cancel(c);
		scram_job_unref(job); /* the thread's reference */
		return -r;
	}
	log_debug(CAT, "%s: SCRAM: key derivation on its thread", c->name);
	return 0;
}

static int scram_continue(struct imap_client *c, const char *text, char **ret_line, void *userdata)
{
	_cleanup_free_ void *raw = NULL;
	_cleanup_free_ char *msg = NULL;
	size_t len = 0;
	int r;

	(void)userdata;
	r = base64_decode(text, strlen(text), &raw, &len);
	if (r < 0) {
		set_error(c, "the server's SCRAM challenge is not base64");
		return -CPMSYNC_E_PROTOCOL;
	}
	if (c->scram_job) {
		set_error(c, "SCRAM: the server sent another challenge before we answered the "
			     "first");
		return -CPMSYNC_E_PROTOCOL;
	}
	if (!sasl_scram_has_final(c->scram)) {
		r = sasl_scram_read_server_first(c->scram, raw, len);
		if (r < 0)
			return scram_abort(c, ret_line);
		if (r > 0) {
			/* Not in the cache: PBKDF2 on its thread; the answer
			 * goes out from scram_derived_cb(), nothing now. */
			r = scram_job_start(c);
			if (r < 0)
				set_error(c, "SCRAM: cannot start the key derivation: %s",
					  cpmsync_strerror(r));
			return r;
		}
		r = sasl_scram_client_final_finish(c->scram, NULL, &msg);
		if (r < 0)
			return scram_abort(c, ret_line);
		r = base64_encode(msg, strlen(msg), ret_line);
		explicit_bzero(msg, strlen(msg));
		return r;
	}
	r = sasl_scram_verify_server_final(c->scram, raw, len);
	if (r < 0)
		return scram_abort(c, ret_line);
	*ret_line = strdup("");
	return *ret_line ? 0 : -ENOMEM;
}

static int login_continue_plain(struct imap_client *c, const char *text, char **ret_line,
				void *userdata)
{
	_cleanup_free_ char *password = NULL;
	_cleanup_free_ char *msg = NULL;
	size_t len = 0;
	int r;

	(void)text;
	(void)userdata;
	r = get_password(c, &password);
	if (r < 0)
		return r;
	r = sasl_plain(NULL, c->user, password, &msg, &len);
	explicit_bzero(password, strlen(password));
	if (r < 0)
		return r;
	r = base64_encode(msg, len, ret_line);
	explicit_bzero(msg, len);
	return r;
}

/* EXTERNAL without SASL-IR: the "+" asks for the (empty) response. */
static int external_continue(struct imap_client *c, const char *text, char **ret_line,
			     void *userdata)
{
	(void)c;
	(void)text;
	(void)userdata;
	*ret_line = strdup("");
	return *ret_line ? 0 : -ENOMEM;
}

static void authenticate(struct imap_client *c)
{
	_cleanup_free_ char *password = NULL;
	struct imap_cmd *cmd = NULL;
	int64_t id;
	int r;

	if (!c->tls && !(c->security == CPMSYNC_SECURITY_NONE && c->local_peer)) {
		client_fail(c, -CPMSYNC_E_INSECURE, "refusing to send the password without TLS");
		return;
	}
	client_set_state(c, IMAP_CLIENT_AUTHENTICATING);
	/* A client certificate and AUTH=EXTERNAL: the login needs no password
	 * (there may be none configured), so none is asked for. */
	c->external = c->tls && c->client_cert && imap_caps_has(&c->caps, IMAP_CAP_AUTH_EXTERNAL);
	/*
	 * The password first: the host may need time to get it (a command
	 * run on the loop).  Then the connection waits, nothing in flight,
	 * until imap_client_password_ready().
	 */
	if (has_password_cb(c) && !c->password && !c->external) {
		r = ask_password(c, &c->password);
		if (r == -EINPROGRESS) {
			log_debug(CAT, "%s: waiting for the password", c->name);
			c->password = NULL;
			c->auth_pending = true;
			/* Nothing awaited from the server: no deadline (the host's own bounds the
			 * wait). */
			arm_deadline(c);
			return;
		}
		if (r >= 0 && !c->password)
			r = -CPMSYNC_E_CONFIG;
		if (r < 0 && c->client_cert && c->tls) {
			client_fail(c, -CPMSYNC_E_AUTH,
				    "the server does not offer AUTH=EXTERNAL (to log in with "
				    "client_cert), and there is no password: %s",
				    password_error(c, r));
			return;
		}
		if (r < 0) {
			client_fail(c, -CPMSYNC_E_AUTH, "cannot get the password: %s",
				    password_error(c, r));
			return;
		}
	}
	r = imap_cmd_new(c, IMAP_CMD_PREAUTH | IMAP_CMD_EXCLUSIVE | IMAP_CMD_SECRET, login_done,
			 NULL, &cmd);
	if (r < 0)
		goto fail;

	if (c->external) {
		/* RFC 4422 appendix A: the identity is the certificate's; an
		 * empty authorization identity ("=" with SASL-IR, RFC 4959)
		 * asks for the one it maps to.  No password is needed. */
		if (imap_caps_has(&c->caps, IMAP_CAP_SASL_IR)) {
			r = imap_cmd_add(cmd, "AUTHENTICATE EXTERNAL =");
		} else {
			imap_cmd_set_continuation(cmd, external_continue);
			r = imap_cmd_add(cmd, "AUTHENTICATE EXTERNAL");
		}
	} else if (imap_caps_has(&c->caps, IMAP_CAP_AUTH_SCRAM_SHA_256)) {
		_cleanup_free_ char *first = NULL, *b64 = NULL;

		r = get_password(c, &password);
		if (r < 0)
			goto fail_password;
		r = sasl_scram_new(c->user, password, &c->scram);
		explicit_bzero(password, strlen(password));
		if (r < 0)
			goto fail;
		if (scram_nonce_for_test)
			r = sasl_scram_set_nonce_for_test(c->scram, scram_nonce_for_test);
		if (r >= 0)
			r = scram_cache_key(c);
		if (r < 0)
			goto fail;
		r = sasl_scram_client_first(c->scram, &first);
		if (r < 0)
			goto fail;
		imap_cmd_set_continuation(cmd, scram_continue);
		if (imap_caps_has(&c->caps, IMAP_CAP_SASL_IR)) {
			r = base64_encode(first, strlen(first), &b64);
			if (r >= 0)
				r = imap_cmd_addf(cmd, "AUTHENTICATE SCRAM-SHA-256 %s", b64);
		} else {
			/* Without SASL-IR the first "+" asks for client-first:
			 * queue it as a synchronizing step. */
			r = base64_encode(first, strlen(first), &b64);
			if (r >= 0)
				r = imap_cmd_add(cmd, "AUTHENTICATE SCRAM-SHA-256\r\n");
			if (r >= 0)
				r = cmd_add_sync_point(cmd);
			if (r >= 0)
				r = buf_append_str(&cmd->wire, b64);
		}
	} else if (imap_caps_has(&c->caps, IMAP_CAP_AUTH_PLAIN)) {
		if (imap_caps_has(&c->caps, IMAP_CAP_SASL_IR)) {
			_cleanup_free_ char *msg = NULL, *b64 = NULL;
			size_t len = 0;

			r = get_password(c, &password);
			if (r < 0)
				goto fail_password;
			r = sasl_plain(NULL, c->user, password, &msg, &len);
			explicit_bzero(password, strlen(password));
			if (r >= 0)
				r = base64_encode(msg, len, &b64);
			if (msg)
				explicit_bzero(msg, len);
			if (r >= 0)
				r = imap_cmd_addf(cmd, "AUTHENTICATE PLAIN %s", b64);
			if (b64)
				explicit_bzero(b64, strlen(b64));
		} else {
			imap_cmd_set_continuation(cmd, login_continue_plain);
			r = imap_cmd_add(cmd, "AUTHENTICATE PLAIN");
		}
	} else if (!imap_caps_has(&c->caps, IMAP_CAP_LOGINDISABLED)) {
		r = get_password(c, &password);
		if (r < 0)
			goto fail_password;
		r = imap_cmd_add(cmd, "LOGIN ");
		if (r >= 0)
			r = imap_cmd_add_string(cmd, c->user, strlen(c->user));
		if (r >= 0)
			r = imap_cmd_add(cmd, " ");
		if (r >= 0)
			r = imap_cmd_add_string(cmd, password, strlen(password));
		explicit_bzero(password, strlen(password));
	} else if (imap_caps_has(&c->caps, IMAP_CAP_AUTH_EXTERNAL) && !c->client_cert) {
		imap_cmd_free(cmd);
		client_fail(c, -CPMSYNC_E_AUTH,
			    "the server only offers SASL EXTERNAL, which needs a client "
			    "certificate (client_cert)");
		return;
	} else {
		imap_cmd_free(cmd);
		client_fail(c, -CPMSYNC_E_AUTH,
			    "the server offers no authentication mechanism we support "
			    "(SCRAM-SHA-256, PLAIN, LOGIN, EXTERNAL with client_cert)");
		return;
	}
	if (r < 0)
		goto fail;
	id = imap_cmd_submit(cmd);
	if (id < 0)
		client_fail(c, (int)id, "cannot send the login command");
	return;
fail_password:
	imap_cmd_free(cmd);
	if (c->client_cert && c->tls)
		client_fail(c, -CPMSYNC_E_AUTH,
			    "the server does not offer AUTH=EXTERNAL (to log in with client_cert), "
			    "and there is no password: %s",
			    password_error(c, r));
	else
		client_fail(c, -CPMSYNC_E_AUTH, "cannot get the password: %s",
			    password_error(c, r));
	return;
fail:
	imap_cmd_free(cmd);
	client_fail(c, r, "cannot start authentication: %s",
		    c->error[0] ? c->error : cpmsync_strerror(r));
}

void imap_client_password_ready(struct imap_client *c)
{
	if (!c || !c->auth_pending || c->fd < 0 || c->free_pending)
		return;
	c->auth_pending = false;
	c->dispatching++;
	authenticate(c);
	c->dispatching--;
	if (c->free_pending && c->dispatching == 0)
		imap_client_free(c);
}

static void ready(struct imap_client *c)
{
	client_set_state(c, IMAP_CLIENT_READY);
	arm_deadline(c);
	c->dispatching++;
	if (c->cb.state)
		c->cb.state(c, 0, NULL, c->userdata);
	c->dispatching--;
	pump(c);
}

/* NAMESPACE answered: the connection is ready.  A server that offers
 * NAMESPACE and refuses it, or answers something we cannot read, cannot be
 * used: its names would be mapped wrongly. */
static void namespace_done(struct imap_client *c, const struct imap_cmd_result *res, void *userdata)
{
	(void)userdata;
	if (res->r < 0) {
		fail_from_result(c, res, res->r, "NAMESPACE");
		return;
	}
	if (c->ns_error[0]) {
		client_fail(c, -CPMSYNC_E_PROTOCOL, "malformed NAMESPACE response: %s",
			    c->ns_error);
		return;
	}
	if (!c->ns.known) {
		client_fail(c, -CPMSYNC_E_PROTOCOL, "no NAMESPACE response to NAMESPACE");
		return;
	}
	ready(c);
}

static void enable_done(struct imap_client *c, const struct imap_cmd_result *res, void *userdata)
{
	int64_t id;

	(void)userdata;
	if (res->r < 0 && res->r != -CPMSYNC_E_SERVER) {
		fail_from_result(c, res, res->r, "ENABLE");
		return;
	}
	/* A refused ENABLE only means the extensions stay off.  NAMESPACE
	 * comes after it: with UTF8=ACCEPT its prefixes are UTF-8. */
	if (imap_caps_has(&c->caps, IMAP_CAP_NAMESPACE)) {
		id = imap_client_simple(c, IMAP_CMD_PREAUTH, namespace_done, NULL, "NAMESPACE");
		if (id < 0)
			client_fail(c, (int)id, "cannot send NAMESPACE");
		return;
	}
	ready(c);
}

static void become_ready(struct imap_client *c)
{
	char what[64] = "";
	int64_t id;

	client_set_state(c, IMAP_CLIENT_POSTAUTH);
	if (imap_caps_has(&c->caps, IMAP_CAP_ENABLE)) {
		if (imap_caps_has(&c->caps, IMAP_CAP_QRESYNC))
			strcat(what, " QRESYNC");
		else if (imap_caps_has(&c->caps, IMAP_CAP_CONDSTORE))
			strcat(what, " CONDSTORE");
		if (imap_caps_has(&c->caps, IMAP_CAP_UTF8_ACCEPT))
			strcat(what, " UTF8=ACCEPT");
	}
	if (what[0]) {
		char line[80];

		snprintf(line, sizeof(line), "ENABLE%s", what);
		id = imap_client_simple(c, IMAP_CMD_PREAUTH, enable_done, NULL, line);
		if (id < 0)
			client_fail(c, (int)id, "cannot send ENABLE");
		return;
	}
	{
		struct imap_cmd_result ok = { .r = 0 };

		enable_done(c, &ok, NULL);
	}
}

/* The first NAMESPACE response after login (one per connection). */
static void track_namespace(struct imap_client *c, const struct imap_response *resp)
{
	struct imap_namespace ns;
	const char *why = "its syntax";
	int r;

	if (resp->kind != IMAP_RESP_UNTAGGED || c->state != IMAP_CLIENT_POSTAUTH ||
	    imap_resp_type(resp) != IMAP_RT_NAMESPACE || c->ns.known || c->ns_error[0])
		return;
	r = imap_resp_namespace(resp, &ns);
	if (r >= 0)
		r = imap_ns_map_set(&c->ns, &ns, &why);
	if (r == -ENOMEM)
		why = "out of memory";
	if (r < 0)
		snprintf(c->ns_error, sizeof(c->ns_error), "%s", why ? why : "its syntax");
}

static void track_enabled(struct imap_client *c, const struct imap_response *resp)
{
	if (resp->kind != IMAP_RESP_UNTAGGED || !resp->name ||
	    strcasecmp(resp->name, "ENABLED") != 0)
		return;
	if (imap_caps_parse_response(&c->enabled_caps, resp) < 0)
		return;
	if (imap_caps_has(&c->enabled_caps, IMAP_CAP_UTF8_ACCEPT))
		c->utf8_enabled = true;
}

/* ------------------------------------------------------------------ */
/* Responses */

static struct imap_cmd *take_inflight(struct imap_client *c, const char *tag)
{
	for (struct imap_cmd **p = &c->inflight; *p; p = &(*p)->next) {
		struct imap_cmd *cmd = *p;

		if (strcmp(cmd->tag, tag) != 0)
			continue;
		*p = cmd->next;
		cmd->next = NULL;
		c->n_inflight--;
		if (c->waiting_cont == cmd)
			c->waiting_cont = NULL;
		return cmd;
	}
	return NULL;
}

/* Sends a continuation handler's line (taken, wiped). */
static void send_cont_line(struct imap_client *c, bool secret, char *line)
{
	int r;

	if (!secret)
		log_debug(WIRE, "%s C: %s", c->name, line);
	else
		log_debug(WIRE, "%s C: <redacted>", c->name);
	r = out_append(c, line, strlen(line));
	if (r >= 0)
		r = out_append(c, "\r\n", 2);
	explicit_bzero(line, strlen(line));
	free(line);
	if (r < 0) {
		client_fail(c, r, "cannot send: %s", cpmsync_strerror(r));
		return;
	}
	update_io(c);
}

static void handle_continuation(struct imap_client *c, const struct imap_response *resp)
{
	struct imap_cmd *cmd = c->waiting_cont;
	int r;

	if (cmd) {
		c->waiting_cont = NULL;
		r = cmd_send_piece(c, cmd);
		if (r < 0) {
			client_fail(c, r, "cannot send a literal: %s", cpmsync_strerror(r));
			return;
		}
		update_io(c);
		pump(c);
		return;
	}
	for (cmd = c->inflight; cmd && cmd->next; cmd = cmd->next)
		;
	if (cmd && cmd->cont_cb && !cmd->cancelled) {
		char *line = NULL;

		cmd->continued = true;
		arm_deadline(c);
		c->dispatching++;
		r = cmd->cont_cb(c, resp->text, &line, cmd->userdata);
		c->dispatching--;
		if (r < 0) {
			client_fail(c, r, "%s", c->error[0] ? c->error : cpmsync_strerror(r));
			return;
		}
		if (line)
			send_cont_line(c, cmd->flags & IMAP_CMD_SECRET, line);
		return;
	}
	/* A continuation nobody asked for: hand it to the owner. */
	if (c->cb.untagged)
		c->cb.untagged(c, resp, c->userdata);
}

static void handle_response(struct imap_client *c, const struct imap_response *resp)
{
	track_capabilities(c, resp);

	if (c->state == IMAP_CLIENT_GREETING) {
		greeting(c, resp);
		return;
	}
	switch (resp->kind) {
	case IMAP_RESP_CONTINUATION:
		handle_continuation(c, resp);
		return;
	case IMAP_RESP_TAGGED: {
		struct imap_cmd *cmd = take_inflight(c, resp->tag);
		int r = 0;

		if (!cmd) {
			log_debug(CAT, "%s: response for unknown tag '%s', ignoring", c->name,
				  resp->tag);
			return;
		}
		if (resp->status == IMAP_STATUS_NO || resp->status == IMAP_STATUS_BAD)
			r = -CPMSYNC_E_SERVER;
		else if (resp->status != IMAP_STATUS_OK)
			r = -CPMSYNC_E_PROTOCOL;
		arm_deadline(c);
		if (resp->text && text_has_unsafe(resp->text, strlen(resp->text))) {
			/* The server's text goes on to logs, D-Bus and
			 * cpmctl: escaped; NULL (out of memory) gives "". */
			char *safe = text_escape_dup(resp->text);

			cmd_complete(c, cmd, r, resp->status, resp, safe);
			free(safe);
		} else {
			cmd_complete(c, cmd, r, resp->status, resp, resp->text);
		}
		if (c->fd >= 0 && !c->free_pending) {
			arm_deadline(c);
			pump(c);
		}
		return;
	}
	case IMAP_RESP_UNTAGGED:
	default:
		break;
	}
	if (resp->status == IMAP_STATUS_BYE) {
		free(c->bye_text);
		c->bye_text = strdup(resp->text ? resp->text : "");
	}
	track_enabled(c, resp);
	track_namespace(c, resp);
	if (c->cb.untagged) {
		c->dispatching++;
		c->cb.untagged(c, resp, c->userdata);
		c->dispatching--;
	}
}

/* ------------------------------------------------------------------ */
/* Literals: the caps of IMAP_MAX_BODY_LITERAL, then the owner's callbacks */

uint64_t imap_max_body_literal(void)
{
	const char *v = secure_getenv(IMAP_MAX_BODY_LITERAL_ENV);
	unsigned long long n;
	char *end;

	if (!v || !*v)
		return IMAP_MAX_BODY_LITERAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end || v[0] == '-' || n == 0 || n > IMAP_MAX_BODY_LITERAL)
		return IMAP_MAX_BODY_LITERAL;
	return n;
}

static bool is_body_item(const char *item)
{
	return strncasecmp(item, "BODY[", 5) == 0 || strncasecmp(item, "BINARY[", 7) == 0 ||
	       strncasecmp(item, "RFC822", 6) == 0;
}

/* A header section: RFC822.HEADER, or a section (after part numbers) that
 * is HEADER, HEADER.FIELDS[.NOT] or MIME. */
static bool is_header_item(const char *item)
{
	const char *s = strchr(item, '[');

	if (strncasecmp(item, "RFC822.HEADER", 13) == 0)
		return true;
	if (!s)
		return false;
	s++;
	while (*s >= '0' && *s <= '9') {
		while (*s >= '0' && *s <= '9')
			s++;
		if (*s != '.')
			return false;
		s++;
	}
	return strncasecmp(s, "HEADER", 6) == 0 || strncasecmp(s, "MIME", 4) == 0;
}

/* The largest max_literal of the commands in flight, or 0 when one of them
 * has none (an answer to it may be any size). */
static uint64_t inflight_max_literal(const struct imap_client *c)
{
	uint64_t max = 0;

	for (const struct imap_cmd *cmd = c->inflight; cmd; cmd = cmd->next) {
		if (!cmd->max_literal)
			return 0;
		if (cmd->max_literal > max)
			max = cmd->max_literal;
	}
	return max;
}

static int lit_check(void *userdata, uint32_t number, const char *name, const char *item,
		     uint64_t size)
{
	struct imap_client *c = userdata;
	uint64_t limit = imap_max_body_literal(), n;
	char why[96];

	if (!name || strcasecmp(name, "FETCH") != 0 || !item || !is_body_item(item))
		return 0;
	if (imap_parser_literal_context_u64(c->parser, "RFC822.SIZE", &n) &&
	    n + IMAP_LITERAL_SLACK(n) < limit &&
	    (!is_header_item(item) || strcasecmp(item, "BODY[HEADER]") == 0)) {
		/* A message's whole header is no larger than the message: a
		 * 1.3 MB To: is no reason to drop the connection (for ever:
		 * the next sync asks for the same).  The sync reads it
		 * streamed, keeping what the summary needs. */
		limit = n + IMAP_LITERAL_SLACK(n);
		snprintf(why, sizeof(why), "the RFC822.SIZE of %" PRIu64 " it announced", n);
	} else if (is_header_item(item)) {
		limit = IMAP_MAX_HEADER_LITERAL;
		snprintf(why, sizeof(why), "the header limit of %" PRIu64 " bytes", limit);
	} else {
		snprintf(why, sizeof(why), "the limit of %" PRIu64 " bytes", limit);
	}
	n = inflight_max_literal(c);
	if (n && n + IMAP_LITERAL_SLACK(n) < limit) {
		limit = n + IMAP_LITERAL_SLACK(n);
		snprintf(why, sizeof(why), "the %" PRIu64 " bytes the command asked for", n);
	}
	if (size <= limit)
		return 0;
	snprintf(c->literal_error, sizeof(c->literal_error),
		 "the server sent a %.32s literal of %" PRIu64
		 " bytes for message %u, more than %s: connection dropped",
		 item, size, number, why);
	return -CPMSYNC_E_PROTOCOL;
}

static bool lit_begin(void *userdata, uint32_t number, const char *name, const char *item,
		      uint64_t size)
{
	struct imap_client *c = userdata;

	if (!c->cb.literals.literal_begin)
		return false;
	return c->cb.literals.literal_begin(c->userdata, number, name, item, size);
}

static int lit_data(void *userdata, const void *data, size_t len)
{
	struct imap_client *c = userdata;

	return c->cb.literals.literal_data ? c->cb.literals.literal_data(c->userdata, data, len)
					   : 0;
}

static void lit_end(void *userdata)
{
	struct imap_client *c = userdata;

	if (c->cb.literals.literal_end)
		c->cb.literals.literal_end(c->userdata);
}

static bool long_fetch(void *userdata, uint32_t number, uint32_t uid)
{
	struct imap_client *c = userdata;

	return c->cb.literals.long_fetch && c->cb.literals.long_fetch(c->userdata, number, uid);
}

static const struct imap_parser_callbacks client_literals = {
	.literal_check = lit_check,
	.literal_begin = lit_begin,
	.long_fetch = long_fetch,
	.literal_data = lit_data,
	.literal_end = lit_end,
};

/* ------------------------------------------------------------------ */
/* Socket set-up */

static void io_cb(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata);

static bool sockaddr_is_local(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_UNIX)
		return true;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return false;
}

static void start_greeting(struct imap_client *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	c->local_peer = getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0 &&
			sockaddr_is_local((struct sockaddr *)&ss);
	if (c->security == CPMSYNC_SECURITY_NONE && !c->local_peer) {
		client_fail(c, -CPMSYNC_E_INSECURE,
			    "security=none is only allowed to a loopback host, and %s is not one",
			    c->host);
		return;
	}
	client_set_state(c, IMAP_CLIENT_GREETING);
	arm_deadline(c);
	update_io(c);
}

static void start_tls(struct imap_client *c)
{
	char *err = NULL;
	int r;

	imap_parser_reset(c->parser);
	c->wire_mid_response = false;
	r = imap_tls_new(c->fd, c->host, c->ca_file, c->client_cert, &c->tls, &err);
	if (r < 0) {
		client_fail(c, r, "%s", err ? err : "cannot start TLS");
		free(err);
		return;
	}
	client_set_state(c, IMAP_CLIENT_TLS_HANDSHAKE);
	timer_arm(c, c->connect_timeout_ms);
	c->tls_want = CPMSYNC_LOOP_OUT;
	update_io(c);
}

static void continue_handshake(struct imap_client *c)
{
	uint32_t want = 0;
	int r = imap_tls_handshake(c->tls, &want);

	if (r == -EAGAIN) {
		c->tls_want = want;
		update_io(c);
		return;
	}
	c->tls_want = 0;
	if (r < 0) {
		client_fail(c, r, "%s", imap_tls_error(c->tls));
		return;
	}
	log_debug(CAT, "%s: %s", c->name, imap_tls_description(c->tls));
	if (c->security == CPMSYNC_SECURITY_TLS) {
		start_greeting(c);
		return;
	}
	/* After STARTTLS: ask again, the list changes under TLS. */
	client_set_state(c, IMAP_CLIENT_PREAUTH_CAPABILITY);
	timer_arm(c, 0);
	if (capability_cmd(c, preauth_capability_done) < 0)
		client_fail(c, -ENOMEM, "cannot send CAPABILITY");
}

static int try_next_address(struct imap_client *c);

static void connected(struct imap_client *c)
{
	int one = 1, idle = 60, intvl = 20, cnt = 3;

	freeaddrinfo(c->addrs);
	c->addrs = c->addr_next = NULL;
	/* Dead peers are noticed even when nothing is awaited. */
	setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->security == CPMSYNC_SECURITY_TLS) {
		start_tls(c);
		return;
	}
	timer_arm(c, 0);
	start_greeting(c);
}

/* The connection is up and readable (events), or read_input() yielded
 * (events 0: as readable). */
static void io_ready(struct imap_client *c, uint32_t events)
{
	if (!events || (events & (CPMSYNC_LOOP_IN | CPMSYNC_LOOP_HUP | CPMSYNC_LOOP_ERR)))
		read_input(c);
	if (c->fd >= 0 && !c->free_pending && c->state != IMAP_CLIENT_TLS_HANDSHAKE) {
		flush_out(c);
		if (c->fd >= 0 && !c->free_pending && c->tls && imap_tls_pending(c->tls))
			read_input(c);
	}
	if (c->fd >= 0 && !c->free_pending)
		update_io(c);
}

static void read_more_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct imap_client *c = userdata;

	(void)src;
	c->read_more = NULL; /* a deferred call is gone once called */
	c->dispatching++;
	if (c->fd >= 0 && !c->free_pending && c->state != IMAP_CLIENT_CONNECTING &&
	    c->state != IMAP_CLIENT_TLS_HANDSHAKE)
		io_ready(c, 0);
	c->dispatching--;
	if (c->free_pending && c->dispatching == 0)
		imap_client_free(c);
}

static void io_cb(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct imap_client *c = userdata;

	(void)src;
	(void)fd;
	c->dispatching++;
	if (c->state == IMAP_CLIENT_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			set_error(c, "cannot connect to %s port %u: %s", c->host, c->port,
				  strerror(err));
			c->io = cpmsync_loop_source_remove(c->io);
			close(c->fd);
			c->fd = -1;
			if (try_next_address(c) < 0) {
				char why[sizeof(c->error)];

				snprintf(why, sizeof(why), "%s", c->error);
				client_fail(c, -err, "%s", why);
			}
		} else {
			connected(c);
		}
	} else if (c->state == IMAP_CLIENT_TLS_HANDSHAKE && c->tls) {
		continue_handshake(c);
	} else if (events) {
		io_ready(c, events);
	}
	c->dispatching--;
	if (c->free_pending && c->dispatching == 0)
		imap_client_free(c);
}

static int try_next_address(struct imap_client *c)
{
	while (c->addr_next) {
		struct addrinfo *ai = c->addr_next;
		int fd, r;

		c->addr_next = ai->ai_next;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			set_error(c, "cannot connect to %s port %u: %s", c->host, c->port,
				  strerror(errno));
			close(fd);
			continue;
		}
		c->fd = fd;
		r = cpmsync_loop_add_fd(c->loop, fd, CPMSYNC_LOOP_OUT, io_cb, c, NULL, &c->io);
		if (r < 0) {
			close(fd);
			c->fd = -1;
			return r;
		}
		return 0;
	}
	return -ECONNREFUSED;
}

/*
 * Name resolution off the loop: getaddrinfo() runs on a detached thread of
 * its own, which hands the result back through a socketpair the loop
 * watches.  The request is shared (two references): if the client gives
 * up first (timeout, free) it just drops its reference and closes its
 * end, and the thread's send() fails quietly (MSG_NOSIGNAL); whoever lets
 * go last frees it.
 */
struct resolve {
	int refs; /* atomic */
	int fd;	  /* the thread's end */
	char *host;
	char port[8];
	struct addrinfo *result;
	int gai_error;
};

static imap_resolve_fn_t resolver = getaddrinfo;

void imap_client_set_resolver_for_test(imap_resolve_fn_t fn)
{
	resolver = fn ? fn : getaddrinfo;
}

static void resolve_unref(struct resolve *rq)
{
	if (__atomic_sub_fetch(&rq->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (rq->result)
		freeaddrinfo(rq->result);
	if (rq->fd >= 0)
		close(rq->fd);
	free(rq->host);
	free(rq);
}

static void *resolve_thread(void *arg)
{
	struct resolve *rq = arg;
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_ADDRCONFIG,
	};
	char done = 1;

	rq->gai_error = resolver(rq->host, rq->port, &hints, &rq->result);
	/* The loop reads the result after this byte (the socket orders it). */
	(void)!send(rq->fd, &done, 1, MSG_NOSIGNAL);
	resolve_unref(rq);
	return NULL;
}

/* Forgets a lookup in flight (its thread finishes on its own). */
static void resolve_cancel(struct imap_client *c)
{
	c->resolve_io = cpmsync_loop_source_remove(c->resolve_io);
	if (c->resolve_fd >= 0) {
		close(c->resolve_fd);
		c->resolve_fd = -1;
	}
	if (c->resolve) {
		resolve_unref(c->resolve);
		c->resolve = NULL;
	}
}

static void resolved_cb(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct imap_client *c = userdata;
	struct resolve *rq = c->resolve;
	char byte;
	int r;

	(void)src;
	(void)events;
	if (recv(fd, &byte, 1, MSG_DONTWAIT) != 1 && errno == EAGAIN)
		return;
	c->resolve = NULL;
	resolve_cancel(c); /* closes our end; rq is ours now */
	c->dispatching++;
	if (rq->gai_error != 0) {
		client_fail(c, -EHOSTUNREACH, "cannot resolve %s: %s", c->host,
			    gai_strerror(rq->gai_error));
	} else {
		c->addrs = rq->result;
		rq->result = NULL;
		c->addr_next = c->addrs;
		r = try_next_address(c);
		if (r < 0)
			client_fail(c, r, "%s",
				    c->error[0] ? c->error : "cannot connect: no usable address");
	}
	resolve_unref(rq);
	c->dispatching--;
	if (c->free_pending && c->dispatching == 0)
		imap_client_free(c);
}

static int resolve_start(struct imap_client *c)
{
	struct resolve *rq = calloc(1, sizeof(*rq));
	pthread_attr_t attr;
	pthread_t thread;
	int sv[2], r;

	if (!rq)
		return -ENOMEM;
	rq->host = strdup(c->host);
	if (!rq->host) {
		free(rq);
		return -ENOMEM;
	}
	snprintf(rq->port, sizeof(rq->port), "%u", c->port);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		free(rq->host);
		free(rq);
		return r;
	}
	rq->fd = sv[1];
	rq->refs = 2;
	r = cpmsync_loop_add_fd(c->loop, sv[0], CPMSYNC_LOOP_IN, resolved_cb, c, NULL,
				&c->resolve_io);
	if (r < 0) {
		close(sv[0]);
		rq->refs = 1;
		resolve_unref(rq);
		return r;
	}
	c->resolve = rq;
	c->resolve_fd = sv[0];
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&thread, &attr, resolve_thread, rq);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		resolve_cancel(c);
		resolve_unref(rq); /* the thread's reference */
		return -r;
	}
	return 0;
}

static int client_begin(struct imap_client *c)
{
	int r;

	if (c->state != IMAP_CLIENT_DISCONNECTED && c->state != IMAP_CLIENT_CLOSED)
		return -EBUSY;
	c->error[0] = '\0';
	c->literal_error[0] = '\0';
	free(c->bye_text);
	c->bye_text = NULL;
	imap_caps_clear(&c->caps);
	imap_caps_clear(&c->enabled_caps);
	c->have_caps = false;
	c->utf8_enabled = false;
	{
		bool show = c->ns.show_other;

		imap_ns_map_free(&c->ns);
		c->ns.show_other = show;
	}
	c->ns_error[0] = '\0';
	c->tls_want = 0;
	c->user_mark = false;
	rangeset_clear(&c->user_set);
	imap_parser_reset(c->parser);
	c->wire_mid_response = false;
	if (!c->timer) {
		r = cpmsync_loop_add_timer(c->loop, 0, 0, deadline_cb, c, NULL, &c->timer);
		if (r < 0)
			return r;
	}
	return 0;
}

int imap_client_connect(struct imap_client *c)
{
	int r;

	r = client_begin(c);
	if (r < 0)
		return r;
	/* The name is looked up on a thread; resolved_cb() connects. */
	r = resolve_start(c);
	if (r < 0) {
		set_error(c, "cannot start resolving %s: %s", c->host, strerror(-r));
		return r;
	}
	client_set_state(c, IMAP_CLIENT_CONNECTING);
	timer_arm(c, c->connect_timeout_ms);
	return 0;
}

int imap_client_connect_fd(struct imap_client *c, int fd)
{
	int r, fl;

	r = client_begin(c);
	if (r < 0) {
		close(fd);
		return r;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	c->fd = fd;
	client_set_state(c, IMAP_CLIENT_CONNECTING);
	r = cpmsync_loop_add_fd(c->loop, fd, CPMSYNC_LOOP_OUT, io_cb, c, NULL, &c->io);
	if (r < 0) {
		close(fd);
		c->fd = -1;
		client_set_state(c, IMAP_CLIENT_DISCONNECTED);
		return r;
	}
	timer_arm(c, c->connect_timeout_ms);
	return 0;
}

static void logout_done(struct imap_client *c, const struct imap_cmd_result *res, void *userdata)
{
	(void)res;
	(void)userdata;
	/* The server closes after its OK; close our side too. */
	if (c->fd >= 0)
		client_fail(c, 0, "logged out");
}

void imap_client_logout(struct imap_client *c)
{
	if (c->fd < 0 || c->state == IMAP_CLIENT_LOGOUT)
		return;
	if (c->state != IMAP_CLIENT_READY) {
		client_fail(c, -CPMSYNC_E_CANCELED, "closed before login completed");
		return;
	}
	client_set_state(c, IMAP_CLIENT_LOGOUT);
	if (imap_client_simple(c, IMAP_CMD_PREAUTH, logout_done, NULL, "LOGOUT") < 0)
		client_fail(c, 0, "logged out");
}

/* ------------------------------------------------------------------ */
/* Life cycle */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int imap_client_new(struct cpmsync_loop *loop, const struct cpmsync_account *account,
		    const struct imap_client_callbacks *callbacks, void *userdata,
		    struct imap_client **ret_client)
{
	struct imap_client *c;
	int r;

	if (!loop || !account || !account->host || !account->user || !ret_client)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->fd = -1;
	c->resolve_fd = -1;
	c->scram_fd = -1;
	c->delimiter = '/';
	imap_ns_map_init(&c->ns);
	rangeset_init(&c->user_set);
	c->ns.show_other = account->show_other_namespaces != 0;
	if (callbacks)
		c->cb = *callbacks;
	c->userdata = userdata;
	c->name = strdup(account->name ? account->name : account->host);
	c->host = strdup(account->host);
	c->user = strdup(account->user);
	c->ca_file = dup_or_null(account->ca_file);
	c->client_cert = dup_or_null(account->client_cert);
	c->port = cpmsync_account_port(account);
	c->security = account->security;
	c->account = *account;
	c->connect_timeout_ms =
		account->connect_timeout_ms ? account->connect_timeout_ms : IMAP_CONNECT_TIMEOUT_MS;
	c->command_timeout_ms =
		account->command_timeout_ms ? account->command_timeout_ms : IMAP_COMMAND_TIMEOUT_MS;
	buf_init(&c->out, MAX_OUT_BYTES);
	imap_caps_init(&c->caps);
	imap_caps_init(&c->enabled_caps);
	if (!c->name || !c->host || !c->user || (account->ca_file && !c->ca_file) ||
	    (account->client_cert && !c->client_cert)) {
		imap_client_free(c);
		return -ENOMEM;
	}
	r = imap_parser_new(NULL, &client_literals, c, &c->parser);
	if (r < 0) {
		imap_client_free(c);
		return r;
	}
	c->account.name = c->name;
	c->account.host = c->host;
	c->account.user = c->user;
	c->account.ca_file = c->ca_file;
	c->account.client_cert = c->client_cert;
	c->account.folders = NULL;
	*ret_client = c;
	return 0;
}

struct imap_client *imap_client_free(struct imap_client *c)
{
	if (!c)
		return NULL;
	if (c->dispatching > 0) {
		/* Called from one of our callbacks: finish the current
		 * dispatch first.  Nothing is called back from now on. */
		c->free_pending = true;
		c->cb.state = NULL;
		c->cb.untagged = NULL;
		return NULL;
	}
	c->free_pending = true;
	close_connection(c);
	c->state = IMAP_CLIENT_CLOSED;
	c->dispatching++;
	fail_all_commands(c, -CPMSYNC_E_CANCELED, "closed");
	c->dispatching--;
	c->timer = cpmsync_loop_source_remove(c->timer);
	if (c->addrs)
		freeaddrinfo(c->addrs);
	imap_parser_free(c->parser);
	imap_caps_free(&c->caps);
	imap_caps_free(&c->enabled_caps);
	imap_ns_map_free(&c->ns);
	rangeset_free(&c->user_set);
	buf_free(&c->out);
	if (c->password) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->password_reason);
	free(c->bye_text);
	free(c->name);
	free(c->host);
	free(c->user);
	free(c->ca_file);
	free(c->client_cert);
	free(c);
	return NULL;
}

enum imap_client_state imap_client_get_state(const struct imap_client *c)
{
	return c->state;
}

const struct imap_caps *imap_client_caps(const struct imap_client *c)
{
	return &c->caps;
}

bool imap_client_has(const struct imap_client *c, enum imap_cap cap)
{
	return imap_caps_has(&c->caps, cap);
}

bool imap_client_enabled(const struct imap_client *c, enum imap_cap cap)
{
	return imap_caps_has(&c->enabled_caps, cap);
}

const char *imap_client_error(const struct imap_client *c)
{
	return c->error;
}

uint64_t imap_client_last_activity(const struct imap_client *c)
{
	return c->last_read;
}

void imap_client_set_callbacks(struct imap_client *c, const struct imap_client_callbacks *callbacks,
			       void *userdata)
{
	c->cb = callbacks ? *callbacks : (struct imap_client_callbacks){ 0 };
	c->userdata = userdata;
}

bool *imap_client_user_mark(struct imap_client *c)
{
	return &c->user_mark;
}

struct rangeset *imap_client_user_set(struct imap_client *c)
{
	return &c->user_set;
}

void imap_client_traffic(const struct imap_client *c, uint64_t *ret_in, uint64_t *ret_out)
{
	if (ret_in)
		*ret_in = c->bytes_in;
	if (ret_out)
		*ret_out = c->bytes_out;
}

void imap_client_set_delimiter(struct imap_client *c, char delimiter)
{
	c->delimiter = delimiter;
}

char imap_client_delimiter(const struct imap_client *c)
{
	return c->delimiter;
}

void imap_client_set_show_other_namespaces(struct imap_client *c, bool show)
{
	c->ns.show_other = show;
}

const struct imap_ns_map *imap_client_namespace(const struct imap_client *c)
{
	return &c->ns;
}

int imap_client_mailbox_to_local(const struct imap_client *c, const char *name, size_t len,
				 char delimiter, struct buf *out)
{
	return imap_ns_to_local(&c->ns, name, len, delimiter, c->utf8_enabled, out);
}
