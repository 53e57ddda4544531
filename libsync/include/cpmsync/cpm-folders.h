/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_CPM_FOLDERS_H
#define CPMSYNC_CPM_FOLDERS_H

/*
 * The CPM folder model (contract README, "CPM objects and conversations"):
 * which folders are conversation and session history folders, and where a
 * CPM object is filed.  Everything is relative to the account's CPM root
 * (cpm_root in cpmsync.conf, "Default" unless configured; "" is the top
 * level).  Folder names are UTF-8 with '/' between levels.
 *
 *   <root>/<Conversation-ID>                    conversation-history
 *   <root>/<address>                            conversation-history (a
 *                                               1-to-1 peer's folder)
 *   <root>/<Conversation-ID>/<Contribution-ID>  session-history
 *   anything else, the root itself included     user
 *
 * A folder with a SPECIAL-USE attribute (\Sent, \Drafts, ...) and INBOX
 * are user folders wherever they are: they are the server's, not a
 * conversation's.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cpmsync/store.h>

#ifdef __cplusplus
extern "C" {
#endif

enum cpmsync_folder_kind {
	CPMSYNC_FOLDER_USER = 0,
	CPMSYNC_FOLDER_CONVERSATION_HISTORY,
	CPMSYNC_FOLDER_SESSION_HISTORY,
	_CPMSYNC_FOLDER_KIND_MAX
};

/* "user", "conversation-history", "session-history" (Folder1.Kind). */
const char *cpmsync_folder_kind_name(enum cpmsync_folder_kind kind);

/*
 * A folder's place in the model.  conversation_id / contribution_id point
 * into the name that was classified (not NUL-terminated: use the lengths);
 * both are empty (length 0) where they do not apply.
 */
struct cpmsync_cpm_folder {
	enum cpmsync_folder_kind kind;
	const char *conversation_id;
	size_t conversation_id_len;
	const char *contribution_id;
	size_t contribution_id_len;
};

/*
 * Classifies folder name under root; special_use is the folder's
 * SPECIAL-USE attribute or NULL/"" when it has none.  Never fails: a name
 * outside the root, or NULL, is a user folder.
 */
void cpmsync_cpm_classify_folder(const char *root, const char *name, const char *special_use,
				 struct cpmsync_cpm_folder *ret);

/*
 * Whether s is usable as a CPM root: "" (the top level) or a folder name
 * (valid UTF-8, no control character, no empty level, no leading or
 * trailing '/', at most CPMSYNC_FOLDER_NAME_MAX bytes).  *ret_why (may be
 * NULL) gets a phrase completing "cpm_root ..." when it is not.
 */
bool cpmsync_cpm_root_valid(const char *s, const char **ret_why);

/*
 * StoreObject: files one CPM object (size bytes read from fd, an RFC 5322
 * message) per the model, as one local change: the folders it needs that
 * the account does not have yet are created (each CREATE journaled, parent
 * before child) and the object is stored there (its APPEND journaled after
 * them), in one transaction.  Like the calls in cpmsync/ops.h it works
 * offline and reaches the server exactly once.
 *
 *   session-info and group-state objects    <root>/<Conversation-ID>/<Contribution-ID>
 *   other objects with a Conversation-ID    that session folder when the account has
 *                                           it, else <root>/<Conversation-ID>
 *   Message-Context set, no Conversation-ID <root>/<peer>: To when Message-Direction
 *                                           is "sent", else From
 *
 * An object that is not a CPM object (neither Conversation-ID nor
 * Message-Context), or whose identifiers cannot be folder names, is
 * refused with -EINVAL and cpmsync_store_error() saying why ("content:
 * ..."); nothing is changed then.  *ret_folder_id and *ret_id (each may be
 * NULL) get the folder's and the stored message's local ids.
 *
 * Filing is idempotent: when that folder already holds the same object,
 * its ids are given and nothing is stored or journaled (a retry after a
 * lost reply, a file filed again after a crash, reaches the server once).
 * The same object: the same key, its IMDN-Message-ID or, without one,
 * its Message-ID (an object with neither is never the same as another),
 * and the same content: the same bytes, or (up to 4 MiB) the same once
 * line ends, header folding and white space, field order and name case,
 * transfer encodings and multipart boundaries are set aside (another
 * text, field value or file under the same key is another object); the
 * copy not removed, without
 * \Deleted, and on the server or on its way there (not an APPEND given
 * up).  flags and internaldate are then not applied: the copy keeps its
 * own.
 */
int cpmsync_op_store_object_fd(struct cpmsync_store *store, const char *account, const char *root,
			       int fd, uint64_t size, const char *const *flags,
			       int64_t internaldate, int64_t *ret_folder_id, int64_t *ret_id);

/*
 * The caller's check of the folder an object would be filed in, before
 * anything is stored (the account's folders setting, say): 0 to go on,
 * or a negative errno, which the filing returns as it is, nothing
 * stored (cpmsync_store_error() then only names the folder: the caller
 * says why).
 */
typedef int (*cpmsync_cpm_folder_check_fn)(const char *folder, void *userdata);

/*
 * cpmsync_op_store_object_fd() with check (may be NULL) called on the
 * folder first, the object's header read once for both; and 1, not 0,
 * when the folder held the same object already (*ret_folder_id and
 * *ret_id are that copy's; nothing changed).
 */
int cpmsync_op_file_object_fd(struct cpmsync_store *store, const char *account, const char *root,
			      int fd, uint64_t size, const char *const *flags, int64_t internaldate,
			      cpmsync_cpm_folder_check_fn check, void *userdata,
			      int64_t *ret_folder_id, int64_t *ret_id);

/*
 * Where cpmsync_op_store_object_fd() would file the object (size bytes
 * read from fd) now, without storing it: *ret_folder (to free()) is the
 * folder name.  The same errors; fd is read up to the end of the header.
 */
int cpmsync_cpm_object_folder(struct cpmsync_store *store, const char *account, const char *root,
			      int fd, uint64_t size, char **ret_folder);

#ifdef __cplusplus
}
#endif
#endif
