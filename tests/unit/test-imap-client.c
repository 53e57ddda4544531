/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The IMAP client against scripted peers on a socketpair: the failures a
 * real server will not produce on demand.  The happy paths run against
 * Dovecot in tests/integration.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/cpmsync.h>

#include "imap/imap-client.h"
#include "imap/sasl.h"
#include "testlib.h"
#include "util/loop-stall.h"

#define PASSWORD "s3cret-pw"

struct ctx {
	struct test_env env; /* the loop and the scripted peer (ctx_start) */
	struct cpmsync_loop *loop;
	struct imap_client *client;
	bool state_called;
	int state_r;
	char reason[512];
	bool ready;
	int n_done;
	int results[8];
	char texts[8][256];
	bool all_done;
	int want_done;
	char untagged[512];
	unsigned n_untagged;
	/* test_read_yields: a deferred call queued at the first untagged
	 * response, and how many had come when it ran */
	bool defer_on_first, deferred;
	unsigned at_deferred;
};

/* Set by a test: the password is "not ready yet" (-EINPROGRESS). */
static bool password_pending;
static unsigned password_calls;

static int password_cb(const struct cpmsync_account *a, char **ret, void *ud)
{
	password_calls++;
	if (password_pending)
		return -EINPROGRESS;
	/* The account given at imap_client_new() time was a local that is
	 * gone by now: the client must pass its own copy. */
	ck_assert_str_eq(a->user, "alice");
	ck_assert_str_eq(a->host, "localhost");
	(void)ud;
	*ret = strdup(PASSWORD);
	return *ret ? 0 : -ENOMEM;
}

/* Set by a test: account() gives password_reason_cb too, which fails
 * with -EACCES and this reason. */
static const char *password_refusal;

static int password_reason_cb(const struct cpmsync_account *a, char **ret, char **ret_reason,
			      void *ud)
{
	if (!password_refusal)
		return password_cb(a, ret, ud);
	password_calls++;
	ck_assert_ptr_null(*ret_reason);
	*ret_reason = strdup(password_refusal);
	return -EACCES;
}

static void state_cb(struct imap_client *client, int r, const char *reason, void *userdata)
{
	struct ctx *ctx = userdata;

	(void)client;
	ctx->state_called = true;
	ctx->state_r = r;
	if (r == 0 && !reason)
		ctx->ready = true;
	snprintf(ctx->reason, sizeof(ctx->reason), "%s", reason ? reason : "");
}

static void note_deferred(struct cpmsync_loop_source *src, void *userdata)
{
	struct ctx *ctx = userdata;

	(void)src;
	ctx->deferred = true;
	ctx->at_deferred = ctx->n_untagged;
}

static void untagged_cb(struct imap_client *client, const struct imap_response *resp,
			void *userdata)
{
	struct ctx *ctx = userdata;
	size_t n = strlen(ctx->untagged);

	(void)client;
	if (++ctx->n_untagged == 1 && ctx->defer_on_first)
		ck_assert_int_eq(cpmsync_loop_defer(ctx->loop, note_deferred, ctx, NULL, NULL), 0);
	snprintf(ctx->untagged + n, sizeof(ctx->untagged) - n, "%s;",
		 resp->name ? resp->name : resp->text);
}

static void cmd_cb(struct imap_client *client, const struct imap_cmd_result *res, void *userdata)
{
	struct ctx *ctx = userdata;

	(void)client;
	if (ctx->n_done < 8) {
		ctx->results[ctx->n_done] = res->r;
		snprintf(ctx->texts[ctx->n_done], 256, "%s", res->text);
	}
	ctx->n_done++;
	ctx->all_done = ctx->n_done >= ctx->want_done;
}

/* Waits for the n-th command callback from now on. */
static void want_done(struct ctx *ctx, int n)
{
	ctx->want_done = n;
	ctx->all_done = ctx->n_done >= n;
}

static struct cpmsync_account account(enum cpmsync_security sec)
{
	struct cpmsync_account a = {
		.name = "test",
		.host = "localhost",
		.user = "alice",
		.security = sec,
		.password_cb = password_cb,
		.connect_timeout_ms = 2000,
		.command_timeout_ms = 2000,
	};
	if (password_refusal)
		a.password_reason_cb = password_reason_cb;
	return a;
}

static void ctx_start(struct ctx *ctx, const struct script_step *script, enum cpmsync_security sec,
		      unsigned timeout_ms)
{
	struct imap_client_callbacks cb = {
		.state = state_cb,
		.untagged = untagged_cb,
	};
	struct cpmsync_account a = account(sec);

	memset(ctx, 0, sizeof(*ctx));
	if (timeout_ms)
		a.connect_timeout_ms = a.command_timeout_ms = timeout_ms;
	test_env_start(&ctx->env, script, 0);
	ctx->loop = ctx->env.loop;
	ck_assert_int_eq(imap_client_new(ctx->loop, &a, &cb, ctx, &ctx->client), 0);
	ck_assert_int_eq(imap_client_connect_fd(ctx->client, ctx->env.peer.fd), 0);
}

static void ctx_end(struct ctx *ctx)
{
	imap_client_free(ctx->client);
	test_env_end(&ctx->env);
}

#define GREETING "* OK [CAPABILITY IMAP4rev1 LITERAL+ ENABLE QRESYNC IDLE] ready\r\n"
#define LOGIN_OK                                                                                   \
	{ SCRIPT_SEND, GREETING }, { SCRIPT_EXPECT, "a1 LOGIN alice " },                           \
		{ SCRIPT_SEND,                                                                     \
		  "a1 OK [CAPABILITY IMAP4rev1 LITERAL+ ENABLE QRESYNC IDLE] in\r\n" },            \
		{ SCRIPT_EXPECT, "a2 ENABLE QRESYNC" },                                            \
	{                                                                                          \
		SCRIPT_SEND, "* ENABLED QRESYNC\r\na2 OK enabled\r\n"                              \
	}

START_TEST(test_login_enable_and_pipelining)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 NOOP" },
		{ SCRIPT_EXPECT, "a4 SELECT INBOX" },
		{ SCRIPT_EXPECT, "a5 STATUS \"a b\" (UIDNEXT)" },
		{ SCRIPT_SEND, "* 3 EXISTS\r\na3 OK done\r\na4 NO [NONEXISTENT] no\r\n"
			       "* STATUS \"a b\" (UIDNEXT 4)\r\na5 OK done\r\n" },
		{ SCRIPT_EXPECT, "a6 LOGOUT" },
		{ SCRIPT_SEND, "* BYE bye\r\na6 OK bye\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	struct imap_cmd *cmd;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	ck_assert(imap_client_enabled(ctx.client, IMAP_CAP_QRESYNC));
	ck_assert(imap_client_has(ctx.client, IMAP_CAP_IDLE));

	/* Three commands go out before any answer (pipelining). */
	want_done(&ctx, 3);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ck_assert_int_eq(imap_cmd_new(ctx.client, 0, cmd_cb, &ctx, &cmd), 0);
	imap_cmd_add(cmd, "SELECT ");
	imap_cmd_add_mailbox(cmd, "INBOX");
	ck_assert_int_gt(imap_cmd_submit(cmd), 0);
	ck_assert_int_eq(imap_cmd_new(ctx.client, 0, cmd_cb, &ctx, &cmd), 0);
	imap_cmd_add(cmd, "STATUS ");
	imap_cmd_add_mailbox(cmd, "a b");
	imap_cmd_add(cmd, " (UIDNEXT)");
	ck_assert_int_gt(imap_cmd_submit(cmd), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], 0);
	ck_assert_int_eq(ctx.results[1], -CPMSYNC_E_SERVER);
	ck_assert_str_eq(ctx.texts[1], "no");
	ck_assert_int_eq(ctx.results[2], 0);
	ck_assert_ptr_nonnull(strstr(ctx.untagged, "EXISTS;"));
	ck_assert_ptr_nonnull(strstr(ctx.untagged, "STATUS;"));

	ctx.state_called = false;
	imap_client_logout(ctx.client);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.state_called, 3000));
	ck_assert_int_eq(ctx.state_r, 0);
	ck_assert_int_eq(imap_client_get_state(ctx.client), IMAP_CLIENT_CLOSED);
	ctx_end(&ctx);
}
END_TEST

/* NAMESPACE (RFC 2342): asked after ENABLE when offered, before READY; the
 * commands then name mailboxes under the personal prefix. */
#define NS_CAPS "IMAP4rev1 ENABLE QRESYNC NAMESPACE"
START_TEST(test_namespace_after_login)
{
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY " NS_CAPS "] ready\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY " NS_CAPS "] in\r\n" },
		{ SCRIPT_EXPECT, "a2 ENABLE QRESYNC" },
		{ SCRIPT_SEND, "* ENABLED QRESYNC\r\na2 OK enabled\r\n" },
		{ SCRIPT_EXPECT, "a3 NAMESPACE" },
		{ SCRIPT_SEND, "* NAMESPACE ((\"INBOX.\" \".\")) ((\"user.\" \".\")) "
			       "((\"\" \".\"))\r\na3 OK done\r\n" },
		{ SCRIPT_EXPECT, "a4 CREATE INBOX.TopLevel" },
		{ SCRIPT_EXPECT, "a5 SELECT INBOX" },
		{ SCRIPT_SEND, "a4 OK made\r\na5 OK sel\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	struct imap_cmd *cmd;
	struct buf name = BUF_INIT(256);

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	ck_assert(imap_client_namespace(ctx.client)->known);
	ck_assert_str_eq(imap_ns_map_personal_prefix(imap_client_namespace(ctx.client)), "INBOX.");
	ck_assert_int_eq(
		imap_client_mailbox_to_local(ctx.client, "INBOX.Work.Sync", 15, '.', &name), 0);
	ck_assert_str_eq(name.data, "Work/Sync");
	ck_assert_int_eq(imap_client_mailbox_to_local(ctx.client, "user.bob", 8, '.', &name),
			 -ENOENT);
	buf_free(&name);
	want_done(&ctx, 2);
	ck_assert_int_eq(imap_cmd_new(ctx.client, 0, cmd_cb, &ctx, &cmd), 0);
	imap_cmd_add(cmd, "CREATE ");
	imap_cmd_add_mailbox(cmd, "TopLevel");
	ck_assert_int_gt(imap_cmd_submit(cmd), 0);
	ck_assert_int_eq(imap_cmd_new(ctx.client, 0, cmd_cb, &ctx, &cmd), 0);
	imap_cmd_add(cmd, "SELECT ");
	imap_cmd_add_mailbox(cmd, "INBOX");
	ck_assert_int_gt(imap_cmd_submit(cmd), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], 0);
	ck_assert_int_eq(ctx.results[1], 0);
	ctx_end(&ctx);
}
END_TEST

/* A NAMESPACE answer we cannot use fails the connection, with the reason. */
START_TEST(test_namespace_bad_answers)
{
	static const char *const answers[] = {
		"* NAMESPACE NIL NIL NIL\r\na3 OK done\r\n",
		"* NAMESPACE ((\"\" \"ab\")) NIL NIL\r\na3 OK done\r\n",
		"a3 OK but nothing\r\n",
		"a3 NO not today\r\n",
	};
	static const char *const reasons[] = {
		"malformed NAMESPACE response: no personal namespace",
		"malformed NAMESPACE response: its syntax",
		"no NAMESPACE response to NAMESPACE",
		"not today",
	};

	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		const struct script_step script[] = {
			{ SCRIPT_SEND, "* OK [CAPABILITY " NS_CAPS "] ready\r\n" },
			{ SCRIPT_EXPECT, "a1 LOGIN alice " },
			{ SCRIPT_SEND, "a1 OK [CAPABILITY " NS_CAPS "] in\r\n" },
			{ SCRIPT_EXPECT, "a2 ENABLE QRESYNC" },
			{ SCRIPT_SEND, "a2 OK enabled\r\n" },
			{ SCRIPT_EXPECT, "a3 NAMESPACE" },
			{ SCRIPT_SEND, answers[i] },
			{ SCRIPT_STALL, NULL },
			{ SCRIPT_END, NULL },
		};
		struct ctx ctx;

		ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
		ck_assert(test_loop_run_until(ctx.loop, &ctx.state_called, 3000));
		ck_assert(!ctx.ready);
		ck_assert_int_lt(ctx.state_r, 0);
		ck_assert_msg(strstr(ctx.reason, reasons[i]), "%zu: %s", i, ctx.reason);
		ctx_end(&ctx);
	}
}
END_TEST

START_TEST(test_bye_mid_command)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 NOOP" },
		{ SCRIPT_SEND, "* BYE [UNAVAILABLE] server shutting down\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	want_done(&ctx, 1);
	ctx.state_called = false;
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], -CPMSYNC_E_BYE);
	ck_assert_ptr_nonnull(strstr(ctx.texts[0], "server shutting down"));
	ck_assert(ctx.state_called);
	ck_assert_int_eq(ctx.state_r, -CPMSYNC_E_BYE);
	ck_assert_int_eq(imap_client_get_state(ctx.client), IMAP_CLIENT_DISCONNECTED);
	ctx_end(&ctx);
}
END_TEST

START_TEST(test_disconnect_with_commands_in_flight)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 NOOP" },
		{ SCRIPT_EXPECT, "a4 NOOP" },
		{ SCRIPT_SEND, "a3 OK done\r\n* 1 FETCH (UID 7 FLAGS (\\Seen" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	want_done(&ctx, 3);
	ctx.state_called = false;
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.state_called, 3000));
	/* The first was answered; the second was in flight when the
	 * connection went, mid-response. */
	ck_assert_int_eq(ctx.n_done, 2);
	ck_assert_int_eq(ctx.results[0], 0);
	ck_assert_int_eq(ctx.results[1], -CPMSYNC_E_DISCONNECTED);
	ck_assert_int_eq(ctx.state_r, -CPMSYNC_E_DISCONNECTED);
	/* Nothing can be queued on a dead connection. */
	ck_assert_int_lt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ctx_end(&ctx);
}
END_TEST

START_TEST(test_server_never_greets)
{
	static const struct script_step script[] = {
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 300);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.state_called, 3000));
	ck_assert_int_eq(ctx.state_r, -ETIMEDOUT);
	ck_assert_str_eq(ctx.reason, "no greeting from the server within 300 ms");
	ctx_end(&ctx);
}
END_TEST

static uint64_t mono_ms(void);

/*
 * A NOOP the server never answers, and 600 ms on (of a 1 s command
 * timeout) another command: the connection is taken for dead 1 s after
 * the NOOP, not 1 s after the later command.  Before, each command sent
 * restarted the silence deadline: a stalled connection with a NOOP out
 * went on 110 s instead of 60 when a D-Bus call sent one more 50 s on
 * (the flap tester).  Measured from the second command: about 400 ms;
 * with the old rule 1,000 (the bound, 800, leaves 400 either way).
 */
START_TEST(test_silence_counts_from_the_oldest_command)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	uint64_t second, end;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 1000);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	want_done(&ctx, 2);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	end = mono_ms() + 600;
	while (mono_ms() < end)
		cpmsync_loop_iterate(ctx.loop, (int)(end - mono_ms()));
	ck_assert_int_eq(ctx.n_done, 0);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "CHECK"), 0);
	second = mono_ms();
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	end = mono_ms();
	ck_assert_int_eq(ctx.results[0], -ETIMEDOUT);
	ck_assert_int_eq(ctx.state_r, -ETIMEDOUT);
	ck_assert_str_eq(ctx.reason, "the server did not answer within 1 s");
	ck_assert_msg(end - second < 800, "dead %llu ms after the second command",
		      (unsigned long long)(end - second));
	ctx_end(&ctx);
}
END_TEST

START_TEST(test_server_stops_answering)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 300);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	want_done(&ctx, 1);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], -ETIMEDOUT);
	ck_assert_int_eq(ctx.state_r, -ETIMEDOUT);
	/* sub-second: the milliseconds, not "within 0 s" */
	ck_assert_str_eq(ctx.reason, "the server did not answer within 300 ms");
	ctx_end(&ctx);
}
END_TEST

/*
 * Connections that must fail before or at login, each with the error and a
 * word of the reason; the peer checks that nothing more was sent.
 */
static const struct script_step starttls_missing[] = {
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n" },
	{ SCRIPT_EXPECT_EOF, NULL },
	{ SCRIPT_END, NULL },
};
static const struct script_step starttls_dropped[] = {
	/* No list in the greeting; CAPABILITY lacks STARTTLS. */
	{ SCRIPT_SEND, "* OK hi\r\n" },
	{ SCRIPT_EXPECT, "a1 CAPABILITY" },
	{ SCRIPT_SEND, "* CAPABILITY IMAP4rev1 LOGIN-REFERRALS\r\na1 OK\r\n" },
	{ SCRIPT_EXPECT_EOF, NULL },
	{ SCRIPT_END, NULL },
};
static const struct script_step preauth[] = {
	{ SCRIPT_SEND, "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] welcome\r\n" },
	{ SCRIPT_EXPECT_EOF, NULL },
	{ SCRIPT_END, NULL },
};
static const struct script_step starttls_refused[] = {
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n" },
	{ SCRIPT_EXPECT, "a1 STARTTLS" },
	{ SCRIPT_SEND, "a1 NO not now\r\n" },
	{ SCRIPT_EXPECT_EOF, NULL },
	{ SCRIPT_END, NULL },
};
static const struct script_step starttls_injection[] = {
	/* Plain text after the OK would be read as if it came over TLS. */
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n" },
	{ SCRIPT_EXPECT, "a1 STARTTLS" },
	{ SCRIPT_SEND, "a1 OK go\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] x\r\n" },
	{ SCRIPT_EXPECT_EOF, NULL },
	{ SCRIPT_END, NULL },
};
static const struct script_step login_refused[] = {
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1] hi\r\n" },
	{ SCRIPT_EXPECT, "a1 LOGIN alice" },
	{ SCRIPT_SEND, "a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n" },
	{ SCRIPT_EXPECT_EOF, NULL },
	{ SCRIPT_END, NULL },
};
/* A login answered with line, then the client must hang up. */
#define LOGIN_ANSWERED(name, line)                                                                 \
	static const struct script_step name[] = {                                                 \
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1] hi\r\n" },                             \
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },                                               \
		{ SCRIPT_SEND, line },                                                             \
		{ SCRIPT_EXPECT_EOF, NULL },                                                       \
		{ SCRIPT_END, NULL },                                                              \
	}
LOGIN_ANSWERED(login_limit, "a1 NO [LIMIT] Maximum number of connections from user+IP exceeded "
			    "(mail_max_userip_connections=1)\r\n");
LOGIN_ANSWERED(login_unavailable, "a1 NO [UNAVAILABLE] Temporary authentication failure.\r\n");
LOGIN_ANSWERED(login_inuse, "a1 NO [INUSE] Mailbox is locked\r\n");
LOGIN_ANSWERED(login_serverbug, "a1 no [serverbug] Internal error occurred\r\n");
LOGIN_ANSWERED(login_expired, "a1 NO [EXPIRED] Password expired\r\n");
LOGIN_ANSWERED(login_authz, "a1 NO [AUTHORIZATIONFAILED] Not allowed\r\n");
LOGIN_ANSWERED(login_contactadmin, "a1 NO [CONTACTADMIN] Call the help desk\r\n");
LOGIN_ANSWERED(login_no_code, "a1 NO Login failed\r\n");
LOGIN_ANSWERED(login_bad_limit, "a1 BAD [LIMIT] Line too long\r\n");
static const struct script_step plain_unavailable[] = {
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] hi\r\n" },
	{ SCRIPT_EXPECT, "a1 AUTHENTICATE PLAIN" },
	{ SCRIPT_SEND, "a1 NO [UNAVAILABLE] Authentication service down\r\n" },
	{ SCRIPT_EXPECT_EOF, NULL },
	{ SCRIPT_END, NULL },
};
static const struct script_step no_mechanism[] = {
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=GSSAPI] hi\r\n" },
	{ SCRIPT_EXPECT_EOF, NULL },
	{ SCRIPT_END, NULL },
};
static const struct script_step greeting_bye[] = {
	{ SCRIPT_SEND, "* BYE [UNAVAILABLE] too many connections\r\n" },
	{ SCRIPT_CLOSE, NULL },
	{ SCRIPT_END, NULL },
};
static const struct script_step huge_literal[] = {
	{ SCRIPT_SEND, "* OK hi\r\n" },
	{ SCRIPT_EXPECT, "a1 CAPABILITY" },
	{ SCRIPT_SEND, "* CAPABILITY IMAP4rev1 {18446744073709551615}\r\n" },
	{ SCRIPT_EXPECT_EOF, NULL },
	{ SCRIPT_END, NULL },
};

static const struct {
	const char *what;
	const struct script_step *script;
	enum cpmsync_security security;
	int r;
	const char *reason;
} failing[] = {
	{ "STARTTLS not offered", starttls_missing, CPMSYNC_SECURITY_STARTTLS, -CPMSYNC_E_STARTTLS,
	  "does not offer STARTTLS" },
	{ "STARTTLS dropped from CAPABILITY", starttls_dropped, CPMSYNC_SECURITY_STARTTLS,
	  -CPMSYNC_E_STARTTLS, "STARTTLS" },
	{ "PREAUTH with starttls", preauth, CPMSYNC_SECURITY_STARTTLS, -CPMSYNC_E_STARTTLS,
	  "PREAUTH" },
	{ "STARTTLS refused", starttls_refused, CPMSYNC_SECURITY_STARTTLS, -CPMSYNC_E_STARTTLS,
	  "not now" },
	{ "data injected after STARTTLS", starttls_injection, CPMSYNC_SECURITY_STARTTLS,
	  -CPMSYNC_E_STARTTLS, "after accepting STARTTLS" },
	{ "login refused", login_refused, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_AUTH,
	  "Authentication failed." },
	/* RFC 5530: "not now" is retried (-CPMSYNC_E_SERVER), not a wrong password. */
	{ "login [LIMIT]", login_limit, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_SERVER,
	  "the server refused the login for now: [LIMIT] Maximum number of connections from "
	  "user+IP exceeded (mail_max_userip_connections=1)" },
	{ "login [UNAVAILABLE]", login_unavailable, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_SERVER,
	  "the server refused the login for now: [UNAVAILABLE] Temporary" },
	{ "login [INUSE]", login_inuse, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_SERVER,
	  "the server refused the login for now: [INUSE]" },
	{ "login [serverbug]", login_serverbug, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_SERVER,
	  "the server refused the login for now: [serverbug]" },
	{ "AUTHENTICATE PLAIN [UNAVAILABLE]", plain_unavailable, CPMSYNC_SECURITY_NONE,
	  -CPMSYNC_E_SERVER, "the server refused the login for now: [UNAVAILABLE]" },
	/* The credentials or the user must change: stop. */
	{ "login [EXPIRED]", login_expired, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_AUTH,
	  "authentication failed: Password expired" },
	{ "login [AUTHORIZATIONFAILED]", login_authz, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_AUTH,
	  "authentication failed: Not allowed" },
	{ "login [CONTACTADMIN]", login_contactadmin, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_AUTH,
	  "authentication failed: Call the help desk" },
	{ "login NO without a code", login_no_code, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_AUTH,
	  "authentication failed: Login failed" },
	{ "login BAD [LIMIT]", login_bad_limit, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_AUTH,
	  "authentication failed: Line too long" },
	{ "no usable mechanism", no_mechanism, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_AUTH,
	  "no authentication mechanism" },
	{ "BYE as greeting", greeting_bye, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_BYE,
	  "too many connections" },
	{ "literal of 2^64-1 bytes", huge_literal, CPMSYNC_SECURITY_NONE, -CPMSYNC_E_PROTOCOL,
	  "literal" },
};

START_TEST(test_connection_refused_cases)
{
	struct ctx ctx;

	ctx_start(&ctx, failing[_i].script, failing[_i].security, 0);
	ck_assert_msg(test_loop_run_until(ctx.loop, &ctx.state_called, 3000), "%s: no outcome",
		      failing[_i].what);
	ck_assert_msg(!ctx.ready, "%s: became ready", failing[_i].what);
	ck_assert_msg(ctx.state_r == failing[_i].r, "%s: r=%d, want %d (%s)", failing[_i].what,
		      ctx.state_r, failing[_i].r, ctx.reason);
	ck_assert_msg(strstr(ctx.reason, failing[_i].reason), "%s: reason '%s'", failing[_i].what,
		      ctx.reason);
	ck_assert_ptr_null(strstr(ctx.reason, PASSWORD));
	ctx_end(&ctx);
}
END_TEST

/*
 * The host gets the password without blocking (issue 13): password_cb says
 * -EINPROGRESS, the connection waits with nothing sent, and goes on when
 * imap_client_password_ready() is called.
 */
START_TEST(test_password_pending)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	bool never = false;

	password_pending = true;
	password_calls = 0;
	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 500);
	/* Longer than the command timeout: waiting is not a silent server. */
	test_loop_run_until(ctx.loop, &never, 800);
	ck_assert(!ctx.ready);
	ck_assert_msg(!ctx.state_called, "state %d: %s", ctx.state_r, ctx.reason);
	ck_assert_uint_eq(password_calls, 1);
	ck_assert_int_eq(imap_client_get_state(ctx.client), IMAP_CLIENT_AUTHENTICATING);
	/* Ready: asked again, and the login goes out. */
	password_pending = false;
	imap_client_password_ready(ctx.client);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	ck_assert_uint_eq(password_calls, 2);
	/* Not waiting any more: nothing happens. */
	imap_client_password_ready(ctx.client);
	ck_assert_uint_eq(password_calls, 2);
	ctx_end(&ctx);
}
END_TEST

/*
 * The host says why it has no password (password_reason_cb, asked instead
 * of password_cb): that is the error, not the errno's text ("Permission
 * denied" said nothing of the password file's mode).
 */
START_TEST(test_password_refused_with_reason)
{
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1] hi\r\n" },
		{ SCRIPT_EXPECT_EOF, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	password_refusal = "password file '/p/pw' is readable by group or others (mode 0644); "
			   "chmod 600 it";
	password_calls = 0;
	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.state_called, 3000));
	password_refusal = NULL;
	ck_assert(!ctx.ready);
	ck_assert_int_eq(ctx.state_r, -CPMSYNC_E_AUTH);
	ck_assert_uint_eq(password_calls, 1);
	ck_assert_str_eq(ctx.reason,
			 "cannot get the password: password file '/p/pw' is readable by "
			 "group or others (mode 0644); chmod 600 it");
	ctx_end(&ctx);
}
END_TEST

START_TEST(test_authenticate_plain_without_sasl_ir)
{
	/* "\0alice\0s3cret-pw" in base64 */
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 AUTHENTICATE PLAIN" },
		{ SCRIPT_SEND, "+ \r\n" },
		{ SCRIPT_EXPECT, "AGFsaWNlAHMzY3JldC1wdw==" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 NOOP" },
		{ SCRIPT_SEND, "a2 OK\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	want_done(&ctx, 1);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], 0);
	ctx_end(&ctx);
}
END_TEST

START_TEST(test_synchronizing_literal_waits_for_continuation)
{
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 APPEND INBOX {5}" },
		{ SCRIPT_SEND, "+ go ahead\r\n" },
		{ SCRIPT_EXPECT, "hello" },
		{ SCRIPT_SEND, "a2 OK [APPENDUID 1 9] done\r\n" },
		{ SCRIPT_EXPECT, "a3 SELECT" },
		{ SCRIPT_SEND, "a3 NO [TRYCREATE] missing\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	struct imap_cmd *cmd;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	want_done(&ctx, 2);
	ck_assert_int_eq(imap_cmd_new(ctx.client, 0, cmd_cb, &ctx, &cmd), 0);
	imap_cmd_add(cmd, "APPEND INBOX ");
	imap_cmd_add_literal(cmd, "hello", 5, false);
	ck_assert_int_gt(imap_cmd_submit(cmd), 0);
	/* Queued behind the literal: must not be sent before "+". */
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "SELECT x"), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], 0);
	ck_assert_int_eq(ctx.results[1], -CPMSYNC_E_SERVER);
	ctx_end(&ctx);
}
END_TEST

/*
 * A 4 MiB APPEND: once it is sent, the client gives back the memory that
 * held it on its way out (its output buffer kept the allocation for the
 * connection's life: 130 MB of a daemon's RSS after a 40 MB message).
 * Measured as the heap bytes in use (mallinfo2), which the peer, another
 * process, does not touch.
 */
START_TEST(test_large_append_memory_given_back)
{
	enum { SIZE = 4 << 20 };
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1 LITERAL+] in\r\n" },
		{ SCRIPT_EXPECT, "a2 APPEND INBOX {4194304+}" },
		{ SCRIPT_SKIP, "4194306" }, /* the literal and the command's CRLF */
		{ SCRIPT_SEND, "a2 OK [APPENDUID 1 9] done\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	struct imap_cmd *cmd;
	size_t before, after;
	char *data;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	data = malloc(SIZE);
	ck_assert_ptr_nonnull(data);
	memset(data, 'x', SIZE);
	before = mallinfo2().uordblks + mallinfo2().hblkhd;
	want_done(&ctx, 1);
	ck_assert_int_eq(imap_cmd_new(ctx.client, 0, cmd_cb, &ctx, &cmd), 0);
	imap_cmd_add(cmd, "APPEND INBOX ");
	imap_cmd_add_literal(cmd, data, SIZE, false);
	ck_assert_int_gt(imap_cmd_submit(cmd), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 10000));
	ck_assert_int_eq(ctx.results[0], 0);
	after = mallinfo2().uordblks + mallinfo2().hblkhd;
	ck_assert_msg(after < before + (1u << 20), "%zu bytes more in use after the APPEND",
		      after - before);
	free(data);
	ctx_end(&ctx);
}
END_TEST

/*
 * 12,500 untagged responses (150 KB, three reads) all waiting in
 * the socket: the client reads them for imap_read_budget_ms (0 here: one
 * read) and then lets the loop's other sources run before it goes on.  A
 * deferred call queued at the first response runs before the last one is
 * read.  Before, read_input() read until the socket was empty: a sync of
 * a large folder kept the loop for seconds, and D-Bus calls waited up to
 * 2.7 s.
 */
START_TEST(test_read_yields)
{
	enum { N = 12500 };
	static char burst[N * 12 + 64];
	const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 NOOP" },
		/* nothing until the client has stopped looking (usleep below) */
		{ SCRIPT_SLEEP, "300" },
		{ SCRIPT_SEND, burst },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	size_t n = 0;

	for (int i = 0; i < N; i++)
		n += (size_t)snprintf(burst + n, sizeof(burst) - n, "* 5 EXISTS\r\n");
	snprintf(burst + n, sizeof(burst) - n, "a3 OK noop\r\n");
	imap_read_budget_ms = 0;
	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	ctx.n_untagged = 0;
	ctx.defer_on_first = true;
	want_done(&ctx, 1);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	/* The NOOP goes out; the whole answer is in the socket before the
	 * client reads any of it (the peer waits 300 ms, the client 700).
	 * (Were the client late enough to read some of it first, it would
	 * still yield between reads: the checks below hold either way.) */
	cpmsync_loop_iterate(ctx.loop, 0);
	usleep(700 * 1000);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 5000));
	imap_read_budget_ms = IMAP_READ_BUDGET_MS;
	ck_assert_int_eq(ctx.results[0], 0);
	ck_assert_uint_eq(ctx.n_untagged, N);
	ck_assert(ctx.deferred);
	ck_assert_msg(ctx.at_deferred < N, "the deferred call ran only after all %u responses",
		      ctx.at_deferred);
	ctx_end(&ctx);
}
END_TEST

static int idle_cont(struct imap_client *client, const char *text, char **ret_line, void *userdata)
{
	(void)client;
	(void)text;
	(void)userdata;
	*ret_line = NULL;
	return 0;
}

START_TEST(test_cancel_queued_and_running)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 IDLE" },
		{ SCRIPT_SEND, "+ idling\r\n" },
		{ SCRIPT_EXPECT, "DONE" },
		{ SCRIPT_SEND, "a3 OK idle done\r\n" },
		{ SCRIPT_EXPECT, "a4 NOOP" },
		{ SCRIPT_SEND, "a4 OK\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	int64_t idle, queued;
	struct imap_cmd *cmd;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	ck_assert_int_eq(
		imap_cmd_new(ctx.client, IMAP_CMD_EXCLUSIVE | IMAP_CMD_IDLE, cmd_cb, &ctx, &cmd),
		0);
	imap_cmd_add(cmd, "IDLE");
	imap_cmd_set_continuation(cmd, idle_cont);
	idle = imap_cmd_submit(cmd);
	ck_assert_int_gt(idle, 0);
	/* Waits behind the exclusive IDLE; cancelled before it is sent. */
	queued = imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "CHECK");
	ck_assert_int_gt(queued, 0);
	ck_assert_int_eq(imap_client_cancel(ctx.client, queued), 0);
	ck_assert_int_eq(ctx.n_done, 0); /* reported from the loop */
	want_done(&ctx, 1);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], -CPMSYNC_E_CANCELED);
	ck_assert_msg(imap_client_get_state(ctx.client) == IMAP_CLIENT_READY, "state %d: %s",
		      imap_client_get_state(ctx.client), ctx.reason);
	ck_assert_int_eq(imap_client_send_line(ctx.client, "DONE"), 0);
	want_done(&ctx, 2);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[1], 0);
	want_done(&ctx, 3);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[2], 0);
	ctx_end(&ctx);
}
END_TEST

START_TEST(test_end_idle_pipelines)
{
	/* A command queued during IDLE waits behind it (the peer expects
	 * DONE first); imap_client_end_idle() sends DONE and that command
	 * right behind it, before the IDLE's tagged answer (the peer reads
	 * both lines before answering anything). */
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 IDLE" },
		{ SCRIPT_SEND, "+ idling\r\n" },
		{ SCRIPT_EXPECT, "DONE" },
		{ SCRIPT_EXPECT, "a4 NOOP" },
		{ SCRIPT_SEND, "* 4 EXISTS\r\na3 OK idle done\r\na4 OK noop\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	int64_t idle, noop;
	int r;
	struct imap_cmd *cmd;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	ck_assert_int_eq(
		imap_cmd_new(ctx.client, IMAP_CMD_EXCLUSIVE | IMAP_CMD_IDLE, cmd_cb, &ctx, &cmd),
		0);
	imap_cmd_add(cmd, "IDLE");
	imap_cmd_set_continuation(cmd, idle_cont);
	idle = imap_cmd_submit(cmd);
	ck_assert_int_gt(idle, 0);
	/* Before the "+": nothing to end. */
	ck_assert_int_eq(imap_client_end_idle(ctx.client, idle), -CPMSYNC_E_NOT_FOUND);
	noop = imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP");
	ck_assert_int_gt(noop, 0);
	/* Until the "+" came (at most 3 s). */
	for (int i = 0; (r = imap_client_end_idle(ctx.client, idle)) == -CPMSYNC_E_NOT_FOUND; i++) {
		ck_assert_int_lt(i, 30);
		ck_assert_int_ge(cpmsync_loop_iterate(ctx.loop, 100), 0);
	}
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(imap_client_end_idle(ctx.client, noop), -CPMSYNC_E_NOT_FOUND);
	want_done(&ctx, 2);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], 0);
	ck_assert_str_eq(ctx.texts[0], "idle done");
	ck_assert_int_eq(ctx.results[1], 0);
	ck_assert_str_eq(ctx.texts[1], "noop");
	ck_assert_str_eq(ctx.untagged, "ENABLED;EXISTS;");
	ctx_end(&ctx);
}
END_TEST

/*
 * Body literals larger than the message's announced RFC822.SIZE, than what
 * the command asked for (sync_bodies) or than the hard limit: the
 * connection is dropped as soon as the size is read, with a reason that
 * names the limit.  The peer never sends the payload, so an accepted
 * literal would leave the command waiting (and the test timing out).
 */
static const struct {
	const char *fetch;
	uint64_t max_literal;
	const char *reason;
} big_literals[] = {
	{ "* 1 FETCH (UID 7 RFC822.SIZE 100 BODY[] {20000000}\r\n", 0,
	  "the server sent a BODY[] literal of 20000000 bytes for message 1, more than the "
	  "RFC822.SIZE of 100 it announced: connection dropped" },
	{ "* 2 FETCH (UID 8 BODY[] {20000000}\r\n", 1024,
	  "the server sent a BODY[] literal of 20000000 bytes for message 2, more than the 1024 "
	  "bytes the command asked for: connection dropped" },
	{ "* 3 FETCH (UID 9 RFC822.SIZE 300000000 BINARY[1] {300000000}\r\n", 0,
	  "the server sent a BINARY[1] literal of 300000000 bytes for message 3, more than the "
	  "limit of 268435456 bytes: connection dropped" },
	{ "* 4 FETCH (UID 10 RFC822.SIZE 1000 BODY[HEADER] {5200}\r\n", 0,
	  "the server sent a BODY[HEADER] literal of 5200 bytes for message 4, more than the "
	  "RFC822.SIZE of 1000 it announced: connection dropped" },
	/* A whole header: its message's RFC822.SIZE bounds it (one of 2 MB
	 * fits a 3 MB message: a 40,000-address To:), else the header limit. */
	{ "* 5 FETCH (UID 11 RFC822.SIZE 1500000 BODY[HEADER] {2000000}\r\n", 0,
	  "the server sent a BODY[HEADER] literal of 2000000 bytes for message 5, more than the "
	  "RFC822.SIZE of 1500000 it announced: connection dropped" },
	{ "* 5 FETCH (UID 11 BODY[HEADER] {2000000}\r\n", 0,
	  "the server sent a BODY[HEADER] literal of 2000000 bytes for message 5, more than the "
	  "header limit of 1048576 bytes: connection dropped" },
	/* Other headers: the hard header limit, whatever RFC822.SIZE says (the
	 * old code took each of these up to 50 MB + slack). */
	{ "* 6 FETCH (UID 12 RFC822.SIZE 50000000 BODY[HEADER.FIELDS (To From)] {2000000}\r\n", 0,
	  "the server sent a BODY[HEADER.FIELDS (To From)] literal of 2000000 bytes for message 6, "
	  "more than the header limit of 1048576 bytes: connection dropped" },
	{ "* 7 FETCH (UID 13 RFC822.SIZE 50000000 BODY[2.1.MIME] {2000000}\r\n", 0,
	  "the server sent a BODY[2.1.MIME] literal of 2000000 bytes for message 7, more than the "
	  "header limit of 1048576 bytes: connection dropped" },
	{ "* 8 FETCH (UID 14 RFC822.HEADER {2000000}\r\n", 0,
	  "the server sent a RFC822.HEADER literal of 2000000 bytes for message 8, more than the "
	  "header limit of 1048576 bytes: connection dropped" },
	/* sync_bodies (the command's max_literal) bounds a header too. */
	{ "* 9 FETCH (UID 15 RFC822.SIZE 50000000 BODY[HEADER] {900000}\r\n", 100000,
	  "the server sent a BODY[HEADER] literal of 900000 bytes for message 9, more than the "
	  "100000 bytes the command asked for: connection dropped" },
};

/* The owner streams every literal it is offered, as the engine does with
 * bodies: only the client's caps stand in the way. */
static bool stream_begin(void *userdata, uint32_t number, const char *name, const char *item,
			 uint64_t size)
{
	(void)userdata;
	(void)number;
	(void)name;
	(void)item;
	(void)size;
	return true;
}

static int stream_data(void *userdata, const void *data, size_t len)
{
	(void)userdata;
	(void)data;
	(void)len;
	return 0;
}

static void streaming_owner(struct ctx *ctx)
{
	struct imap_client_callbacks cb = {
		.state = state_cb,
		.untagged = untagged_cb,
		.literals = { .literal_begin = stream_begin, .literal_data = stream_data },
	};

	imap_client_set_callbacks(ctx->client, &cb, ctx);
}

START_TEST(test_body_literal_caps)
{
	const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 UID FETCH 7:* (UID RFC822.SIZE BODY.PEEK[])" },
		{ SCRIPT_SEND, big_literals[_i].fetch },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct imap_cmd *cmd;
	struct ctx ctx;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	streaming_owner(&ctx);
	want_done(&ctx, 1);
	ck_assert_int_eq(imap_cmd_new(ctx.client, 0, cmd_cb, &ctx, &cmd), 0);
	ck_assert_int_eq(imap_cmd_add(cmd, "UID FETCH 7:* (UID RFC822.SIZE BODY.PEEK[])"), 0);
	imap_cmd_set_max_literal(cmd, big_literals[_i].max_literal);
	ck_assert_int_gt(imap_cmd_submit(cmd), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], -CPMSYNC_E_PROTOCOL);
	ck_assert_int_eq(ctx.state_r, -CPMSYNC_E_PROTOCOL);
	ck_assert_str_eq(ctx.reason, big_literals[_i].reason);
	ck_assert_int_eq(imap_client_get_state(ctx.client), IMAP_CLIENT_DISCONNECTED);
	ctx_end(&ctx);
}
END_TEST

/* Within the limits (the announced size plus slack, the command's limit)
 * the same literals pass. */
START_TEST(test_body_literal_within_caps)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 UID FETCH 7 (UID RFC822.SIZE BODY.PEEK[])" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 7 RFC822.SIZE 3 BODY[] {12}\r\nHello world!)\r\n"
			       "a3 OK done\r\n" },
		{ SCRIPT_EXPECT, "a4 UID FETCH 8 (BODY.PEEK[])" },
		{ SCRIPT_SEND, "* 2 FETCH (UID 8 BODY[] {5}\r\nHello)\r\na4 OK done\r\n" },
		{ SCRIPT_EXPECT, "a5 UID FETCH 9 (UID RFC822.SIZE BODY.PEEK[HEADER])" },
		{ SCRIPT_SEND,
		  "* 3 FETCH (UID 9 RFC822.SIZE 50000000 BODY[HEADER] {5}\r\nHello)\r\n"
		  "a5 OK done\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct imap_cmd *cmd;
	struct ctx ctx;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	streaming_owner(&ctx);
	want_done(&ctx, 3);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx,
					    "UID FETCH 7 (UID RFC822.SIZE BODY.PEEK[])"),
			 0);
	ck_assert_int_eq(imap_cmd_new(ctx.client, 0, cmd_cb, &ctx, &cmd), 0);
	ck_assert_int_eq(imap_cmd_add(cmd, "UID FETCH 8 (BODY.PEEK[])"), 0);
	imap_cmd_set_max_literal(cmd, 5);
	ck_assert_int_gt(imap_cmd_submit(cmd), 0);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx,
					    "UID FETCH 9 (UID RFC822.SIZE BODY.PEEK[HEADER])"),
			 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], 0);
	ck_assert_int_eq(ctx.results[1], 0);
	ck_assert_int_eq(ctx.results[2], 0);
	ck_assert_int_eq(imap_client_get_state(ctx.client), IMAP_CLIENT_READY);
	ctx_end(&ctx);
}
END_TEST

/*
 * A server that keeps answering, one byte every 150 ms, but never finishes:
 * the silence timeout (300 ms here) never fires, the command's total
 * deadline (IMAP_COMMAND_TOTAL_FACTOR times it: 3 s) does.  The peer would
 * finish after 6 s; it finds the connection closed and gives up, so its
 * exit status is not checked.
 */
#define TRICKLES 40

START_TEST(test_trickling_server_hits_total_deadline)
{
	struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 NOOP" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 X-TRICKLE \"" },
	};
	struct script_step all[sizeof(script) / sizeof(script[0]) + 2 * TRICKLES + 2];
	size_t n = sizeof(script) / sizeof(script[0]);
	struct ctx ctx;

	memcpy(all, script, sizeof(script));
	for (int i = 0; i < TRICKLES; i++) {
		all[n++] = (struct script_step){ SCRIPT_SLEEP, "150" };
		all[n++] = (struct script_step){ SCRIPT_SEND, "a" };
	}
	all[n++] = (struct script_step){ SCRIPT_SEND, "\")\r\na3 OK done\r\n" };
	all[n++] = (struct script_step){ SCRIPT_END, NULL };

	ctx_start(&ctx, all, CPMSYNC_SECURITY_NONE, 300);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	want_done(&ctx, 1);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 9000));
	ck_assert_int_eq(ctx.results[0], -ETIMEDOUT);
	ck_assert_int_eq(ctx.state_r, -ETIMEDOUT);
	ck_assert_str_eq(ctx.reason, "the server did not finish answering a3 within its total "
				     "limit of 3 s (it answers, but too slowly)");
	imap_client_free(ctx.client);
	cpmsync_loop_free(ctx.loop);
	script_peer_wait(&ctx.env.peer); /* cut off mid-trickle: its status says nothing */
}
END_TEST

/*
 * Server text that reaches the owner (a NO's text, a BYE's in the reason):
 * control and bidi characters come out escaped, so that cpm-syncd --check,
 * D-Bus LastError and the logs never carry them.
 */
START_TEST(test_server_text_escaped)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 NOOP" },
		{ SCRIPT_SEND, "a3 NO \x1b]0;owned\x07 \xe2\x80\xae"
			       "txt.exe\r\n" },
		{ SCRIPT_EXPECT, "a4 NOOP" },
		{ SCRIPT_SEND, "* BYE going \x1b[2J\xc2\x9b"
			       "1m\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	want_done(&ctx, 1);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], -CPMSYNC_E_SERVER);
	ck_assert_str_eq(ctx.texts[0], "\\x1b]0;owned\\x07 \\u202etxt.exe");
	want_done(&ctx, 2);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.state_r, -CPMSYNC_E_BYE);
	ck_assert_str_eq(ctx.reason, "the server closed the session: going \\x1b[2J\\u009b1m");
	ck_assert_str_eq(ctx.texts[1], ctx.reason);
	ctx_end(&ctx);
}
END_TEST

/*
 * Name resolution happens off the loop: a resolver that takes 500 ms (the
 * test's stand-in for a slow DNS server) must not delay imap_client_connect()
 * or a 50 ms timer, and the connection is made once it answers.
 */
static int resolver_done; /* set by the resolver thread */

static int slow_resolver(const char *host, const char *service, const struct addrinfo *hints,
			 struct addrinfo **res)
{
	struct timespec ts = { 0, 500 * 1000 * 1000 };
	int r;

	nanosleep(&ts, NULL);
	if (strcmp(host, "nx.test") == 0)
		r = EAI_NONAME;
	else
		r = getaddrinfo("127.0.0.1", service, hints, res);
	__atomic_store_n(&resolver_done, 1, __ATOMIC_RELEASE);
	return r;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct timer_seen {
	bool fired;
	int resolver_done_then;
};

static void timer_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct timer_seen *t = userdata;

	(void)src;
	t->fired = true;
	t->resolver_done_then = __atomic_load_n(&resolver_done, __ATOMIC_ACQUIRE);
}

static int listen_tcp(uint16_t *ret_port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*ret_port = ntohs(sin.sin_port);
	return fd;
}

START_TEST(test_resolve_off_loop)
{
	struct imap_client_callbacks cb = { .state = state_cb };
	struct cpmsync_account a = account(CPMSYNC_SECURITY_NONE);
	struct cpmsync_loop_source *timer = NULL;
	struct timer_seen seen = { 0 };
	struct ctx ctx = { 0 };
	uint64_t t0, spent;
	int lfd;

	lfd = listen_tcp(&a.port);
	a.host = "slow.test";
	resolver_done = 0;
	imap_client_set_resolver_for_test(slow_resolver);
	ck_assert_int_eq(cpmsync_loop_new(&ctx.loop), 0);
	ck_assert_int_eq(imap_client_new(ctx.loop, &a, &cb, &ctx, &ctx.client), 0);
	ck_assert_int_eq(cpmsync_loop_add_timer(ctx.loop, 50, 0, timer_cb, &seen, NULL, &timer), 0);
	t0 = mono_ms();
	ck_assert_int_eq(imap_client_connect(ctx.client), 0);
	spent = mono_ms() - t0;
	ck_assert_msg(spent < 200, "imap_client_connect() took %llu ms", (unsigned long long)spent);
	ck_assert(test_loop_run_until(ctx.loop, &seen.fired, 2000));
	ck_assert_int_eq(seen.resolver_done_then, 0); /* the timer ran during the lookup */
	for (int i = 0; i < 100 && imap_client_get_state(ctx.client) != IMAP_CLIENT_GREETING; i++)
		cpmsync_loop_iterate(ctx.loop, 20);
	ck_assert_str_eq(imap_client_state_name(imap_client_get_state(ctx.client)), "greeting");
	ck_assert_int_eq(resolver_done, 1);
	cpmsync_loop_source_remove(timer);
	imap_client_free(ctx.client);
	cpmsync_loop_free(ctx.loop);
	close(lfd);
	imap_client_set_resolver_for_test(NULL);
}
END_TEST

/* A name that does not resolve is reported through the state callback,
 * from the loop; a client freed during a lookup leaves nothing behind
 * (ASan: the thread's late answer touches only its own request). */
START_TEST(test_resolve_failure_and_free)
{
	struct imap_client_callbacks cb = { .state = state_cb };
	struct cpmsync_account a = account(CPMSYNC_SECURITY_NONE);
	struct ctx ctx = { 0 };
	bool never = false;

	a.host = "nx.test";
	imap_client_set_resolver_for_test(slow_resolver);
	ck_assert_int_eq(cpmsync_loop_new(&ctx.loop), 0);
	ck_assert_int_eq(imap_client_new(ctx.loop, &a, &cb, &ctx, &ctx.client), 0);
	ck_assert_int_eq(imap_client_connect(ctx.client), 0);
	ck_assert(!ctx.state_called);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.state_called, 3000));
	ck_assert_int_eq(ctx.state_r, -EHOSTUNREACH);
	ck_assert_str_eq(ctx.reason, "cannot resolve nx.test: Name or service not known");
	imap_client_free(ctx.client);

	a.host = "slow.test";
	a.port = 9;
	ck_assert_int_eq(imap_client_new(ctx.loop, &a, &cb, &ctx, &ctx.client), 0);
	ck_assert_int_eq(imap_client_connect(ctx.client), 0);
	imap_client_free(ctx.client);
	test_loop_run_until(ctx.loop, &never, 800);
	cpmsync_loop_free(ctx.loop);
	imap_client_set_resolver_for_test(NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/*
 * SCRAM's PBKDF2 off the loop (issue 13).  The client nonce is fixed, so the
 * scripted server knows client-final: password s3cret-pw, salt
 * QSXCR+Q6sek8bf92, the largest count accepted (200000); the values below
 * were computed with Python's hashlib.pbkdf2_hmac and hmac.
 */
#define SCRAM_GREETING	   "* OK [CAPABILITY IMAP4rev1 AUTH=SCRAM-SHA-256 SASL-IR] hi\r\n"
#define SCRAM_AUTHENTICATE "a1 AUTHENTICATE SCRAM-SHA-256 biwsbj1hbGljZSxyPWZpeGVkbm9uY2U="
#define SCRAM_SERVER_FIRST "+ cj1maXhlZG5vbmNlc3J2LHM9UVNYQ1IrUTZzZWs4YmY5MixpPTIwMDAwMA==\r\n"
#define SCRAM_CLIENT_FINAL                                                                         \
	"Yz1iaXdzLHI9Zml4ZWRub25jZXNydixwPXFHdWdyVzZSaTdXMzI5UXZIVkpZUDY2dDZQWFc1NE83WUJkcUpWOXVl" \
	"OHc9"
#define SCRAM_SERVER_FINAL "+ dj1QTXptNzF1Q1JlV3dvT01HRjJGQnpXYmVFbXY5SlpUOG9iQ3VhSWt3UjFjPQ==\r\n"

static const struct script_step scram_login[] = {
	{ SCRIPT_SEND, SCRAM_GREETING },
	{ SCRIPT_EXPECT, SCRAM_AUTHENTICATE },
	{ SCRIPT_SEND, SCRAM_SERVER_FIRST },
	{ SCRIPT_EXPECT, SCRAM_CLIENT_FINAL },
	{ SCRIPT_SEND, SCRAM_SERVER_FINAL },
	{ SCRIPT_EXPECT, "" },
	{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
	{ SCRIPT_EXPECT, "a2 NOOP" },
	{ SCRIPT_SEND, "a2 OK\r\n" },
	{ SCRIPT_CLOSE, NULL },
	{ SCRIPT_END, NULL },
};

/* A 1 ms timer on the client's loop: did it fire while a PBKDF2 ran? */
struct loop_ticks {
	unsigned ticks, during_pbkdf2;
};

static void tick_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct loop_ticks *t = userdata;

	(void)src;
	t->ticks++;
	if (sasl_scram_pbkdf2_running() > 0)
		t->during_pbkdf2++;
}

/* A login at 200000 rounds, then a NOOP: returns the loop's ticks. */
static struct loop_ticks scram_login_run(void)
{
	struct cpmsync_loop_source *timer = NULL;
	struct loop_ticks t = { 0 };
	struct ctx ctx;

	ctx_start(&ctx, scram_login, CPMSYNC_SECURITY_NONE, 10000);
	ck_assert_int_eq(cpmsync_loop_add_timer(ctx.loop, 1, 1, tick_cb, &t, NULL, &timer), 0);
	ck_assert_msg(test_loop_run_until(ctx.loop, &ctx.ready, 10000), "state %d: %s", ctx.state_r,
		      ctx.reason);
	cpmsync_loop_source_remove(timer);
	want_done(&ctx, 1);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 5000));
	ck_assert_int_eq(ctx.results[0], 0);
	ctx_end(&ctx);
	return t;
}

/*
 * The first login's PBKDF2 runs on a thread: the loop's timer fires while
 * it runs, and the login then succeeds with the right proof (the script
 * expects it) and the server's signature verified.  The result went into
 * the cache: a second login runs no PBKDF2.
 */
START_TEST(test_scram_pbkdf2_off_loop)
{
	struct loop_ticks t;
	unsigned runs;

	sasl_scram_cache_clear();
	imap_client_set_scram_nonce_for_test("fixednonce");
	runs = sasl_scram_pbkdf2_runs();
	t = scram_login_run();
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 1);
	ck_assert_msg(t.during_pbkdf2 > 0, "the loop's timer never fired during PBKDF2 (%u ticks)",
		      t.ticks);
	/* Same account, salt and count: from the cache, on the loop. */
	t = scram_login_run();
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 1);
	ck_assert_uint_eq(t.during_pbkdf2, 0);
	imap_client_set_scram_nonce_for_test(NULL);
	sasl_scram_cache_clear();
}
END_TEST

/* A PBKDF2 that waits for the test (scram_release), or fails at once. */
static int scram_release; /* atomic */
static bool scram_fail;

static int test_pbkdf2(const char *password, size_t password_len, const unsigned char *salt,
		       size_t salt_len, unsigned long iterations, unsigned char out[32])
{
	(void)password;
	(void)password_len;
	(void)salt;
	(void)salt_len;
	(void)iterations;
	if (scram_fail)
		return -EIO;
	for (int i = 0; i < 1000 && !__atomic_load_n(&scram_release, __ATOMIC_ACQUIRE); i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	memset(out, 0x5a, 32);
	return 0;
}

static void wait_pbkdf2_running(unsigned n)
{
	for (int i = 0; i < 1000 && sasl_scram_pbkdf2_running() != n; i++) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	ck_assert_uint_eq(sasl_scram_pbkdf2_running(), n);
}

/*
 * The login ends while the PBKDF2 runs: the client is freed (the account
 * was removed), the server closes, or the server answers the AUTHENTICATE
 * (it gave up waiting).  The result is dropped, the thread finishes on its
 * own copies, nothing more is sent (ASan: no use after free, no leak).
 */
static const struct script_step scram_freed[] = {
	{ SCRIPT_SEND, SCRAM_GREETING },
	{ SCRIPT_EXPECT, SCRAM_AUTHENTICATE },
	{ SCRIPT_SEND, SCRAM_SERVER_FIRST },
	{ SCRIPT_EXPECT_EOF, NULL },
	{ SCRIPT_END, NULL },
};
static const struct script_step scram_closed[] = {
	{ SCRIPT_SEND, SCRAM_GREETING },
	{ SCRIPT_EXPECT, SCRAM_AUTHENTICATE },
	{ SCRIPT_SEND, SCRAM_SERVER_FIRST },
	{ SCRIPT_CLOSE, NULL },
	{ SCRIPT_END, NULL },
};
static const struct script_step scram_answered[] = {
	{ SCRIPT_SEND, SCRAM_GREETING },
	{ SCRIPT_EXPECT, SCRAM_AUTHENTICATE },
	{ SCRIPT_SEND, SCRAM_SERVER_FIRST },
	{ SCRIPT_SEND, "a1 NO [AUTHENTICATIONFAILED] too slow\r\n" },
	{ SCRIPT_EXPECT_EOF, NULL },
	{ SCRIPT_END, NULL },
};
static const struct {
	const struct script_step *script;
	int r;
	const char *reason; /* NULL: the client is freed */
} scram_drops[] = {
	{ scram_freed, 0, NULL },
	{ scram_closed, -CPMSYNC_E_DISCONNECTED, "the server closed the connection" },
	{ scram_answered, -CPMSYNC_E_AUTH, "authentication failed: too slow" },
};

START_TEST(test_scram_pbkdf2_dropped)
{
	struct ctx ctx;
	bool never = false;
	unsigned runs;

	sasl_scram_cache_clear();
	imap_client_set_scram_nonce_for_test("fixednonce");
	sasl_scram_set_pbkdf2_for_test(test_pbkdf2);
	scram_release = 0;
	scram_fail = false;
	runs = sasl_scram_pbkdf2_runs();
	ctx_start(&ctx, scram_drops[_i].script, CPMSYNC_SECURITY_NONE, 10000);
	for (int i = 0; i < 500 && sasl_scram_pbkdf2_running() == 0 && !ctx.state_called; i++)
		cpmsync_loop_iterate(ctx.loop, 10);
	/* The client started it before it read what followed server-first,
	 * but its thread may not have run yet. */
	wait_pbkdf2_running(1);
	if (!scram_drops[_i].reason) {
		ck_assert_int_eq(imap_client_get_state(ctx.client), IMAP_CLIENT_AUTHENTICATING);
		imap_client_free(ctx.client);
		ctx.client = NULL;
	} else {
		ck_assert(test_loop_run_until(ctx.loop, &ctx.state_called, 5000));
		ck_assert_int_eq(ctx.state_r, scram_drops[_i].r);
		ck_assert_str_eq(ctx.reason, scram_drops[_i].reason);
		ck_assert_uint_eq(sasl_scram_pbkdf2_running(), 1);
	}
	__atomic_store_n(&scram_release, 1, __ATOMIC_RELEASE);
	wait_pbkdf2_running(0);
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs + 1);
	/* Its byte goes to a socket nobody watches any more. */
	ctx.state_called = false;
	test_loop_run_until(ctx.loop, &never, 200);
	ck_assert(!ctx.state_called);
	ctx_end(&ctx);
	sasl_scram_set_pbkdf2_for_test(NULL);
	imap_client_set_scram_nonce_for_test(NULL);
}
END_TEST

/* A PBKDF2 that fails: the exchange is cancelled ("*"), and the reason said. */
START_TEST(test_scram_pbkdf2_fails)
{
	static const struct script_step script[] = {
		{ SCRIPT_SEND, SCRAM_GREETING },
		{ SCRIPT_EXPECT, SCRAM_AUTHENTICATE },
		{ SCRIPT_SEND, SCRAM_SERVER_FIRST },
		{ SCRIPT_EXPECT, "*" },
		{ SCRIPT_SEND, "a1 BAD [AUTHENTICATIONFAILED] cancelled\r\n" },
		{ SCRIPT_EXPECT_EOF, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	unsigned runs;

	sasl_scram_cache_clear();
	imap_client_set_scram_nonce_for_test("fixednonce");
	sasl_scram_set_pbkdf2_for_test(test_pbkdf2);
	scram_fail = true;
	runs = sasl_scram_pbkdf2_runs();
	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 10000);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.state_called, 5000));
	ck_assert_int_eq(ctx.state_r, -CPMSYNC_E_AUTH);
	ck_assert_str_eq(ctx.reason,
			 "authentication failed: the SCRAM key derivation (PBKDF2) failed");
	ck_assert_uint_eq(sasl_scram_pbkdf2_runs(), runs);
	ctx_end(&ctx);
	sasl_scram_set_pbkdf2_for_test(NULL);
	imap_client_set_scram_nonce_for_test(NULL);
	scram_fail = false;
}
END_TEST

/* The "+" of an IDLE came (its continuation handler ran). */
static bool idle_accepted;

static int idle_seen_cont(struct imap_client *client, const char *text, char **ret_line,
			  void *userdata)
{
	idle_accepted = true;
	return idle_cont(client, text, ret_line, userdata);
}

/*
 * imap_client_probe() (a network change): silence bounded by the probe's
 * length, not by the command timeout (5 s here), and only while an answer
 * is awaited: an accepted IDLE outlives it.  Bytes from the server end it
 * (the DONE's answer, 150 ms after the DONE): the NOOP after it may take
 * 400 ms.  A later probe whose NOOP gets no answer fails the connection
 * within its 300 ms, the reason naming its cause.
 */
START_TEST(test_probe_bounds_silence)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 IDLE" },
		{ SCRIPT_SEND, "+ idling\r\n" },
		{ SCRIPT_EXPECT, "DONE" },
		{ SCRIPT_SLEEP, "150" },
		{ SCRIPT_SEND, "a3 OK idle done\r\n" },
		{ SCRIPT_EXPECT, "a4 NOOP" },
		{ SCRIPT_SLEEP, "400" },
		{ SCRIPT_SEND, "a4 OK noop\r\n" },
		{ SCRIPT_EXPECT, "a5 NOOP" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	struct imap_cmd *cmd;
	int64_t idle;
	uint64_t t0;

	idle_accepted = false;
	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 5000);
	/* Not logged in yet: connect and login have their own deadlines. */
	ck_assert_int_eq(imap_client_probe(ctx.client, 300, "the network changed"), -EBUSY);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	ck_assert_int_eq(imap_client_probe(ctx.client, 0, "x"), -EINVAL);
	ck_assert_int_eq(
		imap_cmd_new(ctx.client, IMAP_CMD_EXCLUSIVE | IMAP_CMD_IDLE, cmd_cb, &ctx, &cmd),
		0);
	imap_cmd_add(cmd, "IDLE");
	imap_cmd_set_continuation(cmd, idle_seen_cont);
	idle = imap_cmd_submit(cmd);
	ck_assert_int_gt(idle, 0);
	ck_assert(test_loop_run_until(ctx.loop, &idle_accepted, 3000));

	/* Accepted IDLE: nothing awaited, so the probe does not run yet. */
	ck_assert_int_eq(imap_client_probe(ctx.client, 300, "the network changed"), 0);
	for (int i = 0; i < 10; i++)
		cpmsync_loop_iterate(ctx.loop, 50);
	ck_assert_int_eq(imap_client_get_state(ctx.client), IMAP_CLIENT_READY);
	/* DONE: awaited now; its answer (150 ms) ends the probe, so the
	 * NOOP's 400 ms are the command timeout's business. */
	ck_assert_int_eq(imap_client_end_idle(ctx.client, idle), 0);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	want_done(&ctx, 2);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], 0);
	ck_assert_int_eq(ctx.results[1], 0);
	ck_assert_int_eq(imap_client_get_state(ctx.client), IMAP_CLIENT_READY);

	/* A second probe, and a NOOP the server never answers. */
	ck_assert_int_eq(imap_client_probe(ctx.client, 300, "the system resumed"), 0);
	t0 = mono_ms();
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	want_done(&ctx, 3);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 4000));
	ck_assert_uint_lt(mono_ms() - t0, 2500);
	ck_assert_int_eq(ctx.results[2], -ETIMEDOUT);
	ck_assert_int_eq(ctx.state_r, -ETIMEDOUT);
	ck_assert_str_eq(ctx.reason, "no answer from the server within 300 ms after the system "
				     "resumed; the connection is taken for dead");
	ctx_end(&ctx);
}
END_TEST

/* The loop not run for ms (the process stopped or frozen: CLOCK_MONOTONIC
 * goes on, the peer too). */
static void freeze_for(unsigned ms)
{
	const struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	ck_assert_int_eq(nanosleep(&ts, NULL), 0);
}

/*
 * A process frozen (SIGSTOP, a cgroup freezer) while a command is out, for
 * longer than its total deadline (10 command timeouts: 5 s here), the
 * server answering meanwhile: at the thaw the client read what waited in
 * the socket, found the total deadline past, and dropped the live
 * connection ("did not finish answering a3 within its total limit").  The
 * deadlines start again at the thaw: the response is read, and the answer
 * the server sends 200 ms after the thaw ends the command well.
 */
START_TEST(test_frozen_connection_lives)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 NOOP" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n" },
		{ SCRIPT_SLEEP, "1000" },
		{ SCRIPT_SEND, "* 2 EXISTS\r\n" },
		{ SCRIPT_SLEEP, "4600" },
		{ SCRIPT_SEND, "a3 OK noop\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 500);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	ctx.n_untagged = 0;
	ctx.untagged[0] = '\0';
	want_done(&ctx, 1);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	for (int i = 0; i < 300 && ctx.n_untagged < 1; i++)
		cpmsync_loop_iterate(ctx.loop, 10);
	ck_assert_int_eq(ctx.n_untagged, 1);
	/* thawed 5.4 s after the first response (sent with the NOOP): past
	 * its total deadline, 4.4 s after the second response came, 200 ms
	 * before the answer */
	freeze_for(5400);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_msg(ctx.results[0] == 0, "%d %s", ctx.results[0], ctx.texts[0]);
	ck_assert_str_eq(ctx.untagged, "EXISTS;EXISTS;");
	ck_assert_int_eq(imap_client_get_state(ctx.client), IMAP_CLIENT_READY);
	ctx_end(&ctx);
}
END_TEST

/*
 * The same freeze with a server that is dead (never answers again): the
 * command still times out, one command timeout (500 ms) after the thaw,
 * not at once and not later.
 */
START_TEST(test_frozen_dead_server_times_out)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 NOOP" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	uint64_t thaw, spent;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 500);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	want_done(&ctx, 1);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	cpmsync_loop_iterate(ctx.loop, 0); /* the NOOP goes out */
	freeze_for(2000);
	thaw = mono_ms();
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	spent = mono_ms() - thaw;
	ck_assert_int_eq(ctx.results[0], -ETIMEDOUT);
	ck_assert_int_eq(ctx.state_r, -ETIMEDOUT);
	ck_assert_str_eq(ctx.reason, "the server did not answer within 500 ms");
	ck_assert_msg(spent >= 450 && spent < 1500, "timed out %llu ms after the thaw",
		      (unsigned long long)spent);
	ctx_end(&ctx);
}
END_TEST

/* A callback of ours that holds the loop 1.5 s in marked work (a store
 * commit on a slow disk: store_commit() marks it), and whether it ran. */
static void slow_work_cb(struct cpmsync_loop_source *src, void *userdata)
{
	(void)src;
	loop_own_work_begin();
	freeze_for(1500);
	loop_own_work_end();
	*(bool *)userdata = true;
}

/* Counts the client's "the deadlines start again" lines. */
static void thaw_log_cb(int level, unsigned category, const char *msg, void *userdata)
{
	(void)level;
	(void)category;
	if (strstr(msg, "(the process was stopped or frozen): the deadlines start again"))
		(*(unsigned *)userdata)++;
}

/*
 * Our own callback held the loop past a command's deadline (a store write
 * of 1.5 s, from 300 ms after the NOOP went; the deadline at 500 ms), the
 * server dead: that is no freeze.  Taken for one, the deadlines started
 * again at its end, and a dead server was given one more command timeout
 * after every slow write.  The timer, due 1.3 s before, fails the command
 * at its first dispatch after the write, with no "start again" line.
 */
START_TEST(test_own_slow_work_not_a_freeze)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 NOOP" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	bool slow_done = false;
	unsigned thaws = 0;

	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 500);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	want_done(&ctx, 1);
	cpmsync_log_set_handler(CPMSYNC_LOG_DEBUG, CPMSYNC_LOG_CAT_IMAP, thaw_log_cb, &thaws);
	ck_assert_int_gt(imap_client_simple(ctx.client, 0, cmd_cb, &ctx, "NOOP"), 0);
	cpmsync_loop_iterate(ctx.loop, 0); /* the NOOP goes out */
	ck_assert_int_eq(
		cpmsync_loop_add_timer(ctx.loop, 300, 0, slow_work_cb, &slow_done, NULL, NULL), 0);
	ck_assert(test_loop_run_until(ctx.loop, &slow_done, 3000));
	ck_assert(!ctx.all_done);
	/* the rounds after the write, none of them waiting */
	for (int i = 0; i < 2 && !ctx.all_done; i++)
		cpmsync_loop_iterate(ctx.loop, 0);
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
	ck_assert_uint_eq(thaws, 0);
	ck_assert(ctx.all_done);
	ck_assert_int_eq(ctx.results[0], -ETIMEDOUT);
	ck_assert_str_eq(ctx.reason, "the server did not answer within 500 ms");
	ctx_end(&ctx);
}
END_TEST

/*
 * An IDLE that lasted longer than the command timeout: its DONE's answer
 * is awaited from the DONE, not from when the IDLE went.  Silence was
 * counted from the IDLE's sending (99bdf47), so the DONE of an IDLE over
 * 60 s old was taken for unanswered at once: "the server did not answer
 * within 60 s" at every Sync() and every IDLE refresh of a server without
 * NOTIFY, a reconnect and a full LIST each time (a tester, on Cyrus).
 */
START_TEST(test_end_idle_after_long_idle)
{
	static const struct script_step script[] = {
		LOGIN_OK,
		{ SCRIPT_EXPECT, "a3 IDLE" },
		{ SCRIPT_SEND, "+ idling\r\n" },
		{ SCRIPT_EXPECT, "DONE" },
		{ SCRIPT_SLEEP, "100" },
		{ SCRIPT_SEND, "a3 OK idle done\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;
	struct imap_cmd *cmd;
	int64_t idle;
	uint64_t t0;

	idle_accepted = false;
	ctx_start(&ctx, script, CPMSYNC_SECURITY_NONE, 300);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.ready, 3000));
	ck_assert_int_eq(
		imap_cmd_new(ctx.client, IMAP_CMD_EXCLUSIVE | IMAP_CMD_IDLE, cmd_cb, &ctx, &cmd),
		0);
	imap_cmd_add(cmd, "IDLE");
	imap_cmd_set_continuation(cmd, idle_seen_cont);
	idle = imap_cmd_submit(cmd);
	ck_assert_int_gt(idle, 0);
	ck_assert(test_loop_run_until(ctx.loop, &idle_accepted, 3000));
	/* Idle for twice the command timeout, the server silent. */
	t0 = mono_ms();
	while (mono_ms() - t0 < 600)
		cpmsync_loop_iterate(ctx.loop, 50);
	ck_assert_int_eq(imap_client_get_state(ctx.client), IMAP_CLIENT_READY);
	ck_assert_int_eq(imap_client_end_idle(ctx.client, idle), 0);
	want_done(&ctx, 1);
	ck_assert(test_loop_run_until(ctx.loop, &ctx.all_done, 3000));
	ck_assert_int_eq(ctx.results[0], 0);
	ck_assert_str_eq(ctx.texts[0], "idle done");
	ck_assert_int_eq(imap_client_get_state(ctx.client), IMAP_CLIENT_READY);
	ctx_end(&ctx);
}
END_TEST

static Suite *client_suite(void)
{
	Suite *s = suite_create("imap-client");
	TCase *tc = tcase_create("scripted");

	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, test_login_enable_and_pipelining);
	tcase_add_test(tc, test_namespace_after_login);
	tcase_add_test(tc, test_namespace_bad_answers);
	tcase_add_test(tc, test_bye_mid_command);
	tcase_add_test(tc, test_disconnect_with_commands_in_flight);
	tcase_add_test(tc, test_server_never_greets);
	tcase_add_test(tc, test_server_stops_answering);
	tcase_add_test(tc, test_silence_counts_from_the_oldest_command);
	tcase_add_loop_test(tc, test_connection_refused_cases, 0,
			    sizeof(failing) / sizeof(failing[0]));
	tcase_add_test(tc, test_authenticate_plain_without_sasl_ir);
	tcase_add_test(tc, test_password_pending);
	tcase_add_test(tc, test_password_refused_with_reason);
	tcase_add_test(tc, test_synchronizing_literal_waits_for_continuation);
	tcase_add_test(tc, test_large_append_memory_given_back);
	tcase_add_test(tc, test_read_yields);
	tcase_add_test(tc, test_cancel_queued_and_running);
	tcase_add_test(tc, test_end_idle_pipelines);
	tcase_add_test(tc, test_end_idle_after_long_idle);
	tcase_add_loop_test(tc, test_body_literal_caps, 0,
			    sizeof(big_literals) / sizeof(big_literals[0]));
	tcase_add_test(tc, test_body_literal_within_caps);
	tcase_add_test(tc, test_trickling_server_hits_total_deadline);
	tcase_add_test(tc, test_frozen_connection_lives);
	tcase_add_test(tc, test_frozen_dead_server_times_out);
	tcase_add_test(tc, test_own_slow_work_not_a_freeze);
	tcase_add_test(tc, test_server_text_escaped);
	tcase_add_test(tc, test_resolve_off_loop);
	tcase_add_test(tc, test_resolve_failure_and_free);
	tcase_add_test(tc, test_scram_pbkdf2_off_loop);
	tcase_add_loop_test(tc, test_scram_pbkdf2_dropped, 0,
			    sizeof(scram_drops) / sizeof(scram_drops[0]));
	tcase_add_test(tc, test_scram_pbkdf2_fails);
	tcase_add_test(tc, test_probe_bounds_silence);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(client_suite)
