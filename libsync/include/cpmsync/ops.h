/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_OPS_H
#define CPMSYNC_OPS_H

/*
 * Local changes.  Each call applies the change to the local store and
 * journals it, in one transaction: when it returns 0 the change is visible
 * to readers, survives a crash or restart, and the sync engine will apply
 * it on the server exactly once when the account is online.  On failure
 * nothing changed.
 *
 * The store must be open read-write (-EROFS otherwise).  Accounts are named
 * as in the configuration; an account not in the store yet is created,
 * with no folders: until its first sync lists them, or
 * cpmsync_op_create_folder() makes one, a change to a folder (INBOX
 * too) gives -CPMSYNC_E_NOT_FOUND.
 * Folder names are UTF-8 with '/' between levels.  Unknown folders or
 * messages give -CPMSYNC_E_NOT_FOUND; bad arguments -EINVAL (with
 * cpmsync_store_error() naming the argument).
 *
 * Flags are IMAP flags and keywords ("\\Seen", "$Label"): system flags are
 * matched case-insensitively and stored in their canonical case; \Recent
 * cannot be set, and a flag cannot be both added and removed in one call.
 * A list of message ids names each message once.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cpmsync/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest message Store accepts (bytes), counted with CRLF line ends as
 * APPEND sends it (a bare LF counts two); -EFBIG beyond. */
#define CPMSYNC_OP_MAX_MESSAGE_SIZE (64u << 20)
/* Latest internal date Store accepts: 9999-12-31 23:59:59 UTC (an IMAP
 * date-time has a four-digit year). */
#define CPMSYNC_OP_MAX_DATE 253402300799LL

/*
 * APPEND: stores size bytes read from fd (an RFC 5322 message) in folder
 * with flags (NULL-terminated, may be NULL) and internal date (Unix time;
 * 0: now).  The summary (Message-ID, From, To, Subject, Date, the CPM
 * headers, the type) is read from its header.  *ret_id is the new local id.
 * What an APPEND cannot carry is refused with -EINVAL, nothing stored:
 * a NUL byte, or content that does not start with a header ("content: not
 * a message: line 1 (\"hello\") is not a header field ...").
 */
int cpmsync_op_store_fd(struct cpmsync_store *store, const char *account, const char *folder,
			int fd, uint64_t size, const char *const *flags, int64_t internaldate,
			int64_t *ret_id);
int cpmsync_op_store(struct cpmsync_store *store, const char *account, const char *folder,
		     const void *data, size_t size, const char *const *flags, int64_t internaldate,
		     int64_t *ret_id);

/* Adds and removes flags on messages (ids all in one account). */
int cpmsync_op_set_flags(struct cpmsync_store *store, const int64_t *ids, size_t n_ids,
			 const char *const *add, const char *const *remove);
/* Delete = add \Deleted. */
int cpmsync_op_delete(struct cpmsync_store *store, const int64_t *ids, size_t n_ids);
/* Removes the folder's visible messages flagged \Deleted. */
int cpmsync_op_expunge(struct cpmsync_store *store, const char *account, const char *folder);

/*
 * Copies / moves messages (of one account) to destination in the same
 * account; ret_new_ids (n_ids entries, may be NULL) receives the new local
 * ids in the order of ids.  A moved message disappears from its folder at
 * once.
 */
int cpmsync_op_copy(struct cpmsync_store *store, const int64_t *ids, size_t n_ids,
		    const char *destination, int64_t *ret_new_ids);
int cpmsync_op_move(struct cpmsync_store *store, const int64_t *ids, size_t n_ids,
		    const char *destination, int64_t *ret_new_ids);

/* -EEXIST for a folder that exists.  INBOX is on every server: before the
 * account's first sync the store has no row for it (find_folder: not
 * found), and creating it adds that row as the server has it (nothing is
 * queued; the first sync fills it); once there, -EEXIST. */
int cpmsync_op_create_folder(struct cpmsync_store *store, const char *account, const char *name,
			     int64_t *ret_folder_id);
int cpmsync_op_rename_folder(struct cpmsync_store *store, const char *account, const char *name,
			     const char *new_name);
/*
 * Deletes the folder and its messages.  A folder that has sub-folders is
 * refused with -ENOTEMPTY, nothing changed: delete them first (the error
 * text names one: a direct child, the first by name, when there is one;
 * else the shallowest).  -EINVAL for INBOX, -CPMSYNC_E_NOT_FOUND for a
 * folder not in the store.
 */
int cpmsync_op_delete_folder(struct cpmsync_store *store, const char *account, const char *name);

/* METADATA: folder "" for a server entry; value NULL or "" removes it. */
int cpmsync_op_set_metadata(struct cpmsync_store *store, const char *account, const char *folder,
			    const char *entry, const char *value);

struct cpmsync_metadata_entry {
	const char *entry;
	const char *value; /* NULL or "" removes the entry */
};

/*
 * Several entries of one folder (as cpmsync_op_set_metadata) in one
 * transaction: all are set, or on the first error none is, and that
 * error is returned.
 */
int cpmsync_op_set_metadata_entries(struct cpmsync_store *store, const char *account,
				    const char *folder,
				    const struct cpmsync_metadata_entry *entries, size_t n_entries);

/*
 * Read-your-writes for METADATA (contract "Online and offline"): the
 * values set locally and not yet on the server.  For each of the
 * n_entries entries of folder_id (0: the account's server entries),
 * ret_values[i] is the value of the newest set_metadata journaled for it,
 * failed ones included (their local effect stays until retried or
 * discarded): a malloc()ed string, "" when the entry was removed locally,
 * or NULL when nothing is pending for it.  Entry names compare ASCII
 * case-insensitively (RFC 5464 names are).  Returns how many entries
 * have a pending value; after an error every ret_values[i] is NULL.
 * Read access is enough.
 */
int cpmsync_store_pending_metadata(struct cpmsync_store *store, const char *account,
				   int64_t folder_id, const char *const *entries, size_t n_entries,
				   char **ret_values);

/*
 * ANNOTATE (RFC 5257): per-message entries ("/comment") of one message;
 * shared selects value.shared, else value.priv.  All are set, or on the
 * first error none is.  Entries start with '/', hold no '*', '%', space or
 * control character, no "//", do not end with '/', and are at most
 * CPMSYNC_METADATA_ENTRY_MAX bytes; values at most
 * CPMSYNC_METADATA_VALUE_MAX.  The values are what reads of the message's
 * annotations return until the server has them (cpmsync/session.h).
 */
struct cpmsync_annotation {
	const char *entry;
	const char *value; /* NULL or "" removes the entry */
};
int cpmsync_op_set_annotations(struct cpmsync_store *store, int64_t message_id,
			       const struct cpmsync_annotation *values, size_t n_values,
			       bool shared);
/* Checks an annotation entry name as above: 0, or -EINVAL and *ret_why (static). */
int cpmsync_annotation_entry_check(const char *entry, const char **ret_why);

/* ACL (RFC 4314): SETACL identifier rights ("" or NULL rights: DELETEACL). */
int cpmsync_op_set_acl(struct cpmsync_store *store, const char *account, const char *folder,
		       const char *identifier, const char *rights);

/*
 * Takes back a stored message that is not on the server yet (uid 0)
 * together with its pending APPEND: for a message the server refused.
 * -EBUSY when it is on the server or its APPEND may have reached it.
 */
int cpmsync_op_discard(struct cpmsync_store *store, int64_t message_id);

/*
 * Failed operations (contract README "Failed operations"): journaled
 * changes the server refused for good.  Replay skips them; their local
 * effect stays until retried or discarded.  A change that needs one of
 * them (an APPEND, COPY, SETMETADATA or SETACL into a folder whose CREATE
 * failed) is not sent and becomes a failed operation too, with code ""
 * and text "depends on failed operation ID (create-folder NAME)": it is
 * tried again with any retry, and goes when that one is discarded.  A
 * message whose APPEND failed needs nothing more: its flags go with the
 * APPEND, a copy of it is appended from the stored content, and expunging
 * it takes the failed APPEND away with it.
 */
/* How the text of a failed operation the server never refused begins. */
#define CPMSYNC_FAILED_OP_NOT_SENT "not sent: "
struct cpmsync_failed_op {
	int64_t id;		    /* the journal row */
	const char *operation;	    /* "store", "flags", "copy", "move", "expunge", ... */
	const char *folder;	    /* "" for the server as a whole */
	const int64_t *message_ids; /* the local ids it concerns */
	size_t n_message_ids;
	const char *code; /* the response code, "" for none (the contract: a BAD
			   * without one too; its text says what) */
	const char *text; /* the server's text; or, for an operation given up
			   * here without being sent (too large to send, its
			   * stored content lost, a folder name the server
			   * cannot take ...: code says which kind, as the
			   * server would), CPMSYNC_FAILED_OP_NOT_SENT and why */
	uint32_t tries;
	int64_t time; /* of the last try (Unix time) */
	/* cpmsync_store_foreach_pending(): a refused operation that waits
	 * (back-off) is not tried before this (Unix time); 0 otherwise. */
	int64_t next_try;
};
typedef int (*cpmsync_failed_op_fn)(const struct cpmsync_failed_op *op, void *userdata);

/* The account's failed operations in journal order; a negative return of
 * cb stops the walk and is returned.  -CPMSYNC_E_NOT_FOUND for an account
 * not in the store.  The strings are borrowed during cb. */
int cpmsync_store_foreach_failed(struct cpmsync_store *store, const char *account,
				 cpmsync_failed_op_fn cb, void *userdata);
int cpmsync_store_failed_count(struct cpmsync_store *store, const char *account, uint32_t *ret);
/*
 * How many of the account's queued operations (those
 * cpmsync_store_foreach_pending() walks) were sent, or were about to be,
 * without their answer read: an APPEND whose APPENDUID had not come in
 * full when the connection went, say.  They may be on the server (the
 * replay looks for them there before sending them again); the others
 * queued were never sent, or were refused.  -CPMSYNC_E_NOT_FOUND for an
 * account not in the store.
 */
int cpmsync_store_in_flight_count(struct cpmsync_store *store, const char *account, uint32_t *ret);
/*
 * The account's queued operations (journaled, not yet applied on the
 * server, not failed: what Account1.PendingOperations counts) in journal
 * order, in the same form: code, text, tries and time tell the last
 * refusal of one that waits to be tried again ("" and 0 when none).  Read
 * access is enough (cpmctl pending).  Errors as for foreach_failed.
 */
int cpmsync_store_foreach_pending(struct cpmsync_store *store, const char *account,
				  cpmsync_failed_op_fn cb, void *userdata);
/*
 * Every local change of account the server does not have, queued or
 * failed, in journal order, with what a person needs to make it again by
 * hand: what Manager1.RemoveAccount saves before it drops them.  Strings
 * are borrowed during cb ("" when absent); a negative return of cb stops
 * the walk and is returned.  -CPMSYNC_E_NOT_FOUND for an account not in
 * the store.  Read access is enough.
 */
struct cpmsync_unsent_change {
	int64_t id;		       /* the journal row */
	const char *operation;	       /* as cpmsync_failed_op's: "store", "flags", ... */
	const char *folder;	       /* its folder (copy, move: the destination); "" */
	int64_t message_id;	       /* the local message it concerns, 0 for none */
	uint32_t uid;		       /* that message's UID, 0 while not on the server */
	const char *message_id_header; /* its Message-ID */
	const char *subject;	       /* its Subject (decoded) */
	const char *flags;	       /* its flags here, sorted, space-separated */
	const char *server_flags;      /* its flags on the server when last seen */
	int64_t internaldate;	       /* Unix time, 0 for none */
	/* cpmsync_store_read_body() gives its content (stored, visible). */
	bool has_body;
	const char *source_folder; /* copy, move: the source message's folder */
	uint32_t source_uid;	   /* and its UID there (0: not on the server) */
	/* rename-folder: the new name; set-metadata: ENTRY " " VALUE (VALUE ""
	 * removes); set-acl: IDENTIFIER " " RIGHTS; delete-acl: IDENTIFIER */
	const char *argument;
	bool failed;	/* a failed operation: code and text say why */
	bool in_flight; /* sent, its answer not read: it may be on the server */
	const char *code;
	const char *text;
};
typedef int (*cpmsync_unsent_change_fn)(const struct cpmsync_unsent_change *change, void *userdata);
int cpmsync_store_foreach_unsent(struct cpmsync_store *store, const char *account,
				 cpmsync_unsent_change_fn cb, void *userdata);
/* The failed operation id of account is queued again, as if new (tries 0),
 * and so are the account's operations that failed only because one they
 * need had failed (they fail again, at the next replay, if it still has).
 * -CPMSYNC_E_NOT_FOUND when account has no failed operation id. */
int cpmsync_op_retry(struct cpmsync_store *store, const char *account, int64_t id);
/*
 * Drops the failed operation id of account and undoes its local effect, so
 * that the server's state wins: a stored (appended), copied or moved
 * message that never reached the server is removed (a moved one shows in
 * its source folder again), flags go back to the server's, an expunged
 * message or deleted folder shows again, a renamed folder takes its
 * server name back (with the sub-folders renamed with it; -EEXIST when
 * another folder has taken one of those names since), a created folder
 * that never reached the server is removed with what it holds and the
 * operations queued into it.  -CPMSYNC_E_NOT_FOUND as for retry.
 */
int cpmsync_op_discard_failed(struct cpmsync_store *store, const char *account, int64_t id);

#ifdef __cplusplus
}
#endif
#endif
