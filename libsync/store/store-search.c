/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cpmsync_store_search() (cpmsync/store.h): the offline Folder1.Search.
 *
 * One SELECT holds every criterion that was given (and only those), so
 * SQLite filters by flags, dates and summary fields; it walks the folder's
 * messages through the (folder_id, id) index, already in id order.  The
 * statement is built per call and finalized, not cached by store_prepare():
 * the criteria combine (and flag lists vary in length) into too many
 * variants for the statement cache.  Values are always bound, never
 * pasted into the SQL.
 *
 * Matching:
 *  - Strings match as substrings, in any case: both sides are folded to
 *    Unicode simple case folding (util/casefold.h: "CAFÉ" finds "café",
 *    "ΣΟΦΊΑ" "σοφία", "ИВАН" "Иван"), the criterion once here, each value
 *    by cpmsync_contains() (store-func.c), which has no wildcards, so '%',
 *    '_' and '\' in a criterion are plain characters.  (SQLite's lower()
 *    folds ASCII only unless SQLite was built with ICU.)  An empty string is no
 *    criterion (it would match everything anyway).  conversation_id too
 *    is a substring match, like the IMAP SEARCH HEADER that answers it
 *    online.
 *  - flags / not_flags: the stored set is space-separated and sorted, with
 *    system flags in canonical case (util/flags.h), so a flag is an exact
 *    token test, instr(' ' || flags || ' ', ' \Seen ').  Criteria flags
 *    are canonicalized the same way (a system flag in any case); keywords
 *    match exactly, as flags_has() does.  An invalid flag is -EINVAL;
 *    \Recent is never stored, so requiring it matches nothing and
 *    excluding it excludes nothing.
 *  - since <= internaldate < before, each only when not 0.
 *  - text: the summary fields (subject, from, to, Message-ID) and, when
 *    the body is stored, the body (the raw message, header included).
 *    The body is not matched in SQL: lower(CAST(data AS TEXT)) would hold
 *    up to three copies of a body of up to 64 MiB in memory at once.  It
 *    is read instead through sqlite3_blob in 64 KiB chunks (like
 *    store_body_read_fd()), folded to lower case and searched with
 *    memmem(), keeping the last strlen(text) - 1 bytes across chunks:
 *    memory stays at one chunk plus the criterion.  A character cut at a
 *    chunk's end is folded with the next chunk.  The body of a message
 *    that the other criteria exclude, or whose summary already matches,
 *    is not read.  Cost: a text search reads every remaining stored body
 *    of the folder, O(total body bytes) of I/O and CPU; no index helps
 *    (the store has no full-text index).  Encoded content (base64,
 *    quoted-printable, RFC 2047 words) is searched as stored, not decoded.
 *
 * Consistency: the SELECT and the blob reads run in one read transaction
 * (a deferred BEGIN, as store-read.c's read_body), so they see one
 * snapshot while the daemon writes.  Like foreach_message, the statement
 * LEFT JOINs from the folder, so that an unknown (or removed) folder,
 * -CPMSYNC_E_NOT_FOUND, is told from one without matches in that same
 * snapshot.
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/error.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "util/buf.h"
#include "util/casefold.h"
#include "util/flags.h"
#include "util/macro.h"

#define SEARCH_CHUNK (64 * 1024)
/* Most bound values: one per flag and not_flag, a few for the rest. */
#define SEARCH_MAX_FLAGS 1024
/* The SQL grows with the number of flag criteria only. */
#define SEARCH_SQL_MAX (256 * 1024)

/* A value to bind: text (malloc()ed) or, when text is NULL, an integer. */
struct param {
	char *text;
	int64_t value;
};

struct params {
	struct param *v;
	size_t n, alloc;
};

static void params_free(struct params *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].text);
	free(p->v);
	*p = (struct params){ 0 };
}

static void params_freep(struct params *p)
{
	params_free(p);
}

/* Adds a value; returns its parameter number (>= 1) or -ENOMEM.  text
 * (if any) is taken over, also on failure. */
static int params_add(struct params *p, char *text, int64_t value)
{
	if (p->n == p->alloc) {
		size_t n = p->alloc ? p->alloc * 2 : 8;
		struct param *v = reallocarray(p->v, n, sizeof(*v));

		if (!v) {
			free(text);
			return -ENOMEM;
		}
		p->v = v;
		p->alloc = n;
	}
	p->v[p->n++] = (struct param){ .text = text, .value = value };
	return (int)p->n;
}

/* s case-folded (util/casefold.h), NUL-terminated, malloc()ed; or NULL. */
static char *fold_dup(const char *s)
{
	size_t n = strlen(s), len;
	char *f = malloc(CASEFOLD_SIZE(n) + 1);

	if (!f)
		return NULL;
	casefold_utf8(s, n, true, f, &len);
	f[len] = '\0';
	return f;
}

/* A criterion's value, case-folded. */
static int params_add_folded(struct params *p, const char *text)
{
	char *t = fold_dup(text);

	return t ? params_add(p, t, 0) : -ENOMEM;
}

/* " AND cpmsync_contains(m.column, ?N)", for a non-empty value. */
static int add_substring(struct buf *sql, struct params *p, const char *column, const char *value)
{
	int k;

	if (!value || !*value)
		return 0;
	k = params_add_folded(p, value);
	if (k < 0)
		return k;
	return buf_printf(sql, " AND cpmsync_contains(%s, ?%d)", column, k);
}

/* One flag: " AND instr(' ' || ms.flags || ' ', ?N) > 0" (= 0 for an
 * excluded one), ?N being " <canonical flag> ". */
static int add_flag(struct store *s, struct buf *sql, struct params *p, const char *flag, bool set)
{
	_cleanup_free_ char *canon = NULL;
	char *token;
	int r, k;

	if (strcasecmp(flag, "\\Recent") == 0)
		return set ? buf_append_str(sql, " AND 0") : 0;
	if (!flag_valid(flag, strlen(flag))) {
		store_set_error(s, "search: invalid flag '%s'", flag);
		return -EINVAL;
	}
	r = flags_from_list(&flag, 1, &canon);
	if (r < 0)
		return r;
	if (asprintf(&token, " %s ", canon) < 0)
		return -ENOMEM;
	k = params_add(p, token, 0);
	if (k < 0)
		return k;
	return buf_printf(sql, " AND instr(' ' || ms.flags || ' ', ?%d) %s 0", k, set ? ">" : "=");
}

static int add_flags(struct store *s, struct buf *sql, struct params *p, const char *const *flags,
		     bool set)
{
	int r = 0;

	for (size_t i = 0; flags && flags[i] && r >= 0; i++) {
		if (p->n >= SEARCH_MAX_FLAGS) {
			store_set_error(s, "search: more than %d flags", SEARCH_MAX_FLAGS);
			return -EINVAL;
		}
		r = add_flag(s, sql, p, flags[i], set);
	}
	return r;
}

/*
 * The statement's SQL and values.  Columns: f.id, m.id, whether the
 * summary matches text (1 without text), whether a body is stored.
 * typeof() does not load the blob: SQLite reads only its type from the
 * record header.
 */
static int build_sql(struct store *s, const struct cpmsync_search_criteria *c, bool text,
		     struct buf *sql, struct params *p)
{
	int r, k;

	if (text) {
		k = params_add_folded(p, c->text);
		if (k < 0)
			return k;
		r = buf_printf(sql,
			       "SELECT f.id, m.id,"
			       " ifnull(cpmsync_contains(sm.subject, ?%d)"
			       " OR cpmsync_contains(sm.from_addr, ?%d)"
			       " OR cpmsync_contains(sm.to_addrs, ?%d)"
			       " OR cpmsync_contains(m.message_id, ?%d), 0),",
			       k, k, k, k);
	} else {
		r = buf_append_str(sql, "SELECT f.id, m.id, 1,");
	}
	if (r >= 0)
		r = buf_append_str(sql,
				   " coalesce(m.has_body, 0) FROM folder f"
				   " LEFT JOIN (message m JOIN message_state ms ON ms.id = m.id"
				   " LEFT JOIN summary sm ON sm.id = m.id)"
				   " ON m.folder_id = f.id AND m.removed = 0");
	if (r >= 0)
		r = add_substring(sql, p, "sm.from_addr", c->from);
	if (r >= 0)
		r = add_substring(sql, p, "sm.to_addrs", c->to);
	if (r >= 0)
		r = add_substring(sql, p, "sm.subject", c->subject);
	if (r >= 0)
		r = add_substring(sql, p, "m.conversation_id", c->conversation_id);
	if (r >= 0 && (c->since || c->has_since)) {
		k = r = params_add(p, NULL, c->since);
		if (r >= 0)
			r = buf_printf(sql, " AND m.internaldate >= ?%d", k);
	}
	if (r >= 0 && (c->before || c->has_before)) {
		k = r = params_add(p, NULL, c->before);
		if (r >= 0)
			r = buf_printf(sql, " AND m.internaldate < ?%d", k);
	}
	if (r >= 0)
		r = add_flags(s, sql, p, c->flags, true);
	if (r >= 0)
		r = add_flags(s, sql, p, c->not_flags, false);
	if (r >= 0) {
		k = r = params_add(p, NULL, 0); /* the folder id, bound by the caller */
		if (r >= 0)
			r = buf_printf(sql, " WHERE f.id = ?%d AND f.removed = 0 ORDER BY m.id", k);
	}
	if (r == -E2BIG) {
		store_set_error(s, "search: too many criteria");
		return -EINVAL;
	}
	return r < 0 ? r : 0;
}

/* What scan_piece() needs for a needle of nlen bytes: the folded text
 * (the last nlen - 1 bytes before, a chunk folded) and the chunk with the
 * bytes of a character cut at the previous one's end. */
#define SCAN_CARRY     4
#define SCAN_FOLDED    CASEFOLD_SIZE(SEARCH_CHUNK + SCAN_CARRY)
#define SCAN_BUF(nlen) ((nlen) + SCAN_FOLDED + SEARCH_CHUNK + SCAN_CARRY)

struct scan {
	const char *needle;
	size_t nlen;
	char *buf;     /* SCAN_BUF(nlen) bytes: the folded text, then in */
	size_t keep;   /* the last nlen - 1 bytes of what came before */
	size_t carry;  /* bytes of a cut character at the start of in */
	uint64_t seen; /* bytes of the body so far */
	bool found;
};

/* One piece of the body (store_body_each()), SEARCH_CHUNK bytes at a time. */
static int scan_piece(void *userdata, uint64_t size, const void *p, size_t n)
{
	struct scan *sc = userdata;
	char *in = sc->buf + sc->nlen + SCAN_FOLDED;

	if (CASEFOLD_SIZE(size) < sc->nlen)
		return 1; /* cannot contain it */
	while (n > 0) {
		size_t take = n < SEARCH_CHUNK ? n : SEARCH_CHUNK, have, k, len, used;

		/* Folded after the kept bytes; a character cut at the end
		 * waits for the next chunk (but the body's last). */
		memcpy(in + sc->carry, p, take);
		sc->seen += take;
		used = casefold_utf8(in, sc->carry + take, sc->seen >= size, sc->buf + sc->keep,
				     &len);
		sc->carry = sc->carry + take - used;
		memmove(in, in + used, sc->carry);
		have = sc->keep + len;
		if (memmem(sc->buf, have, sc->needle, sc->nlen)) {
			sc->found = true;
			return 1;
		}
		/* A match may straddle pieces: keep the last nlen - 1 bytes. */
		k = sc->nlen - 1 < have ? sc->nlen - 1 : have;
		memmove(sc->buf, sc->buf + have - k, k);
		sc->keep = k;
		p = (const char *)p + take;
		n -= take;
	}
	return 0;
}

/*
 * Whether the stored body of message_id contains needle (case-folded,
 * nlen > 0 bytes): 1, 0, or a negative error.  buf holds SCAN_BUF(nlen)
 * bytes.
 */
static int body_contains(struct store *s, int64_t message_id, const char *needle, size_t nlen,
			 char *buf)
{
	struct scan sc = { .needle = needle, .nlen = nlen, .buf = buf };
	int r = store_body_each(s, message_id, scan_piece, &sc);

	return r < 0 ? r : sc.found;
}

static int push_id(int64_t **ids, size_t *n, size_t *alloc, int64_t id)
{
	if (*n == *alloc) {
		size_t a = *alloc ? *alloc * 2 : 64;
		int64_t *v = reallocarray(*ids, a, sizeof(*v));

		if (!v)
			return -ENOMEM;
		*ids = v;
		*alloc = a;
	}
	(*ids)[(*n)++] = id;
	return 0;
}

/* Runs the statement inside the read transaction. */
static int run(struct store *s, sqlite3_stmt *st, const char *needle, int64_t folder_id,
	       int64_t **ret_ids, size_t *ret_n)
{
	_cleanup_free_ int64_t *ids = NULL;
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, alloc = 0, nlen = needle ? strlen(needle) : 0;
	bool folder_seen = false;
	int rc, r = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id;

		folder_seen = true;
		if (sqlite3_column_type(st, 1) == SQLITE_NULL)
			continue; /* the folder, without (matching) messages */
		id = sqlite3_column_int64(st, 1);
		if (!sqlite3_column_int(st, 2)) {
			/* text: the summary did not match; the body? */
			if (!sqlite3_column_int(st, 3))
				continue;
			if (!buf) {
				buf = malloc(SCAN_BUF(nlen));
				if (!buf)
					return -ENOMEM;
			}
			r = body_contains(s, id, needle, nlen, buf);
			if (r < 0)
				return r;
			if (r == 0)
				continue;
		}
		r = push_id(&ids, &n, &alloc, id);
		if (r < 0)
			return r;
	}
	if (rc != SQLITE_DONE)
		return store_fail(s, rc);
	if (!folder_seen) {
		store_set_error(s, "no folder with id %lld", (long long)folder_id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	*ret_ids = n ? TAKE_PTR(ids) : NULL;
	*ret_n = n;
	return 0;
}

int cpmsync_store_search(struct cpmsync_store *store, int64_t folder_id,
			 const struct cpmsync_search_criteria *c, int64_t **ret_ids, size_t *ret_n)
{
	struct store *s = store_call(store);
	_cleanup_buf_ struct buf sql = BUF_INIT(SEARCH_SQL_MAX);
	_cleanup_(params_freep) struct params p = { 0 };
	_cleanup_free_ char *needle = NULL;
	_cleanup_free_ int64_t *ids = NULL;
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	bool text, own;
	int r, rc;

	if (!s || !c || !ret_ids || !ret_n)
		return -EINVAL;
	text = c->text && *c->text;
	r = build_sql(s, c, text, &sql, &p);
	if (r < 0)
		return r;
	if (text) {
		needle = fold_dup(c->text);
		if (!needle)
			return -ENOMEM;
	}
	p.v[p.n - 1].value = folder_id;

	rc = sqlite3_prepare_v2(store_db(s), sql.data, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc);
	for (size_t i = 0; i < p.n; i++) {
		if (p.v[i].text)
			rc = sqlite3_bind_text(st, (int)i + 1, p.v[i].text, -1, SQLITE_STATIC);
		else
			rc = sqlite3_bind_int64(st, (int)i + 1, p.v[i].value);
		if (rc != SQLITE_OK) {
			r = store_fail(s, rc);
			sqlite3_finalize(st);
			return r;
		}
	}
	r = store_read_begin(s, &own);
	if (r < 0) {
		sqlite3_finalize(st);
		return r;
	}
	r = run(s, st, needle, folder_id, &ids, &n);
	/* Finalized before COMMIT, so that no statement holds the snapshot. */
	sqlite3_finalize(st);
	r = store_read_end(s, own, r);
	if (r < 0)
		return r;
	*ret_ids = TAKE_PTR(ids);
	*ret_n = n;
	return 0;
}
