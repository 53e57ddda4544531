/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CONVERT (RFC 5259) against a scripted peer: no real server offers it
 * (Dovecot has none, Cyrus lists it as not implemented), so the command
 * the session sends and the answers it must understand are played here:
 * the converted part as literal8 and as a plain literal, NIL (not
 * converted), a tagged NO [TEMPFAIL], and a FETCH literal that is not a
 * converted part.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/cpmsync.h>

#include "imap/imap-client.h"
#include "imap/imap-convert.h"
#include "testlib.h"

struct ctx {
	struct cpmsync_loop *loop;
	struct imap_client *client;
	bool ready, done;
	int r;
	char text[256];
	/* streamed literals */
	int n_literals;
	char name[32], item[64];
	char data[256];
	size_t len;
	bool ended;
};

static int password_cb(const struct cpmsync_account *a, char **ret, void *ud)
{
	(void)a;
	(void)ud;
	*ret = strdup("pw");
	return *ret ? 0 : -ENOMEM;
}

static void state_cb(struct imap_client *client, int r, const char *reason, void *userdata)
{
	struct ctx *ctx = userdata;

	(void)client;
	if (r == 0 && !reason)
		ctx->ready = true;
}

/* As the session does: only a CONVERTED response's BINARY[...] is taken. */
static bool lit_begin(void *userdata, uint32_t number, const char *name, const char *item,
		      uint64_t size)
{
	struct ctx *ctx = userdata;

	(void)number;
	(void)size;
	if (!imap_convert_is_part(name, item))
		return false;
	ctx->n_literals++;
	snprintf(ctx->name, sizeof(ctx->name), "%s", name);
	snprintf(ctx->item, sizeof(ctx->item), "%s", item);
	return true;
}

static int lit_data(void *userdata, const void *data, size_t len)
{
	struct ctx *ctx = userdata;

	ck_assert_uint_le(ctx->len + len, sizeof(ctx->data));
	memcpy(ctx->data + ctx->len, data, len);
	ctx->len += len;
	return 0;
}

static void lit_end(void *userdata)
{
	((struct ctx *)userdata)->ended = true;
}

static void cmd_cb(struct imap_client *client, const struct imap_cmd_result *res, void *userdata)
{
	struct ctx *ctx = userdata;

	(void)client;
	ctx->done = true;
	ctx->r = res->r;
	snprintf(ctx->text, sizeof(ctx->text), "%s", res->text ? res->text : "");
}

#define LOGIN                                                                                      \
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 BINARY CONVERT] hi\r\n" },                      \
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },                                               \
	{                                                                                          \
		SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1 BINARY CONVERT] in\r\n"                  \
	}

static void run(const struct script_step *script, struct ctx *ctx, uint32_t uid, const char *type,
		uint32_t w, uint32_t h, const char *section)
{
	struct imap_client_callbacks cb = {
		.state = state_cb,
		.literals = { .literal_begin = lit_begin,
			      .literal_data = lit_data,
			      .literal_end = lit_end },
	};
	struct cpmsync_account a = {
		.name = "t",
		.host = "localhost",
		.user = "alice",
		.security = CPMSYNC_SECURITY_NONE,
		.password_cb = password_cb,
		.connect_timeout_ms = 2000,
		.command_timeout_ms = 2000,
	};
	struct script_peer peer;
	struct imap_cmd *cmd;

	memset(ctx, 0, sizeof(*ctx));
	ck_assert_int_eq(cpmsync_loop_new(&ctx->loop), 0);
	ck_assert_int_eq(script_peer_start(script, &peer), 0);
	ck_assert_int_eq(imap_client_new(ctx->loop, &a, &cb, ctx, &ctx->client), 0);
	ck_assert_int_eq(imap_client_connect_fd(ctx->client, peer.fd), 0);
	ck_assert(test_loop_run_until(ctx->loop, &ctx->ready, 3000));
	ck_assert_int_eq(imap_cmd_new(ctx->client, 0, cmd_cb, ctx, &cmd), 0);
	ck_assert_int_eq(imap_cmd_add_convert(cmd, uid, type, w, h, section), 0);
	ck_assert_int_gt(imap_cmd_submit(cmd), 0);
	ck_assert(test_loop_run_until(ctx->loop, &ctx->done, 3000));
	imap_client_free(ctx->client);
	cpmsync_loop_free(ctx->loop);
	ck_assert_int_eq(script_peer_wait(&peer), 0);
}

START_TEST(test_converted_literal8)
{
	static const struct script_step script[] = {
		LOGIN,
		{ SCRIPT_EXPECT, "a2 UID CONVERT 42 (\"image/jpeg\" (\"pix-x\" \"160\" \"pix-y\" "
				 "\"120\")) BINARY[2]" },
		{ SCRIPT_SEND, "* 7 CONVERTED (TAG \"a2\") (UID 42 BINARY[2] ~{12}\r\n"
			       "\xff\xd8\xff\xe0JFIF-1.01)\r\n"
			       "a2 OK CONVERT completed\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	run(script, &ctx, 42, "image/jpeg", 160, 120, "2");
	ck_assert_int_eq(ctx.r, 0);
	ck_assert_int_eq(ctx.n_literals, 1);
	ck_assert_str_eq(ctx.name, "CONVERTED");
	ck_assert_str_eq(ctx.item, "BINARY[2]");
	ck_assert(ctx.ended);
	ck_assert_uint_eq(ctx.len, 12);
	ck_assert_int_eq(memcmp(ctx.data, "\xff\xd8\xff\xe0JFIF-1.01", 12), 0);
}
END_TEST

/* A plain literal works too; the body of a single-part message is part 1;
 * a FETCH literal in between is not taken for the converted part. */
START_TEST(test_converted_literal_part1)
{
	static const struct script_step script[] = {
		LOGIN,
		{ SCRIPT_EXPECT, "a2 UID CONVERT 9 (\"image/png\" (\"pix-x\" \"64\" \"pix-y\" "
				 "\"48\")) BINARY[1]" },
		{ SCRIPT_SEND, "* 3 FETCH (UID 9 BODY[] {3}\r\nabc)\r\n"
			       "* 3 CONVERTED (TAG \"a2\") (UID 9 BINARY[1] {8}\r\n"
			       "\x89PNG\r\n\x1a\n)\r\n"
			       "a2 OK done\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	run(script, &ctx, 9, "image/png", 64, 48, "");
	ck_assert_int_eq(ctx.r, 0);
	ck_assert_int_eq(ctx.n_literals, 1);
	ck_assert_str_eq(ctx.item, "BINARY[1]");
	ck_assert_uint_eq(ctx.len, 8);
	ck_assert_int_eq(memcmp(ctx.data, "\x89PNG\r\n\x1a\n", 8), 0);
}
END_TEST

/* NIL: the server could not convert it; the command still succeeds. */
START_TEST(test_converted_nil)
{
	static const struct script_step script[] = {
		LOGIN,
		{ SCRIPT_EXPECT, "a2 UID CONVERT 5 (\"image/webp\"" },
		{ SCRIPT_SEND, "* 1 CONVERTED (TAG \"a2\") (UID 5 BINARY[1.2] NIL)\r\n"
			       "a2 OK [MAXCONVERTPARTS 1] done\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	run(script, &ctx, 5, "image/webp", 10, 10, "1.2");
	ck_assert_int_eq(ctx.r, 0);
	ck_assert_int_eq(ctx.n_literals, 0);
}
END_TEST

START_TEST(test_convert_refused)
{
	static const struct script_step script[] = {
		LOGIN,
		{ SCRIPT_EXPECT, "a2 UID CONVERT 5 " },
		{ SCRIPT_SEND, "a2 NO [TEMPFAIL] Converter busy, try later\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct ctx ctx;

	run(script, &ctx, 5, "image/jpeg", 10, 10, "3");
	ck_assert_int_eq(ctx.r, -CPMSYNC_E_SERVER);
	ck_assert_str_eq(ctx.text, "Converter busy, try later");
	ck_assert_int_eq(ctx.n_literals, 0);
}
END_TEST

START_TEST(test_convert_arguments)
{
	struct imap_cmd *cmd = (struct imap_cmd *)1; /* never dereferenced: refused first */
	const char *bad_types[] = { "image",	    "image/", "/jpeg",
				    "image/jp\"eg", "a/b/c",  "image/j peg" };
	const char *bad_sections[] = { "2.MIME", "HEADER", "1..2", ".1", "1.", "TEXT" };

	for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++)
		ck_assert_int_eq(imap_cmd_add_convert(cmd, 1, bad_types[i], 1, 1, "1"), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_sections) / sizeof(bad_sections[0]); i++)
		ck_assert_int_eq(imap_cmd_add_convert(cmd, 1, "image/png", 1, 1, bad_sections[i]),
				 -EINVAL);
	ck_assert_int_eq(imap_cmd_add_convert(cmd, 0, "image/png", 1, 1, "1"), -EINVAL);
	ck_assert_int_eq(imap_cmd_add_convert(cmd, 1, "image/png", 0, 1, "1"), -EINVAL);
	ck_assert_int_eq(imap_cmd_add_convert(NULL, 1, "image/png", 1, 1, "1"), -EINVAL);

	ck_assert(imap_convert_is_part("CONVERTED", "BINARY[2]"));
	ck_assert(imap_convert_is_part("converted", "binary[1.2]"));
	ck_assert(!imap_convert_is_part("FETCH", "BINARY[2]"));
	ck_assert(!imap_convert_is_part("CONVERTED", "BINARY.SIZE[2]"));
	ck_assert(!imap_convert_is_part("CONVERTED", NULL));
	ck_assert(!imap_convert_is_part(NULL, "BINARY[2]"));
}
END_TEST

static Suite *convert_suite(void)
{
	Suite *s = suite_create("imap-convert");
	TCase *tc = tcase_create("convert");

	tcase_add_test(tc, test_converted_literal8);
	tcase_add_test(tc, test_converted_literal_part1);
	tcase_add_test(tc, test_converted_nil);
	tcase_add_test(tc, test_convert_refused);
	tcase_add_test(tc, test_convert_arguments);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(convert_suite)
