/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What a stored object is, as a CPM object (contract "CPM objects and
 * conversations"; spec-notes 5.2): its Type, and what the conversation
 * view needs from its body.  Called by msg_summary_parse() once the outer
 * header fields are read; the body is optional (header-only fetches).
 *
 * Type, from the outer Content-Type and, for Message/CPIM (RFC 3862), the
 * content type inside it:
 *   application/x-cpm-session                   session-info
 *   application/group-state-object+xml          group-state
 *   multipart/related; type=application/x-cpm-file-transfer, or
 *   application/vnd.gsma.rcs-ft-http+xml (outer or in CPIM)
 *                                               file-transfer
 *   message/imdn+xml (outer or in CPIM)         imdn
 *   image/ audio/ video/ (in CPIM, or outer on a CPM object)
 *                                               media
 *   Message/CPIM otherwise, or text/ or multipart/ on a CPM object
 *   (one with Conversation-ID, Contribution-ID or Message-Context)
 *                                               message
 *   anything else                               mail
 *
 * Snippet: the first CPM_SNIPPET_CHARS characters of the text (the CPIM
 * content, a text/plain SMS, the first text/plain part of an MMS), with
 * its Content-Transfer-Encoding (7bit, 8bit, binary, base64,
 * quoted-printable) and charset (UTF-8, US-ASCII, ISO-8859-1,
 * windows-1252, UTF-16 with or without BOM here; any other iconv knows,
 * KOI8-R, Shift_JIS, ISO-2022-JP ..., through util/charset.h, a sequence
 * it does not have as U+FFFD) decoded to UTF-8, whitespace (Unicode
 * White_Space: NBSP, U+3000 ...) and a byte order mark trimmed at both
 * ends, control characters (line breaks included) as spaces.  At most
 * CPM_TEXT_MAX bytes of encoded text are decoded.
 * An unknown charset or transfer encoding leaves the snippet empty and
 * says so in error; text declared UTF-8 that is not is read as
 * ISO-8859-1 and named in error.
 */

#include <stddef.h>

struct msg_summary;

#define CPM_SNIPPET_CHARS 200
#define CPM_TEXT_MAX	  (16u * 1024)
/* MIME parts looked at in a multipart body (MMS, CPM file transfer). */
#define CPM_MAX_PARTS 16

/*
 * Sets s->type and the CPM fields of s (direction normalised, context
 * lower-cased, peer, sender, snippet, imdn_ref, status, participants, file_*,
 * error) from the header values already in s (from, to, direction,
 * context, conversation_id ...), ct and cte (the outer Content-Type and
 * Content-Transfer-Encoding values, "" if absent) and body (NULL/0 when
 * only the header is at hand).  Returns 0 or -ENOMEM (then the fields may
 * be partly set; msg_summary_free() frees them).
 */
int cpm_object_classify(struct msg_summary *s, const char *ct, const char *cte, const char *body,
			size_t body_len);

/*
 * Whether s may be filed as a CPM object (Account1.StoreObject, the
 * outbox): 0, or -EINVAL with *ret_error (malloc()ed) naming what is
 * wrong: neither Conversation-ID nor Message-Context; a session-info or
 * group-state object without Contribution-ID; a Message-Direction other
 * than sent/received; anything the parse put in s->error.
 */
int cpm_object_check(const struct msg_summary *s, char **ret_error);

/*
 * The precedence of an IMDN disposition for Status (contract: displayed >
 * delivered > a failure > ""): 3 displayed, 2 delivered, 1 failed,
 * forbidden or error, 0 anything else (processed, stored, "").
 */
int cpm_status_rank(const char *status);
