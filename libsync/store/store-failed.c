/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading failed operations (cpmsync/ops.h): journal rows with failed = 1
 * (store-schema.c, version 5), and queued ones (failed = 0, cpmctl pending).  Each walk is one
 * SELECT, LEFT JOINed from the account row so that an unknown account is told from one without
 * failed operations in the same snapshot.  Retrying and discarding write,
 * and are in store-ops.c.
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>

#include "store/journal.h"
#include "store/store.h"
#include "util/macro.h"

/* The account's journal rows with failed = failed, in journal order. */
static int foreach_op(struct cpmsync_store *store, const char *account, bool failed,
		      cpmsync_failed_op_fn cb, void *userdata)
{
	struct store *s = store_call(store);
	bool known = false;
	sqlite3_stmt *st;
	int r;

	if (!s || !account || !cb)
		return -EINVAL;
	r = store_prepare(
		s,
		"SELECT j.id, coalesce(j.op, ''), coalesce(f.name, ''), coalesce(j.message_id, 0),"
		" coalesce(j.code, ''), coalesce(j.refused, ''), coalesce(j.tries, 0),"
		" coalesce(j.tried, 0), j.args,"
		" CASE WHEN j.failed = 0 AND coalesce(j.tries, 0) > 0"
		" THEN coalesce(j.retry_after, 0) ELSE 0 END"
		" FROM account a"
		" LEFT JOIN journal j ON j.account_id = a.id AND j.failed = ?2"
		" LEFT JOIN folder f ON f.id = j.folder_id"
		" WHERE a.name = ?1 ORDER BY j.id",
		&st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, failed);
	while ((r = store_step(s, st)) > 0) {
		int64_t message_id = sqlite3_column_int64(st, 3);
		const char *args = (const char *)sqlite3_column_text(st, 8);
		struct cpmsync_failed_op op;
		enum journal_op jop;

		known = true;
		if (sqlite3_column_type(st, 0) == SQLITE_NULL)
			continue;
		if (journal_op_from_string((const char *)sqlite3_column_text(st, 1), &jop) < 0)
			jop = _JOURNAL_OP_MAX;
		op = (struct cpmsync_failed_op){
			.id = sqlite3_column_int64(st, 0),
			.operation = journal_op_contract_name(jop, args),
			.folder = (const char *)sqlite3_column_text(st, 2),
			.message_ids = message_id ? &message_id : NULL,
			.n_message_ids = message_id ? 1 : 0,
			.code = (const char *)sqlite3_column_text(st, 4),
			.text = (const char *)sqlite3_column_text(st, 5),
			.tries = (uint32_t)sqlite3_column_int64(st, 6),
			.time = sqlite3_column_int64(st, 7),
			.next_try = sqlite3_column_int64(st, 9),
		};
		if (!op.operation) /* a name this version does not know */
			op.operation = (const char *)sqlite3_column_text(st, 1);
		/* The columns are never NULL (coalesce()): NULL is out of memory. */
		if (!op.operation || !op.folder || !op.code || !op.text) {
			sqlite3_reset(st);
			return -ENOMEM;
		}
		r = cb(&op, userdata);
		if (r < 0) {
			sqlite3_reset(st);
			return r;
		}
	}
	if (r < 0)
		return r;
	if (!known) {
		store_set_error(s, "account \"%s\" not found", account);
		return -CPMSYNC_E_NOT_FOUND;
	}
	return 0;
}

int cpmsync_store_foreach_failed(struct cpmsync_store *store, const char *account,
				 cpmsync_failed_op_fn cb, void *userdata)
{
	return foreach_op(store, account, true, cb, userdata);
}

/* The queued operations (failed = 0): what Account1.PendingOperations counts. */
int cpmsync_store_foreach_pending(struct cpmsync_store *store, const char *account,
				  cpmsync_failed_op_fn cb, void *userdata)
{
	return foreach_op(store, account, false, cb, userdata);
}

static int count_one(const struct cpmsync_failed_op *op, void *userdata)
{
	(void)op;
	(*(uint32_t *)userdata)++;
	return 0;
}

int cpmsync_store_in_flight_count(struct cpmsync_store *store, const char *account, uint32_t *ret)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !account || !ret)
		return -EINVAL;
	/* attempts: marked before the command leaves; refused: its NO (or
	 * BAD) was read, so it did not reach the server. */
	r = store_prepare(s,
			  "SELECT (SELECT count(*) FROM journal j WHERE j.account_id = a.id"
			  " AND j.failed = 0 AND j.attempts > 0 AND j.refused IS NULL)"
			  " FROM account a WHERE a.name = ?1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r <= 0) {
		if (r == 0) {
			store_set_error(s, "account \"%s\" not found", account);
			r = -CPMSYNC_E_NOT_FOUND;
		}
		return r;
	}
	*ret = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

int cpmsync_store_failed_count(struct cpmsync_store *store, const char *account, uint32_t *ret)
{
	uint32_t n = 0;
	int r;

	if (!ret)
		return -EINVAL;
	r = cpmsync_store_foreach_failed(store, account, count_one, &n);
	if (r < 0)
		return r;
	*ret = n;
	return 0;
}

/* An unsent change's argument (cpmsync/ops.h) from its args column:
 * *ret malloc()ed ("" for an operation without one), -ENOMEM. */
static int unsent_argument(enum journal_op op, const char *args, char **ret)
{
	_cleanup_(journal_args_free) struct journal_args a = { 0 };
	const char *x = "", *y = NULL;
	size_t n;
	int r;

	*ret = NULL;
	if (op == JOURNAL_OP_RENAME_FOLDER || op == JOURNAL_OP_SET_METADATA ||
	    op == JOURNAL_OP_SET_ACL) {
		r = journal_args_decode(op, args, &a, NULL);
		if (r == -ENOMEM)
			return r;
		if (r < 0) /* a row no version wrote: shown as it is */
			x = args ? args : "";
		else if (op == JOURNAL_OP_RENAME_FOLDER)
			x = a.rename.new_name;
		else if (op == JOURNAL_OP_SET_METADATA)
			x = a.metadata.entry, y = a.metadata.value;
		else
			x = a.acl.identifier, y = *a.acl.rights ? a.acl.rights : NULL;
	}
	n = strlen(x) + (y ? 1 + strlen(y) : 0) + 1;
	*ret = malloc(n);
	if (!*ret)
		return -ENOMEM;
	snprintf(*ret, n, "%s%s%s", x, y ? " " : "", y ? y : "");
	return 0;
}

/* The folder (*ret_folder, malloc()ed) and UID of a copy's or move's
 * source (args: its row); *ret_folder stays NULL when it is not known. */
static int unsent_source(struct store *s, const char *args, char **ret_folder, uint32_t *ret_uid)
{
	_cleanup_(journal_args_free) struct journal_args a = { 0 };
	sqlite3_stmt *st;
	int r;

	r = journal_args_decode(JOURNAL_OP_COPY, args, &a, NULL);
	if (r < 0)
		return r == -ENOMEM ? r : 0; /* not said: the rest still is */
	r = store_prepare(s,
			  "SELECT f.name, coalesce(m.uid, 0) FROM message m"
			  " JOIN folder f ON f.id = m.folder_id WHERE m.id = ?1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, a.copy.src_id);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	*ret_folder = strdup((const char *)sqlite3_column_text(st, 0));
	*ret_uid = (uint32_t)sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	return *ret_folder ? 0 : -ENOMEM;
}

/* A row of cpmsync_store_foreach_unsent(), its strings its own. */
struct unsent_row {
	struct cpmsync_unsent_change c;
	char *strs[10];
};

/* The text columns of the statement below, in strs[] order. */
static const int unsent_text_cols[] = { 1, 3, 6, 7, 8, 9, 14, 15 };

int cpmsync_store_foreach_unsent(struct cpmsync_store *store, const char *account,
				 cpmsync_unsent_change_fn cb, void *userdata)
{
	struct store *s = store_call(store);
	struct unsent_row *rows = NULL;
	bool known = false, own;
	sqlite3_stmt *st;
	size_t n = 0;
	int r;

	if (!s || !account || !cb)
		return -EINVAL;
	r = store_read_begin(s, &own);
	if (r < 0)
		return r;
	r = store_prepare(
		s,
		"SELECT j.id, coalesce(j.op, ''), j.args, coalesce(f.name, ''),"
		" coalesce(j.message_id, 0), coalesce(m.uid, 0), coalesce(m.message_id, ''),"
		" coalesce(sm.subject, ''), coalesce(ms.flags, ''), coalesce(ms.server_flags, ''),"
		" coalesce(m.internaldate, 0),"
		" coalesce(m.has_body AND m.removed = 0 AND mf.removed = 0, 0),"
		" j.failed, j.failed = 0 AND j.attempts > 0 AND j.refused IS NULL,"
		" coalesce(j.code, ''), coalesce(j.refused, '')"
		" FROM account a"
		" LEFT JOIN journal j ON j.account_id = a.id"
		" LEFT JOIN folder f ON f.id = j.folder_id"
		" LEFT JOIN message m ON m.id = j.message_id"
		" LEFT JOIN folder mf ON mf.id = m.folder_id"
		" LEFT JOIN summary sm ON sm.id = m.id"
		" LEFT JOIN message_state ms ON ms.id = m.id"
		" WHERE a.name = ?1 ORDER BY j.id",
		&st);
	if (r < 0)
		return store_read_end(s, own, r);
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	/* Collected first, the snapshot ended: the callback may read the
	 * store (a body) or take its time (writing it out). */
	while ((r = store_step(s, st)) > 0) {
		const char *args = (const char *)sqlite3_column_text(st, 2);
		struct unsent_row *row, *grown;
		enum journal_op jop;

		known = true;
		if (sqlite3_column_type(st, 0) == SQLITE_NULL)
			continue;
		grown = realloc(rows, (n + 1) * sizeof(*rows));
		if (!grown) {
			r = -ENOMEM;
			break;
		}
		rows = grown;
		row = &rows[n++];
		*row = (struct unsent_row){ 0 };
		if (journal_op_from_string((const char *)sqlite3_column_text(st, 1), &jop) < 0)
			jop = _JOURNAL_OP_MAX;
		/* Every text column is coalesce()d: NULL is out of memory. */
		for (size_t i = 0; i < ARRAY_SIZE(unsent_text_cols); i++) {
			const char *v = (const char *)sqlite3_column_text(st, unsent_text_cols[i]);

			row->strs[i] = v ? strdup(v) : NULL;
			if (!row->strs[i])
				r = -ENOMEM;
		}
		/* The contract's name, unless this version does not know it. */
		if (r >= 0 && journal_op_contract_name(jop, args)) {
			free(row->strs[0]);
			row->strs[0] = strdup(journal_op_contract_name(jop, args));
			if (!row->strs[0])
				r = -ENOMEM;
		}
		if (r >= 0)
			r = unsent_argument(jop, args, &row->strs[8]);
		if (r >= 0 && (jop == JOURNAL_OP_COPY || jop == JOURNAL_OP_MOVE))
			r = unsent_source(s, args, &row->strs[9], &row->c.source_uid);
		if (r < 0) {
			sqlite3_reset(st);
			break;
		}
		row->c.id = sqlite3_column_int64(st, 0);
		row->c.message_id = sqlite3_column_int64(st, 4);
		row->c.uid = (uint32_t)sqlite3_column_int64(st, 5);
		row->c.internaldate = sqlite3_column_int64(st, 10);
		row->c.has_body = sqlite3_column_int(st, 11) != 0;
		row->c.failed = sqlite3_column_int(st, 12) != 0;
		row->c.in_flight = sqlite3_column_int(st, 13) != 0;
	}
	r = store_read_end(s, own, r);
	if (r >= 0 && !known) {
		store_set_error(s, "account \"%s\" not found", account);
		r = -CPMSYNC_E_NOT_FOUND;
	}
	for (size_t i = 0; i < n; i++) {
		struct unsent_row *row = &rows[i];

		if (r >= 0) {
			row->c.operation = row->strs[0];
			row->c.folder = row->strs[1];
			row->c.message_id_header = row->strs[2];
			row->c.subject = row->strs[3];
			row->c.flags = row->strs[4];
			row->c.server_flags = row->strs[5];
			row->c.code = row->strs[6];
			row->c.text = row->strs[7];
			row->c.argument = row->strs[8];
			row->c.source_folder = row->strs[9] ? row->strs[9] : "";
			r = cb(&row->c, userdata);
		}
		for (size_t k = 0; k < ARRAY_SIZE(row->strs); k++)
			free(row->strs[k]);
	}
	free(rows);
	return r;
}
