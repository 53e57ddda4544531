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
#include <stdlib.h>

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
