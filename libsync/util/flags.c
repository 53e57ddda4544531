/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"
#include "util/flags.h"
#include "util/macro.h"

static const char *const system_flags[] = {
	"\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen",
};

/* The canonical spelling of a system flag, or NULL. */
static const char *system_flag(const char *s, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(system_flags); i++)
		if (strlen(system_flags[i]) == len && strncasecmp(system_flags[i], s, len) == 0)
			return system_flags[i];
	return NULL;
}

static bool atom_char(unsigned char c)
{
	/* RFC 3501 ATOM-CHAR: any CHAR except atom-specials. */
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return !strchr("(){%*\"\\]", c);
}

bool flag_valid(const char *s, size_t len)
{
	if (!s || len == 0 || len > FLAG_MAX_LEN)
		return false;
	if (s[0] == '\\')
		return system_flag(s, len) != NULL;
	for (size_t i = 0; i < len; i++)
		if (!atom_char((unsigned char)s[i]))
			return false;
	return true;
}

static bool is_recent(const char *s, size_t len)
{
	return len == 7 && strncasecmp(s, "\\Recent", 7) == 0;
}

/* A set being built: pointers into caller strings, with lengths. */
struct flag_ref {
	const char *s;
	size_t len;
	size_t pos; /* the order it was added in */
};

struct flag_vec {
	struct flag_ref *v;
	size_t n, alloc;
};

static int vec_push(struct flag_vec *fv, const char *s, size_t len)
{
	if (fv->n == fv->alloc) {
		size_t na = fv->alloc ? fv->alloc * 2 : 16;
		struct flag_ref *nv = realloc(fv->v, na * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		fv->v = nv;
		fv->alloc = na;
	}
	fv->v[fv->n] = (struct flag_ref){ s, len, fv->n };
	fv->n++;
	return 0;
}

static int ref_cmp(const void *a, const void *b)
{
	const struct flag_ref *x = a, *y = b;
	size_t m = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, m);

	if (c)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

/* Flags compare case-insensitively (keywords are ASCII atoms; Dovecot and
 * Cyrus take "-FLAGS (urgent)" to remove Urgent); the first added first. */
static int ref_casecmp(const void *a, const void *b)
{
	const struct flag_ref *x = a, *y = b;
	size_t m = x->len < y->len ? x->len : y->len;
	int c = strncasecmp(x->s, y->s, m);

	if (c)
		return c;
	if (x->len != y->len)
		return (x->len > y->len) - (x->len < y->len);
	return (x->pos > y->pos) - (x->pos < y->pos);
}

static bool ref_same(const struct flag_ref *x, const struct flag_ref *y)
{
	return x->len == y->len && strncasecmp(x->s, y->s, x->len) == 0;
}

/* Drops the flags equal but for case to one added before them, sorts
 * bytewise and joins. */
static int vec_join(struct flag_vec *fv, char **ret)
{
	struct buf b = BUF_INIT(1u << 20);
	size_t n = 0;
	int r = 0;

	if (fv->n)
		qsort(fv->v, fv->n, sizeof(*fv->v), ref_casecmp);
	for (size_t i = 0; i < fv->n; i++)
		if (n == 0 || !ref_same(&fv->v[n - 1], &fv->v[i]))
			fv->v[n++] = fv->v[i];
	fv->n = n;
	if (fv->n)
		qsort(fv->v, fv->n, sizeof(*fv->v), ref_cmp);
	for (size_t i = 0; r >= 0 && i < fv->n; i++) {
		if (b.len)
			r = buf_append_char(&b, ' ');
		if (r >= 0)
			r = buf_append(&b, fv->v[i].s, fv->v[i].len);
	}
	if (r < 0) {
		buf_free(&b);
		return r;
	}
	*ret = buf_steal(&b);
	if (!*ret)
		*ret = strdup("");
	return *ret ? 0 : -ENOMEM;
}

/* Adds one flag, canonicalized; \Recent skipped. */
static int vec_add(struct flag_vec *fv, const char *s, size_t len)
{
	const char *canon;

	if (is_recent(s, len))
		return 0;
	if (!flag_valid(s, len))
		return -EINVAL;
	canon = s[0] == '\\' ? system_flag(s, len) : s;
	return vec_push(fv, canon, len);
}

static bool set_has(const char *set, const char *s, size_t len)
{
	const char *p = set ? set : "";

	while (*p) {
		const char *e = strchr(p, ' ');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == len && strncasecmp(p, s, len) == 0)
			return true;
		p += l;
		while (*p == ' ')
			p++;
	}
	return false;
}

int flags_from_list(const char *const *flags, size_t n, char **ret)
{
	struct flag_vec fv = { 0 };
	int r = 0;

	for (size_t i = 0; r >= 0 && i < n; i++)
		r = vec_add(&fv, flags[i], strlen(flags[i]));
	if (r >= 0)
		r = vec_join(&fv, ret);
	free(fv.v);
	return r;
}

bool flags_has(const char *set, const char *flag)
{
	size_t len = strlen(flag);
	const char *canon = flag[0] == '\\' ? system_flag(flag, len) : flag;

	return canon && set_has(set, canon, len);
}

/* Collects the flags of a that are (want_in_b) or are not in b. */
static int vec_filter(struct flag_vec *fv, const char *a, const char *b, bool want_in_b)
{
	const char *p = a ? a : "";

	while (*p) {
		const char *e = strchr(p, ' ');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		int r;

		if (len && set_has(b, p, len) == want_in_b) {
			r = vec_add(fv, p, len);
			if (r < 0)
				return r;
		}
		p += len;
		while (*p == ' ')
			p++;
	}
	return 0;
}

int flags_apply(const char *set, const char *add, const char *remove, char **ret)
{
	struct flag_vec fv = { 0 };
	int r;

	r = vec_filter(&fv, set, remove, false);
	if (r >= 0)
		r = vec_filter(&fv, add, remove, false);
	if (r >= 0)
		r = vec_join(&fv, ret);
	free(fv.v);
	return r;
}

int flags_diff(const char *from, const char *to, char **ret_add, char **ret_remove)
{
	struct flag_vec a = { 0 }, d = { 0 };
	char *add = NULL;
	int r;

	r = vec_filter(&a, to, from, false);
	if (r >= 0)
		r = vec_filter(&d, from, to, false);
	if (r >= 0)
		r = vec_join(&a, &add);
	if (r >= 0)
		r = vec_join(&d, ret_remove);
	if (r >= 0)
		*ret_add = TAKE_PTR(add);
	free(add);
	free(a.v);
	free(d.v);
	return r;
}

int flags_merge3(const char *base, const char *local, const char *remote, char **ret)
{
	_cleanup_free_ char *add = NULL, *remove = NULL;
	int r;

	r = flags_diff(base, local, &add, &remove);
	if (r < 0)
		return r;
	return flags_apply(remote, add, remove, ret);
}

size_t flags_count(const char *set)
{
	size_t n = 0;
	const char *p = set ? set : "";

	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		n++;
		while (*p && *p != ' ')
			p++;
	}
	return n;
}
