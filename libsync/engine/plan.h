/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The sync engine's decisions, as pure functions: remote state, local
 * state, last-synced state and the journal in, actions out.  No I/O, no
 * store, no clock, so that tests/unit/test-plan.c can run them over
 * scenario tables.  engine.c executes what they decide.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* -------------------------------------------------------------------- */
/* Which folders to sync, create, rename, delete locally */

/* A folder as LIST (and LIST-STATUS) reported it. */
struct plan_remote_folder {
	const char *name; /* UTF-8, '/' between levels */
	bool noselect;	  /* \Noselect or \NonExistent: holds no messages */
	bool has_status;  /* the STATUS fields below are known */
	uint32_t uidvalidity, uidnext, messages;
	uint64_t highestmodseq; /* 0: not reported */
	const char *mailboxid;	/* RFC 8474 MAILBOXID (OBJECTID); NULL: not reported */
};

/* A local folder (struct sync_folder reduced to what decisions need). */
struct plan_local_folder {
	int64_t id;
	const char *name;	 /* local name */
	const char *server_name; /* NULL: CREATE pending */
	bool removed;		 /* DELETE pending */
	bool rename_pending;	 /* a rename_folder journal row exists */
	bool has_content_ops;	 /* pending append/copy/move into it */
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	const char *mailboxid;	 /* recorded MAILBOXID; NULL: none */
	uint32_t known_messages; /* messages with a UID */
	bool bodies_behind;	 /* sync_bodies grew since its bodies were complete */
	bool out_of_view;	 /* LIST could not show it: not matched by the
				  * account's folder patterns, or in a namespace
				  * hidden now (other_namespaces = hide) */
	bool has_ops;		 /* journal rows of it or its messages */
	bool foreign;		 /* in another user's namespace or a shared one
				  * (#Users/..., #Shared/...): not the account's
				  * to create */
};

enum plan_folder_action_kind {
	PLAN_FOLDER_ADD,	  /* remote[remote] is new: add it locally */
	PLAN_FOLDER_RENAMED,	  /* local[local] was renamed on the server to remote[remote] */
	PLAN_FOLDER_CONFIRM,	  /* local[local]'s pending CREATE/RENAME already reached
				   * the server as remote[remote]: record server_name */
	PLAN_FOLDER_DELETE,	  /* local[local] is gone on the server: delete it locally */
	PLAN_FOLDER_RECREATE,	  /* gone on the server but holds local changes: re-CREATE */
	PLAN_FOLDER_SYNC,	  /* sync local[local] against remote[remote] */
	PLAN_FOLDER_UNCHANGED,	  /* as SYNC, but LIST-STATUS shows nothing moved */
	PLAN_FOLDER_DELETE_THERE, /* local[local]'s DELETE is pending and its folder is
				   * remote[remote] now (renamed): record that name, where
				   * the DELETE goes; nothing synced */
	PLAN_FOLDER_REREAD,	  /* as SYNC, but LIST-STATUS reports another MAILBOXID
				   * than the one recorded: another folder holds the name,
				   * forget the UIDs and re-read it (plan_folder_identity()) */
	PLAN_FOLDER_KEEP,	  /* local[local] is out of view (not in LIST) and
				   * changes wait for it: kept as it is, not synced;
				   * its changes go as queued (or wait while its
				   * namespace is hidden) */
	PLAN_FOLDER_FOLD,	  /* local[local] is gone on the server, and the folder
				   * now under its name, remote[remote], is local[into]
				   * renamed there: local[local]'s messages and the
				   * changes queued on them go into local[into], to be
				   * matched against its messages like a re-read's */
	PLAN_FOLDER_LOST,	  /* local[local] is foreign (another user's or shared),
				   * no longer listed, and changes wait for it: access
				   * to it was lost or its owner deleted it.  Not
				   * re-created (a CREATE there is not ours to make):
				   * its changes become failed operations saying so,
				   * and it is kept, not synced, while they wait */
};

struct plan_folder_action {
	enum plan_folder_action_kind kind;
	size_t local;	/* index into local[] (not for ADD) */
	size_t remote;	/* index into remote[] (not for DELETE/RECREATE) */
	size_t into;	/* FOLD only: index into local[] */
	bool unchanged; /* RENAMED only: the folder's identity is proven and
			 * LIST-STATUS shows nothing moved in it, as for
			 * UNCHANGED: its row is renamed, it is not selected */
};

/*
 * Matches LIST results against local folders.  Folders are matched by
 * server_name; a remote folder no local one matches is a server-side
 * rename of an unmatched local folder when both have the same UIDVALIDITY
 * (Dovecot, Cyrus and most servers keep it across RENAME), so ids and
 * bodies survive, otherwise it is new.  A local folder whose pending
 * CREATE or RENAME already happened (a crash after sending it) is matched
 * by its local name.  Unmatched local folders are deleted, unless local
 * changes wait to go into them (then re-created: nothing local is lost)
 * or their CREATE is still pending; a foreign one (another user's or a
 * shared folder) is never re-created: LOST while changes wait for it.
 * An unmatched folder out of view
 * (LIST could not show it: its absence says nothing of the server) is
 * never re-created: kept while changes of it wait (KEEP), else deleted
 * locally.  Removed (DELETE pending) folders are
 * never synced.  Remote \Noselect folders are ignored.
 *
 * A remote and a local folder whose MAILBOXIDs (RFC 8474) are both known
 * and differ are never the same folder: matched by name, the local one is
 * re-read (REREAD); nor is such a pair a rename by UIDVALIDITY.
 *
 * A folder renamed on the server onto the name of one deleted there
 * ("DELETE B, RENAME A B") follows its identity, not the name: A is
 * RENAMED, and B, gone, is folded into it (FOLD) rather than deleted, so
 * that what it held comes back wherever the server's B holds it.
 *
 * with_modseq: the session has CONDSTORE/QRESYNC, so an unchanged
 * (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, MESSAGES) proves nothing changed.
 *
 * A folder renamed on the server whose numbers did not move either is
 * RENAMED with unchanged set (no SELECT), when the rename itself stands
 * on all there is: the same MAILBOXID, or no MAILBOXID on either side (a
 * server without OBJECTID: the UIDVALIDITY the rename was matched by is
 * all it gives, and a SELECT would tell no more, its identity checks
 * seeing the same numbers).  Not when only one side has a MAILBOXID (the
 * SELECT reports it), nor for a folder another one is folded into (its
 * SELECT re-matches the folded messages).
 *
 * actions must have room for n_local + n_remote entries; returns the
 * number written, or -ENOMEM.
 */
int plan_folders(const struct plan_remote_folder *remote, size_t n_remote,
		 const struct plan_local_folder *local, size_t n_local, bool with_modseq,
		 struct plan_folder_action *actions);

/* LIST wildcards: '*' matches anything, '%' anything but '/'.  Exact
 * otherwise, except that "INBOX" is case-insensitive (RFC 3501 5.1). */
bool plan_pattern_match(const char *pattern, const char *name);
/* patterns: NULL-terminated, NULL means "*". */
bool plan_patterns_match(const char *const *patterns, const char *name);

/* -------------------------------------------------------------------- */
/* How to resync one folder */

enum plan_mode {
	PLAN_MODE_QRESYNC,   /* SELECT (QRESYNC (uv modseq known)) */
	PLAN_MODE_CONDSTORE, /* SELECT (CONDSTORE), FETCH CHANGEDSINCE, UID SEARCH */
	PLAN_MODE_PLAIN,     /* SELECT, UID FETCH 1:n (FLAGS), compare */
	PLAN_MODE_INITIAL,   /* nothing known: fetch everything */
};

const char *plan_mode_name(enum plan_mode m);

/* Before SELECT: from what the session enabled and what we know. */
enum plan_mode plan_select_mode(bool qresync_enabled, bool condstore_enabled,
				uint32_t local_uidvalidity, uint64_t local_highestmodseq,
				uint32_t local_known_messages);

/*
 * Is the folder the server shows under this name still the one whose UIDs
 * the store holds?  UIDVALIDITY alone cannot tell: Cyrus gives folders
 * created in the same second the same UIDVALIDITY, so after DELETE A;
 * RENAME B A the name A keeps A's UIDVALIDITY and holds B's messages.
 * Any of these says it is another folder (RFC 7162 3.1.2.1 and 3.2.10,
 * RFC 3501 2.3.1.1, RFC 8474 4):
 */
enum plan_identity {
	PLAN_IDENTITY_SAME,
	PLAN_IDENTITY_UIDVALIDITY,  /* UIDVALIDITY differs */
	PLAN_IDENTITY_MAILBOXID,    /* MAILBOXID (OBJECTID) differs */
	PLAN_IDENTITY_MODSEQ_DOWN,  /* HIGHESTMODSEQ below the recorded one */
	PLAN_IDENTITY_UIDNEXT_DOWN, /* UIDNEXT below the recorded one */
	PLAN_IDENTITY_EXISTS,	    /* fewer messages than known UIDs survive VANISHED */
};

const char *plan_identity_name(enum plan_identity id);

/* What is recorded, and what the server reported (0 / NULL: not known,
 * or not reported). */
struct plan_identity_in {
	uint32_t local_uidvalidity, local_uidnext;
	uint64_t local_highestmodseq;
	const char *local_mailboxid;
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq; /* 0 also for NOMODSEQ */
	const char *mailboxid;
	/* exists_complete: a QRESYNC SELECT has completed, so every expunge
	 * of a known UID was reported (VANISHED) and local_known (messages
	 * still held with a UID below local_uidnext) cannot exceed EXISTS. */
	bool exists_complete;
	uint32_t exists, local_known;
};

/* Nothing recorded (local_uidvalidity 0) is always SAME. */
enum plan_identity plan_folder_identity(const struct plan_identity_in *in);

/* The SELECT answered: what to do now. */
struct plan_after_select {
	bool reread;		     /* identity lost: forget UIDs, re-read, re-match */
	enum plan_identity identity; /* why */
	enum plan_mode mode;	     /* how to find changed flags and expunges */
	bool fetch_new;		     /* UID FETCH from_uid:* for new messages */
	uint32_t new_from_uid;
};

void plan_after_select(enum plan_mode selected_with, enum plan_identity identity,
		       uint32_t local_uidnext, uint32_t server_uidnext, bool server_nomodseq,
		       struct plan_after_select *ret);

/*
 * CONDSTORE/PLAIN expunge detection without QRESYNC: after the new
 * messages are in, the server's count of messages below local_uidnext is
 * exists - new_count; if it equals what we hold below local_uidnext,
 * nothing was expunged and the UID SEARCH can be skipped.
 */
bool plan_need_expunge_search(uint32_t exists, uint32_t new_count, uint32_t local_known_below);

/* -------------------------------------------------------------------- */
/* Bodies */

/* sync_bodies (CPMSYNC_SYNC_BODIES_ALL, _NONE or KiB) as the largest body
 * to keep, in bytes: UINT64_MAX for all, 0 for none. */
uint64_t plan_body_limit(int64_t sync_bodies);
