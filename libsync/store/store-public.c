/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The public handle (cpmsync/store.h) around the internal struct store.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <cpmsync/store.h>

#include "store/store.h"

struct cpmsync_store {
	struct store *s;
};

int cpmsync_store_open(const char *path, unsigned flags, struct cpmsync_store **ret,
		       char **ret_error)
{
	struct cpmsync_store *cs;
	int r;

	if (ret_error)
		*ret_error = NULL;
	if (!ret ||
	    (flags & ~(CPMSYNC_STORE_READONLY | CPMSYNC_STORE_KEEP_WAL | CPMSYNC_STORE_DAEMON)) ||
	    (flags & (CPMSYNC_STORE_READONLY | CPMSYNC_STORE_DAEMON)) ==
		    (CPMSYNC_STORE_READONLY | CPMSYNC_STORE_DAEMON))
		return -EINVAL;
	*ret = NULL;
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	r = store_open(path,
		       ((flags & CPMSYNC_STORE_READONLY) ? STORE_READONLY : 0) |
			       ((flags & CPMSYNC_STORE_KEEP_WAL) ? STORE_KEEP_WAL : 0),
		       &cs->s, ret_error);
	if (r < 0) {
		free(cs);
		return r;
	}
	/* An app's writes, for the daemon's signals (store-changes.c). */
	if (flags & CPMSYNC_STORE_DAEMON) {
		*store_foreign_slot(cs->s) = STORE_FOREIGN_READ;
	} else if (!(flags & CPMSYNC_STORE_READONLY)) {
		r = store_changes_record_foreign(cs->s);
		if (r < 0) {
			if (ret_error &&
			    asprintf(ret_error, "%s: cannot record changes for the daemon: %s",
				     path, store_error(cs->s)) < 0)
				*ret_error = NULL;
			store_close(cs->s);
			free(cs);
			return r;
		}
	}
	*ret = cs;
	return 0;
}

struct cpmsync_store *cpmsync_store_close(struct cpmsync_store *store)
{
	if (store) {
		store_close(store->s);
		free(store);
	}
	return NULL;
}

const char *cpmsync_store_error(const struct cpmsync_store *store)
{
	return store ? store_error(store->s) : "";
}

int cpmsync_store_check_file(struct cpmsync_store *store)
{
	return store ? store_check_file(store->s) : -EINVAL;
}

struct store *store_from_public(struct cpmsync_store *store)
{
	return store ? store->s : NULL;
}

struct store *store_call(struct cpmsync_store *store)
{
	struct store *s = store_from_public(store);

	if (s)
		store_clear_error(s);
	return s;
}
