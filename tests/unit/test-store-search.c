/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpmsync_store_search() (libsync/store/store-search.c) over a temporary
 * store filled through cpmsync/ops.h with real RFC 5322 messages: each
 * criterion alone, combinations, visibility, bodies (stored, missing, a
 * match across the 64 KiB read chunks) and the errors.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "testlib.h"

static char tmpdir[] = "/tmp/test-store-search-XXXXXX";
static char dbpath[sizeof(tmpdir) + 32];
static struct cpmsync_store *cs;
static int64_t work, other, empty;
/* The visible messages of Work, in id order. */
static int64_t m[5];
static int64_t moved_away;

static const char msg_report[] = "Message-ID: <report@example.org>\r\n"
				 "From: Alice <alice@example.org>\r\n"
				 "To: bob@example.org\r\n"
				 "Subject: Quarterly Report\r\n"
				 "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
				 "Conversation-ID: conv-AAA\r\n"
				 "X-Custom: sparkle\r\n"
				 "\r\n"
				 "The numbers are in: 100 percent.\r\n";

static const char msg_lunch[] = "Message-ID: <lunch@example.org>\r\n"
				"From: bob@example.org\r\n"
				"To: alice@example.org\r\n"
				"Cc: carol@example.org\r\n"
				"Subject: Lunch? 50% off_sale\r\n"
				"Conversation-ID: conv-BBB\r\n"
				"\r\n"
				"Pizza at noon.\r\n";

static const char msg_summary_only[] = "Message-ID: <summary@example.org>\r\n"
				       "From: dave@example.org\r\n"
				       "Subject: Summary only\r\n"
				       "\r\n"
				       "bodyonlyword\r\n";

static const char msg_moved[] = "Message-ID: <moved@example.org>\r\n"
				"From: alice@example.org\r\n"
				"Subject: uniquemoved\r\n"
				"\r\n"
				"uniquemoved\r\n";

static const char needle[] = "NEEDLE-in-haystack";
#define XS "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static void fail_with(int r, const char *what)
{
	ck_abort_msg("%s: %d %s", what, r, cpmsync_store_error(cs));
}

static int64_t store_msg(int64_t folder, const char *data, size_t len, const char *const *flags,
			 int64_t date)
{
	const char *name = folder == work ? "Work" : "Other";
	int64_t id = 0;
	int r = cpmsync_op_store(cs, "a", name, data, len, flags, date, &id);

	if (r != 0)
		fail_with(r, "store");
	return id;
}

/* A message of about 200 KiB with the needle across the first 64 KiB
 * boundary of the stored body and again at its very end. */
static char *big_message(size_t *ret_len)
{
	static const char head[] = "Message-ID: <big@example.org>\r\n"
				   "From: erin@example.org\r\n"
				   "To: bob@example.org\r\n"
				   "Subject: big one\r\n"
				   "\r\n";
	size_t len = 200 * 1024, at = 64 * 1024 - 7;
	char *p = malloc(len);

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (i % 64 == 63) ? '\n' : 'x';
	memcpy(p, head, sizeof(head) - 1);
	memcpy(p + at, needle, sizeof(needle) - 1);
	memcpy(p + len - 6, "ENDTAG", 6);
	*ret_len = len;
	return p;
}

static void setup(void)
{
	static const char *const seen[] = { "\\Seen", NULL };
	static const char *const flagged_work[] = { "\\flagged", "$Work", NULL };
	static const char *const seen_answered[] = { "\\Seen", "\\Answered", NULL };
	struct store *s;
	char *err = NULL, *big, sql[256];
	size_t big_len;
	int64_t moved;
	int r;

	strcpy(tmpdir, "/tmp/test-store-search-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", tmpdir);
	r = cpmsync_store_open(dbpath, 0, &cs, &err);
	if (r != 0)
		ck_abort_msg("open: %d %s", r, err ? err : "");
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Work", &work), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Other", &other), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Empty", &empty), 0);

	m[0] = store_msg(work, msg_report, strlen(msg_report), seen, 1000);
	m[1] = store_msg(work, msg_lunch, strlen(msg_lunch), flagged_work, 2000);
	big = big_message(&big_len);
	m[2] = store_msg(work, big, big_len, seen_answered, 3000);
	free(big);
	moved = store_msg(work, msg_moved, strlen(msg_moved), NULL, 1500);
	m[3] = store_msg(work, msg_summary_only, strlen(msg_summary_only), NULL, 4000);
	/* Another folder's message that would match most criteria. */
	store_msg(other, msg_report, strlen(msg_report), seen, 1000);
	/* Moved away: no longer visible in Work (its row stays, removed). */
	r = cpmsync_op_move(cs, &moved, 1, "Other", &moved_away);
	if (r != 0)
		fail_with(r, "move");

	s = store_from_public(cs);
	/* The body of "Summary only" is not stored locally. */
	snprintf(sql, sizeof(sql), "UPDATE message SET has_body = 0 WHERE id = %lld",
		 (long long)m[3]);
	ck_assert_int_eq(store_exec(s, sql), 0);
	/* A row as a sync might leave it: no summary fields, no date. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO message (folder_id, uid) VALUES (%lld, 7);"
		 "INSERT INTO message_state (id) VALUES (last_insert_rowid())",
		 (long long)work);
	ck_assert_int_eq(store_exec(s, sql), 0);
	m[4] = store_last_insert_id(s);
	/* A removed message (expunge pending) in Work. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO message (folder_id, uid, removed, internaldate)"
		 " VALUES (%lld, 8, 1, 1000);"
		 "INSERT INTO message_state (id) VALUES (last_insert_rowid());"
		 "INSERT INTO summary (id, subject) VALUES (last_insert_rowid(), 'Quarterly "
		 "Report')",
		 (long long)work);
	ck_assert_int_eq(store_exec(s, sql), 0);
}

static void teardown(void)
{
	cs = cpmsync_store_close(cs);
	test_rm_rf(tmpdir);
}

/* The search's ids as "i j k" (indexes into m[], "?" for others). */
static char *search_in(int64_t folder, const struct cpmsync_search_criteria *c)
{
	int64_t *ids = (int64_t *)1;
	size_t n = 99;
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	r = cpmsync_store_search(cs, folder, c, &ids, &n);
	if (r != 0)
		fail_with(r, "search");
	if (n == 0)
		ck_assert_ptr_null(ids);
	f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	for (size_t i = 0; i < n; i++) {
		int idx = -1;

		for (int k = 0; k < 5; k++)
			if (ids[i] == m[k])
				idx = k;
		if (i > 0)
			ck_assert_int_gt(ids[i], ids[i - 1]);
		if (idx >= 0)
			fprintf(f, "%s%d", i ? " " : "", idx);
		else
			fprintf(f, "%s?%lld", i ? " " : "", (long long)ids[i]);
	}
	fclose(f);
	free(ids);
	return text;
}

#define expect(c, want)                                                                            \
	do {                                                                                       \
		char *got_ = search_in(work, (c));                                                 \
		ck_assert_str_eq(got_, (want));                                                    \
		free(got_);                                                                        \
	} while (0)

START_TEST(test_no_criteria)
{
	struct cpmsync_search_criteria c = { 0 };

	/* Every visible message; empty strings and lists are no criteria. */
	expect(&c, "0 1 2 3 4");
	c.text = c.from = c.to = c.subject = c.conversation_id = "";
	{
		static const char *const none[] = { NULL };

		c.flags = none;
		c.not_flags = none;
		expect(&c, "0 1 2 3 4");
	}
}
END_TEST

START_TEST(test_from_to_subject)
{
	struct cpmsync_search_criteria c = { 0 };

	c.from = "ALICE";
	expect(&c, "0"); /* not the message To alice */
	c.from = "example.org";
	expect(&c, "0 1 2 3");
	c.from = "nobody";
	expect(&c, "");

	c = (struct cpmsync_search_criteria){ .to = "alice" };
	expect(&c, "1");
	c.to = "CAROL"; /* Cc counts as To in the summary */
	expect(&c, "1");
	c.to = "bob@";
	expect(&c, "0 2");

	c = (struct cpmsync_search_criteria){ .subject = "report" };
	expect(&c, "0");
	/* instr() has no wildcards: '%' and '_' are plain characters. */
	c.subject = "50%";
	expect(&c, "1");
	c.subject = "%";
	expect(&c, "1");
	c.subject = "_";
	expect(&c, "1");
	c.subject = "f_s";
	expect(&c, "1");
	c.subject = "o%o";
	expect(&c, "");
	c.subject = "\\";
	expect(&c, "");
}
END_TEST

/* A message whose stored body has "Ж" (d0 96) across the first 64 KiB
 * read chunk: its first byte the chunk's last. */
static char *split_letter_message(size_t *ret_len)
{
	static const char head[] = "Message-ID: <split@example.org>\r\n"
				   "Subject: split\r\n"
				   "\r\n";
	size_t len = 70 * 1024, at = 64 * 1024 - 1;
	char *p = malloc(len);

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (i % 64 == 63) ? '\n' : 'x';
	memcpy(p, head, sizeof(head) - 1);
	p[at] = '\xd0';
	p[at + 1] = '\x96';
	*ret_len = len;
	return p;
}

START_TEST(test_any_case)
{
	/* What cpmctl(1) says of search: strings match in any case, offline
	 * too, for every letter with a case (Unicode simple case folding). */
	static const char lower[] = "Message-ID: <lower@example.org>\r\n"
				    "Subject: R\xc3\xa9sum\xc3\xa9\r\n"
				    "\r\n"
				    "caf\xc3\xa9\r\n";
	static const char upper[] = "Message-ID: <upper@example.org>\r\n"
				    "Subject: R\xc3\x89SUM\xc3\x89\r\n"
				    "\r\n"
				    "CAF\xc3\x89\r\n";
	/* Иван Петров, Jörg, ΣΟΦΊΑ, Łódź */
	static const char names[] = "Message-ID: <names@example.org>\r\n"
				    "From: =?utf-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan@x>\r\n"
				    "To: =?iso-8859-1?Q?J=F6rg?= <j@x>, "
				    "\xce\xa3\xce\x9f\xce\xa6\xce\x8a\xce\x91 <s@x>\r\n"
				    "Subject: \xc5\x81\xc3\xb3"
				    "d\xc5\xba\r\n"
				    "\r\n"
				    "-\r\n";
	struct cpmsync_search_criteria c = { 0 };
	int64_t lo = store_msg(other, lower, strlen(lower), NULL, 1000);
	int64_t up = store_msg(other, upper, strlen(upper), NULL, 1000);
	int64_t nm = store_msg(other, names, strlen(names), NULL, 1000);
	size_t split_len;
	char *split = split_letter_message(&split_len);
	int64_t sp = store_msg(other, split, split_len, NULL, 1000);
	char want_both[64], want_nm[32], want_sp[32];

	free(split);
	snprintf(want_both, sizeof(want_both), "?%lld ?%lld", (long long)lo, (long long)up);
	snprintf(want_nm, sizeof(want_nm), "?%lld", (long long)nm);
	snprintf(want_sp, sizeof(want_sp), "?%lld", (long long)sp);
	struct {
		const char *from, *to, *subject, *text, *want;
	} cases[] = {
		{ NULL, NULL, "r\xc3\xa9sum\xc3\xa9", NULL, want_both }, /* résumé */
		{ NULL, NULL, "R\xc3\x89SUM\xc3\x89", NULL, want_both }, /* RÉSUMÉ */
		{ NULL, NULL, "sum", NULL, want_both },
		{ NULL, NULL, NULL, "caf\xc3\xa9", want_both }, /* café: the bodies */
		{ NULL, NULL, NULL, "CAF\xc3\x89", want_both }, /* CAFÉ */
		/* ИВАН, иван: the decoded From */
		{ "\xd0\x98\xd0\x92\xd0\x90\xd0\x9d", NULL, NULL, NULL, want_nm },
		{ "\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd", NULL, NULL, NULL, want_nm },
		/* JÖRG, σοφία (final sigma aside) */
		{ NULL, "J\xc3\x96RG", NULL, NULL, want_nm },
		{ NULL, "\xcf\x83\xce\xbf\xcf\x86\xce\xaf\xce\xb1", NULL, NULL, want_nm },
		/* ŁÓDŹ, and as text (the summary) */
		{ NULL, NULL,
		  "\xc5\x81\xc3\x93"
		  "D\xc5\xb9",
		  NULL, want_nm },
		{ NULL, NULL, NULL,
		  "\xc5\x82\xc3\xb3"
		  "d\xc5\xba",
		  want_nm },
		/* ж, a letter cut by the body's read chunks */
		{ NULL, NULL, NULL, "\xd0\xb6", want_sp },
		{ NULL, NULL, NULL, "x\xd0\x96x", want_sp },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got;

		c = (struct cpmsync_search_criteria){ .from = cases[i].from,
						      .to = cases[i].to,
						      .subject = cases[i].subject,
						      .text = cases[i].text };
		got = search_in(other, &c);
		ck_assert_msg(strcmp(got, cases[i].want) == 0, "case %zu: got \"%s\", want \"%s\"",
			      i, got, cases[i].want);
		free(got);
	}
}
END_TEST

START_TEST(test_conversation_id)
{
	struct cpmsync_search_criteria c = { .conversation_id = "conv-aaa" };

	expect(&c, "0");
	c.conversation_id = "CONV-";
	expect(&c, "0 1");
	c.conversation_id = "conv-CCC";
	expect(&c, "");
}
END_TEST

START_TEST(test_dates)
{
	struct cpmsync_search_criteria c = { .since = 2000 };

	expect(&c, "1 2 3");
	c = (struct cpmsync_search_criteria){ .before = 2000 };
	expect(&c, "0");
	c = (struct cpmsync_search_criteria){ .since = 1000, .before = 3000 };
	expect(&c, "0 1");
	c = (struct cpmsync_search_criteria){ .since = 1001, .before = 3001 };
	expect(&c, "1 2");
	c = (struct cpmsync_search_criteria){ .since = 4001 };
	expect(&c, "");
	/* Negative times are times too. */
	c = (struct cpmsync_search_criteria){ .since = -5 };
	expect(&c, "0 1 2 3");
	/* 0 given is 1970-01-01, a time: nothing stored is before it.
	 * Left out (has_before false), 0 is no criterion. */
	c = (struct cpmsync_search_criteria){ .before = 0, .has_before = true };
	expect(&c, "");
	c = (struct cpmsync_search_criteria){ .since = 0, .has_since = true, .before = 2000 };
	expect(&c, "0");
	c = (struct cpmsync_search_criteria){ .before = 0 };
	expect(&c, "0 1 2 3 4");
}
END_TEST

START_TEST(test_flags)
{
	static const char *const seen_lc[] = { "\\seen", NULL };
	static const char *const seen_answered[] = { "\\Seen", "\\ANSWERED", NULL };
	static const char *const work_kw[] = { "$Work", NULL };
	static const char *const work_lc[] = { "$work", NULL };
	static const char *const wor[] = { "$Wor", NULL };
	static const char *const seen_kw[] = { "Seen", NULL };
	static const char *const recent[] = { "\\Recent", NULL };
	static const char *const flagged[] = { "\\Flagged", NULL };
	struct cpmsync_search_criteria c = { .flags = seen_lc };

	expect(&c, "0 2");
	c.flags = seen_answered;
	expect(&c, "2");
	c.flags = work_kw;
	expect(&c, "1");
	/* Keywords match exactly, whole tokens only. */
	c.flags = work_lc;
	expect(&c, "");
	c.flags = wor;
	expect(&c, "");
	c.flags = seen_kw;
	expect(&c, "");
	c.flags = recent;
	expect(&c, "");

	c = (struct cpmsync_search_criteria){ .not_flags = seen_lc };
	expect(&c, "1 3 4");
	c.not_flags = recent;
	expect(&c, "0 1 2 3 4");
	c.not_flags = seen_answered;
	expect(&c, "1 3 4");

	c = (struct cpmsync_search_criteria){ .flags = seen_lc, .not_flags = seen_answered };
	expect(&c, "");
	c = (struct cpmsync_search_criteria){ .flags = seen_lc, .not_flags = flagged };
	expect(&c, "0 2");
}
END_TEST

START_TEST(test_flags_after_set_flags)
{
	static const char *const add[] = { "\\Seen", "$Later", NULL };
	static const char *const remove[] = { "\\Seen", NULL };
	static const char *const later[] = { "$Later", NULL };
	static const char *const seen[] = { "\\Seen", NULL };
	struct cpmsync_search_criteria c = { .flags = later };

	ck_assert_int_eq(cpmsync_op_set_flags(cs, &m[1], 1, add, NULL), 0);
	expect(&c, "1");
	c.flags = seen;
	expect(&c, "0 1 2");
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &m[0], 1, NULL, remove), 0);
	expect(&c, "1 2");
}
END_TEST

START_TEST(test_text)
{
	struct cpmsync_search_criteria c = { .text = "pizza" };

	/* The body. */
	expect(&c, "1");
	/* A header field not in the summary: the stored header. */
	c.text = "SPARKLE";
	expect(&c, "0");
	/* The summary: subject, from, to, Message-ID. */
	c.text = "quarterly";
	expect(&c, "0");
	c.text = "<lunch@example.org>";
	expect(&c, "1");
	c.text = "erin@";
	expect(&c, "2");
	/* Without a stored body: the summary only. */
	c.text = "summary only";
	expect(&c, "3");
	c.text = "bodyonlyword";
	expect(&c, "");
	/* Across the first 64 KiB chunk of the body, and at its very end. */
	c.text = "needle-IN-HAYSTACK";
	expect(&c, "2");
	c.text = "endtag";
	expect(&c, "2");
	/* Before the needle: a line break and 57 'x'. */
	{
		char pattern[128];

		snprintf(pattern, sizeof(pattern), "x\n%.57sNEEDLE", XS);
		c.text = pattern;
		expect(&c, "2");
		snprintf(pattern, sizeof(pattern), "x\n%.56sNEEDLE", XS);
		expect(&c, "");
		snprintf(pattern, sizeof(pattern), "%.58sNEEDLE", XS);
		expect(&c, "");
	}
	/* Longer than every body: nothing, no crash. */
	{
		size_t n = 300 * 1024;
		char *longtext = malloc(n + 1);

		ck_assert_ptr_nonnull(longtext);
		memset(longtext, 'x', n);
		longtext[n] = '\0';
		c.text = longtext;
		expect(&c, "");
		free(longtext);
	}
	/* A removed or moved message is not found. */
	c.text = "uniquemoved";
	expect(&c, "");
	{
		char *got = search_in(other, &c);
		char want[32];

		snprintf(want, sizeof(want), "?%lld", (long long)moved_away);
		ck_assert_str_eq(got, want);
		free(got);
	}
}
END_TEST

START_TEST(test_combinations)
{
	static const char *const flagged[] = { "\\Flagged", NULL };
	static const char *const seen[] = { "\\Seen", NULL };
	struct cpmsync_search_criteria c = { .from = "bob", .flags = flagged };

	expect(&c, "1");
	c = (struct cpmsync_search_criteria){ .text = "numbers", .not_flags = seen };
	expect(&c, "");
	c = (struct cpmsync_search_criteria){ .text = "example.org",
					      .since = 1500,
					      .before = 4000 };
	expect(&c, "1 2");
	c = (struct cpmsync_search_criteria){
		.to = "bob", .subject = "BIG", .text = "needle", .flags = seen, .since = 3000
	};
	expect(&c, "2");
	c.before = 3000;
	expect(&c, "");
	c = (struct cpmsync_search_criteria){ .from = "alice",
					      .to = "bob",
					      .conversation_id = "AAA",
					      .subject = "report",
					      .text = "100 percent" };
	expect(&c, "0");
	c.to = "carol";
	expect(&c, "");
}
END_TEST

START_TEST(test_folders_and_errors)
{
	static const char *const bad1[] = { "two words", NULL };
	static const char *const bad2[] = { "\\Bogus", NULL };
	static const char *const bad3[] = { "", NULL };
	struct cpmsync_search_criteria c = { 0 };
	int64_t *ids = (int64_t *)1;
	size_t n = 77;
	char *got;

	/* An empty folder: 0 and nothing. */
	ck_assert_int_eq(cpmsync_store_search(cs, empty, &c, &ids, &n), 0);
	ck_assert_ptr_null(ids);
	ck_assert_uint_eq(n, 0);

	/* Errors leave the outputs alone. */
	ids = (int64_t *)1;
	n = 77;
	ck_assert_int_eq(cpmsync_store_search(cs, 424242, &c, &ids, &n), -CPMSYNC_E_NOT_FOUND);
	ck_assert_ptr_eq(ids, (int64_t *)1);
	ck_assert_uint_eq(n, 77);
	ck_assert_ptr_nonnull(strstr(cpmsync_store_error(cs), "424242"));
	ck_assert_int_eq(cpmsync_store_search(cs, work, NULL, &ids, &n), -EINVAL);
	ck_assert_int_eq(cpmsync_store_search(NULL, work, &c, &ids, &n), -EINVAL);
	ck_assert_int_eq(cpmsync_store_search(cs, work, &c, NULL, &n), -EINVAL);
	ck_assert_int_eq(cpmsync_store_search(cs, work, &c, &ids, NULL), -EINVAL);
	c.flags = bad1;
	ck_assert_int_eq(cpmsync_store_search(cs, work, &c, &ids, &n), -EINVAL);
	c.flags = NULL;
	c.not_flags = bad2;
	ck_assert_int_eq(cpmsync_store_search(cs, work, &c, &ids, &n), -EINVAL);
	c.not_flags = bad3;
	ck_assert_int_eq(cpmsync_store_search(cs, work, &c, &ids, &n), -EINVAL);
	ck_assert_ptr_eq(ids, (int64_t *)1);
	ck_assert_uint_eq(n, 77);

	/* A folder deleted locally is unknown. */
	c = (struct cpmsync_search_criteria){ 0 };
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Other"), 0);
	ck_assert_int_eq(cpmsync_store_search(cs, other, &c, &ids, &n), -CPMSYNC_E_NOT_FOUND);

	/* Still consistent afterwards (no statement left running). */
	got = search_in(work, &c);
	ck_assert_str_eq(got, "0 1 2 3 4");
	free(got);
}
END_TEST

START_TEST(test_many_flags)
{
	const char **flags = calloc(2001, sizeof(*flags));
	char(*names)[16] = calloc(2000, sizeof(*names));
	struct cpmsync_search_criteria c = { 0 };
	int64_t *ids = NULL;
	size_t n = 0;

	ck_assert_ptr_nonnull(flags);
	ck_assert_ptr_nonnull(names);
	for (int i = 0; i < 2000; i++) {
		snprintf(names[i], sizeof(names[i]), "$k%d", i);
		flags[i] = names[i];
	}
	/* Up to the limit: a real answer. */
	flags[500] = NULL;
	c.not_flags = flags;
	ck_assert_int_eq(cpmsync_store_search(cs, work, &c, &ids, &n), 0);
	ck_assert_uint_eq(n, 5);
	free(ids);
	/* Beyond it: refused, not a failure of SQLite. */
	flags[500] = names[500];
	ck_assert_int_eq(cpmsync_store_search(cs, work, &c, &ids, &n), -EINVAL);
	free(flags);
	free(names);
}
END_TEST

/* A second, read-only handle on the same file sees the same. */
START_TEST(test_readonly)
{
	struct cpmsync_store *ro = NULL;
	struct cpmsync_search_criteria c = { .text = "needle" };
	int64_t *ids = NULL;
	size_t n = 0;
	char *err = NULL;

	ck_assert_int_eq(cpmsync_store_open(dbpath, CPMSYNC_STORE_READONLY, &ro, &err), 0);
	ck_assert_int_eq(cpmsync_store_search(ro, work, &c, &ids, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(ids[0], m[2]);
	free(ids);
	cpmsync_store_close(ro);
}
END_TEST

/*
 * A large body whose pack file is cut short (damaged behind the store's
 * back): the search fails with the body and the file named, and the reason.
 */
START_TEST(test_body_read_error_named)
{
	struct cpmsync_search_criteria c = { .text = "endtag" };
	char pack[sizeof(dbpath) + 16], want[256];
	int64_t *ids = NULL;
	size_t n = 0;
	struct stat st;

	snprintf(pack, sizeof(pack), "%s-packs/1", dbpath);
	ck_assert_int_eq(stat(pack, &st), 0);
	ck_assert_int_ge(st.st_size, 50 * 4096); /* the 200 KiB body */
	ck_assert_int_eq(truncate(pack, st.st_size / 2), 0);

	ck_assert_int_lt(cpmsync_store_search(cs, work, &c, &ids, &n), 0);
	ck_assert_ptr_null(ids);
	snprintf(want, sizeof(want),
		 "reading the body of message %lld: %s: the file ends before the body",
		 (long long)m[2], pack);
	ck_assert_msg(strncmp(cpmsync_store_error(cs), want, strlen(want)) == 0,
		      "error '%s' does not start with '%s'", cpmsync_store_error(cs), want);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("store-search");
	TCase *tc = tcase_create("search");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_no_criteria);
	tcase_add_test(tc, test_from_to_subject);
	tcase_add_test(tc, test_any_case);
	tcase_add_test(tc, test_conversation_id);
	tcase_add_test(tc, test_dates);
	tcase_add_test(tc, test_flags);
	tcase_add_test(tc, test_flags_after_set_flags);
	tcase_add_test(tc, test_text);
	tcase_add_test(tc, test_combinations);
	tcase_add_test(tc, test_folders_and_errors);
	tcase_add_test(tc, test_many_flags);
	tcase_add_test(tc, test_readonly);
	tcase_add_test(tc, test_body_read_error_named);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(suite)
