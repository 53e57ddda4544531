/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The SQL functions the store's statements use, registered on every
 * connection before anything runs (store_register_functions()):
 *
 *  cpmsync_redecode(field, value): msg_summary_redecode(), for migration
 *    29 (the summaries' From, To and Subject of older parsers).
 */
#include <sqlite3.h>

#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/msg-summary.h"

static void redecode(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *field = (const char *)sqlite3_value_text(argv[0]);
	const char *value = (const char *)sqlite3_value_text(argv[1]);
	char *out;

	(void)argc;
	if (!field || !value) {
		sqlite3_result_value(ctx, argv[1]);
		return;
	}
	if (msg_summary_redecode(field, value, &out) < 0) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	sqlite3_result_text(ctx, out, -1, free);
}

int store_register_functions(sqlite3 *db)
{
	const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;

	return sqlite3_create_function_v2(db, "cpmsync_redecode", 2, flags, NULL, redecode, NULL,
					  NULL, NULL);
}
