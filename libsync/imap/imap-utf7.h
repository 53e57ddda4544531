/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Mailbox names: modified UTF-7 (RFC 3501 section 5.1.3) and the mapping
 * between a server's hierarchy and ours.
 *
 * Our form of a mailbox name is UTF-8 with '/' between levels, no empty
 * level, and the top-level INBOX (any case on the server) spelt "INBOX".
 *
 * Every function appends to out and returns 0, -EINVAL for input it
 * refuses, or -E2BIG / -ENOMEM from the buffer.  On failure out is left as
 * it was on entry.  U+0000 is refused everywhere (names are C strings).
 */

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/*
 * Decodes modified UTF-7 to UTF-8.  Strict: -EINVAL for raw bytes outside
 * printable US-ASCII (0x20..0x7e, so raw 8-bit input too), an "&" with no
 * closing "-", a character outside the modified base64 alphabet inside
 * "&...-", leftover bits that are non-zero or make up a whole base64
 * character, an encoded printable US-ASCII character (including "&",
 * which must be "&-"), an unpaired surrogate (a pair may not be split
 * across two "&...-" runs) and U+0000.
 */
int imap_utf7_to_utf8(const char *in, size_t len, struct buf *out);

/*
 * Encodes UTF-8 as modified UTF-7: printable US-ASCII stands for itself,
 * "&" becomes "&-", every run of other characters becomes one "&...-"
 * (UTF-16BE in modified base64, zero padding bits).  -EINVAL for invalid
 * UTF-8 (truncated or overlong sequences, surrogates, beyond U+10FFFF)
 * and for U+0000.
 */
int imap_utf8_to_utf7(const char *in, size_t len, struct buf *out);

/*
 * Maps a mailbox name as the server sent it (LIST/LSUB/STATUS...) to our
 * form.  The name is decoded from modified UTF-7, or, when utf8_mode
 * (UTF8=ACCEPT enabled), only checked to be valid UTF-8.  Each delimiter
 * becomes '/'; delimiter 0 (NIL) means a flat namespace: no mapping.  The
 * top level "INBOX" in any case becomes "INBOX".  -EINVAL when the name
 * cannot be represented: a literal '/' in a name whose delimiter is not
 * '/' (including NIL), an empty name or empty level ("a..b", "a.", ".a"),
 * a delimiter that is not printable US-ASCII (or is "&" without
 * utf8_mode), or any decoding error above.  -EILSEQ when the decoded name
 * holds a control or bidi formatting character (util/text.h): such a name
 * cannot be shown safely, so it is refused rather than stored.  (And
 * imap_mailbox_from_utf8() refuses to send one, so that both directions
 * agree.)
 */
int imap_mailbox_to_utf8(const char *name, size_t len, char delimiter, bool utf8_mode,
			 struct buf *out);

/*
 * Maps our form of a mailbox name to the server's: '/' becomes the
 * delimiter, a top level "inbox" in any case becomes "INBOX", and the
 * result is encoded as modified UTF-7 unless utf8_mode.  -EINVAL for
 * invalid UTF-8 (or U+0000), an empty name or empty level, a level that
 * contains the server's delimiter (when it is not '/'), any '/' when the
 * delimiter is 0 (a flat namespace has one level), or a bad delimiter as
 * above.  -EILSEQ for a name with a control or bidi formatting character.
 */
int imap_mailbox_from_utf8(const char *name, size_t len, char delimiter, bool utf8_mode,
			   struct buf *out);
