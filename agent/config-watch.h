/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Tells the daemon when its configuration file may have changed, so that
 * it can reload it (contract: "The daemon re-reads the file when it
 * changes (inotify)").
 *
 * The DIRECTORY that holds the file is watched, not the file: editors and
 * config_write_*() save by writing a new file and renaming it over the old
 * one, which a watch on the old inode would not see.  Events that name the
 * file's basename (IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_DELETE,
 * IN_MOVED_FROM, and IN_ATTRIB when the file's mode, owner or group
 * changed: a chmod, so that a file refused for its mode is read again once
 * fixed, but not new times (touch) or extended attributes; reading the
 * file sends none of these)
 * and a queue overflow arm a CONFIG_WATCH_DEBOUNCE_MS timer on the loop;
 * each further event re-arms it; when it fires, changed() is called once.  So one save gives one
 * call, and a burst of saves too. changed() only says "look again": the file may be gone or
 * half-edited (config_load() tells).
 *
 * If the directory itself is deleted or renamed, changed() is called and
 * the watch is re-established every CONFIG_WATCH_RETRY_MS once a directory
 * of that name exists again (changed() is called then too).
 *
 * Built on libinotifytools (the project's chosen dependency), which keeps
 * its state in process-wide globals and has no accessor for its inotify
 * fd: hence ONE config_watch per process (a second config_watch_new()
 * fails with -EBUSY), and nothing else in the process may use
 * libinotifytools while it exists.  The outbox (agent/outbox.c) uses an
 * inotify fd of its own for that reason.  The fd is found through
 * /proc/self/fdinfo (see config-watch.c), so /proc must be mounted.
 */

#include <stddef.h>

#include <cpmsync/loop.h>

#define CONFIG_WATCH_DEBOUNCE_MS 100
#define CONFIG_WATCH_RETRY_MS	 2000

struct config_watch;

/*
 * Starts watching the directory of config_path (a relative path is taken
 * against the current directory, now).  changed(userdata) is called from
 * the loop; it may call config_watch_free().  Returns 0 and the watch in
 * *ret, or a negative errno and a reason to free() in *ret_error (if not
 * NULL): -ENOENT when the directory does not exist (yet), -ENOTDIR,
 * -EACCES, -ENOSPC (inotify watch limit), -EMFILE (inotify instance
 * limit), -EBUSY (a watch exists already), -EINVAL (path ends in '/').
 * *ret is untouched on failure.
 */
int config_watch_new(struct cpmsync_loop *loop, const char *config_path,
		     void (*changed)(void *userdata), void *userdata, struct config_watch **ret,
		     char **ret_error);

/*
 * Also watches each of paths (n of them; the same way: their directories,
 * the events that name them, debounced with the configuration file's), for
 * example the accounts' password files.  file_changed(path, userdata) is
 * called from the loop once per changed file (path as given here), before
 * changed() when the configuration file changed too; it must not free the
 * watch.  Replaces the set given before (n 0: none).  A file whose
 * directory cannot be watched (it does not exist) is not reported.
 */
int config_watch_set_files(struct config_watch *w, const char *const *paths, size_t n,
			   void (*file_changed)(const char *path, void *userdata));

/* Stops watching and releases libinotifytools.  Accepts NULL; returns NULL. */
struct config_watch *config_watch_free(struct config_watch *w);
