/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Local operations (cpmsync/ops.h): the rows and journal rows each one
 * leaves, the special cases of messages and folders not on the server yet,
 * and that a failure changes nothing.
 */
#include <sqlite3.h>

#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/io.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "store/store-sync.h"
#include "store/store.h"
#include "testlib.h"

static char tmpdir[] = "/tmp/test-store-ops-XXXXXX";
static char dbpath[sizeof(tmpdir) + 32];
static struct cpmsync_store *cs;
static struct store *s;

static const char msg1[] = "Message-ID: <one@example.org>\r\n"
			   "From: tel:+491111\r\n"
			   "To: tel:+492222\r\n"
			   "Subject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\n"
			   "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
			   "Conversation-ID: conv-1\r\n"
			   "Contribution-ID: contrib-1\r\n"
			   "IMDN-Message-ID: imdn-1\r\n"
			   "Content-Type: Message/CPIM\r\n"
			   "\r\n"
			   "hello\r\n";

/*
 * Account "a": INBOX (id 1) and Archive (id 2) on the server; message 1
 * in INBOX with uid 5, \Seen and a body.  Account "b": INBOX (id 3) with
 * message 2 (uid 1).
 */
static void setup(void)
{
	char *err = NULL;

	strcpy(tmpdir, "/tmp/test-store-ops-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", tmpdir);
	test_wal_syncs_install();
	ck_assert_int_eq(cpmsync_store_open(dbpath, 0, &cs, &err), 0);
	s = store_from_public(cs);
	ck_assert_int_eq(
		store_exec(
			s,
			"INSERT INTO account (id, name) VALUES (1, 'a'), (2, 'b');"
			"INSERT INTO folder (id, account_id, name, delimiter, server_name) VALUES"
			" (1, 1, 'INBOX', '/', 'INBOX'), (2, 1, 'Archive', '/', 'Archive'),"
			" (3, 2, 'INBOX', '/', 'INBOX');"
			"INSERT INTO message (id, folder_id, uid, size, message_id, type)"
			" VALUES (1, 1, 5, 5, '<m1@x>', 'message'),"
			" (2, 3, 1, 3, '<m2@x>', 'message');"
			"INSERT INTO message_state (id, flags, server_flags)"
			" VALUES (1, '\\Seen', '\\Seen'), (2, '', '');"
			""),
		0);
	ck_assert_int_eq(store_body_put(s, 1, "hello", 5), 0);
}

static void teardown(void)
{
	cs = cpmsync_store_close(cs);
	s = NULL;
	test_rm_rf(tmpdir);
}

static int64_t qint(const char *fmt, ...) ATTR_FORMAT(1, 2);
static int64_t qint(const char *fmt, ...)
{
	char sql[1024];
	sqlite3_stmt *st;
	va_list ap;
	int64_t v;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	ck_assert_int_eq(store_prepare(s, sql, &st), 0);
	ck_assert_msg(store_step(s, st) == 1, "no row: %s", sql);
	v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return v;
}

/* The text of the first column (NULL -> "(null)"), in a static buffer. */
static const char *qtext(const char *fmt, ...) ATTR_FORMAT(1, 2);
static const char *qtext(const char *fmt, ...)
{
	static char out[4096];
	char sql[1024];
	sqlite3_stmt *st;
	va_list ap;
	const char *t;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	ck_assert_int_eq(store_prepare(s, sql, &st), 0);
	ck_assert_msg(store_step(s, st) == 1, "no row: %s", sql);
	t = (const char *)sqlite3_column_text(st, 0);
	snprintf(out, sizeof(out), "%s", t ? t : "(null)");
	sqlite3_reset(st);
	return out;
}

/* The stored body of id as text, wherever it is (store_body_get()). */
static const char *body_text(int64_t id)
{
	static char out[4096];
	size_t len;
	void *p;

	ck_assert_msg(store_body_get(s, id, &p, &len) == 0, "no body for %ld: %s", (long)id,
		      store_error(s));
	ck_assert_uint_lt(len, sizeof(out));
	memcpy(out, p, len);
	out[len] = '\0';
	free(p);
	return out;
}

/* The journal as "op folder message args|..." (NULL as "-"). */
static const char *journal(void)
{
	return qtext(
		"SELECT ifnull(group_concat(op || ' ' || ifnull(folder_id, '-') || ' ' ||"
		" ifnull(message_id, '-') || ' ' || ifnull(replace(args, char(10), '\\n'), '-'),"
		" '|'), '') FROM (SELECT * FROM journal ORDER BY id)");
}

/* A digest of every row, to check that a failure changed nothing. */
static char *snapshot(void)
{
	char *r = strdup(qtext(
		"SELECT (SELECT ifnull(group_concat(id || name, ','), '') FROM account) || ';' ||"
		" (SELECT ifnull(group_concat(id || name || removed || ifnull(server_name, '-'), "
		"','), '')"
		"  FROM folder) || ';' ||"
		" (SELECT ifnull(group_concat(id || '/' || folder_id || '/' || ifnull(uid, '-') || "
		"'/' ||"
		"  (SELECT flags FROM message_state ms WHERE ms.id = message.id) || '/' || removed,"
		" ','), '') FROM message) || ';' ||"
		" (SELECT count(*) FROM message WHERE has_body) || ';' ||"
		" (SELECT ifnull(group_concat(id || op || ifnull(folder_id, '-') ||"
		"  ifnull(message_id, '-') || ifnull(args, '-'), ','), '') FROM journal)"));

	ck_assert_ptr_nonnull(r);
	return r;
}

/* The store is as snapshot() found it then (before, freed). */
static void expect_unchanged(char *before)
{
	char *after = snapshot();

	ck_assert_str_eq(before, after);
	free(before);
	free(after);
}

static int64_t store_ok(const char *folder, const char *data, const char *const *flags)
{
	int64_t id = 0;
	int r = cpmsync_op_store(cs, "a", folder, data, strlen(data), flags, 1000, &id);

	ck_assert_msg(r == 0, "store: %d %s", r, cpmsync_store_error(cs));
	ck_assert_int_gt(id, 0);
	return id;
}

static void expect_err(int r, int want, const char *needle)
{
	ck_assert_msg(r == want, "got %d, want %d (%s)", r, want, cpmsync_store_error(cs));
	if (needle)
		ck_assert_msg(strstr(cpmsync_store_error(cs), needle), "error \"%s\" lacks \"%s\"",
			      cpmsync_store_error(cs), needle);
}

/* Store. */

START_TEST(test_store_row_and_journal)
{
	const char *flags[] = { "\\seen", "$Label", "\\Recent", NULL };
	const char *good[] = { "\\seen", "$Label", NULL };
	int64_t id;

	expect_err(cpmsync_op_store(cs, "a", "INBOX", msg1, strlen(msg1), flags, 0, &id), -EINVAL,
		   "\\Recent");
	id = store_ok("INBOX", msg1, good);
	ck_assert_str_eq(qtext("SELECT flags FROM message_state WHERE id = %ld", (long)id),
			 "$Label \\Seen");
	ck_assert_int_eq(
		qint("SELECT uid IS NULL AND server_flags IS NULL AND removed = 0"
		     " FROM message m JOIN message_state ms ON ms.id = m.id WHERE m.id = %ld",
		     (long)id),
		1);
	ck_assert_int_eq(qint("SELECT size FROM message WHERE id = %ld", (long)id), strlen(msg1));
	ck_assert_int_eq(qint("SELECT internaldate FROM message WHERE id = %ld", (long)id), 1000);
	ck_assert_str_eq(qtext("SELECT message_id FROM message WHERE id = %ld", (long)id),
			 "<one@example.org>");
	ck_assert_str_eq(qtext("SELECT subject FROM summary WHERE id = %ld", (long)id), "grüße");
	ck_assert_str_eq(qtext("SELECT from_addr FROM summary WHERE id = %ld", (long)id),
			 "tel:+491111");
	ck_assert_str_eq(qtext("SELECT to_addrs FROM summary WHERE id = %ld", (long)id),
			 "tel:+492222");
	ck_assert_int_eq(qint("SELECT date FROM message WHERE id = %ld", (long)id), 1057049557);
	ck_assert_str_eq(
		qtext("SELECT conversation_id || contribution_id || imdn_message_id || type"
		      " FROM message WHERE id = %ld",
		      (long)id),
		"conv-1contrib-1imdn-1message");
	ck_assert_str_eq(body_text(id), msg1);
	/* A small body: in the store, with its row (store-body.c). */
	ck_assert_int_eq(qint("SELECT count(*) FROM body_inline WHERE message_id = %ld", (long)id),
			 1);
	ck_assert_int_eq(qint("SELECT count(*) FROM body_pack WHERE message_id = %ld", (long)id),
			 0);
	ck_assert_int_eq(id, 3);
	ck_assert_str_eq(journal(), "append 1 3 -");
}
END_TEST

/*
 * cpmsync_store_remove_account(): "a" goes with everything the store held
 * for it (folders, messages, bodies, journal, how many rows of it); "b"
 * keeps all of its own; an unknown account is no error.
 */
START_TEST(test_remove_account)
{
	uint32_t dropped = 99;

	store_ok("INBOX", msg1, NULL);
	ck_assert_int_eq(qint("SELECT count(*) FROM journal WHERE account_id = 1"), 1);
	ck_assert_int_eq(cpmsync_store_remove_account(cs, "a", &dropped), 0);
	ck_assert_uint_eq(dropped, 1);
	ck_assert_int_eq(qint("SELECT count(*) FROM account WHERE name = 'a'"), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM folder WHERE account_id = 1"), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE folder_id IN (1, 2)"), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM journal"), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM body_inline WHERE message_id <> 2"), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE folder_id = 3"), 1);
	ck_assert_int_eq(qint("SELECT count(*) FROM folder WHERE account_id = 2"), 1);
	dropped = 99;
	ck_assert_int_eq(cpmsync_store_remove_account(cs, "nobody", &dropped), 0);
	ck_assert_uint_eq(dropped, 0);
	ck_assert_int_eq(cpmsync_store_remove_account(cs, NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_store_now_and_case_insensitive_inbox)
{
	int64_t id = 0;

	/* An internal date IMAP cannot write (a five-digit year) is refused
	 * here, not for ever by the server after it was journaled; the last
	 * second of 9999 is taken. */
	expect_err(cpmsync_op_store(cs, "a", "INBOX", "X: y\r\n\r\nb", 9, NULL,
				    CPMSYNC_OP_MAX_DATE + 1, &id),
		   -EINVAL, "internal date 253402300800 is not between 1970 and the end of 9999");
	expect_err(cpmsync_op_store(cs, "a", "INBOX", "X: y\r\n\r\nb", 9, NULL, -1, &id), -EINVAL,
		   "internal date -1 is not");
	ck_assert_str_eq(journal(), "");
	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", "X: y\r\n\r\nb", 9, NULL,
					  CPMSYNC_OP_MAX_DATE, &id),
			 0);
	ck_assert_int_eq(qint("SELECT internaldate FROM message WHERE id = %ld", (long)id),
			 CPMSYNC_OP_MAX_DATE);

	ck_assert_int_eq(cpmsync_op_store(cs, "a", "inbox", "X: y\r\n\r\nb", 9, NULL, 0, &id), 0);
	ck_assert_int_ge(qint("SELECT internaldate FROM message WHERE id = %ld", (long)id),
			 time(NULL) - 5);
	ck_assert_int_eq(qint("SELECT folder_id FROM message WHERE id = %ld", (long)id), 1);
	/* No Message-ID needed; absent fields are "". */
	ck_assert_str_eq(qtext("SELECT message_id || subject || '.' FROM message m JOIN summary "
			       "USING (id) WHERE id = %ld",
			       (long)id),
			 ".");
}
END_TEST

START_TEST(test_store_errors_change_nothing)
{
	const char *bad[] = { "\\Seen", "bad flag", NULL };
	char *before = snapshot();
	int64_t id;

	expect_err(cpmsync_op_store(cs, "a", "INBOX", "", 0, NULL, 0, &id), -EINVAL, "empty");
	expect_err(cpmsync_op_store(cs, "a", "INBOX", msg1, strlen(msg1), bad, 0, &id), -EINVAL,
		   "bad flag");
	expect_err(cpmsync_op_store(cs, "a", "Nope", msg1, strlen(msg1), NULL, 0, &id),
		   -CPMSYNC_E_NOT_FOUND, "Nope");
	/* The account row created on the way is rolled back too. */
	expect_err(cpmsync_op_store(cs, "newacct", "INBOX", msg1, strlen(msg1), NULL, 0, &id),
		   -CPMSYNC_E_NOT_FOUND, "INBOX");
	expect_err(cpmsync_op_store(cs, "bad name", "INBOX", msg1, strlen(msg1), NULL, 0, &id),
		   -EINVAL, "account");
	expect_err(cpmsync_op_store_fd(cs, "a", "INBOX", 0,
				       (uint64_t)CPMSYNC_OP_MAX_MESSAGE_SIZE + 1, NULL, 0, &id),
		   -EFBIG, "larger");
	expect_unchanged(before);
}
END_TEST

/* Writes n bytes of a message (header + filler, a NUL at nul_at if < n)
 * into fd, then closes it. */
static void write_message(int fd, size_t n, size_t nul_at)
{
	static const char head[] = "Message-ID: <big@x>\nSubject: big\n\n";
	char buf[4096];
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < sizeof(buf) ? n - done : sizeof(buf);

		for (size_t i = 0; i < k; i++)
			buf[i] = done + i < sizeof(head) - 1 ? head[done + i]
							     : (char)('a' + (done + i) % 26);
		if (nul_at >= done && nul_at < done + k)
			buf[nul_at - done] = '\0';
		if (write(fd, buf, k) != (ssize_t)k)
			_exit(1);
		done += k;
	}
	close(fd);
}

static pid_t feeder(size_t n, size_t nul_at, int *ret_fd)
{
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		write_message(p[1], n, nul_at);
		_exit(0);
	}
	close(p[1]);
	*ret_fd = p[0];
	return pid;
}

START_TEST(test_store_fd_pipe_large)
{
	size_t n = 300 * 1024 + 17;
	char last[2] = { 0, 0 };
	int64_t id = 0;
	pid_t pid;
	int fd, st;

	pid = feeder(n, SIZE_MAX, &fd);
	ck_assert_int_eq(cpmsync_op_store_fd(cs, "a", "Archive", fd, n, NULL, 0, &id), 0);
	close(fd);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(qint("SELECT len FROM body_pack WHERE message_id = %ld", (long)id), n);
	ck_assert_str_eq(qtext("SELECT message_id || ' ' || subject FROM message JOIN summary "
			       "USING (id) WHERE id = %ld",
			       (long)id),
			 "<big@x> big");
	/* The last byte went through the streaming part. */
	last[0] = (char)('a' + (n - 1) % 26);
	{
		void *got;
		size_t len;

		ck_assert_int_eq(store_body_get(s, id, &got, &len), 0);
		ck_assert_uint_eq(len, n);
		ck_assert_int_eq(((char *)got)[n - 1], last[0]);
		free(got);
	}
	ck_assert_str_eq(journal(), "append 2 3 -");
}
END_TEST

/*
 * A message whose To: is 340 KB (a folded list of 16,000 addresses) before
 * its Message-ID, stored from a pipe: the summary reads the first 256 KiB
 * of a message only as far as one field's value goes; the fields after
 * the huge one are found (before, only the first 256 KiB were read: the
 * Message-ID and Subject were empty here while the server had them).
 */
START_TEST(test_store_fd_fields_after_huge_header)
{
	static char msg[400 * 1024];
	size_t n = 0;
	int64_t id = 0;
	pid_t pid;
	int p[2], st;

	n += (size_t)snprintf(msg + n, sizeof(msg) - n, "To: a0@example.org");
	for (int i = 1; i < 16000; i++)
		n += (size_t)snprintf(msg + n, sizeof(msg) - n, ",\r\n a%d@example.org", i);
	n += (size_t)snprintf(msg + n, sizeof(msg) - n,
			      "\r\nMessage-ID: <after@x>\r\nSubject: late\r\n\r\nbody\r\n");
	ck_assert_uint_gt(n, 320 * 1024);
	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		_exit(cpmsync_write_all(p[1], msg, n) < 0);
	}
	close(p[1]);
	ck_assert_int_eq(cpmsync_op_store_fd(cs, "a", "Archive", p[0], n, NULL, 0, &id), 0);
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(st, 0);
	ck_assert_str_eq(qtext("SELECT message_id || ' ' || subject FROM message JOIN summary "
			       "USING (id) WHERE id = %ld",
			       (long)id),
			 "<after@x> late");
}
END_TEST

START_TEST(test_store_fd_short_input)
{
	char *before = snapshot();
	int64_t id;
	pid_t pid;
	int fd;

	/* Announces more than the pipe gives, both within and beyond the head. */
	pid = feeder(100, SIZE_MAX, &fd);
	expect_err(cpmsync_op_store_fd(cs, "a", "INBOX", fd, 200, NULL, 0, &id), -EIO,
		   "end of input");
	close(fd);
	waitpid(pid, NULL, 0);
	pid = feeder(300 * 1024, SIZE_MAX, &fd);
	expect_err(cpmsync_op_store_fd(cs, "a", "INBOX", fd, 400 * 1024, NULL, 0, &id), -EIO,
		   "end of input");
	close(fd);
	waitpid(pid, NULL, 0);
	expect_unchanged(before);
}
END_TEST

/*
 * What cannot be APPENDed is refused before anything is stored: a file
 * that is not a message (no header), and a NUL byte, in the head or in
 * the part streamed from a pipe (into a pack, rolled back).
 */
START_TEST(test_store_not_a_message)
{
	static const char nul[] = "Subject: a\r\n\r\nbo\0dy";
	char *before = snapshot(), *after;
	int64_t id;
	pid_t pid;
	int fd;

	expect_err(cpmsync_op_store(cs, "a", "INBOX", "hello world\n", 12, NULL, 0, &id), -EINVAL,
		   "content: not a message: line 1 (\"hello world\") is not a header field (Name: "
		   "value)");
	expect_err(cpmsync_op_store(cs, "a", "INBOX", nul, sizeof(nul) - 1, NULL, 0, &id), -EINVAL,
		   "content: not a message: byte 16 is NUL: an IMAP message cannot hold NUL bytes");
	pid = feeder(300 * 1024, 290000, &fd);
	expect_err(cpmsync_op_store_fd(cs, "a", "INBOX", fd, 300 * 1024, NULL, 0, &id), -EINVAL,
		   "content: not a message: byte 290000 is NUL");
	close(fd);
	waitpid(pid, NULL, 0);
	after = snapshot();
	ck_assert_str_eq(before, after);
	/* The pack holds no trace: the next large message reads back whole. */
	pid = feeder(300 * 1024, SIZE_MAX, &fd);
	ck_assert_int_eq(cpmsync_op_store_fd(cs, "a", "INBOX", fd, 300 * 1024, NULL, 0, &id), 0);
	close(fd);
	waitpid(pid, NULL, 0);
	{
		void *got;
		size_t len;

		ck_assert_int_eq(store_body_get(s, id, &got, &len), 0);
		ck_assert_uint_eq(len, 300 * 1024);
		ck_assert_ptr_null(memchr(got, '\0', len));
		free(got);
	}
	free(before);
	free(after);
}
END_TEST

/*
 * A message within the limit as it is, but past it with its bare LFs sent
 * as CRLF (as APPEND sends it): refused, since stored it could never be
 * sent (it failed every run as "out of memory").
 */
START_TEST(test_store_crlf_size_over_the_limit)
{
	size_t n = CPMSYNC_OP_MAX_MESSAGE_SIZE / 4 * 3; /* 48 MiB, a bare LF every 2 bytes */
	char *before = snapshot(), want[200];
	int p[2];
	int64_t id;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		static char buf[1 << 16];
		size_t done = 0;

		close(p[0]);
		for (size_t i = 0; i < sizeof(buf); i += 2)
			memcpy(buf + i, "x\n", 2);
		memcpy(buf, "Subject: lf\n\n", 13);
		while (done < n) {
			size_t k = n - done < sizeof(buf) ? n - done : sizeof(buf);

			if (write(p[1], buf, k) != (ssize_t)k)
				_exit(1);
			if (done == 0)
				memcpy(buf, "x\nx\nx\nx\nx\nx\nx\n", 14);
			done += k;
		}
		_exit(0);
	}
	close(p[1]);
	snprintf(want, sizeof(want),
		 "message of %zu bytes is %zu with CRLF line ends, as IMAP sends it: larger than"
		 " the %u allowed",
		 n, n + n / 2 - 4, CPMSYNC_OP_MAX_MESSAGE_SIZE);
	expect_err(cpmsync_op_store_fd(cs, "a", "INBOX", p[0], n, NULL, 0, &id), -EFBIG, want);
	close(p[0]);
	waitpid(pid, NULL, 0);
	expect_unchanged(before);
}
END_TEST

/* Flags. */

START_TEST(test_flags_server_message)
{
	const char *add[] = { "\\Flagged", "\\answered", NULL }, *rm[] = { "\\Seen", NULL };
	int64_t ids[] = { 1 };

	ck_assert_int_eq(cpmsync_op_set_flags(cs, ids, 1, add, rm), 0);
	ck_assert_str_eq(qtext("SELECT flags FROM message_state WHERE id = 1"),
			 "\\Answered \\Flagged");
	ck_assert_str_eq(qtext("SELECT server_flags FROM message_state WHERE id = 1"), "\\Seen");
	ck_assert_str_eq(journal(), "flags 1 1 -");
	/* A second change needs no second row; no change adds nothing. */
	ck_assert_int_eq(cpmsync_op_set_flags(cs, ids, 1, rm, NULL), 0);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, ids, 1, rm, NULL), 0);
	ck_assert_str_eq(journal(), "flags 1 1 -");
	ck_assert_int_eq(cpmsync_op_delete(cs, ids, 1), 0);
	ck_assert_str_eq(qtext("SELECT flags FROM message_state WHERE id = 1"),
			 "\\Answered \\Deleted \\Flagged \\Seen");
	ck_assert_str_eq(journal(), "flags 1 1 -");
}
END_TEST

START_TEST(test_flags_unchanged_and_local)
{
	const char *seen[] = { "\\Seen", NULL };
	int64_t ids[2] = { 1, 0 };

	ck_assert_int_eq(cpmsync_op_set_flags(cs, ids, 1, seen, NULL), 0);
	ck_assert_str_eq(journal(), "");
	ids[1] = store_ok("INBOX", msg1, NULL);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, ids + 1, 1, seen, NULL), 0);
	ck_assert_str_eq(qtext("SELECT flags FROM message_state WHERE id = 3"), "\\Seen");
	ck_assert_str_eq(journal(), "append 1 3 -");
}
END_TEST

START_TEST(test_flags_errors_change_nothing)
{
	const char *add[] = { "\\Flagged", NULL }, *bad[] = { "\\Bogus", NULL };
	const char *recent[] = { "\\Recent", NULL };
	const char *seen_flagged[] = { "\\Seen", "\\Flagged", NULL };
	const char *lower[] = { "\\flagged", NULL };
	int64_t some_unknown[] = { 1, 99 }, two_accounts[] = { 1, 2 }, twice[] = { 1, 1 };
	char *before = snapshot();

	expect_err(cpmsync_op_set_flags(cs, some_unknown, 2, add, NULL), -CPMSYNC_E_NOT_FOUND,
		   "99");
	expect_err(cpmsync_op_set_flags(cs, two_accounts, 2, add, NULL), -EINVAL,
		   "another account");
	expect_err(cpmsync_op_set_flags(cs, two_accounts, 1, bad, NULL), -EINVAL, "\\Bogus");
	expect_err(cpmsync_op_set_flags(cs, two_accounts, 1, recent, NULL), -EINVAL, "Recent");
	expect_err(cpmsync_op_set_flags(cs, two_accounts, 0, add, NULL), -EINVAL, "no message");
	expect_err(cpmsync_op_set_flags(cs, twice, 2, add, NULL), -EINVAL,
		   "message 1 is given more than once");
	expect_err(cpmsync_op_set_flags(cs, two_accounts, 1, add, seen_flagged), -EINVAL,
		   "flag \"\\Flagged\" is both added and removed");
	expect_err(cpmsync_op_set_flags(cs, two_accounts, 1, lower, seen_flagged), -EINVAL,
		   "flag \"\\flagged\" is both added and removed");
	expect_err(cpmsync_op_delete(cs, twice, 2), -EINVAL, "message 1 is given more than once");
	expect_err(cpmsync_op_delete(cs, some_unknown, 2), -CPMSYNC_E_NOT_FOUND, "99");
	expect_unchanged(before);
}
END_TEST

/* Expunge. */

START_TEST(test_expunge)
{
	int64_t ids[] = { 1, 0 }, local, keep;

	local = store_ok("INBOX", msg1, (const char *[]){ "\\Deleted", NULL });
	keep = store_ok("INBOX", msg1, NULL);
	ids[1] = local;
	ck_assert_int_eq(cpmsync_op_delete(cs, ids, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", "INBOX"), 0);
	/* On the server: hidden, expunge journaled (after its flags row). */
	ck_assert_int_eq(qint("SELECT removed FROM message WHERE id = 1"), 1);
	/* Local only: gone with its append and body. */
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE id = %ld", (long)local), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM body_pack WHERE message_id = %ld", (long)local),
			 0);
	ck_assert_int_eq(
		qint("SELECT count(*) FROM body_inline WHERE message_id = %ld", (long)local), 0);
	ck_assert_int_eq(qint("SELECT removed FROM message WHERE id = %ld", (long)keep), 0);
	ck_assert_str_eq(journal(), "append 1 4 -|flags 1 1 -|expunge 1 1 -");
	/* Nothing left to expunge: nothing happens. */
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", "INBOX"), 0);
	ck_assert_str_eq(journal(), "append 1 4 -|flags 1 1 -|expunge 1 1 -");
	expect_err(cpmsync_op_expunge(cs, "a", "Nope"), -CPMSYNC_E_NOT_FOUND, "Nope");
}
END_TEST

START_TEST(test_expunge_move_and_copy_destinations)
{
	int64_t src[] = { 1 }, moved, copied;

	ck_assert_int_eq(cpmsync_op_move(cs, src, 1, "Archive", &moved), 0);
	ck_assert_int_eq(cpmsync_op_delete(cs, &moved, 1), 0);
	ck_assert_str_eq(journal(), "move 2 3 src=1");
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", "Archive"), 0);
	/* The move became an expunge of its (removed) source. */
	ck_assert_str_eq(journal(), "expunge 1 1 -");
	ck_assert_int_eq(qint("SELECT removed FROM message WHERE id = 1"), 1);
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE id = %ld", (long)moved), 0);

	src[0] = 2;
	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (id, account_id, name, server_name)"
				       " VALUES (4, 2, 'Old', 'Old')"),
			 0);
	ck_assert_int_eq(cpmsync_op_copy(cs, src, 1, "Old", &copied), 0);
	ck_assert_int_eq(cpmsync_op_delete(cs, &copied, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "b", "Old"), 0);
	ck_assert_str_eq(journal(), "expunge 1 1 -");
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE id = %ld", (long)copied), 0);
}
END_TEST

/* Copy and move. */

START_TEST(test_copy)
{
	int64_t ids[2], new_ids[2];

	ids[0] = 1;
	ids[1] = store_ok("INBOX", msg1, (const char *[]){ "$X", NULL });
	ck_assert_int_eq(cpmsync_op_copy(cs, ids, 2, "Archive", new_ids), 0);
	ck_assert_int_eq(new_ids[0], 4);
	ck_assert_int_eq(new_ids[1], 5);
	ck_assert_str_eq(journal(), "append 1 3 -|copy 2 4 src=1|copy 2 5 src=3");
	ck_assert_str_eq(
		qtext("SELECT flags || '/' || ifnull(uid, '-') || '/' ||"
		      " ifnull(server_flags, '-') || '/' || message_id || '/' || size"
		      " FROM message m JOIN message_state ms ON ms.id = m.id WHERE m.id = 4"),
		"\\Seen/-/-/<m1@x>/5");
	ck_assert_str_eq(body_text(4), "hello");
	ck_assert_str_eq(
		qtext("SELECT subject || type FROM message JOIN summary USING (id) WHERE id = 5"),
		"grüßemessage");
	/* Sources untouched. */
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE id IN (1, 3) AND removed = 0"),
			 2);
	/* Into the same folder: a duplicate; ret_new_ids may be NULL. */
	ck_assert_int_eq(cpmsync_op_copy(cs, ids, 1, "INBOX", NULL), 0);
	ck_assert_int_eq(qint("SELECT folder_id FROM message WHERE id = 6"), 1);
}
END_TEST

START_TEST(test_copy_errors_change_nothing)
{
	int64_t ids[] = { 1, 42 }, two[] = { 1, 2 }, out[2], thrice[] = { 1, 1, 1 }, out3[3];
	char *before = snapshot();

	expect_err(cpmsync_op_copy(cs, ids, 2, "Archive", out), -CPMSYNC_E_NOT_FOUND, "42");
	expect_err(cpmsync_op_copy(cs, two, 2, "Archive", out), -EINVAL, "another account");
	expect_err(cpmsync_op_copy(cs, ids, 1, "Nope", out), -CPMSYNC_E_NOT_FOUND, "Nope");
	expect_err(cpmsync_op_move(cs, ids, 2, "Archive", out), -CPMSYNC_E_NOT_FOUND, "42");
	expect_err(cpmsync_op_move(cs, ids, 1, "INBOX", out), -EINVAL, "already");
	expect_err(cpmsync_op_copy(cs, thrice, 3, "Archive", out3), -EINVAL,
		   "message 1 is given more than once");
	expect_err(cpmsync_op_move(cs, thrice, 3, "Archive", out3), -EINVAL,
		   "message 1 is given more than once");
	/* The folder of another account does not count. */
	expect_err(cpmsync_op_copy(cs, two + 1, 1, "Archive", out), -CPMSYNC_E_NOT_FOUND,
		   "Archive");
	expect_unchanged(before);
}
END_TEST

START_TEST(test_move)
{
	int64_t ids[] = { 1 }, new_id;

	ck_assert_int_eq(cpmsync_op_move(cs, ids, 1, "Archive", &new_id), 0);
	ck_assert_int_eq(qint("SELECT removed FROM message WHERE id = 1"), 1);
	ck_assert_int_eq(qint("SELECT folder_id FROM message WHERE id = %ld", (long)new_id), 2);
	ck_assert_str_eq(body_text(new_id), "hello");
	ck_assert_str_eq(journal(), "move 2 3 src=1");
	/* The moved-away source is no longer visible. */
	expect_err(cpmsync_op_move(cs, ids, 1, "Archive", &new_id), -CPMSYNC_E_NOT_FOUND, "1");
}
END_TEST

/* A change the caller is told is done is on the disk, not only committed
 * (a power loss must not take it back): one WAL sync per operation; a
 * refused one syncs nothing. */
START_TEST(test_done_means_on_disk)
{
	unsigned long before = test_wal_syncs();
	int64_t id;

	id = store_ok("INBOX", msg1, NULL);
	ck_assert_uint_eq(test_wal_syncs(), before + 1);
	ck_assert_int_eq(
		cpmsync_op_set_flags(cs, &id, 1, (const char *const[]){ "\\Flagged", NULL }, NULL),
		0);
	ck_assert_uint_eq(test_wal_syncs(), before + 2);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Later", NULL), 0);
	ck_assert_uint_eq(test_wal_syncs(), before + 3);
	expect_err(cpmsync_op_create_folder(cs, "a", "Later", NULL), -EEXIST, "exists");
	ck_assert_uint_eq(test_wal_syncs(), before + 3);
}
END_TEST

START_TEST(test_move_local)
{
	int64_t id, new_id, back;

	id = store_ok("INBOX", msg1, NULL);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Later", NULL), 0);
	ck_assert_int_eq(cpmsync_op_move(cs, &id, 1, "Later", &new_id), 0);
	/* The source and its append are gone; the new row is appended,
	 * after the folder's creation. */
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE id = %ld", (long)id), 0);
	ck_assert_str_eq(journal(), "create_folder 4 - -|append 4 4 -");
	ck_assert_str_eq(body_text(new_id), msg1);

	/* A local copy without a body moves as the copy it came from. */
	ck_assert_int_eq(store_exec(s, "UPDATE message SET has_body = 0 WHERE id = 1"), 0);
	id = 1;
	ck_assert_int_eq(cpmsync_op_copy(cs, &id, 1, "Archive", &new_id), 0);
	ck_assert_int_eq(cpmsync_op_move(cs, &new_id, 1, "Later", &back), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE id = %ld", (long)new_id), 0);
	ck_assert_str_eq(journal(), "create_folder 4 - -|append 4 4 -|copy 4 6 src=1");
}
END_TEST

/*
 * A body is punched out of its pack only once its deletion is on the disk
 * (store-pack.c: synchronous = NORMAL does not sync the WAL at a commit):
 * the collect after a commit that dropped a body in a pack syncs the WAL,
 * then punches; a commit that dropped none syncs nothing.
 */
START_TEST(test_pack_punch_after_wal_sync)
{
	char big[STORE_BODY_INLINE_MAX + 200];
	unsigned long before;
	size_t n = strlen(msg1);
	int64_t id;

	memcpy(big, msg1, n);
	memset(big + n, 'x', sizeof(big) - n - 1);
	big[sizeof(big) - 1] = '\0';
	id = store_ok("INBOX", big, NULL);
	ck_assert_int_eq(qint("SELECT len FROM body_pack WHERE message_id = %ld", (long)id),
			 (int64_t)sizeof(big) - 1);

	before = test_wal_syncs();
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE message SET size = size WHERE id = 1"), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_uint_eq(test_wal_syncs(), before);

	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_exec_id(s, "DELETE FROM message WHERE id = ?1", id), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM pack_trash"), 1);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_uint_eq(test_wal_syncs(), before + 1);
	ck_assert_int_eq(qint("SELECT count(*) FROM pack_trash"), 0);
}
END_TEST

START_TEST(test_move_twice_and_attempted)
{
	int64_t id = 1, mid, last, again;

	/* A server message moved twice before a sync: still one MOVE of the
	 * original (with a body or not), so that it leaves INBOX. */
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Later", NULL), 0);
	ck_assert_int_eq(cpmsync_op_move(cs, &id, 1, "Archive", &mid), 0);
	ck_assert_int_eq(cpmsync_op_move(cs, &mid, 1, "Later", &last), 0);
	ck_assert_int_eq(qint("SELECT removed FROM message WHERE id = 1"), 1);
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE id = %ld", (long)mid), 0);
	ck_assert_str_eq(journal(), "create_folder 4 - -|move 4 4 src=1");

	/* An append a run already sent (attempts > 0) may be on the server:
	 * moving or expunging the message keeps it, hidden, with its
	 * removal queued, never just forgets it. */
	again = store_ok("INBOX", msg1, NULL);
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET attempts = 1 WHERE op = 'append'"), 0);
	ck_assert_int_eq(cpmsync_op_move(cs, &again, 1, "Archive", &mid), 0);
	ck_assert_int_eq(qint("SELECT removed FROM message WHERE id = %ld", (long)again), 1);
	ck_assert_str_eq(journal(), "create_folder 4 - -|move 4 4 src=1|append 1 5 -|"
				    "expunge 1 5 -|append 2 6 -");
}
END_TEST

/* Folders. */

START_TEST(test_create_folder)
{
	int64_t id = 0;

	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Work/Projects/ÄÖ", &id), 0);
	ck_assert_str_eq(qtext("SELECT name || '/' || ifnull(server_name, '-') || '/' || removed"
			       " FROM folder WHERE id = %ld",
			       (long)id),
			 "Work/Projects/ÄÖ/-/0");
	ck_assert_str_eq(journal(), "create_folder 4 - -");
	expect_err(cpmsync_op_create_folder(cs, "a", "Work/Projects/ÄÖ", &id), -EEXIST, "exists");
	expect_err(cpmsync_op_create_folder(cs, "a", "inbox", &id), -EEXIST, "INBOX");
	/* A new account is created on the way. */
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "c", "X", &id), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM account WHERE name = 'c'"), 1);
}
END_TEST

/* A folder under INBOX, made or renamed with INBOX in another case: the
 * store names it as the server lists it (INBOX/...), not as typed. */
START_TEST(test_create_folder_under_inbox_canonical)
{
	int64_t id = 0, found = 0;

	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Inbox/Kind", &id), 0);
	ck_assert_str_eq(qtext("SELECT name FROM folder WHERE id = %ld", (long)id), "INBOX/Kind");
	expect_err(cpmsync_op_create_folder(cs, "a", "inbox/Kind", &found), -EEXIST,
		   "folder \"INBOX/Kind\" already exists");
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "a", "INBOX/Kind", "iNbOx/Other"), 0);
	ck_assert_str_eq(qtext("SELECT name FROM folder WHERE id = %ld", (long)id), "INBOX/Other");
	/* Only a whole first level: "Inboxes" is a name of its own. */
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Inboxes/x", &id), 0);
	ck_assert_str_eq(qtext("SELECT name FROM folder WHERE id = %ld", (long)id), "Inboxes/x");
}
END_TEST

/*
 * INBOX before the account's first sync: find and create agree.  The store
 * has no row yet, so find says not found; create adds it as the server has
 * it (every server has INBOX: no CREATE journaled); then find finds it and
 * another create says it exists.
 */
START_TEST(test_create_inbox_agrees_with_find)
{
	int64_t id = 0, found = -1;
	char *before;

	expect_err(cpmsync_store_find_folder(cs, "c", "INBOX", &found), -CPMSYNC_E_NOT_FOUND, NULL);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "c", "c", &id), 0); /* the account */
	before = strdup(journal());
	ck_assert_ptr_nonnull(before);
	expect_err(cpmsync_store_find_folder(cs, "c", "inbox", &found), -CPMSYNC_E_NOT_FOUND,
		   "no folder 'inbox'");
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "c", "inbox", &id), 0);
	ck_assert_str_eq(cpmsync_store_error(cs), "");
	ck_assert_int_eq(cpmsync_store_find_folder(cs, "c", "INBOX", &found), 0);
	ck_assert_int_eq(found, id);
	ck_assert_str_eq(qtext("SELECT name || '/' || server_name || '/' || removed FROM folder"
			       " WHERE id = %ld",
			       (long)id),
			 "INBOX/INBOX/0");
	ck_assert_str_eq(journal(), before);
	expect_err(cpmsync_op_create_folder(cs, "c", "INBOX", &id), -EEXIST,
		   "folder INBOX already exists");
	/* Still never a rename onto it. */
	expect_err(cpmsync_op_rename_folder(cs, "c", "c", "Inbox"), -EEXIST, "INBOX");
	free(before);
}
END_TEST

START_TEST(test_create_folder_invalid_names)
{
	static const char *const bad[] = {
		"", "/x", "x/", "a//b", "a\tb", "a\x7f", "bad\xff", "\xc3", "a\nb",
	};
	char *before = snapshot(), longname[1100];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_err(cpmsync_op_create_folder(cs, "a", bad[i], NULL), -EINVAL, NULL);
	memset(longname, 'x', 1025);
	longname[1025] = '\0';
	expect_err(cpmsync_op_create_folder(cs, "a", longname, NULL), -EINVAL, "longer");
	longname[1024] = '\0';
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", longname, NULL), 0);
	ck_assert_int_eq(store_exec(s, "DELETE FROM journal; DELETE FROM folder WHERE id > 3"), 0);
	expect_unchanged(before);
}
END_TEST

/*
 * Once a sync has seen the server's hierarchy delimiter ('.' in Cyrus's
 * classic namespace), a name with it inside a level is refused when it is
 * made or renamed to, nothing changed; before, it is accepted (replay's
 * name_unsendable() fails it then).  On a '/' server a '.' is a character
 * like any other.
 */
START_TEST(test_folder_name_with_delimiter)
{
	int64_t acc = qint("SELECT id FROM account WHERE name = 'a'");
	char *before, *after;

	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Early.Dot", NULL), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_set_delimiter(s, acc, '.'), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_str_eq(qtext("SELECT delimiter FROM account WHERE id = %ld", (long)acc), ".");
	before = snapshot();
	expect_err(cpmsync_op_create_folder(cs, "a", "Loc.Dot", NULL), -EINVAL,
		   "\"Loc.Dot\" cannot be a folder name on this server: its hierarchy delimiter "
		   "'.' is not allowed inside a level");
	expect_err(cpmsync_op_create_folder(cs, "a", "Work/v1.2", NULL), -EINVAL,
		   "\"Work/v1.2\" cannot be a folder name");
	expect_err(cpmsync_op_rename_folder(cs, "a", "Archive", "With.Dot"), -EINVAL,
		   "\"With.Dot\" cannot be a folder name");
	after = snapshot();
	ck_assert_str_eq(before, after);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Work/Plain", NULL), 0);
	ck_assert_int_eq(store_begin(s), 0);
	ck_assert_int_eq(store_sync_set_delimiter(s, acc, '/'), 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Loc.Dot", NULL), 0);
	free(before);
	free(after);
}
END_TEST

START_TEST(test_create_folder_pending_delete)
{
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Archive"), 0);
	expect_err(cpmsync_op_create_folder(cs, "a", "Archive", NULL), -EBUSY, "server first");
}
END_TEST

START_TEST(test_rename_folder)
{
	ck_assert_int_eq(store_exec(s,
				    "INSERT INTO folder (id, account_id, name, server_name) VALUES"
				    " (10, 1, 'Archive/2024', 'Archive/2024'),"
				    " (11, 1, 'Archive/2024/Q1', 'Archive/2024/Q1'),"
				    " (12, 1, 'Archives', 'Archives')"),
			 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "a", "Archive", "Old/Archive"), 0);
	ck_assert_str_eq(qtext("SELECT group_concat(id || '=' || name || ':' || server_name, ' ')"
			       " FROM (SELECT * FROM folder WHERE account_id = 1 ORDER BY id)"),
			 "1=INBOX:INBOX 2=Old/Archive:Archive 10=Old/Archive/2024:Archive/2024"
			 " 11=Old/Archive/2024/Q1:Archive/2024/Q1 12=Archives:Archives");
	ck_assert_str_eq(journal(), "rename_folder 2 - Old/Archive");

	/* Errors. */
	expect_err(cpmsync_op_rename_folder(cs, "a", "INBOX", "X"), -EINVAL, "INBOX");
	expect_err(cpmsync_op_rename_folder(cs, "a", "Archives", "Old/Archive"), -EEXIST, "exists");
	expect_err(cpmsync_op_rename_folder(cs, "a", "Archives", "Old/Archive/2024/Q1"), -EEXIST,
		   "exists");
	expect_err(cpmsync_op_rename_folder(cs, "a", "Archives", "inbox"), -EEXIST, "INBOX");
	expect_err(cpmsync_op_rename_folder(cs, "a", "Archives", "Archives/sub"), -EINVAL, "below");
	expect_err(cpmsync_op_rename_folder(cs, "a", "Nope", "X"), -CPMSYNC_E_NOT_FOUND, "Nope");
	expect_err(cpmsync_op_rename_folder(cs, "a", "Archives", "x//y"), -EINVAL, NULL);
	/* A child that would collide: nothing renamed. */
	ck_assert_int_eq(store_exec(s,
				    "INSERT INTO folder (id, account_id, name, server_name) VALUES"
				    " (13, 1, 'N/2024', 'N/2024')"),
			 0);
	expect_err(cpmsync_op_rename_folder(cs, "a", "Old/Archive", "N"), -EEXIST, "N/2024");
	ck_assert_int_eq(qint("SELECT count(*) FROM folder WHERE name LIKE 'Old/%%'"), 3);
	ck_assert_str_eq(journal(), "rename_folder 2 - Old/Archive");
}
END_TEST

START_TEST(test_rename_folder_local)
{
	int64_t id;

	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "New", &id), 0);
	ck_assert_int_eq(cpmsync_op_rename_folder(cs, "a", "New", "Newer"), 0);
	ck_assert_str_eq(qtext("SELECT name || ifnull(server_name, '-') FROM folder WHERE id = %ld",
			       (long)id),
			 "Newer-");
	ck_assert_str_eq(journal(), "create_folder 4 - -");
}
END_TEST

START_TEST(test_delete_folder_on_server)
{
	int64_t ids[] = { 1 }, a_copy, kept;

	ck_assert_int_eq(
		store_exec(s, "INSERT INTO message (id, folder_id, uid, size) VALUES (50, 2, 9, 1);"
			      "INSERT INTO message_state (id) VALUES (50)"),
		0);
	ck_assert_int_eq(cpmsync_op_set_flags(cs, (int64_t[]){ 50 }, 1,
					      (const char *[]){ "\\Seen", NULL }, NULL),
			 0);
	/* A move into Archive, a copy out of it (with body), a copy out
	 * of it without a body. */
	ck_assert_int_eq(cpmsync_op_move(cs, ids, 1, "Archive", &a_copy), 0);
	ck_assert_int_eq(cpmsync_op_copy(cs, &a_copy, 1, "INBOX", &kept), 0);
	ck_assert_int_eq(cpmsync_op_copy(cs, (int64_t[]){ 50 }, 1, "INBOX", NULL), 0);
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "Archive", "/private/comment", "x"), 0);
	ck_assert_str_eq(journal(),
			 "flags 2 50 -|move 2 51 src=1|copy 1 52 src=51|copy 1 53 src=50|"
			 "set_metadata 2 - /private/comment\\nx");

	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Archive"), 0);
	ck_assert_int_eq(qint("SELECT removed FROM folder WHERE id = 2"), 1);
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE folder_id = 2"), 0);
	/* Move in: the source is expunged instead.  Copy out with a body:
	 * appended.  Copy out without a body: dropped with its row. */
	ck_assert_str_eq(journal(), "expunge 1 1 -|append 1 52 -|delete_folder 2 - -");
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE id = 53"), 0);
	ck_assert_str_eq(body_text(52), "hello");
	expect_err(cpmsync_op_delete_folder(cs, "a", "Archive"), -CPMSYNC_E_NOT_FOUND, "Archive");
}
END_TEST

START_TEST(test_delete_folder_keeps_attempted_mark)
{
	int64_t ids[] = { 1 }, moved, copied;

	/* A move out of INBOX a run sent (attempts 1, Archive's UIDNEXT 9
	 * recorded) and a copy out of it not sent yet, both with the body.
	 * Deleting the source's folder (here INBOX's stand-in: the source
	 * goes) makes both appends; the one already sent keeps its mark, so
	 * that the engine first looks for the MOVE's copy instead of
	 * appending a second one (issue 12). */
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Src", NULL), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE folder SET server_name = 'Src' WHERE name = 'Src';"
				       "DELETE FROM journal;"
				       "UPDATE message SET folder_id = 4 WHERE id = 1"),
			 0);
	ck_assert_int_eq(cpmsync_op_move(cs, ids, 1, "Archive", &moved), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET attempts = 1, args_sent = 'uidnext=9'"),
			 0);
	ck_assert_int_eq(cpmsync_op_copy(cs, &moved, 1, "INBOX", &copied), 0);
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Src"), 0);
	ck_assert_str_eq(journal(), "append 2 3 -|copy 1 4 src=3|delete_folder 4 - -");
	ck_assert_str_eq(qtext("SELECT attempts || ' ' || ifnull(args_sent, '-') FROM journal"
			       " WHERE message_id = %ld",
			       (long)moved),
			 "1 uidnext=9");
	ck_assert_str_eq(qtext("SELECT attempts || ' ' || ifnull(args_sent, '-') FROM journal"
			       " WHERE message_id = %ld",
			       (long)copied),
			 "0 -");
}
END_TEST

START_TEST(test_delete_folder_local)
{
	int64_t id, f, ids[] = { 1 };

	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Tmp", &f), 0);
	id = store_ok("Tmp", msg1, NULL);
	ck_assert_int_eq(cpmsync_op_move(cs, ids, 1, "Tmp", NULL), 0);
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "Tmp", "/shared/x", "y"), 0);
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Tmp"), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM folder WHERE id = %ld", (long)f), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM message WHERE id = %ld", (long)id), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM body_pack WHERE message_id > 1"), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM pack_trash"), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM body_inline WHERE message_id > 1"), 0);
	ck_assert_str_eq(journal(), "expunge 1 1 -");
	/* The name is free again at once. */
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Tmp", NULL), 0);
}
END_TEST

START_TEST(test_delete_folder_refused)
{
	char *before;

	/* A folder with sub-folders: -ENOTEMPTY naming a direct child, the
	 * first by name, even made after a deeper one that sorts first
	 * ("Archive/A" itself is not a folder: only its child is); with no
	 * direct child left, the shallowest descendant. */
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Archive/A/Leaf", NULL), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Archive/Sub", NULL), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Archive/B", NULL), 0);
	before = snapshot();
	expect_err(cpmsync_op_delete_folder(cs, "a", "Archive"), -ENOTEMPTY, NULL);
	ck_assert_str_eq(cpmsync_store_error(cs),
			 "folder \"Archive\" has sub-folders (\"Archive/B\"); delete them first");
	expect_err(cpmsync_op_delete_folder(cs, "a", "inbox"), -EINVAL, "INBOX");
	expect_err(cpmsync_op_delete_folder(cs, "a", "Nope"), -CPMSYNC_E_NOT_FOUND, "Nope");
	expect_unchanged(before);
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Archive/B"), 0);
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Archive/Sub"), 0);
	expect_err(cpmsync_op_delete_folder(cs, "a", "Archive"), -ENOTEMPTY, NULL);
	ck_assert_str_eq(cpmsync_store_error(cs), "folder \"Archive\" has sub-folders "
						  "(\"Archive/A/Leaf\"); delete them first");
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Archive/A/Leaf"), 0);
	ck_assert_int_eq(cpmsync_op_delete_folder(cs, "a", "Archive"), 0);
}
END_TEST

/* Metadata. */

START_TEST(test_set_metadata)
{
	static const char *const bad[] = {
		"comment",	     "/private",    "/other/x",	   "/private/a b",
		"/private/\xc3\xa4", "/private/x/", "/private//x", "/shared/*",
	};
	char *before, *after, *big;

	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "", "/shared/comment", "hello"), 0);
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "inbox", "/private/color", NULL), 0);
	ck_assert_str_eq(journal(), "set_metadata - - /shared/comment\\nhello|"
				    "set_metadata 1 - /private/color\\n");
	before = snapshot();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_err(cpmsync_op_set_metadata(cs, "a", "", bad[i], "v"), -EINVAL, NULL);
	expect_err(cpmsync_op_set_metadata(cs, "a", "Nope", "/private/x", "v"),
		   -CPMSYNC_E_NOT_FOUND, "Nope");
	big = malloc(64 * 1024 + 2);
	ck_assert_ptr_nonnull(big);
	memset(big, 'v', 64 * 1024 + 1);
	big[64 * 1024 + 1] = '\0';
	expect_err(cpmsync_op_set_metadata(cs, "a", "", "/private/x", big), -EINVAL, "value");
	big[64 * 1024] = '\0';
	after = snapshot();
	ck_assert_str_eq(before, after);
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "", "/private/x", big), 0);
	free(big);
	free(before);
	free(after);
}
END_TEST

/* The values GetMetadata reads its own writes from. */
static const char *pending_md(const char *account, int64_t folder_id, const char *entry)
{
	static char out[256];
	const char *entries[] = { entry };
	char *v[1];
	int r = cpmsync_store_pending_metadata(cs, account, folder_id, entries, 1, v);

	ck_assert_int_ge(r, 0);
	ck_assert_int_eq(r, v[0] != NULL);
	snprintf(out, sizeof(out), "%s", v[0] ? v[0] : "(none)");
	free(v[0]);
	return out;
}

START_TEST(test_pending_metadata)
{
	const char *entries[] = { "/private/a", "/private/b", "/shared/c" };
	char *v[3];

	ck_assert_str_eq(pending_md("a", 1, "/private/a"), "(none)");
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "INBOX", "/private/a", "one"), 0);
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "INBOX", "/private/b", "x"), 0);
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "INBOX", "/private/a", "two"), 0);
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "INBOX", "/private/b", ""), 0);
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "", "/shared/c", "server"), 0);
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "b", "INBOX", "/shared/c", "other account"),
			 0);
	/* The newest wins; a removal is ""; per folder, server and account. */
	ck_assert_int_eq(cpmsync_store_pending_metadata(cs, "a", 1, entries, 3, v), 2);
	ck_assert_str_eq(v[0], "two");
	ck_assert_str_eq(v[1], "");
	ck_assert_ptr_null(v[2]);
	free(v[0]);
	free(v[1]);
	ck_assert_str_eq(pending_md("a", 0, "/shared/c"), "server");
	ck_assert_str_eq(pending_md("a", 2, "/shared/c"), "(none)");
	ck_assert_str_eq(pending_md("b", 3, "/shared/c"), "other account");
	ck_assert_str_eq(pending_md("a", 1, "/private/A"), "two");
	/* A failed set keeps its local effect; one applied on the server
	 * (its row gone) no longer answers. */
	ck_assert_int_eq(
		store_exec(s, "UPDATE journal SET failed = 1 WHERE args = '/private/a\ntwo'"), 0);
	ck_assert_str_eq(pending_md("a", 1, "/private/a"), "two");
	ck_assert_int_eq(store_exec(s, "DELETE FROM journal WHERE args LIKE '/private/a%'"), 0);
	ck_assert_str_eq(pending_md("a", 1, "/private/a"), "(none)");
	ck_assert_int_eq(cpmsync_store_pending_metadata(cs, "a", 1, NULL, 0, NULL), 0);
	expect_err(cpmsync_store_pending_metadata(cs, NULL, 1, entries, 1, v), -EINVAL, NULL);
}
END_TEST

/* Several entries: all journaled in one transaction, or none. */
START_TEST(test_set_metadata_entries)
{
	static const struct cpmsync_metadata_entry good[] = {
		{ "/private/a", "1" },
		{ "/shared/b", "" },
		{ "/private/c", NULL },
	};
	static const struct cpmsync_metadata_entry bad_last[] = {
		{ "/private/x", "1" },
		{ "/private/y", "2" },
		{ "/private/a b", "3" },
	};
	char *before, *after;

	ck_assert_int_eq(cpmsync_op_set_metadata_entries(cs, "a", "inbox", good, 3), 0);
	ck_assert_str_eq(journal(), "set_metadata 1 - /private/a\\n1|"
				    "set_metadata 1 - /shared/b\\n|"
				    "set_metadata 1 - /private/c\\n");
	before = snapshot();
	/* The third is refused: the first two are not kept either. */
	expect_err(cpmsync_op_set_metadata_entries(cs, "a", "", bad_last, 3), -EINVAL, "a b");
	expect_err(cpmsync_op_set_metadata_entries(cs, "a", "Nope", good, 3), -CPMSYNC_E_NOT_FOUND,
		   "Nope");
	after = snapshot();
	ck_assert_str_eq(before, after);
	/* None is nothing. */
	ck_assert_int_eq(cpmsync_op_set_metadata_entries(cs, "a", "", NULL, 0), 0);
	free(after);
	expect_unchanged(before);
}
END_TEST

/* The annotation rows as "entry/shared/value/local|..." (NULL as "-"). */
static const char *annotations(int64_t id)
{
	return qtext(
		"SELECT ifnull(group_concat(entry || '/' || shared || '/' || ifnull(value, '-')"
		" || '/' || ifnull(local, '-'), '|'), '') FROM (SELECT * FROM annotation"
		" WHERE message_id = %lld ORDER BY entry, shared)",
		(long long)id);
}

/* store_annotations_read() as "entry=value,...;missing,..." */
static const char *read_annotations(int64_t id, const char *const *entries, bool shared)
{
	static char out[1024];
	char **pairs = NULL, **missing = NULL;
	size_t o = 0;

	ck_assert_int_eq(store_annotations_read(s, id, entries, shared, &pairs, &missing), 0);
	out[0] = '\0';
	for (size_t i = 0; pairs[i]; i += 2)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s=%s", i ? "," : "", pairs[i],
				      pairs[i + 1]);
	o += (size_t)snprintf(out + o, sizeof(out) - o, ";");
	for (size_t i = 0; missing[i]; i++)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", i ? "," : "", missing[i]);
	store_strv_free(pairs);
	store_strv_free(missing);
	return out;
}

/*
 * SetAnnotations: pending local values, one set_annotation row per
 * message, read-your-writes over the server's cached values, the STORE's
 * success, and a value changed while it was in flight.
 */
START_TEST(test_set_annotations)
{
	static const char *const both[] = { "/comment", "/altsubject", NULL };
	const struct cpmsync_annotation set1[] = { { "/comment", "mine" },
						   { "/altsubject", NULL } };
	const struct cpmsync_annotation set2[] = { { "/comment", "ours" } };
	struct store_annotation *pend = NULL;
	size_t n = 0;
	bool more = true;

	/* Nothing cached: the server has to be asked for both. */
	ck_assert_str_eq(read_annotations(1, both, false), ";/comment,/altsubject");
	ck_assert_int_eq(cpmsync_op_set_annotations(cs, 1, set1, 2, false), 0);
	ck_assert_int_eq(cpmsync_op_set_annotations(cs, 1, set2, 1, true), 0);
	ck_assert_str_eq(journal(), "set_annotation 1 1 -");
	ck_assert_str_eq(annotations(1), "/altsubject/0/-/|/comment/0/-/mine|/comment/1/-/ours");
	/* Read-your-writes; a removal is no value; shared is its own. */
	ck_assert_str_eq(read_annotations(1, both, false), "/comment=mine;");
	ck_assert_str_eq(read_annotations(1, both, true), "/comment=ours;/altsubject");

	/* The server's value does not hide a pending one. */
	ck_assert_int_eq(store_annotation_set_server(s, 1, "/comment", false, "theirs", 6), 0);
	ck_assert_int_eq(store_annotation_set_server(s, 1, "/altsubject", true, NULL, 0), 0);
	ck_assert_str_eq(read_annotations(1, both, false), "/comment=mine;");
	ck_assert_str_eq(read_annotations(1, both, true), "/comment=ours;");

	/* What the row sends, then the server took it; a change meanwhile stays. */
	ck_assert_int_eq(store_annotations_pending(s, 1, &pend, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(pend[0].entry, "/altsubject");
	ck_assert_str_eq(pend[0].value, "");
	ck_assert_str_eq(pend[2].entry, "/comment");
	ck_assert(pend[2].shared);
	ck_assert_int_eq(cpmsync_op_set_annotations(cs, 1, set2, 1, false), 0);
	ck_assert_str_eq(journal(), "set_annotation 1 1 -");
	ck_assert_int_eq(store_annotations_sent(s, 1, pend, n, &more), 0);
	ck_assert(more);
	ck_assert_str_eq(annotations(1), "/altsubject/0/-/-|/altsubject/1/-/-|"
					 "/comment/0/mine/ours|/comment/1/ours/-");
	ck_assert_str_eq(read_annotations(1, both, false), "/comment=ours;");
	store_annotations_free(pend, n);

	/* Errors change nothing. */
	{
		static const char *const bad[] = { "comment", "/",   "/a/",  "/a//b",
						   "/a b",    "/a*", "/a%b", "/a\"b" };
		const struct cpmsync_annotation ok = { "/ok", "1" };
		char *before = snapshot(), *after, *big;

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			const struct cpmsync_annotation v[] = { ok, { bad[i], "x" } };

			expect_err(cpmsync_op_set_annotations(cs, 1, v, 2, false), -EINVAL, bad[i]);
		}
		expect_err(cpmsync_op_set_annotations(cs, 1, NULL, 0, false), -EINVAL,
			   "no annotation");
		expect_err(cpmsync_op_set_annotations(cs, 99, &ok, 1, false), -CPMSYNC_E_NOT_FOUND,
			   "99");
		big = malloc(64 * 1024 + 2);
		ck_assert_ptr_nonnull(big);
		memset(big, 'v', 64 * 1024 + 1);
		big[64 * 1024 + 1] = '\0';
		expect_err(cpmsync_op_set_annotations(
				   cs, 1, &(struct cpmsync_annotation){ "/big", big }, 1, false),
			   -EINVAL, "longer than 65536 bytes");
		free(big);
		after = snapshot();
		ck_assert_str_eq(before, after);
		ck_assert_str_eq(annotations(1), "/altsubject/0/-/-|/altsubject/1/-/-|"
						 "/comment/0/mine/ours|/comment/1/ours/-");
		free(before);
		free(after);
	}

	/* The rows go with the message. */
	ck_assert_int_eq(store_exec(s, "DELETE FROM message WHERE id = 1"), 0);
	ck_assert_int_eq(qint("SELECT count(*) FROM annotation"), 0);
}
END_TEST

/* A message not on the server has nothing to ask it; a failed row's
 * discard gives the server's values back. */
START_TEST(test_annotations_local_message_and_discard)
{
	static const char *const entries[] = { "/comment", NULL };
	const struct cpmsync_annotation v = { "/comment", "draft" };
	int64_t id = store_ok("INBOX", msg1, NULL);

	ck_assert_str_eq(read_annotations(id, entries, false), ";");
	ck_assert_int_eq(cpmsync_op_set_annotations(cs, id, &v, 1, false), 0);
	ck_assert_str_eq(read_annotations(id, entries, false), "/comment=draft;");

	ck_assert_int_eq(store_annotation_set_server(s, 1, "/comment", false, "server", 6), 0);
	ck_assert_int_eq(cpmsync_op_set_annotations(cs, 1, &v, 1, false), 0);
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET failed = 1, tries = 1"
				       " WHERE op = 'set_annotation' AND message_id = 1"),
			 0);
	ck_assert_int_eq(cpmsync_op_discard_failed(
				 cs, "a", qint("SELECT id FROM journal WHERE message_id = 1")),
			 0);
	ck_assert_str_eq(read_annotations(1, entries, false), "/comment=server;");
	ck_assert_str_eq(annotations(1), "/comment/0/server/-");
}
END_TEST

/* What the sync and the session use: the folder's cached entries, marking
 * an absence, whether a message has anything cached or pending. */
START_TEST(test_annotation_sync_helpers)
{
	static const char *const entries[] = { "/comment", "/b", NULL };
	char **v = NULL;
	bool b = true;

	ck_assert_int_eq(store_annotation_entries(s, 1, 10, &v), 0);
	ck_assert_ptr_null(v[0]);
	store_strv_free(v);
	ck_assert_int_eq(store_annotation_cached(s, 1, &b), 0);
	ck_assert(!b);
	/* Absent on the server: cached, so not asked again, and no value. */
	ck_assert_int_eq(store_annotation_mark_absent(s, 1, "/comment", false), 0);
	ck_assert_int_eq(store_annotation_mark_absent(s, 99, "/comment", false), 0);
	ck_assert_str_eq(read_annotations(1, entries, false), ";/b");
	ck_assert_int_eq(store_annotation_cached(s, 1, &b), 0);
	ck_assert(b);
	ck_assert_int_eq(store_annotation_pending_any(s, 1, &b), 0);
	ck_assert(!b);
	/* Marking never overwrites a value. */
	ck_assert_int_eq(store_annotation_set_server(s, 1, "/b", true, "x", 1), 0);
	ck_assert_int_eq(store_annotation_mark_absent(s, 1, "/b", true), 0);
	ck_assert_str_eq(read_annotations(1, entries, true), "/b=x;/comment");
	ck_assert_int_eq(store_annotation_entries(s, 1, 10, &v), 0);
	ck_assert_str_eq(v[0], "/b");
	ck_assert_str_eq(v[1], "/comment");
	ck_assert_ptr_null(v[2]);
	store_strv_free(v);
	ck_assert_int_eq(store_annotation_entries(s, 1, 1, &v), 0);
	ck_assert_ptr_null(v[1]);
	store_strv_free(v);
	ck_assert_int_eq(store_annotation_entries(s, 2, 10, &v), 0);
	ck_assert_ptr_null(v[0]);
	store_strv_free(v);
	ck_assert_int_eq(
		cpmsync_op_set_annotations(
			cs, 1, &(struct cpmsync_annotation){ "/comment", "mine" }, 1, false),
		0);
	ck_assert_int_eq(store_annotation_pending_any(s, 1, &b), 0);
	ck_assert(b);
	ck_assert_int_eq(qint("SELECT count(*) FROM annotation"), 2);
}
END_TEST

START_TEST(test_readonly_store)
{
	struct cpmsync_store *ro = NULL;
	int64_t id;

	ck_assert_int_eq(cpmsync_store_open(dbpath, CPMSYNC_STORE_READONLY, &ro, NULL), 0);
	ck_assert_int_eq(cpmsync_op_store(ro, "a", "INBOX", msg1, strlen(msg1), NULL, 0, &id),
			 -EROFS);
	ck_assert_int_eq(cpmsync_op_create_folder(ro, "a", "X", NULL), -EROFS);
	ck_assert_int_eq(cpmsync_op_delete(ro, (int64_t[]){ 1 }, 1), -EROFS);
	cpmsync_store_close(ro);
}
END_TEST

/* One writer discipline (store.h): a local call while an engine batch is
 * open commits the batch and runs in its own transaction, never -EBUSY; a
 * batch whose commit by another writer failed is reported to its owner; a
 * failed call's error text is its own. */

/* The folder names another connection sees (committed rows only). */
static const char *committed_folders(void)
{
	static char v[256];
	struct store *reader = NULL;
	char *err = NULL;

	ck_assert_int_eq(store_open(dbpath, STORE_READONLY, &reader, &err), 0);
	snprintf(v, sizeof(v), "%s",
		 test_store_text(reader, "SELECT group_concat(name, ',') FROM"
					 " (SELECT name FROM folder WHERE id > 3 ORDER BY id)"));
	store_close(reader);
	return v;
}

START_TEST(test_local_call_commits_the_engine_batch)
{
	struct store_batch b = { 0 };
	int64_t id = 0;

	ck_assert_int_eq(store_batch_begin(s, &b), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (id, account_id, name, delimiter,"
				       " server_name) VALUES (12, 1, 'Synced', '/', 'Synced')"),
			 0);
	ck_assert_str_eq(committed_folders(), "(null)");
	/* Before: -EBUSY, with no text of its own. */
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Local", &id), 0);
	ck_assert_int_eq(id, 13);
	ck_assert(!store_batch_is_open(s, &b));
	ck_assert(!store_in_transaction(s));
	ck_assert_str_eq(committed_folders(), "Synced,Local");
	/* The engine goes on in a new batch. */
	ck_assert_int_eq(store_batch_commit(s, &b), 0);
	ck_assert_int_eq(store_batch_begin(s, &b), 0);
	ck_assert(store_batch_is_open(s, &b));
	ck_assert_int_eq(store_exec(s, "UPDATE folder SET name = 'Synced2' WHERE id = 12"), 0);
	ck_assert_int_eq(store_batch_begin(s, &b), 0); /* open already: the same one */
	ck_assert_int_eq(store_batch_commit(s, &b), 0);
	ck_assert_str_eq(committed_folders(), "Synced2,Local");
	store_batch_rollback(s, &b);
}
END_TEST

START_TEST(test_other_owner_commits_the_batch)
{
	struct store_batch a = { 0 }, b = { 0 };

	ck_assert_int_eq(store_batch_begin(s, &a), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (id, account_id, name, delimiter)"
				       " VALUES (12, 1, 'A', '/')"),
			 0);
	ck_assert_int_eq(store_batch_begin(s, &b), 0);
	ck_assert(!store_batch_is_open(s, &a));
	ck_assert(store_batch_is_open(s, &b));
	ck_assert_str_eq(committed_folders(), "A");
	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (id, account_id, name, delimiter)"
				       " VALUES (13, 1, 'B', '/')"),
			 0);
	/* a's rollback does not touch b's batch. */
	store_batch_rollback(s, &a);
	ck_assert(store_batch_is_open(s, &b));
	ck_assert_int_eq(store_batch_commit(s, &b), 0);
	ck_assert_str_eq(committed_folders(), "A,B");
}
END_TEST

START_TEST(test_lost_batch_is_reported_to_its_owner)
{
	struct store_batch b = { 0 };
	char want[256];
	int64_t id = 0;

	/* A deferred foreign key fails only at COMMIT. */
	ck_assert_int_eq(store_exec(s, "CREATE TABLE p (id INTEGER PRIMARY KEY);"
				       "CREATE TABLE c (p INTEGER REFERENCES p (id)"
				       " DEFERRABLE INITIALLY DEFERRED)"),
			 0);
	ck_assert_int_eq(store_batch_begin(s, &b), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO c VALUES (42)"), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO folder (id, account_id, name, delimiter)"
				       " VALUES (12, 1, 'Lost', '/')"),
			 0);
	/* The local call goes on regardless. */
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Local", &id), 0);
	ck_assert_str_eq(cpmsync_store_error(cs), "");
	ck_assert_str_eq(committed_folders(), "Local");
	/* The owner learns at its next commit (or begin), once. */
	ck_assert_int_eq(store_batch_commit(s, &b), -CPMSYNC_E_NOT_FOUND);
	snprintf(want, sizeof(want),
		 "sync batch committed for a local call: %s: FOREIGN KEY constraint failed (787)",
		 dbpath);
	ck_assert_str_eq(store_error(s), want);
	ck_assert_int_eq(store_batch_commit(s, &b), 0);

	ck_assert_int_eq(store_batch_begin(s, &b), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO c VALUES (43)"), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Local2", &id), 0);
	ck_assert_int_eq(store_batch_begin(s, &b), -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(store_batch_begin(s, &b), 0);
	ck_assert_int_eq(store_batch_commit(s, &b), 0);

	/* A rollback drops a pending failure (the owner is done). */
	ck_assert_int_eq(store_batch_begin(s, &b), 0);
	ck_assert_int_eq(store_exec(s, "INSERT INTO c VALUES (44)"), 0);
	ck_assert_int_eq(cpmsync_op_create_folder(cs, "a", "Local3", &id), 0);
	store_batch_rollback(s, &b);
	ck_assert_int_eq(store_batch_take_lost(s, &b), 0);
	ck_assert_str_eq(committed_folders(), "Local,Local2,Local3");
}
END_TEST

START_TEST(test_error_text_belongs_to_the_call)
{
	struct store_batch b = { 0 };
	int r;

	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "NoSuch", "/private/comment", "x"),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_ptr_nonnull(strstr(cpmsync_store_error(cs), "NoSuch"));
	/* A successful call after it, during a batch: no error, no old text used. */
	ck_assert_int_eq(store_batch_begin(s, &b), 0);
	ck_assert_int_eq(cpmsync_op_set_metadata(cs, "a", "INBOX", "/private/comment", "x"), 0);
	ck_assert_str_eq(cpmsync_store_error(cs), "");
	/* A failure that sets no text of its own gets its code's text, not the last one. */
	store_set_error(s, "an earlier call's text");
	ck_assert_int_eq(store_begin(s), 0);
	r = cpmsync_op_set_metadata(cs, "a", "INBOX", "/private/comment", "y");
	ck_assert_int_eq(r, -EBUSY);
	ck_assert_str_eq(cpmsync_store_error(cs),
			 "a transaction is open already (transactions do not nest)");
	ck_assert_int_eq(store_rollback(s), 0);
	ck_assert_int_eq(store_commit(s), -EINVAL);
	ck_assert_str_eq(store_error(s), "no transaction to commit");
}
END_TEST

static Suite *suite(void)
{
	Suite *su = suite_create("store-ops");
	TCase *tc = tcase_create("ops");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_store_row_and_journal);
	tcase_add_test(tc, test_done_means_on_disk);
	tcase_add_test(tc, test_pack_punch_after_wal_sync);
	tcase_add_test(tc, test_store_now_and_case_insensitive_inbox);
	tcase_add_test(tc, test_remove_account);
	tcase_add_test(tc, test_store_errors_change_nothing);
	tcase_add_test(tc, test_store_fd_pipe_large);
	tcase_add_test(tc, test_store_fd_fields_after_huge_header);
	tcase_add_test(tc, test_store_fd_short_input);
	tcase_add_test(tc, test_store_not_a_message);
	tcase_add_test(tc, test_store_crlf_size_over_the_limit);
	tcase_add_test(tc, test_flags_server_message);
	tcase_add_test(tc, test_flags_unchanged_and_local);
	tcase_add_test(tc, test_flags_errors_change_nothing);
	tcase_add_test(tc, test_expunge);
	tcase_add_test(tc, test_expunge_move_and_copy_destinations);
	tcase_add_test(tc, test_copy);
	tcase_add_test(tc, test_copy_errors_change_nothing);
	tcase_add_test(tc, test_move);
	tcase_add_test(tc, test_move_local);
	tcase_add_test(tc, test_move_twice_and_attempted);
	tcase_add_test(tc, test_create_folder);
	tcase_add_test(tc, test_create_folder_under_inbox_canonical);
	tcase_add_test(tc, test_create_folder_invalid_names);
	tcase_add_test(tc, test_create_folder_pending_delete);
	tcase_add_test(tc, test_folder_name_with_delimiter);
	tcase_add_test(tc, test_rename_folder);
	tcase_add_test(tc, test_rename_folder_local);
	tcase_add_test(tc, test_delete_folder_on_server);
	tcase_add_test(tc, test_delete_folder_keeps_attempted_mark);
	tcase_add_test(tc, test_delete_folder_local);
	tcase_add_test(tc, test_delete_folder_refused);
	tcase_add_test(tc, test_set_metadata);
	tcase_add_test(tc, test_set_metadata_entries);
	tcase_add_test(tc, test_pending_metadata);
	tcase_add_test(tc, test_create_inbox_agrees_with_find);
	tcase_add_test(tc, test_set_annotations);
	tcase_add_test(tc, test_annotations_local_message_and_discard);
	tcase_add_test(tc, test_annotation_sync_helpers);
	tcase_add_test(tc, test_readonly_store);
	tcase_add_test(tc, test_local_call_commits_the_engine_batch);
	tcase_add_test(tc, test_other_owner_commits_the_batch);
	tcase_add_test(tc, test_lost_batch_is_reported_to_its_owner);
	tcase_add_test(tc, test_error_text_belongs_to_the_call);
	suite_add_tcase(su, tc);
	return su;
}

TEST_MAIN(suite)
