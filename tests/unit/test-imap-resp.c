/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * imap-resp: typed decoding of responses.  Every input is real response
 * text (RFC examples, Dovecot 2.3 output) fed through imap_parser_feed().
 */

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/error.h>

#include "testlib.h"
#include "imap/imap-parser.h"
#include "imap/imap-resp.h"
#include "imap/imap-seqset.h"
#include "util/buf.h"

#define EPROTO_ (-CPMSYNC_E_PROTOCOL)

/* the tables below leave trailing fields out */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static struct imap_parser *P, *P2;

static bool stream_bodies(void *userdata, uint32_t number, const char *name, const char *item,
			  uint64_t size)
{
	(void)userdata;
	(void)number;
	(void)name;
	(void)size;
	return item && strncasecmp(item, "BODY[", 5) == 0 && strstr(item, "STREAM");
}

static int literal_data(void *userdata, const void *data, size_t len)
{
	(void)userdata;
	(void)data;
	(void)len;
	return 0;
}

static void literal_end(void *userdata)
{
	(void)userdata;
}

static const struct imap_parser_callbacks cbs = {
	.literal_begin = stream_bodies,
	.literal_data = literal_data,
	.literal_end = literal_end,
};

static void setup(void)
{
	ck_assert_int_eq(imap_parser_new(NULL, &cbs, NULL, &P), 0);
	ck_assert_int_eq(imap_parser_new(NULL, NULL, NULL, &P2), 0);
}

static void teardown(void)
{
	P = imap_parser_free(P);
	P2 = imap_parser_free(P2);
}

/* Feeds one complete response (text ends with CRLF) to p. */
static const struct imap_response *feed_p(struct imap_parser *p, const char *text, size_t len)
{
	const struct imap_response *resp = NULL;
	size_t consumed = 0;
	int r;

	r = imap_parser_feed(p, text, len, &consumed, &resp);
	ck_assert_msg(r == IMAP_PARSE_COMPLETE, "parsing <%s>: %d %s", text, r,
		      imap_parser_error(p) ? imap_parser_error(p) : "");
	ck_assert_uint_eq(consumed, len);
	ck_assert_ptr_nonnull(resp);
	return resp;
}

static const struct imap_response *feed(const char *text)
{
	return feed_p(P, text, strlen(text));
}

static void ck_nstr(const struct imap_nstr *s, const char *want)
{
	if (!want) {
		ck_assert_msg(s->str == NULL, "expected NIL, got %.*s", (int)s->len,
			      s->str ? s->str : "");
		return;
	}
	ck_assert_msg(s->str != NULL, "expected \"%s\", got NIL", want);
	ck_assert_msg(imap_nstr_eq(s, want), "expected \"%s\", got \"%.*s\"", want, (int)s->len,
		      s->str);
}

/* The set as compact text. */
static const char *set_str(const struct rangeset *set)
{
	static char out[512];
	size_t o = 0;

	out[0] = 0;
	for (size_t i = 0; i < set->n; i++) {
		const struct range *r = &set->r[i];

		if (r->lo == r->hi)
			o += snprintf(out + o, sizeof(out) - o, "%s%u", i ? "," : "", r->lo);
		else
			o += snprintf(out + o, sizeof(out) - o, "%s%u:%u", i ? "," : "", r->lo,
				      r->hi);
	}
	return out;
}

/* -------------------------------------------------------------------- */
/* Capabilities */

#define DOVECOT_CAPS                                                                               \
	"IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "                      \
	"THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND "                         \
	"URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "                                \
	"LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT "                               \
	"SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE "                                 \
	"SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ "                       \
	"NOTIFY SPECIAL-USE METADATA"

START_TEST(test_caps_response)
{
	const struct imap_response *resp;
	struct imap_caps caps;

	imap_caps_init(&caps);
	resp = feed("* CAPABILITY " DOVECOT_CAPS "\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_CAPABILITY);
	ck_assert_int_eq(imap_caps_parse_response(&caps, resp), 0);
	ck_assert_str_eq(caps.text, DOVECOT_CAPS);
	ck_assert(imap_caps_has(&caps, IMAP_CAP_IMAP4REV1));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_QRESYNC));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_CONDSTORE));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_LITERALPLUS));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_STATUS_SIZE));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_NOTIFY));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_METADATA));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_PREVIEW));
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_LITERALMINUS));
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_STARTTLS));
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_IMAP4REV2));
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_METADATA_SERVER));
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_MAX));
	ck_assert(imap_caps_has_name(&caps, "thread=refs"));
	ck_assert(!imap_caps_has_name(&caps, "THREAD"));
	ck_assert(!imap_caps_has_name(&caps, "X-GM-EXT-1"));

	/* a new CAPABILITY replaces the old one; case-insensitive */
	resp = feed("* capability imap4REV2 auth=plain Auth=Scram-Sha-256 "
		    "literal- utf8=accept compress=deflate X-GM-EXT-1\r\n");
	ck_assert_int_eq(imap_caps_parse_response(&caps, resp), 0);
	ck_assert_str_eq(caps.text, "imap4REV2 auth=plain Auth=Scram-Sha-256 "
				    "literal- utf8=accept compress=deflate "
				    "X-GM-EXT-1");
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_IMAP4REV1));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_IMAP4REV2));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_AUTH_PLAIN));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_AUTH_SCRAM_SHA_256));
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_AUTH_SCRAM_SHA_256_PLUS));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_LITERALMINUS));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_UTF8_ACCEPT));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_COMPRESS_DEFLATE));
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_QRESYNC));

	ck_assert(imap_caps_has_name(&caps, "x-gm-ext-1"));

	/* not CAPABILITY */
	resp = feed("* 3 EXISTS\r\n");
	ck_assert_int_eq(imap_caps_parse_response(&caps, resp), -EINVAL);
	ck_assert(imap_caps_has(&caps, IMAP_CAP_IMAP4REV2));

	/* a non-atom: refused, caps unchanged */
	resp = feed("* CAPABILITY IMAP4rev1 \"IDLE\"\r\n");
	ck_assert_int_eq(imap_caps_parse_response(&caps, resp), EPROTO_);
	ck_assert(imap_caps_has(&caps, IMAP_CAP_IMAP4REV2));
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_IDLE));

	imap_caps_clear(&caps);
	ck_assert_ptr_null(caps.text);
	ck_assert_uint_eq(caps.bits, 0);
	/* names that are not printable ASCII (C1, bidi) are not shown
	 * (cpm-syncd --check prints the list) */
	resp = feed("* CAPABILITY IMAP4rev1 X-\xc2\x9b"
		    "2J X-\xe2\x80\xae"
		    "gpj IDLE\r\n");
	ck_assert_int_eq(imap_caps_parse_response(&caps, resp), 0);
	ck_assert_str_eq(caps.text, "IMAP4rev1 IDLE");
	ck_assert(imap_caps_has(&caps, IMAP_CAP_IDLE));
	imap_caps_free(&caps);
}
END_TEST

START_TEST(test_caps_code)
{
	const struct imap_response *resp;
	struct imap_caps caps;
	struct imap_resp_code c;

	imap_caps_init(&caps);
	imap_resp_code_init(&c);
	resp = feed("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID "
		    "ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready."
		    "\r\n");
	ck_assert_int_eq(imap_caps_parse_code(&caps, resp), 0);
	ck_assert_str_eq(caps.text, "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID "
				    "ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN");
	ck_assert(imap_caps_has(&caps, IMAP_CAP_STARTTLS));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_AUTH_PLAIN));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_SASL_IR));
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_AUTH_LOGIN));
	ck_assert_int_eq(imap_resp_code_parse(resp, &c), 0);
	ck_assert_int_eq(c.code, IMAP_CODE_CAPABILITY);

	resp = feed("a1 OK [CAPABILITY IMAP4rev2 LOGINDISABLED] Logged in\r\n");
	ck_assert_int_eq(imap_caps_parse_code(&caps, resp), 0);
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_STARTTLS));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_LOGINDISABLED));
	ck_assert_str_eq(caps.text, "IMAP4rev2 LOGINDISABLED");

	resp = feed("a2 OK [READ-WRITE] done\r\n");
	ck_assert_int_eq(imap_caps_parse_code(&caps, resp), -EINVAL);
	resp = feed("a3 OK done\r\n");
	ck_assert_int_eq(imap_caps_parse_code(&caps, resp), -EINVAL);
	ck_assert(imap_caps_has(&caps, IMAP_CAP_IMAP4REV2));
	imap_caps_free(&caps);
	imap_resp_code_free(&c);
}
END_TEST

START_TEST(test_caps_enabled)
{
	const struct imap_response *resp;
	struct imap_caps caps;

	imap_caps_init(&caps);
	/* RFC 5161 3.2 */
	resp = feed("* ENABLED CONDSTORE QRESYNC\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_ENABLED);
	ck_assert_int_eq(imap_caps_parse_response(&caps, resp), 0);
	ck_assert(imap_caps_has(&caps, IMAP_CAP_CONDSTORE));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_QRESYNC));
	ck_assert(!imap_caps_has(&caps, IMAP_CAP_UTF8_ACCEPT));
	/* ENABLED adds; an empty one adds nothing */
	resp = feed("* ENABLED utf8=accept X-GOOD-IDEA QRESYNC\r\n");
	ck_assert_int_eq(imap_caps_parse_response(&caps, resp), 0);
	ck_assert(imap_caps_has(&caps, IMAP_CAP_QRESYNC));
	ck_assert(imap_caps_has(&caps, IMAP_CAP_UTF8_ACCEPT));
	ck_assert_str_eq(caps.text, "CONDSTORE QRESYNC utf8=accept X-GOOD-IDEA");
	resp = feed("* ENABLED\r\n");
	ck_assert_int_eq(imap_caps_parse_response(&caps, resp), 0);
	ck_assert_str_eq(caps.text, "CONDSTORE QRESYNC utf8=accept X-GOOD-IDEA");
	imap_caps_free(&caps);
}
END_TEST

START_TEST(test_cap_names)
{
	for (int i = 0; i < IMAP_CAP_MAX; i++) {
		const char *n = imap_cap_name((enum imap_cap)i);

		ck_assert_ptr_nonnull(n);
		ck_assert_int_eq(imap_cap_from_name(n, strlen(n)), i);
	}
	ck_assert_ptr_null(imap_cap_name(IMAP_CAP_MAX));
	ck_assert_int_eq(imap_cap_from_name("LITERAL", 7), -1);
	ck_assert_int_eq(imap_cap_from_name("literal+", 8), IMAP_CAP_LITERALPLUS);
}
END_TEST

/* -------------------------------------------------------------------- */
/* Simple responses */

START_TEST(test_simple)
{
	const struct imap_response *resp;
	struct imap_flags fl;
	uint32_t n = 77;

	resp = feed("* 23 EXISTS\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_EXISTS);
	ck_assert_int_eq(imap_resp_exists(resp, &n), 0);
	ck_assert_uint_eq(n, 23);
	ck_assert_int_eq(imap_resp_recent(resp, &n), -EINVAL);
	ck_assert_int_eq(imap_resp_expunge(resp, &n), -EINVAL);

	resp = feed("* 0 EXISTS\r\n");
	ck_assert_int_eq(imap_resp_exists(resp, &n), 0);
	ck_assert_uint_eq(n, 0);

	resp = feed("* 5 RECENT\r\n");
	ck_assert_int_eq(imap_resp_recent(resp, &n), 0);
	ck_assert_uint_eq(n, 5);

	resp = feed("* 44 EXPUNGE\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_EXPUNGE);
	ck_assert_int_eq(imap_resp_expunge(resp, &n), 0);
	ck_assert_uint_eq(n, 44);

	n = 9;
	resp = feed("* 0 EXPUNGE\r\n");
	ck_assert_int_eq(imap_resp_expunge(resp, &n), EPROTO_);
	resp = feed("* EXPUNGE\r\n");
	ck_assert_int_eq(imap_resp_expunge(resp, &n), EPROTO_);
	resp = feed("* 3 EXISTS 4\r\n");
	ck_assert_int_eq(imap_resp_exists(resp, &n), EPROTO_);
	ck_assert_uint_eq(n, 9);

	/* RFC 3501 7.2.6 */
	resp = feed("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"
		    "\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_FLAGS);
	ck_assert_int_eq(imap_resp_flags(resp, &fl), 0);
	ck_assert_uint_eq(fl.count, 5);
	ck_assert(!fl.new_keywords);
	ck_assert(imap_flags_has(&fl, "\\seen"));
	ck_assert(imap_flags_has(&fl, "\\Draft"));
	ck_assert(!imap_flags_has(&fl, "\\Recent"));

	resp = feed("* FLAGS ()\r\n");
	ck_assert_int_eq(imap_resp_flags(resp, &fl), 0);
	ck_assert_uint_eq(fl.count, 0);

	resp = feed("* FLAGS \\Seen\r\n");
	ck_assert_int_eq(imap_resp_flags(resp, &fl), EPROTO_);
	resp = feed("* FLAGS (\\Seen \"x\")\r\n");
	ck_assert_int_eq(imap_resp_flags(resp, &fl), EPROTO_);
	resp = feed("* FLAGS (\\Seen (x))\r\n");
	ck_assert_int_eq(imap_resp_flags(resp, &fl), EPROTO_);

	resp = feed("* OK [UIDNEXT 4392] Predicted next UID\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_OTHER);
}
END_TEST

START_TEST(test_vanished)
{
	const struct imap_response *resp;
	struct imap_vanished v;

	imap_vanished_init(&v);
	/* RFC 7162 3.2.5.1 */
	resp = feed("* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_VANISHED);
	ck_assert_int_eq(imap_resp_vanished(resp, &v), 0);
	ck_assert(v.earlier);
	ck_assert_str_eq(set_str(&v.uids), "41,43:116,118,120:211,214:540");
	ck_assert_uint_eq(rangeset_count(&v.uids), 495);

	/* RFC 7162 3.2.10: the set is replaced, not added to */
	resp = feed("* VANISHED 405,407,410,425\r\n");
	ck_assert_int_eq(imap_resp_vanished(resp, &v), 0);
	ck_assert(!v.earlier);
	ck_assert_str_eq(set_str(&v.uids), "405,407,410,425");

	resp = feed("* vanished (earlier) 300:310,405,411\r\n");
	ck_assert_int_eq(imap_resp_vanished(resp, &v), 0);
	ck_assert(v.earlier);
	ck_assert_str_eq(set_str(&v.uids), "300:310,405,411");

	static const char *const bad[] = {
		"* VANISHED (LATER) 1:3\r\n",
		"* VANISHED abc\r\n",
		"* VANISHED 0\r\n",
		"* VANISHED 1,,2\r\n",
		"* VANISHED\r\n",
		"* VANISHED (EARLIER)\r\n",
		"* VANISHED (EARLIER) 1 2\r\n",
		"* VANISHED \"1:3\"\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		resp = feed(bad[i]);
		ck_assert_msg(imap_resp_vanished(resp, &v) == EPROTO_, "%s", bad[i]);
		ck_assert(rangeset_empty(&v.uids));
	}
	resp = feed("* 3 EXPUNGE\r\n");
	ck_assert_int_eq(imap_resp_vanished(resp, &v), -EINVAL);
	imap_vanished_free(&v);
}
END_TEST

/* -------------------------------------------------------------------- */
/* FETCH */

/* RFC 3501 7.4.2 */
#define RFC3501_FETCH                                                                              \
	"* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 "                          \
	"-0700\" RFC822.SIZE 4286 ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 "                          \
	"-0700 (PDT)\" \"IMAP4rev1 WG mtg summary and minutes\" ((\"Terry "                        \
	"Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL "                       \
	"\"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" "                         \
	"\"cac.washington.edu\")) ((NIL NIL \"imap\" "                                             \
	"\"cac.washington.edu\")) ((NIL NIL \"minutes\" "                                          \
	"\"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" "                                 \
	"\"MIT.EDU\")) NIL NIL \"<B27397-0100000@cac.washington.edu>\") "                          \
	"BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL "                             \
	"\"7BIT\" 3028 92))\r\n"

static void ck_addr(const struct imap_address_list *l, size_t i, int kind, const char *name,
		    const char *adl, const char *mailbox, const char *host)
{
	struct imap_address a;

	ck_assert_int_eq(imap_address_get(l, i, &a), 0);
	ck_assert_int_eq(a.kind, kind);
	ck_nstr(&a.name, name);
	ck_nstr(&a.adl, adl);
	ck_nstr(&a.mailbox, mailbox);
	ck_nstr(&a.host, host);
}

START_TEST(test_fetch_rfc3501)
{
	const struct imap_response *resp;
	struct imap_fetch *f = calloc(1, sizeof(*f));
	const struct imap_envelope *e = &f->envelope;
	struct imap_address a;
	struct imap_body_type bt;

	resp = feed(RFC3501_FETCH);
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_FETCH);
	ck_assert_int_eq(imap_resp_fetch(resp, f), 0);
	ck_assert_uint_eq(f->seq, 12);
	ck_assert_uint_eq(f->present, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE |
					      IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE |
					      IMAP_FETCH_BODY);
	ck_assert_uint_eq(f->flags.count, 1);
	ck_assert(imap_flags_has(&f->flags, "\\Seen"));
	ck_assert_int_eq((long long)f->internaldate, 837596665LL);
	ck_assert_uint_eq(f->rfc822_size, 4286);
	ck_nstr(&e->date, "Wed, 17 Jul 1996 02:23:25 -0700 (PDT)");
	ck_nstr(&e->subject, "IMAP4rev1 WG mtg summary and minutes");
	ck_assert_uint_eq(e->from.count, 1);
	ck_addr(&e->from, 0, IMAP_ADDRESS_MAILBOX, "Terry Gray", NULL, "gray",
		"cac.washington.edu");
	ck_addr(&e->sender, 0, IMAP_ADDRESS_MAILBOX, "Terry Gray", NULL, "gray",
		"cac.washington.edu");
	ck_addr(&e->reply_to, 0, IMAP_ADDRESS_MAILBOX, "Terry Gray", NULL, "gray",
		"cac.washington.edu");
	ck_assert_uint_eq(e->to.count, 1);
	ck_addr(&e->to, 0, IMAP_ADDRESS_MAILBOX, NULL, NULL, "imap", "cac.washington.edu");
	ck_assert_uint_eq(e->cc.count, 2);
	ck_addr(&e->cc, 0, IMAP_ADDRESS_MAILBOX, NULL, NULL, "minutes", "CNRI.Reston.VA.US");
	ck_addr(&e->cc, 1, IMAP_ADDRESS_MAILBOX, "John Klensin", NULL, "KLENSIN", "MIT.EDU");
	ck_assert_int_eq(imap_address_get(&e->cc, 2, &a), -EINVAL);
	ck_assert_uint_eq(e->bcc.count, 0);
	ck_nstr(&e->in_reply_to, NULL);
	ck_nstr(&e->message_id, "<B27397-0100000@cac.washington.edu>");
	ck_assert_ptr_nonnull(f->body);
	ck_assert_int_eq(imap_body_type_from_arg(f->body, &bt), 0);
	ck_assert(!bt.multipart);
	ck_assert(imap_nstr_caseeq(&bt.type, "text"));
	ck_assert(imap_nstr_caseeq(&bt.subtype, "plain"));
	ck_assert_uint_eq(f->nsections, 0);
	free(f);
}
END_TEST

/* The same response fed one byte at a time decodes the same. */
START_TEST(test_fetch_bytewise)
{
	static const char text[] = RFC3501_FETCH;
	const struct imap_response *resp = NULL;
	struct imap_fetch f;
	struct imap_address a;
	size_t consumed;
	int r = IMAP_PARSE_NEED_MORE;

	for (size_t i = 0; i < sizeof(text) - 1; i++) {
		ck_assert_int_eq(r, IMAP_PARSE_NEED_MORE);
		r = imap_parser_feed(P2, text + i, 1, &consumed, &resp);
		ck_assert_uint_eq(consumed, 1);
	}
	ck_assert_int_eq(r, IMAP_PARSE_COMPLETE);
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_uint_eq(f.seq, 12);
	ck_assert_uint_eq(f.rfc822_size, 4286);
	ck_assert_int_eq((long long)f.internaldate, 837596665LL);
	ck_assert_int_eq(imap_address_get(&f.envelope.cc, 1, &a), 0);
	ck_nstr(&a.mailbox, "KLENSIN");
}
END_TEST

START_TEST(test_fetch_sync)
{
	const struct imap_response *resp;
	struct imap_fetch f;

	/* Dovecot 2.3 answer to UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE n) */
	resp = feed("* 1 FETCH (UID 4 MODSEQ (12121231000) FLAGS (\\Seen "
		    "\\Answered $Forwarded))\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_uint_eq(f.seq, 1);
	ck_assert_uint_eq(f.present, IMAP_FETCH_UID | IMAP_FETCH_MODSEQ | IMAP_FETCH_FLAGS);
	ck_assert_uint_eq(f.uid, 4);
	ck_assert_uint_eq(f.modseq, 12121231000ULL);
	ck_assert_uint_eq(f.flags.count, 3);
	ck_assert(imap_flags_has(&f.flags, "$forwarded"));
	ck_assert_uint_eq(f.nsections, 0);

	/* RFC 7162 3.1.4.1 */
	resp = feed("* 7 FETCH (MODSEQ (12121231777))\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_uint_eq(f.present, IMAP_FETCH_MODSEQ);
	ck_assert_uint_eq(f.seq, 7);
	ck_assert_uint_eq(f.modseq, 12121231777ULL);

	/* largest values */
	resp = feed("* 4294967295 FETCH (UID 4294967295 MODSEQ "
		    "(9223372036854775807) FLAGS ())\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_uint_eq(f.uid, 4294967295u);
	ck_assert_uint_eq(f.modseq, 9223372036854775807ULL);
	ck_assert_uint_eq(f.flags.count, 0);

	/* RFC 8474 5.1, RFC 8970, unknown items (Gmail) skipped */
	resp = feed("* 3 FETCH (X-GM-MSGID 1278455344230334865 UID 9 "
		    "EMAILID (M6d99ac3275bb4e) THREADID (T64b478a75b7ea9) "
		    "X-FOO (a (b NIL) \"c\") PREVIEW \"Hello world\" "
		    "X-BAR {3}\r\nabc SAVEDATE \"01-Jan-1970 00:00:00 +0000\")"
		    "\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_uint_eq(f.present, IMAP_FETCH_UID | IMAP_FETCH_EMAILID | IMAP_FETCH_THREADID |
					     IMAP_FETCH_PREVIEW | IMAP_FETCH_SAVEDATE);
	ck_assert_uint_eq(f.uid, 9);
	ck_nstr(&f.emailid, "M6d99ac3275bb4e");
	ck_nstr(&f.threadid, "T64b478a75b7ea9");
	ck_nstr(&f.preview, "Hello world");
	ck_assert_int_eq((long long)f.savedate, 0);

	resp = feed("* 4 FETCH (THREADID NIL PREVIEW NIL SAVEDATE NIL "
		    "UID 10)\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_uint_eq(f.present, IMAP_FETCH_UID | IMAP_FETCH_THREADID | IMAP_FETCH_PREVIEW);
	ck_nstr(&f.threadid, NULL);
	ck_nstr(&f.preview, NULL);

	/* Cyrus 3.6: THREADID (NIL) for NIL */
	resp = feed("* 1 FETCH (FLAGS (\\Recent) UID 1 EMAILID (Medb3e68b0904cf37e6324999) "
		    "THREADID (NIL))\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_uint_eq(f.present, IMAP_FETCH_UID | IMAP_FETCH_FLAGS | IMAP_FETCH_EMAILID |
					     IMAP_FETCH_THREADID);
	ck_nstr(&f.emailid, "Medb3e68b0904cf37e6324999");
	ck_nstr(&f.threadid, NULL);

	/* Dovecot 2.3 PREVIEW=FUZZY draft form */
	resp = feed("* 5 FETCH (UID 11 PREVIEW (FUZZY \"snippet\"))\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_nstr(&f.preview, "snippet");

	/* an empty FETCH is valid */
	resp = feed("* 6 FETCH ()\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_uint_eq(f.present, 0);
	ck_assert_uint_eq(f.seq, 6);

	resp = feed("* 6 EXISTS\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), -EINVAL);
}
END_TEST

START_TEST(test_fetch_sections)
{
	const struct imap_response *resp;
	struct imap_fetch f;
	const struct imap_fetch_section *s;

	{
		/* the BINARY literal holds a NUL: feed by length */
		static const char text[] = "* 2 FETCH (UID 5 BODY[HEADER.FIELDS (MESSAGE-ID)] {21}"
					   "\r\nMessage-ID: <a@b>\r\n\r\n BODY[]<0> {5}\r\nhello "
					   "BINARY[1] ~{4}\r\na\0bc BINARY.SIZE[1] 4 BODY[TEXT] "
					   "NIL BODY[1.MIME] \"Content-Type: text/plain\" "
					   "BINARY.SIZE[2.1] 1234567890123 RFC822.HEADER "
					   "{2}\r\n\r\n)\r\n";

		resp = feed_p(P2, text, sizeof(text) - 1);
	}
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_uint_eq(f.present, IMAP_FETCH_UID);
	ck_assert_uint_eq(f.nsections, 6);
	s = &f.sections[0];
	ck_assert_uint_eq(s->name_len, strlen("BODY[HEADER.FIELDS (MESSAGE-ID)]"));
	ck_assert(!memcmp(s->name, "BODY[HEADER.FIELDS (MESSAGE-ID)]", s->name_len));
	ck_assert(!memcmp(s->section, "HEADER.FIELDS (MESSAGE-ID)", s->section_len));
	ck_assert_uint_eq(s->section_len, 26);
	ck_assert(!s->binary && !s->has_origin);
	ck_assert_int_eq(s->value->type, IMAP_ARG_LITERAL);
	ck_assert_str_eq(s->value->u.s.str, "Message-ID: <a@b>\r\n\r\n");

	s = imap_fetch_find_section(&f, "body[]");
	ck_assert_ptr_eq(s, &f.sections[1]);
	ck_assert_uint_eq(s->name_len, 6);
	ck_assert_uint_eq(s->section_len, 0);
	ck_assert(s->has_origin);
	ck_assert_uint_eq(s->origin, 0);
	ck_assert_str_eq(s->value->u.s.str, "hello");

	s = imap_fetch_find_section(&f, "BINARY[1]");
	ck_assert_ptr_nonnull(s);
	ck_assert(s->binary);
	ck_assert(s->value->literal8);
	ck_assert_uint_eq(s->value->u.s.len, 4);
	ck_assert(!memcmp(s->value->u.s.str, "a\0bc", 4));

	s = imap_fetch_find_section(&f, "BODY[TEXT]");
	ck_assert_int_eq(s->value->type, IMAP_ARG_NIL);
	s = imap_fetch_find_section(&f, "BODY[1.MIME]");
	ck_assert_int_eq(s->value->type, IMAP_ARG_STRING);
	ck_assert(!memcmp(s->section, "1.MIME", s->section_len));
	s = imap_fetch_find_section(&f, "rfc822.header");
	ck_assert_ptr_eq(s, &f.sections[5]);
	ck_assert_uint_eq(s->section_len, 6);
	ck_assert(!memcmp(s->section, "HEADER", 6));
	ck_assert_uint_eq(s->value->u.s.len, 2);
	ck_assert_ptr_null(imap_fetch_find_section(&f, "BODY[2]"));
	ck_assert_uint_eq(f.nbinsizes, 2);
	ck_assert(!memcmp(f.binsizes[0].section, "1", 1));
	ck_assert_uint_eq(f.binsizes[0].size, 4);
	ck_assert_uint_eq(f.binsizes[1].section_len, 3);
	ck_assert_uint_eq(f.binsizes[1].size, 1234567890123ULL);
}
END_TEST

START_TEST(test_fetch_streamed)
{
	const struct imap_response *resp;
	struct imap_fetch f;
	const struct imap_fetch_section *s;

	/* the fixture parser streams BODY[...STREAM...] literals */
	resp = feed("* 9 FETCH (UID 77 BODY[STREAM]<100> {10}\r\n0123456789 "
		    "FLAGS (\\Seen))\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_uint_eq(f.uid, 77);
	ck_assert_uint_eq(f.nsections, 1);
	s = &f.sections[0];
	ck_assert_int_eq(s->value->type, IMAP_ARG_STREAMED);
	ck_assert_uint_eq(s->value->u.size, 10);
	ck_assert(s->has_origin);
	ck_assert_uint_eq(s->origin, 100);
	ck_assert_uint_eq(s->name_len, strlen("BODY[STREAM]"));
}
END_TEST

START_TEST(test_fetch_envelope_groups)
{
	const struct imap_response *resp;
	struct imap_fetch f;
	const struct imap_envelope *e = &f.envelope;

	/* group syntax (RFC 3501 7.4.2), a literal subject, NIL fields,
	 * an empty address list */
	resp = feed("* 1 FETCH (UID 1 ENVELOPE (NIL {12}\r\nhello\r\nworld "
		    "((\"A\" \"@relay:\" \"a\" \"x.org\")) NIL () "
		    "((NIL NIL \"undisclosed-recipients\" NIL)"
		    "(NIL NIL NIL NIL)(\"B\" NIL \"b\" \"y.org\")) NIL NIL "
		    "\"<p@q>\" NIL))\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_nstr(&e->date, NULL);
	ck_assert_uint_eq(e->subject.len, 12);
	ck_assert(!memcmp(e->subject.str, "hello\r\nworld", 12));
	ck_addr(&e->from, 0, IMAP_ADDRESS_MAILBOX, "A", "@relay:", "a", "x.org");
	ck_assert_uint_eq(e->sender.count, 0);
	ck_assert_uint_eq(e->reply_to.count, 0);
	ck_assert_uint_eq(e->to.count, 3);
	ck_addr(&e->to, 0, IMAP_ADDRESS_GROUP_START, NULL, NULL, "undisclosed-recipients", NULL);
	ck_addr(&e->to, 1, IMAP_ADDRESS_GROUP_END, NULL, NULL, NULL, NULL);
	ck_addr(&e->to, 2, IMAP_ADDRESS_MAILBOX, "B", NULL, "b", "y.org");
	ck_nstr(&e->in_reply_to, "<p@q>");
	ck_nstr(&e->message_id, NULL);
}
END_TEST

static const char *const fetch_bad[] = {
	"* 1 FETCH (UID abc)\r\n",
	"* 1 FETCH (UID 0)\r\n",
	"* 1 FETCH (UID 4294967296)\r\n",
	"* 1 FETCH (UID -1)\r\n",
	"* 1 FETCH (UID \"5\")\r\n",
	"* 1 FETCH (UID (5))\r\n",
	"* 1 FETCH (UID)\r\n",
	"* 1 FETCH (MODSEQ 5)\r\n",
	"* 1 FETCH (MODSEQ (x))\r\n",
	"* 1 FETCH (MODSEQ ())\r\n",
	"* 1 FETCH (MODSEQ (1 2))\r\n",
	"* 1 FETCH (MODSEQ (9223372036854775808))\r\n",
	"* 1 FETCH (FLAGS \\Seen)\r\n",
	"* 1 FETCH (FLAGS (\\Seen NIL))\r\n",
	"* 1 FETCH (INTERNALDATE \"32-Jul-1996 02:44:25 -0700\")\r\n",
	"* 1 FETCH (INTERNALDATE \"17-Jux-1996 02:44:25 -0700\")\r\n",
	"* 1 FETCH (INTERNALDATE \"17-Jul-1996 24:44:25 -0700\")\r\n",
	"* 1 FETCH (INTERNALDATE \"17-Jul-1996 02:44:25 0700\")\r\n",
	"* 1 FETCH (INTERNALDATE \"17-Jul-1996 02:44\")\r\n",
	"* 1 FETCH (INTERNALDATE \"29-Feb-1900 02:44:25 +0000\")\r\n",
	"* 1 FETCH (INTERNALDATE NIL)\r\n",
	"* 1 FETCH (INTERNALDATE 17-Jul-1996)\r\n",
	"* 1 FETCH (RFC822.SIZE x)\r\n",
	"* 1 FETCH (RFC822.SIZE NIL)\r\n",
	/* truncated ENVELOPE: 9 fields */
	"* 1 FETCH (ENVELOPE (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL))\r\n",
	/* an address with 3 fields */
	"* 1 FETCH (ENVELOPE (NIL \"s\" ((NIL \"a\" \"b\")) NIL NIL NIL NIL "
	"NIL NIL NIL))\r\n",
	/* an address list that is a string */
	"* 1 FETCH (ENVELOPE (NIL \"s\" \"a@b\" NIL NIL NIL NIL NIL NIL "
	"NIL))\r\n",
	/* an atom where an nstring must be */
	"* 1 FETCH (ENVELOPE (NIL subj NIL NIL NIL NIL NIL NIL NIL NIL))\r\n",
	"* 1 FETCH (ENVELOPE NIL)\r\n",
	"* 1 FETCH (BODYSTRUCTURE NIL)\r\n",
	"* 1 FETCH (BODY \"x\")\r\n",
	"* 1 FETCH (BODY[]<x> \"a\")\r\n",
	"* 1 FETCH (BODY[]<> \"a\")\r\n",
	"* 1 FETCH (BODY[]<1>x \"a\")\r\n",
	"* 1 FETCH (BODY[] (a))\r\n",
	"* 1 FETCH (BODY[] abc)\r\n",
	"* 1 FETCH (BINARY.SIZE[1] x)\r\n",
	"* 1 FETCH (EMAILID NIL)\r\n",
	"* 1 FETCH (EMAILID \"M1\")\r\n",
	/* RFC 8474 objectid: 1 to 255 of ALPHA DIGIT _ -; EMAILID never NIL */
	"* 1 FETCH (EMAILID (NIL))\r\n",
	"* 1 FETCH (EMAILID ())\r\n",
	"* 1 FETCH (EMAILID (M1.2))\r\n",
	"* 1 FETCH (THREADID (T1 T2))\r\n",
	"* 1 FETCH (THREADID (T:1))\r\n",
	"* 1 FETCH (UID 1 FLAGS)\r\n",
	"* 1 FETCH (\"UID\" 1)\r\n",
	"* 1 FETCH ((UID) 1)\r\n",
	"* 1 FETCH UID 1\r\n",
	"* 1 FETCH (UID 1) (FLAGS ())\r\n",
	"* 0 FETCH (UID 1)\r\n",
	"* FETCH (UID 1)\r\n",
};

START_TEST(test_fetch_bad)
{
	const struct imap_response *resp;
	struct imap_fetch f, orig;

	memset(&f, 0x5a, sizeof(f));
	orig = f;
	resp = feed(fetch_bad[_i]);
	ck_assert_msg(imap_resp_fetch(resp, &f) == EPROTO_, "%s", fetch_bad[_i]);
	ck_assert_msg(memcmp(&f, &orig, sizeof(f)) == 0, "output clobbered on failure");
}
END_TEST

START_TEST(test_fetch_too_many_sections)
{
	char text[2048];
	size_t o = 0;
	const struct imap_response *resp;
	struct imap_fetch f;

	o += snprintf(text + o, sizeof(text) - o, "* 1 FETCH (UID 1");
	for (int i = 1; i <= IMAP_FETCH_MAX_SECTIONS; i++)
		o += snprintf(text + o, sizeof(text) - o, " BODY[%d] \"x\"", i);
	snprintf(text + o, sizeof(text) - o, ")\r\n");
	resp = feed(text);
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_uint_eq(f.nsections, IMAP_FETCH_MAX_SECTIONS);
	ck_assert_ptr_nonnull(imap_fetch_find_section(&f, "BODY[16]"));

	snprintf(text + o, sizeof(text) - o, " BODY[17] NIL)\r\n");
	resp = feed(text);
	ck_assert_int_eq(imap_resp_fetch(resp, &f), EPROTO_);
}
END_TEST

/* -------------------------------------------------------------------- */
/* date-time */

static const struct {
	const char *s;
	long long t; /* -1: invalid */
} dates[] = {
	{ "17-Jul-1996 02:44:25 -0700", 837596665 },
	{ "01-Jan-1970 00:00:00 +0000", 0 },
	{ " 1-Jan-1970 00:00:00 +0000", 0 },
	{ "1-Jan-1970 00:00:00 +0000", 0 },
	{ "29-Feb-2000 23:59:59 +0100", 951865199 },
	{ "31-Dec-1969 23:00:00 -0130", 1800 },
	{ "15-Mar-2038 12:00:00 +0000", 2152267200LL },
	{ " 7-feb-2024 10:11:12 +0530", 1707280872 },
	{ "00-Jan-2000 00:00:00 +0000", -1 },
	{ "31-Apr-2000 00:00:00 +0000", -1 },
	{ "29-Feb-2001 00:00:00 +0000", -1 },
	{ "17-Jul-1996 02:60:25 -0700", -1 },
	{ "17-Jul-1996 02:44:61 -0700", -1 },
	{ "17-Jul-1996 02:44:25 -0760", -1 },
	{ "17-Jul-1996 02:44:25 *0700", -1 },
	{ "17-Jul-96 02:44:25 -0700", -1 },
	{ "17 Jul 1996 02:44:25 -0700", -1 },
	{ "17-Jul-1996 02:44:25 -0700 ", -1 },
	{ "117-Jul-1996 02:44:25 -070", -1 },
	{ "Wed, 17 Jul 1996 02:23:25 -0700", -1 },
	{ "", -1 },
};

START_TEST(test_date_time)
{
	time_t t = 12345;
	int r = imap_parse_date_time(dates[_i].s, strlen(dates[_i].s), &t);

	if (dates[_i].t < 0) {
		ck_assert_msg(r == EPROTO_, "%s accepted", dates[_i].s);
		ck_assert_int_eq((long long)t, 12345);
	} else {
		ck_assert_msg(r == 0, "%s refused", dates[_i].s);
		ck_assert_int_eq((long long)t, dates[_i].t);
	}
}
END_TEST

/* -------------------------------------------------------------------- */
/* BODYSTRUCTURE and imap_arg_write */

static const struct {
	const char *bs;
	bool canonical; /* written text equals the input */
	bool multipart;
	const char *type, *subtype;
} bodies[] = {
	/* RFC 3501 7.4.2 */
	{ "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" "
	  "1152 23) (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\" \"NAME\" "
	  "\"cc.diff\") \"<960723163407.20117h@cac.washington.edu>\" "
	  "\"Compiled diff\" \"BASE64\" 4554 73) \"MIXED\")",
	  true, true, NULL, "MIXED" },
	{ "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" "
	  "3028 92)",
	  true, false, "TEXT", "PLAIN" },
	/* Dovecot 2.3, extensible form */
	{ "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 20 1 "
	  "NIL NIL NIL NIL)",
	  true, false, "text", "plain" },
	/* Dovecot 2.3, nested multipart with a message/rfc822 part */
	{ "(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-"
	  "printable\" 36 2 NIL NIL NIL NIL) (\"text\" \"html\" (\"charset\" "
	  "\"utf-8\") NIL NIL \"7bit\" 120 3 NIL NIL NIL NIL) \"alternative\" "
	  "(\"boundary\" \"b2\") NIL NIL NIL) (\"message\" \"rfc822\" NIL NIL "
	  "NIL \"7bit\" 300 (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Re: \\\"x\\\""
	  " \\\\ y\" ((\"Fred\" NIL \"fred\" \"x.org\")) NIL NIL NIL NIL NIL "
	  "NIL \"<1@x.org>\") (\"text\" \"plain\" NIL NIL NIL \"7bit\" 10 1 NIL"
	  " NIL NIL NIL) 12 NIL (\"attachment\" (\"filename\" \"m.eml\")) NIL "
	  "NIL) \"mixed\" (\"boundary\" \"b1\") NIL (\"en\" \"de\") NIL)",
	  true, true, NULL, "mixed" },
	/* a UTF-8 file name as a literal, an empty string, a CRLF */
	{ "(\"application\" \"pdf\" (\"name\" {8}\r\nr\xc3\xa9sum\xc3\xa9)"
	  " NIL {2}\r\n\r\n \"base64\" 4096 NIL (\"attachment\" (\"filename\" "
	  "\"\")) NIL NIL)",
	  true, false, "application", "pdf" },
	/* the same as a literal that is quotable: written quoted */
	{ "({4}\r\ntext \"plain\" NIL NIL NIL \"7bit\" 0 0)", false, false, "text", "plain" },
};

/* Same tree; STRING and LITERAL are the same content. */
static bool arg_equal(const struct imap_arg *a, const struct imap_arg *b)
{
	bool sa = a->type == IMAP_ARG_STRING || a->type == IMAP_ARG_LITERAL;
	bool sb = b->type == IMAP_ARG_STRING || b->type == IMAP_ARG_LITERAL;

	if (sa && sb)
		return a->u.s.len == b->u.s.len && memcmp(a->u.s.str, b->u.s.str, a->u.s.len) == 0;
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case IMAP_ARG_NIL:
		return true;
	case IMAP_ARG_ATOM:
		return a->u.s.len == b->u.s.len && memcmp(a->u.s.str, b->u.s.str, a->u.s.len) == 0;
	case IMAP_ARG_LIST:
		if (a->u.list.count != b->u.list.count)
			return false;
		for (size_t i = 0; i < a->u.list.count; i++)
			if (!arg_equal(&a->u.list.args[i], &b->u.list.args[i]))
				return false;
		return true;
	default:
		return false;
	}
}

START_TEST(test_bodystructure_roundtrip)
{
	_cleanup_buf_ struct buf in = BUF_INIT(1 << 16);
	_cleanup_buf_ struct buf out = BUF_INIT(1 << 16);
	_cleanup_buf_ struct buf again = BUF_INIT(1 << 16);
	const struct imap_response *r1, *r2;
	struct imap_fetch *f1 = calloc(1, sizeof(*f1));
	struct imap_fetch *f2 = calloc(1, sizeof(*f2));
	struct imap_body_type bt;

	ck_assert_int_eq(buf_printf(&in,
				    "* 1 FETCH (UID 3 BODYSTRUCTURE %s)"
				    "\r\n",
				    bodies[_i].bs),
			 0);
	r1 = feed_p(P, in.data, in.len);
	ck_assert_int_eq(imap_resp_fetch(r1, f1), 0);
	ck_assert(f1->present & IMAP_FETCH_BODYSTRUCTURE);
	ck_assert_int_eq(imap_arg_write(&out, f1->bodystructure), 0);
	if (bodies[_i].canonical)
		ck_assert_str_eq(out.data, bodies[_i].bs);

	ck_assert_int_eq(imap_body_type_from_arg(f1->bodystructure, &bt), 0);
	ck_assert(bt.multipart == bodies[_i].multipart);
	ck_nstr(&bt.type, bodies[_i].type);
	ck_nstr(&bt.subtype, bodies[_i].subtype);

	ck_assert_int_eq(buf_printf(&again, "* 1 FETCH (BODYSTRUCTURE %s)\r\n", out.data), 0);
	r2 = feed_p(P2, again.data, again.len);
	ck_assert_int_eq(imap_resp_fetch(r2, f2), 0);
	ck_assert(arg_equal(f1->bodystructure, f2->bodystructure));
	free(f1);
	free(f2);
}
END_TEST

START_TEST(test_arg_write_misc)
{
	_cleanup_buf_ struct buf out = BUF_INIT(64);
	_cleanup_buf_ struct buf tiny = BUF_INIT(4);
	const struct imap_response *resp;
	struct imap_fetch f;
	struct imap_body_type bt;

	resp = feed("* 1 FETCH (BODYSTRUCTURE (\"a\\\\b\" \"x\\\"y\" NIL "
		    "() (NIL)))\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_int_eq(imap_arg_write(&out, f.bodystructure), 0);
	ck_assert_str_eq(out.data, "(\"a\\\\b\" \"x\\\"y\" NIL () (NIL))");
	ck_assert_int_eq(imap_arg_write(&tiny, f.bodystructure), -E2BIG);

	/* a multipart without a subtype; a too-short list */
	resp = feed("* 1 FETCH (BODYSTRUCTURE ((\"text\" \"plain\") "
		    "(\"text\" \"html\")))\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_int_eq(imap_body_type_from_arg(f.bodystructure, &bt), EPROTO_);
	resp = feed("* 1 FETCH (BODYSTRUCTURE (\"text\"))\r\n");
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_assert_int_eq(imap_body_type_from_arg(f.bodystructure, &bt), EPROTO_);

	/* streamed literals have no content to write */
	resp = feed("* 1 FETCH (BODY[STREAM] {3}\r\nabc)\r\n");
	ck_assert_int_eq(imap_arg_write(&out, &resp->args[0]), -EINVAL);
}
END_TEST

/* -------------------------------------------------------------------- */
/* ANNOTATION (RFC 5257) */

/* Cyrus 3.6 answer to UID FETCH 1 (ANNOTATION ((/comment /altsubject)
 * (value.priv value.shared))), with a literal value. */
#define CYRUS_ANNOTATION                                                                           \
	"* 1 FETCH (UID 7 MODSEQ (12) ANNOTATION (/comment (value.priv \"mine\" value.shared "     \
	"NIL) /altsubject (value.priv NIL value.shared {9}\r\nline\r\ntwo size.shared "            \
	"\"9\")))\r\n"

static void ck_annotation(const struct imap_fetch *f)
{
	struct imap_annotation_entry en;

	ck_assert_uint_eq(f->uid, 7);
	ck_assert(f->present & IMAP_FETCH_ANNOTATION);
	ck_assert(f->annotation_values);
	ck_assert_uint_eq(f->nannotations, 2);
	ck_assert_int_eq(imap_fetch_annotation_get(f, 0, &en), 0);
	ck_nstr(&en.name, "/comment");
	ck_assert(en.has_priv && en.has_shared);
	ck_nstr(&en.priv, "mine");
	ck_nstr(&en.shared, NULL);
	ck_assert_int_eq(imap_fetch_annotation_get(f, 1, &en), 0);
	ck_nstr(&en.name, "/altsubject");
	ck_nstr(&en.priv, NULL);
	ck_nstr(&en.shared, "line\r\ntwo");
	ck_assert_int_eq(imap_fetch_annotation_get(f, 2, &en), -EINVAL);
}

START_TEST(test_annotation)
{
	static const char text[] = CYRUS_ANNOTATION;
	const struct imap_response *resp = NULL;
	struct imap_annotation_entry en;
	struct imap_fetch f;
	size_t consumed;
	int r = IMAP_PARSE_NEED_MORE;

	ck_assert_int_eq(imap_resp_fetch(feed(text), &f), 0);
	ck_annotation(&f);

	/* One byte at a time: the same. */
	for (size_t i = 0; i < sizeof(text) - 1; i++) {
		ck_assert_int_eq(r, IMAP_PARSE_NEED_MORE);
		r = imap_parser_feed(P2, text + i, 1, &consumed, &resp);
		ck_assert_uint_eq(consumed, 1);
	}
	ck_assert_int_eq(r, IMAP_PARSE_COMPLETE);
	ck_assert_int_eq(imap_resp_fetch(resp, &f), 0);
	ck_annotation(&f);

	/* Only one attribute asked for; a quoted entry name. */
	ck_assert_int_eq(imap_resp_fetch(feed("* 2 FETCH (ANNOTATION (\"/comment\" (value.shared "
					      "\"s\")) UID 9)\r\n"),
					 &f),
			 0);
	ck_assert_uint_eq(f.nannotations, 1);
	ck_assert_int_eq(imap_fetch_annotation_get(&f, 0, &en), 0);
	ck_assert(!en.has_priv && en.has_shared);
	ck_nstr(&en.shared, "s");

	/* Unsolicited (RFC 5257 4.4): names only. */
	ck_assert_int_eq(
		imap_resp_fetch(feed("* 3 FETCH (ANNOTATION (/comment /a) UID 10)\r\n"), &f), 0);
	ck_assert(!f.annotation_values);
	ck_assert_uint_eq(f.nannotations, 2);
	ck_assert_int_eq(imap_fetch_annotation_get(&f, 1, &en), 0);
	ck_nstr(&en.name, "/a");
	ck_assert(!en.has_priv && !en.has_shared);

	/* A FETCH without it has none. */
	ck_assert_int_eq(imap_resp_fetch(feed("* 4 FETCH (UID 11)\r\n"), &f), 0);
	ck_assert_int_eq(imap_fetch_annotation_get(&f, 0, &en), -EINVAL);
}
END_TEST

static const char *const annotation_bad[] = {
	"* 1 FETCH (ANNOTATION NIL)\r\n",
	"* 1 FETCH (ANNOTATION ())\r\n",
	"* 1 FETCH (ANNOTATION (/a (value.priv)))\r\n",
	"* 1 FETCH (ANNOTATION (/a (value.priv \"x\") /b))\r\n",
	"* 1 FETCH (ANNOTATION (/a /b (value.priv \"x\")))\r\n",
	"* 1 FETCH (ANNOTATION (\"\" (value.priv \"x\")))\r\n",
	"* 1 FETCH (ANNOTATION ((/a) (value.priv \"x\")))\r\n",
	"* 1 FETCH (ANNOTATION (/a (value.priv (x))))\r\n",
	"* 1 FETCH (ANNOTATION (/a (value.priv x)))\r\n",
	"* 1 FETCH (ANNOTATION (/a \"x\"))\r\n",
};

START_TEST(test_annotation_bad)
{
	struct imap_fetch f;

	ck_assert_msg(imap_resp_fetch(feed(annotation_bad[_i]), &f) == EPROTO_, "%s",
		      annotation_bad[_i]);
}
END_TEST

/* The limits: entries, attributes, name length. */
START_TEST(test_annotation_limits)
{
	struct buf b = BUF_INIT(1 << 20);
	struct imap_fetch f;

	for (int round = 0; round < 2; round++) {
		size_t n = IMAP_ANNOTATION_MAX_ENTRIES + (size_t)round;

		buf_reset(&b);
		ck_assert_int_eq(buf_printf(&b, "* 1 FETCH (UID 1 ANNOTATION ("), 0);
		for (size_t i = 0; i < n; i++)
			ck_assert_int_eq(
				buf_printf(&b, "%s/e%zu (value.priv NIL)", i ? " " : "", i), 0);
		ck_assert_int_eq(buf_printf(&b, "))\r\n"), 0);
		ck_assert_int_eq(imap_resp_fetch(feed_p(P, b.data, b.len), &f),
				 round ? EPROTO_ : 0);
	}
	for (int round = 0; round < 2; round++) {
		size_t n = IMAP_ANNOTATION_MAX_ATTRS + (size_t)round;

		buf_reset(&b);
		ck_assert_int_eq(buf_printf(&b, "* 1 FETCH (ANNOTATION (/a ("), 0);
		for (size_t i = 0; i < n; i++)
			ck_assert_int_eq(buf_printf(&b, "%sx%zu NIL", i ? " " : "", i), 0);
		ck_assert_int_eq(buf_printf(&b, ")))\r\n"), 0);
		ck_assert_int_eq(imap_resp_fetch(feed_p(P, b.data, b.len), &f),
				 round ? EPROTO_ : 0);
	}
	for (int round = 0; round < 2; round++) {
		size_t n = IMAP_ANNOTATION_ENTRY_MAX + (size_t)round;

		buf_reset(&b);
		ck_assert_int_eq(buf_printf(&b, "* 1 FETCH (ANNOTATION (/"), 0);
		for (size_t i = 1; i < n; i++)
			ck_assert_int_eq(buf_printf(&b, "a"), 0);
		ck_assert_int_eq(buf_printf(&b, " (value.priv NIL)))\r\n"), 0);
		ck_assert_int_eq(imap_resp_fetch(feed_p(P, b.data, b.len), &f),
				 round ? EPROTO_ : 0);
	}
	buf_free(&b);
}
END_TEST

/* -------------------------------------------------------------------- */
/* STATUS */

#define OBJECTID_X16 "0123456789_-cdef"
#define OBJECTID_240                                                                               \
	OBJECTID_X16 OBJECTID_X16 OBJECTID_X16 OBJECTID_X16 OBJECTID_X16 OBJECTID_X16 OBJECTID_X16 \
		OBJECTID_X16 OBJECTID_X16 OBJECTID_X16 OBJECTID_X16 OBJECTID_X16 OBJECTID_X16      \
			OBJECTID_X16 OBJECTID_X16
#define OBJECTID_255 OBJECTID_240 "0123456789ABCDE"
#define OBJECTID_256 OBJECTID_255 "F"

/* imap_objectid_parse(), shared by STATUS MAILBOXID and FETCH
 * EMAILID/THREADID: each input is the one argument of "* X-OBJ <input>". */
static const struct {
	const char *in;
	bool nil_ok;
	int r;
	const char *want; /* NULL: NIL (when r == 0) */
} objectids[] = {
	{ "(a)", false, 0, "a" },
	{ "(" OBJECTID_255 ")", false, 0, OBJECTID_255 },
	{ "(" OBJECTID_255 ")", true, 0, OBJECTID_255 },
	{ "(M6d99ac3275bb4e)", true, 0, "M6d99ac3275bb4e" },
	{ "(F2212ea87-6097-4256-9d51-71338625)", false, 0, "F2212ea87-6097-4256-9d51-71338625" },
	/* NIL: only where allowed; "(NIL)" is Cyrus 3.6's THREADID for NIL */
	{ "NIL", true, 0, NULL },
	{ "(NIL)", true, 0, NULL },
	{ "(nil)", true, 0, NULL },
	{ "NIL", false, EPROTO_, NULL },
	{ "(NIL)", false, EPROTO_, NULL },
	/* lengths 0 and 256 */
	{ "()", false, EPROTO_, NULL },
	{ "()", true, EPROTO_, NULL },
	{ "(" OBJECTID_256 ")", false, EPROTO_, NULL },
	{ "(" OBJECTID_256 ")", true, EPROTO_, NULL },
	/* characters outside ALPHA DIGIT _ - */
	{ "(M1.2)", false, EPROTO_, NULL },
	{ "(T:1)", true, EPROTO_, NULL },
	{ "(a+b)", false, EPROTO_, NULL },
	{ "(a*)", false, EPROTO_, NULL },
	{ "(\\Seen)", false, EPROTO_, NULL },
	{ "(\"a\")", false, EPROTO_, NULL }, /* quoted: an atom only */
	{ "(\"\")", true, EPROTO_, NULL },
	{ "({1}\r\na)", false, EPROTO_, NULL },
	/* not exactly one id in parentheses */
	{ "a", false, EPROTO_, NULL },
	{ "a", true, EPROTO_, NULL },
	{ "(a b)", false, EPROTO_, NULL },
	{ "(NIL NIL)", true, EPROTO_, NULL },
	{ "((a))", false, EPROTO_, NULL },
	{ "\"a\"", false, EPROTO_, NULL },
};

START_TEST(test_objectid)
{
	char line[512];
	const struct imap_response *resp;
	struct imap_nstr id = { "untouched", 9 };

	snprintf(line, sizeof(line), "* X-OBJ %s\r\n", objectids[_i].in);
	resp = feed(line);
	ck_assert_uint_eq(resp->nargs, 1);
	ck_assert_msg(imap_objectid_parse(&resp->args[0], objectids[_i].nil_ok, &id) ==
			      objectids[_i].r,
		      "%s nil_ok=%d", objectids[_i].in, objectids[_i].nil_ok);
	if (objectids[_i].r == 0)
		ck_nstr(&id, objectids[_i].want);
	else
		ck_nstr(&id, "untouched");
}
END_TEST

/* Lengths the parser cannot produce: an empty atom, and the bounds
 * checked by length alone (the id is not NUL-terminated at len). */
START_TEST(test_objectid_lengths)
{
	static char buf[300];
	struct imap_arg atom = { .type = IMAP_ARG_ATOM };
	struct imap_arg list = { .type = IMAP_ARG_LIST };
	struct imap_nstr id;

	memset(buf, 'x', sizeof(buf));
	atom.u.s.str = buf;
	list.u.list.args = &atom;
	list.u.list.count = 1;
	for (size_t len = 0; len <= 257; len++) {
		atom.u.s.len = len;
		id = (struct imap_nstr){ NULL, 0 };
		if (len >= 1 && len <= 255) {
			ck_assert_int_eq(imap_objectid_parse(&list, false, &id), 0);
			ck_assert_ptr_eq(id.str, buf);
			ck_assert_uint_eq(id.len, len);
		} else {
			ck_assert_msg(imap_objectid_parse(&list, true, &id) == EPROTO_, "len %zu",
				      len);
			ck_assert_ptr_null(id.str);
		}
	}
	/* one bad character anywhere, the last included */
	atom.u.s.len = 255;
	for (size_t i = 0; i < 255; i++) {
		buf[i] = '.';
		ck_assert_msg(imap_objectid_parse(&list, false, &id) == EPROTO_, "'.' at %zu", i);
		buf[i] = i % 2 ? '_' : '-';
	}
	ck_assert_int_eq(imap_objectid_parse(&list, false, &id), 0);
	ck_assert_uint_eq(id.len, 255);
}
END_TEST

START_TEST(test_status)
{
	const struct imap_response *resp;
	struct imap_status_data st;

	/* RFC 3501 6.3.10 */
	resp = feed("* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_STATUS);
	ck_assert_int_eq(imap_resp_status(resp, &st), 0);
	ck_nstr(&st.mailbox, "blurdybloop");
	ck_assert_uint_eq(st.present, IMAP_STATUS_ITEM_MESSAGES | IMAP_STATUS_ITEM_UIDNEXT);
	ck_assert_uint_eq(st.messages, 231);
	ck_assert_uint_eq(st.uidnext, 44292);

	/* RFC 7162 3.1.7 */
	resp = feed("* STATUS blurdybloop (MESSAGES 231 UIDNEXT 7500 "
		    "HIGHESTMODSEQ 7011231777)\r\n");
	ck_assert_int_eq(imap_resp_status(resp, &st), 0);
	ck_assert_uint_eq(st.present, IMAP_STATUS_ITEM_MESSAGES | IMAP_STATUS_ITEM_UIDNEXT |
					      IMAP_STATUS_ITEM_HIGHESTMODSEQ);
	ck_assert_uint_eq(st.highestmodseq, 7011231777ULL);

	/* RFC 9051, RFC 8474 MAILBOXID kept, unknown items skipped, a quoted
	 * and a literal name */
	resp = feed("* STATUS \"Sent Items\" (UIDVALIDITY 1650000000 UNSEEN 0 "
		    "MAILBOXID (F2212ea87-6097-4256-9d51-71338625) SIZE "
		    "123456789012 X-FOO NIL DELETED 3 RECENT 1 APPENDLIMIT "
		    "35651584)\r\n");
	ck_assert_int_eq(imap_resp_status(resp, &st), 0);
	ck_nstr(&st.mailbox, "Sent Items");
	ck_assert_uint_eq(st.present, IMAP_STATUS_ITEM_UIDVALIDITY | IMAP_STATUS_ITEM_UNSEEN |
					      IMAP_STATUS_ITEM_SIZE | IMAP_STATUS_ITEM_DELETED |
					      IMAP_STATUS_ITEM_RECENT | IMAP_STATUS_ITEM_MAILBOXID);
	ck_nstr(&st.mailboxid, "F2212ea87-6097-4256-9d51-71338625");
	ck_assert_uint_eq(st.uidvalidity, 1650000000u);
	ck_assert_uint_eq(st.unseen, 0);
	ck_assert_uint_eq(st.size, 123456789012ULL);
	ck_assert_uint_eq(st.deleted, 3);
	ck_assert_uint_eq(st.recent, 1);

	/* The longest objectid RFC 8474 allows. */
	resp = feed("* STATUS INBOX (MAILBOXID (" OBJECTID_255 ") MESSAGES 2)\r\n");
	ck_assert_int_eq(imap_resp_status(resp, &st), 0);
	ck_assert_uint_eq(st.present, IMAP_STATUS_ITEM_MAILBOXID | IMAP_STATUS_ITEM_MESSAGES);
	ck_nstr(&st.mailboxid, OBJECTID_255);

	resp = feed("* STATUS {6}\r\nINBOX! ()\r\n");
	ck_assert_int_eq(imap_resp_status(resp, &st), 0);
	ck_nstr(&st.mailbox, "INBOX!");
	ck_assert_uint_eq(st.present, 0);

	static const char *const bad[] = {
		"* STATUS INBOX (MESSAGES abc)\r\n",
		"* STATUS INBOX (MESSAGES)\r\n",
		"* STATUS INBOX (MESSAGES 1 UIDNEXT)\r\n",
		"* STATUS INBOX (UIDNEXT 4294967296)\r\n",
		"* STATUS INBOX (HIGHESTMODSEQ (5))\r\n",
		"* STATUS INBOX MESSAGES 1\r\n",
		"* STATUS INBOX\r\n",
		"* STATUS (MESSAGES 1)\r\n",
		"* STATUS NIL (MESSAGES 1)\r\n",
		"* STATUS INBOX (\"MESSAGES\" 1)\r\n",
		/* RFC 8474 objectid: in parentheses, 1 to 255 of ALPHA DIGIT _ - */
		"* STATUS INBOX (MAILBOXID F123)\r\n",
		"* STATUS INBOX (MAILBOXID ())\r\n",
		"* STATUS INBOX (MAILBOXID (a b))\r\n",
		"* STATUS INBOX (MAILBOXID (\"F1\"))\r\n",
		"* STATUS INBOX (MAILBOXID (F1.2))\r\n",
		"* STATUS INBOX (MAILBOXID NIL)\r\n",
		"* STATUS INBOX (MAILBOXID (" OBJECTID_256 "))\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		st.messages = 99;
		resp = feed(bad[i]);
		ck_assert_msg(imap_resp_status(resp, &st) == EPROTO_, "%s", bad[i]);
		ck_assert_uint_eq(st.messages, 99);
	}
}
END_TEST

/* -------------------------------------------------------------------- */
/* LIST */

static const struct {
	const char *text;
	unsigned attrs;
	size_t nattrs;
	char delim;
	const char *mailbox;
	bool childinfo;
	const char *oldname;
} lists[] = {
	/* RFC 3501 7.2.2 */
	{ "* LIST (\\Noselect) \"/\" ~/Mail/foo\r\n", IMAP_MBOX_NOSELECT, 1, '/', "~/Mail/foo" },
	{ "* LSUB () \".\" #news.comp.mail.misc\r\n", 0, 0, '.', "#news.comp.mail.misc" },
	/* Dovecot 2.3 */
	{ "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n",
	  IMAP_MBOX_HASNOCHILDREN | IMAP_MBOX_SENT, 2, '/', "Sent" },
	{ "* LIST (\\HasChildren) \".\" INBOX\r\n", IMAP_MBOX_HASCHILDREN, 1, '.', "INBOX" },
	{ "* LIST (\\HasNoChildren \\UnMarked \\Trash) \"/\" \"Deleted "
	  "Messages\"\r\n",
	  IMAP_MBOX_HASNOCHILDREN | IMAP_MBOX_UNMARKED | IMAP_MBOX_TRASH, 3, '/',
	  "Deleted Messages" },
	{ "* LIST (\\Marked \\NoInferiors) NIL \"inbox\"\r\n",
	  IMAP_MBOX_MARKED | IMAP_MBOX_NOINFERIORS, 2, 0, "inbox" },
	/* RFC 6154 */
	{ "* LIST (\\All \\Archive \\Drafts \\Flagged \\Junk \\X-Other) \"/\" "
	  "x\r\n",
	  IMAP_MBOX_ALL | IMAP_MBOX_ARCHIVE | IMAP_MBOX_DRAFTS | IMAP_MBOX_FLAGGED | IMAP_MBOX_JUNK,
	  6, '/', "x" },
	/* RFC 5258 */
	{ "* LIST (\\Subscribed \\NonExistent \\Remote) \"/\" "
	  "\"Fruit/Peach\"\r\n",
	  IMAP_MBOX_SUBSCRIBED | IMAP_MBOX_NONEXISTENT | IMAP_MBOX_REMOTE, 3, '/', "Fruit/Peach" },
	{ "* LIST () \"/\" \"Foo\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n", 0, 0, '/', "Foo", true },
	/* RFC 5465 5.4 / RFC 9051 */
	{ "* LIST () \"/\" \"NewMailbox\" (\"OLDNAME\" (\"OldMailbox\"))\r\n", 0, 0, '/',
	  "NewMailbox", false, "OldMailbox" },
	/* unknown extended items are skipped */
	{ "* LIST () \"/\" Bar (\"MYEXT\" (1 (2)) \"CHILDINFO\" "
	  "(\"X\" \"SUBSCRIBED\"))\r\n",
	  0, 0, '/', "Bar", true },
	/* a literal name (UTF-8), a "\" delimiter */
	{ "* LIST () \"\\\\\" {6}\r\nM\xc3\xbcll/\r\n", 0, 0, '\\', "M\xc3\xbcll/" },
	/* mUTF-7 as sent */
	{ "* LIST () \"/\" \"Entw&APw-rfe\"\r\n", 0, 0, '/', "Entw&APw-rfe" },
};

START_TEST(test_list)
{
	const struct imap_response *resp;
	struct imap_list l;

	resp = feed(lists[_i].text);
	ck_assert_int_eq(imap_resp_list(resp, &l), 0);
	ck_assert_uint_eq(l.attrs, lists[_i].attrs);
	ck_assert_uint_eq(l.attr_count, lists[_i].nattrs);
	ck_assert_int_eq(l.delimiter, lists[_i].delim);
	ck_nstr(&l.mailbox, lists[_i].mailbox);
	ck_assert(l.childinfo_subscribed == lists[_i].childinfo);
	ck_nstr(&l.oldname, lists[_i].oldname);
}
END_TEST

static const char *const list_bad[] = {
	"* LIST \\Noselect \"/\" foo\r\n",
	"* LIST () \"ab\" foo\r\n",
	"* LIST () \"\" foo\r\n",
	"* LIST () / foo\r\n",
	"* LIST () \"/\"\r\n",
	"* LIST () \"/\" (foo)\r\n",
	"* LIST (\"\\\\Noselect\") \"/\" foo\r\n",
	"* LIST () \"/\" foo (\"CHILDINFO\")\r\n",
	"* LIST () \"/\" foo (\"OLDNAME\" (\"a\" \"b\"))\r\n",
	"* LIST () \"/\" foo bar\r\n",
	"* LIST () \"/\" foo () x\r\n",
};

START_TEST(test_list_bad)
{
	const struct imap_response *resp;
	struct imap_list l;

	resp = feed(list_bad[_i]);
	ck_assert_msg(imap_resp_list(resp, &l) == EPROTO_, "%s", list_bad[_i]);
}
END_TEST

/* -------------------------------------------------------------------- */
/* SEARCH / ESEARCH */

START_TEST(test_search)
{
	const struct imap_response *resp;
	struct imap_search s;

	imap_search_init(&s);
	/* RFC 3501 */
	resp = feed("* SEARCH 2 84 882\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_SEARCH);
	ck_assert_int_eq(imap_resp_search(resp, &s), 0);
	ck_assert_str_eq(set_str(&s.nums), "2,84,882");
	ck_assert(!s.has_modseq);

	resp = feed("* SEARCH\r\n");
	ck_assert_int_eq(imap_resp_search(resp, &s), 0);
	ck_assert(rangeset_empty(&s.nums));

	/* RFC 7162 3.1.5 */
	resp = feed("* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)"
		    "\r\n");
	ck_assert_int_eq(imap_resp_search(resp, &s), 0);
	ck_assert_str_eq(set_str(&s.nums), "2,5:7,11:12,18:20,23");
	ck_assert(s.has_modseq);
	ck_assert_uint_eq(s.modseq, 917162500);

	static const char *const bad[] = {
		"* SEARCH 2 x\r\n",	     "* SEARCH 2 0\r\n",	"* SEARCH 2 (MODSEQ)\r\n",
		"* SEARCH 2 (MODSEQ x)\r\n", "* SEARCH 2 MODSEQ 5\r\n", "* SEARCH (MODSEQ 5) 2\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		resp = feed(bad[i]);
		ck_assert_msg(imap_resp_search(resp, &s) == EPROTO_, "%s", bad[i]);
		ck_assert(rangeset_empty(&s.nums));
	}
	imap_search_free(&s);
}
END_TEST

START_TEST(test_esearch)
{
	const struct imap_response *resp;
	struct imap_esearch e;

	imap_esearch_init(&e);
	/* RFC 4731 */
	resp = feed("* ESEARCH (TAG \"A282\") MIN 2 COUNT 3\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_ESEARCH);
	ck_assert_int_eq(imap_resp_esearch(resp, &e), 0);
	ck_nstr(&e.tag, "A282");
	ck_assert(!e.uid);
	ck_assert_uint_eq(e.present, IMAP_ESEARCH_MIN | IMAP_ESEARCH_COUNT);
	ck_assert_uint_eq(e.min, 2);
	ck_assert_uint_eq(e.count, 3);

	resp = feed("* ESEARCH (TAG \"A283\") ALL 2,10:11\r\n");
	ck_assert_int_eq(imap_resp_esearch(resp, &e), 0);
	ck_assert_uint_eq(e.present, IMAP_ESEARCH_ALL);
	ck_assert_str_eq(set_str(&e.all), "2,10:11");

	resp = feed("* ESEARCH (TAG \"A285\") UID MIN 7 MAX 3800\r\n");
	ck_assert_int_eq(imap_resp_esearch(resp, &e), 0);
	ck_assert(e.uid);
	ck_assert_uint_eq(e.present, IMAP_ESEARCH_MIN | IMAP_ESEARCH_MAX);
	ck_assert_uint_eq(e.max, 3800);
	ck_assert(rangeset_empty(&e.all));

	/* RFC 7162 3.1.5; unknown return data (PARTIAL, RFC 9394) skipped */
	resp = feed("* ESEARCH (TAG \"a\") UID ALL 1:3,5 MODSEQ 1236 "
		    "PARTIAL (1:10 1,3)\r\n");
	ck_assert_int_eq(imap_resp_esearch(resp, &e), 0);
	ck_assert_uint_eq(e.present, IMAP_ESEARCH_ALL | IMAP_ESEARCH_MODSEQ);
	ck_assert_str_eq(set_str(&e.all), "1:3,5");
	ck_assert_uint_eq(e.modseq, 1236);

	/* no correlator, nothing found (RFC 9051) */
	resp = feed("* ESEARCH UID\r\n");
	ck_assert_int_eq(imap_resp_esearch(resp, &e), 0);
	ck_nstr(&e.tag, NULL);
	ck_assert(e.uid);
	ck_assert_uint_eq(e.present, 0);

	static const char *const bad[] = {
		"* ESEARCH (TAG \"a\") MIN x\r\n",	     "* ESEARCH (TAG \"a\") MIN\r\n",
		"* ESEARCH (TAG \"a\") ALL 1:3 COUNT\r\n",   "* ESEARCH (TAG \"a\") ALL 1:x\r\n",
		"* ESEARCH (TAG \"a\") COUNT 4 ALL (1)\r\n", "* ESEARCH (TAG) COUNT 1\r\n",
		"* ESEARCH (FOO \"a\") COUNT 1\r\n",	     "* ESEARCH UID MODSEQ (1)\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		resp = feed(bad[i]);
		ck_assert_msg(imap_resp_esearch(resp, &e) == EPROTO_, "%s", bad[i]);
		ck_assert(rangeset_empty(&e.all));
	}
	imap_esearch_free(&e);
}
END_TEST

/* -------------------------------------------------------------------- */
/* METADATA, ACL, NAMESPACE */

START_TEST(test_metadata)
{
	const struct imap_response *resp;
	struct imap_metadata md;
	struct imap_metadata_entry me;

	/* RFC 5464 4.2 */
	resp = feed("* METADATA \"INBOX\" (/private/comment \"My own comment\")"
		    "\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_METADATA);
	ck_assert_int_eq(imap_resp_metadata(resp, &md), 0);
	ck_nstr(&md.mailbox, "INBOX");
	ck_assert(md.has_values);
	ck_assert_uint_eq(md.count, 1);
	ck_assert_int_eq(imap_metadata_get(&md, 0, &me), 0);
	ck_nstr(&me.name, "/private/comment");
	ck_assert_int_eq(me.value->type, IMAP_ARG_STRING);
	ck_assert_str_eq(me.value->u.s.str, "My own comment");
	ck_assert_int_eq(imap_metadata_get(&md, 1, &me), -EINVAL);

	resp = feed("* METADATA \"\" (/shared/comment {16}\r\nline one\r\n"
		    "line 2 /private/comment NIL /shared/admin "
		    "\"mailto:a@b\")\r\n");
	ck_assert_int_eq(imap_resp_metadata(resp, &md), 0);
	ck_nstr(&md.mailbox, "");
	ck_assert_uint_eq(md.count, 3);
	ck_assert_int_eq(imap_metadata_get(&md, 0, &me), 0);
	ck_assert_int_eq(me.value->type, IMAP_ARG_LITERAL);
	ck_assert_str_eq(me.value->u.s.str, "line one\r\nline 2");
	ck_assert_int_eq(imap_metadata_get(&md, 1, &me), 0);
	ck_nstr(&me.name, "/private/comment");
	ck_assert_int_eq(me.value->type, IMAP_ARG_NIL);
	ck_assert_int_eq(imap_metadata_get(&md, 2, &me), 0);
	ck_nstr(&me.name, "/shared/admin");

	/* RFC 5464 4.4.2: unsolicited, names only */
	resp = feed("* METADATA INBOX /shared/comment /private/comment\r\n");
	ck_assert_int_eq(imap_resp_metadata(resp, &md), 0);
	ck_assert(!md.has_values);
	ck_assert_uint_eq(md.count, 2);
	ck_assert_int_eq(imap_metadata_get(&md, 1, &me), 0);
	ck_nstr(&me.name, "/private/comment");
	ck_assert_ptr_null(me.value);

	static const char *const bad[] = {
		"* METADATA INBOX (/a)\r\n",	      "* METADATA INBOX (/a (b))\r\n",
		"* METADATA INBOX (/a \"x\") /b\r\n", "* METADATA INBOX\r\n",
		"* METADATA (/a \"x\")\r\n",	      "* METADATA INBOX ((/a) \"x\")\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		resp = feed(bad[i]);
		ck_assert_msg(imap_resp_metadata(resp, &md) == EPROTO_, "%s", bad[i]);
	}
}
END_TEST

START_TEST(test_acl)
{
	const struct imap_response *resp;
	struct imap_acl acl;
	struct imap_listrights lr;
	struct imap_nstr id, rights, mbox;

	/* RFC 4314 3.6, 3.7, 3.8 */
	resp = feed("* ACL INBOX Fred rwipsldexta \"Bob Smith\" lr\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_ACL);
	ck_assert_int_eq(imap_resp_acl(resp, &acl), 0);
	ck_nstr(&acl.mailbox, "INBOX");
	ck_assert_uint_eq(acl.count, 2);
	ck_assert_int_eq(imap_acl_get(&acl, 0, &id, &rights), 0);
	ck_nstr(&id, "Fred");
	ck_nstr(&rights, "rwipsldexta");
	ck_assert_int_eq(imap_acl_get(&acl, 1, &id, &rights), 0);
	ck_nstr(&id, "Bob Smith");
	ck_nstr(&rights, "lr");
	ck_assert_int_eq(imap_acl_get(&acl, 2, &id, &rights), -EINVAL);

	resp = feed("* ACL Empty\r\n");
	ck_assert_int_eq(imap_resp_acl(resp, &acl), 0);
	ck_assert_uint_eq(acl.count, 0);

	resp = feed("* LISTRIGHTS ~/Mail/saved smith la r swicdkxte\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_LISTRIGHTS);
	ck_assert_int_eq(imap_resp_listrights(resp, &lr), 0);
	ck_nstr(&lr.mailbox, "~/Mail/saved");
	ck_nstr(&lr.identifier, "smith");
	ck_nstr(&lr.required, "la");
	ck_assert_uint_eq(lr.noptional, 2);
	ck_assert_str_eq(lr.optional[0].u.s.str, "r");
	ck_assert_str_eq(lr.optional[1].u.s.str, "swicdkxte");

	resp = feed("* LISTRIGHTS archive.imap anyone \"\"\r\n");
	ck_assert_int_eq(imap_resp_listrights(resp, &lr), 0);
	ck_nstr(&lr.required, "");
	ck_assert_uint_eq(lr.noptional, 0);

	resp = feed("* MYRIGHTS INBOX rwiptsldaex\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_MYRIGHTS);
	ck_assert_int_eq(imap_resp_myrights(resp, &mbox, &rights), 0);
	ck_nstr(&mbox, "INBOX");
	ck_nstr(&rights, "rwiptsldaex");

	resp = feed("* ACL INBOX Fred\r\n");
	ck_assert_int_eq(imap_resp_acl(resp, &acl), EPROTO_);
	resp = feed("* ACL INBOX Fred (r)\r\n");
	ck_assert_int_eq(imap_resp_acl(resp, &acl), EPROTO_);
	resp = feed("* MYRIGHTS INBOX\r\n");
	ck_assert_int_eq(imap_resp_myrights(resp, &mbox, &rights), EPROTO_);
	resp = feed("* MYRIGHTS INBOX NIL\r\n");
	ck_assert_int_eq(imap_resp_myrights(resp, &mbox, &rights), EPROTO_);
	resp = feed("* LISTRIGHTS INBOX smith\r\n");
	ck_assert_int_eq(imap_resp_listrights(resp, &lr), EPROTO_);
	resp = feed("* LISTRIGHTS INBOX smith la (r)\r\n");
	ck_assert_int_eq(imap_resp_listrights(resp, &lr), EPROTO_);
}
END_TEST

START_TEST(test_namespace)
{
	const struct imap_response *resp;
	struct imap_namespace ns;
	struct imap_ns_entry e;

	/* Dovecot 2.3 default */
	resp = feed("* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
	ck_assert_int_eq(imap_resp_type(resp), IMAP_RT_NAMESPACE);
	ck_assert_int_eq(imap_resp_namespace(resp, &ns), 0);
	ck_assert_uint_eq(ns.personal.count, 1);
	ck_assert_uint_eq(ns.other.count, 0);
	ck_assert_uint_eq(ns.shared.count, 0);
	ck_assert_int_eq(imap_ns_get(&ns.personal, 0, &e), 0);
	ck_nstr(&e.prefix, "");
	ck_assert_int_eq(e.delimiter, '.');
	ck_assert_int_eq(imap_ns_get(&ns.personal, 1, &e), -EINVAL);
	ck_assert_int_eq(imap_ns_get(&ns.other, 0, &e), -EINVAL);

	/* RFC 2342 5 / RFC 9051 7.3.5, with extensions */
	resp = feed("* NAMESPACE ((\"\" \"/\")(\"#mh/\" \"/\" \"X-PARAM\" "
		    "(\"FLAG1\" \"FLAG2\"))) ((\"~\" \"/\")) ((\"#shared/\" "
		    "\"/\")(\"#public/\" \"/\")(\"#ftp/\" \"/\")(\"#news.\" "
		    "\".\"))\r\n");
	ck_assert_int_eq(imap_resp_namespace(resp, &ns), 0);
	ck_assert_uint_eq(ns.personal.count, 2);
	ck_assert_int_eq(imap_ns_get(&ns.personal, 1, &e), 0);
	ck_nstr(&e.prefix, "#mh/");
	ck_assert_int_eq(e.delimiter, '/');
	ck_assert_uint_eq(ns.other.count, 1);
	ck_assert_int_eq(imap_ns_get(&ns.other, 0, &e), 0);
	ck_nstr(&e.prefix, "~");
	ck_assert_uint_eq(ns.shared.count, 4);
	ck_assert_int_eq(imap_ns_get(&ns.shared, 3, &e), 0);
	ck_nstr(&e.prefix, "#news.");
	ck_assert_int_eq(e.delimiter, '.');

	resp = feed("* NAMESPACE ((\"\" NIL)) NIL NIL\r\n");
	ck_assert_int_eq(imap_resp_namespace(resp, &ns), 0);
	ck_assert_int_eq(imap_ns_get(&ns.personal, 0, &e), 0);
	ck_assert_int_eq(e.delimiter, 0);

	static const char *const bad[] = {
		"* NAMESPACE ((\"\" \"ab\")) NIL NIL\r\n",
		"* NAMESPACE ((\"\")) NIL NIL\r\n",
		"* NAMESPACE ((\"\" \"/\")) NIL\r\n",
		"* NAMESPACE (\"\" \"/\") NIL NIL\r\n",
		"* NAMESPACE ((\"\" \"/\" \"X\")) NIL NIL\r\n",
		"* NAMESPACE \"x\" NIL NIL\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		resp = feed(bad[i]);
		ck_assert_msg(imap_resp_namespace(resp, &ns) == EPROTO_, "%s", bad[i]);
	}
}
END_TEST

/* -------------------------------------------------------------------- */
/* Response codes */

static const struct {
	const char *text;
	enum imap_code code;
	uint32_t num;
	uint64_t num64;
	const char *set, *set2;
} codes[] = {
	{ "a OK done\r\n", IMAP_CODE_NONE },
	{ "* OK [ALERT] System shutdown in 10 minutes\r\n", IMAP_CODE_ALERT },
	{ "* NO [PARSE] bad header\r\n", IMAP_CODE_PARSE },
	{ "A142 OK [READ-WRITE] SELECT completed\r\n", IMAP_CODE_READ_WRITE },
	{ "A932 OK [READ-ONLY] EXAMINE completed\r\n", IMAP_CODE_READ_ONLY },
	{ "A003 NO [TRYCREATE] No such mailbox\r\n", IMAP_CODE_TRYCREATE },
	{ "* OK [UNSEEN 12] Message 12 is first unseen\r\n", IMAP_CODE_UNSEEN, 12, 12 },
	{ "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n", IMAP_CODE_UIDVALIDITY, 3857529045u,
	  3857529045u },
	{ "* OK [UIDNEXT 4392] Predicted next UID\r\n", IMAP_CODE_UIDNEXT, 4392, 4392 },
	{ "* OK [uidnext 1] lower case\r\n", IMAP_CODE_UIDNEXT, 1, 1 },
	/* RFC 4315 */
	{ "A003 OK [APPENDUID 38505 3955] APPEND completed\r\n", IMAP_CODE_APPENDUID, 38505, 0,
	  "3955" },
	{ "A003 OK [APPENDUID 38505 3955:3957] MULTIAPPEND completed\r\n", IMAP_CODE_APPENDUID,
	  38505, 0, "3955:3957" },
	{ "A004 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n", IMAP_CODE_COPYUID, 38505, 0,
	  "304,319:320", "3956:3958" },
	{ "A005 OK [UIDNOTSTICKY] Non-persistent UIDs\r\n", IMAP_CODE_UIDNOTSTICKY },
	/* RFC 7162 */
	{ "* OK [HIGHESTMODSEQ 715194045007] Highest\r\n", IMAP_CODE_HIGHESTMODSEQ, 0,
	  715194045007ULL },
	{ "* OK [NOMODSEQ] Sorry, this mailbox format doesn't support "
	  "modsequences\r\n",
	  IMAP_CODE_NOMODSEQ },
	{ "d105 OK [MODIFIED 7,9] Conditional STORE failed\r\n", IMAP_CODE_MODIFIED, 0, 0, "7,9" },
	{ "* OK [CLOSED] Previous mailbox closed.\r\n", IMAP_CODE_CLOSED },
	/* RFC 5465 */
	{ "* OK [NOTIFICATIONOVERFLOW] ...A0001 NOTIFY failed\r\n",
	  IMAP_CODE_NOTIFICATIONOVERFLOW },
	{ "A1 NO [BADEVENT (MessageNew MessageExpunge FlagChange)] Events\r\n",
	  IMAP_CODE_BADEVENT },
	/* RFC 5464 */
	{ "a OK [METADATA LONGENTRIES 2199] GETMETADATA complete\r\n",
	  IMAP_CODE_METADATA_LONGENTRIES, 2199, 2199 },
	{ "a NO [METADATA MAXSIZE 1024] Annotation too large\r\n", IMAP_CODE_METADATA_MAXSIZE, 1024,
	  1024 },
	{ "a NO [METADATA TOOMANY] Too many annotations\r\n", IMAP_CODE_METADATA_TOOMANY },
	{ "a NO [METADATA NOPRIVATE] Private annotations not supported\r\n",
	  IMAP_CODE_METADATA_NOPRIVATE },
	{ "a NO [METADATA XYZ] future\r\n", IMAP_CODE_UNKNOWN },
	/* RFC 7888, 4978, 3516, 8474 */
	{ "a NO [TOOBIG] Literal too big\r\n", IMAP_CODE_TOOBIG },
	{ "a NO [COMPRESSIONACTIVE] DEFLATE active via TLS\r\n", IMAP_CODE_COMPRESSIONACTIVE },
	{ "a NO [UNKNOWN-CTE] Can't decode\r\n", IMAP_CODE_UNKNOWN_CTE },
	{ "a OK [MAILBOXID (F2212ea87-6097-4256-9d51-71338625)] Created\r\n", IMAP_CODE_MAILBOXID },
	/* RFC 5530 */
	{ "a NO [UNAVAILABLE] User's backend down for maintenance\r\n", IMAP_CODE_UNAVAILABLE },
	{ "a NO [AUTHENTICATIONFAILED] Authentication failed\r\n", IMAP_CODE_AUTHENTICATIONFAILED },
	{ "a NO [AUTHORIZATIONFAILED] No such authorization-ID\r\n",
	  IMAP_CODE_AUTHORIZATIONFAILED },
	{ "a NO [EXPIRED] That password isn't valid any more\r\n", IMAP_CODE_EXPIRED },
	{ "a NO [PRIVACYREQUIRED] Connection offers no privacy\r\n", IMAP_CODE_PRIVACYREQUIRED },
	{ "a NO [CONTACTADMIN] You need to call our sysadmin\r\n", IMAP_CODE_CONTACTADMIN },
	{ "a NO [NOPERM] Access denied\r\n", IMAP_CODE_NOPERM },
	{ "a NO [INUSE] Mailbox in use\r\n", IMAP_CODE_INUSE },
	{ "a OK [EXPUNGEISSUED] Search completed\r\n", IMAP_CODE_EXPUNGEISSUED },
	{ "a NO [CORRUPTION] Can't open mailbox\r\n", IMAP_CODE_CORRUPTION },
	{ "a NO [SERVERBUG] Internal error\r\n", IMAP_CODE_SERVERBUG },
	{ "a OK [CLIENTBUG] Done\r\n", IMAP_CODE_CLIENTBUG },
	{ "a NO [CANNOT] Dangerous mailbox name\r\n", IMAP_CODE_CANNOT },
	{ "a NO [LIMIT] At most 32 flags in one mailbox\r\n", IMAP_CODE_LIMIT },
	{ "a NO [OVERQUOTA] Sorry\r\n", IMAP_CODE_OVERQUOTA },
	{ "a NO [ALREADYEXISTS] Mailbox exists\r\n", IMAP_CODE_ALREADYEXISTS },
	{ "a NO [NONEXISTENT] No such mailbox\r\n", IMAP_CODE_NONEXISTENT },
	{ "a NO [HASCHILDREN] Has children\r\n", IMAP_CODE_HASCHILDREN },
	{ "a NO [BADCHARSET (UTF-8)] charset\r\n", IMAP_CODE_BADCHARSET },
	/* unknown codes are ignored (RFC 9051 7.1), whatever follows */
	{ "* OK [XYZZY foo (bar] baz\r\n", IMAP_CODE_UNKNOWN },
	{ "* OK [X-GM-THING] Gmail\r\n", IMAP_CODE_UNKNOWN },
	{ "* BYE [UNAVAILABLE] Server shutting down\r\n", IMAP_CODE_UNAVAILABLE },
	{ "* PREAUTH [ALERT] hi\r\n", IMAP_CODE_ALERT },
};

START_TEST(test_codes)
{
	const struct imap_response *resp;
	struct imap_resp_code c;

	imap_resp_code_init(&c);
	resp = feed(codes[_i].text);
	ck_assert_msg(imap_resp_code_parse(resp, &c) == 0, "%s", codes[_i].text);
	ck_assert_int_eq(c.code, codes[_i].code);
	ck_assert_uint_eq(c.num, codes[_i].num);
	ck_assert_uint_eq(c.num64, codes[_i].num64);
	ck_assert_str_eq(set_str(&c.set), codes[_i].set ? codes[_i].set : "");
	ck_assert_str_eq(set_str(&c.set2), codes[_i].set2 ? codes[_i].set2 : "");
	if (codes[_i].code == IMAP_CODE_NONE)
		ck_assert_ptr_null(c.name);
	else
		ck_assert_ptr_nonnull(imap_code_name(c.code));
	if (codes[_i].code == IMAP_CODE_MAILBOXID)
		ck_nstr(&c.objectid, "F2212ea87-6097-4256-9d51-71338625");
	imap_resp_code_free(&c);
}
END_TEST

static const char *const codes_bad[] = {
	"a OK [UIDNEXT abc] x\r\n",
	"a OK [UIDNEXT] x\r\n",
	"a OK [UIDNEXT 1 2] x\r\n",
	"a OK [UIDVALIDITY 4294967296] x\r\n",
	"a OK [HIGHESTMODSEQ 9223372036854775808] x\r\n",
	"a OK [HIGHESTMODSEQ -1] x\r\n",
	"a OK [APPENDUID 38505] x\r\n",
	"a OK [APPENDUID x 1] x\r\n",
	"a OK [APPENDUID 38505 1:*] x\r\n",
	"a OK [APPENDUID 38505 0] x\r\n",
	"a OK [COPYUID 38505 1:3 4:5] x\r\n",
	"a OK [COPYUID 38505 1:3] x\r\n",
	"a OK [COPYUID 38505 a b] x\r\n",
	"a OK [MODIFIED] x\r\n",
	"a OK [MODIFIED 7,,9] x\r\n",
	"a OK [PERMANENTFLAGS \\Seen] x\r\n",
	"a OK [PERMANENTFLAGS (\"x\")] x\r\n",
	"a NO [METADATA MAXSIZE] x\r\n",
	"a NO [METADATA LONGENTRIES x] x\r\n",
	"a OK [MAILBOXID F123] x\r\n",
	/* RFC 8474 objectid, as STATUS and FETCH take it: 1 to 255 of ALPHA
	 * DIGIT _ -, an atom in parentheses */
	"a OK [MAILBOXID ()] x\r\n",
	"a OK [MAILBOXID (a b)] x\r\n",
	"a OK [MAILBOXID (NIL)] x\r\n",
	"a OK [MAILBOXID (\"F1\")] x\r\n",
	"a OK [MAILBOXID (F1.2)] x\r\n",
	"a OK [MAILBOXID (F/1)] x\r\n",
	"a OK [MAILBOXID (" OBJECTID_256 ")] x\r\n",
};

START_TEST(test_codes_bad)
{
	const struct imap_response *resp;
	struct imap_resp_code c;

	imap_resp_code_init(&c);
	resp = feed(codes_bad[_i]);
	ck_assert_msg(imap_resp_code_parse(resp, &c) == EPROTO_, "%s", codes_bad[_i]);
	ck_assert_int_eq(c.code, IMAP_CODE_UNKNOWN);
	ck_assert_ptr_nonnull(c.name);
	ck_assert_uint_eq(c.num, 0);
	ck_assert_uint_eq(c.num64, 0);
	ck_assert(rangeset_empty(&c.set));
	ck_assert(rangeset_empty(&c.set2));
	ck_assert_ptr_null(c.objectid.str);
	imap_resp_code_free(&c);
}
END_TEST

START_TEST(test_code_mailboxid_longest)
{
	const struct imap_response *resp;
	struct imap_resp_code c;

	imap_resp_code_init(&c);
	/* The longest objectid RFC 8474 allows, as in STATUS. */
	resp = feed("a OK [MAILBOXID (" OBJECTID_255 ")] Created\r\n");
	ck_assert_int_eq(imap_resp_code_parse(resp, &c), 0);
	ck_assert_int_eq(c.code, IMAP_CODE_MAILBOXID);
	ck_nstr(&c.objectid, OBJECTID_255);
	imap_resp_code_free(&c);
}
END_TEST

START_TEST(test_code_permanentflags)
{
	const struct imap_response *resp;
	struct imap_resp_code c;

	imap_resp_code_init(&c);
	/* RFC 3501 6.3.1 */
	resp = feed("* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n");
	ck_assert_int_eq(imap_resp_code_parse(resp, &c), 0);
	ck_assert_int_eq(c.code, IMAP_CODE_PERMANENTFLAGS);
	ck_assert_uint_eq(c.flags.count, 3);
	ck_assert(c.flags.new_keywords);
	ck_assert(imap_flags_has(&c.flags, "\\Deleted"));

	resp = feed("* OK [PERMANENTFLAGS ()] No permanent flags permitted\r\n");
	ck_assert_int_eq(imap_resp_code_parse(resp, &c), 0);
	ck_assert_uint_eq(c.flags.count, 0);
	ck_assert(!c.flags.new_keywords);

	/* the sets are reused: a second decode replaces the first */
	resp = feed("a OK [COPYUID 1 5 6] x\r\n");
	ck_assert_int_eq(imap_resp_code_parse(resp, &c), 0);
	resp = feed("a OK [COPYUID 2 7:8 9:10] x\r\n");
	ck_assert_int_eq(imap_resp_code_parse(resp, &c), 0);
	ck_assert_str_eq(set_str(&c.set), "7:8");
	ck_assert_str_eq(set_str(&c.set2), "9:10");
	resp = feed("a OK done\r\n");
	ck_assert_int_eq(imap_resp_code_parse(resp, &c), 0);
	ck_assert_int_eq(c.code, IMAP_CODE_NONE);
	ck_assert(rangeset_empty(&c.set));
	imap_resp_code_free(&c);
}
END_TEST

START_TEST(test_code_names)
{
	for (int i = IMAP_CODE_ALERT; i < IMAP_CODE_MAX; i++) {
		const char *n = imap_code_name((enum imap_code)i);

		ck_assert_ptr_nonnull(n);
		ck_assert_int_eq(imap_code_from_name(n), i);
	}
	ck_assert_ptr_null(imap_code_name(IMAP_CODE_MAX));
	ck_assert_int_eq(imap_code_from_name("read-only"), IMAP_CODE_READ_ONLY);
	ck_assert_int_eq(imap_code_from_name("FOO"), IMAP_CODE_UNKNOWN);
	ck_assert_int_eq(imap_code_from_name(""), IMAP_CODE_UNKNOWN);
}
END_TEST

START_TEST(test_copyuid_pairing)
{
	const struct imap_response *resp;
	struct imap_resp_code c;
	struct imap_uidset_iter src, dst;
	uint32_t s, d, got[8][2];
	size_t n = 0;
	int rs, rd;

	imap_resp_code_init(&c);
	/* a server listing UIDs out of order: pair by position */
	resp = feed("A4 OK [COPYUID 38505 304,320:319,5 3956:3958,100] Done"
		    "\r\n");
	ck_assert_int_eq(imap_resp_code_parse(resp, &c), 0);
	ck_assert_str_eq(set_str(&c.set), "5,304,319:320");
	imap_uidset_iter_init(&src, &c.src_raw);
	imap_uidset_iter_init(&dst, &c.dst_raw);
	for (;;) {
		rs = imap_uidset_iter_next(&src, &s);
		rd = imap_uidset_iter_next(&dst, &d);
		ck_assert_int_eq(rs, rd);
		if (rs == 0)
			break;
		ck_assert_int_eq(rs, 1);
		ck_assert_uint_lt(n, 8);
		got[n][0] = s;
		got[n][1] = d;
		n++;
	}
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(got[0][0], 304);
	ck_assert_uint_eq(got[0][1], 3956);
	ck_assert_uint_eq(got[1][0], 320);
	ck_assert_uint_eq(got[1][1], 3957);
	ck_assert_uint_eq(got[2][0], 319);
	ck_assert_uint_eq(got[2][1], 3958);
	ck_assert_uint_eq(got[3][0], 5);
	ck_assert_uint_eq(got[3][1], 100);
	imap_resp_code_free(&c);

	static const char *const bad[] = { "1,", "a", "1:", ":2", "0", "1,,2", "1:b" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct imap_nstr t = { bad[i], strlen(bad[i]) };
		int r;

		imap_uidset_iter_init(&src, &t);
		while ((r = imap_uidset_iter_next(&src, &s)) == 1)
			;
		ck_assert_msg(r == EPROTO_, "%s", bad[i]);
	}
}
END_TEST

START_TEST(test_resp_type)
{
	static const struct {
		const char *text;
		enum imap_resp_type t;
	} t[] = {
		{ "* 1 FETCH (UID 1)\r\n", IMAP_RT_FETCH },
		{ "* ID (\"name\" \"Dovecot\")\r\n", IMAP_RT_ID },
		{ "* LSUB () \"/\" a\r\n", IMAP_RT_LSUB },
		{ "* LIST () \"/\" a\r\n", IMAP_RT_LIST },
		{ "* QUOTA \"\" (STORAGE 10 512)\r\n", IMAP_RT_OTHER },
		{ "* OK hello\r\n", IMAP_RT_OTHER },
		{ "a OK done\r\n", IMAP_RT_OTHER },
		{ "+ idling\r\n", IMAP_RT_OTHER },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ck_assert_int_eq(imap_resp_type(feed(t[i].text)), t[i].t);
}
END_TEST

static Suite *resp_suite(void)
{
	Suite *s = suite_create("imap-resp");
	TCase *tc;

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
	tc = tcase_create("caps");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_caps_response);
	tcase_add_test(tc, test_caps_code);
	tcase_add_test(tc, test_caps_enabled);
	tcase_add_test(tc, test_cap_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("simple");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_simple);
	tcase_add_test(tc, test_vanished);
	tcase_add_test(tc, test_resp_type);
	suite_add_tcase(s, tc);

	tc = tcase_create("fetch");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_fetch_rfc3501);
	tcase_add_test(tc, test_fetch_bytewise);
	tcase_add_test(tc, test_fetch_sync);
	tcase_add_test(tc, test_fetch_sections);
	tcase_add_test(tc, test_fetch_streamed);
	tcase_add_test(tc, test_fetch_envelope_groups);
	tcase_add_loop_test(tc, test_fetch_bad, 0, N(fetch_bad));
	tcase_add_test(tc, test_fetch_too_many_sections);
	tcase_add_loop_test(tc, test_date_time, 0, N(dates));
	tcase_add_loop_test(tc, test_bodystructure_roundtrip, 0, N(bodies));
	tcase_add_test(tc, test_arg_write_misc);
	tcase_add_test(tc, test_annotation);
	tcase_add_loop_test(tc, test_annotation_bad, 0, N(annotation_bad));
	tcase_add_test(tc, test_annotation_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("mailbox");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_status);
	tcase_add_loop_test(tc, test_objectid, 0, N(objectids));
	tcase_add_test(tc, test_objectid_lengths);
	tcase_add_loop_test(tc, test_list, 0, N(lists));
	tcase_add_loop_test(tc, test_list_bad, 0, N(list_bad));
	tcase_add_test(tc, test_search);
	tcase_add_test(tc, test_esearch);
	tcase_add_test(tc, test_metadata);
	tcase_add_test(tc, test_acl);
	tcase_add_test(tc, test_namespace);
	suite_add_tcase(s, tc);

	tc = tcase_create("codes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_codes, 0, N(codes));
	tcase_add_loop_test(tc, test_codes_bad, 0, N(codes_bad));
	tcase_add_test(tc, test_code_mailboxid_longest);
	tcase_add_test(tc, test_code_permanentflags);
	tcase_add_test(tc, test_code_names);
	tcase_add_test(tc, test_copyuid_pairing);
	suite_add_tcase(s, tc);
#undef N
	return s;
}

TEST_MAIN(resp_suite)
