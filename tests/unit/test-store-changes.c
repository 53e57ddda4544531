/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Change tracking (cpmsync_store_watch / take_changes): what each kind of
 * write records, that rolled-back work records nothing and that nothing is
 * handed out in the middle of a transaction; plus the refusal record and
 * cpmsync_op_discard, and the ACL operation's journal row.
 */
#include <sqlite3.h>

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpmsync/conversation.h>
#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "store/store-sync.h"
#include "testlib.h"
#include "util/msg-summary.h"

static char tmpdir[] = "/tmp/test-store-changes-XXXXXX";
static char dbpath[sizeof(tmpdir) + 32];
static struct cpmsync_store *cs;
static struct store *s;
static int notified;

static const char msg[] = "Message-ID: <x@example.org>\r\nSubject: hi\r\n\r\nbody\r\n";

static void notify(void *userdata)
{
	(void)userdata;
	notified++;
}

static void setup(void)
{
	char *err = NULL;

	strcpy(tmpdir, "/tmp/test-store-changes-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", tmpdir);
	ck_assert_int_eq(cpmsync_store_open(dbpath, 0, &cs, &err), 0);
	s = store_from_public(cs);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (id, name) VALUES (1, 'a');"
				       "INSERT INTO folder (id, account_id, name, server_name, "
				       "delimiter, uidvalidity)"
				       " VALUES (1, 1, 'INBOX', 'INBOX', '/', 7), (2, 1, "
				       "'Archive', 'Archive', '/', 8);"),
			 0);
	notified = 0;
	ck_assert_int_eq(cpmsync_store_watch(cs, notify, NULL), 0);
}

static void teardown(void)
{
	cs = cpmsync_store_close(cs);
	test_rm_rf(tmpdir);
}

/* Takes everything; returns how many. */
static int take(struct cpmsync_change *out, size_t max)
{
	return cpmsync_store_take_changes(cs, out, max);
}

static void expect(const struct cpmsync_change *c, enum cpmsync_change_kind kind, int64_t folder,
		   int64_t id)
{
	ck_assert_int_eq(c->kind, kind);
	ck_assert_int_eq(c->folder_id, folder);
	ck_assert_int_eq(c->message_id, id);
}

START_TEST(test_ops_record_changes)
{
	struct cpmsync_change c[16];
	const char *seen[] = { "\\Seen", NULL };
	int64_t id, moved;

	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, sizeof(msg) - 1, NULL, 0, &id), 0);
	ck_assert_int_gt(notified, 0);
	/* The message, its body with it (the row is inserted with has_body
	 * set): added, not added and then changed. */
	ck_assert_int_eq(take(c, 16), 1);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_ADDED, 1, id);
	ck_assert_int_eq(take(c, 16), 0);

	ck_assert_int_eq(c[0].fields, 0);

	ck_assert_int_eq(cpmsync_op_set_flags(cs, &id, 1, seen, NULL), 0);
	ck_assert_int_eq(take(c, 16), 1);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_CHANGED, 1, id);
	ck_assert_int_eq(c[0].fields, CPMSYNC_CHANGED_FLAGS);

	ck_assert_int_eq(cpmsync_op_move(cs, &id, 1, "Archive", &moved), 0);
	ck_assert_int_ge(take(c, 16), 2);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "New", NULL), 0);
	ck_assert_int_eq(take(c, 16), 1);
	ck_assert_int_eq(c[0].kind, CPMSYNC_CHANGE_FOLDER_ADDED);
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "New"), 0);
	ck_assert_int_eq(take(c, 16), 1);
	ck_assert_int_eq(c[0].kind, CPMSYNC_CHANGE_FOLDER_REMOVED);
}
END_TEST

START_TEST(test_move_is_removed_and_added)
{
	struct cpmsync_change c[16];
	int64_t id, moved;
	bool left = false, arrived = false;
	int n;

	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, sizeof(msg) - 1, NULL, 0, &id), 0);
	take(c, 16);
	ck_assert_int_eq(cpmsync_op_move(cs, &id, 1, "Archive", &moved), 0);
	n = take(c, 16);
	for (int i = 0; i < n; i++) {
		if (c[i].kind == CPMSYNC_CHANGE_MESSAGE_REMOVED && c[i].folder_id == 1 &&
		    c[i].message_id == id)
			left = true;
		if (c[i].kind == CPMSYNC_CHANGE_MESSAGE_ADDED && c[i].folder_id == 2 &&
		    c[i].message_id == moved)
			arrived = true;
	}
	ck_assert(left);
	ck_assert(arrived);
}
END_TEST

START_TEST(test_rollback_records_nothing)
{
	struct cpmsync_change c[4];
	int64_t id;

	/* An unknown folder fails after nothing; a failed store leaves nothing. */
	ck_assert_int_eq(cpmsync_op_store(cs, "a", "Nope", msg, sizeof(msg) - 1, NULL, 0, &id),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(take(c, 4), 0);
	/* A transaction rolled back after writing. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (folder_id, uid) VALUES (1, 3)"), 0);
	ck_assert_int_eq(store_rollback(s), 0);
	ck_assert_int_eq(take(c, 4), 0);
}
END_TEST

START_TEST(test_nothing_handed_out_inside_a_transaction)
{
	struct cpmsync_change c[4];

	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (folder_id, uid) VALUES (1, 3)"), 0);
	ck_assert_int_eq(take(c, 4), 0);
	ck_assert_int_eq(notified, 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(notified, 1);
	ck_assert_int_eq(take(c, 4), 1);
	ck_assert_int_eq(c[0].kind, CPMSYNC_CHANGE_MESSAGE_ADDED);
	/* Limited takes hand out the rest later, in order. */
	ck_assert_int_eq(
		store_exec(s, "INSERT INTO message (folder_id, uid) VALUES (1, 4), (1, 5), (1, 6)"),
		0);
	ck_assert_int_eq(take(c, 2), 2);
	ck_assert_int_eq(take(c, 2), 1);
	ck_assert_int_eq(take(c, 2), 0);
}
END_TEST

START_TEST(test_server_side_flags_and_expunge)
{
	struct cpmsync_change c[8];

	ck_assert_int_eq(store_exec(s, "INSERT INTO message (id, folder_id, uid) VALUES (50, 1, 9);"
				       "INSERT INTO message_state (id) VALUES (50)"),
			 0);
	take(c, 8);
	ck_assert_int_eq(store_exec(s, "UPDATE message_state SET flags = '\\Seen' WHERE id = 50"),
			 0);
	ck_assert_int_eq(take(c, 8), 1);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_CHANGED, 1, 50);
	/* Unchanged values record nothing. */
	ck_assert_int_eq(store_exec(s, "UPDATE message_state SET flags = '\\Seen' WHERE id = 50"),
			 0);
	ck_assert_int_eq(take(c, 8), 0);
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE id = 50"), 0);
	ck_assert_int_eq(take(c, 8), 1);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_REMOVED, 1, 50);
	ck_assert_int_eq(store_exec(s, "UPDATE folder SET highestmodseq = 9 WHERE id = 2"), 0);
	ck_assert_int_eq(take(c, 8), 1);
	expect(&c[0], CPMSYNC_CHANGE_FOLDER_CHANGED, 2, 0);
	ck_assert_str_eq(cpmsync_store_folder_account(cs, 2), "a");
	ck_assert_ptr_null(cpmsync_store_folder_account(cs, 99));
}
END_TEST

/*
 * A message changed says which of its fields did (MessagesChanged carries
 * only those): one bit per column a summary dict shows, flags, the
 * snippet, annotations; several columns in one UPDATE, several bits.
 */
START_TEST(test_changed_fields)
{
	static const struct {
		const char *sql;
		uint32_t fields;
	} cases[] = {
		{ "UPDATE message_state SET flags = '\\Flagged' WHERE id = 60",
		  CPMSYNC_CHANGED_FLAGS },
		{ "UPDATE message SET uid = 12 WHERE id = 60", CPMSYNC_CHANGED_UID },
		{ "UPDATE message SET has_body = 1 WHERE id = 60", CPMSYNC_CHANGED_HAS_BODY },
		{ "UPDATE message SET status = 'delivered' WHERE id = 60", CPMSYNC_CHANGED_STATUS },
		{ "UPDATE message SET type = 'message', direction = 'sent', context = 'x',"
		  " in_reply_to = 'c1' WHERE id = 60",
		  CPMSYNC_CHANGED_TYPE | CPMSYNC_CHANGED_DIRECTION | CPMSYNC_CHANGED_CONTEXT |
			  CPMSYNC_CHANGED_IN_REPLY_TO },
		{ "UPDATE message SET uid = 13, has_body = 0 WHERE id = 60",
		  CPMSYNC_CHANGED_UID | CPMSYNC_CHANGED_HAS_BODY },
		{ "UPDATE summary SET snippet = 'hello' WHERE id = 60", CPMSYNC_CHANGED_SNIPPET },
		{ "INSERT INTO annotation (message_id, entry, shared, local)"
		  " VALUES (60, '/comment', 0, 'x')",
		  CPMSYNC_CHANGED_ANNOTATIONS },
		/* The server's date in place of the one an APPEND asked for. */
		{ "UPDATE message SET internaldate = 1796700000, date = 1796700000 WHERE id = 60",
		  CPMSYNC_CHANGED_INTERNAL_DATE | CPMSYNC_CHANGED_DATE },
		/* What no summary shows, or no change at all: nothing. */
		{ "UPDATE message SET uid = 13, size = 99 WHERE id = 60", 0 },
		{ "UPDATE summary SET snippet = 'hello', subject = 's' WHERE id = 60", 0 },
	};
	struct cpmsync_change c[8];

	ck_assert_int_eq(store_exec(s,
				    "INSERT INTO message (id, folder_id, uid) VALUES (60, 1, 11);"
				    "INSERT INTO message_state (id) VALUES (60);"
				    "INSERT INTO summary (id, snippet) VALUES (60, 'hi')"),
			 0);
	take(c, 8);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(store_exec(s, cases[i].sql), 0);
		if (!cases[i].fields) {
			ck_assert_msg(take(c, 8) == 0, "%s: recorded", cases[i].sql);
			continue;
		}
		ck_assert_msg(take(c, 8) == 1, "%s: not one row", cases[i].sql);
		expect(&c[0], CPMSYNC_CHANGE_MESSAGE_CHANGED, 1, 60);
		ck_assert_msg(c[0].fields == cases[i].fields, "%s: fields %#x, not %#x",
			      cases[i].sql, (unsigned)c[0].fields, (unsigned)cases[i].fields);
	}
}
END_TEST

/*
 * A message whose first summary is made after it (stored from its header
 * alone, with nothing to summarise; its body's CPM parse later): the
 * snippet it brings is announced, as an UPDATE's is.
 */
START_TEST(test_first_summary_snippet)
{
	struct msg_summary sum = { .type = "message", .snippet = (char *)"hello there" };
	struct cpmsync_change c[8];

	ck_assert_int_eq(store_exec(s, "INSERT INTO message (id, folder_id, uid, type)"
				       " VALUES (61, 1, 12, 'message');"
				       "INSERT INTO message_state (id) VALUES (61)"),
			 0);
	take(c, 8);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_message_set_cpm(s, 61, &sum), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(take(c, 8), 1);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_CHANGED, 1, 61);
	ck_assert_uint_eq(c[0].fields, CPMSYNC_CHANGED_SNIPPET);
	/* Written again, the same: nothing new. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_message_set_cpm(s, 61, &sum), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(take(c, 8), 0);
}
END_TEST

START_TEST(test_refused_and_discard)
{
	int64_t id, jid;
	char *reason = NULL;
	uint32_t n;

	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, sizeof(msg) - 1, NULL, 0, &id), 0);
	ck_assert_int_eq(cpmsync_store_message_refused(cs, id, &reason), 0);
	ck_assert_ptr_null(reason);
	/* An attempt that may have reached the server cannot be taken back. */
	jid = store_last_insert_id(s);
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET attempts = 1 WHERE op = 'append'"), 0);
	ck_assert_int_eq(cpmsync_op_discard(cs, id), -EBUSY);
	/* Refused, to be tried again: not reported yet. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET refused = 'busy', code = 'INUSE',"
				       " tries = 1 WHERE op = 'append'"),
			 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(cpmsync_store_message_refused(cs, id, &reason), 0);
	ck_assert_ptr_null(reason);
	/* Refused for good (a failed operation): reported with its code,
	 * and then it can be taken back. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET refused = 'too big', code = 'TOOBIG',"
				       " failed = 1 WHERE op = 'append'"),
			 0);
	ck_assert_int_eq(store_commit(s), 0);
	(void)jid;
	ck_assert_int_eq(cpmsync_store_message_refused(cs, id, &reason), 1);
	ck_assert_str_eq(reason, "[TOOBIG] too big");
	free(reason);
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET code = '' WHERE op = 'append'"), 0);
	ck_assert_int_eq(cpmsync_store_message_refused(cs, id, &reason), 1);
	ck_assert_str_eq(reason, "too big");
	free(reason);
	/* Never sent: the CREATE of its folder failed (store_journal_blocked()).
	 * The CREATE's own reason comes with it: that is what to change. */
	ck_assert_int_eq(
		store_exec(
			s,
			"UPDATE journal SET code = NULL, refused = 'depends on failed operation 7"
			" (create-folder INBOX)' WHERE op = 'append';"
			"INSERT INTO journal (id, account_id, op, folder_id, refused, code, failed)"
			" SELECT 7, account_id, 'create_folder', id, 'Character not allowed in"
			" mailbox name: ''.''', 'CANNOT', 1 FROM folder WHERE name = 'INBOX'"
			" AND account_id = (SELECT id FROM account WHERE name = 'a')"),
		0);
	ck_assert_int_eq(cpmsync_store_message_refused(cs, id, &reason), 1);
	ck_assert_str_eq(reason, "depends on failed operation 7 (create-folder INBOX): [CANNOT] "
				 "Character not allowed in mailbox name: '.'");
	free(reason);
	ck_assert_int_eq(store_exec(s, "DELETE FROM journal WHERE id = 7"), 0);
	ck_assert_int_eq(cpmsync_store_message_refused(cs, id, &reason), 1);
	ck_assert_str_eq(reason, "depends on failed operation 7 (create-folder INBOX)");
	free(reason);
	ck_assert_int_eq(cpmsync_op_discard(cs, id), 0);
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, "a", &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(cpmsync_store_message_refused(cs, id, &reason), -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_op_discard(cs, id), -CPMSYNC_E_NOT_FOUND);
	/* On the server: never. */
	ck_assert_int_eq(
		store_exec(s, "INSERT INTO message (id, folder_id, uid) VALUES (60, 1, 9)"), 0);
	ck_assert_int_eq(cpmsync_op_discard(cs, 60), -EBUSY);
}
END_TEST

START_TEST(test_set_acl)
{
	uint32_t n;

	ck_assert_int_eq(cpmsync_op_set_acl(cs, "a", "INBOX", "bob", "lrs"), 0);
	ck_assert_int_eq(cpmsync_op_set_acl(cs, "a", "INBOX", "bob", ""), 0);
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, "a", &n), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(cpmsync_op_set_acl(cs, "a", "INBOX", "bob", "L R"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(cpmsync_store_error(cs), "rights"));
	ck_assert_int_eq(cpmsync_op_set_acl(cs, "a", "INBOX", "", "lr"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(cpmsync_store_error(cs), "identifier"));
	ck_assert_int_eq(cpmsync_op_set_acl(cs, "a", "Nope", "bob", "lr"), -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, "a", &n), 0);
	ck_assert_int_eq(n, 2);
}
END_TEST

/*
 * Another connection's changes, as the daemon's handle (CPMSYNC_STORE_DAEMON)
 * takes them: cs is an app's (opened without it), which records what it
 * commits in foreign_change for the daemon, beside its own watch.
 */
static int daemon_notified;

static void daemon_notify(void *userdata)
{
	(void)userdata;
	daemon_notified++;
}

static struct cpmsync_store *daemon_open(void)
{
	struct cpmsync_store *d = NULL;
	char *err = NULL;

	ck_assert_int_eq(cpmsync_store_open(dbpath, CPMSYNC_STORE_DAEMON, &d, &err), 0);
	ck_assert_ptr_null(err);
	daemon_notified = 0;
	ck_assert_int_eq(cpmsync_store_watch(d, daemon_notify, NULL), 0);
	return d;
}

static const char *foreign_rows(struct cpmsync_store *h)
{
	return test_store_text(store_from_public(h),
			       "SELECT (SELECT count(*) FROM foreign_change) || ' '"
			       " || (SELECT count(*) FROM foreign_conv_note)");
}

/*
 * A daemon without D-Bus (cpm-syncd --no-dbus) never watches, so nothing
 * takes what apps record for it: cpmsync_store_forget_changes() drops it
 * (the daemon's 2 s store check calls it).  On an app's handle, or a
 * watching daemon's, it does nothing.
 */
START_TEST(test_unwatched_daemon_forgets_changes)
{
	const char *seen[] = { "\\Seen", NULL };
	struct cpmsync_store *d = NULL, *w;
	char *err = NULL;
	int64_t id;

	ck_assert_int_eq(cpmsync_store_open(dbpath, CPMSYNC_STORE_DAEMON, &d, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, sizeof(msg) - 1, NULL, 0, &id), 0);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &id, 1, seen, NULL), 0);
	ck_assert_str_eq(foreign_rows(d), "4 0"); /* the setup's two folders too */
	ck_assert_int_eq(cpmsync_store_forget_changes(cs), 0);
	ck_assert_str_eq(foreign_rows(d), "4 0");
	ck_assert_int_eq(cpmsync_store_forget_changes(d), 0);
	ck_assert_str_eq(foreign_rows(d), "0 0");
	ck_assert_int_eq(cpmsync_store_forget_changes(d), 0); /* none: no write */
	cpmsync_store_close(d);

	/* A watching daemon's are for its takes. */
	w = daemon_open();
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &id, 1, NULL, seen), 0);
	ck_assert_str_eq(foreign_rows(w), "1 0");
	ck_assert_int_eq(cpmsync_store_forget_changes(w), 0);
	ck_assert_str_eq(foreign_rows(w), "1 0");
	cpmsync_store_close(w);
}
END_TEST

START_TEST(test_others_changes_reach_the_daemon)
{
	struct cpmsync_change c[16];
	const char *seen[] = { "\\Seen", NULL };
	struct cpmsync_store *d;
	int64_t id, id2, fid;

	/* The setup's two folders, recorded before the daemon watched:
	 * nobody listened, dropped when its watch begins. */
	ck_assert_str_eq(foreign_rows(cs), "2 0");
	d = daemon_open();
	ck_assert_str_eq(foreign_rows(d), "0 0");
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 16), 0);

	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, sizeof(msg) - 1, NULL, 0, &id), 0);
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 16), 1);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_ADDED, 1, id);
	ck_assert_int_eq(c[0].fields, 0);
	ck_assert_str_eq(foreign_rows(d), "0 0");
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 16), 0);

	ck_assert_int_eq(cpmsync_op_set_flags(cs, &id, 1, seen, NULL), 0);
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 16), 1);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_CHANGED, 1, id);
	ck_assert_int_eq(c[0].fields, CPMSYNC_CHANGED_FLAGS);

	ck_assert_int_eq(cpmsync_op_delete(cs, &id, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", "INBOX"), 0);
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 16), 2);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_CHANGED, 1, id);
	ck_assert_int_eq(c[0].fields, CPMSYNC_CHANGED_FLAGS);
	expect(&c[1], CPMSYNC_CHANGE_MESSAGE_REMOVED, 1, id);

	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "New", &fid), 0);
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 16), 1);
	expect(&c[0], CPMSYNC_CHANGE_FOLDER_ADDED, fid, 0);

	/* The daemon's own: its watch as before, nothing for another. */
	ck_assert_int_eq(cpmsync_op_store(d, "a", "INBOX", msg, sizeof(msg) - 1, NULL, 0, &id2), 0);
	ck_assert_str_eq(foreign_rows(d), "0 0");
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 16), 1);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_ADDED, 1, id2);
	/* Only the daemon's own commits call notify: it looks for others'. */
	ck_assert_int_eq(daemon_notified, 1);
	/* The app's own watch saw its changes all along. */
	ck_assert_int_gt(take(c, 16), 0);
	cpmsync_store_close(d);
}
END_TEST

/* More than a take holds: the rest at the next, with no commit between;
 * and the app's, before the daemon's own of the same round. */
START_TEST(test_others_changes_in_rounds)
{
	struct cpmsync_change c[16];
	const char *flagged[] = { "\\Flagged", NULL };
	struct cpmsync_store *d = daemon_open();
	int64_t id[3], own;

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(
			cpmsync_op_store(cs, "a", "Archive", msg, sizeof(msg) - 1, NULL, 0, &id[i]),
			0);
	ck_assert_int_eq(cpmsync_op_store(d, "a", "INBOX", msg, sizeof(msg) - 1, NULL, 0, &own), 0);
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 2), 2);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_ADDED, 2, id[0]);
	expect(&c[1], CPMSYNC_CHANGE_MESSAGE_ADDED, 2, id[1]);
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 2), 2);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_ADDED, 2, id[2]);
	expect(&c[1], CPMSYNC_CHANGE_MESSAGE_ADDED, 1, own);
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 2), 0);
	ck_assert_str_eq(foreign_rows(d), "0 0");

	/* Nothing is taken inside the daemon's transaction (it may roll
	 * back; the rows wait). */
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &id[0], 1, flagged, NULL), 0);
	ck_assert_int_eq(store_begin(store_from_public(d)), 0);
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 16), 0);
	ck_assert_int_eq(store_commit(store_from_public(d)), 0);
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 16), 1);
	expect(&c[0], CPMSYNC_CHANGE_MESSAGE_CHANGED, 2, id[0]);
	ck_assert_int_eq(c[0].fields, CPMSYNC_CHANGED_FLAGS);
	cpmsync_store_close(d);
}
END_TEST

static int gone_cb(const char *account, const char *cid, void *userdata)
{
	char *out = userdata;

	snprintf(out + strlen(out), 64, "%s %s;", account, cid);
	return 0;
}

/* A conversation the app changes: ConversationChanged, and, once it has
 * no message left, ConversationRemoved through the notes it recorded. */
START_TEST(test_others_conversations)
{
	struct cpmsync_change c[16];
	struct cpmsync_store *d = daemon_open();
	char gone[256] = "";
	int64_t conv;

	ck_assert_int_eq(
		store_exec(s,
			   "INSERT INTO conversation (account_id, folder,"
			   " conversation_id, messages, version) VALUES (1, 'c1', 'cid-1', 1, 1)"),
		0);
	conv = store_last_insert_id(s);
	ck_assert_str_eq(foreign_rows(cs), "1 1");
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 16), 1);
	expect(&c[0], CPMSYNC_CHANGE_CONVERSATION_CHANGED, 0, conv);
	ck_assert_int_eq(cpmsync_store_take_conversations_gone(d, gone_cb, gone), 0);
	ck_assert_str_eq(gone, "");

	ck_assert_int_eq(store_exec(s, "UPDATE conversation SET messages = 0, version = 2"
				       " WHERE conversation_id = 'cid-1'"),
			 0);
	ck_assert_int_eq(cpmsync_store_take_changes(d, c, 16), 1);
	expect(&c[0], CPMSYNC_CHANGE_CONVERSATION_CHANGED, 0, conv);
	ck_assert_str_eq(foreign_rows(d), "0 0");
	ck_assert_int_eq(cpmsync_store_take_conversations_gone(d, gone_cb, gone), 1);
	ck_assert_str_eq(gone, "a cid-1;");
	cpmsync_store_close(d);
}
END_TEST

/* A read-only handle records nothing (and cannot be the daemon's). */
START_TEST(test_daemon_flag_read_write_only)
{
	struct cpmsync_store *h = NULL;

	ck_assert_int_eq(
		cpmsync_store_open(dbpath, CPMSYNC_STORE_READONLY | CPMSYNC_STORE_DAEMON, &h, NULL),
		-EINVAL);
	ck_assert_ptr_null(h);
}
END_TEST

static Suite *suite(void)
{
	Suite *su = suite_create("store-changes");
	TCase *tc = tcase_create("changes");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ops_record_changes);
	tcase_add_test(tc, test_move_is_removed_and_added);
	tcase_add_test(tc, test_rollback_records_nothing);
	tcase_add_test(tc, test_nothing_handed_out_inside_a_transaction);
	tcase_add_test(tc, test_server_side_flags_and_expunge);
	tcase_add_test(tc, test_changed_fields);
	tcase_add_test(tc, test_first_summary_snippet);
	tcase_add_test(tc, test_refused_and_discard);
	tcase_add_test(tc, test_set_acl);
	tcase_add_test(tc, test_others_changes_reach_the_daemon);
	tcase_add_test(tc, test_unwatched_daemon_forgets_changes);
	tcase_add_test(tc, test_others_changes_in_rounds);
	tcase_add_test(tc, test_others_conversations);
	tcase_add_test(tc, test_daemon_flag_read_write_only);
	suite_add_tcase(su, tc);
	return su;
}

TEST_MAIN(suite)
