/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * <cpmsync/settings.h>: the one judge of account settings that
 * Manager1.AddAccount, the configuration writer and the parser share.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include <cpmsync/account.h>
#include <cpmsync/settings.h>

#include "testlib.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	struct cpmsync_account_settings s;
	enum cpmsync_settings_error want;
} cases[] = {
	{ { .host = "imap.example.org", .user = "u", .password = "pw" }, CPMSYNC_SETTINGS_OK },
	{ { .host = "::1",
	    .user = "u",
	    .password_file = "/p",
	    .security = "none",
	    .ca_file = "/c",
	    .sync_bodies = "4194304" },
	  CPMSYNC_SETTINGS_OK },
	{ { .host = "h", .user = "u", .password_command = "pass x", .sync_bodies = "all" },
	  CPMSYNC_SETTINGS_OK },
	{ { .user = "u", .password = "pw" }, CPMSYNC_SETTINGS_NO_HOST },
	{ { .host = "", .user = "u", .password = "pw" }, CPMSYNC_SETTINGS_NO_HOST },
	{ { .host = "a b", .user = "u", .password = "pw" }, CPMSYNC_SETTINGS_BAD_HOST },
	{ { .host = "a/b", .user = "u", .password = "pw" }, CPMSYNC_SETTINGS_BAD_HOST },
	{ { .host = "[::1]", .user = "u", .password = "pw" }, CPMSYNC_SETTINGS_BAD_HOST },
	{ { .host = "h", .password = "pw" }, CPMSYNC_SETTINGS_NO_USER },
	{ { .host = "h", .user = "", .password = "pw" }, CPMSYNC_SETTINGS_NO_USER },
	{ { .host = "h", .user = "a\nb", .password = "pw" }, CPMSYNC_SETTINGS_BAD_USER },
	{ { .host = "h", .user = "u", .password = "pw", .security = "ssl" },
	  CPMSYNC_SETTINGS_BAD_SECURITY },
	{ { .host = "h", .user = "u", .password = "pw", .security = "TLS" },
	  CPMSYNC_SETTINGS_BAD_SECURITY },
	{ { .host = "h", .user = "u" }, CPMSYNC_SETTINGS_NO_PASSWORD },
	{ { .host = "h", .user = "u", .password = "pw", .password_file = "/p" },
	  CPMSYNC_SETTINGS_TWO_PASSWORDS },
	{ { .host = "h", .user = "u", .password_file = "/p", .password_command = "c" },
	  CPMSYNC_SETTINGS_TWO_PASSWORDS },
	{ { .host = "h", .user = "u", .password = "" }, CPMSYNC_SETTINGS_BAD_PASSWORD },
	{ { .host = "h", .user = "u", .password = "p\rw" }, CPMSYNC_SETTINGS_BAD_PASSWORD },
	{ { .host = "h", .user = "u", .password_file = "" }, CPMSYNC_SETTINGS_EMPTY_PATH },
	{ { .host = "h", .user = "u", .password = "pw", .ca_file = "" },
	  CPMSYNC_SETTINGS_EMPTY_PATH },
	{ { .host = "h", .user = "u", .password = "pw", .sync_bodies = "lots" },
	  CPMSYNC_SETTINGS_BAD_SYNC_BODIES },
	{ { .host = "h", .user = "u", .password = "pw", .sync_bodies = "0" },
	  CPMSYNC_SETTINGS_BAD_SYNC_BODIES },
	{ { .host = "h", .user = "u", .password = "pw", .sync_bodies = "4194305" },
	  CPMSYNC_SETTINGS_BAD_SYNC_BODIES },
	{ { .host = "h", .user = "u", .password = "pw", .cpm_root = "Chats/Phone" },
	  CPMSYNC_SETTINGS_OK },
	{ { .host = "h", .user = "u", .password = "pw", .cpm_root = "" }, CPMSYNC_SETTINGS_OK },
	{ { .host = "h", .user = "u", .password = "pw", .cpm_root = "/Chats" },
	  CPMSYNC_SETTINGS_BAD_CPM_ROOT },
	{ { .host = "h", .user = "u", .password = "pw", .cpm_root = "inbox" },
	  CPMSYNC_SETTINGS_BAD_CPM_ROOT },
	{ { .host = "h", .user = "u", .password = "pw", .cpm_root = "a\nb" },
	  CPMSYNC_SETTINGS_BAD_CPM_ROOT },
};

START_TEST(test_check)
{
	const char *why = "untouched";
	enum cpmsync_settings_error e = cpmsync_account_settings_check(&cases[_i].s, &why);

	ck_assert_int_eq(e, cases[_i].want);
	if (e == CPMSYNC_SETTINGS_OK)
		ck_assert_ptr_null(why);
	else
		ck_assert(why && *why && strcmp(why, "untouched"));
	/* ret_why is optional. */
	ck_assert_int_eq(cpmsync_account_settings_check(&cases[_i].s, NULL), cases[_i].want);
}
END_TEST

START_TEST(test_password_limits)
{
	static char pw[CPMSYNC_PASSWORD_MAX + 2];
	struct cpmsync_account_settings s = { .host = "h", .user = "u", .password = pw };

	memset(pw, 'p', CPMSYNC_PASSWORD_MAX);
	ck_assert_int_eq(cpmsync_account_settings_check(&s, NULL), CPMSYNC_SETTINGS_OK);
	pw[CPMSYNC_PASSWORD_MAX] = 'p';
	ck_assert_int_eq(cpmsync_account_settings_check(&s, NULL), CPMSYNC_SETTINGS_BAD_PASSWORD);
}
END_TEST

START_TEST(test_account_name)
{
	char name[CPMSYNC_ACCOUNT_NAME_MAX + 2];

	ck_assert(cpmsync_account_name_valid("work-mail_2"));
	ck_assert(!cpmsync_account_name_valid(""));
	ck_assert(!cpmsync_account_name_valid("a b"));
	ck_assert(!cpmsync_account_name_valid("a.b"));
	ck_assert(!cpmsync_account_name_valid("\xc3\xa9"));
	memset(name, 'n', sizeof(name));
	name[CPMSYNC_ACCOUNT_NAME_MAX] = '\0';
	ck_assert(cpmsync_account_name_valid(name));
	name[CPMSYNC_ACCOUNT_NAME_MAX] = 'n';
	name[CPMSYNC_ACCOUNT_NAME_MAX + 1] = '\0';
	ck_assert(!cpmsync_account_name_valid(name));
}
END_TEST

START_TEST(test_host)
{
	char host[CPMSYNC_HOST_MAX + 2];

	ck_assert(cpmsync_host_valid("imap.example.org"));
	ck_assert(cpmsync_host_valid("127.0.0.1"));
	ck_assert(cpmsync_host_valid("fe80::1%eth0"));
	ck_assert(!cpmsync_host_valid(""));
	ck_assert(!cpmsync_host_valid("a\tb"));
	memset(host, 'h', sizeof(host));
	host[CPMSYNC_HOST_MAX] = '\0';
	ck_assert(cpmsync_host_valid(host));
	host[CPMSYNC_HOST_MAX] = 'h';
	host[CPMSYNC_HOST_MAX + 1] = '\0';
	ck_assert(!cpmsync_host_valid(host));
}
END_TEST

START_TEST(test_sync_bodies)
{
	int64_t v = 12345;

	ck_assert_int_eq(cpmsync_sync_bodies_from_string("all", &v), 0);
	ck_assert_int_eq(v, CPMSYNC_SYNC_BODIES_ALL);
	ck_assert_int_eq(cpmsync_sync_bodies_from_string("none", &v), 0);
	ck_assert_int_eq(v, CPMSYNC_SYNC_BODIES_NONE);
	ck_assert_int_eq(cpmsync_sync_bodies_from_string("1", &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(cpmsync_sync_bodies_from_string("4194304", &v), 0);
	ck_assert_int_eq(v, CPMSYNC_SYNC_BODIES_MAX_KIB);
	v = 7;
	ck_assert_int_eq(cpmsync_sync_bodies_from_string("0", &v), -ERANGE);
	ck_assert_int_eq(cpmsync_sync_bodies_from_string("4194305", &v), -ERANGE);
	ck_assert_int_eq(cpmsync_sync_bodies_from_string("99999999999999999999999", &v), -ERANGE);
	ck_assert_int_eq(cpmsync_sync_bodies_from_string("", &v), -EINVAL);
	ck_assert_int_eq(cpmsync_sync_bodies_from_string("ALL", &v), -EINVAL);
	ck_assert_int_eq(cpmsync_sync_bodies_from_string("-1", &v), -EINVAL);
	ck_assert_int_eq(cpmsync_sync_bodies_from_string("1M", &v), -EINVAL);
	ck_assert_int_eq(cpmsync_sync_bodies_from_string("99999999999999999999x", &v), -EINVAL);
	ck_assert_int_eq(v, 7); /* untouched on failure */
}
END_TEST

static Suite *settings_suite(void)
{
	Suite *s = suite_create("settings");
	TCase *tc = tcase_create("settings");

	tcase_add_loop_test(tc, test_check, 0, N(cases));
	tcase_add_test(tc, test_password_limits);
	tcase_add_test(tc, test_account_name);
	tcase_add_test(tc, test_host);
	tcase_add_test(tc, test_sync_bodies);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(settings_suite)
