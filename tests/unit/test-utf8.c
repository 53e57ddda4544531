/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include <cpmsync/utf8.h>

#include "testlib.h"
#include "util/casefold.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct good {
	const char *s;
	uint32_t cp;
};

static const struct good good[] = {
	{ "\x00", 0 },
	{ "A", 'A' },
	{ "\x7f", 0x7f },
	{ "\xc2\x80", 0x80 },
	{ "\xc3\xa9", 0xe9 },
	{ "\xdf\xbf", 0x7ff },
	{ "\xe0\xa0\x80", 0x800 },
	{ "\xe2\x82\xac", 0x20ac },
	{ "\xed\x9f\xbf", 0xd7ff },
	{ "\xee\x80\x80", 0xe000 },
	{ "\xef\xbf\xbd", 0xfffd },
	{ "\xef\xbf\xbf", 0xffff },
	{ "\xf0\x90\x80\x80", 0x10000 },
	{ "\xf0\x9f\x98\x80", 0x1f600 },
	{ "\xf4\x8f\xbf\xbf", 0x10ffff },
};

static size_t good_len(const struct good *g)
{
	return g->cp == 0 ? 1 : strlen(g->s);
}

START_TEST(test_decode_good)
{
	const struct good *g = &good[_i];
	size_t len = good_len(g);
	uint32_t cp = 0xdeadbeef;
	char enc[4];

	ck_assert_uint_eq(cpmsync_utf8_decode(g->s, len, &cp), len);
	ck_assert_uint_eq(cp, g->cp);
	ck_assert(cpmsync_utf8_valid(g->s, len));
	ck_assert_uint_eq(cpmsync_utf8_encode(g->cp, enc), len);
	ck_assert(memcmp(enc, g->s, len) == 0);
	/* NULL for the code point is allowed. */
	ck_assert_uint_eq(cpmsync_utf8_decode(g->s, len, NULL), len);
}
END_TEST

/* Byte at a time: every proper prefix of a sequence is truncated. */
START_TEST(test_decode_truncated)
{
	const struct good *g = &good[_i];
	size_t len = good_len(g);

	for (size_t n = 0; n < len; n++) {
		uint32_t cp = 0xdeadbeef;

		ck_assert_uint_eq(cpmsync_utf8_decode(g->s, n, &cp), 0);
		ck_assert_uint_eq(cp, 0xdeadbeef); /* untouched */
		if (n > 0)
			ck_assert(!cpmsync_utf8_valid(g->s, n));
	}
}
END_TEST

static const char *const bad[] = {
	/* lone continuation bytes */
	"\x80",
	"\xbf",
	/* overlong forms */
	"\xc0\x80",
	"\xc0\xaf",
	"\xc1\xbf",
	"\xe0\x80\x80",
	"\xe0\x9f\xbf",
	"\xf0\x80\x80\x80",
	"\xf0\x8f\xbf\xbf",
	/* UTF-16 surrogates */
	"\xed\xa0\x80",
	"\xed\xaf\xbf",
	"\xed\xb0\x80",
	"\xed\xbf\xbf",
	/* past U+10FFFF */
	"\xf4\x90\x80\x80",
	"\xf5\x80\x80\x80",
	"\xf7\xbf\xbf\xbf",
	"\xf8\x88\x80\x80\x80",
	"\xfe",
	"\xff",
	/* a continuation byte missing inside the sequence */
	"\xc3\x28",
	"\xe2\x28\xa1",
	"\xe2\x82\x28",
	"\xf0\x28\x8c\xbc",
	"\xf0\x90\x28\xbc",
	"\xf0\x90\x8c\x28",
	"\xc3\xc3\xa9",
};

START_TEST(test_decode_bad)
{
	const char *s = bad[_i];
	uint32_t cp = 0xdeadbeef;

	ck_assert_uint_eq(cpmsync_utf8_decode(s, strlen(s), &cp), 0);
	ck_assert_uint_eq(cp, 0xdeadbeef);
	ck_assert(!cpmsync_utf8_valid(s, strlen(s)));
}
END_TEST

/* A mixed string is valid exactly at the prefixes that end on a boundary. */
START_TEST(test_valid_prefixes)
{
	static const char s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
	static const size_t boundaries[] = { 0, 1, 3, 6, 10, 11 };
	size_t b = 0;

	for (size_t n = 0; n <= sizeof(s) - 1; n++) {
		bool at = b < ARRAY_LEN(boundaries) && boundaries[b] == n;

		ck_assert_msg(cpmsync_utf8_valid(s, n) == at, "prefix %zu", n);
		if (at)
			b++;
	}
	ck_assert(cpmsync_utf8_valid("", 0));
	ck_assert(cpmsync_utf8_valid("a\0b", 3));
}
END_TEST

/*
 * Every input of one to three bytes: what decodes is exactly the shortest
 * form of a code point that is no surrogate, and those are all there are.
 */
START_TEST(test_exhaustive)
{
	unsigned counts[4] = { 0 }, wrong = 0;

	/* Plain checks in the loop: one ck_assert per input costs seconds. */
	for (uint32_t v = 0; v < (1u << 24); v++) {
		char in[3] = { (char)(v >> 16), (char)(v >> 8), (char)v };
		uint32_t cp;
		size_t k = cpmsync_utf8_decode(in, 3, &cp);
		char enc[4];

		if (k == 0)
			continue;
		if (cpmsync_utf8_encode(cp, enc) != k || memcmp(enc, in, k) != 0)
			wrong++;
		/* Count each sequence once: the bytes after it may be anything. */
		if ((k == 1 && (v & 0xffff) == 0) || (k == 2 && (v & 0xff) == 0) || k == 3)
			counts[k]++;
	}
	ck_assert_uint_eq(wrong, 0);
	ck_assert_uint_eq(counts[1], 0x80);
	ck_assert_uint_eq(counts[2], 0x800 - 0x80);
	ck_assert_uint_eq(counts[3], 0x10000 - 0x800 - 0x800);
}
END_TEST

START_TEST(test_encode_all)
{
	unsigned n4 = 0, none = 0, wrong = 0;

	for (uint32_t cp = 0; cp <= 0x110000; cp++) {
		char enc[4];
		size_t k = cpmsync_utf8_encode(cp, enc);
		uint32_t back = 0xdeadbeef;

		if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
			none += k == 0;
			continue;
		}
		if (k == 0 || cpmsync_utf8_decode(enc, k, &back) != k || back != cp)
			wrong++;
		n4 += k == 4;
	}
	ck_assert_uint_eq(wrong, 0);
	ck_assert_uint_eq(none, 0x800 + 1);
	ck_assert_uint_eq(n4, 0x110000 - 0x10000);
}
END_TEST

/* Simple case folding (util/casefold.h): one code point each, by range
 * and by alternating pair; what has no folding stays. */
START_TEST(test_casefold_cp)
{
	static const uint32_t pairs[][2] = {
		{ 'A', 'a' },	      { 'z', 'z' },	 { '@', '@' },	     { 0xc9, 0xe9 },
		{ 0xd7, 0xd7 },	      { 0xdf, 0xdf },	 { 0x100, 0x101 },   { 0x101, 0x101 },
		{ 0x141, 0x142 },     { 0x17f, 's' },	 { 0x178, 0xff },    { 0x23a, 0x2c65 },
		{ 0x391, 0x3b1 },     { 0x3a3, 0x3c3 },	 { 0x3c2, 0x3c3 },   { 0x38a, 0x3af },
		{ 0x410, 0x430 },     { 0x401, 0x451 },	 { 0x460, 0x461 },   { 0x1e9e, 0xdf },
		{ 0x212a, 'k' },      { 0x2126, 0x3c9 }, { 0xff21, 0xff41 }, { 0x10400, 0x10428 },
		{ 0x1e900, 0x1e922 }, { 0x130, 0x130 },	 { 0x4e00, 0x4e00 }, { 0x10ffff, 0x10ffff },
	};

	for (size_t i = 0; i < ARRAY_LEN(pairs); i++)
		ck_assert_msg(casefold_cp(pairs[i][0]) == pairs[i][1], "U+%04X: U+%04X",
			      pairs[i][0], casefold_cp(pairs[i][0]));
}
END_TEST

/* casefold_utf8(): bytes that are not UTF-8 as they are; a character cut
 * at the end waits unless final; 2 bytes may become 3. */
START_TEST(test_casefold_utf8)
{
	char out[64];
	size_t len, used;

	used = casefold_utf8("Caf\xc3\x89 \xff\xd0\x96", 9, true, out, &len);
	ck_assert_uint_eq(used, 9);
	ck_assert_uint_eq(len, 9);
	ck_assert(memcmp(out, "caf\xc3\xa9 \xff\xd0\xb6", 9) == 0);
	used = casefold_utf8("x\xd0", 2, false, out, &len);
	ck_assert_uint_eq(used, 1);
	ck_assert_uint_eq(len, 1);
	used = casefold_utf8("x\xe2\x84", 3, false, out, &len);
	ck_assert_uint_eq(used, 1);
	used = casefold_utf8("x\xd0", 2, true, out, &len);
	ck_assert_uint_eq(used, 2);
	ck_assert(memcmp(out, "x\xd0", 2) == 0);
	used = casefold_utf8("\xc8\xba\xc8\xba", 4, true, out, &len);
	ck_assert_uint_eq(len, 6);
	ck_assert_uint_le(len, CASEFOLD_SIZE(4));
	ck_assert(memcmp(out, "\xe2\xb1\xa5\xe2\xb1\xa5", 6) == 0);
}
END_TEST

static Suite *utf8_suite(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("utf8");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_decode_good, 0, ARRAY_LEN(good));
	tcase_add_loop_test(tc, test_decode_truncated, 0, ARRAY_LEN(good));
	tcase_add_loop_test(tc, test_decode_bad, 0, ARRAY_LEN(bad));
	tcase_add_test(tc, test_valid_prefixes);
	tcase_add_test(tc, test_exhaustive);
	tcase_add_test(tc, test_encode_all);
	tcase_add_test(tc, test_casefold_cp);
	tcase_add_test(tc, test_casefold_utf8);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(utf8_suite)
