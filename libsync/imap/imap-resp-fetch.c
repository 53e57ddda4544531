/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FETCH decoding: data items, ENVELOPE, date-time, body sections, and the
 * serializer for argument trees (BODYSTRUCTURE kept as text).
 */

#include "imap/imap-quote.h"
#include "imap/imap-resp.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/error.h>

#include "imap/imap-resp-internal.h"

#define EPROTO_ (-CPMSYNC_E_PROTOCOL)

/* -------------------------------------------------------------------- */
/* date-time */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	/* days since 1970-01-01 in the proleptic Gregorian calendar */
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, unsigned *ret)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*ret = v;
	return true;
}

int imap_parse_date_time(const char *s, size_t len, time_t *ret)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	static const unsigned char mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned day, mon, year, hh, mm, ss, zh, zm;
	int64_t t;
	int sign;

	if (!s)
		return EPROTO_;
	/* day: " 7", "07" or "7" */
	if (len >= 1 && s[0] == ' ') {
		s++;
		len--;
	}
	if (len == 25) {
		if (!digits(s, 1, &day))
			return EPROTO_;
		s += 1;
	} else if (len == 26) {
		if (!digits(s, 2, &day))
			return EPROTO_;
		s += 2;
	} else {
		return EPROTO_;
	}
	/* "-Jul-1996 02:44:25 -0700" (24 bytes) */
	if (s[0] != '-' || s[4] != '-' || s[9] != ' ' || s[12] != ':' || s[15] != ':' ||
	    s[18] != ' ')
		return EPROTO_;
	for (mon = 0; mon < 12; mon++)
		if (strncasecmp(s + 1, months + 3 * mon, 3) == 0)
			break;
	if (mon == 12)
		return EPROTO_;
	if (!digits(s + 5, 4, &year) || !digits(s + 10, 2, &hh) || !digits(s + 13, 2, &mm) ||
	    !digits(s + 16, 2, &ss) || !digits(s + 20, 2, &zh) || !digits(s + 22, 2, &zm))
		return EPROTO_;
	if (s[19] == '+')
		sign = 1;
	else if (s[19] == '-')
		sign = -1;
	else
		return EPROTO_;
	if (day < 1 || day > mdays[mon] || hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59)
		return EPROTO_;
	if (mon == 1 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
		return EPROTO_;
	t = days_from_civil(year, mon + 1, day) * 86400 + hh * 3600 + mm * 60 + ss;
	t -= sign * (int64_t)(zh * 3600 + zm * 60);
	*ret = (time_t)t;
	return 0;
}

static int arg_date_time(const struct imap_arg *a, time_t *ret)
{
	if (a->type != IMAP_ARG_STRING && a->type != IMAP_ARG_LITERAL)
		return EPROTO_;
	return imap_parse_date_time(a->u.s.str, a->u.s.len, ret);
}

/* -------------------------------------------------------------------- */
/* ENVELOPE */

static int address_decode(const struct imap_arg *a, struct imap_address *ret)
{
	struct imap_address ad;

	if (a->type != IMAP_ARG_LIST || a->u.list.count != 4)
		return EPROTO_;
	if (imap_resp_arg_nstring(&a->u.list.args[0], &ad.name) < 0 ||
	    imap_resp_arg_nstring(&a->u.list.args[1], &ad.adl) < 0 ||
	    imap_resp_arg_nstring(&a->u.list.args[2], &ad.mailbox) < 0 ||
	    imap_resp_arg_nstring(&a->u.list.args[3], &ad.host) < 0)
		return EPROTO_;
	/* RFC 3501 7.4.2: NIL host marks group syntax */
	if (ad.host.str)
		ad.kind = IMAP_ADDRESS_MAILBOX;
	else if (ad.mailbox.str)
		ad.kind = IMAP_ADDRESS_GROUP_START;
	else
		ad.kind = IMAP_ADDRESS_GROUP_END;
	*ret = ad;
	return 0;
}

static int address_list(const struct imap_arg *a, struct imap_address_list *ret)
{
	struct imap_address ad;

	if (a->type == IMAP_ARG_NIL) {
		*ret = (struct imap_address_list){ NULL, 0 };
		return 0;
	}
	if (a->type != IMAP_ARG_LIST)
		return EPROTO_;
	for (size_t i = 0; i < a->u.list.count; i++)
		if (address_decode(&a->u.list.args[i], &ad) < 0)
			return EPROTO_;
	*ret = (struct imap_address_list){ a->u.list.args, a->u.list.count };
	return 0;
}

int imap_address_get(const struct imap_address_list *list, size_t i, struct imap_address *ret)
{
	if (i >= list->count)
		return -EINVAL;
	return address_decode(&list->args[i], ret);
}

int imap_envelope_from_arg(const struct imap_arg *list, struct imap_envelope *ret)
{
	struct imap_envelope env;
	const struct imap_arg *a;

	if (!list || list->type != IMAP_ARG_LIST || list->u.list.count != 10)
		return EPROTO_;
	a = list->u.list.args;
	if (imap_resp_arg_nstring(&a[0], &env.date) < 0 ||
	    imap_resp_arg_nstring(&a[1], &env.subject) < 0 || address_list(&a[2], &env.from) < 0 ||
	    address_list(&a[3], &env.sender) < 0 || address_list(&a[4], &env.reply_to) < 0 ||
	    address_list(&a[5], &env.to) < 0 || address_list(&a[6], &env.cc) < 0 ||
	    address_list(&a[7], &env.bcc) < 0 ||
	    imap_resp_arg_nstring(&a[8], &env.in_reply_to) < 0 ||
	    imap_resp_arg_nstring(&a[9], &env.message_id) < 0)
		return EPROTO_;
	*ret = env;
	return 0;
}

/* -------------------------------------------------------------------- */
/* FETCH */

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && strncasecmp(s, prefix, n) == 0;
}

/* BODY[...]<n>, BINARY[...]<n>, BODY.PEEK[...], RFC822(.HEADER|.TEXT). */
static int section_item(const struct imap_arg *key, const struct imap_arg *v, bool binary,
			struct imap_fetch *f)
{
	const char *s = key->u.s.str, *open, *close = NULL;
	size_t len = key->u.s.len;
	struct imap_fetch_section sec = { .name = s, .binary = binary };

	if (v->type != IMAP_ARG_NIL && v->type != IMAP_ARG_STRING && v->type != IMAP_ARG_LITERAL &&
	    v->type != IMAP_ARG_STREAMED)
		return EPROTO_;
	sec.value = v;
	open = memchr(s, '[', len);
	if (!open) {
		/* RFC822, RFC822.HEADER, RFC822.TEXT */
		sec.name_len = len;
		sec.section = len > 7 ? s + 7 : s + len;
		sec.section_len = len > 7 ? len - 7 : 0;
	} else {
		for (const char *p = s + len; p > open; p--)
			if (p[-1] == ']') {
				close = p - 1;
				break;
			}
		if (!close)
			return EPROTO_;
		sec.section = open + 1;
		sec.section_len = (size_t)(close - open - 1);
		sec.name_len = (size_t)(close + 1 - s);
		if (sec.name_len < len) {
			const char *o = close + 1, *end = s + len;

			if (end - o < 3 || o[0] != '<' || end[-1] != '>' ||
			    !imap_resp_str_u32(o + 1, (size_t)(end - o - 2), &sec.origin))
				return EPROTO_;
			sec.has_origin = true;
		}
	}
	if (f->nsections == IMAP_FETCH_MAX_SECTIONS)
		return EPROTO_;
	f->sections[f->nsections++] = sec;
	return 0;
}

static int binsize_item(const struct imap_arg *key, const struct imap_arg *v, struct imap_fetch *f)
{
	const char *s = key->u.s.str;
	size_t len = key->u.s.len, pre = strlen("BINARY.SIZE[");
	struct imap_fetch_binsize b;

	if (len < pre + 1 || s[len - 1] != ']')
		return EPROTO_;
	b.section = s + pre;
	b.section_len = len - pre - 1;
	if (imap_resp_arg_u64(v, &b.size) < 0)
		return EPROTO_;
	if (f->nbinsizes == IMAP_FETCH_MAX_BINSIZES)
		return EPROTO_;
	f->binsizes[f->nbinsizes++] = b;
	return 0;
}

/* An annotation entry name: an astring starting with '/' (RFC 5257 3.2),
 * of bounded length. */
static int annotation_name(const struct imap_arg *a, struct imap_nstr *ret)
{
	if (imap_resp_arg_astring(a, ret) < 0 || ret->len == 0 || ret->str[0] != '/' ||
	    ret->len > IMAP_ANNOTATION_ENTRY_MAX)
		return EPROTO_;
	return 0;
}

/* The attribute/value list of one entry ("(value.priv "x" size.priv "1")"). */
static int annotation_attrs(const struct imap_arg *l, struct imap_annotation_entry *ret)
{
	if (l->type != IMAP_ARG_LIST || l->u.list.count % 2 != 0 ||
	    l->u.list.count > 2 * IMAP_ANNOTATION_MAX_ATTRS)
		return EPROTO_;
	ret->has_priv = ret->has_shared = false;
	ret->priv = ret->shared = (struct imap_nstr){ NULL, 0 };
	for (size_t i = 0; i < l->u.list.count; i += 2) {
		const struct imap_arg *k = &l->u.list.args[i], *v = k + 1;
		struct imap_nstr attr, value;

		if (imap_resp_arg_astring(k, &attr) < 0 || imap_resp_arg_nstring(v, &value) < 0)
			return EPROTO_;
		if (imap_nstr_caseeq(&attr, "value.priv")) {
			ret->has_priv = true;
			ret->priv = value;
		} else if (imap_nstr_caseeq(&attr, "value.shared")) {
			ret->has_shared = true;
			ret->shared = value;
		}
	}
	return 0;
}

/* ANNOTATION (entry (attrs) ...) or ANNOTATION (entry ...), checked whole. */
static int annotation_item(const struct imap_arg *v, struct imap_fetch *f)
{
	const struct imap_arg *a;
	struct imap_annotation_entry en;
	bool values;
	size_t n;

	if (v->type != IMAP_ARG_LIST || v->u.list.count == 0)
		return EPROTO_;
	a = v->u.list.args;
	values = v->u.list.count >= 2 && a[1].type == IMAP_ARG_LIST;
	if (values && v->u.list.count % 2 != 0)
		return EPROTO_;
	n = values ? v->u.list.count / 2 : v->u.list.count;
	if (n > IMAP_ANNOTATION_MAX_ENTRIES)
		return EPROTO_;
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *e = values ? &a[2 * i] : &a[i];

		if (annotation_name(e, &en.name) < 0 ||
		    (values && annotation_attrs(e + 1, &en) < 0))
			return EPROTO_;
	}
	f->annotation = v;
	f->nannotations = n;
	f->annotation_values = values;
	f->present |= IMAP_FETCH_ANNOTATION;
	return 0;
}

int imap_fetch_annotation_get(const struct imap_fetch *f, size_t i,
			      struct imap_annotation_entry *ret)
{
	struct imap_annotation_entry en = { 0 };
	const struct imap_arg *e;

	if (!(f->present & IMAP_FETCH_ANNOTATION) || i >= f->nannotations)
		return -EINVAL;
	e = f->annotation_values ? &f->annotation->u.list.args[2 * i]
				 : &f->annotation->u.list.args[i];
	/* Checked by annotation_item(): these cannot fail. */
	if (annotation_name(e, &en.name) < 0 ||
	    (f->annotation_values && annotation_attrs(e + 1, &en) < 0))
		return EPROTO_;
	*ret = en;
	return 0;
}

static int fetch_item(const struct imap_arg *k, const struct imap_arg *v, struct imap_fetch *f)
{
	const char *s = k->u.s.str;
	size_t len = k->u.s.len;
	int r;

	if (imap_resp_atom_is(k, "UID")) {
		if (imap_resp_arg_u32(v, &f->uid) < 0 || f->uid == 0)
			return EPROTO_;
		f->present |= IMAP_FETCH_UID;
	} else if (imap_resp_atom_is(k, "FLAGS")) {
		r = imap_flags_from_arg(v, &f->flags);
		if (r < 0)
			return r;
		f->present |= IMAP_FETCH_FLAGS;
	} else if (imap_resp_atom_is(k, "MODSEQ")) {
		if (v->type != IMAP_ARG_LIST || v->u.list.count != 1 ||
		    imap_resp_arg_u64(&v->u.list.args[0], &f->modseq) < 0)
			return EPROTO_;
		f->present |= IMAP_FETCH_MODSEQ;
	} else if (imap_resp_atom_is(k, "INTERNALDATE")) {
		r = arg_date_time(v, &f->internaldate);
		if (r < 0)
			return r;
		f->present |= IMAP_FETCH_INTERNALDATE;
	} else if (imap_resp_atom_is(k, "SAVEDATE")) {
		/* RFC 8514: NIL when the server does not know it */
		if (v->type != IMAP_ARG_NIL) {
			r = arg_date_time(v, &f->savedate);
			if (r < 0)
				return r;
			f->present |= IMAP_FETCH_SAVEDATE;
		}
	} else if (imap_resp_atom_is(k, "RFC822.SIZE")) {
		if (imap_resp_arg_u64(v, &f->rfc822_size) < 0)
			return EPROTO_;
		f->present |= IMAP_FETCH_RFC822_SIZE;
	} else if (imap_resp_atom_is(k, "ENVELOPE")) {
		r = imap_envelope_from_arg(v, &f->envelope);
		if (r < 0)
			return r;
		f->present |= IMAP_FETCH_ENVELOPE;
	} else if (imap_resp_atom_is(k, "BODYSTRUCTURE")) {
		if (v->type != IMAP_ARG_LIST)
			return EPROTO_;
		f->bodystructure = v;
		f->present |= IMAP_FETCH_BODYSTRUCTURE;
	} else if (imap_resp_atom_is(k, "BODY")) {
		if (v->type != IMAP_ARG_LIST)
			return EPROTO_;
		f->body = v;
		f->present |= IMAP_FETCH_BODY;
	} else if (imap_resp_atom_is(k, "PREVIEW")) {
		/* RFC 8970: nstring; drafts sent (FUZZY "text") */
		if (v->type == IMAP_ARG_LIST && v->u.list.count > 0)
			v = &v->u.list.args[v->u.list.count - 1];
		if (imap_resp_arg_nstring(v, &f->preview) < 0)
			return EPROTO_;
		f->present |= IMAP_FETCH_PREVIEW;
	} else if (imap_resp_atom_is(k, "EMAILID")) {
		if (imap_objectid_parse(v, false, &f->emailid) < 0)
			return EPROTO_;
		f->present |= IMAP_FETCH_EMAILID;
	} else if (imap_resp_atom_is(k, "THREADID")) {
		if (imap_objectid_parse(v, true, &f->threadid) < 0)
			return EPROTO_;
		f->present |= IMAP_FETCH_THREADID;
	} else if (imap_resp_atom_is(k, "ANNOTATION")) {
		return annotation_item(v, f);
	} else if (has_prefix(s, len, "BINARY.SIZE[")) {
		return binsize_item(k, v, f);
	} else if (has_prefix(s, len, "BODY[") || has_prefix(s, len, "BODY.PEEK[")) {
		return section_item(k, v, false, f);
	} else if (has_prefix(s, len, "BINARY[") || has_prefix(s, len, "BINARY.PEEK[")) {
		return section_item(k, v, true, f);
	} else if (imap_resp_atom_is(k, "RFC822") || imap_resp_atom_is(k, "RFC822.HEADER") ||
		   imap_resp_atom_is(k, "RFC822.TEXT")) {
		return section_item(k, v, false, f);
	}
	/* anything else: unknown item, its one value is skipped */
	return 0;
}

int imap_resp_fetch(const struct imap_response *resp, struct imap_fetch *ret)
{
	struct imap_fetch f;
	const struct imap_arg *l;
	int r;

	if (!imap_resp_is(resp, "FETCH"))
		return -EINVAL;
	if (!resp->has_number || resp->number == 0 || resp->nargs != 1 ||
	    resp->args[0].type != IMAP_ARG_LIST)
		return EPROTO_;
	l = &resp->args[0];
	if (l->u.list.count % 2 != 0)
		return EPROTO_;
	/* only the header fields: the arrays are filled as needed */
	memset(&f, 0, offsetof(struct imap_fetch, sections));
	f.nbinsizes = 0;
	f.seq = resp->number;
	for (size_t i = 0; i < l->u.list.count; i += 2) {
		const struct imap_arg *k = &l->u.list.args[i];

		if (k->type != IMAP_ARG_ATOM)
			return EPROTO_;
		r = fetch_item(k, k + 1, &f);
		if (r < 0)
			return r;
	}
	/* copy only what was filled */
	memcpy(ret, &f, offsetof(struct imap_fetch, sections));
	memcpy(ret->sections, f.sections, f.nsections * sizeof(f.sections[0]));
	ret->nbinsizes = f.nbinsizes;
	memcpy(ret->binsizes, f.binsizes, f.nbinsizes * sizeof(f.binsizes[0]));
	return 0;
}

const struct imap_fetch_section *imap_fetch_find_section(const struct imap_fetch *f,
							 const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < f->nsections; i++)
		if (f->sections[i].name_len == n && strncasecmp(f->sections[i].name, name, n) == 0)
			return &f->sections[i];
	return NULL;
}

/* -------------------------------------------------------------------- */
/* Serialization */

static bool quotable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

static int write_string(struct buf *out, const char *s, size_t len)
{
	int r;

	if (!quotable(s, len)) {
		r = buf_printf(out, "{%zu}\r\n", len);
		if (r < 0)
			return r;
		return buf_append(out, s, len);
	}
	return imap_append_quoted(out, s, len);
}

int imap_arg_write(struct buf *out, const struct imap_arg *a)
{
	int r;

	switch (a->type) {
	case IMAP_ARG_NIL:
		return buf_append_str(out, "NIL");
	case IMAP_ARG_ATOM:
		if (a->u.s.len == 0)
			return -EINVAL;
		return buf_append(out, a->u.s.str, a->u.s.len);
	case IMAP_ARG_STRING:
	case IMAP_ARG_LITERAL:
		return write_string(out, a->u.s.str, a->u.s.len);
	case IMAP_ARG_LIST:
		r = buf_append_char(out, '(');
		for (size_t i = 0; r >= 0 && i < a->u.list.count; i++) {
			if (i > 0)
				r = buf_append_char(out, ' ');
			if (r >= 0)
				r = imap_arg_write(out, &a->u.list.args[i]);
		}
		if (r >= 0)
			r = buf_append_char(out, ')');
		return r;
	case IMAP_ARG_STREAMED:
	default:
		return -EINVAL;
	}
}

int imap_body_type_from_arg(const struct imap_arg *bs, struct imap_body_type *ret)
{
	struct imap_body_type t = { 0 };
	const struct imap_arg *a;
	size_t n, i;

	if (!bs || bs->type != IMAP_ARG_LIST || bs->u.list.count < 2)
		return EPROTO_;
	a = bs->u.list.args;
	n = bs->u.list.count;
	if (a[0].type == IMAP_ARG_LIST) {
		for (i = 0; i < n && a[i].type == IMAP_ARG_LIST; i++)
			;
		if (i == n || imap_resp_arg_nstring(&a[i], &t.subtype) < 0 || !t.subtype.str)
			return EPROTO_;
		t.multipart = true;
	} else {
		if (imap_resp_arg_nstring(&a[0], &t.type) < 0 ||
		    imap_resp_arg_nstring(&a[1], &t.subtype) < 0)
			return EPROTO_;
	}
	*ret = t;
	return 0;
}
