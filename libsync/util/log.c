/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>

#include "util/text.h"

static cpmsync_log_cb_t log_handler;
static void *log_userdata;
static int log_max_level = CPMSYNC_LOG_WARNING;
static unsigned log_categories;

void cpmsync_log_set_handler(int max_level, unsigned categories, cpmsync_log_cb_t handler,
			     void *userdata)
{
	log_max_level = max_level;
	log_categories = categories;
	log_handler = handler;
	log_userdata = userdata;
}

bool log_enabled(int level, unsigned category)
{
	if (!log_handler || level > log_max_level)
		return false;
	return level < CPMSYNC_LOG_DEBUG || (log_categories & category);
}

void log_msg(int level, unsigned category, const char *fmt, ...)
{
	char line[2048], safe[4096];
	va_list ap;

	if (!log_enabled(level, category))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Server text (names, NO texts, the -v wire log) cannot forge a line
	 * or reach the terminal as control sequences. */
	log_handler(level, category, text_escape(safe, sizeof(safe), line), log_userdata);
}
