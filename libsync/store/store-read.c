/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The read API of cpmsync/store.h: what the daemon's D-Bus side, cpmctl
 * and other local readers see.
 *
 * Consistency: every walk is one SELECT, so it reads one snapshot (WAL)
 * while the daemon writes, and the rows are handed to the callback as
 * SQLite produces them: memory stays flat whatever the size of the store.
 * Where a walk must also tell "empty" from "unknown" (an account without
 * folders, a folder without messages), the same statement LEFT JOINs
 * from the parent row, so that the answer comes from the same snapshot;
 * the rows without a child are not passed on.  The one read made of
 * several statements (read_body) runs in a deferred read transaction.
 *
 * Visibility: a folder with removed = 1 and a message with removed = 1
 * (deleted locally, server side pending) are never shown, nor are the
 * messages of a removed folder.
 *
 * Callbacks may call other functions of this file on the same store, but
 * not the walk that is calling them (its statement is cached on the
 * store: preparing it again would reset the running walk).
 *
 * Beyond what cpmsync/store.h spells out, and documented here:
 *  - foreach_folder on an account that is not in the store, and
 *    foreach_message on a folder that is not visible, return
 *    -CPMSYNC_E_NOT_FOUND (an empty account or folder is 0 with no
 *    callback), so that callers can tell a typo from an empty folder.
 *  - dump returns -CPMSYNC_E_NOT_FOUND, having given no line, when the
 *    account (or the folder in it) is not in the store.  An account is
 *    known when it has a row in the store, even with no folder or message.
 *  - pending_operations of an account that is not in the store is
 *    -CPMSYNC_E_NOT_FOUND (not 0), for the same reason.
 *  - Folder names given by the caller follow IMAP: INBOX in any case is
 *    the INBOX (the store keeps it as "INBOX", see store-ops.c).
 *  - dump replaces TAB, CR, LF and NUL inside a field (a Message-ID header
 *    value, a folder name) with a space: a line is always exactly five
 *    TAB-separated fields ended by one LF.
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/error.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "util/buf.h"
#include "util/macro.h"

/* A text column; NULL reads as "". */
static const char *text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

/* A text column that may be absent: NULL (and "") read as NULL. */
static const char *text_or_null(sqlite3_stmt *st, int i)
{
	const char *t = text(st, i);

	return *t ? t : NULL;
}

int store_col_strdup(sqlite3_stmt *st, int i, char **ret)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	*ret = NULL;
	/* sqlite3_column_text() too returns NULL when it runs out of memory. */
	if (!t)
		return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : -ENOMEM;
	*ret = strdup((const char *)t);
	return *ret ? 0 : -ENOMEM;
}

static uint32_t column_u32(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* INBOX is case-insensitive in IMAP; the store keeps it as "INBOX". */
static const char *canonical_folder(const char *name)
{
	return strcasecmp(name, "INBOX") == 0 ? "INBOX" : name;
}

/*
 * Ends a walk that a callback stopped: the statement is reset so that it
 * holds no read snapshot, and the callback's value is returned.
 */
static int stop_walk(sqlite3_stmt *st, int r)
{
	sqlite3_reset(st);
	return r;
}

int cpmsync_store_foreach_account(struct cpmsync_store *store, cpmsync_account_fn fn,
				  void *userdata)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !fn)
		return -EINVAL;
	r = store_prepare(s, "SELECT name FROM account ORDER BY name", &st);
	if (r < 0)
		return r;
	while ((r = store_step(s, st)) > 0) {
		r = fn(text(st, 0), userdata);
		if (r != 0)
			return stop_walk(st, r);
	}
	return r;
}

/*
 * The columns of a folder, in the order folder_from_row() reads them;
 * f is the folder and a its account.  unseen: the flags are a sorted,
 * space-separated set (util/flags.h), so " \Seen " inside " flags " is an
 * exact test (instr() has no wildcards, unlike LIKE; SQL string literals
 * have no backslash escapes).
 */
#define FOLDER_COLUMNS                                                                             \
	"f.id, a.name, f.name, f.uidvalidity, f.uidnext, f.highestmodseq, f.special_use,"          \
	" f.subscribed, f.server_name IS NOT NULL,"                                                \
	" (SELECT count(*) FROM message m WHERE m.folder_id = f.id AND m.removed = 0),"            \
	" (SELECT count(*) FROM message m JOIN message_state ms ON ms.id = m.id"                   \
	"  WHERE m.folder_id = f.id AND m.removed = 0"                                             \
	"  AND instr(' ' || ms.flags || ' ', ' \\Seen ') = 0)"

static int folder_from_row(sqlite3_stmt *st, cpmsync_folder_fn fn, void *userdata)
{
	struct cpmsync_folder_info fi = {
		.id = sqlite3_column_int64(st, 0),
		.account = text(st, 1),
		.name = text(st, 2),
		.uidvalidity = column_u32(st, 3),
		.uidnext = column_u32(st, 4),
		.highestmodseq = (uint64_t)sqlite3_column_int64(st, 5),
		.special_use = text_or_null(st, 6),
		.subscribed = sqlite3_column_int(st, 7) != 0,
		.on_server = sqlite3_column_int(st, 8) != 0,
		.messages = column_u32(st, 9),
		.unseen = column_u32(st, 10),
	};

	return fn(&fi, userdata);
}

int cpmsync_store_foreach_folder(struct cpmsync_store *store, const char *account,
				 cpmsync_folder_fn fn, void *userdata)
{
	struct store *s = store_call(store);
	bool account_seen = false;
	sqlite3_stmt *st;
	int r;

	if (!s || !account || !fn)
		return -EINVAL;
	/* From the account, so that an account without folders gives one
	 * row with f.id NULL: known, but empty. */
	r = store_prepare(
		s,
		"SELECT " FOLDER_COLUMNS
		" FROM account a LEFT JOIN folder f ON f.account_id = a.id AND f.removed = 0"
		" WHERE a.name = ?1 ORDER BY f.name",
		&st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	while ((r = store_step(s, st)) > 0) {
		account_seen = true;
		if (sqlite3_column_type(st, 0) == SQLITE_NULL)
			continue;
		r = folder_from_row(st, fn, userdata);
		if (r != 0)
			return stop_walk(st, r);
	}
	if (r == 0 && !account_seen) {
		store_set_error(s, "unknown account '%s'", account);
		return -CPMSYNC_E_NOT_FOUND;
	}
	return r;
}

int cpmsync_store_get_folder(struct cpmsync_store *store, int64_t folder_id, cpmsync_folder_fn fn,
			     void *userdata)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !fn)
		return -EINVAL;
	r = store_row_by_id(s,
			    "SELECT " FOLDER_COLUMNS
			    " FROM folder f JOIN account a ON a.id = f.account_id"
			    " WHERE f.id = ?1 AND f.removed = 0",
			    folder_id, "folder", &st);
	if (r < 0)
		return r;
	r = folder_from_row(st, fn, userdata);
	return stop_walk(st, r);
}

int cpmsync_store_find_folder(struct cpmsync_store *store, const char *account, const char *name,
			      int64_t *ret_folder_id)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !account || !name || !ret_folder_id)
		return -EINVAL;
	r = store_prepare(
		s,
		"SELECT a.id, f.id FROM account a"
		" LEFT JOIN folder f ON f.account_id = a.id AND f.name = ?2 AND f.removed = 0"
		" WHERE a.name = ?1",
		&st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, canonical_folder(name), -1, SQLITE_TRANSIENT);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "unknown account '%s'", account);
		return -CPMSYNC_E_NOT_FOUND;
	}
	if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
		store_set_error(s, "account '%s' has no folder '%s'", account, name);
		return stop_walk(st, -CPMSYNC_E_NOT_FOUND);
	}
	*ret_folder_id = sqlite3_column_int64(st, 1);
	return stop_walk(st, 0);
}

void store_message_info_at(sqlite3_stmt *st, int b, struct cpmsync_message_info *mi)
{
	const char *type = text_or_null(st, b + 14);

	*mi = (struct cpmsync_message_info){
		.id = sqlite3_column_int64(st, b + 0),
		.folder_id = sqlite3_column_int64(st, b + 1),
		.uid = column_u32(st, b + 2), /* NULL: not on the server, 0 */
		.flags = text(st, b + 3),
		.internaldate = sqlite3_column_int64(st, b + 4),
		.size = (uint64_t)sqlite3_column_int64(st, b + 5),
		.from = text(st, b + 6),
		.to = text(st, b + 7),
		.subject = text(st, b + 8),
		.date = sqlite3_column_int64(st, b + 9),
		.message_id = text(st, b + 10),
		.conversation_id = text(st, b + 11),
		.contribution_id = text(st, b + 12),
		.imdn_message_id = text(st, b + 13),
		.type = type ? type : "message",
		.has_body = sqlite3_column_int(st, b + 15) != 0,
		.direction = text(st, b + 16),
		.context = text(st, b + 17),
		.in_reply_to = text(st, b + 18),
		.status = text(st, b + 19),
		.snippet = text(st, b + 20),
		.peer = text(st, b + 21),
		.imdn_ref = text(st, b + 22),
	};
}

int store_message_from_row(sqlite3_stmt *st, cpmsync_message_fn fn, void *userdata)
{
	struct cpmsync_message_info mi;

	store_message_info_at(st, 0, &mi);
	return fn(&mi, userdata);
}

int cpmsync_store_foreach_message(struct cpmsync_store *store, int64_t folder_id, int64_t after_id,
				  uint32_t limit, cpmsync_message_fn fn, void *userdata)
{
	struct store *s = store_call(store);
	bool folder_seen = false;
	sqlite3_stmt *st;
	int r;

	if (!s || !fn)
		return -EINVAL;
	/*
	 * From the folder, so that a visible folder without (more) messages
	 * gives one row with m.id NULL.  That row sorts first (NULL is
	 * smallest) and is alone then, so it never takes the place of a
	 * message within the limit.
	 */
	r = store_prepare(s,
			  "SELECT " STORE_MESSAGE_COLUMNS " FROM folder f"
			  " LEFT JOIN message m ON m.folder_id = f.id AND m.removed = 0 AND m.id > "
			  "?2" STORE_MESSAGE_JOINS
			  " WHERE f.id = ?1 AND f.removed = 0 ORDER BY m.id LIMIT ?3",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, after_id);
	sqlite3_bind_int64(st, 3, limit ? (sqlite3_int64)limit : -1); /* -1: no limit */
	while ((r = store_step(s, st)) > 0) {
		folder_seen = true;
		if (sqlite3_column_type(st, 0) == SQLITE_NULL)
			continue;
		r = store_message_from_row(st, fn, userdata);
		if (r != 0)
			return stop_walk(st, r);
	}
	if (r == 0 && !folder_seen) {
		store_set_error(s, "no folder with id %lld", (long long)folder_id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	return r;
}

int cpmsync_store_get_message(struct cpmsync_store *store, int64_t message_id,
			      cpmsync_message_fn fn, void *userdata)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !fn)
		return -EINVAL;
	r = store_row_by_id(s, STORE_LIVE_MESSAGE_SQL(STORE_MESSAGE_COLUMNS, STORE_MESSAGE_JOINS),
			    message_id, "message", &st);
	if (r < 0)
		return r;
	r = store_message_from_row(st, fn, userdata);
	return stop_walk(st, r);
}

int cpmsync_store_read_body(struct cpmsync_store *store, int64_t message_id, int fd)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	bool own;
	int r;

	if (!s || fd < 0)
		return -EINVAL;
	r = store_read_begin(s, &own);
	if (r < 0)
		return r;
	/* A removed message is not visible, even though its body is still
	 * stored until the server side is done. */
	r = store_row_by_id(s, STORE_LIVE_MESSAGE_SQL("1", ""), message_id, "message", &st);
	if (r > 0) {
		sqlite3_reset(st);
		r = store_body_read_fd(s, message_id, fd);
	}
	return store_read_end(s, own, r);
}

/* Appends a field, with TAB, CR, LF and NUL replaced by a space so that no
 * value can break the line format. */
static int append_field(struct buf *b, sqlite3_stmt *st, int i)
{
	const char *v = text(st, i);
	int n = sqlite3_column_bytes(st, i); /* after text(): the text's length */
	size_t start = b->len;
	int r;

	r = buf_append(b, v, (size_t)n);
	if (r < 0)
		return r;
	for (size_t k = start; k < b->len; k++) {
		char c = b->data[k];

		if (c == '\t' || c == '\n' || c == '\r' || c == '\0')
			b->data[k] = ' ';
	}
	return 0;
}

/* Appends the flag set without \Recent: the contract never lists it, and
 * the store should never hold it (util/flags.h); defence in depth. */
static int append_flags(struct buf *b, const char *flags)
{
	bool first = true;
	const char *p = flags;
	int r = 0;

	while (r >= 0 && *p) {
		size_t len = strcspn(p, " ");

		if (len && !(len == 7 && strncasecmp(p, "\\Recent", 7) == 0)) {
			if (!first)
				r = buf_append_char(b, ' ');
			if (r >= 0)
				r = buf_append(b, p, len);
			first = false;
		}
		p += len;
		p += strspn(p, " ");
	}
	return r;
}

static int dump_line(struct buf *line, sqlite3_stmt *st)
{
	int r;

	buf_reset(line);
	r = append_field(line, st, 0);
	if (r >= 0)
		r = buf_append_char(line, '\t');
	if (r >= 0)
		r = append_field(line, st, 1);
	/* NULL uid (not on the server): 0. */
	if (r >= 0)
		r = buf_printf(line, "\t%lld\t", (long long)sqlite3_column_int64(st, 3));
	if (r >= 0)
		r = append_flags(line, text(st, 4));
	if (r >= 0)
		r = buf_append_char(line, '\t');
	if (r >= 0)
		r = append_field(line, st, 5);
	if (r >= 0)
		r = buf_append_char(line, '\n');
	return r;
}

int cpmsync_store_dump(struct cpmsync_store *store, const char *account, const char *folder,
		       cpmsync_line_fn fn, void *userdata)
{
	struct store *s = store_call(store);
	/* No practical line limit: the buffer grows to the longest line. */
	_cleanup_buf_ struct buf line = BUF_INIT(SIZE_MAX / 2);
	bool account_seen = false, folder_seen = false;
	sqlite3_stmt *st;
	int r;

	if (!s || !fn || (folder && !account))
		return -EINVAL;
	/*
	 * One statement, one snapshot.  Bytewise order is SQLite's BINARY
	 * collation of UTF-8 text.  Within a folder m.uid ascending puts
	 * NULL (not on the server) first, and m.id breaks the tie; the
	 * unique index (folder_id, uid) holds exactly that order (an index
	 * ends with the rowid), as do account(name) and folder(account_id,
	 * name), so SQLite walks the indexes and sorts nothing: the first
	 * line comes at once and memory does not grow with the store.
	 * LEFT JOINs from the account tell an unknown account or folder from
	 * an empty one in the same snapshot.
	 */
	r = store_prepare(s,
			  "SELECT a.name, f.name, f.id, m.uid, ms.flags, m.message_id, m.id"
			  " FROM account a"
			  " LEFT JOIN folder f ON f.account_id = a.id AND f.removed = 0"
			  "  AND (?2 IS NULL OR f.name = ?2)"
			  " LEFT JOIN message m ON m.folder_id = f.id AND m.removed = 0"
			  " LEFT JOIN message_state ms ON ms.id = m.id"
			  " WHERE ?1 IS NULL OR a.name = ?1"
			  " ORDER BY a.name, f.name, m.uid, m.id",
			  &st);
	if (r < 0)
		return r;
	if (account)
		sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	if (folder)
		sqlite3_bind_text(st, 2, canonical_folder(folder), -1, SQLITE_TRANSIENT);
	while ((r = store_step(s, st)) > 0) {
		account_seen = true;
		if (sqlite3_column_type(st, 2) == SQLITE_NULL)
			continue; /* an account without (this) folder */
		folder_seen = true;
		if (sqlite3_column_type(st, 6) == SQLITE_NULL)
			continue; /* a folder without messages */
		r = dump_line(&line, st);
		if (r < 0) {
			store_set_error(s, "dump: %s", cpmsync_strerror(r));
			return stop_walk(st, r);
		}
		r = fn(line.data, line.len, userdata);
		if (r != 0)
			return stop_walk(st, r);
	}
	if (r < 0)
		return r;
	if (account && !account_seen) {
		store_set_error(s, "unknown account '%s'", account);
		return -CPMSYNC_E_NOT_FOUND;
	}
	if (folder && !folder_seen) {
		store_set_error(s, "account '%s' has no folder '%s'", account, folder);
		return -CPMSYNC_E_NOT_FOUND;
	}
	return 0;
}

int cpmsync_store_get_online(struct cpmsync_store *store, const char *account, bool *ret)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !account || !ret)
		return -EINVAL;
	r = store_prepare(s, "SELECT online FROM account WHERE name = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	r = store_step(s, st);
	if (r < 0)
		return r;
	*ret = r == 0 || sqlite3_column_int(st, 0) != 0;
	if (r > 0)
		sqlite3_reset(st);
	return 0;
}

int cpmsync_store_pending_operations(struct cpmsync_store *store, const char *account,
				     uint32_t *ret_count)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	bool known;
	int64_t n;
	int r;

	if (!s || !ret_count)
		return -EINVAL;
	/* One statement: whether the account exists and its count come
	 * from the same snapshot. */
	r = store_prepare(s,
			  "SELECT ?1 IS NULL OR EXISTS (SELECT 1 FROM account WHERE name = ?1),"
			  " (SELECT count(*) FROM journal j JOIN account a ON a.id = j.account_id"
			  "  WHERE (?1 IS NULL OR a.name = ?1) AND j.failed = 0)",
			  &st);
	if (r < 0)
		return r;
	if (account)
		sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "no result counting pending operations");
		return -EIO;
	}
	known = sqlite3_column_int(st, 0) != 0;
	n = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	if (!known) {
		store_set_error(s, "unknown account '%s'", account);
		return -CPMSYNC_E_NOT_FOUND;
	}
	*ret_count = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
	return 0;
}
