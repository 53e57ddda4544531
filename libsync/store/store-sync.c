/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sync engine's reads and writes (store-sync.h).  Plain SQL through the
 * statement cache; the transaction is the caller's.
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cpmsync/error.h>

#include "store/store-sync.h"
#include "util/flags.h"
#include "util/macro.h"

#define PREP(s, sql, st)                                                                           \
	do {                                                                                       \
		int _r = store_prepare((s), (sql), (st));                                          \
		if (_r < 0)                                                                        \
			return _r;                                                                 \
	} while (0)

/*
 * Small statements with integer parameters: a is bound to ?1 and b to ?2
 * when the statement has one.
 */
static int bind_ii(struct store *s, sqlite3_stmt *st, int64_t a, int64_t b)
{
	sqlite3_bind_int64(st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, b);
	return journal_bind_ops(s, st);
}

/* Runs sql (no rows wanted). */
static int exec_ii(struct store *s, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st;
	int r;

	PREP(s, sql, &st);
	r = bind_ii(s, st, a, b);
	if (r < 0)
		return r;
	return store_step_done(s, st);
}

/* *ret: whether sql returns a row. */
static int exists_ii(struct store *s, const char *sql, int64_t a, int64_t b, bool *ret)
{
	sqlite3_stmt *st;
	int r;

	PREP(s, sql, &st);
	r = bind_ii(s, st, a, b);
	if (r < 0)
		return r;
	r = store_step(s, st);
	if (r < 0)
		return r;
	*ret = r > 0;
	if (r > 0)
		sqlite3_reset(st);
	return 0;
}

/* *ret: the integer in the first column of sql's row. */
static int count_ii(struct store *s, const char *sql, int64_t a, int64_t b, uint32_t *ret)
{
	sqlite3_stmt *st;
	int r;

	PREP(s, sql, &st);
	r = bind_ii(s, st, a, b);
	if (r < 0)
		return r;
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -EIO;
	*ret = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

/*
 * Looked up first, inserted only when missing: an INSERT OR IGNORE of an
 * existing name still takes the next AUTOINCREMENT id and rewrites
 * sqlite_sequence, so every sync run and every public operation opened a
 * write (a WAL frame, then a checkpoint) for nothing, and burnt an id.
 */
int store_sync_account(struct store *s, const char *name, int64_t *ret_account_id)
{
	sqlite3_stmt *st;
	int r;

	for (int pass = 0;; pass++) {
		PREP(s, "SELECT id FROM account WHERE name = ?1", &st);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
		r = store_step(s, st);
		if (r < 0)
			return r;
		if (r > 0) {
			*ret_account_id = sqlite3_column_int64(st, 0);
			sqlite3_reset(st);
			return 0;
		}
		if (pass > 0) {
			store_set_error(s, "account \"%s\" vanished", name);
			return -EIO;
		}
		/* OR IGNORE: another process may have added it meanwhile. */
		PREP(s, "INSERT OR IGNORE INTO account (name) VALUES (?1)", &st);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
		r = store_step_done(s, st);
		if (r < 0)
			return r;
	}
}

static int account_identity_reset(struct store *s, int64_t account_id, const char *host,
				  const char *user)
{
	sqlite3_stmt *st;
	int r;

	/* Folders take their messages along (ON DELETE CASCADE; the
	 * bodies by the triggers), as cpmsync_store_remove_account() does,
	 * but the account row stays: its id is what callers hold. */
	r = exec_ii(s, "DELETE FROM folder WHERE account_id = ?1", account_id, 0);
	if (r >= 0)
		r = exec_ii(s, "DELETE FROM conversation WHERE account_id = ?1", account_id, 0);
	if (r >= 0)
		r = exec_ii(s, "DELETE FROM conv_stale WHERE account_id = ?1", account_id, 0);
	if (r < 0)
		return r;
	PREP(s,
	     "UPDATE account SET server_host = ?2, server_user = ?3, last_sync = 0,"
	     " namespace = NULL WHERE id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_text(st, 2, host, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, user, -1, SQLITE_TRANSIENT);
	return store_step_done(s, st);
}

int store_sync_set_delimiter(struct store *s, int64_t account_id, char delimiter)
{
	char d[2] = { delimiter, '\0' };
	sqlite3_stmt *st;

	if (!delimiter)
		return -EINVAL;
	PREP(s, "UPDATE account SET delimiter = ?2 WHERE id = ?1 AND delimiter IS NOT ?2", &st);
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_text(st, 2, d, 1, SQLITE_TRANSIENT);
	return store_step_done(s, st);
}

int store_sync_account_identity(struct store *s, int64_t account_id, const char *host,
				const char *user, char **ret_was)
{
	_cleanup_free_ char *was_host = NULL, *was_user = NULL;
	sqlite3_stmt *st;
	int64_t queued = 0, refused = 0;
	char what[160];
	bool known;
	int r;

	if (ret_was)
		*ret_was = NULL;
	PREP(s,
	     "SELECT server_host, server_user,"
	     " (SELECT count(*) FROM journal WHERE account_id = ?1 AND failed = 0),"
	     " (SELECT count(*) FROM journal WHERE account_id = ?1 AND failed <> 0)"
	     " FROM account WHERE id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -CPMSYNC_E_NOT_FOUND;
	known = sqlite3_column_type(st, 0) != SQLITE_NULL;
	r = store_col_strdup(st, 0, &was_host);
	if (r >= 0)
		r = store_col_strdup(st, 1, &was_user);
	queued = sqlite3_column_int64(st, 2);
	refused = sqlite3_column_int64(st, 3);
	sqlite3_reset(st);
	if (r < 0)
		return r;
	/* Host names and (on every server we know) user names are
	 * case-insensitive. */
	if (known && was_host && was_user && strcasecmp(was_host, host) == 0 &&
	    strcasecmp(was_user, user) == 0)
		return 0;
	if (!known) {
		PREP(s, "UPDATE account SET server_host = ?2, server_user = ?3 WHERE id = ?1", &st);
		sqlite3_bind_int64(st, 1, account_id);
		sqlite3_bind_text(st, 2, host, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, user, -1, SQLITE_TRANSIENT);
		return store_step_done(s, st);
	}
	if (queued > 0 || refused > 0) {
		/* As `cpmctl pending` and `cpmctl failed` count them. */
		if (queued > 0 && refused > 0)
			snprintf(what, sizeof(what),
				 "%lld local change%s not yet sent there and %lld failed "
				 "operation%s",
				 (long long)queued, queued == 1 ? "" : "s", (long long)refused,
				 refused == 1 ? "" : "s");
		else if (queued > 0)
			snprintf(what, sizeof(what), "%lld local change%s not yet sent there",
				 (long long)queued, queued == 1 ? "" : "s");
		else
			snprintf(what, sizeof(what), "%lld failed operation%s", (long long)refused,
				 refused == 1 ? "" : "s");
		store_set_error(s,
				"the store holds the mail of %s@%s with %s, and the account's"
				" settings now name %s@%s: set host and user back to send them, or"
				" remove the account with D-Bus Manager1.RemoveAccount to drop them"
				" (saved as files first; removing its section from the "
				"configuration keeps them)",
				was_user ? was_user : "", was_host ? was_host : "", what, user,
				host);
		return -CPMSYNC_E_CONFIG;
	}
	r = store_begin(s);
	if (r < 0)
		return r;
	r = account_identity_reset(s, account_id, host, user);
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	r = store_commit(s);
	if (r < 0)
		return r;
	if (ret_was &&
	    asprintf(ret_was, "%s@%s", was_user ? was_user : "", was_host ? was_host : "") < 0)
		*ret_was = NULL;
	return 1;
}

int store_sync_account_moved(struct store *s, int64_t account_id, const char *host,
			     const char *user)
{
	_cleanup_free_ char *was_host = NULL, *was_user = NULL;
	sqlite3_stmt *st;
	bool idle;
	int r;

	PREP(s,
	     "SELECT server_host, server_user,"
	     " NOT EXISTS (SELECT 1 FROM journal WHERE account_id = ?1)"
	     " FROM account WHERE id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -CPMSYNC_E_NOT_FOUND;
	r = store_col_strdup(st, 0, &was_host);
	if (r >= 0)
		r = store_col_strdup(st, 1, &was_user);
	idle = sqlite3_column_int(st, 2) != 0;
	sqlite3_reset(st);
	if (r < 0)
		return r;
	/* Failed operations count as queued: they are the user's changes
	 * to the old copy, and store_sync_account_identity() keeps them. */
	return was_host && was_user && idle && strcasecmp(was_user, user) == 0 &&
	       strcasecmp(was_host, host) != 0;
}

int store_sync_account_set_host(struct store *s, int64_t account_id, const char *host)
{
	sqlite3_stmt *st;

	PREP(s, "UPDATE account SET server_host = ?2 WHERE id = ?1", &st);
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_text(st, 2, host, -1, SQLITE_TRANSIENT);
	return store_step_done(s, st);
}

int store_sync_get_online(struct store *s, int64_t account_id, bool *ret)
{
	sqlite3_stmt *st;
	int r;

	PREP(s, "SELECT online FROM account WHERE id = ?1", &st);
	sqlite3_bind_int64(st, 1, account_id);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -CPMSYNC_E_NOT_FOUND;
	*ret = sqlite3_column_int(st, 0) != 0;
	sqlite3_reset(st);
	return 0;
}

int store_sync_set_online(struct store *s, int64_t account_id, bool online)
{
	return exec_ii(s, "UPDATE account SET online = ?2 WHERE id = ?1 AND online IS NOT ?2",
		       account_id, online);
}

int store_sync_set_last_sync(struct store *s, int64_t account_id, int64_t when)
{
	return exec_ii(s, "UPDATE account SET last_sync = ?2 WHERE id = ?1", account_id, when);
}

void sync_folder_free_contents(struct sync_folder *f)
{
	free(f->name);
	free(f->server_name);
	free(f->mailboxid);
	f->name = f->server_name = f->mailboxid = NULL;
}

void sync_folders_free(struct sync_folder *f, size_t n)
{
	for (size_t i = 0; f && i < n; i++)
		sync_folder_free_contents(&f[i]);
	free(f);
}

int store_sync_folders(struct store *s, int64_t account_id, struct sync_folder **ret, size_t *ret_n)
{
	struct sync_folder *v = NULL;
	size_t n = 0, alloc = 0;
	sqlite3_stmt *st;
	int r;

	PREP(s,
	     "SELECT f.id, f.name, f.server_name, f.removed, f.uidvalidity, "
	     "f.uidnext,"
	     " f.highestmodseq, coalesce(f.body_limit, 0),"
	     " EXISTS (SELECT 1 FROM journal j WHERE j.folder_id = f.id"
	     "         AND j.op IN ('append', 'copy', 'move')), f.mailboxid, f.known,"
	     " EXISTS (SELECT 1 FROM journal j WHERE j.folder_id = f.id)"
	     " FROM folder f WHERE f.account_id = ?1 ORDER BY f.id",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	while ((r = store_step(s, st)) > 0) {
		struct sync_folder *f;

		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			struct sync_folder *nv = reallocarray(v, na, sizeof(*v));

			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
			alloc = na;
		}
		f = &v[n];
		*f = (struct sync_folder){
			.id = sqlite3_column_int64(st, 0),
			.removed = sqlite3_column_int(st, 3) != 0,
			.uidvalidity = (uint32_t)sqlite3_column_int64(st, 4),
			.uidnext = (uint32_t)sqlite3_column_int64(st, 5),
			.highestmodseq = (uint64_t)sqlite3_column_int64(st, 6),
			.body_limit = (uint64_t)sqlite3_column_int64(st, 7),
			.has_content_ops = sqlite3_column_int(st, 8) != 0,
			.known = (uint32_t)sqlite3_column_int64(st, 10),
			.has_ops = sqlite3_column_int(st, 11) != 0,
		};
		n++;
		r = store_col_strdup(st, 1, &f->name);
		if (r >= 0)
			r = store_col_strdup(st, 2, &f->server_name);
		if (r >= 0)
			r = store_col_strdup(st, 9, &f->mailboxid);
		if (r < 0)
			break;
	}
	if (r < 0) {
		sqlite3_reset(st);
		sync_folders_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int store_sync_get_namespace(struct store *s, int64_t account_id, char **ret)
{
	sqlite3_stmt *st;
	int r;

	*ret = NULL;
	PREP(s, "SELECT namespace FROM account WHERE id = ?1", &st);
	sqlite3_bind_int64(st, 1, account_id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0)
		return -CPMSYNC_E_NOT_FOUND;
	r = store_col_strdup(st, 0, ret);
	sqlite3_reset(st);
	return r;
}

/* name relative to new_base instead of old_base, malloc'ed in *ret; NULL
 * when it stays. */
static int rebase_name(const char *name, const char *old_base, const char *new_base, char **ret)
{
	_cleanup_free_ char *full = NULL;
	size_t n = strlen(new_base);

	*ret = NULL;
	if (!name || streq(name, "INBOX"))
		return 0;
	if (asprintf(&full, "%s%s", old_base, name) < 0)
		return -ENOMEM;
	if (strncmp(full, new_base, n) != 0 || !full[n] || streq(full + n, "INBOX") ||
	    streq(full + n, name))
		return 0;
	*ret = strdup(full + n);
	return *ret ? 0 : -ENOMEM;
}

int store_sync_rebase_namespace(struct store *s, int64_t account_id, const char *old_base,
				const char *new_base, unsigned *ret_renamed)
{
	struct sync_folder *f = NULL;
	size_t n = 0;
	unsigned renamed = 0;
	sqlite3_stmt *st;
	int r;

	r = store_begin(s);
	if (r < 0)
		return r;
	r = store_sync_folders(s, account_id, &f, &n);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		_cleanup_free_ char *name = NULL, *server_name = NULL;

		r = rebase_name(f[i].name, old_base, new_base, &name);
		if (r >= 0)
			r = rebase_name(f[i].server_name, old_base, new_base, &server_name);
		if (r < 0 || (!name && !server_name))
			continue;
		/* A name already taken: the folder keeps its old one. */
		r = store_prepare(s,
				  "SELECT 1 FROM folder WHERE account_id = ?1 AND name = ?2"
				  " AND id != ?3",
				  &st);
		if (r < 0)
			break;
		sqlite3_bind_int64(st, 1, account_id);
		sqlite3_bind_text(st, 2, name ? name : f[i].name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, f[i].id);
		r = store_step(s, st);
		sqlite3_reset(st);
		if (r < 0)
			break;
		if (r > 0) {
			r = 0;
			continue;
		}
		r = store_prepare(
			s,
			"UPDATE folder SET name = ?2, server_name = coalesce(?3, server_name)"
			" WHERE id = ?1",
			&st);
		if (r < 0)
			break;
		sqlite3_bind_int64(st, 1, f[i].id);
		sqlite3_bind_text(st, 2, name ? name : f[i].name, -1, SQLITE_TRANSIENT);
		store_bind_text_or_null(st, 3, server_name);
		r = store_step_done(s, st);
		if (r >= 0)
			renamed++;
	}
	sync_folders_free(f, n);
	if (r >= 0) {
		r = store_prepare(s, "UPDATE account SET namespace = ?2 WHERE id = ?1", &st);
		if (r >= 0) {
			sqlite3_bind_int64(st, 1, account_id);
			sqlite3_bind_text(st, 2, new_base, -1, SQLITE_TRANSIENT);
			r = store_step_done(s, st);
		}
	}
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	r = store_commit(s);
	if (r >= 0 && ret_renamed)
		*ret_renamed = renamed;
	return r;
}

int store_sync_folder_add(struct store *s, int64_t account_id, const char *name,
			  const char *special_use, bool subscribed, int64_t *ret_id)
{
	sqlite3_stmt *st;
	int r;

	PREP(s,
	     "INSERT INTO folder (account_id, name, server_name, special_use, "
	     "subscribed)"
	     " VALUES (?1, ?2, ?2, ?3, ?4)",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
	store_bind_text_or_null(st, 3, special_use);
	sqlite3_bind_int(st, 4, subscribed);
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = store_last_insert_id(s);
	return 0;
}

/* Renames the column col of folder_id and of the account's folders under it. */
static int rename_tree(struct store *s, int64_t account_id, int64_t folder_id, const char *col_sql,
		       const char *children_sql, const char *old, const char *new_name)
{
	sqlite3_stmt *st;
	int r;

	if (old) {
		PREP(s, children_sql, &st);
		sqlite3_bind_int64(st, 1, account_id);
		sqlite3_bind_text(st, 2, old, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, new_name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, folder_id);
		r = store_step_done(s, st);
		if (r < 0)
			return r;
	}
	PREP(s, col_sql, &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_text(st, 2, new_name, -1, SQLITE_TRANSIENT);
	return store_step_done(s, st);
}

static int folder_column(struct store *s, int64_t folder_id, const char *sql, char **ret)
{
	sqlite3_stmt *st;
	int r;

	PREP(s, sql, &st);
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0)
		return -CPMSYNC_E_NOT_FOUND;
	r = store_col_strdup(st, 0, ret);
	sqlite3_reset(st);
	return r;
}

int store_sync_folder_renamed(struct store *s, int64_t account_id, int64_t folder_id,
			      const char *new_name)
{
	_cleanup_free_ char *old = NULL;
	int r;

	r = folder_column(s, folder_id, "SELECT server_name FROM folder WHERE id = ?1", &old);
	if (r < 0)
		return r;
	/* Children: both names follow (?2 old prefix, ?3 new prefix). */
	return rename_tree(s, account_id, folder_id,
			   "UPDATE folder SET name = ?2, server_name = ?2 WHERE id = ?1",
			   "UPDATE folder SET"
			   " server_name = ?3 || substr(server_name, length(?2) + 1),"
			   " name = CASE WHEN substr(name, 1, length(?2) + 1) = ?2 || '/'"
			   "        THEN ?3 || substr(name, length(?2) + 1) ELSE name END"
			   " WHERE account_id = ?1 AND id != ?4"
			   " AND substr(server_name, 1, length(?2) + 1) = ?2 || '/'",
			   old, new_name);
}

int store_sync_folder_set_server_name(struct store *s, int64_t account_id, int64_t folder_id,
				      const char *server_name)
{
	_cleanup_free_ char *old = NULL;
	int r;

	r = folder_column(s, folder_id, "SELECT server_name FROM folder WHERE id = ?1", &old);
	if (r < 0)
		return r;
	return rename_tree(s, account_id, folder_id,
			   "UPDATE folder SET server_name = ?2 WHERE id = ?1",
			   "UPDATE folder SET server_name = ?3 || substr(server_name, "
			   "length(?2) + 1)"
			   " WHERE account_id = ?1 AND id != ?4"
			   " AND substr(server_name, 1, length(?2) + 1) = ?2 || '/'",
			   old, server_name);
}

int store_sync_folder_set_special_use(struct store *s, int64_t folder_id, const char *special_use,
				      bool subscribed)
{
	sqlite3_stmt *st;

	/* Only when it changed: a no-change sync writes nothing. */
	PREP(s,
	     "UPDATE folder SET special_use = ?2, subscribed = ?3 WHERE id = ?1"
	     " AND (special_use IS NOT ?2 OR subscribed != ?3)",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	store_bind_text_or_null(st, 2, special_use);
	sqlite3_bind_int(st, 3, subscribed);
	return store_step_done(s, st);
}

int store_sync_folder_delete(struct store *s, int64_t folder_id)
{
	int r;

	r = exec_ii(s,
		    "DELETE FROM journal WHERE folder_id = ?1"
		    " OR message_id IN (SELECT id FROM message WHERE folder_id "
		    "= ?1)",
		    folder_id, 0);
	if (r < 0)
		return r;
	return exec_ii(s, "DELETE FROM folder WHERE id = ?1", folder_id, 0);
}

int store_sync_folder_messages(struct store *s, int64_t folder_id, uint32_t *ret)
{
	return count_ii(s, "SELECT count(*) FROM message WHERE folder_id = ?1 AND removed = 0",
			folder_id, 0, ret);
}

int store_sync_folder_fold(struct store *s, int64_t folder_id, int64_t into_id, uint32_t *ret_moved)
{
	int r;

	/* Its messages lose their UIDs as in a UIDVALIDITY reset, so that
	 * the sync of into_id re-matches them (find_rematch()) or drops
	 * them; the changes queued on them and into it follow them.  What
	 * was queued for the folder itself (rename, metadata, ACL) goes with
	 * it, as with store_sync_folder_delete(). */
	r = store_sync_uidvalidity_reset(s, folder_id);
	if (r < 0)
		return r;
	r = exec_ii(s,
		    "UPDATE journal SET folder_id = ?2 WHERE folder_id = ?1"
		    " AND op IN (:op_append, :op_copy, :op_move, :op_flags, :op_expunge,"
		    " :op_set_annotation)",
		    folder_id, into_id);
	if (r < 0)
		return r;
	r = exec_ii(s, "UPDATE message SET folder_id = ?2 WHERE folder_id = ?1", folder_id,
		    into_id);
	if (r < 0)
		return r;
	if (ret_moved)
		*ret_moved = (uint32_t)sqlite3_changes(store_db(s));
	return store_sync_folder_delete(s, folder_id);
}

int store_sync_folder_rename_blocked(struct store *s, int64_t account_id, int64_t folder_id,
				     int64_t journal_id, const char *name, bool *ret)
{
	sqlite3_stmt *st;
	int r;

	*ret = false;
	PREP(s,
	     "SELECT 1 FROM folder WHERE account_id = ?1 AND server_name = ?2"
	     " AND id <> ?3 AND removed = 0"
	     " AND EXISTS (SELECT 1 FROM journal WHERE folder_id = ?3 AND id > ?4"
	     " AND op = :op_rename_folder) LIMIT 1",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, folder_id);
	sqlite3_bind_int64(st, 4, journal_id);
	r = journal_bind_ops(s, st);
	if (r >= 0)
		r = store_step(s, st);
	if (r > 0) {
		*ret = true;
		sqlite3_reset(st);
	}
	sqlite3_clear_bindings(st); /* name is the caller's */
	return r < 0 ? r : 0;
}

int store_sync_folder_name_on_server(struct store *s, int64_t account_id, const char *name,
				     char **ret)
{
	_cleanup_free_ char *anc = NULL, *anc_server = NULL;
	sqlite3_stmt *st;
	int r;

	*ret = NULL;
	PREP(s,
	     "SELECT name, server_name FROM folder WHERE account_id = ?1 AND removed = 0"
	     " AND server_name IS NOT NULL AND server_name <> name"
	     " AND substr(?2, 1, length(name) + 1) = name || '/'"
	     " ORDER BY length(name) DESC LIMIT 1",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r > 0) {
		r = store_col_strdup(st, 0, &anc);
		if (r >= 0)
			r = store_col_strdup(st, 1, &anc_server);
		sqlite3_reset(st);
	}
	sqlite3_clear_bindings(st); /* name is the caller's */
	if (r < 0 || !anc || !anc_server)
		return r < 0 ? r : 0;
	if (asprintf(ret, "%s%s", anc_server, name + strlen(anc)) < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

int store_sync_folder_deleting(struct store *s, int64_t account_id, const char *server_name,
			       int64_t except_id, int64_t *ret)
{
	sqlite3_stmt *st;
	int r;

	*ret = 0;
	PREP(s,
	     "SELECT f.id FROM folder f WHERE f.account_id = ?1 AND f.server_name = ?2"
	     " AND f.removed <> 0 AND f.id <> ?3 AND EXISTS (SELECT 1 FROM journal j"
	     " WHERE j.folder_id = f.id AND j.op = ?4) LIMIT 1",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_text(st, 2, server_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, except_id);
	sqlite3_bind_text(st, 4, journal_op_to_string(JOURNAL_OP_DELETE_FOLDER), -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r > 0)
		*ret = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return r < 0 ? r : 0;
}

/*
 * A journal row is due when its retry_after (wall clock, set at a refusal
 * that may pass: now + store_journal_backoff()) has come, or lies further
 * ahead than any back-off reaches: the clock went back since (a phone that
 * booted with its clock a year ahead, then NTP), and the row would wait
 * for that wrong time, a year, with no way to retry it (it is not a failed
 * operation).  The SQL condition, for column col and the parameter now
 * holding the current time.
 */
#define RETRY_DUE(col, now)                                                                        \
	"(" col " <= " now " OR " col " > " now " + " STR(STORE_JOURNAL_BACKOFF_MAX) ")"

int store_sync_folder_leaving(struct store *s, int64_t account_id, const char *server_name,
			      int64_t except_id, int64_t after_id, int64_t *ret_folder,
			      int64_t *ret_row)
{
	sqlite3_stmt *st;
	int r;

	*ret_folder = *ret_row = 0;
	PREP(s,
	     "SELECT f.id, coalesce((SELECT j.id FROM journal j WHERE j.folder_id = f.id"
	     " AND j.op = ?6 AND j.id > ?4 AND j.failed = 0"
	     " AND " RETRY_DUE("j.retry_after",
			       "?5") " ORDER BY j.id LIMIT 1), 0)"
				     " FROM folder f WHERE f.account_id = ?1 AND f.server_name = ?2"
				     " AND f.removed = 0 AND f.id <> ?3 LIMIT 1",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_text(st, 2, server_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, except_id);
	sqlite3_bind_int64(st, 4, after_id);
	sqlite3_bind_int64(st, 5, (int64_t)time(NULL));
	sqlite3_bind_text(st, 6, journal_op_to_string(JOURNAL_OP_RENAME_FOLDER), -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r > 0) {
		*ret_folder = sqlite3_column_int64(st, 0);
		*ret_row = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return r < 0 ? r : 0;
}

int store_sync_folder_lost(struct store *s, int64_t folder_id, const char *text, int64_t now,
			   uint32_t *ret_failed)
{
	sqlite3_stmt *st;
	int r;

	if (ret_failed)
		*ret_failed = 0;
	PREP(s,
	     "UPDATE journal SET failed = 1, refused = ?2, code = NULL, tried = ?3,"
	     " retry_after = 0 WHERE failed = 0 AND (folder_id = ?1"
	     " OR message_id IN (SELECT id FROM message WHERE folder_id = ?1))",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_text(st, 2, text ? text : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, now);
	r = store_step_done(s, st);
	if (r >= 0 && ret_failed)
		*ret_failed = (uint32_t)sqlite3_changes(store_db(s));
	return r;
}

int store_sync_folder_recreate(struct store *s, int64_t account_id, int64_t folder_id)
{
	int r;

	/* Messages that were on the server are gone with it; so are the
	 * journal rows about them (flags, expunge). */
	r = exec_ii(s,
		    "DELETE FROM journal WHERE message_id IN"
		    " (SELECT id FROM message WHERE folder_id = ?1 AND uid IS "
		    "NOT NULL)"
		    " OR (folder_id = ?1 AND op IN (:op_rename_folder,"
		    " :op_delete_folder, :op_set_metadata, :op_set_acl))",
		    folder_id, 0);
	if (r < 0)
		return r;
	r = exec_ii(s, "DELETE FROM message WHERE folder_id = ?1 AND uid IS NOT NULL", folder_id,
		    0);
	if (r < 0)
		return r;
	r = exec_ii(s,
		    "UPDATE folder SET server_name = NULL, removed = 0, "
		    "uidvalidity = NULL,"
		    " uidnext = NULL, highestmodseq = NULL WHERE id = ?1",
		    folder_id, 0);
	if (r < 0)
		return r;
	/* The CREATE must come before the rows that fill the folder. */
	return exec_ii(s,
		       "INSERT INTO journal (id, account_id, folder_id, op)"
		       " VALUES ((SELECT coalesce(min(id), 1) - 1 FROM "
		       "journal), ?1, ?2, :op_create_folder)",
		       account_id, folder_id);
}

int store_sync_folder_set_state(struct store *s, int64_t folder_id, uint32_t uidvalidity,
				uint32_t uidnext, uint64_t highestmodseq)
{
	sqlite3_stmt *st;

	PREP(s,
	     "UPDATE folder SET uidvalidity = nullif(?2, 0), uidnext = "
	     "nullif(?3, 0),"
	     " highestmodseq = nullif(?4, 0) WHERE id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, uidvalidity);
	sqlite3_bind_int64(st, 3, uidnext);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)highestmodseq);
	return store_step_done(s, st);
}

int store_sync_folder_set_created_uidvalidity(struct store *s, int64_t folder_id,
					      uint32_t uidvalidity)
{
	sqlite3_stmt *st;

	PREP(s, "UPDATE folder SET uidvalidity = ?2 WHERE id = ?1 AND uidvalidity IS NULL", &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, uidvalidity);
	return store_step_done(s, st);
}

int store_sync_folder_set_mailboxid(struct store *s, int64_t folder_id, const char *mailboxid)
{
	sqlite3_stmt *st;

	PREP(s, "UPDATE folder SET mailboxid = ?2 WHERE id = ?1", &st);
	sqlite3_bind_int64(st, 1, folder_id);
	store_bind_text_or_null(st, 2, mailboxid);
	return store_step_done(s, st);
}

int store_sync_uid_bounds(struct store *s, int64_t folder_id, uint32_t *ret_min, uint32_t *ret_max)
{
	sqlite3_stmt *st;
	int r;

	/* Two index probes (min and max of the (folder_id, uid) index), not a
	 * walk of the folder's UIDs. */
	PREP(s,
	     "SELECT (SELECT min(uid) FROM message WHERE folder_id = ?1 AND uid IS NOT NULL),"
	     " (SELECT max(uid) FROM message WHERE folder_id = ?1)",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -EIO;
	*ret_min = (uint32_t)sqlite3_column_int64(st, 0);
	*ret_max = (uint32_t)sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	return 0;
}

/*
 * folder.known (schema 19, kept by triggers) less the rows at or above uid:
 * an index range over the newest rows only (none for UINT32_MAX), not a
 * scan of the whole folder's, which the folder plan paid for every folder
 * at every sync and the push path for every event.
 */
int store_sync_count_uids_below(struct store *s, int64_t folder_id, uint32_t uid, uint32_t *ret)
{
	int r = count_ii(s,
			 "SELECT f.known - (SELECT count(*) FROM message m"
			 " WHERE m.folder_id = ?1 AND m.uid >= ?2) FROM folder f WHERE f.id = ?1",
			 folder_id, uid, ret);

	if (r == -EIO)
		store_set_error(s, "no folder with id %lld", (long long)folder_id);
	return r;
}

/*
 * Whether remote, new server flags of message id, are a set a STORE of its
 * pending flags row sent (the row's attempt mark, journal.h): then they
 * are ours, a STORE that reached the server while its answer was lost,
 * not another client's change.
 */
static int remote_is_ours(struct store *s, int64_t id, const char *remote, bool *ret)
{
	sqlite3_stmt *st;
	int r;

	*ret = false;
	PREP(s,
	     "SELECT args_sent FROM journal WHERE message_id = ?1 AND op = :op_flags"
	     " AND attempts > 0 AND failed = 0 ORDER BY id DESC LIMIT 1",
	     &st);
	r = bind_ii(s, st, id, 0);
	if (r >= 0)
		r = store_step(s, st);
	if (r <= 0)
		return r;
	*ret = journal_flags_attempt_has((const char *)sqlite3_column_text(st, 0), remote);
	sqlite3_reset(st);
	return 0;
}

/*
 * New server flags for a row: merged with the pending local change, if any
 * (flags != server_flags), else taken as they are.  The base of the merge
 * is the server flags last recorded, or the flags our own STORE set when
 * the server has those (remote_is_ours()): a STORE that reached the
 * server while the run that sent it was killed before the answer, and a
 * later local change back to the recorded flags, pending.  Taken as
 * another client's change, the server's flags overwrote that change
 * (test-sync-crash on Cyrus, CRASH_SEED=33029: $Work removed locally came
 * back).
 */
static int apply_server_flags(struct store *s, int64_t id, const char *local, const char *base,
			      const char *remote, uint64_t modseq, bool *ret_changed)
{
	_cleanup_free_ char *merged = NULL;
	sqlite3_stmt *st;
	bool ours = false;
	int r;

	if (base && !streq(remote, base) && !streq(local, remote)) {
		r = remote_is_ours(s, id, remote, &ours);
		if (r < 0)
			return r;
		if (ours)
			base = remote;
	}
	if (base && !streq(local, base)) {
		r = flags_merge3(base, local, remote, &merged);
		if (r < 0)
			return r;
	} else {
		merged = strdup(remote);
		if (!merged)
			return -ENOMEM;
	}
	if (ret_changed)
		*ret_changed = !streq(merged, local);
	PREP(s,
	     "UPDATE message_state SET flags = ?2, server_flags = ?3,"
	     " modseq = coalesce(nullif(?4, 0), modseq) WHERE id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, merged, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, remote, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)modseq);
	return store_step_done(s, st);
}

int store_sync_server_flags(struct store *s, int64_t folder_id, uint32_t uid, const char *flags,
			    uint64_t modseq, bool *ret_found, bool *ret_changed,
			    int64_t *ret_message_id)
{
	_cleanup_free_ char *local = NULL, *base = NULL;
	sqlite3_stmt *st;
	int64_t id;
	int r;

	if (ret_changed)
		*ret_changed = false;
	PREP(s,
	     "SELECT m.id, ms.flags, ms.server_flags FROM message m"
	     " JOIN message_state ms ON ms.id = m.id WHERE m.folder_id = ?1 AND m.uid = ?2",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, uid);
	r = store_step(s, st);
	if (r < 0)
		return r;
	*ret_found = r > 0;
	if (r == 0)
		return 0;
	id = sqlite3_column_int64(st, 0);
	r = store_col_strdup(st, 1, &local);
	if (r >= 0)
		r = store_col_strdup(st, 2, &base);
	sqlite3_reset(st);
	if (r < 0)
		return r;
	if (ret_message_id)
		*ret_message_id = id;
	if (base && streq(base, flags) && streq(local, flags) && modseq == 0)
		return 0;
	return apply_server_flags(s, id, local, base, flags, modseq, ret_changed);
}

/*
 * Finds a row without a UID that m is the server's copy of: one that lost
 * its UID in a UIDVALIDITY reset (server_flags set), or one whose APPEND,
 * COPY or MOVE may have reached the server before the run that sent it
 * was interrupted (a journal row with attempts > 0): importing the
 * server's copy as a new message would duplicate it.
 * Where both sides have an EMAILID (RFC 8474), it decides alone: equal is
 * the same message (even without a Message-ID), different is another one
 * (even with the same Message-ID, size and date).  Otherwise matched by
 * Message-ID, internal date and size, the size either as stored or with
 * each bare LF a CRLF: a message stored with LF line ends (a file written
 * on Unix) is what the server counts with CRLF, and an APPEND cut short
 * whose copy the server kept was sent a second time.  An EMAILID match
 * goes first.  The internal date of an interrupted APPEND may be one the
 * server gave in place of the one asked (it keeps none ahead of its clock:
 * Dovecot the time of the APPEND, Cyrus a cap): an earlier one, not before
 * the row was queued less a day (engine-replay.c verify_date_replaced(),
 * which looks for such a copy the pull did not take); the row then takes
 * the server's date.
 */
#define REMATCH_CANDIDATES 8 /* the LIMIT below */
static int find_rematch(struct store *s, int64_t folder_id, const struct sync_new_message *m,
			int64_t *ret_id)
{
	const char *mid = m->summary ? m->summary->message_id : "";
	int64_t ids[REMATCH_CANDIDATES];
	uint64_t sizes[REMATCH_CANDIDATES];
	bool by_emailid[REMATCH_CANDIDATES];
	size_t n = 0;
	sqlite3_stmt *st;
	bool any;
	int r;

	/* Most folders have no row without a UID (and none while a new
	 * store is filled): one index probe, instead of the query below,
	 * whose ORDER BY opens a sorter even for no row (32,000
	 * instructions a new message, against 3,000 for this). */
	r = exists_ii(s, "SELECT 1 FROM message WHERE folder_id = ?1 AND uid IS NULL", folder_id, 0,
		      &any);
	if (r < 0 || !any)
		return r;
	PREP(s,
	     "SELECT m.id, m.size, coalesce(m.emailid = ?5, 0)"
	     " FROM message m JOIN message_state ms ON ms.id = m.id"
	     " WHERE m.folder_id = ?1 AND m.uid IS NULL"
	     " AND ((ms.server_flags IS NOT NULL AND (?2 != '' OR m.emailid = ?5))"
	     "      OR EXISTS (SELECT 1 FROM journal j WHERE j.message_id = m.id"
	     "                 AND j.attempts > 0 AND j.op IN ('append', 'copy', 'move')))"
	     " AND (m.emailid = ?5"
	     "      OR ((?5 IS NULL OR m.emailid IS NULL) AND coalesce(m.message_id, '') = ?2"
	     "          AND (m.internaldate = ?4"
	     "               OR (?4 < m.internaldate AND EXISTS (SELECT 1 FROM journal j"
	     "                   WHERE j.message_id = m.id AND j.attempts > 0"
	     "                   AND j.op = 'append' AND ?4 >= j.created - 86400)))))"
	     " ORDER BY coalesce(m.emailid = ?5, 0) DESC, m.id LIMIT 8", /* REMATCH_CANDIDATES */
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_text(st, 2, mid ? mid : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, m->internaldate);
	store_bind_text_or_null(st, 5, m->emailid);
	while ((r = store_step(s, st)) > 0 && n < REMATCH_CANDIDATES) {
		ids[n] = sqlite3_column_int64(st, 0);
		sizes[n] = (uint64_t)sqlite3_column_int64(st, 1);
		by_emailid[n] = sqlite3_column_int(st, 2) != 0;
		n++;
	}
	if (r > 0)
		sqlite3_reset(st);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		uint64_t crlf = 0;

		if (by_emailid[i] || sizes[i] == m->size) {
			*ret_id = ids[i];
			return 1;
		}
		/* Only a size below the server's can have gained CRs. */
		if (sizes[i] >= m->size)
			continue;
		r = store_body_crlf_size(s, ids[i], &crlf);
		if (r < 0 && r != -CPMSYNC_E_NOT_FOUND)
			return r;
		if (r >= 0 && crlf == m->size) {
			*ret_id = ids[i];
			return 1;
		}
	}
	return 0;
}

/*
 * An interrupted APPEND/COPY/MOVE found on the server: the server's flags
 * are what that command carried; the local ones (changed meanwhile, or
 * never carried by a COPY) stay and are pushed by a flag row.
 */
static int adopt_pending(struct store *s, int64_t folder_id, int64_t id, const char *local,
			 const struct sync_new_message *m)
{
	sqlite3_stmt *st;
	int r;

	PREP(s,
	     "UPDATE message_state SET server_flags = ?2, modseq = "
	     "coalesce(nullif(?3, 0), modseq)"
	     " WHERE id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, m->flags, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)m->modseq);
	r = store_step_done(s, st);
	if (r < 0 || streq(local, m->flags))
		return r;
	return exec_ii(s,
		       "INSERT INTO journal (account_id, op, folder_id, message_id)"
		       " SELECT account_id, 'flags', id, ?2 FROM folder WHERE id = ?1"
		       " AND NOT EXISTS (SELECT 1 FROM journal WHERE message_id = ?2 "
		       "AND op = 'flags')",
		       folder_id, id);
}

static int has_body(struct store *s, int64_t id, bool *ret)
{
	return store_body_exists(s, id, ret);
}

/*
 * The server's INTERNALDATE for row id, known by its UID, where it is not
 * the one kept: the date an APPEND asked for and the server did not keep
 * (Dovecot stores the time of the APPEND for a date more than 2 hours
 * ahead of its clock, imap/cmd-append.c INTERNALDATE_MAX_FUTURE_SECS, so
 * also for one at or after 2^31; Cyrus caps it at 4294197631).  Also
 * read back right after the APPEND (engine-replay.c dates_note()).  Kept
 * as asked, the local search and the server's disagreed, and a
 * UIDVALIDITY change re-matched nothing by
 * (Message-ID, internal date, size): the messages came back as new ones,
 * under new Ids.  A Date taken from the internal date (none in the
 * header; store-message.c row_date()) follows it, and the row's
 * conversation is computed anew.  m->internaldate 0: not fetched.
 */
static int adopt_internaldate(struct store *s, int64_t folder_id, int64_t id,
			      const struct sync_new_message *m, bool *ret_changed)
{
	sqlite3_stmt *st;
	int r;

	if (!m->internaldate)
		return 0;
	/* ?3: 1 the header has no Date, 0 it has one, 2 no header fetched
	 * (the Date followed the internal date if it equals it). */
	PREP(s,
	     "UPDATE message SET internaldate = ?2,"
	     " date = CASE WHEN ?3 = 1 OR (?3 = 2 AND date IS internaldate) THEN ?2 ELSE date END"
	     " WHERE id = ?1 AND internaldate IS NOT ?2",
	     &st);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, m->internaldate);
	sqlite3_bind_int(st, 3, !m->summary ? 2 : m->summary->no_date ? 1 : 0);
	r = store_step_done(s, st);
	if (r < 0 || sqlite3_changes(store_db(s)) == 0)
		return r;
	if (ret_changed)
		*ret_changed = true;
	return store_exec_id(s, store_sql_conv_stale_folder, folder_id);
}

int store_sync_new_message(struct store *s, int64_t folder_id, const struct sync_new_message *m,
			   int64_t *ret_id, bool *ret_has_body, bool *ret_new)
{
	const struct msg_summary *sum = m->summary;
	sqlite3_stmt *st;
	bool found = false;
	int64_t id = 0;
	int r;

	*ret_new = false;
	r = store_sync_server_flags(s, folder_id, m->uid, m->flags, m->modseq, &found, NULL, &id);
	if (r < 0)
		return r;
	if (found) {
		r = adopt_internaldate(s, folder_id, id, m, NULL);
		if (r < 0)
			return r;
	}
	if (!found) {
		r = find_rematch(s, folder_id, m, &id);
		if (r < 0)
			return r;
		if (r > 0) {
			_cleanup_free_ char *local = NULL, *base = NULL;

			PREP(s,
			     "SELECT flags, server_flags FROM message_state WHERE id "
			     "= ?1",
			     &st);
			sqlite3_bind_int64(st, 1, id);
			r = store_step(s, st);
			if (r <= 0)
				return r < 0 ? r : -EIO;
			r = store_col_strdup(st, 0, &local);
			if (r >= 0) /* NULL for an interrupted APPEND */
				r = store_col_strdup(st, 1, &base);
			sqlite3_reset(st);
			if (r < 0)
				return r;
			PREP(s, "UPDATE message SET uid = ?2 WHERE id = ?1", &st);
			sqlite3_bind_int64(st, 1, id);
			sqlite3_bind_int64(st, 2, m->uid);
			r = store_step_done(s, st);
			if (r < 0)
				return r;
			if (base)
				r = apply_server_flags(s, id, local, base, m->flags, m->modseq,
						       NULL);
			else
				r = adopt_pending(s, folder_id, id, local, m);
			if (r >= 0)
				r = adopt_internaldate(s, folder_id, id, m, NULL);
			if (r < 0)
				return r;
			found = true;
		}
	}
	if (!found) {
		r = store_message_insert(
			s,
			&(struct store_message_row){ .folder_id = folder_id,
						     .uid = m->uid,
						     .flags = m->flags,
						     .server_flags = m->flags,
						     .modseq = m->modseq,
						     .internaldate = m->internaldate,
						     .size = m->size,
						     .summary = sum,
						     .bodystructure = m->bodystructure,
						     .has_body = m->body_follows },
			&id);
		if (r < 0)
			return r;
		*ret_new = true;
		*ret_has_body = false;
	} else {
		r = has_body(s, id, ret_has_body);
		if (r < 0)
			return r;
	}
	*ret_id = id;
	return 0;
}

int store_sync_message_set_objectids(struct store *s, int64_t id, const char *emailid,
				     const char *threadid)
{
	sqlite3_stmt *st;

	/* Written only when it changes: a known message seen again (an
	 * interrupted run, a re-read) leaves its page alone. */
	PREP(s,
	     "UPDATE message SET emailid = ?2, threadid = ?3 WHERE id = ?1"
	     " AND (emailid IS NOT ?2 OR threadid IS NOT ?3)",
	     &st);
	sqlite3_bind_int64(st, 1, id);
	store_bind_text_or_null(st, 2, emailid);
	store_bind_text_or_null(st, 3, threadid);
	return store_step_done(s, st);
}

/* Journal rows that lose their meaning when message id is gone. */
static int forget_message_ops(struct store *s, int64_t folder_id, uint32_t lo, uint32_t hi)
{
	return store_exec_uid_range(
		s,
		"DELETE FROM journal WHERE op IN ('flags', 'expunge') AND "
		"message_id IN"
		" (SELECT id FROM message WHERE folder_id = ?1 AND uid BETWEEN ?2 "
		"AND ?3)",
		folder_id, lo, hi);
}

int store_sync_expunge_uids(struct store *s, int64_t folder_id, const struct rangeset *uids,
			    uint32_t *ret_removed)
{
	uint32_t removed = 0;
	int r;

	for (size_t i = 0; i < uids->n; i++) {
		r = forget_message_ops(s, folder_id, uids->r[i].lo, uids->r[i].hi);
		if (r >= 0)
			r = store_exec_uid_range(s,
						 "DELETE FROM message WHERE folder_id = ?1 AND uid "
						 "BETWEEN ?2 AND ?3",
						 folder_id, uids->r[i].lo, uids->r[i].hi);
		if (r < 0)
			return r;
		removed += (uint32_t)sqlite3_changes(store_db(s));
	}
	if (ret_removed)
		*ret_removed = removed;
	return 0;
}

int store_sync_expunge_missing(struct store *s, int64_t folder_id, const struct rangeset *present,
			       uint32_t below_uid, uint32_t *ret_removed)
{
	struct rangeset gone = RANGESET_INIT;
	sqlite3_stmt *st;
	int r;

	PREP(s,
	     "SELECT uid FROM message WHERE folder_id = ?1 AND uid < ?2 ORDER "
	     "BY uid",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, below_uid);
	while ((r = store_step(s, st)) > 0) {
		uint32_t uid = (uint32_t)sqlite3_column_int64(st, 0);

		if (!rangeset_contains(present, uid)) {
			r = rangeset_add(&gone, uid);
			if (r < 0) {
				sqlite3_reset(st);
				break;
			}
		}
	}
	if (r >= 0)
		r = store_sync_expunge_uids(s, folder_id, &gone, ret_removed);
	rangeset_free(&gone);
	return r;
}

int store_sync_uidvalidity_reset(struct store *s, int64_t folder_id)
{
	return store_sync_uidvalidity_reset_failed(s, folder_id, NULL);
}

int store_sync_uidvalidity_reset_failed(struct store *s, int64_t folder_id, uint32_t *ret_failed)
{
	sqlite3_stmt *st;
	int r;

	if (ret_failed)
		*ret_failed = 0;
	/*
	 * A removed row (local delete pending) is matched again by content
	 * only (Message-ID, date, size; EMAILID), which may be another copy:
	 * its UID EXPUNGE is not sent on that.  It was dropped here, and the
	 * delete was lost without a word: the message stayed on the server,
	 * hidden here.  It becomes a failed operation naming the folder and
	 * the message (ListFailedOperations): RetryOperation sends it to the
	 * message matched again, DiscardOperation shows the message again.
	 * Matched by nothing, it goes with its message
	 * (store_sync_drop_unmatched()): the server has it no more.
	 */
	PREP(s,
	     "UPDATE journal SET failed = 1, code = NULL, tried = ?2, retry_after = 0,"
	     " refused = (SELECT 'the UIDVALIDITY of ' || coalesce(f.server_name, f.name) ||"
	     "   ' changed before the delete of ' || coalesce(m.message_id, 'message ' || m.id) ||"
	     "   ' (UID ' || m.uid || ') was sent: not sent to a message matched again by its"
	     " content only'"
	     "   FROM message m JOIN folder f ON f.id = m.folder_id WHERE m.id = "
	     "journal.message_id)"
	     " WHERE op = 'expunge' AND failed = 0 AND message_id IN"
	     " (SELECT id FROM message WHERE folder_id = ?1 AND uid IS NOT NULL AND removed = 1)",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, (int64_t)time(NULL));
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	if (ret_failed)
		*ret_failed = (uint32_t)sqlite3_changes(store_db(s));
	r = exec_ii(
		s,
		"UPDATE message_state SET modseq = NULL,"
		" server_flags = coalesce(server_flags, flags)"
		" WHERE id IN (SELECT id FROM message WHERE folder_id = ?1 AND uid IS NOT NULL)",
		folder_id, 0);
	if (r < 0)
		return r;
	r = exec_ii(s, "UPDATE message SET uid = NULL WHERE folder_id = ?1 AND uid IS NOT NULL",
		    folder_id, 0);
	if (r < 0)
		return r;
	return exec_ii(s,
		       "UPDATE folder SET uidvalidity = NULL, uidnext = NULL, "
		       "highestmodseq = NULL, mailboxid = NULL"
		       " WHERE id = ?1",
		       folder_id, 0);
}

int store_sync_unmatched_changes(struct store *s, int64_t folder_id, uint32_t *ret_n,
				 char **ret_text)
{
	sqlite3_stmt *st;
	int r;

	*ret_n = 0;
	*ret_text = NULL;
	/* What store_sync_drop_unmatched() would drop with its messages (a
	 * set_annotation row is left to name a message gone: the same). */
	PREP(s,
	     "SELECT count(*), group_concat(op || ' of ' || what, ', ') FROM"
	     " (SELECT j.op AS op, coalesce(m.message_id, 'message ' || m.id) AS what"
	     "  FROM journal j JOIN message m ON m.id = j.message_id"
	     "  JOIN message_state ms ON ms.id = m.id"
	     "  WHERE m.folder_id = ?1 AND m.uid IS NULL AND ms.server_flags IS NOT NULL"
	     "  AND j.op IN ('flags', 'expunge', 'set_annotation') ORDER BY j.id)",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -EIO;
	*ret_n = (uint32_t)sqlite3_column_int64(st, 0);
	r = *ret_n ? store_col_strdup(st, 1, ret_text) : 0;
	sqlite3_reset(st);
	return r < 0 ? r : 0;
}

int store_sync_drop_unmatched(struct store *s, int64_t folder_id, uint32_t *ret_removed)
{
	int r;

	r = exec_ii(s,
		    "DELETE FROM journal WHERE op IN ('flags', 'expunge') AND "
		    "message_id IN"
		    " (SELECT m.id FROM message m JOIN message_state ms ON ms.id = m.id"
		    "  WHERE m.folder_id = ?1 AND m.uid IS NULL AND ms.server_flags IS NOT NULL)",
		    folder_id, 0);
	if (r < 0)
		return r;
	r = exec_ii(s,
		    "DELETE FROM message WHERE folder_id = ?1 AND uid IS NULL"
		    " AND (SELECT server_flags FROM message_state ms WHERE ms.id = message.id)"
		    " IS NOT NULL"
		    " AND id NOT IN (SELECT message_id FROM journal WHERE "
		    "message_id IS NOT NULL"
		    "                AND op IN ('append', 'copy', 'move'))",
		    folder_id, 0);
	if (r < 0)
		return r;
	if (ret_removed)
		*ret_removed = (uint32_t)sqlite3_changes(store_db(s));
	return 0;
}

int store_sync_bodies_wanted(struct store *s, int64_t folder_id, uint32_t min_uid,
			     uint64_t max_size, struct rangeset *ret)
{
	sqlite3_stmt *st;
	int r;

	rangeset_clear(ret);
	PREP(s,
	     "SELECT m.uid FROM message m WHERE m.folder_id = ?1 AND m.uid >= "
	     "?3"
	     " AND m.size <= ?2 AND m.has_body = 0"
	     " ORDER BY m.uid",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 3, min_uid);
	sqlite3_bind_int64(st, 2, max_size > INT64_MAX ? INT64_MAX : (sqlite3_int64)max_size);
	while ((r = store_step(s, st)) > 0) {
		r = rangeset_add(ret, (uint32_t)sqlite3_column_int64(st, 0));
		if (r < 0) {
			sqlite3_reset(st);
			return r;
		}
	}
	return r;
}

int store_sync_body_put(struct store *s, int64_t message_id, const void *data, size_t len)
{
	return store_body_put(s, message_id, data, len);
}

int store_sync_body_put_fd(struct store *s, int64_t message_id, int fd, uint64_t size)
{
	return store_body_write_fd(s, message_id, fd, size);
}

int store_sync_body_put_new(struct store *s, int64_t message_id, const void *head, size_t head_len,
			    int fd, uint64_t size)
{
	return store_body_write_fresh(s, message_id, head, head_len, fd, size);
}

int store_sync_message_id_by_uid(struct store *s, int64_t folder_id, uint32_t uid, int64_t *ret_id)
{
	sqlite3_stmt *st;
	int r;

	PREP(s, "SELECT id FROM message WHERE folder_id = ?1 AND uid = ?2", &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, uid);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0)
		return -CPMSYNC_E_NOT_FOUND;
	*ret_id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

void sync_uid_targets_free(struct sync_uid_target *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(t[i].emailid);
		free(t[i].message_id);
	}
	free(t);
}

int store_sync_newest_uid_target(struct store *s, int64_t folder_id, struct sync_uid_target *ret)
{
	sqlite3_stmt *st;
	int r;

	*ret = (struct sync_uid_target){ 0 };
	/* One probe of the (folder_id, uid) index from its end. */
	PREP(s,
	     "SELECT m.id, m.uid, coalesce(m.size, -1), coalesce(m.internaldate, -1),"
	     " m.emailid, m.message_id"
	     " FROM message m WHERE m.folder_id = ?1 AND m.uid IS NOT NULL"
	     " ORDER BY m.uid DESC LIMIT 1",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -CPMSYNC_E_NOT_FOUND;
	ret->id = sqlite3_column_int64(st, 0);
	ret->folder_id = folder_id;
	ret->uid = (uint32_t)sqlite3_column_int64(st, 1);
	ret->size = sqlite3_column_int64(st, 2);
	ret->internaldate = sqlite3_column_int64(st, 3);
	r = store_col_strdup(st, 4, &ret->emailid);
	if (r >= 0)
		r = store_col_strdup(st, 5, &ret->message_id);
	sqlite3_reset(st);
	if (r < 0) {
		free(TAKE_PTR(ret->emailid));
		free(TAKE_PTR(ret->message_id));
	}
	return r < 0 ? r : 0;
}

/* The rows of st (folder_id, uid, size, internaldate, emailid,
 * message_id, id) as sync_uid_targets. */
static int uid_targets_read(struct store *s, sqlite3_stmt *st, struct sync_uid_target **ret,
			    size_t *ret_n)
{
	struct sync_uid_target *t = NULL;
	size_t n = 0, alloc = 0;
	int r;

	*ret = NULL;
	*ret_n = 0;
	while ((r = store_step(s, st)) > 0) {
		struct sync_uid_target *x;

		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;

			x = reallocarray(t, na, sizeof(*t));
			if (!x) {
				r = -ENOMEM;
				break;
			}
			t = x;
			alloc = na;
		}
		x = &t[n];
		*x = (struct sync_uid_target){
			.folder_id = sqlite3_column_int64(st, 0),
			.uid = (uint32_t)sqlite3_column_int64(st, 1),
			.size = sqlite3_column_int64(st, 2),
			.internaldate = sqlite3_column_int64(st, 3),
			.id = sqlite3_column_int64(st, 6),
		};
		n++;
		r = store_col_strdup(st, 4, &x->emailid);
		if (r >= 0)
			r = store_col_strdup(st, 5, &x->message_id);
		if (r < 0)
			break;
	}
	if (r < 0) {
		sqlite3_reset(st);
		sync_uid_targets_free(t, n);
		return r;
	}
	*ret = t;
	*ret_n = n;
	return 0;
}

int store_sync_uid_targets(struct store *s, int64_t account_id, struct sync_uid_target **ret,
			   size_t *ret_n)
{
	sqlite3_stmt *st;

	*ret = NULL;
	*ret_n = 0;
	/* A copy or move row names its source in args ("src=<id>",
	 * journal.c), its message_id is the new row. */
	PREP(s,
	     "SELECT DISTINCT m.folder_id, m.uid, coalesce(m.size, -1),"
	     " coalesce(m.internaldate, -1), m.emailid, m.message_id, m.id"
	     " FROM journal j JOIN message m ON m.id = CASE WHEN j.op IN ('copy', 'move')"
	     "  THEN CAST(substr(j.args, 5) AS INTEGER) ELSE j.message_id END"
	     " WHERE j.account_id = ?1 AND j.failed = 0"
	     "  AND j.op IN ('flags', 'expunge', 'set_annotation', 'copy', 'move')"
	     "  AND m.uid IS NOT NULL"
	     " ORDER BY m.folder_id, m.uid",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	return uid_targets_read(s, st, ret, ret_n);
}

int store_sync_host_targets(struct store *s, int64_t account_id, struct sync_uid_target **ret,
			    size_t *ret_n)
{
	sqlite3_stmt *st;

	*ret = NULL;
	*ret_n = 0;
	/* Two probes of the (folder_id, uid) index per folder. */
	PREP(s,
	     "SELECT m.folder_id, m.uid, coalesce(m.size, -1), coalesce(m.internaldate, -1),"
	     " m.emailid, m.message_id, m.id"
	     " FROM folder f JOIN message m ON m.folder_id = f.id"
	     " WHERE f.account_id = ?1 AND f.server_name IS NOT NULL AND f.removed = 0"
	     "  AND coalesce(f.uidvalidity, 0) <> 0 AND m.uid IS NOT NULL"
	     "  AND (m.uid = (SELECT min(uid) FROM message WHERE folder_id = f.id)"
	     "   OR m.uid = (SELECT max(uid) FROM message WHERE folder_id = f.id))"
	     " ORDER BY m.folder_id, m.uid",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	return uid_targets_read(s, st, ret, ret_n);
}

void journal_entry_free_contents(struct journal_entry *e)
{
	free(e->args);
	free(e->args_sent);
	e->args = e->args_sent = NULL;
}

int store_journal_next(struct store *s, int64_t account_id, int64_t after_id,
		       struct journal_entry *ret)
{
	sqlite3_stmt *st;
	const char *op;
	int r;

	PREP(s,
	     "SELECT id, op, folder_id, message_id, args, args_sent, attempts,"
	     " refused IS NOT NULL, created FROM journal"
	     " WHERE account_id = ?1 AND id > ?2 AND failed = 0 AND " RETRY_DUE(
		     "retry_after", "?3") " ORDER BY id LIMIT 1",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_int64(st, 2, after_id);
	sqlite3_bind_int64(st, 3, (int64_t)time(NULL));
	r = store_step(s, st);
	if (r <= 0)
		return r;
	*ret = (struct journal_entry){
		.id = sqlite3_column_int64(st, 0),
		.folder_id = sqlite3_column_int64(st, 2),
		.message_id = sqlite3_column_int64(st, 3),
		.attempts = sqlite3_column_int64(st, 6),
		.refused = sqlite3_column_int(st, 7) != 0,
		.created = sqlite3_column_int64(st, 8),
	};
	op = (const char *)sqlite3_column_text(st, 1);
	snprintf(ret->op_name, sizeof(ret->op_name), "%s", op ? op : "");
	if (journal_op_from_string(op, &ret->op) < 0)
		ret->op = _JOURNAL_OP_MAX;
	r = store_col_strdup(st, 4, &ret->args);
	if (r >= 0)
		r = store_col_strdup(st, 5, &ret->args_sent);
	sqlite3_reset(st);
	if (r < 0) {
		journal_entry_free_contents(ret);
		return r;
	}
	return 1;
}

int store_journal_done(struct store *s, int64_t id)
{
	return exec_ii(s, "DELETE FROM journal WHERE id = ?1", id, 0);
}

int store_journal_attempt(struct store *s, int64_t id, const char *args_sent)
{
	sqlite3_stmt *st;

	PREP(s,
	     "UPDATE journal SET attempts = attempts + 1, refused = NULL,"
	     " args_sent = coalesce(?2, args_sent)"
	     " WHERE id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, id);
	store_bind_text_or_null(st, 2, args_sent);
	return store_step_done(s, st);
}

/* A journal row's op and args columns: op's name, and args encoded (NULL
 * when args is NULL).  -EINVAL for an unknown op or args of another op. */
static int journal_op_columns(enum journal_op op, const struct journal_args *args,
			      const char **ret_name, char **ret_text)
{
	const char *name = journal_op_to_string(op);

	if (!name || (args && args->op != op))
		return -EINVAL;
	*ret_name = name;
	*ret_text = NULL;
	return args ? journal_args_encode(args, ret_text) : 0;
}

int store_journal_set_op(struct store *s, int64_t id, enum journal_op op,
			 const struct journal_args *args)
{
	_cleanup_free_ char *text = NULL;
	const char *name;
	sqlite3_stmt *st;
	int r;

	r = journal_op_columns(op, args, &name, &text);
	if (r < 0)
		return r;
	PREP(s,
	     "UPDATE journal SET op = ?2, args = ?3, args_sent = NULL, attempts = 0,"
	     " refused = NULL, code = NULL WHERE id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	store_bind_text_or_null(st, 3, text);
	return store_step_done(s, st);
}

int store_journal_add(struct store *s, int64_t account_id, enum journal_op op, int64_t folder_id,
		      int64_t message_id, const struct journal_args *args)
{
	_cleanup_free_ char *text = NULL;
	const char *name;
	sqlite3_stmt *st;
	int r;

	r = journal_op_columns(op, args, &name, &text);
	if (r < 0)
		return r;
	PREP(s,
	     "INSERT INTO journal (account_id, op, folder_id, message_id, args)"
	     " VALUES (?1, ?2, nullif(?3, 0), nullif(?4, 0), ?5)",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, folder_id);
	sqlite3_bind_int64(st, 4, message_id);
	store_bind_text_or_null(st, 5, text);
	return store_step_done(s, st);
}

int store_journal_count(struct store *s, int64_t account_id, uint32_t *ret)
{
	return count_ii(s, "SELECT count(*) FROM journal WHERE account_id = ?1 AND failed = 0",
			account_id, 0, ret);
}

void sync_message_free_contents(struct sync_message *m)
{
	free(m->flags);
	free(m->server_flags);
	free(m->message_id);
	m->flags = m->server_flags = m->message_id = NULL;
}

int store_sync_message_get(struct store *s, int64_t id, struct sync_message *ret)
{
	sqlite3_stmt *st;
	int r;

	PREP(s,
	     "SELECT m.id, m.folder_id, m.uid, ms.flags, ms.server_flags, "
	     "ms.modseq, m.internaldate,"
	     " m.size, m.message_id, m.removed,"
	     " m.has_body"
	     " FROM message m JOIN message_state ms ON ms.id = m.id WHERE m.id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0)
		return -CPMSYNC_E_NOT_FOUND;
	*ret = (struct sync_message){
		.id = sqlite3_column_int64(st, 0),
		.folder_id = sqlite3_column_int64(st, 1),
		.uid = (uint32_t)sqlite3_column_int64(st, 2),
		.modseq = (uint64_t)sqlite3_column_int64(st, 5),
		.internaldate = sqlite3_column_int64(st, 6),
		.size = (uint64_t)sqlite3_column_int64(st, 7),
		.removed = sqlite3_column_int(st, 9) != 0,
		.has_body = sqlite3_column_int(st, 10) != 0,
	};
	r = store_col_strdup(st, 3, &ret->flags);
	if (r >= 0)
		r = store_col_strdup(st, 4, &ret->server_flags);
	if (r >= 0)
		r = store_col_strdup(st, 8, &ret->message_id);
	sqlite3_reset(st);
	if (r < 0) {
		sync_message_free_contents(ret);
		return r;
	}
	return 0;
}

int store_sync_message_internaldate(struct store *s, int64_t folder_id, uint32_t uid,
				    int64_t internaldate, bool *ret_changed)
{
	sqlite3_stmt *st;
	int64_t id;
	int r;

	*ret_changed = false;
	PREP(s, "SELECT id FROM message WHERE folder_id = ?1 AND uid = ?2", &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, uid);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	r = adopt_internaldate(
		s, folder_id, id,
		&(struct sync_new_message){ .uid = uid, .internaldate = internaldate },
		ret_changed);
	return r < 0 ? r : 0;
}

int store_sync_message_set_uid(struct store *s, int64_t id, uint32_t uid, const char *server_flags)
{
	sqlite3_stmt *st;
	int64_t folder_id = 0, holder = 0;
	int r;

	/* Another row of the folder holds the UID the server just gave this
	 * one (APPENDUID, COPYUID): the folder under this name is not the one
	 * whose UIDs we recorded (a UIDVALIDITY that did not change when it
	 * should have).  Forget them all: the next sync re-reads the folder
	 * and re-matches by Message-ID, as after a UIDVALIDITY change. */
	PREP(s,
	     "SELECT o.folder_id, o.id FROM message m JOIN message o"
	     " ON o.folder_id = m.folder_id AND o.uid = ?2 AND o.id != m.id"
	     " WHERE m.id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, uid);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r > 0) {
		folder_id = sqlite3_column_int64(st, 0);
		holder = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (holder) {
		r = store_sync_uidvalidity_reset(s, folder_id);
		if (r < 0)
			return r;
	}
	PREP(s, "UPDATE message SET uid = ?2 WHERE id = ?1", &st);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, uid);
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	return store_sync_message_set_server_flags(s, id, server_flags);
}

int store_sync_message_set_server_flags(struct store *s, int64_t id, const char *server_flags)
{
	sqlite3_stmt *st;

	PREP(s, "UPDATE message_state SET server_flags = ?2 WHERE id = ?1", &st);
	sqlite3_bind_int64(st, 1, id);
	store_bind_text_or_null(st, 2, server_flags);
	return store_step_done(s, st);
}

int store_sync_message_delete(struct store *s, int64_t id)
{
	int r;

	/* Rows about it are moot (a refused APPEND of a message expunged
	 * while that APPEND was in flight would wait for nothing). */
	r = exec_ii(s, "DELETE FROM journal WHERE message_id = ?1", id, 0);
	if (r < 0)
		return r;
	return exec_ii(s, "DELETE FROM message WHERE id = ?1", id, 0);
}

int store_sync_uid_known(struct store *s, int64_t folder_id, uint32_t uid, bool *ret)
{
	return exists_ii(s, "SELECT 1 FROM message WHERE folder_id = ?1 AND uid = ?2", folder_id,
			 uid, ret);
}

int store_sync_body_get(struct store *s, int64_t message_id, void **ret, size_t *ret_len)
{
	return store_body_get(s, message_id, ret, ret_len);
}

int store_sync_folder_get(struct store *s, int64_t folder_id, struct sync_folder *ret)
{
	sqlite3_stmt *st;
	int r;

	PREP(s,
	     "SELECT id, name, server_name, removed, uidvalidity, uidnext, "
	     "highestmodseq,"
	     " coalesce(body_limit, 0), mailboxid FROM folder WHERE id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0)
		return -CPMSYNC_E_NOT_FOUND;
	*ret = (struct sync_folder){
		.id = sqlite3_column_int64(st, 0),
		.removed = sqlite3_column_int(st, 3) != 0,
		.uidvalidity = (uint32_t)sqlite3_column_int64(st, 4),
		.uidnext = (uint32_t)sqlite3_column_int64(st, 5),
		.highestmodseq = (uint64_t)sqlite3_column_int64(st, 6),
		.body_limit = (uint64_t)sqlite3_column_int64(st, 7),
	};
	r = store_col_strdup(st, 1, &ret->name);
	if (r >= 0)
		r = store_col_strdup(st, 2, &ret->server_name);
	if (r >= 0)
		r = store_col_strdup(st, 8, &ret->mailboxid);
	sqlite3_reset(st);
	if (r < 0) {
		sync_folder_free_contents(ret);
		return r;
	}
	return 0;
}

int store_sync_rename_pending(struct store *s, int64_t folder_id, bool *ret)
{
	return exists_ii(s,
			 "SELECT 1 FROM journal WHERE folder_id = ?1"
			 " AND op = :op_rename_folder",
			 folder_id, 0, ret);
}

int store_sync_folder_counts(struct store *s, int64_t folder_id, uint32_t *ret_max_uid,
			     uint32_t *ret_rematch)
{
	sqlite3_stmt *st;
	int r;

	/* Both answered from the (folder_id, uid) index without walking the
	 * folder: max() is one seek, and rows without a UID are few. */
	PREP(s, "SELECT coalesce(max(uid), 0) FROM message WHERE folder_id = ?1", &st);
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -EIO;
	*ret_max_uid = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	PREP(s,
	     "SELECT count(*) FROM message m JOIN message_state ms ON ms.id = m.id"
	     " WHERE m.folder_id = ?1 AND m.uid IS NULL AND ms.server_flags IS NOT NULL",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -EIO;
	*ret_rematch = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

int store_sync_folder_set_body_limit(struct store *s, int64_t folder_id, uint64_t limit)
{
	sqlite3_stmt *st;

	/* UINT64_MAX is stored as -1 (SQLite integers are signed). */
	PREP(s,
	     "UPDATE folder SET body_limit = ?2 WHERE id = ?1 AND body_limit "
	     "IS NOT ?2",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	return store_step_done(s, st);
}

int64_t store_journal_backoff(int64_t tries)
{
	int64_t delay = STORE_JOURNAL_BACKOFF;

	for (int64_t i = 1; i < tries && delay < STORE_JOURNAL_BACKOFF_MAX; i++)
		delay *= 2;
	return delay < STORE_JOURNAL_BACKOFF_MAX ? delay : STORE_JOURNAL_BACKOFF_MAX;
}

int store_journal_refused(struct store *s, int64_t id, const char *code, const char *text,
			  bool permanent, int64_t now, bool *ret_failed)
{
	sqlite3_stmt *st;
	int64_t tries;
	int r;

	PREP(s, "SELECT tries FROM journal WHERE id = ?1", &st);
	sqlite3_bind_int64(st, 1, id);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -CPMSYNC_E_NOT_FOUND;
	tries = sqlite3_column_int64(st, 0) + 1;
	sqlite3_reset(st);
	if (tries >= STORE_JOURNAL_TRIES)
		permanent = true;

	PREP(s,
	     "UPDATE journal SET refused = ?2, code = ?3, tries = ?4, tried = ?5,"
	     " retry_after = ?6, failed = ?7 WHERE id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, id);
	store_bind_text_or_null(st, 2, text ? text : "");
	store_bind_text_or_null(st, 3, code ? code : "");
	sqlite3_bind_int64(st, 4, tries);
	sqlite3_bind_int64(st, 5, now);
	sqlite3_bind_int64(st, 6, permanent ? 0 : now + store_journal_backoff(tries));
	sqlite3_bind_int(st, 7, permanent);
	r = store_step_done(s, st);
	if (r >= 0 && ret_failed)
		*ret_failed = permanent;
	return r;
}

int store_journal_blocked(struct store *s, int64_t id, const char *text, int64_t now)
{
	sqlite3_stmt *st;

	PREP(s,
	     "UPDATE journal SET failed = 1, refused = ?2, code = NULL, tried = ?3,"
	     " retry_after = 0 WHERE id = ?1",
	     &st);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, text ? text : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, now);
	return store_step_done(s, st);
}

int store_journal_create_row(struct store *s, int64_t folder_id, int64_t *ret_id, bool *ret_failed)
{
	sqlite3_stmt *st;
	int r;

	PREP(s,
	     "SELECT id, failed FROM journal WHERE folder_id = ?1 AND op = :op_create_folder"
	     " ORDER BY id LIMIT 1",
	     &st);
	sqlite3_bind_int64(st, 1, folder_id);
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

/* ------------------------------------------------------------------ */
/* For the session (push): what the store knows, to compare with what a
 * notification or SELECT says. */

int store_sync_folder_status(struct store *s, int64_t account_id, const char *server_name,
			     struct store_folder_status *ret)
{
	sqlite3_stmt *st;
	int r;

	PREP(s,
	     "SELECT f.id, coalesce(f.uidvalidity, 0), coalesce(f.uidnext, 0),"
	     " coalesce(f.highestmodseq, 0),"
	     " (SELECT count(*) FROM message m WHERE m.folder_id = f.id AND m.uid IS NOT NULL)"
	     " FROM folder f WHERE f.account_id = ?1 AND f.server_name = ?2",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_text(st, 2, server_name, -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	ret->id = sqlite3_column_int64(st, 0);
	ret->uidvalidity = (uint32_t)sqlite3_column_int64(st, 1);
	ret->uidnext = (uint32_t)sqlite3_column_int64(st, 2);
	ret->highestmodseq = (uint64_t)sqlite3_column_int64(st, 3);
	ret->on_server = (uint32_t)sqlite3_column_int64(st, 4);
	sqlite3_reset(st);
	return 1;
}

static int index_entry_cmp(const void *a, const void *b)
{
	const struct store_folder_index_entry *x = a, *y = b;

	return strcmp(x->server_name, y->server_name);
}

void store_folder_index_free(struct store_folder_index *idx)
{
	for (size_t i = 0; i < idx->n; i++)
		free(idx->v[i].server_name);
	free(idx->v);
	idx->v = NULL;
	idx->n = 0;
}

int store_sync_folder_index_load(struct store *s, int64_t account_id,
				 struct store_folder_index *ret)
{
	struct store_folder_index idx = { 0 };
	size_t cap = 0, i, j;
	sqlite3_stmt *st;
	int r;

	*ret = idx;
	PREP(s,
	     "SELECT f.id, f.server_name, coalesce(f.uidvalidity, 0), coalesce(f.uidnext, 0),"
	     " coalesce(f.highestmodseq, 0),"
	     " (SELECT count(*) FROM message m WHERE m.folder_id = f.id AND m.uid IS NOT NULL)"
	     " FROM folder f WHERE f.account_id = ?1 AND f.server_name IS NOT NULL",
	     &st);
	sqlite3_bind_int64(st, 1, account_id);
	while ((r = store_step(s, st)) > 0) {
		struct store_folder_index_entry *e;

		if (idx.n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			void *nv = realloc(idx.v, ncap * sizeof(*idx.v));

			if (!nv) {
				r = -ENOMEM;
				break;
			}
			idx.v = nv;
			cap = ncap;
		}
		e = &idx.v[idx.n];
		e->server_name = strdup((const char *)sqlite3_column_text(st, 1));
		if (!e->server_name) {
			r = -ENOMEM;
			break;
		}
		e->st.id = sqlite3_column_int64(st, 0);
		e->st.uidvalidity = (uint32_t)sqlite3_column_int64(st, 2);
		e->st.uidnext = (uint32_t)sqlite3_column_int64(st, 3);
		e->st.highestmodseq = (uint64_t)sqlite3_column_int64(st, 4);
		e->st.on_server = (uint32_t)sqlite3_column_int64(st, 5);
		idx.n++;
	}
	sqlite3_reset(st);
	if (r < 0) {
		if (r == -ENOMEM)
			store_set_error(s, "out of memory loading the folder index");
		store_folder_index_free(&idx);
		return r;
	}
	if (idx.n)
		qsort(idx.v, idx.n, sizeof(*idx.v), index_entry_cmp);
	/* Drop every name two rows share: ambiguous, the store decides. */
	for (i = 0, j = 0; i < idx.n;) {
		size_t k = i + 1;

		while (k < idx.n && streq(idx.v[k].server_name, idx.v[i].server_name))
			k++;
		if (k - i == 1)
			idx.v[j++] = idx.v[i];
		else
			for (size_t m = i; m < k; m++)
				free(idx.v[m].server_name);
		i = k;
	}
	idx.n = j;
	*ret = idx;
	return 0;
}

const struct store_folder_status *store_folder_index_find(const struct store_folder_index *idx,
							  const char *server_name)
{
	struct store_folder_index_entry key = { .server_name = (char *)server_name };
	const struct store_folder_index_entry *e;

	if (!idx->n)
		return NULL;
	e = bsearch(&key, idx->v, idx->n, sizeof(*idx->v), index_entry_cmp);
	return e ? &e->st : NULL;
}

int store_sync_folder_server_name(struct store *s, int64_t folder_id, char **ret)
{
	sqlite3_stmt *st;
	int r;

	*ret = NULL;
	PREP(s, "SELECT server_name FROM folder WHERE id = ?1 AND removed = 0", &st);
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "folder %lld not found", (long long)folder_id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	if (sqlite3_column_type(st, 0) != SQLITE_NULL)
		*ret = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	return 0;
}

int store_sync_message_locate(struct store *s, int64_t message_id, int64_t *ret_folder_id,
			      uint32_t *ret_uid)
{
	sqlite3_stmt *st;
	int r;

	PREP(s, "SELECT folder_id, coalesce(uid, 0) FROM message WHERE id = ?1 AND removed = 0",
	     &st);
	sqlite3_bind_int64(st, 1, message_id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "message %lld not found", (long long)message_id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	*ret_folder_id = sqlite3_column_int64(st, 0);
	*ret_uid = (uint32_t)sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	return 0;
}

int store_sync_uid_to_id(struct store *s, int64_t folder_id, uint32_t uid, int64_t *ret)
{
	sqlite3_stmt *st;
	int r;

	*ret = 0;
	PREP(s, "SELECT id FROM message WHERE folder_id = ?1 AND uid = ?2 AND removed = 0", &st);
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, uid);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	*ret = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 1;
}

int store_sync_get_last_sync(struct store *s, int64_t account_id, int64_t *ret)
{
	sqlite3_stmt *st;
	int r;

	*ret = 0;
	PREP(s, "SELECT last_sync FROM account WHERE id = ?1", &st);
	sqlite3_bind_int64(st, 1, account_id);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	*ret = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}
