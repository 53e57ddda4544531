/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Failed operations in the store (cpmsync/ops.h, store-schema.c version
 * 5): a refusal recorded on a journal row, listing, retrying, and
 * discarding with the local effect undone.
 */
#include <sqlite3.h>

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "store/journal.h"
#include "store/store-sync.h"
#include "store/store.h"
#include "testlib.h"

static char tmpdir[64], dbpath[96];
static struct cpmsync_store *cs;
static struct store *s;

static const char msg[] = "Message-ID: <new@x>\r\nSubject: s\r\n\r\nbody\r\n";

static void exec(const char *sql)
{
	ck_assert_int_eq(store_exec(s, sql), 0);
}

static const char *qs(const char *sql)
{
	return test_store_text(s, sql);
}

/* Account "a": INBOX (1) with UID 5 (message 1, "\Seen" on both sides),
 * Archive (2); account "b" without anything. */
static void setup(void)
{
	strcpy(tmpdir, "/tmp/test-failed-ops-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", tmpdir);
	ck_assert_int_eq(cpmsync_store_open(dbpath, 0, &cs, NULL), 0);
	s = store_from_public(cs);
	exec("INSERT INTO account (id, name) VALUES (1, 'a'), (2, 'b');"
	     "INSERT INTO folder (id, account_id, name, delimiter, server_name) VALUES"
	     " (1, 1, 'INBOX', '/', 'INBOX'), (2, 1, 'Archive', '/', 'Archive');"
	     "INSERT INTO message (id, folder_id, uid, size, message_id)"
	     " VALUES (1, 1, 5, 5, '<m1@x>');"
	     "INSERT INTO message_state (id, flags, server_flags) VALUES (1, '\\Seen', '\\Seen');");
}

static void teardown(void)
{
	cs = cpmsync_store_close(cs);
	test_rm_rf(tmpdir);
}

/* Makes the newest journal row a failed operation; its id. */
static int64_t fail_last(const char *code, const char *text)
{
	int64_t id = atoll(qs("SELECT max(id) FROM journal"));
	bool failed = false;

	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_journal_refused(s, id, code, text, true, 1700000000, &failed), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert(failed);
	return id;
}

/* What the walk gives, one line per operation. */
static char listed[1024];

static int list_cb(const struct cpmsync_failed_op *op, void *userdata)
{
	size_t len = strlen(listed);

	(void)userdata;
	snprintf(listed + len, sizeof(listed) - len, "%lld %s [%s] %s%lld %s|%s %u %lld%s",
		 (long long)op->id, op->operation, op->folder, op->n_message_ids ? "#" : "-",
		 op->n_message_ids ? (long long)op->message_ids[0] : 0LL, op->code, op->text,
		 op->tries, (long long)op->time, op->next_try ? "" : "\n");
	if (op->next_try) {
		len = strlen(listed);
		snprintf(listed + len, sizeof(listed) - len, " next %lld\n",
			 (long long)op->next_try);
	}
	return 0;
}

static const char *list(const char *account)
{
	listed[0] = '\0';
	ck_assert_int_eq(cpmsync_store_foreach_failed(cs, account, list_cb, NULL), 0);
	return listed;
}

static const char *list_pending(const char *account)
{
	listed[0] = '\0';
	ck_assert_int_eq(cpmsync_store_foreach_pending(cs, account, list_cb, NULL), 0);
	return listed;
}

START_TEST(test_refusal_recorded)
{
	const char *flags[] = { "\\Flagged", NULL };
	int64_t id, one = 1;
	bool failed = true;
	char expect[256];
	uint32_t n = 9;

	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, strlen(msg), NULL, 0, &id), 0);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &one, 1, flags, NULL), 0);
	ck_assert_int_eq(cpmsync_store_failed_count(cs, "a", &n), 0);
	ck_assert_uint_eq(n, 0);

	/* A refusal that may pass: queued, backed off, not failed. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_journal_refused(s, 1, "INUSE", "busy", false, 1000, &failed), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert(!failed);
	ck_assert_str_eq(qs("SELECT tries || ' ' || retry_after || ' ' || failed || ' ' || code"
			    " FROM journal WHERE id = 1"),
			 "1 1060 0 INUSE");
	ck_assert_str_eq(list("a"), "");

	fail_last("", "Invalid keyword");
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(
		store_journal_refused(s, 1, "NOPERM", "no insert right", true, 1700000001, &failed),
		0);
	ck_assert_int_eq(store_commit(s), 0);
	snprintf(expect, sizeof(expect),
		 "1 store [INBOX] #%lld NOPERM|no insert right 2 1700000001\n"
		 "2 flags [INBOX] #1 |Invalid keyword 1 1700000000\n",
		 (long long)id);
	ck_assert_str_eq(list("a"), expect);
	ck_assert_int_eq(cpmsync_store_failed_count(cs, "a", &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(list("b"), "");
	ck_assert_int_eq(cpmsync_store_foreach_failed(cs, "nobody", list_cb, NULL),
			 -CPMSYNC_E_NOT_FOUND);
	/* Replay skips them; the pending count does not hold them. */
	ck_assert_int_eq(store_journal_count(s, 1, &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_retry)
{
	struct journal_entry j;
	int64_t id, row;

	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, strlen(msg), NULL, 0, &id), 0);
	row = fail_last("NOPERM", "no");
	ck_assert_int_eq(store_journal_next(s, 1, INT64_MIN, &j), 0);
	ck_assert_int_eq(cpmsync_op_retry(cs, "b", row), -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_op_retry(cs, "a", row + 1), -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_op_retry(cs, "a", row), 0);
	ck_assert_str_eq(list("a"), "");
	ck_assert_str_eq(qs("SELECT tries || ' ' || failed || ' ' || coalesce(refused, '-')"
			    " FROM journal"),
			 "0 0 -");
	ck_assert_int_eq(store_journal_next(s, 1, INT64_MIN, &j), 1);
	ck_assert_int_eq(j.id, row);
	journal_entry_free_contents(&j);
	/* Not failed any more: nothing to retry. */
	ck_assert_int_eq(cpmsync_op_retry(cs, "a", row), -CPMSYNC_E_NOT_FOUND);
}
END_TEST

/*
 * A row refused "for now" waits for its retry_after (wall clock), unless
 * that lies further ahead than any back-off reaches: the clock went back
 * since it was set (a year ahead at a refusal, then NTP), and it would
 * have waited a year, not retriable (it is not a failed operation).
 */
START_TEST(test_retry_after_clock_went_back)
{
	struct journal_entry j;
	int64_t id, row, now = (int64_t)time(NULL);
	char sql[128];
	bool failed;

	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, strlen(msg), NULL, 0, &id), 0);
	row = strtoll(qs("SELECT max(id) FROM journal"), NULL, 10);
	ck_assert_int_eq(store_journal_refused(s, row, "OVERQUOTA", "full", false, now, &failed),
			 0);
	ck_assert(!failed);
	ck_assert_int_eq(store_journal_next(s, 1, INT64_MIN, &j), 0);
	snprintf(sql, sizeof(sql), "UPDATE journal SET retry_after = %lld",
		 (long long)(now + STORE_JOURNAL_BACKOFF_MAX - 5));
	exec(sql);
	ck_assert_int_eq(store_journal_next(s, 1, INT64_MIN, &j), 0);
	snprintf(sql, sizeof(sql), "UPDATE journal SET retry_after = %lld",
		 (long long)(now + 365 * 86400));
	exec(sql);
	ck_assert_int_eq(store_journal_next(s, 1, INT64_MIN, &j), 1);
	ck_assert_int_eq(j.id, row);
	journal_entry_free_contents(&j);
}
END_TEST

START_TEST(test_discard_store_and_flags)
{
	const char *flags[] = { "\\Flagged", NULL }, *answered[] = { "\\Answered", NULL };
	int64_t id, one = 1, row;

	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, strlen(msg), NULL, 0, &id), 0);
	row = fail_last("NOPERM", "no");
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "b", row), -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "a", row), 0);
	/* It never reached the server: gone. */
	ck_assert_str_eq(qs("SELECT count(*) FROM message"), "1");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");

	ck_assert_int_eq(cpmsync_op_set_flags(cs, &one, 1, flags, NULL), 0);
	ck_assert_str_eq(qs("SELECT flags FROM message_state WHERE id = 1"), "\\Flagged \\Seen");
	row = fail_last("", "Invalid keyword");
	/* A later change is journaled beside the failed row, not lost. */
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &one, 1, answered, NULL), 0);
	ck_assert_str_eq(qs("SELECT group_concat(op || ':' || failed) FROM journal"),
			 "flags:1,flags:0");
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "a", row), 0);
	ck_assert_str_eq(qs("SELECT flags FROM message_state WHERE id = 1"), "\\Seen");
	exec("DELETE FROM journal");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "a", row), -CPMSYNC_E_NOT_FOUND);
}
END_TEST

START_TEST(test_discard_move_and_expunge)
{
	const char *deleted[] = { "\\Deleted", NULL };
	int64_t one = 1, new_id, row;

	ck_assert_int_eq(cpmsync_op_move(cs, &one, 1, "Archive", &new_id), 0);
	ck_assert_str_eq(qs("SELECT removed FROM message WHERE id = 1"), "1");
	row = fail_last("NOPERM", "no right");
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "a", row), 0);
	/* Back where the server has it, the copy that never got there gone. */
	ck_assert_str_eq(qs("SELECT group_concat(id || ':' || folder_id || ':' || removed)"
			    " FROM message"),
			 "1:1:0");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");

	ck_assert_int_eq(cpmsync_op_set_flags(cs, &one, 1, deleted, NULL), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", "INBOX"), 0);
	ck_assert_str_eq(qs("SELECT removed FROM message WHERE id = 1"), "1");
	row = fail_last("CANNOT", "no");
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "a", row), 0);
	ck_assert_str_eq(qs("SELECT removed FROM message WHERE id = 1"), "0");
	ck_assert_str_eq(qs("SELECT op FROM journal"), "flags");
}
END_TEST

START_TEST(test_discard_folder_ops)
{
	int64_t fid, row;

	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Projects", &fid), 0);
	ck_assert_int_eq(cpmsync_op_store(cs, "a", "Projects", msg, strlen(msg), NULL, 0, NULL), 0);
	exec("UPDATE journal SET failed = 1 WHERE op = 'create_folder'");
	row = atoll(qs("SELECT id FROM journal WHERE op = 'create_folder'"));
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "a", row), 0);
	/* Never on the server: gone with what it held. */
	ck_assert_str_eq(qs("SELECT group_concat(name) FROM (SELECT name FROM folder ORDER BY id)"),
			 "INBOX,Archive");
	ck_assert_str_eq(qs("SELECT count(*) FROM message"), "1");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");

	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "a", "Archive", "Old"), 0);
	row = fail_last("NOPERM", "no");
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "a", row), 0);
	ck_assert_str_eq(qs("SELECT name FROM folder WHERE id = 2"), "Archive");

	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Archive"), 0);
	ck_assert_str_eq(qs("SELECT removed FROM folder WHERE id = 2"), "1");
	row = fail_last("NOPERM", "no");
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "a", row), 0);
	ck_assert_str_eq(qs("SELECT removed FROM folder WHERE id = 2"), "0");
	ck_assert_str_eq(qs("SELECT count(*) FROM journal"), "0");
}
END_TEST

START_TEST(test_discard_rename_restores_subfolders)
{
	/* The sub-folders renamed with it (on the server, and one whose
	 * CREATE is still queued) get their names under the old one back;
	 * a folder that took one of those names meanwhile refuses it. */
	int64_t row;

	exec("INSERT INTO folder (id, account_id, name, delimiter, server_name) VALUES"
	     " (3, 1, 'Archive/2025', '/', 'Archive/2025'),"
	     " (4, 1, 'Archive/2025/Q1', '/', 'Archive/2025/Q1'),"
	     " (5, 1, 'Archived', '/', 'Archived');");
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Archive/2026", NULL), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "a", "Archive", "Old/Archive"), 0);
	ck_assert_str_eq(qs("SELECT group_concat(name, ',') FROM (SELECT name FROM folder"
			    " ORDER BY id)"),
			 "INBOX,Old/Archive,Old/Archive/2025,Old/Archive/2025/Q1,Archived,"
			 "Old/Archive/2026");
	row = atoll(qs("SELECT id FROM journal WHERE op = 'rename_folder'"));
	exec("UPDATE journal SET failed = 1, code = 'NOPERM', refused = 'no', tries = 1"
	     " WHERE op = 'rename_folder'");

	/* "Archive/2025" was taken meanwhile: refused, nothing changed. */
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Archive/2025", NULL), 0);
	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "a", row), -EEXIST);
	ck_assert_str_eq(store_error(s), "cannot put folder \"Old/Archive\" back as \"Archive\":"
					 " folder \"Archive/2025\" exists now");
	ck_assert_str_eq(qs("SELECT name FROM folder WHERE id = 2"), "Old/Archive");
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Archive/2025"), 0);

	ck_assert_int_eq(cpmsync_op_discard_failed(cs, "a", row), 0);
	ck_assert_str_eq(qs("SELECT group_concat(name, ',') FROM (SELECT name FROM folder"
			    " ORDER BY id)"),
			 "INBOX,Archive,Archive/2025,Archive/2025/Q1,Archived,Archive/2026");
	ck_assert_str_eq(qs("SELECT group_concat(op, ',') FROM journal"), "create_folder");
}
END_TEST

/* The queued operations walk (cpmctl pending): the rows not failed, a
 * backed-off one with its last refusal; a failed one only in the other walk. */
START_TEST(test_pending)
{
	const char *flags[] = { "\\Flagged", NULL };
	int64_t id, one = 1;
	bool failed = true;
	char expect[256];

	ck_assert_str_eq(list_pending("a"), "");
	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, strlen(msg), NULL, 0, &id), 0);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &one, 1, flags, NULL), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_journal_refused(s, 1, "INUSE", "busy", false, 1000, &failed), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert(!failed);
	snprintf(expect, sizeof(expect),
		 "1 store [INBOX] #%lld INUSE|busy 1 1000 next %lld\n"
		 "2 flags [INBOX] #1 | 0 0\n",
		 (long long)id, (long long)(1000 + store_journal_backoff(1)));
	ck_assert_str_eq(list_pending("a"), expect);
	fail_last("", "Invalid keyword");
	snprintf(expect, sizeof(expect), "1 store [INBOX] #%lld INUSE|busy 1 1000 next %lld\n",
		 (long long)id, (long long)(1000 + store_journal_backoff(1)));
	ck_assert_str_eq(list_pending("a"), expect);
	ck_assert_str_eq(list("a"), "2 flags [INBOX] #1 |Invalid keyword 1 1700000000\n");
	ck_assert_str_eq(list_pending("b"), "");
	ck_assert_int_eq(cpmsync_store_foreach_pending(cs, "nobody", list_cb, NULL),
			 -CPMSYNC_E_NOT_FOUND);
}
END_TEST

/* In flight: queued rows marked as sent (attempts) with no answer read;
 * a refusal read, a failed row, and a row never sent are not. */
START_TEST(test_in_flight_count)
{
	const char *flags[] = { "\\Flagged", NULL };
	int64_t id, one = 1;
	uint32_t n = 99;
	bool failed = true;

	ck_assert_int_eq(cpmsync_store_in_flight_count(cs, "a", &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, strlen(msg), NULL, 0, &id), 0);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &one, 1, flags, NULL), 0);
	ck_assert_int_eq(cpmsync_store_in_flight_count(cs, "a", &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_journal_attempt(s, 1, NULL), 0);
	ck_assert_int_eq(store_journal_attempt(s, 2, NULL), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(cpmsync_store_in_flight_count(cs, "a", &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_journal_refused(s, 1, "INUSE", "busy", false, 1000, &failed), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(cpmsync_store_in_flight_count(cs, "a", &n), 0);
	ck_assert_uint_eq(n, 1);
	fail_last("", "Invalid keyword");
	ck_assert_int_eq(cpmsync_store_in_flight_count(cs, "a", &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(cpmsync_store_in_flight_count(cs, "b", &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(cpmsync_store_in_flight_count(cs, "nobody", &n), -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_store_in_flight_count(cs, "a", NULL), -EINVAL);
}
END_TEST

START_TEST(test_contract_names)
{
	ck_assert_str_eq(journal_op_contract_name(JOURNAL_OP_APPEND, NULL), "store");
	ck_assert_str_eq(journal_op_contract_name(JOURNAL_OP_CREATE_FOLDER, NULL), "create-folder");
	ck_assert_str_eq(journal_op_contract_name(JOURNAL_OP_SET_ACL, "bob\nlr"), "set-acl");
	ck_assert_str_eq(journal_op_contract_name(JOURNAL_OP_SET_ACL, "bob\n"), "delete-acl");
	ck_assert_str_eq(journal_op_contract_name(JOURNAL_OP_SET_METADATA, "/private/x\n"),
			 "set-metadata");
	ck_assert_str_eq(journal_op_contract_name(JOURNAL_OP_ANNOTATION, NULL), "set-annotation");
	ck_assert_ptr_null(journal_op_contract_name(_JOURNAL_OP_MAX, NULL));
}
END_TEST

/* What RemoveAccount saves: every journal row, queued and failed, with the
 * message, the source of a copy, a rename's new name, a metadata entry;
 * the in-flight mark; a body readable only for a stored, visible one. */
static char unsent[2048];

static int unsent_cb(const struct cpmsync_unsent_change *c, void *userdata)
{
	size_t len = strlen(unsent);

	(void)userdata;
	snprintf(unsent + len, sizeof(unsent) - len,
		 "%s [%s] uid %u %s \"%s\" {%s|%s} src [%s] %u arg [%s]%s%s%s%s%s\n", c->operation,
		 c->folder, c->uid, c->message_id_header, c->subject, c->flags, c->server_flags,
		 c->source_folder, c->source_uid, c->argument, c->has_body ? " body" : "",
		 c->in_flight ? " in-flight" : "", c->failed ? " failed " : "",
		 c->failed ? c->code : "", c->failed ? c->text : "");
	return 0;
}

START_TEST(test_unsent)
{
	const char *flags[] = { "\\Flagged", NULL };
	int64_t id, one = 1, copy;

	unsent[0] = '\0';
	ck_assert_int_eq(cpmsync_store_foreach_unsent(cs, "b", unsent_cb, NULL), 0);
	ck_assert_str_eq(unsent, "");
	ck_assert_int_eq(cpmsync_store_foreach_unsent(cs, "nobody", unsent_cb, NULL),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg, strlen(msg), flags, 0, &id), 0);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &one, 1, flags, NULL), 0);
	fail_last("CANNOT", "no keywords here");
	ck_assert_int_eq(cpmsync_op_copy(cs, &one, 1, "Archive", &copy), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "a", "Archive", "Old"), 0);
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "INBOX", "/private/comment", "hi"), 0);
	exec("UPDATE journal SET attempts = 1 WHERE op = 'append'");
	ck_assert_int_eq(cpmsync_store_foreach_unsent(cs, "a", unsent_cb, NULL), 0);
	ck_assert_str_eq(
		unsent,
		"store [INBOX] uid 0 <new@x> \"s\" {\\Flagged|} src [] 0 arg [] body in-flight\n"
		"flags [INBOX] uid 5 <m1@x> \"\" {\\Flagged \\Seen|\\Seen} src [] 0 arg [] failed "
		"CANNOTno keywords here\n"
		"copy [Old] uid 0 <m1@x> \"\" {\\Flagged \\Seen|} src [INBOX] 5 arg []\n"
		"rename-folder [Old] uid 0  \"\" {|} src [] 0 arg [Old]\n"
		"set-metadata [INBOX] uid 0  \"\" {|} src [] 0 arg [/private/comment hi]\n");
	/* The message deleted here after its APPEND was sent: no body to save. */
	ck_assert_int_eq(cpmsync_op_delete(cs, &id, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", "INBOX"), 0);
	unsent[0] = '\0';
	ck_assert_int_eq(cpmsync_store_foreach_unsent(cs, "a", unsent_cb, NULL), 0);
	ck_assert_str_eq(
		unsent,
		"store [INBOX] uid 0 <new@x> \"s\" {\\Deleted \\Flagged|} src [] 0 arg [] "
		"in-flight\n"
		"flags [INBOX] uid 5 <m1@x> \"\" {\\Flagged \\Seen|\\Seen} src [] 0 arg [] failed "
		"CANNOTno keywords here\n"
		"copy [Old] uid 0 <m1@x> \"\" {\\Flagged \\Seen|} src [INBOX] 5 arg []\n"
		"rename-folder [Old] uid 0  \"\" {|} src [] 0 arg [Old]\n"
		"set-metadata [INBOX] uid 0  \"\" {|} src [] 0 arg [/private/comment hi]\n"
		"expunge [INBOX] uid 0 <new@x> \"s\" {\\Deleted \\Flagged|} src [] 0 arg []\n");
}
END_TEST

static Suite *failed_ops_suite(void)
{
	Suite *su = suite_create("failed-ops");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_refusal_recorded);
	tcase_add_test(tc, test_retry);
	tcase_add_test(tc, test_retry_after_clock_went_back);
	tcase_add_test(tc, test_discard_store_and_flags);
	tcase_add_test(tc, test_discard_move_and_expunge);
	tcase_add_test(tc, test_discard_folder_ops);
	tcase_add_test(tc, test_discard_rename_restores_subfolders);
	tcase_add_test(tc, test_pending);
	tcase_add_test(tc, test_in_flight_count);
	tcase_add_test(tc, test_unsent);
	tcase_add_test(tc, test_contract_names);
	suite_add_tcase(su, tc);
	return su;
}

TEST_MAIN(failed_ops_suite)
