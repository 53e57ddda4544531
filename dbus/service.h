/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The org.cpmsync session-bus service (contract: org.cpmsync.xml and its
 * README), on libdbus, attached to the libcpmsync loop.  It exports the
 * Manager1 object, one Account1 object per session and one Folder1 object
 * per visible folder, answers reads from the store, makes local changes
 * through cpmsync/ops.h (then asks the session to sync), forwards what
 * needs the server to the session's requests, and turns store changes
 * (cpmsync_store_watch) into MessagesAdded/Changed/Removed,
 * InterfacesAdded/Removed and PropertiesChanged.
 *
 * Only public libcpmsync headers are used here (make check-layering).
 */

#include <stdbool.h>
#include <stdint.h>

#include <cpmsync/loop.h>
#include <cpmsync/session.h>
#include <cpmsync/settings.h>
#include <cpmsync/store.h>
#include <cpmsync/sync.h>

struct cpm_service;

/*
 * What the daemon does for Manager1 (write the configuration file and
 * apply it).  add_account gets settings that passed
 * cpmsync_account_settings_check() (security set, password set;
 * password_file, password_command and ca_file NULL: AddAccount refuses paths).  Each returns 0, or
 * a negative errno and a malloc()ed reason in *ret_error (-EINVAL: InvalidArgs; -EEXIST /
 * -CPMSYNC_E_NOT_FOUND: NotFound/Failed as fits; else Failed).  The new account's session is given
 * to cpm_service_add_account() by the daemon before add_account returns.
 */
/*
 * AddAccount's certificates (PEM bytes, borrowed from the message; NULL
 * when not given), checked to look like PEM: ca one or more certificates,
 * client a certificate and its private key.
 */
struct cpm_account_pems {
	const char *ca;
	size_t ca_len;
	const char *client;
	size_t client_len;
};

/*
 * What remove_account saved of the account's unsent changes before it
 * dropped them (directory NULL: there were none), for Manager1's
 * UnsentChangesSaved; the service frees directory.
 */
struct cpm_account_saved {
	char *directory;
	uint32_t messages; /* new messages, one .eml file each */
	uint32_t changes;  /* every unsent change, the messages included */
};

struct cpm_service_hooks {
	int (*add_account)(void *userdata, const char *name,
			   const struct cpmsync_account_settings *settings,
			   const struct cpm_account_pems *pems, char **ret_error);
	int (*remove_account)(void *userdata, const char *name, struct cpm_account_saved *ret_saved,
			      char **ret_error);
	/* The bus went away (optional): nothing can reach the daemon now. */
	void (*bus_lost)(void *userdata);
	/* A call that changes something (Folder1.Store, StoreFd, SetFlags,
	 * Copy, Move, Delete, Expunge, SetAnnotations; Account1.StoreObject,
	 * CreateFolder, RenameFolder, DeleteFolder, SetMetadata, SetAcl,
	 * DeleteAcl, MarkConversationRead, RetryOperation,
	 * DiscardOperation; Manager1.AddAccount, RemoveAccount) failed
	 * (optional), for the log: account is the one it was about (NULL
	 * when not known: an AddAccount of an invalid name), what names the
	 * call ("StoreFd into folder 'INBOX'", "CreateFolder"), reason is
	 * the error text the caller got (which names the argument that was
	 * wrong, if one was). */
	void (*call_failed)(void *userdata, const char *account, const char *what,
			    const char *reason);
};

/*
 * Connects to the session bus (or the address given, for tests; NULL: the
 * session bus) and attaches to loop.  The service takes the store's change
 * watch (cpmsync_store_watch): one service per store handle.
 * ListMessages' limit 0 means the default, 1000 (at most 10000).  Objects are added before the name
 * is requested: call cpm_service_start() last.
 */
int cpm_service_new(struct cpmsync_loop *loop, struct cpmsync_store *store, const char *bus_address,
		    const char *version, const struct cpm_service_hooks *hooks, void *userdata,
		    struct cpm_service **ret, char **ret_error);
/* Requests org.cpmsync; fails (with the reason) if another owner has it. */
int cpm_service_start(struct cpm_service *svc, char **ret_error);
/* Releases the name, unexports everything. Accepts NULL; returns NULL. */
struct cpm_service *cpm_service_free(struct cpm_service *svc);

/* Exports /org/cpmsync/<name> and its folders' objects (the session must
 * outlive the export; remove it first), with Account1.Host, .User and
 * .CpmRoot (NULL: "Default") already set: InterfacesAdded carries them. */
int cpm_service_add_account(struct cpm_service *svc, struct cpmsync_session *session,
			    const char *host, const char *user, const char *cpm_root);
void cpm_service_remove_account(struct cpm_service *svc, const char *name);
/*
 * Account1.Host and .User (the session does not expose its settings):
 * the daemon calls this after cpm_service_add_account() and whenever the
 * account's settings change; PropertiesChanged is emitted for what
 * changed.  Strings are copied.
 */
void cpm_service_set_account_details(struct cpm_service *svc, const char *name, const char *host,
				     const char *user);

/*
 * Manager1.ConfigError: why the last configuration reload was refused
 * ("FILE:LINE: reason"), or that the file names another database than the
 * store in use (which needs a restart), or NULL / "" when the file in
 * force is the file on disk.  PropertiesChanged is emitted when the value changes.
 */
void cpm_service_set_config_error(struct cpm_service *svc, const char *error);

/*
 * Manager1.ConfigWarnings, ours beyond the contract: the warnings of the
 * file in force ("FILE:LINE: unknown key 'x' in [general], ignoring it"),
 * empty when it has none.  Set when a file is taken (at start and at each
 * accepted reload; a refused file keeps the last good one's).  Copied;
 * PropertiesChanged is emitted when the list changes.
 */
void cpm_service_set_config_warnings(struct cpm_service *svc, char *const *warnings, size_t n);

/*
 * Manager1.ConfigFile and .Database, ours beyond the contract: the
 * configuration file the daemon reads and the store it uses (absolute
 * paths), so that a reader of the store (cpmctl dump, pending) opens
 * that one while the file names another until a restart.  Set once,
 * before cpm_service_start(); copied.  NULL: "".
 */
void cpm_service_set_files(struct cpm_service *svc, const char *config_file, const char *database);

/*
 * Account1.CpmRoot (cpm_root in the configuration; "Default" until set):
 * the root of the CPM folder model, which classifies the account's folders
 * (Folder1.Kind ...) and where StoreObject files objects.  PropertiesChanged
 * for CpmRoot and for every folder whose classification changed.
 */
void cpm_service_set_account_cpm_root(struct cpm_service *svc, const char *name, const char *root);

/*
 * The daemon's periodic look at the store (agent/daemon.c
 * other_writers_check()): a drain is scheduled as after a commit of its
 * own, and it takes what other processes committed since
 * (CPMSYNC_STORE_DAEMON), if anything: their changes get the signals
 * the daemon's own would.
 */
void cpm_service_others_wrote(struct cpm_service *svc);

/* Forwarded from the session's callbacks by the daemon. */
void cpm_service_account_changed(struct cpm_service *svc, struct cpmsync_session *session);
void cpm_service_sync_progress(struct cpm_service *svc, struct cpmsync_session *session,
			       const char *folder, uint32_t done, uint32_t total);
/*
 * A sync of the session ended with r (the synced callback): a complete one
 * (r == 0) moves the account's SyncGeneration on by one.
 */
void cpm_service_account_synced(struct cpm_service *svc, struct cpmsync_session *session, int r);
