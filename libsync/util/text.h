/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Text from the server on its way to a log line, a terminal or D-Bus.
 *
 * Unsafe characters are those a terminal or a log reader acts on or that
 * change how the rest of the line reads: C0 controls (newline and ESC
 * included) and DEL, C1 controls (U+0080-U+009F), and the bidirectional
 * formatting characters (U+061C, U+200E, U+200F, U+202A-U+202E,
 * U+2066-U+2069).  Bytes that are not UTF-8 are unsafe too.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* cpmsync_text_unsafe_cp() (cpmsync/utf8.h), the one rule. */
bool text_unsafe_cp(uint32_t cp);
/* true when s[0..len) holds an unsafe character or is not UTF-8. */
bool text_has_unsafe(const char *s, size_t len);
/*
 * Copies the NUL-terminated src into dst (size > 0, always NUL-terminated)
 * with each unsafe character escaped: C0, DEL and bytes that are not UTF-8
 * as \xNN, C1 and bidi characters as \uNNNN; the rest as it is.  Cut to
 * fit, never inside a character or an escape.  Returns dst.
 */
char *text_escape(char *dst, size_t size, const char *src);
/* text_escape() into a malloc()ed string of the size it needs, or NULL. */
char *text_escape_dup(const char *src);
/*
 * The n bytes at s as a new NUL-terminated string, or NULL without memory.
 * s need not be NUL-terminated: unlike strndup(), nothing past s[n - 1] is
 * read (ASan's strict_string_checks, which make check runs with, reports
 * strndup() on a span that ends at its buffer's end).
 */
char *text_dup(const char *s, size_t n);
