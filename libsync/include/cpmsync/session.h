/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CPMSYNC_SESSION_H
#define CPMSYNC_SESSION_H

/*
 * A long-lived account: what the daemon keeps per configured account.
 *
 * While online it stays connected: it syncs (cpmsync/sync.h's engine, on
 * its own connection), then waits for the server to say something changed
 * -- NOTIFY (RFC 5465) over every folder when offered, else IDLE on the
 * Active folders (INBOX by default) plus a cheap change check of the
 * others every poll interval -- and syncs again.  A notification only
 * schedules a sync; state always comes from the sync itself.  Local
 * changes (cpmsync/ops.h) are replayed by the next sync:
 * cpmsync_session_changed_locally() after making one
 * (cpmsync_session_replay_soon() after flags).
 *
 * Dead connections are found (TCP keepalive, a deadline on every command,
 * IDLE refreshed on a bounded interval, each refresh itself under a
 * deadline) and replaced with exponential back-off plus jitter.  A refused
 * login stops retrying until cpmsync_session_set_account() gives new
 * settings (or cpmsync_session_sync_now() asks explicitly).  Offline
 * (cpmsync_session_set_online(s, false)) means no network at all.
 *
 * Everything runs on the caller's loop; callbacks come from the loop.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cpmsync/account.h>
#include <cpmsync/loop.h>
#include <cpmsync/store.h>
#include <cpmsync/sync.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cpmsync_session;

/* The contract's Account1.State. */
enum cpmsync_session_state {
	CPMSYNC_SESSION_OFFLINE,    /* "offline": Online is false */
	CPMSYNC_SESSION_CONNECTING, /* "connecting" (also: waiting to retry) */
	CPMSYNC_SESSION_SYNCING,    /* "syncing" */
	CPMSYNC_SESSION_IDLE,	    /* "idle": in sync, waiting for changes */
	CPMSYNC_SESSION_ERROR,	    /* "error": stopped (login refused) */
};

/* The contract's Account1.PushState: how server changes reach us now. */
enum cpmsync_push_state {
	CPMSYNC_PUSH_OFF,    /* "off": not connected */
	CPMSYNC_PUSH_POLL,   /* "poll": change checks on an interval only */
	CPMSYNC_PUSH_IDLE,   /* "idle": IDLE on the active folder(s) + poll */
	CPMSYNC_PUSH_NOTIFY, /* "notify": NOTIFY over every synced folder */
};

const char *cpmsync_session_state_name(enum cpmsync_session_state s);
const char *cpmsync_push_state_name(enum cpmsync_push_state s);

/* Tunables; 0 takes the default. */
struct cpmsync_session_options {
	unsigned poll_interval_ms; /* change check of non-IDLE folders: 300 s */
	unsigned idle_refresh_ms;  /* IDLE/NOTIFY wait re-entered after: 240 s
				    * (always < 29 min, RFC 2177) */
	unsigned retry_min_ms;	   /* first back-off: 1 s */
	unsigned retry_max_ms;	   /* back-off ceiling: 300 s */
	unsigned debounce_ms;	   /* sync_now()/notifications coalesced: 5 ms */
	unsigned probe_ms;	   /* network_changed(): a sign of life within 10 s */
};

struct cpmsync_session_callbacks {
	/* A property changed: state, push state, last error, last sync,
	 * capabilities, online, pending operations, last server activity
	 * (that one at most once a second). */
	void (*changed)(struct cpmsync_session *s, void *userdata);
	/* Sync progress: folder "" for the account as a whole; done/total
	 * in messages (folders for ""). */
	void (*progress)(struct cpmsync_session *s, const char *folder, uint32_t done,
			 uint32_t total, void *userdata);
	/* A sync ended (r == 0: everything applied).  Called while the
	 * state still reads "syncing": the state that follows (idle, or
	 * syncing again for what came meanwhile) is set after, and told by
	 * changed. */
	void (*synced)(struct cpmsync_session *s, int r, const char *reason,
		       const struct cpmsync_sync_stats *stats, void *userdata);
};

/*
 * account is copied (as imap_client does; password_userdata is kept as
 * given and must outlive the session).  The session starts online, or
 * offline if the last cpmsync_session_set_online() for this account's
 * name, in this store, set it so (the choice is kept in the store); it
 * connects from the loop.  options and callbacks may be NULL.
 */
int cpmsync_session_new(struct cpmsync_loop *loop, struct cpmsync_store *store,
			const struct cpmsync_account *account,
			const struct cpmsync_session_options *options,
			const struct cpmsync_session_callbacks *callbacks, void *userdata,
			struct cpmsync_session **ret);
/* Cancels everything (pending requests get -CPMSYNC_E_CANCELED from the
 * loop).  Accepts NULL; returns NULL. */
struct cpmsync_session *cpmsync_session_free(struct cpmsync_session *s);

/* New settings (same name): reconnects with them, clears an auth stop. */
int cpmsync_session_set_account(struct cpmsync_session *s, const struct cpmsync_account *account);
/*
 * A new options.poll_interval_ms (0: the default), applied without
 * reconnecting: a poll already armed is re-armed from now.
 */
int cpmsync_session_set_poll_interval(struct cpmsync_session *s, unsigned ms);
/* Online (true) or "no network at all" (false): kept in the store, for
 * the sessions of this account started later (a restart of the daemon). */
void cpmsync_session_set_online(struct cpmsync_session *s, bool online);
/* Sync soon (debounced): Sync(), an outband push.  Also retries now
 * after a failure or a refused login. */
void cpmsync_session_sync_now(struct cpmsync_session *s);
/*
 * As cpmsync_session_sync_now(), but always a full pass (LIST and every
 * folder's status, as a poll): never answered by the NOOP that proves the
 * store current under NOTIFY, since a server's NOTIFY can miss changes
 * (Dovecot 2.3: a folder renamed by doveadm, other folders than INBOX
 * after its list index log rotated).  For a user's explicit sync; an app's
 * frequent Sync() keeps the cheap one.  Completes as any sync: LastSync,
 * the synced callback.  Accepts NULL.
 */
void cpmsync_session_sync_full(struct cpmsync_session *s);
/*
 * A local change to replay: as cpmsync_session_sync_now(), except that a
 * session backing off after a failure (or stopped by a refused login)
 * keeps waiting: its next try replays the journal.  A burst of changes
 * during an outage is then not a burst of connection attempts.
 */
void cpmsync_session_changed_locally(struct cpmsync_session *s);
/*
 * Local changes to messages of folders the store knows (flags) to replay:
 * with push through IDLE, by a run of the IDLE folder alone, which replays
 * the journal too (at once by the fast path -- DONE, the folder's news, the
 * journal -- when waiting in IDLE on a folder the store is current with;
 * right after the sync under way), not by a full pass; else as
 * cpmsync_session_changed_locally().
 */
void cpmsync_session_replay_soon(struct cpmsync_session *s);
/*
 * The host's network changed (an address or a default route came or went)
 * or it resumed from suspend; why says which, for the log ("the network
 * changed").  A connection that looks fine may be dead without a word then
 * (a half-open socket is found only by the command timeout, 60 s), and a
 * session backing off may wait minutes for a network that is back now.  So:
 * backing off, it connects at once, the back-off reset; connecting, it
 * starts again (the attempt may hang on the old route); connected, it asks
 * the server for news as Sync() does and takes the connection for dead if
 * nothing at all comes within options.probe_ms, then reconnects after the
 * shortest back-off.  Offline sessions, and those stopped by a refused
 * login, stay as they are.  A connected session does the same by itself
 * when its loop did not run for 10 s or more (the process stopped or
 * frozen: a timer every 30 s fired that much later than due).
 */
void cpmsync_session_network_changed(struct cpmsync_session *s, const char *why);
/*
 * The password the account's password_cb (or password_reason_cb) answered
 * -EINPROGRESS for is ready (or its lookup failed): the waiting connection
 * asks for it again.
 */
void cpmsync_session_password_ready(struct cpmsync_session *s);

const char *cpmsync_session_name(const struct cpmsync_session *s);
bool cpmsync_session_get_online(const struct cpmsync_session *s);
enum cpmsync_session_state cpmsync_session_get_state(const struct cpmsync_session *s);
enum cpmsync_push_state cpmsync_session_get_push_state(const struct cpmsync_session *s);
/* "" when none. */
const char *cpmsync_session_get_last_error(const struct cpmsync_session *s);
/* Unix times; 0: never. */
uint64_t cpmsync_session_get_last_sync(const struct cpmsync_session *s);
uint64_t cpmsync_session_get_last_server_activity(const struct cpmsync_session *s);
/* The server's capabilities after login (NULL-terminated; empty until
 * the first login).  Borrowed until the next callback. */
const char *const *cpmsync_session_get_capabilities(const struct cpmsync_session *s);
/* Whether the server offered cap (case-insensitive) at the last login. */
bool cpmsync_session_has_capability(const struct cpmsync_session *s, const char *cap);
/*
 * Whether the account's folders setting (cpmsync_account.folders) takes in
 * the folder name (UTF-8, '/' between levels).  A folder made here outside
 * it would be created on the server and then dropped from the store by the
 * next sync (not in view): refuse such a change instead.
 */
bool cpmsync_session_syncs_folder(const struct cpmsync_session *s, const char *name);

/* Active folders (Folder1.Active): kept in IDLE with priority.  Default:
 * INBOX only.  Not persistent. */
int cpmsync_session_set_active(struct cpmsync_session *s, int64_t folder_id, bool active);
bool cpmsync_session_get_active(const struct cpmsync_session *s, int64_t folder_id);

/*
 * Requests that need the server.  Each fails with -CPMSYNC_E_OFFLINE (from
 * the loop) when the session is offline or cannot connect, is queued
 * behind a running sync otherwise, and calls its callback exactly once
 * from the loop.  reason names the failure (the server's text for
 * -CPMSYNC_E_SERVER, the missing extension for -CPMSYNC_E_NOT_SUPPORTED).
 * Results are borrowed during the callback.  folder_id 0 means the server
 * (METADATA server entries).
 */
typedef void (*cpmsync_pairs_cb_t)(int r, const char *reason,
				   const char *const *pairs, /* k, v, k, v, ..., NULL */
				   void *userdata);
typedef void (*cpmsync_string_cb_t)(int r, const char *reason, const char *value, void *userdata);
typedef void (*cpmsync_data_cb_t)(int r, const char *reason, int fd, uint64_t size,
				  void *userdata); /* fd: read from 0, yours */
typedef void (*cpmsync_ids_cb_t)(int r, const char *reason, const int64_t *ids, size_t n_ids,
				 void *userdata);

/* GETMETADATA of entries (full names, "/private/comment"). */
int cpmsync_session_get_metadata(struct cpmsync_session *s, int64_t folder_id,
				 const char *const *entries, cpmsync_pairs_cb_t cb, void *userdata);
/*
 * Annotations (ANNOTATE, RFC 5257) of a message: entries ("/comment"),
 * shared: value.shared, else value.priv.  Answered from the store's cache,
 * where a value set locally and not yet on the server wins
 * (read-your-writes); entries not cached are fetched (UID FETCH ...
 * ANNOTATION, both attributes), cached, then answered.  pairs: entry,
 * value for the entries that have a value (absent ones are left out).
 * -CPMSYNC_E_NOT_SUPPORTED "ANNOTATE" when the server lacks it;
 * -CPMSYNC_E_OFFLINE when something is not cached and the session is
 * offline; -CPMSYNC_E_NOT_FOUND for a message not in the store; -EINVAL
 * at once for an entry cpmsync_annotation_entry_check() refuses.
 */
int cpmsync_session_get_annotations(struct cpmsync_session *s, int64_t message_id,
				    const char *const *entries, bool shared, cpmsync_pairs_cb_t cb,
				    void *userdata);
/* GETACL: identifier, rights pairs. */
int cpmsync_session_get_acl(struct cpmsync_session *s, int64_t folder_id, cpmsync_pairs_cb_t cb,
			    void *userdata);
int cpmsync_session_my_rights(struct cpmsync_session *s, int64_t folder_id, cpmsync_string_cb_t cb,
			      void *userdata);
/* UID FETCH BODY.PEEK[section] of a message on the server (uid != 0):
 * the content in a temporary file. */
int cpmsync_session_fetch(struct cpmsync_session *s, int64_t message_id, const char *section,
			  cpmsync_data_cb_t cb, void *userdata);
/* UID CONVERT (RFC 5259) of part section ("" is part 1) to format
 * ("image/jpeg" ...) fitting width x height (pix-x, pix-y): the converted
 * part in a temporary file.  -CPMSYNC_E_NOT_SUPPORTED "CONVERT" when the
 * server does not offer it; -CPMSYNC_E_SERVER when it refuses or answers
 * NIL (could not convert).  cpmsync_preview() (preview.h) is the caller. */
int cpmsync_session_preview(struct cpmsync_session *s, int64_t message_id, const char *section,
			    const char *format, uint32_t width, uint32_t height,
			    cpmsync_data_cb_t cb, void *userdata);
/* UID SEARCH on the server; the matching messages' local ids, in id
 * order (messages not on the server yet are matched locally).  -EINVAL
 * at once when a flag or not_flag is not an IMAP flag or keyword. */
int cpmsync_session_search(struct cpmsync_session *s, int64_t folder_id,
			   const struct cpmsync_search_criteria *criteria, cpmsync_ids_cb_t cb,
			   void *userdata);

#ifdef __cplusplus
}
#endif
#endif
