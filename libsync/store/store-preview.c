/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The preview cache (cpmsync/preview.h; table preview, store-schema.c
 * version 8).  A message removed locally (pending on the server) has no
 * previews to read; its rows go with the message row.
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>
#include <cpmsync/preview.h>

#include "store/store.h"

static int key_check(const char *section, const char *format, uint32_t width, uint32_t height)
{
	if (!section || !format || !*format || width < 1 || height < 1)
		return -EINVAL;
	return 0;
}

int cpmsync_store_preview_get(struct cpmsync_store *store, int64_t message_id, const char *section,
			      const char *format, uint32_t width, uint32_t height, void **ret_data,
			      size_t *ret_len)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !ret_data || !ret_len || key_check(section, format, width, height) < 0)
		return -EINVAL;
	store_clear_error(s);
	r = store_prepare(s,
			  "SELECT p.content FROM preview p JOIN message m ON m.id = p.message_id"
			  " WHERE p.message_id = ?1 AND p.section = ?2 AND p.format = ?3"
			  " AND p.width = ?4 AND p.height = ?5 AND m.removed = 0",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	sqlite3_bind_text(st, 2, section, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, format, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, width);
	sqlite3_bind_int64(st, 5, height);
	r = store_step(s, st);
	if (r == 0) {
		store_set_error(s, "no cached preview");
		return -CPMSYNC_E_NOT_FOUND;
	}
	if (r > 0) {
		const void *blob = sqlite3_column_blob(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 0);
		void *copy = malloc(len ? len : 1);

		if (!copy) {
			r = -ENOMEM;
		} else {
			if (len)
				memcpy(copy, blob, len);
			*ret_data = copy;
			*ret_len = len;
			r = 0;
		}
		sqlite3_reset(st);
	}
	return r;
}

int cpmsync_store_preview_put(struct cpmsync_store *store, int64_t message_id, const char *section,
			      const char *format, uint32_t width, uint32_t height, const void *data,
			      size_t len)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r;

	if (!s || (!data && len) || key_check(section, format, width, height) < 0)
		return -EINVAL;
	if (len > CPMSYNC_PREVIEW_MAX_CACHED)
		return -EFBIG;
	store_clear_error(s);
	r = store_begin(s);
	if (r < 0)
		return r;
	r = store_prepare(
		s,
		"INSERT OR REPLACE INTO preview"
		" (message_id, section, format, width, height, content)"
		" SELECT id, ?2, ?3, ?4, ?5, ?6 FROM message WHERE id = ?1 AND removed = 0",
		&st);
	if (r >= 0) {
		sqlite3_bind_int64(st, 1, message_id);
		sqlite3_bind_text(st, 2, section, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, format, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, width);
		sqlite3_bind_int64(st, 5, height);
		sqlite3_bind_blob(st, 6, data ? data : "", (int)len, SQLITE_STATIC);
		r = store_step_done(s, st);
	}
	if (r >= 0 && sqlite3_changes(store_db(s)) == 0) {
		store_set_error(s, "no message with id %lld", (long long)message_id);
		r = -CPMSYNC_E_NOT_FOUND;
	}
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	return store_commit(s);
}
