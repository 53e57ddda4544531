/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Saving a removed account's unsent changes (removed.h): the store is
 * read first, into memory, so that nothing is written when the account
 * had nothing unsent; then each file is written and synced, then the
 * directory.  Any failure takes back what was written.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cpmsync/cpmsync.h>
#include <cpmsync/ops.h>

#include "removed.h"
#include "util.h"

/* One change, copied out of the store's walk. */
struct change {
	struct cpmsync_unsent_change c; /* its strings below */
	char *strs[11];
};

struct changes {
	struct change *v;
	size_t n;
};

static int collect(const struct cpmsync_unsent_change *c, void *userdata)
{
	struct changes *all = userdata;
	struct change *x;
	const char *src[11] = { c->operation,	  c->folder,   c->message_id_header,
				c->subject,	  c->flags,    c->server_flags,
				c->source_folder, c->argument, c->code,
				c->text,	  "" };

	all->v = xreallocarray(all->v, all->n + 1, sizeof(*all->v));
	x = &all->v[all->n++];
	x->c = *c;
	for (size_t i = 0; i < ARRAY_SIZE(x->strs); i++)
		x->strs[i] = xstrdup(src[i]);
	x->c.operation = x->strs[0];
	x->c.folder = x->strs[1];
	x->c.message_id_header = x->strs[2];
	x->c.subject = x->strs[3];
	x->c.flags = x->strs[4];
	x->c.server_flags = x->strs[5];
	x->c.source_folder = x->strs[6];
	x->c.argument = x->strs[7];
	x->c.code = x->strs[8];
	x->c.text = x->strs[9];
	return 0;
}

static void changes_free(struct changes *all)
{
	for (size_t i = 0; i < all->n; i++)
		for (size_t k = 0; k < ARRAY_SIZE(all->v[i].strs); k++)
			free(all->v[i].strs[k]);
	free(all->v);
}

/* A value from the server or a user, with control characters as \xNN:
 * one line stays one line. */
static void put_text(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
}

/* "(none)" for "": a flag list. */
static void put_quoted(FILE *f, const char *s)
{
	if (!*s) {
		fputs("(none)", f);
		return;
	}
	fputc('"', f);
	put_text(f, s);
	fputc('"', f);
}

static void put_time(FILE *f, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[64];

	if (gmtime_r(&tt, &tm) && strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm))
		fputs(buf, f);
	else
		fprintf(f, "@%" PRId64, t);
}

/* Who the message is: ", Message-ID <...>, Subject "..."", each when set. */
static void put_who(FILE *f, const struct cpmsync_unsent_change *c)
{
	if (*c->message_id_header) {
		fputs(", Message-ID ", f);
		put_text(f, c->message_id_header);
	}
	if (*c->subject) {
		fputs(", Subject ", f);
		put_quoted(f, c->subject);
	}
}

/* "UID 12 in "INBOX"" or "a new message in "INBOX"", and who it is. */
static void put_message(FILE *f, const struct cpmsync_unsent_change *c)
{
	if (c->uid)
		fprintf(f, "UID %" PRIu32 " in ", c->uid);
	else
		fputs("a new message in ", f);
	put_quoted(f, c->folder);
	put_who(f, c);
}

/* One numbered line (and its notes) of unsent.txt; file: the .eml of a
 * store, NULL when its content is not stored here (unreadable: why it
 * cannot be read). */
static void put_change(FILE *f, unsigned no, const struct cpmsync_unsent_change *c,
		       const char *file, const char *unreadable)
{
	const char *op = c->operation;

	fprintf(f, "%u. ", no);
	if (str_eq(op, "store")) {
		fputs("store into ", f);
		put_quoted(f, c->folder);
		if (file)
			fprintf(f, ": saved as %s", file);
		else
			fprintf(f, ": its content %s%s%s, not saved",
				unreadable ? "cannot be read here (" : "is not stored here",
				unreadable ? unreadable : "", unreadable ? ")" : "");
		fputs(", flags ", f);
		put_quoted(f, c->flags);
		if (c->internaldate) {
			fputs(", date ", f);
			put_time(f, c->internaldate);
		}
		put_who(f, c);
	} else if (str_eq(op, "flags")) {
		fputs("flags of ", f);
		put_message(f, c);
		fputs(": here ", f);
		put_quoted(f, c->flags);
		if (c->uid) {
			fputs(", on the server ", f);
			put_quoted(f, c->server_flags);
		}
	} else if (str_eq(op, "copy") || str_eq(op, "move")) {
		fprintf(f, "%s of ", op);
		if (*c->source_folder && c->source_uid) {
			fprintf(f, "UID %" PRIu32 " in ", c->source_uid);
			put_quoted(f, c->source_folder);
		} else if (*c->source_folder) {
			fputs("a new message in ", f);
			put_quoted(f, c->source_folder);
		} else {
			fputs("a message", f);
		}
		fputs(" to ", f);
		put_quoted(f, c->folder);
		put_who(f, c);
	} else if (c->message_id) { /* expunge, set-annotation */
		fprintf(f, "%s of ", op);
		put_message(f, c);
	} else {
		fprintf(f, "%s ", op);
		if (*c->folder)
			put_quoted(f, c->folder);
		else
			fputs("(the server)", f);
		if (*c->argument) {
			fputs(str_eq(op, "rename-folder") ? " to " : ": ", f);
			put_text(f, c->argument);
		}
	}
	fputc('\n', f);
	if (c->failed) {
		fputs("   failed:", f);
		if (*c->code) {
			fputs(" [", f);
			put_text(f, c->code);
			fputc(']', f);
		}
		fputc(' ', f);
		put_text(f, c->text);
		fputc('\n', f);
	} else if (c->in_flight) {
		fputs("   sent, its answer not read: it may be on the server already\n", f);
	}
}

/* mkdir -p, mode 0700 for what it makes. */
static int make_dirs(const char *dir)
{
	_cleanup_free_ char *p = xstrdup(dir);

	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Writes len bytes of data, or fd's content from the store (data NULL:
 * message id), into the new file name of dirfd, then syncs it. */
static int write_file(struct cpmsync_store *store, int dirfd, const char *name, const char *data,
		      size_t len, int64_t id, int64_t mtime, bool sync, char **ret_error)
{
	_cleanup_close_ int fd = -1;
	int r = 0;

	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		*ret_error = xasprintf("%s: %s", name, strerror(-r));
		return r;
	}
	if (data) {
		while (len) {
			ssize_t n = write(fd, data, len);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				r = n < 0 ? -errno : -EIO;
				break;
			}
			data += n;
			len -= (size_t)n;
		}
	} else {
		r = cpmsync_store_read_body(store, id, fd);
		if (r < 0) {
			/* A write's -errno, or the store's code (a body lost). */
			*ret_error = xasprintf("%s: message %" PRId64 ": %s", name, id,
					       cpmsync_strerror(r));
			(void)unlinkat(dirfd, name, 0);
			return r;
		}
	}
	if (r == 0 && mtime > 0)
		(void)futimens(fd, (struct timespec[]){ { .tv_sec = (time_t)mtime },
							{ .tv_sec = (time_t)mtime } });
	if (r == 0 && sync && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && close(TAKE_FD(fd)) < 0)
		r = -errno;
	if (r < 0) {
		*ret_error = xasprintf("%s: %s", name, strerror(-r));
		(void)unlinkat(dirfd, name, 0); /* made here: not in the caller's list yet */
	}
	return r;
}

static void add_file(struct removed_saved *saved, const char *name)
{
	saved->files = xreallocarray(saved->files, saved->n_files + 1, sizeof(*saved->files));
	saved->files[saved->n_files++] = xstrdup(name);
}

void removed_discard(struct removed_saved *saved)
{
	if (!saved->directory)
		return;
	for (size_t i = 0; i < saved->n_files; i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", saved->directory, saved->files[i]);

		(void)unlink(p);
	}
	(void)rmdir(saved->directory);
}

void removed_saved_clear(struct removed_saved *saved)
{
	for (size_t i = 0; i < saved->n_files; i++)
		free(saved->files[i]);
	free(saved->files);
	free(saved->directory);
	*saved = (struct removed_saved){ 0 };
}

/* The new directory DIR/<account>-<time>[-N] (made, 0700). */
static int make_target(const char *dir, const char *account, time_t now, char **ret)
{
	char stamp[32] = "";
	struct tm tm;
	int r;

	r = make_dirs(dir);
	if (r < 0) {
		*ret = xstrdup(dir);
		return r;
	}
	if (gmtime_r(&now, &tm))
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (unsigned n = 1; n < 100; n++) {
		*ret = n == 1 ? xasprintf("%s/%s-%s", dir, account, stamp)
			      : xasprintf("%s/%s-%s-%u", dir, account, stamp, n);
		if (mkdir(*ret, 0700) == 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
		free(*ret);
	}
	*ret = xasprintf("%s/%s-%s", dir, account, stamp);
	return -EEXIST;
}

static int sync_dir(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/* The directories' entries: saved's own, then dir's in its parent (dir
 * may be new). */
static int sync_dirs(const struct removed_saved *saved, const char *dir)
{
	_cleanup_free_ char *parent = xstrdup(dir);
	char *slash = strrchr(parent, '/');
	int r;

	r = sync_dir(saved->directory);
	if (r == 0)
		r = sync_dir(dir);
	if (r == 0 && slash && slash != parent) {
		*slash = '\0';
		r = sync_dir(parent);
	}
	return r;
}

int removed_sync(const struct removed_saved *saved, const char *dir, char **ret_error)
{
	int r;

	if (!saved->directory)
		return 0;
	for (size_t i = 0; i < saved->n_files; i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", saved->directory, saved->files[i]);
		_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

		if (fd < 0 || fsync(fd) < 0) {
			r = -errno;
			*ret_error = xasprintf("cannot sync %s to disk: %s", p, strerror(-r));
			return r;
		}
	}
	r = sync_dirs(saved, dir);
	if (r < 0)
		*ret_error = xasprintf("cannot sync the directories of %s to disk: %s",
				       saved->directory, strerror(-r));
	return r;
}

static int save(struct cpmsync_store *store, const char *account, const char *who, const char *dir,
		time_t now, bool sync, struct removed_saved *ret, char **ret_error)
{
	_cleanup_(changes_free) struct changes all = { 0 };
	struct removed_saved saved = { 0 };
	_cleanup_free_ char *list = NULL, *why = NULL;
	_cleanup_close_ int dirfd = -1, nullfd = -1;
	size_t list_len = 0;
	unsigned messages = 0;
	FILE *f;
	int r;

	*ret = (struct removed_saved){ 0 };
	r = cpmsync_store_foreach_unsent(store, account, collect, &all);
	if (r == -CPMSYNC_E_NOT_FOUND || (r >= 0 && !all.n))
		return 0;
	if (r < 0) {
		*ret_error =
			xasprintf("cannot read its unsent changes: %s", cpmsync_store_error(store));
		return r;
	}
	r = make_target(dir, account, now, &saved.directory);
	if (r < 0) {
		*ret_error = xasprintf("cannot save its %zu unsent change(s) in %s: %s", all.n,
				       saved.directory, strerror(-r));
		free(saved.directory);
		return r;
	}
	nullfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	dirfd = open(saved.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || nullfd < 0) {
		r = -errno;
		why = xasprintf("%s", strerror(-r));
		goto fail;
	}

	f = open_memstream(&list, &list_len);
	if (!f) {
		r = -errno;
		why = xasprintf("%s", strerror(-r));
		goto fail;
	}
	fprintf(f,
		"The local changes of account %s (%s) that had not reached the server when\n"
		"it was removed (D-Bus Manager1.RemoveAccount) on ",
		account, who);
	put_time(f, (int64_t)now);
	fputs(".\ncpm-syncd dropped them from its store with the account: nothing here is sent.\n"
	      "Each new message is beside this file, its content as it was stored.\n\n",
	      f);
	for (size_t i = 0; i < all.n; i++) {
		const struct cpmsync_unsent_change *c = &all.v[i].c;
		_cleanup_free_ char *name = NULL;
		const char *unreadable = NULL;

		/* Read once first, to nowhere: a body the store cannot give
		 * (a pack file lost) is said, and does not keep the account
		 * from going; a failed write here fails the removal. */
		if (str_eq(c->operation, "store") && c->has_body) {
			int rr = cpmsync_store_read_body(store, c->message_id, nullfd);

			if (rr < 0) {
				unreadable = cpmsync_strerror(rr);
				saved.unreadable++;
			}
		}
		if (str_eq(c->operation, "store") && c->has_body && !unreadable) {
			name = xasprintf("%03u.eml", ++messages);
			r = write_file(store, dirfd, name, NULL, 0, c->message_id, c->internaldate,
				       sync, &why);
			if (r < 0) {
				fclose(f);
				goto fail;
			}
			add_file(&saved, name);
		}
		put_change(f, (unsigned)i + 1, c, name, unreadable);
	}
	if (fclose(f) != 0) {
		r = -ENOMEM;
		why = xasprintf("%s", strerror(ENOMEM));
		goto fail;
	}
	r = write_file(store, dirfd, "unsent.txt", list, list_len, 0, 0, sync, &why);
	if (r < 0)
		goto fail;
	add_file(&saved, "unsent.txt");
	/* The names, then the directory's own in dir, and dir's in its
	 * parent (dir may be new). */
	r = !sync ? 0 : fsync(dirfd) < 0 ? -errno : sync_dirs(&saved, dir);
	if (r < 0) {
		why = xasprintf("syncing the directories: %s", strerror(-r));
		goto fail;
	}
	saved.messages = messages;
	saved.changes = (uint32_t)all.n;
	*ret = saved;
	return 0;
fail:
	*ret_error = xasprintf("cannot save its %zu unsent change(s) in %s: %s", all.n,
			       saved.directory, why);
	removed_discard(&saved);
	removed_saved_clear(&saved);
	return r;
}

int removed_save(struct cpmsync_store *store, const char *account, const char *who, const char *dir,
		 time_t now, struct removed_saved *ret, char **ret_error)
{
	return save(store, account, who, dir, now, true, ret, ret_error);
}

int removed_save_unsynced(struct cpmsync_store *store, const char *account, const char *who,
			  const char *dir, time_t now, struct removed_saved *ret, char **ret_error)
{
	return save(store, account, who, dir, now, false, ret, ret_error);
}
