/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Is the server the one the store's copy is of?  Checked at the start of
 * a run, once per connection (driver op checked), before anything of the
 * server is written into the store or any change is sent to it, for the
 * folders only where local changes wait that name messages by UID (UID
 * STORE, UID EXPUNGE, UID COPY/MOVE, UID STORE ANNOTATION).
 *
 * The address is not the identity: port, tunnel or proxy may change and
 * the server stay (143 to 993, a fault proxy in the tests), and one host
 * may run two servers for one user (two Dovecots on two ports).  The
 * account's identity (store_sync_account_identity()) is user@host (a
 * new host alone is proven at the start, engine_ident_host()); a
 * folder's is what plan_folder_identity() compares: UIDVALIDITY,
 * MAILBOXID, HIGHESTMODSEQ and UIDNEXT not gone down.  On another server
 * all of these can agree: Dovecot sets UIDVALIDITY from the creation time
 * (two INBOXes made in the same second share it), dsync and backups copy
 * it, and Dovecot 2.3 has no MAILBOXID.  UIDs are then taken for those of
 * the other server's messages: a flag change, a delete, a move reached
 * other messages.
 *
 * So for each such folder whose SELECT shows the recorded numbers (and no
 * MAILBOXID equal to the recorded one, which proves it), the messages the
 * changes name (the lowest ENGINE_IDENT_UIDS of them) are fetched by UID
 * (RFC822.SIZE INTERNALDATE, and EMAILID with OBJECTID): a UID of the same
 * folder names the same message for as long as the UIDVALIDITY holds (RFC
 * 3501 2.3.1.1), so one of them with another size, internal date or
 * EMAILID than the store's is another mailbox's.  The size of a message
 * appended from here is the one APPEND sent, each bare LF as CRLF; size
 * and date are what replay already recognises its own interrupted APPEND
 * by.  A UID not there any more tells nothing: expunged by another
 * client, the change to it is void anyway.  Folders whose numbers differ
 * are not looked at: the folder sync re-reads them (plan_after_select()),
 * re-matching the messages by their content, so their changes follow
 * their messages or go with them.
 *
 * A mismatch fails the run with -CPMSYNC_E_CONFIG and a reason naming the
 * folder, the UID and what differs, as a change of host or user with
 * changes queued does (the session then waits for the settings to change):
 * nothing is sent and nothing fetched, so setting the account back to the
 * server that has the mailbox sends the changes as they were.  Removing
 * the account (D-Bus RemoveAccount) does not lose them either: agent/
 * removed.c saves what was not sent under $XDG_DATA_HOME/cpmsync/removed/
 * first.  Not failed operations: the store's copy of the whole account is
 * of the other mailbox, so the folder sync would write this server's
 * messages and flags over it under the same UIDs, and a change discarded
 * would leave that mixture.
 *
 * With nothing queued the same server change mixes the mailboxes too: the
 * pull's QRESYNC SELECT (the recorded HIGHESTMODSEQ, the known UIDs) is
 * answered with the other server's flag changes by UID, and its new UIDs
 * are fetched as new messages.  So the pull checks each folder it is
 * about to change (engine_ident_pull_start()): the newest UID the store
 * holds of it, fetched as above, once per folder and connection (driver
 * op checked_folders; a folder read whole on the connection, or checked
 * at the start, counts).  The FETCH goes right behind the SELECT when a
 * STATUS of this run (LIST-STATUS, STATUS) showed news, no extra round
 * trip; without one, behind the SELECT's answer when it shows news, so a
 * folder with nothing new costs nothing.  Until its answer the batch is
 * not committed (engine_tx_tick()): what the SELECT brought is rolled
 * back with the run when the UID is another message, and the run fails
 * as above.  The UID gone, or the SELECT showing another folder (re-read
 * by content), tells nothing; the recorded MAILBOXID proves the folder.
 * The run without SELECT of the folder push watches (IDLE's news,
 * engine.c fast_start()) checks it the same way, first, once per
 * connection (engine_ident_fast_start()).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cpmsync/error.h>

#include "engine/engine-internal.h"
#include "imap/imap-seqset.h"
#include "store/store-sync.h"
#include "store/store.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/rangeset.h"

#define CAT CPMSYNC_LOG_CAT_ENGINE

struct ident {
	engine_next_fn next;
	struct sync_uid_target *t;
	size_t n;
	size_t pos, end;       /* the folder being checked: t[pos, end) */
	struct sync_folder sf; /* its row */
	bool selected;	       /* a SELECT of ours was sent */
	uint32_t bad_uid;      /* the first message that differs, 0: none */
	char what[192];	       /* how it differs */
	/* engine_ident_host(): proving the server at a new host name */
	bool host;
	size_t seen;   /* of the folder's messages, how many were compared */
	size_t proven; /* folders shown to be the store's */
};

#define I(e) ((struct ident *)(e)->ident)

void engine_ident_free(struct cpmsync_sync *e)
{
	struct ident *id = I(e);

	if (!id)
		return;
	sync_uid_targets_free(id->t, id->n);
	sync_folder_free_contents(&id->sf);
	free(id);
	e->ident = NULL;
}

static void ident_done(struct cpmsync_sync *e)
{
	engine_next_fn next = I(e)->next;
	bool *mark = e->drv->ops->checked ? e->drv->ops->checked(e->drv) : NULL;

	if (I(e)->selected) {
		/* The run selects what it needs again: our folder is no
		 * one's, and engine_sync_selected()'s folder is no longer
		 * the selected one. */
		e->selected_id = 0;
		e->fast = FAST_OFF;
		e->keep_lost = true;
	}
	engine_ident_free(e);
	if (mark)
		*mark = true;
	next(e);
}

static void ident_folder(struct cpmsync_sync *e);

void engine_ident_mark_folder(struct cpmsync_sync *e, int64_t folder_id)
{
	struct rangeset *set =
		e->drv->ops->checked_folders ? e->drv->ops->checked_folders(e->drv) : NULL;

	/* Out of memory, or an id past the set's range: checked again. */
	if (set && folder_id > 0 && folder_id <= UINT32_MAX)
		(void)rangeset_add(set, (uint32_t)folder_id);
}

static bool ident_folder_marked(struct cpmsync_sync *e, int64_t folder_id)
{
	struct rangeset *set =
		e->drv->ops->checked_folders ? e->drv->ops->checked_folders(e->drv) : NULL;

	return set && folder_id > 0 && folder_id <= UINT32_MAX &&
	       rangeset_contains(set, (uint32_t)folder_id);
}

static void ident_next_folder(struct cpmsync_sync *e)
{
	struct ident *id = I(e);

	sync_folder_free_contents(&id->sf);
	id->sf = (struct sync_folder){ 0 };
	id->pos = id->end;
	ident_folder(e);
}

static void ident_date(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, size, "%" PRId64, t);
}

/*
 * Whether size is the size of x as a server counts it: the recorded one,
 * or for a message stored here (appended by us) with bare LFs, its body
 * with each LF as CRLF, as APPEND sent it (the store keeps the local
 * size).  -errno: the store failed.
 */
static int size_matches(struct cpmsync_sync *e, const struct sync_uid_target *x, uint64_t size)
{
	uint64_t crlf = 0;
	int r;

	if (x->size <= 0 || (uint64_t)x->size == size)
		return 1;
	if (size < (uint64_t)x->size)
		return 0;
	r = store_body_crlf_size(e->store, x->id, &crlf);
	if (r == -CPMSYNC_E_NOT_FOUND)
		return 0;
	if (r < 0)
		return r;
	return crlf == size;
}

/*
 * Whether the server's INTERNALDATE there, not the store's here, tells
 * nothing: the date an APPEND of ours asked for, which the server did not
 * keep.  Dovecot stores the time of the APPEND for a date more than two
 * hours ahead of its clock (imap/cmd-append.c, INTERNALDATE_MAX_FUTURE_
 * SECS), Cyrus caps one past 2106; a store made before the replay read
 * the date back (engine-replay.c) holds the date asked, and the sync
 * adopts the server's only from the FETCH of new UIDs, which this check
 * goes before: the account stayed in error for good.  So a date here
 * still in the future, the server's an earlier one, is no proof of
 * another message: no arrival time a server gave is later than now, so
 * a message read from a server has none, and one of another server with
 * the same size (and EMAILID) as the store's and an earlier date is left
 * to the other UIDs and checks.  Once that date is past, the message's
 * own sync has adopted the server's (store_sync_new_message()).
 */
static bool date_not_kept(int64_t here, int64_t there)
{
	return there < here && here > (int64_t)time(NULL);
}

/*
 * Whether f, the server's FETCH of x's UID, is another message than x:
 * 1 (what says how, "RFC822.SIZE 530, not 428"), 0: not shown to be;
 * -errno: the store failed.
 */
static int ident_differs(struct cpmsync_sync *e, const struct sync_uid_target *x,
			 const struct engine_fetch *f, char *what, size_t size)
{
	int r;

	r = (f->present & ENGINE_FETCH_SIZE) ? size_matches(e, x, f->size) : 1;
	if (r < 0)
		return r;
	if (r == 0) {
		snprintf(what, size, "RFC822.SIZE %" PRIu64 ", not %" PRId64, f->size, x->size);
	} else if ((f->present & ENGINE_FETCH_DATE) && x->internaldate > 0 &&
		   f->internaldate != x->internaldate &&
		   !date_not_kept(x->internaldate, f->internaldate)) {
		char there[40], here[40];

		ident_date(f->internaldate, there, sizeof(there));
		ident_date(x->internaldate, here, sizeof(here));
		snprintf(what, size, "INTERNALDATE %s, not %s", there, here);
	} else if ((f->present & ENGINE_FETCH_OBJECTIDS) && f->emailid && x->emailid &&
		   strcmp(f->emailid, x->emailid) != 0) {
		snprintf(what, size, "EMAILID %.60s, not %.60s", f->emailid, x->emailid);
	} else {
		return 0;
	}
	return 1;
}

static void pull_on_fetch(struct cpmsync_sync *e, const struct engine_fetch *f);

void engine_ident_on_fetch(struct cpmsync_sync *e, const struct engine_fetch *f)
{
	struct ident *id = I(e);
	const struct sync_uid_target *x = NULL;
	size_t lo, hi;
	int r;

	if (!id) {
		pull_on_fetch(e, f);
		return;
	}
	if (id->bad_uid || e->finished)
		return;
	lo = id->pos;
	hi = id->end;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (id->t[mid].uid == f->uid) {
			x = &id->t[mid];
			break;
		}
		if (id->t[mid].uid < f->uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!x)
		return; /* not asked for (unsolicited) */
	r = ident_differs(e, x, f, id->what, sizeof(id->what));
	if (r < 0)
		engine_fail(e, r, "store: %s", store_error(e->store));
	else if (r > 0)
		id->bad_uid = x->uid;
	else if (((f->present & ENGINE_FETCH_SIZE) && x->size > 0) ||
		 ((f->present & ENGINE_FETCH_DATE) && x->internaldate > 0) ||
		 ((f->present & ENGINE_FETCH_OBJECTIDS) && f->emailid && x->emailid))
		id->seen++; /* something was compared, and is the same */
}

/* What the check of a new host name found (engine_ident_host()). */
enum host_verdict {
	HOST_SAME,     /* every folder proven */
	HOST_OTHER,    /* a message under a UID of the same UIDVALIDITY differs */
	HOST_UNPROVEN, /* not shown either way: the copy goes all the same */
};

static void host_decide(struct cpmsync_sync *e, enum host_verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ident_fetched(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct ident *id = I(e);
	const struct sync_uid_target *x = NULL;

	e->fetch_kind = FK_NONE;
	if (e->finished)
		return;
	if (id->host && res->r == -CPMSYNC_E_SERVER) {
		host_decide(e, HOST_UNPROVEN, "the messages of %s cannot be fetched there (%s)",
			    id->sf.server_name, res->text ? res->text : "");
		return;
	}
	if (res->r == -CPMSYNC_E_SERVER) {
		/* Tells nothing either way; the folder's own checks remain. */
		log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: cannot check the messages of %s: %s",
			e->account_name, id->sf.server_name, res->text ? res->text : "");
		ident_next_folder(e);
		return;
	}
	if (engine_reply_failed(e, res, "FETCH"))
		return;
	if (id->host) {
		for (size_t i = id->pos; i < id->end; i++)
			if (id->t[i].uid == id->bad_uid)
				x = &id->t[i];
		if (x) {
			host_decide(e, HOST_OTHER,
				    "its %s has UID %u, the store's%s%.200s, as another message"
				    " (%s; the same UIDVALIDITY %u)",
				    id->sf.server_name, x->uid, x->message_id ? " " : "",
				    x->message_id ? x->message_id : "", id->what,
				    id->sf.uidvalidity);
		} else if (!id->seen) {
			char uids[32];

			/* Expunged since (by another client perhaps), or
			 * nothing recorded to compare: not proven, and
			 * nothing less than proof keeps the copy. */
			if (id->end - id->pos > 1)
				snprintf(uids, sizeof(uids), "UIDs %u and %u", id->t[id->pos].uid,
					 id->t[id->end - 1].uid);
			else
				snprintf(uids, sizeof(uids), "UID %u", id->t[id->pos].uid);
			host_decide(e, HOST_UNPROVEN,
				    "its %s shows none of the store's %s to compare",
				    id->sf.server_name, uids);
		} else {
			id->proven++;
			id->seen = 0;
			ident_next_folder(e);
		}
		return;
	}
	if (!id->bad_uid) {
		log_debug(CAT, "%s: %s holds the messages the store knows under %zu UID(s)",
			  e->account_name, id->sf.server_name, id->end - id->pos);
		engine_ident_mark_folder(e, id->sf.id);
		ident_next_folder(e);
		return;
	}
	for (size_t i = id->pos; i < id->end; i++)
		if (id->t[i].uid == id->bad_uid)
			x = &id->t[i];
	engine_fail(e, -CPMSYNC_E_CONFIG,
		    "%s on this server is not the folder the store holds: its UID %u is another"
		    " message than the store's%s%.200s (%s; the same UIDVALIDITY %u), and local"
		    " changes to %zu of its messages are not yet sent: set the account back to"
		    " the server that has them to send them, or remove the account with D-Bus"
		    " Manager1.RemoveAccount to drop them (saved as files first)",
		    id->sf.server_name, id->bad_uid, x && x->message_id ? " " : "",
		    x && x->message_id ? x->message_id : "", id->what, id->sf.uidvalidity,
		    id->end - id->pos);
}

static void ident_selected(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct ident *id = I(e);
	_cleanup_(buf_freep) struct buf set = BUF_INIT(ENGINE_SET_BYTES + 64);
	struct rangeset uids = RANGESET_INIT;
	enum plan_identity identity;
	size_t setpos = 0;
	int r = 0;

	free(TAKE_PTR(e->perm_pending));
	e->fetch_kind = FK_NONE;
	if (e->finished)
		return;
	if (id->host && res->r == -CPMSYNC_E_SERVER) {
		host_decide(e, HOST_UNPROVEN, "its %s cannot be selected (%s)", id->sf.server_name,
			    res->text ? res->text : "");
		return;
	}
	if (res->r == -CPMSYNC_E_SERVER) {
		/* Gone, or not ours to read: the folder sync and the replay
		 * deal with it as they do. */
		log_debug(CAT, "%s: %s not checked: %s", e->account_name, id->sf.server_name,
			  res->text ? res->text : "");
		ident_next_folder(e);
		return;
	}
	if (engine_reply_failed(e, res, "SELECT"))
		return;
	{
		const struct plan_identity_in in = {
			.local_uidvalidity = id->sf.uidvalidity,
			.local_uidnext = id->sf.uidnext,
			.local_highestmodseq = id->sf.highestmodseq,
			.local_mailboxid = id->sf.mailboxid,
			.uidvalidity = e->f.uidvalidity,
			.uidnext = e->f.uidnext,
			.highestmodseq = e->f.nomodseq ? 0 : e->f.hms,
			.mailboxid = e->f.mailboxid,
		};

		identity = plan_folder_identity(&in);
	}
	if (id->host && (identity != PLAN_IDENTITY_SAME || !e->f.uidvalidity)) {
		host_decide(e, HOST_UNPROVEN, "its %s is another folder (%s)", id->sf.server_name,
			    identity != PLAN_IDENTITY_SAME ? plan_identity_name(identity)
							   : "no UIDVALIDITY");
		return;
	}
	if (identity != PLAN_IDENTITY_SAME || !e->f.uidvalidity) {
		log_debug(CAT, "%s: %s not checked by its messages: %s", e->account_name,
			  id->sf.server_name,
			  identity != PLAN_IDENTITY_SAME ? plan_identity_name(identity)
							 : "no UIDVALIDITY");
		ident_next_folder(e);
		return;
	}
	/* Not at a new host name: a copy of the server's files (a backup
	 * restored elsewhere, the same snapshot twice) has its MAILBOXIDs
	 * too, and only the messages tell the two apart. */
	if (!id->host && id->sf.mailboxid && *id->sf.mailboxid && e->f.mailboxid[0] &&
	    strcmp(id->sf.mailboxid, e->f.mailboxid) == 0) {
		log_debug(CAT, "%s: %s has the recorded MAILBOXID", e->account_name,
			  id->sf.server_name);
		engine_ident_mark_folder(e, id->sf.id);
		ident_next_folder(e);
		return;
	}
	for (size_t i = id->pos; i < id->end && i < id->pos + ENGINE_IDENT_UIDS && r >= 0; i++)
		r = rangeset_add(&uids, id->t[i].uid);
	if (r >= 0)
		r = imap_seqset_format(&uids, &setpos, &set, ENGINE_SET_BYTES);
	rangeset_free(&uids);
	if (r >= 0) {
		e->fetch_kind = FK_IDENT;
		r = e->drv->ops->fetch(e->drv, set.data,
				       e->drv->ops->has(e->drv, IMAP_CAP_OBJECTID)
					       ? "UID RFC822.SIZE INTERNALDATE EMAILID"
					       : "UID RFC822.SIZE INTERNALDATE",
				       ident_fetched, e);
	}
	if (r < 0) {
		e->fetch_kind = FK_NONE;
		engine_fail(e, r, "out of memory");
	}
}

static void ident_folder(struct cpmsync_sync *e)
{
	struct ident *id = I(e);
	struct engine_driver *d = e->drv;
	int r;

	for (; id->pos < id->n; id->pos = id->end) {
		struct engine_select_params p = {
			.condstore = d->ops->enabled(d, IMAP_CAP_QRESYNC) ||
				     d->ops->enabled(d, IMAP_CAP_CONDSTORE),
		};

		id->end = id->pos;
		while (id->end < id->n && id->t[id->end].folder_id == id->t[id->pos].folder_id)
			id->end++;
		sync_folder_free_contents(&id->sf);
		id->sf = (struct sync_folder){ 0 };
		r = store_sync_folder_get(e->store, id->t[id->pos].folder_id, &id->sf);
		if (r == -CPMSYNC_E_NOT_FOUND)
			continue;
		if (r < 0) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return;
		}
		/* Not on the server yet, going, or never synced: no UID of
		 * it is the server's. */
		if (!id->sf.server_name || id->sf.removed || !id->sf.uidvalidity)
			continue;
		/* What the untagged responses of this SELECT will tell;
		 * selected_id 0: its FETCH, VANISHED and flags are no
		 * folder's of the store. */
		e->f.uidvalidity = e->f.uidnext = e->f.exists = 0;
		e->f.hms = 0;
		e->f.nomodseq = false;
		e->f.mailboxid[0] = '\0';
		e->selected_id = 0;
		e->keep_lost = true;
		id->selected = true;
		e->fetch_kind = FK_IDENT;
		r = d->ops->select(d, id->sf.server_name, &p, ident_selected, e);
		if (r < 0) {
			e->fetch_kind = FK_NONE;
			engine_fail(e, r, "out of memory");
		}
		return;
	}
	if (id->host) {
		if (id->proven)
			host_decide(e, HOST_SAME, "%zu folder%s proven", id->proven,
				    id->proven == 1 ? "" : "s");
		else
			host_decide(e, HOST_UNPROVEN,
				    "no synced folder holds a message to prove it by");
		return;
	}
	ident_done(e);
}

/*
 * The account's host changed, the user and everything else the same, and
 * nothing waits in the journal (store_sync_account_moved()): a new DNS
 * name of the server, its address instead of its name, or another server
 * altogether.  Dropping the copy, as store_sync_account_identity() does
 * for another server account, downloaded the whole mailbox again after a
 * harmless change of the settings; keeping it for another server mixed
 * two mailboxes.  So before anything of the server is written, each
 * folder the store synced and holds messages of is selected: it must show
 * the recorded UIDVALIDITY and pass plan_folder_identity() (MAILBOXID,
 * when both have one; HIGHESTMODSEQ and UIDNEXT not gone down), and its
 * oldest and newest message the store knows, fetched by UID, must have
 * the recorded size and INTERNALDATE (and EMAILID, when known), at least
 * one of them there: UIDVALIDITY and MAILBOXID alone are shared by a copy
 * of the server's files (a backup restored on another host), which holds
 * other messages under those UIDs once either side changed.  One folder
 * that fails, or none to prove it by, and the copy is dropped as before;
 * every one proven (and one at least), and it is kept, the new host
 * recorded, nothing fetched again.  Queued changes are not risked on it:
 * with any, store_sync_account_identity() refuses the run as it always
 * did, and the user sets the host back or removes the account.
 */
void engine_ident_host(struct cpmsync_sync *e, engine_next_fn next)
{
	struct ident *id;
	int r;

	r = store_sync_account_moved(e->store, e->account_id, e->host, e->user);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	if (r == 0) {
		next(e);
		return;
	}
	id = calloc(1, sizeof(*id));
	if (!id) {
		engine_fail(e, -ENOMEM, "out of memory");
		return;
	}
	id->next = next;
	id->host = true;
	e->ident = id;
	r = store_sync_host_targets(e->store, e->account_id, &id->t, &id->n);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	ident_folder(e);
}

static void host_decide(struct cpmsync_sync *e, enum host_verdict v, const char *fmt, ...)
{
	struct ident *id = I(e);
	engine_next_fn next = id->next;
	_cleanup_free_ char *was = NULL;
	char why[512];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (id->selected) {
		/* As ident_done(): the run selects what it needs again. */
		e->selected_id = 0;
		e->fast = FAST_OFF;
		e->keep_lost = true;
	}
	if (v == HOST_SAME) {
		r = store_sync_account_set_host(e->store, e->account_id, e->host);
		if (r < 0) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return;
		}
		log_msg(CPMSYNC_LOG_NOTICE, CAT,
			"%s: same server at the new address %s: store kept (%s)", e->account_name,
			e->host, why);
		/* Each was checked by its messages on this connection. */
		for (size_t i = 0; i < id->n; i++)
			engine_ident_mark_folder(e, id->t[i].folder_id);
		engine_ident_free(e);
		next(e);
		return;
	}
	/* UIDVALIDITY changed, a folder gone or refused, UIDs expunged:
	 * the same server may show that after changes by another client,
	 * so only another message under a UID says "different". */
	log_msg(CPMSYNC_LOG_NOTICE, CAT, "%s: %s at the new address %s: %s", e->account_name,
		v == HOST_OTHER ? "a different server" : "not shown to be the same server", e->host,
		why);
	engine_ident_free(e);
	/* A change queued meanwhile is refused as always (the run fails). */
	r = store_sync_account_identity(e->store, e->account_id, e->host, e->user, &was);
	if (r < 0) {
		engine_fail(e, r, "%s",
			    r == -ENOMEM	     ? "out of memory"
			    : *store_error(e->store) ? store_error(e->store)
						     : cpmsync_strerror(r));
		return;
	}
	if (r == 1)
		engine_identity_dropped(e->account_name, e->user, e->host, was);
	/* The folders named for this run are gone with the copy: all of
	 * them, from LIST. */
	free(TAKE_PTR(e->only));
	e->n_only = 0;
	e->fast = FAST_OFF;
	next(e);
}

void engine_ident_check(struct cpmsync_sync *e, engine_next_fn next)
{
	bool *mark = e->drv->ops->checked ? e->drv->ops->checked(e->drv) : NULL;
	struct ident *id;
	int r;

	if (mark && *mark) {
		next(e);
		return;
	}
	id = calloc(1, sizeof(*id));
	if (!id) {
		engine_fail(e, -ENOMEM, "out of memory");
		return;
	}
	id->next = next;
	e->ident = id;
	r = store_sync_uid_targets(e->store, e->account_id, &id->t, &id->n);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	ident_folder(e);
}

/* ------------------------------------------------------------------ */
/* The pull's check */

static void pull_release(struct cpmsync_sync *e)
{
	free(e->pull_ident.x.emailid);
	free(e->pull_ident.x.message_id);
	e->pull_ident.x = (struct sync_uid_target){ 0 };
	e->pull_ident.sent = e->pull_ident.waiting = e->pull_ident.compare = false;
	e->pull_ident.seen = e->pull_ident.fast = false;
	e->pull_ident.next = NULL;
	e->pull_ident.what[0] = '\0';
	e->pull_ident.gen++; /* a reply still coming is no one's */
}

void engine_ident_pull_reset(struct cpmsync_sync *e)
{
	pull_release(e);
}

static void pull_on_fetch(struct cpmsync_sync *e, const struct engine_fetch *f)
{
	const struct sync_uid_target *x = &e->pull_ident.x;
	int r;

	if (e->finished || !x->uid || f->uid != x->uid || e->pull_ident.what[0])
		return;
	/* Flags alone (a CHANGEDSINCE FETCH on the fast path) show no
	 * more than that the UID is there. */
	if (!(f->present & (ENGINE_FETCH_SIZE | ENGINE_FETCH_DATE)) &&
	    !((f->present & ENGINE_FETCH_OBJECTIDS) && f->emailid))
		return;
	e->pull_ident.seen = true;
	r = ident_differs(e, x, f, e->pull_ident.what, sizeof(e->pull_ident.what));
	if (r < 0)
		engine_fail(e, r, "store: %s", store_error(e->store));
}

struct pull_check {
	struct cpmsync_sync *e;
	unsigned gen;
};

static void pull_go_on(struct cpmsync_sync *e)
{
	engine_next_fn next = e->pull_ident.next;
	bool fast = e->pull_ident.fast;

	pull_release(e);
	/* The fast path's FETCHes go on under their own kind. */
	if (!fast)
		e->fetch_kind = FK_NONE;
	if (next)
		next(e);
}

static void pull_checked(const struct engine_reply *res, void *userdata)
{
	struct pull_check *pc = userdata;
	struct cpmsync_sync *e = pc->e;
	unsigned gen = pc->gen;
	const struct sync_uid_target *x = &e->pull_ident.x;

	free(pc);
	if (engine_pull_answered(e) || e->finished || gen != e->pull_ident.gen)
		return;
	e->pull_ident.sent = false;
	if (!e->pull_ident.waiting)
		return; /* the SELECT's answer decides (engine_ident_pull_selected()) */
	if (res->r == -CPMSYNC_E_SERVER) {
		/* Tells nothing either way; the folder's own checks remain. */
		log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: cannot check the messages of %s: %s",
			e->account_name, e->f.server_name, res->text ? res->text : "");
		pull_go_on(e);
		return;
	}
	if (engine_reply_failed(e, res, "UID FETCH (the check of the folder)"))
		return;
	if (e->pull_ident.compare && e->pull_ident.what[0]) {
		engine_fail(e, -CPMSYNC_E_CONFIG,
			    "%s on this server is not the folder the store holds: its UID %u is"
			    " another message than the store's%s%.200s (%s; the same UIDVALIDITY"
			    " %u): set the account back to the server that has it, or remove the"
			    " account with D-Bus Manager1.RemoveAccount and add it again to sync"
			    " this server's messages",
			    e->f.server_name, x->uid, x->message_id ? " " : "",
			    x->message_id ? x->message_id : "", e->pull_ident.what,
			    e->f.uidvalidity);
		return;
	}
	if (e->pull_ident.compare && e->pull_ident.seen) {
		log_debug(CAT, "%s: %s holds the message the store knows under UID %u",
			  e->account_name, e->f.server_name, x->uid);
		engine_ident_mark_folder(e, e->f.id);
	} else if (e->pull_ident.compare) {
		/* Expunged by another client: tells nothing, checked again at
		 * the folder's next news. */
		log_debug(CAT, "%s: %s has no UID %u any more", e->account_name, e->f.server_name,
			  x->uid);
	}
	pull_go_on(e);
}

static void pull_send(struct cpmsync_sync *e)
{
	struct engine_driver *d = e->drv;
	struct pull_check *pc;
	char set[16];
	int r;

	pc = calloc(1, sizeof(*pc));
	if (!pc) {
		engine_fail(e, -ENOMEM, "out of memory");
		return;
	}
	*pc = (struct pull_check){ e, ++e->pull_ident.gen };
	snprintf(set, sizeof(set), "%u", (unsigned)e->pull_ident.x.uid);
	r = d->ops->fetch(d, set,
			  d->ops->has(d, IMAP_CAP_OBJECTID) ? "UID RFC822.SIZE INTERNALDATE EMAILID"
							    : "UID RFC822.SIZE INTERNALDATE",
			  pull_checked, pc);
	if (r < 0) {
		free(pc);
		engine_fail(e, r, "out of memory");
		return;
	}
	e->pull_cmds++;
	e->pull_ident.sent = true;
}

void engine_ident_pull_start(struct cpmsync_sync *e, bool news)
{
	int r;

	pull_release(e);
	/* Read from UID 1 (re-matched by content), or checked already on
	 * this connection. */
	if (e->f.mode == PLAN_MODE_INITIAL || !e->f.local_uidvalidity ||
	    ident_folder_marked(e, e->f.id))
		return;
	r = store_sync_newest_uid_target(e->store, e->f.id, &e->pull_ident.x);
	if (r == -CPMSYNC_E_NOT_FOUND)
		return;
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	if (e->pull_ident.x.size <= 0 && e->pull_ident.x.internaldate <= 0 &&
	    !e->pull_ident.x.emailid) {
		pull_release(e); /* nothing to compare */
		return;
	}
	/* From here to the check's answer the batch is not committed
	 * (engine_tx_tick()): a QRESYNC SELECT's FETCH and VANISHED are
	 * applied as they come, and are rolled back with the run. */
	if (news)
		pull_send(e);
}

void engine_ident_pull_selected(struct cpmsync_sync *e, enum plan_identity identity,
				engine_next_fn next)
{
	const struct sync_uid_target *x = &e->pull_ident.x;
	bool proven, nothing_new;

	if (!x->uid) {
		next(e);
		return;
	}
	proven = e->f.local_mailboxid[0] && e->f.mailboxid[0] &&
		 strcmp(e->f.local_mailboxid, e->f.mailboxid) == 0;
	nothing_new = !e->f.nomodseq && e->f.local_hms && e->f.hms == e->f.local_hms &&
		      e->f.uidnext == e->f.local_uidnext;
	/* Another folder is re-read by content; one with the recorded
	 * MAILBOXID is the store's. */
	e->pull_ident.compare = identity == PLAN_IDENTITY_SAME && e->f.uidvalidity && !proven;
	if (proven)
		engine_ident_mark_folder(e, e->f.id);
	if (!e->pull_ident.sent && (!e->pull_ident.compare || nothing_new)) {
		/* Nothing of the folder is applied as the store's: no check. */
		pull_release(e);
		next(e);
		return;
	}
	e->pull_ident.next = next;
	e->pull_ident.waiting = true;
	e->fetch_kind = FK_IDENT;
	if (!e->pull_ident.sent)
		pull_send(e);
}

/* ------------------------------------------------------------------ */
/* The same on the fast path */

/*
 * Push brought news on the folder the session has selected, and the run
 * takes it without SELECT (engine.c fast_start()): a UID FETCH of the new
 * messages and one CHANGEDSINCE, applied as they come.  After a reconnect
 * the server may be another one that shows the recorded HIGHESTMODSEQ and
 * UIDNEXT: the pull then selected the folder without a check (nothing new,
 * nothing applied), and the first news on it would be the other server's
 * messages and flags under the store's UIDs.  So the fast path checks the
 * folder as the pull does, once per connection: the newest UID the store
 * holds, fetched first, pipelined ahead of the run's FETCHes (no round
 * trip more; a folder checked already on this connection, by the pull, at
 * the start or by an earlier push, costs nothing).  Its FETCH lines are
 * taken from whichever command they come with (Dovecot interleaves
 * pipelined FETCHes): a UID's size and date are the same in each, and
 * flags alone tell nothing.  Until the answer nothing is committed
 * (engine_tx_tick()), and the folder's state waits for it
 * (engine_ident_fast_wait()); another message fails the run as the pull's
 * check does, with the store as it was.
 */
void engine_ident_fast_start(struct cpmsync_sync *e)
{
	engine_ident_pull_start(e, false);
	if (e->finished || !e->pull_ident.x.uid)
		return;
	e->pull_ident.fast = true;
	e->pull_ident.compare = true; /* the UIDVALIDITY is the recorded one */
	e->pull_ident.waiting = true;
	pull_send(e);
}

void engine_ident_fast_on_fetch(struct cpmsync_sync *e, const struct engine_fetch *f)
{
	if (e->pull_ident.fast)
		pull_on_fetch(e, f);
}

bool engine_ident_fast_wait(struct cpmsync_sync *e, engine_next_fn next)
{
	if (!e->pull_ident.fast || !e->pull_ident.x.uid)
		return false;
	e->pull_ident.next = next;
	return true;
}
