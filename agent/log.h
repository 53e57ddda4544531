/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The daemon's log: one line per message on stderr, with an sd-daemon
 * "<N>" priority prefix when stderr is the journal (JOURNAL_STREAM names
 * it).  The library's handler is routed here.  Passwords are never
 * passed to these functions.
 */

#include <stdbool.h>

#define LOG_LEVEL_ERR	  3
#define LOG_LEVEL_WARNING 4
#define LOG_LEVEL_NOTICE  5
#define LOG_LEVEL_INFO	  6
#define LOG_LEVEL_DEBUG	  7

/* verbose: debug level, with the library's debug categories. */
void agent_log_init(bool verbose);
void agent_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * s as a log line writes it (malloc'ed): control characters, bytes that
 * are not UTF-8, C1 and bidirectional formatting characters escaped, for
 * text kept elsewhere (an outbox .why) that a reader must see the same.
 */
char *log_escape(const char *s);

#define log_error(...)	 agent_log(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warning(...) agent_log(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...)	 agent_log(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...)	 agent_log(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)	 agent_log(LOG_LEVEL_DEBUG, __VA_ARGS__)
