/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The summary of a message, read from its header block (RFC 5322): what
 * the store keeps per message and the contract's summary dict shows.
 *
 * Used by local Store operations (the whole message is at hand) and by the
 * sync engine (the header block arrives at the start of BODY[] or as
 * BODY[HEADER]).  The input may be the whole message or only its header,
 * possibly truncated at MSG_SUMMARY_MAX_HEADER bytes; parsing stops at the
 * first empty line.  Never fails on malformed input: what cannot be read is
 * left empty.
 */

#include <stddef.h>
#include <stdint.h>

/* Header bytes looked at, at most. */
#define MSG_SUMMARY_MAX_HEADER (256u * 1024)
/* Longest value kept per field (longer ones are cut at a UTF-8 boundary). */
#define MSG_SUMMARY_MAX_FIELD 4096

struct msg_summary {
	/* Values unfolded (CRLF + WSP -> the WSP), leading and trailing
	 * whitespace removed, otherwise "as they stand"; "" when absent.
	 * All allocated. */
	char *message_id;
	char *subject; /* RFC 2047 encoded-words decoded to UTF-8 when the
			* charset is UTF-8, US-ASCII or ISO-8859-1 */
	char *from;    /* the From header value */
	char *to;      /* the addresses of To (and Cc), one per '\n'-separated line */
	char *conversation_id;
	char *contribution_id;
	char *imdn_message_id;
	const char *type; /* static: "message", "session-history",
			   * "conversation-history" or "file-transfer" */
	int64_t date;	  /* Date header as Unix time, 0 if absent/unreadable */
};

/*
 * Fills *ret from the header at data (len bytes).  Returns 0 or -ENOMEM
 * (then *ret holds nothing to free).
 */
int msg_summary_parse(const void *data, size_t len, struct msg_summary *ret);
void msg_summary_free(struct msg_summary *s);

/*
 * Length of the header block at data: the offset just past the empty line
 * ending it ("\r\n\r\n" or "\n\n"), or 0 if the block does not end within
 * len bytes.
 */
size_t msg_header_length(const void *data, size_t len);

/* RFC 5322 date-time ("Tue, 1 Jul 2003 10:52:37 +0200", obsolete forms and
 * comments tolerated) to Unix time; -EINVAL if unreadable. */
int msg_parse_date(const char *s, size_t len, int64_t *ret);
