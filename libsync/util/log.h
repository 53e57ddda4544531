/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <cpmsync/log.h>

#include "util/macro.h"

/* True when a message of this level and category would reach the handler. */
bool log_enabled(int level, unsigned category);
void log_msg(int level, unsigned category, const char *fmt, ...) ATTR_FORMAT(3, 4);

#define log_debug(cat, ...)                                                                        \
	do {                                                                                       \
		if (log_enabled(CPMSYNC_LOG_DEBUG, (cat)))                                         \
			log_msg(CPMSYNC_LOG_DEBUG, (cat), __VA_ARGS__);                            \
	} while (0)
