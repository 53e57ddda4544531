/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Typed decoding of parsed IMAP responses (struct imap_response from
 * imap-parser.h) for what the client and the sync engine need.
 *
 * Conventions for every decoder below:
 *
 * - Return 0, -CPMSYNC_E_PROTOCOL when the server's data is malformed
 *   (a non-number where a number must be, a wrong argument type, a
 *   truncated structure), -EINVAL when the response is not of the kind the
 *   function decodes (wrong name), -E2BIG/-ENOMEM from set growth.
 *   Malformed data never asserts.
 * - Lenient where servers legitimately vary: unknown FETCH items, STATUS
 *   items, ESEARCH return data, LIST extended items and response codes are
 *   skipped; they never fail a decode.
 * - Outputs (ret_*) are written only on success.  Exception: sets, below.
 * - Borrowing: every pointer in a decoded struct (strings, struct
 *   imap_arg pointers) borrows from the response and is valid until the
 *   next imap_parser_feed()/imap_parser_reset(), like the response itself.
 *   Strings are described by struct imap_nstr (pointer + length; NIL is
 *   str == NULL).  Strings from literals may contain NUL bytes; ones from
 *   atoms and quoted strings are also NUL-terminated.
 * - Sets (struct rangeset from imap-seqset.h): a decoded struct that
 *   carries sets embeds them.  The CALLER initializes the struct with its
 *   _init() function (which initializes the sets), may reuse it for many
 *   decodes, and releases it with its _free() function.  Each decode first
 *   empties the sets and then fills them; on failure the sets are left
 *   empty.  The decoders never allocate anything else.
 * - Nothing here allocates per FETCH response: struct imap_fetch has fixed
 *   arrays (IMAP_FETCH_MAX_SECTIONS, IMAP_FETCH_MAX_BINSIZES); a FETCH with
 *   more body sections than that fails with -CPMSYNC_E_PROTOCOL (we never
 *   ask for that many, so a server sending them is broken).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imap/imap-parser.h"
#include "imap/imap-seqset.h"
#include "util/buf.h"

/* A borrowed nstring / astring: str == NULL for NIL. */
struct imap_nstr {
	const char *str;
	size_t len;
};

static inline bool imap_nstr_is_nil(const struct imap_nstr *s)
{
	return s->str == NULL;
}
/* Exact (case-sensitive) comparison with a C string; NIL equals NULL. */
bool imap_nstr_eq(const struct imap_nstr *s, const char *cstr);
/* Case-insensitive comparison with a C string (NIL never matches). */
bool imap_nstr_caseeq(const struct imap_nstr *s, const char *cstr);

/* An RFC 8474 object id in parentheses, as MAILBOXID, EMAILID and THREADID
 * carry it: "(" objectid ")", objectid = 1*255(ALPHA / DIGIT / "_" / "-"),
 * an atom.  With nil_ok, NIL and Cyrus 3.6's "(NIL)" (its THREADID for a
 * message in no thread) are accepted as NIL (ret->str == NULL).  Anything
 * else -- no parentheses, an empty or 256-character id, a quoted id, a
 * '.' -- is -CPMSYNC_E_PROTOCOL. */
int imap_objectid_parse(const struct imap_arg *v, bool nil_ok, struct imap_nstr *ret);

/* -------------------------------------------------------------------- */
/* Response classification */

enum imap_resp_type {
	IMAP_RT_OTHER, /* status response, continuation or unknown data */
	IMAP_RT_CAPABILITY,
	IMAP_RT_ENABLED,
	IMAP_RT_FLAGS,
	IMAP_RT_EXISTS,
	IMAP_RT_RECENT,
	IMAP_RT_EXPUNGE,
	IMAP_RT_FETCH,
	IMAP_RT_VANISHED,
	IMAP_RT_STATUS,
	IMAP_RT_LIST,
	IMAP_RT_LSUB,
	IMAP_RT_SEARCH,
	IMAP_RT_ESEARCH,
	IMAP_RT_METADATA,
	IMAP_RT_ACL,
	IMAP_RT_MYRIGHTS,
	IMAP_RT_LISTRIGHTS,
	IMAP_RT_NAMESPACE,
	IMAP_RT_ID,
	IMAP_RT_MAX
};

/* Untagged data responses by name (case-insensitive); IMAP_RT_OTHER for
 * anything else. */
enum imap_resp_type imap_resp_type(const struct imap_response *resp);

/* -------------------------------------------------------------------- */
/* Capabilities (also used for ENABLED) */

/* Bit indices into struct imap_caps.bits. */
enum imap_cap {
	IMAP_CAP_IMAP4REV1,
	IMAP_CAP_IMAP4REV2,
	IMAP_CAP_STARTTLS,
	IMAP_CAP_LOGINDISABLED,
	IMAP_CAP_AUTH_PLAIN,
	IMAP_CAP_AUTH_LOGIN,
	IMAP_CAP_AUTH_SCRAM_SHA_1,
	IMAP_CAP_AUTH_SCRAM_SHA_256,
	IMAP_CAP_AUTH_SCRAM_SHA_256_PLUS,
	IMAP_CAP_AUTH_XOAUTH2,
	IMAP_CAP_AUTH_OAUTHBEARER,
	IMAP_CAP_AUTH_EXTERNAL,
	IMAP_CAP_SASL_IR,
	IMAP_CAP_IDLE,
	IMAP_CAP_NOTIFY,
	IMAP_CAP_CONDSTORE,
	IMAP_CAP_QRESYNC,
	IMAP_CAP_ENABLE,
	IMAP_CAP_UIDPLUS,
	IMAP_CAP_MOVE,
	IMAP_CAP_SPECIAL_USE,
	IMAP_CAP_CREATE_SPECIAL_USE,
	IMAP_CAP_LITERALPLUS,  /* LITERAL+ */
	IMAP_CAP_LITERALMINUS, /* LITERAL- */
	IMAP_CAP_BINARY,
	IMAP_CAP_METADATA,
	IMAP_CAP_METADATA_SERVER,
	IMAP_CAP_ACL,
	IMAP_CAP_LIST_EXTENDED,
	IMAP_CAP_LIST_STATUS,
	IMAP_CAP_ESEARCH,
	IMAP_CAP_NAMESPACE,
	IMAP_CAP_UTF8_ACCEPT,
	IMAP_CAP_UTF8_ONLY,
	IMAP_CAP_UNSELECT,
	IMAP_CAP_OBJECTID,
	IMAP_CAP_PREVIEW,
	IMAP_CAP_CONVERT,
	IMAP_CAP_COMPRESS_DEFLATE,
	IMAP_CAP_ID,
	IMAP_CAP_STATUS_SIZE,
	IMAP_CAP_CHILDREN,
	IMAP_CAP_QUOTA,
	IMAP_CAP_MULTIAPPEND,
	IMAP_CAP_CATENATE,
	IMAP_CAP_URLAUTH,
	IMAP_CAP_REPLACE,
	IMAP_CAP_SAVEDATE,
	IMAP_CAP_SEARCHRES,
	IMAP_CAP_SORT,
	IMAP_CAP_LIST_METADATA,
	IMAP_CAP_ANNOTATE_EXPERIMENT_1,
	IMAP_CAP_MAX
};

/* Name as written in capability lists ("LITERAL+", "AUTH=PLAIN"), or NULL
 * for an out-of-range value. */
const char *imap_cap_name(enum imap_cap cap);
/* Case-insensitive lookup of one capability name; -1 when unknown. */
int imap_cap_from_name(const char *name, size_t len);

struct imap_caps {
	uint64_t bits; /* 1 << enum imap_cap */
	/* The names as the server wrote them, space-joined ("IMAP4rev1
	 * SASL-IR LOGIN-REFERRALS ..."), NUL-terminated; owned, NULL before
	 * the first parse. */
	char *text;
};

void imap_caps_init(struct imap_caps *caps);
/* Forgets everything (frees text); caps stays usable. */
void imap_caps_clear(struct imap_caps *caps);
/* Same as clear; for symmetry with _init. */
void imap_caps_free(struct imap_caps *caps);

/*
 * "* CAPABILITY ..." replaces caps with the listed names.
 * "* ENABLED ..." ADDS the listed names (ENABLE is additive, RFC 5161).
 * Returns -EINVAL for other responses, -CPMSYNC_E_PROTOCOL when a name is
 * not an atom, -ENOMEM.  caps is unchanged on failure.
 */
int imap_caps_parse_response(struct imap_caps *caps, const struct imap_response *resp);
/* "[CAPABILITY ...]" response code of a status response: replaces caps.
 * -EINVAL when the response has no CAPABILITY code. */
int imap_caps_parse_code(struct imap_caps *caps, const struct imap_response *resp);
static inline bool imap_caps_has(const struct imap_caps *caps, enum imap_cap cap)
{
	return (unsigned)cap < IMAP_CAP_MAX && (caps->bits >> cap) & 1;
}
/* Any name, known or not ("X-GM-EXT-1", "APPENDLIMIT=35651584" needs the
 * full word), case-insensitive, looked up in caps->text. */
bool imap_caps_has_name(const struct imap_caps *caps, const char *name);

/* -------------------------------------------------------------------- */
/* Simple untagged responses */

/* "* n EXISTS", "* n RECENT": n (may be 0). */
int imap_resp_exists(const struct imap_response *resp, uint32_t *ret_n);
int imap_resp_recent(const struct imap_response *resp, uint32_t *ret_n);
/* "* n EXPUNGE": n >= 1. */
int imap_resp_expunge(const struct imap_response *resp, uint32_t *ret_seq);

/* A flag list: FLAGS, PERMANENTFLAGS, FETCH FLAGS. */
struct imap_flags {
	const struct imap_arg *args; /* each an ATOM ("\Seen", "$Label") */
	size_t count;
	bool new_keywords; /* "\*" was in the list (PERMANENTFLAGS) */
};

/* Decodes a parenthesized flag list arg; every element must be an atom. */
int imap_flags_from_arg(const struct imap_arg *list, struct imap_flags *ret_flags);
/* Case-insensitive membership test ("\\Seen"). */
bool imap_flags_has(const struct imap_flags *flags, const char *flag);

/* "* FLAGS (...)". */
int imap_resp_flags(const struct imap_response *resp, struct imap_flags *ret_flags);

/* "* ENABLED" is decoded by imap_caps_parse_response(). */

/* "* VANISHED uids" / "* VANISHED (EARLIER) uids" (RFC 7162 3.2.10). */
struct imap_vanished {
	bool earlier;
	struct rangeset uids; /* see "Sets" above */
};
void imap_vanished_init(struct imap_vanished *v);
void imap_vanished_free(struct imap_vanished *v);
int imap_resp_vanished(const struct imap_response *resp, struct imap_vanished *v);

/* -------------------------------------------------------------------- */
/* FETCH */

struct imap_address {
	enum {
		IMAP_ADDRESS_MAILBOX,	  /* a normal address */
		IMAP_ADDRESS_GROUP_START, /* mailbox = group name, host NIL */
		IMAP_ADDRESS_GROUP_END,	  /* mailbox and host NIL */
	} kind;
	struct imap_nstr name, adl, mailbox, host;
};

/* An address list, validated by the envelope decoder; NIL and an empty
 * list both give count 0.  Read entries with imap_address_get(). */
struct imap_address_list {
	const struct imap_arg *args;
	size_t count;
};

/* The i-th address; -EINVAL when i >= count. */
int imap_address_get(const struct imap_address_list *list, size_t i, struct imap_address *ret);

struct imap_envelope {
	struct imap_nstr date, subject;
	struct imap_address_list from, sender, reply_to, to, cc, bcc;
	struct imap_nstr in_reply_to, message_id;
};

/* Decodes an ENVELOPE list.  Strings may be quoted, in-memory literals
 * or NIL; a STREAMED literal inside is -CPMSYNC_E_PROTOCOL (do not stream
 * envelope literals). */
int imap_envelope_from_arg(const struct imap_arg *list, struct imap_envelope *ret);

/* A BODY[section]<origin> / BINARY[section]<origin> data item. */
struct imap_fetch_section {
	/* The item name as sent up to and including ']', without
	 * "<origin>": "BODY[HEADER.FIELDS (MESSAGE-ID)]", "BINARY[1]",
	 * "RFC822.HEADER".  Not NUL-terminated at name_len. */
	const char *name;
	size_t name_len;
	/* Between the brackets: "HEADER.FIELDS (MESSAGE-ID)", "1", "". */
	const char *section;
	size_t section_len;
	bool binary;	 /* BINARY[...] */
	bool has_origin; /* "<n>" was present (partial fetch) */
	uint32_t origin;
	/* NIL, STRING, LITERAL or STREAMED (content given to the parser's
	 * literal callbacks). */
	const struct imap_arg *value;
};

/* A BINARY.SIZE[section] data item. */
struct imap_fetch_binsize {
	const char *section; /* between the brackets, not NUL-terminated */
	size_t section_len;
	uint64_t size;
};

#define IMAP_FETCH_MAX_SECTIONS 16
#define IMAP_FETCH_MAX_BINSIZES 8

/* Present bits of struct imap_fetch. */
enum {
	IMAP_FETCH_UID = 1u << 0,
	IMAP_FETCH_FLAGS = 1u << 1,
	IMAP_FETCH_MODSEQ = 1u << 2,
	IMAP_FETCH_INTERNALDATE = 1u << 3,
	IMAP_FETCH_RFC822_SIZE = 1u << 4,
	IMAP_FETCH_ENVELOPE = 1u << 5,
	IMAP_FETCH_BODYSTRUCTURE = 1u << 6,
	IMAP_FETCH_BODY = 1u << 7, /* non-extensible BODY structure */
	IMAP_FETCH_PREVIEW = 1u << 8,
	IMAP_FETCH_EMAILID = 1u << 9,
	IMAP_FETCH_THREADID = 1u << 10,
	IMAP_FETCH_SAVEDATE = 1u << 11,
	IMAP_FETCH_ANNOTATION = 1u << 12,
};

/*
 * ANNOTATION (RFC 5257, the ANNOTATE-EXPERIMENT-1 syntax Cyrus speaks) of a
 * FETCH: with values, the answer to FETCH (ANNOTATION (entries (attrs))):
 *   ANNOTATION (/comment (value.priv "x" value.shared NIL) /a (...))
 * or, unsolicited after another session's change, entry names only:
 *   ANNOTATION (/comment /a)
 * Entries are astrings starting with '/' of at most IMAP_ANNOTATION_ENTRY_MAX bytes, at most
 * IMAP_ANNOTATION_MAX_ENTRIES of them, each with at most
 * IMAP_ANNOTATION_MAX_ATTRS attribute/value pairs; values are nstrings
 * (a streamed literal is -CPMSYNC_E_PROTOCOL).  Attributes other than
 * value.priv and value.shared (size.priv, ...) are skipped.
 */
#define IMAP_ANNOTATION_MAX_ENTRIES 256
#define IMAP_ANNOTATION_MAX_ATTRS   16
#define IMAP_ANNOTATION_ENTRY_MAX   1024

struct imap_annotation_entry {
	struct imap_nstr name;
	/* Only with values: whether each attribute was there, and its
	 * value (NIL: the server has none). */
	bool has_priv, has_shared;
	struct imap_nstr priv, shared;
};

struct imap_fetch {
	uint32_t seq;
	unsigned present; /* IMAP_FETCH_* */
	uint32_t uid;
	struct imap_flags flags;
	uint64_t modseq;     /* "MODSEQ (n)" */
	time_t internaldate; /* UTC */
	uint64_t rfc822_size;
	struct imap_envelope envelope;
	const struct imap_arg *bodystructure; /* the LIST, see imap_arg_write */
	const struct imap_arg *body;	      /* the LIST */
	struct imap_nstr preview;	      /* may be NIL (RFC 8970) */
	struct imap_nstr emailid, threadid;   /* THREADID may be NIL */
	time_t savedate;		      /* present only when not NIL */
	/* ANNOTATION: imap_fetch_annotation_get() reads the entries. */
	const struct imap_arg *annotation; /* internal: the item's list */
	size_t nannotations;
	bool annotation_values; /* false: entry names only (unsolicited) */
	size_t nsections;
	struct imap_fetch_section sections[IMAP_FETCH_MAX_SECTIONS];
	size_t nbinsizes;
	struct imap_fetch_binsize binsizes[IMAP_FETCH_MAX_BINSIZES];
};

/*
 * "* n FETCH (item value ...)".  Items that appear twice: the last wins
 * (sections are all kept).  Unknown items are skipped (their value is one
 * argument).  Fails with -CPMSYNC_E_PROTOCOL on a bad UID/MODSEQ/size/date,
 * a malformed envelope, a non-list FLAGS, more than the fixed number of
 * sections.  *ret is written only on success.
 */
int imap_resp_fetch(const struct imap_response *resp, struct imap_fetch *ret);

/* The i-th ANNOTATION entry of f; -EINVAL when i >= f->nannotations. */
int imap_fetch_annotation_get(const struct imap_fetch *f, size_t i,
			      struct imap_annotation_entry *ret);

/* The section with exactly this name (case-insensitive, without origin),
 * e.g. "BODY[]" or "BINARY[2]", or NULL. */
const struct imap_fetch_section *imap_fetch_find_section(const struct imap_fetch *f,
							 const char *name);

/* Parses "17-Jul-1996 02:44:25 -0700" (date-time, RFC 3501/9051; the day
 * may be " 7", "07" or "7") strictly into UTC seconds. */
int imap_parse_date_time(const char *s, size_t len, time_t *ret);

/*
 * Serializes an argument tree in canonical IMAP syntax: NIL, atoms as
 * they are, strings quoted ("..." with \" and \\) when they contain only
 * printable 7-bit characters, otherwise as a literal {n}CRLF<bytes>; lists
 * as "(a b c)".  Parsing the output gives the same tree, except that
 * STRING and LITERAL may trade places (same content).  STREAMED args have
 * no content: -EINVAL.  Appends to out (-E2BIG at its maximum).
 */
int imap_arg_write(struct buf *out, const struct imap_arg *a);

/* Top-level content type of a BODYSTRUCTURE/BODY list: for a multipart
 * (the list starts with the parts' lists) multipart is true, type is NIL
 * and subtype e.g. "mixed"; for a single part type/subtype are e.g.
 * "text"/"plain" (as sent: compare case-insensitively). */
struct imap_body_type {
	bool multipart;
	struct imap_nstr type; /* NIL for multipart */
	struct imap_nstr subtype;
};
int imap_body_type_from_arg(const struct imap_arg *bodystructure, struct imap_body_type *ret);

/* -------------------------------------------------------------------- */
/* STATUS */

enum {
	IMAP_STATUS_ITEM_MESSAGES = 1u << 0,
	IMAP_STATUS_ITEM_UIDNEXT = 1u << 1,
	IMAP_STATUS_ITEM_UIDVALIDITY = 1u << 2,
	IMAP_STATUS_ITEM_UNSEEN = 1u << 3,
	IMAP_STATUS_ITEM_RECENT = 1u << 4,
	IMAP_STATUS_ITEM_HIGHESTMODSEQ = 1u << 5,
	IMAP_STATUS_ITEM_SIZE = 1u << 6,
	IMAP_STATUS_ITEM_DELETED = 1u << 7,
	IMAP_STATUS_ITEM_MAILBOXID = 1u << 8,
};

struct imap_status_data {
	/* The mailbox astring as sent (mUTF-7, or UTF-8 under UTF8=ACCEPT,
	 * server delimiter).  STATUS does not carry the delimiter, so the
	 * caller maps it with imap_mailbox_to_utf8() and the delimiter it
	 * knows from LIST/NAMESPACE. */
	struct imap_nstr mailbox;
	unsigned present; /* IMAP_STATUS_ITEM_* */
	uint32_t messages, uidnext, uidvalidity, unseen, recent, deleted;
	uint64_t highestmodseq, size;
	/* RFC 8474: "MAILBOXID (id)", an objectid of 1 to 255 letters, digits,
	 * '_' and '-' (anything else is a protocol error). */
	struct imap_nstr mailboxid;
};

/* "* STATUS mbox (item n ...)"; unknown items are skipped. */
int imap_resp_status(const struct imap_response *resp, struct imap_status_data *ret);

/* -------------------------------------------------------------------- */
/* LIST / LSUB */

enum {
	IMAP_MBOX_NOSELECT = 1u << 0,
	IMAP_MBOX_NONEXISTENT = 1u << 1,
	IMAP_MBOX_HASCHILDREN = 1u << 2,
	IMAP_MBOX_HASNOCHILDREN = 1u << 3,
	IMAP_MBOX_NOINFERIORS = 1u << 4,
	IMAP_MBOX_MARKED = 1u << 5,
	IMAP_MBOX_UNMARKED = 1u << 6,
	IMAP_MBOX_SUBSCRIBED = 1u << 7,
	IMAP_MBOX_REMOTE = 1u << 8,
	/* RFC 6154 special-use */
	IMAP_MBOX_ALL = 1u << 9,
	IMAP_MBOX_ARCHIVE = 1u << 10,
	IMAP_MBOX_DRAFTS = 1u << 11,
	IMAP_MBOX_FLAGGED = 1u << 12,
	IMAP_MBOX_JUNK = 1u << 13,
	IMAP_MBOX_SENT = 1u << 14,
	IMAP_MBOX_TRASH = 1u << 15,
};
#define IMAP_MBOX_SPECIAL_USE_MASK 0xfe00u

/*
 * "* LIST (attrs) delim mailbox [(ext-items)]" and LSUB.
 *
 * With LIST-STATUS (RFC 5819) the STATUS of a listed mailbox arrives as a
 * separate "* STATUS" response after the LIST: decode it with
 * imap_resp_status() and match the mailbox names.
 */
struct imap_list {
	unsigned attrs;			  /* IMAP_MBOX_*, known attributes */
	const struct imap_arg *attr_args; /* all attributes (ATOMs) */
	size_t attr_count;
	char delimiter;		    /* 0 for NIL */
	struct imap_nstr mailbox;   /* raw, as sent (mUTF-7 or UTF-8) */
	bool childinfo_subscribed;  /* ("CHILDINFO" ("SUBSCRIBED")) */
	struct imap_nstr oldname;   /* ("OLDNAME" ("old")), else NIL */
	const struct imap_arg *ext; /* the extended-data LIST, or NULL */
};
int imap_resp_list(const struct imap_response *resp, struct imap_list *ret);

/* -------------------------------------------------------------------- */
/* SEARCH / ESEARCH */

struct imap_search {
	struct rangeset nums; /* see "Sets" above */
	bool has_modseq;
	uint64_t modseq; /* "(MODSEQ n)" at the end (RFC 7162 3.1.5) */
};
void imap_search_init(struct imap_search *s);
void imap_search_free(struct imap_search *s);
int imap_resp_search(const struct imap_response *resp, struct imap_search *s);

enum {
	IMAP_ESEARCH_MIN = 1u << 0,
	IMAP_ESEARCH_MAX = 1u << 1,
	IMAP_ESEARCH_COUNT = 1u << 2,
	IMAP_ESEARCH_ALL = 1u << 3,
	IMAP_ESEARCH_MODSEQ = 1u << 4,
};

struct imap_esearch {
	struct imap_nstr tag; /* (TAG "x"), NIL when absent */
	bool uid;
	unsigned present; /* IMAP_ESEARCH_* */
	uint32_t min, max, count;
	uint64_t modseq;
	struct rangeset all; /* see "Sets" above */
};
void imap_esearch_init(struct imap_esearch *e);
void imap_esearch_free(struct imap_esearch *e);
int imap_resp_esearch(const struct imap_response *resp, struct imap_esearch *e);

/* -------------------------------------------------------------------- */
/* METADATA (RFC 5464) */

struct imap_metadata {
	struct imap_nstr mailbox; /* "" for server entries */
	/* true:  "* METADATA mbox (entry value ...)" (GETMETADATA answer)
	 * false: "* METADATA mbox entry entry ..." (unsolicited: names) */
	bool has_values;
	size_t count;		     /* number of entries */
	const struct imap_arg *args; /* internal: the entry/value args */
};

struct imap_metadata_entry {
	struct imap_nstr name;
	/* NULL without values; else NIL, STRING, LITERAL or STREAMED. */
	const struct imap_arg *value;
};

int imap_resp_metadata(const struct imap_response *resp, struct imap_metadata *ret);
/* The i-th entry; -EINVAL when i >= count. */
int imap_metadata_get(const struct imap_metadata *md, size_t i, struct imap_metadata_entry *ret);

/* -------------------------------------------------------------------- */
/* ACL (RFC 4314) */

struct imap_acl {
	struct imap_nstr mailbox;
	size_t count;		     /* identifier/rights pairs */
	const struct imap_arg *args; /* internal */
};
int imap_resp_acl(const struct imap_response *resp, struct imap_acl *ret);
int imap_acl_get(const struct imap_acl *acl, size_t i, struct imap_nstr *ret_identifier,
		 struct imap_nstr *ret_rights);

/* "* MYRIGHTS mbox rights" */
int imap_resp_myrights(const struct imap_response *resp, struct imap_nstr *ret_mailbox,
		       struct imap_nstr *ret_rights);

/* "* LISTRIGHTS mbox identifier required [optional ...]" */
struct imap_listrights {
	struct imap_nstr mailbox, identifier, required;
	size_t noptional;
	const struct imap_arg *optional; /* noptional astrings */
};
int imap_resp_listrights(const struct imap_response *resp, struct imap_listrights *ret);

/* -------------------------------------------------------------------- */
/* NAMESPACE (RFC 2342) */

struct imap_ns_list {
	const struct imap_arg *args; /* internal; count 0 for NIL */
	size_t count;
};
struct imap_namespace {
	struct imap_ns_list personal, other, shared;
};
struct imap_ns_entry {
	struct imap_nstr prefix;
	char delimiter; /* 0 for NIL */
};
int imap_resp_namespace(const struct imap_response *resp, struct imap_namespace *ret);
int imap_ns_get(const struct imap_ns_list *list, size_t i, struct imap_ns_entry *ret);

/* -------------------------------------------------------------------- */
/* Response codes of status responses ("OK [UIDNEXT 4392] ...") */

enum imap_code {
	IMAP_CODE_NONE,	   /* no response code */
	IMAP_CODE_UNKNOWN, /* anything else: ignore (RFC 9051 7.1) */
	IMAP_CODE_ALERT,
	IMAP_CODE_PARSE,
	IMAP_CODE_READ_ONLY,
	IMAP_CODE_READ_WRITE,
	IMAP_CODE_TRYCREATE,
	IMAP_CODE_UIDNEXT,
	IMAP_CODE_UIDVALIDITY,
	IMAP_CODE_UNSEEN,
	IMAP_CODE_PERMANENTFLAGS,
	IMAP_CODE_CAPABILITY,
	IMAP_CODE_BADCHARSET,
	IMAP_CODE_APPENDUID,
	IMAP_CODE_COPYUID,
	IMAP_CODE_UIDNOTSTICKY,
	IMAP_CODE_HIGHESTMODSEQ,
	IMAP_CODE_NOMODSEQ,
	IMAP_CODE_MODIFIED,
	IMAP_CODE_CLOSED,
	IMAP_CODE_NOTIFICATIONOVERFLOW,
	IMAP_CODE_BADEVENT,
	IMAP_CODE_METADATA_LONGENTRIES,
	IMAP_CODE_METADATA_MAXSIZE,
	IMAP_CODE_METADATA_TOOMANY,
	IMAP_CODE_METADATA_NOPRIVATE,
	IMAP_CODE_TOOBIG,
	IMAP_CODE_COMPRESSIONACTIVE,
	IMAP_CODE_UNKNOWN_CTE,
	IMAP_CODE_HASCHILDREN,
	IMAP_CODE_MAILBOXID,
	/* RFC 5530 */
	IMAP_CODE_UNAVAILABLE,
	IMAP_CODE_AUTHENTICATIONFAILED,
	IMAP_CODE_AUTHORIZATIONFAILED,
	IMAP_CODE_EXPIRED,
	IMAP_CODE_PRIVACYREQUIRED,
	IMAP_CODE_CONTACTADMIN,
	IMAP_CODE_NOPERM,
	IMAP_CODE_INUSE,
	IMAP_CODE_EXPUNGEISSUED,
	IMAP_CODE_CORRUPTION,
	IMAP_CODE_SERVERBUG,
	IMAP_CODE_CLIENTBUG,
	IMAP_CODE_CANNOT,
	IMAP_CODE_LIMIT,
	IMAP_CODE_OVERQUOTA,
	IMAP_CODE_ALREADYEXISTS,
	IMAP_CODE_NONEXISTENT,
	IMAP_CODE_MAX
};

/* "UIDNEXT", "METADATA LONGENTRIES", ... for logs; NULL if out of range. */
const char *imap_code_name(enum imap_code code);
/* Case-insensitive lookup of a code word (METADATA needs its sub-word:
 * pass "METADATA MAXSIZE"); IMAP_CODE_UNKNOWN when not known. */
enum imap_code imap_code_from_name(const char *name);

struct imap_resp_code {
	enum imap_code code;
	const char *name; /* as sent (resp->code), NULL for NONE */
	const char *raw;  /* resp->code_raw: the arguments as text */
	/* UIDNEXT, UIDVALIDITY, UNSEEN; uidvalidity of APPENDUID/COPYUID;
	 * METADATA LONGENTRIES/MAXSIZE size; MAILBOXID not (see objectid) */
	uint32_t num;
	uint64_t num64;		 /* HIGHESTMODSEQ; METADATA sizes too */
	struct imap_flags flags; /* PERMANENTFLAGS */
	/* APPENDUID: set = appended UIDs.  COPYUID: set = source UIDs,
	 * set2 = destination UIDs.  MODIFIED: set.  Sets are sorted and
	 * merged, which loses the COPYUID pairing when a server lists UIDs
	 * out of order: walk src_raw/dst_raw with imap_uidset_iter for the
	 * exact pairing. */
	struct rangeset set, set2;
	struct imap_nstr src_raw, dst_raw;
	struct imap_nstr objectid; /* MAILBOXID (id) */
};
void imap_resp_code_init(struct imap_resp_code *c);
void imap_resp_code_free(struct imap_resp_code *c);

/*
 * Decodes resp->code/code_raw/code_args.  A response without a code gives
 * IMAP_CODE_NONE, an unknown code IMAP_CODE_UNKNOWN (both return 0).
 * Arguments of a known code that are malformed ("UIDNEXT x") give
 * -CPMSYNC_E_PROTOCOL, and *c is then reset to IMAP_CODE_UNKNOWN with only
 * name and raw set (empty sets), so a caller may simply ignore the error.
 * c must have been initialized with imap_resp_code_init(); it is reused
 * across calls (the sets keep their memory) and every call overwrites it.
 * CAPABILITY is only classified: use imap_caps_parse_code() for it.
 */
int imap_resp_code_parse(const struct imap_response *resp, struct imap_resp_code *c);

/*
 * Walks a uid-set as written ("304,319:320", "3:1") in the server's
 * order, one UID at a time, so COPYUID source and destination UIDs pair
 * up exactly.
 */
struct imap_uidset_iter {
	const char *p, *end;
	uint32_t cur, last;
	bool active;
};
void imap_uidset_iter_init(struct imap_uidset_iter *it, const struct imap_nstr *text);
/* 1 and *ret_uid: the next UID; 0: done; -CPMSYNC_E_PROTOCOL: bad text. */
int imap_uidset_iter_next(struct imap_uidset_iter *it, uint32_t *ret_uid);
