/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The SQL functions the store's statements use, registered on every
 * connection before anything runs (store_register_functions()):
 *
 *  cpmsync_contains(haystack, needle): 1 when haystack, folded to Unicode
 *    simple case folding (util/casefold.h), contains needle (already
 *    folded by the caller), else 0; NULL for a NULL haystack.  The
 *    offline search's "in any case" (store-search.c), which SQLite's
 *    lower() gives for ASCII only.
 *  cpmsync_redecode(field, value): msg_summary_redecode(), for migration
 *    29 (the summaries' From, To and Subject of older parsers).
 */
#include <sqlite3.h>

#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/casefold.h"
#include "util/msg-summary.h"

/* Folded haystacks up to this size are folded on the stack. */
#define CONTAINS_STACK 8192

static void contains(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *h = (const char *)sqlite3_value_text(argv[0]);
	const char *nd = (const char *)sqlite3_value_text(argv[1]);
	size_t hn, nn, used, len;
	char stack[CONTAINS_STACK], *f = stack;

	(void)argc;
	if (!h || !nd) {
		sqlite3_result_null(ctx);
		return;
	}
	hn = (size_t)sqlite3_value_bytes(argv[0]);
	nn = (size_t)sqlite3_value_bytes(argv[1]);
	if (nn == 0) {
		sqlite3_result_int(ctx, 1);
		return;
	}
	if (CASEFOLD_SIZE(hn) > sizeof(stack)) {
		f = malloc(CASEFOLD_SIZE(hn));
		if (!f) {
			sqlite3_result_error_nomem(ctx);
			return;
		}
	}
	used = casefold_utf8(h, hn, true, f, &len);
	(void)used;
	sqlite3_result_int(ctx, memmem(f, len, nd, nn) != NULL);
	if (f != stack)
		free(f);
}

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
	int rc;

	rc = sqlite3_create_function_v2(db, "cpmsync_contains", 2, flags, NULL, contains, NULL,
					NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_create_function_v2(db, "cpmsync_redecode", 2, flags, NULL, redecode,
						NULL, NULL, NULL);
	return rc;
}
