/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "imap/imap-quote.h"

#include <errno.h>
#include <strings.h>

/* ASTRING-CHAR (RFC 3501): ATOM-CHAR or "]". */
static bool is_astring_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(':
	case ')':
	case '{':
	case '%':
	case '*':
	case '"':
	case '\\':
		return false;
	default:
		return true;
	}
}

enum imap_str_form imap_str_form(const char *s, size_t len, bool utf8_ok)
{
	bool atom = len > 0;

	if (len >= IMAP_QUOTED_MAX)
		return IMAP_STR_LITERAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0' || c == '\r' || c == '\n')
			return IMAP_STR_LITERAL;
		if (c >= 0x80 && !utf8_ok)
			return IMAP_STR_LITERAL;
		if (c < 0x20 || c == 0x7f)
			return IMAP_STR_LITERAL;
		if (!is_astring_char(c))
			atom = false;
	}
	if (atom && len == 3 && strncasecmp(s, "NIL", 3) == 0)
		atom = false;
	return atom ? IMAP_STR_ATOM : IMAP_STR_QUOTED;
}

int imap_append_quoted(struct buf *out, const char *s, size_t len)
{
	int r = buf_append_char(out, '"');

	for (size_t i = 0; r >= 0 && i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			r = buf_append_char(out, '\\');
		if (r >= 0)
			r = buf_append_char(out, s[i]);
	}
	if (r >= 0)
		r = buf_append_char(out, '"');
	return r;
}

int imap_append_atom_or_quoted(struct buf *out, const char *s, size_t len, bool utf8_ok)
{
	switch (imap_str_form(s, len, utf8_ok)) {
	case IMAP_STR_ATOM:
		return buf_append(out, s, len);
	case IMAP_STR_QUOTED:
		return imap_append_quoted(out, s, len);
	default:
		return -EINVAL;
	}
}
