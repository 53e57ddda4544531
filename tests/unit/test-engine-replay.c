/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Replay (engine-replay.c) against a scripted driver (engine/driver.h):
 * each journal operation, refusals, the verification of an operation an
 * interrupted run may have sent, and a UIDVALIDITY change; whole runs
 * (the folder sync); the connection's life (a failed connect or login, a
 * connection lost during set-up, the capabilities the login told, a
 * session's connection given back or closed); all without a server.  The
 * script lists the driver calls the engine must make, in order, each with
 * the untagged data and the reply the "server" gives; replies come later
 * from the loop, as a real connection's would.
 */
#include <sqlite3.h>

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/log.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "engine/engine-internal.h"
#include "store/store.h"
#include "testlib.h"

/* --- the scripted driver --- */

#define CAP(c) (UINT64_C(1) << (c))

enum ev_kind {
	EV_NONE,
	EV_FETCH,
	EV_SEARCH,
	EV_CODE,
	EV_LIST,
	EV_STATUS,
	EV_EXISTS,	   /* value */
	EV_VANISHED,	   /* lo:hi, EARLIER when value */
	EV_MAILBOXID,	   /* list.name */
	EV_NEW_RANGE,	   /* new messages lo..hi, as fetch (its uid not used) */
	EV_PERMANENTFLAGS, /* list.name: the flags; "\\*" in it when value */
};

/* Untagged data sent before a reply. */
struct ev {
	enum ev_kind kind;
	struct engine_fetch fetch; /* EV_FETCH */
	uint32_t lo, hi;	   /* EV_SEARCH */
	enum imap_code code;	   /* EV_CODE */
	uint64_t value;
	struct engine_list list;     /* EV_LIST */
	struct engine_status status; /* EV_STATUS */
};

#define N_EV 8

struct step {
	const char *call; /* what the engine must call, as fake_call() spells it */
	int r;		  /* the reply: 0, -CPMSYNC_E_SERVER (NO), ... */
	const char *text;
	enum imap_code code;
	const char *code_name; /* the code as the server wrote it */
	bool bad;	       /* a BAD, not a NO */
	uint32_t new_uid;
	uint32_t modified; /* a UID in MODIFIED (0: none) */
	struct ev ev[N_EV];
	/* A local call made while the command is in flight (run by the
	 * loop just before the reply is delivered, as a D-Bus call would). */
	void (*during)(void);
	/* "connect": logged in (ready) unless lost or r < 0, which close the
	 * connection with r and text; at_once: ops->connect() itself fails
	 * with r (ops->error(): text).  caps, enabled: what the login told
	 * (0: the run's). */
	bool lost, at_once;
	uint64_t caps, enabled;
	/* Not 0: the driver cannot even write the command (returns this,
	 * no reply follows), as a command over IMAP_MAX_COMMAND_BYTES. */
	int send_r;
};

/* Commands in flight at once (a flag batch pipelines one per row). */
#define FAKE_QUEUE 512

struct pending {
	engine_reply_fn cb;
	void *userdata;
	const struct step *step;
	bool connect; /* the end of ops->connect(): ready or closed */
};

struct fake {
	struct engine_driver base;
	struct cpmsync_loop *loop;
	const struct step *script;
	size_t pos;
	uint64_t caps, enabled; /* bit (enum imap_cap) */
	struct pending queue[FAKE_QUEUE];
	size_t n_queue;
	bool scheduled, closing;
	/* The connection: bytes it reports (ops->traffic()), and how the run
	 * let it go (ops->release(): 1 closed, 2 given back). */
	uint64_t bytes_in, bytes_out;
	int released;
	bool connected; /* logged in (ops->ready() until released) */
	const char *error;
};

static void fake_deliver(struct cpmsync_loop_source *src, void *userdata);

static void fake_schedule(struct fake *f)
{
	if (f->scheduled)
		return;
	ck_assert_int_eq(cpmsync_loop_defer(f->loop, fake_deliver, f, NULL, NULL), 0);
	f->scheduled = true;
}

/* Replies one queued command: its untagged data, then its reply. */
static void fake_deliver(struct cpmsync_loop_source *src, void *userdata)
{
	struct fake *f = userdata;
	struct rangeset modified = RANGESET_INIT;
	struct pending p;
	struct engine_reply reply;

	(void)src;
	f->scheduled = false;
	if (f->closing) {
		f->closing = false;
		f->connected = false;
		engine_event_closed(f->base.engine, 0, NULL);
		return;
	}
	if (f->n_queue == 0)
		return;
	p = f->queue[0];
	memmove(f->queue, f->queue + 1, --f->n_queue * sizeof(f->queue[0]));
	if (f->n_queue)
		fake_schedule(f);
	if (p.connect) {
		if (p.step->lost || p.step->r < 0) {
			f->connected = false;
			engine_event_closed(f->base.engine, p.step->r, p.step->text);
			return;
		}
		if (p.step->caps) {
			f->caps = p.step->caps;
			f->enabled = p.step->enabled;
		}
		f->connected = true;
		engine_event_ready(f->base.engine);
		return;
	}
	if (p.step->during)
		p.step->during();
	for (size_t i = 0; i < N_EV && p.step->ev[i].kind != EV_NONE; i++) {
		const struct ev *ev = &p.step->ev[i];
		struct engine_list l = ev->list;
		struct engine_status st = ev->status;

		switch (ev->kind) {
		case EV_FETCH:
			engine_event_fetch(f->base.engine, &ev->fetch);
			break;
		case EV_SEARCH:
			engine_event_search(f->base.engine, ev->lo, ev->hi);
			break;
		case EV_CODE:
			engine_event_code(f->base.engine, ev->code, ev->value);
			break;
		case EV_LIST:
			/* As the server wrote it: the local name here. */
			if (!l.raw) {
				l.raw = l.name;
				l.raw_len = strlen(l.name);
			}
			engine_event_list(f->base.engine, &l);
			break;
		case EV_STATUS:
			if (st.mailboxid)
				st.mailboxid_len = strlen(st.mailboxid);
			engine_event_status(f->base.engine, &st);
			break;
		case EV_EXISTS:
			engine_event_exists(f->base.engine, (uint32_t)ev->value);
			break;
		case EV_VANISHED: {
			struct rangeset uids = RANGESET_INIT;

			ck_assert_int_eq(rangeset_add_range(&uids, ev->lo, ev->hi), 0);
			engine_event_vanished(f->base.engine, ev->value, &uids);
			rangeset_free(&uids);
			break;
		}
		case EV_MAILBOXID:
			engine_event_mailboxid(f->base.engine, ev->list.name,
					       strlen(ev->list.name));
			break;
		case EV_PERMANENTFLAGS:
			engine_event_permanent_flags(f->base.engine, ev->list.name, ev->value);
			break;
		case EV_NEW_RANGE:
			for (uint32_t uid = ev->lo; uid <= ev->hi; uid++) {
				struct engine_fetch one = ev->fetch;

				one.uid = uid;
				engine_event_fetch(f->base.engine, &one);
			}
			break;
		case EV_NONE:
			break;
		}
	}
	if (p.step->modified)
		ck_assert_int_eq(rangeset_add(&modified, p.step->modified), 0);
	reply = (struct engine_reply){ .r = p.step->r,
				       .text = p.step->text,
				       .code = p.step->code,
				       .code_name = p.step->code_name,
				       .bad = p.step->bad,
				       .new_uid = p.step->new_uid,
				       .modified = p.step->modified ? &modified : NULL };
	if (p.cb)
		p.cb(&reply, p.userdata);
	rangeset_free(&modified);
}

/* Longest call fake_call() compares (a longer one is cut): more than a
 * command line of the replay (ENGINE_LINE_MAX). */
#define FAKE_CALL_MAX 2048

/* Checks call against the script and queues its reply. */
static int fake_call(struct engine_driver *d, engine_reply_fn cb, void *userdata, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));
static int fake_call(struct engine_driver *d, engine_reply_fn cb, void *userdata, const char *fmt,
		     ...)
{
	struct fake *f = (struct fake *)d;
	const struct step *st = &f->script[f->pos];
	char call[FAKE_CALL_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(call, sizeof(call), fmt, ap);
	va_end(ap);
	ck_assert_msg(st->call, "unexpected call after the script: %s", call);
	ck_assert_str_eq(call, st->call);
	f->pos++;
	if (st->send_r)
		return st->send_r;
	if (cb || st->ev[0].kind != EV_NONE || st->during) {
		ck_assert_uint_lt(f->n_queue, FAKE_QUEUE);
		f->queue[f->n_queue++] = (struct pending){ cb, userdata, st, false };
		fake_schedule(f);
	}
	return 0;
}

static bool fake_has(struct engine_driver *d, enum imap_cap cap)
{
	return ((struct fake *)d)->caps & CAP(cap);
}

static bool fake_enabled(struct engine_driver *d, enum imap_cap cap)
{
	return ((struct fake *)d)->enabled & CAP(cap);
}

static int fake_select(struct engine_driver *d, const char *mailbox,
		       const struct engine_select_params *p, engine_reply_fn cb, void *userdata)
{
	return fake_call(d, cb, userdata, "select %s%s", mailbox,
			 p->qresync	? " qresync"
			 : p->condstore ? " condstore"
					: "");
}

static int fake_unselect(struct engine_driver *d)
{
	return fake_call(d, NULL, NULL, "unselect");
}

static int fake_append(struct engine_driver *d, const char *mailbox, const char *flags,
		       int64_t internaldate, const void *data, size_t len, engine_reply_fn cb,
		       void *userdata)
{
	return fake_call(d, cb, userdata, "append %s (%s) %lld %.*s", mailbox, flags,
			 (long long)internaldate, (int)len, (const char *)data);
}

static int fake_copy(struct engine_driver *d, bool move, uint32_t uid, const char *mailbox,
		     engine_reply_fn cb, void *userdata)
{
	return fake_call(d, cb, userdata, "%s %u %s", move ? "move" : "copy", uid, mailbox);
}

static int fake_store(struct engine_driver *d, const char *uids, enum engine_flags_mode mode,
		      const char *flags, uint64_t unchangedsince, engine_reply_fn cb,
		      void *userdata)
{
	return fake_call(d, cb, userdata, "store %s %s(%s) %llu", uids,
			 (const char *[]){ "", "+", "-" }[mode], flags,
			 (unsigned long long)unchangedsince);
}

static int fake_expunge(struct engine_driver *d, const char *uids, engine_reply_fn cb,
			void *userdata)
{
	if (!uids)
		return fake_call(d, cb, userdata, "expunge (all deleted)");
	return fake_call(d, cb, userdata, "expunge %s", uids);
}

static int fake_search_deleted(struct engine_driver *d, engine_reply_fn cb, void *userdata)
{
	return fake_call(d, cb, userdata, "search deleted");
}

static int fake_search(struct engine_driver *d, uint32_t from_uid, const char *message_id,
		       engine_reply_fn cb, void *userdata)
{
	return fake_call(d, cb, userdata, "search %u: %s", from_uid, message_id ? message_id : "-");
}

static int fake_search_upto(struct engine_driver *d, uint32_t last, engine_reply_fn cb,
			    void *userdata)
{
	return fake_call(d, cb, userdata, "search 1:%u", last);
}

static int fake_fetch(struct engine_driver *d, const char *uids, const char *items,
		      engine_reply_fn cb, void *userdata)
{
	return fake_call(d, cb, userdata, "fetch %s (%s)", uids, items);
}

static int fake_fetch_ext(struct engine_driver *d, const char *uids, const char *items,
			  const struct engine_fetch_params *p, engine_reply_fn cb, void *userdata)
{
	char mod[64] = "", max[32] = "";

	if (p->changedsince)
		snprintf(mod, sizeof(mod), " changedsince %llu%s",
			 (unsigned long long)p->changedsince, p->vanished ? " vanished" : "");
	if (p->max_literal)
		snprintf(max, sizeof(max), " max %llu", (unsigned long long)p->max_literal);
	return fake_call(d, cb, userdata, "fetch %s (%s)%s%s", uids, items, mod, max);
}

static int fake_create(struct engine_driver *d, const char *mailbox, engine_reply_fn cb,
		       void *userdata)
{
	return fake_call(d, cb, userdata, "create %s", mailbox);
}

static int fake_rename(struct engine_driver *d, const char *from, const char *to,
		       engine_reply_fn cb, void *userdata)
{
	return fake_call(d, cb, userdata, "rename %s %s", from, to);
}

static int fake_delete(struct engine_driver *d, const char *mailbox, engine_reply_fn cb,
		       void *userdata)
{
	return fake_call(d, cb, userdata, "delete %s", mailbox);
}

static int fake_set_metadata(struct engine_driver *d, const char *mailbox, const char *entry,
			     const char *value, engine_reply_fn cb, void *userdata)
{
	return fake_call(d, cb, userdata, "setmetadata [%s] %s [%s]", mailbox, entry, value);
}

static int fake_set_acl(struct engine_driver *d, const char *mailbox, const char *identifier,
			const char *rights, engine_reply_fn cb, void *userdata)
{
	return fake_call(d, cb, userdata, "setacl %s %s [%s]", mailbox, identifier, rights);
}

static int fake_store_annotations(struct engine_driver *d, uint32_t uid,
				  const struct engine_annotation *a, size_t n, engine_reply_fn cb,
				  void *userdata)
{
	char list[400];
	size_t o = 0;

	list[0] = '\0';
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, " %s %s [%s]", a[i].entry,
				      a[i].shared ? "shared" : "priv", a[i].value);
	return fake_call(d, cb, userdata, "annotate %u%s", uid, list);
}

static int fake_fetch_annotations(struct engine_driver *d, const char *uids,
				  const char *const *entries, engine_reply_fn cb, void *userdata)
{
	char list[400];
	size_t o = 0;

	list[0] = '\0';
	for (size_t i = 0; entries[i]; i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? " " : "", entries[i]);
	return fake_call(d, cb, userdata, "fetch %s annotations (%s)", uids, list);
}

static int fake_personal_namespace(struct engine_driver *d, struct buf *base, const char **shown)
{
	(void)d;
	(void)base; /* no prefix */
	*shown = "";
	return 0;
}

static const char *const list_kinds[] = {
	[ENGINE_LIST_NAMES] = "",
	[ENGINE_LIST_STATUS] = " status",
	[ENGINE_LIST_STATUS_MODSEQ] = " status modseq",
	[ENGINE_LIST_MAILBOXID] = " mailboxid",
};

static int fake_list(struct engine_driver *d, enum engine_list_kind kind, engine_reply_fn cb,
		     void *userdata)
{
	return fake_call(d, cb, userdata, "list%s", list_kinds[kind]);
}

static int fake_status(struct engine_driver *d, const char *mailbox, engine_reply_fn cb,
		       void *userdata)
{
	return fake_call(d, cb, userdata, "status %s", mailbox);
}

static void fake_logout(struct engine_driver *d)
{
	struct fake *f = (struct fake *)d;

	fake_call(d, NULL, NULL, "logout");
	f->closing = true;
	fake_schedule(f);
}

/* The script's "connect" step, or (the script starts elsewhere) logged in
 * at once with the run's capabilities. */
static int fake_connect(struct engine_driver *d, int fd)
{
	static const struct step logged_in = { .call = "connect" };
	struct fake *f = (struct fake *)d;
	const struct step *st = &logged_in;

	ck_assert_int_eq(fd, -1);
	ck_assert(!f->connected);
	if (f->script[f->pos].call && strcmp(f->script[f->pos].call, "connect") == 0)
		st = &f->script[f->pos++];
	if (st->at_once) {
		f->error = st->text ? st->text : "";
		return st->r;
	}
	ck_assert_uint_lt(f->n_queue, FAKE_QUEUE);
	f->queue[f->n_queue++] = (struct pending){ .step = st, .connect = true };
	fake_schedule(f);
	return 0;
}

static const char *fake_error(struct engine_driver *d)
{
	return ((struct fake *)d)->error;
}

static bool fake_ready(struct engine_driver *d)
{
	struct fake *f = (struct fake *)d;

	return f->connected && !f->released;
}

/* The connection's mark (engine-ident.c): a run on a connection made
 * (RUN_ON_CLIENT) finds it as the run before left it. */
static bool conn_checked;

static bool *fake_checked(struct engine_driver *d)
{
	(void)d;
	return &conn_checked;
}

/* The connection's folders checked by the pull (engine-ident.c): every
 * folder on a new connection, as if checked already (the scripts of the
 * tests of other things hold no check), none with pull_checks (the
 * test_ident_pull_* tests). */
static struct rangeset conn_folders;
static bool pull_checks;

static struct rangeset *fake_checked_folders(struct engine_driver *d)
{
	(void)d;
	return &conn_folders;
}

static void conn_folders_new(void)
{
	rangeset_clear(&conn_folders);
	if (!pull_checks)
		ck_assert_int_eq(rangeset_add_range(&conn_folders, 1, UINT32_MAX), 0);
}

static void fake_traffic(struct engine_driver *d, uint64_t *ret_in, uint64_t *ret_out)
{
	struct fake *f = (struct fake *)d;

	*ret_in = f->bytes_in;
	*ret_out = f->bytes_out;
}

static void fake_release(struct engine_driver *d, bool give_back)
{
	struct fake *f = (struct fake *)d;

	ck_assert_int_eq(f->released, 0);
	f->released = give_back ? 2 : 1;
	/* As a closed connection: nothing more to count. */
	f->bytes_in = f->bytes_out = 0;
}

static const struct engine_driver_ops fake_ops = {
	.has = fake_has,
	.enabled = fake_enabled,
	.select = fake_select,
	.unselect = fake_unselect,
	.append = fake_append,
	.copy = fake_copy,
	.store = fake_store,
	.expunge = fake_expunge,
	.search = fake_search,
	.search_upto = fake_search_upto,
	.search_deleted = fake_search_deleted,
	.fetch = fake_fetch,
	.fetch_ext = fake_fetch_ext,
	.create = fake_create,
	.rename = fake_rename,
	.delete = fake_delete,
	.set_metadata = fake_set_metadata,
	.set_acl = fake_set_acl,
	.store_annotations = fake_store_annotations,
	.fetch_annotations = fake_fetch_annotations,
	.personal_namespace = fake_personal_namespace,
	.list = fake_list,
	.status = fake_status,
	.logout = fake_logout,
	.connect = fake_connect,
	.ready = fake_ready,
	.error = fake_error,
	.checked = fake_checked,
	.checked_folders = fake_checked_folders,
	.traffic = fake_traffic,
	.release = fake_release,
};

/* What Dovecot offers. */
#define ALL_CAPS                                                                                   \
	(CAP(IMAP_CAP_UIDPLUS) | CAP(IMAP_CAP_MOVE) | CAP(IMAP_CAP_UNSELECT) |                     \
	 CAP(IMAP_CAP_METADATA) | CAP(IMAP_CAP_ACL) | CAP(IMAP_CAP_CONDSTORE))

/* --- the store and a run --- */

static char tmpdir[64], dbpath[96];
/* The connection of the next run_with() (RUN_ON_CLIENT: usable or not), the
 * traffic it reports, and how the run let it go (fake.released). */
static bool client_usable;
static uint64_t traffic_in, traffic_out;
static int released;

static struct fake *running; /* the driver of run_with() */
static struct cpmsync_store *cs;
/* The account's sync_bodies (0: none); the progress a run reported for
 * the folder progress_folder ("done/total ..."). */
static int64_t sync_bodies;
static const char *progress_folder;
static char progress[256];

static void progress_cb(void *userdata, const char *folder, uint32_t done, uint32_t total)
{
	size_t n = strlen(progress);

	(void)userdata;
	if (progress_folder && strcmp(folder, progress_folder) == 0)
		snprintf(progress + n, sizeof(progress) - n, "%s%u/%u", n ? " " : "", done, total);
}

static void exec(const char *sql)
{
	ck_assert_int_eq(store_exec(store_from_public(cs), sql), 0);
}

static const char *qs(const char *sql)
{
	return test_store_text(store_from_public(cs), sql);
}

/*
 * Account "t": INBOX (1; UIDVALIDITY 7, UIDNEXT 5) with UID 1 "\Seen"
 * (message 1, body "hello", Message-ID <m1@x>) and Archive (2; UIDNEXT
 * 3).  Rows and journal are each test's.
 */
static void setup(void)
{
	strcpy(tmpdir, "/tmp/test-engine-replay-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", tmpdir);
	test_wal_syncs_install();
	ck_assert_int_eq(cpmsync_store_open(dbpath, 0, &cs, NULL), 0);
	exec("INSERT INTO account (name) VALUES ('t');"
	     "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext,"
	     " highestmodseq) VALUES (1, 'INBOX', 'INBOX', 7, 5, 100);"
	     "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext,"
	     " highestmodseq) VALUES (1, 'Archive', 'Archive', 9, 3, 50);"
	     "INSERT INTO message (folder_id, uid, size, internaldate, message_id)"
	     " VALUES (1, 1, 5, 1000, '<m1@x>');"
	     "INSERT INTO message_state (id, flags, server_flags, modseq)"
	     " VALUES (1, '\\Seen', '\\Seen', 100);");
	ck_assert_int_eq(store_body_put(store_from_public(cs), 1, "hello", 5), 0);
	sync_bodies = 0;
	client_usable = true;
	traffic_in = traffic_out = 0;
	released = 0;
	conn_checked = false;
	pull_checks = false;
	rangeset_init(&conn_folders);
	conn_folders_new();
	progress_folder = NULL;
	progress[0] = '\0';
}

static void teardown(void)
{
	cs = cpmsync_store_close(cs);
	rangeset_free(&conn_folders);
	test_rm_rf(tmpdir);
}

/* A local message in folder of the given flags, size 5, date 2000, body
 * "local", not yet on the server; its id. */
static int64_t local_message(int64_t folder, const char *flags)
{
	char sql[512];
	int64_t id;

	snprintf(sql, sizeof(sql),
		 "INSERT INTO message (folder_id, size, internaldate, message_id)"
		 " VALUES (%lld, 5, 2000, '<new@x>');"
		 "INSERT INTO message_state (id, flags) VALUES (last_insert_rowid(), '%s');",
		 (long long)folder, flags);
	exec(sql);
	id = atoll(qs("SELECT max(id) FROM message"));
	ck_assert_int_eq(store_body_put(store_from_public(cs), id, "local", 5), 0);
	return id;
}

enum run_kind {
	RUN_REPLAY,    /* engine_replay_on_driver(): the journal alone */
	RUN_SYNC,      /* engine_sync_on_driver(): connect, LIST, ... */
	RUN_ON_CLIENT, /* engine_sync_on_client_driver(): on a connection made */
};

/* Account t against script with the server's caps. */
static struct sync_result run_with(const struct step *script, uint64_t caps, enum run_kind kind)
{
	struct cpmsync_account a = {
		.name = "t",
		.host = "localhost",
		.user = "alice",
		.security = CPMSYNC_SECURITY_NONE,
		.sync_bodies = sync_bodies,
	};
	struct cpmsync_sync *e = NULL;
	struct fake f = { .base.ops = &fake_ops,
			  .script = script,
			  .caps = caps,
			  .enabled = caps & (CAP(IMAP_CAP_CONDSTORE) | CAP(IMAP_CAP_QRESYNC)),
			  .bytes_in = traffic_in,
			  .bytes_out = traffic_out,
			  .connected =
				  kind == RUN_REPLAY || (kind == RUN_ON_CLIENT && client_usable),
			  .error = "" };
	struct sync_result res = { 0 };
	int r;

	running = &f;
	if (kind != RUN_ON_CLIENT) {
		conn_checked = false; /* a new connection */
		conn_folders_new();
	}
	ck_assert_int_eq(cpmsync_loop_new(&f.loop), 0);
	switch (kind) {
	case RUN_REPLAY:
		r = engine_replay_on_driver(f.loop, cs, &a, &f.base, sync_result_cb, &res, &e);
		break;
	case RUN_SYNC:
		r = engine_sync_on_driver(f.loop, cs, &a, &f.base, sync_result_cb, &res, &e);
		break;
	default:
		r = engine_sync_on_client_driver(f.loop, cs, &a, &f.base, sync_result_cb, &res, &e);
		break;
	}
	ck_assert_int_eq(r, 0);
	engine_set_progress(e, progress_cb, NULL);
	while (!res.done)
		ck_assert_int_ge(cpmsync_loop_iterate(f.loop, 5000), 0);
	cpmsync_loop_free(f.loop);
	running = NULL;
	released = f.released;
	ck_assert_msg(!script[f.pos].call, "the engine stopped before '%s' (%s)",
		      script[f.pos].call, res.reason);
	return res;
}

static struct sync_result run(const struct step *script, uint64_t caps)
{
	return run_with(script, caps, RUN_REPLAY);
}

static struct sync_result run_sync(const struct step *script, uint64_t caps)
{
	return run_with(script, caps, RUN_SYNC);
}

/* A whole run of script that must fail with r, for reason. */
static void sync_fails(const struct step *script, uint64_t caps, int r, const char *reason)
{
	struct sync_result res = run_sync(script, caps);

	ck_assert_int_eq(res.r, r);
	ck_assert_str_eq(res.reason, reason);
}

/* SELECT INBOX answered with response code c (written n), UIDNEXT 5 and
 * HIGHESTMODSEQ 100. */
#define SELECT_INBOX_CODE(c, n)                                                                    \
	{                                                                                          \
		.call = "select INBOX condstore", .code = (c), .code_name = (n),                   \
		.ev = { { EV_CODE, .code = IMAP_CODE_UIDNEXT, .value = 5 },                        \
			{ EV_CODE, .code = IMAP_CODE_HIGHESTMODSEQ, .value = 100 } }               \
	}
#define SELECT_INBOX SELECT_INBOX_CODE(IMAP_CODE_NONE, NULL)
/* The same, reporting [PERMANENTFLAGS (f)], "\*" in it when star. */
#define SELECT_INBOX_PERM(f, star)                                                                 \
	{                                                                                          \
		.call = "select INBOX condstore",                                                  \
		.ev = { { EV_CODE, .code = IMAP_CODE_UIDNEXT, .value = 5 },                        \
			{ EV_CODE, .code = IMAP_CODE_HIGHESTMODSEQ, .value = 100 },                \
			{ EV_PERMANENTFLAGS, .list = { .name = (f) }, .value = (star) } }          \
	}
#define LOGOUT                                                                                     \
	{                                                                                          \
		.call = "logout"                                                                   \
	}
/* The replay's STATUS of folder n (after a CREATE, before a DELETE), the
 * server's folder having UIDVALIDITY uv. */
#define STATUS_UIDVALIDITY(n, uv)                                                                  \
	{                                                                                          \
		.call = "status " n,                                                               \
		.ev = { { EV_STATUS, .status = { .name = n,                                        \
						 .present = IMAP_STATUS_ITEM_UIDVALIDITY |         \
							    IMAP_STATUS_ITEM_UIDNEXT |             \
							    IMAP_STATUS_ITEM_MESSAGES,             \
						 .uidvalidity = uv,                                \
						 .uidnext = 1 } } }                                \
	}
/* The verification of an interrupted APPEND/COPY/MOVE finding the message
 * (size 5, date d, flags f) as UID u, searched from u by Message-ID m. */
#define VERIFY_FINDS_SIZED(m, u, d, f, sz)                                                         \
	{ .call = "search " #u ": " m, .ev = { { EV_SEARCH, .lo = u, .hi = u } } },                \
	{                                                                                          \
		.call = "fetch " #u " (UID RFC822.SIZE INTERNALDATE FLAGS)",                       \
		.ev = { { EV_FETCH, .fetch = { .uid = u,                                           \
					       .present = ENGINE_FETCH_SIZE | ENGINE_FETCH_DATE |  \
							  ENGINE_FETCH_FLAGS,                      \
					       .size = sz,                                         \
					       .internaldate = d,                                  \
					       .flags = f } } }                                    \
	}
#define VERIFY_FINDS(m, u, d, f) VERIFY_FINDS_SIZED(m, u, d, f, 5)
/* The verification of an interrupted COPY/MOVE to Archive finding message
 * 1's copy there as UID 3. */
#define ARCHIVE_FINDS_M1                                                                           \
	{ .call = "select Archive condstore" }, VERIFY_FINDS("<m1@x>", 3, 1000, "\\Seen")
#define END                                                                                        \
	{                                                                                          \
		NULL                                                                               \
	}

/* --- append --- */

START_TEST(test_append_uidplus)
{
	static const struct step script[] = {
		{ .call = "append INBOX (\\Seen) 2000 local",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 5 },
		LOGOUT,
		END,
	};
	int64_t id = local_message(1, "\\Seen");
	char sql[128];
	struct sync_result res;

	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, (SELECT max(id) FROM message))");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	snprintf(sql, sizeof(sql),
		 "SELECT uid || ' ' || server_flags FROM message"
		 " JOIN message_state USING (id) WHERE id = %lld",
		 (long long)id);
	ck_assert_str_eq(qs(sql), "5 \\Seen");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/*
 * APPENDs of dates ahead of our clock, which a server may not keep
 * (Dovecot stores the time of the APPEND instead): their UIDs' dates are
 * read back, one UID FETCH for the folder at the journal's end, and the
 * server's is kept where it differs.  One with a past date costs nothing.
 */
START_TEST(test_append_future_date_read_back)
{
	static const struct step script[] = {
		{ .call = "append INBOX () 4102444800 local",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 5 },
		{ .call = "append INBOX () 2000 local", .code = IMAP_CODE_APPENDUID, .new_uid = 6 },
		{ .call = "append INBOX () 4102444800 local",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 7 },
		SELECT_INBOX,
		{ .call = "fetch 5,7 (UID INTERNALDATE)",
		  .ev = { { EV_FETCH, .fetch = { .uid = 5,
						 .present = ENGINE_FETCH_DATE,
						 .internaldate = 1796700000 } },
			  { EV_FETCH, .fetch = { .uid = 7,
						 .present = ENGINE_FETCH_DATE,
						 .internaldate = 4102444800 } } } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	local_message(1, "");
	local_message(1, "");
	local_message(1, "");
	exec("UPDATE message SET internaldate = 4102444800, date = 4102444800 WHERE id IN (2, 4);"
	     "INSERT INTO journal (account_id, op, folder_id, message_id) VALUES"
	     " (1, 'append', 1, 2), (1, 'append', 1, 3), (1, 'append', 1, 4)");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 3);
	ck_assert_str_eq(qs("SELECT group_concat(uid || ' ' || internaldate || ' ' ||"
			    " coalesce(date, '-'), ', ')"
			    " FROM (SELECT * FROM message WHERE id > 1 ORDER BY id)"),
			 "5 1796700000 1796700000, 6 2000 -, 7 4102444800 4102444800");
}
END_TEST

START_TEST(test_append_refused_kept)
{
	/* A NO that may pass ([OVERQUOTA]) keeps the row, with the server's
	 * code and text, backed off; the run does not fail for it. */
	static const struct step script[] = {
		{ .call = "append INBOX () 2000 local",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "mailbox is full",
		  .code = IMAP_CODE_OVERQUOTA,
		  .code_name = "OVERQUOTA" },
		LOGOUT,
		END,
	};
	static const struct step backed_off[] = { LOGOUT, END };
	struct sync_result res;

	local_message(1, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, (SELECT max(id) FROM message))");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 1);
	ck_assert_uint_eq(res.stats.ops_given_up, 0);
	ck_assert_str_eq(qs("SELECT refused || ' ' || code || ' ' || tries || ' ' || failed"
			    " || ' ' || attempts || ' ' || args_sent FROM journal"),
			 "mailbox is full OVERQUOTA 1 0 1 uidnext=5");
	ck_assert_str_eq(qs("SELECT retry_after - tried FROM journal"), "60");
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "(null)");

	/* Backed off: the next run does not send it. */
	res = run(backed_off, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 0);
	ck_assert_str_eq(qs("SELECT tries FROM journal"), "1");
}
END_TEST

/* Verify the interrupted APPEND (nothing there), then send it again. */
#define APPEND_AGAIN(r_, code_, name_)                                                             \
	SELECT_INBOX, { .call = "search 5: <l@x>" },                                               \
	{                                                                                          \
		.call = "append INBOX () 2000 local", .r = (r_), .text = "refused",                \
		.code = (code_), .code_name = (name_)                                              \
	}

START_TEST(test_transient_refusal_fails_after_five_tries)
{
	/* The fifth try of a refusal that may pass makes it a failed
	 * operation; the back-off doubles before that. */
	static const struct step script[] = {
		APPEND_AGAIN(-CPMSYNC_E_SERVER, IMAP_CODE_NONE, NULL),
		LOGOUT,
		END,
	};
	static const struct step nothing[] = { LOGOUT, END };
	struct sync_result res;

	ck_assert_int_eq(store_journal_backoff(1), 60);
	ck_assert_int_eq(store_journal_backoff(2), 120);
	ck_assert_int_eq(store_journal_backoff(4), 480);
	ck_assert_int_eq(store_journal_backoff(100), 3600);
	local_message(1, "");
	exec("UPDATE message SET message_id = '<l@x>' WHERE id = 2;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id, attempts, args_sent,"
	     " tries, refused) VALUES (1, 'append', 1, 2, 4, 'uidnext=5', 3, 'earlier')");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_given_up, 0);
	ck_assert_str_eq(qs("SELECT tries || ' ' || failed || ' ' || (retry_after - tried) || ' '"
			    " || code || '|' || refused FROM journal"),
			 "4 0 480 |refused");

	exec("UPDATE journal SET retry_after = 0");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 1);
	ck_assert_uint_eq(res.stats.ops_given_up, 1);
	ck_assert_str_eq(qs("SELECT tries || ' ' || failed || ' ' || retry_after FROM journal"),
			 "5 1 0");

	/* Failed: skipped from now on, and the message stays. */
	res = run(nothing, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE id = 2 AND removed = 0"), "1");
}
END_TEST

/* The engine's log lines holding log_match during run_logged(), one per line. */
static char engine_log[2048];
static const char *log_match;

static void capture_log(int level, unsigned category, const char *msg, void *userdata)
{
	size_t n = strlen(engine_log);

	(void)level;
	(void)category;
	(void)userdata;
	if (strstr(msg, log_match))
		snprintf(engine_log + n, sizeof(engine_log) - n, "%s\n", msg);
}

/* run(), with the engine's debug log (what -v shows) lines that hold
 * match in engine_log. */
static struct sync_result run_logged(const struct step *script, uint64_t caps, const char *match)
{
	struct sync_result res;

	engine_log[0] = '\0';
	log_match = match;
	cpmsync_log_set_handler(CPMSYNC_LOG_DEBUG, CPMSYNC_LOG_CAT_ENGINE, capture_log, NULL);
	res = run(script, caps);
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
	return res;
}

START_TEST(test_permanent_refusal_blocks_nothing)
{
	/* [NOPERM], [TOOBIG], a BAD: failed at once; later rows still go,
	 * and the run succeeds. */
	static const struct step script[] = {
		{ .call = "append INBOX () 2000 local",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "no insert right",
		  .code = IMAP_CODE_NOPERM,
		  .code_name = "NOPERM" },
		SELECT_INBOX,
		{ .call = "store 1 ($toolong \\Flagged) 100",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Invalid keyword",
		  .bad = true },
		{ .call = "create Projects",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "too big",
		  .code = IMAP_CODE_TOOBIG,
		  .code_name = "TOOBIG" },
		{ .call = "setacl Archive bob [lrs]" },
		LOGOUT,
		END,
	};
	static const struct step nothing[] = { LOGOUT, END };
	struct sync_result res;

	local_message(1, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, 2);"
	     "UPDATE message_state SET flags = '$toolong \\Flagged' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id) VALUES (1, 'flags', 1, "
	     "1);"
	     "INSERT INTO folder (account_id, name) VALUES (1, 'Projects');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 3);"
	     "INSERT INTO journal (account_id, op, folder_id, args)"
	     " VALUES (1, 'set_acl', 2, 'bob' || char(10) || 'lrs')");
	res = run_logged(script, ALL_CAPS, "t: ");
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	ck_assert_uint_eq(res.stats.ops_failed, 3);
	/* The server's refusals, logged as such (not "not sent"). */
	ck_assert_ptr_nonnull(strstr(engine_log,
				     "t: APPEND refused by the server: [NOPERM] no insert "
				     "right (a failed operation now)\n"));
	ck_assert_ptr_nonnull(strstr(engine_log,
				     "t: CREATE refused by the server: [TOOBIG] too big (a "
				     "failed operation now)\n"));
	ck_assert_ptr_null(strstr(engine_log, "not sent"));
	ck_assert_uint_eq(res.stats.ops_given_up, 3);
	ck_assert_str_eq(
		qs("SELECT group_concat(op || ':' || code || ':' || refused || ':' || tries"
		   " || ':' || failed, ',') FROM journal"),
		"append:NOPERM:no insert right:1:1,flags::Invalid keyword:1:1,"
		"create_folder:TOOBIG:too big:1:1");
	/* Nothing is sent again, nothing fails. */
	res = run(nothing, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 0);
}
END_TEST

/*
 * An APPEND too large to write as one command (a message Store took before
 * it counted CRLF line ends): a failed operation [TOOBIG] naming it, not
 * "out of memory" failing every run with the rows behind it.
 */
START_TEST(test_append_too_large_to_send)
{
	static const struct step script[] = {
		{ .call = "append INBOX () 2000 local", .send_r = -E2BIG },
		SELECT_INBOX,
		{ .call = "store 1 (\\Flagged) 100" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	local_message(1, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, 2);"
	     "UPDATE message_state SET flags = '\\Flagged' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id) VALUES (1, 'flags', 1, "
	     "1);");
	res = run_logged(script, ALL_CAPS, "APPEND");
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	ck_assert_uint_eq(res.stats.ops_given_up, 1);
	/* Never sent: not the server's refusal, in the log either. */
	ck_assert_str_eq(engine_log,
			 "t: message 2 (5 bytes) is too large to send: an APPEND carries at most"
			 " 67108864 bytes with CRLF line ends\n"
			 "t: APPEND not sent: [TOOBIG] message 2 (5 bytes) is too large to send: an"
			 " APPEND carries at most 67108864 bytes with CRLF line ends (a failed"
			 " operation now)\n");
	ck_assert_str_eq(
		qs("SELECT op || ':' || code || ':' || refused || ':' || failed FROM journal"),
		"append:TOOBIG:not sent: message 2 (5 bytes) is too large to send: an APPEND "
		"carries"
		" at most 67108864 bytes with CRLF line ends:1");
}
END_TEST

/*
 * A message made here whose body's pack file was lost (removed by hand, a
 * damaged disk): its APPEND cannot be sent, ever.  A store error, that
 * failed every run for good, and every change queued behind it.  It is a
 * failed operation, naming the file; the run goes on.
 */
START_TEST(test_append_body_lost)
{
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "store 1 (\\Flagged) 100" },
		LOGOUT,
		END,
	};
	static char big[6000];
	char pack[128], want[512];
	struct sync_result res;

	memset(big, 'x', sizeof(big));
	local_message(1, "");
	ck_assert_int_eq(store_begin(store_from_public(cs)), 0);
	ck_assert_int_eq(store_body_put(store_from_public(cs), 2, big, sizeof(big)), 0);
	ck_assert_int_eq(store_commit(store_from_public(cs)), 0);
	snprintf(pack, sizeof(pack), "%s-packs/1", dbpath);
	/* lost with the store closed: an open one reads its own descriptor */
	cs = cpmsync_store_close(cs);
	ck_assert_int_eq(unlink(pack), 0);
	ck_assert_int_eq(cpmsync_store_open(dbpath, 0, &cs, NULL), 0);
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, 2);"
	     "UPDATE message_state SET flags = '\\Flagged' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id) VALUES (1, 'flags', 1, "
	     "1);");
	res = run(script, ALL_CAPS);
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	ck_assert_uint_eq(res.stats.ops_given_up, 1);
	snprintf(want, sizeof(want),
		 "append:CANNOT:not sent: the content of message 2 cannot be read: reading the "
		 "body of message"
		 " 2: %s: No such file or directory:1",
		 pack);
	ck_assert_str_eq(
		qs("SELECT op || ':' || code || ':' || refused || ':' || failed FROM journal"),
		want);
}
END_TEST

/*
 * A fresh APPEND's UID (APPENDUID) is logged as appended, not as "already
 * on the server", which is what an interrupted run's APPEND found there
 * says (test_append_interrupted_found).
 */
START_TEST(test_append_uid_logged_as_appended)
{
	static const struct step script[] = {
		{ .call = "append INBOX () 2000 local", .code = IMAP_CODE_APPENDUID, .new_uid = 7 },
		LOGOUT,
		END,
	};
	struct sync_result res;

	local_message(1, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, 2)");
	res = run_logged(script, ALL_CAPS, "message 2 ");
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "7");
	ck_assert_str_eq(engine_log, "t: message 2 appended as UID 7\n");
}
END_TEST

START_TEST(test_append_without_uidplus_found_by_search)
{
	/* No APPENDUID: the message is looked for by Message-ID, then size
	 * and date.  (From UID 1: the row in memory predates its mark.) */
	static const struct step script[] = {
		{ .call = "append INBOX () 2000 local" },
		SELECT_INBOX,
		{ .call = "search 1: <new@x>", .ev = { { EV_SEARCH, .lo = 5, .hi = 6 } } },
		{ .call = "fetch 5:6 (UID RFC822.SIZE INTERNALDATE FLAGS)",
		  .ev = { { EV_FETCH, .fetch = { .uid = 5,
						 .present = ENGINE_FETCH_SIZE | ENGINE_FETCH_DATE,
						 .size = 99,
						 .internaldate = 2000 } },
			  { EV_FETCH, .fetch = { .uid = 6,
						 .present = ENGINE_FETCH_SIZE | ENGINE_FETCH_DATE |
							    ENGINE_FETCH_FLAGS,
						 .size = 5,
						 .internaldate = 2000,
						 .flags = "" } } } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	local_message(1, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, 2)");
	res = run_logged(script, ALL_CAPS & ~CAP(IMAP_CAP_UIDPLUS), "message 2 ");
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "6");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
	/* Appended by this run, found by search: not "already" there. */
	ck_assert_str_eq(engine_log, "t: message 2 appended, found as UID 6\n");
}
END_TEST

START_TEST(test_append_interrupted_found)
{
	/* A run sent the APPEND and died: the next one finds the message
	 * (with the flags the server has) instead of appending it twice,
	 * and pushes the local flags that differ as a flag change. */
	static const struct step script[] = {
		SELECT_INBOX,
		VERIFY_FINDS("<new@x>", 5, 2000, ""),
		{ .call = "store 5 (\\Flagged) 100" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	local_message(1, "\\Flagged");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id, attempts, args_sent)"
	     " VALUES (1, 'append', 1, 2, 1, 'uidnext=5')");
	res = run_logged(script, ALL_CAPS, "message 2 ");
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(engine_log, "t: message 2 is already on the server as UID 5\n");
	ck_assert_str_eq(qs("SELECT uid || ' ' || server_flags FROM message"
			    " JOIN message_state USING (id) WHERE id = 2"),
			 "5 \\Flagged");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
	ck_assert_str_eq(qs("SELECT count(*) FROM message"), "2");
}
END_TEST

/*
 * The interrupted APPEND asked for a date the server did not keep (a year
 * ahead: Dovecot stores the time of the APPEND instead): the copy there,
 * with our Message-ID and size and a date earlier than the one asked but
 * not before the row was queued, is ours; not appended a second time.
 * One dated before the row was queued (less a day) is another message.
 */
START_TEST(test_append_interrupted_found_date_replaced)
{
	static const struct step script[] = {
		SELECT_INBOX,
		VERIFY_FINDS("<new@x>", 5, 1700000100, ""),
		LOGOUT,
		END,
	};
	static const struct step older[] = {
		SELECT_INBOX,
		VERIFY_FINDS("<new@x>", 5, 1699900000, ""),
		{ .call = "append INBOX () 4102444800 local",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 6 },
		{ .call = "fetch 6 (UID INTERNALDATE)",
		  .ev = { { EV_FETCH, .fetch = { .uid = 6,
						 .present = ENGINE_FETCH_DATE,
						 .internaldate = 1800000000 } } } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	local_message(1, "");
	exec("UPDATE message SET internaldate = 4102444800 WHERE id = 2;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id, attempts, args_sent,"
	     " created) VALUES (1, 'append', 1, 2, 1, 'uidnext=5', 1700000000)");
	res = run_logged(script, ALL_CAPS, "message 2 ");
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(engine_log, "t: message 2 has the server's INTERNALDATE 1700000100\n"
				     "t: message 2 is already on the server as UID 5\n");
	ck_assert_str_eq(qs("SELECT uid || ' ' || internaldate FROM message WHERE id = 2"),
			 "5 1700000100");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");

	exec("UPDATE message SET uid = NULL, internaldate = 4102444800 WHERE id = 2;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id, attempts, args_sent,"
	     " created) VALUES (1, 'append', 1, 2, 1, 'uidnext=5', 1700000000)");
	res = run(older, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid || ' ' || internaldate FROM message WHERE id = 2"),
			 "6 1800000000");
}
END_TEST

/*
 * The same with a body of LF line ends ("lo\ncal", 6 bytes): the APPEND
 * went as CRLF and the server counts 7; that is the message, not another
 * one (the size compared was the stored one: it was appended twice).
 */
START_TEST(test_append_interrupted_found_lf)
{
	static const struct step script[] = {
		SELECT_INBOX,
		VERIFY_FINDS_SIZED("<new@x>", 5, 2000, "", 7),
		LOGOUT,
		END,
	};
	struct sync_result res;
	int64_t id = local_message(1, "");

	exec("UPDATE message SET size = 6 WHERE id = 2");
	ck_assert_int_eq(store_body_put(store_from_public(cs), id, "lo\ncal", 6), 0);
	exec("INSERT INTO journal (account_id, op, folder_id, message_id, attempts, args_sent)"
	     " VALUES (1, 'append', 1, 2, 1, 'uidnext=5')");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "5");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_append_interrupted_missing_sent)
{
	/* Not there (the crash came before the APPEND reached the server): it
	 * is sent now; an unreadable old mark verifies from UID 1. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "search 1: <new@x>" },
		{ .call = "append INBOX () 2000 local", .code = IMAP_CODE_APPENDUID, .new_uid = 7 },
		LOGOUT,
		END,
	};
	struct sync_result res;

	local_message(1, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id, attempts, args_sent)"
	     " VALUES (1, 'append', 1, 2, 1, 'next=5')");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "7");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/* --- flags --- */

/* Message 1 flagged and seen locally, its change queued. */
static void flags_queued(void)
{
	exec("UPDATE message_state SET flags = '\\Flagged \\Seen' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id) VALUES (1, 'flags', 1, "
	     "1)");
}

START_TEST(test_flags_condstore)
{
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "store 1 (\\Flagged \\Seen) 100" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	flags_queued();
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT server_flags FROM message_state WHERE id = 1"),
			 "\\Flagged \\Seen");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/*
 * A folder selected [READ-ONLY] (RFC 4314: no right to change flags):
 * Dovecot answers a STORE there with OK and changes nothing, so none is
 * sent; the row is a failed operation saying why, and the local flags
 * stay until it is retried or discarded.
 */
START_TEST(test_flags_read_only_folder)
{
	static const struct step script[] = {
		SELECT_INBOX_CODE(IMAP_CODE_READ_ONLY, "READ-ONLY"),
		LOGOUT,
		END,
	};
	struct sync_result res;

	flags_queued();
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(
		qs("SELECT failed || ' ' || code || ' ' || refused FROM journal"),
		"1 READ-ONLY not sent: the folder is read-only for this account: its flags cannot "
		"be changed");
	ck_assert_str_eq(qs("SELECT flags FROM message_state WHERE id = 1"), "\\Flagged \\Seen");
}
END_TEST

/*
 * [PERMANENTFLAGS] without a flag the row changes: that row is a failed
 * operation naming the flag (Dovecot answers its STORE with OK and keeps
 * nothing); a row whose flags the folder keeps is sent.  Keywords are
 * kept only when listed, or with "\*".
 */
START_TEST(test_flags_not_permanent)
{
	static const struct step script[] = {
		SELECT_INBOX_PERM("$Known \\Seen", 0),
		{ .call = "store 2 ($Known \\Seen) 100" },
		LOGOUT,
		END,
	};
	static const struct step with_star[] = {
		SELECT_INBOX_PERM("\\Seen", 1),
		{ .call = "store 1 ($New \\Seen) 100" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	/* 1: +$New (not listed, no "\*"); 2: +$Known (listed). */
	exec("UPDATE message_state SET flags = '$New \\Seen' WHERE id = 1;"
	     "INSERT INTO message (id, folder_id, uid, size, internaldate, message_id)"
	     " VALUES (2, 1, 2, 5, 1000, '<m2@x>');"
	     "INSERT INTO message_state (id, flags, server_flags, modseq)"
	     " VALUES (2, '$Known \\Seen', '\\Seen', 100);"
	     "INSERT INTO journal (account_id, op, folder_id, message_id) VALUES (1, 'flags', 1, "
	     "1);"
	     "INSERT INTO journal (account_id, op, folder_id, message_id) VALUES (1, 'flags', 1, "
	     "2)");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(
		qs("SELECT message_id || ' ' || failed || ' ' || code || ' ' || refused"
		   " FROM journal"),
		"1 1 PERMANENTFLAGS not sent: the folder does not keep $New for this account"
		" (PERMANENTFLAGS ($Known \\Seen)): the change cannot be made");
	ck_assert_str_eq(qs("SELECT flags FROM message_state WHERE id = 1"), "$New \\Seen");

	/* With "\*", any keyword: retried, it is sent. */
	ck_assert_int_eq(cpmsync_op_retry(cs, "t", atoll(qs("SELECT id FROM journal"))), 0);
	res = run(with_star, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_flags_modified_merged)
{
	/* [MODIFIED]: the server's flags are read, merged three-way with
	 * ours, and the merge sent. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "store 1 (\\Flagged \\Seen) 100",
		  .code = IMAP_CODE_MODIFIED,
		  .modified = 1 },
		{ .call = "fetch 1 (UID FLAGS MODSEQ)",
		  .ev = { { EV_FETCH,
			    .fetch = { .uid = 1,
				       .present = ENGINE_FETCH_FLAGS | ENGINE_FETCH_MODSEQ,
				       .flags = "\\Answered \\Seen",
				       .modseq = 105 } } } },
		{ .call = "store 1 (\\Answered \\Flagged \\Seen) 105" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	flags_queued();
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT flags || '|' || server_flags FROM message_state WHERE id = 1"),
			 "\\Answered \\Flagged \\Seen|\\Answered \\Flagged \\Seen");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/*
 * The same when no sync saw the server's flags first (the replay alone):
 * the local flags equal the recorded server flags, but the mark says a
 * STORE may have set others, so they are sent, not dropped as "nothing
 * to send"; the server's [MODIFIED] then shows "$Work \Seen", ours by the
 * mark again, and the local flags are sent once more.
 */
START_TEST(test_flags_store_answer_lost_replay_only)
{
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "store 1 (\\Seen) 100", .code = IMAP_CODE_MODIFIED, .modified = 1 },
		{ .call = "fetch 1 (UID FLAGS MODSEQ)",
		  .ev = { { EV_FETCH,
			    .fetch = { .uid = 1,
				       .present = ENGINE_FETCH_FLAGS | ENGINE_FETCH_MODSEQ,
				       .flags = "$Work \\Seen",
				       .modseq = 120 } } } },
		{ .call = "store 1 (\\Seen) 120" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO journal (account_id, op, folder_id, message_id, attempts, args_sent)"
	     " VALUES (1, 'flags', 1, 1, 1, 'flags=$Work \\Seen')");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT flags || '|' || server_flags FROM message_state WHERE id = 1"),
			 "\\Seen|\\Seen");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/* Every STORE's set is on its row, committed (another connection reads
 * it), before the STORE leaves. */
static void check_store_marked(void)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT attempts || '|' || args_sent FROM journal"
					    " WHERE op = 'flags'",
					    -1, &st, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "1|flags=\\Flagged \\Seen");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

START_TEST(test_flags_store_marked_before_sent)
{
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "store 1 (\\Flagged \\Seen) 100", .during = check_store_marked },
		LOGOUT,
		END,
	};
	struct sync_result res;

	flags_queued();
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_flags_without_condstore_delta)
{
	/* Without CONDSTORE the change goes as +/- deltas. */
	static const struct step script[] = {
		{ .call = "select INBOX" },
		{ .call = "store 1 +(\\Flagged) 0" },
		{ .call = "store 1 -(\\Seen) 0" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("UPDATE message_state SET flags = '\\Flagged' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id) VALUES (1, 'flags', 1, "
	     "1)");
	res = run(script, ALL_CAPS & ~CAP(IMAP_CAP_CONDSTORE));
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT server_flags FROM message_state WHERE id = 1"), "\\Flagged");
}
END_TEST

/*
 * 80 keywords of 17 bytes ("keyword-number-01" ...): 1,439 bytes of flags,
 * more than one command line takes (ENGINE_LINE_MAX; Dovecot with
 * imap_max_line_length = 1k answered the STORE with BAD "IMAP command line
 * too large").  kw_list(buf, from, to): keywords from..to, space-separated.
 */
#define N_KW 80
static char *kw_list(char *buf, size_t size, int from, int to)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int i = from; i <= to; i++)
		o += (size_t)snprintf(buf + o, size - o, "%skeyword-number-%02d", o ? " " : "", i);
	ck_assert_uint_lt(o, size);
	return buf;
}

/* Message 1 ("\Seen" here and on the server) gets the 80 keywords here. */
static void kw_flags_queued(char *set, size_t size)
{
	char sql[2048], kws[1600];

	snprintf(set, size, "\\Seen %s", kw_list(kws, sizeof(kws), 1, N_KW));
	snprintf(sql, sizeof(sql),
		 "UPDATE message_state SET flags = '%s' WHERE id = 1;"
		 "INSERT INTO journal (account_id, op, folder_id, message_id)"
		 " VALUES (1, 'flags', 1, 1)",
		 set);
	exec(sql);
}

/* Message 1's column (flags, server_flags) is want (qs() cuts at 255). */
static void assert_flags_are(const char *column, const char *want)
{
	struct store *s = store_from_public(cs);
	char sql[128];
	sqlite3_stmt *st;

	snprintf(sql, sizeof(sql), "SELECT %s FROM message_state WHERE id = 1", column);
	ck_assert_int_eq(store_prepare(s, sql, &st), 0);
	ck_assert_int_eq(store_step(s, st), 1);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), want);
	sqlite3_reset(st);
}

/* "a4294967295 UID STORE 1 +FLAGS.SILENT (<flags>)" CRLF fits a line. */
static void assert_store_fits(const char *flags)
{
	ck_assert_uint_le(12 + strlen("UID STORE 1 +FLAGS.SILENT ()") + strlen(flags) + 2,
			  ENGINE_LINE_MAX);
}

/*
 * A set too long for one line goes as a delta, +FLAGS in parts that each
 * fit (50 keywords, then 30), not as one FLAGS (...) the server refuses.
 */
START_TEST(test_flags_long_set_split)
{
	char set[1600], part1[1024], part2[1024], call1[1100], call2[1100];
	struct step script[] = {
		SELECT_INBOX, { .call = call1 }, { .call = call2 }, LOGOUT, END,
	};
	struct sync_result res;

	kw_flags_queued(set, sizeof(set));
	kw_list(part1, sizeof(part1), 1, 50);
	kw_list(part2, sizeof(part2), 51, N_KW);
	assert_store_fits(part1);
	assert_store_fits(part2);
	snprintf(call1, sizeof(call1), "store 1 +(%s) 0", part1);
	snprintf(call2, sizeof(call2), "store 1 +(%s) 0", part2);
	res = run(script, ALL_CAPS);
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	assert_flags_are("flags", set);
	assert_flags_are("server_flags", set);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/*
 * The run dies with the first part on the server and the second's answer
 * lost.  A sync then sees the first part there: not another client's
 * change (the local set stays), and the row, still queued, sends only
 * what is missing; the keywords go once each, and none is lost.
 */
START_TEST(test_flags_long_set_partly_applied)
{
	char set[1600], part1[1024], part2[1024], call1[1100], call2[1100], seen[1100];
	struct step script[] = {
		SELECT_INBOX,
		{ .call = call1 },
		{ .call = call2, .r = -CPMSYNC_E_DISCONNECTED, .text = "connection lost" },
		END,
	};
	struct step again[] = {
		SELECT_INBOX,
		{ .call = call2 },
		LOGOUT,
		END,
	};
	struct sync_result res;
	bool found = false, changed = false;

	kw_flags_queued(set, sizeof(set));
	kw_list(part1, sizeof(part1), 1, 50);
	kw_list(part2, sizeof(part2), 51, N_KW);
	snprintf(call1, sizeof(call1), "store 1 +(%s) 0", part1);
	snprintf(call2, sizeof(call2), "store 1 +(%s) 0", part2);
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, -CPMSYNC_E_DISCONNECTED);
	ck_assert_str_eq(qs("SELECT op || ' ' || attempts || ' ' || (args_sent = 'flags=' ||"
			    " (SELECT flags FROM message_state WHERE id = 1)) FROM journal"),
			 "flags 1 1");

	/* The next sync's FETCH: the first part is there. */
	snprintf(seen, sizeof(seen), "\\Seen %s", part1);
	ck_assert_int_eq(store_sync_server_flags(store_from_public(cs), 1, 1, seen, 101, &found,
						 &changed, NULL),
			 0);
	ck_assert(found);
	assert_flags_are("flags", set);
	assert_flags_are("server_flags", seen);

	res = run(again, ALL_CAPS);
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	assert_flags_are("flags", set);
	assert_flags_are("server_flags", set);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/*
 * A delta (no CONDSTORE) after an earlier STORE of the row that may have
 * reached the server ("$Work \Seen", by its mark) while the local flags
 * went back to the recorded server flags: "$Work" is taken away, not an
 * empty "+FLAGS ()" that leaves it there.
 */
START_TEST(test_flags_delta_after_earlier_store)
{
	static const struct step script[] = {
		{ .call = "select INBOX" },
		{ .call = "store 1 -($Work) 0" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO journal (account_id, op, folder_id, message_id, attempts, args_sent)"
	     " VALUES (1, 'flags', 1, 1, 1, 'flags=$Work \\Seen')");
	res = run(script, ALL_CAPS & ~CAP(IMAP_CAP_CONDSTORE));
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_str_eq(qs("SELECT flags || '|' || server_flags FROM message_state WHERE id = 1"),
			 "\\Seen|\\Seen");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/*
 * 200 flag rows (UIDs 1001, 1003 ... 1399) all answered [MODIFIED]: the
 * FETCH of their flags is 999 bytes of UIDs, so it goes as two, each line
 * within ENGINE_LINE_MAX, and the merge is sent once both are answered.
 */
#define N_MOD 200
START_TEST(test_flags_modified_refetch_split)
{
	static char calls[2 * N_MOD + 6][64], fetch[2][FAKE_CALL_MAX];
	static struct step script[2 * N_MOD + 6];
	struct rangeset uids = RANGESET_INIT;
	struct buf set = BUF_INIT(ENGINE_REPLAY_SET_BYTES + 64);
	struct sync_result res;
	size_t k = 0, pos = 0;

	exec("INSERT INTO message (id, folder_id, uid, size, internaldate)"
	     " WITH RECURSIVE c(u) AS (SELECT 1001 UNION ALL SELECT u + 2 FROM c WHERE u < 1399)"
	     " SELECT u, 1, u, 5, 1000 FROM c;"
	     "INSERT INTO message_state (id, flags, server_flags, modseq)"
	     " SELECT id, '\\Flagged', '', 100 FROM message WHERE id > 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " SELECT 1, 'flags', 1, id FROM message WHERE id > 1 ORDER BY id");
	memset(script, 0, sizeof(script));
	script[k++] = (struct step)SELECT_INBOX;
	for (uint32_t u = 1001; u <= 1399; u += 2) {
		snprintf(calls[k], sizeof(calls[k]), "store %u (\\Flagged) 100", u);
		script[k] = (struct step){ .call = calls[k],
					   .code = IMAP_CODE_MODIFIED,
					   .modified = u };
		k++;
		ck_assert_int_eq(rangeset_add(&uids, u), 0);
	}
	for (int i = 0; i < 2; i++) {
		buf_reset(&set);
		ck_assert_int_ge(imap_seqset_format(&uids, &pos, &set, ENGINE_REPLAY_SET_BYTES), 0);
		/* "a4294967295 UID FETCH <set> (UID FLAGS MODSEQ)" CRLF */
		ck_assert_uint_le(12 + 10 + set.len + 19 + 2, ENGINE_LINE_MAX);
		snprintf(fetch[i], sizeof(fetch[i]), "fetch %s (UID FLAGS MODSEQ)", set.data);
		script[k++] = (struct step){ .call = fetch[i] };
	}
	ck_assert_uint_eq(pos, uids.n); /* two sets, no third */
	for (uint32_t u = 1001; u <= 1399; u += 2) {
		snprintf(calls[k], sizeof(calls[k]), "store %u (\\Flagged) 100", u);
		script[k] = (struct step){ .call = calls[k] };
		k++;
	}
	script[k++] = (struct step)LOGOUT;
	script[k] = (struct step)END;
	res = run(script, ALL_CAPS);
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_uint_eq(res.stats.ops_replayed, N_MOD);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
	buf_free(&set);
	rangeset_free(&uids);
}
END_TEST

/* --- copy, move, expunge --- */

/* Message 2 in Archive, a copy (or move: op) of message 1, its journal row
 * in the state state says (0: not sent yet). */
enum {
	SRC_REMOVED = 1 << 0, /* the move removed message 1 here */
	SENT = 1 << 1,	      /* a run sent it (Archive's UIDNEXT 3) and died */
	COPY_BODY = 1 << 2,   /* message 2's body is stored (an append sends it) */
	REMATCHED = 1 << 3,   /* a sync re-matched message 2 as UID 3 */
	SRC_GONE = 1 << 4,    /* a sync saw message 1 vanish */
};
static void copy_row(const char *op, unsigned state)
{
	char sql[256];

	if (state & SRC_REMOVED)
		exec("UPDATE message SET removed = 1 WHERE id = 1");
	exec("INSERT INTO message (folder_id, size, internaldate, message_id)"
	     " VALUES (2, 5, 1000, '<m1@x>');"
	     "INSERT INTO message_state (id, flags) VALUES (last_insert_rowid(), '\\Seen')");
	snprintf(sql, sizeof(sql),
		 "INSERT INTO journal (account_id, op, folder_id, message_id, args)"
		 " VALUES (1, '%s', 2, 2, 'src=1')",
		 op);
	exec(sql);
	if (state & COPY_BODY)
		ck_assert_int_eq(store_body_put(store_from_public(cs), 2, "hello", 5), 0);
	if (state & SENT)
		exec("UPDATE journal SET attempts = 1, args_sent = 'uidnext=3'");
	if (state & REMATCHED)
		exec("UPDATE message SET uid = 3 WHERE id = 2;"
		     "UPDATE message_state SET server_flags = '\\Seen' WHERE id = 2");
	if (state & SRC_GONE)
		exec("DELETE FROM message WHERE id = 1");
}

/* After a copy or move replayed: (moved) message 1 is gone, and nothing is
 * left in the journal. */
static void assert_replayed(bool moved)
{
	if (moved)
		ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE id = 1"), "0");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}

START_TEST(test_copy_copyuid)
{
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "copy 1 Archive", .code = IMAP_CODE_COPYUID, .new_uid = 3 },
		LOGOUT,
		END,
	};
	struct sync_result res;

	copy_row("copy", 0);
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid || ' ' || server_flags FROM message"
			    " JOIN message_state USING (id) WHERE id = 2"),
			 "3 \\Seen");
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 1"), "1");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_move_untagged_copyuid)
{
	/* MOVE reports COPYUID untagged; the source row goes. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "move 1 Archive",
		  .ev = { { EV_CODE, .code = IMAP_CODE_COPYUID, .value = 4 } } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	copy_row("move", SRC_REMOVED);
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "4");
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE id = 1"), "0");
}
END_TEST

START_TEST(test_move_without_move_cap)
{
	/* No MOVE: COPY, then \Deleted and UID EXPUNGE of the source. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "copy 1 Archive", .code = IMAP_CODE_COPYUID, .new_uid = 3 },
		{ .call = "store 1 +(\\Deleted) 0" },
		{ .call = "expunge 1" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	copy_row("move", SRC_REMOVED);
	res = run(script, ALL_CAPS & ~CAP(IMAP_CAP_MOVE));
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "3");
	assert_replayed(true);
}
END_TEST

START_TEST(test_move_source_store_refused)
{
	/* No MOVE: the copy is made, but the source's STORE +FLAGS \Deleted
	 * is refused, so the UID EXPUNGE after it (OK) removed nothing: the
	 * move is refused, not done (a retry finds the copy and removes the
	 * source again), and nothing is adopted. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "copy 1 Archive", .code = IMAP_CODE_COPYUID, .new_uid = 3 },
		{ .call = "store 1 +(\\Deleted) 0", .r = -CPMSYNC_E_SERVER, .text = "not now" },
		{ .call = "expunge 1" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	copy_row("move", SRC_REMOVED);
	res = run(script, ALL_CAPS & ~CAP(IMAP_CAP_MOVE));
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "(null)");
	ck_assert_str_eq(qs("SELECT op || ' ' || refused || ' ' || tries FROM journal"),
			 "move not now 1");
}
END_TEST

/* --- move without MOVE and UIDPLUS --- */

/* The FETCH of a verification finding the message as UID u. */
#define FETCH_FINDS(u, d, f)                                                                       \
	{                                                                                          \
		.call = "fetch " #u " (UID RFC822.SIZE INTERNALDATE FLAGS)",                       \
		.ev = { { EV_FETCH, .fetch = { .uid = u,                                           \
					       .present = ENGINE_FETCH_SIZE | ENGINE_FETCH_DATE |  \
							  ENGINE_FETCH_FLAGS,                      \
					       .size = 5,                                          \
					       .internaldate = d,                                  \
					       .flags = f } } }                                    \
	}

START_TEST(test_move_without_move_and_uidplus)
{
	/* Neither MOVE nor UIDPLUS: no other message of INBOX is \Deleted
	 * (the source itself may be), so COPY, find the copy, \Deleted and a
	 * plain EXPUNGE of the source, checked again just before it. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "search deleted", .ev = { { EV_SEARCH, .lo = 1, .hi = 1 } } },
		{ .call = "copy 1 Archive" },
		{ .call = "select Archive condstore" },
		/* (From UID 1: the row in memory predates its mark.) */
		{ .call = "search 1: <m1@x>", .ev = { { EV_SEARCH, .lo = 3, .hi = 3 } } },
		FETCH_FINDS(3, 1000, "\\Seen"),
		SELECT_INBOX,
		{ .call = "store 1 +(\\Deleted) 0" },
		{ .call = "search deleted", .ev = { { EV_SEARCH, .lo = 1, .hi = 1 } } },
		{ .call = "expunge (all deleted)" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	copy_row("move", SRC_REMOVED);
	res = run(script, ALL_CAPS & ~CAP(IMAP_CAP_MOVE) & ~CAP(IMAP_CAP_UIDPLUS));
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	ck_assert_str_eq(qs("SELECT uid || ' ' || server_flags FROM message"
			    " JOIN message_state USING (id) WHERE id = 2"),
			 "3 \\Seen");
	assert_replayed(true);
}
END_TEST

START_TEST(test_move_without_move_and_uidplus_others_deleted)
{
	/* Another client's messages of INBOX are \Deleted: the EXPUNGE would
	 * remove them, so nothing is sent; the move is a failed operation at
	 * once that says why, and the run goes on (and succeeds).  A discard
	 * shows the message in INBOX again. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "search deleted",
		  .ev = { { EV_SEARCH, .lo = 1, .hi = 2 }, { EV_SEARCH, .lo = 7, .hi = 7 } } },
		{ .call = "create Projects" },
		{ .call = "status Projects" },
		LOGOUT,
		END,
	};
	struct sync_result res;
	int64_t id;

	copy_row("move", SRC_REMOVED);
	exec("INSERT INTO folder (account_id, name) VALUES (1, 'Projects');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 3)");
	res = run(script, ALL_CAPS & ~CAP(IMAP_CAP_MOVE) & ~CAP(IMAP_CAP_UIDPLUS));
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_uint_eq(res.stats.ops_given_up, 1);
	ck_assert_str_eq(qs("SELECT op || ':' || message_id || ':' || code || ':' || failed || ':'"
			    " || attempts || ':' || refused FROM journal"),
			 "move:2::1:0:not sent: the server lacks MOVE and UIDPLUS, and EXPUNGE"
			 " would also remove the other \\Deleted messages of INBOX (UID 2,7)");
	ck_assert_str_eq(qs("SELECT group_concat(id || ':' || removed || ':' || ifnull(uid, '-'),"
			    " ',') FROM message WHERE folder_id IN (1, 2)"),
			 "1:1:1,2:0:-");
	id = atoll(qs("SELECT id FROM journal WHERE op = 'move'"));
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "t", id), 0);
	ck_assert_str_eq(qs("SELECT group_concat(id || ':' || removed, ',') FROM message"
			    " WHERE folder_id IN (1, 2)"),
			 "1:0");
}
END_TEST

START_TEST(test_move_without_move_and_uidplus_deleted_meanwhile)
{
	/* Another client marks a message \Deleted between the check and the
	 * EXPUNGE: no EXPUNGE; the move fails saying why, its mark kept, so
	 * that a retry finds the copy instead of copying again. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "search deleted" },
		{ .call = "copy 1 Archive" },
		{ .call = "select Archive condstore" },
		/* (From UID 1: the row in memory predates its mark.) */
		{ .call = "search 1: <m1@x>", .ev = { { EV_SEARCH, .lo = 3, .hi = 3 } } },
		FETCH_FINDS(3, 1000, "\\Seen"),
		SELECT_INBOX,
		{ .call = "store 1 +(\\Deleted) 0" },
		{ .call = "search deleted",
		  .ev = { { EV_SEARCH, .lo = 1, .hi = 1 }, { EV_SEARCH, .lo = 4, .hi = 4 } } },
		LOGOUT,
		END,
	};
	static const struct step retry[] = {
		ARCHIVE_FINDS_M1,
		SELECT_INBOX,
		{ .call = "store 1 +(\\Deleted) 0" },
		{ .call = "search deleted", .ev = { { EV_SEARCH, .lo = 1, .hi = 1 } } },
		{ .call = "expunge (all deleted)" },
		LOGOUT,
		END,
	};
	struct sync_result res;
	int64_t id;

	copy_row("move", SRC_REMOVED);
	res = run(script, ALL_CAPS & ~CAP(IMAP_CAP_MOVE) & ~CAP(IMAP_CAP_UIDPLUS));
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_str_eq(qs("SELECT op || ':' || failed || ':' || attempts || ':' || refused"
			    " FROM journal"),
			 "move:1:1:not sent: the server lacks MOVE and UIDPLUS, and EXPUNGE"
			 " would also remove the other \\Deleted messages of INBOX (UID 4)");
	ck_assert_str_eq(qs("SELECT ifnull(uid, '-') FROM message WHERE id = 2"), "-");
	id = atoll(qs("SELECT id FROM journal WHERE op = 'move'"));
	ck_assert_int_eq(cpmsync_op_retry(cs, "t", id), 0);
	res = run(retry, ALL_CAPS & ~CAP(IMAP_CAP_MOVE) & ~CAP(IMAP_CAP_UIDPLUS));
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "3");
	assert_replayed(true);
}
END_TEST

START_TEST(test_copy_malformed_args_from_body)
{
	/* An old or damaged row whose source cannot be read: the copy is
	 * made from our stored body, not guessed. */
	static const struct step script[] = {
		{ .call = "append Archive () 2000 local",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 3 },
		LOGOUT,
		END,
	};
	struct sync_result res;

	local_message(2, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id, args)"
	     " VALUES (1, 'copy', 2, 2, 'source=1')");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "3");
}
END_TEST

START_TEST(test_expunge_batch)
{
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "store 1:2 +(\\Deleted) 0" },
		{ .call = "expunge 1:2" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO message (folder_id, uid, removed) VALUES (1, 2, 1);"
	     "INSERT INTO message_state (id, flags, server_flags)"
	     " VALUES (last_insert_rowid(), '', '');"
	     "UPDATE message SET removed = 1 WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'expunge', 1, 1), (1, 'expunge', 1, 2)");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 2);
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE folder_id = 1"), "0");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/*
 * The journal replayed in a run that did not sync INBOX (a run of another
 * folder alone, news by IDLE or NOTIFY), and another client deleted INBOX's
 * folder and made another under its name meanwhile: its SELECT reports
 * another UIDVALIDITY.  Before, the UID STORE and UID EXPUNGE went to the
 * other folder's UID 1, removing a message nobody had deleted.  Now nothing
 * is sent there: the rows wait, untouched, for the folder's sync, and the
 * run counts the folder (stats.folders_waiting: the session then asks for
 * a full sync).  A MAILBOXID that changed does the same.
 */
START_TEST(test_replay_folder_replaced)
{
	static const struct step uidvalidity[] = {
		{ .call = "select INBOX condstore",
		  .ev = { { EV_CODE, .code = IMAP_CODE_UIDVALIDITY, .value = 8 },
			  { EV_CODE, .code = IMAP_CODE_UIDNEXT, .value = 3 },
			  { EV_CODE, .code = IMAP_CODE_HIGHESTMODSEQ, .value = 4 } } },
		LOGOUT,
		END,
	};
	static const struct step same[] = {
		{ .call = "select INBOX condstore",
		  .ev = { { EV_CODE, .code = IMAP_CODE_UIDVALIDITY, .value = 7 },
			  { EV_CODE, .code = IMAP_CODE_UIDNEXT, .value = 5 },
			  { EV_CODE, .code = IMAP_CODE_HIGHESTMODSEQ, .value = 100 } } },
		{ .call = "store 1 +(\\Deleted) 0" },
		{ .call = "expunge 1" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("UPDATE message SET removed = 1 WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'expunge', 1, 1)");
	res = run(uidvalidity, ALL_CAPS);
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_uint_eq(res.stats.folders_waiting, 1);
	ck_assert_uint_eq(res.stats.ops_replayed, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 0);
	ck_assert_str_eq(qs("SELECT op || ':' || tries || ':' || failed || ':' || (refused IS NULL)"
			    " FROM journal"),
			 "expunge:0:0:1");
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE id = 1"), "1");

	/* The same folder after all (its sync found it so): the rows go. */
	res = run(same, ALL_CAPS);
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_uint_eq(res.stats.folders_waiting, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/*
 * 300 expunges of odd UIDs 1..599 (message 1 and 299 more): their set
 * (1,144 bytes) takes two UID STORE + UID EXPUNGE pairs, each line within
 * ENGINE_LINE_MAX.  Fills call[0..3] with the four calls as fake_call()
 * spells them.
 */
#define EXPUNGE_TWO_SETS_N "300"
static void expunge_two_sets(char call[4][FAKE_CALL_MAX])
{
	struct rangeset uids = RANGESET_INIT;
	struct buf set = BUF_INIT(ENGINE_REPLAY_SET_BYTES + 64);
	size_t pos = 0;

	exec("UPDATE message SET removed = 1 WHERE id = 1;"
	     "INSERT INTO message (folder_id, uid, removed)"
	     " WITH RECURSIVE c(u) AS (SELECT 3 UNION ALL SELECT u + 2 FROM c WHERE u < 599)"
	     " SELECT 1, u, 1 FROM c;"
	     "INSERT INTO message_state (id, flags, server_flags)"
	     " SELECT id, '', '' FROM message WHERE id NOT IN (SELECT id FROM message_state);"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " SELECT 1, 'expunge', 1, id FROM message WHERE folder_id = 1 ORDER BY id");
	for (uint32_t u = 1; u <= 599; u += 2)
		ck_assert_int_eq(rangeset_add(&uids, u), 0);
	for (int i = 0; i < 2; i++) {
		buf_reset(&set);
		ck_assert_int_ge(imap_seqset_format(&uids, &pos, &set, ENGINE_REPLAY_SET_BYTES), 0);
		/* "a4294967295 UID STORE <set> +FLAGS.SILENT (\\Deleted)" CRLF */
		ck_assert_uint_le(12 + 10 + set.len + 25 + 2, ENGINE_LINE_MAX);
		snprintf(call[2 * i], FAKE_CALL_MAX, "store %s +(\\Deleted) 0", set.data);
		snprintf(call[2 * i + 1], FAKE_CALL_MAX, "expunge %s", set.data);
	}
	ck_assert_uint_eq(pos, uids.n); /* two sets, no third */
	buf_free(&set);
	rangeset_free(&uids);
}

START_TEST(test_expunge_sets_each_answered)
{
	/* A batch sent as two command pairs: a refusal of the first set's
	 * UID EXPUNGE (then of the second set's UID STORE, whose UID EXPUNGE
	 * then expunges nothing) is not lost behind the last reply's OK: the
	 * whole batch stays, refused, and no message row goes. */
	for (int which = 0; which < 2; which++) {
		char call[4][FAKE_CALL_MAX];
		struct step script[] = {
			SELECT_INBOX,
			{ .call = call[0] },
			{ .call = call[1] },
			{ .call = call[2] },
			{ .call = call[3] },
			LOGOUT,
			END,
		};
		struct step *no = &script[which == 0 ? 2 : 3];
		struct sync_result res;

		if (which) {
			teardown();
			setup();
		}
		expunge_two_sets(call);
		no->r = -CPMSYNC_E_SERVER;
		no->text = "try later";
		res = run(script, ALL_CAPS);
		ck_assert_int_eq(res.r, 0);
		ck_assert_uint_eq(res.stats.ops_replayed, 0);
		ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE folder_id = 1"),
				 EXPUNGE_TWO_SETS_N);
		ck_assert_str_eq(qs("SELECT count(*) || ' ' || min(refused) || ' ' || max(tries)"
				    " FROM journal WHERE refused IS NOT NULL"),
				 EXPUNGE_TWO_SETS_N " try later 1");
	}
}
END_TEST

START_TEST(test_expunge_store_refused_without_uidplus)
{
	/* Without UIDPLUS: a refused STORE +FLAGS \Deleted of any set keeps
	 * the batch (EXPUNGE would not remove those messages); no EXPUNGE is
	 * sent. */
	char call[4][FAKE_CALL_MAX];
	struct step script[] = {
		SELECT_INBOX,
		{ .call = call[0], .r = -CPMSYNC_E_SERVER, .text = "read-only here" },
		{ .call = call[2] },
		{ .call = "search deleted" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	expunge_two_sets(call);
	res = run(script, ALL_CAPS & ~CAP(IMAP_CAP_UIDPLUS));
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE folder_id = 1"),
			 EXPUNGE_TWO_SETS_N);
	ck_assert_str_eq(qs("SELECT count(*) || ' ' || min(refused) FROM journal"
			    " WHERE refused IS NOT NULL"),
			 EXPUNGE_TWO_SETS_N " read-only here");
}
END_TEST

START_TEST(test_copy_interrupted_found)
{
	/* A run sent the COPY and died: the copy is found in the destination
	 * from the recorded UIDNEXT (Message-ID, size, date) and adopted;
	 * nothing is copied twice. */
	static const struct step script[] = {
		ARCHIVE_FINDS_M1,
		LOGOUT,
		END,
	};
	struct sync_result res;

	copy_row("copy", SENT);
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid || ' ' || server_flags FROM message"
			    " JOIN message_state USING (id) WHERE id = 2"),
			 "3 \\Seen");
	assert_replayed(false);
}
END_TEST

START_TEST(test_move_interrupted_found_source_removed)
{
	/* An interrupted MOVE found in the destination: the source may still
	 * be there (COPY done, EXPUNGE not), so it is removed by UID. */
	static const struct step script[] = {
		ARCHIVE_FINDS_M1,	 SELECT_INBOX, { .call = "store 1 +(\\Deleted) 0" },
		{ .call = "expunge 1" }, LOGOUT,       END,
	};
	struct sync_result res;

	copy_row("move", SENT | SRC_REMOVED);
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "3");
	assert_replayed(true);
}
END_TEST

START_TEST(test_move_interrupted_rematched_source_removed)
{
	/* An interrupted MOVE that copied but did not expunge (a server that
	 * died between the two, or a move made of COPY + EXPUNGE interrupted
	 * between them): the next run's sync re-matched the copy in Archive
	 * (the destination row has its UID, the row is still there), and the
	 * source is still in INBOX.  It must still go: otherwise the message
	 * stays in both folders, a move replayed as a copy. */
	static const struct step script[] = {
		SELECT_INBOX, { .call = "store 1 +(\\Deleted) 0" }, { .call = "expunge 1" }, LOGOUT,
		END,
	};
	struct sync_result res;

	copy_row("move", SENT | SRC_REMOVED | REMATCHED);
	exec("UPDATE message_state SET modseq = 51 WHERE id = 2");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid || ' ' || server_flags FROM message"
			    " JOIN message_state USING (id) WHERE id = 2"),
			 "3 \\Seen");
	assert_replayed(true);
}
END_TEST

START_TEST(test_move_interrupted_rematched_source_gone)
{
	/* The same after a MOVE the server made whole: the sync saw the
	 * source vanish and re-matched the copy; nothing is left to send. */
	static const struct step script[] = {
		LOGOUT,
		END,
	};
	struct sync_result res;

	copy_row("move", SENT | REMATCHED | SRC_GONE);
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "3");
	assert_replayed(false);
}
END_TEST

START_TEST(test_move_interrupted_source_gone_found)
{
	/* A MOVE the server made whole, answer lost, and the source seen to
	 * vanish by a sync that did not re-match the copy: the row falls back
	 * to appending our copy, but first finds the MOVE's copy (from the
	 * recorded UIDNEXT) and adopts it; nothing is appended. */
	static const struct step script[] = {
		ARCHIVE_FINDS_M1,
		LOGOUT,
		END,
	};
	struct sync_result res;

	copy_row("move", SENT | COPY_BODY | SRC_GONE);
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid || ' ' || server_flags FROM message"
			    " JOIN message_state USING (id) WHERE id = 2"),
			 "3 \\Seen");
	assert_replayed(false);
}
END_TEST

START_TEST(test_move_interrupted_source_gone_missing)
{
	/* The same when the MOVE never ran and the source went otherwise
	 * (another client expunged it): not found, so our copy is appended,
	 * once. */
	static const struct step script[] = {
		{ .call = "select Archive condstore" },
		{ .call = "search 3: <m1@x>" },
		{ .call = "append Archive (\\Seen) 1000 hello",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 4 },
		LOGOUT,
		END,
	};
	struct sync_result res;

	copy_row("move", SENT | COPY_BODY | SRC_GONE);
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "4");
	assert_replayed(false);
}
END_TEST

/* The WAL syncs counted when the run started, then at each command
 * check_wal_synced() saw. */
static unsigned long wal_syncs_seen;

/* The command that is leaving had its mark synced to the disk
 * (mark_durable()): a WAL sync since the run started or the last such
 * command left. */
static void check_wal_synced(void)
{
	ck_assert_uint_gt(test_wal_syncs(), wal_syncs_seen);
	wal_syncs_seen = test_wal_syncs();
}

START_TEST(test_marks_synced_before_sent)
{
	/* An APPEND, a round of STOREs and a CREATE: each mark is on the
	 * disk before its command leaves, not only committed (a power loss
	 * must not take it back once the server may have the command). */
	static const struct step script[] = {
		{ .call = "create Projects", .during = check_wal_synced },
		{ .call = "status Projects" },
		{ .call = "append INBOX () 2000 local",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 7,
		  .during = check_wal_synced },
		SELECT_INBOX,
		{ .call = "store 1 (\\Flagged \\Seen) 100", .during = check_wal_synced },
		LOGOUT,
		END,
	};
	struct sync_result res;

	local_message(1, "");
	exec("UPDATE message_state SET flags = '\\Flagged \\Seen' WHERE id = 1;"
	     "INSERT INTO folder (account_id, name) VALUES (1, 'Projects');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 3);"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, 2), (1, 'flags', 1, 1)");
	wal_syncs_seen = test_wal_syncs();
	res = run(script, ALL_CAPS);
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/* The folders but INBOX and Archive: "id:name:server_name,...". */
static const char *folders(void)
{
	return qs("SELECT group_concat(id || ':' || name || ':' || server_name, ',')"
		  " FROM folder WHERE id > 2");
}

/* A replay of script that succeeds and leaves nothing pending, with the
 * folders then as folders() says want. */
static void replay_ok(const struct step *script, const char *want)
{
	struct sync_result res = run(script, ALL_CAPS);

	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
	ck_assert_str_eq(folders(), want);
}

/*
 * Renamed here (L3 -> L4), L3 created here again with a message, then L4
 * deleted here: DeleteFolder dropped the RENAME, so the journal holds the
 * CREATE of L3 before the DELETE of the old folder, which goes by its
 * server name, L3 too.  In that order the CREATE was answered
 * [ALREADYEXISTS] and taken as made, the message went into the old folder,
 * and the DELETE deleted both (test-sync-crash, CRASH_SEED=93975).  The
 * DELETE goes first.
 */
START_TEST(test_create_after_its_name_is_deleted)
{
	static const struct step script[] = {
		STATUS_UIDVALIDITY("L3", 11),
		{ .call = "delete L3" },
		{ .call = "create L3" },
		{ .call = "status L3" },
		{ .call = "append L3 () 2000 local", .code = IMAP_CODE_APPENDUID, .new_uid = 3 },
		LOGOUT,
		END,
	};
	int64_t id;

	exec("INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext, removed)"
	     " VALUES (1, 'L4', 'L3', 11, 9, 1);"
	     "INSERT INTO folder (account_id, name) VALUES (1, 'L3');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 4)");
	id = local_message(4, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 4, 2);"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'delete_folder', 3)");
	ck_assert_int_eq(id, 2);
	replay_ok(script, "4:L3:L3");
	ck_assert_str_eq(qs("SELECT folder_id || ':' || uid FROM message WHERE id = 2"), "4:3");
}
END_TEST

/* The same for a RENAME to the name (W -> L3 instead of a CREATE). */
START_TEST(test_rename_after_its_name_is_deleted)
{
	static const struct step script[] = {
		STATUS_UIDVALIDITY("L3", 11),
		{ .call = "delete L3" },
		{ .call = "rename Projects L3" },
		LOGOUT,
		END,
	};

	exec("INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext, removed)"
	     " VALUES (1, 'L4', 'L3', 11, 9, 1);"
	     "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext)"
	     " VALUES (1, 'L3', 'Projects', 12, 1);"
	     "INSERT INTO journal (account_id, op, folder_id, args)"
	     " VALUES (1, 'rename_folder', 4, NULL);"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'delete_folder', 3)");
	replay_ok(script, "4:L3:L3");
}
END_TEST

/*
 * Two folders swap names here by way of a third (L5 -> L4, LE -> L5,
 * L4 -> LE): L5's first RENAME goes to the name that step gave, since LE,
 * its current name, is still the other folder's on the server.  Straight
 * to the current names, L5 -> LE and LE -> L5 each found the other's
 * folder there, for ever (test-sync-crash-cyrus-alt, CRASH_KILLS=40).
 * Renames of a folder whose current name is free take one RENAME
 * (Old -> Mid -> New), as before.
 */
START_TEST(test_rename_swap)
{
	static const struct step script[] = {
		{ .call = "rename L5 L4" },
		{ .call = "rename LE L5" },
		{ .call = "rename L4 LE" },
		{ .call = "rename Old New" },
		LOGOUT,
		END,
	};

	exec("INSERT INTO folder (id, account_id, name, server_name, uidvalidity, uidnext)"
	     " VALUES (3, 1, 'L5', 'L5', 11, 1), (4, 1, 'LE', 'LE', 12, 1),"
	     " (5, 1, 'Old', 'Old', 13, 1)");
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "L5", "L4"), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "LE", "L5"), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "L4", "LE"), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "Old", "Mid"), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "Mid", "New"), 0);
	replay_ok(script, "3:LE:LE,4:L5:L5,5:New:New");
}
END_TEST

/*
 * Offline: New made, a message stored into it, Archive renamed to Old,
 * then New renamed to Archive.  The journal holds New's CREATE (its
 * current name, Archive) before Archive's RENAME away: sent in that
 * order, the CREATE was answered [ALREADYEXISTS] (the old folder still
 * had the name), taken as made, and the RENAME then took the old folder
 * away: the new folder had a server name no folder had, and the next
 * sync deleted it here as gone from the server, with its message
 * (test-sync-crash, CI45).  The RENAME goes first, then the CREATE.
 */
START_TEST(test_create_after_its_name_is_renamed_away)
{
	static const char body[] = "Message-ID: <n@x>\r\n\r\nhi\r\n";
	static const struct step script[] = {
		{ .call = "rename Archive Old" },
		{ .call = "create Archive" },
		STATUS_UIDVALIDITY("Archive", 21),
		{ .call = "append Archive () 3000 Message-ID: <n@x>\r\n\r\nhi\r\n",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 1 },
		LOGOUT,
		END,
	};
	int64_t folder, id;

	ck_assert_int_eq(cpmsync_op_create_folder(cs, "t", "New", &folder), 0);
	ck_assert_int_eq(cpmsync_op_store(cs, "t", "New", body, strlen(body), NULL, 3000, &id), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "Archive", "Old"), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "New", "Archive"), 0);
	replay_ok(script, "3:Archive:Archive");
	ck_assert_str_eq(qs("SELECT name || ':' || server_name FROM folder WHERE id = 2"),
			 "Old:Old");
	ck_assert_str_eq(qs("SELECT m.folder_id || ':' || m.uid || ':' || f.uidvalidity"
			    " FROM message m JOIN folder f ON f.id = m.folder_id WHERE m.id = 2"),
			 "3:1:21");
}
END_TEST

/*
 * The same when Archive's RENAME cannot go now (refused, tried again
 * later): the CREATE finds the name taken by it, and that is not a folder
 * an interrupted run made.  The CREATE waits (refused, tried again later),
 * the message with it; nothing is taken for made.
 */
/*
 * Cyrus refuses a name with ';' (a peer folder of a sip:...;gr=... GRUU)
 * with "NO Invalid mailbox name" and no code: a failed operation at once,
 * naming the character, not five tries.  The same text for a name without
 * such a character, and another text without a code for one with it, may
 * pass: tried again later.
 */
START_TEST(test_create_name_cyrus_refuses)
{
	static const struct step script[] = {
		{ .call = "create Default/sip:b@x;gr=u1",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Invalid mailbox name" },
		{ .call = "create Plain", .r = -CPMSYNC_E_SERVER, .text = "Invalid mailbox name" },
		{ .call = "create Semi;colon", .r = -CPMSYNC_E_SERVER, .text = "System I/O error" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO folder (account_id, name) VALUES (1, 'Default/sip:b@x;gr=u1');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 3);"
	     "INSERT INTO folder (account_id, name) VALUES (1, 'Plain');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 4);"
	     "INSERT INTO folder (account_id, name) VALUES (1, 'Semi;colon');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 5)");
	res = run_logged(script, ALL_CAPS, "t: ");
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 3);
	ck_assert_uint_eq(res.stats.ops_given_up, 1);
	ck_assert_ptr_nonnull(strstr(engine_log, "t: CREATE refused by the server: Invalid mailbox "
						 "name: the server does not take ';' in a folder "
						 "name (a failed operation now)\n"));
	ck_assert_str_eq(qs("SELECT group_concat(f.name || ':' || j.refused || ':' || j.tries"
			    " || ':' || j.failed, ',') FROM journal j JOIN folder f"
			    " ON f.id = j.folder_id ORDER BY j.id"),
			 "Default/sip:b@x;gr=u1:Invalid mailbox name: the server does not take "
			 "';' in a folder name:1:1,"
			 "Plain:Invalid mailbox name:1:0,"
			 "Semi;colon:System I/O error:1:0");
}
END_TEST

/*
 * The same for a RENAME to such a name (RenameFolder to a peer folder's
 * name): failed at once, not five tries; to a name without the character,
 * tried again later.
 */
START_TEST(test_rename_name_cyrus_refuses)
{
	static const struct step script[] = {
		{ .call = "rename Old Default/sip:b@x;gr=u1",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Invalid mailbox name" },
		{ .call = "rename Older Plain",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Invalid mailbox name" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext)"
	     " VALUES (1, 'Default/sip:b@x;gr=u1', 'Old', 11, 1);"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'rename_folder', 3);"
	     "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext)"
	     " VALUES (1, 'Plain', 'Older', 12, 1);"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'rename_folder', 4)");
	res = run_logged(script, ALL_CAPS, "t: ");
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 2);
	ck_assert_uint_eq(res.stats.ops_given_up, 1);
	ck_assert_ptr_nonnull(strstr(engine_log, "t: RENAME refused by the server: Invalid mailbox "
						 "name: the server does not take ';' in a folder "
						 "name (a failed operation now)\n"));
	ck_assert_str_eq(qs("SELECT group_concat(f.name || ':' || j.refused || ':' || j.tries"
			    " || ':' || j.failed, ',') FROM journal j JOIN folder f"
			    " ON f.id = j.folder_id ORDER BY j.id"),
			 "Default/sip:b@x;gr=u1:Invalid mailbox name: the server does not take "
			 "';' in a folder name:1:1,"
			 "Plain:Invalid mailbox name:1:0");
}
END_TEST

START_TEST(test_create_name_still_held)
{
	static const char body[] = "Message-ID: <n@x>\r\n\r\nhi\r\n";
	static const struct step script[] = {
		{ .call = "create Archive",
		  .r = -CPMSYNC_E_SERVER,
		  .code = IMAP_CODE_ALREADYEXISTS,
		  .code_name = "ALREADYEXISTS",
		  .text = "Mailbox already exists" },
		LOGOUT,
		END,
	};
	struct sync_result res;
	int64_t folder, id;

	ck_assert_int_eq(cpmsync_op_create_folder(cs, "t", "New", &folder), 0);
	ck_assert_int_eq(cpmsync_op_store(cs, "t", "New", body, strlen(body), NULL, 3000, &id), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "Archive", "Old"), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "New", "Archive"), 0);
	exec("UPDATE journal SET refused = 'in use', code = 'INUSE', tries = 1,"
	     " retry_after = CAST(strftime('%s', 'now') AS INTEGER) + 600"
	     " WHERE op = 'rename_folder'");
	res = run(script, ALL_CAPS);
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_uint_eq(res.stats.ops_given_up, 0);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || coalesce(code, '') || ':' || tries"
			    " || ':' || failed, ',') FROM journal"),
			 "create_folder:ALREADYEXISTS:1:0,append::0:0,rename_folder:INUSE:1:0");
	ck_assert_str_eq(qs("SELECT group_concat(id || ':' || name || ':' || coalesce(server_name,"
			    " '-'), ',') FROM folder WHERE id > 1"),
			 "2:Old:Archive,3:Archive:-");
}
END_TEST

/* Folders A, A/x and A/z on the server; here A/x renamed to A/y, then A
 * to B (B/y, B/z). */
static void rename_child_then_parent(void)
{
	exec("INSERT INTO folder (id, account_id, name, server_name, uidvalidity, uidnext)"
	     " VALUES (3, 1, 'A', 'A', 11, 1), (4, 1, 'A/x', 'A/x', 12, 1),"
	     " (5, 1, 'A/z', 'A/z', 13, 1)");
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "A/x", "A/y"), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "A", "B"), 0);
}

/*
 * A/x's RENAME goes to A/y, under A's server name, and A's RENAME takes it
 * along.  To its current name, B/y, the server made B for it and A's
 * RENAME then found B taken.
 */
START_TEST(test_rename_child_then_parent)
{
	static const struct step script[] = {
		{ .call = "rename A/x A/y" },
		{ .call = "rename A B" },
		LOGOUT,
		END,
	};

	rename_child_then_parent();
	replay_ok(script, "3:B:B,4:B/y:B/y,5:B/z:B/z");
}
END_TEST

/* A's RENAME refused for good, then discarded: every name is the
 * server's again, A/y included. */
START_TEST(test_rename_child_then_parent_refused)
{
	static const struct step script[] = {
		{ .call = "rename A/x A/y" },
		{ .call = "rename A B",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Permission denied",
		  .code = IMAP_CODE_NOPERM,
		  .code_name = "NOPERM" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	rename_child_then_parent();
	res = run(script, ALL_CAPS);
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_uint_eq(res.stats.ops_given_up, 1);
	ck_assert_str_eq(folders(), "3:B:A,4:B/y:A/y,5:B/z:A/z");
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "t", atoll(qs("SELECT id FROM journal"))),
			 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
	ck_assert_str_eq(folders(), "3:A:A,4:A/y:A/y,5:A/z:A/z");
}
END_TEST

/*
 * The folder flag of message 3 (UID 1 in folder, UIDVALIDITY 11) was
 * changed in, then old renamed to new, both here: the replay selects
 * folder for the STORE, and the RENAME follows.
 */
static void flags_then_rename(const char *folder, const char *old, const char *new)
{
	char sql[800];

	exec("INSERT INTO folder (id, account_id, name, server_name, uidvalidity, uidnext,"
	     " highestmodseq) VALUES (3, 1, 'X', 'X', 10, 1, 1), (4, 1, 'X/kid', 'X/kid', 11, 3,"
	     " 60), (5, 1, 'Y', 'Y', 11, 3, 60)");
	snprintf(sql, sizeof(sql),
		 "INSERT INTO message (id, folder_id, uid, size, internaldate, message_id)"
		 " VALUES (3, (SELECT id FROM folder WHERE name = '%s'), 1, 5, 1000, '<k1@x>'),"
		 " (4, (SELECT id FROM folder WHERE name = '%s'), 2, 5, 1000, '<k2@x>');"
		 "INSERT INTO message_state (id, flags, server_flags, modseq)"
		 " VALUES (3, '\\Flagged', '', 60), (4, '', '', 60);"
		 "INSERT INTO journal (account_id, op, folder_id, message_id)"
		 " VALUES (1, 'flags', (SELECT folder_id FROM message WHERE id = 3), 3)",
		 folder, folder);
	exec(sql);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", old, new), 0);
}

/*
 * Cyrus answers a RENAME of the selected folder with "* VANISHED" of every
 * UID the session saw: the mailbox went away under that name, its
 * messages did not.  Taken as expunges, they were gone here for good.  An
 * UNSELECT goes first, and the VANISHED is no folder's.
 */
START_TEST(test_rename_of_the_selected_folder)
{
	static const struct step script[] = {
		{ .call = "select Y condstore",
		  .ev = { { EV_CODE, .code = IMAP_CODE_UIDNEXT, .value = 3 },
			  { EV_CODE, .code = IMAP_CODE_HIGHESTMODSEQ, .value = 60 } } },
		{ .call = "store 1 (\\Flagged) 60" },
		{ .call = "unselect" },
		{ .call = "rename Y Y2", .ev = { { EV_VANISHED, .lo = 1, .hi = 2 } } },
		LOGOUT,
		END,
	};

	flags_then_rename("Y", "Y", "Y2");
	replay_ok(script, "3:X:X,4:X/kid:X/kid,5:Y2:Y2");
	ck_assert_str_eq(qs("SELECT group_concat(id || ':' || folder_id || ':' || uid || ':'"
			    " || removed, ',') FROM message WHERE id > 2"),
			 "3:5:1:0,4:5:2:0");
}
END_TEST

/* The same when the selected folder is under the one renamed (its server
 * name goes with it); a selected folder elsewhere stays selected. */
START_TEST(test_rename_above_the_selected_folder)
{
	static const struct step script[] = {
		{ .call = "select X/kid condstore",
		  .ev = { { EV_CODE, .code = IMAP_CODE_UIDNEXT, .value = 3 },
			  { EV_CODE, .code = IMAP_CODE_HIGHESTMODSEQ, .value = 60 } } },
		{ .call = "store 1 (\\Flagged) 60" },
		{ .call = "unselect" },
		{ .call = "rename X X2", .ev = { { EV_VANISHED, .lo = 1, .hi = 2 } } },
		LOGOUT,
		END,
	};
	static const struct step elsewhere[] = {
		{ .call = "select X/kid condstore",
		  .ev = { { EV_CODE, .code = IMAP_CODE_UIDNEXT, .value = 3 },
			  { EV_CODE, .code = IMAP_CODE_HIGHESTMODSEQ, .value = 60 } } },
		{ .call = "store 1 (\\Flagged) 60" },
		{ .call = "rename Y Y2" },
		LOGOUT,
		END,
	};

	flags_then_rename("X/kid", "X", "X2");
	replay_ok(script, "3:X2:X2,4:X2/kid:X2/kid,5:Y:Y");
	ck_assert_str_eq(qs("SELECT group_concat(id || ':' || folder_id || ':' || uid || ':'"
			    " || removed, ',') FROM message WHERE id > 2"),
			 "3:4:1:0,4:4:2:0");
	teardown();
	setup();
	flags_then_rename("X/kid", "Y", "Y2");
	replay_ok(elsewhere, "3:X:X,4:X/kid:X/kid,5:Y2:Y2");
}
END_TEST

/* Folder Work (UIDVALIDITY 11) deleted here; its DELETE replayed by
 * script: the row and its journal row are gone after the run. */
static void replay_delete_of_work(const struct step *script)
{
	struct sync_result res;

	exec("INSERT INTO folder (id, account_id, name, server_name, uidvalidity, uidnext, removed)"
	     " VALUES (3, 1, 'Work', 'Work', 11, 9, 1);"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'delete_folder', 3)");
	res = run(script, ALL_CAPS);
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
	ck_assert_str_eq(qs("SELECT count(*) FROM folder WHERE id = 3"), "0");
}

/*
 * Deleted here while offline; meanwhile another client deleted the folder
 * and made another under its name (another UIDVALIDITY), with its own
 * messages.  The DELETE by name would have deleted that one: the STATUS
 * before it tells, the server's folder is left alone, and ours counts as
 * gone (the next LIST brings the other one in).
 */
START_TEST(test_delete_spares_a_folder_made_again)
{
	static const struct step script[] = {
		STATUS_UIDVALIDITY("Work", 12),
		LOGOUT,
		END,
	};

	replay_delete_of_work(script);
}
END_TEST

/* The same when the STATUS finds no folder of that name: gone already. */
START_TEST(test_delete_of_a_folder_gone)
{
	static const struct step script[] = {
		{ .call = "status Work", .r = -CPMSYNC_E_SERVER, .code = IMAP_CODE_NONEXISTENT },
		LOGOUT,
		END,
	};

	replay_delete_of_work(script);
}
END_TEST

/* A folder created here learns its UIDVALIDITY from a STATUS right after
 * its CREATE, so that its DELETE can be checked later. */
START_TEST(test_created_folder_learns_its_uidvalidity)
{
	static const struct step script[] = {
		{ .call = "create Work" },
		STATUS_UIDVALIDITY("Work", 21),
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO folder (id, account_id, name) VALUES (3, 1, 'Work');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 3)");
	res = run(script, ALL_CAPS);
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_str_eq(
		qs("SELECT server_name || ' ' || uidvalidity || ' ' || ifnull(uidnext, '-')"
		   " FROM folder WHERE id = 3"),
		"Work 21 -");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_connection_lost_mark_kept)
{
	/* The connection fails while the APPEND is in flight: the run fails
	 * with that error, and the attempt mark committed before sending
	 * stays, so that the next run verifies before sending again. */
	static const struct step script[] = {
		{ .call = "append INBOX () 2000 local",
		  .r = -CPMSYNC_E_DISCONNECTED,
		  .text = "connection reset" },
		END,
	};
	struct sync_result res;

	local_message(1, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, 2)");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, -CPMSYNC_E_DISCONNECTED);
	ck_assert_ptr_nonnull(strstr(res.reason, "connection reset"));
	ck_assert_str_eq(qs("SELECT attempts || ' ' || args_sent || ' ' || coalesce(refused, '-')"
			    " FROM journal"),
			 "1 uidnext=5 -");
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "(null)");
}
END_TEST

START_TEST(test_select_refused_rows_refused)
{
	/* The server refuses to select the folder rows need (no read right
	 * any more): that is their refusal, classified by its code ([NOPERM]:
	 * failed at once, every row of the batch); the other rows go on and
	 * the run does not fail. */
	static const struct step script[] = {
		{ .call = "select INBOX condstore",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Permission denied",
		  .code = IMAP_CODE_NOPERM,
		  .code_name = "NOPERM" },
		{ .call = "create Projects" },
		{ .call = "status Projects" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO message (folder_id, uid) VALUES (1, 2);"
	     "INSERT INTO message_state (id, flags, server_flags)"
	     " VALUES (last_insert_rowid(), '$A', '');"
	     "UPDATE message_state SET flags = '\\Flagged' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'flags', 1, 1), (1, 'flags', 1, 2);"
	     "INSERT INTO folder (account_id, name) VALUES (1, 'Projects');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 3);");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_refused, 1);
	ck_assert_uint_eq(res.stats.ops_given_up, 2);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || message_id || ':' || code || ':'"
			    " || refused || ':' || failed, ',') FROM journal"),
			 "flags:1:NOPERM:Permission denied:1,flags:2:NOPERM:Permission denied:1");
	ck_assert_str_eq(qs("SELECT server_flags FROM message_state WHERE id = 1"), "\\Seen");
	ck_assert_str_eq(qs("SELECT server_name FROM folder WHERE id = 3"), "Projects");
}
END_TEST

START_TEST(test_select_refused_transient_backs_off)
{
	/* A NO without a code may pass: the row is tried again later. */
	static const struct step script[] = {
		{ .call = "select INBOX condstore", .r = -CPMSYNC_E_SERVER, .text = "busy" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("UPDATE message_state SET flags = '\\Flagged' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'flags', 1, 1)");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT tries || ' ' || failed || ' ' || (retry_after - tried)"
			    " || ' ' || refused FROM journal"),
			 "1 0 60 busy");
}
END_TEST

/* --- folders, metadata, ACL --- */

START_TEST(test_folder_ops)
{
	/* CREATE (already there counts as done), RENAME, and DELETE of the
	 * selected folder (UNSELECT first; already gone counts as done). */
	static const struct step script[] = {
		{ .call = "create Projects",
		  .r = -CPMSYNC_E_SERVER,
		  .code = IMAP_CODE_ALREADYEXISTS,
		  .text = "[ALREADYEXISTS] exists" },
		{ .call = "status Projects" },
		{ .call = "rename Old New" },
		SELECT_INBOX,
		{ .call = "store 1 (\\Flagged) 100" },
		{ .call = "unselect" },
		STATUS_UIDVALIDITY("INBOX", 7),
		{ .call = "delete INBOX", .r = -CPMSYNC_E_SERVER, .code = IMAP_CODE_NONEXISTENT },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO folder (account_id, name) VALUES (1, 'Projects');"
	     "INSERT INTO folder (account_id, name, server_name) VALUES (1, 'New', 'Old');"
	     "UPDATE message_state SET flags = '\\Flagged' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 3);"
	     "INSERT INTO journal (account_id, op, folder_id, args)"
	     " VALUES (1, 'rename_folder', 4, 'New');"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'flags', 1, 1);"
	     "UPDATE folder SET removed = 1 WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'delete_folder', 1);");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT group_concat(name || '=' || server_name, ',') FROM folder"),
			 "Archive=Archive,Projects=Projects,New=New");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/* --- annotations --- */

#define ANNOTATE_CAPS (ALL_CAPS | CAP(IMAP_CAP_ANNOTATE_EXPERIMENT_1))

static void set_annotation(int64_t id, const char *entry, const char *value, bool shared)
{
	const struct cpmsync_annotation v = { entry, value };

	ck_assert_msg(cpmsync_op_set_annotations(cs, id, &v, 1, shared) == 0, "%s",
		      cpmsync_store_error(cs));
}

static void during_annotate_message_1(void)
{
	set_annotation(1, "/comment", "again", false);
}

/* The annotation rows of message id as "entry/shared/value/local|..." */
static const char *annotation_rows(int64_t id)
{
	char sql[400];

	snprintf(sql, sizeof(sql),
		 "SELECT group_concat(entry || '/' || shared || '/' || ifnull(value, '-') || '/'"
		 " || ifnull(local, '-'), '|') FROM (SELECT * FROM annotation WHERE"
		 " message_id = %lld ORDER BY entry, shared)",
		 (long long)id);
	return qs(sql);
}

START_TEST(test_annotation_store)
{
	/* Every pending value of the message in one STORE, the values of
	 * one entry together; a change made while it is in flight follows
	 * in a second one. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "annotate 1 /a priv [x] /comment priv [mine] /comment shared []",
		  .during = during_annotate_message_1 },
		{ .call = "annotate 1 /comment priv [again]" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	set_annotation(1, "/comment", "mine", false);
	set_annotation(1, "/comment", "", true);
	set_annotation(1, "/a", "x", false);
	ck_assert_str_eq(qs("SELECT group_concat(op || ' ' || message_id) FROM journal"),
			 "set_annotation 1");
	res = run(script, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_uint_eq(res.stats.ops_replayed, 2);
	ck_assert_str_eq(annotation_rows(1), "/a/0/x/-|/comment/0/again/-|/comment/1/-/-");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_annotation_refusals)
{
	/* [NOPERM] fails at once (the local value stays, as the contract
	 * wants until retried or discarded); a NO without a code is tried
	 * again later. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "annotate 1 /comment priv [mine]",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Permission denied",
		  .code = IMAP_CODE_NOPERM,
		  .code_name = "NOPERM" },
		{ .call = "annotate 2 /comment shared [s]",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "busy" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO message (folder_id, uid, size, internaldate) VALUES (1, 2, 5, 1000);"
	     "INSERT INTO message_state (id, flags, server_flags)"
	     " VALUES (last_insert_rowid(), '', '')");
	set_annotation(1, "/comment", "mine", false);
	set_annotation(2, "/comment", "s", true);
	res = run(script, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_uint_eq(res.stats.ops_failed, 2);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || message_id || ':' || code || ':'"
			    " || failed || ':' || refused, ',') FROM journal"),
			 "set_annotation:1:NOPERM:1:Permission denied,set_annotation:2::0:busy");
	ck_assert_str_eq(annotation_rows(1), "/comment/0/-/mine");
}
END_TEST

START_TEST(test_annotation_one_entry_refused)
{
	/* Cyrus refuses a whole STORE for one entry it owns: the entries are
	 * sent again one by one, the good one lands, and only the refused
	 * one stays pending, its row refused with a text that names it. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "annotate 1 /comment priv [good 4] /vendor/cmu/cyrus-imapd/bar priv [x]",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Permission denied" },
		{ .call = "annotate 1 /comment priv [good 4]" },
		{ .call = "annotate 1 /vendor/cmu/cyrus-imapd/bar priv [x]",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Permission denied" },
		LOGOUT,
		END,
	};
	/* Refused together, taken one by one: the row is done. */
	static const struct step script2[] = {
		SELECT_INBOX,
		{ .call = "annotate 2 /a shared [1] /b shared [2]",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "try again" },
		{ .call = "annotate 2 /a shared [1]" },
		{ .call = "annotate 2 /b shared [2]" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	set_annotation(1, "/vendor/cmu/cyrus-imapd/bar", "x", false);
	set_annotation(1, "/comment", "good 4", false);
	res = run(script, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_uint_eq(res.stats.ops_failed, 1);
	ck_assert_str_eq(annotation_rows(1),
			 "/comment/0/good 4/-|/vendor/cmu/cyrus-imapd/bar/0/-/x");
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || message_id || ':' || code || ':'"
			    " || failed || ':' || refused, ',') FROM journal"),
			 "set_annotation:1::0:/vendor/cmu/cyrus-imapd/bar (value.priv): "
			 "Permission denied");

	exec("DELETE FROM journal;"
	     "INSERT INTO message (folder_id, uid, size, internaldate) VALUES (1, 2, 5, 1000);"
	     "INSERT INTO message_state (id, flags, server_flags)"
	     " VALUES (last_insert_rowid(), '', '')");
	set_annotation(2, "/a", "1", true);
	set_annotation(2, "/b", "2", true);
	res = run(script2, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_uint_eq(res.stats.ops_failed, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	ck_assert_str_eq(annotation_rows(2), "/a/1/1/-|/b/1/2/-");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_annotation_refused_entry_held)
{
	/* The entry Cyrus refused is its row's: a later change to another
	 * annotation of the message gets a row of its own and sends only
	 * what changed; the refused entry goes again on RetryOperation
	 * (alone), and a later change to it takes it from the failed row. */
	static const struct step refused[] = {
		SELECT_INBOX,
		{ .call = "annotate 1 /comment priv [good 4] /vendor/cmu/cyrus-imapd/bar priv [x]",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Permission denied" },
		{ .call = "annotate 1 /comment priv [good 4]" },
		{ .call = "annotate 1 /vendor/cmu/cyrus-imapd/bar priv [x]",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Permission denied",
		  .code = IMAP_CODE_NOPERM,
		  .code_name = "NOPERM" },
		LOGOUT,
		END,
	};
	static const struct step later[] = {
		SELECT_INBOX,
		{ .call = "annotate 1 /comment priv [better]" },
		LOGOUT,
		END,
	};
	static const struct step retried[] = {
		SELECT_INBOX,
		{ .call = "annotate 1 /vendor/cmu/cyrus-imapd/bar priv [x]" },
		LOGOUT,
		END,
	};
	static const struct step refused_alone[] = {
		SELECT_INBOX,
		{ .call = "annotate 1 /vendor/cmu/cyrus-imapd/bar priv [y]",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Permission denied",
		  .code = IMAP_CODE_NOPERM,
		  .code_name = "NOPERM" },
		LOGOUT,
		END,
	};
	static const struct step refused_busy[] = {
		SELECT_INBOX,
		{ .call = "annotate 1 /vendor/cmu/cyrus-imapd/bar priv [w]",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "busy" },
		LOGOUT,
		END,
	};
	static const struct step later_fine[] = {
		SELECT_INBOX,
		{ .call = "annotate 1 /comment priv [fine]" },
		LOGOUT,
		END,
	};
	static const struct step changed[] = {
		SELECT_INBOX,
		{ .call = "annotate 1 /vendor/cmu/cyrus-imapd/bar priv [z]" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	set_annotation(1, "/vendor/cmu/cyrus-imapd/bar", "x", false);
	set_annotation(1, "/comment", "good 4", false);
	res = run(refused, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || code || ':' || failed, ',')"
			    " FROM journal"),
			 "set_annotation:NOPERM:1");

	/* A later change to /comment: a row of its own, only /comment sent. */
	set_annotation(1, "/comment", "better", false);
	ck_assert_str_eq(qs("SELECT count(*) || ' ' || sum(failed) FROM journal"), "2 1");
	res = run(later, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	ck_assert_uint_eq(res.stats.ops_failed, 0);
	ck_assert_str_eq(annotation_rows(1),
			 "/comment/0/better/-|/vendor/cmu/cyrus-imapd/bar/0/-/x");
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || code || ':' || failed, ',')"
			    " FROM journal"),
			 "set_annotation:NOPERM:1");

	/* RetryOperation: the refused entry alone, taken this time. */
	ck_assert_int_eq(cpmsync_op_retry(cs, "t", atoll(qs("SELECT id FROM journal"))), 0);
	res = run(retried, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
	ck_assert_str_eq(annotation_rows(1),
			 "/comment/0/better/-|/vendor/cmu/cyrus-imapd/bar/0/x/-");

	/* Refused again (alone); then set anew: the failed row is moot (what
	 * it held changed), the new value goes with the new row. */
	set_annotation(1, "/vendor/cmu/cyrus-imapd/bar", "y", false);
	res = run(refused_alone, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || code || ':' || failed, ',')"
			    " FROM journal"),
			 "set_annotation:NOPERM:1");
	set_annotation(1, "/vendor/cmu/cyrus-imapd/bar", "z", false);
	ck_assert_str_eq(qs("SELECT count(*) || ' ' || sum(failed) FROM journal"), "1 0");
	res = run(changed, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
	ck_assert_str_eq(annotation_rows(1),
			 "/comment/0/better/-|/vendor/cmu/cyrus-imapd/bar/0/z/-");

	/* Refused without a code: tried again later, not failed; a change
	 * meanwhile is not held back with it, nor does it send it. */
	set_annotation(1, "/vendor/cmu/cyrus-imapd/bar", "w", false);
	res = run(refused_busy, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || code || ':' || failed, ',')"
			    " FROM journal"),
			 "set_annotation::0");
	set_annotation(1, "/comment", "fine", false);
	ck_assert_str_eq(qs("SELECT count(*) || ' ' || sum(failed) FROM journal"), "2 0");
	res = run(later_fine, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || failed || ':' || refused, ',')"
			    " FROM journal"),
			 "set_annotation:0:busy");
	ck_assert_str_eq(annotation_rows(1), "/comment/0/fine/-|/vendor/cmu/cyrus-imapd/bar/0/z/w");

	/* Given up on, then discarded while another change is queued: the
	 * server's value wins for the entry it held, the other stays. */
	set_annotation(1, "/comment", "later", false);
	exec("UPDATE journal SET failed = 1 WHERE args IS NOT NULL");
	ck_assert_int_eq(
		cpmsync_op_discard_failed(
			cs, "t", atoll(qs("SELECT id FROM journal WHERE args IS NOT NULL"))),
		0);
	ck_assert_str_eq(annotation_rows(1),
			 "/comment/0/fine/later|/vendor/cmu/cyrus-imapd/bar/0/z/-");
	ck_assert_str_eq(qs("SELECT count(*) || ' ' || sum(failed) FROM journal"), "1 0");
}
END_TEST

START_TEST(test_annotation_without_annotate)
{
	/* Set offline, the server turns out to lack ANNOTATE: a failed
	 * operation saying so, nothing sent. */
	static const struct step script[] = { LOGOUT, END };
	struct sync_result res;

	set_annotation(1, "/comment", "mine", false);
	res = run(script, ALL_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_str_eq(
		qs("SELECT op || ':' || failed || ':' || code || ':' || refused"
		   " FROM journal"),
		"set_annotation:1::not sent: cannot set annotations of message 1: the server "
		"lacks ANNOTATE");
	ck_assert_str_eq(annotation_rows(1), "/comment/0/-/mine");
}
END_TEST

START_TEST(test_annotation_after_append)
{
	/* A message not on the server: its annotations follow its APPEND;
	 * when the APPEND failed, they fail with it. */
	static const struct step script[] = {
		{ .call = "append INBOX () 2000 local", .code = IMAP_CODE_APPENDUID, .new_uid = 5 },
		SELECT_INBOX,
		{ .call = "annotate 5 /comment priv [draft]" },
		LOGOUT,
		END,
	};
	static const struct step script2[] = { LOGOUT, END };
	struct sync_result res;
	int64_t id = local_message(1, "");
	char want[200];

	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, 2)");
	set_annotation(id, "/comment", "draft", false);
	res = run(script, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	ck_assert_str_eq(annotation_rows(id), "/comment/0/draft/-");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");

	id = local_message(1, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id, failed, tries, code,"
	     " refused) VALUES (1, 'append', 1, 3, 1, 1, 'TOOBIG', 'too big')");
	set_annotation(id, "/comment", "draft", false);
	res = run(script2, ANNOTATE_CAPS);
	ck_assert_msg(res.r == 0, "%s", res.reason);
	snprintf(want, sizeof(want),
		 "append:1:too big,set_annotation:1:not sent: depends on failed operation %s"
		 " (upload of message 3)",
		 qs("SELECT id FROM journal WHERE op = 'append'"));
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || failed || ':' || refused, ',')"
			    " FROM (SELECT * FROM journal ORDER BY id)"),
			 want);
}
END_TEST

START_TEST(test_metadata_and_acl)
{
	/* A server entry, a folder entry removed (NIL), SETACL and DELETEACL;
	 * one refused; a damaged row is reported, not sent. */
	static const struct step script[] = {
		{ .call = "setmetadata [] /shared/admin [me@x]" },
		{ .call = "setmetadata [INBOX] /private/comment []",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "no",
		  .code = IMAP_CODE_NOPERM,
		  .code_name = "NOPERM" },
		{ .call = "setacl Archive bob [lrs]" },
		{ .call = "setacl Archive eve []" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO journal (account_id, op, folder_id, args) VALUES"
	     " (1, 'set_metadata', NULL, '/shared/admin' || char(10) || 'me@x'),"
	     " (1, 'set_metadata', 1, '/private/comment' || char(10)),"
	     " (1, 'set_acl', 2, 'bob' || char(10) || 'lrs'),"
	     " (1, 'set_acl', 2, 'eve' || char(10)),"
	     " (1, 'set_acl', 2, 'no newline here')");
	res = run(script, ALL_CAPS | CAP(IMAP_CAP_METADATA_SERVER));
	ck_assert_int_eq(res.r, -CPMSYNC_E_SERVER);
	ck_assert_uint_eq(res.stats.ops_failed, 2);
	ck_assert_uint_eq(res.stats.ops_replayed, 3);
	/* The run fails for the damaged row only. */
	ck_assert_ptr_nonnull(strstr(res.reason, "malformed set_acl"));
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || coalesce(refused, '-') || ':'"
			    " || failed, ',') FROM journal"),
			 "set_metadata:no:1,set_acl:-:0");
}
END_TEST

START_TEST(test_malformed_and_unknown_rows)
{
	/* Rows this version cannot read fail with a reason and stay;
	 * the others still go. */
	static const struct step script[] = {
		{ .call = "create Projects" },
		{ .call = "status Projects" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO folder (account_id, name) VALUES (1, 'Projects');"
	     "INSERT INTO journal (account_id, op, folder_id, args)"
	     " VALUES (1, 'set_metadata', 1, '/private/comment');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'frobnicate', 1);"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 3);");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, -CPMSYNC_E_SERVER);
	ck_assert_ptr_nonnull(strstr(res.reason, "malformed set_metadata"));
	ck_assert_ptr_nonnull(strstr(res.reason, "<entry>"));
	ck_assert_uint_eq(res.stats.ops_failed, 2);
	ck_assert_str_eq(qs("SELECT group_concat(op, ',') FROM journal"),
			 "set_metadata,frobnicate");
	ck_assert_str_eq(qs("SELECT server_name FROM folder WHERE id = 3"), "Projects");
}
END_TEST

/* --- local calls while a command is in flight --- */

static void during_rename_projects(void)
{
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "Projects", "Work"), 0);
}

static void during_delete_projects(void)
{
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "t", "Projects"), 0);
}

static void during_flag_message_2(void)
{
	static const char *const add[] = { "\\Flagged", NULL };
	int64_t id = 2;

	ck_assert_int_eq(cpmsync_op_set_flags(cs, &id, 1, add, NULL), 0);
}

static void during_flag_message_1(void)
{
	static const char *const add[] = { "$Loc", NULL };
	int64_t id = 1;

	ck_assert_int_eq(cpmsync_op_set_flags(cs, &id, 1, add, NULL), 0);
}

/* Folder 3, "Projects", its CREATE queued. */
static void pending_projects(void)
{
	exec("INSERT INTO folder (account_id, name) VALUES (1, 'Projects');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 3);");
}

START_TEST(test_create_in_flight_renamed)
{
	/* RenameFolder while the CREATE is in flight: the server's folder
	 * follows under the new name, in the same row. */
	static const struct step script[] = {
		{ .call = "create Projects", .during = during_rename_projects },
		{ .call = "status Projects" },
		{ .call = "rename Projects Work" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	pending_projects();
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	ck_assert_str_eq(qs("SELECT name || '=' || server_name FROM folder WHERE id = 3"),
			 "Work=Work");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_create_in_flight_renamed_refused)
{
	/* That RENAME refused: a failed rename-folder (not create-folder),
	 * whose discard puts the server's name back. */
	static const struct step script[] = {
		{ .call = "create Projects", .during = during_rename_projects },
		{ .call = "status Projects" },
		{ .call = "rename Projects Work",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Permission denied",
		  .code = IMAP_CODE_NOPERM,
		  .code_name = "NOPERM" },
		LOGOUT,
		END,
	};
	struct sync_result res;
	int64_t id;

	pending_projects();
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_given_up, 1);
	ck_assert_str_eq(qs("SELECT op || ' ' || args || ' ' || code || ' ' || refused"
			    " || ' ' || failed FROM journal"),
			 "rename_folder Work NOPERM Permission denied 1");
	ck_assert_str_eq(qs("SELECT name || '=' || server_name FROM folder WHERE id = 3"),
			 "Work=Projects");
	id = atoll(qs("SELECT id FROM journal"));
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "t", id), 0);
	ck_assert_str_eq(qs("SELECT name || '=' || server_name FROM folder WHERE id = 3"),
			 "Projects=Projects");
}
END_TEST

START_TEST(test_create_in_flight_deleted)
{
	/* DeleteFolder while the CREATE is in flight: the folder the CREATE
	 * made is deleted on the server too. */
	static const struct step script[] = {
		{ .call = "create Projects", .during = during_delete_projects },
		{ .call = "status Projects" },
		{ .call = "delete Projects" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	pending_projects();
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM folder WHERE id = 3"), "0");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_create_in_flight_deleted_refused)
{
	/* ... and when that CREATE is refused after all, the DELETE finds
	 * nothing, which is fine: nothing failed, nothing is left. */
	static const struct step script[] = {
		{ .call = "create Projects",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Permission denied",
		  .code = IMAP_CODE_NOPERM,
		  .code_name = "NOPERM",
		  .during = during_delete_projects },
		{ .call = "delete Projects",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Mailbox doesn't exist",
		  .code = IMAP_CODE_NONEXISTENT,
		  .code_name = "NONEXISTENT" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	pending_projects();
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM folder WHERE id = 3"), "0");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_create_interrupted_then_renamed)
{
	/* A run sent CREATE Projects and died; the folder was renamed
	 * since: the name sent is created (or found), then renamed, so no
	 * "Projects" is left behind on the server. */
	static const struct step script[] = {
		{ .call = "create Projects",
		  .r = -CPMSYNC_E_SERVER,
		  .code = IMAP_CODE_ALREADYEXISTS,
		  .code_name = "ALREADYEXISTS" },
		{ .call = "status Projects" },
		{ .call = "rename Projects Work" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO folder (account_id, name) VALUES (1, 'Work');"
	     "INSERT INTO journal (account_id, op, folder_id, attempts, args_sent)"
	     " VALUES (1, 'create_folder', 3, 1, 'name=Projects');");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT name || '=' || server_name FROM folder WHERE id = 3"),
			 "Work=Work");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_append_in_flight_flags)
{
	/* SetFlags while the APPEND is in flight: the APPEND carried the
	 * flags from before, so the change follows as a STORE. */
	static const struct step script[] = {
		{ .call = "append INBOX () 2000 local",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 5,
		  .during = during_flag_message_2 },
		SELECT_INBOX,
		{ .call = "store 5 (\\Flagged) 100" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	local_message(1, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, 2)");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid || ' ' || flags || '|' || server_flags FROM message"
			    " JOIN message_state USING (id) WHERE id = 2"),
			 "5 \\Flagged|\\Flagged");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_store_in_flight_flags)
{
	/* SetFlags while that message's STORE is in flight: its row was
	 * pending, so none was added; the change goes in a new one. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "store 1 (\\Flagged \\Seen) 100", .during = during_flag_message_1 },
		{ .call = "store 1 ($Loc \\Flagged \\Seen) 100" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	flags_queued();
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT flags || '|' || server_flags FROM message_state WHERE id = 1"),
			 "$Loc \\Flagged \\Seen|$Loc \\Flagged \\Seen");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/* --- operations that depend on a failed one --- */

/* Folder 3 "Projects" whose CREATE (journal row 1) is a failed operation,
 * with an APPEND into it (message 2), a COPY of message 1 into it
 * (message 3) and a SETMETADATA on it queued after. */
static void failed_create_with_dependents(void)
{
	exec("INSERT INTO folder (account_id, name) VALUES (1, 'Projects');"
	     "INSERT INTO journal (id, account_id, op, folder_id, attempts, args_sent, tries,"
	     " refused, code, failed) VALUES (1, 1, 'create_folder', 3, 1, 'name=Projects', 1,"
	     " 'Permission denied', 'NOPERM', 1)");
	local_message(3, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 3, 2);"
	     "INSERT INTO message (folder_id, size, internaldate, message_id)"
	     " VALUES (3, 5, 1000, '<m1@x>');"
	     "INSERT INTO message_state (id, flags) VALUES (last_insert_rowid(), '\\Seen');"
	     "INSERT INTO journal (account_id, op, folder_id, message_id, args)"
	     " VALUES (1, 'copy', 3, 3, 'src=1');"
	     "INSERT INTO journal (account_id, op, folder_id, args)"
	     " VALUES (1, 'set_metadata', 3, '/private/comment' || char(10) || 'hi')");
}

#define BLOCKED "not sent: depends on failed operation 1 (create-folder Projects)"

START_TEST(test_failed_create_blocks_dependents)
{
	/* Nothing is sent for them and the run does not fail: each becomes
	 * a failed operation naming the one it needs (no code, not tried).
	 * A retry of the CREATE lets them go with it. */
	static const struct step nothing[] = { LOGOUT, END };
	static const struct step after_retry[] = {
		{ .call = "create Projects" },
		{ .call = "status Projects" },
		{ .call = "append Projects () 2000 local",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 1 },
		SELECT_INBOX,
		{ .call = "copy 1 Projects", .code = IMAP_CODE_COPYUID, .new_uid = 2 },
		{ .call = "setmetadata [Projects] /private/comment [hi]" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	failed_create_with_dependents();
	res = run(nothing, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_given_up, 3);
	ck_assert_str_eq(
		qs("SELECT group_concat(op || ':' || coalesce(code, 'NULL') || ':' || tries"
		   " || ':' || failed || ':' || refused, ',') FROM journal WHERE id > 1"),
		"append:NULL:0:1:" BLOCKED ",copy:NULL:0:1:" BLOCKED
		",set_metadata:NULL:0:1:" BLOCKED);
	/* Listed as failed operations; the next run sends nothing either. */
	ck_assert_str_eq(qs("SELECT count(*) FROM journal WHERE failed = 1"), "4");
	res = run(nothing, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 0);

	ck_assert_int_eq(cpmsync_op_retry(cs, "t", 1), 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal WHERE failed = 1"), "0");
	res = run(after_retry, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 4);
	ck_assert_str_eq(qs("SELECT group_concat(id || '=' || uid, ',') FROM message"
			    " WHERE folder_id = 3"),
			 "2=1,3=2");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_failed_create_discarded_takes_dependents)
{
	/* Discarding the CREATE removes the folder and what was queued into
	 * it; the copy's source stays where it is. */
	static const struct step nothing[] = { LOGOUT, END };
	struct sync_result res;

	failed_create_with_dependents();
	res = run(nothing, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "t", 1), 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM folder WHERE id = 3"), "0");
	ck_assert_str_eq(qs("SELECT group_concat(id, ',') FROM message"), "1");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
	res = run(nothing, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 0);
}
END_TEST

START_TEST(test_create_backed_off_dependents_wait)
{
	/* A CREATE refused in a way that may pass is tried again later: what
	 * needs the folder waits for it, neither failed nor failing the run. */
	static const struct step script[] = {
		{ .call = "create Projects", .r = -CPMSYNC_E_SERVER, .text = "try later" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	failed_create_with_dependents();
	exec("UPDATE journal SET failed = 0, tries = 0, refused = NULL, code = NULL,"
	     " attempts = 0, args_sent = NULL WHERE id = 1");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_given_up, 0);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || failed || ':' || tries, ',')"
			    " FROM journal"),
			 "create_folder:0:1,append:0:0,copy:0:0,set_metadata:0:0");
}
END_TEST

static const char stored[] = "Message-ID: <s@x>\r\n\r\nhi\r\n";

START_TEST(test_failed_store_then_flags_copy_delete)
{
	/* A Store refused for good: SetFlags and Copy of that message still
	 * go (the copy is appended from our copy of the content, the retry
	 * carries the flags), and Delete + Expunge takes the message away
	 * with its failed operation. */
	static const struct step refused[] = {
		{ .call = "append INBOX () 3000 Message-ID: <s@x>\r\n\r\nhi\r\n",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Permission denied",
		  .code = IMAP_CODE_NOPERM,
		  .code_name = "NOPERM" },
		LOGOUT,
		END,
	};
	static const struct step copied[] = {
		{ .call = "append Archive (\\Flagged) 3000 Message-ID: <s@x>\r\n\r\nhi\r\n",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 3 },
		LOGOUT,
		END,
	};
	static const struct step nothing[] = { LOGOUT, END };
	static const char *const flagged[] = { "\\Flagged", NULL };
	struct sync_result res;
	int64_t id, copy;

	ck_assert_int_eq(
		cpmsync_op_store(cs, "t", "INBOX", stored, strlen(stored), NULL, 3000, &id), 0);
	res = run(refused, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_given_up, 1);

	ck_assert_int_eq(cpmsync_op_set_flags(cs, &id, 1, flagged, NULL), 0);
	ck_assert_int_eq(cpmsync_op_copy(cs, &id, 1, "Archive", &copy), 0);
	res = run(copied, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 0);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || failed, ',') FROM journal"),
			 "append:1");

	ck_assert_int_eq(cpmsync_op_delete(cs, &id, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "t", "INBOX"), 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
	ck_assert_str_eq(qs("SELECT group_concat(folder_id || ':' || uid, ',') FROM message"
			    " WHERE message_id = '<s@x>'"),
			 "2:3");
	res = run(nothing, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
}
END_TEST

START_TEST(test_failed_store_then_move)
{
	/* Move of a message whose Store failed for good: it is appended to
	 * the destination instead, and the failed Store goes with its row. */
	static const struct step moved[] = {
		{ .call = "append Archive () 3000 Message-ID: <s@x>\r\n\r\nhi\r\n",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 3 },
		LOGOUT,
		END,
	};
	struct sync_result res;
	int64_t id, moved_id;

	ck_assert_int_eq(
		cpmsync_op_store(cs, "t", "INBOX", stored, strlen(stored), NULL, 3000, &id), 0);
	exec("UPDATE journal SET attempts = 1, tries = 1, refused = 'Permission denied',"
	     " code = 'NOPERM', failed = 1");
	ck_assert_int_eq(cpmsync_op_move(cs, &id, 1, "Archive", &moved_id), 0);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || failed, ',') FROM journal"),
			 "append:0");
	res = run(moved, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT group_concat(folder_id || ':' || uid, ',') FROM message"
			    " WHERE message_id = '<s@x>'"),
			 "2:3");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/* --- expunge without UIDPLUS --- */

/* Message 1 (UID 1) and a second one (UID 2) deleted and expunged here. */
static void two_expunged(void)
{
	exec("INSERT INTO message (folder_id, uid, removed) VALUES (1, 2, 1);"
	     "INSERT INTO message_state (id, flags, server_flags)"
	     " VALUES (last_insert_rowid(), '\\Deleted', '');"
	     "UPDATE message SET removed = 1 WHERE id = 1;"
	     "UPDATE message_state SET flags = '\\Deleted \\Seen' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'expunge', 1, 1), (1, 'expunge', 1, 2)");
}

START_TEST(test_expunge_without_uidplus)
{
	/* No UID EXPUNGE: when the only \Deleted messages of the folder are
	 * ours, a plain EXPUNGE removes exactly them. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "store 1:2 +(\\Deleted) 0" },
		{ .call = "search deleted", .ev = { { EV_SEARCH, .lo = 1, .hi = 2 } } },
		{ .call = "expunge (all deleted)" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	two_expunged();
	res = run(script, ALL_CAPS & ~CAP(IMAP_CAP_UIDPLUS));
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 2);
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE folder_id = 1"), "0");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_expunge_without_uidplus_others_deleted)
{
	/* Another client's messages are \Deleted too: EXPUNGE would remove
	 * them, so nothing is expunged; the rows are failed operations that
	 * say why, and the run goes on.  A discard shows the messages again. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "store 1:2 +(\\Deleted) 0" },
		{ .call = "search deleted",
		  .ev = { { EV_SEARCH, .lo = 1, .hi = 2 }, { EV_SEARCH, .lo = 4, .hi = 5 } } },
		{ .call = "create Projects" },
		{ .call = "status Projects" },
		LOGOUT,
		END,
	};
	struct sync_result res;
	int64_t id;

	two_expunged();
	exec("INSERT INTO folder (account_id, name) VALUES (1, 'Projects');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 3)");
	res = run(script, ALL_CAPS & ~CAP(IMAP_CAP_UIDPLUS));
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_given_up, 2);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || message_id || ':' || code || ':'"
			    " || failed, ',') FROM journal"),
			 "expunge:1::1,expunge:2::1");
	ck_assert_str_eq(qs("SELECT group_concat(DISTINCT refused) FROM journal"),
			 "not sent: the server lacks UIDPLUS, and EXPUNGE would"
			 " also remove the other \\Deleted messages of INBOX (UID 4:5)");
	ck_assert_str_eq(qs("SELECT group_concat(id || ':' || removed, ',') FROM message"
			    " WHERE folder_id = 1"),
			 "1:1,2:1");
	id = atoll(qs("SELECT min(id) FROM journal"));
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "t", id), 0);
	ck_assert_str_eq(qs("SELECT removed FROM message WHERE id = 1"), "0");
}
END_TEST

static void during_delete_expunge_message_2(void)
{
	int64_t id = 2;

	ck_assert_int_eq(cpmsync_op_delete(cs, &id, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "t", "INBOX"), 0);
}

START_TEST(test_append_in_flight_expunged_then_refused)
{
	/* Delete + Expunge while the APPEND is in flight (kept, hidden, its
	 * removal queued), then the APPEND is refused: the message and every
	 * row about it go; nothing waits for a back-off. */
	static const struct step script[] = {
		{ .call = "append INBOX () 2000 local",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Quota exceeded",
		  .code = IMAP_CODE_OVERQUOTA,
		  .code_name = "OVERQUOTA",
		  .during = during_delete_expunge_message_2 },
		LOGOUT,
		END,
	};
	struct sync_result res;

	local_message(1, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'append', 1, 2)");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE id = 2"), "0");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_expunge_without_uidplus_huge_search)
{
	/* A server saying nearly every UID is \Deleted: the check stops
	 * after the first few that are not ours, and names those. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "store 1:2 +(\\Deleted) 0" },
		{ .call = "search deleted", .ev = { { EV_SEARCH, .lo = 1, .hi = 4000000000u } } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	two_expunged();
	res = run(script, ALL_CAPS & ~CAP(IMAP_CAP_UIDPLUS));
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT group_concat(DISTINCT refused) FROM journal"),
			 "not sent: the server lacks UIDPLUS, and EXPUNGE would"
			 " also remove the other \\Deleted messages of INBOX (UID 3:12,...)");
}
END_TEST

/* --- a UIDVALIDITY change --- */

START_TEST(test_uidvalidity_reset)
{
	/* After a UIDVALIDITY change every UID of INBOX is void: a pending
	 * flag change of a message not re-matched yet sends nothing (no
	 * stale UID), and a copy out of it is made from our stored body. */
	static const struct step script[] = {
		SELECT_INBOX,
		{ .call = "append Archive (\\Seen) 1000 hello",
		  .code = IMAP_CODE_APPENDUID,
		  .new_uid = 3 },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("UPDATE message_state SET flags = '\\Flagged \\Seen' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'flags', 1, 1);"
	     "INSERT INTO message (folder_id, size, internaldate, message_id)"
	     " VALUES (2, 5, 1000, '<m1@x>');"
	     "INSERT INTO message_state (id, flags) VALUES (last_insert_rowid(), '\\Seen');"
	     "INSERT INTO journal (account_id, op, folder_id, message_id, args)"
	     " VALUES (1, 'copy', 2, 2, 'src=1')");
	ck_assert_int_eq(store_body_put(store_from_public(cs), 2, "hello", 5), 0);
	ck_assert_int_eq(store_sync_uidvalidity_reset(store_from_public(cs), 1), 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 1"), "(null)");
	res = run(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT uid FROM message WHERE id = 2"), "3");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/* --- the folder sync: LIST --- */

#define LIST_EV(n, a)                                                                              \
	{                                                                                          \
		EV_LIST, .list = {.name = n, .attrs = a }                                          \
	}
#define STATUS_EV(n, uv, next, msgs, hms)                                                          \
	{                                                                                          \
		EV_STATUS, .status = {                                                             \
			.name = n,                                                                 \
			.present = IMAP_STATUS_ITEM_UIDVALIDITY | IMAP_STATUS_ITEM_UIDNEXT |       \
				   IMAP_STATUS_ITEM_MESSAGES | IMAP_STATUS_ITEM_HIGHESTMODSEQ,     \
			.uidvalidity = uv,                                                         \
			.uidnext = next,                                                           \
			.messages = msgs,                                                          \
			.highestmodseq = hms                                                       \
		}                                                                                  \
	}
#define MAILBOXID_EV(n, uv, id)                                                                    \
	{                                                                                          \
		EV_STATUS, .status = {                                                             \
			.name = n,                                                                 \
			.present = IMAP_STATUS_ITEM_UIDVALIDITY | IMAP_STATUS_ITEM_MAILBOXID,      \
			.uidvalidity = uv,                                                         \
			.mailboxid = id                                                            \
		}                                                                                  \
	}
/* LIST-STATUS showing both folders as the store has them. */
#define LIST_UNCHANGED                                                                             \
	{                                                                                          \
		.call = "list status modseq",                                                      \
		.ev = { LIST_EV("INBOX", 0),                                                       \
			STATUS_EV("INBOX", 7, 5, 1, 100),                                          \
			LIST_EV("Archive", 0),                                                     \
			STATUS_EV("Archive", 9, 3, 0, 50) }                                        \
	}
#define LIST_STATUS_CAPS (ALL_CAPS | CAP(IMAP_CAP_LIST_STATUS))
/* LIST_UNCHANGED and one more folder, n, with its STATUS. */
#define LIST_UNCHANGED_AND(n, uv, next, count, hms)                                                \
	{                                                                                          \
		.call = "list status modseq",                                                      \
		.ev = { LIST_EV("INBOX", 0),                                                       \
			STATUS_EV("INBOX", 7, 5, 1, 100),                                          \
			LIST_EV("Archive", 0),                                                     \
			STATUS_EV("Archive", 9, 3, 0, 50),                                         \
			LIST_EV(n, 0),                                                             \
			STATUS_EV(n, uv, next, count, hms) }                                       \
	}
/* Every folder as "id name=server_name", by id. */
#define FOLDER_ROWS                                                                                \
	"SELECT group_concat(id || ' ' || name || '=' || ifnull(server_name, '-'), ',')"           \
	" FROM (SELECT * FROM folder ORDER BY id)"

START_TEST(test_list_status_unchanged_no_select)
{
	/* LIST-STATUS says nothing changed: no SELECT at all. */
	static const struct step script[] = { LIST_UNCHANGED, LOGOUT, END };
	struct sync_result res;

	res = run_sync(script, LIST_STATUS_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_skipped, 2);
	ck_assert_uint_eq(res.stats.folders_synced, 0);
	ck_assert_str_eq(
		qs("SELECT group_concat(name, ' ') FROM (SELECT name FROM folder ORDER BY id)"),
		"INBOX Archive");
}
END_TEST

START_TEST(test_list_folder_gone)
{
	/* Archive is no longer listed: gone here too, with its journal row;
	 * INBOX is unchanged. */
	static const struct step script[] = {
		{ .call = "list status modseq",
		  .ev = { LIST_EV("INBOX", 0), STATUS_EV("INBOX", 7, 5, 1, 100) } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO journal (account_id, op, folder_id, args)"
	     " VALUES (1, 'set_metadata', 2, '/private/comment' || char(10) || 'x')");
	res = run_sync(script, LIST_STATUS_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_skipped, 1);
	ck_assert_str_eq(qs("SELECT group_concat(name, ' ') FROM folder"), "INBOX");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_list_unreadable_name_skipped)
{
	/* A name that cannot be made local, one that would be another
	 * folder's, one in a pattern-less \NonExistent: skipped, the run goes
	 * on (and Archive, listed only so, is gone). */
	static const struct step script[] = {
		{ .call = "list status modseq",
		  .ev = { LIST_EV("INBOX", 0),
			  STATUS_EV("INBOX", 7, 5, 1, 100),
			  { EV_LIST,
			    .list = { .name_error = -EILSEQ, .raw = "bad\x01name", .raw_len = 8 } },
			  { EV_LIST,
			    .list = { .name_error = -EEXIST, .raw = "&AEkATgBC-", .raw_len = 10 } },
			  LIST_EV("Archive", IMAP_MBOX_NONEXISTENT) } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, LIST_STATUS_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT group_concat(name, ' ') FROM folder"), "INBOX");
}
END_TEST

START_TEST(test_list_mailboxid_recorded)
{
	/* OBJECTID: the second LIST (none recorded yet) gives the MAILBOXIDs, taken
	 * only for a folder whose UIDVALIDITY is the one the first LIST
	 * reported (Archive's is not: renamed in between, not trusted). */
	static const struct step script[] = {
		LIST_UNCHANGED,
		{ .call = "list mailboxid",
		  .ev = { LIST_EV("INBOX", 0), MAILBOXID_EV("INBOX", 7, "M-inbox"),
			  LIST_EV("Archive", 0), MAILBOXID_EV("Archive", 10, "M-other") } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_OBJECTID));
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_skipped, 2);
	ck_assert_str_eq(
		qs("SELECT name || ' ' || ifnull(mailboxid, '-') FROM folder WHERE id = 1"),
		"INBOX M-inbox");
	ck_assert_str_eq(
		qs("SELECT name || ' ' || ifnull(mailboxid, '-') FROM folder WHERE id = 2"),
		"Archive -");
}
END_TEST

/* Both folders' MAILBOXIDs as the server reports them. */
#define LIST_IDS                                                                                   \
	{                                                                                          \
		.call = "list mailboxid",                                                          \
		.ev = { LIST_EV("INBOX", 0),                                                       \
			MAILBOXID_EV("INBOX", 7, "M-inbox"),                                       \
			LIST_EV("Archive", 0),                                                     \
			MAILBOXID_EV("Archive", 9, "M-archive") }                                  \
	}

START_TEST(test_list_mailboxid_not_asked_unchanged)
{
	/* OBJECTID, every folder as stored, MAILBOXIDs recorded: the
	 * LIST-STATUS alone (no second LIST, issue 9: 1.7 ms of Cyrus's). */
	static const struct step script[] = { LIST_UNCHANGED, LOGOUT, END };
	struct sync_result res;

	exec("UPDATE folder SET mailboxid = 'M-inbox' WHERE id = 1;"
	     "UPDATE folder SET mailboxid = 'M-archive' WHERE id = 2");
	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_OBJECTID));
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_skipped, 2);
}
END_TEST

START_TEST(test_list_mailboxid_asked_folder_gone)
{
	/* Archive not listed (deleted, or renamed away): the MAILBOXIDs are
	 * asked for before the plan is applied. */
	static const struct step script[] = {
		{ .call = "list status modseq",
		  .ev = { LIST_EV("INBOX", 0), STATUS_EV("INBOX", 7, 5, 1, 100) } },
		{ .call = "list mailboxid",
		  .ev = { LIST_EV("INBOX", 0), MAILBOXID_EV("INBOX", 7, "M-inbox") } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("UPDATE folder SET mailboxid = 'M-inbox' WHERE id = 1;"
	     "UPDATE folder SET mailboxid = 'M-archive' WHERE id = 2");
	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_OBJECTID));
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT group_concat(name, ' ') FROM folder"), "INBOX");
}
END_TEST

START_TEST(test_list_mailboxid_asked_status_twins)
{
	/* Two folders with one UIDVALIDITY, UIDNEXT, count and HIGHESTMODSEQ
	 * (Cyrus: created in the same second, one message each) could have
	 * traded names unseen: asked for, and here they did (a rename each
	 * way: the local ids follow their MAILBOXIDs). */
	static const struct step script[] = {
		{ .call = "list status modseq",
		  .ev = { LIST_EV("INBOX", 0), STATUS_EV("INBOX", 7, 5, 1, 100),
			  LIST_EV("Archive", 0), STATUS_EV("Archive", 7, 5, 1, 100) } },
		{ .call = "list mailboxid",
		  .ev = { LIST_EV("INBOX", 0), MAILBOXID_EV("INBOX", 7, "M-inbox"),
			  LIST_EV("Archive", 0), MAILBOXID_EV("Archive", 7, "M-archive") } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("UPDATE folder SET mailboxid = 'M-inbox' WHERE id = 1;"
	     "UPDATE folder SET mailboxid = 'M-archive', uidvalidity = 7, uidnext = 5,"
	     " highestmodseq = 100 WHERE id = 2;"
	     "INSERT INTO message (folder_id, uid, size, internaldate, message_id)"
	     " VALUES (2, 3, 5, 1000, '<m2@x>');"
	     "INSERT INTO message_state (id, flags, server_flags, modseq)"
	     " VALUES (last_insert_rowid(), '', '', 90)");
	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_OBJECTID));
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_skipped, 2);
}
END_TEST

START_TEST(test_list_mailboxid_not_asked_empty_twins)
{
	/* Alike but never held a message (UIDNEXT 1: Cyrus's Drafts, Sent
	 * and Trash made at login): nothing to mix up, not asked. */
	static const struct step script[] = {
		{ .call = "list status modseq",
		  .ev = { LIST_EV("INBOX", 0), STATUS_EV("INBOX", 7, 5, 1, 100),
			  LIST_EV("Archive", 0), STATUS_EV("Archive", 9, 1, 0, 2),
			  LIST_EV("Sent", 0), STATUS_EV("Sent", 9, 1, 0, 2) } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("UPDATE folder SET mailboxid = 'M-inbox' WHERE id = 1;"
	     "UPDATE folder SET mailboxid = 'M-archive', uidnext = 1, highestmodseq = 2"
	     " WHERE id = 2;"
	     "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext,"
	     " highestmodseq, mailboxid) VALUES (1, 'Sent', 'Sent', 9, 1, 2, 'M-sent')");
	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_OBJECTID));
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_skipped, 3);
}
END_TEST

START_TEST(test_list_refused_fails)
{
	static const struct step script[] = {
		{ .call = "list status modseq", .r = -CPMSYNC_E_SERVER, .text = "LIST failed" },
		END,
	};

	sync_fails(script, LIST_STATUS_CAPS, -CPMSYNC_E_SERVER, "LIST: LIST failed");
}
END_TEST

/* --- STATUS (no LIST-STATUS) --- */

START_TEST(test_status_unchanged_no_select)
{
	/* Without LIST-STATUS but with CONDSTORE: one STATUS per folder,
	 * pipelined (a \Noselect one not asked); unchanged: no SELECT. */
	static const struct step script[] = {
		{ .call = "list",
		  .ev = { LIST_EV("INBOX", 0), LIST_EV("Archive", 0),
			  LIST_EV("Shared", IMAP_MBOX_NOSELECT) } },
		{ .call = "status INBOX", .ev = { STATUS_EV("INBOX", 7, 5, 1, 100) } },
		{ .call = "status Archive", .ev = { STATUS_EV("Archive", 9, 3, 0, 50) } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_skipped, 2);
	ck_assert_uint_eq(res.stats.folders_synced, 0);
}
END_TEST

START_TEST(test_status_failure_fails)
{
	/* A NO is no pre-check for that folder; the connection failing
	 * fails the run. */
	static const struct step script[] = {
		{ .call = "list", .ev = { LIST_EV("INBOX", 0), LIST_EV("Archive", 0) } },
		{ .call = "status INBOX", .r = -CPMSYNC_E_SERVER, .text = "no such folder" },
		{ .call = "status Archive", .r = -CPMSYNC_E_DISCONNECTED, .text = "gone" },
		END,
	};

	sync_fails(script, ALL_CAPS, -CPMSYNC_E_DISCONNECTED, "STATUS: gone");
}
END_TEST

START_TEST(test_no_status_without_condstore)
{
	/* Neither LIST-STATUS nor CONDSTORE: no STATUS (nothing it could
	 * prove unchanged); each folder is selected. */
	static const struct step script[] = {
		{ .call = "list", .ev = { LIST_EV("INBOX", 0), LIST_EV("Archive", 0) } },
		{ .call = "select INBOX", .r = -CPMSYNC_E_SERVER, .text = "no" },
		{ .call = "select Archive", .r = -CPMSYNC_E_SERVER, .text = "no" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, CAP(IMAP_CAP_UIDPLUS));
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_refused, 2);
}
END_TEST

/* --- the folder sync: SELECT and the FETCH of flags --- */

#define EXISTS_EV(n)                                                                               \
	{                                                                                          \
		EV_EXISTS, .value = n                                                              \
	}
#define CODE_EV(c, v)                                                                              \
	{                                                                                          \
		EV_CODE, .code = IMAP_CODE_##c, .value = v                                         \
	}
#define NEW_ITEMS "UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ BODYSTRUCTURE BODY.PEEK[HEADER]"
/* INBOX changed (STATUS: HIGHESTMODSEQ 120, UIDNEXT next, n messages), then
 * selected with CONDSTORE, the same in its answer. */
#define CONDSTORE_SELECT(next, n)                                                                  \
	{ .call = "list", .ev = { LIST_EV("INBOX", 0) } },                                         \
		{ .call = "status INBOX", .ev = { STATUS_EV("INBOX", 7, next, n, 120) } },         \
	{                                                                                          \
		.call = "select INBOX condstore",                                                  \
		.ev = { CODE_EV(UIDNEXT, next),                                                    \
			CODE_EV(HIGHESTMODSEQ, 120),                                               \
			EXISTS_EV(n) }                                                             \
	}
/* The flags changed since the stored HIGHESTMODSEQ (100), of the UIDs below
 * the stored UIDNEXT (5). */
#define FLAGS_SINCE_100 "fetch 1:4 (UID FLAGS) changedsince 100"
/* INBOX changed, selected with CONDSTORE, EXISTS n, nothing new. */
#define CONDSTORE_INBOX(n)                                                                         \
	CONDSTORE_SELECT(5, n),                                                                    \
	{                                                                                          \
		.call = FLAGS_SINCE_100                                                            \
	}

START_TEST(test_condstore_flags_pass)
{
	/* STATUS shows INBOX changed: SELECT, the flags changed since the
	 * stored HIGHESTMODSEQ, the new messages from the stored UIDNEXT;
	 * EXISTS matches what is known: no SEARCH for expunges.  The state
	 * the server reported is recorded at the end. */
	static const struct step script[] = {
		{ .call = "list", .ev = { LIST_EV("INBOX", 0), LIST_EV("Archive", 0) } },
		{ .call = "status INBOX", .ev = { STATUS_EV("INBOX", 7, 6, 1, 120) } },
		{ .call = "status Archive", .ev = { STATUS_EV("Archive", 9, 3, 0, 50) } },
		{ .call = "select INBOX condstore",
		  .ev = { CODE_EV(UIDVALIDITY, 7), CODE_EV(UIDNEXT, 6), CODE_EV(HIGHESTMODSEQ, 120),
			  EXISTS_EV(1) } },
		{ .call = FLAGS_SINCE_100,
		  .ev = { { EV_FETCH,
			    .fetch = { .uid = 1,
				       .present = ENGINE_FETCH_FLAGS | ENGINE_FETCH_MODSEQ,
				       .flags = "\\Flagged \\Seen",
				       .modseq = 110 } } } },
		{ .call = "fetch 5:* (" NEW_ITEMS ")" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_synced, 1);
	ck_assert_uint_eq(res.stats.folders_skipped, 1);
	ck_assert_uint_eq(res.stats.messages_changed, 1);
	ck_assert_str_eq(qs("SELECT server_flags || ' ' || modseq FROM message_state WHERE id = 1"),
			 "\\Flagged \\Seen 110");
	ck_assert_str_eq(qs("SELECT uidvalidity || ' ' || uidnext || ' ' || highestmodseq"
			    " FROM folder WHERE id = 1"),
			 "7 6 120");
}
END_TEST

START_TEST(test_plain_flags_pass_finds_expunged)
{
	/* Neither CONDSTORE nor QRESYNC: every known UID's flags; one the
	 * answer does not name was expunged.  Nothing new (UIDNEXT as
	 * stored): no FETCH of new messages. */
	static const struct step script[] = {
		{ .call = "list", .ev = { LIST_EV("INBOX", 0), LIST_EV("Archive", 0) } },
		{ .call = "select INBOX",
		  .ev = { CODE_EV(UIDVALIDITY, 7), CODE_EV(UIDNEXT, 5), EXISTS_EV(0) } },
		{ .call = "fetch 1:4 (UID FLAGS)" },
		{ .call = "select Archive", .r = -CPMSYNC_E_SERVER, .text = "no" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, CAP(IMAP_CAP_UIDPLUS));
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.messages_removed, 1);
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE folder_id = 1"), "0");
}
END_TEST

START_TEST(test_list_delete_and_rename_into_its_name_done)
{
	/* Locally: rename Zwei -> L3, rmdir L3, rename Vier -> Zwei; the DELETE
	 * "Zwei" and the RENAME Vier Zwei were answered, and the run was
	 * killed before it recorded them (test-sync-crash, CRASH_SEED=94805).
	 * The listed Zwei has Vier's UIDVALIDITY: the DELETE is done (its row
	 * goes), the RENAME confirmed, and no DELETE "Zwei" is sent again,
	 * which would delete the renamed folder. */
	static const struct step script[] = {
		LIST_UNCHANGED_AND("Zwei", 839, 2, 1, 4),
		{ .call = "select Zwei qresync",
		  .ev = { CODE_EV(UIDNEXT, 2), CODE_EV(HIGHESTMODSEQ, 4), EXISTS_EV(1) } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO folder (id, account_id, name, server_name, uidvalidity, uidnext,"
	     " highestmodseq, removed) VALUES (3, 1, 'L3', 'Zwei', 838, 1, 1, 1);"
	     "INSERT INTO folder (id, account_id, name, server_name, uidvalidity, uidnext,"
	     " highestmodseq) VALUES (4, 1, 'Zwei', 'Vier', 839, 2, 4);"
	     "INSERT INTO message (folder_id, uid, size, internaldate, message_id)"
	     " VALUES (4, 1, 5, 1000, '<vier@x>');"
	     "INSERT INTO message_state (id, flags, server_flags, modseq)"
	     " VALUES (last_insert_rowid(), '', '', 4);"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'delete_folder', 3);"
	     "INSERT INTO journal (account_id, op, folder_id, args)"
	     " VALUES (1, 'rename_folder', 4, 'Zwei');");
	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_QRESYNC));
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs(FOLDER_ROWS), "1 INBOX=INBOX,2 Archive=Archive,4 Zwei=Zwei");
	ck_assert_str_eq(qs("SELECT message_id FROM message WHERE folder_id = 4"), "<vier@x>");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_list_rename_answer_lost_then_renamed_again)
{
	/* RENAME A B reached the server with its answer lost (the run was
	 * killed), and the folder was renamed to C locally since: the server
	 * lists it as B, under neither of its names.  Its UIDVALIDITY finds it:
	 * B is recorded as its server name, the folder synced there, and the
	 * pending RENAME goes from B.  Before, it was deleted here and B added
	 * as a new folder; the user's C was lost. */
	static const struct step script[] = {
		LIST_UNCHANGED_AND("B", 42, 2, 1, 4),
		{ .call = "select B qresync",
		  .ev = { CODE_EV(UIDNEXT, 2), CODE_EV(HIGHESTMODSEQ, 4), EXISTS_EV(1) } },
		/* B is the selected folder: UNSELECT before its RENAME. */
		{ .call = "unselect" },
		{ .call = "rename B C" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO folder (id, account_id, name, server_name, uidvalidity, uidnext,"
	     " highestmodseq) VALUES (3, 1, 'C', 'A', 42, 2, 4);"
	     "INSERT INTO message (folder_id, uid, size, internaldate, message_id)"
	     " VALUES (3, 1, 5, 1000, '<a@x>');"
	     "INSERT INTO message_state (id, flags, server_flags, modseq)"
	     " VALUES (last_insert_rowid(), '', '', 4);"
	     "INSERT INTO journal (account_id, op, folder_id, args)"
	     " VALUES (1, 'rename_folder', 3, 'C');");
	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_QRESYNC));
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs(FOLDER_ROWS), "1 INBOX=INBOX,2 Archive=Archive,3 C=C");
	ck_assert_str_eq(qs("SELECT message_id FROM message WHERE folder_id = 3"), "<a@x>");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

/*
 * S renamed to S2 here while another client renamed it to S1, S/kid going
 * along on both sides.  Matched by UIDVALIDITY, S1 is S (its RENAME goes
 * from there) and S1/kid is S2/kid: its local name stays, under S's, and
 * S's RENAME takes it to S2/kid on the server too.  Renamed to S1/kid
 * here, it stayed there for good while the server had it as S2/kid.
 */
START_TEST(test_list_rename_of_a_parent_renamed_here)
{
	static const struct step script[] = {
		{ .call = "list status modseq",
		  .ev = { LIST_EV("INBOX", 0), STATUS_EV("INBOX", 7, 5, 1, 100),
			  LIST_EV("Archive", 0), STATUS_EV("Archive", 9, 3, 0, 50),
			  LIST_EV("S1", 0), STATUS_EV("S1", 42, 1, 0, 4), LIST_EV("S1/kid", 0),
			  STATUS_EV("S1/kid", 43, 2, 1, 5) } },
		{ .call = "select S1 qresync",
		  .ev = { CODE_EV(UIDNEXT, 1), CODE_EV(HIGHESTMODSEQ, 4) } },
		{ .call = "select S1/kid qresync",
		  .ev = { CODE_EV(UIDNEXT, 2), CODE_EV(HIGHESTMODSEQ, 5), EXISTS_EV(1) } },
		/* S1/kid is selected, under S1: UNSELECT first. */
		{ .call = "unselect" },
		{ .call = "rename S1 S2" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO folder (id, account_id, name, server_name, uidvalidity, uidnext,"
	     " highestmodseq) VALUES (3, 1, 'S', 'S', 42, 1, 4),"
	     " (4, 1, 'S/kid', 'S/kid', 43, 2, 4);"
	     "INSERT INTO message (folder_id, uid, size, internaldate, message_id)"
	     " VALUES (4, 1, 5, 1000, '<kid@x>');"
	     "INSERT INTO message_state (id, flags, server_flags, modseq)"
	     " VALUES (last_insert_rowid(), '', '', 4);");
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "t", "S", "S2"), 0);
	ck_assert_str_eq(qs(FOLDER_ROWS), "1 INBOX=INBOX,2 Archive=Archive,3 S2=S,4 S2/kid=S/kid");
	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_QRESYNC));
	ck_assert_msg(res.r == 0, "run failed: %s", res.reason);
	ck_assert_str_eq(qs(FOLDER_ROWS),
			 "1 INBOX=INBOX,2 Archive=Archive,3 S2=S2,4 S2/kid=S2/kid");
	ck_assert_str_eq(qs("SELECT message_id FROM message WHERE folder_id = 4"), "<kid@x>");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_list_rename_answer_lost_then_deleted)
{
	/* RENAME A B reached the server with its answer lost, and the folder
	 * was deleted here since: its DELETE goes to B, where its MAILBOXID
	 * (OBJECTID) finds it, and B is not synced first.  Before, the row was
	 * dropped as gone and B came back as a new folder. */
	static const struct step script[] = {
		LIST_UNCHANGED_AND("B", 42, 2, 1, 4),
		{ .call = "list mailboxid",
		  .ev = { LIST_EV("INBOX", 0), MAILBOXID_EV("INBOX", 7, "M-inbox"),
			  LIST_EV("Archive", 0), MAILBOXID_EV("Archive", 9, "M-archive"),
			  LIST_EV("B", 0), MAILBOXID_EV("B", 42, "M-A") } },
		STATUS_UIDVALIDITY("B", 42),
		{ .call = "delete B" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO folder (id, account_id, name, server_name, uidvalidity, uidnext,"
	     " highestmodseq, removed, mailboxid) VALUES (3, 1, 'A2', 'A', 42, 2, 4, 1, 'M-A');"
	     "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'delete_folder', 3);");
	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_QRESYNC) | CAP(IMAP_CAP_OBJECTID));
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs(FOLDER_ROWS), "1 INBOX=INBOX,2 Archive=Archive");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_qresync_vanished)
{
	/* QRESYNC: the SELECT reports the expunge (VANISHED (EARLIER)) and
	 * nothing new: no FETCH at all. */
	static const struct step script[] = {
		{ .call = "list status modseq",
		  .ev = { LIST_EV("INBOX", 0), STATUS_EV("INBOX", 7, 5, 0, 130),
			  LIST_EV("Archive", 0), STATUS_EV("Archive", 9, 3, 0, 50) } },
		{ .call = "select INBOX qresync",
		  .ev = { { EV_VANISHED, .lo = 1, .hi = 1, .value = 1 },
			  CODE_EV(UIDNEXT, 5),
			  CODE_EV(HIGHESTMODSEQ, 130),
			  EXISTS_EV(0) } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_QRESYNC));
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.messages_removed, 1);
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE folder_id = 1"), "0");
	ck_assert_str_eq(qs("SELECT uidnext || ' ' || highestmodseq FROM folder WHERE id = 1"),
			 "5 130");
}
END_TEST

/*
 * A STORE that reached the server while the run that sent it was killed
 * (test-sync-crash on Cyrus, CRASH_SEED=33029): message 1 was "\Seen" on
 * the server, a STORE set "$Work \Seen" and its answer was lost; then the
 * user took $Work off again, back to the recorded server flags.  The row's
 * attempt mark names the set sent.  Seen by the sync (QRESYNC SELECT), the
 * server's "$Work \Seen" is ours, not another client's change: the local
 * "\Seen" stays and is sent.  Before, the merge took it as a change on the
 * server and $Work came back.
 */
/* --- the server checked before the run (engine-ident.c) --- */

/* The check of INBOX where changes wait for UID 1 (setup(): 5 bytes, date
 * 1000): its SELECT (UIDVALIDITY 7, UIDNEXT 5, HIGHESTMODSEQ hms), then
 * UID 1's size and date as the server gives them. */
#define IDENT_INBOX(hms, size_, date)                                                              \
	{ .call = "select INBOX condstore",                                                        \
	  .ev = { CODE_EV(UIDVALIDITY, 7), CODE_EV(UIDNEXT, 5), CODE_EV(HIGHESTMODSEQ, hms),       \
		  EXISTS_EV(1) } },                                                                \
	{                                                                                          \
		.call = "fetch 1 (UID RFC822.SIZE INTERNALDATE)",                                  \
		.ev = { { EV_FETCH, .fetch = { .uid = 1,                                           \
					       .present = ENGINE_FETCH_SIZE | ENGINE_FETCH_DATE,   \
					       .size = size_,                                      \
					       .internaldate = date } } }                          \
	}

/* The journal's rows as "op:attempts:failed", in order. */
static const char *journal_rows(void)
{
	return qs("SELECT coalesce(group_concat(op || ':' || attempts || ':' || failed, ','), '')"
		  " FROM journal");
}

/*
 * Two servers for one user on one host (another port): INBOX on the
 * other one has the same UIDVALIDITY (Dovecot: made in the same second),
 * more messages and a higher HIGHESTMODSEQ, so the folder's numbers say
 * nothing.  UID 1 there has another size: the run stops before its LIST,
 * with the account's error, and nothing is sent: no flag change, delete
 * or move reaches another mailbox's messages, and the changes wait as
 * they were.  (Before engine-ident.c: the flags went to that server's
 * UID 1.)
 */
START_TEST(test_ident_other_server_refused)
{
	static const struct step script[] = {
		IDENT_INBOX(150, 530, 1000),
		END,
	};
	struct sync_result res;
	int64_t moved;

	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'flags', 1, 1);"
	     "INSERT INTO message (folder_id, size, internaldate) VALUES (2, 5, 1000);"
	     "INSERT INTO message_state (id, flags) VALUES (last_insert_rowid(), '');");
	moved = atoll(qs("SELECT max(id) FROM message"));
	ck_assert_int_eq(store_journal_add(
				 store_from_public(cs), 1, JOURNAL_OP_MOVE, 2, moved,
				 &(struct journal_args){ .op = JOURNAL_OP_MOVE, .copy.src_id = 1 }),
			 0);
	res = run_sync(script, ALL_CAPS | CAP(IMAP_CAP_QRESYNC));
	ck_assert_int_eq(res.r, -CPMSYNC_E_CONFIG);
	ck_assert_str_eq(res.reason,
			 "INBOX on this server is not the folder the store holds: its UID 1 is"
			 " another message than the store's <m1@x> (RFC822.SIZE 530, not 5; the"
			 " same UIDVALIDITY 7), and local changes to 1 of its messages are not"
			 " yet sent: set the account back to the server that has them to send"
			 " them, or remove the account with D-Bus Manager1.RemoveAccount to drop"
			 " them (saved as files first)");
	ck_assert_str_eq(journal_rows(), "flags:0:0,move:0:0");
	ck_assert_str_eq(qs("SELECT uidvalidity || ' ' || uidnext || ' ' || highestmodseq"
			    " FROM folder WHERE id = 1"),
			 "7 5 100");
}
END_TEST

/* The same size, another internal date: another message too. */
START_TEST(test_ident_other_date_refused)
{
	static const struct step script[] = {
		IDENT_INBOX(100, 5, 1001),
		END,
	};
	struct sync_result res;

	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'expunge', 1, 1)");
	res = run_sync(script, ALL_CAPS);
	ck_assert_int_eq(res.r, -CPMSYNC_E_CONFIG);
	ck_assert_ptr_nonnull(strstr(res.reason,
				     "its UID 1 is another message than the store's"
				     " <m1@x> (INTERNALDATE 1970-01-01 00:16:41 UTC,"
				     " not 1970-01-01 00:16:40 UTC; the same UIDVALIDITY 7)"));
	ck_assert_str_eq(journal_rows(), "expunge:0:0");
}
END_TEST

/*
 * A date the store holds still in the future, the server's an earlier one:
 * the date an APPEND of ours asked for, which the server did not keep
 * (Dovecot stores the time of the APPEND for one more than 2 hours ahead;
 * a store made before the replay read it back).  No proof of another
 * message: the run goes on.  A past date of the store is compared as ever
 * (test_ident_other_date_refused), and so is a future one when the
 * server's is later still.
 */
START_TEST(test_ident_future_date_not_kept)
{
	static const struct step first[] = {
		IDENT_INBOX(100, 5, 1796700000),
		LIST_UNCHANGED,
		{ .call = "select INBOX condstore" },
		{ .call = "store 1 +($Work) 0" },
		END,
	};
	static const struct step later[] = {
		IDENT_INBOX(100, 5, 4102444801),
		END,
	};
	struct sync_result res;

	client_usable = true;
	exec("UPDATE message SET internaldate = 4102444800 WHERE id = 1;"
	     "UPDATE message_state SET flags = '$Work \\Seen' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'flags', 1, 1)");
	res = run_with(first, LIST_STATUS_CAPS, RUN_ON_CLIENT);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_str_eq(journal_rows(), "");

	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'expunge', 1, 1)");
	res = run_sync(later, ALL_CAPS);
	ck_assert_int_eq(res.r, -CPMSYNC_E_CONFIG);
	ck_assert_ptr_nonnull(strstr(res.reason,
				     "its UID 1 is another message than the store's"
				     " <m1@x> (INTERNALDATE 2100-01-01 00:00:01 UTC,"
				     " not 2100-01-01 00:00:00 UTC; the same UIDVALIDITY 7)"));
}
END_TEST

/*
 * The same message under UID 1: the run goes on, the change is sent, and
 * a second run on the same connection does not check again (once per
 * connection); a new connection does.
 */
START_TEST(test_ident_once_per_connection)
{
	static const struct step first[] = {
		IDENT_INBOX(100, 5, 1000),
		LIST_UNCHANGED,
		{ .call = "select INBOX condstore" },
		{ .call = "store 1 +($Work) 0" },
		END,
	};
	static const struct step again[] = {
		LIST_UNCHANGED,
		{ .call = "select INBOX condstore" },
		{ .call = "store 1 -($Work) 0" },
		END,
	};
	struct sync_result res;

	client_usable = true;
	exec("UPDATE message_state SET flags = '$Work \\Seen' WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'flags', 1, 1)");
	res = run_with(first, LIST_STATUS_CAPS, RUN_ON_CLIENT);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_str_eq(journal_rows(), "");
	ck_assert(conn_checked);
	exec("UPDATE message_state SET flags = '\\Seen', server_flags = '$Work \\Seen'"
	     " WHERE id = 1;"
	     "INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'flags', 1, 1)");
	res = run_with(again, LIST_STATUS_CAPS, RUN_ON_CLIENT);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_str_eq(journal_rows(), "");
}
END_TEST

/*
 * Nothing to check: a UID gone from the server (another client expunged
 * it: the change to it is void) tells nothing; another UIDVALIDITY is the
 * pull's to see (it re-reads the folder); a failed operation is not sent;
 * an APPEND names no UID.  The run goes on in each case.
 */
START_TEST(test_ident_nothing_against)
{
	static const struct step gone[] = {
		{ .call = "select INBOX condstore",
		  .ev = { CODE_EV(UIDVALIDITY, 7), CODE_EV(UIDNEXT, 5), EXISTS_EV(0) } },
		{ .call = "fetch 1 (UID RFC822.SIZE INTERNALDATE)" },
		{ .call = "list status modseq", .r = -CPMSYNC_E_SERVER, .text = "stop here" },
		END,
	};
	static const struct step other_uv[] = {
		{ .call = "select INBOX condstore",
		  .ev = { CODE_EV(UIDVALIDITY, 8), CODE_EV(UIDNEXT, 5), EXISTS_EV(1) } },
		{ .call = "list status modseq", .r = -CPMSYNC_E_SERVER, .text = "stop here" },
		END,
	};
	static const struct step unchecked[] = {
		{ .call = "list status modseq", .r = -CPMSYNC_E_SERVER, .text = "stop here" },
		END,
	};

	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " VALUES (1, 'flags', 1, 1)");
	sync_fails(gone, LIST_STATUS_CAPS, -CPMSYNC_E_SERVER, "LIST: stop here");
	sync_fails(other_uv, LIST_STATUS_CAPS, -CPMSYNC_E_SERVER, "LIST: stop here");
	exec("UPDATE journal SET failed = 1");
	local_message(1, "");
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " SELECT 1, 'append', 1, max(id) FROM message");
	sync_fails(unchecked, LIST_STATUS_CAPS, -CPMSYNC_E_SERVER, "LIST: stop here");
}
END_TEST

/*
 * Nothing queued: the pull alone.  INBOX on another server with the same
 * UIDVALIDITY and news (LIST-STATUS: UIDNEXT 6, HIGHESTMODSEQ 130): its
 * QRESYNC SELECT brings a flag change of its UID 1.  The newest UID the
 * store holds (1) is fetched right behind the SELECT (the new messages'
 * FETCH only after its answer): another size.  The run fails with the
 * account's error, nothing new is fetched, and what the SELECT brought is
 * rolled back.  (Before: UID 1 got that server's \Flagged, its UID 5 was
 * fetched as new.)
 */
#define PULL_NEWS_LIST                                                                             \
	{                                                                                          \
		.call = "list status modseq",                                                      \
		.ev = { LIST_EV("INBOX", 0),                                                       \
			STATUS_EV("INBOX", 7, 6, 2, 130),                                          \
			LIST_EV("Archive", 0),                                                     \
			STATUS_EV("Archive", 9, 3, 0, 50) }                                        \
	}
#define PULL_NEWS_SELECT                                                                           \
	{                                                                                          \
		.call = "select INBOX qresync",                                                    \
		.ev = { { EV_FETCH,                                                                \
			  .fetch = { .uid = 1,                                                     \
				     .present = ENGINE_FETCH_FLAGS | ENGINE_FETCH_MODSEQ,          \
				     .flags = "\\Flagged",                                         \
				     .modseq = 130 } },                                            \
			CODE_EV(UIDVALIDITY, 7),                                                   \
			CODE_EV(UIDNEXT, 6),                                                       \
			CODE_EV(HIGHESTMODSEQ, 130),                                               \
			EXISTS_EV(2) }                                                             \
	}
#define PULL_CHECK_UID1(size_)                                                                     \
	{                                                                                          \
		.call = "fetch 1 (UID RFC822.SIZE INTERNALDATE)",                                  \
		.ev = { { EV_FETCH, .fetch = { .uid = 1,                                           \
					       .present = ENGINE_FETCH_SIZE | ENGINE_FETCH_DATE,   \
					       .size = size_,                                      \
					       .internaldate = 1000 } } }                          \
	}

START_TEST(test_ident_pull_other_server_refused)
{
	static const struct step script[] = {
		PULL_NEWS_LIST, PULL_NEWS_SELECT, PULL_CHECK_UID1(530),
		END, /* no FETCH of new messages */
	};
	struct sync_result res;

	pull_checks = true;
	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_QRESYNC));
	ck_assert_int_eq(res.r, -CPMSYNC_E_CONFIG);
	ck_assert_str_eq(res.reason,
			 "INBOX on this server is not the folder the store holds: its UID 1 is"
			 " another message than the store's <m1@x> (RFC822.SIZE 530, not 5; the"
			 " same UIDVALIDITY 7): set the account back to the server that has it,"
			 " or remove the account with D-Bus Manager1.RemoveAccount and add it"
			 " again to sync this server's messages");
	ck_assert_str_eq(qs("SELECT group_concat(m.uid || ' ' || ms.flags || ' ' ||"
			    " ms.server_flags || ' ' || ms.modseq, ',')"
			    " FROM message m JOIN message_state ms ON ms.id = m.id"),
			 "1 \\Seen \\Seen 100");
	ck_assert_str_eq(qs("SELECT uidvalidity || ' ' || uidnext || ' ' || highestmodseq"
			    " FROM folder WHERE id = 1"),
			 "7 5 100");
}
END_TEST

/*
 * The same server: the check finds UID 1 the store's, the SELECT's flag
 * change is applied and the sync goes on.  A second run on the same
 * connection, with news again, sends no check (once per folder and
 * connection); Archive, unchanged, is neither selected nor checked.
 */
START_TEST(test_ident_pull_once_per_connection)
{
	static const struct step first[] = {
		PULL_NEWS_LIST,
		PULL_NEWS_SELECT,
		PULL_CHECK_UID1(5),
		{ .call = "fetch 5:* (" NEW_ITEMS ")" },
		END,
	};
	static const struct step again[] = {
		{ .call = "list status modseq",
		  .ev = { LIST_EV("INBOX", 0), STATUS_EV("INBOX", 7, 6, 1, 140),
			  LIST_EV("Archive", 0), STATUS_EV("Archive", 9, 3, 0, 50) } },
		{ .call = "select INBOX qresync",
		  .ev = { { EV_FETCH,
			    .fetch = { .uid = 1,
				       .present = ENGINE_FETCH_FLAGS | ENGINE_FETCH_MODSEQ,
				       .flags = "",
				       .modseq = 140 } },
			  CODE_EV(UIDVALIDITY, 7),
			  CODE_EV(UIDNEXT, 6),
			  CODE_EV(HIGHESTMODSEQ, 140),
			  EXISTS_EV(1) } },
		END,
	};
	struct sync_result res;

	pull_checks = true;
	conn_folders_new(); /* the connection run_with() finds */
	client_usable = true;
	res = run_with(first, LIST_STATUS_CAPS | CAP(IMAP_CAP_QRESYNC), RUN_ON_CLIENT);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_str_eq(qs("SELECT flags || ' ' || modseq FROM message_state WHERE id = 1"),
			 "\\Flagged 130");
	ck_assert(rangeset_contains(&conn_folders, 1));
	ck_assert(!rangeset_contains(&conn_folders, 2));
	res = run_with(again, LIST_STATUS_CAPS | CAP(IMAP_CAP_QRESYNC), RUN_ON_CLIENT);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_str_eq(qs("SELECT flags || ' ' || modseq FROM message_state WHERE id = 1"),
			 " 140");
}
END_TEST

/*
 * A message stored here with bare LFs and appended (UID 2): APPEND sent
 * each LF as CRLF, so the server counts 2 bytes more than the store's
 * size.  The same message: the run goes on.  One byte more still is
 * another message.
 */
START_TEST(test_ident_crlf_size)
{
	static const struct step same[] = {
		{ .call = "select INBOX condstore",
		  .ev = { CODE_EV(UIDVALIDITY, 7), CODE_EV(UIDNEXT, 5), EXISTS_EV(2) } },
		{ .call = "fetch 2 (UID RFC822.SIZE INTERNALDATE)",
		  .ev = { { EV_FETCH, .fetch = { .uid = 2,
						 .present = ENGINE_FETCH_SIZE | ENGINE_FETCH_DATE,
						 .size = 6,
						 .internaldate = 2000 } } } },
		{ .call = "list status modseq", .r = -CPMSYNC_E_SERVER, .text = "stop here" },
		END,
	};
	static const struct step other[] = {
		{ .call = "select INBOX condstore",
		  .ev = { CODE_EV(UIDVALIDITY, 7), CODE_EV(UIDNEXT, 5), EXISTS_EV(2) } },
		{ .call = "fetch 2 (UID RFC822.SIZE INTERNALDATE)",
		  .ev = { { EV_FETCH, .fetch = { .uid = 2,
						 .present = ENGINE_FETCH_SIZE | ENGINE_FETCH_DATE,
						 .size = 7,
						 .internaldate = 2000 } } } },
		END,
	};
	struct sync_result res;
	int64_t id;

	exec("INSERT INTO message (folder_id, uid, size, internaldate, message_id)"
	     " VALUES (1, 2, 4, 2000, '<lf@x>');"
	     "INSERT INTO message_state (id, flags, server_flags)"
	     " VALUES (last_insert_rowid(), '$Later', '');");
	id = atoll(qs("SELECT max(id) FROM message"));
	ck_assert_int_eq(store_body_put(store_from_public(cs), id, "a\nb\n", 4), 0);
	exec("INSERT INTO journal (account_id, op, folder_id, message_id)"
	     " SELECT 1, 'flags', 1, max(id) FROM message");
	sync_fails(same, LIST_STATUS_CAPS, -CPMSYNC_E_SERVER, "LIST: stop here");
	res = run_sync(other, LIST_STATUS_CAPS);
	ck_assert_int_eq(res.r, -CPMSYNC_E_CONFIG);
	ck_assert_ptr_nonnull(strstr(res.reason, "its UID 2 is another message than the store's"
						 " <lf@x> (RFC822.SIZE 7, not 4;"));
}
END_TEST

START_TEST(test_flags_store_answer_lost_seen_by_sync)
{
	static const struct step script[] = {
		IDENT_INBOX(120, 5, 1000),
		{ .call = "list status modseq",
		  .ev = { LIST_EV("INBOX", 0), STATUS_EV("INBOX", 7, 5, 1, 120),
			  LIST_EV("Archive", 0), STATUS_EV("Archive", 9, 3, 0, 50) } },
		{ .call = "select INBOX qresync",
		  .ev = { { EV_FETCH,
			    .fetch = { .uid = 1,
				       .present = ENGINE_FETCH_FLAGS | ENGINE_FETCH_MODSEQ,
				       .flags = "$Work \\Seen",
				       .modseq = 120 } },
			  CODE_EV(UIDNEXT, 5),
			  CODE_EV(HIGHESTMODSEQ, 120),
			  EXISTS_EV(1) } },
		{ .call = "store 1 (\\Seen) 120" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("INSERT INTO journal (account_id, op, folder_id, message_id, attempts, args_sent)"
	     " VALUES (1, 'flags', 1, 1, 1, 'flags=$Work \\Seen')");
	res = run_sync(script, LIST_STATUS_CAPS | CAP(IMAP_CAP_QRESYNC));
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT flags || '|' || server_flags FROM message_state WHERE id = 1"),
			 "\\Seen|\\Seen");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_flags_pass_refused_fails)
{
	static const struct step script[] = {
		CONDSTORE_SELECT(5, 1),
		{ .call = FLAGS_SINCE_100, .r = -CPMSYNC_E_SERVER, .text = "try later" },
		END,
	};

	sync_fails(script, ALL_CAPS, -CPMSYNC_E_SERVER, "UID FETCH (flags): try later");
	/* Nothing of the folder's new state was recorded. */
	ck_assert_str_eq(qs("SELECT highestmodseq FROM folder WHERE id = 1"), "100");
}
END_TEST

/* --- the SEARCH for expunges (CONDSTORE) --- */

START_TEST(test_condstore_expunge_search)
{
	/* EXISTS says one message fewer than the store knows: the SEARCH of
	 * every UID below the new ones names the ones left. */
	static const struct step script[] = {
		CONDSTORE_INBOX(0),
		{ .call = "search 1:4" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.messages_removed, 1);
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE folder_id = 1"), "0");
	ck_assert_str_eq(qs("SELECT highestmodseq FROM folder WHERE id = 1"), "120");
}
END_TEST

START_TEST(test_condstore_expunge_search_keeps_found)
{
	/* The count differs (EXISTS 2 for one known, nothing new fetched):
	 * the SEARCH finds UID 1, which stays. */
	static const struct step script[] = {
		CONDSTORE_INBOX(2),
		{ .call = "search 1:4", .ev = { { EV_SEARCH, .lo = 1, .hi = 1 } } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.messages_removed, 0);
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE folder_id = 1"), "1");
}
END_TEST

START_TEST(test_condstore_expunge_search_refused_fails)
{
	static const struct step script[] = {
		CONDSTORE_INBOX(0),
		{ .call = "search 1:4", .r = -CPMSYNC_E_SERVER, .text = "no" },
		END,
	};

	sync_fails(script, ALL_CAPS, -CPMSYNC_E_SERVER, "UID SEARCH: no");
	ck_assert_str_eq(qs("SELECT count(*) FROM message WHERE folder_id = 1"), "1");
}
END_TEST

/* --- the FETCH of new messages and of bodies --- */

#define NEW_FETCH(sz)                                                                              \
	.present =                                                                                 \
		ENGINE_FETCH_FLAGS | ENGINE_FETCH_SIZE | ENGINE_FETCH_DATE | ENGINE_FETCH_MODSEQ,  \
	.flags = "", .size = sz, .internaldate = 1000, .modseq = 7

/* A new folder News of 4,500 messages beside INBOX and Archive, as
 * stored: read in one FETCH. */
static const struct step news_4500[] = {
	{ .call = "list status modseq",
	  .ev = { LIST_EV("INBOX", 0), STATUS_EV("INBOX", 7, 5, 1, 100), LIST_EV("Archive", 0),
		  STATUS_EV("Archive", 9, 3, 0, 50), LIST_EV("News", 0),
		  STATUS_EV("News", 11, 4501, 4500, 7) } },
	{ .call = "select News condstore",
	  .ev = { CODE_EV(UIDVALIDITY, 11), CODE_EV(UIDNEXT, 4501), CODE_EV(HIGHESTMODSEQ, 7),
		  EXISTS_EV(4500) } },
	{ .call = "fetch 1:* (" NEW_ITEMS ")",
	  .ev = { { EV_NEW_RANGE, .lo = 1, .hi = 4500, .fetch = { NEW_FETCH(10) } } } },
	LOGOUT,
	END,
};

START_TEST(test_new_messages_committed_in_batches)
{
	/* A new folder of 4500 messages: read in one FETCH, committed every
	 * ENGINE_BATCH_ROWS (2000) rows, each commit reported as progress;
	 * the folder's state only with the last. */
	struct sync_result res;

	progress_folder = "News";
	res = run_sync(news_4500, LIST_STATUS_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.messages_added, 4500);
	ck_assert_str_eq(progress, "2000/4500 4000/4500 4500/4500");
	ck_assert_str_eq(qs("SELECT count(*) || ' ' || max(uid) FROM message WHERE folder_id ="
			    " (SELECT id FROM folder WHERE name = 'News')"),
			 "4500 4500");
	ck_assert_str_eq(qs("SELECT uidvalidity || ' ' || uidnext || ' ' || highestmodseq"
			    " FROM folder WHERE name = 'News'"),
			 "11 4501 7");
}
END_TEST

/* Account1.SyncProgress counts messages (contract 2): the new ones the
 * LIST-STATUS announces (4,500 in News, none elsewhere), done as they are
 * committed, the total at the end what was done. */
START_TEST(test_account_progress_in_messages)
{
	struct sync_result res;

	progress_folder = "";
	res = run_sync(news_4500, LIST_STATUS_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(progress, "0/4500 2000/4500 4000/4500 4500/4500");
}
END_TEST

/* The header of message 1 (Message-ID <m1@x>), as a BODY[HEADER]. */
static const char m1_header[] = "Message-ID: <m1@x>\r\n\r\n";
static const struct engine_body m1_header_body = {
	.size = sizeof(m1_header) - 1,
	.head = m1_header,
	.head_len = sizeof(m1_header) - 1,
	.fd = -1,
	.len = sizeof(m1_header) - 1,
};
/* Message 1 listed again: the FETCH of a re-read. */
#define M1_AGAIN                                                                                   \
	{                                                                                          \
		EV_FETCH, .fetch = {                                                               \
			.uid = 1,                                                                  \
			.present = ENGINE_FETCH_FLAGS | ENGINE_FETCH_SIZE | ENGINE_FETCH_DATE |    \
				   ENGINE_FETCH_MODSEQ,                                            \
			.flags = "\\Seen",                                                         \
			.size = 5,                                                                 \
			.internaldate = 1000,                                                      \
			.modseq = 90,                                                              \
			.body = &m1_header_body                                                    \
		}                                                                                  \
	}

START_TEST(test_highestmodseq_down_rereads)
{
	/* The SELECT reports a HIGHESTMODSEQ below the stored one: another
	 * folder (or a restored one), read again from UID 1, no flags pass;
	 * message 1 is found again by its Message-ID (same row). */
	static const struct step script[] = {
		{ .call = "list", .ev = { LIST_EV("INBOX", 0) } },
		{ .call = "status INBOX", .ev = { STATUS_EV("INBOX", 7, 5, 1, 90) } },
		{ .call = "select INBOX condstore",
		  .ev = { CODE_EV(UIDVALIDITY, 7), CODE_EV(UIDNEXT, 5), CODE_EV(HIGHESTMODSEQ, 90),
			  EXISTS_EV(1) } },
		{ .call = "fetch 1:* (" NEW_ITEMS ")", .ev = { M1_AGAIN } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(
		qs("SELECT group_concat(id || ':' || uid) FROM message WHERE folder_id = 1"),
		"1:1");
	ck_assert_str_eq(qs("SELECT uidnext || ' ' || highestmodseq FROM folder WHERE id = 1"),
			 "5 90");
}
END_TEST

START_TEST(test_mailboxid_changed_rereads)
{
	/* QRESYNC: the SELECT names another MAILBOXID: its VANISHED is of
	 * that other folder (not applied), the folder is read again from
	 * UID 1 and message 1 is found again there. */
	static const struct step script[] = {
		{ .call = "list", .ev = { LIST_EV("INBOX", 0) } },
		{ .call = "status INBOX", .ev = { STATUS_EV("INBOX", 7, 5, 1, 130) } },
		{ .call = "select INBOX qresync",
		  .ev = { { EV_MAILBOXID, .list = { .name = "M-new" } },
			  { EV_VANISHED, .lo = 1, .hi = 1, .value = 1 },
			  CODE_EV(UIDVALIDITY, 7),
			  CODE_EV(UIDNEXT, 5),
			  CODE_EV(HIGHESTMODSEQ, 130),
			  EXISTS_EV(1) } },
		{ .call = "fetch 1:* (" NEW_ITEMS ")", .ev = { M1_AGAIN } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	exec("UPDATE folder SET mailboxid = 'M-old' WHERE id = 1");
	res = run_sync(script, ALL_CAPS | CAP(IMAP_CAP_QRESYNC));
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.messages_removed, 0);
	ck_assert_str_eq(
		qs("SELECT group_concat(id || ':' || uid) FROM message WHERE folder_id = 1"),
		"1:1");
	ck_assert_str_eq(qs("SELECT mailboxid || ' ' || highestmodseq FROM folder WHERE id = 1"),
			 "M-new 130");
}
END_TEST

static const char m5[] = "Message-ID: <m5@x>\r\nSubject: hi\r\n\r\nbody of five\r\n";
static const struct engine_body m5_header_body = {
	.size = 35, /* the header */
	.head = m5,
	.head_len = 35,
	.fd = -1,
	.len = 35,
};
static const struct engine_body m5_body = {
	.full = true,
	.size = sizeof(m5) - 1,
	.head = m5,
	.head_len = sizeof(m5) - 1,
	.fd = -1,
	.len = sizeof(m5) - 1,
};

/* LIST-STATUS: INBOX with the stored UIDVALIDITY (7), UIDNEXT 6 (one
 * more than stored), HIGHESTMODSEQ 130; Archive as stored. */
#define LIST_INBOX_GREW                                                                            \
	{                                                                                          \
		.call = "list status modseq",                                                      \
		.ev = { LIST_EV("INBOX", 0),                                                       \
			STATUS_EV("INBOX", 7, 6, 2, 130),                                          \
			LIST_EV("Archive", 0),                                                     \
			STATUS_EV("Archive", 9, 3, 0, 50) }                                        \
	}
#define PIPE_CAPS (LIST_STATUS_CAPS | CAP(IMAP_CAP_QRESYNC))

/* During the SELECT's reply: the FETCH of the new messages is sent already. */
static void during_new_fetch_sent(void)
{
	ck_assert_uint_ge(running->pos, 1);
	ck_assert_str_eq(running->script[running->pos - 1].call, "fetch 5:* (" NEW_ITEMS ")");
}

START_TEST(test_qresync_new_fetch_pipelined)
{
	/* LIST-STATUS showed new UIDs in INBOX under the stored UIDVALIDITY:
	 * the UID FETCH of the new messages goes right behind the QRESYNC
	 * SELECT, before its answer; the answer confirms it (same
	 * UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT above the stored one) and its
	 * data is the run's. */
	static const struct step script[] = {
		LIST_INBOX_GREW,
		{ .call = "select INBOX qresync",
		  .ev = { CODE_EV(UIDVALIDITY, 7), CODE_EV(UIDNEXT, 6), CODE_EV(HIGHESTMODSEQ, 130),
			  EXISTS_EV(2) },
		  .during = during_new_fetch_sent },
		{ .call = "fetch 5:* (" NEW_ITEMS ")",
		  .ev = { { EV_FETCH, .fetch = { .uid = 5,
						 NEW_FETCH(sizeof(m5) - 1),
						 .body = &m5_header_body } } } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, PIPE_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.messages_added, 1);
	ck_assert_str_eq(qs("SELECT group_concat(uid || ':' || message_id) FROM message"
			    " WHERE folder_id = 1"),
			 "1:<m1@x>,5:<m5@x>");
	ck_assert_str_eq(qs("SELECT uidvalidity || ' ' || uidnext || ' ' || highestmodseq"
			    " FROM folder WHERE id = 1"),
			 "7 6 130");
}
END_TEST

START_TEST(test_qresync_pipelined_fetch_discarded)
{
	/* The same, but the SELECT's answer names another UIDVALIDITY: the
	 * FETCH sent behind it named UIDs of another folder; its data is
	 * dropped (no message 5 of it), and once it is answered the folder
	 * is read again from UID 1, message 1 found again there. */
	static const struct step script[] = {
		LIST_INBOX_GREW,
		{ .call = "select INBOX qresync",
		  .ev = { CODE_EV(UIDVALIDITY, 8), CODE_EV(UIDNEXT, 6), CODE_EV(HIGHESTMODSEQ, 130),
			  EXISTS_EV(2) },
		  .during = during_new_fetch_sent },
		{ .call = "fetch 5:* (" NEW_ITEMS ")",
		  .ev = { { EV_FETCH, .fetch = { .uid = 5,
						 NEW_FETCH(sizeof(m5) - 1),
						 .body = &m5_header_body } } } },
		{ .call = "fetch 1:* (" NEW_ITEMS ")", .ev = { M1_AGAIN } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, PIPE_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.messages_added, 0);
	ck_assert_str_eq(qs("SELECT group_concat(id || ':' || uid || ':' || message_id)"
			    " FROM message WHERE folder_id = 1"),
			 "1:1:<m1@x>");
	ck_assert_str_eq(qs("SELECT uidvalidity || ' ' || uidnext || ' ' || highestmodseq"
			    " FROM folder WHERE id = 1"),
			 "8 6 130");
}
END_TEST

START_TEST(test_qresync_pipelined_fetch_select_refused)
{
	/* The SELECT is refused (the folder went since LIST): the FETCH
	 * behind it is refused too, no one's; the run goes on without the
	 * folder and does not fail. */
	static const struct step script[] = {
		LIST_INBOX_GREW,
		{ .call = "select INBOX qresync",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "Mailbox doesn't exist: INBOX",
		  .during = during_new_fetch_sent },
		{ .call = "fetch 5:* (" NEW_ITEMS ")",
		  .r = -CPMSYNC_E_SERVER,
		  .bad = true,
		  .text = "No mailbox selected" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	res = run_sync(script, PIPE_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_refused, 1);
	ck_assert_uint_eq(res.stats.messages_added, 0);
	ck_assert_str_eq(qs("SELECT uidvalidity || ' ' || uidnext || ' ' || highestmodseq"
			    " FROM folder WHERE id = 1"),
			 "7 5 100");
}
END_TEST

START_TEST(test_bodies_fetched_after_headers)
{
	/* sync_bodies 1 (KiB): the new message's header first, then the
	 * bodies up to 1 KiB still missing, with that literal limit. */
	static const struct step script[] = {
		CONDSTORE_SELECT(6, 2),
		{ .call = FLAGS_SINCE_100 },
		{ .call = "fetch 5:* (" NEW_ITEMS ")",
		  .ev = { { EV_FETCH, .fetch = { .uid = 5,
						 NEW_FETCH(sizeof(m5) - 1),
						 .body = &m5_header_body } } } },
		{ .call = "fetch 5 (UID BODY.PEEK[]) max 1024",
		  .ev = { { EV_FETCH, .fetch = { .uid = 5, .body = &m5_body } } } },
		LOGOUT,
		END,
	};
	struct sync_result res;
	void *data = NULL;
	size_t len = 0;

	sync_bodies = 1;
	res = run_sync(script, ALL_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.messages_added, 1);
	ck_assert_uint_eq(res.stats.body_bytes, sizeof(m5) - 1);
	ck_assert_str_eq(qs("SELECT message_id || ' ' || has_body FROM message WHERE uid = 5"),
			 "<m5@x> 1");
	ck_assert_int_eq(store_body_get(store_from_public(cs),
					atoll(qs("SELECT id FROM message WHERE uid = 5")), &data,
					&len),
			 0);
	ck_assert_uint_eq(len, sizeof(m5) - 1);
	ck_assert_int_eq(memcmp(data, m5, len), 0);
	free(data);
}
END_TEST

/* --- the annotations refreshed at sync (engine-annotation.c) --- */

/* INBOX changed (HIGHESTMODSEQ 120), selected with CONDSTORE; the flag
 * pass reports UID u with the flags it has (an annotation changed: Cyrus
 * bumps the MODSEQ); nothing new. */
#define ANNOTATION_BUMP(u)                                                                         \
	{ .call = "list", .ev = { LIST_EV("INBOX", 0) } },                                         \
		{ .call = "status INBOX", .ev = { STATUS_EV("INBOX", 7, 5, 2, 120) } },            \
		{ .call = "select INBOX condstore",                                                \
		  .ev = { CODE_EV(UIDNEXT, 5), CODE_EV(HIGHESTMODSEQ, 120), EXISTS_EV(2) } },      \
	{                                                                                          \
		.call = "fetch 1:4 (UID FLAGS) changedsince 100",                                  \
		.ev = { { EV_FETCH,                                                                \
			  .fetch = { .uid = u,                                                     \
				     .present = ENGINE_FETCH_FLAGS | ENGINE_FETCH_MODSEQ,          \
				     .flags = "\\Seen",                                            \
				     .modseq = 110 } } }                                           \
	}

/* UID 2 (message 2) in INBOX too; message 1 has /comment cached (private
 * "old", shared "old shared") and /altsubject (private "subj"). */
static void annotations_cached(void)
{
	exec("INSERT INTO message (folder_id, uid, size, internaldate) VALUES (1, 2, 5, 1000);"
	     "INSERT INTO message_state (id, flags, server_flags, modseq)"
	     " VALUES (last_insert_rowid(), '\\Seen', '\\Seen', 100);"
	     "INSERT INTO annotation (message_id, entry, shared, value) VALUES"
	     " (1, '/comment', 0, 'old'), (1, '/comment', 1, 'old shared'),"
	     " (1, '/altsubject', 0, 'subj');");
}

static const char *annotations_of_1(void)
{
	return qs("SELECT group_concat(entry || ' ' || shared || ' ' || coalesce(value, 'NIL'),"
		  " ', ') FROM (SELECT * FROM annotation WHERE message_id = 1"
		  " ORDER BY entry, shared)");
}

START_TEST(test_annotations_refreshed)
{
	/* The changed message's cached entries are fetched again (all the
	 * folder's entries, not the wildcard) before the folder's state is
	 * recorded; a NIL value is cached as none. */
	static const struct engine_fetch_annotation values[] = {
		{ .entry = "/comment",
		  .entry_len = 8,
		  .has_priv = true,
		  .has_shared = true,
		  .priv = "new",
		  .priv_len = 3 },
		{ .entry = "/altsubject",
		  .entry_len = 11,
		  .has_priv = true,
		  .priv = "subj",
		  .priv_len = 4 },
	};
	static const struct step script[] = {
		ANNOTATION_BUMP(1),
		{ .call = "fetch 1 annotations (/altsubject /comment)",
		  .ev = { { EV_FETCH, .fetch = { .uid = 1,
						 .present = ENGINE_FETCH_ANNOTATION,
						 .annotations = values,
						 .n_annotations = 2 } } } },
		LOGOUT,
		END,
	};
	struct sync_result res;

	annotations_cached();
	res = run_sync(script, ANNOTATE_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(annotations_of_1(), "/altsubject 0 subj, /comment 0 new, /comment 1 NIL");
	ck_assert_str_eq(qs("SELECT highestmodseq FROM folder WHERE id = 1"), "120");
}
END_TEST

/* A run whose flag pass reports UID uid changed, against a server with
 * caps, that must fetch no annotations: it succeeds, records the folder's
 * state, and leaves the cache as it was. */
static void sync_without_refresh(uint32_t uid, uint64_t caps)
{
	const struct step script[] = { ANNOTATION_BUMP(uid), LOGOUT, END };
	struct sync_result res;

	annotations_cached();
	res = run_sync(script, caps);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT highestmodseq FROM folder WHERE id = 1"), "120");
	ck_assert_str_eq(annotations_of_1(),
			 "/altsubject 0 subj, /comment 0 old, /comment 1 old shared");
}

START_TEST(test_annotations_not_cached_not_fetched)
{
	/* The changed message (UID 2) has nothing cached: no FETCH, though
	 * another message of the folder has. */
	sync_without_refresh(2, ANNOTATE_CAPS);
}
END_TEST

START_TEST(test_annotations_without_annotate_not_fetched)
{
	/* A server that does not offer ANNOTATE: no FETCH ANNOTATION. */
	sync_without_refresh(1, ALL_CAPS);
}
END_TEST

START_TEST(test_annotation_refresh_refused_forgets)
{
	/* A refusal (NO) of the refresh does not fail the run: the folder's
	 * state is recorded and the changed message's cached values are
	 * forgotten (read from the server again when asked), except a value
	 * set locally and not yet sent, which stays pending. */
	static const struct step script[] = {
		ANNOTATION_BUMP(1),
		{ .call = "fetch 1 annotations (/altsubject /comment)",
		  .r = -CPMSYNC_E_SERVER,
		  .text = "no annotations here" },
		LOGOUT,
		END,
	};
	struct sync_result res;

	annotations_cached();
	exec("UPDATE annotation SET local = 'mine' WHERE message_id = 1 AND entry = '/comment'"
	     " AND shared = 0;"
	     "INSERT INTO annotation (message_id, entry, shared, value) VALUES"
	     " (2, '/comment', 0, 'of 2');");
	res = run_sync(script, ANNOTATE_CAPS);
	ck_assert_int_eq(res.r, 0);
	ck_assert_str_eq(qs("SELECT highestmodseq FROM folder WHERE id = 1"), "120");
	ck_assert_str_eq(annotations_of_1(), "/comment 0 old");
	ck_assert_str_eq(qs("SELECT local FROM annotation WHERE message_id = 1"), "mine");
	/* Message 2 did not change: its cache stays. */
	ck_assert_str_eq(qs("SELECT value FROM annotation WHERE message_id = 2"), "of 2");
}
END_TEST

START_TEST(test_annotation_refresh_lost_fails)
{
	/* The connection lost during the refresh fails the run before the
	 * folder's state is recorded: the next run asks again. */
	static const struct step script[] = {
		ANNOTATION_BUMP(1),
		{ .call = "fetch 1 annotations (/altsubject /comment)",
		  .r = -CPMSYNC_E_DISCONNECTED,
		  .text = "connection closed" },
		END,
	};
	struct sync_result res;

	annotations_cached();
	res = run_sync(script, ANNOTATE_CAPS);
	ck_assert_int_eq(res.r, -CPMSYNC_E_DISCONNECTED);
	ck_assert_str_eq(res.reason, "UID FETCH (ANNOTATION): connection closed");
	ck_assert_str_eq(qs("SELECT highestmodseq FROM folder WHERE id = 1"), "100");
	ck_assert_str_eq(annotations_of_1(),
			 "/altsubject 0 subj, /comment 0 old, /comment 1 old shared");
}
END_TEST

/* --- the connection's life: connect, ready, error, traffic, release --- */

/* A run that failed before its LIST: nothing recorded (no last sync, the
 * folders' state as it was), the connection closed, not given back. */
static void nothing_recorded(void)
{
	ck_assert_str_eq(qs("SELECT last_sync FROM account WHERE name = 't'"), "0");
	ck_assert_str_eq(qs("SELECT group_concat(uidvalidity || ' ' || uidnext || ' ' ||"
			    " highestmodseq, ', ') FROM folder"),
			 "7 5 100, 9 3 50");
	ck_assert_str_eq(qs("SELECT group_concat(uid || ' ' || server_flags) FROM message"
			    " JOIN message_state USING (id)"),
			 "1 \\Seen");
	ck_assert_int_eq(released, 1);
}

static const struct {
	struct step connect;
	int r;
	const char *reason;
} connect_failures[] = {
	/* ops->connect() fails at once: its error text, else the errno's */
	{ { .call = "connect",
	    .at_once = true,
	    .r = -ECONNREFUSED,
	    .text = "cannot connect to localhost:993: Connection refused" },
	  -ECONNREFUSED,
	  "cannot connect to localhost:993: Connection refused" },
	{ { .call = "connect", .at_once = true, .r = -ECONNREFUSED },
	  -ECONNREFUSED,
	  "Connection refused" },
	/* the login refused */
	{ { .call = "connect",
	    .r = -CPMSYNC_E_AUTH,
	    .text = "authentication failed: [AUTHENTICATIONFAILED] Authentication failed." },
	  -CPMSYNC_E_AUTH,
	  "authentication failed: [AUTHENTICATIONFAILED] Authentication failed." },
	/* the connection lost during set-up, with a reason or none */
	{ { .call = "connect", .lost = true }, -CPMSYNC_E_DISCONNECTED, "connection lost" },
	{ { .call = "connect", .lost = true, .text = "the server closed the session: bye" },
	  -CPMSYNC_E_DISCONNECTED,
	  "the server closed the session: bye" },
	{ { .call = "connect", .r = -ETIMEDOUT, .text = "the server did not greet within 2 s" },
	  -ETIMEDOUT,
	  "the server did not greet within 2 s" },
};

START_TEST(test_connect_fails)
{
	/* No call after the connect (the script ends there), the run fails
	 * with the reason the connection gave. */
	const struct step script[] = { connect_failures[_i].connect, END };

	sync_fails(script, ALL_CAPS, connect_failures[_i].r, connect_failures[_i].reason);
	nothing_recorded();
}
END_TEST

/* A run whose capabilities come from its login (its own are UIDPLUS
 * alone): it ends well, having removed message 1, INBOX at hms. */
static void login_caps_run(const struct step *script, const char *hms)
{
	struct sync_result res = run_sync(script, CAP(IMAP_CAP_UIDPLUS));

	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.messages_removed, 1);
	ck_assert_str_eq(qs("SELECT highestmodseq FROM folder WHERE id = 1"), hms);
	ck_assert_int_eq(released, 1); /* closed after LOGOUT */
}

/* QRESYNC offered and enabled at login: the QRESYNC SELECT, its VANISHED
 * (EARLIER) applied, no flag pass. */
START_TEST(test_login_caps_qresync)
{
	static const struct step script[] = {
		{ .call = "connect",
		  .caps = ALL_CAPS | CAP(IMAP_CAP_QRESYNC),
		  .enabled = CAP(IMAP_CAP_CONDSTORE) | CAP(IMAP_CAP_QRESYNC) },
		{ .call = "list", .ev = { LIST_EV("INBOX", 0) } },
		{ .call = "status INBOX", .ev = { STATUS_EV("INBOX", 7, 5, 0, 130) } },
		{ .call = "select INBOX qresync",
		  .ev = { { EV_VANISHED, .lo = 1, .hi = 1, .value = 1 },
			  CODE_EV(UIDNEXT, 5),
			  CODE_EV(HIGHESTMODSEQ, 130),
			  EXISTS_EV(0) } },
		LOGOUT,
		END,
	};

	login_caps_run(script, "130");
}
END_TEST

/* QRESYNC offered but not enabled (its ENABLE refused): the CONDSTORE way,
 * the flags changed since the stored HIGHESTMODSEQ and the SEARCH for
 * expunges that QRESYNC would have made needless. */
START_TEST(test_login_caps_qresync_not_enabled)
{
	static const struct step script[] = {
		{ .call = "connect",
		  .caps = ALL_CAPS | CAP(IMAP_CAP_QRESYNC),
		  .enabled = CAP(IMAP_CAP_CONDSTORE) },
		CONDSTORE_INBOX(0),
		{ .call = "search 1:4" },
		LOGOUT,
		END,
	};

	login_caps_run(script, "120");
}
END_TEST

/* On a connection made already (the session's): no connect, no LOGOUT;
 * a run that ended well gives it back, with the traffic read before. */
START_TEST(test_on_client_given_back)
{
	static const struct step script[] = {
		{ .call = "list", .ev = { LIST_EV("INBOX", 0), LIST_EV("Archive", 0) } },
		{ .call = "select INBOX", .r = -CPMSYNC_E_SERVER, .text = "no" },
		{ .call = "select Archive", .r = -CPMSYNC_E_SERVER, .text = "no" },
		END,
	};
	struct sync_result res;

	traffic_in = 1234;
	traffic_out = 56;
	res = run_with(script, CAP(IMAP_CAP_UIDPLUS), RUN_ON_CLIENT);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.folders_refused, 2);
	ck_assert_int_eq(released, 2);
	ck_assert_uint_eq(res.stats.bytes_in, 1234);
	ck_assert_uint_eq(res.stats.bytes_out, 56);
	ck_assert_str_ne(qs("SELECT last_sync FROM account WHERE name = 't'"), "0");
}
END_TEST

/* A run on it that failed closes it (not given back). */
START_TEST(test_on_client_failed_closed)
{
	static const struct step script[] = {
		{ .call = "list", .r = -CPMSYNC_E_SERVER, .text = "LIST failed" },
		END,
	};
	struct sync_result res;

	res = run_with(script, CAP(IMAP_CAP_UIDPLUS), RUN_ON_CLIENT);
	ck_assert_int_eq(res.r, -CPMSYNC_E_SERVER);
	ck_assert_str_eq(res.reason, "LIST: LIST failed");
	nothing_recorded();
}
END_TEST

/* Not usable by the time the run starts: it fails at once, no command. */
START_TEST(test_on_client_not_usable)
{
	static const struct step script[] = { END };
	struct sync_result res;

	client_usable = false;
	res = run_with(script, ALL_CAPS, RUN_ON_CLIENT);
	ck_assert_int_eq(res.r, -CPMSYNC_E_DISCONNECTED);
	ck_assert_str_eq(res.reason, "the connection is not usable");
	nothing_recorded();
}
END_TEST

static Suite *engine_replay_suite(void)
{
	Suite *su = suite_create("engine-replay");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_append_uidplus);
	tcase_add_test(tc, test_append_refused_kept);
	tcase_add_test(tc, test_transient_refusal_fails_after_five_tries);
	tcase_add_test(tc, test_permanent_refusal_blocks_nothing);
	tcase_add_test(tc, test_append_too_large_to_send);
	tcase_add_test(tc, test_append_body_lost);
	tcase_add_test(tc, test_append_uid_logged_as_appended);
	tcase_add_test(tc, test_append_without_uidplus_found_by_search);
	tcase_add_test(tc, test_append_future_date_read_back);
	tcase_add_test(tc, test_append_interrupted_found);
	tcase_add_test(tc, test_append_interrupted_found_date_replaced);
	tcase_add_test(tc, test_append_interrupted_found_lf);
	tcase_add_test(tc, test_append_interrupted_missing_sent);
	tcase_add_test(tc, test_flags_condstore);
	tcase_add_test(tc, test_flags_read_only_folder);
	tcase_add_test(tc, test_flags_not_permanent);
	tcase_add_test(tc, test_flags_modified_merged);
	tcase_add_test(tc, test_ident_other_server_refused);
	tcase_add_test(tc, test_ident_other_date_refused);
	tcase_add_test(tc, test_ident_future_date_not_kept);
	tcase_add_test(tc, test_ident_once_per_connection);
	tcase_add_test(tc, test_ident_nothing_against);
	tcase_add_test(tc, test_ident_crlf_size);
	tcase_add_test(tc, test_ident_pull_other_server_refused);
	tcase_add_test(tc, test_ident_pull_once_per_connection);
	tcase_add_test(tc, test_flags_store_answer_lost_seen_by_sync);
	tcase_add_test(tc, test_flags_store_answer_lost_replay_only);
	tcase_add_test(tc, test_flags_store_marked_before_sent);
	tcase_add_test(tc, test_flags_without_condstore_delta);
	tcase_add_test(tc, test_flags_long_set_split);
	tcase_add_test(tc, test_flags_long_set_partly_applied);
	tcase_add_test(tc, test_flags_delta_after_earlier_store);
	tcase_add_test(tc, test_flags_modified_refetch_split);
	tcase_add_test(tc, test_copy_copyuid);
	tcase_add_test(tc, test_move_untagged_copyuid);
	tcase_add_test(tc, test_move_without_move_cap);
	tcase_add_test(tc, test_move_source_store_refused);
	tcase_add_test(tc, test_copy_malformed_args_from_body);
	tcase_add_test(tc, test_expunge_batch);
	tcase_add_test(tc, test_replay_folder_replaced);
	tcase_add_test(tc, test_expunge_sets_each_answered);
	tcase_add_test(tc, test_expunge_store_refused_without_uidplus);
	tcase_add_test(tc, test_copy_interrupted_found);
	tcase_add_test(tc, test_move_interrupted_found_source_removed);
	tcase_add_test(tc, test_move_interrupted_rematched_source_removed);
	tcase_add_test(tc, test_move_interrupted_rematched_source_gone);
	tcase_add_test(tc, test_move_interrupted_source_gone_found);
	tcase_add_test(tc, test_move_interrupted_source_gone_missing);
	tcase_add_test(tc, test_connection_lost_mark_kept);
	tcase_add_test(tc, test_create_after_its_name_is_deleted);
	tcase_add_test(tc, test_rename_after_its_name_is_deleted);
	tcase_add_test(tc, test_rename_swap);
	tcase_add_test(tc, test_create_after_its_name_is_renamed_away);
	tcase_add_test(tc, test_create_name_still_held);
	tcase_add_test(tc, test_create_name_cyrus_refuses);
	tcase_add_test(tc, test_rename_name_cyrus_refuses);
	tcase_add_test(tc, test_rename_child_then_parent);
	tcase_add_test(tc, test_rename_child_then_parent_refused);
	tcase_add_test(tc, test_delete_spares_a_folder_made_again);
	tcase_add_test(tc, test_delete_of_a_folder_gone);
	tcase_add_test(tc, test_created_folder_learns_its_uidvalidity);
	tcase_add_test(tc, test_marks_synced_before_sent);
	tcase_add_test(tc, test_select_refused_rows_refused);
	tcase_add_test(tc, test_select_refused_transient_backs_off);
	tcase_add_test(tc, test_folder_ops);
	tcase_add_test(tc, test_rename_of_the_selected_folder);
	tcase_add_test(tc, test_rename_above_the_selected_folder);
	tcase_add_test(tc, test_metadata_and_acl);
	tcase_add_test(tc, test_annotation_store);
	tcase_add_test(tc, test_annotation_refusals);
	tcase_add_test(tc, test_annotation_one_entry_refused);
	tcase_add_test(tc, test_annotation_refused_entry_held);
	tcase_add_test(tc, test_annotation_without_annotate);
	tcase_add_test(tc, test_annotation_after_append);
	tcase_add_test(tc, test_malformed_and_unknown_rows);
	tcase_add_test(tc, test_uidvalidity_reset);
	tcase_add_test(tc, test_create_in_flight_renamed);
	tcase_add_test(tc, test_create_in_flight_renamed_refused);
	tcase_add_test(tc, test_create_in_flight_deleted);
	tcase_add_test(tc, test_create_in_flight_deleted_refused);
	tcase_add_test(tc, test_create_interrupted_then_renamed);
	tcase_add_test(tc, test_append_in_flight_flags);
	tcase_add_test(tc, test_store_in_flight_flags);
	tcase_add_test(tc, test_append_in_flight_expunged_then_refused);
	tcase_add_test(tc, test_failed_create_blocks_dependents);
	tcase_add_test(tc, test_failed_create_discarded_takes_dependents);
	tcase_add_test(tc, test_create_backed_off_dependents_wait);
	tcase_add_test(tc, test_failed_store_then_flags_copy_delete);
	tcase_add_test(tc, test_failed_store_then_move);
	tcase_add_test(tc, test_expunge_without_uidplus);
	tcase_add_test(tc, test_move_without_move_and_uidplus);
	tcase_add_test(tc, test_move_without_move_and_uidplus_others_deleted);
	tcase_add_test(tc, test_move_without_move_and_uidplus_deleted_meanwhile);
	tcase_add_test(tc, test_expunge_without_uidplus_others_deleted);
	tcase_add_test(tc, test_expunge_without_uidplus_huge_search);
	tcase_add_test(tc, test_list_status_unchanged_no_select);
	tcase_add_test(tc, test_list_folder_gone);
	tcase_add_test(tc, test_list_delete_and_rename_into_its_name_done);
	tcase_add_test(tc, test_list_rename_answer_lost_then_renamed_again);
	tcase_add_test(tc, test_list_rename_of_a_parent_renamed_here);
	tcase_add_test(tc, test_list_rename_answer_lost_then_deleted);
	tcase_add_test(tc, test_list_unreadable_name_skipped);
	tcase_add_test(tc, test_list_mailboxid_recorded);
	tcase_add_test(tc, test_list_mailboxid_not_asked_unchanged);
	tcase_add_test(tc, test_list_mailboxid_asked_folder_gone);
	tcase_add_test(tc, test_list_mailboxid_asked_status_twins);
	tcase_add_test(tc, test_list_mailboxid_not_asked_empty_twins);
	tcase_add_test(tc, test_list_refused_fails);
	tcase_add_test(tc, test_status_unchanged_no_select);
	tcase_add_test(tc, test_status_failure_fails);
	tcase_add_test(tc, test_no_status_without_condstore);
	tcase_add_test(tc, test_condstore_flags_pass);
	tcase_add_test(tc, test_plain_flags_pass_finds_expunged);
	tcase_add_test(tc, test_qresync_vanished);
	tcase_add_test(tc, test_flags_pass_refused_fails);
	tcase_add_test(tc, test_condstore_expunge_search);
	tcase_add_test(tc, test_condstore_expunge_search_keeps_found);
	tcase_add_test(tc, test_condstore_expunge_search_refused_fails);
	tcase_add_test(tc, test_new_messages_committed_in_batches);
	tcase_add_test(tc, test_account_progress_in_messages);
	tcase_add_test(tc, test_highestmodseq_down_rereads);
	tcase_add_test(tc, test_mailboxid_changed_rereads);
	tcase_add_test(tc, test_qresync_new_fetch_pipelined);
	tcase_add_test(tc, test_qresync_pipelined_fetch_discarded);
	tcase_add_test(tc, test_qresync_pipelined_fetch_select_refused);
	tcase_add_test(tc, test_bodies_fetched_after_headers);
	tcase_add_test(tc, test_annotations_refreshed);
	tcase_add_test(tc, test_annotations_not_cached_not_fetched);
	tcase_add_test(tc, test_annotations_without_annotate_not_fetched);
	tcase_add_test(tc, test_annotation_refresh_refused_forgets);
	tcase_add_test(tc, test_annotation_refresh_lost_fails);
	suite_add_tcase(su, tc);

	tc = tcase_create("connection");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_connect_fails, 0,
			    sizeof(connect_failures) / sizeof(connect_failures[0]));
	tcase_add_test(tc, test_login_caps_qresync);
	tcase_add_test(tc, test_login_caps_qresync_not_enabled);
	tcase_add_test(tc, test_on_client_given_back);
	tcase_add_test(tc, test_on_client_failed_closed);
	tcase_add_test(tc, test_on_client_not_usable);
	suite_add_tcase(su, tc);
	return su;
}

TEST_MAIN(engine_replay_suite)
