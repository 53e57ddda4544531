/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * <cpmsync/cpmsync.h> alone is enough for an application: this file
 * includes nothing else of ours (testlib.h only for the test set-up) and
 * uses one declaration of every public header, so a header the umbrella
 * leaves out fails the build.  Also what ops.h promises about an account
 * the store does not know yet: created with no folders, a change to
 * INBOX is NOT_FOUND until a folder is made.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include <cpmsync/cpmsync.h>

#include "testlib.h"

START_TEST(test_every_header_through_the_umbrella)
{
	/* One name of each public header. */
	const void *names[] = {
		(const void *)cpmsync_account_name_valid,	  /* settings.h */
		(const void *)cpmsync_store_foreach_conversation, /* conversation.h */
		(const void *)cpmsync_folder_kind_name,		  /* cpm-folders.h */
		(const void *)cpmsync_write_all,		  /* io.h */
		(const void *)cpmsync_message_section,		  /* message.h */
		(const void *)cpmsync_op_store,			  /* ops.h */
		(const void *)cpmsync_preview_request_encode,	  /* preview.h */
		(const void *)cpmsync_session_state_name,	  /* session.h */
		(const void *)cpmsync_store_open,		  /* store.h */
		(const void *)cpmsync_sync_once,		  /* sync.h */
		(const void *)cpmsync_utf8_valid,		  /* utf8.h */
		(const void *)cpmsync_strerror,			  /* error.h */
	};
	enum cpmsync_limit limit = CPMSYNC_ACCOUNT_NAME_MAX; /* limits.h */

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		ck_assert_ptr_nonnull(names[i]);
	ck_assert_int_eq(limit, 64);
	ck_assert_str_eq(cpmsync_version(), CPMSYNC_VERSION_STRING);
}
END_TEST

START_TEST(test_new_account_has_no_folders)
{
	static const char msg[] = "Subject: x\r\n\r\nbody\r\n";
	struct test_env env;
	int64_t folder, id;

	test_env_start(&env, NULL, TEST_ENV_STORE);
	ck_assert_int_eq(
		cpmsync_op_store(env.store, "new", "INBOX", msg, strlen(msg), NULL, 0, &id),
		-CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_op_create_folder(env.store, "new", "INBOX", &folder), 0);
	ck_assert_int_eq(
		cpmsync_op_store(env.store, "new", "INBOX", msg, strlen(msg), NULL, 0, &id), 0);
	ck_assert_int_gt(id, 0);
	test_env_end(&env);
}
END_TEST

static Suite *umbrella_suite(void)
{
	Suite *s = suite_create("umbrella");
	TCase *tc = tcase_create("umbrella");

	tcase_add_test(tc, test_every_header_through_the_umbrella);
	tcase_add_test(tc, test_new_account_has_no_folders);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(umbrella_suite)
