/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "testlib.h"
#include "imap/imap-utf7.h"
#include "util/buf.h"

/* A pair in both directions: utf7 <-> utf8. */
struct pair {
	const char *utf7;
	const char *utf8;
};

static const struct pair pairs[] = {
	{ "", "" },
	{ "INBOX", "INBOX" },
	{ "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語" },
	{ "&-", "&" },
	{ "&-&-", "&&" },
	{ "a&-b", "a&b" },
	{ "&AOk-", "é" },
	{ "caf&AOk-", "café" },
	{ "&AOkA6Q-", "éé" },
	{ "&AOk-x&AOk-", "éxé" },
	{ "&2D3eAA-", "😀" },
	{ "x&2D3eAADp-y", "x😀éy" },
	{ "&AOkACQ-", "é\t" },
	{ "&AH8-", "\x7f" },
	{ "&AAE-", "\x01" },
	{ " !\"#$%'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~", " !\"#$%'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~" },
	{ "&2,,f,w-", "\xf4\x8f\xbf\xbf" }, /* U+10FFFF */
	{ "&,,8-", "\xef\xbf\xbf" },	    /* U+FFFF */
};

static void want_buf(const struct buf *b, const char *want)
{
	const char *got = b->data ? b->data : "";

	ck_assert_uint_eq(b->len, strlen(want));
	ck_assert_msg(memcmp(got, want, b->len) == 0, "got \"%s\", want \"%s\"", got, want);
}

START_TEST(test_decode)
{
	struct buf b = BUF_INIT(4096);

	ck_assert_int_eq(imap_utf7_to_utf8(pairs[_i].utf7, strlen(pairs[_i].utf7), &b), 0);
	want_buf(&b, pairs[_i].utf8);
	buf_free(&b);
}
END_TEST

START_TEST(test_encode)
{
	struct buf b = BUF_INIT(4096);

	ck_assert_int_eq(imap_utf8_to_utf7(pairs[_i].utf8, strlen(pairs[_i].utf8), &b), 0);
	want_buf(&b, pairs[_i].utf7);
	buf_free(&b);
}
END_TEST

/* Functions append; a failure leaves out as it was. */
START_TEST(test_append_and_rollback)
{
	struct buf b = BUF_INIT(4096);

	ck_assert_int_eq(buf_append_str(&b, "pre:"), 0);
	ck_assert_int_eq(imap_utf7_to_utf8("&AOk-", 5, &b), 0);
	want_buf(&b, "pre:é");
	ck_assert_int_eq(imap_utf7_to_utf8("abc&AOk", 7, &b), -EINVAL);
	want_buf(&b, "pre:é");
	ck_assert_int_eq(imap_utf8_to_utf7("abc\xff", 4, &b), -EINVAL);
	want_buf(&b, "pre:é");
	ck_assert_int_eq(imap_mailbox_to_utf8("a/b", 3, '.', false, &b), -EINVAL);
	want_buf(&b, "pre:é");
	ck_assert_int_eq(imap_mailbox_from_utf8("a//b", 4, '.', false, &b), -EINVAL);
	want_buf(&b, "pre:é");
	buf_free(&b);

	/* A full buffer gives -E2BIG and no partial text. */
	b = BUF_INIT(6);
	ck_assert_int_eq(imap_utf8_to_utf7("日本語", strlen("日本語"), &b), -E2BIG);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(imap_utf7_to_utf8("abcdefgh", 8, &b), -E2BIG);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(imap_mailbox_to_utf8("abc.defgh", 9, '.', false, &b), -E2BIG);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(imap_mailbox_from_utf8("ab/é", 5, '.', false, &b), -E2BIG);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

/* Embedded lengths: only len bytes are read. */
START_TEST(test_length_bounded)
{
	struct buf b = BUF_INIT(4096);

	ck_assert_int_eq(imap_utf7_to_utf8("ab&AOk-", 2, &b), 0);
	want_buf(&b, "ab");
	buf_reset(&b);
	ck_assert_int_eq(imap_utf7_to_utf8("&AOk-", 4, &b), -EINVAL);
	ck_assert_int_eq(imap_utf8_to_utf7("\xc3\xa9", 1, &b), -EINVAL);
	ck_assert_int_eq(imap_utf7_to_utf8(NULL, 0, &b), 0);
	ck_assert_int_eq(imap_utf8_to_utf7(NULL, 0, &b), 0);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

struct bad {
	const char *s;
	size_t len; /* 0: strlen */
};

static const struct bad bad_utf7[] = {
	{ "&", 0 }, /* unterminated */
	{ "a&", 0 },	      { "&AOk", 0 },	 { "&AOk-&", 0 }, { "&AOkA6Q", 0 },
	{ "&A-", 0 }, /* leftover bits make a whole character */
	{ "&AO-", 0 },	      { "&AOkA-", 0 },	 { "&AOl-", 0 }, /* non-zero padding bits */
	{ "&AOn-", 0 },	      { "&AOkA6R-", 0 }, { "&AO/-", 0 }, /* plain base64 '/' */
	{ "&AOk=-", 0 },					 /* padding */
	{ "&U/BTFw-", 0 }, /* RFC 3501's &U,BTFw- with base64 '/' for ',' */
	{ "&A/8-", 0 },	   /* U+03FF, &A,8-, likewise */
	{ "&AO k-", 0 },      { "&&-", 0 },	 { "&A.k-", 0 },  { "&AGE-", 0 }, /* encoded 'a' */
	{ "&ACY-", 0 },								  /* encoded '&' */
	{ "&ACA-", 0 },								  /* encoded ' ' */
	{ "&AH4-", 0 },								  /* encoded '~' */
	{ "&AOkAYQ-", 0 },					/* é then encoded 'a' */
	{ "&AAA-", 0 },						/* U+0000 */
	{ "&2D0-", 0 },						/* lone high surrogate */
	{ "&3gA-", 0 },						/* lone low surrogate */
	{ "&2D0A6Q-", 0 },					/* high then non-surrogate */
	{ "&2D3YPQ-", 0 },					/* high then high */
	{ "&2D0-&3gA-", 0 },					/* pair split across runs */
	{ "&3gDYPQ-", 0 },					/* low then high */
	{ "\xc3\xa9", 0 },					/* raw 8-bit */
	{ "caf\xc3\xa9", 0 }, { "\x80", 0 },	 { "a\tb", 0 }, /* raw control */
	{ "a\x7f", 0 },	      { "a\nb", 0 },	 { "a\0b", 3 }, /* raw NUL */
};

START_TEST(test_decode_invalid)
{
	const struct bad *c = &bad_utf7[_i];
	size_t len = c->len ? c->len : strlen(c->s);
	struct buf b = BUF_INIT(4096);

	ck_assert_msg(imap_utf7_to_utf8(c->s, len, &b) == -EINVAL, "\"%s\" accepted", c->s);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

static const struct bad bad_utf8[] = {
	{ "\xc3", 0 }, /* truncated */
	{ "a\xe2\x82", 0 },
	{ "\xf0\x9f\x98", 0 },
	{ "\x80", 0 }, /* lone continuation */
	{ "\xbf", 0 },
	{ "\xc0\xaf", 0 }, /* overlong */
	{ "\xc1\xbf", 0 },
	{ "\xe0\x80\xaf", 0 },
	{ "\xf0\x80\x80\xaf", 0 },
	{ "\xed\xa0\x80", 0 }, /* surrogates */
	{ "\xed\xbf\xbf", 0 },
	{ "\xf4\x90\x80\x80", 0 }, /* beyond U+10FFFF */
	{ "\xf5\x80\x80\x80", 0 },
	{ "\xfe", 0 },
	{ "\xff", 0 },
	{ "\xc3\x28", 0 }, /* bad continuation */
	{ "\xe2\x28\xa1", 0 },
	{ "a\0b", 3 }, /* NUL */
	{ "\0", 1 },
};

START_TEST(test_encode_invalid)
{
	const struct bad *c = &bad_utf8[_i];
	size_t len = c->len ? c->len : strlen(c->s);
	struct buf b = BUF_INIT(4096);

	ck_assert_int_eq(imap_utf8_to_utf7(c->s, len, &b), -EINVAL);
	ck_assert_uint_eq(b.len, 0);
	/* The same in UTF8=ACCEPT mailbox mapping. */
	ck_assert_int_eq(imap_mailbox_from_utf8(c->s, len, '/', true, &b), -EINVAL);
	ck_assert_int_eq(imap_mailbox_to_utf8(c->s, len, '/', true, &b), -EINVAL);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

static const char *const round_trip[] = {
	"",
	"a",
	"&",
	"&&&",
	"a&b&c",
	"Entwürfe",
	"Gelöschte Elemente",
	"Отправленные",
	"已发送",
	"日本語/台北",
	"😀😀x😀",
	"mixed é & 😀 ~",
	"\t\x01\x7f",
	"\xf4\x8f\xbf\xbf",
	"\xc2\x80",
	"\xe0\xa0\x80",
	"\xf0\x90\x80\x80",
	"-&-",
	"&-&",
	"a-b",
	"é-",
	"ü&ü",
};

START_TEST(test_round_trip)
{
	const char *s = round_trip[_i];
	struct buf a = BUF_INIT(4096), b = BUF_INIT(4096);

	ck_assert_int_eq(imap_utf8_to_utf7(s, strlen(s), &a), 0);
	for (size_t k = 0; k < a.len; k++)
		ck_assert(a.data[k] >= 0x20 && a.data[k] <= 0x7e);
	ck_assert_int_eq(imap_utf7_to_utf8(a.data, a.len, &b), 0);
	want_buf(&b, s);
	buf_free(&a);
	buf_free(&b);
}
END_TEST

/* -------------------------------------------------------------------- */
/* Mailbox names */

struct mbox_case {
	const char *in;
	char delim;
	bool utf8_mode;
	const char *want; /* NULL: -EINVAL */
};

static const struct mbox_case to_utf8_cases[] = {
	{ "~peter/mail/&U,BTFw-/&ZeVnLIqe-", '/', false, "~peter/mail/台北/日本語" },
	{ "INBOX", '/', false, "INBOX" },
	{ "inbox", '/', false, "INBOX" },
	{ "InBoX", '.', false, "INBOX" },
	{ "inbox", 0, false, "INBOX" },
	{ "INBOX.Sent", '.', false, "INBOX/Sent" },
	{ "inbox.Sent", '.', false, "INBOX/Sent" },
	{ "iNbOx/Sub/inbox", '/', false, "INBOX/Sub/inbox" },
	{ "Foo.inbox", '.', false, "Foo/inbox" },
	{ "INBOXes", '.', false, "INBOXes" },
	{ "inbo", '.', false, "inbo" },
	{ "a.b.c", '.', false, "a/b/c" },
	{ "a.b.c", 0, false, "a.b.c" },
	{ "a.b.c", '/', false, "a.b.c" },
	{ "a/b", '/', false, "a/b" },
	{ "&ZeVnLIqe-.&U,BTFw-", '.', false, "日本語/台北" },
	{ "&ZeVnLIqe-.&U,BTFw-", '.', true, "&ZeVnLIqe-/&U,BTFw-" },
	{ "日本語.台北", '.', true, "日本語/台北" },
	{ "a&-b.c", '.', false, "a&b/c" },
	{ "a&b.c", '.', true, "a&b/c" },
	{ "a&b", '.', false, NULL }, /* bad mUTF-7 */
	{ "a+b", '+', false, "a/b" },
	{ "&AOk-+&AOk-", '+', false, "é/é" },
	{ "a/b", '.', false, NULL }, /* '/' cannot be represented */
	{ "a/b.c", '.', false, NULL },
	{ "a/b", 0, false, NULL },
	{ "a/b", '.', true, NULL },
	{ "a..b", '.', false, NULL }, /* empty levels */
	{ "a.", '.', false, NULL },
	{ ".a", '.', false, NULL },
	{ ".", '.', false, NULL },
	{ "", '.', false, NULL },
	{ "", 0, false, NULL },
	{ "a//b", '/', false, NULL },
	{ "日本語", '.', false, NULL }, /* raw 8-bit without UTF8=ACCEPT */
	{ "a&AGE-", '.', false, NULL }, /* non-canonical */
	{ "\xff", '.', true, NULL },	/* invalid UTF-8 */
	{ "a", '\x80', true, NULL },	/* bad delimiters */
	{ "a", '\n', false, NULL },
	{ "a", '&', false, NULL },
	{ "a&b", '&', true, "a/b" },
	{ "inbox", 'N', false, NULL }, /* "INBOX" would hold 'N' */
	{ "inboxNSub", 'N', false, NULL },
	{ "SubNinbox", 'N', false, "Sub/inbox" },
};

static const struct mbox_case from_utf8_cases[] = {
	{ "~peter/mail/台北/日本語", '/', false, "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
	{ "INBOX", '.', false, "INBOX" },
	{ "inbox", '.', false, "INBOX" },
	{ "Inbox", 0, false, "INBOX" },
	{ "inbox/Sent", '.', false, "INBOX.Sent" },
	{ "INBOX/Sent", '/', false, "INBOX/Sent" },
	{ "Foo/inbox", '.', false, "Foo.inbox" },
	{ "INBOXes", '.', false, "INBOXes" },
	{ "a/b/c", '.', false, "a.b.c" },
	{ "a/b/c", '/', false, "a/b/c" },
	{ "a.b", '/', false, "a.b" },
	{ "a.b", 0, false, "a.b" },
	{ "a.b", '.', false, NULL }, /* level holds the delimiter */
	{ "x/a.b", '.', false, NULL },
	{ "a/b", 0, false, NULL }, /* flat: one level */
	{ "日本語/台北", '.', false, "&ZeVnLIqe-.&U,BTFw-" },
	{ "日本語/台北", '.', true, "日本語.台北" },
	{ "a&b/c", '.', false, "a&-b.c" },
	{ "a&b/c", '.', true, "a&b.c" },
	{ "é/é", '+', false, "&AOk-+&AOk-" },
	{ "a+b", '+', false, NULL },
	{ "a//b", '.', false, NULL }, /* empty levels */
	{ "/a", '.', false, NULL },
	{ "a/", '.', false, NULL },
	{ "/", '/', false, NULL },
	{ "", '.', false, NULL },
	{ "", 0, true, NULL },
	{ "\xc3", '.', false, NULL }, /* invalid UTF-8 */
	{ "\xed\xa0\x80", '.', true, NULL },
	{ "a", '\x80', true, NULL }, /* bad delimiters */
	{ "a", '\t', false, NULL },
	{ "a", '&', false, NULL },
	{ "a/b", '&', true, "a&b" },
	{ "inbox/Sub", 'N', false, NULL }, /* "INBOX" would hold 'N' */
	{ "Inbox", 'X', true, NULL },
	{ "Sub/inbox", 'n', false, NULL }, /* level holds 'n' */
};

static void run_mbox(const struct mbox_case *c, bool to)
{
	struct buf b = BUF_INIT(4096);
	int r = to ? imap_mailbox_to_utf8(c->in, strlen(c->in), c->delim, c->utf8_mode, &b)
		   : imap_mailbox_from_utf8(c->in, strlen(c->in), c->delim, c->utf8_mode, &b);

	if (!c->want) {
		ck_assert_msg(r == -EINVAL, "\"%s\" delim %d: got %d", c->in, c->delim, r);
		ck_assert_uint_eq(b.len, 0);
	} else {
		ck_assert_msg(r == 0, "\"%s\" delim %d: got %d", c->in, c->delim, r);
		want_buf(&b, c->want);
	}
	buf_free(&b);
}

START_TEST(test_mailbox_to_utf8)
{
	run_mbox(&to_utf8_cases[_i], true);
}
END_TEST

/* Names a terminal or a log reader would act on are refused (-EILSEQ),
 * however they are encoded. */
static const struct mbox_case unsafe_names[] = {
	{ "a&ABs-]0;owned&AAc-", '/', false, NULL }, /* ESC ] ... BEL in mUTF-7 */
	{ "line&AAo-break", '/', false, NULL },	     /* LF */
	{ "csi&AJs-31m", '/', false, NULL },	     /* C1 CSI */
	{ "&IC4-exe.txt", '/', false, NULL },	     /* RIGHT-TO-LEFT OVERRIDE */
	{ "Sub.&IGY-x", '.', false, NULL },	     /* LEFT-TO-RIGHT ISOLATE */
	{ "a\x1b]0;owned\x07", '/', true, NULL },    /* raw, UTF8=ACCEPT */
	{ "tab\tname", '/', true, NULL },
	{ "del\x7f", '/', true, NULL },
	{ "\xe2\x80\xae"
	  "exe.txt",
	  '/', true, NULL },
	{ "\xc2\x9b"
	  "31m",
	  '/', true, NULL },
};

START_TEST(test_mailbox_unsafe_refused)
{
	const struct mbox_case *c = &unsafe_names[_i];
	struct buf b = BUF_INIT(4096);
	int r = imap_mailbox_to_utf8(c->in, strlen(c->in), c->delim, c->utf8_mode, &b);

	ck_assert_msg(r == -EILSEQ, "case %d: got %d", _i, r);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
	/* nor is such a name sent: both directions agree */
	if (c->utf8_mode) {
		r = imap_mailbox_from_utf8(c->in, strlen(c->in), c->delim, false, &b);
		ck_assert_msg(r == -EILSEQ, "case %d (from): got %d", _i, r);
		r = imap_mailbox_from_utf8(c->in, strlen(c->in), c->delim, true, &b);
		ck_assert_msg(r == -EILSEQ, "case %d (from, UTF-8): got %d", _i, r);
		ck_assert_uint_eq(b.len, 0);
		buf_free(&b);
	}
}
END_TEST

START_TEST(test_mailbox_from_utf8)
{
	run_mbox(&from_utf8_cases[_i], false);
}
END_TEST

/* Whatever to_utf8 accepts maps back to the same server name. */
START_TEST(test_mailbox_round_trip)
{
	const struct mbox_case *c = &to_utf8_cases[_i];
	struct buf ours = BUF_INIT(4096), back = BUF_INIT(4096);

	if (!c->want)
		return;
	ck_assert_int_eq(imap_mailbox_to_utf8(c->in, strlen(c->in), c->delim, c->utf8_mode, &ours),
			 0);
	ck_assert_int_eq(imap_mailbox_from_utf8(ours.data, ours.len, c->delim, c->utf8_mode, &back),
			 0);
	if (strncasecmp(c->in, "inbox", 5) == 0 && (c->in[5] == '\0' || c->in[5] == c->delim))
		ck_assert_int_eq(strncmp(back.data, "INBOX", 5), 0);
	else
		want_buf(&back, c->in);
	buf_free(&ours);
	buf_free(&back);
}
END_TEST

static Suite *utf7_suite(void)
{
	Suite *s = suite_create("imap-utf7");
	TCase *tc = tcase_create("utf7");

	tcase_add_loop_test(tc, test_decode, 0, sizeof(pairs) / sizeof(pairs[0]));
	tcase_add_loop_test(tc, test_encode, 0, sizeof(pairs) / sizeof(pairs[0]));
	tcase_add_test(tc, test_append_and_rollback);
	tcase_add_test(tc, test_length_bounded);
	tcase_add_loop_test(tc, test_decode_invalid, 0, sizeof(bad_utf7) / sizeof(bad_utf7[0]));
	tcase_add_loop_test(tc, test_encode_invalid, 0, sizeof(bad_utf8) / sizeof(bad_utf8[0]));
	tcase_add_loop_test(tc, test_round_trip, 0, sizeof(round_trip) / sizeof(round_trip[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("mailbox");
	tcase_add_loop_test(tc, test_mailbox_unsafe_refused, 0,
			    sizeof(unsafe_names) / sizeof(unsafe_names[0]));
	tcase_add_loop_test(tc, test_mailbox_to_utf8, 0,
			    sizeof(to_utf8_cases) / sizeof(to_utf8_cases[0]));
	tcase_add_loop_test(tc, test_mailbox_from_utf8, 0,
			    sizeof(from_utf8_cases) / sizeof(from_utf8_cases[0]));
	tcase_add_loop_test(tc, test_mailbox_round_trip, 0,
			    sizeof(to_utf8_cases) / sizeof(to_utf8_cases[0]));
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(utf7_suite)
