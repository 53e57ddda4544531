/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The read API of cpmsync/store.h: what the daemon's D-Bus side, cpmctl
 * and other local readers see.  Every walk is one SELECT, so it reads one
 * consistent snapshot (WAL) while the daemon writes, and rows are handed
 * to the callback as they come: memory stays flat whatever the size.
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "util/buf.h"
#include "util/macro.h"

static const char *text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

/* Steps st, calling row() per row; a non-zero row() result stops. */
static int walk(struct store *s, sqlite3_stmt *st, int (*row)(sqlite3_stmt *, void *),
		void *userdata)
{
	int r;

	while ((r = store_step(s, st)) > 0) {
		r = row(st, userdata);
		if (r != 0) {
			sqlite3_reset(st);
			return r;
		}
	}
	return r;
}

int cpmsync_store_foreach_account(struct cpmsync_store *store, cpmsync_account_fn fn,
				  void *userdata)
{
	struct store *s = store_from_public(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !fn)
		return -EINVAL;
	r = store_prepare(s, "SELECT name FROM account ORDER BY name", &st);
	if (r < 0)
		return r;
	while ((r = store_step(s, st)) > 0) {
		r = fn(text(st, 0), userdata);
		if (r != 0) {
			sqlite3_reset(st);
			return r;
		}
	}
	return r;
}

/* The folder columns, in the order folder_row() reads them. */
#define FOLDER_COLUMNS                                                                         \
	"f.id, a.name, f.name, f.uidvalidity, f.uidnext, f.highestmodseq, f.special_use,"      \
	" f.subscribed, f.server_name IS NOT NULL,"                                            \
	" (SELECT count(*) FROM message m WHERE m.folder_id = f.id AND m.removed = 0),"        \
	" (SELECT count(*) FROM message m WHERE m.folder_id = f.id AND m.removed = 0"          \
	"  AND instr(' ' || m.flags || ' ', ' \\Seen ') = 0)"                                  \
	" FROM folder f JOIN account a ON a.id = f.account_id"

struct folder_walk {
	cpmsync_folder_fn fn;
	void *userdata;
};

static int folder_row(sqlite3_stmt *st, void *userdata)
{
	struct folder_walk *w = userdata;
	struct cpmsync_folder_info fi = {
		.id = sqlite3_column_int64(st, 0),
		.account = text(st, 1),
		.name = text(st, 2),
		.uidvalidity = (uint32_t)sqlite3_column_int64(st, 3),
		.uidnext = (uint32_t)sqlite3_column_int64(st, 4),
		.highestmodseq = (uint64_t)sqlite3_column_int64(st, 5),
		.special_use = sqlite3_column_type(st, 6) == SQLITE_NULL ? NULL : text(st, 6),
		.subscribed = sqlite3_column_int(st, 7) != 0,
		.on_server = sqlite3_column_int(st, 8) != 0,
		.messages = (uint32_t)sqlite3_column_int64(st, 9),
		.unseen = (uint32_t)sqlite3_column_int64(st, 10),
	};

	return w->fn(&fi, w->userdata);
}

int cpmsync_store_foreach_folder(struct cpmsync_store *store, const char *account,
				 cpmsync_folder_fn fn, void *userdata)
{
	struct store *s = store_from_public(store);
	struct folder_walk w = { fn, userdata };
	sqlite3_stmt *st;
	int r;

	if (!s || !account || !fn)
		return -EINVAL;
	r = store_prepare(s,
			  "SELECT " FOLDER_COLUMNS " WHERE a.name = ?1 AND f.removed = 0"
			  " ORDER BY f.name",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	return walk(s, st, folder_row, &w);
}

int cpmsync_store_get_folder(struct cpmsync_store *store, int64_t folder_id, cpmsync_folder_fn fn,
			     void *userdata)
{
	struct store *s = store_from_public(store);
	struct folder_walk w = { fn, userdata };
	sqlite3_stmt *st;
	int r;

	if (!s || !fn)
		return -EINVAL;
	r = store_prepare(s, "SELECT " FOLDER_COLUMNS " WHERE f.id = ?1 AND f.removed = 0", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "no folder with id %lld", (long long)folder_id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	r = folder_row(st, &w);
	sqlite3_reset(st);
	return r;
}

int cpmsync_store_find_folder(struct cpmsync_store *store, const char *account, const char *name,
			      int64_t *ret_folder_id)
{
	struct store *s = store_from_public(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !account || !name || !ret_folder_id)
		return -EINVAL;
	r = store_prepare(s,
			  "SELECT f.id FROM folder f JOIN account a ON a.id = f.account_id"
			  " WHERE a.name = ?1 AND f.removed = 0"
			  " AND (f.name = ?2 OR (upper(?2) = 'INBOX' AND upper(f.name) = 'INBOX'))",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "account '%s' has no folder '%s'", account, name);
		return -CPMSYNC_E_NOT_FOUND;
	}
	*ret_folder_id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

#define MESSAGE_COLUMNS                                                                        \
	"m.id, m.folder_id, coalesce(m.uid, 0), m.flags, m.internaldate, m.size, m.from_addr,"  \
	" m.to_addrs, m.subject, m.date, m.message_id, m.conversation_id, m.contribution_id,"  \
	" m.imdn_message_id, m.type, EXISTS (SELECT 1 FROM body b WHERE b.message_id = m.id)" \
	" FROM message m JOIN folder f ON f.id = m.folder_id"

struct message_walk {
	cpmsync_message_fn fn;
	void *userdata;
};

static int message_row(sqlite3_stmt *st, void *userdata)
{
	struct message_walk *w = userdata;
	struct cpmsync_message_info mi = {
		.id = sqlite3_column_int64(st, 0),
		.folder_id = sqlite3_column_int64(st, 1),
		.uid = (uint32_t)sqlite3_column_int64(st, 2),
		.flags = text(st, 3),
		.internaldate = sqlite3_column_int64(st, 4),
		.size = (uint64_t)sqlite3_column_int64(st, 5),
		.from = text(st, 6),
		.to = text(st, 7),
		.subject = text(st, 8),
		.date = sqlite3_column_int64(st, 9),
		.message_id = text(st, 10),
		.conversation_id = text(st, 11),
		.contribution_id = text(st, 12),
		.imdn_message_id = text(st, 13),
		.type = sqlite3_column_type(st, 14) == SQLITE_NULL ? "message" : text(st, 14),
		.has_body = sqlite3_column_int(st, 15) != 0,
	};

	return w->fn(&mi, w->userdata);
}

int cpmsync_store_foreach_message(struct cpmsync_store *store, int64_t folder_id, int64_t after_id,
				  uint32_t limit, cpmsync_message_fn fn, void *userdata)
{
	struct store *s = store_from_public(store);
	struct message_walk w = { fn, userdata };
	sqlite3_stmt *st;
	int r;

	if (!s || !fn)
		return -EINVAL;
	r = store_prepare(s,
			  "SELECT " MESSAGE_COLUMNS " WHERE m.folder_id = ?1 AND m.id > ?2"
			  " AND m.removed = 0 AND f.removed = 0 ORDER BY m.id LIMIT ?3",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, after_id);
	sqlite3_bind_int64(st, 3, limit ? (sqlite3_int64)limit : -1);
	return walk(s, st, message_row, &w);
}

int cpmsync_store_get_message(struct cpmsync_store *store, int64_t message_id,
			      cpmsync_message_fn fn, void *userdata)
{
	struct store *s = store_from_public(store);
	struct message_walk w = { fn, userdata };
	sqlite3_stmt *st;
	int r;

	if (!s || !fn)
		return -EINVAL;
	r = store_prepare(s, "SELECT " MESSAGE_COLUMNS " WHERE m.id = ?1 AND m.removed = 0"
			     " AND f.removed = 0",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "no message with id %lld", (long long)message_id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	r = message_row(st, &w);
	sqlite3_reset(st);
	return r;
}

int cpmsync_store_read_body(struct cpmsync_store *store, int64_t message_id, int fd)
{
	struct store *s = store_from_public(store);

	if (!s)
		return -EINVAL;
	return store_body_read_fd(s, message_id, fd);
}

/* Appends v to b with TAB and newline replaced by a space, so that a
 * header value cannot break the line format. */
static int append_field(struct buf *b, const char *v)
{
	int r = 0;

	for (const char *p = v; r >= 0 && *p; p++)
		r = buf_append_char(b, *p == '\t' || *p == '\n' || *p == '\r' ? ' ' : *p);
	return r;
}

/* Appends the flags without \Recent (never stored; defence in depth). */
static int append_flags(struct buf *b, const char *flags)
{
	bool first = true;
	const char *p = flags;
	int r = 0;

	while (r >= 0 && *p) {
		const char *e = strchr(p, ' ');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len && !(len == 7 && strncmp(p, "\\Recent", 7) == 0)) {
			if (!first)
				r = buf_append_char(b, ' ');
			if (r >= 0)
				r = buf_append(b, p, len);
			first = false;
		}
		p += len;
		while (*p == ' ')
			p++;
	}
	return r;
}

int cpmsync_store_dump(struct cpmsync_store *store, const char *account, const char *folder,
		       cpmsync_line_fn fn, void *userdata)
{
	struct store *s = store_from_public(store);
	struct buf line = BUF_INIT(64 * 1024);
	sqlite3_stmt *st;
	int r;

	if (!s || !fn || (folder && !account))
		return -EINVAL;
	/* One statement: one snapshot.  Bytewise order is SQLite's BINARY
	 * collation on UTF-8 text; messages not on the server (uid NULL)
	 * come first in each folder, in id order. */
	r = store_prepare(s,
			  "SELECT a.name, f.name, coalesce(m.uid, 0), m.flags,"
			  " coalesce(m.message_id, '')"
			  " FROM message m JOIN folder f ON f.id = m.folder_id"
			  " JOIN account a ON a.id = f.account_id"
			  " WHERE m.removed = 0 AND f.removed = 0"
			  " AND (?1 IS NULL OR a.name = ?1) AND (?2 IS NULL OR f.name = ?2)"
			  " ORDER BY a.name, f.name, coalesce(m.uid, 0), m.id",
			  &st);
	if (r < 0)
		return r;
	if (account)
		sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	if (folder)
		sqlite3_bind_text(st, 2, folder, -1, SQLITE_TRANSIENT);
	while ((r = store_step(s, st)) > 0) {
		buf_reset(&line);
		r = append_field(&line, text(st, 0));
		if (r >= 0)
			r = buf_append_char(&line, '\t');
		if (r >= 0)
			r = append_field(&line, text(st, 1));
		if (r >= 0)
			r = buf_printf(&line, "\t%lld\t", (long long)sqlite3_column_int64(st, 2));
		if (r >= 0)
			r = append_flags(&line, text(st, 3));
		if (r >= 0)
			r = buf_append_char(&line, '\t');
		if (r >= 0)
			r = append_field(&line, text(st, 4));
		if (r >= 0)
			r = buf_append_char(&line, '\n');
		if (r >= 0)
			r = fn(line.data, line.len, userdata);
		if (r != 0) {
			sqlite3_reset(st);
			break;
		}
	}
	buf_free(&line);
	return r;
}

int cpmsync_store_pending_operations(struct cpmsync_store *store, const char *account,
				     uint32_t *ret_count)
{
	struct store *s = store_from_public(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !ret_count)
		return -EINVAL;
	r = store_prepare(s,
			  "SELECT count(*) FROM journal j JOIN account a ON a.id = j.account_id"
			  " WHERE ?1 IS NULL OR a.name = ?1",
			  &st);
	if (r < 0)
		return r;
	if (account)
		sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -EIO;
	*ret_count = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}
