/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Conversations on Account1 (contract README "CPM objects and
 * conversations"): ListConversations, ListConversationMessages and the
 * ConversationChanged signal, read from the store's conversation API
 * (cpmsync/conversation.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/conversation.h>
#include <cpmsync/error.h>
#include <cpmsync/limits.h>

#include "dbus-util.h"
#include "service-private.h"

/* The object path of folder_id, "/" when it has none (not exported). */
static const char *folder_path(struct cpm_service *svc, int64_t folder_id)
{
	struct svc_folder *f = folder_id > 0 ? svc_folder_ensure(svc, folder_id) : NULL;

	return f ? f->path : "/";
}

struct summary_in {
	struct cpm_service *svc;
	DBusMessageIter *array;
	unsigned n;
};

static int summary_in_cb(const struct cpmsync_message_info *m, void *userdata)
{
	struct summary_in *si = userdata;

	cpm_append_summary_in(si->array, m, folder_path(si->svc, m->folder_id));
	si->n++;
	return 0;
}

static int skip_cb(const struct cpmsync_message_info *m, void *userdata)
{
	(void)m;
	(void)userdata;
	return 0;
}

/* One conversation dict (a{sv}) into array: an open aa{sv}, or a
 * signal's top-level iterator. */
static void append_conversation(struct cpm_service *svc, DBusMessageIter *array,
				const struct cpmsync_conversation_info *c)
{
	const char *path = folder_path(svc, c->folder_id);
	dbus_bool_t is_group = c->is_group;
	dbus_uint32_t messages = c->messages, unseen = c->unseen;
	dbus_int64_t last = c->last_activity;
	static const char *const key = "LastMessage";
	DBusMessageIter d, e, v, lm;

	if (!dbus_message_iter_open_container(array, DBUS_TYPE_ARRAY, "{sv}", &d))
		cpm_oom();
	cpm_dict_append(&d, "ConversationId", DBUS_TYPE_STRING, &c->conversation_id);
	cpm_dict_append(&d, "Folder", DBUS_TYPE_OBJECT_PATH, &path);
	cpm_dict_append(&d, "Peer", DBUS_TYPE_STRING, &c->peer);
	cpm_dict_append(&d, "IsGroup", DBUS_TYPE_BOOLEAN, &is_group);
	cpm_dict_append_split(&d, "Participants", c->participants, '\n');
	cpm_dict_append(&d, "Subject", DBUS_TYPE_STRING, &c->subject);
	cpm_dict_append(&d, "Messages", DBUS_TYPE_UINT32, &messages);
	cpm_dict_append(&d, "Unseen", DBUS_TYPE_UINT32, &unseen);
	cpm_dict_append(&d, "LastActivity", DBUS_TYPE_INT64, &last);
	/* LastMessage a{sv}: the summary (with Folder), {} when none. */
	if (!dbus_message_iter_open_container(&d, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
	    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) ||
	    !dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "a{sv}", &v))
		cpm_oom();
	/* The summary's a{sv} goes straight into the variant. */
	if (c->last_message) {
		cpm_append_summary_in(&v, c->last_message,
				      folder_path(svc, c->last_message->folder_id));
	} else if (!dbus_message_iter_open_container(&v, DBUS_TYPE_ARRAY, "{sv}", &lm) ||
		   !dbus_message_iter_close_container(&v, &lm)) {
		cpm_oom();
	}
	if (!dbus_message_iter_close_container(&e, &v) ||
	    !dbus_message_iter_close_container(&d, &e))
		cpm_oom();
	if (!dbus_message_iter_close_container(array, &d))
		cpm_oom();
}

static int list_conversations_cb(const struct cpmsync_conversation_info *c, void *userdata)
{
	struct summary_in *si = userdata;

	append_conversation(si->svc, si->array, c);
	return 0;
}

/*
 * The reply to msg from a copy of the kept one: the same body (a memcpy),
 * the header's reply serial and destination made msg's.
 */
static DBusMessage *reply_from_kept(DBusMessage *kept, DBusMessage *msg)
{
	DBusMessage *reply = dbus_message_copy(kept);
	const char *sender = dbus_message_get_sender(msg);

	if (!reply || !dbus_message_set_reply_serial(reply, dbus_message_get_serial(msg)) ||
	    !dbus_message_set_destination(reply, sender))
		cpm_oom();
	return reply;
}

void svc_conversations_forget(struct svc_account *a)
{
	if (a->conv_reply)
		dbus_message_unref(a->conv_reply);
	a->conv_reply = NULL;
}

/*
 * The list is built from the store only when the store changed since it
 * was last built (cpmsync_store_content_stamp()): an app redraws its
 * conversation list far more often than conversations change, and with
 * 1,000 conversations the reply is about 1.2 MB of 30,000 dict entries,
 * whose marshalling alone took longer than the 20 ms the list may take
 * (issue 11; tests/bench/bench-cpm.sh).  A copy of the kept reply costs a
 * memcpy.  Nothing is kept while a transaction is open (it may roll back).
 */
DBusMessage *svc_list_conversations(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	DBusMessageIter it, array;
	struct summary_in si = { a->svc, &array, 0 };
	DBusMessage *reply;
	uint64_t stamp[2];
	int r, open;

	(void)bus;
	svc_drain_due(a->svc);
	open = cpmsync_store_content_stamp(a->svc->store, stamp);
	if (open == 0 && a->conv_reply && stamp[0] == a->conv_stamp[0] &&
	    stamp[1] == a->conv_stamp[1])
		return reply_from_kept(a->conv_reply, msg);
	svc_conversations_forget(a);

	reply = cpm_array_reply(msg, &it, &array);
	r = cpmsync_store_foreach_conversation(a->svc->store, a->name, list_conversations_cb, &si);
	cpm_array_reply_close(&it, &array);
	/* An account without a row in the store has none. */
	if (r < 0 && r != -CPMSYNC_E_NOT_FOUND) {
		dbus_message_unref(reply);
		return svc_store_error(a->svc, msg, r);
	}
	/* Kept when nothing was written meanwhile (folder objects exported
	 * on the way do not write). */
	if (open == 0) {
		uint64_t after[2];

		if (cpmsync_store_content_stamp(a->svc->store, after) == 0 &&
		    after[0] == stamp[0] && after[1] == stamp[1]) {
			a->conv_reply = dbus_message_copy(reply);
			if (!a->conv_reply)
				cpm_oom();
			a->conv_stamp[0] = stamp[0];
			a->conv_stamp[1] = stamp[1];
		}
	}
	return reply;
}

/*
 * ListConversationsPage(offset, limit), our addition to the contract:
 * ListConversations' list from position offset, at most limit (0: the
 * default page).  The whole list is about 1.2 MB for 1,000 conversations,
 * and passing that through dbus-daemon alone costs more than the 20 ms
 * the list may take (issue 11; tests/bench/bench-cpm.sh prints both); a
 * page of 50 is about 60 kB.  By position rather than after a key: a
 * ConversationId may name two conversations, and the conversations without
 * a message all have LastActivity 0 and no LastMessage, so no key of the
 * dict says where a page ended.
 */
DBusMessage *svc_list_conversations_page(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	dbus_uint32_t offset, limit;
	DBusMessageIter it, array;
	struct summary_in si = { a->svc, &array, 0 };
	DBusMessage *reply;
	int r;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_UINT32, &offset, DBUS_TYPE_UINT32, &limit,
			      DBUS_TYPE_INVALID);
	if ((reply = cpm_list_limit_or_default(msg, &limit)))
		return reply;
	svc_drain_due(a->svc);
	reply = cpm_array_reply(msg, &it, &array);
	r = cpmsync_store_foreach_conversation_page(a->svc->store, a->name, offset, limit,
						    list_conversations_cb, &si);
	cpm_array_reply_close(&it, &array);
	/* An account without a row in the store has none. */
	if (r < 0 && r != -CPMSYNC_E_NOT_FOUND) {
		dbus_message_unref(reply);
		return svc_store_error(a->svc, msg, r);
	}
	return reply;
}

DBusMessage *svc_list_conversation_messages(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	const char *conversation_id;
	dbus_uint64_t before;
	dbus_uint32_t limit;
	DBusMessageIter it, array;
	struct summary_in si = { a->svc, &array, 0 };
	DBusMessage *reply;
	char *err;
	int r;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &conversation_id, DBUS_TYPE_UINT64,
			      &before, DBUS_TYPE_UINT32, &limit, DBUS_TYPE_INVALID);
	if ((err = svc_check_conversation_id("conversation_id", conversation_id)))
		return svc_invalid(msg, err);
	if (before > INT64_MAX)
		return cpm_error_invalid_args(msg, "before_id: no message has id %" PRIu64,
					      (uint64_t)before);
	if ((reply = cpm_list_limit(msg, limit)))
		return reply;
	/* As ListConversations: the engine's open batch committed, and the
	 * signals of what the page shows sent before it (svc_drain_due()). */
	svc_drain_due(a->svc);
	reply = cpm_array_reply(msg, &it, &array);
	/* "At most limit": limit 0 lists none (for the store, 0 would be
	 * all), yet an unknown conversation is still NotFound and a
	 * before_id not known InvalidArgs: a walk of one message, skipped. */
	r = cpmsync_store_foreach_conversation_message(a->svc->store, a->name, conversation_id,
						       (int64_t)before, limit ? limit : 1,
						       limit ? summary_in_cb : skip_cb, &si);
	cpm_array_reply_close(&it, &array);
	/* A before_id gone and no longer known, or of another conversation:
	 * InvalidArgs naming it (the store's text), not NotFound. */
	if (r == -CPMSYNC_E_NOT_FOUND) {
		dbus_message_unref(reply);
		return cpm_error(msg, CPM_ERROR_NOT_FOUND,
				 "conversation_id: no conversation '%s' in account '%s'",
				 conversation_id, a->name);
	}
	if (r < 0) {
		dbus_message_unref(reply);
		return svc_store_error(a->svc, msg, r);
	}
	return reply;
}

static int sent_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct svc_conv_sent *)elem)->cid);
}

/* FNV-1a, 64 bits. */
static uint64_t hash_bytes(const char *p, int n)
{
	uint64_t h = 14695981039346656037ull;

	for (int i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

/*
 * Records that the signal sig says this of conversation c, unless the
 * last one said the same: false then (the contract: ConversationChanged
 * means "a conversation was added or its summary changed"; a report that
 * raises nothing, a delivery report after the display report, one whose
 * original is absent change a row of the store, not the summary).
 */
static bool sent_differs(struct svc_account *a, const struct cpmsync_conversation_info *c,
			 DBusMessage *sig)
{
	DBusMessage *copy = dbus_message_copy(sig);
	struct svc_conv_sent *e;
	char *data = NULL;
	uint64_t h;
	size_t i;
	int len = 0;

	/* The copy's header has no serial yet, as sig's: the bytes are the
	 * dict's and the same fields of every ConversationChanged. */
	if (!copy || !dbus_message_marshal(copy, &data, &len))
		cpm_oom();
	dbus_message_unref(copy);
	h = hash_bytes(data, len);
	dbus_free(data);
	/* bsearch() takes no NULL array, even of none (UBSan). */
	e = a->n_conv_sent ? bsearch(c->conversation_id, a->conv_sent, a->n_conv_sent, sizeof(*e),
				     sent_cmp)
			   : NULL;
	if (e) {
		e->rep = c->id;
		if (e->hash == h)
			return false;
		e->hash = h;
		return true;
	}
	for (i = 0; i < a->n_conv_sent && strcmp(a->conv_sent[i].cid, c->conversation_id) < 0; i++)
		;
	a->conv_sent = cpm_realloc(a->conv_sent, (a->n_conv_sent + 1) * sizeof(*a->conv_sent));
	memmove(&a->conv_sent[i + 1], &a->conv_sent[i],
		(a->n_conv_sent - i) * sizeof(*a->conv_sent));
	a->conv_sent[i] = (struct svc_conv_sent){ cpm_strdup(c->conversation_id), c->id, h };
	a->n_conv_sent++;
	return true;
}

void svc_conversations_sent_free(struct svc_account *a)
{
	for (size_t i = 0; i < a->n_conv_sent; i++)
		free(a->conv_sent[i].cid);
	free(a->conv_sent);
	a->conv_sent = NULL;
	a->n_conv_sent = 0;
}

void svc_conversations_removed(struct cpm_service *svc, const int64_t *ids, size_t n)
{
	for (size_t k = 0; k < svc->n_accounts; k++) {
		struct svc_account *a = svc->accounts[k];
		size_t j = 0;

		for (size_t i = 0; i < a->n_conv_sent; i++) {
			bool gone = false;

			for (size_t x = 0; x < n && !gone; x++)
				gone = a->conv_sent[i].rep == ids[x];
			if (gone)
				free(a->conv_sent[i].cid);
			else
				a->conv_sent[j++] = a->conv_sent[i];
		}
		a->n_conv_sent = j;
	}
}

struct emit_ctx {
	struct cpm_service *svc;
};

static int emit_cb(const struct cpmsync_conversation_info *c, void *userdata)
{
	struct emit_ctx *x = userdata;
	struct svc_account *a = svc_account_by_name(x->svc, c->account);
	DBusMessageIter it;
	DBusMessage *sig;

	if (!a)
		return 0;
	sig = cpm_bus_new_signal(a->path, CPM_IFACE_ACCOUNT, "ConversationChanged");
	dbus_message_iter_init_append(sig, &it);
	append_conversation(x->svc, &it, c);
	if (sent_differs(a, c, sig))
		cpm_bus_send(x->svc->bus, sig);
	else
		dbus_message_unref(sig);
	return 0;
}

static int id_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

void svc_emit_conversations_changed(struct cpm_service *svc, int64_t *ids, size_t n)
{
	struct emit_ctx x = { svc };

	qsort(ids, n, sizeof(*ids), id_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i && ids[i] == ids[i - 1])
			continue;
		/* Gone meanwhile, or no longer listed: what was said is
		 * forgotten, so that it is said again when it comes back
		 * (ConversationRemoved is svc_emit_conversations_gone()'s). */
		if (cpmsync_store_get_conversation_by_id(svc->store, ids[i], emit_cb, &x) ==
		    -CPMSYNC_E_NOT_FOUND)
			svc_conversations_removed(svc, &ids[i], 1);
	}
}

static int gone_cb(const char *account, const char *conversation_id, void *userdata)
{
	struct cpm_service *svc = userdata;
	struct svc_account *a = svc_account_by_name(svc, account);
	struct svc_conv_sent *e;
	DBusMessage *sig;

	if (!a)
		return 0;
	e = a->n_conv_sent
		    ? bsearch(conversation_id, a->conv_sent, a->n_conv_sent, sizeof(*e), sent_cmp)
		    : NULL;
	if (e) {
		size_t i = (size_t)(e - a->conv_sent);

		free(e->cid);
		memmove(&a->conv_sent[i], &a->conv_sent[i + 1],
			(a->n_conv_sent - i - 1) * sizeof(*a->conv_sent));
		a->n_conv_sent--;
	}
	sig = cpm_bus_new_signal(a->path, CPM_IFACE_ACCOUNT, "ConversationRemoved");
	if (!dbus_message_append_args(sig, DBUS_TYPE_STRING, &conversation_id, DBUS_TYPE_INVALID))
		cpm_oom();
	cpm_bus_send(svc->bus, sig);
	return 0;
}

/*
 * ConversationRemoved(s conversation_id), our addition to the contract
 * (whose ConversationChanged says "added or its summary changed", and
 * which has no signal for a conversation that goes): a conversation that
 * left the list (its last folder deleted, its last message expunged or
 * moved away; a row's Conversation-ID changed away from it; a group's
 * session-info or group-state gone, reports left), after the
 * ConversationChanged of the same changes, so that an app drops it
 * rather than keep it until it lists all again.  Once per going; not for
 * one listed again in the same changes.
 */
void svc_emit_conversations_gone(struct cpm_service *svc)
{
	/* A failure of the store keeps its notes for the next changes. */
	(void)cpmsync_store_take_conversations_gone(svc->store, gone_cb, svc);
}
