/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_LOOP_H
#define CPMSYNC_LOOP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The event loop every libcpmsync object runs on.  It is one epoll fd:
 * timers are timerfds and deferred work an eventfd, so a host with a loop
 * of its own (GLib, Qt) polls cpmsync_loop_get_fd() for readability,
 * sleeps at most cpmsync_loop_prepare() milliseconds and then calls
 * cpmsync_loop_iterate(loop, 0).  A daemon just calls cpmsync_loop_run().
 *
 * A loop belongs to one thread.  Callbacks are always called from
 * cpmsync_loop_iterate()/run(), never from inside the call that registered
 * them.  Every registration takes a destroy function, called once with
 * userdata when the registration ends (removed or the loop is freed).
 */
struct cpmsync_loop;
struct cpmsync_loop_source;

/* Event bits for fd sources: the same values as EPOLLIN etc. */
enum {
	CPMSYNC_LOOP_IN = 0x001,
	CPMSYNC_LOOP_OUT = 0x004,
	CPMSYNC_LOOP_ERR = 0x008,
	CPMSYNC_LOOP_HUP = 0x010
};

typedef void (*cpmsync_loop_fd_cb_t)(struct cpmsync_loop_source *src, int fd, uint32_t events,
				     void *userdata);
typedef void (*cpmsync_loop_cb_t)(struct cpmsync_loop_source *src, void *userdata);
typedef void (*cpmsync_destroy_cb_t)(void *userdata);

int cpmsync_loop_new(struct cpmsync_loop **ret_loop);
/* Removes every source (calling its destroy function).  Accepts NULL. */
struct cpmsync_loop *cpmsync_loop_free(struct cpmsync_loop *loop);

/* fd stays owned by the caller; remove the source before closing it. */
int cpmsync_loop_add_fd(struct cpmsync_loop *loop, int fd, uint32_t events, cpmsync_loop_fd_cb_t cb,
			void *userdata, cpmsync_destroy_cb_t destroy,
			struct cpmsync_loop_source **ret_src);
int cpmsync_loop_modify_fd(struct cpmsync_loop_source *src, uint32_t events);

/*
 * A timer firing after timeout_ms milliseconds (monotonic clock), once, or
 * every interval_ms when that is not 0.
 */
int cpmsync_loop_add_timer(struct cpmsync_loop *loop, uint64_t timeout_ms, uint64_t interval_ms,
			   cpmsync_loop_cb_t cb, void *userdata, cpmsync_destroy_cb_t destroy,
			   struct cpmsync_loop_source **ret_src);
/* Re-arms a timer source (0 disarms it). */
int cpmsync_loop_timer_set(struct cpmsync_loop_source *src, uint64_t timeout_ms,
			   uint64_t interval_ms);

/* Calls cb once, from the next iteration. */
int cpmsync_loop_defer(struct cpmsync_loop *loop, cpmsync_loop_cb_t cb, void *userdata,
		       cpmsync_destroy_cb_t destroy, struct cpmsync_loop_source **ret_src);

/*
 * Ends a source: its callback is not called again and its destroy
 * function is called now.  Safe from inside the source's own callback.
 * Accepts NULL; returns NULL.
 */
struct cpmsync_loop_source *cpmsync_loop_source_remove(struct cpmsync_loop_source *src);

/* Embedding. */
int cpmsync_loop_get_fd(const struct cpmsync_loop *loop);
/* Milliseconds the host may sleep: 0 when deferred work is pending, -1 for no limit. */
int cpmsync_loop_prepare(struct cpmsync_loop *loop);
/*
 * Waits at most timeout_ms (-1: forever) for events and dispatches them.
 * Returns the number of sources dispatched, or -errno.
 */
int cpmsync_loop_iterate(struct cpmsync_loop *loop, int timeout_ms);

/* Runs until cpmsync_loop_quit(); returns the code given to it. */
int cpmsync_loop_run(struct cpmsync_loop *loop);
void cpmsync_loop_quit(struct cpmsync_loop *loop, int code);

/* Monotonic time in milliseconds. */
uint64_t cpmsync_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif
