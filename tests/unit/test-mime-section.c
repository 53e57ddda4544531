/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpmsync_message_section() (libsync/util/mime-section.c): sections of a
 * multipart/mixed message with a nested multipart/alternative and an
 * attached message/rfc822, with CRLF and with bare LF line ends; bad
 * specs; missing parts; the depth limit; every prefix of the messages.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>
#include <cpmsync/message.h>

#include "testlib.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * 1       text/plain
 * 2       multipart/alternative (unquoted boundary, a comment, upper case)
 * 2.1     text/plain
 * 2.2     text/html
 * 3       message/rfc822
 * 3.1     (no header fields: text/plain)
 * 3.2     application/octet-stream
 * 4       application/octet-stream
 * The outer boundary is folded onto a continuation line and quoted; its
 * close delimiter has transport padding; there is a preamble and an
 * epilogue.
 */
static const char sample[] = "From: alice@example.org\r\n"
			     "To: bob@example.org\r\n"
			     "Subject: test\r\n"
			     "MIME-Version: 1.0\r\n"
			     "content-type  : multipart/mixed;\r\n"
			     " Boundary=\"outer=_b\"\r\n"
			     "\r\n"
			     "This is the preamble.\r\n"
			     "--outer=_b\r\n"
			     "Content-Type: text/plain; charset=us-ascii\r\n"
			     "\r\n"
			     "part one\r\n"
			     "--outer=_b\r\n"
			     "Content-Type: MULTIPART/Alternative; BOUNDARY=alt (a comment)\r\n"
			     "\r\n"
			     "--alt\r\n"
			     "Content-Type: text/plain\r\n"
			     "\r\n"
			     "plain text\r\n"
			     "--alt\r\n"
			     "Content-Type: text/html\r\n"
			     "\r\n"
			     "<p>html</p>\r\n"
			     "--alt--\r\n"
			     "--outer=_b\r\n"
			     "Content-Type: message/rfc822\r\n"
			     "Content-Disposition: attachment\r\n"
			     "\r\n"
			     "From: carol@example.org\r\n"
			     "Subject: inner\r\n"
			     "Content-Type: multipart/mixed; boundary=\"in ner\"\r\n"
			     "\r\n"
			     "--in ner\r\n"
			     "\r\n"
			     "inner one\r\n"
			     "--in ner\r\n"
			     "Content-Type: application/octet-stream\r\n"
			     "\r\n"
			     "AAAA\r\n"
			     "--in ner--\r\n"
			     "--outer=_b\r\n"
			     "Content-Type: application/octet-stream\r\n"
			     "\r\n"
			     "BBBB\r\n"
			     "--outer=_b--  \r\n"
			     "epilogue\r\n";

#define SAMPLE_HEADER                                                                              \
	"From: alice@example.org\r\n"                                                              \
	"To: bob@example.org\r\n"                                                                  \
	"Subject: test\r\n"                                                                        \
	"MIME-Version: 1.0\r\n"                                                                    \
	"content-type  : multipart/mixed;\r\n"                                                     \
	" Boundary=\"outer=_b\"\r\n"                                                               \
	"\r\n"

#define PART2                                                                                      \
	"--alt\r\n"                                                                                \
	"Content-Type: text/plain\r\n"                                                             \
	"\r\n"                                                                                     \
	"plain text\r\n"                                                                           \
	"--alt\r\n"                                                                                \
	"Content-Type: text/html\r\n"                                                              \
	"\r\n"                                                                                     \
	"<p>html</p>\r\n"                                                                          \
	"--alt--"

#define INNER_HEADER                                                                               \
	"From: carol@example.org\r\n"                                                              \
	"Subject: inner\r\n"                                                                       \
	"Content-Type: multipart/mixed; boundary=\"in ner\"\r\n"                                   \
	"\r\n"

#define INNER_TEXT                                                                                 \
	"--in ner\r\n"                                                                             \
	"\r\n"                                                                                     \
	"inner one\r\n"                                                                            \
	"--in ner\r\n"                                                                             \
	"Content-Type: application/octet-stream\r\n"                                               \
	"\r\n"                                                                                     \
	"AAAA\r\n"                                                                                 \
	"--in ner--"

struct section_case {
	const char *section;
	int r;
	const char *expect; /* with CRLF; NULL: the whole message */
};

static const struct section_case sample_cases[] = {
	{ "", 0, NULL },
	{ "HEADER", 0, SAMPLE_HEADER },
	{ "header", 0, SAMPLE_HEADER },
	{ "1", 0, "part one" },
	{ "1.MIME", 0, "Content-Type: text/plain; charset=us-ascii\r\n\r\n" },
	{ "1.mime", 0, "Content-Type: text/plain; charset=us-ascii\r\n\r\n" },
	{ "2", 0, PART2 },
	{ "2.MIME", 0, "Content-Type: MULTIPART/Alternative; BOUNDARY=alt (a comment)\r\n\r\n" },
	{ "2.1", 0, "plain text" },
	{ "2.2", 0, "<p>html</p>" },
	{ "2.2.MIME", 0, "Content-Type: text/html\r\n\r\n" },
	{ "3", 0, INNER_HEADER INNER_TEXT },
	{ "3.MIME", 0, "Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n" },
	{ "3.HEADER", 0, INNER_HEADER },
	{ "3.Header", 0, INNER_HEADER },
	{ "3.TEXT", 0, INNER_TEXT },
	{ "3.1", 0, "inner one" },
	{ "3.1.MIME", 0, "\r\n" },
	{ "3.2", 0, "AAAA" },
	{ "3.2.MIME", 0, "Content-Type: application/octet-stream\r\n\r\n" },
	{ "4", 0, "BBBB" },
	/* Parts the message does not have. */
	{ "5", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "2147483648", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "1.1", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "1.HEADER", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "2.TEXT", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "2.3", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "2.1.1", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "3.3", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "3.1.1", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "3.2.HEADER", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "4.TEXT", -CPMSYNC_E_NOT_FOUND, NULL },
	/* Malformed specs. */
	{ "0", -EINVAL, NULL },
	{ "1.", -EINVAL, NULL },
	{ "a", -EINVAL, NULL },
	{ "1..2", -EINVAL, NULL },
	{ "HEADER.1", -EINVAL, NULL },
	{ ".1", -EINVAL, NULL },
	{ ".", -EINVAL, NULL },
	{ "01", -EINVAL, NULL },
	{ "1.0", -EINVAL, NULL },
	{ "-1", -EINVAL, NULL },
	{ "+1", -EINVAL, NULL },
	{ "1 ", -EINVAL, NULL },
	{ " 1", -EINVAL, NULL },
	{ "1a", -EINVAL, NULL },
	{ "MIME", -EINVAL, NULL },
	{ "TEXT.MIME", -EINVAL, NULL },
	{ "1.MIME.1", -EINVAL, NULL },
	{ "1.MIME.MIME", -EINVAL, NULL },
	{ "3.HEADER.TEXT", -EINVAL, NULL },
	{ "HEADERS", -EINVAL, NULL },
	{ "HEADER.FIELDS (From)", -EINVAL, NULL },
	{ "2147483649", -EINVAL, NULL },
	{ "4294967297", -EINVAL, NULL },
	{ "99999999999999999999999", -EINVAL, NULL },
};

/* The text with every "\r\n" turned into "\n" (malloc()ed). */
static char *lf_only(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;

	ck_assert_ptr_nonnull(out);
	for (; *s; s++)
		if (!(s[0] == '\r' && s[1] == '\n'))
			*o++ = *s;
	*o = '\0';
	return out;
}

/* An exactly sized heap copy, so that ASan sees any read beyond len. */
static char *exact_copy(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(p);
	memcpy(p, s, len);
	return p;
}

static void check_case(const char *msg, size_t len, const struct section_case *c, bool lf)
{
	size_t off = 12345, n = 67890;
	char *copy = exact_copy(msg, len);
	int r = cpmsync_message_section(copy, len, c->section, &off, &n);

	ck_assert_msg(r == c->r, "section \"%s\"%s: %d, expected %d", c->section, lf ? " (LF)" : "",
		      r, c->r);
	if (r < 0) {
		/* Outputs untouched on failure. */
		ck_assert_uint_eq(off, 12345);
		ck_assert_uint_eq(n, 67890);
	} else {
		char *want = c->expect ? (lf ? lf_only(c->expect) : strdup(c->expect))
				       : strndup(msg, len);

		ck_assert_uint_le(off, len);
		ck_assert_uint_le(n, len - off);
		ck_assert_msg(strlen(want) == n && memcmp(msg + off, want, n) == 0,
			      "section \"%s\"%s: got \"%.*s\", expected \"%s\"", c->section,
			      lf ? " (LF)" : "", (int)n, msg + off, want);
		free(want);
	}
	free(copy);
}

START_TEST(test_sample_crlf)
{
	check_case(sample, strlen(sample), &sample_cases[_i], false);
}
END_TEST

START_TEST(test_sample_lf)
{
	char *msg = lf_only(sample);

	check_case(msg, strlen(msg), &sample_cases[_i], true);
	free(msg);
}
END_TEST

/* Smaller messages, one table: message, section, result, expectation. */
struct small_case {
	const char *msg;
	const char *section;
	int r;
	const char *expect;
};

static const struct small_case small_cases[] = {
	/* A non-multipart message has part 1: its body. */
	{ "Subject: x\r\n\r\nbody\r\n", "1", 0, "body\r\n" },
	{ "Subject: x\r\n\r\nbody\r\n", "TEXT", 0, "body\r\n" },
	{ "Subject: x\r\n\r\nbody\r\n", "1.MIME", 0, "Subject: x\r\n\r\n" },
	{ "Subject: x\r\n\r\nbody\r\n", "2", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "Subject: x\r\n\r\nbody\r\n", "1.1", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "Subject: x\r\n\r\nbody\r\n", "1.TEXT", -CPMSYNC_E_NOT_FOUND, NULL },
	/* Folded header, no body; a header without its empty line. */
	{ "Subject: x\r\n y\r\n\r\n", "HEADER", 0, "Subject: x\r\n y\r\n\r\n" },
	{ "Subject: x\r\n\r\n", "TEXT", 0, "" },
	{ "Subject: x\r\n", "HEADER", 0, "Subject: x\r\n" },
	{ "Subject: x\r\n", "TEXT", 0, "" },
	{ "Subject: x\r\n", "1", 0, "" },
	/* No header at all. */
	{ "\r\nbody", "HEADER", 0, "\r\n" },
	{ "\nbody", "1", 0, "body" },
	{ "", "", 0, "" },
	{ "", "HEADER", 0, "" },
	{ "", "1", 0, "" },
	{ "", "2", -CPMSYNC_E_NOT_FOUND, NULL },
	/* A message/rfc822 message: its parts are the inner message's. */
	{ "Content-Type: message/rfc822\n\nSubject: in\n\nhello", "1", 0, "Subject: in\n\nhello" },
	{ "Content-Type: message/rfc822\n\nSubject: in\n\nhello", "1.HEADER", 0,
	  "Subject: in\n\n" },
	{ "Content-Type: message/rfc822\n\nSubject: in\n\nhello", "1.TEXT", 0, "hello" },
	{ "Content-Type: message/rfc822\n\nSubject: in\n\nhello", "1.1", 0, "hello" },
	{ "Content-Type: message/rfc822\n\nSubject: in\n\nhello", "1.1.MIME", 0,
	  "Subject: in\n\n" },
	{ "Content-Type: message/rfc822\n\nSubject: in\n\nhello", "1.2", -CPMSYNC_E_NOT_FOUND,
	  NULL },
	/* A missing close delimiter: the last part runs to the end. */
	{ "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n", "2", 0,
	  "two\n" },
	{ "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n", "1", 0, "one" },
	{ "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n", "3",
	  -CPMSYNC_E_NOT_FOUND, NULL },
	/* Inner close delimiter missing: the inner part ends at the outer one. */
	{ "Content-Type: multipart/mixed; boundary=o\n\n--o\n"
	  "Content-Type: multipart/mixed; "
	  "boundary=i\n\n--i\n\nin1\n--i\n\nin2\n--o\n\nout2\n--o--\n",
	  "1.2", 0, "in2" },
	{ "Content-Type: multipart/mixed; boundary=o\n\n--o\n"
	  "Content-Type: multipart/mixed; "
	  "boundary=i\n\n--i\n\nin1\n--i\n\nin2\n--o\n\nout2\n--o--\n",
	  "2", 0, "out2" },
	/* No delimiter at all; only a close delimiter; empty parts. */
	{ "Content-Type: multipart/mixed; boundary=b\n\njust text\n", "1", -CPMSYNC_E_NOT_FOUND,
	  NULL },
	{ "Content-Type: multipart/mixed; boundary=b\n\n--b--\n", "1", -CPMSYNC_E_NOT_FOUND, NULL },
	{ "Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n\nx\n--b--", "1", 0, "" },
	{ "Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n\nx\n--b--", "2", 0, "x" },
	{ "Content-Type: multipart/mixed; boundary=b\n\n--b", "1", 0, "" },
	{ "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n\n--b--", "1", 0, "" },
	/* The delimiter may start the body; text after the boundary on its
	 * line (padding or not) is ignored; "--b" inside a line is not one. */
	{ "Content-Type: multipart/mixed; boundary=b\n\n--b \t\n\nx --b\n--b--\n", "1", 0,
	  "x --b" },
	/* Quoted boundary with a quoted-pair, folded parameter, comments. */
	{ "Content-Type: (c) multipart/mixed (c (nested)) ;\n\tboundary = \"a\\\"b\"\n\n"
	  "--a\"b\n\nq\n--a\"b--\n",
	  "1", 0, "q" },
	/* The first Content-Type counts; unknown parameters are skipped. */
	{ "Content-Type: multipart/mixed; charset=\"x;y\"; boundary=b\n"
	  "Content-Type: text/plain\n\n--b\n\nfirst\n--b--\n",
	  "1", 0, "first" },
	/* A missing ';' before the parameter is tolerated. */
	{ "Content-Type: multipart/mixed boundary=b\n\n--b\n\nlenient\n--b--\n", "1", 0,
	  "lenient" },
	/* A multipart without a usable boundary is a leaf. */
	{ "Content-Type: multipart/mixed\n\n--b\n\nx\n", "1", 0, "--b\n\nx\n" },
	{ "Content-Type: multipart/mixed; boundary=\"\"\n\n--\n\nx\n", "1", 0, "--\n\nx\n" },
	{ "Content-Type: multipart/mixed; boundary*=us-ascii''b\n\n--b\n\nx\n", "1.1",
	  -CPMSYNC_E_NOT_FOUND, NULL },
	/* A header field that only starts like Content-Type. */
	{ "Content-Type-X: multipart/mixed; boundary=b\n\n--b\n\nx\n", "1", 0, "--b\n\nx\n" },
	/* multipart/digest: parts default to message/rfc822. */
	{ "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: d1\n\nbody1\n--d--\n",
	  "1.HEADER", 0, "Subject: d1\n\n" },
	{ "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: d1\n\nbody1\n--d--\n",
	  "1.1", 0, "body1" },
	{ "Content-Type: multipart/digest; boundary=d\n\n--d\nContent-Type: text/plain\n\n"
	  "Subject: no\n--d--\n",
	  "1.HEADER", -CPMSYNC_E_NOT_FOUND, NULL },
	/* message/global is encapsulated too. */
	{ "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/global\n\n"
	  "Subject: g\n\nglobal\n--b--\n",
	  "1.TEXT", 0, "global" },
};

START_TEST(test_small)
{
	const struct small_case *c = &small_cases[_i];
	struct section_case sc = { c->section, c->r, c->expect };

	check_case(c->msg, strlen(c->msg), &sc, false);
}
END_TEST

START_TEST(test_nul_bytes)
{
	static const char msg[] = "Content-Type: multipart/mixed; boundary=b\n\n--b\n\na\0b\n"
				  "--b\n\n\0\n--b--\n";
	size_t off, n;

	ck_assert_int_eq(cpmsync_message_section(msg, sizeof(msg) - 1, "1", &off, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(memcmp(msg + off, "a\0b", 3), 0);
	ck_assert_int_eq(cpmsync_message_section(msg, sizeof(msg) - 1, "2", &off, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(msg[off], '\0');
}
END_TEST

START_TEST(test_bad_arguments)
{
	size_t off, n;
	char spec[CPMSYNC_SECTION_MAX_LEN + 8] = "";

	ck_assert_int_eq(cpmsync_message_section("x", 1, NULL, &off, &n), -EINVAL);
	ck_assert_int_eq(cpmsync_message_section(NULL, 1, "", &off, &n), -EINVAL);
	ck_assert_int_eq(cpmsync_message_section("x", 1, "", NULL, &n), -EINVAL);
	ck_assert_int_eq(cpmsync_message_section("x", 1, "", &off, NULL), -EINVAL);
	ck_assert_int_eq(cpmsync_message_section(NULL, 0, "TEXT", &off, &n), 0);
	ck_assert_uint_eq(off, 0);
	ck_assert_uint_eq(n, 0);

	/* CPMSYNC_SECTION_MAX_LEN characters are accepted, one more is not:
	 * "1.1. ... .10" and "1.1. ... .100". */
	while (strlen(spec) + 2 < CPMSYNC_SECTION_MAX_LEN)
		strcat(spec, "1.");
	strcat(spec, "10");
	ck_assert_uint_eq(strlen(spec), CPMSYNC_SECTION_MAX_LEN);
	ck_assert_int_eq(cpmsync_message_section("x", 1, spec, &off, &n), -CPMSYNC_E_NOT_FOUND);
	strcat(spec, "0");
	ck_assert_int_eq(cpmsync_message_section("x", 1, spec, &off, &n), -EINVAL);
}
END_TEST

/* "1.1. ... .1", n part numbers (malloc()ed). */
static char *ones(unsigned n)
{
	char *s = malloc(2 * n + 1);

	ck_assert_ptr_nonnull(s);
	for (unsigned i = 0; i < n; i++) {
		s[2 * i] = '1';
		s[2 * i + 1] = '.';
	}
	s[n ? 2 * n - 1 : 0] = '\0';
	return s;
}

/* levels nested multiparts (the top level being one), then "deep".  No
 * boundary is a prefix of another (RFC 2046 5.1.1). */
static char *nested_multipart(unsigned levels)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(f);
	for (unsigned i = 0; i < levels; i++)
		fprintf(f, "Content-Type: multipart/mixed; boundary=\"=_%u_=\"\r\n\r\n--=_%u_=\r\n",
			i, i);
	fprintf(f, "Content-Type: text/plain\r\n\r\ndeep");
	for (unsigned i = levels; i-- > 0;)
		fprintf(f, "\r\n--=_%u_=--", i);
	ck_assert_int_eq(fclose(f), 0);
	return text;
}

/* levels nested message/rfc822 bodies, then "deep". */
static char *nested_messages(unsigned levels)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(f);
	for (unsigned i = 0; i < levels; i++)
		fprintf(f, "Content-Type: message/rfc822\n\n");
	fprintf(f, "Subject: deep\n\ndeep");
	ck_assert_int_eq(fclose(f), 0);
	return text;
}

static void expect_section(const char *msg, const char *section, int r, const char *text)
{
	size_t off = 0, n = 0;
	int got = cpmsync_message_section(msg, strlen(msg), section, &off, &n);

	ck_assert_msg(got == r, "section %s: %d, expected %d", section, got, r);
	if (r == 0 && text)
		ck_assert_msg(n == strlen(text) && memcmp(msg + off, text, n) == 0,
			      "section %s: \"%.*s\"", section, (int)n, msg + off);
}

START_TEST(test_depth)
{
	unsigned max = CPMSYNC_SECTION_MAX_DEPTH;
	char *m, *s;

	/* max levels of multipart: the text is max part numbers deep. */
	m = nested_multipart(max);
	s = ones(max);
	expect_section(m, s, 0, "deep");
	free(s);
	s = ones(max + 1);
	expect_section(m, s, -CPMSYNC_E_NOT_FOUND, NULL);
	free(s);
	free(m);

	/* Deeper than the limit. */
	m = nested_multipart(max + 8);
	s = ones(max);
	expect_section(m, s, 0, NULL);
	free(s);
	s = ones(max + 1);
	expect_section(m, s, -CPMSYNC_E_PROTOCOL, NULL);
	free(s);
	s = ones(max + 8);
	expect_section(m, s, -CPMSYNC_E_PROTOCOL, NULL);
	free(s);
	free(m);

	/* Encapsulated messages: each counts one part number. */
	m = nested_messages(max);
	s = ones(max);
	expect_section(m, s, 0, "Subject: deep\n\ndeep");
	free(s);
	free(m);
	m = nested_messages(max + 8);
	s = ones(max + 1);
	expect_section(m, s, -CPMSYNC_E_PROTOCOL, NULL);
	free(s);
	free(m);
}
END_TEST

static const char *const robust_specs[] = {
	"",    "HEADER",   "TEXT",   "1",      "1.MIME",   "2",	     "2.MIME",	 "2.1",
	"2.2", "2.2.MIME", "3",	     "3.MIME", "3.HEADER", "3.TEXT", "3.1",	 "3.1.MIME",
	"3.2", "4",	   "4.MIME", "5",      "1.1",	   "3.3",    "1.HEADER",
};

/*
 * Every prefix of the message, for every section: no crash, no read
 * beyond the prefix (an exactly sized copy for ASan), a range inside it,
 * and consistent ranges (HEADER + TEXT cover the message, N.MIME ends
 * where N starts).
 */
static void every_prefix(const char *msg, size_t full)
{
	for (size_t len = 0; len <= full; len++) {
		char *copy = exact_copy(msg, len);
		size_t hoff = 0, hlen = 0, toff = 0, tlen = 0;

		for (size_t i = 0; i < ARRAY_LEN(robust_specs); i++) {
			size_t off = 0, n = 0;
			int r = cpmsync_message_section(copy, len, robust_specs[i], &off, &n);

			ck_assert_msg(r == 0 || r == -CPMSYNC_E_NOT_FOUND, "prefix %zu, %s: %d",
				      len, robust_specs[i], r);
			if (r < 0)
				continue;
			ck_assert_uint_le(off, len);
			ck_assert_uint_le(n, len - off);
			if (strchr(robust_specs[i], 'M')) {
				char part[16];
				size_t poff, pn;

				snprintf(part, sizeof(part), "%.*s",
					 (int)(strlen(robust_specs[i]) - 5), robust_specs[i]);
				ck_assert_int_eq(
					cpmsync_message_section(copy, len, part, &poff, &pn), 0);
				ck_assert_uint_eq(off + n, poff);
			}
		}
		ck_assert_int_eq(cpmsync_message_section(copy, len, "HEADER", &hoff, &hlen), 0);
		ck_assert_int_eq(cpmsync_message_section(copy, len, "TEXT", &toff, &tlen), 0);
		ck_assert_uint_eq(hoff, 0);
		ck_assert_uint_eq(hlen, toff);
		ck_assert_uint_eq(toff + tlen, len);
		free(copy);
	}
}

START_TEST(test_every_prefix)
{
	char *lf = lf_only(sample);

	every_prefix(sample, strlen(sample));
	every_prefix(lf, strlen(lf));
	free(lf);
}
END_TEST

/* Random damage to the sample (a fixed seed): only in-bounds answers. */
START_TEST(test_mutations)
{
	size_t len = strlen(sample);
	char *m = malloc(len);
	unsigned seed = 12345;
	static const char alphabet[] = "-\r\n \t\";=:()\\ab\0";

	ck_assert_ptr_nonnull(m);
	for (unsigned round = 0; round < 3000; round++) {
		memcpy(m, sample, len);
		for (unsigned k = 0; k < 1 + round % 8; k++) {
			seed = seed * 1103515245 + 12345;
			m[(seed >> 8) % len] = alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
		}
		for (size_t i = 0; i < ARRAY_LEN(robust_specs); i++) {
			size_t off, n;
			int r = cpmsync_message_section(m, len, robust_specs[i], &off, &n);

			ck_assert(r == 0 || r == -CPMSYNC_E_NOT_FOUND);
			if (r == 0) {
				ck_assert_uint_le(off, len);
				ck_assert_uint_le(n, len - off);
			}
		}
	}
	free(m);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("mime-section");
	TCase *tc = tcase_create("section");

	tcase_add_loop_test(tc, test_sample_crlf, 0, (int)ARRAY_LEN(sample_cases));
	tcase_add_loop_test(tc, test_sample_lf, 0, (int)ARRAY_LEN(sample_cases));
	tcase_add_loop_test(tc, test_small, 0, (int)ARRAY_LEN(small_cases));
	tcase_add_test(tc, test_nul_bytes);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_depth);
	suite_add_tcase(s, tc);

	tc = tcase_create("robustness");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_every_prefix);
	tcase_add_test(tc, test_mutations);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(suite)
