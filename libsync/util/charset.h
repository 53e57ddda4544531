/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Text in a named charset (a MIME charset parameter, an RFC 2047
 * encoded-word's) to UTF-8, through iconv(3): the one converter of the
 * summary (msg-summary.c: Subject, From, To) and of the CPM snippet
 * (cpm-object.c).  Callers keep their own fast paths for UTF-8, US-ASCII
 * and ISO-8859-1 and come here for the others (windows-125x, KOI8-R,
 * ISO-2022-JP, Shift_JIS, Big5, GB2312/GBK, ISO-8859-x, UTF-16 ...).
 *
 * Input from anywhere: a byte sequence the charset does not have (or one
 * cut short at the end) becomes U+FFFD and the conversion goes on after
 * it; the output is bounded by the caller; nothing is read past the input.
 */

#include <iconv.h>
#include <stdbool.h>
#include <stddef.h>

struct buf;

/* Longest charset name accepted (the longest IANA name is 45). */
#define CHARSET_NAME_MAX 64

struct charset_conv {
	iconv_t cd;
	char name[CHARSET_NAME_MAX + 1];
};

/*
 * Opens a converter from the charset named by name[0..n) to UTF-8.  The
 * name must be a MIME charset name (letters, digits and "-_.:+()", at most
 * CHARSET_NAME_MAX bytes; an RFC 2231 "*language" suffix is dropped) that
 * iconv knows.  Returns 0, -EINVAL (not such a name, or unknown to
 * iconv) or -ENOMEM.  charset_conv_close() accepts one that failed.
 */
int charset_conv_open(struct charset_conv *c, const char *name, size_t n);
void charset_conv_close(struct charset_conv *c);
static inline void charset_conv_closep(struct charset_conv *c)
{
	charset_conv_close(c);
}
/* Is c open for name[0..n) (compared as charset_conv_open() reads it,
 * case-insensitively)? */
bool charset_conv_is(const struct charset_conv *c, const char *name, size_t n);

/*
 * Converts in[0..n) from the start of the charset's state (shift states
 * reset) and appends the UTF-8 to out, stopping at a character boundary
 * before out->len would pass max.  Returns 0, 1 if it stopped there, or
 * -ENOMEM (out may then hold part of the text).
 */
int charset_conv_run(struct charset_conv *c, const char *in, size_t n, struct buf *out, size_t max);

/* charset_conv_open(), _run() and _close() in one: 0, 1, -EINVAL, -ENOMEM. */
int charset_to_utf8(const char *name, size_t name_len, const char *in, size_t n, struct buf *out,
		    size_t max);
