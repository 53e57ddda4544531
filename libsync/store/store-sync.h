/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the sync engine reads and writes in the store.  Every function works
 * inside the caller's transaction when one is open (the engine batches many
 * changes into one BEGIN IMMEDIATE ... COMMIT, and commits a folder's
 * UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ in the same transaction as the last
 * changes they cover); outside one, each statement commits by itself.
 *
 * Returns 0 or a negative errno / -CPMSYNC_E_* code, with store_error()
 * describing SQLite failures.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/journal.h"
#include "util/rangeset.h"
#include "store/store.h"
#include "util/msg-summary.h"

/* The account row for name, created if missing. */
int store_sync_account(struct store *s, const char *name, int64_t *ret_account_id);
/*
 * The server account (host, user) the store's copy of account_id is of.
 * Recorded the first time (0); the same, case aside, is fine (0).
 * Another one: the store holds a copy of another mailbox.  With no local
 * change queued for it, that copy is dropped (folders, messages, bodies,
 * conversations; the account row and its id stay), to be synced again
 * from the new one: 1, and *ret_was (when not NULL; free it) names the
 * old one as "user@host".  With changes queued, nothing is touched:
 * -CPMSYNC_E_CONFIG, and store_error() says what to do (sending them to
 * the new mailbox would hand one mailbox's changes to another).
 */
int store_sync_account_identity(struct store *s, int64_t account_id, const char *host,
				const char *user, char **ret_was);
/*
 * Whether only the host of account_id's server account changed (the user
 * the same, case aside), and nothing is in its journal (no change queued,
 * no failed operation): 1; then the copy may be of the same server under
 * another name (a new DNS name, an address for the name), and the engine
 * proves it before anything is written (engine-ident.c
 * engine_ident_host()); 0: the same identity, none recorded, another user,
 * or something queued (store_sync_account_identity() decides).
 */
int store_sync_account_moved(struct store *s, int64_t account_id, const char *host,
			     const char *user);
/* The server account's host, once the copy is proven to be of the server
 * at that host (the user and the copy stay). */
int store_sync_account_set_host(struct store *s, int64_t account_id, const char *host);
/*
 * The server's hierarchy delimiter for account_id (not 0), as LIST gives
 * it; written only when it changes.  Local folder operations refuse a
 * name with it inside a level (store-ops.c).
 */
int store_sync_set_delimiter(struct store *s, int64_t account_id, char delimiter);
/*
 * The user's Online choice for account_id (Account1.Online), kept across
 * restarts of the daemon: true until set otherwise (store version 34).
 */
int store_sync_get_online(struct store *s, int64_t account_id, bool *ret);
int store_sync_set_online(struct store *s, int64_t account_id, bool online);
int store_sync_set_last_sync(struct store *s, int64_t account_id, int64_t when);
int store_sync_get_last_sync(struct store *s, int64_t account_id, int64_t *ret);

/*
 * Namespaces (RFC 2342): local names are relative to the personal
 * namespace, whose prefix in our form is the account's base ("INBOX/" in
 * Cyrus's classic namespace, "" when the server has none or an empty one).
 * *ret: the base the account's names were last made relative to, NULL for
 * a store older than namespace support (its names are the server's
 * whole names: base "").
 */
int store_sync_get_namespace(struct store *s, int64_t account_id, char **ret);
/*
 * Makes the account's folder names relative to new_base instead of
 * old_base (each "" or ending in '/'), in place: a folder keeps its id,
 * messages and journal rows.  The name and server name old_base + X become
 * X with new_base taken off the front; INBOX, a name not under new_base,
 * and one whose new name is taken (or would be INBOX) stay as they are.
 * Records new_base.  One transaction.  *ret_renamed (may be NULL): how
 * many folders were renamed.
 */
int store_sync_rebase_namespace(struct store *s, int64_t account_id, const char *old_base,
				const char *new_base, unsigned *ret_renamed);

/* A local folder as the engine sees it (removed ones included). */
struct sync_folder {
	int64_t id;
	char *name;		       /* local name */
	char *server_name;	       /* NULL: CREATE pending */
	bool removed;		       /* DELETE pending */
	uint32_t uidvalidity, uidnext; /* 0: unknown */
	uint64_t highestmodseq;	       /* 0: unknown */
	char *mailboxid;	       /* RFC 8474 MAILBOXID, NULL: never reported */
	uint64_t body_limit;	       /* bodies kept up to (bytes); UINT64_MAX: all */
	bool has_content_ops;	       /* journal rows that put messages into it */
	bool has_ops;		       /* journal rows of it or its messages */
	uint32_t known;		       /* rows with a UID (schema 19: folder.known) */
};

void sync_folder_free_contents(struct sync_folder *f);
/* All folders of the account, by id; free with sync_folders_free(). */
int store_sync_folders(struct store *s, int64_t account_id, struct sync_folder **ret,
		       size_t *ret_n);
void sync_folders_free(struct sync_folder *f, size_t n);

/* A folder seen on the server and not known locally. */
int store_sync_folder_add(struct store *s, int64_t account_id, const char *name,
			  const char *special_use, bool subscribed, int64_t *ret_id);
/* A server-side rename: name and server_name become new_name, and those of
 * its sub-folders ("old/...") follow. */
int store_sync_folder_renamed(struct store *s, int64_t account_id, int64_t folder_id,
			      const char *new_name);
/* Sets server_name (a pending CREATE or RENAME reached the server); local
 * sub-folders whose server_name was under the old one follow. */
int store_sync_folder_set_server_name(struct store *s, int64_t account_id, int64_t folder_id,
				      const char *server_name);
int store_sync_folder_set_special_use(struct store *s, int64_t folder_id, const char *special_use,
				      bool subscribed);
/* The folder is gone on the server: delete it with its messages and journal rows. */
int store_sync_folder_delete(struct store *s, int64_t folder_id);
/* *ret: how many messages the folder holds here (not those removed here,
 * their EXPUNGE pending), for the log of store_sync_folder_delete(). */
int store_sync_folder_messages(struct store *s, int64_t folder_id, uint32_t *ret);
/*
 * The folder is gone on the server and another local folder, into_id,
 * took its name there (plan.h PLAN_FOLDER_FOLD): its messages move into
 * into_id without their UIDs, to be re-matched by the next sync of into_id
 * (or dropped by it), with the changes queued on them; then the folder is
 * deleted.  *ret_moved: how many messages moved.
 */
int store_sync_folder_fold(struct store *s, int64_t folder_id, int64_t into_id,
			   uint32_t *ret_moved);
/* A folder of the account other than except_id, deleted here with its
 * DELETE still pending, that has server_name on the server: its id in
 * *ret, 0 when there is none. */
int store_sync_folder_deleting(struct store *s, int64_t account_id, const char *server_name,
			       int64_t except_id, int64_t *ret);
/*
 * A folder of the account other than except_id, not deleted here, that has
 * server_name on the server: its id in *ret_folder (0: none), and in
 * *ret_row its first RENAME row after journal row after_id that may go now
 * (0: none), the rename that takes it away from that name.
 */
int store_sync_folder_leaving(struct store *s, int64_t account_id, const char *server_name,
			      int64_t except_id, int64_t after_id, int64_t *ret_folder,
			      int64_t *ret_row);
/*
 * *ret: the local folder name name as the server has it now, when a folder
 * above it is still to be renamed there (the nearest such one's server name
 * in place of its local name; malloc'ed), else NULL.
 */
int store_sync_folder_name_on_server(struct store *s, int64_t account_id, const char *name,
				     char **ret);
/*
 * *ret: whether name, where the folder's rename at journal row journal_id
 * would go, is the server name of another folder of the account while
 * another rename of this folder follows that row (engine-replay.c's
 * rename_step()).
 */
int store_sync_folder_rename_blocked(struct store *s, int64_t account_id, int64_t folder_id,
				     int64_t journal_id, const char *name, bool *ret);
/*
 * The folder is gone on the server but holds local changes not yet there:
 * keep it, forget its server state and the messages that were on the
 * server, and queue its CREATE so that the local changes can follow.
 */
int store_sync_folder_recreate(struct store *s, int64_t account_id, int64_t folder_id);
/*
 * The folder, another user's or a shared one, is no longer listed (access
 * to it lost, or its owner deleted it) and cannot be made again here:
 * the changes queued for it and its messages become failed operations
 * with text, at now (Unix time); *ret_failed (may be NULL) says how many
 * rows were not failed already.  The folder and its messages stay while
 * they wait (a retry once access is back finds the folder again).
 */
int store_sync_folder_lost(struct store *s, int64_t folder_id, const char *text, int64_t now,
			   uint32_t *ret_failed);
/* Records the folder's MAILBOXID (RFC 8474); NULL forgets it. */
/* The UIDVALIDITY of a folder this client created, read right after its
 * CREATE (engine-replay.c); set only where none is known. */
int store_sync_folder_set_created_uidvalidity(struct store *s, int64_t folder_id,
					      uint32_t uidvalidity);
int store_sync_folder_set_mailboxid(struct store *s, int64_t folder_id, const char *mailboxid);
int store_sync_folder_set_state(struct store *s, int64_t folder_id, uint32_t uidvalidity,
				uint32_t uidnext, uint64_t highestmodseq);

/* The lowest and highest UID of the folder's messages known on the server
 * (removed ones too); both 0 when it has none. */
int store_sync_uid_bounds(struct store *s, int64_t folder_id, uint32_t *ret_min, uint32_t *ret_max);
/* How many of them are below uid. */
int store_sync_count_uids_below(struct store *s, int64_t folder_id, uint32_t uid, uint32_t *ret);

/*
 * The server says message uid of the folder has flags (a sorted set) and
 * modseq (0: unknown).  Merged with a pending local change (three-way,
 * util/flags.h).  *ret_found tells whether the UID is known; *ret_changed
 * (may be NULL) whether the local view changed.
 */
int store_sync_server_flags(struct store *s, int64_t folder_id, uint32_t uid, const char *flags,
			    uint64_t modseq, bool *ret_found, bool *ret_changed,
			    int64_t *ret_message_id);

struct sync_new_message {
	uint32_t uid;
	const char *flags;
	uint64_t modseq;
	int64_t internaldate;
	uint64_t size;
	const struct msg_summary *summary;
	const char *bodystructure; /* may be NULL */
	const char *emailid;	   /* RFC 8474 EMAILID; NULL: none given */
	/* The caller has the whole body and, if a row is inserted
	 * (*ret_new), stores it at once with store_sync_body_put_new() in
	 * the same transaction (or fails the transaction): the row is
	 * inserted with has_body set, which saves an UPDATE of it. */
	bool body_follows;
};

/*
 * A message the server has and we may not: updates the known row (flags
 * merged), or re-matches a row that lost its UID in a UIDVALIDITY reset
 * (the same EMAILID where both have one, else the same Message-ID, size
 * and internal date: its id and body are kept), or
 * inserts a new one.  *ret_id is the local id; *ret_has_body whether its
 * body is stored (false for a row inserted for m->body_follows: its body is
 * the caller's to store); *ret_new whether a row was inserted.
 */
int store_sync_new_message(struct store *s, int64_t folder_id, const struct sync_new_message *m,
			   int64_t *ret_id, bool *ret_has_body, bool *ret_new);

/* Records message id's EMAILID and THREADID (RFC 8474; threadid NULL: none). */
int store_sync_message_set_objectids(struct store *s, int64_t id, const char *emailid,
				     const char *threadid);

/* Deletes the folder's messages whose UIDs are in uids (expunged on the
 * server), and the journal rows that only concern them. */
int store_sync_expunge_uids(struct store *s, int64_t folder_id, const struct rangeset *uids,
			    uint32_t *ret_removed);
/* Deletes the messages with a UID below below_uid that are not in present. */
int store_sync_expunge_missing(struct store *s, int64_t folder_id, const struct rangeset *present,
			       uint32_t below_uid, uint32_t *ret_removed);

/* UIDVALIDITY changed, or another sign that the folder under this name is
 * not the one we knew (plan_folder_identity()): every message of the
 * folder loses its UID (rows that were on the server keep server_flags,
 * which marks them for re-matching), and the folder its UIDVALIDITY,
 * UIDNEXT, HIGHESTMODSEQ and MAILBOXID. */
int store_sync_uidvalidity_reset(struct store *s, int64_t folder_id);
/* The same; *ret_failed (may be NULL): the local deletes it made failed
 * operations (their messages are matched again by content only). */
int store_sync_uidvalidity_reset_failed(struct store *s, int64_t folder_id, uint32_t *ret_failed);
/* The queued changes (flags, expunge, set_annotation) to the rows that
 * store_sync_drop_unmatched() would delete now: *ret_n, and *ret_text
 * ("flags of <id@x>, expunge of message 12", in order; NULL when none). */
int store_sync_unmatched_changes(struct store *s, int64_t folder_id, uint32_t *ret_n,
				 char **ret_text);
/* After the re-read: rows that were on the server and matched nothing are
 * deleted (pending appends stay). */
int store_sync_drop_unmatched(struct store *s, int64_t folder_id, uint32_t *ret_removed);

/* UIDs from min_uid on of messages without a stored body whose size is at
 * most max_size (UINT64_MAX: all). */
int store_sync_bodies_wanted(struct store *s, int64_t folder_id, uint32_t min_uid,
			     uint64_t max_size, struct rangeset *ret);
int store_sync_body_put(struct store *s, int64_t message_id, const void *data, size_t len);
int store_sync_body_put_fd(struct store *s, int64_t message_id, int fd, uint64_t size);
/* The body of a row store_sync_new_message() inserted for body_follows
 * (store_body_write_fresh()): the first head_len bytes from head, the rest
 * from fd. */
int store_sync_body_put_new(struct store *s, int64_t message_id, const void *head, size_t head_len,
			    int fd, uint64_t size);
int store_sync_message_id_by_uid(struct store *s, int64_t folder_id, uint32_t uid, int64_t *ret_id);

/* A message a queued change names by its UID (store_sync_uid_targets()). */
struct sync_uid_target {
	int64_t id; /* the message's row */
	int64_t folder_id;
	uint32_t uid;
	int64_t size;	      /* RFC822.SIZE; -1 (or 0): not known */
	int64_t internaldate; /* -1 (or 0): not known */
	char *emailid;	      /* RFC 8474 EMAILID, NULL: none */
	char *message_id;     /* its Message-ID header, NULL: none */
};
void sync_uid_targets_free(struct sync_uid_target *t, size_t n);
/*
 * The messages with a UID that the account's queued changes address by
 * it on the server (UID STORE, UID EXPUNGE, UID COPY/MOVE, UID STORE
 * ANNOTATION): of flags, expunge and set_annotation rows, and the sources
 * of copy and move rows; not of failed operations.  Each once, by folder
 * then UID.
 */
int store_sync_uid_targets(struct store *s, int64_t account_id, struct sync_uid_target **ret,
			   size_t *ret_n);
/*
 * The oldest and the newest message with a UID (the smallest and largest;
 * one when it is both) of each folder of account_id the server has and
 * that was synced (a UIDVALIDITY recorded, not removed locally), by folder
 * then UID: what proves the folders to be the server's (engine-ident.c
 * engine_ident_host()).
 */
int store_sync_host_targets(struct store *s, int64_t account_id, struct sync_uid_target **ret,
			    size_t *ret_n);
/*
 * The newest message of folder_id that has a UID (the largest UID), as a
 * sync_uid_target (its contents freed with sync_uid_targets_free() of one
 * or by hand); -CPMSYNC_E_NOT_FOUND: none.
 */
int store_sync_newest_uid_target(struct store *s, int64_t folder_id, struct sync_uid_target *ret);

/* --- the journal --- */

struct journal_entry {
	int64_t id;
	enum journal_op op; /* _JOURNAL_OP_MAX: a name this version does not know */
	char op_name[24];   /* as stored (for messages about unknown ones) */
	int64_t folder_id;  /* 0: NULL */
	int64_t message_id; /* 0: NULL */
	char *args;	    /* may be NULL */
	char *args_sent;    /* may be NULL */
	int64_t attempts;
	int64_t created; /* Unix time the row was queued: no attempt is older */
	bool refused;	 /* the last try was refused (no attempt in flight since) */
};
void journal_entry_free_contents(struct journal_entry *e);
/* The account's first row with id > after_id: 1 and *ret, or 0 when none. */
int store_journal_next(struct store *s, int64_t account_id, int64_t after_id,
		       struct journal_entry *ret);
int store_journal_done(struct store *s, int64_t id);
/* Records that the operation may reach the server now (committed before
 * it is sent): attempts + 1 and what to verify it with later. */
int store_journal_attempt(struct store *s, int64_t id, const char *args_sent);
/*
 * Turns row id into an op row with args (NULL: none), keeping its place in
 * the journal; the attempt mark and the refusal record are cleared.
 */
int store_journal_set_op(struct store *s, int64_t id, enum journal_op op,
			 const struct journal_args *args);
/* args: NULL for an operation without arguments (journal.h). */
int store_journal_add(struct store *s, int64_t account_id, enum journal_op op, int64_t folder_id,
		      int64_t message_id, const struct journal_args *args);
/*
 * Records a refusal of row id at time now: its response code ("" none,
 * a BAD without one included) and text.  A refusal that may pass (permanent false)
 * keeps the row queued, not replayed before now + store_journal_backoff();
 * a permanent one, or the STORE_JOURNAL_TRIES-th, makes it a failed
 * operation (*ret_failed, may be NULL), which replay skips from then on.
 */
#define STORE_JOURNAL_TRIES	  5
#define STORE_JOURNAL_BACKOFF	  60	    /* seconds after the first refusal */
#define STORE_JOURNAL_BACKOFF_MAX (60 * 60) /* doubling up to this */
int store_journal_refused(struct store *s, int64_t id, const char *code, const char *text,
			  bool permanent, int64_t now, bool *ret_failed);
int64_t store_journal_backoff(int64_t tries);
/*
 * Row id cannot be sent because an operation it needs failed (an APPEND
 * into a folder whose CREATE is a failed operation): it becomes a failed
 * operation too, with text saying which, without being tried (tries stays)
 * and without a response code (code NULL: what tells such a row from a
 * refused one; cpmsync_op_retry() of any operation lets them be tried
 * again).
 */
int store_journal_blocked(struct store *s, int64_t id, const char *text, int64_t now);
/*
 * The create_folder row of folder_id: 1 with its id and whether it is a
 * failed operation, or 0 when there is none.
 */
int store_journal_create_row(struct store *s, int64_t folder_id, int64_t *ret_id, bool *ret_failed);
/* Rows still to replay (failed operations not counted). */
int store_journal_count(struct store *s, int64_t account_id, uint32_t *ret);

/* A message as replay needs it. */
struct sync_message {
	int64_t id, folder_id;
	uint32_t uid; /* 0: none */
	char *flags;
	char *server_flags; /* NULL: never on the server */
	uint64_t modseq;
	int64_t internaldate;
	uint64_t size;
	char *message_id;
	bool removed;
	bool has_body;
};
void sync_message_free_contents(struct sync_message *m);
int store_sync_message_get(struct store *s, int64_t id, struct sync_message *ret);
/* The message reached the server as uid with server_flags.  When another
 * message of the folder holds uid, the folder is not the one whose UIDs
 * were recorded: store_sync_uidvalidity_reset() first (the next sync
 * re-reads it), then this one takes uid. */
int store_sync_message_set_uid(struct store *s, int64_t id, uint32_t uid, const char *server_flags);
/*
 * The server's INTERNALDATE for the message folder_id holds as uid, read
 * back after its APPEND: kept when it is not the stored one (the Date
 * with it when it came from the internal date), *ret_changed then true.
 * No such message: 0, nothing changed.
 */
int store_sync_message_internaldate(struct store *s, int64_t folder_id, uint32_t uid,
				    int64_t internaldate, bool *ret_changed);
int store_sync_message_set_server_flags(struct store *s, int64_t id, const char *server_flags);
/* The message row goes, with the journal rows about it. */
int store_sync_message_delete(struct store *s, int64_t id);
/* Is uid of folder held by some local row? */
int store_sync_uid_known(struct store *s, int64_t folder_id, uint32_t uid, bool *ret);
/* Reads a stored body into memory (malloc'ed); -CPMSYNC_E_NOT_FOUND. */
int store_sync_body_get(struct store *s, int64_t message_id, void **ret, size_t *ret_len);

/* Records the body limit the folder's bodies are complete for. */
/* The session's view of a folder by its server name; 1 found, 0 not. */
struct store_folder_status {
	int64_t id;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	uint32_t on_server; /* messages with a uid (removed ones too) */
};
int store_sync_folder_status(struct store *s, int64_t account_id, const char *server_name,
			     struct store_folder_status *ret);
/*
 * Every folder of an account with a server name, its status as
 * store_sync_folder_status() gives it, sorted by server name: one query
 * instead of one per folder, for comparing a flood of STATUS lines (NOTIFY
 * reports every folder) in memory.  A server name that two rows share is
 * left out (ambiguous: the caller asks the store).
 */
struct store_folder_index_entry {
	char *server_name;
	struct store_folder_status st;
};
struct store_folder_index {
	struct store_folder_index_entry *v;
	size_t n;
};
int store_sync_folder_index_load(struct store *s, int64_t account_id,
				 struct store_folder_index *ret);
/* The entry for server_name, NULL when the index has none. */
const struct store_folder_status *store_folder_index_find(const struct store_folder_index *idx,
							  const char *server_name);
void store_folder_index_free(struct store_folder_index *idx);
/* *ret: the server name (malloc'ed; NULL while its CREATE is pending). */
int store_sync_folder_server_name(struct store *s, int64_t folder_id, char **ret);
int store_sync_message_locate(struct store *s, int64_t message_id, int64_t *ret_folder_id,
			      uint32_t *ret_uid);
/* 1 and the id, 0 when no visible message has that uid. */
int store_sync_uid_to_id(struct store *s, int64_t folder_id, uint32_t uid, int64_t *ret);
int store_sync_folder_set_body_limit(struct store *s, int64_t folder_id, uint64_t limit);

/* One folder by id (removed ones too); -CPMSYNC_E_NOT_FOUND. */
int store_sync_folder_get(struct store *s, int64_t folder_id, struct sync_folder *ret);
/* Is a rename_folder row pending for the folder? */
int store_sync_rename_pending(struct store *s, int64_t folder_id, bool *ret);

/* The largest UID, and rows waiting to be re-matched after a UIDVALIDITY
 * change (no UID, but were on the server).  Cheap whatever the size. */
int store_sync_folder_counts(struct store *s, int64_t folder_id, uint32_t *ret_max_uid,
			     uint32_t *ret_rematch);

/*
 * Annotations (ANNOTATE; table annotation, store-schema.c version 9;
 * store-annotation.c).  shared: value.shared, else value.priv.
 */
struct store_annotation {
	char *entry;
	bool shared;
	char *value; /* NULL: none ("" pending: remove) */
};
void store_annotations_free(struct store_annotation *a, size_t n);
/*
 * The values of entries of a visible message (-CPMSYNC_E_NOT_FOUND
 * otherwise) as a reader sees them: a pending local value wins over the
 * server's (read-your-writes).  *ret_pairs: a NULL-terminated vector of
 * entry, value, entry, value ... for the entries that have a value (an
 * empty or absent one is left out).  *ret_missing: a NULL-terminated
 * vector of the entries neither cached nor pending, which only the server
 * can answer (empty for a message not on the server: it has none there).
 * Free both with store_strv_free().
 */
int store_annotations_read(struct store *s, int64_t message_id, const char *const *entries,
			   bool shared, char ***ret_pairs, char ***ret_missing);
void store_strv_free(char **v);
/* The server's value of an entry (NULL: it has none), as fetched: cached;
 * a pending local value stays (it still wins). */
int store_annotation_set_server(struct store *s, int64_t message_id, const char *entry, bool shared,
				const char *value, size_t value_len);
/* An entry the server has no value for: cached as absent, unless cached. */
int store_annotation_mark_absent(struct store *s, int64_t message_id, const char *entry,
				 bool shared);
/* The message's pending local values held by no refused row (what a new
 * set_annotation row sends): store_annotations_pending_row() for no row. */
int store_annotations_pending(struct store *s, int64_t message_id, struct store_annotation **ret,
			      size_t *ret_n);
/*
 * What set_annotation row journal_id sends: the pending values of the
 * entries it holds when it was refused (store_annotation_hold()), else the
 * message's pending values that no other row holds.
 */
int store_annotations_pending_row(struct store *s, int64_t message_id, int64_t journal_id,
				  struct store_annotation **ret, size_t *ret_n);
/*
 * Set_annotation row journal_id was refused: it holds a[0..n) (the entries
 * refused, which only it sends again: RetryOperation, or its back-off);
 * n = 0: none (it sends whatever is pending and held by no other row).
 */
int store_annotation_hold(struct store *s, int64_t journal_id, const struct store_annotation *a,
			  size_t n);
/*
 * The server took a[0..n) (as store_annotations_pending() gave them): each
 * becomes the server's value, and stops being pending unless it was
 * changed again meanwhile; *ret_more tells whether anything of the
 * message is still pending.
 */
int store_annotations_sent(struct store *s, int64_t message_id, const struct store_annotation *a,
			   size_t n, bool *ret_more);
/* The distinct entries cached for the visible messages of folder_id
 * (NULL-terminated, store_strv_free()), at most max of them. */
int store_annotation_entries(struct store *s, int64_t folder_id, size_t max, char ***ret);
/*
 * The row that brings message_id (not on the server yet) there (append,
 * copy, move): 1 with its id and whether it is a failed operation, or 0
 * when there is none.
 */
int store_journal_arrival_row(struct store *s, int64_t message_id, int64_t *ret_id,
			      bool *ret_failed);
/*
 * Forgets what the server's values of the messages with these UIDs in
 * folder_id were (the refresh that would have renewed them was refused):
 * their cached rows go, except those with a pending local value, which
 * keep it and lose nothing.  The next read asks the server again.
 */
int store_annotation_forget(struct store *s, int64_t folder_id, const struct rangeset *uids);
/* Whether anything of message_id is pending (annotation.local set). */
int store_annotation_pending_any(struct store *s, int64_t message_id, bool *ret);
/* Whether a value of message_id is pending that no set_annotation row but
 * journal_id holds (a new row would send it). */
int store_annotation_pending_free(struct store *s, int64_t message_id, int64_t journal_id,
				  bool *ret);
/* Whether message_id has cached annotations (any row). */
int store_annotation_cached(struct store *s, int64_t message_id, bool *ret);
