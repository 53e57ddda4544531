/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CPM objects: Type, snippet and the XML bodies (see cpm-object.h).
 *
 * Everything is bounded: at most MSG_SUMMARY_MAX_BODY body bytes are
 * given, CPM_TEXT_MAX bytes of text decoded, CPM_MAX_PARTS MIME parts
 * looked at, and XML goes to cpm-xml.c with its own limits.  Header blocks
 * inside the body (CPIM, MIME part headers) are read with msg_header_get().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/utf8.h>

#include "util/buf.h"
#include "util/charset.h"
#include "util/cpm-object.h"
#include "util/cpm-xml.h"
#include "util/macro.h"
#include "util/msg-summary.h"
#include "util/transfer.h"

#define MEDIA_TYPE_MAX 128
#define PARAM_MAX      256

/* The media type of a Content-Type value, lower case ("" if none). */
static void media_type(const char *ct, char out[MEDIA_TYPE_MAX])
{
	size_t n = 0;

	while (*ct == ' ' || *ct == '\t')
		ct++;
	while (*ct && *ct != ';' && *ct != ' ' && *ct != '\t' && *ct != '(' &&
	       n < MEDIA_TYPE_MAX - 1) {
		char c = *ct++;

		out[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[n] = '\0';
}

/* A parameter of a Content-Type value (quotes and quoted-pairs removed). */
static bool ct_param(const char *ct, const char *name, char out[PARAM_MAX])
{
	const char *p = ct;

	while ((p = strchr(p, ';'))) {
		const char *nm;
		size_t nn, vn = 0;

		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		nm = p;
		while (*p && *p != '=' && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		nn = (size_t)(p - nm);
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			continue;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				if (vn < PARAM_MAX - 1)
					out[vn++] = *p;
				p++;
			}
			if (*p == '"')
				p++;
		} else {
			while (*p && *p != ';' && *p != ' ' && *p != '\t') {
				if (vn < PARAM_MAX - 1)
					out[vn++] = *p;
				p++;
			}
		}
		out[vn] = '\0';
		if (nn == strlen(name) && strncasecmp(nm, name, nn) == 0)
			return true;
	}
	out[0] = '\0';
	return false;
}

static int set_str(char **field, const char *v)
{
	char *d = strdup(v ? v : "");

	if (!d)
		return -ENOMEM;
	free(*field);
	*field = d;
	return 0;
}

static int set_error(struct msg_summary *s, const char *fmt, ...) ATTR_FORMAT(2, 3);
static int set_error(struct msg_summary *s, const char *fmt, ...)
{
	va_list ap;
	char *e;
	int r;

	if (s->error && *s->error)
		return 0; /* the first one */
	va_start(ap, fmt);
	r = vasprintf(&e, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	free(s->error);
	s->error = cpm_utf8_fix(e);
	return 0;
}

/* The address of "Name <uri>", "<uri>" or "uri": a malloc()ed copy. */
static char *address_of(const char *v, size_t n)
{
	const char *lt = NULL, *gt;

	for (size_t i = 0; i < n; i++)
		if (v[i] == '<')
			lt = v + i;
	if (lt) {
		gt = memchr(lt, '>', (size_t)(v + n - lt));
		n = gt ? (size_t)(gt - lt - 1) : (size_t)(v + n - lt - 1);
		v = lt + 1;
	}
	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	return strndup(v, n);
}

/* windows-1252 0x80..0x9f (0 where undefined: taken as ISO-8859-1). */
static const uint16_t cp1252[32] = {
	0x20ac, 0,	0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160,
	0x2039, 0x0152, 0,	0x017d, 0,	0,	0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
	0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,	0x017e, 0x0178,
};

enum cs { CS_UTF8, CS_LATIN1, CS_CP1252, CS_UTF16, CS_UTF16BE, CS_UTF16LE, CS_UNKNOWN };

static enum cs charset_of(const char *cs)
{
	static const struct {
		const char *name;
		enum cs cs;
	} names[] = {
		{ "", CS_UTF8 },
		{ "utf-8", CS_UTF8 },
		{ "utf8", CS_UTF8 },
		{ "us-ascii", CS_UTF8 },
		{ "ascii", CS_UTF8 },
		{ "iso-8859-1", CS_LATIN1 },
		{ "iso8859-1", CS_LATIN1 },
		{ "latin1", CS_LATIN1 },
		{ "iso_8859-1", CS_LATIN1 },
		{ "windows-1252", CS_CP1252 },
		{ "cp1252", CS_CP1252 },
		{ "utf-16", CS_UTF16 },
		{ "utf-16be", CS_UTF16BE },
		{ "utf-16le", CS_UTF16LE },
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcasecmp(names[i].name, cs))
			return names[i].cs;
	return CS_UNKNOWN;
}

static int append_cp(struct buf *b, uint32_t cp)
{
	char u[4];
	size_t k = cpmsync_utf8_encode(cp, u);

	if (k == 0)
		k = cpmsync_utf8_encode(0xfffd, u);
	return buf_append(b, u, k);
}

/* Text in charset cs to UTF-8; *bad set when UTF-8 input was not. */
static int to_utf8(enum cs cs, const char *d, size_t n, struct buf *out, bool *bad)
{
	const unsigned char *u = (const unsigned char *)d;
	int r = 0;

	switch (cs) {
	case CS_UTF8:
		/* Valid runs copied whole (one append per run, not per
		 * character: perf showed the per-character appends as most of
		 * a chat message's classification, issue 11). */
		for (size_t i = 0; i < n && r >= 0;) {
			size_t run = i, k;

			while (run < n) {
				if (u[run] < 0x80) {
					run++;
					continue;
				}
				k = cpmsync_utf8_decode(d + run, n - run, NULL);
				if (!k)
					break;
				run += k;
			}
			if (run > i) {
				r = buf_append(out, d + i, run - i);
				i = run;
			} else {
				*bad = true;
				r = append_cp(out, u[i]);
				i++;
			}
		}
		return r;
	case CS_LATIN1:
	case CS_CP1252:
		for (size_t i = 0; i < n && r >= 0; i++) {
			uint32_t cp = u[i];

			if (cs == CS_CP1252 && cp >= 0x80 && cp < 0xa0 && cp1252[cp - 0x80])
				cp = cp1252[cp - 0x80];
			r = append_cp(out, cp);
		}
		return r;
	case CS_UTF16:
	case CS_UTF16BE:
	case CS_UTF16LE: {
		bool le = cs == CS_UTF16LE;
		size_t i = 0;

		if (cs == CS_UTF16 && n >= 2) {
			if (u[0] == 0xff && u[1] == 0xfe) {
				le = true;
				i = 2;
			} else if (u[0] == 0xfe && u[1] == 0xff) {
				i = 2;
			}
		}
		for (; i + 1 < n && r >= 0; i += 2) {
			uint32_t c = le ? (uint32_t)(u[i] | u[i + 1] << 8)
					: (uint32_t)(u[i] << 8 | u[i + 1]);

			if (c >= 0xd800 && c < 0xdc00 && i + 3 < n) {
				uint32_t c2 = le ? (uint32_t)(u[i + 2] | u[i + 3] << 8)
						 : (uint32_t)(u[i + 2] << 8 | u[i + 3]);

				if (c2 >= 0xdc00 && c2 < 0xe000) {
					c = 0x10000 + ((c - 0xd800) << 10) + (c2 - 0xdc00);
					i += 2;
				}
			}
			r = append_cp(out, c);
		}
		return r;
	}
	case CS_UNKNOWN:
		break;
	}
	return -EINVAL;
}

/* Is it valid UTF-8 (what to_utf8() of CS_UTF8 would copy as it is)? */
static bool utf8_ok(const char *d, size_t n)
{
	const unsigned char *u = (const unsigned char *)d;

	for (size_t i = 0; i < n;) {
		size_t k;

		/* ASCII (most chat text) eight bytes at a time: byte by byte,
		 * this loop was a third of a chat message's snippet in
		 * callgrind (issue 11). */
		while (n - i >= 8) {
			uint64_t w;

			memcpy(&w, u + i, 8);
			if (w & UINT64_C(0x8080808080808080))
				break;
			i += 8;
		}
		if (i == n)
			break;
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		k = cpmsync_utf8_decode(d + i, n - i, NULL);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* Unicode White_Space above ASCII (U+0085 NEL, NBSP, U+1680, U+2000-U+200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000), and the byte order mark U+FEFF
 * (a text's first character, or a ZERO WIDTH NO-BREAK SPACE). */
static bool blank_cp(uint32_t cp)
{
	return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
	       cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000 ||
	       cp == 0xfeff;
}

/* The length of the blank character (blank_cp(), or ASCII whitespace and
 * controls) at t[0..n), 0 if there is none. */
static size_t blank_at(const char *t, size_t n)
{
	uint32_t cp;
	size_t k;

	if ((unsigned char)t[0] <= 32 || t[0] == 127)
		return 1;
	if ((unsigned char)t[0] < 0x80)
		return 0;
	k = cpmsync_utf8_decode(t, n, &cp);
	return k && blank_cp(cp) ? k : 0;
}

/*
 * Are the eight bytes at p all printable ASCII (32..126)?  With no byte
 * at 128 or above, adding 0x60 to each sets its top bit exactly when it
 * is 32 or more, and adding 1 exactly when it is 127, neither carrying
 * into the next byte.
 */
static bool printable8(const char *p)
{
	const uint64_t hi = UINT64_C(0x8080808080808080);
	uint64_t w;

	memcpy(&w, p, 8);
	return !(w & hi) && ((w + UINT64_C(0x6060606060606060)) & hi) == hi &&
	       !((w + UINT64_C(0x0101010101010101)) & hi);
}

/* The snippet from UTF-8 text: trimmed, controls as spaces, CPM_SNIPPET_CHARS. */
static int make_snippet(const char *t, size_t n, char **ret)
{
	struct buf b = BUF_INIT(CPM_SNIPPET_CHARS * 4 + 1);
	size_t chars = 0, i = 0, keep;

	/* Leading whitespace (and controls, which become spaces) goes, and
	 * so does a byte order mark. */
	for (size_t k; i < n && (k = blank_at(t + i, n - i)) > 0;)
		i += k;
	while (i < n && chars < CPM_SNIPPET_CHARS) {
		size_t k;

		/* A run of printable ASCII, one character a byte, in one append
		 * (per character, the appends were most of a chat message's
		 * snippet in callgrind, issue 11). */
		if ((unsigned char)t[i] > 32 && t[i] != 127) {
			size_t j = i, end = i + (CPM_SNIPPET_CHARS - chars);

			if (end > n)
				end = n;
			/* Eight bytes at a time while all are 32..126 (a
			 * chat message's text): byte by byte, this loop was
			 * 1,000 of the snippet's 2,600 instructions
			 * (callgrind, bench-cpm.sh 20000). */
			while (end - j >= 8 && printable8(t + j))
				j += 8;
			/* 32..126: one unsigned comparison a byte. */
			while (j < end && (unsigned char)(t[j] - 32) < 95)
				j++;
			chars += j - i;
			if (j > i) {
				if (buf_append(&b, t + i, j - i) < 0)
					goto oom;
				i = j;
				continue;
			}
		}
		k = cpmsync_utf8_decode(t + i, n - i, NULL);

		if (k == 0)
			k = 1; /* cannot happen: t is valid UTF-8 */
		if (k == 1 && ((unsigned char)t[i] < 32 || t[i] == 127)) {
			if (t[i] && buf_append_char(&b, ' ') < 0)
				goto oom;
		} else if (k > 1 || t[i]) {
			if (buf_append(&b, t + i, k) < 0)
				goto oom;
		}
		chars++;
		i += k;
	}
	/* Trailing whitespace goes: the last character, while blank. */
	keep = b.len;
	while (keep) {
		size_t start = keep - 1;

		while (start > 0 && keep - start < 4 &&
		       ((unsigned char)b.data[start] & 0xc0) == 0x80)
			start--;
		if (blank_at(b.data + start, keep - start) != keep - start)
			break;
		keep = start;
	}
	if (b.data)
		b.data[keep] = '\0';
	b.len = keep;
	*ret = b.data ? buf_steal(&b) : strdup("");
	return *ret ? 0 : -ENOMEM;
oom:
	buf_free(&b);
	return -ENOMEM;
}

/* The snippet of a text entity (header block hdr, content body). */
static int text_snippet(struct msg_summary *s, const char *what, const char *ct, const char *cte,
			const char *body, size_t n)
{
	_cleanup_buf_ struct buf raw = BUF_INIT(CPM_TEXT_MAX * 2 + 16);
	_cleanup_buf_ struct buf utf8 = BUF_INIT(CPM_TEXT_MAX * 4 + 16);
	_cleanup_(charset_conv_closep) struct charset_conv conv = { .cd = (iconv_t)-1 };
	char cs[PARAM_MAX];
	const char *src, *text;
	size_t slen, tlen;
	bool bad = false;
	enum transfer_encoding te;
	enum cs c;
	int r;

	if (n > CPM_TEXT_MAX)
		n = CPM_TEXT_MAX;
	ct_param(ct, "charset", cs);
	c = charset_of(cs);
	/* Other charsets (KOI8-R, Shift_JIS, ISO-2022-JP ...) through iconv. */
	if (c == CS_UNKNOWN) {
		r = charset_conv_open(&conv, cs, strlen(cs));
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return set_error(s, "%s: unknown charset \"%.40s\"", what, cs);
	}
	if (transfer_encoding_of(cte, &te) < 0)
		return set_error(s, "%s: unknown Content-Transfer-Encoding \"%.40s\"", what, cte);
	/* Identity-encoded valid UTF-8 (most chat text) is read in place:
	 * the copies to decode and to convert, each grown from 64 bytes,
	 * were half of a chat message's snippet in callgrind (issue 11). */
	if (te == TRANSFER_IDENTITY) {
		src = body ? body : "";
		slen = n;
	} else {
		r = transfer_decode(te, body, n, &raw);
		if (r < 0)
			return -ENOMEM;
		src = raw.data ? raw.data : "";
		slen = raw.len;
	}
	if (c == CS_UTF8 && utf8_ok(src, slen)) {
		text = src;
		tlen = slen;
	} else if (c == CS_UNKNOWN) {
		r = charset_conv_run(&conv, src, slen, &utf8, utf8.max);
		if (r < 0)
			return -ENOMEM;
		text = utf8.data ? utf8.data : "";
		tlen = utf8.len;
	} else {
		r = to_utf8(c, src, slen, &utf8, &bad);
		if (r < 0)
			return -ENOMEM;
		text = utf8.data ? utf8.data : "";
		tlen = utf8.len;
	}
	if (bad) {
		r = set_error(s, "%s: text declared %s is not valid UTF-8", what,
			      *cs ? cs : "UTF-8");
		if (r < 0)
			return r;
	}
	free(s->snippet);
	s->snippet = NULL;
	return make_snippet(text, tlen, &s->snippet);
}

/* An entity: header block and body, inside the given bytes. */
struct entity {
	const char *head, *body;
	size_t head_len, body_len;
};

static bool split_entity(const char *d, size_t n, struct entity *e)
{
	size_t h = msg_header_length(d, n);

	if (!h)
		return false;
	*e = (struct entity){ .head = d, .head_len = h, .body = d + h, .body_len = n - h };
	return true;
}

/*
 * Part i (0-based) of a multipart body with boundary b: false when there
 * is no such part.
 */
static bool multipart_part(const char *d, size_t n, const char *b, unsigned want, struct entity *e)
{
	size_t bl = strlen(b), i = 0, start = 0;
	unsigned part = 0;
	bool in = false;

	if (!bl)
		return false;
	while (i < n) {
		const char *nl = memchr(d + i, '\n', n - i);
		size_t le = nl ? (size_t)(nl - d) : n;

		if (le - i >= 2 + bl && d[i] == '-' && d[i + 1] == '-' &&
		    memcmp(d + i + 2, b, bl) == 0) {
			bool close =
				le - i >= 4 + bl && d[i + 2 + bl] == '-' && d[i + 3 + bl] == '-';

			if (in) {
				size_t end = i;

				/* The line break before the delimiter is its own. */
				if (end > start && d[end - 1] == '\n')
					end--;
				if (end > start && d[end - 1] == '\r')
					end--;
				if (part == want) {
					if (!split_entity(d + start, end - start, e))
						*e = (struct entity){ .head = d + start,
								      .head_len = end - start,
								      .body = d + end };
					return true;
				}
				part++;
				if (part >= CPM_MAX_PARTS)
					return false;
			}
			if (close)
				return false;
			in = true;
			start = nl ? le + 1 : n;
		}
		i = nl ? le + 1 : n;
	}
	if (in && part == want && start < n) { /* no close delimiter */
		if (!split_entity(d + start, n - start, e))
			*e = (struct entity){ .head = d + start,
					      .head_len = n - start,
					      .body = d + n };
		return true;
	}
	return false;
}

static int header(const struct entity *e, const char *name, char **ret)
{
	return msg_header_get(e->head, e->head_len, name, ret);
}

/* The snippet of an MMS-like multipart: its first text/plain part. */
static int multipart_snippet(struct msg_summary *s, const char *ct, const char *body, size_t n)
{
	char boundary[PARAM_MAX];

	if (!ct_param(ct, "boundary", boundary) || !*boundary)
		return set_error(s, "multipart body without a boundary");
	for (unsigned i = 0; i < CPM_MAX_PARTS; i++) {
		_cleanup_free_ char *pct = NULL, *pcte = NULL;
		char mt[MEDIA_TYPE_MAX];
		struct entity e;
		int r;

		if (!multipart_part(body, n, boundary, i, &e))
			break;
		r = header(&e, "Content-Type", &pct);
		if (r >= 0)
			r = header(&e, "Content-Transfer-Encoding", &pcte);
		if (r < 0)
			return r;
		media_type(pct, mt);
		if (!*mt || streq(mt, "text/plain"))
			return text_snippet(s, "multipart text part", pct, pcte, e.body,
					    e.body_len);
	}
	return 0;
}

static int xml_into(struct msg_summary *s, enum cpm_xml_kind kind, const char *d, size_t n)
{
	_cleanup_free_ char *err = NULL;
	struct cpm_xml x;
	int r;

	r = cpm_xml_parse(kind, d, n, &x, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return set_error(s, "%s", err ? err : "XML body refused");
	r = 0;
	switch (kind) {
	case CPM_XML_IMDN:
		r = set_str(&s->imdn_ref, x.message_id);
		if (r >= 0)
			r = set_str(&s->status, x.status);
		break;
	case CPM_XML_SESSION:
	case CPM_XML_GROUP_STATE:
		r = set_str(&s->participants, x.participants);
		break;
	case CPM_XML_FT_HTTP:
	case CPM_XML_FT_CPM:
		r = set_str(&s->file_name, x.file_name);
		if (r >= 0)
			r = set_str(&s->file_type, x.file_type);
		if (r >= 0 && kind == CPM_XML_FT_CPM)
			r = set_str(&s->participants, x.participants);
		s->file_size = x.file_size;
		break;
	}
	cpm_xml_free(&x);
	return r;
}

static bool is_media(const char *mt)
{
	return !strncmp(mt, "image/", 6) || !strncmp(mt, "audio/", 6) || !strncmp(mt, "video/", 6);
}

/*
 * The content of a Message/CPIM body: the CPIM header block, then the
 * MIME header block of the content, then the content (RFC 3862 2).
 */
static int cpim(struct msg_summary *s, const char *body, size_t n)
{
	_cleanup_free_ char *ct = NULL, *cte = NULL;
	char mt[MEDIA_TYPE_MAX];
	struct entity cp, mime;
	int r;

	s->type = "message";
	if (!n)
		return 0; /* header only: nothing more is known */
	if (!split_entity(body, n, &cp))
		return set_error(s, "CPIM body without the empty line after its headers");
	if (!split_entity(cp.body, cp.body_len, &mime)) {
		if (cp.body_len == 0)
			return set_error(s, "CPIM body without content");
		return set_error(s, "CPIM content without the empty line after its MIME headers");
	}
	/* Both in one pass over the block (callgrind, issue 11). */
	r = msg_header_get2(mime.head, mime.head_len, "Content-Type", &ct,
			    "Content-Transfer-Encoding", &cte);
	if (r < 0)
		return r;
	media_type(ct, mt);
	if (streq(mt, "message/imdn+xml")) {
		s->type = "imdn";
		return xml_into(s, CPM_XML_IMDN, mime.body, mime.body_len);
	}
	if (streq(mt, "application/vnd.gsma.rcs-ft-http+xml")) {
		s->type = "file-transfer";
		return xml_into(s, CPM_XML_FT_HTTP, mime.body, mime.body_len);
	}
	if (is_media(mt)) {
		s->type = "media";
		return 0;
	}
	if (!strncmp(mt, "multipart/", 10))
		return multipart_snippet(s, ct, mime.body, mime.body_len);
	if (!*mt || !strncmp(mt, "text/", 5))
		return text_snippet(s, "CPIM text", ct, cte, mime.body, mime.body_len);
	return 0;
}

static void lower(char *v)
{
	for (; *v; v++)
		if (*v >= 'A' && *v <= 'Z')
			*v = (char)(*v - 'A' + 'a');
}

int cpm_object_classify(struct msg_summary *s, const char *ct, const char *cte, const char *body,
			size_t body_len)
{
	char mt[MEDIA_TYPE_MAX], type[PARAM_MAX];
	bool cpm;
	int r;

	if (!body)
		body_len = 0;
	if (!ct)
		ct = "";
	if (!cte)
		cte = "";
#define FILL(f)                                                                                    \
	do {                                                                                       \
		if (!(f) && set_str(&(f), "") < 0)                                                 \
			return -ENOMEM;                                                            \
	} while (0)
	FILL(s->direction);
	FILL(s->context);
	FILL(s->in_reply_to);
	FILL(s->correlator);
	FILL(s->snippet);
	FILL(s->imdn_ref);
	FILL(s->status);
	FILL(s->participants);
	FILL(s->file_name);
	FILL(s->file_type);
	FILL(s->error);
	lower(s->direction);
	lower(s->context);
	if (*s->direction && !streq(s->direction, "sent") && !streq(s->direction, "received")) {
		r = set_error(s, "Message-Direction \"%.40s\" is neither sent nor received",
			      s->direction);
		if (r < 0)
			return r;
		s->direction[0] = '\0';
	}
	/* The other party: To of a sent object, else From. */
	{
		const char *v = s->from ? s->from : "";
		size_t n = strlen(v);

		if (streq(s->direction, "sent") && s->to) {
			const char *nl = strchr(s->to, '\n');

			v = s->to;
			n = nl ? (size_t)(nl - s->to) : strlen(s->to);
		}
		free(s->peer);
		s->peer = address_of(v, n);
		if (!s->peer)
			return -ENOMEM;
		free(s->sender);
		s->sender = address_of(s->from ? s->from : "", s->from ? strlen(s->from) : 0);
		if (!s->sender)
			return -ENOMEM;
	}

	cpm = (s->conversation_id && *s->conversation_id) ||
	      (s->contribution_id && *s->contribution_id) || *s->context;
	media_type(ct, mt);
#undef FILL
	if (streq(mt, "application/x-cpm-session")) {
		s->type = "session-info";
		return body_len ? xml_into(s, CPM_XML_SESSION, body, body_len) : 0;
	}
	if (streq(mt, "application/group-state-object+xml")) {
		s->type = "group-state";
		return body_len ? xml_into(s, CPM_XML_GROUP_STATE, body, body_len) : 0;
	}
	if (streq(mt, "application/vnd.gsma.rcs-ft-http+xml")) {
		s->type = "file-transfer";
		return body_len ? xml_into(s, CPM_XML_FT_HTTP, body, body_len) : 0;
	}
	if (streq(mt, "message/imdn+xml")) {
		s->type = "imdn";
		return body_len ? xml_into(s, CPM_XML_IMDN, body, body_len) : 0;
	}
	if (streq(mt, "message/cpim"))
		return cpim(s, body, body_len);
	if (streq(mt, "multipart/related") && ct_param(ct, "type", type) &&
	    !strcasecmp(type, "application/x-cpm-file-transfer")) {
		char boundary[PARAM_MAX];
		struct entity e;

		s->type = "file-transfer";
		if (!body_len)
			return 0;
		if (!ct_param(ct, "boundary", boundary) || !*boundary)
			return set_error(s, "file-transfer object without a boundary");
		if (!multipart_part(body, body_len, boundary, 0, &e))
			return set_error(s, "file-transfer object without its descriptor part");
		return xml_into(s, CPM_XML_FT_CPM, e.body, e.body_len);
	}
	if (!cpm) {
		s->type = "mail";
		return 0;
	}
	if (is_media(mt)) {
		s->type = "media";
		return 0;
	}
	if (*mt && strncmp(mt, "text/", 5) && strncmp(mt, "multipart/", 10)) {
		s->type = "mail";
		return 0;
	}
	s->type = "message";
	if (!body_len)
		return 0;
	if (!strncmp(mt, "multipart/", 10))
		return multipart_snippet(s, ct, body, body_len);
	return text_snippet(s, "text", ct, cte, body, body_len);
}

int cpm_object_check(const struct msg_summary *s, char **ret_error)
{
	const char *e = NULL;
	char *msg;

	if (!s || !ret_error)
		return -EINVAL;
	*ret_error = NULL;
	if (s->error && *s->error) {
		msg = strdup(s->error);
		goto out;
	}
	if ((!s->conversation_id || !*s->conversation_id) && (!s->context || !*s->context))
		e = "not a CPM object: neither Conversation-ID nor Message-Context";
	else if ((streq(s->type, "session-info") || streq(s->type, "group-state")) &&
		 (!s->conversation_id || !*s->conversation_id))
		e = "a session-info or group-state object needs a Conversation-ID";
	else if ((streq(s->type, "session-info") || streq(s->type, "group-state")) &&
		 (!s->contribution_id || !*s->contribution_id))
		e = "a session-info or group-state object needs a Contribution-ID";
	else if (streq(s->type, "mail"))
		e = "not a CPM object: its Content-Type is none of the CPM formats";
	if (!e)
		return 0;
	msg = strdup(e);
out:
	if (!msg)
		return -ENOMEM;
	*ret_error = msg;
	return -EINVAL;
}

int cpm_status_rank(const char *st)
{
	if (!st)
		return 0;
	if (streq(st, "displayed"))
		return 3;
	if (streq(st, "delivered"))
		return 2;
	if (streq(st, "failed") || streq(st, "forbidden") || streq(st, "error"))
		return 1;
	return 0;
}
