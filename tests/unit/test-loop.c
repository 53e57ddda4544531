/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpmsync/loop.h>

#include "testlib.h"

struct counter {
	int calls;
	int destroyed;
	char order[16];
	struct cpmsync_loop_source *to_remove;
	bool done;
};

static void count_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct counter *c = userdata;

	(void)src;
	c->calls++;
}

static void destroy_cb(void *userdata)
{
	((struct counter *)userdata)->destroyed++;
}

START_TEST(test_defer_runs_once_from_loop)
{
	struct cpmsync_loop *loop;
	struct counter c = { 0 };

	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(cpmsync_loop_defer(loop, count_cb, &c, destroy_cb, NULL), 0);
	/* Never called from inside the call that registered it. */
	ck_assert_int_eq(c.calls, 0);
	ck_assert_int_eq(cpmsync_loop_prepare(loop), 0);
	ck_assert_int_eq(cpmsync_loop_iterate(loop, 0), 1);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.destroyed, 1);
	ck_assert_int_eq(cpmsync_loop_iterate(loop, 0), 0);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(cpmsync_loop_prepare(loop), -1);
	cpmsync_loop_free(loop);
}
END_TEST

struct ordered {
	struct counter *c;
	char ch;
};

static void order_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct ordered *o = userdata;
	size_t n = strlen(o->c->order);

	(void)src;
	o->c->order[n] = o->ch;
}

START_TEST(test_defer_keeps_order)
{
	struct cpmsync_loop *loop;
	struct counter c = { 0 };
	struct ordered o[3] = { { &c, 'a' }, { &c, 'b' }, { &c, 'c' } };
	struct cpmsync_loop_source *b;

	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	cpmsync_loop_defer(loop, order_cb, &o[0], NULL, NULL);
	cpmsync_loop_defer(loop, order_cb, &o[1], NULL, &b);
	cpmsync_loop_defer(loop, order_cb, &o[2], NULL, NULL);
	cpmsync_loop_source_remove(b);
	cpmsync_loop_iterate(loop, 0);
	ck_assert_str_eq(c.order, "ac");
	cpmsync_loop_free(loop);
}
END_TEST

static void timer_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct counter *c = userdata;

	c->calls++;
	if (c->calls == 3) {
		cpmsync_loop_source_remove(src);
		c->done = true;
	}
}

START_TEST(test_timer_interval_and_self_removal)
{
	struct cpmsync_loop *loop;
	struct counter c = { 0 };
	uint64_t start = cpmsync_now_ms();

	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(cpmsync_loop_add_timer(loop, 10, 10, timer_cb, &c, destroy_cb, NULL), 0);
	ck_assert(test_loop_run_until(loop, &c.done, 2000));
	ck_assert_int_eq(c.calls, 3);
	ck_assert_int_eq(c.destroyed, 1);
	ck_assert_uint_ge(cpmsync_now_ms() - start, 25);
	cpmsync_loop_free(loop);
}
END_TEST

static void remover_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct counter *c = userdata;

	(void)src;
	c->calls++;
	c->to_remove = cpmsync_loop_source_remove(c->to_remove);
}

START_TEST(test_remove_other_source_during_dispatch)
{
	struct cpmsync_loop *loop;
	struct counter a = { 0 }, b = { 0 };
	struct cpmsync_loop_source *sa, *sb;
	bool never = false;

	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	/* Both due in the same round: whichever runs first removes the other. */
	cpmsync_loop_add_timer(loop, 5, 0, remover_cb, &a, destroy_cb, &sa);
	cpmsync_loop_add_timer(loop, 5, 0, remover_cb, &b, destroy_cb, &sb);
	a.to_remove = sb;
	b.to_remove = sa;
	test_loop_run_until(loop, &never, 100);
	ck_assert_int_eq(a.calls + b.calls, 1);
	ck_assert_int_eq(a.destroyed + b.destroyed, 1);
	cpmsync_loop_free(loop);
	ck_assert_int_eq(a.destroyed + b.destroyed, 2);
}
END_TEST

static void fd_cb(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct counter *c = userdata;
	char ch;

	(void)src;
	ck_assert(events & CPMSYNC_LOOP_IN);
	ck_assert_int_eq(read(fd, &ch, 1), 1);
	c->order[c->calls++] = ch;
	c->done = c->calls == 2;
}

START_TEST(test_fd_events_and_embedding)
{
	struct cpmsync_loop *loop;
	struct counter c = { 0 };
	int p[2];
	struct pollfd pfd;

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(cpmsync_loop_add_fd(loop, p[0], CPMSYNC_LOOP_IN, fd_cb, &c, NULL, NULL),
			 0);
	ck_assert_int_eq(write(p[1], "xy", 2), 2);
	/* A host loop polls the single fd and then iterates without waiting. */
	pfd.fd = cpmsync_loop_get_fd(loop);
	pfd.events = POLLIN;
	ck_assert_int_eq(poll(&pfd, 1, 1000), 1);
	ck_assert_int_ge(cpmsync_loop_iterate(loop, 0), 1);
	ck_assert(test_loop_run_until(loop, &c.done, 1000));
	ck_assert_str_eq(c.order, "xy");
	cpmsync_loop_free(loop);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(test_bad_arguments)
{
	struct cpmsync_loop *loop;

	ck_assert_int_lt(cpmsync_loop_new(NULL), 0);
	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_lt(cpmsync_loop_add_fd(loop, -1, CPMSYNC_LOOP_IN, fd_cb, NULL, NULL, NULL),
			 0);
	ck_assert_int_lt(cpmsync_loop_defer(loop, NULL, NULL, NULL, NULL), 0);
	ck_assert_ptr_null(cpmsync_loop_source_remove(NULL));
	ck_assert_ptr_null(cpmsync_loop_free(loop));
	ck_assert_ptr_null(cpmsync_loop_free(NULL));
}
END_TEST

static void quit_cb(struct cpmsync_loop_source *src, void *userdata)
{
	(void)src;
	cpmsync_loop_quit(userdata, 7);
}

START_TEST(test_run_and_quit)
{
	struct cpmsync_loop *loop;

	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	cpmsync_loop_add_timer(loop, 1, 0, quit_cb, loop, NULL, NULL);
	ck_assert_int_eq(cpmsync_loop_run(loop), 7);
	cpmsync_loop_free(loop);
}
END_TEST

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("loop");

	tcase_add_test(tc, test_defer_runs_once_from_loop);
	tcase_add_test(tc, test_defer_keeps_order);
	tcase_add_test(tc, test_timer_interval_and_self_removal);
	tcase_add_test(tc, test_remove_other_source_during_dispatch);
	tcase_add_test(tc, test_fd_events_and_embedding);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_run_and_quit);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(loop_suite)
