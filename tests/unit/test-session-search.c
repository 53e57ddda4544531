/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpmsync_session_search() checks the flags it will put into the server's
 * SEARCH command (KEYWORD x): a value that is not a flag would rewrite the
 * command ("a) OR ALL (", a CRLF and a second command).  Refused at once,
 * before anything is queued; valid flags are queued as before.
 * Also: a request refused before it is queued (GetAcl of a folder not on
 * the server yet) reports its own reason.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cpmsync/cpmsync.h>
#include <cpmsync/ops.h>
#include <cpmsync/session.h>
#include <cpmsync/store.h>

#include "testlib.h"

static void ids_cb(int r, const char *reason, const int64_t *ids, size_t n, void *userdata)
{
	(void)r;
	(void)reason;
	(void)ids;
	(void)n;
	(void)userdata;
}

static int no_password(const struct cpmsync_account *a, char **ret, void *ud)
{
	(void)a;
	(void)ret;
	(void)ud;
	return -CPMSYNC_E_CONFIG;
}

/* A session on a store of its own, offline (nothing reaches a server). */
static struct cpmsync_session *offline_session(struct test_env *env)
{
	struct cpmsync_account a = {
		.name = "a",
		.host = "127.0.0.1",
		.port = 9,
		.user = "u",
		.security = CPMSYNC_SECURITY_NONE,
		.password_cb = no_password,
	};
	struct cpmsync_session *s;

	test_env_start(env, NULL, TEST_ENV_STORE);
	ck_assert_int_eq(cpmsync_session_new(env->loop, env->store, &a, NULL, NULL, NULL, &s), 0);
	cpmsync_session_set_online(s, false);
	return s;
}

static const struct {
	const char *flag;
	bool not ;
	int r; /* 0: accepted (queued) */
} cases[] = {
	{ "\\Seen", false, 0 },
	{ "$Label1", true, 0 },
	{ "a) OR ALL (", false, -EINVAL },
	{ "x\r\na2 DELETE INBOX", false, -EINVAL },
	{ "{5}", true, -EINVAL },
	{ "\"q\"", false, -EINVAL },
	{ "", true, -EINVAL },
	{ "\\", false, -EINVAL },
};

START_TEST(test_search_flags_checked)
{
	const char *flags[] = { cases[_i].flag, NULL };
	struct cpmsync_search_criteria c = { 0 };
	struct cpmsync_session *s;
	struct test_env env;
	int r;

	s = offline_session(&env);
	if (cases[_i].not )
		c.not_flags = flags;
	else
		c.flags = flags;
	r = cpmsync_session_search(s, 1, &c, ids_cb, NULL);
	if (cases[_i].r)
		ck_assert_int_eq(r, cases[_i].r);
	else
		ck_assert_int_ge(r, 0);
	cpmsync_session_free(s);
	/* the queued search is cancelled from the loop (test_env_end) */
	test_env_end(&env);
}
END_TEST

/* Since/Before after 9999 (an IMAP date has a four-digit year; the
 * day-wide SEARCH key built from one crashed the daemon): refused at once.
 * The end of 9999 is taken. */
START_TEST(test_search_dates_checked)
{
	static const struct {
		int64_t since, before;
		int r;
	} dates[] = {
		{ CPMSYNC_OP_MAX_DATE + 1, 0, -EINVAL },
		{ 0, CPMSYNC_OP_MAX_DATE + 1, -EINVAL },
		{ INT64_MAX, 0, -EINVAL },
		{ CPMSYNC_OP_MAX_DATE, CPMSYNC_OP_MAX_DATE, 0 },
		{ -5, -5, 0 },
	};
	struct cpmsync_session *s;
	struct test_env env;

	s = offline_session(&env);
	for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
		struct cpmsync_search_criteria c = { .since = dates[i].since,
						     .before = dates[i].before };
		int r = cpmsync_session_search(s, 1, &c, ids_cb, NULL);

		if (dates[i].r)
			ck_assert_int_eq(r, dates[i].r);
		else
			ck_assert_int_ge(r, 0);
	}
	cpmsync_session_free(s);
	test_env_end(&env);
}
END_TEST

struct reason_seen {
	bool done;
	int r;
	char reason[128];
};

static void reason_seen(struct reason_seen *seen, int r, const char *reason)
{
	seen->done = true;
	seen->r = r;
	snprintf(seen->reason, sizeof(seen->reason), "%s", reason ? reason : "(null)");
}

static void acl_cb(int r, const char *reason, const char *const *pairs, void *userdata)
{
	(void)pairs;
	reason_seen(userdata, r, reason);
}

static void rights_cb(int r, const char *reason, const char *value, void *userdata)
{
	(void)value;
	reason_seen(userdata, r, reason);
}

/* GetAcl and MyRights of a folder whose CREATE has not reached the
 * server fail with the reason acl_request() found.  request_submit()
 * freed that reason before copying it (the daemon sent freed bytes as
 * the D-Bus error text; ASan: heap-use-after-free). */
START_TEST(test_acl_reason_of_local_folder)
{
	struct reason_seen acl = { 0 }, rights = { 0 };
	struct cpmsync_session *s;
	struct test_env env;
	int64_t id;

	s = offline_session(&env);
	ck_assert_int_eq(cpmsync_op_create_folder(env.store, "a", "NewX", &id), 0);
	ck_assert_int_eq(cpmsync_session_get_acl(s, id, acl_cb, &acl), 0);
	ck_assert_int_eq(cpmsync_session_my_rights(s, id, rights_cb, &rights), 0);
	ck_assert(test_loop_run_until(env.loop, &acl.done, 2000));
	ck_assert(test_loop_run_until(env.loop, &rights.done, 2000));
	ck_assert_int_eq(acl.r, -CPMSYNC_E_OFFLINE);
	ck_assert_str_eq(acl.reason, "the folder is not on the server yet");
	ck_assert_int_eq(rights.r, -CPMSYNC_E_OFFLINE);
	ck_assert_str_eq(rights.reason, "the folder is not on the server yet");
	cpmsync_session_free(s);
	test_env_end(&env);
}
END_TEST

static Suite *session_search_suite(void)
{
	Suite *s = suite_create("session-search");
	TCase *tc = tcase_create("flags");

	tcase_add_loop_test(tc, test_search_flags_checked, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_search_dates_checked);
	tcase_add_test(tc, test_acl_reason_of_local_folder);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(session_search_suite)
