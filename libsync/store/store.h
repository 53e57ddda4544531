/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The local store: one SQLite database (store.db) in WAL mode, with
 * foreign keys on.  The daemon owns the one writing connection; other
 * processes (cpmctl dump, UIs) open it with STORE_READONLY and read while
 * the daemon writes.
 *
 * Every function returns 0 (or a documented non-negative value) on
 * success, -errno, or -CPMSYNC_E_*.  SQLite result codes are mapped here
 * (see store_map_sqlite_error()); the text of the last SQLite failure stays
 * available through store_error().  Nothing here prints or logs.
 *
 * Write transactions start with BEGIN IMMEDIATE (store_begin()), so that a
 * busy database is reported when the transaction starts, after the busy
 * timeout, never half-way through it.  Transactions do not nest.
 *
 * The schema version lives in PRAGMA user_version.  store_open() of a
 * read-write store applies the numbered migrations in order, each in its
 * own BEGIN IMMEDIATE transaction which also sets user_version, so an
 * interrupted upgrade leaves a consistent, older version behind.  A new
 * store is made at once from the snapshot of the newest schema.
 *
 * This header names no SQLite type for the rest of the library.  The
 * prepared-statement helpers at the bottom are for the files under libsync/store/ only
 * and are declared only where <sqlite3.h> was included first.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macro.h"

struct store;

enum {
	STORE_READONLY = 1u << 0, /* no writes, no migrations; never creates the file */
	STORE_KEEP_WAL = 1u << 1, /* no checkpoint at close (store.c keep_wal_files()) */
};

#define STORE_BUSY_TIMEOUT_MS 5000
/* The WAL is checkpointed when a commit leaves it this many pages long. */
#define STORE_WAL_CHECKPOINT_PAGES 4096

/* The schema version this code creates and understands (the number of migrations). */
unsigned store_schema_version(void);

/*
 * Opens (read-write: creating if needed) the database at path and brings
 * its schema up to store_schema_version().  The parent directory must
 * exist.  Refuses, with -CPMSYNC_E_STORE_CORRUPT, a file that is not a
 * database, a schema newer than this code knows and (STORE_READONLY only)
 * a schema older than it, since a reader cannot migrate.
 *
 * On success *ret is the store (close with store_close()).  On failure
 * *ret is NULL and, if ret_error is not NULL, *ret_error is a message for
 * humans (free with free(); NULL if even that could not be allocated); on
 * success *ret_error is NULL.
 */
int store_open(const char *path, unsigned flags, struct store **ret, char **ret_error);

/*
 * Tests only: like store_open() (read-write) but applies the migrations
 * only up to version, so that tests can build every older schema and then
 * open it with store_open().  version 0 gives an empty WAL database.
 */
int store_open_at_version_for_test(const char *path, unsigned version, struct store **ret,
				   char **ret_error);

/*
 * The schema of s as the SQL that makes it on an empty database (tables,
 * then indexes, then triggers, each kind in the order it was made; SQLite's
 * own objects left out), each statement followed by ";\n".  with_state
 * adds, as comment lines, what else two new stores must share: the
 * user_version and every table's row count.  *ret: free() it.  For
 * tests/tools/schema-snapshot and the test that the snapshot is current.
 */
int store_schema_dump(struct store *s, bool with_state, char **ret);

/*
 * store-schema-snapshot.c (generated: make schema-snapshot): what
 * store_schema_dump() gave on a new store made by migrations 1 to
 * store_schema_snapshot_version.  store_open() makes a new store with it
 * when that is store_schema_version() (one statement each, instead of every
 * migration with the rebuilds and schema re-parses of each); otherwise,
 * and for store_open_at_version_for_test(), by the migrations.
 */
extern const unsigned store_schema_snapshot_version;
extern const char store_schema_snapshot_sql[];

/*
 * Creates the file path, mode 0600 whatever the umask (O_EXCL,
 * O_NOFOLLOW), unless it exists.  SQLite creates a database 0644 & ~umask
 * and gives its journal, WAL and shared-memory files the database's mode:
 * created first, they are all 0600.  ":memory:", "" and "file:" URIs are
 * left alone.  Returns 0 or -errno.
 */
int store_create_private(const char *path);

/* Rolls back an open transaction and closes.  NULL is accepted.  Returns NULL. */
struct store *store_close(struct store *s);

static inline void store_closep(struct store **s)
{
	store_close(*s);
}
#define _cleanup_store_ _cleanup_(store_closep)

/*
 * true the first time key (len bytes) is given for s, false after: for a
 * warning given once per open store (once per daemon run) instead of at
 * every sync, e.g. a folder name the server lists that cannot be stored.
 * Kept in memory only; at most STORE_NOTES_MAX keys (then false: a server
 * cannot grow it without bound).
 */
#define STORE_NOTES_MAX 1024
bool store_note_once(struct store *s, const void *key, size_t len);

/* Changes how long a locked database is retried (default STORE_BUSY_TIMEOUT_MS). */
int store_set_busy_timeout(struct store *s, unsigned ms);

/*
 * The SQLite message of the last failure on s ("" if none).  Valid until
 * the next call on s.
 */
const char *store_error(const struct store *s);

/*
 * Maps an SQLite result code (primary or extended):
 *   BUSY, LOCKED          -> -CPMSYNC_E_STORE_BUSY   (retry later)
 *   CORRUPT, NOTADB       -> -CPMSYNC_E_STORE_CORRUPT
 *   FULL                  -> -CPMSYNC_E_STORE_FULL
 *   IOERR_*               -> -EIO (store_map_db_error() tells a full disk
 *                            or quota under an IOERR from a failing disk)
 *   NOMEM                 -> -ENOMEM
 *   CONSTRAINT_FOREIGNKEY -> -CPMSYNC_E_NOT_FOUND    (the parent row is missing)
 *   other CONSTRAINT_*    -> -EEXIST
 *   TOOBIG                -> -E2BIG
 *   anything else         -> -EIO
 * SQLITE_OK, _ROW and _DONE give 0.
 */
int store_map_sqlite_error(int sqlite_rc);

/*
 * Transactions.  One connection, one writer discipline shared by the
 * local calls and the sync engine (the daemon is single-threaded):
 *
 * store_begin() is BEGIN IMMEDIATE for a local call.  If an engine batch
 * (below) is open, it is committed first (a batch is a crash-safe unit by
 * construction) and the call runs in its own transaction, so a local call
 * never waits for, or fails because of, a sync.  -EROFS on a
 * STORE_READONLY store; -CPMSYNC_E_STORE_BUSY if another connection holds
 * the write lock beyond the busy timeout; -EBUSY only for a programming
 * error (store_begin() inside a local transaction: they do not nest).
 * Every failure sets store_error().  store_commit() without a transaction
 * is -EINVAL; if COMMIT fails the transaction is rolled back and the
 * mapped error returned.  store_rollback() without a transaction is a
 * harmless 0, so that error paths can always call it.
 */
int store_begin(struct store *s);
int store_commit(struct store *s);
/* cpmsync_store_check_file(): 0, or -CPMSYNC_E_STORE_GONE (sticky) with
 * store_error() saying so.  store_commit() asks first. */
int store_check_file(struct store *s);
/*
 * Puts what is committed on the disk: one fdatasync of the WAL.  With
 * synchronous = NORMAL a commit reaches the WAL file but not the disk,
 * which only a checkpoint syncs: it survives the process's crash, not a
 * power loss.  For a commit a power loss must not take back: a local
 * change the caller was told is done, a replay mark that must be on the
 * disk before its command leaves.  Outside a transaction; 0 or a
 * negative errno (store_error() says why).
 */
int store_sync_wal(struct store *s);
int store_rollback(struct store *s);
bool store_in_transaction(const struct store *s);
/*
 * A mark in the open transaction (an SQL savepoint, and where the body
 * packs stand), taken before the writes of one message, so that a failure
 * in them (the disk full under its body) undoes those alone and what came
 * before can still commit.  store_mark() replaces the transaction's mark;
 * store_rollback_to_mark() undoes everything written after it and keeps
 * the transaction open: 0, or a negative errno when it cannot (no mark in
 * this transaction; SQLite rolled the whole transaction back by itself,
 * as it may on SQLITE_FULL or an I/O error; a body written to a bodies
 * database since), the transaction then to be rolled back.  The
 * conversation rows held back in memory cannot be taken apart by object:
 * their conversations are recomputed from their objects at the commit
 * instead (conv_stale, schema version 21).
 */
int store_mark(struct store *s);
int store_rollback_to_mark(struct store *s);
/* Whether the open transaction has a mark (a commit or rollback ends it). */
bool store_has_mark(const struct store *s);
/*
 * Whether the store may have less than need bytes of room left: a file
 * size limit (RLIMIT_FSIZE) is set, SQLite's max_page_count leaves fewer
 * pages, or the file system of the database (and of its packs, beside it)
 * has less free for this user.  Not a quota (EDQUOT): nothing tells it
 * cheaply.  A few system calls and pragmas: once per batch, not per
 * message (engine.c message_begin()).
 */
bool store_room_low(struct store *s, uint64_t need);
/*
 * SQLite's SQLITE_FULL (a full database: max_page_count, or no room for
 * a page it must write) in a statement without a statement journal rolls
 * the whole transaction back, the marks with it: store_rollback_to_mark()
 * can keep nothing.  A single-row INSERT ... VALUES on a table without
 * triggers has none; the same INSERT ... SELECT of its values does (a
 * statement that may write several rows, on a table with a constraint
 * that aborts), and SQLITE_FULL then undoes that statement alone.  It
 * costs a statement journal at every row: with store_set_full_safe(s,
 * true) (the engine, when store_room_low()) the writes of a new message
 * and its body (message_state, summary, body_inline, body_pack) take that
 * form; otherwise the cheaper one.  A full disk under a page SQLite spills
 * to its WAL in a transaction still rolls the whole of it back (the pager
 * cannot go on): only a smaller batch helps there.
 */
void store_set_full_safe(struct store *s, bool on);
bool store_full_safe(const struct store *s);
/*
 * Bumps the version of folder_id's conversation row (if any): at the
 * commit of the open transaction, once however many times it is asked
 * (store_commit() runs store_conv_bump_flush()); at once outside one.
 */
int store_conv_bump(struct store *s, int64_t folder_id);
int store_conv_bump_flush(struct store *s);
/*
 * Conversation rows held back (store-message.c): a new object's
 * counts, newest object, peer and Conversation-ID are folded in memory
 * per conversation row, and the row is written once, before the first
 * statement that reads or rewrites conversation rows (store_prepare()
 * knows which: the authorizer notes it at prepare), before any
 * store_exec() and at store_commit(); store_rollback() drops them.  The
 * same flush then recomputes, once each, the conversations that objects
 * gone or moved noted in conv_stale (schema version 21).
 * store_prepare_conv_pending() (below) is store_prepare() without that
 * flush, for store-message.c's own statements.  The slot is free()d by
 * store_close(), after store_conv_pending_drop().
 */
int store_conv_pending_flush(struct store *s);
void store_conv_pending_drop(struct store *s);
/* The entries held back dropped, their conversations noted in conv_stale
 * (store_rollback_to_mark()). */
int store_conv_pending_restale(struct store *s);
/* If folder_id's conversation row is held back, its version bump is added
 * to the row's write (store_conv_bump()): true; false if it is not held. */
bool store_conv_pending_fold_bump(struct store *s, int64_t folder_id);
void **store_conv_pending_slot(struct store *s);
void store_set_conv_dirty(struct store *s, bool dirty);
/* Whether a statement that may note rows in conv_stale ran since the last
 * take (and forgets it); set again after a failed recompute. */
bool store_take_conv_stale(struct store *s);
void store_set_conv_stale(struct store *s);
/* store-message.c keeps its filter of report names here; free()d by
 * store_close(). */
void **store_imdn_filter_slot(struct store *s);
/* How many write transactions were begun on this connection. */
uint64_t store_tx_seq(const struct store *s);

/*
 * Engine batches: a write transaction its owner keeps open across
 * event-loop turns while it waits for the server, committing it when big
 * enough.  Any other writer may commit it (store_begin() does; so does
 * another owner's store_batch_begin()): the owner then finds no batch
 * open and its next store_batch_begin() opens a new one.  If such a
 * commit fails the batch is rolled back and the failure is kept in the
 * owner's struct: its next store_batch_begin() or store_batch_commit()
 * returns it (with its text in store_error()), so that nothing the lost
 * rows depended on is committed after them.
 *
 * store_batch_begin() is 0 if b's batch is open already.
 * store_batch_commit() commits b's batch, if open (0 if not, unless a
 * failure is pending).  store_batch_rollback() drops b's batch, if open,
 * and any pending failure; it must be called before b is freed.
 */
struct store_batch {
	int lost;	 /* a commit by another writer failed: this error */
	char error[512]; /* and its text */
};
int store_batch_begin(struct store *s, struct store_batch *b);
/*
 * Commits the open batch, if any, as store_begin() does for a local call,
 * for a reader that must read nothing a rollback may take back
 * (cpmsync_store_yield_batch()).  0 when none is open or it committed;
 * the commit's error when it failed (the batch is lost, its owner is told
 * as for a local call).
 */
int store_yield_batch(struct store *s);
int store_batch_commit(struct store *s, struct store_batch *b);
void store_batch_rollback(struct store *s, struct store_batch *b);
bool store_batch_is_open(const struct store *s, const struct store_batch *b);
/* The pending failure of b (0 if none), cleared; its text in store_error(). */
int store_batch_take_lost(struct store *s, struct store_batch *b);

/* Runs SQL (one or more statements, no results wanted, nothing bound). */
int store_exec(struct store *s, const char *sql);

/*
 * A read transaction around several statements, so that they see one
 * snapshot.  Only when the connection is not in a transaction already
 * (the daemon may call us inside its own; it then sees its own snapshot
 * anyway): *own says whether one was begun.  BEGIN is deferred: it takes
 * no lock, also on a read-only connection, and the snapshot starts with
 * the first read.  store_read_end() ends what store_read_begin() began and
 * returns r, or the COMMIT's failure when r is 0.
 */
int store_read_begin(struct store *s, bool *own);
int store_read_end(struct store *s, bool own, int r);

int64_t store_last_insert_id(const struct store *s);

/* store-changes.c keeps its state here; free()d by store_close(). */
void **store_watch_slot(struct store *s);
/*
 * Others' changes (foreign_change, schema version 40): an app's
 * read-write connection records its changes there for the daemon
 * (STORE_FOREIGN_RECORD, store_changes_record_foreign()); the daemon's
 * reads them once it watches (STORE_FOREIGN_READ); 0: neither (a
 * read-only connection, one of the unit tests).
 */
enum store_foreign {
	STORE_FOREIGN_RECORD = 1,
	STORE_FOREIGN_READ = 2,
};
unsigned *store_foreign_slot(struct store *s);
/*
 * Makes this connection record its committed changes in foreign_change
 * and foreign_conv_note (TEMP triggers, the watch's twins), so that the
 * daemon, reading them, signals them as its own.  Not inside a
 * transaction.
 */
int store_changes_record_foreign(struct store *s);
/*
 * cpmsync_store_content_stamp() of the store: the same stamp while
 * nothing was written (by this connection or committed by another).
 * Returns 1 inside a transaction (a stamp that a rollback may repeat with
 * other content), else 0; or a negative error.
 */
int store_content_stamp(struct store *s, uint64_t ret_stamp[2]);
/* store-conv.c keeps the own addresses of its last listing here (one
 * allocation); free()d by store_close(). */
void **store_conv_own_slot(struct store *s);
/*
 * Records that message_id's fields (enum cpmsync_change_field bits)
 * changed, as the watch's triggers do, for a change no trigger sees (a
 * message's first summary, made after it: store_message_set_cpm()),
 * and in foreign_change when this connection records there.  Nothing
 * when neither.  Inside a transaction.
 */
int store_changes_note(struct store *s, int64_t message_id, uint32_t fields);
/* Whether a readonly store. */
bool store_is_readonly(const struct store *s);

/* Empties the text store_error() returns: a public call starts with it. */
void store_clear_error(struct store *s);
/* Sets the text store_error() returns (a sentence naming what was wrong). */
void store_set_error(struct store *s, const char *fmt, ...) ATTR_FORMAT(2, 3);

/*
 * The main database's page size (new stores; older ones are rebuilt once
 * at open).  Chosen by measurement: see store.c's setup().
 */
#define STORE_PAGE_SIZE 1024
/* The page cache of a connection at most, in KiB (store.c's setup()). */
#define STORE_CACHE_KIB 4096

/* The schema version that moved bodies into their own database. */
#define STORE_VERSION_BODIES 4

/*
 * Bodies of at most this many bytes are kept in the store itself, in the
 * transaction of their row (table body_inline, schema version 15); larger
 * ones in pack files (schema version 25; the bodies database before).
 * store-body.c gives the measurements.
 */
#define STORE_BODY_INLINE_MAX 4096
/* The schema version that made body_inline. */
#define STORE_VERSION_BODY_INLINE 15

/*
 * The key under which a filed CPM object is looked up for a copy already
 * stored (schema version 33, index message_object): its IMDN-Message-ID,
 * else its Message-ID; m is the table's alias with its dot, or "".
 */
#define STORE_OBJECT_KEY(m)                                                                        \
	"(CASE WHEN " m "imdn_message_id <> ''"                                                    \
	" THEN " m "imdn_message_id ELSE " m "message_id END)"
/* store-ops.c: the earlier copies of a filed object, by that key (v31). */
extern const char store_sql_same_object[];

/*
 * Message bodies (store-body.c): up to STORE_BODY_INLINE_MAX bytes in the
 * store's body_inline table, larger ones appended to pack files,
 * <store path>-packs/<id> (store-pack.c; those stored before schema version
 * 25 stay in a second database, <store path>-bodies), streamed in 64 KiB
 * chunks; no large body is ever held in memory whole (except by
 * store_body_get() and a copy).  message.has_body says whether a message
 * has its body (in any of the places); readers go by it.
 *
 * store_body_write() stores exactly size bytes as the body of message_id,
 * replacing any previous body: the first head_len bytes from head, the
 * rest read from fd (which may be -1 when head_len == size).  The message
 * must exist (-CPMSYNC_E_NOT_FOUND otherwise); end of file before size
 * bytes is -EIO; -EROFS on a STORE_READONLY store.  Inside the caller's
 * transaction it takes part in it (an inline body commits with the store;
 * a larger one commits, durably, just before the store does; on failure
 * the caller must roll back); otherwise it runs in its own transaction and
 * leaves nothing behind on failure.
 * store_body_write_fd() and store_body_put() are the two usual forms.
 * store_body_write_fresh() is store_body_write() for a row inserted in the
 * caller's open transaction with has_body already set
 * (store_message_row.has_body): no body to replace, no has_body to set,
 * one UPDATE of the row fewer; the caller fails the transaction if it
 * fails.  -EINVAL outside a transaction.
 *
 * store_body_copy() gives dst a copy of src's body, if src has one (inside
 * the caller's transaction): inline as src's, or appended to a pack.
 *
 * store_body_read_fd() writes the body of message_id to fd;
 * -CPMSYNC_E_NOT_FOUND if there is none.  fd should be blocking.
 * store_body_get() returns it in one malloc()ed buffer (small bodies).
 */
int store_body_write(struct store *s, int64_t message_id, const void *head, size_t head_len, int fd,
		     uint64_t size);
int store_body_write_fd(struct store *s, int64_t message_id, int fd, uint64_t size);
int store_body_put(struct store *s, int64_t message_id, const void *data, size_t len);
int store_body_write_fresh(struct store *s, int64_t message_id, const void *head, size_t head_len,
			   int fd, uint64_t size);
int store_body_copy(struct store *s, int64_t src, int64_t dst);
int store_body_exists(struct store *s, int64_t message_id, bool *ret);
int store_body_read_fd(struct store *s, int64_t message_id, int fd);
int store_body_get(struct store *s, int64_t message_id, void **ret, size_t *ret_len);

/*
 * Message rows (store-message.c).  store_message_insert() adds a message
 * and its summary row; uid 0 and modseq 0 are stored as NULL (not on the
 * server yet), server_flags NULL likewise; summary NULL: no summary yet.
 * store_message_copy() adds a row in folder_id with everything of src but
 * the server state (uid, modseq, server_flags NULL), body not included.
 */
struct msg_summary;
struct store_message_row {
	int64_t folder_id;
	uint32_t uid;
	const char *flags;
	const char *server_flags;
	uint64_t modseq;
	int64_t internaldate;
	uint64_t size;
	const struct msg_summary *summary;
	const char *bodystructure;
	/* The caller stores the body in this transaction at once, with
	 * store_body_write_fresh(), or fails the transaction. */
	bool has_body;
};
int store_message_insert(struct store *s, const struct store_message_row *m, int64_t *ret_id);

/*
 * Is conversation row c one ListConversations lists (store-conv.c)?  With
 * a message, file-transfer or media object; or with a session-info or
 * group-state object, or one not classified yet, in its folders.
 */
#define STORE_CONV_STATE_EXISTS(c)                                                                 \
	"EXISTS (SELECT 1 FROM folder sf JOIN message sm ON sm.folder_id = sf.id"                  \
	" WHERE sf.account_id = " c ".account_id AND sf.conv = " c ".folder AND sf.removed = 0"    \
	" AND sm.removed = 0 AND (sm.type = 'session-info' OR sm.type = 'group-state'"             \
	" OR sm.type IS NULL))"
#define STORE_CONV_LISTED(c) "(" c ".messages > 0 OR " STORE_CONV_STATE_EXISTS(c) ")"

/*
 * The columns of a message, in the order store_message_from_row() reads them;
 * m is the message, ms its state and sm its summary (STORE_MESSAGE_JOINS).
 */
#define STORE_MESSAGE_COLUMNS                                                                      \
	"m.id, m.folder_id, m.uid, ms.flags, m.internaldate, m.size, sm.from_addr,"                \
	" sm.to_addrs, sm.subject, m.date, m.message_id, m.conversation_id, m.contribution_id,"    \
	" m.imdn_message_id, m.type, m.has_body, m.direction, m.context, m.in_reply_to,"           \
	" m.status, sm.snippet, m.peer, m.imdn_ref"
#define STORE_MESSAGE_JOINS                                                                        \
	" LEFT JOIN message_state ms ON ms.id = m.id LEFT JOIN summary sm ON sm.id = m.id"

int store_message_copy(struct store *s, int64_t src, int64_t folder_id, int64_t *ret_id);
/*
 * store_message_set_cpm() sets what the CPM parse of a fuller copy of the
 * message says (Type, direction, context, peer, IMDN fields, snippet,
 * participants): for a message first stored from its header alone
 * (sync_bodies limited), once its body is at hand.  The conversation and
 * any originals an IMDN report names follow (schema v6 triggers).
 * -CPMSYNC_E_NOT_FOUND for an unknown id.  Inside a transaction.
 */
int store_message_set_cpm(struct store *s, int64_t id, const struct msg_summary *sum);

/*
 * store_body_each() hands message_id's body to fn in pieces, in order:
 * fn(userdata, size of the whole body, piece, its length).  fn returns 0 to
 * go on, > 0 to stop (it has what it wanted), or a negative error, which
 * store_body_each() returns.  0 once done or stopped; -CPMSYNC_E_NOT_FOUND
 * without a body.  Inside a read transaction, a body of another process's
 * store is read as one snapshot.
 */
typedef int (*store_body_fn)(void *userdata, uint64_t size, const void *p, size_t n);
int store_body_each(struct store *s, int64_t message_id, store_body_fn fn, void *userdata);
/*
 * The size of the body with each bare LF counted as CRLF: what a server
 * counts (RFC822.SIZE) once it has it, as APPEND sends it (driver-imap.c
 * crlf_copy()).  0 or -errno (-CPMSYNC_E_NOT_FOUND: no body).
 */
int store_body_crlf_size(struct store *s, int64_t message_id, uint64_t *ret);

/*
 * Pack files (store-pack.c, schema version 25): the bodies over
 * STORE_BODY_INLINE_MAX, for store-body.c.  store_pack_put() appends a
 * body in the open transaction and adds its body_pack row (the message must
 * have none); store_packs_precommit() makes the appended bodies durable
 * before the store commits; store_packs_forget() at a rollback, before the
 * store's write lock goes (it cuts off what the transaction appended);
 * store_packs_collect() punches out what the committed transactions
 * dropped, outside a transaction.  store_pack_each() is store_body_each()
 * for a body in a pack: 1 read, 0 none there, or a negative error.
 */
struct store_packs;
struct store_packs *store_packs_new(const char *store_path, bool readonly);
void store_packs_free(struct store_packs *p);
bool store_packs_ready(struct store *s, struct store_packs *p);
int store_pack_put(struct store *s, struct store_packs *p, int64_t message_id, const void *head,
		   size_t head_len, int fd, uint64_t size);
int store_packs_precommit(struct store *s, struct store_packs *p);
void store_packs_forget(struct store *s, struct store_packs *p);
/* store_mark()'s part in the packs: where the appends stand, and what was
 * appended since given back (0, or a negative errno). */
void store_packs_mark(struct store *s, struct store_packs *p);
int store_packs_rollback_to_mark(struct store *s, struct store_packs *p);
int store_packs_collect(struct store *s, struct store_packs *p, bool at_open);
int store_pack_each(struct store *s, struct store_packs *p, int64_t message_id, store_body_fn fn,
		    void *userdata);
/* The statements that take away a message's stored body (?1), wherever it
 * is, as the version 25 triggers do when has_body goes (store-schema.c). */
extern const char *const store_sql_body_gone[5];

/* The bodies database's file name for a store at store_path (free()). */
char *store_bodies_path(const char *store_path);

/* For store.c: the bodies database's life and its part in transactions. */
struct store_bodies;
struct store_bodies **store_bodies_slot(struct store *s);
int store_bodies_open(struct store *s, const char *store_path, bool readonly);
void store_bodies_close(struct store *s);
int store_bodies_commit(struct store *s);
void store_bodies_rollback(struct store *s);
void store_bodies_mark(struct store *s);
int store_bodies_rollback_to_mark(struct store *s);
void store_bodies_commit_failed(struct store *s);
int store_bodies_collect(struct store *s, bool at_open);
int store_bodies_import(struct store *s, const char *store_path);

#ifdef SQLITE_VERSION_NUMBER
/* The SQL functions of store-func.c (cpmsync_contains(), cpmsync_redecode())
 * on a new connection: an SQLite result code. */
int store_register_functions(sqlite3 *db);
/*
 * For libsync/store/ only.
 *
 * store_prepare() returns in *ret a prepared statement for sql, cached on
 * s: it is reset and its bindings cleared, ready to bind and step.  The
 * statement belongs to s (do not finalize it); it stays valid until s is
 * closed.  Do not hold it across another store_prepare() of the same SQL.
 */
int store_prepare(struct store *s, const char *sql, sqlite3_stmt **ret);
int store_prepare_conv_pending(struct store *s, const char *sql, sqlite3_stmt **ret);

/*
 * Steps st: 1 for a row, 0 when done (the statement is then reset), or
 * the mapped error (the statement is reset and the message recorded).
 */
int store_step(struct store *s, sqlite3_stmt *st);

/*
 * A malloc()ed copy of text column i of the current row in *ret, NULL for
 * SQL NULL.  0, or -ENOMEM (then *ret is NULL): an allocation failure is
 * never mistaken for a NULL column.
 */
int store_col_strdup(sqlite3_stmt *st, int i, char **ret);

/* Steps a statement that returns no row (a row is not an error): 0 or the mapped error. */
int store_step_done(struct store *s, sqlite3_stmt *st);

/*
 * The row of id: prepares sql (whose one parameter ?1 is bound to id) and
 * steps it.  1 with the row current in *ret, -CPMSYNC_E_NOT_FOUND ("no
 * WHAT with id N" recorded) when there is none, or the mapped error.
 */
int store_row_by_id(struct store *s, const char *sql, int64_t id, const char *what,
		    sqlite3_stmt **ret);

/* A message that is not removed, in a folder that is not removed:
 * SELECT columns FROM message m JOIN folder f (then join), ?1 = m.id. */
#define STORE_LIVE_MESSAGE_SQL(columns, join)                                                      \
	"SELECT " columns " FROM message m JOIN folder f ON f.id = m.folder_id" join               \
	" WHERE m.id = ?1 AND m.removed = 0 AND f.removed = 0"

/*
 * Whether sql (?1 bound to id) gives a row whose first column is true
 * (not 0, not NULL): 0 with *ret, or the mapped error.
 */
int store_id_test(struct store *s, const char *sql, int64_t id, bool *ret);
/* Runs sql, a statement that returns no row, with ?1 bound to id. */
int store_exec_id(struct store *s, const char *sql, int64_t id);
/* Runs sql (no result rows) with ?1 folder_id and ?2..?3 a UID range. */
int store_exec_uid_range(struct store *s, const char *sql, int64_t folder_id, uint32_t lo,
			 uint32_t hi);

/* store-read.c: calls fn with the message of the current row (columns above, from 0). */
struct cpmsync_message_info;
int store_message_from_row(sqlite3_stmt *st,
			   int (*fn)(const struct cpmsync_message_info *message, void *userdata),
			   void *userdata);
/* Fills *mi from the current row's message columns (above), starting at
 * column base; its strings are the row's (valid until the next step). */
void store_message_info_at(sqlite3_stmt *st, int base, struct cpmsync_message_info *mi);

/* Binds t (copied), or NULL when t is NULL. */
void store_bind_text_or_null(sqlite3_stmt *st, int i, const char *t);
/* Without the copy: t valid until the statement has run (store.c). */
void store_bind_text_static_or_null(sqlite3_stmt *st, int i, const char *t);

/*
 * The disk or the quota full under db's files: ENOSPC, EDQUOT or EFBIG
 * (a file size limit: RLIMIT_FSIZE, the file system's largest file) when
 * sqlite_rc is an SQLITE_IOERR_* that the system's errno of db's last
 * failure says is one of them; else 0.  SQLite itself gives SQLITE_FULL
 * for ENOSPC on a write, SQLITE_IOERR_WRITE (or _FSYNC, _TRUNCATE,
 * _SHMSIZE ...) for the others, which store_map_sqlite_error() alone makes
 * -EIO, a failing disk's code.
 */
int store_no_room_errno(sqlite3 *db, int sqlite_rc);
/* store_map_sqlite_error(), but -ENOSPC, -EDQUOT or -EFBIG as
 * store_no_room_errno() finds them. */
int store_map_db_error(sqlite3 *db, int sqlite_rc);
/* Records "FILE: sqlite3_errmsg() (rc)" for store_error(), FILE the
 * store's database file, followed by ": strerror()" of the errno
 * store_no_room_errno() finds, and returns the mapped rc (that errno
 * negated, or store_map_sqlite_error()). */
int store_fail(struct store *s, int sqlite_rc);
/* db's main database file (absolute), or "" when it has none: for error
 * texts, since SQLite's messages do not name the file. */
const char *store_sqlite_file(sqlite3 *db);

/* The raw connection, for the files under libsync/store/. */
sqlite3 *store_db(struct store *s);
/* Another read-only connection (*ret, to close) to the database at path,
 * s's, opened the way s was: on a read-only medium without its -shm, as
 * store_open() does there.  Returns the SQLite code. */
int store_open_readonly_db(struct store *s, const char *path, sqlite3 **ret);

/* Tests: the bodies database's connection (NULL before version 4). */
sqlite3 *store_bodies_db_for_test(struct store *s);
/* Tests: the packs (store-pack.c). */
struct store_packs *store_packs_for_test(struct store *s);

/* store-schema.c: the SQL of migration version (1..store_schema_version()). */
const char *store_migration_sql(unsigned version);
/* store-schema.c: the IMDN matching of a new object (version 16). */
extern const char store_sql_imdn_original_probe[];
extern const char store_sql_imdn_strongest[];
/* store-schema.c: the originals a new report names (version 17). */
extern const char store_sql_imdn_originals[];
/* store-schema.c: the originals a reclassified report raises (v17). */
extern const char store_sql_imdn_reclassified_originals[];
/* store-schema.c: a new object's conversation, kept from C (version 20). */
extern const char store_sql_conv_added[];
extern const char store_sql_conv_added_same_cid[];
extern const char store_sql_conv_stale_recompute[];
extern const char store_sql_conv_stale_drop[];
extern const char store_sql_conv_stale_clear[];
/* Whether conversation row c's newest counted object (c.last_id) has a
 * peer (store-message.c, peer_needs_recompute()). */
#define CONV_LAST_HAS_PEER                                                                         \
	"coalesce((SELECT l.peer <> '' FROM message l WHERE l.id = c.last_id), 0)"
extern const char store_sql_conv_of_message[];
extern const char store_sql_conv_stale_folder[];
extern const char store_sql_conv_ensure[];
extern const char store_sql_conv_state[];
extern const char store_sql_conv_state_row[];
#endif

/* The internal store behind a public handle (cpmsync/store.h). */
struct cpmsync_store;
struct store *store_from_public(struct cpmsync_store *store);
/* The same at the start of a public call: the error text is cleared, so
 * that cpmsync_store_error() always describes the last call only (an
 * earlier call's text never shows after a later success). */
struct store *store_call(struct cpmsync_store *store);
