/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tests for the incremental IMAP response parser.  Every table case is
 * fed whole, one byte at a time, in fixed-size chunks and split in two at
 * every offset; each way must give the same canonical dump of the
 * responses (and of the streamed literals), which must equal the expected
 * one.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

#include "testlib.h"
#include "imap/imap-parser.h"
#include "util/buf.h"

#define CRLF "\r\n"

enum stream_policy {
	STREAM_NONE,
	STREAM_ALL,
	STREAM_BODY, /* items starting with BODY[ or BINARY[ */
};

struct pcase {
	const char *name;
	const char *in;
	size_t len; /* 0: strlen(in) */
	enum stream_policy stream;
	const struct imap_parser_limits *lim;
	const char *want;
	bool skip_long; /* long_fetch: "<long N UID>", true but for UID 666 */
};

static const struct imap_parser_limits small = {
	.max_line = 40,
	.max_depth = 3,
	.max_literal_inline = 10,
	.max_inline_total = 15,
	.max_literal_streamed = 20,
};

struct ctx {
	struct buf *out;
	enum stream_policy stream;
	struct buf lit;
	bool in_lit;
	unsigned begins, ends;
	size_t chunks;
	int data_ret;
};

/* ---- canonical dump ---------------------------------------------------- */

static void dump_bytes(struct buf *b, const char *s, size_t n)
{
	buf_append_char(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			buf_printf(b, "\\x%02x", c);
		else
			buf_append_char(b, (char)c);
	}
	buf_append_char(b, '"');
}

static void dump_args(struct buf *b, const struct imap_arg *a, size_t n);

static void dump_arg(struct buf *b, const struct imap_arg *a)
{
	switch (a->type) {
	case IMAP_ARG_NIL:
		buf_append_str(b, "NIL");
		break;
	case IMAP_ARG_ATOM:
		ck_assert_uint_eq(strlen(a->u.s.str), a->u.s.len);
		ck_assert_uint_gt(a->u.s.len, 0);
		buf_append(b, a->u.s.str, a->u.s.len);
		break;
	case IMAP_ARG_STRING:
		ck_assert_uint_eq(strlen(a->u.s.str), a->u.s.len);
		dump_bytes(b, a->u.s.str, a->u.s.len);
		break;
	case IMAP_ARG_LITERAL:
		ck_assert_int_eq(a->u.s.str[a->u.s.len], '\0');
		buf_printf(b, "%s{%zu}", a->literal8 ? "~" : "", a->u.s.len);
		dump_bytes(b, a->u.s.str, a->u.s.len);
		break;
	case IMAP_ARG_STREAMED:
		buf_printf(b, "%s{stream %" PRIu64 "}", a->literal8 ? "~" : "", a->u.size);
		break;
	case IMAP_ARG_LIST:
		ck_assert_ptr_nonnull(a->u.list.args);
		buf_append_char(b, '(');
		dump_args(b, a->u.list.args, a->u.list.count);
		buf_append_char(b, ')');
		break;
	default:
		ck_abort_msg("bad arg type %d", a->type);
	}
}

static void dump_args(struct buf *b, const struct imap_arg *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_append_char(b, ' ');
		dump_arg(b, &a[i]);
	}
}

static const char *status_name(enum imap_status s)
{
	static const char *const names[] = { "", "OK", "NO", "BAD", "BYE", "PREAUTH" };

	return names[s];
}

static void dump_resp(struct buf *b, const struct imap_response *r)
{
	ck_assert_ptr_nonnull(r->args);
	switch (r->kind) {
	case IMAP_RESP_UNTAGGED:
		ck_assert_ptr_null(r->tag);
		buf_append_str(b, "*");
		break;
	case IMAP_RESP_TAGGED:
		ck_assert_ptr_nonnull(r->tag);
		ck_assert_int_ne(r->status, IMAP_STATUS_NONE);
		buf_append_str(b, r->tag);
		break;
	case IMAP_RESP_CONTINUATION:
		ck_assert_int_eq(r->status, IMAP_STATUS_NONE);
		ck_assert_ptr_nonnull(r->text);
		buf_append_str(b, "+ text=");
		dump_bytes(b, r->text, strlen(r->text));
		return;
	}
	if (r->status != IMAP_STATUS_NONE) {
		ck_assert_ptr_null(r->name);
		ck_assert_uint_eq(r->nargs, 0);
		ck_assert_ptr_nonnull(r->text);
		buf_printf(b, " %s", status_name(r->status));
		if (r->code) {
			ck_assert_ptr_nonnull(r->code_raw);
			buf_printf(b, " [%s", r->code);
			if (r->code_raw[0] || !r->code_args) {
				buf_append_str(b, " raw=");
				dump_bytes(b, r->code_raw, strlen(r->code_raw));
				if (r->code_args) {
					buf_append_str(b, " args=(");
					dump_args(b, r->code_args, r->code_nargs);
					buf_append_str(b, ")");
				} else {
					ck_assert_uint_eq(r->code_nargs, 0);
					buf_append_str(b, " args=NULL");
				}
			} else {
				ck_assert_uint_eq(r->code_nargs, 0);
			}
			buf_append_str(b, "]");
		} else {
			ck_assert_ptr_null(r->code_raw);
			ck_assert_ptr_null(r->code_args);
		}
		buf_append_str(b, " text=");
		dump_bytes(b, r->text, strlen(r->text));
		return;
	}
	ck_assert_ptr_nonnull(r->name);
	ck_assert_ptr_null(r->text);
	ck_assert_ptr_null(r->code);
	if (r->has_number)
		buf_printf(b, " #%" PRIu32, r->number);
	buf_printf(b, " %s", r->name);
	if (r->nargs) {
		buf_append_char(b, ' ');
		dump_args(b, r->args, r->nargs);
	}
}

/* ---- streaming callbacks ---------------------------------------------- */

static bool cb_begin(void *userdata, uint32_t number, const char *name, const char *item,
		     uint64_t size)
{
	struct ctx *c = userdata;
	bool stream;

	ck_assert(!c->in_lit);
	c->begins++;
	switch (c->stream) {
	case STREAM_ALL:
		stream = true;
		break;
	case STREAM_BODY:
		stream = item &&
			 (strncmp(item, "BODY[", 5) == 0 || strncmp(item, "BINARY[", 7) == 0);
		break;
	default:
		stream = false;
	}
	if (!stream)
		return false;
	buf_printf(c->out, "<begin %" PRIu32 " %s %s %" PRIu64 ">", number, name ? name : "-",
		   item ? item : "-", size);
	buf_reset(&c->lit);
	c->in_lit = true;
	return true;
}

static int cb_data(void *userdata, const void *data, size_t len)
{
	struct ctx *c = userdata;

	ck_assert(c->in_lit);
	ck_assert_uint_gt(len, 0);
	c->chunks++;
	ck_assert_int_eq(buf_append(&c->lit, data, len), 0);
	return c->data_ret;
}

static void cb_end(void *userdata)
{
	struct ctx *c = userdata;

	ck_assert(c->in_lit);
	c->in_lit = false;
	c->ends++;
	dump_bytes(c->out, c->lit.data ? c->lit.data : "", c->lit.len);
	buf_append_str(c->out, "<end>");
}

static const struct imap_parser_callbacks callbacks = {
	.literal_begin = cb_begin,
	.literal_data = cb_data,
	.literal_end = cb_end,
};

static bool cb_long(void *userdata, uint32_t number, uint32_t uid)
{
	struct ctx *c = userdata;

	ck_assert(!c->in_lit);
	buf_printf(c->out, "<long %" PRIu32 " %" PRIu32 ">", number, uid);
	return uid != 666;
}

static const struct imap_parser_callbacks callbacks_long = {
	.literal_begin = cb_begin,
	.literal_data = cb_data,
	.literal_end = cb_end,
	.long_fetch = cb_long,
};

/* ---- runner -------------------------------------------------------------- */

/*
 * An assertion for the runner's per-chunk loop, which runs once per byte
 * when a test feeds byte by byte.  Check's ck_assert*() record every
 * assertion that holds (a write(2) each, to let a crash name its last
 * place): 349,109 writes for the suite's "limits" case, most of its time,
 * and at load 15 on 2 cores test_default_line_limit (64 KiB fed in steps
 * of 1 and 7) went over Check's 4 s timeout.  This one is quiet until it
 * fails, and then fails as ck_assert_msg() does.
 */
#define loop_assert(expr, fmt, ...)                                                                \
	do {                                                                                       \
		if (!(expr))                                                                       \
			ck_abort_msg("Assertion '%s' failed: " fmt, #expr, __VA_ARGS__);           \
	} while (0)

/*
 * Feeds in[0..len) in chunks: the first chunk has first bytes (0: use
 * step), then chunks of step bytes (0: all the rest at once).  Returns the
 * dump: one line per response, then "MORE" when the input ends in the
 * middle of a response, or "ERR <message>".
 */
static char *run(const struct pcase *pc, size_t first, size_t step, size_t *ret_chunks)
{
	struct buf out = BUF_INIT(1 << 24);
	struct ctx c = { .out = &out, .stream = pc->stream, .lit = BUF_INIT(1 << 24) };
	struct imap_parser *p;
	size_t len = pc->len ? pc->len : strlen(pc->in);
	size_t pos = 0, pending = 0;
	bool failed = false;

	ck_assert_int_eq(imap_parser_new(pc->lim,
					 pc->skip_long ? &callbacks_long
					 : pc->stream  ? &callbacks
						       : NULL,
					 &c, &p),
			 0);
	while (pos < len && !failed) {
		size_t n = pos == 0 && first ? first : step ? step : len;
		size_t end = n > len - pos ? len : pos + n;

		while (pos < end) {
			const struct imap_response *resp = (void *)1;
			size_t used = (size_t)-1;
			int r = imap_parser_feed(p, pc->in + pos, end - pos, &used, &resp);

			if (r < 0) {
				const char *msg = imap_parser_error(p);
				int r2;

				ck_assert_ptr_nonnull(msg);
				buf_printf(&out, "ERR %s", msg);
				if (r != -CPMSYNC_E_PROTOCOL)
					buf_printf(&out, " (%d)", r);
				/* sticky */
				r2 = imap_parser_feed(p, "* OK\r\n", 6, &used, &resp);
				ck_assert_int_eq(r2, r);
				ck_assert_str_eq(imap_parser_error(p), msg);
				failed = true;
				break;
			}
			loop_assert(used <= end - pos, "used %zu, fed %zu", used, end - pos);
			pos += used;
			pending += used;
			if (r == IMAP_PARSE_COMPLETE) {
				loop_assert(resp != NULL, "at %zu", pos);
				loop_assert(imap_parser_error(p) == NULL, "at %zu: %s", pos,
					    imap_parser_error(p));
				dump_resp(&out, resp);
				buf_append_char(&out, '\n');
				pending = 0;
			} else {
				loop_assert(r == IMAP_PARSE_NEED_MORE, "r %d at %zu", r, pos);
				loop_assert(resp == NULL, "at %zu", pos);
				loop_assert(pos == end, "pos %zu, end %zu", pos, end);
			}
		}
	}
	if (!failed && pending)
		buf_append_str(&out, "MORE");
	if (!failed)
		ck_assert(!c.in_lit || pending);
	if (ret_chunks)
		*ret_chunks = c.chunks;
	imap_parser_free(p);
	buf_free(&c.lit);
	if (!out.data)
		return strdup("");
	return buf_steal(&out);
}

static void check_case(const struct pcase *pc)
{
	size_t len = pc->len ? pc->len : strlen(pc->in);
	char *whole = run(pc, 0, 0, NULL);
	char *other;

	ck_assert_msg(strcmp(whole, pc->want) == 0, "case %s:\n got: %s\nwant: %s", pc->name, whole,
		      pc->want);

	other = run(pc, 0, 1, NULL);
	ck_assert_msg(strcmp(whole, other) == 0, "case %s byte by byte:\n got: %s\nwant: %s",
		      pc->name, other, whole);
	free(other);
	for (size_t step = 2; step < 8; step++) {
		other = run(pc, 0, step, NULL);
		ck_assert_msg(strcmp(whole, other) == 0,
			      "case %s in chunks of %zu:\n got: %s\nwant: %s", pc->name, step,
			      other, whole);
		free(other);
	}
	for (size_t k = 1; k < len && len <= 4096; k++) {
		other = run(pc, k, 0, NULL);
		ck_assert_msg(strcmp(whole, other) == 0,
			      "case %s split at %zu:\n got: %s\nwant: %s", pc->name, k, other,
			      whole);
		free(other);
	}
	free(whole);
}

/* ---- cases ----------------------------------------------------------- */

#define BIN(s) .in = (s), .len = sizeof(s) - 1

static const struct pcase grammar_cases[] = {
	{ "greeting",
	  "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
	  "LITERAL+ AUTH=PLAIN] Dovecot ready." CRLF,
	  .want = "* OK [CAPABILITY raw=\"IMAP4rev1 SASL-IR LOGIN-REFERRALS "
		  "ID ENABLE IDLE LITERAL+ AUTH=PLAIN\" args=(IMAP4rev1 "
		  "SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
		  "AUTH=PLAIN)] text=\"Dovecot ready.\"\n" },
	{ "capability", "* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED" CRLF,
	  .want = "* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI "
		  "LOGINDISABLED\n" },
	{ "list", "* LIST (\\HasNoChildren \\UnMarked) \"/\" INBOX" CRLF,
	  .want = "* LIST (\\HasNoChildren \\UnMarked) \"/\" INBOX\n" },
	{ "list-noselect-empty",
	  "* LIST (\\Noselect) \"/\" \"\"" CRLF "* LSUB () \".\" #news.comp.mail.misc" CRLF
	  "* LIST () NIL inbox" CRLF,
	  .want = "* LIST (\\Noselect) \"/\" \"\"\n"
		  "* LSUB () \".\" #news.comp.mail.misc\n"
		  "* LIST () NIL inbox\n" },
	{ "list-utf8", "* LIST (\\Drafts) \"/\" \"Entw\xc3\xbcrfe\"" CRLF,
	  .want = "* LIST (\\Drafts) \"/\" \"Entw\\xc3\\xbcrfe\"\n" },
	{ "list-status-5819",
	  "* LIST () \".\"  \"foo\"" CRLF "* STATUS \"foo\" (MESSAGES 30 UNSEEN 29)" CRLF
	  "* LIST (\\NonExistent) \".\" \"bar\"" CRLF,
	  .want = "* LIST () \".\" \"foo\"\n"
		  "* STATUS \"foo\" (MESSAGES 30 UNSEEN 29)\n"
		  "* LIST (\\NonExistent) \".\" \"bar\"\n" },
	{ "status",
	  "* STATUS \"INBOX\" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 1700000000 "
	  "HIGHESTMODSEQ 5)" CRLF,
	  .want = "* STATUS \"INBOX\" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY "
		  "1700000000 HIGHESTMODSEQ 5)\n" },
	{ "select-3501",
	  "* 172 EXISTS" CRLF "* 1 RECENT" CRLF "* OK [UNSEEN 12] Message 12 is first unseen" CRLF
	  "* OK [UIDVALIDITY 3857529045] UIDs valid" CRLF
	  "* OK [UIDNEXT 4392] Predicted next UID" CRLF
	  "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" CRLF
	  "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited" CRLF
	  "A142 OK [READ-WRITE] SELECT completed" CRLF,
	  .want = "* #172 EXISTS\n"
		  "* #1 RECENT\n"
		  "* OK [UNSEEN raw=\"12\" args=(12)] text=\"Message 12 is "
		  "first unseen\"\n"
		  "* OK [UIDVALIDITY raw=\"3857529045\" args=(3857529045)] "
		  "text=\"UIDs valid\"\n"
		  "* OK [UIDNEXT raw=\"4392\" args=(4392)] text=\"Predicted "
		  "next UID\"\n"
		  "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\n"
		  "* OK [PERMANENTFLAGS raw=\"(\\\\Deleted \\\\Seen \\\\*)\" "
		  "args=((\\Deleted \\Seen \\*))] text=\"Limited\"\n"
		  "A142 OK [READ-WRITE] text=\"SELECT completed\"\n" },
	{ "fetch-3501",
	  "* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 "
	  "-0700\" RFC822.SIZE 4286 ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 "
	  "-0700 (PDT)\" \"IMAP4rev1 WG mtg summary and minutes\" ((\"Terry "
	  "Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL "
	  "\"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" "
	  "\"cac.washington.edu\")) ((NIL NIL \"imap\" "
	  "\"cac.washington.edu\")) ((NIL NIL \"minutes\" "
	  "\"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" "
	  "\"MIT.EDU\")) NIL NIL \"<B27397-0100000@cac.washington.edu>\") "
	  "BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL "
	  "\"7BIT\" 3028 92))" CRLF,
	  .want = "* #12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 "
		  "02:44:25 -0700\" RFC822.SIZE 4286 ENVELOPE (\"Wed, 17 Jul "
		  "1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg summary and "
		  "minutes\" ((\"Terry Gray\" NIL \"gray\" "
		  "\"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" "
		  "\"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" "
		  "\"cac.washington.edu\")) ((NIL NIL \"imap\" "
		  "\"cac.washington.edu\")) ((NIL NIL \"minutes\" "
		  "\"CNRI.Reston.VA.US\") (\"John Klensin\" NIL \"KLENSIN\" "
		  "\"MIT.EDU\")) NIL NIL "
		  "\"<B27397-0100000@cac.washington.edu>\") BODY (\"TEXT\" "
		  "\"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 "
		  "92))\n" },
	{ "fetch-dovecot-body",
	  "* 1 FETCH (UID 1 MODSEQ (4) FLAGS (\\Seen) INTERNALDATE "
	  "\"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 12 BODYSTRUCTURE "
	  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 "
	  "1 NIL NIL NIL NIL) BODY[] {12}" CRLF "Subject: x" CRLF ")" CRLF
	  "A5 OK Fetch completed (0.001 + 0.000 secs)." CRLF,
	  .want = "* #1 FETCH (UID 1 MODSEQ (4) FLAGS (\\Seen) INTERNALDATE "
		  "\"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 12 BODYSTRUCTURE "
		  "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
		  "\"7bit\" 12 1 NIL NIL NIL NIL) BODY[] {12}\"Subject: "
		  "x\\x0d\\x0a\")\n"
		  "A5 OK text=\"Fetch completed (0.001 + 0.000 secs).\"\n" },
	{ "fetch-header-fields",
	  "* 4 FETCH (BODY[HEADER.FIELDS (DATE FROM)]<0> {5}" CRLF "ab\r\nc"
	  " UID 7 BINARY.SIZE[1] 3 BODY[1.2.MIME] NIL)" CRLF,
	  .want = "* #4 FETCH (BODY[HEADER.FIELDS (DATE FROM)]<0> "
		  "{5}\"ab\\x0d\\x0ac\" UID 7 BINARY.SIZE[1] 3 BODY[1.2.MIME] "
		  "NIL)\n" },
	{ "fetch-two-literals",
	  "* 2 FETCH (BODY[HEADER] {3}" CRLF "a\nb BODY[TEXT] {2}" CRLF "xy"
	  ")" CRLF,
	  .want = "* #2 FETCH (BODY[HEADER] {3}\"a\\x0ab\" BODY[TEXT] "
		  "{2}\"xy\")\n" },
	{ "binary-literal8", BIN("* 1 FETCH (BINARY[1] ~{5}" CRLF "ab\0cd)" CRLF),
	  .want = "* #1 FETCH (BINARY[1] ~{5}\"ab\\x00cd\")\n" },
	{ "literal-plus", "* X {3+}" CRLF "abc" CRLF, .want = "* X {3}\"abc\"\n" },
	{ "literal-zero", "* X {0}" CRLF CRLF "* Y ({0}" CRLF " {0}" CRLF ")" CRLF,
	  .want = "* X {0}\"\"\n* Y ({0}\"\" {0}\"\")\n" },
	{ "literal-lf-only", "* X {3}\nabc\n", .want = "* X {3}\"abc\"\n" },
	{ "literal-cr-lf-inside", BIN("* X {4}" CRLF "\r\r\n\0" CRLF),
	  .want = "* X {4}\"\\x0d\\x0d\\x0a\\x00\"\n" },
	{ "vanished",
	  "* VANISHED (EARLIER) 41,43:116,118,120:211,214:540" CRLF
	  "* VANISHED 405,407,410,425" CRLF,
	  .want = "* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\n"
		  "* VANISHED 405,407,410,425\n" },
	{ "esearch",
	  "* ESEARCH (TAG \"A1\") UID ALL 1:3,5" CRLF "* ESEARCH (TAG \"A282\") MIN 2 COUNT 3" CRLF
	  "* ESEARCH (TAG \"A3\") UID" CRLF,
	  .want = "* ESEARCH (TAG \"A1\") UID ALL 1:3,5\n"
		  "* ESEARCH (TAG \"A282\") MIN 2 COUNT 3\n"
		  "* ESEARCH (TAG \"A3\") UID\n" },
	{ "search", "* SEARCH 2 3 6" CRLF "* SEARCH" CRLF "* SEARCH " CRLF,
	  .want = "* SEARCH 2 3 6\n* SEARCH\n* SEARCH\n" },
	{ "appenduid-copyuid",
	  "A3 OK [APPENDUID 38505 3955] APPEND completed" CRLF
	  "A4 OK [COPYUID 38505 304,319:320 3956:3958] Done" CRLF,
	  .want = "A3 OK [APPENDUID raw=\"38505 3955\" args=(38505 3955)] "
		  "text=\"APPEND completed\"\n"
		  "A4 OK [COPYUID raw=\"38505 304,319:320 3956:3958\" "
		  "args=(38505 304,319:320 3956:3958)] text=\"Done\"\n" },
	{ "condstore-7162",
	  "* OK [HIGHESTMODSEQ 715194045007] Highest" CRLF
	  "A00 OK [MODIFIED 7,9] Conditional STORE failed" CRLF
	  "* 1 FETCH (UID 4 MODSEQ (12121231000))" CRLF
	  "* OK [NOMODSEQ] Sorry, this mailbox format doesn't support "
	  "modsequences" CRLF "* OK [CLOSED]" CRLF "* ENABLED CONDSTORE QRESYNC" CRLF,
	  .want = "* OK [HIGHESTMODSEQ raw=\"715194045007\" "
		  "args=(715194045007)] text=\"Highest\"\n"
		  "A00 OK [MODIFIED raw=\"7,9\" args=(7,9)] "
		  "text=\"Conditional STORE failed\"\n"
		  "* #1 FETCH (UID 4 MODSEQ (12121231000))\n"
		  "* OK [NOMODSEQ] text=\"Sorry, this mailbox format doesn't "
		  "support modsequences\"\n"
		  "* OK [CLOSED] text=\"\"\n"
		  "* ENABLED CONDSTORE QRESYNC\n" },
	{ "metadata-5464",
	  "* METADATA \"INBOX\" (/private/comment {3}" CRLF "foo)" CRLF
	  "* METADATA \"\" (/shared/comment \"Shared comment\")" CRLF
	  "* METADATA \"INBOX\" /shared/comment /private/comment" CRLF
	  "A5 OK [METADATA LONGENTRIES 2199] GETMETADATA complete" CRLF,
	  .want = "* METADATA \"INBOX\" (/private/comment {3}\"foo\")\n"
		  "* METADATA \"\" (/shared/comment \"Shared comment\")\n"
		  "* METADATA \"INBOX\" /shared/comment /private/comment\n"
		  "A5 OK [METADATA raw=\"LONGENTRIES 2199\" args=(LONGENTRIES "
		  "2199)] text=\"GETMETADATA complete\"\n" },
	{ "acl-4314",
	  "* ACL INBOX fred rwipslxetad -fred wetd" CRLF
	  "* LISTRIGHTS ~/Mail/saved smith la r swicdkxte" CRLF "* MYRIGHTS INBOX rwiptsldaex" CRLF,
	  .want = "* ACL INBOX fred rwipslxetad -fred wetd\n"
		  "* LISTRIGHTS ~/Mail/saved smith la r swicdkxte\n"
		  "* MYRIGHTS INBOX rwiptsldaex\n" },
	{ "notify-5465",
	  "* OK [NOTIFICATIONOVERFLOW] ...A lot of notifications" CRLF
	  "* STATUS Lists (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 5)" CRLF,
	  .want = "* OK [NOTIFICATIONOVERFLOW] text=\"...A lot of "
		  "notifications\"\n"
		  "* STATUS Lists (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 5)\n" },
	{ "misc-data",
	  "* NAMESPACE ((\"\" \"/\")) NIL ((\"Shared/\" \"/\"))" CRLF
	  "* ID (\"name\" \"Dovecot\")" CRLF "* QUOTAROOT INBOX \"\"" CRLF
	  "* QUOTA \"\" (STORAGE 10 512)" CRLF "* 3 EXPUNGE" CRLF,
	  .want = "* NAMESPACE ((\"\" \"/\")) NIL ((\"Shared/\" \"/\"))\n"
		  "* ID (\"name\" \"Dovecot\")\n"
		  "* QUOTAROOT INBOX \"\"\n"
		  "* QUOTA \"\" (STORAGE 10 512)\n"
		  "* #3 EXPUNGE\n" },
	{ "status-responses",
	  "* OK [ALERT] System shutdown in 10 minutes" CRLF
	  "A1 NO [AUTHENTICATIONFAILED] Authentication failed." CRLF
	  "A2 BAD Error in IMAP command: Unknown command" CRLF "* BYE Logging out" CRLF
	  "* PREAUTH IMAP4rev1 server logged in as Smith" CRLF "* no lowercase works" CRLF
	  "* BYE" CRLF "A9 OK" CRLF "A10 ok " CRLF,
	  .want = "* OK [ALERT] text=\"System shutdown in 10 minutes\"\n"
		  "A1 NO [AUTHENTICATIONFAILED] text=\"Authentication "
		  "failed.\"\n"
		  "A2 BAD text=\"Error in IMAP command: Unknown command\"\n"
		  "* BYE text=\"Logging out\"\n"
		  "* PREAUTH text=\"IMAP4rev1 server logged in as Smith\"\n"
		  "* NO text=\"lowercase works\"\n"
		  "* BYE text=\"\"\n"
		  "A9 OK text=\"\"\n"
		  "A10 OK text=\"\"\n" },
	{ "status-text-not-literal", "* OK trailing {5}" CRLF "A1 NO [ALERT] {3}" CRLF,
	  .want = "* OK text=\"trailing {5}\"\n"
		  "A1 NO [ALERT] text=\"{3}\"\n" },
	{ "code-free-text",
	  "* NO [BADURL \"open] bad" CRLF "* OK [ALERT no closing bracket" CRLF
	  "* OK [FOO \"a]b\" (x [y])] t" CRLF "* OK [REFERRAL imap://user;AUTH=*@SERVER2/] Try" CRLF
	  "* OK [X {3}] t" CRLF "* OK [X (a] t" CRLF "* OK [] empty" CRLF,
	  .want = "* NO [BADURL raw=\"\\\"open\" args=NULL] text=\"bad\"\n"
		  "* OK text=\"[ALERT no closing bracket\"\n"
		  "* OK [FOO raw=\"\\\"a]b\\\" (x [y])\" args=(\"a]b\" (x "
		  "[y]))] text=\"t\"\n"
		  "* OK [REFERRAL raw=\"imap://user;AUTH=*@SERVER2/\" "
		  "args=(imap://user;AUTH=*@SERVER2/)] text=\"Try\"\n"
		  "* OK [X raw=\"{3}\" args=NULL] text=\"t\"\n"
		  "* OK [X raw=\"(a\" args=NULL] text=\"t\"\n"
		  "* OK [] text=\"empty\"\n" },
	{ "continuation",
	  "+ idling" CRLF "+ " CRLF "+" CRLF "+ YGgGCSqGSIb3EgECAgIAb1kwV6AD==" CRLF
	  "+ [ALERT] not parsed" CRLF,
	  .want = "+ text=\"idling\"\n+ text=\"\"\n+ text=\"\"\n"
		  "+ text=\"YGgGCSqGSIb3EgECAgIAb1kwV6AD==\"\n"
		  "+ text=\"[ALERT] not parsed\"\n" },
	{ "nil", "* X NILX nil \"NIL\" NIL (NIL) NIL(NIL)" CRLF,
	  .want = "* X NILX NIL \"NIL\" NIL (NIL) NIL (NIL)\n" },
	{ "quoted-escapes", "* X \"a\\\"b\" \"c\\\\d\" \"\\x\" \"tab\there\" \"\"" CRLF,
	  .want = "* X \"a\\\"b\" \"c\\\\d\" \"\\\\x\" \"tab\\x09here\" "
		  "\"\"\n" },
	{ "atoms-brackets", "* X BODY[HEADER.FIELDS (A B)]<0> a[b]c[ d]e x] [y] z[" CRLF,
	  .want = "* X BODY[HEADER.FIELDS (A B)]<0> a[b]c[ d]e x] [y] z[\n" },
	{ "atom-unmatched-bracket", "* LIST () \"/\" foo[bar baz" CRLF,
	  .want = "* LIST () \"/\" foo[bar baz\n" },
	{ "spacing", "*  1  FETCH  ( UID  5 )  " CRLF "* FLAGS(\\Seen)(a)\"b\"c" CRLF,
	  .want = "* #1 FETCH (UID 5)\n* FLAGS (\\Seen) (a) \"b\" c\n" },
	{ "bare-lf", "* 1 EXISTS\n* OK x\nA1 OK y\n",
	  .want = "* #1 EXISTS\n* OK text=\"x\"\nA1 OK text=\"y\"\n" },
	{ "max-number", "* 4294967295 EXISTS" CRLF "* 0 EXISTS" CRLF "* 12ab X" CRLF,
	  .want = "* #4294967295 EXISTS\n* #0 EXISTS\n* 12ab X\n" },
	{ "number-too-big", "* 4294967296 EXISTS" CRLF,
	  .want = "ERR response number 4294967296 out of range" },
};

static const struct pcase error_cases[] = {
	{ "nul", BIN("* OK a\0b" CRLF), .want = "ERR NUL byte in response line" },
	{ "nul-data", BIN("* X (a \0)" CRLF), .want = "ERR NUL byte in response line" },
	{ "nul-after-literal", BIN("* X {1}" CRLF "\0 \0" CRLF),
	  .want = "ERR NUL byte in response line" },
	{ "bare-cr", "* OK a\rb" CRLF, .want = "ERR bare CR in response line" },
	{ "cr-cr-lf", "* OK a\r\r\n", .want = "ERR bare CR in response line" },
	{ "bare-cr-then-nul", BIN("* OK a\r\0" CRLF), .want = "ERR bare CR in response line" },
	{ "nul-then-cr", BIN("* OK a\0\rb" CRLF), .want = "ERR NUL byte in response line" },
	{ "empty-line", CRLF, .want = "ERR empty response line" },
	{ "star-only", "*" CRLF, .want = "ERR missing space after '*'" },
	{ "star-space", "* " CRLF, .want = "ERR missing response name" },
	{ "number-only", "* 5" CRLF, .want = "ERR missing response name" },
	{ "list-as-name", "* (a)" CRLF, .want = "ERR missing response name" },
	{ "tagged-data", "A1 FETCH x" CRLF, .want = "ERR tagged response without OK, NO or BAD" },
	{ "tagged-bye", "A1 BYE x" CRLF, .want = "ERR tagged response without OK, NO or BAD" },
	{ "bad-tag", "A(1 OK x" CRLF, .want = "ERR malformed response tag" },
	{ "tag-only", "A1" CRLF, .want = "ERR malformed response tag" },
	{ "status-junk", "* OK(x)" CRLF, .want = "ERR malformed status response" },
	{ "unterminated-quoted", "* X \"abc" CRLF, .want = "ERR unterminated quoted string" },
	{ "unterminated-quoted-escape", "* X \"abc\\\"" CRLF,
	  .want = "ERR unterminated quoted string" },
	{ "quoted-across-literal", "* X \"a {3}" CRLF "abc\"" CRLF,
	  .want = "ERR unterminated quoted string" },
	{ "unexpected-paren", "* X a)" CRLF, .want = "ERR unexpected ')'" },
	{ "unterminated-list", "* X (a (b)" CRLF, .want = "ERR unterminated list" },
	{ "unterminated-list-after-literal", "* X ({1}" CRLF "a" CRLF,
	  .want = "ERR unterminated list" },
	{ "ctl",
	  "* X a\x01"
	  "b" CRLF,
	  .want = "ERR unexpected control character 0x01 in response" },
	{ "del", "* X \x7f" CRLF, .want = "ERR unexpected control character 0x7f in response" },
	{ "malformed-literal", "* X {abc}" CRLF, .want = "ERR malformed literal size" },
	{ "malformed-literal-empty", "* X {}" CRLF, .want = "ERR malformed literal size" },
	{ "malformed-literal-plus", "* X {+}" CRLF, .want = "ERR malformed literal size" },
	{ "malformed-literal-open", "* X {12" CRLF, .want = "ERR malformed literal size" },
	{ "literal-not-at-end", "* X {3} a" CRLF,
	  .want = "ERR literal size not at the end of the line" },
	{ "literal-2^64", "* X {18446744073709551616}" CRLF,
	  .want = "ERR literal of 18446744073709551616 bytes exceeds the "
		  "limit of 1048576" },
	{ "literal-2^64-1", "* X {18446744073709551615}" CRLF,
	  .want = "ERR literal of 18446744073709551615 bytes exceeds the "
		  "limit of 1048576" },
	{ "literal-2^64-stream", "* 1 FETCH (BODY[] {18446744073709551616}" CRLF,
	  .stream = STREAM_ALL,
	  .want = "ERR literal of 18446744073709551616 bytes exceeds the "
		  "limit of 4294967296" },
	{ "literal-2^64-1-stream", "* 1 FETCH (BODY[] ~{18446744073709551615}" CRLF,
	  .stream = STREAM_ALL,
	  .want = "ERR literal of 18446744073709551615 bytes exceeds the "
		  "limit of 4294967296" },
	{ "literal-4G+1-stream", "* 1 FETCH (BODY[] {4294967297}" CRLF, .stream = STREAM_ALL,
	  .want = "ERR literal of 4294967297 bytes exceeds the limit of "
		  "4294967296" },
	{ "literal-many-digits",
	  "* X {000000000000000000000000000000000000000000000000000000001}" CRLF "a" CRLF,
	  .want = "* X {1}\"a\"\n" },
	{ "literal-huge-digits",
	  "* X {1000000000000000000000000000000000000000000000000000000000}" CRLF,
	  .want = "ERR literal of ...0000000000000000000000000000000000000000 "
		  "bytes exceeds the limit of 1048576" },
	{ "literal-huge-digits-plus",
	  "* X {1000000000000000000000000000000000000000000000000000000009+}" CRLF,
	  .want = "ERR literal of ...0000000000000000000000000000000000000009 "
		  "bytes exceeds the limit of 1048576" },
	{ "inline-over-default", "* X {1048577}" CRLF,
	  .want = "ERR literal of 1048577 bytes exceeds the limit of "
		  "1048576" },
	{ "need-more-line", "* OK foo", .want = "MORE" },
	{ "need-more-cr", "* OK foo\r", .want = "MORE" },
	{ "need-more-literal-size", "* X {5}\r", .want = "MORE" },
	{ "need-more-literal", "* 1 FETCH (BODY[] {5}" CRLF "hel", .want = "MORE" },
	{ "need-more-after-literal", "* 1 FETCH (BODY[] {5}" CRLF "hello", .want = "MORE" },
	{ "need-more-second", "* 1 EXISTS" CRLF "* 2 EXI", .want = "* #1 EXISTS\nMORE" },
	{ "error-after-good", "* 1 EXISTS" CRLF "* OK \0" CRLF "* 2 EXISTS" CRLF, .len = 28,
	  .want = "* #1 EXISTS\nERR NUL byte in response line" },
};

static const struct pcase limit_cases[] = {
	{ "line-at-limit", "* X 345678901234567890123456789012345678" CRLF, .lim = &small,
	  .want = "* X 345678901234567890123456789012345678\n" },
	{ "line-at-limit-lf", "* X 345678901234567890123456789012345678\n", .lim = &small,
	  .want = "* X 345678901234567890123456789012345678\n" },
	{ "line-over-limit", "* X 3456789012345678901234567890123456789" CRLF, .lim = &small,
	  .want = "ERR response line longer than 40 bytes" },
	{ "line-over-limit-lf", "* X 3456789012345678901234567890123456789\n", .lim = &small,
	  .want = "ERR response line longer than 40 bytes" },
	{ "line-over-limit-nul", BIN("* X 3456789012345678901234567890123456789\0" CRLF),
	  .lim = &small, .want = "ERR response line longer than 40 bytes" },
	{ "line-limit-nul-first", BIN("* X 34567890123456789012345678901234567\0" CRLF),
	  .lim = &small, .want = "ERR NUL byte in response line" },
	{ "line-limit-cr-at-limit", "* X 345678901234567890123456789012345678\rx" CRLF,
	  .lim = &small, .want = "ERR response line longer than 40 bytes" },
	{ "line-limit-long-no-eol",
	  "* X 3456789012345678901234567890123456789012345678901234567890", .lim = &small,
	  .want = "ERR response line longer than 40 bytes" },
	{ "line-limit-across-literal", "* X {2}" CRLF "ab 234567890123456789012345678901" CRLF,
	  .lim = &small, .want = "* X {2}\"ab\" 234567890123456789012345678901\n" },
	{ "line-limit-across-literal-over",
	  "* X {2}" CRLF "ab 2345678901234567890123456789012" CRLF, .lim = &small,
	  .want = "ERR response line longer than 40 bytes" },
	{ "depth-ok", "* X (((a)))" CRLF, .lim = &small, .want = "* X (((a)))\n" },
	{ "depth-over", "* X ((((a))))" CRLF, .lim = &small,
	  .want = "ERR list nesting deeper than 3" },
	{ "depth-over-after-literal", "* X ((({1}" CRLF "a(b)))" CRLF, .lim = &small,
	  .want = "ERR list nesting deeper than 3" },
	{ "depth-code-falls-back", "* OK [X ((((a))))] t" CRLF, .lim = &small,
	  .want = "* OK [X raw=\"((((a))))\" args=NULL] text=\"t\"\n" },
	{ "inline-at-limit", "* X {10}" CRLF "0123456789" CRLF, .lim = &small,
	  .want = "* X {10}\"0123456789\"\n" },
	{ "inline-over", "* X {11}" CRLF "01234567890" CRLF, .lim = &small,
	  .want = "ERR literal of 11 bytes exceeds the limit of 10" },
	{ "inline-total-at-limit", "* X {8}" CRLF "01234567 {7}" CRLF "0123456" CRLF, .lim = &small,
	  .want = "* X {8}\"01234567\" {7}\"0123456\"\n" },
	{ "inline-total-over", "* X {8}" CRLF "01234567 {8}" CRLF "01234567" CRLF, .lim = &small,
	  .want = "ERR literals of one response exceed the limit of 15 "
		  "bytes" },
	{ "inline-total-per-response",
	  "* X {8}" CRLF "01234567" CRLF "* X {8}" CRLF "01234567" CRLF, .lim = &small,
	  .want = "* X {8}\"01234567\"\n* X {8}\"01234567\"\n" },
	{ "streamed-at-limit", "* 1 FETCH (BODY[] {20}" CRLF "01234567890123456789)" CRLF,
	  .lim = &small, .stream = STREAM_ALL,
	  .want = "<begin 1 FETCH BODY[] 20>\"01234567890123456789\"<end>"
		  "* #1 FETCH (BODY[] {stream 20})\n" },
	{ "streamed-over", "* 1 FETCH (BODY[] {21}" CRLF "012345678901234567890)" CRLF,
	  .lim = &small, .stream = STREAM_ALL,
	  .want = "ERR literal of 21 bytes exceeds the limit of 20" },
	{ "streamed-declined-over-inline",
	  "* 1 FETCH (RFC822.HEADER {15}" CRLF "012345678901234)" CRLF, .lim = &small,
	  .stream = STREAM_BODY, .want = "ERR literal of 15 bytes exceeds the limit of 10" },
	{ "streamed-not-counted-inline",
	  "* 1 FETCH (BODY[] {20}" CRLF "01234567890123456789 X {10}" CRLF "0123456789)" CRLF,
	  .lim = &small, .stream = STREAM_BODY,
	  .want = "<begin 1 FETCH BODY[] 20>\"01234567890123456789\"<end>"
		  "* #1 FETCH (BODY[] {stream 20} X {10}\"0123456789\")\n" },
};

static const struct pcase stream_cases[] = {
	{ "stream-body",
	  "* 12 FETCH (UID 1 BODY[] {5}" CRLF "hello FLAGS (\\Seen))" CRLF "A1 OK done" CRLF,
	  .stream = STREAM_ALL,
	  .want = "<begin 12 FETCH BODY[] 5>\"hello\"<end>"
		  "* #12 FETCH (UID 1 BODY[] {stream 5} FLAGS (\\Seen))\n"
		  "A1 OK text=\"done\"\n" },
	{ "stream-zero", "* 3 FETCH (BODY[] {0}" CRLF ")" CRLF, .stream = STREAM_ALL,
	  .want = "<begin 3 FETCH BODY[] 0>\"\"<end>"
		  "* #3 FETCH (BODY[] {stream 0})\n" },
	{ "stream-binary8", BIN("* 3 FETCH (BINARY[1] ~{3}" CRLF "\0\r\n)" CRLF),
	  .stream = STREAM_ALL,
	  .want = "<begin 3 FETCH BINARY[1] 3>\"\\x00\\x0d\\x0a\"<end>"
		  "* #3 FETCH (BINARY[1] ~{stream 3})\n" },
	{ "stream-policy",
	  "* 7 FETCH (RFC822.HEADER {2}" CRLF "hh BODY[TEXT] {3}" CRLF "ttt"
	  " ENVELOPE (NIL {1}" CRLF "s))" CRLF,
	  .stream = STREAM_BODY,
	  .want = "<begin 7 FETCH BODY[TEXT] 3>\"ttt\"<end>"
		  "* #7 FETCH (RFC822.HEADER {2}\"hh\" BODY[TEXT] {stream 3} "
		  "ENVELOPE (NIL {1}\"s\"))\n" },
	{ "stream-item-null", "* METADATA INBOX ({3}" CRLF "abc)" CRLF, .stream = STREAM_ALL,
	  .want = "<begin 0 METADATA - 3>\"abc\"<end>"
		  "* METADATA INBOX ({stream 3})\n" },
	{ "stream-then-more",
	  "* 1 FETCH (BODY[] {4}" CRLF "abcd)" CRLF "* 2 FETCH (BODY[] {2}" CRLF "xy",
	  .stream = STREAM_ALL,
	  .want = "<begin 1 FETCH BODY[] 4>\"abcd\"<end>"
		  "* #1 FETCH (BODY[] {stream 4})\n"
		  "<begin 2 FETCH BODY[] 2>\"xy\"<end>MORE" },
};

/* A FETCH response over max_line (40 here) skipped whole when long_fetch
 * says so, its literals too (none passed on), and the parse going on. */
static const struct pcase long_fetch_cases[] = {
	{ "skip-one-line",
	  "* 1 FETCH (UID 7 FLAGS (\\Seen) BODYSTRUCTURE (\"text\" \"plain\" NIL))" CRLF
	  "* 2 FETCH (UID 8)" CRLF "A1 OK done" CRLF,
	  .stream = STREAM_BODY, .lim = &small, .skip_long = true,
	  .want = "<long 1 7>* #2 FETCH (UID 8)\nA1 OK text=\"done\"\n" },
	{ "skip-literals",
	  "* 3 FETCH (UID 12 BODYSTRUCTURE (\"a\" \"b\" NIL NIL) BODY[HEADER] {5}" CRLF
	  "ab\r\nc BODY[TEXT] {0}" CRLF " X ~{3+}" CRLF "}\r\n)" CRLF "* 4 FETCH (UID 13)" CRLF,
	  .stream = STREAM_BODY, .lim = &small, .skip_long = true,
	  .want = "<long 3 12>* #4 FETCH (UID 13)\n" },
	{ "skip-after-segment",
	  "* 5 FETCH (UID 20 BODY[HEADER] {2}" CRLF
	  "hh BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL))" CRLF "* 6 FETCH (UID 21)" CRLF,
	  .stream = STREAM_BODY, .lim = &small, .skip_long = true,
	  .want = "<begin 5 FETCH BODY[HEADER] 2>\"hh\"<end><long 5 20>* #6 FETCH (UID 21)\n" },
	{ "skip-uid-after-list",
	  "* 9 FETCH (FLAGS (\\Seen \"x\") UID 30 BODYSTRUCTURE (\"text\" \"plain\"))" CRLF
	  "* 10 FETCH (UID 31)" CRLF,
	  .stream = STREAM_BODY, .lim = &small, .skip_long = true,
	  .want = "<long 9 30>* #10 FETCH (UID 31)\n" },
	{ "skip-then-more", "* 1 FETCH (UID 7 BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL",
	  .stream = STREAM_BODY, .lim = &small, .skip_long = true, .want = "<long 1 7>MORE" },
	{ "refused", "* 1 FETCH (UID 666 BODYSTRUCTURE (\"text\" \"plain\" NIL NIL))" CRLF,
	  .stream = STREAM_BODY, .lim = &small, .skip_long = true,
	  .want = "<long 1 666>ERR response line longer than 40 bytes" },
	{ "uid-after-cut", "* 1 FETCH (BODYSTRUCTURE (\"text\" \"plain\" NIL NIL) UID 7)" CRLF,
	  .stream = STREAM_BODY, .lim = &small, .skip_long = true,
	  .want = "ERR response line longer than 40 bytes" },
	{ "uid-cut-in-number", "* 1 FETCH (FLAGS (\\Seen \\Answered) UID 1234567)" CRLF,
	  .stream = STREAM_BODY, .lim = &small, .skip_long = true,
	  .want = "ERR response line longer than 40 bytes" },
	{ "not-fetch", "* 1 XFETCH (UID 7 BODYSTRUCTURE (\"text\" \"plain\" NIL NIL))" CRLF,
	  .stream = STREAM_BODY, .lim = &small, .skip_long = true,
	  .want = "ERR response line longer than 40 bytes" },
	{ "tagged", "A1 OK [ALERT] a very long text that goes over the limit" CRLF,
	  .stream = STREAM_BODY, .lim = &small, .skip_long = true,
	  .want = "ERR response line longer than 40 bytes" },
	{ "no-callback", "* 1 FETCH (UID 7 FLAGS (\\Seen) BODYSTRUCTURE (\"text\" NIL))" CRLF,
	  .stream = STREAM_BODY, .lim = &small, .want = "ERR response line longer than 40 bytes" },
	{ "skipped-literal-too-big",
	  "* 1 FETCH (UID 7 BODYSTRUCTURE (\"text\" \"plain\" NIL) X {21}" CRLF,
	  .stream = STREAM_BODY, .lim = &small, .skip_long = true,
	  .want = "<long 1 7>ERR literal of a skipped FETCH response exceeds the limit of 20 "
		  "bytes" },
};

static void run_table(const struct pcase *table, int i)
{
	check_case(&table[i]);
}

START_TEST(test_grammar)
{
	run_table(grammar_cases, _i);
}
END_TEST

START_TEST(test_errors)
{
	run_table(error_cases, _i);
}
END_TEST

START_TEST(test_limits)
{
	run_table(limit_cases, _i);
}
END_TEST

START_TEST(test_streaming)
{
	run_table(stream_cases, _i);
}
END_TEST

START_TEST(test_long_fetch)
{
	run_table(long_fetch_cases, _i);
}
END_TEST

/* ---- generated inputs ------------------------------------------------ */

static char *make_line(const char *prefix, char fill, size_t content)
{
	size_t plen = strlen(prefix);
	char *s = malloc(content + 3);

	ck_assert_ptr_nonnull(s);
	ck_assert_uint_ge(content, plen);
	memcpy(s, prefix, plen);
	memset(s + plen, fill, content - plen);
	memcpy(s + content, CRLF, 3);
	return s;
}

START_TEST(test_default_line_limit)
{
	char *ok = make_line("* X ", 'a', 65536);
	char *bad = make_line("* X ", 'a', 65537);
	struct pcase pc = { .name = "long", .in = ok };
	char *r1, *r2, *want;

	want = malloc(65536 + 2);
	snprintf(want, 65536 + 2, "%s", ok);
	want[65536] = '\n';
	want[65537] = '\0';
	r1 = run(&pc, 0, 0, NULL);
	r2 = run(&pc, 0, 7, NULL);
	ck_assert_str_eq(r1, want);
	ck_assert_str_eq(r2, want);
	free(r1);
	free(r2);
	pc.in = bad;
	for (size_t step = 1; step < 4097; step += 4095) {
		r1 = run(&pc, 0, step, NULL);
		ck_assert_str_eq(r1, "ERR response line longer than 65536 bytes");
		free(r1);
	}
	r1 = run(&pc, 0, 0, NULL);
	ck_assert_str_eq(r1, "ERR response line longer than 65536 bytes");
	free(r1);
	free(want);
	free(ok);
	free(bad);
}
END_TEST

START_TEST(test_default_depth)
{
	struct buf in = BUF_INIT(4096), want = BUF_INIT(4096);
	struct pcase pc = { .name = "deep" };
	char *r;

	for (unsigned depth = 63; depth <= 65; depth++) {
		buf_reset(&in);
		buf_reset(&want);
		buf_append_str(&in, "* X ");
		for (unsigned i = 0; i < depth; i++)
			buf_append_char(&in, '(');
		buf_append_char(&in, 'a');
		for (unsigned i = 0; i < depth; i++)
			buf_append_char(&in, ')');
		buf_append_str(&want, in.data);
		buf_append_str(&in, CRLF);
		buf_append_char(&want, '\n');
		pc.in = in.data;
		pc.want = depth <= 64 ? want.data : "ERR list nesting deeper than 64";
		check_case(&pc);
	}
	buf_free(&in);
	buf_free(&want);
	(void)r;
}
END_TEST

START_TEST(test_many_responses)
{
	struct buf in = BUF_INIT(1 << 20);
	struct imap_parser *p;
	const struct imap_response *resp;
	size_t pos = 0, used;
	unsigned count = 0;
	int r;

	for (unsigned i = 1; i <= 1000; i++)
		buf_printf(&in, "* %u FETCH (UID %u BODY[] {3}" CRLF "abc)" CRLF, i, i + 100);
	ck_assert_int_eq(imap_parser_new(NULL, NULL, NULL, &p), 0);
	while (pos < in.len) {
		r = imap_parser_feed(p, in.data + pos, in.len - pos, &used, &resp);
		ck_assert_int_eq(r, IMAP_PARSE_COMPLETE);
		pos += used;
		count++;
		ck_assert(resp->has_number);
		ck_assert_uint_eq(resp->number, count);
		ck_assert_str_eq(resp->name, "FETCH");
		ck_assert_uint_eq(resp->nargs, 1);
		ck_assert_uint_eq(resp->args[0].u.list.count, 4);
		ck_assert_str_eq(resp->args[0].u.list.args[3].u.s.str, "abc");
	}
	ck_assert_uint_eq(count, 1000);
	/* an empty feed is fine */
	r = imap_parser_feed(p, "", 0, &used, &resp);
	ck_assert_int_eq(r, IMAP_PARSE_NEED_MORE);
	ck_assert_uint_eq(used, 0);
	ck_assert_ptr_null(resp);
	imap_parser_free(p);
	buf_free(&in);
}
END_TEST

START_TEST(test_stream_big)
{
	size_t size = 30000;
	struct buf in = BUF_INIT(1 << 20), out = BUF_INIT(1 << 20);
	struct ctx c = { .out = &out, .stream = STREAM_ALL, .lit = BUF_INIT(1 << 20) };
	struct imap_parser_limits lim = imap_parser_default_limits;
	struct pcase pc = { .name = "big", .stream = STREAM_ALL, .lim = &lim };
	const struct imap_response *resp;
	struct imap_parser *p;
	size_t pos = 0, used, chunks = 0, body_start;
	int r;

	/* a literal far bigger than every inline limit */
	lim.max_literal_inline = 1000;
	lim.max_inline_total = 1000;
	buf_printf(&in, "* 9 FETCH (UID 4 BODY[] {%zu}" CRLF, size);
	body_start = in.len;
	for (size_t i = 0; i < size; i++)
		buf_append_char(&in, (char)(i * 7 + (i >> 8)));
	buf_append_str(&in, " FLAGS ())" CRLF);

	ck_assert_int_eq(imap_parser_new(&lim, &callbacks, &c, &p), 0);
	while (pos < in.len) {
		size_t n = in.len - pos < 4000 ? in.len - pos : 4000;

		r = imap_parser_feed(p, in.data + pos, n, &used, &resp);
		ck_assert_int_ge(r, 0);
		pos += used;
		if (r == IMAP_PARSE_COMPLETE)
			break;
	}
	ck_assert_int_eq(r, IMAP_PARSE_COMPLETE);
	ck_assert_uint_eq(pos, in.len);
	ck_assert_uint_eq(resp->nargs, 1);
	ck_assert_int_eq(resp->args[0].u.list.args[3].type, IMAP_ARG_STREAMED);
	ck_assert_uint_eq(resp->args[0].u.list.args[3].u.size, size);
	ck_assert_uint_eq(c.lit.len, size);
	ck_assert_mem_eq(c.lit.data, in.data + body_start, size);
	ck_assert_uint_ge(c.chunks, size / 4000);
	ck_assert_uint_eq(c.begins, 1);
	ck_assert_uint_eq(c.ends, 1);
	imap_parser_free(p);

	/* one byte at a time: one chunk per byte, same bytes */
	pc.in = in.data;
	pc.len = in.len;
	{
		char *whole = run(&pc, 0, 0, &chunks);
		char *bytes;

		ck_assert_uint_le(chunks, 2);
		bytes = run(&pc, 0, 1, &chunks);
		ck_assert_uint_eq(chunks, size);
		ck_assert_str_eq(whole, bytes);
		free(whole);
		free(bytes);
	}
	buf_free(&in);
	buf_free(&out);
	buf_free(&c.lit);
}
END_TEST

START_TEST(test_stream_abort)
{
	struct buf out = BUF_INIT(4096);
	struct ctx c = {
		.out = &out, .stream = STREAM_ALL, .lit = BUF_INIT(4096), .data_ret = -EIO
	};
	const char *in = "* 1 FETCH (BODY[] {5}" CRLF "hello)" CRLF;
	const struct imap_response *resp = NULL;
	struct imap_parser *p;
	size_t used = 12345;
	int r;

	ck_assert_int_eq(imap_parser_new(NULL, &callbacks, &c, &p), 0);
	r = imap_parser_feed(p, in, strlen(in), &used, &resp);
	ck_assert_int_eq(r, -EIO);
	ck_assert_uint_eq(used, 12345); /* untouched on error */
	ck_assert_ptr_nonnull(imap_parser_error(p));
	ck_assert_ptr_nonnull(strstr(imap_parser_error(p), "callback"));
	ck_assert_int_eq(imap_parser_feed(p, "x", 1, &used, &resp), -EIO);
	ck_assert_uint_eq(c.ends, 0);
	imap_parser_reset(p);
	c.in_lit = false;
	c.data_ret = 0;
	ck_assert_ptr_null(imap_parser_error(p));
	r = imap_parser_feed(p, in, strlen(in), &used, &resp);
	ck_assert_int_eq(r, IMAP_PARSE_COMPLETE);
	ck_assert_uint_eq(used, strlen(in));
	ck_assert_uint_eq(c.ends, 1);
	imap_parser_free(p);
	buf_free(&out);
	buf_free(&c.lit);
}
END_TEST

START_TEST(test_huge_literal_not_asked)
{
	struct buf out = BUF_INIT(4096);
	struct ctx c = { .out = &out, .stream = STREAM_ALL, .lit = BUF_INIT(4096) };
	const char *in = "* 1 FETCH (BODY[] {18446744073709551615}" CRLF;
	const struct imap_response *resp;
	struct imap_parser *p;
	size_t used;

	ck_assert_int_eq(imap_parser_new(NULL, &callbacks, &c, &p), 0);
	ck_assert_int_eq(imap_parser_feed(p, in, strlen(in), &used, &resp), -CPMSYNC_E_PROTOCOL);
	ck_assert_uint_eq(c.begins, 0);
	imap_parser_free(p);
	buf_free(&out);
	buf_free(&c.lit);
}
END_TEST

START_TEST(test_sticky_and_reset)
{
	const struct imap_response *resp;
	struct imap_parser *p;
	size_t used;
	char *msg;
	int r;

	ck_assert_int_eq(imap_parser_new(NULL, NULL, NULL, &p), 0);
	ck_assert_ptr_null(imap_parser_error(p));
	r = imap_parser_feed(p, "* OK \r!\r\n", 9, &used, &resp);
	ck_assert_int_eq(r, -CPMSYNC_E_PROTOCOL);
	msg = strdup(imap_parser_error(p));
	ck_assert_str_eq(msg, "bare CR in response line");
	for (int i = 0; i < 3; i++) {
		r = imap_parser_feed(p, "* OK x\r\n", 8, &used, &resp);
		ck_assert_int_eq(r, -CPMSYNC_E_PROTOCOL);
		ck_assert_str_eq(imap_parser_error(p), msg);
	}
	imap_parser_reset(p);
	ck_assert_ptr_null(imap_parser_error(p));
	r = imap_parser_feed(p, "* OK x\r\n", 8, &used, &resp);
	ck_assert_int_eq(r, IMAP_PARSE_COMPLETE);
	ck_assert_str_eq(resp->text, "x");

	/* reset in the middle of a response forgets it */
	r = imap_parser_feed(p, "* 1 FETCH (BODY[] {10}\r\nabc", 27, &used, &resp);
	ck_assert_int_eq(r, IMAP_PARSE_NEED_MORE);
	imap_parser_reset(p);
	r = imap_parser_feed(p, "A1 OK [ALERT] hi\r\n", 18, &used, &resp);
	ck_assert_int_eq(r, IMAP_PARSE_COMPLETE);
	ck_assert_str_eq(resp->tag, "A1");
	ck_assert_str_eq(resp->code, "ALERT");
	ck_assert_str_eq(resp->code_raw, "");
	ck_assert_ptr_nonnull(resp->code_args);
	ck_assert_uint_eq(resp->code_nargs, 0);
	free(msg);
	imap_parser_free(p);
	ck_assert_ptr_null(imap_parser_free(NULL));
}
END_TEST

START_TEST(test_consumed)
{
	const char *in = "* 1 EXISTS\r\n* 2 RECENT\r\n+ go";
	const struct imap_response *resp;
	struct imap_parser *p;
	size_t used;

	ck_assert_int_eq(imap_parser_new(NULL, NULL, NULL, &p), 0);
	ck_assert_int_eq(imap_parser_feed(p, in, strlen(in), &used, &resp), IMAP_PARSE_COMPLETE);
	ck_assert_uint_eq(used, 12);
	ck_assert_str_eq(resp->name, "EXISTS");
	in += used;
	ck_assert_int_eq(imap_parser_feed(p, in, strlen(in), &used, &resp), IMAP_PARSE_COMPLETE);
	ck_assert_uint_eq(used, 12);
	ck_assert_str_eq(resp->name, "RECENT");
	in += used;
	ck_assert_int_eq(imap_parser_feed(p, in, strlen(in), &used, &resp), IMAP_PARSE_NEED_MORE);
	ck_assert_uint_eq(used, 4);
	ck_assert_int_eq(imap_parser_feed(p, "ne\r\n", 4, &used, &resp), IMAP_PARSE_COMPLETE);
	ck_assert_int_eq(resp->kind, IMAP_RESP_CONTINUATION);
	ck_assert_str_eq(resp->text, "gone");
	imap_parser_free(p);
}
END_TEST

START_TEST(test_arg_helpers)
{
	static const struct {
		enum imap_arg_type type;
		const char *s;
		bool ok32;
		uint32_t v32;
		bool ok64;
		uint64_t v64;
	} t[] = {
		{ IMAP_ARG_ATOM, "0", true, 0, true, 0 },
		{ IMAP_ARG_ATOM, "007", true, 7, true, 7 },
		{ IMAP_ARG_ATOM, "4294967295", true, UINT32_MAX, true, UINT32_MAX },
		{ IMAP_ARG_ATOM, "4294967296", false, 0, true, 4294967296u },
		{ IMAP_ARG_ATOM, "9223372036854775807", false, 0, true, INT64_MAX },
		{ IMAP_ARG_ATOM, "9223372036854775808", false, 0, false, 0 },
		{ IMAP_ARG_ATOM, "18446744073709551615", false, 0, false, 0 },
		{ IMAP_ARG_ATOM, "18446744073709551616", false, 0, false, 0 },
		{ IMAP_ARG_ATOM, "99999999999999999999999", false, 0, false, 0 },
		{ IMAP_ARG_ATOM, "+1", false, 0, false, 0 },
		{ IMAP_ARG_ATOM, "-1", false, 0, false, 0 },
		{ IMAP_ARG_ATOM, "1a", false, 0, false, 0 },
		{ IMAP_ARG_ATOM, " 1", false, 0, false, 0 },
		{ IMAP_ARG_ATOM, "", false, 0, false, 0 },
		{ IMAP_ARG_STRING, "5", false, 0, false, 0 },
		{ IMAP_ARG_LITERAL, "5", false, 0, false, 0 },
	};
	struct imap_arg a, nil = { .type = IMAP_ARG_NIL };
	uint32_t v32;
	uint64_t v64;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		a = (struct imap_arg){ .type = t[i].type, .u.s = { t[i].s, strlen(t[i].s) } };
		v32 = 12345;
		v64 = 12345;
		ck_assert_msg(imap_arg_get_u32(&a, &v32) == t[i].ok32, "%s", t[i].s);
		ck_assert_uint_eq(v32, t[i].ok32 ? t[i].v32 : 12345);
		ck_assert_msg(imap_arg_get_u64(&a, &v64) == t[i].ok64, "%s", t[i].s);
		ck_assert_uint_eq(v64, t[i].ok64 ? t[i].v64 : 12345);
	}
	ck_assert(!imap_arg_get_u32(&nil, &v32));

	a = (struct imap_arg){ .type = IMAP_ARG_ATOM, .u.s = { "FETCH", 5 } };
	ck_assert(imap_arg_atom_equals(&a, "fetch"));
	ck_assert(imap_arg_atom_equals(&a, "FETCH"));
	ck_assert(!imap_arg_atom_equals(&a, "FETC"));
	ck_assert(!imap_arg_atom_equals(&a, "FETCHX"));
	a.type = IMAP_ARG_STRING;
	ck_assert(!imap_arg_atom_equals(&a, "FETCH"));
	ck_assert(imap_arg_is_string(&a));
	ck_assert(!imap_arg_is_string(&nil));
}
END_TEST

static Suite *imap_parser_suite(void)
{
	Suite *s = suite_create("imap-parser");
	TCase *tc;

	tc = tcase_create("grammar");
	tcase_add_loop_test(tc, test_grammar, 0,
			    (int)(sizeof(grammar_cases) / sizeof(grammar_cases[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_errors, 0,
			    (int)(sizeof(error_cases) / sizeof(error_cases[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_loop_test(tc, test_limits, 0,
			    (int)(sizeof(limit_cases) / sizeof(limit_cases[0])));
	tcase_add_test(tc, test_default_line_limit);
	tcase_add_test(tc, test_default_depth);
	tcase_add_test(tc, test_huge_literal_not_asked);
	suite_add_tcase(s, tc);

	tc = tcase_create("streaming");
	tcase_add_loop_test(tc, test_streaming, 0,
			    (int)(sizeof(stream_cases) / sizeof(stream_cases[0])));
	tcase_add_test(tc, test_stream_big);
	tcase_add_loop_test(tc, test_long_fetch, 0,
			    (int)(sizeof(long_fetch_cases) / sizeof(long_fetch_cases[0])));
	tcase_add_test(tc, test_stream_abort);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_test(tc, test_many_responses);
	tcase_add_test(tc, test_sticky_and_reset);
	tcase_add_test(tc, test_consumed);
	tcase_add_test(tc, test_arg_helpers);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(imap_parser_suite)
