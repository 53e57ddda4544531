/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_SYNC_H
#define CPMSYNC_SYNC_H

/*
 * One complete two-way sync of one account: connect, mirror the server's
 * folders and messages into the store (QRESYNC, else CONDSTORE, else a
 * UID/FLAGS comparison, per folder), replay the journal of local changes
 * exactly once, log out.  Everything runs on the caller's loop.
 *
 * Safe to interrupt at any point (crash, kill, lost connection): what was
 * committed is consistent, and the next run resumes from it.
 */

#include <stdint.h>

#include <cpmsync/account.h>
#include <cpmsync/loop.h>
#include <cpmsync/store.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cpmsync_sync_stats {
	uint64_t bytes_in, bytes_out; /* on the wire, after TLS */
	uint32_t folders_synced;      /* SELECTed, compared, and their state stored */
	uint32_t folders_skipped;     /* unchanged by LIST-STATUS */
	uint32_t messages_added, messages_changed, messages_removed;
	uint64_t body_bytes; /* bodies downloaded */
	uint32_t ops_replayed, ops_failed;
	uint32_t ops_given_up; /* of ops_failed: failed operations now (cpmsync/ops.h) */
	/* SELECTs the server refused (no right to read the folder, deleted
	 * meanwhile): those folders were skipped, the run went on. */
	uint32_t folders_refused;
	/* Of those, the ones answered [NONEXISTENT]: deleted since the LIST
	 * showed them (a server still deleting a tree of folders lists some
	 * of them); a full sync soon finds them gone. */
	uint32_t folders_gone;
	/* Folders whose local changes were left queued: the server's folder
	 * under that name is not shown to be the one the store knows
	 * (another UIDVALIDITY or MAILBOXID: deleted and made again by
	 * another client); they wait for its next full sync. */
	uint32_t folders_waiting;
};

/*
 * r is 0 when everything succeeded; otherwise reason says what failed
 * (the server's text, the connection error).  An operation the server
 * refuses does not fail the run: it is tried again later, or becomes a
 * failed operation (cpmsync/ops.h), counted in stats.  stats and reason are
 * borrowed for the call.
 */
typedef void (*cpmsync_sync_cb_t)(int r, const char *reason, const struct cpmsync_sync_stats *stats,
				  void *userdata);

struct cpmsync_sync;

/*
 * Starts the sync; cb is called once, from the loop, after which the
 * handle is freed.  The store must stay open until then.  *ret (optional)
 * can be given to cpmsync_sync_cancel() before cb ran.
 */
int cpmsync_sync_once(struct cpmsync_loop *loop, struct cpmsync_store *store,
		      const struct cpmsync_account *account, cpmsync_sync_cb_t cb, void *userdata,
		      struct cpmsync_sync **ret);
/* Stops it: cb runs with -CPMSYNC_E_CANCELED (from the loop). */
void cpmsync_sync_cancel(struct cpmsync_sync *sync);

#ifdef __cplusplus
}
#endif
#endif
