/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The sync engine's shared state (engine.c: connection, folder list,
 * server -> local; engine-replay.c: the journal, local -> server).
 *
 * The engine is a chain of IMAP commands, each one's callback deciding and
 * submitting the next, through the driver table of driver.h; decisions
 * come from plan.c, data goes to the store through store-sync.h.  One connection, one folder
 * selected at a time. Untagged responses are interpreted by what the engine is doing
 * (e->fetch_kind), so a FETCH during SELECT (QRESYNC) updates flags, one
 * during the new-message fetch inserts messages, and so on.
 */

#include <stdbool.h>
#include <stdint.h>

#include <cpmsync/sync.h>

#include "engine/driver.h"
#include "engine/engine-session.h"
#include "engine/plan.h"
#include "imap/imap-client.h"
#include "imap/imap-seqset.h"
#include "store/store-sync.h"
#include "util/buf.h"

/* Rows changed per transaction during a folder sync. */
#define ENGINE_BATCH_ROWS 2000
/* Body bytes per transaction. */
#define ENGINE_BATCH_BYTES (32u << 20)
/* A folder's end commits the batch once it has been open this long
 * (engine_tx_tick_folder()). */
#define ENGINE_BATCH_MS 250
/* Any batch commits once it has been open this long, inside one folder's
 * fetch too (engine_tx_tick()): a slow fetch's messages are kept (and
 * signalled) within this time, whatever ends the run (a lost connection
 * commits the open batch too: engine.c commit_on_loss(); a crash, a
 * protocol error does not). */
#define ENGINE_BATCH_MAX_MS 2000
/* A store full undoes at most this much of the open batch (engine.c
 * message_begin()): the mark it rolls back to is taken before the writes
 * of every ENGINE_MARK_MESSAGES-th message, or of the first one after
 * ENGINE_MARK_BYTES of bodies, whichever comes first.  16: the initial
 * sync of 20,000 messages of 1 KB (tests/bench/bench-initial.sh, callgrind
 * instructions of cpm-syncd) took 2,704 M with a mark before every
 * message, 2,573 M every 16, 2,574 M every 64: past 16 the marks cost
 * nothing measurable, and fewer messages are undone. */
#define ENGINE_MARK_MESSAGES 16
#define ENGINE_MARK_BYTES    (1u << 20)
/* ...unless the store may have less room left than this (a file size
 * limit, SQLite's max_page_count, a file system nearly full: store.h
 * store_room_low()), when it is taken before every message: a store
 * with room for less than the interval would otherwise undo all it
 * stored at every run, and never progress. */
#define ENGINE_MARK_ROOM (2 * (uint64_t)ENGINE_BATCH_BYTES)
/* Most folders one account may list (a broken or hostile server could
 * list without end). */
#define ENGINE_MAX_FOLDERS 100000
/* Most UIDs of one UID FETCH/STORE set before it is split. */
#define ENGINE_SET_BYTES 4000
/*
 * Longest command line the replay builds from a list of any length (the
 * flags of a UID STORE; the UIDs of a UID STORE, FETCH or EXPUNGE), tag
 * and CRLF included: RFC 2683 section 3.2.1.5's 1000 octets.  RFC 7162
 * section 4 asks servers to take 8192, but Dovecot's imap_max_line_length
 * may be set lower: at 1k a SetFlags of 80 keywords went as one UID STORE,
 * was answered BAD "IMAP command line too large", and became a failed
 * operation.  A longer list goes as several commands.
 */
#define ENGINE_LINE_MAX 1000
/* The UID set of such a command: the line less the longest rest of one
 * ("a4294967295 UID FETCH " ... " (UID RFC822.SIZE INTERNALDATE FLAGS)"
 * and CRLF, 61 bytes). */
#define ENGINE_REPLAY_SET_BYTES (ENGINE_LINE_MAX - 100)

enum fetch_kind {
	FK_NONE,
	FK_FLAGS,      /* FETCH (UID FLAGS [MODSEQ]): update flags; collect UIDs */
	FK_NEW,	       /* new messages: summary (+ body) */
	FK_BODY,       /* bodies of known messages */
	FK_VERIFY,     /* candidates for an interrupted APPEND/COPY: size + date */
	FK_ANNOTATION, /* cached annotations of changed messages (engine-annotation.c) */
	FK_DISCARD,    /* a pipelined FETCH the SELECT's answer made void: dropped */
	FK_IDENT,      /* sizes and dates of messages changes wait for (engine-ident.c) */
	FK_DATES,      /* dates of messages just appended (engine-replay.c dates_next()) */
};

/* Most messages of one folder engine-ident.c fetches to check it. */
#define ENGINE_IDENT_UIDS 64

struct remote_folder {
	char *name;
	struct plan_remote_folder p; /* p.name points at name */
	char *special_use;
	bool subscribed;
	char *mailboxid; /* from LIST-STATUS/STATUS (OBJECTID); p.mailboxid points here */
};

/* The folder being synced. */
struct folder_ctx {
	int64_t id;
	char *server_name;
	uint32_t local_uidvalidity, local_uidnext;
	uint64_t local_hms;
	uint64_t local_body_limit;
	uint32_t local_known;
	char local_mailboxid[256]; /* RFC 8474: at most 255 characters; "" unknown */
	enum plan_mode mode;
	/* The SELECT of this folder's sync is under way: its FETCH and
	 * VANISHED are for the folder we know only while plan_folder_identity()
	 * says so. */
	bool in_select;
	/* From SELECT. */
	uint32_t uidvalidity, uidnext, exists;
	uint64_t hms;
	bool nomodseq;
	char mailboxid[256]; /* "" not reported */
	struct plan_after_select after;
	/* Progress. */
	uint32_t new_count; /* new messages seen (uid >= new_from_uid) */
	uint32_t max_uid_seen;
	struct rangeset present; /* PLAIN/search: UIDs the server has */
	struct rangeset set;	 /* scratch: bodies wanted, ... */
	size_t set_pos;
	/* New messages whose FETCH response went over the line limit
	 * (engine_event_fetch_too_long()): fetched again without
	 * BODYSTRUCTURE (refetch: that FETCH is under way), then
	 * refetch_next. */
	struct rangeset too_long;
	bool refetch;
	void (*refetch_next)(struct cpmsync_sync *e);
	/* Annotations (engine-annotation.c): changed messages with cached
	 * annotations, refreshed before the folder's state is committed. */
	struct rangeset ann_uids;
	int ann_cached; /* 0: not looked yet, 1: the folder has none, 2: some */
	bool ann_done;
	unsigned ann_pending; /* refresh commands not answered yet */
	bool ann_refused;     /* one of them was refused */
	void (*ann_next)(struct cpmsync_sync *e);
};

struct cpmsync_sync {
	struct cpmsync_loop *loop;
	struct store *store;
	/* What the commands and the connection go through (driver.h):
	 * imap_drv, or a test's. */
	struct engine_driver *drv;
	struct engine_driver_imap imap_drv;
	cpmsync_sync_cb_t cb;
	void *userdata;
	struct cpmsync_loop_source *finish_src;
	bool finished;
	bool logging_out;
	/* Running on a caller's connection (engine_sync_on_client()): no
	 * LOGOUT at the end; a connection still usable goes back there. */
	bool give_back;
	struct cpmsync_loop_source *start_src;
	/* Progress (the session's SyncProgress): folder "" for the account
	 * (folders), else messages of that folder. */
	engine_progress_fn progress;
	void *progress_userdata;
	/* engine_set_observer(): every untagged response, first. */
	engine_observer_fn observer;
	void *observer_userdata;

	char *account_name;
	char *host, *user; /* the server account the settings name */
	char **patterns;   /* NULL-terminated, or NULL */
	uint64_t body_limit;
	int64_t account_id;

	/* Folder list. */
	struct remote_folder *remote;
	size_t n_remote, alloc_remote;
	int64_t *queue; /* folder ids to sync */
	/* Account1.SyncProgress counts messages (the contract): how many new
	 * messages each queued folder is expected to bring, from the
	 * LIST-STATUS (QUEUE_EST_UNKNOWN: known at its SELECT; NULL: all
	 * unknown), their sum so far, and those of the folders done. */
	uint32_t *queue_est;
	uint64_t prog_total, prog_done;
	int64_t fast_folder; /* engine_sync_selected(): this folder */
	/* engine_sync_selected(): fast_folder is selected on the connection
	 * already (IDLE): no SELECT, f.exists tracked from the session's
	 * count; fast_max_modseq: the largest MODSEQ of the UID FETCH
	 * CHANGEDSINCE (fast_flags while it runs). */
	enum {
		FAST_OFF,
		FAST_FETCHING, /* the UID FETCHes are under way */
		FAST_CURRENT,  /* done; the store holds what the server told */
		FAST_STALE,    /* done, but not (or news since): SELECT it again */
	} fast;
	bool fast_flags;
	bool fast_more; /* news after FAST_CURRENT: sync again (no SELECT) */
	/* The replay ran an operation other than flags or annotations (an
	 * APPEND, COPY, EXPUNGE, a folder's ...): the selected folder is not
	 * known to be as the fast run left it (engine_selected_state()). */
	bool replay_not_flags;
	uint32_t fast_uidvalidity, fast_exists;
	uint64_t fast_max_modseq;
	/* engine_sync_keep_selected(): keep_folder is selected on the
	 * connection and current (exists messages) before a full run;
	 * keep_listed: the LIST-STATUS showed it unchanged; keep_lost: a
	 * SELECT was sent, or the server told news of the selected folder. */
	int64_t keep_folder;
	uint32_t keep_exists;
	bool keep_listed, keep_lost;
	/*
	 * VANISHED (not EARLIER) of the selected folder held_id, not applied
	 * yet: the IDLE's before the run (engine_sync_selected_vanished()),
	 * and any the server sent since with the answers of whatever command
	 * (engine_event_vanished()).  Cyrus 3.6 reports every message of the
	 * selected mailbox VANISHED when another client renames it (or a
	 * folder above it), with the next response of any command, then
	 * refuses every command on it: no expunges (RFC 9051 6.3.6).  So
	 * they go to the store only once a command on that folder is answered
	 * OK after them (engine_event_selected_answered(); at the
	 * end of the run a UID FETCH asks, held_probe()); a refusal drops
	 * them, and the folder list decides (selected_gone).  Never in the
	 * open batch before that: a local call commits it (store_begin()).
	 * Dropped, they are not lost: the store's HIGHESTMODSEQ is below
	 * them, and the folder's next QRESYNC SELECT reports them (EARLIER).
	 */
	struct rangeset held_vanished;
	int64_t held_id;
	/* A command on the selected folder was refused (the fast run's UID
	 * FETCH, held_probe()): renamed or deleted by another client; the
	 * run goes on without it, and the session asks for a full sync
	 * (engine_selected_gone()). */
	bool selected_gone;
	/* The replay's SELECT of a folder was refused in a run without
	 * LIST (only_run): another client may have renamed it, which only
	 * a LIST tells.  Its rows stay queued as they are (no try counted,
	 * no back-off), and the session runs a full sync at once, whose
	 * replay sends them under the name its LIST found
	 * (engine_replay_needs_list()). */
	bool replay_needs_list;
	size_t n_queue, queue_pos;
	int64_t *only; /* engine_sync_only(): these folders, no LIST */
	size_t n_only;
	bool only_run;		 /* the queue is those folders */
	unsigned status_pending; /* STATUS commands in flight (no LIST-STATUS) */
	bool listing_ids;	 /* the LIST of MAILBOXIDs (engine.c list_ids()) is under way */
	/* engine.c list_confirm(): the folders holding messages that the
	 * first LIST lacked (0: none, or no second LIST yet), and whether
	 * the second LIST was sent (then no third). */
	size_t list_doubted;
	bool list_confirmed;

	/* Folder sync. */
	struct folder_ctx f;
	enum fetch_kind fetch_kind;
	/* The UID FETCH of the new messages (pipe_from:*) sent right behind
	 * a QRESYNC SELECT, when a STATUS of this run showed the folder with
	 * the stored UIDVALIDITY and more UIDs than stored: PIPE_SENT until
	 * the SELECT's answer, PIPE_TAKEN once it showed that FETCH is the
	 * one the run sends (fetch_new_done() on its reply), PIPE_DISCARD
	 * when it did not (its data dropped; pipe_wait: the folder's sync
	 * goes on from its reply the way it does without it). */
	enum { PIPE_NONE, PIPE_SENT, PIPE_TAKEN, PIPE_DISCARD } pipe;
	bool pipe_wait;
	uint32_t pipe_from;
	/* The work the run's own commits made durable (engine_work_committed()). */
	uint64_t work_committed;
	/* stats.messages_added, _changed and _removed when the open batch
	 * began: what they are again if it is rolled back (engine.c
	 * batch_uncount()). */
	uint32_t batch_added, batch_changed, batch_removed, batch_folders;
	/* The writes of one message are under way, after a store_mark() in
	 * the open batch: a store full in them keeps what came before the
	 * mark (engine.c keep_whole()). */
	bool in_message;
	/* The messages and body bytes written since the mark, the most of
	 * each before the next one is taken (ENGINE_MARK_MESSAGES,
	 * ENGINE_MARK_BYTES; tests change them), and the stats as they were
	 * at the mark: what they are again after a rollback to it. */
	uint32_t mark_msgs, mark_every;
	uint64_t mark_bytes, mark_max_bytes;
	uint32_t mark_added, mark_changed, mark_removed, mark_folders;
	/* A mark before every message in this batch (ENGINE_MARK_ROOM);
	 * mark_room_check false: never (tests turn it off). */
	bool mark_each, mark_room_check;
	struct store_batch batch; /* the open write transaction, if any */
	uint32_t batch_rows;
	uint64_t batch_bytes;
	uint64_t batch_opened_ms; /* cpmsync_now_ms() when the batch opened */
	uint64_t batch_ms;	  /* ENGINE_BATCH_MS (tests change it) */
	uint64_t batch_max_ms;	  /* ENGINE_BATCH_MAX_MS (tests change it) */
	int64_t selected_id;	  /* folder selected now (0: none) */
	bool selected_read_only;  /* its SELECT said [READ-ONLY] */
	/* Its SELECT's [PERMANENTFLAGS (...)]: the flags it keeps (a set,
	 * util/flags.h), and whether "\*" (any new keyword) was in it;
	 * selected_perm NULL: not reported, every flag is kept (RFC 3501
	 * 7.1).  perm_pending: the one the SELECT in flight reported. */
	char *selected_perm, *perm_pending;
	bool selected_perm_kw, perm_pending_kw;
	uint64_t selected_hms;
	uint32_t selected_uidnext;

	struct rangeset search; /* SEARCH/ESEARCH results */
	void *replay;		/* engine-replay.c's state */
	void *ident;		/* engine-ident.c's state */
	/* engine-ident.c's check of the folder being pulled: x the message
	 * compared (x.uid 0: none, and the batch may commit), gen that of
	 * the FETCH in flight (a reply of an older one is no one's), sent:
	 * that FETCH is sent, waiting: the SELECT is answered and the
	 * folder's sync goes on with next once it is, compare: the SELECT
	 * showed the folder the store knows, unproven by a MAILBOXID; fast:
	 * the check of engine_ident_fast_start(), no SELECT, fetch_kind not
	 * its own. */
	struct {
		struct sync_uid_target x;
		unsigned gen;
		bool sent, waiting, compare, fast;
		bool seen; /* the server's FETCH of x.uid came */
		void (*next)(struct cpmsync_sync *e);
		char what[192]; /* how x differs, "" when it does not */
	} pull_ident;
	/* What engine_select() does when the server refuses the SELECT
	 * (res: the refusal; logged, and the run goes on): skip, or record
	 * as refused, what needed the folder. */
	void (*select_refused)(struct cpmsync_sync *e, const struct engine_reply *res);

	int r; /* first failure */
	char reason[512];
	/*
	 * The pull stopped for want of room in the store (engine.c
	 * pull_stop()): pull_r and pull_reason say why, and the run fails
	 * with them once the journal is replayed all the same.  pull_folders:
	 * the folders' sync has begun (the folder list is applied; a stop
	 * before fails the run at once).  pull_cmds: the pull's commands not
	 * answered yet (the replay starts after the last).  The replay's
	 * SELECTs that could not show the folder to be the one the store
	 * knows count in stats.folders_waiting (their rows wait for the
	 * folder's sync).
	 */
	int pull_r;
	char pull_reason[512];
	bool pull_folders;
	unsigned pull_cmds;
	uint32_t op_failures;
	char op_reason[512];
	struct cpmsync_sync_stats stats;
};

/* engine.c */
void engine_fail(struct cpmsync_sync *e, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Stops with e->r (or success) and reports. */
void engine_finish(struct cpmsync_sync *e);
/* Commits a batch when it is big enough; forced commits when force. */
int engine_tx_tick(struct cpmsync_sync *e, bool force);
/* Between two folders: commits when last, when full, or when the batch
 * has been open e->batch_ms (engine.c). */
int engine_tx_tick_folder(struct cpmsync_sync *e, bool last);
int engine_tx_begin(struct cpmsync_sync *e);
/* SELECTs folder (server name) unless it is selected; cb continues. */
typedef void (*engine_next_fn)(struct cpmsync_sync *e);
void engine_select(struct cpmsync_sync *e, int64_t folder_id, const char *server_name,
		   engine_next_fn next);
/* A command that failed the whole run: records and finishes. */
bool engine_reply_failed(struct cpmsync_sync *e, const struct engine_reply *res, const char *what);
void engine_logout(struct cpmsync_sync *e);
/* Whether a local folder name lies in a namespace the session hides and
 * LIST did not show it as a personal folder (driver op hidden_root). */
bool engine_name_hidden(struct cpmsync_sync *e, const char *name);

/* engine-annotation.c: a changed message (FETCH during the folder's
 * SELECT or flag pass) whose annotations are cached is noted; before the
 * folder's state is committed, engine_annotation_refresh() fetches the
 * cached entries of the noted messages (true: it did, next follows). */
void engine_annotation_note(struct cpmsync_sync *e, uint32_t uid);
bool engine_annotation_refresh(struct cpmsync_sync *e, engine_next_fn next);
void engine_annotation_on_fetch(struct cpmsync_sync *e, const struct engine_fetch *f);

/* cpmsync_sync_once() over an already connected socket (tests: a scripted
 * server on a socketpair); fd is taken over. */
int engine_sync_once_fd(struct cpmsync_loop *loop, struct cpmsync_store *store,
			const struct cpmsync_account *account, int fd, cpmsync_sync_cb_t cb,
			void *userdata, struct cpmsync_sync **ret);

/*
 * Tests: replays the account's journal (no folder sync) through driver,
 * which must outlive the run; cb as for cpmsync_sync_once().  The run ends
 * with driver->ops->logout() and engine_event_closed().
 */
int engine_replay_on_driver(struct cpmsync_loop *loop, struct cpmsync_store *store,
			    const struct cpmsync_account *account, struct engine_driver *driver,
			    cpmsync_sync_cb_t cb, void *userdata, struct cpmsync_sync **ret);

/* Tests: a whole run through driver as cpmsync_sync_once() makes it:
 * driver->ops->connect(), then (engine_event_ready()) LIST, the folders,
 * replay, LOGOUT. */
int engine_sync_on_driver(struct cpmsync_loop *loop, struct cpmsync_store *store,
			  const struct cpmsync_account *account, struct engine_driver *driver,
			  cpmsync_sync_cb_t cb, void *userdata, struct cpmsync_sync **ret);
/* Tests: the same on a connection made already, as engine_sync_on_client()
 * runs: no connect, no LOGOUT; it starts from the loop if
 * driver->ops->ready(), and ends with driver->ops->release(), give_back
 * when the run ended well on a connection still ready. */
int engine_sync_on_client_driver(struct cpmsync_loop *loop, struct cpmsync_store *store,
				 const struct cpmsync_account *account,
				 struct engine_driver *driver, cpmsync_sync_cb_t cb, void *userdata,
				 struct cpmsync_sync **ret);

void engine_progress(struct cpmsync_sync *e, const char *folder, uint32_t done, uint32_t total);

/* engine-ident.c: once per connection (driver op checked), before the
 * run: that the folders where changes wait for messages named by UID
 * hold the messages the store knows under those UIDs; the run fails with
 * -CPMSYNC_E_CONFIG when one does not, else next follows. */
void engine_ident_check(struct cpmsync_sync *e, engine_next_fn next);
/* engine-ident.c: first of all, when only the account's host changed
 * with nothing queued (store_sync_account_moved()): whether the server
 * is the one the store's copy is of; the copy is kept (the new host
 * recorded) or dropped as store_sync_account_identity() does, and next
 * follows; the run fails when the store does, or when a change was queued
 * meanwhile and the server is another. */
void engine_ident_host(struct cpmsync_sync *e, engine_next_fn next);
/* Logs that name's copy of was ("user@host") was dropped for user@host. */
void engine_identity_dropped(const char *name, const char *user, const char *host, const char *was);
void engine_ident_on_fetch(struct cpmsync_sync *e, const struct engine_fetch *f);
void engine_ident_free(struct cpmsync_sync *e);
/* The pull's check of the folder e->f (engine-ident.c): _start() right
 * after its SELECT is sent, news: a STATUS of this run showed it with the
 * stored UIDVALIDITY and news (the FETCH goes now, pipelined); _selected()
 * when the SELECT is answered (identity: what it showed), next then
 * follows, maybe after the FETCH's answer; _reset() when the SELECT was
 * refused. */
void engine_ident_pull_start(struct cpmsync_sync *e, bool news);
void engine_ident_pull_selected(struct cpmsync_sync *e, enum plan_identity identity,
				engine_next_fn next);
void engine_ident_pull_reset(struct cpmsync_sync *e);
/* The same check on the fast path (engine_sync_selected(): push brought
 * news on the selected folder, no SELECT): _start() before its FETCHes,
 * the check's FETCH first, pipelined with them; the folder already
 * checked on this connection: nothing sent.  _on_fetch(): every FETCH of
 * the run, whichever command it answers (a UID's size and date are the
 * same in each).  _wait(): true when the answer is still to come, next
 * then follows it (the folder's state is not written before). */
void engine_ident_fast_start(struct cpmsync_sync *e);
void engine_ident_fast_on_fetch(struct cpmsync_sync *e, const struct engine_fetch *f);
bool engine_ident_fast_wait(struct cpmsync_sync *e, engine_next_fn next);
/* Folder folder_id's messages in the store are this server's, for as long
 * as the connection lasts (a folder read whole on it, or checked). */
void engine_ident_mark_folder(struct cpmsync_sync *e, int64_t folder_id);

/* engine-replay.c: replays the journal, then calls engine_logout(). */
void engine_replay_start(struct cpmsync_sync *e);
/* The folder the current row (or batch of rows) needs cannot be used
 * now (engine.c select_done(), after the pull stopped): they stay queued
 * as they are, and the replay goes on with the next. */
void engine_replay_skip(struct cpmsync_sync *e);
/* engine.c: the answer to one of the pull's commands came (every one
 * counts in e->pull_cmds); true once the pull stopped: the caller drops
 * it and returns (the last one starts the replay). */
bool engine_pull_answered(struct cpmsync_sync *e);
void engine_replay_free(struct cpmsync_sync *e);
/* Data for replay from the driver's events (FETCH while verifying, an
 * untagged COPYUID). */
void engine_replay_on_fetch(struct cpmsync_sync *e, const struct engine_fetch *f);
void engine_replay_on_date(struct cpmsync_sync *e, const struct engine_fetch *f);
void engine_replay_on_copyuid(struct cpmsync_sync *e, uint32_t uid);
/* A STATUS response: the UIDVALIDITY of the folder the replay asked
 * about (after its CREATE, before its DELETE: engine-replay.c). */
void engine_replay_on_status(struct cpmsync_sync *e, const struct engine_status *st);
