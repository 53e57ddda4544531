/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for agent/outbox.c with a real store and a real loop.  The
 * store's internal sync functions stand in for the sync engine: they
 * create folders "seen on the server", give a message its UID, or record
 * the server's refusal.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpmsync/cpm-folders.h>
#include <cpmsync/error.h>
#include <cpmsync/loop.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "store/store-sync.h"
#include "store/store.h"
#include "testlib.h"
#include "outbox.h"

static char tmpdir[PATH_MAX];
static char obx[PATH_MAX + 16];
static struct cpmsync_loop *loop;
static struct cpmsync_store *cs;
static struct store *s;
static struct outbox *ob;
static unsigned stored_calls;
static bool rescan_in_callback;
/* Set by a test: runs between an inotify event for a file and its handling. */
static void (*hook)(const char *rel);

static const char msg1[] = "Message-ID: <one@example.org>\r\n"
			   "From: tel:+491111\r\n"
			   "Subject: one\r\n"
			   "\r\n"
			   "hello\r\n";
static const char msg2[] = "Message-ID: <two@example.org>\r\n"
			   "Subject: two\r\n"
			   "\r\n"
			   "world\r\n";

static int64_t add_folder(const char *account, const char *name)
{
	int64_t aid, fid;

	ck_assert_int_eq(store_sync_account(s, account, &aid), 0);
	ck_assert_int_eq(store_sync_folder_add(s, aid, name, NULL, true, &fid), 0);
	return fid;
}

/*
 * Accounts: "a" (synced: INBOX, Chats, Chats/2024), "fresh" (known,
 * never synced); anything else is unknown.
 */
static void setup(void)
{
	char db[PATH_MAX + 16];
	char *err = NULL;

	strcpy(tmpdir, "/tmp/test-outbox-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(db, sizeof(db), "%s/store.db", tmpdir);
	snprintf(obx, sizeof(obx), "%s/outbox", tmpdir);
	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(cpmsync_store_open(db, 0, &cs, &err), 0);
	s = store_from_public(cs);
	add_folder("a", "INBOX");
	add_folder("a", "Chats");
	add_folder("a", "Chats/2024");
	stored_calls = 0;
	rescan_in_callback = false;
	hook = NULL;
	ob = NULL;
}

static void setup_no_openat2(void)
{
	setup();
	outbox_have_openat2 = false;
}

static void teardown(void)
{
	outbox_have_openat2 = true;
	outbox_retry_ms = OUTBOX_RETRY_MS;
	ob = outbox_free(ob);
	cs = cpmsync_store_close(cs);
	loop = cpmsync_loop_free(loop);
	test_rm_rf(tmpdir);
}

static bool known(void *userdata, const char *account)
{
	(void)userdata;
	return strcmp(account, "a") == 0 || strcmp(account, "fresh") == 0;
}

/* Files stored since the last tick of test_big_drop_in_batches()'s
 * timer, and the most seen between two ticks. */
static unsigned per_tick, max_per_tick;

static void on_stored(void *userdata, const char *account)
{
	(void)userdata;
	ck_assert(known(NULL, account));
	stored_calls++;
	if (++per_tick > max_per_tick)
		max_per_tick = per_tick;
	if (rescan_in_callback)
		outbox_rescan(ob);
}

static void before_take(void *userdata, const char *rel)
{
	(void)userdata;
	if (hook)
		hook(rel);
}

static const struct outbox_callbacks callbacks = {
	.account_known = known,
	.stored = on_stored,
	.before_take = before_take,
};

static void start(void)
{
	char *err = NULL;

	ck_assert_msg(outbox_new(loop, cs, obx, &callbacks, NULL, &ob, &err) == 0, "%s",
		      err ? err : "");
}

/* outbox/rel, in a static ring. */
static const char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *P(const char *fmt, ...)
{
	static char ring[8][2 * PATH_MAX + 64];
	static unsigned next;
	char rel[PATH_MAX];
	char *p = ring[next++ % 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(p, sizeof(ring[0]), "%s/%s", obx, rel);
	return p;
}

static void mkdirs(const char *path)
{
	char buf[2 * PATH_MAX + 64];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *q = buf + 1; *q; q++)
		if (*q == '/') {
			*q = '\0';
			mkdir(buf, 0700);
			*q = '/';
		}
	mkdir(buf, 0700);
}

/* Writes data to path (creating its directories), in place. */
static void put(const char *path, const char *data, size_t len)
{
	char dir[2 * PATH_MAX + 64];
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	mkdirs(dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	if (len)
		ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static const char *slurp(const char *path)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	ck_assert_msg(fd >= 0, "cannot open %s", path);
	n = read(fd, buf, sizeof(buf) - 1);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static int count_cb(const struct cpmsync_message_info *m, void *userdata)
{
	int64_t *last = userdata;

	last[0]++;
	last[1] = m->id;
	return 0;
}

/* Messages in account/folder; *ret_last_id the last one's id. */
static int count(const char *account, const char *folder, int64_t *ret_last_id)
{
	int64_t fid, acc[2] = { 0, 0 };

	if (cpmsync_store_find_folder(cs, account, folder, &fid) < 0)
		return -1;
	ck_assert_int_eq(cpmsync_store_foreach_message(cs, fid, 0, 0, count_cb, acc), 0);
	if (ret_last_id)
		*ret_last_id = acc[1];
	return (int)acc[0];
}

typedef bool (*cond_fn)(const void *arg);

static bool file_exists(const void *arg)
{
	return exists(arg);
}

static bool file_gone(const void *arg)
{
	return !exists(arg);
}

/* Runs the loop until cond(arg) (at most ms); returns cond(arg). */
static bool run_until(cond_fn cond, const void *arg, unsigned ms)
{
	uint64_t end = cpmsync_now_ms() + ms;

	while (!cond(arg)) {
		uint64_t now = cpmsync_now_ms();

		if (now >= end)
			break;
		cpmsync_loop_iterate(loop, (int)(end - now < 50 ? end - now : 50));
	}
	return cond(arg);
}

static void run_for(unsigned ms)
{
	uint64_t end = cpmsync_now_ms() + ms;

	for (uint64_t now; (now = cpmsync_now_ms()) < end;)
		cpmsync_loop_iterate(loop, (int)(end - now));
}

/* ------------------------------------------------------------------------ */

START_TEST(test_startup_pickup)
{
	int64_t id;

	put(P("a/INBOX/m1.eml"), msg1, sizeof(msg1) - 1);
	put(P("a/Chats/2024/m2"), msg2, sizeof(msg2) - 1);
	start();
	/* Synchronously, in outbox_new(). */
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert(!exists(P("a/INBOX/m1.eml")));
	ck_assert(exists(P(".pending/%" PRId64 "/m1.eml", id)));
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/m1.eml", id)), msg1);
	ck_assert_int_eq(count("a", "Chats/2024", &id), 1);
	ck_assert(exists(P(".pending/%" PRId64 "/m2", id)));
	ck_assert_int_eq(count("a", "Chats", NULL), 0);
	ck_assert_uint_eq(stored_calls, 2);
	/* The claim area is tidied up. */
	ck_assert(!exists(P(".pending/claimed/a")));
}
END_TEST

START_TEST(test_creates_dir)
{
	struct stat st;

	start();
	ck_assert_int_eq(stat(obx, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	ck_assert(exists(P(".pending")));
}
END_TEST

START_TEST(test_write_then_rename)
{
	start();
	mkdirs(P("a/INBOX"));
	put(P("a/INBOX/.part"), msg1, sizeof(msg1) - 1);
	run_for(300);
	/* A dot-file is left alone. */
	ck_assert(exists(P("a/INBOX/.part")));
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);
	ck_assert_int_eq(rename(P("a/INBOX/.part"), P("a/INBOX/done")), 0);
	ck_assert(run_until(file_gone, P("a/INBOX/done"), 3000));
	ck_assert_int_eq(count("a", "INBOX", NULL), 1);
	ck_assert_uint_eq(stored_calls, 1);
}
END_TEST

START_TEST(test_written_in_place_and_new_dirs)
{
	int64_t id;

	start();
	/* Directories made after the start are watched too. */
	put(P("a/Chats/2024/x"), msg2, sizeof(msg2) - 1);
	ck_assert(run_until(file_gone, P("a/Chats/2024/x"), 3000));
	ck_assert_int_eq(count("a", "Chats/2024", &id), 1);
	ck_assert(exists(P(".pending/%" PRId64 "/x", id)));
	put(P("a/Chats/y"), msg1, sizeof(msg1) - 1);
	ck_assert(run_until(file_gone, P("a/Chats/y"), 3000));
	ck_assert_int_eq(count("a", "Chats", NULL), 1);
}
END_TEST

START_TEST(test_dir_moved_in)
{
	char staging[PATH_MAX + 32];

	start();
	snprintf(staging, sizeof(staging), "%s/staging/INBOX/f", tmpdir);
	put(staging, msg1, sizeof(msg1) - 1);
	mkdirs(P("a"));
	run_for(100);
	snprintf(staging, sizeof(staging), "%s/staging/INBOX", tmpdir);
	ck_assert_int_eq(rename(staging, P("a/INBOX")), 0);
	ck_assert(run_until(file_gone, P("a/INBOX/f"), 3000));
	ck_assert_int_eq(count("a", "INBOX", NULL), 1);
	/* And it is watched under its new name. */
	put(P("a/INBOX/g"), msg2, sizeof(msg2) - 1);
	ck_assert(run_until(file_gone, P("a/INBOX/g"), 3000));
	ck_assert_int_eq(count("a", "INBOX", NULL), 2);
}
END_TEST

START_TEST(test_dot_dirs_ignored)
{
	put(P("a/.hidden/INBOX/f"), msg1, sizeof(msg1) - 1);
	put(P("a/INBOX/.tmp/f"), msg1, sizeof(msg1) - 1);
	put(P(".other/f"), msg1, sizeof(msg1) - 1);
	start();
	put(P("a/.hidden/INBOX/g"), msg1, sizeof(msg1) - 1);
	run_for(300);
	ck_assert(exists(P("a/.hidden/INBOX/f")));
	ck_assert(exists(P("a/.hidden/INBOX/g")));
	ck_assert(exists(P("a/INBOX/.tmp/f")));
	ck_assert(exists(P(".other/f")));
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);
	ck_assert(!exists(P(".failed")));
}
END_TEST

/* The .why text of .failed/name. */
static const char *why_of(const char *name)
{
	char p[2 * PATH_MAX + 64];

	snprintf(p, sizeof(p), "%s/.failed/%s.why", obx, name);
	ck_assert_msg(exists(p), "%s missing", p);
	return slurp(p);
}

START_TEST(test_failures)
{
	char big[2 * PATH_MAX + 64];
	int fd;

	put(P("b/INBOX/unknown"), msg1, sizeof(msg1) - 1);
	put(P("a/INBOX/empty"), "", 0);
	put(P("a/INBOX/notes.txt"), "shopping list\n", 14);
	put(P("a/INBOX/photo.jpg"), "\xff\xd8\xff\xe0\x00\x10JFIF", 10);
	put(P("a/Nope/nofolder"), msg1, sizeof(msg1) - 1);
	put(P("rootfile"), msg1, sizeof(msg1) - 1);
	put(P("a/accountfile"), msg1, sizeof(msg1) - 1);
	ck_assert_int_eq(symlink("/etc/passwd", P("a/INBOX/link")), 0);
	snprintf(big, sizeof(big), "%s", P("a/INBOX/big"));
	fd = open(big, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, CPMSYNC_OP_MAX_MESSAGE_SIZE + 1), 0);
	close(fd);
	mkfifo(P("a/INBOX/fifo"), 0600);

	start();
	ck_assert_uint_eq(stored_calls, 0);
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);

	ck_assert_str_eq(slurp(P(".failed/unknown")), msg1);
	ck_assert_ptr_nonnull(strstr(why_of("unknown"), "b/INBOX/unknown: "));
	ck_assert_ptr_nonnull(strstr(why_of("unknown"), "unknown account 'b'"));
	ck_assert_ptr_nonnull(strstr(why_of("empty"), "empty"));
	/* Not a message: kept as it was, and the .why says what is wrong. */
	ck_assert_str_eq(slurp(P(".failed/notes.txt")), "shopping list\n");
	ck_assert_str_eq(why_of("notes.txt"),
			 "a/INBOX/notes.txt: cannot store it in folder 'INBOX' of account 'a': "
			 "content: not a message: line 1 (\"shopping list\") is not a header field "
			 "(Name: value) or the continuation of one; a message starts with its "
			 "header, ended by an empty line (RFC 5322)\n");
	ck_assert_str_eq(why_of("photo.jpg"),
			 "a/INBOX/photo.jpg: cannot store it in folder 'INBOX' of account 'a': "
			 "content: not a message: byte 4 is NUL: an IMAP message cannot hold NUL "
			 "bytes (RFC 3501)\n");
	ck_assert_ptr_nonnull(strstr(why_of("nofolder"), "no folder 'Nope'"));
	ck_assert_ptr_nonnull(strstr(why_of("nofolder"), "account 'a'"));
	ck_assert_ptr_nonnull(strstr(why_of("rootfile"), "directly in the outbox"));
	ck_assert_str_eq(
		why_of("accountfile"),
		"a/accountfile: cannot file it as a CPM object in account 'a': content: not "
		"a CPM object: it has neither Conversation-ID nor Message-Context\n");
	ck_assert_ptr_nonnull(strstr(why_of("link"), "symbolic link"));
	ck_assert_ptr_nonnull(strstr(why_of("big"), "too large"));
	ck_assert_ptr_nonnull(strstr(why_of("big"), "67108865 bytes"));
	ck_assert_ptr_nonnull(strstr(why_of("fifo"), "not a regular file"));
	ck_assert(!exists(P("b/INBOX/unknown")));
	ck_assert(!exists(P("a/INBOX/link")));
	ck_assert(exists("/etc/passwd"));

	/* The same name again: a free name beside it. */
	put(P("b/INBOX/unknown"), msg2, sizeof(msg2) - 1);
	ck_assert(run_until(file_exists, P(".failed/unknown.1.why"), 3000));
	ck_assert_str_eq(slurp(P(".failed/unknown.1")), msg2);
	ck_assert_str_eq(slurp(P(".failed/unknown")), msg1);
	/* .failed itself is never scanned. */
	outbox_rescan(ob);
	ck_assert(exists(P(".failed/unknown")));
	ck_assert(!exists(P(".failed/unknown.2")));
}
END_TEST

START_TEST(test_long_name)
{
	char name[256], failed[256];

	memset(name, 'x', 250);
	name[250] = '\0';
	put(P("b/INBOX/%s", name), msg1, sizeof(msg1) - 1);
	start();
	memset(failed, 'x', 240);
	failed[240] = '\0';
	ck_assert(exists(P(".failed/%s", failed)));
	ck_assert(exists(P(".failed/%s.why", failed)));
}
END_TEST

START_TEST(test_account_never_synced)
{
	int64_t id;

	put(P("fresh/INBOX/w"), msg1, sizeof(msg1) - 1);
	start();
	/* Left in place while the account has no folders. */
	ck_assert(exists(P("fresh/INBOX/w")));
	ck_assert(!exists(P(".failed")));
	outbox_rescan(ob);
	ck_assert(exists(P("fresh/INBOX/w")));
	/* The first sync brings INBOX: the next rescan stores it. */
	add_folder("fresh", "INBOX");
	outbox_rescan(ob);
	ck_assert(!exists(P("fresh/INBOX/w")));
	ck_assert_int_eq(count("fresh", "INBOX", &id), 1);
	ck_assert(exists(P(".pending/%" PRId64 "/w", id)));
	/* Now synced: a folder it lacks fails. */
	put(P("fresh/Missing/v"), msg1, sizeof(msg1) - 1);
	ck_assert(run_until(file_exists, P(".failed/v.why"), 3000));
	ck_assert_ptr_nonnull(strstr(why_of("v"), "no folder 'Missing'"));
}
END_TEST

START_TEST(test_on_server_removes_file)
{
	int64_t id;

	put(P("a/INBOX/m"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert(exists(P(".pending/%" PRId64 "/m", id)));
	/* Still on its way: kept. */
	outbox_rescan(ob);
	ck_assert(exists(P(".pending/%" PRId64 "/m", id)));
	/* The engine appended it. */
	ck_assert_int_eq(store_sync_message_set_uid(s, id, 7, ""), 0);
	outbox_rescan(ob);
	ck_assert(!exists(P(".pending/%" PRId64 "/m", id)));
	ck_assert(!exists(P(".pending/%" PRId64, id)));
	ck_assert(!exists(P(".failed")));
	ck_assert_int_eq(count("a", "INBOX", NULL), 1);
}
END_TEST

START_TEST(test_refused_goes_to_failed)
{
	int64_t id;
	uint32_t n;

	put(P("a/Chats/2024/r.msg"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "Chats/2024", &id), 1);
	/* Refused, to be tried again: it waits. */
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET attempts = 1, tries = 1,"
				       " refused = 'try later', code = 'UNAVAILABLE'"
				       " WHERE op = 'append'"),
			 0);
	outbox_rescan(ob);
	ck_assert(exists(P(".pending/%" PRId64, id)));
	ck_assert(!exists(P(".failed/r.msg")));
	/* Refused for good: the server's code and text in the .why. */
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET failed = 1,"
				       " refused = 'message too large', code = 'TOOBIG'"
				       " WHERE op = 'append'"),
			 0);
	outbox_rescan(ob);
	ck_assert(!exists(P(".pending/%" PRId64, id)));
	ck_assert_str_eq(slurp(P(".failed/r.msg")), msg1);
	ck_assert_ptr_nonnull(strstr(why_of("r.msg"), "a/Chats/2024/r.msg: "));
	ck_assert_ptr_nonnull(strstr(why_of("r.msg"), "refused"));
	ck_assert_ptr_nonnull(strstr(why_of("r.msg"), "[TOOBIG] message too large"));
	ck_assert_ptr_null(strstr(why_of("r.msg"), "not sent"));
	/* Taken back from the store. */
	ck_assert_int_eq(count("a", "Chats/2024", NULL), 0);
	ck_assert_int_eq(cpmsync_store_pending_operations(cs, "a", &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

/* An APPEND given up here, never sent (too large to send, its content
 * lost): its .why says so, not that the server refused it. */
START_TEST(test_not_sent_goes_to_failed)
{
	char want[256];
	int64_t id;

	put(P("a/INBOX/big.msg"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert_int_eq(store_exec(s, "UPDATE journal SET failed = 1, tries = 1, code = 'TOOBIG',"
				       " refused = 'not sent: message 2 is too large to send'"
				       " WHERE op = 'append'"),
			 0);
	outbox_rescan(ob);
	ck_assert(!exists(P(".pending/%" PRId64, id)));
	ck_assert_str_eq(slurp(P(".failed/big.msg")), msg1);
	snprintf(want, sizeof(want),
		 "a/INBOX/big.msg: it was not sent (message %" PRId64 "): [TOOBIG] message 2 is "
		 "too large to send",
		 id);
	ck_assert_msg(strstr(why_of("big.msg"), want), "%s", why_of("big.msg"));
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);
}
END_TEST

START_TEST(test_removed_locally_goes_to_failed)
{
	int64_t id;

	put(P("a/INBOX/gone"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert_int_eq(store_sync_message_delete(s, id), 0);
	outbox_rescan(ob);
	ck_assert(!exists(P(".pending/%" PRId64, id)));
	ck_assert_str_eq(slurp(P(".failed/gone")), msg1);
	ck_assert_ptr_nonnull(strstr(why_of("gone"), "removed from the local store"));
}
END_TEST

/*
 * Moved locally before it reached the server: the message is stored anew
 * (another id), and the file waits for that one, through any number of
 * moves, and is done when it is on the server.
 */
START_TEST(test_moved_locally_followed)
{
	int64_t id, id2, id3;

	put(P("a/INBOX/mv.eml"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert_int_eq(cpmsync_op_move(cs, &id, 1, "Chats", &id2), 0);
	ck_assert_int_ne(id2, id);
	outbox_rescan(ob);
	ck_assert(!exists(P(".failed")));
	ck_assert(!exists(P(".pending/%" PRId64, id)));
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/mv.eml", id2)), msg1);
	/* Again, before a rescan: one lookup follows both steps. */
	ck_assert_int_eq(cpmsync_op_move(cs, &id2, 1, "Chats/2024", &id3), 0);
	ck_assert_int_eq(cpmsync_op_move(cs, &id3, 1, "INBOX", &id), 0);
	outbox_rescan(ob);
	ck_assert(!exists(P(".failed")));
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/mv.eml", id)), msg1);
	ck_assert_int_eq(count("a", "INBOX", NULL), 1);
	/* The engine appended it. */
	ck_assert_int_eq(store_sync_message_set_uid(s, id, 8, ""), 0);
	outbox_rescan(ob);
	ck_assert(!exists(P(".pending/%" PRId64, id)));
	ck_assert(!exists(P(".failed")));
}
END_TEST

/* Copied before it reached the server, then expunged: its copy is
 * appended instead, and the file waits for that one. */
START_TEST(test_copied_then_expunged_followed)
{
	int64_t id, copy;

	put(P("a/INBOX/cp.eml"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert_int_eq(cpmsync_op_copy(cs, &id, 1, "Chats", &copy), 0);
	ck_assert_int_eq(cpmsync_op_delete(cs, &id, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", "INBOX"), 0);
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);
	outbox_rescan(ob);
	ck_assert(!exists(P(".failed")));
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/cp.eml", copy)), msg1);
	ck_assert_int_eq(store_sync_message_set_uid(s, copy, 3, ""), 0);
	outbox_rescan(ob);
	ck_assert(!exists(P(".pending/%" PRId64, copy)));
	ck_assert(!exists(P(".failed")));
}
END_TEST

/* Moved, then deleted for good before it reached the server: a failure
 * with the reason, naming the message it had become. */
START_TEST(test_moved_then_expunged_fails)
{
	char want[160];
	int64_t id, id2;

	put(P("a/INBOX/del.eml"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert_int_eq(cpmsync_op_move(cs, &id, 1, "Chats", &id2), 0);
	ck_assert_int_eq(cpmsync_op_delete(cs, &id2, 1), 0);
	ck_assert_int_eq(cpmsync_op_expunge(cs, "a", "Chats"), 0);
	outbox_rescan(ob);
	ck_assert(!exists(P(".pending/%" PRId64, id)));
	ck_assert(!exists(P(".pending/%" PRId64, id2)));
	ck_assert_str_eq(slurp(P(".failed/del.eml")), msg1);
	snprintf(want, sizeof(want),
		 "del.eml: message %" PRId64 " was removed from the local store (deleted, moved "
		 "or expunged) before it reached the server",
		 id);
	ck_assert_msg(strstr(why_of("del.eml"), want), "%s", why_of("del.eml"));
}
END_TEST

/*
 * On the server, then moved or removed before a rescan looked (a MoveMessages
 * of it, or another client moving it: its row is expunged here and the
 * message comes back in the other folder as a new one): the file is done,
 * not failed as removed.  Also when it had been moved locally before it
 * was sent (its link goes with the row it led to).
 */
START_TEST(test_moved_after_sent_done)
{
	int64_t id, id2, id3;

	put(P("a/INBOX/s1.eml"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	put(P("a/Chats/s2.eml"), msg2, sizeof(msg2) - 1);
	outbox_rescan(ob);
	ck_assert_int_eq(count("a", "Chats", &id2), 1);
	ck_assert(exists(P(".pending/%" PRId64 "/s2.eml", id2)));
	/* Both appended; the first moved locally, the second by another
	 * client (its row expunged by the sync), before a rescan. */
	ck_assert_int_eq(store_sync_message_set_uid(s, id, 7, ""), 0);
	ck_assert_int_eq(store_sync_message_set_uid(s, id2, 8, ""), 0);
	ck_assert_int_eq(cpmsync_op_move(cs, &id, 1, "Chats/2024", &id3), 0);
	ck_assert_int_eq(store_sync_message_delete(s, id2), 0);
	outbox_rescan(ob);
	ck_assert_msg(!exists(P(".failed/s1.eml.why")), "%s", why_of("s1.eml"));
	ck_assert_msg(!exists(P(".failed/s2.eml.why")), "%s", why_of("s2.eml"));
	ck_assert(!exists(P(".failed")));
	ck_assert(!exists(P(".pending/%" PRId64, id)));
	ck_assert(!exists(P(".pending/%" PRId64, id2)));
	ck_assert(!exists(P(".pending/%" PRId64, id3)));
	ck_assert_int_eq(count("a", "Chats/2024", NULL), 1);

	/* Moved before it was sent, then sent, then removed (another
	 * client's expunge): the link to it is gone with its row. */
	put(P("a/INBOX/s3.eml"), msg1, sizeof(msg1) - 1);
	outbox_rescan(ob);
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert(exists(P(".pending/%" PRId64 "/s3.eml", id)));
	ck_assert_int_eq(cpmsync_op_move(cs, &id, 1, "Chats", &id2), 0);
	outbox_rescan(ob);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/s3.eml", id2)), msg1);
	ck_assert_int_eq(cpmsync_op_move(cs, &id2, 1, "INBOX", &id3), 0);
	ck_assert_int_eq(store_sync_message_set_uid(s, id3, 9, ""), 0);
	ck_assert_int_eq(store_sync_message_delete(s, id3), 0);
	outbox_rescan(ob);
	ck_assert_msg(!exists(P(".failed")), "%s", why_of("s3.eml"));
	ck_assert(!exists(P(".pending/%" PRId64, id2)));
	ck_assert(!exists(P(".pending/%" PRId64, id3)));
}
END_TEST

START_TEST(test_crash_after_commit)
{
	int64_t id, id2;

	/* Stored, then the daemon died before the claim got its id. */
	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg1, sizeof(msg1) - 1, NULL, 0, &id),
			 0);
	put(P(".pending/claimed/a/INBOX/c1"), msg1, sizeof(msg1) - 1);
	/* Claimed, then it died before storing. */
	put(P(".pending/claimed/a/INBOX/c2"), msg2, sizeof(msg2) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &id2), 2);
	ck_assert_int_ne(id2, id);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/c1", id)), msg1);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/c2", id2)), msg2);
	ck_assert(!exists(P(".pending/claimed/a")));
	ck_assert_uint_eq(stored_calls, 1);
}
END_TEST

/* A file directly in <outbox>/<account>/ is a CPM object, filed under the
 * CPM root ("Default": no cpm_root callback here) with its folders
 * created; a claim of one stored before a crash is not stored again. */
START_TEST(test_cpm_object)
{
	static const char obj1[] = "Message-ID: <o1@x>\r\nFrom: tel:+1\r\n"
				   "Conversation-ID: conv-U\r\n\r\nhi\r\n";
	static const char obj2[] = "Message-ID: <o2@x>\r\nFrom: tel:+15550002\r\n"
				   "Message-Context: pager-message\r\n\r\nsms\r\n";
	int64_t id, id1, fid;
	int fd;

	/* obj2 was filed, then the daemon died before the claim got its id. */
	fd = memfd_create("obj2", 0);
	ck_assert_int_eq(write(fd, obj2, sizeof(obj2) - 1), (ssize_t)sizeof(obj2) - 1);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(cpmsync_op_store_object_fd(cs, "a", "Default", fd, sizeof(obj2) - 1, NULL,
						    0, &fid, &id),
			 0);
	close(fd);
	put(P(".pending/claimed/a/obj2"), obj2, sizeof(obj2) - 1);
	put(P("a/obj1"), obj1, sizeof(obj1) - 1);
	start();
	ck_assert_int_eq(count("a", "Default/conv-U", &id1), 1);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/obj1", id1)), obj1);
	ck_assert(!exists(P("a/obj1")));
	ck_assert_int_eq(count("a", "Default/tel:+15550002", NULL), 1);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/obj2", id)), obj2);
	ck_assert(!exists(P(".pending/claimed/a")));
	ck_assert_uint_eq(stored_calls, 1);
}
END_TEST

START_TEST(test_crash_copy_already_referenced)
{
	int64_t id, last;

	/*
	 * The same bytes are stored once and referenced by .pending: a claim
	 * with those bytes is a second drop, stored again.
	 */
	put(P("a/INBOX/first"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ob = outbox_free(ob);
	put(P(".pending/claimed/a/INBOX/second"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &last), 2);
	ck_assert(exists(P(".pending/%" PRId64 "/first", id)));
	ck_assert(exists(P(".pending/%" PRId64 "/second", last)));
}
END_TEST

START_TEST(test_same_file_twice)
{
	start();
	put(P("a/INBOX/dup"), msg1, sizeof(msg1) - 1);
	ck_assert(run_until(file_gone, P("a/INBOX/dup"), 3000));
	put(P("a/INBOX/dup"), msg1, sizeof(msg1) - 1);
	ck_assert(run_until(file_gone, P("a/INBOX/dup"), 3000));
	ck_assert_int_eq(count("a", "INBOX", NULL), 2);
}
END_TEST

/* The same CPM object dropped twice (the second time after a crash had
 * it filed but not moved on, say) is filed once: both files wait for
 * that one message. */
START_TEST(test_same_object_twice)
{
	static const char obj[] = "Message-ID: <twice@x>\r\nFrom: tel:+1\r\n"
				  "Conversation-ID: conv-T\r\n\r\nhi\r\n";
	static const char other[] = "Message-ID: <twice@x>\r\nFrom: tel:+1\r\n"
				    "Conversation-ID: conv-T\r\n\r\nho\r\n";
	int64_t id, id2;

	start();
	put(P("a/obj"), obj, sizeof(obj) - 1);
	ck_assert(run_until(file_gone, P("a/obj"), 3000));
	ck_assert_int_eq(count("a", "Default/conv-T", &id), 1);
	put(P("a/again"), obj, sizeof(obj) - 1);
	ck_assert(run_until(file_gone, P("a/again"), 3000));
	ck_assert_int_eq(count("a", "Default/conv-T", &id2), 1);
	ck_assert_int_eq(id2, id);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/obj", id)), obj);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/again", id)), obj);
	ck_assert_uint_eq(stored_calls, 1);
	/* Other bytes under the same Message-ID: another object. */
	put(P("a/other"), other, sizeof(other) - 1);
	ck_assert(run_until(file_gone, P("a/other"), 3000));
	ck_assert_int_eq(count("a", "Default/conv-T", NULL), 2);
}
END_TEST

START_TEST(test_rescan_from_callback)
{
	rescan_in_callback = true;
	put(P("a/INBOX/1"), msg1, sizeof(msg1) - 1);
	put(P("a/INBOX/2"), msg2, sizeof(msg2) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", NULL), 2);
	put(P("a/INBOX/3"), msg2, sizeof(msg2) - 1);
	ck_assert(run_until(file_gone, P("a/INBOX/3"), 3000));
	ck_assert_int_eq(count("a", "INBOX", NULL), 3);
}
END_TEST

START_TEST(test_outbox_recreated)
{
	start();
	/* Removed under the daemon's feet: a rescan brings it back. */
	test_rm_rf(obx);
	ck_assert(!exists(obx));
	run_for(100);
	outbox_rescan(ob);
	ck_assert(exists(obx));
	put(P("a/INBOX/back"), msg1, sizeof(msg1) - 1);
	ck_assert(run_until(file_gone, P("a/INBOX/back"), 3000));
	ck_assert_int_eq(count("a", "INBOX", NULL), 1);
}
END_TEST

/*
 * A file written in place and still open for writing is not taken by a
 * scan (every sync asks for one): that would store it cut short and lose
 * the rest.  Its close takes it, whole.  The same for a CPM object.
 */
START_TEST(test_open_writer_waits)
{
	static const char half2[] = "second half\r\n";
	char whole[sizeof(msg1) + sizeof(half2)];
	const char *paths[] = { P("a/INBOX/slow.eml"), P("a/slow-object") };
	static const char obj[] = "Message-ID: <slow@x>\r\nFrom: tel:+1\r\n"
				  "Conversation-ID: conv-S\r\n\r\n";
	int64_t id;

	snprintf(whole, sizeof(whole), "%s%s", msg1, half2);
	start();
	mkdirs(P("a/INBOX"));
	for (unsigned i = 0; i < 2; i++) {
		int fd = open(paths[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		ck_assert_int_ge(fd, 0);
		if (i == 0)
			ck_assert_int_eq(write(fd, msg1, sizeof(msg1) - 1),
					 (ssize_t)sizeof(msg1) - 1);
		else
			ck_assert_int_eq(write(fd, obj, sizeof(obj) - 1), (ssize_t)sizeof(obj) - 1);
		outbox_rescan(ob);
		run_for(200);
		ck_assert(exists(paths[i]));
		ck_assert_uint_eq(stored_calls, i);
		ck_assert_int_eq(write(fd, half2, sizeof(half2) - 1), (ssize_t)sizeof(half2) - 1);
		close(fd);
		ck_assert(run_until(file_gone, paths[i], 3000));
		ck_assert_uint_eq(stored_calls, i + 1);
	}
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/slow.eml", id)), whole);
	ck_assert_int_eq(count("a", "Default/conv-S", &id), 1);
	ck_assert(exists(P(".pending/%" PRId64 "/slow-object", id)));
}
END_TEST

/*
 * The same with nothing written yet (open, then a pause before the first
 * write): not "empty file" into .failed while the writer has it open --
 * its later bytes would go to .failed with a .why that says it was empty
 * (a tester's find: a push's sync rescans at any moment).  Taken whole
 * once closed; for a CPM object too.
 */
START_TEST(test_open_empty_writer_waits)
{
	const char *paths[] = { P("a/INBOX/late.eml"), P("a/late-object") };
	const char *failed[] = { P(".failed/late.eml"), P(".failed/late-object") };
	static const char obj[] = "Message-ID: <late@x>\r\nFrom: tel:+1\r\n"
				  "Conversation-ID: conv-L\r\n\r\n";
	int64_t id;

	start();
	mkdirs(P("a/INBOX"));
	for (unsigned i = 0; i < 2; i++) {
		int fd = open(paths[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		ck_assert_int_ge(fd, 0);
		outbox_rescan(ob);
		run_for(200);
		ck_assert_msg(!exists(failed[i]), "%s went to .failed while open", paths[i]);
		ck_assert(exists(paths[i]));
		ck_assert_uint_eq(stored_calls, i);
		if (i == 0)
			ck_assert_int_eq(write(fd, msg1, sizeof(msg1) - 1),
					 (ssize_t)sizeof(msg1) - 1);
		else
			ck_assert_int_eq(write(fd, obj, sizeof(obj) - 1), (ssize_t)sizeof(obj) - 1);
		close(fd);
		ck_assert(run_until(file_gone, paths[i], 3000));
		ck_assert_uint_eq(stored_calls, i + 1);
		ck_assert(!exists(failed[i]));
	}
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/late.eml", id)), msg1);
	ck_assert_int_eq(count("a", "Default/conv-L", &id), 1);
}
END_TEST

/* Once per loop iteration (a deferred call queues itself again), while
 * ticking: other sources get their turn between the outbox's batches. */
static bool ticking;

static void tick(struct cpmsync_loop_source *src, void *userdata)
{
	(void)src;
	(void)userdata;
	per_tick = 0;
	if (ticking)
		ck_assert_int_eq(cpmsync_loop_defer(loop, tick, NULL, NULL, NULL), 0);
}

static bool stored_at_least(const void *arg)
{
	return stored_calls >= *(const unsigned *)arg;
}

/*
 * A drop of many files at once (a tester's 1,500 made a D-Bus call wait
 * 46 s: every file is a rename, an fsync and a store transaction, and all
 * were taken in one callback) is taken a batch per loop iteration: other
 * sources (here tick(); in the daemon D-Bus and the syncs) run
 * between batches.  Found by inotify events, then by a scan (a directory
 * of files renamed in).  Every file is stored once.
 */
START_TEST(test_big_drop_in_batches)
{
	char tmp[2 * PATH_MAX + 64];
	unsigned want = 40;

	start();
	mkdirs(P("a/INBOX"));
	ticking = true;
	ck_assert_int_eq(cpmsync_loop_defer(loop, tick, NULL, NULL, NULL), 0);
	for (unsigned i = 0; i < 40; i++) {
		char m[160];
		int n = snprintf(m, sizeof(m), "Message-ID: <big%u@x>\r\nSubject: %u\r\n\r\nb\r\n",
				 i, i);

		put(P("a/INBOX/big%u.eml", i), m, (size_t)n);
	}
	per_tick = max_per_tick = 0;
	ck_assert(run_until(stored_at_least, &want, 10000));
	ck_assert_uint_eq(stored_calls, 40);
	ck_assert_msg(max_per_tick <= 8, "%u files taken between two ticks", max_per_tick);

	/* A directory of 40 more renamed in: found by its scan. */
	snprintf(tmp, sizeof(tmp), "%s/aside/Drafts", tmpdir);
	mkdirs(tmp);
	for (unsigned i = 0; i < 40; i++) {
		char m[160], path[2 * PATH_MAX + 96];
		int n = snprintf(m, sizeof(m), "Message-ID: <dir%u@x>\r\nSubject: %u\r\n\r\nb\r\n",
				 i, i);

		snprintf(path, sizeof(path), "%s/d%u.eml", tmp, i);
		put(path, m, (size_t)n);
	}
	add_folder("a", "Drafts");
	ck_assert_int_eq(rename(tmp, P("a/Drafts")), 0);
	want = 80;
	per_tick = max_per_tick = 0;
	ck_assert(run_until(stored_at_least, &want, 10000));
	ck_assert_uint_eq(stored_calls, 80);
	ck_assert_msg(max_per_tick <= 8, "%u files taken between two ticks", max_per_tick);
	ck_assert_int_eq(count("a", "INBOX", NULL), 40);
	ck_assert_int_eq(count("a", "Drafts", NULL), 40);
	ticking = false;
	run_for(10);
}
END_TEST

/* test_rescan_during_big_drop(): the .pending entry the rescan should
 * settle, and whether it was gone right after the rescan returned. */
static int64_t sent_id;
static bool rescanned, settled_at_once;

static void tick_rescan(struct cpmsync_loop_source *src, void *userdata)
{
	char path[PATH_MAX + 64];

	(void)src;
	(void)userdata;
	if (!rescanned && stored_calls >= 8 && stored_calls < 40) {
		/* As a sync's end does, with files still queued. */
		rescanned = true;
		outbox_rescan(ob);
		snprintf(path, sizeof(path), "%s/.pending/%" PRId64, obx, sent_id);
		settled_at_once = access(path, F_OK) != 0;
	}
	if (stored_calls < 40)
		ck_assert_int_eq(cpmsync_loop_defer(loop, tick_rescan, NULL, NULL, NULL), 0);
}

/*
 * A rescan asked for while a big drop is still queued settles .pending at
 * once (a message the engine appended: its file removed), and only the
 * scan of the outbox's folders waits for the queue: what it would find is
 * queued already.  Before, the whole rescan waited for the queue to drain.
 */
START_TEST(test_rescan_during_big_drop)
{
	unsigned want = 40;

	put(P("a/INBOX/sent"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &sent_id), 1);
	ck_assert_int_eq(store_sync_message_set_uid(s, sent_id, 7, ""), 0);
	stored_calls = 0;
	for (unsigned i = 0; i < 40; i++) {
		char m[160];
		int n = snprintf(m, sizeof(m), "Message-ID: <q%u@x>\r\nSubject: %u\r\n\r\nb\r\n", i,
				 i);

		put(P("a/INBOX/q%u.eml", i), m, (size_t)n);
	}
	rescanned = settled_at_once = false;
	ck_assert_int_eq(cpmsync_loop_defer(loop, tick_rescan, NULL, NULL, NULL), 0);
	ck_assert(run_until(stored_at_least, &want, 10000));
	ck_assert(rescanned);
	ck_assert_msg(settled_at_once, ".pending/%" PRId64 " still there after the rescan",
		      sent_id);
	ck_assert_uint_eq(stored_calls, 40);
	ck_assert_int_eq(count("a", "INBOX", NULL), 41);
	run_for(10);
}
END_TEST

/*
 * A crash between claim_done()'s mkdir of .pending/<id> and its rename of
 * the claim into it: the empty directory does not make the stored message
 * someone else's, so the claim is matched to it, not stored again.
 */
START_TEST(test_crash_between_mkdir_and_rename)
{
	int64_t id, last;

	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", msg1, sizeof(msg1) - 1, NULL, 0, &id),
			 0);
	mkdirs(P(".pending/%" PRId64, id));
	put(P(".pending/claimed/a/INBOX/k2.eml"), msg1, sizeof(msg1) - 1);
	start();
	ck_assert_int_eq(count("a", "INBOX", &last), 1);
	ck_assert_int_eq(last, id);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/k2.eml", id)), msg1);
	ck_assert(!exists(P(".pending/claimed/a")));
	ck_assert_uint_eq(stored_calls, 0);
}
END_TEST

/*
 * The outbox removed, or moved away, under the daemon: made again and
 * watched at once (its own inotify event), so a file dropped into the new
 * one is taken without waiting for a rescan.
 */
START_TEST(test_outbox_removed_noticed)
{
	char moved[sizeof(obx) + 8];

	start();
	snprintf(moved, sizeof(moved), "%s.old", obx);
	for (int i = 1; i <= 2; i++) {
		/* first removed, then moved away */
		if (i == 1)
			test_rm_rf(obx);
		else
			ck_assert_int_eq(rename(obx, moved), 0);
		ck_assert(run_until(file_exists, P(".pending"), 3000));
		mkdirs(P("a/INBOX"));
		run_for(100);
		put(P("a/INBOX/drop%d", i), i == 1 ? msg1 : msg2,
		    (i == 1 ? sizeof(msg1) : sizeof(msg2)) - 1);
		ck_assert(run_until(file_gone, P("a/INBOX/drop%d", i), 3000));
		ck_assert_int_eq(count("a", "INBOX", NULL), i);
	}
	test_rm_rf(moved);
}
END_TEST

/* Outside the outbox: tmpdir/rel. */
static const char *T(const char *rel)
{
	static char ring[4][PATH_MAX + 64];
	static unsigned next;
	char *p = ring[next++ % 4];

	snprintf(p, sizeof(ring[0]), "%s/%s", tmpdir, rel);
	return p;
}

static const char secret[] = "Subject: not for the outbox\r\n\r\nsecret\r\n";

static uint32_t pending_ops(void)
{
	uint32_t n = 99;

	ck_assert_int_eq(cpmsync_store_pending_operations(cs, "a", &n), 0);
	return n;
}

START_TEST(test_hard_link_refused)
{
	struct stat st;

	put(T("private/id"), secret, sizeof(secret) - 1);
	mkdirs(P("a/INBOX"));
	ck_assert_int_eq(link(T("private/id"), P("a/INBOX/hl")), 0);
	start();
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);
	ck_assert_uint_eq(stored_calls, 0);
	ck_assert_uint_eq(pending_ops(), 0);
	ck_assert_str_eq(why_of("hl"), "a/INBOX/hl: has 2 hard links; only a file with one link is "
				       "taken (another link may be a file that was not meant to be "
				       "sent)\n");
	/* Only the name in the outbox moved; the file is never deleted. */
	ck_assert_str_eq(slurp(T("private/id")), secret);
	ck_assert_int_eq(stat(T("private/id"), &st), 0);
	ck_assert_uint_eq(st.st_nlink, 2);

	/* Linked after the start and moved in: the same, through the event. */
	ck_assert_int_eq(link(T("private/id"), T("stage")), 0);
	ck_assert_int_eq(rename(T("stage"), P("a/INBOX/hl2")), 0);
	ck_assert(run_until(file_exists, P(".failed/hl2.why"), 3000));
	ck_assert_ptr_nonnull(strstr(why_of("hl2"), "has 3 hard links"));
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);
	ck_assert_str_eq(slurp(T("private/id")), secret);
}
END_TEST

START_TEST(test_other_owner_refused)
{
	char expect[256];

	/* chown() to another user needs root; the test suite runs as root here. */
	if (geteuid() != 0) {
		fprintf(stderr, "test_other_owner_refused: SKIPPED (needs root for chown)\n");
		return;
	}
	put(P("a/INBOX/theirs"), msg1, sizeof(msg1) - 1);
	ck_assert_int_eq(chown(P("a/INBOX/theirs"), 65534, 65534), 0);
	start();
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);
	ck_assert_uint_eq(stored_calls, 0);
	snprintf(expect, sizeof(expect),
		 "a/INBOX/theirs: owned by uid 65534, not by this user (uid %u); only the "
		 "user's own files are taken\n",
		 (unsigned)geteuid());
	ck_assert_str_eq(why_of("theirs"), expect);
	ck_assert_str_eq(slurp(P(".failed/theirs")), msg1);
}
END_TEST

/*
 * The race of issue 13, made deterministic: between the event for
 * a/INBOX/f and its handling, a/INBOX is moved away and replaced by a
 * symbolic link to a directory outside the outbox that holds a file of the
 * same name.
 */
static void swap_inbox(const char *rel)
{
	if (strcmp(rel, "a/INBOX/f") != 0)
		return;
	ck_assert_int_eq(rename(P("a/INBOX"), T("moved")), 0);
	ck_assert_int_eq(symlink(T("victim"), P("a/INBOX")), 0);
}

/* The same one level up: the account directory is swapped. */
static void swap_account(const char *rel)
{
	if (strcmp(rel, "a/INBOX/f") != 0)
		return;
	ck_assert_int_eq(rename(P("a"), T("moved")), 0);
	ck_assert_int_eq(symlink(T("victim"), P("a")), 0);
}

static void check_untouched(const char *victim_file)
{
	ck_assert_str_eq(slurp(victim_file), secret);
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);
	ck_assert_uint_eq(stored_calls, 0);
	/* Nothing journaled: nothing to APPEND. */
	ck_assert_uint_eq(pending_ops(), 0);
	ck_assert(!exists(P(".failed/f")));
}

START_TEST(test_dir_swap_race)
{
	put(T("victim/f"), secret, sizeof(secret) - 1);
	mkdirs(P("a/INBOX"));
	start();
	hook = swap_inbox;
	put(P("a/INBOX/f"), msg1, sizeof(msg1) - 1);
	ck_assert(run_until(file_exists, T("moved/f"), 3000));
	run_for(300);
	check_untouched(T("victim/f"));
	/* The file dropped in the directory that was moved away stays there. */
	ck_assert_str_eq(slurp(T("moved/f")), msg1);
	/* A rescan does not follow the link either. */
	outbox_rescan(ob);
	check_untouched(T("victim/f"));
}
END_TEST

START_TEST(test_account_dir_swap_race)
{
	put(T("victim/INBOX/f"), secret, sizeof(secret) - 1);
	mkdirs(P("a/INBOX"));
	start();
	hook = swap_account;
	put(P("a/INBOX/f"), msg1, sizeof(msg1) - 1);
	ck_assert(run_until(file_exists, T("moved/INBOX/f"), 3000));
	run_for(300);
	check_untouched(T("victim/INBOX/f"));
	outbox_rescan(ob);
	check_untouched(T("victim/INBOX/f"));
}
END_TEST

/* A symbolic link put where a claim directory goes is never followed. */
START_TEST(test_claim_dir_symlink)
{
	put(T("victim/f"), secret, sizeof(secret) - 1);
	mkdirs(P("a/INBOX"));
	start();
	mkdirs(P(".pending/claimed/a"));
	ck_assert_int_eq(symlink(T("victim"), P(".pending/claimed/a/INBOX")), 0);
	/* A file dropped for that folder is not claimed through the link. */
	put(P("a/INBOX/g"), msg1, sizeof(msg1) - 1);
	run_for(300);
	ck_assert(!exists(T("victim/g")));
	ck_assert_str_eq(slurp(P("a/INBOX/g")), msg1);
	check_untouched(T("victim/f"));
}
END_TEST

/*
 * The same defences for a CPM object, a file directly in <outbox>/<account>/
 * (filed with its folders created): nothing may be filed, created or
 * journaled through a link.
 */
static const char secret_obj[] = "Message-ID: <secret@x>\r\nFrom: tel:+15550009\r\n"
				 "Conversation-ID: conv-secret\r\n\r\nsecret\r\n";

static void check_object_untouched(const char *victim_file)
{
	ck_assert_str_eq(slurp(victim_file), secret_obj);
	ck_assert_int_eq(count("a", "Default", NULL), -1);
	ck_assert_int_eq(count("a", "Default/conv-secret", NULL), -1);
	ck_assert_uint_eq(stored_calls, 0);
	ck_assert_uint_eq(pending_ops(), 0);
}

START_TEST(test_cpm_object_hard_link_refused)
{
	struct stat st;

	put(T("private/obj"), secret_obj, sizeof(secret_obj) - 1);
	mkdirs(P("a"));
	ck_assert_int_eq(link(T("private/obj"), P("a/hl")), 0);
	start();
	ck_assert_str_eq(why_of("hl"), "a/hl: has 2 hard links; only a file with one link is "
				       "taken (another link may be a file that was not meant to be "
				       "sent)\n");
	check_object_untouched(T("private/obj"));
	ck_assert_int_eq(stat(T("private/obj"), &st), 0);
	ck_assert_uint_eq(st.st_nlink, 2);

	/* Linked after the start and moved in: the same, through the event. */
	ck_assert_int_eq(link(T("private/obj"), T("stage")), 0);
	ck_assert_int_eq(rename(T("stage"), P("a/hl2")), 0);
	ck_assert(run_until(file_exists, P(".failed/hl2.why"), 3000));
	ck_assert_ptr_nonnull(strstr(why_of("hl2"), "has 3 hard links"));
	check_object_untouched(T("private/obj"));
}
END_TEST

/* Between the event for a/f and its handling, the account directory is
 * swapped for a link to a directory holding an object of that name. */
static void swap_account_of_object(const char *rel)
{
	if (strcmp(rel, "a/f") != 0)
		return;
	ck_assert_int_eq(rename(P("a"), T("moved")), 0);
	ck_assert_int_eq(symlink(T("victim"), P("a")), 0);
}

START_TEST(test_cpm_object_account_swap_race)
{
	static const char obj[] = "Message-ID: <f@x>\r\nFrom: tel:+1\r\n"
				  "Conversation-ID: conv-f\r\n\r\nhi\r\n";

	put(T("victim/f"), secret_obj, sizeof(secret_obj) - 1);
	mkdirs(P("a"));
	start();
	hook = swap_account_of_object;
	put(P("a/f"), obj, sizeof(obj) - 1);
	ck_assert(run_until(file_exists, T("moved/f"), 3000));
	run_for(300);
	check_object_untouched(T("victim/f"));
	ck_assert(!exists(P(".failed/f")));
	/* The object dropped in the directory that was moved away stays there. */
	ck_assert_str_eq(slurp(T("moved/f")), obj);
	/* A rescan does not follow the link either. */
	outbox_rescan(ob);
	check_object_untouched(T("victim/f"));
	ck_assert(!exists(P(".failed/f")));
}
END_TEST

/* A symbolic link put where an object's claim directory goes is never followed. */
START_TEST(test_cpm_object_claim_dir_symlink)
{
	put(T("victim/f"), secret_obj, sizeof(secret_obj) - 1);
	mkdirs(P("a"));
	start();
	mkdirs(P(".pending/claimed"));
	ck_assert_int_eq(symlink(T("victim"), P(".pending/claimed/a")), 0);
	/* An object dropped for the account is not claimed through the link. */
	put(P("a/g"), secret_obj, sizeof(secret_obj) - 1);
	run_for(300);
	ck_assert(!exists(T("victim/g")));
	ck_assert_str_eq(slurp(P("a/g")), secret_obj);
	check_object_untouched(T("victim/f"));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A full store */

/* The daemon's log (stderr) while a test looks: a pipe, not a file, so
 * that RLIMIT_FSIZE does not cut it. */
static int log_pipe[2] = { -1, -1 }, saved_stderr = -1;

static void log_capture(void)
{
	ck_assert_int_eq(pipe2(log_pipe, O_CLOEXEC | O_NONBLOCK), 0);
	fflush(stderr);
	saved_stderr = dup(2);
	ck_assert_int_ge(saved_stderr, 0);
	ck_assert_int_eq(dup2(log_pipe[1], 2), 2);
}

/* What was logged since log_capture() (or the last log_taken()). */
static const char *log_taken(void)
{
	static char buf[16384];
	size_t n = 0;
	ssize_t k;

	fflush(stderr);
	while (n < sizeof(buf) - 1 && (k = read(log_pipe[0], buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
	return buf;
}

static void log_release(void)
{
	fflush(stderr);
	ck_assert_int_eq(dup2(saved_stderr, 2), 2);
	close(saved_stderr);
	close(log_pipe[0]);
	close(log_pipe[1]);
}

/* A message of about 3 KB: its body (in the store's database, pages of
 * 1 KiB) needs new pages. */
static const char *large_msg(const char *first_line)
{
	static char buf[4096];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "%s\r\nSubject: large\r\n\r\n", first_line);

	while (n + 72 < 3000)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%070u\r\n", (unsigned)n);
	return buf;
}

/*
 * The store's database may not grow (SQLite's max_page_count at its
 * current size: SQLITE_FULL, as a full disk gives), or may again.  Checks
 * that it is full indeed: a message stored directly is refused.
 */
static void store_full(bool full)
{
	const char *m = large_msg("Message-ID: <probe@example.org>");
	int64_t id;

	if (!full) {
		ck_assert_int_eq(store_exec(s, "PRAGMA max_page_count = 1073741823"), 0);
		return;
	}
	ck_assert_int_eq(store_exec(s, "PRAGMA max_page_count = 1"), 0);
	ck_assert_int_eq(cpmsync_op_store(cs, "a", "INBOX", m, strlen(m), NULL, 0, &id),
			 -CPMSYNC_E_STORE_FULL);
}

/*
 * A file dropped while the store is full is not failed for it: it waits in
 * the claim area, no .failed, no .why, one warning; once the store has
 * room, the next rescan (a sync asks for one) stores it, once.  The same
 * for a CPM object.
 */
START_TEST(test_store_full_waits)
{
	static const char obj_head[] = "Message-ID: <fullobj@x>\r\nFrom: tel:+1\r\n"
				       "Conversation-ID: conv-F";
	char msg[4096], obj[4096], want[6 * PATH_MAX];
	int64_t id;

	snprintf(msg, sizeof(msg), "%s", large_msg("Message-ID: <full@example.org>"));
	snprintf(obj, sizeof(obj), "%s", large_msg(obj_head));
	start();
	store_full(true);
	log_capture();
	put(P("a/INBOX/full.eml"), msg, strlen(msg));
	ck_assert(run_until(file_exists, P(".pending/claimed/a/INBOX/full.eml"), 3000));
	put(P("a/fullobj"), obj, strlen(obj));
	ck_assert(run_until(file_exists, P(".pending/claimed/a/fullobj"), 3000));
	/* Scans while it is still full: no change, nothing more logged. */
	outbox_rescan(ob);
	outbox_rescan(ob);
	snprintf(want, sizeof(want),
		 "cpm-syncd: outbox: a/INBOX/full.eml: cannot store it for now: local store is "
		 "full (%s/store.db: database or disk is full (13)); left as "
		 "%s/.pending/claimed/a/INBOX/full.eml, trying again within 30 s and after each "
		 "sync\n"
		 "cpm-syncd: outbox: a/fullobj: cannot store it for now: local store is full "
		 "(%s/store.db: database or disk is full (13)); left as "
		 "%s/.pending/claimed/a/fullobj, trying again within 30 s and after each sync\n",
		 tmpdir, obx, tmpdir, obx);
	ck_assert_str_eq(log_taken(), want);
	log_release();
	ck_assert_str_eq(slurp(P(".pending/claimed/a/INBOX/full.eml")), msg);
	ck_assert_str_eq(slurp(P(".pending/claimed/a/fullobj")), obj);
	ck_assert(!exists(P("a/INBOX/full.eml")));
	ck_assert(!exists(P(".failed")));
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);
	ck_assert_int_eq(count("a", "Default/conv-F", NULL), -1);
	ck_assert_uint_eq(stored_calls, 0);

	store_full(false);
	outbox_rescan(ob);
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/full.eml", id)), msg);
	ck_assert_int_eq(count("a", "Default/conv-F", &id), 1);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/fullobj", id)), obj);
	ck_assert(!exists(P(".pending/claimed/a")));
	ck_assert_uint_eq(stored_calls, 2);
	/* Once: later scans store nothing more. */
	outbox_rescan(ob);
	run_for(200);
	ck_assert_int_eq(count("a", "INBOX", NULL), 1);
	ck_assert_int_eq(count("a", "Default/conv-F", NULL), 1);
	ck_assert_uint_eq(stored_calls, 2);
	ck_assert(!exists(P(".failed")));
}
END_TEST

/*
 * With no sync to ask for a rescan (the account offline), the outbox
 * tries again by itself, every outbox_retry_ms; here for a file found
 * while the store is full at start-up.
 */
START_TEST(test_store_full_retried_without_sync)
{
	char msg[4096], want[6 * PATH_MAX];
	int64_t id;

	outbox_retry_ms = 200;
	snprintf(msg, sizeof(msg), "%s", large_msg("Message-ID: <retry@example.org>"));
	put(P("a/INBOX/retry.eml"), msg, strlen(msg));
	store_full(true);
	log_capture();
	start();
	ck_assert_str_eq(slurp(P(".pending/claimed/a/INBOX/retry.eml")), msg);
	/* Three retries and more while it is full: still waiting, no noise. */
	run_for(700);
	ck_assert(exists(P(".pending/claimed/a/INBOX/retry.eml")));
	ck_assert(!exists(P(".failed")));
	ck_assert_uint_eq(stored_calls, 0);
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);
	store_full(false);
	/* No outbox_rescan() here: the retry timer. */
	ck_assert(run_until(file_gone, P(".pending/claimed/a/INBOX/retry.eml"), 3000));
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/retry.eml", id)), msg);
	ck_assert_uint_eq(stored_calls, 1);
	run_for(500);
	ck_assert_int_eq(count("a", "INBOX", NULL), 1);
	ck_assert_uint_eq(stored_calls, 1);
	snprintf(want, sizeof(want),
		 "cpm-syncd: outbox: a/INBOX/retry.eml: cannot store it for now: local store is "
		 "full (%s/store.db: database or disk is full (13)); left as "
		 "%s/.pending/claimed/a/INBOX/retry.eml, trying again within 1 s and after each "
		 "sync\n"
		 "cpm-syncd: outbox: stored a/INBOX/retry.eml (%zu bytes) as message %" PRId64
		 " in folder 'INBOX' of account 'a'\n",
		 tmpdir, obx, strlen(msg), id);
	ck_assert_str_eq(log_taken(), want);
	log_release();
}
END_TEST

/*
 * The store's database may not grow for a file size limit (RLIMIT_FSIZE
 * at 0, SIGXFSZ ignored: EFBIG, which SQLite reports as an I/O error and
 * the store as -EFBIG): no verdict on the file either, although -EFBIG is
 * also the one on a message too large.  It waits in the claim area and is
 * stored once the limit is lifted.
 */
START_TEST(test_store_file_limit_waits)
{
	char msg[4096], want[6 * PATH_MAX];
	struct rlimit old, lim;
	bool claimed;
	int64_t id;

	snprintf(msg, sizeof(msg), "%s", large_msg("Message-ID: <limit@example.org>"));
	start();
	log_capture();
	put(P("a/INBOX/limit.eml"), msg, strlen(msg));
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 0;
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	/* No assertion under the limit: Check's own report is a file. */
	claimed = run_until(file_exists, P(".pending/claimed/a/INBOX/limit.eml"), 3000);
	outbox_rescan(ob);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	ck_assert(claimed);
	snprintf(want, sizeof(want),
		 "cpm-syncd: outbox: a/INBOX/limit.eml: cannot store it for now: %s "
		 "(%s/store.db: disk I/O error (778): %s); left as "
		 "%s/.pending/claimed/a/INBOX/limit.eml, trying again within 30 s and after each "
		 "sync\n",
		 strerror(EFBIG), tmpdir, strerror(EFBIG), obx);
	ck_assert_str_eq(log_taken(), want);
	log_release();
	ck_assert(!exists(P(".failed")));
	ck_assert_uint_eq(stored_calls, 0);
	ck_assert_int_eq(count("a", "INBOX", NULL), 0);

	outbox_rescan(ob);
	ck_assert_int_eq(count("a", "INBOX", &id), 1);
	ck_assert_str_eq(slurp(P(".pending/%" PRId64 "/limit.eml", id)), msg);
	ck_assert_uint_eq(stored_calls, 1);
	ck_assert(!exists(P(".failed")));
}
END_TEST

/*
 * The store's file removed under the daemon (which stops within 2 s to
 * start a new one): a file dropped meanwhile is not failed for it.  Its
 * store refuses every write (-CPMSYNC_E_STORE_GONE); the file waits in the
 * claim area, not in .failed, for the next start to store it.  The same
 * holds for a store found damaged.
 */
START_TEST(test_store_gone_waits)
{
	static const char msg[] = "Message-ID: <gone@x>\r\n\r\nhi\r\n";
	char db[PATH_MAX + 16], want[4 * PATH_MAX];

	snprintf(db, sizeof(db), "%s/store.db", tmpdir);
	start();
	ck_assert_int_eq(unlink(db), 0);
	log_capture();
	put(P("a/INBOX/gone.eml"), msg, strlen(msg));
	ck_assert(run_until(file_gone, P("a/INBOX/gone.eml"), 3000));
	outbox_rescan(ob);
	snprintf(want, sizeof(want),
		 "cpm-syncd: outbox: a/INBOX/gone.eml: cannot store it for now: %s (%s); left as "
		 "%s/.pending/claimed/a/INBOX/gone.eml, trying again within 30 s and after each "
		 "sync\n",
		 cpmsync_strerror(-CPMSYNC_E_STORE_GONE), cpmsync_store_error(cs), obx);
	ck_assert_str_eq(log_taken(), want);
	log_release();
	ck_assert_str_eq(slurp(P(".pending/claimed/a/INBOX/gone.eml")), msg);
	ck_assert(!exists(P(".failed")));
	ck_assert_uint_eq(stored_calls, 0);
}
END_TEST

/*
 * A .why that cannot be written whole (the disk full; here RLIMIT_FSIZE
 * lets 16 bytes of it be written) is removed, not left cut short, and the
 * log says so; the file stays in .failed.
 */
/* A .why says a name as the log does: control characters and bytes that
 * are not UTF-8 escaped, not written raw into the file. */
START_TEST(test_why_escaped_as_logged)
{
	static const char want[] = "a/ctl\\x01\\xff/m: no folder 'ctl\\x01\\xff' in account 'a'\n";
	static const char logged[] = "cpm-syncd: outbox: a/ctl\\x01\\xff/m: no folder "
				     "'ctl\\x01\\xff' in account 'a'; moved to ";
	const char *got;

	start();
	log_capture();
	put(P("a/ctl\x01\xff/m"), msg1, sizeof(msg1) - 1);
	ck_assert(run_until(file_exists, P(".failed/m.why"), 3000));
	got = log_taken();
	log_release();
	ck_assert_str_eq(slurp(P(".failed/m.why")), want);
	ck_assert_msg(strncmp(got, logged, strlen(logged)) == 0, "%s", got);
	ck_assert_str_eq(slurp(P(".failed/m")), msg1);
}
END_TEST

/* The log names the folder an object was filed in, as for other files. */
START_TEST(test_cpm_object_log_names_folder)
{
	static const char obj[] = "Message-ID: <o1@x>\r\nFrom: tel:+1\r\n"
				  "Conversation-ID: conv-L\r\n\r\nhi\r\n";
	char want[256];
	const char *got;
	int64_t id;

	put(P("a/obj"), obj, sizeof(obj) - 1);
	log_capture();
	start();
	got = log_taken();
	log_release();
	ck_assert_int_eq(count("a", "Default/conv-L", &id), 1);
	snprintf(want, sizeof(want),
		 "cpm-syncd: outbox: filed a/obj (%zu bytes) as message %" PRId64
		 " in folder 'Default/conv-L' of account 'a'\n",
		 sizeof(obj) - 1, id);
	ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_why_not_written_whole)
{
	struct rlimit old, lim;
	char want[4 * PATH_MAX];
	const char *got;

	put(P("rootfile"), msg1, sizeof(msg1) - 1);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 16;
	signal(SIGXFSZ, SIG_IGN);
	log_capture();
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	start();
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	snprintf(want, sizeof(want),
		 "cpm-syncd: outbox: rootfile: is directly in the outbox; files go into "
		 "ACCOUNT/FOLDER/ below it; moved to %s/.failed/rootfile\n"
		 "cpm-syncd: outbox: rootfile: kept as %s/.failed/rootfile without its reason: "
		 "cannot write %s/.failed/rootfile.why: %s\n",
		 obx, obx, obx, strerror(EFBIG));
	got = log_taken();
	log_release();
	ck_assert_str_eq(slurp(P(".failed/rootfile")), msg1);
	ck_assert(!exists(P(".failed/rootfile.why")));
	ck_assert(!exists(P("rootfile")));
	ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_bad_arguments)
{
	char *err = NULL;
	char path[PATH_MAX + 16];

	ck_assert_int_eq(outbox_new(loop, NULL, obx, &callbacks, NULL, &ob, &err), -EINVAL);
	free(err);
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	put(path, "x", 1);
	snprintf(path, sizeof(path), "%s/file/outbox", tmpdir);
	ck_assert_int_lt(outbox_new(loop, cs, path, &callbacks, NULL, &ob, &err), 0);
	ck_assert_ptr_nonnull(strstr(err, path));
	free(err);
	ck_assert_ptr_null(ob);
}
END_TEST

static Suite *outbox_suite(void)
{
	Suite *su = suite_create("outbox");
	TCase *tc = tcase_create("outbox");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_startup_pickup);
	tcase_add_test(tc, test_creates_dir);
	tcase_add_test(tc, test_write_then_rename);
	tcase_add_test(tc, test_written_in_place_and_new_dirs);
	tcase_add_test(tc, test_dir_moved_in);
	tcase_add_test(tc, test_dot_dirs_ignored);
	tcase_add_test(tc, test_failures);
	tcase_add_test(tc, test_long_name);
	tcase_add_test(tc, test_account_never_synced);
	tcase_add_test(tc, test_on_server_removes_file);
	tcase_add_test(tc, test_refused_goes_to_failed);
	tcase_add_test(tc, test_not_sent_goes_to_failed);
	tcase_add_test(tc, test_removed_locally_goes_to_failed);
	tcase_add_test(tc, test_moved_locally_followed);
	tcase_add_test(tc, test_copied_then_expunged_followed);
	tcase_add_test(tc, test_moved_then_expunged_fails);
	tcase_add_test(tc, test_moved_after_sent_done);
	tcase_add_test(tc, test_crash_after_commit);
	tcase_add_test(tc, test_crash_copy_already_referenced);
	tcase_add_test(tc, test_same_file_twice);
	tcase_add_test(tc, test_same_object_twice);
	tcase_add_test(tc, test_rescan_from_callback);
	tcase_add_test(tc, test_outbox_recreated);
	tcase_add_test(tc, test_open_writer_waits);
	tcase_add_test(tc, test_open_empty_writer_waits);
	tcase_add_test(tc, test_big_drop_in_batches);
	tcase_add_test(tc, test_rescan_during_big_drop);
	tcase_add_test(tc, test_crash_between_mkdir_and_rename);
	tcase_add_test(tc, test_outbox_removed_noticed);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_cpm_object);
	tcase_add_test(tc, test_hard_link_refused);
	tcase_add_test(tc, test_other_owner_refused);
	tcase_add_test(tc, test_dir_swap_race);
	tcase_add_test(tc, test_account_dir_swap_race);
	tcase_add_test(tc, test_claim_dir_symlink);
	tcase_add_test(tc, test_cpm_object_hard_link_refused);
	tcase_add_test(tc, test_cpm_object_account_swap_race);
	tcase_add_test(tc, test_cpm_object_claim_dir_symlink);
	tcase_add_test(tc, test_store_full_waits);
	tcase_add_test(tc, test_store_full_retried_without_sync);
	tcase_add_test(tc, test_store_file_limit_waits);
	tcase_add_test(tc, test_store_gone_waits);
	tcase_add_test(tc, test_why_not_written_whole);
	tcase_add_test(tc, test_cpm_object_log_names_folder);
	tcase_add_test(tc, test_why_escaped_as_logged);
	suite_add_tcase(su, tc);

	/* The same defences without openat2(): O_NOFOLLOW walks. */
	tc = tcase_create("no-openat2");
	tcase_add_checked_fixture(tc, setup_no_openat2, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_startup_pickup);
	tcase_add_test(tc, test_crash_after_commit);
	tcase_add_test(tc, test_cpm_object);
	tcase_add_test(tc, test_hard_link_refused);
	tcase_add_test(tc, test_dir_swap_race);
	tcase_add_test(tc, test_account_dir_swap_race);
	tcase_add_test(tc, test_claim_dir_symlink);
	tcase_add_test(tc, test_cpm_object_hard_link_refused);
	tcase_add_test(tc, test_cpm_object_account_swap_race);
	tcase_add_test(tc, test_cpm_object_claim_dir_symlink);
	suite_add_tcase(su, tc);
	return su;
}

TEST_MAIN(outbox_suite)
