/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Sets of UIDs (or sequence numbers) as sorted, merged, non-overlapping
 * ranges, so that 100,000 consecutive UIDs cost one range.  Every set has
 * a maximum number of ranges; growing past it fails with -E2BIG (a
 * max_ranges of 0, as in a zeroed struct, means the default).  Adding in
 * ascending order (UIDs as FETCH responses bring them) is O(1) amortized;
 * other adds and removes are a binary search plus a memmove.  A failed
 * add or remove leaves the set as it was.  The IMAP sequence-set syntax
 * (parse, format) is in imap/imap-seqset.h; this has none, so store/ can
 * use it without depending on imap/.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct range {
	uint32_t lo, hi; /* inclusive, 1 <= lo <= hi */
};

struct rangeset {
	struct range *r;
	size_t n;
	size_t alloc;
	size_t max_ranges;
};

#define RANGESET_DEFAULT_MAX (1u << 20)
#define RANGESET_INIT	     ((struct rangeset){ .max_ranges = RANGESET_DEFAULT_MAX })

void rangeset_init(struct rangeset *set);
/* Frees the ranges; the set is left empty and usable (twice is harmless). */
void rangeset_free(struct rangeset *set);
/* Empties the set, keeping its memory. */
void rangeset_clear(struct rangeset *set);

/* Adds lo..hi (either order; 0 is invalid: -EINVAL), merging neighbours. */
int rangeset_add_range(struct rangeset *set, uint32_t lo, uint32_t hi);
static inline int rangeset_add(struct rangeset *set, uint32_t v)
{
	return rangeset_add_range(set, v, v);
}
/* Removes lo..hi (either order; 0: -EINVAL); splitting a range can need
 * one more range, so this too can fail with -E2BIG. */
int rangeset_remove_range(struct rangeset *set, uint32_t lo, uint32_t hi);

bool rangeset_contains(const struct rangeset *set, uint32_t v);
/* Number of members. */
uint64_t rangeset_count(const struct rangeset *set);
static inline bool rangeset_empty(const struct rangeset *set)
{
	return set->n == 0;
}
