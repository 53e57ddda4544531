/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "config-watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/select.h>
#include <sys/stat.h>

#include <inotifytools/inotify.h>
#include <inotifytools/inotifytools.h>

#include "util.h"

/*
 * libinotifytools 3.22 has one inotify fd in a static variable, opened
 * without IN_CLOEXEC or IN_NONBLOCK, and no function that returns it; its
 * only way to wait is inotifytools_next_events(), which blocks in select().
 * We want the fd in the cpmsync loop instead, so:
 *
 *   - setup goes through the library (inotifytools_initialize(),
 *     inotifytools_watch_file());
 *   - the fd is found afterwards: inotify_init() returns the lowest free
 *     descriptor, so we note that number just before initialising, and
 *     confirm it through /proc/self/fdinfo/N, which lists each inotify
 *     watch as "inotify wd:WD ino:INODE ..." (hex).  If that fails (another
 *     thread took the number), every fd of the process is tried the same
 *     way;
 *   - the loop polls the fd, and events are read with
 *     inotifytools_next_events(0, 1): a 0 s select() timeout, so it never
 *     blocks, and events the library buffered are returned first.  Every
 *     readiness callback drains the library's buffer, so none is left
 *     behind.
 *
 * select() limits the fd to FD_SETSIZE; a higher one is refused.
 * The library's state is process-wide: one watch per process.
 */

/*
 * IN_ATTRIB: a chmod (or chown) of the file is a change too: a file refused
 * for its mode ("chmod go-w it") loads once the user did as told.  It comes
 * with nothing else, not with a write or a read (IN_MODIFY, IN_ACCESS are
 * not watched), and is debounced with the rest.  But IN_ATTRIB also comes
 * for what changes nothing that config_load() or a login looks at: new
 * times (touch, utimensat(), a backup tool putting the atime back after
 * reading), extended attributes, the link count, a chmod to the same mode.
 * So an IN_ATTRIB alone is a change only when the file's mode, owner or
 * group differ from the ones last seen (struct file_attrs), or the file
 * cannot be stat()ed.
 */
#define WATCH_MASK                                                                                 \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_ATTRIB |        \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define FILE_EVENTS                                                                                \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_ATTRIB)

/* What an IN_ATTRIB alone must change to count: see attrs_changed(). */
struct file_attrs {
	bool known; /* stat() worked when last seen */
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

struct config_watch {
	struct cpmsync_loop *loop;
	char *dir;  /* absolute, no trailing '/' (but "/" itself) */
	char *base; /* the file's name in dir */
	void (*changed)(void *userdata);
	void *userdata;

	bool active; /* libinotifytools initialised and watching dir */
	int fd;	     /* libinotifytools' fd (borrowed), while active */
	int wd;
	struct cpmsync_loop_source *io;	      /* while active */
	struct cpmsync_loop_source *debounce; /* one-shot, re-armed */
	struct cpmsync_loop_source *retry;    /* while the directory is lost */
	bool config_hit;		      /* the debounce is for the file itself */
	struct file_attrs attrs;	      /* the file's, last seen */

	/* Other files watched the same way (config_watch_set_files()). */
	struct watched_file {
		char *path; /* as given */
		char *dir, *base;
		int wd;	      /* its directory's watch, -1 when none */
		bool changed; /* seen since the last debounce */
		struct file_attrs attrs;
	} * files;
	size_t n_files;
	void (*file_changed)(const char *path, void *userdata);
};

/* libinotifytools is process-global: at most one watch. */
static struct config_watch *the_watch;

/* Does /proc/self/fdinfo/fd list an inotify watch wd on inode ino? */
static bool fd_has_watch(int fd, int wd, ino_t ino)
{
	char path[64], line[512];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned int w;
		unsigned long long i;

		if (sscanf(line, "inotify wd:%x ino:%llx", &w, &i) == 2 && (int)w == wd &&
		    (ino_t)i == ino)
			found = true;
	}
	fclose(f);
	return found;
}

/* The fd that holds watch wd on inode ino: guess first, then search. */
static int find_inotify_fd(int guess, int wd, ino_t ino)
{
	struct dirent *de;
	int found = -ENOENT;
	DIR *d;

	if (guess >= 0 && fd_has_watch(guess, wd, ino))
		return guess;
	d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	while (found < 0 && (de = readdir(d))) {
		char *end;
		long fd;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		fd = strtol(de->d_name, &end, 10);
		if (*end || fd == dirfd(d) || fd > INT32_MAX)
			continue;
		if (fd_has_watch((int)fd, wd, ino))
			found = (int)fd;
	}
	closedir(d);
	return found;
}

/* Notes the attributes of dir/base as they are now (none if no stat()). */
static void attrs_seed(struct file_attrs *a, const char *dir, const char *base)
{
	_cleanup_free_ char *path = xasprintf("%s%s%s", dir, str_eq(dir, "/") ? "" : "/", base);
	struct stat st;

	*a = (struct file_attrs){ 0 };
	if (stat(path, &st) < 0)
		return;
	a->known = true;
	a->mode = st.st_mode;
	a->uid = st.st_uid;
	a->gid = st.st_gid;
}

/*
 * Is an event for dir/base a change?  One that is IN_ATTRIB alone is only
 * if the mode, owner or group differ from the ones last seen, or a stat()
 * fails now or failed then; any other is.  Notes the attributes now seen.
 */
static bool attrs_changed(struct file_attrs *a, const char *dir, const char *base, uint32_t mask)
{
	struct file_attrs was = *a;

	attrs_seed(a, dir, base);
	if ((mask & FILE_EVENTS) != IN_ATTRIB)
		return true;
	return !was.known || !a->known || was.mode != a->mode || was.uid != a->uid ||
	       was.gid != a->gid;
}

static void arm_debounce(struct config_watch *w)
{
	cpmsync_loop_timer_set(w->debounce, CONFIG_WATCH_DEBOUNCE_MS, 0);
}

/* Watches the directory of each other file (after start_watching()). */
static void files_watch(struct config_watch *w)
{
	if (!w->active)
		return;
	for (size_t i = 0; i < w->n_files; i++) {
		struct watched_file *f = &w->files[i];
		_cleanup_free_ char *slashed = NULL;

		f->wd = -1;
		if (str_eq(f->dir, w->dir)) {
			f->wd = w->wd;
			continue;
		}
		for (size_t k = 0; k < i && f->wd < 0; k++)
			if (str_eq(w->files[k].dir, f->dir))
				f->wd = w->files[k].wd;
		if (f->wd >= 0 || !inotifytools_watch_file(f->dir, WATCH_MASK))
			continue; /* a directory that is not there: no news of it */
		slashed = str_eq(f->dir, "/") ? xstrdup("/") : xasprintf("%s/", f->dir);
		f->wd = inotifytools_wd_from_filename(slashed);
	}
}

static void files_unwatch(struct config_watch *w)
{
	for (size_t i = 0; i < w->n_files; i++) {
		struct watched_file *f = &w->files[i];

		if (w->active && f->wd >= 0 && f->wd != w->wd) {
			/* Once per directory: the others sharing it drop it too. */
			inotifytools_remove_watch_by_wd(f->wd);
			for (size_t k = i + 1; k < w->n_files; k++)
				if (w->files[k].wd == f->wd)
					w->files[k].wd = -1;
		}
		f->wd = -1;
	}
}

static void files_free(struct config_watch *w)
{
	files_unwatch(w);
	for (size_t i = 0; i < w->n_files; i++) {
		free(w->files[i].path);
		free(w->files[i].dir);
		free(w->files[i].base);
	}
	free(w->files);
	w->files = NULL;
	w->n_files = 0;
}

static void stop_watching(struct config_watch *w)
{
	if (!w->active)
		return;
	w->io = cpmsync_loop_source_remove(w->io);
	/* Closes the fd and forgets every watch. */
	inotifytools_cleanup();
	w->active = false;
	w->fd = -1;
	w->wd = -1;
	for (size_t i = 0; i < w->n_files; i++)
		w->files[i].wd = -1;
}

static void on_inotify(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata);
static int split_path(const char *path, char **ret_dir, char **ret_base);

/* Initialises libinotifytools and watches w->dir; undoes itself on failure. */
static int start_watching(struct config_watch *w, char **ret_error)
{
	_cleanup_free_ char *slashed = NULL;
	struct stat st;
	int guess, fd, wd, r;

	/* inotify_init() will return the lowest free descriptor: this one. */
	guess = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (guess >= 0)
		close(guess);

	if (!inotifytools_initialize()) {
		r = -inotifytools_error();
		if (r >= 0)
			r = -EIO;
		if (ret_error)
			*ret_error =
				xasprintf("cannot watch %s: cannot create an inotify "
					  "instance: "
					  "%s%s",
					  w->dir, strerror(-r),
					  r == -EMFILE ? " (fs.inotify.max_user_instances)" : "");
		return r;
	}
	if (!inotifytools_watch_file(w->dir, WATCH_MASK)) {
		r = -inotifytools_error();
		if (r >= 0)
			r = -EIO;
		inotifytools_cleanup();
		if (!ret_error)
			return r;
		if (r == -ENOENT)
			*ret_error = xasprintf("cannot watch %s for changes to "
					       "%s: the directory "
					       "does not exist (yet)",
					       w->dir, w->base);
		else if (r == -ENOSPC)
			*ret_error = xasprintf("cannot watch %s: the inotify watch limit is "
					       "reached (fs.inotify.max_user_watches)",
					       w->dir);
		else
			*ret_error = xasprintf("cannot watch %s: %s", w->dir, strerror(-r));
		return r;
	}

	/* The library names a watched directory with a final '/'. */
	slashed = str_eq(w->dir, "/") ? xstrdup("/") : xasprintf("%s/", w->dir);
	wd = inotifytools_wd_from_filename(slashed);
	if (wd < 0 || stat(w->dir, &st) < 0) {
		r = wd < 0 ? -ENOENT : -errno;
		inotifytools_cleanup();
		if (ret_error)
			*ret_error = xasprintf("cannot watch %s: %s", w->dir,
					       wd < 0 ? "the directory vanished" : strerror(-r));
		return r;
	}
	fd = find_inotify_fd(guess, wd, st.st_ino);
	if (fd < 0 || fd >= FD_SETSIZE) {
		r = fd < 0 ? fd : -EMFILE;
		inotifytools_cleanup();
		if (ret_error)
			*ret_error = xasprintf("cannot watch %s: %s", w->dir,
					       r == -EMFILE ? "libinotifytools' fd is above "
							      "FD_SETSIZE"
							    : "cannot find libinotifytools' "
							      "inotify fd in "
							      "/proc/self/fdinfo (is /proc "
							      "mounted?)");
		return r;
	}
	/* The library opens it without close-on-exec: password_command runs. */
	fcntl(fd, F_SETFD, FD_CLOEXEC);

	r = cpmsync_loop_add_fd(w->loop, fd, CPMSYNC_LOOP_IN, on_inotify, w, NULL, &w->io);
	if (r < 0) {
		inotifytools_cleanup();
		if (ret_error)
			*ret_error = xasprintf("cannot watch %s: %s", w->dir, strerror(-r));
		return r;
	}
	w->fd = fd;
	w->wd = wd;
	w->active = true;
	return 0;
}

static void on_retry(struct cpmsync_loop_source *src, void *userdata)
{
	struct config_watch *w = userdata;

	(void)src;
	if (start_watching(w, NULL) < 0)
		return; /* the interval timer tries again */
	w->retry = cpmsync_loop_source_remove(w->retry);
	files_watch(w);
	/* The file may have come back with its directory. */
	attrs_seed(&w->attrs, w->dir, w->base);
	w->config_hit = true;
	arm_debounce(w);
}

static void on_inotify(struct cpmsync_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct config_watch *w = userdata;
	struct inotify_event *ev;
	bool hit = false, lost = false;

	(void)src;
	(void)fd;
	(void)events;
	/* Drain the kernel queue and the library's buffer. */
	while ((ev = inotifytools_next_events(0, 1))) {
		if (ev->mask & IN_Q_OVERFLOW) {
			/* Anything may have changed. */
			for (size_t i = 0; i < w->n_files; i++) {
				w->files[i].changed = true;
				attrs_seed(&w->files[i].attrs, w->files[i].dir, w->files[i].base);
			}
			attrs_seed(&w->attrs, w->dir, w->base);
			w->config_hit = true;
			hit = true;
			continue;
		}
		for (size_t i = 0; i < w->n_files; i++) {
			struct watched_file *f = &w->files[i];

			if (f->wd >= 0 && ev->wd == f->wd && (ev->mask & FILE_EVENTS) &&
			    ev->len > 0 && str_eq(ev->name, f->base) &&
			    attrs_changed(&f->attrs, f->dir, f->base, ev->mask)) {
				f->changed = true;
				hit = true;
			}
		}
		if (ev->wd != w->wd)
			continue;
		if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)) {
			lost = true;
			hit = w->config_hit = true;
			continue;
		}
		if ((ev->mask & FILE_EVENTS) && ev->len > 0 && str_eq(ev->name, w->base) &&
		    attrs_changed(&w->attrs, w->dir, w->base, ev->mask))
			hit = w->config_hit = true;
	}
	if (lost) {
		stop_watching(w);
		if (!w->retry)
			cpmsync_loop_add_timer(w->loop, CONFIG_WATCH_RETRY_MS,
					       CONFIG_WATCH_RETRY_MS, on_retry, w, NULL, &w->retry);
	}
	if (hit)
		arm_debounce(w);
}

static void on_debounce(struct cpmsync_loop_source *src, void *userdata)
{
	struct config_watch *w = userdata;

	(void)src;
	/* The other files first, each once; they may not free w. */
	for (size_t i = 0; i < w->n_files; i++) {
		if (!w->files[i].changed)
			continue;
		w->files[i].changed = false;
		if (w->file_changed)
			w->file_changed(w->files[i].path, w->userdata);
	}
	if (!w->config_hit)
		return;
	w->config_hit = false;
	/* Last: the callback may free w. */
	w->changed(w->userdata);
}

int config_watch_set_files(struct config_watch *w, const char *const *paths, size_t n,
			   void (*file_changed)(const char *path, void *userdata))
{
	if (!w || (n && !paths))
		return -EINVAL;
	files_free(w);
	w->file_changed = file_changed;
	w->files = n ? xcalloc(n, sizeof(*w->files)) : NULL;
	for (size_t i = 0; i < n; i++) {
		struct watched_file *f = &w->files[w->n_files];

		if (!paths[i] || split_path(paths[i], &f->dir, &f->base) < 0)
			continue;
		f->path = xstrdup(paths[i]);
		f->wd = -1;
		attrs_seed(&f->attrs, f->dir, f->base);
		w->n_files++;
	}
	files_watch(w);
	return 0;
}

/* The absolute directory part of path and its last component. */
static int split_path(const char *path, char **ret_dir, char **ret_base)
{
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *cwd = NULL;
	const char *base = slash ? slash + 1 : path;
	size_t n;

	if (!*base || str_eq(base, ".") || str_eq(base, ".."))
		return -EINVAL;
	if (path[0] == '/') {
		n = (size_t)(slash - path);
		*ret_dir = n ? xstrndup(path, n) : xstrdup("/");
	} else {
		cwd = getcwd(NULL, 0);
		if (!cwd)
			return -errno;
		if (slash)
			*ret_dir = xasprintf("%s%s%.*s", cwd, str_eq(cwd, "/") ? "" : "/",
					     (int)(slash - path), path);
		else
			*ret_dir = TAKE_PTR(cwd);
	}
	/* "a//b", "a/./b": drop trailing slashes of the directory part. */
	n = strlen(*ret_dir);
	while (n > 1 && (*ret_dir)[n - 1] == '/')
		(*ret_dir)[--n] = '\0';
	*ret_base = xstrdup(base);
	return 0;
}

int config_watch_new(struct cpmsync_loop *loop, const char *config_path,
		     void (*changed)(void *userdata), void *userdata, struct config_watch **ret,
		     char **ret_error)
{
	struct config_watch *w;
	int r;

	if (!loop || !config_path || !changed || !ret) {
		if (ret_error)
			*ret_error = xstrdup("config_watch_new: bad arguments");
		return -EINVAL;
	}
	if (the_watch) {
		if (ret_error)
			*ret_error = xasprintf("cannot watch %s: only one configuration watch "
					       "per "
					       "process is supported (libinotifytools is "
					       "process-global)",
					       config_path);
		return -EBUSY;
	}
	w = xcalloc(1, sizeof(*w));
	w->loop = loop;
	w->changed = changed;
	w->userdata = userdata;
	w->fd = -1;
	w->wd = -1;
	r = split_path(config_path, &w->dir, &w->base);
	if (r < 0) {
		if (ret_error)
			*ret_error = xasprintf("cannot watch '%s': %s", config_path,
					       r == -EINVAL ? "not a file name" : strerror(-r));
		free(w);
		return r;
	}

	r = cpmsync_loop_add_timer(loop, CONFIG_WATCH_DEBOUNCE_MS, 0, on_debounce, w, NULL,
				   &w->debounce);
	if (r >= 0)
		r = cpmsync_loop_timer_set(w->debounce, 0, 0); /* disarmed */
	if (r < 0) {
		if (ret_error)
			*ret_error = xasprintf("cannot watch %s: %s", w->dir, strerror(-r));
		w->debounce = cpmsync_loop_source_remove(w->debounce);
		free(w->dir);
		free(w->base);
		free(w);
		return r;
	}
	attrs_seed(&w->attrs, w->dir, w->base);
	r = start_watching(w, ret_error);
	if (r < 0) {
		w->debounce = cpmsync_loop_source_remove(w->debounce);
		free(w->dir);
		free(w->base);
		free(w);
		return r;
	}
	the_watch = w;
	*ret = w;
	return 0;
}

struct config_watch *config_watch_free(struct config_watch *w)
{
	if (!w)
		return NULL;
	files_free(w);
	stop_watching(w);
	cpmsync_loop_source_remove(w->debounce);
	cpmsync_loop_source_remove(w->retry);
	if (the_watch == w)
		the_watch = NULL;
	free(w->dir);
	free(w->base);
	free(w);
	return NULL;
}
