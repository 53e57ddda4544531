/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_UTF8_H
#define CPMSYNC_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The one UTF-8 decoder of libcpmsync and its programs (agent/, dbus/ may
 * use public headers only, so it is public).  Well-formed means RFC 3629:
 * no overlong forms, no surrogates (U+D800..U+DFFF), nothing past
 * U+10FFFF, no sequence cut short by the end of the input.
 */

/*
 * Decodes the sequence at s (n bytes available).  Returns its length
 * (1..4) and stores the code point in *ret_cp (when ret_cp is not NULL),
 * or returns 0 and leaves *ret_cp alone when n is 0 or the bytes at s do
 * not start a well-formed sequence.  U+0000 decodes (length 1).
 */
size_t cpmsync_utf8_decode(const char *s, size_t n, uint32_t *ret_cp);

/* true if s[0..n) is well-formed UTF-8 throughout (U+0000 included). */
bool cpmsync_utf8_valid(const char *s, size_t n);

/*
 * Encodes cp (at most U+10FFFF, not a surrogate) into out (room for 4
 * bytes).  Returns the length written, or 0 for a code point UTF-8 has no
 * form for.
 */
size_t cpmsync_utf8_encode(uint32_t cp, char out[4]);

#ifdef __cplusplus
}
#endif
#endif
