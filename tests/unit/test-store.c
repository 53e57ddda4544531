/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sqlite3.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "testlib.h"
#include "util/msg-summary.h"

static char tmpdir[] = "/tmp/test-store-XXXXXX";
static char dbpath[sizeof(tmpdir) + 32];

/* A body just over STORE_BODY_INLINE_MAX (and one more byte for a second,
 * different one at big_body + 1): stored in the bodies database. */
static char big_body[STORE_BODY_INLINE_MAX + 2];

static void setup(void)
{
	for (size_t i = 0; i < sizeof(big_body); i++)
		big_body[i] = (char)('a' + i % 26);
	strcpy(tmpdir, "/tmp/test-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", tmpdir);
}

static void teardown(void)
{
	test_rm_rf(tmpdir);
}

static struct store *open_ok(const char *path, unsigned flags)
{
	struct store *s = NULL;
	char *err = NULL;
	int r = store_open(path, flags, &s, &err);

	if (r != 0)
		ck_abort_msg("store_open(%s): %d %s", path, r, err ? err : "(null)");
	ck_assert_ptr_null(err);
	ck_assert_ptr_nonnull(s);
	return s;
}

static int64_t query_int(struct store *s, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v;

	ck_assert_int_eq(store_prepare(s, sql, &st), 0);
	ck_assert_int_eq(store_step(s, st), 1);
	v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return v;
}

static char *query_text(struct store *s, const char *sql)
{
	sqlite3_stmt *st;
	char *v;

	ck_assert_int_eq(store_prepare(s, sql, &st), 0);
	ck_assert_int_eq(store_step(s, st), 1);
	v = strdup(sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
	sqlite3_reset(st);
	ck_assert_ptr_nonnull(v);
	return v;
}

/* One integer from the bodies database (store-body.c). */
static int64_t bquery_int(struct store *s, const char *sql)
{
	sqlite3 *db = store_bodies_db_for_test(s);
	sqlite3_stmt *st;
	int64_t v;

	ck_assert_ptr_nonnull(db);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* message_id's body, read whole by store_body_get(), is the n bytes at want. */
static void check_got(struct store *s, int64_t message_id, const void *want, size_t n)
{
	void *got;
	size_t len;

	ck_assert_int_eq(store_body_get(s, message_id, &got, &len), 0);
	ck_assert_uint_eq(len, n);
	ck_assert(memcmp(got, want, n) == 0);
	free(got);
}

#define SCHEMA_SQL                                                                                 \
	"SELECT ifnull(group_concat(type || ' ' || name || ' ' || ifnull(sql, ''), char(10)), '')" \
	" FROM (SELECT * FROM sqlite_schema ORDER BY type, name)"

static char *schema_dump(struct store *s)
{
	return query_text(s, SCHEMA_SQL);
}

static char *fresh_schema(void)
{
	char path[sizeof(dbpath) + 16];
	struct store *s;
	char *dump;

	snprintf(path, sizeof(path), "%s/fresh.db", tmpdir);
	s = open_ok(path, 0);
	dump = schema_dump(s);
	store_close(s);
	return dump;
}

static void add_account_folder_message(struct store *s)
{
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (id, name) VALUES (1, 'a')"), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (id, account_id, name, delimiter)"
				       " VALUES (10, 1, 'INBOX', '/')"),
			 0);
	/* Flags are in message_state since version 23. */
	if (query_int(s, "SELECT count(*) FROM sqlite_schema WHERE name = 'message_state'"))
		ck_assert_int_eq(store_exec(s,
					    "INSERT INTO message (id, folder_id, uid, message_id)"
					    " VALUES (100, 10, 7, '<m@x>');"
					    "INSERT INTO message_state (id, flags)"
					    " VALUES (100, '\\Seen')"),
				 0);
	else
		ck_assert_int_eq(store_exec(s,
					    "INSERT INTO message (id, folder_id, uid, flags,"
					    " message_id) VALUES (100, 10, 7, '\\Seen', '<m@x>')"),
				 0);
}

/* Issue 13: the store, every file SQLite makes beside it and the pack files
 * are 0600 (the packs' directory 0700), whatever the umask. */
START_TEST(test_files_private)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", "-packs/1" };
	char path[sizeof(dbpath) + 32];
	struct store *s;
	mode_t old = umask(0);
	struct stat st;

	s = open_ok(dbpath, 0);
	umask(old);
	add_account_folder_message(s);
	ck_assert_int_eq(store_body_put(s, 100, big_body, STORE_BODY_INLINE_MAX + 1), 0);
	/* The packs' directory: 0700. */
	snprintf(path, sizeof(path), "%s-packs", dbpath);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_msg((st.st_mode & 07777) == 0700, "%s is %04o", path,
		      (unsigned)(st.st_mode & 07777));
	/* A store made since version 25 has no bodies database. */
	snprintf(path, sizeof(path), "%s-bodies", dbpath);
	ck_assert_int_eq(stat(path, &st), -1);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char p[sizeof(dbpath) + 32];

		snprintf(p, sizeof(p), "%s%s", dbpath, suffixes[i]);
		ck_assert_msg(stat(p, &st) == 0, "%s: %s", p, strerror(errno));
		ck_assert_msg((st.st_mode & 07777) == 0600, "%s is %04o", p,
			      (unsigned)(st.st_mode & 07777));
	}
	store_close(s);
}
END_TEST

/* The size of the closed store's -wal file. */
static off_t wal_size(void)
{
	char wal[sizeof(dbpath) + 8];
	struct stat st;

	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	ck_assert_msg(stat(wal, &st) == 0, "%s: %s", wal, strerror(errno));
	return st.st_size;
}

/* How many of add_account_folder_message()'s messages a copy of the
 * store's database file alone (no -wal beside it) holds. */
static int64_t messages_in_copy_alone(const char *name)
{
	char alone[sizeof(tmpdir) + 32], buf[4096];
	struct store *s;
	int64_t count;
	ssize_t n;
	int in, out;

	snprintf(alone, sizeof(alone), "%s/%s", tmpdir, name);
	in = open(dbpath, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(in, 0);
	out = open(alone, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(out, 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	ck_assert_int_eq(n, 0);
	close(in);
	ck_assert_int_eq(close(out), 0);
	s = open_ok(alone, 0);
	count = query_int(s, "SELECT count(*) FROM message WHERE id = 100 AND uid = 7");
	ck_assert_ptr_null(store_close(s));
	return count;
}

/*
 * The -wal file stays beside a closed store, emptied (no -wal/-shm
 * creation at every open), and the closed store.db is complete on its
 * own: a copy of that one file opens with every committed row.
 */
START_TEST(test_closed_store_complete_alone)
{
	struct store *s = open_ok(dbpath, 0);

	add_account_folder_message(s);
	ck_assert_ptr_null(store_close(s));
	ck_assert_int_eq(wal_size(), 0);
	ck_assert_int_eq(messages_in_copy_alone("alone.db"), 1);
}
END_TEST

/*
 * STORE_KEEP_WAL (cpm-syncd --once): the close leaves the WAL as it is
 * (synced to the disk), the store is the two files together, and the
 * next read-write close without the flag moves the WAL into the database
 * file.  Both connections checkpoint by themselves once a commit leaves
 * the WAL STORE_WAL_CHECKPOINT_PAGES long.
 */
START_TEST(test_keep_wal)
{
	struct store *s, *r;
	char *err = NULL;

	unsigned long syncs;

	ck_assert_int_eq(store_open(dbpath, STORE_READONLY | STORE_KEEP_WAL, &s, &err), -EINVAL);
	ck_assert_ptr_null(s);
	test_wal_syncs_install();
	s = open_ok(dbpath, STORE_KEEP_WAL);
	ck_assert_int_eq(query_int(s, "PRAGMA wal_autocheckpoint"), STORE_WAL_CHECKPOINT_PAGES);
	add_account_folder_message(s);
	/* Not checkpointed, but on the disk: the close syncs the WAL. */
	syncs = test_wal_syncs();
	ck_assert_ptr_null(store_close(s));
	ck_assert_uint_eq(test_wal_syncs(), syncs + 1);
	ck_assert_int_gt(wal_size(), 0);
	ck_assert_int_eq(messages_in_copy_alone("without-wal.db"), 0);

	/* The two files are the store: a reader sees every row. */
	r = open_ok(dbpath, STORE_READONLY);
	ck_assert_int_eq(query_int(r, "SELECT count(*) FROM message WHERE id = 100 AND uid = 7"),
			 1);
	ck_assert_ptr_null(store_close(r));
	ck_assert_int_gt(wal_size(), 0);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA wal_autocheckpoint"), STORE_WAL_CHECKPOINT_PAGES);
	ck_assert_ptr_null(store_close(s));
	ck_assert_int_eq(wal_size(), 0);
	ck_assert_int_eq(messages_in_copy_alone("checkpointed.db"), 1);
}
END_TEST

START_TEST(test_open_creates_schema)
{
	struct store *s = open_ok(dbpath, 0);
	char *mode;

	ck_assert_uint_ge(store_schema_version(), 1);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	mode = query_text(s, "PRAGMA journal_mode");
	ck_assert_str_eq(mode, "wal");
	free(mode);
	ck_assert_int_eq(query_int(s, "PRAGMA foreign_keys"), 1);
	ck_assert_int_eq(query_int(s, "PRAGMA synchronous"), 1); /* NORMAL */
	ck_assert_int_eq(query_int(s, "PRAGMA page_size"), STORE_PAGE_SIZE);
	ck_assert_int_eq(query_int(s, "PRAGMA secure_delete"), 2); /* FAST */
	ck_assert_int_eq(
		query_int(s,
			  "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
			  " AND name IN ('account', 'folder', 'message', 'body_trash', 'journal')"),
		5);
	/* The bodies: their own database, rollback journal, synced commits. */
	ck_assert_int_eq(bquery_int(s, "SELECT count(*) FROM sqlite_schema WHERE name = 'body'"),
			 1);
	ck_assert_int_eq(bquery_int(s, "PRAGMA synchronous"), 2); /* FULL */
	{
		char p[sizeof(dbpath) + 16];

		snprintf(p, sizeof(p), "%s-bodies", dbpath);
		ck_assert_int_eq(access(p, F_OK), 0);
	}
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
				      " AND name = 'message_folder_message_id'"),
			 1);
	ck_assert_str_eq(store_error(s), "");
	ck_assert_ptr_null(store_close(s));
	ck_assert_ptr_null(store_close(NULL));
}
END_TEST

START_TEST(test_reopen_is_idempotent)
{
	struct store *s = open_ok(dbpath, 0);
	char *before, *after;

	add_account_folder_message(s);
	before = schema_dump(s);
	store_close(s);

	for (int i = 0; i < 2; i++) {
		s = open_ok(dbpath, 0);
		ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
		ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message"), 1);
		after = schema_dump(s);
		ck_assert_str_eq(before, after);
		free(after);
		store_close(s);
	}
	free(before);
}
END_TEST

START_TEST(test_migrate_from_every_older_version)
{
	unsigned current = store_schema_version();
	char *fresh = fresh_schema();

	for (unsigned v = 0; v <= current; v++) {
		char path[sizeof(dbpath) + 16];
		struct store *s = NULL;
		char *err = NULL, *dump;

		snprintf(path, sizeof(path), "%s/v%u.db", tmpdir, v);
		ck_assert_int_eq(store_open_at_version_for_test(path, v, &s, &err), 0);
		ck_assert_ptr_null(err);
		ck_assert_int_eq(query_int(s, "PRAGMA user_version"), v);
		store_close(s);

		s = open_ok(path, 0);
		ck_assert_int_eq(query_int(s, "PRAGMA user_version"), current);
		dump = schema_dump(s);
		ck_assert_msg(streq(dump, fresh), "from version %u:\n%s\n---\n%s", v, dump, fresh);
		free(dump);
		/* The migrated store works: the cascade test's data goes in. */
		add_account_folder_message(s);
		store_close(s);
	}
	free(fresh);

	/* A version past the known ones cannot be requested. */
	{
		struct store *s = NULL;

		ck_assert_int_eq(store_open_at_version_for_test(dbpath, current + 1, &s, NULL),
				 -EINVAL);
		ck_assert_ptr_null(s);
	}
}
END_TEST

/*
 * Version 8, the preview cache: a store made at version 5 with a message
 * in it migrates, takes previews of the message, and drops them with it.
 */
START_TEST(test_migrate_adds_preview_cache)
{
	struct store *s = NULL;
	char *err = NULL;

	ck_assert_uint_ge(store_schema_version(), 8);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 5, &s, &err), 0);
	ck_assert_ptr_null(err);
	add_account_folder_message(s);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE name = 'preview'"),
			 0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message"), 1);
	ck_assert_int_eq(store_exec(s, "INSERT INTO preview VALUES"
				       " (100, '2', 'image/jpeg', 160, 120, x'ffd8ffe0'),"
				       " (100, '2', 'image/png', 160, 120, x'89504e47')"),
			 0);
	/* One row per key. */
	ck_assert_int_lt(store_exec(s, "INSERT INTO preview VALUES"
				       " (100, '2', 'image/jpeg', 160, 120, x'00')"),
			 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM preview"), 2);
	/* No preview of a message that does not exist. */
	ck_assert_int_lt(store_exec(s, "INSERT INTO preview VALUES"
				       " (999, '1', 'text/plain', 80, 4, x'41')"),
			 0);
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE id = 100"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM preview"), 0);
	store_close(s);
}
END_TEST

/*
 * Version 40: foreign_change and foreign_conv_note.  A store of version
 * 39 keeps its message; an app's handle opened on it then records its
 * change there for the daemon, which takes it and empties the table.
 */
START_TEST(test_migrate_adds_foreign_change)
{
	struct cpmsync_store *app = NULL, *daemon = NULL;
	struct cpmsync_change c[4];
	const char *flagged[] = { "\\Flagged", NULL };
	struct store *s = NULL;
	char *err = NULL;
	int64_t id = 100;

	ck_assert_uint_ge(store_schema_version(), 40);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 39, &s, &err), 0);
	ck_assert_ptr_null(err);
	add_account_folder_message(s);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema"
				      " WHERE name IN ('foreign_change', 'foreign_conv_note')"),
			 0);
	store_close(s);

	ck_assert_int_eq(cpmsync_store_open(dbpath, CPMSYNC_STORE_DAEMON, &daemon, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(cpmsync_store_watch(daemon, NULL, NULL), 0);
	ck_assert_int_eq(query_int(store_from_public(daemon), "PRAGMA user_version"),
			 store_schema_version());
	ck_assert_int_eq(cpmsync_store_open(dbpath, 0, &app, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(cpmsync_op_set_flags(app, &id, 1, flagged, NULL), 0);
	ck_assert_int_eq(query_int(store_from_public(app),
				   "SELECT count(*) FROM foreign_change"
				   " WHERE kind = 2 AND fields = 1"
				   " AND folder_id = 10 AND message_id = 100"),
			 1);
	ck_assert_int_eq(cpmsync_store_take_changes(daemon, c, 4), 1);
	ck_assert_int_eq(c[0].kind, CPMSYNC_CHANGE_MESSAGE_CHANGED);
	ck_assert_int_eq(c[0].message_id, 100);
	ck_assert_int_eq(query_int(store_from_public(app), "SELECT count(*) FROM foreign_change"),
			 0);
	cpmsync_store_close(app);
	cpmsync_store_close(daemon);
}
END_TEST

/* The journal as "id op folder message args failed tries code retry_after|...". */
#define JOURNAL_SQL                                                                                \
	"SELECT ifnull(group_concat(id || ' ' || op || ' ' || ifnull(folder_id, '-') || ' '"       \
	" || ifnull(message_id, '-') || ' ' || ifnull(args, '-') || ' ' || failed || ' ' || tries" \
	" || ' ' || ifnull(code, '-') || ' ' || retry_after || ' ' || attempts || ' '"             \
	" || ifnull(args_sent, '-') || ' ' || created, '|'), '')"                                  \
	" FROM (SELECT * FROM journal ORDER BY id)"

/*
 * Version 9: journal ids are never reused.  A store at version 8 with
 * queued, refused and failed rows (ids with gaps, the largest deleted
 * before) keeps every row, its id and order; after it, a row added right
 * after the largest was deleted gets a new, larger id (before, SQLite
 * gave the deleted one again, behind replay's position).
 */
START_TEST(test_migrate_journal_ids_never_reused)
{
	struct store *s = NULL;
	char *err = NULL, *before, *after;

	ck_assert_uint_ge(store_schema_version(), 9);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 8, &s, &err), 0);
	ck_assert_ptr_null(err);
	add_account_folder_message(s);
	ck_assert_int_eq(
		store_exec(s,
			   "INSERT INTO journal (id, account_id, op, folder_id, message_id, args,"
			   " created, attempts, args_sent, refused, code, tries, tried,"
			   " retry_after, failed) VALUES"
			   " (3, 1, 'append', 10, 100, NULL, 1000, 1, '7', NULL, NULL, 0, NULL,"
			   "  0, 0),"
			   " (7, 1, 'set_metadata', 10, NULL, '/private/a\nx', 1001, 0, NULL,"
			   "  'over quota', 'OVERQUOTA', 2, 1500, 99999, 0),"
			   " (8, 1, 'flags', 10, 100, NULL, 1002, 0, NULL, 'no', 'NOPERM', 1,"
			   "  1600, 0, 1),"
			   " (12, 1, 'expunge', 10, 100, NULL, 1003, 0, NULL, NULL, NULL, 0, NULL,"
			   "  0, 0),"
			   " (13, 1, 'flags', 10, 100, NULL, 1004, 0, NULL, NULL, NULL, 0, NULL,"
			   "  0, 0);"
			   "DELETE FROM journal WHERE id = 13;"),
		0);
	before = query_text(s, JOURNAL_SQL);
	/* Version 8 hands the deleted largest id out again. */
	ck_assert_int_eq(store_exec(s, "INSERT INTO journal (account_id, op) VALUES (1, 'flags')"),
			 0);
	ck_assert_int_eq(store_last_insert_id(s), 13);
	ck_assert_int_eq(store_exec(s, "DELETE FROM journal WHERE id = 13"), 0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	after = query_text(s, JOURNAL_SQL);
	ck_assert_str_eq(after, before);
	ck_assert_str_eq(after, "3 append 10 100 - 0 0 - 0 1 7 1000|"
				"7 set_metadata 10 - /private/a\nx 0 2 OVERQUOTA 99999 0 - 1001|"
				"8 flags 10 100 - 1 1 NOPERM 0 0 - 1002|"
				"12 expunge 10 100 - 0 0 - 0 0 - 1003");
	/* The largest id goes; the next row does not take it again. */
	ck_assert_int_eq(store_exec(s, "DELETE FROM journal WHERE id = 12"), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO journal (account_id, op) VALUES (1, 'flags')"),
			 0);
	ck_assert_int_gt(store_last_insert_id(s), 12);
	ck_assert_int_eq(store_exec(s, "DELETE FROM journal WHERE id > 8"), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO journal (account_id, op) VALUES (1, 'flags')"),
			 0);
	ck_assert_int_gt(store_last_insert_id(s), 13);
	/* The rebuilt table still cascades with its account. */
	ck_assert_int_eq(store_exec(s, "DELETE FROM account WHERE id = 1"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM journal"), 0);
	store_close(s);
	free(before);
	free(after);
}
END_TEST

/*
 * Version 10, account.namespace: a store made at version 9 (its folder
 * names the server's whole names) migrates with the namespace unknown
 * (NULL), so that the first sync that knows it renames the folders
 * (store_sync_rebase_namespace(), test-store-sync.c); folders and messages
 * are untouched.
 */
START_TEST(test_migrate_adds_namespace)
{
	struct store *s = NULL;
	char *err = NULL;

	ck_assert_uint_ge(store_schema_version(), 10);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 9, &s, &err), 0);
	ck_assert_ptr_null(err);
	add_account_folder_message(s);
	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (id, account_id, name, server_name)"
				       " VALUES (11, 1, 'INBOX/Work', 'INBOX/Work')"),
			 0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT namespace IS NULL FROM account WHERE id = 1"), 1);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM folder WHERE name = 'INBOX/Work'"), 1);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message"), 1);
	/* A new account: unknown too. */
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (id, name) VALUES (2, 'b')"), 0);
	ck_assert_int_eq(query_int(s, "SELECT namespace IS NULL FROM account WHERE id = 2"), 1);
	store_close(s);
}
END_TEST

/*
 * Version 11, the annotation cache: a store made at version 10 with a
 * message in it migrates, caches annotations of the message (one row per
 * entry and priv/shared), and drops them with it.
 */
START_TEST(test_migrate_adds_annotation_cache)
{
	struct store *s = NULL;
	char *err = NULL;

	ck_assert_uint_ge(store_schema_version(), 11);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 10, &s, &err), 0);
	ck_assert_ptr_null(err);
	add_account_folder_message(s);
	ck_assert_int_eq(
		query_int(s, "SELECT count(*) FROM sqlite_schema WHERE name = 'annotation'"), 0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message"), 1);
	ck_assert_int_eq(store_exec(s, "INSERT INTO annotation VALUES"
				       " (100, '/comment', 0, 'mine', NULL),"
				       " (100, '/comment', 1, NULL, 'ours')"),
			 0);
	/* One row per key. */
	ck_assert_int_lt(store_exec(s, "INSERT INTO annotation VALUES"
				       " (100, '/comment', 0, 'again', NULL)"),
			 0);
	/* No annotation of a message that does not exist. */
	ck_assert_int_lt(store_exec(s, "INSERT INTO annotation VALUES"
				       " (999, '/comment', 0, 'x', NULL)"),
			 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM annotation"), 2);
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE id = 100"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM annotation"), 0);
	store_close(s);
}
END_TEST

/*
 * Version 12, partial IMDN indexes: a store made at version 11 with plain
 * mail ('' in imdn_message_id and imdn_ref, as the parser leaves them) and
 * an IMDN pair migrates; the indexes then hold the rows with a value only,
 * the IMDN lookups use them, and a report still raises its original's
 * Status, in either order of arrival.
 */
START_TEST(test_migrate_partial_imdn_indexes)
{
	struct store *s = NULL;
	const char *plan;
	sqlite3_stmt *st;
	char *err = NULL;

	ck_assert_uint_ge(store_schema_version(), 12);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 11, &s, &err), 0);
	ck_assert_ptr_null(err);
	add_account_folder_message(s);
	ck_assert_int_eq(store_exec(s, "UPDATE message SET imdn_message_id = '', imdn_ref = ''"),
			 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (id, folder_id, uid, message_id, type,"
				       " imdn_message_id, imdn_ref)"
				       " VALUES (101, 10, 8, '<o@x>', 'message', 'imdn-1', ''),"
				       " (102, 10, 9, '<r@x>', 'mail', '', '')"),
			 0);
	store_close(s);

	/* At version 12: version 16 replaced its IMDN triggers (the C side
	 * of store-message.c matches since; test_migrate_imdn_in_c). */
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 12, &s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), 12);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message"), 3);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
				      " AND name IN ('message_imdn', 'message_imdn_ref')"
				      " AND sql LIKE '% WHERE % <> '''''"),
			 2);
	/* Only the rows with a value are in the indexes. */
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message INDEXED BY message_imdn"
				      " WHERE imdn_message_id <> ''"),
			 1);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message INDEXED BY message_imdn_ref"
				      " WHERE imdn_ref <> ''"),
			 0);
	/* The trigger's lookups take the index, not a scan of every message. */
	ck_assert_int_eq(store_prepare(s,
				       "EXPLAIN QUERY PLAN SELECT status FROM message"
				       " WHERE imdn_message_id = ?1 AND imdn_message_id <> ''",
				       &st),
			 0);
	ck_assert_int_eq(store_step(s, st), 1);
	plan = (const char *)sqlite3_column_text(st, 3);
	ck_assert_str_eq(plan, "SEARCH message USING INDEX message_imdn (imdn_message_id=?)");
	sqlite3_reset(st);
	/* A report arriving after its original raises it (conv_imdn_report). */
	ck_assert_int_eq(
		store_exec(s, "INSERT INTO message (id, folder_id, uid, type, imdn_message_id,"
			      " imdn_ref, status)"
			      " VALUES (103, 10, 10, 'imdn', '', 'imdn-1', 'displayed')"),
		0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message INDEXED BY message_imdn_ref"
				      " WHERE imdn_ref <> ''"),
			 1);
	ck_assert_int_eq(query_int(s, "SELECT status = 'displayed' FROM message WHERE id = 101"),
			 1);
	/* An original arriving after its report takes it (conv_imdn_original). */
	ck_assert_int_eq(
		store_exec(s, "INSERT INTO message (id, folder_id, uid, type, imdn_message_id,"
			      " imdn_ref, status)"
			      " VALUES (104, 10, 11, 'imdn', '', 'imdn-2', 'delivered'),"
			      " (105, 10, 12, 'message', 'imdn-2', '', '')"),
		0);
	ck_assert_int_eq(query_int(s, "SELECT status = 'delivered' FROM message WHERE id = 105"),
			 1);
	store_close(s);
}
END_TEST

/*
 * Version 13, message.emailid and message.threadid (RFC 8474): a store made
 * at version 12 with a message in it migrates with both NULL (not known),
 * and takes them.
 */
START_TEST(test_migrate_adds_objectids)
{
	struct store *s = NULL;
	char *err = NULL;

	ck_assert_uint_ge(store_schema_version(), 13);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 12, &s, &err), 0);
	ck_assert_ptr_null(err);
	add_account_folder_message(s);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pragma_table_info('message')"
				      " WHERE name IN ('emailid', 'threadid')"),
			 0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message"), 1);
	ck_assert_int_eq(
		query_int(
			s,
			"SELECT emailid IS NULL AND threadid IS NULL FROM message WHERE id = 100"),
		1);
	ck_assert_int_eq(store_exec(s, "UPDATE message SET emailid = 'M1', threadid = 'T1'"
				       " WHERE id = 100"),
			 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message WHERE emailid = 'M1'"
				      " AND threadid = 'T1'"),
			 1);
	store_close(s);
}
END_TEST

/*
 * Version 14, message_conv_page: a store made at version 13 with objects
 * of every kind migrates; the index holds exactly the live messages a
 * person reads (message, file-transfer, media), in (folder, Date, Id)
 * order, and follows later inserts, removals and type changes.
 */
START_TEST(test_migrate_adds_conv_page_index)
{
	static const char idx[] = "SELECT group_concat(id, ' ') FROM (SELECT id FROM message "
				  "INDEXED BY message_conv_page"
				  " WHERE folder_id = 10 AND removed = 0 AND (type = 'message' OR "
				  "type = 'file-transfer'"
				  " OR type = 'media') ORDER BY coalesce(date, 0) DESC, id DESC)";
	struct store *s = NULL;
	char *err = NULL, *got;

	ck_assert_uint_ge(store_schema_version(), 14);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 13, &s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(
		store_exec(s, "INSERT INTO account (id, name) VALUES (1, 'a');"
			      "INSERT INTO folder (id, account_id, name) VALUES (10, 1, 'X');"
			      "INSERT INTO message (id, folder_id, uid, date, type, removed)"
			      " VALUES (1, 10, 1, 500, 'message', 0), (2, 10, 2, 500, 'imdn', 0),"
			      " (3, 10, 3, 700, 'file-transfer', 0), (4, 10, 4, NULL, 'media', 0),"
			      " (5, 10, 5, 900, 'message', 1), (6, 10, 6, 500, 'message', 0),"
			      " (7, 10, 7, 800, 'session-info', 0), (8, 10, 8, 100, 'mail', 0)"),
		0);
	ck_assert_int_eq(
		query_int(s, "SELECT count(*) FROM sqlite_schema WHERE name = 'message_conv_page'"),
		0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(
		query_int(s, "SELECT count(*) FROM sqlite_schema WHERE name = 'message_conv_page'"),
		1);
	got = query_text(s, idx);
	ck_assert_str_eq(got, "3 6 1 4");
	free(got);
	ck_assert_int_eq(store_exec(s, "UPDATE message SET removed = 1 WHERE id = 6;"
				       "UPDATE message SET type = 'message' WHERE id = 2;"
				       "UPDATE message SET removed = 0 WHERE id = 5;"
				       "INSERT INTO message (id, folder_id, uid, date, type)"
				       " VALUES (9, 10, 9, 600, 'media')"),
			 0);
	got = query_text(s, idx);
	ck_assert_str_eq(got, "5 3 9 2 1 4");
	free(got);
	store_close(s);
}
END_TEST

/* A store opened at an older schema version, with add_account_folder_message()'s rows. */
static struct store *open_old_with_message(unsigned version)
{
	struct store *s = NULL;
	char *err = NULL;

	ck_assert_int_eq(store_open_at_version_for_test(dbpath, version, &s, &err), 0);
	ck_assert_ptr_null(err);
	add_account_folder_message(s);
	return s;
}

/* s closed and the store opened again, migrated to the current version. */
static struct store *reopen_migrated(struct store *s)
{
	store_close(s);
	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	return s;
}

/*
 * Version 15, body_inline: a store made at version 14 with small bodies
 * (then all in the bodies database) migrates without moving them; they
 * read, copy and go with their rows as before, while new small bodies are
 * stored inline and go with their rows in the same transaction.
 */
START_TEST(test_migrate_adds_body_inline)
{
	struct store *s;

	ck_assert_uint_ge(store_schema_version(), STORE_VERSION_BODY_INLINE);
	s = open_old_with_message(STORE_VERSION_BODY_INLINE - 1);
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (id, folder_id, uid) VALUES"
				       " (101, 10, 8), (102, 10, 9), (103, 10, 10)"),
			 0);
	ck_assert_int_eq(store_body_put(s, 100, "old", 3), 0);
	ck_assert_int_eq(store_body_put(s, 101, "old too", 7), 0);
	ck_assert_int_eq(bquery_int(s, "SELECT count(*) FROM body"), 2);
	ck_assert_int_eq(
		query_int(s, "SELECT count(*) FROM sqlite_schema WHERE name = 'body_inline'"), 0);

	s = reopen_migrated(s);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_inline"), 0);
	ck_assert_int_eq(bquery_int(s, "SELECT count(*) FROM body"), 2);
	check_got(s, 100, "old", 3);
	/* A new small body: inline. */
	ck_assert_int_eq(store_body_put(s, 102, "new", 3), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_inline WHERE message_id = 102"),
			 1);
	ck_assert_int_eq(bquery_int(s, "SELECT count(*) FROM body"), 2);
	/* A copy of an old body goes where a body of its size goes now:
	 * inline (a pack takes larger ones only, version 26); the source
	 * stays where it is. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_body_copy(s, 101, 103), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(bquery_int(s, "SELECT count(*) FROM body WHERE message_id = 103"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_inline WHERE message_id = 103"),
			 1);
	check_got(s, 103, "old too", 7);
	/* An old body rewritten small moves inline; the old copy goes. */
	ck_assert_int_eq(store_body_put(s, 101, "rewritten", 9), 0);
	ck_assert_int_eq(bquery_int(s, "SELECT count(*) FROM body WHERE message_id = 101"), 0);
	check_got(s, 101, "rewritten", 9);
	/* Rows going: the old body is queued and collected, the inline one
	 * goes in the same statement. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE id IN (100, 101, 102)"), 0);
	ck_assert_int_eq(query_int(s, "SELECT group_concat(message_id) FROM body_trash"), 100);
	ck_assert_int_eq(query_int(s, "SELECT group_concat(message_id) FROM body_inline"), 103);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_trash"), 0);
	ck_assert_int_eq(bquery_int(s, "SELECT count(*) FROM body"), 0);
	check_got(s, 103, "old too", 7);
	store_close(s);
}
END_TEST

/*
 * Version 16: the IMDN matching of a new object moved from the triggers
 * conv_imdn_report and conv_imdn_original to store_message_insert().  A
 * store made at version 15, whose triggers raised a Status, migrates
 * without them and keeps the Status; objects inserted since are matched
 * as before: a report raises its original in the same account only, an
 * original takes the strongest report that came before it, and the
 * conversation counts them as before.
 */
static int64_t insert_summary(struct store *s, int64_t folder_id, uint32_t uid, const char *type,
			      const char *imdn_message_id, const char *imdn_ref, const char *status)
{
	struct msg_summary sum = { .type = type,
				   .imdn_message_id = (char *)imdn_message_id,
				   .imdn_ref = (char *)imdn_ref,
				   .status = (char *)status };
	int64_t id;

	ck_assert_msg(store_message_insert(s,
					   &(struct store_message_row){ .folder_id = folder_id,
									.uid = uid,
									.flags = "",
									.summary = &sum },
					   &id) == 0,
		      "%s", store_error(s));
	return id;
}

/*
 * Version 18: message_folder_message_id holds only the rows without a UID
 * (what find_rematch() looks for) and follows a row that gets or loses
 * its UID.
 */
START_TEST(test_migrate_rematch_index)
{
	static const char idx[] =
		"SELECT group_concat(id, ' ') FROM (SELECT id FROM message"
		" INDEXED BY message_folder_message_id WHERE folder_id = 10 AND uid IS NULL"
		" ORDER BY message_id)";
	struct store *s = NULL;
	char *err = NULL, *got;

	ck_assert_uint_ge(store_schema_version(), 18);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 17, &s, &err), 0);
	ck_assert_ptr_null(err);
	add_account_folder_message(s);
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (id, folder_id, uid, message_id)"
				       " VALUES (101, 10, NULL, '<b@x>'), (102, 10, NULL, '<a@x>'),"
				       " (103, 10, 9, '<c@x>')"),
			 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema"
				      " WHERE name = 'message_folder_message_id'"
				      " AND sql LIKE '%WHERE uid IS NULL'"),
			 0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message"), 4);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema"
				      " WHERE name = 'message_folder_message_id'"
				      " AND sql LIKE '%WHERE uid IS NULL'"),
			 1);
	got = query_text(s, idx);
	ck_assert_str_eq(got, "102 101");
	free(got);
	/* A row gets its UID (an APPEND done): out of the index; loses it
	 * (a UIDVALIDITY reset): in again. */
	ck_assert_int_eq(store_exec(s, "UPDATE message SET uid = 11 WHERE id = 102;"
				       "UPDATE message SET uid = NULL WHERE id = 103"),
			 0);
	got = query_text(s, idx);
	ck_assert_str_eq(got, "101 103");
	free(got);
	store_close(s);
}
END_TEST

/* Version 19: folder.known counted from the rows a store already holds. */
START_TEST(test_migrate_folder_known)
{
	struct store *s = NULL;
	char *err = NULL;

	ck_assert_uint_ge(store_schema_version(), 19);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 18, &s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (id, name) VALUES (1, 'a');"
				       "INSERT INTO folder (id, account_id, name) VALUES"
				       " (10, 1, 'INBOX'), (20, 1, 'Sent'), (30, 1, 'Empty');"
				       "INSERT INTO message (folder_id, uid, flags) VALUES"
				       " (10, 1, ''), (10, 2, ''), (10, NULL, ''), (20, 7, '');"),
			 0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "SELECT known FROM folder WHERE id = 10"), 2);
	ck_assert_int_eq(query_int(s, "SELECT known FROM folder WHERE id = 20"), 1);
	ck_assert_int_eq(query_int(s, "SELECT known FROM folder WHERE id = 30"), 0);
	/* And kept from then on. */
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (folder_id, uid) VALUES (30, 1)"), 0);
	ck_assert_int_eq(query_int(s, "SELECT known FROM folder WHERE id = 30"), 1);
	store_close(s);
}
END_TEST

/* The unprivileged user the open runs as when the tests run as root. */
#define NOBODY 65534

/* The store's directory and files (those there) given to NOBODY, as root. */
static bool give_to_nobody(void)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	char path[sizeof(dbpath) + 8];

	if (geteuid() != 0)
		return true;
	if (chown(tmpdir, NOBODY, NOBODY) < 0) {
		printf("skip: chown %s to uid %d: %s\n", tmpdir, NOBODY, strerror(errno));
		return false;
	}
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", dbpath, suffixes[i]);
		if (chown(path, NOBODY, NOBODY) < 0 && errno != ENOENT)
			ck_abort_msg("chown %s: %s", path, strerror(errno));
	}
	return true;
}

/*
 * store_open(dbpath, flags) in a child that file modes bind: as root (CI,
 * where CAP_DAC_OVERRIDE ignores them) it becomes NOBODY first.  Its
 * return in *ret, its error text (or "") in err, the folders it then
 * reads in *folders (-1: not open); false when it could not drop root.
 */
static bool open_unprivileged(unsigned flags, int *ret, char *err, size_t len, int64_t *folders)
{
	char buf[1024];
	size_t got = 0;
	int p[2], status, n;
	pid_t pid;
	ssize_t k;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct store *c = NULL;
		sqlite3_stmt *st;
		char *e = NULL;
		long long count = -1;
		int r;

		close(p[0]);
		if (geteuid() == 0 &&
		    (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)) {
			dprintf(p[1], "skip cannot become uid %d: %s", NOBODY, strerror(errno));
			_exit(0);
		}
		r = store_open(dbpath, flags, &c, &e);
		if (r == 0 && store_prepare(c, "SELECT count(*) FROM folder", &st) == 0 &&
		    store_step(c, st) == 1)
			count = sqlite3_column_int64(st, 0);
		dprintf(p[1], "%d %lld %s", r, count, e ? e : "");
		store_close(c);
		_exit(0);
	}
	close(p[1]);
	while (got < sizeof(buf) - 1 && (k = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)k;
	buf[got] = '\0';
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (strncmp(buf, "skip ", 5) == 0) {
		printf("skip: %s\n", buf + 5);
		return false;
	}
	{
		long long count;

		ck_assert_msg(sscanf(buf, "%d %lld %n", ret, &count, &n) == 2,
			      "child's answer: \"%s\"", buf);
		*folders = count;
	}
	snprintf(err, len, "%s", buf + n);
	return true;
}

/*
 * A store that cannot be written, opened read-write: refused at once with
 * the file named (issue: a store.db of mode 0444 let cpm-syncd start, and
 * every sync, every change and the outbox failed with "attempt to write a
 * readonly database (8)", for ever; a directory of mode 0555 without the
 * WAL said "(1544)" without a name).  Read-only, it opens and reads.
 */
START_TEST(test_open_unwritable)
{
	struct store *s = open_ok(dbpath, 0);
	char err[1024], want[1024], wal[sizeof(dbpath) + 8], shm[sizeof(dbpath) + 8];
	int64_t folders;
	int r;

	add_account_folder_message(s);
	store_close(s);
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	snprintf(shm, sizeof(shm), "%s-shm", dbpath);
	if (!give_to_nobody())
		return;

	/* The file itself, mode 0444. */
	ck_assert_int_eq(chmod(dbpath, 0444), 0);
	if (!open_unprivileged(0, &r, err, sizeof(err), &folders))
		return;
	snprintf(want, sizeof(want),
		 "the store %s is read-only (mode 0444): cpm-syncd needs to write it", dbpath);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(r, -EACCES);
	ck_assert_int_eq(folders, -1);
	ck_assert(open_unprivileged(STORE_READONLY, &r, err, sizeof(err), &folders));
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(folders, 1);
	ck_assert_int_eq(chmod(dbpath, 0600), 0);

	/* Its WAL file, kept beside it between runs: read-only, and (root
	 * only: CI) another user's, which SQLite cannot fchmod as it does an
	 * empty one of its own when it opens it. */
	ck_assert_int_eq(chmod(wal, 0444), 0);
	ck_assert(open_unprivileged(0, &r, err, sizeof(err), &folders));
	snprintf(want, sizeof(want),
		 "the store's WAL file %s is read-only (mode 0444): cpm-syncd needs to write it",
		 wal);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(r, -EACCES);
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(wal, 0, 0), 0);
		ck_assert_int_eq(chmod(wal, 0644), 0);
		ck_assert(open_unprivileged(0, &r, err, sizeof(err), &folders));
		snprintf(want, sizeof(want),
			 "the store's WAL file %s is read-only (mode 0644, owner uid 0): cpm-syncd "
			 "needs to write it",
			 wal);
		ck_assert_str_eq(err, want);
		ck_assert_int_eq(r, -EACCES);
		ck_assert_int_eq(chown(wal, NOBODY, NOBODY), 0);
	} else {
		printf("skip: a WAL file of another user needs root to make\n");
	}
	ck_assert_int_eq(chmod(wal, 0600), 0);

	/* A directory of mode 0555 without the WAL and shared-memory files. */
	ck_assert_int_eq(unlink(wal), 0);
	ck_assert_int_eq(unlink(shm), 0);
	ck_assert_int_eq(chmod(tmpdir, 0555), 0);
	ck_assert(open_unprivileged(0, &r, err, sizeof(err), &folders));
	ck_assert_int_eq(chmod(tmpdir, 0700), 0);
	snprintf(want, sizeof(want),
		 "the directory %s of the store %s is read-only (mode 0555): cpm-syncd needs to"
		 " make store.db-wal and store.db-shm in it",
		 tmpdir, dbpath);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(r, -EACCES);

	/* Writable again: it opens, with its folder. */
	ck_assert(open_unprivileged(0, &r, err, sizeof(err), &folders));
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(folders, 1);
}
END_TEST

/*
 * The store's file removed or replaced under the open store: each write
 * fails (rolled back) with -CPMSYNC_E_STORE_GONE and says so, where it
 * went to an unlinked file and was lost at the next open.
 */
START_TEST(test_store_file_gone)
{
	struct store *s = open_ok(dbpath, 0);
	char other[sizeof(dbpath) + 8], *real = realpath(dbpath, NULL), want[512];

	ck_assert_ptr_nonnull(real);
	ck_assert_int_eq(store_check_file(s), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (name) VALUES ('a')"), 0);
	ck_assert_int_eq(store_commit(s), 0);

	/* Replaced by another file under the same name. */
	snprintf(other, sizeof(other), "%s.other", dbpath);
	ck_assert_int_eq(close(open(other, O_WRONLY | O_CREAT | O_EXCL, 0600)), 0);
	ck_assert_int_eq(rename(other, dbpath), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (name) VALUES ('b')"), 0);
	ck_assert_int_eq(store_commit(s), -CPMSYNC_E_STORE_GONE);
	snprintf(want, sizeof(want),
		 "the store file %s was removed or replaced while in use: nothing more is written"
		 " to it (it would be lost with it)",
		 real);
	ck_assert_str_eq(store_error(s), want);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM account"), 1);
	store_close(s);

	/* Removed: the same, and it stays so. */
	ck_assert_int_eq(unlink(dbpath), 0);
	s = open_ok(dbpath, 0);
	ck_assert_int_eq(unlink(dbpath), 0);
	ck_assert_int_eq(store_check_file(s), -CPMSYNC_E_STORE_GONE);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (name) VALUES ('c')"), 0);
	ck_assert_int_eq(store_commit(s), -CPMSYNC_E_STORE_GONE);
	ck_assert_int_eq(store_check_file(s), -CPMSYNC_E_STORE_GONE);
	store_close(s);
	free(real);
}
END_TEST

/* Version 27: an account of a store at version 26 keeps its row, its
 * data and its queued changes, the server account unknown (NULL) until
 * its next sync records it. */
START_TEST(test_migrate_account_identity)
{
	struct store *s = NULL;

	ck_assert_uint_ge(store_schema_version(), 27);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 26, &s, NULL), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (id, name) VALUES (1, 'a');"
				       "INSERT INTO folder (id, account_id, name, server_name)"
				       " VALUES (1, 1, 'INBOX', 'INBOX');"
				       "INSERT INTO journal (account_id, op, folder_id)"
				       " VALUES (1, 'create_folder', 1);"),
			 0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM account WHERE name = 'a'"
				      " AND server_host IS NULL AND server_user IS NULL"),
			 1);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM folder"), 1);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM journal"), 1);
	store_close(s);
}
END_TEST

/* Version 28: an account of a store at version 27 keeps its row; its
 * server's delimiter is unknown (NULL) until its next LIST. */
START_TEST(test_migrate_delimiter)
{
	struct store *s = NULL;

	ck_assert_uint_ge(store_schema_version(), 28);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 27, &s, NULL), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (id, name, server_host, server_user)"
				       " VALUES (1, 'a', 'h', 'u')"),
			 0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM account WHERE name = 'a'"
				      " AND server_host = 'h' AND delimiter IS NULL"),
			 1);
	store_close(s);
}
END_TEST

/*
 * Version 29: summaries an older parser wrote show their From and To
 * display names decoded, and Subject words in charsets it did not know;
 * a Subject's UTF-8 words it kept as they were (decoded text that looks
 * like one, or a word that is not base64) stay, and so do other rows.
 */
START_TEST(test_migrate_redecode)
{
	struct store *s = NULL;
	char *v;

	ck_assert_uint_ge(store_schema_version(), 29);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 28, &s, NULL), 0);
	ck_assert_int_eq(
		store_exec(s,
			   "INSERT INTO account (id, name) VALUES (1, 'a');"
			   "INSERT INTO folder (id, account_id, name, server_name) VALUES"
			   " (1, 1, 'INBOX', 'INBOX');"
			   "INSERT INTO message (id, folder_id, uid) VALUES (1, 1, 1), (2, 1, 2);"
			   "INSERT INTO summary (id, subject, from_addr, to_addrs) VALUES"
			   " (1, '=?koi8-r?B?8NLJ?= =?utf-8?Q?x?=',"
			   " '=?utf-8?B?0JjQstCw0L0=?= <ivan@x>',"
			   " 'b@x' || char(10) || '=?utf-8?Q?C?= <c@x>'),"
			   " (2, 'plain =?', 'p@x', '');"),
		0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	v = query_text(s, "SELECT subject || '|' || from_addr || '|' || to_addrs"
			  " FROM summary WHERE id = 1");
	ck_assert_str_eq(v, "\xd0\x9f\xd1\x80\xd0\xb8 =?utf-8?Q?x?=|"
			    "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd <ivan@x>|b@x\nC <c@x>");
	free(v);
	v = query_text(s, "SELECT subject || '|' || from_addr || '|' || to_addrs"
			  " FROM summary WHERE id = 2");
	ck_assert_str_eq(v, "plain =?|p@x|");
	free(v);
	store_close(s);
}
END_TEST

/*
 * Version 35: a quoted display name with encoded-words, which an older
 * parser kept as it was, is decoded; the rest of the value, and a value
 * with an encoded-word only in its address, stay.
 */
START_TEST(test_migrate_redecode_quoted)
{
	struct store *s = NULL;
	char *v;

	ck_assert_uint_ge(store_schema_version(), 35);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 34, &s, NULL), 0);
	ck_assert_int_eq(
		store_exec(s,
			   "INSERT INTO account (id, name) VALUES (1, 'a');"
			   "INSERT INTO folder (id, account_id, name, server_name) VALUES"
			   " (1, 1, 'INBOX', 'INBOX');"
			   "INSERT INTO message (id, folder_id, uid) VALUES (1, 1, 1), (2, 1, 2);"
			   "INSERT INTO summary (id, subject, from_addr, to_addrs) VALUES"
			   " (1, '=?utf-8?Q?s?=', '\"=?UTF-8?B?w6lsw6h2ZQ==?=\" <e@x>',"
			   " 'b@x' || char(10) || '\"=?utf-8?Q?C?=\" <c@x>'),"
			   " (2, 's', '\"q\"@x', '<=?utf-8?Q?a?=@x> \"n\"');"),
		0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	v = query_text(s, "SELECT subject || '|' || from_addr || '|' || to_addrs"
			  " FROM summary WHERE id = 1");
	ck_assert_str_eq(v, "=?utf-8?Q?s?=|\"\xc3\xa9l\xc3\xa8ve\" <e@x>|b@x\n\"C\" <c@x>");
	free(v);
	v = query_text(s, "SELECT subject || '|' || from_addr || '|' || to_addrs"
			  " FROM summary WHERE id = 2");
	ck_assert_str_eq(v, "s|\"q\"@x|<=?utf-8?Q?a?=@x> \"n\"");
	free(v);
	store_close(s);
}
END_TEST

/*
 * Version 30: a message of a store at version 29 without a Date (NULL,
 * shown as 0) takes its internal date, and its conversation's LastMessage
 * and LastActivity follow; a dated one, and one without an internal date
 * either, keep theirs.
 */
START_TEST(test_migrate_undated)
{
	struct store *s = NULL;
	char *v;

	ck_assert_uint_ge(store_schema_version(), 30);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 29, &s, NULL), 0);
	ck_assert_int_eq(
		store_exec(
			s,
			"INSERT INTO account (id, name) VALUES (1, 'a');"
			"INSERT INTO folder (id, account_id, name, server_name) VALUES"
			" (1, 1, 'INBOX', 'INBOX'), (2, 1, 'Default/tel:+1555', 'x');"
			"INSERT INTO message (id, folder_id, uid, internaldate, date, type) VALUES"
			" (1, 2, 1, 1000, 500, 'message'),"
			" (2, 2, 2, 900, NULL, 'message'),"
			" (3, 2, 3, 2000, 600, 'message'),"
			" (4, 1, 9, 3000, NULL, 'mail'),"
			" (5, 1, 10, NULL, NULL, 'mail');"
			"INSERT INTO message_state (id, flags) VALUES"
			" (1, ''), (2, ''), (3, ''), (4, ''), (5, '');"
			/* The conversation rows as version 29 computes them. */
			"UPDATE account SET cpm_root = 'Other';"
			"UPDATE account SET cpm_root = 'Default';"),
		0);
	v = query_text(s, "SELECT last_id || ' ' || last_date FROM conversation");
	ck_assert_str_eq(v, "3 600");
	free(v);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	v = query_text(s, "SELECT group_concat(id || ':' || ifnull(date, '-'), ' ')"
			  " FROM (SELECT * FROM message ORDER BY id)");
	ck_assert_str_eq(v, "1:500 2:900 3:600 4:3000 5:-");
	free(v);
	v = query_text(s,
		       "SELECT last_id || ' ' || last_date || ' ' || messages FROM conversation");
	ck_assert_str_eq(v, "2 900 3");
	free(v);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM conv_stale"), 0);
	store_close(s);
}
END_TEST

/*
 * Version 23: flags, server_flags and modseq move to message_state.  A
 * store at version 22 keeps every value, its conversations' unseen
 * counts, and from then on the flag trigger and the folder triggers count
 * from the new table; a message deleted takes its state row with it.
 */
START_TEST(test_migrate_message_state)
{
	struct store *s = NULL;
	char *v;

	ck_assert_uint_ge(store_schema_version(), 23);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 22, &s, NULL), 0);
	ck_assert_int_eq(
		store_exec(s,
			   "INSERT INTO account (id, name) VALUES (1, 'a');"
			   "INSERT INTO folder (id, account_id, name, server_name) VALUES"
			   " (1, 1, 'INBOX', 'INBOX'), (2, 1, 'Default/tel:+1555', 'x'),"
			   " (3, 1, 'Default/tel:+1555/s-1', 'x');"
			   "INSERT INTO message (id, folder_id, uid, flags, server_flags, modseq,"
			   " date, type) VALUES"
			   " (1, 2, 1, '\\Seen', '\\Seen', 7, 100, 'message'),"
			   " (2, 2, 2, '', '\\Flagged', 8, 300, 'message'),"
			   " (3, 2, NULL, '$Work', NULL, NULL, 200, 'message'),"
			   " (4, 1, 9, '\\Answered', '', 3, 10, 'mail'),"
			   " (5, 3, 1, '', '', 4, 50, 'message');"
			   /* The conversation rows as version 22 computes them. */
			   "UPDATE account SET cpm_root = 'Other';"
			   "UPDATE account SET cpm_root = 'Default';"),
		0);
	ck_assert_int_eq(query_int(s, "SELECT messages * 100 + unseen FROM conversation"), 403);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pragma_table_info('message')"
				      " WHERE name IN ('flags', 'server_flags', 'modseq')"),
			 0);
	v = query_text(s, "SELECT group_concat(id || ':' || flags || ':' ||"
			  " ifnull(server_flags, '-') || ':' || ifnull(modseq, '-'), '|')"
			  " FROM (SELECT * FROM message_state ORDER BY id)");
	ck_assert_str_eq(v, "1:\\Seen:\\Seen:7|2::\\Flagged:8|3:$Work:-:-|4:\\Answered::3|5:::4");
	free(v);
	ck_assert_int_eq(query_int(s, "SELECT messages * 100 + unseen FROM conversation"), 403);
	/* conv_message_flags, on message_state now. */
	ck_assert_int_eq(store_exec(s, "UPDATE message_state SET flags = '\\Seen' WHERE id = 2"),
			 0);
	ck_assert_int_eq(query_int(s, "SELECT unseen FROM conversation"), 2);
	ck_assert_int_eq(store_exec(s, "UPDATE message_state SET flags = '' WHERE id = 1"), 0);
	ck_assert_int_eq(query_int(s, "SELECT unseen FROM conversation"), 3);
	/* Not for an object of a session folder deleted here, which the
	 * recompute leaves out. */
	ck_assert_int_eq(store_exec(s, "UPDATE folder SET removed = 1 WHERE id = 3"), 0);
	ck_assert_int_eq(query_int(s, "SELECT messages * 100 + unseen FROM conversation"), 302);
	ck_assert_int_eq(store_exec(s, "UPDATE message_state SET flags = '\\Seen' WHERE id = 5"),
			 0);
	ck_assert_int_eq(query_int(s, "SELECT messages * 100 + unseen FROM conversation"), 302);
	/* A folder trigger's recompute (conv_folder_rename) reads it too. */
	ck_assert_int_eq(store_exec(s, "UPDATE folder SET name = 'Default/tel:+1666' WHERE id = 2"),
			 0);
	v = query_text(s, "SELECT folder || ' ' || messages || ' ' || unseen FROM conversation");
	ck_assert_str_eq(v, "Default/tel:+1666 3 2");
	free(v);
	/* The state row goes with its message. */
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE id = 3"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message_state WHERE id = 3"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message_state"), 4);
	store_close(s);
}
END_TEST

/*
 * Version 24: the recompute of a conversation and the state-object
 * update find session-info and group-state objects through
 * message_conv_state (their WHERE spells its partial index's), not by
 * reading every object of the conversation's folders.
 */
static unsigned plan_uses(struct store *s, const char *sql, const char *index)
{
	char *q = NULL;
	sqlite3_stmt *st;
	unsigned n = 0;

	ck_assert_int_ge(asprintf(&q, "EXPLAIN QUERY PLAN %s", sql), 0);
	ck_assert_int_eq(store_prepare(s, q, &st), 0);
	while (store_step(s, st) > 0)
		if (strstr((const char *)sqlite3_column_text(st, 3), index))
			n++;
	sqlite3_reset(st);
	free(q);
	return n;
}

START_TEST(test_conv_state_index)
{
	struct store *s = open_ok(dbpath, 0);

	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema"
				      " WHERE name = 'message_conv_state'"),
			 1);
	/* is_group, subject and participants. */
	ck_assert_uint_eq(plan_uses(s, store_sql_conv_stale_recompute, "message_conv_state"), 3);
	ck_assert_uint_eq(plan_uses(s, store_sql_conv_state, "message_conv_state"), 2);
	/* And the folder triggers that embed the recompute (EXPLAIN QUERY
	 * PLAN does not show trigger programs): spelled the same. */
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"
				      " AND instr(sql, '(m.type = ''session-info'' OR m.type ="
				      " ''group-state'') AND m.type = ''group-state''') > 0"),
			 5);
	store_close(s);
}
END_TEST

/*
 * Version 21: an object gone notes its conversation in conv_stale instead
 * of recomputing it in its trigger; the next reader of conversation rows
 * finds it recomputed (the store's flush), and the note is gone.
 */
START_TEST(test_migrate_conv_stale)
{
	struct store *s = NULL;
	char *err = NULL;

	ck_assert_uint_ge(store_schema_version(), 21);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 20, &s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (id, name) VALUES (1, 'a');"
				       "INSERT INTO folder (id, account_id, name) VALUES"
				       " (10, 1, 'Default/tel:+1');"
				       "INSERT INTO message (folder_id, uid, flags, type) VALUES"
				       " (10, 1, '', 'message'), (10, 2, '', 'message'),"
				       " (10, 3, '\\Seen', 'message');"
				       /* The rows above were written by raw SQL: the
					* conversation from scratch. */
				       "UPDATE account SET cpm_root = 'x';"
				       "UPDATE account SET cpm_root = 'Default';"),
			 0);
	ck_assert_int_eq(query_int(s, "SELECT messages FROM conversation"), 3);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE uid = 1"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM conv_stale"), 1);
	ck_assert_int_eq(query_int(s, "SELECT messages FROM conversation"), 2);
	ck_assert_int_eq(query_int(s, "SELECT unseen FROM conversation"), 1);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM conv_stale"), 0);
	store_close(s);
}
END_TEST

START_TEST(test_migrate_imdn_in_c)
{
	struct store *s = NULL;
	char *err = NULL, *got;
	int64_t orig2;

	ck_assert_uint_ge(store_schema_version(), 16);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 15, &s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(
		store_exec(
			s,
			"INSERT INTO account (id, name) VALUES (1, 'a'), (2, 'b');"
			"INSERT INTO folder (id, account_id, name) VALUES"
			" (10, 1, 'Default/conv-1'), (20, 2, 'Default/conv-1');"
			"INSERT INTO message (id, folder_id, uid, type, imdn_message_id, imdn_ref)"
			" VALUES (101, 10, 1, 'message', 'im-1', '');"
			"INSERT INTO message (id, folder_id, uid, type, imdn_message_id, imdn_ref,"
			" status) VALUES (102, 10, 2, 'imdn', 'rp-1', 'im-1', 'delivered')"),
		0);
	/* Version 15's trigger raised it. */
	ck_assert_int_eq(query_int(s, "SELECT status = 'delivered' FROM message WHERE id = 101"),
			 1);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"
				      " AND name IN ('conv_imdn_report', 'conv_imdn_original')"),
			 0);
	/* Version 20 keeps a new object's conversation from C (store-message.c
	 * conv_added()): no trigger on message INSERT for it. */
	ck_assert_int_eq(query_int(s,
				   "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"
				   " AND name IN ('conv_message_insert', 'conv_summary_insert')"),
			 0);
	ck_assert_int_eq(query_int(s, "SELECT status = 'delivered' FROM message WHERE id = 101"),
			 1);
	/* Version 39 dropped message_imdn: the originals are found by their
	 * object key in message_object; the probes take the indexes (a miss
	 * reads no row). */
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
				      " AND name = 'message_imdn'"),
			 0);
	{
		static const char *const probes[][2] = {
			{ store_sql_imdn_originals,
			  "SEARCH message USING INDEX message_object (<expr>=?)" },
			{ store_sql_imdn_original_probe,
			  "SEARCH message USING COVERING INDEX message_imdn_ref (imdn_ref=?)" },
		};

		for (size_t i = 0; i < 2; i++) {
			char sql[1024];
			sqlite3_stmt *st;

			snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", probes[i][0]);
			ck_assert_int_eq(store_prepare(s, sql, &st), 0);
			ck_assert_int_eq(store_step(s, st), 1);
			ck_assert_str_eq((const char *)sqlite3_column_text(st, 3), probes[i][1]);
			sqlite3_reset(st);
		}
	}
	/* A report in another account does not raise it; one in its own does. */
	insert_summary(s, 20, 1, "imdn", "rp-2", "im-1", "displayed");
	ck_assert_int_eq(query_int(s, "SELECT status = 'delivered' FROM message WHERE id = 101"),
			 1);
	insert_summary(s, 10, 3, "imdn", "rp-3", "im-1", "displayed");
	ck_assert_int_eq(query_int(s, "SELECT status = 'displayed' FROM message WHERE id = 101"),
			 1);
	/* A weaker report later does not lower it. */
	insert_summary(s, 10, 4, "imdn", "rp-4", "im-1", "failed");
	ck_assert_int_eq(query_int(s, "SELECT status = 'displayed' FROM message WHERE id = 101"),
			 1);
	/* The reports first: the original takes the strongest of its account. */
	insert_summary(s, 10, 5, "imdn", "rp-5", "im-2", "delivered");
	insert_summary(s, 20, 2, "imdn", "rp-6", "im-2", "displayed");
	orig2 = insert_summary(s, 10, 6, "message", "im-2", "", "");
	got = query_text(s, "SELECT group_concat(id || '=' || status, ' ') FROM"
			    " (SELECT id, status FROM message WHERE type = 'message' ORDER BY id)");
	ck_assert_int_eq(orig2, 108);
	ck_assert_str_eq(got, "101=displayed 108=delivered");
	free(got);
	/* Reports are not messages: the conversation of account 1 counts two. */
	got = query_text(s, "SELECT group_concat(account_id || ':' || messages || ':' || last_id,"
			    " ' ') FROM (SELECT * FROM conversation ORDER BY account_id)");
	ck_assert_str_eq(got, "1:2:108 2:0:0");
	free(got);
	store_close(s);
}
END_TEST

/*
 * Version 39: message_imdn is gone; the originals a report names are
 * found through message_object (their object key is their
 * IMDN-Message-ID), by the C lookups and by conv_message_reclassified,
 * which raises an original when a row becomes a report.  A store made at
 * version 39 with an original and a report migrates, and a row
 * reclassified as a report afterwards still raises its original, in its
 * own account only, and not a row whose Message-ID is that name.
 */
START_TEST(test_migrate_imdn_by_object_key)
{
	struct store *s = NULL;
	char *err = NULL, *got;

	ck_assert_uint_ge(store_schema_version(), 39);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 38, &s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(store_exec(s,
				    "INSERT INTO account (id, name) VALUES (1, 'a'), (2, 'b');"
				    "INSERT INTO folder (id, account_id, name) VALUES"
				    " (10, 1, 'Default/conv-1'), (20, 2, 'Default/conv-1');"
				    "INSERT INTO message (id, folder_id, uid, type, message_id,"
				    " imdn_message_id, imdn_ref, status) VALUES"
				    " (101, 10, 1, 'message', '<a@x>', 'im-1', '', 'delivered'),"
				    " (102, 10, 2, 'imdn', '<b@x>', 'rp-1', 'im-1', 'delivered'),"
				    " (103, 20, 1, 'message', '<c@x>', 'im-1', '', ''),"
				    " (104, 10, 3, 'mail', 'im-1', '', '', ''),"
				    " (105, 10, 4, 'message', '<d@x>', 'rp-2', '', '')"),
			 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
				      " AND name = 'message_imdn'"),
			 1);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
				      " AND name = 'message_imdn'"),
			 0);
	/* The lookups of originals: message_object, not a scan. */
	{
		static const char *const lookups[][2] = {
			{ store_sql_imdn_originals,
			  "SEARCH message USING INDEX message_object (<expr>=?)" },
			{ store_sql_imdn_reclassified_originals,
			  "SEARCH m USING INDEX message_object (<expr>=?)" },
		};

		for (size_t i = 0; i < ARRAY_SIZE(lookups); i++) {
			char sql[2048];
			sqlite3_stmt *st;
			bool seen = false;

			snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", lookups[i][0]);
			ck_assert_int_eq(store_prepare(s, sql, &st), 0);
			while (store_step(s, st) > 0) {
				const char *d = (const char *)sqlite3_column_text(st, 3);

				ck_assert_msg(strncmp(d, "SCAN", 4) != 0, "%s", d);
				seen = seen || strcmp(d, lookups[i][1]) == 0;
			}
			ck_assert_msg(seen, "no \"%s\" in the plan", lookups[i][1]);
		}
	}
	/* The trigger's raise says the key too (else it reads every row). */
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"
				      " AND name = 'conv_message_reclassified'"
				      " AND instr(sql, '(CASE WHEN imdn_message_id <> '''' THEN"
				      " imdn_message_id ELSE message_id END) = NEW.imdn_ref') > 0"),
			 1);
	/* Row 105 becomes a "displayed" report on im-1: 101 (its account,
	 * lower) is raised; 103 (another account) and 104 (a mail whose
	 * Message-ID is im-1) are not. */
	ck_assert_int_eq(store_exec(s, "UPDATE message SET type = 'imdn', imdn_ref = 'im-1',"
				       " status = 'displayed' WHERE id = 105"),
			 0);
	got = query_text(
		s, "SELECT group_concat(id || '=' || status, ' ') FROM"
		   " (SELECT id, status FROM message WHERE id IN (101, 103, 104) ORDER BY id)");
	ck_assert_str_eq(got, "101=displayed 103= 104=");
	free(got);
	store_close(s);
}
END_TEST

/*
 * Version 17: a Status change bumps its conversation's version through
 * store_conv_bump() (once per conversation folder and transaction, at the
 * commit; at once outside a transaction) and conv_message_reclassified,
 * no longer per row by the trigger conv_message_status.  A store made at
 * version 16 migrates without that trigger; each way a Status changes
 * still moves the version of its conversation, and of it only.
 */
static int64_t conv_version(struct store *s, const char *folder)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT version FROM conversation WHERE folder = '%s'", folder);
	return query_int(s, sql);
}

START_TEST(test_migrate_status_bump_in_c)
{
	struct store *s = NULL;
	char *err = NULL;
	int64_t v1, v2, rep;

	ck_assert_uint_ge(store_schema_version(), 17);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 16, &s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (id, name) VALUES (1, 'a');"
				       "INSERT INTO folder (id, account_id, name) VALUES"
				       " (10, 1, 'Default/conv-1'), (20, 1, 'Default/conv-2');"
				       "INSERT INTO message (id, folder_id, uid, type,"
				       " imdn_message_id, imdn_ref) VALUES"
				       " (101, 10, 1, 'message', 'im-1', ''),"
				       " (201, 20, 1, 'message', 'im-2', ''),"
				       " (202, 20, 2, 'message', 'im-3', '')"),
			 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"
				      " AND name = 'conv_message_status'"),
			 1);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"
				      " AND name = 'conv_message_status'"),
			 0);
	/* Two raises in one transaction: one bump, at the commit. */
	v1 = conv_version(s, "Default/conv-1");
	v2 = conv_version(s, "Default/conv-2");
	ck_assert_int_eq(store_begin(s), 0);
	insert_summary(s, 20, 3, "imdn", "rp-1", "im-1", "delivered");
	insert_summary(s, 20, 4, "imdn", "rp-2", "im-1", "displayed");
	ck_assert_int_eq(query_int(s, "SELECT status = 'displayed' FROM message WHERE id = 101"),
			 1);
	ck_assert_int_eq(conv_version(s, "Default/conv-1"), v1);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(conv_version(s, "Default/conv-1"), v1 + 1);
	/* conv-2 moved for its two new reports (conv_message_insert) only. */
	ck_assert_int_eq(conv_version(s, "Default/conv-2"), v2 + 2);
	/* A weaker report raises nothing and bumps nothing. */
	v1 = conv_version(s, "Default/conv-1");
	v2 = conv_version(s, "Default/conv-2");
	insert_summary(s, 20, 5, "imdn", "rp-3", "im-1", "delivered");
	ck_assert_int_eq(conv_version(s, "Default/conv-1"), v1);
	ck_assert_int_eq(query_int(s, "SELECT status = 'displayed' FROM message WHERE id = 101"),
			 1);
	/* Outside a transaction: at once. */
	v2 = conv_version(s, "Default/conv-2");
	insert_summary(s, 10, 2, "imdn", "rp-4", "im-2", "delivered");
	ck_assert_int_eq(query_int(s, "SELECT status = 'delivered' FROM message WHERE id = 201"),
			 1);
	ck_assert_int_eq(conv_version(s, "Default/conv-2"), v2 + 1);
	/* Rolled back: neither the Status nor the bump. */
	v1 = conv_version(s, "Default/conv-1");
	v2 = conv_version(s, "Default/conv-2");
	ck_assert_int_eq(store_begin(s), 0);
	insert_summary(s, 10, 3, "imdn", "rp-5", "im-3", "displayed");
	ck_assert_int_eq(store_rollback(s), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(conv_version(s, "Default/conv-1"), v1);
	ck_assert_int_eq(conv_version(s, "Default/conv-2"), v2);
	ck_assert_int_eq(query_int(s, "SELECT status = '' FROM message WHERE id = 202"), 1);
	/* A message classified again as a report raises its original in
	 * another conversation (conv_message_reclassified): that one moves. */
	rep = insert_summary(s, 10, 4, "message", "", "", "");
	v2 = conv_version(s, "Default/conv-2");
	{
		struct msg_summary sum = { .type = "imdn",
					   .imdn_ref = (char *)"im-3",
					   .status = (char *)"delivered" };

		ck_assert_int_eq(store_message_set_cpm(s, rep, &sum), 0);
		ck_assert_int_eq(conv_version(s, "Default/conv-2"), v2 + 1);
		ck_assert_int_eq(
			query_int(s, "SELECT status = 'delivered' FROM message WHERE id = 202"), 1);
		/* The report's own Status changes, its Type stays: its
		 * conversation moves. */
		v1 = conv_version(s, "Default/conv-1");
		sum.status = (char *)"displayed";
		ck_assert_int_eq(store_message_set_cpm(s, rep, &sum), 0);
		ck_assert_int_eq(conv_version(s, "Default/conv-1"), v1 + 1);
		/* The same again: no change, no bump. */
		ck_assert_int_eq(store_message_set_cpm(s, rep, &sum), 0);
		ck_assert_int_eq(conv_version(s, "Default/conv-1"), v1 + 1);
	}
	store_close(s);
}
END_TEST

/*
 * An original inside a write transaction probes for earlier reports only
 * when store-message.c's filter of report names may hold its name: every
 * way a report name comes must reach it (an insert on this connection, a
 * message classified again as a report, a commit of another connection),
 * or the original would miss its Status.
 */
static const char *status_of(struct store *s, int64_t id)
{
	static char buf[32];
	char sql[128], *t;

	snprintf(sql, sizeof(sql), "SELECT status FROM message WHERE id = %lld", (long long)id);
	t = query_text(s, sql);
	snprintf(buf, sizeof(buf), "%s", t ? t : "(null)");
	free(t);
	return buf;
}

START_TEST(test_imdn_filter_in_transaction)
{
	struct store *s = open_ok(dbpath, 0), *other;
	int64_t orig, rep;

	ck_assert_int_eq(store_exec(s, "INSERT INTO account (id, name) VALUES (1, 'a');"
				       "INSERT INTO folder (id, account_id, name) VALUES"
				       " (10, 1, 'Default/conv-1')"),
			 0);
	/* The filter loads (no report yet), then learns a report of this
	 * connection: the original after it in the same transaction takes it. */
	ck_assert_int_eq(store_begin(s), 0);
	orig = insert_summary(s, 10, 1, "message", "im-0", "", "");
	ck_assert_str_eq(status_of(s, orig), "");
	insert_summary(s, 10, 2, "imdn", "rp-1", "im-1", "delivered");
	orig = insert_summary(s, 10, 3, "message", "im-1", "", "");
	ck_assert_str_eq(status_of(s, orig), "delivered");
	ck_assert_int_eq(store_commit(s), 0);
	/* Next transaction, same filter: still known. */
	ck_assert_int_eq(store_begin(s), 0);
	orig = insert_summary(s, 10, 4, "message", "im-1", "", "");
	ck_assert_str_eq(status_of(s, orig), "delivered");
	ck_assert_int_eq(store_commit(s), 0);
	/* A report written by another connection. */
	other = open_ok(dbpath, 0);
	insert_summary(other, 10, 5, "imdn", "rp-2", "im-2", "displayed");
	store_close(other);
	ck_assert_int_eq(store_begin(s), 0);
	orig = insert_summary(s, 10, 6, "message", "im-2", "", "");
	ck_assert_str_eq(status_of(s, orig), "displayed");
	ck_assert_int_eq(store_commit(s), 0);
	/* A message classified again as a report. */
	rep = insert_summary(s, 10, 7, "message", "", "", "");
	{
		struct msg_summary sum = { .type = "imdn",
					   .imdn_ref = (char *)"im-3",
					   .status = (char *)"delivered" };

		ck_assert_int_eq(store_message_set_cpm(s, rep, &sum), 0);
	}
	ck_assert_int_eq(store_begin(s), 0);
	orig = insert_summary(s, 10, 8, "message", "im-3", "", "");
	ck_assert_str_eq(status_of(s, orig), "delivered");
	/* A name no report has: nothing. */
	orig = insert_summary(s, 10, 9, "message", "im-4", "", "");
	ck_assert_str_eq(status_of(s, orig), "");
	ck_assert_int_eq(store_commit(s), 0);
	store_close(s);
}
END_TEST

START_TEST(test_newer_version_refused)
{
	unsigned current = store_schema_version();
	struct store *s = open_ok(dbpath, 0);
	char sql[64], want[64];
	char *err = NULL;

	snprintf(sql, sizeof(sql), "PRAGMA user_version = %u", current + 1);
	ck_assert_int_eq(store_exec(s, sql), 0);
	store_close(s);

	s = (struct store *)1;
	ck_assert_int_eq(store_open(dbpath, 0, &s, &err), -CPMSYNC_E_STORE_CORRUPT);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(err);
	snprintf(want, sizeof(want), "store.db has schema version %u; this cpmsync knows up to %u",
		 current + 1, current);
	ck_assert_msg(strstr(err, want), "message: %s", err);
	free(err);

	err = NULL;
	ck_assert_int_eq(store_open(dbpath, STORE_READONLY, &s, &err), -CPMSYNC_E_STORE_CORRUPT);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, want), "message: %s", err);
	free(err);
}
END_TEST

START_TEST(test_readonly_refuses_old_or_missing)
{
	struct store *s = NULL;
	char *err = NULL;

	/* A reader never creates the file. */
	ck_assert_int_lt(store_open(dbpath, STORE_READONLY, &s, &err), 0);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(err);
	free(err);
	ck_assert_int_eq(access(dbpath, F_OK), -1);

	/* A file with no schema yet (the daemon stopped before committing
	 * it): empty, said as such. */
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 0, &s, NULL), 0);
	store_close(s);
	ck_assert_int_eq(store_open(dbpath, STORE_READONLY, &s, &err), -CPMSYNC_E_NOT_FOUND);
	ck_assert_ptr_nonnull(strstr(err, "store.db: the store is empty (cpm-syncd has not made it "
					  "yet: it is starting, or stopped before it could)"));
	free(err);

	/* A reader cannot migrate. */
	ck_assert_int_eq(unlink(dbpath), 0);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 3, &s, NULL), 0);
	store_close(s);
	ck_assert_int_eq(store_open(dbpath, STORE_READONLY, &s, &err), -CPMSYNC_E_STORE_CORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "schema version 3"));
	free(err);

	/* Bad arguments. */
	ck_assert_int_eq(store_open(NULL, 0, &s, NULL), -EINVAL);
	ck_assert_int_eq(store_open(dbpath, 0x80, &s, NULL), -EINVAL);
	ck_assert_int_eq(store_open(dbpath, 0, NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_foreign_keys_cascade)
{
	struct store *s = open_ok(dbpath, 0);

	add_account_folder_message(s);
	ck_assert_int_eq(
		store_exec(s, "INSERT INTO message (id, folder_id, uid) VALUES (101, 10, 8)"), 0);
	/* 100: a body over STORE_BODY_INLINE_MAX (a pack); 101: a small one (inline). */
	ck_assert_int_eq(store_body_put(s, 100, big_body, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(store_body_put(s, 101, "\x00\xff", 2), 0);
	ck_assert_int_eq(query_int(s, "SELECT sum(has_body) FROM message WHERE id IN (100, 101)"),
			 2);
	ck_assert_int_eq(query_int(s, "SELECT group_concat(message_id) FROM body_pack"), 100);
	ck_assert_int_eq(query_int(s, "SELECT group_concat(message_id) FROM body_inline"), 101);
	ck_assert_int_eq(store_exec(s, "INSERT INTO journal (account_id, op, folder_id, message_id)"
				       " VALUES (1, 'flag', 10, 100)"),
			 0);
	ck_assert_int_gt(query_int(s, "SELECT created FROM journal"), 1600000000);
	ck_assert_int_eq(query_int(s, "SELECT attempts FROM journal"), 0);

	/* A child without its parent is refused. */
	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (account_id, name) VALUES (99, 'x')"),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_ptr_nonnull(strstr(store_error(s), "FOREIGN KEY"));
	/* Duplicate (folder, uid). */
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (folder_id, uid) VALUES (10, 7)"),
			 -EEXIST);
	/* Several messages without a UID yet are fine. */
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (folder_id) VALUES (10);"
				       "INSERT INTO message (folder_id) VALUES (10)"),
			 0);

	ck_assert_int_eq(store_exec(s, "DELETE FROM account WHERE id = 1"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM folder"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message"), 0);
	/* A body goes with its row: inline in the same statement; in a pack
	 * its range queued in the same statement, punched out after the
	 * commit. */
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_inline"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 0);
	ck_assert_int_eq(query_int(s, "SELECT len FROM pack_trash"), STORE_BODY_INLINE_MAX + 1);
	ck_assert_int_eq(query_int(s, "SELECT live FROM pack"), 0);
	ck_assert_int_eq(store_bodies_collect(s, false), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack_trash"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM journal"), 0);

	/* Local ids are never reused. */
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (name) VALUES ('b');"
				       "INSERT INTO folder (account_id, name) VALUES (2, 'INBOX');"
				       "INSERT INTO message (folder_id) VALUES (11)"),
			 0);
	ck_assert_int_gt(store_last_insert_id(s), 102);
	store_close(s);
}
END_TEST

static int64_t ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

START_TEST(test_begin_immediate_busy)
{
	struct store *a = open_ok(dbpath, 0);
	struct store *b = open_ok(dbpath, 0);
	struct timespec t0;

	ck_assert_int_eq(store_begin(a), 0);
	ck_assert(store_in_transaction(a));
	ck_assert_int_eq(store_begin(a), -EBUSY); /* no nesting */

	ck_assert_int_eq(store_set_busy_timeout(b, 100), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(store_begin(b), -CPMSYNC_E_STORE_BUSY);
	ck_assert_int_ge(ms_since(&t0), 90);
	ck_assert(!store_in_transaction(b));
	ck_assert_str_ne(store_error(b), "");

	/* Once the writer is done, the other connection gets its turn. */
	ck_assert_int_eq(store_exec(a, "INSERT INTO account (name) VALUES ('a')"), 0);
	ck_assert_int_eq(store_commit(a), 0);
	ck_assert(!store_in_transaction(a));
	ck_assert_int_eq(store_begin(b), 0);
	ck_assert_int_eq(query_int(b, "SELECT count(*) FROM account"), 1);
	ck_assert_int_eq(store_commit(b), 0);

	store_close(b);
	store_close(a);
}
END_TEST

START_TEST(test_rollback_undoes)
{
	struct store *s = open_ok(dbpath, 0);

	ck_assert_int_eq(store_commit(s), -EINVAL);
	ck_assert_int_eq(store_rollback(s), 0);

	ck_assert_int_eq(store_begin(s), 0);
	add_account_folder_message(s);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message"), 1);
	ck_assert_int_eq(store_rollback(s), 0);
	ck_assert(!store_in_transaction(s));
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM account"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message"), 0);

	/* A committed transaction survives a reopen; an open one does not. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (name) VALUES ('kept')"), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (name) VALUES ('lost')"), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (name) VALUES ('kept')"), -EEXIST);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM account"), 1);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM account WHERE name = 'kept'"), 1);
	store_close(s);
}
END_TEST

#define BODY_SIZE (1024 * 1024 + 123)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(seed >> 16);
	}
}

static void body_via_pipe(struct store *s, int64_t id, const unsigned char *data, size_t n,
			  uint64_t announced, int want)
{
	int p[2], status;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		size_t done = 0;

		close(p[0]);
		while (done < n) {
			ssize_t k = write(p[1], data + done, n - done);

			if (k <= 0)
				_exit(1);
			done += (size_t)k;
		}
		_exit(0);
	}
	close(p[1]);
	ck_assert_int_eq(store_body_write_fd(s, id, p[0], announced), want);
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (want == 0)
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void check_body(struct store *s, int64_t id, const unsigned char *want, size_t n)
{
	char path[sizeof(dbpath) + 16];
	unsigned char *got = malloc(n + 1);
	ssize_t k;
	int fd;

	ck_assert_ptr_nonnull(got);
	snprintf(path, sizeof(path), "%s/body.out", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(store_body_read_fd(s, id, fd), 0);
	ck_assert_int_eq(lseek(fd, 0, SEEK_END), (off_t)n);
	k = pread(fd, got, n + 1, 0);
	ck_assert_int_eq(k, (ssize_t)n);
	ck_assert(memcmp(got, want, n) == 0);
	close(fd);
	unlink(path);
	free(got);
}

START_TEST(test_body_roundtrip)
{
	struct store *s = open_ok(dbpath, 0);
	unsigned char *a = malloc(BODY_SIZE), *b = malloc(BODY_SIZE);
	int fd;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	fill(a, BODY_SIZE, 1);
	fill(b, BODY_SIZE, 2);
	add_account_folder_message(s);

	body_via_pipe(s, 100, a, BODY_SIZE, BODY_SIZE, 0);
	ck_assert_int_eq(query_int(s, "SELECT len FROM body_pack WHERE message_id = 100"),
			 BODY_SIZE);
	check_body(s, 100, a, BODY_SIZE);

	/* Too short: the old body stays. */
	body_via_pipe(s, 100, b, 1000, BODY_SIZE, -EIO);
	ck_assert(!store_in_transaction(s));
	check_body(s, 100, a, BODY_SIZE);

	/* Replace, from a regular file, inside the caller's transaction. */
	{
		char path[sizeof(dbpath) + 16];

		snprintf(path, sizeof(path), "%s/body.in", tmpdir);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, b, BODY_SIZE), BODY_SIZE);
		ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
		ck_assert_int_eq(store_begin(s), 0);
		ck_assert_int_eq(store_body_write_fd(s, 100, fd, BODY_SIZE), 0);
		ck_assert(store_in_transaction(s));
		ck_assert_int_eq(store_commit(s), 0);
		close(fd);
	}
	check_body(s, 100, b, BODY_SIZE);

	/* Empty body: inline, and the large one it replaces is punched out of
	 * its pack once the store committed. */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(store_body_write_fd(s, 100, fd, 0), 0);
	close(fd);
	check_body(s, 100, a, 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack_trash"), 0);
	ck_assert_int_eq(
		query_int(s, "SELECT length(data) FROM body_inline WHERE message_id = 100"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_trash"), 0);

	/* The threshold, through a pipe: STORE_BODY_INLINE_MAX bytes inline,
	 * one more in a pack (the inline row goes). */
	body_via_pipe(s, 100, b, STORE_BODY_INLINE_MAX, STORE_BODY_INLINE_MAX, 0);
	check_body(s, 100, b, STORE_BODY_INLINE_MAX);
	ck_assert_int_eq(
		query_int(s, "SELECT length(data) FROM body_inline WHERE message_id = 100"),
		STORE_BODY_INLINE_MAX);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 0);
	/* Too short, inline: the old body stays. */
	body_via_pipe(s, 100, a, 100, 200, -EIO);
	ck_assert(!store_in_transaction(s));
	check_body(s, 100, b, STORE_BODY_INLINE_MAX);
	body_via_pipe(s, 100, a, STORE_BODY_INLINE_MAX + 1, STORE_BODY_INLINE_MAX + 1, 0);
	check_body(s, 100, a, STORE_BODY_INLINE_MAX + 1);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_inline"), 0);
	ck_assert_int_eq(query_int(s, "SELECT len FROM body_pack WHERE message_id = 100"),
			 STORE_BODY_INLINE_MAX + 1);

	/* No such message, no body. */
	body_via_pipe(s, 999, a, 10, 10, -CPMSYNC_E_NOT_FOUND);
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ck_assert_int_eq(store_body_read_fd(s, 999, fd), -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(store_body_read_fd(s, 100, -1), -EINVAL);
	close(fd);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 1);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_inline"), 0);

	free(a);
	free(b);
	store_close(s);
}
END_TEST

/*
 * A version 3 store with 64 KiB pages and its bodies in the body table (as
 * every store before version 4 was made): the migration moves the bodies
 * into the bodies database and rebuilds the store with small pages.
 */
START_TEST(test_migrate_moves_bodies)
{
	struct store *s = NULL;
	sqlite3 *raw;
	void *got;
	size_t len;

	ck_assert_int_eq(sqlite3_open(dbpath, &raw), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(raw, "PRAGMA page_size = 65536; PRAGMA journal_mode = WAL",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(raw);
	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 3, &s, NULL), 0);
	ck_assert_int_eq(query_int(s, "PRAGMA page_size"), 65536);
	add_account_folder_message(s);
	ck_assert_int_eq(
		store_exec(
			s,
			"INSERT INTO message (id, folder_id, uid) VALUES (101, 10, 8);"
			"INSERT INTO body (message_id, data) VALUES (100, CAST('hello' AS BLOB))"),
		0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "PRAGMA page_size"), STORE_PAGE_SIZE);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM sqlite_schema WHERE name = 'body'"), 0);
	ck_assert_int_eq(query_int(s, "SELECT has_body FROM message WHERE id = 100"), 1);
	ck_assert_int_eq(query_int(s, "SELECT has_body FROM message WHERE id = 101"), 0);
	check_got(s, 100, "hello", 5);
	ck_assert_int_eq(store_body_get(s, 101, &got, &len), -CPMSYNC_E_NOT_FOUND);
	store_close(s);
}
END_TEST

/*
 * A version 5 store with CPM objects as the version-5 parser filed them
 * (types "message" and "session-history", no direction): version 6 finds
 * their conversations (the root "Default"), a group by its session
 * folder, counts and Unseen, and renames the old type.  The triggers then
 * keep the rows as new objects arrive.
 */
/*
 * Version 32: a conversation counted an object flagged \Deleted (not
 * expunged); the migration computes it anew without it.
 */
START_TEST(test_migrate_deleted_not_counted)
{
	struct store *s = NULL;
	char *v;

	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 31, &s, NULL), 0);
	ck_assert_int_eq(
		store_exec(s,
			   "INSERT INTO account (id, name) VALUES (1, 'a');"
			   "INSERT INTO folder (id, account_id, name, server_name) VALUES"
			   " (1, 1, 'Default', 'Default'), (2, 1, 'Default/tel:+1555', 'x');"
			   "INSERT INTO message (id, folder_id, uid, date, conversation_id, type)"
			   " VALUES (1, 2, 1, 100, 'c-1', 'message'),"
			   " (2, 2, 2, 300, 'c-1', 'message');"
			   "INSERT INTO message_state (id, flags) VALUES (1, ''), (2, '\\Deleted');"
			   /* As version 31 kept it: both counted. */
			   "INSERT OR REPLACE INTO conversation (account_id, folder,"
			   " conversation_id, cid_header, messages, unseen, last_date, last_id)"
			   " VALUES (1, 'Default/tel:+1555', 'c-1', 1, 2, 2, 300, 2);"),
		0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	v = query_text(s, "SELECT group_concat(conversation_id || ' ' || messages || ' ' ||"
			  " unseen || ' ' || last_date || ' ' || last_id, ';') FROM conversation");
	ck_assert_str_eq(v, "c-1 1 1 100 1");
	free(v);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM conv_stale"), 0);
	store_close(s);
}
END_TEST

START_TEST(test_migrate_cpm_conversations)
{
	struct store *s = NULL;
	char *v;

	ck_assert_int_eq(store_open_at_version_for_test(dbpath, 5, &s, NULL), 0);
	ck_assert_int_eq(
		store_exec(s,
			   "INSERT INTO account (id, name) VALUES (1, 'a'), (2, 'b');"
			   "INSERT INTO folder (id, account_id, name, server_name) VALUES"
			   " (1, 1, 'Default', 'Default'), (2, 1, 'Default/tel:+1555', 'x'),"
			   " (3, 1, 'Default/conv-9', 'x'), (4, 1, 'Default/conv-9/s-1', 'x'),"
			   " (5, 1, 'INBOX', 'INBOX'), (6, 2, 'Default/tel:+1555', 'x'),"
			   " (7, 1, 'Default/a/b/c', 'x');"
			   "INSERT INTO message (id, folder_id, uid, flags, date, conversation_id,"
			   " type) VALUES"
			   " (1, 2, 1, '\\Seen', 100, '', 'message'),"
			   " (2, 2, 2, '', 300, 'c-1', 'message'),"
			   " (3, 2, 3, '', 200, '', 'message'),"
			   " (4, 4, 1, '\\Seen', 50, 'conv-9', 'session-history'),"
			   " (5, 4, 2, '', 60, 'conv-9', 'message'),"
			   " (6, 5, 1, '', 999, 'c-1', 'message'),"
			   " (7, 6, 1, '', 10, '', 'message'),"
			   " (8, 7, 1, '', 10, 'deep', 'message');"
			   "INSERT INTO summary (id, subject) VALUES (4, 'old session');"),
		0);
	store_close(s);

	s = open_ok(dbpath, 0);
	ck_assert_int_eq(query_int(s, "PRAGMA user_version"), store_schema_version());
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM conversation"), 3);
	v = query_text(s, "SELECT group_concat(account_id || ' ' || folder || ' ' ||"
			  " conversation_id || ' ' || is_group || ' ' || messages || ' ' ||"
			  " unseen || ' ' || last_date || ' ' || last_id || ' ' || subject, ';')"
			  " FROM (SELECT * FROM conversation ORDER BY account_id, folder)");
	ck_assert_str_eq(v, "1 Default/conv-9 conv-9 1 1 1 60 5 old session;"
			    "1 Default/tel:+1555 c-1 0 3 2 300 2 ;"
			    "2 Default/tel:+1555 tel:+1555 0 1 1 10 7 ");
	free(v);
	ck_assert_int_eq(
		query_int(s, "SELECT count(*) FROM message WHERE type = 'session-history'"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message WHERE type = 'session-info'"),
			 1);
	/* Kept from here on: a new object (store_message_insert(), version
	 * 20) and a flag change (the trigger conv_message_flags). */
	{
		struct msg_summary sum = { .type = "message", .date = 400 };
		int64_t id;

		ck_assert_msg(store_message_insert(s,
						   &(struct store_message_row){ .folder_id = 2,
										.uid = 9,
										.flags = "",
										.summary = &sum },
						   &id) == 0,
			      "%s", store_error(s));
	}
	ck_assert_int_eq(store_exec(s, "UPDATE message_state SET flags = '\\Seen' WHERE id = 2;"),
			 0);
	ck_assert_int_eq(query_int(s, "SELECT messages * 100 + unseen FROM conversation"
				      " WHERE account_id = 1 AND folder = 'Default/tel:+1555'"),
			 402);
	store_close(s);
}
END_TEST

/* The size of pack id's file, -1 when there is none; its blocks in *blocks. */
static off_t pack_file(int64_t id, blkcnt_t *blocks)
{
	char path[sizeof(dbpath) + 32];
	struct stat st;

	snprintf(path, sizeof(path), "%s-packs/%lld", dbpath, (long long)id);
	if (stat(path, &st) < 0) {
		ck_assert_int_eq(errno, ENOENT);
		return -1;
	}
	if (blocks)
		*blocks = st.st_blocks;
	return st.st_size;
}

/* In a forked child: what failed, and the child gone. */
static void child_fail(const char *what, const char *why)
{
	fprintf(stderr, "child: %s: %s\n", what, why ? why : "(no error text)");
	_exit(1);
}

/*
 * A writer that dies after its pack's sync, before its store COMMIT (a
 * crash), in a process of its own: message id (uid) and its large body,
 * appended, synced, never committed.
 */
static void crash_after_pack_sync(int64_t id, unsigned uid)
{
	int status;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct store *c = NULL;
		char sql[128], *err = NULL;

		snprintf(sql, sizeof(sql),
			 "INSERT INTO message (id, folder_id, uid) VALUES (%lld, 10, %u)",
			 (long long)id, uid);
		if (store_open(dbpath, 0, &c, &err) < 0)
			child_fail("store_open", err);
		if (store_begin(c) < 0)
			child_fail("store_begin", store_error(c));
		if (store_exec(c, sql) < 0)
			child_fail(sql, store_error(c));
		if (store_body_put(c, id, big_body, STORE_BODY_INLINE_MAX + 1) < 0)
			child_fail("store_body_put", store_error(c));
		if (store_bodies_commit(c) < 0)
			child_fail("store_bodies_commit", store_error(c));
		_exit(0); /* no COMMIT, no rollback: the process is gone */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * The order of the writes (store-pack.c): a body is in its pack, synced,
 * before the row that claims it commits; bytes or a pack file that no
 * committed row claims are cut off at a rollback, or, after a crash,
 * written over, or gone at the next open.
 */
START_TEST(test_body_commit_order)
{
	struct store *s = open_ok(dbpath, 0);

	add_account_folder_message(s);

	/* Rolled back with its row: nothing stays, inline or in a pack (the
	 * pack the transaction made goes with it). */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (folder_id, uid) VALUES (10, 8)"), 0);
	ck_assert_int_eq(store_body_put(s, store_last_insert_id(s), "x", 1), 0);
	ck_assert_int_eq(store_body_put(s, 100, big_body, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(pack_file(1, NULL), STORE_BODY_INLINE_MAX + 1);
	ck_assert_int_eq(store_rollback(s), 0);
	ck_assert_int_eq(pack_file(1, NULL), -1);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_inline"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message WHERE has_body"), 0);

	/* A small body takes no part in the packs: committed with its row,
	 * and rolled back with it. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_body_put(s, 100, "small", 5), 0);
	ck_assert_int_eq(store_bodies_commit(s), 0);
	ck_assert_int_eq(store_rollback(s), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_inline"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 0);

	/* A crash after the pack's sync, before the store's COMMIT: the pack
	 * made in that transaction has no row, and its file goes at the open. */
	store_close(s);
	crash_after_pack_sync(200, 9);
	ck_assert_int_eq(pack_file(1, NULL), STORE_BODY_INLINE_MAX + 1);
	s = open_ok(dbpath, 0);
	ck_assert_int_eq(pack_file(1, NULL), -1);

	/* A committed body, then one whose transaction did not commit: its
	 * bytes past the pack's committed end are cut off at the open, and
	 * the next body goes where they were. */
	ck_assert_int_eq(store_body_put(s, 100, big_body, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(query_int(s, "SELECT id * 100000 + size FROM pack"),
			 100000 + STORE_BODY_INLINE_MAX + 1);
	store_close(s);
	crash_after_pack_sync(200, 9);
	ck_assert_int_eq(pack_file(1, NULL), 2 * (STORE_BODY_INLINE_MAX + 1));
	s = open_ok(dbpath, 0);
	ck_assert_int_eq(pack_file(1, NULL), STORE_BODY_INLINE_MAX + 1);
	ck_assert_int_eq(
		store_exec(s, "INSERT INTO message (id, folder_id, uid) VALUES (201, 10, 10)"), 0);
	ck_assert_int_eq(store_body_put(s, 201, big_body + 1, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(query_int(s, "SELECT off FROM body_pack WHERE message_id = 201"),
			 STORE_BODY_INLINE_MAX + 1);
	ck_assert_int_eq(query_int(s, "SELECT live FROM pack WHERE id = 1"), 2);
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE id = 201"), 0);

	/* A body dropped (has_body to 0) is punched out after the commit. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE message SET has_body = 0 WHERE id = 100"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack_trash"), 2);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack_trash"), 0);
	ck_assert_int_eq(query_int(s, "SELECT live FROM pack WHERE id = 1"), 0);
	/* Inline: in the same transaction, nothing queued. */
	ck_assert_int_eq(store_body_put(s, 100, "abc", 3), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_inline"), 1);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE message SET has_body = 0 WHERE id = 100"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_inline"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_trash"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack_trash"), 0);
	ck_assert_int_eq(store_commit(s), 0);

	/* A body dropped and stored again in one transaction: the drop's
	 * range goes, the new body stays. */
	ck_assert_int_eq(store_body_put(s, 100, big_body, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE message SET has_body = 0 WHERE id = 100"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack_trash"), 1);
	ck_assert_int_eq(store_body_put(s, 100, big_body + 1, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack_trash"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 1);
	ck_assert_int_eq(query_int(s, "SELECT live FROM pack WHERE id = 1"), 1);
	check_got(s, 100, big_body + 1, STORE_BODY_INLINE_MAX + 1);

	/* A failed store COMMIT after a large body replaced an inline one:
	 * the committed inline body stays the one read. */
	ck_assert_int_eq(store_body_put(s, 100, "inline", 6), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_body_put(s, 100, big_body, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(store_bodies_commit(s), 0);
	ck_assert_int_eq(store_rollback(s), 0);
	store_bodies_commit_failed(s);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 0);
	check_got(s, 100, "inline", 6);
	store_close(s);
}
END_TEST

/* The pack rows, "id:live:size" in id order. */
static void check_packs(struct store *s, const char *want)
{
	char *got = query_text(s, "SELECT group_concat(id || ':' || live || ':' || size, ' ')"
				  " FROM (SELECT * FROM pack ORDER BY id)");

	ck_assert_str_eq(got, want);
	free(got);
}

/*
 * Packs (store-pack.c): eight bodies of 2 MiB fill the first pack, the ninth
 * starts the second; a body that goes is punched out of its file, which
 * keeps its size and its other bodies; a full pack left without bodies is
 * deleted, row and file.
 */
START_TEST(test_pack_punch_and_unlink)
{
	const size_t n = 2 * 1024 * 1024;
	struct store *s = open_ok(dbpath, 0);
	unsigned char *a = malloc(n);
	blkcnt_t before, after;

	ck_assert_ptr_nonnull(a);
	fill(a, n, 3);
	add_account_folder_message(s);
	ck_assert_int_eq(store_exec(s,
				    "INSERT INTO message (id, folder_id, uid) VALUES"
				    " (101, 10, 8), (102, 10, 9), (103, 10, 10), (104, 10, 11),"
				    " (105, 10, 12), (106, 10, 13), (107, 10, 14), (108, 10, 15)"),
			 0);
	ck_assert_int_eq(store_begin(s), 0);
	for (int64_t id = 100; id <= 108; id++)
		ck_assert_int_eq(store_body_put(s, id, a, n), 0);
	ck_assert_int_eq(store_commit(s), 0);
	check_packs(s, "1:8:16777216 2:1:2097152");
	ck_assert_int_eq(pack_file(1, &before), 16777216);
	ck_assert_int_eq(pack_file(2, NULL), 2097152);

	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE id = 103"), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(pack_file(1, &after), 16777216);
	ck_assert_msg(after <= before - (blkcnt_t)(n / 512), "%lld blocks, then %lld",
		      (long long)before, (long long)after);
	ck_assert_int_eq(query_int(s, "SELECT live FROM pack WHERE id = 1"), 7);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack_trash"), 0);
	check_body(s, 102, a, n);
	check_body(s, 104, a, n);

	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE id BETWEEN 100 AND 107"), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(pack_file(1, NULL), -1);
	check_packs(s, "2:1:2097152");
	check_body(s, 108, a, n);
	/* The second pack, not full, is the one appended to, even emptied. */
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE id = 108"), 0);
	ck_assert_int_eq(store_bodies_collect(s, false), 0);
	ck_assert_int_eq(pack_file(2, NULL), 2097152);
	ck_assert_int_eq(
		store_exec(s, "INSERT INTO message (id, folder_id, uid) VALUES (109, 10, 16)"), 0);
	ck_assert_int_eq(store_body_put(s, 109, a, n), 0);
	ck_assert_int_eq(query_int(s, "SELECT pack * 100000000 + off FROM body_pack"),
			 200000000 + 2097152);
	check_body(s, 109, a, n);
	free(a);
	store_close(s);
}
END_TEST

/* Where the first data at or after `from` is in pack id's file (its size
 * when there is none). */
static off_t first_data(int64_t id, off_t from)
{
	char path[sizeof(dbpath) + 32];
	int fd;
	off_t d;

	snprintf(path, sizeof(path), "%s-packs/%lld", dbpath, (long long)id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	d = lseek(fd, from, SEEK_DATA);
	if (d < 0) {
		ck_assert_int_eq(errno, ENXIO);
		d = lseek(fd, 0, SEEK_END);
	}
	close(fd);
	return d;
}

/* Messages 101.. with bodies of the sizes in len[], in one pack, in order. */
static void put_bodies(struct store *s, const unsigned char *data, const size_t *len, size_t n)
{
	ck_assert_int_eq(store_begin(s), 0);
	for (size_t i = 0; i < n; i++) {
		char sql[128];

		snprintf(sql, sizeof(sql),
			 "INSERT INTO message (id, folder_id, uid) VALUES (%zu, 10, %zu)", 101 + i,
			 8 + i);
		ck_assert_int_eq(store_exec(s, sql), 0);
		ck_assert_int_eq(store_body_put(s, (int64_t)(101 + i), data, len[i]), 0);
	}
	ck_assert_int_eq(store_commit(s), 0);
}

/* Message id deleted, its body punched out after the commit. */
static void delete_message(struct store *s, int64_t id)
{
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec_id(s, "DELETE FROM message WHERE id = ?1", id), 0);
	ck_assert_int_eq(store_commit(s), 0);
}

/*
 * The blocks a body shares with its neighbours (store-pack.c, widen()):
 * punched with it when the neighbour went before and left a hole beside
 * them, never while a live body has a byte in them, never past the pack's
 * committed end; and not at all in a pack that holds a body of a block or
 * less (copied in from an old bodies database), whose bounds a hole does
 * not tell.  Blocks of 4 KiB: 101 [0, 6000) 102 [6000, 16000)
 * 103 [16000, 22000) 104 [22000, 30000) 105 [30000, 36000).
 */
START_TEST(test_pack_edge_blocks)
{
	static const size_t len[] = { 6000, 10000, 6000, 8000, 6000 };
	struct store *s = open_ok(dbpath, 0);
	unsigned char *a = malloc(10000);

	ck_assert_ptr_nonnull(a);
	fill(a, 10000, 7);
	add_account_folder_message(s);
	put_bodies(s, a, len, ARRAY_SIZE(len));
	check_packs(s, "1:5:36000");
	ck_assert_int_eq(first_data(1, 0), 0);

	/* 102 alone: its whole blocks only, [8192, 12288). */
	delete_message(s, 102);
	ck_assert_int_eq(first_data(1, 8192), 12288);
	/* 101: its block [4096, 8192), shared with 102, goes too. */
	delete_message(s, 101);
	ck_assert_int_eq(first_data(1, 0), 12288);
	/* 103: back over [12288, 16384) (102's tail); not its last block,
	 * which 104 shares. */
	delete_message(s, 103);
	ck_assert_int_eq(first_data(1, 0), 20480);
	/* 105, the last: not past the committed end. */
	delete_message(s, 105);
	ck_assert_int_eq(first_data(1, 0), 20480);
	ck_assert_int_eq(first_data(1, 32768), 32768);
	check_body(s, 104, a, 8000);
	check_packs(s, "1:1:36000");
	delete_message(s, 104);
	check_packs(s, "1:0:36000");

	/* A body small enough for body_inline goes there, not into a pack. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_pack_put(s, store_packs_for_test(s), 100, a, STORE_BODY_INLINE_MAX,
					-1, STORE_BODY_INLINE_MAX),
			 -EINVAL);
	ck_assert_str_eq(store_error(s), "a body of 4096 bytes goes inline, not into a pack");
	ck_assert_int_eq(store_rollback(s), 0);

	/* A small one there all the same (a copy before version 26): nothing
	 * is widened in its pack. */
	ck_assert_int_eq(store_exec(s, "DELETE FROM pack WHERE id = 1"), 0);
	put_bodies(s, a, len, ARRAY_SIZE(len));
	check_packs(s, "2:5:36000");
	ck_assert_int_eq(store_exec(s, "INSERT INTO body_pack (message_id, pack, off, len)"
				       " VALUES (100, 2, 36000, 100)"),
			 0);
	delete_message(s, 102);
	delete_message(s, 101);
	ck_assert_int_eq(first_data(2, 0), 4096);
	ck_assert_int_eq(first_data(2, 8192), 12288);
	check_body(s, 103, a, 6000);
	free(a);
	store_close(s);
}
END_TEST

/*
 * Version 26: a store of version 25 whose pack holds a body of a block or
 * less (copied from an old bodies database) lists it in body_pack_small.
 */
START_TEST(test_migrate_small_pack_index)
{
	struct store *s = open_old_with_message(25);

	ck_assert_int_eq(store_exec(s, "INSERT INTO pack (id, size, live) VALUES (1, 20000, 2);"
				       "INSERT INTO body_pack (message_id, pack, off, len) VALUES"
				       " (100, 1, 0, 7), (101, 1, 7, 19993)"),
			 0);
	s = reopen_migrated(s);
	ck_assert_int_eq(query_int(s, "SELECT group_concat(message_id) FROM body_pack"
				      " INDEXED BY body_pack_small WHERE pack = 1 AND len <= 4096"),
			 100);
	store_close(s);
}
END_TEST

/*
 * A new store made from the snapshot (store_open()) has the schema, the
 * user_version and the (empty) tables of one made by every migration
 * (store_open_at_version_for_test()).  Fails after a new migration until
 * `make schema-snapshot` has written store-schema-snapshot.c again.
 */
START_TEST(test_schema_snapshot)
{
	char path[sizeof(dbpath) + 32], *from_snapshot = NULL, *migrated = NULL, *err = NULL;
	struct store *a, *b = NULL;

	ck_assert_msg(store_schema_snapshot_version == store_schema_version(),
		      "store-schema-snapshot.c is of version %u, the schema is %u:"
		      " run make schema-snapshot",
		      store_schema_snapshot_version, store_schema_version());
	a = open_ok(dbpath, 0);
	snprintf(path, sizeof(path), "%s/migrated.db", tmpdir);
	ck_assert_int_eq(store_open_at_version_for_test(path, store_schema_version(), &b, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(store_schema_dump(a, true, &from_snapshot), 0);
	ck_assert_int_eq(store_schema_dump(b, true, &migrated), 0);
	if (strcmp(from_snapshot, migrated) != 0) {
		size_t i = 0, line = 0;

		/* The first line that differs, a part of it each (Check's
		 * messages are short). */
		for (; from_snapshot[i] == migrated[i]; i++)
			if (migrated[i] == '\n')
				line = i + 1;
		ck_abort_msg("a new store differs from a migrated one (run make schema-snapshot);"
			     " from the snapshot: \"%.200s\"; migrated: \"%.200s\"",
			     from_snapshot + line, migrated + line);
	}
	/* Both hold what they should: the tables, and user_version. */
	ck_assert_ptr_nonnull(strstr(migrated, "CREATE TABLE message_state ("));
	ck_assert_ptr_nonnull(strstr(migrated, "CREATE TRIGGER "));
	snprintf(path, sizeof(path), "-- user_version %u\n", store_schema_version());
	ck_assert_ptr_nonnull(strstr(migrated, path));
	ck_assert_ptr_nonnull(strstr(migrated, "-- message: 0 rows\n"));
	ck_assert_int_eq(query_int(a, "PRAGMA user_version"), store_schema_version());
	free(from_snapshot);
	free(migrated);
	store_close(a);
	store_close(b);
}
END_TEST

/*
 * A SQLite failure's text names the store's file (issue: "database or
 * disk is full (13)" reached the log, LastError and cpmctl without it):
 * here the database may not grow (max_page_count at its size: the
 * SQLITE_FULL a full disk gives).
 */
START_TEST(test_sqlite_error_names_file)
{
	struct store *s = open_ok(dbpath, 0);
	char want[sizeof(dbpath) + 64];

	ck_assert_int_eq(store_exec(s, "PRAGMA max_page_count = 1"), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO account (name) VALUES (hex(randomblob(4000)))"),
			 -CPMSYNC_E_STORE_FULL);
	snprintf(want, sizeof(want), "%s: database or disk is full (13)", dbpath);
	ck_assert_str_eq(store_error(s), want);
	store_close(s);
}
END_TEST

/*
 * A transaction that appended to a pack and rolled back gives the bytes
 * back at once (issue: a sync that failed on a full disk left 3 MB past
 * the committed end until the next open, and every later write failed with
 * "database or disk is full"): the file is cut at its committed end, size
 * and blocks, whether the failure came before the bodies' sync, after it
 * (a failed COMMIT), or SQLite rolled back by itself; a pack the
 * transaction made goes.  Never past the end another writer appends from.
 */
/* Blocks a file may keep beyond its data (st_blocks, 512 bytes): an ext4
 * extent block or two, after megabytes given back. */
#define GIVEN_BACK_SLACK 128

START_TEST(test_pack_rollback_gives_back)
{
	const size_t n = 1024 * 1024;
	unsigned char *a = malloc(n);
	struct store *s = open_ok(dbpath, 0), *w;
	blkcnt_t before, after;
	off_t end;

	ck_assert_ptr_nonnull(a);
	fill(a, n, 5);
	add_account_folder_message(s);
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (id, folder_id, uid) VALUES"
				       " (101, 10, 8), (102, 10, 9), (103, 10, 10)"),
			 0);
	ck_assert_int_eq(store_body_put(s, 100, big_body, STORE_BODY_INLINE_MAX + 1), 0);
	end = STORE_BODY_INLINE_MAX + 1;
	ck_assert_int_eq(pack_file(1, &before), end);

	/* Three bodies of 1 MiB appended, then rolled back. */
	ck_assert_int_eq(store_begin(s), 0);
	for (int64_t id = 101; id <= 103; id++)
		ck_assert_int_eq(store_body_put(s, id, a, n), 0);
	ck_assert_int_eq(pack_file(1, NULL), end + 3 * (off_t)n);
	ck_assert_int_eq(store_rollback(s), 0);
	ck_assert_int_eq(pack_file(1, &after), end);
	ck_assert_int_le(after, before + GIVEN_BACK_SLACK);

	/* The bodies synced and the pack's row written, then the COMMIT failed. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_body_put(s, 101, a, n), 0);
	ck_assert_int_eq(store_bodies_commit(s), 0);
	ck_assert_int_eq(query_int(s, "SELECT size FROM pack"), end + (off_t)n);
	ck_assert_int_eq(store_rollback(s), 0);
	ck_assert_int_eq(pack_file(1, &after), end);
	ck_assert_int_le(after, before + GIVEN_BACK_SLACK);

	/* SQLite rolled back by itself (FULL, IOERR): the write lock is taken
	 * again to cut. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_body_put(s, 101, a, n), 0);
	ck_assert_int_eq(sqlite3_exec(store_db(s), "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(store_rollback(s), 0);
	ck_assert_int_eq(pack_file(1, &after), end);
	ck_assert_int_le(after, before + GIVEN_BACK_SLACK);

	/* The same, with another writer appending from the committed end
	 * meanwhile: its bytes are not cut, its body commits whole. */
	w = open_ok(dbpath, 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_body_put(s, 101, a + 1, n - 1), 0);
	ck_assert_int_eq(sqlite3_exec(store_db(s), "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(store_begin(w), 0);
	ck_assert_int_eq(store_body_put(w, 102, a, n), 0);
	ck_assert_int_eq(store_set_busy_timeout(s, 0), 0);
	ck_assert_int_eq(store_rollback(s), 0);
	ck_assert_int_eq(pack_file(1, NULL), end + (off_t)n);
	ck_assert_int_eq(store_commit(w), 0);
	store_close(w);
	ck_assert_int_eq(store_set_busy_timeout(s, STORE_BUSY_TIMEOUT_MS), 0);
	check_body(s, 102, a, n);
	end += (off_t)n;
	ck_assert_int_eq(pack_file(1, &before), end);

	/* A transaction that filled the pack and made the next one: the first
	 * is cut at its committed end, the second goes. */
	ck_assert_int_eq(store_begin(s), 0);
	for (int64_t id = 101; id <= 116; id++) {
		if (id > 103)
			ck_assert_int_eq(store_exec_id(s,
						       "INSERT INTO message (id, folder_id, uid)"
						       " VALUES (?1, 10, ?1)",
						       id),
					 0);
		ck_assert_int_eq(store_body_put(s, id, a, n), 0);
	}
	ck_assert_int_eq(query_int(s, "SELECT max(pack) FROM body_pack"), 2);
	ck_assert_int_gt(pack_file(2, NULL), 0);
	ck_assert_int_eq(store_rollback(s), 0);
	ck_assert_int_eq(pack_file(1, &after), end);
	ck_assert_int_le(after, before + GIVEN_BACK_SLACK);
	ck_assert_int_eq(pack_file(2, NULL), -1);
	check_packs(s, "1:2:1052673");
	check_got(s, 100, big_body, STORE_BODY_INLINE_MAX + 1);
	free(a);
	store_close(s);
}
END_TEST

/*
 * Two writers on one store (a program linking libcpmsync beside the
 * daemon): each appends where the last commit, its own or the other's,
 * left the pack, never where it last wrote.
 */
START_TEST(test_pack_two_writers)
{
	struct store *a = open_ok(dbpath, 0), *b;
	char *got;

	add_account_folder_message(a);
	ck_assert_int_eq(store_exec(a, "INSERT INTO message (id, folder_id, uid) VALUES"
				       " (101, 10, 8), (102, 10, 9), (103, 10, 10)"),
			 0);
	b = open_ok(dbpath, 0);
	ck_assert_int_eq(store_body_put(a, 100, big_body, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(store_body_put(b, 101, big_body + 1, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(store_body_put(a, 102, big_body, STORE_BODY_INLINE_MAX), 0);
	ck_assert_int_eq(store_body_put(a, 103, big_body, STORE_BODY_INLINE_MAX + 2), 0);
	ck_assert_int_eq(store_body_put(b, 100, big_body + 1, STORE_BODY_INLINE_MAX + 1), 0);
	check_got(a, 101, big_body + 1, STORE_BODY_INLINE_MAX + 1);
	check_got(b, 103, big_body, STORE_BODY_INLINE_MAX + 2);
	check_got(a, 100, big_body + 1, STORE_BODY_INLINE_MAX + 1);
	got = query_text(a, "SELECT group_concat(message_id || '@' || off, ' ') FROM"
			    " (SELECT * FROM body_pack ORDER BY off)");
	ck_assert_str_eq(got, "101@4097 103@8194 100@12292");
	free(got);
	check_packs(a, "1:3:16389");
	store_close(b);
	store_close(a);
}
END_TEST

/*
 * A pack that cannot be written: the write fails with the file named, the
 * transaction leaves nothing behind, and the body the message had stays.
 * (Root ignores permissions, so the packs' directory is a regular file,
 * and the file size limit stands for a full disk.)
 */
/*
 * store_body_write_fresh(): the body of a row inserted with has_body set in
 * the open transaction (an initial sync's new message).  It goes in without
 * the replacement's trash rows, a failure undone with the transaction; out
 * of a transaction it is refused.
 */
START_TEST(test_body_write_fresh)
{
	const size_t big = STORE_BODY_INLINE_MAX + 5000;
	unsigned char *a = malloc(big);
	struct store *s = open_ok(dbpath, 0);
	int p[2];

	ck_assert_ptr_nonnull(a);
	fill(a, big, 7);
	add_account_folder_message(s);
	ck_assert_int_eq(store_body_write_fresh(s, 100, a, 10, -1, 10), -EINVAL);

	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (id, folder_id, uid, has_body) VALUES"
				       " (101, 10, 8, 1), (102, 10, 9, 1), (103, 10, 10, 1)"),
			 0);
	ck_assert_int_eq(store_body_write_fresh(s, 101, a, 100, -1, 100), 0);
	ck_assert_int_eq(store_body_write_fresh(s, 102, a, big, -1, big), 0);
	/* The rest from a file descriptor. */
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], a + 10, 90), 90);
	close(p[1]);
	ck_assert_int_eq(store_body_write_fresh(s, 103, a, 10, p[0], 100), 0);
	close(p[0]);
	ck_assert_int_eq(store_commit(s), 0);
	check_got(s, 101, a, 100);
	check_body(s, 102, a, big);
	check_got(s, 103, a, 100);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_trash"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack_trash"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack WHERE message_id = 102"), 1);

	/* A short file: the caller rolls back, row and body go together. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO message (id, folder_id, uid, has_body) VALUES"
				       " (104, 10, 11, 1)"),
			 0);
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], a, 5), 5);
	close(p[1]);
	ck_assert_int_eq(store_body_write_fresh(s, 104, NULL, 0, p[0], 50), -EIO);
	close(p[0]);
	store_rollback(s);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM message WHERE id = 104"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_inline WHERE message_id = 104"),
			 0);
	free(a);
	store_close(s);
}
END_TEST

START_TEST(test_pack_write_fails)
{
	const size_t n = 2 * 1024 * 1024;
	unsigned char *a = malloc(n);
	char packs[sizeof(dbpath) + 16], want[sizeof(dbpath) + 64];
	struct store *s = open_ok(dbpath, 0);
	struct rlimit old, lim;
	int fd;

	ck_assert_ptr_nonnull(a);
	fill(a, n, 4);
	add_account_folder_message(s);
	snprintf(packs, sizeof(packs), "%s-packs", dbpath);
	fd = open(packs, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(store_body_put(s, 100, a, n), -ENOTDIR);
	snprintf(want, sizeof(want), "making %s/1: %s", packs, strerror(ENOTDIR));
	ck_assert_str_eq(store_error(s), want);
	ck_assert_int_eq(query_int(s, "SELECT has_body FROM message WHERE id = 100"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack"), 0);
	ck_assert_int_eq(unlink(packs), 0);

	/* A body stored, then a larger one the file system refuses. */
	ck_assert_int_eq(store_body_put(s, 100, a, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1024 * 1024;
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ck_assert_int_eq(store_body_put(s, 100, a + 1, n), -EFBIG);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	snprintf(want, sizeof(want), "writing %s/1: %s", packs, strerror(EFBIG));
	ck_assert_str_eq(store_error(s), want);
	ck_assert(!store_in_transaction(s));
	check_body(s, 100, a, STORE_BODY_INLINE_MAX + 1);
	ck_assert_int_eq(query_int(s, "SELECT size FROM pack"), STORE_BODY_INLINE_MAX + 1);
	/* What the failed write left past the committed end is cut off by the
	 * rollback (on a full disk, the space the next write needs); the next
	 * body goes there. */
	ck_assert_int_eq(pack_file(1, NULL), STORE_BODY_INLINE_MAX + 1);
	ck_assert_int_eq(store_body_put(s, 100, a + 2, STORE_BODY_INLINE_MAX + 2), 0);
	ck_assert_int_eq(query_int(s, "SELECT off FROM body_pack WHERE message_id = 100"),
			 STORE_BODY_INLINE_MAX + 1);
	check_body(s, 100, a + 2, STORE_BODY_INLINE_MAX + 2);
	free(a);
	store_close(s);
}
END_TEST

/*
 * The store's own database under a file size limit (RLIMIT_FSIZE, SIGXFSZ
 * ignored: the write fails with EFBIG, as a full quota fails with EDQUOT).
 * SQLite says SQLITE_IOERR_WRITE, "disk I/O error", for both, which alone
 * maps to -EIO like a failing disk; the system's errno tells that there
 * is no room: -EFBIG, and the text says so after the file's name.  The
 * transaction is rolled back, and with the limit lifted the store is
 * whole and takes the same rows.
 */
START_TEST(test_db_write_file_too_large)
{
	static const char fill_sql[] =
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
		" INSERT INTO scratch SELECT randomblob(4000) FROM n";
	char wal[sizeof(dbpath) + 8], want[sizeof(dbpath) + 64];
	struct store *s = open_ok(dbpath, 0);
	struct rlimit old, lim;
	struct stat st;
	char *check;
	int r;

	ck_assert_int_eq(store_exec(s, "CREATE TABLE scratch (x BLOB)"), 0);
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	ck_assert_int_eq(stat(wal, &st), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)st.st_size + 256 * 1024;
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	r = store_exec(s, fill_sql);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	ck_assert_int_eq(r, -EFBIG);
	snprintf(want, sizeof(want), "%s: disk I/O error (778): %s", dbpath, strerror(EFBIG));
	ck_assert_str_eq(store_error(s), want);
	store_rollback(s);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM scratch"), 0);
	check = query_text(s, "PRAGMA integrity_check");
	ck_assert_str_eq(check, "ok");
	free(check);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, fill_sql), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM scratch"), 2000);
	store_close(s);
}
END_TEST

/*
 * A reader in another process whose snapshot still shows a body that went
 * and was punched out meanwhile: it reads that the body went, not the
 * zeros of the hole.  A read-only one (cpmctl beside the daemon), and a
 * writer outside a write transaction (a program linking the library
 * beside the daemon).
 */
static void reader_sees_body_go(unsigned flags)
{
	struct store *w = open_ok(dbpath, 0), *r;
	void *got;
	size_t len;

	add_account_folder_message(w);
	ck_assert_int_eq(store_body_put(w, 100, big_body, STORE_BODY_INLINE_MAX + 1), 0);
	r = open_ok(dbpath, flags);
	ck_assert_int_eq(store_body_get(r, 100, &got, &len), 0);
	ck_assert_uint_eq(len, STORE_BODY_INLINE_MAX + 1);
	ck_assert(memcmp(got, big_body, len) == 0);
	free(got);

	ck_assert_int_eq(store_exec(r, "BEGIN"), 0);
	ck_assert_int_eq(query_int(r, "SELECT has_body FROM message WHERE id = 100"), 1);
	ck_assert_int_eq(store_begin(w), 0);
	ck_assert_int_eq(store_exec(w, "DELETE FROM message WHERE id = 100"), 0);
	ck_assert_int_eq(store_commit(w), 0);
	ck_assert_int_eq(query_int(w, "SELECT count(*) FROM pack_trash"), 0);
	ck_assert_int_eq(store_body_get(r, 100, &got, &len), -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(store_error(r), "the body of message 100 went while it was read");
	ck_assert_int_eq(store_exec(r, "COMMIT"), 0);
	store_close(r);
	store_close(w);
}

START_TEST(test_pack_reader_sees_body_go)
{
	reader_sees_body_go(STORE_READONLY);
}
END_TEST

START_TEST(test_pack_writer_sees_body_go)
{
	reader_sees_body_go(0);
}
END_TEST

/*
 * Version 25: a store of version 24 keeps its large bodies in the bodies
 * database, read and deleted there as before; a body written since goes to
 * a pack, and the old one it replaces is deleted from the database.
 */
START_TEST(test_migrate_adds_packs)
{
	struct store *s = open_old_with_message(24);

	ck_assert_int_eq(
		store_exec(s, "INSERT INTO message (id, folder_id, uid) VALUES (101, 10, 8)"), 0);
	ck_assert_int_eq(store_body_put(s, 100, big_body, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(store_body_put(s, 101, big_body, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(bquery_int(s, "SELECT count(*) FROM body"), 2);
	{
		char path[sizeof(dbpath) + 16];
		struct stat st;

		snprintf(path, sizeof(path), "%s-bodies", dbpath);
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_uint_eq(st.st_mode & 07777, 0600);
	}
	s = reopen_migrated(s);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack"), 0);
	check_got(s, 100, big_body, STORE_BODY_INLINE_MAX + 1);
	/* Rewritten: into a pack; the old one is deleted after the commit. */
	ck_assert_int_eq(store_body_put(s, 101, big_body + 1, STORE_BODY_INLINE_MAX + 1), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_pack WHERE message_id = 101"), 1);
	ck_assert_int_eq(bquery_int(s, "SELECT group_concat(message_id) FROM body"), 100);
	check_got(s, 101, big_body + 1, STORE_BODY_INLINE_MAX + 1);
	/* An old body goes from the database, queued in body_trash. */
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE id = 100"), 0);
	ck_assert_int_eq(query_int(s, "SELECT group_concat(message_id) FROM body_trash"), 100);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM pack_trash"), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(bquery_int(s, "SELECT count(*) FROM body"), 0);
	ck_assert_int_eq(query_int(s, "SELECT count(*) FROM body_trash"), 0);
	store_close(s);
}
END_TEST

START_TEST(test_reader_during_write)
{
	struct store *w = open_ok(dbpath, 0);
	struct store *r;

	ck_assert_int_eq(store_exec(w, "INSERT INTO account (name) VALUES ('a')"), 0);
	r = open_ok(dbpath, STORE_READONLY);
	ck_assert_int_eq(store_begin(w), 0);
	ck_assert_int_eq(store_exec(w, "INSERT INTO account (name) VALUES ('b')"), 0);
	ck_assert_int_eq(query_int(w, "SELECT count(*) FROM account"), 2);

	/* No waiting: WAL readers do not block on the writer. */
	ck_assert_int_eq(store_set_busy_timeout(r, 0), 0);
	ck_assert_int_eq(query_int(r, "SELECT count(*) FROM account"), 1);
	ck_assert_int_eq(store_exec(r, "INSERT INTO account (name) VALUES ('c')"),
			 store_map_sqlite_error(SQLITE_READONLY));
	ck_assert_int_eq(store_begin(r), -EROFS);
	ck_assert_int_eq(store_body_write_fd(r, 1, 0, 0), -EROFS);

	ck_assert_int_eq(store_commit(w), 0);
	ck_assert_int_eq(query_int(r, "SELECT count(*) FROM account"), 2);
	store_close(r);
	store_close(w);
}
END_TEST

START_TEST(test_garbage_refused)
{
	char junk[8192];
	struct store *s = NULL;
	char *err = NULL;
	int fd;

	memset(junk, 'x', sizeof(junk));
	memcpy(junk, "this is not an SQLite database", 30);
	fd = open(dbpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);

	ck_assert_int_eq(store_open(dbpath, 0, &s, &err), -CPMSYNC_E_STORE_CORRUPT);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_ne(err, "");
	free(err);
	ck_assert_int_eq(store_open(dbpath, STORE_READONLY, &s, NULL), -CPMSYNC_E_STORE_CORRUPT);
	ck_assert_ptr_null(s);
}
END_TEST

START_TEST(test_error_mapping)
{
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_OK), 0);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_DONE), 0);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_BUSY), -CPMSYNC_E_STORE_BUSY);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_BUSY_SNAPSHOT), -CPMSYNC_E_STORE_BUSY);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_LOCKED), -CPMSYNC_E_STORE_BUSY);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_CORRUPT), -CPMSYNC_E_STORE_CORRUPT);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_NOTADB), -CPMSYNC_E_STORE_CORRUPT);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_FULL), -CPMSYNC_E_STORE_FULL);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_IOERR_FSYNC), -EIO);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_NOMEM), -ENOMEM);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_CONSTRAINT_UNIQUE), -EEXIST);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_CONSTRAINT_FOREIGNKEY),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_TOOBIG), -E2BIG);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_ERROR), -EIO);
	ck_assert_int_eq(store_map_sqlite_error(SQLITE_MISUSE), -EIO);
}
END_TEST

START_TEST(test_prepare_cache)
{
	struct store *s = open_ok(dbpath, 0);
	sqlite3_stmt *a, *b;

	ck_assert_int_eq(store_prepare(s, "SELECT ?1 + 1", &a), 0);
	sqlite3_bind_int(a, 1, 41);
	ck_assert_int_eq(store_step(s, a), 1);
	ck_assert_int_eq(sqlite3_column_int(a, 0), 42);
	/* Same SQL: the same statement, reset, bindings cleared. */
	ck_assert_int_eq(store_prepare(s, "SELECT ?1 + 1", &b), 0);
	ck_assert_ptr_eq(a, b);
	ck_assert_int_eq(store_step(s, b), 1);
	ck_assert_int_eq(sqlite3_column_type(b, 0), SQLITE_NULL);
	ck_assert_int_eq(store_step(s, b), 0);
	/* Errors are mapped and recorded. */
	ck_assert_int_eq(store_prepare(s, "SELEC nonsense", &a), -EIO);
	ck_assert_ptr_nonnull(strstr(store_error(s), "syntax error"));
	ck_assert_int_eq(store_exec(s, "SELECT * FROM no_such_table"), -EIO);
	ck_assert_ptr_nonnull(strstr(store_error(s), "no_such_table"));
	store_close(s);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	TCase *every = tcase_create("migrate-every");

	/*
	 * Every older version migrated to this one grows with each migration
	 * (at version 36: 37 stores, each made at its version and migrated on,
	 * 3.2 s of CPU, 8.4 s at a load of 6, most of the suite's time); run
	 * at nice 19 beside other builds it hit the 30 s the others have.
	 * Its own limit, far from its time.
	 */
	tcase_add_checked_fixture(every, setup, teardown);
	tcase_set_timeout(every, 120);
	tcase_add_test(every, test_migrate_from_every_older_version);
	suite_add_tcase(s, every);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_open_creates_schema);
	tcase_add_test(tc, test_files_private);
	tcase_add_test(tc, test_reopen_is_idempotent);
	tcase_add_test(tc, test_migrate_redecode);
	tcase_add_test(tc, test_migrate_redecode_quoted);
	tcase_add_test(tc, test_migrate_undated);
	tcase_add_test(tc, test_migrate_adds_preview_cache);
	tcase_add_test(tc, test_migrate_adds_foreign_change);
	tcase_add_test(tc, test_migrate_journal_ids_never_reused);
	tcase_add_test(tc, test_migrate_adds_namespace);
	tcase_add_test(tc, test_migrate_adds_annotation_cache);
	tcase_add_test(tc, test_migrate_partial_imdn_indexes);
	tcase_add_test(tc, test_migrate_adds_objectids);
	tcase_add_test(tc, test_migrate_adds_conv_page_index);
	tcase_add_test(tc, test_migrate_adds_body_inline);
	tcase_add_test(tc, test_closed_store_complete_alone);
	tcase_add_test(tc, test_keep_wal);
	tcase_add_test(tc, test_newer_version_refused);
	tcase_add_test(tc, test_readonly_refuses_old_or_missing);
	tcase_add_test(tc, test_foreign_keys_cascade);
	tcase_add_test(tc, test_begin_immediate_busy);
	tcase_add_test(tc, test_rollback_undoes);
	tcase_add_test(tc, test_body_roundtrip);
	tcase_add_test(tc, test_migrate_moves_bodies);
	tcase_add_test(tc, test_migrate_cpm_conversations);
	tcase_add_test(tc, test_migrate_deleted_not_counted);
	tcase_add_test(tc, test_body_commit_order);
	tcase_add_test(tc, test_pack_punch_and_unlink);
	tcase_add_test(tc, test_pack_reader_sees_body_go);
	tcase_add_test(tc, test_pack_writer_sees_body_go);
	tcase_add_test(tc, test_pack_write_fails);
	tcase_add_test(tc, test_db_write_file_too_large);
	tcase_add_test(tc, test_body_write_fresh);
	tcase_add_test(tc, test_pack_two_writers);
	tcase_add_test(tc, test_sqlite_error_names_file);
	tcase_add_test(tc, test_pack_rollback_gives_back);
	tcase_add_test(tc, test_pack_edge_blocks);
	tcase_add_test(tc, test_migrate_small_pack_index);
	tcase_add_test(tc, test_schema_snapshot);
	tcase_add_test(tc, test_migrate_adds_packs);
	tcase_add_test(tc, test_reader_during_write);
	tcase_add_test(tc, test_garbage_refused);
	tcase_add_test(tc, test_error_mapping);
	tcase_add_test(tc, test_prepare_cache);
	tcase_add_test(tc, test_migrate_imdn_in_c);
	tcase_add_test(tc, test_migrate_imdn_by_object_key);
	tcase_add_test(tc, test_migrate_status_bump_in_c);
	tcase_add_test(tc, test_imdn_filter_in_transaction);
	tcase_add_test(tc, test_migrate_rematch_index);
	tcase_add_test(tc, test_migrate_folder_known);
	tcase_add_test(tc, test_migrate_conv_stale);
	tcase_add_test(tc, test_migrate_message_state);
	tcase_add_test(tc, test_migrate_account_identity);
	tcase_add_test(tc, test_migrate_delimiter);
	tcase_add_test(tc, test_store_file_gone);
	tcase_add_test(tc, test_open_unwritable);
	tcase_add_test(tc, test_conv_state_index);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(store_suite)
