/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The read API of cpmsync/store.h (libsync/store/store-read.c) against a
 * fixture written with plain INSERTs through the internal store.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "testlib.h"

/*
 * This binary's strdup() (it takes precedence over libc's for the static
 * library too): fails with ENOMEM while fail_strdup is set.
 */
static bool fail_strdup;

char *strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p;

	if (fail_strdup) {
		errno = ENOMEM;
		return NULL;
	}
	p = malloc(n);
	return p ? memcpy(p, s, n) : NULL;
}

static char tmpdir[] = "/tmp/test-store-read-XXXXXX";
static char dbpath[sizeof(tmpdir) + 32];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/test-store-read-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", tmpdir);
}

static void teardown(void)
{
	test_rm_rf(tmpdir);
}

/*
 * The fixture.  Accounts sort bytewise "B" < "a" < "empty" < "nofolders"
 * < "ä" (UTF-8 0xc3 0xa4).  Account a: INBOX with local messages (uid
 * NULL, ids 98 and 102), uids 2 4 9 10 100 (numeric order, not text), a
 * removed message, \Recent in a flag set, an absent Message-ID and one
 * with a TAB and a newline; a folder whose CREATE is pending (no
 * server_name), a removed folder with a visible message, "archive" after
 * "INBOX" and "Éte" after "archive" (bytewise, not by locale).
 */
static const char fixture_sql[] =
	"INSERT INTO account (id, name) VALUES (1, 'a'), (2, 'B'), (3, 'ä'), (4, 'empty'),"
	" (5, 'nofolders');"
	"INSERT INTO folder (id, account_id, name, delimiter, uidvalidity, uidnext, highestmodseq,"
	" special_use, subscribed, server_name, removed) VALUES"
	" (10, 1, 'INBOX', '/', 5, 101, 99, NULL, 1, 'INBOX', 0),"
	" (11, 1, 'Archive/2024', '/', NULL, NULL, NULL, '\\Archive', 0, NULL, 0),"
	" (12, 1, 'Zeta', '/', 7, 2, 1, NULL, 0, 'Zeta', 1),"
	" (13, 1, 'Éte', '/', 8, 6, 0, NULL, 0, 'Éte', 0),"
	" (14, 1, 'archive', '/', 9, 2, 0, NULL, 0, 'archive', 0),"
	" (20, 2, 'INBOX', '/', 1, 2, 0, NULL, 0, 'INBOX', 0),"
	" (30, 3, 'INBOX', '/', 1, 2, 0, NULL, 0, 'INBOX', 0),"
	" (40, 4, 'INBOX', '/', 1, 1, 0, NULL, 0, 'INBOX', 0);"
	/* Flags go in message_state (schema version 23). */
	"CREATE TEMP TABLE fixture (id, folder_id, uid, flags, message_id, removed);"
	"INSERT INTO fixture (id, folder_id, uid, flags, message_id, removed) VALUES"
	" (98, 10, NULL, '', '<first-local@x>', 0),"
	" (101, 10, 10, '$Label \\Answered \\Seen', '<m10@x>', 0),"
	" (102, 10, NULL, '\\Draft', '<local2@x>', 0),"
	" (103, 10, 2, '', NULL, 0),"
	" (106, 10, 3, '\\Seen', '<removed@x>', 1),"
	" (107, 10, 100, '\\Flagged \\Recent \\Seen', '<m100@x>', 0),"
	" (108, 10, 4, '', 'has' || char(9) || 'tab and' || char(10) || 'newline', 0),"
	" (110, 11, NULL, '', '<pending@x>', 0),"
	" (120, 12, 1, '\\Seen', '<in-removed-folder@x>', 0),"
	" (130, 13, 5, 'Seen', '<ete@x>', 0),"
	" (140, 14, 1, '\\Seen', '<arch@x>', 0),"
	" (200, 20, 1, '', '<b@x>', 0),"
	" (300, 30, 1, '', '<ae@x>', 0);"
	"INSERT INTO message (id, folder_id, uid, message_id, removed)"
	" SELECT id, folder_id, uid, message_id, removed FROM fixture;"
	"INSERT INTO message_state (id, flags) SELECT id, flags FROM fixture;"
	"DROP TABLE fixture;"
	/* Every field of message 100 is set. */
	"INSERT INTO message (id, folder_id, uid, internaldate, size, message_id,"
	" date, conversation_id, contribution_id, imdn_message_id,"
	" type) VALUES (100, 10, 9, 1700000000, 1234, '<m9@x>',"
	" 1700000001, 'conv-1',"
	" 'contrib-1', 'imdn-1', 'session-history');"
	"INSERT INTO message_state (id, flags, modseq, server_flags)"
	" VALUES (100, '\\Seen', 3, '\\Seen');"
	"INSERT INTO summary (id, subject, from_addr, to_addrs) VALUES"
	" (100, 'Hello', 'alice@x', 'bob@x' || char(10) || 'carol@x');"
	"INSERT INTO journal (account_id, op, folder_id, message_id) VALUES"
	" (1, 'append', 10, 98), (1, 'append', 10, 102), (2, 'flags', 20, 200);";

/* The whole dump of the fixture. */
static const char fixture_dump[] = "B\tINBOX\t1\t\t<b@x>\n"
				   "a\tArchive/2024\t0\t\t<pending@x>\n"
				   "a\tINBOX\t0\t\t<first-local@x>\n"
				   "a\tINBOX\t0\t\\Draft\t<local2@x>\n"
				   "a\tINBOX\t2\t\t\n"
				   "a\tINBOX\t4\t\thas tab and newline\n"
				   "a\tINBOX\t9\t\\Seen\t<m9@x>\n"
				   "a\tINBOX\t10\t$Label \\Answered \\Seen\t<m10@x>\n"
				   "a\tINBOX\t100\t\\Flagged \\Seen\t<m100@x>\n"
				   "a\tarchive\t1\t\\Seen\t<arch@x>\n"
				   "a\t\xc3\x89te\t5\tSeen\t<ete@x>\n"
				   "\xc3\xa4\tINBOX\t1\t\t<ae@x>\n";

static struct store *open_internal(unsigned flags)
{
	struct store *s = NULL;
	char *err = NULL;
	int r = store_open(dbpath, flags, &s, &err);

	if (r != 0)
		ck_abort_msg("store_open(%s): %d %s", dbpath, r, err ? err : "(null)");
	return s;
}

static void write_fixture(void)
{
	struct store *s = open_internal(0);

	if (store_exec(s, fixture_sql) != 0)
		ck_abort_msg("fixture: %s", store_error(s));
	store_close(s);
}

static struct cpmsync_store *open_public(unsigned flags)
{
	struct cpmsync_store *cs = NULL;
	char *err = NULL;
	int r = cpmsync_store_open(dbpath, flags, &cs, &err);

	if (r != 0)
		ck_abort_msg("cpmsync_store_open(%s): %d %s", dbpath, r, err ? err : "(null)");
	ck_assert_ptr_null(err);
	return cs;
}

/* Collects what callbacks see into a string; stops with stop_value after
 * stop_after calls when stop_after is not 0. */
struct collect {
	FILE *f;
	char *text;
	size_t len;
	unsigned calls, stop_after;
	int stop_value;
};

static void collect_init(struct collect *c)
{
	memset(c, 0, sizeof(*c));
	c->f = open_memstream(&c->text, &c->len);
	ck_assert_ptr_nonnull(c->f);
}

/* Ends the collection; the text stays in c->text (free it with collect_free). */
static const char *collect_end(struct collect *c)
{
	ck_assert_int_eq(fclose(c->f), 0);
	c->f = NULL;
	return c->text;
}

static void collect_free(struct collect *c)
{
	if (c->f)
		fclose(c->f);
	free(c->text);
	memset(c, 0, sizeof(*c));
}

static int stop_or_go(struct collect *c)
{
	c->calls++;
	return c->stop_after && c->calls == c->stop_after ? c->stop_value : 0;
}

static int on_account(const char *account, void *userdata)
{
	struct collect *c = userdata;

	fprintf(c->f, "%s|", account);
	return stop_or_go(c);
}

static int on_folder(const struct cpmsync_folder_info *fi, void *userdata)
{
	struct collect *c = userdata;

	fprintf(c->f, "%lld %s %s v%u n%u m%llu %s s%d o%d %u/%u|", (long long)fi->id, fi->account,
		fi->name, fi->uidvalidity, fi->uidnext, (unsigned long long)fi->highestmodseq,
		fi->special_use ? fi->special_use : "(null)", fi->subscribed, fi->on_server,
		fi->unseen, fi->messages);
	return stop_or_go(c);
}

/* Message ids only. */
static int on_message_id(const struct cpmsync_message_info *mi, void *userdata)
{
	struct collect *c = userdata;

	fprintf(c->f, "%lld ", (long long)mi->id);
	return stop_or_go(c);
}

/* Every field. */
static int on_message(const struct cpmsync_message_info *mi, void *userdata)
{
	struct collect *c = userdata;

	fprintf(c->f,
		"%lld f%lld u%u [%s] i%lld z%llu [%s] [%s] [%s] d%lld [%s] [%s] [%s] [%s] %s b%d",
		(long long)mi->id, (long long)mi->folder_id, mi->uid, mi->flags,
		(long long)mi->internaldate, (unsigned long long)mi->size, mi->from, mi->to,
		mi->subject, (long long)mi->date, mi->message_id, mi->conversation_id,
		mi->contribution_id, mi->imdn_message_id, mi->type, mi->has_body);
	return stop_or_go(c);
}

static int on_line(const char *line, size_t len, void *userdata)
{
	struct collect *c = userdata;

	/* Exactly one line, ended by its newline. */
	ck_assert_uint_gt(len, 0);
	ck_assert_int_eq(line[len - 1], '\n');
	ck_assert_ptr_eq(memchr(line, '\n', len), line + len - 1);
	ck_assert_uint_eq(strlen(line), len);
	fwrite(line, 1, len, c->f);
	return stop_or_go(c);
}

/* The dump of account/folder as one string (to free), or NULL with *ret_r set. */
static char *dump(struct cpmsync_store *cs, const char *account, const char *folder, int *ret_r)
{
	struct collect c;
	int r;

	collect_init(&c);
	r = cpmsync_store_dump(cs, account, folder, on_line, &c);
	collect_end(&c);
	*ret_r = r;
	return c.text;
}

static void check_dump(struct cpmsync_store *cs, const char *account, const char *folder,
		       const char *want)
{
	int r;
	char *got = dump(cs, account, folder, &r);

	ck_assert_msg(r == 0, "dump(%s, %s): %d %s", account, folder, r, cpmsync_store_error(cs));
	ck_assert_str_eq(got, want);
	free(got);
}

START_TEST(test_accounts_sorted_bytewise)
{
	struct cpmsync_store *cs;
	struct collect c;

	write_fixture();
	cs = open_public(CPMSYNC_STORE_READONLY);
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_foreach_account(cs, on_account, &c), 0);
	ck_assert_str_eq(collect_end(&c), "B|a|empty|nofolders|\xc3\xa4|");
	collect_free(&c);
	ck_assert_int_eq(cpmsync_store_foreach_account(cs, NULL, NULL), -EINVAL);
	ck_assert_int_eq(cpmsync_store_foreach_account(NULL, on_account, &c), -EINVAL);
	cpmsync_store_close(cs);
}
END_TEST

/* The open flags: CPMSYNC_STORE_KEEP_WAL leaves the WAL at close (the
 * store is the two files: a reader sees the rows); an unknown flag, or
 * KEEP_WAL with READONLY, is refused. */
START_TEST(test_open_flags)
{
	struct cpmsync_store *cs = (struct cpmsync_store *)1;
	char wal[sizeof(dbpath) + 8];
	struct collect c;
	struct stat st;

	ck_assert_int_eq(cpmsync_store_open(dbpath, 1u << 7, &cs, NULL), -EINVAL);
	ck_assert_int_eq(cpmsync_store_open(dbpath, CPMSYNC_STORE_READONLY | CPMSYNC_STORE_KEEP_WAL,
					    &cs, NULL),
			 -EINVAL);
	ck_assert_ptr_null(cs);
	write_fixture();
	cs = open_public(CPMSYNC_STORE_KEEP_WAL);
	ck_assert_int_eq(
		store_exec(store_from_public(cs), "INSERT INTO account (name) VALUES ('kept')"), 0);
	cpmsync_store_close(cs);
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	ck_assert_int_eq(stat(wal, &st), 0);
	ck_assert_int_gt(st.st_size, 0);
	cs = open_public(CPMSYNC_STORE_READONLY);
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_foreach_account(cs, on_account, &c), 0);
	ck_assert_str_eq(collect_end(&c), "B|a|empty|kept|nofolders|\xc3\xa4|");
	collect_free(&c);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_folders)
{
	struct cpmsync_store *cs;
	struct collect c;

	write_fixture();
	cs = open_public(CPMSYNC_STORE_READONLY);

	/* Sorted bytewise, the removed "Zeta" hidden; counts of visible
	 * messages (106 is removed); "Seen" without the backslash is a
	 * keyword, not \Seen; a folder whose CREATE is pending is not on
	 * the server; absent numbers are 0. */
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_foreach_folder(cs, "a", on_folder, &c), 0);
	ck_assert_str_eq(collect_end(&c), "11 a Archive/2024 v0 n0 m0 \\Archive s0 o0 1/1|"
					  "10 a INBOX v5 n101 m99 (null) s1 o1 4/7|"
					  "14 a archive v9 n2 m0 (null) s0 o1 0/1|"
					  "13 a \xc3\x89te v8 n6 m0 (null) s0 o1 1/1|");
	collect_free(&c);

	/* An empty folder; an account without folders is known and empty. */
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_foreach_folder(cs, "empty", on_folder, &c), 0);
	ck_assert_str_eq(collect_end(&c), "40 empty INBOX v1 n1 m0 (null) s0 o1 0/0|");
	collect_free(&c);
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_foreach_folder(cs, "nofolders", on_folder, &c), 0);
	ck_assert_str_eq(collect_end(&c), "");
	collect_free(&c);

	/* Unknown account (names are exact: "A" is not "a"). */
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_foreach_folder(cs, "A", on_folder, &c),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_ptr_nonnull(strstr(cpmsync_store_error(cs), "unknown account 'A'"));
	ck_assert_str_eq(collect_end(&c), "");
	collect_free(&c);

	/* get_folder by id; a removed or unknown folder is not found. */
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_get_folder(cs, 10, on_folder, &c), 0);
	ck_assert_int_eq(cpmsync_store_get_folder(cs, 11, on_folder, &c), 0);
	ck_assert_str_eq(collect_end(&c), "10 a INBOX v5 n101 m99 (null) s1 o1 4/7|"
					  "11 a Archive/2024 v0 n0 m0 \\Archive s0 o0 1/1|");
	collect_free(&c);
	ck_assert_int_eq(cpmsync_store_get_folder(cs, 12, on_folder, NULL), -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "no folder with id 12");
	ck_assert_int_eq(cpmsync_store_get_folder(cs, 9999, on_folder, NULL), -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "no folder with id 9999");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_find_folder)
{
	struct cpmsync_store *cs;
	int64_t id = -1;

	write_fixture();
	cs = open_public(CPMSYNC_STORE_READONLY);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "Archive/2024", &id), 0);
	ck_assert_int_eq(id, 11);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "\xc3\x89te", &id), 0);
	ck_assert_int_eq(id, 13);
	/* INBOX in any case is the INBOX; other names are exact. */
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "inbox", &id), 0);
	ck_assert_int_eq(id, 10);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "archive", &id), 0);
	ck_assert_int_eq(id, 14);
	id = -1;
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "ARCHIVE", &id), -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "account 'a' has no folder 'ARCHIVE'");
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "Zeta", &id), -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "x", "INBOX", &id), -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "unknown account 'x'");
	ck_assert_int_eq(id, -1);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", NULL, &id), -EINVAL);
	cpmsync_store_close(cs);
}
END_TEST

/* An error's text is the last call's: a read after a failed call (a read
 * or a change) does not show the earlier text. */
START_TEST(test_error_per_call)
{
	struct cpmsync_store *cs;
	uint32_t n = 0;
	int64_t id = -1;

	write_fixture();
	cs = open_public(0);
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "Zeta", &id), -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "account 'a' has no folder 'Zeta'");
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "a", "INBOX", &id), 0);
	ck_assert_str_eq(cpmsync_store_error(cs), "");
	ck_assert_int_lt(cpmsync_op_delete_folder(cs, "a", "Nope"), 0);
	ck_assert_str_ne(cpmsync_store_error(cs), "");
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, "a", &n), 0);
	ck_assert_str_eq(cpmsync_store_error(cs), "");
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, "nobody", &n), -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "unknown account 'nobody'");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_messages)
{
	struct cpmsync_store *cs;
	struct collect c;

	write_fixture();
	cs = open_public(CPMSYNC_STORE_READONLY);

	/* Id order, the removed 106 hidden, no limit. */
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, 10, 0, 0, on_message_id, &c), 0);
	ck_assert_str_eq(collect_end(&c), "98 100 101 102 103 107 108 ");
	collect_free(&c);

	/* Paging with limit and after_id. */
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, 10, 0, 3, on_message_id, &c), 0);
	fputs("| ", c.f);
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, 10, 101, 3, on_message_id, &c), 0);
	fputs("| ", c.f);
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, 10, 107, 3, on_message_id, &c), 0);
	fputs("| ", c.f);
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, 10, 108, 3, on_message_id, &c), 0);
	fputs("| ", c.f);
	/* after_id need not be a visible message's id. */
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, 10, 105, 1, on_message_id, &c), 0);
	ck_assert_str_eq(collect_end(&c), "98 100 101 | 102 103 107 | 108 | | 107 ");
	collect_free(&c);

	/* Empty folder: 0, nothing; removed or unknown folder: not found. */
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, 40, 0, 0, on_message_id, &c), 0);
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, 12, 0, 0, on_message_id, &c),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "no folder with id 12");
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, 777, 0, 0, on_message_id, &c),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(collect_end(&c), "");
	collect_free(&c);

	/* Every field; absent ones "" or 0, type NULL reads "message". */
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_get_message(cs, 100, on_message, &c), 0);
	ck_assert_str_eq(collect_end(&c),
			 "100 f10 u9 [\\Seen] i1700000000 z1234 [alice@x] [bob@x\ncarol@x] [Hello]"
			 " d1700000001 [<m9@x>] [conv-1] [contrib-1] [imdn-1] session-history b0");
	collect_free(&c);
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_get_message(cs, 103, on_message, &c), 0);
	ck_assert_int_eq(cpmsync_store_get_message(cs, 102, on_message, &c), 0);
	ck_assert_str_eq(collect_end(&c),
			 "103 f10 u2 [] i0 z0 [] [] [] d0 [] [] [] [] message b0"
			 "102 f10 u0 [\\Draft] i0 z0 [] [] [] d0 [<local2@x>] [] [] [] message b0");
	collect_free(&c);

	/* Removed message, message of a removed folder, unknown id. */
	ck_assert_int_eq(cpmsync_store_get_message(cs, 106, on_message, NULL),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "no message with id 106");
	ck_assert_int_eq(cpmsync_store_get_message(cs, 120, on_message, NULL),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_store_get_message(cs, 5, on_message, NULL), -CPMSYNC_E_NOT_FOUND);
	cpmsync_store_close(cs);
}
END_TEST

static void store_body(struct store *s, int64_t id, const char *data)
{
	char path[sizeof(tmpdir) + 16];
	size_t n = strlen(data);
	int fd;

	snprintf(path, sizeof(path), "%s/body.in", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(store_body_write_fd(s, id, fd, n), 0);
	close(fd);
}

/* read_body of id into a string (to free), or NULL with *ret_r set. */
static char *read_body(struct cpmsync_store *cs, int64_t id, int *ret_r)
{
	char path[sizeof(tmpdir) + 16];
	char *got;
	off_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/body.out", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	*ret_r = cpmsync_store_read_body(cs, id, fd);
	n = lseek(fd, 0, SEEK_END);
	ck_assert_int_ge(n, 0);
	got = calloc(1, (size_t)n + 1);
	ck_assert_ptr_nonnull(got);
	ck_assert_int_eq(pread(fd, got, (size_t)n, 0), n);
	close(fd);
	return got;
}

START_TEST(test_read_body)
{
	struct cpmsync_store *cs;
	struct collect c;
	struct store *s;
	char *got;
	int r;

	write_fixture();
	s = open_internal(0);
	store_body(s, 100, "Subject: Hello\r\n\r\nbody\r\n");
	store_body(s, 106, "removed\r\n");
	store_body(s, 120, "in a removed folder\r\n");
	store_close(s);

	cs = open_public(CPMSYNC_STORE_READONLY);
	got = read_body(cs, 100, &r);
	ck_assert_int_eq(r, 0);
	ck_assert_str_eq(got, "Subject: Hello\r\n\r\nbody\r\n");
	free(got);
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_get_message(cs, 100, on_message, &c), 0);
	ck_assert_ptr_nonnull(strstr(collect_end(&c), " b1"));
	collect_free(&c);

	/* No body stored; not visible; unknown. */
	got = read_body(cs, 101, &r);
	ck_assert_int_eq(r, -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "message 101 has no body");
	ck_assert_str_eq(got, "");
	free(got);
	got = read_body(cs, 106, &r);
	ck_assert_int_eq(r, -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "no message with id 106");
	ck_assert_str_eq(got, "");
	free(got);
	got = read_body(cs, 120, &r);
	ck_assert_int_eq(r, -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(got, "");
	free(got);
	got = read_body(cs, 4242, &r);
	ck_assert_int_eq(r, -CPMSYNC_E_NOT_FOUND);
	free(got);
	ck_assert_int_eq(cpmsync_store_read_body(cs, 100, -1), -EINVAL);

	/* The read transaction is over: reading again works. */
	got = read_body(cs, 100, &r);
	ck_assert_int_eq(r, 0);
	free(got);
	cpmsync_store_close(cs);

	/* Inside the caller's own transaction (the daemon's case). */
	cs = open_public(0);
	s = store_from_public(cs);
	ck_assert_int_eq(store_begin(s), 0);
	got = read_body(cs, 100, &r);
	ck_assert_int_eq(r, 0);
	ck_assert_str_eq(got, "Subject: Hello\r\n\r\nbody\r\n");
	free(got);
	ck_assert(store_in_transaction(s));
	ck_assert_int_eq(store_commit(s), 0);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_dump)
{
	struct cpmsync_store *cs;
	char *got;
	int r;

	write_fixture();
	cs = open_public(CPMSYNC_STORE_READONLY);

	/* Everything: accounts and folders bytewise ("B" < "a" < "ä",
	 * "INBOX" < "archive" < "Éte"), uid 0 first in id order, then uids
	 * numerically (9 before 10 before 100), \Recent dropped, an absent
	 * Message-ID empty, TAB and newline in it replaced; removed messages
	 * and the removed folder's messages absent; nothing for the empty
	 * account and the account without folders. */
	check_dump(cs, NULL, NULL, fixture_dump);

	/* By account, by folder. */
	check_dump(cs, "B", NULL, "B\tINBOX\t1\t\t<b@x>\n");
	check_dump(cs, "\xc3\xa4", NULL, "\xc3\xa4\tINBOX\t1\t\t<ae@x>\n");
	check_dump(cs, "a", "archive", "a\tarchive\t1\t\\Seen\t<arch@x>\n");
	check_dump(cs, "a", "Archive/2024", "a\tArchive/2024\t0\t\t<pending@x>\n");
	check_dump(cs, "a", "inbox",
		   "a\tINBOX\t0\t\t<first-local@x>\n"
		   "a\tINBOX\t0\t\\Draft\t<local2@x>\n"
		   "a\tINBOX\t2\t\t\n"
		   "a\tINBOX\t4\t\thas tab and newline\n"
		   "a\tINBOX\t9\t\\Seen\t<m9@x>\n"
		   "a\tINBOX\t10\t$Label \\Answered \\Seen\t<m10@x>\n"
		   "a\tINBOX\t100\t\\Flagged \\Seen\t<m100@x>\n");

	/* Known but empty: 0, no line. */
	check_dump(cs, "empty", NULL, "");
	check_dump(cs, "empty", "INBOX", "");
	check_dump(cs, "nofolders", NULL, "");

	/* Unknown account or folder, removed folder: not found, no line. */
	got = dump(cs, "A", NULL, &r);
	ck_assert_int_eq(r, -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "unknown account 'A'");
	ck_assert_str_eq(got, "");
	free(got);
	got = dump(cs, "x", "INBOX", &r);
	ck_assert_int_eq(r, -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "unknown account 'x'");
	free(got);
	got = dump(cs, "a", "Zeta", &r);
	ck_assert_int_eq(r, -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "account 'a' has no folder 'Zeta'");
	ck_assert_str_eq(got, "");
	free(got);
	got = dump(cs, "nofolders", "INBOX", &r);
	ck_assert_int_eq(r, -CPMSYNC_E_NOT_FOUND);
	free(got);

	/* A folder needs its account. */
	ck_assert_int_eq(cpmsync_store_dump(cs, NULL, "INBOX", on_line, NULL), -EINVAL);
	ck_assert_int_eq(cpmsync_store_dump(cs, NULL, NULL, NULL, NULL), -EINVAL);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_dump_after_changes)
{
	struct cpmsync_store *cs;
	struct store *s;

	write_fixture();
	s = open_internal(0);
	/* Removing a folder hides its messages; an un-removed one shows. */
	ck_assert_int_eq(store_exec(s, "UPDATE folder SET removed = 1 WHERE id = 14;"
				       "UPDATE folder SET removed = 0 WHERE id = 12;"
				       "UPDATE message SET removed = 1 WHERE folder_id = 10;"
				       "UPDATE message SET removed = 0 WHERE id = 106;"),
			 0);
	store_close(s);
	cs = open_public(CPMSYNC_STORE_READONLY);
	check_dump(cs, "a", NULL,
		   "a\tArchive/2024\t0\t\t<pending@x>\n"
		   "a\tINBOX\t3\t\\Seen\t<removed@x>\n"
		   "a\tZeta\t1\t\\Seen\t<in-removed-folder@x>\n"
		   "a\t\xc3\x89te\t5\tSeen\t<ete@x>\n");
	cpmsync_store_close(cs);
}
END_TEST

/* Each walk: a callback's non-zero value stops it and is returned; the
 * next walk starts afresh. */
START_TEST(test_callback_stops)
{
	struct cpmsync_store *cs;
	struct collect c;

	write_fixture();
	cs = open_public(CPMSYNC_STORE_READONLY);

	collect_init(&c);
	c.stop_after = 2;
	c.stop_value = 42;
	ck_assert_int_eq(cpmsync_store_foreach_account(cs, on_account, &c), 42);
	ck_assert_uint_eq(c.calls, 2);
	ck_assert_str_eq(collect_end(&c), "B|a|");
	collect_free(&c);

	collect_init(&c);
	c.stop_after = 1;
	c.stop_value = -7;
	ck_assert_int_eq(cpmsync_store_foreach_folder(cs, "a", on_folder, &c), -7);
	ck_assert_uint_eq(c.calls, 1);
	c.calls = 0;
	ck_assert_int_eq(cpmsync_store_get_folder(cs, 10, on_folder, &c), -7);
	collect_free(&c);

	collect_init(&c);
	c.stop_after = 3;
	c.stop_value = 1;
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, 10, 0, 0, on_message_id, &c), 1);
	ck_assert_str_eq(collect_end(&c), "98 100 101 ");
	collect_free(&c);

	collect_init(&c);
	c.stop_after = 1;
	c.stop_value = 5;
	ck_assert_int_eq(cpmsync_store_get_message(cs, 100, on_message_id, &c), 5);
	collect_free(&c);

	collect_init(&c);
	c.stop_after = 2;
	c.stop_value = -EPIPE;
	ck_assert_int_eq(cpmsync_store_dump(cs, NULL, NULL, on_line, &c), -EPIPE);
	ck_assert_str_eq(collect_end(&c), "B\tINBOX\t1\t\t<b@x>\n"
					  "a\tArchive/2024\t0\t\t<pending@x>\n");
	collect_free(&c);

	/* Nothing is left half-way: full walks again. */
	check_dump(cs, NULL, NULL, fixture_dump);
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_foreach_account(cs, on_account, &c), 0);
	ck_assert_uint_eq(c.calls, 5);
	collect_free(&c);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_pending_operations)
{
	struct cpmsync_store *cs;
	uint32_t n = 99;

	write_fixture();
	cs = open_public(CPMSYNC_STORE_READONLY);
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, NULL, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, "a", &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, "B", &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, "empty", &n), 0);
	ck_assert_uint_eq(n, 0);
	n = 99;
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, "nope", &n), -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(cpmsync_store_error(cs), "unknown account 'nope'");
	ck_assert_uint_eq(n, 99);
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, NULL, NULL), -EINVAL);
	cpmsync_store_close(cs);
}
END_TEST

/* A read-only reader keeps reading while a writer holds a write
 * transaction, and sees only what was committed. */
START_TEST(test_readonly_during_write)
{
	struct cpmsync_store *cs;
	struct store *w;
	struct collect c;
	uint32_t n;
	char *err = NULL;

	/* A read-only open never creates the file. */
	ck_assert_int_lt(cpmsync_store_open(dbpath, CPMSYNC_STORE_READONLY, &cs, &err), 0);
	ck_assert_ptr_nonnull(err);
	free(err);
	ck_assert_int_eq(access(dbpath, F_OK), -1);

	write_fixture();
	w = open_internal(0);
	cs = open_public(CPMSYNC_STORE_READONLY);
	ck_assert_int_eq(store_set_busy_timeout(store_from_public(cs), 0), 0); /* never wait */

	ck_assert_int_eq(store_begin(w), 0);
	ck_assert_int_eq(store_exec(w, "INSERT INTO message (id, folder_id, uid, message_id)"
				       " VALUES (500, 20, 2, '<new@x>');"
				       "INSERT INTO message_state (id) VALUES (500);"
				       "UPDATE message SET removed = 1 WHERE id = 200;"
				       "INSERT INTO account (id, name) VALUES (6, 'new');"
				       "DELETE FROM journal;"),
			 0);

	check_dump(cs, NULL, NULL, fixture_dump);
	collect_init(&c);
	ck_assert_int_eq(cpmsync_store_foreach_account(cs, on_account, &c), 0);
	ck_assert_int_eq(cpmsync_store_foreach_folder(cs, "B", on_folder, &c), 0);
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, 20, 0, 0, on_message_id, &c), 0);
	ck_assert_str_eq(collect_end(&c), "B|a|empty|nofolders|\xc3\xa4|"
					  "20 B INBOX v1 n2 m0 (null) s0 o1 1/1|200 ");
	collect_free(&c);
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, NULL, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(cpmsync_store_get_message(cs, 500, on_message_id, NULL),
			 -CPMSYNC_E_NOT_FOUND);

	ck_assert_int_eq(store_commit(w), 0);
	check_dump(cs, "B", NULL, "B\tINBOX\t2\t\t<new@x>\n");
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, NULL, &n), 0);
	ck_assert_uint_eq(n, 0);
	check_dump(cs, "new", NULL, "");

	cpmsync_store_close(cs);
	store_close(w);
}
END_TEST

struct count_lines {
	unsigned long lines;
	long long last_uid;
	bool ordered;
};

static int count_line(const char *line, size_t len, void *userdata)
{
	struct count_lines *cl = userdata;
	long long uid = strtoll(line + strlen("big\tINBOX\t"), NULL, 10);

	(void)len;
	if (uid <= cl->last_uid)
		cl->ordered = false;
	cl->last_uid = uid;
	cl->lines++;
	return 0;
}

static long max_rss_kib(void)
{
	struct rusage ru;

	ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_maxrss;
}

/* 100,000 messages of about 300 bytes each: the dump streams them, in
 * order, without holding them (about 30 MB if it did). */
START_TEST(test_dump_large)
{
	struct count_lines cl = { .last_uid = 0, .ordered = true };
	struct cpmsync_store *cs;
	struct store *s;
	long before, after;
	int status;
	pid_t pid;

	/* Written by a child, so that this process's peak RSS is the dump's. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		s = open_internal(0);
		/* uids in reverse id order, so that only a sort by uid is right. */
		ck_assert_int_eq(
			store_exec(s,
				   "INSERT INTO account (id, name) VALUES (1, 'big');"
				   "INSERT INTO folder (id, account_id, name, server_name)"
				   " VALUES (1, 1, 'INBOX', 'INBOX');"
				   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
				   " WHERE i < 100000)"
				   " INSERT INTO message (folder_id, uid, message_id)"
				   " SELECT 1, 100001 - i,"
				   " '<' || printf('%0280d', i) || '@x>' FROM n;"
				   "INSERT INTO message_state (id, flags)"
				   " SELECT id, '\\Seen' FROM message;"),
			0);
		store_close(s);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	cs = open_public(CPMSYNC_STORE_READONLY);
	before = max_rss_kib();
	ck_assert_int_eq(cpmsync_store_dump(cs, NULL, NULL, count_line, &cl), 0);
	after = max_rss_kib();
	ck_assert_uint_eq(cl.lines, 100000);
	ck_assert(cl.ordered);
	ck_assert_int_eq(cl.last_uid, 100000);
#ifndef __SANITIZE_ADDRESS__
	/* The store's page cache is 4 MiB at most (STORE_CACHE_KIB; with
	 * 8 MiB this grew by 9 MiB); holding the 100,000 lines would take
	 * about 30 MiB. */
	ck_assert_msg(after - before < 8 * 1024, "max RSS grew by %ld KiB", after - before);
#else
	(void)before;
	(void)after;
#endif
	cpmsync_store_close(cs);
}
END_TEST

/* SQL NULL reads as NULL with 0; a failed copy is -ENOMEM, never NULL with 0. */
START_TEST(test_col_strdup)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char *v = (char *)"untouched";

	ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT NULL, 'abc', '', 42", -1, &st, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);

	ck_assert_int_eq(store_col_strdup(st, 0, &v), 0);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(store_col_strdup(st, 1, &v), 0);
	ck_assert_str_eq(v, "abc");
	free(v);
	ck_assert_int_eq(store_col_strdup(st, 2, &v), 0);
	ck_assert_str_eq(v, "");
	free(v);
	ck_assert_int_eq(store_col_strdup(st, 3, &v), 0);
	ck_assert_str_eq(v, "42");
	free(v);

	fail_strdup = true;
	v = (char *)"untouched";
	ck_assert_int_eq(store_col_strdup(st, 1, &v), -ENOMEM);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(store_col_strdup(st, 2, &v), -ENOMEM);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(store_col_strdup(st, 0, &v), 0); /* no copy needed */
	ck_assert_ptr_null(v);
	fail_strdup = false;

	sqlite3_finalize(st);
	sqlite3_close(db);
}
END_TEST

static Suite *store_read_suite(void)
{
	Suite *s = suite_create("store-read");
	TCase *tc = tcase_create("store-read");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_accounts_sorted_bytewise);
	tcase_add_test(tc, test_open_flags);
	tcase_add_test(tc, test_folders);
	tcase_add_test(tc, test_find_folder);
	tcase_add_test(tc, test_error_per_call);
	tcase_add_test(tc, test_messages);
	tcase_add_test(tc, test_read_body);
	tcase_add_test(tc, test_dump);
	tcase_add_test(tc, test_dump_after_changes);
	tcase_add_test(tc, test_callback_stops);
	tcase_add_test(tc, test_pending_operations);
	tcase_add_test(tc, test_readonly_during_write);
	tcase_add_test(tc, test_dump_large);
	tcase_add_test(tc, test_col_strdup);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(store_read_suite)
