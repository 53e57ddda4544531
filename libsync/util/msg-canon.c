/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The canonical form of a message (msg-canon.h): every header block as its
 * fields, unfolded, white space collapsed, names in lower case, sorted,
 * Content-Transfer-Encoding left out and Content-Type rewritten without its
 * boundary; every body decoded, then a multipart taken into its parts, a
 * Message/CPIM or message/rfc822 into what it holds, and any other
 * content kept: with LF line ends and no line ends at its end unless it was
 * base64 of a type other than text (bytes, not lines).  Each piece starts
 * with a marker and its count or length, so that no content can pass for
 * structure.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/msg-canon.h"
#include "util/transfer.h"

/* Most fields of one header block (more: -E2BIG, no form). */
#define CANON_MAX_FIELDS 1024

struct entity {
	char type[128]; /* "type/subtype" in lower case, "" when not given */
	char boundary[256];
	bool has_boundary;
	enum transfer_encoding cte;
};

struct fields {
	char *v[CANON_MAX_FIELDS];
	size_t n;
};

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* s[0..n) with its white space runs made one space, trimmed, appended. */
static int append_collapsed(struct buf *b, const char *s, size_t n)
{
	bool space = false;
	size_t start = b->len;
	int r;

	for (size_t i = 0; i < n; i++) {
		if (is_wsp(s[i])) {
			space = true;
			continue;
		}
		if (space && b->len > start && (r = buf_append_char(b, ' ')) < 0)
			return r;
		space = false;
		if ((r = buf_append_char(b, s[i])) < 0)
			return r;
	}
	return 0;
}

/* A Content-Type value (collapsed) as "type/subtype;name=value..."
 * (the boundary kept in e, not in the text). */
static int content_type(const char *v, struct entity *e, struct buf *out)
{
	size_t i = 0, n = strlen(v), k = 0;
	int r;

	while (i < n && v[i] != ';') {
		if (!is_wsp(v[i]) && k + 1 < sizeof(e->type))
			e->type[k++] = lower(v[i]);
		i++;
	}
	e->type[k] = '\0';
	if ((r = buf_append_str(out, e->type)) < 0)
		return r;
	while (i < n) {
		struct buf name = BUF_INIT(256), val = BUF_INIT(4096);

		i++; /* the ';' */
		while (i < n && is_wsp(v[i]))
			i++;
		while (i < n && v[i] != '=' && v[i] != ';') {
			if (!is_wsp(v[i]) && (r = buf_append_char(&name, lower(v[i]))) < 0)
				goto done;
			i++;
		}
		r = 0;
		if (i < n && v[i] == '=') {
			i++;
			while (i < n && is_wsp(v[i]))
				i++;
			if (i < n && v[i] == '"') {
				for (i++; i < n && v[i] != '"'; i++) {
					if (v[i] == '\\' && i + 1 < n)
						i++;
					if ((r = buf_append_char(&val, v[i])) < 0)
						goto done;
				}
				while (i < n && v[i] != ';')
					i++;
			} else {
				size_t start = i, end;

				while (i < n && v[i] != ';')
					i++;
				for (end = i; end > start && is_wsp(v[end - 1]); end--)
					;
				if ((r = buf_append(&val, v + start, end - start)) < 0)
					goto done;
			}
		}
		if (name.len == 0) {
			/* an empty parameter (";;"): nothing */
		} else if (strcmp(name.data, "boundary") == 0) {
			snprintf(e->boundary, sizeof(e->boundary), "%s", val.data ? val.data : "");
			e->has_boundary = val.len > 0 && val.len < sizeof(e->boundary);
		} else {
			r = buf_printf(out, ";%s=%s", name.data, val.data ? val.data : "");
		}
	done:
		buf_free(&name);
		buf_free(&val);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The field raw ("Name: value", continuations joined) canonical, into f
 * (or into e only, for Content-Transfer-Encoding). */
static int field_done(const char *raw, size_t n, struct entity *e, struct fields *f)
{
	const char *colon = memchr(raw, ':', n);
	size_t name_len = colon ? (size_t)(colon - raw) : n;
	struct buf b = BUF_INIT(n + 4096);
	int r = 0;

	while (name_len > 0 && is_wsp(raw[name_len - 1]))
		name_len--;
	for (size_t i = 0; i < name_len && r >= 0; i++)
		r = buf_append_char(&b, lower(raw[i]));
	if (r >= 0)
		r = buf_append_char(&b, ':');
	if (r < 0)
		goto fail;
	if (colon) {
		const char *v = colon + 1;
		size_t vn = n - (size_t)(v - raw), at = b.len;

		if ((r = append_collapsed(&b, v, vn)) < 0)
			goto fail;
		if (e && strncmp(b.data, "content-transfer-encoding:", at) == 0 &&
		    at == strlen("content-transfer-encoding:")) {
			(void)transfer_encoding_of(b.data + at, &e->cte);
			buf_free(&b);
			return 0;
		}
		if (e && at == strlen("content-type:") &&
		    strncmp(b.data, "content-type:", at) == 0) {
			char *value = strdup(b.data + at);

			if (!value) {
				r = -ENOMEM;
				goto fail;
			}
			b.len = at;
			b.data[at] = '\0';
			r = content_type(value, e, &b);
			free(value);
			if (r < 0)
				goto fail;
		}
	}
	if (f->n >= CANON_MAX_FIELDS) {
		r = -E2BIG;
		goto fail;
	}
	f->v[f->n++] = buf_steal(&b); /* never NULL: it holds the ':' at least */
	return 0;
fail:
	buf_free(&b);
	return r;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The header block at the start of d: its fields, sorted, appended to out;
 * e (may be NULL) gets the entity's Content-Type and encoding.  *ret_body:
 * where the body starts (after the empty line; len when there is none).
 */
static int header_block(const char *d, size_t len, struct entity *e, struct buf *out,
			size_t *ret_body)
{
	struct fields *f = calloc(1, sizeof(*f));
	struct buf raw = BUF_INIT(len + 1);
	size_t i = 0;
	int r = 0;

	if (!f)
		return -ENOMEM;
	while (i < len) {
		const char *nl = memchr(d + i, '\n', len - i);
		size_t eol = nl ? (size_t)(nl - d) : len, end = eol;

		if (end > i && d[end - 1] == '\r')
			end--;
		if (end == i) { /* the empty line */
			i = nl ? eol + 1 : len;
			break;
		}
		if ((d[i] == ' ' || d[i] == '\t') && raw.len > 0) {
			r = buf_append_char(&raw, ' ');
		} else {
			if (raw.len > 0 && (r = field_done(raw.data, raw.len, e, f)) < 0)
				goto out;
			buf_reset(&raw);
		}
		if (r >= 0)
			r = buf_append(&raw, d + i, end - i);
		if (r < 0)
			goto out;
		i = nl ? eol + 1 : len;
	}
	if (raw.len > 0 && (r = field_done(raw.data, raw.len, e, f)) < 0)
		goto out;
	qsort(f->v, f->n, sizeof(f->v[0]), str_cmp);
	r = buf_printf(out, "\001%zu\n", f->n);
	for (size_t k = 0; k < f->n && r >= 0; k++) {
		r = buf_append_str(out, f->v[k]);
		if (r >= 0)
			r = buf_append_char(out, '\n');
	}
	*ret_body = i;
out:
	for (size_t k = 0; k < f->n; k++)
		free(f->v[k]);
	free(f);
	buf_free(&raw);
	return r;
}

/* Content as lines (LF ends, none at the end) or as bytes. */
static int leaf(const char *d, size_t len, bool lines, struct buf *out)
{
	size_t n = len;
	int r;

	if (!lines) {
		r = buf_printf(out, "\002b%zu\n", len);
		return r < 0 ? r : buf_append(out, d, len);
	}
	while (n > 0 && (d[n - 1] == '\n' || d[n - 1] == '\r'))
		n--;
	if ((r = buf_append_str(out, "\002t\n")) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n')
			continue;
		if ((r = buf_append_char(out, d[i])) < 0)
			return r;
	}
	/* The end of the text: a count would need a second pass. */
	return buf_append_str(out, "\n\002e\n");
}

static int entity(const char *d, size_t len, unsigned depth, struct buf *out);

/* Is the line at d[i..end) a delimiter of boundary b?  *close: "--b--". */
static bool delimiter(const char *d, size_t i, size_t end, const char *b, bool *close)
{
	size_t bl = strlen(b);

	if (end - i < 2 + bl || d[i] != '-' || d[i + 1] != '-' || memcmp(d + i + 2, b, bl) != 0)
		return false;
	i += 2 + bl;
	*close = end - i >= 2 && d[i] == '-' && d[i + 1] == '-';
	if (*close)
		i += 2;
	for (; i < end; i++)
		if (!is_wsp(d[i]))
			return false;
	return true;
}

/* The parts of a multipart body; 0 when it has no delimiter (a leaf). */
static int parts(const char *d, size_t len, const char *b, unsigned depth, struct buf *out)
{
	size_t i = 0, part = 0, n = 0;
	bool in = false, close = false;
	int r;

	while (i < len && !close) {
		const char *nl = memchr(d + i, '\n', len - i);
		size_t eol = nl ? (size_t)(nl - d) : len;

		if (delimiter(d, i, eol, b, &close)) {
			if (in) {
				/* The line end before a delimiter is the delimiter's. */
				size_t end = i;

				if (end > part && d[end - 1] == '\n')
					end--;
				if (end > part && d[end - 1] == '\r')
					end--;
				if ((r = buf_append_str(out, "\003p\n")) < 0 ||
				    (r = entity(d + part, end - part, depth + 1, out)) < 0)
					return r;
			}
			in = true;
			n++;
			part = nl ? eol + 1 : len;
		}
		i = nl ? eol + 1 : len;
	}
	if (n == 0)
		return 0;
	/* A last part without its close delimiter ends with the data. */
	if (in && !close && part < len) {
		if ((r = buf_append_str(out, "\003p\n")) < 0 ||
		    (r = entity(d + part, len - part, depth + 1, out)) < 0)
			return r;
	}
	return 1;
}

static int body(const char *d, size_t len, const struct entity *e, unsigned depth, struct buf *out)
{
	size_t inner;
	int r;

	if (depth < MSG_CANON_DEPTH) {
		if (strncmp(e->type, "multipart/", 10) == 0 && e->has_boundary) {
			size_t mark = out->len;

			if ((r = buf_append_str(out, "\003m\n")) < 0)
				return r;
			r = parts(d, len, e->boundary, depth, out);
			if (r != 0)
				return r < 0 ? r : buf_append_str(out, "\003z\n");
			out->len = mark; /* no delimiter: content */
			out->data[mark] = '\0';
		} else if (strcmp(e->type, "message/cpim") == 0) {
			/* RFC 3862: its own header block, then a MIME entity. */
			if ((r = buf_append_str(out, "\003c\n")) < 0 ||
			    (r = header_block(d, len, NULL, out, &inner)) < 0)
				return r;
			return entity(d + inner, len - inner, depth + 1, out);
		} else if (strcmp(e->type, "message/rfc822") == 0 ||
			   strcmp(e->type, "message/global") == 0) {
			if ((r = buf_append_str(out, "\003r\n")) < 0)
				return r;
			return entity(d, len, depth + 1, out);
		}
	}
	return leaf(d, len, e->cte != TRANSFER_BASE64 || !*e->type || !strncmp(e->type, "text/", 5),
		    out);
}

static int entity(const char *d, size_t len, unsigned depth, struct buf *out)
{
	struct entity e = { .cte = TRANSFER_IDENTITY };
	struct buf dec = BUF_INIT(len + 1);
	size_t at;
	int r;

	r = header_block(d, len, &e, out, &at);
	if (r < 0)
		return r;
	if (e.cte == TRANSFER_IDENTITY)
		return body(d + at, len - at, &e, depth, out);
	r = transfer_decode(e.cte, d + at, len - at, &dec);
	if (r >= 0)
		r = body(dec.data ? dec.data : "", dec.len, &e, depth, out);
	buf_free(&dec);
	return r;
}

int msg_canon(const char *data, size_t len, struct buf *out)
{
	if (!data || !out)
		return -EINVAL;
	return entity(data, len, 0, out);
}
