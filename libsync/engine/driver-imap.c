/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine driver (driver.h) on imap-client: each operation is one
 * command built here; its tagged reply is decoded into an engine_reply
 * (response code, the one new UID of APPENDUID/COPYUID, the MODIFIED
 * set).  Untagged data reaches the engine through engine.c's untagged
 * handler, which turns it into engine_event_*() calls.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cpmsync/error.h>

#include "engine/driver.h"
#include "imap/imap-ns.h"
#include "util/macro.h"

/* A command in flight: where its reply goes. */
struct pending {
	engine_reply_fn cb;
	void *userdata;
};

static struct imap_client *client_of(struct engine_driver *d)
{
	return *((struct engine_driver_imap *)d)->clientp;
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
	if (p.cb)
		p.cb(&reply, p.userdata);
	imap_resp_code_free(&code);
}

static int cmd_vsend(struct engine_driver *d, engine_reply_fn cb, void *userdata,
		     uint64_t max_literal, const char *fmt, va_list ap);

/*
 * Builds and queues one command whose reply goes to cb (none: cb NULL).
 * fmt is the command with these conversions (no other '%'):
 *   %a  text as is (const char *)     %u  uint32_t      %U  uint64_t
 *   %m  a mailbox name (UTF-8, '/')   %M  the same, "" for ""
 *   %q  a string, quoted or literal   %Q  the same, NIL for ""
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
	struct pending *p = NULL;
	struct imap_cmd *cmd;
	int r;

	if (cb) {
		p = malloc(sizeof(*p));
		if (!p)
			return -ENOMEM;
		*p = (struct pending){ cb, userdata };
	}
	r = imap_cmd_new(client_of(d), 0, cb ? reply_cb : NULL, p, &cmd);
	if (r < 0) {
		free(p);
		return r;
	}
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
			r = f[1] == 'Q' && !a[0] ? imap_cmd_add(cmd, "NIL")
						 : imap_cmd_add_string(cmd, a, strlen(a));
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
	if (r < 0) {
		/* Never submitted: its callback never runs. */
		imap_cmd_free(cmd);
		free(p);
		return r;
	}
	imap_cmd_submit(cmd);
	return 0;
}

static bool drv_has(struct engine_driver *d, enum imap_cap cap)
{
	return imap_client_has(client_of(d), cap);
}

static bool drv_enabled(struct engine_driver *d, enum imap_cap cap)
{
	return imap_client_enabled(client_of(d), cap);
}

static int drv_select(struct engine_driver *d, const char *mailbox,
		      const struct engine_select_params *sp, engine_reply_fn cb, void *userdata)
{
	_cleanup_free_ char *params = NULL;

	if (sp->qresync) {
		if (asprintf(&params, " (QRESYNC (%u %llu%s%s))", sp->uidvalidity,
			     (unsigned long long)sp->modseq, sp->known_uids ? " " : "",
			     sp->known_uids ? sp->known_uids : "") < 0) {
			params = NULL;
			return -ENOMEM;
		}
	}
	return cmd_send(d, cb, userdata, "SELECT %m%a", mailbox,
			params		? params
			: sp->condstore ? " (CONDSTORE)"
					: "");
}

static int drv_unselect(struct engine_driver *d)
{
	return cmd_send(d, NULL, NULL, "%a",
			drv_has(d, IMAP_CAP_UNSELECT) ? "UNSELECT" : "EXAMINE INBOX");
}

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static int drv_append(struct engine_driver *d, const char *mailbox, const char *flags,
		      int64_t internaldate, const void *data, size_t len, engine_reply_fn cb,
		      void *userdata)
{
	time_t t = (time_t)internaldate;
	char date[40];
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(date, sizeof(date), "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
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
	struct pending *p = NULL;
	struct imap_cmd *cmd;
	int r;

	if (n == 0)
		return -EINVAL;
	if (cb) {
		p = malloc(sizeof(*p));
		if (!p)
			return -ENOMEM;
		*p = (struct pending){ cb, userdata };
	}
	r = imap_cmd_new(client_of(d), 0, cb ? reply_cb : NULL, p, &cmd);
	if (r < 0) {
		free(p);
		return r;
	}
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
	if (r < 0) {
		imap_cmd_free(cmd);
		free(p);
		return r;
	}
	imap_cmd_submit(cmd);
	return 0;
}

static int drv_personal_namespace(struct engine_driver *d, struct buf *base, const char **shown)
{
	const struct imap_ns_map *ns = imap_client_namespace(client_of(d));

	*shown = imap_ns_map_personal_prefix(ns);
	return imap_ns_personal_base(ns, drv_enabled(d, IMAP_CAP_UTF8_ACCEPT), base);
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
	.personal_namespace = drv_personal_namespace,
	.list = drv_list,
	.status = drv_status,
	.logout = drv_logout,
};

void engine_driver_imap_init(struct engine_driver_imap *d, struct imap_client **clientp)
{
	*d = (struct engine_driver_imap){ .base = { .ops = &imap_ops }, .clientp = clientp };
}
