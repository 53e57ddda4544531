/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What Manager1.RemoveAccount saves before it drops an account's data:
 * every local change the server does not have (queued, in flight or
 * failed; cpmsync_store_foreach_unsent()), into a directory of its own,
 * DIR/<account>-<UTC time>/:
 *
 *   NNN.eml      each new message (a queued or failed store: APPEND,
 *                StoreObject), its content as stored, its internal date
 *                as the file's time
 *   unsent.txt   every change, one numbered line each (the messages too,
 *                naming their file, folder and flags), in journal order
 *
 * Each file is written and fsync()ed, then the directory, then DIR, before
 * removed_save() returns: a crash right after the store drops the rows
 * leaves them on disk.
 */

#include <stdint.h>
#include <time.h>

#include <cpmsync/store.h>

struct removed_saved {
	char *directory;   /* malloc()ed; NULL: nothing was unsent, nothing written */
	uint32_t messages; /* .eml files */
	uint32_t changes;  /* lines of unsent.txt (the messages included) */
	/* new messages whose content the store could not give (a pack file
	 * lost): listed, not saved */
	uint32_t unreadable;
	char **files; /* what was written in directory, for removed_discard() */
	size_t n_files;
};

/*
 * Saves account's unsent changes under dir (made, mode 0700, when
 * missing); who ("user@host") and now go into unsent.txt's first lines.
 * Returns 0 with *ret filled (ret->directory NULL when the account had
 * none, or the store does not know it), or a negative errno with
 * *ret_error a malloc()ed sentence naming the file and the reason;
 * nothing is left behind then.
 */
int removed_save(struct cpmsync_store *store, const char *account, const char *who, const char *dir,
		 time_t now, struct removed_saved *ret, char **ret_error);
/*
 * removed_save() in two steps, for a caller that does not wait for the
 * disk meanwhile (Manager1.RemoveAccount: the fsync()s, one per file,
 * took 4.4 s for 1,000 new messages on ext4): the same files written,
 * none synced; then removed_sync(), which needs no store and may run on
 * another thread, syncs each file, the directory, dir and dir's parent.
 * It returns 0, or a negative errno with *ret_error a malloc()ed
 * sentence; the files stay either way.  The account's data must not go
 * before it returned 0.
 */
int removed_save_unsynced(struct cpmsync_store *store, const char *account, const char *who,
			  const char *dir, time_t now, struct removed_saved *ret, char **ret_error);
int removed_sync(const struct removed_saved *saved, const char *dir, char **ret_error);
/* Removes what removed_save() wrote (the removal failed after it). */
void removed_discard(struct removed_saved *saved);
/* Frees saved's members (the files stay). */
void removed_saved_clear(struct removed_saved *saved);
