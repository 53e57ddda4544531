/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Filing a CPM object (cpmsync/cpm-folders.h, Account1.StoreObject): the
 * object's header is read, util/cpm-folders.c decides the folder and the
 * folders missing on the way to it, and store-ops.c creates them and
 * stores the object in one transaction (CREATEs journaled before the
 * APPEND, parents first), so that it works offline and reaches the server
 * in that order.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/cpm-folders.h>
#include <cpmsync/error.h>
#include <cpmsync/io.h>
#include <cpmsync/ops.h>

#include "store/store-file.h"
#include "store/store.h"
#include "util/cpm-file.h"
#include "util/macro.h"
#include "util/msg-summary.h"

struct exists_ctx {
	struct cpmsync_store *store;
	const char *account;
};

static bool folder_exists(const char *name, void *userdata)
{
	struct exists_ctx *x = userdata;
	int64_t id;

	return cpmsync_store_find_folder(x->store, x->account, name, &id) == 0;
}

/* session-info and group-state objects. */
static bool is_state_type(const char *type)
{
	return type && (strcmp(type, "session-info") == 0 || strcmp(type, "group-state") == 0);
}

/*
 * Reads the object's head from fd and decides where it goes (*ret: free
 * with cpm_file_target_free()); *ret_head gets the head (head_len bytes,
 * to free).  Sets the store's error on failure.
 */
static int decide(struct store *s, struct cpmsync_store *store, const char *account,
		  const char *root, int fd, uint64_t size, struct cpm_file_target *ret,
		  char **ret_head, size_t *ret_head_len)
{
	struct msg_summary sum = { .type = "message" };
	_cleanup_free_ char *head = NULL;
	struct exists_ctx x = { store, account };
	struct cpm_file_object o;
	const char *why = NULL;
	char why_buf[512];
	size_t head_len;
	int r;

	store_clear_error(s);
	if (!cpmsync_cpm_root_valid(root, &why)) {
		store_set_error(s, "cpm_root \"%s\" %s", root ? root : "", why);
		return -EINVAL;
	}
	if (fd < 0) {
		store_set_error(s, "content: invalid file descriptor");
		return -EINVAL;
	}
	if (size == 0) {
		store_set_error(s, "content: empty");
		return -EINVAL;
	}
	if (size > CPMSYNC_OP_MAX_MESSAGE_SIZE) {
		store_set_error(s, "content: %" PRIu64 " bytes is larger than the %u allowed", size,
				CPMSYNC_OP_MAX_MESSAGE_SIZE);
		return -EFBIG;
	}
	head_len = size < MSG_SUMMARY_READ ? (size_t)size : MSG_SUMMARY_READ;
	head = malloc(head_len);
	if (!head)
		return -ENOMEM;
	r = cpmsync_read_exact(fd, head, head_len);
	if (r < 0) {
		store_set_error(s, "content: %s",
				r == -EIO ? "end of input before the announced size"
					  : strerror(-r));
		return r;
	}
	r = msg_summary_parse(head, head_len, &sum);
	if (r < 0)
		return r;
	o = (struct cpm_file_object){
		.conversation_id = sum.conversation_id,
		.contribution_id = sum.contribution_id,
		.is_state = is_state_type(sum.type),
		.context = sum.context,
		.direction = sum.direction,
		.from = sum.from,
		.to = sum.to,
	};
	r = cpm_file_decide(root, &o, folder_exists, &x, ret, why_buf, sizeof(why_buf));
	msg_summary_free(&sum);
	if (r == -EINVAL)
		store_set_error(s, "%s", why_buf);
	if (r < 0)
		return r;
	*ret_head = head;
	head = NULL;
	*ret_head_len = head_len;
	return 0;
}

int cpmsync_cpm_object_folder(struct cpmsync_store *store, const char *account, const char *root,
			      int fd, uint64_t size, char **ret_folder)
{
	struct store *s = store_call(store);
	struct cpm_file_target t = { 0 };
	char *head = NULL;
	size_t head_len;
	int r;

	if (!s)
		return -EINVAL;
	r = decide(s, store, account, root, fd, size, &t, &head, &head_len);
	free(head);
	if (r < 0)
		return r;
	*ret_folder = t.folder;
	t.folder = NULL;
	cpm_file_target_free(&t);
	return 0;
}

int cpmsync_op_file_object_fd(struct cpmsync_store *store, const char *account, const char *root,
			      int fd, uint64_t size, const char *const *flags, int64_t internaldate,
			      cpmsync_cpm_folder_check_fn check, void *userdata,
			      int64_t *ret_folder_id, int64_t *ret_id)
{
	struct store *s = store_call(store);
	struct cpm_file_target t = { 0 };
	_cleanup_free_ char *head = NULL;
	size_t head_len;
	int r;

	if (!s)
		return -EINVAL;
	r = decide(s, store, account, root, fd, size, &t, &head, &head_len);
	if (r < 0)
		return r;
	/* The caller's word on the folder, from this one reading of the
	 * header; its refusal is its own (its text too). */
	r = check ? check(t.folder, userdata) : 0;
	if (r < 0) {
		store_set_error(s, "the folder '%s' was refused", t.folder);
		cpm_file_target_free(&t);
		return r;
	}
	r = store_op_store_creating(store, account, (const char *const *)t.create, t.n_create,
				    t.folder, head, head_len, fd, size, flags, internaldate,
				    ret_folder_id, ret_id);
	cpm_file_target_free(&t);
	return r;
}

int cpmsync_op_store_object_fd(struct cpmsync_store *store, const char *account, const char *root,
			       int fd, uint64_t size, const char *const *flags,
			       int64_t internaldate, int64_t *ret_folder_id, int64_t *ret_id)
{
	int r = cpmsync_op_file_object_fd(store, account, root, fd, size, flags, internaldate, NULL,
					  NULL, ret_folder_id, ret_id);

	return r < 0 ? r : 0;
}
