/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * CONVERT (RFC 5259): what the session needs to ask a server for a
 * converted body part and to recognise the answer.
 *
 *   C: a5 UID CONVERT 42 ("image/jpeg" ("pix-x" "160" "pix-y" "120")) BINARY[2]
 *   S: * 7 CONVERTED (TAG "a5") (UID 42 BINARY[2] ~{1844}
 *   S: <1844 bytes>)
 *   S: a5 OK CONVERT completed
 *
 * The converted part comes as a literal (literal8 or not) after the
 * BINARY[section] item of a CONVERTED response; it is streamed like a
 * FETCH body (imap_parser_callbacks.literal_begin: name "CONVERTED", item
 * "BINARY[2]").  A part the server could not convert has NIL there (no
 * literal) or the command ends in NO (e.g. [TEMPFAIL], [MAXCONVERTPARTS n],
 * RFC 5259 section 9).
 */

#include <stdbool.h>
#include <stdint.h>

struct imap_cmd;

/*
 * Appends "UID CONVERT uid (\"type\" (\"pix-x\" \"W\" \"pix-y\" \"H\"))
 * BINARY[section]" to cmd.  type is a media type (type/subtype of RFC 2045
 * token characters); section a part number ("2", "1.3"; "" is taken as
 * "1", the body of a single-part message, since BINARY[] would be the
 * whole message).  -EINVAL for anything else.
 */
int imap_cmd_add_convert(struct imap_cmd *cmd, uint32_t uid, const char *type, uint32_t width,
			 uint32_t height, const char *section);

/* Whether a literal starting in response name at item is the converted
 * part of a CONVERTED response ("CONVERTED", "BINARY[...]"). */
bool imap_convert_is_part(const char *name, const char *item);
