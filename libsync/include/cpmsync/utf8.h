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

/*
 * Characters that must not reach a terminal, a log line or a folder name:
 * C0 controls and DEL, C1 controls (U+0080..U+009F), and the bidirectional
 * formatting characters (U+061C, U+200E, U+200F, U+202A..U+202E,
 * U+2066..U+2069).  The one rule of libcpmsync (folder names from the
 * server, escaped text) and of the D-Bus service (folder names given).
 */
bool cpmsync_text_unsafe_cp(uint32_t cp);

/*
 * The byte offset of the first unsafe character of s[0..n) (or of the
 * first byte that does not start a well-formed sequence: *ret_cp is then
 * UINT32_MAX), with its code point in *ret_cp (may be NULL); n when there
 * is none.
 */
size_t cpmsync_text_find_unsafe(const char *s, size_t n, uint32_t *ret_cp);

#ifdef __cplusplus
}
#endif
#endif
