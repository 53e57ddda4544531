/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "imap/imap-utf7.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/utf8.h>

#include "util/text.h"
#include "util/transfer.h"

static const char mb64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static bool is_printable(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

/* Modified BASE64 (RFC 3501 5.1.3): base64 with ',' in place of '/'. */
static int mb64_value(unsigned char c)
{
	if (c == ',')
		return 63;
	return c == '/' ? -1 : transfer_base64_value((char)c);
}

/* Restores out to its length on entry. */
static void buf_truncate(struct buf *out, size_t len)
{
	out->len = len;
	if (out->data)
		out->data[len] = '\0';
}

/* Checks that s is valid UTF-8 without U+0000. */
static int utf8_validate(const char *s, size_t len)
{
	if (!cpmsync_utf8_valid(s, len) || memchr(s, '\0', len))
		return -EINVAL;
	return 0;
}

/* Appends cp, which the caller checked is no surrogate and <= U+10FFFF. */
static int utf8_append(struct buf *out, uint32_t cp)
{
	char t[4];

	return buf_append(out, t, cpmsync_utf8_encode(cp, t));
}

/* Decodes the base64 run starting at in[*i] (after "&") up to its "-". */
static int decode_run(const char *in, size_t len, size_t *i, struct buf *out)
{
	uint32_t bits = 0, high = 0;
	unsigned nbits = 0;
	int r;

	for (;;) {
		unsigned char c;
		uint32_t u;
		int v;

		if (*i >= len)
			return -EINVAL; /* unterminated */
		c = (unsigned char)in[(*i)++];
		if (c == '-')
			break;
		v = mb64_value(c);
		if (v < 0)
			return -EINVAL;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		u = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		if (high) {
			if (u < 0xdc00 || u > 0xdfff)
				return -EINVAL;
			r = utf8_append(out, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00));
			high = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
			continue;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return -EINVAL;
		} else if (u == 0 || (u >= 0x20 && u <= 0x7e)) {
			return -EINVAL; /* must be written as itself */
		} else {
			r = utf8_append(out, u);
		}
		if (r < 0)
			return r;
	}
	if (high || nbits >= 6 || bits != 0)
		return -EINVAL;
	return 0;
}

int imap_utf7_to_utf8(const char *in, size_t len, struct buf *out)
{
	size_t start = out->len, i = 0;
	int r = 0;

	while (i < len) {
		unsigned char c = (unsigned char)in[i++];

		if (!is_printable(c)) {
			r = -EINVAL;
			break;
		}
		if (c != '&') {
			r = buf_append_char(out, (char)c);
		} else if (i < len && in[i] == '-') {
			i++;
			r = buf_append_char(out, '&');
		} else {
			r = decode_run(in, len, &i, out);
		}
		if (r < 0)
			break;
	}
	if (r < 0)
		buf_truncate(out, start);
	return r;
}

static int put_unit(struct buf *out, uint32_t u, uint32_t *bits, unsigned *nbits)
{
	int r;

	*bits = (*bits << 16) | u;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		r = buf_append_char(out, mb64[(*bits >> *nbits) & 0x3f]);
		if (r < 0)
			return r;
	}
	*bits &= (1u << *nbits) - 1;
	return 0;
}

/* Encodes the run of non-printable characters at in[*i] as "&...-". */
static int encode_run(const char *in, size_t len, size_t *i, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	uint32_t bits = 0;
	unsigned nbits = 0;
	int r;

	r = buf_append_char(out, '&');
	if (r < 0)
		return r;
	while (*i < len && !is_printable(p[*i])) {
		uint32_t cp;

		size_t k = cpmsync_utf8_decode(in + *i, len - *i, &cp);

		if (k == 0 || cp == 0)
			return -EINVAL;
		*i += k;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			r = put_unit(out, 0xd800 | (cp >> 10), &bits, &nbits);
			if (r >= 0)
				r = put_unit(out, 0xdc00 | (cp & 0x3ff), &bits, &nbits);
		} else {
			r = put_unit(out, cp, &bits, &nbits);
		}
		if (r < 0)
			return r;
	}
	if (nbits) {
		r = buf_append_char(out, mb64[(bits << (6 - nbits)) & 0x3f]);
		if (r < 0)
			return r;
	}
	return buf_append_char(out, '-');
}

int imap_utf8_to_utf7(const char *in, size_t len, struct buf *out)
{
	size_t start = out->len, i = 0;
	int r = 0;

	while (i < len) {
		unsigned char c = (unsigned char)in[i];

		if (c == '&') {
			r = buf_append(out, "&-", 2);
			i++;
		} else if (is_printable(c)) {
			r = buf_append_char(out, (char)c);
			i++;
		} else {
			r = encode_run(in, len, &i, out);
		}
		if (r < 0)
			break;
	}
	if (r < 0)
		buf_truncate(out, start);
	return r;
}

static bool delimiter_ok(char delimiter, bool utf8_mode)
{
	unsigned char d = (unsigned char)delimiter;

	if (d == 0)
		return true;
	if (!is_printable(d))
		return false;
	return utf8_mode || d != '&';
}

static bool is_inbox(const char *s, size_t len)
{
	return len == 5 && strncasecmp(s, "INBOX", 5) == 0;
}

/*
 * Copies text to out level by level: levels are split at from (none when
 * from is 0), joined with to; an empty level is refused, a level holding
 * bad (when not 0) is refused, a first level "inbox" becomes "INBOX".
 */
static int map_levels(const char *s, size_t len, char from, char to, char bad, struct buf *out)
{
	size_t i = 0;
	bool first = true;
	int r;

	if (len == 0)
		return -EINVAL;
	for (;;) {
		const char *end = from ? memchr(s + i, from, len - i) : NULL;
		size_t n = (end ? (size_t)(end - s) : len) - i;

		if (n == 0)
			return -EINVAL;
		if (bad && memchr(s + i, bad, n))
			return -EINVAL;
		if (first && is_inbox(s + i, n)) {
			/* A delimiter such as 'N' would split "INBOX". */
			if ((from && memchr("INBOX", from, 5)) || (to && memchr("INBOX", to, 5)))
				return -EINVAL;
			r = buf_append(out, "INBOX", 5);
		} else {
			r = buf_append(out, s + i, n);
		}
		if (r < 0)
			return r;
		if (!end)
			return 0;
		r = buf_append_char(out, to);
		if (r < 0)
			return r;
		i += n + 1;
		first = false;
	}
}

int imap_mailbox_to_utf8(const char *name, size_t len, char delimiter, bool utf8_mode,
			 struct buf *out)
{
	_cleanup_buf_ struct buf tmp = BUF_INIT(out->max);
	size_t start = out->len;
	int r;

	if (!delimiter_ok(delimiter, utf8_mode))
		return -EINVAL;
	if (utf8_mode) {
		r = utf8_validate(name, len);
		if (r >= 0)
			r = buf_append(&tmp, name, len);
	} else {
		r = imap_utf7_to_utf8(name, len, &tmp);
	}
	if (r < 0)
		return r;
	/* A literal '/' would read as a level separator. */
	if (delimiter != '/' && tmp.len && memchr(tmp.data, '/', tmp.len))
		return -EINVAL;
	/* A name that would rewrite a terminal or a log line is not stored. */
	if (text_has_unsafe(tmp.data ? tmp.data : "", tmp.len))
		return -EILSEQ;
	r = map_levels(tmp.data, tmp.len, delimiter, '/', 0, out);
	if (r < 0)
		buf_truncate(out, start);
	return r;
}

int imap_mailbox_from_utf8(const char *name, size_t len, char delimiter, bool utf8_mode,
			   struct buf *out)
{
	_cleanup_buf_ struct buf tmp = BUF_INIT(out->max);
	size_t start = out->len;
	int r;

	if (!delimiter_ok(delimiter, utf8_mode))
		return -EINVAL;
	r = utf8_validate(name, len);
	if (r < 0)
		return r;
	/* The other direction refuses these: a folder made with one would
	 * come back from LIST unreadable, and look deleted. */
	if (text_has_unsafe(name, len))
		return -EILSEQ;
	if (delimiter == 0) {
		/* Flat: one level, so no '/' at all. */
		if (len && memchr(name, '/', len))
			return -EINVAL;
		r = map_levels(name, len, 0, 0, 0, &tmp);
	} else {
		r = map_levels(name, len, '/', delimiter, delimiter == '/' ? 0 : delimiter, &tmp);
	}
	if (r < 0)
		return r;
	if (utf8_mode)
		r = buf_append(out, tmp.data, tmp.len);
	else
		r = imap_utf8_to_utf7(tmp.data, tmp.len, out);
	if (r < 0)
		buf_truncate(out, start);
	return r;
}
