/* SPDX-License-Identifier: GPL-2.0-or-later */
/* org.cpmsync.Folder1 on /org/cpmsync/<account>/folder<N>. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cpmsync/cpm-folders.h>
#include <cpmsync/conversation.h>
#include <cpmsync/error.h>
#include <cpmsync/io.h>
#include <cpmsync/message.h>
#include <cpmsync/ops.h>
#include <cpmsync/preview.h>

#include "dbus-util.h"
#include "folder.h"
#include "service-private.h"

/* A pipe given to StoreFd must reach EOF within this time. */
#define PIPE_TIMEOUT_MS (120u * 1000u)
/* Largest content Fetch/Preview put in a byte array (use FetchFd above). */
#define MAX_INLINE_CONTENT (CPM_MAX_DBUS_ARRAY - 4096u)

/* ------------------------------------------------------------------------ */
/* Helpers */

struct msg_brief {
	bool found;
	int64_t folder_id;
	uint32_t uid;
	bool has_body;
};

static int brief_cb(const struct cpmsync_message_info *m, void *userdata)
{
	struct msg_brief *b = userdata;

	b->found = true;
	b->folder_id = m->folder_id;
	b->uid = m->uid;
	b->has_body = m->has_body;
	return 0;
}

/* NULL when id is a visible message of f (its brief in *ret), else the
 * error reply. */
static DBusMessage *check_message(struct svc_folder *f, DBusMessage *msg, const char *arg,
				  uint64_t id, struct msg_brief *ret)
{
	struct msg_brief b = { 0 };
	int r;

	if (id == 0 || id > INT64_MAX)
		return cpm_error(msg, CPM_ERROR_NOT_FOUND,
				 "%s: no message %" PRIu64 " in this folder", arg, id);
	r = cpmsync_store_get_message(f->svc->store, (int64_t)id, brief_cb, &b);
	if (r < 0 && r != -CPMSYNC_E_NOT_FOUND)
		return svc_store_error(f->svc, msg, r);
	if (r < 0 || !b.found || b.folder_id != f->id)
		return cpm_error(msg, CPM_ERROR_NOT_FOUND,
				 "%s: no message %" PRIu64 " in this folder", arg, id);
	if (ret)
		*ret = b;
	return NULL;
}

static DBusMessage *check_ids(struct svc_folder *f, DBusMessage *msg, const uint64_t *ids, int n)
{
	DBusMessage *reply;

	for (int i = 0; i < n; i++)
		if ((reply = check_message(f, msg, "ids", ids[i], NULL)))
			return reply;
	return NULL;
}

struct name_read {
	char *name;
};

static int name_cb(const struct cpmsync_folder_info *fi, void *userdata)
{
	struct name_read *nr = userdata;

	nr->name = cpm_strdup(fi->name);
	return 0;
}

/* The folder's name as the store has it now (malloc()ed), or NULL and the
 * error reply in *ret_reply. */
static char *current_name(struct svc_folder *f, DBusMessage *msg, DBusMessage **ret_reply)
{
	struct name_read nr = { 0 };
	int r = cpmsync_store_get_folder(f->svc->store, f->id, name_cb, &nr);

	if (r >= 0 && nr.name)
		return nr.name;
	free(nr.name);
	if (r == -CPMSYNC_E_NOT_FOUND || r >= 0)
		*ret_reply = cpm_error(msg, CPM_ERROR_NOT_FOUND, "the folder is gone");
	else
		*ret_reply = svc_store_error(f->svc, msg, r);
	return NULL;
}

static DBusMessage *reply_id(DBusMessage *msg, int64_t id)
{
	DBusMessage *reply = cpm_reply(msg);
	dbus_uint64_t v = (dbus_uint64_t)id;

	if (!dbus_message_append_args(reply, DBUS_TYPE_UINT64, &v, DBUS_TYPE_INVALID))
		cpm_oom();
	return reply;
}

static DBusMessage *reply_ids(DBusMessage *msg, const int64_t *ids, size_t n)
{
	DBusMessage *reply = cpm_reply(msg);
	const dbus_uint64_t *v = (const dbus_uint64_t *)ids;
	DBusMessageIter it, a;

	dbus_message_iter_init_append(reply, &it);
	if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "t", &a) ||
	    (n && !dbus_message_iter_append_fixed_array(&a, DBUS_TYPE_UINT64, &v, (int)n)) ||
	    !dbus_message_iter_close_container(&it, &a))
		cpm_oom();
	return reply;
}

static DBusMessage *reply_bytes(DBusMessage *msg, const void *data, size_t len)
{
	DBusMessage *reply;
	DBusMessageIter it, a;
	const unsigned char *p = data;

	if (len > MAX_INLINE_CONTENT)
		return cpm_error(msg, CPM_ERROR_FAILED,
				 "content: %zu bytes is too large for a byte array; use FetchFd",
				 len);
	reply = cpm_reply(msg);
	dbus_message_iter_init_append(reply, &it);
	if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "y", &a) ||
	    (len && !dbus_message_iter_append_fixed_array(&a, DBUS_TYPE_BYTE, &p, (int)len)) ||
	    !dbus_message_iter_close_container(&it, &a))
		cpm_oom();
	return reply;
}

/* Replies with fd (libdbus duplicates it); closes fd. */
static DBusMessage *reply_fd(DBusMessage *msg, int fd)
{
	DBusMessage *reply = cpm_reply(msg);
	bool ok = dbus_message_append_args(reply, DBUS_TYPE_UNIX_FD, &fd, DBUS_TYPE_INVALID);

	close(fd);
	if (!ok) {
		dbus_message_unref(reply);
		return cpm_error(msg, CPM_ERROR_FAILED, "cannot pass the file descriptor");
	}
	return reply;
}

static void seal_fd(int fd)
{
	/* Best effort: the reader sees an immutable file. */
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
}

/* ------------------------------------------------------------------------ */
/* Reads */

static int list_cb(const struct cpmsync_message_info *m, void *userdata)
{
	cpm_append_summary(userdata, m);
	return 0;
}

static DBusMessage *list_messages(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_folder *f = userdata;
	dbus_uint64_t after;
	dbus_uint32_t limit;
	DBusMessageIter it, a;
	DBusMessage *reply;
	int r;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_UINT64, &after, DBUS_TYPE_UINT32, &limit,
			      DBUS_TYPE_INVALID);
	if ((reply = cpm_list_limit(msg, limit)))
		return reply;
	/* As ListConversations: the engine's open batch committed, and the
	 * signals of what the page shows sent before it (svc_drain_due()). */
	svc_drain_due(f->svc);
	reply = cpm_array_reply(msg, &it, &a);
	/* "At most limit": 0 is none (for the store, 0 would be all). */
	r = after > INT64_MAX || limit == 0
		    ? 0
		    : cpmsync_store_foreach_message(f->svc->store, f->id, (int64_t)after, limit,
						    list_cb, &a);
	cpm_array_reply_close(&it, &a);
	if (r < 0) {
		dbus_message_unref(reply);
		return svc_store_error(f->svc, msg, r);
	}
	return reply;
}

static int get_cb(const struct cpmsync_message_info *m, void *userdata)
{
	struct {
		DBusMessageIter *it;
		int64_t folder_id;
		bool found;
	} *g = userdata;

	if (m->folder_id != g->folder_id)
		return 0;
	cpm_append_summary(g->it, m);
	g->found = true;
	return 0;
}

static DBusMessage *get_message(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_folder *f = userdata;
	struct {
		DBusMessageIter *it;
		int64_t folder_id;
		bool found;
	} g;
	DBusMessageIter it;
	DBusMessage *reply;
	dbus_uint64_t id;
	int r;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID);
	if (id == 0 || id > INT64_MAX)
		return cpm_error(msg, CPM_ERROR_NOT_FOUND,
				 "id: no message %" PRIu64 " in this folder", (uint64_t)id);
	reply = cpm_reply(msg);
	dbus_message_iter_init_append(reply, &it);
	g.it = &it;
	g.folder_id = f->id;
	g.found = false;
	r = cpmsync_store_get_message(f->svc->store, (int64_t)id, get_cb, &g);
	if (r < 0 || !g.found) {
		dbus_message_unref(reply);
		if (r < 0 && r != -CPMSYNC_E_NOT_FOUND)
			return svc_store_error(f->svc, msg, r);
		return cpm_error(msg, CPM_ERROR_NOT_FOUND,
				 "id: no message %" PRIu64 " in this folder", (uint64_t)id);
	}
	return reply;
}

/* Search */

void search_state_free(void *p)
{
	struct search_state *s = p;

	free(s->flags);
	free(s->not_flags);
	free(s);
}

static const struct {
	const char *key;
	const char *type;
} criteria_keys[] = {
	{ "Text", "s" },    { "From", "s" },	  { "To", "s" },
	{ "Subject", "s" }, { "Since", "x" },	  { "Before", "x" },
	{ "Flags", "as" },  { "NotFlags", "as" }, { "ConversationId", "s" },
};

char *cpm_parse_search_criteria(DBusMessageIter *iter, struct search_state *s)
{
	DBusMessageIter a, e, v;
	unsigned seen = 0;

	dbus_message_iter_recurse(iter, &a);
	for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&a)) {
		const char *key, *str;
		char *sig, *err;
		unsigned k;
		bool ok;

		dbus_message_iter_recurse(&a, &e);
		dbus_message_iter_get_basic(&e, &key);
		dbus_message_iter_next(&e);
		for (k = 0; k < sizeof(criteria_keys) / sizeof(criteria_keys[0]); k++)
			if (!strcmp(criteria_keys[k].key, key))
				break;
		if (k == sizeof(criteria_keys) / sizeof(criteria_keys[0]))
			return cpm_asprintf("criteria: unknown key '%.64s'", key);
		if (seen & (1u << k))
			return cpm_asprintf("criteria: %s given twice", key);
		seen |= 1u << k;
		dbus_message_iter_recurse(&e, &v);
		sig = dbus_message_iter_get_signature(&v);
		if (!sig)
			cpm_oom();
		ok = !strcmp(sig, criteria_keys[k].type);
		dbus_free(sig);
		if (!ok)
			return cpm_asprintf("criteria: %s must be of type %s", key,
					    criteria_keys[k].type);
		if (!strcmp(key, "Since") || !strcmp(key, "Before")) {
			dbus_int64_t t;

			dbus_message_iter_get_basic(&v, &t);
			if (t > CPMSYNC_OP_MAX_DATE)
				return cpm_asprintf("criteria: %s after 9999-12-31 23:59:59 UTC "
						    "(an IMAP date has a four-digit year)",
						    key);
			/* Given is a criterion, 0 (1970-01-01) too. */
			if (key[0] == 'S') {
				s->c.since = t;
				s->c.has_since = true;
			} else {
				s->c.before = t;
				s->c.has_before = true;
			}
			continue;
		}
		if (!strcmp(key, "Flags") || !strcmp(key, "NotFlags")) {
			const char ***dst = key[0] == 'F' ? &s->flags : &s->not_flags;

			err = cpm_read_strv(
				&v, key[0] == 'F' ? "criteria: Flags" : "criteria: NotFlags",
				CPM_MAX_FLAGS, true, dst);
			if (err)
				return err;
			continue;
		}
		dbus_message_iter_get_basic(&v, &str);
		if (strlen(str) > CPM_MAX_NAME_LEN)
			return cpm_asprintf("criteria: %s longer than %u bytes", key,
					    CPM_MAX_NAME_LEN);
		if (!strcmp(key, "Text"))
			s->c.text = str;
		else if (!strcmp(key, "From"))
			s->c.from = str;
		else if (!strcmp(key, "To"))
			s->c.to = str;
		else if (!strcmp(key, "Subject"))
			s->c.subject = str;
		else
			s->c.conversation_id = str;
	}
	s->c.flags = s->flags;
	s->c.not_flags = s->not_flags;
	return NULL;
}

static DBusMessage *search_local(struct cpm_service *svc, DBusMessage *msg, struct search_state *s)
{
	int64_t *ids = NULL;
	DBusMessage *reply;
	size_t n = 0;
	int r;

	r = cpmsync_store_search(svc->store, s->folder_id, &s->c, &ids, &n);
	if (r < 0)
		return svc_store_error(svc, msg, r);
	reply = reply_ids(msg, ids, n);
	free(ids);
	return reply;
}

static void search_cb(int r, const char *reason, const int64_t *ids, size_t n, void *userdata)
{
	struct svc_call *c = userdata;

	if (r == -CPMSYNC_E_OFFLINE && c->svc) {
		/* Went offline meanwhile: the local store answers. */
		svc_call_finish(c, search_local(c->svc, c->msg, c->data));
		return;
	}
	if (r < 0) {
		svc_call_finish(c, cpm_error_from_code(c->msg, r, reason));
		return;
	}
	svc_call_finish(c, reply_ids(c->msg, ids, n));
}

static DBusMessage *search(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_folder *f = userdata;
	struct search_state *s = cpm_calloc(1, sizeof(*s));
	struct cpmsync_session *session = f->account->session;
	DBusMessageIter it;
	DBusMessage *reply;
	struct svc_call *c;
	char *err;
	int r;

	(void)bus;
	s->folder_id = f->id;
	dbus_message_iter_init(msg, &it);
	if ((err = cpm_parse_search_criteria(&it, s))) {
		search_state_free(s);
		return svc_invalid(msg, err);
	}
	if (!cpmsync_session_get_online(session)) {
		reply = search_local(f->svc, msg, s);
		search_state_free(s);
		return reply;
	}
	c = svc_call_new(f->svc, msg);
	c->data = s;
	c->free_data = search_state_free;
	r = cpmsync_session_search(session, f->id, &s->c, search_cb, c);
	if (r == -CPMSYNC_E_OFFLINE) {
		reply = search_local(f->svc, msg, s);
		svc_call_finish(c, NULL);
		return reply;
	}
	return svc_request_started(c, r);
}

/* Fetch, FetchFd, Preview */

struct fetch_state {
	bool as_fd;
};

static void data_cb(int r, const char *reason, int fd, uint64_t size, void *userdata)
{
	struct svc_call *c = userdata;
	struct fetch_state *fs = c->data;
	char *buf = NULL;
	size_t len = 0;

	if (r < 0) {
		if (fd >= 0)
			close(fd);
		svc_call_finish(c, cpm_error_from_code(c->msg, r, reason));
		return;
	}
	if (fs && fs->as_fd) {
		lseek(fd, 0, SEEK_SET);
		svc_call_finish(c, reply_fd(c->msg, fd));
		return;
	}
	(void)size;
	r = lseek(fd, 0, SEEK_SET) < 0 ? -errno
				       : cpmsync_read_all(fd, MAX_INLINE_CONTENT, &buf, &len);
	close(fd);
	if (r == -EFBIG) {
		svc_call_finish(c, cpm_error(c->msg, CPM_ERROR_FAILED,
					     "content: too large for a byte array; use FetchFd"));
		return;
	}
	if (r < 0) {
		svc_call_finish(c, cpm_error_from_code(c->msg, r, NULL));
		return;
	}
	svc_call_finish(c, reply_bytes(c->msg, buf, len));
	free(buf);
}

/*
 * The stored body's section as a reply.  Returns NULL with *ret_missing
 * set when the body is not stored after all, or (on_server: the server has
 * the message) its stored copy cannot be read.
 */
static DBusMessage *fetch_local(struct svc_folder *f, DBusMessage *msg, int64_t id,
				const char *section, bool as_fd, bool on_server, bool *ret_missing)
{
	struct stat st;
	size_t off = 0, len;
	DBusMessage *reply;
	char *data = NULL;
	int fd, r;

	*ret_missing = false;
	fd = memfd_create("cpmsync-message", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return cpm_error_from_code(msg, -errno, NULL);
	r = cpmsync_store_read_body(f->svc->store, id, fd);
	/* Not stored after all; or its stored copy cannot be read (its pack
	 * file removed or cut short: the store logs which) while the server
	 * has the message: the server's copy, kept again in its place. */
	if (r == -CPMSYNC_E_NOT_FOUND ||
	    (on_server && (r == -ENOENT || r == -CPMSYNC_E_STORE_CORRUPT))) {
		close(fd);
		*ret_missing = true;
		return NULL;
	}
	if (r < 0 || fstat(fd, &st) < 0) {
		close(fd);
		return r < 0 ? svc_store_error(f->svc, msg, r)
			     : cpm_error_from_code(msg, -errno, NULL);
	}
	len = (size_t)st.st_size;
	if (!*section && as_fd) {
		lseek(fd, 0, SEEK_SET);
		seal_fd(fd);
		return reply_fd(msg, fd);
	}
	if (len) {
		data = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (data == MAP_FAILED) {
			r = -errno;
			close(fd);
			return cpm_error_from_code(msg, r, NULL);
		}
	}
	if (*section) {
		r = cpmsync_message_section(data ? data : "", len, section, &off, &len);
		if (r < 0) {
			if (data)
				munmap(data, (size_t)st.st_size);
			close(fd);
			if (r == -EINVAL)
				return cpm_error_invalid_args(
					msg, "section: '%s' is not a valid section", section);
			if (r == -CPMSYNC_E_NOT_FOUND)
				return cpm_error(msg, CPM_ERROR_NOT_FOUND,
						 "section: the message has no part '%s'", section);
			return cpm_error_from_code(msg, r, NULL);
		}
	}
	if (as_fd) {
		int out = memfd_create("cpmsync-part", MFD_CLOEXEC | MFD_ALLOW_SEALING);

		r = out < 0 ? -errno : cpmsync_write_all(out, data + off, len);
		/* The reader reads from the shared file offset: back to the start. */
		if (r >= 0 && lseek(out, 0, SEEK_SET) < 0)
			r = -errno;
		if (r >= 0) {
			seal_fd(out);
			reply = reply_fd(msg, out);
		} else {
			if (out >= 0)
				close(out);
			reply = cpm_error_from_code(msg, r, NULL);
		}
	} else {
		reply = reply_bytes(msg, data ? data + off : "", len);
	}
	if (data)
		munmap(data, (size_t)st.st_size);
	close(fd);
	return reply;
}

static DBusMessage *fetch_common(struct svc_folder *f, DBusMessage *msg, bool as_fd)
{
	struct cpmsync_session *session = f->account->session;
	struct fetch_state *fs;
	struct msg_brief b;
	DBusMessage *reply;
	const char *section;
	dbus_uint64_t id;
	struct svc_call *c;
	bool missing;
	char *err;

	dbus_message_get_args(msg, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_STRING, &section,
			      DBUS_TYPE_INVALID);
	if ((err = cpm_check_section("section", section)))
		return svc_invalid(msg, err);
	if ((reply = check_message(f, msg, "id", id, &b)))
		return reply;
	if (as_fd &&
	    !dbus_connection_can_send_type(cpm_bus_connection(f->svc->bus), DBUS_TYPE_UNIX_FD))
		return cpm_error(msg, CPM_ERROR_FAILED,
				 "this connection cannot pass file descriptors; use Fetch");
	if (b.has_body) {
		reply = fetch_local(f, msg, (int64_t)id, section, as_fd, b.uid != 0, &missing);
		if (!missing)
			return reply;
	}
	if (b.uid == 0)
		return cpm_error(msg, CPM_ERROR_NOT_FOUND,
				 "id: message %" PRIu64
				 " has no stored body and is not on the server yet",
				 (uint64_t)id);
	if (!cpmsync_session_get_online(session))
		return svc_offline_error(msg, f->account);
	c = svc_call_new(f->svc, msg);
	fs = cpm_calloc(1, sizeof(*fs));
	fs->as_fd = as_fd;
	c->data = fs;
	c->free_data = free;
	return svc_request_started(
		c, cpmsync_session_fetch(session, (int64_t)id, section, data_cb, c));
}

static DBusMessage *fetch(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	(void)bus;
	return fetch_common(userdata, msg, false);
}

static DBusMessage *fetch_fd(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	(void)bus;
	return fetch_common(userdata, msg, true);
}

/*
 * Preview: cpmsync_preview() (libsync/engine/preview.c) does the work: the
 * cache, CONVERT when the server offers it, else the stored or fetched
 * part converted locally (images by the cpm-preview helper process).  A
 * cached preview or a stored body needs no server, so offline is an error
 * only when the part has to be fetched.
 */
static struct cpmsync_previewer *service_previewer(struct cpm_service *svc)
{
	if (!svc->previewer)
		(void)cpmsync_previewer_new(svc->loop, svc->store, NULL, &svc->previewer);
	return svc->previewer;
}

static DBusMessage *preview(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_folder *f = userdata;
	struct cpmsync_previewer *p;
	const char *section, *format;
	dbus_uint32_t width, height;
	dbus_uint64_t id;
	DBusMessage *reply;
	struct svc_call *c;
	char *err;

	(void)bus;
	dbus_message_get_args(msg, NULL, DBUS_TYPE_UINT64, &id, DBUS_TYPE_STRING, &section,
			      DBUS_TYPE_STRING, &format, DBUS_TYPE_UINT32, &width, DBUS_TYPE_UINT32,
			      &height, DBUS_TYPE_INVALID);
	if ((err = cpm_check_part("section", section)))
		return svc_invalid(msg, err);
	if (!cpmsync_preview_format_from_type(format) && strcmp(format, "text/plain") != 0)
		return cpm_error_invalid_args(
			msg,
			"format: \"image/jpeg\", \"image/png\", \"image/webp\" or \"text/plain\"");
	if (width < 1 || width > CPM_MAX_PREVIEW_DIM)
		return cpm_error_invalid_args(msg, "width: 1 to %u", CPM_MAX_PREVIEW_DIM);
	if (height < 1 || height > CPM_MAX_PREVIEW_DIM)
		return cpm_error_invalid_args(msg, "height: 1 to %u", CPM_MAX_PREVIEW_DIM);
	if ((reply = check_message(f, msg, "id", id, NULL)))
		return reply;
	p = service_previewer(f->svc);
	if (!p)
		return cpm_error_from_code(msg, -ENOMEM, NULL);
	c = svc_call_new(f->svc, msg);
	return svc_request_started(c, cpmsync_preview(p, f->account->session, (int64_t)id, section,
						      format, width, height, data_cb, c));
}

/* ------------------------------------------------------------------------ */
/* Changes */

char *svc_read_flags_date(DBusMessageIter *it, const char ***ret_flags, int64_t *ret_date)
{
	dbus_int64_t date;
	char *err;

	if ((err = cpm_read_strv(it, "flags", CPM_MAX_FLAGS, true, ret_flags)))
		return err;
	if ((err = cpm_check_no_recent("flags", *ret_flags))) {
		free(*ret_flags);
		*ret_flags = NULL;
		return err;
	}
	dbus_message_iter_next(it);
	dbus_message_iter_get_basic(it, &date);
	if (date < 0 || date > CPMSYNC_OP_MAX_DATE) {
		free(*ret_flags);
		*ret_flags = NULL;
		return cpm_strdup(date < 0 ? "date: must not be negative (0: now)"
					   : "date: after 9999-12-31 23:59:59 UTC (an IMAP "
					     "date has a four-digit year)");
	}
	*ret_date = date;
	return NULL;
}

DBusMessage *svc_check_values(DBusMessage *msg, DBusMessageIter *it, unsigned max,
			      char *(*check)(const char *arg, const char *entry), unsigned *ret_n)
{
	DBusMessageIter d, e;
	unsigned n = 0;
	char *err;

	dbus_message_iter_recurse(it, &d);
	for (; dbus_message_iter_get_arg_type(&d) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&d)) {
		const char *key, *value;

		if (++n > max)
			return cpm_error_invalid_args(msg, "values: at most %u entries", max);
		dbus_message_iter_recurse(&d, &e);
		dbus_message_iter_get_basic(&e, &key);
		dbus_message_iter_next(&e);
		dbus_message_iter_get_basic(&e, &value);
		if ((err = check("values", key)))
			return svc_invalid(msg, err);
		if (strlen(value) > CPM_MAX_METADATA_VALUE)
			return cpm_error_invalid_args(msg,
						      "values: value of '%s' longer than %u bytes",
						      key, CPM_MAX_METADATA_VALUE);
	}
	*ret_n = n;
	return NULL;
}

char *svc_read_fd_flags_date(DBusMessage *msg, int *ret_fd, const char ***ret_flags,
			     int64_t *ret_date)
{
	DBusMessageIter it;
	char *err;
	int fd;

	dbus_message_iter_init(msg, &it);
	dbus_message_iter_get_basic(&it, &fd); /* a new fd: ours to close */
	dbus_message_iter_next(&it);
	if ((err = svc_read_flags_date(&it, ret_flags, ret_date))) {
		close(fd);
		return err;
	}
	*ret_fd = fd;
	return NULL;
}

static DBusMessage *store_content(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_folder *f = userdata;
	const unsigned char *data = NULL;
	const char **flags = NULL;
	DBusMessageIter it, a;
	DBusMessage *reply = NULL;
	int64_t date, id;
	char *err, *name;
	int len = 0, r;

	(void)bus;
	dbus_message_iter_init(msg, &it);
	dbus_message_iter_recurse(&it, &a);
	if (dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_BYTE)
		dbus_message_iter_get_fixed_array(&a, &data, &len);
	if (len <= 0)
		return cpm_error_invalid_args(msg, "content: empty");
	if ((size_t)len > CPMSYNC_OP_MAX_MESSAGE_SIZE)
		return cpm_error_invalid_args(msg, "content: larger than %u bytes",
					      CPMSYNC_OP_MAX_MESSAGE_SIZE);
	dbus_message_iter_next(&it);
	if ((err = svc_read_flags_date(&it, &flags, &date)))
		return svc_invalid(msg, err);
	name = current_name(f, msg, &reply);
	if (!name) {
		free(flags);
		return reply;
	}
	r = cpmsync_op_store(f->svc->store, f->account->name, name, data, (size_t)len, flags, date,
			     &id);
	free(name);
	free(flags);
	if (r < 0)
		return svc_store_error(f->svc, msg, r);
	reply = reply_id(msg, id);
	svc_changed_locally(f->account);
	return reply;
}

/* fn, a call that changes something in folder f, its failure reported
 * as "CALL folder 'NAME'" (call: "Store into", "SetFlags in" ...). */
static DBusMessage *folder_call(struct cpm_bus *bus, DBusMessage *msg, struct svc_folder *f,
				const char *call, cpm_method_fn fn)
{
	char *what = cpm_asprintf("%s folder '%s'", call, f->name);
	DBusMessage *reply = svc_call_reported(f->svc, f->account->name, what, fn, bus, msg, f);

	free(what);
	return reply;
}

static DBusMessage *store_method(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return folder_call(bus, msg, userdata, "Store into", store_content);
}

/*
 * Content given as a file descriptor (StoreFd, Account1.StoreObject): a
 * pipe is read on the loop into a memfd until EOF.
 */
struct pipe_store {
	struct svc_call *c;
	int fd, memfd;
	bool counted; /* in pipe_stores (and its size in pipe_bytes) */
	uint64_t size;
	struct cpmsync_loop_source *src, *timer;
	svc_content_fn done;
	void *ctx;
	void (*free_ctx)(void *ctx);
};

/*
 * Every StoreFd and StoreObject pipe being read, over all accounts and
 * callers: a caller could otherwise make the daemon hold 64 MiB per pipe,
 * any number of them.
 */
static unsigned pipe_stores, pipe_stores_max = CPM_MAX_PIPE_STORES;
static uint64_t pipe_bytes, pipe_bytes_max = CPM_MAX_PIPE_BYTES;

void cpm_folder_set_pipe_limits(unsigned stores, uint64_t bytes)
{
	pipe_stores_max = stores;
	pipe_bytes_max = bytes;
}

static void pipe_store_free(void *p)
{
	struct pipe_store *ps = p;

	if (ps->counted) {
		pipe_stores--;
		pipe_bytes -= ps->size;
	}
	cpmsync_loop_source_remove(ps->src);
	cpmsync_loop_source_remove(ps->timer);
	if (ps->fd >= 0)
		close(ps->fd);
	if (ps->memfd >= 0)
		close(ps->memfd);
	if (ps->free_ctx)
		ps->free_ctx(ps->ctx);
	free(ps);
}

static void pipe_timeout_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct pipe_store *ps = userdata;
	struct svc_call *c = ps->c;

	(void)src;
	svc_call_finish(c, cpm_error(c->msg, CPM_ERROR_FAILED,
				     "content: the pipe was not closed within %u s",
				     PIPE_TIMEOUT_MS / 1000));
}

static void pipe_read_cb(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct pipe_store *ps = userdata;
	struct svc_call *c = ps->c;
	char buf[65536];
	ssize_t n;
	int r;

	(void)src;
	(void)events;
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		svc_call_finish(c, cpm_error_from_code(c->msg, -errno, NULL));
		return;
	}
	if (n > 0) {
		if (ps->size + (uint64_t)n > CPMSYNC_OP_MAX_MESSAGE_SIZE) {
			svc_call_finish(c, cpm_error_invalid_args(c->msg,
								  "content: larger than %u bytes",
								  CPMSYNC_OP_MAX_MESSAGE_SIZE));
			return;
		}
		if (pipe_bytes + (uint64_t)n > pipe_bytes_max) {
			svc_call_finish(
				c, cpm_error(c->msg, CPM_ERROR_FAILED,
					     "content: the StoreFd and StoreObject pipes being "
					     "read would hold more than %llu bytes in all, the "
					     "limit; try again later or pass a regular file",
					     (unsigned long long)pipe_bytes_max));
			return;
		}
		r = cpmsync_write_all(ps->memfd, buf, (size_t)n);
		if (r < 0) {
			svc_call_finish(c, cpm_error_from_code(c->msg, r, NULL));
			return;
		}
		ps->size += (uint64_t)n;
		pipe_bytes += (uint64_t)n;
		return;
	}
	/* EOF */
	if (!c->svc) {
		svc_call_finish(c, NULL);
		return;
	}
	if (!ps->size) {
		svc_call_finish(c, cpm_error_invalid_args(c->msg, "content: empty"));
		return;
	}
	lseek(ps->memfd, 0, SEEK_SET);
	svc_call_finish(c, ps->done(c->svc, c->msg, ps->memfd, ps->size, ps->ctx));
}

/*
 * Content given as a regular file on a file system whose reads can block
 * for long (NFS, SMB, FUSE, 9p ...): read on a thread into a memfd, then
 * handed to done() on the loop.  The thread touches only fds; the two
 * sides share the struct by reference count.  ctx belongs to the loop
 * side (freed by file_read_free()).
 */
struct file_read {
	atomic_int refs;
	int fd, memfd, efd;
	int r;	       /* the thread's result */
	uint64_t size; /* bytes read */
	/* Loop side only. */
	struct svc_call *c;
	struct cpmsync_loop_source *src;
	svc_content_fn done;
	void *ctx;
	void (*free_ctx)(void *ctx);
};

static bool force_off_loop;
static void (*read_hook)(void);

void cpm_folder_set_file_read_test(bool always_off_loop, void (*hook)(void))
{
	force_off_loop = always_off_loop;
	read_hook = hook;
}

/* Local file systems: reads come from a local disk or memory. */
static bool fd_may_block(int fd)
{
	static const long local[] = {
		EXT4_SUPER_MAGIC, BTRFS_SUPER_MAGIC,	 XFS_SUPER_MAGIC,	 TMPFS_MAGIC,
		RAMFS_MAGIC,	  F2FS_SUPER_MAGIC,	 SQUASHFS_MAGIC,	 MSDOS_SUPER_MAGIC,
		HUGETLBFS_MAGIC,  OVERLAYFS_SUPER_MAGIC, 0x2011BAB0 /* exfat */,
	};
	struct statfs sf;

	if (force_off_loop)
		return true;
	if (fstatfs(fd, &sf) < 0)
		return true;
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if ((long)sf.f_type == local[i])
			return false;
	return true;
}

static void file_read_unref(struct file_read *fr)
{
	if (atomic_fetch_sub(&fr->refs, 1) != 1)
		return;
	if (fr->fd >= 0)
		close(fr->fd);
	if (fr->memfd >= 0)
		close(fr->memfd);
	if (fr->efd >= 0)
		close(fr->efd);
	free(fr);
}

static void *file_read_thread(void *p)
{
	struct file_read *fr = p;
	char buf[65536];
	uint64_t one = 1;
	int r = 0;

	if (read_hook)
		read_hook();
	for (;;) {
		ssize_t n = read(fr->fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		if (fr->size + (uint64_t)n > CPMSYNC_OP_MAX_MESSAGE_SIZE) {
			r = -EFBIG;
			break;
		}
		r = cpmsync_write_all(fr->memfd, buf, (size_t)n);
		if (r < 0)
			break;
		fr->size += (uint64_t)n;
	}
	fr->r = r;
	/* The loop side wakes up on the eventfd; it owns the result from then on. */
	while (write(fr->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	file_read_unref(fr);
	return NULL;
}

/* The loop side lets go (the call's free_data, or a start that failed). */
static void file_read_free(void *p)
{
	struct file_read *fr = p;

	fr->src = cpmsync_loop_source_remove(fr->src);
	if (fr->free_ctx)
		fr->free_ctx(fr->ctx);
	fr->free_ctx = NULL;
	file_read_unref(fr);
}

static void file_read_done(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct file_read *fr = userdata;
	struct svc_call *c = fr->c;

	(void)src;
	(void)fd;
	(void)events;
	if (!c->svc)
		svc_call_finish(c, NULL);
	else if (fr->r == -EFBIG)
		svc_call_finish(c, cpm_error_invalid_args(c->msg, "content: larger than %u bytes",
							  CPMSYNC_OP_MAX_MESSAGE_SIZE));
	else if (fr->r < 0)
		svc_call_finish(c, cpm_error_from_code(c->msg, fr->r, NULL));
	else if (!fr->size)
		svc_call_finish(c, cpm_error_invalid_args(c->msg, "content: empty"));
	else if (lseek(fr->memfd, 0, SEEK_SET) < 0)
		svc_call_finish(c, cpm_error_from_code(c->msg, -errno, NULL));
	else
		svc_call_finish(c, fr->done(c->svc, c->msg, fr->memfd, fr->size, fr->ctx));
}

/*
 * Takes fd and ctx (as svc_take_content_fd()).  NULL: the call goes on
 * (replied to later, *ret_call); else the reply.
 */
static DBusMessage *read_file_off_loop(struct cpm_service *svc, DBusMessage *msg, int fd,
				       svc_content_fn done, void *ctx, void (*free_ctx)(void *ctx),
				       struct svc_call **ret_call)
{
	struct file_read *fr = cpm_calloc(1, sizeof(*fr));
	DBusMessage *reply;
	pthread_attr_t attr;
	pthread_t thread;
	int r;

	atomic_init(&fr->refs, 1);
	fr->fd = fd;
	fr->done = done;
	fr->ctx = ctx;
	fr->free_ctx = free_ctx;
	fr->memfd = memfd_create("cpmsync-store", MFD_CLOEXEC);
	fr->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fr->memfd < 0 || fr->efd < 0) {
		reply = cpm_error_from_code(msg, -errno, NULL);
		file_read_free(fr);
		return reply;
	}
	if (cpmsync_loop_add_fd(svc->loop, fr->efd, CPMSYNC_LOOP_IN, file_read_done, fr, NULL,
				&fr->src) < 0)
		cpm_oom();
	atomic_fetch_add(&fr->refs, 1); /* the thread's */
	r = pthread_attr_init(&attr);
	if (r == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		r = pthread_create(&thread, &attr, file_read_thread, fr);
		pthread_attr_destroy(&attr);
	}
	if (r != 0) {
		atomic_fetch_sub(&fr->refs, 1);
		file_read_free(fr);
		return cpm_error_from_code(msg, -r, NULL);
	}
	fr->c = svc_call_new(svc, msg);
	fr->c->data = fr;
	fr->c->free_data = file_read_free;
	*ret_call = fr->c;
	return NULL;
}

/* svc_take_content_fd() but for the report: NULL and *ret_call, the call
 * that replies later. */
static DBusMessage *take_content_fd(struct cpm_service *svc, DBusMessage *msg, int fd,
				    svc_content_fn done, void *ctx, void (*free_ctx)(void *ctx),
				    struct svc_call **ret_call)
{
	struct pipe_store *ps;
	DBusMessage *reply;
	struct stat st;

	if (fstat(fd, &st) < 0) {
		reply = cpm_error_from_code(msg, -errno, NULL);
	} else if (S_ISREG(st.st_mode)) {
		if (st.st_size <= 0)
			reply = cpm_error_invalid_args(msg, "content: empty");
		else if ((uint64_t)st.st_size > CPMSYNC_OP_MAX_MESSAGE_SIZE)
			reply = cpm_error_invalid_args(msg, "content: larger than %u bytes",
						       CPMSYNC_OP_MAX_MESSAGE_SIZE);
		else if (lseek(fd, 0, SEEK_SET) < 0)
			reply = cpm_error_from_code(msg, -errno, NULL);
		else if (fd_may_block(fd))
			return read_file_off_loop(svc, msg, fd, done, ctx, free_ctx, ret_call);
		else
			reply = done(svc, msg, fd, (uint64_t)st.st_size, ctx);
	} else if (!S_ISFIFO(st.st_mode)) {
		reply = cpm_error_invalid_args(msg, "content: must be a regular file or a pipe");
	} else if (pipe_stores >= pipe_stores_max) {
		reply = cpm_error(msg, CPM_ERROR_FAILED,
				  "content: %u StoreFd and StoreObject pipes are being read "
				  "already, the most at once; try again when one is done or "
				  "pass a regular file",
				  pipe_stores);
	} else {
		ps = cpm_calloc(1, sizeof(*ps));
		ps->counted = true;
		pipe_stores++;
		ps->fd = fd;
		ps->done = done;
		ps->ctx = ctx;
		ps->free_ctx = free_ctx;
		ps->memfd = memfd_create("cpmsync-store", MFD_CLOEXEC);
		if (ps->memfd < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
			reply = cpm_error_from_code(msg, -errno, NULL);
			pipe_store_free(ps);
			return reply;
		}
		ps->c = svc_call_new(svc, msg);
		ps->c->data = ps;
		ps->c->free_data = pipe_store_free;
		if (cpmsync_loop_add_fd(svc->loop, fd, CPMSYNC_LOOP_IN, pipe_read_cb, ps, NULL,
					&ps->src) < 0 ||
		    cpmsync_loop_add_timer(svc->loop, PIPE_TIMEOUT_MS, 0, pipe_timeout_cb, ps, NULL,
					   &ps->timer) < 0)
			cpm_oom();
		*ret_call = ps->c;
		return NULL;
	}
	close(fd);
	if (free_ctx)
		free_ctx(ctx);
	return reply;
}

DBusMessage *svc_take_content_fd(struct cpm_service *svc, DBusMessage *msg, int fd,
				 svc_content_fn done, void *ctx, void (*free_ctx)(void *ctx),
				 const char *account, const char *what)
{
	struct svc_call *c = NULL;
	DBusMessage *reply = take_content_fd(svc, msg, fd, done, ctx, free_ctx, &c);

	if (!c)
		return svc_report_failure(svc, account, what, reply);
	c->failed_account = cpm_strdup(account);
	c->failed_what = cpm_strdup(what);
	return reply;
}

struct store_fd_ctx {
	int64_t folder_id, date;
	const char **flags;
};

static void store_fd_ctx_free(void *p)
{
	struct store_fd_ctx *x = p;

	free(x->flags);
	free(x);
}

static DBusMessage *store_from_fd(struct cpm_service *svc, DBusMessage *msg, int fd, uint64_t size,
				  void *ctx)
{
	struct store_fd_ctx *x = ctx;
	struct svc_folder *f = svc_folder_by_id(svc, x->folder_id);
	DBusMessage *reply = NULL;
	int64_t id;
	char *name;
	int r;

	if (!f)
		return cpm_error(msg, CPM_ERROR_NOT_FOUND, "the folder is gone");
	name = current_name(f, msg, &reply);
	if (!name)
		return reply;
	r = cpmsync_op_store_fd(svc->store, f->account->name, name, fd, size, x->flags, x->date,
				&id);
	free(name);
	if (r < 0)
		return svc_store_error(svc, msg, r);
	reply = reply_id(msg, id);
	svc_changed_locally(f->account);
	return reply;
}

static DBusMessage *store_fd(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_folder *f = userdata;
	char *account = cpm_strdup(f->account->name);
	char *what = cpm_asprintf("StoreFd into folder '%s'", f->name);
	struct store_fd_ctx *x;
	const char **flags = NULL;
	DBusMessage *reply;
	int64_t date;
	char *err;
	int fd;

	(void)bus;
	if ((err = svc_read_fd_flags_date(msg, &fd, &flags, &date))) {
		reply = svc_report_failure(f->svc, account, what, svc_invalid(msg, err));
	} else {
		x = cpm_calloc(1, sizeof(*x));
		x->folder_id = f->id;
		x->date = date;
		x->flags = flags;
		reply = svc_take_content_fd(f->svc, msg, fd, store_from_fd, x, store_fd_ctx_free,
					    account, what);
	}
	free(account);
	free(what);
	return reply;
}

static DBusMessage *set_flags_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_folder *f = userdata;
	const char **add = NULL, **remove = NULL;
	const uint64_t *ids;
	DBusMessageIter it;
	DBusMessage *reply;
	char *err;
	int n, r;

	(void)bus;
	dbus_message_iter_init(msg, &it);
	if ((err = cpm_read_ids(&it, "ids", CPM_MAX_IDS, &ids, &n)))
		return svc_invalid(msg, err);
	dbus_message_iter_next(&it);
	if ((err = cpm_read_strv(&it, "add", CPM_MAX_FLAGS, true, &add)) ||
	    (err = cpm_check_no_recent("add", add))) {
		free(add);
		return svc_invalid(msg, err);
	}
	dbus_message_iter_next(&it);
	if ((err = cpm_read_strv(&it, "remove", CPM_MAX_FLAGS, true, &remove))) {
		free(add);
		return svc_invalid(msg, err);
	}
	reply = check_ids(f, msg, ids, n);
	if (!reply && n && (add[0] || remove[0])) {
		r = cpmsync_op_set_flags(f->svc->store, (const int64_t *)ids, (size_t)n, add,
					 remove);
		if (r < 0) {
			reply = svc_store_error(f->svc, msg, r);
		} else {
			reply = cpm_reply(msg);
			svc_flags_changed_locally(f->account);
		}
	}
	free(add);
	free(remove);
	return reply ? reply : cpm_reply(msg);
}

static DBusMessage *copy_move(struct svc_folder *f, DBusMessage *msg, bool move)
{
	const char *destination;
	const uint64_t *ids;
	DBusMessageIter it;
	DBusMessage *reply;
	int64_t *new_ids;
	char *err;
	int n, r;

	dbus_message_iter_init(msg, &it);
	if ((err = cpm_read_ids(&it, "ids", CPM_MAX_IDS, &ids, &n)))
		return svc_invalid(msg, err);
	dbus_message_iter_next(&it);
	dbus_message_iter_get_basic(&it, &destination);
	if ((err = cpm_check_name("destination", destination, false)))
		return svc_invalid(msg, err);
	if ((reply = check_ids(f, msg, ids, n)))
		return reply;
	if (!n)
		return reply_ids(msg, NULL, 0);
	new_ids = cpm_calloc((size_t)n, sizeof(*new_ids));
	r = (move ? cpmsync_op_move : cpmsync_op_copy)(f->svc->store, (const int64_t *)ids,
						       (size_t)n, destination, new_ids);
	if (r < 0) {
		free(new_ids);
		/* The ids are checked above: what the store refuses as
		 * invalid is the destination (a Move into the messages' own
		 * folder). */
		return svc_store_error_arg(f->svc, msg, r, "destination");
	}
	reply = reply_ids(msg, new_ids, (size_t)n);
	free(new_ids);
	svc_changed_locally(f->account);
	return reply;
}

static DBusMessage *copy_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	(void)bus;
	return copy_move(userdata, msg, false);
}

static DBusMessage *move_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	(void)bus;
	return copy_move(userdata, msg, true);
}

static DBusMessage *delete_method_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_folder *f = userdata;
	const uint64_t *ids;
	DBusMessageIter it;
	DBusMessage *reply;
	char *err;
	int n, r;

	(void)bus;
	dbus_message_iter_init(msg, &it);
	if ((err = cpm_read_ids(&it, "ids", CPM_MAX_IDS, &ids, &n)))
		return svc_invalid(msg, err);
	if ((reply = check_ids(f, msg, ids, n)))
		return reply;
	if (!n)
		return cpm_reply(msg);
	r = cpmsync_op_delete(f->svc->store, (const int64_t *)ids, (size_t)n);
	if (r < 0)
		return svc_store_error(f->svc, msg, r);
	svc_changed_locally(f->account);
	return cpm_reply(msg);
}

static DBusMessage *expunge_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_folder *f = userdata;
	DBusMessage *reply = NULL;
	char *name;
	int r;

	(void)bus;
	name = current_name(f, msg, &reply);
	if (!name)
		return reply;
	r = cpmsync_op_expunge(f->svc->store, f->account->name, name);
	free(name);
	if (r < 0)
		return svc_store_error(f->svc, msg, r);
	svc_changed_locally(f->account);
	return cpm_reply(msg);
}

/* ------------------------------------------------------------------------ */
/* The CPM folder model */

static void set_str(char **dst, const char *src, size_t len, const char *prop, const char **changed,
		    unsigned *n)
{
	char *v = cpm_calloc(1, len + 1);

	memcpy(v, src, len);
	if (*dst && !strcmp(*dst, v)) {
		free(v);
		return;
	}
	if (*dst && changed)
		changed[(*n)++] = prop;
	free(*dst);
	*dst = v;
}

void svc_folder_classify(struct svc_folder *f, const char *special_use, const char **changed,
			 unsigned *n)
{
	struct cpmsync_cpm_folder c;
	const char *kind, *conv;
	char *found = NULL;
	size_t conv_len;

	special_use = special_use ? special_use : "";
	set_str(&f->special_use, special_use, strlen(special_use), "SpecialUse", changed, n);
	cpmsync_cpm_classify_folder(f->account->cpm_root, f->name, special_use, &c);
	kind = cpmsync_folder_kind_name(c.kind);
	if (f->kind && strcmp(f->kind, kind) && changed)
		changed[(*n)++] = "Kind";
	f->kind = kind;
	conv = c.conversation_id;
	conv_len = c.conversation_id_len;
	/* A conversation or session history folder, or a peer's: its
	 * conversation's ConversationId (the objects' Conversation-ID, else
	 * the conversation folder's name), as ListConversations says it. */
	if (c.kind != CPMSYNC_FOLDER_USER &&
	    cpmsync_store_folder_conversation_id(f->svc->store, f->id, &found) == 0 && found) {
		conv = found;
		conv_len = strlen(found);
	}
	set_str(&f->conversation_id, conv, conv_len, "ConversationId", changed, n);
	set_str(&f->contribution_id, c.contribution_id, c.contribution_id_len, "ContributionId",
		changed, n);
	free(found);
}

/* ------------------------------------------------------------------------ */
/* Properties */

#define F ((struct svc_folder *)userdata)

static void put_basic(DBusMessageIter *iter, int type, const void *v)
{
	if (!dbus_message_iter_append_basic(iter, type, v))
		cpm_oom();
}

static void get_name(DBusMessageIter *iter, void *userdata)
{
	cpm_append_string(iter, F->name);
}

static void get_account(DBusMessageIter *iter, void *userdata)
{
	put_basic(iter, DBUS_TYPE_OBJECT_PATH, &F->account->path);
}

static void get_uidvalidity(DBusMessageIter *iter, void *userdata)
{
	dbus_uint32_t v = F->uidvalidity;

	put_basic(iter, DBUS_TYPE_UINT32, &v);
}

static void get_highestmodseq(DBusMessageIter *iter, void *userdata)
{
	dbus_uint64_t v = F->highestmodseq;

	put_basic(iter, DBUS_TYPE_UINT64, &v);
}

static void get_messages(DBusMessageIter *iter, void *userdata)
{
	dbus_uint32_t v = F->messages;

	put_basic(iter, DBUS_TYPE_UINT32, &v);
}

static void get_unseen(DBusMessageIter *iter, void *userdata)
{
	dbus_uint32_t v = F->unseen;

	put_basic(iter, DBUS_TYPE_UINT32, &v);
}

static void get_kind(DBusMessageIter *iter, void *userdata)
{
	cpm_append_string(iter, F->kind);
}

static void get_special_use(DBusMessageIter *iter, void *userdata)
{
	cpm_append_string(iter, F->special_use);
}

static void get_conversation_id(DBusMessageIter *iter, void *userdata)
{
	cpm_append_string(iter, F->conversation_id);
}

static void get_contribution_id(DBusMessageIter *iter, void *userdata)
{
	cpm_append_string(iter, F->contribution_id);
}

static void get_active(DBusMessageIter *iter, void *userdata)
{
	dbus_bool_t v = cpmsync_session_get_active(F->account->session, F->id);

	put_basic(iter, DBUS_TYPE_BOOLEAN, &v);
}

static DBusMessage *set_active(DBusMessage *msg, DBusMessageIter *value, void *userdata)
{
	struct svc_folder *f = userdata;
	const char *changed[] = { "Active", NULL };
	dbus_bool_t b;
	int r;

	dbus_message_iter_get_basic(value, &b);
	r = cpmsync_session_set_active(f->account->session, f->id, b);
	if (r < 0)
		return cpm_error_from_code(msg, r, NULL);
	if (f->active != !!b) {
		f->active = b;
		cpm_bus_properties_changed(f->svc->bus, f->path, changed);
	}
	return NULL;
}

#undef F

/* A table that reads as the interface: kept as written. */
/* clang-format off */
/* ------------------------------------------------------------------------ */
/* Annotations (ANNOTATE, RFC 5257) */

/* Per-object annotations per call, as for metadata. */
#define MAX_ANNOTATIONS CPM_MAX_METADATA

/* The account's server is known to lack ANNOTATE: the error reply, else
 * NULL (capabilities not known yet, e.g. offline since start: a Set is
 * journaled and fails as a failed operation if the server lacks it). */
static DBusMessage *annotate_unsupported(struct svc_folder *f, DBusMessage *msg)
{
	struct cpmsync_session *session = f->account->session;
	const char *const *caps = cpmsync_session_get_capabilities(session);

	if (caps && caps[0] && !cpmsync_session_has_capability(session, "ANNOTATE-EXPERIMENT-1"))
		return cpm_error(msg, CPM_ERROR_NOT_SUPPORTED, "ANNOTATE");
	return NULL;
}

static char *check_annotation_entry(const char *arg, const char *entry)
{
	const char *why = "";

	if (!dbus_validate_utf8(entry, NULL))
		return cpm_asprintf("%s: entry is not valid UTF-8", arg);
	if (cpmsync_annotation_entry_check(entry, &why) < 0)
		return cpm_asprintf("%s: entry \"%s\" %s", arg, entry, why);
	return NULL;
}

static DBusMessage *get_annotations(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_folder *f = userdata;
	const char **entries = NULL;
	DBusMessageIter it;
	DBusMessage *reply;
	dbus_uint64_t id;
	dbus_bool_t shared;
	struct svc_call *c;
	char *err;

	(void)bus;
	dbus_message_iter_init(msg, &it);
	dbus_message_iter_get_basic(&it, &id);
	dbus_message_iter_next(&it);
	if ((err = cpm_read_strv(&it, "entries", MAX_ANNOTATIONS, false, &entries)))
		return svc_invalid(msg, err);
	dbus_message_iter_next(&it);
	dbus_message_iter_get_basic(&it, &shared);
	if (!entries[0]) {
		free(entries);
		return cpm_error_invalid_args(msg, "entries: at least one entry is needed");
	}
	for (size_t i = 0; entries[i]; i++) {
		if ((err = check_annotation_entry("entries", entries[i]))) {
			free(entries);
			return svc_invalid(msg, err);
		}
	}
	if ((reply = check_message(f, msg, "id", id, NULL)) || (reply = annotate_unsupported(f, msg))) {
		free(entries);
		return reply;
	}
	c = svc_call_new(f->svc, msg);
	c->data = entries;
	c->free_data = free;
	return svc_request_started(c, cpmsync_session_get_annotations(f->account->session,
								      (int64_t)id, entries, shared,
								      svc_pairs_cb, c));
}

static DBusMessage *set_annotations_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct svc_folder *f = userdata;
	struct cpmsync_annotation *values;
	DBusMessageIter it, d, e, top;
	DBusMessage *reply;
	dbus_uint64_t id;
	dbus_bool_t shared;
	unsigned n = 0;
	int r;

	(void)bus;
	dbus_message_iter_init(msg, &top);
	dbus_message_iter_get_basic(&top, &id);
	dbus_message_iter_next(&top);
	it = top;
	dbus_message_iter_next(&top);
	dbus_message_iter_get_basic(&top, &shared);
	/* Check everything before changing anything. */
	if ((reply = svc_check_values(msg, &it, MAX_ANNOTATIONS, check_annotation_entry, &n)))
		return reply;
	if (n == 0)
		return cpm_error_invalid_args(msg, "values: at least one entry is needed");
	if ((reply = check_message(f, msg, "id", id, NULL)) || (reply = annotate_unsupported(f, msg)))
		return reply;
	/* All in one transaction: set together or not at all. */
	values = cpm_calloc(n, sizeof(*values));
	n = 0;
	dbus_message_iter_recurse(&it, &d);
	for (; dbus_message_iter_get_arg_type(&d) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&d), n++) {
		dbus_message_iter_recurse(&d, &e);
		dbus_message_iter_get_basic(&e, &values[n].entry);
		dbus_message_iter_next(&e);
		dbus_message_iter_get_basic(&e, &values[n].value);
	}
	r = cpmsync_op_set_annotations(f->svc->store, (int64_t)id, values, n, shared);
	free(values);
	if (r < 0)
		return svc_store_error(f->svc, msg, r);
	svc_changed_locally(f->account);
	return cpm_reply(msg);
}

static DBusMessage *set_flags(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return folder_call(bus, msg, userdata, "SetFlags in", set_flags_call);
}

static DBusMessage *copy(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return folder_call(bus, msg, userdata, "Copy from", copy_call);
}

static DBusMessage *move(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return folder_call(bus, msg, userdata, "Move from", move_call);
}

static DBusMessage *delete_method(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return folder_call(bus, msg, userdata, "Delete in", delete_method_call);
}

static DBusMessage *expunge(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return folder_call(bus, msg, userdata, "Expunge of", expunge_call);
}

static DBusMessage *set_annotations(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	return folder_call(bus, msg, userdata, "SetAnnotations in", set_annotations_call);
}

const struct cpm_interface cpm_folder_interface = {
	.name = CPM_IFACE_FOLDER,
	.methods = (const struct cpm_method[]){
		{ "ListMessages", CPM_ARGS({ "after_id", "t" }, { "limit", "u" }),
		  CPM_ARGS({ "messages", "aa{sv}" }), list_messages },
		{ "GetMessage", CPM_ARGS({ "id", "t" }), CPM_ARGS({ "message", "a{sv}" }),
		  get_message },
		{ "Search", CPM_ARGS({ "criteria", "a{sv}" }), CPM_ARGS({ "ids", "at" }), search },
		{ "Store", CPM_ARGS({ "content", "ay" }, { "flags", "as" }, { "date", "x" }),
		  CPM_ARGS({ "id", "t" }), store_method },
		{ "StoreFd", CPM_ARGS({ "content", "h" }, { "flags", "as" }, { "date", "x" }),
		  CPM_ARGS({ "id", "t" }), store_fd },
		{ "Fetch", CPM_ARGS({ "id", "t" }, { "section", "s" }),
		  CPM_ARGS({ "content", "ay" }), fetch },
		{ "FetchFd", CPM_ARGS({ "id", "t" }, { "section", "s" }),
		  CPM_ARGS({ "content", "h" }), fetch_fd },
		{ "Preview", CPM_ARGS({ "id", "t" }, { "section", "s" }, { "format", "s" },
				      { "width", "u" }, { "height", "u" }),
		  CPM_ARGS({ "content", "ay" }), preview },
		{ "SetFlags", CPM_ARGS({ "ids", "at" }, { "add", "as" }, { "remove", "as" }), NULL,
		  set_flags },
		{ "Copy", CPM_ARGS({ "ids", "at" }, { "destination", "s" }),
		  CPM_ARGS({ "new_ids", "at" }), copy },
		{ "Move", CPM_ARGS({ "ids", "at" }, { "destination", "s" }),
		  CPM_ARGS({ "new_ids", "at" }), move },
		{ "Delete", CPM_ARGS({ "ids", "at" }), NULL, delete_method },
		{ "Expunge", NULL, NULL, expunge },
		{ "GetAnnotations", CPM_ARGS({ "id", "t" }, { "entries", "as" }, { "shared", "b" }),
		  CPM_ARGS({ "values", "a{ss}" }), get_annotations },
		{ "SetAnnotations", CPM_ARGS({ "id", "t" }, { "values", "a{ss}" }, { "shared", "b" }),
		  NULL, set_annotations },
		{ NULL },
	},
	.signals = (const struct cpm_signal[]){
		{ "MessagesAdded", CPM_ARGS({ "messages", "aa{sv}" }) },
		{ "MessagesChanged", CPM_ARGS({ "messages", "aa{sv}" }) },
		{ "MessagesRemoved", CPM_ARGS({ "ids", "at" }) },
		{ NULL },
	},
	.properties = (const struct cpm_property[]){
		{ "Name", "s", get_name, NULL },
		{ "Account", "o", get_account, NULL },
		{ "UidValidity", "u", get_uidvalidity, NULL },
		{ "HighestModseq", "t", get_highestmodseq, NULL },
		{ "Messages", "u", get_messages, NULL },
		{ "Unseen", "u", get_unseen, NULL },
		{ "Kind", "s", get_kind, NULL },
		{ "SpecialUse", "s", get_special_use, NULL },
		{ "ConversationId", "s", get_conversation_id, NULL },
		{ "ContributionId", "s", get_contribution_id, NULL },
		{ "Active", "b", get_active, set_active },
		{ NULL },
	},
};
/* clang-format on */
