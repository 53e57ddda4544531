/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The service object: the bus, the exported accounts and folders, the
 * asynchronous calls in flight, and the store's change stream turned
 * into signals.
 */
#include "service.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/conversation.h>
#include <cpmsync/error.h>
#include <cpmsync/preview.h>

#include "dbus-util.h"
#include "service-private.h"

/* ------------------------------------------------------------------------ */
/* Lookups */

struct svc_account *svc_account_by_name(struct cpm_service *svc, const char *name)
{
	for (size_t i = 0; i < svc->n_accounts; i++)
		if (!strcmp(svc->accounts[i]->name, name))
			return svc->accounts[i];
	return NULL;
}

struct svc_account *svc_account_by_path(struct cpm_service *svc, const char *path)
{
	for (size_t i = 0; i < svc->n_accounts; i++)
		if (!strcmp(svc->accounts[i]->path, path))
			return svc->accounts[i];
	return NULL;
}

static struct svc_account *account_by_session(struct cpm_service *svc,
					      struct cpmsync_session *session)
{
	for (size_t i = 0; i < svc->n_accounts; i++)
		if (svc->accounts[i]->session == session)
			return svc->accounts[i];
	return NULL;
}

static size_t folder_index(struct cpm_service *svc, int64_t id, bool *found)
{
	size_t lo = 0, hi = svc->n_folders;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (svc->folders[mid]->id == id) {
			*found = true;
			return mid;
		}
		if (svc->folders[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

struct svc_folder *svc_folder_by_id(struct cpm_service *svc, int64_t id)
{
	bool found;
	size_t i = folder_index(svc, id, &found);

	return found ? svc->folders[i] : NULL;
}

DBusMessage *svc_store_error(struct cpm_service *svc, DBusMessage *msg, int r)
{
	return cpm_error_from_code(msg, r, cpmsync_store_error(svc->store));
}

DBusMessage *svc_store_error_arg(struct cpm_service *svc, DBusMessage *msg, int r, const char *arg)
{
	if (r == -EINVAL)
		return cpm_error_invalid_args(msg, "%s: %s", arg, cpmsync_store_error(svc->store));
	return svc_store_error(svc, msg, r);
}

DBusMessage *svc_resolve_folder(struct svc_account *a, DBusMessage *msg, const char *arg,
				const char *name, bool allow_empty, int64_t *ret_id)
{
	char *err = cpm_check_name(arg, name, allow_empty);
	int64_t id;
	int r;

	if (err) {
		DBusMessage *reply = cpm_error_invalid_args(msg, "%s", err);

		free(err);
		return reply;
	}
	if (!*name) {
		*ret_id = 0;
		return NULL;
	}
	r = cpmsync_store_find_folder(a->svc->store, a->name, name, &id);
	if (r == -CPMSYNC_E_NOT_FOUND)
		return cpm_error(msg, CPM_ERROR_NOT_FOUND, "%s: no folder '%s' in account '%s'",
				 arg, name, a->name);
	if (r < 0)
		return svc_store_error(a->svc, msg, r);
	*ret_id = id;
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Asynchronous calls */

struct svc_call *svc_call_new(struct cpm_service *svc, DBusMessage *msg)
{
	struct svc_call *c = cpm_calloc(1, sizeof(*c));

	c->svc = svc;
	c->msg = dbus_message_ref(msg);
	c->next = svc->calls;
	if (c->next)
		c->next->prev = c;
	svc->calls = c;
	return c;
}

DBusMessage *svc_report_failure(struct cpm_service *svc, const char *account, const char *what,
				DBusMessage *reply)
{
	const char *text = NULL;

	if (!reply || dbus_message_get_type(reply) != DBUS_MESSAGE_TYPE_ERROR ||
	    !svc->hooks.call_failed)
		return reply;
	if (!dbus_message_get_args(reply, NULL, DBUS_TYPE_STRING, &text, DBUS_TYPE_INVALID))
		text = dbus_message_get_error_name(reply);
	svc->hooks.call_failed(svc->userdata, account, what, text);
	return reply;
}

DBusMessage *svc_call_reported(struct cpm_service *svc, const char *account, const char *what,
			       cpm_method_fn fn, struct cpm_bus *bus, DBusMessage *msg,
			       void *userdata)
{
	char *a = account ? cpm_strdup(account) : NULL, *w = cpm_strdup(what);
	DBusMessage *reply = svc_report_failure(svc, a, w, fn(bus, msg, userdata));

	free(a);
	free(w);
	return reply;
}

void svc_call_finish(struct svc_call *c, DBusMessage *reply)
{
	if (c->svc && c->failed_what)
		svc_report_failure(c->svc, c->failed_account, c->failed_what, reply);
	free(c->failed_account);
	free(c->failed_what);
	if (c->svc) {
		if (c->prev)
			c->prev->next = c->next;
		else
			c->svc->calls = c->next;
		if (c->next)
			c->next->prev = c->prev;
		if (reply && !dbus_message_get_no_reply(c->msg)) {
			cpm_bus_send(c->svc->bus, reply);
			reply = NULL;
		}
	}
	if (reply)
		dbus_message_unref(reply);
	dbus_message_unref(c->msg);
	if (c->free_data)
		c->free_data(c->data);
	free(c);
}

void svc_pairs_cb(int r, const char *reason, const char *const *pairs, void *userdata)
{
	struct svc_call *c = userdata;
	DBusMessageIter it, d, e;
	DBusMessage *reply;

	if (r < 0) {
		svc_call_finish(c, cpm_error_from_code(c->msg, r, reason));
		return;
	}
	reply = cpm_reply(c->msg);
	dbus_message_iter_init_append(reply, &it);
	if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{ss}", &d))
		cpm_oom();
	for (; pairs && pairs[0] && pairs[1]; pairs += 2) {
		if (!dbus_message_iter_open_container(&d, DBUS_TYPE_DICT_ENTRY, NULL, &e))
			cpm_oom();
		cpm_append_string(&e, pairs[0]);
		cpm_append_string(&e, pairs[1]);
		if (!dbus_message_iter_close_container(&d, &e))
			cpm_oom();
	}
	if (!dbus_message_iter_close_container(&it, &d))
		cpm_oom();
	svc_call_finish(c, reply);
}

DBusMessage *svc_request_started(struct svc_call *c, int r)
{
	DBusMessage *reply;

	if (r >= 0)
		return NULL;
	reply = cpm_error_from_code(c->msg, r, NULL);
	svc_call_finish(c, NULL);
	return reply;
}

DBusMessage *svc_offline_error(DBusMessage *msg, struct svc_account *a)
{
	return cpm_error(msg, CPM_ERROR_OFFLINE, "account '%s' is offline (Online is false)",
			 a->name);
}

DBusMessage *svc_invalid(DBusMessage *msg, char *err)
{
	DBusMessage *reply = cpm_error_invalid_args(msg, "%s", err);

	free(err);
	return reply;
}

/* ------------------------------------------------------------------------ */
/* Folder objects */

struct folder_read {
	bool found;
	char *account;
	char *name;
	char *special_use;
	uint32_t uidvalidity, messages, unseen;
	uint64_t highestmodseq;
};

static int folder_read_cb(const struct cpmsync_folder_info *fi, void *userdata)
{
	struct folder_read *fr = userdata;

	fr->found = true;
	fr->account = cpm_strdup(fi->account);
	fr->name = cpm_strdup(fi->name);
	fr->special_use = cpm_strdup(fi->special_use ? fi->special_use : "");
	fr->uidvalidity = fi->uidvalidity;
	fr->messages = fi->messages;
	fr->unseen = fi->unseen;
	fr->highestmodseq = fi->highestmodseq;
	return 0;
}

static void folder_free(struct svc_folder *f);

static struct svc_folder *folder_add(struct cpm_service *svc, struct svc_account *a,
				     const struct cpmsync_folder_info *fi)
{
	struct svc_folder *f;
	bool found;
	size_t i = folder_index(svc, fi->id, &found);

	if (found)
		return svc->folders[i];
	f = cpm_calloc(1, sizeof(*f));
	f->svc = svc;
	f->account = a;
	f->id = fi->id;
	f->path = cpm_asprintf("%s/folder%" PRId64, a->path, fi->id);
	f->name = cpm_strdup(fi->name);
	f->uidvalidity = fi->uidvalidity;
	f->messages = fi->messages;
	f->unseen = fi->unseen;
	f->highestmodseq = fi->highestmodseq;
	f->active = a->session ? cpmsync_session_get_active(a->session, fi->id) : false;
	svc_folder_classify(f, fi->special_use, NULL, NULL);
	if (svc->n_folders == svc->alloc_folders) {
		svc->alloc_folders = svc->alloc_folders ? 2 * svc->alloc_folders : 16;
		svc->folders =
			cpm_realloc(svc->folders, svc->alloc_folders * sizeof(*svc->folders));
	}
	memmove(&svc->folders[i + 1], &svc->folders[i],
		(svc->n_folders - i) * sizeof(*svc->folders));
	svc->folders[i] = f;
	svc->n_folders++;
	if (cpm_bus_add_object(svc->bus, f->path, &cpm_folder_interface, f, 0) < 0) {
		/* Cannot happen (paths are unique per id); keep the table sane. */
		svc->n_folders--;
		memmove(&svc->folders[i], &svc->folders[i + 1],
			(svc->n_folders - i) * sizeof(*svc->folders));
		folder_free(f);
		return NULL;
	}
	return f;
}

static void folder_free(struct svc_folder *f)
{
	free(f->path);
	free(f->name);
	free(f->special_use);
	free(f->conversation_id);
	free(f->contribution_id);
	free(f);
}

void svc_folder_remove(struct cpm_service *svc, int64_t id)
{
	bool found;
	size_t i = folder_index(svc, id, &found);
	struct svc_folder *f;

	if (!found)
		return;
	f = svc->folders[i];
	svc->n_folders--;
	memmove(&svc->folders[i], &svc->folders[i + 1],
		(svc->n_folders - i) * sizeof(*svc->folders));
	cpm_bus_remove_object(svc->bus, f->path);
	folder_free(f);
}

struct svc_folder *svc_folder_ensure(struct cpm_service *svc, int64_t id)
{
	struct svc_folder *f = svc_folder_by_id(svc, id);
	struct folder_read fr = { 0 };
	struct svc_account *a;

	if (f)
		return f;
	if (cpmsync_store_get_folder(svc->store, id, folder_read_cb, &fr) < 0 || !fr.found)
		goto out;
	a = svc_account_by_name(svc, fr.account);
	if (a) {
		struct cpmsync_folder_info fi = {
			.id = id,
			.account = fr.account,
			.name = fr.name,
			.uidvalidity = fr.uidvalidity,
			.highestmodseq = fr.highestmodseq,
			.messages = fr.messages,
			.unseen = fr.unseen,
			.special_use = fr.special_use,
		};

		f = folder_add(svc, a, &fi);
	}
out:
	free(fr.account);
	free(fr.name);
	free(fr.special_use);
	return f;
}

void svc_folder_refresh(struct svc_folder *f)
{
	struct cpm_service *svc = f->svc;
	struct folder_read fr = { 0 };
	const char *changed[12];
	unsigned n = 0;
	int r;

	r = cpmsync_store_get_folder(svc->store, f->id, folder_read_cb, &fr);
	if (r == -CPMSYNC_E_NOT_FOUND || (r >= 0 && !fr.found) ||
	    (fr.found && strcmp(fr.account, f->account->name))) {
		svc_folder_remove(svc, f->id);
		goto out;
	}
	if (r < 0)
		goto out;
	if (strcmp(fr.name, f->name)) {
		free(f->name);
		f->name = fr.name;
		fr.name = NULL;
		changed[n++] = "Name";
	}
	if (fr.uidvalidity != f->uidvalidity) {
		f->uidvalidity = fr.uidvalidity;
		changed[n++] = "UidValidity";
	}
	if (fr.highestmodseq != f->highestmodseq) {
		f->highestmodseq = fr.highestmodseq;
		changed[n++] = "HighestModseq";
	}
	if (fr.messages != f->messages) {
		f->messages = fr.messages;
		changed[n++] = "Messages";
	}
	if (fr.unseen != f->unseen) {
		f->unseen = fr.unseen;
		changed[n++] = "Unseen";
	}
	svc_folder_classify(f, fr.special_use, changed, &n);
	changed[n] = NULL;
	cpm_bus_properties_changed(svc->bus, f->path, changed);
out:
	free(fr.account);
	free(fr.name);
	free(fr.special_use);
}

/* ------------------------------------------------------------------------ */
/* Store changes -> signals */

struct mchange {
	int64_t folder_id, message_id;
	uint32_t seq;
	enum cpmsync_change_kind kind;
	uint32_t fields; /* MESSAGE_CHANGED: what changed */
};

static int mchange_cmp(const void *pa, const void *pb)
{
	const struct mchange *a = pa, *b = pb;

	if (a->folder_id != b->folder_id)
		return a->folder_id < b->folder_id ? -1 : 1;
	if (a->message_id != b->message_id)
		return a->message_id < b->message_id ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int id_cmp(const void *pa, const void *pb)
{
	int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;

	return a < b ? -1 : a > b;
}

struct msg_append {
	DBusMessageIter *array;
	bool full;
	uint32_t fields; /* !full: of the message asked for */
	unsigned n;
};

static int msg_append_cb(const struct cpmsync_message_info *m, void *userdata)
{
	struct msg_append *ma = userdata;

	if (ma->full)
		cpm_append_summary(ma->array, m);
	else
		cpm_append_change(ma->array, m, ma->fields);
	ma->n++;
	return 0;
}

/* MessagesAdded (full) or MessagesChanged of ids (with what changed of
 * each, fields[i]), in signals of at most CPM_MAX_SIGNAL_ENTRIES dicts. */
static void emit_messages(struct cpm_service *svc, struct svc_folder *f, const int64_t *ids,
			  const uint32_t *fields, size_t n, bool full)
{
	size_t i = 0;

	while (i < n) {
		DBusMessage *sig = cpm_bus_new_signal(f->path, CPM_IFACE_FOLDER,
						      full ? "MessagesAdded" : "MessagesChanged");
		DBusMessageIter it, a;
		struct msg_append ma = { .array = &a, .full = full };

		dbus_message_iter_init_append(sig, &it);
		if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "a{sv}", &a))
			cpm_oom();
		for (; i < n && ma.n < CPM_MAX_SIGNAL_ENTRIES; i++) {
			ma.fields = fields ? fields[i] : 0;
			/* Gone meanwhile (a later change says so): skipped. */
			cpmsync_store_get_message(svc->store, ids[i], msg_append_cb, &ma);
		}
		if (!dbus_message_iter_close_container(&it, &a))
			cpm_oom();
		if (ma.n)
			cpm_bus_send(svc->bus, sig);
		else
			dbus_message_unref(sig);
	}
}

static void emit_removed(struct cpm_service *svc, struct svc_folder *f, const int64_t *ids,
			 size_t n)
{
	for (size_t i = 0; i < n; i += CPM_MAX_SIGNAL_ENTRIES) {
		DBusMessage *sig = cpm_bus_new_signal(f->path, CPM_IFACE_FOLDER, "MessagesRemoved");
		size_t k = n - i < CPM_MAX_SIGNAL_ENTRIES ? n - i : CPM_MAX_SIGNAL_ENTRIES;
		const dbus_uint64_t *v = (const dbus_uint64_t *)(ids + i);
		DBusMessageIter it, a;

		dbus_message_iter_init_append(sig, &it);
		if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "t", &a) ||
		    !dbus_message_iter_append_fixed_array(&a, DBUS_TYPE_UINT64, &v, (int)k) ||
		    !dbus_message_iter_close_container(&it, &a))
			cpm_oom();
		cpm_bus_send(svc->bus, sig);
	}
}

static void process_changes(struct cpm_service *svc, const struct cpmsync_change *ch, size_t n)
{
	struct mchange *mc = cpm_calloc(n, sizeof(*mc));
	int64_t *folders = cpm_calloc(n, sizeof(*folders));
	int64_t *added = cpm_calloc(n, sizeof(int64_t));
	int64_t *changed = cpm_calloc(n, sizeof(int64_t));
	uint32_t *changed_fields = cpm_calloc(n, sizeof(uint32_t));
	int64_t *removed = cpm_calloc(n, sizeof(int64_t));
	size_t n_mc = 0, n_folders = 0, i, j;

	int64_t *convs = cpm_calloc(n, sizeof(int64_t));
	size_t n_convs = 0;

	for (i = 0; i < n; i++) {
		if (ch[i].kind == CPMSYNC_CHANGE_CONVERSATION_CHANGED) {
			convs[n_convs++] = ch[i].message_id;
			continue;
		}
		if (ch[i].kind == CPMSYNC_CHANGE_CONVERSATION_REMOVED) {
			svc_conversations_removed(svc, &ch[i].message_id, 1);
			continue;
		}
		folders[n_folders++] = ch[i].folder_id;
		if (ch[i].kind == CPMSYNC_CHANGE_MESSAGE_ADDED ||
		    ch[i].kind == CPMSYNC_CHANGE_MESSAGE_CHANGED ||
		    ch[i].kind == CPMSYNC_CHANGE_MESSAGE_REMOVED)
			mc[n_mc++] = (struct mchange){ ch[i].folder_id, ch[i].message_id,
						       (uint32_t)i, ch[i].kind, ch[i].fields };
	}
	qsort(folders, n_folders, sizeof(*folders), id_cmp);
	for (i = j = 0; i < n_folders; i++)
		if (!j || folders[j - 1] != folders[i])
			folders[j++] = folders[i];
	n_folders = j;

	/* New folders first, so that their messages have an object. */
	for (i = 0; i < n_folders; i++)
		svc_folder_ensure(svc, folders[i]);

	qsort(mc, n_mc, sizeof(*mc), mchange_cmp);
	for (i = 0; i < n_mc;) {
		int64_t fid = mc[i].folder_id;
		struct svc_folder *f = svc_folder_by_id(svc, fid);
		size_t na = 0, nc = 0, nr = 0;

		while (i < n_mc && mc[i].folder_id == fid) {
			size_t first = i;
			enum cpmsync_change_kind k0, k1;
			uint32_t fields = mc[i].fields;

			while (i + 1 < n_mc && mc[i + 1].folder_id == fid &&
			       mc[i + 1].message_id == mc[first].message_id)
				fields |= mc[++i].fields;
			k0 = mc[first].kind;
			k1 = mc[i].kind;
			if (k0 == CPMSYNC_CHANGE_MESSAGE_ADDED) {
				if (k1 != CPMSYNC_CHANGE_MESSAGE_REMOVED)
					added[na++] = mc[i].message_id;
			} else if (k1 == CPMSYNC_CHANGE_MESSAGE_REMOVED) {
				removed[nr++] = mc[i].message_id;
			} else if (k0 == CPMSYNC_CHANGE_MESSAGE_REMOVED) {
				/* Left and came back: announce it afresh. */
				added[na++] = mc[i].message_id;
			} else {
				/* Changed only: what changed, by any of its rows. */
				changed_fields[nc] = fields;
				changed[nc++] = mc[i].message_id;
			}
			i++;
		}
		if (!f)
			continue;
		emit_messages(svc, f, added, NULL, na, true);
		emit_messages(svc, f, changed, changed_fields, nc, false);
		emit_removed(svc, f, removed, nr);
	}

	/* Counts, names ...; folders gone are unexported. */
	for (i = 0; i < n_folders; i++) {
		struct svc_folder *f = svc_folder_by_id(svc, folders[i]);

		if (f)
			svc_folder_refresh(f);
	}
	/* After the messages' signals: a report's MessagesChanged comes first. */
	svc_emit_conversations_changed(svc, convs, n_convs);
	svc_emit_conversations_gone(svc);
	free(convs);
	free(mc);
	free(folders);
	free(added);
	free(changed);
	free(changed_fields);
	free(removed);
}

static void drain_defer_cb(struct cpmsync_loop_source *src, void *userdata);

/* One round: at most CPM_DRAIN_CHUNK changes signalled; how many. */
static int drain_round(struct cpm_service *svc)
{
	struct cpmsync_change *ch = cpm_calloc(CPM_DRAIN_CHUNK, sizeof(*ch));
	int n = cpmsync_store_take_changes(svc->store, ch, CPM_DRAIN_CHUNK);

	svc->last_drain_ms = cpmsync_now_ms();
	if (n > 0)
		process_changes(svc, ch, (size_t)n);
	free(ch);
	return n;
}

/* A round from the loop; a full one may have left more: the next round
 * at the next iteration, not at the next commit. */
static void drain(struct cpm_service *svc)
{
	if (drain_round(svc) == CPM_DRAIN_CHUNK && !svc->drain_defer &&
	    cpmsync_loop_defer(svc->loop, drain_defer_cb, svc, NULL, &svc->drain_defer) < 0)
		cpm_oom();
}

/*
 * Before ListConversations and ListConversationsPage: a commit's changes
 * wait up to CPM_DRAIN_DELAY_MS (or the next iteration) for their
 * signals, and a list read meanwhile shows what they made.  Drained
 * first, the conversations the list shows are those the store knows as
 * listed (cpmsync_store_take_conversations_gone()), so that one the next
 * commit takes away gets its ConversationRemoved; and the list comes
 * after the signals of what it shows.  Every round, not one: with more
 * changes pending than a round takes (a sync's batch of many messages),
 * the rest was signalled only after the list, which showed what they
 * made (and a later commit, drained with them, could bring a
 * conversation back to what its last signal said: none sent, the app
 * kept the list's value).  The drain still due later finds nothing.
 *
 * The sync engine's open batch is committed first (as a local write
 * does): its changes are recorded only at its commit, so a list read
 * inside it showed what no signal had said yet, and a ConversationChanged
 * went missing when the batch was then rolled back (a store or protocol
 * error), or when a later commit, drained together with the batch's,
 * brought a conversation back to what its last signal said (it is sent
 * only when it differs: sent_differs()).  A failed commit is the
 * engine's to report, as for a local write; the list reads what is left.
 */
void svc_drain_due(struct cpm_service *svc)
{
	(void)cpmsync_store_yield_batch(svc->store);
	if (svc->drain_defer || svc->drain_armed)
		while (drain_round(svc) == CPM_DRAIN_CHUNK)
			;
}

static void drain_defer_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpm_service *svc = userdata;

	(void)src;
	svc->drain_defer = NULL;
	drain(svc);
}

static void drain_timer_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpm_service *svc = userdata;

	(void)src;
	svc->drain_armed = false;
	if (!svc->drain_defer)
		drain(svc);
}

/*
 * From the store, right after a commit: must not call into the store.
 * At most one drain every CPM_DRAIN_DELAY_MS, each as soon as that allows:
 * the first change after a quiet spell is drained at the next iteration,
 * when the committer has returned to the loop (push: MessagesAdded without
 * a fixed delay), one that follows a drain sooner waits for the rest of
 * the interval, so that a burst of commits (a sync's batches) still makes
 * few rounds of signals.
 */
static void store_notify_cb(void *userdata)
{
	struct cpm_service *svc = userdata;
	uint64_t since;

	if (svc->drain_defer || svc->drain_armed)
		return; /* a drain is due and will see it */
	since = cpmsync_now_ms() - svc->last_drain_ms;
	if (!svc->last_drain_ms || since >= CPM_DRAIN_DELAY_MS) {
		if (cpmsync_loop_defer(svc->loop, drain_defer_cb, svc, NULL, &svc->drain_defer) < 0)
			cpm_oom();
		return;
	}
	if (svc->drain_timer) {
		cpmsync_loop_timer_set(svc->drain_timer, CPM_DRAIN_DELAY_MS - since, 0);
		svc->drain_armed = true;
		return;
	}
	if (cpmsync_loop_add_timer(svc->loop, CPM_DRAIN_DELAY_MS - since, 0, drain_timer_cb, svc,
				   NULL, &svc->drain_timer) < 0)
		cpm_oom();
	svc->drain_armed = true;
}

void cpm_service_others_wrote(struct cpm_service *svc)
{
	if (svc && svc->watching)
		store_notify_cb(svc);
}

/* ------------------------------------------------------------------------ */
/* Public API */

int cpm_service_new(struct cpmsync_loop *loop, struct cpmsync_store *store, const char *bus_address,
		    const char *version, const struct cpm_service_hooks *hooks, void *userdata,
		    struct cpm_service **ret, char **ret_error)
{
	struct cpm_service *svc;
	int r;

	if (!loop || !store || !ret)
		return -EINVAL;
	svc = cpm_calloc(1, sizeof(*svc));
	svc->loop = loop;
	svc->store = store;
	svc->version = cpm_strdup(version ? version : "");
	if (hooks)
		svc->hooks = *hooks;
	svc->userdata = userdata;
	r = cpm_bus_new(loop, bus_address, &svc->bus, ret_error);
	if (r < 0)
		goto fail;
	if (svc->hooks.bus_lost)
		cpm_bus_set_disconnected(svc->bus, svc->hooks.bus_lost, userdata);
	r = cpm_bus_add_object(svc->bus, CPM_ROOT_PATH, &cpm_manager_interface, svc,
			       CPM_OBJECT_MANAGER);
	if (r < 0) {
		if (ret_error)
			*ret_error =
				cpm_asprintf("cannot export %s: %s", CPM_ROOT_PATH, strerror(-r));
		goto fail;
	}
	r = cpmsync_store_watch(store, store_notify_cb, svc);
	if (r < 0) {
		if (ret_error)
			*ret_error = cpm_asprintf("cannot watch the store for changes: %s",
						  cpmsync_strerror(r));
		goto fail;
	}
	svc->watching = true;
	*ret = svc;
	return 0;
fail:
	cpm_service_free(svc);
	return r;
}

int cpm_service_start(struct cpm_service *svc, char **ret_error)
{
	if (!svc)
		return -EINVAL;
	return cpm_bus_request_name(svc->bus, CPM_BUS_NAME, ret_error);
}

static void account_free(struct svc_account *a)
{
	svc_conversations_forget(a);
	svc_conversations_sent_free(a);
	free(a->name);
	free(a->path);
	free(a->host);
	free(a->user);
	free(a->cpm_root);
	free(a->last_error);
	free(a->caps);
	free(a->failed_seen);
	free(a);
}

struct cpm_service *cpm_service_free(struct cpm_service *svc)
{
	if (!svc)
		return NULL;
	for (struct svc_call *c = svc->calls, *next; c; c = next) {
		next = c->next;
		c->svc = NULL; /* its callback frees it */
		c->next = c->prev = NULL;
	}
	svc->calls = NULL;
	svc->previewer = cpmsync_previewer_free(svc->previewer);
	if (svc->watching)
		cpmsync_store_watch(svc->store, NULL, NULL);
	cpmsync_loop_source_remove(svc->drain_timer);
	cpmsync_loop_source_remove(svc->drain_defer);
	svc->bus = cpm_bus_free(svc->bus);
	for (size_t i = 0; i < svc->n_folders; i++)
		folder_free(svc->folders[i]);
	free(svc->folders);
	for (size_t i = 0; i < svc->n_accounts; i++)
		account_free(svc->accounts[i]);
	free(svc->accounts);
	free(svc->version);
	free(svc->config_error);
	for (size_t i = 0; i < svc->n_config_warnings; i++)
		free(svc->config_warnings[i]);
	free(svc->config_warnings);
	free(svc->config_file);
	free(svc->database);
	free(svc);
	return NULL;
}

static char *caps_join(struct cpmsync_session *s)
{
	const char *const *caps = cpmsync_session_get_capabilities(s);
	struct cpm_str b = { 0 };

	for (; caps && *caps; caps++) {
		cpm_str_add(&b, *caps);
		cpm_str_add(&b, "\n");
	}
	return cpm_str_steal(&b);
}

static uint32_t pending_ops(struct svc_account *a)
{
	uint32_t n = 0;

	if (cpmsync_store_pending_operations(a->svc->store, a->name, &n) < 0)
		return a->pending;
	return n;
}

static int add_folder_cb(const struct cpmsync_folder_info *fi, void *userdata)
{
	struct svc_account *a = userdata;

	folder_add(a->svc, a, fi);
	return 0;
}

int cpm_service_add_account(struct cpm_service *svc, struct cpmsync_session *session,
			    const char *host, const char *user, const char *cpm_root)
{
	struct svc_account *a;
	const char *name;
	char *elem;
	int r;

	if (!svc || !session)
		return -EINVAL;
	name = cpmsync_session_name(session);
	if (!name || svc_account_by_name(svc, name))
		return -EEXIST;
	a = cpm_calloc(1, sizeof(*a));
	a->svc = svc;
	a->session = session;
	a->name = cpm_strdup(name);
	elem = cpm_path_escape(name);
	a->path = cpm_asprintf("%s/%s", CPM_ROOT_PATH, elem);
	free(elem);
	a->host = cpm_strdup(host ? host : "");
	a->user = cpm_strdup(user ? user : "");
	a->cpm_root = cpm_strdup(cpm_root ? cpm_root : "Default");
	a->state = cpmsync_session_state_name(cpmsync_session_get_state(session));
	a->push = cpmsync_push_state_name(cpmsync_session_get_push_state(session));
	a->last_error = cpm_strdup(cpmsync_session_get_last_error(session));
	a->caps = caps_join(session);
	a->last_sync = cpmsync_session_get_last_sync(session);
	a->last_activity = cpmsync_session_get_last_server_activity(session);
	a->online = cpmsync_session_get_online(session);
	a->pending = pending_ops(a);
	svc_account_check_failed(a, false);

	svc->accounts = cpm_realloc(svc->accounts, (svc->n_accounts + 1) * sizeof(*svc->accounts));
	svc->accounts[svc->n_accounts++] = a;
	r = cpm_bus_add_object(svc->bus, a->path, &cpm_account_interface, a, 0);
	if (r < 0) {
		svc->n_accounts--;
		account_free(a);
		return r;
	}
	cpmsync_store_foreach_folder(svc->store, a->name, add_folder_cb, a);
	return 0;
}

void cpm_service_remove_account(struct cpm_service *svc, const char *name)
{
	struct svc_account *a;
	size_t i;

	if (!svc || !name || !(a = svc_account_by_name(svc, name)))
		return;
	for (i = svc->n_folders; i-- > 0;)
		if (svc->folders[i]->account == a)
			svc_folder_remove(svc, svc->folders[i]->id);
	cpm_bus_remove_object(svc->bus, a->path);
	for (i = 0; i < svc->n_accounts; i++)
		if (svc->accounts[i] == a)
			break;
	memmove(&svc->accounts[i], &svc->accounts[i + 1],
		(svc->n_accounts - i - 1) * sizeof(*svc->accounts));
	svc->n_accounts--;
	account_free(a);
}

void cpm_service_set_account_details(struct cpm_service *svc, const char *name, const char *host,
				     const char *user)
{
	struct svc_account *a;
	const char *changed[3];
	unsigned n = 0;

	if (!svc || !name || !(a = svc_account_by_name(svc, name)))
		return;
	if (strcmp(a->host, host ? host : "")) {
		free(a->host);
		a->host = cpm_strdup(host);
		changed[n++] = "Host";
	}
	if (strcmp(a->user, user ? user : "")) {
		free(a->user);
		a->user = cpm_strdup(user);
		changed[n++] = "User";
	}
	changed[n] = NULL;
	cpm_bus_properties_changed(svc->bus, a->path, changed);
}

void svc_account_store_cpm_root(struct svc_account *a)
{
	/* The store knows the account once a sync or a local change made
	 * its row; until then this is tried again after each. */
	if (!a->cpm_root_in_store)
		a->cpm_root_in_store =
			cpmsync_store_set_cpm_root(a->svc->store, a->name, a->cpm_root) >= 0;
}

void cpm_service_set_account_cpm_root(struct cpm_service *svc, const char *name, const char *root)
{
	const char *changed[] = { "CpmRoot", NULL };
	struct svc_account *a;

	if (!svc || !name || !(a = svc_account_by_name(svc, name)))
		return;
	if (!strcmp(a->cpm_root, root ? root : "")) {
		svc_account_store_cpm_root(a);
		return;
	}
	free(a->cpm_root);
	a->cpm_root = cpm_strdup(root ? root : "");
	a->cpm_root_in_store = false;
	svc_account_store_cpm_root(a);
	cpm_bus_properties_changed(svc->bus, a->path, changed);
	/* The account's folders may have another Kind now. */
	for (size_t i = 0; i < svc->n_folders; i++)
		if (svc->folders[i]->account == a)
			svc_folder_refresh(svc->folders[i]);
}

void cpm_service_account_changed(struct cpm_service *svc, struct cpmsync_session *session)
{
	struct svc_account *a;
	const char *changed[12], *s;
	unsigned n = 0;
	uint64_t t;
	uint32_t u;
	char *str;
	bool b;

	if (!svc || !(a = account_by_session(svc, session)))
		return;
	s = cpmsync_session_state_name(cpmsync_session_get_state(session));
	if (!a->state || !s || strcmp(a->state, s)) {
		a->state = s;
		changed[n++] = "State";
	}
	s = cpmsync_push_state_name(cpmsync_session_get_push_state(session));
	if (!a->push || !s || strcmp(a->push, s)) {
		a->push = s;
		changed[n++] = "PushState";
	}
	s = cpmsync_session_get_last_error(session);
	if (strcmp(a->last_error, s ? s : "")) {
		free(a->last_error);
		a->last_error = cpm_strdup(s);
		changed[n++] = "LastError";
	}
	t = cpmsync_session_get_last_sync(session);
	if (t != a->last_sync) {
		a->last_sync = t;
		changed[n++] = "LastSync";
	}
	str = caps_join(session);
	if (strcmp(str, a->caps)) {
		free(a->caps);
		a->caps = str;
		changed[n++] = "ServerCapabilities";
	} else {
		free(str);
	}
	u = pending_ops(a);
	if (u != a->pending) {
		a->pending = u;
		changed[n++] = "PendingOperations";
	}
	t = cpmsync_session_get_last_server_activity(session);
	if (t != a->last_activity) {
		a->last_activity = t;
		changed[n++] = "LastServerActivity";
	}
	b = cpmsync_session_get_online(session);
	if (b != a->online) {
		a->online = b;
		changed[n++] = "Online";
	}
	if (svc_account_check_failed(a, true))
		changed[n++] = "FailedOperations";
	changed[n] = NULL;
	cpm_bus_properties_changed(svc->bus, a->path, changed);
}

void cpm_service_account_synced(struct cpm_service *svc, struct cpmsync_session *session, int r)
{
	static const char *const changed[] = { "SyncGeneration", NULL };
	struct svc_account *a;

	if (!svc || !(a = account_by_session(svc, session)))
		return;
	svc_account_store_cpm_root(a);
	if (r < 0)
		return;
	a->sync_generation++;
	cpm_bus_properties_changed(svc->bus, a->path, changed);
}

void svc_changed_locally(struct svc_account *a)
{
	svc_account_store_cpm_root(a);
	cpm_service_account_changed(a->svc, a->session);
	cpmsync_session_changed_locally(a->session);
}

void svc_flags_changed_locally(struct svc_account *a)
{
	svc_account_store_cpm_root(a);
	cpm_service_account_changed(a->svc, a->session);
	cpmsync_session_replay_soon(a->session);
}

void cpm_service_sync_progress(struct cpm_service *svc, struct cpmsync_session *session,
			       const char *folder, uint32_t done, uint32_t total)
{
	struct svc_account *a;
	DBusMessage *sig;
	DBusMessageIter it;

	if (!svc || !(a = account_by_session(svc, session)))
		return;
	sig = cpm_bus_new_signal(a->path, CPM_IFACE_ACCOUNT, "SyncProgress");
	dbus_message_iter_init_append(sig, &it);
	cpm_append_string(&it, folder ? folder : "");
	if (!dbus_message_iter_append_basic(&it, DBUS_TYPE_UINT32, &done) ||
	    !dbus_message_iter_append_basic(&it, DBUS_TYPE_UINT32, &total))
		cpm_oom();
	cpm_bus_send(svc->bus, sig);
}
