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
