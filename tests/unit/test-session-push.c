/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The session's push wait against a scripted peer (testlib.h): what it
 * sends, in which order, when a NOTIFY event names a folder of the store:
 * that folder's sync at once with NOTIFY left set, an event for another
 * folder that comes during the run asked again by STATUS after it (and
 * synced), and no NOTIFY NONE / SET STATUS of every folder.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/cpmsync.h>
#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/session.h>
#include <cpmsync/store.h>

#include "engine/session-internal.h"
#include "store/store.h"
#include "testlib.h"

static int pw_cb(const struct cpmsync_account *a, char **ret, void *ud)
{
	(void)a;
	(void)ud;
	*ret = strdup("secret");
	return *ret ? 0 : -1;
}

struct watch {
	bool idle;	/* the session reached state idle */
	bool syncing;	/* ... state syncing */
	unsigned syncs; /* runs ended */
	int last_r;
};

static void changed_cb(struct cpmsync_session *s, void *userdata)
{
	struct watch *w = userdata;

	if (cpmsync_session_get_state(s) == CPMSYNC_SESSION_IDLE)
		w->idle = true;
	if (cpmsync_session_get_state(s) == CPMSYNC_SESSION_SYNCING)
		w->syncing = true;
}

static void synced_cb(struct cpmsync_session *s, int r, const char *reason,
		      const struct cpmsync_sync_stats *stats, void *userdata)
{
	struct watch *w = userdata;

	(void)s;
	(void)reason;
	(void)stats;
	w->syncs++;
	w->last_r = r;
}

static int count_cb(const struct cpmsync_message_info *m, void *userdata)
{
	(void)m;
	(*(unsigned *)userdata)++;
	return 0;
}

#define CAPS "IMAP4rev1 NOTIFY"
#define NOTIFY_SET                                                                                 \
	"NOTIFY SET STATUS (personal (MessageNew MessageExpunge FlagChange MailboxName "           \
	"SubscriptionChange))"
#define MSG  "Subject: pushed\r\nMessage-ID: <p1@push.test>\r\n\r\nbody\r\n"
#define MSG2 "Subject: raced\r\nMessage-ID: <p2@push.test>\r\n\r\nbody\r\n"

/* A FETCH of one new message (seq and UID uid, INTERNALDATE 18:00:sec on
 * 05-Dec-2026) and the tagged OK that ends it, as a peer sends them. */
static void fetch_reply(char *buf, size_t size, unsigned uid, unsigned sec, const char *msg,
			const char *tag)
{
	int n = snprintf(
		buf, size,
		"* %u FETCH (UID %u FLAGS () INTERNALDATE \"05-Dec-2026 18:00:%02u +0000\" "
		"RFC822.SIZE %zu BODY[] {%zu}\r\n%s)\r\n%s OK fetched\r\n",
		uid, uid, sec, strlen(msg), strlen(msg), msg, tag);

	ck_assert(n > 0 && (size_t)n < size);
}

/* The session's account on the scripted peer (its port set by the test);
 * debounce_ms is one minute: a run must not wait for it. */
#define ACCOUNT                                                                                    \
	{                                                                                          \
		.name = "a", .host = "127.0.0.1", .security = CPMSYNC_SECURITY_NONE,               \
		.user = "alice", .sync_bodies = CPMSYNC_SYNC_BODIES_ALL, .password_cb = pw_cb,     \
		.connect_timeout_ms = 5000, .command_timeout_ms = 5000,                            \
	}
static const struct cpmsync_session_options OPTIONS = { .debounce_ms = 60000 };
static const struct cpmsync_session_callbacks CALLBACKS = { .changed = changed_cb,
							    .synced = synced_cb };

/* The session on env's scripted peer (started with script), as soon as
 * its first run ended well (the wait after it is being entered). */
static struct cpmsync_session *session_first_run(struct test_env *env,
						 const struct script_step *script,
						 const struct cpmsync_session_options *options,
						 struct watch *w)
{
	struct cpmsync_account account = ACCOUNT;
	struct cpmsync_session *session = NULL;

	test_env_start(env, script, TEST_ENV_TCP | TEST_ENV_STORE);
	account.port = env->port;
	ck_assert_int_eq(cpmsync_session_new(env->loop, env->store, &account, options, &CALLBACKS,
					     w, &session),
			 0);
	for (int i = 0; i < 1000 && !w->syncs; i++)
		cpmsync_loop_iterate(env->loop, 10);
	ck_assert_uint_eq(w->syncs, 1);
	ck_assert_int_eq(w->last_r, 0);
	return session;
}

/* The same, after its first run (synced, idle). */
static struct cpmsync_session *session_start(struct test_env *env, const struct script_step *script,
					     const struct cpmsync_session_options *options,
					     struct watch *w)
{
	struct cpmsync_session *session = session_first_run(env, script, options, w);

	ck_assert(test_loop_run_until(env->loop, &w->idle, 10000));
	ck_assert_uint_eq(w->syncs, 1);
	return session;
}

/* Runs the loop until the session ended its run number n (10 s at most),
 * which must have succeeded. */
static void wait_syncs(struct test_env *env, struct watch *w, unsigned n)
{
	for (int i = 0; i < 400 && w->syncs < n; i++)
		cpmsync_loop_iterate(env->loop, 25);
	ck_assert_uint_eq(w->syncs, n);
	ck_assert_int_eq(w->last_r, 0);
}

/* The number of messages the store holds in folder name of account "a". */
static unsigned messages_in(struct test_env *env, const char *name)
{
	int64_t folder_id = 0;
	unsigned n = 0;

	ck_assert_int_eq(cpmsync_store_find_folder(env->store, "a", name, &folder_id), 0);
	ck_assert_int_eq(cpmsync_store_foreach_message(env->store, folder_id, 0, 0, count_cb, &n),
			 0);
	return n;
}

/* After 400 ms more of the loop: the session waits, with NOTIFY set. */
static void waiting_with_notify(struct test_env *env, struct cpmsync_session *session)
{
	for (int i = 0; i < 40; i++)
		cpmsync_loop_iterate(env->loop, 10);
	ck_assert_int_eq(cpmsync_session_get_state(session), CPMSYNC_SESSION_IDLE);
	ck_assert_int_eq(cpmsync_session_get_push_state(session), CPMSYNC_PUSH_NOTIFY);
}

/* The first run (INBOX and Chat, both empty), then after a full sync
 * NOTIFY SET, NONE, SET (session.c notify_done()): tags a1 to a9. */
/* The first run on a server with the capabilities caps: the login, INBOX
 * and Chat listed, both selected (empty) and fetched; tags a1 to a6, the
 * answer of the last UID FETCH included. */
#define SYNC_INBOX_CHAT(caps)                                                                      \
	{ SCRIPT_SEND, "* OK [CAPABILITY " caps "] hi\r\n" }, { SCRIPT_EXPECT, "a1 LOGIN alice" }, \
		{ SCRIPT_SEND, "a1 OK [CAPABILITY " caps "] in\r\n" },                             \
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },                                           \
		{ SCRIPT_SEND,                                                                     \
		  "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Chat\r\na2 OK list\r\n" },             \
		{ SCRIPT_EXPECT, "a3 SELECT INBOX" },                                              \
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"    \
			       "a3 OK [READ-WRITE] selected\r\n" },                                \
		{ SCRIPT_EXPECT, "a4 UID FETCH 1:* " }, { SCRIPT_SEND, "a4 OK fetched\r\n" },      \
		{ SCRIPT_EXPECT, "a5 SELECT Chat" },                                               \
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n"    \
			       "a5 OK [READ-WRITE] selected\r\n" },                                \
		{ SCRIPT_EXPECT, "a6 UID FETCH 1:* " },                                            \
	{                                                                                          \
		SCRIPT_SEND, "a6 OK fetched\r\n"                                                   \
	}

/* The first run (INBOX and Chat, both empty), then after a full sync
 * NOTIFY SET, NONE, SET (session.c notify_done()): tags a1 to a9. */
#define FIRST_SYNC_THEN_NOTIFY                                                                     \
	SYNC_INBOX_CHAT(CAPS), { SCRIPT_EXPECT, "a7 " NOTIFY_SET },                                \
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n"            \
			       "a7 OK notify\r\n" },                                               \
		{ SCRIPT_EXPECT, "a8 NOTIFY NONE" }, { SCRIPT_SEND, "a8 OK none\r\n" },            \
		{ SCRIPT_EXPECT, "a9 " NOTIFY_SET },                                               \
	{                                                                                          \
		SCRIPT_SEND, "* STATUS Chat (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n"              \
			     "a9 OK notify\r\n"                                                    \
	}

/*
 * A STATUS event for a folder of the store, NOTIFY set and quiet: the
 * session sends NOTIFY NONE and the folder's SELECT behind it without
 * waiting for NONE's answer (the peer answers NONE only once it has read
 * the SELECT), and without a debounce (debounce_ms is one minute here:
 * the run must be over within seconds).
 */
START_TEST(test_notify_event_pipelined)
{
	char fetch[256], fetch2[256];
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };

	fetch_reply(fetch, sizeof(fetch), 1, 0, MSG, "a11");
	fetch_reply(fetch2, sizeof(fetch2), 1, 1, MSG2, "a15");
	const struct script_step script[] = {
		FIRST_SYNC_THEN_NOTIFY,
		{ SCRIPT_SLEEP, "300" },
		/* another client's message in Chat */
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 1 UIDNEXT 2)\r\n" },
		/* its sync at once, NOTIFY left set: no NOTIFY NONE */
		{ SCRIPT_EXPECT, "a10 SELECT Chat" },
		/* the race: another client's message in INBOX, reported while
		 * Chat's run has the connection (NOTIFY is still set) */
		{ SCRIPT_SEND, "* STATUS INBOX (MESSAGES 1 UIDNEXT 2)\r\n"
			       "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 2] n\r\n"
			       "a10 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a11 UID FETCH 1:* " },
		{ SCRIPT_SEND, fetch },
		/* after the run: no NOTIFY SET STATUS (every folder), but the
		 * STATUS of Chat and of INBOX, named during the run */
		{ SCRIPT_EXPECT, "a12 STATUS Chat (UIDVALIDITY UIDNEXT MESSAGES)" },
		{ SCRIPT_EXPECT, "a13 STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES)" },
		{ SCRIPT_SEND,
		  "* STATUS Chat (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7)\r\na12 OK status\r\n"
		  "* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 8)\r\na13 OK status\r\n" },
		/* INBOX differs from the store: its sync at once (no debounce) */
		{ SCRIPT_EXPECT, "a14 SELECT INBOX" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 2] n\r\n"
			       "a14 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a15 UID FETCH 1:* " },
		{ SCRIPT_SEND, fetch2 },
		{ SCRIPT_EXPECT, "a16 STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES)" },
		{ SCRIPT_SEND,
		  "* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 8)\r\na16 OK status\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	session = session_start(&env, script, &OPTIONS, &w);
	w.idle = false;
	/* The event's run: over well before the debounce could end. */
	wait_syncs(&env, &w, 2);
	ck_assert(test_loop_run_until(env.loop, &w.idle, 10000));
	ck_assert_uint_eq(messages_in(&env, "Chat"), 1);
	/* The event that came during Chat's run: INBOX synced too. */
	wait_syncs(&env, &w, 3);
	ck_assert_uint_eq(messages_in(&env, "INBOX"), 1);
	/* and waiting again, without NOTIFY SET (the script's end: STALL) */
	for (int i = 0; i < 20; i++)
		cpmsync_loop_iterate(env.loop, 10);
	ck_assert_int_eq(cpmsync_session_get_state(session), CPMSYNC_SESSION_IDLE);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * Sync() under NOTIFY with nothing pending: one NOOP, and the request
 * completes as a sync when its OK comes with no news (no NOTIFY NONE, no
 * LIST, no state syncing).  A second Sync() while that NOOP is out gets a
 * NOOP of its own, sent after it (a change made between the two would not
 * be in the first one's answer).  A third whose NOOP answer carries a
 * STATUS that differs from the store: that folder's sync is the answer.
 */
START_TEST(test_notify_sync_noop)
{
	char fetch[256];
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };

	fetch_reply(fetch, sizeof(fetch), 1, 0, MSG, "a14");
	const struct script_step script[] = {
		FIRST_SYNC_THEN_NOTIFY,
		/* two Sync() calls: a NOOP each, the second after the first's OK */
		{ SCRIPT_EXPECT, "a10 NOOP" },
		{ SCRIPT_SEND, "a10 OK noop\r\n" },
		{ SCRIPT_EXPECT, "a11 NOOP" },
		{ SCRIPT_SEND, "a11 OK noop\r\n" },
		/* a third: the server had news for Chat, sent before the OK */
		{ SCRIPT_EXPECT, "a12 NOOP" },
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 1 UIDNEXT 2)\r\na12 OK noop\r\n" },
		{ SCRIPT_EXPECT, "a13 SELECT Chat" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 2] n\r\n"
			       "a13 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a14 UID FETCH 1:* " },
		{ SCRIPT_SEND, fetch },
		{ SCRIPT_EXPECT, "a15 STATUS Chat (UIDVALIDITY UIDNEXT MESSAGES)" },
		{ SCRIPT_SEND,
		  "* STATUS Chat (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7)\r\na15 OK status\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	session = session_start(&env, script, &OPTIONS, &w);
	for (int i = 0; i < 10; i++)
		cpmsync_loop_iterate(env.loop, 10);
	w.syncing = false;
	cpmsync_session_sync_now(session);
	cpmsync_session_sync_now(session);
	wait_syncs(&env, &w, 2); /* both requests: one completion */
	ck_assert(!w.syncing);
	ck_assert_int_eq(cpmsync_session_get_state(session), CPMSYNC_SESSION_IDLE);
	cpmsync_session_sync_now(session);
	wait_syncs(&env, &w, 3);
	ck_assert(w.syncing);
	ck_assert_uint_eq(messages_in(&env, "Chat"), 1);
	for (int i = 0; i < 20; i++)
		cpmsync_loop_iterate(env.loop, 10);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * The fallback after NOTIFY_KEEP_MS (CPMSYNC_NOTIFY_KEEP_MS=0 here: always
 * past it): an event's sync goes behind a NOTIFY NONE sent without waiting
 * for its answer, and the wait after the run sets NOTIFY again with
 * STATUS (compared with the store: nothing more to sync).  Push still
 * works after it: the next event is synced the same way.
 */
START_TEST(test_notify_keep_fallback)
{
	char fetch[256], fetch2[256];
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };

	fetch_reply(fetch, sizeof(fetch), 1, 0, MSG, "a12");
	fetch_reply(fetch2, sizeof(fetch2), 2, 1, MSG2, "a17");
	const struct script_step script[] = {
		FIRST_SYNC_THEN_NOTIFY,
		{ SCRIPT_SLEEP, "300" },
		/* another client's message in Chat */
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 1 UIDNEXT 2)\r\n" },
		/* past the keep time: NOTIFY NONE, the SELECT right behind it */
		{ SCRIPT_EXPECT, "a10 NOTIFY NONE" },
		{ SCRIPT_EXPECT, "a11 SELECT Chat" },
		{ SCRIPT_SEND, "a10 OK none\r\n* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n"
			       "* OK [UIDNEXT 2] n\r\na11 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a12 UID FETCH 1:* " },
		{ SCRIPT_SEND, fetch },
		/* NOTIFY set again, with every folder's STATUS */
		{ SCRIPT_EXPECT, "a13 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7)\r\n"
			       "a13 OK notify\r\n" },
		{ SCRIPT_SLEEP, "300" },
		/* push after the fallback: the next message in Chat */
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 2 UIDNEXT 3)\r\n" },
		{ SCRIPT_EXPECT, "a14 NOTIFY NONE" },
		{ SCRIPT_EXPECT, "a15 SELECT Chat" },
		{ SCRIPT_SEND, "a14 OK none\r\n* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n"
			       "* OK [UIDNEXT 3] n\r\na15 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a16 UID FETCH " },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS ())\r\na16 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a17 UID FETCH 2:* " },
		{ SCRIPT_SEND, fetch2 },
		{ SCRIPT_EXPECT, "a18 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7)\r\n"
			       "a18 OK notify\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	/* read when the session is made */
	ck_assert_int_eq(setenv("CPMSYNC_NOTIFY_KEEP_MS", "0", 1), 0);
	session = session_start(&env, script, &OPTIONS, &w);
	ck_assert_int_eq(unsetenv("CPMSYNC_NOTIFY_KEEP_MS"), 0);
	wait_syncs(&env, &w, 2);
	ck_assert_uint_eq(messages_in(&env, "Chat"), 1);
	wait_syncs(&env, &w, 3);
	ck_assert_uint_eq(messages_in(&env, "Chat"), 2);
	/* waiting again (the script's end: STALL) */
	waiting_with_notify(&env, session);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * An untagged OK [NOTIFICATIONOVERFLOW] while waiting (RFC 5465 5.8: the
 * server dropped events and has set NOTIFY NONE itself): a full sync, as
 * nothing tells which folders changed, and NOTIFY set again after it.
 */
START_TEST(test_notify_overflow)
{
	char fetch[256];
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	/* the sync an overflow brings is debounced (the server is busy): the
	 * default 5 ms here, not OPTIONS' minute */
	const struct cpmsync_session_options options = { .debounce_ms = 5 };

	fetch_reply(fetch, sizeof(fetch), 1, 0, MSG, "a15");
	const struct script_step script[] = {
		FIRST_SYNC_THEN_NOTIFY,
		{ SCRIPT_SLEEP, "300" },
		{ SCRIPT_SEND, "* OK [NOTIFICATIONOVERFLOW] dropped\r\n" },
		{ SCRIPT_EXPECT, "a10 NOTIFY NONE" },
		{ SCRIPT_SEND, "a10 OK none\r\n" },
		/* everything: LIST and each folder, as on the first run */
		{ SCRIPT_EXPECT, "a11 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Chat\r\na11 OK list\r\n" },
		{ SCRIPT_EXPECT, "a12 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a12 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a13 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a13 OK fetched\r\n" },
		/* the message the dropped event was about */
		{ SCRIPT_EXPECT, "a14 SELECT Chat" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 2] n\r\n"
			       "a14 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a15 UID FETCH 1:* " },
		{ SCRIPT_SEND, fetch },
		/* NOTIFY again, as after every full sync (notify_done()) */
		{ SCRIPT_EXPECT, "a16 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7)\r\n"
			       "a16 OK notify\r\n" },
		{ SCRIPT_EXPECT, "a17 NOTIFY NONE" },
		{ SCRIPT_SEND, "a17 OK none\r\n" },
		{ SCRIPT_EXPECT, "a18 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7)\r\n"
			       "a18 OK notify\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	session = session_start(&env, script, &options, &w);
	wait_syncs(&env, &w, 2);
	ck_assert_uint_eq(messages_in(&env, "Chat"), 1);
	waiting_with_notify(&env, session);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * Sync() when NOTIFY was set longer ago than NOTIFY_KEEP_MS (0 here: at
 * once): no NOOP shortcut, whose proof of currency is NOTIFY's; a run,
 * LIST and every folder, NOTIFY set again after it.  (Dovecot 2.3 left a
 * folder renamed by doveadm unreported; a rotation of its list index log
 * silences NOTIFY for folders other than INBOX.)
 */
START_TEST(test_notify_sync_after_keep)
{
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	const struct cpmsync_session_options options = { .debounce_ms = 5 };
	const struct script_step script[] = {
		FIRST_SYNC_THEN_NOTIFY,
		{ SCRIPT_EXPECT, "a10 NOTIFY NONE" },
		{ SCRIPT_SEND, "a10 OK none\r\n" },
		{ SCRIPT_EXPECT, "a11 LIST \"\" \"*\"" },
		{ SCRIPT_SEND,
		  "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Chat2\r\na11 OK list\r\n" },
		{ SCRIPT_EXPECT, "a12 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a12 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a13 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a13 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a14 SELECT Chat2" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a14 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a15 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a15 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a16 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat2 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n"
			       "a16 OK notify\r\n" },
		{ SCRIPT_EXPECT, "a17 NOTIFY NONE" },
		{ SCRIPT_SEND, "a17 OK none\r\n" },
		{ SCRIPT_EXPECT, "a18 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat2 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n"
			       "a18 OK notify\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	int64_t folder_id = 0;

	ck_assert_int_eq(setenv("CPMSYNC_NOTIFY_KEEP_MS", "0", 1), 0);
	session = session_start(&env, script, &options, &w);
	ck_assert_int_eq(unsetenv("CPMSYNC_NOTIFY_KEEP_MS"), 0);
	waiting_with_notify(&env, session);
	cpmsync_session_sync_now(session);
	wait_syncs(&env, &w, 2);
	/* Chat was renamed Chat2 without a word from NOTIFY: the run saw it. */
	ck_assert_int_eq(cpmsync_store_find_folder(env.store, "a", "Chat2", &folder_id), 0);
	ck_assert_int_eq(cpmsync_store_find_folder(env.store, "a", "Chat", &folder_id),
			 -CPMSYNC_E_NOT_FOUND);
	waiting_with_notify(&env, session);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * cpmsync_session_sync_full() (cpmctl sync) under NOTIFY with nothing
 * pending and NOTIFY set just now (the default NOTIFY_KEEP_MS): no NOOP,
 * whose proof of currency is only what NOTIFY reports, but the run a poll
 * makes: NOTIFY NONE, LIST and every folder, NOTIFY set again.  Chat was
 * renamed Chat2 on the server without a word from NOTIFY (as doveadm did
 * on Dovecot 2.3): the store has Chat2 when the request completes.  Then
 * a Sync() whose NOOP is still out when a full pass is asked for: its
 * answer leaves the request to that run (one completion, not two).
 */
START_TEST(test_notify_sync_full)
{
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	const struct cpmsync_session_options options = { .debounce_ms = 5 };
	const struct script_step script[] = {
		FIRST_SYNC_THEN_NOTIFY,
		{ SCRIPT_EXPECT, "a10 NOTIFY NONE" },
		{ SCRIPT_SEND, "a10 OK none\r\n" },
		{ SCRIPT_EXPECT, "a11 LIST \"\" \"*\"" },
		{ SCRIPT_SEND,
		  "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Chat2\r\na11 OK list\r\n" },
		{ SCRIPT_EXPECT, "a12 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a12 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a13 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a13 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a14 SELECT Chat2" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a14 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a15 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a15 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a16 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat2 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n"
			       "a16 OK notify\r\n" },
		{ SCRIPT_EXPECT, "a17 NOTIFY NONE" },
		{ SCRIPT_SEND, "a17 OK none\r\n" },
		{ SCRIPT_EXPECT, "a18 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat2 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n"
			       "a18 OK notify\r\n" },
		/* Sync(): its NOOP; and the full pass asked for behind it */
		{ SCRIPT_EXPECT, "a19 NOOP" },
		{ SCRIPT_SEND, "a19 OK noop\r\n" },
		{ SCRIPT_EXPECT, "a20 NOTIFY NONE" },
		{ SCRIPT_SEND, "a20 OK none\r\n" },
		{ SCRIPT_EXPECT, "a21 LIST \"\" \"*\"" },
		{ SCRIPT_SEND,
		  "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Chat2\r\na21 OK list\r\n" },
		{ SCRIPT_EXPECT, "a22 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a22 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a23 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a23 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a24 SELECT Chat2" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a24 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a25 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a25 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a26 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat2 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n"
			       "a26 OK notify\r\n" },
		{ SCRIPT_EXPECT, "a27 NOTIFY NONE" },
		{ SCRIPT_SEND, "a27 OK none\r\n" },
		{ SCRIPT_EXPECT, "a28 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat2 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n"
			       "a28 OK notify\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};
	int64_t folder_id = 0;

	session = session_start(&env, script, &options, &w);
	waiting_with_notify(&env, session);
	w.syncing = false;
	cpmsync_session_sync_full(session);
	wait_syncs(&env, &w, 2);
	ck_assert(w.syncing);
	ck_assert_int_eq(cpmsync_store_find_folder(env.store, "a", "Chat2", &folder_id), 0);
	ck_assert_int_eq(cpmsync_store_find_folder(env.store, "a", "Chat", &folder_id),
			 -CPMSYNC_E_NOT_FOUND);
	waiting_with_notify(&env, session);
	w.syncing = false;
	cpmsync_session_sync_now(session);
	cpmsync_session_sync_full(session);
	wait_syncs(&env, &w, 3);
	ck_assert(w.syncing);
	waiting_with_notify(&env, session);
	ck_assert_uint_eq(w.syncs, 3);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

#define LS_CAPS "IMAP4rev1 NOTIFY LIST-STATUS ENABLE CONDSTORE"
/* A LIST-STATUS answer (tag a) of INBOX and Chat, both empty. */
#define LIST_STATUS_EMPTY(a)                                                                       \
	"* LIST () \"/\" INBOX\r\n"                                                                \
	"* STATUS INBOX (UIDVALIDITY 8 UIDNEXT 1 MESSAGES 0 HIGHESTMODSEQ 5)\r\n"                  \
	"* LIST () \"/\" Chat\r\n"                                                                 \
	"* STATUS Chat (UIDVALIDITY 7 UIDNEXT 1 MESSAGES 0 HIGHESTMODSEQ 4)\r\n" a " OK list\r\n"

/*
 * A poll with nothing new under NOTIFY on a server with LIST-STATUS: its
 * full sync is the LIST-STATUS alone (no SELECT), then NOTIFY SET STATUS
 * once.  It was SET, NONE and SET again after every full sync (for the
 * list index records a sync makes stale, see session.c's top): every
 * folder's STATUS twice per poll, for nothing (1,800 folders: ~150 MB a
 * day).  The first sync, which selected both folders, still sets it
 * twice.  Then the next command is the NOOP of a Sync() with nothing
 * pending, not a NOTIFY NONE.
 */
START_TEST(test_notify_poll_sets_once)
{
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	const struct cpmsync_session_options options = { .debounce_ms = 5 };
	const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY " LS_CAPS "] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY " LS_CAPS "] in\r\n" },
		{ SCRIPT_EXPECT, "a2 ENABLE CONDSTORE" },
		{ SCRIPT_SEND, "* ENABLED CONDSTORE\r\na2 OK enabled\r\n" },
		{ SCRIPT_EXPECT, "a3 LIST \"\" \"*\" RETURN (" },
		{ SCRIPT_SEND, LIST_STATUS_EMPTY("a3") },
		{ SCRIPT_EXPECT, "a4 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "* OK [HIGHESTMODSEQ 5] m\r\na4 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a5 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a5 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a6 SELECT Chat" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "* OK [HIGHESTMODSEQ 4] m\r\na6 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a7 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a7 OK fetched\r\n" },
		/* the first sync selected folders: SET, NONE, SET */
		{ SCRIPT_EXPECT, "a8 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n"
			       "a8 OK notify\r\n" },
		{ SCRIPT_EXPECT, "a9 NOTIFY NONE" },
		{ SCRIPT_SEND, "a9 OK none\r\n" },
		{ SCRIPT_EXPECT, "a10 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n"
			       "a10 OK notify\r\n" },
		/* the poll: NOTIFY NONE, the LIST-STATUS, nothing new */
		{ SCRIPT_EXPECT, "a11 NOTIFY NONE" },
		{ SCRIPT_SEND, "a11 OK none\r\n" },
		{ SCRIPT_EXPECT, "a12 LIST \"\" \"*\" RETURN (" },
		{ SCRIPT_SEND, LIST_STATUS_EMPTY("a12") },
		/* one SET */
		{ SCRIPT_EXPECT, "a13 " NOTIFY_SET },
		{ SCRIPT_SEND, "* STATUS Chat (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n"
			       "a13 OK notify\r\n" },
		/* Sync(): its NOOP is the next command */
		{ SCRIPT_EXPECT, "a14 NOOP" },
		{ SCRIPT_SEND, "a14 OK noop\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	session = session_start(&env, script, &options, &w);
	waiting_with_notify(&env, session);
	/* the poll's run (cpmsync_session_sync_full() is the same pass) */
	cpmsync_session_sync_full(session);
	wait_syncs(&env, &w, 2);
	waiting_with_notify(&env, session);
	/* what the session sends unasked after the SET is read before this */
	for (int i = 0; i < 20; i++)
		cpmsync_loop_iterate(env.loop, 10);
	cpmsync_session_sync_now(session);
	wait_syncs(&env, &w, 3);
	waiting_with_notify(&env, session);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until the session's state is st (5 s at most). */
static void wait_state(struct test_env *env, struct cpmsync_session *session,
		       enum cpmsync_session_state st)
{
	for (int i = 0; i < 500 && cpmsync_session_get_state(session) != st; i++)
		cpmsync_loop_iterate(env->loop, 10);
	ck_assert_str_eq(cpmsync_session_state_name(cpmsync_session_get_state(session)),
			 cpmsync_session_state_name(st));
}

/*
 * A network change under a connection that died without a word (the peer
 * keeps it open and never answers again, as a NAT that dropped it): the
 * session asks for news (Sync()'s NOOP under NOTIFY), takes the connection
 * for dead when nothing comes within probe_ms (300 ms here, where the
 * command timeout is 5 s and the wait's refresh 4 minutes), and is back
 * on a new connection, synced and waiting with NOTIFY, at once.
 */
START_TEST(test_network_change_probe)
{
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	const struct cpmsync_session_options options = { .debounce_ms = 60000,
							 .retry_min_ms = 50,
							 .probe_ms = 300 };
	const struct script_step script[] = {
		FIRST_SYNC_THEN_NOTIFY, { SCRIPT_EXPECT, "a10 NOOP" }, { SCRIPT_ACCEPT, "keep" },
		FIRST_SYNC_THEN_NOTIFY, { SCRIPT_STALL, NULL },	       { SCRIPT_END, NULL },
	};
	uint64_t t0;

	session = session_start(&env, script, &options, &w);
	waiting_with_notify(&env, session);
	t0 = mono_ms();
	cpmsync_session_network_changed(session, "the network changed");
	wait_state(&env, session, CPMSYNC_SESSION_CONNECTING);
	ck_assert_str_eq(cpmsync_session_get_last_error(session),
			 "NOOP: no answer from the server within 300 ms after the network "
			 "changed; the connection is taken for dead");
	w.idle = false;
	ck_assert(test_loop_run_until(env.loop, &w.idle, 3000));
	ck_assert_uint_lt(mono_ms() - t0, 3000);
	waiting_with_notify(&env, session);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/* The session's "...; retrying in N ms" warnings (connection_lost()). */
struct retries {
	unsigned n;
	char line[8][256];
};

static void retries_cb(int level, unsigned category, const char *msg, void *userdata)
{
	struct retries *rt = userdata;

	(void)category;
	if (level != CPMSYNC_LOG_WARNING || !strstr(msg, "; retrying in "))
		return;
	if (rt->n < 8)
		snprintf(rt->line[rt->n], sizeof(rt->line[0]), "%s", msg);
	rt->n++;
}

/* The N of line i's "retrying in N ms". */
static unsigned retry_delay(const struct retries *rt, unsigned i)
{
	const char *p;

	ck_assert_uint_lt(i, rt->n);
	p = strstr(rt->line[i], "; retrying in ");
	ck_assert_ptr_nonnull(p);
	return (unsigned)strtoul(p + strlen("; retrying in "), NULL, 10);
}

/* Runs the loop until the n-th retry was logged (5 s at most). */
static void wait_retries(struct test_env *env, const struct retries *rt, unsigned n)
{
	for (int i = 0; i < 500 && rt->n < n; i++)
		cpmsync_loop_iterate(env->loop, 10);
	ck_assert_uint_eq(rt->n, n);
}

/*
 * One lost connection is one retry: a refresh NOOP out and unanswered,
 * then a NOTIFY NONE behind it (a full sync asked for), both past the same
 * deadline and failed together.  Each failure took the connection for
 * lost: "retrying in 757 ms", then "retrying in 2302 ms" in the same
 * millisecond, the back-off doubled twice for one loss.
 */
struct fetched {
	bool done;
	int r;
	uint64_t size;
};

static void fetched_cb(int r, const char *reason, int fd, uint64_t size, void *userdata)
{
	struct fetched *f = userdata;

	(void)reason;
	if (fd >= 0)
		close(fd);
	f->r = r;
	f->size = size;
	f->done = true;
}

/* The store of account a (alice at host): INBOX, UIDVALIDITY 7, UIDs 1
 * and 2 (ids 1 and 2), as synced before. */
static void seed_inbox(struct test_env *env, const char *host)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "INSERT INTO account (name, server_host, server_user)"
		 " VALUES ('a', '%s', 'alice');"
		 "INSERT INTO folder (account_id, name, server_name, uidvalidity, uidnext)"
		 " VALUES (1, 'INBOX', 'INBOX', 7, 3);"
		 "INSERT INTO message (folder_id, uid, size) VALUES (1, 1, 10), (1, 2, 20);"
		 "INSERT INTO message_state (id, flags, server_flags) VALUES"
		 " (1, '', ''), (2, '', '');",
		 host);
	ck_assert_int_eq(store_exec(store_from_public(env->store), sql), 0);
}

/*
 * The account's host changed (the store's copy is of alice at 10.9.8.7,
 * the session names 127.0.0.1), nothing queued, and a body is asked for
 * before the session connected: the copy is kept only once the first run
 * proves the server the same (engine-ident.c engine_ident_host()), so the
 * request's UID FETCH waits for that run; sent first, it read UID 1 of a
 * server that may be another as the store's message.
 */
START_TEST(test_host_moved_request_waits)
{
	struct cpmsync_session *session = NULL;
	struct cpmsync_account account = ACCOUNT;
	struct fetched f = { 0 };
	struct test_env env;
	struct watch w = { 0 };
	const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		/* the host check */
		{ SCRIPT_EXPECT, "a2 SELECT INBOX" },
		{ SCRIPT_SEND, "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 3] n\r\n"
			       "a2 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a3 UID FETCH 1:2 (UID RFC822.SIZE INTERNALDATE)" },
		{ SCRIPT_SEND,
		  "* 1 FETCH (UID 1 RFC822.SIZE 10)\r\n* 2 FETCH (UID 2 RFC822.SIZE 20)\r\n"
		  "a3 OK fetched\r\n" },
		/* the run */
		{ SCRIPT_EXPECT, "a4 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\na4 OK list\r\n" },
		{ SCRIPT_EXPECT, "a5 SELECT INBOX" },
		{ SCRIPT_SEND, "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 3] n\r\n"
			       "a5 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a6 UID FETCH 1:2 (UID FLAGS)" },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS ())\r\n"
			       "a6 OK fetched\r\n" },
		/* the request */
		{ SCRIPT_EXPECT, "a7 EXAMINE INBOX" },
		{ SCRIPT_EXPECT, "a8 UID FETCH 1 (BODY.PEEK[TEXT])" },
		{ SCRIPT_SEND, "a7 OK [READ-ONLY] examined\r\n"
			       "* 1 FETCH (UID 1 BODY[TEXT] {4}\r\nbody)\r\na8 OK fetched\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	test_env_start(&env, script, TEST_ENV_TCP | TEST_ENV_STORE);
	account.port = env.port;
	account.sync_bodies = CPMSYNC_SYNC_BODIES_NONE; /* the request's body alone */
	seed_inbox(&env, "10.9.8.7");
	ck_assert_int_eq(cpmsync_session_new(env.loop, env.store, &account, &OPTIONS, &CALLBACKS,
					     &w, &session),
			 0);
	ck_assert_int_eq(cpmsync_session_fetch(session, 1, "TEXT", fetched_cb, &f), 0);
	ck_assert(test_loop_run_until(env.loop, &f.done, 10000));
	ck_assert_int_eq(f.r, 0);
	ck_assert_uint_eq(f.size, 4);
	ck_assert_uint_eq(w.syncs, 1);
	ck_assert_str_eq(
		test_store_text(store_from_public(env.store),
				"SELECT server_host || ' ' || count(m.id) FROM account, message m"
				" GROUP BY server_host"),
		"127.0.0.1 2");
	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * The same, with the request made while the host check runs (its SELECT
 * unanswered here): the request does not go to a request connection of
 * its own either (engine: requests run on a second connection while a
 * sync holds the first), which could read another server's UID as the
 * store's; it waits for the run, and fails after the bound saying why.
 */
START_TEST(test_host_moved_no_request_connection)
{
	struct cpmsync_session *session = NULL;
	struct cpmsync_account account = ACCOUNT;
	struct fetched f = { 0 };
	struct test_env env;
	struct watch w = { 0 };
	const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 SELECT INBOX" },
		{ SCRIPT_NO_ACCEPT, "1000" },
		{ SCRIPT_END, NULL },
	};

	test_env_start(&env, script, TEST_ENV_TCP | TEST_ENV_STORE);
	account.port = env.port;
	account.sync_bodies = CPMSYNC_SYNC_BODIES_NONE;
	seed_inbox(&env, "10.9.8.7");
	ck_assert_int_eq(setenv("CPMSYNC_REQUEST_WAIT_MS", "300", 1), 0);
	ck_assert_int_eq(cpmsync_session_new(env.loop, env.store, &account, &OPTIONS, &CALLBACKS,
					     &w, &session),
			 0);
	ck_assert_int_eq(unsetenv("CPMSYNC_REQUEST_WAIT_MS"), 0);
	ck_assert(test_loop_run_until(env.loop, &w.syncing, 3000));
	ck_assert_int_eq(cpmsync_session_fetch(session, 1, "TEXT", fetched_cb, &f), 0);
	ck_assert(test_loop_run_until(env.loop, &f.done, 3000));
	ck_assert_int_eq(f.r, -EBUSY);
	/* Past the peer's watch for a second connection. */
	{
		bool never = false;

		ck_assert(!test_loop_run_until(env.loop, &never, 1200));
	}
	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

struct fetch_answer {
	bool done;
	int r;
	char reason[256];
};

static void fetch_answer_cb(int r, const char *reason, int fd, uint64_t size, void *userdata)
{
	struct fetch_answer *a = userdata;

	(void)size;
	if (fd >= 0)
		close(fd);
	a->r = r;
	snprintf(a->reason, sizeof(a->reason), "%s", reason ? reason : "");
	a->done = true;
}

/* fetch_answered(ANSWER, REASON): a Fetch of UID 1 made while the
 * session's first sync waits for its LIST, so that it runs on a request
 * connection (made before the session connected, it could race the
 * session's own connection to the scripted peer, which takes one), whose
 * UID FETCH the server answers with ANSWER (untagged lines, then its OK):
 * the request fails NotFound with REASON. */
static void fetch_answered(const char *answer, const char *reason)
{
	struct cpmsync_session *session = NULL;
	struct cpmsync_account account = ACCOUNT;
	struct fetch_answer a = { 0 };
	struct test_env env;
	struct watch w = { 0 };
	const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_ACCEPT, "keep" },
		/* the request connection */
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 EXAMINE INBOX" },
		{ SCRIPT_EXPECT, "a3 UID FETCH 1 (BODY.PEEK[TEXT])" },
		{ SCRIPT_SEND, "a2 OK [READ-ONLY] examined\r\n" },
		{ SCRIPT_SEND, answer },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	test_env_start(&env, script, TEST_ENV_TCP | TEST_ENV_STORE);
	account.port = env.port;
	account.sync_bodies = CPMSYNC_SYNC_BODIES_NONE;
	seed_inbox(&env, "127.0.0.1");
	ck_assert_int_eq(cpmsync_session_new(env.loop, env.store, &account, &OPTIONS, &CALLBACKS,
					     &w, &session),
			 0);
	ck_assert(test_loop_run_until(env.loop, &w.syncing, 3000));
	ck_assert_int_eq(cpmsync_session_fetch(session, 1, "TEXT", fetch_answer_cb, &a), 0);
	ck_assert(test_loop_run_until(env.loop, &a.done, 3000));
	ck_assert_int_eq(a.r, -CPMSYNC_E_NOT_FOUND);
	ck_assert_str_eq(a.reason, reason);
	cpmsync_session_free(session);
	test_env_end(&env);
}

/*
 * A body asked for of a message another client expunged meanwhile: the
 * UID FETCH answers OK and nothing of that UID (news of another may
 * come).  The request says the message is gone (it said "the server sent
 * no content for that section", as for a FETCH without the section),
 * and a sync is wanted to remove it here.
 */
START_TEST(test_fetch_of_expunged_message)
{
	fetch_answered("* 2 FETCH (UID 2 FLAGS (\\Seen))\r\na3 OK fetched\r\n",
		       "the message is no longer on the server (another client removed it); the "
		       "next sync removes it here");
}
END_TEST

/* A FETCH of the UID without the section asked for: as before. */
START_TEST(test_fetch_without_section)
{
	fetch_answered("* 1 FETCH (UID 1 FLAGS (\\Seen))\r\na3 OK fetched\r\n",
		       "the server sent no content for that section");
}
END_TEST

START_TEST(test_one_loss_one_retry)
{
	struct cpmsync_session *session = NULL;
	struct cpmsync_account account = ACCOUNT;
	struct retries rt = { 0 };
	struct test_env env;
	struct watch w = { 0 };
	/* no reconnection while the test looks (the first in 3.75 s at least) */
	const struct cpmsync_session_options options = { .debounce_ms = 5,
							 .idle_refresh_ms = 200,
							 .retry_min_ms = 5000 };
	const struct script_step script[] = {
		FIRST_SYNC_THEN_NOTIFY,
		{ SCRIPT_EXPECT, "a10 NOOP" },
		{ SCRIPT_EXPECT, "a11 NOTIFY NONE" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	test_env_start(&env, script, TEST_ENV_TCP | TEST_ENV_STORE);
	account.port = env.port;
	account.command_timeout_ms = 1000;
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, retries_cb, &rt);
	ck_assert_int_eq(cpmsync_session_new(env.loop, env.store, &account, &options, &CALLBACKS,
					     &w, &session),
			 0);
	ck_assert(test_loop_run_until(env.loop, &w.idle, 10000));
	ck_assert_uint_eq(w.syncs, 1);
	/* the refresh's NOOP goes at 200 ms; then a full sync: NOTIFY NONE */
	for (int i = 0; i < 50; i++)
		cpmsync_loop_iterate(env.loop, 10);
	cpmsync_session_sync_full(session);
	wait_state(&env, session, CPMSYNC_SESSION_CONNECTING);
	/* what the failures of the commands behind the NOOP would log, if any */
	for (int i = 0; i < 50; i++)
		cpmsync_loop_iterate(env.loop, 10);
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
	ck_assert_uint_eq(rt.n, 1);
	ck_assert_msg(strncmp(rt.line[0],
			      "a: NOOP: the server did not answer within 1 s; retrying in ",
			      strlen("a: NOOP: the server did not answer within 1 s; retrying "
				     "in ")) == 0,
		      "%s", rt.line[0]);
	/* the shortest back-off, +-25 % */
	ck_assert_uint_ge(retry_delay(&rt, 0), 3750);
	ck_assert_uint_le(retry_delay(&rt, 0), 6250);
	ck_assert_str_eq(cpmsync_session_get_last_error(session),
			 "NOOP: the server did not answer within 1 s");

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * The back-off is reset by a connection that moved the store on, not only
 * by a sync that ended: a link that drops more often than the first sync
 * takes waited longer each time (0.8 s to 28 s) while every connection
 * stored more.  A server that accepts and drops, before or after the
 * login, is still backed off from, before and after such a reset.
 */
START_TEST(test_backoff_reset_by_progress)
{
	char fetch[256];
	struct cpmsync_session *session = NULL;
	struct retries rt = { 0 };
	struct test_env env;
	struct watch w = { 0 };
	struct cpmsync_account account = ACCOUNT;
	const struct cpmsync_session_options options = { .debounce_ms = 5, .retry_min_ms = 200 };

	fetch_reply(fetch, sizeof(fetch), 1, 0, MSG, "a4");
	const struct script_step script[] = {
		/* 1: the greeting, then closed */
		{ SCRIPT_SEND, "* OK [CAPABILITY " CAPS "] hi\r\n" },
		{ SCRIPT_ACCEPT, "close" },
		/* 2: the login taken, then closed */
		{ SCRIPT_SEND, "* OK [CAPABILITY " CAPS "] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY " CAPS "] in\r\n" },
		{ SCRIPT_ACCEPT, "close" },
		/* 3: INBOX's message stored (its batch committed after Chat,
		 * over ENGINE_BATCH_MS later), then closed at Z's SELECT */
		{ SCRIPT_SEND, "* OK [CAPABILITY " CAPS "] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY " CAPS "] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Chat\r\n"
			       "* LIST () \"/\" Z\r\na2 OK list\r\n" },
		{ SCRIPT_EXPECT, "a3 SELECT INBOX" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 2] n\r\n"
			       "a3 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a4 UID FETCH 1:* " },
		{ SCRIPT_SEND, fetch },
		{ SCRIPT_EXPECT, "a5 SELECT Chat" },
		{ SCRIPT_SLEEP, "400" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a5 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a6 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a6 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a7 SELECT Z" },
		{ SCRIPT_ACCEPT, "close" },
		/* 4: the greeting, then closed (the script ends: no more) */
		{ SCRIPT_SEND, "* OK [CAPABILITY " CAPS "] hi\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};

	test_env_start(&env, script, TEST_ENV_TCP | TEST_ENV_STORE);
	account.port = env.port;
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, retries_cb, &rt);
	ck_assert_int_eq(cpmsync_session_new(env.loop, env.store, &account, &options, &CALLBACKS,
					     &w, &session),
			 0);
	wait_retries(&env, &rt, 4);
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
	ck_assert_uint_eq(messages_in(&env, "INBOX"), 1);
	/* 200 ms, 400 ms (+-25 %): no progress, backing off */
	ck_assert_uint_ge(retry_delay(&rt, 0), 150);
	ck_assert_uint_le(retry_delay(&rt, 0), 250);
	ck_assert_uint_ge(retry_delay(&rt, 1), 300);
	ck_assert_uint_le(retry_delay(&rt, 1), 500);
	/* the third stored a message: 200 ms again, not 800 */
	ck_assert_msg(retry_delay(&rt, 2) >= 150 && retry_delay(&rt, 2) <= 250, "%s", rt.line[2]);
	/* and backing off from there */
	ck_assert_uint_ge(retry_delay(&rt, 3), 300);
	ck_assert_uint_le(retry_delay(&rt, 3), 500);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * The back-off tests' run: script (six connections over TCP, each closed
 * by the server, five of them after a sync that ended well) against a
 * session that retries from 200 ms on and counts a connection as one that
 * stays after 500 ms (session_stable_ms), until its sixth retry (at most
 * 10 s).  rt has the retries' warnings.
 */
static void run_six_retries(const struct script_step *script, struct retries *rt)
{
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	struct cpmsync_account account = ACCOUNT;
	const struct cpmsync_session_options options = { .debounce_ms = 5, .retry_min_ms = 200 };

	session_stable_ms = 500;
	test_env_start(&env, script, TEST_ENV_TCP | TEST_ENV_STORE);
	account.port = env.port;
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, retries_cb, rt);
	ck_assert_int_eq(cpmsync_session_new(env.loop, env.store, &account, &options, &CALLBACKS,
					     &w, &session),
			 0);
	for (int i = 0; i < 1000 && rt->n < 6; i++)
		cpmsync_loop_iterate(env.loop, 10);
	cpmsync_log_set_handler(CPMSYNC_LOG_WARNING, 0, NULL, NULL);
	session_stable_ms = SESSION_STABLE_MS;
	ck_assert_uint_eq(rt->n, 6);
	ck_assert_uint_eq(w.syncs, 5);
	ck_assert_int_eq(w.last_r, 0);
	cpmsync_session_free(session);
	test_env_end(&env);
}

/* A sync of INBOX and Chat (both empty), ended well: up to the answer of
 * the last UID FETCH, as in FIRST_SYNC_THEN_NOTIFY. */
#define SYNC_ENDED SYNC_INBOX_CHAT(CAPS)

/*
 * A server that lets every sync end well and then closes the connection
 * at once is backed off from: the sync's end reset the back-off, and such
 * a server was retried every retry_min_ms, forever.  A connection on
 * which a sync ended is one that stays once it stayed session_stable_ms
 * (500 ms here) after that sync: its loss then starts from retry_min_ms
 * again.  The server's accepting the wait (NOTIFY) is not enough.
 */
START_TEST(test_backoff_sync_then_close)
{
	struct retries rt = { 0 };
	const struct script_step script[] = {
		/* 1, 2, 3: a sync ended, closed at once */
		SYNC_ENDED,
		{ SCRIPT_ACCEPT, "close" },
		SYNC_ENDED,
		{ SCRIPT_ACCEPT, "close" },
		SYNC_ENDED,
		{ SCRIPT_ACCEPT, "close" },
		/* 4: a sync ended, NOTIFY SET not answered, closed 800 ms on */
		SYNC_ENDED,
		{ SCRIPT_EXPECT, "a7 " NOTIFY_SET },
		{ SCRIPT_SLEEP, "800" },
		{ SCRIPT_ACCEPT, "close" },
		/* 5: a sync ended and NOTIFY set (waiting), closed 50 ms on */
		FIRST_SYNC_THEN_NOTIFY,
		{ SCRIPT_SLEEP, "50" },
		{ SCRIPT_ACCEPT, "close" },
		/* 6: the greeting, then closed (the script ends: no more) */
		{ SCRIPT_SEND, "* OK [CAPABILITY " CAPS "] hi\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};

	run_six_retries(script, &rt);
	/* 200, 400, 800 ms (+-25 %): each sync ended, each connection closed
	 * at once */
	ck_assert_uint_ge(retry_delay(&rt, 0), 150);
	ck_assert_uint_le(retry_delay(&rt, 0), 250);
	ck_assert_msg(retry_delay(&rt, 1) >= 300 && retry_delay(&rt, 1) <= 500, "%s", rt.line[1]);
	ck_assert_msg(retry_delay(&rt, 2) >= 600 && retry_delay(&rt, 2) <= 1000, "%s", rt.line[2]);
	/* lived 800 ms after its sync: 200 ms again */
	ck_assert_msg(retry_delay(&rt, 3) >= 150 && retry_delay(&rt, 3) <= 250, "%s", rt.line[3]);
	/* waiting with NOTIFY, but for 50 ms only: 400 ms */
	ck_assert_msg(retry_delay(&rt, 4) >= 300 && retry_delay(&rt, 4) <= 500, "%s", rt.line[4]);
	/* and backing off from there */
	ck_assert_msg(retry_delay(&rt, 5) >= 600 && retry_delay(&rt, 5) <= 1000, "%s", rt.line[5]);
}
END_TEST

#define IDLE_CAPS "IMAP4rev1 IDLE"
/* A sync of INBOX and Chat (both empty) on a server with IDLE and no
 * NOTIFY, then the wait: INBOX selected, IDLE accepted. */
#define SYNC_THEN_IDLE                                                                             \
	SYNC_INBOX_CHAT(IDLE_CAPS), { SCRIPT_EXPECT, "a7 SELECT INBOX" },                          \
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"    \
			       "a7 OK [READ-WRITE] selected\r\n" },                                \
		{ SCRIPT_EXPECT, "a8 IDLE" },                                                      \
	{                                                                                          \
		SCRIPT_SEND, "+ idling\r\n"                                                        \
	}

/*
 * A server that accepts the push wait (NOTIFY SET answered, IDLE's
 * continuation) and closes the connection at once is backed off from as
 * well: accepting the wait reset the back-off, and such a server got a
 * login and a full sync every retry_min_ms, forever.  The tries space out
 * (200, 400, 800, 1600 ms here); a connection whose wait then held
 * session_stable_ms (500 ms here) starts from retry_min_ms again.
 */
START_TEST(test_backoff_wait_then_close)
{
	struct retries rt = { 0 };
	const struct script_step script[] = {
		/* 1, 2: synced, NOTIFY set (waiting), closed at once */
		FIRST_SYNC_THEN_NOTIFY,
		{ SCRIPT_ACCEPT, "close" },
		FIRST_SYNC_THEN_NOTIFY,
		{ SCRIPT_ACCEPT, "close" },
		/* 3, 4: synced, IDLE accepted, closed at once */
		SYNC_THEN_IDLE,
		{ SCRIPT_ACCEPT, "close" },
		SYNC_THEN_IDLE,
		{ SCRIPT_ACCEPT, "close" },
		/* 5: synced, IDLE accepted, closed 800 ms on */
		SYNC_THEN_IDLE,
		{ SCRIPT_SLEEP, "800" },
		{ SCRIPT_ACCEPT, "close" },
		/* 6: the greeting, then closed (the script ends: no more) */
		{ SCRIPT_SEND, "* OK [CAPABILITY " CAPS "] hi\r\n" },
		{ SCRIPT_CLOSE, NULL },
		{ SCRIPT_END, NULL },
	};

	run_six_retries(script, &rt);
	/* 200, 400, 800, 1600 ms (+-25 %): each connection waited, and
	 * each was closed as soon as the wait began */
	ck_assert_msg(retry_delay(&rt, 0) >= 150 && retry_delay(&rt, 0) <= 250, "%s", rt.line[0]);
	ck_assert_msg(retry_delay(&rt, 1) >= 300 && retry_delay(&rt, 1) <= 500, "%s", rt.line[1]);
	ck_assert_msg(retry_delay(&rt, 2) >= 600 && retry_delay(&rt, 2) <= 1000, "%s", rt.line[2]);
	ck_assert_msg(retry_delay(&rt, 3) >= 1200 && retry_delay(&rt, 3) <= 2000, "%s", rt.line[3]);
	/* the IDLE held 800 ms: 200 ms again */
	ck_assert_msg(retry_delay(&rt, 4) >= 150 && retry_delay(&rt, 4) <= 250, "%s", rt.line[4]);
	/* and backing off from there */
	ck_assert_msg(retry_delay(&rt, 5) >= 300 && retry_delay(&rt, 5) <= 500, "%s", rt.line[5]);
}
END_TEST

/*
 * The process frozen (SIGSTOP, a cgroup freezer) while the server's path
 * died without a word (the peer keeps the connection and never answers
 * again, as a NAT that forgot it): the loop does not run for 2.5 s here,
 * and on the thaw the session sees its freeze check fire far past due and
 * checks the connection as after a network change: dead within probe_ms
 * (300 ms; the wait's refresh is 4 minutes away), and back, synced and
 * waiting with NOTIFY, at once.
 */
START_TEST(test_freeze_probe)
{
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	const struct cpmsync_session_options options = { .debounce_ms = 60000,
							 .retry_min_ms = 50,
							 .probe_ms = 300 };
	const struct script_step script[] = {
		FIRST_SYNC_THEN_NOTIFY, { SCRIPT_EXPECT, "a10 NOOP" }, { SCRIPT_ACCEPT, "keep" },
		FIRST_SYNC_THEN_NOTIFY, { SCRIPT_STALL, NULL },	       { SCRIPT_END, NULL },
	};
	const struct timespec frozen = { .tv_sec = 2, .tv_nsec = 500 * 1000000 };
	uint64_t t0;

	session_freeze_tick_ms = 100;
	session_freeze_late_ms = 1000;
	session = session_start(&env, script, &options, &w);
	waiting_with_notify(&env, session);
	ck_assert_int_eq(nanosleep(&frozen, NULL), 0);
	t0 = mono_ms();
	wait_state(&env, session, CPMSYNC_SESSION_CONNECTING);
	ck_assert_str_eq(cpmsync_session_get_last_error(session),
			 "NOOP: no answer from the server within 300 ms after the process was "
			 "frozen for 2 s or more; the connection is taken for dead");
	w.idle = false;
	ck_assert(test_loop_run_until(env.loop, &w.idle, 3000));
	ck_assert_uint_lt(mono_ms() - t0, 3000);
	waiting_with_notify(&env, session);

	cpmsync_session_free(session);
	test_env_end(&env);
	session_freeze_tick_ms = SESSION_FREEZE_TICK_MS;
	session_freeze_late_ms = SESSION_FREEZE_LATE_MS;
}
END_TEST

/*
 * A network change while backing off (the server closed the connection;
 * the next try in 15 to 25 s): the session connects at once, where local
 * changes meanwhile did not make it try.  Offline, it stays offline.
 */
START_TEST(test_network_change_retry_now)
{
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	const struct cpmsync_session_options options = { .debounce_ms = 60000,
							 .retry_min_ms = 20000 };
	const struct script_step script[] = {
		FIRST_SYNC_THEN_NOTIFY, { SCRIPT_SLEEP, "100" }, { SCRIPT_ACCEPT, "close" },
		FIRST_SYNC_THEN_NOTIFY, { SCRIPT_STALL, NULL },	 { SCRIPT_END, NULL },
	};
	uint64_t t0;

	session = session_start(&env, script, &options, &w);
	wait_state(&env, session, CPMSYNC_SESSION_CONNECTING);
	/* Backing off: nothing for a second, local changes or not (each cut
	 * the back-off short, and each refused try doubled it). */
	for (int i = 0; i < 20; i++) {
		if (i % 4 == 0) {
			cpmsync_session_changed_locally(session);
			cpmsync_session_replay_soon(session);
		}
		cpmsync_loop_iterate(env.loop, 50);
	}
	ck_assert_int_eq(cpmsync_session_get_state(session), CPMSYNC_SESSION_CONNECTING);
	ck_assert_uint_eq(w.syncs, 1);
	t0 = mono_ms();
	w.idle = false;
	cpmsync_session_network_changed(session, "the network changed");
	ck_assert(test_loop_run_until(env.loop, &w.idle, 3000));
	ck_assert_uint_lt(mono_ms() - t0, 3000);
	ck_assert_uint_eq(w.syncs, 2);
	ck_assert_int_eq(w.last_r, 0);
	waiting_with_notify(&env, session);

	/* Offline: a network change is no reason to connect. */
	cpmsync_session_set_online(session, false);
	wait_state(&env, session, CPMSYNC_SESSION_OFFLINE);
	cpmsync_session_network_changed(session, "the network changed");
	for (int i = 0; i < 10; i++)
		cpmsync_loop_iterate(env.loop, 20);
	ck_assert_int_eq(cpmsync_session_get_state(session), CPMSYNC_SESSION_OFFLINE);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * The account edited to name another user while a local change waits for
 * the mailbox the store holds a copy of: the session does not connect
 * (the change would go to the other mailbox), it says why and what to do,
 * and stays so until the settings change.
 */
START_TEST(test_account_edited_to_another_mailbox)
{
	struct cpmsync_session *session = NULL;
	struct cpmsync_account bob = ACCOUNT;
	struct test_env env;
	struct watch w = { 0 };
	const struct cpmsync_session_options options = { .debounce_ms = 60000, .retry_min_ms = 50 };
	const struct script_step script[] = {
		FIRST_SYNC_THEN_NOTIFY,
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	session = session_start(&env, script, &options, &w);
	ck_assert_int_eq(cpmsync_op_create_folder(env.store, "a", "Queued", NULL), 0);
	bob.port = env.port;
	bob.user = "bob";
	ck_assert_int_eq(cpmsync_session_set_account(session, &bob), 0);
	wait_state(&env, session, CPMSYNC_SESSION_ERROR);
	ck_assert_str_eq(cpmsync_session_get_last_error(session),
			 "the store holds the mail of alice@127.0.0.1 with 1 local change not yet"
			 " sent there, and the account's settings now name bob@127.0.0.1: set host"
			 " and user back to send them, or remove the account with D-Bus "
			 "Manager1.RemoveAccount to drop"
			 " them (saved as files first; removing its section from the configuration "
			 "keeps them)");
	/* Not retried: it stays so, without another run. */
	for (int i = 0; i < 10; i++)
		cpmsync_loop_iterate(env.loop, 20);
	ck_assert_int_eq(cpmsync_session_get_state(session), CPMSYNC_SESSION_ERROR);
	ck_assert_uint_eq(w.syncs, 1);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * A folder the LIST shows is gone by its SELECT ([NONEXISTENT]: Dovecot
 * lists some folders of a tree it is deleting): the run goes on, and one
 * full sync more follows after the debounce, which finds it gone and
 * drops it here.  Before, it stayed, with its messages, until the poll
 * (5 minutes).
 */
START_TEST(test_folder_gone_by_select_resynced)
{
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	const struct cpmsync_session_options options = { .debounce_ms = 10 };
	int64_t id = 0;
	const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Del\r\n"
			       "* LIST () \"/\" Del/x\r\na2 OK list\r\n" },
		{ SCRIPT_EXPECT, "a3 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a3 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a4 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a4 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a5 SELECT Del" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a5 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a6 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a6 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a7 SELECT Del/x" },
		{ SCRIPT_SEND, "a7 NO [NONEXISTENT] Mailbox doesn't exist: Del/x\r\n" },
		/* the full sync one more: Del and Del/x are gone */
		{ SCRIPT_EXPECT, "a8 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\na8 OK list\r\n" },
		{ SCRIPT_EXPECT, "a9 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a9 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a10 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a10 OK fetched\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	session = session_start(&env, script, &options, &w);
	ck_assert_int_eq(cpmsync_store_find_folder(env.store, "a", "Del/x", &id), 0);
	wait_syncs(&env, &w, 2);
	ck_assert_int_eq(cpmsync_store_find_folder(env.store, "a", "Del/x", &id),
			 -CPMSYNC_E_NOT_FOUND);
	ck_assert_int_eq(cpmsync_store_find_folder(env.store, "a", "Del", &id),
			 -CPMSYNC_E_NOT_FOUND);
	/* and nothing more */
	for (int i = 0; i < 20; i++)
		cpmsync_loop_iterate(env.loop, 10);
	ck_assert_uint_eq(w.syncs, 2);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * The bound of the one full sync more: a folder the server keeps listing
 * and keeps refusing to SELECT ([NONEXISTENT] each time) gets that one
 * run, not one after every run (a loop of full syncs, a LIST and every
 * folder's SELECT each, until the poll).
 */
START_TEST(test_folder_gone_by_select_resync_bounded)
{
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	const struct cpmsync_session_options options = { .debounce_ms = 10 };
	const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY IMAP4rev1] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY IMAP4rev1] in\r\n" },
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Ghost\r\na2 OK list\r\n" },
		{ SCRIPT_EXPECT, "a3 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a3 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a4 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a4 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a5 SELECT Ghost" },
		{ SCRIPT_SEND, "a5 NO [NONEXISTENT] Mailbox doesn't exist: Ghost\r\n" },
		/* the one full sync more: still listed, still refused */
		{ SCRIPT_EXPECT, "a6 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Ghost\r\na6 OK list\r\n" },
		{ SCRIPT_EXPECT, "a7 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "a7 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a8 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a8 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a9 SELECT Ghost" },
		{ SCRIPT_SEND, "a9 NO [NONEXISTENT] Mailbox doesn't exist: Ghost\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	session = session_start(&env, script, &options, &w);
	wait_syncs(&env, &w, 2);
	/* and no third: the script would see its LIST */
	for (int i = 0; i < 20; i++)
		cpmsync_loop_iterate(env.loop, 10);
	ck_assert_uint_eq(w.syncs, 2);
	ck_assert_int_eq(cpmsync_session_get_state(session), CPMSYNC_SESSION_IDLE);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * The fast run (news in IDLE for the selected INBOX, no SELECT) whose UID
 * FETCHes are refused, as Cyrus refuses every command on a mailbox another
 * client renamed: the run goes on (no failure, no reconnect), and the
 * session lists the folders next on the same connection, before the wait
 * SELECTs INBOX again by a name that may be gone (a refused SELECT falls
 * back to polling).  Before, the run failed and the session logged in
 * again.
 */
#define QR_CAPS "IMAP4rev1 IDLE ENABLE QRESYNC CONDSTORE"
START_TEST(test_fast_run_refused_lists_at_once)
{
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	const struct script_step script[] = {
		{ SCRIPT_SEND, "* OK [CAPABILITY " QR_CAPS "] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY " QR_CAPS "] in\r\n" },
		{ SCRIPT_EXPECT, "a2 ENABLE QRESYNC" },
		{ SCRIPT_SEND, "* ENABLED QRESYNC\r\na2 OK enabled\r\n" },
		{ SCRIPT_EXPECT, "a3 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\na3 OK list\r\n" },
		{ SCRIPT_EXPECT, "a4 STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)" },
		{ SCRIPT_SEND,
		  "* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 8 HIGHESTMODSEQ 5)\r\n"
		  "a4 OK status\r\n" },
		{ SCRIPT_EXPECT, "a5 SELECT INBOX (CONDSTORE)" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "* OK [HIGHESTMODSEQ 5] h\r\na5 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a6 UID FETCH 1:* " },
		{ SCRIPT_SEND, "a6 OK fetched\r\n" },
		{ SCRIPT_EXPECT, "a7 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "* OK [HIGHESTMODSEQ 5] h\r\na7 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a8 IDLE" },
		{ SCRIPT_SEND, "+ idling\r\n" },
		{ SCRIPT_SLEEP, "200" },
		{ SCRIPT_SEND, "* 1 EXISTS\r\n" },
		{ SCRIPT_EXPECT, "DONE" },
		{ SCRIPT_EXPECT, "a9 UID FETCH 1:* (" },
		{ SCRIPT_EXPECT, "a10 UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE 5 VANISHED)" },
		{ SCRIPT_SEND, "a8 OK idled\r\na9 NO Mailbox does not exist\r\n"
			       "a10 NO Mailbox does not exist\r\n" },
		/* the full sync at once, on this connection */
		{ SCRIPT_EXPECT, "a11 LIST \"\" \"*\"" },
		{ SCRIPT_SEND, "* LIST () \"/\" INBOX\r\na11 OK list\r\n" },
		{ SCRIPT_EXPECT, "a12 STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)" },
		{ SCRIPT_SEND,
		  "* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 8 HIGHESTMODSEQ 5)\r\n"
		  "a12 OK status\r\n" },
		{ SCRIPT_EXPECT, "a13 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "* OK [HIGHESTMODSEQ 5] h\r\na13 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a14 IDLE" },
		{ SCRIPT_SEND, "+ idling\r\n" },
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	session = session_start(&env, script, &OPTIONS, &w);
	wait_syncs(&env, &w, 2); /* the fast run: ended well */
	wait_syncs(&env, &w, 3); /* the full one, on the same connection */
	for (int i = 0; i < 30; i++)
		cpmsync_loop_iterate(env.loop, 10);
	ck_assert_int_eq(cpmsync_session_get_state(session), CPMSYNC_SESSION_IDLE);
	ck_assert_int_eq(cpmsync_session_get_push_state(session), CPMSYNC_PUSH_IDLE);

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/* The first run on a QRESYNC server with IDLE (no NOTIFY): INBOX and
 * Chat listed, both empty, selected and fetched; tags a1 to a9. */
#define SYNC_QR_INBOX_CHAT                                                                         \
	{ SCRIPT_SEND, "* OK [CAPABILITY " QR_CAPS "] hi\r\n" },                                   \
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },                                               \
		{ SCRIPT_SEND, "a1 OK [CAPABILITY " QR_CAPS "] in\r\n" },                          \
		{ SCRIPT_EXPECT, "a2 ENABLE QRESYNC" },                                            \
		{ SCRIPT_SEND, "* ENABLED QRESYNC\r\na2 OK enabled\r\n" },                         \
		{ SCRIPT_EXPECT, "a3 LIST \"\" \"*\"" },                                           \
		{ SCRIPT_SEND,                                                                     \
		  "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Chat\r\na3 OK list\r\n" },             \
		{ SCRIPT_EXPECT, "a4 STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)" }, \
		{ SCRIPT_EXPECT, "a5 STATUS Chat (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)" },  \
		{ SCRIPT_SEND,                                                                     \
		  "* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 8 HIGHESTMODSEQ 5)\r\n"        \
		  "a4 OK status\r\n"                                                               \
		  "* STATUS Chat (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7 HIGHESTMODSEQ 3)\r\n"         \
		  "a5 OK status\r\n" },                                                            \
		{ SCRIPT_EXPECT, "a6 SELECT INBOX (CONDSTORE)" },                                  \
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"    \
			       "* OK [HIGHESTMODSEQ 5] h\r\na6 OK [READ-WRITE] selected\r\n" },    \
		{ SCRIPT_EXPECT, "a7 UID FETCH 1:* " }, { SCRIPT_SEND, "a7 OK fetched\r\n" },      \
		{ SCRIPT_EXPECT, "a8 SELECT Chat (CONDSTORE)" },                                   \
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n"    \
			       "* OK [HIGHESTMODSEQ 3] h\r\na8 OK [READ-WRITE] selected\r\n" },    \
		{ SCRIPT_EXPECT, "a9 UID FETCH 1:* " },                                            \
	{                                                                                          \
		SCRIPT_SEND, "a9 OK fetched\r\n"                                                   \
	}

/* SELECT and IDLE on Chat, the wait after Active set on it: tags n and
 * n + 1 (strings). */
#define IDLE_ON_CHAT(n, n1)                                                                        \
	{ SCRIPT_EXPECT, "a" n " SELECT Chat" },                                                   \
		{ SCRIPT_SEND,                                                                     \
		  "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n"                 \
		  "* OK [HIGHESTMODSEQ 3] h\r\na" n " OK [READ-WRITE] selected\r\n" },             \
		{ SCRIPT_EXPECT, "a" n1 " IDLE" },                                                 \
	{                                                                                          \
		SCRIPT_SEND, "+ idling\r\n"                                                        \
	}

/*
 * Active set on another folder while a run is under way, here the fast
 * run of news in IDLE on INBOX (no SELECT): the run ends with INBOX
 * selected and current, and the wait SELECTs Chat and IDLEs there, the
 * last Active choice, without another call.  Before, the run's end took
 * INBOX for the IDLE folder again (sync_done() set sel_current) and the
 * wait IDLEd on it without SELECT: the change was lost until the next.
 */
START_TEST(test_active_during_run_wins)
{
	char fetch[512];
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	int64_t inbox = 0, chat = 0;

	fetch_reply(fetch, sizeof(fetch), 1, 0, MSG, "a12");
	const struct script_step script[] = {
		SYNC_QR_INBOX_CHAT,
		{ SCRIPT_EXPECT, "a10 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "* OK [HIGHESTMODSEQ 5] h\r\na10 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a11 IDLE" },
		{ SCRIPT_SEND, "+ idling\r\n" },
		{ SCRIPT_SLEEP, "200" },
		/* news in INBOX: the fast run, without SELECT */
		{ SCRIPT_SEND, "* 1 EXISTS\r\n" },
		{ SCRIPT_EXPECT, "DONE" },
		{ SCRIPT_EXPECT, "a12 UID FETCH 1:* (" },
		{ SCRIPT_EXPECT, "a13 UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE 5 VANISHED)" },
		/* the test sets Active on Chat meanwhile */
		{ SCRIPT_SLEEP, "300" },
		{ SCRIPT_SEND, "a11 OK idled\r\n" },
		{ SCRIPT_SEND, fetch },
		{ SCRIPT_SEND, "* 1 FETCH (UID 1 FLAGS () MODSEQ (6))\r\na13 OK fetched\r\n" },
		/* IDLE on Chat, the folder now Active */
		IDLE_ON_CHAT("14", "15"),
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	session = session_start(&env, script, &OPTIONS, &w);
	ck_assert_int_eq(cpmsync_store_find_folder(env.store, "a", "INBOX", &inbox), 0);
	ck_assert_int_eq(cpmsync_store_find_folder(env.store, "a", "Chat", &chat), 0);
	ck_assert(cpmsync_session_get_active(session, inbox)); /* the default */
	ck_assert(!cpmsync_session_get_active(session, chat));
	w.syncing = false;
	ck_assert(test_loop_run_until(env.loop, &w.syncing, 5000));
	ck_assert_uint_eq(w.syncs, 1); /* the fast run under way */
	ck_assert_int_eq(cpmsync_session_set_active(session, chat, true), 0);
	wait_syncs(&env, &w, 2);
	ck_assert_uint_eq(messages_in(&env, "INBOX"), 1);
	ck_assert(cpmsync_session_get_active(session, chat));
	ck_assert(!cpmsync_session_get_active(session, inbox));
	w.idle = false;
	ck_assert(test_loop_run_until(env.loop, &w.idle, 5000));
	for (int i = 0; i < 30; i++)
		cpmsync_loop_iterate(env.loop, 10);
	ck_assert_int_eq(cpmsync_session_get_state(session), CPMSYNC_SESSION_IDLE);
	ck_assert_int_eq(cpmsync_session_get_push_state(session), CPMSYNC_PUSH_IDLE);
	ck_assert_uint_eq(w.syncs, 2);

	cpmsync_session_free(session);
	test_env_end(&env); /* the script ran: SELECT Chat and IDLE there */
}
END_TEST

/* Runs the loop ms milliseconds. */
static void run_ms(struct test_env *env, unsigned ms)
{
	uint64_t t0 = mono_ms();

	while (mono_ms() - t0 < ms)
		cpmsync_loop_iterate(env->loop, 10);
}

/*
 * Active set on Chat while the wait after the first run is entered on
 * INBOX, the default: its SELECT out (select_done()), or its IDLE sent and
 * not yet accepted (idle_cont()).  The wait SELECTs Chat and IDLEs there
 * without another call; before, it IDLEd on INBOX until the next change.
 */
static void active_while_entering(const struct script_step *script)
{
	struct cpmsync_session *session = NULL;
	struct test_env env;
	struct watch w = { 0 };
	int64_t chat = 0;

	session = session_first_run(&env, script, &OPTIONS, &w);
	run_ms(&env, 150); /* the peer holds its answer 400 ms */
	ck_assert(!w.idle);
	ck_assert_int_eq(cpmsync_store_find_folder(env.store, "a", "Chat", &chat), 0);
	ck_assert_int_eq(cpmsync_session_set_active(session, chat, true), 0);
	ck_assert(test_loop_run_until(env.loop, &w.idle, 5000));
	run_ms(&env, 300);
	ck_assert_int_eq(cpmsync_session_get_state(session), CPMSYNC_SESSION_IDLE);
	ck_assert_int_eq(cpmsync_session_get_push_state(session), CPMSYNC_PUSH_IDLE);
	ck_assert_uint_eq(w.syncs, 1);

	cpmsync_session_free(session);
	test_env_end(&env); /* the script ran: SELECT Chat and IDLE there */
}

START_TEST(test_active_during_select)
{
	const struct script_step script[] = {
		SYNC_QR_INBOX_CHAT,
		{ SCRIPT_EXPECT, "a10 SELECT INBOX" },
		{ SCRIPT_SLEEP, "400" }, /* Active set on Chat meanwhile */
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "* OK [HIGHESTMODSEQ 5] h\r\na10 OK [READ-WRITE] selected\r\n" },
		IDLE_ON_CHAT("11", "12"),
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	active_while_entering(script);
}
END_TEST

START_TEST(test_active_during_idle_start)
{
	const struct script_step script[] = {
		SYNC_QR_INBOX_CHAT,
		{ SCRIPT_EXPECT, "a10 SELECT INBOX" },
		{ SCRIPT_SEND, "* 0 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 1] n\r\n"
			       "* OK [HIGHESTMODSEQ 5] h\r\na10 OK [READ-WRITE] selected\r\n" },
		{ SCRIPT_EXPECT, "a11 IDLE" },
		{ SCRIPT_SLEEP, "400" }, /* Active set on Chat meanwhile */
		{ SCRIPT_SEND, "+ idling\r\n" },
		{ SCRIPT_EXPECT, "DONE" },
		{ SCRIPT_SEND, "a11 OK idled\r\n" },
		IDLE_ON_CHAT("12", "13"),
		{ SCRIPT_STALL, NULL },
		{ SCRIPT_END, NULL },
	};

	active_while_entering(script);
}
END_TEST

/* A request's answer (cpmsync_pairs_cb_t): r, reason, the first pair. */
struct pairs_answer {
	bool done;
	int r;
	char reason[512];
	char pair[2][64];
};

static void pairs_answer_cb(int r, const char *reason, const char *const *pairs, void *userdata)
{
	struct pairs_answer *a = userdata;

	a->done = true;
	a->r = r;
	snprintf(a->reason, sizeof(a->reason), "%s", reason ? reason : "");
	if (pairs && pairs[0] && pairs[1]) {
		snprintf(a->pair[0], sizeof(a->pair[0]), "%s", pairs[0]);
		snprintf(a->pair[1], sizeof(a->pair[1]), "%s", pairs[1]);
	}
}

#define METADATA_CAPS "IMAP4rev1 METADATA"
/* The session's connection logged in and its first sync's LIST sent, then
 * never answered (a replay of thousands of changes, made endless): the
 * session stays syncing until the command timeout (5 s). */
#define BUSY_IN_SYNC                                                                               \
	{ SCRIPT_SEND, "* OK [CAPABILITY " METADATA_CAPS "] hi\r\n" },                             \
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },                                               \
		{ SCRIPT_SEND, "a1 OK [CAPABILITY " METADATA_CAPS "] in\r\n" },                    \
		{ SCRIPT_EXPECT, "a2 LIST \"\" \"*\"" },                                           \
	{                                                                                          \
		SCRIPT_ACCEPT, "keep"                                                              \
	}

/* A session whose connection is busy in its first sync (BUSY_IN_SYNC). */
static struct cpmsync_session *session_busy(struct test_env *env, const struct script_step *script,
					    struct watch *w)
{
	struct cpmsync_account account = ACCOUNT;
	struct cpmsync_session *session = NULL;

	test_env_start(env, script, TEST_ENV_TCP | TEST_ENV_STORE);
	account.port = env->port;
	ck_assert_int_eq(cpmsync_session_new(env->loop, env->store, &account, &OPTIONS, &CALLBACKS,
					     w, &session),
			 0);
	ck_assert(test_loop_run_until(env->loop, &w->syncing, 3000));
	return session;
}

/*
 * A request while the connection is busy in a sync (its LIST unanswered
 * here; a long replay in life) is not queued behind it: it runs on a
 * second connection of the account, opened for it, and is answered at
 * once.  Queued, it waited for the sync (here until the LIST timed out
 * after 5 s, and then failed with that timeout).
 */
START_TEST(test_request_during_sync)
{
	const char *entries[] = { "/shared/comment", NULL };
	struct cpmsync_session *session;
	struct pairs_answer a = { 0 };
	struct test_env env;
	struct watch w = { 0 };
	const struct script_step script[] = {
		BUSY_IN_SYNC,
		/* the request connection */
		{ SCRIPT_SEND, "* OK [CAPABILITY " METADATA_CAPS "] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 OK [CAPABILITY " METADATA_CAPS "] in\r\n" },
		{ SCRIPT_EXPECT, "a2 GETMETADATA \"\" (/shared/comment)" },
		{ SCRIPT_SEND, "* METADATA \"\" (/shared/comment \"busy-free\")\r\na2 OK got\r\n" },
		/* closed when the session is freed */
		{ SCRIPT_EXPECT_EOF, NULL },
		{ SCRIPT_END, NULL },
	};
	uint64_t t0;

	session = session_busy(&env, script, &w);
	t0 = mono_ms();
	ck_assert_int_eq(cpmsync_session_get_metadata(session, 0, entries, pairs_answer_cb, &a), 0);
	ck_assert(test_loop_run_until(env.loop, &a.done, 4000));
	ck_assert_str_eq(a.reason, "");
	ck_assert_int_eq(a.r, 0);
	ck_assert_str_eq(a.pair[0], "/shared/comment");
	ck_assert_str_eq(a.pair[1], "busy-free");
	ck_assert_uint_lt(mono_ms() - t0, 2000);
	ck_assert_str_eq(cpmsync_session_state_name(cpmsync_session_get_state(session)), "syncing");

	/* Freed with the request connection open (idle, its timer armed). */
	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

/*
 * The second connection refused (the server's connection limit): the
 * request waits for the sync, and fails after CPMSYNC_REQUEST_WAIT_MS
 * (300 ms here; 20 s by default, under D-Bus's 25 s) saying why, long
 * before the sync's end.  Without that bound it waited for the sync.
 */
START_TEST(test_request_refused_connection_bounded)
{
	const char *entries[] = { "/shared/comment", NULL };
	struct cpmsync_session *session;
	struct pairs_answer a = { 0 };
	struct test_env env;
	struct watch w = { 0 };
	const struct script_step script[] = {
		BUSY_IN_SYNC,
		/* the request connection, refused */
		{ SCRIPT_SEND, "* OK [CAPABILITY " METADATA_CAPS "] hi\r\n" },
		{ SCRIPT_EXPECT, "a1 LOGIN alice" },
		{ SCRIPT_SEND, "a1 NO [LIMIT] too many connections\r\n" },
		/* the session's connection kept open past the bound */
		{ SCRIPT_SLEEP, "1500" },
		{ SCRIPT_EXPECT_EOF, NULL },
		{ SCRIPT_END, NULL },
	};
	uint64_t t0, took;

	ck_assert_int_eq(setenv("CPMSYNC_REQUEST_WAIT_MS", "300", 1), 0);
	session = session_busy(&env, script, &w);
	ck_assert_int_eq(unsetenv("CPMSYNC_REQUEST_WAIT_MS"), 0);
	t0 = mono_ms();
	ck_assert_int_eq(cpmsync_session_get_metadata(session, 0, entries, pairs_answer_cb, &a), 0);
	ck_assert(test_loop_run_until(env.loop, &a.done, 4000));
	took = mono_ms() - t0;
	ck_assert_int_eq(a.r, -EBUSY);
	ck_assert_str_eq(a.reason,
			 "the account is busy syncing and a second connection for requests could "
			 "not be opened (the server refused the login for now: [LIMIT] too many "
			 "connections); try again");
	ck_assert_uint_ge(took, 300);
	ck_assert_uint_lt(took, 2000);
	ck_assert_str_eq(cpmsync_session_state_name(cpmsync_session_get_state(session)), "syncing");

	cpmsync_session_free(session);
	test_env_end(&env);
}
END_TEST

static Suite *session_push_suite(void)
{
	Suite *s = suite_create("session-push");
	TCase *tc = tcase_create("notify");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_notify_event_pipelined);
	tcase_add_test(tc, test_notify_sync_noop);
	tcase_add_test(tc, test_notify_keep_fallback);
	tcase_add_test(tc, test_notify_overflow);
	tcase_add_test(tc, test_notify_sync_after_keep);
	tcase_add_test(tc, test_notify_sync_full);
	tcase_add_test(tc, test_notify_poll_sets_once);
	tcase_add_test(tc, test_network_change_probe);
	tcase_add_test(tc, test_network_change_retry_now);
	tcase_add_test(tc, test_one_loss_one_retry);
	tcase_add_test(tc, test_backoff_reset_by_progress);
	tcase_add_test(tc, test_backoff_sync_then_close);
	tcase_add_test(tc, test_backoff_wait_then_close);
	tcase_add_test(tc, test_freeze_probe);
	tcase_add_test(tc, test_account_edited_to_another_mailbox);
	tcase_add_test(tc, test_folder_gone_by_select_resynced);
	tcase_add_test(tc, test_folder_gone_by_select_resync_bounded);
	tcase_add_test(tc, test_fast_run_refused_lists_at_once);
	tcase_add_test(tc, test_active_during_run_wins);
	tcase_add_test(tc, test_active_during_select);
	tcase_add_test(tc, test_active_during_idle_start);
	tcase_add_test(tc, test_host_moved_request_waits);
	tcase_add_test(tc, test_host_moved_no_request_connection);
	tcase_add_test(tc, test_fetch_of_expunged_message);
	tcase_add_test(tc, test_fetch_without_section);
	tcase_add_test(tc, test_request_during_sync);
	tcase_add_test(tc, test_request_refused_connection_bounded);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(session_push_suite)
