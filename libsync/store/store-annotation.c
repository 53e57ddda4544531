/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The annotation cache (ANNOTATE, RFC 5257; table annotation, store-schema.c
 * version 11).  Local changes are in store-ops.c (cpmsync_op_set_annotations);
 * here are the reads (read-your-writes) and what the engine and the session
 * record from the server.
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

#include "store/journal.h"
#include "store/store-sync.h"
#include "store/store.h"
#include "util/macro.h"

void store_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void store_annotations_free(struct store_annotation *a, size_t n)
{
	for (size_t i = 0; a && i < n; i++) {
		free(a[i].entry);
		free(a[i].value);
	}
	free(a);
}

/* A growing NULL-terminated vector. */
struct strv {
	char **v;
	size_t n, alloc;
};

static int strv_push(struct strv *sv, const char *s, size_t len)
{
	if (sv->n + 2 > sv->alloc) {
		size_t na = sv->alloc ? sv->alloc * 2 : 8;
		char **p = reallocarray(sv->v, na, sizeof(*p));

		if (!p)
			return -ENOMEM;
		sv->v = p;
		sv->alloc = na;
	}
	sv->v[sv->n] = strndup(s, len);
	if (!sv->v[sv->n])
		return -ENOMEM;
	sv->v[++sv->n] = NULL;
	return 0;
}

/* An empty vector (not NULL) when nothing was pushed. */
static int strv_take(struct strv *sv, char ***ret)
{
	if (!sv->v) {
		sv->v = calloc(1, sizeof(char *));
		if (!sv->v)
			return -ENOMEM;
	}
	*ret = sv->v;
	*sv = (struct strv){ 0 };
	return 0;
}

int store_annotations_read(struct store *s, int64_t message_id, const char *const *entries,
			   bool shared, char ***ret_pairs, char ***ret_missing)
{
	struct strv pairs = { 0 }, missing = { 0 };
	sqlite3_stmt *st;
	bool on_server;
	int r;

	r = store_row_by_id(s, STORE_LIVE_MESSAGE_SQL("m.uid IS NOT NULL", ""), message_id,
			    "message", &st);
	if (r < 0)
		return r;
	on_server = sqlite3_column_int(st, 0) != 0;
	sqlite3_reset(st);

	for (size_t i = 0; entries && entries[i]; i++) {
		const char *v;

		r = store_prepare(s,
				  "SELECT coalesce(local, value) FROM annotation"
				  " WHERE message_id = ?1 AND entry = ?2 AND shared = ?3",
				  &st);
		if (r < 0)
			goto fail;
		sqlite3_bind_int64(st, 1, message_id);
		sqlite3_bind_text(st, 2, entries[i], -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, shared ? 1 : 0);
		r = store_step(s, st);
		if (r < 0)
			goto fail;
		if (r == 0) {
			r = on_server ? strv_push(&missing, entries[i], strlen(entries[i])) : 0;
		} else if ((v = (const char *)sqlite3_column_text(st, 0)) && *v) {
			r = strv_push(&pairs, entries[i], strlen(entries[i]));
			if (r >= 0)
				r = strv_push(&pairs, v, (size_t)sqlite3_column_bytes(st, 0));
			sqlite3_reset(st);
		} else {
			sqlite3_reset(st);
		}
		if (r < 0)
			goto fail;
	}
	r = strv_take(&pairs, ret_pairs);
	if (r >= 0) {
		r = strv_take(&missing, ret_missing);
		if (r < 0) {
			store_strv_free(*ret_pairs);
			*ret_pairs = NULL;
		}
	}
	if (r >= 0)
		return 0;
fail:
	store_strv_free(pairs.v);
	store_strv_free(missing.v);
	return r;
}

int store_annotation_set_server(struct store *s, int64_t message_id, const char *entry, bool shared,
				const char *value, size_t value_len)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(
		s,
		"INSERT INTO annotation (message_id, entry, shared, value)"
		" SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM message WHERE id = ?1)"
		" ON CONFLICT (message_id, entry, shared) DO UPDATE SET value = excluded.value",
		&st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	sqlite3_bind_text(st, 2, entry, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, shared ? 1 : 0);
	if (value)
		sqlite3_bind_text(st, 4, value, (int)value_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	return store_step_done(s, st);
}

int store_annotation_mark_absent(struct store *s, int64_t message_id, const char *entry,
				 bool shared)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s,
			  "INSERT OR IGNORE INTO annotation (message_id, entry, shared)"
			  " SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM message WHERE id = ?1)",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	sqlite3_bind_text(st, 2, entry, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, shared ? 1 : 0);
	return store_step_done(s, st);
}

/*
 * A set_annotation row the server refused holds the entries refused, in its
 * args: "\n<shared> <entry>\n" for each (0 or 1, entries have no newline;
 * store_annotation_hold()).  They are its own: another row of the message
 * does not send them (a later change sends what changed), and they go again
 * when it is tried again (RetryOperation, or its back-off), alone.  HELD(j)
 * is true when row j holds annotation row a.
 */
#define HELD(j) "instr(" j ".args, char(10) || a.shared || ' ' || a.entry || char(10)) > 0"

int store_annotations_pending(struct store *s, int64_t message_id, struct store_annotation **ret,
			      size_t *ret_n)
{
	return store_annotations_pending_row(s, message_id, 0, ret, ret_n);
}

int store_annotations_pending_row(struct store *s, int64_t message_id, int64_t journal_id,
				  struct store_annotation **ret, size_t *ret_n)
{
	struct store_annotation *a = NULL;
	size_t n = 0, alloc = 0;
	sqlite3_stmt *st;
	int r;

	r = store_prepare(
		s,
		"SELECT a.entry, a.shared, a.local FROM annotation a"
		" LEFT JOIN journal r ON r.id = ?2"
		" WHERE a.message_id = ?1 AND a.local IS NOT NULL AND"
		" CASE WHEN r.args IS NOT NULL THEN " HELD(
			"r") " ELSE NOT EXISTS"
			     " (SELECT 1 FROM journal j WHERE j.message_id = ?1 AND j.id != ?2"
			     " AND j.args IS NOT NULL AND " HELD(
				     "j") " AND j.op = :op_set_annotation)"
					  " END ORDER BY a.entry, a.shared",
		&st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	sqlite3_bind_int64(st, 2, journal_id);
	r = journal_bind_ops(s, st);
	if (r < 0)
		return r;
	while ((r = store_step(s, st)) > 0) {
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 4;
			struct store_annotation *p = reallocarray(a, na, sizeof(*p));

			if (!p) {
				r = -ENOMEM;
				break;
			}
			a = p;
			alloc = na;
		}
		a[n].entry = strdup((const char *)sqlite3_column_text(st, 0));
		a[n].shared = sqlite3_column_int(st, 1) != 0;
		a[n].value = strdup((const char *)sqlite3_column_text(st, 2));
		n++;
		if (!a[n - 1].entry || !a[n - 1].value) {
			r = -ENOMEM;
			break;
		}
	}
	if (r < 0) {
		sqlite3_reset(st);
		store_annotations_free(a, n);
		return r;
	}
	*ret = a;
	*ret_n = n;
	return 0;
}

int store_annotations_sent(struct store *s, int64_t message_id, const struct store_annotation *a,
			   size_t n, bool *ret_more)
{
	sqlite3_stmt *st;
	int r;

	for (size_t i = 0; i < n; i++) {
		r = store_prepare(s,
				  "UPDATE annotation SET value = nullif(?4, ''),"
				  " local = CASE WHEN local = ?4 THEN NULL ELSE local END"
				  " WHERE message_id = ?1 AND entry = ?2 AND shared = ?3",
				  &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, message_id);
		sqlite3_bind_text(st, 2, a[i].entry, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, a[i].shared ? 1 : 0);
		sqlite3_bind_text(st, 4, a[i].value, -1, SQLITE_STATIC);
		r = store_step_done(s, st);
		if (r < 0)
			return r;
	}
	return store_annotation_pending_any(s, message_id, ret_more);
}

int store_annotation_pending_any(struct store *s, int64_t message_id, bool *ret)
{
	return store_id_test(
		s, "SELECT 1 FROM annotation WHERE message_id = ?1 AND local IS NOT NULL LIMIT 1",
		message_id, ret);
}

int store_annotation_pending_free(struct store *s, int64_t message_id, int64_t journal_id,
				  bool *ret)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(
		s,
		"SELECT 1 FROM annotation a WHERE a.message_id = ?1 AND a.local IS NOT NULL"
		" AND NOT EXISTS (SELECT 1 FROM journal j WHERE j.message_id = ?1"
		" AND j.id != ?2 AND j.args IS NOT NULL AND " HELD(
			"j") " AND"
			     " j.op = :op_set_annotation) LIMIT 1",
		&st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	sqlite3_bind_int64(st, 2, journal_id);
	r = journal_bind_ops(s, st);
	if (r >= 0)
		r = store_step(s, st);
	if (r < 0)
		return r;
	if (r > 0)
		sqlite3_reset(st);
	*ret = r > 0;
	return 0;
}

int store_annotation_hold(struct store *s, int64_t journal_id, const struct store_annotation *a,
			  size_t n)
{
	_cleanup_free_ char *held = NULL;
	size_t len = 1;
	sqlite3_stmt *st;
	char *p;
	int r;

	for (size_t i = 0; i < n; i++)
		len += strlen(a[i].entry) + 3;
	held = malloc(len + 1);
	if (!held)
		return -ENOMEM;
	p = held;
	*p++ = '\n';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%c %s\n", a[i].shared ? '1' : '0', a[i].entry);
	r = store_prepare(s, "UPDATE journal SET args = ?2 WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, journal_id);
	if (n)
		sqlite3_bind_text(st, 2, held, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	return store_step_done(s, st);
}

int store_annotation_cached(struct store *s, int64_t message_id, bool *ret)
{
	return store_id_test(s, "SELECT 1 FROM annotation WHERE message_id = ?1 LIMIT 1",
			     message_id, ret);
}

int store_annotation_forget(struct store *s, int64_t folder_id, const struct rangeset *uids)
{
	int r;

	for (size_t i = 0; i < uids->n; i++) {
		r = store_exec_uid_range(
			s,
			"DELETE FROM annotation WHERE local IS NULL AND message_id IN"
			" (SELECT id FROM message WHERE folder_id = ?1"
			" AND uid BETWEEN ?2 AND ?3)",
			folder_id, uids->r[i].lo, uids->r[i].hi);
		if (r < 0)
			return r;
	}
	return 0;
}

int store_annotation_entries(struct store *s, int64_t folder_id, size_t max, char ***ret)
{
	struct strv sv = { 0 };
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s,
			  "SELECT DISTINCT a.entry FROM annotation a JOIN message m"
			  " ON m.id = a.message_id WHERE m.folder_id = ?1 AND m.removed = 0"
			  " ORDER BY a.entry LIMIT ?2",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, (int64_t)max);
	while ((r = store_step(s, st)) > 0) {
		r = strv_push(&sv, (const char *)sqlite3_column_text(st, 0),
			      (size_t)sqlite3_column_bytes(st, 0));
		if (r < 0) {
			sqlite3_reset(st);
			break;
		}
	}
	if (r >= 0)
		r = strv_take(&sv, ret);
	if (r < 0)
		store_strv_free(sv.v);
	return r;
}

int store_journal_arrival_row(struct store *s, int64_t message_id, int64_t *ret_id,
			      bool *ret_failed)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s,
			  "SELECT id, failed FROM journal WHERE message_id = ?1"
			  " AND op IN (:op_append, :op_copy, :op_move) ORDER BY id LIMIT 1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	r = journal_bind_ops(s, st);
	if (r >= 0)
		r = store_step(s, st);
	if (r <= 0)
		return r;
	*ret_id = sqlite3_column_int64(st, 0);
	*ret_failed = sqlite3_column_int(st, 1) != 0;
	sqlite3_reset(st);
	return 1;
}
