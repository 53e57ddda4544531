/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_MESSAGE_H
#define CPMSYNC_MESSAGE_H

/*
 * Reading parts of a stored RFC 5322 / MIME message, so that Fetch with a
 * section is answered from the local store.
 */

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Deepest part nesting and longest section spec accepted. */
#define CPMSYNC_SECTION_MAX_DEPTH 32
#define CPMSYNC_SECTION_MAX_LEN	  128

/*
 * Finds an IMAP section (RFC 3501 6.4.5 BODY[section], without the
 * brackets) in a message: "" (everything), "HEADER", "TEXT", "MIME" is
 * refused at the top level, "1", "1.2", "2.MIME", "3.HEADER", "3.TEXT"
 * (part 3 a message/rfc822).  Part numbering follows RFC 3501: a
 * non-multipart message has part 1 (its body); a part's content excludes
 * its MIME header and, for a multipart, is everything between the
 * boundaries.  Matching of section keywords is case-insensitive.
 *
 * On success returns 0 and the byte range in *ret_off / *ret_len.
 * -EINVAL for a malformed section spec, -CPMSYNC_E_NOT_FOUND for a part
 * that the message does not have, -CPMSYNC_E_PROTOCOL for a message nested
 * deeper than CPMSYNC_SECTION_MAX_DEPTH.
 */
int cpmsync_message_section(const char *data, size_t len, const char *section, size_t *ret_off,
			    size_t *ret_len);

#ifdef __cplusplus
}
#endif
#endif
