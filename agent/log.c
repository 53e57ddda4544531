/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cpmsync/log.h>
#include <cpmsync/utf8.h>

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
 * msg with what a log reader would act on written out: control characters
 * (\n, \r, \t, \xNN), bytes that are not UTF-8 (\xNN: journald stores
 * such a line as a blob, shown "[blob data]") and the C1 and bidirectional
 * formatting characters (\uNNNN), by cpmsync_text_unsafe_cp()'s one rule,
 * the library's log's.  One message is one line, whatever it quotes (a file
 * name of the outbox holding a newline and "<3>" would otherwise forge a
 * line of its own, at the journal's error priority).  Into buf (size
 * bytes, cut short if need be, never inside a character or an escape);
 * msg itself when it has none.
 */
static const char *one_line(const char *msg, char *buf, size_t size)
{
	size_t len = strlen(msg), n = 0;
	const char *p = msg, *end = msg + len;

	if (cpmsync_text_find_unsafe(msg, len, NULL) == len)
		return msg;
	while (p < end) {
		size_t safe = cpmsync_text_find_unsafe(p, (size_t)(end - p), NULL),
		       room = size - 1 - n;
		uint32_t cp = 0;
		char esc[16];
		size_t k;

		if (safe > room) { /* cut at the last whole character that fits */
			while (room > 0 && ((unsigned char)p[room] & 0xc0) == 0x80)
				room--;
			memcpy(buf + n, p, room);
			n += room;
			break;
		}
		memcpy(buf + n, p, safe);
		n += safe;
		p += safe;
		if (p == end)
			break;
		k = cpmsync_utf8_decode(p, (size_t)(end - p), &cp);
		if (k == 0) /* not UTF-8: the byte */
			snprintf(esc, sizeof(esc), "\\x%02x", (unsigned char)*p);
		else if (cp == '\n' || cp == '\r' || cp == '\t')
			snprintf(esc, sizeof(esc), "\\%c",
				 cp == '\n'   ? 'n'
				 : cp == '\r' ? 'r'
					      : 't');
		else if (cp < 0x80)
			snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)cp);
		else
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
		if (strlen(esc) > size - 1 - n)
			break;
		memcpy(buf + n, esc, strlen(esc));
		n += strlen(esc);
		p += k ? k : 1;
	}
	buf[n] = '\0';
	return buf;
}

char *log_escape(const char *s)
{
	size_t size = 4 * strlen(s) + 1; /* at most four bytes written per byte read */
	char *buf = malloc(size);

	if (!buf)
		abort();
	if (one_line(s, buf, size) == s)
		memcpy(buf, s, strlen(s) + 1);
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
