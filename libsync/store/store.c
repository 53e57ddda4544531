/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/io.h>

#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/loop-stall.h"
#include "util/macro.h"

#define STORE_STR_(x) #x
#define STORE_STR(x)  STORE_STR_(x)
#define STMT_SLOTS    1024 /* a power of 2 */

struct store {
	sqlite3 *db;
	/* The file opened, as store_check_file() finds it again (file_ino
	 * 0: not known); file_gone once it found it removed or replaced. */
	char *file_path;
	dev_t file_dev;
	ino_t file_ino;
	bool file_gone;
	bool readonly;
	/* A STORE_READONLY store on a read-only medium without its -shm
	 * (ro_medium_without_shm()): opened as this URI, with EXCLUSIVE locking
	 * when ro_exclusive; NULL otherwise. */
	char *ro_uri;
	bool ro_exclusive;
	bool keep_wal; /* STORE_KEEP_WAL */
	/* store_open_at_version_for_test(): a new store is made by the
	 * migrations, never from the snapshot. */
	bool migrations_only;
	bool in_tx;
	struct store_batch *batch; /* the open transaction is this owner's batch */
	sqlite3_stmt **stmts;	   /* the statement cache of store_prepare() */
	/* Per cached statement, what authorize() noted at its prepare:
	 * STMT_CONV, it reads or rewrites conversation rows (itself or
	 * through a trigger); STMT_STALE, it may note rows in conv_stale. */
	unsigned char *stmt_flags;
	size_t n_stmts, alloc_stmts;
	unsigned char prep_flags; /* authorize()'s note of the statement being prepared */
	/* Its index by the address of the SQL text (a call site's literal),
	 * open addressing, at most STMT_SLOTS / 2 used; a hit is checked
	 * against the statement's text, since a freed string's address may
	 * come back with other SQL. */
	struct stmt_slot {
		const char *sql;
		size_t i; /* in stmts */
	} stmt_slot[STMT_SLOTS];
	size_t n_slots;
	char error[512];
	int last_rc; /* the SQLite code of the last store_fail() */
	/* store-changes.c's state, freed on close. */
	void *watch;
	/* store-changes.c: what this connection does with foreign_change
	 * (schema version 40), enum store_foreign. */
	unsigned foreign;
	/* store-body.c: the bodies database (schema version 4 on). */
	struct store_bodies *bodies;
	bool bodies_ready; /* migrated to version 4: body_trash exists */
	/* store_note_once()'s keys, in memory only. */
	struct store_note {
		void *key;
		size_t len;
	} * notes;
	size_t n_notes;
	/* store_conv_bump(): folders whose conversation row's version is
	 * bumped at the commit of the open transaction (schema version 17). */
	int64_t *conv_bump;
	size_t n_conv_bump, alloc_conv_bump;
	/* store-message.c's filter of report names, freed on close; and the
	 * number of write transactions begun (it validates once in each). */
	void *imdn_filter;
	uint64_t tx_seq;
	/* store-message.c's conversation rows not yet written (conv_dirty:
	 * some are pending), freed by store_close(). */
	void *conv_acc;
	void *conv_own; /* store-conv.c's own addresses, freed on close */
	bool conv_dirty;
	bool conv_stale; /* a statement that may note conv_stale rows ran */
	/* store_mark(): the transaction (tx_seq) its savepoint is in (0:
	 * none), conv_bump's length then, and its two statements. */
	uint64_t mark_tx;
	size_t mark_conv_bump;
	sqlite3_stmt *mark_st[2];
	bool full_safe; /* store_set_full_safe() */
};

#define STMT_CONV  1u
#define STMT_STALE 2u

int store_map_sqlite_error(int sqlite_rc)
{
	switch (sqlite_rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -CPMSYNC_E_STORE_BUSY;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -CPMSYNC_E_STORE_CORRUPT;
	case SQLITE_FULL:
		return -CPMSYNC_E_STORE_FULL;
	case SQLITE_IOERR:
		return -EIO;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CONSTRAINT:
		if (sqlite_rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			return -CPMSYNC_E_NOT_FOUND;
		return -EEXIST;
	case SQLITE_TOOBIG:
		return -E2BIG;
	default:
		return -EIO;
	}
}

void store_set_error(struct store *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
}
#define set_error store_set_error

void store_clear_error(struct store *s)
{
	s->error[0] = '\0';
}

const char *store_sqlite_file(sqlite3 *db)
{
	const char *file = db ? sqlite3_db_filename(db, "main") : NULL;

	return file ? file : "";
}

static int room_errno(int err)
{
	return err == ENOSPC || err == EDQUOT || err == EFBIG ? err : 0;
}

int store_no_room_errno(sqlite3 *db, int sqlite_rc)
{
	sqlite3_file *journal = NULL;
	int err = 0;

	if (!db || (sqlite_rc & 0xff) != SQLITE_IOERR)
		return 0;
	if (room_errno(sqlite3_system_errno(db)))
		return sqlite3_system_errno(db);
	/*
	 * The connection's errno is not always the write's: a COMMIT whose
	 * WAL frames cannot be written leaves it 0 (measured with SQLite
	 * 3.40, RLIMIT_FSIZE 0), and the errno of the failing file is only
	 * that file's (unix VFS lastErrno), the WAL's (or rollback journal's)
	 * or the database's.
	 */
	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &journal) == SQLITE_OK &&
	    journal && journal->pMethods && journal->pMethods->xFileControl &&
	    journal->pMethods->xFileControl(journal, SQLITE_FCNTL_LAST_ERRNO, &err) == SQLITE_OK &&
	    room_errno(err))
		return err;
	err = 0;
	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_LAST_ERRNO, &err) != SQLITE_OK)
		return 0;
	return room_errno(err);
}

int store_map_db_error(sqlite3 *db, int sqlite_rc)
{
	int err = store_no_room_errno(db, sqlite_rc);

	return err ? -err : store_map_sqlite_error(sqlite_rc);
}

int store_fail(struct store *s, int sqlite_rc)
{
	const char *file = store_sqlite_file(s->db);
	int err = store_no_room_errno(s->db, sqlite_rc);

	s->last_rc = sqlite_rc;
	if (*file)
		set_error(s, "%s: %s (%d)%s%s", file, sqlite3_errmsg(s->db), sqlite_rc,
			  err ? ": " : "", err ? strerror(err) : "");
	else
		set_error(s, "%s (%d)%s%s", sqlite3_errmsg(s->db), sqlite_rc, err ? ": " : "",
			  err ? strerror(err) : "");
	return err ? -err : store_map_sqlite_error(sqlite_rc);
}

bool store_is_readonly(const struct store *s)
{
	return s->readonly;
}

void **store_watch_slot(struct store *s)
{
	return &s->watch;
}

unsigned *store_foreign_slot(struct store *s)
{
	return &s->foreign;
}

void **store_conv_own_slot(struct store *s)
{
	return &s->conv_own;
}

struct store_bodies **store_bodies_slot(struct store *s)
{
	return &s->bodies;
}

const char *store_error(const struct store *s)
{
	if (!s)
		return "";
	return s->error;
}

sqlite3 *store_db(struct store *s)
{
	return s->db;
}

int store_set_busy_timeout(struct store *s, unsigned ms)
{
	int rc;

	if (!s || ms > INT32_MAX)
		return -EINVAL;
	rc = sqlite3_busy_timeout(s->db, (int)ms);
	if (rc != SQLITE_OK)
		return store_fail(s, rc);
	return 0;
}

int store_exec(struct store *s, const char *sql)
{
	int rc;

	if (!s || !sql)
		return -EINVAL;
	if (s->conv_dirty) {
		/* Any SQL: the held-back conversation rows go first. */
		int r = store_conv_pending_flush(s);

		if (r < 0)
			return r;
	}
	s->prep_flags = 0;
	rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (s->prep_flags & STMT_STALE)
		s->conv_stale = s->conv_dirty = true;
	if (rc != SQLITE_OK)
		return store_fail(s, rc);
	return 0;
}

int store_read_begin(struct store *s, bool *own)
{
	*own = sqlite3_get_autocommit(s->db);
	return *own ? store_exec(s, "BEGIN") : 0;
}

int store_read_end(struct store *s, bool own, int r)
{
	int rc;

	if (!own || sqlite3_get_autocommit(s->db))
		return r;
	/* Nothing was written: COMMIT only ends the snapshot. */
	rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		if (r == 0)
			r = store_fail(s, rc);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return r;
}

int64_t store_last_insert_id(const struct store *s)
{
	return sqlite3_last_insert_rowid(s->db);
}

static size_t sql_slot(const char *sql)
{
	uint64_t h = (uint64_t)(uintptr_t)sql * 0x9e3779b97f4a7c15u;

	return (size_t)(h >> 40) & (STMT_SLOTS - 1);
}

/*
 * The index in stmts of the cached statement of sql, or -1.  Found by
 * address first; else by text over all of them (strcmp, as before the
 * index), and the address is then noted for the next time.
 */
static ssize_t cached(struct store *s, const char *sql)
{
	size_t h = sql_slot(sql), i;
	struct stmt_slot *stale = NULL;

	for (; s->stmt_slot[h].sql; h = (h + 1) & (STMT_SLOTS - 1)) {
		if (s->stmt_slot[h].sql != sql)
			continue;
		if (streq(sqlite3_sql(s->stmts[s->stmt_slot[h].i]), sql))
			return (ssize_t)s->stmt_slot[h].i;
		stale = &s->stmt_slot[h];
		break;
	}
	for (i = 0; i < s->n_stmts; i++)
		if (streq(sqlite3_sql(s->stmts[i]), sql))
			break;
	if (i == s->n_stmts)
		return -1;
	if (stale) {
		stale->i = i;
	} else if (s->n_slots < STMT_SLOTS / 2) {
		s->stmt_slot[h] = (struct stmt_slot){ sql, i };
		s->n_slots++;
	}
	return (ssize_t)i;
}

/*
 * The authorizer, installed at open: it allows everything and notes what
 * a statement being prepared does with the conversation rows, in its own
 * text or in a trigger it fires (SQLite codes a statement's triggers, and
 * asks about their bodies, at prepare time).  prepare() keeps the note
 * with the statement.  STMT_CONV: it reads conversation rows or rewrites
 * them, so the rows store-message.c holds back must be written first.
 * Not for an INSERT alone (CPM_ENSURE: a new row, which nothing held back
 * is about), nor for conv_message_flags, which only adds the change of
 * Unseen to the row (a delta: the same before or after the held-back
 * ones, and a recompute after it counts the flags as they are), nor for
 * the watch's cpm_message_flags, cpm_message_update and
 * cpm_summary_snippet (store-changes.c), which read last_id to note the
 * row changed (a row whose last message a held-back one replaces changes
 * anyway, at the flush), nor for their foreign_ twins, which note the
 * same for the daemon.
 * STMT_STALE: it may note conversations in conv_stale (schema version
 * 21), to be recomputed at the next flush.
 */
static int authorize(void *userdata, int action, const char *a, const char *b, const char *db,
		     const char *trigger)
{
	struct store *s = userdata;

	(void)b;
	(void)db;
	if (!a)
		return SQLITE_OK;
	switch (action) {
	case SQLITE_READ:
	case SQLITE_UPDATE:
	case SQLITE_DELETE:
		if (streq(a, "conversation") &&
		    !(trigger && (streq(trigger, "conv_message_flags") ||
				  streq(trigger, "cpm_message_flags") ||
				  streq(trigger, "cpm_message_update") ||
				  streq(trigger, "cpm_summary_snippet") ||
				  streq(trigger, "foreign_message_flags") ||
				  streq(trigger, "foreign_message_update") ||
				  streq(trigger, "foreign_summary_snippet"))))
			s->prep_flags |= STMT_CONV;
		break;
	case SQLITE_INSERT:
		if (streq(a, "conv_stale"))
			s->prep_flags |= STMT_STALE;
		break;
	default:
		break;
	}
	return SQLITE_OK;
}

static int grow_statements(struct store *s)
{
	size_t n = s->alloc_stmts ? s->alloc_stmts * 2 : 16;
	sqlite3_stmt **p = reallocarray(s->stmts, n, sizeof(*p));
	unsigned char *f;

	if (!p)
		return -ENOMEM;
	s->stmts = p;
	f = reallocarray(s->stmt_flags, n, sizeof(*f));
	if (!f)
		return -ENOMEM;
	s->stmt_flags = f;
	s->alloc_stmts = n;
	return 0;
}

/* Before a statement with authorize()'s note f runs: the held-back
 * conversation rows written if it needs them (and flush allows), the
 * store marked if it may note more in conv_stale. */
static int before_statement(struct store *s, unsigned f, bool flush)
{
	if (flush && s->conv_dirty && (f & STMT_CONV)) {
		int r = store_conv_pending_flush(s);

		if (r < 0)
			return r;
	}
	if (f & STMT_STALE)
		s->conv_stale = s->conv_dirty = true;
	return 0;
}

static int prepare(struct store *s, const char *sql, sqlite3_stmt **ret, bool flush)
{
	sqlite3_stmt *st;
	unsigned char f;
	ssize_t i;
	int rc, r;

	if (!s || !sql || !ret)
		return -EINVAL;
	i = cached(s, sql);
	if (i >= 0) {
		r = before_statement(s, s->stmt_flags[i], flush);
		if (r < 0)
			return r;
		st = s->stmts[i];
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		*ret = st;
		return 0;
	}
	s->prep_flags = 0;
	rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc);
	if (!st) {
		set_error(s, "empty SQL statement");
		return -EINVAL;
	}
	f = s->prep_flags;
	/* The flush prepares statements of its own: before the slot. */
	r = before_statement(s, f, flush);
	if (r >= 0 && s->n_stmts == s->alloc_stmts)
		r = grow_statements(s);
	if (r < 0) {
		sqlite3_finalize(st);
		return r;
	}
	s->stmt_flags[s->n_stmts] = f;
	s->stmts[s->n_stmts++] = st;
	*ret = st;
	return 0;
}

int store_prepare(struct store *s, const char *sql, sqlite3_stmt **ret)
{
	return prepare(s, sql, ret, true);
}

int store_prepare_conv_pending(struct store *s, const char *sql, sqlite3_stmt **ret)
{
	return prepare(s, sql, ret, false);
}

/* Empties the statement cache (after the migrations: a statement's note
 * of the conversation rows is the schema's at its prepare). */
static void drop_statements(struct store *s)
{
	for (size_t i = 0; i < s->n_stmts; i++)
		sqlite3_finalize(s->stmts[i]);
	s->n_stmts = 0;
	memset(s->stmt_slot, 0, sizeof(s->stmt_slot));
	s->n_slots = 0;
}

int store_step(struct store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return 0;
	}
	rc = store_fail(s, rc);
	sqlite3_reset(st);
	return rc;
}

int store_step_done(struct store *s, sqlite3_stmt *st)
{
	int r = store_step(s, st);

	if (r > 0) {
		sqlite3_reset(st);
		r = 0;
	}
	return r;
}

int store_row_by_id(struct store *s, const char *sql, int64_t id, const char *what,
		    sqlite3_stmt **ret)
{
	int r = store_prepare(s, sql, ret);

	if (r < 0)
		return r;
	sqlite3_bind_int64(*ret, 1, id);
	r = store_step(s, *ret);
	if (r == 0) {
		store_set_error(s, "no %s with id %lld", what, (long long)id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	return r;
}

int store_exec_id(struct store *s, const char *sql, int64_t id)
{
	sqlite3_stmt *st;
	int r = store_prepare(s, sql, &st);

	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	return store_step_done(s, st);
}

int store_id_test(struct store *s, const char *sql, int64_t id, bool *ret)
{
	sqlite3_stmt *st;
	int r = store_prepare(s, sql, &st);

	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	*ret = r > 0 && sqlite3_column_int(st, 0) != 0;
	if (r > 0)
		sqlite3_reset(st);
	return 0;
}

int store_exec_uid_range(struct store *s, const char *sql, int64_t folder_id, uint32_t lo,
			 uint32_t hi)
{
	sqlite3_stmt *st;
	int r = store_prepare(s, sql, &st);

	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, folder_id);
	sqlite3_bind_int64(st, 2, lo);
	sqlite3_bind_int64(st, 3, hi);
	return store_step_done(s, st);
}

void store_bind_text_or_null(sqlite3_stmt *st, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(st, i, t, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/*
 * The same without SQLite's copy of the text (SQLITE_STATIC): t must stay
 * as it is until the statement has been stepped to its end (as
 * store_step_done() does).  The pointer SQLite keeps after that is never
 * read: store_prepare() clears the bindings of a cached statement before
 * handing it out again, and finalizing reads none.  The copy cost about
 * 500 instructions a bind (a malloc, a memcpy, a free): 19 binds a
 * message in store_message_insert(), 3% of an initial sync.
 */
void store_bind_text_static_or_null(sqlite3_stmt *st, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Runs a pragma or query that returns one integer. */
static int query_int(struct store *s, const char *sql, int64_t *ret)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		set_error(s, "no result from \"%s\"", sql);
		return -EIO;
	}
	*ret = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

bool store_in_transaction(const struct store *s)
{
	return s && s->in_tx;
}

static int begin(struct store *s)
{
	int r;

	if (s->readonly) {
		set_error(s, "the store is open read-only");
		return -EROFS;
	}
	/* A wait for another writer's lock (busy_timeout): our own work, not
	 * a stop of the process, to the freeze checks (util/loop-stall.h). */
	loop_own_work_begin();
	r = store_exec(s, "BEGIN IMMEDIATE");
	loop_own_work_end();
	if (r < 0)
		return r;
	s->in_tx = true;
	s->tx_seq++;
	return 0;
}

/*
 * Commits the open batch for another writer.  On failure the batch is
 * gone (rolled back) and its owner is told through its struct; the writer
 * that asked goes on regardless, in a transaction of its own.
 */
static void yield_batch(struct store *s)
{
	struct store_batch *b = s->batch;
	int r;

	r = store_commit(s);
	if (r < 0 && b) {
		b->lost = r;
		snprintf(b->error, sizeof(b->error),
			 "sync batch committed for a local call: %.400s", s->error);
		/* The text is the owner's now, not the caller's. */
		s->error[0] = '\0';
	}
}

int store_yield_batch(struct store *s)
{
	struct store_batch *b;

	if (!s)
		return -EINVAL;
	if (!s->in_tx || !s->batch)
		return 0;
	b = s->batch;
	yield_batch(s);
	return b->lost;
}

int store_begin(struct store *s)
{
	if (!s)
		return -EINVAL;
	if (s->in_tx && s->batch)
		yield_batch(s);
	if (s->in_tx) {
		set_error(s, "a transaction is open already (transactions do not nest)");
		return -EBUSY;
	}
	return begin(s);
}

int store_rollback(struct store *s)
{
	int rc;

	if (!s)
		return -EINVAL;
	if (!s->in_tx)
		return 0;
	/* In the transaction still, under its write lock: the pack bytes it
	 * appended are cut off (store-pack.c). */
	store_bodies_rollback(s);
	s->in_tx = false;
	s->batch = NULL;
	s->n_conv_bump = 0;
	store_conv_pending_drop(s);
	store_take_conv_stale(s); /* its notes go with the transaction */
	/* SQLite may already have rolled back by itself (FULL, IOERR, NOMEM). */
	if (sqlite3_get_autocommit(s->db))
		return 0;
	rc = sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc);
	return 0;
}

static const char *const mark_sql[2] = { "SAVEPOINT cpmsync_mark", "RELEASE cpmsync_mark" };

/* Runs mark_sql[i], prepared once (not through store_prepare(): that
 * would write the conversation rows held back, at every message). */
static int mark_step(struct store *s, int i)
{
	int rc;

	if (!s->mark_st[i]) {
		rc = sqlite3_prepare_v3(s->db, mark_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&s->mark_st[i], NULL);
		if (rc != SQLITE_OK)
			return store_fail(s, rc);
	}
	rc = sqlite3_step(s->mark_st[i]);
	sqlite3_reset(s->mark_st[i]);
	return rc == SQLITE_DONE ? 0 : store_fail(s, rc);
}

int store_mark(struct store *s)
{
	int r;

	if (!s || !s->in_tx)
		return -EINVAL;
	/* One savepoint at a time, not one more nested per message. */
	if (s->mark_tx == s->tx_seq && (r = mark_step(s, 1)) < 0)
		return r;
	s->mark_tx = 0;
	r = mark_step(s, 0);
	if (r < 0)
		return r;
	s->mark_tx = s->tx_seq;
	s->mark_conv_bump = s->n_conv_bump;
	store_bodies_mark(s);
	return 0;
}

/* PRAGMA sql's integer, or -1: prepared here, not through store_prepare()
 * (that would write the conversation rows held back). */
static int64_t pragma_int(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

bool store_room_low(struct store *s, uint64_t need)
{
	struct rlimit lim;
	struct statvfs vfs;
	int64_t max, count, size;
	char dir[PATH_MAX], *slash;

	if (!s)
		return false;
	/* A file size limit: the packs, the database and its WAL each stop
	 * at it (EFBIG). */
	if (getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
		return true;
	/* SQLite's own limit (PRAGMA max_page_count: SQLITE_FULL). */
	max = pragma_int(s, "PRAGMA max_page_count");
	count = pragma_int(s, "PRAGMA page_count");
	size = pragma_int(s, "PRAGMA page_size");
	if (max > 0 && count >= 0 && size > 0 && (uint64_t)(max - MIN(max, count)) < need / size)
		return true;
	/* The file system of the database and its packs beside it. */
	if (!s->file_path || strlen(s->file_path) >= sizeof(dir))
		return false;
	strcpy(dir, s->file_path);
	slash = strrchr(dir, '/');
	if (!slash)
		return false;
	slash[slash == dir ? 1 : 0] = '\0';
	if (statvfs(dir, &vfs) < 0)
		return false;
	return (uint64_t)vfs.f_bavail < need / (vfs.f_frsize ? vfs.f_frsize : 1);
}

void store_set_full_safe(struct store *s, bool on)
{
	if (s)
		s->full_safe = on;
}

bool store_full_safe(const struct store *s)
{
	return s && s->full_safe;
}

bool store_has_mark(const struct store *s)
{
	return s && s->in_tx && s->mark_tx == s->tx_seq;
}

int store_rollback_to_mark(struct store *s)
{
	int rc, r;

	if (!s)
		return -EINVAL;
	if (!s->in_tx || s->mark_tx != s->tx_seq) {
		set_error(s, "no mark in the open transaction");
		return -ENOENT;
	}
	/* SQLite may have rolled back by itself (FULL, IOERR, NOMEM): the
	 * savepoint went with the transaction. */
	if (sqlite3_get_autocommit(s->db)) {
		set_error(s, "the transaction was rolled back by SQLite");
		return -ECANCELED;
	}
	r = store_bodies_rollback_to_mark(s);
	if (r < 0)
		return r;
	rc = sqlite3_exec(s->db, "ROLLBACK TO cpmsync_mark", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc);
	if (s->n_conv_bump > s->mark_conv_bump)
		s->n_conv_bump = s->mark_conv_bump;
	return store_conv_pending_restale(s);
}

static int commit(struct store *s);

/* The commit, with its fsyncs and WAL checkpoint: our own work, however
 * long, to the freeze checks (util/loop-stall.h). */
int store_commit(struct store *s)
{
	int r;

	if (!s)
		return -EINVAL;
	loop_own_work_begin();
	r = commit(s);
	loop_own_work_end();
	return r;
}

static int commit(struct store *s)
{
	int rc, r;

	if (!s->in_tx) {
		set_error(s, "no transaction to commit");
		return -EINVAL;
	}
	/* The conversation rows held back, and the versions, in the
	 * transaction they describe. */
	r = store_conv_pending_flush(s);
	if (r >= 0)
		r = store_conv_bump_flush(s);
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	/* Into a file that is gone, the changes would be lost without a word. */
	r = store_check_file(s);
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	/* The bodies first: a row that says it has a body commits after it. */
	r = store_bodies_commit(s);
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		s->in_tx = false;
		s->batch = NULL;
		/* Bodies of rows that went: best effort, finished at the next open. */
		if (s->bodies_ready)
			store_bodies_collect(s, false);
		return 0;
	}
	r = store_fail(s, rc);
	store_rollback(s);
	store_bodies_commit_failed(s);
	return r;
}

int store_batch_take_lost(struct store *s, struct store_batch *b)
{
	int r;

	if (!s || !b)
		return -EINVAL;
	r = b->lost;
	if (r < 0)
		set_error(s, "%s", b->error);
	b->lost = 0;
	return r;
}

bool store_batch_is_open(const struct store *s, const struct store_batch *b)
{
	return s && b && s->in_tx && s->batch == b;
}

int store_batch_begin(struct store *s, struct store_batch *b)
{
	int r;

	if (!s || !b)
		return -EINVAL;
	if (store_batch_is_open(s, b))
		return 0;
	r = store_batch_take_lost(s, b);
	if (r < 0)
		return r;
	/* Another owner's batch: committed, as for a local call. */
	r = store_begin(s);
	if (r < 0)
		return r;
	s->batch = b;
	return 0;
}

int store_batch_commit(struct store *s, struct store_batch *b)
{
	int r;

	if (!s || !b)
		return -EINVAL;
	r = store_batch_take_lost(s, b);
	if (r < 0)
		return r;
	if (!store_batch_is_open(s, b))
		return 0;
	return store_commit(s);
}

void store_batch_rollback(struct store *s, struct store_batch *b)
{
	if (!s || !b)
		return;
	if (store_batch_is_open(s, b))
		store_rollback(s);
	b->lost = 0;
}

/* store_schema_dump(): each table's row count, as comments (of
 * sqlite_sequence, the rows above 0). */
static int dump_row_counts(struct store *s, struct buf *b)
{
	sqlite3_stmt *st, *cnt;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(s->db,
				"SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc);
	while (r >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		/* A sequence at 0 is the same as none (a rebuilt, empty
		 * table leaves one; its next id is 1 either way). */
		char *sql = sqlite3_mprintf(streq(name, "sqlite_sequence")
						    ? "SELECT count(*) FROM \"%w\" WHERE seq <> 0"
						    : "SELECT count(*) FROM \"%w\"",
					    name);

		if (!sql) {
			r = -ENOMEM;
			break;
		}
		rc = sqlite3_prepare_v2(s->db, sql, -1, &cnt, NULL);
		sqlite3_free(sql);
		if (rc != SQLITE_OK) {
			r = store_fail(s, rc);
			break;
		}
		rc = sqlite3_step(cnt);
		if (rc == SQLITE_ROW)
			r = buf_printf(b, "-- %s: %lld rows\n", name,
				       (long long)sqlite3_column_int64(cnt, 0));
		else
			r = store_fail(s, rc);
		sqlite3_finalize(cnt);
	}
	if (r >= 0 && rc != SQLITE_DONE)
		r = store_fail(s, rc);
	sqlite3_finalize(st);
	return r;
}

int store_schema_dump(struct store *s, bool with_state, char **ret)
{
	_cleanup_buf_ struct buf b = BUF_INIT(16 << 20);
	sqlite3_stmt *st;
	int64_t version;
	int rc, r = 0;

	*ret = NULL;
	rc = sqlite3_prepare_v2(s->db,
				"SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL"
				" AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY"
				" CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1"
				" WHEN 'trigger' THEN 2 ELSE 3 END, rowid",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc);
	while (r >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		r = buf_printf(&b, "%s;\n", (const char *)sqlite3_column_text(st, 0));
	if (r >= 0 && rc != SQLITE_DONE)
		r = store_fail(s, rc);
	sqlite3_finalize(st);
	if (r >= 0 && with_state) {
		r = query_int(s, "PRAGMA user_version", &version);
		if (r >= 0)
			r = buf_printf(&b, "-- user_version %lld\n", (long long)version);
		if (r >= 0)
			r = dump_row_counts(s, &b);
	}
	if (r < 0)
		return r;
	*ret = buf_steal(&b);
	return *ret ? 0 : -ENOMEM;
}

static int set_user_version(struct store *s, unsigned v)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA user_version = %u", v);
	return store_exec(s, sql);
}

/* Runs migration v (SQL, then user_version) inside the open transaction. */
static int migrate_one(struct store *s, unsigned v)
{
	int r = store_exec(s, store_migration_sql(v));

	return r < 0 ? r : set_user_version(s, v);
}

/*
 * A new store (user_version 0) is created in one transaction, so that a
 * crash while it is being made leaves either nothing (version 0, no
 * tables) or the whole schema, never a store at an intermediate version
 * that the read-only tools must refuse.  It is made from the snapshot of
 * the newest schema (store-schema-snapshot.c): the migrations cost 58 ms
 * of CPU (rebuilt tables, and a schema re-parse after each change), the
 * snapshot 6 ms.  An existing store is upgraded one
 * version per transaction (version 4 moves the bodies into their own
 * database first, committed there).
 */
static int migrate(struct store *s, const char *path, unsigned target)
{
	for (unsigned v = 1; v <= target; v++) {
		int64_t cur;
		int r;

		r = store_begin(s);
		if (r < 0)
			return r;
		/* Read again under the write lock: another process may have migrated. */
		r = query_int(s, "PRAGMA user_version", &cur);
		if (r < 0)
			goto fail;
		if (cur >= v) {
			r = store_commit(s);
			if (r < 0)
				return r;
			continue;
		}
		if (cur != v - 1) {
			set_error(s, "schema version %lld found while migrating to %u",
				  (long long)cur, v);
			r = -CPMSYNC_E_STORE_CORRUPT;
			goto fail;
		}
		if (cur == 0 && !s->migrations_only && target == store_schema_version() &&
		    store_schema_snapshot_version == target) {
			/* New, at the newest version: the schema the migrations
			 * would leave, made at once (store-schema-snapshot.c). */
			r = store_exec(s, store_schema_snapshot_sql);
			if (r >= 0)
				r = set_user_version(s, target);
			if (r < 0)
				goto fail;
			return store_commit(s);
		}
		if (cur == 0) {
			/* New: every version at once; no bodies to move. */
			for (; v <= target; v++) {
				r = migrate_one(s, v);
				if (r < 0)
					goto fail;
			}
			return store_commit(s);
		}
		if (v == STORE_VERSION_BODIES) {
			/* The bodies move to their own database first (committed
			 * there), then this migration drops the old table. */
			store_rollback(s);
			r = store_bodies_import(s, path);
			if (r < 0)
				return r;
			r = store_begin(s);
			if (r < 0)
				return r;
		}
		r = migrate_one(s, v);
		if (r < 0)
			goto fail;
		r = store_commit(s);
		if (r < 0)
			return r;
		continue;
	fail:
		store_rollback(s);
		return r;
	}
	return 0;
}

/* Sets the journal mode; -EIO when SQLite keeps another one. */
static int set_journal_mode(struct store *s, const char *mode)
{
	char sql[64];
	sqlite3_stmt *st;
	const char *now;
	int rc, r;

	snprintf(sql, sizeof(sql), "PRAGMA journal_mode = %s", mode);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc);
	rc = sqlite3_step(st);
	now = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	r = now && strcasecmp(now, mode) == 0 ? 0 : -EIO;
	if (r < 0)
		set_error(s, "cannot set journal_mode %s (it is %s)", mode, now ? now : "unknown");
	sqlite3_finalize(st);
	return r;
}

/*
 * A store made before version 4 has 64 KiB pages: rebuilt once with
 * STORE_PAGE_SIZE.  Changing the page size of a WAL database takes leaving
 * WAL mode, which fails while another connection has it open (a reader):
 * then it is left for the next open.
 */
static int repage(struct store *s)
{
	int64_t size;
	int r;

	r = query_int(s, "PRAGMA page_size", &size);
	if (r < 0 || size == STORE_PAGE_SIZE)
		return r;
	if (set_journal_mode(s, "delete") < 0)
		return 0;
	r = store_exec(s, "PRAGMA page_size = " STORE_STR(STORE_PAGE_SIZE) "; VACUUM");
	if (set_journal_mode(s, "wal") < 0) {
		set_error(s, "cannot go back to WAL mode after changing the page size");
		return -EIO;
	}
	return r;
}

/*
 * The -wal and -shm files stay beside the store between runs
 * (SQLITE_FCNTL_PERSIST_WAL), the WAL emptied when it is checkpointed
 * (journal_size_limit 0): the two files are not unlinked at every close and
 * created again at the next open (on ext4 the creation dirtied the
 * directory and inode blocks again, 16-20 KB of the ~80 KB a run with
 * nothing to do wrote, measured with /proc/self/io).
 *
 * When the WAL is checkpointed: a commit that leaves it
 * STORE_WAL_CHECKPOINT_PAGES (4 MiB) or longer checkpoints it (SQLite's
 * default is 1,000 pages, meant for its default 4 KiB pages: 4 MB; ours are
 * 1 KiB), and so does the last connection to close, unless it was opened
 * with STORE_KEEP_WAL.  Every page a change touches
 * is written twice, to the WAL and by the checkpoint to its place in
 * store.db; the kernel charges the second write a whole 4 KiB page-cache
 * page per 1 KiB page, and a flag change or an expunge touches pages at
 * random places.  A checkpoint writes each page once however many commits
 * changed it, and neighbouring pages share a page-cache page, so the
 * fewer the checkpoints, the fewer the bytes: cpm-syncd --once (which keeps
 * the WAL, like the daemon's own rounds) checkpointed at every exit, and
 * tests/bench/bench-sync.sh 20000 measured 6,498 bytes written per flag
 * change and 27,466 per expunge; checkpointing at 4 MiB and not at every
 * exit, 4,043 and 20,963 (the same at 8 MiB).  A closed store whose WAL was kept is store.db
 * and store.db-wal together (SQLite reads both; a copy needs both, or
 * `sqlite3 store.db .backup`); the daemon's exit (a read-write close
 * without the flag) still leaves store.db complete on its own.
 */
static int keep_wal_files(struct store *s)
{
	int persist = 1, rc;

	rc = sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	if (rc != SQLITE_OK) {
		set_error(s, "%s: cannot keep the WAL file: %s", store_sqlite_file(s->db),
			  sqlite3_errstr(rc));
		return store_map_db_error(s->db, rc);
	}
	if (s->keep_wal) {
		rc = sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
		if (rc != SQLITE_OK) {
			set_error(s, "%s: cannot keep the WAL at close: %s",
				  store_sqlite_file(s->db), sqlite3_errstr(rc));
			return store_map_db_error(s->db, rc);
		}
	}
	return store_exec(s, "PRAGMA journal_size_limit = 0;"
			     " PRAGMA wal_autocheckpoint = " STORE_STR(STORE_WAL_CHECKPOINT_PAGES));
}

static int setup(struct store *s, const char *path, unsigned target)
{
	unsigned known = store_schema_version();
	sqlite3_stmt *st;
	int64_t version;
	int r, rc;

	sqlite3_extended_result_codes(s->db, 1);
	r = store_set_busy_timeout(s, STORE_BUSY_TIMEOUT_MS);
	if (r < 0)
		return r;
	/* Before the migrations: 29 calls cpmsync_redecode(). */
	rc = store_register_functions(s->db);
	if (rc != SQLITE_OK)
		return store_fail(s, rc);

	if (!s->readonly) {
		const char *mode;

		/*
		 * A new, empty file: small pages (only possible before WAL is
		 * on; repage() converts an older store).  Bodies live in their
		 * own database (store-body.c); what is left is message state
		 * and summaries, and every page a change touches is written
		 * twice (WAL, then checkpoint), so the page is the unit of
		 * cost of a flag change or an expunge.
		 */
		r = store_exec(s, "PRAGMA page_size = " STORE_STR(STORE_PAGE_SIZE));
		if (r < 0)
			return r;
		r = store_prepare(s, "PRAGMA journal_mode = WAL", &st);
		if (r < 0)
			return r;
		r = store_step(s, st);
		if (r < 0)
			return r;
		mode = r > 0 ? (const char *)sqlite3_column_text(st, 0) : NULL;
		if (!mode || strcasecmp(mode, "wal") != 0) {
			set_error(s, "%s: cannot use WAL mode (journal_mode is %s)", path,
				  mode ? mode : "unknown");
			sqlite3_reset(st);
			return -EIO;
		}
		sqlite3_reset(st);
	}
	r = store_exec(s, "PRAGMA foreign_keys = ON");
	if (r < 0)
		return r;
	/*
	 * SQLite's default page cache, 2,000 KiB, is 2,000 of our 1 KiB pages;
	 * ListConversations of 1,000 conversations reads more (each one's
	 * row, its last message, state and summary, the folder and index
	 * pages), so every list read most of them from the file again: about
	 * a third of its CPU in pread() (perf, bench-cpm.sh 20000
	 * CONVS=1000); 4,000 KiB was already enough there.  The cache grows
	 * only as pages are read (test-store-read's test_dump_large holds a
	 * dump of 100,000 messages to less than 8 MiB of growth).  In
	 * cpm-syncd on that store it costs about 2.4 MiB of RSS (16.5 MiB
	 * instead of 14.1 MiB, already after start-up) and saves about
	 * 3.6 ms of the daemon's CPU per ListConversations built anew after
	 * a change (25.3 instead of 28.9 ms, medians of 6 x 40); 3 MiB gave
	 * 28.0 ms for 1.2 MiB (a list reads its pages in one order, which an
	 * LRU cache smaller than them hardly serves).
	 */
	r = store_exec(s, "PRAGMA cache_size = -" STORE_STR(STORE_CACHE_KIB));
	if (r < 0)
		return r;
	if (!s->readonly) {
		/* FAST: deleted rows are zeroed where that costs no extra
		 * write (Debian builds SQLite with secure_delete on, which
		 * also rewrites every freed overflow page). */
		r = store_exec(s, "PRAGMA synchronous = NORMAL; PRAGMA secure_delete = FAST");
		if (r < 0)
			return r;
		r = keep_wal_files(s);
		if (r < 0)
			return r;
	}

	r = query_int(s, "PRAGMA user_version", &version);
	if (r < 0)
		return r;
	if (version < 0 || version > known) {
		set_error(s, "%s has schema version %lld; this cpmsync knows up to %u", path,
			  (long long)version, known);
		return -CPMSYNC_E_STORE_CORRUPT;
	}
	if (s->readonly) {
		if (version == 0) {
			/* Created, its schema not committed yet (migrate()
			 * makes it in one go): the daemon is starting, or
			 * stopped before.  "stopped" alone misled a user whose
			 * cpmctl ran while the daemon started. */
			set_error(s,
				  "%s: the store is empty (cpm-syncd has not made it yet: it is "
				  "starting, or stopped before it could)",
				  path);
			return -CPMSYNC_E_NOT_FOUND;
		}
		if (version != known) {
			set_error(s,
				  "%s has schema version %lld; this cpmsync needs %u "
				  "(start the daemon once to upgrade it)",
				  path, (long long)version, known);
			return -CPMSYNC_E_STORE_CORRUPT;
		}
		return store_bodies_open(s, path, true);
	}
	if (target >= STORE_VERSION_BODIES) {
		r = store_bodies_open(s, path, false);
		if (r < 0)
			return r;
	}
	r = migrate(s, path, target);
	if (r < 0 || target < STORE_VERSION_BODIES)
		return r;
	s->bodies_ready = true;
	r = store_bodies_collect(s, true);
	if (r < 0)
		return r;
	return repage(s);
}

int store_create_private(const char *path)
{
	int fd;

	/* Not a file: SQLite's special names and URIs are left to it. */
	if (!*path || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0)
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno;
	/* The umask cannot widen 0600, but a default ACL could: be explicit. */
	if (fchmod(fd, 0600) < 0) {
		int r = -errno;

		close(fd);
		unlink(path);
		return r;
	}
	close(fd);
	return 0;
}

/*
 * Whether file (the store, or its "-wal" or "-shm" beside it, named by
 * what) cannot be written: 1 and the sentence set, or 0 when it can (or is
 * not there).  access(), not open(): closing a descriptor of a file drops
 * every lock this process holds on it, another connection's too.
 */
static int not_writable_file(struct store *s, const char *what, const char *file, int *ret)
{
	struct stat st;
	char owner[48] = "";
	int err;

	if (faccessat(AT_FDCWD, file, W_OK, AT_EACCESS) == 0)
		return 0;
	err = errno;
	/* Not there, or a failure that says nothing of writing: SQLite's. */
	if (err != EACCES && err != EROFS && err != EPERM)
		return 0;
	*ret = -err;
	if (err == EROFS) {
		set_error(s, "%s %s is on a read-only file system: cpm-syncd needs to write it",
			  what, file);
		return 1;
	}
	if (err == EPERM || stat(file, &st) < 0) {
		set_error(s, "%s %s cannot be written (%s): cpm-syncd needs to write it", what,
			  file, strerror(err));
		return 1;
	}
	if (st.st_uid != geteuid())
		snprintf(owner, sizeof(owner), ", owner uid %u", (unsigned)st.st_uid);
	set_error(s, "%s %s is read-only (mode %04o%s): cpm-syncd needs to write it", what, file,
		  (unsigned)(st.st_mode & 07777), owner);
	return 1;
}

/*
 * A read-write open of a store that cannot be written, refused at once
 * with the file named (issue: SQLite opens a store.db it may not write
 * read-only, without a word; the daemon started, and every sync, every
 * change and the outbox failed for ever with "attempt to write a readonly
 * database (8)"; a directory it could not make the WAL in gave "(1544)"
 * without a name).  Before the setup (failed false): refused when SQLite
 * opened the file read-only or the file, its -wal or its -shm may not be
 * written.  After a setup that failed with SQLITE_READONLY (failed true;
 * other failures are left as they are): the same files, then the
 * directory; else SQLite's own words after the file's name.  0 or -errno
 * (-EACCES, -EROFS, -EPERM).
 */
static int check_writable(struct store *s, const char *path, bool failed)
{
	static const char *const files[][2] = {
		{ "", "the store" },
		{ "-wal", "the store's WAL file" },
		{ "-shm", "the store's shared-memory file" },
	};
	bool readonly = sqlite3_db_readonly(s->db, "main") == 1;
	char file[PATH_MAX], why[sizeof(s->error)], *dir;
	const char *base = strrchr(path, '/');
	struct stat st;
	int r;

	if (failed && !readonly && (s->last_rc & 0xff) != SQLITE_READONLY)
		return 0;
	memcpy(why, s->error, sizeof(why));
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		if (snprintf(file, sizeof(file), "%s%s", path, files[i][0]) >= (int)sizeof(file))
			break;
		if (not_writable_file(s, files[i][1], file, &r))
			return r;
	}
	if (!failed && !readonly)
		return 0;
	if (failed && s->last_rc == SQLITE_READONLY_DIRECTORY && (dir = strdup(path))) {
		char *slash = strrchr(dir, '/');

		if (!slash)
			strcpy(dir, ".");
		else
			slash[slash == dir] = '\0';
		base = base ? base + 1 : path;
		r = stat(dir, &st);
		if (r == 0)
			set_error(s,
				  "the directory %s of the store %s is read-only (mode %04o): "
				  "cpm-syncd needs to make %s-wal and %s-shm in it",
				  dir, path, (unsigned)(st.st_mode & 07777), base, base);
		free(dir);
		if (r == 0)
			return -EACCES;
	}
	if (failed)
		set_error(s, "the store %s cannot be written: %s", path, why);
	else
		set_error(s, "the store %s cannot be written: SQLite opened it read-only", path);
	return -EROFS;
}

/*
 * Whether a STORE_READONLY open that SQLite could not make ("unable to
 * open database file") is of a store in WAL mode on a read-only medium
 * without its -shm file: SQLite reads a WAL database through that file,
 * and cannot make it there.  Nobody can write the store there either, so
 * it is read without locks: the -wal (when it holds frames) through a
 * wal-index in memory (EXCLUSIVE locking mode, the "unix-none" VFS), or,
 * without one, the file alone as immutable.  A store that is merely in a
 * directory this process cannot write (someone else's, which its owner's
 * daemon may be writing) is not read so.
 */
static bool ro_medium_without_shm(const char *path)
{
	char shm[PATH_MAX];
	struct statvfs sv;
	struct stat st;

	if ((size_t)snprintf(shm, sizeof(shm), "%s-shm", path) >= sizeof(shm))
		return false;
	if (stat(shm, &st) == 0 || errno != ENOENT)
		return false;
	return statvfs(path, &sv) == 0 && (sv.f_flag & ST_RDONLY);
}

/*
 * After a STORE_READONLY open that SQLite could not make, and that is not
 * of a read-only medium: when the cause is a missing -shm that this
 * process may not make (a directory it cannot write), says so.
 */
static void explain_missing_shm(struct store *s, const char *path)
{
	char shm[PATH_MAX], dir[PATH_MAX];
	struct stat st;
	char *slash;

	if ((size_t)snprintf(shm, sizeof(shm), "%s-shm", path) >= sizeof(shm) ||
	    stat(shm, &st) == 0 || errno != ENOENT)
		return;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		slash[slash == dir] = '\0';
	if (access(dir, W_OK) == 0)
		return;
	set_error(s,
		  "%s: SQLite reads a store in WAL mode through %s, which is missing and cannot "
		  "be made in %s: %s",
		  path, shm, dir, strerror(errno));
}

/* "file:" and path percent-encoded, then query: a URI for sqlite3_open_v2(). */
static char *file_uri(const char *path, const char *query)
{
	static const char hex[] = "0123456789ABCDEF";
	struct buf b = BUF_INIT(3 * PATH_MAX + 64);

	if (buf_append(&b, "file:", 5) < 0)
		goto fail;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
		bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			     (*p >= '0' && *p <= '9') || strchr("/._-~", *p);

		if (buf_append(&b, plain ? (const char *)p : esc, plain ? 1 : 3) < 0)
			goto fail;
	}
	if (buf_append_str(&b, query) < 0)
		goto fail;
	return buf_steal(&b);
fail:
	buf_free(&b);
	return NULL;
}

/* Opens *db read-only the way s was (store_open()): the store's file,
 * or its ro_uri. */
static int open_db_like(const struct store *s, const char *path, sqlite3 **db)
{
	int rc;

	if (!s->ro_uri)
		return sqlite3_open_v2(path, db, SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READONLY, NULL);
	rc = sqlite3_open_v2(s->ro_uri, db,
			     SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
	/* Before anything is read: no -shm is ever asked for. */
	if (rc == SQLITE_OK && s->ro_exclusive)
		rc = sqlite3_exec(*db, "PRAGMA locking_mode = EXCLUSIVE", NULL, NULL, NULL);
	return rc;
}

int store_open_readonly_db(struct store *s, const char *path, sqlite3 **ret)
{
	return open_db_like(s, path, ret);
}

static int open_internal(const char *path, unsigned flags, unsigned target, bool migrations_only,
			 bool ro_medium, struct store **ret, char **ret_error)
{
	struct store *s;
	int oflags, rc, r;

	if (ret_error)
		*ret_error = NULL;
	if (!ret)
		return -EINVAL;
	*ret = NULL;
	if (!path || (flags & ~(STORE_READONLY | STORE_KEEP_WAL)) ||
	    (flags & (STORE_READONLY | STORE_KEEP_WAL)) == (STORE_READONLY | STORE_KEEP_WAL) ||
	    target > store_schema_version())
		return -EINVAL;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->readonly = flags & STORE_READONLY;
	s->keep_wal = flags & STORE_KEEP_WAL;
	s->migrations_only = migrations_only;
	oflags = SQLITE_OPEN_NOMUTEX;
	oflags |= s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	if (ro_medium) {
		char wal[PATH_MAX];
		struct stat st;

		snprintf(wal, sizeof(wal), "%s-wal", path);
		s->ro_exclusive = stat(wal, &st) == 0 && st.st_size > 0;
		s->ro_uri = file_uri(path, s->ro_exclusive ? "?mode=ro&vfs=unix-none"
							   : "?mode=ro&immutable=1");
		if (!s->ro_uri) {
			free(s);
			return -ENOMEM;
		}
	}

	/* A new store is 0600, and so are its WAL and shared-memory files. */
	if (!s->readonly && (r = store_create_private(path)) < 0) {
		if (ret_error &&
		    asprintf(ret_error, "%s: cannot create it: %s", path, strerror(-r)) < 0)
			*ret_error = NULL;
		free(s);
		return r;
	}
	rc = s->readonly ? open_db_like(s, path, &s->db)
			 : sqlite3_open_v2(path, &s->db, oflags, NULL);
	if (rc != SQLITE_OK) {
		if (!s->db) {
			free(s->ro_uri);
			free(s);
			return -ENOMEM;
		}
		r = store_fail(s, rc);
		set_error(s, "%s: %s", path, sqlite3_errmsg(s->db));
	} else {
		struct stat st;

		sqlite3_set_authorizer(s->db, authorize, s);
		r = s->readonly ? 0 : check_writable(s, path, false);
		if (r >= 0)
			r = setup(s, path, target);
		/* SQLite found it could not write in the setup (the WAL). */
		if (r < 0 && !s->readonly) {
			int w = check_writable(s, path, true);

			r = w < 0 ? w : r;
		}
		if (r >= 0)
			drop_statements(s);
		/* By its absolute name: the process may change directory. */
		if (r >= 0 && stat(path, &st) == 0) {
			s->file_path = realpath(path, NULL);
			s->file_dev = st.st_dev;
			s->file_ino = s->file_path ? st.st_ino : 0;
		}
	}
	if (r < 0 && s->readonly && !ro_medium && (s->last_rc & 0xff) == SQLITE_CANTOPEN) {
		if (ro_medium_without_shm(path)) {
			store_close(s);
			return open_internal(path, flags, target, migrations_only, true, ret,
					     ret_error);
		}
		explain_missing_shm(s, path);
	}
	if (r < 0) {
		if (ret_error)
			*ret_error = strdup(s->error);
		store_close(s);
		return r;
	}
	*ret = s;
	return 0;
}

int store_open(const char *path, unsigned flags, struct store **ret, char **ret_error)
{
	return open_internal(path, flags, store_schema_version(), false, false, ret, ret_error);
}

int store_open_at_version_for_test(const char *path, unsigned version, struct store **ret,
				   char **ret_error)
{
	return open_internal(path, 0, version, true, false, ret, ret_error);
}

/* SQLite's own handle of the WAL file (SQLITE_FCNTL_JOURNAL_POINTER): it
 * writes the frames with it, so its xSync is the fdatasync that puts
 * them on the disk.  Writes nothing. */
int store_sync_wal(struct store *s)
{
	sqlite3_file *wal = NULL;
	int rc;

	if (!s || s->readonly)
		return -EINVAL;
	if (s->in_tx) {
		set_error(s, "cannot sync the WAL inside a transaction");
		return -EBUSY;
	}
	rc = sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
	if (rc != SQLITE_OK || !wal || !wal->pMethods)
		return 0; /* no WAL file open: nothing committed to sync */
	rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
	if (rc != SQLITE_OK) {
		int err = store_no_room_errno(s->db, rc);

		set_error(s, "%s: cannot sync the WAL to the disk: %s%s%s",
			  store_sqlite_file(s->db), sqlite3_errstr(rc), err ? ": " : "",
			  err ? strerror(err) : "");
		return err ? -err : store_map_sqlite_error(rc);
	}
	return 0;
}

/*
 * STORE_KEEP_WAL: the close does not checkpoint.  Closing used to, which
 * syncs the WAL and then store.db, so what a finished run committed
 * survived a power loss; one sync of the WAL keeps that.
 */
static void sync_kept_wal(struct store *s)
{
	if (store_sync_wal(s) < 0)
		log_msg(CPMSYNC_LOG_WARNING, CPMSYNC_LOG_CAT_STORE, "at close: %s", s->error);
}

struct store *store_close(struct store *s)
{
	sqlite3_stmt *st;

	if (!s)
		return NULL;
	store_rollback(s);
	for (size_t i = 0; i < s->n_stmts; i++)
		sqlite3_finalize(s->stmts[i]);
	for (size_t i = 0; i < ARRAY_SIZE(s->mark_st); i++)
		sqlite3_finalize(s->mark_st[i]);
	free(s->stmts);
	free(s->stmt_flags);
	/* Anything still unfinalized (an error path) must not keep the db open. */
	while ((st = sqlite3_next_stmt(s->db, NULL)))
		sqlite3_finalize(st);
	if (s->keep_wal && s->db)
		sync_kept_wal(s);
	sqlite3_close(s->db);
	store_bodies_close(s);
	free(s->watch);
	for (size_t i = 0; i < s->n_notes; i++)
		free(s->notes[i].key);
	free(s->notes);
	free(s->conv_bump);
	free(s->imdn_filter);
	store_conv_pending_drop(s);
	free(s->conv_acc);
	free(s->conv_own);
	free(s->file_path);
	free(s->ro_uri);
	free(s);
	return NULL;
}

int store_check_file(struct store *s)
{
	struct stat st;

	if (!s)
		return -EINVAL;
	if (!s->file_gone && s->file_ino &&
	    (stat(s->file_path, &st) < 0 ? errno == ENOENT || errno == ENOTDIR
					 : st.st_dev != s->file_dev || st.st_ino != s->file_ino))
		s->file_gone = true;
	if (!s->file_gone)
		return 0;
	set_error(s,
		  "the store file %s was removed or replaced while in use: nothing more is"
		  " written to it (it would be lost with it)",
		  s->file_path);
	return -CPMSYNC_E_STORE_GONE;
}

bool store_note_once(struct store *s, const void *key, size_t len)
{
	struct store_note *n;

	for (size_t i = 0; i < s->n_notes; i++)
		if (s->notes[i].len == len && memcmp(s->notes[i].key, key, len) == 0)
			return false;
	if (s->n_notes >= STORE_NOTES_MAX)
		return false;
	n = realloc(s->notes, (s->n_notes + 1) * sizeof(*s->notes));
	if (!n)
		return true; /* warned again next time rather than never */
	s->notes = n;
	n[s->n_notes].key = malloc(len ? len : 1);
	if (!n[s->n_notes].key)
		return true;
	memcpy(n[s->n_notes].key, key, len);
	n[s->n_notes++].len = len;
	return true;
}

/*
 * The version of a conversation row is a change marker (store-changes.c
 * reports a row whose version moved).  An IMDN report's Status raise
 * bumped it per raised row with the trigger conv_message_status, about
 * 20k instructions each (an UPDATE of the conversation row); since
 * version 17 the raise notes the folder here and the row is bumped once
 * per transaction, by store_commit(), in the transaction itself (so that
 * a crash at any point leaves the marker with the rows it describes).
 * Outside a transaction the bump runs at once.
 */
static const char conv_bump_sql[] =
	"UPDATE conversation SET version = version + 1 WHERE id = (SELECT c.id FROM folder f"
	" JOIN conversation c ON c.account_id = f.account_id AND c.folder = f.conv"
	" WHERE f.id = ?1)";

static int conv_bump_now(struct store *s, int64_t folder_id)
{
	sqlite3_stmt *st;
	int r = store_prepare(s, conv_bump_sql, &st);

	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, folder_id);
	return store_step_done(s, st);
}

int store_conv_bump(struct store *s, int64_t folder_id)
{
	if (!s->in_tx)
		return conv_bump_now(s, folder_id);
	for (size_t i = 0; i < s->n_conv_bump; i++)
		if (s->conv_bump[i] == folder_id || s->conv_bump[i] == -folder_id)
			return 0;
	if (s->n_conv_bump == s->alloc_conv_bump) {
		size_t n = s->alloc_conv_bump ? s->alloc_conv_bump * 2 : 16;
		int64_t *p = reallocarray(s->conv_bump, n, sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->conv_bump = p;
		s->alloc_conv_bump = n;
	}
	/* Most raises are of originals whose conversation row is held
	 * back with the report that raised them (the same folder): the
	 * bump then goes into the row's held-back write, which moves its
	 * version anyway, and is kept here negated (folder ids are 1 or
	 * more), as asked once already.  Its own UPDATE was about 15,700
	 * instructions (callgrind, bench-cpm.sh 20000: 1,048 of them). */
	if (store_conv_pending_fold_bump(s, folder_id))
		folder_id = -folder_id;
	s->conv_bump[s->n_conv_bump++] = folder_id;
	return 0;
}

int store_conv_bump_flush(struct store *s)
{
	int r = 0;

	for (size_t i = 0; i < s->n_conv_bump && r >= 0; i++)
		if (s->conv_bump[i] > 0)
			r = conv_bump_now(s, s->conv_bump[i]);
	s->n_conv_bump = 0;
	return r;
}

void **store_conv_pending_slot(struct store *s)
{
	return &s->conv_acc;
}

void store_set_conv_dirty(struct store *s, bool dirty)
{
	s->conv_dirty = dirty;
}

bool store_take_conv_stale(struct store *s)
{
	bool v = s->conv_stale;

	s->conv_stale = false;
	return v;
}

void store_set_conv_stale(struct store *s)
{
	s->conv_stale = s->conv_dirty = true;
}

void **store_imdn_filter_slot(struct store *s)
{
	return &s->imdn_filter;
}

uint64_t store_tx_seq(const struct store *s)
{
	return s->tx_seq;
}
