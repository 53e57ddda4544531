/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "imap/imap-seqset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

/* The longest element: "4294967295:4294967295". */
#define ELEM_MAX 21

static size_t max_ranges(const struct imap_seqset *set)
{
	return set->max_ranges ? set->max_ranges : IMAP_SEQSET_DEFAULT_MAX;
}

void imap_seqset_init(struct imap_seqset *set)
{
	*set = IMAP_SEQSET_INIT;
}

void imap_seqset_free(struct imap_seqset *set)
{
	free(set->r);
	set->r = NULL;
	set->n = 0;
	set->alloc = 0;
}

void imap_seqset_clear(struct imap_seqset *set)
{
	set->n = 0;
}

/* Makes room for one more range. */
static int grow(struct imap_seqset *set)
{
	size_t limit = max_ranges(set), want;
	struct imap_range *r;

	if (set->n >= limit)
		return -E2BIG;
	if (set->n < set->alloc)
		return 0;
	want = set->alloc ? set->alloc * 2 : 8;
	if (want > limit || want < set->alloc)
		want = limit;
	if (want > SIZE_MAX / sizeof(*r))
		return -ENOMEM;
	r = realloc(set->r, want * sizeof(*r));
	if (!r)
		return -ENOMEM;
	set->r = r;
	set->alloc = want;
	return 0;
}

/* Index of the first range with hi >= v (set->n if none). */
static size_t first_hi_ge(const struct imap_seqset *set, uint64_t v)
{
	size_t lo = 0, hi = set->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (set->r[mid].hi < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Number of ranges with lo <= v (so the last such range is this - 1). */
static size_t count_lo_le(const struct imap_seqset *set, uint64_t v)
{
	size_t lo = 0, hi = set->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (set->r[mid].lo <= v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int imap_seqset_add_range(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	struct imap_range *last;
	size_t i, j;
	int r;

	if (lo > hi) {
		uint32_t t = lo;

		lo = hi;
		hi = t;
	}
	if (lo == 0)
		return -EINVAL;

	/* Fast paths: empty set, or at/after the last range (UID order). */
	last = set->n ? &set->r[set->n - 1] : NULL;
	if (last && lo >= last->lo) {
		if ((uint64_t)lo <= (uint64_t)last->hi + 1) {
			if (hi > last->hi)
				last->hi = hi;
			return 0;
		}
	}
	if (!last || lo > last->hi) {
		r = grow(set);
		if (r < 0)
			return r;
		set->r[set->n++] = (struct imap_range){ .lo = lo, .hi = hi };
		return 0;
	}

	/* Ranges i..j-1 touch or overlap lo..hi and merge with it. */
	i = first_hi_ge(set, (uint64_t)lo - 1);
	j = count_lo_le(set, (uint64_t)hi + 1);
	if (i >= j) {
		/* No neighbour: insert at i. */
		r = grow(set);
		if (r < 0)
			return r;
		memmove(&set->r[i + 1], &set->r[i],
			(set->n - i) * sizeof(set->r[0]));
		set->r[i] = (struct imap_range){ .lo = lo, .hi = hi };
		set->n++;
		return 0;
	}
	if (set->r[i].lo < lo)
		lo = set->r[i].lo;
	if (set->r[j - 1].hi > hi)
		hi = set->r[j - 1].hi;
	set->r[i] = (struct imap_range){ .lo = lo, .hi = hi };
	memmove(&set->r[i + 1], &set->r[j], (set->n - j) * sizeof(set->r[0]));
	set->n -= j - i - 1;
	return 0;
}

int imap_seqset_remove_range(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	size_t i, j;
	int r;

	if (lo > hi) {
		uint32_t t = lo;

		lo = hi;
		hi = t;
	}
	if (lo == 0)
		return -EINVAL;

	/* Ranges i..j-1 overlap lo..hi. */
	i = first_hi_ge(set, lo);
	j = count_lo_le(set, hi);
	if (i >= j)
		return 0;
	if (j - i == 1 && set->r[i].lo < lo && set->r[i].hi > hi) {
		/* Punches a hole: one range becomes two. */
		r = grow(set);
		if (r < 0)
			return r;
		memmove(&set->r[i + 1], &set->r[i],
			(set->n - i) * sizeof(set->r[0]));
		set->n++;
		set->r[i].hi = lo - 1;
		set->r[i + 1].lo = hi + 1;
		return 0;
	}
	if (set->r[i].lo < lo) {
		set->r[i].hi = lo - 1;
		i++;
	}
	if (set->r[j - 1].hi > hi) {
		set->r[j - 1].lo = hi + 1;
		j--;
	}
	if (i < j) {
		memmove(&set->r[i], &set->r[j],
			(set->n - j) * sizeof(set->r[0]));
		set->n -= j - i;
	}
	return 0;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t v)
{
	size_t i;

	if (v == 0)
		return false;
	i = first_hi_ge(set, v);
	return i < set->n && set->r[i].lo <= v;
}

uint64_t imap_seqset_count(const struct imap_seqset *set)
{
	uint64_t total = 0;

	for (size_t i = 0; i < set->n; i++)
		total += (uint64_t)set->r[i].hi - set->r[i].lo + 1;
	return total;
}

/* seq-number: nz-number (no leading zero, <= 2^32-1) or "*". */
static int parse_number(const char *s, size_t len, size_t *pos, uint32_t star,
			uint32_t *ret)
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

int imap_seqset_parse(struct imap_seqset *set, const char *s, size_t len,
		      uint32_t star)
{
	struct imap_seqset tmp = { .max_ranges = max_ranges(set) };
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
		r = imap_seqset_add_range(&tmp, lo, hi);
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
		r = imap_seqset_add_range(set, tmp.r[i].lo, tmp.r[i].hi);
		if (r < 0)
			break;
	}
	imap_seqset_free(&tmp);
	return r < 0 ? r : 0;

fail:
	imap_seqset_free(&tmp);
	return r;
}

static int format_range(const struct imap_range *r, char *p, size_t size)
{
	if (r->lo == r->hi)
		return snprintf(p, size, "%u", r->lo);
	return snprintf(p, size, "%u:%u", r->lo, r->hi);
}

int imap_seqset_format(const struct imap_seqset *set, size_t *pos,
		       struct buf *out, size_t max_bytes)
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
