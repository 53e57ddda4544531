/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cpmsync/log.h>

static int max_level = LOG_LEVEL_INFO;
static bool to_journal;

static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(2, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

/*
 * msg with its control characters written out (\n, \r, \t, \xNN): one
 * message is one line, whatever it quotes (a file name of the outbox
 * holding a newline and "<3>" would otherwise forge a line of its own,
 * at the journal's error priority).  Into buf (size bytes, cut short if
 * need be); msg itself when it has none.
 */
static const char *one_line(const char *msg, char *buf, size_t size)
{
	size_t n = 0;
	const char *p;

	for (p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			break;
	if (!*p)
		return msg;
	for (p = msg; *p && n + 5 < size; p++) {
		unsigned char c = (unsigned char)*p;

		if (c >= 0x20 && c != 0x7f)
			buf[n++] = (char)c;
		else if (c == '\n' || c == '\r' || c == '\t') {
			buf[n++] = '\\';
			buf[n++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", c);
	}
	buf[n] = '\0';
	return buf;
}

static void write_line(int level, const char *msg)
{
	char buf[4096 * 4 + 8];

	if (level > max_level)
		return;
	msg = one_line(msg, buf, sizeof(buf));
	if (to_journal)
		fprintf(stderr, "<%d>%s\n", level, msg);
	else
		fprintf(stderr, "cpm-syncd: %s\n", msg);
}

static void library_log(int level, unsigned category, const char *msg, void *userdata)
{
	(void)category;
	(void)userdata;
	write_line(level, msg);
}

void agent_log_init(bool verbose)
{
	to_journal = stderr_is_journal();
	max_level = verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO;
	cpmsync_log_set_handler(max_level, verbose ? CPMSYNC_LOG_CAT_ALL : 0, library_log, NULL);
}

void agent_log(int level, const char *fmt, ...)
{
	char line[4096];
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	write_line(level, line);
}
