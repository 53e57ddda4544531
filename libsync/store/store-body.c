/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Message bodies, out of the pages holding message state, so that those
 * are small and written only when that state changes:
 *  - up to STORE_BODY_INLINE_MAX bytes in the store's body_inline table
 *    (schema version 15, below);
 *  - larger ones appended to pack files (schema version 25, store-pack.c,
 *    which gives the measurements against this file's database);
 *  - larger ones stored before version 25 in a second SQLite database
 *    beside the store (<store path>-bodies), as described here: they are
 *    read, copied (into a pack) and deleted there; nothing new goes in.
 *
 * Why a second database, in rollback-journal mode (measured with 20,000
 * bodies of 1-20 KiB, 215 MB, on this project's ext4 machine):
 *  - In the WAL store every body went through the WAL and again through
 *    the checkpoint: 2.2-2.4x the mail's bytes written.  Appended to a
 *    rollback-journal database, new pages are written once and only the few
 *    pages a transaction modifies go to the journal: 1.08x with 4 KiB pages
 *    (1.14x at 8 KiB, 1.03x at 1 KiB but 1.7x slower to fill).
 *  - Deleting a body rewrites its leaf page: 14.7 KB per deleted body with
 *    4 KiB pages and secure_delete=FAST, 37 KB with Debian's default
 *    secure_delete=ON (it zeroes every freed overflow page).
 *  - One file per body needs one fsync per file before the row commits
 *    (230-290 us each here even when batched: 25 s for 100,000 bodies, where
 *    the whole initial sync took 5.9 s).  The database needs two per batch.
 *
 * Crash safety (the order of the two commits):
 *  - A body is written in a transaction of the bodies database that opens
 *    with the first body of a store transaction; store_commit() commits it
 *    (synchronous=FULL: on disk when COMMIT returns) before the store's own
 *    COMMIT, which sets message.has_body.  A crash between the two leaves a
 *    body that no committed row claims; readers go by has_body, writers
 *    replace, and store_bodies_collect() drops those past the last message
 *    id ever committed at the next open.
 *  - A message row that goes (or whose has_body goes to 0) puts its id into
 *    body_trash by a trigger, in the same store transaction.  After the
 *    store commits, the bodies are deleted and then the trash rows; a crash
 *    in between is finished at the next open.  A rollback leaves the body.
 *
 * Readers in other processes open it read-only; a writer's COMMIT waits
 * for their read to end (the busy timeout), as rollback-journal mode does.
 *
 * Small bodies (schema version 15): a body of at most STORE_BODY_INLINE_MAX
 * bytes is stored in the store's own table body_inline, in the transaction
 * of its row.  Atomic with the row by construction, with the durability the
 * row has (WAL, synchronous=NORMAL), and no transaction of the bodies
 * database at all: a pushed chat message or IMDN report no longer waits
 * for that database's fsyncs (journal, directory, journal header,
 * database, journal truncation).  The cost is the WAL's: an inline body is
 * written to the WAL and again at the checkpoint.
 *
 * Why 4 KiB (tests/bench/bench-body-threshold.py, bench-bodies.sh, on
 * this project's ext4 machine at load 6-13):
 *  - A transaction of one body costs 0.03-0.3 ms inline at any size up to
 *    64 KiB, 2-25 ms in the bodies database (its five fdatasyncs): the gain
 *    for a pushed message does not depend on its size.
 *  - Batched (an initial sync), inline writes 2.05-2.7 bytes per body byte
 *    (WAL + checkpoint, and a partly used 1 KiB overflow page per small
 *    body), the bodies database 1.0-1.2 (2.1 at 2 KiB: two do not fit a
 *    page): the extra bytes grow with what goes inline.
 *  - CPM objects (CPIM chat messages, IMDN reports, session-info,
 *    group-state, FT-over-HTTP descriptors) are 0.2-1.1 KB in
 *    tests/data/cpm/; 4 KiB covers them with room for long texts and
 *    large groups.  Of a mail corpus of 1-20 KiB it takes 15% of the
 *    messages, 3.7% of the bytes: an initial sync writes 1.20x the mail's
 *    bytes instead of 1.17x (8 KiB would give about 1.33x, 16 KiB about
 *    1.8x, over the 1.6x target).  A chat corpus, all inline, writes 5.4x
 *    its bytes instead of 4.0x (the WAL's second copy).
 *  - has_body keeps its meaning (stored, in one place or the other);
 *    readers look in body_inline first, then in the bodies database.
 *  - An inline body goes with its row or its has_body in the same
 *    transaction (the version 15 triggers); only bodies in the bodies
 *    database are queued in body_trash.
 *  - A body stored inline where the bodies database holds an older one of
 *    the same message queues the old one in body_trash; a body stored in
 *    the bodies database deletes the message's inline one and any deletion
 *    of it still queued in body_trash (which would otherwise delete the new
 *    body after the commit).
 *  - Bodies stored before version 15 stay in the bodies database.
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/io.h>

#include "store/store.h"
#include "util/macro.h"

#define BODY_CHUNK  (64 * 1024)
#define TRASH_BATCH 512

struct store_bodies {
	sqlite3 *db; /* opened at the first read on a STORE_READONLY store */
	/* body_write()'s INSERT, prepared at its first use and kept (preparing
	 * it for every body was about 3% of an initial sync's CPU). */
	sqlite3_stmt *insert;
	char *path;
	bool readonly;
	bool in_tx;
	bool inline_ok;		   /* the store has body_inline (schema version 15) */
	struct store_packs *packs; /* bodies over STORE_BODY_INLINE_MAX (version 25) */
	/* Ids written in the open transaction: after a failed store COMMIT
	 * the bodies that no committed row claims are deleted again. */
	int64_t *written;
	size_t n_written, alloc_written;
	/* At store_bodies_mark(): in_tx and n_written. */
	bool mark_in_tx;
	size_t mark_written;
};

static int bfail(struct store *s, sqlite3 *db, int rc)
{
	int err = store_no_room_errno(db, rc);

	store_set_error(s, "%s: %s (%d)%s%s", store_sqlite_file(db), sqlite3_errmsg(db), rc,
			err ? ": " : "", err ? strerror(err) : "");
	return err ? -err : store_map_sqlite_error(rc);
}

static int bexec(struct store *s, struct store_bodies *b, const char *sql)
{
	int rc = sqlite3_exec(b->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : bfail(s, b->db, rc);
}

/* Prepares sql on the bodies connection (one statement, finalized by the caller). */
static int bprepare(struct store *s, struct store_bodies *b, const char *sql, sqlite3_stmt **ret)
{
	int rc = sqlite3_prepare_v2(b->db, sql, -1, ret, NULL);

	return rc == SQLITE_OK ? 0 : bfail(s, b->db, rc);
}

/* Steps a statement that returns no row, then finalizes it. */
static int bdone(struct store *s, struct store_bodies *b, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : bfail(s, b->db, rc);
}

static struct store_bodies *bodies(struct store *s)
{
	return *store_bodies_slot(s);
}

char *store_bodies_path(const char *store_path)
{
	char *p;

	if (asprintf(&p, "%s-bodies", store_path) < 0)
		return NULL;
	return p;
}

static int open_db(struct store *s, struct store_bodies *b)
{
	int rc, r;

	/* 0600 like the store (store_create_private()). */
	if (!b->readonly && (r = store_create_private(b->path)) < 0) {
		store_set_error(s, "%s: cannot create it: %s", b->path, strerror(-r));
		return r;
	}
	rc = sqlite3_open_v2(b->path, &b->db,
			     SQLITE_OPEN_NOMUTEX |
				     (b->readonly ? SQLITE_OPEN_READONLY
						  : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE),
			     NULL);
	if (rc != SQLITE_OK) {
		if (!b->db)
			return -ENOMEM;
		r = bfail(s, b->db, rc);
		store_set_error(s, "%s: %s", b->path, sqlite3_errmsg(b->db));
		sqlite3_close_v2(b->db);
		b->db = NULL;
		return r;
	}
	sqlite3_extended_result_codes(b->db, 1);
	sqlite3_busy_timeout(b->db, STORE_BUSY_TIMEOUT_MS);
	if (b->readonly)
		return 0;
	/*
	 * A new file takes the page size; TRUNCATE keeps the journal file
	 * between transactions; FULL: a COMMIT is on disk when it returns,
	 * before the store's rows that name the body commit.  FAST deletes
	 * without zeroing freed overflow pages (no extra writes).
	 */
	r = bexec(s, b,
		  "PRAGMA page_size = 4096;"
		  "PRAGMA journal_mode = TRUNCATE;"
		  "PRAGMA synchronous = FULL;"
		  "PRAGMA secure_delete = FAST;"
		  "CREATE TABLE IF NOT EXISTS body ("
		  " message_id INTEGER PRIMARY KEY,"
		  " data BLOB NOT NULL"
		  ");");
	if (r < 0)
		store_set_error(s, "%s: %s", b->path, sqlite3_errmsg(b->db));
	return r;
}

/* The connection, opened now if it was not (a reader's first body). */
static int need_db(struct store *s, struct store_bodies *b)
{
	if (!b) {
		store_set_error(s, "this store has no bodies database");
		return -CPMSYNC_E_NOT_FOUND;
	}
	return b->db ? 0 : open_db(s, b);
}

/*
 * Whether the store has body_inline (schema version 15; a store opened at
 * an older version for a test or being migrated has not).  Tables are never
 * dropped: once seen, it is not looked for again.
 */
static bool inline_ready(struct store *s, struct store_bodies *b)
{
	sqlite3_stmt *st;

	if (b && b->inline_ok)
		return true;
	if (store_prepare(
		    s, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'body_inline'",
		    &st) < 0)
		return false;
	if (store_step(s, st) <= 0)
		return false;
	sqlite3_reset(st);
	if (b)
		b->inline_ok = true;
	return true;
}

int store_bodies_open(struct store *s, const char *store_path, bool readonly)
{
	struct store_bodies *b;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	*store_bodies_slot(s) = b;
	b->readonly = readonly;
	b->path = store_bodies_path(store_path);
	b->packs = store_packs_new(store_path, readonly);
	if (!b->path || !b->packs)
		return -ENOMEM;
	/* A reader that never reads a body does not need the file, nor does a
	 * store made since version 25 (bodies in packs): opened when needed. */
	return readonly || access(b->path, F_OK) != 0 ? 0 : open_db(s, b);
}

void store_bodies_close(struct store *s)
{
	struct store_bodies *b = bodies(s);

	if (!b)
		return;
	if (b->in_tx)
		sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(b->insert);
	sqlite3_close_v2(b->db);
	store_packs_free(b->packs);
	free(b->written);
	free(b->path);
	free(b);
	*store_bodies_slot(s) = NULL;
}

static int begin(struct store *s, struct store_bodies *b)
{
	int r;

	if (b->in_tx)
		return 0;
	r = bexec(s, b, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	b->in_tx = true;
	b->n_written = 0;
	return 0;
}

static int note_written(struct store_bodies *b, int64_t id)
{
	if (b->n_written == b->alloc_written) {
		size_t n = b->alloc_written ? b->alloc_written * 2 : 64;
		int64_t *p = reallocarray(b->written, n, sizeof(*p));

		if (!p)
			return -ENOMEM;
		b->written = p;
		b->alloc_written = n;
	}
	b->written[b->n_written++] = id;
	return 0;
}

/* The bodies database's transaction committed (synchronous = FULL). */
static int db_commit(struct store *s, struct store_bodies *b)
{
	int rc;

	if (!b->in_tx)
		return 0;
	rc = sqlite3_exec(b->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		int r = bfail(s, b->db, rc);

		if (!sqlite3_get_autocommit(b->db))
			sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
		b->in_tx = false;
		return r;
	}
	b->in_tx = false;
	return 0;
}

int store_bodies_commit(struct store *s)
{
	struct store_bodies *b = bodies(s);
	int r;

	if (!b)
		return 0;
	r = store_packs_precommit(s, b->packs);
	return r < 0 ? r : db_commit(s, b);
}

void store_bodies_rollback(struct store *s)
{
	struct store_bodies *b = bodies(s);

	if (!b)
		return;
	store_packs_forget(s, b->packs);
	if (!b->in_tx)
		return;
	if (!sqlite3_get_autocommit(b->db))
		sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
	b->in_tx = false;
	b->n_written = 0;
}

void store_bodies_mark(struct store *s)
{
	struct store_bodies *b = bodies(s);

	if (!b)
		return;
	b->mark_in_tx = b->in_tx;
	b->mark_written = b->n_written;
	store_packs_mark(s, b->packs);
}

int store_bodies_rollback_to_mark(struct store *s)
{
	struct store_bodies *b = bodies(s);

	if (!b)
		return 0;
	/* A body written to the bodies database (a store before version
	 * 25) since the mark: that database has no savepoint of ours. */
	if (b->in_tx && (!b->mark_in_tx || b->n_written != b->mark_written)) {
		store_set_error(s, "a body went into %s since the mark", b->path);
		return -ENOTSUP;
	}
	return store_packs_rollback_to_mark(s, b->packs);
}

/* Deletes the bodies of ids (n of them) from the bodies database. */
static int delete_ids(struct store *s, struct store_bodies *b, const int64_t *ids, size_t n)
{
	sqlite3_stmt *st;
	int r;

	if (n == 0)
		return 0;
	r = begin(s, b);
	if (r < 0)
		return r;
	r = bprepare(s, b, "DELETE FROM body WHERE message_id = ?1", &st);
	for (size_t i = 0; r == 0 && i < n; i++) {
		int rc;

		sqlite3_bind_int64(st, 1, ids[i]);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			r = bfail(s, b->db, rc);
	}
	sqlite3_finalize(st);
	if (r < 0) {
		store_bodies_rollback(s);
		return r;
	}
	return db_commit(s, b);
}

/* Whether the committed row of ?1 claims a body in the bodies database. */
#define CLAIMED "SELECT has_body FROM message WHERE id = ?1"
#define CLAIMED_LARGE                                                                              \
	"SELECT has_body AND NOT EXISTS (SELECT 1 FROM body_inline WHERE message_id = ?1)"         \
	" FROM message WHERE id = ?1"

void store_bodies_commit_failed(struct store *s)
{
	struct store_bodies *b = bodies(s);
	_cleanup_free_ int64_t *orphans = NULL;
	sqlite3_stmt *st;
	size_t n = 0;

	if (!b || b->n_written == 0)
		return;
	/* The store rolled back: a body is kept only where a committed row
	 * already claimed it (a body written again). */
	orphans = calloc(b->n_written, sizeof(*orphans));
	if (!orphans || store_prepare(s, inline_ready(s, b) ? CLAIMED_LARGE : CLAIMED, &st) < 0)
		goto out;
	for (size_t i = 0; i < b->n_written; i++) {
		sqlite3_bind_int64(st, 1, b->written[i]);
		if (store_step(s, st) > 0 && sqlite3_column_int(st, 0)) {
			sqlite3_reset(st);
			continue;
		}
		sqlite3_reset(st);
		orphans[n++] = b->written[i];
	}
	delete_ids(s, b, orphans, n); /* what remains is collected at the next open */
out:
	b->n_written = 0;
}

/* The bodies database's part of store_bodies_collect(). */
static int db_collect(struct store *s, struct store_bodies *b, bool at_open)
{
	int64_t ids[TRASH_BATCH], last;
	sqlite3_stmt *st;
	size_t n;
	int r;

	if (!b->db && access(b->path, F_OK) != 0)
		return 0; /* no bodies database: nothing in it to delete */
	r = need_db(s, b);
	if (r < 0)
		return r;
	do {
		n = 0;
		r = store_prepare(
			s,
			"SELECT message_id FROM body_trash ORDER BY message_id LIMIT " STR(
				TRASH_BATCH),
			&st);
		if (r < 0)
			return r;
		while (n < TRASH_BATCH && (r = store_step(s, st)) > 0)
			ids[n++] = sqlite3_column_int64(st, 0);
		if (r > 0)
			sqlite3_reset(st);
		if (r < 0 || n == 0)
			break;
		r = delete_ids(s, b, ids, n);
		if (r < 0)
			return r;
		r = store_prepare(s, "DELETE FROM body_trash WHERE message_id <= ?1", &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, ids[n - 1]);
		r = store_step(s, st);
	} while (r >= 0 && n == TRASH_BATCH);
	if (r < 0 || !at_open)
		return r;

	/* Bodies past the last message id ever committed: written by a
	 * transaction that did not commit (a crash between the two COMMITs). */
	r = store_prepare(
		s, "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'message'), 0)",
		&st);
	if (r < 0)
		return r;
	r = store_step(s, st);
	if (r <= 0)
		return r;
	last = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	r = bprepare(s, b, "DELETE FROM body WHERE message_id > ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, last);
	return bdone(s, b, st);
}

int store_bodies_collect(struct store *s, bool at_open)
{
	struct store_bodies *b = bodies(s);
	int r;

	if (!b || b->readonly || store_in_transaction(s))
		return 0;
	r = db_collect(s, b, at_open);
	if (r < 0)
		return r;
	return store_packs_collect(s, b->packs, at_open);
}

int store_bodies_import(struct store *s, const char *store_path)
{
	struct store_bodies *b = bodies(s);
	sqlite3_stmt *st;
	int r;

	/* Migration 4: the bodies still in the store's own body table.  Run
	 * again after a crash before the migration committed: REPLACE. */
	r = need_db(s, b);
	if (r < 0)
		return r;
	r = bprepare(s, b, "ATTACH ?1 AS old", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, store_path, -1, SQLITE_STATIC);
	r = bdone(s, b, st);
	if (r < 0)
		return r;
	r = bexec(s, b,
		  "BEGIN IMMEDIATE;"
		  "INSERT OR REPLACE INTO main.body (message_id, data)"
		  " SELECT message_id, coalesce(data, x'') FROM old.body;"
		  "COMMIT;");
	if (r < 0 && !sqlite3_get_autocommit(b->db))
		sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_exec(b->db, "DETACH old", NULL, NULL, NULL);
	return r;
}

/* Bodies. */

/* Marks message_id as having its body; -CPMSYNC_E_NOT_FOUND without such a message. */
static int set_has_body(struct store *s, int64_t message_id)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s, "UPDATE message SET has_body = 1 WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (sqlite3_changes(store_db(s)) == 0) {
		store_set_error(s, "no message with id %lld", (long long)message_id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	return 0;
}

/*
 * Before id's body is stored inline: a body of id in the bodies database
 * (stored before, or earlier in this transaction) is queued in body_trash,
 * deleted there once this transaction has committed.
 */
static int inline_replaces(struct store *s, int64_t id)
{
	return store_exec_id(s,
			     "INSERT OR IGNORE INTO body_trash (message_id) SELECT id FROM message"
			     " WHERE id = ?1 AND has_body"
			     " AND NOT EXISTS (SELECT 1 FROM body_inline WHERE message_id = ?1)",
			     id);
}

/*
 * Before id's body is stored in the bodies database: its inline body goes,
 * and so does a deletion of id queued in body_trash (by a row or body
 * dropped earlier, not yet collected), which would delete the new body
 * after this commit.
 */
static int large_replaces(struct store *s, struct store_bodies *b, int64_t id)
{
	int r = store_exec_id(s, "DELETE FROM body_trash WHERE message_id = ?1", id);

	if (r < 0 || !inline_ready(s, b))
		return r;
	return store_exec_id(s, "DELETE FROM body_inline WHERE message_id = ?1", id);
}

/*
 * Version 25: before id gets a new body, the one it has goes, wherever it
 * is, as the triggers take it when has_body goes (store_sql_body_gone): a
 * body in the bodies database is queued in body_trash, an inline one
 * deleted, one in a pack queued in pack_trash.  has_body stays set, so
 * that the message is not reported changed twice.  Nothing to do (one
 * lookup) for a message without a body, as in an initial sync.
 */
static int replace_stored(struct store *s, int64_t id)
{
	bool has;
	int r;

	r = store_body_exists(s, id, &has);
	if (r < 0 || !has)
		return r == -CPMSYNC_E_NOT_FOUND ? 0 : r;
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(store_sql_body_gone); i++)
		r = store_exec_id(s, store_sql_body_gone[i], id);
	return r;
}

static bool packs_ready(struct store *s, struct store_bodies *b)
{
	return b && store_packs_ready(s, b->packs);
}

static int read_error(struct store *s, int64_t message_id, int r)
{
	store_set_error(s, "reading the body of message %lld: %s", (long long)message_id,
			r == -EIO ? "end of input before the announced size" : strerror(-r));
	return r;
}

/* A body of at most STORE_BODY_INLINE_MAX bytes, into body_inline. */
static int body_write_inline(struct store *s, int64_t message_id, const void *head, size_t head_len,
			     int fd, size_t size, bool fresh)
{
	_cleanup_free_ char *buf = NULL;
	const void *data = size ? head : "";
	sqlite3_stmt *st;
	int r = 0;

	if (!fresh) {
		r = packs_ready(s, bodies(s)) ? replace_stored(s, message_id)
					      : inline_replaces(s, message_id);
		if (r >= 0)
			r = set_has_body(s, message_id);
		if (r < 0)
			return r;
	}
	if (head_len < size) {
		buf = malloc(size);
		if (!buf)
			return -ENOMEM;
		if (head_len)
			memcpy(buf, head, head_len);
		r = cpmsync_read_exact(fd, buf + head_len, size - head_len);
		if (r < 0)
			return read_error(s, message_id, r);
		data = buf;
	}
	/* store_set_full_safe(): INSERT ... SELECT. */
	r = store_prepare(
		s,
		store_full_safe(s)
			? "INSERT OR REPLACE INTO body_inline (message_id, data) SELECT ?1, ?2"
			: "INSERT OR REPLACE INTO body_inline (message_id, data) VALUES (?1, ?2)",
		&st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	sqlite3_bind_blob(st, 2, data, (int)size, SQLITE_STATIC);
	r = store_step_done(s, st);
	sqlite3_clear_bindings(st); /* data is ours */
	return r;
}

/* A larger body, into a pack (version 25). */
static int body_write_pack(struct store *s, struct store_bodies *b, int64_t message_id,
			   const void *head, size_t head_len, int fd, uint64_t size, bool fresh)
{
	int r = 0;

	if (!fresh) {
		r = replace_stored(s, message_id);
		if (r >= 0)
			r = set_has_body(s, message_id);
		if (r < 0)
			return r;
	}
	return store_pack_put(s, b->packs, message_id, head, head_len, fd, size);
}

/* A larger body, into the bodies database (a store before version 25). */
static int body_write(struct store *s, struct store_bodies *b, int64_t message_id, const void *head,
		      size_t head_len, int fd, uint64_t size, bool fresh)
{
	_cleanup_free_ char *chunk = NULL;
	sqlite3_blob *blob = NULL;
	sqlite3_stmt *st;
	uint64_t off;
	int rc, r = 0;

	if (!fresh)
		r = set_has_body(s, message_id);
	if (r < 0)
		return r;
	r = large_replaces(s, b, message_id);
	if (r < 0)
		return r;
	r = begin(s, b);
	if (r < 0)
		return r;
	r = note_written(b, message_id);
	if (r < 0)
		return r;
	if (!b->insert) {
		rc = sqlite3_prepare_v3(
			b->db,
			"INSERT OR REPLACE INTO body (message_id, data) VALUES (?1, zeroblob(?2))",
			-1, SQLITE_PREPARE_PERSISTENT, &b->insert, NULL);
		if (rc != SQLITE_OK)
			return bfail(s, b->db, rc);
	}
	st = b->insert;
	sqlite3_bind_int64(st, 1, message_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return bfail(s, b->db, rc);
	if (size == 0)
		return 0;

	rc = sqlite3_blob_open(b->db, "main", "body", "data", message_id, 1, &blob);
	if (rc != SQLITE_OK) {
		r = bfail(s, b->db, rc);
		sqlite3_blob_close(blob);
		return r;
	}
	for (off = 0; off < size;) {
		size_t n = size - off < BODY_CHUNK ? (size_t)(size - off) : BODY_CHUNK;
		const void *p;

		if (off < head_len) {
			if (n > head_len - (size_t)off)
				n = head_len - (size_t)off;
			p = (const char *)head + off;
		} else {
			if (!chunk && !(chunk = malloc(BODY_CHUNK))) {
				r = -ENOMEM;
				break;
			}
			r = cpmsync_read_exact(fd, chunk, n);
			if (r < 0) {
				read_error(s, message_id, r);
				break;
			}
			p = chunk;
		}
		rc = sqlite3_blob_write(blob, p, (int)n, (int)off);
		if (rc != SQLITE_OK) {
			r = bfail(s, b->db, rc);
			break;
		}
		off += n;
	}
	rc = sqlite3_blob_close(blob);
	if (r == 0 && rc != SQLITE_OK)
		r = bfail(s, b->db, rc);
	return r;
}

/* fresh: store_body_write_fresh(). */
static int body_store(struct store *s, int64_t message_id, const void *head, size_t head_len,
		      int fd, uint64_t size, bool fresh)
{
	struct store_bodies *b;
	bool own;
	int r;

	if (!s || head_len > size || (head_len < size && fd < 0))
		return -EINVAL;
	if (store_is_readonly(s))
		return -EROFS;
	b = bodies(s);
	if (!b)
		return need_db(s, b);
	if (size > (uint64_t)sqlite3_limit(store_db(s), SQLITE_LIMIT_LENGTH, -1)) {
		store_set_error(s, "body of %llu bytes is larger than the store allows",
				(unsigned long long)size);
		return -E2BIG;
	}
	own = !store_in_transaction(s);
	if (own) {
		r = store_begin(s);
		if (r < 0)
			return r;
	}
	if (size <= STORE_BODY_INLINE_MAX && inline_ready(s, b))
		r = body_write_inline(s, message_id, head, head_len, fd, (size_t)size, fresh);
	else if (packs_ready(s, b))
		r = body_write_pack(s, b, message_id, head, head_len, fd, size, fresh);
	else if ((r = need_db(s, b)) == 0)
		r = body_write(s, b, message_id, head, head_len, fd, size, fresh);
	if (!own)
		return r;
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	return store_commit(s);
}

int store_body_write(struct store *s, int64_t message_id, const void *head, size_t head_len, int fd,
		     uint64_t size)
{
	return body_store(s, message_id, head, head_len, fd, size, false);
}

int store_body_write_fresh(struct store *s, int64_t message_id, const void *head, size_t head_len,
			   int fd, uint64_t size)
{
	if (!s || !store_in_transaction(s))
		return -EINVAL;
	return body_store(s, message_id, head, head_len, fd, size, true);
}

int store_body_write_fd(struct store *s, int64_t message_id, int fd, uint64_t size)
{
	if (fd < 0)
		return -EINVAL;
	return store_body_write(s, message_id, NULL, 0, fd, size);
}

int store_body_put(struct store *s, int64_t message_id, const void *data, size_t len)
{
	return store_body_write(s, message_id, len ? data : "", len, -1, len);
}

/*
 * Where message_id's body is: BODY_NONE (no such message, or no body),
 * BODY_INLINE or BODY_LARGE (a pack, or the bodies database).
 */
enum { BODY_NONE, BODY_INLINE, BODY_LARGE };

static int body_where(struct store *s, int64_t message_id, int *ret)
{
	sqlite3_stmt *st;
	bool has;
	int r;

	if (!inline_ready(s, bodies(s))) {
		r = store_body_exists(s, message_id, &has);
		*ret = r == 0 && has ? BODY_LARGE : BODY_NONE;
		return r;
	}
	r = store_prepare(s,
			  "SELECT m.has_body,"
			  " EXISTS (SELECT 1 FROM body_inline b WHERE b.message_id = m.id)"
			  " FROM message m WHERE m.id = ?1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	*ret = BODY_NONE;
	if (r > 0) {
		if (sqlite3_column_int(st, 0))
			*ret = sqlite3_column_int(st, 1) ? BODY_INLINE : BODY_LARGE;
		sqlite3_reset(st);
	}
	return 0;
}

int store_body_copy(struct store *s, int64_t src, int64_t dst)
{
	struct store_bodies *b = bodies(s);
	sqlite3_stmt *st;
	int where, r;

	if (!store_in_transaction(s))
		return -EINVAL;
	r = body_where(s, src, &where);
	if (r < 0 || where == BODY_NONE)
		return r;
	if (where == BODY_INLINE) {
		r = packs_ready(s, b) ? replace_stored(s, dst) : inline_replaces(s, dst);
		if (r < 0)
			return r;
		r = set_has_body(s, dst);
		if (r < 0)
			return r;
		r = store_prepare(s,
				  "INSERT OR REPLACE INTO body_inline (message_id, data)"
				  " SELECT ?2, data FROM body_inline WHERE message_id = ?1",
				  &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, src);
		sqlite3_bind_int64(st, 2, dst);
		return store_step_done(s, st);
	}
	if (packs_ready(s, b)) {
		/* Appended again: a pack range has one owner, punched when it goes. */
		_cleanup_free_ void *data = NULL;
		size_t len;

		r = store_body_get(s, src, &data, &len);
		if (r < 0)
			return r;
		/* A small body of a bodies database older than version 15. */
		if (len <= STORE_BODY_INLINE_MAX)
			return body_write_inline(s, dst, data, len, -1, len, false);
		return body_write_pack(s, b, dst, data, len, -1, len, false);
	}
	r = need_db(s, b);
	if (r < 0)
		return r;
	r = set_has_body(s, dst);
	if (r < 0)
		return r;
	r = large_replaces(s, b, dst);
	if (r < 0)
		return r;
	r = begin(s, b);
	if (r < 0)
		return r;
	r = note_written(b, dst);
	if (r < 0)
		return r;
	r = bprepare(s, b,
		     "INSERT OR REPLACE INTO body (message_id, data)"
		     " SELECT ?2, data FROM body WHERE message_id = ?1",
		     &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, src);
	sqlite3_bind_int64(st, 2, dst);
	return bdone(s, b, st);
}

int store_body_exists(struct store *s, int64_t message_id, bool *ret)
{
	return store_id_test(s, "SELECT has_body FROM message WHERE id = ?1", message_id, ret);
}

/* An open blob of message_id's body in the bodies database. */
static int open_large(struct store *s, int64_t message_id, sqlite3_blob **ret)
{
	struct store_bodies *b = bodies(s);
	int rc, r;

	r = need_db(s, b);
	if (r < 0)
		return r;
	rc = sqlite3_blob_open(b->db, "main", "body", "data", message_id, 0, ret);
	if (rc == SQLITE_OK)
		return 0;
	sqlite3_blob_close(*ret);
	*ret = NULL;
	if (rc == SQLITE_ERROR) { /* no such row: has_body and bodies disagree */
		store_set_error(s, "the body of message %lld is missing from the bodies database",
				(long long)message_id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	return bfail(s, b->db, rc);
}

static int no_body(struct store *s, int64_t message_id)
{
	store_set_error(s, "message %lld has no body", (long long)message_id);
	return -CPMSYNC_E_NOT_FOUND;
}

/*
 * message_id's inline body: 1 with it in column 0 of *ret (sqlite3_reset()
 * it once read), 0 when it has none inline (none at all, or in the bodies
 * database).  One lookup: an inline row exists only while has_body is set
 * (the version 15 triggers delete it with the row or the flag).
 */
static int inline_row(struct store *s, int64_t message_id, sqlite3_stmt **ret)
{
	int r;

	if (!inline_ready(s, bodies(s)))
		return 0;
	r = store_prepare(s, "SELECT data FROM body_inline WHERE message_id = ?1", ret);
	if (r < 0)
		return r;
	sqlite3_bind_int64(*ret, 1, message_id);
	return store_step(s, *ret);
}

/* A body in the bodies database (stored before version 25), in pieces. */
static int db_each(struct store *s, int64_t message_id, store_body_fn fn, void *userdata)
{
	_cleanup_free_ char *chunk = NULL;
	sqlite3_blob *blob;
	int64_t size;
	int rc, r;

	r = open_large(s, message_id, &blob);
	if (r < 0)
		return r;
	/* The open blob pins one snapshot: size cannot change under us. */
	size = sqlite3_blob_bytes(blob);
	if (size > 0 && !(chunk = malloc(BODY_CHUNK)))
		r = -ENOMEM;
	for (int64_t off = 0; r == 0 && off < size;) {
		int n = size - off < BODY_CHUNK ? (int)(size - off) : BODY_CHUNK;

		rc = sqlite3_blob_read(blob, chunk, n, (int)off);
		if (rc != SQLITE_OK) {
			r = bfail(s, bodies(s)->db, rc);
			break;
		}
		r = fn(userdata, (uint64_t)size, chunk, (size_t)n);
		off += n;
	}
	sqlite3_blob_close(blob);
	return r < 0 ? r : 0;
}

struct crlf_size {
	uint64_t n;
	char last;
};

static int crlf_size_cb(void *userdata, uint64_t size, const void *p, size_t n)
{
	struct crlf_size *c = userdata;
	const char *b = p;

	(void)size;
	for (size_t i = 0; i < n; i++) {
		if (b[i] == '\n' && c->last != '\r')
			c->n++;
		c->last = b[i];
	}
	c->n += n;
	return 0;
}

int store_body_crlf_size(struct store *s, int64_t message_id, uint64_t *ret)
{
	struct crlf_size c = { 0 };
	int r = store_body_each(s, message_id, crlf_size_cb, &c);

	if (r >= 0)
		*ret = c.n;
	return r;
}

int store_body_each(struct store *s, int64_t message_id, store_body_fn fn, void *userdata)
{
	struct store_bodies *b = bodies(s);
	sqlite3_stmt *st;
	bool has;
	int r;

	r = inline_row(s, message_id, &st);
	if (r > 0) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);

		r = fn(userdata, n, n ? sqlite3_column_blob(st, 0) : "", n);
		sqlite3_reset(st);
		return r < 0 ? r : 0;
	}
	if (r < 0)
		return r;
	r = store_body_exists(s, message_id, &has);
	if (r < 0)
		return r;
	if (!has)
		return no_body(s, message_id);
	if (b) {
		r = store_pack_each(s, b->packs, message_id, fn, userdata);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	return db_each(s, message_id, fn, userdata);
}

struct to_fd {
	int fd;
	int64_t message_id;
	struct store *s;
};

static int write_piece(void *userdata, uint64_t size, const void *p, size_t n)
{
	struct to_fd *t = userdata;
	int r = cpmsync_write_all(t->fd, p, n);

	(void)size;
	if (r < 0)
		store_set_error(t->s, "writing the body of message %lld: %s",
				(long long)t->message_id, strerror(-r));
	return r;
}

int store_body_read_fd(struct store *s, int64_t message_id, int fd)
{
	struct to_fd t = { .fd = fd, .message_id = message_id, .s = s };

	if (!s || fd < 0)
		return -EINVAL;
	return store_body_each(s, message_id, write_piece, &t);
}

struct to_buf {
	char *data;
	size_t len;
};

static int copy_piece(void *userdata, uint64_t size, const void *p, size_t n)
{
	struct to_buf *t = userdata;

	if (!t->data) {
		if (size > SIZE_MAX - 1 || !(t->data = malloc((size_t)size + 1)))
			return -ENOMEM;
	}
	if (n > size - t->len)
		return -CPMSYNC_E_STORE_CORRUPT; /* more than announced */
	memcpy(t->data + t->len, p, n);
	t->len += n;
	return 0;
}

int store_body_get(struct store *s, int64_t message_id, void **ret, size_t *ret_len)
{
	struct to_buf t = { 0 };
	int r;

	r = store_body_each(s, message_id, copy_piece, &t);
	if (r == 0 && !t.data && !(t.data = malloc(1))) /* an empty body */
		r = -ENOMEM;
	if (r < 0) {
		free(t.data);
		return r;
	}
	*ret = t.data;
	*ret_len = t.len;
	return 0;
}

sqlite3 *store_bodies_db_for_test(struct store *s)
{
	struct store_bodies *b = bodies(s);

	return b && need_db(s, b) == 0 ? b->db : NULL;
}

struct store_packs *store_packs_for_test(struct store *s)
{
	struct store_bodies *b = bodies(s);

	return b ? b->packs : NULL;
}
