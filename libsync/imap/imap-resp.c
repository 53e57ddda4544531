/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Typed decoding of parsed IMAP responses: capabilities, simple untagged
 * responses, STATUS, LIST, SEARCH/ESEARCH, METADATA, ACL, NAMESPACE and
 * response codes.  FETCH lives in imap-resp-fetch.c.
 */

#include "imap/imap-resp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/error.h>

#include "imap/imap-resp-internal.h"

#define EPROTO_ (-CPMSYNC_E_PROTOCOL)

/* -------------------------------------------------------------------- */
/* Helpers */

bool imap_resp_str_u32(const char *s, size_t len, uint32_t *ret)
{
	uint64_t v;

	if (!imap_resp_str_u64(s, len, &v) || v > UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

bool imap_resp_str_u64(const char *s, size_t len, uint64_t *ret)
{
	uint64_t v = 0;

	if (!s || len == 0)
		return false;
	/* leading zeros do not count against the 19 digits */
	while (len > 1 && s[0] == '0') {
		s++;
		len--;
	}
	if (len > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	/* 19 digits fit in uint64_t; the limit is 2^63-1 */
	if (v > (uint64_t)INT64_MAX)
		return false;
	*ret = v;
	return true;
}

int imap_resp_arg_u32(const struct imap_arg *a, uint32_t *ret)
{
	if (!a || a->type != IMAP_ARG_ATOM || !imap_resp_str_u32(a->u.s.str, a->u.s.len, ret))
		return EPROTO_;
	return 0;
}

int imap_resp_arg_u64(const struct imap_arg *a, uint64_t *ret)
{
	if (!a || a->type != IMAP_ARG_ATOM || !imap_resp_str_u64(a->u.s.str, a->u.s.len, ret))
		return EPROTO_;
	return 0;
}

int imap_resp_arg_nstring(const struct imap_arg *a, struct imap_nstr *ret)
{
	if (!a)
		return EPROTO_;
	switch (a->type) {
	case IMAP_ARG_NIL:
		*ret = (struct imap_nstr){ NULL, 0 };
		return 0;
	case IMAP_ARG_STRING:
	case IMAP_ARG_LITERAL:
		*ret = (struct imap_nstr){ a->u.s.str, a->u.s.len };
		return 0;
	default:
		return EPROTO_;
	}
}

int imap_resp_arg_astring(const struct imap_arg *a, struct imap_nstr *ret)
{
	if (!a || !imap_arg_is_string(a))
		return EPROTO_;
	*ret = (struct imap_nstr){ a->u.s.str, a->u.s.len };
	return 0;
}

int imap_objectid_parse(const struct imap_arg *v, bool nil_ok, struct imap_nstr *ret)
{
	const struct imap_arg *a;

	if (nil_ok &&
	    (v->type == IMAP_ARG_NIL || (v->type == IMAP_ARG_LIST && v->u.list.count == 1 &&
					 v->u.list.args[0].type == IMAP_ARG_NIL))) {
		*ret = (struct imap_nstr){ NULL, 0 };
		return 0;
	}
	if (v->type != IMAP_ARG_LIST || v->u.list.count != 1)
		return EPROTO_;
	a = &v->u.list.args[0];
	if (a->type != IMAP_ARG_ATOM || a->u.s.len == 0 || a->u.s.len > 255)
		return EPROTO_;
	for (size_t i = 0; i < a->u.s.len; i++) {
		char c = a->u.s.str[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return EPROTO_;
	}
	*ret = (struct imap_nstr){ a->u.s.str, a->u.s.len };
	return 0;
}

bool imap_resp_atom_is(const struct imap_arg *a, const char *s)
{
	size_t n = strlen(s);

	return a && a->type == IMAP_ARG_ATOM && a->u.s.len == n &&
	       strncasecmp(a->u.s.str, s, n) == 0;
}

bool imap_resp_is(const struct imap_response *resp, const char *name)
{
	return resp && resp->kind == IMAP_RESP_UNTAGGED && resp->status == IMAP_STATUS_NONE &&
	       resp->name && strcasecmp(resp->name, name) == 0;
}

bool imap_nstr_eq(const struct imap_nstr *s, const char *cstr)
{
	if (!s->str || !cstr)
		return !s->str && !cstr;
	return strlen(cstr) == s->len && memcmp(s->str, cstr, s->len) == 0;
}

bool imap_nstr_caseeq(const struct imap_nstr *s, const char *cstr)
{
	if (!s->str || !cstr)
		return false;
	return strlen(cstr) == s->len && strncasecmp(s->str, cstr, s->len) == 0;
}

/* Next space-separated word of [*p, end). */
static bool next_word(const char **p, const char *end, const char **ret_w, size_t *ret_len)
{
	const char *s = *p, *w;

	while (s < end && *s == ' ')
		s++;
	if (s == end)
		return false;
	w = s;
	while (s < end && *s != ' ')
		s++;
	*ret_w = w;
	*ret_len = (size_t)(s - w);
	*p = s;
	return true;
}

/* -------------------------------------------------------------------- */
/* Classification */

static const char *const resp_type_names[IMAP_RT_MAX] = {
	[IMAP_RT_CAPABILITY] = "CAPABILITY",
	[IMAP_RT_ENABLED] = "ENABLED",
	[IMAP_RT_FLAGS] = "FLAGS",
	[IMAP_RT_EXISTS] = "EXISTS",
	[IMAP_RT_RECENT] = "RECENT",
	[IMAP_RT_EXPUNGE] = "EXPUNGE",
	[IMAP_RT_FETCH] = "FETCH",
	[IMAP_RT_VANISHED] = "VANISHED",
	[IMAP_RT_STATUS] = "STATUS",
	[IMAP_RT_LIST] = "LIST",
	[IMAP_RT_LSUB] = "LSUB",
	[IMAP_RT_SEARCH] = "SEARCH",
	[IMAP_RT_ESEARCH] = "ESEARCH",
	[IMAP_RT_METADATA] = "METADATA",
	[IMAP_RT_ACL] = "ACL",
	[IMAP_RT_MYRIGHTS] = "MYRIGHTS",
	[IMAP_RT_LISTRIGHTS] = "LISTRIGHTS",
	[IMAP_RT_NAMESPACE] = "NAMESPACE",
	[IMAP_RT_ID] = "ID",
};

enum imap_resp_type imap_resp_type(const struct imap_response *resp)
{
	if (!resp || resp->kind != IMAP_RESP_UNTAGGED || resp->status != IMAP_STATUS_NONE ||
	    !resp->name)
		return IMAP_RT_OTHER;
	for (size_t i = 1; i < IMAP_RT_MAX; i++)
		if (strcasecmp(resp->name, resp_type_names[i]) == 0)
			return (enum imap_resp_type)i;
	return IMAP_RT_OTHER;
}

/* -------------------------------------------------------------------- */
/* Capabilities */

static const char *const cap_names[IMAP_CAP_MAX] = {
	[IMAP_CAP_IMAP4REV1] = "IMAP4rev1",
	[IMAP_CAP_IMAP4REV2] = "IMAP4rev2",
	[IMAP_CAP_STARTTLS] = "STARTTLS",
	[IMAP_CAP_LOGINDISABLED] = "LOGINDISABLED",
	[IMAP_CAP_AUTH_PLAIN] = "AUTH=PLAIN",
	[IMAP_CAP_AUTH_LOGIN] = "AUTH=LOGIN",
	[IMAP_CAP_AUTH_SCRAM_SHA_1] = "AUTH=SCRAM-SHA-1",
	[IMAP_CAP_AUTH_SCRAM_SHA_256] = "AUTH=SCRAM-SHA-256",
	[IMAP_CAP_AUTH_SCRAM_SHA_256_PLUS] = "AUTH=SCRAM-SHA-256-PLUS",
	[IMAP_CAP_AUTH_XOAUTH2] = "AUTH=XOAUTH2",
	[IMAP_CAP_AUTH_OAUTHBEARER] = "AUTH=OAUTHBEARER",
	[IMAP_CAP_AUTH_EXTERNAL] = "AUTH=EXTERNAL",
	[IMAP_CAP_SASL_IR] = "SASL-IR",
	[IMAP_CAP_IDLE] = "IDLE",
	[IMAP_CAP_NOTIFY] = "NOTIFY",
	[IMAP_CAP_CONDSTORE] = "CONDSTORE",
	[IMAP_CAP_QRESYNC] = "QRESYNC",
	[IMAP_CAP_ENABLE] = "ENABLE",
	[IMAP_CAP_UIDPLUS] = "UIDPLUS",
	[IMAP_CAP_MOVE] = "MOVE",
	[IMAP_CAP_SPECIAL_USE] = "SPECIAL-USE",
	[IMAP_CAP_CREATE_SPECIAL_USE] = "CREATE-SPECIAL-USE",
	[IMAP_CAP_LITERALPLUS] = "LITERAL+",
	[IMAP_CAP_LITERALMINUS] = "LITERAL-",
	[IMAP_CAP_BINARY] = "BINARY",
	[IMAP_CAP_METADATA] = "METADATA",
	[IMAP_CAP_METADATA_SERVER] = "METADATA-SERVER",
	[IMAP_CAP_ACL] = "ACL",
	[IMAP_CAP_LIST_EXTENDED] = "LIST-EXTENDED",
	[IMAP_CAP_LIST_STATUS] = "LIST-STATUS",
	[IMAP_CAP_ESEARCH] = "ESEARCH",
	[IMAP_CAP_NAMESPACE] = "NAMESPACE",
	[IMAP_CAP_UTF8_ACCEPT] = "UTF8=ACCEPT",
	[IMAP_CAP_UTF8_ONLY] = "UTF8=ONLY",
	[IMAP_CAP_UNSELECT] = "UNSELECT",
	[IMAP_CAP_OBJECTID] = "OBJECTID",
	[IMAP_CAP_PREVIEW] = "PREVIEW",
	[IMAP_CAP_CONVERT] = "CONVERT",
	[IMAP_CAP_COMPRESS_DEFLATE] = "COMPRESS=DEFLATE",
	[IMAP_CAP_ID] = "ID",
	[IMAP_CAP_STATUS_SIZE] = "STATUS=SIZE",
	[IMAP_CAP_CHILDREN] = "CHILDREN",
	[IMAP_CAP_QUOTA] = "QUOTA",
	[IMAP_CAP_MULTIAPPEND] = "MULTIAPPEND",
	[IMAP_CAP_CATENATE] = "CATENATE",
	[IMAP_CAP_URLAUTH] = "URLAUTH",
	[IMAP_CAP_REPLACE] = "REPLACE",
	[IMAP_CAP_SAVEDATE] = "SAVEDATE",
	[IMAP_CAP_SEARCHRES] = "SEARCHRES",
	[IMAP_CAP_SORT] = "SORT",
	[IMAP_CAP_LIST_METADATA] = "LIST-METADATA",
	[IMAP_CAP_ANNOTATE_EXPERIMENT_1] = "ANNOTATE-EXPERIMENT-1",
};

_Static_assert(IMAP_CAP_MAX <= 64, "struct imap_caps.bits is 64 bits");

const char *imap_cap_name(enum imap_cap cap)
{
	if ((unsigned)cap >= IMAP_CAP_MAX)
		return NULL;
	return cap_names[cap];
}

int imap_cap_from_name(const char *name, size_t len)
{
	for (size_t i = 0; i < IMAP_CAP_MAX; i++) {
		if (strlen(cap_names[i]) == len && strncasecmp(cap_names[i], name, len) == 0)
			return (int)i;
	}
	return -1;
}

void imap_caps_init(struct imap_caps *caps)
{
	*caps = (struct imap_caps){ 0 };
}

void imap_caps_clear(struct imap_caps *caps)
{
	free(caps->text);
	*caps = (struct imap_caps){ 0 };
}

void imap_caps_free(struct imap_caps *caps)
{
	imap_caps_clear(caps);
}

/* Adds one name to bits and text. */
static int caps_add(uint64_t *bits, struct buf *text, const char *w, size_t len)
{
	int r, cap;

	cap = imap_cap_from_name(w, len);
	if (cap >= 0)
		*bits |= UINT64_C(1) << cap;
	/* Capability names are ASCII atoms; anything else is not shown. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)w[i] <= 0x20 || (unsigned char)w[i] >= 0x7f)
			return 0;
	if (text->len > 0) {
		r = buf_append_char(text, ' ');
		if (r < 0)
			return r;
	}
	return buf_append(text, w, len);
}

/* Installs the new names (text) and bits: replace, or add to the old. */
static int caps_commit(struct imap_caps *caps, uint64_t bits, struct buf *text, bool add)
{
	char *s;

	if (text->len == 0)
		s = strdup("");
	else
		s = buf_steal(text);
	if (!s)
		return -ENOMEM;
	free(caps->text);
	caps->text = s;
	caps->bits = add ? caps->bits | bits : bits;
	return 0;
}

int imap_caps_parse_response(struct imap_caps *caps, const struct imap_response *resp)
{
	_cleanup_buf_ struct buf text = BUF_INIT(1u << 20);
	uint64_t bits = 0;
	bool add;
	int r;

	if (imap_resp_is(resp, "CAPABILITY"))
		add = false;
	else if (imap_resp_is(resp, "ENABLED"))
		add = true;
	else
		return -EINVAL;
	if (add && caps->text) {
		r = buf_append_str(&text, caps->text);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < resp->nargs; i++) {
		const struct imap_arg *a = &resp->args[i];

		if (a->type != IMAP_ARG_ATOM)
			return EPROTO_;
		if (add && imap_caps_has_name(caps, a->u.s.str))
			continue;
		r = caps_add(&bits, &text, a->u.s.str, a->u.s.len);
		if (r < 0)
			return r;
	}
	return caps_commit(caps, bits, &text, add);
}

int imap_caps_parse_code(struct imap_caps *caps, const struct imap_response *resp)
{
	_cleanup_buf_ struct buf text = BUF_INIT(1u << 20);
	uint64_t bits = 0;
	const char *p, *end, *w;
	size_t len;
	int r;

	if (!resp || !resp->code || strcasecmp(resp->code, "CAPABILITY") != 0)
		return -EINVAL;
	p = resp->code_raw ? resp->code_raw : "";
	end = p + strlen(p);
	while (next_word(&p, end, &w, &len)) {
		r = caps_add(&bits, &text, w, len);
		if (r < 0)
			return r;
	}
	return caps_commit(caps, bits, &text, false);
}

bool imap_caps_has_name(const struct imap_caps *caps, const char *name)
{
	const char *p, *end, *w;
	size_t len, n = strlen(name);

	if (!caps->text)
		return false;
	p = caps->text;
	end = p + strlen(p);
	while (next_word(&p, end, &w, &len))
		if (len == n && strncasecmp(w, name, n) == 0)
			return true;
	return false;
}

/* -------------------------------------------------------------------- */
/* Simple untagged responses */

static int resp_number(const struct imap_response *resp, const char *name, uint32_t *ret)
{
	if (!imap_resp_is(resp, name))
		return -EINVAL;
	if (!resp->has_number || resp->nargs != 0)
		return EPROTO_;
	*ret = resp->number;
	return 0;
}

int imap_resp_exists(const struct imap_response *resp, uint32_t *ret_n)
{
	return resp_number(resp, "EXISTS", ret_n);
}

int imap_resp_recent(const struct imap_response *resp, uint32_t *ret_n)
{
	return resp_number(resp, "RECENT", ret_n);
}

int imap_resp_expunge(const struct imap_response *resp, uint32_t *ret_seq)
{
	uint32_t n;
	int r;

	r = resp_number(resp, "EXPUNGE", &n);
	if (r < 0)
		return r;
	if (n == 0)
		return EPROTO_;
	*ret_seq = n;
	return 0;
}

int imap_flags_from_arg(const struct imap_arg *list, struct imap_flags *ret_flags)
{
	bool star = false;

	if (!list || list->type != IMAP_ARG_LIST)
		return EPROTO_;
	for (size_t i = 0; i < list->u.list.count; i++) {
		const struct imap_arg *a = &list->u.list.args[i];

		if (a->type != IMAP_ARG_ATOM || a->u.s.len == 0)
			return EPROTO_;
		if (a->u.s.len == 2 && a->u.s.str[0] == '\\' && a->u.s.str[1] == '*')
			star = true;
	}
	*ret_flags = (struct imap_flags){
		.args = list->u.list.args,
		.count = list->u.list.count,
		.new_keywords = star,
	};
	return 0;
}

bool imap_flags_has(const struct imap_flags *flags, const char *flag)
{
	for (size_t i = 0; i < flags->count; i++)
		if (imap_resp_atom_is(&flags->args[i], flag))
			return true;
	return false;
}

int imap_resp_flags(const struct imap_response *resp, struct imap_flags *ret_flags)
{
	if (!imap_resp_is(resp, "FLAGS"))
		return -EINVAL;
	if (resp->nargs != 1)
		return EPROTO_;
	return imap_flags_from_arg(&resp->args[0], ret_flags);
}

/* Parses a set given as an atom (no "*" allowed) into set (cleared). */
static int arg_set(const struct imap_arg *a, struct rangeset *set)
{
	int r;

	rangeset_clear(set);
	if (!a || a->type != IMAP_ARG_ATOM)
		return EPROTO_;
	r = imap_seqset_parse(set, a->u.s.str, a->u.s.len, 0);
	if (r < 0) {
		rangeset_clear(set);
		return r == -EINVAL ? EPROTO_ : r;
	}
	return 0;
}

void imap_vanished_init(struct imap_vanished *v)
{
	v->earlier = false;
	rangeset_init(&v->uids);
}

void imap_vanished_free(struct imap_vanished *v)
{
	rangeset_free(&v->uids);
}

int imap_resp_vanished(const struct imap_response *resp, struct imap_vanished *v)
{
	const struct imap_arg *a;
	bool earlier = false;
	int r;

	if (!imap_resp_is(resp, "VANISHED"))
		return -EINVAL;
	rangeset_clear(&v->uids);
	a = resp->args;
	if (resp->nargs == 2) {
		/* "(EARLIER)"; other tagged-ext-labels would be ignorable,
		 * but RFC 7162 defines only this one */
		if (a->type != IMAP_ARG_LIST || a->u.list.count != 1 ||
		    !imap_resp_atom_is(&a->u.list.args[0], "EARLIER"))
			return EPROTO_;
		earlier = true;
		a++;
	} else if (resp->nargs != 1) {
		return EPROTO_;
	}
	r = arg_set(a, &v->uids);
	if (r < 0)
		return r;
	v->earlier = earlier;
	return 0;
}

/* -------------------------------------------------------------------- */
/* STATUS */

int imap_resp_status(const struct imap_response *resp, struct imap_status_data *ret)
{
	struct imap_status_data st = { 0 };
	const struct imap_arg *l;
	int r;

	if (!imap_resp_is(resp, "STATUS"))
		return -EINVAL;
	if (resp->nargs != 2 || resp->args[1].type != IMAP_ARG_LIST)
		return EPROTO_;
	r = imap_resp_arg_astring(&resp->args[0], &st.mailbox);
	if (r < 0)
		return r;
	l = &resp->args[1];
	if (l->u.list.count % 2 != 0)
		return EPROTO_;
	for (size_t i = 0; i < l->u.list.count; i += 2) {
		const struct imap_arg *k = &l->u.list.args[i];
		const struct imap_arg *v = k + 1;
		static const struct {
			const char *name;
			unsigned bit;
			bool wide;
			size_t off;
		} items[] = {
#define U32(n, b, f) { n, b, false, offsetof(struct imap_status_data, f) }
#define U64(n, b, f)                                                                               \
	{                                                                                          \
		n, b, true, offsetof(struct imap_status_data, f)                                   \
	}
			U32("MESSAGES", IMAP_STATUS_ITEM_MESSAGES, messages),
			U32("UIDNEXT", IMAP_STATUS_ITEM_UIDNEXT, uidnext),
			U32("UIDVALIDITY", IMAP_STATUS_ITEM_UIDVALIDITY, uidvalidity),
			U32("UNSEEN", IMAP_STATUS_ITEM_UNSEEN, unseen),
			U32("RECENT", IMAP_STATUS_ITEM_RECENT, recent),
			U32("DELETED", IMAP_STATUS_ITEM_DELETED, deleted),
			U64("HIGHESTMODSEQ", IMAP_STATUS_ITEM_HIGHESTMODSEQ, highestmodseq),
			U64("SIZE", IMAP_STATUS_ITEM_SIZE, size),
#undef U32
#undef U64
		};
		size_t j;

		if (k->type != IMAP_ARG_ATOM)
			return EPROTO_;
		if (imap_resp_atom_is(k, "MAILBOXID")) {
			if (imap_objectid_parse(v, false, &st.mailboxid) < 0)
				return EPROTO_;
			st.present |= IMAP_STATUS_ITEM_MAILBOXID;
			continue;
		}
		for (j = 0; j < ARRAY_SIZE(items); j++)
			if (imap_resp_atom_is(k, items[j].name))
				break;
		if (j == ARRAY_SIZE(items))
			continue; /* unknown item: its value is skipped */
		if (items[j].wide)
			r = imap_resp_arg_u64(v, (uint64_t *)((char *)&st + items[j].off));
		else
			r = imap_resp_arg_u32(v, (uint32_t *)((char *)&st + items[j].off));
		if (r < 0)
			return r;
		st.present |= items[j].bit;
	}
	*ret = st;
	return 0;
}

/* -------------------------------------------------------------------- */
/* LIST / LSUB */

static const struct {
	const char *name;
	unsigned bit;
} mbox_attrs[] = {
	{ "\\Noselect", IMAP_MBOX_NOSELECT },
	{ "\\NonExistent", IMAP_MBOX_NONEXISTENT },
	{ "\\HasChildren", IMAP_MBOX_HASCHILDREN },
	{ "\\HasNoChildren", IMAP_MBOX_HASNOCHILDREN },
	{ "\\Noinferiors", IMAP_MBOX_NOINFERIORS },
	{ "\\Marked", IMAP_MBOX_MARKED },
	{ "\\Unmarked", IMAP_MBOX_UNMARKED },
	{ "\\Subscribed", IMAP_MBOX_SUBSCRIBED },
	{ "\\Remote", IMAP_MBOX_REMOTE },
	{ "\\All", IMAP_MBOX_ALL },
	{ "\\Archive", IMAP_MBOX_ARCHIVE },
	{ "\\Drafts", IMAP_MBOX_DRAFTS },
	{ "\\Flagged", IMAP_MBOX_FLAGGED },
	{ "\\Junk", IMAP_MBOX_JUNK },
	{ "\\Sent", IMAP_MBOX_SENT },
	{ "\\Trash", IMAP_MBOX_TRASH },
};

/* A delimiter: NIL or a quoted string of exactly one character. */
static int arg_delimiter(const struct imap_arg *a, char *ret)
{
	if (a->type == IMAP_ARG_NIL) {
		*ret = 0;
		return 0;
	}
	if ((a->type != IMAP_ARG_STRING && a->type != IMAP_ARG_LITERAL) || a->u.s.len != 1 ||
	    a->u.s.str[0] == 0)
		return EPROTO_;
	*ret = a->u.s.str[0];
	return 0;
}

/* One mbox-list-extended-item: tag (astring) and value. */
static int list_ext_item(struct imap_list *l, const struct imap_arg *tag,
			 const struct imap_arg *val)
{
	struct imap_nstr t;
	int r;

	r = imap_resp_arg_astring(tag, &t);
	if (r < 0)
		return r;
	if (imap_nstr_caseeq(&t, "CHILDINFO")) {
		if (val->type != IMAP_ARG_LIST)
			return EPROTO_;
		for (size_t i = 0; i < val->u.list.count; i++) {
			struct imap_nstr s;

			r = imap_resp_arg_astring(&val->u.list.args[i], &s);
			if (r < 0)
				return r;
			if (imap_nstr_caseeq(&s, "SUBSCRIBED"))
				l->childinfo_subscribed = true;
		}
	} else if (imap_nstr_caseeq(&t, "OLDNAME")) {
		/* ("OLDNAME" ("old")); tolerate a bare astring too */
		if (val->type == IMAP_ARG_LIST) {
			if (val->u.list.count != 1)
				return EPROTO_;
			val = &val->u.list.args[0];
		}
		r = imap_resp_arg_astring(val, &l->oldname);
		if (r < 0)
			return r;
	}
	return 0;
}

int imap_resp_list(const struct imap_response *resp, struct imap_list *ret)
{
	struct imap_list l = { 0 };
	const struct imap_arg *attrs;
	int r;

	if (!imap_resp_is(resp, "LIST") && !imap_resp_is(resp, "LSUB"))
		return -EINVAL;
	if (resp->nargs < 3 || resp->nargs > 4)
		return EPROTO_;
	attrs = &resp->args[0];
	if (attrs->type != IMAP_ARG_LIST)
		return EPROTO_;
	for (size_t i = 0; i < attrs->u.list.count; i++) {
		const struct imap_arg *a = &attrs->u.list.args[i];

		if (a->type != IMAP_ARG_ATOM)
			return EPROTO_;
		for (size_t j = 0; j < ARRAY_SIZE(mbox_attrs); j++)
			if (imap_resp_atom_is(a, mbox_attrs[j].name))
				l.attrs |= mbox_attrs[j].bit;
	}
	l.attr_args = attrs->u.list.args;
	l.attr_count = attrs->u.list.count;
	r = arg_delimiter(&resp->args[1], &l.delimiter);
	if (r < 0)
		return r;
	r = imap_resp_arg_astring(&resp->args[2], &l.mailbox);
	if (r < 0)
		return r;
	if (resp->nargs == 4) {
		const struct imap_arg *ext = &resp->args[3];

		if (ext->type != IMAP_ARG_LIST || ext->u.list.count % 2 != 0)
			return EPROTO_;
		for (size_t i = 0; i < ext->u.list.count; i += 2) {
			r = list_ext_item(&l, &ext->u.list.args[i], &ext->u.list.args[i + 1]);
			if (r < 0)
				return r;
		}
		l.ext = ext;
	}
	*ret = l;
	return 0;
}

/* -------------------------------------------------------------------- */
/* SEARCH / ESEARCH */

void imap_search_init(struct imap_search *s)
{
	s->has_modseq = false;
	s->modseq = 0;
	rangeset_init(&s->nums);
}

void imap_search_free(struct imap_search *s)
{
	rangeset_free(&s->nums);
}

int imap_resp_search(const struct imap_response *resp, struct imap_search *s)
{
	size_t n;
	uint64_t modseq = 0;
	bool has_modseq = false;
	int r;

	if (!imap_resp_is(resp, "SEARCH"))
		return -EINVAL;
	rangeset_clear(&s->nums);
	n = resp->nargs;
	if (n > 0 && resp->args[n - 1].type == IMAP_ARG_LIST) {
		const struct imap_arg *l = &resp->args[n - 1];

		if (l->u.list.count != 2 || !imap_resp_atom_is(&l->u.list.args[0], "MODSEQ") ||
		    imap_resp_arg_u64(&l->u.list.args[1], &modseq) < 0)
			return EPROTO_;
		has_modseq = true;
		n--;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t v;

		r = imap_resp_arg_u32(&resp->args[i], &v);
		if (r >= 0 && v == 0)
			r = EPROTO_;
		if (r >= 0)
			r = rangeset_add(&s->nums, v);
		if (r < 0) {
			rangeset_clear(&s->nums);
			return r;
		}
	}
	s->has_modseq = has_modseq;
	s->modseq = modseq;
	return 0;
}

void imap_esearch_init(struct imap_esearch *e)
{
	*e = (struct imap_esearch){ 0 };
	rangeset_init(&e->all);
}

void imap_esearch_free(struct imap_esearch *e)
{
	rangeset_free(&e->all);
}

static int esearch_fail(struct imap_esearch *e, int r)
{
	rangeset_clear(&e->all);
	return r;
}

int imap_resp_esearch(const struct imap_response *resp, struct imap_esearch *e)
{
	struct imap_esearch t = { 0 };
	size_t i = 0;
	int r;

	if (!imap_resp_is(resp, "ESEARCH"))
		return -EINVAL;
	rangeset_clear(&e->all);
	/* search-correlator: (TAG "x") */
	if (i < resp->nargs && resp->args[i].type == IMAP_ARG_LIST) {
		const struct imap_arg *l = &resp->args[i];

		if (l->u.list.count != 2 || !imap_resp_atom_is(&l->u.list.args[0], "TAG") ||
		    imap_resp_arg_astring(&l->u.list.args[1], &t.tag) < 0)
			return EPROTO_;
		i++;
	}
	if (i < resp->nargs && imap_resp_atom_is(&resp->args[i], "UID")) {
		t.uid = true;
		i++;
	}
	if ((resp->nargs - i) % 2 != 0)
		return EPROTO_;
	for (; i < resp->nargs; i += 2) {
		const struct imap_arg *k = &resp->args[i], *v = k + 1;

		if (k->type != IMAP_ARG_ATOM)
			return esearch_fail(e, EPROTO_);
		if (imap_resp_atom_is(k, "MIN")) {
			r = imap_resp_arg_u32(v, &t.min);
			t.present |= IMAP_ESEARCH_MIN;
		} else if (imap_resp_atom_is(k, "MAX")) {
			r = imap_resp_arg_u32(v, &t.max);
			t.present |= IMAP_ESEARCH_MAX;
		} else if (imap_resp_atom_is(k, "COUNT")) {
			r = imap_resp_arg_u32(v, &t.count);
			t.present |= IMAP_ESEARCH_COUNT;
		} else if (imap_resp_atom_is(k, "MODSEQ")) {
			r = imap_resp_arg_u64(v, &t.modseq);
			t.present |= IMAP_ESEARCH_MODSEQ;
		} else if (imap_resp_atom_is(k, "ALL")) {
			rangeset_clear(&e->all);
			r = arg_set(v, &e->all);
			t.present |= IMAP_ESEARCH_ALL;
		} else {
			r = 0; /* unknown return data: skip its value */
		}
		if (r < 0)
			return esearch_fail(e, r);
	}
	t.all = e->all;
	*e = t;
	return 0;
}

/* -------------------------------------------------------------------- */
/* METADATA */

int imap_resp_metadata(const struct imap_response *resp, struct imap_metadata *ret)
{
	struct imap_metadata md = { 0 };
	int r;

	if (!imap_resp_is(resp, "METADATA"))
		return -EINVAL;
	if (resp->nargs < 2)
		return EPROTO_;
	r = imap_resp_arg_astring(&resp->args[0], &md.mailbox);
	if (r < 0)
		return r;
	if (resp->args[1].type == IMAP_ARG_LIST) {
		const struct imap_arg *l = &resp->args[1];

		if (resp->nargs != 2 || l->u.list.count % 2 != 0)
			return EPROTO_;
		for (size_t i = 0; i < l->u.list.count; i += 2) {
			struct imap_nstr name;
			const struct imap_arg *v = &l->u.list.args[i + 1];

			r = imap_resp_arg_astring(&l->u.list.args[i], &name);
			if (r < 0)
				return r;
			if (v->type != IMAP_ARG_NIL && v->type != IMAP_ARG_STRING &&
			    v->type != IMAP_ARG_LITERAL && v->type != IMAP_ARG_STREAMED)
				return EPROTO_;
		}
		md.has_values = true;
		md.args = l->u.list.args;
		md.count = l->u.list.count / 2;
	} else {
		for (size_t i = 1; i < resp->nargs; i++) {
			struct imap_nstr name;

			r = imap_resp_arg_astring(&resp->args[i], &name);
			if (r < 0)
				return r;
		}
		md.args = &resp->args[1];
		md.count = resp->nargs - 1;
	}
	*ret = md;
	return 0;
}

int imap_metadata_get(const struct imap_metadata *md, size_t i, struct imap_metadata_entry *ret)
{
	const struct imap_arg *a;

	if (i >= md->count)
		return -EINVAL;
	a = md->has_values ? &md->args[2 * i] : &md->args[i];
	ret->name = (struct imap_nstr){ a->u.s.str, a->u.s.len };
	ret->value = md->has_values ? a + 1 : NULL;
	return 0;
}

/* -------------------------------------------------------------------- */
/* ACL */

int imap_resp_acl(const struct imap_response *resp, struct imap_acl *ret)
{
	struct imap_acl acl = { 0 };
	struct imap_nstr s;
	int r;

	if (!imap_resp_is(resp, "ACL"))
		return -EINVAL;
	if (resp->nargs < 1 || (resp->nargs - 1) % 2 != 0)
		return EPROTO_;
	r = imap_resp_arg_astring(&resp->args[0], &acl.mailbox);
	if (r < 0)
		return r;
	for (size_t i = 1; i < resp->nargs; i++) {
		r = imap_resp_arg_astring(&resp->args[i], &s);
		if (r < 0)
			return r;
	}
	acl.args = &resp->args[1];
	acl.count = (resp->nargs - 1) / 2;
	*ret = acl;
	return 0;
}

int imap_acl_get(const struct imap_acl *acl, size_t i, struct imap_nstr *ret_identifier,
		 struct imap_nstr *ret_rights)
{
	const struct imap_arg *a;

	if (i >= acl->count)
		return -EINVAL;
	a = &acl->args[2 * i];
	*ret_identifier = (struct imap_nstr){ a[0].u.s.str, a[0].u.s.len };
	*ret_rights = (struct imap_nstr){ a[1].u.s.str, a[1].u.s.len };
	return 0;
}

int imap_resp_myrights(const struct imap_response *resp, struct imap_nstr *ret_mailbox,
		       struct imap_nstr *ret_rights)
{
	struct imap_nstr m, rights;

	if (!imap_resp_is(resp, "MYRIGHTS"))
		return -EINVAL;
	if (resp->nargs != 2 || imap_resp_arg_astring(&resp->args[0], &m) < 0 ||
	    imap_resp_arg_astring(&resp->args[1], &rights) < 0)
		return EPROTO_;
	*ret_mailbox = m;
	*ret_rights = rights;
	return 0;
}

int imap_resp_listrights(const struct imap_response *resp, struct imap_listrights *ret)
{
	struct imap_listrights lr = { 0 };
	struct imap_nstr s;

	if (!imap_resp_is(resp, "LISTRIGHTS"))
		return -EINVAL;
	if (resp->nargs < 3 || imap_resp_arg_astring(&resp->args[0], &lr.mailbox) < 0 ||
	    imap_resp_arg_astring(&resp->args[1], &lr.identifier) < 0 ||
	    imap_resp_arg_astring(&resp->args[2], &lr.required) < 0)
		return EPROTO_;
	for (size_t i = 3; i < resp->nargs; i++)
		if (imap_resp_arg_astring(&resp->args[i], &s) < 0)
			return EPROTO_;
	lr.optional = &resp->args[3];
	lr.noptional = resp->nargs - 3;
	*ret = lr;
	return 0;
}

/* -------------------------------------------------------------------- */
/* NAMESPACE */

static int ns_list(const struct imap_arg *a, struct imap_ns_list *ret)
{
	if (a->type == IMAP_ARG_NIL) {
		*ret = (struct imap_ns_list){ NULL, 0 };
		return 0;
	}
	if (a->type != IMAP_ARG_LIST)
		return EPROTO_;
	for (size_t i = 0; i < a->u.list.count; i++) {
		const struct imap_arg *d = &a->u.list.args[i];
		struct imap_nstr prefix;
		char delim;

		/* ( prefix delim *(ns-response-extension) ) */
		if (d->type != IMAP_ARG_LIST || d->u.list.count < 2 || d->u.list.count % 2 != 0)
			return EPROTO_;
		if (imap_resp_arg_astring(&d->u.list.args[0], &prefix) < 0 ||
		    arg_delimiter(&d->u.list.args[1], &delim) < 0)
			return EPROTO_;
	}
	*ret = (struct imap_ns_list){ a->u.list.args, a->u.list.count };
	return 0;
}

int imap_resp_namespace(const struct imap_response *resp, struct imap_namespace *ret)
{
	struct imap_namespace ns;

	if (!imap_resp_is(resp, "NAMESPACE"))
		return -EINVAL;
	if (resp->nargs != 3 || ns_list(&resp->args[0], &ns.personal) < 0 ||
	    ns_list(&resp->args[1], &ns.other) < 0 || ns_list(&resp->args[2], &ns.shared) < 0)
		return EPROTO_;
	*ret = ns;
	return 0;
}

int imap_ns_get(const struct imap_ns_list *list, size_t i, struct imap_ns_entry *ret)
{
	const struct imap_arg *d;
	struct imap_ns_entry e;

	if (i >= list->count)
		return -EINVAL;
	d = list->args[i].u.list.args;
	if (imap_resp_arg_astring(&d[0], &e.prefix) < 0 || arg_delimiter(&d[1], &e.delimiter) < 0)
		return EPROTO_;
	*ret = e;
	return 0;
}

/* -------------------------------------------------------------------- */
/* Response codes */

static const char *const code_names[IMAP_CODE_MAX] = {
	[IMAP_CODE_NONE] = "",
	[IMAP_CODE_UNKNOWN] = "UNKNOWN",
	[IMAP_CODE_ALERT] = "ALERT",
	[IMAP_CODE_PARSE] = "PARSE",
	[IMAP_CODE_READ_ONLY] = "READ-ONLY",
	[IMAP_CODE_READ_WRITE] = "READ-WRITE",
	[IMAP_CODE_TRYCREATE] = "TRYCREATE",
	[IMAP_CODE_UIDNEXT] = "UIDNEXT",
	[IMAP_CODE_UIDVALIDITY] = "UIDVALIDITY",
	[IMAP_CODE_UNSEEN] = "UNSEEN",
	[IMAP_CODE_PERMANENTFLAGS] = "PERMANENTFLAGS",
	[IMAP_CODE_CAPABILITY] = "CAPABILITY",
	[IMAP_CODE_BADCHARSET] = "BADCHARSET",
	[IMAP_CODE_APPENDUID] = "APPENDUID",
	[IMAP_CODE_COPYUID] = "COPYUID",
	[IMAP_CODE_UIDNOTSTICKY] = "UIDNOTSTICKY",
	[IMAP_CODE_HIGHESTMODSEQ] = "HIGHESTMODSEQ",
	[IMAP_CODE_NOMODSEQ] = "NOMODSEQ",
	[IMAP_CODE_MODIFIED] = "MODIFIED",
	[IMAP_CODE_CLOSED] = "CLOSED",
	[IMAP_CODE_NOTIFICATIONOVERFLOW] = "NOTIFICATIONOVERFLOW",
	[IMAP_CODE_BADEVENT] = "BADEVENT",
	[IMAP_CODE_METADATA_LONGENTRIES] = "METADATA LONGENTRIES",
	[IMAP_CODE_METADATA_MAXSIZE] = "METADATA MAXSIZE",
	[IMAP_CODE_METADATA_TOOMANY] = "METADATA TOOMANY",
	[IMAP_CODE_METADATA_NOPRIVATE] = "METADATA NOPRIVATE",
	[IMAP_CODE_TOOBIG] = "TOOBIG",
	[IMAP_CODE_COMPRESSIONACTIVE] = "COMPRESSIONACTIVE",
	[IMAP_CODE_UNKNOWN_CTE] = "UNKNOWN-CTE",
	[IMAP_CODE_HASCHILDREN] = "HASCHILDREN",
	[IMAP_CODE_MAILBOXID] = "MAILBOXID",
	[IMAP_CODE_UNAVAILABLE] = "UNAVAILABLE",
	[IMAP_CODE_AUTHENTICATIONFAILED] = "AUTHENTICATIONFAILED",
	[IMAP_CODE_AUTHORIZATIONFAILED] = "AUTHORIZATIONFAILED",
	[IMAP_CODE_EXPIRED] = "EXPIRED",
	[IMAP_CODE_PRIVACYREQUIRED] = "PRIVACYREQUIRED",
	[IMAP_CODE_CONTACTADMIN] = "CONTACTADMIN",
	[IMAP_CODE_NOPERM] = "NOPERM",
	[IMAP_CODE_INUSE] = "INUSE",
	[IMAP_CODE_EXPUNGEISSUED] = "EXPUNGEISSUED",
	[IMAP_CODE_CORRUPTION] = "CORRUPTION",
	[IMAP_CODE_SERVERBUG] = "SERVERBUG",
	[IMAP_CODE_CLIENTBUG] = "CLIENTBUG",
	[IMAP_CODE_CANNOT] = "CANNOT",
	[IMAP_CODE_LIMIT] = "LIMIT",
	[IMAP_CODE_OVERQUOTA] = "OVERQUOTA",
	[IMAP_CODE_ALREADYEXISTS] = "ALREADYEXISTS",
	[IMAP_CODE_NONEXISTENT] = "NONEXISTENT",
};

const char *imap_code_name(enum imap_code code)
{
	if ((unsigned)code >= IMAP_CODE_MAX)
		return NULL;
	return code_names[code];
}

enum imap_code imap_code_from_name(const char *name)
{
	if (!name || !name[0])
		return IMAP_CODE_UNKNOWN;
	for (size_t i = IMAP_CODE_ALERT; i < IMAP_CODE_MAX; i++)
		if (strcasecmp(code_names[i], name) == 0)
			return (enum imap_code)i;
	return IMAP_CODE_UNKNOWN;
}

void imap_resp_code_init(struct imap_resp_code *c)
{
	*c = (struct imap_resp_code){ 0 };
	rangeset_init(&c->set);
	rangeset_init(&c->set2);
}

void imap_resp_code_free(struct imap_resp_code *c)
{
	rangeset_free(&c->set);
	rangeset_free(&c->set2);
}

/* The words of code_raw, at most max; returns their number or -1 when
 * there are more. */
static int raw_words(const char *raw, struct imap_nstr *w, int max)
{
	const char *p = raw ? raw : "", *end = p + strlen(p), *s;
	size_t len;
	int n = 0;

	while (next_word(&p, end, &s, &len)) {
		if (n == max)
			return -1;
		w[n++] = (struct imap_nstr){ s, len };
	}
	return n;
}

static int word_set(const struct imap_nstr *w, struct rangeset *set)
{
	int r = imap_seqset_parse(set, w->str, w->len, 0);

	if (r < 0)
		return r == -EINVAL ? EPROTO_ : r;
	return 0;
}

static int code_args(const struct imap_response *resp, struct imap_resp_code *c)
{
	struct imap_nstr w[3];
	int n = raw_words(resp->code_raw, w, 3), r;

	switch (c->code) {
	case IMAP_CODE_UIDNEXT:
	case IMAP_CODE_UIDVALIDITY:
	case IMAP_CODE_UNSEEN:
		if (n != 1 || !imap_resp_str_u32(w[0].str, w[0].len, &c->num))
			return EPROTO_;
		c->num64 = c->num;
		return 0;
	case IMAP_CODE_HIGHESTMODSEQ:
		if (n != 1 || !imap_resp_str_u64(w[0].str, w[0].len, &c->num64))
			return EPROTO_;
		return 0;
	case IMAP_CODE_METADATA_LONGENTRIES:
	case IMAP_CODE_METADATA_MAXSIZE:
		/* w[0] is the sub-word */
		if (n != 2 || !imap_resp_str_u64(w[1].str, w[1].len, &c->num64))
			return EPROTO_;
		c->num = c->num64 > UINT32_MAX ? UINT32_MAX : (uint32_t)c->num64;
		return 0;
	case IMAP_CODE_PERMANENTFLAGS:
		if (resp->code_nargs != 1)
			return EPROTO_;
		return imap_flags_from_arg(&resp->code_args[0], &c->flags);
	case IMAP_CODE_APPENDUID:
		if (n != 2 || !imap_resp_str_u32(w[0].str, w[0].len, &c->num))
			return EPROTO_;
		c->src_raw = w[1];
		return word_set(&w[1], &c->set);
	case IMAP_CODE_COPYUID:
		if (n != 3 || !imap_resp_str_u32(w[0].str, w[0].len, &c->num))
			return EPROTO_;
		c->src_raw = w[1];
		c->dst_raw = w[2];
		r = word_set(&w[1], &c->set);
		if (r < 0)
			return r;
		r = word_set(&w[2], &c->set2);
		if (r < 0)
			return r;
		if (rangeset_count(&c->set) != rangeset_count(&c->set2))
			return EPROTO_;
		return 0;
	case IMAP_CODE_MODIFIED:
		if (n != 1)
			return EPROTO_;
		return word_set(&w[0], &c->set);
	case IMAP_CODE_MAILBOXID:
		/* MAILBOXID (objectid): the strict RFC 8474 form, as in STATUS
		 * and FETCH */
		if (resp->code_nargs != 1)
			return EPROTO_;
		return imap_objectid_parse(&resp->code_args[0], false, &c->objectid);
	default:
		return 0;
	}
}

int imap_resp_code_parse(const struct imap_response *resp, struct imap_resp_code *c)
{
	struct rangeset set = c->set, set2 = c->set2;
	int r;

	rangeset_clear(&set);
	rangeset_clear(&set2);
	*c = (struct imap_resp_code){ .set = set, .set2 = set2 };
	if (!resp->code || !resp->code[0]) {
		c->code = IMAP_CODE_NONE;
		return 0;
	}
	c->name = resp->code;
	c->raw = resp->code_raw ? resp->code_raw : "";
	if (strcasecmp(resp->code, "METADATA") == 0) {
		struct imap_nstr w[2];
		char sub[32];

		c->code = IMAP_CODE_UNKNOWN;
		if (raw_words(c->raw, w, 2) >= 1 && w[0].len < 16) {
			snprintf(sub, sizeof(sub), "METADATA %.*s", (int)w[0].len, w[0].str);
			c->code = imap_code_from_name(sub);
		}
	} else {
		c->code = imap_code_from_name(resp->code);
	}
	r = code_args(resp, c);
	if (r < 0) {
		/* no half-decoded values: an unknown code with its text */
		set = c->set;
		set2 = c->set2;
		rangeset_clear(&set);
		rangeset_clear(&set2);
		*c = (struct imap_resp_code){
			.code = IMAP_CODE_UNKNOWN,
			.name = resp->code,
			.raw = resp->code_raw ? resp->code_raw : "",
			.set = set,
			.set2 = set2,
		};
		return r;
	}
	return 0;
}

/* -------------------------------------------------------------------- */
/* uid-set iteration */

void imap_uidset_iter_init(struct imap_uidset_iter *it, const struct imap_nstr *text)
{
	*it = (struct imap_uidset_iter){
		.p = text->str,
		.end = text->str ? text->str + text->len : NULL,
	};
}

int imap_uidset_iter_next(struct imap_uidset_iter *it, uint32_t *ret_uid)
{
	const char *s, *colon = NULL, *e;
	uint32_t a, b;

	if (it->active) {
		if (it->cur == it->last) {
			it->active = false;
		} else {
			it->cur += it->cur < it->last ? 1 : -1;
			*ret_uid = it->cur;
			return 1;
		}
	}
	if (!it->p || it->p >= it->end)
		return 0;
	s = it->p;
	for (e = s; e < it->end && *e != ','; e++)
		if (*e == ':' && !colon)
			colon = e;
	if (colon) {
		if (!imap_resp_str_u32(s, (size_t)(colon - s), &a) ||
		    !imap_resp_str_u32(colon + 1, (size_t)(e - colon - 1), &b))
			return EPROTO_;
	} else {
		if (!imap_resp_str_u32(s, (size_t)(e - s), &a))
			return EPROTO_;
		b = a;
	}
	if (a == 0 || b == 0)
		return EPROTO_;
	if (e < it->end) {
		/* skip the comma; a trailing comma is an error */
		if (e + 1 == it->end)
			return EPROTO_;
		e++;
	}
	it->p = e;
	it->cur = a;
	it->last = b;
	it->active = true;
	*ret_uid = a;
	return 1;
}
