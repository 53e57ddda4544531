/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Body parts for previews (see preview-part.h).
 */
#include <errno.h>
#include <iconv.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/utf8.h>

#include "util/buf.h"
#include "util/macro.h"
#include "util/preview-part.h"

/* Header bytes looked at, at most. */
#define HEADER_MAX (64u * 1024)
/* Converted text looked at, at most, beyond what the excerpt can hold. */
#define TEXT_SLACK (64u * 1024)

/* ------------------------------------------------------------------ */
/* The header */

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* The unfolded value of field name (without the colon) into out, "" when
 * absent. */
static void field_value(const char *h, size_t len, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name), i = 0, o = 0;

	out[0] = '\0';
	if (len > HEADER_MAX)
		len = HEADER_MAX;
	while (i < len) {
		size_t eol = i;

		while (eol < len && h[eol] != '\n')
			eol++;
		if (eol - i > nlen && strncasecmp(h + i, name, nlen) == 0) {
			size_t k = i + nlen;

			while (k < eol && is_wsp(h[k]))
				k++;
			if (k < eol && h[k] == ':') {
				/* the value and its continuation lines */
				k++;
				for (;;) {
					for (; k < eol && o + 1 < cap; k++)
						if (h[k] != '\r')
							out[o++] = h[k] == '\t' ? ' ' : h[k];
					if (eol + 1 >= len || !is_wsp(h[eol + 1]))
						break;
					k = eol + 1;
					eol = k;
					while (eol < len && h[eol] != '\n')
						eol++;
				}
				out[o] = '\0';
				return;
			}
		}
		i = eol + 1;
	}
}

static const char *skip_cfws(const char *s)
{
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '(')
			return s;
		for (int depth = 0; *s; s++) {
			if (*s == '\\' && s[1])
				s++;
			else if (*s == '(')
				depth++;
			else if (*s == ')' && --depth == 0) {
				s++;
				break;
			}
		}
	}
}

static bool token_char(char c)
{
	return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?=", c);
}

/* A token at s into out (lower case); returns the end. */
static const char *read_token(const char *s, char *out, size_t cap)
{
	size_t o = 0;

	for (; token_char(*s); s++)
		if (o + 1 < cap)
			out[o++] = (char)((*s >= 'A' && *s <= 'Z') ? *s + 32 : *s);
	out[o] = '\0';
	return s;
}

/* A token or quoted string at s into out (as it stands); returns the end. */
static const char *read_value(const char *s, char *out, size_t cap)
{
	size_t o = 0;

	if (*s != '"') {
		for (; token_char(*s); s++)
			if (o + 1 < cap)
				out[o++] = *s;
		out[o] = '\0';
		return s;
	}
	for (s++; *s && *s != '"'; s++) {
		if (*s == '\\' && s[1])
			s++;
		if (o + 1 < cap)
			out[o++] = *s;
	}
	out[o] = '\0';
	return *s ? s + 1 : s;
}

void part_info_parse(const char *header, size_t len, struct part_info *ret)
{
	char v[1024], major[64], minor[64], name[64], value[64];
	const char *s;

	*ret = (struct part_info){ .type = "text/plain", .encoding = TRANSFER_IDENTITY };
	field_value(header, len, "Content-Type", v, sizeof(v));
	s = read_token(skip_cfws(v), major, sizeof(major));
	s = skip_cfws(s);
	if (*major && *s == '/') {
		s = read_token(skip_cfws(s + 1), minor, sizeof(minor));
		if (*minor) {
			snprintf(ret->type, sizeof(ret->type), "%s/%s", major, minor);
			ret->charset[0] = '\0';
			while (*(s = skip_cfws(s)) == ';') {
				s = read_token(skip_cfws(s + 1), name, sizeof(name));
				s = skip_cfws(s);
				if (*s != '=')
					break;
				s = read_value(skip_cfws(s + 1), value, sizeof(value));
				if (strcmp(name, "charset") == 0) {
					snprintf(ret->charset, sizeof(ret->charset), "%s", value);
					for (char *c = ret->charset; *c; c++)
						if (*c >= 'A' && *c <= 'Z')
							*c = (char)(*c + 32);
				}
			}
		}
	}
	field_value(header, len, "Content-Transfer-Encoding", v, sizeof(v));
	read_token(skip_cfws(v), value, sizeof(value));
	if (strcmp(value, "base64") == 0)
		ret->encoding = TRANSFER_BASE64;
	else if (strcmp(value, "quoted-printable") == 0)
		ret->encoding = TRANSFER_QP;
}

/* ------------------------------------------------------------------ */
/* Text */

static int append_cp(struct buf *b, uint32_t cp)
{
	char u[4];
	size_t n = cpmsync_utf8_encode(cp, u);

	return buf_append(b, u, n ? n : 0);
}

static bool is_utf8_name(const char *cs)
{
	return !*cs || !strcasecmp(cs, "utf-8") || !strcasecmp(cs, "utf8") ||
	       !strcasecmp(cs, "us-ascii") || !strcasecmp(cs, "ascii");
}

/* data in charset to valid UTF-8 in out, at most want bytes of output. */
static int to_utf8(const char *data, size_t len, const char *charset, size_t want, struct buf *out)
{
	iconv_t cd = (iconv_t)-1;
	int r = 0;

	if (!is_utf8_name(charset))
		cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1) {
		/* UTF-8, with ISO-8859-1 for the bytes that are not */
		for (size_t i = 0; i < len && out->len < want && r >= 0;) {
			uint32_t cp;
			size_t k = cpmsync_utf8_decode(data + i, len - i, &cp);

			if (k) {
				r = buf_append(out, data + i, k);
				i += k;
			} else {
				r = append_cp(out, (unsigned char)data[i]);
				i++;
			}
		}
		return r;
	}
	{
		char *in = (char *)data;
		size_t in_left = len;

		while (in_left > 0 && out->len < want && r >= 0) {
			char chunk[4096], *o = chunk;
			size_t o_left = sizeof(chunk);
			size_t rc = iconv(cd, &in, &in_left, &o, &o_left);

			if (o != chunk)
				r = buf_append(out, chunk, (size_t)(o - chunk));
			if (rc == (size_t)-1 && errno != E2BIG && r >= 0) {
				/* EILSEQ or a sequence cut short at the end */
				r = append_cp(out, 0xfffd);
				in++;
				in_left--;
				iconv(cd, NULL, NULL, NULL, NULL);
			}
		}
	}
	iconv_close(cd);
	return r;
}

static size_t match_ci(const char *s, size_t n, const char *word)
{
	size_t k = strlen(word);

	return n >= k && strncasecmp(s, word, k) == 0 ? k : 0;
}

/* text/html to text: tags and comments out, script and style contents out,
 * a line break for block ends, basic entities decoded. */
static int strip_html(const char *s, size_t n, struct buf *out)
{
	static const struct {
		const char *name;
		uint32_t cp;
	} entities[] = {
		{ "&amp;", '&' },  { "&lt;", '<' },   { "&gt;", '>' },
		{ "&quot;", '"' }, { "&#39;", '\'' }, { "&nbsp;", ' ' },
	};
	int r = 0;

	for (size_t i = 0; i < n && r >= 0;) {
		if (s[i] == '<') {
			const char *end_tag = NULL;
			size_t k;

			if (match_ci(s + i, n - i, "<!--")) {
				const char *e = memmem(s + i + 4, n - i - 4, "-->", 3);

				i = e ? (size_t)(e - s) + 3 : n;
				continue;
			}
			if (match_ci(s + i, n - i, "<script"))
				end_tag = "</script";
			else if (match_ci(s + i, n - i, "<style"))
				end_tag = "</style";
			if (match_ci(s + i, n - i, "<br") || match_ci(s + i, n - i, "</p") ||
			    match_ci(s + i, n - i, "</div") || match_ci(s + i, n - i, "</li") ||
			    match_ci(s + i, n - i, "</tr") || match_ci(s + i, n - i, "<p"))
				r = buf_append_char(out, '\n');
			k = i;
			while (k < n && s[k] != '>')
				k++;
			i = k < n ? k + 1 : n;
			if (end_tag) {
				while (i < n && !match_ci(s + i, n - i, end_tag))
					i++;
			}
			continue;
		}
		if (s[i] == '&') {
			bool done = false;

			for (size_t e = 0; e < ARRAY_SIZE(entities) && !done; e++) {
				size_t k = match_ci(s + i, n - i, entities[e].name);

				if (k) {
					r = append_cp(out, entities[e].cp);
					i += k;
					done = true;
				}
			}
			if (done)
				continue;
		}
		if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t')
			r = buf_append_char(out, ' '); /* HTML white space */
		else
			r = buf_append_char(out, s[i]);
		i++;
	}
	return r;
}

/* Appends a finished line (trailing white space dropped); blank lines at
 * the start and runs of blank lines are dropped. */
static int end_line(struct buf *out, const char *line, size_t len, uint32_t *lines, bool *blank)
{
	int r = 0;

	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0) {
		if (*lines > 0)
			*blank = true;
		return 0;
	}
	if (*lines > 0)
		r = buf_append(out, *blank ? "\n\n" : "\n", *blank ? 2 : 1);
	if (*blank)
		(*lines)++;
	*blank = false;
	if (r >= 0)
		r = buf_append(out, line, len);
	(*lines)++;
	return r;
}

int part_text_excerpt(const char *data, size_t len, const char *charset, int html, uint32_t width,
		      uint32_t height, struct buf *out)
{
	size_t want = (size_t)width * height * 4 + TEXT_SLACK;
	struct buf u = BUF_INIT(want * 2 + 16), plain = BUF_INIT(want * 2 + 16);
	struct buf line = BUF_INIT((size_t)width * 4 + 8);
	uint32_t lines = 0, chars = 0;
	bool blank = false, wrapped = false;
	const char *t;
	size_t n;
	int r;

	if (width < 1 || height < 1)
		return -EINVAL;
	r = to_utf8(data, len, charset ? charset : "", want, &u);
	if (r == -E2BIG)
		r = 0;
	if (r >= 0 && html) {
		r = strip_html(u.data ? u.data : "", u.len, &plain);
		if (r == -E2BIG)
			r = 0;
		t = plain.data ? plain.data : "";
		n = plain.len;
	} else {
		t = u.data ? u.data : "";
		n = u.len;
	}
	for (size_t i = 0; r >= 0 && i < n && lines < height;) {
		uint32_t cp;
		size_t k = cpmsync_utf8_decode(t + i, n - i, &cp);

		if (!k) { /* cannot happen after to_utf8(); be safe */
			i++;
			continue;
		}
		if (cp == '\r' && i + 1 < n && t[i + 1] == '\n') {
			i++;
			continue;
		}
		if (cp == '\n' || cp == '\r') {
			r = end_line(out, line.data ? line.data : "", line.len, &lines, &blank);
			buf_reset(&line);
			chars = 0;
			wrapped = false;
			i += k;
			continue;
		}
		if (chars == width) {
			r = end_line(out, line.data, line.len, &lines, &blank);
			buf_reset(&line);
			chars = 0;
			wrapped = true;
			if (lines >= height || r < 0)
				break;
		}
		/* a wrapped line does not start with the space it broke at */
		if (wrapped && (cp == ' ' || cp == '\t')) {
			i += k;
			continue;
		}
		wrapped = false;
		/* control characters (C0, DEL, C1) and TAB become a space */
		if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
			r = buf_append_char(&line, ' ');
		else
			r = buf_append(&line, t + i, k);
		chars++;
		i += k;
	}
	if (r >= 0 && lines < height && line.len)
		r = end_line(out, line.data, line.len, &lines, &blank);
	buf_free(&line);
	buf_free(&u);
	buf_free(&plain);
	if (r >= 0 && !out->data)
		r = buf_append(out, "", 0);
	return r;
}
