/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Folder1.Search's criteria, parsed apart for tests. */

#include <dbus/dbus.h>
#include <stdbool.h>
#include <stdint.h>

#include <cpmsync/store.h>

struct search_state {
	struct cpmsync_search_criteria c; /* strings borrowed from the message */
	const char **flags, **not_flags;  /* malloc()ed vectors */
	int64_t folder_id;
};

/*
 * Reads the a{sv} criteria at iter into s (zeroed by the caller).  Returns
 * NULL, or a malloc()ed sentence naming the key (unknown key, wrong type,
 * bad flag, too long).  Release s's vectors with search_state_free() (it
 * frees s itself: allocate s with malloc).
 */
char *cpm_parse_search_criteria(DBusMessageIter *iter, struct search_state *s);
void search_state_free(void *s);

/*
 * StoreFd (and Account1.StoreObject) of a pipe is read into memory while
 * the caller writes: at most CPM_MAX_PIPE_STORES such reads at once and
 * CPM_MAX_PIPE_BYTES buffered in all, over every account and caller and
 * both methods (org.cpmsync.Error.Failed beyond, saying which limit).
 * Tests lower them here.
 */
#define CPM_MAX_PIPE_STORES 16u
#define CPM_MAX_PIPE_BYTES  (256ull * 1024 * 1024)
void cpm_folder_set_pipe_limits(unsigned stores, uint64_t bytes);

/*
 * StoreFd (and StoreObject) of a regular file on a file system whose
 * reads may block (not a local disk or memory: NFS, SMB, FUSE ...) reads
 * it on a thread, off the loop.  Tests: always_off_loop takes that way for every file; hook (or
 * NULL) runs on the thread before it reads.
 */
void cpm_folder_set_file_read_test(bool always_off_loop, void (*hook)(void));
