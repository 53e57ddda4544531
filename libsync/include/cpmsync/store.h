/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_STORE_H
#define CPMSYNC_STORE_H

/*
 * The local message store (one SQLite file, WAL mode), as the daemon, D-Bus
 * front end, cpmctl and other local readers see it.
 *
 * The daemon holds a read-write handle.  An app may open another beside
 * it and call the local operations (cpmsync/ops.h): SQLite serialises the
 * writers, the changes are journaled as the daemon's own are, and a
 * running cpm-syncd sends them within a few seconds (it looks for other
 * processes' commits every 2 s).  Any number of other processes may open
 * the same file with CPMSYNC_STORE_READONLY and read while it writes.
 * Functions return 0 or a negative errno / -CPMSYNC_E_* code;
 * cpmsync_store_error() describes the last failure.
 *
 * Readers see the local view: a folder or message removed locally (with
 * the server side still pending) is not listed; a message stored locally
 * and not yet on the server is listed with uid 0.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cpmsync_store;

enum {
	CPMSYNC_STORE_READONLY = 1u << 0,
	/* Read-write only: closing does not move the WAL (PATH-wal) into the
	 * database file; the next process to write does, once the WAL is
	 * long enough.  For a process that opens the store for one sync of
	 * many (cpm-syncd --once): fewer bytes written per change.  Until
	 * then the store is PATH and PATH-wal together. */
	CPMSYNC_STORE_KEEP_WAL = 1u << 1,
	/* Read-write only: the handle of the store's cpm-syncd (the process
	 * that holds DATABASE.lock).  Every other read-write handle records
	 * the changes it commits in the store for this one; watched
	 * (cpmsync_store_watch()), this handle gives them out with its own
	 * (cpmsync_store_take_changes()), as if made through it, and drops
	 * those recorded before its watch began.  Its own writes record
	 * nothing there. */
	CPMSYNC_STORE_DAEMON = 1u << 2,
};

/*
 * Opens (read-write: creates if missing and upgrades the schema) the store
 * at path; the parent directory must exist.  On failure *ret_error (if not
 * NULL) is a malloc()ed sentence naming the file and the reason.
 * Read-write, a store that cannot be written (the file, its PATH-wal or
 * PATH-shm read-only, or on a read-only file system, or a read-only
 * directory without the two) is refused at once: -EACCES, -EROFS or
 * -EPERM.  CPMSYNC_STORE_READONLY with CPMSYNC_STORE_KEEP_WAL or
 * CPMSYNC_STORE_DAEMON: -EINVAL.  CPMSYNC_STORE_READONLY reads a store on a read-only file
 * system even without its PATH-shm (which SQLite cannot make there),
 * PATH-wal included, without locks: nobody can write it there.
 */
int cpmsync_store_open(const char *path, unsigned flags, struct cpmsync_store **ret,
		       char **ret_error);
/* Closes; NULL is accepted.  Returns NULL. */
struct cpmsync_store *cpmsync_store_close(struct cpmsync_store *store);
/* The last failure's description ("" if none); borrowed. */
const char *cpmsync_store_error(const struct cpmsync_store *store);
/*
 * Whether the store's file is still the one opened: -CPMSYNC_E_STORE_GONE
 * (and cpmsync_store_error() says so) once it was removed, renamed away
 * or replaced under the open store.  What would be written from then on
 * goes to a file nobody can open again; every write transaction checks
 * this before it commits and fails with that error instead.  A daemon
 * also asks now and then, to stop before a change is even asked for.
 */
int cpmsync_store_check_file(struct cpmsync_store *store);

/* A folder as readers see it.  Strings are borrowed during the callback. */
struct cpmsync_folder_info {
	int64_t id;	      /* stable local folder id */
	const char *account;  /* account name */
	const char *name;     /* UTF-8, '/' between levels */
	uint32_t uidvalidity; /* 0 until the folder was synced */
	uint32_t uidnext;
	uint64_t highestmodseq;
	const char *special_use; /* "\\Sent" ... or NULL */
	bool subscribed;
	bool on_server;	   /* false while its CREATE is pending */
	uint32_t messages; /* visible messages */
	uint32_t unseen;   /* visible messages without \Seen */
};

/* A message summary.  Strings are borrowed during the callback; absent
 * header fields are "". */
struct cpmsync_message_info {
	int64_t id; /* stable local id */
	int64_t folder_id;
	uint32_t uid;	   /* 0 until the message is on the server */
	const char *flags; /* flags and keywords, space-separated, sorted bytewise */
	int64_t internaldate;
	uint64_t size;
	const char *from;
	const char *to; /* addresses separated by '\n' */
	const char *subject;
	int64_t date; /* the Date header, Unix time; 0 if absent */
	const char *message_id;
	const char *conversation_id;
	const char *contribution_id;
	const char *imdn_message_id;
	const char *type; /* "message", "file-transfer", "media", "session-info",
			   * "group-state", "imdn", "mail" (contract version 2) */
	bool has_body;	  /* the body is stored locally */
	/* Contract v2 (CPM objects); "" when absent. */
	const char *direction;	 /* "sent", "received", "" */
	const char *context;	 /* Message-Context, lower case */
	const char *in_reply_to; /* InReplyTo-Contribution-ID */
	const char *status;	 /* a message: the strongest IMDN disposition
				  * reported for it; an imdn object: the one it
				  * reports */
	const char *snippet;	 /* the first 200 characters of the text */
	const char *peer;	 /* the other party's address (To of a sent
				  * object, else From) */
	const char *imdn_ref;	 /* an imdn object: the original's IMDN-Message-ID */
};

/* Callbacks return 0 to go on, anything else stops the walk and is
 * returned by the walking function. */
typedef int (*cpmsync_account_fn)(const char *account, void *userdata);
typedef int (*cpmsync_folder_fn)(const struct cpmsync_folder_info *folder, void *userdata);
typedef int (*cpmsync_message_fn)(const struct cpmsync_message_info *message, void *userdata);

/* Accounts known to the store, sorted bytewise. */
int cpmsync_store_foreach_account(struct cpmsync_store *store, cpmsync_account_fn fn,
				  void *userdata);
/*
 * Removes account and everything the store holds for it: folders,
 * messages and their bodies, conversations, and its journal (local changes
 * not yet on the server, failed operations too: they were for that
 * mailbox, and an account added later under the same name, maybe another
 * user's, must not send them).  *ret_dropped (may be NULL): how many
 * journal rows went.  0 also when the store never knew the account.
 * Run with no session of that account.
 */
int cpmsync_store_remove_account(struct cpmsync_store *store, const char *account,
				 uint32_t *ret_dropped);
/* The visible folders of account, sorted bytewise by name. */
int cpmsync_store_foreach_folder(struct cpmsync_store *store, const char *account,
				 cpmsync_folder_fn fn, void *userdata);
/* One folder by id, or by (account, name); -CPMSYNC_E_NOT_FOUND. */
int cpmsync_store_get_folder(struct cpmsync_store *store, int64_t folder_id, cpmsync_folder_fn fn,
			     void *userdata);
int cpmsync_store_find_folder(struct cpmsync_store *store, const char *account, const char *name,
			      int64_t *ret_folder_id);
/*
 * The visible messages of a folder with id > after_id in id order, at
 * most limit of them (0: no limit).
 */
int cpmsync_store_foreach_message(struct cpmsync_store *store, int64_t folder_id, int64_t after_id,
				  uint32_t limit, cpmsync_message_fn fn, void *userdata);
/* One visible message by id; -CPMSYNC_E_NOT_FOUND. */
int cpmsync_store_get_message(struct cpmsync_store *store, int64_t message_id,
			      cpmsync_message_fn fn, void *userdata);
/* Writes the stored body of a message to fd (blocking);
 * -CPMSYNC_E_NOT_FOUND if the body is not stored locally. */
int cpmsync_store_read_body(struct cpmsync_store *store, int64_t message_id, int fd);

/*
 * The contract's dump ("cpmctl dump"): one line per visible message,
 * ACCOUNT TAB FOLDER TAB UID TAB FLAGS TAB MESSAGE-ID, sorted by account
 * and folder (bytewise) and uid (numerically; messages not on the server,
 * uid 0, first in id order).  account and folder may be NULL (all).  Each
 * line, with its final '\n', is given to fn.
 */
typedef int (*cpmsync_line_fn)(const char *line, size_t len, void *userdata);
int cpmsync_store_dump(struct cpmsync_store *store, const char *account, const char *folder,
		       cpmsync_line_fn fn, void *userdata);

/*
 * The user's Online choice for account (Account1.Online, cpmctl online,
 * cpmsync_session_set_online(), kept in the store): false when it was
 * last set off.  true for an account the store does not know (the
 * default).  Read access is enough (cpm-syncd --once, cpmctl).
 */
int cpmsync_store_get_online(struct cpmsync_store *store, const char *account, bool *ret);

/* Local operations not yet applied on the server (all accounts if
 * account is NULL); failed operations (cpmsync/ops.h) are not counted. */
int cpmsync_store_pending_operations(struct cpmsync_store *store, const char *account,
				     uint32_t *ret_count);

/*
 * Local search (Folder1.Search offline).  Every criterion is optional
 * (NULL / 0) and they are ANDed: since and before apply when not 0, or
 * when has_since / has_before is set (0 is then 1970-01-01 00:00 UTC,
 * "before 1970" matching nothing stored after it).  Strings match case-insensitively
 * (Unicode simple case folding) as substrings: from, to and subject
 * against the summary (encoded-words decoded), text against
 * the stored header and body (messages without a stored body: the
 * summary fields only).  since/before compare the internal date (Unix
 * time: since <= date < before).  flags must all be set, not_flags all
 * unset (NULL-terminated lists).
 */
struct cpmsync_search_criteria {
	const char *text;
	const char *from;
	const char *to;
	const char *subject;
	int64_t since;
	int64_t before;
	const char *const *flags;
	const char *const *not_flags;
	const char *conversation_id;
	bool has_since;
	bool has_before;
};

/* The visible messages of folder_id matching c, in id order; *ret_ids is
 * malloc()ed (NULL when none). */
int cpmsync_store_search(struct cpmsync_store *store, int64_t folder_id,
			 const struct cpmsync_search_criteria *c, int64_t **ret_ids, size_t *ret_n);

/*
 * Change tracking, for signals (D-Bus MessagesAdded ...).  Once watched,
 * every committed change of a visible message or folder, by this handle
 * (sync engine or ops alike), is recorded in memory; a rolled-back
 * transaction records nothing.  A CPMSYNC_STORE_DAEMON handle's changes
 * include those other handles committed since the watch began (taken
 * when it sees another connection's commit, cpmsync_store_content_stamp(),
 * first in the array); notify is not called for those: the daemon looks
 * for them.  notify is called right after a commit
 * that recorded something; it must not call into the store (schedule the
 * work on the loop instead).  Read-write stores only.
 */
enum cpmsync_change_kind {
	CPMSYNC_CHANGE_MESSAGE_ADDED = 1,   /* became visible in folder_id */
	CPMSYNC_CHANGE_MESSAGE_CHANGED = 2, /* flags, uid, body, Status (an IMDN report
					     * arrived for it) ...: fields says which */
	CPMSYNC_CHANGE_MESSAGE_REMOVED = 3, /* left folder_id (expunged, moved, removed) */
	CPMSYNC_CHANGE_FOLDER_ADDED = 4,    /* message_id is 0 for folder changes */
	CPMSYNC_CHANGE_FOLDER_CHANGED = 5,  /* name, state, counts changed */
	CPMSYNC_CHANGE_FOLDER_REMOVED = 6,
	/* cpmsync/conversation.h: message_id is the conversation's id
	 * (cpmsync_conversation_info.id), folder_id 0.  CHANGED: added, or
	 * anything of its dict changed (a new, changed or removed object,
	 * Unseen, a Status); one transaction may record it several times. */
	CPMSYNC_CHANGE_CONVERSATION_CHANGED = 7,
	CPMSYNC_CHANGE_CONVERSATION_REMOVED = 8,
};

/*
 * CPMSYNC_CHANGE_MESSAGE_CHANGED: which of the message's fields changed
 * (bits of cpmsync_change.fields), each named by the key of the D-Bus
 * summary dict it stands for, so that a MessagesChanged carries only
 * those.  A message's summary snippet counts when it is written again
 * (a body's CPM parse); its first one comes with the message.
 */
enum cpmsync_change_field {
	CPMSYNC_CHANGED_FLAGS = 1 << 0,	      /* Flags */
	CPMSYNC_CHANGED_UID = 1 << 1,	      /* Uid */
	CPMSYNC_CHANGED_HAS_BODY = 1 << 2,    /* HasBody */
	CPMSYNC_CHANGED_STATUS = 1 << 3,      /* Status */
	CPMSYNC_CHANGED_TYPE = 1 << 4,	      /* Type */
	CPMSYNC_CHANGED_DIRECTION = 1 << 5,   /* Direction */
	CPMSYNC_CHANGED_CONTEXT = 1 << 6,     /* Context */
	CPMSYNC_CHANGED_IN_REPLY_TO = 1 << 7, /* InReplyToContributionId */
	CPMSYNC_CHANGED_SNIPPET = 1 << 8,     /* Snippet */
	CPMSYNC_CHANGED_ANNOTATIONS = 1 << 9, /* its annotations (no summary key) */
	/* The server's date in place of the one an APPEND asked for */
	CPMSYNC_CHANGED_INTERNAL_DATE = 1 << 10, /* InternalDate */
	CPMSYNC_CHANGED_DATE = 1 << 11,		 /* Date (when it follows InternalDate) */
};

struct cpmsync_change {
	enum cpmsync_change_kind kind;
	/* MESSAGE_CHANGED: cpmsync_change_field bits, never 0; else 0.  (In
	 * what was padding before message_id on LP64: the layout of the
	 * other members is unchanged there.) */
	uint32_t fields;
	int64_t folder_id;
	int64_t message_id;
};

typedef void (*cpmsync_store_notify_fn)(void *userdata);
int cpmsync_store_watch(struct cpmsync_store *store, cpmsync_store_notify_fn notify,
			void *userdata);
/*
 * Takes (and forgets) up to max recorded changes, oldest first, into ret
 * (max entries).  Returns how many, 0 when none are left.
 */
int cpmsync_store_take_changes(struct cpmsync_store *store, struct cpmsync_change *ret, size_t max);
/*
 * The daemon's handle (CPMSYNC_STORE_DAEMON) when it does not watch
 * (cpm-syncd --no-dbus: nobody to signal to): drops what other handles
 * recorded for it, which would otherwise only grow.  Does nothing on
 * another handle, a watching one (its takes empty them), or inside a
 * transaction.  0 or a negative errno.
 */
int cpmsync_store_forget_changes(struct cpmsync_store *store);
/*
 * A stamp of what this handle reads: ret_stamp[0] changes with every
 * commit of another connection (and only then), ret_stamp[1] with every
 * row written through this handle (committed, rolled back or still
 * pending); both stay the same otherwise, so a reader may keep what it built from the store for
 * as long as the stamp is the same (Account1.ListConversations keeps its
 * reply so).  Returns 1 while this handle has a transaction open (what is
 * read then may still be rolled back: keep nothing), else 0; or a
 * negative errno.
 */
int cpmsync_store_content_stamp(struct cpmsync_store *store, uint64_t ret_stamp[2]);
/*
 * Commits the sync engine's open batch, if any (the engine keeps a write
 * transaction open across loop turns and commits it in batches; a local
 * write, cpmsync/ops.h, commits it first too), so that what this handle reads
 * next is committed: it cannot be rolled back, and its changes are
 * recorded for cpmsync_store_take_changes().  For a reader that tells an
 * app what the store holds before the signals of those changes would
 * (Account1.ListConversations).  0 when none was open or it committed; a
 * negative errno when its commit failed (the batch is lost, the engine's
 * run fails as when a local write commits it), and nothing is open then
 * either.
 */
int cpmsync_store_yield_batch(struct cpmsync_store *store);
/* The account a folder belongs to (borrowed until the next store call
 * through the same handle), or NULL. */
const char *cpmsync_store_folder_account(struct cpmsync_store *store, int64_t folder_id);

/*
 * Whether the server refused the pending operation that created message_id
 * (its APPEND, COPY or MOVE) for good (a failed operation, cpmsync/ops.h):
 * 1 and the server's response code and text in *ret_reason ("[NOPERM]
 * text", just the text when there was no code; to free()), 0 when it is not
 * a failed operation (still pending or retried later, or done: see the
 * message's uid), -CPMSYNC_E_NOT_FOUND when the message is gone.
 */
int cpmsync_store_message_refused(struct cpmsync_store *store, int64_t message_id,
				  char **ret_reason);

/*
 * Where a message gone from the store lives on: one moved locally before
 * it was on the server is stored anew under another id, and one copied
 * before it was on the server and then removed lives on as that copy,
 * which is appended in its place.  1 and the id it now has (visible or
 * not, on the server or on its way) in *ret_id, after any number of such
 * steps; 0 when it has none (never moved, or removed for good: deleted
 * or expunged, itself or its successor).  Read access is enough.
 */
int cpmsync_store_message_moved(struct cpmsync_store *store, int64_t message_id, int64_t *ret_id);

/*
 * Whether message message_id, stored here, reached the server: 1 when the
 * server gave it a UID (its APPEND, COPY or MOVE answered, or found again
 * after an interruption), also when it was moved, deleted or expunged
 * since and is gone from the store, and for an id moved into such a
 * message before it was sent (cpmsync_store_message_moved()); 0 when not
 * (still on its way, refused, never sent, a message that came from the
 * server, or one of the oldest beyond the newest 16384 sent).  Read access
 * is enough.
 */
int cpmsync_store_message_sent(struct cpmsync_store *store, int64_t message_id);

#ifdef __cplusplus
}
#endif
#endif
