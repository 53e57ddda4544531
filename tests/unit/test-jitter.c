/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The retry back-off's jitter: within +-25 %, and different in two
 * processes made alike.  random() was never seeded: every cpm-syncd drew
 * the same delays (757, 2302, 3351 ms ... seen in seven daemons), and a
 * forked child draws what its parent would, so clients cut off together
 * came back together, which the jitter was there to prevent.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "util/jitter.h"

START_TEST(test_jitter_within_a_quarter)
{
	for (int i = 0; i < 1000; i++) {
		unsigned d = jitter_quarter(1000);

		ck_assert_uint_ge(d, 750);
		ck_assert_uint_le(d, 1250);
	}
	ck_assert_uint_eq(jitter_quarter(0), 0);
	ck_assert_uint_le(jitter_quarter(1), 1);
}
END_TEST

/* Four draws of a forked child, as text. */
static void child_draws(char *out, size_t size)
{
	int p[2], st;
	pid_t pid;
	ssize_t n;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char buf[64];
		int len =
			snprintf(buf, sizeof(buf), "%u %u %u %u", jitter_quarter(1000),
				 jitter_quarter(1000), jitter_quarter(1000), jitter_quarter(1000));

		close(p[0]);
		_exit(write(p[1], buf, (size_t)len) == len ? 0 : 1);
	}
	close(p[1]);
	n = read(p[0], out, size - 1);
	close(p[0]);
	ck_assert_int_gt(n, 0);
	out[n] = '\0';
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(st, 0);
}

START_TEST(test_jitter_differs_between_processes)
{
	char a[64], b[64];

	child_draws(a, sizeof(a));
	child_draws(b, sizeof(b));
	/* Alike, one in 501^4. */
	ck_assert_msg(strcmp(a, b) != 0, "two processes drew the same delays: %s", a);
}
END_TEST

static Suite *jitter_suite(void)
{
	Suite *s = suite_create("jitter");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_jitter_within_a_quarter);
	tcase_add_test(tc, test_jitter_differs_between_processes);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(jitter_suite)
