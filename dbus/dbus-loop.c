/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libdbus on the cpmsync loop (the PulseAudio dbus-util.c pattern):
 * a DBusWatch is a loop fd source while enabled, a DBusTimeout a loop
 * timer while enabled, and dispatching runs from a deferred callback
 * whenever libdbus says data remains.
 *
 * libdbus has two watches (read, write) on one socket; epoll takes an fd
 * once, so each watch registers a duplicate of the fd (its own epoll
 * entry) and closes it when the watch goes away.  A disabled watch has
 * no source at all: epoll would report HUP/ERR even with no events asked.
 */
#include "dbus-object.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "dbus-util.h"

/* Dispatch at most this many messages per loop iteration. */
#define DISPATCH_BATCH 64

struct cpm_dbus_glue {
	DBusConnection *conn;
	struct cpmsync_loop *loop;
	struct cpmsync_loop_source *dispatch_src;
	bool detaching;
};

struct glue_watch {
	struct cpm_dbus_glue *glue;
	DBusWatch *watch;
	int fd; /* our duplicate */
	struct cpmsync_loop_source *src;
};

struct glue_timeout {
	struct cpm_dbus_glue *glue;
	DBusTimeout *timeout;
	struct cpmsync_loop_source *src;
};

static void dispatch_cb(struct cpmsync_loop_source *src, void *userdata);

static void schedule_dispatch(struct cpm_dbus_glue *glue)
{
	if (glue->dispatch_src || glue->detaching)
		return;
	if (cpmsync_loop_defer(glue->loop, dispatch_cb, glue, NULL, &glue->dispatch_src) < 0)
		cpm_oom();
}

static void dispatch_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpm_dbus_glue *glue = userdata;
	int i;

	(void)src;
	glue->dispatch_src = NULL;
	dbus_connection_ref(glue->conn);
	for (i = 0; i < DISPATCH_BATCH; i++)
		if (dbus_connection_dispatch(glue->conn) != DBUS_DISPATCH_DATA_REMAINS)
			break;
	if (i == DISPATCH_BATCH &&
	    dbus_connection_get_dispatch_status(glue->conn) == DBUS_DISPATCH_DATA_REMAINS)
		schedule_dispatch(glue);
	dbus_connection_unref(glue->conn);
}

static void dispatch_status_cb(DBusConnection *conn, DBusDispatchStatus status, void *data)
{
	(void)conn;
	if (status == DBUS_DISPATCH_DATA_REMAINS)
		schedule_dispatch(data);
}

static void wakeup_cb(void *data)
{
	schedule_dispatch(data);
}

/* ------------------------------------------------------------------------ */
/* Watches */

static uint32_t watch_events(DBusWatch *w)
{
	unsigned flags = dbus_watch_get_flags(w);
	uint32_t ev = 0;

	if (flags & DBUS_WATCH_READABLE)
		ev |= CPMSYNC_LOOP_IN;
	if (flags & DBUS_WATCH_WRITABLE)
		ev |= CPMSYNC_LOOP_OUT;
	return ev;
}

static void watch_cb(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct glue_watch *gw = userdata;
	struct cpm_dbus_glue *glue = gw->glue;
	unsigned flags = 0;

	(void)src;
	(void)fd;
	if (events & CPMSYNC_LOOP_IN)
		flags |= DBUS_WATCH_READABLE;
	if (events & CPMSYNC_LOOP_OUT)
		flags |= DBUS_WATCH_WRITABLE;
	if (events & CPMSYNC_LOOP_ERR)
		flags |= DBUS_WATCH_ERROR;
	if (events & CPMSYNC_LOOP_HUP)
		flags |= DBUS_WATCH_HANGUP;
	/* gw may be freed inside (remove_watch): do not touch it after. */
	dbus_watch_handle(gw->watch, flags);
	if (dbus_connection_get_dispatch_status(glue->conn) == DBUS_DISPATCH_DATA_REMAINS)
		schedule_dispatch(glue);
}

static void watch_enable(struct glue_watch *gw)
{
	if (gw->src)
		return;
	if (cpmsync_loop_add_fd(gw->glue->loop, gw->fd, watch_events(gw->watch), watch_cb, gw, NULL,
				&gw->src) < 0)
		cpm_oom();
}

static void watch_disable(struct glue_watch *gw)
{
	gw->src = cpmsync_loop_source_remove(gw->src);
}

static dbus_bool_t add_watch_cb(DBusWatch *w, void *data)
{
	struct glue_watch *gw = cpm_calloc(1, sizeof(*gw));

	gw->glue = data;
	gw->watch = w;
	gw->fd = fcntl(dbus_watch_get_unix_fd(w), F_DUPFD_CLOEXEC, 3);
	if (gw->fd < 0) {
		free(gw);
		return FALSE;
	}
	dbus_watch_set_data(w, gw, NULL);
	if (dbus_watch_get_enabled(w))
		watch_enable(gw);
	return TRUE;
}

static void remove_watch_cb(DBusWatch *w, void *data)
{
	struct glue_watch *gw = dbus_watch_get_data(w);

	(void)data;
	if (!gw)
		return;
	dbus_watch_set_data(w, NULL, NULL);
	watch_disable(gw);
	close(gw->fd);
	free(gw);
}

static void toggle_watch_cb(DBusWatch *w, void *data)
{
	struct glue_watch *gw = dbus_watch_get_data(w);

	(void)data;
	if (!gw)
		return;
	if (dbus_watch_get_enabled(w)) {
		if (gw->src)
			cpmsync_loop_modify_fd(gw->src, watch_events(w));
		else
			watch_enable(gw);
	} else {
		watch_disable(gw);
	}
}

/* ------------------------------------------------------------------------ */
/* Timeouts */

static void timeout_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct glue_timeout *gt = userdata;
	struct cpm_dbus_glue *glue = gt->glue;

	(void)src;
	dbus_timeout_handle(gt->timeout);
	if (dbus_connection_get_dispatch_status(glue->conn) == DBUS_DISPATCH_DATA_REMAINS)
		schedule_dispatch(glue);
}

static void timeout_arm(struct glue_timeout *gt)
{
	int ms = dbus_timeout_get_interval(gt->timeout);
	uint64_t t = ms > 0 ? (uint64_t)ms : 1;

	if (gt->src) {
		cpmsync_loop_timer_set(gt->src, t, t);
		return;
	}
	if (cpmsync_loop_add_timer(gt->glue->loop, t, t, timeout_cb, gt, NULL, &gt->src) < 0)
		cpm_oom();
}

static dbus_bool_t add_timeout_cb(DBusTimeout *t, void *data)
{
	struct glue_timeout *gt = cpm_calloc(1, sizeof(*gt));

	gt->glue = data;
	gt->timeout = t;
	dbus_timeout_set_data(t, gt, NULL);
	if (dbus_timeout_get_enabled(t))
		timeout_arm(gt);
	return TRUE;
}

static void remove_timeout_cb(DBusTimeout *t, void *data)
{
	struct glue_timeout *gt = dbus_timeout_get_data(t);

	(void)data;
	if (!gt)
		return;
	dbus_timeout_set_data(t, NULL, NULL);
	cpmsync_loop_source_remove(gt->src);
	free(gt);
}

static void toggle_timeout_cb(DBusTimeout *t, void *data)
{
	struct glue_timeout *gt = dbus_timeout_get_data(t);

	(void)data;
	if (!gt)
		return;
	if (dbus_timeout_get_enabled(t))
		timeout_arm(gt);
	else
		gt->src = cpmsync_loop_source_remove(gt->src);
}

/* ------------------------------------------------------------------------ */

int cpm_dbus_glue_attach(DBusConnection *conn, struct cpmsync_loop *loop,
			 struct cpm_dbus_glue **ret)
{
	struct cpm_dbus_glue *glue = cpm_calloc(1, sizeof(*glue));

	glue->conn = conn;
	glue->loop = loop;
	if (!dbus_connection_set_watch_functions(conn, add_watch_cb, remove_watch_cb,
						 toggle_watch_cb, glue, NULL) ||
	    !dbus_connection_set_timeout_functions(conn, add_timeout_cb, remove_timeout_cb,
						   toggle_timeout_cb, glue, NULL)) {
		dbus_connection_set_watch_functions(conn, NULL, NULL, NULL, NULL, NULL);
		free(glue);
		return -ENOMEM;
	}
	dbus_connection_set_dispatch_status_function(conn, dispatch_status_cb, glue, NULL);
	dbus_connection_set_wakeup_main_function(conn, wakeup_cb, glue, NULL);
	if (dbus_connection_get_dispatch_status(conn) == DBUS_DISPATCH_DATA_REMAINS)
		schedule_dispatch(glue);
	*ret = glue;
	return 0;
}

struct cpm_dbus_glue *cpm_dbus_glue_detach(struct cpm_dbus_glue *glue)
{
	if (!glue)
		return NULL;
	glue->detaching = true;
	dbus_connection_set_dispatch_status_function(glue->conn, NULL, NULL, NULL);
	dbus_connection_set_wakeup_main_function(glue->conn, NULL, NULL, NULL);
	dbus_connection_set_watch_functions(glue->conn, NULL, NULL, NULL, NULL, NULL);
	dbus_connection_set_timeout_functions(glue->conn, NULL, NULL, NULL, NULL, NULL);
	cpmsync_loop_source_remove(glue->dispatch_src);
	free(glue);
	return NULL;
}
