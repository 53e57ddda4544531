/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine driver (driver.h) on imap-client: each operation is one
 * command built here; its tagged reply is decoded into an engine_reply
 * (response code, the one new UID of APPENDUID/COPYUID, the MODIFIED
 * set).  What the server says on its own (untagged data, the literals
 * of bodies streamed as they come, the connection's state) becomes
 * engine_event_*() calls here too (the client's callbacks), and the
 * connection's life (connect, state, error, traffic, close or give back)
 * is the table's last operations.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/io.h>

#include "engine/driver.h"
#include "imap/imap-ns.h"
#include "util/flags.h"
#include "util/log.h"
#include "util/macro.h"

#define CAT CPMSYNC_LOG_CAT_ENGINE

/* A command in flight: where its reply goes; on_selected: a command on
 * the selected folder (engine_event_selected_answered() first). */
struct pending {
	engine_reply_fn cb;
	void *userdata;
	struct engine_driver *d;
	bool on_selected;
};

static struct imap_client *client_of(struct engine_driver *d)
{
	return ((struct engine_driver_imap *)d)->client;
}

static void reply_cb(struct imap_client *client, const struct imap_cmd_result *res, void *userdata)
{
	struct pending p = *(struct pending *)userdata;
	struct engine_reply reply = { .r = res->r,
				      .text = res->text,
				      .code = IMAP_CODE_NONE,
				      .code_name = res->resp ? res->resp->code : NULL,
				      .bad = res->status == IMAP_STATUS_BAD };
	struct imap_resp_code code;

	(void)client;
	free(userdata);
	imap_resp_code_init(&code);
	if (res->resp && res->resp->code && imap_resp_code_parse(res->resp, &code) >= 0) {
		const struct rangeset *one = code.code == IMAP_CODE_APPENDUID ? &code.set
					     : code.code == IMAP_CODE_COPYUID ? &code.set2
									      : NULL;

		reply.code = code.code;
		if (one && one->n == 1 && one->r[0].lo == one->r[0].hi)
			reply.new_uid = one->r[0].lo;
		if (code.code == IMAP_CODE_MODIFIED)
			reply.modified = &code.set;
	}
	if (p.on_selected && p.d->engine)
		engine_event_selected_answered(p.d->engine, res->r, res->text);
	if (p.cb)
		p.cb(&reply, p.userdata);
	imap_resp_code_free(&code);
}

/* Every command: cmd_open(), its parts (imap_cmd_add*()), then
 * cmd_close() with the status of those, which submits it or drops it.
 * on_selected: a command on the selected folder (struct pending). */
static int cmd_open(struct engine_driver *d, engine_reply_fn cb, void *userdata, bool on_selected,
		    struct imap_cmd **cmd, struct pending **p)
{
	int r;

	*p = NULL;
	if (cb || on_selected) {
		*p = malloc(sizeof(**p));
		if (!*p)
			return -ENOMEM;
		**p = (struct pending){ cb, userdata, d, on_selected };
	}
	r = imap_cmd_new(client_of(d), 0, *p ? reply_cb : NULL, *p, cmd);
	if (r < 0)
		free(*p);
	return r;
}

static int cmd_close(struct imap_cmd *cmd, struct pending *p, int r)
{
	if (r < 0) {
		/* Never submitted: its callback never runs. */
		imap_cmd_free(cmd);
		free(p);
		return r;
	}
	imap_cmd_submit(cmd);
	return 0;
}

static int cmd_vsend(struct engine_driver *d, engine_reply_fn cb, void *userdata,
		     uint64_t max_literal, const char *fmt, va_list ap);

/*
 * Builds and queues one command whose reply goes to cb (none: cb NULL).
 * fmt is the command with these conversions (no other '%'):
 *   %a  text as is (const char *)     %u  uint32_t      %U  uint64_t
 *   %m  a mailbox name (UTF-8, '/')   %M  the same, "" for ""
 *   %q  a string: atom, quoted or literal (an astring)
 *   %Q  a value: quoted or literal, never an atom, NIL for "" (an nstring:
 *       METADATA values, RFC 5464; an atom there is a BAD on Cyrus)
 *   %l  a literal (const void *, size_t)
 */
static int cmd_send(struct engine_driver *d, engine_reply_fn cb, void *userdata, const char *fmt,
		    ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cmd_vsend(d, cb, userdata, 0, fmt, ap);
	va_end(ap);
	return r;
}

/* cmd_send() with a literal limit (imap_cmd_set_max_literal(); 0: none). */
static int cmd_vsend(struct engine_driver *d, engine_reply_fn cb, void *userdata,
		     uint64_t max_literal, const char *fmt, va_list ap)
{
	struct pending *p;
	struct imap_cmd *cmd;
	int r;

	/* UID FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE; and EXPUNGE. */
	r = cmd_open(d, cb, userdata, strncmp(fmt, "UID ", 4) == 0 || streq(fmt, "EXPUNGE"), &cmd,
		     &p);
	if (r < 0)
		return r;
	for (const char *f = fmt; r >= 0 && *f;) {
		const char *a;
		size_t n = strcspn(f, "%");

		if (n) {
			r = imap_cmd_addf(cmd, "%.*s", (int)n, f);
			f += n;
			continue;
		}
		switch (f[1]) {
		case 'a':
			r = imap_cmd_add(cmd, va_arg(ap, const char *));
			break;
		case 'u':
			r = imap_cmd_addf(cmd, "%u", va_arg(ap, uint32_t));
			break;
		case 'U':
			r = imap_cmd_addf(cmd, "%llu", (unsigned long long)va_arg(ap, uint64_t));
			break;
		case 'm':
		case 'M':
			a = va_arg(ap, const char *);
			r = f[1] == 'M' && !a[0] ? imap_cmd_add(cmd, "\"\"")
						 : imap_cmd_add_mailbox(cmd, a);
			break;
		case 'q':
		case 'Q':
			a = va_arg(ap, const char *);
			if (f[1] == 'q')
				r = imap_cmd_add_string(cmd, a, strlen(a));
			else
				r = a[0] ? imap_cmd_add_nstring(cmd, a, strlen(a))
					 : imap_cmd_add(cmd, "NIL");
			break;
		case 'l':
			a = va_arg(ap, const void *);
			r = imap_cmd_add_literal(cmd, a, va_arg(ap, size_t), false);
			break;
		default:
			r = -EINVAL;
			break;
		}
		f += 2;
	}
	if (r >= 0 && max_literal)
		imap_cmd_set_max_literal(cmd, max_literal);
	return cmd_close(cmd, p, r);
}

static char drv_delimiter(struct engine_driver *d)
{
	return imap_client_delimiter(client_of(d));
}

static bool drv_has(struct engine_driver *d, enum imap_cap cap)
{
	return imap_client_has(client_of(d), cap);
}

static bool drv_enabled(struct engine_driver *d, enum imap_cap cap)
{
	return imap_client_enabled(client_of(d), cap);
}

/* A SELECT in flight: where its reply goes (struct engine_driver_imap's
 * before_closed ends with it). */
struct select_wait {
	engine_reply_fn cb;
	void *userdata;
	struct engine_driver_imap *d;
};

static void select_reply(const struct engine_reply *reply, void *userdata)
{
	struct select_wait w = *(struct select_wait *)userdata;

	free(userdata);
	w.d->before_closed = false;
	/* Refused: no mailbox is selected (RFC 3501 6.3.1). */
	w.d->mailbox_open = reply->r == 0;
	if (w.cb)
		w.cb(reply, w.userdata);
}

static int drv_select(struct engine_driver *d, const char *mailbox,
		      const struct engine_select_params *sp, engine_reply_fn cb, void *userdata)
{
	struct engine_driver_imap *di = (struct engine_driver_imap *)d;
	_cleanup_free_ char *params = NULL;
	struct select_wait *w;
	int r;

	if (sp->qresync) {
		if (asprintf(&params, " (QRESYNC (%u %llu%s%s))", sp->uidvalidity,
			     (unsigned long long)sp->modseq, sp->known_uids ? " " : "",
			     sp->known_uids ? sp->known_uids : "") < 0) {
			params = NULL;
			return -ENOMEM;
		}
	}
	w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct select_wait){ cb, userdata, di };
	r = cmd_send(d, select_reply, w, "SELECT %m%a", mailbox,
		     params	     ? params
		     : sp->condstore ? " (CONDSTORE)"
				     : "");
	if (r < 0) {
		free(w);
		return r;
	}
	/* RFC 7162 3.2.11: until [CLOSED], the folder open before. */
	di->before_closed = di->mailbox_open && drv_enabled(d, IMAP_CAP_QRESYNC);
	di->mailbox_open = true;
	return 0;
}

static int drv_unselect(struct engine_driver *d)
{
	bool unselect = drv_has(d, IMAP_CAP_UNSELECT);
	int r;

	r = cmd_send(d, NULL, NULL, "%a", unselect ? "UNSELECT" : "EXAMINE INBOX");
	if (r >= 0 && unselect)
		((struct engine_driver_imap *)d)->mailbox_open = false;
	return r;
}

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/*
 * data with each bare LF made CRLF, in *ret (malloc()ed) when it has any,
 * else *ret NULL.  An APPEND literal is an RFC 5322 message, whose lines
 * end in CRLF: Cyrus refuses one with a bare LF ("Message contains bare
 * newlines"), for good, and Dovecot stores it counted with CRLF.  A message
 * stored with LF line ends (a file written on Unix) goes as CRLF.
 */
static int crlf_copy(const char *data, size_t len, char **ret, size_t *ret_len)
{
	size_t lfs = 0, n = 0;
	char *out;

	*ret = NULL;
	for (size_t i = 0; i < len; i++)
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			lfs++;
	if (!lfs)
		return 0;
	out = malloc(len + lfs);
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			out[n++] = '\r';
		out[n++] = data[i];
	}
	*ret = out;
	*ret_len = n;
	return 0;
}

/* What Store accepts can be sent (its size counted with CRLF line ends). */
_Static_assert(IMAP_MAX_COMMAND_BYTES >= CPMSYNC_OP_MAX_MESSAGE_SIZE + (1u << 20),
	       "an APPEND of the largest message Store accepts fits one command");

static int drv_append(struct engine_driver *d, const char *mailbox, const char *flags,
		      int64_t internaldate, const void *data, size_t len, engine_reply_fn cb,
		      void *userdata)
{
	_cleanup_free_ char *crlf = NULL;
	time_t t = (time_t)internaldate;
	char date[40];
	struct tm tm;
	int r;

	r = crlf_copy(data, len, &crlf, &len);
	if (r < 0)
		return r;
	if (crlf)
		data = crlf;

	/* A date IMAP cannot write (Store refuses one since, but a journal
	 * of an older version may hold it): none, the server's "now", rather
	 * than a refusal for ever. */
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999)
		return cmd_send(d, cb, userdata, "APPEND %m (%a) %l", mailbox, flags, data, len);
	snprintf(date, sizeof(date), "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return cmd_send(d, cb, userdata, "APPEND %m (%a) \"%a\" %l", mailbox, flags, date, data,
			len);
}

static int drv_copy(struct engine_driver *d, bool move, uint32_t uid, const char *mailbox,
		    engine_reply_fn cb, void *userdata)
{
	return cmd_send(d, cb, userdata, "UID %a %u %m", move ? "MOVE" : "COPY", uid, mailbox);
}

static int drv_store(struct engine_driver *d, const char *uids, enum engine_flags_mode mode,
		     const char *flags, uint64_t unchangedsince, engine_reply_fn cb, void *userdata)
{
	static const char *const prefix[] = { "", "+", "-" };

	if (unchangedsince)
		return cmd_send(d, cb, userdata,
				"UID STORE %a (UNCHANGEDSINCE %U) %aFLAGS.SILENT (%a)", uids,
				unchangedsince, prefix[mode], flags);
	return cmd_send(d, cb, userdata, "UID STORE %a %aFLAGS.SILENT (%a)", uids, prefix[mode],
			flags);
}

static int drv_expunge(struct engine_driver *d, const char *uids, engine_reply_fn cb,
		       void *userdata)
{
	if (!uids)
		return cmd_send(d, cb, userdata, "EXPUNGE");
	return cmd_send(d, cb, userdata, "UID EXPUNGE %a", uids);
}

static int drv_search_deleted(struct engine_driver *d, engine_reply_fn cb, void *userdata)
{
	return cmd_send(d, cb, userdata, "UID SEARCH DELETED");
}

static int drv_search(struct engine_driver *d, uint32_t from_uid, const char *message_id,
		      engine_reply_fn cb, void *userdata)
{
	if (message_id && message_id[0])
		return cmd_send(d, cb, userdata, "UID SEARCH UID %u:* HEADER Message-ID %q",
				from_uid, message_id);
	return cmd_send(d, cb, userdata, "UID SEARCH UID %u:*", from_uid);
}

static int drv_search_upto(struct engine_driver *d, uint32_t last, engine_reply_fn cb,
			   void *userdata)
{
	return cmd_send(d, cb, userdata, "UID SEARCH %aUID 1:%u",
			drv_has(d, IMAP_CAP_ESEARCH) ? "RETURN (ALL) " : "", last);
}

static int drv_fetch(struct engine_driver *d, const char *uids, const char *items,
		     engine_reply_fn cb, void *userdata)
{
	return cmd_send(d, cb, userdata, "UID FETCH %a (%a)", uids, items);
}

static int fetch_ext_send(struct engine_driver *d, engine_reply_fn cb, void *userdata,
			  uint64_t max_literal, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cmd_vsend(d, cb, userdata, max_literal, fmt, ap);
	va_end(ap);
	return r;
}

static int drv_fetch_ext(struct engine_driver *d, const char *uids, const char *items,
			 const struct engine_fetch_params *p, engine_reply_fn cb, void *userdata)
{
	if (p->changedsince)
		return fetch_ext_send(d, cb, userdata, p->max_literal,
				      "UID FETCH %a (%a) (CHANGEDSINCE %U%a)", uids, items,
				      p->changedsince, p->vanished ? " VANISHED" : "");
	return fetch_ext_send(d, cb, userdata, p->max_literal, "UID FETCH %a (%a)", uids, items);
}

static int drv_create(struct engine_driver *d, const char *mailbox, engine_reply_fn cb,
		      void *userdata)
{
	return cmd_send(d, cb, userdata, "CREATE %m", mailbox);
}

static int drv_rename(struct engine_driver *d, const char *from, const char *to, engine_reply_fn cb,
		      void *userdata)
{
	return cmd_send(d, cb, userdata, "RENAME %m %m", from, to);
}

static int drv_delete(struct engine_driver *d, const char *mailbox, engine_reply_fn cb,
		      void *userdata)
{
	return cmd_send(d, cb, userdata, "DELETE %m", mailbox);
}

static int drv_set_metadata(struct engine_driver *d, const char *mailbox, const char *entry,
			    const char *value, engine_reply_fn cb, void *userdata)
{
	return cmd_send(d, cb, userdata, "SETMETADATA %M (%q %Q)", mailbox, entry, value);
}

static int drv_set_acl(struct engine_driver *d, const char *mailbox, const char *identifier,
		       const char *rights, engine_reply_fn cb, void *userdata)
{
	if (!rights[0])
		return cmd_send(d, cb, userdata, "DELETEACL %m %q", mailbox, identifier);
	return cmd_send(d, cb, userdata, "SETACL %m %q %q", mailbox, identifier, rights);
}

static int drv_store_annotations(struct engine_driver *d, uint32_t uid,
				 const struct engine_annotation *a, size_t n, engine_reply_fn cb,
				 void *userdata)
{
	struct pending *p;
	struct imap_cmd *cmd;
	int r;

	if (n == 0)
		return -EINVAL;
	r = cmd_open(d, cb, userdata, true, &cmd, &p);
	if (r < 0)
		return r;
	r = imap_cmd_addf(cmd, "UID STORE %u ANNOTATION (", uid);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		bool first = i == 0 || strcmp(a[i - 1].entry, a[i].entry) != 0;
		bool last = i + 1 == n || strcmp(a[i + 1].entry, a[i].entry) != 0;

		if (first) {
			if (i)
				r = imap_cmd_add(cmd, " ");
			if (r >= 0)
				r = imap_cmd_add_string(cmd, a[i].entry, strlen(a[i].entry));
			if (r >= 0)
				r = imap_cmd_add(cmd, " (");
		} else {
			r = imap_cmd_add(cmd, " ");
		}
		if (r >= 0)
			r = imap_cmd_add(cmd, a[i].shared ? "value.shared " : "value.priv ");
		if (r >= 0)
			r = a[i].value[0]
				    ? imap_cmd_add_nstring(cmd, a[i].value, strlen(a[i].value))
				    : imap_cmd_add(cmd, "NIL");
		if (r >= 0 && last)
			r = imap_cmd_add(cmd, ")");
	}
	if (r >= 0)
		r = imap_cmd_add(cmd, ")");
	return cmd_close(cmd, p, r);
}

static int drv_fetch_annotations(struct engine_driver *d, const char *uids,
				 const char *const *entries, engine_reply_fn cb, void *userdata)
{
	struct pending *p;
	struct imap_cmd *cmd;
	int r;

	if (!entries[0])
		return -EINVAL;
	r = cmd_open(d, cb, userdata, true, &cmd, &p);
	if (r < 0)
		return r;
	r = imap_cmd_addf(cmd, "UID FETCH %s (ANNOTATION ((", uids);
	for (size_t i = 0; r >= 0 && entries[i]; i++) {
		if (i)
			r = imap_cmd_add(cmd, " ");
		if (r >= 0)
			r = imap_cmd_add_string(cmd, entries[i], strlen(entries[i]));
	}
	if (r >= 0)
		r = imap_cmd_add(cmd, ") (value.priv value.shared)))");
	return cmd_close(cmd, p, r);
}

static int drv_personal_namespace(struct engine_driver *d, struct buf *base, const char **shown)
{
	const struct imap_ns_map *ns = imap_client_namespace(client_of(d));

	*shown = imap_ns_map_personal_prefix(ns);
	return imap_ns_personal_base(ns, drv_enabled(d, IMAP_CAP_UTF8_ACCEPT), base);
}

static bool drv_hidden_root(struct engine_driver *d, const char *name)
{
	return imap_ns_hidden_root(imap_client_namespace(client_of(d)), name);
}

static bool drv_foreign_root(struct engine_driver *d, const char *name)
{
	return imap_ns_foreign_root(imap_client_namespace(client_of(d)), name);
}

static int drv_list(struct engine_driver *d, enum engine_list_kind kind, engine_reply_fn cb,
		    void *userdata)
{
	static const char *const returns[] = {
		[ENGINE_LIST_NAMES] = "",
		[ENGINE_LIST_STATUS] =
			" RETURN (SPECIAL-USE STATUS (UIDVALIDITY UIDNEXT MESSAGES))",
		[ENGINE_LIST_STATUS_MODSEQ] = " RETURN (SPECIAL-USE STATUS (UIDVALIDITY UIDNEXT "
					      "MESSAGES HIGHESTMODSEQ))",
		[ENGINE_LIST_MAILBOXID] = " RETURN (STATUS (UIDVALIDITY MAILBOXID))",
	};

	return cmd_send(d, cb, userdata, "LIST \"\" \"*\"%a", returns[kind]);
}

static int drv_status(struct engine_driver *d, const char *mailbox, engine_reply_fn cb,
		      void *userdata)
{
	return cmd_send(d, cb, userdata, "STATUS %m (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)",
			mailbox);
}

static void drv_logout(struct engine_driver *d)
{
	/* The client's state callback (engine.c) reports the close. */
	imap_client_logout(client_of(d));
}

static int drv_connect(struct engine_driver *d, int fd);
static bool drv_ready(struct engine_driver *d);
static const char *drv_error(struct engine_driver *d);
static bool *drv_checked(struct engine_driver *d);
static struct rangeset *drv_checked_folders(struct engine_driver *d);
static void drv_traffic(struct engine_driver *d, uint64_t *ret_in, uint64_t *ret_out);
static void drv_release(struct engine_driver *d, bool give_back);

static const struct engine_driver_ops imap_ops = {
	.has = drv_has,
	.enabled = drv_enabled,
	.select = drv_select,
	.unselect = drv_unselect,
	.append = drv_append,
	.copy = drv_copy,
	.store = drv_store,
	.expunge = drv_expunge,
	.search = drv_search,
	.search_upto = drv_search_upto,
	.search_deleted = drv_search_deleted,
	.fetch = drv_fetch,
	.fetch_ext = drv_fetch_ext,
	.create = drv_create,
	.rename = drv_rename,
	.delete = drv_delete,
	.set_metadata = drv_set_metadata,
	.set_acl = drv_set_acl,
	.store_annotations = drv_store_annotations,
	.fetch_annotations = drv_fetch_annotations,
	.personal_namespace = drv_personal_namespace,
	.delimiter = drv_delimiter,
	.hidden_root = drv_hidden_root,
	.foreign_root = drv_foreign_root,
	.list = drv_list,
	.status = drv_status,
	.logout = drv_logout,
	.connect = drv_connect,
	.ready = drv_ready,
	.error = drv_error,
	.checked = drv_checked,
	.checked_folders = drv_checked_folders,
	.traffic = drv_traffic,
	.release = drv_release,
};

/* ------------------------------------------------------------------ */
/* What the server says on its own: engine_event_*() */

static void body_sink_reset(struct body_sink *k)
{
	if (k->fd >= 0)
		close(k->fd);
	buf_reset(&k->mem);
	*k = (struct body_sink){ .mem = k->mem, .fd = -1 };
}

/* Streaming literals (bodies) */

static bool lit_begin(void *userdata, uint32_t number, const char *name, const char *item,
		      uint64_t size)
{
	struct engine_driver_imap *d = userdata;
	struct cpmsync_sync *e = d->base.engine;
	struct body_sink *k = &d->sink;

	(void)number;
	if (!(engine_event_takes(e) & ENGINE_TAKES_BODY) || !name ||
	    strcasecmp(name, "FETCH") != 0 || !item)
		return false;
	/* BODY[]<0>: the answer to BODY.PEEK[]<0.n> */
	if (strcasecmp(item, "BODY[]") != 0 && strcasecmp(item, "BODY[]<0>") != 0 &&
	    strcasecmp(item, "BODY[HEADER]") != 0)
		return false;
	body_sink_reset(k);
	k->active = true;
	k->size = size;
	/* A header is read for its summary, from the first
	 * ENGINE_BODY_MEM_MAX bytes: the rest of a larger one goes. */
	if (size > ENGINE_BODY_MEM_MAX && strncasecmp(item, "BODY[]", 6) == 0) {
		const char *dir = getenv("TMPDIR");

		k->tmp_dir = dir && *dir ? dir : "/tmp";
		k->fd = open(k->tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (k->fd < 0) {
			k->error = -errno;
			k->error_dir = k->tmp_dir;
		}
	}
	return true;
}

static int lit_data(void *userdata, const void *data, size_t len)
{
	struct engine_driver_imap *d = userdata;
	struct body_sink *k = &d->sink;
	int r;

	if (!k->active || k->error)
		return 0;
	if (k->mem.len < ENGINE_BODY_MEM_MAX) {
		size_t room = ENGINE_BODY_MEM_MAX - k->mem.len;

		r = buf_append(&k->mem, data, len < room ? len : room);
		if (r < 0)
			k->error = r;
	}
	if (k->fd >= 0) {
		r = cpmsync_write_all(k->fd, data, len);
		if (r < 0) {
			k->error = r;
			k->error_dir = k->tmp_dir;
		}
	}
	k->written += len;
	return 0;
}

static void lit_end(void *userdata)
{
	struct engine_driver_imap *d = userdata;

	if (d->sink.active)
		d->sink.complete = true;
}

static int flags_string(const struct imap_flags *fl, char **ret)
{
	const char *v[256];
	size_t n = 0;

	if (fl->count > ARRAY_SIZE(v))
		return -CPMSYNC_E_PROTOCOL;
	for (size_t i = 0; i < fl->count; i++) {
		const struct imap_arg *a = &fl->args[i];

		/* Flags we cannot represent (not flag_valid) are skipped,
		 * never fatal: a server may use odd keywords. */
		if (a->type != IMAP_ARG_ATOM || !flag_valid(a->u.s.str, a->u.s.len))
			continue;
		v[n++] = a->u.s.str;
	}
	return flags_from_list(v, n, ret);
}

/* A FETCH response as engine_event_fetch() takes it (the imap-client
 * side: the streamed literal, d->sink, is its body). */
static void fetch_event(struct engine_driver_imap *d, const struct imap_fetch *f)
{
	struct cpmsync_sync *e = d->base.engine;
	_cleanup_free_ char *flags = NULL, *emailid = NULL, *threadid = NULL;
	_cleanup_free_ struct engine_fetch_annotation *ann = NULL;
	_cleanup_buf_ struct buf bs = BUF_INIT(1u << 20);
	struct engine_fetch ef = { .uid = f->uid };
	struct engine_body body;
	int r;

	if (!(f->present & IMAP_FETCH_UID))
		return;
	if (f->present & IMAP_FETCH_FLAGS) {
		r = flags_string(&f->flags, &flags);
		if (r >= 0) {
			ef.present |= ENGINE_FETCH_FLAGS;
			ef.flags = flags;
		} else {
			ef.flags_error = r; /* whether that matters is the engine's call */
		}
	}
	if (f->present & IMAP_FETCH_MODSEQ) {
		ef.present |= ENGINE_FETCH_MODSEQ;
		ef.modseq = f->modseq;
	}
	if (f->present & IMAP_FETCH_RFC822_SIZE) {
		ef.present |= ENGINE_FETCH_SIZE;
		ef.size = f->rfc822_size;
	}
	if (f->present & IMAP_FETCH_INTERNALDATE) {
		ef.present |= ENGINE_FETCH_DATE;
		ef.internaldate = (int64_t)f->internaldate;
	}
	if ((f->present & IMAP_FETCH_BODYSTRUCTURE) && f->bodystructure) {
		ef.present |= ENGINE_FETCH_BODYSTRUCTURE;
		(void)imap_arg_write(&bs, f->bodystructure); /* too large: not kept */
		ef.bodystructure = bs.len ? bs.data : NULL;
	}
	if ((f->present & IMAP_FETCH_EMAILID) && f->emailid.str) {
		emailid = strndup(f->emailid.str, f->emailid.len);
		if ((f->present & IMAP_FETCH_THREADID) && f->threadid.str)
			threadid = strndup(f->threadid.str, f->threadid.len);
		if (!emailid ||
		    ((f->present & IMAP_FETCH_THREADID) && f->threadid.str && !threadid)) {
			engine_event_error(e, -ENOMEM, "store: out of memory");
			return;
		}
		ef.present |= ENGINE_FETCH_OBJECTIDS;
		ef.emailid = emailid;
		ef.threadid = threadid;
	}
	if ((f->present & IMAP_FETCH_ANNOTATION) && f->annotation_values) {
		ann = calloc(f->nannotations ? f->nannotations : 1, sizeof(*ann));
		if (!ann) {
			engine_event_error(e, -ENOMEM, "out of memory");
			return;
		}
		for (size_t i = 0; i < f->nannotations; i++) {
			struct imap_annotation_entry en;

			if (imap_fetch_annotation_get(f, i, &en) < 0)
				continue;
			ann[ef.n_annotations++] = (struct engine_fetch_annotation){
				.entry = en.name.str,
				.entry_len = en.name.len,
				.has_priv = en.has_priv,
				.has_shared = en.has_shared,
				.priv = en.priv.str,
				.priv_len = en.priv.len,
				.shared = en.shared.str,
				.shared_len = en.shared.len,
			};
		}
		ef.present |= ENGINE_FETCH_ANNOTATION;
		ef.annotations = ann;
	}
	if (d->sink.complete) {
		body = (struct engine_body){
			.full = imap_fetch_find_section(f, "BODY[]") != NULL,
			.size = d->sink.size,
			.head = d->sink.mem.data,
			.head_len = d->sink.mem.len,
			.fd = d->sink.fd,
			.len = d->sink.written,
			.error = d->sink.error,
			.error_dir = d->sink.error_dir,
		};
		ef.body = &body;
	}
	engine_event_fetch(e, &ef);
}

static void on_fetch(struct engine_driver_imap *d, const struct imap_response *resp)
{
	struct imap_fetch f;
	int r;

	r = imap_resp_fetch(resp, &f);
	if (r < 0) {
		engine_event_error(d->base.engine, r, "malformed FETCH response from the server");
		return;
	}
	fetch_event(d, &f);
	body_sink_reset(&d->sink);
}

/* The imap-client side of engine_event_list(): the name made local. */
static void on_list(struct engine_driver_imap *d, const struct imap_response *resp)
{
	struct cpmsync_sync *e = d->base.engine;
	struct buf name = BUF_INIT(4096);
	struct engine_list el;
	struct imap_list l;
	int r;

	if (!(engine_event_takes(e) & ENGINE_TAKES_LIST))
		return; /* list_ids(): the folders are known */
	r = imap_resp_list(resp, &l);
	if (r < 0 || !l.mailbox.str) {
		engine_event_error(e, r < 0 ? r : -CPMSYNC_E_PROTOCOL, "malformed LIST response");
		goto out;
	}
	if (l.delimiter && !d->delimiter) {
		d->delimiter = l.delimiter;
		imap_client_set_delimiter(d->client, l.delimiter);
	}
	r = imap_client_mailbox_to_local(d->client, l.mailbox.str, l.mailbox.len,
					 l.delimiter ? l.delimiter : '/', &name);
	if (r == -ENOENT) /* another namespace, hidden */
		goto out;
	el = (struct engine_list){ .name = r < 0 ? NULL : name.data,
				   .name_error = r < 0 ? r : 0,
				   .raw = l.mailbox.str,
				   .raw_len = l.mailbox.len,
				   .attrs = l.attrs };
	engine_event_list(e, &el);
out:
	buf_free(&name);
}

/* The imap-client side of engine_event_status(). */
static void on_status(struct engine_driver_imap *d, const struct imap_response *resp)
{
	struct buf name = BUF_INIT(4096);
	struct imap_status_data st;

	if (imap_resp_status(resp, &st) < 0 || !st.mailbox.str)
		return;
	if (imap_client_mailbox_to_local(d->client, st.mailbox.str, st.mailbox.len,
					 d->delimiter ? d->delimiter : '/', &name) >= 0)
		engine_event_status(d->base.engine, &(struct engine_status){
							    .name = name.data,
							    .present = st.present,
							    .uidvalidity = st.uidvalidity,
							    .uidnext = st.uidnext,
							    .messages = st.messages,
							    .highestmodseq = st.highestmodseq,
							    .mailboxid = st.mailboxid.str,
							    .mailboxid_len = st.mailboxid.len,
						    });
	buf_free(&name);
}

static void on_status_code(struct engine_driver_imap *d, const struct imap_response *resp)
{
	struct cpmsync_sync *e = d->base.engine;

	if (!resp->code || imap_resp_code_parse(resp, &d->code) < 0)
		return;
	switch (d->code.code) {
	case IMAP_CODE_CLOSED:
		d->before_closed = false;
		break;
	case IMAP_CODE_UIDVALIDITY:
		/* The selected folder's, whether or not [CLOSED] came. */
		d->before_closed = false;
		engine_event_code(e, d->code.code, d->code.num);
		break;
	case IMAP_CODE_UIDNEXT:
		engine_event_code(e, d->code.code, d->code.num);
		break;
	case IMAP_CODE_HIGHESTMODSEQ:
		engine_event_code(e, d->code.code, d->code.num64);
		break;
	case IMAP_CODE_NOMODSEQ:
		engine_event_code(e, d->code.code, 0);
		break;
	case IMAP_CODE_MAILBOXID:
		if (d->code.objectid.str)
			engine_event_mailboxid(e, d->code.objectid.str, d->code.objectid.len);
		break;
	case IMAP_CODE_PERMANENTFLAGS: {
		_cleanup_free_ char *flags = NULL;

		/* One we cannot read is as none: every flag kept. */
		if (flags_string(&d->code.flags, &flags) >= 0)
			engine_event_permanent_flags(e, flags, d->code.flags.new_keywords);
		break;
	}
	case IMAP_CODE_COPYUID:
		/* MOVE reports it untagged (RFC 6851 4.3); one message at a
		 * time, so the destination set is one UID. */
		if (d->code.set2.n == 1 && d->code.set2.r[0].lo == d->code.set2.r[0].hi)
			engine_event_code(e, d->code.code, d->code.set2.r[0].lo);
		break;
	default:
		break;
	}
}

/* The imap-client side of engine_event_vanished(). */
static void on_vanished(struct engine_driver_imap *d, const struct imap_response *resp)
{
	struct cpmsync_sync *e = d->base.engine;
	struct imap_vanished v;
	int r;

	if (!(engine_event_takes(e) & ENGINE_TAKES_VANISHED))
		return;
	imap_vanished_init(&v);
	r = imap_resp_vanished(resp, &v);
	if (r < 0)
		engine_event_error(e, r, "malformed VANISHED response");
	else
		engine_event_vanished(e, v.earlier, &v.uids);
	imap_vanished_free(&v);
}

static void on_search(struct engine_driver_imap *d, const struct imap_response *resp, bool esearch)
{
	struct cpmsync_sync *e = d->base.engine;
	int r;

	if (esearch) {
		struct imap_esearch es;

		imap_esearch_init(&es);
		r = imap_resp_esearch(resp, &es);
		for (size_t i = 0; r >= 0 && i < es.all.n; i++)
			engine_event_search(e, es.all.r[i].lo, es.all.r[i].hi);
		imap_esearch_free(&es);
	} else {
		struct imap_search s;

		imap_search_init(&s);
		r = imap_resp_search(resp, &s);
		for (size_t i = 0; r >= 0 && i < s.nums.n; i++)
			engine_event_search(e, s.nums.r[i].lo, s.nums.r[i].hi);
		imap_search_free(&s);
	}
	if (r < 0)
		engine_event_error(e, r, "malformed SEARCH response");
}

/*
 * A FETCH or VANISHED before the [CLOSED] of a SELECT: news of the folder
 * it closes (RFC 7162 3.2.11), never of the one selected.  Dropped, not
 * applied to the folder closed: a VANISHED there may be Cyrus's report of
 * a rename (every message, engine-internal.h held_vanished), which only a
 * command answered on that folder would tell from expunges, and none
 * comes now.  Nothing is lost: those changes are above the HIGHESTMODSEQ
 * the store holds for that folder, so its next CHANGEDSINCE or QRESYNC
 * SELECT reports them again, and its raised HIGHESTMODSEQ (LIST-STATUS,
 * STATUS, the session's check before it waits) has it synced.
 */
static void closed_folder_news(const char *what)
{
	log_debug(CAT, "%s before the [CLOSED] of a SELECT: of the folder closed, not applied",
		  what);
}

static void untagged_cb(struct imap_client *client, const struct imap_response *resp,
			void *userdata)
{
	struct engine_driver_imap *d = userdata;
	struct cpmsync_sync *e = d->base.engine;
	uint32_t n;

	(void)client;
	if (resp->kind == IMAP_RESP_UNTAGGED)
		engine_event_observe(e, resp);
	if (!engine_event_takes(e) || resp->kind != IMAP_RESP_UNTAGGED) {
		body_sink_reset(&d->sink);
		return;
	}
	switch (imap_resp_type(resp)) {
	case IMAP_RT_FETCH:
		if (d->before_closed) {
			closed_folder_news("FETCH");
			break;
		}
		on_fetch(d, resp);
		return;
	case IMAP_RT_LIST:
		on_list(d, resp);
		break;
	case IMAP_RT_STATUS:
		on_status(d, resp);
		break;
	case IMAP_RT_VANISHED:
		if (d->before_closed) {
			closed_folder_news("VANISHED");
			break;
		}
		on_vanished(d, resp);
		break;
	case IMAP_RT_EXISTS:
		if (imap_resp_exists(resp, &n) == 0)
			engine_event_exists(e, n);
		break;
	case IMAP_RT_EXPUNGE:
		engine_event_expunge(e);
		break;
	case IMAP_RT_SEARCH:
		on_search(d, resp, false);
		break;
	case IMAP_RT_ESEARCH:
		on_search(d, resp, true);
		break;
	case IMAP_RT_OTHER:
		if (resp->status == IMAP_STATUS_OK)
			on_status_code(d, resp);
		break;
	default:
		break;
	}
	body_sink_reset(&d->sink);
}

static void state_cb(struct imap_client *client, int r, const char *reason, void *userdata)
{
	struct engine_driver_imap *d = userdata;
	struct cpmsync_sync *e = d->base.engine;

	if (r == 0 && imap_client_get_state(client) == IMAP_CLIENT_READY)
		engine_event_ready(e);
	else
		engine_event_closed(e, r, reason);
}

/* A FETCH response over the line limit: skipped whole when the engine
 * does without it (a literal it had before the limit goes with it). */
static bool long_fetch(void *userdata, uint32_t number, uint32_t uid)
{
	struct engine_driver_imap *d = userdata;

	(void)number;
	body_sink_reset(&d->sink);
	return engine_event_fetch_too_long(d->base.engine, uid);
}

static const struct imap_client_callbacks callbacks = {
	.state = state_cb,
	.untagged = untagged_cb,
	.literals = { .literal_begin = lit_begin,
		      .literal_data = lit_data,
		      .literal_end = lit_end,
		      .long_fetch = long_fetch },
};

/* ------------------------------------------------------------------ */
/* The connection's life */

static int drv_connect(struct engine_driver *d, int fd)
{
	return fd >= 0 ? imap_client_connect_fd(client_of(d), fd)
		       : imap_client_connect(client_of(d));
}

static bool drv_ready(struct engine_driver *d)
{
	return client_of(d) && imap_client_get_state(client_of(d)) == IMAP_CLIENT_READY;
}

static const char *drv_error(struct engine_driver *d)
{
	return imap_client_error(client_of(d));
}

static bool *drv_checked(struct engine_driver *d)
{
	return client_of(d) ? imap_client_user_mark(client_of(d)) : NULL;
}

static struct rangeset *drv_checked_folders(struct engine_driver *d)
{
	return client_of(d) ? imap_client_user_set(client_of(d)) : NULL;
}

static void drv_traffic(struct engine_driver *d, uint64_t *ret_in, uint64_t *ret_out)
{
	if (client_of(d))
		imap_client_traffic(client_of(d), ret_in, ret_out);
}

static void drv_release(struct engine_driver *d, bool give_back)
{
	struct engine_driver_imap *di = (struct engine_driver_imap *)d;

	if (!di->client)
		return;
	if (give_back && di->owner) {
		/* Nothing is in flight once the run ended well. */
		imap_client_set_callbacks(di->client, NULL, NULL);
		*di->owner = di->client;
		di->client = NULL;
	} else {
		/* Closing completes what is queued; those callbacks see the
		 * run ended and do nothing. */
		di->client = imap_client_free(di->client);
	}
}

int engine_driver_imap_new(struct engine_driver_imap *d, struct cpmsync_loop *loop,
			   const struct cpmsync_account *account)
{
	return imap_client_new(loop, account, &callbacks, d, &d->client);
}

void engine_driver_imap_adopt(struct engine_driver_imap *d, struct imap_client **owner)
{
	d->client = *owner;
	*owner = NULL;
	d->owner = owner;
	/* The session's SELECT (IDLE) may have left one. */
	d->mailbox_open = true;
	imap_client_set_callbacks(d->client, &callbacks, d);
}

void engine_driver_imap_init(struct engine_driver_imap *d)
{
	*d = (struct engine_driver_imap){ .base = { .ops = &imap_ops } };
	d->sink.fd = -1;
	buf_init(&d->sink.mem, ENGINE_BODY_MEM_MAX + 1);
	imap_resp_code_init(&d->code);
}

void engine_driver_imap_fini(struct engine_driver_imap *d)
{
	d->client = imap_client_free(d->client);
	body_sink_reset(&d->sink);
	buf_free(&d->sink.mem);
	imap_resp_code_free(&d->code);
}
