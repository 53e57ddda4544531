/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: arbitrary bytes as an IMAP sequence-set.  The first byte
 * picks the value of "*" (0 refuses it) and the split limit for
 * formatting; the rest is the text.  A set that parsed must format back
 * (in pieces no longer than the limit, unless one range alone is longer)
 * to text that parses to the same set.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap-seqset.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t stars[] = { 0, 1, 7, 1000, 4294967295u };
static const size_t limits[] = { 1, 8, 30, 100, 8000 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rangeset set = RANGESET_INIT, back = RANGESET_INIT;
	struct buf line = BUF_INIT(1 << 20);
	uint32_t star;
	size_t max, pos = 0;
	int r;

	if (size < 1)
		return 0;
	star = stars[data[0] % 5];
	max = limits[(data[0] / 5) % 5];
	set.max_ranges = back.max_ranges = 4096;

	r = imap_seqset_parse(&set, (const char *)data + 1, size - 1, star);
	if (r < 0) {
		assert(rangeset_empty(&set)); /* failure leaves it alone */
		goto out;
	}
	assert(!rangeset_empty(&set));
	for (size_t i = 0; i < set.n; i++) {
		assert(set.r[i].lo >= 1 && set.r[i].lo <= set.r[i].hi);
		if (i)
			assert(set.r[i].lo > (uint64_t)set.r[i - 1].hi + 1);
		assert(rangeset_contains(&set, set.r[i].lo));
		assert(rangeset_contains(&set, set.r[i].hi));
		if (set.r[i].lo > 1)
			assert(!rangeset_contains(&set, set.r[i].lo - 1));
	}
	while (pos < set.n) {
		size_t before = pos;

		buf_reset(&line);
		r = imap_seqset_format(&set, &pos, &line, max);
		assert(r == 0 && pos > before);
		assert(line.len <= max || pos - before == 1);
		r = imap_seqset_parse(&back, line.data, line.len, 0);
		assert(r == 0);
	}
	assert(back.n == set.n);
	assert(memcmp(back.r, set.r, set.n * sizeof(*set.r)) == 0);
	assert(rangeset_count(&back) == rangeset_count(&set));

	/* Removing every range again empties the set. */
	for (size_t i = set.n; i-- > 0;)
		assert(rangeset_remove_range(&back, set.r[i].hi, set.r[i].lo) == 0);
	assert(rangeset_empty(&back));
out:
	buf_free(&line);
	rangeset_free(&set);
	rangeset_free(&back);
	return 0;
}
