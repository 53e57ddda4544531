/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Charsets to UTF-8 through iconv(3) (see charset.h).
 */
#include "util/charset.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/utf8.h>

#include "util/buf.h"

/* The name as charset_conv_open() reads it: the RFC 2231 "*language"
 * suffix dropped.  Its length, or 0 when it is no MIME charset name. */
static size_t name_length(const char *name, size_t n)
{
	const char *star = n ? memchr(name, '*', n) : NULL;

	if (star)
		n = (size_t)(star - name);
	if (n == 0 || n > CHARSET_NAME_MAX)
		return 0;
	/* RFC 2978 mime-charset characters, less those iconv reads as
	 * options ('/', ','): nothing else reaches iconv_open(). */
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr("-_.:+()", ch)))
			return 0;
	}
	return n;
}

int charset_conv_open(struct charset_conv *c, const char *name, size_t n)
{
	c->cd = (iconv_t)-1;
	c->name[0] = '\0';
	n = name_length(name, n);
	if (n == 0)
		return -EINVAL;
	memcpy(c->name, name, n);
	c->name[n] = '\0';
	c->cd = iconv_open("UTF-8", c->name);
	if (c->cd == (iconv_t)-1) {
		c->name[0] = '\0';
		return errno == ENOMEM ? -ENOMEM : -EINVAL;
	}
	return 0;
}

void charset_conv_close(struct charset_conv *c)
{
	if (c->cd != (iconv_t)-1)
		iconv_close(c->cd);
	c->cd = (iconv_t)-1;
	c->name[0] = '\0';
}

bool charset_conv_is(const struct charset_conv *c, const char *name, size_t n)
{
	n = name_length(name, n);
	return c->cd != (iconv_t)-1 && n && strlen(c->name) == n &&
	       strncasecmp(c->name, name, n) == 0;
}

/* The bytes an invalid sequence is skipped by: a code unit. */
static size_t unit_of(const char *name)
{
	if (!strncasecmp(name, "utf-16", 6) || !strncasecmp(name, "utf16", 5) ||
	    !strncasecmp(name, "ucs-2", 5) || !strncasecmp(name, "ucs2", 4))
		return 2;
	if (!strncasecmp(name, "utf-32", 6) || !strncasecmp(name, "utf32", 5) ||
	    !strncasecmp(name, "ucs-4", 5) || !strncasecmp(name, "ucs4", 4))
		return 4;
	return 1;
}

static const char fffd[] = "\xef\xbf\xbd";

/*
 * Appends iconv's output (whole characters) as valid UTF-8: glibc's
 * decoders do not all check what they give (its UTF-8 passes code points
 * past U+10FFFF), so a sequence that is not UTF-8 becomes U+FFFD, a byte
 * at a time.  Returns 0, 1 when max would be passed, or -ENOMEM.
 */
static int append_valid(struct buf *out, const char *p, size_t n, size_t max)
{
	size_t i = 0;
	int r;

	while (i < n) {
		size_t j = i;

		while (j < n) {
			size_t k = cpmsync_utf8_decode(p + j, n - j, NULL);

			if (k == 0)
				break;
			j += k;
		}
		if (out->len + (j - i) > max)
			return 1;
		r = buf_append(out, p + i, j - i);
		if (r < 0)
			return r;
		if (j == n)
			break;
		if (out->len + 3 > max)
			return 1;
		r = buf_append(out, fffd, 3);
		if (r < 0)
			return r;
		i = j + 1;
	}
	return 0;
}

int charset_conv_run(struct charset_conv *c, const char *in, size_t n, struct buf *out, size_t max)
{
	char *ip = (char *)in;
	size_t left = n, unit = unit_of(c->name);
	int r;

	if (c->cd == (iconv_t)-1)
		return -EINVAL;
	iconv(c->cd, NULL, NULL, NULL, NULL); /* the initial shift state */
	for (;;) {
		char chunk[4096], *o = chunk;
		size_t room = out->len < max ? max - out->len : 0;
		size_t o_left = room < sizeof(chunk) ? room : sizeof(chunk), rc;
		bool flush = left == 0;
		int err;

		/* The input, then what a decoder may hold back to its end. */
		if (flush)
			rc = iconv(c->cd, NULL, NULL, &o, &o_left);
		else
			rc = iconv(c->cd, &ip, &left, &o, &o_left);
		err = rc == (size_t)-1 ? errno : 0;
		if (o != chunk) {
			r = append_valid(out, chunk, (size_t)(o - chunk), max);
			if (r != 0)
				return r;
		}
		if (err == E2BIG) {
			/* max is reached, or the chunk is full: on. */
			if (room <= sizeof(chunk) || o == chunk)
				return 1;
			continue;
		}
		if (!flush && (err == EILSEQ || err == EINVAL)) {
			/* A sequence the charset does not have, or one cut short
			 * at the end: U+FFFD for it, and on after it. */
			size_t skip = unit < left ? unit : left;

			if (out->len + 3 > max)
				return 1;
			r = buf_append(out, fffd, 3);
			if (r < 0)
				return r;
			ip += skip;
			left -= skip;
			continue;
		}
		if (flush || err)
			break;
	}
	return 0;
}

int charset_to_utf8(const char *name, size_t name_len, const char *in, size_t n, struct buf *out,
		    size_t max)
{
	struct charset_conv c;
	int r = charset_conv_open(&c, name, name_len);

	if (r == 0)
		r = charset_conv_run(&c, in, n, out, max);
	charset_conv_close(&c);
	return r;
}
