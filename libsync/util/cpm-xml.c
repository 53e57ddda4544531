/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The XML bodies of CPM objects (see cpm-xml.h), with libexpat: a small,
 * streaming, well-kept parser in Debian (libexpat1), which also reads the
 * encodings XML allows without a DTD (UTF-8, UTF-16, ISO-8859-1,
 * US-ASCII) and reports errors with a line number.  We use it in
 * namespace mode so that "imdn:status" and "status" in the IMDN namespace
 * are the same element, and refuse any DOCTYPE outright: CPM bodies have
 * none, and without one there is no entity to expand.
 */
#include <errno.h>
#include <expat.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/utf8.h>

#include "util/buf.h"
#include "util/cpm-xml.h"
#include "util/macro.h"
#include "util/text.h"

#define NS_SEP	   '\x01'
#define NAME_MAX_K 48

struct state {
	enum cpm_xml_kind kind;
	XML_Parser p;
	int depth;
	char stack[CPM_XML_MAX_DEPTH + 1][NAME_MAX_K];
	struct buf text; /* character data of the innermost element */
	bool in_file_info, file_info_is_file, seen_file_info_file;
	int file_objects;
	unsigned n_participants;
	int error; /* first failure (negative errno), 0 if none */
	char *error_text;
	struct cpm_xml x;
	struct buf participants;
};

char *cpm_utf8_fix(char *s)
{
	size_t n = s ? strlen(s) : 0;

	for (size_t i = 0; i < n;) {
		size_t k = cpmsync_utf8_decode(s + i, n - i, NULL);

		if (k == 0) {
			s[i] = '?';
			k = 1;
		}
		i += k;
	}
	return s;
}

static void fail(struct state *st, int error, const char *fmt, ...) ATTR_FORMAT(3, 4);
static void fail(struct state *st, int error, const char *fmt, ...)
{
	va_list ap;

	if (st->error)
		return;
	st->error = error;
	va_start(ap, fmt);
	if (vasprintf(&st->error_text, fmt, ap) < 0)
		st->error_text = NULL;
	va_end(ap);
	cpm_utf8_fix(st->error_text);
	XML_StopParser(st->p, XML_FALSE);
}

static const char *local_name(const char *name)
{
	const char *s = strrchr(name, NS_SEP);

	return s ? s + 1 : name;
}

static const char *parent(const struct state *st, int up)
{
	int i = st->depth - 1 - up;

	return i >= 0 && i <= CPM_XML_MAX_DEPTH ? st->stack[i] : "";
}

/* A clean copy: trimmed, control characters as spaces, cut at max bytes. */
static char *clean_dup(const char *s, size_t n, size_t max)
{
	struct buf b = BUF_INIT(max + 1);

	while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	/* Printable ASCII only, within max (an IMDN report's ids and
	 * status): the loop below would copy it whole, one character at a
	 * time (callgrind, issue 11). */
	{
		size_t i = 0;

		while (i < n && (unsigned char)(s[i] - 32) < 95)
			i++;
		if (i == n && n <= max)
			return text_dup(s, n);
	}
	for (size_t i = 0; i < n;) {
		size_t k = cpmsync_utf8_decode(s + i, n - i, NULL);

		if (k == 0) { /* expat hands out UTF-8; be safe anyway */
			i++;
			continue;
		}
		if (b.len + k > max)
			break;
		if (k == 1 && ((unsigned char)s[i] < 32 || s[i] == 127)) {
			if (s[i] != 0 && buf_append_char(&b, ' ') < 0)
				goto oom;
		} else if (buf_append(&b, s + i, k) < 0) {
			goto oom;
		}
		i += k;
	}
	return b.data ? buf_steal(&b) : strdup("");
oom:
	buf_free(&b);
	return NULL;
}

static void set_value(struct state *st, char **field, const char *s, size_t n)
{
	char *v;

	if (*field && **field)
		return; /* the first one counts */
	v = clean_dup(s, n, CPM_XML_MAX_TEXT);
	if (!v) {
		fail(st, -ENOMEM, "out of memory");
		return;
	}
	free(*field);
	*field = v;
}

/* One address: brackets and a "Name <...>" form stripped, duplicates dropped. */
static void add_participant(struct state *st, const char *s, size_t n)
{
	_cleanup_free_ char *v = NULL;
	const char *lt;
	size_t len;

	if (st->n_participants >= CPM_XML_MAX_PARTICIPANTS)
		return;
	v = clean_dup(s, n, CPM_XML_MAX_TEXT);
	if (!v) {
		fail(st, -ENOMEM, "out of memory");
		return;
	}
	lt = strrchr(v, '<');
	if (lt) {
		char *gt = strchr(lt, '>');

		memmove(v, lt + 1, strlen(lt + 1) + 1);
		if (gt)
			v[gt - lt - 1] = '\0';
	}
	len = strlen(v);
	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		v[--len] = '\0';
	/* "user=phone" and other URI parameters split off by ';' are no address. */
	if (len == 0 || (!strchr(v, ':') && !strchr(v, '@')))
		return;
	for (size_t i = 0; i < st->participants.len;) {
		const char *line = st->participants.data + i;
		const char *nl = memchr(line, '\n', st->participants.len - i);
		size_t ll = nl ? (size_t)(nl - line) : st->participants.len - i;

		if (ll == len && memcmp(line, v, len) == 0)
			return;
		i += ll + 1;
	}
	if ((st->participants.len && buf_append_char(&st->participants, '\n') < 0) ||
	    buf_append(&st->participants, v, len) < 0) {
		fail(st, -E2BIG, "too many participants");
		return;
	}
	st->n_participants++;
}

/* <invited-participants>: addresses separated by ';' or ','. */
static void add_participant_list(struct state *st, const char *s, size_t n)
{
	size_t start = 0;
	bool angle = false;

	for (size_t i = 0; i <= n && !st->error; i++) {
		if (i < n) {
			if (s[i] == '<')
				angle = true;
			else if (s[i] == '>')
				angle = false;
			if (angle || (s[i] != ';' && s[i] != ',' && s[i] != '\n'))
				continue;
		}
		add_participant(st, s + start, i - start);
		start = i + 1;
	}
}

static const char *attr(const char **atts, const char *name)
{
	for (size_t i = 0; atts[i]; i += 2)
		if (strcasecmp(local_name(atts[i]), name) == 0)
			return atts[i + 1];
	return NULL;
}

static bool is(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

static void XMLCALL on_start(void *userdata, const char *name, const char **atts)
{
	struct state *st = userdata;
	const char *ln = local_name(name), *v;

	if (st->error)
		return;
	if (st->depth >= CPM_XML_MAX_DEPTH) {
		fail(st, -E2BIG, "XML nested deeper than %d elements", CPM_XML_MAX_DEPTH);
		return;
	}
	{ /* cut as snprintf() would, without its cost per element */
		size_t n = strnlen(ln, NAME_MAX_K - 1);

		memcpy(st->stack[st->depth], ln, n);
		st->stack[st->depth][n] = '\0';
	}
	st->depth++;
	buf_reset(&st->text);

	switch (st->kind) {
	case CPM_XML_IMDN:
		if (is(parent(st, 1), "status") && !st->x.status) {
			const char *n = parent(st, 2);

			set_value(st, &st->x.status, ln, strlen(ln));
			if (is(n, "delivery-notification"))
				set_value(st, &st->x.notification, "delivery", 8);
			else if (is(n, "display-notification"))
				set_value(st, &st->x.notification, "display", 7);
			else if (is(n, "processing-notification"))
				set_value(st, &st->x.notification, "processing", 10);
		}
		break;
	case CPM_XML_GROUP_STATE:
		if (is(ln, "groupstate") && (v = attr(atts, "group-type")))
			set_value(st, &st->x.session_type, v, strlen(v));
		if (is(ln, "participant") && (v = attr(atts, "comm-addr")))
			add_participant(st, v, strlen(v));
		break;
	case CPM_XML_FT_HTTP:
		if (is(ln, "file-info")) {
			v = attr(atts, "type");
			st->in_file_info = true;
			st->file_info_is_file = !v || is(v, "file");
		}
		break;
	case CPM_XML_FT_CPM:
		if (is(ln, "file-object"))
			st->file_objects++;
		break;
	case CPM_XML_SESSION:
		break;
	}
}

static int parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;
	const char *p = s;

	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (*p)
		return -EINVAL;
	*ret = v;
	return 0;
}

/*
 * a=file-selector (RFC 5547 5): name:"..." type:... size:... hash:...,
 * in the SDP of a CPM file-object.
 */
static void file_selector(struct state *st, const char *sdp)
{
	const char *p = strstr(sdp, "file-selector:");

	if (!p)
		return;
	p += strlen("file-selector:");
	while (*p && *p != '\r' && *p != '\n' && !st->error) {
		const char *key = p, *val;
		size_t kn, vn;

		while (*p == ' ')
			p++;
		key = p;
		while (*p && *p != ':' && *p != ' ' && *p != '\r' && *p != '\n')
			p++;
		kn = (size_t)(p - key);
		if (*p != ':') {
			if (*p == ' ')
				continue;
			break;
		}
		p++;
		if (*p == '"') {
			val = ++p;
			while (*p && *p != '"' && *p != '\r' && *p != '\n')
				p++;
			vn = (size_t)(p - val);
			if (*p == '"')
				p++;
		} else {
			val = p;
			while (*p && *p != ' ' && *p != '\r' && *p != '\n')
				p++;
			vn = (size_t)(p - val);
		}
		if (kn == 4 && strncasecmp(key, "name", 4) == 0) {
			set_value(st, &st->x.file_name, val, vn);
		} else if (kn == 4 && strncasecmp(key, "type", 4) == 0) {
			set_value(st, &st->x.file_type, val, vn);
		} else if (kn == 4 && strncasecmp(key, "size", 4) == 0) {
			char num[24];

			if (vn < sizeof(num)) {
				memcpy(num, val, vn);
				num[vn] = '\0';
				if (parse_u64(num, &st->x.file_size) < 0)
					fail(st, -EBADMSG,
					     "file-selector size \"%s\" is not a number", num);
			}
		}
	}
}

static void XMLCALL on_end(void *userdata, const char *name)
{
	struct state *st = userdata;
	const char *ln = local_name(name);
	const char *t = st->text.data ? st->text.data : "";
	size_t tn = st->text.len;

	if (st->error)
		return;
	switch (st->kind) {
	case CPM_XML_IMDN:
		if (is(ln, "message-id") && is(parent(st, 1), "imdn"))
			set_value(st, &st->x.message_id, t, tn);
		break;
	case CPM_XML_SESSION:
		if (is(ln, "session-type"))
			set_value(st, &st->x.session_type, t, tn);
		else if (is(ln, "invited-participants"))
			add_participant_list(st, t, tn);
		break;
	case CPM_XML_GROUP_STATE:
		break;
	case CPM_XML_FT_HTTP:
		if (is(ln, "file-info")) {
			if (st->file_info_is_file)
				st->seen_file_info_file = true;
			st->in_file_info = false;
		} else if (st->in_file_info && st->file_info_is_file && !st->seen_file_info_file) {
			if (is(ln, "file-name")) {
				set_value(st, &st->x.file_name, t, tn);
			} else if (is(ln, "content-type")) {
				set_value(st, &st->x.file_type, t, tn);
			} else if (is(ln, "file-size")) {
				if (parse_u64(t, &st->x.file_size) < 0)
					fail(st, -EBADMSG, "<file-size> \"%.40s\" is not a number",
					     t);
			}
		}
		break;
	case CPM_XML_FT_CPM:
		if (is(ln, "file-transfer-type"))
			set_value(st, &st->x.session_type, t, tn);
		else if (is(ln, "invited-participants"))
			add_participant_list(st, t, tn);
		else if (is(ln, "sdp") && st->file_objects == 1 && is(parent(st, 1), "file-object"))
			file_selector(st, t);
		break;
	}
	if (st->depth > 0)
		st->depth--;
	buf_reset(&st->text);
}

static void XMLCALL on_text(void *userdata, const char *s, int len)
{
	struct state *st = userdata;

	if (st->error || len <= 0)
		return;
	/* Longer text than any value we keep is cut (the buffer's max). */
	if (st->text.len + (size_t)len > CPM_XML_MAX_TEXT * 4) {
		size_t room = CPM_XML_MAX_TEXT * 4 - st->text.len;

		len = (int)room;
	}
	if (len > 0 && buf_append(&st->text, s, (size_t)len) < 0)
		fail(st, -ENOMEM, "out of memory");
}

static void XMLCALL on_doctype(void *userdata, const char *name, const char *sysid,
			       const char *pubid, int has_internal_subset)
{
	struct state *st = userdata;

	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	fail(st, -EBADMSG, "XML with a DOCTYPE (%.40s) is refused: no CPM format has one",
	     name ? name : "");
}

static void XMLCALL on_entity(void *userdata, const char *name, int is_param, const char *value,
			      int value_len, const char *base, const char *sysid, const char *pubid,
			      const char *notation)
{
	struct state *st = userdata;

	(void)is_param;
	(void)value;
	(void)value_len;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	fail(st, -EBADMSG, "XML entity declaration (%.40s) is refused", name ? name : "");
}

void cpm_xml_free(struct cpm_xml *x)
{
	if (!x)
		return;
	free(x->message_id);
	free(x->status);
	free(x->notification);
	free(x->participants);
	free(x->session_type);
	free(x->file_name);
	free(x->file_type);
	*x = (struct cpm_xml){ 0 };
}

static const char *kind_name(enum cpm_xml_kind k)
{
	switch (k) {
	case CPM_XML_IMDN:
		return "IMDN report";
	case CPM_XML_SESSION:
		return "session-info";
	case CPM_XML_GROUP_STATE:
		return "group-state";
	case CPM_XML_FT_HTTP:
		return "FT-over-HTTP descriptor";
	case CPM_XML_FT_CPM:
		return "file-transfer descriptor";
	}
	return "XML";
}

static int fill_empty(char **f)
{
	if (!*f)
		*f = strdup("");
	return *f ? 0 : -ENOMEM;
}

/* Skips a BOM, whitespace and an XML declaration (for the synthetic root). */
static size_t skip_prolog(const char *d, size_t n)
{
	size_t i = 0;

	if (n >= 3 && memcmp(d, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < n && (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n'))
		i++;
	if (n - i >= 5 && memcmp(d + i, "<?xml", 5) == 0) {
		const char *e = memmem(d + i, n - i, "?>", 2);

		if (e)
			i = (size_t)(e - d) + 2;
	}
	return i;
}

static bool is_name_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/*
 * The length of an XML declaration at d[0] that expat need not read: one
 * of the forms CPM objects are written with (UTF-8 or no encoding, version
 * 1.0, nothing else), byte for byte, followed by whitespace and then the
 * first element ('<' and an ASCII letter or '_': a second declaration, a
 * processing instruction, a comment, a DOCTYPE or a byte that would make
 * expat guess another encoding is left to expat where it was).  Without it expat reads
 * what follows as it would after it: UTF-8 (an ASCII first byte), line 1
 * (the line break after it stays).  Its XML declaration cost expat about
 * 4,800 of the 31,700 instructions of a small IMDN report, 15%
 * (callgrind, 1,000 parses of bench-gen's report); 0 when there is none.
 */
static size_t plain_declaration(const char *d, size_t n)
{
	static const char *const forms[] = {
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
		"<?xml version=\"1.0\" encoding=\"utf-8\"?>",
		"<?xml version=\"1.0\"?>",
	};

	for (size_t f = 0; f < ARRAY_SIZE(forms); f++) {
		size_t k = strlen(forms[f]), i;

		if (n < k || memcmp(d, forms[f], k) != 0)
			continue;
		for (i = k; i < n && (d[i] == ' ' || d[i] == '\t' || d[i] == '\r' || d[i] == '\n');)
			i++;
		return i + 1 < n && d[i] == '<' && is_name_letter(d[i + 1]) ? k : 0;
	}
	return 0;
}

/*
 * One parser kept for the next parse: creating one per object (its hash
 * tables and buffers) was most of the cost of a small IMDN report.
 * XML_ParserReset() makes it as new (handlers cleared, namespace mode
 * kept).  The mutex is only tried: a thread that finds the parser in use
 * makes its own for that call, so parsing never waits.
 */
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static XML_Parser kept;

static XML_Parser parser_get(bool *ret_kept)
{
	*ret_kept = false;
	if (pthread_mutex_trylock(&kept_lock) == 0) {
		if (!kept)
			kept = XML_ParserCreateNS(NULL, NS_SEP);
		else if (!XML_ParserReset(kept, NULL)) {
			XML_ParserFree(kept);
			kept = XML_ParserCreateNS(NULL, NS_SEP);
		}
		if (kept) {
			*ret_kept = true;
			return kept;
		}
		pthread_mutex_unlock(&kept_lock);
	}
	return XML_ParserCreateNS(NULL, NS_SEP);
}

static void parser_put(XML_Parser p, bool is_kept)
{
	if (is_kept)
		pthread_mutex_unlock(&kept_lock);
	else
		XML_ParserFree(p);
}

int cpm_xml_parse(enum cpm_xml_kind kind, const char *data, size_t len, struct cpm_xml *ret,
		  char **ret_error)
{
	struct state st = { .kind = kind };
	enum XML_Status xs = XML_STATUS_OK;
	char *err = NULL;
	bool is_kept;
	int r = 0;

	if (!ret || (!data && len))
		return -EINVAL;
	if (ret_error)
		*ret_error = NULL;
	*ret = (struct cpm_xml){ 0 };
	if (len > CPM_XML_MAX) {
		if (ret_error && asprintf(ret_error, "%s XML of %zu bytes is over the limit of %u",
					  kind_name(kind), len, CPM_XML_MAX) < 0)
			*ret_error = NULL;
		return -E2BIG;
	}
	st.p = parser_get(&is_kept);
	if (!st.p)
		return -ENOMEM;
	buf_init(&st.text, CPM_XML_MAX_TEXT * 4 + 1);
	buf_init(&st.participants, CPM_XML_MAX_PARTICIPANTS * (CPM_XML_MAX_TEXT + 1));
	XML_SetUserData(st.p, &st);
	XML_SetElementHandler(st.p, on_start, on_end);
	XML_SetCharacterDataHandler(st.p, on_text);
	XML_SetStartDoctypeDeclHandler(st.p, on_doctype);
	XML_SetEntityDeclHandler(st.p, on_entity);

	if (kind == CPM_XML_FT_CPM) {
		static const char open[] = "<cpm-file-transfer>", close[] = "</cpm-file-transfer>";
		size_t skip = data ? skip_prolog(data, len) : 0;

		xs = XML_Parse(st.p, open, (int)strlen(open), XML_FALSE);
		if (xs == XML_STATUS_OK)
			xs = XML_Parse(st.p, data + skip, (int)(len - skip), XML_FALSE);
		if (xs == XML_STATUS_OK)
			xs = XML_Parse(st.p, close, (int)strlen(close), XML_TRUE);
	} else {
		size_t skip = data ? plain_declaration(data, len) : 0;

		xs = XML_Parse(st.p, data ? data + skip : "", (int)(len - skip), XML_TRUE);
	}
	if (!st.error && xs != XML_STATUS_OK) {
		st.error = -EBADMSG;
		if (asprintf(&st.error_text, "%s XML not well-formed at line %lu: %s",
			     kind_name(kind), (unsigned long)XML_GetCurrentLineNumber(st.p),
			     XML_ErrorString(XML_GetErrorCode(st.p))) < 0)
			st.error_text = NULL;
	}
	if (!st.error && kind == CPM_XML_IMDN) {
		if (!st.x.message_id || !*st.x.message_id)
			fail(&st, -EBADMSG, "IMDN report without <message-id>");
		else if (!st.x.status || !*st.x.status)
			fail(&st, -EBADMSG, "IMDN report without a <status>");
	}
	if (!st.error && st.participants.len) {
		st.x.participants = buf_steal(&st.participants);
		if (!st.x.participants)
			st.error = -ENOMEM;
	}
	if (!st.error) {
		r = fill_empty(&st.x.message_id);
		if (r >= 0)
			r = fill_empty(&st.x.status);
		if (r >= 0)
			r = fill_empty(&st.x.notification);
		if (r >= 0)
			r = fill_empty(&st.x.participants);
		if (r >= 0)
			r = fill_empty(&st.x.session_type);
		if (r >= 0)
			r = fill_empty(&st.x.file_name);
		if (r >= 0)
			r = fill_empty(&st.x.file_type);
		if (r < 0)
			st.error = r;
	}
	parser_put(st.p, is_kept);
	buf_free(&st.text);
	buf_free(&st.participants);
	if (st.error) {
		err = st.error_text;
		cpm_xml_free(&st.x);
		if (ret_error)
			*ret_error = err;
		else
			free(err);
		return st.error;
	}
	*ret = st.x;
	return 0;
}
