/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* util/text: what is unsafe in server text, and how it is escaped. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/log.h>

#include "testlib.h"
#include "util/log.h"
#include "util/text.h"

static const struct {
	const char *in;
	const char *out;
} cases[] = {
	{ "", "" },
	{ "plain text, \\Seen (1)", "plain text, \\Seen (1)" },
	{ "Entw\xc3\xbcrfe \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d",
	  "Entw\xc3\xbcrfe \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d" },
	{ "NO \x1b]0;owned\x07 title", "NO \\x1b]0;owned\\x07 title" },
	{ "line\r\nforged: ok", "line\\x0d\\x0aforged: ok" },
	{ "tab\tdel\x7f", "tab\\x09del\\x7f" },
	{ "c1 \xc2\x9b"
	  "31m",
	  "c1 \\u009b31m" },
	{ "bidi \xe2\x80\xae"
	  "txt.exe",
	  "bidi \\u202etxt.exe" },
	{ "iso \xe2\x81\xa6x\xe2\x81\xa9 lrm\xe2\x80\x8e alm\xd8\x9c",
	  "iso \\u2066x\\u2069 lrm\\u200e alm\\u061c" },
	{ "bad \xff\xc3 utf8", "bad \\xff\\xc3 utf8" },
};

START_TEST(test_escape)
{
	char buf[256];
	char *dup;

	ck_assert_str_eq(text_escape(buf, sizeof(buf), cases[_i].in), cases[_i].out);
	dup = text_escape_dup(cases[_i].in);
	ck_assert_str_eq(dup, cases[_i].out);
	free(dup);
	ck_assert(text_has_unsafe(cases[_i].in, strlen(cases[_i].in)) ==
		  (strcmp(cases[_i].in, cases[_i].out) != 0));
}
END_TEST

START_TEST(test_escape_cut)
{
	char buf[8];

	/* never inside an escape or a character */
	ck_assert_str_eq(text_escape(buf, sizeof(buf),
				     "ab\x1b"
				     "cdef"),
			 "ab\\x1bc");
	ck_assert_str_eq(text_escape(buf, 6,
				     "ab\x1b"
				     "cdef"),
			 "ab");
	ck_assert_str_eq(text_escape(buf, 4, "a\xc3\xbc\xc3\xbc"), "a\xc3\xbc");
	ck_assert_str_eq(text_escape(buf, 1, "abc"), "");
}
END_TEST

static char logged[512];

static void capture(int level, unsigned category, const char *msg, void *userdata)
{
	(void)level;
	(void)category;
	(void)userdata;
	snprintf(logged, sizeof(logged), "%s", msg);
}

/* Every library log line is escaped: a server's text cannot forge a line
 * or send a terminal control sequence (the -v wire log included). */
START_TEST(test_log_lines_escaped)
{
	cpmsync_log_set_handler(CPMSYNC_LOG_DEBUG, CPMSYNC_LOG_CAT_ALL, capture, NULL);
	log_msg(CPMSYNC_LOG_WARNING, CPMSYNC_LOG_CAT_IMAP, "a: %s",
		"NO \x1b]0;owned\x07\ncpm-syncd: forged \xe2\x80\xae"
		"gpj.exe");
	ck_assert_str_eq(logged, "a: NO \\x1b]0;owned\\x07\\x0acpm-syncd: forged \\u202egpj.exe");
	log_debug(CPMSYNC_LOG_CAT_IMAP_WIRE, "S: %s",
		  "* 1 FETCH (X \xc2\x9b"
		  "2J)");
	ck_assert_str_eq(logged, "S: * 1 FETCH (X \\u009b2J)");
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
}
END_TEST

static Suite *text_suite(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("escape");

	tcase_add_loop_test(tc, test_escape, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_escape_cut);
	tcase_add_test(tc, test_log_lines_escaped);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(text_suite)
