/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the IMAP response parser.  The first input byte picks
 * the chunking and the streaming policy; the rest is server output.  Each
 * pass parses the input twice, whole and in chunks, walks every response
 * tree into a canonical dump, and aborts when the two dumps differ
 * (chunking must never change the result).  A second pass uses tiny limits
 * so that every limit is reached often.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

#include "imap/imap-parser.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fctx {
	struct buf *out;
	unsigned mode;
	uint64_t lit_size, lit_seen;
	bool in_lit;
};

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

static void dump_bytes(struct buf *b, const char *s, size_t n)
{
	buf_append_char(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			buf_printf(b, "\\x%02x", c);
		else
			buf_append_char(b, (char)c);
	}
	buf_append_char(b, '"');
}

static void dump_args(struct buf *b, const struct imap_arg *a, size_t n, unsigned depth)
{
	CHECK(a);
	CHECK(depth <= 1000);
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *x = &a[i];

		buf_append_char(b, ' ');
		switch (x->type) {
		case IMAP_ARG_NIL:
			buf_append_str(b, "NIL");
			break;
		case IMAP_ARG_ATOM:
			CHECK(x->u.s.len > 0 && strlen(x->u.s.str) == x->u.s.len);
			buf_append(b, x->u.s.str, x->u.s.len);
			break;
		case IMAP_ARG_STRING:
			CHECK(strlen(x->u.s.str) == x->u.s.len);
			dump_bytes(b, x->u.s.str, x->u.s.len);
			break;
		case IMAP_ARG_LITERAL:
			CHECK(x->u.s.str[x->u.s.len] == '\0');
			buf_printf(b, "%s{%zu}", x->literal8 ? "~" : "", x->u.s.len);
			dump_bytes(b, x->u.s.str, x->u.s.len);
			break;
		case IMAP_ARG_STREAMED:
			buf_printf(b, "{stream %llu}", (unsigned long long)x->u.size);
			break;
		case IMAP_ARG_LIST:
			buf_append_char(b, '(');
			dump_args(b, x->u.list.args, x->u.list.count, depth + 1);
			buf_append_char(b, ')');
			break;
		default:
			abort();
		}
	}
}

static void dump_resp(struct buf *b, const struct imap_response *r)
{
	buf_printf(b, "%d %s %d", r->kind, r->tag ? r->tag : "-", r->status);
	if (r->code) {
		CHECK(r->code_raw);
		buf_printf(b, " [%s raw=", r->code);
		dump_bytes(b, r->code_raw, strlen(r->code_raw));
		if (r->code_args)
			dump_args(b, r->code_args, r->code_nargs, 0);
		else
			CHECK(r->code_nargs == 0);
		buf_append_char(b, ']');
	} else {
		CHECK(!r->code_raw && !r->code_args && !r->code_nargs);
	}
	if (r->text) {
		buf_append_str(b, " text=");
		dump_bytes(b, r->text, strlen(r->text));
	}
	if (r->has_number)
		buf_printf(b, " #%u", (unsigned)r->number);
	if (r->name)
		buf_printf(b, " %s", r->name);
	CHECK(r->status == IMAP_STATUS_NONE || !r->nargs);
	dump_args(b, r->args, r->nargs, 0);
	buf_append_char(b, '\n');
}

static bool f_begin(void *userdata, uint32_t number, const char *name, const char *item,
		    uint64_t size)
{
	struct fctx *c = userdata;
	bool stream;

	CHECK(!c->in_lit);
	(void)number;
	if (name)
		CHECK(strlen(name) < 100000);
	if (c->mode & 0x20)
		stream = true;
	else if (c->mode & 0x40)
		stream = item && strncmp(item, "BODY[", 5) == 0;
	else
		stream = size & 1;
	if (stream) {
		buf_printf(c->out, "<begin %llu>", (unsigned long long)size);
		c->in_lit = true;
		c->lit_size = size;
		c->lit_seen = 0;
	}
	return stream;
}

static int f_data(void *userdata, const void *data, size_t len)
{
	struct fctx *c = userdata;

	CHECK(c->in_lit && len > 0 && data);
	c->lit_seen += len;
	CHECK(c->lit_seen <= c->lit_size);
	/* abort long literals in some runs; the outcome must not depend on
	 * the chunking */
	if ((c->mode & 0x80) && c->lit_seen > 5)
		return -5;
	return 0;
}

static void f_end(void *userdata)
{
	struct fctx *c = userdata;

	CHECK(c->in_lit && c->lit_seen == c->lit_size);
	c->in_lit = false;
	buf_append_str(c->out, "<end>");
}

/* a FETCH over max_line: skipped for an odd UID (the outcome must not
 * depend on the chunking either) */
static bool f_long(void *userdata, uint32_t number, uint32_t uid)
{
	struct fctx *c = userdata;

	CHECK(!c->in_lit && uid != 0);
	buf_printf(c->out, "<long %u %u>", (unsigned)number, (unsigned)uid);
	return uid & 1;
}

static const struct imap_parser_callbacks fcallbacks = {
	.literal_begin = f_begin,
	.literal_data = f_data,
	.literal_end = f_end,
	.long_fetch = f_long,
};

static const struct imap_parser_limits tiny = {
	.max_line = 48,
	.max_depth = 4,
	.max_literal_inline = 8,
	.max_inline_total = 12,
	.max_literal_streamed = 24,
};

/* chunk == 0: everything at once; otherwise varying chunks around it */
static char *parse(const uint8_t *data, size_t size, unsigned mode,
		   const struct imap_parser_limits *lim, size_t chunk)
{
	struct buf out = BUF_INIT(SIZE_MAX / 2);
	struct fctx c = { .out = &out, .mode = mode };
	struct imap_parser *p;
	uint32_t seed = mode * 2654435761u + 1;
	size_t pos = 0;
	int r = 0;

	if (imap_parser_new(lim, &fcallbacks, &c, &p) < 0)
		abort();
	while (pos < size && r >= 0) {
		size_t n = size - pos, used;
		const struct imap_response *resp;

		if (chunk) {
			seed = seed * 1103515245u + 12345u;
			n = (mode & 0x10) ? 1 + (seed >> 16) % (2 * chunk) : chunk;
			if (n > size - pos)
				n = size - pos;
		}
		while (n > 0) {
			r = imap_parser_feed(p, data + pos, n, &used, &resp);
			if (r < 0) {
				CHECK(imap_parser_error(p));
				buf_printf(&out, "ERR %d %s", r, imap_parser_error(p));
				CHECK(imap_parser_feed(p, "x", 1, &used, &resp) == r);
				break;
			}
			CHECK(used <= n);
			pos += used;
			n -= used;
			if (r == IMAP_PARSE_COMPLETE)
				dump_resp(&out, resp);
			else
				CHECK(n == 0 && !resp);
		}
	}
	imap_parser_free(p);
	if (!out.data)
		return calloc(1, 1);
	return buf_steal(&out);
}

static void pass(const uint8_t *data, size_t size, unsigned mode,
		 const struct imap_parser_limits *lim)
{
	size_t chunk = (mode & 0x0f) + 1;
	char *a = parse(data, size, mode, lim, 0);
	char *b = parse(data, size, mode, lim, chunk);

	CHECK(a && b);
	if (strcmp(a, b) != 0) {
		fprintf(stderr, "chunking changed the result:\n%s\n---\n%s\n", a, b);
		abort();
	}
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned mode;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	pass(data, size, mode, NULL);
	pass(data, size, mode, &tiny);
	return 0;
}
