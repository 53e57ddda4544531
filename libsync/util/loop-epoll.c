/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpmsync_loop: one epoll fd for everything.  Timers are timerfds and
 * deferred calls share one eventfd, so the epoll fd alone tells a host's
 * loop when anything is due.  Sources are reference-counted only against
 * removal during dispatch: a removed source is unlinked at once, and freed
 * after the current dispatch round, so callbacks may remove any source
 * (their own included) safely.
 */
#include <cpmsync/loop.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "util/loop-stall.h"
#include "util/macro.h"

enum source_type { SOURCE_FD, SOURCE_TIMER, SOURCE_DEFER };

struct cpmsync_loop_source {
	struct cpmsync_loop *loop;
	enum source_type type;
	int fd; /* the watched fd, or the timerfd */
	bool removed;
	bool queued; /* DEFER: still in the defer queue */
	union {
		cpmsync_loop_fd_cb_t fd_cb;
		cpmsync_loop_cb_t cb;
	};
	void *userdata;
	cpmsync_destroy_cb_t destroy;
	struct cpmsync_loop_source *next; /* all live sources / defer queue / graveyard */
	struct cpmsync_loop_source *defer_next;
};

struct cpmsync_loop {
	int epfd;
	int deferfd;
	struct cpmsync_loop_source *sources;
	struct cpmsync_loop_source *defer_head, *defer_tail;
	struct cpmsync_loop_source *graveyard;
	bool quit;
	int quit_code;
	/* loop_stalled_since(): when the round being dispatched began (its
	 * wait returned), when the one before it ended, and when the last
	 * one ended (CLOCK_MONOTONIC ms). */
	bool in_round;
	uint64_t round_start, prev_end, last_end;
};

/* Marker for the eventfd in epoll data. */
static char defer_marker;

uint64_t cpmsync_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int cpmsync_loop_new(struct cpmsync_loop **ret_loop)
{
	struct cpmsync_loop *loop;
	struct epoll_event ev = { .events = EPOLLIN };

	if (!ret_loop)
		return -EINVAL;
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->deferfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ev.data.ptr = &defer_marker;
	if (loop->epfd < 0 || loop->deferfd < 0 ||
	    epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->deferfd, &ev) < 0) {
		int r = -errno;

		if (loop->epfd >= 0)
			close(loop->epfd);
		if (loop->deferfd >= 0)
			close(loop->deferfd);
		free(loop);
		return r;
	}
	*ret_loop = loop;
	return 0;
}

static void source_unlink(struct cpmsync_loop_source *src)
{
	struct cpmsync_loop *loop = src->loop;
	struct cpmsync_loop_source **p;

	for (p = &loop->sources; *p; p = &(*p)->next)
		if (*p == src) {
			*p = src->next;
			break;
		}
	if (src->queued) {
		struct cpmsync_loop_source *prev = NULL;

		for (struct cpmsync_loop_source *s = loop->defer_head; s;
		     prev = s, s = s->defer_next)
			if (s == src) {
				if (prev)
					prev->defer_next = s->defer_next;
				else
					loop->defer_head = s->defer_next;
				if (loop->defer_tail == s)
					loop->defer_tail = prev;
				s->queued = false;
				break;
			}
	}
}

static void graveyard_flush(struct cpmsync_loop *loop)
{
	while (loop->graveyard) {
		struct cpmsync_loop_source *s = loop->graveyard;

		loop->graveyard = s->next;
		free(s);
	}
}

struct cpmsync_loop_source *cpmsync_loop_source_remove(struct cpmsync_loop_source *src)
{
	struct cpmsync_loop *loop;

	if (!src || src->removed)
		return NULL;
	loop = src->loop;
	src->removed = true;
	source_unlink(src);
	if (src->type == SOURCE_FD)
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, src->fd, NULL);
	else if (src->type == SOURCE_TIMER)
		close(src->fd); /* also drops it from the epoll set */
	src->next = loop->graveyard;
	loop->graveyard = src;
	if (src->destroy)
		src->destroy(src->userdata);
	return NULL;
}

struct cpmsync_loop *cpmsync_loop_free(struct cpmsync_loop *loop)
{
	if (!loop)
		return NULL;
	while (loop->sources)
		cpmsync_loop_source_remove(loop->sources);
	graveyard_flush(loop);
	close(loop->deferfd);
	close(loop->epfd);
	free(loop);
	return NULL;
}

static struct cpmsync_loop_source *source_new(struct cpmsync_loop *loop, enum source_type type,
					      void *userdata, cpmsync_destroy_cb_t destroy)
{
	struct cpmsync_loop_source *src = calloc(1, sizeof(*src));

	if (!src)
		return NULL;
	src->loop = loop;
	src->type = type;
	src->fd = -1;
	src->userdata = userdata;
	src->destroy = destroy;
	return src;
}

static void source_link(struct cpmsync_loop_source *src)
{
	src->next = src->loop->sources;
	src->loop->sources = src;
}

int cpmsync_loop_add_fd(struct cpmsync_loop *loop, int fd, uint32_t events, cpmsync_loop_fd_cb_t cb,
			void *userdata, cpmsync_destroy_cb_t destroy,
			struct cpmsync_loop_source **ret_src)
{
	struct cpmsync_loop_source *src;
	struct epoll_event ev = { .events = events };

	if (!loop || fd < 0 || !cb)
		return -EINVAL;
	src = source_new(loop, SOURCE_FD, userdata, destroy);
	if (!src)
		return -ENOMEM;
	src->fd = fd;
	src->fd_cb = cb;
	ev.data.ptr = src;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;

		free(src);
		return r;
	}
	source_link(src);
	if (ret_src)
		*ret_src = src;
	return 0;
}

int cpmsync_loop_modify_fd(struct cpmsync_loop_source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	if (!src || src->removed || src->type != SOURCE_FD)
		return -EINVAL;
	if (epoll_ctl(src->loop->epfd, EPOLL_CTL_MOD, src->fd, &ev) < 0)
		return -errno;
	return 0;
}

static void ms_to_timespec(uint64_t ms, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000;
}

int cpmsync_loop_timer_set(struct cpmsync_loop_source *src, uint64_t timeout_ms,
			   uint64_t interval_ms)
{
	struct itimerspec its = { 0 };

	if (!src || src->removed || src->type != SOURCE_TIMER)
		return -EINVAL;
	if (timeout_ms == 0 && interval_ms != 0)
		timeout_ms = interval_ms;
	ms_to_timespec(timeout_ms, &its.it_value);
	ms_to_timespec(interval_ms, &its.it_interval);
	if (timerfd_settime(src->fd, 0, &its, NULL) < 0)
		return -errno;
	return 0;
}

int cpmsync_loop_add_timer(struct cpmsync_loop *loop, uint64_t timeout_ms, uint64_t interval_ms,
			   cpmsync_loop_cb_t cb, void *userdata, cpmsync_destroy_cb_t destroy,
			   struct cpmsync_loop_source **ret_src)
{
	struct cpmsync_loop_source *src;
	struct epoll_event ev = { .events = EPOLLIN };
	int r;

	if (!loop || !cb)
		return -EINVAL;
	src = source_new(loop, SOURCE_TIMER, userdata, destroy);
	if (!src)
		return -ENOMEM;
	src->cb = cb;
	src->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (src->fd < 0) {
		r = -errno;
		free(src);
		return r;
	}
	ev.data.ptr = src;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, src->fd, &ev) < 0) {
		r = -errno;
		close(src->fd);
		free(src);
		return r;
	}
	source_link(src);
	/* A zero timeout means "as soon as possible", not "disarmed". */
	r = cpmsync_loop_timer_set(src, timeout_ms ? timeout_ms : 1, interval_ms);
	if (r < 0) {
		src->destroy = NULL;
		cpmsync_loop_source_remove(src);
		return r;
	}
	if (ret_src)
		*ret_src = src;
	return 0;
}

int cpmsync_loop_defer(struct cpmsync_loop *loop, cpmsync_loop_cb_t cb, void *userdata,
		       cpmsync_destroy_cb_t destroy, struct cpmsync_loop_source **ret_src)
{
	struct cpmsync_loop_source *src;
	uint64_t one = 1;

	if (!loop || !cb)
		return -EINVAL;
	src = source_new(loop, SOURCE_DEFER, userdata, destroy);
	if (!src)
		return -ENOMEM;
	src->cb = cb;
	source_link(src);
	src->queued = true;
	if (loop->defer_tail)
		loop->defer_tail->defer_next = src;
	else
		loop->defer_head = src;
	loop->defer_tail = src;
	if (write(loop->deferfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno; /* cannot happen with an eventfd in practice */
	if (ret_src)
		*ret_src = src;
	return 0;
}

int cpmsync_loop_get_fd(const struct cpmsync_loop *loop)
{
	return loop ? loop->epfd : -EINVAL;
}

int cpmsync_loop_prepare(struct cpmsync_loop *loop)
{
	return loop->defer_head ? 0 : -1;
}

/* Runs the deferred calls queued before this round; later ones wait. */
static int run_deferred(struct cpmsync_loop *loop)
{
	struct cpmsync_loop_source *last = loop->defer_tail;
	uint64_t v;
	int n = 0;

	if (read(loop->deferfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	while (loop->defer_head) {
		struct cpmsync_loop_source *s = loop->defer_head;
		bool was_last = s == last;

		loop->defer_head = s->defer_next;
		if (!loop->defer_head)
			loop->defer_tail = NULL;
		s->defer_next = NULL;
		s->queued = false;
		s->cb(s, s->userdata);
		cpmsync_loop_source_remove(s); /* no-op if cb removed it */
		n++;
		if (was_last)
			break;
	}
	if (loop->defer_head) {
		uint64_t one = 1;

		if (write(loop->deferfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			return -errno;
	}
	return n;
}

uint64_t loop_stall_ms(uint64_t due, uint64_t now, uint64_t prev_end, uint64_t round_start,
		       uint64_t own_ms)
{
	uint64_t from = prev_end > due ? prev_end : due;
	uint64_t waited = round_start > from ? round_start - from : 0;
	uint64_t late = now > due ? now - due : 0;
	uint64_t unexplained = late > own_ms ? late - own_ms : 0;

	return waited > unexplained ? waited : unexplained;
}

uint64_t loop_stalled_since(const struct cpmsync_loop *loop, uint64_t due, uint64_t own_ms)
{
	uint64_t now = cpmsync_now_ms();

	if (!loop->in_round)
		return loop_stall_ms(due, now, loop->last_end, now, own_ms);
	return loop_stall_ms(due, now, loop->prev_end, loop->round_start, own_ms);
}

static _Thread_local uint64_t own_work_total, own_work_start;
static _Thread_local unsigned own_work_depth;

void loop_own_work_begin(void)
{
	if (own_work_depth++ == 0)
		own_work_start = cpmsync_now_ms();
}

void loop_own_work_end(void)
{
	if (own_work_depth && --own_work_depth == 0)
		own_work_total += cpmsync_now_ms() - own_work_start;
}

uint64_t loop_own_work_ms(void)
{
	return own_work_total + (own_work_depth ? cpmsync_now_ms() - own_work_start : 0);
}

static void round_end(struct cpmsync_loop *loop)
{
	loop->in_round = false;
	loop->last_end = cpmsync_now_ms();
}

int cpmsync_loop_iterate(struct cpmsync_loop *loop, int timeout_ms)
{
	struct epoll_event events[32];
	int n, dispatched = 0;

	if (!loop)
		return -EINVAL;
	if (loop->defer_head)
		timeout_ms = 0;
	n = epoll_wait(loop->epfd, events, (int)ARRAY_SIZE(events), timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	loop->in_round = true;
	loop->prev_end = loop->last_end;
	loop->round_start = cpmsync_now_ms();

	/* A source removed by an earlier callback of this round is skipped:
	 * it stays allocated (in the graveyard) until the round ends. */
	for (int i = 0; i < n; i++) {
		struct cpmsync_loop_source *src = events[i].data.ptr;

		if ((void *)src == &defer_marker) {
			int r = run_deferred(loop);

			if (r < 0) {
				round_end(loop);
				return r;
			}
			dispatched += r;
			continue;
		}
		if (src->removed)
			continue;
		if (src->type == SOURCE_TIMER) {
			uint64_t expirations;

			if (read(src->fd, &expirations, sizeof(expirations)) < 0)
				continue; /* re-armed meanwhile */
			src->cb(src, src->userdata);
		} else {
			src->fd_cb(src, src->fd, events[i].events, src->userdata);
		}
		dispatched++;
	}
	graveyard_flush(loop);
	round_end(loop);
	return dispatched;
}

int cpmsync_loop_run(struct cpmsync_loop *loop)
{
	loop->quit = false;
	while (!loop->quit) {
		int r = cpmsync_loop_iterate(loop, -1);

		if (r < 0)
			return r;
	}
	return loop->quit_code;
}

void cpmsync_loop_quit(struct cpmsync_loop *loop, int code)
{
	loop->quit = true;
	loop->quit_code = code;
}
