/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

#include "testlib.h"
#include "imap/imap-seqset.h"
#include "util/buf.h"

/* Formats the whole set in one piece. */
static const char *set_str(const struct rangeset *set)
{
	static char out[1024];
	struct buf b = BUF_INIT(sizeof(out) - 1);
	size_t pos = 0;

	out[0] = '\0';
	ck_assert_int_eq(imap_seqset_format(set, &pos, &b, SIZE_MAX), 0);
	ck_assert_uint_eq(pos, set->n);
	if (b.data)
		memcpy(out, b.data, b.len + 1);
	buf_free(&b);
	return out;
}

/* Checks the invariants: sorted, non-empty, not touching. */
static void check_canonical(const struct rangeset *set)
{
	for (size_t i = 0; i < set->n; i++) {
		ck_assert_uint_ge(set->r[i].lo, 1);
		ck_assert_uint_le(set->r[i].lo, set->r[i].hi);
		if (i)
			ck_assert_uint_gt((uint64_t)set->r[i].lo, (uint64_t)set->r[i - 1].hi + 1);
	}
}

/* -------------------------------------------------------------------- */
/* add */

struct add_case {
	uint32_t ranges[8][2]; /* terminated by {0, 0} */
	const char *want;
	uint64_t count;
};

static const struct add_case add_cases[] = {
	{ { { 1, 1 } }, "1", 1 },
	{ { { 3, 1 } }, "1:3", 3 },			/* reversed */
	{ { { 1, 3 }, { 4, 4 } }, "1:4", 4 },		/* adjacent after */
	{ { { 5, 7 }, { 4, 4 } }, "4:7", 4 },		/* adjacent before */
	{ { { 1, 3 }, { 5, 7 }, { 4, 4 } }, "1:7", 7 }, /* bridges two */
	{ { { 1, 3 }, { 2, 6 } }, "1:6", 6 },		/* overlap */
	{ { { 5, 9 }, { 1, 6 } }, "1:9", 9 },		/* overlap before */
	{ { { 1, 2 }, { 4, 5 }, { 7, 8 }, { 10, 11 }, { 3, 9 } }, "1:11", 11 },
	{ { { 1, 2 }, { 10, 11 }, { 5, 6 } }, "1:2,5:6,10:11", 6 },
	{ { { 10, 11 }, { 1, 2 } }, "1:2,10:11", 4 }, /* insert at front */
	{ { { 1, 10 }, { 3, 4 } }, "1:10", 10 },      /* contained */
	{ { { 3, 4 }, { 1, 10 } }, "1:10", 10 },      /* swallows */
	{ { { 1, 1 }, { 3, 3 }, { 5, 5 } }, "1,3,5", 3 },
	{ { { 5, 5 }, { 3, 3 }, { 1, 1 }, { 2, 2 }, { 4, 4 } }, "1:5", 5 },
	{ { { 4294967295u, 4294967295u }, { 1, 1 } }, "1,4294967295", 2 },
	{ { { 1, 4294967295u } }, "1:4294967295", 4294967295ull },
	{ { { 4294967294u, 4294967295u }, { 4294967293u, 4294967293u } },
	  "4294967293:4294967295",
	  3 },
	{ { { 7, 9 }, { 1, 2 }, { 4, 4 }, { 3, 3 } }, "1:4,7:9", 7 },
};

START_TEST(test_add)
{
	const struct add_case *c = &add_cases[_i];
	struct rangeset set = RANGESET_INIT;

	for (size_t k = 0; c->ranges[k][0]; k++)
		ck_assert_int_eq(rangeset_add_range(&set, c->ranges[k][0], c->ranges[k][1]), 0);
	check_canonical(&set);
	ck_assert_str_eq(set_str(&set), c->want);
	ck_assert_uint_eq(rangeset_count(&set), c->count);
	rangeset_free(&set);
}
END_TEST

START_TEST(test_add_zero_refused)
{
	struct rangeset set;

	rangeset_init(&set);
	ck_assert_int_eq(rangeset_add(&set, 0), -EINVAL);
	ck_assert_int_eq(rangeset_add_range(&set, 0, 5), -EINVAL);
	ck_assert_int_eq(rangeset_add_range(&set, 5, 0), -EINVAL);
	ck_assert(rangeset_empty(&set));
	ck_assert_uint_eq(rangeset_count(&set), 0);
	ck_assert(!rangeset_contains(&set, 0));
	ck_assert(!rangeset_contains(&set, 1));
	rangeset_free(&set);
}
END_TEST

START_TEST(test_ascending_100k_one_range)
{
	struct rangeset set = RANGESET_INIT;

	for (uint32_t v = 1; v <= 100000; v++)
		ck_assert_int_eq(rangeset_add(&set, v), 0);
	ck_assert_uint_eq(set.n, 1);
	ck_assert_uint_eq(rangeset_count(&set), 100000);
	ck_assert_str_eq(set_str(&set), "1:100000");
	rangeset_free(&set);
}
END_TEST

START_TEST(test_ascending_sparse_and_random)
{
	struct rangeset set = RANGESET_INIT;
	static unsigned char ref[4001];
	unsigned seed = 12345;

	for (uint32_t v = 1; v <= 200000; v += 2)
		ck_assert_int_eq(rangeset_add(&set, v), 0);
	ck_assert_uint_eq(set.n, 100000);
	ck_assert(rangeset_contains(&set, 199999));
	ck_assert(!rangeset_contains(&set, 100000));
	rangeset_clear(&set);
	ck_assert(rangeset_empty(&set));

	/* Random adds and removes against a bitmap. */
	memset(ref, 0, sizeof(ref));
	for (int k = 0; k < 20000; k++) {
		uint32_t a, b, lo, hi;

		seed = seed * 1103515245u + 12345u;
		a = 1 + (seed >> 8) % 4000;
		seed = seed * 1103515245u + 12345u;
		b = a + (seed >> 8) % 8;
		if (b > 4000)
			b = 4000;
		lo = a;
		hi = b;
		seed = seed * 1103515245u + 12345u;
		if ((seed >> 8) % 3 == 0) {
			ck_assert_int_eq(rangeset_remove_range(&set, hi, lo), 0);
			for (uint32_t v = lo; v <= hi; v++)
				ref[v] = 0;
		} else {
			ck_assert_int_eq(rangeset_add_range(&set, hi, lo), 0);
			for (uint32_t v = lo; v <= hi; v++)
				ref[v] = 1;
		}
	}
	check_canonical(&set);
	{
		uint64_t n = 0;

		for (uint32_t v = 1; v <= 4000; v++) {
			ck_assert_int_eq(rangeset_contains(&set, v), ref[v]);
			n += ref[v];
		}
		ck_assert_uint_eq(rangeset_count(&set), n);
	}
	rangeset_free(&set);
}
END_TEST

/* -------------------------------------------------------------------- */
/* remove */

struct remove_case {
	const char *start;
	uint32_t lo, hi;
	const char *want;
};

static const struct remove_case remove_cases[] = {
	{ "1:10", 4, 6, "1:3,7:10" }, /* split */
	{ "1:10", 6, 4, "1:3,7:10" }, /* reversed */
	{ "1:10", 1, 1, "2:10" },
	{ "1:10", 10, 10, "1:9" },
	{ "1:10", 1, 10, "" },
	{ "1:10", 1, 4294967295u, "" },
	{ "1:10", 11, 20, "1:10" },
	{ "5:10", 1, 4, "5:10" },
	{ "1:3,5:7,9:11", 2, 10, "1,11" },
	{ "1:3,5:7,9:11", 4, 8, "1:3,9:11" },
	{ "1:3,5:7,9:11", 5, 7, "1:3,9:11" },
	{ "1:3,5:7,9:11", 3, 5, "1:2,6:7,9:11" },
	{ "1,3,5", 2, 2, "1,3,5" },
	{ "1,3,5", 3, 3, "1,5" },
	{ "1:4294967295", 2, 4294967294u, "1,4294967295" },
	{ "4294967295", 4294967295u, 4294967295u, "" },
};

START_TEST(test_remove)
{
	const struct remove_case *c = &remove_cases[_i];
	struct rangeset set = RANGESET_INIT;

	ck_assert_int_eq(imap_seqset_parse(&set, c->start, strlen(c->start), 0), 0);
	ck_assert_int_eq(rangeset_remove_range(&set, c->lo, c->hi), 0);
	check_canonical(&set);
	ck_assert_str_eq(set_str(&set), c->want);
	rangeset_free(&set);
}
END_TEST

START_TEST(test_remove_zero_and_empty)
{
	struct rangeset set = RANGESET_INIT;

	ck_assert_int_eq(rangeset_remove_range(&set, 1, 5), 0);
	ck_assert_int_eq(rangeset_remove_range(&set, 0, 5), -EINVAL);
	rangeset_free(&set);
}
END_TEST

/* -------------------------------------------------------------------- */
/* contains */

START_TEST(test_contains)
{
	struct rangeset set = RANGESET_INIT;
	static const char s[] = "2:4,10,20:30,4294967295";
	static const uint32_t yes[] = { 2, 3, 4, 10, 20, 25, 30, 4294967295u };
	static const uint32_t no[] = { 0, 1, 5, 9, 11, 19, 31, 4294967294u };

	ck_assert_int_eq(imap_seqset_parse(&set, s, strlen(s), 0), 0);
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ck_assert_msg(rangeset_contains(&set, yes[i]), "%u", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ck_assert_msg(!rangeset_contains(&set, no[i]), "%u", no[i]);
	ck_assert_uint_eq(rangeset_count(&set), 3 + 1 + 11 + 1);
	rangeset_free(&set);
}
END_TEST

/* -------------------------------------------------------------------- */
/* parse */

struct parse_case {
	const char *in;
	uint32_t star;
	const char *want;
};

static const struct parse_case parse_ok[] = {
	{ "1", 0, "1" },
	{ "1:3,5,7:*", 10, "1:3,5,7:10" },
	{ "5:3", 0, "3:5" },
	{ "*", 42, "42" },
	{ "*:40", 42, "40:42" },
	{ "*:50", 42, "42:50" },
	{ "3,2,1", 0, "1:3" },
	{ "1:3,2:6,10", 0, "1:6,10" },
	{ "4294967295", 0, "4294967295" },
	{ "1:4294967295", 0, "1:4294967295" },
	{ "7:*", 3, "3:7" },
	{ "1,1,1", 0, "1" },
	{ "100:1", 0, "1:100" },
};

START_TEST(test_parse_valid)
{
	const struct parse_case *c = &parse_ok[_i];
	struct rangeset set = RANGESET_INIT;

	ck_assert_int_eq(imap_seqset_parse(&set, c->in, strlen(c->in), c->star), 0);
	check_canonical(&set);
	ck_assert_str_eq(set_str(&set), c->want);
	rangeset_free(&set);
}
END_TEST

static const struct parse_case parse_bad[] = {
	{ "", 0, NULL },
	{ "0", 0, NULL },
	{ "0:5", 0, NULL },
	{ "5:0", 0, NULL },
	{ "01", 0, NULL },
	{ "*", 0, NULL },
	{ "1:*", 0, NULL },
	{ ",", 0, NULL },
	{ "1,", 0, NULL },
	{ ",1", 0, NULL },
	{ "1,,2", 0, NULL },
	{ "1:", 0, NULL },
	{ ":1", 0, NULL },
	{ "1::2", 0, NULL },
	{ "1:2:3", 0, NULL },
	{ "1 ", 0, NULL },
	{ " 1", 0, NULL },
	{ "1 ,2", 0, NULL },
	{ "a", 0, NULL },
	{ "1a", 0, NULL },
	{ "-1", 0, NULL },
	{ "+1", 0, NULL },
	{ "4294967296", 0, NULL },
	{ "1:4294967296", 0, NULL },
	{ "99999999999999999999999", 0, NULL },
	{ "**", 5, NULL },
	{ "1*", 5, NULL },
	{ "$", 5, NULL },
	{ "1;2", 0, NULL },
};

START_TEST(test_parse_invalid)
{
	const struct parse_case *c = &parse_bad[_i];
	struct rangeset set = RANGESET_INIT;

	ck_assert_int_eq(rangeset_add(&set, 77), 0);
	ck_assert_msg(imap_seqset_parse(&set, c->in, strlen(c->in), c->star) == -CPMSYNC_E_PROTOCOL,
		      "\"%s\" accepted", c->in);
	/* Bad syntax leaves the set unchanged. */
	ck_assert_str_eq(set_str(&set), "77");
	rangeset_free(&set);
}
END_TEST

START_TEST(test_parse_embedded_nul_and_length)
{
	struct rangeset set = RANGESET_INIT;

	ck_assert_int_eq(imap_seqset_parse(&set, "1\0002", 3, 0), -CPMSYNC_E_PROTOCOL);
	/* Only len bytes are read. */
	ck_assert_int_eq(imap_seqset_parse(&set, "12,junk", 2, 0), 0);
	ck_assert_str_eq(set_str(&set), "12");
	rangeset_free(&set);
}
END_TEST

/* -------------------------------------------------------------------- */
/* format */

START_TEST(test_format_round_trip)
{
	static const char *const texts[] = {
		"1",
		"1:3",
		"1:3,5,7:9",
		"2,4,6,8,10",
		"1:4294967295",
		"1,4294967295",
		"10:20,30:40,50",
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct rangeset set = RANGESET_INIT;

		ck_assert_int_eq(imap_seqset_parse(&set, texts[i], strlen(texts[i]), 0), 0);
		ck_assert_str_eq(set_str(&set), texts[i]);
		rangeset_free(&set);
	}
}
END_TEST

static const size_t split_limits[] = { 1, 5, 10, 11, 100, 1000, 8000, 65536 };

START_TEST(test_format_split_5000)
{
	struct rangeset set = RANGESET_INIT, back = RANGESET_INIT;
	struct buf line = BUF_INIT(1 << 20);
	size_t max = split_limits[_i], pos = 0, calls = 0;

	/* 5000 ranges of varied widths. */
	for (uint32_t k = 0; k < 5000; k++) {
		uint32_t lo = 1 + k * 800000u;

		ck_assert_int_eq(rangeset_add_range(&set, lo, lo + (k % 3 ? k : 0)), 0);
	}
	ck_assert_uint_eq(set.n, 5000);
	while (pos < set.n) {
		size_t before = pos;

		buf_reset(&line);
		ck_assert_int_eq(imap_seqset_format(&set, &pos, &line, max), 0);
		ck_assert_uint_gt(pos, before);
		/* Over the limit only when a single range is longer. */
		if (pos - before > 1)
			ck_assert_uint_le(line.len, max);
		else if (line.len > max)
			ck_assert_ptr_null(strchr(line.data, ','));
		/* Greedy: the next range would not have fit. */
		if (pos < set.n) {
			char next[32];
			const struct range *r = &set.r[pos];
			int n = r->lo == r->hi
					? snprintf(next, sizeof(next), ",%u", r->lo)
					: snprintf(next, sizeof(next), ",%u:%u", r->lo, r->hi);

			ck_assert_uint_gt(line.len + (size_t)n, max);
		}
		ck_assert_int_eq(imap_seqset_parse(&back, line.data, line.len, 0), 0);
		calls++;
	}
	ck_assert_uint_eq(pos, set.n);
	if (max >= 65536)
		ck_assert_uint_lt(calls, 5000);
	ck_assert_uint_eq(back.n, set.n);
	ck_assert_int_eq(memcmp(back.r, set.r, set.n * sizeof(*set.r)), 0);
	/* Nothing left (unspecified: 0 or -EINVAL): writes nothing. */
	buf_reset(&line);
	{
		int r = imap_seqset_format(&set, &pos, &line, max);

		ck_assert(r == 0 || r == -EINVAL);
	}
	ck_assert_uint_eq(line.len, 0);
	ck_assert_uint_eq(pos, set.n);
	buf_free(&line);
	rangeset_free(&set);
	rangeset_free(&back);
}
END_TEST

START_TEST(test_format_buffer_full)
{
	struct rangeset set = RANGESET_INIT;
	struct buf line = BUF_INIT(8);
	size_t pos = 0;

	ck_assert_int_eq(imap_seqset_parse(&set, "1000:2000,3", 9, 0), 0);
	ck_assert_int_eq(buf_append_str(&line, "UID "), 0);
	ck_assert_int_eq(imap_seqset_format(&set, &pos, &line, 100), -E2BIG);
	ck_assert_uint_eq(pos, 0);
	ck_assert_str_eq(line.data, "UID ");
	buf_free(&line);
	rangeset_free(&set);
}
END_TEST

/* -------------------------------------------------------------------- */
/* limit */

START_TEST(test_limit)
{
	struct rangeset set = RANGESET_INIT;

	set.max_ranges = 3;
	ck_assert_int_eq(imap_seqset_parse(&set, "1,3,5", 5, 0), 0);
	ck_assert_int_eq(rangeset_add(&set, 7), -E2BIG);
	ck_assert_int_eq(rangeset_add(&set, 0xffffffffu), -E2BIG);
	ck_assert_str_eq(set_str(&set), "1,3,5");
	/* Merging needs no new range. */
	ck_assert_int_eq(rangeset_add(&set, 6), 0);
	ck_assert_int_eq(rangeset_add(&set, 2), 0);
	ck_assert_str_eq(set_str(&set), "1:3,5:6");
	ck_assert_int_eq(rangeset_add(&set, 10), 0);
	/* A split that would need a fourth range. */
	ck_assert_int_eq(rangeset_remove_range(&set, 2, 2), -E2BIG);
	ck_assert_str_eq(set_str(&set), "1:3,5:6,10");
	ck_assert_int_eq(imap_seqset_parse(&set, "20", 2, 0), -E2BIG);
	rangeset_free(&set);

	/* The default limit. */
	rangeset_init(&set);
	ck_assert_uint_eq(set.max_ranges, RANGESET_DEFAULT_MAX);
	rangeset_free(&set);
}
END_TEST

START_TEST(test_count_large)
{
	struct rangeset set = RANGESET_INIT;

	ck_assert_int_eq(imap_seqset_parse(&set, "1:4294967295", 12, 0), 0);
	ck_assert_uint_eq(rangeset_count(&set), 4294967295ull);
	ck_assert_int_eq(rangeset_remove_range(&set, 100, 199), 0);
	ck_assert_uint_eq(rangeset_count(&set), 4294967295ull - 100);
	rangeset_clear(&set);
	ck_assert_uint_eq(rangeset_count(&set), 0);
	/* clear keeps memory; the set stays usable. */
	ck_assert_int_eq(rangeset_add(&set, 9), 0);
	ck_assert_str_eq(set_str(&set), "9");
	rangeset_free(&set);
	rangeset_free(&set); /* twice is harmless */
	ck_assert(rangeset_empty(&set));
}
END_TEST

static Suite *seqset_suite(void)
{
	Suite *s = suite_create("imap-seqset");
	TCase *tc = tcase_create("add-remove");

	tcase_add_loop_test(tc, test_add, 0, sizeof(add_cases) / sizeof(add_cases[0]));
	tcase_add_test(tc, test_add_zero_refused);
	tcase_add_test(tc, test_ascending_100k_one_range);
	tcase_add_test(tc, test_ascending_sparse_and_random);
	tcase_add_loop_test(tc, test_remove, 0, sizeof(remove_cases) / sizeof(remove_cases[0]));
	tcase_add_test(tc, test_remove_zero_and_empty);
	tcase_add_test(tc, test_contains);
	tcase_add_test(tc, test_limit);
	tcase_add_test(tc, test_count_large);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse-format");
	tcase_add_loop_test(tc, test_parse_valid, 0, sizeof(parse_ok) / sizeof(parse_ok[0]));
	tcase_add_loop_test(tc, test_parse_invalid, 0, sizeof(parse_bad) / sizeof(parse_bad[0]));
	tcase_add_test(tc, test_parse_embedded_nul_and_length);
	tcase_add_test(tc, test_format_round_trip);
	tcase_add_loop_test(tc, test_format_split_5000, 0,
			    sizeof(split_limits) / sizeof(split_limits[0]));
	tcase_add_test(tc, test_format_buffer_full);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(seqset_suite)
