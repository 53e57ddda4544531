/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The journal's operation names and argument formats (journal.h): one
 * table, one encoder and one decoder per format.
 */
#include <sqlite3.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/journal.h"
#include "store/store.h"
#include "util/flags.h"
#include "util/macro.h"

enum args_format {
	ARGS_NONE,
	ARGS_SOURCE, /* "src=<message id>" */
	ARGS_NAME,   /* the new name */
	ARGS_PAIR,   /* "<first>\n<rest>" */
};

static const struct {
	const char *name;
	enum args_format format;
} ops[_JOURNAL_OP_MAX] = {
	[JOURNAL_OP_APPEND] = { "append", ARGS_NONE },
	[JOURNAL_OP_FLAGS] = { "flags", ARGS_NONE },
	[JOURNAL_OP_COPY] = { "copy", ARGS_SOURCE },
	[JOURNAL_OP_MOVE] = { "move", ARGS_SOURCE },
	[JOURNAL_OP_EXPUNGE] = { "expunge", ARGS_NONE },
	[JOURNAL_OP_CREATE_FOLDER] = { "create_folder", ARGS_NONE },
	[JOURNAL_OP_RENAME_FOLDER] = { "rename_folder", ARGS_NAME },
	[JOURNAL_OP_DELETE_FOLDER] = { "delete_folder", ARGS_NONE },
	[JOURNAL_OP_SET_METADATA] = { "set_metadata", ARGS_PAIR },
	[JOURNAL_OP_SET_ACL] = { "set_acl", ARGS_PAIR },
	[JOURNAL_OP_ANNOTATION] = { "set_annotation", ARGS_NONE },
};

const char *journal_op_to_string(enum journal_op op)
{
	if ((unsigned)op >= ARRAY_SIZE(ops))
		return NULL;
	return ops[op].name;
}

const char *journal_op_contract_name(enum journal_op op, const char *args)
{
	static const char *const names[_JOURNAL_OP_MAX] = {
		[JOURNAL_OP_APPEND] = "store",
		[JOURNAL_OP_FLAGS] = "flags",
		[JOURNAL_OP_COPY] = "copy",
		[JOURNAL_OP_MOVE] = "move",
		[JOURNAL_OP_EXPUNGE] = "expunge",
		[JOURNAL_OP_CREATE_FOLDER] = "create-folder",
		[JOURNAL_OP_RENAME_FOLDER] = "rename-folder",
		[JOURNAL_OP_DELETE_FOLDER] = "delete-folder",
		[JOURNAL_OP_SET_METADATA] = "set-metadata",
		[JOURNAL_OP_SET_ACL] = "set-acl",
		[JOURNAL_OP_ANNOTATION] = "set-annotation",
	};
	const char *nl;

	if ((unsigned)op >= ARRAY_SIZE(names))
		return NULL;
	/* "<identifier>\n" and nothing after it: DELETEACL. */
	if (op == JOURNAL_OP_SET_ACL && args && (nl = strchr(args, '\n')) && !nl[1])
		return "delete-acl";
	return names[op];
}

int journal_op_from_string(const char *name, enum journal_op *ret)
{
	if (!name)
		return -EBADMSG;
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (streq(ops[i].name, name)) {
			*ret = (enum journal_op)i;
			return 0;
		}
	return -EBADMSG;
}

int journal_args_encode(const struct journal_args *a, char **ret)
{
	bool acl = a->op == JOURNAL_OP_SET_ACL;
	const char *first, *rest;
	char *s = NULL;
	int n;

	if ((unsigned)a->op >= ARRAY_SIZE(ops))
		return -EINVAL;
	switch (ops[a->op].format) {
	case ARGS_NONE:
		*ret = NULL;
		return 0;
	case ARGS_SOURCE:
		if (a->copy.src_id <= 0)
			return -EINVAL;
		n = asprintf(&s, "src=%" PRId64, a->copy.src_id);
		break;
	case ARGS_NAME:
		if (!a->rename.new_name)
			return -EINVAL;
		s = strdup(a->rename.new_name);
		n = s ? 0 : -1;
		break;
	case ARGS_PAIR:
		first = acl ? a->acl.identifier : a->metadata.entry;
		rest = acl ? a->acl.rights : a->metadata.value;
		if (!first || strchr(first, '\n'))
			return -EINVAL;
		n = asprintf(&s, "%s\n%s", first, rest ? rest : "");
		break;
	default:
		return -EINVAL;
	}
	if (n < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}

static int parse_id(const char *s, int64_t *ret)
{
	int64_t v = 0;

	if (!*s)
		return -EBADMSG;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
			return -EBADMSG;
		v = v * 10 + (*s - '0');
	}
	if (v == 0)
		return -EBADMSG;
	*ret = v;
	return 0;
}

int journal_args_decode(enum journal_op op, const char *s, struct journal_args *ret,
			const char **ret_why)
{
	struct journal_args a = { .op = op };
	const char *why = NULL;
	char *nl;

	*ret = (struct journal_args){ .op = op };
	if ((unsigned)op >= ARRAY_SIZE(ops)) {
		why = "an operation this version knows";
		goto bad;
	}
	switch (ops[op].format) {
	case ARGS_NONE:
		return 0;
	case ARGS_SOURCE:
		if (!s || strncmp(s, "src=", 4) != 0 || parse_id(s + 4, &a.copy.src_id) < 0) {
			why = "\"src=<message id>\"";
			goto bad;
		}
		break;
	case ARGS_NAME:
		if (!s || !*s) {
			why = "the new folder name";
			goto bad;
		}
		a.buf_ = strdup(s);
		if (!a.buf_)
			return -ENOMEM;
		a.rename.new_name = a.buf_;
		break;
	case ARGS_PAIR:
		if (!s || !(nl = strchr(s, '\n')) || nl == s) {
			why = op == JOURNAL_OP_SET_ACL ? "\"<identifier>\\n<rights>\""
						       : "\"<entry>\\n<value>\"";
			goto bad;
		}
		a.buf_ = strdup(s);
		if (!a.buf_)
			return -ENOMEM;
		a.buf_[nl - s] = '\0';
		if (op == JOURNAL_OP_SET_ACL) {
			a.acl.identifier = a.buf_;
			a.acl.rights = a.buf_ + (nl - s) + 1;
		} else {
			a.metadata.entry = a.buf_;
			a.metadata.value = a.buf_ + (nl - s) + 1;
		}
		break;
	}
	*ret = a;
	return 0;
bad:
	if (ret_why)
		*ret_why = why;
	return -EBADMSG;
}

void journal_args_free(struct journal_args *a)
{
	free(a->buf_);
	*a = (struct journal_args){ .op = a->op };
}

void journal_attempt_encode(uint32_t uidnext, char *buf, size_t size)
{
	snprintf(buf, size, "uidnext=%" PRIu32, uidnext);
}

int journal_attempt_decode(const char *s, uint32_t *ret_uidnext)
{
	int64_t v;

	if (!s || strncmp(s, "uidnext=", 8) != 0 || parse_id(s + 8, &v) < 0 || v > UINT32_MAX)
		return -EBADMSG;
	*ret_uidnext = (uint32_t)v;
	return 0;
}

int journal_create_attempt_encode(const char *name, char **ret)
{
	char *s;

	if (!name || !*name)
		return -EINVAL;
	if (asprintf(&s, "name=%s", name) < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int journal_create_attempt_decode(const char *s, const char **ret_name)
{
	if (!s || strncmp(s, "name=", 5) != 0 || !s[5])
		return -EBADMSG;
	*ret_name = s + 5;
	return 0;
}

/* The sets of a flags mark, after "flags=": NULL for none. */
static const char *flags_marks(const char *mark)
{
	return mark && strncmp(mark, "flags=", 6) == 0 ? mark + 6 : NULL;
}

/* The set after the one at p, NULL after the last. */
static const char *next_set(const char *p)
{
	const char *nl = strchr(p, '\n');

	return nl ? nl + 1 : NULL;
}

/* Whether fn holds for a set of a flags mark (each of strcspn(p, "\n")
 * bytes at p), newest last. */
static bool flags_marks_any(const char *mark, const char *set,
			    bool (*fn)(const char *p, size_t len, const char *set))
{
	for (const char *p = flags_marks(mark); p; p = next_set(p))
		if (fn(p, strcspn(p, "\n"), set))
			return true;
	return false;
}

static bool set_is(const char *p, size_t len, const char *set)
{
	return strlen(set) == len && memcmp(p, set, len) == 0;
}

static bool set_is_not(const char *p, size_t len, const char *set)
{
	return !set_is(p, len, set);
}

bool journal_flags_attempt_has(const char *mark, const char *set)
{
	return flags_marks_any(mark, set ? set : "", set_is);
}

bool journal_flags_attempt_only(const char *mark, const char *set)
{
	return !flags_marks_any(mark, set ? set : "", set_is_not);
}

int journal_flags_attempt_add(const char *mark, const char *set, char **ret)
{
	const char *p = flags_marks(mark), *last = NULL;
	size_t n = 0;
	char *s;
	int k;

	if (!set)
		set = "";
	for (const char *q = p; q; q = next_set(q)) {
		last = q;
		n++;
	}
	if (last && set_is(last, strcspn(last, "\n"), set)) {
		k = asprintf(&s, "flags=%s", p); /* the newest already */
	} else {
		/* The newest JOURNAL_FLAGS_MARKS - 1 kept, then set. */
		for (; p && n >= JOURNAL_FLAGS_MARKS; n--)
			p = next_set(p);
		k = asprintf(&s, "flags=%s%s%s", p ? p : "", p ? "\n" : "", set);
	}
	if (k < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int journal_flags_attempt_bounds(const char *mark, const char *base, char **ret_all, char **ret_any)
{
	_cleanup_free_ char *all = strdup(base ? base : ""), *any = strdup(base ? base : "");
	int r = 0;

	if (!all || !any)
		return -ENOMEM;
	for (const char *p = flags_marks(mark); r >= 0 && p; p = next_set(p)) {
		_cleanup_free_ char *set = strndup(p, strcspn(p, "\n"));
		_cleanup_free_ char *gone = NULL, *unused = NULL, *t = NULL;

		if (!set)
			return -ENOMEM;
		/* all ∩ set is all − (all − set). */
		r = flags_diff(set, all, &gone, &unused);
		if (r >= 0)
			r = flags_apply(all, "", gone, &t);
		if (r >= 0) {
			free(all);
			all = TAKE_PTR(t);
			r = flags_apply(any, set, "", &t);
		}
		if (r >= 0) {
			free(any);
			any = TAKE_PTR(t);
		}
	}
	if (r < 0)
		return r;
	*ret_all = TAKE_PTR(all);
	*ret_any = TAKE_PTR(any);
	return 0;
}

void journal_bind_op(sqlite3_stmt *st, int index, enum journal_op op)
{
	sqlite3_bind_text(st, index, journal_op_to_string(op), -1, SQLITE_STATIC);
}

int journal_bind_ops(struct store *s, sqlite3_stmt *st)
{
	int n = sqlite3_bind_parameter_count(st);
	const char *sql = sqlite3_sql(st), *named;

	/* A ?NNN after a named parameter may share its index. */
	named = sql ? strstr(sql, ":op_") : NULL;
	if (named && strchr(named, '?')) {
		store_set_error(s, "SQL has a numbered parameter after %.20s", named);
		return -EINVAL;
	}

	for (int i = 1; i <= n; i++) {
		const char *p = sqlite3_bind_parameter_name(st, i);
		enum journal_op op;

		if (!p || strncmp(p, ":op_", 4) != 0)
			continue;
		if (journal_op_from_string(p + 4, &op) < 0) {
			store_set_error(s, "SQL names an unknown journal operation (%s)", p);
			return -EINVAL;
		}
		sqlite3_bind_text(st, i, ops[op].name, -1, SQLITE_STATIC);
	}
	return 0;
}
