/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpmsync_message_section() (cpmsync/message.h): the byte range of an
 * IMAP section (RFC 3501 6.4.5) in a stored message.
 *
 * The model, after RFC 3501 and RFC 2046:
 *  - An entity is a header block and a body.  The header runs to the
 *    first empty line ("\n" or "\r\n"), which it includes; without one
 *    the whole entity is header and the body is empty at its end.
 *  - A message (the top level, or the content of a message/rfc822 part)
 *    whose body is multipart has the body parts as its parts; any other
 *    message has one part, 1: its body, with the message header as its
 *    MIME header.
 *  - A body part of type multipart has its own body parts as parts; one
 *    of type message/rfc822 (or message/global) has the parts of the
 *    message it encapsulates, and HEADER and TEXT are that message's
 *    header and body.  Other parts have no sub-parts and no HEADER/TEXT
 *    (-CPMSYNC_E_NOT_FOUND).
 *  - A body part runs from just after its delimiter line to just before
 *    the line break that precedes the next delimiter line (RFC 2046 5.1.1:
 *    that line break belongs to the delimiter); the preamble and the
 *    epilogue belong to no part.  Without a close delimiter the last part
 *    runs to the end of the enclosing body.  A line is a delimiter line
 *    when it starts with "--" and the boundary (RFC 2046: "it is
 *    sufficient that the boundary appear in its entirety following the
 *    CRLF"); "--" after the boundary makes it the close delimiter.
 *  - Content-Type is read case-insensitively, folded, with comments; the
 *    boundary parameter may be quoted.  A multipart without a usable
 *    boundary (missing, empty, longer than BOUNDARY_MAX, or an RFC 2231
 *    encoded one) is taken as a leaf.  The default type is text/plain,
 *    message/rfc822 inside a multipart/digest (RFC 2046 5.1.5).
 *  - HEADER.FIELDS [.NOT] select lines rather than a range, so they are
 *    not a section this function can answer: -EINVAL.
 *
 * Bounds: nothing is allocated and nothing recurses.  Each part number of
 * the section costs one pass over the enclosing entity, and a section has
 * at most CPMSYNC_SECTION_MAX_LEN / 2 part numbers, so the work is linear
 * in len.  Depth counts the part numbers walked: a part number beyond
 * CPMSYNC_SECTION_MAX_DEPTH into an entity that has sub-parts (the message
 * really nests that deep) is -CPMSYNC_E_PROTOCOL.  Every index stays
 * below len.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/error.h>
#include <cpmsync/message.h>

/* Longest boundary accepted (RFC 2046 allows 70; some mailers exceed it). */
#define BOUNDARY_MAX 200
/* Largest part number accepted (RFC 3501 numbers are 32-bit; 2^31 is plenty). */
#define PART_NUMBER_MAX (UINT32_C(1) << 31)
#define MAX_PARTS	(CPMSYNC_SECTION_MAX_LEN / 2 + 1)

enum section_text {
	TEXT_NONE,
	TEXT_HEADER,
	TEXT_TEXT,
	TEXT_MIME,
};

struct section_spec {
	uint32_t parts[MAX_PARTS];
	size_t n_parts;
	enum section_text text;
};

/* An entity: header [start, body), body [body, end). */
struct entity {
	size_t start, body, end;
	bool message;	     /* a message: a non-multipart one has part 1 */
	bool digest_default; /* no Content-Type means message/rfc822 */
};

enum ctype_kind {
	CT_LEAF,
	CT_MULTIPART,
	CT_MESSAGE,
};

struct ctype {
	enum ctype_kind kind;
	bool digest;
	char boundary[BOUNDARY_MAX];
	size_t boundary_len;
};

/* The section spec. */

static bool keyword_is(const char *s, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(s, kw, n) == 0;
}

static int parse_spec(const char *section, struct section_spec *spec)
{
	const char *p = section;
	size_t len = strnlen(section, CPMSYNC_SECTION_MAX_LEN + 1);

	if (len > CPMSYNC_SECTION_MAX_LEN)
		return -EINVAL;
	spec->n_parts = 0;
	spec->text = TEXT_NONE;
	if (len == 0)
		return 0;
	for (;;) {
		const char *e = p;

		while (*e && *e != '.')
			e++;
		if (e == p)
			return -EINVAL; /* "", "1.", "1..2", ".1" */
		if (*p >= '1' && *p <= '9') {
			uint64_t v = 0;

			for (const char *q = p; q < e; q++) {
				if (*q < '0' || *q > '9')
					return -EINVAL;
				v = v * 10 + (uint64_t)(*q - '0');
				if (v > PART_NUMBER_MAX)
					return -EINVAL;
			}
			if (spec->n_parts == MAX_PARTS)
				return -EINVAL; /* cannot happen within the length */
			spec->parts[spec->n_parts++] = (uint32_t)v;
			if (!*e)
				return 0;
			p = e + 1;
			continue;
		}
		/* A keyword ends the spec. */
		if (*e)
			return -EINVAL; /* "HEADER.1", "HEADER.FIELDS ...", "0.1" */
		if (keyword_is(p, (size_t)(e - p), "HEADER"))
			spec->text = TEXT_HEADER;
		else if (keyword_is(p, (size_t)(e - p), "TEXT"))
			spec->text = TEXT_TEXT;
		else if (keyword_is(p, (size_t)(e - p), "MIME") && spec->n_parts > 0)
			spec->text = TEXT_MIME;
		else
			return -EINVAL; /* "0", "a", top-level "MIME" */
		return 0;
	}
}

/* Lines. */

/* The start of the next line after the one containing i, or end. */
static size_t next_line(const char *d, size_t i, size_t end)
{
	const char *nl = i < end ? memchr(d + i, '\n', end - i) : NULL;

	return nl ? (size_t)(nl - d) + 1 : end;
}

/* Is the line at i (within end) empty: "\n" or "\r\n"? */
static bool blank_line(const char *d, size_t i, size_t end)
{
	return (i < end && d[i] == '\n') || (i + 1 < end && d[i] == '\r' && d[i + 1] == '\n');
}

/* Splits [start, end) into header and body. */
static struct entity make_entity(const char *d, size_t start, size_t end, bool message,
				 bool digest_default)
{
	struct entity e = {
		.start = start,
		.body = end,
		.end = end,
		.message = message,
		.digest_default = digest_default,
	};

	for (size_t i = start; i < end; i = next_line(d, i, end)) {
		if (blank_line(d, i, end)) {
			e.body = next_line(d, i, end);
			break;
		}
	}
	return e;
}

/* Content-Type. */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skips folding whitespace and (nested) comments. */
static size_t skip_cfws(const char *d, size_t i, size_t end)
{
	while (i < end) {
		if (is_ws(d[i])) {
			i++;
		} else if (d[i] == '(') {
			unsigned depth = 0;

			for (; i < end; i++) {
				if (d[i] == '\\' && i + 1 < end)
					i++;
				else if (d[i] == '(')
					depth++;
				else if (d[i] == ')' && --depth == 0)
					break;
			}
			if (i < end)
				i++;
		} else {
			break;
		}
	}
	return i;
}

/* RFC 2045 token characters. */
static bool is_token(char c)
{
	unsigned char u = (unsigned char)c;

	return u > 32 && u < 127 && !strchr("()<>@,;:\\\"/[]?=", c);
}

static size_t skip_token(const char *d, size_t i, size_t end)
{
	while (i < end && is_token(d[i]))
		i++;
	return i;
}

/*
 * Reads a parameter value at i into out (at most cap bytes; *out_len is
 * set to cap + 1 when it does not fit).  Quoted strings lose their
 * quoting and folding; a bare value runs to ';', whitespace or a comment
 * (lenient: '=' and other tspecials are common in unquoted boundaries).
 */
static size_t read_value(const char *d, size_t i, size_t end, char *out, size_t cap,
			 size_t *out_len)
{
	size_t n = 0;

	if (i < end && d[i] == '"') {
		for (i++; i < end && d[i] != '"'; i++) {
			if (d[i] == '\\' && i + 1 < end)
				i++;
			else if (d[i] == '\r' || d[i] == '\n')
				continue;
			if (n < cap)
				out[n] = d[i];
			if (n <= cap)
				n++;
		}
		if (i < end)
			i++;
	} else {
		for (; i < end && d[i] != ';' && d[i] != '(' && !is_ws(d[i]); i++) {
			if (n < cap)
				out[n] = d[i];
			if (n <= cap)
				n++;
		}
	}
	*out_len = n;
	return i;
}

static void parse_content_type(const char *d, size_t i, size_t end, struct ctype *ct)
{
	size_t t0, t1, s0, s1;
	bool multipart;

	i = skip_cfws(d, i, end);
	t0 = i;
	i = t1 = skip_token(d, i, end);
	i = skip_cfws(d, i, end);
	if (t0 == t1 || i >= end || d[i] != '/')
		return; /* malformed: text/plain */
	i = skip_cfws(d, i + 1, end);
	s0 = i;
	i = s1 = skip_token(d, i, end);
	if (s0 == s1)
		return;
	ct->kind = CT_LEAF;
	ct->digest = false;
	multipart = keyword_is(d + t0, t1 - t0, "multipart");
	if (keyword_is(d + t0, t1 - t0, "message") &&
	    (keyword_is(d + s0, s1 - s0, "rfc822") || keyword_is(d + s0, s1 - s0, "global")))
		ct->kind = CT_MESSAGE;
	if (!multipart)
		return;
	ct->digest = keyword_is(d + s0, s1 - s0, "digest");

	/* Parameters: [;] attribute = value, lenient about stray text. */
	while (i < end) {
		size_t a0, a1, n;
		char value[BOUNDARY_MAX];

		i = skip_cfws(d, i, end);
		if (i < end && d[i] == ';') {
			i++;
			continue;
		}
		a0 = i;
		i = a1 = skip_token(d, i, end);
		i = skip_cfws(d, i, end);
		if (a0 == a1 || i >= end || d[i] != '=') {
			/* Not a parameter: on to the next ';'. */
			while (i < end && d[i] != ';')
				i++;
			continue;
		}
		i = skip_cfws(d, i + 1, end);
		i = read_value(d, i, end, value, sizeof(value), &n);
		if (!keyword_is(d + a0, a1 - a0, "boundary"))
			continue;
		if (n >= 1 && n <= sizeof(value)) {
			memcpy(ct->boundary, value, n);
			ct->boundary_len = n;
			ct->kind = CT_MULTIPART;
		}
		return; /* the first boundary counts, usable or not */
	}
}

/* The Content-Type of an entity (its first Content-Type field). */
static void content_type(const char *d, const struct entity *e, struct ctype *ct)
{
	size_t i = e->start;

	ct->kind = e->digest_default ? CT_MESSAGE : CT_LEAF;
	ct->digest = false;
	ct->boundary_len = 0;
	while (i < e->body) {
		size_t le = next_line(d, i, e->body), n = i, name_end, vend;

		if (d[i] == ' ' || d[i] == '\t' || blank_line(d, i, e->body)) {
			i = le;
			continue;
		}
		while (n < le && d[n] != ':' && !is_ws(d[n]))
			n++;
		name_end = n;
		while (n < le && (d[n] == ' ' || d[n] == '\t'))
			n++;
		/* The value goes on over continuation lines. */
		vend = le;
		while (vend < e->body && (d[vend] == ' ' || d[vend] == '\t'))
			vend = next_line(d, vend, e->body);
		if (n < le && d[n] == ':' && keyword_is(d + i, name_end - i, "Content-Type")) {
			parse_content_type(d, n + 1, vend, ct);
			return;
		}
		i = vend;
	}
}

/* Multipart bodies. */

/*
 * Is the line at i a delimiter line of boundary?  *close tells whether it
 * is the close delimiter; *after is the start of the next line.
 */
static bool delimiter_line(const char *d, size_t i, size_t end, const struct ctype *ct, bool *close,
			   size_t *after)
{
	size_t n = ct->boundary_len, j;

	if (end - i < 2 + n || d[i] != '-' || d[i + 1] != '-' ||
	    memcmp(d + i + 2, ct->boundary, n) != 0)
		return false;
	j = i + 2 + n;
	*close = end - j >= 2 && d[j] == '-' && d[j + 1] == '-';
	*after = next_line(d, j, end);
	return true;
}

/* The next delimiter line at or after the line start i; end if none. */
static size_t find_delimiter(const char *d, size_t i, size_t end, const struct ctype *ct,
			     bool *close, size_t *after)
{
	for (; i < end; i = next_line(d, i, end))
		if (delimiter_line(d, i, end, ct, close, after))
			return i;
	return end;
}

/* Part number of the multipart body [body, end): [*ret_start, *ret_end). */
static int find_part(const char *d, size_t body, size_t end, const struct ctype *ct,
		     uint32_t number, size_t *ret_start, size_t *ret_end)
{
	bool close;
	size_t after, i;
	uint32_t count = 0;

	i = find_delimiter(d, body, end, ct, &close, &after);
	while (i < end && !close) {
		size_t start = after, next, pend;

		next = find_delimiter(d, start, end, ct, &close, &after);
		count++;
		if (count == number) {
			pend = next;
			/* The line break before the delimiter belongs to it. */
			if (next < end && next > start) {
				pend = next - 1;
				if (pend > start && d[pend - 1] == '\r')
					pend--;
			}
			*ret_start = start;
			*ret_end = pend;
			return 0;
		}
		i = next;
	}
	return -CPMSYNC_E_NOT_FOUND;
}

/* The encapsulated message of a message/rfc822 part. */
static struct entity encapsulated(const char *d, const struct entity *part)
{
	return make_entity(d, part->body, part->end, true, false);
}

/*
 * Sub-part number of cur into *cur.  too_deep: the limit is reached, so
 * that an entity with sub-parts is -CPMSYNC_E_PROTOCOL (one without them
 * is still -CPMSYNC_E_NOT_FOUND).
 */
static int descend(const char *d, struct entity *cur, uint32_t number, bool too_deep)
{
	struct ctype ct;
	size_t s, e;
	int r;

	content_type(d, cur, &ct);
	if (!cur->message && ct.kind == CT_MESSAGE) {
		*cur = encapsulated(d, cur);
		content_type(d, cur, &ct);
	}
	if (too_deep && (ct.kind == CT_MULTIPART || cur->message))
		return -CPMSYNC_E_PROTOCOL;
	if (ct.kind == CT_MULTIPART) {
		r = find_part(d, cur->body, cur->end, &ct, number, &s, &e);
		if (r < 0)
			return r;
		*cur = make_entity(d, s, e, false, ct.digest);
		return 0;
	}
	if (cur->message && number == 1) {
		/* The body of a non-multipart message, with the message
		 * header as its MIME header. */
		cur->message = false;
		return 0;
	}
	return -CPMSYNC_E_NOT_FOUND;
}

int cpmsync_message_section(const char *data, size_t len, const char *section, size_t *ret_off,
			    size_t *ret_len)
{
	struct section_spec spec;
	struct entity cur;
	size_t s, e;
	int r;

	if ((!data && len) || !section || !ret_off || !ret_len)
		return -EINVAL;
	r = parse_spec(section, &spec);
	if (r < 0)
		return r;
	if (!data)
		data = "";

	cur = make_entity(data, 0, len, true, false);
	for (size_t k = 0; k < spec.n_parts; k++) {
		r = descend(data, &cur, spec.parts[k], k >= CPMSYNC_SECTION_MAX_DEPTH);
		if (r < 0)
			return r;
	}

	if (spec.n_parts == 0 && spec.text == TEXT_NONE) {
		s = 0;
		e = len;
	} else if (spec.text == TEXT_NONE) {
		s = cur.body;
		e = cur.end;
	} else if (spec.text == TEXT_MIME) {
		s = cur.start;
		e = cur.body;
	} else {
		if (spec.n_parts > 0) {
			struct ctype ct;

			content_type(data, &cur, &ct);
			if (ct.kind != CT_MESSAGE)
				return -CPMSYNC_E_NOT_FOUND;
			cur = encapsulated(data, &cur);
		}
		s = spec.text == TEXT_HEADER ? cur.start : cur.body;
		e = spec.text == TEXT_HEADER ? cur.body : cur.end;
	}
	*ret_off = s;
	*ret_len = e - s;
	return 0;
}
