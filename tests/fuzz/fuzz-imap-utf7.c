/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Runs modified UTF-7 both ways and the mailbox mapping over the input:
 * nothing may crash, and every accepted conversion must round-trip
 * (abort() otherwise).  The first byte is the hierarchy delimiter for the
 * mailbox mapping, the rest the name.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/imap-utf7.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OUT (1u << 20)

static bool same(const struct buf *b, const char *s, size_t len)
{
	return b->len == len && (len == 0 || memcmp(b->data, s, len) == 0);
}

static void check_utf8_first(const char *s, size_t len)
{
	struct buf a = BUF_INIT(MAX_OUT), b = BUF_INIT(MAX_OUT);

	if (imap_utf8_to_utf7(s, len, &a) == 0) {
		for (size_t i = 0; i < a.len; i++)
			if (a.data[i] < 0x20 || a.data[i] > 0x7e)
				abort();
		if (imap_utf7_to_utf8(a.data, a.len, &b) != 0 || !same(&b, s, len))
			abort();
	}
	buf_free(&a);
	buf_free(&b);
}

static void check_utf7_first(const char *s, size_t len)
{
	struct buf a = BUF_INIT(MAX_OUT), b = BUF_INIT(MAX_OUT), c = BUF_INIT(MAX_OUT);

	/* Decoded text re-encodes, and that decodes to the same text. */
	if (imap_utf7_to_utf8(s, len, &a) == 0) {
		if (imap_utf8_to_utf7(a.data, a.len, &b) != 0)
			abort();
		if (imap_utf7_to_utf8(b.data, b.len, &c) != 0 || !same(&c, a.data, a.len))
			abort();
	}
	buf_free(&a);
	buf_free(&b);
	buf_free(&c);
}

static void check_mailbox(const char *s, size_t len, char delim, bool utf8_mode)
{
	struct buf ours = BUF_INIT(MAX_OUT), server = BUF_INIT(MAX_OUT), ours2 = BUF_INIT(MAX_OUT),
		   server2 = BUF_INIT(MAX_OUT);

	/* Server form -> ours -> server -> ours: stable. */
	if (imap_mailbox_to_utf8(s, len, delim, utf8_mode, &ours) == 0) {
		if (imap_mailbox_from_utf8(ours.data, ours.len, delim, utf8_mode, &server) != 0)
			abort();
		if (imap_mailbox_to_utf8(server.data, server.len, delim, utf8_mode, &ours2) != 0 ||
		    !same(&ours2, ours.data, ours.len))
			abort();
	}
	buf_reset(&server);
	buf_reset(&ours2);
	/* Ours -> server -> ours: the same, or differs only in INBOX case. */
	if (imap_mailbox_from_utf8(s, len, delim, utf8_mode, &server) == 0) {
		if (imap_mailbox_to_utf8(server.data, server.len, delim, utf8_mode, &ours2) != 0 ||
		    ours2.len != len)
			abort();
		if (strncasecmp(ours2.data, s, len) != 0)
			abort();
		if (imap_mailbox_from_utf8(ours2.data, ours2.len, delim, utf8_mode, &server2) !=
			    0 ||
		    !same(&server2, server.data, server.len))
			abort();
	}
	buf_free(&ours);
	buf_free(&server);
	buf_free(&ours2);
	buf_free(&server2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;

	check_utf8_first(s, size);
	check_utf7_first(s, size);
	if (size > 0) {
		check_mailbox(s + 1, size - 1, (char)data[0], false);
		check_mailbox(s + 1, size - 1, (char)data[0], true);
	}
	return 0;
}
