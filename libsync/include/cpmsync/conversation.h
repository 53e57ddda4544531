/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_CONVERSATION_H
#define CPMSYNC_CONVERSATION_H

/*
 * Conversations in the local store (contract "CPM objects and
 * conversations"): what Account1.ListConversations,
 * ListConversationMessages and ConversationChanged show.
 *
 * A conversation is every conversation folder under the account's CPM
 * root (<root>/<Conversation-ID>, or a 1-to-1 peer's <root>/<address>) of
 * one ConversationId, together with their session history folders
 * (<root>/<X>/<Contribution-ID>), as long as they hold a message,
 * file-transfer, media, session-info or group-state object (or one not
 * classified yet): a folder of IMDN reports only (a report that came
 * before its original) or of mail only is none.  The store keeps one row
 * per conversation folder up to date in the same transaction as every
 * change of its objects and folders (store-schema.c, version 6); the
 * rows of one ConversationId are read as one.
 *
 *  - ConversationId: of a conversation folder, the Conversation-ID of the
 *    first object of it and its session folders that has one (an IMDN
 *    report's names none: a report is state, not a message), else the
 *    folder's last level (the peer's address): the objects say, for a
 *    conversation history folder too (one renamed on the server, or whose
 *    name is not its objects' Conversation-ID), and Folder1.ConversationId
 *    says the same (cpmsync_store_folder_conversation_id()).  Compared
 *    byte for byte.
 *  - Folder: the conversation history folder named after the
 *    ConversationId when it is one of its folders, else the most active
 *    (newest LastActivity).  Messages, Unseen, LastActivity, LastMessage,
 *    IsGroup and Participants cover all its folders; Peer and Subject are
 *    the most active folder's that has one.
 *  - IsGroup: it has a session history folder or a group-state object.
 *    Peer: "" for a group, else the other party of its newest message
 *    (To of a sent object, From of a received one).
 *  - Participants: from its newest session-info / group-state object that
 *    lists some, else the peer (1-to-1) or the senders of its received
 *    messages (group); the account's own addresses (From of its sent
 *    objects) are left out.  Subject: of its newest session-info object.
 *  - Messages, Unseen, LastActivity (newest Date), LastMessage: over the
 *    objects a person reads (message, file-transfer, media).
 *  - Status of a message: the strongest IMDN disposition reported for it
 *    (displayed > delivered > failed/forbidden/error > ""), whatever order
 *    the report and the message arrive in; see cpmsync_message_info.status.
 *
 * Changes: with cpmsync_store_watch(), every committed change of a
 * conversation records CPMSYNC_CHANGE_CONVERSATION_CHANGED (or _REMOVED)
 * with the conversation's id in message_id, and a Status raised by a
 * report records CPMSYNC_CHANGE_MESSAGE_CHANGED on the original (so a sync
 * step's changes are known once its transaction commits).
 *
 * Functions return 0 or a negative errno / -CPMSYNC_E_*;
 * cpmsync_store_error() says why.  Strings given to callbacks are
 * borrowed for the callback's duration.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cpmsync/store.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cpmsync_conversation_info {
	int64_t id; /* the conversation's local id (changes name it) */
	const char *account;
	const char *conversation_id;
	int64_t folder_id;  /* the conversation folder; 0 when only its
			     * session folders are known locally */
	const char *folder; /* its name (UTF-8, '/') */
	const char *peer;   /* "" for a group */
	bool is_group;
	const char *participants; /* addresses, '\n'-separated, "" if none */
	const char *subject;
	uint32_t messages;
	uint32_t unseen;
	int64_t last_activity;	 /* Date of the newest message, 0 if none */
	int64_t last_message_id; /* its id (cpmsync_store_get_message()), 0 if none */
	/* Its summary, read in the same query (what cpmsync_store_get_message()
	 * gives), NULL if none. */
	const struct cpmsync_message_info *last_message;
};

typedef int (*cpmsync_conversation_fn)(const struct cpmsync_conversation_info *conversation,
				       void *userdata);

/*
 * Every conversation of account, newest activity first (LastActivity,
 * then the newest message's id, descending).  -CPMSYNC_E_NOT_FOUND for an
 * unknown account.
 */
int cpmsync_store_foreach_conversation(struct cpmsync_store *store, const char *account,
				       cpmsync_conversation_fn fn, void *userdata);

/*
 * A page of that list: from position offset (0: the newest), at most
 * limit (0: all the rest).  -CPMSYNC_E_NOT_FOUND for an unknown account.
 */
int cpmsync_store_foreach_conversation_page(struct cpmsync_store *store, const char *account,
					    uint32_t offset, uint32_t limit,
					    cpmsync_conversation_fn fn, void *userdata);

/* One conversation by its ConversationId, or by its local id (change
 * records); -CPMSYNC_E_NOT_FOUND. */
int cpmsync_store_get_conversation(struct cpmsync_store *store, const char *account,
				   const char *conversation_id, cpmsync_conversation_fn fn,
				   void *userdata);
int cpmsync_store_get_conversation_by_id(struct cpmsync_store *store, int64_t id,
					 cpmsync_conversation_fn fn, void *userdata);

/*
 * With cpmsync_store_watch(): the conversations that left the list since
 * the last call (their last folder deleted, their last message expunged
 * or moved away, their rows now of another Conversation-ID, a group's
 * session-info or group-state objects gone with reports left), each once,
 * as (account, ConversationId), sorted; only those that were listed when
 * the watch began or at the end of an earlier call (so never a folder of
 * IMDN reports only); those listed again are not given.  What the changes recorded is forgotten,
 * given or not.  Call it outside a transaction, like cpmsync_store_take_changes() (0 inside one).
 * Returns how many were given, or what fn returned when negative (nonzero stops the walk), or a
 * negative errno.
 */
typedef int (*cpmsync_conversation_gone_fn)(const char *account, const char *conversation_id,
					    void *userdata);
int cpmsync_store_take_conversations_gone(struct cpmsync_store *store,
					  cpmsync_conversation_gone_fn fn, void *userdata);

/*
 * The ConversationId of the conversation folder_id belongs to (its
 * conversation history folder, a session history folder below it, or a
 * peer's folder): the Conversation-ID of the first object of its
 * conversation folder and session folders that has one, else the
 * conversation folder's last level (the peer's address), the same as
 * the conversation's in the listing; *ret (free()) NULL when folder_id is
 * no conversation folder or none of them holds an object yet.
 */
int cpmsync_store_folder_conversation_id(struct cpmsync_store *store, int64_t folder_id,
					 char **ret);

/*
 * The messages (message, file-transfer, media objects) of a conversation
 * across its folders, newest first in (Date, Id) order, starting after
 * before_id (the last message of the previous page; 0: from the newest),
 * at most limit (0: all).  Each message's folder_id names its folder.
 * -CPMSYNC_E_NOT_FOUND for an unknown conversation.  A before_id that is
 * gone goes on from its (Date, Id) when the store still knows them (the
 * message removed here and not yet on the server, or one of the newest
 * 4,096 expunged: see store-conv.c); -EINVAL (the error names before_id) for
 * one that is not known, or is a live object of another conversation.
 */
int cpmsync_store_foreach_conversation_message(struct cpmsync_store *store, const char *account,
					       const char *conversation_id, int64_t before_id,
					       uint32_t limit, cpmsync_message_fn fn,
					       void *userdata);

/*
 * Sets the account's CPM root (config cpm_root; "Default" until set, ""
 * for the top level) and rebuilds its conversations when it changed
 * (their ids change then).  A read-write store; the account must exist.
 */
int cpmsync_store_set_cpm_root(struct cpmsync_store *store, const char *account, const char *root);

#ifdef __cplusplus
}
#endif

#endif
