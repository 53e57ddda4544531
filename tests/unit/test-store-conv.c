/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Conversations in the store (cpmsync/conversation.h, schema version 6):
 * the corpus of tests/data/cpm filed under Default/ as a server keeps it,
 * then listed; IMDN Status in both arrival orders (local Store and the
 * sync engine's path); paging across session folders; Unseen, expunge,
 * move and rename kept incrementally; the root changed; the changes a
 * watcher is told about.
 */
#include <sqlite3.h>

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpmsync/conversation.h>
#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "store/store-sync.h"
#include "store/store.h"
#include "testlib.h"
#include "util/msg-summary.h"

#define C1   "6a1f0c7e-1to1-4d2b-9e3f-15551234567"
#define GRP  "b9d3e6a0-group-47c1-8d2e-6f0a11c0ffee"
#define BOB  "tel:+15551234567"
#define DAVE "tel:+15559876543"
#define ME   "tel:+15557654321"
#define F1   "Default/" BOB
#define FG   "Default/" GRP
#define FSMS "Default/tel:+15550001111"

static char tmpdir[] = "/tmp/test-store-conv-XXXXXX";
static char dbpath[sizeof(tmpdir) + 32];
static struct cpmsync_store *cs;
static struct store *s;

static void setup(void)
{
	char *err = NULL;

	strcpy(tmpdir, "/tmp/test-store-conv-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", tmpdir);
	/* As the daemon's engine writes it: an app's handle records each
	 * change for the daemon too (store-changes.c), which the counts of
	 * these tests (pages of a full store, recomputes) leave out. */
	ck_assert_int_eq(cpmsync_store_open(dbpath, CPMSYNC_STORE_DAEMON, &cs, &err), 0);
	s = store_from_public(cs);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (id, name) VALUES (1, 'a');"), 0);
}

static void teardown(void)
{
	cs = cpmsync_store_close(cs);
	s = NULL;
	test_rm_rf(tmpdir);
}

static char *read_all(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *d;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	d = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(fread(d, 1, (size_t)n, f), n);
	fclose(f);
	d[n] = '\0'; /* put_cid() reads it as a string */
	*ret_len = (size_t)n;
	return d;
}

static char *corpus_file(const char *name, size_t *ret_len)
{
	const char *env = getenv("CPMSYNC_TEST_DATA");
	char dir[PATH_MAX], path[PATH_MAX + 128];
	char *d;
	ssize_t n;

	if (env) {
		snprintf(path, sizeof(path), "%s/cpm/%s", env, name);
		return read_all(path, ret_len);
	}
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 0) {
			if (!getcwd(dir, sizeof(dir)))
				continue;
		} else {
			n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
			if (n <= 0)
				continue;
			dir[n] = '\0';
		}
		for (;;) {
			char *slash;

			snprintf(path, sizeof(path), "%s/tests/data/cpm/%s", dir, name);
			if ((d = read_all(path, ret_len)))
				return d;
			slash = strrchr(dir, '/');
			if (!slash || slash == dir)
				break;
			*slash = '\0';
		}
	}
	ck_abort_msg("tests/data/cpm/%s not found", name);
	return NULL;
}

static void folder(const char *name)
{
	int64_t id;

	if (cpmsync_store_find_folder(cs, "a", name, &id) == 0)
		return;
	ck_assert_msg(cpmsync_op_create_folder(cs, "a", name, &id) == 0, "%s: %s", name,
		      cpmsync_store_error(cs));
}

/* Stores a corpus file in folder (created if missing), with flags. */
static int64_t put(const char *fold, const char *file, const char *flag)
{
	const char *flags[] = { flag, NULL };
	size_t len;
	char *data = corpus_file(file, &len);
	int64_t id;

	folder(fold);
	ck_assert_msg(cpmsync_op_store(cs, "a", fold, data, len, flag ? flags : NULL, 1000, &id) ==
			      0,
		      "%s: %s", file, cpmsync_store_error(cs));
	free(data);
	return id;
}

/* A conversation, copied out of the callback. */
struct conv {
	int64_t id, folder_id, last_message_id, last_activity;
	char cid[128], folder[128], peer[64], participants[256], subject[64];
	char last_status[32], last_flags[64];
	bool is_group;
	uint32_t messages, unseen;
};

struct conv_list {
	struct conv c[16];
	size_t n;
};

/* The string fields of a message, every one, in a fixed order; "(null)"
 * for NULL. */
#define MSG_NSTR 16
static void msg_strings(const struct cpmsync_message_info *m, const char *f[MSG_NSTR])
{
	const char *const all[MSG_NSTR] = {
		m->flags,
		m->from,
		m->to,
		m->subject,
		m->message_id,
		m->conversation_id,
		m->contribution_id,
		m->imdn_message_id,
		m->type,
		m->direction,
		m->context,
		m->in_reply_to,
		m->status,
		m->snippet,
		m->peer,
		m->imdn_ref,
	};

	for (size_t i = 0; i < MSG_NSTR; i++)
		f[i] = all[i] ? all[i] : "(null)";
}

/* The last message as cpmsync_store_get_message() gives it, copied. */
struct lm {
	bool found;
	struct cpmsync_message_info m;
	char *str[MSG_NSTR];
};

static int on_lm(const struct cpmsync_message_info *m, void *userdata)
{
	struct lm *o = userdata;
	const char *f[MSG_NSTR];

	msg_strings(m, f);
	o->found = true;
	o->m = *m;
	for (size_t i = 0; i < MSG_NSTR; i++)
		o->str[i] = strdup(f[i]);
	return 0;
}

/*
 * The conversation's last message, read in the list's own query, is the
 * one cpmsync_store_get_message() gives for last_message_id, every field.
 */
static void check_last_message(const struct cpmsync_conversation_info *c)
{
	const struct cpmsync_message_info *m = c->last_message;
	struct lm o = { 0 };

	if (!c->last_message_id) {
		ck_assert_ptr_null(m);
		return;
	}
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(cpmsync_store_get_message(cs, c->last_message_id, on_lm, &o), 0);
	ck_assert(o.found);
	{
		const char *f[MSG_NSTR];

		msg_strings(m, f);
		for (size_t i = 0; i < MSG_NSTR; i++) {
			ck_assert_str_eq(f[i], o.str[i]);
			free(o.str[i]);
		}
	}
	ck_assert_int_eq(m->id, c->last_message_id);
	ck_assert_int_eq(m->id, o.m.id);
	ck_assert_int_eq(m->folder_id, o.m.folder_id);
	ck_assert_uint_eq(m->uid, o.m.uid);
	ck_assert_int_eq(m->internaldate, o.m.internaldate);
	ck_assert_uint_eq(m->size, o.m.size);
	ck_assert_int_eq(m->date, o.m.date);
	ck_assert_int_eq(m->date, c->last_activity);
	ck_assert_int_eq(m->has_body, o.m.has_body);
}

static int on_conv(const struct cpmsync_conversation_info *c, void *userdata)
{
	struct conv_list *l = userdata;
	struct conv *o = &l->c[l->n++];

	check_last_message(c);

	ck_assert_uint_lt(l->n, 16);
	*o = (struct conv){ .id = c->id,
			    .folder_id = c->folder_id,
			    .last_message_id = c->last_message_id,
			    .last_activity = c->last_activity,
			    .is_group = c->is_group,
			    .messages = c->messages,
			    .unseen = c->unseen };
	ck_assert_str_eq(c->account, "a");
	snprintf(o->cid, sizeof(o->cid), "%s", c->conversation_id);
	snprintf(o->folder, sizeof(o->folder), "%s", c->folder);
	snprintf(o->peer, sizeof(o->peer), "%s", c->peer);
	snprintf(o->participants, sizeof(o->participants), "%s", c->participants);
	snprintf(o->subject, sizeof(o->subject), "%s", c->subject);
	if (c->last_message) {
		snprintf(o->last_status, sizeof(o->last_status), "%s", c->last_message->status);
		snprintf(o->last_flags, sizeof(o->last_flags), "%s", c->last_message->flags);
	}
	return 0;
}

static struct conv_list list(void)
{
	struct conv_list l = { 0 };

	ck_assert_int_eq(cpmsync_store_foreach_conversation(cs, "a", on_conv, &l), 0);
	return l;
}

static struct conv get(const char *cid)
{
	struct conv_list l = { 0 };

	ck_assert_msg(cpmsync_store_get_conversation(cs, "a", cid, on_conv, &l) == 0, "%s: %s", cid,
		      cpmsync_store_error(cs));
	return l.c[0];
}

/* A message's status (and type, snippet ...) through the public reader. */
struct msg {
	int64_t id, folder_id, date;
	char status[32], type[32], snippet[256], direction[16];
};

static int on_msg(const struct cpmsync_message_info *m, void *userdata)
{
	struct msg *o = userdata;

	o->id = m->id;
	o->folder_id = m->folder_id;
	o->date = m->date;
	snprintf(o->status, sizeof(o->status), "%s", m->status);
	snprintf(o->type, sizeof(o->type), "%s", m->type);
	snprintf(o->snippet, sizeof(o->snippet), "%s", m->snippet);
	snprintf(o->direction, sizeof(o->direction), "%s", m->direction);
	return 0;
}

static struct msg msg(int64_t id)
{
	struct msg m = { 0 };

	ck_assert_int_eq(cpmsync_store_get_message(cs, id, on_msg, &m), 0);
	return m;
}

/* The whole chat world of the corpus.  Returns the ids by name. */
struct world {
	int64_t sent, qp, b64, ft_http, media, ft_cpm, g1info, g1msg, g2info, g2msg, gstate, sms,
		mms, mail;
};

static struct world fill(void)
{
	struct world w;

	folder("Default");
	w.sent = put(F1, "chat-1to1-sent.eml", "\\Seen");
	w.qp = put(F1, "chat-1to1-received-qp.eml", "\\Seen");
	w.b64 = put(F1, "chat-1to1-received-base64.eml", NULL);
	w.ft_http = put(F1, "ft-http.eml", NULL);
	w.ft_cpm = put(F1, "ft-cpm-multipart.eml", "\\Seen");
	w.media = put(F1, "media.eml", NULL);
	folder(FG);
	w.g1info = put(FG "/grp-sess-0001", "group-session-1-info.eml", "\\Seen");
	w.g1msg = put(FG "/grp-sess-0001", "group-session-1-msg.eml", NULL);
	w.g2info = put(FG "/grp-sess-0002", "group-session-2-info.eml", "\\Seen");
	w.g2msg = put(FG "/grp-sess-0002", "group-session-2-msg.eml", "\\Seen");
	w.gstate = put(FG "/grp-sess-0002", "group-state.eml", "\\Seen");
	w.sms = put(FSMS, "sms-sent.eml", "\\Seen");
	w.mms = put(FSMS, "mms-received.eml", NULL);
	w.mail = put("Mail", "mail.eml", NULL);
	return w;
}

START_TEST(test_list)
{
	struct world w = fill();
	struct conv_list l = list();
	int64_t fid;

	ck_assert_uint_eq(l.n, 3);
	/* Newest activity first: the group (6 Mar), the SMS peer (4 Mar),
	 * the 1-to-1 chat (2 Mar 13:00, the media object). */
	ck_assert_str_eq(l.c[0].cid, GRP);
	ck_assert_str_eq(l.c[0].folder, FG);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", FG, &fid), 0);
	ck_assert_int_eq(l.c[0].folder_id, fid);
	ck_assert(l.c[0].is_group);
	ck_assert_str_eq(l.c[0].peer, "");
	/* From the newest group-state object, the own address left out. */
	ck_assert_str_eq(l.c[0].participants, BOB "\n" DAVE);
	ck_assert_str_eq(l.c[0].subject, "Saturday hike");
	ck_assert_uint_eq(l.c[0].messages, 2);
	ck_assert_uint_eq(l.c[0].unseen, 1);
	ck_assert_int_eq(l.c[0].last_message_id, w.g2msg);
	ck_assert_int_eq(l.c[0].last_activity, 1772798520); /* Fri, 6 Mar 2026 12:02:00 */

	ck_assert_str_eq(l.c[1].cid, "tel:+15550001111"); /* no Conversation-ID: the address */
	ck_assert(!l.c[1].is_group);
	ck_assert_str_eq(l.c[1].peer, "tel:+15550001111");
	ck_assert_str_eq(l.c[1].participants, "tel:+15550001111");
	ck_assert_uint_eq(l.c[1].messages, 2);
	ck_assert_uint_eq(l.c[1].unseen, 1);
	ck_assert_int_eq(l.c[1].last_message_id, w.mms);

	ck_assert_str_eq(l.c[2].cid, C1);
	ck_assert_str_eq(l.c[2].folder, F1);
	ck_assert(!l.c[2].is_group);
	ck_assert_str_eq(l.c[2].peer, BOB);
	ck_assert_str_eq(l.c[2].participants, BOB);
	ck_assert_str_eq(l.c[2].subject, "");
	ck_assert_uint_eq(l.c[2].messages, 6); /* 3 chat, 2 file transfers, 1 media */
	ck_assert_uint_eq(l.c[2].unseen, 3);
	ck_assert_int_eq(l.c[2].last_message_id, w.media);

	/* By ConversationId and by id. */
	ck_assert_str_eq(get(C1).folder, F1);
	{
		struct conv_list one = { 0 };

		ck_assert_int_eq(cpmsync_store_get_conversation_by_id(cs, l.c[1].id, on_conv, &one),
				 0);
		ck_assert_str_eq(one.c[0].cid, "tel:+15550001111");
		ck_assert_int_eq(cpmsync_store_get_conversation(cs, "a", "nope", on_conv, &one),
				 -CPMSYNC_E_NOT_FOUND);
		ck_assert_int_eq(cpmsync_store_get_conversation_by_id(cs, 999, on_conv, &one),
				 -CPMSYNC_E_NOT_FOUND);
		ck_assert_int_eq(cpmsync_store_foreach_conversation(cs, "zz", on_conv, &one),
				 -CPMSYNC_E_NOT_FOUND);
	}
	/* The summary keys of contract v2 on the messages. */
	ck_assert_str_eq(msg(w.qp).snippet, "Yes! Caf\xc3\xa9 at noon, see you there.");
	ck_assert_str_eq(msg(w.qp).direction, "received");
	ck_assert_str_eq(msg(w.gstate).type, "group-state");
	ck_assert_str_eq(msg(w.mail).type, "mail");
}
END_TEST

/* A conversation folder named by its peer keeps the Conversation-ID of
 * its first chat once one arrives (contract: "its ConversationId is the
 * objects' Conversation-ID, else the address"). */
/* cpmsync_store_foreach_conversation_page(): the list by position. */
START_TEST(test_list_page)
{
	struct conv_list all, p = { 0 };

	fill();
	all = list();
	ck_assert_uint_eq(all.n, 3);
	for (uint32_t off = 0; off < 4; off++) {
		p.n = 0;
		ck_assert_int_eq(
			cpmsync_store_foreach_conversation_page(cs, "a", off, 2, on_conv, &p), 0);
		ck_assert_uint_eq(p.n, off >= 3 ? 0 : off == 2 ? 1 : 2);
		for (unsigned i = 0; i < p.n; i++)
			ck_assert_int_eq(p.c[i].id, all.c[off + i].id);
	}
	/* limit 0: all from offset on. */
	p.n = 0;
	ck_assert_int_eq(cpmsync_store_foreach_conversation_page(cs, "a", 1, 0, on_conv, &p), 0);
	ck_assert_uint_eq(p.n, 2);
	ck_assert_int_eq(p.c[0].id, all.c[1].id);
	ck_assert_int_eq(p.c[1].id, all.c[2].id);
	ck_assert_int_eq(cpmsync_store_foreach_conversation_page(cs, "nope", 0, 2, on_conv, &p),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "unknown account 'nope'");
}
END_TEST

START_TEST(test_peer_folder_takes_conversation_id)
{
	int64_t fid;
	char *cid = NULL;

	folder("Default");
	put(F1, "bad-imdn-unknown.eml", NULL); /* an imdn with a Conversation-ID */
	/* Reports only: state, not a conversation, and a report's
	 * Conversation-ID names none (schema version 37): the address. */
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
	ck_assert_int_eq(cpmsync_store_folder_conversation_id(cs, fid, &cid), 0);
	ck_assert_str_eq(cid, BOB);
	free(cid);
	ck_assert_uint_eq(list().n, 0);
	put(F1, "chat-1to1-sent.eml", NULL);
	ck_assert_str_eq(list().c[0].cid, C1);
	ck_assert_uint_eq(list().c[0].messages, 1);
	ck_assert_int_eq(cpmsync_store_folder_conversation_id(cs, fid, &cid), 0);
	ck_assert_str_eq(cid, C1);
	free(cid);
}
END_TEST

static struct cpmsync_change changes[256];

static int take(void)
{
	int n = cpmsync_store_take_changes(cs, changes, 256);

	ck_assert_int_ge(n, 0);
	return n;
}

static bool changed(enum cpmsync_change_kind kind, int64_t id, int n)
{
	for (int i = 0; i < n; i++)
		if (changes[i].kind == kind && changes[i].message_id == id)
			return true;
	return false;
}

static void noop(void *userdata)
{
	(void)userdata;
}

START_TEST(test_imdn_in_order)
{
	int64_t orig, other, cid;
	int n;

	folder("Default");
	orig = put(F1, "chat-1to1-sent.eml", "\\Seen");
	other = put(F1, "chat-1to1-received-base64.eml", NULL);
	cid = get(C1).id;
	ck_assert_str_eq(msg(orig).status, "");
	ck_assert_int_eq(cpmsync_store_watch(cs, noop, NULL), 0);

	put(F1, "imdn-delivered.eml", "\\Seen");
	ck_assert_str_eq(msg(orig).status, "delivered");
	n = take();
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, orig, n)); /* MessagesChanged */
	ck_assert(changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n));

	put(F1, "imdn-displayed.eml", "\\Seen");
	ck_assert_str_eq(msg(orig).status, "displayed");
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, orig, take()));

	/* A late delivery report does not lower it. */
	put(F1, "imdn-delivered.eml", "\\Seen");
	ck_assert_str_eq(msg(orig).status, "displayed");
	ck_assert(!changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, orig, take()));

	/* A failure, for the other message; a report's own Status is what it reports. */
	{
		int64_t rep = put(F1, "imdn-failed.eml", "\\Seen");

		ck_assert_str_eq(msg(other).status, "failed");
		ck_assert_str_eq(msg(rep).status, "failed");
		ck_assert_str_eq(msg(rep).type, "imdn");
	}
	/* Reports are not messages: the conversation counts two. */
	ck_assert_uint_eq(get(C1).messages, 2);
	ck_assert_int_eq(get(C1).last_message_id, other);
	/* A report naming no known message changes nothing and fails nothing. */
	put(F1, "bad-imdn-unknown.eml", NULL);
	ck_assert_str_eq(msg(orig).status, "displayed");
	ck_assert_uint_eq(get(C1).unseen, 1);
}
END_TEST

/* The reports first, then the message: it takes the strongest at once. */
START_TEST(test_imdn_before_message)
{
	int64_t orig;

	folder("Default");
	put(F1, "imdn-displayed.eml", NULL);
	put(F1, "imdn-delivered.eml", NULL);
	orig = put(F1, "chat-1to1-sent.eml", "\\Seen");
	ck_assert_str_eq(msg(orig).status, "displayed");
	/* A copy elsewhere in the account keeps it. */
	{
		int64_t copy;

		folder("Archive");
		ck_assert_int_eq(cpmsync_op_copy(cs, &orig, 1, "Archive", &copy), 0);
		ck_assert_str_eq(msg(copy).status, "displayed");
	}
}
END_TEST

/* The same through the sync engine's path (store_sync_new_message with
 * the summary parsed from what the server sent). */
static int64_t sync_put_flags(int64_t folder_id, uint32_t uid, const char *file, const char *flags)
{
	struct msg_summary sum;
	size_t len;
	char *data = corpus_file(file, &len);
	struct sync_new_message m = { .uid = uid, .flags = flags, .size = len, .summary = &sum };
	bool has_body, is_new;
	int64_t id;

	ck_assert_int_eq(msg_summary_parse(data, len, &sum), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_new_message(s, folder_id, &m, &id, &has_body, &is_new), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert(is_new);
	msg_summary_free(&sum);
	free(data);
	return id;
}

static int64_t sync_put(int64_t folder_id, uint32_t uid, const char *file)
{
	return sync_put_flags(folder_id, uid, file, "");
}

START_TEST(test_imdn_through_sync)
{
	int64_t fid, orig, cid;
	int n;

	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (account_id, name, delimiter,"
				       " server_name, uidvalidity) VALUES"
				       " (1, '" F1 "', '/', '" F1 "', 7)"),
			 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
	ck_assert_int_eq(cpmsync_store_watch(cs, noop, NULL), 0);
	sync_put(fid, 1, "imdn-delivered.eml");
	orig = sync_put(fid, 2, "chat-1to1-sent.eml");
	ck_assert_str_eq(msg(orig).status, "delivered");
	cid = get(C1).id;
	take();
	sync_put(fid, 3, "imdn-displayed.eml");
	ck_assert_str_eq(msg(orig).status, "displayed");
	n = take();
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, orig, n));
	ck_assert(changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n));
	/* Server flags: \Seen from another client. */
	{
		bool found, ch;

		ck_assert_uint_eq(get(C1).unseen, 1);
		ck_assert_int_eq(store_begin(s), 0);
		ck_assert_int_eq(store_sync_server_flags(s, fid, 2, "\\Seen", 0, &found, &ch, NULL),
				 0);
		ck_assert_int_eq(store_commit(s), 0);
		ck_assert_uint_eq(get(C1).unseen, 0);
		ck_assert(changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, take()));
	}
}
END_TEST

/*
 * A flag that leaves Unseen alone (\\Flagged): on a message that is not its
 * conversation's last, a change of the message only; on the last one,
 * whose Flags the conversation's LastMessage shows, of the conversation
 * too.
 */
START_TEST(test_last_message_flags_changes)
{
	const char *flagged[] = { "\\Flagged", NULL };
	int64_t a, b, last, other, cid;
	int n;

	folder("Default");
	a = put(F1, "chat-1to1-sent.eml", "\\Seen");
	b = put(F1, "chat-1to1-received-base64.eml", NULL);
	ck_assert_int_eq(cpmsync_store_watch(cs, noop, NULL), 0);
	cid = get(C1).id;
	last = get(C1).last_message_id;
	ck_assert(last == a || last == b);
	other = last == a ? b : a;
	take();

	ck_assert_int_eq(cpmsync_op_set_flags(cs, &other, 1, flagged, NULL), 0);
	n = take();
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, other, n));
	ck_assert(!changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n));

	ck_assert_int_eq(cpmsync_op_set_flags(cs, &last, 1, flagged, NULL), 0);
	n = take();
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, last, n));
	ck_assert(changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n));
	ck_assert_ptr_nonnull(strstr(get(C1).last_flags, "\\Flagged"));
}
END_TEST

/* sync_bodies limited: objects first stored from their header (a CPIM
 * report looks like a message then), classified again once the body is
 * fetched (store_message_set_cpm()). */
static int64_t sync_put_head(int64_t folder_id, uint32_t uid, const char *file, char **ret_data,
			     size_t *ret_len)
{
	struct msg_summary sum;
	size_t len;
	char *data = corpus_file(file, &len);
	size_t hl = msg_header_length(data, len);
	struct sync_new_message m = { .uid = uid, .flags = "", .size = len, .summary = &sum };
	bool has_body, is_new;
	int64_t id;

	ck_assert_uint_gt(hl, 0);
	ck_assert_int_eq(msg_summary_parse(data, hl, &sum), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_new_message(s, folder_id, &m, &id, &has_body, &is_new), 0);
	ck_assert_int_eq(store_commit(s), 0);
	msg_summary_free(&sum);
	*ret_data = data;
	*ret_len = len;
	return id;
}

static void set_cpm(int64_t id, const char *data, size_t len)
{
	struct msg_summary sum;

	ck_assert_int_eq(msg_summary_parse(data, len, &sum), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_message_set_cpm(s, id, &sum), 0);
	ck_assert_int_eq(store_commit(s), 0);
	msg_summary_free(&sum);
}

START_TEST(test_header_first_then_body)
{
	char *d1, *d2, *d3;
	size_t l1, l2, l3;
	int64_t fid, orig, rep, info, cid;
	int n;

	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (account_id, name, delimiter,"
				       " server_name, uidvalidity) VALUES"
				       " (1, '" F1 "', '/', '" F1 "', 7),"
				       " (1, '" FG "/grp-sess-0001', '/', 'x', 7)"),
			 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
	orig = sync_put_head(fid, 1, "chat-1to1-sent.eml", &d1, &l1);
	rep = sync_put_head(fid, 2, "imdn-displayed.eml", &d2, &l2);
	/* The header alone: the report counts as a message, no status. */
	ck_assert_str_eq(msg(rep).type, "message");
	ck_assert_uint_eq(get(C1).messages, 2);
	ck_assert_str_eq(msg(orig).status, "");
	ck_assert_str_eq(msg(orig).snippet, "");
	cid = get(C1).id;

	ck_assert_int_eq(cpmsync_store_watch(cs, noop, NULL), 0);
	set_cpm(orig, d1, l1);
	set_cpm(rep, d2, l2);
	n = take();
	ck_assert_str_eq(msg(rep).type, "imdn");
	ck_assert_str_eq(msg(rep).status, "displayed");
	ck_assert_str_eq(msg(orig).status, "displayed");
	ck_assert_str_eq(msg(orig).snippet, "Hello Bob, are we still on for lunch?");
	ck_assert_uint_eq(get(C1).messages, 1);
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, orig, n));
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, rep, n));
	ck_assert(changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n));

	/* A session-info object's participants come with its body. */
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", FG "/grp-sess-0001", &fid), 0);
	info = sync_put_head(fid, 1, "group-session-1-info.eml", &d3, &l3);
	ck_assert_str_eq(get(GRP).participants, "");
	set_cpm(info, d3, l3);
	ck_assert_str_eq(get(GRP).participants, BOB "\n" DAVE "\nsip:carol@example.net");
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_message_set_cpm(s, 9999, &(struct msg_summary){ .type = "mail" }),
			 -CPMSYNC_E_NOT_FOUND);
	store_rollback(s);
	free(d1);
	free(d2);
	free(d3);
}
END_TEST

/* How many of the n changes taken are of kind about id. */
static int count_changed(enum cpmsync_change_kind kind, int64_t id, int n)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		k += changes[i].kind == kind && changes[i].message_id == id;
	return k;
}

/* The body of id, as the sync engine stores one fetched after the header. */
static void sync_body(int64_t id, const char *data, size_t len)
{
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_body_put(s, id, data, len), 0);
	ck_assert_int_eq(store_commit(s), 0);
}

/*
 * The other fields LastMessage shows, none of which moves the row's
 * version: HasBody (a body fetched after the header, in the sync or on
 * demand), Snippet (its CPM parse), Uid (a local object's APPEND
 * answered).  Changed on the last message of a conversation, one change
 * of the conversation is noted; on another message, the message's only.
 */
START_TEST(test_last_message_fields_changes)
{
	char *d1, *d2;
	size_t l1, l2;
	int64_t fid, a, b, newer, older, cid;
	int n;

	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (account_id, name, delimiter,"
				       " server_name, uidvalidity) VALUES"
				       " (1, '" F1 "', '/', '" F1 "', 7)"),
			 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
	a = sync_put_head(fid, 1, "chat-1to1-sent.eml", &d1, &l1);
	b = sync_put_head(fid, 2, "chat-1to1-received-qp.eml", &d2, &l2);
	cid = get(C1).id;
	ck_assert_int_eq(get(C1).last_message_id, b);
	ck_assert_str_eq(msg(b).snippet, "");
	ck_assert_int_eq(cpmsync_store_watch(cs, noop, NULL), 0);
	take();

	/* HasBody. */
	sync_body(a, d1, l1);
	n = take();
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, a, n));
	ck_assert(!changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n));
	sync_body(b, d2, l2);
	n = take();
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, b, n));
	ck_assert_int_eq(count_changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n), 1);

	/* Snippet. */
	set_cpm(a, d1, l1);
	n = take();
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, a, n));
	ck_assert(!changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n));
	set_cpm(b, d2, l2);
	n = take();
	ck_assert_str_ne(msg(b).snippet, "");
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, b, n));
	ck_assert_int_eq(count_changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n), 1);
	/* The same again: nothing a list shows changed. */
	set_cpm(b, d2, l2);
	n = take();
	ck_assert(!changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n));

	/* Uid: objects stored locally, then APPENDed. */
	newer = put(F1, "chat-koi8-r.eml", NULL);
	older = put(F1, "chat-1to1-received-base64.eml", NULL);
	ck_assert_int_eq(get(C1).last_message_id, newer);
	take();
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_message_set_uid(s, older, 3, ""), 0);
	ck_assert_int_eq(store_commit(s), 0);
	n = take();
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, older, n));
	ck_assert(!changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n));
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_message_set_uid(s, newer, 4, ""), 0);
	ck_assert_int_eq(store_commit(s), 0);
	n = take();
	ck_assert(changed(CPMSYNC_CHANGE_MESSAGE_CHANGED, newer, n));
	ck_assert_int_eq(count_changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, cid, n), 1);
	free(d1);
	free(d2);
}
END_TEST

/* Pages of ListConversationMessages. */
struct page {
	int64_t ids[64];
	int64_t folders[64];
	size_t n;
};

static int on_page(const struct cpmsync_message_info *m, void *userdata)
{
	struct page *p = userdata;

	ck_assert_uint_lt(p->n, 64);
	p->folders[p->n] = m->folder_id;
	p->ids[p->n++] = m->id;
	return 0;
}

static struct page page(const char *cid, int64_t before, uint32_t limit)
{
	struct page p = { 0 };

	ck_assert_msg(cpmsync_store_foreach_conversation_message(cs, "a", cid, before, limit,
								 on_page, &p) == 0,
		      "%s", cpmsync_store_error(cs));
	return p;
}

static char *text_of(struct store *st_, const char *sql)
{
	sqlite3_stmt *st;
	char *v;

	ck_assert_int_eq(store_prepare(st_, sql, &st), 0);
	ck_assert_int_eq(store_step(st_, st), 1);
	v = strdup(sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
	sqlite3_reset(st);
	ck_assert_ptr_nonnull(v);
	return v;
}

/*
 * A conversation folder whose objects carry another Conversation-ID: the
 * objects say, for the folder (Folder1.ConversationId), the list, the
 * messages and the conversation alike; the folder's name names none.
 */
/* store_sync_new_message() of file as uid in folder_id, in the open
 * transaction. */
static int64_t sync_put_open(int64_t folder_id, uint32_t uid, const char *file)
{
	struct msg_summary sum;
	size_t len;
	char *data = corpus_file(file, &len);
	struct sync_new_message m = { .uid = uid, .flags = "", .size = len, .summary = &sum };
	bool has_body, is_new;
	int64_t id;

	ck_assert_int_eq(msg_summary_parse(data, len, &sum), 0);
	ck_assert_int_eq(store_sync_new_message(s, folder_id, &m, &id, &has_body, &is_new), 0);
	ck_assert(is_new);
	msg_summary_free(&sum);
	free(data);
	return id;
}

/*
 * store_rollback_to_mark() (engine.c keep_whole(): a store full in the
 * writes of one message): the object written before the mark commits and
 * is counted in its conversation, the one after it is gone and is not,
 * although both were folded into the conversation row held back in
 * memory (recomputed from the objects instead).
 */
START_TEST(test_rollback_to_mark)
{
	int64_t fid, first;
	struct conv c;
	char *uids;

	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (account_id, name, delimiter,"
				       " server_name, uidvalidity) VALUES"
				       " (1, '" F1 "', '/', '" F1 "', 7)"),
			 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
	ck_assert_int_eq(store_begin(s), 0);
	first = sync_put_open(fid, 1, "chat-1to1-sent.eml");
	ck_assert_int_eq(store_mark(s), 0);
	sync_put_open(fid, 2, "chat-1to1-received-base64.eml");
	ck_assert_int_eq(store_rollback_to_mark(s), 0);
	ck_assert_int_eq(store_commit(s), 0);
	uids = text_of(s, "SELECT group_concat(uid) FROM message");
	ck_assert_str_eq(uids, "1");
	free(uids);
	c = get(C1);
	ck_assert_uint_eq(c.messages, 1);
	ck_assert_int_eq(c.last_message_id, first);
	/* No mark in a transaction of its own. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_rollback_to_mark(s), -ENOENT);
	ck_assert_int_eq(store_rollback(s), 0);
}
END_TEST

/*
 * SQLite's own SQLITE_FULL (the database may not grow: max_page_count, as
 * a quota or a full file system gives) in the writes of a message with a
 * small body (body_inline, in the database), with store_set_full_safe()
 * (the engine's, when the store is nearly full): whichever statement of
 * them needs the page that is not there, SQLite undoes that statement
 * alone and keeps the transaction, so store_rollback_to_mark() undoes the
 * messages after the mark and the ones before it commit.  Before, the
 * INSERT into body_inline or summary (one row, no statement journal) made
 * SQLite roll the whole transaction back: nothing of it could be kept.  Every
 * room from 1 to 48 pages more, so that each statement of the writes is
 * the one that fails for some of them.
 */
START_TEST(test_full_database_keeps_mark)
{
	static const char *const files[] = { "chat-1to1-sent.eml",
					     "chat-1to1-received-base64.eml" };
	char sql[96];
	int64_t fid;
	uint32_t uid = 0;
	int fulls = 0;

	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (account_id, name, delimiter,"
				       " server_name, uidvalidity) VALUES"
				       " (1, '" F1 "', '/', '" F1 "', 7)"),
			 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
	store_set_full_safe(s, true);
	for (int extra = 1; extra <= 48; extra++) {
		uint32_t kept = 0;
		char *n;
		int r = 0;

		ck_assert_int_eq(store_exec(s, "PRAGMA max_page_count = 1073741823"), 0);
		n = text_of(s, "PRAGMA page_count");
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %d", atoi(n) + extra);
		free(n);
		ck_assert_int_eq(store_exec(s, sql), 0);
		ck_assert_int_eq(store_begin(s), 0);
		for (int i = 0; r == 0 && i < 400; i++) {
			const char *file = files[i % 2];
			size_t len;
			char *data = corpus_file(file, &len);
			struct msg_summary sum;
			struct sync_new_message m = {
				.uid = ++uid, .flags = "", .size = len, .summary = &sum
			};
			bool has_body, is_new;
			int64_t id;

			ck_assert_int_eq(msg_summary_parse(data, len, &sum), 0);
			/* A mark before every other message. */
			if (i % 2 == 0) {
				ck_assert_int_eq(store_mark(s), 0);
				kept = (uint32_t)i;
			}
			r = store_sync_new_message(s, fid, &m, &id, &has_body, &is_new);
			if (r == 0)
				r = store_sync_body_put_new(s, id, data, len, -1, len);
			msg_summary_free(&sum);
			free(data);
		}
		ck_assert_int_eq(r, -CPMSYNC_E_STORE_FULL);
		fulls++;
		ck_assert_msg(store_rollback_to_mark(s) == 0, "%d pages more: %s", extra,
			      store_error(s));
		ck_assert_int_eq(store_exec(s, "PRAGMA max_page_count = 1073741823"), 0);
		ck_assert_int_eq(store_commit(s), 0);
		/* Exactly the messages before the mark, each with its body. */
		n = text_of(s, "SELECT count(*) || ' ' || count(b.message_id) FROM message m"
			       " LEFT JOIN body_inline b ON b.message_id = m.id");
		snprintf(sql, sizeof(sql), "%u %u", kept, kept);
		ck_assert_str_eq(n, sql);
		free(n);
		/* The next round from a clean slate. */
		ck_assert_int_eq(store_exec(s, "DELETE FROM message"), 0);
	}
	ck_assert_int_eq(fulls, 48);
}
END_TEST

START_TEST(test_folder_named_otherwise)
{
	struct page p = { 0 };
	int64_t fid, sent;
	char *cid = NULL;

	folder("Default");
	sent = put("Default/conv-W", "chat-1to1-sent.eml", NULL); /* Conversation-ID C1 */
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "Default/conv-W", &fid), 0);
	ck_assert_int_eq(cpmsync_store_folder_conversation_id(cs, fid, &cid), 0);
	ck_assert_str_eq(cid, C1);
	free(cid);
	ck_assert_str_eq(list().c[0].cid, C1);
	ck_assert_str_eq(get(C1).folder, "Default/conv-W");
	ck_assert_int_eq(cpmsync_store_foreach_conversation_message(cs, "a", C1, 0, 0, on_page, &p),
			 0);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_int_eq(p.ids[0], sent);
	ck_assert_int_eq(
		cpmsync_store_foreach_conversation_message(cs, "a", "conv-W", 0, 0, on_page, &p),
		-CPMSYNC_E_NOT_FOUND);
	/* No conversation folder: none. */
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "Default", &fid), 0);
	cid = (char *)"x";
	ck_assert_int_eq(cpmsync_store_folder_conversation_id(cs, fid, &cid), 0);
	ck_assert_ptr_null(cid);
}
END_TEST

/*
 * IMDN reports are state, not messages: a folder holding only reports
 * (they came before their original) is no conversation, in the list, by
 * id or for its messages; a group of only its session-info is one.
 */
START_TEST(test_reports_only_not_listed)
{
	struct page p = { 0 };
	struct conv_list one = { 0 };

	folder("Default");
	put("Default/conv-R2", "imdn-displayed.eml", NULL);
	put("Default/conv-R2", "imdn-delivered.eml", NULL);
	ck_assert_uint_eq(list().n, 0);
	ck_assert_int_eq(cpmsync_store_get_conversation(cs, "a", C1, on_conv, &one),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_store_get_conversation(cs, "a", "conv-R2", on_conv, &one),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_store_foreach_conversation_message(cs, "a", C1, 0, 0, on_page, &p),
			 -CPMSYNC_E_NOT_FOUND);
	/* Mail filed there is no conversation either. */
	put("Default/conv-M", "mail.eml", NULL);
	ck_assert_uint_eq(list().n, 0);
	/* A new group with its session-info only is. */
	put(FG "/grp-sess-0001", "group-session-1-info.eml", NULL);
	ck_assert_uint_eq(list().n, 1);
	ck_assert_str_eq(list().c[0].cid, GRP);
	ck_assert_uint_eq(list().c[0].messages, 0);
	ck_assert(list().c[0].is_group);
}
END_TEST

/*
 * One conversation per Conversation-ID: a 1-to-1 chat in the peer's
 * folder and in the conversation history folder named after it, and a
 * conversation folder renamed (on the server) with the next object filed
 * to one made again.  One entry, its counts and last message over both,
 * Folder the one named after it; the messages paged across both.
 */
START_TEST(test_one_per_conversation_id)
{
	struct conv_list l;
	struct page p;
	int64_t sent, b64, qp, media, fid;

	folder("Default");
	sent = put(F1, "chat-1to1-sent.eml", "\\Seen");			 /* 09:15 */
	b64 = put("Default/" C1, "chat-1to1-received-base64.eml", NULL); /* 09:20 */
	qp = put(F1, "chat-1to1-received-qp.eml", NULL);		 /* 09:16:30 */
	l = list();
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.c[0].cid, C1);
	ck_assert_str_eq(l.c[0].folder, "Default/" C1);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "Default/" C1, &fid), 0);
	ck_assert_int_eq(l.c[0].folder_id, fid);
	ck_assert_uint_eq(l.c[0].messages, 3);
	ck_assert_uint_eq(l.c[0].unseen, 2);
	ck_assert_int_eq(l.c[0].last_message_id, b64);
	ck_assert_str_eq(l.c[0].peer, BOB);
	ck_assert_str_eq(l.c[0].participants, BOB);
	ck_assert_int_eq(get(C1).messages, 3);
	{
		struct conv_list one = { 0 };

		/* By the id of either row: the one conversation. */
		char *row = text_of(s, "SELECT id FROM conversation WHERE folder = '" F1 "'");

		ck_assert_int_ne(atoll(row), l.c[0].id);
		ck_assert_int_eq(
			cpmsync_store_get_conversation_by_id(cs, atoll(row), on_conv, &one), 0);
		free(row);
		ck_assert_uint_eq(one.c[0].messages, 3);
	}
	p = page(C1, 0, 0);
	ck_assert_uint_eq(p.n, 3);
	ck_assert_int_eq(p.ids[0], b64);
	ck_assert_int_eq(p.ids[1], qp);
	ck_assert_int_eq(p.ids[2], sent);
	p = page(C1, b64, 1);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_int_eq(p.ids[0], qp);

	/* Renamed away; the next object makes the old name again. */
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "a", "Default/" C1, "Default/" C1 "-old"), 0);
	media = put("Default/" C1, "media.eml", NULL); /* 13:00 */
	l = list();
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.c[0].folder, "Default/" C1);
	ck_assert_uint_eq(l.c[0].messages, 4);
	ck_assert_int_eq(l.c[0].last_message_id, media);
	ck_assert_uint_eq(page(C1, 0, 0).n, 4);
}
END_TEST

/*
 * ListConversationMessages below a message that went meanwhile: from
 * where it stood while the store knows it (removed here, not yet on the
 * server; expunged, across a reopening: conv_gone), else InvalidArgs
 * naming before_id.
 */
START_TEST(test_cursor_gone)
{
	struct world w = fill();
	struct page p;

	/* media, ft_cpm, ft_http, b64 | qp, sent */
	/* As on the server (a message only here goes at once). */
	ck_assert_int_eq(store_exec(s, "UPDATE message SET uid = id"), 0);
	ck_assert_int_eq(cpmsync_op_delete(cs, &w.b64, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", F1), 0);
	ck_assert_uint_eq(page(C1, 0, 0).n, 5);
	{
		char *removed = text_of(s, "SELECT count(*) FROM message WHERE removed = 1");

		ck_assert_str_eq(removed, "1"); /* kept, removed, until the server has it */
		free(removed);
	}
	p = page(C1, w.b64, 4);
	ck_assert_uint_eq(p.n, 2);
	ck_assert_int_eq(p.ids[0], w.qp);
	ck_assert_int_eq(p.ids[1], w.sent);

	/* Expunged on the server, the row gone, by a sync without a watch
	 * (cpm-syncd --once, or the daemon before a restart): known after
	 * the store is opened again. */
	ck_assert_int_eq(store_sync_message_delete(s, w.qp), 0);
	cs = cpmsync_store_close(cs);
	{
		char *err = NULL;

		ck_assert_int_eq(cpmsync_store_open(dbpath, 0, &cs, &err), 0);
		s = store_from_public(cs);
	}
	p = page(C1, w.qp, 4);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_int_eq(p.ids[0], w.sent);
	/* And below the gone one a watching store saw go. */
	ck_assert_int_eq(cpmsync_store_watch(cs, noop, NULL), 0);
	ck_assert_int_eq(store_sync_message_delete(s, w.sent), 0);
	p = page(C1, w.sent, 4);
	ck_assert_uint_eq(p.n, 0);
	p = page(C1, w.qp, 4);
	ck_assert_uint_eq(p.n, 0);

	/* Not known: InvalidArgs, not "no conversation". */
	ck_assert_int_eq(
		cpmsync_store_foreach_conversation_message(cs, "a", C1, 99999, 2, on_page, &p),
		-EINVAL);
	ck_assert_str_eq(cpmsync_store_error(cs),
			 "before_id: message 99999 is no longer in the store (expunged);"
			 " list from the newest again (before_id 0)");

	/* Bounded: 4,096 more gone (made up here) and one more removed, the
	 * first is forgotten. */
	ck_assert_int_eq(store_exec(s, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL"
				       " SELECT i + 1 FROM n WHERE i < 4096)"
				       " INSERT INTO conv_gone (id, account_id, date)"
				       " SELECT 100000 + i, 1, 0 FROM n"),
			 0);
	ck_assert_uint_eq(page(C1, w.qp, 4).n, 0);
	ck_assert_int_eq(store_sync_message_delete(s, w.ft_http), 0);
	ck_assert_uint_eq(page(C1, w.ft_http, 4).n, 0);
	ck_assert_int_eq(
		cpmsync_store_foreach_conversation_message(cs, "a", C1, w.qp, 2, on_page, &p),
		-EINVAL);
	{
		char want[128];

		snprintf(want, sizeof(want),
			 "before_id: message %lld is no longer in the store (expunged);"
			 " list from the newest again (before_id 0)",
			 (long long)w.qp);
		ck_assert_str_eq(cpmsync_store_error(cs), want);
	}
}
END_TEST

/* The conversations cpmsync_store_take_conversations_gone() gives,
 * "account cid" lines. */
static int on_gone(const char *account, const char *cid, void *userdata)
{
	char *out = userdata;
	size_t n = strlen(out);

	snprintf(out + n, 512 - n, "%s %s\n", account, cid);
	return 0;
}

static char *gone(void)
{
	static char out[512];

	out[0] = '\0';
	ck_assert_int_ge(cpmsync_store_take_conversations_gone(cs, on_gone, out), 0);
	return out;
}

/*
 * A conversation that leaves the list is given once (Account1's
 * ConversationRemoved): its last message expunged, its folder deleted;
 * not one that stays listed, nor a change that removes nothing.
 */
START_TEST(test_conversation_gone)
{
	struct world w = fill();
	const char *seen[] = { "\\Seen", NULL };
	int64_t ids[2] = { w.sms, w.mms };
	char sms_cid[128];

	ck_assert_int_eq(cpmsync_store_watch(cs, noop, NULL), 0);
	{
		struct conv_list l = list();

		sms_cid[0] = '\0';
		for (size_t i = 0; i < l.n; i++)
			if (strcmp(l.c[i].folder, FSMS) == 0)
				snprintf(sms_cid, sizeof(sms_cid), "%s", l.c[i].cid);
		ck_assert_str_ne(sms_cid, "");
	}
	ck_assert_str_eq(gone(), "");

	/* A flag, a message expunged with others left: none. */
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &w.b64, 1, seen, NULL), 0);
	ck_assert_int_eq(cpmsync_op_delete(cs, &w.media, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", F1), 0);
	ck_assert_str_eq(gone(), "");

	/* The SMS conversation's messages expunged. */
	ck_assert_int_eq(cpmsync_op_delete(cs, ids, 2), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", FSMS), 0);
	{
		char want[160];

		snprintf(want, sizeof(want), "a %s\n", sms_cid);
		ck_assert_str_eq(gone(), want);
	}
	ck_assert_str_eq(gone(), "");

	/* The 1-to-1 chat's folder deleted. */
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", F1), 0);
	ck_assert_str_eq(gone(), "a " C1 "\n");
	ck_assert_uint_eq(list().n, 1);
	ck_assert_str_eq(list().c[0].cid, GRP);
}
END_TEST

/*
 * Only a conversation that was listed leaves the list: a session folder
 * of IMDN reports only (a group row, is_group, yet no conversation by the
 * contract's counting) gives nothing when its report is expunged or its
 * folder deleted, whether it was there before the watch or came after.
 */
START_TEST(test_conversation_gone_never_listed)
{
	int64_t r1, r2;

	folder("Default");
	r1 = put("Default/conv-R/sess-r1", "imdn-delivered.eml", NULL);
	ck_assert_int_eq(cpmsync_store_watch(cs, noop, NULL), 0);
	r2 = put("Default/conv-S/sess-s1", "imdn-displayed.eml", NULL);
	ck_assert_uint_eq(list().n, 0);
	ck_assert_str_eq(gone(), "");

	ck_assert_int_eq(cpmsync_op_delete(cs, &r1, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", "Default/conv-R/sess-r1"), 0);
	ck_assert_str_eq(gone(), "");
	ck_assert_int_eq(cpmsync_op_delete(cs, &r2, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", "Default/conv-S/sess-s1"), 0);
	ck_assert_str_eq(gone(), "");
	put("Default/conv-S/sess-s2", "imdn-failed.eml", NULL);
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Default/conv-S/sess-s2"), 0);
	ck_assert_str_eq(gone(), "");
	ck_assert_uint_eq(list().n, 0);
}
END_TEST

/* A corpus file whose Conversation-ID header says cid, in fold. */
static int64_t put_cid(const char *fold, const char *file, const char *cid)
{
	size_t len;
	char *data = corpus_file(file, &len);
	char *h = strstr(data, "\nConversation-ID: "), *eol, *out;
	int64_t id;

	ck_assert_ptr_nonnull(h);
	h += strlen("\nConversation-ID: ");
	eol = strchr(h, '\n');
	ck_assert_ptr_nonnull(eol);
	out = malloc(len + strlen(cid) + 1);
	ck_assert_ptr_nonnull(out);
	memcpy(out, data, (size_t)(h - data));
	memcpy(out + (h - data), cid, strlen(cid));
	memcpy(out + (h - data) + strlen(cid), eol, len - (size_t)(eol - data));
	len = (size_t)(h - data) + strlen(cid) + len - (size_t)(eol - data);
	folder(fold);
	ck_assert_msg(cpmsync_op_store(cs, "a", fold, out, len, NULL, 1000, &id) == 0, "%s: %s",
		      file, cpmsync_store_error(cs));
	free(out);
	free(data);
	return id;
}

/*
 * A group listed only for its session-info or group-state object leaves
 * the list when only reports are left, once: that object expunged, its
 * session folder deleted with the reports in the conversation folder
 * left; one listed before the watch started too.
 */
START_TEST(test_conversation_gone_reports_left)
{
	int64_t info, state, msg1;

	folder("Default");
	info = put(FG "/grp-sess-0001", "group-session-1-info.eml", NULL);
	put_cid(FG "/grp-sess-0001", "imdn-delivered.eml", GRP);
	ck_assert_int_eq(cpmsync_store_watch(cs, noop, NULL), 0);
	ck_assert_uint_eq(list().n, 1);
	ck_assert_str_eq(list().c[0].cid, GRP);
	ck_assert_str_eq(gone(), "");

	/* The session-info expunged, a report left. */
	ck_assert_int_eq(cpmsync_op_delete(cs, &info, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", FG "/grp-sess-0001"), 0);
	ck_assert_uint_eq(list().n, 0);
	ck_assert_str_eq(gone(), "a " GRP "\n");
	ck_assert_str_eq(gone(), "");

	/* Listed again by a group-state object, then its session folder
	 * deleted: the report of the first session stays. */
	state = put(FG "/grp-sess-0002", "group-state.eml", NULL);
	ck_assert_uint_eq(list().n, 1);
	ck_assert_str_eq(gone(), "");
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", FG "/grp-sess-0002"), 0);
	ck_assert_uint_eq(list().n, 0);
	ck_assert_str_eq(gone(), "a " GRP "\n");
	(void)state;

	/* With a message and its session-info: the message expunged keeps
	 * it listed, the session-info then takes it off. */
	info = put(FG "/grp-sess-0001", "group-session-1-info.eml", NULL);
	msg1 = put(FG "/grp-sess-0001", "group-session-1-msg.eml", NULL);
	ck_assert_str_eq(gone(), "");
	ck_assert_int_eq(cpmsync_op_delete(cs, &msg1, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", FG "/grp-sess-0001"), 0);
	ck_assert_uint_eq(list().n, 1);
	ck_assert_str_eq(gone(), "");
	ck_assert_int_eq(cpmsync_op_delete(cs, &info, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", FG "/grp-sess-0001"), 0);
	ck_assert_uint_eq(list().n, 0);
	ck_assert_str_eq(gone(), "a " GRP "\n");
}
END_TEST

/* Folder1.ConversationId of fold. */
static char *folder_cid(const char *fold)
{
	int64_t fid;
	char *cid = NULL;

	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", fold, &fid), 0);
	ck_assert_int_eq(cpmsync_store_folder_conversation_id(cs, fid, &cid), 0);
	ck_assert_ptr_nonnull(cid);
	return cid;
}

/*
 * An IMDN report is state, not a message (contract README): its
 * Conversation-ID names no conversation.  A group whose session folder
 * holds its session-info, a stray report of the 1-to-1 chat C1 (its
 * original is elsewhere), then a message: the session-info expunged, the
 * group keeps its ConversationId (it took the report's, the first object
 * left with one).  A folder whose first object is such a report is named
 * by the message after it; one of that report only by its own name.
 */
START_TEST(test_report_names_no_conversation)
{
	struct conv_list l;
	struct conv one;
	int64_t info;
	char *cid;

	folder("Default");
	info = put(FG "/grp-sess-0001", "group-session-1-info.eml", NULL);
	put(FG "/grp-sess-0001", "imdn-delivered.eml", NULL); /* Conversation-ID C1 */
	put(FG "/grp-sess-0001", "group-session-1-msg.eml", NULL);
	ck_assert_int_eq(cpmsync_op_delete(cs, &info, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", FG "/grp-sess-0001"), 0);
	l = list();
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.c[0].cid, GRP);
	ck_assert_uint_eq(l.c[0].messages, 1);
	ck_assert(l.c[0].is_group);
	cid = folder_cid(FG "/grp-sess-0001");
	ck_assert_str_eq(cid, GRP);
	free(cid);
	ck_assert_int_eq(cpmsync_store_get_conversation(cs, "a", C1, on_conv, &l),
			 -CPMSYNC_E_NOT_FOUND);

	/* The report first, in a new folder. */
	put("Default/conv-S", "imdn-delivered.eml", NULL);
	cid = folder_cid("Default/conv-S");
	ck_assert_str_eq(cid, "conv-S");
	free(cid);
	put_cid("Default/conv-S", "group-session-1-msg.eml", "conv-S2");
	cid = folder_cid("Default/conv-S");
	ck_assert_str_eq(cid, "conv-S2");
	free(cid);
	one = get("conv-S2");
	ck_assert_str_eq(one.folder, "Default/conv-S");
	ck_assert_uint_eq(one.messages, 1);
	ck_assert_uint_eq(list().n, 2);
}
END_TEST

/*
 * Version 37 computes anew the conversations an older version named
 * after a report (the row's columns set so by hand, as version 36 left
 * them), and only those.
 */
START_TEST(test_report_names_no_conversation_migration)
{
	int64_t info;
	char *v;

	folder("Default");
	info = put(FG "/grp-sess-0001", "group-session-1-info.eml", NULL);
	put(FG "/grp-sess-0001", "imdn-delivered.eml", NULL); /* Conversation-ID C1 */
	put(FG "/grp-sess-0001", "group-session-1-msg.eml", NULL);
	put("Default/conv-W", "chat-1to1-sent.eml", NULL); /* C1, no report */
	ck_assert_int_eq(cpmsync_op_delete(cs, &info, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", FG "/grp-sess-0001"), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE conversation SET conversation_id = 'x-" C1 "'"), 0);
	ck_assert_int_eq(store_exec(s, store_migration_sql(37)), 0);
	v = text_of(s, "SELECT group_concat(folder || '=' || conversation_id, ' ')"
		       " FROM (SELECT * FROM conversation ORDER BY folder)");
	ck_assert_str_eq(v, FG "=" GRP " Default/conv-W=x-" C1);
	free(v);
}
END_TEST

START_TEST(test_paging)
{
	struct world w = fill();
	struct page p;
	int64_t g1, g2;

	/* 1-to-1, newest first by Date: media 13:00, ft-cpm 12:00, ft-http
	 * 11:00, b64 09:20, qp 09:16:30, sent 09:15. */
	p = page(C1, 0, 0);
	ck_assert_uint_eq(p.n, 6);
	{
		int64_t want[] = { w.media, w.ft_cpm, w.ft_http, w.b64, w.qp, w.sent };

		for (size_t i = 0; i < 6; i++)
			ck_assert_int_eq(p.ids[i], want[i]);
	}
	p = page(C1, 0, 4);
	ck_assert_uint_eq(p.n, 4);
	p = page(C1, p.ids[3], 4);
	ck_assert_uint_eq(p.n, 2);
	ck_assert_int_eq(p.ids[0], w.qp);
	ck_assert_int_eq(p.ids[1], w.sent);
	p = page(C1, w.sent, 4);
	ck_assert_uint_eq(p.n, 0);

	/* The group: across its two session folders, state objects left out. */
	p = page(GRP, 0, 0);
	ck_assert_uint_eq(p.n, 2);
	ck_assert_int_eq(p.ids[0], w.g2msg);
	ck_assert_int_eq(p.ids[1], w.g1msg);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", FG "/grp-sess-0001", &g1), 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", FG "/grp-sess-0002", &g2), 0);
	ck_assert_int_eq(p.folders[0], g2);
	ck_assert_int_eq(p.folders[1], g1);

	/* before_id not in the conversation; an unknown conversation. */
	ck_assert_int_eq(
		cpmsync_store_foreach_conversation_message(cs, "a", C1, w.g1msg, 2, on_page, &p),
		-EINVAL);
	ck_assert_int_eq(
		cpmsync_store_foreach_conversation_message(cs, "a", "x", 0, 2, on_page, &p),
		-CPMSYNC_E_NOT_FOUND);
}
END_TEST

/* Equal Dates: Id breaks the tie, pages neither skip nor repeat. */
START_TEST(test_paging_equal_dates)
{
	char obj[512];
	int64_t ids[7];
	struct page all, p;
	size_t seen = 0;

	folder("Default");
	folder(F1);
	for (int i = 0; i < 7; i++) {
		int n = snprintf(obj, sizeof(obj),
				 "Date: Mon, 2 Mar 2026 09:%02d:00 +0000\r\nFrom: " BOB
				 "\r\nTo: " ME "\r\nConversation-ID: " C1
				 "\r\nContent-Type: Message/CPIM\r\n\r\n",
				 i < 4 ? 10 : 20);

		ck_assert_int_eq(cpmsync_op_store(cs, "a", F1, obj, (size_t)n, NULL, 0, &ids[i]),
				 0);
	}
	all = page(C1, 0, 0);
	ck_assert_uint_eq(all.n, 7);
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(all.ids[i], ids[6 - i]);
	for (size_t i = 3; i < 7; i++)
		ck_assert_int_eq(all.ids[i], ids[3 - (i - 3)]);
	for (int64_t before = 0;;) {
		p = page(C1, before, 2);
		if (!p.n)
			break;
		for (size_t i = 0; i < p.n; i++)
			ck_assert_int_eq(p.ids[i], all.ids[seen++]);
		before = p.ids[p.n - 1];
	}
	ck_assert_uint_eq(seen, 7);
}
END_TEST

/*
 * Pages of a conversation across its session folders, interleaved, with
 * equal Dates across folders and IMDN reports in between: each page is
 * the next part of the (Date, Id) newest-first order over every folder
 * (the one a single sorted query over all of them gives).
 */
START_TEST(test_paging_across_sessions)
{
	static const char *const sess[] = { FG "/grp-sess-0001", FG "/grp-sess-0002" };
	char obj[512];
	int64_t want[12], id;
	size_t n_want = 0, seen = 0;
	sqlite3_stmt *st;
	struct page p;

	folder("Default");
	folder(FG);
	folder(sess[0]);
	folder(sess[1]);
	for (int i = 0; i < 14; i++) {
		/* Minutes 10, 10, 11, 11, ...: one of each pair in each folder,
		 * the second folder's written first half of the time. */
		const char *f = sess[(i + (i / 4)) % 2];
		int n = snprintf(obj, sizeof(obj),
				 "Date: Mon, 2 Mar 2026 09:%02d:00 +0000\r\nFrom: " BOB
				 "\r\nTo: " ME "\r\nConversation-ID: " GRP
				 "\r\nContent-Type: %s\r\n\r\n",
				 10 + i / 2, i % 5 == 4 ? "message/imdn+xml" : "Message/CPIM");

		ck_assert_int_eq(cpmsync_op_store(cs, "a", f, obj, (size_t)n, NULL, 0, &id), 0);
	}
	ck_assert_int_eq(
		store_prepare(s,
			      "SELECT m.id FROM message m JOIN folder f ON f.id = m.folder_id"
			      " WHERE f.conv = '" FG "' AND m.removed = 0"
			      " AND m.type IN ('message', 'file-transfer', 'media')"
			      " ORDER BY coalesce(m.date, 0) DESC, m.id DESC",
			      &st),
		0);
	while (store_step(s, st) > 0) {
		ck_assert_uint_lt(n_want, 12);
		want[n_want++] = sqlite3_column_int64(st, 0);
	}
	ck_assert_uint_ge(n_want, 10);
	for (int64_t before = 0;;) {
		p = page(GRP, before, 3);
		if (!p.n)
			break;
		ck_assert_uint_le(p.n, 3);
		for (size_t i = 0; i < p.n; i++) {
			ck_assert_uint_lt(seen, n_want);
			ck_assert_int_eq(p.ids[i], want[seen++]);
		}
		before = p.ids[p.n - 1];
	}
	ck_assert_uint_eq(seen, n_want);
}
END_TEST

START_TEST(test_flags_expunge_move)
{
	struct world w = fill();
	const char *seen[] = { "\\Seen", NULL };
	struct conv c;
	int64_t ids[2];

	(void)w;
	ck_assert_uint_eq(get(C1).unseen, 3);
	ids[0] = w.b64;
	ids[1] = w.media;
	ck_assert_int_eq(cpmsync_op_set_flags(cs, ids, 2, seen, NULL), 0);
	ck_assert_uint_eq(get(C1).unseen, 1);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, ids, 1, NULL, seen), 0);
	ck_assert_uint_eq(get(C1).unseen, 2);

	/* Expunge the newest: LastMessage goes back one. */
	ck_assert_int_eq(cpmsync_op_delete(cs, &w.media, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", F1), 0);
	c = get(C1);
	ck_assert_uint_eq(c.messages, 5);
	ck_assert_int_eq(c.last_message_id, w.ft_cpm);

	/* Moved out of the conversation (to a user folder) and back. */
	folder("Saved");
	ck_assert_int_eq(cpmsync_op_move(cs, &w.ft_cpm, 1, "Saved", ids), 0);
	c = get(C1);
	ck_assert_uint_eq(c.messages, 4);
	ck_assert_int_eq(c.last_message_id, w.ft_http);
	ck_assert_int_eq(cpmsync_op_move(cs, ids, 1, F1, ids + 1), 0);
	c = get(C1);
	ck_assert_uint_eq(c.messages, 5);
	ck_assert_int_eq(c.last_message_id, ids[1]);

	/* The SMS conversation emptied: it is gone. */
	ids[0] = w.sms;
	ids[1] = w.mms;
	ck_assert_int_eq(cpmsync_op_delete(cs, ids, 2), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", FSMS), 0);
	ck_assert_uint_eq(list().n, 2);
}
END_TEST

/*
 * Flagged \Deleted, not yet expunged: no longer one of the conversation's
 * Messages, Unseen, LastMessage or pages; back when the flag goes; an
 * arrival with the flag does not count either.
 */
START_TEST(test_deleted_not_counted)
{
	struct world w = fill();
	const char *seen[] = { "\\Seen", NULL }, *del[] = { "\\Deleted", NULL };
	struct conv c;
	struct page p;
	int64_t ids[2];

	c = get(C1);
	ck_assert_uint_eq(c.messages, 6);
	ck_assert_uint_eq(c.unseen, 3);
	ck_assert_int_eq(c.last_message_id, w.media);

	ck_assert_int_eq(cpmsync_op_delete(cs, &w.media, 1), 0);
	c = get(C1);
	ck_assert_uint_eq(c.messages, 5);
	ck_assert_uint_eq(c.unseen, 2);
	ck_assert_int_eq(c.last_message_id, w.ft_cpm);
	p = page(C1, 0, 0);
	ck_assert_uint_eq(p.n, 5);
	ck_assert_int_eq(p.ids[0], w.ft_cpm);
	/* A page below it (an app's cursor) goes on. */
	ck_assert_uint_eq(page(C1, w.media, 2).n, 2);

	/* \Seen of a \Deleted one changes no count; the flag gone, it is
	 * back as it is then. */
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &w.b64, 1, del, NULL), 0);
	ck_assert_uint_eq(get(C1).unseen, 1);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &w.b64, 1, seen, NULL), 0);
	ck_assert_uint_eq(get(C1).unseen, 1);
	ck_assert_uint_eq(get(C1).messages, 4);
	ids[0] = w.b64;
	ids[1] = w.media;
	ck_assert_int_eq(cpmsync_op_set_flags(cs, ids, 2, NULL, del), 0);
	c = get(C1);
	ck_assert_uint_eq(c.messages, 6);
	ck_assert_uint_eq(c.unseen, 2);
	ck_assert_int_eq(c.last_message_id, w.media);
	ck_assert_uint_eq(page(C1, 0, 0).n, 6);

	/* Stored with \Deleted: not counted. */
	ids[0] = put(F1, "chat-1to1-received-qp.eml", "\\Deleted");
	c = get(C1);
	ck_assert_uint_eq(c.messages, 6);
	ck_assert_uint_eq(c.unseen, 2);
	ck_assert_int_eq(c.last_message_id, w.media);
	ck_assert_uint_eq(page(C1, 0, 0).n, 6);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, ids, 1, NULL, del), 0);
	c = get(C1);
	ck_assert_uint_eq(c.messages, 7);
	ck_assert_uint_eq(c.unseen, 3);

	/* Synced with \Deleted (held back in the sync's transaction). */
	{
		int64_t fid;

		ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
		sync_put_flags(fid, 900, "chat-1to1-received-base64.eml", "\\Deleted");
	}
	c = get(C1);
	ck_assert_uint_eq(c.messages, 7);
	ck_assert_uint_eq(c.unseen, 3);
	ck_assert_uint_eq(page(C1, 0, 0).n, 7);

	/* Copied with \Deleted into another conversation's folder (a copy
	 * goes through the path outside the held-back rows). */
	{
		int64_t copy;

		ck_assert_uint_eq(get(GRP).messages, 2);
		ck_assert_int_eq(cpmsync_op_set_flags(cs, &w.media, 1, del, NULL), 0);
		ck_assert_int_eq(cpmsync_op_copy(cs, &w.media, 1, FG "/grp-sess-0001", &copy), 0);
		ck_assert_uint_eq(get(GRP).messages, 2);
		ck_assert_uint_eq(page(GRP, 0, 0).n, 2);
		ck_assert_int_eq(cpmsync_op_set_flags(cs, &copy, 1, NULL, del), 0);
		ck_assert_uint_eq(get(GRP).messages, 3);
		ck_assert_uint_eq(page(GRP, 0, 0).n, 3);
	}
}
END_TEST

/*
 * What a list reader keeps (Account1.ListConversations keeps its reply
 * while the content stamp stays): the stamp stays across reads, and
 * moves with a flag change of the last message (which the list shows in
 * LastMessage), a write of another connection, and a rolled-back write;
 * inside a transaction it says so.
 */
START_TEST(test_last_message_and_stamp)
{
	struct world w = fill();
	const char *flagged[] = { "\\Flagged", NULL };
	struct cpmsync_store *other;
	uint64_t a[2], b[2];
	char *err = NULL;
	struct conv c;

	c = get(C1);
	ck_assert_int_eq(c.last_message_id, w.media);
	ck_assert_str_eq(c.last_flags, "");
	ck_assert_int_eq(cpmsync_store_content_stamp(cs, a), 0);
	(void)list();
	(void)get(GRP);
	ck_assert_int_eq(cpmsync_store_content_stamp(cs, b), 0);
	ck_assert(a[0] == b[0] && a[1] == b[1]);

	/* A flag that leaves Unseen alone still shows in LastMessage. */
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &w.media, 1, flagged, NULL), 0);
	c = get(C1);
	ck_assert_str_eq(c.last_flags, "\\Flagged");
	ck_assert_uint_eq(c.unseen, 3);
	ck_assert_int_eq(cpmsync_store_content_stamp(cs, b), 0);
	ck_assert(a[0] != b[0] || a[1] != b[1]);

	/* Another connection's commit. */
	ck_assert_int_eq(cpmsync_store_content_stamp(cs, a), 0);
	ck_assert_int_eq(cpmsync_store_open(dbpath, 0, &other, &err), 0);
	ck_assert_int_eq(cpmsync_op_set_flags(other, &w.media, 1, NULL, flagged), 0);
	other = cpmsync_store_close(other);
	ck_assert_int_eq(cpmsync_store_content_stamp(cs, b), 0);
	ck_assert(a[0] != b[0] || a[1] != b[1]);
	ck_assert_str_eq(get(C1).last_flags, "");

	/* An open transaction, then its rollback. */
	ck_assert_int_eq(cpmsync_store_content_stamp(cs, a), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE message_state SET flags = '\\Flagged' WHERE id = 1"),
			 0);
	ck_assert_int_eq(cpmsync_store_content_stamp(cs, b), 1);
	store_rollback(s);
	ck_assert_int_eq(cpmsync_store_content_stamp(cs, b), 0);
	ck_assert(a[0] != b[0] || a[1] != b[1]);
}
END_TEST

START_TEST(test_rename_delete_root)
{
	struct conv_list l;

	fill();
	/* A conversation folder renamed out of the root and back. */
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "a", FSMS, "Old SMS"), 0);
	l = list();
	ck_assert_uint_eq(l.n, 2);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "a", "Old SMS", FSMS), 0);
	ck_assert_uint_eq(list().n, 3);
	ck_assert_uint_eq(get("tel:+15550001111").messages, 2);

	/* A session folder deleted: the group keeps the other session. */
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", FG "/grp-sess-0002"), 0);
	{
		struct conv g = get(GRP);

		ck_assert_uint_eq(g.messages, 1);
		ck_assert(g.is_group);
		/* Participants now from the first session's session-info. */
		ck_assert_str_eq(g.participants, BOB "\n" DAVE "\nsip:carol@example.net");
	}

	/* Another root: nothing is a conversation; back: all return. */
	ck_assert_int_eq(cpmsync_store_set_cpm_root(cs, "a", "RCSMessageStore"), 0);
	ck_assert_uint_eq(list().n, 0);
	ck_assert_int_eq(cpmsync_store_set_cpm_root(cs, "a", "Default"), 0);
	ck_assert_uint_eq(list().n, 3);
	ck_assert_uint_eq(get(C1).messages, 6);
	ck_assert_int_eq(cpmsync_store_set_cpm_root(cs, "zz", "Default"), -CPMSYNC_E_NOT_FOUND);
}
END_TEST

/* The incremental rows equal a recomputation from scratch. */
START_TEST(test_incremental_equals_rebuild)
{
	char *before, *after;
	sqlite3_stmt *st;
	struct buf;

	fill();
	put(F1, "imdn-delivered.eml", NULL);
	put(F1, "imdn-failed.eml", NULL);
#define ROWS                                                                                       \
	"SELECT group_concat(folder || '|' || conversation_id || '|' || is_group || '|' || peer"   \
	" || '|' || subject || '|' || participants || '|' || messages || '|' || unseen || '|'"     \
	" || last_date || '|' || last_id, ';') FROM (SELECT * FROM conversation ORDER BY folder)"
	ck_assert_int_eq(store_prepare(s, ROWS, &st), 0);
	ck_assert_int_eq(store_step(s, st), 1);
	before = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	ck_assert_int_eq(store_exec(s, "UPDATE account SET cpm_root = 'x';"
				       " UPDATE account SET cpm_root = 'Default';"),
			 0);
	ck_assert_int_eq(store_prepare(s, ROWS, &st), 0);
	ck_assert_int_eq(store_step(s, st), 1);
	after = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
}
END_TEST

/*
 * A message of no Type (a row stored without its header: no summary) in a
 * conversation folder is stored and counts as nothing.  Up to schema
 * version 14 the arrival trigger's "counted" and "group-state" terms were
 * NULL for it, which made messages, unseen and is_group NULL: the INSERT
 * failed on their NOT NULL constraint.
 */
START_TEST(test_untyped_message)
{
	int64_t fid, id;
	sqlite3_stmt *st;
	char *before;

#define CONV_ROW                                                                                   \
	"SELECT messages || '|' || unseen || '|' || is_group || '|' || last_id || '|' || peer"     \
	" FROM conversation WHERE folder = '" F1 "'"
	folder("Default");
	put(F1, "chat-1to1-received-base64.eml", NULL);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
	ck_assert_int_eq(store_prepare(s, CONV_ROW, &st), 0);
	ck_assert_int_eq(store_step(s, st), 1);
	before = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	ck_assert_str_eq(before, "1|1|0|1|" BOB);

	ck_assert_msg(
		store_message_insert(
			s, &(struct store_message_row){ .folder_id = fid, .uid = 77, .flags = "" },
			&id) == 0,
		"%s", store_error(s));
	ck_assert_int_eq(store_prepare(s, "SELECT type IS NULL FROM message WHERE id = ?1", &st),
			 0);
	sqlite3_bind_int64(st, 1, id);
	ck_assert_int_eq(store_step(s, st), 1);
	ck_assert_int_eq(sqlite3_column_int(st, 0), 1);
	sqlite3_reset(st);
	ck_assert_int_eq(store_prepare(s, CONV_ROW, &st), 0);
	ck_assert_int_eq(store_step(s, st), 1);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), before);
	sqlite3_reset(st);
	free(before);
#undef CONV_ROW
}
END_TEST

/*
 * Conversation rows held back in a transaction (store-message.c
 * conv_note()) end exactly as the same objects written one by one, each
 * in its own autocommit (conv_added_now(), the UPDATE per object): counts,
 * newest object, peer, group, Conversation-ID and version alike.  The
 * objects come in an order chosen to make the fold's order matter: dates
 * out of order and equal, peers empty and set, the Conversation-ID first
 * seen on a later object, session folders of one conversation, state
 * objects whose summaries write the row in between (a flush), uncounted
 * types and untyped rows.  Midway a read of the conversations inside the
 * transaction sees what the other store has at that point; a rolled-back
 * transaction leaves the rows as they were.
 */
#define HB_ROWS                                                                                    \
	"SELECT group_concat(folder || '|' || conversation_id || '|' || cid_header || '|'"         \
	" || is_group || '|' || peer || '|' || subject || '|' || participants || '|' || messages"  \
	" || '|' || unseen || '|' || last_date || '|' || last_id || '|' || version, ';')"          \
	" FROM (SELECT * FROM conversation ORDER BY folder)"

/* The text of the one row sql gives in store st_ ("" for NULL), copied. */

static char *hb_rows(struct store *st_)
{
	return text_of(st_, HB_ROWS);
}

static void hb_folders(struct store *st_)
{
	ck_assert_int_eq(store_exec(st_, "INSERT INTO folder (id, account_id, name, delimiter,"
					 " server_name, uidvalidity) VALUES"
					 " (11, 1, '" F1 "', '/', 'a', 7),"
					 " (12, 1, '" FG "/s1', '/', 'b', 7),"
					 " (13, 1, '" FG "/s2', '/', 'c', 7),"
					 " (14, 1, '" FSMS "', '/', 'd', 7),"
					 " (15, 1, 'Mail', '/', 'e', 7),"
					 " (16, 1, '" FG "', '/', 'f', 7)"),
			 0);
}

static void hb_insert(struct store *st_, unsigned i)
{
	static const int64_t folders[] = { 11, 12, 13, 14, 15, 16, 11, 12 };
	static const char *const types[] = { "message",	     "file-transfer", "media", "imdn",
					     "session-info", "group-state",   "mail",  NULL };
	static const char *const peers[] = { NULL, "", BOB, DAVE, ME };
	static const char *const cids[] = { NULL, "", "", "", C1, GRP, "cid-x" };
	static const char *const flags[] = { "", "\\Seen", "\\Flagged \\Seen", "\\Seenx",
					     "$x \\Seen" };
	unsigned h = i * 2654435761u;
	struct msg_summary sum = {
		.message_id = (char *)"",
		.subject = (char *)"",
		.from = (char *)"",
		.to = (char *)"",
		.conversation_id = (char *)cids[(h >> 7) % 7 == 4 && i < 40 ? 0 : (h >> 7) % 7],
		.contribution_id = (char *)"",
		.imdn_message_id = (char *)"",
		.date = (int64_t)((h >> 11) % 23) * 60,
		.type = types[(h >> 3) % 8],
		.direction = (char *)"",
		.context = (char *)"",
		.in_reply_to = (char *)"",
		.peer = (char *)peers[(h >> 17) % 5],
		.sender = (char *)"",
		.snippet = (char *)"",
		.imdn_ref = (char *)"",
		.status = (char *)"",
		.participants = (char *)(i % 3 ? BOB : DAVE),
	};
	int64_t id;

	ck_assert_int_eq(store_message_insert(st_,
					      &(struct store_message_row){
						      .folder_id = folders[(h >> 13) % 8],
						      .uid = i + 1,
						      .flags = flags[(h >> 21) % 5],
						      .summary = (h >> 3) % 8 == 7 ? NULL : &sum,
					      },
					      &id),
			 0);
}

START_TEST(test_held_back_equals_one_by_one)
{
	struct cpmsync_store *cs2;
	struct store *s2;
	char path[sizeof(dbpath) + 8], *err = NULL, *a, *b;
	const unsigned n = 400;

	snprintf(path, sizeof(path), "%s/b.db", tmpdir);
	ck_assert_int_eq(cpmsync_store_open(path, 0, &cs2, &err), 0);
	s2 = store_from_public(cs2);
	ck_assert_int_eq(store_exec(s2, "INSERT INTO account (id, name) VALUES (1, 'a');"), 0);
	hb_folders(s);
	hb_folders(s2);

	ck_assert_int_eq(store_begin(s2), 0);
	for (unsigned i = 0; i < n; i++) {
		ck_assert(!store_in_transaction(s));
		hb_insert(s, i);
		hb_insert(s2, i);
		if (i >= n / 2 && i < n / 2 + 8) {
			/* Readers inside the transaction: a statement cached
			 * (the second time), one prepared now. */
			struct conv_list l = { 0 };

			a = hb_rows(s);
			b = hb_rows(s2);
			ck_assert_str_eq(a, b);
			free(a);
			free(b);
			ck_assert_int_eq(cpmsync_store_foreach_conversation(cs2, "a", on_conv, &l),
					 0);
			/* One per Conversation-ID. */
			ck_assert_uint_eq(l.n, 2);
		}
	}
	ck_assert_int_eq(store_commit(s2), 0);
	a = hb_rows(s);
	b = hb_rows(s2);
	ck_assert_str_eq(a, b);
	/* Not a vacuous match: the rows counted, moved and took a peer. */
	ck_assert_ptr_nonnull(strstr(a, "|" BOB "|"));
	ck_assert_ptr_nonnull(strstr(a, "|" C1 "|1|"));
	free(b);

	/* Rolled back: nothing of it stays. */
	ck_assert_int_eq(store_begin(s2), 0);
	for (unsigned i = 0; i < 30; i++)
		hb_insert(s2, n + i);
	store_rollback(s2);
	b = hb_rows(s2);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	cpmsync_store_close(cs2);
}
END_TEST

/*
 * Objects that go (deleted, removed, in any number) recompute their
 * conversation once per transaction (schema version 21: noted in
 * conv_stale, recomputed at the flush), not once per row: a reader inside
 * the transaction already sees the recomputed row, the version moves by
 * one, and the rows equal a rebuild from scratch.  Up to version 20 each
 * row's trigger recomputed it (the version moved by three here).  The
 * statements are prepared ones, as the engine's: store_exec() flushes
 * before any SQL.
 */
static char *conv_rows(void)
{
	return text_of(s, ROWS);
}

static int64_t conv_version(const char *cid)
{
	sqlite3_stmt *st;
	int64_t v;

	ck_assert_int_eq(
		store_prepare(s, "SELECT version FROM conversation WHERE conversation_id = ?1",
			      &st),
		0);
	sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
	ck_assert_int_eq(store_step(s, st), 1);
	v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return v;
}

START_TEST(test_recompute_once_per_transaction)
{
	struct world w = fill();
	char *before, *after;
	sqlite3_stmt *st;
	int64_t v0;

	ck_assert_uint_eq(get(C1).messages, 6);
	ck_assert_uint_eq(get(C1).unseen, 3);
	v0 = conv_version(C1);
	ck_assert_int_eq(store_begin(s), 0);
	/* As the engine writes them: prepared statements, none of which
	 * reads conversation rows (store_exec() would flush before each). */
	ck_assert_int_eq(store_prepare(s, "DELETE FROM message WHERE id = ?1", &st), 0);
	for (int i = 0; i < 2; i++) {
		sqlite3_bind_int64(st, 1, i ? w.media : w.qp);
		ck_assert_int_eq(store_step_done(s, st), 0);
		sqlite3_reset(st);
	}
	ck_assert_int_eq(store_prepare(s, "UPDATE message SET removed = 1 WHERE id = ?1", &st), 0);
	sqlite3_bind_int64(st, 1, w.b64);
	ck_assert_int_eq(store_step_done(s, st), 0);
	/* Inside the transaction: recomputed for the reader. */
	ck_assert_uint_eq(get(C1).messages, 3);
	ck_assert_uint_eq(get(C1).unseen, 1); /* ft-http's */
	ck_assert_int_eq(get(C1).last_message_id, w.ft_cpm);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(conv_version(C1), v0 + 1);
	ck_assert_uint_eq(get(C1).messages, 3);

	/* The same rows as a rebuild from scratch. */
	before = conv_rows();
	ck_assert_int_eq(store_exec(s, "UPDATE account SET cpm_root = 'x';"
				       " UPDATE account SET cpm_root = 'Default';"),
			 0);
	after = conv_rows();
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
}
END_TEST

/* Messages of the row of cid as the table holds it now: read past
 * store_prepare(), which would write the rows held back first. */
static int64_t raw_messages(const char *cid)
{
	sqlite3_stmt *st;
	int64_t v;

	ck_assert_int_eq(sqlite3_prepare_v2(store_db(s),
					    "SELECT messages FROM conversation"
					    " WHERE conversation_id = ?1",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/*
 * Objects stored from their header and their bodies in the same
 * transaction (a sync batch with sync_bodies limited), watched: the
 * watch's triggers read the conversation row to note a change of its
 * last message (store-changes.c), yet the rows held back
 * (store-message.c) are written at the commit, not before each body
 * (store.c authorize()).
 */
START_TEST(test_watched_bodies_keep_rows_held_back)
{
	const char *files[] = { "chat-1to1-received-qp.eml", "chat-1to1-received-base64.eml" };
	int64_t fid, id = 0;
	char *d0;
	size_t l0;
	int n;

	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (account_id, name, delimiter,"
				       " server_name, uidvalidity) VALUES"
				       " (1, '" F1 "', '/', '" F1 "', 7)"),
			 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
	sync_put_head(fid, 1, "chat-1to1-sent.eml", &d0, &l0);
	free(d0);
	ck_assert_int_eq(cpmsync_store_watch(cs, noop, NULL), 0);
	take();
	ck_assert_int_eq(store_begin(s), 0);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		struct msg_summary sum;
		size_t len;
		char *data = corpus_file(files[i], &len);
		struct sync_new_message m = {
			.uid = (uint32_t)i + 2, .flags = "", .size = len, .summary = &sum
		};
		bool has_body, is_new;

		ck_assert_int_eq(msg_summary_parse(data, msg_header_length(data, len), &sum), 0);
		ck_assert_int_eq(store_sync_new_message(s, fid, &m, &id, &has_body, &is_new), 0);
		ck_assert_int_eq(store_sync_body_put(s, id, data, len), 0);
		ck_assert_msg(raw_messages(C1) == 1, "body %zu: the held-back row written", i);
		msg_summary_free(&sum);
		free(data);
	}
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(raw_messages(C1), 3);
	ck_assert_int_eq(get(C1).last_message_id, id);
	n = take();
	ck_assert(changed(CPMSYNC_CHANGE_CONVERSATION_CHANGED, get(C1).id, n));
}
END_TEST

/*
 * An IMDN report raising an original whose conversation row is held back
 * in the transaction (the same folder, as most are): the raise's version
 * bump goes into the row's held-back write (store_conv_bump() folds it)
 * and the version ends as with the bump's own UPDATE at the commit: one
 * per object, and one per transaction for the raises of a folder.  A
 * raise of an original in another conversation, whose row is not held
 * back, still gets its own.
 */
static int64_t raise_insert(int64_t folder_id, int64_t uid, const char *type, const char *cid,
			    const char *imdn_message_id, const char *imdn_ref, const char *status)
{
	struct msg_summary sum = {
		.message_id = (char *)"",
		.subject = (char *)"",
		.from = (char *)"",
		.to = (char *)"",
		.conversation_id = (char *)cid,
		.contribution_id = (char *)"",
		.imdn_message_id = (char *)imdn_message_id,
		.date = uid * 60,
		.type = type,
		.direction = (char *)"sent",
		.context = (char *)"",
		.in_reply_to = (char *)"",
		.peer = (char *)BOB,
		.sender = (char *)ME,
		.snippet = (char *)"",
		.imdn_ref = (char *)imdn_ref,
		.status = (char *)status,
		.participants = (char *)"",
	};
	int64_t id;

	ck_assert_int_eq(store_message_insert(s,
					      &(struct store_message_row){
						      .folder_id = folder_id,
						      .uid = uid,
						      .flags = "",
						      .summary = &sum,
					      },
					      &id),
			 0);
	return id;
}

START_TEST(test_raise_bump_held_back)
{
	int64_t orig, other;

	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (id, account_id, name, delimiter,"
				       " server_name, uidvalidity) VALUES"
				       " (11, 1, '" F1 "', '/', 'a', 7),"
				       " (14, 1, '" FSMS "', '/', 'd', 7)"),
			 0);
	ck_assert_int_eq(store_begin(s), 0);
	orig = raise_insert(11, 1, "message", C1, "im-1", "", "");
	raise_insert(11, 2, "imdn", C1, "rp-1", "im-1", "delivered");
	raise_insert(11, 3, "imdn", C1, "rp-2", "im-1", "displayed");
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_str_eq(msg(orig).status, "displayed");
	/* Three objects, and the raises' one bump. */
	ck_assert_int_eq(conv_version(C1), 4);

	/* A weaker report raises nothing: its object alone. */
	ck_assert_int_eq(store_begin(s), 0);
	raise_insert(11, 4, "imdn", C1, "rp-3", "im-1", "failed");
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(conv_version(C1), 5);

	/* The original in another conversation, not held back in this
	 * transaction: its row is bumped by its own UPDATE, once. */
	ck_assert_int_eq(store_begin(s), 0);
	other = raise_insert(14, 1, "message", "cid-sms", "im-2", "", "");
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(conv_version("cid-sms"), 1);
	ck_assert_int_eq(store_begin(s), 0);
	raise_insert(11, 5, "imdn", C1, "rp-4", "im-2", "delivered");
	raise_insert(11, 6, "imdn", C1, "rp-5", "im-2", "displayed");
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_str_eq(msg(other).status, "displayed");
	ck_assert_int_eq(conv_version("cid-sms"), 2);
	ck_assert_int_eq(conv_version(C1), 7);
}
END_TEST

/*
 * Reports first stored from their header (as messages) and classified
 * again in one transaction once their bodies come (schema version 22):
 * the conversation is recomputed once, not once per report.  Its version
 * moves by two: that recompute, and the bump of the originals' raised
 * Status at the commit (version 17); by three up to version 21.
 */
START_TEST(test_reclassified_once_per_transaction)
{
	char *d[3];
	size_t l[3];
	int64_t fid, orig, r1, r2, v0;
	struct msg_summary sum;

	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (account_id, name, delimiter,"
				       " server_name, uidvalidity) VALUES"
				       " (1, '" F1 "', '/', '" F1 "', 7)"),
			 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
	orig = sync_put_head(fid, 1, "chat-1to1-sent.eml", &d[0], &l[0]);
	r1 = sync_put_head(fid, 2, "imdn-delivered.eml", &d[1], &l[1]);
	r2 = sync_put_head(fid, 3, "imdn-displayed.eml", &d[2], &l[2]);
	set_cpm(orig, d[0], l[0]);
	ck_assert_uint_eq(get(C1).messages, 3); /* the reports look like messages */
	v0 = conv_version(C1);

	ck_assert_int_eq(store_begin(s), 0);
	for (int i = 1; i <= 2; i++) {
		ck_assert_int_eq(msg_summary_parse(d[i], l[i], &sum), 0);
		ck_assert_int_eq(store_message_set_cpm(s, i == 1 ? r1 : r2, &sum), 0);
		msg_summary_free(&sum);
	}
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_uint_eq(get(C1).messages, 1);
	ck_assert_int_eq(get(C1).last_message_id, orig);
	ck_assert_str_eq(msg(orig).status, "displayed");
	ck_assert_int_eq(conv_version(C1), v0 + 2);
	for (int i = 0; i < 3; i++)
		free(d[i]);
}
END_TEST

/*
 * A session-info object stored without a summary (no header read), whose
 * body then brings one (store_message_set_cpm()): the summary is new, and
 * the conversation takes its participants (version 20: conv_state_summary(),
 * where the trigger conv_summary_insert did it).
 */
START_TEST(test_state_summary_made_by_body)
{
	size_t len;
	char *data = corpus_file("group-session-1-info.eml", &len);
	sqlite3_stmt *st;
	int64_t fid, id;

	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (account_id, name, delimiter,"
				       " server_name, uidvalidity) VALUES"
				       " (1, '" FG "/grp-sess-0001', '/', 'x', 7)"),
			 0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", FG "/grp-sess-0001", &fid), 0);
	ck_assert_msg(
		store_message_insert(
			s, &(struct store_message_row){ .folder_id = fid, .uid = 1, .flags = "" },
			&id) == 0,
		"%s", store_error(s));
	ck_assert_int_eq(store_prepare(s, "SELECT 1 FROM summary WHERE id = ?1", &st), 0);
	sqlite3_bind_int64(st, 1, id);
	ck_assert_int_eq(store_step(s, st), 0); /* no summary */
	ck_assert_str_eq(get(GRP).participants, "");
	set_cpm(id, data, len);
	ck_assert_str_eq(get(GRP).participants, BOB "\n" DAVE "\nsip:carol@example.net");
	free(data);
}
END_TEST

/* HB_ROWS without the version (a rebuild moves it). */
#define EQ_ROWS                                                                                    \
	"SELECT group_concat(folder || '|' || conversation_id || '|' || cid_header || '|'"         \
	" || is_group || '|' || peer || '|' || subject || '|' || participants || '|' || messages"  \
	" || '|' || unseen || '|' || last_date || '|' || last_id, ';')"                            \
	" FROM (SELECT * FROM conversation ORDER BY folder)"

/* The conversation folders that hold a visible object; the rows'. */
#define EQ_CONV_FOLDERS                                                                            \
	"SELECT group_concat(conv, ';') FROM (SELECT DISTINCT f.conv FROM message m"               \
	" JOIN folder f ON f.id = m.folder_id WHERE m.removed = 0 AND f.removed = 0"               \
	" AND f.conv IS NOT NULL ORDER BY f.conv)"
#define EQ_ROW_FOLDERS                                                                             \
	"SELECT group_concat(folder, ';') FROM (SELECT folder FROM conversation ORDER BY folder)"

/*
 * The rows equal a rebuild from scratch (which they then are): every
 * tenth step the whole table rebuilt (the CPM root changed and back, ~10
 * ms here), else each row recomputed from its objects (noted in
 * conv_stale, the flush's recompute) and the rows checked to be those of
 * the conversation folders that hold a visible object.
 */
static void check_equals_rebuild(const char *what, unsigned step)
{
	char *before = text_of(s, EQ_ROWS), *after, *want, *have;

	if (step % 10 == 0) {
		ck_assert_int_eq(store_exec(s, "UPDATE account SET cpm_root = 'x';"
					       " UPDATE account SET cpm_root = 'Default';"),
				 0);
	} else {
		ck_assert_int_eq(store_exec(s, "INSERT OR IGNORE INTO conv_stale (account_id, conv)"
					       " SELECT account_id, folder FROM conversation"),
				 0);
		want = text_of(s, EQ_CONV_FOLDERS);
		have = text_of(s, EQ_ROW_FOLDERS);
		ck_assert_msg(strcmp(want, have) == 0, "after %s (step %u): rows for %s, not %s",
			      what, step, want, have);
		free(want);
		free(have);
	}
	after = text_of(s, EQ_ROWS);
	ck_assert_msg(strcmp(before, after) == 0, "after %s (step %u):\n%s\nrebuilt:\n%s", what,
		      step, before, after);
	free(before);
	free(after);
}

/*
 * test_changes_equal_rebuild()'s folder-level changes: folder renamed to
 * name (when no other folder has it); deleted locally as DeleteFolder
 * does (its objects purged, then removed set) and made again (removed
 * cleared: store_sync_folder_recreate()); or the participants of the
 * state object at or after id written again.  (A removed folder holds no
 * objects: DeleteFolder purges them, and no sync adds any.)
 */
static void folder_change(unsigned op, int64_t folder, const char *name, int64_t id)
{
	static const char *const deleted_and_made[] = {
		"DELETE FROM message WHERE folder_id = ?1",
		"UPDATE folder SET removed = 1 WHERE id = ?1",
		"UPDATE folder SET removed = 0 WHERE id = ?1",
	};
	sqlite3_stmt *st;

	if (op == 7) {
		for (size_t i = 0; i < ARRAY_SIZE(deleted_and_made); i++) {
			ck_assert_int_eq(store_prepare(s, deleted_and_made[i], &st), 0);
			sqlite3_bind_int64(st, 1, folder);
			ck_assert_msg(store_step_done(s, st) == 0, "%s", store_error(s));
			sqlite3_reset(st);
		}
		return;
	}
	ck_assert_int_eq(store_prepare(s,
				       op == 6 ? "UPDATE folder SET name = ?2 WHERE id = ?1 AND NOT"
						 " EXISTS (SELECT 1 FROM folder WHERE name = ?2)"
					       : "UPDATE summary SET participants = CASE WHEN"
						 " participants = ?2 THEN ?3 ELSE ?2 END WHERE id ="
						 " (SELECT id FROM message WHERE id >= ?1 AND"
						 " (type = 'session-info' OR type = 'group-state')"
						 " ORDER BY id LIMIT 1)",
				       &st),
			 0);
	sqlite3_bind_int64(st, 1, op == 8 ? id : folder);
	sqlite3_bind_text(st, 2, op == 8 ? DAVE : name, -1, SQLITE_STATIC);
	if (op == 8)
		sqlite3_bind_text(st, 3, BOB "\n" DAVE, -1, SQLITE_STATIC);
	ck_assert_msg(store_step_done(s, st) == 0, "%s", store_error(s));
	sqlite3_reset(st);
}

/*
 * Objects arriving in any order, going (deleted, removed), moving between
 * conversations, classified again and changing flags, alone or many in a
 * transaction: after each step the rows are what a rebuild from scratch
 * gives.  The objects are hb_insert()'s (peers empty and set, dates out
 * of order and equal, state objects, uncounted and untyped rows).
 */
START_TEST(test_changes_equal_rebuild)
{
	static const char *const types[] = { "message", "file-transfer", "media",
					     "imdn",	"session-info",	 "group-state" };
	static const char *const ops[] = { "delete", "remove",	       "move",
					   "type",   "flags",	       "copy",
					   "rename", "folder-removed", "participants" };
	/* Folder names a rename picks from (one not in use): the six of
	 * hb_folders(), another session of the group, a session of the 1-to-1
	 * conversation, a new conversation. */
	static const char *const names[] = { F1,       FG "/s1",     FG "/s2",
					     FSMS,     "Mail",	     FG,
					     FG "/s3", F1 "/sess-9", "Default/conv-new" };
	static const char *const sql[] = {
		"DELETE FROM message WHERE id = ?1",
		"UPDATE message SET removed = 1 WHERE id = ?1",
		"UPDATE message SET folder_id = ?2 WHERE id = ?1",
		"UPDATE message SET type = ?3 WHERE id = ?1",
		"UPDATE message_state SET flags = CASE flags WHEN '' THEN '\\Seen' ELSE '' END"
		" WHERE id = ?1",
	};
	/* CONV_SEED=n: another sequence (48 more passed when this was written). */
	const unsigned seed0 = getenv("CONV_SEED") ? (unsigned)atoi(getenv("CONV_SEED")) : 12345;
	unsigned seed = seed0, next_uid = 1000, copies = 0;

	hb_folders(s);
	for (unsigned i = 0; i < 300; i++)
		hb_insert(s, i);
	check_equals_rebuild("the arrivals", 0);
	for (unsigned step = 1; step <= 400; step++) {
		unsigned h = (seed = seed * 1103515245u + 12345u) >> 8;
		unsigned batch = (h >> 4) % 4 == 0 ? 1 + (h >> 6) % 12 : 1;
		bool tx = (h >> 10) % 2;
		char what[256];

		snprintf(what, sizeof(what), "CONV_SEED=%u: ", seed0);
		if (tx)
			ck_assert_int_eq(store_begin(s), 0);
		for (unsigned k = 0; k < batch; k++) {
			unsigned g = (seed = seed * 1103515245u + 12345u) >> 8, op = (g >> 16) % 9;
			int64_t folder = 11 + (g >> 9) % 6, id, copy;
			sqlite3_stmt *st;

			/* A visible object at random (ids in order, from a random start). */
			ck_assert_int_eq(store_prepare(s,
						       "SELECT id FROM message WHERE removed = 0"
						       " AND id >= ?1 ORDER BY id LIMIT 1",
						       &st),
					 0);
			sqlite3_bind_int64(st, 1, 1 + g % 320);
			if (store_step(s, st) != 1) {
				sqlite3_reset(st);
				hb_insert(s, next_uid++);
				continue;
			}
			id = sqlite3_column_int64(st, 0);
			sqlite3_reset(st);
			snprintf(what + strlen(what), sizeof(what) - strlen(what), "%s%s",
				 k ? "," : "", ops[op]);
			if (op == 5) {
				ck_assert_msg(store_message_copy(s, id, folder, &copy) == 0, "%s",
					      store_error(s));
				copies++;
			} else if (op >= 6) {
				folder_change(op, folder, names[(g >> 3) % ARRAY_SIZE(names)], id);
			} else {
				ck_assert_int_eq(store_prepare(s, sql[op], &st), 0);
				sqlite3_bind_int64(st, 1, id);
				if (op == 2)
					sqlite3_bind_int64(st, 2, folder);
				if (op == 3)
					sqlite3_bind_text(st, 3, types[(g >> 9) % 6], -1,
							  SQLITE_STATIC);
				ck_assert_msg(store_step_done(s, st) == 0, "%s", store_error(s));
				sqlite3_reset(st);
			}
			if ((g >> 13) % 5 == 0)
				hb_insert(s, next_uid++);
		}
		if (tx)
			ck_assert_int_eq(store_commit(s), 0);
		check_equals_rebuild(what, step);
	}
	ck_assert_uint_gt(copies, 50);
}
END_TEST

/* A counted object in folder_id (hb_folders()'s) with this Date and peer. */
static void put_peer(int64_t folder_id, unsigned uid, int64_t date, const char *peer)
{
	struct msg_summary sum = {
		.message_id = (char *)"",
		.subject = (char *)"",
		.from = (char *)"",
		.to = (char *)"",
		.conversation_id = (char *)"",
		.contribution_id = (char *)"",
		.imdn_message_id = (char *)"",
		.date = date,
		.type = "message",
		.direction = (char *)"",
		.context = (char *)"",
		.in_reply_to = (char *)"",
		.peer = (char *)peer,
		.sender = (char *)"",
		.snippet = (char *)"",
		.imdn_ref = (char *)"",
		.status = (char *)"",
		.participants = (char *)"",
	};
	int64_t id;

	ck_assert_int_eq(store_message_insert(s,
					      &(struct store_message_row){ .folder_id = folder_id,
									   .uid = uid,
									   .flags = "",
									   .summary = &sum },
					      &id),
			 0);
}

/*
 * Peer is the peer of the newest counted object that has one, whatever
 * order the objects come in: here the newest has none, and an older one
 * with another peer than the row's comes last.  Folded in arrival order
 * the row kept DAVE; a rebuild gives ME.  Both paths: one object at a time
 * (conv_added_now()) and held back in a transaction (conv_note()).
 */
START_TEST(test_peer_out_of_order)
{
	char *peers;

	hb_folders(s);
	put_peer(11, 1, 600, DAVE);
	put_peer(11, 2, 1800, "");
	put_peer(11, 3, 1200, ME);
	ck_assert_int_eq(store_begin(s), 0);
	put_peer(14, 1, 600, DAVE);
	put_peer(14, 2, 1800, "");
	put_peer(14, 3, 1200, ME);
	put_peer(14, 4, 900, DAVE); /* older than ME's: not the peer */
	ck_assert_int_eq(store_commit(s), 0);
	peers = text_of(s, "SELECT group_concat(peer, ' ') FROM"
			   " (SELECT peer FROM conversation ORDER BY folder)");
	ck_assert_str_eq(peers, ME " " ME);
	free(peers);
	check_equals_rebuild("arrivals out of order", 0);
}
END_TEST

/*
 * A conversation whose session history folders are there, empty, is a
 * group from the first object of its conversation folder on: the row made
 * for that object (store_sql_conv_ensure) said is_group 0 until the next
 * recompute.  Both paths: one object at a time, and held back in a
 * transaction.
 */
START_TEST(test_group_row_made_by_first_object)
{
	char *v;

	hb_folders(s); /* FG with its sessions s1 and s2, no objects */
	put_peer(16, 1, 600, DAVE);
	v = text_of(s, "SELECT is_group FROM conversation WHERE folder = '" FG "'");
	ck_assert_str_eq(v, "1");
	free(v);
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE folder_id = 16"), 0);
	v = text_of(s, "SELECT count(*) FROM conversation WHERE folder = '" FG "'");
	ck_assert_str_eq(v, "0");
	free(v);
	ck_assert_int_eq(store_begin(s), 0);
	put_peer(16, 2, 600, DAVE);
	ck_assert_int_eq(store_commit(s), 0);
	v = text_of(s, "SELECT is_group FROM conversation WHERE folder = '" FG "'");
	ck_assert_str_eq(v, "1");
	free(v);
}
END_TEST

/*
 * A message without a Date that can be read (none, or one the parser
 * gives up) takes its internal date as Date (RFC 5256's sent date), by
 * Store and by the sync: it sorts where it arrived, moves LastActivity
 * and is the LastMessage.  A real Date of 1970-01-01 00:00:00 UTC stays
 * 0 (the oldest), stored as 0, not as NULL ("unknown").
 */
#define T0 1772442000 /* Mon, 2 Mar 2026 09:00:00 +0000 */
static int64_t store_chat(const char *date_line, int64_t internaldate)
{
	char obj[512];
	int64_t id;
	int n = snprintf(obj, sizeof(obj),
			 "%sFrom: " BOB "\r\nTo: " ME "\r\nConversation-ID: " C1
			 "\r\nContent-Type: Message/CPIM\r\n\r\n",
			 date_line);

	ck_assert_int_eq(cpmsync_op_store(cs, "a", F1, obj, (size_t)n, NULL, internaldate, &id), 0);
	return id;
}

START_TEST(test_undated_takes_internaldate)
{
	int64_t dated[3], undated, bogus, epoch, synced, fid;
	struct page p;
	struct conv c;
	bool is_zero;

	folder("Default");
	folder(F1);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
	for (int i = 0; i < 3; i++) {
		char d[64];

		snprintf(d, sizeof(d), "Date: Mon, 2 Mar 2026 09:%02d:00 +0000\r\n", 10 * (i + 1));
		dated[i] = store_chat(d, T0 + 3600);
	}
	epoch = store_chat("Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n", T0 + 50 * 60);
	undated = store_chat("", T0 + 40 * 60);
	c = get(C1);
	ck_assert_int_eq(c.last_message_id, undated);
	ck_assert_int_eq(c.last_activity, T0 + 40 * 60);
	bogus = store_chat("Date: someday\r\n", T0 + 45 * 60);
	c = get(C1);
	ck_assert_int_eq(c.last_message_id, bogus);
	ck_assert_int_eq(c.last_activity, T0 + 45 * 60);
	/* By the sync, in a transaction (the held-back conversation rows). */
	{
		static const char obj[] = "From: " BOB "\r\nTo: " ME "\r\nConversation-ID: " C1
					  "\r\nContent-Type: Message/CPIM\r\n\r\n";
		struct msg_summary sum;
		struct sync_new_message m = { .uid = 9,
					      .flags = "",
					      .size = sizeof(obj) - 1,
					      .internaldate = T0 + 47 * 60,
					      .summary = &sum };
		bool has_body, is_new;

		ck_assert_int_eq(msg_summary_parse(obj, sizeof(obj) - 1, &sum), 0);
		ck_assert_int_eq(store_begin(s), 0);
		ck_assert_int_eq(store_sync_new_message(s, fid, &m, &synced, &has_body, &is_new),
				 0);
		ck_assert_int_eq(store_commit(s), 0);
		msg_summary_free(&sum);
	}
	p = page(C1, 0, 0);
	ck_assert_uint_eq(p.n, 7);
	{
		int64_t want[] = { synced, bogus, undated, dated[2], dated[1], dated[0], epoch };

		for (size_t i = 0; i < 7; i++)
			ck_assert_msg(p.ids[i] == want[i], "%zu: %lld", i, (long long)p.ids[i]);
	}
	c = get(C1);
	ck_assert_int_eq(c.last_message_id, synced);
	ck_assert_int_eq(c.last_activity, T0 + 47 * 60);
	/* The Date read back: the internal date, or the real epoch (0, not
	 * NULL). */
	ck_assert_int_eq(msg(undated).date, T0 + 40 * 60);
	ck_assert_int_eq(msg(epoch).date, 0);
	ck_assert_int_eq(store_id_test(s, "SELECT 1 FROM message WHERE id = ?1 AND date IS 0",
				       epoch, &is_zero),
			 0);
	ck_assert(is_zero);
}
END_TEST

/* A chat message sent from addr (one of the account's own addresses
 * from then on), in the 1-to-1 chat's folder. */
static int sent_from(char obj[512], const char *addr)
{
	return snprintf(obj, 512,
			"Date: Mon, 2 Mar 2026 09:15:00 +0000\r\nFrom: %s\r\nTo: " BOB
			"\r\nConversation-ID: " C1 "\r\nMessage-Direction: sent"
			"\r\nContent-Type: Message/CPIM\r\n\r\n",
			addr);
}

static int64_t put_sent_from(const char *addr)
{
	char obj[512];
	int64_t id;
	int n = sent_from(obj, addr);

	folder(F1);
	ck_assert_int_eq(cpmsync_op_store(cs, "a", F1, obj, (size_t)n, NULL, 1000, &id), 0);
	return id;
}

/* The group's participants: a group-state object listing six, four own
 * addresses sent from (in no order), some a prefix of another. */
#define OWN_PARTICIPANTS "tel:+1555765432\n" BOB "\n" DAVE /* tel:+1555765432 is a prefix of ME */
static void put_own_group(void)
{
	static const char obj[] =
		"Date: Fri, 6 Mar 2026 14:00:00 +0000\r\nFrom: sip:conf@example.net\r\n"
		"To: " ME "\r\nContent-Type: application/group-state-object+xml\r\n"
		"Conversation-ID: " GRP "\r\nContribution-ID: grp-own-1\r\n\r\n"
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
		"<groupstate timestamp=\"2026-03-06T14:00:00Z\" "
		"lastfocussessionid=\"sip:conf@example.net\""
		" group-type=\"Closed\" contributionid=\"grp-own-1\">\r\n"
		"<participant comm-addr=\"tel:+1555765432\"/>\r\n"
		"<participant comm-addr=\"" ME "\"/>\r\n"
		"<participant comm-addr=\"sip:amy@example.net\"/>\r\n"
		"<participant comm-addr=\"" BOB "\"/>\r\n"
		"<participant comm-addr=\"sip:zed@example.net\"/>\r\n"
		"<participant comm-addr=\"" DAVE "\"/>\r\n"
		"</groupstate>\r\n";
	int64_t id;

	folder(FG);
	ck_assert_int_eq(cpmsync_op_store(cs, "a", FG, obj, sizeof(obj) - 1, NULL, 1000, &id), 0);
	put_sent_from("sip:zed@example.net");
	put_sent_from(ME);
	put_sent_from("tel:+1555"); /* a prefix of BOB and DAVE */
	put_sent_from("sip:amy@example.net");
}

/* Every own address is left out of Participants, and only those: the
 * lookup in the sorted set matches whole addresses. */
static const char *listed_participants(const struct conv_list *l, const char *cid)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->c[i].cid, cid) == 0)
			return l->c[i].participants;
	ck_abort_msg("%s not listed", cid);
	return NULL;
}

START_TEST(test_own_addresses_left_out)
{
	struct conv_list l;

	put_own_group();
	ck_assert_str_eq(get(GRP).participants, OWN_PARTICIPANTS);
	l = list();
	ck_assert_str_eq(listed_participants(&l, GRP), OWN_PARTICIPANTS);
}
END_TEST

/* The own addresses are kept between calls while the store is unchanged:
 * an address sent from becomes own at once, and is no longer once that
 * object is gone. */
START_TEST(test_own_addresses_follow_changes)
{
	struct conv_list l;
	int64_t id;

	put_own_group();
	l = list();
	ck_assert_str_eq(listed_participants(&l, GRP), OWN_PARTICIPANTS);
	ck_assert_str_eq(get(GRP).participants, OWN_PARTICIPANTS);

	id = put_sent_from(BOB);
	ck_assert_str_eq(get(GRP).participants, "tel:+1555765432\n" DAVE);
	l = list();
	ck_assert_str_eq(listed_participants(&l, GRP), "tel:+1555765432\n" DAVE);

	ck_assert_int_eq(cpmsync_op_delete(cs, &id, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", F1), 0);
	l = list();
	ck_assert_str_eq(listed_participants(&l, GRP), OWN_PARTICIPANTS);
	ck_assert_str_eq(get(GRP).participants, OWN_PARTICIPANTS);

	/* Seen inside a transaction that is rolled back: not kept. */
	{
		char obj[512];
		int n = sent_from(obj, BOB);
		struct msg_summary sum;
		struct sync_new_message m = {
			.uid = 900, .flags = "", .size = (uint64_t)n, .summary = &sum
		};
		bool has_body, is_new;
		int64_t fid;

		ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", F1, &fid), 0);
		ck_assert_int_eq(msg_summary_parse(obj, (size_t)n, &sum), 0);
		ck_assert_int_eq(store_begin(s), 0);
		ck_assert_int_eq(store_sync_new_message(s, fid, &m, &id, &has_body, &is_new), 0);
		ck_assert_str_eq(get(GRP).participants, "tel:+1555765432\n" DAVE);
		store_rollback(s);
		msg_summary_free(&sum);
	}
	ck_assert_str_eq(get(GRP).participants, OWN_PARTICIPANTS);
	l = list();
	ck_assert_str_eq(listed_participants(&l, GRP), OWN_PARTICIPANTS);
}
END_TEST

static Suite *suite(void)
{
	Suite *su = suite_create("store-conv");
	TCase *tc = tcase_create("conversations");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_list_page);
	tcase_add_test(tc, test_peer_folder_takes_conversation_id);
	tcase_add_test(tc, test_folder_named_otherwise);
	tcase_add_test(tc, test_reports_only_not_listed);
	tcase_add_test(tc, test_one_per_conversation_id);
	tcase_add_test(tc, test_cursor_gone);
	tcase_add_test(tc, test_conversation_gone);
	tcase_add_test(tc, test_conversation_gone_never_listed);
	tcase_add_test(tc, test_conversation_gone_reports_left);
	tcase_add_test(tc, test_report_names_no_conversation);
	tcase_add_test(tc, test_report_names_no_conversation_migration);
	tcase_add_test(tc, test_imdn_in_order);
	tcase_add_test(tc, test_imdn_before_message);
	tcase_add_test(tc, test_imdn_through_sync);
	tcase_add_test(tc, test_last_message_flags_changes);
	tcase_add_test(tc, test_rollback_to_mark);
	tcase_add_test(tc, test_header_first_then_body);
	tcase_add_test(tc, test_last_message_fields_changes);
	tcase_add_test(tc, test_paging);
	tcase_add_test(tc, test_paging_equal_dates);
	tcase_add_test(tc, test_paging_across_sessions);
	tcase_add_test(tc, test_flags_expunge_move);
	tcase_add_test(tc, test_deleted_not_counted);
	tcase_add_test(tc, test_last_message_and_stamp);
	tcase_add_test(tc, test_rename_delete_root);
	tcase_add_test(tc, test_incremental_equals_rebuild);
	tcase_add_test(tc, test_untyped_message);
	tcase_add_test(tc, test_state_summary_made_by_body);
	tcase_add_test(tc, test_held_back_equals_one_by_one);
	tcase_add_test(tc, test_recompute_once_per_transaction);
	tcase_add_test(tc, test_watched_bodies_keep_rows_held_back);
	tcase_add_test(tc, test_reclassified_once_per_transaction);
	tcase_add_test(tc, test_peer_out_of_order);
	tcase_add_test(tc, test_group_row_made_by_first_object);
	tcase_add_test(tc, test_undated_takes_internaldate);
	tcase_add_test(tc, test_own_addresses_left_out);
	tcase_add_test(tc, test_own_addresses_follow_changes);
	suite_add_tcase(su, tc);
	/* 400 steps, each checked against a recompute: ~2 s here, more under
	 * ASan and a loaded make check. */
	tc = tcase_create("random changes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_changes_equal_rebuild);
	suite_add_tcase(su, tc);
	/* 48 rounds of up to a hundred messages and a commit: ~3 s here. */
	tc = tcase_create("store full");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_full_database_keeps_mark);
	tcase_add_test(tc, test_raise_bump_held_back);
	suite_add_tcase(su, tc);
	return su;
}

TEST_MAIN(suite)
