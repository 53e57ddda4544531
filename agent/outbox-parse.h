/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The outbox's pure parsing and checks (agent/outbox.c): what a path below
 * the outbox means, which names are ignored or are .pending ids, the name a
 * failed file gets in .failed/, and whether a file can be stored.  No
 * file system access, so that tests/fuzz/fuzz-outbox.c and
 * tests/unit/test-outbox-parse.c can call them.
 */

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Bytes of the original name kept in .failed/ (outbox.h). */
#define OUTBOX_FAILED_NAME_MAX 240

/* Where a file is, from its path below the outbox (outbox_split_rel()). */
enum outbox_place {
	OUTBOX_IN_FOLDER = 0,  /* ACCOUNT/FOLDER.../NAME */
	OUTBOX_IN_ROOT = 1,    /* NAME: directly in the outbox */
	OUTBOX_IN_ACCOUNT = 2, /* ACCOUNT/NAME: a CPM object */
};

/*
 * Splits rel, "ACCOUNT/FOLDER.../NAME".  For OUTBOX_IN_FOLDER, *ret_account
 * (no '/'), *ret_folder (the path between the first and the last '/') and
 * *ret_name (no '/') are set, to free(); otherwise they are not touched.
 */
enum outbox_place outbox_split_rel(const char *rel, char **ret_account, char **ret_folder,
				   char **ret_name);

/* The directory part of rel, to free() ("" for a name alone). */
char *outbox_dir_part(const char *rel);

/* The last component of rel (a pointer into rel). */
const char *outbox_base_part(const char *rel);

/* The number of components of rel (0 for ""). */
unsigned outbox_depth_of(const char *rel);

/* Is name one the outbox never takes or watches ("" or starting with '.')? */
bool outbox_name_ignored(const char *name);

/* Is s a .pending/<id> directory name: a decimal 1..10^18-1, no sign or zeros? */
bool outbox_is_id(const char *s);

/*
 * The base of a file's name in .failed/: name cut to OUTBOX_FAILED_NAME_MAX
 * bytes, not inside a UTF-8 sequence (a name that is only continuation
 * bytes is cut at the limit), never empty for a non-empty name.  buf has
 * OUTBOX_FAILED_NAME_MAX + 1 bytes; returns buf.
 */
char *outbox_failed_base(const char *name, char *buf);

/*
 * NULL if st is a file the user uid may store (regular, one link, owned by
 * uid, 1 byte to CPMSYNC_OP_MAX_MESSAGE_SIZE), else why not (to free()).
 */
char *outbox_check_stat(const struct stat *st, uid_t uid);
