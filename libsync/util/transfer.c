/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Content-Transfer-Encoding decoding (util/transfer.h), RFC 2045 6.7, 6.8.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "util/transfer.h"

int transfer_encoding_of(const char *name, enum transfer_encoding *ret)
{
	*ret = TRANSFER_IDENTITY;
	if (!*name || !strcasecmp(name, "7bit") || !strcasecmp(name, "8bit") ||
	    !strcasecmp(name, "binary"))
		return 0;
	if (!strcasecmp(name, "base64")) {
		*ret = TRANSFER_BASE64;
		return 0;
	}
	if (!strcasecmp(name, "quoted-printable")) {
		*ret = TRANSFER_QP;
		return 0;
	}
	return -EINVAL;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

int transfer_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int transfer_base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* A base64 digit's value + 1, by byte; 0 for a byte that is not one. */
static const uint8_t base64_digit[256] = {
	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,
	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  63,
	0,  0,	0,  64, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 0,  0,	0,  0,	0,  0,	0,  1,
	2,  3,	4,  5,	6,  7,	8,  9,	10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
	24, 25, 26, 0,	0,  0,	0,  0,	0,  27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39,
	40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 0,	0,  0,	0,  0,	0,  0,	0,  0,
	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,
	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,
	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,
	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,
	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,
	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,
};

int transfer_decode(enum transfer_encoding encoding, const char *data, size_t len, struct buf *out)
{
	char chunk[16384];
	size_t n = 0;
	int r = 0;

	if (encoding == TRANSFER_IDENTITY)
		return buf_append(out, data, len);
	if (encoding == TRANSFER_BASE64) {
		const unsigned char *p = (const unsigned char *)data, *end = p + len;
		uint32_t acc = 0;
		int bits = 0;
		/* The output at once (a 12 MB image is 16 MB of base64): no
		 * copies as the buffer grows.  Only a hint: max still holds. */
		size_t room = out->max > out->len ? out->max - out->len : 0;

		(void)buf_reserve(out, len / 4 * 3 + 3 < room ? len / 4 * 3 + 3 : room);
		while (p < end) {
			/* Four digits at a time while there are (almost all of
			 * a line); one at a time around line breaks, what is
			 * skipped and the end. */
			while (bits == 0 && end - p >= 4 && n + 3 <= sizeof(chunk)) {
				uint32_t a = base64_digit[p[0]], b = base64_digit[p[1]],
					 c = base64_digit[p[2]], d = base64_digit[p[3]];

				if (!a || !b || !c || !d)
					break;
				acc = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
				chunk[n++] = (char)(acc >> 16);
				chunk[n++] = (char)(acc >> 8);
				chunk[n++] = (char)acc;
				p += 4;
			}
			if (n + 3 > sizeof(chunk)) {
				r = buf_append(out, chunk, n);
				n = 0;
				if (r < 0)
					return r;
			}
			if (p == end || *p == '=')
				break;
			if (!base64_digit[*p]) {
				p++; /* line breaks, and what does not belong */
				continue;
			}
			acc = (acc << 6) | (uint32_t)(base64_digit[*p++] - 1);
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				chunk[n++] = (char)((acc >> bits) & 0xff);
			}
		}
		return n ? buf_append(out, chunk, n) : 0;
	}
	for (size_t i = 0; i < len; i++) {
		char c = data[i];

		if (c == '=') {
			if (i + 2 < len && transfer_hex_value(data[i + 1]) >= 0 &&
			    transfer_hex_value(data[i + 2]) >= 0) {
				c = (char)(transfer_hex_value(data[i + 1]) * 16 +
					   transfer_hex_value(data[i + 2]));
				i += 2;
			} else {
				/* a soft line break: "=" (white space) CRLF */
				size_t k = i + 1;

				while (k < len && is_wsp(data[k]))
					k++;
				if (k < len && data[k] == '\r')
					k++;
				if (k < len && data[k] == '\n') {
					i = k;
					continue;
				}
				if (k >= len) {
					i = k;
					continue;
				}
			}
		}
		chunk[n++] = c;
		if (n == sizeof(chunk)) {
			r = buf_append(out, chunk, n);
			n = 0;
			if (r < 0)
				return r;
		}
	}
	return n ? buf_append(out, chunk, n) : 0;
}
