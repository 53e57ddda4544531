/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Sets of UIDs (or sequence numbers) as sorted, merged, non-overlapping
 * ranges, so that 100,000 consecutive UIDs cost one range.  Every set has
 * a maximum number of ranges; growing past it fails with -E2BIG (a
 * max_ranges of 0, as in a zeroed struct, means the default).  Adding in
 * ascending order (UIDs as FETCH responses bring them) is O(1) amortized;
 * other adds and removes are a binary search plus a memmove.  A failed
 * add or remove leaves the set as it was.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct imap_range {
	uint32_t lo, hi; /* inclusive, 1 <= lo <= hi */
};

struct imap_seqset {
	struct imap_range *r;
	size_t n;
	size_t alloc;
	size_t max_ranges;
};

#define IMAP_SEQSET_DEFAULT_MAX (1u << 20)
#define IMAP_SEQSET_INIT ((struct imap_seqset){ .max_ranges = IMAP_SEQSET_DEFAULT_MAX })

void imap_seqset_init(struct imap_seqset *set);
/* Frees the ranges; the set is left empty and usable (twice is harmless). */
void imap_seqset_free(struct imap_seqset *set);
/* Empties the set, keeping its memory. */
void imap_seqset_clear(struct imap_seqset *set);

/* Adds lo..hi (either order; 0 is invalid: -EINVAL), merging neighbours. */
int imap_seqset_add_range(struct imap_seqset *set, uint32_t lo, uint32_t hi);
static inline int imap_seqset_add(struct imap_seqset *set, uint32_t v)
{
	return imap_seqset_add_range(set, v, v);
}
/* Removes lo..hi (either order; 0: -EINVAL); splitting a range can need
 * one more range, so this too can fail with -E2BIG. */
int imap_seqset_remove_range(struct imap_seqset *set, uint32_t lo, uint32_t hi);

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t v);
/* Number of members. */
uint64_t imap_seqset_count(const struct imap_seqset *set);
static inline bool imap_seqset_empty(const struct imap_seqset *set)
{
	return set->n == 0;
}

/*
 * Parses an IMAP sequence-set ("1:3,5,7:*"), adding to set.  "*" stands
 * for star (the largest UID or message number); star == 0 refuses "*".
 * Reversed ranges ("5:3") are fine.  Refused with -CPMSYNC_E_PROTOCOL: an
 * empty text or element, 0, leading zeros, numbers above 2^32-1, spaces
 * or any other character.  Also -E2BIG, -ENOMEM.  On failure the set is
 * unchanged (except after -E2BIG/-ENOMEM while merging into a non-empty
 * set, when part of the text may have been added).
 */
int imap_seqset_parse(struct imap_seqset *set, const char *s, size_t len,
		      uint32_t star);

/*
 * Appends ranges starting at index *pos as compressed IMAP syntax
 * ("1:3,5,7:9") to out, stopping before the appended text would exceed
 * max_bytes (at least one range is always written, so a max_bytes below
 * 21 can be exceeded by a single range).  Advances *pos past what was
 * written; with nothing left (*pos >= set->n) it writes nothing and
 * returns 0.  -E2BIG when out is full: out and *pos are then unchanged.
 * A caller splits a long set into several commands:
 *   for (pos = 0; pos < set->n;) { imap_seqset_format(set, &pos, line, 8000); ... }
 */
int imap_seqset_format(const struct imap_seqset *set, size_t *pos,
		       struct buf *out, size_t max_bytes);
