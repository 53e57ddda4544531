/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: arbitrary bytes as a message header.  The summary must
 * never fail (but for -ENOMEM), every value must be valid, bounded UTF-8
 * without NUL, and the date parser must accept anything without crashing.
 * The append check (msg_check_head()) refuses with a sentence or accepts.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/msg-summary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool utf8_ok(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	while (*u) {
		size_t k = *u < 0x80 ? 1 : *u >= 0xf0 ? 4 : *u >= 0xe0 ? 3 : *u >= 0xc2 ? 2 : 0;

		if (k == 0)
			return false;
		for (size_t i = 1; i < k; i++)
			if ((u[i] & 0xc0) != 0x80)
				return false;
		u += k;
	}
	return true;
}

static void check_value(const char *v, bool newlines)
{
	assert(v);
	assert(strlen(v) <= MSG_SUMMARY_MAX_FIELD);
	assert(utf8_ok(v));
	for (const char *p = v; *p; p++)
		assert(newlines ? (*p == '\n' || (unsigned char)*p >= 0x20 || *p == '\t')
				: ((unsigned char)*p >= 0x20 || *p == '\t'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_summary m;
	char why[320];
	size_t hl;
	int64_t t;
	int r;

	r = msg_summary_parse(data, size, &m);
	if (r < 0) {
		assert(r == -ENOMEM);
		return 0;
	}
	check_value(m.message_id, false);
	check_value(m.subject, false);
	check_value(m.from, false);
	check_value(m.to, true);
	check_value(m.conversation_id, false);
	check_value(m.contribution_id, false);
	check_value(m.imdn_message_id, false);
	assert(strcmp(m.type, "message") == 0 || strcmp(m.type, "session-info") == 0 ||
	       strcmp(m.type, "group-state") == 0 || strcmp(m.type, "file-transfer") == 0 ||
	       strcmp(m.type, "media") == 0 || strcmp(m.type, "imdn") == 0 ||
	       strcmp(m.type, "mail") == 0);
	msg_summary_free(&m);

	hl = msg_header_length(data, size);
	assert(hl <= size);
	if (hl)
		assert(data[hl - 1] == '\n');

	r = msg_parse_date((const char *)data, size, &t);
	assert(r == 0 || r == -EINVAL);

	/* The append check: a verdict with a sentence, whole or cut; a
	 * prefix of a message is never refused for a line it cuts. */
	why[0] = '\0';
	r = msg_check_head(data, size, size, why, sizeof(why));
	assert(r == 0 || (r == -EINVAL && why[0] && strlen(why) < sizeof(why)));
	if (r == 0 && size > 1)
		assert(msg_check_head(data, size / 2, size, why, sizeof(why)) == 0);
	r = msg_check_nul(data, size, 7, why, sizeof(why));
	assert((r == 0) == (memchr(data, 0, size) == NULL));
	return 0;
}
