/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Filing a CPM object (store-file.c) needs one thing from store-ops.c: an
 * APPEND that first creates the folders it goes into, in one transaction.
 */

#include <stddef.h>
#include <stdint.h>

struct cpmsync_store;

/*
 * As cpmsync_op_store_fd(), with the message's first head_len bytes at
 * head and the remaining size - head_len read from fd (not read when
 * head_len == size), after the folders create[0..n_create) are created
 * (each journaled, in order).  *ret_folder_id and *ret_id may be NULL.
 * A CPM object: 1 when the folder holds the same object already (the
 * rule at cpmsync_op_file_object_fd()), its ids given, nothing changed.
 */
int store_op_store_creating(struct cpmsync_store *store, const char *account,
			    const char *const *create, size_t n_create, const char *folder,
			    const void *head, size_t head_len, int fd, uint64_t size,
			    const char *const *flags, int64_t internaldate, int64_t *ret_folder_id,
			    int64_t *ret_id);
