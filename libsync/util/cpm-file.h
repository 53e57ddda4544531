/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Where a CPM object is filed (cpmsync/cpm-folders.h): the pure decision,
 * from the object's header fields and which folders exist, so that it can
 * be tested without a store.  store-file.c reads the fields and applies
 * the decision in one transaction.
 */

#include <stdbool.h>
#include <stddef.h>

/* The fields the decision reads; "" when absent (never NULL). */
struct cpm_file_object {
	const char *conversation_id;
	const char *contribution_id;
	bool is_state;	       /* a session-info or group-state object */
	const char *context;   /* Message-Context */
	const char *direction; /* Message-Direction */
	const char *from;      /* the From header value */
	const char *to;	       /* the To addresses, one per '\n'-separated line */
};

typedef bool (*cpm_folder_exists_fn)(const char *name, void *userdata);

struct cpm_file_target {
	char *folder;  /* where the object goes */
	char **create; /* the folders to create first, parents first */
	size_t n_create;
};

/*
 * Decides where o goes under root.  0 and *ret filled (free with
 * cpm_file_target_free()), -EINVAL with *ret_why a sentence starting with
 * "content: " (static or in why_buf, why_len bytes) for an object that is
 * not a CPM object or cannot be filed, -ENOMEM.
 */
int cpm_file_decide(const char *root, const struct cpm_file_object *o, cpm_folder_exists_fn exists,
		    void *userdata, struct cpm_file_target *ret, char *why_buf, size_t why_len);
void cpm_file_target_free(struct cpm_file_target *t);

/*
 * The address in an address field value: what is inside the first <...>
 * when there is one, else the value without surrounding whitespace; up to
 * the first '\n' (the summary's To is one address per line).  Copied into
 * buf (len bytes, NUL-terminated, cut); returns buf.
 */
char *cpm_address_of(const char *value, char *buf, size_t len);
