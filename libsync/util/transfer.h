/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Content-Transfer-Encoding (RFC 2045 section 6): the one decoder of
 * base64 and quoted-printable bodies, lenient as mailers are (characters
 * outside the base64 alphabet are skipped, '=' ends base64 data; a '=' in
 * quoted-printable that starts no escape or soft line break stays), used by
 * the CPM parsers and the text previews; and the digit values that RFC 2047
 * encoded-words decode with too.
 */

#include <stddef.h>

#include "util/buf.h"

enum transfer_encoding { TRANSFER_IDENTITY, TRANSFER_BASE64, TRANSFER_QP };

/* The encoding a Content-Transfer-Encoding value names, in any case: ""
 * (none given), 7bit, 8bit and binary are the identity.  -EINVAL for
 * another value (*ret is then the identity, RFC 2045's default). */
int transfer_encoding_of(const char *name, enum transfer_encoding *ret);

/* data decoded per encoding, appended to out (bounded by out's max: -E2BIG
 * past it; -ENOMEM). */
int transfer_decode(enum transfer_encoding encoding, const char *data, size_t len, struct buf *out);

/* The value of a hex digit (either case), of a base64 character; -1 for
 * anything else. */
int transfer_hex_value(char c);
int transfer_base64_value(char c);
