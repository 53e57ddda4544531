/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "util/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/utf8.h>

bool cpmsync_text_unsafe_cp(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
	       cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t cpmsync_text_find_unsafe(const char *s, size_t n, uint32_t *ret_cp)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp = UINT32_MAX;
		size_t k = cpmsync_utf8_decode(s + i, n - i, &cp);

		if (k == 0 || cpmsync_text_unsafe_cp(cp)) {
			if (ret_cp)
				*ret_cp = k == 0 ? UINT32_MAX : cp;
			return i;
		}
		i += k;
	}
	return n;
}

bool text_unsafe_cp(uint32_t cp)
{
	return cpmsync_text_unsafe_cp(cp);
}

bool text_has_unsafe(const char *s, size_t len)
{
	return cpmsync_text_find_unsafe(s, len, NULL) < len;
}

/* The escaped form of s[0..] (one character), into e; returns its length
 * and the bytes of s it stands for in *ret_used. */
static size_t escape_one(const char *s, size_t n, char e[8], size_t *ret_used)
{
	uint32_t cp;
	size_t k = cpmsync_utf8_decode(s, n, &cp);

	if (k == 0) {
		*ret_used = 1;
		return (size_t)snprintf(e, 8, "\\x%02x", (unsigned char)s[0]);
	}
	*ret_used = k;
	if (!text_unsafe_cp(cp)) {
		memcpy(e, s, k);
		return k;
	}
	if (cp < 0x80)
		return (size_t)snprintf(e, 8, "\\x%02x", (unsigned)cp);
	return (size_t)snprintf(e, 8, "\\u%04x", (unsigned)cp);
}

char *text_escape(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src), o = 0;

	for (size_t i = 0; i < n;) {
		char e[8];
		size_t used, k = escape_one(src + i, n - i, e, &used);

		if (o + k >= size)
			break;
		memcpy(dst + o, e, k);
		o += k;
		i += used;
	}
	dst[o] = '\0';
	return dst;
}

char *text_escape_dup(const char *src)
{
	size_t n = strlen(src), need = 1;
	char *dst;

	for (size_t i = 0; i < n;) {
		char e[8];
		size_t used;

		need += escape_one(src + i, n - i, e, &used);
		i += used;
	}
	dst = malloc(need);
	return dst ? text_escape(dst, need, src) : NULL;
}

char *text_dup(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (!d)
		return NULL;
	if (n)
		memcpy(d, s, n);
	d[n] = '\0';
	return d;
}
