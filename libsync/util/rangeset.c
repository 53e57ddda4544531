/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "util/rangeset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t max_ranges(const struct rangeset *set)
{
	return set->max_ranges ? set->max_ranges : RANGESET_DEFAULT_MAX;
}

void rangeset_init(struct rangeset *set)
{
	*set = RANGESET_INIT;
}

void rangeset_free(struct rangeset *set)
{
	free(set->r);
	set->r = NULL;
	set->n = 0;
	set->alloc = 0;
}

void rangeset_clear(struct rangeset *set)
{
	set->n = 0;
}

/* Makes room for one more range. */
static int grow(struct rangeset *set)
{
	size_t limit = max_ranges(set), want;
	struct range *r;

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
static size_t first_hi_ge(const struct rangeset *set, uint64_t v)
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
static size_t count_lo_le(const struct rangeset *set, uint64_t v)
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

int rangeset_add_range(struct rangeset *set, uint32_t lo, uint32_t hi)
{
	struct range *last;
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
		set->r[set->n++] = (struct range){ .lo = lo, .hi = hi };
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
		memmove(&set->r[i + 1], &set->r[i], (set->n - i) * sizeof(set->r[0]));
		set->r[i] = (struct range){ .lo = lo, .hi = hi };
		set->n++;
		return 0;
	}
	if (set->r[i].lo < lo)
		lo = set->r[i].lo;
	if (set->r[j - 1].hi > hi)
		hi = set->r[j - 1].hi;
	set->r[i] = (struct range){ .lo = lo, .hi = hi };
	memmove(&set->r[i + 1], &set->r[j], (set->n - j) * sizeof(set->r[0]));
	set->n -= j - i - 1;
	return 0;
}

int rangeset_remove_range(struct rangeset *set, uint32_t lo, uint32_t hi)
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
		memmove(&set->r[i + 1], &set->r[i], (set->n - i) * sizeof(set->r[0]));
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
		memmove(&set->r[i], &set->r[j], (set->n - j) * sizeof(set->r[0]));
		set->n -= j - i;
	}
	return 0;
}

bool rangeset_contains(const struct rangeset *set, uint32_t v)
{
	size_t i;

	if (v == 0)
		return false;
	i = first_hi_ge(set, v);
	return i < set->n && set->r[i].lo <= v;
}

uint64_t rangeset_count(const struct rangeset *set)
{
	uint64_t total = 0;

	for (size_t i = 0; i < set->n; i++)
		total += (uint64_t)set->r[i].hi - set->r[i].lo + 1;
	return total;
}
