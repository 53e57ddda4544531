/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Base64 (RFC 4648, with padding) through OpenSSL. */

#include <stddef.h>

/* *ret: NUL-terminated, malloc'ed. */
int base64_encode(const void *data, size_t len, char **ret);
/* Strict: -EINVAL for anything but canonical padded base64.  *ret is
 * malloc'ed (and NUL-terminated for convenience); *ret_len its length. */
int base64_decode(const char *s, size_t len, void **ret, size_t *ret_len);
