/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: msg_canon() on arbitrary bytes as a message.  It returns 0,
 * or -E2BIG past its buffer's bound (and -ENOMEM); the same input always
 * gives the same form; the input is copied to an exactly sized buffer so
 * that the replay driver's ASan build catches any read beyond it.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/msg-canon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *msg = malloc(size ? size : 1);
	struct buf a = BUF_INIT(4 * size + 65536), b = BUF_INIT(4 * size + 65536);
	struct buf small = BUF_INIT(64);
	int r, r2;

	if (!msg)
		abort();
	if (size)
		memcpy(msg, data, size);
	r = msg_canon(msg, size, &a);
	assert(r == 0 || r == -E2BIG || r == -ENOMEM);
	r2 = msg_canon(msg, size, &b);
	assert(r2 == r);
	if (r == 0)
		assert(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
	r = msg_canon(msg, size, &small);
	assert(r == 0 || r == -E2BIG || r == -ENOMEM);
	assert(small.len <= 64);
	buf_free(&a);
	buf_free(&b);
	buf_free(&small);
	free(msg);
	return 0;
}
