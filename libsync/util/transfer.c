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

int transfer_decode(enum transfer_encoding encoding, const char *data, size_t len, struct buf *out)
{
	char chunk[4096];
	size_t n = 0;
	int r = 0;

	if (encoding == TRANSFER_IDENTITY)
		return buf_append(out, data, len);
	if (encoding == TRANSFER_BASE64) {
		uint32_t acc = 0;
		int bits = 0;

		for (size_t i = 0; i < len && data[i] != '='; i++) {
			int v = transfer_base64_value(data[i]);

			if (v < 0)
				continue; /* line breaks, and what does not belong */
			acc = (acc << 6) | (uint32_t)v;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				chunk[n++] = (char)((acc >> bits) & 0xff);
				if (n == sizeof(chunk)) {
					r = buf_append(out, chunk, n);
					n = 0;
					if (r < 0)
						return r;
				}
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
