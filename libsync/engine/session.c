/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The long-lived account (cpmsync/session.h): one connection that the
 * sync engine and the push wait take turns on.
 *
 *   offline --online--> connecting --READY--> syncing --ok--> waiting
 *      ^                    ^  |                  |             |
 *      |                    |  +--fail: back-off--+             |
 *      +----Online=false----+-----------------------------------+
 *
 * Waiting ("idle"):
 *   NOTIFY offered:  NOTIFY SET STATUS (personal (MessageNew MessageExpunge
 *     FlagChange MailboxName)).  Its STATUS indicator makes the server
 *     report every folder's state at once; each report, then and later,
 *     is compared with the store, and a difference schedules a sync.  That
 *     closes the window between the end of the sync and the start of the
 *     wait.  NOTIFY NONE before each sync keeps the engine's responses its
 *     own.  A STATUS naming a folder the store has syncs the folders so
 *     named alone (engine_sync_only(): no LIST); a LIST (created, deleted,
 *     renamed), a STATUS for a folder not in the store, an OK
 *     [NOTIFICATIONOVERFLOW] (the server stopped notifying) or anything
 *     else syncs everything, and so does the poll.
 *     Dovecot 2.3.19 (mailbox-list-index-notify.c) watches its list index
 *     log by inotify from the start of NOTIFY SET, and stays on the old
 *     file when that log rotates (past 64 KB, or 8 KB and 5 min old; fixed
 *     in its code): NOTIFY then tells nothing but INBOX until its
 *     mailbox_idle_check_interval (30 s) finds the change.  The STATUS of
 *     every folder after a full sync rewrites the records the sync made
 *     stale (~64 KB for 1,202 folders) and may rotate that log: so after a
 *     full sync NOTIFY is set, unset and set again (notify_done()); not
 *     after one that selected no folder and sent no change (a poll with
 *     nothing new: LIST-STATUS alone), whose STATUS writes nothing (0 B of
 *     that log over 3 polls at 1,800 folders).  A rotation later (the log
 *     refilled, another writer) is not seen from here: the next event then
 *     waits for those 30 s, and the sync it brings sets NOTIFY again.
 *   IDLE only:  SELECT the active folder, compare its UIDVALIDITY/UIDNEXT/
 *     HIGHESTMODSEQ/EXISTS with the store (the same window), then IDLE;
 *     any EXISTS/EXPUNGE/FETCH/VANISHED ends IDLE at once (no debounce)
 *     and syncs that folder alone (engine_sync_only(): no LIST).  The
 *     other folders are checked by a full sync every poll interval
 *     (LIST-STATUS makes that one command when nothing changed).
 *   Neither:  a sync every poll interval.
 * The wait is refreshed every idle_refresh_ms (DONE + IDLE, or a NOOP
 * under NOTIFY), each under the command deadline, so a silent or
 * half-open connection is found within idle_refresh + command timeout.
 *
 * Requests that need the server (GETMETADATA, GETACL, MYRIGHTS, a FETCH
 * of a body or of annotations not stored, CONVERT, SEARCH) are read-only:
 * what changes the server is journaled and replayed, never a request.
 * They run on this connection when it waits (leaving IDLE or NOTIFY for
 * them).  While it is busy with a sync or a replay, or still connecting,
 * they run on a second connection of the account, for requests alone
 * (rconn_*()): opened on demand with the same settings and connect code,
 * one at most, closed after REQ_CONN_IDLE_MS without a request.  A
 * replay of 20,000 changes takes half an hour; a Search must not wait for
 * it.  That connection selects (EXAMINEs) its own folders; the engine's
 * selected folder is this one's.  When it cannot be opened (the server's
 * connection limit, a login refused) requests wait here as before, but
 * none waits longer than REQUEST_WAIT_MS: it then fails saying the
 * account is busy, rather than leaving its D-Bus caller without an
 * answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/session.h>

#include "engine/engine-session.h"
#include "engine/plan.h"
#include "engine/session-internal.h"
#include "imap/imap-client.h"
#include "imap/imap-convert.h"
#include "imap/imap-utf7.h"
#include "store/store-sync.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/flags.h"
#include "util/jitter.h"
#include "util/log.h"
#include "util/loop-stall.h"
#include "util/macro.h"
#include "util/msg-summary.h"

#define CAT CPMSYNC_LOG_CAT_ENGINE

#define DEFAULT_POLL_MS	     (300u * 1000)
#define DEFAULT_REFRESH_MS   (240u * 1000)
#define MAX_REFRESH_MS	     (25u * 60 * 1000) /* RFC 2177: re-IDLE before 29 min */
#define DEFAULT_RETRY_MIN_MS 1000u
#define DEFAULT_RETRY_MAX_MS (300u * 1000)
#define DEFAULT_DEBOUNCE_MS  5u
/* cpmsync_session_network_changed(): a round trip on a live connection
 * takes milliseconds; a mobile link waking its radio, a second or two. */
#define DEFAULT_PROBE_MS 10000u
/* Syncs in a row started by the wait's own re-check (not by news). */
#define MAX_CHECK_SYNCS 2
#define MAX_ACTIVE	64
/* Folders NOTIFY named since the last sync, synced alone; more: a full sync. */
#define MAX_NOTIFY_FOLDERS 64
/*
 * How long NOTIFY may stay set through the syncs of the folders it named
 * (kick()) before the next such sync sets it again the old way (NONE before
 * the run, SET STATUS of every folder after).  Dovecot 2.3 keeps its watch
 * on the list index log as it was at NOTIFY SET and does not follow the
 * log's rotation (past 64 KB, or 8 KB and 5 min old; see 33c3fea): after
 * one, events of folders other than INBOX come only with Dovecot's own
 * 30 s check until NOTIFY is set again.  Setting it again after every
 * event bounded that to one event, at the price of every folder's STATUS
 * per event; this bounds it to a minute, at one such report a minute at
 * most while events come.
 */
#define NOTIFY_KEEP_MS (60u * 1000)
/* For tests only: CPMSYNC_NOTIFY_KEEP_MS in the environment (milliseconds,
 * 0 to 3600000) replaces NOTIFY_KEEP_MS for the sessions made after it is
 * set, so that a test reaches the NOTIFY NONE fallback without waiting a
 * minute (tests/unit/test-session-push.c).  Read with secure_getenv(). */
#define NOTIFY_KEEP_ENV	    "CPMSYNC_NOTIFY_KEEP_MS"
#define NOTIFY_KEEP_ENV_MAX (3600u * 1000)
/*
 * The request connection (rconn_*()): closed after this long without a
 * request.  Long enough that a burst of requests (an application opening
 * a conversation: a Search, then a Fetch per message, each a user's click
 * apart) shares one login; short enough not to hold one of the user's
 * connection slots (Dovecot's mail_max_userip_connections is 10 per user
 * and address, shared with the user's other clients) for long after the
 * sync that made it needed.  A request later than that pays one login
 * again (a round trip or three), which is cheap next to a slot held.
 */
#define REQ_CONN_IDLE_MS (45u * 1000)
/* After it could not be opened: requests wait for the main connection
 * for this long before another try (a server at its connection limit
 * would only refuse every request's login again). */
#define REQ_CONN_RETRY_MS (60u * 1000)
/* The longest a request waits in the queue before it fails saying why:
 * under the D-Bus default timeout (25 s), so that the caller gets that
 * answer and not NoReply. */
#define REQUEST_WAIT_MS (20u * 1000)
/* For tests only: CPMSYNC_REQUEST_WAIT_MS in the environment (milliseconds,
 * 1 to REQUEST_WAIT_MS) replaces it for the sessions made after it is set
 * (tests/integration/test-request-conn.sh).  Read with secure_getenv(). */
#define REQUEST_WAIT_ENV "CPMSYNC_REQUEST_WAIT_MS"
/* Largest section a Fetch request spools to a temporary file; a larger
 * literal is read and dropped, and the request fails saying so. */
#define SESSION_FETCH_MAX (1ull << 30)

enum wait_step {
	WAIT_NONE,	/* not waiting */
	WAIT_PREPARING, /* UNSELECT / SELECT / NOTIFY SET in flight */
	WAIT_IDLING,	/* IDLE running, or NOTIFY set and quiet */
	WAIT_LEAVING,	/* DONE or NOTIFY NONE sent */
};

enum req_kind {
	REQ_METADATA,
	REQ_ACL,
	REQ_MYRIGHTS,
	REQ_FETCH,
	REQ_SEARCH,
	REQ_CONVERT,
	REQ_ANNOTATION,
};

struct request {
	struct request *next;
	struct cpmsync_session *s;
	enum req_kind kind;
	int64_t folder_id, message_id;
	uint32_t uid;
	char *mailbox; /* server name */
	char **entries;
	char *section;
	char *format;		/* REQ_CONVERT: the media type asked for */
	uint32_t width, height; /* REQ_CONVERT: pix-x, pix-y */
	struct cpmsync_search_criteria crit;
	char **crit_strings; /* owned copies behind crit */
	/* REQ_ANNOTATION: entries asked for (entries) and those fetched */
	bool shared;
	char **fetch_entries;
	union {
		cpmsync_pairs_cb_t pairs;
		cpmsync_string_cb_t string;
		cpmsync_data_cb_t data;
		cpmsync_ids_cb_t ids;
	} cb;
	void *userdata;
	/* results */
	char **pairs;
	size_t n_pairs, alloc_pairs;
	char *string;
	int fd;
	uint64_t size;
	bool streaming;
	bool too_big;  /* the server announced more than SESSION_FETCH_MAX */
	bool answered; /* REQ_FETCH, REQ_CONVERT: a FETCH of uid came */
	int64_t *ids;
	size_t n_ids, alloc_ids;
	struct rangeset uids;
	uint64_t queued_ms; /* when it was queued (REQUEST_WAIT_MS) */
};

struct cpmsync_session {
	struct cpmsync_loop *loop;
	struct cpmsync_store *pub;
	struct store *store;
	struct cpmsync_session_options opt;
	struct cpmsync_session_callbacks cb;
	void *userdata;

	/* The account, copied. */
	struct cpmsync_account account;
	char *name, *host, *user, *ca_file, *client_cert;
	char **folders;
	int64_t account_id;

	bool online;
	bool auth_stopped;
	enum cpmsync_session_state state;
	enum cpmsync_push_state push;
	char last_error[512];
	uint64_t last_sync;
	char **caps;

	struct imap_client *client; /* NULL while lent to the engine */
	bool connecting;
	struct cpmsync_sync *sync;
	bool sync_wanted;
	/* Why: only news for the folder selected in IDLE (fast_news), or
	 * anything else too (full_wanted: LIST, a poll, connecting ...). */
	bool fast_news, full_wanted;
	/* The last run was the full sync one more that a folder gone by its
	 * SELECT asked for (sync_done()): another such one asks for none. */
	bool gone_resync;
	/* NOTIFY STATUS events for folders the store has: those folders
	 * alone (engine_sync_only()), unless full_wanted. */
	int64_t notify_ids[MAX_NOTIFY_FOLDERS];
	size_t n_notify;
	/* The store's folders and their status, loaded at the first STATUS
	 * of a NOTIFY wait (NOTIFY SET reports every folder: 1,202 lines
	 * were 2,404 store queries): a line equal to its entry is dropped
	 * in memory, any other asks the store as before. */
	struct store_folder_index fidx;
	bool fidx_loaded;
	unsigned check_syncs;
	unsigned retry_ms;
	/* The connection (connection_lost()): when the first sync that
	 * ended well on it ended (0: none yet). */
	uint64_t conn_synced_ms;
	struct cpmsync_loop_source *retry_timer, *debounce_timer, *poll_timer, *refresh_timer;
	/* The freeze check (freeze_cb()): armed while connected, due then. */
	struct cpmsync_loop_source *freeze_timer;
	uint64_t freeze_due, freeze_own_ms; /* and loop_own_work_ms() then */
	struct cpmsync_loop_source *kick_src;

	enum wait_step wait;
	int64_t idle_cmd;
	bool wait_notify; /* the wait uses NOTIFY */
	/* After a full sync: NOTIFY SET, NONE and SET again (notify_done());
	 * 2: the first SET in flight, 1: the NONE. */
	unsigned notify_rearm;
	/* The last sync was a full one, and it selected a folder or sent a
	 * change (sync_done()). */
	bool full_synced;
	/* Sync() under NOTIFY with nothing pending (sync_check()): the NOOP
	 * in flight, and another Sync() that came while it was. */
	int64_t check_cmd;
	bool check_again;
	/* A run of NOTIFY-named folders with NOTIFY left set (kick()): the
	 * folders to ask STATUS of after it (its own, and those events named
	 * during it), instead of NOTIFY NONE and SET STATUS, which reported
	 * every folder again (1,202 lines an event in bench-cpm). */
	bool notify_kept;
	struct imap_client *lent; /* the connection, lent to that run */
	int64_t recheck_ids[MAX_NOTIFY_FOLDERS];
	size_t n_recheck;
	bool recheck_full; /* more than fit: a full sync after */
	unsigned recheck_left;
	unsigned recheck_syncs;	 /* runs in a row that a recheck started */
	uint64_t notify_set_ms;	 /* when the last NOTIFY SET STATUS was sent */
	uint64_t notify_keep_ms; /* NOTIFY_KEEP_MS, or NOTIFY_KEEP_ENV's */
	char delimiter;
	/* SELECT state of the active folder (IDLE mode). */
	uint32_t sel_uidvalidity, sel_uidnext, sel_exists;
	uint64_t sel_hms;
	/* The IDLE folder is selected on the connection, and the store held
	 * what the server told of it when the IDLE began (sel_exists
	 * messages, counted on since): its news is synced without SELECT
	 * (engine_sync_selected()), and IDLE starts again without one. */
	bool sel_current;
	/* VANISHED UIDs the server sent in that IDLE (sel_current): handed
	 * to the fast run (engine_sync_selected_vanished()), which expunges
	 * them, as the server need not report them again. */
	struct rangeset idle_vanished;

	char *idle_folder; /* server name IDLE watches (NULL: INBOX) */
	int64_t active[MAX_ACTIVE];
	size_t n_active;
	bool active_default; /* INBOX, until set_active changes it */
	/* Active changed since idle_folder was chosen (select_idle_folder()):
	 * what a run, a SELECT or an IDLE under way then tells is of the
	 * folder chosen before; the wait after them chooses again. */
	bool idle_moved;

	struct request *requests, *requests_tail;
	struct request *running;
	/* Fails queued requests that waited REQUEST_WAIT_MS (request_wait_ms). */
	struct cpmsync_loop_source *wait_timer;
	uint64_t request_wait_ms;

	/* The request connection (rconn_*()), and the request running on it. */
	struct imap_client *rclient;
	bool rconnecting;
	struct request *rrunning;
	struct cpmsync_loop_source *ridle_timer;
	/* When it last could not be opened (0: not since it last was), and why. */
	uint64_t rrefused_ms;
	char rrefused[256];
};

static void kick(struct cpmsync_session *s);
static void schedule_kick(struct cpmsync_session *s);
static void request_finish(struct request *rq, int r, const char *reason);

static const char *const state_names[] = {
	[CPMSYNC_SESSION_OFFLINE] = "offline", [CPMSYNC_SESSION_CONNECTING] = "connecting",
	[CPMSYNC_SESSION_SYNCING] = "syncing", [CPMSYNC_SESSION_IDLE] = "idle",
	[CPMSYNC_SESSION_ERROR] = "error",
};

static const char *const push_names[] = {
	[CPMSYNC_PUSH_OFF] = "off",
	[CPMSYNC_PUSH_POLL] = "poll",
	[CPMSYNC_PUSH_IDLE] = "idle",
	[CPMSYNC_PUSH_NOTIFY] = "notify",
};

const char *cpmsync_session_state_name(enum cpmsync_session_state st)
{
	return (unsigned)st < ARRAY_SIZE(state_names) ? state_names[st] : NULL;
}

const char *cpmsync_push_state_name(enum cpmsync_push_state p)
{
	return (unsigned)p < ARRAY_SIZE(push_names) ? push_names[p] : NULL;
}

/* ------------------------------------------------------------------ */
/* Properties */

static void changed(struct cpmsync_session *s)
{
	if (s->cb.changed)
		s->cb.changed(s, s->userdata);
}

static void set_state(struct cpmsync_session *s, enum cpmsync_session_state st,
		      enum cpmsync_push_state push)
{
	if (s->state == st && s->push == push)
		return;
	log_debug(CAT, "%s: %s, push %s", s->name, state_names[st], push_names[push]);
	s->state = st;
	s->push = push;
	changed(s);
}

static void set_error(struct cpmsync_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_error(struct cpmsync_session *s, const char *fmt, ...)
{
	char buf[sizeof(s->last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (streq(buf, s->last_error))
		return;
	memcpy(s->last_error, buf, sizeof(buf));
	changed(s);
}

static void strv_free(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

static char **strv_copy(const char *const *v)
{
	size_t n = 0;
	char **c;

	while (v && v[n])
		n++;
	c = calloc(n + 1, sizeof(char *));
	if (!c)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		c[i] = strdup(v[i]);
		if (!c[i]) {
			strv_free(c);
			return NULL;
		}
	}
	return c;
}

static void record_caps(struct cpmsync_session *s)
{
	const struct imap_caps *caps = imap_client_caps(s->client);
	_cleanup_free_ char *text = NULL;
	char **v, *tok, *save = NULL;
	size_t n = 0;

	if (!caps || !caps->text)
		return;
	text = strdup(caps->text);
	if (!text)
		return;
	v = calloc(strlen(text) / 2 + 2, sizeof(char *));
	if (!v)
		return;
	for (tok = strtok_r(text, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		if (!(v[n] = strdup(tok)))
			break;
		else
			n++;
	strv_free(s->caps);
	s->caps = v;
	changed(s);
}

/* ------------------------------------------------------------------ */
/* Timers */

static void timer_set(struct cpmsync_session *s, struct cpmsync_loop_source **src, uint64_t ms,
		      cpmsync_loop_cb_t cb)
{
	if (*src) {
		cpmsync_loop_timer_set(*src, ms ? ms : 1, 0);
		return;
	}
	if (cpmsync_loop_add_timer(s->loop, ms ? ms : 1, 0, cb, s, NULL, src) < 0)
		*src = NULL; /* out of memory: the next event kicks again */
}

static void timer_stop(struct cpmsync_loop_source **src)
{
	*src = cpmsync_loop_source_remove(*src);
}

static void kick_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_session *s = userdata;

	(void)src;
	s->kick_src = NULL;
	kick(s);
}

/* kick() from the loop, never from inside a callback of our own callers. */
static void schedule_kick(struct cpmsync_session *s)
{
	if (!s->kick_src)
		cpmsync_loop_defer(s->loop, kick_cb, s, NULL, &s->kick_src);
}

static void debounce_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_session *s = userdata;

	(void)src;
	s->debounce_timer = cpmsync_loop_source_remove(s->debounce_timer);
	s->sync_wanted = true;
	kick(s);
}

/* Something changed (or may have): sync soon. */
static void want_sync(struct cpmsync_session *s, bool from_news)
{
	if (from_news)
		s->check_syncs = 0;
	if (!s->debounce_timer)
		timer_set(s, &s->debounce_timer, s->opt.debounce_ms, debounce_cb);
}

static void poll_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_session *s = userdata;

	(void)src;
	s->poll_timer = cpmsync_loop_source_remove(s->poll_timer);
	log_debug(CAT, "%s: poll", s->name);
	s->full_wanted = true;
	want_sync(s, true);
}

static void retry_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_session *s = userdata;

	(void)src;
	s->retry_timer = cpmsync_loop_source_remove(s->retry_timer);
	kick(s);
}

/* ------------------------------------------------------------------ */
/* Connection */

unsigned session_freeze_tick_ms = SESSION_FREEZE_TICK_MS;
unsigned session_freeze_late_ms = SESSION_FREEZE_LATE_MS;
unsigned session_stable_ms = SESSION_STABLE_MS;

static void freeze_cb(struct cpmsync_loop_source *src, void *userdata);

static void freeze_arm(struct cpmsync_session *s)
{
	s->freeze_due = cpmsync_now_ms() + session_freeze_tick_ms;
	s->freeze_own_ms = loop_own_work_ms();
	timer_set(s, &s->freeze_timer, session_freeze_tick_ms, freeze_cb);
}

/*
 * A process stopped (SIGSTOP) or frozen (a cgroup freezer: a handset's app
 * freezer, systemctl freeze) runs nothing, but its clocks and the network
 * go on: a connection a NAT dropped meanwhile, or whose route went, looks
 * as fine as before, and was found only by the wait's refresh (207 s after
 * the thaw in a test, up to idle_refresh_ms + the command timeout).  A
 * suspend is told by the host (netwatch's resume), a freeze by nothing: so
 * this timer, whose firing far later than due says the loop did not run
 * meanwhile; the connection is then checked as after a network change (a
 * NOOP or DONE answered within probe_ms, else reconnect).  A freeze of
 * less than session_freeze_late_ms goes unseen, and so may one of less than
 * that plus session_freeze_tick_ms (no tick due early enough in it); the
 * cost is a wake-up each session_freeze_tick_ms while connected (no
 * traffic, and no wake-up of a suspended host: CLOCK_MONOTONIC).
 */
static void freeze_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_session *s = userdata;
	/* Late by a stop, not by our own work (a store write of seconds:
	 * util/loop-stall.h). */
	uint64_t late =
		loop_stalled_since(s->loop, s->freeze_due, loop_own_work_ms() - s->freeze_own_ms);
	char why[64];

	(void)src;
	freeze_arm(s);
	/* Lent to a run (no client here): its commands' deadlines watch it. */
	if (late < session_freeze_late_ms || !s->client || s->connecting)
		return;
	/* At least that long: it began after the last tick ran. */
	snprintf(why, sizeof(why), "the process was frozen for %" PRIu64 " s or more", late / 1000);
	cpmsync_session_network_changed(s, why);
}

static void drop_connection(struct cpmsync_session *s)
{
	timer_stop(&s->refresh_timer);
	timer_stop(&s->poll_timer);
	timer_stop(&s->freeze_timer);
	s->wait = WAIT_NONE;
	s->idle_cmd = 0;
	s->notify_rearm = 0;
	s->check_cmd = 0;
	s->check_again = false;
	s->notify_kept = false;
	s->n_recheck = 0;
	s->recheck_left = 0;
	s->sel_current = false;
	rangeset_clear(&s->idle_vanished);
	s->connecting = false;
	s->conn_synced_ms = 0;
	if (s->client)
		s->client = imap_client_free(s->client);
}

/* The connection failed or closed: back off and try again. */
static void connection_lost(struct cpmsync_session *s, int r, const char *reason)
{
	uint64_t stayed = s->conn_synced_ms ? cpmsync_now_ms() - s->conn_synced_ms : 0;
	unsigned delay;

	/*
	 * A sync that ended well resets the back-off only once the
	 * connection proved to stay: it was lost session_stable_ms or more
	 * after that sync's end.  Reset at the sync's end, a server that lets
	 * the sync end and closes the connection at once was retried every
	 * retry_min_ms, forever; reset as soon as the server accepted the
	 * wait (IDLE's continuation, NOTIFY SET answered), so was one that
	 * accepts IDLE or NOTIFY and closes at once (a login and a full sync
	 * every second or so).  Time alone tells that the server keeps the
	 * connection: such a server now costs one try per grown back-off (up
	 * to retry_max_ms), and one that keeps it session_stable_ms one try
	 * per that much at most.  A run that stored changes resets it at its
	 * end all the same (sync_done()), and so does a network change.
	 */
	if (s->conn_synced_ms && stayed >= session_stable_ms &&
	    s->retry_ms != s->opt.retry_min_ms) {
		log_debug(CAT,
			  "%s: the connection stayed %" PRIu64 " ms after its sync: "
			  "back-off reset",
			  s->name, stayed);
		s->retry_ms = s->opt.retry_min_ms;
	}
	drop_connection(s);
	if (!s->online)
		return;
	if (r == -CPMSYNC_E_AUTH || r == -CPMSYNC_E_CONFIG) {
		/* Retrying a refused login only locks the account; the
		 * store's copy of another mailbox (engine_account_identity())
		 * stays so until the settings change. */
		s->auth_stopped = true;
		set_error(s, "%s", reason ? reason : cpmsync_strerror(r));
		log_msg(CPMSYNC_LOG_ERR, CAT, "%s: %s; not retrying until the settings change",
			s->name, s->last_error);
		set_state(s, CPMSYNC_SESSION_ERROR, CPMSYNC_PUSH_OFF);
		return;
	}
	set_error(s, "%s", reason ? reason : cpmsync_strerror(r));
	/* Exponential back-off with +-25 % jitter, so that many clients cut
	 * off together do not come back together. */
	delay = s->retry_ms;
	delay = jitter_quarter(delay);
	if (s->retry_ms < s->opt.retry_max_ms / 2)
		s->retry_ms *= 2;
	else
		s->retry_ms = s->opt.retry_max_ms;
	log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: %s; retrying in %u ms", s->name, s->last_error,
		delay);
	timer_set(s, &s->retry_timer, delay, retry_cb);
	set_state(s, CPMSYNC_SESSION_CONNECTING, CPMSYNC_PUSH_OFF);
}

static void on_untagged(struct imap_client *client, const struct imap_response *resp,
			void *userdata);

static void on_state(struct imap_client *client, int r, const char *reason, void *userdata)
{
	struct cpmsync_session *s = userdata;

	if (r == 0 && imap_client_get_state(client) == IMAP_CLIENT_READY) {
		s->connecting = false;
		s->conn_synced_ms = 0;
		log_debug(CAT, "%s: connected", s->name);
		record_caps(s);
		freeze_arm(s);
		/* Push through IDLE (no NOTIFY): every news is a sync of
		 * pipelined commands, whose answers a Nagle server (Cyrus)
		 * holds for our ACK (imap-client.h). */
		imap_client_set_quick_ack(client, !imap_client_has(client, IMAP_CAP_NOTIFY) &&
							  imap_client_has(client, IMAP_CAP_IDLE));
		s->sync_wanted = true;
		s->full_wanted = true;
		schedule_kick(s);
		return;
	}
	/* Fail whatever request was running on it. */
	if (s->running) {
		struct request *rq = s->running;

		s->running = NULL;
		request_finish(rq, r < 0 ? r : -CPMSYNC_E_DISCONNECTED,
			       reason ? reason : "the connection was lost");
	}
	connection_lost(s, r < 0 ? r : -CPMSYNC_E_DISCONNECTED, reason);
	schedule_kick(s);
}

static const struct imap_client_callbacks session_callbacks = {
	.state = on_state,
	.untagged = on_untagged,
};

static void connect_now(struct cpmsync_session *s)
{
	_cleanup_free_ char *not_ours = NULL;
	int r;

	/* Not a byte to a server the store's copy is not of. */
	r = engine_account_identity(s->store, s->account_id, &s->account, &not_ours);
	if (r < 0) {
		connection_lost(s, r, not_ours ? not_ours : cpmsync_strerror(r));
		return;
	}
	r = imap_client_new(s->loop, &s->account, &session_callbacks, s, &s->client);
	if (r >= 0)
		r = imap_client_connect(s->client);
	if (r < 0) {
		const char *why = s->client && imap_client_error(s->client)[0]
					  ? imap_client_error(s->client)
					  : cpmsync_strerror(r);
		char reason[512];

		snprintf(reason, sizeof(reason), "%s", why);
		connection_lost(s, r, reason);
		return;
	}
	s->connecting = true;
	set_state(s, CPMSYNC_SESSION_CONNECTING, CPMSYNC_PUSH_OFF);
}

/* ------------------------------------------------------------------ */
/* Sync */

static enum cpmsync_push_state push_mode(struct cpmsync_session *s)
{
	if (!s->client)
		return CPMSYNC_PUSH_OFF;
	if (imap_client_has(s->client, IMAP_CAP_NOTIFY))
		return CPMSYNC_PUSH_NOTIFY;
	if (imap_client_has(s->client, IMAP_CAP_IDLE))
		return CPMSYNC_PUSH_IDLE;
	return CPMSYNC_PUSH_POLL;
}

static void full_sync_wanted(struct cpmsync_session *s);

static void sync_done(int r, const char *reason, const struct cpmsync_sync_stats *stats,
		      void *userdata)
{
	struct cpmsync_session *s = userdata;
	int fast = s->sync ? engine_selected_state(s->sync, &s->sel_exists) : 0;
	uint64_t committed = s->sync ? engine_work_committed(s->sync) : 0;
	bool selected_gone = s->sync && engine_selected_gone(s->sync);
	bool needs_list = s->sync && engine_replay_needs_list(s->sync);

	s->sync = NULL;
	s->lent = NULL;
	/* Not when Active changed during the run: IDLE is to move. */
	s->sel_current = r == 0 && (fast == 1 || fast == 3) && !s->idle_moved;
	if (r == 0 && (fast == 2 || fast == 3)) {
		/* Synced without SELECT, but news came after (3: again the
		 * same way), or the store and the server's count differ, or
		 * another folder was selected (2: SELECTed this time). */
		s->fast_news = true;
		s->sync_wanted = true;
	}
	if (r == 0 && (selected_gone || needs_list)) {
		/*
		 * The selected folder refused a command (Cyrus, once another
		 * client renamed or deleted it): the full sync at once, on
		 * this connection, before the wait SELECTs it by a name that
		 * may be gone (a refused SELECT falls back to polling).  The
		 * run went on without it; failing it cost a reconnect.  So
		 * does a replay whose SELECT was refused in a run without
		 * LIST: its changes wait for the LIST to find the folder's
		 * new name, in that sync, not for a retry minutes later.
		 */
		s->gone_resync = true;
		s->full_wanted = true;
		s->sync_wanted = true;
	} else if (r == 0 && stats->folders_gone && !s->gone_resync) {
		/*
		 * A folder the LIST showed was gone by its SELECT: the server
		 * was deleting a tree of folders (Dovecot lists some of them
		 * while it does).  Kept here until the next full sync (the
		 * poll, 5 minutes), they showed messages deleted on the
		 * server.  One full sync more, after the debounce; not again
		 * for a folder the server keeps listing and refusing.
		 */
		s->gone_resync = true;
		full_sync_wanted(s);
	} else if (r == 0) {
		s->gone_resync = false;
	}
	/* Folders selected: those synced to their end, and those whose
	 * SELECT was refused (a run that ended well finished the others). */
	if (r == 0 && s->full_synced && !stats->folders_synced && !stats->folders_refused &&
	    !stats->ops_replayed) {
		/*
		 * NOTIFY SET, NONE and SET again after a full sync (see the
		 * top) is for the list index records that sync made stale:
		 * the first SET's STATUS rewrites them and may rotate Dovecot's
		 * list index log under its watch.  A full sync that selected
		 * no folder and sent no change (a poll with nothing new: its
		 * LIST-STATUS alone) made none stale: that STATUS writes
		 * nothing, and the second SET only reported every folder again
		 * (1,800 lines each poll at 1,800 folders).  One SET.
		 */
		s->full_synced = false;
	}
	if (r == 0) {
		s->last_sync = (uint64_t)time(NULL);
		/* The back-off is reset when the connection is lost
		 * (connection_lost()), or now for a run that stored changes. */
		if (!s->conn_synced_ms)
			s->conn_synced_ms = cpmsync_now_ms();
		if (committed)
			s->retry_ms = s->opt.retry_min_ms;
		if (s->last_error[0])
			set_error(s, "%s", "");
		changed(s);
	} else if (r != -CPMSYNC_E_CANCELED) {
		set_error(s, "%s", reason ? reason : cpmsync_strerror(r));
	}
	if (s->cb.synced)
		s->cb.synced(s, r, reason, stats, s->userdata);
	if (r == -CPMSYNC_E_CANCELED) {
		/* Offline or reconfigured (a freed session detached first). */
		schedule_kick(s);
		return;
	}
	if (s->client) {
		imap_client_set_callbacks(s->client, &session_callbacks, s);
		if (r == 0 && (stats->messages_added || stats->messages_changed ||
			       stats->messages_removed || stats->ops_replayed))
			s->check_syncs = 0;
	} else if (s->online) {
		if (committed && s->retry_ms != s->opt.retry_min_ms) {
			/*
			 * The run stored what it fetched (or replayed local
			 * changes) before the connection went: a link that
			 * works, however short its spells.  Back-off grown by
			 * earlier failures then kept it away longest when it
			 * worked best (a link dropping more often than the
			 * first sync takes: 0.8 s to 28 s while the store
			 * grew by 4,358 messages).  A server that takes the
			 * login and drops the connection stores nothing, and
			 * is still backed off from.
			 */
			log_debug(CAT,
				  "%s: the run stored %" PRIu64 " change(s) before it failed: "
				  "back-off reset",
				  s->name, committed);
			s->retry_ms = s->opt.retry_min_ms;
		}
		connection_lost(s, r < 0 ? r : -CPMSYNC_E_DISCONNECTED, reason);
	}
	schedule_kick(s);
}

static void sync_progress(void *userdata, const char *folder, uint32_t done, uint32_t total)
{
	struct cpmsync_session *s = userdata;

	if (s->cb.progress)
		s->cb.progress(s, folder, done, total, s->userdata);
}

/*
 * The fast path: when the only news since the last sync came in IDLE for
 * the folder IDLE watches, sync that folder alone (no LIST of every
 * folder); the others are left to the poll as they are while waiting.
 */
static int64_t fast_folder(struct cpmsync_session *s)
{
	struct store_folder_status st;

	if (!s->fast_news || s->full_wanted)
		return 0;
	if (store_sync_folder_status(s->store, s->account_id,
				     s->idle_folder ? s->idle_folder : "INBOX", &st) <= 0)
		return 0;
	return st.id;
}

static void start_sync(struct cpmsync_session *s)
{
	int64_t only = fast_folder(s);
	size_t n_notify = s->full_wanted ? 0 : s->n_notify;
	bool selected = only && s->sel_current;
	bool was_current = s->sel_current;
	int r;

	s->sel_current = false;
	s->sync_wanted = false;
	s->full_synced = !only && !n_notify;
	s->fast_news = s->full_wanted = false;
	s->n_notify = 0;
	/* The poll is the full pass: a sync of some folders leaves it be. */
	if (!only && !n_notify)
		timer_stop(&s->poll_timer);
	timer_stop(&s->refresh_timer);
	set_state(s, CPMSYNC_SESSION_SYNCING, push_mode(s));
	r = engine_sync_on_client(s->loop, s->pub, &s->account, &s->client, sync_done, s, &s->sync);
	if (r < 0) {
		set_error(s, "cannot start a sync: %s", cpmsync_strerror(r));
		s->sync = NULL;
		rangeset_clear(&s->idle_vanished);
		return;
	}
	engine_set_progress(s->sync, sync_progress, s);
	if (selected) {
		log_debug(CAT, "%s: news in IDLE: syncing %s alone, without SELECT", s->name,
			  s->idle_folder ? s->idle_folder : "INBOX");
		engine_sync_selected(s->sync, only, s->sel_uidvalidity, s->sel_exists);
		if (engine_sync_selected_vanished(s->sync, &s->idle_vanished) < 0)
			log_debug(CAT, "%s: out of memory: syncing %s with SELECT", s->name,
				  s->idle_folder ? s->idle_folder : "INBOX");
	} else if (only) {
		log_debug(CAT, "%s: news in IDLE: syncing %s alone", s->name,
			  s->idle_folder ? s->idle_folder : "INBOX");
		engine_sync_only(s->sync, only);
	} else if (n_notify) {
		log_debug(CAT, "%s: news by NOTIFY: syncing %zu folder(s) alone", s->name,
			  n_notify);
		for (size_t i = 0; i < n_notify; i++)
			if (engine_sync_only(s->sync, s->notify_ids[i]) < 0)
				break; /* all dropped: a full sync */
	} else if (was_current && s->push == CPMSYNC_PUSH_IDLE) {
		/* A full run (a Sync(), a poll) from IDLE: if it selects
		 * nothing and the folder stays as the store has it, IDLE
		 * starts again without SELECT (issue 9: SELECT and IDLE were
		 * two more round trips after each Sync() with nothing new). */
		struct store_folder_status st;

		if (store_sync_folder_status(s->store, s->account_id,
					     s->idle_folder ? s->idle_folder : "INBOX", &st) > 0)
			engine_sync_keep_selected(s->sync, st.id, s->sel_exists);
	}
	/* Handed over, or (not selected) the SELECT reports them. */
	rangeset_clear(&s->idle_vanished);
}

/* ------------------------------------------------------------------ */
/* Waiting for news */

/* Whether the store is behind what the server reports for a folder. */
static bool folder_behind(struct cpmsync_session *s, const char *name, uint32_t uidvalidity,
			  uint32_t uidnext, uint32_t messages, uint64_t hms, bool have_hms)
{
	struct store_folder_status st;
	int r;

	r = store_sync_folder_status(s->store, s->account_id, name, &st);
	if (r < 0)
		return true;
	if (r == 0) /* a folder we do not have: only if we are to sync it */
		return plan_patterns_match((const char *const *)s->folders, name);
	if (st.uidvalidity != uidvalidity)
		return true;
	if (have_hms && st.highestmodseq)
		return st.highestmodseq != hms;
	return st.uidnext != uidnext || st.on_server != messages;
}

/* Whether the store holds exactly count messages of folder name on the
 * server. */
static bool store_has_count(struct cpmsync_session *s, const char *name, uint32_t count)
{
	struct store_folder_status st;

	return store_sync_folder_status(s->store, s->account_id, name, &st) > 0 &&
	       st.on_server == count;
}

static void news(struct cpmsync_session *s, const char *what)
{
	log_debug(CAT, "%s: server news: %s", s->name, what);
	/* EXISTS, EXPUNGE, VANISHED or FETCH in IDLE (or after its DONE):
	 * the selected folder.  No debounce: what the server sends before
	 * DONE is answered is read before the sync starts anyway. */
	if (s->wait != WAIT_NONE && s->idle_cmd && !s->wait_notify && !streq(what, "LIST")) {
		s->fast_news = true;
		s->check_syncs = 0;
		s->sync_wanted = true;
		schedule_kick(s);
		return;
	}
	s->full_wanted = true;
	if (s->wait != WAIT_NONE || s->state == CPMSYNC_SESSION_IDLE)
		want_sync(s, true);
	else
		s->sync_wanted = true; /* during a request: after it */
}

/* An untagged OK [NOTIFICATIONOVERFLOW] (RFC 5465 5.8: the server dropped
 * events and set NOTIFY NONE): news of everything, and NOTIFY SET again
 * after the sync it brings.  Any other untagged response: nothing. */
static void overflow_news(struct cpmsync_session *s, const struct imap_response *resp)
{
	struct imap_resp_code code;

	imap_resp_code_init(&code);
	if (imap_resp_code_parse(resp, &code) >= 0 && code.code == IMAP_CODE_NOTIFICATIONOVERFLOW)
		news(s, "NOTIFICATIONOVERFLOW");
	imap_resp_code_free(&code);
}

/* A STATUS (NOTIFY) for folder id of the store that differs from it: that
 * folder, alone unless something else wants a full sync. */
static void folder_news(struct cpmsync_session *s, int64_t id, const char *name)
{
	size_t i;

	log_debug(CAT, "%s: server news: STATUS %s", s->name, name);
	for (i = 0; i < s->n_notify && s->notify_ids[i] != id; i++)
		;
	if (i == s->n_notify) {
		if (s->n_notify < MAX_NOTIFY_FOLDERS)
			s->notify_ids[s->n_notify++] = id;
		else
			s->full_wanted = true;
	}
	if (s->wait == WAIT_IDLING && s->wait_notify) {
		/* An event while NOTIFY is set: no debounce (it cost 5 ms
		 * and a timer wake-up per event).  The kick runs at the next
		 * loop iteration, after every line already read: the STATUS
		 * lines of one burst (a MOVE names two folders) still make
		 * one sync. */
		s->check_syncs = 0;
		s->sync_wanted = true;
		schedule_kick(s);
	} else if (s->wait != WAIT_NONE || s->state == CPMSYNC_SESSION_IDLE) {
		/* The STATUS of NOTIFY SET (notify_done() counts the check
		 * syncs by the debounce timer), or a poll-mode wait. */
		want_sync(s, true);
	} else {
		s->sync_wanted = true; /* during a request: after it */
	}
}

/* Whether a STATUS differs from what the store had (folder_behind()'s
 * comparison, on a status already read). */
static bool status_differs(const struct store_folder_status *fs, const struct imap_status_data *st)
{
	if (!(st->present & IMAP_STATUS_ITEM_UIDVALIDITY) ||
	    !(st->present & IMAP_STATUS_ITEM_UIDNEXT) || !(st->present & IMAP_STATUS_ITEM_MESSAGES))
		return true;
	if (fs->uidvalidity != st->uidvalidity)
		return true;
	if ((st->present & IMAP_STATUS_ITEM_HIGHESTMODSEQ) && fs->highestmodseq)
		return fs->highestmodseq != st->highestmodseq;
	return fs->uidnext != st->uidnext || fs->on_server != st->messages;
}

static void on_status(struct cpmsync_session *s, const struct imap_response *resp)
{
	struct buf name = BUF_INIT(4096);
	struct imap_status_data st;
	struct store_folder_status fs;
	const struct store_folder_status *known;
	int r;

	if (imap_resp_status(resp, &st) < 0 || !st.mailbox.str)
		return;
	if (imap_client_mailbox_to_local(s->client, st.mailbox.str, st.mailbox.len,
					 imap_client_delimiter(s->client), &name) < 0)
		goto out;
	if (!s->fidx_loaded) {
		/* Once per wait; unreadable: every line asks the store. */
		s->fidx_loaded = true;
		if (store_sync_folder_index_load(s->store, s->account_id, &s->fidx) < 0)
			log_debug(CAT, "%s: no folder index: %s", s->name, store_error(s->store));
	}
	known = store_folder_index_find(&s->fidx, name.data);
	if (known && !status_differs(known, &st))
		goto out; /* as the store was at the wait's start: no news */
	r = store_sync_folder_status(s->store, s->account_id, name.data, &fs);
	if (r <= 0) {
		/* Not in the store (new, or not synced by the patterns), or
		 * unreadable: the full path decides. */
		if (r < 0 || plan_patterns_match((const char *const *)s->folders, name.data))
			news(s, name.data);
		goto out;
	}
	if (status_differs(&fs, &st))
		folder_news(s, fs.id, name.data);
out:
	buf_free(&name);
}

static void request_untagged(struct cpmsync_session *s, struct request *rq,
			     const struct imap_response *resp);

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* Messages an EXPUNGE or VANISHED takes from the count EXISTS gave
 * (VANISHED (EARLIER) none: they were gone before). */
static uint32_t expunged_count(const struct imap_response *resp)
{
	struct imap_vanished v;
	uint64_t n = 0;

	if (imap_resp_type(resp) == IMAP_RT_EXPUNGE)
		return 1;
	imap_vanished_init(&v);
	if (imap_resp_vanished(resp, &v) >= 0 && !v.earlier)
		for (size_t i = 0; i < v.uids.n; i++)
			n += (uint64_t)v.uids.r[i].hi - v.uids.r[i].lo + 1;
	imap_vanished_free(&v);
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* A VANISHED in IDLE on the selected folder, current in the store: its
 * UIDs for the fast run (a server need not report them again in its
 * CHANGEDSINCE FETCH).  Unreadable or out of memory: not current, the
 * SELECT way (its VANISHED (EARLIER) reports them). */
static void idle_vanished(struct cpmsync_session *s, const struct imap_response *resp)
{
	struct imap_vanished v;
	int r;

	imap_vanished_init(&v);
	r = imap_resp_vanished(resp, &v);
	if (r >= 0 && v.earlier)
		goto out; /* gone before: not in the count, nor in the store */
	for (size_t i = 0; r >= 0 && i < v.uids.n; i++)
		r = rangeset_add_range(&s->idle_vanished, v.uids.r[i].lo, v.uids.r[i].hi);
	if (r < 0) {
		log_debug(CAT, "%s: VANISHED in IDLE not kept (%s): SELECT again", s->name,
			  cpmsync_strerror(r));
		s->sel_current = false;
		rangeset_clear(&s->idle_vanished);
	}
out:
	imap_vanished_free(&v);
}

static void on_untagged(struct imap_client *client, const struct imap_response *resp,
			void *userdata)
{
	struct cpmsync_session *s = userdata;
	struct imap_resp_code code;
	/* The SELECT before IDLE is under way: its answer, no news. */
	bool selecting = s->wait == WAIT_PREPARING && !s->idle_cmd;

	(void)client;
	if (s->running)
		request_untagged(s, s->running, resp);
	switch (imap_resp_type(resp)) {
	case IMAP_RT_STATUS:
		if (!s->running)
			on_status(s, resp);
		break;
	case IMAP_RT_EXISTS:
		if (selecting) {
			s->sel_exists = resp->number;
			break;
		}
		if (s->idle_cmd && resp->number == s->sel_exists)
			break;
		if (s->idle_cmd)
			s->sel_exists = resp->number;
		news(s, "EXISTS");
		break;
	case IMAP_RT_EXPUNGE:
	case IMAP_RT_VANISHED:
		if (selecting)
			break;
		if (s->idle_cmd)
			s->sel_exists -= min_u32(s->sel_exists, expunged_count(resp));
		if (s->idle_cmd && s->sel_current && imap_resp_type(resp) == IMAP_RT_VANISHED)
			idle_vanished(s, resp);
		news(s, "EXPUNGE");
		break;
	case IMAP_RT_FETCH:
		if (!s->running && !selecting)
			news(s, "FETCH");
		break;
	case IMAP_RT_LIST:
		if (!s->running)
			news(s, "LIST");
		break;
	case IMAP_RT_OTHER:
		if (resp->kind != IMAP_RESP_UNTAGGED)
			break;
		if (s->wait_notify && s->wait != WAIT_NONE && !s->running) {
			overflow_news(s, resp);
			break;
		}
		if (!selecting)
			break;
		imap_resp_code_init(&code);
		if (imap_resp_code_parse(resp, &code) >= 0) {
			if (code.code == IMAP_CODE_UIDVALIDITY)
				s->sel_uidvalidity = code.num;
			else if (code.code == IMAP_CODE_UIDNEXT)
				s->sel_uidnext = code.num;
			else if (code.code == IMAP_CODE_HIGHESTMODSEQ)
				s->sel_hms = code.num64;
		}
		imap_resp_code_free(&code);
		break;
	default:
		break;
	}
}

static void refresh_cb(struct cpmsync_loop_source *src, void *userdata);

static void wait_failed(struct cpmsync_session *s, struct imap_client *client,
			const struct imap_cmd_result *res, const char *what)
{
	char reason[512];

	/*
	 * Not the session's connection (any more): the first of its commands
	 * to fail took it for lost, and those behind it fail with it (a
	 * refresh NOOP and the NOTIFY NONE after it, both past the same
	 * deadline): the same loss, already logged and backed off from
	 * ("retrying in 757 ms", then "retrying in 2302 ms" at the same
	 * millisecond).  While lent to a run (NULL here), the run's end
	 * reports it.
	 */
	if (client != s->client)
		return;

	snprintf(reason, sizeof(reason), "%s: %s", what,
		 res->text ? res->text : cpmsync_strerror(res->r));
	if (res->r == -CPMSYNC_E_SERVER) {
		/* Refused (not the connection): fall back to polling. */
		log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: %s; polling instead", s->name, reason);
		s->wait = WAIT_IDLING;
		set_state(s, CPMSYNC_SESSION_IDLE, CPMSYNC_PUSH_POLL);
		return;
	}
	if (res->r == -CPMSYNC_E_CANCELED)
		return;
	connection_lost(s, res->r, reason);
	schedule_kick(s);
}

static void idle_done(struct imap_client *client, const struct imap_cmd_result *res, void *userdata)
{
	struct cpmsync_session *s = userdata;

	s->idle_cmd = 0;
	/* Ended by the fast path, its sync already under way (pipelined
	 * after DONE): the sync sees a lost connection itself. */
	if (s->sync)
		return;
	if (res->r < 0) {
		wait_failed(s, client, res, "IDLE");
		return;
	}
	s->wait = WAIT_NONE;
	schedule_kick(s);
}

static int idle_cont(struct imap_client *client, const char *text, char **ret_line, void *userdata)
{
	struct cpmsync_session *s = userdata;

	(void)client;
	(void)text;
	*ret_line = NULL;
	if (s && s->wait == WAIT_PREPARING) {
		s->wait = WAIT_IDLING;
		set_state(s, CPMSYNC_SESSION_IDLE, CPMSYNC_PUSH_IDLE);
		timer_set(s, &s->refresh_timer, s->opt.idle_refresh_ms, refresh_cb);
		/* News that came while entering, or Active changed: leave
		 * at once. */
		if (s->debounce_timer || s->sync_wanted || s->requests || s->idle_moved)
			schedule_kick(s);
	}
	return 0;
}

static void start_idle(struct cpmsync_session *s)
{
	struct imap_cmd *cmd;
	int r;

	r = imap_cmd_new(s->client, IMAP_CMD_EXCLUSIVE | IMAP_CMD_IDLE, idle_done, s, &cmd);
	if (r >= 0)
		r = imap_cmd_add(cmd, "IDLE");
	if (r < 0) {
		imap_cmd_free(cmd);
		connection_lost(s, r, "out of memory");
		return;
	}
	imap_cmd_set_continuation(cmd, idle_cont);
	s->idle_cmd = imap_cmd_submit(cmd);
}

static void select_done(struct imap_client *client, const struct imap_cmd_result *res,
			void *userdata)
{
	struct cpmsync_session *s = userdata;
	bool hms = imap_client_enabled(client, IMAP_CAP_CONDSTORE) ||
		   imap_client_enabled(client, IMAP_CAP_QRESYNC);

	bool behind;

	if (res->r < 0) {
		wait_failed(s, client, res, "SELECT");
		return;
	}
	if (s->idle_moved) {
		/* Active changed while it was out: SELECT the folder it
		 * names now (enter_wait()), not IDLE on this one. */
		s->wait = WAIT_NONE;
		schedule_kick(s);
		return;
	}
	/* The window between the sync's last look and IDLE: compare. */
	behind = folder_behind(s, s->idle_folder ? s->idle_folder : "INBOX", s->sel_uidvalidity,
			       s->sel_uidnext, s->sel_exists, s->sel_hms, hms && s->sel_hms);
	s->sel_current =
		!behind && hms && s->sel_hms &&
		store_has_count(s, s->idle_folder ? s->idle_folder : "INBOX", s->sel_exists);
	if (behind && s->check_syncs < MAX_CHECK_SYNCS) {
		s->check_syncs++;
		s->wait = WAIT_NONE;
		s->sync_wanted = true;
		s->full_wanted = true;
		schedule_kick(s);
		return;
	}
	start_idle(s);
}

static void notify_done(struct imap_client *client, const struct imap_cmd_result *res,
			void *userdata);
static void notify_waiting(struct cpmsync_session *s);

static int64_t notify_set(struct cpmsync_session *s)
{
	s->notify_set_ms = cpmsync_now_ms();
	return imap_client_simple(s->client, 0, notify_done, s,
				  "NOTIFY SET STATUS (personal (MessageNew MessageExpunge "
				  "FlagChange MailboxName SubscriptionChange))");
}

static void notify_done(struct imap_client *client, const struct imap_cmd_result *res,
			void *userdata)
{
	struct cpmsync_session *s = userdata;

	if (res->r < 0) {
		wait_failed(s, client, res, "NOTIFY");
		return;
	}
	if (s->wait == WAIT_LEAVING) { /* NOTIFY NONE answered */
		s->wait = WAIT_NONE;
		schedule_kick(s);
		return;
	}
	if (s->notify_rearm) {
		/* After a full sync (see the top): NOTIFY NONE, then SET
		 * again, its watch on the log as it is now, what changed
		 * meanwhile in its STATUS (little left to write: 0.18 s
		 * against 1.5 s for 1,202 folders).  Not a SET over the SET:
		 * Dovecot begins the new one before it ends the old one, whose
		 * inotify_rm_watch() takes the watch both share (same file). */
		int64_t id = --s->notify_rearm ? imap_client_simple(s->client, 0, notify_done, s,
								    "NOTIFY NONE")
					       : notify_set(s);

		if (id < 0)
			connection_lost(s, -ENOMEM, "out of memory");
		return;
	}
	notify_waiting(s);
}

/* NOTIFY is set and its STATUS replies (every folder, or those asked for
 * after a run with NOTIFY kept) came and were compared; news they carried
 * scheduled a sync: waiting. */
static void notify_waiting(struct cpmsync_session *s)
{
	s->wait = WAIT_IDLING;
	if (s->debounce_timer && s->check_syncs < MAX_CHECK_SYNCS)
		s->check_syncs++;
	else if (s->debounce_timer) /* still different after syncs: wait anyway */
		timer_stop(&s->debounce_timer);
	set_state(s, CPMSYNC_SESSION_IDLE, CPMSYNC_PUSH_NOTIFY);
	timer_set(s, &s->refresh_timer, s->opt.idle_refresh_ms, refresh_cb);
	/* A sync wanted while entering (the debounce fired while NOTIFY SET
	 * was in flight, and kick() waited for this answer): leave at once,
	 * as idle_cont() does. */
	if (s->sync_wanted || s->requests)
		schedule_kick(s);
}

/*
 * IDLE watches one folder per connection: the first Active folder that is
 * on the server, else INBOX.  The others are covered by the poll.
 */
static int64_t select_idle_folder(struct cpmsync_session *s)
{
	struct imap_cmd *cmd;
	int r;

	free(s->idle_folder);
	s->idle_folder = NULL;
	s->idle_moved = false;
	rangeset_clear(&s->idle_vanished); /* of the folder selected before */
	for (size_t i = 0; i < s->n_active && !s->idle_folder; i++)
		if (store_sync_folder_server_name(s->store, s->active[i], &s->idle_folder) < 0)
			s->idle_folder = NULL;
	r = imap_cmd_new(s->client, 0, select_done, s, &cmd);
	if (r >= 0)
		r = imap_cmd_add(cmd, "SELECT ");
	if (r >= 0)
		r = s->idle_folder ? imap_cmd_add_mailbox(cmd, s->idle_folder)
				   : imap_cmd_add(cmd, "INBOX");
	if (r < 0) {
		imap_cmd_free(cmd);
		return r;
	}
	return imap_cmd_submit(cmd);
}

/*
 * After a run of NOTIFY-named folders with NOTIFY left set (kick()).  Why
 * no event is lost without NOTIFY NONE and SET STATUS: NOTIFY stayed set
 * from the event to now, so the server reported every change of a folder
 * not selected as a STATUS: read by run_observed() during the run (its
 * folder is asked here), or by on_status() after it.  The folder the run
 * had selected got its changes as EXISTS, EXPUNGE or FETCH, which the run
 * may have read after its FETCH; after the UNSELECT (sent before this) the
 * server reports it by STATUS again, and the STATUS asked here, after that
 * UNSELECT, tells its state as of then: all that came before, in one line,
 * compared with the store by on_status() as the SET's were.  Returns the
 * last command's id, 0 when there is nothing to ask, or < 0.
 */
/* The STATUS replies are in: a folder that differs from the store changed
 * after its run's look (or was named during the run and not synced): its
 * sync at once, as for an event while waiting (folder_news()), up to
 * MAX_CHECK_SYNCS in a row; then the debounce, as after NOTIFY SET. */
static void recheck_finished(struct cpmsync_session *s)
{
	bool again = s->n_notify && !s->full_wanted && s->recheck_syncs < MAX_CHECK_SYNCS;

	if (!s->n_notify && !s->full_wanted)
		s->recheck_syncs = 0;
	notify_waiting(s);
	if (!again)
		return;
	s->recheck_syncs++;
	timer_stop(&s->debounce_timer);
	s->sync_wanted = true;
	schedule_kick(s);
}

static void recheck_done(struct imap_client *client, const struct imap_cmd_result *res,
			 void *userdata)
{
	struct cpmsync_session *s = userdata;

	if (res->r < 0 && res->r != -CPMSYNC_E_SERVER) {
		if (s->recheck_left) {
			s->recheck_left = 0;
			wait_failed(s, client, res, "STATUS");
		}
		return;
	}
	if (res->r < 0) /* deleted meanwhile ...: the full sync finds out */
		news(s, "STATUS refused");
	if (s->recheck_left && --s->recheck_left == 0)
		recheck_finished(s);
}

static int64_t recheck(struct cpmsync_session *s)
{
	bool hms = imap_client_enabled(s->client, IMAP_CAP_CONDSTORE) ||
		   imap_client_enabled(s->client, IMAP_CAP_QRESYNC);
	int64_t id = 0;

	if (s->recheck_full)
		news(s, "NOTIFY events during the run");
	s->recheck_full = false;
	s->recheck_left = 0;
	for (size_t i = 0; i < s->n_recheck; i++) {
		_cleanup_free_ char *name = NULL;
		struct imap_cmd *cmd;
		int r;

		if (store_sync_folder_server_name(s->store, s->recheck_ids[i], &name) < 0 ||
		    !name) {
			news(s, "a synced folder is gone");
			continue;
		}
		r = imap_cmd_new(s->client, 0, recheck_done, s, &cmd);
		if (r >= 0)
			r = imap_cmd_add(cmd, "STATUS ");
		if (r >= 0)
			r = imap_cmd_add_mailbox(cmd, name);
		if (r >= 0)
			r = imap_cmd_add(cmd, hms ? " (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)"
						  : " (UIDVALIDITY UIDNEXT MESSAGES)");
		if (r < 0) {
			imap_cmd_free(cmd);
			return r;
		}
		id = imap_cmd_submit(cmd);
		if (id < 0)
			return id;
		s->recheck_left++;
	}
	s->n_recheck = 0;
	return id;
}

static void recheck_add(struct cpmsync_session *s, int64_t id)
{
	for (size_t i = 0; i < s->n_recheck; i++)
		if (s->recheck_ids[i] == id)
			return;
	if (s->n_recheck < MAX_NOTIFY_FOLDERS)
		s->recheck_ids[s->n_recheck++] = id;
	else
		s->recheck_full = true;
}

/* An untagged response during a run with NOTIFY kept (engine_set_observer()):
 * NOTIFY's events.  A STATUS: that folder is asked again after the run; a
 * LIST (created, renamed, deleted) or an overflow: a full sync after it. */
static void run_observed(void *userdata, const struct imap_response *resp)
{
	struct cpmsync_session *s = userdata;
	struct buf name = BUF_INIT(4096);
	struct imap_status_data st;
	struct store_folder_status fs;
	int r;

	if (!s->notify_kept || !s->lent)
		return;
	switch (imap_resp_type(resp)) {
	case IMAP_RT_STATUS:
		if (imap_resp_status(resp, &st) < 0 || !st.mailbox.str)
			break;
		if (imap_client_mailbox_to_local(s->lent, st.mailbox.str, st.mailbox.len,
						 imap_client_delimiter(s->lent), &name) < 0) {
			news(s, "STATUS");
			break;
		}
		log_debug(CAT, "%s: NOTIFY during the run: STATUS %s", s->name, name.data);
		r = store_sync_folder_status(s->store, s->account_id, name.data, &fs);
		if (r > 0)
			recheck_add(s, fs.id);
		else if (r < 0 || plan_patterns_match((const char *const *)s->folders, name.data))
			news(s, name.data);
		break;
	case IMAP_RT_LIST:
		news(s, "LIST");
		break;
	case IMAP_RT_OTHER:
		overflow_news(s, resp);
		break;
	default:
		break;
	}
	buf_free(&name);
}

static void enter_wait(struct cpmsync_session *s)
{
	enum cpmsync_push_state mode = push_mode(s);
	int64_t id;

	/* Armed once per sync, not per (re-)entered wait. */
	if (!s->poll_timer)
		timer_set(s, &s->poll_timer, s->opt.poll_interval_ms, poll_cb);
	s->wait = WAIT_PREPARING;
	s->wait_notify = mode == CPMSYNC_PUSH_NOTIFY;
	if (mode == CPMSYNC_PUSH_NOTIFY) {
		/* No folder selected: every folder (the active ones too) is
		 * reported by STATUS, compared the same way.  The store may
		 * have changed since the last wait: its index is read again. */
		store_folder_index_free(&s->fidx);
		s->fidx_loaded = false;
		if (imap_client_has(s->client, IMAP_CAP_UNSELECT))
			imap_client_simple(s->client, 0, NULL, NULL, "UNSELECT");
		if (s->notify_kept) {
			/* NOTIFY stayed set through the run: STATUS of the
			 * folders it synced and of those events named meanwhile
			 * (recheck()), not every folder again. */
			s->notify_kept = false;
			id = recheck(s);
			if (id == 0)
				recheck_finished(s);
		} else {
			s->notify_rearm = s->full_synced ? 2 : 0;
			id = notify_set(s);
		}
	} else if (mode == CPMSYNC_PUSH_IDLE && s->sel_current) {
		/* Still selected and current: the server reports what
		 * changed since as soon as IDLE runs. */
		log_debug(CAT, "%s: IDLE again on %s, without SELECT", s->name,
			  s->idle_folder ? s->idle_folder : "INBOX");
		start_idle(s);
		return;
	} else if (mode == CPMSYNC_PUSH_IDLE) {
		s->sel_uidvalidity = s->sel_uidnext = s->sel_exists = 0;
		s->sel_hms = 0;
		id = select_idle_folder(s);
	} else {
		s->wait = WAIT_IDLING;
		set_state(s, CPMSYNC_SESSION_IDLE, CPMSYNC_PUSH_POLL);
		timer_set(s, &s->refresh_timer, s->opt.idle_refresh_ms, refresh_cb);
		return;
	}
	if (id < 0)
		connection_lost(s, (int)id, "out of memory");
}

/*
 * The NOTIFY NONE that a sync of NOTIFY-named folders follows without
 * waiting (kick(), when NOTIFY was set NOTIFY_KEEP_MS ago).  Events the
 * server sent before it took the NONE reach that sync's run, which has no
 * use for them (an only-run lists nothing; a STATUS or LIST is dropped
 * there): the NOTIFY SET STATUS after the run reports every folder again
 * and is compared with the store.  A failure: the run sees the lost
 * connection itself (idle_done() alike).
 */
static void notify_none_done(struct imap_client *client, const struct imap_cmd_result *res,
			     void *userdata)
{
	struct cpmsync_session *s = userdata;

	(void)client;
	if (res->r == -CPMSYNC_E_SERVER)
		log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: NOTIFY NONE: %s", s->name,
			res->text ? res->text : cpmsync_strerror(res->r));
}

static void noop_done(struct imap_client *client, const struct imap_cmd_result *res, void *userdata)
{
	struct cpmsync_session *s = userdata;

	/* Answered before a NOTIFY NONE that a sync follows without waiting
	 * (kick()): the run sees a lost connection itself. */
	if (s->sync)
		return;
	if (res->r < 0) {
		wait_failed(s, client, res, "NOOP");
		return;
	}
	if (s->wait == WAIT_IDLING)
		timer_set(s, &s->refresh_timer, s->opt.idle_refresh_ms, refresh_cb);
}

/* Leaves the wait so that a sync or request can use the connection. */
static void leave_wait(struct cpmsync_session *s)
{
	timer_stop(&s->refresh_timer);
	if (s->push == CPMSYNC_PUSH_POLL || (!s->wait_notify && !s->idle_cmd)) {
		s->wait = WAIT_NONE;
		return;
	}
	s->wait = WAIT_LEAVING;
	if (s->wait_notify) {
		if (imap_client_simple(s->client, 0, notify_done, s, "NOTIFY NONE") < 0)
			connection_lost(s, -ENOMEM, "out of memory");
		return;
	}
	if (imap_client_end_idle(s->client, s->idle_cmd) < 0)
		connection_lost(s, -EIO, "cannot send DONE");
}

static void refresh_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_session *s = userdata;

	(void)src;
	s->refresh_timer = cpmsync_loop_source_remove(s->refresh_timer);
	if (s->wait != WAIT_IDLING || !s->client)
		return;
	if (s->idle_cmd) {
		/* DONE is answered under the command deadline; idle_done
		 * re-enters the wait. */
		log_debug(CAT, "%s: refreshing IDLE", s->name);
		leave_wait(s);
		return;
	}
	if (imap_client_simple(s->client, 0, noop_done, s, "NOOP") < 0)
		connection_lost(s, -ENOMEM, "out of memory");
}

/* ------------------------------------------------------------------ */
/* The scheduler */

/* Completes every queued request (not the running one) with r. */
static void fail_requests(struct cpmsync_session *s, int r, const char *reason)
{
	while (s->requests) {
		struct request *rq = s->requests;

		s->requests = rq->next;
		request_finish(rq, r, reason);
	}
	s->requests_tail = NULL;
	timer_stop(&s->wait_timer);
}

static void run_request(struct cpmsync_session *s);
static void rconn_kick(struct cpmsync_session *s);
static void rconn_close(struct cpmsync_session *s, int r, const char *reason);

static void kick(struct cpmsync_session *s)
{
	if (!s->online) {
		if (s->sync)
			cpmsync_sync_cancel(s->sync);
		drop_connection(s);
		rconn_close(s, -CPMSYNC_E_OFFLINE, "the account is offline");
		s->rrefused_ms = 0;
		timer_stop(&s->retry_timer);
		fail_requests(s, -CPMSYNC_E_OFFLINE, "the account is offline");
		set_state(s, CPMSYNC_SESSION_OFFLINE, CPMSYNC_PUSH_OFF);
		return;
	}
	if (s->sync || s->connecting || s->running) {
		/* Busy for long, maybe (20,000 changes to replay take half an
		 * hour): requests go to the request connection.  Not behind
		 * another request: those are short. */
		if (s->sync || s->connecting)
			rconn_kick(s);
		return;
	}
	if (!s->client) {
		if (s->auth_stopped) {
			set_state(s, CPMSYNC_SESSION_ERROR, CPMSYNC_PUSH_OFF);
			fail_requests(s, -CPMSYNC_E_OFFLINE, s->last_error);
			return;
		}
		if (s->retry_timer) {
			/* Waiting to retry: requests cannot wait that long. */
			fail_requests(s, -CPMSYNC_E_OFFLINE, s->last_error);
			return;
		}
		connect_now(s);
		if (s->connecting)
			rconn_kick(s);
		return;
	}
	switch (s->wait) {
	case WAIT_PREPARING:
	case WAIT_LEAVING:
		return; /* the answer kicks again */
	case WAIT_IDLING:
		if (!s->requests && s->sync_wanted && s->idle_cmd && !s->wait_notify) {
			/* News of the selected folder: DONE, and the sync's
			 * UID FETCHes right behind it, without waiting for
			 * the IDLE's answer (idle_done() then sees the sync).
			 * Any other sync the same way (a Sync(), a poll: DONE
			 * and its LIST-STATUS in one round trip); what the
			 * server says in IDLE before the DONE's answer goes to
			 * the run, whose LIST-STATUS or SELECT comes after it. */
			timer_stop(&s->refresh_timer);
			if (imap_client_end_idle(s->client, s->idle_cmd) < 0) {
				connection_lost(s, -EIO, "cannot send DONE");
				return;
			}
			s->wait = WAIT_NONE;
			start_sync(s);
			return;
		}
		if (!s->requests && s->sync_wanted && s->wait_notify && s->n_notify &&
		    !s->full_wanted && s->push == CPMSYNC_PUSH_NOTIFY &&
		    cpmsync_now_ms() - s->notify_set_ms >= s->notify_keep_ms) {
			/* Set long ago (NOTIFY_KEEP_MS): NOTIFY NONE, and the
			 * sync's SELECT right behind it without waiting for its
			 * answer (as DONE above; see notify_none_done()); the
			 * wait after it sets NOTIFY again, with STATUS. */
			timer_stop(&s->refresh_timer);
			if (imap_client_simple(s->client, 0, notify_none_done, s, "NOTIFY NONE") <
			    0) {
				connection_lost(s, -ENOMEM, "out of memory");
				return;
			}
			s->wait = WAIT_NONE;
			start_sync(s);
			return;
		}
		if (!s->requests && s->sync_wanted && s->wait_notify && s->n_notify &&
		    !s->full_wanted && s->push == CPMSYNC_PUSH_NOTIFY) {
			/* NOTIFY named folders of the store: their sync at
			 * once, NOTIFY left set (no NONE, and after the run no
			 * SET STATUS of every folder: recheck()); its events
			 * during the run come to run_observed(). */
			timer_stop(&s->refresh_timer);
			s->wait = WAIT_NONE;
			s->notify_kept = true;
			s->n_recheck = 0;
			s->recheck_full = false;
			for (size_t i = 0; i < s->n_notify; i++)
				recheck_add(s, s->notify_ids[i]);
			s->lent = s->client;
			start_sync(s);
			if (s->sync)
				engine_set_observer(s->sync, run_observed, s);
			else
				s->lent = NULL;
			return;
		}
		/* idle_moved: an IDLE entered while Active changed. */
		if (s->requests || s->sync_wanted || (s->idle_moved && s->idle_cmd))
			leave_wait(s);
		if (s->wait != WAIT_NONE)
			return;
		break;
	case WAIT_NONE:
		break;
	}
	if (s->notify_kept && (s->requests || s->sync_wanted)) {
		/* NOTIFY still set after its run, and something else is to
		 * use the connection (a request, a full sync): NOTIFY NONE
		 * first, as leave_wait() does; the next wait sets it again
		 * with STATUS of every folder. */
		s->notify_kept = false;
		s->n_recheck = 0;
		s->wait = WAIT_LEAVING;
		s->wait_notify = true;
		if (imap_client_simple(s->client, 0, notify_done, s, "NOTIFY NONE") < 0)
			connection_lost(s, -ENOMEM, "out of memory");
		return;
	}
	if (s->requests && store_sync_account_moved(s->store, s->account_id, s->account.host,
						    s->account.user) > 0) {
		/* The account's host changed and the store's copy is kept
		 * only until a run shows the server there to be the one it
		 * is of (engine-ident.c engine_ident_host()), else dropped:
		 * a request by UID before that may read another server's
		 * message as the store's.  The run first (it records the
		 * host, or fails and drops the connection, and the requests
		 * with it). */
		start_sync(s);
		return;
	}
	if (s->requests) {
		run_request(s);
		return;
	}
	if (s->sync_wanted) {
		start_sync(s);
		return;
	}
	enter_wait(s);
}

/* ------------------------------------------------------------------ */
/* Requests */

static void request_free(struct request *rq)
{
	free(rq->mailbox);
	strv_free(rq->entries);
	strv_free(rq->fetch_entries);
	free(rq->section);
	free(rq->format);
	strv_free(rq->crit_strings);
	free((void *)rq->crit.flags);
	free((void *)rq->crit.not_flags);
	for (size_t i = 0; i < rq->n_pairs; i++)
		free(rq->pairs[i]);
	free(rq->pairs);
	free(rq->string);
	if (rq->fd >= 0)
		close(rq->fd);
	free(rq->ids);
	rangeset_free(&rq->uids);
	free(rq);
}

/*
 * A whole message fetched on demand is kept in the store (contract
 * "Online and offline"; seed 6.1.1.2: the client stores what it fetched),
 * so the next Fetch is answered locally, offline too; unless sync_bodies
 * is none (bodies stay on the server).  A message first stored from its
 * header (sync_bodies limited) gets the CPM parse of its body, as from the
 * sync's bodies pass.  A failure here is logged, never the Fetch's: the
 * caller gets the content anyway.
 */
static void keep_fetched_body(struct cpmsync_session *s, struct request *rq)
{
	static char head[MSG_SUMMARY_READ];
	struct msg_summary sum;
	ssize_t n;
	int r;

	if (rq->section[0] || s->account.sync_bodies == CPMSYNC_SYNC_BODIES_NONE)
		return;
	r = store_begin(s->store);
	if (r < 0)
		goto fail;
	r = store_sync_body_put_fd(s->store, rq->message_id, rq->fd, rq->size);
	if (r >= 0) {
		do
			n = pread(rq->fd, head, sizeof(head), 0);
		while (n < 0 && errno == EINTR);
		r = n < 0 ? -errno : msg_summary_parse(head, (size_t)n, &sum);
		if (r >= 0) {
			if (!streq(sum.type, "mail"))
				r = store_message_set_cpm(s->store, rq->message_id, &sum);
			msg_summary_free(&sum);
		}
	}
	if (r >= 0)
		r = store_commit(s->store);
	else
		store_rollback(s->store);
	if (r >= 0 && lseek(rq->fd, 0, SEEK_SET) < 0)
		r = -errno;
	if (r >= 0)
		return;
fail:
	log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: keeping the fetched body of message %lld: %s",
		s->name, (long long)rq->message_id,
		r == -EIO || r == -ENOSPC || r == -EDQUOT || r == -EFBIG ||
				r <= -CPMSYNC_E_NOT_FOUND
			? store_error(s->store)
			: strerror(-r));
}

static void request_finish(struct request *rq, int r, const char *reason)
{
	switch (rq->kind) {
	case REQ_METADATA:
	case REQ_ACL:
	case REQ_ANNOTATION:
		if (r >= 0) {
			char **p = realloc(rq->pairs, (rq->n_pairs + 1) * sizeof(char *));

			if (!p) {
				r = -ENOMEM;
				reason = "out of memory";
			} else {
				rq->pairs = p;
				p[rq->n_pairs] = NULL;
			}
		}
		rq->cb.pairs(r, r < 0 ? reason : NULL,
			     r < 0 ? NULL : (const char *const *)rq->pairs, rq->userdata);
		break;
	case REQ_MYRIGHTS:
		rq->cb.string(r, r < 0 ? reason : NULL,
			      r < 0	   ? NULL
			      : rq->string ? rq->string
					   : "",
			      rq->userdata);
		break;
	case REQ_FETCH:
	case REQ_CONVERT:
		if (r >= 0 && rq->kind == REQ_CONVERT && (rq->fd < 0 || rq->streaming)) {
			/* CONVERTED with NIL, or no CONVERTED at all (RFC 5259 9) */
			r = -CPMSYNC_E_SERVER;
			reason = "the server did not convert the part";
		}
		if (r >= 0 && rq->too_big) {
			r = -E2BIG;
			reason = "the section is larger than 1 GiB";
		}
		if (r >= 0 && (rq->fd < 0 || rq->streaming)) {
			r = -CPMSYNC_E_NOT_FOUND;
			if (rq->answered || rq->fd >= 0) {
				reason = "the server sent no content for that section";
			} else {
				/* A UID FETCH of a UID gone answers OK and
				 * nothing (RFC 9051 6.4.9): another client
				 * expunged it.  A sync removes it here. */
				reason = "the message is no longer on the server (another client "
					 "removed it); the next sync removes it here";
				rq->s->sync_wanted = true;
			}
		}
		if (r >= 0 && lseek(rq->fd, 0, SEEK_SET) < 0) {
			r = -errno;
			reason = "cannot rewind the temporary file";
		}
		if (r >= 0) {
			int fd;

			if (rq->kind == REQ_FETCH)
				keep_fetched_body(rq->s, rq);
			fd = rq->fd;
			rq->fd = -1;
			rq->cb.data(0, NULL, fd, rq->size, rq->userdata);
		} else {
			rq->cb.data(r, reason, -1, 0, rq->userdata);
		}
		break;
	case REQ_SEARCH:
		rq->cb.ids(r, r < 0 ? reason : NULL, rq->ids, r < 0 ? 0 : rq->n_ids, rq->userdata);
		break;
	}
	request_free(rq);
}

static int pairs_add(struct request *rq, const char *k, size_t klen, const char *v, size_t vlen)
{
	if (rq->n_pairs + 3 > rq->alloc_pairs) {
		size_t n = rq->alloc_pairs ? rq->alloc_pairs * 2 : 16;
		char **p = realloc(rq->pairs, n * sizeof(char *));

		if (!p)
			return -ENOMEM;
		rq->pairs = p;
		rq->alloc_pairs = n;
	}
	rq->pairs[rq->n_pairs] = strndup(k, klen);
	if (!rq->pairs[rq->n_pairs])
		return -ENOMEM;
	rq->n_pairs++;
	rq->pairs[rq->n_pairs] = strndup(v, vlen);
	if (!rq->pairs[rq->n_pairs])
		return -ENOMEM;
	rq->n_pairs++;
	return 0;
}

/*
 * A FETCH answering a REQ_ANNOTATION: the values it carries are cached
 * (the server's; a pending local value stays and still wins).  The cache
 * is filled even if the request then fails: the values are the server's.
 */
static void annotation_fetched(struct cpmsync_session *s, struct request *rq,
			       const struct imap_response *resp)
{
	struct imap_fetch *f = calloc(1, sizeof(*f));
	int r;

	if (!f)
		return;
	if (imap_resp_fetch(resp, f) < 0 || !(f->present & IMAP_FETCH_UID) || f->uid != rq->uid ||
	    !(f->present & IMAP_FETCH_ANNOTATION) || !f->annotation_values) {
		free(f);
		return;
	}
	r = store_begin(s->store);
	for (size_t i = 0; r >= 0 && i < f->nannotations; i++) {
		struct imap_annotation_entry en;
		_cleanup_free_ char *name = NULL;

		if (imap_fetch_annotation_get(f, i, &en) < 0)
			continue;
		name = strndup(en.name.str, en.name.len);
		if (!name) {
			r = -ENOMEM;
			break;
		}
		if (en.has_priv)
			r = store_annotation_set_server(s->store, rq->message_id, name, false,
							en.priv.str, en.priv.len);
		if (r >= 0 && en.has_shared)
			r = store_annotation_set_server(s->store, rq->message_id, name, true,
							en.shared.str, en.shared.len);
	}
	if (r >= 0)
		r = store_commit(s->store);
	else
		store_rollback(s->store);
	if (r < 0)
		log_msg(CPMSYNC_LOG_WARNING, CAT,
			"%s: cannot cache annotations of message %lld: %s", s->name,
			(long long)rq->message_id, store_error(s->store));
	free(f);
}

/*
 * The FETCH of a REQ_ANNOTATION is done: entries the server said nothing
 * about are cached as absent, then the answer is read from the cache like
 * one that needed no server.
 */
static int annotation_result(struct cpmsync_session *s, struct request *rq, const char **reason)
{
	char **pairs = NULL, **missing = NULL;
	size_t n = 0;
	int r;

	r = store_begin(s->store);
	for (size_t i = 0; r >= 0 && rq->fetch_entries[i]; i++) {
		r = store_annotation_mark_absent(s->store, rq->message_id, rq->fetch_entries[i],
						 false);
		if (r >= 0)
			r = store_annotation_mark_absent(s->store, rq->message_id,
							 rq->fetch_entries[i], true);
	}
	if (r >= 0)
		r = store_commit(s->store);
	else
		store_rollback(s->store);
	if (r >= 0)
		r = store_annotations_read(s->store, rq->message_id,
					   (const char *const *)rq->entries, rq->shared, &pairs,
					   &missing);
	if (r < 0) {
		*reason = r == -CPMSYNC_E_NOT_FOUND ? "the message is gone" : store_error(s->store);
		return r;
	}
	store_strv_free(missing);
	while (pairs[n])
		n++;
	rq->pairs = pairs;
	rq->n_pairs = rq->alloc_pairs = n;
	return 0;
}

static void request_untagged(struct cpmsync_session *s, struct request *rq,
			     const struct imap_response *resp)
{
	switch (imap_resp_type(resp)) {
	case IMAP_RT_METADATA:
		if (rq->kind == REQ_METADATA) {
			struct imap_metadata md;

			if (imap_resp_metadata(resp, &md) < 0 || !md.has_values)
				break;
			for (size_t i = 0; i < md.count; i++) {
				struct imap_metadata_entry en;

				if (imap_metadata_get(&md, i, &en) < 0 || !en.value ||
				    en.value->type == IMAP_ARG_NIL ||
				    en.value->type == IMAP_ARG_STREAMED)
					continue;
				pairs_add(rq, en.name.str, en.name.len, en.value->u.s.str,
					  en.value->u.s.len);
			}
		}
		break;
	case IMAP_RT_FETCH:
		if (rq->kind == REQ_ANNOTATION) {
			annotation_fetched(s, rq, resp);
		} else if (rq->kind == REQ_FETCH || rq->kind == REQ_CONVERT) {
			struct imap_fetch *f = calloc(1, sizeof(*f)); /* large: as above */

			/* Of this UID: news of others may come meanwhile. */
			if (f && imap_resp_fetch(resp, f) >= 0 && (f->present & IMAP_FETCH_UID) &&
			    f->uid == rq->uid)
				rq->answered = true;
			free(f);
		}
		break;
	case IMAP_RT_ACL:
		if (rq->kind == REQ_ACL) {
			struct imap_acl acl;

			if (imap_resp_acl(resp, &acl) < 0)
				break;
			for (size_t i = 0; i < acl.count; i++) {
				struct imap_nstr id, rights;

				if (imap_acl_get(&acl, i, &id, &rights) >= 0 && id.str &&
				    rights.str)
					pairs_add(rq, id.str, id.len, rights.str, rights.len);
			}
		}
		break;
	case IMAP_RT_MYRIGHTS:
		if (rq->kind == REQ_MYRIGHTS) {
			struct imap_nstr mbox, rights;

			if (imap_resp_myrights(resp, &mbox, &rights) >= 0 && rights.str) {
				free(rq->string);
				rq->string = strndup(rights.str, rights.len);
			}
		}
		break;
	case IMAP_RT_SEARCH:
		if (rq->kind == REQ_SEARCH) {
			struct imap_search se;

			imap_search_init(&se);
			if (imap_resp_search(resp, &se) >= 0)
				for (size_t i = 0; i < se.nums.n; i++)
					rangeset_add_range(&rq->uids, se.nums.r[i].lo,
							   se.nums.r[i].hi);
			imap_search_free(&se);
		}
		break;
	case IMAP_RT_ESEARCH:
		if (rq->kind == REQ_SEARCH) {
			struct imap_esearch es;

			imap_esearch_init(&es);
			if (imap_resp_esearch(resp, &es) >= 0 && (es.present & IMAP_ESEARCH_ALL))
				for (size_t i = 0; i < es.all.n; i++)
					rangeset_add_range(&rq->uids, es.all.r[i].lo,
							   es.all.r[i].hi);
			imap_esearch_free(&es);
		}
		break;
	default:
		break;
	}
}

/* Streamed FETCH content of a request: into a temporary file. */
static bool lit_begin(struct request *rq, const char *name, const char *item, uint64_t size)
{
	if (!rq || rq->fd >= 0)
		return false;
	if (rq->kind == REQ_CONVERT
		    ? !imap_convert_is_part(name, item)
		    : (rq->kind != REQ_FETCH || !name || strcasecmp(name, "FETCH") != 0 || !item ||
		       strncasecmp(item, "BODY[", 5) != 0))
		return false;
	rq->size = size;
	rq->streaming = true;
	if (size > SESSION_FETCH_MAX) {
		rq->too_big = true;
		return true; /* streamed into nothing */
	}
	rq->fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (rq->fd < 0) {
		rq->streaming = false;
		return false;
	}
	return true;
}

static int lit_data(struct request *rq, const void *data, size_t len)
{
	const char *p = data;

	if (rq && rq->too_big)
		return 0;
	while (rq && len > 0) {
		ssize_t n = write(rq->fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static bool req_lit_begin(void *userdata, uint32_t number, const char *name, const char *item,
			  uint64_t size)
{
	struct cpmsync_session *s = userdata;

	(void)number;
	return lit_begin(s->running, name, item, size);
}

static int req_lit_data(void *userdata, const void *data, size_t len)
{
	struct cpmsync_session *s = userdata;

	return lit_data(s->running, data, len);
}

static void req_lit_end(void *userdata)
{
	struct cpmsync_session *s = userdata;

	if (s->running)
		s->running->streaming = false;
}

static const struct imap_client_callbacks request_callbacks = {
	.state = on_state,
	.untagged = on_untagged,
	.literals = { .literal_begin = req_lit_begin,
		      .literal_data = req_lit_data,
		      .literal_end = req_lit_end },
};

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

struct search_walk {
	struct request *rq;
	const int64_t *local; /* local matches (id order), for messages not on the server */
	size_t n_local;
};

static int search_walk_cb(const struct cpmsync_message_info *m, void *userdata)
{
	struct search_walk *w = userdata;
	struct request *rq = w->rq;
	bool match;

	if (m->uid)
		/* The server's SINCE/BEFORE are a day wider (build_search()):
		 * the exact bounds here, as the store's own search has them. */
		match = rangeset_contains(&rq->uids, m->uid) &&
			(!(rq->crit.since || rq->crit.has_since) ||
			 m->internaldate >= rq->crit.since) &&
			(!(rq->crit.before || rq->crit.has_before) ||
			 m->internaldate < rq->crit.before);
	else
		match = bsearch(&m->id, w->local, w->n_local, sizeof(int64_t), cmp_id) != NULL;
	if (!match)
		return 0;
	if (rq->n_ids == rq->alloc_ids) {
		size_t n = rq->alloc_ids ? rq->alloc_ids * 2 : 64;
		int64_t *p = realloc(rq->ids, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		rq->ids = p;
		rq->alloc_ids = n;
	}
	rq->ids[rq->n_ids++] = m->id;
	return 0;
}

/*
 * The server's UIDs become local ids by walking the folder's messages once
 * (in id order, so the result is sorted), never by looking each UID up: a
 * server answering "1:4294967295" costs what the folder holds, no more.
 * Messages not on the server yet match when the local search matches them.
 */
static int search_result(struct cpmsync_session *s, struct request *rq)
{
	_cleanup_free_ int64_t *local = NULL;
	struct search_walk w = { .rq = rq };
	int r;

	r = cpmsync_store_search(s->pub, rq->folder_id, &rq->crit, &local, &w.n_local);
	if (r < 0)
		return r;
	w.local = local;
	return cpmsync_store_foreach_message(s->pub, rq->folder_id, 0, 0, search_walk_cb, &w);
}

/* The command of rq is answered (on either connection): completes rq. */
static int request_complete(struct cpmsync_session *s, struct request *rq,
			    const struct imap_cmd_result *res)
{
	int r = res->r;

	if (r == 0 && rq->kind == REQ_SEARCH) {
		r = search_result(s, rq);
		request_finish(rq, r, r < 0 ? cpmsync_strerror(r) : NULL);
	} else if (r == 0 && rq->kind == REQ_ANNOTATION) {
		const char *reason = NULL;

		r = annotation_result(s, rq, &reason);
		request_finish(rq, r, reason);
	} else {
		request_finish(rq, r, res->text ? res->text : cpmsync_strerror(r));
	}
	return r;
}

static void request_done(struct imap_client *client, const struct imap_cmd_result *res,
			 void *userdata)
{
	struct cpmsync_session *s = userdata;
	struct request *rq = s->running;
	int r;

	(void)client;
	if (!rq)
		return;
	s->running = NULL;
	if (s->client)
		imap_client_set_callbacks(s->client, &session_callbacks, s);
	r = request_complete(s, rq, res);
	if (r != -CPMSYNC_E_SERVER && r < 0 && r != -CPMSYNC_E_NOT_FOUND && r != -ENOMEM &&
	    s->client && imap_client_get_state(s->client) != IMAP_CLIENT_READY)
		return; /* on_state handles the lost connection */
	schedule_kick(s);
}

static int add_search_key(struct imap_cmd *cmd, const char *key, const char *value)
{
	int r = imap_cmd_addf(cmd, " %s ", key);

	if (r >= 0)
		r = imap_cmd_add_string(cmd, value, strlen(value));
	return r;
}

static int build_search(struct imap_cmd *cmd, const struct cpmsync_search_criteria *c)
{
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int r = imap_cmd_add(cmd, "UID SEARCH CHARSET UTF-8 ALL");

	if (r >= 0 && c->text && c->text[0])
		r = add_search_key(cmd, "TEXT", c->text);
	if (r >= 0 && c->from && c->from[0])
		r = add_search_key(cmd, "FROM", c->from);
	if (r >= 0 && c->to && c->to[0])
		r = add_search_key(cmd, "TO", c->to);
	if (r >= 0 && c->subject && c->subject[0])
		r = add_search_key(cmd, "SUBJECT", c->subject);
	if (r >= 0 && c->conversation_id && c->conversation_id[0]) {
		r = imap_cmd_add(cmd, " HEADER Conversation-ID ");
		if (r >= 0)
			r = imap_cmd_add_string(cmd, c->conversation_id,
						strlen(c->conversation_id));
	}
	/* SINCE/BEFORE have day granularity (internal date, server's zone):
	 * a day wider each way, the exact bounds applied locally afterwards
	 * (search_walk_cb()).  A bound IMAP cannot write (a year after 9999;
	 * cpmsync_session_search() refuses one after 9999 itself, the day
	 * added to BEFORE may pass it), and one at or before 1970-01-01
	 * (before 0 matches nothing), is left to that local test alone. */
	if (r >= 0 && c->since > 0) {
		time_t t = (time_t)c->since - 86400;
		struct tm tm;

		if (gmtime_r(&t, &tm) && tm.tm_year + 1900 <= 9999)
			r = imap_cmd_addf(cmd, " SINCE %d-%s-%d", tm.tm_mday, months[tm.tm_mon],
					  tm.tm_year + 1900);
	}
	if (r >= 0 && c->before > 0) {
		time_t t = (time_t)c->before + 86400;
		struct tm tm;

		if (gmtime_r(&t, &tm) && tm.tm_year + 1900 <= 9999)
			r = imap_cmd_addf(cmd, " BEFORE %d-%s-%d", tm.tm_mday, months[tm.tm_mon],
					  tm.tm_year + 1900);
	}
	for (size_t i = 0; r >= 0 && c->flags && c->flags[i]; i++)
		r = imap_cmd_addf(cmd, " KEYWORD %s", c->flags[i]);
	for (size_t i = 0; r >= 0 && c->not_flags && c->not_flags[i]; i++)
		r = imap_cmd_addf(cmd, " UNKEYWORD %s", c->not_flags[i]);
	return r;
}

/* System flags are searched by their own keys, not KEYWORD. */
static int add_flag_keys(struct imap_cmd *cmd, const char *const *flags, bool not )
{
	static const char *const sys[][2] = {
		{ "\\Seen", "SEEN" },	    { "\\Answered", "ANSWERED" },
		{ "\\Flagged", "FLAGGED" }, { "\\Deleted", "DELETED" },
		{ "\\Draft", "DRAFT" },
	};
	int r = 0;

	for (size_t i = 0; r >= 0 && flags && flags[i]; i++) {
		const char *key = NULL;

		for (size_t k = 0; k < ARRAY_SIZE(sys); k++)
			if (strcasecmp(flags[i], sys[k][0]) == 0)
				key = sys[k][1];
		if (key)
			r = imap_cmd_addf(cmd, " %s%s", not ? "UN" : "", key);
		else
			r = imap_cmd_addf(cmd, " %sKEYWORD %s", not ? "UN" : "", flags[i]);
	}
	return r;
}

static int submit_examine(struct imap_client *client, const char *mailbox)
{
	struct imap_cmd *cmd;
	int r;

	r = imap_cmd_new(client, 0, NULL, NULL, &cmd);
	if (r < 0)
		return r;
	r = imap_cmd_add(cmd, "EXAMINE ");
	if (r >= 0)
		r = imap_cmd_add_mailbox(cmd, mailbox);
	if (r < 0) {
		imap_cmd_free(cmd);
		return r;
	}
	imap_cmd_submit(cmd);
	return 0;
}

/* The first queued request, taken off the queue. */
static struct request *request_take(struct cpmsync_session *s)
{
	struct request *rq = s->requests;

	s->requests = rq->next;
	if (!s->requests) {
		s->requests_tail = NULL;
		timer_stop(&s->wait_timer);
	}
	rq->next = NULL;
	return rq;
}

/* rq's commands on client (EXAMINE first when it needs a folder), the last
 * one answered to done: in *ret, not submitted yet. */
static int request_command(struct imap_client *client, struct request *rq, imap_cmd_cb_t done,
			   void *userdata, struct imap_cmd **ret)
{
	struct imap_cmd *cmd = NULL;
	int r;

	r = imap_cmd_new(client, 0, done, userdata, &cmd);
	if (r < 0)
		return r;
	switch (rq->kind) {
	case REQ_METADATA:
		r = imap_cmd_add(cmd, "GETMETADATA ");
		if (r >= 0)
			r = rq->mailbox ? imap_cmd_add_mailbox(cmd, rq->mailbox)
					: imap_cmd_add(cmd, "\"\"");
		if (r >= 0)
			r = imap_cmd_add(cmd, " (");
		for (size_t i = 0; r >= 0 && rq->entries[i]; i++) {
			if (i)
				r = imap_cmd_add(cmd, " ");
			if (r >= 0)
				r = imap_cmd_add_string(cmd, rq->entries[i],
							strlen(rq->entries[i]));
		}
		if (r >= 0)
			r = imap_cmd_add(cmd, ")");
		break;
	case REQ_ACL:
	case REQ_MYRIGHTS:
		r = imap_cmd_add(cmd, rq->kind == REQ_ACL ? "GETACL " : "MYRIGHTS ");
		if (r >= 0)
			r = imap_cmd_add_mailbox(cmd, rq->mailbox);
		break;
	case REQ_FETCH:
		/* SELECT (EXAMINE would do, but a SELECTed folder is what the
		 * engine expects to find; it re-selects anyway). */
		/* The EXAMINE's own result is not needed: when it fails
		 * the FETCH fails too. */
		r = submit_examine(client, rq->mailbox);
		if (r >= 0)
			r = imap_cmd_addf(cmd, "UID FETCH %u (BODY.PEEK[%s])", rq->uid,
					  rq->section);
		break;
	case REQ_ANNOTATION:
		/* Both attributes: the cache keeps both. */
		r = submit_examine(client, rq->mailbox);
		if (r >= 0)
			r = imap_cmd_addf(cmd, "UID FETCH %u (ANNOTATION ((", rq->uid);
		for (size_t i = 0; r >= 0 && rq->fetch_entries[i]; i++) {
			if (i)
				r = imap_cmd_add(cmd, " ");
			if (r >= 0)
				r = imap_cmd_add_string(cmd, rq->fetch_entries[i],
							strlen(rq->fetch_entries[i]));
		}
		if (r >= 0)
			r = imap_cmd_add(cmd, ") (value.priv value.shared)))");
		break;
	case REQ_CONVERT:
		r = submit_examine(client, rq->mailbox);
		if (r >= 0)
			r = imap_cmd_add_convert(cmd, rq->uid, rq->format, rq->width, rq->height,
						 rq->section);
		break;
	case REQ_SEARCH:
		r = submit_examine(client, rq->mailbox);
		if (r >= 0) {
			struct cpmsync_search_criteria c = rq->crit;

			c.flags = c.not_flags = NULL;
			r = build_search(cmd, &c);
		}
		if (r >= 0)
			r = add_flag_keys(cmd, rq->crit.flags, false);
		if (r >= 0)
			r = add_flag_keys(cmd, rq->crit.not_flags, true);
		break;
	}
	if (r < 0) {
		imap_cmd_free(cmd);
		return r;
	}
	*ret = cmd;
	return 0;
}

static void run_request(struct cpmsync_session *s)
{
	struct request *rq = request_take(s);
	struct imap_cmd *cmd = NULL;
	int r;

	s->running = rq;
	s->sel_current = false; /* it may select another folder */
	set_state(s, CPMSYNC_SESSION_SYNCING, push_mode(s));
	r = request_command(s->client, rq, request_done, s, &cmd);
	if (r < 0)
		goto fail;
	imap_client_set_callbacks(s->client, &request_callbacks, s);
	imap_cmd_submit(cmd);
	return;
fail:
	imap_cmd_free(cmd);
	s->running = NULL;
	request_finish(rq, r, cpmsync_strerror(r));
	schedule_kick(s);
}

/* ------------------------------------------------------------------ */
/* The request connection */

/*
 * Why a queued request fails after REQUEST_WAIT_MS: what holds the main
 * connection, and why the request connection did not take the request.
 */
static void busy_reason(struct cpmsync_session *s, char *buf, size_t size)
{
	const char *what = s->sync	   ? "the account is busy syncing"
			   : s->connecting ? "the account is still connecting"
			   : s->running	   ? "the account is busy with another request"
					   : "the account's connection is busy";

	if (s->rrefused_ms)
		snprintf(buf, size,
			 "%s and a second connection for requests could not be opened (%s); "
			 "try again",
			 what, s->rrefused);
	else
		snprintf(buf, size, "%s; try again", what);
}

static void wait_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_session *s = userdata;
	uint64_t now = cpmsync_now_ms();
	char reason[512];

	(void)src;
	s->wait_timer = cpmsync_loop_source_remove(s->wait_timer);
	/* The queue is in arrival order: its head waited longest. */
	while (s->requests && now - s->requests->queued_ms >= s->request_wait_ms) {
		struct request *rq = request_take(s);

		busy_reason(s, reason, sizeof(reason));
		log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: a request waited %" PRIu64 " ms: %s",
			s->name, now - rq->queued_ms, reason);
		request_finish(rq, -EBUSY, reason);
	}
	if (s->requests)
		timer_set(s, &s->wait_timer, s->requests->queued_ms + s->request_wait_ms - now,
			  wait_cb);
}

static void rconn_untagged(struct imap_client *client, const struct imap_response *resp,
			   void *userdata)
{
	struct cpmsync_session *s = userdata;

	(void)client;
	/* News of the folder it EXAMINEd is the main connection's to find
	 * (its wait, or the next sync): only the request's answers here. */
	if (s->rrunning)
		request_untagged(s, s->rrunning, resp);
}

static bool rconn_lit_begin(void *userdata, uint32_t number, const char *name, const char *item,
			    uint64_t size)
{
	struct cpmsync_session *s = userdata;

	(void)number;
	return lit_begin(s->rrunning, name, item, size);
}

static int rconn_lit_data(void *userdata, const void *data, size_t len)
{
	struct cpmsync_session *s = userdata;

	return lit_data(s->rrunning, data, len);
}

static void rconn_lit_end(void *userdata)
{
	struct cpmsync_session *s = userdata;

	if (s->rrunning)
		s->rrunning->streaming = false;
}

static void rconn_state(struct imap_client *client, int r, const char *reason, void *userdata);

static const struct imap_client_callbacks rconn_callbacks = {
	.state = rconn_state,
	.untagged = rconn_untagged,
	.literals = { .literal_begin = rconn_lit_begin,
		      .literal_data = rconn_lit_data,
		      .literal_end = rconn_lit_end },
};

/* Closes the request connection, if open, failing the request running on
 * it (if any) with r and reason. */
static void rconn_close(struct cpmsync_session *s, int r, const char *reason)
{
	struct request *rq = s->rrunning;

	timer_stop(&s->ridle_timer);
	s->rrunning = NULL;
	s->rconnecting = false;
	/* Its commands complete as cancelled: rconn_done() sees no request. */
	if (s->rclient)
		s->rclient = imap_client_free(s->rclient);
	if (rq)
		request_finish(rq, r, reason);
}

static void rconn_idle_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_session *s = userdata;

	(void)src;
	s->ridle_timer = cpmsync_loop_source_remove(s->ridle_timer);
	if (!s->rclient || s->rrunning || s->rconnecting)
		return;
	log_debug(CAT, "%s: closing the request connection (%u s without a request)", s->name,
		  REQ_CONN_IDLE_MS / 1000);
	rconn_close(s, 0, NULL);
}

/* It could not be opened, or was lost while logging in: requests wait
 * for the main connection (REQUEST_WAIT_MS at most) and no other try is
 * made for REQ_CONN_RETRY_MS. */
static void rconn_refused(struct cpmsync_session *s, const char *why)
{
	snprintf(s->rrefused, sizeof(s->rrefused), "%s", why); /* why may be the client's */
	s->rrefused_ms = cpmsync_now_ms();
	rconn_close(s, 0, NULL);
	log_msg(CPMSYNC_LOG_WARNING, CAT,
		"%s: no second connection for requests: %s; they wait for the sync (%" PRIu64
		" ms at most)",
		s->name, s->rrefused, s->request_wait_ms);
}

static void rconn_state(struct imap_client *client, int r, const char *reason, void *userdata)
{
	struct cpmsync_session *s = userdata;
	char why[256];

	if (r == 0 && imap_client_get_state(client) == IMAP_CLIENT_READY) {
		s->rconnecting = false;
		s->rrefused_ms = 0;
		log_debug(CAT, "%s: request connection ready", s->name);
		timer_set(s, &s->ridle_timer, REQ_CONN_IDLE_MS, rconn_idle_cb);
		schedule_kick(s);
		return;
	}
	if (r >= 0)
		r = -CPMSYNC_E_DISCONNECTED;
	snprintf(why, sizeof(why), "%s", reason ? reason : cpmsync_strerror(r));
	if (s->rconnecting) {
		rconn_refused(s, why);
	} else {
		log_debug(CAT, "%s: the request connection closed: %s", s->name, why);
		rconn_close(s, r, why);
	}
	schedule_kick(s);
}

static void rconn_open(struct cpmsync_session *s)
{
	_cleanup_free_ char *not_ours = NULL;
	int r;

	/* As connect_now(): not a byte to a server the store is not of. */
	r = engine_account_identity(s->store, s->account_id, &s->account, &not_ours);
	if (r < 0) {
		rconn_refused(s, not_ours ? not_ours : cpmsync_strerror(r));
		return;
	}
	r = imap_client_new(s->loop, &s->account, &rconn_callbacks, s, &s->rclient);
	if (r >= 0)
		r = imap_client_connect(s->rclient);
	if (r < 0) {
		char why[256];

		snprintf(why, sizeof(why), "%s",
			 s->rclient && imap_client_error(s->rclient)[0]
				 ? imap_client_error(s->rclient)
				 : cpmsync_strerror(r));
		rconn_refused(s, why);
		return;
	}
	s->rconnecting = true;
	log_debug(CAT, "%s: the connection is busy: opening a second one for requests", s->name);
}

static void rconn_done(struct imap_client *client, const struct imap_cmd_result *res,
		       void *userdata)
{
	struct cpmsync_session *s = userdata;
	struct request *rq = s->rrunning;

	(void)client;
	if (!rq)
		return;
	s->rrunning = NULL;
	/* A Fetch keeps its body (keep_fetched_body()) with store_begin(),
	 * which commits an engine batch open meanwhile first (store.h): safe
	 * in the middle of a sync. */
	request_complete(s, rq, res);
	if (s->rclient)
		timer_set(s, &s->ridle_timer, REQ_CONN_IDLE_MS, rconn_idle_cb);
	schedule_kick(s); /* a lost connection: rconn_state() */
}

/* The main connection is busy (a sync, a replay, connecting): the first
 * queued request on the request connection, opened if need be. */
static void rconn_kick(struct cpmsync_session *s)
{
	struct imap_cmd *cmd = NULL;
	struct request *rq;
	int r;

	if (!s->requests || s->rrunning || s->rconnecting)
		return;
	/* A new host name not proven yet to be the store's server
	 * (store_sync_account_moved(), see kick()): the requests wait for
	 * the run that proves it, not on a connection of their own. */
	if (store_sync_account_moved(s->store, s->account_id, s->account.host, s->account.user) > 0)
		return;
	if (!s->rclient) {
		if (s->rrefused_ms && cpmsync_now_ms() - s->rrefused_ms < REQ_CONN_RETRY_MS)
			return; /* they wait here (wait_cb()) */
		rconn_open(s);
		return;
	}
	rq = request_take(s);
	r = request_command(s->rclient, rq, rconn_done, s, &cmd);
	if (r < 0) {
		request_finish(rq, r, cpmsync_strerror(r));
		schedule_kick(s);
		return;
	}
	timer_stop(&s->ridle_timer);
	s->rrunning = rq;
	imap_cmd_submit(cmd);
}

static struct request *request_new(struct cpmsync_session *s, enum req_kind kind, void *userdata)
{
	struct request *rq = calloc(1, sizeof(*rq));

	if (!rq)
		return NULL;
	rq->s = s;
	rq->kind = kind;
	rq->userdata = userdata;
	rq->fd = -1;
	rangeset_init(&rq->uids);
	return rq;
}

static void fail_later_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct request *rq = userdata;
	int r = rq->n_ids ? (int)rq->uid : 0;

	(void)src;
	request_finish(rq, r ? r : -CPMSYNC_E_OFFLINE, rq->string ? rq->string : "offline");
}

/* Queues rq, or fails it from the loop (offline, not supported ...). */
static int request_submit(struct cpmsync_session *s, struct request *rq, int fail, const char *why)
{
	if (!fail && !s->online) {
		fail = -CPMSYNC_E_OFFLINE;
		why = "the account is offline";
	}
	if (!fail && (s->auth_stopped || (!s->client && s->retry_timer))) {
		fail = -CPMSYNC_E_OFFLINE;
		why = s->last_error[0] ? s->last_error : "not connected";
	}
	if (fail) {
		/* Reported from the loop, as promised.  why may be rq->string
		 * itself (acl_request() keeps its reason there): copy, then
		 * free. */
		char *reason = strdup(why ? why : cpmsync_strerror(fail));

		free(rq->string);
		rq->string = reason;
		rq->uid = (uint32_t)fail;
		rq->n_ids = 1; /* marks "fail" for fail_later_cb */
		free(rq->ids);
		rq->ids = NULL;
		if (cpmsync_loop_defer(s->loop, fail_later_cb, rq, NULL, NULL) < 0) {
			request_free(rq);
			return -ENOMEM;
		}
		rq->n_ids = 1;
		return 0;
	}
	rq->queued_ms = cpmsync_now_ms();
	if (s->requests_tail)
		s->requests_tail->next = rq;
	else
		s->requests = rq;
	s->requests_tail = rq;
	if (!s->wait_timer)
		timer_set(s, &s->wait_timer, s->request_wait_ms, wait_cb);
	schedule_kick(s);
	return 0;
}

static int folder_mailbox(struct cpmsync_session *s, int64_t folder_id, char **ret,
			  const char **why)
{
	int r = store_sync_folder_server_name(s->store, folder_id, ret);

	if (r < 0) {
		*why = "no such folder";
		return r;
	}
	if (!*ret) {
		*why = "the folder is not on the server yet";
		return -CPMSYNC_E_OFFLINE;
	}
	return 0;
}

static bool cap_name(struct cpmsync_session *s, const char *name)
{
	return cpmsync_session_has_capability(s, name) || !s->caps || !s->caps[0];
}

int cpmsync_session_get_metadata(struct cpmsync_session *s, int64_t folder_id,
				 const char *const *entries, cpmsync_pairs_cb_t cb, void *userdata)
{
	struct request *rq;
	const char *why = NULL;
	int fail = 0;

	if (!s || !entries || !entries[0] || !cb)
		return -EINVAL;
	rq = request_new(s, REQ_METADATA, userdata);
	if (!rq)
		return -ENOMEM;
	rq->cb.pairs = cb;
	rq->folder_id = folder_id;
	rq->entries = strv_copy(entries);
	if (!rq->entries) {
		request_free(rq);
		return -ENOMEM;
	}
	if (folder_id)
		fail = folder_mailbox(s, folder_id, &rq->mailbox, &why);
	if (!fail && !cap_name(s, "METADATA") &&
	    !(folder_id == 0 && cap_name(s, "METADATA-SERVER"))) {
		fail = -CPMSYNC_E_NOT_SUPPORTED;
		why = "METADATA";
	}
	return request_submit(s, rq, fail, why);
}

static void answer_later_cb(struct cpmsync_loop_source *src, void *userdata)
{
	(void)src;
	request_finish(userdata, 0, NULL);
}

int cpmsync_session_get_annotations(struct cpmsync_session *s, int64_t message_id,
				    const char *const *entries, bool shared, cpmsync_pairs_cb_t cb,
				    void *userdata)
{
	char **pairs = NULL, **missing = NULL;
	struct request *rq;
	const char *why = NULL;
	int fail = 0;
	size_t n = 0;

	if (!s || !entries || !entries[0] || !cb)
		return -EINVAL;
	for (size_t i = 0; entries[i]; i++)
		if (cpmsync_annotation_entry_check(entries[i], NULL) < 0)
			return -EINVAL;
	rq = request_new(s, REQ_ANNOTATION, userdata);
	if (!rq)
		return -ENOMEM;
	rq->cb.pairs = cb;
	rq->message_id = message_id;
	rq->shared = shared;
	rq->entries = strv_copy(entries);
	if (!rq->entries) {
		request_free(rq);
		return -ENOMEM;
	}
	if (!cap_name(s, "ANNOTATE-EXPERIMENT-1")) {
		fail = -CPMSYNC_E_NOT_SUPPORTED;
		why = "ANNOTATE";
		return request_submit(s, rq, fail, why);
	}
	fail = store_annotations_read(s->store, message_id, entries, shared, &pairs, &missing);
	if (fail == -ENOMEM) {
		request_free(rq);
		return fail;
	}
	if (fail < 0)
		return request_submit(s, rq, fail, "no such message");
	while (pairs[n])
		n++;
	if (!missing[0]) {
		/* All cached (or pending): no server needed. */
		store_strv_free(missing);
		rq->pairs = pairs;
		rq->n_pairs = rq->alloc_pairs = n;
		if (cpmsync_loop_defer(s->loop, answer_later_cb, rq, NULL, NULL) < 0) {
			request_free(rq);
			return -ENOMEM;
		}
		return 0;
	}
	store_strv_free(pairs);
	rq->fetch_entries = missing;
	fail = store_sync_message_locate(s->store, message_id, &rq->folder_id, &rq->uid);
	if (fail < 0)
		why = "no such message";
	else
		fail = folder_mailbox(s, rq->folder_id, &rq->mailbox, &why);
	return request_submit(s, rq, fail, why);
}

static int acl_request(struct cpmsync_session *s, enum req_kind kind, int64_t folder_id,
		       void *userdata, struct request **ret)
{
	struct request *rq;
	const char *why = NULL;
	int fail;

	rq = request_new(s, kind, userdata);
	if (!rq)
		return -ENOMEM;
	rq->folder_id = folder_id;
	fail = folder_mailbox(s, folder_id, &rq->mailbox, &why);
	if (!fail && !cap_name(s, "ACL")) {
		fail = -CPMSYNC_E_NOT_SUPPORTED;
		why = "ACL";
	}
	*ret = rq;
	return fail == 0 ? 0 : (rq->string = strdup(why), fail);
}

int cpmsync_session_get_acl(struct cpmsync_session *s, int64_t folder_id, cpmsync_pairs_cb_t cb,
			    void *userdata)
{
	struct request *rq;
	int fail;

	if (!s || !cb)
		return -EINVAL;
	fail = acl_request(s, REQ_ACL, folder_id, userdata, &rq);
	if (fail == -ENOMEM)
		return fail;
	rq->cb.pairs = cb;
	return request_submit(s, rq, fail, rq->string);
}

int cpmsync_session_my_rights(struct cpmsync_session *s, int64_t folder_id, cpmsync_string_cb_t cb,
			      void *userdata)
{
	struct request *rq;
	int fail;

	if (!s || !cb)
		return -EINVAL;
	fail = acl_request(s, REQ_MYRIGHTS, folder_id, userdata, &rq);
	if (fail == -ENOMEM)
		return fail;
	rq->cb.string = cb;
	return request_submit(s, rq, fail, rq->string);
}

static bool section_valid(const char *section)
{
	size_t n = strlen(section);

	if (n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = section[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      c == '.'))
			return false;
	}
	return true;
}

int cpmsync_session_fetch(struct cpmsync_session *s, int64_t message_id, const char *section,
			  cpmsync_data_cb_t cb, void *userdata)
{
	struct request *rq;
	const char *why = NULL;
	int fail = 0;

	if (!s || !cb || !section || !section_valid(section))
		return -EINVAL;
	rq = request_new(s, REQ_FETCH, userdata);
	if (!rq)
		return -ENOMEM;
	rq->cb.data = cb;
	rq->message_id = message_id;
	rq->section = strdup(section);
	if (!rq->section) {
		request_free(rq);
		return -ENOMEM;
	}
	fail = store_sync_message_locate(s->store, message_id, &rq->folder_id, &rq->uid);
	if (fail < 0)
		why = "no such message";
	else if (rq->uid == 0) {
		fail = -CPMSYNC_E_OFFLINE;
		why = "the message is not on the server yet";
	} else {
		fail = folder_mailbox(s, rq->folder_id, &rq->mailbox, &why);
	}
	return request_submit(s, rq, fail, why);
}

int cpmsync_session_preview(struct cpmsync_session *s, int64_t message_id, const char *section,
			    const char *format, uint32_t width, uint32_t height,
			    cpmsync_data_cb_t cb, void *userdata)
{
	struct request *rq;
	const char *why = NULL;
	int fail = 0;

	if (!s || !cb || !section || !section_valid(section) || !format || !width || !height)
		return -EINVAL;
	rq = request_new(s, REQ_CONVERT, userdata);
	if (!rq)
		return -ENOMEM;
	rq->cb.data = cb;
	rq->message_id = message_id;
	rq->section = strdup(section);
	rq->format = strdup(format);
	rq->width = width;
	rq->height = height;
	if (!rq->section || !rq->format) {
		request_free(rq);
		return -ENOMEM;
	}
	if (!cap_name(s, "CONVERT")) {
		fail = -CPMSYNC_E_NOT_SUPPORTED;
		why = "CONVERT";
	} else {
		fail = store_sync_message_locate(s->store, message_id, &rq->folder_id, &rq->uid);
		if (fail < 0)
			why = "no such message";
		else if (rq->uid == 0) {
			fail = -CPMSYNC_E_OFFLINE;
			why = "the message is not on the server yet";
		} else {
			fail = folder_mailbox(s, rq->folder_id, &rq->mailbox, &why);
		}
	}
	return request_submit(s, rq, fail, why);
}

static int crit_copy(struct request *rq, const struct cpmsync_search_criteria *c)
{
	const char *src[] = { c->text, c->from, c->to, c->subject, c->conversation_id };
	const char **dst[] = { &rq->crit.text, &rq->crit.from, &rq->crit.to, &rq->crit.subject,
			       &rq->crit.conversation_id };
	size_t nf = 0, nn = 0, k = 0;

	while (c->flags && c->flags[nf])
		nf++;
	while (c->not_flags && c->not_flags[nn])
		nn++;
	rq->crit_strings = calloc(ARRAY_SIZE(src) + nf + nn + 1, sizeof(char *));
	rq->crit.flags = calloc(nf + 1, sizeof(char *));
	rq->crit.not_flags = calloc(nn + 1, sizeof(char *));
	if (!rq->crit_strings || !rq->crit.flags || !rq->crit.not_flags)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(src); i++) {
		if (!src[i])
			continue;
		rq->crit_strings[k] = strdup(src[i]);
		if (!rq->crit_strings[k])
			return -ENOMEM;
		*dst[i] = rq->crit_strings[k++];
	}
	for (size_t i = 0; i < nf; i++) {
		rq->crit_strings[k] = strdup(c->flags[i]);
		if (!rq->crit_strings[k])
			return -ENOMEM;
		((const char **)rq->crit.flags)[i] = rq->crit_strings[k++];
	}
	for (size_t i = 0; i < nn; i++) {
		rq->crit_strings[k] = strdup(c->not_flags[i]);
		if (!rq->crit_strings[k])
			return -ENOMEM;
		((const char **)rq->crit.not_flags)[i] = rq->crit_strings[k++];
	}
	rq->crit.since = c->since;
	rq->crit.before = c->before;
	rq->crit.has_since = c->has_since;
	rq->crit.has_before = c->has_before;
	return 0;
}

/* Flags go into the SEARCH command as atoms (KEYWORD x): each must be a
 * flag (util/flags.h), as the local search requires too. */
static bool search_flags_valid(const char *const *flags)
{
	for (size_t i = 0; flags && flags[i]; i++)
		if (!flag_valid(flags[i], strlen(flags[i])))
			return false;
	return true;
}

int cpmsync_session_search(struct cpmsync_session *s, int64_t folder_id,
			   const struct cpmsync_search_criteria *criteria, cpmsync_ids_cb_t cb,
			   void *userdata)
{
	struct request *rq;
	const char *why = NULL;
	int fail;

	if (!s || !criteria || !cb || !search_flags_valid(criteria->flags) ||
	    !search_flags_valid(criteria->not_flags) || criteria->since > CPMSYNC_OP_MAX_DATE ||
	    criteria->before > CPMSYNC_OP_MAX_DATE)
		return -EINVAL;
	rq = request_new(s, REQ_SEARCH, userdata);
	if (!rq)
		return -ENOMEM;
	rq->cb.ids = cb;
	rq->folder_id = folder_id;
	if (crit_copy(rq, criteria) < 0) {
		request_free(rq);
		return -ENOMEM;
	}
	fail = folder_mailbox(s, folder_id, &rq->mailbox, &why);
	return request_submit(s, rq, fail, why);
}

/* ------------------------------------------------------------------ */
/* Life */

static void account_clear(struct cpmsync_session *s)
{
	free(s->name);
	free(s->host);
	free(s->user);
	free(s->ca_file);
	free(s->client_cert);
	strv_free(s->folders);
	s->name = s->host = s->user = s->ca_file = s->client_cert = NULL;
	s->folders = NULL;
}

static int account_copy(struct cpmsync_session *s, const struct cpmsync_account *a)
{
	account_clear(s);
	s->account = *a;
	s->name = strdup(a->name);
	s->host = strdup(a->host);
	s->user = strdup(a->user);
	s->ca_file = a->ca_file ? strdup(a->ca_file) : NULL;
	s->client_cert = a->client_cert ? strdup(a->client_cert) : NULL;
	s->folders = a->folders ? strv_copy(a->folders) : NULL;
	if (!s->name || !s->host || !s->user || (a->ca_file && !s->ca_file) ||
	    (a->client_cert && !s->client_cert) || (a->folders && !s->folders))
		return -ENOMEM;
	s->account.name = s->name;
	s->account.host = s->host;
	s->account.user = s->user;
	s->account.ca_file = s->ca_file;
	s->account.client_cert = s->client_cert;
	s->account.folders = (const char *const *)s->folders;
	return 0;
}

static uint64_t notify_keep_ms(void)
{
	const char *v = secure_getenv(NOTIFY_KEEP_ENV);
	char *end;
	unsigned long long n;

	if (!v || !*v)
		return NOTIFY_KEEP_MS;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end || v[0] == '-' || n > NOTIFY_KEEP_ENV_MAX) {
		log_msg(CPMSYNC_LOG_WARNING, CAT, "ignoring %s=%s (milliseconds, at most %u)",
			NOTIFY_KEEP_ENV, v, NOTIFY_KEEP_ENV_MAX);
		return NOTIFY_KEEP_MS;
	}
	return n;
}

static uint64_t request_wait_ms(void)
{
	const char *v = secure_getenv(REQUEST_WAIT_ENV);
	char *end;
	unsigned long long n;

	if (!v || !*v)
		return REQUEST_WAIT_MS;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end || v[0] == '-' || !n || n > REQUEST_WAIT_MS) {
		log_msg(CPMSYNC_LOG_WARNING, CAT, "ignoring %s=%s (milliseconds, 1 to %u)",
			REQUEST_WAIT_ENV, v, REQUEST_WAIT_MS);
		return REQUEST_WAIT_MS;
	}
	return n;
}

int cpmsync_session_new(struct cpmsync_loop *loop, struct cpmsync_store *store,
			const struct cpmsync_account *account,
			const struct cpmsync_session_options *options,
			const struct cpmsync_session_callbacks *callbacks, void *userdata,
			struct cpmsync_session **ret)
{
	struct cpmsync_session *s;
	int r;

	if (!loop || !store || !account || !account->name || !account->host || !account->user ||
	    !ret)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->pub = store;
	s->store = store_from_public(store);
	rangeset_init(&s->idle_vanished);
	if (options)
		s->opt = *options;
	s->notify_keep_ms = notify_keep_ms();
	s->request_wait_ms = request_wait_ms();
	if (!s->opt.poll_interval_ms)
		s->opt.poll_interval_ms = DEFAULT_POLL_MS;
	if (!s->opt.idle_refresh_ms)
		s->opt.idle_refresh_ms = DEFAULT_REFRESH_MS;
	if (s->opt.idle_refresh_ms > MAX_REFRESH_MS)
		s->opt.idle_refresh_ms = MAX_REFRESH_MS;
	if (!s->opt.retry_min_ms)
		s->opt.retry_min_ms = DEFAULT_RETRY_MIN_MS;
	if (!s->opt.retry_max_ms)
		s->opt.retry_max_ms = DEFAULT_RETRY_MAX_MS;
	if (s->opt.retry_max_ms < s->opt.retry_min_ms)
		s->opt.retry_max_ms = s->opt.retry_min_ms;
	if (!s->opt.debounce_ms)
		s->opt.debounce_ms = DEFAULT_DEBOUNCE_MS;
	if (!s->opt.probe_ms)
		s->opt.probe_ms = DEFAULT_PROBE_MS;
	if (callbacks)
		s->cb = *callbacks;
	s->userdata = userdata;
	s->retry_ms = s->opt.retry_min_ms;
	s->online = true;
	s->active_default = true;
	s->state = CPMSYNC_SESSION_CONNECTING;
	r = account_copy(s, account);
	if (r >= 0)
		r = store_sync_account(s->store, account->name, &s->account_id);
	if (r >= 0)
		r = store_sync_get_online(s->store, s->account_id, &s->online);
	if (r < 0) {
		cpmsync_session_free(s);
		return r;
	}
	if (!s->online) {
		s->state = CPMSYNC_SESSION_OFFLINE;
		log_msg(CPMSYNC_LOG_INFO, CAT, "%s: offline, as the user left it (Online is off)",
			s->name);
	}
	schedule_kick(s);
	*ret = s;
	return 0;
}

struct cpmsync_session *cpmsync_session_free(struct cpmsync_session *s)
{
	if (!s)
		return NULL;
	s->cb = (struct cpmsync_session_callbacks){ 0 };
	if (s->sync) {
		/* Its callback would run later, into freed memory. */
		engine_detach(s->sync);
		cpmsync_sync_cancel(s->sync);
		s->sync = NULL;
	}
	if (s->running) {
		request_finish(s->running, -CPMSYNC_E_CANCELED, "cancelled");
		s->running = NULL;
	}
	rconn_close(s, -CPMSYNC_E_CANCELED, "cancelled");
	fail_requests(s, -CPMSYNC_E_CANCELED, "cancelled");
	drop_connection(s);
	timer_stop(&s->retry_timer);
	timer_stop(&s->debounce_timer);
	timer_stop(&s->kick_src);
	account_clear(s);
	strv_free(s->caps);
	free(s->idle_folder);
	rangeset_free(&s->idle_vanished);
	store_folder_index_free(&s->fidx);
	free(s);
	return NULL;
}

int cpmsync_session_set_account(struct cpmsync_session *s, const struct cpmsync_account *account)
{
	int r;

	if (!s || !account || !account->name || !streq(account->name, s->name) || !account->host ||
	    !account->user)
		return -EINVAL;
	r = account_copy(s, account);
	if (r < 0)
		return r;
	s->auth_stopped = false;
	s->retry_ms = s->opt.retry_min_ms;
	timer_stop(&s->retry_timer);
	if (s->sync)
		cpmsync_sync_cancel(s->sync);
	drop_connection(s);
	rconn_close(s, -CPMSYNC_E_DISCONNECTED, "the account's settings changed");
	s->rrefused_ms = 0;
	set_state(s, CPMSYNC_SESSION_CONNECTING, CPMSYNC_PUSH_OFF);
	schedule_kick(s);
	return 0;
}

int cpmsync_session_set_poll_interval(struct cpmsync_session *s, unsigned ms)
{
	if (!s)
		return -EINVAL;
	s->opt.poll_interval_ms = ms ? ms : DEFAULT_POLL_MS;
	if (s->poll_timer)
		timer_set(s, &s->poll_timer, s->opt.poll_interval_ms, poll_cb);
	log_debug(CAT, "%s: poll interval %u ms", s->name, s->opt.poll_interval_ms);
	return 0;
}

void cpmsync_session_set_online(struct cpmsync_session *s, bool online)
{
	int r;

	if (!s || s->online == online)
		return;
	s->online = online;
	log_msg(CPMSYNC_LOG_INFO, CAT, "%s: going %s", s->name, online ? "online" : "offline");
	/* Kept for the next start: "no network at all" outlives a restart. */
	r = store_sync_set_online(s->store, s->account_id, online);
	if (r < 0)
		log_msg(CPMSYNC_LOG_WARNING, CAT,
			"%s: Online %s is not kept for the next start: %s", s->name,
			online ? "on" : "off",
			*store_error(s->store) ? store_error(s->store) : cpmsync_strerror(r));
	if (online) {
		s->auth_stopped = false;
		s->retry_ms = s->opt.retry_min_ms;
		set_state(s, CPMSYNC_SESSION_CONNECTING, CPMSYNC_PUSH_OFF);
	}
	changed(s);
	kick(s);
}

/* Whether nothing local waits for the server (the journal is empty). */
static bool journal_empty(struct cpmsync_session *s)
{
	uint32_t pending = 0;

	return cpmsync_store_pending_operations(s->pub, s->name, &pending) >= 0 && !pending;
}

/*
 * Sync() under NOTIFY with nothing pending (issue 9): the session waits
 * with NOTIFY set, every STATUS since agreed with the store or was synced,
 * nothing is running, wanted or journaled.  The store is then as current
 * as what the server has reported; what it has not reported yet is the
 * only thing a sync could find.  Dovecot delays NOTIFY events by 500 ms
 * (NOTIFY_DELAY_MSECS) but sends what it holds before a NOOP's OK
 * (2.3.19, measured: a STATUS for an APPEND or STORE another client made
 * just before comes ahead of the OK; RFC 3501 6.1.2: NOOP is the poll for
 * updates).  So one NOOP is the proof of currency: a change made before
 * the Sync() call is reported before its OK, compared with the store by
 * on_status() and, if it differs, synced (folder_news(): the sync of those
 * folders, which moves SyncGeneration when done).  Otherwise the OK
 * completes the request as a sync that found nothing (sync_check_done()).
 * Answering without the NOOP (32fcb63) was stale for exactly the change an
 * outband Sync() is about (9812ea4).
 */
static bool sync_check_possible(struct cpmsync_session *s)
{
	/* Trusted for NOTIFY_KEEP_MS after its SET (whose STATUS of every
	 * folder was compared with the store), as events are (kick()): on
	 * Dovecot 2.3 a rotation of its list index log leaves NOTIFY silent
	 * for other folders than INBOX, and a folder renamed by doveadm was
	 * seen reported by nothing at all, so an older SET is no proof of
	 * currency: a Sync() then runs (LIST-STATUS and NOTIFY SET again). */
	return s->online && s->client && !s->sync && !s->connecting && !s->running &&
	       !s->requests && !s->sync_wanted && !s->full_wanted && !s->fast_news &&
	       !s->n_notify && !s->debounce_timer && !s->retry_timer && !s->notify_rearm &&
	       s->wait == WAIT_IDLING && s->wait_notify && s->push == CPMSYNC_PUSH_NOTIFY &&
	       cpmsync_now_ms() - s->notify_set_ms < s->notify_keep_ms && !s->last_error[0] &&
	       journal_empty(s);
}

static void full_sync_wanted(struct cpmsync_session *s)
{
	s->full_wanted = true;
	want_sync(s, true);
}

static int sync_check(struct cpmsync_session *s);

static void sync_check_done(struct imap_client *client, const struct imap_cmd_result *res,
			    void *userdata)
{
	static const struct cpmsync_sync_stats none;
	struct cpmsync_session *s = userdata;
	uint64_t now;

	s->check_cmd = 0;
	if (res->r == -CPMSYNC_E_CANCELED)
		return;
	if (res->r < 0 && res->r != -CPMSYNC_E_SERVER) {
		/* The connection: the reconnection's sync answers. */
		if (!s->sync)
			wait_failed(s, client, res, "NOOP");
		return;
	}
	if (res->r < 0 || s->check_again) {
		/* Refused, or another Sync() came after the NOOP went out:
		 * that one needs a NOOP sent after it. */
		s->check_again = false;
		if (res->r < 0 || !sync_check_possible(s) || sync_check(s) < 0)
			full_sync_wanted(s);
		return;
	}
	if (s->sync_wanted || s->debounce_timer || s->n_notify || s->full_wanted || s->sync)
		return; /* news before the OK: its sync starts after the call */
	if (!sync_check_possible(s)) {
		full_sync_wanted(s);
		return;
	}
	now = (uint64_t)time(NULL);
	/* What the engine's run records at its end; if the store cannot, a run. */
	if (store_sync_set_last_sync(s->store, s->account_id, (int64_t)now) < 0) {
		log_debug(CAT, "%s: cannot record the sync: %s", s->name, store_error(s->store));
		full_sync_wanted(s);
		return;
	}
	log_debug(CAT, "%s: sync: NOTIFY set, nothing pending, no news before the NOOP's OK",
		  s->name);
	s->last_sync = now;
	timer_set(s, &s->refresh_timer, s->opt.idle_refresh_ms, refresh_cb);
	changed(s);
	/* As a run that found no folder to sync ends: all 0 of 0 done. */
	if (s->cb.progress)
		s->cb.progress(s, "", 0, 0, s->userdata);
	if (s->cb.synced)
		s->cb.synced(s, 0, NULL, &none, s->userdata);
}

static int sync_check(struct cpmsync_session *s)
{
	int64_t id = imap_client_simple(s->client, 0, sync_check_done, s, "NOOP");

	if (id < 0)
		return (int)id;
	s->check_cmd = id;
	return 0;
}

/* check: a Sync() (the NOOP when sync_check_possible()), else a full pass. */
static void sync_request(struct cpmsync_session *s, bool check)
{
	if (check && s->check_cmd) {
		s->check_again = true;
		return;
	}
	if (check && sync_check_possible(s) && sync_check(s) >= 0)
		return;
	if (s->auth_stopped) {
		s->auth_stopped = false;
		s->retry_ms = s->opt.retry_min_ms;
	}
	if (s->retry_timer && !s->client) {
		timer_stop(&s->retry_timer);
		schedule_kick(s);
	}
	s->full_wanted = true;
	if (s->wait == WAIT_IDLING && s->idle_cmd && !s->wait_notify && !s->debounce_timer &&
	    journal_empty(s)) {
		/* A Sync() in IDLE with nothing journaled: nothing to gather
		 * for the run, so no debounce (5 ms of a ~1 ms answer); DONE
		 * and the run's LIST-STATUS go together (kick()). */
		s->check_syncs = 0;
		s->sync_wanted = true;
		schedule_kick(s);
		return;
	}
	want_sync(s, true);
}

void cpmsync_session_sync_now(struct cpmsync_session *s)
{
	if (s)
		sync_request(s, true);
}

/*
 * A full pass whatever push says (cpmctl sync): the NOOP of Sync() under
 * NOTIFY is proof of currency only for what Dovecot 2.3 reports, and it
 * reports neither a folder renamed by doveadm nor, after its list index
 * log rotated, changes to folders other than INBOX; the user's explicit
 * sync would then leave the store stale until the poll.  With a NOOP
 * already in flight for a Sync(), its answer sees full_wanted and leaves
 * the request to this run (sync_check_done()).
 */
void cpmsync_session_sync_full(struct cpmsync_session *s)
{
	if (s)
		sync_request(s, false);
}

/* Backing off after a failure, or stopped by a refused login: a local
 * change waits for the next try (which replays the journal) rather than
 * cutting it short.  Each cut-short try that failed doubled the back-off:
 * a dozen changes during a 3 s outage made it 6 minutes. */
static bool waiting_to_retry(const struct cpmsync_session *s)
{
	return !s->client && (s->retry_timer || s->auth_stopped);
}

void cpmsync_session_changed_locally(struct cpmsync_session *s)
{
	if (!s || waiting_to_retry(s))
		return;
	cpmsync_session_sync_now(s);
}

void cpmsync_session_replay_soon(struct cpmsync_session *s)
{
	if (!s || waiting_to_retry(s))
		return;
	/* No LIST of every folder and no debounce: the run of news in the
	 * IDLE folder (the fast path when it is current, kick()), which
	 * replays the journal too; during a sync, that run right after it. */
	if (s->push == CPMSYNC_PUSH_IDLE && !s->full_wanted &&
	    ((s->wait == WAIT_IDLING && s->idle_cmd && s->sel_current) || s->sync)) {
		s->fast_news = true;
		s->check_syncs = 0;
		s->sync_wanted = true;
		if (!s->sync)
			schedule_kick(s);
		return;
	}
	cpmsync_session_sync_now(s);
}

void cpmsync_session_network_changed(struct cpmsync_session *s, const char *why)
{
	if (!s || !s->online || s->auth_stopped)
		return;
	if (!why)
		why = "the network changed";
	s->retry_ms = s->opt.retry_min_ms;
	/* The request connection: an idle one is opened again when needed
	 * (and a refused one may be taken now); a busy one is checked. */
	s->rrefused_ms = 0;
	if (s->rclient && !s->rrunning)
		rconn_close(s, 0, NULL);
	else if (s->rrunning)
		imap_client_probe(s->rclient, s->opt.probe_ms, why);
	if (!s->client) {
		if (!s->retry_timer)
			return; /* not connected, not waiting: kick() connects */
		log_msg(CPMSYNC_LOG_INFO, CAT, "%s: %s: connecting now", s->name, why);
		timer_stop(&s->retry_timer);
		schedule_kick(s);
		return;
	}
	if (s->connecting) {
		/* Begun before the change: its SYN or handshake may be lost on
		 * a route that is gone, for the connect timeout (30 s). */
		log_msg(CPMSYNC_LOG_INFO, CAT, "%s: %s: connecting again", s->name, why);
		drop_connection(s);
		schedule_kick(s);
		return;
	}
	log_msg(CPMSYNC_LOG_INFO, CAT, "%s: %s: checking the connection (%u ms)", s->name, why,
		s->opt.probe_ms);
	if (imap_client_probe(s->client, s->opt.probe_ms, why) < 0)
		return;
	/* Something for the server to answer: the NOOP under NOTIFY, DONE
	 * and LIST-STATUS in IDLE, a sync when polling; a run under way has
	 * its commands in flight already.  The answer brings what changed
	 * while the link was down or the host asleep. */
	cpmsync_session_sync_now(s);
}

void cpmsync_session_password_ready(struct cpmsync_session *s)
{
	if (s && s->client)
		imap_client_password_ready(s->client);
	if (s && s->rclient)
		imap_client_password_ready(s->rclient);
}

const char *cpmsync_session_name(const struct cpmsync_session *s)
{
	return s ? s->name : NULL;
}

bool cpmsync_session_get_online(const struct cpmsync_session *s)
{
	return s && s->online;
}

enum cpmsync_session_state cpmsync_session_get_state(const struct cpmsync_session *s)
{
	return s ? s->state : CPMSYNC_SESSION_OFFLINE;
}

enum cpmsync_push_state cpmsync_session_get_push_state(const struct cpmsync_session *s)
{
	return s ? s->push : CPMSYNC_PUSH_OFF;
}

const char *cpmsync_session_get_last_error(const struct cpmsync_session *s)
{
	return s ? s->last_error : "";
}

uint64_t cpmsync_session_get_last_sync(const struct cpmsync_session *s)
{
	int64_t t = 0;

	if (!s)
		return 0;
	if (s->last_sync)
		return s->last_sync;
	/* From an earlier run of the daemon. */
	if (store_sync_get_last_sync(s->store, s->account_id, &t) < 0)
		return 0;
	return t > 0 ? (uint64_t)t : 0;
}

uint64_t cpmsync_session_get_last_server_activity(const struct cpmsync_session *s)
{
	if (!s)
		return 0;
	if (s->client)
		return imap_client_last_activity(s->client);
	return s->sync ? (uint64_t)time(NULL) : 0;
}

const char *const *cpmsync_session_get_capabilities(const struct cpmsync_session *s)
{
	static const char *const none[] = { NULL };

	return s && s->caps ? (const char *const *)s->caps : none;
}

bool cpmsync_session_has_capability(const struct cpmsync_session *s, const char *cap)
{
	for (size_t i = 0; s && s->caps && s->caps[i]; i++)
		if (strcasecmp(s->caps[i], cap) == 0)
			return true;
	return false;
}

bool cpmsync_session_syncs_folder(const struct cpmsync_session *s, const char *name)
{
	return !s || plan_patterns_match((const char *const *)s->folders, name);
}

int cpmsync_session_set_active(struct cpmsync_session *s, int64_t folder_id, bool active)
{
	size_t i;

	if (!s || folder_id <= 0)
		return -EINVAL;
	for (i = 0; i < s->n_active; i++)
		if (s->active[i] == folder_id)
			break;
	if (active && i == s->n_active) {
		if (s->n_active == MAX_ACTIVE)
			return -E2BIG;
		s->active[s->n_active++] = folder_id;
	} else if (!active && i < s->n_active) {
		s->active[i] = s->active[--s->n_active];
	}
	s->active_default = false;
	s->sel_current = false; /* SELECT the folder IDLE is to watch now */
	/* ... also after a run, a SELECT or an IDLE under way (sync_done(),
	 * select_done(), idle_cont()): the last choice wins. */
	s->idle_moved = true;
	/* IDLE follows the Active folders: re-enter the wait. */
	if (s->wait == WAIT_IDLING && s->idle_cmd)
		leave_wait(s);
	return 0;
}

bool cpmsync_session_get_active(const struct cpmsync_session *s, int64_t folder_id)
{
	_cleanup_free_ char *name = NULL;

	if (!s)
		return false;
	for (size_t i = 0; i < s->n_active; i++)
		if (s->active[i] == folder_id)
			return true;
	if (!s->active_default)
		return false;
	if (store_sync_folder_server_name(s->store, folder_id, &name) < 0 || !name)
		return false;
	return strcasecmp(name, "INBOX") == 0;
}
