/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* How a string argument goes on the wire: atom, quoted string or literal. */

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

enum imap_str_form {
	IMAP_STR_ATOM,	 /* non-empty ASTRING-CHARs, and not "NIL" */
	IMAP_STR_QUOTED, /* printable (UTF-8 too when utf8_ok), no CR/LF/NUL, < 1024 bytes */
	IMAP_STR_LITERAL,
};

#define IMAP_QUOTED_MAX 1024

enum imap_str_form imap_str_form(const char *s, size_t len, bool utf8_ok);
/* Appends "s" with \ and " escaped. */
int imap_append_quoted(struct buf *out, const char *s, size_t len);
/* Appends s as an atom or quoted string; -EINVAL if it needs a literal. */
int imap_append_atom_or_quoted(struct buf *out, const char *s, size_t len, bool utf8_ok);
