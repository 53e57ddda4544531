/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "imap/imap-seqset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

/* The longest element: "4294967295:4294967295". */
#define ELEM_MAX 21

/* seq-number: nz-number (no leading zero, <= 2^32-1) or "*". */
static int parse_number(const char *s, size_t len, size_t *pos, uint32_t star, uint32_t *ret)
{
	size_t i = *pos;
	uint64_t v = 0;

	if (i < len && s[i] == '*') {
		if (star == 0)
			return -CPMSYNC_E_PROTOCOL;
		*pos = i + 1;
		*ret = star;
		return 0;
	}
	if (i >= len || s[i] < '1' || s[i] > '9')
		return -CPMSYNC_E_PROTOCOL;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX)
			return -CPMSYNC_E_PROTOCOL;
	}
	*pos = i;
	*ret = (uint32_t)v;
	return 0;
}

int imap_seqset_parse(struct rangeset *set, const char *s, size_t len, uint32_t star)
{
	struct rangeset tmp = { .max_ranges = set->max_ranges }; /* 0: the default */
	size_t pos = 0;
	int r;

	if (!s || len == 0)
		return -CPMSYNC_E_PROTOCOL;
	for (;;) {
		uint32_t lo, hi;

		r = parse_number(s, len, &pos, star, &lo);
		if (r < 0)
			goto fail;
		hi = lo;
		if (pos < len && s[pos] == ':') {
			pos++;
			r = parse_number(s, len, &pos, star, &hi);
			if (r < 0)
				goto fail;
		}
		r = rangeset_add_range(&tmp, lo, hi);
		if (r < 0)
			goto fail;
		if (pos == len)
			break;
		if (s[pos] != ',' || pos + 1 == len) {
			r = -CPMSYNC_E_PROTOCOL;
			goto fail;
		}
		pos++;
	}

	if (set->n == 0) {
		/* The common case: hand the parsed ranges over whole. */
		free(set->r);
		set->r = tmp.r;
		set->n = tmp.n;
		set->alloc = tmp.alloc;
		return 0;
	}
	for (size_t i = 0; i < tmp.n; i++) {
		r = rangeset_add_range(set, tmp.r[i].lo, tmp.r[i].hi);
		if (r < 0)
			break;
	}
	rangeset_free(&tmp);
	return r < 0 ? r : 0;

fail:
	rangeset_free(&tmp);
	return r;
}

static int format_range(const struct range *r, char *p, size_t size)
{
	if (r->lo == r->hi)
		return snprintf(p, size, "%u", r->lo);
	return snprintf(p, size, "%u:%u", r->lo, r->hi);
}

int imap_seqset_format(const struct rangeset *set, size_t *pos, struct buf *out, size_t max_bytes)
{
	size_t start = out->len, written = 0, i;
	int r = 0;

	if (*pos >= set->n)
		return 0; /* nothing left: writes nothing */
	for (i = *pos; i < set->n; i++) {
		char elem[ELEM_MAX + 2];
		int n = format_range(&set->r[i], elem + 1, sizeof(elem) - 1);
		char *p = elem + 1;

		if (i > *pos) {
			*--p = ',';
			n++;
		}
		if (written > 0 && written + (size_t)n > max_bytes)
			break;
		r = buf_append(out, p, (size_t)n);
		if (r < 0)
			break;
		written += (size_t)n;
	}
	if (r < 0) {
		/* Leave out as it was. */
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		return r;
	}
	*pos = i;
	return 0;
}
