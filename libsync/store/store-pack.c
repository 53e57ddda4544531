/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pack files: the bodies over STORE_BODY_INLINE_MAX (schema version 25),
 * appended to <store path>-packs/<pack id>, with their place in the store
 * (body_pack: pack, offset, length).  A body that goes is punched out of
 * its pack (fallocate PUNCH_HOLE), which writes no data; a pack is
 * unlinked once no body lives in it.
 *
 * Why (issue 9; 20,000 bodies of 1-20 KiB on this project's ext4 machine):
 *  - In the bodies database (store-body.c) deleting a body rewrote its
 *    B-tree leaf and the freelist trunk, each journaled first: 18 of the
 *    ~26 KB that tests/bench/bench-sync.sh counted per expunged message.
 *  - Appending the bodies to one file and fdatasyncing it wrote 1.00x
 *    their bytes (the database: 1.08x).  Punching the block-aligned
 *    interior of 200 random bodies and one fdatasync cost 37 bytes of
 *    write_bytes per body, 625 us each.
 *  - The blocks at a body's two edges are shared with its neighbours.
 *    Ranges that go in one batch and touch are punched as one; an edge
 *    block next to a hole is punched with its body (see widen()).  Without
 *    that, 100 rounds of 1% deletions of bodies of 4-20 KiB left 57% of
 *    the live bytes as dead blocks on the disk; with it 25% (every dead gap
 *    punched up to its live neighbours, which needs an index written per
 *    body: 21%).
 *
 * Crash safety, in the order of the writes:
 *  - A body is written past the pack's committed end (pack.size), in the
 *    caller's store transaction.  Before the store commits, the pack's row
 *    gets its new end and the file is fdatasynced (and the directory, for a
 *    new pack); the body_pack row then commits with the store.  A crash
 *    before that leaves bytes past pack.size that no row names: the next
 *    append writes over them, and the open truncates them.  A rollback
 *    gives them back at once, under the write lock (give_back()): the pack
 *    the transaction appended to is cut at the end it had at the
 *    transaction's start, the packs it made are unlinked.  Cutting past a
 *    committed end needs no sync: a crash before it reaches the disk only
 *    leaves the bytes for the open.  The next append reads pack.size again.
 *  - A body that goes (its row deleted, or has_body cleared) has its range
 *    queued in pack_trash by the version 25 triggers, in the transaction
 *    that dropped it.  After that commit, store_packs_collect() syncs the
 *    WAL (the commit must be durable before its body is: synchronous is
 *    NORMAL), punches the ranges, then deletes the trash rows; a crash in
 *    between punches again at the next collect.
 *  - A pack made in a transaction that did not commit has no row: the open
 *    deletes its file.  Pack ids are AUTOINCREMENT, so a committed id is
 *    never given to another pack.
 *  - A reader reads in a snapshot that may be older than the punch or
 *    unlink of what it reads, by another process (the daemon, or a second
 *    writer linking the library): after reading it looks again on a second
 *    connection, at the latest commit, and reports a body that went
 *    meanwhile as gone rather than zeros.  Not needed inside a write
 *    transaction of its own (nobody else commits a drop then, and a
 *    process collects only between its transactions).
 */
#include <sqlite3.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/io.h>

#include "store/store.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/pio.h"

/* A pack takes no more bodies once it is this large. */
#define PACK_MAX    (16 * 1024 * 1024)
#define PACK_CHUNK  (64 * 1024)
#define PUNCH_BLOCK 4096
/* Every pack body spans a block boundary (widen() needs it); the version
 * 26 index lists the smaller ones copied in before that held. */
#define SMALL_MAX 4096
_Static_assert(STORE_BODY_INLINE_MAX == SMALL_MAX && SMALL_MAX == PUNCH_BLOCK,
	       "pack bodies are over a block, and body_pack_small lists the others");
#define TRASH_BATCH 512

struct store_packs {
	char *store_path;
	char *dir; /* <store path>-packs */
	bool readonly;
	bool ready; /* the store has body_pack (schema version 25) */
	/* The pack appended to (cur_fd -1: read its row at the next append). */
	int64_t cur;
	int cur_fd;
	uint64_t tx;	  /* store_tx_seq() of the transaction that last checked cur */
	uint64_t cur_end; /* where the next body goes */
	/* Appended in the open transaction, not yet in the pack's row. */
	int64_t added;
	/* What the transaction p->tx appended to, for a rollback: the pack of
	 * its first body and that pack's committed end (tx_base 0: none), and
	 * the first pack it made (0: none; it made every id from there to cur). */
	int64_t tx_base;
	uint64_t tx_base_end;
	int64_t tx_first_new;
	bool dir_dirty; /* a pack file made: fsync the directory */
	/* store_packs_mark(): where the appends stood at the store's mark
	 * (mark_tx: the transaction it is in; 0, none). */
	uint64_t mark_tx;
	bool mark_touched; /* the transaction had appended (p->tx was it) */
	int64_t mark_cur, mark_added, mark_first_new;
	uint64_t mark_end;
	/* The last pack read from (other than cur). */
	int64_t rd;
	int rd_fd;
	/* The latest commit, for the look after a read, and its statement. */
	sqlite3 *check;
	sqlite3_stmt *check_st;
};

struct store_packs *store_packs_new(const char *store_path, bool readonly)
{
	struct store_packs *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->cur_fd = p->rd_fd = -1;
	p->readonly = readonly;
	p->store_path = strdup(store_path);
	if (!p->store_path || asprintf(&p->dir, "%s-packs", store_path) < 0) {
		free(p->store_path);
		free(p);
		return NULL;
	}
	return p;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void store_packs_free(struct store_packs *p)
{
	if (!p)
		return;
	close_fd(&p->cur_fd);
	close_fd(&p->rd_fd);
	sqlite3_finalize(p->check_st);
	sqlite3_close_v2(p->check);
	free(p->store_path);
	free(p->dir);
	free(p);
}

bool store_packs_ready(struct store *s, struct store_packs *p)
{
	sqlite3_stmt *st;

	if (!p)
		return false;
	if (p->ready)
		return true;
	/* Tables are never dropped: once seen, not looked for again. */
	if (store_prepare(s,
			  "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'body_pack'",
			  &st) < 0)
		return false;
	if (store_step(s, st) <= 0)
		return false;
	sqlite3_reset(st);
	p->ready = true;
	return true;
}

static int pack_path(struct store_packs *p, int64_t id, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%lld", p->dir, (long long)id);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int sys_fail(struct store *s, const char *what, const char *path, int err)
{
	store_set_error(s, "%s %s: %s", what, path, strerror(err));
	return -err;
}

/* fsync of a directory (a new entry in it made durable). */
static int sync_dir(struct store *s, const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return sys_fail(s, "opening", dir, errno);
	if (fsync(fd) < 0)
		r = sys_fail(s, "syncing", dir, errno);
	close(fd);
	return r;
}

/* The packs' directory, made (and its entry synced) if it is not there. */
static int need_dir(struct store *s, struct store_packs *p)
{
	_cleanup_free_ char *parent = NULL;
	char *slash;

	if (mkdir(p->dir, 0700) == 0) {
		parent = strdup(p->dir);
		if (!parent)
			return -ENOMEM;
		slash = strrchr(parent, '/');
		if (!slash)
			return sync_dir(s, ".");
		*(slash == parent ? slash + 1 : slash) = '\0';
		return sync_dir(s, parent);
	}
	if (errno == EEXIST)
		return 0;
	return sys_fail(s, "making", p->dir, errno);
}

/* Writes the appended bodies' count and the end into the open pack's row. */
static int flush_row(struct store *s, struct store_packs *p)
{
	sqlite3_stmt *st;
	int r;

	if (p->added == 0)
		return 0;
	r = store_prepare(s, "UPDATE pack SET size = ?2, live = live + ?3 WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, p->cur);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)p->cur_end);
	sqlite3_bind_int64(st, 3, p->added);
	r = store_step_done(s, st);
	if (r == 0)
		p->added = 0;
	return r;
}

/* The open pack's row written and its data on disk. */
static int sync_current(struct store *s, struct store_packs *p)
{
	char path[PATH_MAX];
	bool dirty = p->added > 0;
	int r = flush_row(s, p);

	if (r < 0 || !dirty || p->cur_fd < 0)
		return r;
	if (fdatasync(p->cur_fd) == 0)
		return 0;
	r = -errno;
	pack_path(p, p->cur, path, sizeof(path));
	return sys_fail(s, "syncing", path, -r);
}

/* A new pack, in the open transaction: its row, then its file. */
static int new_pack(struct store *s, struct store_packs *p)
{
	char path[PATH_MAX];
	int r;

	r = need_dir(s, p);
	if (r < 0)
		return r;
	r = store_exec(s, "INSERT INTO pack (size, live) VALUES (0, 0)");
	if (r < 0)
		return r;
	p->cur = sqlite3_last_insert_rowid(store_db(s));
	if (p->tx_first_new == 0)
		p->tx_first_new = p->cur;
	r = pack_path(p, p->cur, path, sizeof(path));
	if (r < 0)
		return r;
	/* O_TRUNC: a file of a pack whose row never committed may be there. */
	p->cur_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (p->cur_fd < 0)
		return sys_fail(s, "making", path, errno);
	p->cur_end = 0;
	p->dir_dirty = true;
	return 0;
}

/* The pack the next body goes to, with room for it. */
static int need_current(struct store *s, struct store_packs *p)
{
	char path[PATH_MAX];
	sqlite3_stmt *st;
	int64_t id, size;
	int r;

	if (p->cur_fd >= 0 && p->tx == store_tx_seq(s)) {
		if (p->cur_end < PACK_MAX)
			return 0;
		/* Full: its bodies synced now, the row with the transaction. */
		r = sync_current(s, p);
		if (r < 0)
			return r;
		close_fd(&p->cur_fd);
		return new_pack(s, p);
	}
	/* The first body of a transaction goes where the last commit left the
	 * newest pack: another writer (a program linking the library beside
	 * the daemon) may have appended, or started a pack, since ours.  Read
	 * under the write lock, nobody else's append is under way. */
	p->tx = store_tx_seq(s);
	p->tx_base = p->tx_first_new = 0;
	r = store_prepare(s, "SELECT id, size FROM pack ORDER BY id DESC LIMIT 1", &st);
	if (r < 0)
		return r;
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		close_fd(&p->cur_fd);
		return new_pack(s, p);
	}
	id = sqlite3_column_int64(st, 0);
	size = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	if (id != p->cur)
		close_fd(&p->cur_fd);
	if (size >= PACK_MAX) {
		close_fd(&p->cur_fd);
		return new_pack(s, p);
	}
	p->tx_base = id;
	p->tx_base_end = (uint64_t)size;
	if (p->cur_fd >= 0) {
		p->cur_end = (uint64_t)size;
		p->added = 0;
		return 0;
	}
	r = pack_path(p, id, path, sizeof(path));
	if (r < 0)
		return r;
	p->cur_fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (p->cur_fd < 0 && errno == ENOENT) {
		/* The newest pack's file removed (by hand, a damaged disk):
		 * the bodies in it are lost here (a Fetch gets the server's
		 * copy).  Failing, every body written from then on failed
		 * with it, and the account's sync for good. */
		log_msg(CPMSYNC_LOG_WARNING, CPMSYNC_LOG_CAT_STORE,
			"the pack file %s is missing: the bodies it held are lost here; new "
			"bodies go to a new pack",
			path);
		p->tx_base = 0;
		return new_pack(s, p);
	}
	if (p->cur_fd < 0)
		return sys_fail(s, "opening", path, errno);
	p->cur = id;
	p->cur_end = (uint64_t)size;
	p->added = 0;
	return 0;
}

int store_pack_put(struct store *s, struct store_packs *p, int64_t message_id, const void *head,
		   size_t head_len, int fd, uint64_t size)
{
	_cleanup_free_ char *chunk = NULL;
	sqlite3_stmt *st;
	uint64_t off, at;
	int r;

	if (size <= SMALL_MAX) {
		store_set_error(s, "a body of %llu bytes goes inline, not into a pack",
				(unsigned long long)size);
		return -EINVAL;
	}
	r = need_current(s, p);
	if (r < 0)
		return r;
	at = p->cur_end;
	r = io_pwrite_all(p->cur_fd, head, head_len, at);
	for (off = head_len; r == 0 && off < size;) {
		size_t n = size - off < PACK_CHUNK ? (size_t)(size - off) : PACK_CHUNK;

		if (!chunk && !(chunk = malloc(PACK_CHUNK)))
			return -ENOMEM;
		r = cpmsync_read_exact(fd, chunk, n);
		if (r < 0) {
			store_set_error(s, "reading the body of message %lld: %s",
					(long long)message_id,
					r == -EIO ? "end of input before the announced size"
						  : strerror(-r));
			return r;
		}
		r = io_pwrite_all(p->cur_fd, chunk, n, at + off);
		off += n;
	}
	if (r < 0) {
		char path[PATH_MAX];

		pack_path(p, p->cur, path, sizeof(path));
		return sys_fail(s, "writing", path, -r);
	}
	/* store_set_full_safe(): INSERT ... SELECT. */
	r = store_prepare(
		s,
		store_full_safe(s)
			? "INSERT INTO body_pack (message_id, pack, off, len) SELECT ?1, ?2, ?3, ?4"
			: "INSERT INTO body_pack (message_id, pack, off, len) VALUES (?1, ?2, ?3, "
			  "?4)",
		&st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	sqlite3_bind_int64(st, 2, p->cur);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)at);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)size);
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	p->cur_end = at + size;
	p->added++;
	return 0;
}

int store_packs_precommit(struct store *s, struct store_packs *p)
{
	int r;

	if (!p)
		return 0;
	r = sync_current(s, p);
	if (r < 0 || !p->dir_dirty)
		return r;
	r = sync_dir(s, p->dir);
	if (r == 0)
		p->dir_dirty = false;
	return r;
}

/* Pack id's file cut at end, if it is longer (fd: its descriptor, or -1). */
static void cut(struct store_packs *p, int64_t id, int fd, uint64_t end)
{
	char path[PATH_MAX];
	struct stat sb;
	int own = -1;

	if (fd < 0) {
		if (pack_path(p, id, path, sizeof(path)) < 0)
			return;
		fd = own = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return;
	}
	if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size > end)
		(void)!ftruncate(fd, (off_t)end);
	close_fd(&own);
}

/* The committed end of pack id (1), or 0 when it has no row, or -1. */
static int committed_end(sqlite3 *db, int64_t id, uint64_t *ret)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT size FROM pack WHERE id = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/*
 * The bytes the rolled-back transaction appended, given back to the file
 * system (issue: a sync that failed on a full disk left megabytes past
 * the committed end until the next open, and every later write failed).
 * Only under the write lock: with it released, another writer may be
 * appending past the same committed end.  Still held, the ends are those
 * read at the transaction's start (the database shows the transaction's
 * own rows); when SQLite has rolled back by itself (FULL, IOERR), it is
 * taken again and the ends read from the database.  Best effort: what
 * stays is written over by the next append, and cut off at the next open.
 */
static void give_back(struct store *s, struct store_packs *p)
{
	sqlite3 *db = store_db(s);
	bool held = !sqlite3_get_autocommit(db);
	uint64_t end;
	int r;

	if (!held && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return;
	if (p->tx_base > 0) {
		end = p->tx_base_end;
		r = held ? 1 : committed_end(db, p->tx_base, &end);
		/* Without its row now, another writer dropped it (and its file). */
		if (r > 0)
			cut(p, p->tx_base, p->tx_base == p->cur ? p->cur_fd : -1, end);
	}
	for (int64_t id = p->tx_first_new; id > 0 && id <= p->cur; id++) {
		char path[PATH_MAX];

		r = held ? 0 : committed_end(db, id, &end);
		if (r > 0)
			cut(p, id, id == p->cur ? p->cur_fd : -1, end);
		else if (r == 0 && pack_path(p, id, path, sizeof(path)) == 0)
			unlink(path); /* a pack without a row: the open would delete it */
	}
	if (!held)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

void store_packs_forget(struct store *s, struct store_packs *p)
{
	if (!p)
		return;
	/* What the store's transaction appended has no committed row. */
	if (store_in_transaction(s) && p->tx == store_tx_seq(s))
		give_back(s, p);
	close_fd(&p->cur_fd);
	p->tx_base = p->tx_first_new = 0;
	p->added = 0;
	p->dir_dirty = false;
}

void store_packs_mark(struct store *s, struct store_packs *p)
{
	if (!p)
		return;
	p->mark_tx = store_tx_seq(s);
	p->mark_touched = p->tx == p->mark_tx;
	p->mark_cur = p->cur;
	p->mark_end = p->cur_end;
	p->mark_added = p->added;
	p->mark_first_new = p->tx_first_new;
}

/*
 * What the transaction appended after the mark given back, as give_back()
 * does for all of it: the packs made since unlinked (their rows are rolled
 * back with the mark), the pack appended to at the mark cut at the end it
 * had then, its file open again for the next append.  Nothing appended
 * since (p->tx is another transaction's, or the same pack at the same
 * end): nothing to do.
 */
int store_packs_rollback_to_mark(struct store *s, struct store_packs *p)
{
	char path[PATH_MAX];
	uint64_t tx = store_tx_seq(s);
	int64_t first;
	int r;

	if (!p || p->tx != tx)
		return 0;
	if (p->mark_tx != tx || !p->mark_touched) {
		/* Marked before the transaction's first append: all it
		 * appended is after the mark. */
		give_back(s, p);
		close_fd(&p->cur_fd);
		p->tx = 0;
		p->tx_base = p->tx_first_new = 0;
		p->added = 0;
		return 0;
	}
	first = p->mark_cur + 1;
	for (int64_t id = first; id <= p->cur; id++)
		if (pack_path(p, id, path, sizeof(path)) == 0)
			unlink(path);
	if (p->cur != p->mark_cur || p->cur_fd < 0) {
		close_fd(&p->cur_fd);
		r = pack_path(p, p->mark_cur, path, sizeof(path));
		if (r < 0)
			return r;
		p->cur_fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (p->cur_fd < 0)
			return sys_fail(s, "opening", path, errno);
		p->cur = p->mark_cur;
	}
	cut(p, p->cur, p->cur_fd, p->mark_end);
	p->cur_end = p->mark_end;
	p->added = p->mark_added;
	p->tx_first_new = p->mark_first_new;
	return 0;
}

/* A pack's file for reading (the open pack's own descriptor, or one kept). */
static int read_fd(struct store_packs *p, int64_t id, int *ret)
{
	char path[PATH_MAX];
	int r;

	if (id == p->cur && p->cur_fd >= 0) {
		*ret = p->cur_fd;
		return 0;
	}
	if (id == p->rd && p->rd_fd >= 0) {
		*ret = p->rd_fd;
		return 0;
	}
	close_fd(&p->rd_fd);
	r = pack_path(p, id, path, sizeof(path));
	if (r < 0)
		return r;
	p->rd_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (p->rd_fd < 0)
		return -errno;
	p->rd = id;
	*ret = p->rd_fd;
	return 0;
}

/*
 * Whether message_id's body is still at (pack, off) in the latest commit
 * (1), or went while it was read (0).
 */
static int still_there(struct store *s, struct store_packs *p, int64_t message_id, int64_t pack,
		       int64_t off)
{
	sqlite3_stmt *st;
	int rc;

	if (!p->check) {
		rc = store_open_readonly_db(s, p->store_path, &p->check);
		if (rc != SQLITE_OK) {
			store_set_error(s, "%s: %s", p->store_path,
					p->check ? sqlite3_errmsg(p->check) : "out of memory");
			sqlite3_close_v2(p->check);
			p->check = NULL;
			return store_map_sqlite_error(rc);
		}
		sqlite3_busy_timeout(p->check, STORE_BUSY_TIMEOUT_MS);
	}
	rc = SQLITE_OK;
	if (!p->check_st)
		rc = sqlite3_prepare_v2(
			p->check,
			"SELECT 1 FROM body_pack WHERE message_id = ?1 AND pack = ?2 AND off = ?3",
			-1, &p->check_st, NULL);
	st = p->check_st;
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, message_id);
		sqlite3_bind_int64(st, 2, pack);
		sqlite3_bind_int64(st, 3, off);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
	}
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	store_set_error(s, "%s: %s", p->store_path, sqlite3_errmsg(p->check));
	return store_map_sqlite_error(rc);
}

int store_pack_each(struct store *s, struct store_packs *p, int64_t message_id, store_body_fn fn,
		    void *userdata)
{
	_cleanup_free_ char *chunk = NULL;
	sqlite3_stmt *st;
	int64_t pack, at, len, off;
	int fd = -1, r = 0, io_err;

	if (!store_packs_ready(s, p))
		return 0;
	r = store_prepare(s, "SELECT pack, off, len FROM body_pack WHERE message_id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	pack = sqlite3_column_int64(st, 0);
	at = sqlite3_column_int64(st, 1);
	len = sqlite3_column_int64(st, 2);
	sqlite3_reset(st);

	io_err = read_fd(p, pack, &fd);
	if (io_err == 0 && !(chunk = malloc(PACK_CHUNK)))
		return -ENOMEM;
	for (off = 0; io_err == 0 && off < len;) {
		size_t n = len - off < PACK_CHUNK ? (size_t)(len - off) : PACK_CHUNK;

		io_err = io_pread_exact(fd, chunk, n, (uint64_t)(at + off));
		if (io_err < 0)
			break;
		r = fn(userdata, (uint64_t)len, chunk, n);
		if (r != 0) /* an error, or fn has what it wanted */
			break;
		off += (int64_t)n;
	}
	/* Outside a write transaction of ours another writer (or, read-only,
	 * the daemon) may have dropped the body and punched it out since the
	 * row above was read. */
	if (p->readonly || !store_in_transaction(s)) {
		int there = still_there(s, p, message_id, pack, at);

		if (there < 0)
			return there;
		if (!there) {
			store_set_error(s, "the body of message %lld went while it was read",
					(long long)message_id);
			return -CPMSYNC_E_NOT_FOUND;
		}
	}
	if (io_err < 0) {
		char path[PATH_MAX];

		pack_path(p, pack, path, sizeof(path));
		store_set_error(
			s, "reading the body of message %lld: %s: %s", (long long)message_id, path,
			io_err == -EIO ? "the file ends before the body" : strerror(-io_err));
		/* Damage, not a passing error: said once here, whoever reads */
		log_msg(CPMSYNC_LOG_WARNING, CPMSYNC_LOG_CAT_STORE, "%s", store_error(s));
		return io_err == -EIO ? -CPMSYNC_E_STORE_CORRUPT : io_err;
	}
	return r < 0 ? r : 1;
}

struct range {
	int64_t pack, off, len;
};

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* The pack a batch punches in: its file, committed end, and whether every
 * body in it spans a block boundary. */
struct punch_pack {
	int64_t id;
	int fd;
	int64_t size;
	bool widen;
};

static int punch_open(struct store *s, struct store_packs *p, struct punch_pack *pp, int64_t id)
{
	char path[PATH_MAX];
	sqlite3_stmt *st;
	int r;

	if (pp->id == id)
		return 0;
	close_fd(&pp->fd);
	pp->id = id;
	pp->widen = false;
	if (pack_path(p, id, path, sizeof(path)) == 0)
		pp->fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (pp->fd < 0)
		return 0;
	r = store_prepare(s,
			  "SELECT size, EXISTS (SELECT 1 FROM body_pack WHERE pack = ?1"
			  " AND len <= " STR(SMALL_MAX) ") FROM pack WHERE id = ?1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	pp->size = sqlite3_column_int64(st, 0);
	pp->widen = !sqlite3_column_int(st, 1);
	sqlite3_reset(st);
	return 0;
}

/* Whether the block at `at` holds no data (punched: every byte of it dead). */
static bool block_is_hole(int fd, uint64_t at)
{
	off_t d = lseek(fd, (off_t)at, SEEK_DATA);

	if (d < 0)
		return errno == ENXIO; /* a hole up to the end of the file */
	return (uint64_t)d >= at + PUNCH_BLOCK;
}

/*
 * The dead range r grown over the blocks it shares with its neighbours,
 * where they are dead too.  The bytes of r's first block before r belong
 * to the body that ends where r starts; it is over a block long (every
 * body of a widened pack is), so it also holds the last byte of the block
 * before, and that block punched out means that body is dead.  The same
 * at the other end, with the body that starts where r ends: up to the
 * committed end only (another writer may be appending past it).  Holes
 * come only from punches of dead bytes; a file system that reports none
 * (or holes of larger blocks) just widens nothing.
 */
static void widen(const struct punch_pack *pp, struct range *r)
{
	const uint64_t mask = PUNCH_BLOCK - 1;
	uint64_t a = (uint64_t)r->off, e = (uint64_t)(r->off + r->len);
	uint64_t a0 = a & ~mask, e1 = (e + mask) & ~mask;

	if (!pp->widen)
		return;
	if (a != a0 && a0 >= PUNCH_BLOCK && block_is_hole(pp->fd, a0 - PUNCH_BLOCK))
		a = a0;
	if (e != e1 && e < (uint64_t)pp->size && block_is_hole(pp->fd, e1))
		e = e1;
	r->off = (int64_t)a;
	r->len = (int64_t)(e - a);
}

/* Punches the whole blocks inside r.  Best effort: a file system without
 * holes gets the space back with the pack. */
static void punch(int fd, const struct range *r)
{
	uint64_t a = ((uint64_t)r->off + PUNCH_BLOCK - 1) & ~(uint64_t)(PUNCH_BLOCK - 1);
	uint64_t e = ((uint64_t)(r->off + r->len)) & ~(uint64_t)(PUNCH_BLOCK - 1);

	if (e > a)
		fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a, (off_t)(e - a));
}

/* One batch of pack_trash punched and deleted: its count, or -errno. */
static int trash_batch(struct store *s, struct store_packs *p, bool *synced)
{
	struct range v[TRASH_BATCH];
	struct punch_pack pp = { .fd = -1 };
	int64_t last = 0;
	sqlite3_stmt *st;
	size_t n = 0;
	int r;

	r = store_prepare(s,
			  "SELECT rowid, pack, off, len FROM pack_trash ORDER BY rowid"
			  " LIMIT " STR(TRASH_BATCH),
			  &st);
	if (r < 0)
		return r;
	while (n < TRASH_BATCH && (r = store_step(s, st)) > 0) {
		last = sqlite3_column_int64(st, 0);
		v[n].pack = sqlite3_column_int64(st, 1);
		v[n].off = sqlite3_column_int64(st, 2);
		v[n].len = sqlite3_column_int64(st, 3);
		n++;
	}
	if (r > 0)
		sqlite3_reset(st);
	if (r < 0 || n == 0)
		return r;
	/* The commits that queued these ranges on the disk first
	 * (synchronous = NORMAL syncs the WAL only at a checkpoint): no power
	 * loss may bring back a row whose body is punched out. */
	if (!*synced) {
		r = store_sync_wal(s);
		if (r < 0)
			return r;
		*synced = true;
	}
	/* Ranges that touch are punched as one, their shared blocks too; in
	 * offset order, so that a range is widened over the holes of those
	 * before it. */
	qsort(v, n, sizeof(v[0]), range_cmp);
	for (size_t i = 0, j; r >= 0 && i < n; i = j) {
		struct range m = v[i];

		for (j = i + 1; j < n && v[j].pack == m.pack && v[j].off == m.off + m.len; j++)
			m.len += v[j].len;
		r = punch_open(s, p, &pp, m.pack);
		if (r < 0 || pp.fd < 0)
			continue;
		widen(&pp, &m);
		punch(pp.fd, &m);
	}
	close_fd(&pp.fd);
	if (r < 0)
		return r;
	r = store_prepare(s, "DELETE FROM pack_trash WHERE rowid <= ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, last);
	r = store_step_done(s, st);
	return r < 0 ? r : (int)n;
}

/* Packs no body lives in, other than the one appended to: row, then file. */
static int drop_empty(struct store *s, struct store_packs *p)
{
	int64_t ids[16];
	sqlite3_stmt *st;
	size_t n = 0;
	int r;

	r = store_prepare(s,
			  "SELECT id FROM pack WHERE live <= 0"
			  " AND (size >= " STR(PACK_MAX) " OR id < (SELECT max(id) FROM pack))"
							 " LIMIT 16",
			  &st);
	if (r < 0)
		return r;
	while (n < ARRAY_SIZE(ids) && (r = store_step(s, st)) > 0)
		ids[n++] = sqlite3_column_int64(st, 0);
	if (r > 0)
		sqlite3_reset(st);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		char path[PATH_MAX];

		r = store_exec_id(s, "DELETE FROM pack WHERE id = ?1", ids[i]);
		if (r < 0)
			break;
		if (ids[i] == p->rd)
			close_fd(&p->rd_fd);
		if (ids[i] == p->cur)
			close_fd(&p->cur_fd);
		/* A crash before the unlink: the open deletes a file without a row. */
		if (pack_path(p, ids[i], path, sizeof(path)) == 0)
			unlink(path);
	}
	return r < 0 ? r : (int)n;
}

/*
 * At open: files of packs without a row (made by a transaction that did not
 * commit, or dropped before a crash) deleted; bytes past a pack's committed
 * end (a transaction that did not commit) cut off.
 */
static int sweep(struct store *s, struct store_packs *p)
{
	DIR *d = opendir(p->dir);
	struct dirent *e;
	sqlite3_stmt *st;
	int r = 0;

	if (!d)
		return errno == ENOENT ? 0 : sys_fail(s, "opening", p->dir, errno);
	r = store_prepare(s, "SELECT size FROM pack WHERE id = ?1", &st);
	while (r >= 0 && (e = readdir(d))) {
		char path[PATH_MAX], *end;
		long long id = strtoll(e->d_name, &end, 10);
		struct stat sb;

		if (*end || end == e->d_name || id <= 0 || pack_path(p, id, path, sizeof(path)) < 0)
			continue;
		sqlite3_bind_int64(st, 1, id);
		r = store_step(s, st);
		if (r == 0) {
			unlink(path);
		} else if (r > 0) {
			int64_t size = sqlite3_column_int64(st, 0);

			sqlite3_reset(st);
			if (stat(path, &sb) == 0 && sb.st_size > size && truncate(path, size) < 0)
				r = sys_fail(s, "truncating", path, errno);
		}
	}
	closedir(d);
	return r < 0 ? r : 0;
}

int store_packs_collect(struct store *s, struct store_packs *p, bool at_open)
{
	bool synced = false;
	int r;

	if (!p || p->readonly || !store_packs_ready(s, p))
		return 0;
	if (at_open) {
		close_fd(&p->cur_fd);
		r = sweep(s, p);
		if (r < 0)
			return r;
	}
	while ((r = trash_batch(s, p, &synced)) == TRASH_BATCH)
		;
	if (r < 0)
		return r;
	/* A pack's live count falls only by the triggers that queue its
	 * ranges: after a commit that queued none, no pack became empty (the
	 * open looks anyway, for one left before a crash). */
	if (!synced && !at_open)
		return 0;
	while ((r = drop_empty(s, p)) == 16)
		;
	return r < 0 ? r : 0;
}
