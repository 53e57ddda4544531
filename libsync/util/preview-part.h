/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What a preview needs to know about a body part, and the text preview
 * (libsync/engine/preview.c).  The input is a part as it stands in a
 * message: its MIME header block and its encoded content.  Everything is
 * bounded and never fails on malformed input: what cannot be read takes
 * the RFC 2045 defaults.
 */

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/transfer.h"

struct part_info {
	char type[160];	  /* "image/jpeg", lower case; "text/plain" by default */
	char charset[64]; /* the charset parameter, lower case; "" when none */
	enum transfer_encoding encoding;
};

/* Reads Content-Type and Content-Transfer-Encoding from a header block. */
void part_info_parse(const char *header, size_t len, struct part_info *ret);

/*
 * The text preview: data (already decoded from its transfer encoding) in
 * charset converted to UTF-8 (bytes that do not convert become U+FFFD;
 * "" and unknown charsets are read as UTF-8 with ISO-8859-1 for invalid
 * bytes), CRLF to LF, other control characters (but TAB) to a space, blank
 * lines at the start and trailing white space of lines dropped, then
 * wrapped at width characters into at most height lines.  text/html
 * (html true) loses its tags, comments, script and style contents first,
 * and its basic entities are decoded.
 */
int part_text_excerpt(const char *data, size_t len, const char *charset, int html, uint32_t width,
		      uint32_t height, struct buf *out);
