/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "outbox-parse.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include <cpmsync/ops.h>

#include "util.h"

enum outbox_place outbox_split_rel(const char *rel, char **ret_account, char **ret_folder,
				   char **ret_name)
{
	const char *first = strchr(rel, '/');
	const char *last = strrchr(rel, '/');

	if (!first)
		return OUTBOX_IN_ROOT;
	if (first == last)
		return OUTBOX_IN_ACCOUNT;
	*ret_account = xstrndup(rel, (size_t)(first - rel));
	*ret_folder = xstrndup(first + 1, (size_t)(last - first - 1));
	*ret_name = xstrdup(last + 1);
	return OUTBOX_IN_FOLDER;
}

char *outbox_dir_part(const char *rel)
{
	const char *slash = strrchr(rel, '/');

	return slash ? xstrndup(rel, (size_t)(slash - rel)) : xstrdup("");
}

const char *outbox_base_part(const char *rel)
{
	const char *slash = strrchr(rel, '/');

	return slash ? slash + 1 : rel;
}

unsigned outbox_depth_of(const char *rel)
{
	unsigned n = *rel ? 1 : 0;

	for (; *rel; rel++)
		n += *rel == '/';
	return n;
}

bool outbox_name_ignored(const char *name)
{
	return name[0] == '.' || name[0] == '\0';
}

bool outbox_is_id(const char *s)
{
	if (s[0] < '1' || s[0] > '9' || strlen(s) > 18)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

char *outbox_failed_base(const char *name, char *buf)
{
	size_t n = strlen(name);

	if (n > OUTBOX_FAILED_NAME_MAX) {
		n = OUTBOX_FAILED_NAME_MAX;
		/* Do not cut a UTF-8 sequence. */
		while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
			n--;
		/* Not UTF-8 at all (continuation bytes only): cut at the limit. */
		if (n == 0)
			n = OUTBOX_FAILED_NAME_MAX;
	}
	memcpy(buf, name, n);
	buf[n] = '\0';
	return buf;
}

char *outbox_check_stat(const struct stat *st, uid_t uid)
{
	if (S_ISLNK(st->st_mode))
		return xstrdup("not a regular file (a symbolic link)");
	if (!S_ISREG(st->st_mode))
		return xstrdup("not a regular file");
	if (st->st_nlink != 1)
		return xasprintf("has %ju hard links; only a file with one link is taken "
				 "(another link may be a file that was not meant to be sent)",
				 (uintmax_t)st->st_nlink);
	if (st->st_uid != uid)
		return xasprintf("owned by uid %ju, not by this user (uid %ju); only the "
				 "user's own files are taken",
				 (uintmax_t)st->st_uid, (uintmax_t)uid);
	if (st->st_size == 0)
		return xstrdup("empty file (0 bytes): nothing to store");
	if ((uint64_t)st->st_size > CPMSYNC_OP_MAX_MESSAGE_SIZE)
		return xasprintf("too large: %" PRIu64 " bytes, the limit is "
				 "%u bytes",
				 (uint64_t)st->st_size, (unsigned)CPMSYNC_OP_MAX_MESSAGE_SIZE);
	return NULL;
}
