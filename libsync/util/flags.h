/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Flag sets as the store keeps them: flags and keywords, space-separated,
 * no duplicates, sorted bytewise ("$Label \\Flagged \\Seen"); "" is the
 * empty set.  System flags are in their canonical case, \Recent never
 * appears (it is session state, not a flag we sync).  Flags compare
 * case-insensitively, as servers compare them (Dovecot and Cyrus take
 * "-FLAGS (urgent)" to remove Urgent): a set holds one spelling of each,
 * the first one added (the set's own before an addition's).
 *
 * Every function returning char ** allocates the result (free()); they
 * return 0, -ENOMEM, or -EINVAL for a malformed flag.
 */

#include <stdbool.h>
#include <stddef.h>

/* Longest flag or keyword we accept (bytes). */
#define FLAG_MAX_LEN 128

/*
 * true if s (len bytes) is a valid flag: a system flag (\Seen \Answered
 * \Flagged \Deleted \Draft, any case) or a keyword (an IMAP atom without
 * '\\', at most FLAG_MAX_LEN bytes).  \Recent and "\*" are not.
 */
bool flag_valid(const char *s, size_t len);

/* Builds a set from n flags (each NUL-terminated): canonical case, sorted,
 * deduplicated, \Recent dropped; -EINVAL if one is not flag_valid(). */
int flags_from_list(const char *const *flags, size_t n, char **ret);

/* true if set contains flag (in any case). */
bool flags_has(const char *set, const char *flag);

/* (set ∪ add) − remove.  add/remove are sets. */
int flags_apply(const char *set, const char *add, const char *remove, char **ret);

/* What turns from into to: add = to − from, remove = from − to. */
int flags_diff(const char *from, const char *to, char **ret_add, char **ret_remove);

/*
 * The three-way merge (dsync's rule): remote ∪ (local − base) − (base −
 * local).  Local additions and removals since base win over the remote
 * state for the flags they touch; every other flag follows remote.
 */
int flags_merge3(const char *base, const char *local, const char *remote, char **ret);

/* Number of flags in a set. */
size_t flags_count(const char *set);
