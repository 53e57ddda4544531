/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* What service.c, manager.c, account.c and folder.c share. */

#include <dbus/dbus.h>
#include <stdbool.h>
#include <stdint.h>

#include <cpmsync/loop.h>
#include <cpmsync/session.h>
#include <cpmsync/store.h>

#include "dbus-object.h"
#include "service.h"

#define CPM_BUS_NAME	  "org.cpmsync"
#define CPM_ROOT_PATH	  "/org/cpmsync"
#define CPM_IFACE_MANAGER "org.cpmsync.Manager1"
#define CPM_IFACE_ACCOUNT "org.cpmsync.Account1"
#define CPM_IFACE_FOLDER  "org.cpmsync.Folder1"

/* Changes are drained at most once this often (coalescing bursts; a
 * change after a quiet spell is drained at once: store_notify_cb()). */
#define CPM_DRAIN_DELAY_MS 5
/* Changes taken per drain round; more wait for a deferred round (the
 * next iteration), or are taken at once before a list (svc_drain_due()). */
#define CPM_DRAIN_CHUNK 10000

struct svc_account;

struct svc_folder {
	struct cpm_service *svc;
	struct svc_account *account;
	int64_t id;
	char *path;
	/* Last values read from the store (and emitted). */
	char *name;
	uint32_t uidvalidity, messages, unseen;
	uint64_t highestmodseq;
	bool active;
	/* The CPM folder model (folder.c, svc_folder_classify()). */
	char *special_use; /* "" when none */
	const char *kind;  /* static */
	char *conversation_id, *contribution_id;
};

struct svc_account {
	struct cpm_service *svc;
	struct cpmsync_session *session;
	char *name;
	char *path;
	char *host, *user;	/* cpm_service_set_account_details(); "" until then */
	char *cpm_root;		/* cpm_service_set_account_cpm_root(); "Default" until then */
	bool cpm_root_in_store; /* cpmsync_store_set_cpm_root() took cpm_root */
	/* Last emitted values (cpm_service_account_changed). */
	const char *state, *push;
	char *last_error, *caps;
	uint64_t last_sync, last_activity;
	uint64_t sync_generation; /* completed syncs (SyncGeneration) */
	uint32_t pending;
	bool online;
	/* Failed operations (account.c): how many, and each one's (id,
	 * tries) as last seen, so that OperationFailed goes out once per
	 * failure (again after a RetryOperation that fails again). */
	uint32_t failed;
	struct svc_failed_seen {
		int64_t id;
		uint32_t tries;
	} * failed_seen;
	size_t n_failed_seen;
	/* The last ListConversations reply and the store's content stamp it
	 * was built at (conversation.c). */
	DBusMessage *conv_reply;
	uint64_t conv_stamp[2];
	/* ConversationChanged (conversation.c): what the last one said of
	 * each conversation (a hash of its dict), sorted by ConversationId,
	 * and the store row it was read by (rep), so that the signal goes
	 * out only when the summary differs. */
	struct svc_conv_sent {
		char *cid;
		int64_t rep;
		uint64_t hash;
	} * conv_sent;
	size_t n_conv_sent;
};

struct svc_call;

struct cpm_service {
	struct cpmsync_loop *loop;
	struct cpmsync_store *store;
	struct cpm_bus *bus;
	char *version;
	char *config_error;	/* Manager1.ConfigError; NULL: "" */
	char **config_warnings; /* Manager1.ConfigWarnings */
	size_t n_config_warnings;
	char *config_file; /* Manager1.ConfigFile (ours); NULL: "" */
	char *database;	   /* Manager1.Database (ours); NULL: "" */
	struct cpm_service_hooks hooks;
	void *userdata;
	bool watching;

	struct svc_account **accounts;
	size_t n_accounts;
	struct svc_folder **folders; /* sorted by id */
	size_t n_folders, alloc_folders;

	struct cpmsync_loop_source *drain_timer, *drain_defer;
	bool drain_armed;
	uint64_t last_drain_ms;		     /* cpmsync_now_ms() of the last drain; 0: none yet */
	struct svc_call *calls;		     /* asynchronous calls in flight */
	struct cpmsync_previewer *previewer; /* Folder1.Preview, made on first use */
};

extern const struct cpm_interface cpm_manager_interface;
extern const struct cpm_interface cpm_account_interface;
extern const struct cpm_interface cpm_folder_interface;

struct svc_account *svc_account_by_name(struct cpm_service *svc, const char *name);
struct svc_account *svc_account_by_path(struct cpm_service *svc, const char *path);
struct svc_folder *svc_folder_by_id(struct cpm_service *svc, int64_t id);
/* The folder's object, exported now if the store has it (and its account
 * is exported); NULL otherwise. */
struct svc_folder *svc_folder_ensure(struct cpm_service *svc, int64_t id);
/* Re-reads the folder; emits PropertiesChanged for what changed.
 * Removes the object when the folder is gone. */
void svc_folder_refresh(struct svc_folder *f);
void svc_folder_remove(struct cpm_service *svc, int64_t id);
/*
 * Recomputes Kind, ConversationId and ContributionId from the folder's
 * name and its account's CPM root, and takes special_use (NULL: none);
 * the names of the properties that changed are appended to changed[*n].
 */
void svc_folder_classify(struct svc_folder *f, const char *special_use, const char **changed,
			 unsigned *n);

/* After a local change (ops.h) committed and its reply is queued:
 * PendingOperations, then the session replays the journal. */
void svc_changed_locally(struct svc_account *a);
/* The same after SetFlags: replayed by the quickest run (no full pass). */
void svc_flags_changed_locally(struct svc_account *a);
/* Reads the account's failed operations: emits OperationFailed for each
 * one not seen before (unless announce is false: at start) and returns
 * whether their number changed (FailedOperations). */
bool svc_account_check_failed(struct svc_account *a, bool announce);

/* Error reply for a failed ops.h / store call: the store's description. */
DBusMessage *svc_store_error(struct cpm_service *svc, DBusMessage *msg, int r);
/* The same, an invalid argument (-EINVAL) named: "arg: the store's reason"
 * (the contract: InvalidArgs names the argument). */
DBusMessage *svc_store_error_arg(struct cpm_service *svc, DBusMessage *msg, int r, const char *arg);

/*
 * A method call answered later: holds a reference on msg.  If the service
 * is freed first the call is orphaned and its reply dropped.
 */
struct svc_call {
	struct svc_call *next, *prev;
	struct cpm_service *svc; /* NULL: orphaned */
	DBusMessage *msg;
	void *data; /* the handler's own state, freed with free_data */
	void (*free_data)(void *data);
	/* Not NULL: an error reply is reported (svc_report_failure()). */
	char *failed_account, *failed_what;
};

struct svc_call *svc_call_new(struct cpm_service *svc, DBusMessage *msg);
/* Sends reply (if still connected), then frees c. */
void svc_call_finish(struct svc_call *c, DBusMessage *reply);
/* When reply is an error: hands it to hooks.call_failed (account, what:
 * as there).  Returns reply. */
DBusMessage *svc_report_failure(struct cpm_service *svc, const char *account, const char *what,
				DBusMessage *reply);
/* fn(bus, msg, userdata), a call that changes something, its failure
 * reported (account, may be NULL, and what are copied first: the call
 * may free what they belong to). */
DBusMessage *svc_call_reported(struct cpm_service *svc, const char *account, const char *what,
			       cpm_method_fn fn, struct cpm_bus *bus, DBusMessage *msg,
			       void *userdata);
/* A request's callback (userdata: the svc_call) that answers with the
 * NULL-terminated name/value pairs as a{ss}, or with the error r, reason. */
void svc_pairs_cb(int r, const char *reason, const char *const *pairs, void *userdata);

/* The folder id for a name of account ("" and allow_empty: 0, the server). */
DBusMessage *svc_resolve_folder(struct svc_account *a, DBusMessage *msg, const char *arg,
				const char *name, bool allow_empty, int64_t *ret_id);

/* After a request function returned r: NULL (its callback replies) or,
 * when it failed at once, the error reply (and c is finished). */
DBusMessage *svc_request_started(struct svc_call *c, int r);
/* Offline: what needs the server while the account's Online is false. */
DBusMessage *svc_offline_error(DBusMessage *msg, struct svc_account *a);
/* Reads the flags (as) and date (x) that follow at it (Store, StoreFd,
 * StoreObject): NULL, or the InvalidArgs text (to free). */
char *svc_read_flags_date(DBusMessageIter *it, const char ***ret_flags, int64_t *ret_date);
/* The arguments of StoreFd and StoreObject: the content fd (h: a new fd,
 * the caller's to close), then flags and date as svc_read_flags_date().
 * NULL, or the InvalidArgs text (to free) with the fd closed already. */
char *svc_read_fd_flags_date(DBusMessage *msg, int *ret_fd, const char ***ret_flags,
			     int64_t *ret_date);
/* The "values" a{ss} at it (SetMetadata, SetAnnotations), checked before
 * anything changes: at most max entries, each name accepted by check (NULL,
 * or the InvalidArgs text to free), each value at most
 * CPM_MAX_METADATA_VALUE bytes.  NULL and *ret_n entries, or the
 * InvalidArgs reply. */
DBusMessage *svc_check_values(DBusMessage *msg, DBusMessageIter *it, unsigned max,
			      char *(*check)(const char *arg, const char *entry), unsigned *ret_n);

/*
 * Content given as a file descriptor (fd: taken over, closed): the one
 * code path of StoreFd and StoreObject.  A regular file is handed to
 * done() at once and its reply returned, or, on a file system whose reads
 * may block (folder.h), read on a thread into a memfd first; a pipe is
 * read on the loop (at most CPMSYNC_OP_MAX_MESSAGE_SIZE bytes, within a
 * time limit, under the global caps of folder.h) into a memfd.  In those
 * two cases NULL is returned and done() runs later (the reply follows).
 * done() gets fd at offset 0 and its size and returns the reply; it does
 * not close fd.  ctx is freed with free_ctx (may be NULL) in every case,
 * on the loop.
 */
typedef DBusMessage *(*svc_content_fn)(struct cpm_service *svc, DBusMessage *msg, int fd,
				       uint64_t size, void *ctx);
/* Its failure, now or later, goes to svc_report_failure() with
 * account and what. */
DBusMessage *svc_take_content_fd(struct cpm_service *svc, DBusMessage *msg, int fd,
				 svc_content_fn done, void *ctx, void (*free_ctx)(void *ctx),
				 const char *account, const char *what);

/* Conversations (conversation.c, account.c). */
/* Gives the account's CPM root to the store (its conversations) unless it
 * has it already; retried by the caller's next chance when the store does
 * not know the account yet. */
void svc_account_store_cpm_root(struct svc_account *a);
/* NULL when v is a Conversation-ID argument (non-empty, bounded, no '/'),
 * else the InvalidArgs text naming arg (to free). */
char *svc_check_conversation_id(const char *arg, const char *v);
/* NULL when account a syncs the folder name (its folders setting); else
 * why not, for InvalidArgs about arg (to free()): a folder made outside it
 * would be created on the server and then dropped from the store. */
char *svc_check_synced(const struct svc_account *a, const char *arg, const char *name);
DBusMessage *svc_list_conversations(struct cpm_bus *bus, DBusMessage *msg, void *userdata);
DBusMessage *svc_list_conversations_page(struct cpm_bus *bus, DBusMessage *msg, void *userdata);
DBusMessage *svc_list_conversation_messages(struct cpm_bus *bus, DBusMessage *msg, void *userdata);
/* ConversationChanged for each conversation id (store change records;
 * sorted and deduplicated here, so ids is changed). */
void svc_conversations_forget(struct svc_account *a);
void svc_emit_conversations_changed(struct cpm_service *svc, int64_t *ids, size_t n);
/* Conversation rows gone (store change records): what was said of the
 * conversations read by them is forgotten. */
void svc_conversations_removed(struct cpm_service *svc, const int64_t *ids, size_t n);
/* ConversationRemoved for each conversation that left the list (ours,
 * beyond the contract), after the ConversationChanged of the changes. */
void svc_emit_conversations_gone(struct cpm_service *svc);
/* Frees what svc_emit_conversations_changed() keeps for a. */
void svc_conversations_sent_free(struct svc_account *a);
/* The sync engine's open batch committed, then the changes committed and
 * not yet drained signalled now (a list about to be read comes after the
 * signals of what it shows). */
void svc_drain_due(struct cpm_service *svc);

/* InvalidArgs with err as its text; frees err. */
DBusMessage *svc_invalid(DBusMessage *msg, char *err);
