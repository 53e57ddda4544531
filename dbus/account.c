/* SPDX-License-Identifier: GPL-2.0-or-later */
/* org.cpmsync.Account1 on /org/cpmsync/<account>. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cpmsync/conversation.h>
#include <cpmsync/cpm-folders.h>
#include <cpmsync/error.h>
#include <cpmsync/limits.h>
#include <cpmsync/ops.h>

#include "dbus-util.h"
#include "service-private.h"

static DBusMessage *folder_path_reply(struct svc_account *a, DBusMessage *msg, int64_t id,
				      const char *name)
{
	struct svc_folder *f = svc_folder_ensure(a->svc, id);
	DBusMessage *reply;

	if (!f)
		return cpm_error(msg, CPM_ERROR_NOT_FOUND, "no folder '%s' in account '%s'", name,
				 a->name);
	reply = cpm_reply(msg);
	if (!dbus_message_append_args(reply, DBUS_TYPE_OBJECT_PATH, &f->path, DBUS_TYPE_INVALID))
		cpm_oom();
	return reply;
}

static DBusMessage *sync_method(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;

	(void)bus;
	/* Nothing to sync with: said, not a success that does nothing. */
	if (!cpmsync_session_get_online(a->session))
		return svc_offline_error(msg, a);
	cpmsync_session_sync_now(a->session);
	return cpm_reply(msg);
}

/*
 * Ours, beyond the contract: SyncAll(), as Sync() but always a full pass
 * (LIST and every folder's status, as a poll), never the NOOP that answers a
 * Sync() under NOTIFY with nothing pending; cpmctl sync calls it.  Why:
 * cpmsync_session_sync_full().
 */
static DBusMessage *sync_all_method(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;

	(void)bus;
	if (!cpmsync_session_get_online(a->session))
		return svc_offline_error(msg, a);
	cpmsync_session_sync_full(a->session);
	return cpm_reply(msg);
}

static DBusMessage *find_folder(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	DBusMessage *reply;
	const char *name;
	int64_t id;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
	if ((reply = svc_resolve_folder(a, msg, "name", name, false, &id)))
		return reply;
	return folder_path_reply(a, msg, id, name);
}

static DBusMessage *create_folder_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	DBusMessage *reply;
	const char *name;
	int64_t id;
	char *err;
	int r;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
	if ((err = cpm_check_name("name", name, false)) ||
	    (err = svc_check_synced(a, "name", name)))
		return svc_invalid(msg, err);
	r = cpmsync_op_create_folder(a->svc->store, a->name, name, &id);
	if (r < 0)
		return svc_store_error_arg(a->svc, msg, r, "name");
	reply = folder_path_reply(a, msg, id, name);
	svc_changed_locally(a);
	return reply;
}

static DBusMessage *rename_folder_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	const char *name, *new_name;
	char *err;
	int r;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_STRING, &new_name,
			      DBUS_TYPE_INVALID);
	if ((err = cpm_check_name("name", name, false)) ||
	    (err = cpm_check_name("new_name", new_name, false)) ||
	    (err = svc_check_synced(a, "new_name", new_name)))
		return svc_invalid(msg, err);
	/* The one refusal about name (besides NotFound), told here; the
	 * store's other refusals of an invalid argument are about new_name
	 * (not a valid name, too long with the folder's children, below
	 * the folder itself). */
	if (!strcasecmp(name, "INBOX"))
		return cpm_error_invalid_args(msg, "name: INBOX cannot be renamed");
	r = cpmsync_op_rename_folder(a->svc->store, a->name, name, new_name);
	/* To its own name: the store's -EEXIST (its text says so), yet no
	 * conflict with another folder but a new_name that names nothing
	 * new, as one below the folder is. */
	if (r == -EEXIST && !strcmp(name, new_name))
		r = -EINVAL;
	if (r < 0)
		return svc_store_error_arg(a->svc, msg, r, "new_name");
	svc_changed_locally(a);
	return cpm_reply(msg);
}

static DBusMessage *delete_folder_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	const char *name;
	char *err;
	int r;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
	if ((err = cpm_check_name("name", name, false)))
		return svc_invalid(msg, err);
	r = cpmsync_op_delete_folder(a->svc->store, a->name, name);
	if (r < 0)
		return svc_store_error_arg(a->svc, msg, r, "name");
	svc_changed_locally(a);
	return cpm_reply(msg);
}

/* ------------------------------------------------------------------------ */
/* CPM objects and conversations (contract README) */

struct store_object_ctx {
	char *account;
	const char **flags;
	int64_t date;
};

static void store_object_ctx_free(void *p)
{
	struct store_object_ctx *x = p;

	free(x->account);
	free(x->flags);
	free(x);
}

/* Filing's check of the folder: not one this account drops. */
struct synced_check {
	const struct svc_account *a;
	char *err;
};

static int check_synced(const char *folder, void *userdata)
{
	struct synced_check *c = userdata;

	c->err = svc_check_synced(c->a, "content", folder);
	return c->err ? -EINVAL : 0;
}

static DBusMessage *store_object_from_fd(struct cpm_service *svc, DBusMessage *msg, int fd,
					 uint64_t size, void *ctx)
{
	struct store_object_ctx *x = ctx;
	struct svc_account *a = svc_account_by_name(svc, x->account);
	struct synced_check c = { a, NULL };
	int64_t folder_id, id;
	struct svc_folder *f;
	dbus_uint64_t v;
	DBusMessage *reply;
	int r;

	if (!a)
		return cpm_error(msg, CPM_ERROR_NOT_FOUND, "account '%s' is gone", x->account);
	/* The header read once: where it goes, checked, then filed there
	 * (or the copy already there answered: a retry, r == 1). */
	r = cpmsync_op_file_object_fd(svc->store, a->name, a->cpm_root, fd, size, x->flags, x->date,
				      check_synced, &c, &folder_id, &id);
	if (c.err)
		return svc_invalid(msg, c.err);
	if (r < 0)
		return svc_store_error(svc, msg, r);
	f = svc_folder_ensure(svc, folder_id);
	if (!f)
		reply = cpm_error(msg, CPM_ERROR_FAILED,
				  "stored as message %" PRId64 " but its folder cannot be exported",
				  id);
	else {
		reply = cpm_reply(msg);
		v = (dbus_uint64_t)id;
		if (!dbus_message_append_args(reply, DBUS_TYPE_OBJECT_PATH, &f->path,
					      DBUS_TYPE_UINT64, &v, DBUS_TYPE_INVALID))
			cpm_oom();
	}
	if (r == 0)
		svc_changed_locally(a);
	return reply;
}

static DBusMessage *store_object(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	struct cpm_service *svc = a->svc;
	/* A copy: the report comes after done(), which may change a. */
	char *account = cpm_strdup(a->name);
	struct store_object_ctx *x;
	const char **flags = NULL;
	DBusMessage *reply;
	int64_t date;
	char *err;
	int fd;

	(void)bus;
	if ((err = svc_read_fd_flags_date(msg, &fd, &flags, &date))) {
		reply = svc_report_failure(svc, account, "StoreObject", svc_invalid(msg, err));
	} else {
		x = cpm_calloc(1, sizeof(*x));
		x->account = cpm_strdup(a->name);
		x->flags = flags;
		x->date = date;
		reply = svc_take_content_fd(svc, msg, fd, store_object_from_fd, x,
					    store_object_ctx_free, account, "StoreObject");
	}
	free(account);
	return reply;
}

char *svc_check_synced(const struct svc_account *a, const char *arg, const char *name)
{
	if (cpmsync_session_syncs_folder(a->session, name))
		return NULL;
	return cpm_asprintf("%s: '%s' is not in the account's folders setting: it would be "
			    "created on the server but not kept here",
			    arg, name);
}

char *svc_check_conversation_id(const char *arg, const char *v)
{
	if (!*v)
		return cpm_asprintf("%s: empty", arg);
	if (strlen(v) > CPMSYNC_FOLDER_NAME_MAX)
		return cpm_asprintf("%s: longer than %d bytes", arg, CPMSYNC_FOLDER_NAME_MAX);
	if (strchr(v, '/'))
		return cpm_asprintf("%s: '%.64s' contains '/'", arg, v);
	return NULL;
}

struct unseen_ids {
	int64_t *ids;
	size_t n, alloc;
};

static int collect_unseen_cb(const struct cpmsync_message_info *m, void *userdata)
{
	struct unseen_ids *u = userdata;
	const char *p = m->flags;
	bool seen = false;

	/* flags: space-separated, canonical case for system flags */
	while (p && *p && !seen) {
		size_t len = strcspn(p, " ");

		seen = len == 5 && !strncmp(p, "\\Seen", 5);
		p += len;
		while (*p == ' ')
			p++;
	}
	if (seen)
		return 0;
	if (u->n == u->alloc) {
		u->alloc = u->alloc ? 2 * u->alloc : 64;
		u->ids = cpm_realloc(u->ids, u->alloc * sizeof(*u->ids));
	}
	u->ids[u->n++] = m->id;
	return 0;
}

static int conversation_folder_cb(const struct cpmsync_conversation_info *c, void *userdata)
{
	char **ret = userdata;

	*ret = cpm_strdup(c->folder);
	return 0;
}

static DBusMessage *mark_conversation_read_call(struct cpm_bus *bus, DBusMessage *msg,
						void *userdata)
{
	static const char *const seen[] = { "\\Seen", NULL };
	struct svc_account *a = userdata;
	struct unseen_ids u = { 0 };
	const char *conversation_id;
	char *conv_folder = NULL;
	bool known = false;
	char *err;
	int r = 0;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &conversation_id, DBUS_TYPE_INVALID);
	if ((err = svc_check_conversation_id("conversation_id", conversation_id)))
		return svc_invalid(msg, err);
	/* The store's conversation of that id names its conversation folder
	 * (ListConversations' Folder); its session folders are below it. */
	if (cpmsync_store_get_conversation(a->svc->store, a->name, conversation_id,
					   conversation_folder_cb, &conv_folder) < 0) {
		free(conv_folder);
		conv_folder = NULL;
	}
	/* Only a conversation ListConversations lists (ListConversationMessages
	 * says NotFound for the others too). */
	known = conv_folder != NULL;
	/* The conversation's folders: every folder of that ConversationId
	 * (Folder1.ConversationId is the store's conversation's: its
	 * conversation folders, its session history folders), and those
	 * below its Folder. */
	for (size_t i = 0; i < a->svc->n_folders && r >= 0; i++) {
		struct svc_folder *f = a->svc->folders[i];
		size_t len = conv_folder ? strlen(conv_folder) : 0;
		bool in_conv = conv_folder &&
			       (strcmp(f->name, conv_folder) == 0 ||
				(strncmp(f->name, conv_folder, len) == 0 && f->name[len] == '/' &&
				 strcmp(f->kind, "session-history") == 0));

		if (!known || f->account != a || strcmp(f->kind, "user") == 0 ||
		    (!in_conv && strcmp(f->conversation_id, conversation_id) != 0))
			continue;
		r = cpmsync_store_foreach_message(a->svc->store, f->id, 0, 0, collect_unseen_cb,
						  &u);
	}
	free(conv_folder);
	if (r < 0) {
		free(u.ids);
		return svc_store_error(a->svc, msg, r);
	}
	if (!known)
		return cpm_error(msg, CPM_ERROR_NOT_FOUND,
				 "conversation_id: no conversation '%s' in account '%s'",
				 conversation_id, a->name);
	if (u.n) {
		r = cpmsync_op_set_flags(a->svc->store, u.ids, u.n, seen, NULL);
		free(u.ids);
		if (r < 0)
			return svc_store_error(a->svc, msg, r);
		svc_changed_locally(a);
	}
	return cpm_reply(msg);
}

/* ------------------------------------------------------------------------ */
/* Requests that need the server */

static void string_cb(int r, const char *reason, const char *value, void *userdata)
{
	struct svc_call *c = userdata;
	DBusMessageIter it;
	DBusMessage *reply;

	if (r < 0) {
		svc_call_finish(c, cpm_error_from_code(c->msg, r, reason));
		return;
	}
	reply = cpm_reply(c->msg);
	dbus_message_iter_init_append(reply, &it);
	cpm_append_string(&it, value ? value : "");
	svc_call_finish(c, reply);
}

/*
 * GetMetadata with read-your-writes (contract "Online and offline"): an
 * entry with a SetMetadata still journaled (not yet on the server, or a
 * failed operation whose local effect stays) answers with that value ("":
 * removed, so absent from the reply); the others with the server's.
 *
 * The local values are read again when the server's answer comes: the
 * session runs requests between syncs on its one connection, so a set
 * still journaled then was not applied before the GETMETADATA was
 * answered, and one gone from the journal by then was applied before it
 * was sent (the server's value is the newer).
 *
 * Offline: when every requested entry has a local value, the answer is
 * those values, since the server's cannot change it (they replace it once
 * the sets are replayed); an answer that needs the server's value for
 * any entry is Offline, as the contract says.  Online, such a request is
 * answered from the store as well, without a round trip.
 */
struct metadata_call {
	char *account;
	int64_t folder_id;
	const char **entries; /* NULL-terminated, into the message */
	size_t n;
};

static void metadata_call_free(void *data)
{
	struct metadata_call *m = data;

	free(m->account);
	free(m->entries);
	free(m);
}

static void free_values(char **values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(values[i]);
	free(values);
}

static void append_pair(DBusMessageIter *d, const char *key, const char *value)
{
	DBusMessageIter e;

	if (!dbus_message_iter_open_container(d, DBUS_TYPE_DICT_ENTRY, NULL, &e))
		cpm_oom();
	cpm_append_string(&e, key);
	cpm_append_string(&e, value);
	if (!dbus_message_iter_close_container(d, &e))
		cpm_oom();
}

/* The reply: the server's pairs (NULL: none) for entries without a local
 * value, then the local values that are not removals. */
static DBusMessage *metadata_reply(DBusMessage *msg, const struct metadata_call *m,
				   const char *const *pairs, char **local)
{
	DBusMessage *reply = cpm_reply(msg);
	DBusMessageIter it, d;

	dbus_message_iter_init_append(reply, &it);
	if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{ss}", &d))
		cpm_oom();
	for (; pairs && pairs[0] && pairs[1]; pairs += 2) {
		bool mine = false;

		for (size_t i = 0; i < m->n && !mine; i++)
			mine = local[i] && strcasecmp(pairs[0], m->entries[i]) == 0;
		if (!mine)
			append_pair(&d, pairs[0], pairs[1]);
	}
	for (size_t i = 0; i < m->n; i++)
		if (local[i] && local[i][0])
			append_pair(&d, m->entries[i], local[i]);
	if (!dbus_message_iter_close_container(&it, &d))
		cpm_oom();
	return reply;
}

static void metadata_cb(int r, const char *reason, const char *const *pairs, void *userdata)
{
	struct svc_call *c = userdata;
	const struct metadata_call *m = c->data;
	DBusMessage *reply;
	char **local;

	if (r < 0) {
		svc_call_finish(c, cpm_error_from_code(c->msg, r, reason));
		return;
	}
	if (!c->svc) { /* orphaned: nobody to answer */
		svc_call_finish(c, NULL);
		return;
	}
	local = cpm_calloc(m->n, sizeof(*local));
	r = cpmsync_store_pending_metadata(c->svc->store, m->account, m->folder_id, m->entries,
					   m->n, local);
	if (r < 0) {
		free(local);
		svc_call_finish(c, svc_store_error(c->svc, c->msg, r));
		return;
	}
	reply = metadata_reply(c->msg, m, pairs, local);
	free_values(local, m->n);
	svc_call_finish(c, reply); /* frees m */
}

static DBusMessage *get_metadata(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	const char *folder, **entries = NULL;
	struct metadata_call *m;
	DBusMessageIter it;
	DBusMessage *reply;
	struct svc_call *c;
	char **local;
	size_t n = 0;
	int64_t id;
	char *err;
	int r;

	(void)bus;
	dbus_message_iter_init(msg, &it);
	dbus_message_iter_get_basic(&it, &folder);
	dbus_message_iter_next(&it);
	if ((reply = svc_resolve_folder(a, msg, "folder", folder, true, &id)))
		return reply;
	if ((err = cpm_read_strv(&it, "entries", CPM_MAX_METADATA, false, &entries)))
		return svc_invalid(msg, err);
	if (!entries[0]) {
		free(entries);
		return cpm_error_invalid_args(msg, "entries: at least one entry is needed");
	}
	for (; entries[n]; n++) {
		if ((err = cpm_check_metadata_entry("entries", entries[n]))) {
			free(entries);
			return svc_invalid(msg, err);
		}
	}
	m = cpm_calloc(1, sizeof(*m));
	m->account = cpm_strdup(a->name);
	m->folder_id = id;
	m->entries = entries;
	m->n = n;
	local = cpm_calloc(n, sizeof(*local));
	r = cpmsync_store_pending_metadata(a->svc->store, a->name, id, entries, n, local);
	if (r < 0 || (size_t)r == n || !cpmsync_session_get_online(a->session)) {
		if (r < 0)
			reply = svc_store_error(a->svc, msg, r);
		else if ((size_t)r == n)
			reply = metadata_reply(msg, m, NULL, local);
		else
			reply = svc_offline_error(msg, a);
		free_values(local, n);
		metadata_call_free(m);
		return reply;
	}
	free_values(local, n);
	c = svc_call_new(a->svc, msg);
	c->data = m;
	c->free_data = metadata_call_free;
	return svc_request_started(
		c, cpmsync_session_get_metadata(a->session, id, entries, metadata_cb, c));
}

static DBusMessage *set_metadata_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	struct cpmsync_metadata_entry *entries;
	DBusMessageIter it, d, e;
	DBusMessage *reply;
	const char *folder;
	unsigned n = 0;
	int64_t id;
	int r;

	(void)bus;
	dbus_message_iter_init(msg, &it);
	dbus_message_iter_get_basic(&it, &folder);
	dbus_message_iter_next(&it);
	if ((reply = svc_resolve_folder(a, msg, "folder", folder, true, &id)))
		return reply;
	/* Check everything before changing anything. */
	if ((reply = svc_check_values(msg, &it, CPM_MAX_METADATA, cpm_check_metadata_entry, &n)))
		return reply;
	/* All entries in one transaction: set together or not at all. */
	entries = cpm_calloc(n ? n : 1, sizeof(*entries));
	n = 0;
	dbus_message_iter_recurse(&it, &d);
	for (; dbus_message_iter_get_arg_type(&d) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&d), n++) {
		dbus_message_iter_recurse(&d, &e);
		dbus_message_iter_get_basic(&e, &entries[n].entry);
		dbus_message_iter_next(&e);
		dbus_message_iter_get_basic(&e, &entries[n].value);
	}
	r = cpmsync_op_set_metadata_entries(a->svc->store, a->name, folder, entries, n);
	free(entries);
	if (r < 0)
		return svc_store_error(a->svc, msg, r);
	svc_changed_locally(a);
	return cpm_reply(msg);
}

/* GetAcl and MyRights ask the server about the folder named by the one
 * argument: NULL and its id, or the error reply (no such folder, offline). */
static DBusMessage *online_folder_arg(struct svc_account *a, DBusMessage *msg, int64_t *ret_id)
{
	DBusMessage *reply;
	const char *folder;

	dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &folder, DBUS_TYPE_INVALID);
	if ((reply = svc_resolve_folder(a, msg, "folder", folder, false, ret_id)))
		return reply;
	if (!cpmsync_session_get_online(a->session))
		return svc_offline_error(msg, a);
	return NULL;
}

static DBusMessage *get_acl(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	DBusMessage *reply;
	struct svc_call *c;
	int64_t id;

	(void)bus;
	if ((reply = online_folder_arg(a, msg, &id)))
		return reply;
	c = svc_call_new(a->svc, msg);
	return svc_request_started(c, cpmsync_session_get_acl(a->session, id, svc_pairs_cb, c));
}

static DBusMessage *set_acl_common(struct svc_account *a, DBusMessage *msg, const char *folder,
				   const char *identifier, const char *rights)
{
	DBusMessage *reply;
	int64_t id;
	char *err;
	int r;

	if ((reply = svc_resolve_folder(a, msg, "folder", folder, false, &id)))
		return reply;
	if ((err = cpm_check_acl_identifier("identifier", identifier)))
		return svc_invalid(msg, err);
	if ((err = cpm_check_rights("rights", rights)))
		return svc_invalid(msg, err);
	r = cpmsync_op_set_acl(a->svc->store, a->name, folder, identifier, rights);
	if (r < 0)
		return svc_store_error(a->svc, msg, r);
	svc_changed_locally(a);
	return cpm_reply(msg);
}

static DBusMessage *set_acl_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	const char *folder, *identifier, *rights;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &folder, DBUS_TYPE_STRING, &identifier,
			      DBUS_TYPE_STRING, &rights, DBUS_TYPE_INVALID);
	return set_acl_common(userdata, msg, folder, identifier, rights);
}

static DBusMessage *delete_acl_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	const char *folder, *identifier;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &folder, DBUS_TYPE_STRING, &identifier,
			      DBUS_TYPE_INVALID);
	return set_acl_common(userdata, msg, folder, identifier, "");
}

static DBusMessage *my_rights(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	DBusMessage *reply;
	struct svc_call *c;
	int64_t id;

	(void)bus;
	if ((reply = online_folder_arg(a, msg, &id)))
		return reply;
	c = svc_call_new(a->svc, msg);
	return svc_request_started(c, cpmsync_session_my_rights(a->session, id, string_cb, c));
}

/* ------------------------------------------------------------------------ */
/* Failed operations (contract README "Failed operations") */

/* One failed operation as the contract's dict, into an open aa{sv}. */
static void append_failed_op(DBusMessageIter *array, const struct cpmsync_failed_op *op)
{
	dbus_uint64_t id = (dbus_uint64_t)op->id;
	dbus_uint32_t tries = op->tries;
	dbus_int64_t time = op->time;
	DBusMessageIter d, e, v, ids;

	if (!dbus_message_iter_open_container(array, DBUS_TYPE_ARRAY, "{sv}", &d))
		cpm_oom();
	cpm_dict_append(&d, "Id", DBUS_TYPE_UINT64, &id);
	cpm_dict_append(&d, "Operation", DBUS_TYPE_STRING, &op->operation);
	cpm_dict_append(&d, "Folder", DBUS_TYPE_STRING, &op->folder);
	{
		static const char *const key = "MessageIds";

		if (!dbus_message_iter_open_container(&d, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
		    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) ||
		    !dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "at", &v) ||
		    !dbus_message_iter_open_container(&v, DBUS_TYPE_ARRAY, "t", &ids))
			cpm_oom();
		for (size_t i = 0; i < op->n_message_ids; i++) {
			dbus_uint64_t m = (dbus_uint64_t)op->message_ids[i];

			if (!dbus_message_iter_append_basic(&ids, DBUS_TYPE_UINT64, &m))
				cpm_oom();
		}
		if (!dbus_message_iter_close_container(&v, &ids) ||
		    !dbus_message_iter_close_container(&e, &v) ||
		    !dbus_message_iter_close_container(&d, &e))
			cpm_oom();
	}
	cpm_dict_append(&d, "Code", DBUS_TYPE_STRING, &op->code);
	cpm_dict_append(&d, "Text", DBUS_TYPE_STRING, &op->text);
	cpm_dict_append(&d, "Tries", DBUS_TYPE_UINT32, &tries);
	cpm_dict_append(&d, "Time", DBUS_TYPE_INT64, &time);
	if (!dbus_message_iter_close_container(array, &d))
		cpm_oom();
}

static int list_failed_cb(const struct cpmsync_failed_op *op, void *userdata)
{
	append_failed_op(userdata, op);
	return 0;
}

static DBusMessage *list_failed(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_account *a = userdata;
	DBusMessageIter it, array;
	DBusMessage *reply;
	int r;

	(void)bus;
	reply = cpm_array_reply(msg, &it, &array);
	r = cpmsync_store_foreach_failed(a->svc->store, a->name, list_failed_cb, &array);
	cpm_array_reply_close(&it, &array);
	/* An account without a row in the store has none. */
	if (r < 0 && r != -CPMSYNC_E_NOT_FOUND) {
		dbus_message_unref(reply);
		return svc_store_error(a->svc, msg, r);
	}
	return reply;
}

static DBusMessage *retry_or_discard(DBusMessage *msg, struct svc_account *a,
				     int (*op)(struct cpmsync_store *, const char *, int64_t))
{
	dbus_uint64_t id;
	int r;

	dbus_message_get_args(msg, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID);
	/* No operation has such an id: NotFound, as for any id that names
	 * none, in the store's words. */
	if (id == 0 || id > INT64_MAX)
		return cpm_error(msg, CPM_ERROR_NOT_FOUND,
				 "account \"%s\" has no failed operation %llu", a->name,
				 (unsigned long long)id);
	r = op(a->svc->store, a->name, (int64_t)id);
	if (r < 0)
		return svc_store_error(a->svc, msg, r);
	svc_changed_locally(a);
	return cpm_reply(msg);
}

static DBusMessage *retry_operation_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	(void)bus;
	return retry_or_discard(msg, userdata, cpmsync_op_retry);
}

static DBusMessage *discard_operation_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	(void)bus;
	return retry_or_discard(msg, userdata, cpmsync_op_discard_failed);
}

struct failed_walk {
	struct svc_account *a;
	struct svc_failed_seen *seen;
	size_t n, alloc;
	bool announce;
};

static int check_failed_cb(const struct cpmsync_failed_op *op, void *userdata)
{
	struct failed_walk *w = userdata;
	struct svc_account *a = w->a;
	bool known = false;

	for (size_t i = 0; i < a->n_failed_seen && !known; i++)
		known = a->failed_seen[i].id == op->id && a->failed_seen[i].tries == op->tries;
	if (!known && w->announce) {
		DBusMessage *sig =
			cpm_bus_new_signal(a->path, CPM_IFACE_ACCOUNT, "OperationFailed");
		DBusMessageIter it;

		dbus_message_iter_init_append(sig, &it);
		append_failed_op(&it, op);
		cpm_bus_send(a->svc->bus, sig);
	}
	if (w->n == w->alloc) {
		w->alloc = w->alloc ? w->alloc * 2 : 8;
		w->seen = cpm_realloc(w->seen, w->alloc * sizeof(*w->seen));
	}
	w->seen[w->n++] = (struct svc_failed_seen){ op->id, op->tries };
	return 0;
}

bool svc_account_check_failed(struct svc_account *a, bool announce)
{
	struct failed_walk w = { .a = a, .announce = announce };
	bool changed;
	int r;

	r = cpmsync_store_foreach_failed(a->svc->store, a->name, check_failed_cb, &w);
	if (r < 0 && r != -CPMSYNC_E_NOT_FOUND) {
		free(w.seen);
		return false;
	}
	free(a->failed_seen);
	a->failed_seen = w.seen;
	a->n_failed_seen = w.n;
	changed = a->failed != (uint32_t)w.n;
	a->failed = (uint32_t)w.n;
	return changed;
}

/* ------------------------------------------------------------------------ */
/* Properties */

#define A ((struct svc_account *)userdata)

static void put_s(DBusMessageIter *iter, const char *s)
{
	cpm_append_string(iter, s ? s : "");
}

static void put_basic(DBusMessageIter *iter, int type, const void *v)
{
	if (!dbus_message_iter_append_basic(iter, type, v))
		cpm_oom();
}

static void get_name(DBusMessageIter *iter, void *userdata)
{
	put_s(iter, A->name);
}

static void get_host(DBusMessageIter *iter, void *userdata)
{
	put_s(iter, A->host);
}

static void get_user(DBusMessageIter *iter, void *userdata)
{
	put_s(iter, A->user);
}

static void get_state(DBusMessageIter *iter, void *userdata)
{
	put_s(iter, cpmsync_session_state_name(cpmsync_session_get_state(A->session)));
}

static void get_last_error(DBusMessageIter *iter, void *userdata)
{
	put_s(iter, cpmsync_session_get_last_error(A->session));
}

static void get_last_sync(DBusMessageIter *iter, void *userdata)
{
	dbus_uint64_t t = cpmsync_session_get_last_sync(A->session);

	put_basic(iter, DBUS_TYPE_UINT64, &t);
}

static void get_caps(DBusMessageIter *iter, void *userdata)
{
	const char *const *caps = cpmsync_session_get_capabilities(A->session);
	DBusMessageIter a;

	if (!dbus_message_iter_open_container(iter, DBUS_TYPE_ARRAY, "s", &a))
		cpm_oom();
	for (; caps && *caps; caps++)
		cpm_append_string(&a, *caps);
	if (!dbus_message_iter_close_container(iter, &a))
		cpm_oom();
}

static void get_pending(DBusMessageIter *iter, void *userdata)
{
	dbus_uint32_t n = A->pending;

	cpmsync_store_pending_operations(A->svc->store, A->name, &n);
	put_basic(iter, DBUS_TYPE_UINT32, &n);
}

static void get_cpm_root(DBusMessageIter *iter, void *userdata)
{
	put_s(iter, A->cpm_root);
}

static void get_failed(DBusMessageIter *iter, void *userdata)
{
	dbus_uint32_t n = A->failed;

	if (cpmsync_store_failed_count(A->svc->store, A->name, &n) < 0)
		n = A->failed;
	put_basic(iter, DBUS_TYPE_UINT32, &n);
}

static void get_push_state(DBusMessageIter *iter, void *userdata)
{
	put_s(iter, cpmsync_push_state_name(cpmsync_session_get_push_state(A->session)));
}

static void get_last_activity(DBusMessageIter *iter, void *userdata)
{
	dbus_uint64_t t = cpmsync_session_get_last_server_activity(A->session);

	put_basic(iter, DBUS_TYPE_UINT64, &t);
}

static void get_sync_generation(DBusMessageIter *iter, void *userdata)
{
	dbus_uint64_t g = A->sync_generation;

	put_basic(iter, DBUS_TYPE_UINT64, &g);
}

static void get_online(DBusMessageIter *iter, void *userdata)
{
	dbus_bool_t b = cpmsync_session_get_online(A->session);

	put_basic(iter, DBUS_TYPE_BOOLEAN, &b);
}

static DBusMessage *set_online(DBusMessage *msg, DBusMessageIter *value, void *userdata)
{
	dbus_bool_t b;

	(void)msg;
	dbus_message_iter_get_basic(value, &b);
	cpmsync_session_set_online(A->session, b);
	/* Emitted from the session's changed callback, or here at once. */
	cpm_service_account_changed(A->svc, A->session);
	return NULL;
}

#undef A

/* fn, a call that changes something of account a, its failure reported. */
static DBusMessage *account_call(struct cpm_bus *bus, DBusMessage *msg, struct svc_account *a,
				 const char *call, cpm_method_fn fn)
{
	return svc_call_reported(a->svc, a->name, call, fn, bus, msg, a);
}

static DBusMessage *create_folder(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return account_call(bus, msg, userdata, "CreateFolder", create_folder_call);
}

static DBusMessage *rename_folder(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return account_call(bus, msg, userdata, "RenameFolder", rename_folder_call);
}

static DBusMessage *delete_folder(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return account_call(bus, msg, userdata, "DeleteFolder", delete_folder_call);
}

static DBusMessage *set_metadata(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return account_call(bus, msg, userdata, "SetMetadata", set_metadata_call);
}

static DBusMessage *set_acl(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return account_call(bus, msg, userdata, "SetAcl", set_acl_call);
}

static DBusMessage *delete_acl(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return account_call(bus, msg, userdata, "DeleteAcl", delete_acl_call);
}

static DBusMessage *mark_conversation_read(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return account_call(bus, msg, userdata, "MarkConversationRead",
			    mark_conversation_read_call);
}

static DBusMessage *retry_operation(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return account_call(bus, msg, userdata, "RetryOperation", retry_operation_call);
}

static DBusMessage *discard_operation(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return account_call(bus, msg, userdata, "DiscardOperation", discard_operation_call);
}

/* A table that reads as the interface: kept as written. */
/* clang-format off */
const struct cpm_interface cpm_account_interface = {
	.name = CPM_IFACE_ACCOUNT,
	.methods = (const struct cpm_method[]){
		{ "Sync", NULL, NULL, sync_method },
		/* Ours, beyond the contract: SyncAll() -- as Sync(), returns
		 * at once -- a full pass even when NOTIFY says nothing changed
		 * (Dovecot 2.3's NOTIFY misses some changes); for a user's
		 * explicit sync.  Why: sync_all_method(). */
		{ "SyncAll", NULL, NULL, sync_all_method },
		{ "FindFolder", CPM_ARGS({ "name", "s" }), CPM_ARGS({ "folder", "o" }), find_folder },
		{ "CreateFolder", CPM_ARGS({ "name", "s" }), CPM_ARGS({ "folder", "o" }),
		  create_folder },
		{ "RenameFolder", CPM_ARGS({ "name", "s" }, { "new_name", "s" }), NULL,
		  rename_folder },
		{ "DeleteFolder", CPM_ARGS({ "name", "s" }), NULL, delete_folder },
		{ "GetMetadata", CPM_ARGS({ "folder", "s" }, { "entries", "as" }),
		  CPM_ARGS({ "values", "a{ss}" }), get_metadata },
		{ "SetMetadata", CPM_ARGS({ "folder", "s" }, { "values", "a{ss}" }), NULL,
		  set_metadata },
		{ "GetAcl", CPM_ARGS({ "folder", "s" }), CPM_ARGS({ "acl", "a{ss}" }), get_acl },
		{ "SetAcl", CPM_ARGS({ "folder", "s" }, { "identifier", "s" }, { "rights", "s" }),
		  NULL, set_acl },
		{ "DeleteAcl", CPM_ARGS({ "folder", "s" }, { "identifier", "s" }), NULL,
		  delete_acl },
		{ "MyRights", CPM_ARGS({ "folder", "s" }), CPM_ARGS({ "rights", "s" }), my_rights },
		/* Contract v2 ("CPM objects and conversations"). */
		{ "StoreObject", CPM_ARGS({ "content", "h" }, { "flags", "as" }, { "date", "x" }),
		  CPM_ARGS({ "folder", "o" }, { "id", "t" }), store_object },
		{ "ListConversations", NULL, CPM_ARGS({ "conversations", "aa{sv}" }),
		  svc_list_conversations },
		{ "ListConversationMessages",
		  CPM_ARGS({ "conversation_id", "s" }, { "before_id", "t" }, { "limit", "u" }),
		  CPM_ARGS({ "messages", "aa{sv}" }), svc_list_conversation_messages },
		{ "MarkConversationRead", CPM_ARGS({ "conversation_id", "s" }), NULL,
		  mark_conversation_read },
		/* Ours, beyond the contract: ListConversationsPage(u offset, u limit)
		 * -> aa{sv}: ListConversations' conversation dicts (the same order,
		 * newest activity first, the same keys) from position offset (0: the
		 * newest), at most limit (0: 1,000; InvalidArgs over 10,000).  A
		 * conversation whose activity changes between two pages moves (its
		 * ConversationChanged says so).  Why: dbus/conversation.c. */
		{ "ListConversationsPage", CPM_ARGS({ "offset", "u" }, { "limit", "u" }),
		  CPM_ARGS({ "conversations", "aa{sv}" }), svc_list_conversations_page },
		/* Contract v2 ("Failed operations"). */
		{ "ListFailedOperations", NULL, CPM_ARGS({ "operations", "aa{sv}" }), list_failed },
		{ "RetryOperation", CPM_ARGS({ "id", "t" }), NULL, retry_operation },
		{ "DiscardOperation", CPM_ARGS({ "id", "t" }), NULL, discard_operation },
		{ NULL },
	},
	.signals = (const struct cpm_signal[]){
		{ "ConversationChanged", CPM_ARGS({ "conversation", "a{sv}" }) },
		/* Ours, beyond the contract: a conversation left the list
		 * (dbus/conversation.c svc_emit_conversations_gone()). */
		{ "ConversationRemoved", CPM_ARGS({ "conversation_id", "s" }) },
		{ "OperationFailed", CPM_ARGS({ "operation", "a{sv}" }) },
		{ "SyncProgress", CPM_ARGS({ "folder", "s" }, { "done", "u" }, { "total", "u" }) },
		{ NULL },
	},
	.properties = (const struct cpm_property[]){
		{ "Name", "s", get_name, NULL },
		{ "Host", "s", get_host, NULL },
		{ "User", "s", get_user, NULL },
		{ "State", "s", get_state, NULL },
		{ "LastError", "s", get_last_error, NULL },
		{ "LastSync", "t", get_last_sync, NULL },
		{ "ServerCapabilities", "as", get_caps, NULL },
		{ "PendingOperations", "u", get_pending, NULL },
		{ "PushState", "s", get_push_state, NULL },
		{ "LastServerActivity", "t", get_last_activity, NULL },
		{ "CpmRoot", "s", get_cpm_root, NULL },
		{ "FailedOperations", "u", get_failed, NULL },
		{ "Online", "b", get_online, set_online },
		/*
		 * Added to the contract's Account1 (additive): syncs completed
		 * since the daemon started, +1 each; a client that asked for a
		 * Sync waits for it to move instead of comparing clocks.
		 */
		{ "SyncGeneration", "t", get_sync_generation, NULL },
		{ NULL },
	},
};
/* clang-format on */
