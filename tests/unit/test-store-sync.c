/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine's store operations (store/store-sync.c): flag merges with
 * pending local changes, re-matching after a UIDVALIDITY change, expunges,
 * folder deletion/re-creation and the journal.
 */
#include <sqlite3.h>

#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

#include "store/store-sync.h"
#include "testlib.h"

static char tmpdir[64];
static struct store *s;
static int64_t acc_id, inbox;

static void setup(void)
{
	char path[128];

	strcpy(tmpdir, "/tmp/test-store-sync-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/store.db", tmpdir);
	ck_assert_int_eq(store_open(path, 0, &s, NULL), 0);
	ck_assert_int_eq(store_sync_account(s, "a", &acc_id), 0);
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "INBOX", NULL, false, &inbox), 0);
}

static void teardown(void)
{
	s = store_close(s);
	test_rm_rf(tmpdir);
}

static int64_t q(const char *sql)
{
	sqlite3_stmt *st;
	int64_t v;

	ck_assert_int_eq(store_prepare(s, sql, &st), 0);
	ck_assert_int_eq(store_step(s, st), 1);
	v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return v;
}

/* The text of the first column of the first row (in a static buffer). */
static const char *qs(const char *sql)
{
	return test_store_text(s, sql);
}

/* A message's summary with Message-ID mid, every other text empty. */
#define SUMMARY(mid)                                                                               \
	{                                                                                          \
		.message_id = (char *)(mid), .subject = (char *)"", .from = (char *)"",            \
		.to = (char *)"", .conversation_id = (char *)"", .contribution_id = (char *)"",    \
		.imdn_message_id = (char *)"", .type = "message"                                   \
	}

static int64_t add_msg(uint32_t uid, const char *flags, const char *mid, uint64_t size,
		       int64_t date)
{
	struct msg_summary sum = SUMMARY(mid);
	struct sync_new_message m = { .uid = uid,
				      .flags = flags,
				      .modseq = 5,
				      .internaldate = date,
				      .size = size,
				      .summary = &sum };
	bool has_body, is_new;
	int64_t id;

	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	return id;
}

/*
 * A local message of folder 1 waiting for its op (JOURNAL_OP_APPEND or
 * _COPY; no UID, no body, no server flags) with Message-ID mid, size,
 * internal date date, EMAILID emailid (NULL: none) and flags: its id.
 */
static int64_t add_pending(enum journal_op op, const char *mid, uint64_t size, int64_t date,
			   const char *emailid, const char *flags)
{
	sqlite3_stmt *st;
	int64_t id;

	ck_assert_int_eq(sqlite3_prepare_v2(store_db(s),
					    "INSERT INTO message (folder_id, message_id, size,"
					    " internaldate, emailid) VALUES (1, ?1, ?2, ?3, ?4)",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, mid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
	sqlite3_bind_int64(st, 3, date);
	if (emailid)
		sqlite3_bind_text(st, 4, emailid, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	id = store_last_insert_id(s);
	ck_assert_int_eq(sqlite3_prepare_v2(store_db(s),
					    "INSERT INTO message_state (id, flags) VALUES (?1, ?2)",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, flags, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	ck_assert_int_eq(store_journal_add(s, acc_id, op, inbox, id, NULL), 0);
	return id;
}

/* The first journal row is marked sent (a run cut after sending it). */
static void attempt_first(const char *args)
{
	struct journal_entry j;

	ck_assert_int_eq(store_journal_next(s, acc_id, INT64_MIN, &j), 1);
	ck_assert_int_eq(store_journal_attempt(s, j.id, args), 0);
	journal_entry_free_contents(&j);
}

/*
 * An account that exists is found without a write: a sync run or a public
 * operation that changes nothing leaves the database as it was (an INSERT
 * OR IGNORE took an AUTOINCREMENT id and rewrote sqlite_sequence each time:
 * a WAL frame and a checkpoint in every no-change run).
 */
START_TEST(test_account_found_without_write)
{
	sqlite3 *db = store_db(s);
	int64_t id = 0, other = 0;
	int changes;

	ck_assert_int_eq(q("SELECT seq FROM sqlite_sequence WHERE name = 'account'"), acc_id);
	changes = sqlite3_total_changes(db);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(store_sync_account(s, "a", &id), 0);
		ck_assert_int_eq(id, acc_id);
	}
	ck_assert_int_eq(sqlite3_total_changes(db), changes);
	ck_assert_int_eq(q("SELECT seq FROM sqlite_sequence WHERE name = 'account'"), acc_id);
	/* A new name is still created, with the next id. */
	ck_assert_int_eq(store_sync_account(s, "b", &other), 0);
	ck_assert_int_eq(other, acc_id + 1);
	ck_assert_int_eq(q("SELECT count(*) FROM account"), 2);
}
END_TEST

static int exec_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int exec_fmt(const char *fmt, ...)
{
	char *sql = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&sql, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(r, 0);
	r = store_exec(s, sql);
	free(sql);
	return r;
}

/* folder.known of every folder against a count of its rows with a UID. */
static void assert_known_counts(const char *when)
{
	ck_assert_msg(q("SELECT count(*) FROM folder f WHERE f.known <> (SELECT count(*)"
			" FROM message m WHERE m.folder_id = f.id AND m.uid IS NOT NULL)") == 0,
		      "folder.known differs from the rows %s", when);
}

/*
 * folder.known (schema 19) follows every way a row gains, loses or moves
 * its UID: what the folder plan compares with STATUS MESSAGES.
 */
START_TEST(test_folder_known)
{
	struct rangeset set = RANGESET_INIT;
	uint32_t removed = 0, known = 0;
	int64_t other, pending;

	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "Other", NULL, false, &other), 0);
	for (uint32_t u = 1; u <= 5; u++)
		add_msg(u, "", "", 1, 1);
	assert_known_counts("after five new messages");
	ck_assert_int_eq(q("SELECT known FROM folder WHERE name = 'INBOX'"), 5);
	/* A local APPEND: no UID yet, not known; then it gets one. */
	ck_assert_int_eq(store_exec(s,
				    "INSERT INTO message (folder_id) SELECT id"
				    " FROM folder WHERE name = 'INBOX';"
				    "INSERT INTO message_state (id) VALUES (last_insert_rowid())"),
			 0);
	pending = store_last_insert_id(s);
	assert_known_counts("after a row without a UID");
	ck_assert_int_eq(q("SELECT known FROM folder WHERE name = 'INBOX'"), 5);
	ck_assert_int_eq(exec_fmt("UPDATE message SET uid = 6 WHERE id = %lld", (long long)pending),
			 0);
	assert_known_counts("after the UID came");
	/* A row moved to another folder, a UID taken away, a row deleted. */
	ck_assert_int_eq(exec_fmt("UPDATE message SET folder_id = %lld, uid = NULL"
				  " WHERE uid = 1",
				  (long long)other),
			 0);
	assert_known_counts("after a move without a UID");
	ck_assert_int_eq(exec_fmt("UPDATE message SET folder_id = %lld, uid = 9"
				  " WHERE uid = 2",
				  (long long)other),
			 0);
	assert_known_counts("after a move with a UID");
	ck_assert_int_eq(q("SELECT known FROM folder WHERE name = 'Other'"), 1);
	ck_assert_int_eq(rangeset_add_range(&set, 3, 4), 0);
	ck_assert_int_eq(store_sync_expunge_uids(s, inbox, &set, &removed), 0);
	ck_assert_uint_eq(removed, 2);
	assert_known_counts("after an expunge");
	ck_assert_int_eq(store_sync_count_uids_below(s, inbox, UINT32_MAX, &known), 0);
	ck_assert_uint_eq(known, 2); /* 5, 6 */
	ck_assert_int_eq(store_sync_count_uids_below(s, inbox, 6, &known), 0);
	ck_assert_uint_eq(known, 1);
	ck_assert_int_eq(store_exec(s, "DELETE FROM message"), 0);
	assert_known_counts("after every row went");
	ck_assert_int_eq(q("SELECT sum(known) FROM folder"), 0);
	ck_assert_int_lt(store_sync_count_uids_below(s, 999, UINT32_MAX, &known), 0);
	rangeset_free(&set);
}
END_TEST

START_TEST(test_new_and_update)
{
	bool has_body = true, is_new = false;
	struct sync_new_message m = { .uid = 1, .flags = "\\Seen", .size = 10 };
	int64_t id, id2;

	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert(is_new);
	ck_assert(!has_body);
	/* The same UID again (an interrupted run re-fetching): an update. */
	m.flags = "\\Flagged \\Seen";
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id2, &has_body, &is_new), 0);
	ck_assert(!is_new);
	ck_assert_int_eq(id, id2);
	ck_assert_int_eq(q("SELECT count(*) FROM message"), 1);
	ck_assert_str_eq(qs("SELECT flags FROM message_state"), "\\Flagged \\Seen");
	ck_assert_int_eq(store_sync_body_put(s, id, "abc", 3), 0);
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id2, &has_body, &is_new), 0);
	ck_assert(has_body);
}
END_TEST

START_TEST(test_flags_merge_with_pending)
{
	int64_t id = add_msg(1, "\\Answered \\Seen", "<a@x>", 10, 100);
	bool found, changed;

	/* Local: +\Flagged -\Seen (pending). */
	ck_assert_int_eq(store_exec(s, "UPDATE message_state SET flags = '\\Answered \\Flagged'"),
			 0);
	/* Server meanwhile: +$Work -\Answered. */
	ck_assert_int_eq(
		store_sync_server_flags(s, inbox, 1, "$Work \\Seen", 9, &found, &changed, NULL), 0);
	ck_assert(found);
	ck_assert(changed);
	ck_assert_str_eq(qs("SELECT flags FROM message_state"), "$Work \\Flagged");
	ck_assert_str_eq(qs("SELECT server_flags FROM message_state"), "$Work \\Seen");
	ck_assert_int_eq(q("SELECT modseq FROM message_state"), 9);
	/* Without a pending change the server's flags are taken as they are. */
	ck_assert_int_eq(store_exec(s, "UPDATE message_state SET flags = server_flags"), 0);
	ck_assert_int_eq(store_sync_server_flags(s, inbox, 1, "", 10, &found, &changed, NULL), 0);
	ck_assert_str_eq(qs("SELECT flags FROM message_state"), "");
	/* Unknown UID: not found, nothing changes. */
	ck_assert_int_eq(store_sync_server_flags(s, inbox, 99, "", 10, &found, &changed, NULL), 0);
	ck_assert(!found);
	(void)id;
}
END_TEST

START_TEST(test_expunges)
{
	struct rangeset set = RANGESET_INIT;
	uint32_t removed = 0, known = 0, max = 0, rematch = 0, lo = 0, hi = 0;

	for (uint32_t u = 1; u <= 10; u++)
		add_msg(u, "", "", 1, 1);
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_FLAGS, inbox,
					   q("SELECT id FROM message WHERE uid = 3"), NULL),
			 0);
	ck_assert_int_eq(rangeset_add_range(&set, 2, 4), 0);
	ck_assert_int_eq(store_sync_expunge_uids(s, inbox, &set, &removed), 0);
	ck_assert_uint_eq(removed, 3);
	/* The pending flag change of an expunged message is moot. */
	ck_assert_int_eq(q("SELECT count(*) FROM journal"), 0);
	/* Present: 1, 5..8 below 10: 9 goes, 10 is not below. */
	rangeset_clear(&set);
	ck_assert_int_eq(rangeset_add(&set, 1), 0);
	ck_assert_int_eq(rangeset_add_range(&set, 5, 8), 0);
	ck_assert_int_eq(store_sync_expunge_missing(s, inbox, &set, 10, &removed), 0);
	ck_assert_uint_eq(removed, 1);
	ck_assert_int_eq(store_sync_folder_counts(s, inbox, &max, &rematch), 0);
	ck_assert_int_eq(store_sync_count_uids_below(s, inbox, UINT32_MAX, &known), 0);
	ck_assert_uint_eq(known, 6);
	ck_assert_int_eq(store_sync_count_uids_below(s, inbox, 8, &known), 0);
	ck_assert_uint_eq(known, 4); /* 1, 5, 6, 7 */
	ck_assert_uint_eq(max, 10);
	ck_assert_uint_eq(rematch, 0);
	ck_assert_int_eq(store_sync_uid_bounds(s, inbox, &lo, &hi), 0);
	ck_assert_uint_eq(lo, 1); /* of 1, 5:8, 10 */
	ck_assert_uint_eq(hi, 10);
	ck_assert_int_eq(store_sync_uid_bounds(s, 999, &lo, &hi), 0);
	ck_assert_uint_eq(hi, 0);
	rangeset_free(&set);
}
END_TEST

/*
 * A local delete waits (message removed here, its expunge row queued)
 * when the folder's UIDVALIDITY changes.  Re-matched by content only, the
 * message is not expunged on that, and the delete was dropped without a
 * word: the message stayed on the server, hidden here.  Now the row is a
 * failed operation naming the folder and the message; its message, found
 * again, keeps it.  One matched by nothing goes with its row: the server
 * has it no more.
 */
START_TEST(test_uidvalidity_delete_fails_visibly)
{
	int64_t a = add_msg(1, "", "<a@x>", 100, 1000);
	int64_t b = add_msg(2, "", "<b@x>", 200, 2000);
	struct msg_summary sum = SUMMARY("<a@x>");
	struct sync_new_message m = {
		.uid = 7, .flags = "", .internaldate = 1000, .size = 100, .summary = &sum
	};
	uint32_t failed = 0, removed = 0;
	bool has_body, is_new;
	char sql[256], *text = NULL;
	int64_t id;

	snprintf(sql, sizeof(sql), "UPDATE message SET removed = 1 WHERE id IN (%lld, %lld)",
		 (long long)a, (long long)b);
	ck_assert_int_eq(store_exec(s, sql), 0);
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_EXPUNGE, inbox, a, NULL), 0);
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_EXPUNGE, inbox, b, NULL), 0);
	ck_assert_int_eq(store_sync_uidvalidity_reset_failed(s, inbox, &failed), 0);
	ck_assert_uint_eq(failed, 2);
	snprintf(sql, sizeof(sql),
		 "SELECT failed || ' ' || refused FROM journal WHERE message_id = %lld",
		 (long long)a);
	ck_assert_str_eq(qs(sql), "1 the UIDVALIDITY of INBOX changed before the delete of <a@x>"
				  " (UID 1) was sent: not sent to a message matched again by its"
				  " content only");
	snprintf(sql, sizeof(sql),
		 "SELECT failed || ' ' || refused FROM journal WHERE message_id = %lld",
		 (long long)b);
	ck_assert_str_eq(qs(sql), "1 the UIDVALIDITY of INBOX changed before the delete of <b@x>"
				  " (UID 2) was sent: not sent to a message matched again by its"
				  " content only");
	/* a is on the server under a new UID, b is not. */
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert_int_eq(id, a);
	/* What goes with b, for the log. */
	ck_assert_int_eq(store_sync_unmatched_changes(s, inbox, &failed, &text), 0);
	ck_assert_uint_eq(failed, 1);
	ck_assert_str_eq(text, "expunge of <b@x>");
	free(text);
	ck_assert_int_eq(store_sync_drop_unmatched(s, inbox, &removed), 0);
	ck_assert_uint_eq(removed, 1);
	ck_assert_int_eq(q("SELECT count(*) FROM journal"), 1);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM journal WHERE message_id = %lld"
		 " AND failed = 1",
		 (long long)a);
	ck_assert_int_eq(q(sql), 1);
	snprintf(sql, sizeof(sql), "SELECT uid || ' ' || removed FROM message WHERE id = %lld",
		 (long long)a);
	ck_assert_str_eq(qs(sql), "7 1");
}
END_TEST

START_TEST(test_uidvalidity_rematch)
{
	int64_t a = add_msg(1, "\\Seen", "<a@x>", 100, 1000);
	int64_t b = add_msg(2, "", "<b@x>", 200, 2000);
	int64_t pending, id;
	uint32_t known, max, rematch, removed;
	bool has_body, is_new;
	struct msg_summary sum = SUMMARY("<a@x>");
	struct sync_new_message m = { .uid = 7,
				      .flags = "\\Flagged \\Seen",
				      .internaldate = 1000,
				      .size = 100,
				      .summary = &sum };

	ck_assert_int_eq(store_sync_body_put(s, a, "body", 4), 0);
	/* A pending append: no UID, no server flags. */
	ck_assert_int_eq(store_exec(s,
				    "INSERT INTO message (folder_id) VALUES (1);"
				    "INSERT INTO message_state (id) VALUES (last_insert_rowid())"),
			 0);
	pending = store_last_insert_id(s);
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_APPEND, inbox, pending, NULL), 0);

	ck_assert_int_eq(store_sync_uidvalidity_reset(s, inbox), 0);
	ck_assert_int_eq(store_sync_folder_counts(s, inbox, &max, &rematch), 0);
	ck_assert_int_eq(store_sync_count_uids_below(s, inbox, UINT32_MAX, &known), 0);
	ck_assert_uint_eq(known, 0);
	ck_assert_uint_eq(rematch, 2);
	/* The server has a's content under a new UID: same id, body kept. */
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert_int_eq(id, a);
	ck_assert(has_body);
	ck_assert(!is_new);
	ck_assert_str_eq(qs("SELECT ms.flags FROM message m JOIN message_state ms"
			    " ON ms.id = m.id WHERE m.uid = 7"),
			 "\\Flagged \\Seen");
	/* A different size is a different message. */
	sum.message_id = (char *)"<b@x>";
	m = (struct sync_new_message){
		.uid = 8, .flags = "", .internaldate = 2000, .size = 201, .summary = &sum
	};
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert(is_new);
	ck_assert_int_ne(id, b);
	/* After the re-read: b (not matched) goes, the pending append stays. */
	ck_assert_int_eq(store_sync_drop_unmatched(s, inbox, &removed), 0);
	ck_assert_uint_eq(removed, 1);
	ck_assert_int_eq(q("SELECT count(*) FROM message WHERE id = 2"), 0);
	ck_assert_int_eq(q("SELECT count(*) FROM message WHERE uid IS NULL"), 1);
	ck_assert_int_eq(q("SELECT count(*) FROM journal WHERE op = 'append'"), 1);
}
END_TEST

/*
 * An APPEND's date the server did not keep (Dovecot keeps the time of the
 * APPEND for one at or after 2^31): the sync's FETCH of the UID gives the
 * server's INTERNALDATE, which the row takes, and its Date with it when
 * the Date came from the internal date (no Date header).  A UIDVALIDITY
 * change then re-matches the row (Message-ID, internal date, size): same
 * id, not a new message.
 */
START_TEST(test_internaldate_adopted)
{
	int64_t big = add_pending(JOURNAL_OP_APPEND, "<big@x>", 100, 2147483648, NULL, "");
	int64_t dated = add_pending(JOURNAL_OP_APPEND, "<dated@x>", 100, 2147483649, NULL, "");
	struct msg_summary undated_sum = SUMMARY("<big@x>"), dated_sum = SUMMARY("<dated@x>");
	struct sync_new_message m = { .uid = 5,
				      .flags = "",
				      .internaldate = 1796652745,
				      .size = 100,
				      .summary = &undated_sum };
	bool has_body, is_new;
	char sql[128];
	int64_t id;

	undated_sum.no_date = true;
	dated_sum.date = 1000;
	ck_assert_int_eq(exec_fmt("UPDATE message SET date = internaldate WHERE id = %lld;"
				  "UPDATE message SET date = 1000 WHERE id = %lld",
				  (long long)big, (long long)dated),
			 0);
	ck_assert_int_eq(store_sync_message_set_uid(s, big, 5, ""), 0);
	ck_assert_int_eq(store_sync_message_set_uid(s, dated, 6, ""), 0);
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert_int_eq(id, big);
	ck_assert(!is_new);
	m.uid = 6;
	m.summary = &dated_sum;
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert_int_eq(id, dated);
	snprintf(sql, sizeof(sql),
		 "SELECT internaldate || ' ' || date FROM message WHERE id = %lld", (long long)big);
	ck_assert_str_eq(qs(sql), "1796652745 1796652745");
	snprintf(sql, sizeof(sql),
		 "SELECT internaldate || ' ' || date FROM message WHERE id = %lld",
		 (long long)dated);
	ck_assert_str_eq(qs(sql), "1796652745 1000");
	/* The UIDVALIDITY changes: the server's copy is found again. */
	ck_assert_int_eq(store_sync_uidvalidity_reset(s, inbox), 0);
	m.uid = 1;
	m.summary = &undated_sum;
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert_int_eq(id, big);
	ck_assert(!is_new);
}
END_TEST

/* APPENDUID/COPYUID name a UID another message of the folder holds: the
 * folder is not the one we knew; its UIDs and state are forgotten (the next
 * sync re-reads and re-matches) and the new message takes the UID. */
START_TEST(test_uid_collision_resets)
{
	int64_t a = add_msg(1, "\\Seen", "<a@x>", 100, 1000);
	int64_t pending;
	uint32_t max, rematch;

	ck_assert_int_eq(store_sync_folder_set_state(s, inbox, 77, 2, 9), 0);
	ck_assert_int_eq(store_sync_folder_set_mailboxid(s, inbox, "M1"), 0);
	ck_assert_int_eq(store_exec(s,
				    "INSERT INTO message (folder_id) VALUES (1);"
				    "INSERT INTO message_state (id) VALUES (last_insert_rowid())"),
			 0);
	pending = store_last_insert_id(s);
	/* No collision: just the UID. */
	ck_assert_int_eq(store_sync_message_set_uid(s, pending, 2, ""), 0);
	ck_assert_int_eq(q("SELECT uid FROM message WHERE id = 1"), 1);
	ck_assert_int_eq(q("SELECT uidvalidity FROM folder WHERE id = 1"), 77);
	ck_assert_str_eq(qs("SELECT mailboxid FROM folder WHERE id = 1"), "M1");
	/* The server says the pending one is UID 1, which a holds. */
	ck_assert_int_eq(store_sync_message_set_uid(s, pending, 1, ""), 0);
	ck_assert_int_eq(q("SELECT uid FROM message WHERE id = 2"), 1);
	ck_assert_int_eq(q("SELECT uid IS NULL FROM message WHERE id = 1"), 1);
	ck_assert_int_eq(
		q("SELECT uidvalidity IS NULL AND uidnext IS NULL AND highestmodseq IS NULL"
		  " AND mailboxid IS NULL FROM folder WHERE id = 1"),
		1);
	/* a waits for re-matching (it keeps its id and server flags). */
	ck_assert_int_eq(store_sync_folder_counts(s, inbox, &max, &rematch), 0);
	ck_assert_uint_eq(rematch, 1);
	ck_assert_str_eq(qs("SELECT server_flags FROM message_state WHERE id = 1"), "\\Seen");
	ck_assert_int_eq(a, 1);
}
END_TEST

START_TEST(test_interrupted_append_adopted)
{
	struct msg_summary sum = SUMMARY("<once@x>");
	struct sync_new_message m = {
		.uid = 9, .flags = "\\Seen", .internaldate = 50, .size = 80, .summary = &sum
	};
	bool has_body, is_new;
	int64_t pending, id;

	/* The user flagged it after the APPEND (which carried \Seen) was sent. */
	pending = add_pending(JOURNAL_OP_APPEND, "<once@x>", 80, 50, NULL, "\\Flagged \\Seen");
	/* Not attempted yet: the server's message is someone else's. */
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert(is_new);
	ck_assert_int_eq(store_sync_message_delete(s, id), 0);
	/* Attempted (the run was cut after sending it): the same message. */
	attempt_first("uidnext=9");
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert(!is_new);
	ck_assert_int_eq(id, pending);
	ck_assert_int_eq(q("SELECT uid FROM message WHERE id = 1"), 9);
	/* The local flag stays and is queued; the server's are the base. */
	ck_assert_str_eq(qs("SELECT flags FROM message_state WHERE id = 1"), "\\Flagged \\Seen");
	ck_assert_str_eq(qs("SELECT server_flags FROM message_state WHERE id = 1"), "\\Seen");
	ck_assert_int_eq(q("SELECT count(*) FROM journal WHERE op = 'flags' AND message_id = 1"),
			 1);
}
END_TEST

/*
 * An interrupted APPEND asked for a date a year ahead, which the server did
 * not keep (Dovecot gives the time of the APPEND): the pull, before the
 * replay, finds the server's copy by Message-ID and size with that earlier
 * date, and the row takes it (not imported a second time).  A copy dated
 * before the row was queued (less a day) is another message.
 */
START_TEST(test_interrupted_append_date_replaced)
{
	struct msg_summary sum = SUMMARY("<fut@x>");
	struct sync_new_message m = {
		.uid = 9, .flags = "", .internaldate = 1699900000, .size = 80, .summary = &sum
	};
	bool has_body, is_new;
	int64_t pending, id;

	pending = add_pending(JOURNAL_OP_APPEND, "<fut@x>", 80, 4102444800, NULL, "");
	attempt_first("uidnext=9");
	ck_assert_int_eq(exec_fmt("UPDATE journal SET created = 1700000000"), 0);
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert(is_new);
	ck_assert_int_eq(store_sync_message_delete(s, id), 0);
	m.internaldate = 1700000100;
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert(!is_new);
	ck_assert_int_eq(id, pending);
	ck_assert_str_eq(qs("SELECT uid || ' ' || internaldate FROM message WHERE id = 1"),
			 "9 1700000100");
}
END_TEST

/*
 * body_follows: a row store_sync_new_message() inserts has has_body set and
 * *ret_has_body false (its body is the caller's to store now, with
 * store_sync_body_put_new()); a row it finds (a known UID, a re-matched
 * pending APPEND) is left as it was, and a body it lacks goes in the usual
 * way.
 */
START_TEST(test_body_follows)
{
	struct msg_summary sum = SUMMARY("<f@x>");
	struct sync_new_message m = { .uid = 3,
				      .flags = "",
				      .internaldate = 1000,
				      .size = 5,
				      .summary = &sum,
				      .body_follows = true };
	bool has_body, is_new;
	int64_t id, again, pending;
	void *data = NULL;
	size_t len = 0;

	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert(is_new);
	ck_assert(!has_body);
	ck_assert_int_eq(q("SELECT has_body FROM message WHERE uid = 3"), 1);
	ck_assert_int_eq(store_sync_body_put_new(s, id, "hello", 5, -1, 5), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(store_body_get(s, id, &data, &len), 0);
	ck_assert_uint_eq(len, 5);
	ck_assert_int_eq(memcmp(data, "hello", 5), 0);
	free(data);

	/* Seen again (an interrupted run read it twice): the known row. */
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &again, &has_body, &is_new), 0);
	ck_assert_int_eq(again, id);
	ck_assert(!is_new);
	ck_assert(has_body);

	/* A pending APPEND without its body, whose command was sent: re-matched,
	 * not inserted, so not marked; the body then goes in as usual. */
	pending = add_pending(JOURNAL_OP_APPEND, "<p@x>", 7, 2000, NULL, "");
	attempt_first("uidnext=4");
	sum.message_id = (char *)"<p@x>";
	m = (struct sync_new_message){ .uid = 4,
				       .flags = "",
				       .internaldate = 2000,
				       .size = 7,
				       .summary = &sum,
				       .body_follows = true };
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &again, &has_body, &is_new), 0);
	ck_assert_int_eq(again, pending);
	ck_assert(!is_new);
	ck_assert(!has_body);
	ck_assert_int_eq(q("SELECT has_body FROM message WHERE uid = 4"), 0);
	ck_assert_int_eq(store_sync_body_put(s, pending, "pending", 7), 0);
	ck_assert_int_eq(q("SELECT has_body FROM message WHERE uid = 4"), 1);
}
END_TEST

START_TEST(test_folder_recreate_and_delete)
{
	int64_t f, on_server, local_only;
	struct journal_entry j;

	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "Work", NULL, false, &f), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (folder_id, uid) VALUES (2, 5);"
				       "INSERT INTO message_state (id, server_flags)"
				       " VALUES (last_insert_rowid(), '')"),
			 0);
	on_server = store_last_insert_id(s);
	ck_assert_int_eq(store_exec(s,
				    "INSERT INTO message (folder_id) VALUES (2);"
				    "INSERT INTO message_state (id) VALUES (last_insert_rowid())"),
			 0);
	local_only = store_last_insert_id(s);
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_FLAGS, f, on_server, NULL), 0);
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_APPEND, f, local_only, NULL), 0);

	ck_assert_int_eq(store_sync_folder_recreate(s, acc_id, f), 0);
	ck_assert_int_eq(q("SELECT count(*) FROM message WHERE folder_id = 2"), 1);
	ck_assert_int_eq(q("SELECT server_name IS NULL FROM folder WHERE id = 2"), 1);
	/* The CREATE comes first, then the append. */
	ck_assert_int_eq(store_journal_next(s, acc_id, INT64_MIN, &j), 1);
	ck_assert_str_eq(j.op_name, "create_folder");
	ck_assert_int_eq(j.op, JOURNAL_OP_CREATE_FOLDER);
	journal_entry_free_contents(&j);
	ck_assert_int_eq(q("SELECT count(*) FROM journal"), 2);

	ck_assert_int_eq(store_sync_folder_delete(s, f), 0);
	ck_assert_int_eq(q("SELECT count(*) FROM journal"), 0);
	ck_assert_int_eq(q("SELECT count(*) FROM message WHERE folder_id = 2"), 0);
}
END_TEST

/* A folder gone on the server, another one renamed onto its name: its
 * messages go into that one without their UIDs, with the changes queued
 * on them; what was queued for the folder itself goes with the folder. */
START_TEST(test_folder_fold)
{
	int64_t gone, kept, a, pending, queued_in_kept;
	uint32_t moved = 0, max, rematch;

	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "B", NULL, false, &gone), 0);
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "A", NULL, false, &kept), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (folder_id, uid) VALUES (2, 5);"
				       "INSERT INTO message_state (id, flags, server_flags)"
				       " VALUES (last_insert_rowid(), '\\Seen', '')"),
			 0);
	a = store_last_insert_id(s);
	ck_assert_int_eq(store_exec(s,
				    "INSERT INTO message (folder_id) VALUES (2);"
				    "INSERT INTO message_state (id) VALUES (last_insert_rowid())"),
			 0);
	pending = store_last_insert_id(s);
	/* A's own message, UID 5 too: no clash once B's has lost its UID. */
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (folder_id, uid) VALUES (3, 5);"
				       "INSERT INTO message_state (id, server_flags)"
				       " VALUES (last_insert_rowid(), '')"),
			 0);
	queued_in_kept = store_last_insert_id(s);
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_FLAGS, gone, a, NULL), 0);
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_APPEND, gone, pending, NULL), 0);
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_FLAGS, kept, queued_in_kept, NULL),
			 0);
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_SET_ACL, gone, 0, NULL), 0);

	ck_assert_int_eq(store_sync_folder_fold(s, gone, kept, &moved), 0);
	ck_assert_uint_eq(moved, 2);
	ck_assert_int_eq(q("SELECT count(*) FROM folder WHERE id = 2"), 0);
	ck_assert_int_eq(q("SELECT count(*) FROM message WHERE folder_id = 3"), 3);
	ck_assert_int_eq(q("SELECT count(*) FROM message WHERE folder_id = 3 AND uid IS NULL"), 2);
	/* The moved message is a re-match candidate, with its flags. */
	ck_assert_int_eq(store_sync_folder_counts(s, kept, &max, &rematch), 0);
	ck_assert_uint_eq(rematch, 1);
	ck_assert_str_eq(qs("SELECT server_flags FROM message_state WHERE id = 1"), "");
	ck_assert_str_eq(qs("SELECT flags FROM message_state WHERE id = 1"), "\\Seen");
	ck_assert_int_eq(q("SELECT count(*) FROM journal WHERE folder_id = 3"), 3);
	ck_assert_int_eq(q("SELECT count(*) FROM journal WHERE op = 'set_acl'"), 0);
	ck_assert_int_eq(q("SELECT count(*) FROM journal WHERE folder_id = 2"), 0);
}
END_TEST

/* The server account the copy is of: recorded, then the same (case
 * aside); another one drops the copy when nothing waits for the old
 * mailbox, and is refused, touching nothing, when something does. */
START_TEST(test_account_identity)
{
	char *was = NULL;

	add_msg(1, "", "<a@x>", 100, 1000);
	ck_assert_int_eq(store_sync_account_identity(s, acc_id, "imap.one", "alice", &was), 0);
	ck_assert_ptr_null(was);
	ck_assert_str_eq(qs("SELECT server_user || '@' || server_host FROM account"),
			 "alice@imap.one");
	ck_assert_int_eq(store_sync_account_identity(s, acc_id, "IMAP.One", "Alice", &was), 0);
	ck_assert_int_eq(q("SELECT count(*) FROM message"), 1);

	/* A change queued: refused, nothing touched. */
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_FLAGS, inbox, 1, NULL), 0);
	ck_assert_int_eq(store_sync_account_identity(s, acc_id, "imap.one", "bob", &was),
			 -CPMSYNC_E_CONFIG);
	ck_assert_ptr_null(was);
	ck_assert_str_eq(store_error(s),
			 "the store holds the mail of alice@imap.one with 1 local change not yet"
			 " sent there, and the account's settings now name bob@imap.one: set host"
			 " and user back to send them, or remove the account with D-Bus "
			 "Manager1.RemoveAccount to drop"
			 " them (saved as files first; removing its section from the configuration "
			 "keeps them)");
	ck_assert_int_eq(q("SELECT count(*) FROM message"), 1);
	ck_assert_int_eq(q("SELECT count(*) FROM journal"), 1);
	/* Failed operations are the user's changes too, counted as such. */
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET failed = 1"), 0);
	ck_assert_int_eq(store_sync_account_identity(s, acc_id, "imap.one", "bob", &was),
			 -CPMSYNC_E_CONFIG);
	ck_assert_str_eq(
		store_error(s),
		"the store holds the mail of alice@imap.one with 1 failed operation, and"
		" the account's settings now name bob@imap.one: set host and user back to"
		" send them, or remove the account with D-Bus Manager1.RemoveAccount to drop"
		" them (saved as files first; removing its section from the configuration keeps "
		"them)");
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_FLAGS, inbox, 1, NULL), 0);
	ck_assert_int_eq(store_sync_account_identity(s, acc_id, "imap.one", "bob", &was),
			 -CPMSYNC_E_CONFIG);
	ck_assert_str_eq(
		store_error(s),
		"the store holds the mail of alice@imap.one with 1 local change not yet sent"
		" there and 1 failed operation, and the account's settings now name"
		" bob@imap.one: set host and user back to send them, or remove the account"
		" with D-Bus Manager1.RemoveAccount to drop them (saved as files first; removing "
		"its section from"
		" the configuration keeps them)");

	/* Nothing queued: the copy goes, the account row (and its id) stays. */
	ck_assert_int_eq(store_exec(s, "DELETE FROM journal"), 0);
	ck_assert_int_eq(store_sync_account_identity(s, acc_id, "imap.two", "alice", &was), 1);
	ck_assert_str_eq(was, "alice@imap.one");
	free(was);
	ck_assert_int_eq(q("SELECT count(*) FROM message"), 0);
	ck_assert_int_eq(q("SELECT count(*) FROM folder"), 0);
	ck_assert_str_eq(qs("SELECT id || ' ' || server_user || '@' || server_host FROM account"),
			 "1 alice@imap.two");
}
END_TEST

/* Only the host changed, nothing queued: left to the engine's proof
 * (store_sync_account_moved()); its targets are the oldest and newest
 * message with a UID of each synced folder the server has. */
START_TEST(test_account_moved)
{
	struct sync_uid_target *t = NULL;
	int64_t work, local;
	size_t n = 0;

	/* Nothing recorded yet: not moved. */
	ck_assert_int_eq(store_sync_account_moved(s, acc_id, "imap.two", "alice"), 0);
	ck_assert_int_eq(store_sync_account_identity(s, acc_id, "imap.one", "alice", NULL), 0);
	ck_assert_int_eq(store_sync_account_moved(s, acc_id, "IMAP.ONE", "alice"), 0);
	ck_assert_int_eq(store_sync_account_moved(s, acc_id, "imap.two", "bob"), 0);
	ck_assert_int_eq(store_sync_account_moved(s, acc_id, "imap.two", "Alice"), 1);
	/* Anything in the journal, failed or not: not risked. */
	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_FLAGS, inbox, 0, NULL), 0);
	ck_assert_int_eq(store_sync_account_moved(s, acc_id, "imap.two", "alice"), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET failed = 1"), 0);
	ck_assert_int_eq(store_sync_account_moved(s, acc_id, "imap.two", "alice"), 0);
	ck_assert_int_eq(store_exec(s, "DELETE FROM journal"), 0);

	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "Work", NULL, false, &work), 0);
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "Local", NULL, false, &local), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE folder SET uidvalidity = 9 WHERE name <> 'Local'"),
			 0);
	add_msg(3, "", "<3@x>", 30, 3000);
	add_msg(5, "", "<5@x>", 50, 5000);
	add_msg(8, "", "<8@x>", 80, 8000);
	/* Work holds one message, Local (never synced) one. */
	ck_assert_int_eq(store_exec(s, "UPDATE message SET folder_id = 2 WHERE uid = 5"), 0);
	add_msg(4, "", "<4@x>", 40, 4000);
	ck_assert_int_eq(store_exec(s, "UPDATE message SET folder_id = 3 WHERE uid = 4"), 0);
	ck_assert_int_eq(store_sync_host_targets(s, acc_id, &t, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(t[0].folder_id, inbox);
	ck_assert_uint_eq(t[0].uid, 3);
	ck_assert_int_eq(t[0].size, 30);
	ck_assert_int_eq(t[0].internaldate, 3000);
	ck_assert_str_eq(t[0].message_id, "<3@x>");
	ck_assert_uint_eq(t[1].uid, 8);
	ck_assert_int_eq(t[2].folder_id, work);
	ck_assert_uint_eq(t[2].uid, 5);
	sync_uid_targets_free(t, n);

	ck_assert_int_eq(store_sync_account_set_host(s, acc_id, "imap.two"), 0);
	ck_assert_str_eq(qs("SELECT server_user || '@' || server_host FROM account"),
			 "alice@imap.two");
	ck_assert_int_eq(store_sync_account_moved(s, acc_id, "imap.two", "alice"), 0);
	ck_assert_int_eq(q("SELECT count(*) FROM message"), 4);
}
END_TEST

START_TEST(test_renames)
{
	int64_t p, c, other;

	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "P", NULL, false, &p), 0);
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "P/c", NULL, false, &c), 0);
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "Px", NULL, false, &other), 0);
	ck_assert_int_eq(store_sync_folder_renamed(s, acc_id, p, "Q"), 0);
	ck_assert_str_eq(qs("SELECT name FROM folder WHERE id = 3"), "Q/c");
	ck_assert_str_eq(qs("SELECT server_name FROM folder WHERE id = 3"), "Q/c");
	ck_assert_str_eq(qs("SELECT name FROM folder WHERE id = 4"), "Px");
	/* A local rename that reached the server: only server names move. */
	ck_assert_int_eq(store_exec(s, "UPDATE folder SET name = 'R' WHERE id = 2;"
				       "UPDATE folder SET name = 'R/c' WHERE id = 3"),
			 0);
	ck_assert_int_eq(store_sync_folder_set_server_name(s, acc_id, p, "R"), 0);
	ck_assert_str_eq(qs("SELECT server_name FROM folder WHERE id = 3"), "R/c");
}
END_TEST

/* A store from before namespaces (Cyrus classic names "INBOX/Work") made
 * relative to the personal prefix in place: ids, messages and journal rows
 * stay; INBOX, a taken name and a pending CREATE's missing server name are
 * handled; the base is recorded; going back works the same way. */
START_TEST(test_rebase_namespace)
{
	int64_t work, sync, taken, newf, msg;
	unsigned n = 99;
	char *ns = (char *)"x";

	ck_assert_int_eq(store_sync_get_namespace(s, acc_id, &ns), 0);
	ck_assert_ptr_null(ns); /* never recorded */
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "INBOX/Work", NULL, false, &work), 0);
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "INBOX/Work/Sync", NULL, false, &sync),
			 0);
	/* Both "INBOX/Dup" and "Dup": the first keeps its name. */
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "INBOX/Dup", NULL, false, &taken), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (account_id, name) VALUES (1, 'Dup');"
				       "INSERT INTO folder (account_id, name)"
				       " VALUES (1, 'INBOX/New')"),
			 0);
	newf = q("SELECT id FROM folder WHERE name = 'INBOX/New'");
	msg = add_msg(7, "", "<m@x>", 10, 1000);
	ck_assert_int_eq(store_exec(s, "UPDATE message SET folder_id = 3 WHERE uid = 7;"
				       "INSERT INTO journal (account_id, op, folder_id)"
				       " VALUES (1, 'create_folder', 6)"),
			 0);
	ck_assert_int_eq(newf, 6);

	ck_assert_int_eq(store_sync_rebase_namespace(s, acc_id, "", "INBOX/", &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(qs("SELECT name || '|' || server_name FROM folder WHERE id = 1"),
			 "INBOX|INBOX");
	ck_assert_str_eq(qs("SELECT name || '|' || server_name FROM folder WHERE id = 2"),
			 "Work|Work");
	ck_assert_str_eq(qs("SELECT name || '|' || server_name FROM folder WHERE id = 3"),
			 "Work/Sync|Work/Sync");
	ck_assert_str_eq(qs("SELECT name || '|' || server_name FROM folder WHERE id = 4"),
			 "INBOX/Dup|INBOX/Dup");
	ck_assert_str_eq(qs("SELECT name || '|' || coalesce(server_name, 'NULL') FROM folder"
			    " WHERE id = 6"),
			 "New|NULL");
	ck_assert_int_eq(
		q("SELECT folder_id FROM message WHERE id = (SELECT max(id) FROM message)"), sync);
	ck_assert_int_eq(q("SELECT count(*) FROM message"), 1);
	ck_assert_int_eq(q("SELECT count(*) FROM journal WHERE folder_id = 6"), 1);
	ck_assert_int_eq(store_sync_get_namespace(s, acc_id, &ns), 0);
	ck_assert_str_eq(ns, "INBOX/");
	free(ns);

	/* Again: nothing to do. */
	ck_assert_int_eq(store_sync_rebase_namespace(s, acc_id, "INBOX/", "INBOX/", &n), 0);
	ck_assert_uint_eq(n, 0);
	/* Back to whole names (a server that moved to an empty prefix): the
	 * local "INBOX/Dup" was the server's INBOX.INBOX.Dup, and "Dup" is
	 * then free for INBOX/Dup. */
	ck_assert_int_eq(store_sync_rebase_namespace(s, acc_id, "INBOX/", "", &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_str_eq(qs("SELECT group_concat(name, ' ') FROM (SELECT name FROM folder"
			    " ORDER BY id)"),
			 "INBOX INBOX/Work INBOX/Work/Sync INBOX/INBOX/Dup INBOX/Dup INBOX/New");
	ck_assert_int_eq(store_sync_get_namespace(s, acc_id, &ns), 0);
	ck_assert_str_eq(ns, "");
	free(ns);
	(void)msg;
}
END_TEST

/* The folder index: every folder with a server name, each entry what
 * store_sync_folder_status() gives, found by name; a name two rows share is
 * left out. */
START_TEST(test_folder_index)
{
	static const char *const names[] = { "INBOX", "Work", "Default/conv-A", "Default/conv-B" };
	struct store_folder_index idx;
	const struct store_folder_status *e;
	struct store_folder_status fs;
	int64_t work, a, b, x, y;
	sqlite3_stmt *st;

	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "Work", NULL, false, &work), 0);
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "Default/conv-B", NULL, false, &b), 0);
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "Default/conv-A", NULL, false, &a), 0);
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "X", NULL, false, &x), 0);
	ck_assert_int_eq(store_sync_folder_add(s, acc_id, "Y", NULL, false, &y), 0);
	ck_assert_int_eq(store_sync_folder_set_state(s, inbox, 77, 3, 9), 0);
	ck_assert_int_eq(store_sync_folder_set_state(s, work, 5, 1, 0), 0);
	add_msg(1, "", "<1@x>", 10, 1000);
	add_msg(2, "", "<2@x>", 10, 1000);
	/* Y takes X's server name (as during a rename): both ambiguous. */
	ck_assert_int_eq(
		store_prepare(s, "UPDATE folder SET server_name = 'X' WHERE name = 'Y'", &st), 0);
	ck_assert_int_eq(store_step(s, st), 0);
	sqlite3_reset(st);

	ck_assert_int_eq(store_sync_folder_index_load(s, acc_id, &idx), 0);
	ck_assert_uint_eq(idx.n, 4);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		e = store_folder_index_find(&idx, names[i]);
		ck_assert_msg(e != NULL, "%s not in the index", names[i]);
		ck_assert_int_eq(store_sync_folder_status(s, acc_id, names[i], &fs), 1);
		ck_assert_int_eq(e->id, fs.id);
		ck_assert_uint_eq(e->uidvalidity, fs.uidvalidity);
		ck_assert_uint_eq(e->uidnext, fs.uidnext);
		ck_assert_uint_eq(e->highestmodseq, fs.highestmodseq);
		ck_assert_uint_eq(e->on_server, fs.on_server);
	}
	e = store_folder_index_find(&idx, "INBOX");
	ck_assert_int_eq(e->id, inbox);
	ck_assert_uint_eq(e->uidvalidity, 77);
	ck_assert_uint_eq(e->uidnext, 3);
	ck_assert_uint_eq(e->highestmodseq, 9);
	ck_assert_uint_eq(e->on_server, 2);
	ck_assert_int_eq(store_folder_index_find(&idx, "Default/conv-A")->id, a);
	ck_assert_int_eq(store_folder_index_find(&idx, "Default/conv-B")->id, b);
	ck_assert_uint_eq(store_folder_index_find(&idx, "Work")->on_server, 0);
	ck_assert_ptr_null(store_folder_index_find(&idx, "X"));
	ck_assert_ptr_null(store_folder_index_find(&idx, "Y"));
	ck_assert_ptr_null(store_folder_index_find(&idx, "Default/conv-C"));
	ck_assert_ptr_null(store_folder_index_find(&idx, ""));
	store_folder_index_free(&idx);
	ck_assert_uint_eq(idx.n, 0);
	ck_assert_ptr_null(store_folder_index_find(&idx, "INBOX"));
}
END_TEST

START_TEST(test_journal)
{
	struct journal_entry j;
	uint32_t n;

	ck_assert_int_eq(store_journal_add(s, acc_id, JOURNAL_OP_APPEND, inbox, 0, NULL), 0);
	ck_assert_int_eq(store_journal_next(s, acc_id, INT64_MIN, &j), 1);
	ck_assert_int_eq(store_journal_attempt(s, j.id, "uidnext=7"), 0);
	journal_entry_free_contents(&j);
	ck_assert_int_eq(store_journal_next(s, acc_id, INT64_MIN, &j), 1);
	ck_assert_int_eq(j.attempts, 1);
	ck_assert_str_eq(j.args_sent, "uidnext=7");
	ck_assert_int_eq(j.message_id, 0);
	ck_assert_int_eq(store_journal_count(s, acc_id, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(store_journal_done(s, j.id), 0);
	journal_entry_free_contents(&j);
	ck_assert_int_eq(store_journal_next(s, acc_id, INT64_MIN, &j), 0);
}
END_TEST

/* A message as the server gives it: m (no UID) carries sum, whose Message-ID
 * is mid. */
static struct msg_summary rm_sum = SUMMARY(NULL);

/* store_sync_new_message() of (uid, Message-ID, size, date, EMAILID);
 * *ret_new whether it was inserted rather than re-matched. */
static int64_t seen(uint32_t uid, const char *mid, uint64_t size, int64_t date, const char *emailid,
		    bool *ret_new)
{
	struct sync_new_message m = { .uid = uid,
				      .flags = "",
				      .internaldate = date,
				      .size = size,
				      .summary = &rm_sum,
				      .emailid = emailid };
	bool has_body;
	int64_t id;

	rm_sum.message_id = (char *)mid;
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, ret_new), 0);
	return id;
}

static int64_t add_msg_emailid(uint32_t uid, const char *mid, uint64_t size, int64_t date,
			       const char *emailid)
{
	int64_t id = add_msg(uid, "", mid, size, date);

	if (emailid)
		ck_assert_int_eq(store_sync_message_set_objectids(s, id, emailid, NULL), 0);
	return id;
}

/* Re-matching after a UIDVALIDITY reset where the server gives EMAILIDs
 * (RFC 8474): the EMAILID decides where both sides have one, the
 * Message-ID (with size and date) where either has none. */
/*
 * A local message with LF line ends, its APPEND cut short after it was
 * sent: the server counts it with CRLF (3 more bytes here), and its copy
 * is still that message, not a new one (the replay would send it again).
 * A copy one byte off is another message.
 */
START_TEST(test_rematch_lf_body)
{
	static const char body[] = "Message-ID: <lf@x>\nSubject: lf\n\nline\n";
	struct msg_summary sum = SUMMARY("<lf@x>");
	struct sync_new_message m = { .uid = 7,
				      .flags = "",
				      .internaldate = 50,
				      .size = sizeof(body) - 1 + 4,
				      .summary = &sum };
	bool has_body, is_new;
	int64_t pending, id;

	pending = add_pending(JOURNAL_OP_APPEND, "<lf@x>", sizeof(body) - 1, 50, NULL, "");
	ck_assert_int_eq(store_body_put(s, pending, body, sizeof(body) - 1), 0);
	attempt_first("uidnext=7");
	/* Not the CRLF size (one byte more): another message. */
	m.size++;
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert(is_new);
	ck_assert_int_eq(store_sync_message_delete(s, id), 0);
	m.size--;
	ck_assert_int_eq(store_sync_new_message(s, inbox, &m, &id, &has_body, &is_new), 0);
	ck_assert(!is_new);
	ck_assert_int_eq(id, pending);
	ck_assert_int_eq(q("SELECT count(*) FROM message WHERE message_id = '<lf@x>'"), 1);
}
END_TEST

START_TEST(test_rematch_emailid)
{
	/* Two messages with one Message-ID, size and date, told apart only
	 * by their EMAILIDs. */
	int64_t a = add_msg_emailid(1, "<d@x>", 100, 1000, "Ma");
	int64_t b = add_msg_emailid(2, "<d@x>", 100, 1000, "Mb");
	int64_t c = add_msg_emailid(3, "", 50, 500, "Mc");	/* no Message-ID */
	int64_t d = add_msg_emailid(4, "<n@x>", 70, 700, NULL); /* stored before OBJECTID */
	int64_t e = add_msg_emailid(5, "<e@x>", 80, 800, "Me");
	int64_t f = add_msg_emailid(6, "", 90, 900, NULL); /* neither */
	uint32_t removed = 0;
	bool is_new;
	int64_t id;

	ck_assert_int_eq(store_sync_body_put(s, b, "body", 4), 0);
	ck_assert_int_eq(store_sync_uidvalidity_reset(s, inbox), 0);
	/* Same Message-ID, size and date, another EMAILID: another message. */
	id = seen(9, "<d@x>", 100, 1000, "Mz", &is_new);
	ck_assert(is_new);
	ck_assert_int_ne(id, a);
	ck_assert_int_ne(id, b);
	ck_assert_int_eq(store_sync_message_set_objectids(s, id, "Mz", NULL), 0);
	/* b first (by Message-ID alone it would be a, the lower id). */
	ck_assert_int_eq(seen(10, "<d@x>", 100, 1000, "Mb", &is_new), b);
	ck_assert(!is_new);
	ck_assert_int_eq(q("SELECT uid FROM message WHERE id = 2"), 10);
	ck_assert_int_eq(q("SELECT has_body FROM message WHERE id = 2"), 1);
	ck_assert_int_eq(seen(11, "<d@x>", 100, 1000, "Ma", &is_new), a);
	ck_assert(!is_new);
	/* No Message-ID: re-matched by EMAILID, which decides alone. */
	ck_assert_int_eq(seen(12, "", 50, 501, "Mc", &is_new), c);
	ck_assert(!is_new);
	/* The stored one has no EMAILID: by Message-ID, size and date. */
	ck_assert_int_eq(seen(13, "<n@x>", 70, 700, "Mn", &is_new), d);
	ck_assert(!is_new);
	/* The server gives none: by Message-ID as before. */
	ck_assert_int_eq(seen(14, "<e@x>", 80, 800, NULL, &is_new), e);
	ck_assert(!is_new);
	/* No EMAILID and no Message-ID on either side: not re-matched. */
	id = seen(15, "", 90, 900, NULL, &is_new);
	ck_assert(is_new);
	ck_assert_int_ne(id, f);
	ck_assert_int_eq(store_sync_drop_unmatched(s, inbox, &removed), 0);
	ck_assert_uint_eq(removed, 1);
	ck_assert_int_eq(q("SELECT count(*) FROM message WHERE id = 6"), 0);
	ck_assert_int_eq(q("SELECT count(*) FROM message WHERE uid IS NULL"), 0);
}
END_TEST

/* An interrupted APPEND whose row learnt no EMAILID (it never had a UID):
 * the server's copy, with an EMAILID, is adopted by Message-ID; a row that
 * has an EMAILID adopts only a copy with that EMAILID. */
START_TEST(test_rematch_emailid_pending)
{
	int64_t p1, p2;
	bool is_new;

	p1 = add_pending(JOURNAL_OP_APPEND, "<p@x>", 80, 50, NULL, "");
	p2 = add_pending(JOURNAL_OP_COPY, "<q@x>", 80, 50, "Mq", "");
	/* Both sent by a run that was cut. */
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET attempts = 1"), 0);
	ck_assert_int_eq(q("SELECT count(*) FROM journal WHERE attempts > 0"), 2);
	ck_assert_int_eq(seen(9, "<p@x>", 80, 50, "Mp", &is_new), p1);
	ck_assert(!is_new);
	/* <q@x> under another EMAILID is not p2's copy. */
	ck_assert(seen(10, "<q@x>", 80, 50, "Mother", &is_new) != p2);
	ck_assert(is_new);
	ck_assert_int_eq(seen(11, "<q@x>", 80, 50, "Mq", &is_new), p2);
	ck_assert(!is_new);
}
END_TEST

/* EMAILID/THREADID (RFC 8474): recorded, replaced, THREADID NULL kept as none. */
START_TEST(test_message_objectids)
{
	int64_t a = add_msg(1, "", "<a@x>", 100, 1000);

	ck_assert_int_eq(q("SELECT emailid IS NULL AND threadid IS NULL FROM message WHERE id = 1"),
			 1);
	ck_assert_int_eq(store_sync_message_set_objectids(s, a, "Medb3e68b0904cf37e6324999", NULL),
			 0);
	ck_assert_str_eq(qs("SELECT emailid FROM message WHERE id = 1"),
			 "Medb3e68b0904cf37e6324999");
	ck_assert_str_eq(qs("SELECT threadid FROM message WHERE id = 1"), "(null)");
	/* The same again: no write. */
	ck_assert_int_eq(store_sync_message_set_objectids(s, a, "Medb3e68b0904cf37e6324999", NULL),
			 0);
	ck_assert_int_eq(sqlite3_changes(store_db(s)), 0);
	ck_assert_int_eq(store_sync_message_set_objectids(s, a, "M2", "T2"), 0);
	ck_assert_int_eq(sqlite3_changes(store_db(s)), 1);
	ck_assert_str_eq(qs("SELECT emailid || ' ' || threadid FROM message WHERE id = 1"),
			 "M2 T2");
}
END_TEST

static Suite *store_sync_suite(void)
{
	Suite *su = suite_create("store-sync");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_account_found_without_write);
	tcase_add_test(tc, test_folder_known);
	tcase_add_test(tc, test_new_and_update);
	tcase_add_test(tc, test_flags_merge_with_pending);
	tcase_add_test(tc, test_expunges);
	tcase_add_test(tc, test_uidvalidity_rematch);
	tcase_add_test(tc, test_uidvalidity_delete_fails_visibly);
	tcase_add_test(tc, test_internaldate_adopted);
	tcase_add_test(tc, test_uid_collision_resets);
	tcase_add_test(tc, test_interrupted_append_adopted);
	tcase_add_test(tc, test_interrupted_append_date_replaced);
	tcase_add_test(tc, test_body_follows);
	tcase_add_test(tc, test_folder_recreate_and_delete);
	tcase_add_test(tc, test_folder_fold);
	tcase_add_test(tc, test_account_identity);
	tcase_add_test(tc, test_account_moved);
	tcase_add_test(tc, test_renames);
	tcase_add_test(tc, test_journal);
	tcase_add_test(tc, test_rebase_namespace);
	tcase_add_test(tc, test_message_objectids);
	tcase_add_test(tc, test_rematch_emailid);
	tcase_add_test(tc, test_rematch_lf_body);
	tcase_add_test(tc, test_rematch_emailid_pending);
	tcase_add_test(tc, test_folder_index);
	suite_add_tcase(su, tc);
	return su;
}

TEST_MAIN(store_sync_suite)
