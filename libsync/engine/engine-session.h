/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the session (session.c) needs of the engine: a sync run on the
 * session's connection, and letting go of one.  The engine's internals
 * stay in engine-internal.h.
 */

#include <stdbool.h>
#include <stdint.h>

#include <cpmsync/sync.h>

struct cpmsync_store;
struct cpmsync_sync;
struct imap_client;
struct rangeset;

/*
 * cpmsync_sync_once() on an authenticated connection (*clientp, taken
 * over).  When the run ends with the connection usable (success, or only
 * operations refused), *clientp is set back to it before cb runs, with
 * its callbacks cleared for the caller to set; otherwise the connection
 * is closed and *clientp stays NULL.  clientp must stay valid until cb.
 */
int engine_sync_on_client(struct cpmsync_loop *loop, struct cpmsync_store *store,
			  const struct cpmsync_account *account, struct imap_client **clientp,
			  cpmsync_sync_cb_t cb, void *userdata, struct cpmsync_sync **ret);

/*
 * Before connecting: whether the store's copy of the account is of the
 * server account (host, user) its settings name (store.h
 * store_sync_account_identity()); a copy of another one is dropped when no
 * local change waits for it (and that is logged).  The host alone changed
 * with nothing queued: the copy stays until the run's start proves the
 * server there the same or not (engine-ident.c engine_ident_host()).  < 0: do not sync;
 * *ret_error (free it) says why and what to do.
 */
struct store;
int engine_account_identity(struct store *s, int64_t account_id,
			    const struct cpmsync_account *account, char **ret_error);

/* Progress of the run (folder "": the account as a whole, else that
 * folder; in messages), from now on. */
typedef void (*engine_progress_fn)(void *userdata, const char *folder, uint32_t done,
				   uint32_t total);
void engine_set_progress(struct cpmsync_sync *e, engine_progress_fn fn, void *userdata);

/* Every untagged response the run's connection reads, from now on, before
 * the run looks at it (the session keeps NOTIFY set during a run of the
 * folders NOTIFY named, and reads the events that come meanwhile). */
struct imap_response;
typedef void (*engine_observer_fn)(void *userdata, const struct imap_response *resp);
void engine_set_observer(struct cpmsync_sync *e, engine_observer_fn fn, void *userdata);

/* Before the run starts: sync only this folder (by id), without the LIST
 * of every folder (the push fast paths: news for the folder the session had
 * selected in IDLE, or NOTIFY STATUS events naming folders).  Called again,
 * it adds a folder (once each, in call order).  Each is still SELECTed the
 * normal way (QRESYNC or CONDSTORE, UIDVALIDITY and identity checks), and
 * the journal is replayed after them as in a full run; the other folders
 * wait for the next one.  -ENOMEM: the list is dropped (a full run). */
int engine_sync_only(struct cpmsync_sync *e, int64_t folder_id);

/*
 * The push fast path without SELECT: folder_id is selected on the
 * connection (the session SELECTed it, found it equal to the store, and
 * waited in IDLE), and uidvalidity/exists are what that SELECT and the
 * IDLE since told.  The run sends, pipelined, UID FETCH of the messages
 * from the stored UIDNEXT and UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE
 * <stored HIGHESTMODSEQ> VANISHED) (RFC 7162 section 3.2.6), and records
 * the largest MODSEQ that FETCH reported (each change above the stored
 * value, as of one moment, was in it).  Falls back to the SELECT path of
 * engine_sync_only() when the store cannot take it (UIDVALIDITY differs,
 * no HIGHESTMODSEQ recorded, no QRESYNC, a re-match pending).
 */
void engine_sync_selected(struct cpmsync_sync *e, int64_t folder_id, uint32_t uidvalidity,
			  uint32_t exists);
/*
 * After engine_sync_selected(): VANISHED (not EARLIER) that the server
 * sent in the IDLE on that folder before the run (the session reads them,
 * and counted them in exists).  A server may not report them again in
 * the run's UID FETCH CHANGEDSINCE VANISHED (Cyrus 3.6 does not: it told
 * this session already), so the fast run expunges them from the store
 * itself, once its UID FETCH on the folder is answered OK (Cyrus reports
 * a rename by another client so, then refuses the FETCH: they are then
 * dropped, and the folder list decides); when the run falls back
 * to SELECT (UIDVALIDITY differs ...), they are dropped: the store's
 * HIGHESTMODSEQ is still below them, and the QRESYNC SELECT reports them
 * as VANISHED (EARLIER).  -ENOMEM: the run takes the SELECT way.
 */
int engine_sync_selected_vanished(struct cpmsync_sync *e, const struct rangeset *uids);
/*
 * Before a full run (neither engine_sync_only() nor engine_sync_selected()):
 * folder_id is selected on the connection and current (the store holds
 * what the server told of it, exists messages).  If the run sends no
 * SELECT, the server tells no news of the selected folder (EXISTS,
 * EXPUNGE, VANISHED, FETCH) and its LIST-STATUS shows folder_id as the
 * store has it, engine_selected_state() is 1 with exists: IDLE can start
 * again without a SELECT.
 */
void engine_sync_keep_selected(struct cpmsync_sync *e, int64_t folder_id, uint32_t exists);
/*
 * In the run's callback: 1 when it was engine_sync_selected()'s, its
 * folder is still selected, and the store holds what the server told
 * (*ret_exists messages): IDLE may start again without a SELECT; 3 the
 * same, but news came after the folder's sync (EXISTS, VANISHED: counted
 * and applied, the new messages not fetched): to be synced again, without
 * SELECT; 2 when it was one but the store and the count differ, or
 * another folder was selected since, or the journal replayed after it
 * more than flags and annotations (SELECT it and sync it again); 1 after
 * engine_sync_keep_selected() as it says; 0 otherwise.  Flags replayed on that folder (SetFlags
 * through cpmsync_session_replay_soon()) leave it 1 or 3.
 */
int engine_selected_state(const struct cpmsync_sync *e, uint32_t *ret_exists);

/*
 * In the run's callback: whether a command on the folder selected by the
 * session (or the run) was refused, as Cyrus refuses every one on a
 * mailbox another client renamed or deleted: the run went on without it
 * (engine_selected_state() 0), and only a full sync (LIST) tells where it
 * went.
 */
bool engine_selected_gone(const struct cpmsync_sync *e);

/*
 * In the run's callback: whether the replay of a run without LIST found a
 * folder refused (renamed or deleted by another client?): its changes
 * stay queued, untried, for a full sync (LIST), which the session runs at
 * once.
 */
bool engine_replay_needs_list(const struct cpmsync_sync *e);

/*
 * In the run's callback (or before it): the messages added, changed and
 * removed and the operations replayed that the run's own commits made
 * durable, whether the run then failed or not; 0 when it moved the store on
 * by nothing (a run that lost its connection commits its open batch, and
 * counts it; what a batch held when the run failed otherwise is rolled
 * back and not counted; nor is a batch a local call committed, until the
 * run's next).
 */
uint64_t engine_work_committed(const struct cpmsync_sync *e);

/* Its owner goes away: no callback, no connection given back. */
void engine_detach(struct cpmsync_sync *e);
