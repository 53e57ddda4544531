/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <check.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/loop.h>

#include "testlib.h"
#include "util/loop-stall.h"

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

/* loop_stall_ms(due, now, prev_end, round_start, own), in ms. */
static const struct {
	uint64_t due, now, prev_end, round_start, own, want;
} stalls[] = {
	/* this round began before due, nothing late */
	{ 1000, 900, 500, 900, 0, 0 },
	/* waiting at due, back from the wait at once */
	{ 1000, 1002, 500, 1002, 0, 2 },
	/* waiting at due, stopped: back from the wait 5 s late */
	{ 1000, 6000, 500, 6000, 0, 5000 },
	/* a store commit (own work) held the loop 2.5 s past due, the wait
	 * returned at once: our own work, not a stop */
	{ 1000, 3501, 3500, 3501, 2500, 1 },
	/* the same, then stopped in the wait for 6 s */
	{ 1000, 9500, 3500, 9500, 2500, 6000 },
	/* stopped 5 s inside a callback (no own work): a stop all the same */
	{ 1000, 6000, 500, 900, 0, 5000 },
	/* own work of 4 s since the timer was armed, most of it before due,
	 * then stopped 3 s in the wait: the wait tells the stop */
	{ 1000, 4000, 500, 4000, 4000, 3000 },
	/* no round before this one (prev_end 0): from due */
	{ 1000, 2500, 0, 2500, 0, 1500 },
};

START_TEST(test_stall_ms)
{
	ck_assert_uint_eq(loop_stall_ms(stalls[_i].due, stalls[_i].now, stalls[_i].prev_end,
					stalls[_i].round_start, stalls[_i].own),
			  stalls[_i].want);
}
END_TEST

struct stall_probe {
	uint64_t due;	  /* when the timer was due */
	uint64_t own;	  /* loop_own_work_ms() when it was armed */
	uint64_t stalled; /* loop_stalled_since() in its callback */
	bool fired, slow_done;
	struct cpmsync_loop *loop;
};

static void stall_probe_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct stall_probe *p = userdata;

	(void)src;
	p->stalled = loop_stalled_since(p->loop, p->due, loop_own_work_ms() - p->own);
	p->fired = true;
}

static void sleep_ms(unsigned ms)
{
	const struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	ck_assert_int_eq(nanosleep(&ts, NULL), 0);
}

/* A callback of ours that holds the loop 1.5 s in marked work (a slow
 * store commit). */
static void slow_cb(struct cpmsync_loop_source *src, void *userdata)
{
	(void)src;
	loop_own_work_begin();
	sleep_ms(1500);
	loop_own_work_end();
	((struct stall_probe *)userdata)->slow_done = true;
}

/* A callback during which the process is stopped 1.5 s (as SIGSTOP
 * while it reads): no marked work. */
static void stopped_cb(struct cpmsync_loop_source *src, void *userdata)
{
	(void)src;
	sleep_ms(1500);
	((struct stall_probe *)userdata)->slow_done = true;
}

/* A probe timer due in 50 ms, and cb in 10 ms when cb is not NULL. */
static void stall_probe_arm(struct stall_probe *p, cpmsync_loop_cb_t cb)
{
	p->fired = p->slow_done = false;
	p->due = cpmsync_now_ms() + 50;
	p->own = loop_own_work_ms();
	ck_assert_int_eq(cpmsync_loop_add_timer(p->loop, 50, 0, stall_probe_cb, p, NULL, NULL), 0);
	if (cb)
		ck_assert_int_eq(cpmsync_loop_add_timer(p->loop, 10, 0, cb, p, NULL, NULL), 0);
}

/*
 * A timer due at 50 ms fires 1.45 s late each time: held by our own
 * marked work (1.5 s from 10 ms), next to nothing of it is a stop;
 * stopped inside a callback, or between rounds (the loop not run, as
 * under SIGSTOP in its wait), all of it is.
 */
START_TEST(test_stall_own_work_or_stop)
{
	struct stall_probe p = { 0 };

	ck_assert_int_eq(cpmsync_loop_new(&p.loop), 0);
	stall_probe_arm(&p, slow_cb);
	ck_assert(test_loop_run_until(p.loop, &p.fired, 3000));
	ck_assert(p.slow_done);
	ck_assert_uint_ge(cpmsync_now_ms() - p.due, 1400);
	ck_assert_msg(p.stalled < 500, "held %llu ms by our own work",
		      (unsigned long long)p.stalled);

	stall_probe_arm(&p, stopped_cb);
	ck_assert(test_loop_run_until(p.loop, &p.fired, 3000));
	ck_assert(p.slow_done);
	ck_assert_msg(p.stalled >= 1400, "held %llu ms by a stop in a callback",
		      (unsigned long long)p.stalled);

	stall_probe_arm(&p, NULL);
	sleep_ms(1500);
	ck_assert(test_loop_run_until(p.loop, &p.fired, 3000));
	ck_assert_msg(p.stalled >= 1400, "held %llu ms by a stop", (unsigned long long)p.stalled);
	cpmsync_loop_free(p.loop);
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

	/* test_stall_own_work_or_stop holds or stops the loop 4.5 s */
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, test_defer_runs_once_from_loop);
	tcase_add_test(tc, test_defer_keeps_order);
	tcase_add_test(tc, test_timer_interval_and_self_removal);
	tcase_add_test(tc, test_remove_other_source_during_dispatch);
	tcase_add_test(tc, test_fd_events_and_embedding);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_run_and_quit);
	tcase_add_loop_test(tc, test_stall_ms, 0, sizeof(stalls) / sizeof(stalls[0]));
	tcase_add_test(tc, test_stall_own_work_or_stop);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(loop_suite)
