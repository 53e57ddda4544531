/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sync engine, server -> local: connect, LIST (with LIST-STATUS when
 * offered), decide per folder (plan.c), SELECT with QRESYNC / CONDSTORE /
 * nothing, apply VANISHED, changed flags and new messages in batched
 * transactions, and commit each folder's UIDVALIDITY, UIDNEXT and
 * HIGHESTMODSEQ only in the transaction that holds the last of the changes
 * they cover.  Then engine-replay.c sends the journal (also after a pull
 * that a full store stopped: pull_stop()).
 *
 * Crash safety rests on that ordering: every batch committed before the
 * folder's state is re-done harmlessly by the next run (upserts by UID,
 * deletes by UID), because the stored HIGHESTMODSEQ/UIDNEXT still point
 * before it.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>

#include "engine/engine-internal.h"
#include "imap/imap-parser.h"
#include "imap/imap-utf7.h"
#include "store/store.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/msg-summary.h"
#include "util/text.h"

#define CAT CPMSYNC_LOG_CAT_ENGINE

static void next_folder(struct cpmsync_sync *e);
static void folder_fetch_new(struct cpmsync_sync *e);
static void folder_bodies(struct cpmsync_sync *e);
static void folder_finish(struct cpmsync_sync *e);
static uint64_t engine_work_done(const struct cpmsync_sync *e);

/* ------------------------------------------------------------------ */
/* Ending */

static bool pull_stop(struct cpmsync_sync *e, int r, const char *why);
static void keep_whole(struct cpmsync_sync *e, int r);

void engine_fail(struct cpmsync_sync *e, int r, const char *fmt, ...)
{
	char why[sizeof(e->reason)];
	va_list ap;

	if (e->r < 0)
		return; /* keep the first reason */
	r = r < 0 ? r : -EIO;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	keep_whole(e, r);
	if (pull_stop(e, r, why))
		return;
	e->r = r;
	memcpy(e->reason, why, sizeof(why));
	/* Not logged here: the reason goes to the caller, who logs it once. */
	engine_finish(e);
}

/*
 * A store full (SQLITE_FULL), or a disk or quota full under a body pack
 * or a spooled body (ENOSPC, EDQUOT; EFBIG, a file size limit): no room
 * for what the server has.  Not -EIO: that is also a transport's error,
 * and a failing disk's.
 */
static bool no_room(int r)
{
	return r == -CPMSYNC_E_STORE_FULL || r == -ENOSPC || r == -EDQUOT || r == -EFBIG;
}

/* The stats of the open batch's rows taken back: it is being rolled back,
 * or was (a failed commit).  The summary counts what the store kept. */
static void batch_uncount(struct cpmsync_sync *e)
{
	e->stats.messages_added = e->batch_added;
	e->stats.messages_changed = e->batch_changed;
	e->stats.messages_removed = e->batch_removed;
	e->stats.folders_synced = e->batch_folders;
}

/* The open batch rolled back, and its rows out of the stats. */
static void batch_drop(struct cpmsync_sync *e)
{
	if (store_batch_is_open(e->store, &e->batch))
		batch_uncount(e);
	store_batch_rollback(e->store, &e->batch);
	e->batch_rows = 0;
	e->batch_bytes = 0;
}

/*
 * No room for a message (r, no_room()) while its writes were under way
 * (e->in_message, after store_mark()): what the batch held before it is
 * committed, and only the message's own writes are undone.  Before, the
 * whole batch was rolled back: a batch holds up to ENGINE_BATCH_BYTES or
 * ENGINE_BATCH_MAX_MS of messages, so on a fast link a store with less
 * room than that free (a 20 MB file system, 62 MB to fetch) rolled back
 * every run, 20 MB fetched each time for nothing, and never stored a
 * message more.  Committing the prefix is safe as commit_on_loss() says:
 * the folder's UIDNEXT and HIGHESTMODSEQ are written only at its end, so
 * the next run fetches the rest, from the largest UID stored in a folder
 * whose first sync this was, re-doing by UID what it finds again
 * otherwise.  Not when SQLite rolled the transaction back by itself (it
 * may on SQLITE_FULL), nor when the commit fails in turn (the disk too
 * full for the WAL): the batch is rolled back as before.
 */
static void keep_whole(struct cpmsync_sync *e, int r)
{
	uint32_t kept, undone;

	if (!e->in_message)
		return;
	e->in_message = false;
	if (!no_room(r) || !store_batch_is_open(e->store, &e->batch))
		return;
	r = store_rollback_to_mark(e->store);
	if (r >= 0) {
		/* The mark may be several messages back (message_begin()):
		 * what was counted since is undone with them. */
		undone = e->stats.messages_added - e->mark_added;
		e->stats.messages_added = e->mark_added;
		e->stats.messages_changed = e->mark_changed;
		e->stats.messages_removed = e->mark_removed;
		e->stats.folders_synced = e->mark_folders;
		r = store_batch_commit(e->store, &e->batch);
	}
	if (r < 0) {
		log_msg(CPMSYNC_LOG_WARNING, CAT,
			"%s: keeping what was stored before the store filled: %s", e->account_name,
			store_error(e->store));
		batch_drop(e);
		return;
	}
	e->batch_rows = 0;
	e->batch_bytes = 0;
	e->work_committed = engine_work_done(e);
	/* The run's, earlier batches' included: all committed now. */
	kept = e->stats.messages_added;
	log_debug(CAT,
		  "%s: no room in the store: %u new message%s undone with the one that did"
		  " not fit",
		  e->account_name, undone, undone == 1 ? "" : "s");
	if (kept == 0)
		log_msg(CPMSYNC_LOG_NOTICE, CAT,
			"%s: no room in the store: no new message of this run could be kept",
			e->account_name);
	else
		log_msg(CPMSYNC_LOG_NOTICE, CAT,
			"%s: no room in the store: the %u new message%s stored whole before %s "
			"kept",
			e->account_name, kept, kept == 1 ? "" : "s", kept == 1 ? "is" : "are");
}

static void pull_replay_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	(void)src;
	e->start_src = NULL;
	if (e->finished)
		return;
	log_debug(CAT, "%s: the pull's commands are answered: replaying the journal",
		  e->account_name);
	/* Every folder the replay needs is SELECTed again, and checked
	 * (select_done()). */
	e->selected_id = 0;
	e->fetch_kind = FK_NONE;
	if (e->fast != FAST_OFF)
		e->fast = FAST_STALE;
	engine_replay_start(e);
}

static void pull_replay_later(struct cpmsync_sync *e)
{
	if (cpmsync_loop_defer(e->loop, pull_replay_cb, e, NULL, &e->start_src) < 0)
		engine_fail(e, -ENOMEM, "out of memory");
}

/*
 * Why the journal is replayed after the pull, and what of that a pull cut
 * short by a full store keeps:
 *  - the folder list is applied first (folders renamed, deleted or made
 *    on the server): a stop before that fails the run as ever;
 *  - the pull SELECTs each folder and re-reads one that is another under
 *    the same name (UIDVALIDITY, MAILBOXID, HIGHESTMODSEQ or UIDNEXT
 *    gone down): UID STOREs, EXPUNGEs and COPYs name UIDs, right only
 *    for the folder the store knows.  After a stop, every SELECT of the
 *    replay is checked against the store (select_done()), and a folder
 *    that is not shown to be the same, or whose re-read is not finished,
 *    keeps its rows queued (engine_replay_skip());
 *  - the rest needs no pull: flags go as UID STORE (UNCHANGEDSINCE the
 *    message's MODSEQ) or as deltas, merged three-way on [MODIFIED];
 *    an APPEND's UID is adopted by APPENDUID (a UID another row holds
 *    resets the folder, store_sync_message_set_uid()); the attempt marks
 *    are committed before their command, as always.  The replay records
 *    no folder state: HIGHESTMODSEQ and UIDNEXT stay where the last
 *    complete sync of each folder left them, so the next run fetches all
 *    that was not stored.
 * What the pull's batch held is rolled back (a store error's is); its
 * commands in flight are let finish, their data dropped, before the
 * replay starts on the same connection.  With nothing to replay the run
 * fails at once, as before (no answers waited for).
 */
static bool pull_stop(struct cpmsync_sync *e, int r, const char *why)
{
	struct journal_entry j = { 0 };
	int n;

	if (!no_room(r) || !e->pull_folders || e->pull_r || e->replay || e->finished ||
	    e->logging_out)
		return false;
	batch_drop(e);
	n = store_journal_next(e->store, e->account_id, INT64_MIN, &j);
	journal_entry_free_contents(&j);
	if (n <= 0)
		return false;
	e->pull_r = r;
	snprintf(e->pull_reason, sizeof(e->pull_reason),
		 "syncing %.150s stopped, the local store has no room: %.300s",
		 e->f.server_name ? e->f.server_name : "the folders", why);
	log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: %s; sending the local changes all the same",
		e->account_name, e->pull_reason);
	/* What is still coming for the pull is dropped. */
	engine_ident_pull_reset(e);
	e->fetch_kind = FK_DISCARD;
	e->selected_id = 0;
	if (e->pull_cmds == 0)
		pull_replay_later(e);
	return true;
}

bool engine_pull_answered(struct cpmsync_sync *e)
{
	if (e->pull_cmds > 0)
		e->pull_cmds--;
	if (!e->pull_r || e->finished)
		return false;
	if (e->pull_cmds == 0)
		pull_replay_later(e);
	return true;
}

/* The end of a run whose pull stopped (pull_stop()): r and reason of the
 * replay that followed (0: it ended well) become the run's. */
static int pull_stopped_result(struct cpmsync_sync *e, int r)
{
	char why[sizeof(e->reason)];
	int n;

	if (r < 0) {
		snprintf(why, sizeof(why), "%.300s; sending the local changes failed too: %.160s",
			 e->pull_reason, e->reason[0] ? e->reason : cpmsync_strerror(r));
		memcpy(e->reason, why, sizeof(why));
		return r;
	}
	n = snprintf(e->reason, sizeof(e->reason),
		     "%s; the local changes were sent all the same (%u sent", e->pull_reason,
		     e->stats.ops_replayed);
	if (n > 0 && (size_t)n < sizeof(e->reason) && e->stats.ops_failed)
		n += snprintf(e->reason + n, sizeof(e->reason) - (size_t)n, ", %u refused",
			      e->stats.ops_failed);
	if (n > 0 && (size_t)n < sizeof(e->reason) && e->stats.folders_waiting)
		n += snprintf(e->reason + n, sizeof(e->reason) - (size_t)n,
			      ", those of %u folder%s wait for %s sync", e->stats.folders_waiting,
			      e->stats.folders_waiting == 1 ? "" : "s",
			      e->stats.folders_waiting == 1 ? "its" : "their");
	if (n > 0 && (size_t)n < sizeof(e->reason))
		snprintf(e->reason + n, sizeof(e->reason) - (size_t)n, ")");
	return e->pull_r;
}

/* Frees what the LIST of this run found (when the list is made again,
 * and with the run). */
static void remote_clear(struct cpmsync_sync *e)
{
	for (size_t i = 0; i < e->n_remote; i++) {
		free(e->remote[i].name);
		free(e->remote[i].special_use);
		free(e->remote[i].mailboxid);
	}
	e->n_remote = 0;
}

static void engine_free(struct cpmsync_sync *e)
{
	store_set_full_safe(e->store, false);
	engine_replay_free(e);
	engine_ident_free(e);
	engine_ident_pull_reset(e);
	cpmsync_loop_source_remove(e->start_src);
	engine_driver_imap_fini(&e->imap_drv);
	remote_clear(e);
	free(e->remote);
	free(e->queue);
	free(e->queue_est);
	free(e->selected_perm);
	free(e->perm_pending);
	free(e->only);
	free(e->f.server_name);
	rangeset_free(&e->f.present);
	rangeset_free(&e->f.set);
	rangeset_free(&e->f.ann_uids);
	rangeset_free(&e->f.too_long);
	rangeset_free(&e->search);
	rangeset_free(&e->held_vanished);
	if (e->patterns)
		for (size_t i = 0; e->patterns[i]; i++)
			free(e->patterns[i]);
	free(e->patterns);
	free(e->account_name);
	free(e->host);
	free(e->user);
	free(e);
}

/*
 * Whether r is the connection's loss for a network reason: the server or
 * the path closed or reset it (EOF, RST: CPMSYNC_E_DISCONNECTED; a BYE),
 * the TLS record layer failed (a cut TLS stream is OpenSSL's "unexpected
 * EOF": what came before it was authenticated, what failed never reached
 * the parser), or it went silent past a deadline.  Not a protocol error
 * (bytes the parser refused, a limit passed), nor the store's.
 */
static bool lost_to_network(int r)
{
	return r == -CPMSYNC_E_DISCONNECTED || r == -CPMSYNC_E_BYE || r == -CPMSYNC_E_TLS ||
	       r == -ETIMEDOUT;
}

/*
 * A run that lost its connection keeps its open batch: rolled back, a link
 * cut faster than ENGINE_BATCH_MAX_MS fills a batch (a few MB on loopback)
 * lost it at every try, and the sync never went on.  Committing is safe
 * because any prefix of the engine's writes is (engine_tx_begin()): the
 * connection is lost between two loop turns, after the last response read
 * was applied whole (a partial one, or a body literal cut short, is never
 * applied); a folder's UIDNEXT and HIGHESTMODSEQ are written only in
 * folder_finish(), after everything they cover, so they do not go past
 * what was fetched, and the next run fetches the rest (from the largest
 * UID stored, re-doing by UID what it finds again); UIDVALIDITY is written
 * with UIDNEXT and HIGHESTMODSEQ 0 when the SELECT shows it; the replay
 * deletes a row in the turn that records its result and commits the
 * attempt mark of a non-idempotent command before it is sent, so an
 * answer not read leaves the row marked for the next run's verification.
 * A store error or a protocol error still rolls the batch back.
 */
static int commit_on_loss(struct cpmsync_sync *e)
{
	int r;

	if (!store_batch_is_open(e->store, &e->batch))
		return 0;
	r = store_batch_commit(e->store, &e->batch);
	if (r < 0) {
		log_msg(CPMSYNC_LOG_WARNING, CAT,
			"%s: keeping what the run fetched before the connection was lost: %s",
			e->account_name, store_error(e->store));
		return r;
	}
	e->work_committed = engine_work_done(e);
	log_debug(CAT, "%s: the connection was lost: what the run fetched is kept",
		  e->account_name);
	return 0;
}

static void finish_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	const char *reason = NULL;
	int r = e->r;

	(void)src;
	e->finish_src = NULL;
	if (r == 0 && (r = store_batch_take_lost(e->store, &e->batch)) < 0) {
		snprintf(e->reason, sizeof(e->reason), "store: %s", store_error(e->store));
		batch_uncount(e);
	}
	if (lost_to_network(r) && commit_on_loss(e) < 0)
		batch_uncount(e);
	batch_drop(e);
	/* A pull that stopped fails the run, whatever its replay did. */
	if (e->pull_r)
		r = pull_stopped_result(e, r);
	/* A connection still usable after a run that ended well goes back to
	 * its owner; else it is closed (what is queued completes, and those
	 * callbacks see e->finished). */
	e->drv->ops->traffic(e->drv, &e->stats.bytes_in, &e->stats.bytes_out);
	e->drv->ops->release(e->drv, e->give_back && r == 0 && e->drv->ops->ready(e->drv));
	if (r == 0 && e->op_failures) {
		r = -CPMSYNC_E_SERVER;
		snprintf(e->reason, sizeof(e->reason), "%s", e->op_reason);
	}
	if (r < 0)
		reason = e->reason[0] ? e->reason : cpmsync_strerror(r);
	if (e->cb)
		e->cb(r, reason, &e->stats, e->userdata);
	engine_free(e);
}

void engine_finish(struct cpmsync_sync *e)
{
	if (e->finished)
		return;
	e->finished = true;
	e->drv->ops->traffic(e->drv, &e->stats.bytes_in, &e->stats.bytes_out);
	if (cpmsync_loop_defer(e->loop, finish_cb, e, NULL, &e->finish_src) < 0)
		e->r = e->r ? e->r : -ENOMEM; /* finish_cb will not run: nothing we can do */
}

bool engine_reply_failed(struct cpmsync_sync *e, const struct engine_reply *res, const char *what)
{
	if (e->finished)
		return true;
	if (res->r == 0)
		return false;
	engine_fail(e, res->r, "%s: %s", what, res->text ? res->text : cpmsync_strerror(res->r));
	return true;
}

void engine_set_progress(struct cpmsync_sync *e, engine_progress_fn fn, void *userdata)
{
	e->progress = fn;
	e->progress_userdata = userdata;
}

void engine_set_observer(struct cpmsync_sync *e, engine_observer_fn fn, void *userdata)
{
	e->observer = fn;
	e->observer_userdata = userdata;
}

void engine_event_observe(struct cpmsync_sync *e, const struct imap_response *resp)
{
	if (e->observer)
		e->observer(e->observer_userdata, resp);
}

void engine_progress(struct cpmsync_sync *e, const char *folder, uint32_t done, uint32_t total)
{
	if (e->progress && !e->finished)
		e->progress(e->progress_userdata, folder, done, total);
}

#define QUEUE_EST_UNKNOWN UINT32_MAX

/* The account as a whole, in messages: those of the folders done and the
 * new ones of the folder being synced, out of the expected total (raised
 * to what was done where the LIST-STATUS fell short); at the end of the
 * run (all) the total is what was done.  After a pull that stopped
 * (pull_stop()) it never reads as complete, although the run goes on to
 * the replay and its end: the total stays the expected one, and above
 * what was done (by one where the estimates fell short, as for a folder
 * stopped in its flags). */
static void account_progress(struct cpmsync_sync *e, bool in_folder, bool all)
{
	uint64_t done = e->prog_done + (in_folder ? e->f.new_count : 0);
	uint64_t total = (all && !e->pull_r) || e->prog_total < done ? done : e->prog_total;

	if (e->pull_r && total <= done)
		total = done + 1;

	engine_progress(e, "", (uint32_t)MIN(done, UINT32_MAX), (uint32_t)MIN(total, UINT32_MAX));
}

/* How many new messages the sync of a folder with local state l (NULL:
 * none) is to bring, as far as its LIST-STATUS r tells. */
static uint32_t expected_new(const struct plan_remote_folder *r, const struct plan_local_folder *l)
{
	if (!r->has_status)
		return QUEUE_EST_UNKNOWN;
	if (!l || !l->uidvalidity || !l->uidnext || l->uidvalidity != r->uidvalidity ||
	    (r->mailboxid && l->mailboxid && !streq(r->mailboxid, l->mailboxid)))
		return r->messages;
	if (r->uidnext <= l->uidnext)
		return 0;
	return MIN(r->uidnext - l->uidnext, r->messages);
}

/* ------------------------------------------------------------------ */
/* Transactions */

/*
 * The engine's batch may be committed by a local call between two
 * event-loop turns (store_begin() does that, so that local calls never
 * wait for a sync): the next engine_tx_begin() then opens a new one.
 * That is safe because any prefix of the engine's writes is: batches are
 * cut at arbitrary row counts already, and the folder state that covers
 * them is written in the turn that commits it (see the top of this file).
 * A failed commit of that kind reaches the engine at its next begin or
 * tick, which fail the run.
 */
int engine_tx_begin(struct cpmsync_sync *e)
{
	bool was_open = store_batch_is_open(e->store, &e->batch);
	int r;

	/* A batch another writer's commit lost (store.h): its rows are gone. */
	if (!was_open && (r = store_batch_take_lost(e->store, &e->batch)) < 0) {
		batch_uncount(e);
		engine_fail(e, r, "store: %s", store_error(e->store));
		return r;
	}
	r = store_batch_begin(e->store, &e->batch);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
	} else if (!was_open) {
		e->batch_opened_ms = cpmsync_now_ms();
		e->batch_added = e->stats.messages_added;
		e->batch_changed = e->stats.messages_changed;
		e->batch_removed = e->stats.messages_removed;
		e->batch_folders = e->stats.folders_synced;
		e->mark_each = e->mark_room_check && store_room_low(e->store, ENGINE_MARK_ROOM);
		store_set_full_safe(e->store, e->mark_each);
	}
	return r;
}

/* The rows of work the run wrote so far (the stats count them as written,
 * committed or not yet). */
static uint64_t engine_work_done(const struct cpmsync_sync *e)
{
	return (uint64_t)e->stats.messages_added + e->stats.messages_changed +
	       e->stats.messages_removed + e->stats.ops_replayed;
}

int engine_tx_tick(struct cpmsync_sync *e, bool force)
{
	int r;

	if (!store_batch_is_open(e->store, &e->batch)) {
		r = store_batch_take_lost(e->store, &e->batch);
		if (r < 0) {
			batch_uncount(e);
			engine_fail(e, r, "store: %s", store_error(e->store));
		}
		return r;
	}
	if (!force && e->batch_rows < ENGINE_BATCH_ROWS && e->batch_bytes < ENGINE_BATCH_BYTES &&
	    cpmsync_now_ms() - e->batch_opened_ms < e->batch_max_ms)
		return 0;
	/* What a QRESYNC SELECT brought waits for the folder's check
	 * (engine_ident_pull_start()): rolled back if it fails.  On the
	 * fast path even a forced commit waits (the run's FETCHes may be
	 * answered before the check's). */
	if (e->pull_ident.x.uid && (!force || e->pull_ident.fast))
		return 0;
	r = store_batch_commit(e->store, &e->batch);
	e->batch_rows = 0;
	e->batch_bytes = 0;
	if (r >= 0)
		e->work_committed = engine_work_done(e);
	else
		batch_uncount(e);
	if (r >= 0 && e->fetch_kind == FK_NEW && e->f.server_name) {
		engine_progress(e, e->f.server_name, e->f.new_count,
				e->f.exists > e->f.new_count ? e->f.exists : e->f.new_count);
		account_progress(e, true, false);
	}
	if (r < 0)
		engine_fail(e, r, "store: %s", store_error(e->store));
	return r;
}

/*
 * Between two folders: the batch is committed when the run has no folder
 * left (last), when it is full (engine_tx_tick()), or when it has been
 * open e->batch_ms (ENGINE_BATCH_MS), not at every folder's end.  Any
 * prefix of the engine's writes is safe (above), so a batch may hold the
 * end of one folder, its state, and the start of the next.  What the
 * commit at every folder's end cost: each commit writes every page the
 * transaction touched to the WAL, and an account of many small folders (a
 * CPM account: a folder per conversation and per group session) rewrote
 * the same index and table pages at each of them.  tests/bench/
 * bench-cpm.sh's 20,000 objects in 1,206 folders (cpm-syncd --once from
 * an empty store, three runs each; CPU, write_bytes): the plain twin
 * 1.39 s and 85.3 MB -> 0.95-1.23 s and 55.4 MB, the CPM set 1.95 s and
 * 121.6 MB -> 1.52-1.55 s and 67.0-67.4 MB.  The time bound keeps what a
 * folder's commit gave a slow sync: its messages are signalled within
 * ENGINE_BATCH_MS of being stored.  A single folder's sync (push) commits
 * at its end as before.
 */
int engine_tx_tick_folder(struct cpmsync_sync *e, bool last)
{
	bool force = last;

	if (!force && store_batch_is_open(e->store, &e->batch))
		force = cpmsync_now_ms() - e->batch_opened_ms >= e->batch_ms;
	return engine_tx_tick(e, force);
}

/* ------------------------------------------------------------------ */
/* Bodies */

/*
 * The writes of one message begin (keep_whole()): false when the mark
 * could not be set (the run failed).  The mark (an SQL savepoint: its
 * SAVEPOINT and RELEASE, and where the packs stand) is not taken before
 * every message but before every e->mark_every-th one, or the first one
 * after e->mark_max_bytes of bodies, or the batch's first: a store full
 * then undoes up to that many messages (or about that many bytes) along
 * with the one that did not fit, and keeps the rest of the batch; before
 * every message when the store is nearly full (ENGINE_MARK_ROOM).  Any
 * prefix of the engine's writes is safe to commit (engine_tx_begin()),
 * the mark's too: flags, expunges and a folder's state written after it
 * are undone with the messages, and counted no more (keep_whole()).
 * What a mark per message cost: see ENGINE_MARK_MESSAGES.
 */
static bool message_begin(struct cpmsync_sync *e)
{
	int r;

	if (e->mark_each || !store_has_mark(e->store) || e->mark_msgs >= e->mark_every ||
	    e->mark_bytes >= e->mark_max_bytes) {
		r = store_mark(e->store);
		if (r < 0) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return false;
		}
		e->mark_msgs = 0;
		e->mark_bytes = 0;
		e->mark_added = e->stats.messages_added;
		e->mark_changed = e->stats.messages_changed;
		e->mark_removed = e->stats.messages_removed;
		e->mark_folders = e->stats.folders_synced;
	}
	e->mark_msgs++;
	e->in_message = true;
	return true;
}

/* Stores b as the body of message id; fresh: of a row just inserted for
 * body_follows (store_sync_body_put_new()). */
static int body_store(struct cpmsync_sync *e, const struct engine_body *b, int64_t id, bool fresh)
{
	/* What the store says of a failure here is about this body. */
	store_clear_error(e->store);
	if (b->error)
		return b->error;
	e->batch_bytes += b->len;
	e->mark_bytes += b->len;
	e->stats.body_bytes += b->len;
	if (b->fd >= 0 && lseek(b->fd, 0, SEEK_SET) < 0)
		return -errno;
	if (fresh)
		return b->fd < 0 ? store_sync_body_put_new(e->store, id, b->head, b->head_len, -1,
							   b->head_len)
				 : store_sync_body_put_new(e->store, id, NULL, 0, b->fd, b->len);
	if (b->fd < 0)
		return store_sync_body_put(e->store, id, b->head, b->head_len);
	return store_sync_body_put_fd(e->store, id, b->fd, b->len);
}

/* The reason body b could not be stored, in buf: the temporary file's
 * directory when the failure was keeping it there, else the store's own
 * text when it has one (it names the file: a pack's path), else r's. */
static const char *body_error(const struct cpmsync_sync *e, const struct engine_body *b, int r,
			      char *buf, size_t len)
{
	const char *msg = store_error(e->store);

	if (r == -ENOMEM)
		return "out of memory";
	if (r == b->error && b->error_dir) {
		snprintf(buf, len, "a temporary file in %s: %s", b->error_dir, cpmsync_strerror(r));
		return buf;
	}
	return *msg ? msg : cpmsync_strerror(r);
}

/* ------------------------------------------------------------------ */
/* Events from the driver (driver.h) */

/* A FETCH of flags (a flag pass, a QRESYNC SELECT, replay's re-read, or
 * unsolicited): merged three-way into the store. */
static void fetch_flags(struct cpmsync_sync *e, const struct engine_fetch *f)
{
	bool found = false, changed = false;
	int r;

	if (e->fast_flags && (f->present & ENGINE_FETCH_MODSEQ) && f->modseq > e->fast_max_modseq)
		e->fast_max_modseq = f->modseq;
	if (e->fetch_kind == FK_FLAGS && e->f.mode == PLAN_MODE_PLAIN) {
		r = rangeset_add(&e->f.present, f->uid);
		if (r < 0) {
			engine_fail(e, r, "too many UIDs in folder %s", e->f.server_name);
			return;
		}
	}
	if (!(f->present & ENGINE_FETCH_FLAGS) || !e->selected_id)
		return;
	if (engine_tx_begin(e) < 0)
		return;
	r = store_sync_server_flags(e->store, e->selected_id, f->uid, f->flags,
				    (f->present & ENGINE_FETCH_MODSEQ) ? f->modseq : 0, &found,
				    &changed, NULL);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	if (changed)
		e->stats.messages_changed++;
	/* Annotation changes bump MODSEQ too (Cyrus): the flags may be the
	 * same while a cached annotation is not. */
	if (found && e->fetch_kind == FK_FLAGS)
		engine_annotation_note(e, f->uid);
	e->batch_rows++;
	engine_tx_tick(e, false);
}

/* A new message (the FETCH of uid >= new_from_uid: summary, header or
 * body). */
static void fetch_new(struct cpmsync_sync *e, const struct engine_fetch *f)
{
	const struct engine_body *b = f->body;
	struct msg_summary sum = { 0 };
	struct sync_new_message m;
	bool has_body = false, is_new = false, have_sum = false;
	int64_t id;
	int r;

	if (f->uid < e->f.after.new_from_uid)
		goto out; /* "n:*" also returns the last message when n > UIDNEXT-1 */
	if (b) {
		r = msg_summary_parse(b->head ? b->head : "", b->head_len, &sum);
		if (r < 0) {
			engine_fail(e, r, "out of memory");
			goto out;
		}
		have_sum = true;
	}
	m = (struct sync_new_message){
		.uid = f->uid,
		.flags = (f->present & ENGINE_FETCH_FLAGS) ? f->flags : "",
		.modseq = (f->present & ENGINE_FETCH_MODSEQ) ? f->modseq : 0,
		.internaldate = (f->present & ENGINE_FETCH_DATE) ? f->internaldate : 0,
		.size = (f->present & ENGINE_FETCH_SIZE) ? f->size : 0,
		.summary = have_sum ? &sum : NULL,
		.bodystructure =
			(f->present & ENGINE_FETCH_BODYSTRUCTURE) ? f->bodystructure : NULL,
		.emailid = (f->present & ENGINE_FETCH_OBJECTIDS) ? f->emailid : NULL,
	};
	m.body_follows = b && b->size == m.size && e->body_limit >= m.size && b->full;
	if (engine_tx_begin(e) < 0 || !message_begin(e))
		goto out;
	r = store_sync_new_message(e->store, e->selected_id, &m, &id, &has_body, &is_new);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		goto out;
	}
	if (m.body_follows && !has_body) {
		r = body_store(e, b, id, is_new);
		if (r < 0) {
			char why[PATH_MAX + 64];

			engine_fail(e, r, "storing the body of UID %u: %s", f->uid,
				    body_error(e, b, r, why, sizeof(why)));
			goto out;
		}
	}
	if ((f->present & ENGINE_FETCH_OBJECTIDS) && f->emailid) {
		r = store_sync_message_set_objectids(e->store, id, f->emailid, f->threadid);
		if (r < 0) {
			engine_fail(e, r, "store: %s",
				    r == -ENOMEM ? "out of memory" : store_error(e->store));
			goto out;
		}
	}
	e->in_message = false;
	if (is_new)
		e->stats.messages_added++;
	e->f.new_count++;
	if (f->uid > e->f.max_uid_seen)
		e->f.max_uid_seen = f->uid;
	e->batch_rows++;
	engine_tx_tick(e, false);
out:
	e->in_message = false;
	msg_summary_free(&sum);
}

/*
 * The CPM parse of a body fetched after its header (a size-limited header
 * pass): the header alone cannot tell an IMDN report from a chat message,
 * nor give a snippet or participants.  Set on the row like a fresh
 * object's: the store's triggers raise the original's Status, recount the
 * conversation and record MessagesChanged/ConversationChanged.  Plain mail
 * reads the same from its header: nothing to set.
 */
static int body_set_cpm(struct cpmsync_sync *e, const struct engine_body *b, int64_t id)
{
	struct msg_summary sum;
	int r;

	r = msg_summary_parse(b->head ? b->head : "", b->head_len, &sum);
	if (r < 0)
		return r;
	if (!streq(sum.type, "mail"))
		r = store_message_set_cpm(e->store, id, &sum);
	msg_summary_free(&sum);
	return r;
}

/* The body of a known message. */
static void fetch_body(struct cpmsync_sync *e, const struct engine_fetch *f)
{
	int64_t id;
	int r;

	if (!f->body || !f->body->full)
		return;
	r = store_sync_message_id_by_uid(e->store, e->selected_id, f->uid, &id);
	if (r == -CPMSYNC_E_NOT_FOUND)
		return; /* expunged locally meanwhile */
	if (r >= 0)
		r = engine_tx_begin(e);
	if (r >= 0 && !message_begin(e))
		return;
	if (r >= 0)
		r = body_store(e, f->body, id, false);
	if (r >= 0)
		r = body_set_cpm(e, f->body, id);
	if (r < 0) {
		char why[PATH_MAX + 64];

		engine_fail(e, r, "storing the body of UID %u: %s", f->uid,
			    body_error(e, f->body, r, why, sizeof(why)));
		e->in_message = false;
		return;
	}
	e->in_message = false;
	e->batch_rows++;
	engine_tx_tick(e, false);
}

/* Are bad FLAGS in this FETCH a failure of the run?  Not while verifying
 * (replay reads sizes and dates), nor in a FETCH of bodies, nor for a
 * message below the new ones in their FETCH ("n:*" returns the last one). */
static bool flags_matter(const struct cpmsync_sync *e, const struct engine_fetch *f)
{
	switch (e->fetch_kind) {
	case FK_VERIFY:
	case FK_IDENT:
	case FK_DATES:
	case FK_BODY:
	case FK_ANNOTATION:
	case FK_DISCARD:
		return false;
	case FK_NEW:
		if (f->present & ENGINE_FETCH_SIZE)
			return f->uid >= e->f.after.new_from_uid;
		return e->selected_id != 0;
	default:
		return e->selected_id != 0;
	}
}

static bool select_of_other_folder(const struct cpmsync_sync *e);

void engine_event_fetch(struct cpmsync_sync *e, const struct engine_fetch *f)
{
	e->keep_lost = true;
	if (e->finished)
		return;
	if (f->flags_error && flags_matter(e, f)) {
		engine_fail(e, f->flags_error, "bad FLAGS from the server for UID %u", f->uid);
		return;
	}
	engine_ident_fast_on_fetch(e, f);
	switch (e->fetch_kind) {
	case FK_VERIFY:
		engine_replay_on_fetch(e, f);
		break;
	case FK_IDENT:
		engine_ident_on_fetch(e, f);
		break;
	case FK_DATES:
		engine_replay_on_date(e, f);
		break;
	case FK_FLAGS:
	case FK_NONE:
		if (select_of_other_folder(e))
			break;
		/* Also unsolicited changes while we do something else: the
		 * three-way merge makes applying them always right. */
		fetch_flags(e, f);
		break;
	case FK_NEW:
		/* Without RFC822.SIZE it is no answer to the new-message
		 * FETCH but news of flags (unsolicited, or the rest of an
		 * IDLE before the FETCH ran). */
		if (f->present & ENGINE_FETCH_SIZE)
			fetch_new(e, f);
		else
			fetch_flags(e, f);
		break;
	case FK_BODY:
		fetch_body(e, f);
		break;
	case FK_ANNOTATION:
		engine_annotation_on_fetch(e, f);
		break;
	case FK_DISCARD:
		break;
	}
}

static int remote_add(struct cpmsync_sync *e, const char *name)
{
	struct remote_folder *rf;

	if (e->n_remote >= ENGINE_MAX_FOLDERS)
		return -E2BIG;
	if (e->n_remote == e->alloc_remote) {
		size_t na = e->alloc_remote ? e->alloc_remote * 2 : 16;
		struct remote_folder *nv = reallocarray(e->remote, na, sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		e->remote = nv;
		e->alloc_remote = na;
	}
	rf = &e->remote[e->n_remote];
	*rf = (struct remote_folder){ .name = strdup(name) };
	if (!rf->name)
		return -ENOMEM;
	rf->p.name = rf->name;
	e->n_remote++;
	return 0;
}

static struct remote_folder *remote_find(struct cpmsync_sync *e, const char *name)
{
	for (size_t i = 0; i < e->n_remote; i++)
		if (streq(e->remote[i].name, name))
			return &e->remote[i];
	return NULL;
}

bool engine_name_hidden(struct cpmsync_sync *e, const char *name)
{
	struct engine_driver *d = e->drv;

	return d->ops->hidden_root && d->ops->hidden_root(d, name) && !remote_find(e, name);
}

static const char *special_use_name(unsigned attrs)
{
	static const struct {
		unsigned bit;
		const char *name;
	} map[] = {
		{ IMAP_MBOX_ALL, "\\All" },	  { IMAP_MBOX_ARCHIVE, "\\Archive" },
		{ IMAP_MBOX_DRAFTS, "\\Drafts" }, { IMAP_MBOX_FLAGGED, "\\Flagged" },
		{ IMAP_MBOX_JUNK, "\\Junk" },	  { IMAP_MBOX_SENT, "\\Sent" },
		{ IMAP_MBOX_TRASH, "\\Trash" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (attrs & map[i].bit)
			return map[i].name;
	return NULL;
}

/*
 * A folder the server lists with a name that cannot be stored: warned once
 * per account and name while the store is open (not at every sync), then
 * at debug level.
 */
#define REFUSED_NAME_KEY_MAX 4096
static void refused_name(struct cpmsync_sync *e, const struct engine_list *l)
{
	struct buf key = BUF_INIT(REFUSED_NAME_KEY_MAX);
	size_t skip = strlen(e->account_name) + 1, n = l->raw_len;
	char *shown = NULL;
	bool first = true;

	/* "account\0raw name" (the account name has no NUL), a longer name
	 * cut; the buffer NUL-terminates the name for the message. */
	if (skip < REFUSED_NAME_KEY_MAX && n > REFUSED_NAME_KEY_MAX - skip)
		n = REFUSED_NAME_KEY_MAX - skip;
	if (buf_append(&key, e->account_name, skip) == 0 && buf_append(&key, l->raw, n) == 0) {
		first = store_note_once(e->store, key.data, key.len);
		shown = text_escape_dup(key.data + skip);
	}
	log_msg(first ? CPMSYNC_LOG_WARNING : CPMSYNC_LOG_DEBUG, CAT,
		"%s: skipping folder \"%s\": its name %s%s", e->account_name, shown ? shown : "?",
		l->name_error == -EILSEQ
			? "has a control or bidirectional formatting character"
			: "cannot be read (not modified UTF-7, or UTF-8 under UTF8=ACCEPT, or "
			  "an empty level)",
		first ? " (warned once while the store is open)" : "");
	free(shown);
	buf_free(&key);
}

void engine_event_list(struct cpmsync_sync *e, const struct engine_list *l)
{
	struct remote_folder *rf;
	const char *su;
	int r;

	if (e->finished || e->listing_ids)
		return; /* list_ids(): the folders are known */
	if (!l->name && l->name_error == -EEXIST) {
		log_msg(CPMSYNC_LOG_WARNING, CAT,
			"%s: skipping folder %.*s: its local name would be another's",
			e->account_name, (int)l->raw_len, l->raw);
		return;
	}
	if (!l->name) {
		refused_name(e, l);
		return;
	}
	if (!plan_patterns_match((const char *const *)e->patterns, l->name))
		return;
	if (l->attrs & IMAP_MBOX_NONEXISTENT)
		return;
	rf = remote_find(e, l->name);
	if (!rf) {
		r = remote_add(e, l->name);
		if (r < 0) {
			engine_fail(e, r,
				    r == -E2BIG ? "the server lists more than %d folders"
						: "out of memory",
				    ENGINE_MAX_FOLDERS);
			return;
		}
		rf = &e->remote[e->n_remote - 1];
	}
	rf->p.noselect = l->attrs & IMAP_MBOX_NOSELECT;
	rf->subscribed = l->attrs & IMAP_MBOX_SUBSCRIBED;
	su = special_use_name(l->attrs);
	free(rf->special_use);
	rf->special_use = su ? strdup(su) : NULL;
}

void engine_event_status(struct cpmsync_sync *e, const struct engine_status *st)
{
	struct remote_folder *rf;

	if (e->finished)
		return;
	engine_replay_on_status(e, st);
	rf = remote_find(e, st->name);
	if (!rf)
		return;
	if (e->listing_ids) {
		/* list_ids(): MAILBOXID, of the folder whose UIDVALIDITY the
		 * first LIST reported (else renamed in between: not trusted). */
		if ((st->present & IMAP_STATUS_ITEM_MAILBOXID) &&
		    (st->present & IMAP_STATUS_ITEM_UIDVALIDITY) && rf->p.has_status &&
		    st->uidvalidity == rf->p.uidvalidity) {
			free(rf->mailboxid);
			rf->mailboxid = strndup(st->mailboxid, st->mailboxid_len);
			rf->p.mailboxid = rf->mailboxid; /* NULL (no memory): not reported */
		}
		return;
	}
	if ((st->present & IMAP_STATUS_ITEM_UIDVALIDITY) &&
	    (st->present & IMAP_STATUS_ITEM_UIDNEXT) && (st->present & IMAP_STATUS_ITEM_MESSAGES)) {
		rf->p.has_status = true;
		rf->p.uidvalidity = st->uidvalidity;
		rf->p.uidnext = st->uidnext;
		rf->p.messages = st->messages;
		rf->p.highestmodseq =
			(st->present & IMAP_STATUS_ITEM_HIGHESTMODSEQ) ? st->highestmodseq : 0;
	}
}

void engine_event_code(struct cpmsync_sync *e, enum imap_code code, uint64_t value)
{
	switch (code) {
	case IMAP_CODE_UIDVALIDITY:
		e->f.uidvalidity = (uint32_t)value;
		break;
	case IMAP_CODE_UIDNEXT:
		e->f.uidnext = (uint32_t)value;
		break;
	case IMAP_CODE_HIGHESTMODSEQ:
		/* Cyrus reports it on every SELECT, also with CONDSTORE not
		 * advertised (suppress_capabilities): without CONDSTORE a
		 * client must not use MODSEQ, CHANGEDSINCE or UNCHANGEDSINCE,
		 * so it is as if NOMODSEQ. */
		if (e->drv->ops->has(e->drv, IMAP_CAP_CONDSTORE) ||
		    e->drv->ops->has(e->drv, IMAP_CAP_QRESYNC))
			e->f.hms = value;
		break;
	case IMAP_CODE_NOMODSEQ:
		e->f.nomodseq = true;
		break;
	case IMAP_CODE_COPYUID:
		if (value)
			engine_replay_on_copyuid(e, (uint32_t)value);
		break;
	default:
		break;
	}
}

void engine_event_permanent_flags(struct cpmsync_sync *e, const char *flags, bool new_keywords)
{
	free(e->perm_pending);
	e->perm_pending = strdup(flags); /* NULL (no memory): as not reported */
	e->perm_pending_kw = new_keywords;
}

void engine_event_mailboxid(struct cpmsync_sync *e, const char *id, size_t len)
{
	if (len >= sizeof(e->f.mailboxid))
		len = sizeof(e->f.mailboxid) - 1; /* longer than RFC 8474 allows */
	memcpy(e->f.mailboxid, id, len);
	e->f.mailboxid[len] = '\0';
}

/* Is the selected folder still the one the store knows?  complete: the
 * QRESYNC SELECT is over and known is what the store holds below the
 * recorded UIDNEXT. */
static enum plan_identity folder_identity(const struct cpmsync_sync *e, bool complete,
					  uint32_t known)
{
	const struct plan_identity_in in = {
		.local_uidvalidity = e->f.local_uidvalidity,
		.local_uidnext = e->f.local_uidnext,
		.local_highestmodseq = e->f.local_hms,
		.local_mailboxid = e->f.local_mailboxid,
		.uidvalidity = e->f.uidvalidity,
		.uidnext = e->f.uidnext,
		.highestmodseq = e->f.nomodseq ? 0 : e->f.hms,
		.mailboxid = e->f.mailboxid,
		.exists_complete = complete,
		.exists = e->f.exists,
		.local_known = known,
	};

	return plan_folder_identity(&in);
}

/* FETCH and VANISHED of a QRESYNC SELECT that turned out to be of another
 * folder under the same name: they name UIDs of that folder, not ours. */
static bool select_of_other_folder(const struct cpmsync_sync *e)
{
	return e->f.in_select && folder_identity(e, false, 0) != PLAN_IDENTITY_SAME;
}

unsigned engine_event_takes(const struct cpmsync_sync *e)
{
	unsigned takes = ENGINE_TAKES_EVENTS;

	if (e->finished)
		return 0;
	if (!e->listing_ids)
		takes |= ENGINE_TAKES_LIST;
	if (e->selected_id && !select_of_other_folder(e))
		takes |= ENGINE_TAKES_VANISHED;
	/* FK_DISCARD: its bodies are read (streamed, not kept) and dropped. */
	if (e->fetch_kind == FK_NEW || e->fetch_kind == FK_BODY || e->fetch_kind == FK_DISCARD)
		takes |= ENGINE_TAKES_BODY;
	return takes;
}

void engine_event_search(struct cpmsync_sync *e, uint32_t lo, uint32_t hi)
{
	int r = rangeset_add_range(&e->search, lo, hi);

	if (r < 0)
		engine_fail(e, r, "out of memory");
}

/* News of the selected folder after a run without SELECT had it current
 * (counted, VANISHED applied): the session syncs it again before IDLE. */
static void fast_news_after(struct cpmsync_sync *e)
{
	if (e->fast == FAST_CURRENT && !e->fast_more) {
		log_debug(CAT, "%s: news for %s after its sync", e->account_name,
			  e->f.server_name ? e->f.server_name : "?");
		e->fast_more = true;
	}
}

/* The held VANISHED (engine-internal.h) go, unapplied: logged why. */
static void held_drop(struct cpmsync_sync *e, const char *why)
{
	if (rangeset_empty(&e->held_vanished))
		return;
	log_debug(CAT, "%s: %llu UID(s) VANISHED not applied: %s", e->account_name,
		  (unsigned long long)rangeset_count(&e->held_vanished), why);
	rangeset_clear(&e->held_vanished);
}

/* VANISHED (not EARLIER) of the selected folder: held (engine-internal.h). */
static void held_add(struct cpmsync_sync *e, int64_t folder_id, const struct rangeset *uids)
{
	int r = 0;

	if (e->held_id != folder_id) {
		held_drop(e, "another folder is selected");
		e->held_id = folder_id;
	}
	for (size_t i = 0; r >= 0 && i < uids->n; i++)
		r = rangeset_add_range(&e->held_vanished, uids->r[i].lo, uids->r[i].hi);
	if (r < 0)
		engine_fail(e, r, "out of memory");
}

/* A command on held_id answered OK after its held VANISHED: expunges. */
static int held_apply(struct cpmsync_sync *e)
{
	uint32_t removed = 0;
	int r;

	log_debug(CAT, "%s: %llu UID(s) VANISHED: the folder answered, they are expunged",
		  e->account_name, (unsigned long long)rangeset_count(&e->held_vanished));
	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_sync_expunge_uids(e->store, e->held_id, &e->held_vanished, &removed);
	rangeset_clear(&e->held_vanished);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return r;
	}
	e->stats.messages_removed += removed;
	e->batch_rows += removed;
	return 0;
}

/* A command on the selected folder was refused: renamed or deleted by
 * another client (Cyrus: "NO Mailbox does not exist"), the session
 * lists the folders next (engine_selected_gone()). */
static void selected_refused(struct cpmsync_sync *e, const char *what, const char *text)
{
	if (e->selected_gone)
		return;
	log_msg(CPMSYNC_LOG_INFO, CAT,
		"%s: %s refused %s (%s): renamed or deleted? the folder list tells",
		e->account_name,
		e->f.server_name && e->f.id == e->selected_id ? e->f.server_name : "the folder",
		what, text ? text : "");
	e->selected_gone = true;
	e->stats.folders_gone++;
}

/*
 * An OK answered after the VANISHED proves the folder still there under
 * its name: Cyrus checks the mailbox (and reports its rename) as a command
 * on it takes its lock, and refuses the command then; the VANISHED of a
 * rename after that comes with the next command's answer.  An expunge of
 * our own (UID EXPUNGE, UID MOVE) is confirmed by its own OK.
 */
void engine_event_selected_answered(struct cpmsync_sync *e, int r, const char *text)
{
	if (e->finished || rangeset_empty(&e->held_vanished))
		return;
	if (e->held_id != e->selected_id || e->pull_r) {
		held_drop(e, "their folder is no longer selected");
		return;
	}
	if (r == 0) {
		if (held_apply(e) >= 0)
			engine_tx_tick(e, false);
		return;
	}
	if (r == -CPMSYNC_E_SERVER) {
		held_drop(e, "a command on their folder was refused");
		selected_refused(e, "a command", text);
		return;
	}
	/* The connection failed: so does the run. */
	held_drop(e, "the connection failed");
}

void engine_event_vanished(struct cpmsync_sync *e, bool earlier, const struct rangeset *uids)
{
	uint32_t removed = 0;
	int r;

	e->keep_lost = true;
	if (e->finished || !e->selected_id || select_of_other_folder(e))
		return;
	if (e->fast != FAST_OFF && !earlier) {
		/* Like EXPUNGE: these left the count EXISTS gave. */
		uint64_t n = 0;

		for (size_t i = 0; i < uids->n; i++)
			n += (uint64_t)uids->r[i].hi - uids->r[i].lo + 1;
		e->fast_exists = n < e->fast_exists ? e->fast_exists - (uint32_t)n : 0;
		fast_news_after(e);
	}
	if (!earlier && !e->f.in_select) {
		/* With any command's answer, or none: held until a command
		 * on the folder is answered (engine-internal.h). */
		held_add(e, e->selected_id, uids);
		return;
	}
	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_sync_expunge_uids(e->store, e->selected_id, uids, &removed);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	e->stats.messages_removed += removed;
	e->batch_rows += removed;
	engine_tx_tick(e, false);
}

void engine_event_exists(struct cpmsync_sync *e, uint32_t n)
{
	e->keep_lost = true;
	e->f.exists = n;
	if (e->fast != FAST_OFF) {
		e->fast_exists = n;
		fast_news_after(e);
	}
}

void engine_event_expunge(struct cpmsync_sync *e)
{
	e->keep_lost = true;
	if (e->fast != FAST_OFF) {
		if (e->fast_exists)
			e->fast_exists--;
		fast_news_after(e);
	}
}

/* ------------------------------------------------------------------ */
/* LIST and the folder plan */

/*
 * A local folder LIST cannot show, so that its absence from LIST says
 * nothing of the server: not matched by the account's folder patterns, or
 * in a namespace the session hides.  NULL: in view; else why, for a log.
 */
static const char *out_of_view_why(struct cpmsync_sync *e, const char *name)
{
	struct engine_driver *d = e->drv;

	if (!plan_patterns_match((const char *const *)e->patterns, name))
		return "not matched by the account's folders setting";
	if (d->ops->hidden_root && d->ops->hidden_root(d, name))
		return "other_namespaces = hide";
	return NULL;
}

static bool out_of_view(struct cpmsync_sync *e, const char *name)
{
	return out_of_view_why(e, name) != NULL;
}

/*
 * What the server did to folders, for the default log, which says why a
 * folder vanished or changed its name here: a folder renamed (from, to)
 * or deleted (to NULL, with the messages it held here).  A subtree is a
 * line, not one per folder (a server-side rename of 500 folders), and at
 * most FOLDER_LOG_LINES lines go for each, then a count; -v names each.
 */
struct folder_event {
	const char *from, *to;
	uint32_t messages;
	/* the group's key: from[0..from_len) to to[0..to_len) (renames), or
	 * from[0..from_len) (deletions) */
	size_t from_len, to_len;
};

struct folder_log {
	struct folder_event *v;
	size_t n;
};

#define FOLDER_LOG_LINES 10

static int event_cmp(const void *a, const void *b)
{
	const struct folder_event *x = a, *y = b;
	size_t n = x->from_len < y->from_len ? x->from_len : y->from_len;
	int c = memcmp(x->from, y->from, n);

	if (c == 0 && x->from_len != y->from_len)
		c = x->from_len < y->from_len ? -1 : 1;
	if (c == 0 && x->to && y->to) {
		n = x->to_len < y->to_len ? x->to_len : y->to_len;
		c = memcmp(x->to, y->to, n);
		if (c == 0 && x->to_len != y->to_len)
			c = x->to_len < y->to_len ? -1 : 1;
	}
	return c ? c : strcmp(x->from, y->from);
}

static bool same_group(const struct folder_event *x, const struct folder_event *y)
{
	return x->from_len == y->from_len && memcmp(x->from, y->from, x->from_len) == 0 &&
	       (!x->to || (x->to_len == y->to_len && memcmp(x->to, y->to, x->to_len) == 0));
}

/* A rename's group: what is left of both names without the last levels
 * they share ("Sub/f001" -> "Moved/f001": "Sub" -> "Moved"), so that a
 * subtree renamed is one group whether its top is a folder here or not. */
static void rename_key(struct folder_event *ev)
{
	ev->from_len = strlen(ev->from);
	ev->to_len = strlen(ev->to);
	for (;;) {
		const char *f = memrchr(ev->from, '/', ev->from_len);
		const char *t = memrchr(ev->to, '/', ev->to_len);
		size_t fl, tl;

		if (!f || !t)
			return;
		fl = (size_t)(ev->from + ev->from_len - f);
		tl = (size_t)(ev->to + ev->to_len - t);
		if (fl != tl || memcmp(f, t, fl) != 0)
			return;
		ev->from_len = (size_t)(f - ev->from);
		ev->to_len = (size_t)(t - ev->to);
	}
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool name_in(const char *const *names, size_t n, const char *name)
{
	return n && bsearch(&name, names, n, sizeof(*names), name_cmp);
}

/* A deletion's group: its highest parent that is deleted too, or that is
 * no folder here (a \Noselect parent: Dovecot's "Sub" of "Sub/f001"), so
 * that a subtree deleted is one group; else the folder itself. */
static int delete_keys(struct folder_log *del, const struct plan_local_folder *locals,
		       size_t n_local)
{
	_cleanup_free_ const char **gone = calloc(del->n + 1, sizeof(char *));
	_cleanup_free_ const char **here = calloc(n_local + 1, sizeof(char *));
	char buf[1024];

	if (!gone || !here)
		return -ENOMEM;
	for (size_t i = 0; i < del->n; i++)
		gone[i] = del->v[i].from;
	for (size_t i = 0; i < n_local; i++)
		here[i] = locals[i].name;
	qsort(gone, del->n, sizeof(*gone), name_cmp);
	qsort(here, n_local, sizeof(*here), name_cmp);
	for (size_t i = 0; i < del->n; i++) {
		struct folder_event *ev = &del->v[i];
		const char *slash;

		ev->from_len = strlen(ev->from);
		for (slash = strchr(ev->from, '/'); slash; slash = strchr(slash + 1, '/')) {
			size_t len = (size_t)(slash - ev->from);

			if (len >= sizeof(buf))
				break;
			memcpy(buf, ev->from, len);
			buf[len] = '\0';
			if (name_in(gone, del->n, buf) || !name_in(here, n_local, buf)) {
				ev->from_len = len;
				break;
			}
		}
	}
	return 0;
}

/* One line of log_folder_events(): the group v[0..count), its folders'
 * messages here (deletions). */
static void log_folder_group(struct cpmsync_sync *e, const struct folder_event *v, size_t count,
			     uint64_t messages)
{
	bool top_is_folder = strlen(v->from) == v->from_len;
	const char *s = messages == 1 ? "" : "s";
	unsigned long long m = messages;
	char under[64] = "";

	/* " with the folder under it", " with the 499 folders under it" */
	if (count == 2)
		snprintf(under, sizeof(under), " with the folder under it");
	else if (count > 2)
		snprintf(under, sizeof(under), " with the %zu folders under it", count - 1);
	if (v->to && (count == 1 || top_is_folder))
		log_msg(CPMSYNC_LOG_INFO, CAT, "%s: folder '%s' renamed on the server to '%s'%s%s",
			e->account_name, v->from, v->to, *under ? "," : "", under);
	else if (v->to)
		log_msg(CPMSYNC_LOG_INFO, CAT,
			"%s: %zu folders under '%.*s' renamed on the server, to under '%.*s'",
			e->account_name, count, (int)v->from_len, v->from, (int)v->to_len, v->to);
	else if (count == 1)
		log_msg(CPMSYNC_LOG_INFO, CAT,
			"%s: folder '%s' deleted on the server: its %llu message%s removed here",
			e->account_name, v->from, m, s);
	else if (top_is_folder)
		log_msg(CPMSYNC_LOG_INFO, CAT,
			"%s: folder '%s' deleted on the server%s: their %llu message%s removed "
			"here",
			e->account_name, v->from, under, m, s);
	else
		log_msg(CPMSYNC_LOG_INFO, CAT,
			"%s: %zu folders under '%.*s' deleted on the server: their %llu message%s"
			" removed here",
			e->account_name, count, (int)v->from_len, v->from, m, s);
}

/* The events of fl, a line per group: subtrees first, then single
 * folders, FOLDER_LOG_LINES lines at most, then a count of the rest. */
static void log_folder_events(struct cpmsync_sync *e, struct folder_log *fl)
{
	size_t lines = 0, more = 0;
	uint64_t more_messages = 0;

	qsort(fl->v, fl->n, sizeof(*fl->v), event_cmp);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0, j; i < fl->n; i = j) {
			uint64_t messages = 0;

			for (j = i; j < fl->n && same_group(&fl->v[i], &fl->v[j]); j++)
				messages += fl->v[j].messages;
			if ((j - i > 1) != (pass == 0))
				continue;
			if (lines == FOLDER_LOG_LINES) {
				more += j - i;
				more_messages += messages;
				continue;
			}
			lines++;
			log_folder_group(e, &fl->v[i], j - i, messages);
		}
	}
	if (more && fl->v[0].to)
		log_msg(CPMSYNC_LOG_INFO, CAT,
			"%s: and %zu more folders renamed on the server (the debug log names each)",
			e->account_name, more);
	else if (more)
		log_msg(CPMSYNC_LOG_INFO, CAT,
			"%s: and %zu more folders deleted on the server: their %llu message%s"
			" removed here (the debug log names each)",
			e->account_name, more, (unsigned long long)more_messages,
			more_messages == 1 ? "" : "s");
}

/* PLAN_FOLDER_DELETE: gone on the server, or out of view with nothing to
 * send.  deleted: where a folder deleted on the server is recorded for
 * log_folder_events() (not one whose DELETE was ours, nor one out of view). */
static int delete_local(struct cpmsync_sync *e, const struct plan_local_folder *l,
			struct folder_log *deleted)
{
	uint32_t messages = 0;
	int r = 0;

	if (!l->removed && !l->out_of_view)
		r = store_sync_folder_messages(e->store, l->id, &messages);
	if (r >= 0)
		r = store_sync_folder_delete(e->store, l->id);
	if (r >= 0 && !l->removed && !l->out_of_view)
		deleted->v[deleted->n++] =
			(struct folder_event){ .from = l->name, .messages = messages };
	if (l->out_of_view)
		log_msg(CPMSYNC_LOG_INFO, CAT,
			"%s: folder %s is no longer synced (%s): its local copy is dropped",
			e->account_name, l->name, out_of_view_why(e, l->name));
	else
		log_debug(CAT, "%s: folder %s gone on the server", e->account_name, l->server_name);
	return r;
}

/*
 * Another user's folder or a shared one (#Users/..., #Shared/...), no
 * longer listed while changes wait for it: access to it was lost (the
 * owner took the right away) or the owner deleted it, and LIST does not
 * tell which.  It is not this account's to make again (a CREATE there is
 * refused, NOPERM), so its changes become failed operations saying why,
 * once (a retry that finds it still missing fails the same way).
 */
static int folder_lost(struct cpmsync_sync *e, const struct plan_local_folder *l)
{
	_cleanup_free_ char *text = NULL;
	uint32_t n = 0;
	int r;

	if (asprintf(&text,
		     CPMSYNC_FAILED_OP_NOT_SENT "the folder %s is no longer listed by the server:"
						" access to it was lost, or its owner deleted it",
		     l->name) < 0)
		return -ENOMEM;
	r = store_sync_folder_lost(e->store, l->id, text, (int64_t)time(NULL), &n);
	if (r >= 0 && n > 0)
		log_msg(CPMSYNC_LOG_WARNING, CAT,
			"%s: folder %s is no longer listed by the server (access to it lost, or"
			" deleted by its owner) while %u local change%s waited for it:"
			" not created again, as it is not this account's; %s failed (cpmctl"
			" failed)",
			e->account_name, l->name, (unsigned)n, n == 1 ? "" : "s",
			n == 1 ? "it" : "they");
	return r;
}

/* store_sync_uidvalidity_reset() of folder id, name on the server; the
 * local deletes it turns into failed operations are logged. */
static int uidvalidity_reset(struct cpmsync_sync *e, int64_t id, const char *name)
{
	uint32_t n = 0;
	int r;

	r = store_sync_uidvalidity_reset_failed(e->store, id, &n);
	if (r >= 0 && n > 0)
		log_msg(CPMSYNC_LOG_WARNING, CAT,
			"%s: %s is another folder now while %u local delete%s waited for it:"
			" not sent to messages matched again by their content only; %s failed"
			" (cpmctl failed)",
			e->account_name, name ? name : "?", (unsigned)n, n == 1 ? "" : "s",
			n == 1 ? "it" : "they");
	return r;
}

static int load_plan_locals(struct cpmsync_sync *e, struct sync_folder **ret_folders, size_t *ret_n,
			    struct plan_local_folder **ret_locals)
{
	struct sync_folder *folders = NULL;
	struct plan_local_folder *locals;
	size_t n = 0;
	int r;

	r = store_sync_folders(e->store, e->account_id, &folders, &n);
	if (r < 0)
		return r;
	locals = calloc(n + 1, sizeof(*locals));
	if (!locals) {
		sync_folders_free(folders, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct sync_folder *f = &folders[i];
		bool rp = false;

		r = store_sync_rename_pending(e->store, f->id, &rp);
		if (r < 0) {
			free(locals);
			sync_folders_free(folders, n);
			return r;
		}
		locals[i] = (struct plan_local_folder){
			.out_of_view = out_of_view(e, f->name),
			.foreign = e->drv->ops->foreign_root &&
				   e->drv->ops->foreign_root(e->drv, f->name),
			.has_ops = f->has_ops,
			.id = f->id,
			.name = f->name,
			.server_name = f->server_name,
			.removed = f->removed,
			.rename_pending = rp,
			.has_content_ops = f->has_content_ops,
			.uidvalidity = f->uidvalidity,
			.uidnext = f->uidnext,
			.highestmodseq = f->highestmodseq,
			.mailboxid = f->mailboxid,
			.known_messages = f->known,
			.bodies_behind = f->body_limit < e->body_limit,
		};
	}
	*ret_folders = folders;
	*ret_n = n;
	*ret_locals = locals;
	return 0;
}

/* Whether two folders could have traded names unseen: the same
 * UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ, and messages once
 * (UIDNEXT > 1; two folders that never held any hold nothing to mix up). */
static int status_cmp(const void *a, const void *b)
{
	const struct plan_remote_folder *x = *(const struct plan_remote_folder *const *)a;
	const struct plan_remote_folder *y = *(const struct plan_remote_folder *const *)b;

	if (x->uidvalidity != y->uidvalidity)
		return x->uidvalidity < y->uidvalidity ? -1 : 1;
	if (x->uidnext != y->uidnext)
		return x->uidnext < y->uidnext ? -1 : 1;
	if (x->messages != y->messages)
		return x->messages < y->messages ? -1 : 1;
	if (x->highestmodseq != y->highestmodseq)
		return x->highestmodseq < y->highestmodseq ? -1 : 1;
	return 0;
}

static bool status_twins(const struct plan_remote_folder *remotes, size_t n)
{
	_cleanup_free_ const struct plan_remote_folder **v = calloc(n + 1, sizeof(*v));
	size_t k = 0;

	if (!v)
		return true; /* cannot tell: ask */
	for (size_t i = 0; i < n; i++)
		if (remotes[i].has_status && !remotes[i].noselect && remotes[i].uidnext > 1)
			v[k++] = &remotes[i];
	qsort(v, k, sizeof(*v), status_cmp);
	for (size_t i = 1; i < k; i++)
		if (status_cmp(&v[i - 1], &v[i]) == 0)
			return true;
	return false;
}

/*
 * Whether the run needs the folders' MAILBOXIDs (list_ids()) before it
 * acts on the plan made without them.  Not when the LIST-STATUS shows
 * every folder under its stored name with its stored UIDVALIDITY,
 * UIDNEXT, count and HIGHESTMODSEQ, each with a recorded MAILBOXID, and no
 * two of them alike: a folder that is another one under a known name then
 * had to take over exactly the state of the one it replaced.  Any other
 * plan (a folder to sync, new, gone, renamed, or re-read) asks first, so
 * renames keep their local ids and a replaced folder is seen before its
 * QRESYNC SELECT; every SELECT checks the MAILBOXID it reports as well.
 */
static bool ids_wanted(const struct plan_folder_action *acts, int n,
		       const struct plan_local_folder *locals,
		       const struct plan_remote_folder *remotes, size_t n_remote)
{
	for (int i = 0; i < n; i++)
		if (acts[i].kind != PLAN_FOLDER_UNCHANGED || !locals[acts[i].local].mailboxid)
			return true;
	return status_twins(remotes, n_remote);
}

/* Whether a folder renamed on the server, or a new one, takes a name that
 * another local folder has now (apply_folder_plan() then makes way first). */
static bool renames_cross(const struct plan_folder_action *acts, int n,
			  const struct plan_local_folder *locals, size_t n_local,
			  const struct remote_folder *remote)
{
	for (int i = 0; i < n; i++) {
		bool add = acts[i].kind == PLAN_FOLDER_ADD;
		const char *to;

		if (acts[i].kind != PLAN_FOLDER_RENAMED && !add)
			continue;
		to = remote[acts[i].remote].name;
		for (size_t j = 0; j < n_local; j++)
			if ((add || j != acts[i].local) && locals[j].name &&
			    streq(locals[j].name, to))
				return true;
	}
	return false;
}

/* PLAN_FOLDER_FOLD: l is gone on the server, and into, renamed there,
 * took its name. */
static int fold_folder(struct cpmsync_sync *e, const struct plan_local_folder *l,
		       const struct plan_local_folder *into)
{
	uint32_t moved = 0;
	int r;

	r = store_sync_folder_fold(e->store, l->id, into->id, &moved);
	if (r >= 0)
		log_msg(CPMSYNC_LOG_NOTICE, CAT,
			"%s: %s is another folder now (%s renamed to it on the server, the old"
			" one deleted there): its %u messages are re-matched against it",
			e->account_name, l->server_name, into->server_name, (unsigned)moved);
	return r;
}

/*
 * The order of the folders: INBOX first, then the others in their order
 * (by name), and last those whose first sync was begun and not finished
 * (UIDVALIDITY recorded, UIDNEXT not yet: folder_after_select()).
 *  - In name order a large folder before INBOX ("Archive", "Big") took
 *    the run first, and a store that filled in it (pull_stop()) left
 *    INBOX, where new mail lands, never synced.  Geary does the same: its
 *    AccountSynchronizer queues the folders by special use, Inbox first,
 *    Spam and Trash last (GNOME/geary imap-engine-account-synchronizer.vala,
 *    bg_queue_comparator()).
 *  - A first sync left unfinished is most often a large folder that the
 *    store had no room for (or whose link was cut): first in the next run
 *    too, it took whatever room had come free, and the small folders
 *    after it were never synced.  Last, it takes what they leave.
 * rank[i]: queue entry i's rank (0, 1, 2), the order kept within a rank.
 */
enum { RANK_INBOX, RANK_OTHER, RANK_UNFINISHED, RANK_N };

static int queue_order(struct cpmsync_sync *e, const unsigned char *rank)
{
	_cleanup_free_ int64_t *q = NULL;
	_cleanup_free_ uint32_t *est = NULL;
	size_t n = 0;

	if (e->n_queue < 2)
		return 0;
	q = calloc(e->n_queue, sizeof(*q));
	est = calloc(e->n_queue, sizeof(*est));
	if (!q || !est)
		return -ENOMEM;
	for (unsigned r = 0; r < RANK_N; r++)
		for (size_t i = 0; i < e->n_queue; i++)
			if (rank[i] == r) {
				q[n] = e->queue[i];
				est[n++] = e->queue_est[i];
			}
	memcpy(e->queue, q, n * sizeof(*q));
	memcpy(e->queue_est, est, n * sizeof(*est));
	return 0;
}

/* ask_ids: when not NULL, set (and nothing applied) if ids_wanted(). */
static int apply_folder_plan(struct cpmsync_sync *e, bool *ask_ids)
{
	_cleanup_free_ struct plan_remote_folder *remotes = NULL;
	_cleanup_free_ struct plan_local_folder *locals = NULL;
	_cleanup_free_ struct plan_folder_action *acts = NULL;
	_cleanup_free_ struct folder_event *ev_renamed = NULL, *ev_deleted = NULL;
	struct folder_log renamed = { 0 }, deleted = { 0 };
	struct sync_folder *folders = NULL;
	size_t n_local = 0;
	bool with_modseq = e->drv->ops->enabled(e->drv, IMAP_CAP_CONDSTORE) ||
			   e->drv->ops->enabled(e->drv, IMAP_CAP_QRESYNC);
	_cleanup_free_ unsigned char *rank = NULL;
	bool crossing;
	char delim;
	int n, r;

	r = load_plan_locals(e, &folders, &n_local, &locals);
	if (r < 0)
		return r;
	remotes = calloc(e->n_remote + 1, sizeof(*remotes));
	acts = calloc(e->n_remote + n_local + 1, sizeof(*acts));
	e->queue = calloc(e->n_remote + n_local + 1, sizeof(*e->queue));
	e->queue_est = calloc(e->n_remote + n_local + 1, sizeof(*e->queue_est));
	rank = calloc(e->n_remote + n_local + 1, sizeof(*rank));
	e->prog_total = 0;
	if (!remotes || !acts || !e->queue || !e->queue_est || !rank) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < e->n_remote; i++)
		remotes[i] = e->remote[i].p;
	n = plan_folders(remotes, e->n_remote, locals, n_local, with_modseq, acts);
	if (n < 0) {
		r = n;
		goto out;
	}
	if (ask_ids && ids_wanted(acts, n, locals, remotes, e->n_remote)) {
		*ask_ids = true;
		free(TAKE_PTR(e->queue));
		free(TAKE_PTR(e->queue_est));
		r = 0;
		goto out;
	}
	/* At most one event per action. */
	renamed.v = ev_renamed = calloc((size_t)n + 1, sizeof(*ev_renamed));
	deleted.v = ev_deleted = calloc((size_t)n + 1, sizeof(*ev_deleted));
	if (!ev_renamed || !ev_deleted) {
		r = -ENOMEM;
		goto out;
	}
	r = store_begin(e->store);
	if (r < 0)
		goto out;
	/* For the local folder operations' check of a name (store-ops.c). */
	if (e->drv->ops->delimiter && (delim = e->drv->ops->delimiter(e->drv)))
		r = store_sync_set_delimiter(e->store, e->account_id, delim);
	crossing = renames_cross(acts, n, locals, n_local, e->remote);
	for (int i = 0; r >= 0 && crossing && i < n; i++) {
		/* Server-side renames that cross (two folders swapped: plan.c
		 * renamed_away()), while a name is unique: the folders the
		 * server deleted go first, and each renamed one steps aside
		 * under a name no folder has (a control character) before any
		 * takes its new name in the loop below, in one transaction. */
		const struct plan_folder_action *a = &acts[i];
		const struct plan_local_folder *l = &locals[a->local];
		char aside[40];

		if (a->kind == PLAN_FOLDER_DELETE) {
			r = delete_local(e, l, &deleted);
		} else if (a->kind == PLAN_FOLDER_FOLD) {
			r = fold_folder(e, l, &locals[a->into]);
		} else if (a->kind == PLAN_FOLDER_RENAMED) {
			snprintf(aside, sizeof(aside), "\x01renaming %lld", (long long)l->id);
			r = store_sync_folder_renamed(e->store, e->account_id, l->id, aside);
		}
	}
	for (int i = 0; r >= 0 && i < n; i++) {
		const struct plan_folder_action *a = &acts[i];
		const struct plan_local_folder *l = &locals[a->local];
		struct remote_folder *rf = &e->remote[a->remote];
		int64_t id = 0;

		switch (a->kind) {
		case PLAN_FOLDER_ADD:
			r = store_sync_folder_add(e->store, e->account_id, rf->name,
						  rf->special_use, rf->subscribed, &id);
			log_debug(CAT, "%s: new folder %s", e->account_name, rf->name);
			break;
		case PLAN_FOLDER_RENAMED:
			r = store_sync_folder_renamed(e->store, e->account_id, l->id, rf->name);
			id = l->id;
			log_debug(CAT, "%s: folder %s renamed on the server to %s%s",
				  e->account_name, l->server_name, rf->name,
				  a->unchanged ? " (nothing else changed: not selected)" : "");
			if (r >= 0)
				renamed.v[renamed.n++] =
					(struct folder_event){ .from = l->name, .to = rf->name };
			if (a->unchanged)
				e->stats.folders_skipped++;
			break;
		case PLAN_FOLDER_CONFIRM:
			r = store_sync_folder_set_server_name(e->store, e->account_id, l->id,
							      rf->name);
			id = l->id;
			break;
		case PLAN_FOLDER_DELETE_THERE:
			r = store_sync_folder_set_server_name(e->store, e->account_id, l->id,
							      rf->name);
			log_debug(CAT, "%s: folder %s, deleted here, is %s on the server",
				  e->account_name, l->server_name, rf->name);
			break;
		case PLAN_FOLDER_DELETE:
			if (!crossing) /* else done above */
				r = delete_local(e, l, &deleted);
			break;
		case PLAN_FOLDER_KEEP:
			log_msg(CPMSYNC_LOG_NOTICE, CAT,
				"%s: folder %s is no longer synced (%s), but local changes wait "
				"for "
				"it: kept until they are sent",
				e->account_name, l->name, out_of_view_why(e, l->name));
			break;
		case PLAN_FOLDER_FOLD:
			if (!crossing)
				r = fold_folder(e, l, &locals[a->into]);
			break;
		case PLAN_FOLDER_LOST:
			r = folder_lost(e, l);
			break;
		case PLAN_FOLDER_RECREATE:
			r = store_sync_folder_recreate(e->store, e->account_id, l->id);
			log_msg(CPMSYNC_LOG_NOTICE, CAT,
				"%s: folder %s was deleted on the server while local changes "
				"waited for it: creating it again",
				e->account_name, l->name);
			break;
		case PLAN_FOLDER_SYNC:
			id = l->id;
			break;
		case PLAN_FOLDER_UNCHANGED:
			e->stats.folders_skipped++;
			if (e->keep_folder && l->id == e->keep_folder)
				e->keep_listed = true;
			break;
		case PLAN_FOLDER_REREAD:
			/* As a SELECT reporting another MAILBOXID would (folder_
			 * after_select()), but known before selecting: the QRESYNC
			 * SELECT would name the other folder's UIDs as ours. */
			log_msg(CPMSYNC_LOG_NOTICE, CAT,
				"%s: %s is another folder now (MAILBOXID changed in LIST-STATUS:"
				" %s -> %s): re-reading the folder",
				e->account_name, l->server_name, l->mailboxid, rf->mailboxid);
			r = uidvalidity_reset(e, l->id, l->server_name);
			id = l->id;
			break;
		}
		if (r >= 0 && (a->kind == PLAN_FOLDER_SYNC || a->kind == PLAN_FOLDER_RENAMED ||
			       a->kind == PLAN_FOLDER_CONFIRM || a->kind == PLAN_FOLDER_UNCHANGED ||
			       a->kind == PLAN_FOLDER_REREAD))
			r = store_sync_folder_set_special_use(
				e->store, a->kind == PLAN_FOLDER_UNCHANGED ? l->id : id,
				rf->special_use, rf->subscribed);
		/* The MAILBOXID LIST-STATUS reported is recorded (the SELECT
		 * path records it too; servers without OBJECTID report none). */
		if (r >= 0 && a->kind != PLAN_FOLDER_DELETE && a->kind != PLAN_FOLDER_RECREATE &&
		    a->kind != PLAN_FOLDER_KEEP && a->kind != PLAN_FOLDER_DELETE_THERE &&
		    a->kind != PLAN_FOLDER_LOST && rf->mailboxid &&
		    (a->kind == PLAN_FOLDER_ADD || a->kind == PLAN_FOLDER_REREAD || !l->mailboxid ||
		     !streq(l->mailboxid, rf->mailboxid)))
			r = store_sync_folder_set_mailboxid(
				e->store, a->kind == PLAN_FOLDER_UNCHANGED ? l->id : id,
				rf->mailboxid);
		/* A folder renamed on the server with nothing else changed
		 * (plan_folders()) is not selected: its row's new name is all. */
		if (r >= 0 && id && !rf->p.noselect && a->kind != PLAN_FOLDER_UNCHANGED &&
		    !a->unchanged) {
			uint32_t est = expected_new(
				&rf->p, a->kind == PLAN_FOLDER_ADD || a->kind == PLAN_FOLDER_REREAD
						? NULL
						: l);

			if (est != QUEUE_EST_UNKNOWN)
				e->prog_total += est;
			rank[e->n_queue] =
				strcasecmp(rf->name, "INBOX") == 0 ? RANK_INBOX
				: a->kind == PLAN_FOLDER_SYNC && l->uidvalidity && !l->uidnext
					? RANK_UNFINISHED
					: RANK_OTHER;
			e->queue_est[e->n_queue] = est;
			e->queue[e->n_queue++] = id;
		}
	}
	if (r >= 0)
		r = queue_order(e, rank);
	if (r >= 0)
		r = store_commit(e->store);
	else
		store_rollback(e->store);
	if (r >= 0 && renamed.n) {
		for (size_t i = 0; i < renamed.n; i++)
			rename_key(&renamed.v[i]);
		log_folder_events(e, &renamed);
	}
	if (r >= 0 && deleted.n && delete_keys(&deleted, locals, n_local) >= 0)
		log_folder_events(e, &deleted);
out:
	sync_folders_free(folders, n_local);
	return r;
}

static void list_ids(struct cpmsync_sync *e);

/* may_ask: the LIST-STATUS is in and list_ids() has not run yet. */
static void folders_listed(struct cpmsync_sync *e, bool may_ask)
{
	struct engine_driver *d = e->drv;
	bool ask = false;
	int r;

	may_ask = may_ask && d->ops->has(d, IMAP_CAP_OBJECTID) &&
		  d->ops->has(d, IMAP_CAP_LIST_STATUS);
	r = apply_folder_plan(e, may_ask ? &ask : NULL);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	if (ask) {
		list_ids(e);
		return;
	}
	next_folder(e);
}

static void status_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	/* A NO (folder gone since LIST) only means no pre-check for it. */
	if (res->r != -CPMSYNC_E_SERVER && engine_reply_failed(e, res, "STATUS"))
		return;
	if (e->finished || --e->status_pending > 0)
		return;
	folders_listed(e, false);
}

/*
 * Without LIST-STATUS but with CONDSTORE: one STATUS per folder, all
 * pipelined, is still far cheaper than selecting each (RFC 5819 is the
 * one-command form of the same check).
 */
static void status_each(struct cpmsync_sync *e)
{
	for (size_t i = 0; i < e->n_remote; i++) {
		int r;

		if (e->remote[i].p.noselect)
			continue;
		r = e->drv->ops->status(e->drv, e->remote[i].name, status_done, e);
		if (r < 0) {
			engine_fail(e, r, "out of memory");
			return;
		}
		e->status_pending++;
	}
	if (e->status_pending == 0)
		folders_listed(e, false);
}

static void list_ids_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	e->listing_ids = false;
	if (engine_reply_failed(e, res, "LIST (MAILBOXID)"))
		return;
	folders_listed(e, false);
}

/*
 * RFC 8474: the folders' MAILBOXIDs by LIST-STATUS, so that a folder that
 * is another one under a known name is seen before any SELECT.  A second
 * LIST asking for MAILBOXID with UIDVALIDITY alone: Cyrus 3.6.1 answers
 * MAILBOXID asked together with MESSAGES, UIDNEXT or HIGHESTMODSEQ (in
 * LIST-STATUS or STATUS) with other bytes at each call, not an id (seen:
 * "MAILBOXID (\x03\x1f\x92\\\xe1U)", raw), where alone or with UIDVALIDITY
 * it is right.  Sent after the first LIST, only when its answer leaves a
 * folder's identity in question (ids_wanted()): asked every time, it cost
 * Cyrus 1.7 ms of a 5.8 ms Sync() with nothing new (issue 9).
 */
static void list_ids(struct cpmsync_sync *e)
{
	struct engine_driver *d = e->drv;
	int r;

	log_debug(CAT, "%s: asking for the folders' MAILBOXIDs", e->account_name);
	r = d->ops->list(d, ENGINE_LIST_MAILBOXID, list_ids_done, e);
	if (r < 0) {
		engine_fail(e, r, "out of memory");
		return;
	}
	e->listing_ids = true; /* its LIST responses name the folders seen already */
}

static void start_list(struct cpmsync_sync *e);

/*
 * The folders holding messages here (known_messages, not being deleted by
 * us, in view) that the plan of the LIST just in would delete: their
 * count, and the first one's name in first (size n).  A rename the
 * LIST-STATUS already shows (plan.c) is no deletion.
 */
static int doubted_folders(struct cpmsync_sync *e, size_t *ret, char *first, size_t n)
{
	_cleanup_free_ struct plan_remote_folder *remotes = NULL;
	_cleanup_free_ struct plan_local_folder *locals = NULL;
	_cleanup_free_ struct plan_folder_action *acts = NULL;
	struct sync_folder *folders = NULL;
	bool with_modseq = e->drv->ops->enabled(e->drv, IMAP_CAP_CONDSTORE) ||
			   e->drv->ops->enabled(e->drv, IMAP_CAP_QRESYNC);
	size_t n_local = 0, count = 0;
	int k, r;

	r = load_plan_locals(e, &folders, &n_local, &locals);
	if (r < 0)
		return r;
	remotes = calloc(e->n_remote + 1, sizeof(*remotes));
	acts = calloc(e->n_remote + n_local + 1, sizeof(*acts));
	if (!remotes || !acts) {
		sync_folders_free(folders, n_local);
		return -ENOMEM;
	}
	for (size_t i = 0; i < e->n_remote; i++)
		remotes[i] = e->remote[i].p;
	k = plan_folders(remotes, e->n_remote, locals, n_local, with_modseq, acts);
	for (int i = 0; i < k; i++) {
		const struct plan_local_folder *l = &locals[acts[i].local];

		if (acts[i].kind != PLAN_FOLDER_DELETE || l->removed || l->out_of_view ||
		    !l->known_messages)
			continue;
		if (count++ == 0)
			snprintf(first, n, "%s", l->name);
	}
	sync_folders_free(folders, n_local);
	*ret = count;
	return k < 0 ? k : 0;
}

/*
 * A LIST that lacks folders holding messages here is asked once more
 * before any is removed: Dovecot, its mailbox list index corrupted ("name_id
 * not in index header"), answered one LIST with INBOX and the special
 * folders alone, and that answer taken as the truth dropped 40 folders
 * and their messages here, which the next LIST brought back under new
 * local ids (MessagesRemoved, then MessagesAdded; bodies fetched again).
 * The second LIST, of the same kind, replaces the first: a folder it
 * lacks too is gone (another client's DELETE is still seen in this run),
 * one it lists is kept.  It costs one round trip, only when the first
 * LIST would remove a folder with messages (a server-side rename the
 * LIST-STATUS does not show as one included, MAILBOXIDs asked after it
 * as before); a LIST with no such folder gone costs nothing more.
 * Returns true when the second LIST was sent (list_done() comes again).
 */
static bool list_confirm(struct cpmsync_sync *e)
{
	char first[256] = "";
	size_t doubted = 0;
	int r;

	if (e->list_confirmed) {
		if (e->list_doubted) {
			r = doubted_folders(e, &doubted, first, sizeof(first));
			if (r >= 0 && doubted < e->list_doubted)
				log_msg(CPMSYNC_LOG_NOTICE, CAT,
					"%s: %zu folder%s holding messages, missing from one LIST "
					"answer, listed again: kept",
					e->account_name, e->list_doubted - doubted,
					e->list_doubted - doubted == 1 ? "" : "s");
		}
		return false;
	}
	r = doubted_folders(e, &doubted, first, sizeof(first));
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return true;
	}
	if (!doubted)
		return false;
	log_msg(CPMSYNC_LOG_INFO, CAT,
		"%s: LIST lacks %zu folder%s holding messages here ('%s'%s): listing again "
		"before removing %s",
		e->account_name, doubted, doubted == 1 ? "" : "s", first,
		doubted == 1 ? "" : ", ...", doubted == 1 ? "it" : "them");
	e->list_doubted = doubted;
	e->list_confirmed = true;
	remote_clear(e);
	start_list(e);
	return true;
}

static void list_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct engine_driver *d = e->drv;

	if (engine_reply_failed(e, res, "LIST"))
		return;
	if (list_confirm(e))
		return;
	if (!d->ops->has(d, IMAP_CAP_LIST_STATUS) &&
	    (d->ops->enabled(d, IMAP_CAP_CONDSTORE) || d->ops->enabled(d, IMAP_CAP_QRESYNC))) {
		status_each(e);
		return;
	}
	folders_listed(e, true);
}

/*
 * Local names are relative to the personal namespace (imap-ns.h).  When the
 * prefix they were made relative to is not this connection's (a store made
 * before namespaces were known, whose names in Cyrus's classic namespace
 * are "INBOX/Work"; or a server whose namespace changed), the folders are
 * renamed in the store first, so that LIST finds them under their new
 * names: messages, local ids and queued changes stay.
 */
static int namespace_rebase(struct cpmsync_sync *e)
{
	_cleanup_buf_ struct buf base = BUF_INIT(4096);
	_cleanup_free_ char *stored = NULL;
	const char *shown = "";
	unsigned renamed = 0;
	int r;

	r = e->drv->ops->personal_namespace(e->drv, &base, &shown);
	if (r < 0) {
		engine_fail(e, -CPMSYNC_E_PROTOCOL, "unreadable personal namespace prefix \"%s\"",
			    shown);
		return r;
	}
	r = store_sync_get_namespace(e->store, e->account_id, &stored);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return r;
	}
	if (stored && streq(stored, base.data ? base.data : ""))
		return 0;
	r = store_sync_rebase_namespace(e->store, e->account_id, stored ? stored : "",
					base.data ? base.data : "", &renamed);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return r;
	}
	if (renamed)
		log_msg(CPMSYNC_LOG_INFO, CAT,
			"%s: %u folder(s) renamed to be relative to the personal namespace \"%s\"",
			e->account_name, renamed, shown);
	return 0;
}

static void start_list(struct cpmsync_sync *e)
{
	struct engine_driver *d = e->drv;
	bool modseq =
		d->ops->enabled(d, IMAP_CAP_CONDSTORE) || d->ops->enabled(d, IMAP_CAP_QRESYNC);
	int r;

	if (namespace_rebase(e) < 0)
		return;
	/* One LIST for everything; the patterns are applied locally so that
	 * a folder moving out of (or into) them is noticed. */
	r = d->ops->list(d,
			 !d->ops->has(d, IMAP_CAP_LIST_STATUS) ? ENGINE_LIST_NAMES
			 : modseq			       ? ENGINE_LIST_STATUS_MODSEQ
							       : ENGINE_LIST_STATUS,
			 list_done, e);
	if (r < 0)
		engine_fail(e, r, "out of memory");
}

static bool fast_start(struct cpmsync_sync *e);

/* LIST and every folder, or engine_sync_only()'s folders alone. */
static void start_checked(struct cpmsync_sync *e)
{
	if (!e->n_only) {
		start_list(e);
		return;
	}
	e->queue = TAKE_PTR(e->only);
	e->n_queue = e->n_only;
	e->n_only = 0;
	e->only_run = true;
	if (e->fast != FAST_OFF) {
		/* engine_sync_selected()'s folder alone, or the SELECT way. */
		if (e->n_queue == 1 && e->queue[0] == e->fast_folder && fast_start(e))
			return;
		e->fast = FAST_OFF;
		held_drop(e, "the folder is selected again");
	}
	if (e->n_queue == 1)
		log_debug(CAT, "%s: syncing one folder, without LIST", e->account_name);
	else
		log_debug(CAT, "%s: syncing %zu folders, without LIST", e->account_name,
			  e->n_queue);
	next_folder(e);
}

static void start_ident(struct cpmsync_sync *e)
{
	engine_ident_check(e, start_checked);
}

/* The server first (engine-ident.c): nothing of it goes into a store
 * whose copy is of another, and no change goes there; a new host name of
 * the same server keeps the copy. */
static void start_run(struct cpmsync_sync *e)
{
	engine_ident_host(e, start_ident);
}

void engine_event_closed(struct cpmsync_sync *e, int r, const char *reason)
{
	if (e->finished)
		return;
	if (e->logging_out) {
		engine_finish(e);
		return;
	}
	engine_fail(e, r < 0 ? r : -CPMSYNC_E_DISCONNECTED, "%s",
		    reason ? reason : cpmsync_strerror(r < 0 ? r : -CPMSYNC_E_DISCONNECTED));
}

void engine_event_error(struct cpmsync_sync *e, int r, const char *reason)
{
	engine_fail(e, r, "%s", reason);
}

void engine_event_ready(struct cpmsync_sync *e)
{
	if (e->finished)
		return;
	if (e->logging_out) {
		engine_event_closed(e, 0, NULL);
		return;
	}
	log_debug(CAT, "%s: connected", e->account_name);
	start_run(e);
}

/* ------------------------------------------------------------------ */
/* One folder */

void engine_select(struct cpmsync_sync *e, int64_t folder_id, const char *server_name,
		   engine_next_fn next);

typedef void (*select_refused_fn)(struct cpmsync_sync *e, const struct engine_reply *res);

struct select_ctx {
	struct cpmsync_sync *e;
	engine_next_fn next;
	select_refused_fn refused; /* the server said NO: go on without it */
	int64_t id;
	char *name;
	bool pull; /* one of the pull's (counted in e->pull_cmds) */
};

static int replay_folder_same(struct cpmsync_sync *e, int64_t id, const char *name);

/*
 * A folder the server refuses to SELECT (no right to read it: Dovecot's
 * [NOPERM] for a folder its ACL lets the user look up only) is skipped,
 * and every full sync tries it again: the warning, at each of them, said
 * the same every few minutes.  Warned once per account, folder and
 * response code while the store is open (the daemon's run), then at
 * debug level.  The text is no part of the key: Dovecot's carries the
 * command's timing.
 */
static void select_refused_log(struct cpmsync_sync *e, const char *name,
			       const struct engine_reply *res)
{
	const char *code = res->code_name ? res->code_name : res->bad ? "BAD" : "NO";
	struct buf key = BUF_INIT(REFUSED_NAME_KEY_MAX);
	bool first = true;

	/* "select\0account\0name\0code" (no part holds a NUL). */
	if (buf_append(&key, "select", 7) == 0 &&
	    buf_append(&key, e->account_name, strlen(e->account_name) + 1) == 0 &&
	    buf_append(&key, name ? name : "", strlen(name ? name : "") + 1) == 0 &&
	    buf_append(&key, code, strlen(code)) == 0)
		first = store_note_once(e->store, key.data, key.len);
	buf_free(&key);
	log_msg(first ? CPMSYNC_LOG_WARNING : CPMSYNC_LOG_DEBUG, CAT,
		"%s: skipping folder %s: the server refuses to select it: %s%s%s%s%s",
		e->account_name, name ? name : "?", res->code_name ? "[" : "",
		res->code_name ? res->code_name : "", res->code_name ? "] " : "",
		res->text ? res->text : "", first ? " (warned once while the store is open)" : "");
}

static void select_done(const struct engine_reply *res, void *userdata)
{
	struct select_ctx *sc = userdata;
	struct cpmsync_sync *e = sc->e;
	engine_next_fn next = sc->next;
	select_refused_fn refused = sc->refused;
	_cleanup_free_ char *name = sc->name;
	int64_t id = sc->id;
	bool pull = sc->pull;
	int r;

	free(sc);
	if (pull && engine_pull_answered(e))
		return;
	e->fetch_kind = FK_NONE;
	/* Refused or failed: no folder is selected, the FETCH sent behind
	 * the SELECT fails too and is no one's. */
	if (res->r != 0 && e->pipe == PIPE_SENT)
		e->pipe = PIPE_DISCARD;
	if (!e->finished && res->r == -CPMSYNC_E_SERVER && refused) {
		/* Deleted since LIST, or no right to read it: the rest of the
		 * account still syncs, and the run does not fail for it (the
		 * refusal is logged, counted, and recorded on the journal rows
		 * that needed the folder). */
		e->selected_id = 0;
		if (engine_tx_tick(e, true) < 0)
			return;
		select_refused_log(e, name, res);
		e->stats.folders_refused++;
		if (res->code == IMAP_CODE_NONEXISTENT)
			e->stats.folders_gone++;
		refused(e, res);
		return;
	}
	if (engine_reply_failed(e, res, "SELECT"))
		return;
	/* The replay: only a folder not shown to be another than the one the
	 * store has (after a pull that stopped, only one known to be it). */
	if (!pull && (r = replay_folder_same(e, id, name)) <= 0) {
		e->selected_id = 0;
		if (r == 0)
			engine_replay_skip(e);
		return;
	}
	e->selected_id = id;
	e->selected_read_only = res->code == IMAP_CODE_READ_ONLY;
	free(e->selected_perm);
	e->selected_perm = TAKE_PTR(e->perm_pending);
	e->selected_perm_kw = e->perm_pending_kw;
	e->selected_hms = e->f.nomodseq ? 0 : e->f.hms;
	e->selected_uidnext = e->f.uidnext;
	next(e);
}

/*
 * The replay's SELECT of folder id as name: is it the folder the store
 * knows, so that the UIDs the store holds are the server's?  UID STORE,
 * UID EXPUNGE and UID COPY name UIDs, right only for that folder.  The
 * pull checks it for the folders it syncs; a run that syncs some folders
 * alone (news by IDLE or NOTIFY) replays the journal of every folder,
 * and another client may have deleted one and made another under its
 * name since its last sync (RFC 3501 2.3.1.1: another UIDVALIDITY), or
 * between the pull and the replay.  Sent there, a UID EXPUNGE removed
 * messages of the other folder.  So the SELECT's answer is compared with
 * the store (plan_folder_identity(): UIDVALIDITY, MAILBOXID, HIGHESTMODSEQ
 * or UIDNEXT gone down).  After a pull that stopped (pull_stop()) also a
 * folder whose re-read is not finished, or whose UIDVALIDITY is not known
 * while it holds UIDs, counts as not shown to be it.
 * 1: it is (or nothing says otherwise); 0: not (logged, counted in
 * stats.folders_waiting: its rows stay queued for its next sync, a full
 * one: a LIST shows the folder made again, NOTIFY's MailboxName event or
 * the poll brings it);
 * < 0: the store failed (the run with it).
 */
static int replay_folder_same(struct cpmsync_sync *e, int64_t id, const char *name)
{
	struct sync_folder sf = { 0 };
	uint32_t max_uid = 0, rematch = 0;
	const char *why = NULL;
	int r;

	r = store_sync_folder_get(e->store, id, &sf);
	if (r >= 0)
		r = store_sync_folder_counts(e->store, id, &max_uid, &rematch);
	if (r < 0) {
		sync_folder_free_contents(&sf);
		engine_fail(e, r, "store: %s", store_error(e->store));
		return r;
	}
	if (e->pull_r && rematch) {
		why = "its re-read is not finished";
	} else if (!sf.uidvalidity || !e->f.uidvalidity) {
		if (e->pull_r && max_uid)
			why = "its UIDVALIDITY is not known";
	} else {
		const struct plan_identity_in in = {
			.local_uidvalidity = sf.uidvalidity,
			.local_uidnext = sf.uidnext,
			.local_highestmodseq = sf.highestmodseq,
			.local_mailboxid = sf.mailboxid,
			.uidvalidity = e->f.uidvalidity,
			.uidnext = e->f.uidnext,
			.highestmodseq = e->f.nomodseq ? 0 : e->f.hms,
			.mailboxid = e->f.mailboxid,
		};
		enum plan_identity identity = plan_folder_identity(&in);

		if (identity != PLAN_IDENTITY_SAME)
			why = plan_identity_name(identity);
	}
	sync_folder_free_contents(&sf);
	if (!why)
		return 1;
	e->stats.folders_waiting++;
	log_msg(CPMSYNC_LOG_WARNING, CAT,
		"%s: the local changes of %s wait for its sync: it may not be the folder the"
		" store knows (%s)",
		e->account_name, name ? name : "?", why);
	return 0;
}

/* Sends SELECT; with QRESYNC parameters when f->mode says so. */
static void send_select(struct cpmsync_sync *e, int64_t id, const char *server_name,
			enum plan_mode mode, engine_next_fn next, select_refused_fn refused)
{
	struct engine_driver *d = e->drv;
	struct engine_select_params p = {
		.condstore = d->ops->enabled(d, IMAP_CAP_QRESYNC) ||
			     d->ops->enabled(d, IMAP_CAP_CONDSTORE),
		.qresync = mode == PLAN_MODE_QRESYNC,
		.uidvalidity = e->f.local_uidvalidity,
		.modseq = e->f.local_hms,
	};
	char bounds[2 * 10 + 2];
	uint32_t lo = 0, hi = 0;
	struct select_ctx *sc;
	int r;

	e->keep_lost = true; /* another folder, or none if refused */
	sc = calloc(1, sizeof(*sc));
	if (!sc) {
		engine_fail(e, -ENOMEM, "out of memory");
		return;
	}
	*sc = (struct select_ctx){ e, next, refused, id, strdup(server_name), !e->replay };
	/* Another SELECT (replay): the fast run's folder is no longer the
	 * selected one as the session left it. */
	if (e->fast == FAST_CURRENT)
		e->fast = FAST_STALE;
	held_drop(e, "another folder is selected");
	/* What the untagged responses of this SELECT will tell. */
	e->f.uidvalidity = e->f.uidnext = e->f.exists = 0;
	e->f.hms = 0;
	e->f.nomodseq = false;
	e->f.mailboxid[0] = '\0';
	free(TAKE_PTR(e->perm_pending));
	/*
	 * known-uids: the lowest to the highest UID the store holds.  It
	 * narrows VANISHED to what the store can have; the server's default
	 * (1:UIDNEXT-1) is correct too, and so is a UID inside the range the
	 * store no longer has (reported VANISHED, nothing to remove).  The
	 * exact set took a walk of every UID of the folder at every QRESYNC
	 * SELECT (16.3 M of the 91.5 M instructions of a 1%-flags run at
	 * 20,000 messages) and was sent only when it fitted in a command.
	 */
	if (p.qresync && store_sync_uid_bounds(e->store, id, &lo, &hi) >= 0 && hi > 0) {
		if (lo == hi)
			snprintf(bounds, sizeof(bounds), "%u", (unsigned)hi);
		else
			snprintf(bounds, sizeof(bounds), "%u:%u", (unsigned)lo, (unsigned)hi);
		p.known_uids = bounds;
	}
	/* FETCH/VANISHED during a QRESYNC SELECT apply to this folder. */
	e->selected_id = id;
	e->fetch_kind = FK_FLAGS;
	e->f.mode = mode;
	r = d->ops->select(d, server_name, &p, select_done, sc);
	if (r < 0) {
		free(sc->name);
		free(sc);
		engine_fail(e, r, "out of memory");
		return;
	}
	if (!e->replay)
		e->pull_cmds++;
}

void engine_select(struct cpmsync_sync *e, int64_t folder_id, const char *server_name,
		   engine_next_fn next)
{
	if (e->selected_id == folder_id) {
		next(e);
		return;
	}
	e->f.local_uidvalidity = 0;
	send_select(e, folder_id, server_name, PLAN_MODE_PLAIN, next, e->select_refused);
}

static void folder_after_select(struct cpmsync_sync *e);
static void next_folder(struct cpmsync_sync *e);
static void new_items(const struct cpmsync_sync *e, bool modseq, char *items, size_t size);
static void fetch_new_done(const struct engine_reply *res, void *userdata);

/*
 * Can the UID FETCH of the new messages go right behind this folder's
 * QRESYNC SELECT?  What the run sends after the SELECT's answer depends on
 * that answer: the same UIDVALIDITY (and MAILBOXID, HIGHESTMODSEQ not
 * lower, EXISTS fitting what is known), or it is read again from UID 1;
 * HIGHESTMODSEQ (NOMODSEQ: no MODSEQ item, a flags pass first); UIDNEXT
 * above the stored one, or no such FETCH at all.  Only when a STATUS of
 * this run (LIST-STATUS or STATUS) showed the stored UIDVALIDITY and more
 * UIDs than stored is the FETCH known to be wanted (UIDNEXT does not go
 * down under one UIDVALIDITY); the rest the answer confirms
 * (folder_after_select()), or the FETCH is discarded.
 */
static bool folder_pipe_new(struct cpmsync_sync *e)
{
	const struct remote_folder *rf;

	if (e->f.mode != PLAN_MODE_QRESYNC || e->pipe != PIPE_NONE || !e->f.local_uidvalidity ||
	    !e->f.local_hms || !e->f.local_uidnext)
		return false;
	rf = remote_find(e, e->f.server_name);
	if (!rf || !rf->p.has_status || rf->p.uidvalidity != e->f.local_uidvalidity ||
	    rf->p.uidnext <= e->f.local_uidnext)
		return false;
	/* Another MAILBOXID already: a re-read, from UID 1. */
	return !rf->mailboxid || !e->f.local_mailboxid[0] ||
	       streq(rf->mailboxid, e->f.local_mailboxid);
}

static void pipe_new_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	int state = e->pipe;

	e->pipe = PIPE_NONE;
	if (state == PIPE_TAKEN) {
		fetch_new_done(res, userdata); /* counts as its answer */
		return;
	}
	if (engine_pull_answered(e) || e->finished)
		return;
	/* Discarded: a refusal is expected (no folder selected after a
	 * refused SELECT); a lost connection is not. */
	if (res->r != -CPMSYNC_E_SERVER && engine_reply_failed(e, res, "UID FETCH (new messages)"))
		return;
	if (e->pipe_wait) {
		e->pipe_wait = false;
		e->fetch_kind = FK_NONE;
		folder_after_select(e);
	}
}

/* The run's UID FETCH of the new messages (folder_fetch_new()), sent now. */
static void send_pipe_new(struct cpmsync_sync *e)
{
	const struct engine_fetch_params p = { 0 };
	char set[32], items[256];
	int r;

	snprintf(set, sizeof(set), "%u:*", e->f.local_uidnext);
	new_items(e, true, items, sizeof(items));
	r = e->drv->ops->fetch_ext(e->drv, set, items, &p, pipe_new_done, e);
	if (r < 0) {
		engine_fail(e, r, "out of memory");
		return;
	}
	e->pull_cmds++;
	e->pipe = PIPE_SENT;
	e->pipe_wait = false;
	e->pipe_from = e->f.local_uidnext;
}

/* A folder the server will not let us select is skipped (select_done()). */
static void folder_select_refused(struct cpmsync_sync *e, const struct engine_reply *res)
{
	(void)res;
	engine_ident_pull_reset(e);
	next_folder(e);
}

/* The folder's SELECT is answered: checked (engine-ident.c), then
 * folder_after_select(). */
static void folder_selected(struct cpmsync_sync *e)
{
	engine_ident_pull_selected(e, folder_identity(e, false, 0), folder_after_select);
}

/* Did a STATUS of this run show the folder e->f with the stored
 * UIDVALIDITY and news (more UIDs, another HIGHESTMODSEQ)? */
static bool folder_news_shown(struct cpmsync_sync *e)
{
	const struct remote_folder *rf = remote_find(e, e->f.server_name);

	return rf && rf->p.has_status && rf->p.uidvalidity == e->f.local_uidvalidity &&
	       (rf->p.uidnext != e->f.local_uidnext ||
		(rf->p.highestmodseq && rf->p.highestmodseq != e->f.local_hms));
}

/* e->f for the store's folder sf (its contents taken and freed). */
static void folder_ctx_load(struct cpmsync_sync *e, struct sync_folder *sf, uint32_t max_uid)
{
	free(e->f.server_name);
	rangeset_clear(&e->f.present);
	rangeset_clear(&e->f.set);
	rangeset_clear(&e->f.ann_uids);
	rangeset_clear(&e->f.too_long);
	e->f = (struct folder_ctx){
		.id = sf->id,
		.server_name = TAKE_PTR(sf->server_name),
		.local_uidvalidity = sf->uidvalidity,
		/* Unknown after an interrupted first sync: carry on above
		 * what we already have instead of fetching it again. */
		.local_uidnext = sf->uidnext ? sf->uidnext : max_uid + 1,
		.local_hms = sf->highestmodseq,
		.local_body_limit = sf->body_limit,
		.local_known = max_uid ? 1 : 0, /* only "any?" matters for the mode */
		.present = e->f.present,
		.set = e->f.set,
		.ann_uids = e->f.ann_uids,
		.too_long = e->f.too_long,
	};
	if (sf->mailboxid)
		snprintf(e->f.local_mailboxid, sizeof(e->f.local_mailboxid), "%s", sf->mailboxid);
	sync_folder_free_contents(sf);
}

static void next_folder(struct cpmsync_sync *e)
{
	struct sync_folder sf;
	uint32_t max_uid = 0, rematch = 0;
	bool qresync, condstore;
	int r;

	if (e->finished)
		return;
	e->pull_folders = true;
	if (engine_tx_tick_folder(e, e->queue_pos >= e->n_queue) < 0)
		return;
	if (e->queue_pos >= e->n_queue) {
		engine_replay_start(e);
		return;
	}
	r = store_sync_folder_get(e->store, e->queue[e->queue_pos++], &sf);
	if (r == -CPMSYNC_E_NOT_FOUND && e->only_run) {
		/* engine_sync_only()'s folder, gone from the store since it
		 * was asked for (deleted here meanwhile): nothing to sync. */
		next_folder(e);
		return;
	}
	if (r >= 0)
		r = store_sync_folder_counts(e->store, sf.id, &max_uid, &rematch);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	folder_ctx_load(e, &sf, max_uid);
	if (!e->f.server_name) {
		next_folder(e);
		return;
	}
	qresync = e->drv->ops->enabled(e->drv, IMAP_CAP_QRESYNC);
	condstore = e->drv->ops->enabled(e->drv, IMAP_CAP_CONDSTORE);
	e->f.mode = plan_select_mode(qresync, condstore, e->f.local_uidvalidity, e->f.local_hms,
				     e->f.local_known);
	/* A re-read after a UIDVALIDITY change was interrupted: finish it
	 * (only a full read can re-match or drop those rows). */
	if (rematch)
		e->f.mode = PLAN_MODE_INITIAL;
	log_debug(CAT, "%s: syncing %s (%s)", e->account_name, e->f.server_name,
		  plan_mode_name(e->f.mode));
	account_progress(e, false, false);
	e->f.in_select = true;
	send_select(e, e->f.id, e->f.server_name, e->f.mode, folder_selected,
		    folder_select_refused);
	/* The check's FETCH, when it goes behind the SELECT, goes alone: a
	 * server may answer pipelined FETCHes interleaved (Dovecot 2.3 sent
	 * the new messages' before the check's OK), and until the check's
	 * answer nothing of the folder can be taken as the store's. */
	if (!e->finished)
		engine_ident_pull_start(e, folder_news_shown(e));
	if (!e->finished && !e->pull_ident.sent && folder_pipe_new(e))
		send_pipe_new(e);
}

/* A UID FETCH over a range, with items, CHANGEDSINCE changedsince (0:
 * none); fetch_kind says what its FETCHes mean. */
static void send_fetch(struct cpmsync_sync *e, const char *set, const char *items,
		       uint64_t changedsince, enum fetch_kind kind, engine_reply_fn cb)
{
	const struct engine_fetch_params p = {
		.changedsince = changedsince,
		/* only bodies up to sync_bodies were asked for */
		.max_literal = kind == FK_BODY ? e->body_limit : 0,
	};
	int r;

	r = e->drv->ops->fetch_ext(e->drv, set, items, &p, cb, e);
	if (r < 0) {
		engine_fail(e, r, "out of memory");
		return;
	}
	e->pull_cmds++;
	e->fetch_kind = kind;
}

static void expunge_search_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	uint32_t removed = 0;
	int r;

	if (engine_pull_answered(e) || engine_reply_failed(e, res, "UID SEARCH"))
		return;
	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_sync_expunge_missing(e->store, e->f.id, &e->search,
					       e->f.after.new_from_uid, &removed);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	e->stats.messages_removed += removed;
	folder_bodies(e);
}

/* CONDSTORE (and PLAIN after its FLAGS pass): find expunges below the old UIDNEXT. */
static void folder_expunges(struct cpmsync_sync *e)
{
	uint32_t below = e->f.after.new_from_uid, known = 0;
	int r;

	if (e->f.mode != PLAN_MODE_CONDSTORE || below <= 1) {
		folder_bodies(e);
		return;
	}
	r = store_sync_count_uids_below(e->store, e->f.id, below, &known);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	if (!plan_need_expunge_search(e->f.exists, e->f.new_count, known)) {
		folder_bodies(e);
		return;
	}
	rangeset_clear(&e->search);
	r = e->drv->ops->search_upto(e->drv, below - 1, expunge_search_done, e);
	if (r < 0) {
		engine_fail(e, r, "out of memory");
		return;
	}
	e->pull_cmds++;
	e->fetch_kind = FK_NONE;
}

bool engine_event_fetch_too_long(struct cpmsync_sync *e, uint32_t uid)
{
	if (e->finished)
		return false;
	if (e->fetch_kind == FK_DISCARD)
		return true; /* dropped anyway */
	/* Only the new-message FETCH asks for BODYSTRUCTURE (new_items()),
	 * with bodies limited by size: what else makes a line that long is
	 * nothing a FETCH without it avoids. */
	if (e->fetch_kind != FK_NEW || e->f.refetch || e->body_limit == UINT64_MAX)
		return false;
	if (uid < e->f.after.new_from_uid)
		return true; /* a known one ("n:*" above the last): not used */
	if (rangeset_add(&e->f.too_long, uid) < 0)
		return false;
	log_msg(CPMSYNC_LOG_NOTICE, CAT,
		"%s: %s: UID %u: the server's FETCH response is over the %zu-byte line limit"
		" (the BODYSTRUCTURE of a message with very many MIME parts):"
		" fetched again without BODYSTRUCTURE",
		e->account_name, e->f.server_name, uid, imap_parser_default_limits.max_line);
	return true;
}

static bool refetch_too_long(struct cpmsync_sync *e, void (*next)(struct cpmsync_sync *e));

static void refetch_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	void (*next)(struct cpmsync_sync * e) = e->f.refetch_next;

	e->fetch_kind = FK_NONE;
	e->f.refetch = false;
	if (engine_reply_failed(e, res, "UID FETCH (new messages, without BODYSTRUCTURE)"))
		return;
	if (refetch_too_long(e, next))
		return;
	next(e);
}

/* The new messages engine_event_fetch_too_long() took, fetched again
 * with every item of new_items() but BODYSTRUCTURE (the store keeps
 * them without one), then next(e).  false: none, nothing sent. */
static bool refetch_too_long(struct cpmsync_sync *e, void (*next)(struct cpmsync_sync *e))
{
	struct buf set = BUF_INIT(ENGINE_SET_BYTES + 64);
	char items[256];
	size_t pos = 0;
	int r;

	if (rangeset_empty(&e->f.too_long))
		return false;
	r = imap_seqset_format(&e->f.too_long, &pos, &set, ENGINE_SET_BYTES);
	if (r < 0) {
		buf_free(&set);
		engine_fail(e, r, "out of memory");
		return true;
	}
	/* What did not fit in ENGINE_SET_BYTES waits for the next pass. */
	if (pos > 0)
		(void)rangeset_remove_range(&e->f.too_long, e->f.too_long.r[0].lo,
					    e->f.too_long.r[pos - 1].hi);
	snprintf(items, sizeof(items), "UID FLAGS INTERNALDATE RFC822.SIZE%s%s BODY.PEEK[HEADER]",
		 e->selected_hms ? " MODSEQ" : "",
		 e->drv->ops->has(e->drv, IMAP_CAP_OBJECTID) ? " EMAILID THREADID" : "");
	e->f.refetch = true;
	e->f.refetch_next = next;
	send_fetch(e, set.data, items, 0, FK_NEW, refetch_done);
	buf_free(&set);
	return true;
}

static void fetch_new_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	if (engine_pull_answered(e))
		return;
	e->fetch_kind = FK_NONE;
	if (engine_reply_failed(e, res, "UID FETCH (new messages)"))
		return;
	if (refetch_too_long(e, folder_expunges))
		return;
	folder_expunges(e);
}

/* The items of a new message. */
static void new_items(const struct cpmsync_sync *e, bool modseq, char *items, size_t size)
{
	char body[64];

	/* With every body wanted, one pass: the header is read from the
	 * start of BODY[].  Otherwise the header now, bodies by size later.
	 * At most the literal cap of a body: a larger one comes cut short,
	 * and a body shorter than RFC822.SIZE is not kept (fetch_new()),
	 * where a whole one would drop the connection, for every run. */
	snprintf(body, sizeof(body), "BODY.PEEK[]<0.%llu>",
		 (unsigned long long)imap_max_body_literal());
	snprintf(items, size, "UID FLAGS INTERNALDATE RFC822.SIZE%s%s %s", modseq ? " MODSEQ" : "",
		 e->drv->ops->has(e->drv, IMAP_CAP_OBJECTID) ? " EMAILID THREADID" : "",
		 e->body_limit == UINT64_MAX ? body : "BODYSTRUCTURE BODY.PEEK[HEADER]");
}

static void folder_fetch_new(struct cpmsync_sync *e)
{
	char set[32], items[256];
	bool modseq = e->selected_hms != 0;

	if (!e->f.after.fetch_new) {
		folder_expunges(e);
		return;
	}
	if (e->pipe == PIPE_TAKEN) {
		/* Sent behind the SELECT already: its data comes next. */
		e->fetch_kind = FK_NEW;
		return;
	}
	snprintf(set, sizeof(set), "%u:*", e->f.after.new_from_uid);
	new_items(e, modseq, items, sizeof(items));
	send_fetch(e, set, items, 0, FK_NEW, fetch_new_done);
}

static void flags_pass_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	uint32_t removed = 0;
	int r;

	if (engine_pull_answered(e))
		return;
	e->fetch_kind = FK_NONE;
	if (engine_reply_failed(e, res, "UID FETCH (flags)"))
		return;
	if (e->f.mode == PLAN_MODE_PLAIN) {
		r = engine_tx_begin(e);
		if (r >= 0)
			r = store_sync_expunge_missing(e->store, e->f.id, &e->f.present,
						       e->f.after.new_from_uid, &removed);
		if (r < 0) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return;
		}
		e->stats.messages_removed += removed;
	}
	folder_fetch_new(e);
}

static void folder_after_select(struct cpmsync_sync *e)
{
	/* With QRESYNC every expunge of a known UID was just reported:
	 * what is still known must fit in EXISTS. */
	bool complete = e->f.mode == PLAN_MODE_QRESYNC && !e->f.nomodseq;
	enum plan_identity identity;
	uint32_t known = 0;
	char set[32];
	int r;

	if (complete) {
		r = store_sync_count_uids_below(e->store, e->f.id, e->f.local_uidnext, &known);
		if (r < 0) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return;
		}
	}
	identity = folder_identity(e, complete, known);
	plan_after_select(e->f.mode, identity, e->f.local_uidnext, e->f.uidnext, e->f.nomodseq,
			  &e->f.after);
	/* Without a LIST-STATUS, the folder's share of the account's
	 * progress is known now. */
	if (e->queue_pos > 0 &&
	    (!e->queue_est || e->queue_est[e->queue_pos - 1] == QUEUE_EST_UNKNOWN)) {
		uint32_t est = e->f.after.mode == PLAN_MODE_INITIAL ? e->f.exists
			       : e->f.uidnext > e->f.after.new_from_uid
				       ? MIN(e->f.uidnext - e->f.after.new_from_uid, e->f.exists)
				       : 0;

		if (e->queue_est)
			e->queue_est[e->queue_pos - 1] = est;
		e->prog_total += est;
	}
	if (e->pipe == PIPE_SENT) {
		if (e->f.after.reread || e->f.after.mode != PLAN_MODE_QRESYNC ||
		    !e->f.after.fetch_new || e->f.after.new_from_uid != e->pipe_from ||
		    !e->selected_hms) {
			/* Not the FETCH this answer calls for: its data is
			 * dropped (of another folder maybe: in_select stays,
			 * so no VANISHED is applied either), and the sync
			 * goes on from its reply. */
			log_debug(CAT, "%s: %s: the UID FETCH sent behind the SELECT is discarded",
				  e->account_name, e->f.server_name);
			e->pipe = PIPE_DISCARD;
			e->pipe_wait = true;
			e->fetch_kind = FK_DISCARD;
			return;
		}
		e->pipe = PIPE_TAKEN;
	}
	e->f.in_select = false;
	if (e->f.after.reread) {
		log_msg(CPMSYNC_LOG_NOTICE, CAT,
			"%s: %s is another folder now (%s: UIDVALIDITY %u -> %u, UIDNEXT %u -> %u,"
			" HIGHESTMODSEQ %llu -> %llu, EXISTS %u for %u known, MAILBOXID %s -> %s):"
			" re-reading the folder",
			e->account_name, e->f.server_name, plan_identity_name(identity),
			e->f.local_uidvalidity, e->f.uidvalidity, e->f.local_uidnext, e->f.uidnext,
			(unsigned long long)e->f.local_hms, (unsigned long long)e->f.hms,
			e->f.exists, known, e->f.local_mailboxid[0] ? e->f.local_mailboxid : "-",
			e->f.mailboxid[0] ? e->f.mailboxid : "-");
		r = engine_tx_begin(e);
		if (r >= 0)
			r = uidvalidity_reset(e, e->f.id, e->f.server_name);
		if (r < 0) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return;
		}
	}
	/* UIDVALIDITY and MAILBOXID can be recorded at once (HIGHESTMODSEQ
	 * and UIDNEXT only at the end): an interrupted first sync then
	 * resumes, an interrupted re-read too (its rows wait for re-matching). */
	if (e->f.uidvalidity && (e->f.after.reread || e->f.uidvalidity != e->f.local_uidvalidity)) {
		r = engine_tx_begin(e);
		if (r >= 0)
			r = store_sync_folder_set_state(e->store, e->f.id, e->f.uidvalidity, 0, 0);
		if (r < 0) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return;
		}
	}
	if (e->f.mailboxid[0] &&
	    (e->f.after.reread || strcmp(e->f.mailboxid, e->f.local_mailboxid) != 0)) {
		r = engine_tx_begin(e);
		if (r >= 0)
			r = store_sync_folder_set_mailboxid(e->store, e->f.id, e->f.mailboxid);
		if (r < 0) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return;
		}
	}
	e->f.mode = e->f.after.mode;
	if (e->f.after.new_from_uid <= 1 ||
	    (e->f.mode != PLAN_MODE_CONDSTORE && e->f.mode != PLAN_MODE_PLAIN)) {
		folder_fetch_new(e);
		return;
	}
	snprintf(set, sizeof(set), "1:%u", e->f.after.new_from_uid - 1);
	if (e->f.mode == PLAN_MODE_CONDSTORE) {
		send_fetch(e, set, "UID FLAGS", e->f.local_hms, FK_FLAGS, flags_pass_done);
	} else {
		rangeset_clear(&e->f.present);
		send_fetch(e, set, "UID FLAGS", 0, FK_FLAGS, flags_pass_done);
	}
}

static void bodies_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	if (engine_pull_answered(e))
		return;
	e->fetch_kind = FK_NONE;
	if (engine_reply_failed(e, res, "UID FETCH (bodies)"))
		return;
	if (e->f.set_pos < e->f.set.n) {
		folder_bodies(e);
		return;
	}
	folder_finish(e);
}

static void folder_bodies(struct cpmsync_sync *e)
{
	struct buf set = BUF_INIT(ENGINE_SET_BYTES + 64);
	int r;

	if (e->body_limit == 0) {
		folder_finish(e);
		return;
	}
	if (e->fetch_kind != FK_BODY) {
		/* First call: which bodies are missing (after a size-limited
		 * header pass, an interrupted run, or a policy change). */
		/* After a QRESYNC/CONDSTORE resync only the new messages can
		 * lack a body (the old ones were complete when HIGHESTMODSEQ
		 * was committed): no walk over the whole folder. */
		bool incremental =
			(e->f.mode == PLAN_MODE_QRESYNC || e->f.mode == PLAN_MODE_CONDSTORE) &&
			e->f.local_body_limit >= e->body_limit;
		uint32_t from = incremental ? e->f.after.new_from_uid : 1;

		/* Not one over the literal cap: it could not come whole. */
		r = store_sync_bodies_wanted(e->store, e->f.id, from,
					     MIN(e->body_limit, imap_max_body_literal()),
					     &e->f.set);
		if (r < 0) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return;
		}
		e->f.set_pos = 0;
		if (e->f.set.n == 0) {
			folder_finish(e);
			return;
		}
	}
	r = imap_seqset_format(&e->f.set, &e->f.set_pos, &set, ENGINE_SET_BYTES);
	if (r < 0) {
		buf_free(&set);
		engine_fail(e, r, "out of memory");
		return;
	}
	send_fetch(e, set.data, "UID BODY.PEEK[]", 0, FK_BODY, bodies_done);
	buf_free(&set);
}

/*
 * The end of a run without SELECT: does the store hold as many of the
 * folder's messages as the server counts (EXISTS, less what VANISHED
 * since)?  A message that came after the UID FETCH of the new ones, or
 * anything else missed, makes it differ: the session then SELECTs the
 * folder and syncs it the full way (the state recorded here is safe in
 * any case: UIDNEXT from what was fetched, HIGHESTMODSEQ from one
 * complete CHANGEDSINCE answer).
 */
static int fast_check(struct cpmsync_sync *e)
{
	uint32_t known = 0;
	int r;

	r = store_sync_count_uids_below(e->store, e->f.id, UINT32_MAX, &known);
	if (r < 0)
		return r;
	if (known == e->fast_exists) {
		e->fast = FAST_CURRENT;
		return 0;
	}
	log_debug(CAT, "%s: %s: %u messages stored, the server counts %u: to be selected again",
		  e->account_name, e->f.server_name, known, e->fast_exists);
	e->fast = FAST_STALE;
	return 0;
}

static void folder_finish(struct cpmsync_sync *e)
{
	uint32_t uidnext = e->f.uidnext, removed = 0;
	uint64_t hms = e->f.nomodseq ? 0 : e->f.hms;
	int r;

	/* Nothing of the folder is the store's before its check's answer. */
	if (engine_ident_fast_wait(e, folder_finish))
		return;
	e->fetch_kind = FK_NONE;
	if (engine_annotation_refresh(e, folder_finish))
		return;
	if (e->f.max_uid_seen >= uidnext)
		uidnext = e->f.max_uid_seen + 1;
	r = engine_tx_begin(e);
	if (r >= 0 && e->fast == FAST_FETCHING)
		r = fast_check(e);
	if (r >= 0 && e->f.after.mode == PLAN_MODE_INITIAL) {
		_cleanup_free_ char *dropped = NULL;
		uint32_t n = 0;

		/* Changes to messages the re-read did not find: the server
		 * has them no more, and they go with them, said. */
		r = store_sync_unmatched_changes(e->store, e->f.id, &n, &dropped);
		if (r >= 0 && n > 0)
			log_msg(CPMSYNC_LOG_WARNING, CAT,
				"%s: %s: %u local change%s to messages the server no longer has"
				" went with them: %.400s",
				e->account_name, e->f.server_name, (unsigned)n, n == 1 ? "" : "s",
				dropped ? dropped : "");
		if (r >= 0)
			r = store_sync_drop_unmatched(e->store, e->f.id, &removed);
		e->stats.messages_removed += removed;
	}
	/* The state covering everything above, in the same transaction. */
	if (r >= 0)
		r = store_sync_folder_set_state(e->store, e->f.id, e->f.uidvalidity, uidnext, hms);
	if (r >= 0)
		r = store_sync_folder_set_body_limit(e->store, e->f.id, e->body_limit);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	/* Counted once its state is written (undone with it: batch_uncount(),
	 * keep_whole()), not when it is begun: a run that stops in a folder
	 * did not sync it. */
	e->stats.folders_synced++;
	if (engine_tx_tick_folder(e, e->queue_pos >= e->n_queue) < 0)
		return;
	/* Read whole from this server: the UIDs the store holds are its. */
	if (e->f.after.mode == PLAN_MODE_INITIAL && e->fast == FAST_OFF)
		engine_ident_mark_folder(e, e->f.id);
	if (e->f.new_count)
		engine_progress(e, e->f.server_name, e->f.new_count, e->f.new_count);
	e->prog_done += e->f.new_count;
	next_folder(e);
}

/* ------------------------------------------------------------------ */
/* The selected folder without SELECT (engine_sync_selected()) */

/*
 * One of the fast run's UID FETCHes was refused: Cyrus refuses every
 * command on a selected mailbox another client renamed (or deleted), after
 * reporting all its messages VANISHED.  Failing the run dropped the
 * connection and logged in again to learn that from LIST.  Instead the
 * folder is left as the store has it, the run goes on (the journal), and
 * the session asks for a full sync on this connection
 * (engine_selected_gone()).  The other FETCH, pipelined, is answered
 * first (fast_flags_done()).
 */
static void fast_refused(struct cpmsync_sync *e, const struct engine_reply *res, const char *what)
{
	/* The folder's check unanswered: what the run took of it is
	 * dropped, and the check with it (its answer tells nothing now). */
	if (e->pull_ident.fast && e->pull_ident.x.uid) {
		batch_drop(e);
		engine_ident_pull_reset(e);
	}
	selected_refused(e, what, res->text);
	held_drop(e, "the folder refused the run");
	e->fast = FAST_OFF;
	e->selected_id = 0;
	e->fetch_kind = FK_NONE;
}

static void fast_flags_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	if (engine_pull_answered(e))
		return;
	e->fetch_kind = FK_NONE;
	e->fast_flags = false;
	if (!e->finished && (e->selected_gone || res->r == -CPMSYNC_E_SERVER)) {
		fast_refused(e, res, "UID FETCH (CHANGEDSINCE)");
		/* Nothing of the folder's state is recorded. */
		if (engine_tx_tick(e, true) >= 0)
			next_folder(e);
		return;
	}
	if (engine_reply_failed(e, res, "UID FETCH (CHANGEDSINCE)"))
		return;
	/* RFC 7162 section 6: the largest MODSEQ of an answer covering
	 * every change above the stored value (none: the stored value, as
	 * after an expunge alone, which carries no MODSEQ). */
	if (e->fast_max_modseq > e->f.hms)
		e->f.hms = e->fast_max_modseq;
	if (refetch_too_long(e, folder_bodies))
		return;
	folder_bodies(e);
}

static void fast_new_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	if (engine_pull_answered(e))
		return;
	if (res->r == -CPMSYNC_E_SERVER && !e->finished) {
		fast_refused(e, res, "UID FETCH (new messages)");
		return;
	}
	if (engine_reply_failed(e, res, "UID FETCH (new messages)"))
		return;
	/* The VANISHED held (the IDLE's) were applied as the folder
	 * answered (engine_event_selected_answered()). */
	/* The CHANGEDSINCE FETCH, already sent, answers next. */
	e->fetch_kind = FK_FLAGS;
	e->fast_flags = true;
	e->fast_max_modseq = 0;
	/* The new messages are committed (and signalled) now, or once the
	 * folder's check is answered (engine_ident_fast_start()); the
	 * folder state follows at the end. */
	engine_tx_tick(e, true);
}

/*
 * Starts the run on the selected folder; false: the store cannot take
 * it, the SELECT path goes on.
 */
static bool fast_start(struct cpmsync_sync *e)
{
	struct sync_folder sf;
	uint32_t max_uid = 0, rematch = 0;
	const char *why = NULL;
	char set[32], items[256];
	int r;

	e->pull_folders = true;
	r = store_sync_folder_get(e->store, e->fast_folder, &sf);
	if (r >= 0)
		r = store_sync_folder_counts(e->store, sf.id, &max_uid, &rematch);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return true;
	}
	if (!e->drv->ops->enabled(e->drv, IMAP_CAP_QRESYNC))
		why = "QRESYNC is not enabled";
	else if (!sf.server_name)
		why = "its CREATE is pending";
	else if (sf.uidvalidity != e->fast_uidvalidity)
		why = "its UIDVALIDITY is not the one selected";
	else if (!sf.highestmodseq || !sf.uidnext)
		why = "no HIGHESTMODSEQ or UIDNEXT recorded";
	else if (rematch)
		why = "a re-read is to be finished";
	if (why) {
		log_debug(CAT, "%s: not without SELECT: %s", e->account_name, why);
		sync_folder_free_contents(&sf);
		e->fast = FAST_OFF;
		return false;
	}
	folder_ctx_load(e, &sf, max_uid);
	e->queue_pos = e->n_queue; /* this one */
	e->f.mode = PLAN_MODE_QRESYNC;
	e->f.uidvalidity = e->f.local_uidvalidity;
	e->f.uidnext = e->f.local_uidnext;
	e->f.hms = e->f.local_hms;
	e->f.exists = e->fast_exists;
	e->f.after = (struct plan_after_select){
		.identity = PLAN_IDENTITY_SAME,
		.mode = PLAN_MODE_QRESYNC,
		.fetch_new = true,
		.new_from_uid = e->f.local_uidnext,
	};
	e->selected_id = e->f.id;
	e->selected_hms = e->f.local_hms;
	e->selected_uidnext = e->f.local_uidnext;
	log_debug(CAT, "%s: syncing %s (selected: no SELECT, from UID %u, CHANGEDSINCE %llu)",
		  e->account_name, e->f.server_name, e->f.local_uidnext,
		  (unsigned long long)e->f.local_hms);
	account_progress(e, false, false);
	/* Not checked on this connection yet: the check goes first. */
	engine_ident_fast_start(e);
	if (e->finished)
		return true;
	/* Pipelined: the new messages, then every change above the stored
	 * HIGHESTMODSEQ (the new ones again, their flags only). */
	snprintf(set, sizeof(set), "%u:*", e->f.local_uidnext);
	new_items(e, true, items, sizeof(items));
	send_fetch(e, set, items, 0, FK_NEW, fast_new_done);
	if (e->finished)
		return true;
	r = e->drv->ops->fetch_ext(
		e->drv, "1:*", "UID FLAGS",
		&(struct engine_fetch_params){ .changedsince = e->f.local_hms, .vanished = true },
		fast_flags_done, e);
	if (r < 0)
		engine_fail(e, r, "out of memory");
	else
		e->pull_cmds++;
	return true;
}

/* ------------------------------------------------------------------ */
/* Logout and the public API */

static void held_probe_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	/* engine_event_selected_answered() applied or dropped them. */
	held_drop(e, "the run ends");
	if (res->r != -CPMSYNC_E_SERVER && engine_reply_failed(e, res, "UID FETCH (UID)"))
		return;
	engine_logout(e);
}

/*
 * VANISHED held at the end of the run (engine-internal.h), the folder still
 * selected: one UID FETCH on it tells whether it is still there under its
 * name (OK: they were expunges, applied now) or not (refused: the session
 * lists the folders).  A genuine expunge that came with the answer of the
 * run's last command (an APPEND to another folder) goes within the run,
 * one round trip later.  True: sent, engine_logout() follows its answer.
 */
static bool held_probe(struct cpmsync_sync *e)
{
	char uid[16];
	int r;

	if (rangeset_empty(&e->held_vanished))
		return false;
	if (e->held_id != e->selected_id || e->pull_r) {
		held_drop(e, "their folder is no longer selected");
		return false;
	}
	snprintf(uid, sizeof(uid), "%u", (unsigned)e->held_vanished.r[0].lo);
	r = e->drv->ops->fetch(e->drv, uid, "UID", held_probe_done, e);
	if (r < 0) {
		engine_fail(e, r, "out of memory");
		return true;
	}
	return true;
}

void engine_logout(struct cpmsync_sync *e)
{
	int r;

	if (e->finished)
		return;
	if (held_probe(e))
		return;
	if (engine_tx_tick(e, true) < 0)
		return;
	account_progress(e, false, true);
	/* The time of the last complete sync: not of a pull that stopped. */
	r = e->pull_r ? 0 : store_sync_set_last_sync(e->store, e->account_id, (int64_t)time(NULL));
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	if (e->give_back) {
		/* The connection stays with its owner. */
		engine_finish(e);
		return;
	}
	/* The work is done and committed; engine_event_closed() finishes
	 * once the server answered LOGOUT (or the connection closed). */
	e->logging_out = true;
	e->drv->ops->logout(e->drv);
}

int cpmsync_sync_once(struct cpmsync_loop *loop, struct cpmsync_store *store,
		      const struct cpmsync_account *account, cpmsync_sync_cb_t cb, void *userdata,
		      struct cpmsync_sync **ret)
{
	return engine_sync_once_fd(loop, store, account, -1, cb, userdata, ret);
}

static int engine_new(struct cpmsync_loop *loop, struct cpmsync_store *store,
		      const struct cpmsync_account *account, cpmsync_sync_cb_t cb, void *userdata,
		      struct cpmsync_sync **ret)
{
	struct cpmsync_sync *e;
	size_t np = 0;
	int r;

	if (!loop || !store || !account || !account->name || !account->host || !account->user ||
	    !cb)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->loop = loop;
	e->store = store_from_public(store);
	e->cb = cb;
	e->userdata = userdata;
	e->batch_ms = ENGINE_BATCH_MS;
	e->batch_max_ms = ENGINE_BATCH_MAX_MS;
	e->mark_every = ENGINE_MARK_MESSAGES;
	e->mark_max_bytes = ENGINE_MARK_BYTES;
	e->mark_room_check = true;
	rangeset_init(&e->f.present);
	rangeset_init(&e->f.set);
	rangeset_init(&e->f.ann_uids);
	rangeset_init(&e->f.too_long);
	rangeset_init(&e->search);
	rangeset_init(&e->held_vanished);
	engine_driver_imap_init(&e->imap_drv);
	e->drv = &e->imap_drv.base;
	e->drv->engine = e;
	e->body_limit = plan_body_limit(account->sync_bodies);
	e->account_name = strdup(account->name);
	e->host = strdup(account->host ? account->host : "");
	e->user = strdup(account->user ? account->user : "");
	if (!e->account_name || !e->host || !e->user) {
		r = -ENOMEM;
		goto fail;
	}
	if (account->folders) {
		while (account->folders[np])
			np++;
		e->patterns = calloc(np + 1, sizeof(char *));
		if (!e->patterns) {
			r = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < np; i++) {
			e->patterns[i] = strdup(account->folders[i]);
			if (!e->patterns[i]) {
				r = -ENOMEM;
				goto fail;
			}
		}
	}
	r = store_sync_account(e->store, account->name, &e->account_id);
	if (r < 0)
		goto fail;
	*ret = e;
	return 0;
fail:
	engine_free(e);
	return r;
}

/* Connects on e->drv (fd: as ops->connect() takes it); the run starts at
 * engine_event_ready(), or fails at engine_event_closed() or here. */
static void engine_connect(struct cpmsync_sync *e, int fd)
{
	int r = e->drv->ops->connect(e->drv, fd);

	if (r < 0)
		engine_fail(e, r, "%s",
			    e->drv->ops->error(e->drv)[0] ? e->drv->ops->error(e->drv)
							  : cpmsync_strerror(r));
}

void engine_identity_dropped(const char *name, const char *user, const char *host, const char *was)
{
	log_msg(CPMSYNC_LOG_NOTICE, CAT,
		"%s: the account now names %s@%s, not %s: the local copy of %s is"
		" dropped (no local change waited for it), and synced again",
		name, user, host, was ? was : "?", was ? was : "the old mailbox");
}

int engine_account_identity(struct store *s, int64_t account_id,
			    const struct cpmsync_account *account, char **ret_error)
{
	_cleanup_free_ char *was = NULL;
	int r;

	*ret_error = NULL;
	/* Only the host: the run proves the server the same, or drops the
	 * copy then (engine-ident.c engine_ident_host()). */
	r = store_sync_account_moved(s, account_id, account->host, account->user);
	if (r > 0) {
		log_msg(CPMSYNC_LOG_INFO, CAT,
			"%s: the account now names the host %s: the local copy is kept until the"
			" server there is shown to be the one it is of",
			account->name, account->host);
		return 0;
	}
	r = store_sync_account_identity(s, account_id, account->host, account->user, &was);
	if (r == 1)
		engine_identity_dropped(account->name, account->user, account->host, was);
	if (r >= 0)
		return 0;
	/* The store says what went wrong, whatever the code. */
	if (asprintf(ret_error, "%s",
		     r == -ENOMEM      ? "out of memory"
		     : *store_error(s) ? store_error(s)
				       : cpmsync_strerror(r)) < 0)
		*ret_error = NULL;
	return r;
}

int engine_sync_once_fd(struct cpmsync_loop *loop, struct cpmsync_store *store,
			const struct cpmsync_account *account, int fd, cpmsync_sync_cb_t cb,
			void *userdata, struct cpmsync_sync **ret)
{
	_cleanup_free_ char *why = NULL;
	struct cpmsync_sync *e;
	int r;

	r = engine_new(loop, store, account, cb, userdata, &e);
	if (r < 0)
		return r;
	r = engine_driver_imap_new(&e->imap_drv, loop, account);
	if (r < 0) {
		engine_free(e);
		return r;
	}
	r = engine_account_identity(e->store, e->account_id, account, &why);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		engine_fail(e, r, "%s", why ? why : cpmsync_strerror(r));
		if (ret)
			*ret = e;
		return 0;
	}
	engine_connect(e, fd);
	if (ret)
		*ret = e;
	return 0;
}

static void start_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	(void)src;
	e->start_src = NULL;
	if (e->finished)
		return;
	if (!e->drv->ops->ready(e->drv)) {
		engine_fail(e, -CPMSYNC_E_DISCONNECTED, "the connection is not usable");
		return;
	}
	start_run(e);
}

static void replay_cb(struct cpmsync_loop_source *src, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	(void)src;
	e->start_src = NULL;
	if (!e->finished)
		engine_replay_start(e);
}

/* A run on driver (NULL: the engine's imap_drv) that starts from the
 * loop with start. */
static int start_on(struct cpmsync_loop *loop, struct cpmsync_store *store,
		    const struct cpmsync_account *account, struct engine_driver *driver,
		    cpmsync_loop_cb_t start, cpmsync_sync_cb_t cb, void *userdata,
		    struct cpmsync_sync **ret)
{
	struct cpmsync_sync *e;
	int r;

	r = engine_new(loop, store, account, cb, userdata, &e);
	if (r < 0)
		return r;
	r = cpmsync_loop_defer(loop, start, e, NULL, &e->start_src);
	if (r < 0) {
		engine_free(e);
		return r;
	}
	if (driver) {
		e->drv = driver;
		driver->engine = e;
	}
	*ret = e;
	return 0;
}

int engine_replay_on_driver(struct cpmsync_loop *loop, struct cpmsync_store *store,
			    const struct cpmsync_account *account, struct engine_driver *driver,
			    cpmsync_sync_cb_t cb, void *userdata, struct cpmsync_sync **ret)
{
	struct cpmsync_sync *e;
	int r;

	if (!driver)
		return -EINVAL;
	r = start_on(loop, store, account, driver, replay_cb, cb, userdata, &e);
	if (r >= 0 && ret)
		*ret = e;
	return r;
}

int engine_sync_on_driver(struct cpmsync_loop *loop, struct cpmsync_store *store,
			  const struct cpmsync_account *account, struct engine_driver *driver,
			  cpmsync_sync_cb_t cb, void *userdata, struct cpmsync_sync **ret)
{
	struct cpmsync_sync *e;
	int r;

	if (!driver)
		return -EINVAL;
	r = engine_new(loop, store, account, cb, userdata, &e);
	if (r < 0)
		return r;
	e->drv = driver;
	driver->engine = e;
	engine_connect(e, -1);
	if (ret)
		*ret = e;
	return 0;
}

int engine_sync_on_client_driver(struct cpmsync_loop *loop, struct cpmsync_store *store,
				 const struct cpmsync_account *account,
				 struct engine_driver *driver, cpmsync_sync_cb_t cb, void *userdata,
				 struct cpmsync_sync **ret)
{
	struct cpmsync_sync *e;
	int r;

	if (!driver)
		return -EINVAL;
	r = start_on(loop, store, account, driver, start_cb, cb, userdata, &e);
	if (r < 0)
		return r;
	e->give_back = true;
	if (ret)
		*ret = e;
	return 0;
}

int engine_sync_on_client(struct cpmsync_loop *loop, struct cpmsync_store *store,
			  const struct cpmsync_account *account, struct imap_client **clientp,
			  cpmsync_sync_cb_t cb, void *userdata, struct cpmsync_sync **ret)
{
	struct cpmsync_sync *e;
	int r;

	if (!clientp || !*clientp)
		return -EINVAL;
	r = start_on(loop, store, account, NULL, start_cb, cb, userdata, &e);
	if (r < 0)
		return r;
	engine_driver_imap_adopt(&e->imap_drv, clientp);
	e->give_back = true;
	if (ret)
		*ret = e;
	return 0;
}

int engine_sync_only(struct cpmsync_sync *e, int64_t folder_id)
{
	int64_t *v;

	for (size_t i = 0; i < e->n_only; i++)
		if (e->only[i] == folder_id)
			return 0;
	v = realloc(e->only, (e->n_only + 1) * sizeof(*v));
	if (!v) { /* a full run then: it covers the folders asked for */
		free(e->only);
		e->only = NULL;
		e->n_only = 0;
		return -ENOMEM;
	}
	v[e->n_only++] = folder_id;
	e->only = v;
	return 0;
}

void engine_sync_selected(struct cpmsync_sync *e, int64_t folder_id, uint32_t uidvalidity,
			  uint32_t exists)
{
	if (engine_sync_only(e, folder_id) < 0)
		return; /* a full run (out of memory) */
	e->fast_folder = folder_id;
	e->fast = FAST_FETCHING;
	e->fast_uidvalidity = uidvalidity;
	e->fast_exists = exists;
	/* What IDLE still sends before its answer (VANISHED, FETCH) is
	 * already this folder's. */
	e->selected_id = folder_id;
}

int engine_sync_selected_vanished(struct cpmsync_sync *e, const struct rangeset *uids)
{
	int r = 0;

	if (e->fast == FAST_OFF)
		return 0;
	e->held_id = e->fast_folder;
	for (size_t i = 0; r >= 0 && i < uids->n; i++)
		r = rangeset_add_range(&e->held_vanished, uids->r[i].lo, uids->r[i].hi);
	if (r < 0) {
		/* The SELECT way: its VANISHED (EARLIER) has them. */
		rangeset_free(&e->held_vanished);
		e->fast = FAST_OFF;
	}
	return r;
}

void engine_sync_keep_selected(struct cpmsync_sync *e, int64_t folder_id, uint32_t exists)
{
	if (e->n_only || e->fast != FAST_OFF || folder_id <= 0)
		return;
	e->keep_folder = folder_id;
	e->keep_exists = exists;
}

int engine_selected_state(const struct cpmsync_sync *e, uint32_t *ret_exists)
{
	if (e->selected_gone)
		return 0;
	if (e->fast == FAST_OFF && e->keep_folder && e->keep_listed && !e->keep_lost && e->r == 0 &&
	    !e->stats.ops_replayed && !e->stats.ops_failed) {
		*ret_exists = e->keep_exists;
		return 1;
	}
	if (e->fast == FAST_OFF)
		return 0;
	/* Flags (and annotations) replayed on the still-selected folder
	 * change no count: IDLE again without SELECT.  Any other operation:
	 * SELECT it again. */
	if (e->fast == FAST_CURRENT && e->r == 0 && e->selected_id == e->fast_folder &&
	    !e->replay_not_flags) {
		*ret_exists = e->fast_exists;
		return e->fast_more ? 3 : 1;
	}
	return 2;
}

bool engine_selected_gone(const struct cpmsync_sync *e)
{
	return e->selected_gone;
}

bool engine_replay_needs_list(const struct cpmsync_sync *e)
{
	return e->replay_needs_list;
}

uint64_t engine_work_committed(const struct cpmsync_sync *e)
{
	return e->work_committed;
}

void engine_detach(struct cpmsync_sync *e)
{
	e->cb = NULL;
	e->give_back = false;
}

void cpmsync_sync_cancel(struct cpmsync_sync *sync)
{
	if (!sync)
		return;
	engine_fail(sync, -CPMSYNC_E_CANCELED, "cancelled");
}
