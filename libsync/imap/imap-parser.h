/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Incremental IMAP response parser.
 *
 * The parser never reads a socket: the caller feeds it bytes in any
 * chunking (one byte at a time works) and it returns each response as soon
 * as its final CRLF has arrived.  It knows the response grammar (RFC 3501
 * section 9 and RFC 9051): tagged, untagged and continuation responses;
 * status responses with an optional [resp-text-code] and free text; data
 * responses made of atoms, numbers, quoted strings with \" and \\
 * escapes, NIL, literals ({n}, {n+}, ~{n}) and nested lists.  Fetch item
 * names such as BODY[HEADER.FIELDS (SUBJECT)]<0> are one atom.
 *
 * It enforces hard limits (line length, nesting depth, literal size), and
 * refuses bad input (NUL bytes outside literals, a bare CR, a literal size
 * that overflows) with -CPMSYNC_E_PROTOCOL and a message from
 * imap_parser_error() that names what was wrong.  After an error the
 * parser accepts no more input until imap_parser_reset(): the connection
 * is to be dropped.
 *
 * Literals the caller wants streamed (message bodies) are handed to the
 * literal callbacks chunk by chunk and never held whole in memory.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum imap_arg_type {
	IMAP_ARG_NIL,
	IMAP_ARG_ATOM,	   /* atoms, numbers, flags (\Seen), BODY[...]<n> */
	IMAP_ARG_STRING,   /* quoted string, escapes removed */
	IMAP_ARG_LITERAL,  /* literal kept in memory ({n}, {n+} or ~{n}) */
	IMAP_ARG_STREAMED, /* literal given to the literal callbacks; size only */
	IMAP_ARG_LIST,
};

/*
 * One parsed argument.  Borrowed from the parser: valid until the next
 * imap_parser_feed() or imap_parser_reset() call.
 */
struct imap_arg {
	enum imap_arg_type type;
	bool literal8; /* LITERAL/STREAMED that came as ~{n} */
	union {
		/* ATOM, STRING, LITERAL: NUL-terminated; len excludes the
		 * terminator.  A LITERAL may contain NUL bytes. */
		struct {
			const char *str;
			size_t len;
		} s;
		struct {
			const struct imap_arg *args;
			size_t count;
		} list;
		uint64_t size; /* STREAMED */
	} u;
};

enum imap_resp_kind {
	IMAP_RESP_UNTAGGED,	/* "* ..." */
	IMAP_RESP_TAGGED,	/* "A1 OK ..." */
	IMAP_RESP_CONTINUATION, /* "+ ..." */
};

enum imap_status {
	IMAP_STATUS_NONE, /* a data response, not a status response */
	IMAP_STATUS_OK,
	IMAP_STATUS_NO,
	IMAP_STATUS_BAD,
	IMAP_STATUS_BYE,
	IMAP_STATUS_PREAUTH,
};

/*
 * A complete response, borrowed until the next feed/reset.
 *
 * Status responses (every tagged one, and untagged OK/NO/BAD/BYE/PREAUTH):
 *   status is set; code/code_args/code_raw hold the optional
 *   [resp-text-code] (code is its first word, as sent; code_raw everything
 *   between the brackets after that word, "" when nothing); text is the
 *   human-readable rest ("" when absent).
 * Untagged data responses ("* 23 EXISTS", "* 5 FETCH (...)",
 *   "* CAPABILITY IMAP4rev1 ...", "* LIST (...) "/" INBOX"):
 *   status is IMAP_STATUS_NONE; has_number/number hold a leading number;
 *   name is the response name as sent (EXISTS, FETCH, CAPABILITY, LIST);
 *   args are the arguments after the name.
 * Continuations ("+ idling", "+ base64data"): text is everything after
 *   "+ " ("" when the line is just "+").
 *
 * code_args is the code's arguments tokenized like data (atoms, strings,
 * lists), or NULL with code_nargs 0 when they are free text that does not
 * tokenize; code_raw always has them as text.  A code without arguments
 * ("[ALERT]") has code_raw "" and a non-NULL code_args with code_nargs 0.
 * When there is no code, code, code_raw and code_args are NULL.  A '['
 * without a closing ']' on the line is not a code: it is part of text.
 *
 * args is never NULL (an empty array when nargs is 0), and neither is
 * the args of a LIST.  Fields that do not apply to the kind of response
 * are NULL / 0.  Continuations keep their text raw: no code is parsed.
 *
 * Tolerated beyond the RFC: several spaces between tokens and trailing
 * spaces, a bare LF as line end, "+" + text without the space, 8-bit
 * bytes in atoms and quoted strings, and in quoted strings backslash
 * escapes other than \\ and \" (kept as sent, backslash included).
 */
struct imap_response {
	enum imap_resp_kind kind;
	const char *tag; /* TAGGED only, else NULL */
	enum imap_status status;
	const char *code;
	const char *code_raw;
	const struct imap_arg *code_args;
	size_t code_nargs;
	const char *text;
	bool has_number;
	uint32_t number;
	const char *name;
	const struct imap_arg *args;
	size_t nargs;
};

/*
 * max_line counts every byte of a response except literal payloads and
 * the final CRLF (the CRLFs after literal sizes count).  A literal larger
 * than the limit that applies is refused as soon as its size is read,
 * before anything is allocated or asked: max(max_literal_inline,
 * max_literal_streamed) when streaming is possible, else
 * max_literal_inline; a literal that literal_begin declines is then
 * checked against max_literal_inline and max_inline_total.
 */
struct imap_parser_limits {
	size_t max_line;	       /* bytes of one response, literals excluded */
	unsigned max_depth;	       /* list nesting */
	size_t max_literal_inline;     /* one literal kept in memory */
	size_t max_inline_total;       /* all kept literals of one response */
	uint64_t max_literal_streamed; /* one streamed literal */
};

/* 64 KiB line, depth 64, 1 MiB inline literal, 16 MiB inline per response,
 * 4 GiB streamed literal. */
extern const struct imap_parser_limits imap_parser_default_limits;

struct imap_parser_callbacks {
	/*
	 * Called first for every literal of a data response once its size
	 * is read, with the same arguments as literal_begin: a negative
	 * return refuses it and fails the parse with -CPMSYNC_E_PROTOCOL (the
	 * caller keeps its own description; imap_parser_error() only says
	 * that the literal was refused).  May be NULL: every literal within
	 * the limits is accepted.
	 */
	int (*literal_check)(void *userdata, uint32_t number, const char *name, const char *item,
			     uint64_t size);
	/*
	 * A literal of size bytes starts.  number/name describe the response
	 * it is in so far ("* 12 FETCH": 12 and "FETCH"; 0/NULL when not
	 * known yet), item is the atom just before the literal inside the
	 * current list ("BODY[]", "BINARY[1]"), or NULL.  Return true to
	 * stream it to literal_data, false to keep it in memory (then the
	 * inline limits apply).  May be NULL: nothing is streamed.
	 */
	bool (*literal_begin)(void *userdata, uint32_t number, const char *name, const char *item,
			      uint64_t size);
	/* A chunk of a streamed literal.  A negative return aborts the parse
	 * with that error. */
	int (*literal_data)(void *userdata, const void *data, size_t len);
	/* The streamed literal is complete (also for a zero-length one,
	 * which gets no literal_data call).  Not called when the parse is
	 * aborted or reset in the middle of the literal. */
	void (*literal_end)(void *userdata);
	/*
	 * A "* number FETCH" response goes over max_line, its UID (uid) read
	 * from the part before the limit.  Return true to have the response
	 * skipped whole (to its end, literals included, none kept nor passed
	 * to the callbacks above, in constant memory) and parsing go on with
	 * the next one; false (or NULL, or a response that is no FETCH or
	 * shows no UID before the limit): the parse fails as for any line
	 * too long.  A literal of the response before the limit was passed
	 * already (literal_end included).
	 */
	bool (*long_fetch)(void *userdata, uint32_t number, uint32_t uid);
};

struct imap_parser;

/* limits and callbacks may be NULL (defaults, no streaming); both are
 * copied.  Returns 0 or -ENOMEM. */
/* Replaces the callbacks (between responses only). */
void imap_parser_set_callbacks(struct imap_parser *p, const struct imap_parser_callbacks *callbacks,
			       void *userdata);
int imap_parser_new(const struct imap_parser_limits *limits,
		    const struct imap_parser_callbacks *callbacks, void *userdata,
		    struct imap_parser **ret_parser);
struct imap_parser *imap_parser_free(struct imap_parser *parser);

/* Forgets any partial response and a previous error (e.g. after STARTTLS
 * or on a new connection). */
void imap_parser_reset(struct imap_parser *parser);

enum {
	IMAP_PARSE_NEED_MORE = 0, /* all input consumed, response incomplete */
	IMAP_PARSE_COMPLETE = 1,  /* *ret_resp is a complete response */
};

/*
 * Consumes bytes from data.  *ret_consumed is how many were used; on
 * IMAP_PARSE_COMPLETE the rest belongs to the next response, so the
 * caller feeds it again.  Returns IMAP_PARSE_NEED_MORE, IMAP_PARSE_COMPLETE
 * or a negative error: -CPMSYNC_E_PROTOCOL (bad input or limit exceeded,
 * see imap_parser_error()), -ENOMEM, or the error a literal_data callback
 * returned.  On IMAP_PARSE_NEED_MORE all len bytes were consumed (kept or
 * streamed) and *ret_resp is set to NULL.  On error the outputs are not
 * touched, and every later call returns the same error until
 * imap_parser_reset().  Errors do not depend on how the input is chunked.
 * The callbacks run from inside this function.
 */
int imap_parser_feed(struct imap_parser *parser, const void *data, size_t len, size_t *ret_consumed,
		     const struct imap_response **ret_resp);

/*
 * From inside literal_check or literal_begin only: the number that follows
 * the atom key (case-insensitive) earlier in the list that holds the
 * literal, e.g. the RFC822.SIZE of "* 3 FETCH (RFC822.SIZE 2100 BODY[]
 * {2100}".  false when there is none or it is not a number.
 */
bool imap_parser_literal_context_u64(const struct imap_parser *parser, const char *key,
				     uint64_t *ret);

/* Describes the last error ("literal of 18446744073709551615 bytes
 * exceeds the limit of ..."), or NULL.  Borrowed. */
const char *imap_parser_error(const struct imap_parser *parser);

/* Helpers over parsed arguments. */
static inline bool imap_arg_is_string(const struct imap_arg *a)
{
	/* astring/nstring content: atom, quoted or in-memory literal */
	return a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_STRING ||
	       a->type == IMAP_ARG_LITERAL;
}
/* Case-insensitive comparison of an ATOM with s. */
bool imap_arg_atom_equals(const struct imap_arg *a, const char *s);
/* Parses an ATOM made only of digits (no sign, no spaces; leading zeros
 * allowed) as a number up to UINT32_MAX, or up to 2^63-1 (RFC 7162
 * mod-sequence range).  false, with *ret untouched, for anything else. */
bool imap_arg_get_u32(const struct imap_arg *a, uint32_t *ret);
bool imap_arg_get_u64(const struct imap_arg *a, uint64_t *ret);
