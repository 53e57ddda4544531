/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "dbus-util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/error.h>
#include <cpmsync/message.h>
#include <cpmsync/settings.h>
#include <cpmsync/utf8.h>

/* ------------------------------------------------------------------------ */
/* Memory */

_Noreturn void cpm_oom(void)
{
	fputs("cpm-syncd: out of memory (D-Bus service)\n", stderr);
	abort();
}

void *cpm_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		cpm_oom();
	return p;
}

void *cpm_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		cpm_oom();
	return p;
}

void *cpm_realloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		cpm_oom();
	return p;
}

char *cpm_strdup(const char *s)
{
	char *p = strdup(s ? s : "");

	if (!p)
		cpm_oom();
	return p;
}

char *cpm_strndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (!p)
		cpm_oom();
	return p;
}

char *cpm_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (r < 0)
		cpm_oom();
	return p;
}

/* ------------------------------------------------------------------------ */
/* Strings */

static void str_grow(struct cpm_str *b, size_t more)
{
	size_t need = b->len + more + 1;

	if (need <= b->alloc)
		return;
	if (b->alloc < 64)
		b->alloc = 64;
	while (b->alloc < need)
		b->alloc *= 2;
	b->s = cpm_realloc(b->s, b->alloc);
}

void cpm_str_addn(struct cpm_str *b, const char *s, size_t n)
{
	str_grow(b, n);
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void cpm_str_add(struct cpm_str *b, const char *s)
{
	cpm_str_addn(b, s, strlen(s));
}

void cpm_str_printf(struct cpm_str *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		cpm_oom();
	str_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void cpm_str_add_xml(struct cpm_str *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			cpm_str_add(b, "&amp;");
			break;
		case '<':
			cpm_str_add(b, "&lt;");
			break;
		case '>':
			cpm_str_add(b, "&gt;");
			break;
		case '"':
			cpm_str_add(b, "&quot;");
			break;
		default:
			cpm_str_addn(b, s, 1);
		}
	}
}

char *cpm_str_steal(struct cpm_str *b)
{
	char *s = b->s ? b->s : cpm_strdup("");

	b->s = NULL;
	b->len = b->alloc = 0;
	return s;
}

void cpm_str_free(struct cpm_str *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->alloc = 0;
}

const char *cpm_utf8(const char *s, char **tmp)
{
	struct cpm_str b = { 0 };
	size_t len, n;

	*tmp = NULL;
	if (!s)
		return "";
	if (dbus_validate_utf8(s, NULL))
		return s;
	len = strlen(s);
	for (const char *p = s; *p; p += n) {
		n = cpmsync_utf8_decode(p, len - (size_t)(p - s), NULL);
		if (n) {
			cpm_str_addn(&b, p, n);
		} else {
			cpm_str_add(&b, "\xef\xbf\xbd");
			n = 1;
		}
	}
	*tmp = cpm_str_steal(&b);
	if (!dbus_validate_utf8(*tmp, NULL)) {
		/* Stricter than us (should not happen): keep ASCII only. */
		for (char *q = *tmp; *q; q++)
			if ((unsigned char)*q >= 0x80)
				*q = '?';
	}
	return *tmp;
}

/* ------------------------------------------------------------------------ */
/* Errors */

DBusMessage *cpm_reply(DBusMessage *msg)
{
	DBusMessage *reply = dbus_message_new_method_return(msg);

	if (!reply)
		cpm_oom();
	return reply;
}

DBusMessage *cpm_list_limit(DBusMessage *msg, dbus_uint32_t limit)
{
	if (limit > CPM_MAX_LIST_LIMIT)
		return cpm_error_invalid_args(msg, "limit: at most %u", CPM_MAX_LIST_LIMIT);
	return NULL;
}

DBusMessage *cpm_list_limit_or_default(DBusMessage *msg, dbus_uint32_t *limit)
{
	if (*limit == 0)
		*limit = CPM_DEFAULT_LIST_LIMIT;
	return cpm_list_limit(msg, *limit);
}

DBusMessage *cpm_array_reply(DBusMessage *msg, DBusMessageIter *it, DBusMessageIter *array)
{
	DBusMessage *reply = cpm_reply(msg);

	dbus_message_iter_init_append(reply, it);
	if (!dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "a{sv}", array))
		cpm_oom();
	return reply;
}

void cpm_array_reply_close(DBusMessageIter *it, DBusMessageIter *array)
{
	if (!dbus_message_iter_close_container(it, array))
		cpm_oom();
}

static DBusMessage *error_v(DBusMessage *msg, const char *name, const char *fmt, va_list ap)
{
	DBusMessage *reply;
	char *text, *tmp;

	if (vasprintf(&text, fmt, ap) < 0)
		cpm_oom();
	reply = dbus_message_new_error(msg, name, cpm_utf8(text, &tmp));
	free(tmp);
	free(text);
	if (!reply)
		cpm_oom();
	return reply;
}

DBusMessage *cpm_error(DBusMessage *msg, const char *name, const char *fmt, ...)
{
	DBusMessage *reply;
	va_list ap;

	va_start(ap, fmt);
	reply = error_v(msg, name, fmt, ap);
	va_end(ap);
	return reply;
}

DBusMessage *cpm_error_invalid_args(DBusMessage *msg, const char *fmt, ...)
{
	DBusMessage *reply;
	va_list ap;

	va_start(ap, fmt);
	reply = error_v(msg, CPM_ERROR_INVALID_ARGS, fmt, ap);
	va_end(ap);
	return reply;
}

const char *cpm_error_name(int r)
{
	switch (r) {
	case -EINVAL:
		return CPM_ERROR_INVALID_ARGS;
	case -CPMSYNC_E_NOT_FOUND:
		return CPM_ERROR_NOT_FOUND;
	case -CPMSYNC_E_OFFLINE:
		return CPM_ERROR_OFFLINE;
	case -CPMSYNC_E_NOT_SUPPORTED:
		return CPM_ERROR_NOT_SUPPORTED;
	case -CPMSYNC_E_SERVER:
		return CPM_ERROR_SERVER;
	default:
		return CPM_ERROR_FAILED;
	}
}

DBusMessage *cpm_error_from_code(DBusMessage *msg, int r, const char *detail)
{
	const char *text = detail && *detail ? detail : cpmsync_strerror(r);

	return cpm_error(msg, cpm_error_name(r), "%s", text ? text : "failed");
}

/* ------------------------------------------------------------------------ */
/* Argument checks */

char *cpm_check_name(const char *arg, const char *s, bool allow_empty)
{
	size_t len = strlen(s), at;
	uint32_t cp;

	if (!len && !allow_empty)
		return cpm_asprintf("%s: must not be empty", arg);
	if (len > CPM_MAX_NAME_LEN)
		return cpm_asprintf("%s: longer than %u bytes", arg, CPM_MAX_NAME_LEN);
	if (!dbus_validate_utf8(s, NULL))
		return cpm_asprintf("%s: not valid UTF-8", arg);
	/* The rule of the IMAP side (a name the server lists with one of
	 * these is refused there): refused here rather than at replay. */
	at = cpmsync_text_find_unsafe(s, len, &cp);
	if (at < len)
		return cpm_asprintf("%s: contains the %s U+%04X at byte %zu; names may not contain "
				    "control characters (C0, DEL, C1) or bidirectional formatting "
				    "characters",
				    arg,
				    cp < 0x20 || cp == 0x7f ? "control character"
				    : cp <= 0x9f	    ? "C1 control character"
							    : "bidirectional formatting character",
				    (unsigned)cp, at);
	return NULL;
}

/* atom-char of RFC 3501 (excluding the resp-specials ']' too). */
static bool atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return !strchr("(){%*\"\\]", c);
}

char *cpm_check_flag(const char *arg, const char *flag)
{
	const unsigned char *p = (const unsigned char *)flag;
	size_t len = strlen(flag);

	if (!len)
		return cpm_asprintf("%s: empty flag", arg);
	if (len > CPM_MAX_FLAG_LEN)
		return cpm_asprintf("%s: flag longer than %u bytes", arg, CPM_MAX_FLAG_LEN);
	if (*p == '\\')
		p++;
	if (!*p)
		return cpm_asprintf("%s: '\\' is not a flag", arg);
	for (; *p; p++)
		if (!atom_char(*p))
			return cpm_asprintf("%s: flag '%.64s' has a character not allowed in an "
					    "IMAP flag or keyword",
					    arg, dbus_validate_utf8(flag, NULL) ? flag : "?");
	/* A '\' flag is one of RFC 3501's (\Recent: the server's own, which
	 * Search may ask for and a removal ignores; cpm_check_no_recent()). */
	if (*flag == '\\') {
		static const char *const system[] = { "\\Answered", "\\Deleted", "\\Draft",
						      "\\Flagged",  "\\Seen",	 "\\Recent" };
		bool known = false;

		for (size_t i = 0; i < sizeof(system) / sizeof(system[0]) && !known; i++)
			known = !strcasecmp(flag, system[i]);
		if (!known)
			return cpm_asprintf("%s: flag '%.64s' is not a system flag (\\Answered, "
					    "\\Deleted, \\Draft, \\Flagged, \\Seen)",
					    arg, flag);
	}
	return NULL;
}

char *cpm_check_no_recent(const char *arg, const char *const *flags)
{
	for (; flags && *flags; flags++)
		if (!strcasecmp(*flags, "\\Recent"))
			return cpm_asprintf("%s: flag \\Recent cannot be set (the server sets it)",
					    arg);
	return NULL;
}

char *cpm_check_section(const char *arg, const char *section)
{
	const char *p = section;
	size_t len = strlen(section);
	bool part = false;

	if (!len)
		return NULL;
	if (len > CPMSYNC_SECTION_MAX_LEN)
		return cpm_asprintf("%s: longer than %u bytes", arg, CPMSYNC_SECTION_MAX_LEN);
	/* part numbers: "1", "1.2", each non-zero without leading zeros */
	while (*p >= '0' && *p <= '9') {
		if (*p == '0')
			goto bad;
		while (*p >= '0' && *p <= '9')
			p++;
		part = true;
		if (*p != '.')
			break;
		p++;
		if (!*p)
			goto bad;
	}
	if (!*p)
		return NULL;
	if (!strcasecmp(p, "HEADER") || !strcasecmp(p, "TEXT"))
		return NULL;
	if (part && !strcasecmp(p, "MIME"))
		return NULL;
bad:
	return cpm_asprintf("%s: not an IMAP section (\"\", \"HEADER\", \"TEXT\", \"1\", \"1.2\", "
			    "\"2.MIME\", \"3.HEADER\")",
			    arg);
}

char *cpm_check_part(const char *arg, const char *section)
{
	const char *p = section;

	if (strlen(section) > CPMSYNC_SECTION_MAX_LEN)
		return cpm_asprintf("%s: longer than %u bytes", arg, CPMSYNC_SECTION_MAX_LEN);
	while (*p) {
		if (*p < '1' || *p > '9')
			goto bad;
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p == '.' && p[1])
			p++;
		else if (*p)
			goto bad;
	}
	return NULL;
bad:
	return cpm_asprintf("%s: '%s' is not a body part: \"\" (the message's own body) or a "
			    "part number (\"1\", \"1.2\")",
			    arg, section);
}

char *cpm_check_rights(const char *arg, const char *rights)
{
	const char *p = rights;

	if (strlen(rights) > 64)
		return cpm_asprintf("%s: longer than 64 bytes", arg);
	if (*p == '+' || *p == '-')
		p++;
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			return cpm_asprintf(
				"%s: rights are lower-case letters and digits (RFC 4314)", arg);
	return NULL;
}

char *cpm_check_acl_identifier(const char *arg, const char *identifier)
{
	char *err = cpm_check_name(arg, identifier, false);

	if (!err && strlen(identifier) > CPMSYNC_ACL_IDENTIFIER_MAX)
		err = cpm_asprintf("%s: longer than %u bytes", arg, CPMSYNC_ACL_IDENTIFIER_MAX);
	return err;
}

char *cpm_check_metadata_entry(const char *arg, const char *entry)
{
	char *err = cpm_check_name(arg, entry, false);

	if (err)
		return err;
	if (strncmp(entry, "/private/", 9) && strncmp(entry, "/shared/", 8))
		return cpm_asprintf("%s: entry names start with /private/ or /shared/", arg);
	for (const unsigned char *p = (const unsigned char *)entry; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '*' || *p == '%')
			return cpm_asprintf("%s: entry name has a character not allowed (RFC 5464)",
					    arg);
	/* The store's rule for what it journals (and the server refuses
	 * more): GetMetadata is held to it too, so that both calls refuse
	 * the same names the same way, before asking the server. */
	for (const unsigned char *p = (const unsigned char *)entry; *p; p++)
		if (*p == ' ' || *p >= 0x80)
			return cpm_asprintf("%s: entry name \"%s\" contains a space or a character "
					    "that is not printable ASCII",
					    arg, entry);
	if (strstr(entry, "//") || entry[strlen(entry) - 1] == '/')
		return cpm_asprintf("%s: entry name has an empty component", arg);
	return NULL;
}

char *cpm_check_account_name(const char *arg, const char *name)
{
	size_t len = strlen(name);

	if (!len)
		return cpm_asprintf("%s: must not be empty", arg);
	if (len > CPMSYNC_ACCOUNT_NAME_MAX)
		return cpm_asprintf("%s: longer than %u bytes", arg, CPMSYNC_ACCOUNT_NAME_MAX);
	if (!cpmsync_account_name_valid(name))
		return cpm_asprintf("%s: account names are [A-Za-z0-9_-]+", arg);
	return NULL;
}

char *cpm_read_strv(DBusMessageIter *iter, const char *arg, unsigned max, bool flags,
		    const char ***ret_strv)
{
	DBusMessageIter a;
	const char **v;
	unsigned n = 0;
	char *err;

	if (dbus_message_iter_get_arg_type(iter) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(iter) != DBUS_TYPE_STRING)
		return cpm_asprintf("%s: must be of type as", arg);
	dbus_message_iter_recurse(iter, &a);
	while (dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING) {
		n++;
		dbus_message_iter_next(&a);
	}
	if (n > max)
		return cpm_asprintf("%s: at most %u entries", arg, max);
	v = cpm_calloc(n + 1, sizeof(*v));
	dbus_message_iter_recurse(iter, &a);
	for (unsigned i = 0; i < n; i++) {
		dbus_message_iter_get_basic(&a, &v[i]);
		err = flags ? cpm_check_flag(arg, v[i]) : cpm_check_name(arg, v[i], false);
		if (err) {
			free(v);
			return err;
		}
		dbus_message_iter_next(&a);
	}
	*ret_strv = v;
	return NULL;
}

char *cpm_read_ids(DBusMessageIter *iter, const char *arg, unsigned max, const uint64_t **ret_ids,
		   int *ret_n)
{
	DBusMessageIter a;
	const uint64_t *ids = NULL;
	int n = 0;

	if (dbus_message_iter_get_arg_type(iter) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(iter) != DBUS_TYPE_UINT64)
		return cpm_asprintf("%s: must be of type at", arg);
	dbus_message_iter_recurse(iter, &a);
	if (dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_UINT64)
		dbus_message_iter_get_fixed_array(&a, &ids, &n);
	if (n < 0 || (unsigned)n > max)
		return cpm_asprintf("%s: at most %u entries", arg, max);
	for (int i = 0; i < n; i++)
		if (ids[i] == 0 || ids[i] > INT64_MAX)
			return cpm_asprintf("%s: %llu is not a message id", arg,
					    (unsigned long long)ids[i]);
	*ret_ids = ids;
	*ret_n = n;
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Object paths */

/* A byte that stands for itself in a path element ('_' is escaped). */
static bool path_kept(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

char *cpm_path_escape(const char *name)
{
	static const char hex[] = "0123456789abcdef";
	struct cpm_str b = { 0 };

	if (!*name)
		return cpm_strdup("_");
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (path_kept(*p)) {
			cpm_str_addn(&b, (const char *)p, 1);
		} else {
			char e[3] = { '_', hex[*p >> 4], hex[*p & 15] };

			cpm_str_addn(&b, e, 3);
		}
	}
	return cpm_str_steal(&b);
}

/* Lower-case hex only: the one spelling cpm_path_escape() makes. */
static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *cpm_path_unescape(const char *elem)
{
	struct cpm_str b = { 0 };

	if (!*elem)
		return NULL;
	if (!strcmp(elem, "_"))
		return cpm_strdup("");
	for (const char *p = elem; *p; p++) {
		if (*p == '_' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
			char c = (char)(hexval(p[1]) << 4 | hexval(p[2]));

			/* Only the escapes cpm_path_escape() makes: one
			 * element per name. */
			if (!c || path_kept((unsigned char)c))
				goto bad;
			cpm_str_addn(&b, &c, 1);
			p += 2;
		} else if (path_kept((unsigned char)*p)) {
			cpm_str_addn(&b, p, 1);
		} else {
			goto bad;
		}
	}
	return cpm_str_steal(&b);
bad:
	cpm_str_free(&b);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Dicts */

void cpm_append_string(DBusMessageIter *iter, const char *s)
{
	char *tmp;
	const char *v = cpm_utf8(s, &tmp);

	if (!dbus_message_iter_append_basic(iter, DBUS_TYPE_STRING, &v))
		cpm_oom();
	free(tmp);
}

void cpm_append_split(DBusMessageIter *iter, const char *s, char sep)
{
	DBusMessageIter a;
	const char *p, *e;
	char *piece;

	if (!dbus_message_iter_open_container(iter, DBUS_TYPE_ARRAY, "s", &a))
		cpm_oom();
	for (p = s ? s : ""; *p; p = *e ? e + 1 : e) {
		e = strchr(p, sep);
		if (!e)
			e = p + strlen(p);
		if (e == p)
			continue;
		piece = cpm_strndup(p, (size_t)(e - p));
		cpm_append_string(&a, piece);
		free(piece);
	}
	if (!dbus_message_iter_close_container(iter, &a))
		cpm_oom();
}

static const char *type_sig(int type)
{
	switch (type) {
	case DBUS_TYPE_STRING:
		return "s";
	case DBUS_TYPE_OBJECT_PATH:
		return "o";
	case DBUS_TYPE_BOOLEAN:
		return "b";
	case DBUS_TYPE_UINT32:
		return "u";
	case DBUS_TYPE_INT64:
		return "x";
	case DBUS_TYPE_UINT64:
		return "t";
	case DBUS_TYPE_UINT16:
		return "q";
	default:
		abort();
	}
}

void cpm_dict_append(DBusMessageIter *dict, const char *key, int type, const void *value)
{
	DBusMessageIter e, v;

	if (!dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
	    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) ||
	    !dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, type_sig(type), &v))
		cpm_oom();
	if (type == DBUS_TYPE_STRING)
		cpm_append_string(&v, *(const char *const *)value);
	else if (!dbus_message_iter_append_basic(&v, type, value))
		cpm_oom();
	if (!dbus_message_iter_close_container(&e, &v) ||
	    !dbus_message_iter_close_container(dict, &e))
		cpm_oom();
}

void cpm_dict_append_split(DBusMessageIter *dict, const char *key, const char *s, char sep)
{
	DBusMessageIter e, v;

	if (!dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
	    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) ||
	    !dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "as", &v))
		cpm_oom();
	cpm_append_split(&v, s, sep);
	if (!dbus_message_iter_close_container(&e, &v) ||
	    !dbus_message_iter_close_container(dict, &e))
		cpm_oom();
}

static void dict_str(DBusMessageIter *d, const char *key, const char *value)
{
	if (!value)
		value = "";
	cpm_dict_append(d, key, DBUS_TYPE_STRING, &value);
}

void cpm_append_summary(DBusMessageIter *array, const struct cpmsync_message_info *m)
{
	cpm_append_summary_in(array, m, NULL);
}

void cpm_append_summary_in(DBusMessageIter *array, const struct cpmsync_message_info *m,
			   const char *folder_path)
{
	DBusMessageIter d;
	dbus_uint64_t id = (dbus_uint64_t)m->id;
	dbus_uint32_t uid = m->uid;
	dbus_uint32_t size = m->size > UINT32_MAX ? UINT32_MAX : (dbus_uint32_t)m->size;
	dbus_int64_t idate = m->internaldate, date = m->date;
	dbus_bool_t has_body = m->has_body;

	if (!dbus_message_iter_open_container(array, DBUS_TYPE_ARRAY, "{sv}", &d))
		cpm_oom();
	cpm_dict_append(&d, "Id", DBUS_TYPE_UINT64, &id);
	cpm_dict_append(&d, "Uid", DBUS_TYPE_UINT32, &uid);
	cpm_dict_append_split(&d, "Flags", m->flags, ' ');
	cpm_dict_append(&d, "InternalDate", DBUS_TYPE_INT64, &idate);
	cpm_dict_append(&d, "Size", DBUS_TYPE_UINT32, &size);
	dict_str(&d, "From", m->from);
	cpm_dict_append_split(&d, "To", m->to, '\n');
	dict_str(&d, "Subject", m->subject);
	cpm_dict_append(&d, "Date", DBUS_TYPE_INT64, &date);
	dict_str(&d, "MessageId", m->message_id);
	dict_str(&d, "ConversationId", m->conversation_id);
	dict_str(&d, "ContributionId", m->contribution_id);
	/* Contract v2 (CPM objects). */
	dict_str(&d, "InReplyToContributionId", m->in_reply_to);
	dict_str(&d, "ImdnMessageId", m->imdn_message_id);
	dict_str(&d, "Direction", m->direction);
	dict_str(&d, "Context", m->context);
	dict_str(&d, "Type", m->type && *m->type ? m->type : "message");
	dict_str(&d, "Status", m->status);
	dict_str(&d, "Snippet", m->snippet);
	cpm_dict_append(&d, "HasBody", DBUS_TYPE_BOOLEAN, &has_body);
	if (folder_path)
		cpm_dict_append(&d, "Folder", DBUS_TYPE_OBJECT_PATH, &folder_path);
	if (!dbus_message_iter_close_container(array, &d))
		cpm_oom();
}

void cpm_append_change(DBusMessageIter *array, const struct cpmsync_message_info *m,
		       uint32_t fields)
{
	DBusMessageIter d;
	dbus_uint64_t id = (dbus_uint64_t)m->id;
	dbus_uint32_t uid = m->uid;
	dbus_bool_t has_body = m->has_body;
	dbus_int64_t idate = m->internaldate, date = m->date;

	if (!dbus_message_iter_open_container(array, DBUS_TYPE_ARRAY, "{sv}", &d))
		cpm_oom();
	cpm_dict_append(&d, "Id", DBUS_TYPE_UINT64, &id);
	/* The contract: "Each dict holds Id and the fields that changed". */
	if (fields & CPMSYNC_CHANGED_FLAGS)
		cpm_dict_append_split(&d, "Flags", m->flags, ' ');
	if (fields & CPMSYNC_CHANGED_UID)
		cpm_dict_append(&d, "Uid", DBUS_TYPE_UINT32, &uid);
	if (fields & CPMSYNC_CHANGED_HAS_BODY)
		cpm_dict_append(&d, "HasBody", DBUS_TYPE_BOOLEAN, &has_body);
	/* An IMDN report raised it (contract v2). */
	if (fields & CPMSYNC_CHANGED_STATUS)
		dict_str(&d, "Status", m->status);
	/* A body's CPM parse (contract v2), as cpm_append_summary_in() has them. */
	if (fields & CPMSYNC_CHANGED_TYPE)
		dict_str(&d, "Type", m->type && *m->type ? m->type : "message");
	if (fields & CPMSYNC_CHANGED_DIRECTION)
		dict_str(&d, "Direction", m->direction);
	if (fields & CPMSYNC_CHANGED_CONTEXT)
		dict_str(&d, "Context", m->context);
	if (fields & CPMSYNC_CHANGED_IN_REPLY_TO)
		dict_str(&d, "InReplyToContributionId", m->in_reply_to);
	if (fields & CPMSYNC_CHANGED_SNIPPET)
		dict_str(&d, "Snippet", m->snippet);
	/* The server's date in place of the one an APPEND asked for. */
	if (fields & CPMSYNC_CHANGED_INTERNAL_DATE)
		cpm_dict_append(&d, "InternalDate", DBUS_TYPE_INT64, &idate);
	if (fields & CPMSYNC_CHANGED_DATE)
		cpm_dict_append(&d, "Date", DBUS_TYPE_INT64, &date);
	if (!dbus_message_iter_close_container(array, &d))
		cpm_oom();
}
