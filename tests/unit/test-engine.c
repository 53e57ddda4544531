/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine against scripted servers, for what a real Dovecot will not do
 * on demand: another client changing flags between our SELECT and our
 * UID STORE (UNCHANGEDSINCE) -> [MODIFIED], and a server refusing one
 * operation.  Everything else is tested against the real Dovecot
 * (tests/integration/test-sync-*.sh).
 */
#include <sqlite3.h>

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cpmsync/error.h>
#include <cpmsync/log.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "engine/engine-internal.h"
#include "store/store.h"
#include "testlib.h"

static char tmpdir[64], dbpath[96];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/test-engine-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/store.db", tmpdir);
}

static void teardown(void)
{
	test_rm_rf(tmpdir);
}

static int password_cb(const struct cpmsync_account *a, char **ret, void *ud)
{
	(void)a;
	(void)ud;
	*ret = strdup("secret");
	return *ret ? 0 : -ENOMEM;
}

/* e->batch_ms of the runs below (-1: the engine's own, ENGINE_BATCH_MS). */
static int64_t batch_ms = -1;
/* e->batch_max_ms likewise (-1: ENGINE_BATCH_MAX_MS). */
static int64_t batch_max_ms = -1;
/* The account's sync_bodies in the runs below. */
static int64_t sync_bodies = CPMSYNC_SYNC_BODIES_NONE;
/* e->mark_every, e->mark_max_bytes (-1: ENGINE_MARK_MESSAGES,
 * ENGINE_MARK_BYTES) and e->mark_room_check of the runs below. */
static int64_t mark_every = -1, mark_max_bytes = -1;
static bool mark_room_check = true;

/* The steps of a run up to INBOX selected (the only folder listed, with
 * exists messages, UIDVALIDITY 3 and UIDNEXT uidnext; both string
 * literals), the next tag a4. */
#define INBOX_SELECTED(exists, uidnext)                                                            \
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE] ready\r\n" },                           \
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },                                              \
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },                            \
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },                                           \
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\na2 OK listed\r\n" },                      \
		{ SCRIPT_EXPECT, "a3 SELECT INBOX" },                                              \
	{                                                                                          \
		SCRIPT_SEND,                                                                       \
			"* " exists " EXISTS\r\n* OK [UIDVALIDITY 3] v\r\n* OK [UIDNEXT " uidnext  \
			"] n\r\na3 OK [READ-WRITE] selected\r\n"                                   \
	}

/* The last progress of the account as a whole ("" folder) in the runs
 * below: "done/total", "" when none came. */
static char last_progress[32];

static void progress_cb(void *userdata, const char *folder, uint32_t done, uint32_t total)
{
	(void)userdata;
	if (!*folder)
		snprintf(last_progress, sizeof(last_progress), "%u/%u", done, total);
}

/* Runs one sync of account "t" against script; returns the result.
 * only: engine_sync_only() that folder (0: a full run). */
static struct sync_result run_only(struct cpmsync_store *store, const struct script_step *script,
				   int64_t only)
{
	struct cpmsync_account a = {
		.name = "t",
		.host = "localhost",
		.user = "alice",
		.security = CPMSYNC_SECURITY_NONE,
		.sync_bodies = sync_bodies,
		.password_cb = password_cb,
		.connect_timeout_ms = 3000,
		.command_timeout_ms = 3000,
	};
	struct cpmsync_loop *loop = NULL;
	struct script_peer peer;
	struct sync_result res = { 0 };
	struct cpmsync_sync *e = NULL;

	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(script_peer_start(script, &peer), 0);
	ck_assert_int_eq(engine_sync_once_fd(loop, store, &a, peer.fd, sync_result_cb, &res, &e),
			 0);
	last_progress[0] = '\0';
	engine_set_progress(e, progress_cb, NULL);
	if (only)
		engine_sync_only(e, only);
	if (batch_ms >= 0)
		e->batch_ms = (uint64_t)batch_ms;
	if (batch_max_ms >= 0)
		e->batch_max_ms = (uint64_t)batch_max_ms;
	if (mark_every >= 0)
		e->mark_every = (uint32_t)mark_every;
	if (mark_max_bytes >= 0)
		e->mark_max_bytes = (uint64_t)mark_max_bytes;
	e->mark_room_check = mark_room_check;
	while (!res.done)
		ck_assert_int_ge(cpmsync_loop_iterate(loop, 5000), 0);
	cpmsync_loop_free(loop);
	ck_assert_int_eq(script_peer_wait(&peer), 0);
	return res;
}

/* engine_sync_selected()'s run (with engine_sync_selected_vanished(vanished)
 * unless NULL), and engine_selected_state() at its end. */
struct selected_run {
	struct sync_result res;
	struct cpmsync_sync *e;
	int state;
	uint32_t exists;
};

static void selected_cb(int r, const char *reason, const struct cpmsync_sync_stats *stats,
			void *userdata)
{
	struct selected_run *sr = userdata;

	sr->state = engine_selected_state(sr->e, &sr->exists);
	sync_result_cb(r, reason, stats, &sr->res);
}

static struct selected_run run_selected(struct cpmsync_store *store,
					const struct script_step *script, int64_t folder,
					uint32_t uidvalidity, uint32_t exists,
					const struct rangeset *vanished)
{
	struct cpmsync_account a = {
		.name = "t",
		.host = "localhost",
		.user = "alice",
		.security = CPMSYNC_SECURITY_NONE,
		.sync_bodies = CPMSYNC_SYNC_BODIES_NONE,
		.password_cb = password_cb,
		.connect_timeout_ms = 3000,
		.command_timeout_ms = 3000,
	};
	struct cpmsync_loop *loop = NULL;
	struct script_peer peer;
	struct selected_run sr = { .state = -1 };

	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(script_peer_start(script, &peer), 0);
	ck_assert_int_eq(engine_sync_once_fd(loop, store, &a, peer.fd, selected_cb, &sr, &sr.e), 0);
	engine_sync_selected(sr.e, folder, uidvalidity, exists);
	if (vanished)
		ck_assert_int_eq(engine_sync_selected_vanished(sr.e, vanished), 0);
	while (!sr.res.done)
		ck_assert_int_ge(cpmsync_loop_iterate(loop, 5000), 0);
	cpmsync_loop_free(loop);
	ck_assert_int_eq(script_peer_wait(&peer), 0);
	return sr;
}

/* When run_selected_when() makes its local call. */
typedef bool (*local_call_when_fn)(const struct cpmsync_sync *e);

/* The run's two UID FETCHes are sent, not answered. */
static bool when_fetches_out(const struct cpmsync_sync *e)
{
	return e->pull_cmds == 3;
}

/* The replay's first operation is answered. */
static bool when_replayed(const struct cpmsync_sync *e)
{
	return e->stats.ops_replayed > 0;
}

/*
 * run_selected() of INBOX (folder 1, UIDVALIDITY 7, exists messages)
 * after an IDLE that reported vanished (NULL: none), with a local call
 * (store_begin() and store_commit(), as an app's SetFlags makes) once
 * when() holds, while the server has not answered what follows: that
 * commits the run's open batch.
 */
static struct selected_run run_selected_when(struct cpmsync_store *store,
					     const struct script_step *script, uint32_t exists,
					     const struct rangeset *vanished,
					     local_call_when_fn when)
{
	struct cpmsync_account a = {
		.name = "t",
		.host = "localhost",
		.user = "alice",
		.security = CPMSYNC_SECURITY_NONE,
		.sync_bodies = CPMSYNC_SYNC_BODIES_NONE,
		.password_cb = password_cb,
		.connect_timeout_ms = 3000,
		.command_timeout_ms = 3000,
	};
	struct cpmsync_loop *loop = NULL;
	struct script_peer peer;
	struct selected_run sr = { .state = -1 };
	bool called = false;

	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(script_peer_start(script, &peer), 0);
	ck_assert_int_eq(engine_sync_once_fd(loop, store, &a, peer.fd, selected_cb, &sr, &sr.e), 0);
	engine_sync_selected(sr.e, 1, 7, exists);
	if (vanished)
		ck_assert_int_eq(engine_sync_selected_vanished(sr.e, vanished), 0);
	while (!sr.res.done) {
		ck_assert_int_ge(cpmsync_loop_iterate(loop, 50), 0);
		if (!called && !sr.res.done && when(sr.e)) {
			called = true;
			ck_assert_int_eq(store_begin(store_from_public(store)), 0);
			ck_assert_int_eq(store_commit(store_from_public(store)), 0);
		}
	}
	ck_assert(called);
	cpmsync_loop_free(loop);
	ck_assert_int_eq(script_peer_wait(&peer), 0);
	return sr;
}

/* run_selected_when() with the call while both UID FETCHes are out. */
static struct selected_run run_selected_local_call(struct cpmsync_store *store,
						   const struct script_step *script,
						   uint32_t exists, const struct rangeset *vanished)
{
	return run_selected_when(store, script, exists, vanished, when_fetches_out);
}

static struct sync_result run(struct cpmsync_store *store, const struct script_step *script)
{
	return run_only(store, script, 0);
}

static struct cpmsync_store *open_store(void)
{
	struct cpmsync_store *cs = NULL;

	ck_assert_int_eq(cpmsync_store_open(dbpath, 0, &cs, NULL), 0);
	return cs;
}

static void exec(struct cpmsync_store *cs, const char *sql)
{
	ck_assert_int_eq(store_exec(store_from_public(cs), sql), 0);
}

static const char *qs(struct cpmsync_store *cs, const char *sql)
{
	return test_store_text(store_from_public(cs), sql);
}

/* A synced INBOX (UIDVALIDITY 7, UIDNEXT 2, HIGHESTMODSEQ 100) with UID 1
 * "\Seen", to which the user added \Flagged locally. */
static void fixture(struct cpmsync_store *cs)
{
	exec(cs, "INSERT INTO account (name) VALUES ('t');"
		 "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext,"
		 " highestmodseq) VALUES (1, 'INBOX', 'INBOX', 7, 2, 100);"
		 "INSERT INTO message (folder_id, uid, size) VALUES (1, 1, 10);"
		 "INSERT INTO message_state (id, flags, server_flags, modseq)"
		 " VALUES (1, '\\Flagged \\Seen', '\\Seen', 100);"
		 "INSERT INTO journal (account_id, op, folder_id, message_id)"
		 " VALUES (1, 'flags', 1, 1);");
}

/* The end of every script: LOGOUT (tagged tag) answered, the connection
 * closed. */
#define SCRIPT_LOGOUT(tag)                                                                         \
	{ SCRIPT_EXPECT, tag " LOGOUT" }, { SCRIPT_SEND, "* BYE bye\r\n" tag " OK bye\r\n" },      \
		{ SCRIPT_CLOSE, NULL },                                                            \
	{                                                                                          \
		SCRIPT_END, NULL                                                                   \
	}

/* engine-ident.c's check of fixture()'s INBOX, where a flag change waits
 * for UID 1 (10 bytes, no internal date recorded): SELECT and the FETCH of
 * that message, tags sel and fetch. */
#define IDENT_CHECK(sel, fetch)                                                                    \
	{ SCRIPT_EXPECT, sel " SELECT INBOX (CONDSTORE)" },                                        \
		{ SCRIPT_SEND,                                                                     \
		  "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 2] n\r\n"                 \
		  "* OK [HIGHESTMODSEQ 100] h\r\n" sel " OK [READ-WRITE] selected\r\n" },          \
		{ SCRIPT_EXPECT, fetch " UID FETCH 1 (UID RFC822.SIZE INTERNALDATE)" },            \
	{                                                                                          \
		SCRIPT_SEND, "* 1 FETCH (UID 1 RFC822.SIZE 10)\r\n" fetch " OK fetched\r\n"        \
	}

#define LOGIN_AND_SELECT                                                                           \
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 LITERAL+ ENABLE QRESYNC] ready\r\n" },          \
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },                                              \
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1 ENABLE QRESYNC CONDSTORE UIDPLUS "     \
			       "METADATA] in\r\n" },                                               \
		{ SCRIPT_EXPECT, "a2 ENABLE QRESYNC" },                                            \
		{ SCRIPT_SEND, "* ENABLED QRESYNC\r\na2 OK enabled\r\n" },                         \
		IDENT_CHECK("a3", "a4"), { SCRIPT_EXPECT, "a5 LIST \"\" \"*\"" },                  \
		{ SCRIPT_SEND, "* LIST (\\HasNoChildren) \"/\" INBOX\r\na5 OK listed\r\n" },       \
		{ SCRIPT_EXPECT, "a6 STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)" }, \
		{ SCRIPT_SEND,                                                                     \
		  "* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7 HIGHESTMODSEQ 101)\r\n"      \
		  "a6 OK status\r\n" },                                                            \
		{ SCRIPT_EXPECT, "a7 SELECT INBOX (QRESYNC (7 100 1))" },                          \
	{                                                                                          \
		SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 2] n\r\n"      \
			     "* OK [HIGHESTMODSEQ 100] h\r\na7 OK [READ-WRITE] selected\r\n"       \
	}

START_TEST(test_modified_merged_and_retried)
{
	/* Between our SELECT and our STORE another client removed \Seen and
	 * added $Work: the conditional STORE fails, we read their flags,
	 * merge per flag (our +\Flagged stays, their -\Seen +$Work too) and
	 * send the merge with the new MODSEQ. */
	static const struct script_step script[] = {
		LOGIN_AND_SELECT,
		{ SCRIPT_EXPECT,
		  "a8 UID STORE 1 (UNCHANGEDSINCE 100) FLAGS.SILENT (\\Flagged \\Seen)" },
		{ SCRIPT_SEND, "a8 OK [MODIFIED 1] conditional store failed\r\n" },
		{ SCRIPT_EXPECT, "a9 UID FETCH 1 (UID FLAGS MODSEQ)" },
		{ SCRIPT_SEND,
		  "* 1 FETCH (UID 1 FLAGS ($Work) MODSEQ (105))\r\na9 OK fetched\r\n" },
		{ SCRIPT_EXPECT,
		  "a10 UID STORE 1 (UNCHANGEDSINCE 105) FLAGS.SILENT ($Work \\Flagged)" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 MODSEQ (106))\r\na10 OK stored\r\n" },
		SCRIPT_LOGOUT("a11"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	fixture(cs);
	res = run(cs, script);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_str_eq(qs(cs, "SELECT flags FROM message_state WHERE id = 1"), "$Work \\Flagged");
	ck_assert_str_eq(qs(cs, "SELECT server_flags FROM message_state WHERE id = 1"),
			 "$Work \\Flagged");
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM journal"), "0");
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_modified_forever_kept)
{
	/* A server that keeps answering MODIFIED: after three rounds the
	 * change is kept for the next run and the run reports failure. */
	static const struct script_step script[] = {
		LOGIN_AND_SELECT,
		{ SCRIPT_EXPECT, "a8 UID STORE 1 (UNCHANGEDSINCE 100)" },
		{ SCRIPT_SEND, "a8 OK [MODIFIED 1] no\r\n" },
		{ SCRIPT_EXPECT, "a9 UID FETCH 1 (UID FLAGS MODSEQ)" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (101))\r\na9 OK f\r\n" },
		{ SCRIPT_EXPECT, "a10 UID STORE 1 (UNCHANGEDSINCE 101)" },
		{ SCRIPT_SEND, "a10 OK [MODIFIED 1] no\r\n" },
		{ SCRIPT_EXPECT, "a11 UID FETCH 1 (UID FLAGS MODSEQ)" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (102))\r\na11 OK f\r\n" },
		{ SCRIPT_EXPECT, "a12 UID STORE 1 (UNCHANGEDSINCE 102)" },
		{ SCRIPT_SEND, "a12 OK [MODIFIED 1] no\r\n" },
		SCRIPT_LOGOUT("a13"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	fixture(cs);
	res = run(cs, script);
	ck_assert_int_eq(res.r, -CPMSYNC_E_SERVER);
	ck_assert_ptr_nonnull(strstr(res.reason, "kept changing"));
	ck_assert_str_eq(qs(cs, "SELECT flags FROM message_state WHERE id = 1"),
			 "\\Flagged \\Seen");
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM journal"), "1");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_setmetadata_value_is_a_string)
{
	/* RFC 5464: a METADATA value is an nstring (or literal8), never an
	 * atom: a one-word value is quoted (Cyrus answers BAD to hello bare),
	 * so is the word NIL (bare, it would remove the entry), and ""
	 * (removal) is NIL. */
	static const struct script_step script[] = {
		LOGIN_AND_SELECT,
		{ SCRIPT_EXPECT, "a8 UID STORE 1 (UNCHANGEDSINCE 100)" },
		{ SCRIPT_SEND, "a8 OK stored\r\n" },
		{ SCRIPT_EXPECT, "a9 SETMETADATA INBOX (/private/comment \"hello\")" },
		{ SCRIPT_SEND, "a9 OK set\r\n" },
		{ SCRIPT_EXPECT, "a10 SETMETADATA INBOX (/private/word \"NIL\")" },
		{ SCRIPT_SEND, "a10 OK set\r\n" },
		{ SCRIPT_EXPECT, "a11 SETMETADATA INBOX (/private/gone NIL)" },
		{ SCRIPT_SEND, "a11 OK set\r\n" },
		SCRIPT_LOGOUT("a12"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	fixture(cs);
	exec(cs, "INSERT INTO journal (account_id, op, folder_id, args) VALUES"
		 " (1, 'set_metadata', 1, '/private/comment' || char(10) || 'hello'),"
		 " (1, 'set_metadata', 1, '/private/word' || char(10) || 'NIL'),"
		 " (1, 'set_metadata', 1, '/private/gone' || char(10) || '');");
	res = run(cs, script);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_replayed, 4);
	ck_assert_uint_eq(res.stats.ops_failed, 0);
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM journal"), "0");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_refused_operation_kept)
{
	/* A [NOPERM] NO makes a failed operation (code and text kept, as
	 * the driver decodes them); the next one still goes, and the run
	 * does not fail for it. */
	static const struct script_step script[] = {
		LOGIN_AND_SELECT,
		{ SCRIPT_EXPECT, "a8 UID STORE 1 (UNCHANGEDSINCE 100)" },
		{ SCRIPT_SEND, "a8 OK stored\r\n" },
		{ SCRIPT_EXPECT, "a9 CREATE Projects" },
		{ SCRIPT_SEND, "a9 NO [NOPERM] not allowed here\r\n" },
		{ SCRIPT_EXPECT, "a10 SETMETADATA INBOX (/private/comment \"hello\")" },
		{ SCRIPT_SEND, "a10 NO [NOPERM] no metadata for you\r\n" },
		SCRIPT_LOGOUT("a11"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	fixture(cs);
	exec(cs, "INSERT INTO folder (account_id, name) VALUES (1, 'Projects');"
		 "INSERT INTO journal (account_id, op, folder_id) VALUES (1, 'create_folder', 2);"
		 "INSERT INTO journal (account_id, op, folder_id, args)"
		 " VALUES (1, 'set_metadata', 1, '/private/comment' || char(10) || 'hello');");
	res = run(cs, script);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.stats.ops_failed, 2);
	ck_assert_uint_eq(res.stats.ops_given_up, 2);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(op || ':' || code || ':' || refused || ':'"
				" || failed, ',') FROM journal"),
			 "create_folder:NOPERM:not allowed here:1,"
			 "set_metadata:NOPERM:no metadata for you:1");
	ck_assert_str_eq(qs(cs, "SELECT server_flags FROM message_state WHERE id = 1"),
			 "\\Flagged \\Seen");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_select_refused_others_go_on)
{
	/* A folder deleted between LIST and SELECT: the others still sync,
	 * and the run does not fail for it (the refusal is logged and
	 * counted).  Not INBOX after it: INBOX goes first. */
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE] ready\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_SEND,
		  "* LIST () \"/\" Gone\r\n* LIST () \"/\" Other\r\na2 OK listed\r\n" },
		{ SCRIPT_EXPECT, "a3 SELECT Gone" },
		{ SCRIPT_SEND, "a3 NO [NONEXISTENT] Mailbox doesn't exist: Gone\r\n" },
		{ SCRIPT_EXPECT, "a4 SELECT Other" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 3] v\r\n* OK [UIDNEXT 2] n\r\n"
			       "a4 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT,
		  "a5 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE "
		  "BODY.PEEK[HEADER])" },
		{ SCRIPT_SEND,
		  "* 1 FETCH (UID 1 FLAGS (\\Seen) INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" "
		  "RFC822.SIZE 10 BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL \"7bit\" 2 1) "
		  "BODY[HEADER] {21}\r\nMessage-ID: <m@x>\r\n\r\n)\r\na5 OK fetched\r\n" },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	res = run(cs, script);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_uint_eq(res.stats.folders_refused, 1);
	ck_assert_str_eq(qs(cs, "SELECT message_id || ' ' || flags FROM message"
				" JOIN message_state USING (id)"),
			 "<m@x> \\Seen");
	ck_assert_str_eq(qs(cs, "SELECT uidnext FROM folder WHERE name = 'Other'"), "2");
	cpmsync_store_close(cs);
}
END_TEST

/*
 * A new message whose FETCH response is over the parser's 64 KiB line
 * limit (the BODYSTRUCTURE of 1,500 MIME parts, as anyone can send): the
 * response is skipped, the message fetched again without BODYSTRUCTURE
 * and kept without one; the messages around it and the folder's state
 * are stored, and the run ends well (before, the connection was dropped
 * and every later run failed on the same message).
 */
START_TEST(test_long_bodystructure_refetched)
{
	struct buf big = BUF_INIT(1u << 20);
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	ck_assert_int_eq(buf_append_str(&big, "* 1 FETCH (UID 1 FLAGS () INTERNALDATE "
					      "\"01-Jan-2026 00:00:00 +0000\" RFC822.SIZE 10 "
					      "BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL "
					      "\"7bit\" 2 1) BODY[HEADER] {21}\r\n"
					      "Message-ID: <a@x>\r\n\r\n)\r\n"
					      "* 2 FETCH (UID 2 FLAGS (\\Seen) INTERNALDATE "
					      "\"01-Jan-2026 00:00:00 +0000\" RFC822.SIZE 43000 "
					      "BODYSTRUCTURE ("),
			 0);
	for (int i = 0; i < 1500; i++)
		ck_assert_int_eq(buf_append_str(&big, "(\"text\" \"plain\" (\"charset\" "
						      "\"us-ascii\") NIL NIL \"7bit\" 0 0)"),
				 0);
	ck_assert_int_eq(buf_append_str(&big, " \"mixed\") BODY[HEADER] {23}\r\n"
					      "Message-ID: <big@x>\r\n\r\n)\r\n"
					      "* 3 FETCH (UID 3 FLAGS () INTERNALDATE "
					      "\"01-Jan-2026 00:00:00 +0000\" RFC822.SIZE 10 "
					      "BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL "
					      "\"7bit\" 2 1) BODY[HEADER] {21}\r\n"
					      "Message-ID: <c@x>\r\n\r\n)\r\na4 OK fetched\r\n"),
			 0);
	ck_assert_uint_gt(big.len, 65536 + 1000);
	const struct script_step script[] = {
		INBOX_SELECTED("3", "4"),
		{ SCRIPT_EXPECT,
		  "a4 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE "
		  "BODY.PEEK[HEADER])" },
		{ SCRIPT_SEND, big.data },
		{ SCRIPT_EXPECT,
		  "a5 UID FETCH 2 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])" },
		{ SCRIPT_SEND,
		  "* 2 FETCH (UID 2 FLAGS (\\Seen) INTERNALDATE "
		  "\"01-Jan-2026 00:00:00 +0000\" RFC822.SIZE 43000 BODY[HEADER] {23}\r\n"
		  "Message-ID: <big@x>\r\n\r\n)\r\na5 OK fetched\r\n" },
		SCRIPT_LOGOUT("a6"),
	};

	res = run(cs, script);
	buf_free(&big);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_uint_eq(res.stats.messages_added, 3);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid || ' ' || message_id || ' ' || size || ' '"
				" || flags || ' ' || coalesce(bodystructure, '-'), ',') FROM"
				" (SELECT * FROM message m JOIN message_state USING (id)"
				" LEFT JOIN summary s USING (id) ORDER BY uid)"),
			 "1 <a@x> 10  (\"text\" \"plain\" NIL NIL NIL \"7bit\" 2 1),"
			 "2 <big@x> 43000 \\Seen -,"
			 "3 <c@x> 10  (\"text\" \"plain\" NIL NIL NIL \"7bit\" 2 1)");
	ck_assert_str_eq(qs(cs, "SELECT uidnext FROM folder WHERE name = 'INBOX'"), "4");
	cpmsync_store_close(cs);
}
END_TEST

/*
 * sync_bodies = all: a new message's body comes in its first FETCH and is
 * stored with its row (inserted with has_body set, store_sync_body_put_new()):
 * no second FETCH for it (the script has none), no MessagesChanged-worthy
 * UPDATE after the insert.
 */
START_TEST(test_new_message_body_stored_once)
{
	static const struct script_step script[] = {
		INBOX_SELECTED("2", "3"),
		{ SCRIPT_EXPECT, "a4 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE "
				 "BODY.PEEK[]<0.268435456>)" },
		{ SCRIPT_SEND,
		  "* 1 FETCH (UID 1 FLAGS (\\Seen) INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" "
		  "RFC822.SIZE 26 BODY[]<0> {26}\r\nMessage-ID: <m@x>\r\n\r\nhello)\r\n"
		  "* 2 FETCH (UID 2 FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" "
		  "RFC822.SIZE 24 BODY[] {24}\r\nMessage-ID: <n@x>\r\n\r\nbye)\r\n"
		  "a4 OK fetched\r\n" },
		SCRIPT_LOGOUT("a5"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	sync_bodies = CPMSYNC_SYNC_BODIES_ALL;
	res = run(cs, script);
	sync_bodies = CPMSYNC_SYNC_BODIES_NONE;
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_uint_eq(res.stats.messages_added, 2);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(message_id || ' ' || has_body || ' ' ||"
				" length(data), ',') FROM (SELECT m.message_id, m.has_body, b.data"
				" FROM message m JOIN body_inline b ON b.message_id = m.id"
				" ORDER BY m.uid)"),
			 "<m@x> 1 26,<n@x> 1 24");
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM body_trash"), "0");
	cpmsync_store_close(cs);
}
END_TEST

/*
 * A store that cannot take what the server has (SQLite's max_page_count a
 * few pages above its size: SQLITE_FULL, as a full disk gives, while the
 * small writes of the replay still fit).
 */

/* The user's own changes, made through the public API on the synced
 * INBOX of fixture() less its journal row: \Flagged added to UID 1, and a
 * new message stored (its id in *ret_stored). */
static void local_changes(struct cpmsync_store *cs, int64_t *ret_stored)
{
	static const char msg[] = "Message-ID: <local@x>\r\nSubject: mine\r\n\r\nlocal\r\n";
	static const char *const flagged[] = { "\\Flagged", NULL };
	int64_t id = 1;

	exec(cs, "DELETE FROM journal;"
		 "UPDATE message_state SET flags = '\\Seen' WHERE id = 1;");
	ck_assert_int_eq(cpmsync_op_set_flags(cs, &id, 1, flagged, NULL), 0);
	ck_assert_int_eq(cpmsync_op_store(cs, "t", "INBOX", msg, sizeof(msg) - 1, NULL, 1767225600,
					  ret_stored),
			 0);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(op, ',') FROM journal"), "flags,append");
}

/* The store may grow by extra pages, or as it likes again (extra < 0). */
static void store_room(struct cpmsync_store *cs, int extra)
{
	char sql[96];

	if (extra < 0) {
		exec(cs, "PRAGMA max_page_count = 1073741823");
		return;
	}
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %d",
		 atoi(qs(cs, "PRAGMA page_count")) + extra);
	exec(cs, sql);
}

/* The FETCH answer of new messages first..last (sequence number = UID),
 * each ~3 KB (a body kept inline, in the database), and, with
 * local_uid, the message of local_changes() as that UID. */
static const char *new_messages(uint32_t first, uint32_t last, uint32_t local_uid, const char *tag)
{
	static char out[256 << 10];
	size_t n = 0;

	for (uint32_t u = first; u <= last + (local_uid ? 1 : 0); u++) {
		char body[3200];
		size_t len;

		if (u > last)
			len = (size_t)snprintf(body, sizeof(body), "%s",
					       "Message-ID: <local@x>\r\nSubject: mine\r\n\r\n"
					       "local\r\n");
		else {
			len = (size_t)snprintf(body, sizeof(body),
					       "Message-ID: <n%u@x>\r\nSubject: s\r\n\r\n", u);
			while (len + 72 < sizeof(body))
				len += (size_t)snprintf(body + len, sizeof(body) - len, "%070u\r\n",
							u);
		}
		n += (size_t)snprintf(
			out + n, sizeof(out) - n,
			"* %u FETCH (UID %u FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00"
			" +0000\" RFC822.SIZE %zu MODSEQ (%u) BODY[] {%zu}\r\n%s)\r\n",
			u > last ? local_uid : u, u > last ? local_uid : u, len, 200 + u, len,
			body);
		ck_assert_uint_lt(n, sizeof(out));
	}
	snprintf(out + n, sizeof(out) - n, "%s OK fetched\r\n", tag);
	return out;
}

/* The SCRIPT_SEND left NULL in script (n steps) sends arg. */
static void script_fill(struct script_step *script, size_t n, const char *arg)
{
	for (size_t i = 0; i < n; i++)
		if (script[i].op == SCRIPT_SEND && !script[i].arg) {
			script[i].arg = arg;
			return;
		}
	ck_abort_msg("no step to fill");
}

/*
 * The store-full runs' start: fixture() with local_changes() (the stored
 * message's id in *ret_stored), script's NULL step the FETCH answer of new
 * messages first..last, tagged tag (malloc'ed, returned: the caller frees it), and
 * room for 8 more pages only, so that the store fills during that FETCH.
 */
static char *store_full_start(struct cpmsync_store *cs, int64_t *ret_stored, const char *tag,
			      uint32_t first, uint32_t last, struct script_step *script, size_t n)
{
	char *fetch = strdup(new_messages(first, last, 0, tag));

	ck_assert_ptr_nonnull(fetch);
	fixture(cs);
	local_changes(cs, ret_stored);
	script_fill(script, n, fetch);
	store_room(cs, 8);
	return fetch;
}

#define LOGIN_ONLY                                                                                 \
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 LITERAL+ ENABLE QRESYNC] ready\r\n" },          \
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },                                              \
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1 LITERAL+ ENABLE QRESYNC CONDSTORE "    \
			       "UIDPLUS] in\r\n" },                                                \
		{ SCRIPT_EXPECT, "a2 ENABLE QRESYNC" },                                            \
	{                                                                                          \
		SCRIPT_SEND, "* ENABLED QRESYNC\r\na2 OK enabled\r\n"                              \
	}
/* LIST (tag list) and STATUS (tag st) of INBOX, answered with status. */
#define LIST_STATUS(list, st, status)                                                              \
	{ SCRIPT_EXPECT, list " LIST \"\" \"*\"" },                                                \
		{ SCRIPT_SEND, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n" list " OK listed\r\n" }, \
		{ SCRIPT_EXPECT,                                                                   \
		  st " STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)" },               \
	{                                                                                          \
		SCRIPT_SEND, status                                                                \
	}
#define FULL_LOGIN(status) LOGIN_ONLY, LIST_STATUS("a3", "a4", status)

/* The APPEND of local_changes()'s message (tag tag). */
#define LOCAL_APPEND(tag)                                                                          \
	{ SCRIPT_EXPECT, tag " APPEND INBOX () \"01-Jan-2026 00:00:00 +0000\" {47+}" },            \
		{ SCRIPT_EXPECT, "Message-ID: <local@x>" }, { SCRIPT_EXPECT, "Subject: mine" },    \
		{ SCRIPT_EXPECT, "" }, { SCRIPT_EXPECT, "local" },                                 \
	{                                                                                          \
		SCRIPT_EXPECT, ""                                                                  \
	}

/* The notices of a store full (engine.c keep_whole()), in notice_log. */
static char notice_log[1024];

static void capture_notice(int level, unsigned category, const char *msg, void *userdata)
{
	size_t n = strlen(notice_log);

	(void)category;
	(void)userdata;
	if (level <= CPMSYNC_LOG_NOTICE && strstr(msg, "no room in the store"))
		snprintf(notice_log + n, sizeof(notice_log) - n, "%s\n", msg);
}

/*
 * The pull cannot store the 58 new messages of INBOX (SQLITE_FULL in the
 * middle of their FETCH): the local flag change and the new message still
 * reach the server, each once (the script has one UID STORE and one
 * APPEND, then LOGOUT), the run fails naming the store's error and what
 * was sent, and the folder's state stays where its last complete sync
 * left it.  The store is seen to be nearly full (max_page_count: engine.c
 * message_begin()): a mark before each message, and the writes that
 * SQLITE_FULL may stop keep the transaction (store_set_full_safe()), so
 * UIDs 2 and 3, stored whole before UID 4 did not fit, are kept and
 * counted (before, SQLite rolled the whole transaction back: nothing of
 * the FETCH was kept, at every run).  With room again, the next run
 * fetches from the folder's UIDNEXT, as before, stores them all, the
 * server's copy of the appended message as the row already there, and
 * sends nothing again.
 */
START_TEST(test_store_full_replays_anyway)
{
	char *fetch1 = NULL;
	struct script_step script[] = {
		LOGIN_ONLY,
		IDENT_CHECK("a3", "a4"),
		LIST_STATUS("a5", "a6",
			    "* STATUS INBOX (MESSAGES 59 UIDNEXT 60 UIDVALIDITY 7 HIGHESTMODSEQ "
			    "260)\r\na6 OK status\r\n"),
		{ SCRIPT_EXPECT, "a7 SELECT INBOX (QRESYNC (7 100 1))" },
		{ SCRIPT_EXPECT, "a8 UID FETCH 2:* (UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ "
				 "BODY.PEEK[]<0.268435456>)" },
		{ SCRIPT_SEND, "* 59 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 60] n\r\n"
			       "* OK [HIGHESTMODSEQ 260] h\r\na7 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_SEND, NULL }, /* fetch1 */
		/* The replay: INBOX again, checked (UIDVALIDITY 7 as stored). */
		{ SCRIPT_EXPECT, "a9 SELECT INBOX (CONDSTORE)" },
		{ SCRIPT_SEND, "* 59 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 60] n\r\n"
			       "* OK [HIGHESTMODSEQ 260] h\r\na9 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT,
		  "a10 UID STORE 1 (UNCHANGEDSINCE 100) FLAGS.SILENT (\\Flagged \\Seen)" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 MODSEQ (261))\r\na10 OK stored\r\n" },
		LOCAL_APPEND("a11"),
		{ SCRIPT_SEND, "a11 OK [APPENDUID 7 60] appended\r\n" },
		SCRIPT_LOGOUT("a12"),
	};
	struct script_step script2[] = {
		FULL_LOGIN("* STATUS INBOX (MESSAGES 60 UIDNEXT 61 UIDVALIDITY 7 HIGHESTMODSEQ "
			   "262)\r\na4 OK status\r\n"),
		{ SCRIPT_EXPECT, "a5 SELECT INBOX (QRESYNC (7 100 1:60))" },
		/* A new connection: the newest UID held (the appended one)
		 * checked before the SELECT's news are kept (engine-ident.c). */
		{ SCRIPT_EXPECT, "a6 UID FETCH 60 (UID RFC822.SIZE INTERNALDATE)" },
		{ SCRIPT_SEND, "* 60 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 61] n\r\n"
			       "* OK [HIGHESTMODSEQ 262] h\r\n"
			       "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Seen) MODSEQ (261))\r\n"
			       "a5 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_SEND, "* 60 FETCH (UID 60 RFC822.SIZE 47 INTERNALDATE "
			       "\"01-Jan-2026 00:00:00 +0000\")\r\na6 OK fetched\r\n" },
		/* The new messages only then (not pipelined with the check). */
		{ SCRIPT_EXPECT, "a7 UID FETCH 2:* (UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ "
				 "BODY.PEEK[]<0.268435456>)" },
		{ SCRIPT_SEND, NULL }, /* the same 58 and the appended one */
		/* UID 1 of fixture() had no body yet. */
		{ SCRIPT_EXPECT, "a8 UID FETCH 1 (UID BODY.PEEK[])" },
		{ SCRIPT_SEND,
		  "* 1 FETCH (UID 1 BODY[] {11}\r\nSubject: \r\n)\r\na8 OK fetched\r\n" },
		SCRIPT_LOGOUT("a9"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;
	int64_t stored = 0;
	char want[64], reason[512];

	fetch1 = store_full_start(cs, &stored, "a8", 2, 59, script,
				  sizeof(script) / sizeof(script[0]));
	sync_bodies = CPMSYNC_SYNC_BODIES_ALL;
	notice_log[0] = '\0';
	cpmsync_log_set_handler(CPMSYNC_LOG_DEBUG, CPMSYNC_LOG_CAT_ALL, capture_notice, NULL);
	res = run(cs, script);
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
	sync_bodies = CPMSYNC_SYNC_BODIES_NONE;
	ck_assert_int_eq(res.r, -CPMSYNC_E_STORE_FULL);
	ck_assert_str_eq(
		notice_log,
		"t: no room in the store: the 2 new messages stored whole before are kept\n");
	snprintf(reason, sizeof(reason),
		 "syncing INBOX stopped, the local store has no room: storing the body of "
		 "UID 4: %s: database or disk is full (13); the local changes were sent all "
		 "the same (2 sent)",
		 dbpath);
	ck_assert_str_eq(res.reason, reason);
	ck_assert_uint_eq(res.stats.ops_replayed, 2);
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM journal"), "0");
	ck_assert_str_eq(qs(cs, "SELECT flags || '|' || server_flags FROM message_state"
				" WHERE id = 1"),
			 "\\Flagged \\Seen|\\Flagged \\Seen");
	snprintf(want, sizeof(want), "SELECT uid FROM message WHERE id = %lld", (long long)stored);
	ck_assert_str_eq(qs(cs, want), "60");
	/* UIDs 2 and 3 kept, whole (their bodies), and counted; the
	 * folder's state as it was, and the folder not counted as synced. */
	ck_assert_str_eq(qs(cs, "SELECT group_concat(m.uid || ':' || m.has_body || ':' ||"
				" length(b.data), ',') FROM message m JOIN body_inline b"
				" ON b.message_id = m.id WHERE m.uid BETWEEN 2 AND 59"),
			 "2:1:3130,3:1:3130");
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM message"), "4");
	ck_assert_uint_eq(res.stats.messages_added, 2);
	ck_assert_uint_eq(res.stats.folders_synced, 0);
	ck_assert_str_eq(qs(cs, "SELECT uidvalidity || ' ' || uidnext || ' ' || highestmodseq"
				" FROM folder WHERE name = 'INBOX'"),
			 "7 2 100");
	ck_assert_str_eq(qs(cs, "SELECT last_sync FROM account"), "0");
	/* The progress does not read as complete: none of the 58 expected. */
	ck_assert_str_eq(last_progress, "0/58");

	store_room(cs, -1);
	script_fill(script2, sizeof(script2) / sizeof(script2[0]), new_messages(2, 59, 60, "a7"));
	sync_bodies = CPMSYNC_SYNC_BODIES_ALL;
	res = run(cs, script2);
	sync_bodies = CPMSYNC_SYNC_BODIES_NONE;
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_uint_eq(res.stats.ops_replayed, 0);
	ck_assert_str_eq(qs(cs, "SELECT count(*) || ' ' || count(DISTINCT uid) || ' ' ||"
				" min(uid) || ' ' || max(uid) FROM message"),
			 "60 60 1 60");
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM message WHERE message_id = '<local@x>'"),
			 "1");
	ck_assert_str_eq(qs(cs, "SELECT uidnext || ' ' || highestmodseq FROM folder"
				" WHERE name = 'INBOX'"),
			 "61 262");
	/* The next run completes: all it brought, of as many. */
	ck_assert_str_eq(last_progress, "59/59");
	free(fetch1);
	cpmsync_store_close(cs);
}
END_TEST

static char wait_log[1024];

static void capture_wait(int level, unsigned category, const char *msg, void *userdata)
{
	size_t n = strlen(wait_log);

	(void)category;
	(void)userdata;
	if (level <= CPMSYNC_LOG_WARNING && strstr(msg, "wait for its sync"))
		snprintf(wait_log + n, sizeof(wait_log) - n, "%s\n", msg);
}

/*
 * The same, but INBOX has another UIDVALIDITY on the server: the pull's
 * re-read cannot be stored, so the store still holds the UIDs of the old
 * folder.  The replay's SELECT shows it (UIDVALIDITY 8, stored 7): the
 * flag change is not sent to UID 1 of a folder where UID 1 is another
 * message; it waits, queued as it was (no attempt, no refusal), while the
 * new message, which names no UID, is appended.
 */
START_TEST(test_store_full_other_folder_waits)
{
	char *fetch1 = NULL;
	struct script_step script[] = {
		LOGIN_ONLY,
		/* engine-ident.c: another UIDVALIDITY, left to the pull. */
		{ SCRIPT_EXPECT, "a3 SELECT INBOX (CONDSTORE)" },
		{ SCRIPT_SEND, "* 58 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 59] n\r\n"
			       "* OK [HIGHESTMODSEQ 50] h\r\na3 OK [READ-WRITE] selected\r\n" },
		LIST_STATUS("a4", "a5",
			    "* STATUS INBOX (MESSAGES 58 UIDNEXT 59 UIDVALIDITY 8 HIGHESTMODSEQ "
			    "50)\r\na5 OK status\r\n"),
		{ SCRIPT_EXPECT, "a6 SELECT INBOX (QRESYNC (7 100 1))" },
		{ SCRIPT_SEND, "* 58 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 59] n\r\n"
			       "* OK [HIGHESTMODSEQ 50] h\r\na6 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a7 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ "
				 "BODY.PEEK[]<0.268435456>)" },
		{ SCRIPT_SEND, NULL }, /* fetch1 */
		{ SCRIPT_EXPECT, "a8 SELECT INBOX (CONDSTORE)" },
		{ SCRIPT_SEND, "* 58 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 59] n\r\n"
			       "* OK [HIGHESTMODSEQ 50] h\r\na8 OK [READ-WRITE] selected\r\n" },
		LOCAL_APPEND("a9"),
		{ SCRIPT_SEND, "a9 OK [APPENDUID 8 59] appended\r\n" },
		SCRIPT_LOGOUT("a10"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;
	int64_t stored = 0;
	char want[64], reason[512];

	fetch1 = store_full_start(cs, &stored, "a7", 1, 58, script,
				  sizeof(script) / sizeof(script[0]));
	wait_log[0] = '\0';
	cpmsync_log_set_handler(CPMSYNC_LOG_DEBUG, CPMSYNC_LOG_CAT_ALL, capture_wait, NULL);
	sync_bodies = CPMSYNC_SYNC_BODIES_ALL;
	/* The store not seen to be nearly full (engine.c message_begin()):
	 * SQLite rolls the whole transaction back at SQLITE_FULL, as it does
	 * at a full disk under a page it spills, and the re-read's start
	 * (the new UIDVALIDITY) goes with it. */
	mark_room_check = false;
	res = run(cs, script);
	mark_room_check = true;
	sync_bodies = CPMSYNC_SYNC_BODIES_NONE;
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
	free(fetch1);
	ck_assert_int_eq(res.r, -CPMSYNC_E_STORE_FULL);
	snprintf(reason, sizeof(reason),
		 "syncing INBOX stopped, the local store has no room: storing the body of "
		 "UID 3: %s: database or disk is full (13); the local changes were sent all "
		 "the same (1 sent, those of 1 folder wait for its sync)",
		 dbpath);
	ck_assert_str_eq(res.reason, reason);
	ck_assert_str_eq(wait_log, "t: the local changes of INBOX wait for its sync: it may not"
				   " be the folder the store knows (UIDVALIDITY changed)\n");
	ck_assert_uint_eq(res.stats.ops_replayed, 1);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(op || ':' || attempts || ':' ||"
				" coalesce(refused, '-') || ':' || failed, ',') FROM journal"),
			 "flags:0:-:0");
	ck_assert_str_eq(qs(cs, "SELECT flags || '|' || server_flags FROM message_state"
				" WHERE id = 1"),
			 "\\Flagged \\Seen|\\Seen");
	snprintf(want, sizeof(want), "SELECT uid FROM message WHERE id = %lld", (long long)stored);
	ck_assert_str_eq(qs(cs, want), "59");
	ck_assert_str_eq(qs(cs, "SELECT uidvalidity || ' ' || uidnext || ' ' || highestmodseq"
				" FROM folder WHERE name = 'INBOX'"),
			 "7 2 100");
	ck_assert_str_eq(last_progress, "0/58");
	cpmsync_store_close(cs);
}
END_TEST

/* The FETCH answer (tag tag; NULL: not its end) of messages first..last
 * of 100,000 bytes each, over STORE_BODY_INLINE_MAX: their bodies go to a
 * pack file. */
static char *big_messages(uint32_t first, uint32_t last, const char *tag)
{
	enum { SIZE = 100000 };
	struct buf out = BUF_INIT(1u << 20);
	char head[160], *filler = malloc(SIZE);

	ck_assert_ptr_nonnull(filler);
	for (uint32_t u = first; u <= last; u++) {
		int n = snprintf(head, sizeof(head), "Message-ID: <b%u@x>\r\nSubject: s\r\n\r\n",
				 u);

		ck_assert(n > 0 && (size_t)n < sizeof(head));
		memset(filler, 'a' + (char)(u % 26), SIZE - (size_t)n);
		ck_assert_int_eq(buf_printf(&out,
					    "* %u FETCH (UID %u FLAGS () INTERNALDATE \"01-Jan-2026"
					    " 00:00:00 +0000\" RFC822.SIZE %d BODY[] {%d}\r\n%s",
					    u, u, SIZE, SIZE, head),
				 0);
		ck_assert_int_eq(buf_append(&out, filler, SIZE - (size_t)n), 0);
		ck_assert_int_eq(buf_append_str(&out, ")\r\n"), 0);
	}
	if (tag)
		ck_assert_int_eq(buf_printf(&out, "%s OK fetched\r\n", tag), 0);
	free(filler);
	return buf_steal(&out);
}

/* run() with the process's file size limit at limit bytes (SIGXFSZ
 * ignored: a write past it fails with EFBIG, as one past a full disk does
 * with ENOSPC). */
static struct sync_result run_limited(struct cpmsync_store *cs, const struct script_step *script,
				      rlim_t limit)
{
	struct rlimit old, lim;
	struct sync_result res;

	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = (struct rlimit){ .rlim_cur = limit, .rlim_max = old.rlim_max };
	ck_assert_ptr_ne(signal(SIGXFSZ, SIG_IGN), SIG_ERR);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	sync_bodies = CPMSYNC_SYNC_BODIES_ALL;
	res = run(cs, script);
	sync_bodies = CPMSYNC_SYNC_BODIES_NONE;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	return res;
}

#define BIG_LOGIN                                                                                  \
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE] ready\r\n" },                           \
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },                                              \
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },                            \
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },                                           \
	{                                                                                          \
		SCRIPT_SEND,                                                                       \
			"* LIST () \"/\" Big\r\n* LIST () \"/\" C\r\n* LIST () \"/\" INBOX\r\n"    \
			"a2 OK listed\r\n"                                                         \
	}
#define BIG_FETCH(tag, set)                                                                        \
	{                                                                                          \
		SCRIPT_EXPECT, tag " UID FETCH " set " (UID FLAGS INTERNALDATE RFC822.SIZE "       \
				   "BODY.PEEK[]<0.268435456>)"                                     \
	}

/*
 * A store with room for 3 of the 6 bodies of folder Big (100 KB each, into
 * a pack file; the process's file size limit stops the pack at 350,000
 * bytes, as a full disk would): the run fails at UID 4, naming the pack,
 * but keeps INBOX (synced first, though "Big" comes before it by name)
 * and the 3 messages stored whole, and counts only those; folder C, after
 * Big, is not reached.  The next run, with no more room, syncs C before
 * Big (a first sync left unfinished goes last), then fetches exactly
 * what is missing of Big (4:*), fails again and still keeps the 3
 * (before, every run rolled back everything it fetched: 0 kept, for
 * ever).  With room, the one after stores the rest and completes Big.
 */
START_TEST(test_store_full_keeps_whole_messages)
{
	/* The failing runs end at UID 4: the rest is not sent to a closed
	 * connection. */
	char *fetch1 = big_messages(1, 4, NULL), *fetch2 = big_messages(4, 4, NULL),
	     *fetch3 = big_messages(4, 6, "a12");
	const struct script_step script[] = {
		BIG_LOGIN,
		{ SCRIPT_EXPECT, "a3 SELECT INBOX" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 3] v\r\n* OK [UIDNEXT 2] n\r\n"
			       "a3 OK [READ-WRITE] selected\r\n" },
		BIG_FETCH("a4", "1:*"),
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00"
			       " +0000\" RFC822.SIZE 21 BODY[] {21}\r\nMessage-ID: <i@x>\r\n\r\n)"
			       "\r\na4 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a5 SELECT Big" },
		{ SCRIPT_SEND, "* 6 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\n* OK [UIDNEXT 7] n\r\n"
			       "a5 OK [READ-WRITE] selected\r\n" },
		BIG_FETCH("a6", "1:*"),
		{ SCRIPT_SEND, fetch1 },
		{ SCRIPT_STALL, NULL }, /* nothing to replay: the run ends at once */
	};
	/* Runs 2 and 3 are new connections: each folder the store holds
	 * messages of is checked by its newest UID before its news are taken
	 * (engine-ident.c). */
#define CHECK(tag, uid, size)                                                                      \
	{ SCRIPT_EXPECT, tag " UID FETCH " #uid " (UID RFC822.SIZE INTERNALDATE)" },               \
	{                                                                                          \
		SCRIPT_SEND, "* " #uid " FETCH (UID " #uid " RFC822.SIZE " #size                   \
			     " INTERNALDATE \"01-Jan-2026 00:00:00 +0000\")\r\n" tag " OK f\r\n"   \
	}
#define AGAIN                                                                                      \
	BIG_LOGIN, { SCRIPT_EXPECT, "a3 SELECT INBOX" },                                           \
		{ SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 3] v\r\n* OK [UIDNEXT 2] n\r\n"    \
			       "a3 OK [READ-WRITE] selected\r\n" },                                \
		CHECK("a4", 1, 21), { SCRIPT_EXPECT, "a5 UID FETCH 1:1 (UID FLAGS)" },             \
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS ())\r\na5 OK fetched\r\n" },                \
		{ SCRIPT_EXPECT, "a6 SELECT C" },                                                  \
	{                                                                                          \
		SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 9] v\r\n* OK [UIDNEXT 2] n\r\n"      \
			     "a6 OK [READ-WRITE] selected\r\n"                                     \
	}
#define BIG_AGAIN(sel, check, flags, fetch_tag, fetch)                                             \
	{ SCRIPT_EXPECT, sel " SELECT Big" },                                                      \
		{ SCRIPT_SEND,                                                                     \
		  "* 6 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\n* OK [UIDNEXT 7] n\r\n" sel             \
		  " OK [READ-WRITE] selected\r\n" },                                               \
		CHECK(check, 3, 100000), { SCRIPT_EXPECT, flags " UID FETCH 1:3 (UID FLAGS)" },    \
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS ())\r\n"      \
			       "* 3 FETCH (UID 3 FLAGS ())\r\n" flags " OK fetched\r\n" },         \
		BIG_FETCH(fetch_tag, "4:*"),                                                       \
	{                                                                                          \
		SCRIPT_SEND, fetch                                                                 \
	}
	/* C: its first sync (one small message), then (checked) its flags. */
	const struct script_step script2[] = {
		AGAIN,
		BIG_FETCH("a7", "1:*"),
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00"
			       " +0000\" RFC822.SIZE 21 BODY[] {21}\r\nMessage-ID: <c@x>\r\n\r\n)"
			       "\r\na7 OK fetched\r\n" },
		BIG_AGAIN("a8", "a9", "a10", "a11", fetch2),
		{ SCRIPT_STALL, NULL },
	};
	const struct script_step script3[] = {
		AGAIN,
		CHECK("a7", 1, 21),
		{ SCRIPT_EXPECT, "a8 UID FETCH 1:1 (UID FLAGS)" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS ())\r\na8 OK fetched\r\n" },
		BIG_AGAIN("a9", "a10", "a11", "a12", fetch3),
		SCRIPT_LOGOUT("a13"),
	};
#undef AGAIN
#undef BIG_AGAIN
#undef CHECK
	struct cpmsync_store *cs = open_store();
	struct sync_result res;
	char reason[512], pack[sizeof(dbpath) + 16];
	struct stat sb;

	exec(cs, "INSERT INTO account (name) VALUES ('t')");
	snprintf(reason, sizeof(reason),
		 "storing the body of UID 4: writing %s-packs/1: File too large", dbpath);
	res = run_limited(cs, script, 350000);
	ck_assert_int_eq(res.r, -EFBIG);
	ck_assert_str_eq(res.reason, reason);
	ck_assert_uint_eq(res.stats.messages_added, 4);
	/* INBOX synced; Big begun, not finished. */
	ck_assert_uint_eq(res.stats.folders_synced, 1);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(x, ',') FROM (SELECT f.name || ' ' || m.uid"
				" || ' ' || m.has_body AS x FROM message m JOIN folder f"
				" ON f.id = m.folder_id ORDER BY f.name, m.uid)"),
			 "Big 1 1,Big 2 1,Big 3 1,INBOX 1 1");
	/* What UID 4 wrote of its body is given back. */
	snprintf(pack, sizeof(pack), "%s-packs/1", dbpath);
	ck_assert_int_eq(stat(pack, &sb), 0);
	ck_assert_int_eq(sb.st_size, 300000);
	/* Big's state not past what was stored: UIDNEXT not recorded. */
	ck_assert_str_eq(qs(cs, "SELECT group_concat(name || ' ' || coalesce(uidvalidity, '-') ||"
				" ' ' || coalesce(uidnext, '-'), ',')"
				" FROM (SELECT * FROM folder ORDER BY name)"),
			 "Big 5 -,C - -,INBOX 3 2");

	res = run_limited(cs, script2, 350000);
	ck_assert_int_eq(res.r, -EFBIG);
	ck_assert_str_eq(res.reason, reason);
	ck_assert_uint_eq(res.stats.messages_added, 1);
	ck_assert_str_eq(qs(cs, "SELECT uidnext || ' ' || (SELECT group_concat(message_id)"
				" FROM message WHERE folder_id = folder.id) FROM folder"
				" WHERE name = 'C'"),
			 "2 <c@x>");
	ck_assert_str_eq(qs(cs, "SELECT count(*) || ' ' || max(uid) FROM message m JOIN folder f"
				" ON f.id = m.folder_id WHERE f.name = 'Big' AND m.has_body"),
			 "3 3");

	res = run_limited(cs, script3, RLIM_INFINITY);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_uint_eq(res.stats.messages_added, 3);
	ck_assert_str_eq(qs(cs, "SELECT count(*) || ' ' || max(uid) FROM message m JOIN folder f"
				" ON f.id = m.folder_id WHERE f.name = 'Big' AND m.has_body"),
			 "6 6");
	ck_assert_str_eq(qs(cs, "SELECT uidnext FROM folder WHERE name = 'Big'"), "7");
	free(fetch1);
	free(fetch2);
	free(fetch3);
	cpmsync_store_close(cs);
}
END_TEST

/*
 * The mark is taken every few messages (engine.c message_begin()), not
 * before each, when the store is not seen to be nearly full (the check
 * off here): a store full undoes the messages since the mark with the one
 * that did not fit, and keeps and counts the rest.  Room for 3 of Big's
 * bodies, as above; a mark every 3 messages (every, or once 150,000 bytes
 * of bodies were written since one: bytes), the first before INBOX's
 * message: INBOX 1, Big 1, Big 2, then a mark, Big 3, and Big 4 fails.
 * Big 3 is undone with it: INBOX 1, Big 1 and 2 are kept, the pack cut
 * back to 200,000 bytes, and INBOX alone counts as synced (Big was begun,
 * not finished).  The next run, with room, syncs C, then fetches exactly
 * what is missing of Big (3:*) and completes it.
 */
static void store_full_undoes_to_mark(int64_t every, int64_t bytes)
{
	char *fetch1 = big_messages(1, 4, NULL), *fetch2 = big_messages(3, 6, "a11");
	const struct script_step script[] = {
		BIG_LOGIN,
		{ SCRIPT_EXPECT, "a3 SELECT INBOX" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 3] v\r\n* OK [UIDNEXT 2] n\r\n"
			       "a3 OK [READ-WRITE] selected\r\n" },
		BIG_FETCH("a4", "1:*"),
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00"
			       " +0000\" RFC822.SIZE 21 BODY[] {21}\r\nMessage-ID: <i@x>\r\n\r\n)"
			       "\r\na4 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a5 SELECT Big" },
		{ SCRIPT_SEND, "* 6 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\n* OK [UIDNEXT 7] n\r\n"
			       "a5 OK [READ-WRITE] selected\r\n" },
		BIG_FETCH("a6", "1:*"),
		{ SCRIPT_SEND, fetch1 },
		{ SCRIPT_STALL, NULL },
	};
	const struct script_step script2[] = {
		BIG_LOGIN,
		{ SCRIPT_EXPECT, "a3 SELECT INBOX" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 3] v\r\n* OK [UIDNEXT 2] n\r\n"
			       "a3 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a4 UID FETCH 1 (UID RFC822.SIZE INTERNALDATE)" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 RFC822.SIZE 21 INTERNALDATE \"01-Jan-2026"
			       " 00:00:00 +0000\")\r\na4 OK f\r\n" },
		{ SCRIPT_EXPECT, "a5 UID FETCH 1:1 (UID FLAGS)" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS ())\r\na5 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a6 SELECT C" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 9] v\r\n* OK [UIDNEXT 2] n\r\n"
			       "a6 OK [READ-WRITE] selected\r\n" },
		BIG_FETCH("a7", "1:*"),
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00"
			       " +0000\" RFC822.SIZE 21 BODY[] {21}\r\nMessage-ID: <c@x>\r\n\r\n)"
			       "\r\na7 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a8 SELECT Big" },
		{ SCRIPT_SEND, "* 6 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\n* OK [UIDNEXT 7] n\r\n"
			       "a8 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a9 UID FETCH 2 (UID RFC822.SIZE INTERNALDATE)" },
		{ SCRIPT_SEND, "* 2 FETCH (UID 2 RFC822.SIZE 100000 INTERNALDATE \"01-Jan-2026"
			       " 00:00:00 +0000\")\r\na9 OK f\r\n" },
		{ SCRIPT_EXPECT, "a10 UID FETCH 1:2 (UID FLAGS)" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS ())\r\n"
			       "a10 OK fetched\r\n" },
		BIG_FETCH("a11", "3:*"),
		{ SCRIPT_SEND, fetch2 },
		SCRIPT_LOGOUT("a12"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;
	char reason[512], pack[sizeof(dbpath) + 16];
	struct stat sb;

	exec(cs, "INSERT INTO account (name) VALUES ('t')");
	snprintf(reason, sizeof(reason),
		 "storing the body of UID 4: writing %s-packs/1: File too large", dbpath);
	mark_every = every;
	mark_max_bytes = bytes;
	mark_room_check = false;
	notice_log[0] = '\0';
	cpmsync_log_set_handler(CPMSYNC_LOG_DEBUG, CPMSYNC_LOG_CAT_ALL, capture_notice, NULL);
	res = run_limited(cs, script, 350000);
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
	ck_assert_int_eq(res.r, -EFBIG);
	ck_assert_str_eq(res.reason, reason);
	ck_assert_str_eq(
		notice_log,
		"t: no room in the store: the 3 new messages stored whole before are kept\n");
	ck_assert_uint_eq(res.stats.messages_added, 3);
	ck_assert_uint_eq(res.stats.folders_synced, 1);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(x, ',') FROM (SELECT f.name || ' ' || m.uid"
				" || ' ' || m.has_body AS x FROM message m JOIN folder f"
				" ON f.id = m.folder_id ORDER BY f.name, m.uid)"),
			 "Big 1 1,Big 2 1,INBOX 1 1");
	snprintf(pack, sizeof(pack), "%s-packs/1", dbpath);
	ck_assert_int_eq(stat(pack, &sb), 0);
	ck_assert_int_eq(sb.st_size, 200000);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(name || ' ' || coalesce(uidvalidity, '-') ||"
				" ' ' || coalesce(uidnext, '-'), ',')"
				" FROM (SELECT * FROM folder ORDER BY name)"),
			 "Big 5 -,C - -,INBOX 3 2");

	res = run_limited(cs, script2, RLIM_INFINITY);
	mark_every = mark_max_bytes = -1;
	mark_room_check = true;
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_uint_eq(res.stats.messages_added, 5); /* C's 1, Big's 3 to 6 */
	ck_assert_uint_eq(res.stats.folders_synced, 3);
	ck_assert_str_eq(qs(cs, "SELECT count(*) || ' ' || min(uid) || ' ' || max(uid) FROM"
				" message m JOIN folder f ON f.id = m.folder_id"
				" WHERE f.name = 'Big' AND m.has_body"),
			 "6 1 6");
	ck_assert_str_eq(qs(cs, "SELECT uidnext FROM folder WHERE name = 'Big'"), "7");
	free(fetch1);
	free(fetch2);
	cpmsync_store_close(cs);
}

START_TEST(test_store_full_undoes_to_mark_every)
{
	store_full_undoes_to_mark(3, -1);
}
END_TEST

START_TEST(test_store_full_undoes_to_mark_bytes)
{
	store_full_undoes_to_mark(1000, 150000);
}
END_TEST

/*
 * No new message is kept (the mark before the batch's first, INBOX's:
 * every 1,000 messages, the check of the room off): the notice says so,
 * not "the 0 new messages stored whole before are kept", and no folder
 * counts as synced (INBOX's state, written after the mark, is undone).
 */
START_TEST(test_store_full_keeps_none)
{
	char *fetch1 = big_messages(1, 4, NULL);
	const struct script_step script[] = {
		BIG_LOGIN,
		{ SCRIPT_EXPECT, "a3 SELECT INBOX" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 3] v\r\n* OK [UIDNEXT 2] n\r\n"
			       "a3 OK [READ-WRITE] selected\r\n" },
		BIG_FETCH("a4", "1:*"),
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00"
			       " +0000\" RFC822.SIZE 21 BODY[] {21}\r\nMessage-ID: <i@x>\r\n\r\n)"
			       "\r\na4 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a5 SELECT Big" },
		{ SCRIPT_SEND, "* 6 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\n* OK [UIDNEXT 7] n\r\n"
			       "a5 OK [READ-WRITE] selected\r\n" },
		BIG_FETCH("a6", "1:*"),
		{ SCRIPT_SEND, fetch1 },
		{ SCRIPT_STALL, NULL },
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	exec(cs, "INSERT INTO account (name) VALUES ('t')");
	mark_every = 1000;
	mark_room_check = false;
	notice_log[0] = '\0';
	cpmsync_log_set_handler(CPMSYNC_LOG_DEBUG, CPMSYNC_LOG_CAT_ALL, capture_notice, NULL);
	res = run_limited(cs, script, 350000);
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
	mark_every = -1;
	mark_room_check = true;
	ck_assert_int_eq(res.r, -EFBIG);
	ck_assert_str_eq(notice_log,
			 "t: no room in the store: no new message of this run could be kept\n");
	ck_assert_uint_eq(res.stats.messages_added, 0);
	ck_assert_uint_eq(res.stats.folders_synced, 0);
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM message"), "0");
	free(fetch1);
	cpmsync_store_close(cs);
}
END_TEST

/*
 * sync_bodies = all and a message over the 256 MiB literal cap: only its
 * first 256 MiB are asked for (BODY.PEEK[]<0.268435456>), and what comes
 * (here cut much shorter, as a server may) is shorter than its
 * RFC822.SIZE: no body is kept, but its row, flags and summary are, and
 * the run goes on (before, BODY.PEEK[] brought a literal over the cap,
 * which dropped the connection in every run).
 */
START_TEST(test_new_message_body_over_cap)
{
	static const struct script_step script[] = {
		INBOX_SELECTED("2", "3"),
		{ SCRIPT_EXPECT, "a4 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE "
				 "BODY.PEEK[]<0.268435456>)" },
		{ SCRIPT_SEND,
		  "* 1 FETCH (UID 1 FLAGS (\\Flagged) INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" "
		  "RFC822.SIZE 300000000 BODY[]<0> {40}\r\nMessage-ID: <big@x>\r\nSubject: "
		  "huge\r\n\r\nxx)\r\n"
		  "* 2 FETCH (UID 2 FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" "
		  "RFC822.SIZE 24 BODY[]<0> {24}\r\nMessage-ID: <n@x>\r\n\r\nbye)\r\n"
		  "a4 OK fetched\r\n" },
		SCRIPT_LOGOUT("a5"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	sync_bodies = CPMSYNC_SYNC_BODIES_ALL;
	res = run(cs, script);
	sync_bodies = CPMSYNC_SYNC_BODIES_NONE;
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_uint_eq(res.stats.messages_added, 2);
	ck_assert_str_eq(qs(cs,
			    "SELECT group_concat(uid || ' ' || message_id || ' ' || size || ' '"
			    " || has_body || ' ' || flags || ' ' || coalesce(subject, '-'), ',')"
			    " FROM (SELECT * FROM message m JOIN message_state USING (id)"
			    " LEFT JOIN summary USING (id) ORDER BY uid)"),
			 "1 <big@x> 300000000 0 \\Flagged huge,2 <n@x> 24 1  ");
	ck_assert_str_eq(qs(cs, "SELECT group_concat(m.uid) FROM message m"
				" JOIN body_inline b ON b.message_id = m.id"),
			 "2");
	ck_assert_str_eq(qs(cs, "SELECT uidnext FROM folder WHERE name = 'INBOX'"), "3");
	cpmsync_store_close(cs);
}
END_TEST

/* A sync_bodies = all run whose one new message, UID 14, has a body of
 * size bytes, expected to fail at it; returns the result. */
static struct sync_result run_one_body(struct cpmsync_store *cs, size_t size)
{
	static const char head[] = "Message-ID: <big@x>\r\n\r\n";
	char *fetch = malloc(size + 512);
	const struct script_step script[] = {
		INBOX_SELECTED("1", "15"),
		{ SCRIPT_EXPECT, "a4 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE "
				 "BODY.PEEK[]<0.268435456>)" },
		{ SCRIPT_SEND, fetch },
		{ SCRIPT_STALL, NULL }, /* a failed store ends the run at once */
	};
	struct sync_result res;
	int n;

	ck_assert_ptr_nonnull(fetch);
	n = snprintf(fetch, 512,
		     "* 1 FETCH (UID 14 FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" "
		     "RFC822.SIZE %zu BODY[] {%zu}\r\n%s",
		     size, size, head);
	ck_assert(n > 0 && n < 512 - 32);
	memset(fetch + n, 'x', size - strlen(head));
	n += (int)(size - strlen(head));
	strcpy(fetch + n, ")\r\na4 OK fetched\r\n");
	sync_bodies = CPMSYNC_SYNC_BODIES_ALL;
	res = run(cs, script);
	sync_bodies = CPMSYNC_SYNC_BODIES_NONE;
	free(fetch);
	return res;
}

/*
 * A body that cannot be stored fails the run with the store's reason,
 * which names the file (issue: "storing the body of UID 14: Permission
 * denied", the pack's path dropped).  Here the packs' directory is a
 * plain file, so the pack cannot be made in it (ENOTDIR, not a matter of
 * mode bits, which root passes).
 */
START_TEST(test_body_store_failure_names_file)
{
	struct cpmsync_store *cs = open_store();
	char packs[sizeof(dbpath) + 16], want[256];
	struct sync_result res;
	FILE *f;

	snprintf(packs, sizeof(packs), "%s-packs", dbpath);
	f = fopen(packs, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fclose(f), 0);
	res = run_one_body(cs, STORE_BODY_INLINE_MAX + 100);
	ck_assert_int_eq(res.r, -ENOTDIR);
	snprintf(want, sizeof(want), "storing the body of UID 14: making %s/1: %s", packs,
		 strerror(ENOTDIR));
	ck_assert_str_eq(res.reason, want);
	cpmsync_store_close(cs);
}
END_TEST

/*
 * The same when the temporary file a body over ENGINE_BODY_MEM_MAX is
 * received into cannot be made: the reason names its directory (TMPDIR),
 * here a plain file.
 */
START_TEST(test_body_tmpfile_failure_names_dir)
{
	struct cpmsync_store *cs = open_store();
	char tmp[sizeof(tmpdir) + 16], want[256];
	struct sync_result res;
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s/notadir", tmpdir);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(setenv("TMPDIR", tmp, 1), 0);
	res = run_one_body(cs, ENGINE_BODY_MEM_MAX + 100);
	ck_assert_int_eq(unsetenv("TMPDIR"), 0);
	ck_assert_int_eq(res.r, -ENOTDIR);
	snprintf(want, sizeof(want), "storing the body of UID 14: a temporary file in %s: %s", tmp,
		 strerror(ENOTDIR));
	ck_assert_str_eq(res.reason, want);
	cpmsync_store_close(cs);
}
END_TEST

static int count_commit(void *userdata)
{
	(*(unsigned *)userdata)++;
	return 0; /* go on with the commit */
}

/* Three new folders of one message each: the commands of a full run. */
#define THREE_FOLDERS_FETCH(tag, uid)                                                              \
	{ SCRIPT_EXPECT, tag " UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE "   \
			     "BODY.PEEK[HEADER])" },                                               \
	{                                                                                          \
		SCRIPT_SEND,                                                                       \
			"* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" "   \
			"RFC822.SIZE 10 BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL \"7bit\" 2 " \
			"1) BODY[HEADER] {21}\r\nMessage-ID: <" uid "@x>\r\n\r\n)\r\n" tag         \
			" OK fetched\r\n"                                                          \
	}
#define THREE_FOLDERS_SELECT(tag, name)                                                            \
	{ SCRIPT_EXPECT, tag " SELECT " name },                                                    \
	{                                                                                          \
		SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 3] v\r\n* OK [UIDNEXT 2] n\r\n" tag  \
			     " OK [READ-WRITE] selected\r\n"                                       \
	}

/* Removes the closed store's files: the next open_store() starts from no
 * store at all. */
static void remove_store(void)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-bodies", "-bodies-journal" };
	char path[sizeof(dbpath) + 16];

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", dbpath, suffix[i]);
		unlink(path);
	}
}

/* A full run over three new folders with e->batch_ms ms, the commits
 * counted; each folder must end with its message and its state. */
static unsigned three_folders_commits(int64_t ms)
{
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE] ready\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" A\r\n* LIST () \"/\" B\r\n* LIST () \"/\" INBOX\r\n"
			       "a2 OK listed\r\n" },
		/* INBOX first (engine.c queue_inbox_first()), then by name. */
		THREE_FOLDERS_SELECT("a3", "INBOX"),
		THREE_FOLDERS_FETCH("a4", "i"),
		THREE_FOLDERS_SELECT("a5", "A"),
		THREE_FOLDERS_FETCH("a6", "a"),
		THREE_FOLDERS_SELECT("a7", "B"),
		THREE_FOLDERS_FETCH("a8", "b"),
		SCRIPT_LOGOUT("a9"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;
	unsigned n = 0;

	sqlite3_commit_hook(store_db(store_from_public(cs)), count_commit, &n);
	batch_ms = ms;
	res = run(cs, script);
	batch_ms = -1;
	sqlite3_commit_hook(store_db(store_from_public(cs)), NULL, NULL);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_str_eq(qs(cs,
			    "SELECT group_concat(x, ',') FROM (SELECT f.name || ' ' || f.uidnext"
			    " || ' ' || m.message_id AS x FROM folder f JOIN message m"
			    " ON m.folder_id = f.id ORDER BY f.name)"),
			 "A 2 <a@x>,B 2 <b@x>,INBOX 2 <i@x>");
	cpmsync_store_close(cs);
	remove_store();
	return n;
}

/* The first run of the flaky-LIST tests: INBOX, A and B, one message
 * each (ids i, a, b), from scratch. */
static void three_folders_synced(struct cpmsync_store *cs)
{
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE] ready\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" A\r\n* LIST () \"/\" B\r\n* LIST () \"/\" INBOX\r\n"
			       "a2 OK listed\r\n" },
		THREE_FOLDERS_SELECT("a3", "INBOX"),
		THREE_FOLDERS_FETCH("a4", "i"),
		THREE_FOLDERS_SELECT("a5", "A"),
		THREE_FOLDERS_FETCH("a6", "a"),
		THREE_FOLDERS_SELECT("a7", "B"),
		THREE_FOLDERS_FETCH("a8", "b"),
		SCRIPT_LOGOUT("a9"),
	};
	struct sync_result res = run(cs, script);

	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
}

/* The messages of three_folders_synced()'s store: "folder id message-id,...". */
#define FOLDER_MESSAGES                                                                            \
	"SELECT group_concat(x, ',') FROM (SELECT f.name || ' ' || m.id || ' ' ||"                 \
	" m.message_id AS x FROM folder f JOIN message m ON m.folder_id = f.id"                    \
	" ORDER BY f.name)"

/* A second run's SELECT of a folder of three_folders_synced() with
 * nothing new: its SELECT (tag), the check of the newest UID held on a
 * new connection (next, engine-ident.c), its flags (last). */
#define THREE_FOLDERS_AGAIN(tag, next, last, name)                                                 \
	THREE_FOLDERS_SELECT(tag, name),                                                           \
		{ SCRIPT_EXPECT, next " UID FETCH 1 (UID RFC822.SIZE INTERNALDATE)" },             \
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 RFC822.SIZE 10 INTERNALDATE \"01-Jan-2026 "       \
			       "00:00:00 +0000\")\r\n" next " OK fetched\r\n" },                   \
		{ SCRIPT_EXPECT, last " UID FETCH 1:1 (UID FLAGS)" },                              \
	{                                                                                          \
		SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS ())\r\n" last " OK fetched\r\n"               \
	}

START_TEST(test_list_missing_folders_asked_again)
{
	/* Dovecot, its mailbox list index corrupted, answered one LIST with
	 * INBOX alone: A and B, which hold messages here, are not removed
	 * on that word.  The LIST is sent again; it lists them, so they
	 * stay with their messages under the same ids (no MessagesRemoved,
	 * nothing fetched again). */
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE] ready\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\na2 OK listed\r\n" },
		{ SCRIPT_EXPECT, "a3 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" A\r\n* LIST () \"/\" B\r\n* LIST () \"/\" INBOX\r\n"
			       "a3 OK listed\r\n" },
		THREE_FOLDERS_AGAIN("a4", "a5", "a6", "INBOX"),
		THREE_FOLDERS_AGAIN("a7", "a8", "a9", "A"),
		THREE_FOLDERS_AGAIN("a10", "a11", "a12", "B"),
		SCRIPT_LOGOUT("a13"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;
	char before[256];

	three_folders_synced(cs);
	snprintf(before, sizeof(before), "%s", qs(cs, FOLDER_MESSAGES));
	ck_assert_str_eq(before, "A 2 <a@x>,B 3 <b@x>,INBOX 1 <i@x>");
	res = run(cs, script);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_str_eq(qs(cs, FOLDER_MESSAGES), before);
	ck_assert_uint_eq(res.stats.messages_removed, 0);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_list_missing_folder_gone_twice)
{
	/* B, deleted by another client, is missing from the second LIST
	 * too: removed in this run, as before; A, missing from the first
	 * answer only, is kept. */
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE] ready\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\na2 OK listed\r\n" },
		{ SCRIPT_EXPECT, "a3 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" A\r\n* LIST () \"/\" INBOX\r\na3 OK listed\r\n" },
		THREE_FOLDERS_AGAIN("a4", "a5", "a6", "INBOX"),
		THREE_FOLDERS_AGAIN("a7", "a8", "a9", "A"),
		SCRIPT_LOGOUT("a10"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	three_folders_synced(cs);
	res = run(cs, script);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_str_eq(qs(cs, FOLDER_MESSAGES), "A 2 <a@x>,INBOX 1 <i@x>");
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM folder WHERE name = 'B'"), "0");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_folders_share_a_commit)
{
	/* Any prefix of the engine's writes is safe, so folders synced
	 * within ENGINE_BATCH_MS of the batch's start share its commit (each
	 * commit rewrote the pages it touched: many small folders, as a CPM
	 * account has, paid for it).  With 0 ms every folder's end commits,
	 * as before. */
	unsigned shared = three_folders_commits(INT64_MAX / 2);
	unsigned each = three_folders_commits(0);

	ck_assert_msg(each >= shared + 2,
		      "%u commits with a commit at each folder's end, %u shared", each, shared);
}
END_TEST

/* A connection that ends in the middle of a folder's new messages, long
 * before ENGINE_BATCH_ROWS or ENGINE_BATCH_BYTES, cut (bad: false) or
 * after bytes that cannot be parsed (bad: true), with the batch's time
 * bound ms (e->batch_max_ms; -1: the engine's); the messages stored. */
static const char *cut_mid_fetch(int64_t ms, bool bad)
{
#define CUT_MSG(n)                                                                                 \
	"* " #n " FETCH (UID " #n " FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" "         \
	"RFC822.SIZE 10 BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL \"7bit\" 2 1) "              \
	"BODY[HEADER] {21}\r\nMessage-ID: <" #n "@x>\r\n\r\n)\r\n"
#define CUT_START                                                                                  \
	INBOX_SELECTED("3", "4"),                                                                  \
		{ SCRIPT_EXPECT, "a4 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE "           \
				 "BODYSTRUCTURE BODY.PEEK[HEADER])" },                             \
		{ SCRIPT_SEND, CUT_MSG(1) CUT_MSG(2) },                                            \
	{                                                                                          \
		SCRIPT_SLEEP, "50"                                                                 \
	}
	static const struct script_step cut[] = { CUT_START, { SCRIPT_CLOSE, NULL } };
	static const struct script_step garbage[] = {
		CUT_START,
		{ SCRIPT_SEND, "* 3 FETCH (UID 3 FLAGS (\r\n" },
		{ SCRIPT_STALL, NULL },
	};
#undef CUT_START
#undef CUT_MSG
	struct cpmsync_store *cs = open_store();
	struct sync_result res;
	static char kept[64];

	batch_max_ms = ms;
	res = run(cs, bad ? garbage : cut);
	batch_max_ms = -1;
	ck_assert_int_eq(res.r, bad ? -CPMSYNC_E_PROTOCOL : -CPMSYNC_E_DISCONNECTED);
	snprintf(kept, sizeof(kept), "%s",
		 qs(cs, "SELECT coalesce(group_concat(uid, ','), '') FROM"
			" (SELECT uid FROM message ORDER BY uid)"));
	/* UIDNEXT is not recorded before the folder's end: the next run
	 * fetches from 3 (the largest UID stored + 1) or from 1. */
	ck_assert_str_eq(
		qs(cs, "SELECT coalesce((SELECT uidnext FROM folder WHERE name = 'INBOX'), 0)"),
		"0");
	cpmsync_store_close(cs);
	remove_store();
	return kept;
}

START_TEST(test_cut_mid_folder_keeps_what_came)
{
	/* Cut: what came is kept at once, within the engine's 2 s too (a
	 * link cut every few MB lost it at each try on loopback). */
	ck_assert_str_eq(cut_mid_fetch(-1, false), "1,2");
	ck_assert_str_eq(cut_mid_fetch(0, false), "1,2");
	/* Bytes that cannot be parsed: the open batch is rolled back; with
	 * 0 ms every message row had committed, as a fetch longer than 2 s
	 * does. */
	ck_assert_str_eq(cut_mid_fetch(-1, true), "");
	ck_assert_str_eq(cut_mid_fetch(0, true), "1,2");
}
END_TEST

static char warnings[2048];
static unsigned n_warnings;

static void capture_warning(int level, unsigned category, const char *msg, void *userdata)
{
	size_t n = strlen(warnings);

	(void)category;
	(void)userdata;
	if (level > CPMSYNC_LOG_WARNING || !strstr(msg, "skipping folder"))
		return;
	n_warnings++;
	snprintf(warnings + n, sizeof(warnings) - n, "%s\n", msg);
}

START_TEST(test_refused_name_warned_once)
{
	/* A folder whose name has a control character is not stored, and is
	 * warned about at the first sync only (it used to be warned at every
	 * sync run, so once a minute in the log for as long as it exists);
	 * another refused name is warned about once too, and so is INBOX,
	 * whose SELECT each run has refused (it was warned at each). */
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE] ready\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" \"Bad\x1b[2J\"\r\n* LIST () \"/\" INBOX\r\n"
			       "a2 OK listed\r\n" },
		{ SCRIPT_EXPECT, "a3 SELECT INBOX" },
		{ SCRIPT_SEND, "a3 NO [NONEXISTENT] gone\r\n" },
		SCRIPT_LOGOUT("a4"),
	};
	static const struct script_step script2[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE] ready\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" \"Bad\x1b[2J\"\r\n"
			       "* LIST () \"/\" Bidi&IC4-\r\n* LIST () \"/\" Esc&ABs-\r\n"
			       "* LIST () \"/\" INBOX\r\n"
			       "a2 OK listed\r\n" },
		{ SCRIPT_EXPECT, "a3 SELECT INBOX" },
		{ SCRIPT_SEND, "a3 NO [NONEXISTENT] gone\r\n" },
		SCRIPT_LOGOUT("a4"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	warnings[0] = '\0';
	n_warnings = 0;
	cpmsync_log_set_handler(CPMSYNC_LOG_DEBUG, CPMSYNC_LOG_CAT_ALL, capture_warning, NULL);
	res = run(cs, script);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	res = run(cs, script);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	res = run(cs, script2);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
	ck_assert_str_eq(
		warnings,
		"t: skipping folder \"Bad\\x1b[2J\": its name cannot be read (not "
		"modified UTF-7, or UTF-8 under UTF8=ACCEPT, or an empty level) (warned "
		"once while the store is open)\n"
		"t: skipping folder INBOX: the server refuses to select it: [NONEXISTENT] "
		"gone (warned once while the store is open)\n"
		"t: skipping folder \"Bidi&IC4-\": its name has a control or bidirectional "
		"formatting character (warned once while the store is open)\n"
		"t: skipping folder \"Esc&ABs-\": its name has a control or bidirectional "
		"formatting character (warned once while the store is open)\n");
	ck_assert_uint_eq(n_warnings, 4);
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM folder WHERE name LIKE 'B%'"), "0");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_many_rows_without_io)
{
	/* 50,000 journal rows whose messages are gone finish without a
	 * command each: the replay must not recurse once per row. */
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE] ready\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "a2 OK listed\r\n" },
		SCRIPT_LOGOUT("a3"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	exec(cs, "INSERT INTO account (name) VALUES ('t');"
		 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)"
		 " INSERT INTO journal (account_id, op, message_id) SELECT 1, 'append', i FROM n;");
	res = run(cs, script);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_uint_eq(res.stats.ops_replayed, 50000);
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM journal"), "0");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_only_one_folder)
{
	/* The push fast path (news in IDLE for INBOX): no LIST, INBOX alone
	 * through the normal QRESYNC SELECT and UID FETCH of what is new;
	 * the other folder is left as it was. */
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 LITERAL+ ENABLE QRESYNC] ready\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1 ENABLE QRESYNC CONDSTORE LIST-STATUS] "
			       "in\r\n" },
		{ SCRIPT_EXPECT, "a2 ENABLE QRESYNC" },
		{ SCRIPT_SEND, "* ENABLED QRESYNC\r\na2 OK enabled\r\n" },
		{ SCRIPT_EXPECT, "a3 SELECT INBOX (QRESYNC (7 100 1))" },
		{ SCRIPT_SEND, "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 3] n\r\n"
			       "* OK [HIGHESTMODSEQ 101] h\r\na3 OK [READ-WRITE] selected\r\n" },
		/* No STATUS told of news: the check of the newest UID held
		 * (engine-ident.c) once the SELECT has. */
		{ SCRIPT_EXPECT, "a4 UID FETCH 1 (UID RFC822.SIZE INTERNALDATE)" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 RFC822.SIZE 10)\r\na4 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a5 UID FETCH 2:* (UID FLAGS " },
		{ SCRIPT_SEND,
		  "* 2 FETCH (UID 2 FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" "
		  "RFC822.SIZE 10 MODSEQ (101) BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL "
		  "\"7bit\" 2 1) BODY[HEADER] {21}\r\nMessage-ID: <n@x>\r\n\r\n)\r\n"
		  "a5 OK fetched\r\n" },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	exec(cs, "INSERT INTO account (name) VALUES ('t');"
		 "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext,"
		 " highestmodseq) VALUES (1, 'INBOX', 'INBOX', 7, 2, 100),"
		 " (1, 'Other', 'Other', 9, 5, 10);"
		 "INSERT INTO message (folder_id, uid, size) VALUES (1, 1, 10);"
		 "INSERT INTO message_state (id, flags, server_flags, modseq)"
		 " VALUES (1, '\\Seen', '\\Seen', 100);");
	res = run_only(cs, script, 1);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_uint_eq(res.stats.folders_synced, 1);
	ck_assert_uint_eq(res.stats.messages_added, 1);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid || ' ' || message_id, ',') FROM message"
				" WHERE message_id IS NOT NULL"),
			 "2 <n@x>");
	ck_assert_str_eq(qs(cs, "SELECT group_concat(name || ' ' || uidnext || ' ' ||"
				" highestmodseq, ',') FROM folder ORDER BY id"),
			 "INBOX 3 101,Other 5 10");
	cpmsync_store_close(cs);
}
END_TEST

/* INBOX synced (UIDVALIDITY 7, UIDNEXT 3, HIGHESTMODSEQ 100): UID 1 \Seen,
 * UID 2 without flags. */
static void selected_fixture(struct cpmsync_store *cs)
{
	exec(cs, "INSERT INTO account (name) VALUES ('t');"
		 "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext,"
		 " highestmodseq) VALUES (1, 'INBOX', 'INBOX', 7, 3, 100);"
		 "INSERT INTO message (folder_id, uid, size, message_id)"
		 " VALUES (1, 1, 10, '<a@x>'), (1, 2, 10, '<b@x>');"
		 "INSERT INTO message_state (id, flags, server_flags, modseq)"
		 " VALUES (1, '\\Seen', '\\Seen', 90), (2, '', '', 100);");
}

/* A store with selected_fixture(), and a run_selected() of its INBOX
 * (folder 1) against script, which must succeed.  *ret_cs stays open for
 * the checks: the caller closes it. */
static struct selected_run run_selected_vanished(const struct script_step *script,
						 uint32_t uidvalidity, uint32_t exists,
						 const struct rangeset *vanished,
						 struct cpmsync_store **ret_cs)
{
	struct cpmsync_store *cs = open_store();
	struct selected_run sr;

	selected_fixture(cs);
	sr = run_selected(cs, script, 1, uidvalidity, exists, vanished);
	ck_assert_msg(sr.res.r == 0, "%d %s", sr.res.r, sr.res.reason);
	*ret_cs = cs;
	return sr;
}

static struct selected_run run_selected_ok(const struct script_step *script, uint32_t uidvalidity,
					   uint32_t exists, struct cpmsync_store **ret_cs)
{
	return run_selected_vanished(script, uidvalidity, exists, NULL, ret_cs);
}

/* run_selected_vanished() after an IDLE in which the server reported UID 2
 * gone (the session counting 1 message). */
static struct selected_run run_selected_uid2_gone(const struct script_step *script,
						  uint32_t uidvalidity,
						  struct cpmsync_store **ret_cs)
{
	struct rangeset v = RANGESET_INIT;
	struct selected_run sr;

	ck_assert_int_eq(rangeset_add(&v, 2), 0);
	sr = run_selected_vanished(script, uidvalidity, 1, &v, ret_cs);
	rangeset_free(&v);
	return sr;
}

/* The run removed UID 2 once (the store holds UID 1) and left the folder
 * current (state 1) with the 1 message the server counts. */
static void check_uid2_removed_once(const struct selected_run *sr, struct cpmsync_store *cs)
{
	ck_assert_uint_eq(sr->res.stats.messages_removed, 1);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid, ',') FROM message"), "1");
	ck_assert_int_eq(sr->state, 1);
	ck_assert_uint_eq(sr->exists, 1);
}

#define SELECTED_LOGIN                                                                             \
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 LITERAL+ ENABLE QRESYNC] ready\r\n" },          \
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },                                              \
		{ SCRIPT_SEND,                                                                     \
		  "a1 OK [CAPABILITY IMAP4rev1 ENABLE QRESYNC CONDSTORE LIST-STATUS] "             \
		  "in\r\n" },                                                                      \
		{ SCRIPT_EXPECT, "a2 ENABLE QRESYNC" },                                            \
	{                                                                                          \
		SCRIPT_SEND, "* ENABLED QRESYNC\r\na2 OK enabled\r\n"                              \
	}

/* The UID FETCHes of a run without SELECT: the check of the folder on a
 * new connection (engine-ident.c: the newest UID the store holds, 2),
 * then the new messages, then the changes since HIGHESTMODSEQ 100 with
 * VANISHED. */
#define SELECTED_FETCHES                                                                           \
	{ SCRIPT_EXPECT, "a3 UID FETCH 2 (UID RFC822.SIZE INTERNALDATE)" },                        \
		{ SCRIPT_EXPECT, "a4 UID FETCH 3:* (UID FLAGS " },                                 \
	{                                                                                          \
		SCRIPT_EXPECT, "a5 UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE 100 VANISHED)"          \
	}

/* The SELECT of the fall-back path, the server's INBOX as stored. */
#define SELECTED_RESELECT                                                                          \
	{ SCRIPT_EXPECT, "a3 SELECT INBOX (QRESYNC (7 100 1:2))" },                                \
	{                                                                                          \
		SCRIPT_SEND, "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 3] n\r\n"      \
			     "* OK [HIGHESTMODSEQ 100] h\r\na3 OK [READ-WRITE] selected\r\n"       \
	}

/* The check's answers: UID 2 as the store has it (RFC822.SIZE 10), or
 * gone (another client expunged it during IDLE). */
#define SELECTED_CHECKED    "* 2 FETCH (UID 2 RFC822.SIZE 10)\r\na3 OK fetched\r\n"
#define SELECTED_CHECK_GONE "a3 OK fetched\r\n"

#define SELECTED_NEW3                                                                              \
	"* 2 FETCH (UID 3 FLAGS () INTERNALDATE \"01-Jan-2026 00:00:00 +0000\" RFC822.SIZE 10 "    \
	"MODSEQ (103) BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL \"7bit\" 2 1) BODY[HEADER] "   \
	"{21}\r\nMessage-ID: <n@x>\r\n\r\n)\r\n"

START_TEST(test_sync_selected_no_select)
{
	/* News in IDLE on the selected INBOX (another client expunged UID 2,
	 * flagged UID 1, delivered UID 3: EXISTS 3, VANISHED 2: 2 messages):
	 * no SELECT; the two UID FETCHes pipelined (both read before any
	 * answer); HIGHESTMODSEQ the largest MODSEQ of the CHANGEDSINCE
	 * answer; an unsolicited FETCH while the new messages are fetched is
	 * applied as flags. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		{ SCRIPT_EXPECT, "a3 UID FETCH 2 (UID RFC822.SIZE INTERNALDATE)" },
		{ SCRIPT_EXPECT, "a4 UID FETCH 3:* (UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ "
				 "BODYSTRUCTURE BODY.PEEK[HEADER])" },
		{ SCRIPT_EXPECT, "a5 UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE 100 VANISHED)" },
		{ SCRIPT_SEND, SELECTED_CHECKED
		  "* 1 FETCH (UID 1 FLAGS (\\Seen \\Answered) MODSEQ (101))\r\n" SELECTED_NEW3
		  "a4 OK fetched\r\n"
		  "* VANISHED (EARLIER) 2\r\n"
		  "* 1 FETCH (UID 1 FLAGS (\\Seen \\Flagged) MODSEQ (102))\r\n"
		  "* 2 FETCH (UID 3 FLAGS () MODSEQ (103))\r\n"
		  "a5 OK fetched\r\n" },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_selected_ok(script, 7, 2, &cs);

	ck_assert_uint_eq(sr.res.stats.folders_synced, 1);
	ck_assert_uint_eq(sr.res.stats.messages_added, 1);
	ck_assert_uint_eq(sr.res.stats.messages_removed, 1);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid || ' ' || server_flags || ' ' || modseq,"
				" ',') FROM (SELECT * FROM message JOIN message_state USING (id)"
				" WHERE uid IS NOT NULL ORDER BY uid)"),
			 "1 \\Flagged \\Seen 102,3  103");
	ck_assert_str_eq(qs(cs, "SELECT uidvalidity || ' ' || uidnext || ' ' || highestmodseq"
				" FROM folder"),
			 "7 4 103");
	ck_assert_int_eq(sr.state, 1);
	ck_assert_uint_eq(sr.exists, 2);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_expunge_only)
{
	/* Only an expunge (it carries no MODSEQ): HIGHESTMODSEQ stays what
	 * it was, never a guess above it. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_FETCHES,
		{ SCRIPT_SEND, SELECTED_CHECKED
		  "* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (90))\r\na4 OK fetched\r\n"
		  "* VANISHED (EARLIER) 2\r\na5 OK fetched\r\n" },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_selected_ok(script, 7, 1, &cs);

	check_uid2_removed_once(&sr, cs);
	ck_assert_str_eq(qs(cs, "SELECT uidnext || ' ' || highestmodseq FROM folder"), "3 100");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_news_during)
{
	/* UID 4 arrives after the FETCH of the new messages (EXISTS 4 during
	 * the CHANGEDSINCE one): the store holds 3 of 4, so the folder is to
	 * be SELECTed again (state 2); UIDNEXT stays below UID 4, so it is
	 * fetched then. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_FETCHES,
		{ SCRIPT_SEND,
		  SELECTED_CHECKED SELECTED_NEW3 "a4 OK fetched\r\n"
						 "* 4 EXISTS\r\n"
						 "* 3 FETCH (UID 3 FLAGS () MODSEQ (103))\r\n"
						 "* 4 FETCH (UID 4 FLAGS () MODSEQ (104))\r\n"
						 "a5 OK fetched\r\n" },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_selected_ok(script, 7, 3, &cs);

	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid, ',') FROM message"), "1,2,3");
	ck_assert_str_eq(qs(cs, "SELECT uidnext || ' ' || highestmodseq FROM folder"), "4 104");
	ck_assert_int_eq(sr.state, 2);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_news_after)
{
	/* VANISHED after the folder's sync (here during LOGOUT): counted;
	 * the folder stays current but is to be synced again (state 3),
	 * still without SELECT. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_FETCHES,
		{ SCRIPT_SEND, SELECTED_CHECKED "a4 OK fetched\r\na5 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a6 LOGOUT" },
		{ SCRIPT_SEND, "* VANISHED 1\r\n* BYE bye\r\na6 OK bye\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_selected_ok(script, 7, 2, &cs);

	/* (After LOGOUT nothing more is committed; a session's run has no
	 * LOGOUT, and the next run's CHANGEDSINCE reports it again.) */
	ck_assert_str_eq(qs(cs, "SELECT highestmodseq FROM folder"), "100");
	ck_assert_int_eq(sr.state, 3);
	ck_assert_uint_eq(sr.exists, 1);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_vanished_in_idle)
{
	/* Another client expunged UID 2 while we were in IDLE: the server
	 * told it then (VANISHED 2, counted by the session: 1 message), and,
	 * like Cyrus 3.6, not again in the CHANGEDSINCE VANISHED answer.  The
	 * run expunges it itself: the store holds the 1 the server counts, no
	 * SELECT (the script has none), current (state 1). */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_FETCHES,
		{ SCRIPT_SEND, SELECTED_CHECK_GONE
		  "* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (90))\r\na4 OK fetched\r\n"
		  "a5 OK fetched\r\n" },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_selected_uid2_gone(script, 7, &cs);

	check_uid2_removed_once(&sr, cs);
	ck_assert_str_eq(qs(cs, "SELECT uidnext || ' ' || highestmodseq FROM folder"), "3 100");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_vanished_folder_renamed)
{
	/* Cyrus 3.6, another client renamed the selected INBOX's folder (or
	 * one above it): IDLE reported all its messages VANISHED, and every
	 * command on it is answered NO.  A local call while the UID FETCHes
	 * are out commits what the run wrote so far: the two messages must
	 * not be among it (the server still has them, under the new name).
	 * Nothing removed; the run does not fail on the NO (that cost a
	 * reconnect): it goes on, on this connection, and tells the session
	 * the folder is gone (a full sync, whose LIST finds it). */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_FETCHES,
		{ SCRIPT_SLEEP, "200" },
		{ SCRIPT_SEND, "a3 NO Mailbox does not exist (0.000 sec)\r\n"
			       "a4 NO Mailbox does not exist (0.000 sec)\r\n"
			       "a5 NO Mailbox does not exist (0.000 sec)\r\n" },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs = open_store();
	struct rangeset v = RANGESET_INIT;
	struct selected_run sr;

	selected_fixture(cs);
	ck_assert_int_eq(rangeset_add_range(&v, 1, 2), 0);
	sr = run_selected_local_call(cs, script, 0, &v);
	rangeset_free(&v);
	ck_assert_msg(sr.res.r == 0, "%d %s", sr.res.r, sr.res.reason);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid, ',') FROM message"), "1,2");
	ck_assert_str_eq(qs(cs, "SELECT uidnext || ' ' || highestmodseq FROM folder"), "3 100");
	ck_assert_uint_eq(sr.res.stats.messages_removed, 0);
	ck_assert_uint_eq(sr.res.stats.folders_gone, 1);
	ck_assert_int_eq(sr.state, 0);
	cpmsync_store_close(cs);
}
END_TEST

/* selected_fixture() with folder 2, Other (UIDVALIDITY 9, empty), and a
 * message stored into it here (its APPEND waits in the journal). */
static void other_append_fixture(struct cpmsync_store *cs)
{
	static const char msg[] = "Message-ID: <local@x>\r\nSubject: mine\r\n\r\nlocal\r\n";

	selected_fixture(cs);
	exec(cs, "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext,"
		 " highestmodseq) VALUES (1, 'Other', 'Other', 9, 1, 1)");
	ck_assert_int_eq(
		cpmsync_op_store(cs, "t", "Other", msg, sizeof(msg) - 1, NULL, 1767225600, NULL),
		0);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(op, ',') FROM journal"), "append");
}

/* The run without SELECT of INBOX, current (no news), then the replay's
 * APPEND into Other, answered with "* VANISHED vanished" of INBOX, then
 * the UID FETCH of the first of them that asks INBOX whether it is still
 * there, answered by probe. */
#define VANISHED_WITH_APPEND(vanished, first, probe)                                               \
	SELECTED_LOGIN, SELECTED_FETCHES,                                                          \
		{ SCRIPT_SEND, SELECTED_CHECKED "a4 OK fetched\r\na5 OK fetched\r\n" },            \
		{ SCRIPT_EXPECT, "a6 APPEND Other () \"01-Jan-2026 00:00:00 +0000\" {47}" },       \
		{ SCRIPT_SEND, "+ go\r\n" }, { SCRIPT_EXPECT, "Message-ID: <local@x>" },           \
		{ SCRIPT_EXPECT, "Subject: mine" }, { SCRIPT_EXPECT, "" },                         \
		{ SCRIPT_EXPECT, "local" }, { SCRIPT_EXPECT, "" },                                 \
		{ SCRIPT_SEND, "* VANISHED " vanished "\r\na6 OK [APPENDUID 9 1] appended\r\n" },  \
		{ SCRIPT_EXPECT, "a7 UID FETCH " first " (UID)" }, { SCRIPT_SLEEP, "200" },        \
		{ SCRIPT_SEND, probe }, SCRIPT_LOGOUT("a8")

START_TEST(test_sync_selected_vanished_with_append)
{
	/* Cyrus 3.6, another client renamed INBOX's folder while the run
	 * replayed an APPEND into another folder: its answer carried the
	 * VANISHED of every message of the selected INBOX (not in IDLE: no
	 * run of news follows to prove anything).  A local call commits the
	 * run's batch before the server tells whether INBOX is still there:
	 * the two messages must not be in it.  Asked, INBOX refuses: nothing
	 * removed, the folder is gone for the session (a full sync). */
	static const struct script_step script[] = {
		VANISHED_WITH_APPEND("1:2", "1", "a7 NO Mailbox does not exist (0.000 sec)\r\n"),
	};
	struct cpmsync_store *cs = open_store();
	struct selected_run sr;

	other_append_fixture(cs);
	sr = run_selected_when(cs, script, 2, NULL, when_replayed);
	ck_assert_msg(sr.res.r == 0, "%d %s", sr.res.r, sr.res.reason);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid, ',') FROM message WHERE folder_id = 1"),
			 "1,2");
	ck_assert_uint_eq(sr.res.stats.messages_removed, 0);
	ck_assert_uint_eq(sr.res.stats.ops_replayed, 1);
	ck_assert_uint_eq(sr.res.stats.folders_gone, 1);
	ck_assert_int_eq(sr.state, 0);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_expunge_with_append)
{
	/* The same answer of the APPEND when another client expunged UID 2
	 * of INBOX: asked, INBOX answers OK, and UID 2 goes within the run. */
	static const struct script_step script[] = {
		VANISHED_WITH_APPEND("2", "2", "a7 OK fetched\r\n"),
	};
	struct cpmsync_store *cs = open_store();
	struct selected_run sr;

	other_append_fixture(cs);
	sr = run_selected_when(cs, script, 2, NULL, when_replayed);
	ck_assert_msg(sr.res.r == 0, "%d %s", sr.res.r, sr.res.reason);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid, ',') FROM message WHERE folder_id = 1"),
			 "1");
	ck_assert_uint_eq(sr.res.stats.messages_removed, 1);
	ck_assert_uint_eq(sr.res.stats.folders_gone, 0);
	ck_assert_int_eq(sr.state, 2); /* an APPEND replayed: SELECT it again */
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_vanished_local_call)
{
	/* The same local call when the folder is still there (another client
	 * expunged UID 2 during IDLE): the FETCH's OK, then UID 2 goes. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_FETCHES,
		{ SCRIPT_SLEEP, "200" },
		{ SCRIPT_SEND, SELECTED_CHECK_GONE "a4 OK fetched\r\na5 OK fetched\r\n" },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs = open_store();
	struct rangeset v = RANGESET_INIT;
	struct selected_run sr;

	selected_fixture(cs);
	ck_assert_int_eq(rangeset_add(&v, 2), 0);
	sr = run_selected_local_call(cs, script, 1, &v);
	rangeset_free(&v);
	ck_assert_msg(sr.res.r == 0, "%d %s", sr.res.r, sr.res.reason);
	ck_assert_uint_eq(sr.res.stats.messages_removed, 1);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid, ',') FROM message"), "1");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_vanished_twice)
{
	/* A server that reports the expunge again (Dovecot: VANISHED (EARLIER)
	 * in the CHANGEDSINCE answer): removed once, counted once. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_FETCHES,
		{ SCRIPT_SEND, SELECTED_CHECK_GONE
		  "a4 OK fetched\r\n* VANISHED (EARLIER) 2\r\na5 OK fetched\r\n" },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_selected_uid2_gone(script, 7, &cs);

	check_uid2_removed_once(&sr, cs);
	cpmsync_store_close(cs);
}
END_TEST

/*
 * engine-ident.c engine_ident_host(): the store's copy is of alice at
 * 127.0.0.1, and the settings now name alice at localhost (run_only()'s
 * account), nothing queued.  INBOX (UIDVALIDITY 7, UIDNEXT 3, HIGHESTMODSEQ
 * 100, MAILBOXID F-in) holds UID 1 (10 bytes, 14-Nov-2023 22:13:20) and
 * UID 2 (20 bytes, no date recorded).
 */
static void host_fixture(struct cpmsync_store *cs)
{
	exec(cs, "INSERT INTO account (name, server_host, server_user)"
		 " VALUES ('t', '127.0.0.1', 'alice');"
		 "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext,"
		 " highestmodseq, mailboxid) VALUES (1, 'INBOX', 'INBOX', 7, 3, 100, 'F-in');"
		 "INSERT INTO message (folder_id, uid, size, internaldate, message_id)"
		 " VALUES (1, 1, 10, 1700000000, '<a@x>'), (1, 2, 20, NULL, '<b@x>');"
		 "INSERT INTO message_state (id, flags, server_flags, modseq)"
		 " VALUES (1, '\\Seen', '\\Seen', 90), (2, '', '', 100);");
}

/* The log's notices that say what the host check decided. */
static char host_log[1024];

static void capture_host(int level, unsigned category, const char *msg, void *userdata)
{
	size_t n = strlen(host_log);

	(void)category;
	(void)userdata;
	if (level <= CPMSYNC_LOG_NOTICE && (strstr(msg, "new address") || strstr(msg, "dropped")))
		snprintf(host_log + n, sizeof(host_log) - n, "%s\n", msg);
}

/* Login, then the host check's SELECT of INBOX (answered with sel, tag
 * a3) and the FETCH of its oldest and newest UID (tag a4). */
#define HOST_CHECK(sel)                                                                            \
	{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE QRESYNC] ready\r\n" },                   \
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },                                              \
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1 ENABLE QRESYNC CONDSTORE] in\r\n" },   \
		{ SCRIPT_EXPECT, "a2 ENABLE QRESYNC" },                                            \
		{ SCRIPT_SEND, "* ENABLED QRESYNC\r\na2 OK enabled\r\n" },                         \
		{ SCRIPT_EXPECT, "a3 SELECT INBOX (CONDSTORE)" }, { SCRIPT_SEND, sel },            \
	{                                                                                          \
		SCRIPT_EXPECT, "a4 UID FETCH 1:2 (UID RFC822.SIZE INTERNALDATE)"                   \
	}

#define HOST_SELECTED                                                                              \
	"* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 3] n\r\n"                           \
	"* OK [HIGHESTMODSEQ 100] h\r\n* OK [MAILBOXID (F-in)] m\r\na3 OK [READ-WRITE] "           \
	"selected\r\n"

static struct sync_result run_host(struct cpmsync_store *cs, const struct script_step *script)
{
	struct sync_result res;

	host_log[0] = '\0';
	cpmsync_log_set_handler(CPMSYNC_LOG_DEBUG, CPMSYNC_LOG_CAT_ALL, capture_host, NULL);
	res = run(cs, script);
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
	return res;
}

START_TEST(test_host_same_server_kept)
{
	/* The same server under another name: INBOX shows its numbers and
	 * both messages as recorded; the copy stays (no message fetched
	 * again, the ids the same), the new host is recorded, and the pull
	 * finds nothing new. */
	static const struct script_step script[] = {
		HOST_CHECK(HOST_SELECTED),
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 RFC822.SIZE 10"
			       " INTERNALDATE \"14-Nov-2023 22:13:20 +0000\")\r\n"
			       "* 2 FETCH (UID 2 RFC822.SIZE 20)\r\na4 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a5 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST (\\HasNoChildren) \"/\" INBOX\r\na5 OK listed\r\n" },
		{ SCRIPT_EXPECT, "a6 STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)" },
		{ SCRIPT_SEND, "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7"
			       " HIGHESTMODSEQ 100)\r\na6 OK status\r\n" },
		SCRIPT_LOGOUT("a7"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	host_fixture(cs);
	res = run_host(cs, script);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_str_eq(host_log, "t: same server at the new address localhost: store kept (1"
				   " folder proven)\n");
	ck_assert_str_eq(qs(cs, "SELECT server_user || '@' || server_host FROM account"),
			 "alice@localhost");
	ck_assert_str_eq(qs(cs, "SELECT group_concat(id || ':' || uid, ',') FROM message"),
			 "1:1,2:2");
	ck_assert_uint_eq(res.stats.messages_added, 0);
	cpmsync_store_close(cs);
}
END_TEST

/* The copy dropped: the notices, the account now of localhost, no folder
 * or message of the old copy left (the run went on to LIST, where the
 * script closed the connection). */
static void check_host_dropped(struct cpmsync_store *cs, const struct sync_result *res,
			       const char *verdict, const char *why)
{
	char want[1024];

	ck_assert_int_eq(res->r, -CPMSYNC_E_DISCONNECTED);
	snprintf(want, sizeof(want),
		 "t: %s at the new address localhost: %s\n"
		 "t: the account now names alice@localhost, not alice@127.0.0.1: the local copy"
		 " of alice@127.0.0.1 is dropped (no local change waited for it), and synced"
		 " again\n",
		 verdict, why);
	ck_assert_str_eq(host_log, want);
	ck_assert_str_eq(qs(cs, "SELECT server_user || '@' || server_host FROM account"),
			 "alice@localhost");
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM folder"), "0");
	ck_assert_str_eq(qs(cs, "SELECT count(*) FROM message"), "0");
}

START_TEST(test_host_other_messages_dropped)
{
	/* Another server made from a copy of the first: the same
	 * UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and even MAILBOXID, but UID 2
	 * is another message there. */
	static const struct script_step script[] = {
		HOST_CHECK(HOST_SELECTED),
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 RFC822.SIZE 10"
			       " INTERNALDATE \"14-Nov-2023 22:13:20 +0000\")\r\n"
			       "* 2 FETCH (UID 2 RFC822.SIZE 530)\r\na4 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a5 LIST \"\" \"*\"" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	host_fixture(cs);
	res = run_host(cs, script);
	check_host_dropped(cs, &res, "a different server",
			   "its INBOX has UID 2, the store's <b@x>, as another message"
			   " (RFC822.SIZE 530, not 20; the same UIDVALIDITY 7)");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_host_uids_gone_dropped)
{
	/* Neither message there (expunged, or another server): nothing
	 * proves the copy, so it goes. */
	static const struct script_step script[] = {
		HOST_CHECK(HOST_SELECTED),
		{ SCRIPT_SEND, "a4 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a5 LIST \"\" \"*\"" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	host_fixture(cs);
	res = run_host(cs, script);
	check_host_dropped(cs, &res, "not shown to be the same server",
			   "its INBOX shows none of the store's UIDs 1 and 2 to compare");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_host_other_uidvalidity_dropped)
{
	/* Another UIDVALIDITY: no FETCH, the copy goes. */
	static const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1 ENABLE QRESYNC] ready\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice " },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1 ENABLE QRESYNC CONDSTORE] in\r\n" },
		{ SCRIPT_EXPECT, "a2 ENABLE QRESYNC" },
		{ SCRIPT_SEND, "* ENABLED QRESYNC\r\na2 OK enabled\r\n" },
		{ SCRIPT_EXPECT, "a3 SELECT INBOX (CONDSTORE)" },
		{ SCRIPT_SEND, "* 2 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 3] n\r\n"
			       "a3 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a4 LIST \"\" \"*\"" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	host_fixture(cs);
	res = run_host(cs, script);
	check_host_dropped(cs, &res, "not shown to be the same server",
			   "its INBOX is another folder (UIDVALIDITY changed)");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_host_queued_refused)
{
	/* A change queued for the old copy: not risked on a check, the run
	 * is refused before connecting, as for another user, and nothing
	 * is touched. */
	static const struct script_step script[] = {
		{ SCRIPT_EXPECT_EOF, NULL },
		{ SCRIPT_END, NULL },
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	host_fixture(cs);
	exec(cs, "INSERT INTO journal (account_id, op, folder_id, message_id)"
		 " VALUES (1, 'flags', 1, 1);");
	res = run_host(cs, script);
	ck_assert_int_eq(res.r, -CPMSYNC_E_CONFIG);
	ck_assert_str_eq(res.reason,
			 "the store holds the mail of alice@127.0.0.1 with 1 local change not yet"
			 " sent there, and the account's settings now name alice@localhost: set"
			 " host and user back to send them, or remove the account with D-Bus"
			 " Manager1.RemoveAccount to drop them (saved as files first; removing its"
			 " section from the configuration keeps them)");
	ck_assert_str_eq(host_log, "");
	ck_assert_str_eq(qs(cs, "SELECT count(*) || ' ' || server_host FROM message, account"
				" GROUP BY server_host"),
			 "2 127.0.0.1");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_other_server)
{
	/* After a reconnect the address reaches another server that shows
	 * the recorded UIDVALIDITY, HIGHESTMODSEQ and UIDNEXT (the pull saw
	 * nothing new and checked nothing), and push brings its news on the
	 * selected INBOX.  The fast path checks the newest UID the store
	 * holds (2) first, pipelined with its FETCHes: another size there
	 * fails the run with the account's error, and none of the news is
	 * kept, though the new message and a flag change came before the
	 * check's answer (Dovecot 2.3 interleaves pipelined FETCHes). */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_FETCHES,
		{ SCRIPT_SEND,
		  SELECTED_NEW3 "* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (101))\r\n"
				"* 2 FETCH (UID 2 RFC822.SIZE 530)\r\n"
				"a3 OK fetched\r\na4 OK fetched\r\na5 OK fetched\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct cpmsync_store *cs = open_store();
	struct selected_run sr;

	selected_fixture(cs);
	sr = run_selected(cs, script, 1, 7, 3, NULL);
	ck_assert_int_eq(sr.res.r, -CPMSYNC_E_CONFIG);
	ck_assert_str_eq(sr.res.reason,
			 "INBOX on this server is not the folder the store holds: its UID 2 is"
			 " another message than the store's <b@x> (RFC822.SIZE 530, not 10; the"
			 " same UIDVALIDITY 7): set the account back to the server that has it,"
			 " or remove the account with D-Bus Manager1.RemoveAccount and add it"
			 " again to sync this server's messages");
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid || ' ' || server_flags || ' ' || modseq,"
				" ',') FROM (SELECT * FROM message JOIN message_state USING (id)"
				" ORDER BY uid)"),
			 "1 \\Seen 90,2  100");
	ck_assert_str_eq(qs(cs, "SELECT uidnext || ' ' || highestmodseq FROM folder"), "3 100");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_check_answered_last)
{
	/* The same server: the check's answer is the last of the three (a
	 * server may finish pipelined commands out of order).  Nothing is
	 * committed and the folder's state is not written before it; then
	 * the run ends as without the check. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_FETCHES,
		{ SCRIPT_SEND, SELECTED_NEW3 "a4 OK fetched\r\n"
					     "* 2 FETCH (UID 3 FLAGS () MODSEQ (103))\r\n"
					     "a5 OK fetched\r\n" },
		{ SCRIPT_SLEEP, "100" },
		{ SCRIPT_SEND, SELECTED_CHECKED },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_selected_ok(script, 7, 3, &cs);

	ck_assert_uint_eq(sr.res.stats.messages_added, 1);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid, ',') FROM message ORDER BY uid"),
			 "1,2,3");
	ck_assert_str_eq(qs(cs, "SELECT uidnext || ' ' || highestmodseq FROM folder"), "4 103");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_other_server_answered_last)
{
	/* test_sync_selected_other_server() with the check answered last:
	 * the new message's FETCH (whose answer commits the new messages on
	 * the fast path) and the CHANGEDSINCE are answered first, yet
	 * nothing is committed before the check's answer, and then nothing
	 * at all. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_FETCHES,
		{ SCRIPT_SEND, SELECTED_NEW3 "a4 OK fetched\r\n"
					     "* 2 FETCH (UID 3 FLAGS () MODSEQ (103))\r\n"
					     "a5 OK fetched\r\n" },
		{ SCRIPT_SLEEP, "100" },
		{ SCRIPT_SEND, "* 2 FETCH (UID 2 RFC822.SIZE 530)\r\na3 OK fetched\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	struct cpmsync_store *cs = open_store();
	struct selected_run sr;

	selected_fixture(cs);
	sr = run_selected(cs, script, 1, 7, 3, NULL);
	ck_assert_int_eq(sr.res.r, -CPMSYNC_E_CONFIG);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid, ',') FROM message ORDER BY uid"), "1,2");
	ck_assert_str_eq(qs(cs, "SELECT uidnext || ' ' || highestmodseq FROM folder"), "3 100");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_vanished_other_uidvalidity)
{
	/* The UIDVALIDITY selected (8) is not the stored one (7): the UIDs
	 * the IDLE reported are not this store folder's; the SELECT path,
	 * which reports no expunge: UID 2 stays. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_RESELECT,
		SCRIPT_LOGOUT("a4"),
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_selected_uid2_gone(script, 8, &cs);

	ck_assert_uint_eq(sr.res.stats.messages_removed, 0);
	ck_assert_str_eq(qs(cs, "SELECT group_concat(uid, ',') FROM message"), "1,2");
	ck_assert_int_eq(sr.state, 0);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_sync_selected_falls_back)
{
	/* The UIDVALIDITY selected is not the stored one: the SELECT path
	 * (QRESYNC, identity checks), and no claim of a current folder. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		SELECTED_RESELECT,
		SCRIPT_LOGOUT("a4"),
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_selected_ok(script, 8, 2, &cs);

	ck_assert_uint_eq(sr.res.stats.folders_synced, 1);
	ck_assert_int_eq(sr.state, 0);
	cpmsync_store_close(cs);
}
END_TEST

/* A full run (LIST-STATUS) of selected_fixture()'s store after
 * engine_sync_keep_selected() of its INBOX (2 messages), against script. */
static struct selected_run run_kept(const struct script_step *script, struct cpmsync_store **ret_cs)
{
	struct cpmsync_account a = {
		.name = "t",
		.host = "localhost",
		.user = "alice",
		.security = CPMSYNC_SECURITY_NONE,
		.sync_bodies = CPMSYNC_SYNC_BODIES_NONE,
		.password_cb = password_cb,
		.connect_timeout_ms = 3000,
		.command_timeout_ms = 3000,
	};
	struct cpmsync_store *cs = open_store();
	struct cpmsync_loop *loop = NULL;
	struct script_peer peer;
	struct selected_run sr = { .state = -1 };

	selected_fixture(cs);
	ck_assert_int_eq(cpmsync_loop_new(&loop), 0);
	ck_assert_int_eq(script_peer_start(script, &peer), 0);
	ck_assert_int_eq(engine_sync_once_fd(loop, cs, &a, peer.fd, selected_cb, &sr, &sr.e), 0);
	engine_sync_keep_selected(sr.e, 1, 2);
	while (!sr.res.done)
		ck_assert_int_ge(cpmsync_loop_iterate(loop, 5000), 0);
	cpmsync_loop_free(loop);
	ck_assert_int_eq(script_peer_wait(&peer), 0);
	ck_assert_msg(sr.res.r == 0, "%d %s", sr.res.r, sr.res.reason);
	*ret_cs = cs;
	return sr;
}

#define KEPT_LIST                                                                                  \
	{ SCRIPT_EXPECT, "a3 LIST \"\" \"*\" RETURN (" },                                          \
	{                                                                                          \
		SCRIPT_SEND, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"                            \
			     "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7 HIGHESTMODSEQ "   \
			     "100)\r\n"                                                            \
	}

START_TEST(test_keep_selected_unchanged)
{
	/* A Sync() from IDLE with nothing new: the LIST-STATUS shows INBOX as
	 * stored, no SELECT, no news: still selected and current (1, its 2
	 * messages), so IDLE starts again without SELECT. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		KEPT_LIST,
		{ SCRIPT_SEND, "a3 OK listed\r\n" },
		SCRIPT_LOGOUT("a4"),
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_kept(script, &cs);

	ck_assert_uint_eq(sr.res.stats.folders_skipped, 1);
	ck_assert_int_eq(sr.state, 1);
	ck_assert_uint_eq(sr.exists, 2);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_keep_selected_news_during)
{
	/* The server tells news of the selected INBOX during the LIST (a
	 * message arrived after its STATUS): not current (0: SELECT again,
	 * which compares). */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		KEPT_LIST,
		{ SCRIPT_SEND, "* 3 EXISTS\r\na3 OK listed\r\n" },
		SCRIPT_LOGOUT("a4"),
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_kept(script, &cs);

	ck_assert_uint_eq(sr.res.stats.folders_skipped, 1);
	ck_assert_int_eq(sr.state, 0);
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_keep_selected_folder_changed)
{
	/* The LIST-STATUS shows INBOX changed: its sync SELECTs it (0). */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		{ SCRIPT_EXPECT, "a3 LIST \"\" \"*\" RETURN (" },
		{ SCRIPT_SEND, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
			       "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7 HIGHESTMODSEQ "
			       "101)\r\na3 OK listed\r\n" },
		{ SCRIPT_EXPECT, "a4 SELECT INBOX (QRESYNC (7 100 1:2))" },
		/* The check of the newest UID held, behind the SELECT. */
		{ SCRIPT_EXPECT, "a5 UID FETCH 2 (UID RFC822.SIZE INTERNALDATE)" },
		{ SCRIPT_SEND, "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 3] n\r\n"
			       "* OK [HIGHESTMODSEQ 101] h\r\n"
			       "* 1 FETCH (UID 1 FLAGS (\\Seen \\Flagged) MODSEQ (101))\r\n"
			       "a4 OK [READ-WRITE] selected\r\n"
			       "* 2 FETCH (UID 2 RFC822.SIZE 10)\r\na5 OK fetched\r\n" },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs;
	struct selected_run sr = run_kept(script, &cs);

	ck_assert_uint_eq(sr.res.stats.folders_synced, 1);
	ck_assert_int_eq(sr.state, 0);
	cpmsync_store_close(cs);
}
END_TEST

/* INBOX (UIDVALIDITY 7) and Work (UIDVALIDITY 8) synced (UIDNEXT 3,
 * HIGHESTMODSEQ 100), UIDs 1 and 2 each without flags. */
static void two_folders_fixture(struct cpmsync_store *cs)
{
	exec(cs, "INSERT INTO account (name) VALUES ('t');"
		 "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext,"
		 " highestmodseq) VALUES (1, 'INBOX', 'INBOX', 7, 3, 100),"
		 " (1, 'Work', 'Work', 8, 3, 100);"
		 "INSERT INTO message (folder_id, uid, size, message_id) VALUES"
		 " (1, 1, 10, '<a@x>'), (1, 2, 10, '<b@x>'),"
		 " (2, 1, 10, '<c@x>'), (2, 2, 10, '<d@x>');"
		 "INSERT INTO message_state (id, flags, server_flags, modseq) VALUES"
		 " (1, '', '', 100), (2, '', '', 100), (3, '', '', 100), (4, '', '', 100);");
}

START_TEST(test_select_news_before_closed)
{
	/* RFC 7162 3.2.11: another client expunged INBOX's UID 1 and flagged
	 * its UID 2 while we selected Work; the server tells it (VANISHED,
	 * FETCH) before the [CLOSED] of INBOX.  They are INBOX's, not Work's
	 * (whose UIDs 1 and 2 are other messages): Work keeps both, as they
	 * were, and takes its own FETCH after the [CLOSED]. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		{ SCRIPT_EXPECT, "a3 LIST \"\" \"*\" RETURN (" },
		{ SCRIPT_SEND, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
			       "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7 HIGHESTMODSEQ "
			       "101)\r\n"
			       "* LIST (\\HasNoChildren) \"/\" Work\r\n"
			       "* STATUS Work (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 8 HIGHESTMODSEQ "
			       "101)\r\na3 OK listed\r\n" },
		{ SCRIPT_EXPECT, "a4 SELECT INBOX (QRESYNC (7 100 1:2))" },
		{ SCRIPT_EXPECT, "a5 UID FETCH 2 (UID RFC822.SIZE INTERNALDATE)" },
		{ SCRIPT_SEND, "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 3] n\r\n"
			       "* OK [HIGHESTMODSEQ 101] h\r\n"
			       "* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (101))\r\n"
			       "a4 OK [READ-WRITE] selected\r\n"
			       "* 2 FETCH (UID 2 RFC822.SIZE 10)\r\na5 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a6 SELECT Work (QRESYNC (8 100 1:2))" },
		{ SCRIPT_EXPECT, "a7 UID FETCH 2 (UID RFC822.SIZE INTERNALDATE)" },
		{ SCRIPT_SEND, "* VANISHED 1\r\n"
			       "* 1 FETCH (UID 2 FLAGS (\\Deleted) MODSEQ (102))\r\n"
			       "* OK [CLOSED] previous mailbox closed\r\n"
			       "* 2 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 3] n\r\n"
			       "* OK [HIGHESTMODSEQ 101] h\r\n"
			       "* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (101))\r\n"
			       "a6 OK [READ-WRITE] selected\r\n"
			       "* 2 FETCH (UID 2 RFC822.SIZE 10)\r\na7 OK fetched\r\n" },
		SCRIPT_LOGOUT("a8"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	two_folders_fixture(cs);
	res = run(cs, script);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_uint_eq(res.stats.folders_synced, 2);
	ck_assert_uint_eq(res.stats.messages_removed, 0);
	ck_assert_str_eq(qs(cs,
			    "SELECT group_concat(folder_id || ' ' || uid || ' ' || server_flags,"
			    " ',') FROM (SELECT * FROM message JOIN message_state USING (id)"
			    " ORDER BY folder_id, uid)"),
			 "1 1 \\Seen,1 2 ,2 1 \\Flagged,2 2 ");
	/* Not past what INBOX's news is above: its next sync brings it. */
	ck_assert_str_eq(qs(cs, "SELECT group_concat(name || ' ' || highestmodseq, ',')"
				" FROM (SELECT * FROM folder ORDER BY id)"),
			 "INBOX 101,Work 101");
	cpmsync_store_close(cs);
}
END_TEST

START_TEST(test_replay_without_list_waits_for_list)
{
	/* A run without LIST (news by IDLE for INBOX) replays a flag change
	 * of Work, which another client renamed: its SELECT is refused
	 * ([NONEXISTENT], as Cyrus says it).  Only a LIST can tell where it
	 * went: the row stays queued as it was (no try counted, no back-off,
	 * no failed operation) for the full sync the session runs next. */
	static const struct script_step script[] = {
		SELECTED_LOGIN,
		/* engine-ident.c's check of Work, refused the same way */
		{ SCRIPT_EXPECT, "a3 SELECT Work (CONDSTORE)" },
		{ SCRIPT_SEND, "a3 NO [NONEXISTENT] Mailbox does not exist\r\n" },
		{ SCRIPT_EXPECT, "a4 SELECT INBOX (QRESYNC (7 100 1:2))" },
		{ SCRIPT_SEND, "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 3] n\r\n"
			       "* OK [HIGHESTMODSEQ 100] h\r\na4 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a5 SELECT Work (CONDSTORE)" },
		{ SCRIPT_SEND, "a5 NO [NONEXISTENT] Mailbox does not exist\r\n" },
		SCRIPT_LOGOUT("a6"),
	};
	struct cpmsync_store *cs = open_store();
	struct sync_result res;

	two_folders_fixture(cs);
	exec(cs, "UPDATE message_state SET flags = '\\Flagged' WHERE id = 3;"
		 "INSERT INTO journal (account_id, op, folder_id, message_id)"
		 " VALUES (1, 'flags', 2, 3);");
	res = run_only(cs, script, 1);
	ck_assert_msg(res.r == 0, "%d %s", res.r, res.reason);
	ck_assert_str_eq(qs(cs, "SELECT tries || ' ' || retry_after || ' ' || failed || ' ' ||"
				" coalesce(refused, '-') FROM journal"),
			 "0 0 0 -");
	ck_assert_uint_eq(res.stats.ops_failed, 0);
	ck_assert_uint_eq(res.stats.folders_waiting, 1);
	cpmsync_store_close(cs);
}
END_TEST

static Suite *engine_suite(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("scripted");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_modified_merged_and_retried);
	tcase_add_test(tc, test_select_news_before_closed);
	tcase_add_test(tc, test_replay_without_list_waits_for_list);
	tcase_add_test(tc, test_modified_forever_kept);
	tcase_add_test(tc, test_refused_operation_kept);
	tcase_add_test(tc, test_setmetadata_value_is_a_string);
	tcase_add_test(tc, test_select_refused_others_go_on);
	tcase_add_test(tc, test_long_bodystructure_refetched);
	tcase_add_test(tc, test_new_message_body_over_cap);
	tcase_add_test(tc, test_new_message_body_stored_once);
	tcase_add_test(tc, test_store_full_replays_anyway);
	tcase_add_test(tc, test_store_full_other_folder_waits);
	tcase_add_test(tc, test_store_full_keeps_whole_messages);
	tcase_add_test(tc, test_store_full_undoes_to_mark_every);
	tcase_add_test(tc, test_store_full_undoes_to_mark_bytes);
	tcase_add_test(tc, test_store_full_keeps_none);
	tcase_add_test(tc, test_body_store_failure_names_file);
	tcase_add_test(tc, test_body_tmpfile_failure_names_dir);
	tcase_add_test(tc, test_many_rows_without_io);
	tcase_add_test(tc, test_refused_name_warned_once);
	tcase_add_test(tc, test_folders_share_a_commit);
	tcase_add_test(tc, test_list_missing_folders_asked_again);
	tcase_add_test(tc, test_list_missing_folder_gone_twice);
	tcase_add_test(tc, test_cut_mid_folder_keeps_what_came);
	tcase_add_test(tc, test_sync_only_one_folder);
	tcase_add_test(tc, test_sync_selected_no_select);
	tcase_add_test(tc, test_sync_selected_expunge_only);
	tcase_add_test(tc, test_sync_selected_news_during);
	tcase_add_test(tc, test_sync_selected_news_after);
	tcase_add_test(tc, test_sync_selected_falls_back);
	tcase_add_test(tc, test_sync_selected_vanished_in_idle);
	tcase_add_test(tc, test_sync_selected_vanished_folder_renamed);
	tcase_add_test(tc, test_sync_selected_vanished_local_call);
	tcase_add_test(tc, test_sync_selected_vanished_with_append);
	tcase_add_test(tc, test_sync_selected_expunge_with_append);
	tcase_add_test(tc, test_sync_selected_vanished_twice);
	tcase_add_test(tc, test_host_same_server_kept);
	tcase_add_test(tc, test_host_other_messages_dropped);
	tcase_add_test(tc, test_host_uids_gone_dropped);
	tcase_add_test(tc, test_host_other_uidvalidity_dropped);
	tcase_add_test(tc, test_host_queued_refused);
	tcase_add_test(tc, test_sync_selected_other_server);
	tcase_add_test(tc, test_sync_selected_check_answered_last);
	tcase_add_test(tc, test_sync_selected_other_server_answered_last);
	tcase_add_test(tc, test_sync_selected_vanished_other_uidvalidity);
	tcase_add_test(tc, test_keep_selected_unchanged);
	tcase_add_test(tc, test_keep_selected_news_during);
	tcase_add_test(tc, test_keep_selected_folder_changed);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(engine_suite)
