/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for agent/config-watch.c, with a real loop and inotify. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpmsync/loop.h>

#include "testlib.h"
#include "config-watch.h"

static char tmpdir[PATH_MAX];
static char conf[PATH_MAX + 32];
static struct cpmsync_loop *loop;
static unsigned calls;
static uint64_t last_call_ms;

static void setup(void)
{
	strcpy(tmpdir, "/tmp/test-config-watch-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(conf, sizeof(conf), "%s/cpmsync.conf", tmpdir);
	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	calls = 0;
}

static void teardown(void)
{
	loop = cpmsync_loop_free(loop);
	if (chdir("/") < 0)
		perror("chdir");
	test_rm_rf(tmpdir);
}

static void on_changed(void *userdata)
{
	(void)userdata;
	calls++;
	last_call_ms = cpmsync_now_ms();
}

/* Runs the loop for ms milliseconds. */
static void run_for(unsigned ms)
{
	uint64_t end = cpmsync_now_ms() + ms;

	for (;;) {
		uint64_t now = cpmsync_now_ms();

		if (now >= end)
			break;
		cpmsync_loop_iterate(loop, (int)(end - now));
	}
}

/* Runs the loop until calls reaches n (at most ms); returns calls. */
static unsigned run_until_calls(unsigned n, unsigned ms)
{
	uint64_t end = cpmsync_now_ms() + ms;

	while (calls < n) {
		uint64_t now = cpmsync_now_ms();

		if (now >= end)
			break;
		cpmsync_loop_iterate(loop, (int)(end - now));
	}
	return calls;
}

static void write_path(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static const char *in_tmp(const char *name)
{
	static char p[PATH_MAX + 64];

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	return p;
}

START_TEST(test_missing_dir)
{
	struct config_watch *w = NULL;
	char *err = NULL;
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/nope/cpmsync.conf", tmpdir);
	ck_assert_int_eq(config_watch_new(loop, path, on_changed, NULL, &w, &err), -ENOENT);
	ck_assert_ptr_null(w);
	ck_assert_ptr_nonnull(strstr(err, "does not exist"));
	ck_assert_ptr_nonnull(strstr(err, "/nope"));
	free(err);
	/* A file where the directory should be. */
	write_path(in_tmp("file"), "x");
	snprintf(path, sizeof(path), "%s/file/cpmsync.conf", tmpdir);
	ck_assert_int_eq(config_watch_new(loop, path, on_changed, NULL, &w, &err), -ENOTDIR);
	free(err);
	ck_assert_int_eq(config_watch_new(loop, "dir/", on_changed, NULL, &w, &err), -EINVAL);
	free(err);
	/* Failures leave nothing behind: a watch can still be made. */
	ck_assert_int_eq(config_watch_new(loop, conf, on_changed, NULL, &w, &err), 0);
	config_watch_free(w);
}
END_TEST

START_TEST(test_write_debounced)
{
	struct config_watch *w = NULL;
	uint64_t written;

	ck_assert_int_eq(config_watch_new(loop, conf, on_changed, NULL, &w, NULL), 0);
	run_for(50);
	ck_assert_uint_eq(calls, 0);
	write_path(conf, "[general]\n");
	written = cpmsync_now_ms();
	ck_assert_uint_eq(run_until_calls(1, 10000), 1);
	ck_assert_uint_ge(last_call_ms - written, CONFIG_WATCH_DEBOUNCE_MS - 5);
	run_for(300);
	ck_assert_uint_eq(calls, 1);

	/*
	 * A burst of writes, 20 ms apart: one call, a debounce period after
	 * the last write.  The watch arms its timer when the loop reads a
	 * write's events, no sooner than the write began; the timer can
	 * fire before the next write's events are read only if the loop
	 * iterates a debounce period after that, by the end of the run_for()
	 * that follows the next write at the latest.  A loaded machine can
	 * stall this test that long (make check runs two tests at a time):
	 * such a gap may end a burst, one more call at most, each.  Unloaded
	 * the gaps are about 45 ms: exactly one call.
	 */
	unsigned bursts = 1;
	uint64_t began[5];

	for (int i = 0; i < 5; i++) {
		began[i] = cpmsync_now_ms();
		write_path(conf, "[general]\n# again\n");
		run_for(20);
		if (i > 0 && cpmsync_now_ms() - began[i - 1] >= CONFIG_WATCH_DEBOUNCE_MS - 10)
			bursts++;
	}
	ck_assert_uint_ge(run_until_calls(2, 10000), 2);
	run_for(300);
	ck_assert_msg(calls >= 2 && calls <= 1 + bursts, "%u calls for %u burst(s) of writes",
		      calls - 1, bursts);
	/* The last call came a debounce period after the last write began
	 * at least: each write's events armed the timer again.  A stall only
	 * makes it later. */
	ck_assert_msg(last_call_ms - began[4] >= CONFIG_WATCH_DEBOUNCE_MS - 5,
		      "the last call %llu ms after the last write",
		      (unsigned long long)(last_call_ms - began[4]));
	config_watch_free(w);
}
END_TEST

START_TEST(test_rename_over_and_delete)
{
	struct config_watch *w = NULL;

	write_path(conf, "old\n");
	ck_assert_int_eq(config_watch_new(loop, conf, on_changed, NULL, &w, NULL), 0);
	write_path(in_tmp(".cpmsync.conf.tmp"), "new\n");
	run_for(200);
	ck_assert_uint_eq(calls, 0); /* another name */
	ck_assert_int_eq(rename(in_tmp(".cpmsync.conf.tmp"), conf), 0);
	ck_assert_uint_eq(run_until_calls(1, 2000), 1);

	ck_assert_int_eq(unlink(conf), 0);
	ck_assert_uint_eq(run_until_calls(2, 2000), 2);

	/* Moved away, then back. */
	write_path(conf, "x\n");
	ck_assert_uint_eq(run_until_calls(3, 2000), 3);
	ck_assert_int_eq(rename(conf, in_tmp("elsewhere")), 0);
	ck_assert_uint_eq(run_until_calls(4, 2000), 4);
	ck_assert_int_eq(rename(in_tmp("elsewhere"), conf), 0);
	ck_assert_uint_eq(run_until_calls(5, 2000), 5);
	config_watch_free(w);
}
END_TEST

START_TEST(test_other_files_ignored)
{
	struct config_watch *w = NULL;

	ck_assert_int_eq(config_watch_new(loop, conf, on_changed, NULL, &w, NULL), 0);
	write_path(in_tmp("other.conf"), "x\n");
	write_path(in_tmp("cpmsync.conf~"), "x\n");
	ck_assert_int_eq(mkdir(in_tmp("sub"), 0700), 0);
	write_path(in_tmp("sub/cpmsync.conf"), "x\n");
	unlink(in_tmp("other.conf"));
	run_for(400);
	ck_assert_uint_eq(calls, 0);
	config_watch_free(w);
}
END_TEST

START_TEST(test_one_per_process)
{
	struct config_watch *w = NULL, *w2 = NULL;
	char *err = NULL;

	ck_assert_int_eq(config_watch_new(loop, conf, on_changed, NULL, &w, NULL), 0);
	ck_assert_int_eq(config_watch_new(loop, conf, on_changed, NULL, &w2, &err), -EBUSY);
	ck_assert_ptr_null(w2);
	ck_assert_ptr_nonnull(strstr(err, "one"));
	free(err);
	ck_assert_ptr_null(config_watch_free(w));
	ck_assert_ptr_null(config_watch_free(NULL));
	/* Again, after the first is gone. */
	ck_assert_int_eq(config_watch_new(loop, conf, on_changed, NULL, &w2, NULL), 0);
	write_path(conf, "x\n");
	ck_assert_uint_eq(run_until_calls(1, 2000), 1);
	config_watch_free(w2);
}
END_TEST

START_TEST(test_fd_is_cloexec)
{
	struct config_watch *w = NULL;
	char link[PATH_MAX], path[64];
	int fd, n = 0;

	ck_assert_int_eq(config_watch_new(loop, conf, on_changed, NULL, &w, NULL), 0);
	for (fd = 3; fd < 256; fd++) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			continue;
		link[len] = '\0';
		if (strcmp(link, "anon_inode:inotify") != 0)
			continue;
		n++;
		ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	}
	ck_assert_int_eq(n, 1);
	config_watch_free(w);
	/* libinotifytools' fd is closed with the watch. */
	for (fd = 3, n = 0; fd < 256; fd++) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, link, sizeof(link) - 1);
		if (len > 0 && (link[len] = '\0', 1) && strcmp(link, "anon_inode:inotify") == 0)
			n++;
	}
	ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_relative_path)
{
	struct config_watch *w = NULL;

	ck_assert_int_eq(chdir(tmpdir), 0);
	ck_assert_int_eq(config_watch_new(loop, "cpmsync.conf", on_changed, NULL, &w, NULL), 0);
	/* The directory was resolved when the watch was made. */
	ck_assert_int_eq(chdir("/"), 0);
	write_path(conf, "x\n");
	ck_assert_uint_eq(run_until_calls(1, 2000), 1);
	config_watch_free(w);
}
END_TEST

START_TEST(test_dir_deleted_and_recreated)
{
	struct config_watch *w = NULL;
	char dir[PATH_MAX + 16], path[PATH_MAX + 64];

	snprintf(dir, sizeof(dir), "%s/cfg", tmpdir);
	snprintf(path, sizeof(path), "%s/cpmsync.conf", dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	write_path(path, "x\n");
	ck_assert_int_eq(config_watch_new(loop, path, on_changed, NULL, &w, NULL), 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
	ck_assert_uint_ge(run_until_calls(1, 2000), 1);
	run_for(200);
	calls = 0;
	/* Re-watched within CONFIG_WATCH_RETRY_MS once it is back. */
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	write_path(path, "y\n");
	ck_assert_uint_ge(run_until_calls(1, CONFIG_WATCH_RETRY_MS + 2000), 1);
	run_for(300);
	calls = 0;
	write_path(path, "z\n");
	ck_assert_uint_eq(run_until_calls(1, 2000), 1);
	config_watch_free(w);
}
END_TEST

/* Reads path whole, as config_load() does. */
static void read_path(const char *path)
{
	char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

START_TEST(test_chmod_is_a_change)
{
	struct config_watch *w = NULL;

	/* A file refused for its mode ("chmod go-w it"): the chmod is a
	 * change, one call; reading the file (each reload does) is none. */
	write_path(conf, "[general]\n");
	ck_assert_int_eq(chmod(conf, 0666), 0);
	ck_assert_int_eq(config_watch_new(loop, conf, on_changed, NULL, &w, NULL), 0);
	read_path(conf);
	run_for(300);
	ck_assert_uint_eq(calls, 0);
	ck_assert_int_eq(chmod(conf, 0644), 0);
	ck_assert_uint_eq(run_until_calls(1, 2000), 1);
	read_path(conf);
	run_for(300);
	ck_assert_uint_eq(calls, 1);
	/* chmod of another file in the directory: nothing. */
	write_path(in_tmp("other.conf"), "x\n");
	run_for(300);
	ck_assert_uint_eq(calls, 1);
	ck_assert_int_eq(chmod(in_tmp("other.conf"), 0644), 0);
	run_for(300);
	ck_assert_uint_eq(calls, 1);
	config_watch_free(w);
}
END_TEST

/* Sets path's atime and mtime to secs (an IN_ATTRIB, nothing else changes). */
static void set_times(const char *path, time_t secs)
{
	struct timespec ts[2] = { { .tv_sec = secs }, { .tv_sec = secs } };

	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* As set_times(), through an open fd (futimens()). */
static void set_times_fd(const char *path, time_t secs)
{
	struct timespec ts[2] = { { .tv_sec = secs }, { .tv_sec = secs } };
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(futimens(fd, ts), 0);
	close(fd);
}

static struct config_watch *self_freeing;

/* config_watch_set_files(): the files changed, by path; the config not reloaded. */
static char changed_files[4][PATH_MAX + 64];
static unsigned n_changed_files;

static void on_file_changed(const char *path, void *userdata)
{
	(void)userdata;
	if (n_changed_files < 4)
		snprintf(changed_files[n_changed_files], sizeof(changed_files[0]), "%s", path);
	n_changed_files++;
}

static unsigned run_until_files(unsigned n, unsigned ms)
{
	uint64_t end = cpmsync_now_ms() + ms;

	while (n_changed_files < n) {
		uint64_t now = cpmsync_now_ms();

		if (now >= end)
			break;
		cpmsync_loop_iterate(loop, (int)(end - now));
	}
	return n_changed_files;
}

START_TEST(test_other_files_watched)
{
	struct config_watch *w = NULL;
	char pw_same[PATH_MAX + 64], pw_other[PATH_MAX + 64];
	const char *files[3];

	n_changed_files = 0;
	ck_assert_int_eq(mkdir(in_tmp("pw"), 0700), 0);
	snprintf(pw_same, sizeof(pw_same), "%s", in_tmp("a.pw"));
	snprintf(pw_other, sizeof(pw_other), "%s", in_tmp("pw/b.pw"));
	files[0] = pw_same;
	files[1] = pw_other;
	files[2] = in_tmp("nodir/c.pw"); /* not there: never reported */
	ck_assert_int_eq(config_watch_new(loop, conf, on_changed, NULL, &w, NULL), 0);
	ck_assert_int_eq(config_watch_set_files(w, files, 3, on_file_changed), 0);

	/* A file in the configuration's directory: that file, no reload. */
	write_path(pw_same, "secret\n");
	ck_assert_uint_eq(run_until_files(1, 2000), 1);
	ck_assert_str_eq(changed_files[0], pw_same);
	run_for(300);
	ck_assert_uint_eq(n_changed_files, 1);
	ck_assert_uint_eq(calls, 0);

	/* In a directory of its own, replaced by rename. */
	write_path(in_tmp("pw/.b.tmp"), "other\n");
	ck_assert_int_eq(rename(in_tmp("pw/.b.tmp"), pw_other), 0);
	ck_assert_uint_eq(run_until_files(2, 2000), 2);
	ck_assert_str_eq(changed_files[1], pw_other);
	ck_assert_uint_eq(calls, 0);

	/* Another file there: nothing. */
	write_path(in_tmp("pw/unrelated"), "x\n");
	run_for(300);
	ck_assert_uint_eq(n_changed_files, 2);

	/* A chmod of it (its mode changes: 0600 to 0640): that file. */
	ck_assert_int_eq(chmod(pw_other, 0640), 0);
	ck_assert_uint_eq(run_until_files(3, 2000), 3);
	ck_assert_str_eq(changed_files[2], pw_other);
	ck_assert_uint_eq(calls, 0);

	/* The configuration still reloads by itself. */
	write_path(conf, "[general]\n");
	ck_assert_uint_eq(run_until_calls(1, 2000), 1);
	ck_assert_uint_eq(n_changed_files, 3);

	/* A new set replaces the old: the other directory is no longer watched. */
	ck_assert_int_eq(config_watch_set_files(w, files, 1, on_file_changed), 0);
	write_path(pw_other, "again\n");
	run_for(300);
	ck_assert_uint_eq(n_changed_files, 3);
	write_path(pw_same, "again\n");
	ck_assert_uint_eq(run_until_files(4, 2000), 4);
	ck_assert_str_eq(changed_files[3], pw_same);
	config_watch_free(w);
}
END_TEST

START_TEST(test_times_are_no_change)
{
	struct config_watch *w = NULL;
	char pw[PATH_MAX + 64];
	const char *files[1] = { pw };

	/* New times (touch, a backup tool putting the atime back) raise
	 * IN_ATTRIB with the mode, owner and group unchanged: no reload, no
	 * login retried; a chmod still is one, once. */
	n_changed_files = 0;
	snprintf(pw, sizeof(pw), "%s", in_tmp("a.pw"));
	write_path(conf, "[general]\n");
	write_path(pw, "secret\n");
	ck_assert_int_eq(config_watch_new(loop, conf, on_changed, NULL, &w, NULL), 0);
	ck_assert_int_eq(config_watch_set_files(w, files, 1, on_file_changed), 0);

	set_times(conf, 1000000000);
	set_times_fd(conf, 1000000001);
	set_times(pw, 1000000000);
	set_times_fd(pw, 1000000001);
	run_for(300);
	ck_assert_uint_eq(calls, 0);
	ck_assert_uint_eq(n_changed_files, 0);

	ck_assert_int_eq(chmod(conf, 0640), 0);
	ck_assert_uint_eq(run_until_calls(1, 2000), 1);
	ck_assert_int_eq(chmod(pw, 0640), 0);
	ck_assert_uint_eq(run_until_files(1, 2000), 1);
	ck_assert_str_eq(changed_files[0], pw);
	run_for(300);
	ck_assert_uint_eq(calls, 1);
	ck_assert_uint_eq(n_changed_files, 1);

	/* After the chmod, new times are still nothing; after an edit too. */
	set_times(conf, 1000000002);
	set_times(pw, 1000000002);
	run_for(300);
	ck_assert_uint_eq(calls, 1);
	ck_assert_uint_eq(n_changed_files, 1);
	write_path(conf, "[general]\n# edited\n");
	ck_assert_uint_eq(run_until_calls(2, 2000), 2);
	set_times_fd(conf, 1000000003);
	run_for(300);
	ck_assert_uint_eq(calls, 2);
	ck_assert_uint_eq(n_changed_files, 1);
	config_watch_free(w);
}
END_TEST

static void free_in_callback(void *userdata)
{
	(void)userdata;
	calls++;
	self_freeing = config_watch_free(self_freeing);
}

START_TEST(test_free_in_callback)
{
	ck_assert_int_eq(config_watch_new(loop, conf, free_in_callback, NULL, &self_freeing, NULL),
			 0);
	write_path(conf, "x\n");
	ck_assert_uint_eq(run_until_calls(1, 2000), 1);
	ck_assert_ptr_null(self_freeing);
	write_path(conf, "y\n");
	run_for(300);
	ck_assert_uint_eq(calls, 1);
}
END_TEST

static Suite *config_watch_suite(void)
{
	Suite *s = suite_create("config-watch");
	TCase *tc = tcase_create("watch");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_missing_dir);
	tcase_add_test(tc, test_write_debounced);
	tcase_add_test(tc, test_rename_over_and_delete);
	tcase_add_test(tc, test_other_files_ignored);
	tcase_add_test(tc, test_one_per_process);
	tcase_add_test(tc, test_fd_is_cloexec);
	tcase_add_test(tc, test_relative_path);
	tcase_add_test(tc, test_dir_deleted_and_recreated);
	tcase_add_test(tc, test_free_in_callback);
	tcase_add_test(tc, test_other_files_watched);
	tcase_add_test(tc, test_chmod_is_a_change);
	tcase_add_test(tc, test_times_are_no_change);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(config_watch_suite)
