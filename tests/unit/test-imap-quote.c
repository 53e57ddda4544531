/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "imap/imap-quote.h"
#include "util/buf.h"

struct form_case {
	const char *s;
	size_t len; /* 0: strlen(s) */
	bool utf8_ok;
	enum imap_str_form want;
};

#define A IMAP_STR_ATOM
#define Q IMAP_STR_QUOTED
#define L IMAP_STR_LITERAL

static const struct form_case form_cases[] = {
	{ "INBOX", 0, false, A },
	{ "a", 0, false, A },
	{ "Sent.2024", 0, false, A },
	{ "~peter/mail/&U,BTFw-", 0, false, A },
	{ "user@example.com", 0, false, A },
	{ "a]b", 0, false, A }, /* ']' is an ASTRING-CHAR */
	{ "[Gmail]", 0, false, A },
	{ "+-!#$&'.:;<=>?@^_`|~", 0, false, A },
	{ "", 0, false, Q },	/* empty: never an atom */
	{ "NIL", 0, false, Q }, /* would read as NIL */
	{ "nil", 0, false, Q },
	{ "NiL", 0, true, Q },
	{ "NILS", 0, false, A },
	{ "NI", 0, false, A },
	{ "a b", 0, false, Q },
	{ " ", 0, false, Q },
	{ "a(b", 0, false, Q },
	{ "a)b", 0, false, Q },
	{ "a{b", 0, false, Q },
	{ "a%", 0, false, Q }, /* list-wildcards */
	{ "a*", 0, false, Q },
	{ "a\"b", 0, false, Q },
	{ "a\\b", 0, false, Q },
	{ "{5}", 0, false, Q },
	{ "a\rb", 0, false, L },
	{ "a\nb", 0, false, L },
	{ "a\r\n", 0, true, L },
	{ "a\0b", 3, false, L },
	{ "a\0b", 3, true, L },
	{ "a\tb", 0, false, L }, /* other controls too */
	{ "a\x7f", 0, false, L },
	{ "\xe5\x8f\xb0\xe5\x8c\x97", 0, false, L }, /* 8-bit, not allowed */
	{ "\xe5\x8f\xb0\xe5\x8c\x97", 0, true, Q },  /* UTF-8 allowed */
	{ "caf\xc3\xa9 bar", 0, true, Q },
};

START_TEST(test_form)
{
	const struct form_case *c = &form_cases[_i];
	size_t len = c->len ? c->len : strlen(c->s);

	ck_assert_msg(imap_str_form(c->s, len, c->utf8_ok) == c->want, "case %d: got %d, want %d",
		      _i, imap_str_form(c->s, len, c->utf8_ok), c->want);
}
END_TEST

START_TEST(test_form_length_limit)
{
	char *s = malloc(IMAP_QUOTED_MAX + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, 'a', IMAP_QUOTED_MAX + 1);
	/* Long atoms are still too long for a quoted string. */
	ck_assert_int_eq(imap_str_form(s, IMAP_QUOTED_MAX - 1, false), A);
	s[0] = ' ';
	ck_assert_int_eq(imap_str_form(s, IMAP_QUOTED_MAX - 1, false), Q);
	ck_assert_int_eq(imap_str_form(s, IMAP_QUOTED_MAX, false), L);
	ck_assert_int_eq(imap_str_form(s, IMAP_QUOTED_MAX + 1, true), L);
	free(s);
}
END_TEST

struct quote_case {
	const char *in;
	const char *want;
};

static const struct quote_case quote_cases[] = {
	{ "", "\"\"" },
	{ "abc", "\"abc\"" },
	{ "a\"b", "\"a\\\"b\"" },
	{ "a\\b", "\"a\\\\b\"" },
	{ "\\\"", "\"\\\\\\\"\"" },
	{ "\"", "\"\\\"\"" },
	{ "a b (c) {3}", "\"a b (c) {3}\"" },
	{ "\xe6\x97\xa5", "\"\xe6\x97\xa5\"" },
};

START_TEST(test_append_quoted)
{
	struct buf b = BUF_INIT(256);

	ck_assert_int_eq(buf_append_str(&b, "X "), 0);
	ck_assert_int_eq(imap_append_quoted(&b, quote_cases[_i].in, strlen(quote_cases[_i].in)), 0);
	ck_assert_str_eq(b.data + 2, quote_cases[_i].want);
	buf_free(&b);
}
END_TEST

START_TEST(test_append_quoted_full_buffer)
{
	struct buf b = BUF_INIT(4);

	ck_assert_int_eq(imap_append_quoted(&b, "abcdef", 6), -E2BIG);
	buf_free(&b);
}
END_TEST

START_TEST(test_atom_or_quoted)
{
	struct buf b = BUF_INIT(256);

	ck_assert_int_eq(imap_append_atom_or_quoted(&b, "INBOX", 5, false), 0);
	ck_assert_int_eq(buf_append_char(&b, ' '), 0);
	ck_assert_int_eq(imap_append_atom_or_quoted(&b, "My Folder", 9, false), 0);
	ck_assert_int_eq(buf_append_char(&b, ' '), 0);
	ck_assert_int_eq(imap_append_atom_or_quoted(&b, "nil", 3, false), 0);
	ck_assert_int_eq(buf_append_char(&b, ' '), 0);
	ck_assert_int_eq(imap_append_atom_or_quoted(&b, "", 0, false), 0);
	ck_assert_int_eq(buf_append_char(&b, ' '), 0);
	ck_assert_int_eq(imap_append_atom_or_quoted(&b, "a\"\\", 3, false), 0);
	ck_assert_str_eq(b.data, "INBOX \"My Folder\" \"nil\" \"\" \"a\\\"\\\\\"");

	/* A literal is the caller's business. */
	buf_reset(&b);
	ck_assert_int_eq(imap_append_atom_or_quoted(&b, "a\r\nb", 4, true), -EINVAL);
	ck_assert_int_eq(imap_append_atom_or_quoted(&b, "\xc3\xa9", 2, false), -EINVAL);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(imap_append_atom_or_quoted(&b, "\xc3\xa9", 2, true), 0);
	ck_assert_str_eq(b.data, "\"\xc3\xa9\"");
	buf_free(&b);
}
END_TEST

static Suite *quote_suite(void)
{
	Suite *s = suite_create("imap-quote");
	TCase *tc = tcase_create("quote");

	tcase_add_loop_test(tc, test_form, 0, sizeof(form_cases) / sizeof(form_cases[0]));
	tcase_add_test(tc, test_form_length_limit);
	tcase_add_loop_test(tc, test_append_quoted, 0,
			    sizeof(quote_cases) / sizeof(quote_cases[0]));
	tcase_add_test(tc, test_append_quoted_full_buffer);
	tcase_add_test(tc, test_atom_or_quoted);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(quote_suite)
