/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The canonical form of a message (RFC 5322 / MIME, Message/CPIM inside):
 * what stays the same when an app writes the same object again in another
 * encoding, so that a retry of StoreObject is known for one whatever its
 * bytes (store-ops.c same_object()).  Two messages have the same form
 * when they differ only in
 *  - line ends (CRLF, LF), and line ends at the end of a text part;
 *  - header folding and runs of white space in field values, the case of
 *    field names, the order of the fields of one header;
 *  - Content-Transfer-Encoding (7bit, 8bit, binary, quoted-printable,
 *    base64: the decoded content counts), of any part;
 *  - multipart boundaries, quoting of Content-Type parameters and the case
 *    of its type, subtype and parameter names; preamble and epilogue.
 * Anything else (a field's value, the text, an attachment's bytes, the
 * parts and their order) makes another form.  Message/CPIM bodies (RFC
 * 3862: a header block, then a MIME entity) and message/rfc822 ones are
 * taken apart the same way, to MSG_CANON_DEPTH levels.
 *
 * msg_canon() appends the form of data to out (bounded by out's max:
 * -E2BIG past it; -ENOMEM).  The form is for comparing, not for reading.
 */

#include <stddef.h>

#include "util/buf.h"

#define MSG_CANON_DEPTH 8

int msg_canon(const char *data, size_t len, struct buf *out);
