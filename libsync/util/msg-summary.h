/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The summary of a message, read from its header block (RFC 5322): what
 * the store keeps per message and the contract's summary dict shows.
 *
 * Used by local Store operations (the whole message is at hand) and by the
 * sync engine (the header block arrives at the start of BODY[] or as
 * BODY[HEADER]).  The input may be the whole message or only its header,
 * possibly truncated (MSG_SUMMARY_SCAN_HEADER bytes are searched).  The header ends at
 * the first empty line; what follows (at most MSG_SUMMARY_MAX_BODY bytes)
 * is read only for the CPM fields (cpm-object.h): the CPIM content type,
 * the snippet, the IMDN, session-info, group-state and FT bodies.  With
 * the header alone the CPM type comes from the outer Content-Type only (a
 * Message/CPIM is then a "message").  Never fails on malformed input: what
 * cannot be read is left empty (and named in error).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Header bytes searched for the fields, at most: the 1 MiB the sync
 * keeps of a header (ENGINE_BODY_MEM_MAX), so that a field after a huge
 * one (a Message-ID after a 320 KB To:) is found. */
#define MSG_SUMMARY_SCAN_HEADER (1024u * 1024)
/* Bytes of one field's value looked at, at most (the rest of a longer one
 * is passed over). */
#define MSG_SUMMARY_MAX_HEADER (256u * 1024)
/* Longest value kept per field (longer ones are cut at a UTF-8 boundary). */
#define MSG_SUMMARY_MAX_FIELD 4096
/* Body bytes looked at, at most, after the header (CPIM, XML, text). */
#define MSG_SUMMARY_MAX_BODY (256u * 1024)
/* What a caller with the whole message at hand (a local Store, a body
 * fetched on demand) reads of its start for the summary: the header
 * searched and the body after it. */
#define MSG_SUMMARY_READ (MSG_SUMMARY_SCAN_HEADER + MSG_SUMMARY_MAX_BODY)

struct msg_summary {
	/* Values unfolded (CRLF + WSP -> the WSP), leading and trailing
	 * whitespace removed, otherwise "as they stand"; "" when absent.
	 * All allocated. */
	char *message_id;
	char *subject; /* RFC 2047 encoded-words decoded to UTF-8 (any
			* charset iconv knows); one that cannot be decoded
			* stays as it is */
	char *from;    /* the From header value, the encoded-words of its
			* display names and comments decoded (not those in
			* quoted strings or addresses) */
	char *to;      /* the addresses of To (and Cc), one per '\n'-separated
			* line, decoded as From */
	char *conversation_id;
	char *contribution_id;
	char *imdn_message_id;
	int64_t date; /* Date header as Unix time, 0 if absent/unreadable */
	bool no_date; /* set when so: the store takes the internal date
		       * (false and date 0: 1970-01-01 00:00:00 UTC) */

	/*
	 * The CPM object (contract "CPM objects and conversations"; read by
	 * cpm-object.c from the headers and, when the input holds it, the
	 * body).  All allocated, "" when absent or not applicable.
	 */
	const char *type;   /* static: "message", "file-transfer", "media",
			     * "session-info", "group-state", "imdn", "mail" */
	char *direction;    /* Message-Direction: "sent", "received" or "" */
	char *context;	    /* Message-Context, lower case ("pager-message" ...) */
	char *in_reply_to;  /* InReplyTo-Contribution-ID */
	char *correlator;   /* Message-Correlator, as it stands */
	char *peer;	    /* the other party's address: the first To of a
			     * sent object, else From (no display name, no <>) */
	char *sender;	    /* From's address, likewise */
	char *snippet;	    /* message: the first CPM_SNIPPET_CHARS characters
			     * of its text, UTF-8, trimmed */
	char *imdn_ref;	    /* imdn: the <message-id> of the original */
	char *status;	    /* imdn: its disposition ("delivered", "displayed",
			     * "failed", "forbidden", "error", "processed" ...) */
	char *participants; /* session-info, group-state, CPM FT: the
			     * addresses, one per '\n'-separated line */
	char *file_name;    /* file-transfer: the file's name and type */
	char *file_type;
	uint64_t file_size;
	char *error; /* "" or the first thing found wrong with the object as
		      * CPM (a sentence); the fields above hold what could be
		      * read anyway */
};

/*
 * A summary value stored by an older parser, as this one gives it (the
 * store's migration 29): field "from" (decoded from its raw value), "to"
 * (each '\n'-separated line likewise) or "subject" (its encoded-words in
 * charsets other than UTF-8, US-ASCII and ISO-8859-1, which the older
 * parser kept as they were).  Returns 0 or -ENOMEM; *ret malloc()ed.
 */
int msg_summary_redecode(const char *field, const char *value, char **ret);

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

/*
 * The value of the first field name (case-insensitive) in the header block
 * at data: unfolded, trimmed, valid UTF-8 without control characters, cut
 * at MSG_SUMMARY_MAX_FIELD; "" when absent.  Returns 0 or -ENOMEM.
 */
int msg_header_get(const void *data, size_t len, const char *name, char **ret);
/* The same for two names, in one pass over the block (a CPIM content's
 * Content-Type and Content-Transfer-Encoding); on failure neither is set. */
int msg_header_get2(const void *data, size_t len, const char *name1, char **ret1, const char *name2,
		    char **ret2);

/*
 * Whether a message can be stored and APPENDed, checked before it is:
 * msg_check_head() on its first len bytes (of size in all), which must
 * hold no NUL byte (RFC 3501 literals are CHAR8, %x01-ff) and start with
 * a header block of field lines ("Name: value", RFC 5322 2.2) and their
 * continuations, ended by an empty line or by the message's end (a line
 * cut at len is not judged); msg_check_nul() on each later chunk (offset:
 * where it starts in the message).  Each returns 0, or -EINVAL with the
 * first thing wrong in why ("line 1 (\"hello\") is not a header field
 * ...", "byte 812 is NUL ...").
 */
int msg_check_head(const void *data, size_t len, uint64_t size, char *why, size_t why_size);
int msg_check_nul(const void *data, size_t len, uint64_t offset, char *why, size_t why_size);

/* RFC 5322 date-time ("Tue, 1 Jul 2003 10:52:37 +0200", obsolete forms and
 * comments tolerated) to Unix time; -EINVAL if unreadable. */
int msg_parse_date(const char *s, size_t len, int64_t *ret);
