/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * IMAP sequence-set syntax (RFC 9051 "sequence-set") over the range sets
 * of util/rangeset.h.
 */

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/rangeset.h"

/*
 * The names before the range set moved to util/: engine/ still uses them
 * and switches to the rangeset_* names in its own change.  Nothing else
 * should; remove these then.
 */
#define imap_seqset		 rangeset
#define imap_range		 range
#define IMAP_SEQSET_DEFAULT_MAX	 RANGESET_DEFAULT_MAX
#define IMAP_SEQSET_INIT	 RANGESET_INIT
#define imap_seqset_init	 rangeset_init
#define imap_seqset_free	 rangeset_free
#define imap_seqset_clear	 rangeset_clear
#define imap_seqset_add_range	 rangeset_add_range
#define imap_seqset_add		 rangeset_add
#define imap_seqset_remove_range rangeset_remove_range
#define imap_seqset_contains	 rangeset_contains
#define imap_seqset_count	 rangeset_count
#define imap_seqset_empty	 rangeset_empty

/*
 * Parses an IMAP sequence-set ("1:3,5,7:*"), adding to set.  "*" stands
 * for star (the largest UID or message number); star == 0 refuses "*".
 * Reversed ranges ("5:3") are fine.  Refused with -CPMSYNC_E_PROTOCOL: an
 * empty text or element, 0, leading zeros, numbers above 2^32-1, spaces
 * or any other character.  Also -E2BIG, -ENOMEM.  On failure the set is
 * unchanged (except after -E2BIG/-ENOMEM while merging into a non-empty
 * set, when part of the text may have been added).
 */
int imap_seqset_parse(struct rangeset *set, const char *s, size_t len, uint32_t star);

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
int imap_seqset_format(const struct rangeset *set, size_t *pos, struct buf *out, size_t max_bytes);
