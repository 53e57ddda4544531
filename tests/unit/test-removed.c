/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What RemoveAccount saves (agent/removed.c): the files, their content,
 * modes and times; nothing written for an account without unsent
 * changes; and nothing left behind when a write fails half-way.
 */
#include <check.h>
#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/resource.h>
#include <sys/stat.h>

#include <cpmsync/cpmsync.h>
#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "removed.h"
#include "store/store.h"
#include "testlib.h"

static char tmpdir[64], dbpath[96], savedir[96];
static struct cpmsync_store *cs;

/* Longer than the file size limit of test_write_fails. */
static const char msg[] = "Message-ID: <new@x>\r\nSubject: hello\r\n\r\na body of some length\r\n";

/* Account "a": INBOX with UID 5; account "b" without anything. */
static void setup(void)
{
	strcpy(tmpdir, "/tmp/test-removed-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", tmpdir);
	snprintf(savedir, sizeof(savedir), "%s/data/removed", tmpdir);
	ck_assert_int_eq(cpmsync_store_open(dbpath, 0, &cs, NULL), 0);
	ck_assert_int_eq(
		store_exec(
			store_from_public(cs),
			"INSERT INTO account (id, name) VALUES (1, 'a'), (2, 'b');"
			"INSERT INTO folder (id, account_id, name, delimiter, server_name)"
			" VALUES (1, 1, 'INBOX', '/', 'INBOX');"
			"INSERT INTO message (id, folder_id, uid, size, message_id)"
			" VALUES (1, 1, 5, 5, '<m1@x>');"
			"INSERT INTO message_state (id, flags, server_flags) VALUES (1, '', '');"),
		0);
}

static void teardown(void)
{
	cs = cpmsync_store_close(cs);
	test_rm_rf(tmpdir);
}

/* A message stored (date 2023-11-14 22:13:20 UTC), a flag, a folder. */
static void queue_changes(void)
{
	const char *flags[] = { "\\Flagged", NULL };
	int64_t id, one = 1;

	ck_assert_int_eq(
		cpmsync_op_store(cs, "a", "INBOX", msg, strlen(msg), flags, 1700000000, &id), 0);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &one, 1, flags, NULL), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Later", NULL), 0);
}

static char *slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

START_TEST(test_saved)
{
	struct removed_saved saved;
	char *err = NULL, path[256];
	struct stat st;

	queue_changes();
	ck_assert_int_eq(
		removed_save(cs, "a", "alice@example.org", savedir, 1700000100, &saved, &err), 0);
	ck_assert_ptr_null(err);
	snprintf(path, sizeof(path), "%s/a-20231114T221500Z", savedir);
	ck_assert_str_eq(saved.directory, path);
	ck_assert_uint_eq(saved.messages, 1);
	ck_assert_uint_eq(saved.changes, 3);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	snprintf(path, sizeof(path), "%s/001.eml", saved.directory);
	ck_assert_str_eq(slurp(path), msg);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(st.st_mtime, 1700000000);
	snprintf(path, sizeof(path), "%s/unsent.txt", saved.directory);
	ck_assert_str_eq(
		slurp(path),
		"The local changes of account a (alice@example.org) that had not reached the"
		" server when\nit was removed (D-Bus Manager1.RemoveAccount) on 2023-11-14 22:15:00"
		" UTC.\ncpm-syncd dropped them from its store with the account: nothing here is"
		" sent.\nEach new message is beside this file, its content as it was stored.\n\n"
		"1. store into \"INBOX\": saved as 001.eml, flags \"\\Flagged\", date 2023-11-14"
		" 22:13:20 UTC, Message-ID <new@x>, Subject \"hello\"\n"
		"2. flags of UID 5 in \"INBOX\", Message-ID <m1@x>: here \"\\Flagged\", on the"
		" server (none)\n"
		"3. create-folder \"Later\"\n");

	/* The same second again: a directory of its own. */
	{
		struct removed_saved again;

		ck_assert_int_eq(removed_save(cs, "a", "alice@example.org", savedir, 1700000100,
					      &again, &err),
				 0);
		snprintf(path, sizeof(path), "%s/a-20231114T221500Z-2", savedir);
		ck_assert_str_eq(again.directory, path);
		removed_saved_clear(&again);
	}
	removed_saved_clear(&saved);
}
END_TEST

/* In two steps (RemoveAccount syncs on a thread): the same files, then
 * synced; a file gone by then fails the sync, naming it, and the rest
 * stays (the caller keeps the account's data). */
START_TEST(test_saved_then_synced)
{
	struct removed_saved saved;
	char *err = NULL, path[256];

	queue_changes();
	ck_assert_int_eq(removed_save_unsynced(cs, "a", "alice@example.org", savedir, 1700000100,
					       &saved, &err),
			 0);
	ck_assert_ptr_null(err);
	snprintf(path, sizeof(path), "%s/a-20231114T221500Z", savedir);
	ck_assert_str_eq(saved.directory, path);
	ck_assert_uint_eq(saved.messages, 1);
	ck_assert_uint_eq(saved.changes, 3);
	ck_assert_uint_eq(saved.n_files, 2);
	snprintf(path, sizeof(path), "%s/001.eml", saved.directory);
	ck_assert_str_eq(slurp(path), msg);
	snprintf(path, sizeof(path), "%s/unsent.txt", saved.directory);
	ck_assert_ptr_nonnull(strstr(slurp(path), "3. create-folder \"Later\"\n"));
	ck_assert_int_eq(removed_sync(&saved, savedir, &err), 0);
	ck_assert_ptr_null(err);

	snprintf(path, sizeof(path), "%s/001.eml", saved.directory);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(removed_sync(&saved, savedir, &err), -ENOENT);
	snprintf(path, sizeof(path), "cannot sync %s/001.eml to disk: No such file or directory",
		 saved.directory);
	ck_assert_str_eq(err, path);
	free(err);
	snprintf(path, sizeof(path), "%s/unsent.txt", saved.directory);
	ck_assert_int_eq(access(path, F_OK), 0);
	removed_saved_clear(&saved);

	/* Nothing saved: nothing to sync. */
	ck_assert_int_eq(removed_sync(&saved, savedir, &err), 0);
}
END_TEST

START_TEST(test_nothing_unsent)
{
	struct removed_saved saved;
	char *err = NULL;

	ck_assert_int_eq(removed_save(cs, "b", "bob@x", savedir, 1700000100, &saved, &err), 0);
	ck_assert_ptr_null(saved.directory);
	ck_assert_int_eq(removed_save(cs, "nobody", "n@x", savedir, 1700000100, &saved, &err), 0);
	ck_assert_ptr_null(saved.directory);
	ck_assert_int_eq(access(savedir, F_OK), -1);
}
END_TEST

/* A body the store cannot give (its row lost): listed with why, not
 * saved, and the rest saved: it does not keep the account from going. */
START_TEST(test_body_unreadable)
{
	struct removed_saved saved;
	char *err = NULL, path[256], want[512];
	const char *txt;

	queue_changes();
	ck_assert_int_eq(store_exec(store_from_public(cs), "DELETE FROM body_inline"), 0);
	ck_assert_int_eq(removed_save(cs, "a", "alice@x", savedir, 1700000100, &saved, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_uint_eq(saved.messages, 0);
	ck_assert_uint_eq(saved.unreadable, 1);
	ck_assert_uint_eq(saved.changes, 3);
	snprintf(path, sizeof(path), "%s/001.eml", saved.directory);
	ck_assert_int_eq(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/unsent.txt", saved.directory);
	txt = strstr(slurp(path), "\n1. ");
	ck_assert_ptr_nonnull(txt);
	snprintf(want, sizeof(want),
		 "\n1. store into \"INBOX\": its content cannot be read here (%s), not saved,"
		 " flags \"\\Flagged\", date 2023-11-14 22:13:20 UTC, Message-ID <new@x>,"
		 " Subject \"hello\"\n",
		 cpmsync_strerror(-CPMSYNC_E_NOT_FOUND));
	ck_assert_int_eq(strncmp(txt, want, strlen(want)), 0);
	removed_saved_clear(&saved);
}
END_TEST

/* The .eml cannot be written whole (a file size limit): the error names
 * the file and why, and the directory is taken back. */
START_TEST(test_write_fails)
{
	struct rlimit lim = { .rlim_cur = 16, .rlim_max = RLIM_INFINITY };
	struct removed_saved saved;
	char *err = NULL, want[256];
	glob_t g;
	int r;

	queue_changes();
	signal(SIGXFSZ, SIG_IGN);
	/* Check's own messages go through a file too: the limit only around
	 * the call. */
	if (setrlimit(RLIMIT_FSIZE, &lim) < 0)
		ck_abort_msg("setrlimit: %s", strerror(errno));
	r = removed_save(cs, "a", "alice@x", savedir, 1700000100, &saved, &err);
	lim.rlim_cur = RLIM_INFINITY;
	if (setrlimit(RLIMIT_FSIZE, &lim) < 0)
		_exit(3);
	ck_assert_int_eq(r, -EFBIG);
	ck_assert_ptr_null(saved.directory);
	snprintf(want, sizeof(want),
		 "cannot save its 3 unsent change(s) in %s/a-20231114T221500Z: 001.eml: message"
		 " 2: File too large",
		 savedir);
	ck_assert_str_eq(err, want);
	free(err);
	ck_assert_int_eq(glob(savedir, 0, NULL, &g), 0);
	globfree(&g);
	snprintf(want, sizeof(want), "%s/*", savedir);
	ck_assert_int_eq(glob(want, 0, NULL, &g), GLOB_NOMATCH);
}
END_TEST

static Suite *removed_suite(void)
{
	Suite *s = suite_create("removed");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_saved);
	tcase_add_test(tc, test_saved_then_synced);
	tcase_add_test(tc, test_nothing_unsent);
	tcase_add_test(tc, test_body_unreadable);
	tcase_add_test(tc, test_write_fails);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(removed_suite)
