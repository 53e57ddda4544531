/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unicode simple case folding (see casefold.h).
 */
#include "util/casefold.h"

#include <string.h>

#include <cpmsync/utf8.h>

struct casefold_range {
	uint32_t lo, hi;
	int32_t delta;
	uint32_t stride;
};

#include "util/casefold-table.h"

uint32_t casefold_cp(uint32_t cp)
{
	size_t lo = 0, hi = sizeof(casefold_ranges) / sizeof(casefold_ranges[0]);

	if (cp < 0x80)
		return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
	if (cp < casefold_ranges[0].lo)
		return cp;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct casefold_range *r = &casefold_ranges[mid];

		if (cp < r->lo) {
			hi = mid;
		} else if (cp > r->hi) {
			lo = mid + 1;
		} else {
			if ((cp - r->lo) % r->stride)
				return cp;
			return (uint32_t)((int64_t)cp + r->delta);
		}
	}
	return cp;
}

/* Bytes of the UTF-8 sequence lead byte c starts (1 for one that starts
 * none). */
static size_t sequence_length(unsigned char c)
{
	return c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? (c <= 0xef ? 3 : 1) : c >= 0xc2 ? 2 : 1;
}

size_t casefold_utf8(const char *s, size_t n, bool final, char *out, size_t *ret_len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, o = 0;

	while (i < n) {
		uint32_t cp;
		size_t k;

		/* ASCII (most of any text) a byte at a time. */
		if (u[i] < 0x80) {
			out[o++] = (char)(u[i] >= 'A' && u[i] <= 'Z' ? u[i] + 32 : u[i]);
			i++;
			continue;
		}
		if (!final && n - i < sequence_length(u[i]))
			break; /* perhaps cut short: the next call's */
		k = cpmsync_utf8_decode(s + i, n - i, &cp);
		if (k == 0) {
			out[o++] = s[i++];
			continue;
		}
		cp = casefold_cp(cp);
		o += cpmsync_utf8_encode(cp, out + o);
		i += k;
	}
	*ret_len = o;
	return i;
}
