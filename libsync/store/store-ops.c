/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Local changes (cpmsync/ops.h): each one changes the local rows and adds
 * the journal rows the sync engine replays on the server, in one
 * transaction, so that a failure changes nothing.  The journal rows follow
 * the table in store-schema.c (version 2) exactly.
 *
 * A message that never reached the server (uid NULL) is local only: when
 * it goes away locally, its row and every journal row about it go too
 * (purge_message()), instead of journaling a server operation that could
 * not be applied.
 */
#include <sqlite3.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/io.h>
#include <cpmsync/limits.h>
#include <cpmsync/settings.h>
#include <cpmsync/ops.h>
#include <cpmsync/utf8.h>

#include "store/journal.h"
#include "store/store-file.h"
#include "store/store-sync.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/flags.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/msg-canon.h"
#include "util/msg-summary.h"
#include "util/pio.h"

#define FOLDER_NAME_MAX	   CPMSYNC_FOLDER_NAME_MAX
#define METADATA_ENTRY_MAX CPMSYNC_METADATA_ENTRY_MAX
#define METADATA_VALUE_MAX CPMSYNC_METADATA_VALUE_MAX

/*
 * The frame of every public operation: the store behind the handle, the
 * arguments checked (check, may be NULL) before the transaction (a bad
 * argument is refused at once, without waiting for the write lock), then
 * apply in one write transaction: committed after success, rolled back
 * after a failure, which then changed nothing.  args is the operation's
 * own struct; outputs are written by the caller once op_run() succeeded.
 *
 * A change the caller is told is done (a D-Bus reply, an outbox file
 * moved on) is on the disk when op_run() returns: the commit, then
 * store_sync_wal(), one fdatasync (about 0.2 ms on this project's
 * machine).  Without it a power loss could take back changes made since
 * the last checkpoint, up to 4 MiB of WAL; a sync's own writes can be
 * fetched again and keep synchronous = NORMAL.  A failed sync is logged,
 * not returned: the change is committed and stays, and an error would
 * have the caller make it a second time.
 */
typedef int (*op_fn)(struct store *s, void *args);

static int op_run_(struct store *s, op_fn check, op_fn apply, void *args)
{
	int r;

	if (check) {
		r = check(s, args);
		if (r < 0)
			return r;
	}
	r = store_begin(s);
	if (r < 0)
		return r;
	r = apply(s, args);
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	r = store_commit(s);
	if (r < 0)
		return r;
	if (store_sync_wal(s) < 0)
		log_msg(CPMSYNC_LOG_WARNING, CPMSYNC_LOG_CAT_STORE,
			"committed, not on the disk: %s", store_error(s));
	return 0;
}

/* The error text of a failed operation is its own: cleared first, and
 * never left empty (so never an earlier call's). */
static int op_run(struct cpmsync_store *store, op_fn check, op_fn apply, void *args)
{
	struct store *s = store_from_public(store);
	int r;

	if (!s)
		return -EINVAL;
	store_clear_error(s);
	r = op_run_(s, check, apply, args);
	if (r < 0 && !*store_error(s))
		store_set_error(s, "%s", cpmsync_strerror(r));
	return r;
}

/* Helpers. */

/* The account's id; the row is created if missing. */
static int account_id(struct store *s, const char *name, int64_t *ret)
{
	if (!name || !cpmsync_account_name_valid(name)) {
		store_set_error(s, "invalid account name \"%s\"", name ? name : "(null)");
		return -EINVAL;
	}
	return store_sync_account(s, name, ret);
}

static bool is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

/* INBOX is case-insensitive in IMAP; the store keeps it as "INBOX". */
static const char *canonical_folder(const char *name)
{
	return is_inbox(name) ? "INBOX" : name;
}

/*
 * name with a first level "INBOX" in any case written "INBOX" (malloc'ed;
 * NULL: no memory): the server lists "Inbox/Kind" as "INBOX/Kind", and a
 * folder made here as "Inbox/Kind" kept that spelling in the store, the
 * dump and every listing while the server's said otherwise.
 */
static char *canonical_path(const char *name)
{
	char *c = strdup(name);

	if (c && strncasecmp(c, "INBOX", 5) == 0 && (c[5] == '\0' || c[5] == '/'))
		memcpy(c, "INBOX", 5);
	return c;
}

struct folder_row {
	int64_t id;
	bool on_server; /* server_name IS NOT NULL */
};

/* A visible folder by (account id, name); -CPMSYNC_E_NOT_FOUND. */
static int find_folder(struct store *s, int64_t account, const char *account_name, const char *name,
		       struct folder_row *ret)
{
	sqlite3_stmt *st;
	int r;

	if (!name) {
		store_set_error(s, "no folder name given");
		return -EINVAL;
	}
	r = store_prepare(s,
			  "SELECT id, server_name IS NOT NULL FROM folder"
			  " WHERE account_id = ?1 AND name = ?2 AND removed = 0",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, account);
	sqlite3_bind_text(st, 2, canonical_folder(name), -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "no folder '%s' in account '%s'", name,
				account_name ? account_name : "?");
		return -CPMSYNC_E_NOT_FOUND;
	}
	ret->id = sqlite3_column_int64(st, 0);
	ret->on_server = sqlite3_column_int(st, 1) != 0;
	sqlite3_reset(st);
	return 0;
}

struct message_row {
	int64_t id;
	int64_t folder_id;
	int64_t account_id;
	bool on_server; /* uid IS NOT NULL */
	bool has_body;
};

/* A visible message by id; -CPMSYNC_E_NOT_FOUND. */
static int find_message(struct store *s, int64_t id, struct message_row *ret, char **ret_flags)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s,
			  "SELECT m.folder_id, f.account_id, m.uid IS NOT NULL, ms.flags,"
			  " m.has_body"
			  " FROM message m JOIN message_state ms ON ms.id = m.id"
			  " JOIN folder f ON f.id = m.folder_id"
			  " WHERE m.id = ?1 AND m.removed = 0 AND f.removed = 0",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "no message with id %" PRId64, id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	ret->id = id;
	ret->folder_id = sqlite3_column_int64(st, 0);
	ret->account_id = sqlite3_column_int64(st, 1);
	ret->on_server = sqlite3_column_int(st, 2) != 0;
	ret->has_body = sqlite3_column_int(st, 4) != 0;
	if (ret_flags) {
		const char *f = (const char *)sqlite3_column_text(st, 3);

		*ret_flags = strdup(f ? f : "");
		if (!*ret_flags) {
			sqlite3_reset(st);
			return -ENOMEM;
		}
	}
	sqlite3_reset(st);
	return 0;
}

/* Adds a journal row; folder_id / message_id 0 are NULL, args NULL for an
 * operation without arguments. */
static int journal_add(struct store *s, int64_t account, enum journal_op op, int64_t folder_id,
		       int64_t message_id, const struct journal_args *args)
{
	int r = store_journal_add(s, account, op, folder_id, message_id, args);

	if (r == -EINVAL)
		store_set_error(s, "journal arguments of %s cannot be stored",
				journal_op_to_string(op));
	return r;
}

/* Prepares sql and binds its :op_<name> parameters (journal.h). */
static int prepare_ops(struct store *s, const char *sql, sqlite3_stmt **ret)
{
	int r = store_prepare(s, sql, ret);

	return r < 0 ? r : journal_bind_ops(s, *ret);
}

/* Runs "sql" with ?1 bound to an integer. */
static int exec_int(struct store *s, const char *sql, int64_t v)
{
	sqlite3_stmt *st;
	int r;

	r = prepare_ops(s, sql, &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, v);
	return store_step_done(s, st);
}

/*
 * Message from, purged before it was on the server, lives on as message to
 * (store version 36, message_moved): its local move, or the copy that
 * takes over its APPEND.  The first successor recorded stays; links that
 * led to from lead to to, so that one lookup follows every step.
 */
static int note_moved(struct store *s, int64_t from, int64_t to)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s, "INSERT OR IGNORE INTO message_moved (id, to_id) VALUES (?1, ?2)",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to);
	r = store_step_done(s, st);
	if (r < 0 || sqlite3_changes(store_db(s)) == 0)
		return r;
	r = store_prepare(s, "UPDATE message_moved SET to_id = ?2 WHERE to_id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to);
	return store_step_done(s, st);
}

/* Collects the integer column 0 of st, prepared and bound. */
static int collect_column_ids(struct store *s, sqlite3_stmt *st, int64_t **ret, size_t *ret_n)
{
	_cleanup_free_ int64_t *ids = NULL;
	size_t n = 0, alloc = 0;
	int r;

	while ((r = store_step(s, st)) > 0) {
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			int64_t *p = reallocarray(ids, na, sizeof(*p));

			if (!p) {
				sqlite3_reset(st);
				return -ENOMEM;
			}
			ids = p;
			alloc = na;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(ids);
	*ret_n = n;
	return 0;
}

/* Collects the integer column 0 of "sql" (?1 bound to v). */
static int collect_ids(struct store *s, const char *sql, int64_t v, int64_t **ret, size_t *ret_n)
{
	sqlite3_stmt *st;
	int r;

	r = prepare_ops(s, sql, &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, v);
	return collect_column_ids(s, st, ret, ret_n);
}

/*
 * Validates a list of flags for adding (allow_recent false: \Recent is
 * refused, it cannot be set) or removing (\Recent is ignored) and builds
 * the set.  The error names the bad flag.
 */
static int flag_set(struct store *s, const char *const *flags, bool allow_recent, char **ret)
{
	size_t n = 0;
	int r;

	for (; flags && flags[n]; n++) {
		const char *f = flags[n];

		if (strcasecmp(f, "\\Recent") == 0) {
			if (allow_recent)
				continue;
			store_set_error(s, "flag \\Recent cannot be set");
			return -EINVAL;
		}
		if (!flag_valid(f, strlen(f))) {
			store_set_error(s, "invalid flag \"%s\"", f);
			return -EINVAL;
		}
	}
	r = flags_from_list(flags ? flags : (const char *const[]){ NULL }, n, ret);
	if (r == -EINVAL)
		store_set_error(s, "invalid flag list");
	return r;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* ids given, each once: Copy of 307,307,307 made three copies (and
 * three APPENDs), a Move of it failed half-way. */
static int check_ids(struct store *s, const int64_t *ids, size_t n_ids)
{
	_cleanup_free_ int64_t *sorted = NULL;

	if (n_ids == 0 || !ids) {
		store_set_error(s, "no message ids given");
		return -EINVAL;
	}
	if (n_ids == 1)
		return 0;
	sorted = malloc(n_ids * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, ids, n_ids * sizeof(*sorted));
	qsort(sorted, n_ids, sizeof(*sorted), cmp_id);
	for (size_t i = 1; i < n_ids; i++)
		if (sorted[i] == sorted[i - 1]) {
			store_set_error(s, "message %" PRId64 " is given more than once",
					sorted[i]);
			return -EINVAL;
		}
	return 0;
}

/*
 * Looks up every id (visible, one account).  Returns the account in
 * *ret_account.
 */
static int check_messages(struct store *s, const int64_t *ids, size_t n_ids, int64_t *ret_account)
{
	int64_t account = 0;
	int r;

	for (size_t i = 0; i < n_ids; i++) {
		struct message_row m;

		r = find_message(s, ids[i], &m, NULL);
		if (r < 0)
			return r;
		if (i > 0 && m.account_id != account) {
			store_set_error(s,
					"message %" PRId64
					" is in another account than message %" PRId64,
					ids[i], ids[0]);
			return -EINVAL;
		}
		account = m.account_id;
	}
	*ret_account = account;
	return 0;
}

/*
 * Removes a message row that exists locally only (uid NULL), or whose
 * server side goes away anyway (its folder is being deleted), with every
 * journal row about it:
 *  - a pending move into it becomes an expunge of the move's source (the
 *    source, removed = 1, must still go away on the server); a pending
 *    copy into it, its append, its flags or expunge rows just go;
 *  - pending copies or moves out of it (rows with args "src=<id>") lose
 *    their source: the destination row is then appended instead if its body
 *    is stored (it was copied from the source; a row a run already sent
 *    keeps its attempt mark, so the append first looks for that copy),
 *    otherwise there is nothing to send and the destination row goes as
 *    well (recursively).
 */
/*
 * A row whose APPEND, COPY or MOVE a run sent before it was interrupted
 * (attempts > 0) may exist on the server: forgetting it would leave that
 * copy behind, to come back with the next sync.  Such a row is hidden
 * (removed = 1) and its removal queued instead; the engine first finds
 * the server's copy (then expunges it) or learns there is none.
 * *ret_kept tells whether that was the case.
 */
static int keep_if_attempted(struct store *s, int64_t id, bool *ret_kept)
{
	sqlite3_stmt *st;
	int r;

	*ret_kept = false;
	/* Refused on its last try (refused set): the server does not have
	 * it, e.g. a failed operation, which goes with the message. */
	r = prepare_ops(s,
			"SELECT 1 FROM journal WHERE message_id = ?1 AND attempts > 0"
			" AND refused IS NULL AND op IN (:op_append, :op_copy, :op_move)",
			&st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	sqlite3_reset(st);
	*ret_kept = true;
	r = exec_int(s, "DELETE FROM journal WHERE message_id = ?1 AND op = :op_flags", id);
	if (r >= 0)
		r = exec_int(s, "UPDATE message SET removed = 1 WHERE id = ?1", id);
	if (r < 0)
		return r;
	r = store_prepare(s,
			  "INSERT INTO journal (account_id, op, folder_id, message_id)"
			  " SELECT f.account_id, ?2, m.folder_id, m.id"
			  " FROM message m JOIN folder f ON f.id = m.folder_id WHERE m.id = ?1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	journal_bind_op(st, 2, JOURNAL_OP_EXPUNGE);
	return store_step_done(s, st);
}

static int purge_message(struct store *s, int64_t id, bool keep_attempted, unsigned depth)
{
	_cleanup_free_ int64_t *moves = NULL, *orphans = NULL;
	_cleanup_free_ char *src = NULL;
	size_t n_moves = 0, n_orphans = 0;
	int r;

	if (depth > 64) {
		store_set_error(s, "copies of message %" PRId64 " nested too deeply", id);
		return -ELOOP;
	}
	if (keep_attempted) {
		bool kept;

		r = keep_if_attempted(s, id, &kept);
		if (r < 0 || kept)
			return r;
	}

	/* Moves into this row: expunge the source instead. */
	r = collect_ids(s, "SELECT id FROM journal WHERE message_id = ?1 AND op = :op_move", id,
			&moves, &n_moves);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_moves; i++) {
		_cleanup_(journal_args_free) struct journal_args args = { 0 };
		sqlite3_stmt *st;

		r = store_prepare(s, "SELECT args FROM journal WHERE id = ?1", &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, moves[i]);
		r = store_step(s, st);
		if (r <= 0)
			return r < 0 ? r : -EIO;
		r = journal_args_decode(JOURNAL_OP_MOVE, (const char *)sqlite3_column_text(st, 0),
					&args, NULL);
		sqlite3_reset(st);
		if (r == -EBADMSG)
			continue; /* no source to name: the row is dropped below */
		if (r < 0)
			return r;
		/* In the source's folder; the row is dropped below if the
		 * source is gone. */
		r = store_prepare(s,
				  "UPDATE journal SET op = ?2, message_id = ?3,"
				  " folder_id = (SELECT folder_id FROM message WHERE id = ?3),"
				  " args = NULL, args_sent = NULL, attempts = 0"
				  " WHERE id = ?1 AND EXISTS (SELECT 1 FROM message WHERE id = ?3)",
				  &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, moves[i]);
		journal_bind_op(st, 2, JOURNAL_OP_EXPUNGE);
		sqlite3_bind_int64(st, 3, args.copy.src_id);
		r = store_step_done(s, st);
		if (r < 0)
			return r;
	}
	r = exec_int(s, "DELETE FROM journal WHERE message_id = ?1", id);
	if (r < 0)
		return r;

	/* Copies and moves out of it: rows whose args name it.  The first
	 * one with its body stored is appended instead (below): the message
	 * lives on as that one, noted before its row goes (and, with it, the
	 * links that led to it). */
	r = journal_args_encode(&(struct journal_args){ .op = JOURNAL_OP_COPY, .copy.src_id = id },
				&src);
	if (r < 0)
		return r;
	{
		sqlite3_stmt *st;

		r = prepare_ops(s,
				"SELECT j.message_id FROM journal j JOIN message m"
				" ON m.id = j.message_id WHERE j.args = ?1 AND m.has_body = 1"
				" AND j.op IN (:op_copy, :op_move) ORDER BY j.id LIMIT 1",
				&st);
		if (r < 0)
			return r;
		sqlite3_bind_text(st, 1, src, -1, SQLITE_STATIC);
		r = store_step(s, st);
		if (r > 0) {
			int64_t heir = sqlite3_column_int64(st, 0);

			sqlite3_reset(st);
			r = note_moved(s, id, heir);
		}
		if (r < 0)
			return r;
	}
	r = exec_int(s, "DELETE FROM message WHERE id = ?1", id);
	if (r < 0)
		return r;
	{
		sqlite3_stmt *st;

		r = prepare_ops(s,
				"SELECT message_id FROM journal WHERE args = ?1"
				" AND message_id IS NOT NULL AND op IN (:op_copy, :op_move)",
				&st);
		if (r < 0)
			return r;
		sqlite3_bind_text(st, 1, src, -1, SQLITE_STATIC);
		r = collect_column_ids(s, st, &orphans, &n_orphans);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < n_orphans; i++) {
		sqlite3_stmt *st;
		bool body;

		r = store_prepare(s, "SELECT has_body FROM message WHERE id = ?1", &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, orphans[i]);
		r = store_step(s, st);
		if (r < 0)
			return r;
		body = r > 0 && sqlite3_column_int(st, 0);
		sqlite3_reset(st);
		if (body) {
			/* A copy or move a run already sent (attempts > 0) may
			 * be on the server: its mark (attempts, the
			 * destination's UIDNEXT) stays, so that the append
			 * first looks for that copy (and a sync re-matches it)
			 * instead of making a second one. */
			r = store_prepare(s,
					  "UPDATE journal SET op = ?3, args = NULL"
					  " WHERE message_id = ?1 AND op IN (?4, ?5) AND args = ?2",
					  &st);
			if (r < 0)
				return r;
			sqlite3_bind_int64(st, 1, orphans[i]);
			sqlite3_bind_text(st, 2, src, -1, SQLITE_STATIC);
			journal_bind_op(st, 3, JOURNAL_OP_APPEND);
			journal_bind_op(st, 4, JOURNAL_OP_COPY);
			journal_bind_op(st, 5, JOURNAL_OP_MOVE);
			r = store_step_done(s, st);
		} else {
			r = purge_message(s, orphans[i], keep_attempted, depth + 1);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* Store. */

struct create_args {
	const char *account, *name;
	int64_t id; /* out */
};

/*
 * A message whose first head_len bytes are at head and whose remaining
 * size - head_len bytes (if any) are read from fd.
 */
struct store_args {
	const char *account, *folder;
	const void *data; /* cpmsync_op_store() */
	int fd;		  /* cpmsync_op_store_fd(), else -1 */
	uint64_t size;
	const char *const *flags;
	int64_t internaldate;
	const char *head; /* data, or head_buf */
	char *head_buf;	  /* the first bytes read from fd */
	size_t head_len;
	char *set; /* flag set (owned) */
	struct msg_summary sum;
	/* store_op_store_creating(): folders created first, in order. */
	const char *const *create;
	size_t n_create;
	/* store_op_store_creating(): a copy of the same object already in
	 * the folder is answered instead (same_object()). */
	bool same_object;
	int64_t id;	   /* out */
	int64_t folder_id; /* out */
	bool existing;	   /* out: id is that copy, nothing was stored */
};

static void store_args_free(struct store_args *a)
{
	free(a->head_buf);
	free(a->set);
	msg_summary_free(&a->sum);
}

/* The part of a message that needs no transaction: its flags and summary. */
static int store_message_check(struct store *s, void *args)
{
	struct store_args *a = args;
	char why[320];
	int r;

	r = flag_set(s, a->flags, false, &a->set);
	if (r < 0)
		return r;
	/* RFC 3501 date-time has a four-digit year: a later date would be
	 * refused by the server for ever, after it was accepted here. */
	if (a->internaldate < 0 || a->internaldate > CPMSYNC_OP_MAX_DATE) {
		store_set_error(s,
				"internal date %" PRId64 " is not between 1970 and the end of 9999 "
				"(IMAP dates have four-digit years)",
				a->internaldate);
		return -EINVAL;
	}
	if (a->internaldate == 0)
		a->internaldate = time(NULL);
	r = msg_check_head(a->head, a->head_len, a->size, why, sizeof(why));
	if (r < 0) {
		store_set_error(s, "content: not a message: %s", why);
		return r;
	}
	return msg_summary_parse(a->head, a->head_len, &a->sum);
}

/* A stored message's body, beyond the head msg_check_head() saw, has no NUL. */
struct nul_scan {
	char why[320];
	uint64_t off, from;
};

static int nul_piece(void *userdata, uint64_t size, const void *p, size_t n)
{
	struct nul_scan *ns = userdata;
	uint64_t off = ns->off;

	(void)size;
	ns->off += n;
	if (ns->off <= ns->from)
		return 0;
	if (off < ns->from) {
		p = (const char *)p + (ns->from - off);
		n -= (size_t)(ns->from - off);
		off = ns->from;
	}
	return msg_check_nul(p, n, off, ns->why, sizeof(ns->why));
}

/*
 * The size an APPEND sends, each bare LF as CRLF (driver-imap.c), within
 * the limit too: past it the message could be stored but never sent.  A
 * message of at most half the limit cannot pass it.
 */
static int check_crlf_size(struct store *s, const struct store_args *a, int64_t id)
{
	uint64_t crlf = 0;
	int r;

	if (a->size <= CPMSYNC_OP_MAX_MESSAGE_SIZE / 2)
		return 0;
	r = store_body_crlf_size(s, id, &crlf);
	if (r < 0 || crlf <= CPMSYNC_OP_MAX_MESSAGE_SIZE)
		return r;
	store_set_error(s,
			"message of %" PRIu64 " bytes is %" PRIu64 " with CRLF line ends, as"
			" IMAP sends it: larger than the %u allowed",
			a->size, crlf, CPMSYNC_OP_MAX_MESSAGE_SIZE);
	return -EFBIG;
}

static int check_tail(struct store *s, struct store_args *a, int64_t id)
{
	struct nul_scan ns = { .from = a->head_len };
	int r;

	if (a->head_len >= a->size)
		return 0;
	r = store_body_each(s, id, nul_piece, &ns);
	if (r == -EINVAL)
		store_set_error(s, "content: not a message: %s", ns.why);
	return r;
}

/* Does the body of message id have the bytes of fd (from offset 0)? */
struct body_cmp {
	int fd;
	uint64_t off;
	bool differ;
	char *buf;
};

#define BODY_CMP_CHUNK (64 * 1024)

static int cmp_piece(void *userdata, uint64_t size, const void *p, size_t n)
{
	struct body_cmp *c = userdata;
	const char *b = p;
	int r;

	(void)size;
	while (n > 0) {
		size_t k = n < BODY_CMP_CHUNK ? n : BODY_CMP_CHUNK;

		r = io_pread_exact(c->fd, c->buf, k, c->off);
		if (r == -EIO || (r == 0 && memcmp(c->buf, b, k) != 0)) {
			c->differ = true; /* a is shorter, or other bytes */
			return 1;
		}
		if (r < 0)
			return r;
		c->off += k;
		b += k;
		n -= k;
	}
	return 0;
}

static int same_bytes(struct store *s, int64_t a, int64_t b, bool *ret)
{
	struct body_cmp c = { .fd = -1 };
	struct stat st;
	int r;

	c.fd = memfd_create("cpmsync-same-object", MFD_CLOEXEC);
	if (c.fd < 0)
		return -errno;
	r = store_body_read_fd(s, a, c.fd);
	if (r == -CPMSYNC_E_NOT_FOUND || r == -CPMSYNC_E_STORE_CORRUPT) {
		/* An earlier copy whose body is lost or damaged is no copy:
		 * the object is filed, not refused for another row's fault. */
		*ret = false;
		close(c.fd);
		return 0;
	}
	if (r >= 0 && fstat(c.fd, &st) < 0)
		r = -errno;
	if (r >= 0 && !(c.buf = malloc(BODY_CMP_CHUNK)))
		r = -ENOMEM;
	if (r >= 0)
		r = store_body_each(s, b, cmp_piece, &c);
	/* Equal: every byte of b matched, and a has no more. */
	if (r >= 0)
		*ret = !c.differ && c.off == (uint64_t)st.st_size;
	free(c.buf);
	close(c.fd);
	return r < 0 ? r : 0;
}

/* clang-format off */
const char store_sql_same_object[] =
	"SELECT m.id, m.size FROM message m JOIN message_state ms ON ms.id = m.id"
	" WHERE m.folder_id = ?1 AND " STORE_OBJECT_KEY("m.") " = ?2"
	" AND m.removed = 0 AND m.id <> ?3 AND m.has_body = 1"
	" AND instr(' ' || ms.flags || ' ', ' \\Deleted ') = 0"
	" AND (m.uid IS NOT NULL OR EXISTS (SELECT 1 FROM journal j"
	" WHERE j.message_id = m.id AND j.op IN (?4, ?5, ?6) AND j.failed = 0))"
	" ORDER BY m.id LIMIT 8";
/* clang-format on */

/*
 * Objects up to this size are compared by their canonical form
 * (util/msg-canon.h) when their bytes differ: a chat, report or state
 * object is a few KiB; a file transfer that carries its file may be
 * larger, and two forms of it are held in memory at once.
 */
#define SAME_CANON_MAX (4u << 20)

/* The canonical form of message id's body into out (*ok false when it
 * has none that can be read or made: then it is no copy). */
static int canon_of(struct store *s, int64_t id, struct buf *out, bool *ok)
{
	void *data = NULL;
	size_t len = 0;
	int r;

	*ok = false;
	r = store_body_get(s, id, &data, &len);
	if (r == -CPMSYNC_E_NOT_FOUND || r == -CPMSYNC_E_STORE_CORRUPT)
		return 0;
	if (r < 0)
		return r;
	buf_init(out, 2 * (size_t)len + 65536);
	r = msg_canon(data, len, out);
	free(data);
	if (r == -E2BIG || r == -EINVAL)
		return 0;
	if (r < 0)
		return r;
	*ok = true;
	return 0;
}

/*
 * Filing the same CPM object again (an app's retry after a D-Bus timeout
 * whose first call did succeed, an outbox file filed again after a crash
 * between its store and its unlink) gives the copy the folder holds: the
 * message just stored as id, in folder_id, is the same object as an
 * earlier one with the same key (its IMDN-Message-ID, else its
 * Message-ID; neither: never the same), visible (not removed), without
 * \Deleted, and on the server or on its way there (an APPEND, COPY or
 * MOVE pending, not one given up), when their content is the same: the
 * same bytes, or (both up to SAME_CANON_MAX) the same canonical form
 * (util/msg-canon.h), for an app that writes its retry anew: other line
 * ends, header folding, transfer encoding, multipart boundary.  The key
 * alone does not make a copy: an IMDN-Message-ID is unique only as its
 * sender makes it (RFC 5438 section 6.3; a Message-ID likewise), and an
 * object with another text, Date, sender, recipient or file under a
 * reused one is another object, which must not be lost.  *ret gets that
 * earlier message's id, or 0.  Candidates come from index message_object
 * (schema version 33).
 */
static int same_object(struct store *s, const struct store_args *a, int64_t folder_id, int64_t id,
		       int64_t *ret)
{
	const char *key = *a->sum.imdn_message_id ? a->sum.imdn_message_id : a->sum.message_id;
	struct buf mine = BUF_INIT(0), theirs = BUF_INIT(0);
	bool mine_ok = false, mine_done = false;
	int64_t cand[8];
	uint64_t size[8];
	size_t n = 0;
	sqlite3_stmt *st;
	int r;

	*ret = 0;
	if (!key || !*key)
		return 0;
	r = store_prepare(s, store_sql_same_object, &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, id);
	journal_bind_op(st, 4, JOURNAL_OP_APPEND);
	journal_bind_op(st, 5, JOURNAL_OP_COPY);
	journal_bind_op(st, 6, JOURNAL_OP_MOVE);
	while ((r = store_step(s, st)) > 0 && n < ARRAY_SIZE(cand)) {
		cand[n] = sqlite3_column_int64(st, 0);
		size[n++] = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && !*ret; i++) {
		bool same = false, ok;

		if (size[i] == a->size) {
			r = same_bytes(s, cand[i], id, &same);
			if (r < 0)
				break;
			if (same) {
				*ret = cand[i];
				break;
			}
		}
		if (size[i] > SAME_CANON_MAX || a->size > SAME_CANON_MAX)
			continue;
		if (!mine_done) {
			mine_done = true;
			r = canon_of(s, id, &mine, &mine_ok);
			if (r < 0)
				break;
		}
		if (!mine_ok)
			break;
		buf_free(&theirs);
		r = canon_of(s, cand[i], &theirs, &ok);
		if (r < 0)
			break;
		if (ok && theirs.len == mine.len && memcmp(theirs.data, mine.data, mine.len) == 0)
			*ret = cand[i];
	}
	buf_free(&mine);
	buf_free(&theirs);
	return r < 0 ? r : 0;
}

static int create_folder(struct store *s, void *args);

static int store_message(struct store *s, void *args)
{
	struct store_args *a = args;
	struct folder_row f;
	int64_t acc, id;
	int r;

	r = account_id(s, a->account, &acc);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a->n_create; i++) {
		struct create_args c = { .account = a->account, .name = a->create[i] };

		r = create_folder(s, &c);
		if (r < 0)
			return r;
	}
	r = find_folder(s, acc, a->account, a->folder, &f);
	if (r < 0)
		return r;
	r = store_message_insert(s,
				 &(struct store_message_row){ .folder_id = f.id,
							      .flags = a->set,
							      .internaldate = a->internaldate,
							      .size = a->size,
							      .summary = &a->sum,
							      .has_body = true },
				 &id);
	if (r < 0)
		return r;
	/* The body: the head from memory, the rest streamed from fd; into
	 * the row just made (op_run_() rolls both back on a failure). */
	r = store_body_write_fresh(s, id, a->head, a->head_len, a->fd, a->size);
	if (r < 0)
		return r;
	r = check_tail(s, a, id);
	if (r >= 0)
		r = check_crlf_size(s, a, id);
	if (r < 0)
		return r;
	if (a->same_object) {
		int64_t earlier;

		r = same_object(s, a, f.id, id, &earlier);
		if (r < 0)
			return r;
		if (earlier) {
			/* Rolled back by the caller: nothing stored, nothing
			 * journaled (no CREATE either: the folder exists). */
			a->id = earlier;
			a->folder_id = f.id;
			a->existing = true;
			return -EEXIST;
		}
	}
	r = journal_add(s, acc, JOURNAL_OP_APPEND, f.id, id, NULL);
	if (r < 0)
		return r;
	a->id = id;
	a->folder_id = f.id;
	return 0;
}

static int check_size(struct store *s, uint64_t size)
{
	if (size == 0) {
		store_set_error(s, "empty message");
		return -EINVAL;
	}
	if (size > CPMSYNC_OP_MAX_MESSAGE_SIZE) {
		store_set_error(s, "message of %" PRIu64 " bytes is larger than the %u allowed",
				size, CPMSYNC_OP_MAX_MESSAGE_SIZE);
		return -EFBIG;
	}
	return 0;
}

static int store_fd_check(struct store *s, void *args)
{
	struct store_args *a = args;
	int r;

	if (a->fd < 0) {
		store_set_error(s, "invalid file descriptor");
		return -EINVAL;
	}
	r = check_size(s, a->size);
	if (r < 0)
		return r;
	/*
	 * fd may be a pipe: read the part the summary needs into memory
	 * first, then stream the rest inside the transaction.
	 */
	a->head_len = a->size < MSG_SUMMARY_READ ? (size_t)a->size : MSG_SUMMARY_READ;
	a->head = a->head_buf = malloc(a->head_len);
	if (!a->head_buf)
		return -ENOMEM;
	r = cpmsync_read_exact(a->fd, a->head_buf, a->head_len);
	if (r < 0) {
		store_set_error(s, "reading the message: %s",
				r == -EIO ? "end of input before the announced size"
					  : strerror(-r));
		return r;
	}
	return store_message_check(s, a);
}

static int store_data_check(struct store *s, void *args)
{
	struct store_args *a = args;
	int r;

	r = check_size(s, a->size);
	if (r < 0)
		return r;
	if (!a->data) {
		store_set_error(s, "no message data");
		return -EINVAL;
	}
	return store_message_check(s, a);
}

int cpmsync_op_store_fd(struct cpmsync_store *store, const char *account, const char *folder,
			int fd, uint64_t size, const char *const *flags, int64_t internaldate,
			int64_t *ret_id)
{
	struct store_args a = { account, folder, NULL,	       fd,
				size,	 flags,	 internaldate, .sum = { .type = "message" } };
	int r;

	r = op_run(store, store_fd_check, store_message, &a);
	if (r >= 0 && ret_id)
		*ret_id = a.id;
	store_args_free(&a);
	return r;
}

int cpmsync_op_store(struct cpmsync_store *store, const char *account, const char *folder,
		     const void *data, size_t size, const char *const *flags, int64_t internaldate,
		     int64_t *ret_id)
{
	struct store_args a = { account,
				folder,
				data,
				-1,
				size,
				flags,
				internaldate,
				.head = data,
				.head_len = size,
				.sum = { .type = "message" } };
	int r;

	r = op_run(store, store_data_check, store_message, &a);
	if (r >= 0 && ret_id)
		*ret_id = a.id;
	store_args_free(&a);
	return r;
}

static int store_head_check(struct store *s, void *args)
{
	struct store_args *a = args;
	int r;

	r = check_size(s, a->size);
	if (r < 0)
		return r;
	if (!a->head || a->head_len > a->size || (a->head_len < a->size && a->fd < 0)) {
		store_set_error(s, "no message data");
		return -EINVAL;
	}
	return store_message_check(s, a);
}

int store_op_store_creating(struct cpmsync_store *store, const char *account,
			    const char *const *create, size_t n_create, const char *folder,
			    const void *head, size_t head_len, int fd, uint64_t size,
			    const char *const *flags, int64_t internaldate, int64_t *ret_folder_id,
			    int64_t *ret_id)
{
	struct store_args a = { account,
				folder,
				NULL,
				fd,
				size,
				flags,
				internaldate,
				.head = head,
				.head_len = head_len,
				.sum = { .type = "message" },
				.create = create,
				.n_create = n_create,
				.same_object = true };
	int r;

	r = op_run(store, store_head_check, store_message, &a);
	if (r == -EEXIST && a.existing) {
		store_clear_error(store_from_public(store));
		r = 1;
	}
	if (r >= 0 && ret_id)
		*ret_id = a.id;
	if (r >= 0 && ret_folder_id)
		*ret_folder_id = a.folder_id;
	store_args_free(&a);
	return r;
}

/* Flags. */

struct flags_args {
	const int64_t *ids;
	size_t n_ids;
	const char *const *add, *const *remove;
	char *add_set, *remove_set; /* the checked sets */
};

static int set_flags_check(struct store *s, void *args)
{
	struct flags_args *a = args;
	int r;

	r = check_ids(s, a->ids, a->n_ids);
	if (r < 0)
		return r;
	r = flag_set(s, a->add, false, &a->add_set);
	if (r < 0)
		return r;
	r = flag_set(s, a->remove, true, &a->remove_set);
	if (r < 0)
		return r;
	/* Both added and removed: which one was meant? */
	for (size_t i = 0; a->add && a->add[i]; i++)
		if (flags_has(a->remove_set, a->add[i])) {
			store_set_error(s, "flag \"%s\" is both added and removed", a->add[i]);
			return -EINVAL;
		}
	return 0;
}

static int set_flags(struct store *s, void *args)
{
	const struct flags_args *a = args;
	const int64_t *ids = a->ids;
	size_t n_ids = a->n_ids;
	int64_t account = 0;
	int r;

	for (size_t i = 0; i < n_ids; i++) {
		_cleanup_free_ char *old = NULL, *new = NULL;
		struct message_row m;
		sqlite3_stmt *st;

		r = find_message(s, ids[i], &m, &old);
		if (r < 0)
			return r;
		if (i > 0 && m.account_id != account) {
			store_set_error(s,
					"message %" PRId64
					" is in another account than message %" PRId64,
					ids[i], ids[0]);
			return -EINVAL;
		}
		account = m.account_id;
		r = flags_apply(old, a->add_set, a->remove_set, &new);
		if (r < 0)
			return r;
		if (streq(old, new))
			continue;
		r = store_prepare(s, "UPDATE message_state SET flags = ?2 WHERE id = ?1", &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, m.id);
		sqlite3_bind_text(st, 2, new, -1, SQLITE_STATIC);
		r = store_step_done(s, st);
		if (r < 0)
			return r;
		/* One pending 'flags' row per message: it pushes whatever the
		 * flags are when it replays.  A message not on the server
		 * carries its flags in its append.  A failed one does not
		 * count: the change is pushed (and refused again while the
		 * refused flag is still set here). */
		if (!m.on_server)
			continue;
		r = store_prepare(s,
				  "INSERT INTO journal (account_id, op, folder_id, message_id)"
				  " SELECT ?1, ?4, ?2, ?3 WHERE NOT EXISTS"
				  " (SELECT 1 FROM journal WHERE message_id = ?3 AND op = ?4"
				  " AND failed = 0)",
				  &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, m.account_id);
		sqlite3_bind_int64(st, 2, m.folder_id);
		sqlite3_bind_int64(st, 3, m.id);
		journal_bind_op(st, 4, JOURNAL_OP_FLAGS);
		r = store_step_done(s, st);
		if (r < 0)
			return r;
	}
	return 0;
}

int cpmsync_op_set_flags(struct cpmsync_store *store, const int64_t *ids, size_t n_ids,
			 const char *const *add, const char *const *remove)
{
	struct flags_args a = { .ids = ids, .n_ids = n_ids, .add = add, .remove = remove };
	int r;

	r = op_run(store, set_flags_check, set_flags, &a);
	free(a.add_set);
	free(a.remove_set);
	return r;
}

int cpmsync_op_delete(struct cpmsync_store *store, const int64_t *ids, size_t n_ids)
{
	static const char *const deleted[] = { "\\Deleted", NULL };

	return cpmsync_op_set_flags(store, ids, n_ids, deleted, NULL);
}

/* Expunge. */

struct folder_args {
	const char *account, *folder;
};

static int expunge(struct store *s, void *args)
{
	const struct folder_args *a = args;
	const char *account = a->account, *folder = a->folder;
	_cleanup_free_ int64_t *ids = NULL;
	struct folder_row f;
	size_t n;
	int64_t acc;
	int r;

	r = account_id(s, account, &acc);
	if (r < 0)
		return r;
	r = find_folder(s, acc, account, folder, &f);
	if (r < 0)
		return r;
	/* flags is a sorted, space-separated set in canonical case. */
	r = collect_ids(s,
			"SELECT m.id FROM message m JOIN message_state ms ON ms.id = m.id"
			" WHERE m.folder_id = ?1 AND m.removed = 0"
			" AND instr(' ' || ms.flags || ' ', ' \\Deleted ') > 0 ORDER BY m.id",
			f.id, &ids, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct message_row m;

		r = find_message(s, ids[i], &m, NULL);
		if (r < 0)
			return r;
		if (!m.on_server) {
			r = purge_message(s, m.id, true, 0);
		} else {
			r = exec_int(s, "UPDATE message SET removed = 1 WHERE id = ?1", m.id);
			if (r >= 0)
				r = journal_add(s, acc, JOURNAL_OP_EXPUNGE, f.id, m.id, NULL);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int cpmsync_op_expunge(struct cpmsync_store *store, const char *account, const char *folder)
{
	return op_run(store, NULL, expunge, &(struct folder_args){ account, folder });
}

/* Copy and move. */

/* A new row in folder_id with everything of src but the server state. */
static int copy_row(struct store *s, int64_t src, int64_t folder_id, int64_t *ret)
{
	int64_t id;
	int r;

	r = store_message_copy(s, src, folder_id, &id);
	if (r < 0)
		return r;
	r = store_body_copy(s, src, id);
	if (r < 0)
		return r;
	*ret = id;
	return 0;
}

/*
 * Moving a message that is not on the server yet: nothing to move there.
 * The new row takes over what would have created the source on the server,
 * journaled anew at the end (the destination folder may be younger than
 * the source's journal row): the pending move the source came from, with
 * the same source (that source must still leave the server: moving twice
 * before a sync is one MOVE); else an append if the body is stored,
 * otherwise the pending copy the source came from.  If a run already sent
 * the source's own APPEND/COPY/MOVE (attempts > 0), the source is kept,
 * hidden, with its removal queued (keep_if_attempted()).
 * The source row goes through purge_message(), so pending copies out of it
 * are handled as when it is expunged.
 */
static int move_local(struct store *s, const struct message_row *m, int64_t account, int64_t dest,
		      int64_t new_id)
{
	enum journal_op op = JOURNAL_OP_APPEND;
	_cleanup_(journal_args_free) struct journal_args args = { 0 };
	bool as_source = false; /* journal op with args, not an append */
	sqlite3_stmt *st;
	int r;

	/* The operation that would have created the source on the server. */
	r = prepare_ops(s,
			"SELECT op, args FROM journal WHERE message_id = ?1"
			" AND op IN (:op_copy, :op_move) ORDER BY id DESC LIMIT 1",
			&st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, m->id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r > 0) {
		const char *o = (const char *)sqlite3_column_text(st, 0);
		const char *a = (const char *)sqlite3_column_text(st, 1);

		/* A pending move stays a move (its source must still leave
		 * the server); a pending copy becomes an append when we have
		 * the body. */
		if (journal_op_from_string(o, &op) < 0)
			op = JOURNAL_OP_COPY; /* the query matched only these two */
		if (op == JOURNAL_OP_MOVE || !m->has_body) {
			const char *why = "";

			as_source = true;
			r = journal_args_decode(op, a, &args, &why);
			if (r == -EBADMSG)
				store_set_error(s,
						"journal row of message %" PRId64 ": expected %s",
						m->id, why);
			if (r < 0) {
				sqlite3_reset(st);
				return r;
			}
		} else {
			op = JOURNAL_OP_APPEND;
		}
		sqlite3_reset(st);
	} else if (!m->has_body) {
		store_set_error(s,
				"message %" PRId64 " is neither on the server nor stored locally",
				m->id);
		return -EIO;
	}
	r = note_moved(s, m->id, new_id);
	if (r < 0)
		return r;
	{
		bool kept;

		r = keep_if_attempted(s, m->id, &kept);
		if (r < 0)
			return r;
		if (kept) /* the source's removal is queued; the new row is appended */
			return journal_add(s, account, op, dest, new_id, as_source ? &args : NULL);
	}
	/* Its own rows first, so that purge_message() turns no move into it
	 * into an expunge: the move is journaled again below. */
	r = exec_int(s, "DELETE FROM journal WHERE message_id = ?1", m->id);
	if (r < 0)
		return r;
	r = purge_message(s, m->id, true, 0);
	if (r < 0)
		return r;
	return journal_add(s, account, op, dest, new_id, as_source ? &args : NULL);
}

struct copy_args {
	const int64_t *ids;
	size_t n_ids;
	const char *destination;
	bool move;
	int64_t *ret_new_ids; /* may be NULL */
};

static int copy_check(struct store *s, void *args)
{
	const struct copy_args *a = args;
	int r;

	r = check_ids(s, a->ids, a->n_ids);
	if (r < 0)
		return r;
	if (!a->destination) {
		store_set_error(s, "no destination folder given");
		return -EINVAL;
	}
	return 0;
}

static int copy_or_move(struct store *s, void *args)
{
	const struct copy_args *a = args;
	const int64_t *ids = a->ids;
	const char *destination = a->destination;
	size_t n_ids = a->n_ids;
	bool move = a->move;
	_cleanup_free_ char *account_name = NULL;
	struct folder_row dest;
	int64_t account;
	sqlite3_stmt *st;
	int r;

	r = check_messages(s, ids, n_ids, &account);
	if (r < 0)
		return r;
	r = store_prepare(s, "SELECT name FROM account WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, account);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -EIO;
	account_name = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	if (!account_name)
		return -ENOMEM;
	r = find_folder(s, account, account_name, destination, &dest);
	if (r < 0)
		return r;

	for (size_t i = 0; i < n_ids; i++) {
		struct message_row m;
		int64_t new_id;

		/* Again: an earlier id of the list may have been this one. */
		r = find_message(s, ids[i], &m, NULL);
		if (r < 0)
			return r;
		if (move && m.folder_id == dest.id) {
			store_set_error(s, "message %" PRId64 " is already in \"%s\"", m.id,
					destination);
			return -EINVAL;
		}
		r = copy_row(s, m.id, dest.id, &new_id);
		if (r < 0)
			return r;
		if (move && !m.on_server) {
			r = move_local(s, &m, account, dest.id, new_id);
		} else {
			struct journal_args ja = { .op = move ? JOURNAL_OP_MOVE : JOURNAL_OP_COPY,
						   .copy.src_id = m.id };

			r = journal_add(s, account, ja.op, dest.id, new_id, &ja);
			if (r >= 0 && move)
				r = exec_int(s, "UPDATE message SET removed = 1 WHERE id = ?1",
					     m.id);
		}
		if (r < 0)
			return r;
		if (a->ret_new_ids)
			a->ret_new_ids[i] = new_id;
	}
	return 0;
}

int cpmsync_op_copy(struct cpmsync_store *store, const int64_t *ids, size_t n_ids,
		    const char *destination, int64_t *ret_new_ids)
{
	return op_run(store, copy_check, copy_or_move,
		      &(struct copy_args){ ids, n_ids, destination, false, ret_new_ids });
}

int cpmsync_op_move(struct cpmsync_store *store, const int64_t *ids, size_t n_ids,
		    const char *destination, int64_t *ret_new_ids)
{
	return op_run(store, copy_check, copy_or_move,
		      &(struct copy_args){ ids, n_ids, destination, true, ret_new_ids });
}

/* Folders. */

static int check_folder_name(struct store *s, const char *name)
{
	size_t n = name ? strlen(name) : 0;
	const unsigned char *u = (const unsigned char *)name;

	if (n == 0) {
		store_set_error(s, "empty folder name");
		return -EINVAL;
	}
	if (n > FOLDER_NAME_MAX) {
		store_set_error(s, "folder name longer than %d bytes", FOLDER_NAME_MAX);
		return -EINVAL;
	}
	if (name[0] == '/' || name[n - 1] == '/' || strstr(name, "//")) {
		store_set_error(s, "invalid folder name \"%s\": empty level", name);
		return -EINVAL;
	}
	for (size_t i = 0; i < n;) {
		size_t k = cpmsync_utf8_decode(name + i, n - i, NULL);

		if (k == 0) {
			store_set_error(s, "folder name is not valid UTF-8");
			return -EINVAL;
		}
		if (u[i] < 0x20 || u[i] == 0x7f) {
			store_set_error(s, "folder name \"%s\" contains a control character", name);
			return -EINVAL;
		}
		i += k;
	}
	return 0;
}

/* -EEXIST / -EBUSY if any folder of the account has name. */
/*
 * name can be sent to the account's server: no level holds the server's
 * hierarchy delimiter, as its last LIST gave it (none known yet: any
 * name; replay's name_unsendable() is then the check).
 */
static int check_name_sendable(struct store *s, int64_t account, const char *name)
{
	_cleanup_free_ char *delim = NULL;
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s, "SELECT delimiter FROM account WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, account);
	r = store_step(s, st);
	if (r > 0)
		r = store_col_strdup(st, 0, &delim);
	sqlite3_reset(st);
	if (r < 0)
		return r;
	if (!delim || strlen(delim) != 1 || delim[0] == '/' || !strchr(name, delim[0]))
		return 0;
	store_set_error(s,
			"\"%s\" cannot be a folder name on this server: its hierarchy delimiter "
			"'%c' is not allowed inside a level",
			name, delim[0]);
	return -EINVAL;
}

static int check_name_free(struct store *s, int64_t account, const char *name)
{
	sqlite3_stmt *st;
	int r, removed;

	if (is_inbox(name)) {
		store_set_error(s, "folder INBOX already exists");
		return -EEXIST;
	}
	r = store_prepare(s, "SELECT removed FROM folder WHERE account_id = ?1 AND name = ?2", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, account);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	removed = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	if (removed) {
		store_set_error(s,
				"folder \"%s\" is still being deleted: the deletion must reach "
				"the server first",
				name);
		return -EBUSY;
	}
	store_set_error(s, "folder \"%s\" already exists", name);
	return -EEXIST;
}

static int create_folder(struct store *s, void *args)
{
	struct create_args *a = args;
	_cleanup_free_ char *canon = a->name ? canonical_path(a->name) : NULL;
	const char *account = a->account, *name = canon;
	int64_t acc, id;
	sqlite3_stmt *st;
	int r;

	if (a->name && !canon)
		return -ENOMEM;
	r = check_folder_name(s, name);
	if (r < 0)
		return r;
	r = account_id(s, account, &acc);
	if (r < 0)
		return r;
	r = check_name_sendable(s, acc, name);
	if (r < 0)
		return r;
	if (is_inbox(name)) {
		struct folder_row f;

		r = find_folder(s, acc, account, name, &f);
		if (r != -CPMSYNC_E_NOT_FOUND) {
			if (r >= 0)
				store_set_error(s, "folder INBOX already exists");
			return r < 0 ? r : -EEXIST;
		}
		store_clear_error(s);
	} else {
		r = check_name_free(s, acc, name);
		if (r < 0)
			return r;
	}
	/*
	 * INBOX exists on every server (RFC 3501 5.1): before the account's
	 * first sync the store has no row for it, so find_folder() says it is
	 * not there.  Creating it adds that row as the server has it (on the
	 * server, nothing to journal); the first sync fills it.  Once it is
	 * there, find_folder() finds it and a create says it exists.
	 */
	r = store_prepare(
		s, "INSERT INTO folder (account_id, name, server_name) VALUES (?1, ?2, ?3)", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, acc);
	sqlite3_bind_text(st, 2, canonical_folder(name), -1, SQLITE_STATIC);
	if (is_inbox(name))
		sqlite3_bind_text(st, 3, "INBOX", -1, SQLITE_STATIC);
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	id = store_last_insert_id(s);
	if (is_inbox(name)) {
		a->id = id;
		return 0;
	}
	r = journal_add(s, acc, JOURNAL_OP_CREATE_FOLDER, id, 0, NULL);
	if (r < 0)
		return r;
	a->id = id;
	return 0;
}

int cpmsync_op_create_folder(struct cpmsync_store *store, const char *account, const char *name,
			     int64_t *ret_folder_id)
{
	struct create_args a = { .account = account, .name = name };
	int r;

	r = op_run(store, NULL, create_folder, &a);
	if (r >= 0 && ret_folder_id)
		*ret_folder_id = a.id;
	return r;
}

struct renamed {
	int64_t id;
	char *new_name;
};

struct rename_args {
	const char *account, *name, *new_name;
};

static int rename_folder(struct store *s, void *args)
{
	const struct rename_args *a = args;
	_cleanup_free_ char *canon = a->new_name ? canonical_path(a->new_name) : NULL;
	const char *account = a->account, *name = a->name, *new_name = canon;
	struct renamed *list = NULL;
	size_t n = 0, alloc = 0, name_len;
	struct folder_row f;
	sqlite3_stmt *st;
	int64_t acc;
	int r;

	if (!name) {
		store_set_error(s, "no folder name given");
		return -EINVAL;
	}
	if (is_inbox(name)) {
		store_set_error(s, "INBOX cannot be renamed");
		return -EINVAL;
	}
	if (a->new_name && !canon)
		return -ENOMEM;
	r = check_folder_name(s, new_name);
	if (r < 0)
		return r;
	r = account_id(s, account, &acc);
	if (r < 0)
		return r;
	r = check_name_sendable(s, acc, new_name);
	if (r < 0)
		return r;
	r = find_folder(s, acc, account, name, &f);
	if (r < 0)
		return r;
	name_len = strlen(name);
	if (strncmp(new_name, name, name_len) == 0 &&
	    (new_name[name_len] == '/' || new_name[name_len] == '\0')) {
		store_set_error(s, "cannot rename \"%s\" to itself or below itself", name);
		return new_name[name_len] == '\0' ? -EEXIST : -EINVAL;
	}

	/* The folder and its visible sub-folders, with their new names. */
	r = store_prepare(s,
			  "SELECT id, name FROM folder WHERE account_id = ?1 AND removed = 0"
			  " AND (name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || '/')"
			  " ORDER BY name",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, acc);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	while ((r = store_step(s, st)) > 0) {
		const char *old = (const char *)sqlite3_column_text(st, 1);

		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 8;
			struct renamed *p = reallocarray(list, na, sizeof(*p));

			if (!p) {
				r = -ENOMEM;
				break;
			}
			list = p;
			alloc = na;
		}
		list[n].id = sqlite3_column_int64(st, 0);
		if (asprintf(&list[n].new_name, "%s%s", new_name, old + name_len) < 0) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	sqlite3_reset(st);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (strlen(list[i].new_name) > FOLDER_NAME_MAX) {
			store_set_error(s, "folder name \"%s\" would be longer than %d bytes",
					list[i].new_name, FOLDER_NAME_MAX);
			r = -EINVAL;
			goto out;
		}
		r = check_name_free(s, acc, list[i].new_name);
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		r = store_prepare(s, "UPDATE folder SET name = ?2 WHERE id = ?1", &st);
		if (r < 0)
			goto out;
		sqlite3_bind_int64(st, 1, list[i].id);
		sqlite3_bind_text(st, 2, list[i].new_name, -1, SQLITE_STATIC);
		r = store_step_done(s, st);
		if (r < 0)
			goto out;
	}
	/* A folder whose CREATE is pending is created under its current
	 * name: nothing to rename on the server.  Otherwise one RENAME of the
	 * parent moves its children on the server too. */
	if (f.on_server) {
		struct journal_args ja = { .op = JOURNAL_OP_RENAME_FOLDER,
					   .rename.new_name = new_name };

		r = journal_add(s, acc, JOURNAL_OP_RENAME_FOLDER, f.id, 0, &ja);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(list[i].new_name);
	free(list);
	return r;
}

int cpmsync_op_rename_folder(struct cpmsync_store *store, const char *account, const char *name,
			     const char *new_name)
{
	return op_run(store, NULL, rename_folder, &(struct rename_args){ account, name, new_name });
}

/*
 * A folder whose CREATE was sent and not answered yet (in flight, or a
 * crash came first) may be on the server under the name the attempt
 * recorded: it then takes that as its server name (*ret_on_server), so
 * that its deletion is sent too.  (If the CREATE fails after all, the
 * DELETE finds nothing to delete, which counts as done.)
 */
static int create_in_flight(struct store *s, int64_t folder_id, bool *ret_on_server)
{
	_cleanup_free_ char *mark = NULL;
	const char *name;
	sqlite3_stmt *st;
	int r;

	r = prepare_ops(
		s,
		"SELECT args_sent FROM journal WHERE folder_id = ?1 AND op = :op_create_folder"
		" AND attempts > 0 AND refused IS NULL AND failed = 0 LIMIT 1",
		&st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	r = store_col_strdup(st, 0, &mark);
	sqlite3_reset(st);
	if (r < 0)
		return r;
	if (journal_create_attempt_decode(mark, &name) < 0)
		return 0; /* an older version's mark: its name is not known */
	r = store_prepare(s, "UPDATE folder SET server_name = ?2 WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	*ret_on_server = true;
	return 0;
}

/*
 * Deleting a folder deletes its message rows at once (visible or removed,
 * with their bodies) through purge_message(): journal rows about them go,
 * a pending move into the folder becomes an expunge of its source, and a
 * pending copy or move out of the folder becomes an append of the
 * destination row when that has the body, or is dropped together with the
 * destination row when it has none (without a body and without its source
 * there is nothing left to send; the server deletes the source anyway).
 */
static int delete_folder(struct store *s, void *args)
{
	const struct folder_args *a = args;
	const char *account = a->account, *name = a->folder;
	_cleanup_free_ int64_t *msgs = NULL;
	struct folder_row f;
	sqlite3_stmt *st;
	int64_t acc, delete_row = 0;
	size_t n;
	int r;

	if (!name) {
		store_set_error(s, "no folder name given");
		return -EINVAL;
	}
	if (is_inbox(name)) {
		store_set_error(s, "INBOX cannot be deleted");
		return -EINVAL;
	}
	r = account_id(s, account, &acc);
	if (r < 0)
		return r;
	r = find_folder(s, acc, account, name, &f);
	if (r < 0)
		return r;
	/* The error names one sub-folder: a direct child when there is one
	 * (the levels between may not be folders of their own: a pattern in
	 * `folders =`, or a server that lists no parent), else the shallowest
	 * descendant; the first by name (bytewise) among those. */
	r = store_prepare(s,
			  "SELECT name FROM folder WHERE account_id = ?1 AND removed = 0"
			  " AND substr(name, 1, length(?2) + 1) = ?2 || '/'"
			  " ORDER BY length(name) - length(replace(name, '/', '')), name LIMIT 1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, acc);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r > 0) {
		store_set_error(s, "folder \"%s\" has sub-folders (\"%s\"); delete them first",
				name, (const char *)sqlite3_column_text(st, 0));
		sqlite3_reset(st);
		return -ENOTEMPTY;
	}

	if (!f.on_server) {
		r = create_in_flight(s, f.id, &f.on_server);
		if (r < 0)
			return r;
	}
	/* The delete_folder row is added before any row goes: SQLite gives
	 * a new row the largest id + 1, so after the removal of a row a
	 * running replay has already read (the largest, in flight) it could
	 * get an id at or below the replay's position and wait for the next
	 * run. */
	if (f.on_server) {
		r = journal_add(s, acc, JOURNAL_OP_DELETE_FOLDER, f.id, 0, NULL);
		if (r < 0)
			return r;
		delete_row = store_last_insert_id(s);
	}
	r = collect_ids(s, "SELECT id FROM message WHERE folder_id = ?1 ORDER BY id", f.id, &msgs,
			&n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		/* An earlier purge may have taken this one already (a copy
		 * inside the folder without a body).  Attempted appends need
		 * no removal of their own: the folder's DELETE takes them. */
		r = purge_message(s, msgs[i], false, 0);
		if (r < 0)
			return r;
	}
	r = store_prepare(s, "DELETE FROM journal WHERE folder_id = ?1 AND id != ?2", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, f.id);
	sqlite3_bind_int64(st, 2, delete_row);
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	if (!f.on_server)
		/* Its CREATE never reached the server: forget it entirely. */
		return exec_int(s, "DELETE FROM folder WHERE id = ?1", f.id);
	return exec_int(s, "UPDATE folder SET removed = 1 WHERE id = ?1", f.id);
}

int cpmsync_op_delete_folder(struct cpmsync_store *store, const char *account, const char *name)
{
	return op_run(store, NULL, delete_folder, &(struct folder_args){ account, name });
}

/* Metadata. */

static int check_entry(struct store *s, const char *entry)
{
	size_t n = entry ? strlen(entry) : 0;

	if (!entry || (strncmp(entry, "/private/", 9) != 0 && strncmp(entry, "/shared/", 8) != 0)) {
		store_set_error(s, "metadata entry \"%s\" must start with /private/ or /shared/",
				entry ? entry : "");
		return -EINVAL;
	}
	if (n > METADATA_ENTRY_MAX) {
		store_set_error(s, "metadata entry longer than %d bytes", METADATA_ENTRY_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if (entry[i] <= ' ' || entry[i] >= 0x7f) {
			store_set_error(s,
					"metadata entry \"%s\" contains a space or a character "
					"that is not printable ASCII",
					entry);
			return -EINVAL;
		}
	/* RFC 5464: no "//", no trailing '/', no '*' or '%' in entry names. */
	if (strstr(entry, "//") || entry[n - 1] == '/' || strpbrk(entry, "*%")) {
		store_set_error(s, "invalid metadata entry \"%s\"", entry);
		return -EINVAL;
	}
	return 0;
}

/*
 * Journals a (set_metadata or set_acl) on folder.  With server_level, a
 * NULL or "" folder means the account (METADATA server entries);
 * otherwise the folder must exist.
 */
static int journal_pair(struct store *s, const char *account, const char *folder, bool server_level,
			const struct journal_args *a)
{
	struct folder_row f = { 0 };
	int64_t acc;
	int r;

	r = account_id(s, account, &acc);
	if (r < 0)
		return r;
	if (!server_level || (folder && folder[0])) {
		r = find_folder(s, acc, account, folder, &f);
		if (r < 0)
			return r;
	}
	return journal_add(s, acc, a->op, f.id, 0, a);
}

/* set_metadata: entry and value; set_acl: identifier and rights. */
struct pair_args {
	const char *account, *folder, *first, *second;
};

static int set_metadata(struct store *s, void *args)
{
	const struct pair_args *a = args;
	const char *account = a->account, *folder = a->folder, *entry = a->first;
	const char *value = a->second;
	int r;

	r = check_entry(s, entry);
	if (r < 0)
		return r;
	if (!value)
		value = "";
	if (strlen(value) > METADATA_VALUE_MAX) {
		store_set_error(s, "metadata value longer than %d bytes", METADATA_VALUE_MAX);
		return -EINVAL;
	}
	return journal_pair(s, account, folder, true,
			    &(struct journal_args){ .op = JOURNAL_OP_SET_METADATA,
						    .metadata = { entry, value } });
}

int cpmsync_op_set_metadata(struct cpmsync_store *store, const char *account, const char *folder,
			    const char *entry, const char *value)
{
	struct cpmsync_metadata_entry e = { entry, value };

	return cpmsync_op_set_metadata_entries(store, account, folder, &e, 1);
}

/* Several entries: all in one transaction, or none. */
struct metadata_entries_args {
	const char *account, *folder;
	const struct cpmsync_metadata_entry *entries;
	size_t n_entries;
};

static int set_metadata_entries(struct store *s, void *args)
{
	const struct metadata_entries_args *a = args;
	int r = 0;

	for (size_t i = 0; r >= 0 && i < a->n_entries; i++)
		r = set_metadata(s, &(struct pair_args){ a->account, a->folder, a->entries[i].entry,
							 a->entries[i].value });
	return r;
}

int cpmsync_op_set_metadata_entries(struct cpmsync_store *store, const char *account,
				    const char *folder,
				    const struct cpmsync_metadata_entry *entries, size_t n_entries)
{
	return op_run(store, NULL, set_metadata_entries,
		      &(struct metadata_entries_args){ account, folder, entries, n_entries });
}

/*
 * Read-your-writes: one statement (one snapshot) over the account's
 * set_metadata rows of the folder in journal order, so that the newest
 * row of an entry is the last one seen.  A failed row counts: its local
 * effect stays until it is retried (pending again) or discarded (gone).
 */
int cpmsync_store_pending_metadata(struct cpmsync_store *store, const char *account,
				   int64_t folder_id, const char *const *entries, size_t n_entries,
				   char **ret_values)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int found = 0;
	int r;

	if (!s || !account || (n_entries && (!entries || !ret_values)))
		return -EINVAL;
	for (size_t i = 0; i < n_entries; i++)
		ret_values[i] = NULL;
	r = store_prepare(s,
			  "SELECT j.args FROM journal j JOIN account a ON a.id = j.account_id"
			  " WHERE a.name = ?1 AND j.op = ?2 AND j.folder_id IS ?3 ORDER BY j.id",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	journal_bind_op(st, 2, JOURNAL_OP_SET_METADATA);
	if (folder_id)
		sqlite3_bind_int64(st, 3, folder_id);
	while ((r = store_step(s, st)) > 0) {
		_cleanup_(journal_args_free) struct journal_args a = { 0 };
		const char *why;

		r = journal_args_decode(JOURNAL_OP_SET_METADATA,
					(const char *)sqlite3_column_text(st, 0), &a, &why);
		if (r == -EBADMSG)
			continue; /* replay reports it as a failed operation */
		if (r < 0)
			break;
		for (size_t i = 0; i < n_entries; i++) {
			char *v;

			if (!entries[i] || strcasecmp(entries[i], a.metadata.entry) != 0)
				continue;
			v = strdup(a.metadata.value);
			if (!v) {
				r = -ENOMEM;
				break;
			}
			found += !ret_values[i];
			free(ret_values[i]);
			ret_values[i] = v;
		}
		if (r < 0)
			break;
	}
	sqlite3_reset(st);
	if (r < 0) {
		for (size_t i = 0; i < n_entries; i++) {
			free(ret_values[i]);
			ret_values[i] = NULL;
		}
		if (!*store_error(s))
			store_set_error(s, "%s", cpmsync_strerror(r));
		return r;
	}
	return found;
}

/* Annotations (ANNOTATE). */

int cpmsync_annotation_entry_check(const char *entry, const char **ret_why)
{
	const char *why = NULL;
	size_t n = entry ? strlen(entry) : 0;

	if (!entry || entry[0] != '/')
		why = "must start with '/'";
	else if (n > METADATA_ENTRY_MAX)
		why = "is too long";
	else if (n > 1 && entry[n - 1] == '/')
		why = "must not end with '/'";
	else if (strstr(entry, "//"))
		why = "must not contain \"//\"";
	for (size_t i = 0; !why && i < n; i++) {
		unsigned char c = (unsigned char)entry[i];

		if (c <= ' ' || c == 0x7f || c == '*' || c == '%' || c == '"' || c == '\\')
			why = "must not contain a space, '*', '%', '\"', '\\' or a control "
			      "character";
	}
	if (n == 1 && !why)
		why = "must name an entry below '/'";
	if (why) {
		if (ret_why)
			*ret_why = why;
		return -EINVAL;
	}
	return 0;
}

struct annotation_args {
	int64_t message_id;
	const struct cpmsync_annotation *values;
	size_t n;
	bool shared;
};

static int set_annotations_check(struct store *s, void *args)
{
	const struct annotation_args *a = args;

	if (a->n == 0 || !a->values) {
		store_set_error(s, "no annotation given");
		return -EINVAL;
	}
	for (size_t i = 0; i < a->n; i++) {
		const char *why = "";

		if (cpmsync_annotation_entry_check(a->values[i].entry, &why) < 0) {
			store_set_error(s, "annotation entry \"%s\" %s",
					a->values[i].entry ? a->values[i].entry : "(null)", why);
			return -EINVAL;
		}
		if (a->values[i].value && strlen(a->values[i].value) > METADATA_VALUE_MAX) {
			store_set_error(s, "value of annotation \"%s\" longer than %d bytes",
					a->values[i].entry, METADATA_VALUE_MAX);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Each value becomes the entry's pending local value (annotation.local),
 * the message gets one pending 'set_annotation' row (as for flags: a
 * failed one does not count), which pushes whatever is pending when it
 * replays.  A message not on the server yet gets its row too: it replays
 * after the APPEND, which comes first in the journal.
 */
static int set_annotations(struct store *s, void *args)
{
	const struct annotation_args *a = args;
	struct message_row m;
	sqlite3_stmt *st;
	int r;

	r = find_message(s, a->message_id, &m, NULL);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a->n; i++) {
		const char *v = a->values[i].value ? a->values[i].value : "";

		r = store_prepare(s,
				  "INSERT INTO annotation (message_id, entry, shared, local)"
				  " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (message_id, entry, shared)"
				  " DO UPDATE SET local = excluded.local",
				  &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, m.id);
		sqlite3_bind_text(st, 2, a->values[i].entry, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, a->shared ? 1 : 0);
		sqlite3_bind_text(st, 4, v, -1, SQLITE_STATIC);
		r = store_step_done(s, st);
		if (r < 0)
			return r;
		/* A refused row that held the entry holds it no more: the new
		 * value goes with the new row (and the row goes with the last
		 * entry it held). */
		r = prepare_ops(
			s,
			"UPDATE journal SET args = replace(args, char(10) || ?3 || ' ' || ?2"
			" || char(10), char(10)) WHERE message_id = ?1 AND args IS NOT NULL"
			" AND op = :op_set_annotation",
			&st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, m.id);
		sqlite3_bind_text(st, 2, a->values[i].entry, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, a->shared ? 1 : 0);
		r = store_step_done(s, st);
		if (r < 0)
			return r;
	}
	r = exec_int(s,
		     "DELETE FROM journal WHERE message_id = ?1 AND args = char(10)"
		     " AND op = :op_set_annotation",
		     m.id);
	if (r < 0)
		return r;
	/* One row to send the change: not one that holds entries refused
	 * (store_annotation_hold()), which are its own. */
	r = store_prepare(s,
			  "INSERT INTO journal (account_id, op, folder_id, message_id)"
			  " SELECT ?1, ?4, ?2, ?3 WHERE NOT EXISTS"
			  " (SELECT 1 FROM journal WHERE message_id = ?3 AND op = ?4"
			  " AND failed = 0 AND args IS NULL)",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, m.account_id);
	sqlite3_bind_int64(st, 2, m.folder_id);
	sqlite3_bind_int64(st, 3, m.id);
	journal_bind_op(st, 4, JOURNAL_OP_ANNOTATION);
	return store_step_done(s, st);
}

int cpmsync_op_set_annotations(struct cpmsync_store *store, int64_t message_id,
			       const struct cpmsync_annotation *values, size_t n_values,
			       bool shared)
{
	return op_run(store, set_annotations_check, set_annotations,
		      &(struct annotation_args){ message_id, values, n_values, shared });
}

/* ------------------------------------------------------------------ */
/* ACL */

#define ACL_IDENTIFIER_MAX CPMSYNC_ACL_IDENTIFIER_MAX
#define ACL_RIGHTS_MAX	   64

static int set_acl(struct store *s, void *args)
{
	const struct pair_args *a = args;
	const char *account = a->account, *folder = a->folder, *identifier = a->first;
	const char *rights = a->second;
	size_t n;

	n = identifier ? strlen(identifier) : 0;
	if (n == 0 || n > ACL_IDENTIFIER_MAX) {
		store_set_error(s, "identifier: must be 1 to %d bytes", ACL_IDENTIFIER_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)identifier[i] < 0x20 || identifier[i] == 0x7f) {
			store_set_error(s, "identifier: control character");
			return -EINVAL;
		}
	if (!rights)
		rights = "";
	/* RFC 4314: rights are letters and digits, optionally led by +/-. */
	n = strlen(rights);
	if (n > ACL_RIGHTS_MAX) {
		store_set_error(s, "rights: longer than %d characters", ACL_RIGHTS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		char c = rights[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      (i == 0 && (c == '+' || c == '-')))) {
			store_set_error(s, "rights: \"%s\" is not an RFC 4314 rights string",
					rights);
			return -EINVAL;
		}
	}
	return journal_pair(
		s, account, folder, false,
		&(struct journal_args){ .op = JOURNAL_OP_SET_ACL, .acl = { identifier, rights } });
}

int cpmsync_op_set_acl(struct cpmsync_store *store, const char *account, const char *folder,
		       const char *identifier, const char *rights)
{
	return op_run(store, NULL, set_acl,
		      &(struct pair_args){ account, folder, identifier, rights });
}

/* ------------------------------------------------------------------ */
/* Taking back a refused APPEND */

static int discard(struct store *s, void *args)
{
	int64_t id = *(const int64_t *)args;
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s,
			  "SELECT m.uid IS NULL,"
			  " (SELECT count(*) FROM journal j WHERE j.message_id = m.id"
			  "  AND j.op IN (?2, ?3, ?4) AND j.attempts > 0"
			  "  AND j.refused IS NULL)"
			  " FROM message m WHERE m.id = ?1 AND m.removed = 0",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	journal_bind_op(st, 2, JOURNAL_OP_APPEND);
	journal_bind_op(st, 3, JOURNAL_OP_COPY);
	journal_bind_op(st, 4, JOURNAL_OP_MOVE);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "message %" PRId64 " not found", id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	if (!sqlite3_column_int(st, 0) || sqlite3_column_int(st, 1) > 0) {
		sqlite3_reset(st);
		store_set_error(s, "message %" PRId64 " is on the server or may have reached it",
				id);
		return -EBUSY;
	}
	sqlite3_reset(st);
	return purge_message(s, id, false, 0);
}

int cpmsync_op_discard(struct cpmsync_store *store, int64_t message_id)
{
	return op_run(store, NULL, discard, &message_id);
}

/* ------------------------------------------------------------------ */
/* Failed operations: retry, discard */

struct failed_args {
	const char *account;
	int64_t id;
};

struct failed_row {
	enum journal_op op;
	int64_t folder_id, message_id;
	char *args;
};

static void failed_row_free(struct failed_row *row)
{
	free(row->args);
}

/* The failed row a->id of a->account; -CPMSYNC_E_NOT_FOUND. */
static int find_failed(struct store *s, const struct failed_args *a, struct failed_row *ret)
{
	sqlite3_stmt *st;
	const char *op;
	int r;

	*ret = (struct failed_row){ 0 };
	r = store_prepare(s,
			  "SELECT j.op, coalesce(j.folder_id, 0), coalesce(j.message_id, 0), j.args"
			  " FROM journal j JOIN account a ON a.id = j.account_id"
			  " WHERE j.id = ?1 AND a.name = ?2 AND j.failed = 1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, a->id);
	sqlite3_bind_text(st, 2, a->account ? a->account : "", -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "account \"%s\" has no failed operation %" PRId64,
				a->account ? a->account : "", a->id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	op = (const char *)sqlite3_column_text(st, 0);
	ret->folder_id = sqlite3_column_int64(st, 1);
	ret->message_id = sqlite3_column_int64(st, 2);
	if (journal_op_from_string(op, &ret->op) < 0)
		ret->op = _JOURNAL_OP_MAX;
	r = store_col_strdup(st, 3, &ret->args);
	sqlite3_reset(st);
	return r;
}

static int retry(struct store *s, void *args)
{
	_cleanup_(failed_row_free) struct failed_row row = { 0 };
	int r = find_failed(s, args, &row);

	if (r < 0)
		return r;
	r = exec_int(s,
		     "UPDATE journal SET failed = 0, tries = 0, retry_after = 0,"
		     " refused = NULL, code = NULL WHERE id = ?1",
		     ((const struct failed_args *)args)->id);
	if (r < 0)
		return r;
	/* Rows that failed only because an operation they need had failed
	 * (store_journal_blocked(): code NULL) are looked at again: those
	 * that still wait for a failed one fail again, naming it. */
	return exec_int(s,
			"UPDATE journal SET failed = 0, refused = NULL WHERE failed = 1"
			" AND code IS NULL AND account_id ="
			" (SELECT account_id FROM journal WHERE id = ?1)",
			((const struct failed_args *)args)->id);
}

int cpmsync_op_retry(struct cpmsync_store *store, const char *account, int64_t id)
{
	return op_run(store, NULL, retry, &(struct failed_args){ account, id });
}

/* A move that never reached the server: its source shows again. */
static int discard_move(struct store *s, const struct failed_row *row)
{
	_cleanup_(journal_args_free) struct journal_args ja = { 0 };
	int r;

	r = journal_args_decode(JOURNAL_OP_MOVE, row->args, &ja, NULL);
	if (r == -EBADMSG)
		return 0; /* no source to name */
	if (r < 0)
		return r;
	return exec_int(s, "UPDATE message SET removed = 0 WHERE id = ?1 AND uid IS NOT NULL",
			ja.copy.src_id);
}

/*
 * A rename that never reached the server: the folder takes its server name
 * back, and the sub-folders renamed with it (rename_folder()) their names
 * under it.  Refused when another folder has taken one of those names.
 */
static int discard_rename(struct store *s, int64_t folder_id)
{
	_cleanup_free_ char *name = NULL, *server_name = NULL;
	sqlite3_stmt *st;
	int64_t acc;
	int r;

	r = store_prepare(s, "SELECT account_id, name, server_name FROM folder WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r <= 0)
		return r; /* gone: nothing to put back */
	acc = sqlite3_column_int64(st, 0);
	r = store_col_strdup(st, 1, &name);
	if (r >= 0)
		r = store_col_strdup(st, 2, &server_name);
	sqlite3_reset(st);
	if (r < 0)
		return r;
	if (!server_name || streq(name, server_name))
		return 0;

	r = store_prepare(s,
			  "SELECT o.name FROM folder t JOIN folder o ON o.account_id = t.account_id"
			  " AND o.name = ?3 || substr(t.name, length(?2) + 1)"
			  " WHERE t.account_id = ?1 AND t.removed = 0 AND (t.name = ?2 OR"
			  " substr(t.name, 1, length(?2) + 1) = ?2 || '/') AND NOT (o.name = ?2"
			  " OR substr(o.name, 1, length(?2) + 1) = ?2 || '/') LIMIT 1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, acc);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, server_name, -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r > 0) {
		store_set_error(s,
				"cannot put folder \"%s\" back as \"%s\": folder \"%s\" exists now",
				name, server_name, (const char *)sqlite3_column_text(st, 0));
		sqlite3_reset(st);
		return -EEXIST;
	}
	r = store_prepare(s,
			  "UPDATE folder AS t SET name = ?3 || substr(t.name, length(?2) + 1)"
			  " WHERE t.account_id = ?1 AND t.removed = 0 AND (t.name = ?2 OR"
			  " substr(t.name, 1, length(?2) + 1) = ?2 || '/')",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, acc);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, server_name, -1, SQLITE_STATIC);
	return store_step_done(s, st);
}

static int discard_failed(struct store *s, void *args)
{
	const struct failed_args *a = args;
	_cleanup_(failed_row_free) struct failed_row row = { 0 };
	int r = find_failed(s, a, &row);

	if (r < 0)
		return r;
	/* The row first, so that purge_message() turns no move into an
	 * expunge of its source. */
	r = exec_int(s, "DELETE FROM journal WHERE id = ?1", a->id);
	if (r < 0)
		return r;
	switch (row.op) {
	case JOURNAL_OP_MOVE:
		r = discard_move(s, &row);
		if (r < 0)
			return r;
		/* fall through */
	case JOURNAL_OP_APPEND:
	case JOURNAL_OP_COPY:
		/* Refused for good: it never reached the server. */
		return purge_message(s, row.message_id, false, 0);
	case JOURNAL_OP_FLAGS:
		return exec_int(s,
				"UPDATE message_state SET flags = server_flags"
				" WHERE id = ?1 AND server_flags IS NOT NULL",
				row.message_id);
	case JOURNAL_OP_EXPUNGE:
		return exec_int(s,
				"UPDATE message SET removed = 0 WHERE id = ?1 AND uid IS NOT NULL",
				row.message_id);
	case JOURNAL_OP_CREATE_FOLDER:
		r = exec_int(
			s,
			"DELETE FROM journal WHERE folder_id = ?1 AND EXISTS (SELECT 1 FROM folder"
			" WHERE id = ?1 AND server_name IS NULL)",
			row.folder_id);
		if (r < 0)
			return r;
		return exec_int(s, "DELETE FROM folder WHERE id = ?1 AND server_name IS NULL",
				row.folder_id);
	case JOURNAL_OP_RENAME_FOLDER:
		return discard_rename(s, row.folder_id);
	case JOURNAL_OP_DELETE_FOLDER:
		return exec_int(s, "UPDATE folder SET removed = 0 WHERE id = ?1", row.folder_id);
	case JOURNAL_OP_ANNOTATION:
		/* The entries it held refused: the server's values win for
		 * those (another row sends the others). */
		if (row.args) {
			sqlite3_stmt *st;

			r = store_prepare(s,
					  "UPDATE annotation SET local = NULL WHERE message_id = ?1"
					  " AND instr(?2, char(10) || shared || ' ' || entry ||"
					  " char(10)) > 0",
					  &st);
			if (r < 0)
				return r;
			sqlite3_bind_int64(st, 1, row.message_id);
			sqlite3_bind_text(st, 2, row.args, -1, SQLITE_STATIC);
			return store_step_done(s, st);
		}
		/* The server's values win, unless a later change is queued. */
		return exec_int(s,
				"UPDATE annotation SET local = NULL WHERE message_id = ?1"
				" AND NOT EXISTS (SELECT 1 FROM journal WHERE message_id = ?1"
				" AND op = :op_set_annotation)",
				row.message_id);
	case JOURNAL_OP_SET_METADATA:
	case JOURNAL_OP_SET_ACL:
	default:
		/* Nothing local beyond the row: reads ask the server. */
		return 0;
	}
}

int cpmsync_op_discard_failed(struct cpmsync_store *store, const char *account, int64_t id)
{
	return op_run(store, NULL, discard_failed, &(struct failed_args){ account, id });
}

struct remove_account_args {
	const char *account;
	uint32_t dropped;
};

static int remove_account(struct store *s, void *args)
{
	struct remove_account_args *a = args;
	sqlite3_stmt *st;
	int64_t acc = 0;
	int r;

	r = store_prepare(s, "SELECT id FROM account WHERE name = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, a->account, -1, SQLITE_TRANSIENT);
	r = store_step(s, st);
	if (r <= 0)
		return r; /* never known here: nothing to remove */
	acc = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	r = store_prepare(s, "SELECT count(*) FROM journal WHERE account_id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, acc);
	r = store_step(s, st);
	if (r <= 0)
		return r < 0 ? r : -EIO;
	a->dropped = (uint32_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	/* Folders, messages (their bodies by the triggers), journal and
	 * conversations go with the account row (ON DELETE CASCADE). */
	r = store_exec_id(s, "DELETE FROM account WHERE id = ?1", acc);
	if (r >= 0)
		r = store_exec_id(s, "DELETE FROM conv_stale WHERE account_id = ?1", acc);
	return r;
}

int cpmsync_store_remove_account(struct cpmsync_store *store, const char *account,
				 uint32_t *ret_dropped)
{
	struct remove_account_args a = { .account = account };
	int r;

	if (ret_dropped)
		*ret_dropped = 0;
	if (!account)
		return -EINVAL;
	r = op_run(store, NULL, remove_account, &a);
	if (r >= 0 && ret_dropped)
		*ret_dropped = a.dropped;
	return r;
}
