/* SPDX-License-Identifier: GPL-2.0-or-later */
/* agent/outbox-parse: what a path below the outbox means, and the checks on a file. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cpmsync/ops.h>

#include "outbox-parse.h"
#include "testlib.h"

START_TEST(test_split_rel)
{
	char *account = NULL, *folder = NULL, *name = NULL;

	ck_assert_int_eq(outbox_split_rel("x.eml", &account, &folder, &name), OUTBOX_IN_ROOT);
	ck_assert_int_eq(outbox_split_rel("a/x.eml", &account, &folder, &name), OUTBOX_IN_ACCOUNT);
	ck_assert_ptr_null(account);
	ck_assert_int_eq(outbox_split_rel("a/Chats/2024/x.eml", &account, &folder, &name),
			 OUTBOX_IN_FOLDER);
	ck_assert_str_eq(account, "a");
	ck_assert_str_eq(folder, "Chats/2024");
	ck_assert_str_eq(name, "x.eml");
	free(account);
	free(folder);
	free(name);
}
END_TEST

START_TEST(test_parts)
{
	char *d = outbox_dir_part("a/INBOX/x");

	ck_assert_str_eq(d, "a/INBOX");
	free(d);
	d = outbox_dir_part("x");
	ck_assert_str_eq(d, "");
	free(d);
	ck_assert_str_eq(outbox_base_part("a/INBOX/x"), "x");
	ck_assert_str_eq(outbox_base_part("x"), "x");
	ck_assert_uint_eq(outbox_depth_of(""), 0);
	ck_assert_uint_eq(outbox_depth_of("a"), 1);
	ck_assert_uint_eq(outbox_depth_of("a/b/c"), 3);
	ck_assert(outbox_name_ignored(".x"));
	ck_assert(outbox_name_ignored(""));
	ck_assert(!outbox_name_ignored("x.eml"));
}
END_TEST

START_TEST(test_is_id)
{
	ck_assert(outbox_is_id("1"));
	ck_assert(outbox_is_id("123456789012345678"));
	ck_assert(!outbox_is_id("1234567890123456789"));
	ck_assert(!outbox_is_id("0"));
	ck_assert(!outbox_is_id("012"));
	ck_assert(!outbox_is_id("-1"));
	ck_assert(!outbox_is_id("12a"));
	ck_assert(!outbox_is_id(""));
	ck_assert(!outbox_is_id("claimed"));
}
END_TEST

START_TEST(test_failed_base)
{
	char buf[OUTBOX_FAILED_NAME_MAX + 1], name[300];

	ck_assert_str_eq(outbox_failed_base("x.eml", buf), "x.eml");
	/* 130 two-byte characters: cut at 240 bytes, between two of them. */
	for (int i = 0; i < 130; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	name[260] = '\0';
	ck_assert_uint_eq(strlen(outbox_failed_base(name, buf)), 240);
	/* 'x' then 3-byte characters: 240 would cut one, so 238. */
	name[0] = 'x';
	for (int i = 0; i < 90; i++)
		memcpy(name + 1 + 3 * i, "\xe2\x82\xac", 3);
	name[271] = '\0';
	ck_assert_uint_eq(strlen(outbox_failed_base(name, buf)), 238);
}
END_TEST

/*
 * A name of 250 UTF-8 continuation bytes (not UTF-8, but a valid file
 * name): there is no boundary to back up to.  It used to become "", the
 * rename to .failed/"" failed with ENOENT, taken as "gone meanwhile", and
 * the file stayed in the drop folder, silently, tried again at every scan.
 */
START_TEST(test_failed_base_no_boundary)
{
	char buf[OUTBOX_FAILED_NAME_MAX + 1], name[251];

	memset(name, 0x80, 250);
	name[250] = '\0';
	ck_assert_uint_eq(strlen(outbox_failed_base(name, buf)), OUTBOX_FAILED_NAME_MAX);
	ck_assert(memcmp(buf, name, OUTBOX_FAILED_NAME_MAX) == 0);
}
END_TEST

START_TEST(test_check_stat)
{
	struct stat st = { .st_mode = S_IFREG | 0600, .st_nlink = 1, .st_uid = 1000, .st_size = 5 };
	char *why, want[128];

	ck_assert_ptr_null(outbox_check_stat(&st, 1000));
	why = outbox_check_stat(&st, 1001);
	ck_assert_str_eq(why, "owned by uid 1000, not by this user (uid 1001); only the user's "
			      "own files are taken");
	free(why);
	st.st_nlink = 2;
	why = outbox_check_stat(&st, 1000);
	ck_assert_str_eq(why, "has 2 hard links; only a file with one link is taken (another "
			      "link may be a file that was not meant to be sent)");
	free(why);
	st.st_nlink = 1;
	st.st_mode = S_IFLNK | 0777;
	why = outbox_check_stat(&st, 1000);
	ck_assert_str_eq(why, "not a regular file (a symbolic link)");
	free(why);
	st.st_mode = S_IFIFO | 0600;
	why = outbox_check_stat(&st, 1000);
	ck_assert_str_eq(why, "not a regular file");
	free(why);
	st.st_mode = S_IFREG | 0600;
	st.st_size = 0;
	why = outbox_check_stat(&st, 1000);
	ck_assert_str_eq(why, "empty file (0 bytes): nothing to store");
	free(why);
	st.st_size = (off_t)CPMSYNC_OP_MAX_MESSAGE_SIZE + 1;
	why = outbox_check_stat(&st, 1000);
	snprintf(want, sizeof(want), "too large: %u bytes, the limit is %u bytes",
		 (unsigned)CPMSYNC_OP_MAX_MESSAGE_SIZE + 1, (unsigned)CPMSYNC_OP_MAX_MESSAGE_SIZE);
	ck_assert_str_eq(why, want);
	free(why);
}
END_TEST

static Suite *outbox_parse_suite(void)
{
	Suite *s = suite_create("outbox-parse");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_split_rel);
	tcase_add_test(tc, test_parts);
	tcase_add_test(tc, test_is_id);
	tcase_add_test(tc, test_failed_base);
	tcase_add_test(tc, test_failed_base_no_boundary);
	tcase_add_test(tc, test_check_stat);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(outbox_parse_suite)
