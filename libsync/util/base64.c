/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "util/base64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

int base64_encode(const void *data, size_t len, char **ret)
{
	size_t n;
	char *out;

	if (len > (size_t)INT32_MAX / 2)
		return -E2BIG;
	n = 4 * ((len + 2) / 3);
	out = malloc(n + 1);
	if (!out)
		return -ENOMEM;
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	out[n] = '\0';
	*ret = out;
	return 0;
}

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* The value of a base64 digit (is_b64(c) holds). */
static unsigned b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (unsigned)(c - 'a') + 26;
	if (c >= '0' && c <= '9')
		return (unsigned)(c - '0') + 52;
	return c == '+' ? 62 : 63;
}

int base64_decode(const char *s, size_t len, void **ret, size_t *ret_len)
{
	size_t pad = 0, n;
	unsigned char *out;
	int m;

	if (len % 4 != 0 || len > (size_t)INT32_MAX / 2)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '=' && i >= len - 2) {
			pad++;
			continue;
		}
		if (pad || !is_b64(s[i]))
			return -EINVAL;
	}
	/* Canonical: the bits the padding leaves over are zero ("Zg==",
	 * not "Zh=="). */
	if (pad && (b64_value(s[len - pad - 1]) & (pad == 2 ? 0x0f : 0x03)))
		return -EINVAL;
	out = malloc(len / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	m = len ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)len) : 0;
	if (m < 0 || (size_t)m < pad) {
		free(out);
		return -EINVAL;
	}
	n = (size_t)m - pad; /* EVP_DecodeBlock counts the padding too */
	out[n] = '\0';
	*ret = out;
	*ret_len = n;
	return 0;
}
