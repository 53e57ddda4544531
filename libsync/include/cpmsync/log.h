/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_LOG_H
#define CPMSYNC_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * libcpmsync never writes to stdout or stderr.  It reports debug detail
 * (and rare warnings about things its host cannot see) to one handler,
 * which the host sets.  Levels are syslog's (3 error ... 7 debug).
 * Passwords and authentication payloads are never passed to the handler.
 */
enum cpmsync_log_level {
	CPMSYNC_LOG_ERR = 3,
	CPMSYNC_LOG_WARNING = 4,
	CPMSYNC_LOG_NOTICE = 5,
	CPMSYNC_LOG_INFO = 6,
	CPMSYNC_LOG_DEBUG = 7
};

/* Debug categories, or'ed into the mask given to cpmsync_log_set_handler. */
enum cpmsync_log_category {
	CPMSYNC_LOG_CAT_IMAP = 1 << 0,	    /* connection and command flow */
	CPMSYNC_LOG_CAT_IMAP_WIRE = 1 << 1, /* the raw protocol, redacted */
	CPMSYNC_LOG_CAT_STORE = 1 << 2,
	CPMSYNC_LOG_CAT_ENGINE = 1 << 3,
	CPMSYNC_LOG_CAT_ALL = 0xffff
};

/* msg is borrowed for the duration of the call and has no trailing newline. */
typedef void (*cpmsync_log_cb_t)(int level, unsigned category, const char *msg, void *userdata);

/*
 * Messages above max_level, and debug messages of categories outside
 * categories, are not formatted at all.  handler may be NULL (silence).
 * Process-wide; call it before creating other objects.
 */
void cpmsync_log_set_handler(int max_level, unsigned categories, cpmsync_log_cb_t handler,
			     void *userdata);

#ifdef __cplusplus
}
#endif
#endif
