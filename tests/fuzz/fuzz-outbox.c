/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzz target: what the outbox (agent/outbox.c) makes of a file's path
 * and contents.  The input is the path below the outbox, a NUL byte, one
 * byte of flags, then the file's contents:
 *
 *  - the path: outbox_split_rel(), outbox_dir_part()/outbox_base_part()
 *    (which put it back together), outbox_depth_of(), outbox_name_ignored(),
 *    outbox_is_id() (a .pending/<id> name is the decimal it stands for)
 *    and outbox_failed_base() (a non-empty prefix of at most
 *    OUTBOX_FAILED_NAME_MAX bytes, valid UTF-8 when the name is);
 *  - the flags: a file type, link count and owner with the contents' size,
 *    for outbox_check_stat(), and which folders exist;
 *  - the contents, for a file directly in an account directory (a CPM
 *    object): the header summary and the filing decision the outbox's
 *    cpmsync_op_store_object_fd() makes (util/cpm-folders.c): a folder
 *    below the root, with no empty, "." or ".." level and no control
 *    character, the folders to create parents first, or a "content: "
 *    reason.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cpmsync/limits.h>
#include <cpmsync/ops.h>
#include <cpmsync/utf8.h>

#include "outbox-parse.h"
#include "util/cpm-file.h"
#include "util/msg-summary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const char *rel)
{
	char *account = NULL, *folder = NULL, *name = NULL, *dir;
	char base[OUTBOX_FAILED_NAME_MAX + 1];
	const char *b = outbox_base_part(rel), *slash = strchr(rel, '/');
	unsigned slashes = 0;
	enum outbox_place p;

	for (const char *s = rel; *s; s++)
		slashes += *s == '/';
	p = outbox_split_rel(rel, &account, &folder, &name);
	if (slashes == 0) {
		assert(p == OUTBOX_IN_ROOT && !account && !folder && !name);
	} else if (slashes == 1) {
		assert(p == OUTBOX_IN_ACCOUNT && !account && !folder && !name);
	} else {
		size_t na, nf;

		assert(p == OUTBOX_IN_FOLDER && account && folder && name);
		assert(!strchr(account, '/') && !strchr(name, '/'));
		na = strlen(account);
		nf = strlen(folder);
		assert(strncmp(rel, account, na) == 0 && rel[na] == '/');
		assert(strncmp(rel + na + 1, folder, nf) == 0 && rel[na + 1 + nf] == '/');
		assert(strcmp(rel + na + nf + 2, name) == 0);
		assert(strcmp(name, b) == 0);
	}
	free(account);
	free(folder);
	free(name);

	dir = outbox_dir_part(rel);
	assert(!strchr(b, '/'));
	if (!slash) {
		assert(dir[0] == '\0' && b == rel);
	} else {
		size_t nd = strlen(dir);

		assert(strncmp(rel, dir, nd) == 0 && rel[nd] == '/' && b == rel + nd + 1);
	}
	free(dir);
	assert(outbox_depth_of(rel) == (rel[0] ? slashes + 1 : 0));
	assert(outbox_name_ignored(b) == (b[0] == '.' || b[0] == '\0'));

	if (outbox_is_id(b)) {
		char back[32];
		long long id = strtoll(b, NULL, 10);

		assert(id > 0);
		snprintf(back, sizeof(back), "%lld", id);
		assert(strcmp(back, b) == 0);
	}

	outbox_failed_base(b, base);
	assert(strlen(base) <= OUTBOX_FAILED_NAME_MAX);
	assert(!b[0] || base[0]);
	assert(strncmp(b, base, strlen(base)) == 0);
	if (strlen(b) <= OUTBOX_FAILED_NAME_MAX)
		assert(strcmp(base, b) == 0);
	if (cpmsync_utf8_valid(b, strlen(b)))
		assert(cpmsync_utf8_valid(base, strlen(base)));
}

static void check_stat(uint8_t flags, size_t content_size)
{
	static const mode_t types[] = { S_IFREG, S_IFLNK, S_IFDIR, S_IFIFO };
	struct stat st = { 0 };
	bool storable;
	char *why;

	st.st_mode = types[(flags >> 2) & 3] | 0600;
	st.st_nlink = (flags & 0x10) ? 2 : 1;
	st.st_uid = (flags & 0x20) ? 4242 : 1000;
	/* 0x40: beyond the limit, whatever the contents. */
	st.st_size = (off_t)((flags & 0x40) ? CPMSYNC_OP_MAX_MESSAGE_SIZE + content_size + 1
					    : content_size);
	storable = S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_uid == 1000 && st.st_size > 0 &&
		   (uint64_t)st.st_size <= CPMSYNC_OP_MAX_MESSAGE_SIZE;
	why = outbox_check_stat(&st, 1000);
	assert(storable == !why);
	if (why)
		assert(why[0] && cpmsync_utf8_valid(why, strlen(why)));
	free(why);
}

static bool folder_exists(const char *name, void *userdata)
{
	uint8_t mode = *(const uint8_t *)userdata;
	unsigned levels = 1;

	for (const char *s = name; *s; s++)
		levels += *s == '/';
	return mode == 1 || (mode == 2 && levels <= 2);
}

static void check_object(const uint8_t *data, size_t size, uint8_t flags)
{
	static const char root[] = "Default";
	uint8_t mode = flags & 3;
	struct cpm_file_target t;
	struct cpm_file_object o;
	struct msg_summary m;
	char why[512] = "";
	size_t nr = strlen(root), nf;
	int r;

	if (size > MSG_SUMMARY_READ)
		size = MSG_SUMMARY_READ; /* what store-file.c reads */
	r = msg_summary_parse(data, size, &m);
	if (r < 0) {
		assert(r == -ENOMEM);
		return;
	}
	o = (struct cpm_file_object){
		.conversation_id = m.conversation_id,
		.contribution_id = m.contribution_id,
		.is_state = !strcmp(m.type, "session-info") || !strcmp(m.type, "group-state"),
		.context = m.context,
		.direction = m.direction,
		.from = m.from,
		.to = m.to,
	};
	r = cpm_file_decide(root, &o, folder_exists, &mode, &t, why, sizeof(why));
	msg_summary_free(&m);
	if (r == -ENOMEM)
		return;
	if (r < 0) {
		assert(r == -EINVAL && strncmp(why, "content: ", 9) == 0);
		return;
	}
	assert(r == 0 && t.folder);
	nf = strlen(t.folder);
	assert(nf > nr + 1 && nf <= CPMSYNC_FOLDER_NAME_MAX);
	assert(strncmp(t.folder, root, nr) == 0 && t.folder[nr] == '/');
	assert(cpmsync_utf8_valid(t.folder, nf));
	for (const char *lvl = t.folder; lvl;) {
		const char *end = strchr(lvl, '/');
		size_t n = end ? (size_t)(end - lvl) : strlen(lvl);

		assert(n > 0);
		assert(!(n == 1 && lvl[0] == '.') && !(n == 2 && lvl[0] == '.' && lvl[1] == '.'));
		lvl = end ? end + 1 : NULL;
	}
	for (size_t i = 0; i < nf; i++)
		assert((unsigned char)t.folder[i] >= 0x20 && t.folder[i] != 0x7f);
	for (size_t i = 0; i < t.n_create; i++) {
		size_t nc = strlen(t.create[i]);

		assert(!folder_exists(t.create[i], &mode));
		assert(strncmp(t.folder, t.create[i], nc) == 0);
		assert(t.folder[nc] == '/' || t.folder[nc] == '\0');
		if (i > 0)
			assert(nc > strlen(t.create[i - 1]));
	}
	if (mode == 1)
		assert(t.n_create == 0);
	cpm_file_target_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t rel_len = nul ? (size_t)(nul - data) : size;
	char *rel = malloc(rel_len + 1);
	uint8_t flags = 0;
	const uint8_t *content = NULL;
	size_t content_size = 0;

	if (!rel)
		return 0;
	memcpy(rel, data, rel_len);
	rel[rel_len] = '\0';
	check_path(rel);
	if (nul && (size_t)(nul - data) + 1 < size) {
		flags = nul[1];
		content = nul + 2;
		content_size = size - rel_len - 2;
	}
	check_stat(flags, content_size);
	/* Directly in an account directory (one '/'): a CPM object. */
	if (content && strchr(rel, '/') && strchr(rel, '/') == strrchr(rel, '/'))
		check_object(content, content_size, flags);
	free(rel);
	return 0;
}
