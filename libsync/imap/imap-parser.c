/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Incremental IMAP response parser.
 *
 * A response is a sequence of "segments": lines ending in LF (or CRLF),
 * each but the last ending in a literal size ({n}, {n+}, ~{n}), with the
 * literal's payload between them.  Input bytes are handled in three ways:
 *
 *  - segment bytes are checked as they arrive (NUL, bare CR, length; see
 *    check_segment()) and kept in p->line only while the segment is
 *    incomplete.  A segment that arrives whole in one feed is used in place.
 *  - a complete segment is tokenized once, in one pass, into the argument
 *    vectors; tokenizing resumes after a literal at a token boundary, so
 *    the only state carried between segments is the stack of open lists.
 *  - literal payloads are copied into p->text (kept literals) or handed to
 *    literal_data straight from the caller's buffer (streamed literals).
 *
 * While a response is built, argument strings and list children are
 * recorded as offsets (into p->text and p->out), because those buffers may
 * move when they grow; fix_args() turns them into pointers once the
 * response is complete.  Every buffer has a maximum derived from the
 * limits, so the memory of one response is bounded.
 */
#include "imap/imap-parser.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/error.h>

#include "util/buf.h"
#include "util/macro.h"

const struct imap_parser_limits imap_parser_default_limits = {
	.max_line = 65536,
	.max_depth = 64,
	.max_literal_inline = 1024 * 1024,
	.max_inline_total = 16 * 1024 * 1024,
	.max_literal_streamed = UINT64_C(4) * 1024 * 1024 * 1024,
};

/* Buffers bigger than this are freed between responses. */
#define KEEP_ALLOC (256 * 1024)
#define NO_OFF	   SIZE_MAX

struct argvec {
	struct imap_arg *v;
	size_t n;
	size_t alloc;
	size_t max;
};

enum parse_state {
	PS_LINE,
	PS_LITERAL,
};

enum parse_phase {
	PH_START, /* the next segment is the first of a response */
	PH_DATA,  /* the next segment continues data arguments */
};

enum tok_mode {
	TOK_DATA,
	TOK_CODE, /* inside [resp-text-code]: ']' ends, no literals */
};

/* What tokenize() and the segment parsers found at the end. */
enum {
	SEG_LITERAL = 0,  /* a literal follows the segment */
	SEG_COMPLETE = 1, /* the response is complete */
	SEG_CODE_END = 2, /* TOK_CODE: reached the closing ']' */
};

struct imap_parser {
	struct imap_parser_limits lim;
	struct imap_parser_callbacks cb;
	void *userdata;

	int error;
	char errmsg[256];

	enum parse_state state;
	enum parse_phase phase;
	bool resp_ready; /* the last feed returned a response */

	struct buf line;   /* current segment, while it is incomplete */
	size_t line_total; /* bytes of the earlier segments of the response */

	uint64_t lit_left;
	bool lit_stream;
	size_t inline_total;

	struct buf text;     /* NUL-separated strings of the response */
	struct argvec stack; /* items of the open lists, outermost first */
	struct argvec out;   /* children of closed lists */
	size_t *frames;	     /* index in stack where each open list starts */
	size_t nframes;
	size_t frames_alloc;

	struct imap_response resp;
	size_t tag_off, code_off, raw_off, text_off, name_off;
	bool code_tokenized;

	/* A FETCH response over max_line being skipped (long_fetch): the
	 * literal bytes still to skip, and the last bytes of the line (its
	 * end tells whether a literal follows). */
	bool skipping;
	uint64_t skip_lit;
	char skip_tail[32];
	size_t skip_tail_len;
};

static const struct imap_arg empty_args[1];

/*
 * Bytes that end an atom (or need a closer look: '[' and ']').  Control
 * characters, SP, '(', ')', '"'.  '{' is only special at the start of a
 * token, '\\', '%' and '*' are atom characters (flags, list wildcards).
 */
static const bool atom_stop[256] = {
	[0 ... 0x1f] = true, [' '] = true, ['('] = true, [')'] = true,
	['"'] = true,	     ['['] = true, [']'] = true, [0x7f] = true,
};

/* Bytes not allowed in a tag (ASTRING-CHAR minus '+', leniently). */
static const bool tag_bad[256] = {
	[0 ... 0x20] = true, ['('] = true, [')'] = true, ['{'] = true,		 ['"'] = true,
	['\\'] = true,	     ['%'] = true, ['*'] = true, [0x7f ... 0xff] = true,
};

static inline const char *off_ptr(size_t off)
{
	return (const char *)(uintptr_t)off;
}

static inline size_t ptr_off(const void *ptr)
{
	return (size_t)(uintptr_t)ptr;
}

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static size_t sat_add(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static int fail(struct imap_parser *p, const char *fmt, ...) ATTR_FORMAT(2, 3);
static int fail(struct imap_parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
	va_end(ap);
	return -CPMSYNC_E_PROTOCOL;
}

/* Maps a buf error: -E2BIG cannot happen within the limits, but if it
 * does it is the server's fault. */
static int buf_error(struct imap_parser *p, int r)
{
	if (r == -E2BIG)
		return fail(p, "response larger than its limits allow");
	return r;
}

static int argvec_reserve(struct imap_parser *p, struct argvec *v, size_t extra)
{
	struct imap_arg *n;
	size_t want;

	if (v->n + extra <= v->alloc)
		return 0;
	if (extra > v->max || v->n > v->max - extra)
		return fail(p, "too many arguments in response");
	want = v->alloc ? v->alloc : 16;
	while (want < v->n + extra)
		want *= 2;
	if (want > v->max)
		want = v->max;
	n = reallocarray(v->v, want, sizeof(*n));
	if (!n)
		return -ENOMEM;
	v->v = n;
	v->alloc = want;
	return 0;
}

static int argvec_push(struct imap_parser *p, struct argvec *v, const struct imap_arg *a)
{
	int r = argvec_reserve(p, v, 1);

	if (r < 0)
		return r;
	v->v[v->n++] = *a;
	return 0;
}

/* Appends s[0..n) and a NUL separator to p->text; *ret_off is where. */
static int text_add(struct imap_parser *p, const char *s, size_t n, size_t *ret_off)
{
	int r = buf_reserve(&p->text, sat_add(n, 1));

	if (r < 0)
		return buf_error(p, r);
	*ret_off = p->text.len;
	if (n)
		memcpy(p->text.data + p->text.len, s, n);
	p->text.len += n + 1;
	p->text.data[p->text.len - 1] = '\0';
	p->text.data[p->text.len] = '\0';
	return 0;
}

static void reset_response(struct imap_parser *p)
{
	if (p->text.alloc > KEEP_ALLOC)
		buf_free(&p->text);
	buf_reset(&p->text);
	if (p->line.alloc > KEEP_ALLOC)
		buf_free(&p->line);
	buf_reset(&p->line);
	if (p->stack.alloc * sizeof(struct imap_arg) > KEEP_ALLOC) {
		free(p->stack.v);
		p->stack.v = NULL;
		p->stack.alloc = 0;
	}
	if (p->out.alloc * sizeof(struct imap_arg) > KEEP_ALLOC) {
		free(p->out.v);
		p->out.v = NULL;
		p->out.alloc = 0;
	}
	p->stack.n = p->out.n = 0;
	p->nframes = 0;
	p->line_total = 0;
	p->state = PS_LINE;
	p->phase = PH_START;
	p->lit_left = 0;
	p->lit_stream = false;
	p->inline_total = 0;
	p->resp_ready = false;
	p->tag_off = p->code_off = p->raw_off = NO_OFF;
	p->text_off = p->name_off = NO_OFF;
	p->code_tokenized = false;
	p->skipping = false;
	p->skip_lit = 0;
	p->skip_tail_len = 0;
	memset(&p->resp, 0, sizeof(p->resp));
}

int imap_parser_new(const struct imap_parser_limits *limits,
		    const struct imap_parser_callbacks *callbacks, void *userdata,
		    struct imap_parser **ret_parser)
{
	struct imap_parser *p;
	size_t text_max, args_max;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->lim = limits ? *limits : imap_parser_default_limits;
	/* keep the arithmetic below far from overflowing */
	if (p->lim.max_line > SIZE_MAX / 16)
		p->lim.max_line = SIZE_MAX / 16;
	if (p->lim.max_inline_total > SIZE_MAX / 4)
		p->lim.max_inline_total = SIZE_MAX / 4;
	if (p->lim.max_literal_inline > p->lim.max_inline_total)
		p->lim.max_literal_inline = p->lim.max_inline_total;
	if (callbacks)
		p->cb = *callbacks;
	p->userdata = userdata;

	/*
	 * Every token costs at least one byte of the line and adds at most
	 * one NUL; kept literals add their size plus a NUL (a literal costs
	 * at least 5 line bytes, so those NULs are covered too).
	 */
	text_max = sat_add(3 * (p->lim.max_line + 2) + 64, p->lim.max_inline_total);
	args_max = p->lim.max_line + 16;
	buf_init(&p->text, text_max);
	buf_init(&p->line, p->lim.max_line + 2);
	p->stack.max = args_max;
	p->out.max = args_max;
	reset_response(p);
	*ret_parser = p;
	return 0;
}

void imap_parser_set_callbacks(struct imap_parser *p, const struct imap_parser_callbacks *callbacks,
			       void *userdata)
{
	p->cb = callbacks ? *callbacks : (struct imap_parser_callbacks){ 0 };
	p->userdata = userdata;
}

struct imap_parser *imap_parser_free(struct imap_parser *p)
{
	if (!p)
		return NULL;
	buf_free(&p->text);
	buf_free(&p->line);
	free(p->stack.v);
	free(p->out.v);
	free(p->frames);
	free(p);
	return NULL;
}

void imap_parser_reset(struct imap_parser *p)
{
	p->error = 0;
	p->errmsg[0] = '\0';
	reset_response(p);
}

const char *imap_parser_error(const struct imap_parser *p)
{
	return p->error ? p->errmsg : NULL;
}

/* The UID of a FETCH response's item list s..e (after "FETCH ("), cut
 * anywhere: 0 when no "UID n" comes whole before the cut.  Values are
 * skipped by their syntax (lists, quoted strings, atoms; a section's
 * brackets may hold spaces). */
static uint32_t scan_fetch_uid(const char *s, const char *e)
{
	while (s < e) {
		const char *k = s;
		unsigned depth = 0;

		while (s < e && *s != ' ' && *s != '(' && *s != ')') {
			if (*s == '[') {
				s = memchr(s, ']', (size_t)(e - s));
				if (!s)
					return 0;
			}
			s++;
		}
		if (s == e || *s != ' ')
			return 0;
		s++;
		if (s - k == 4 && strncasecmp(k, "UID ", 4) == 0) {
			uint32_t n = 0;
			const char *q = s;

			for (; q < e && is_digit(*q); q++) {
				uint32_t d = (uint32_t)(*q - '0');

				if (n > (UINT32_MAX - d) / 10)
					return 0;
				n = n * 10 + d;
			}
			return q > s && q < e && (*q == ' ' || *q == ')') ? n : 0;
		}
		/* the value */
		do {
			if (s == e)
				return 0;
			if (*s == '"') {
				for (s++; s < e && *s != '"'; s++)
					if (*s == '\\' && ++s == e)
						return 0;
				if (s == e)
					return 0;
				s++;
			} else if (*s == '(') {
				depth++;
				s++;
			} else if (*s == ')') {
				if (depth == 0)
					return 0;
				depth--;
				s++;
			} else if (*s == ' ') {
				if (depth == 0)
					break;
				s++;
			} else {
				s++;
			}
		} while (depth > 0 || (s < e && *s != ' ' && *s != ')'));
		if (s < e && *s == ' ')
			s++;
	}
	return 0;
}

/* The current response went over max_line in its segment seg[0..n): may
 * it be skipped (long_fetch)?  Then the parser is skipping it. */
static bool skip_long(struct imap_parser *p, const char *seg, size_t n)
{
	const char *s = seg, *e = seg + n, *w;
	uint32_t number = 0, uid = 0;
	uint64_t v;
	size_t end;

	if (!p->cb.long_fetch)
		return false;
	if (p->phase == PH_START) {
		if (n < 2 || s[0] != '*' || s[1] != ' ')
			return false;
		s += 2;
		for (w = s; s < e && is_digit(*s); s++) {
			uint32_t d = (uint32_t)(*s - '0');

			if (number > (UINT32_MAX - d) / 10)
				return false;
			number = number * 10 + d;
		}
		if (s == w || e - s < 8 || strncasecmp(s, " FETCH (", 8) != 0)
			return false;
		uid = scan_fetch_uid(s + 8, e);
	} else {
		size_t start = p->nframes ? p->frames[0] : 0;

		if (p->resp.kind != IMAP_RESP_UNTAGGED || !p->resp.has_number ||
		    p->name_off == NO_OFF || strcasecmp(p->text.data + p->name_off, "FETCH") != 0 ||
		    p->nframes == 0)
			return false;
		number = p->resp.number;
		/* the items of the FETCH list read so far (earlier segments;
		 * those of its open sublists from frames[1] on) */
		end = p->nframes > 1 ? p->frames[1] : p->stack.n;
		for (size_t i = start; i + 1 < end; i++) {
			const struct imap_arg *k = &p->stack.v[i], *a = &p->stack.v[i + 1];
			struct imap_arg c;

			if (k->type != IMAP_ARG_ATOM || a->type != IMAP_ARG_ATOM ||
			    strcasecmp(p->text.data + ptr_off(k->u.s.str), "UID") != 0)
				continue;
			c = *a;
			c.u.s.str = p->text.data + ptr_off(a->u.s.str);
			if (imap_arg_get_u64(&c, &v) && v && v <= UINT32_MAX)
				uid = (uint32_t)v;
			break;
		}
	}
	if (uid == 0 || !p->cb.long_fetch(p->userdata, number, uid))
		return false;
	p->skipping = true;
	p->skip_lit = 0;
	p->skip_tail_len = 0;
	return true;
}

/* Bytes of a line being skipped: the last ones are kept. */
static void skip_tail_add(struct imap_parser *p, const char *d, size_t n)
{
	size_t keep = sizeof(p->skip_tail);

	if (n >= keep) {
		memcpy(p->skip_tail, d + n - keep, keep);
		p->skip_tail_len = keep;
		return;
	}
	if (p->skip_tail_len + n > keep) {
		size_t drop = p->skip_tail_len + n - keep;

		memmove(p->skip_tail, p->skip_tail + drop, p->skip_tail_len - drop);
		p->skip_tail_len -= drop;
	}
	memcpy(p->skip_tail + p->skip_tail_len, d, n);
	p->skip_tail_len += n;
}

/* A line of a skipped response ended (skip_tail ends in LF): SEG_LITERAL
 * when a literal size ends it (skip_lit set), else SEG_COMPLETE. */
static int skip_line_end(struct imap_parser *p)
{
	const char *t = p->skip_tail, *e = t + p->skip_tail_len - 1, *q;
	uint64_t size = 0;

	if (e > t && e[-1] == '\r')
		e--;
	if (e == t || e[-1] != '}')
		return SEG_COMPLETE;
	q = e - 1;
	if (q > t && q[-1] == '+')
		q--;
	while (q > t && is_digit(q[-1]))
		q--;
	if (q == t || q[-1] != '{' || !is_digit(*q))
		return SEG_COMPLETE; /* an atom cannot hold '{': not a literal */
	for (; is_digit(*q); q++) {
		if (size > (UINT64_MAX - 9) / 10 ||
		    size * 10 + (uint64_t)(*q - '0') > p->lim.max_literal_streamed)
			return fail(p,
				    "literal of a skipped FETCH response exceeds the limit of "
				    "%" PRIu64 " bytes",
				    p->lim.max_literal_streamed);
		size = size * 10 + (uint64_t)(*q - '0');
	}
	p->skip_lit = size;
	return SEG_LITERAL;
}

/*
 * Checks the bytes seg[old..n) that just joined the current segment
 * seg[0..n).  Errors are reported at the earliest position of the response
 * where the prefix read so far proves them, so that any chunking of the
 * input gives the same error: a line too long (the bytes read, minus a
 * pending CR or a final CRLF/LF, exceed max_line), then a bare CR (a CR
 * followed by anything but LF), then a NUL.  cut means that more bytes
 * followed which were not passed because they cannot fit.
 */
static int check_segment(struct imap_parser *p, const char *seg, size_t old, size_t n, bool cut)
{
	size_t max = p->lim.max_line, base = p->line_total;
	size_t best = SIZE_MAX;
	const char *q;
	int kind = 0;

	/* Content length after byte j: j + 1 - t, t <= 2, so only
	 * j = max and j = max + 1 can be the first to exceed max. */
	for (size_t j = base + old > max ? base + old : max; j < base + n && j <= max + 1; j++) {
		size_t i = j - base, t = 0;

		if (seg[i] == '\r')
			t = 1;
		else if (seg[i] == '\n')
			t = 1 + (i > 0 && seg[i - 1] == '\r');
		if (j + 1 - t > max) {
			best = j;
			kind = 1;
			break;
		}
	}

	for (size_t from = old > 0 ? old - 1 : 0; from + 1 < n;) {
		q = memchr(seg + from, '\r', n - 1 - from);
		if (!q)
			break;
		if (q[1] != '\n') {
			size_t j = base + (size_t)(q - seg) + 1;

			if (j < best) {
				best = j;
				kind = 2;
			}
			break;
		}
		from = (size_t)(q - seg) + 1;
	}

	q = n > old ? memchr(seg + old, '\0', n - old) : NULL;
	if (q && base + (size_t)(q - seg) < best)
		kind = 3;

	if (kind == 0 && cut)
		kind = 1;
	switch (kind) {
	case 1:
		if (skip_long(p, seg, n))
			return 1;
		return fail(p, "response line longer than %zu bytes", max);
	case 2:
		return fail(p, "bare CR in response line");
	case 3:
		return fail(p, "NUL byte in response line");
	}
	return 0;
}

static int push_str(struct imap_parser *p, enum imap_arg_type type, const char *s, size_t n)
{
	struct imap_arg a = { .type = type };
	size_t off;
	int r;

	if (type == IMAP_ARG_ATOM && n == 3 && strncasecmp(s, "NIL", 3) == 0)
		return argvec_push(p, &p->stack, &(struct imap_arg){ .type = IMAP_ARG_NIL });
	r = text_add(p, s, n, &off);
	if (r < 0)
		return r;
	a.u.s.str = off_ptr(off);
	a.u.s.len = n;
	return argvec_push(p, &p->stack, &a);
}

static int open_list(struct imap_parser *p)
{
	if (p->nframes >= p->lim.max_depth)
		return fail(p, "list nesting deeper than %u", p->lim.max_depth);
	if (p->nframes == p->frames_alloc) {
		size_t n = p->frames_alloc ? p->frames_alloc * 2 : 8;
		size_t *f = reallocarray(p->frames, n, sizeof(*f));

		if (!f)
			return -ENOMEM;
		p->frames = f;
		p->frames_alloc = n;
	}
	p->frames[p->nframes++] = p->stack.n;
	return 0;
}

static int close_list(struct imap_parser *p)
{
	struct imap_arg a = { .type = IMAP_ARG_LIST };
	size_t start, count;
	int r;

	if (p->nframes == 0)
		return fail(p, "unexpected ')'");
	start = p->frames[--p->nframes];
	count = p->stack.n - start;
	r = argvec_reserve(p, &p->out, count);
	if (r < 0)
		return r;
	a.u.list.args = (const struct imap_arg *)off_ptr(p->out.n);
	a.u.list.count = count;
	if (count)
		memcpy(p->out.v + p->out.n, p->stack.v + start, count * sizeof(*p->out.v));
	p->out.n += count;
	p->stack.n = start;
	/* cannot fail: the list's children freed at least one slot, or
	 * "()" is pushed where the stack has room for it */
	return argvec_push(p, &p->stack, &a);
}

/* *ps points after the opening quote. */
static int parse_quoted(struct imap_parser *p, const char **ps, const char *e)
{
	const char *s = *ps;
	size_t off;
	char *o, *start;
	int r;

	r = buf_reserve(&p->text, (size_t)(e - s) + 1);
	if (r < 0)
		return buf_error(p, r);
	off = p->text.len;
	start = o = p->text.data + off;
	while (s < e) {
		char c = *s;

		if (c == '"')
			break;
		if (c == '\\' && s + 1 < e && (s[1] == '"' || s[1] == '\\')) {
			*o++ = s[1];
			s += 2;
			continue;
		}
		/* other escapes are kept as sent */
		*o++ = c;
		s++;
	}
	if (s == e)
		return fail(p, "unterminated quoted string");
	*o = '\0';
	p->text.len += (size_t)(o - start) + 1;
	p->text.data[p->text.len] = '\0';
	*ps = s + 1;
	return argvec_push(p, &p->stack,
			   &(struct imap_arg){
				   .type = IMAP_ARG_STRING,
				   .u.s.str = off_ptr(off),
				   .u.s.len = (size_t)(o - start),
			   });
}

bool imap_parser_literal_context_u64(const struct imap_parser *p, const char *key, uint64_t *ret)
{
	size_t start = p->nframes ? p->frames[p->nframes - 1] : 0;

	for (size_t i = start; i + 1 < p->stack.n; i++) {
		const struct imap_arg *k = &p->stack.v[i], *v = &p->stack.v[i + 1];
		struct imap_arg a;

		if (k->type != IMAP_ARG_ATOM || v->type != IMAP_ARG_ATOM ||
		    strcasecmp(p->text.data + ptr_off(k->u.s.str), key) != 0)
			continue;
		a = *v;
		a.u.s.str = p->text.data + ptr_off(v->u.s.str);
		return imap_arg_get_u64(&a, ret);
	}
	return false;
}

static const char *item_before_literal(const struct imap_parser *p)
{
	size_t start = p->nframes ? p->frames[p->nframes - 1] : 0;
	const struct imap_arg *a;

	if (p->stack.n <= start)
		return NULL;
	a = &p->stack.v[p->stack.n - 1];
	if (a->type != IMAP_ARG_ATOM)
		return NULL;
	return p->text.data + ptr_off(a->u.s.str);
}

/* s points at '{'; the literal size must end the segment's content. */
static int start_literal(struct imap_parser *p, const char *s, const char *e, bool lit8)
{
	const char *digits = s + 1, *q = digits;
	uint64_t size = 0, limit;
	bool overflow = false, stream = false;
	bool can_stream = p->cb.literal_begin && p->lim.max_literal_streamed;
	struct imap_arg a = { .literal8 = lit8 };
	size_t ndigits;
	int r;

	while (q < e && is_digit(*q)) {
		unsigned d = (unsigned)(*q - '0');

		if (size > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			size = size * 10 + d;
		q++;
	}
	ndigits = (size_t)(q - digits);
	if (q < e && *q == '+' && ndigits)
		q++;
	if (ndigits == 0 || q == e || *q != '}')
		return fail(p, "malformed literal size");
	if (q + 1 != e)
		return fail(p, "literal size not at the end of the line");

	limit = p->lim.max_literal_inline;
	if (can_stream && p->lim.max_literal_streamed > limit)
		limit = p->lim.max_literal_streamed;
	if (overflow || size > limit)
		return fail(p, "literal of %s%.*s bytes exceeds the limit of %" PRIu64,
			    ndigits > 40 ? "..." : "", (int)(ndigits > 40 ? 40 : ndigits),
			    ndigits > 40 ? digits + ndigits - 40 : digits, limit);

	if (p->cb.literal_check) {
		const char *name = p->name_off == NO_OFF ? NULL : p->text.data + p->name_off;

		r = p->cb.literal_check(p->userdata, p->resp.number, name, item_before_literal(p),
					size);
		if (r < 0)
			return fail(p, "literal of %" PRIu64 " bytes refused", size);
	}
	if (can_stream && size <= p->lim.max_literal_streamed) {
		const char *name = p->name_off == NO_OFF ? NULL : p->text.data + p->name_off;

		stream = p->cb.literal_begin(p->userdata, p->resp.number, name,
					     item_before_literal(p), size);
	}
	if (stream) {
		a.type = IMAP_ARG_STREAMED;
		a.u.size = size;
		r = argvec_push(p, &p->stack, &a);
		if (r < 0)
			return r;
		p->lit_stream = true;
		p->lit_left = size;
		if (size == 0 && p->cb.literal_end)
			p->cb.literal_end(p->userdata);
	} else {
		if (size > p->lim.max_literal_inline)
			return fail(p, "literal of %" PRIu64 " bytes exceeds the limit of %zu",
				    size, p->lim.max_literal_inline);
		if (size > p->lim.max_inline_total - p->inline_total)
			return fail(p, "literals of one response exceed the limit of %zu bytes",
				    p->lim.max_inline_total);
		/* the payload is appended as it arrives: memory follows the
		 * bytes received, not the size announced */
		a.type = IMAP_ARG_LITERAL;
		a.u.s.str = off_ptr(p->text.len);
		a.u.s.len = (size_t)size;
		r = argvec_push(p, &p->stack, &a);
		if (r < 0)
			return r;
		p->inline_total += (size_t)size;
		p->lit_stream = false;
		p->lit_left = size;
		if (size == 0) {
			r = buf_append_char(&p->text, '\0');
			if (r < 0)
				return buf_error(p, r);
		}
	}
	p->phase = PH_DATA;
	if (size)
		p->state = PS_LITERAL;
	return SEG_LITERAL;
}

/*
 * Tokenizes s..e (a segment's content, or the arguments of a response
 * code) onto p->stack.  Returns SEG_LITERAL when it ends in a literal size,
 * SEG_COMPLETE at the end of a data response, SEG_CODE_END with *ret_end
 * at the code's ']', or an error.
 */
static int tokenize(struct imap_parser *p, const char *s, const char *e, enum tok_mode mode,
		    const char **ret_end)
{
	bool no_rbracket = false;
	int r;

	while (s < e) {
		unsigned char c = (unsigned char)*s;
		const char *a;

		switch (c) {
		case ' ':
			s++;
			continue;
		case '(':
			r = open_list(p);
			if (r < 0)
				return r;
			s++;
			continue;
		case ')':
			r = close_list(p);
			if (r < 0)
				return r;
			s++;
			continue;
		case '"':
			s++;
			r = parse_quoted(p, &s, e);
			if (r < 0)
				return r;
			continue;
		case '{':
			if (mode == TOK_CODE)
				return fail(p, "literal in response code");
			return start_literal(p, s, e, false);
		case '~':
			if (s + 1 < e && s[1] == '{') {
				if (mode == TOK_CODE)
					return fail(p, "literal in response code");
				return start_literal(p, s + 1, e, true);
			}
			break;
		case ']':
			if (mode != TOK_CODE)
				break;
			if (p->nframes)
				return fail(p, "unterminated list in response code");
			*ret_end = s;
			return SEG_CODE_END;
		default:
			if (c < 0x20 || c == 0x7f)
				return fail(p, "unexpected control character 0x%02x in response",
					    c);
		}

		/* an atom; '[' runs to the next ']', spaces and all */
		a = s;
		for (;;) {
			while (s < e && !atom_stop[(unsigned char)*s])
				s++;
			if (s == e)
				break;
			if (*s == '[') {
				const char *q = NULL;

				if (!no_rbracket)
					q = memchr(s + 1, ']', (size_t)(e - s - 1));
				if (q) {
					s = q + 1;
					continue;
				}
				no_rbracket = true;
				s++;
				continue;
			}
			if (*s == ']' && mode == TOK_DATA) {
				s++;
				continue;
			}
			break;
		}
		r = push_str(p, IMAP_ARG_ATOM, a, (size_t)(s - a));
		if (r < 0)
			return r;
	}
	if (mode == TOK_CODE)
		return fail(p, "unterminated response code");
	if (p->nframes)
		return fail(p, "unterminated list");
	return SEG_COMPLETE;
}

static int set_off(struct imap_parser *p, size_t *off, const char *s, const char *e)
{
	return text_add(p, s, (size_t)(e - s), off);
}

/* *ps points at '['.  Leaves *ps after the code (and one space), or
 * unchanged when there is no closing ']': then it is all text. */
static int parse_code(struct imap_parser *p, const char **ps, const char *e)
{
	const char *b = *ps + 1, *w = b, *args, *end = NULL;
	size_t text_mark = p->text.len;
	int r;

	while (w < e && *w != ' ' && *w != ']')
		w++;
	if (w == e)
		return 0;
	r = set_off(p, &p->code_off, b, w);
	if (r < 0)
		return r;
	if (*w == ']') {
		end = w;
		r = set_off(p, &p->raw_off, w, w);
		if (r < 0)
			return r;
		p->code_tokenized = true;
		goto done;
	}

	args = w + 1;
	r = tokenize(p, args, e, TOK_CODE, &end);
	if (r == SEG_CODE_END) {
		p->code_tokenized = true;
	} else if (r == -ENOMEM) {
		return r;
	} else {
		/* free text: forget the tokens, keep it raw */
		p->text.len = text_mark;
		p->stack.n = p->out.n = p->nframes = 0;
		end = memchr(args, ']', (size_t)(e - args));
		if (!end) {
			p->code_off = NO_OFF;
			return 0;
		}
		r = set_off(p, &p->code_off, b, w);
		if (r < 0)
			return r;
	}
	r = set_off(p, &p->raw_off, args, end);
	if (r < 0)
		return r;
done:
	*ps = end + 1;
	if (*ps < e && **ps == ' ')
		(*ps)++;
	return 0;
}

static bool word_is(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

static enum imap_status status_word(const char *s, size_t n)
{
	if (word_is(s, n, "OK"))
		return IMAP_STATUS_OK;
	if (word_is(s, n, "NO"))
		return IMAP_STATUS_NO;
	if (word_is(s, n, "BAD"))
		return IMAP_STATUS_BAD;
	if (word_is(s, n, "BYE"))
		return IMAP_STATUS_BYE;
	if (word_is(s, n, "PREAUTH"))
		return IMAP_STATUS_PREAUTH;
	return IMAP_STATUS_NONE;
}

static const char *scan_word(const char *s, const char *e)
{
	while (s < e && !atom_stop[(unsigned char)*s])
		s++;
	return s;
}

/* The first segment of a response: s..e is its content. */
static int parse_start(struct imap_parser *p, const char *s, const char *e)
{
	struct imap_response *resp = &p->resp;
	const char *w;
	int r;

	if (s == e)
		return fail(p, "empty response line");
	if (*s == '+') {
		resp->kind = IMAP_RESP_CONTINUATION;
		s++;
		if (s < e && *s == ' ')
			s++;
		r = set_off(p, &p->text_off, s, e);
		return r < 0 ? r : SEG_COMPLETE;
	}
	if (*s == '*') {
		if (s + 1 == e || s[1] != ' ')
			return fail(p, "missing space after '*'");
		resp->kind = IMAP_RESP_UNTAGGED;
		s += 2;
	} else {
		w = s;
		while (s < e && !tag_bad[(unsigned char)*s])
			s++;
		if (s == e || *s != ' ')
			return fail(p, "malformed response tag");
		resp->kind = IMAP_RESP_TAGGED;
		r = set_off(p, &p->tag_off, w, s);
		if (r < 0)
			return r;
		s++;
	}

	while (s < e && *s == ' ')
		s++;
	w = s;
	s = scan_word(s, e);
	resp->status = status_word(w, (size_t)(s - w));
	if (resp->kind == IMAP_RESP_TAGGED &&
	    (resp->status == IMAP_STATUS_NONE || resp->status == IMAP_STATUS_BYE ||
	     resp->status == IMAP_STATUS_PREAUTH))
		return fail(p, "tagged response without OK, NO or BAD");

	if (resp->status != IMAP_STATUS_NONE) {
		if (s < e && *s != ' ')
			return fail(p, "malformed status response");
		if (s < e)
			s++;
		if (s < e && *s == '[') {
			r = parse_code(p, &s, e);
			if (r < 0)
				return r;
		}
		r = set_off(p, &p->text_off, s, e);
		return r < 0 ? r : SEG_COMPLETE;
	}

	if (s > w && is_digit(*w)) {
		uint32_t n = 0;
		const char *q = w;

		while (q < s && is_digit(*q))
			q++;
		if (q == s) {
			for (q = w; q < s; q++) {
				unsigned dg = (unsigned)(*q - '0');

				if (n > (UINT32_MAX - dg) / 10)
					return fail(p, "response number %.*s out of range",
						    (int)(s - w > 20 ? 20 : s - w), w);
				n = n * 10 + dg;
			}
			resp->has_number = true;
			resp->number = n;
			while (s < e && *s == ' ')
				s++;
			w = s;
			s = scan_word(s, e);
		}
	}
	if (s == w)
		return fail(p, "missing response name");
	r = set_off(p, &p->name_off, w, s);
	if (r < 0)
		return r;
	p->phase = PH_DATA;
	return tokenize(p, s, e, TOK_DATA, NULL);
}

/* A complete segment (terminator included). */
static int parse_segment(struct imap_parser *p, const char *seg, size_t n)
{
	const char *e = seg + n - 1;

	if (e > seg && e[-1] == '\r')
		e--;
	if (p->phase == PH_START)
		return parse_start(p, seg, e);
	return tokenize(p, seg, e, TOK_DATA, NULL);
}

static void fix_args(struct imap_parser *p, struct imap_arg *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (a[i].type) {
		case IMAP_ARG_ATOM:
		case IMAP_ARG_STRING:
		case IMAP_ARG_LITERAL:
			a[i].u.s.str = p->text.data + ptr_off(a[i].u.s.str);
			break;
		case IMAP_ARG_LIST:
			if (a[i].u.list.count)
				a[i].u.list.args = p->out.v + ptr_off(a[i].u.list.args);
			else
				a[i].u.list.args = empty_args;
			break;
		default:
			break;
		}
	}
}

static const char *str_at(const struct imap_parser *p, size_t off)
{
	return off == NO_OFF ? NULL : p->text.data + off;
}

static const struct imap_response *finish_response(struct imap_parser *p)
{
	struct imap_response *resp = &p->resp;

	fix_args(p, p->stack.v, p->stack.n);
	fix_args(p, p->out.v, p->out.n);
	resp->tag = str_at(p, p->tag_off);
	resp->code = str_at(p, p->code_off);
	resp->code_raw = str_at(p, p->raw_off);
	resp->text = str_at(p, p->text_off);
	resp->name = str_at(p, p->name_off);
	resp->args = empty_args;
	resp->nargs = 0;
	resp->code_args = NULL;
	resp->code_nargs = 0;
	if (p->code_off != NO_OFF && p->code_tokenized) {
		resp->code_args = p->stack.n ? p->stack.v : empty_args;
		resp->code_nargs = p->stack.n;
	} else if (p->name_off != NO_OFF && p->stack.n) {
		resp->args = p->stack.v;
		resp->nargs = p->stack.n;
	}
	p->resp_ready = true;
	return resp;
}

static int feed_error(struct imap_parser *p, int r)
{
	if (r == -ENOMEM)
		snprintf(p->errmsg, sizeof(p->errmsg), "out of memory");
	else if (r != -CPMSYNC_E_PROTOCOL)
		snprintf(p->errmsg, sizeof(p->errmsg), "literal_data callback failed (error %d)",
			 r);
	p->error = r;
	return r;
}

/* d[0..n) is payload, n <= p->lit_left. */
static int feed_literal(struct imap_parser *p, const char *d, size_t n)
{
	int r;

	if (p->lit_stream) {
		if (p->cb.literal_data) {
			r = p->cb.literal_data(p->userdata, d, n);
			if (r < 0)
				return r;
		}
	} else {
		r = buf_append(&p->text, d, n);
		if (r < 0)
			return buf_error(p, r);
	}
	p->lit_left -= n;
	if (p->lit_left)
		return 0;
	if (p->lit_stream) {
		if (p->cb.literal_end)
			p->cb.literal_end(p->userdata);
	} else {
		r = buf_append_char(&p->text, '\0');
		if (r < 0)
			return buf_error(p, r);
	}
	p->state = PS_LINE;
	return 0;
}

int imap_parser_feed(struct imap_parser *p, const void *data, size_t len, size_t *ret_consumed,
		     const struct imap_response **ret_resp)
{
	const char *d = data;
	size_t pos = 0;
	int r;

	if (p->error)
		return p->error;
	if (p->resp_ready)
		reset_response(p);

	while (pos < len) {
		const char *lf, *seg;
		size_t n, cap, old, seglen;
		bool cut;

		if (p->skipping) {
			if (p->skip_lit) {
				n = len - pos;
				if (n > p->skip_lit)
					n = (size_t)p->skip_lit;
				p->skip_lit -= n;
				pos += n;
				continue;
			}
			lf = memchr(d + pos, '\n', len - pos);
			n = lf ? (size_t)(lf - (d + pos)) + 1 : len - pos;
			skip_tail_add(p, d + pos, n);
			pos += n;
			if (!lf)
				break;
			r = skip_line_end(p);
			if (r < 0)
				return feed_error(p, r);
			if (r == SEG_COMPLETE)
				reset_response(p); /* gone: on with the next one */
			continue;
		}
		if (p->state == PS_LITERAL) {
			n = len - pos;
			if (n > p->lit_left)
				n = (size_t)p->lit_left;
			r = feed_literal(p, d + pos, n);
			if (r < 0)
				return feed_error(p, r);
			pos += n;
			continue;
		}

		lf = memchr(d + pos, '\n', len - pos);
		n = lf ? (size_t)(lf - (d + pos)) + 1 : len - pos;
		cap = p->lim.max_line + 2 - p->line_total - p->line.len;
		cut = n > cap;
		if (cut)
			n = cap;
		if (p->line.len == 0 && lf && !cut) {
			seg = d + pos;
			old = 0;
			seglen = n;
		} else {
			old = p->line.len;
			r = buf_append(&p->line, d + pos, n);
			if (r < 0)
				return feed_error(p, buf_error(p, r));
			seg = p->line.data;
			seglen = p->line.len;
		}
		r = check_segment(p, seg, old, seglen, cut);
		if (r < 0)
			return feed_error(p, r);
		pos += n;
		if (r == 1) {
			/* skipping it from here (skip_long()) */
			skip_tail_add(p, seg, seglen);
			buf_reset(&p->line);
			if (!lf || cut)
				continue;
			r = skip_line_end(p);
			if (r < 0)
				return feed_error(p, r);
			if (r == SEG_COMPLETE)
				reset_response(p);
			continue;
		}
		if (!lf)
			break;

		r = parse_segment(p, seg, seglen);
		if (r < 0)
			return feed_error(p, r);
		p->line_total += seglen;
		buf_reset(&p->line);
		if (r == SEG_COMPLETE) {
			*ret_resp = finish_response(p);
			*ret_consumed = pos;
			return IMAP_PARSE_COMPLETE;
		}
	}
	*ret_consumed = pos;
	*ret_resp = NULL;
	return IMAP_PARSE_NEED_MORE;
}

bool imap_arg_atom_equals(const struct imap_arg *a, const char *s)
{
	return a->type == IMAP_ARG_ATOM && strlen(s) == a->u.s.len &&
	       strncasecmp(a->u.s.str, s, a->u.s.len) == 0;
}

static bool parse_uint(const struct imap_arg *a, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (a->type != IMAP_ARG_ATOM || a->u.s.len == 0)
		return false;
	for (size_t i = 0; i < a->u.s.len; i++) {
		char c = a->u.s.str[i];

		if (!is_digit(c))
			return false;
		if (v > (max - (uint64_t)(c - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(c - '0');
	}
	*ret = v;
	return true;
}

bool imap_arg_get_u32(const struct imap_arg *a, uint32_t *ret)
{
	uint64_t v;

	if (!parse_uint(a, UINT32_MAX, &v))
		return false;
	*ret = (uint32_t)v;
	return true;
}

bool imap_arg_get_u64(const struct imap_arg *a, uint64_t *ret)
{
	return parse_uint(a, INT64_MAX, ret);
}
