/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/io.h>

#include "testlib.h"

#define BIG (4u << 20)

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/*
 * A SIGALRM every 200 us without SA_RESTART: blocking reads and writes
 * return EINTR, or a short count when some bytes had already moved.
 */
static void interrupts_on(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval it = { { 0, 200 }, { 0, 200 } };

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	alarms = 0;
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void interrupts_off(void)
{
	struct itimerval it = { { 0, 0 }, { 0, 0 } };

	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 131 + (i >> 12));
}

static void nap(void)
{
	struct timespec ts = { 0, 100000 };

	nanosleep(&ts, NULL);
}

/* The child writes BIG pattern bytes in uneven pieces, napping between them. */
static pid_t slow_writer(int fd, int other)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		static unsigned char buf[BIG];
		size_t off = 0, piece = 1;

		close(other);
		for (size_t i = 0; i < BIG; i++)
			buf[i] = pattern(i);
		while (off < BIG) {
			size_t n = piece < BIG - off ? piece : BIG - off;
			ssize_t w = write(fd, buf + off, n);

			if (w <= 0)
				_exit(2);
			off += (size_t)w;
			piece = piece * 3 % 70001 + 1;
			if (off % 7 == 0)
				nap();
		}
		_exit(0);
	}
	close(fd);
	return pid;
}

/* The child reads in small pieces, napping, and exits 0 if it got the pattern. */
static pid_t slow_reader(int fd, int other, size_t expect)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		unsigned char buf[4099];
		size_t got = 0;

		close(other);
		for (;;) {
			ssize_t n = read(fd, buf, sizeof(buf));

			if (n < 0)
				_exit(2);
			if (n == 0)
				break;
			for (ssize_t k = 0; k < n; k++)
				if (buf[k] != pattern(got + (size_t)k))
					_exit(3);
			got += (size_t)n;
			if (got % 5 == 0)
				nap();
		}
		_exit(got == expect ? 0 : 4);
	}
	close(fd);
	return pid;
}

static int child_status(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void make_pair(int kind, int fds[2])
{
	if (kind == 0)
		ck_assert_int_eq(pipe(fds), 0);
	else
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
}

/* _i: 0 a pipe, 1 a socketpair.  fds[0] is read, fds[1] written. */
START_TEST(test_write_all)
{
	unsigned char *buf = malloc(BIG);
	int fds[2];
	pid_t pid;
	int r;

	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < BIG; i++)
		buf[i] = pattern(i);
	make_pair(_i, fds);
	pid = slow_reader(fds[0], fds[1], BIG);
	interrupts_on();
	r = cpmsync_write_all(fds[1], buf, BIG);
	interrupts_off();
	close(fds[1]);
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(child_status(pid), 0);
	ck_assert_int_gt(alarms, 0); /* the write was interrupted */
	free(buf);
}
END_TEST

START_TEST(test_read_exact)
{
	unsigned char *buf = malloc(BIG);
	int fds[2];
	pid_t pid;
	int r;

	ck_assert_ptr_nonnull(buf);
	make_pair(_i, fds);
	pid = slow_writer(fds[1], fds[0]);
	interrupts_on();
	r = cpmsync_read_exact(fds[0], buf, BIG - 1);
	interrupts_off();
	ck_assert_int_eq(r, 0);
	for (size_t i = 0; i < BIG - 1; i++)
		if (buf[i] != pattern(i))
			ck_abort_msg("byte %zu differs", i);
	ck_assert_int_gt(alarms, 0);
	/* One byte is left: asking for two meets end of file. */
	ck_assert_int_eq(cpmsync_read_exact(fds[0], buf, 2), -EIO);
	close(fds[0]);
	ck_assert_int_eq(child_status(pid), 0);
	free(buf);
}
END_TEST

START_TEST(test_read_all)
{
	char *buf = NULL;
	size_t len = 0;
	int fds[2];
	pid_t pid;
	int r;

	make_pair(_i, fds);
	pid = slow_writer(fds[1], fds[0]);
	interrupts_on();
	r = cpmsync_read_all(fds[0], BIG, &buf, &len);
	interrupts_off();
	close(fds[0]);
	ck_assert_int_eq(r, 0);
	ck_assert_uint_eq(len, BIG);
	ck_assert_int_eq(buf[len], '\0');
	for (size_t i = 0; i < BIG; i++)
		if ((unsigned char)buf[i] != pattern(i))
			ck_abort_msg("byte %zu differs", i);
	ck_assert_int_gt(alarms, 0);
	ck_assert_int_eq(child_status(pid), 0);
	free(buf);
}
END_TEST

/* One byte more than max is refused; outputs untouched on failure. */
START_TEST(test_read_all_limit)
{
	char *buf = (char *)&buf;
	size_t len = 77;
	int fds[2];

	make_pair(_i, fds);
	ck_assert_int_eq(write(fds[1], "0123456789", 10), 10);
	close(fds[1]);
	ck_assert_int_eq(cpmsync_read_all(fds[0], 9, &buf, &len), -EFBIG);
	ck_assert_ptr_eq(buf, (char *)&buf);
	ck_assert_uint_eq(len, 77);
	close(fds[0]);

	make_pair(_i, fds);
	ck_assert_int_eq(write(fds[1], "0123456789", 10), 10);
	close(fds[1]);
	ck_assert_int_eq(cpmsync_read_all(fds[0], 10, &buf, &len), 0);
	ck_assert_uint_eq(len, 10);
	ck_assert_str_eq(buf, "0123456789");
	free(buf);
	close(fds[0]);

	/* Empty input: an empty string. */
	make_pair(_i, fds);
	close(fds[1]);
	ck_assert_int_eq(cpmsync_read_all(fds[0], 0, &buf, &len), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(buf, "");
	free(buf);
	close(fds[0]);
}
END_TEST

START_TEST(test_errors)
{
	char c;
	int fds[2];

	signal(SIGPIPE, SIG_IGN);
	make_pair(_i, fds);
	close(fds[0]);
	ck_assert_int_eq(cpmsync_write_all(fds[1], "x", 1), -EPIPE);
	close(fds[1]);
	ck_assert_int_eq(cpmsync_write_all(-1, "x", 1), -EBADF);
	ck_assert_int_eq(cpmsync_read_exact(-1, &c, 1), -EBADF);
	ck_assert_int_eq(cpmsync_write_all(-1, "", 0), 0); /* nothing to do */
}
END_TEST

static Suite *io_suite(void)
{
	Suite *s = suite_create("io");
	TCase *tc = tcase_create("io");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_write_all, 0, 2);
	tcase_add_loop_test(tc, test_read_exact, 0, 2);
	tcase_add_loop_test(tc, test_read_all, 0, 2);
	tcase_add_loop_test(tc, test_read_all_limit, 0, 2);
	tcase_add_loop_test(tc, test_errors, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(io_suite)
