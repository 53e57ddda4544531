/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The outbox drop folder (contract: "Outbox drop folder").
 *
 * A regular file whose name does not start with '.' that appears in
 * <outbox>/<account>/<folder>/ (IN_CLOSE_WRITE or IN_MOVED_TO, or present
 * when outbox_new() or outbox_rescan() looks) is stored in that folder
 * with cpmsync_op_store_fd().  The folder is the path below the account
 * directory, so <outbox>/a/Chats/2024/x stores x in "Chats/2024".  Names
 * (files and directories) starting with '.' are ignored, so a writer
 * writes ".x" and renames it to "x" when complete.  A file written in
 * place is taken at its first close after writing.
 *
 * A file directly in <outbox>/<account>/ is a CPM object, filed with
 * cpmsync_op_file_object_fd() under the account's CPM root (cpm_root
 * callback), its conversation folders created as needed, the folder
 * checked (folder_synced) on the one reading of its header.  It goes
 * through the same claim steps and the same checks below (a claim left by
 * a crash is compared with the messages of the folder it would be filed
 * in).  The same object filed before is that message, not stored again.
 *
 * Layout under <outbox> (all created 0700):
 *
 *   .pending/claimed/<account>/<folder>/<name>
 *   .pending/claimed/<account>/<name>
 *           a file taken out of the drop folder to be stored ("claimed"),
 *           or one whose folder does not exist yet (see below); the
 *           second form is a CPM object
 *   .pending/<id>/<name>
 *           stored as local message <id>; kept until the message is on
 *           the server (then deleted) or the server refused it (then it
 *           goes to .failed)
 *   .failed/<name>, .failed/<name>.why
 *           a file that cannot be stored, under its original name (".1",
 *           ".2" ... appended if taken; cut to 240 bytes), and the reason
 *           ("<account>/<folder>/<name>: reason").  The account and folder
 *           are in the .why file, not in the name, so that the file can be
 *           moved back as it is.
 *
 * Nothing is lost, and nothing is stored twice, across a crash:
 *
 *   1. The file is renamed into .pending/claimed/ (same path below it),
 *      and that directory is fsync()ed: from now on the claim is durable.
 *   2. It is stored (one SQLite transaction: the commit point).
 *   3. .pending/<id>/ is made and the claim renamed into it.
 *
 *   A crash before 1 leaves the file where it was: it is taken again.  A
 *   crash between 1 and 2 leaves a claim that was never stored, one
 *   between 2 and 3 a claim that was.  The two cannot be told apart by
 *   name, so every claim found by a scan is first compared with the
 *   messages of its folder: a message of the same size and the same bytes
 *   (cpmsync_store_read_body) that no .pending/<id>/ refers to is taken
 *   as its stored copy (step 3 is redone); only if there is none is it
 *   stored.  Since the daemon stores and renames in one loop callback,
 *   the sync engine cannot have sent the APPEND in between; messages
 *   already on the server are compared too, newest first, in case the
 *   daemon synced before calling outbox_new().  The only wrong match is
 *   an identical message stored through another way into the same folder
 *   in that crash window; it would be counted once instead of twice.
 *   Claims are compared only when a scan finds them (left by a crash,
 *   or by a rename that failed after storing), never for a file just
 *   taken, so dropping the same file twice stores it twice.  While a
 *   claim is unresolved, a new file dropped under the same path waits in
 *   the drop folder (logged) until it is.
 *
 * A folder that is not in the store: if the account has never synced (no
 * folder of it is known on the server; INBOX appears with the first
 * sync), the file is left where it is and tried again by outbox_rescan();
 * otherwise it fails ("no folder ...").
 *
 * A store failure that may pass is no verdict on the file: the store's
 * database or disk full (-CPMSYNC_E_STORE_FULL, -ENOSPC, -EDQUOT), the
 * store busy, -ENOMEM, -EIO.  The claim stays in .pending/claimed/ (a
 * warning names the file and the reason, once per reason) and is tried
 * again by the next scan: after a sync, or at the latest outbox_retry_ms
 * later (a timer, so that it is tried while the account is offline too).
 * So is everything else left "trying again later" below.
 *
 * Failures (to .failed/ with a .why): a file directly in <outbox>/, a file
 * in <outbox>/<account>/ that is not a CPM object (the reason from
 * cpmsync_op_file_object_fd(): "content: ..."), an account the
 * configuration does not know (account_known() false), not a regular file
 * (symbolic links included), a file with more than one link (a hard link
 * may name a file that was never meant to be sent; only this name is
 * moved, the file is not deleted), a file not owned by the user, empty,
 * larger than CPMSYNC_OP_MAX_MESSAGE_SIZE, any other store error, a message
 * refused by the server (the server's text; the message is taken back with
 * cpmsync_op_discard()) or given up without being sent ("it was not sent":
 * too large to send, its stored content lost; taken back the same way),
 * and a message that left the local store before it
 * reached the server (deleted, moved or expunged locally: its file is
 * kept, since nothing says it arrived).  Transient errors (renames, an
 * unreadable directory) leave the file for the next scan and are logged.
 * A .why that cannot be written whole (a full disk) is removed, not left
 * empty or cut short, and that is logged as an error naming the file,
 * which stays in .failed/.
 *
 * Every stored and every failed file is logged (agent/log.h).
 *
 * Nothing outside the outbox is followed: the outbox directory is opened
 * once, every watched directory is held open, and every open, rename and
 * unlink is made relative to a directory fd (openat2() RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS for longer relative paths, O_NOFOLLOW walks without
 * it).  A file whose directory was replaced or moved between the event
 * and its handling (a directory swapped for a symbolic link) is left
 * alone and logged.  Only the outbox's own path, from the configuration,
 * is resolved by name.
 *
 * Watching: an inotify fd of the outbox's own (not libinotifytools, whose
 * process-global state belongs to config_watch; the outbox also needs its
 * own watch-descriptor-to-directory map for the recursive watches) on
 * <outbox> and every directory below it whose name does not start with
 * '.'.  A new or moved-in directory is watched and scanned; a queue
 * overflow causes a full scan.
 */

#include <stdbool.h>

#include <cpmsync/loop.h>
#include <cpmsync/store.h>

/* Directory levels below <outbox> that are watched and scanned. */
#define OUTBOX_MAX_DEPTH 32

/* At the latest this long after a file was left to try again later, the
 * outbox is scanned again (outbox_retry_ms; tests shorten it). */
#define OUTBOX_RETRY_MS 30000
extern unsigned outbox_retry_ms;

struct outbox;

struct outbox_callbacks {
	/* Is account in the configuration?  NULL: every account is. */
	bool (*account_known)(void *userdata, const char *account);
	/* A file was stored in account (a sync may be due).  May be NULL. */
	void (*stored)(void *userdata, const char *account);
	/* The account's CPM root (borrowed), for files directly in
	 * <outbox>/<account>/.  NULL, or NULL returned: "Default". */
	const char *(*cpm_root)(void *userdata, const char *account);
	/* Does account sync folder (its folders setting)?  A CPM object
	 * filed in a folder it does not would be created on the server and
	 * then dropped from the store: it goes to .failed.  NULL: every
	 * folder is synced. */
	bool (*folder_synced)(void *userdata, const char *account, const char *folder);
	/*
	 * Tests only (NULL otherwise): called with rel, the file's path below
	 * the outbox, between an inotify event for a file and its handling,
	 * so that a test can change the tree at exactly that point.
	 */
	void (*before_take)(void *userdata, const char *rel);
};

/*
 * Creates dir (0700, with its parents) if missing, starts watching it and
 * scans it once (claims left by an earlier run are recovered, files
 * present are taken) before it returns: call it before the loop lets the
 * sync engine run, so that recovery sees the messages as they were.  The
 * callbacks may be called from inside outbox_new(); they must not call
 * outbox_free().  cb is copied; store and loop must outlive the outbox.
 * Returns 0 and *ret, or a negative errno and a reason to free() in
 * *ret_error (if not NULL).
 */
int outbox_new(struct cpmsync_loop *loop, struct cpmsync_store *store, const char *dir,
	       const struct outbox_callbacks *cb, void *userdata, struct outbox **ret,
	       char **ret_error);

/*
 * Looks at everything again: claims, .pending/<id> files (on the server:
 * deleted; refused: to .failed), files waiting for their folder, and the
 * whole drop tree.  Call it when the set of accounts changed and after
 * every sync.  Safe from inside the callbacks (it is then run when the
 * current scan ends).
 */
void outbox_rescan(struct outbox *o);

/*
 * Whether openat2() is used for paths below the outbox; cleared at the
 * first ENOSYS (then O_NOFOLLOW component walks).  Tests clear it to
 * exercise the walks.
 */
extern bool outbox_have_openat2;

/* Stops watching.  Files stay where they are.  Accepts NULL; returns NULL. */
struct outbox *outbox_free(struct outbox *o);
