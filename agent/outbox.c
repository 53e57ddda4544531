/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "outbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <cpmsync/cpm-folders.h>
#include <cpmsync/error.h>
#include <cpmsync/io.h>
#include <cpmsync/ops.h>

#include "log.h"
#include "outbox-parse.h"
#include "util.h"

/*
 * Raw inotify(7), not libinotifytools: the library's state is
 * process-global and belongs to config_watch (config-watch.c), and the
 * outbox needs a loop-pollable, non-blocking fd and its own map from
 * watch descriptors to directories for its recursive watches.
 *
 * Nothing below the outbox is ever reached through a path: the outbox is
 * opened once (o->root), every watched directory keeps an fd of its own,
 * and every open, rename and unlink is relative to a directory fd with a
 * single name (openat/renameat2/unlinkat).  Longer relative paths
 * (.pending/claimed/ACCOUNT/FOLDER) are opened with openat2()
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or component by component with
 * O_NOFOLLOW where the kernel lacks it.  Before a file is taken, its
 * directory is checked to still be where it was watched (a directory
 * swapped for a symbolic link, or moved away, after the event: the file is
 * left alone).  Only regular files with one link, owned by the user, are
 * taken.
 */
#define DIR_MASK                                                                                   \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE_SELF |               \
	 IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

#define PENDING ".pending"
#define CLAIMED ".pending/claimed"
#define FAILED	".failed"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

struct watch_entry {
	int wd;
	int dfd;   /* the directory itself */
	char *rel; /* directory below the outbox; "" for the outbox */
};

struct outbox {
	struct cpmsync_loop *loop;
	struct cpmsync_store *store;
	char *dir;
	struct outbox_callbacks cb;
	void *userdata;

	int root; /* the outbox directory */
	int fd;
	/* The outbox's parent, for the outbox's own removal: no IN_DELETE_SELF
	 * comes while we hold it open.  -1 if it cannot be watched. */
	int parent_wd;
	char *base; /* the outbox's name in its parent */
	struct cpmsync_loop_source *io;
	struct watch_entry *watches;
	size_t n_watches, alloc_watches;

	/* Files waiting for their folder, already logged at info level. */
	char **deferred;
	size_t n_deferred;

	/* Claims left in the claim area by a store failure that may pass
	 * (store_may_pass()), each with the error last logged for it. */
	struct held {
		char *rel;
		int r;
	} * held;
	size_t n_held;
	/* One-shot: a rescan in outbox_retry_ms, for what waits for one
	 * (a held claim, a file left "trying again later"). */
	struct cpmsync_loop_source *retry;
	bool retry_armed;

	unsigned busy;	    /* inside a scan or event handling */
	bool rescan_wanted; /* outbox_rescan() was called meanwhile */

	/* Files found by an event or a scan, not handled yet, oldest first
	 * (todo[todo_head..n_todo)): taken OUTBOX_TAKE_PER_TURN at a time,
	 * one batch per loop iteration (take_next()), so that a drop of
	 * thousands of files does not keep D-Bus and the syncs waiting. */
	char **todo;
	size_t n_todo, todo_head;
	struct cpmsync_loop_source *todo_src;
	bool starting; /* in outbox_new(): everything is taken before it returns */
};

/*
 * Files taken (claimed, stored: a rename, an fsync and a store
 * transaction, 1-25 ms each) per loop iteration: a reply waits for at most
 * this many, not for the whole drop.
 */
#define OUTBOX_TAKE_PER_TURN 8

/* ------------------------------------------------------------------------ */
/* Paths and small file helpers */

static char *join(const char *a, const char *b)
{
	if (!*a)
		return xstrdup(b);
	if (!*b)
		return xstrdup(a);
	return xasprintf("%s/%s", a, b);
}

/* The absolute path of rel (below the outbox), for messages. */
static char *path_of(const struct outbox *o, const char *rel)
{
	return join(o->dir, rel);
}

/* mkdir -p of the outbox's own path (from the configuration). */
static int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = xstrdup(path);
	size_t n = strlen(p);

	for (size_t i = 1; i <= n; i++) {
		if ((p[i] != '/' && p[i] != '\0') || p[i - 1] == '/')
			continue;
		p[i] = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		if (i < n)
			p[i] = '/';
	}
	return 0;
}

/* false: O_NOFOLLOW walks (no openat2, or a filter refuses it). */
bool outbox_have_openat2 = true;

/*
 * Opens path (relative, "" for dfd itself) below dfd with flags (O_CLOEXEC
 * and O_NOFOLLOW are added): no symbolic link is followed on the way, nor
 * at the end, and nothing outside dfd is reached.  Returns an fd or
 * -errno (-ELOOP for a symbolic link).
 */
static int open_beneath(int dfd, const char *path, int flags)
{
	_cleanup_free_ char *copy = NULL;
	_cleanup_close_ int cur = -1;
	char *p, *slash;
	int fd;

	flags |= O_CLOEXEC | O_NOFOLLOW;
	if (!*path)
		path = ".";
	if (outbox_have_openat2) {
		struct open_how how = {
			.flags = (uint64_t)flags,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
		};

		fd = (int)syscall(SYS_openat2, dfd, path, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno != ENOSYS && errno != EPERM && errno != E2BIG)
			return -errno;
		outbox_have_openat2 = false;
	}
	copy = xstrdup(path);
	p = copy;
	while ((slash = strchr(p, '/'))) {
		int next;

		*slash = '\0';
		if (str_eq(p, ".."))
			return -EXDEV;
		next = openat(cur >= 0 ? cur : dfd, p, DIR_FLAGS);
		if (next < 0)
			return -errno;
		if (cur >= 0)
			close(cur);
		cur = next;
		p = slash + 1;
	}
	if (str_eq(p, ".."))
		return -EXDEV;
	fd = openat(cur >= 0 ? cur : dfd, p, flags);
	return fd < 0 ? -errno : fd;
}

/*
 * Like open_beneath() for a directory, making the missing ones (0700) on
 * the way.  Returns an fd or -errno.
 */
static int mkdir_beneath(int dfd, const char *path)
{
	_cleanup_free_ char *copy = xstrdup(path);
	int cur = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	char *p = copy;

	if (cur < 0)
		return -errno;
	while (*p) {
		char *slash = strchr(p, '/');
		int next;

		if (slash)
			*slash = '\0';
		if (str_eq(p, "..") || str_eq(p, ".")) {
			close(cur);
			return -EXDEV;
		}
		if (mkdirat(cur, p, 0700) < 0 && errno != EEXIST) {
			int r = -errno;

			close(cur);
			return r;
		}
		next = openat(cur, p, DIR_FLAGS);
		close(cur);
		if (next < 0)
			return -errno;
		cur = next;
		p = slash ? slash + 1 : p + strlen(p);
	}
	return cur;
}

/* Removes the directory path below dfd if it is empty.  0 or -errno. */
static int rmdir_beneath(int dfd, const char *path)
{
	_cleanup_free_ char *parent = outbox_dir_part(path);
	_cleanup_close_ int pfd = open_beneath(dfd, parent, O_RDONLY | O_DIRECTORY);

	if (pfd < 0)
		return pfd;
	return unlinkat(pfd, outbox_base_part(path), AT_REMOVEDIR) < 0 ? -errno : 0;
}

/* fstatat() of rel below dfd, no link followed.  0 or -errno. */
static int stat_beneath(int dfd, const char *rel, struct stat *st)
{
	_cleanup_free_ char *parent = outbox_dir_part(rel);
	_cleanup_close_ int pfd = open_beneath(dfd, parent, O_RDONLY | O_DIRECTORY);

	if (pfd < 0)
		return pfd;
	return fstatat(pfd, outbox_base_part(rel), st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* renameat() that never replaces: -EEXIST if to exists. */
static int rename_noreplace(int from_dfd, const char *from, int to_dfd, const char *to)
{
	if (renameat2(from_dfd, from, to_dfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	/* The file system cannot do it; only we write here. */
	if (faccessat(to_dfd, to, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return renameat(from_dfd, from, to_dfd, to) < 0 ? -errno : 0;
}

/* The names in directory dfd (not "." and ".."), or NULL; free_names(). */
static char **list_dir(int dfd, size_t *ret_n)
{
	char **names = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	DIR *d;
	int fd;

	/* An fd of its own: its offset is not shared with dfd. */
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return NULL;
	}
	while ((de = readdir(d))) {
		if (str_eq(de->d_name, ".") || str_eq(de->d_name, ".."))
			continue;
		if (n + 1 >= alloc) {
			alloc = alloc ? alloc * 2 : 16;
			names = xreallocarray(names, alloc, sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (!names)
		names = xcalloc(1, sizeof(*names));
	names[n] = NULL;
	*ret_n = n;
	return names;
}

static void free_names(char **names)
{
	if (!names)
		return;
	for (char **p = names; *p; p++)
		free(*p);
	free(names);
}

/*
 * Is dfd still the directory rel below the outbox (no symbolic link on the
 * way, not moved or replaced)?
 */
static bool dir_in_place(const struct outbox *o, int dfd, const char *rel)
{
	_cleanup_close_ int fd = -1;
	struct stat a, b;

	fd = open_beneath(o->root, rel, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fstat(fd, &a) < 0 || fstat(dfd, &b) < 0)
		return false;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* ------------------------------------------------------------------------ */
/* .failed */

/*
 * Moves sname (in directory sdfd) to .failed/<name> (a free name, see
 * outbox.h) and writes the .why beside it.  display names the file in the
 * reason and the log.
 */
static void move_to_failed(struct outbox *o, int sdfd, const char *sname, const char *name,
			   const char *display, const char *reason)
{
	_cleanup_close_ int ffd = -1;
	char base[OUTBOX_FAILED_NAME_MAX + 1];
	int r = 0;

	outbox_failed_base(name, base);
	ffd = mkdir_beneath(o->root, FAILED);
	r = ffd < 0 ? ffd : 0;
	for (unsigned i = 0; r == 0 && i < 10000; i++) {
		_cleanup_free_ char *cand = NULL, *why = NULL, *text = NULL, *line = NULL,
				    *esc = NULL;
		_cleanup_close_ int fd = -1;
		struct stat st;

		cand = i ? xasprintf("%s.%u", base, i) : xstrdup(base);
		why = xasprintf("%s.why", cand);
		if (fstatat(ffd, why, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		r = rename_noreplace(sdfd, sname, ffd, cand);
		if (r == -EEXIST) {
			r = 0;
			continue;
		}
		if (r == -ENOENT)
			return; /* gone meanwhile: nothing to keep */
		if (r < 0)
			break;
		log_warning("outbox: %s: %s; moved to %s/" FAILED "/%s", display, reason, o->dir,
			    cand);
		line = xasprintf("%s: %s", display, reason);
		esc = log_escape(line); /* as the log says it */
		text = xasprintf("%s\n", esc);
		fd = openat(ffd, why, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			log_error("outbox: %s: kept as %s/" FAILED "/%s without its reason: "
				  "cannot create %s/" FAILED "/%s: %s",
				  display, o->dir, cand, o->dir, why, strerror(errno));
			return;
		}
		r = cpmsync_write_all(fd, text, strlen(text));
		if (r == 0 && close(TAKE_FD(fd)) < 0)
			r = -errno;
		if (r == 0)
			return;
		/* A .why cut short (a full disk) would say less than the log
		 * did, or nothing: none at all, and an error that says so. */
		if (unlinkat(ffd, why, 0) < 0 && errno != ENOENT)
			log_error("outbox: %s: kept as %s/" FAILED "/%s, but its reason cannot be "
				  "written: %s; and what was written of %s/" FAILED "/%s cannot be "
				  "removed: %s",
				  display, o->dir, cand, strerror(-r), o->dir, why,
				  strerror(errno));
		else
			log_error("outbox: %s: kept as %s/" FAILED "/%s without its reason: "
				  "cannot write %s/" FAILED "/%s: %s",
				  display, o->dir, cand, o->dir, why, strerror(-r));
		return;
	}
	log_warning("outbox: %s: %s; cannot move it to %s/" FAILED ": %s", display, reason, o->dir,
		    strerror(r < 0 ? -r : EEXIST));
}

/* ------------------------------------------------------------------------ */
/* Waiting for a folder */

static bool deferred_has(const struct outbox *o, const char *rel)
{
	for (size_t i = 0; i < o->n_deferred; i++)
		if (str_eq(o->deferred[i], rel))
			return true;
	return false;
}

static void deferred_add(struct outbox *o, const char *rel)
{
	o->deferred = xreallocarray(o->deferred, o->n_deferred + 1, sizeof(*o->deferred));
	o->deferred[o->n_deferred++] = xstrdup(rel);
}

static void deferred_forget(struct outbox *o, const char *rel)
{
	for (size_t i = 0; i < o->n_deferred; i++)
		if (str_eq(o->deferred[i], rel)) {
			free(o->deferred[i]);
			o->deferred[i] = o->deferred[--o->n_deferred];
			return;
		}
}

/* ------------------------------------------------------------------------ */
/* Trying again later */

unsigned outbox_retry_ms = OUTBOX_RETRY_MS;

/*
 * A rescan in outbox_retry_ms, unless one is due already: what is left
 * "trying again later" is tried again even when no sync comes to rescan
 * (the account offline, or the store full: no sync either).
 */
static void retry_later(struct outbox *o)
{
	if (!o->retry || o->retry_armed)
		return;
	if (cpmsync_loop_timer_set(o->retry, outbox_retry_ms, 0) == 0)
		o->retry_armed = true;
}

/*
 * A store error that says nothing of the file (of size bytes) and may
 * pass: the store's database or disk full (SQLITE_FULL; ENOSPC or EDQUOT
 * under the database or a pack file; EFBIG there, a file size limit),
 * the store busy, out of memory, an I/O error; the store's file removed
 * under the daemon (which stops, and its next start makes a new store:
 * the claim is stored then) or found damaged (stored once it is mended).
 * Not a reason for .failed, which would leave the file to the user.
 * -EFBIG is also the verdict on a message over CPMSYNC_OP_MAX_MESSAGE_SIZE
 * (with its line ends as CRLF, which at most doubles it): only a file of
 * at most half that size cannot be the one refused.
 */
static bool store_may_pass(int r, uint64_t size)
{
	if (r == -EFBIG)
		return size <= CPMSYNC_OP_MAX_MESSAGE_SIZE / 2;
	return r == -CPMSYNC_E_STORE_FULL || r == -ENOSPC || r == -EDQUOT ||
	       r == -CPMSYNC_E_STORE_BUSY || r == -ENOMEM || r == -EIO ||
	       r == -CPMSYNC_E_STORE_GONE || r == -CPMSYNC_E_STORE_CORRUPT;
}

static size_t held_find(const struct outbox *o, const char *rel)
{
	size_t i;

	for (i = 0; i < o->n_held; i++)
		if (str_eq(o->held[i].rel, rel))
			break;
	return i;
}

/*
 * The claim rel could not be stored for now (error r, store_may_pass()):
 * it stays in the claim area and is tried again.  Logged as a warning
 * once, and again when the error changes.
 */
static void held_add(struct outbox *o, const char *rel, int r)
{
	size_t i = held_find(o, rel);

	if (i == o->n_held) {
		o->held = xreallocarray(o->held, o->n_held + 1, sizeof(*o->held));
		o->held[o->n_held++] = (struct held){ .rel = xstrdup(rel) };
	}
	if (o->held[i].r != r)
		log_warning("outbox: %s: cannot store it for now: %s (%s); left as %s/" CLAIMED
			    "/%s, trying again within %u s and after each sync",
			    rel, cpmsync_strerror(r), cpmsync_store_error(o->store), o->dir, rel,
			    (outbox_retry_ms + 999) / 1000);
	else
		log_debug("outbox: %s: still cannot store it: %s (%s)", rel, cpmsync_strerror(r),
			  cpmsync_store_error(o->store));
	o->held[i].r = r;
	retry_later(o);
}

static void held_forget(struct outbox *o, const char *rel)
{
	size_t i = held_find(o, rel);

	if (i == o->n_held)
		return;
	free(o->held[i].rel);
	o->held[i] = o->held[--o->n_held];
}

static int find_on_server(const struct cpmsync_folder_info *f, void *userdata)
{
	(void)userdata;
	return f->on_server ? 1 : 0;
}

/* Has the account ever synced (is any folder of it on the server)? */
static bool account_synced(struct outbox *o, const char *account)
{
	return cpmsync_store_foreach_folder(o->store, account, find_on_server, NULL) == 1;
}

static bool account_known(struct outbox *o, const char *account)
{
	return !o->cb.account_known || o->cb.account_known(o->userdata, account);
}

/* ------------------------------------------------------------------------ */
/* Checking a file */

/* ------------------------------------------------------------------------ */
/* Finding the stored copy of a claim */

struct candidates {
	uint64_t size;
	int64_t *ids;
	size_t n;
};

static int collect_candidate(const struct cpmsync_message_info *m, void *userdata)
{
	struct candidates *c = userdata;

	if (m->size != c->size || !m->has_body)
		return 0;
	c->ids = xreallocarray(c->ids, c->n + 1, sizeof(*c->ids));
	c->ids[c->n++] = m->id;
	return 0;
}

/* Does message id have exactly the bytes of fd (size bytes)? */
static bool same_body(struct outbox *o, int64_t id, int fd, uint64_t size)
{
	_cleanup_close_ int mfd = -1;
	char a[65536], b[65536];
	uint64_t off = 0;
	struct stat st;

	mfd = memfd_create("cpm-syncd-outbox", MFD_CLOEXEC);
	if (mfd < 0 || cpmsync_store_read_body(o->store, id, mfd) < 0 || fstat(mfd, &st) < 0 ||
	    (uint64_t)st.st_size != size)
		return false;
	while (off < size) {
		size_t want = size - off < sizeof(a) ? (size_t)(size - off) : sizeof(a);
		ssize_t na = pread(fd, a, want, (off_t)off);
		ssize_t nb = pread(mfd, b, want, (off_t)off);

		if (na != (ssize_t)want || nb != (ssize_t)want || memcmp(a, b, want) != 0)
			return false;
		off += want;
	}
	return true;
}

/*
 * Whether .pending/<id> refers to message id: it holds a file.  An empty
 * one is a claim_done() cut short between its mkdir and its rename: the
 * message is then the claim's, still to be matched (else it would be
 * stored a second time).  One that cannot be read counts as referring.
 */
static bool pending_id_exists(const struct outbox *o, int64_t id)
{
	_cleanup_free_ char *p = xasprintf(PENDING "/%" PRId64, id);
	_cleanup_close_ int dfd = open_beneath(o->root, p, O_RDONLY | O_DIRECTORY);
	char **names;
	size_t n = 0;

	if (dfd < 0)
		return dfd != -ENOENT;
	names = list_dir(dfd, &n);
	if (!names)
		return true;
	free_names(names);
	return n > 0;
}

/*
 * The message a claim was stored as before a crash: same size and bytes,
 * in its folder, not referred to by a .pending/<id>; newest first.  0 if
 * there is none.
 */
static int64_t find_stored_copy(struct outbox *o, const char *account, const char *folder, int fd,
				uint64_t size)
{
	struct candidates c = { .size = size };
	int64_t folder_id, found = 0;

	if (cpmsync_store_find_folder(o->store, account, folder, &folder_id) < 0)
		return 0;
	if (cpmsync_store_foreach_message(o->store, folder_id, 0, 0, collect_candidate, &c) < 0) {
		free(c.ids);
		return 0;
	}
	for (size_t i = c.n; i-- > 0 && !found;)
		if (!pending_id_exists(o, c.ids[i]) && same_body(o, c.ids[i], fd, size))
			found = c.ids[i];
	free(c.ids);
	return found;
}

/* ------------------------------------------------------------------------ */
/* Storing */

/* Removes empty claim directories from CLAIMED/reldir up to CLAIMED. */
static void prune_claim_dirs(struct outbox *o, const char *reldir)
{
	_cleanup_free_ char *p = xstrdup(reldir);

	while (*p) {
		_cleanup_free_ char *path = xasprintf(CLAIMED "/%s", p);
		char *slash;

		if (rmdir_beneath(o->root, path) < 0)
			return;
		slash = strrchr(p, '/');
		if (slash)
			*slash = '\0';
		else
			*p = '\0';
	}
}

/* Step 3: the claim name in cfd (CLAIMED/<rel>) becomes .pending/<id>/<name>. */
static void claim_done(struct outbox *o, int cfd, const char *rel, int64_t id)
{
	_cleanup_free_ char *dir = NULL, *to = NULL, *reldir = outbox_dir_part(rel);
	_cleanup_close_ int pfd = -1;
	const char *name = outbox_base_part(rel);
	int r;

	dir = xasprintf(PENDING "/%" PRId64, id);
	pfd = mkdir_beneath(o->root, dir);
	r = pfd < 0 ? pfd : 0;
	for (unsigned i = 0; r == 0 && i < 100; i++) {
		free(to);
		to = i ? xasprintf("%s.%u", name, i) : xstrdup(name);
		r = rename_noreplace(cfd, name, pfd, to);
		if (r == -EEXIST)
			r = 0;
		else
			break;
	}
	if (r < 0) {
		log_warning("outbox: %s is stored as message %" PRId64
			    " but cannot be moved to %s/%s: %s; the next scan "
			    "will match it again",
			    rel, id, o->dir, dir, strerror(-r));
		retry_later(o);
		return;
	}
	prune_claim_dirs(o, reldir);
}

/*
 * Opens the claim name in cfd (cdir below the outbox; rel names it in
 * messages) to be stored: looked at before it is opened (a FIFO or device
 * is never opened) and again after, the same file.  Returns the fd and
 * *st, or -1: a file that cannot be stored was moved to .failed, anything
 * else is left for the next scan.
 */
static int open_claim(struct outbox *o, int cfd, const char *cdir, const char *name,
		      const char *rel, struct stat *st)
{
	_cleanup_free_ char *why = NULL;
	struct stat st2;
	int fd;

	if (fstatat(cfd, name, st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			log_warning("outbox: cannot stat %s/%s/%s: %s", o->dir, cdir, name,
				    strerror(errno));
		return -1;
	}
	why = outbox_check_stat(st, geteuid());
	if (why) {
		move_to_failed(o, cfd, name, name, rel, why);
		return -1;
	}
	fd = openat(cfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT)
		return -1;
	if (fd < 0 || fstat(fd, &st2) < 0) {
		log_warning("outbox: cannot open %s/%s/%s: %s; trying again later", o->dir, cdir,
			    name, strerror(errno));
		if (fd >= 0)
			close(fd);
		retry_later(o);
		return -1;
	}
	if (st2.st_dev != st->st_dev || st2.st_ino != st->st_ino) {
		close(fd);
		return -1; /* replaced meanwhile: the next scan looks again */
	}
	*st = st2;
	why = outbox_check_stat(st, geteuid());
	if (why) {
		close(fd);
		move_to_failed(o, cfd, name, name, rel, why);
		return -1;
	}
	return fd;
}

/* ------------------------------------------------------------------------ */
/* CPM objects: a file directly in <outbox>/<account>/ */

static const char *cpm_root_of(struct outbox *o, const char *account)
{
	const char *root = o->cb.cpm_root ? o->cb.cpm_root(o->userdata, account) : NULL;

	return root ? root : "Default";
}

struct folder_names {
	char *account, *name;
};

static int get_names(const struct cpmsync_folder_info *f, void *userdata)
{
	struct folder_names *n = userdata;

	n->account = xstrdup(f->account);
	n->name = xstrdup(f->name);
	return 0;
}

/* What filing a claim asks of the folder it would go into. */
struct object_check {
	struct outbox *o;
	const char *account;
	int fd;
	uint64_t size;
	bool check_copy;
	int64_t copy_id; /* out: the claim's copy, stored before a restart */
	char *why;	 /* out: the folder is refused */
};

static int object_folder_check(const char *folder, void *userdata)
{
	struct object_check *x = userdata;
	struct outbox *o = x->o;

	if (x->check_copy) {
		x->copy_id = find_stored_copy(o, x->account, folder, x->fd, x->size);
		if (x->copy_id > 0)
			return -EEXIST;
	}
	if (o->cb.folder_synced && !o->cb.folder_synced(o->userdata, x->account, folder)) {
		x->why = xasprintf("its folder '%s' is not in the folders setting of account '%s': "
				   "it would be created on the server but not kept here",
				   folder, x->account);
		return -EINVAL;
	}
	return 0;
}

/*
 * The claim of a CPM object, rel "<account>/<name>", in cfd (which is cdir,
 * .pending/claimed/<account>): filed with cpmsync_op_file_object_fd() (its
 * folders created as needed, its header read once) with the same steps 2
 * and 3 as a file of a folder; check_copy looks for a stored copy in the
 * folder it would be filed in.  The same object filed before (the rule of
 * cpmsync_op_store_object_fd()) is that copy, not stored again.
 */
static void process_object_claim(struct outbox *o, int cfd, const char *cdir, const char *rel,
				 bool check_copy)
{
	_cleanup_free_ char *account = outbox_dir_part(rel), *why = NULL;
	const char *name = outbox_base_part(rel), *root;
	_cleanup_close_ int fd = -1;
	int64_t id = 0, folder_id = 0;
	struct folder_names names = { 0 };
	struct object_check x;
	struct stat st;
	int r;

	if (!account_known(o, account)) {
		why = xasprintf("unknown account '%s' (not in the configuration)", account);
		move_to_failed(o, cfd, name, name, rel, why);
		return;
	}
	fd = open_claim(o, cfd, cdir, name, rel, &st);
	if (fd < 0)
		return;
	root = cpm_root_of(o, account);
	x = (struct object_check){ o, account, fd, (uint64_t)st.st_size, check_copy, 0, NULL };
	r = cpmsync_op_file_object_fd(o->store, account, root, fd, (uint64_t)st.st_size, NULL, 0,
				      object_folder_check, &x, &folder_id, &id);
	if (x.copy_id > 0) {
		log_info("outbox: %s was stored as message %" PRId64 " before a restart", rel,
			 x.copy_id);
		claim_done(o, cfd, rel, x.copy_id);
		return;
	}
	if (x.why) {
		move_to_failed(o, cfd, name, name, rel, x.why);
		free(x.why);
		return;
	}
	if (r < 0 && store_may_pass(r, (uint64_t)st.st_size)) {
		held_add(o, rel, r); /* not a verdict on the file */
		return;
	}
	held_forget(o, rel);
	if (r < 0) {
		why = r == -EINVAL ? xasprintf("cannot file it as a CPM object in account '%s': %s",
					       account, cpmsync_store_error(o->store))
				   : xasprintf("cannot file it in account '%s': %s (%s)", account,
					       cpmsync_strerror(r), cpmsync_store_error(o->store));
		move_to_failed(o, cfd, name, name, rel, why);
		return;
	}
	if (r > 0) {
		log_info("outbox: %s is message %" PRId64 " of account '%s' already (the same "
			 "object, filed before): not stored again",
			 rel, id, account);
		claim_done(o, cfd, rel, id);
		return;
	}
	if (cpmsync_store_get_folder(o->store, folder_id, get_names, &names) < 0 || !names.name) {
		free(names.name); /* cannot be read: its id, as before */
		names.name = xasprintf("%" PRId64, folder_id);
	}
	log_info("outbox: filed %s (%" PRIu64 " bytes) as message %" PRId64 " in folder '%s'"
		 " of account '%s'",
		 rel, (uint64_t)st.st_size, id, names.name, account);
	free(names.account);
	free(names.name);
	claim_done(o, cfd, rel, id);
	if (o->cb.stored)
		o->cb.stored(o->userdata, account);
}

/* ------------------------------------------------------------------------ */
/* Claims (steps 1 to 3) */

/*
 * Stores the claim .pending/claimed/<rel> (steps 2 and 3), or fails it.
 * check_copy: it may have been stored before a crash.
 */
static void process_claim(struct outbox *o, const char *rel, bool check_copy)
{
	_cleanup_free_ char *account = NULL, *folder = NULL, *name = NULL;
	_cleanup_free_ char *cdir = NULL, *reldir = outbox_dir_part(rel), *why = NULL;
	_cleanup_close_ int cfd = -1, fd = -1;
	const char *base = outbox_base_part(rel);
	struct stat st;
	int64_t id = 0;
	int r;

	cdir = *reldir ? xasprintf(CLAIMED "/%s", reldir) : xstrdup(CLAIMED);
	cfd = open_beneath(o->root, cdir, O_RDONLY | O_DIRECTORY);
	if (cfd < 0) {
		if (cfd != -ENOENT) {
			log_warning("outbox: cannot open %s/%s: %s; trying again later", o->dir,
				    cdir, strerror(-cfd));
			retry_later(o);
		}
		return;
	}
	r = (int)outbox_split_rel(rel, &account, &folder, &name);
	if (r == OUTBOX_IN_ACCOUNT) {
		process_object_claim(o, cfd, cdir, rel, check_copy);
		return;
	}
	if (r != OUTBOX_IN_FOLDER) {
		move_to_failed(o, cfd, base, base, rel, "is not in a folder of an account");
		return;
	}
	if (!account_known(o, account)) {
		why = xasprintf("unknown account '%s' (not in the "
				"configuration)",
				account);
		move_to_failed(o, cfd, name, name, rel, why);
		return;
	}
	fd = open_claim(o, cfd, cdir, name, rel, &st);
	if (fd < 0)
		return;

	if (check_copy)
		id = find_stored_copy(o, account, folder, fd, (uint64_t)st.st_size);
	if (id > 0) {
		log_info("outbox: %s was stored as message %" PRId64 " before a restart", rel, id);
		claim_done(o, cfd, rel, id);
		return;
	}

	r = cpmsync_op_store_fd(o->store, account, folder, fd, (uint64_t)st.st_size, NULL, 0, &id);
	if (r == -CPMSYNC_E_NOT_FOUND && !account_synced(o, account)) {
		/* Left in the claim area; the next scan retries. */
		log_debug("outbox: %s: folder '%s' is not known yet; trying "
			  "again after a sync",
			  rel, folder);
		return;
	}
	if (r < 0 && store_may_pass(r, (uint64_t)st.st_size)) {
		held_add(o, rel, r); /* not a verdict on the file */
		return;
	}
	held_forget(o, rel);
	if (r < 0) {
		if (r == -CPMSYNC_E_NOT_FOUND)
			why = xasprintf("no folder '%s' in account '%s'", folder, account);
		else if (r == -EINVAL)
			why = xasprintf("cannot store it in folder '%s' of account '%s': %s",
					folder, account, cpmsync_store_error(o->store));
		else
			why = xasprintf("cannot store it in folder '%s' of account '%s': %s (%s)",
					folder, account, cpmsync_strerror(r),
					cpmsync_store_error(o->store));
		move_to_failed(o, cfd, name, name, rel, why);
		return;
	}
	log_info("outbox: stored %s (%" PRIu64 " bytes) as message %" PRId64
		 " in folder '%s' of account '%s'",
		 rel, (uint64_t)st.st_size, id, folder, account);
	claim_done(o, cfd, rel, id);
	if (o->cb.stored)
		o->cb.stored(o->userdata, account);
}

/*
 * Step 1: the file rel, in dfd, is renamed to .pending/claimed/<rel>,
 * durably; then it is stored (process_claim()).
 */
static void claim_and_store(struct outbox *o, int dfd, const char *rel)
{
	_cleanup_free_ char *reldir = outbox_dir_part(rel), *cdir = NULL;
	_cleanup_close_ int cfd = -1;
	const char *name = outbox_base_part(rel);
	int r;

	cdir = xasprintf(CLAIMED "/%s", reldir);
	cfd = mkdir_beneath(o->root, cdir);
	r = cfd < 0 ? cfd : rename_noreplace(dfd, name, cfd, name);
	if (r == -ENOENT)
		return;
	if (r < 0) {
		log_warning("outbox: %s: cannot move it to %s/%s: %s; trying "
			    "again later",
			    rel, o->dir, cdir,
			    r == -EEXIST ? "a file of that name is still being stored"
			    : r == -ENOTDIR || r == -ELOOP ? "not a directory (a symbolic link?)"
							   : strerror(-r));
		retry_later(o);
		return;
	}
	(void)fsync(cfd);
	process_claim(o, rel, false);
}

/*
 * Whether a writer still has the file name in dfd open: a read lease
 * cannot be had then (fcntl(2) F_SETLEASE, EAGAIN).  A scan (every sync
 * asks for one) must not take a file still being written in place: it
 * would be stored cut short, and the rest lost with it.  Its close brings
 * IN_CLOSE_WRITE, and it is taken then.  Where a lease cannot tell (a file
 * system without them; we own every file we take, so it is allowed):
 * false, as before.
 */
static bool being_written(int dfd, const char *name)
{
	_cleanup_close_ int fd =
		openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return false;
	if (fcntl(fd, F_SETLEASE, F_RDLCK) < 0)
		return errno == EAGAIN;
	(void)fcntl(fd, F_SETLEASE, F_UNLCK);
	return false;
}

/*
 * A regular file that a writer still has open is left until its close,
 * before any check of what it holds: open and not yet written, it is 0
 * bytes, and "empty file" would send it to .failed while the writer goes
 * on filling it there.  Said once per scan at debug level.
 */
static bool still_open(int dfd, const char *name, const struct stat *st, const char *rel)
{
	if (!S_ISREG(st->st_mode) || !being_written(dfd, name))
		return false;
	log_debug("outbox: %s is still open for writing; taken once closed", rel);
	return true;
}

/* A file appeared at rel in the drop tree; dfd is its directory. */
static void handle_drop(struct outbox *o, int dfd, const char *rel)
{
	_cleanup_free_ char *account = NULL, *folder = NULL, *name = NULL;
	_cleanup_free_ char *why = NULL, *reldir = outbox_dir_part(rel);
	const char *base = outbox_base_part(rel);
	struct stat st;
	int64_t folder_id;
	int r;

	if (!dir_in_place(o, dfd, reldir)) {
		log_warning("outbox: %s: its directory %s was moved or replaced (a "
			    "symbolic link?) before the file was taken; leaving it alone",
			    rel, *reldir ? reldir : o->dir);
		return;
	}
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
		return; /* gone, or a directory (scanned as such) */
	r = (int)outbox_split_rel(rel, &account, &folder, &name);
	if (r == OUTBOX_IN_ROOT) {
		move_to_failed(o, dfd, base, base, rel,
			       "is directly in the outbox; files go into "
			       "ACCOUNT/FOLDER/ below it");
		return;
	}
	if (r == OUTBOX_IN_ACCOUNT) {
		/* A CPM object: filed under the account's CPM root. */
		if (!account_known(o, reldir)) {
			why = xasprintf("unknown account '%s' (not in the configuration)", reldir);
			move_to_failed(o, dfd, base, base, rel, why);
			return;
		}
		if (still_open(dfd, base, &st, rel))
			return;
		why = outbox_check_stat(&st, geteuid());
		if (why) {
			move_to_failed(o, dfd, base, base, rel, why);
			return;
		}
		claim_and_store(o, dfd, rel);
		return;
	}
	if (!account_known(o, account)) {
		why = xasprintf("unknown account '%s' (not in the "
				"configuration)",
				account);
		move_to_failed(o, dfd, name, name, rel, why);
		return;
	}
	if (still_open(dfd, name, &st, rel))
		return;
	why = outbox_check_stat(&st, geteuid());
	if (why) {
		move_to_failed(o, dfd, name, name, rel, why);
		return;
	}
	r = cpmsync_store_find_folder(o->store, account, folder, &folder_id);
	if (r == -CPMSYNC_E_NOT_FOUND) {
		if (!account_synced(o, account)) {
			if (!deferred_has(o, rel)) {
				log_info("outbox: %s: account '%s' has not "
					 "synced yet and folder '%s' is not "
					 "known; leaving it until it is",
					 rel, account, folder);
				deferred_add(o, rel);
			}
			return;
		}
		deferred_forget(o, rel);
		why = xasprintf("no folder '%s' in account '%s'", folder, account);
		move_to_failed(o, dfd, name, name, rel, why);
		return;
	}
	if (r < 0) {
		log_warning("outbox: %s: cannot look up folder '%s': %s; "
			    "trying again later",
			    rel, folder, cpmsync_strerror(r));
		retry_later(o);
		return;
	}
	deferred_forget(o, rel);
	claim_and_store(o, dfd, rel);
}

/* ------------------------------------------------------------------------ */
/* .pending */

struct message_state {
	uint32_t uid;
	int64_t folder_id;
};

static int get_state(const struct cpmsync_message_info *m, void *userdata)
{
	struct message_state *s = userdata;

	s->uid = m->uid;
	s->folder_id = m->folder_id;
	return 0;
}

/*
 * Whether reason ("[CODE] text" or "text", cpmsync_store_message_refused())
 * is of an APPEND given up here, never sent (its text begins with
 * CPMSYNC_FAILED_OP_NOT_SENT): then that prefix is taken out of it.
 */
static bool reason_not_sent(char *reason)
{
	size_t len = strlen(CPMSYNC_FAILED_OP_NOT_SENT);
	char *t = reason, *end;

	if (*t == '[' && (end = strstr(t, "] ")))
		t = end + 2;
	if (strncmp(t, CPMSYNC_FAILED_OP_NOT_SENT, len))
		return false;
	memmove(t, t + len, strlen(t + len) + 1);
	return true;
}

/*
 * Message *id of .pending/<*id> (*dir) is gone from the store: a message
 * moved locally before it reached the server is stored anew, and one
 * copied before it reached the server, then removed, lives on as its copy
 * (cpmsync_store_message_moved()).  Then the files wait for that message:
 * .pending/<*id> is renamed after it, and *id and *dir say so.  1: moved,
 * 0: removed for good, or a store error (logged; looked at again later).
 */
static int follow_moved(struct outbox *o, int64_t *id, char **dir)
{
	_cleanup_free_ char *to_dir = NULL;
	_cleanup_close_ int pfd = -1;
	struct folder_names names = { 0 };
	struct message_state state = { 0 };
	int64_t to;
	int r;

	r = cpmsync_store_message_moved(o->store, *id, &to);
	if (r < 0)
		log_debug("outbox: cannot look up where message %" PRId64 " went: %s", *id,
			  cpmsync_strerror(r));
	if (r <= 0)
		return r;
	if (cpmsync_store_get_message(o->store, to, get_state, &state) == 0)
		cpmsync_store_get_folder(o->store, state.folder_id, get_names, &names);
	log_info("outbox: message %" PRId64 " (%s/%s) was moved before it reached the "
		 "server: it is message %" PRId64 " in folder '%s' of account '%s' now",
		 *id, o->dir, *dir, to, names.name ? names.name : "?",
		 names.account ? names.account : "?");
	free(names.account);
	free(names.name);
	to_dir = xasprintf(PENDING "/%" PRId64, to);
	pfd = open_beneath(o->root, PENDING, O_RDONLY | O_DIRECTORY);
	r = pfd < 0 ? pfd
		    : rename_noreplace(pfd, outbox_base_part(*dir), pfd, outbox_base_part(to_dir));
	if (r < 0) /* followed all the same, each time it is looked at */
		log_warning("outbox: cannot rename %s/%s to %s: %s", o->dir, *dir, to_dir,
			    strerror(-r));
	else {
		free(*dir);
		*dir = TAKE_PTR(to_dir);
	}
	*id = to;
	return 1;
}

/*
 * Message id is gone from the store: had it reached the server before
 * (cpmsync_store_message_sent())?  Then it was stored and sent, and what
 * came after (moved by MoveMessages or by another client, deleted,
 * expunged) is no longer the outbox's business.  1: sent, 0: not, -1: a
 * store error (logged; looked at again later).
 */
static int gone_after_sent(struct outbox *o, int64_t id)
{
	int r = cpmsync_store_message_sent(o->store, id);

	if (r < 0)
		log_debug("outbox: cannot look up whether message %" PRId64
			  " reached the server: %s",
			  id, cpmsync_strerror(r));
	return r < 0 ? -1 : r > 0;
}

/* .pending/<id>/: done, refused, gone, or still on its way. */
static void check_pending_id(struct outbox *o, const char *id_str)
{
	_cleanup_free_ char *dir = NULL, *reason = NULL;
	_cleanup_close_ int dfd = -1;
	struct folder_names names = { 0 };
	struct message_state state = { 0 };
	char **files;
	size_t n = 0;
	int64_t id;
	int r;

	id = strtoll(id_str, NULL, 10);
	dir = xasprintf(PENDING "/%s", id_str);
	dfd = open_beneath(o->root, dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return;
	files = list_dir(dfd, &n);
	if (!files)
		return;
	if (n == 0) {
		rmdir_beneath(o->root, dir);
		free_names(files);
		return;
	}

	r = cpmsync_store_get_message(o->store, id, get_state, &state);
	if (r == -CPMSYNC_E_NOT_FOUND) {
		int moved = follow_moved(o, &id, &dir), sent = 0;

		if (moved > 0)
			r = cpmsync_store_get_message(o->store, id, get_state, &state);
		if (moved >= 0 && r == -CPMSYNC_E_NOT_FOUND)
			sent = gone_after_sent(o, id);
		if (moved < 0 || sent < 0) {
			free_names(files);
			return;
		}
		if (sent > 0) {
			for (size_t i = 0; i < n; i++) {
				if (unlinkat(dfd, files[i], 0) < 0 && errno != ENOENT)
					log_warning("outbox: cannot delete %s/%s/%s: %s", o->dir,
						    dir, files[i], strerror(errno));
				else
					log_info("outbox: %s (message %" PRId64
						 ") reached the server and was moved or "
						 "removed since; deleted the outbox copy",
						 files[i], id);
			}
			rmdir_beneath(o->root, dir);
			free_names(files);
			return;
		}
	}
	if (r == -CPMSYNC_E_NOT_FOUND) {
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *why =
				xasprintf("message %" PRId64 " was removed from the local "
					  "store (deleted, moved or expunged) before it "
					  "reached the server",
					  id);

			move_to_failed(o, dfd, files[i], files[i], files[i], why);
		}
		rmdir_beneath(o->root, dir);
	} else if (r < 0) {
		log_debug("outbox: cannot look up message %" PRId64 ": %s", id,
			  cpmsync_strerror(r));
	} else if (state.uid != 0) {
		for (size_t i = 0; i < n; i++) {
			if (unlinkat(dfd, files[i], 0) < 0 && errno != ENOENT)
				log_warning("outbox: cannot delete %s/%s/%s: %s", o->dir, dir,
					    files[i], strerror(errno));
			else
				log_info("outbox: %s (message %" PRId64
					 ") is on the server (uid %" PRIu32
					 "); deleted the outbox copy",
					 files[i], id, state.uid);
		}
		rmdir_beneath(o->root, dir);
	} else if (cpmsync_store_message_refused(o->store, id, &reason) == 1) {
		/* Given up here or refused by the server: said as it was. */
		const char *refused =
			reason_not_sent(reason) ? "it was not sent" : "the server refused it";

		cpmsync_store_get_folder(o->store, state.folder_id, get_names, &names);
		r = cpmsync_op_discard(o->store, id);
		if (r < 0 && r != -CPMSYNC_E_NOT_FOUND) {
			log_warning("outbox: message %" PRId64 " failed (%s: %s) but it cannot "
				    "be taken back: %s",
				    id, refused, reason, cpmsync_strerror(r));
		} else {
			for (size_t i = 0; i < n; i++) {
				_cleanup_free_ char *display =
					xasprintf("%s/%s/%s", names.account ? names.account : "?",
						  names.name ? names.name : "?", files[i]);
				_cleanup_free_ char *why = xasprintf("%s (message %" PRId64 "): %s",
								     refused, id, reason);

				move_to_failed(o, dfd, files[i], files[i], display, why);
			}
			rmdir_beneath(o->root, dir);
		}
		free(names.account);
		free(names.name);
	}
	free_names(files);
}

/* Claims in dfd, which is .pending/claimed/<rel>: left by a crash or a deferral. */
static void scan_claims(struct outbox *o, int dfd, const char *rel, unsigned depth)
{
	char **names;
	size_t n = 0;

	names = list_dir(dfd, &n);
	if (!names)
		return;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *child = join(rel, names[i]);
		struct stat st;

		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub = -1;

			if (depth >= OUTBOX_MAX_DEPTH)
				continue;
			sub = openat(dfd, names[i], DIR_FLAGS);
			if (sub < 0)
				continue;
			scan_claims(o, sub, child, depth + 1);
			(void)unlinkat(dfd, names[i], AT_REMOVEDIR); /* if empty */
			continue;
		}
		process_claim(o, child, true);
	}
	free_names(names);
}

static void scan_pending(struct outbox *o)
{
	_cleanup_close_ int pfd = -1, cfd = -1;
	char **names;
	size_t n = 0;

	cfd = open_beneath(o->root, CLAIMED, O_RDONLY | O_DIRECTORY);
	if (cfd >= 0)
		scan_claims(o, cfd, "", 1);
	pfd = open_beneath(o->root, PENDING, O_RDONLY | O_DIRECTORY);
	if (pfd < 0)
		return;
	names = list_dir(pfd, &n);
	if (!names)
		return;
	for (size_t i = 0; i < n; i++)
		if (outbox_is_id(names[i]))
			check_pending_id(o, names[i]);
	free_names(names);
}

/* ------------------------------------------------------------------------ */
/* Watches and the drop tree */

static struct watch_entry *watch_find(struct outbox *o, int wd)
{
	for (size_t i = 0; i < o->n_watches; i++)
		if (o->watches[i].wd == wd)
			return &o->watches[i];
	return NULL;
}

static void watch_drop_at(struct outbox *o, size_t i, bool rm)
{
	if (rm)
		inotify_rm_watch(o->fd, o->watches[i].wd);
	close(o->watches[i].dfd);
	free(o->watches[i].rel);
	o->watches[i] = o->watches[--o->n_watches];
}

/*
 * Watches the directory dfd, which is rel; the watch keeps its own copy of
 * dfd.  The watch is put on the directory dfd is open on (through
 * /proc/self/fd), not on a path that may have changed since.  An existing
 * watch on the same inode gets the new name.  Returns 0 or -errno (logged,
 * except for a directory that is gone).
 */
static int watch_add(struct outbox *o, const char *rel, int dfd)
{
	char proc[64];
	struct watch_entry *e;
	int wd, r, copy;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dfd);
	wd = inotify_add_watch(o->fd, proc, DIR_MASK);
	if (wd < 0 && errno == ENOENT && access("/proc/self/fd", X_OK) < 0) {
		/* No /proc: by name, the last component not followed. */
		_cleanup_free_ char *path = path_of(o, rel);

		wd = inotify_add_watch(o->fd, path, DIR_MASK | IN_DONT_FOLLOW);
	}
	if (wd < 0) {
		r = -errno;
		if (r != -ENOENT && r != -ENOTDIR)
			log_warning("outbox: cannot watch %s/%s: %s%s", o->dir, rel, strerror(-r),
				    r == -ENOSPC ? " (fs.inotify.max_user_watches)" : "");
		return r;
	}
	copy = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	if (copy < 0) {
		r = -errno;
		log_warning("outbox: cannot watch %s/%s: %s", o->dir, rel, strerror(-r));
		return r;
	}
	/* A directory of that name that was replaced: forget the old one. */
	for (size_t i = 0; i < o->n_watches;)
		if (o->watches[i].wd != wd && str_eq(o->watches[i].rel, rel))
			watch_drop_at(o, i, true);
		else
			i++;
	e = watch_find(o, wd);
	if (e) {
		free(e->rel);
		e->rel = xstrdup(rel);
		close(e->dfd);
		e->dfd = copy;
		return 0;
	}
	if (o->n_watches == o->alloc_watches) {
		o->alloc_watches = o->alloc_watches ? o->alloc_watches * 2 : 16;
		o->watches = xreallocarray(o->watches, o->alloc_watches, sizeof(*o->watches));
	}
	o->watches[o->n_watches++] = (struct watch_entry){
		.wd = wd,
		.dfd = copy,
		.rel = xstrdup(rel),
	};
	return 0;
}

/* rel left the tree: unwatch it and everything below it. */
static void watch_remove_tree(struct outbox *o, const char *rel)
{
	size_t n = strlen(rel);

	for (size_t i = 0; i < o->n_watches;) {
		const char *r = o->watches[i].rel;

		if (strncmp(r, rel, n) == 0 && (r[n] == '\0' || r[n] == '/'))
			watch_drop_at(o, i, true);
		else
			i++;
	}
}

static void take_next(struct cpmsync_loop_source *src, void *userdata);

/* rel (a file below the outbox) is to be taken: queued (todo); the
 * scan or event handling that found it takes the first batch. */
static void todo_add(struct outbox *o, const char *rel)
{
	if (o->n_todo % 64 == 0)
		o->todo = xreallocarray(o->todo, o->n_todo + 64, sizeof(*o->todo));
	o->todo[o->n_todo++] = xstrdup(rel);
}

/*
 * Takes up to max queued files (each from its directory opened anew
 * beneath the outbox: what it was at the event may have moved since),
 * then asks for the next batch from the next loop iteration, or, the
 * queue empty, runs a rescan asked for meanwhile.
 */
static void take_some(struct outbox *o, size_t max)
{
	o->busy++;
	for (size_t done = 0; done < max && o->todo_head < o->n_todo; done++) {
		_cleanup_free_ char *rel = o->todo[o->todo_head];
		_cleanup_free_ char *reldir = outbox_dir_part(rel);
		_cleanup_close_ int dfd = -1;

		o->todo[o->todo_head++] = NULL;
		dfd = open_beneath(o->root, reldir, O_RDONLY | O_DIRECTORY);
		if (dfd < 0)
			continue; /* gone with its directory */
		if (o->cb.before_take)
			o->cb.before_take(o->userdata, rel);
		handle_drop(o, dfd, rel);
	}
	if (o->todo_head == o->n_todo) {
		free(o->todo);
		o->todo = NULL;
		o->n_todo = o->todo_head = 0;
	}
	o->busy--;
}

/*
 * One batch now (a drop of a few files is taken at once, as before the
 * queue), the rest from the next loop iterations.  Not while starting
 * (outbox_new() takes everything) nor inside a scan (its end does).
 */
static void take_batch(struct outbox *o)
{
	/* A batch is due from the next iteration already: one per iteration
	 * (the claims' own inotify events come every iteration too). */
	if (o->starting || o->busy || o->todo_src)
		return;
	if (o->n_todo)
		take_some(o, OUTBOX_TAKE_PER_TURN);
	/* The rest, or a rescan asked for by a callback meanwhile: from the
	 * next iteration (a loop, not a recursion). */
	if ((o->n_todo || o->rescan_wanted) && !o->todo_src &&
	    cpmsync_loop_defer(o->loop, take_next, o, NULL, &o->todo_src) < 0)
		o->todo_src = NULL; /* the next event or rescan goes on */
}

static void rescan_now(struct outbox *o);

static void take_next(struct cpmsync_loop_source *src, void *userdata)
{
	struct outbox *o = userdata;

	(void)src;
	o->todo_src = NULL; /* a deferred call runs once */
	if (o->n_todo)
		take_batch(o);
	else if (o->rescan_wanted && !o->busy)
		rescan_now(o);
}

/* Watches the directory dfd, which is rel, and queues what is in it, recursively. */
static void scan_dir(struct outbox *o, int dfd, const char *rel)
{
	unsigned depth = outbox_depth_of(rel);
	char **names;
	size_t n = 0;

	if (depth > OUTBOX_MAX_DEPTH) {
		log_warning("outbox: %s/%s is more than %d levels deep; ignoring "
			    "it",
			    o->dir, rel, OUTBOX_MAX_DEPTH);
		return;
	}
	/* Watch first, then list: nothing can slip in between. */
	watch_add(o, rel, dfd);
	names = list_dir(dfd, &n);
	if (!names) {
		log_warning("outbox: cannot read %s/%s: %s", o->dir, rel, strerror(errno));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *child = NULL;
		struct stat st;

		if (outbox_name_ignored(names[i]))
			continue;
		child = join(rel, names[i]);
		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub = openat(dfd, names[i], DIR_FLAGS);

			if (sub >= 0)
				scan_dir(o, sub, child);
		} else {
			todo_add(o, child);
		}
	}
	free_names(names);
}

static void handle_event(struct outbox *o, const struct inotify_event *ev)
{
	_cleanup_free_ char *child = NULL;
	struct watch_entry *e;

	if (ev->wd == o->parent_wd) {
		/* The outbox's name in its parent: removed (no IN_DELETE_SELF
		 * comes while we hold it open), or made anew by someone. */
		if (ev->len && str_eq(ev->name, o->base) &&
		    (ev->mask & (IN_DELETE | IN_CREATE | IN_MOVED_TO))) {
			log_info("outbox: %s was %s; watching it again", o->dir,
				 ev->mask & IN_DELETE ? "removed" : "replaced");
			o->rescan_wanted = true;
		}
		return;
	}
	e = watch_find(o, ev->wd);
	if (!e)
		return;
	if (ev->mask & IN_IGNORED) {
		watch_drop_at(o, (size_t)(e - o->watches), false);
		return;
	}
	if ((ev->mask & IN_MOVE_SELF) && !*e->rel) {
		/* The outbox itself: made again and watched at once (on_inotify()
		 * rescans), not at the next sync's rescan. */
		log_info("outbox: %s was moved away; making it again", o->dir);
		o->rescan_wanted = true;
		return;
	}
	if (ev->len == 0 || outbox_name_ignored(ev->name))
		return;
	child = join(e->rel, ev->name);
	if (ev->mask & IN_ISDIR) {
		if (ev->mask & IN_MOVED_FROM) {
			watch_remove_tree(o, child);
		} else if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
			_cleanup_close_ int sub = -1;

			if (!dir_in_place(o, e->dfd, e->rel))
				return;
			sub = openat(e->dfd, ev->name, DIR_FLAGS);
			if (sub >= 0)
				scan_dir(o, sub, child);
		}
		return;
	}
	if (!(ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)))
		return;
	todo_add(o, child);
}

/*
 * (Re)opens the outbox directory when it is not open yet, or was removed
 * or replaced (its path is the configuration's; that one is followed).
 * 0 or -errno.
 */
static int open_root(struct outbox *o)
{
	_cleanup_close_ int pfd = -1;
	struct stat a, b;
	int fd, r;

	if (o->root >= 0 && stat(o->dir, &a) == 0 && fstat(o->root, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino && b.st_nlink > 0)
		return 0;
	r = mkdir_p(o->dir, 0700);
	if (r < 0)
		return r;
	fd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (o->root >= 0)
		close(o->root);
	o->root = fd;
	pfd = mkdir_beneath(o->root, PENDING);
	return pfd < 0 ? pfd : 0;
}

static void rescan_now(struct outbox *o)
{
	int r;

	if (o->n_todo) {
		/* What a scan of the folders would find is queued, or comes
		 * after it: that scan waits for the queue.  .pending is not
		 * in the queue: what a sync settled (appended, refused) is
		 * settled now, not after the last queued file (thousands of
		 * files take seconds). */
		if (o->root >= 0) {
			o->busy++;
			scan_pending(o);
			o->busy--;
		}
		o->rescan_wanted = true;
		return;
	}
	o->busy++;
	do {
		o->rescan_wanted = false;
		r = open_root(o);
		if (r < 0) {
			log_warning("outbox: cannot create %s: %s", o->dir, strerror(-r));
			continue;
		}
		/* Forget files that waited for their folder and are gone. */
		for (size_t i = 0; i < o->n_deferred;) {
			struct stat st;

			if (stat_beneath(o->root, o->deferred[i], &st) == -ENOENT)
				deferred_forget(o, o->deferred[i]);
			else
				i++;
		}
		/* And claims held for the store that are gone (moved by hand). */
		for (size_t i = 0; i < o->n_held;) {
			_cleanup_free_ char *claim = xasprintf(CLAIMED "/%s", o->held[i].rel);
			struct stat st;

			if (stat_beneath(o->root, claim, &st) == -ENOENT)
				held_forget(o, o->held[i].rel);
			else
				i++;
		}
		scan_pending(o);
		scan_dir(o, o->root, "");
	} while (o->rescan_wanted);
	o->busy--;
	take_batch(o);
}

static void on_inotify(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct outbox *o = userdata;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool overflow = false;

	(void)src;
	(void)events;
	o->busy++;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			if (ev->mask & IN_Q_OVERFLOW)
				overflow = true;
			else
				handle_event(o, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
	o->busy--;
	if (overflow) {
		log_warning("outbox: inotify queue overflow; scanning %s", o->dir);
		o->rescan_wanted = true;
	}
	take_batch(o);
	if (o->rescan_wanted && !o->busy)
		rescan_now(o);
}

static void on_retry(struct cpmsync_loop_source *src, void *userdata)
{
	struct outbox *o = userdata;

	(void)src;
	o->retry_armed = false;
	outbox_rescan(o);
}

/* ------------------------------------------------------------------------ */

void outbox_rescan(struct outbox *o)
{
	if (!o)
		return;
	if (o->busy) {
		o->rescan_wanted = true;
		return;
	}
	rescan_now(o);
}

int outbox_new(struct cpmsync_loop *loop, struct cpmsync_store *store, const char *dir,
	       const struct outbox_callbacks *cb, void *userdata, struct outbox **ret,
	       char **ret_error)
{
	struct outbox *o;
	int r;

	if (!loop || !store || !dir || !*dir || !ret) {
		if (ret_error)
			*ret_error = xstrdup("outbox_new: bad arguments");
		return -EINVAL;
	}
	o = xcalloc(1, sizeof(*o));
	o->loop = loop;
	o->store = store;
	o->dir = xstrdup(dir);
	/* "dir/" would give "dir//x" in messages. */
	for (size_t n = strlen(o->dir); n > 1 && o->dir[n - 1] == '/';)
		o->dir[--n] = '\0';
	if (cb)
		o->cb = *cb;
	o->userdata = userdata;
	o->root = -1;
	o->fd = -1;
	o->parent_wd = -1;

	r = open_root(o);
	if (r < 0) {
		if (ret_error)
			*ret_error = xasprintf("cannot create outbox %s/" PENDING ": %s", o->dir,
					       strerror(-r));
		goto fail;
	}
	o->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (o->fd < 0) {
		r = -errno;
		if (ret_error)
			*ret_error =
				xasprintf("cannot watch outbox %s: %s%s", o->dir, strerror(-r),
					  r == -EMFILE ? " (fs.inotify.max_user_instances)" : "");
		goto fail;
	}
	r = cpmsync_loop_add_fd(loop, o->fd, CPMSYNC_LOOP_IN, on_inotify, o, NULL, &o->io);
	if (r < 0) {
		if (ret_error)
			*ret_error = xasprintf("cannot watch outbox %s: %s", o->dir, strerror(-r));
		goto fail;
	}
	{
		_cleanup_free_ char *up = outbox_dir_part(o->dir);
		const char *parent = *up ? up : o->dir[0] == '/' ? "/" : ".";

		o->base = xstrdup(outbox_base_part(o->dir));
		o->parent_wd = inotify_add_watch(o->fd, parent,
						 IN_DELETE | IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
		if (o->parent_wd < 0)
			log_warning("outbox: cannot watch %s for the outbox's removal: %s", parent,
				    strerror(errno));
	}
	r = watch_add(o, "", o->root);
	if (r < 0) {
		if (ret_error)
			*ret_error = xasprintf("cannot watch outbox %s: %s", o->dir, strerror(-r));
		goto fail;
	}
	r = cpmsync_loop_add_timer(loop, outbox_retry_ms, 0, on_retry, o, NULL, &o->retry);
	if (r >= 0)
		r = cpmsync_loop_timer_set(o->retry, 0, 0); /* disarmed until needed */
	if (r < 0) {
		if (ret_error)
			*ret_error =
				xasprintf("cannot make the outbox's retry timer: %s", strerror(-r));
		goto fail;
	}
	o->starting = true;
	do {
		rescan_now(o);
		take_some(o, SIZE_MAX);
	} while (o->rescan_wanted); /* asked for by a callback meanwhile */
	o->starting = false;
	*ret = o;
	return 0;

fail:
	outbox_free(o);
	return r;
}

struct outbox *outbox_free(struct outbox *o)
{
	if (!o)
		return NULL;
	cpmsync_loop_source_remove(o->io);
	cpmsync_loop_source_remove(o->retry);
	cpmsync_loop_source_remove(o->todo_src);
	for (size_t i = o->todo_head; i < o->n_todo; i++)
		free(o->todo[i]);
	free(o->todo);
	if (o->fd >= 0)
		close(o->fd);
	if (o->root >= 0)
		close(o->root);
	for (size_t i = 0; i < o->n_watches; i++) {
		close(o->watches[i].dfd);
		free(o->watches[i].rel);
	}
	free(o->watches);
	for (size_t i = 0; i < o->n_deferred; i++)
		free(o->deferred[i]);
	free(o->deferred);
	for (size_t i = 0; i < o->n_held; i++)
		free(o->held[i].rel);
	free(o->held);
	free(o->dir);
	free(o->base);
	free(o);
	return NULL;
}
