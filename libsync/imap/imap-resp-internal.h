/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Helpers shared by imap-resp.c and imap-resp-fetch.c; not an API. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/imap-resp.h"

/* Strict decimal: digits only, no sign, no overflow.  u32 allows up to
 * 2^32-1, u64 up to 2^63-1 (mod-sequence-value). */
bool imap_resp_str_u32(const char *s, size_t len, uint32_t *ret);
bool imap_resp_str_u64(const char *s, size_t len, uint64_t *ret);
/* An ATOM holding a number. */
int imap_resp_arg_u32(const struct imap_arg *a, uint32_t *ret);
int imap_resp_arg_u64(const struct imap_arg *a, uint64_t *ret);
/* NIL, STRING or LITERAL. */
int imap_resp_arg_nstring(const struct imap_arg *a, struct imap_nstr *ret);
/* ATOM, STRING or LITERAL. */
int imap_resp_arg_astring(const struct imap_arg *a, struct imap_nstr *ret);
/* An ATOM equal (case-insensitive) to s. */
bool imap_resp_atom_is(const struct imap_arg *a, const char *s);
/* resp is an untagged data response called name (case-insensitive). */
bool imap_resp_is(const struct imap_response *resp, const char *name);
