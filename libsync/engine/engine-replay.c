/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sync engine, local -> server: the journal, replayed in order, each
 * row deleted in the same transaction that records its result.
 *
 * Exactly once: a row whose effect is not idempotent (APPEND, COPY, MOVE)
 * is marked (attempts + 1, the destination's UIDNEXT) and committed before
 * its command is sent.  Finding such a mark on the next run means the
 * command may or may not have reached the server, so the destination is
 * searched first (Message-ID, size and internal date among the UIDs from
 * the recorded UIDNEXT on that we do not know yet) and the UID adopted if
 * the message is there.  Flag changes go as UID STORE (UNCHANGEDSINCE m)
 * with the full merged set; on [MODIFIED] the server's current flags are
 * fetched, merged three-way (store-sync.c) and the STORE retried.
 * Expunges are UID EXPUNGE of exactly the messages removed here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cpmsync/error.h>
#include <cpmsync/limits.h>
#include <cpmsync/ops.h>

#include "engine/engine-internal.h"
#include "util/buf.h"
#include "util/flags.h"
#include "util/log.h"
#include "util/macro.h"

#define CAT CPMSYNC_LOG_CAT_ENGINE

/* Flag rows sent together. */
#define FLAGS_BATCH 256
/*
 * The longest flag list of one UID STORE: ENGINE_LINE_MAX less the rest
 * of its line ("a4294967295 UID STORE 4294967295 (UNCHANGEDSINCE
 * 18446744073709551615) +FLAGS.SILENT (" and ")" CRLF: 89 bytes).  A
 * flag is at most FLAG_MAX_LEN bytes, so one always fits.
 */
#define STORE_FLAGS_MAX (ENGINE_LINE_MAX - 100)
/* Rounds of MODIFIED -> fetch -> merge -> STORE before giving up for this run. */
#define FLAGS_ROUNDS 3
/* Expunge rows sent together. */
#define EXPUNGE_BATCH 1000
/* Other clients' \Deleted messages named when expunging without UIDPLUS. */
#define OTHERS_NAMED 10
/* Candidates looked at when verifying an interrupted APPEND/COPY. */
#define VERIFY_MAX 64

struct flag_item {
	struct cpmsync_sync *e;
	int64_t journal_id, message_id;
	uint32_t uid;
	char *flags;	 /* what we send */
	char *base;	 /* the server flags recorded when sent (the delta's base) */
	char *sent;	 /* the row's attempt mark: sets its STOREs sent (journal.h) */
	uint64_t modseq; /* the message's, for UNCHANGEDSINCE */
	int pending;	 /* commands in flight */
	bool modified, failed;
	bool send; /* in this round */
};

/* A folder's APPENDs of the run whose dates are read back (dates_note()). */
struct appended {
	int64_t folder_id;
	char *name;
	struct rangeset uids;
};

struct replay {
	struct journal_entry j;
	struct journal_args args; /* decoded by the ops that have some */
	struct sync_message msg, src;
	struct sync_folder folder, dst;
	/* flags */
	struct flag_item items[FLAGS_BATCH];
	size_t n_items;
	int pending, round;
	unsigned refetch_pending; /* UID FETCH (flags) not answered yet */
	/* expunge */
	int64_t exp_journal[EXPUNGE_BATCH], exp_message[EXPUNGE_BATCH];
	size_t n_exp;
	struct rangeset exp_uids;
	bool exp_uidplus; /* UID EXPUNGE, else EXPUNGE after a check */
	/* Its commands not answered yet (one STORE and one UID EXPUNGE per
	 * set), and the first refusal among them, copied (exp_part_done()). */
	unsigned exp_pending;
	struct {
		bool set;
		const char *what;
		char *text, *code_name;
		enum imap_code code;
		bool bad;
	} exp_no;
	/* replay_next()'s trampoline */
	bool in_next, again;
	/* the row after which the next one is read */
	int64_t journal_pos;
	/* COPYUID of an untagged OK (MOVE) */
	uint32_t copyuid_dst;
	/* An interrupted move whose copy a sync already re-matched: only
	 * its source is left to remove (copy_adopt()). */
	bool source_only;
	/* verify: what to look for, what was found */
	uint32_t verify_from;
	engine_next_fn verify_found, verify_missing;
	uint64_t verify_size;
	int64_t verify_date;
	uint32_t verify_uid; /* the match (0: none yet) */
	char *verify_flags;  /* its flags on the server; NULL: not read */
	/* CREATE: the name sent (the folder may be renamed meanwhile) */
	char *sent_name;
	/* CREATE or RENAME to a name a folder deleted here still has on the
	 * server: that folder (free_name()), and what to do once it is gone */
	int64_t blocker_id;
	engine_next_fn after_blocker;
	/* A CREATE to a name another folder still has on the server, renamed
	 * away here by a later row (rename_away_first()): that row goes
	 * first (early_row, 0: none), then the replay goes back to the
	 * position before the CREATE (early_resume).  early_for: the CREATE
	 * row that did so, only once.  Kept across rows (not replay_clear()). */
	int64_t early_row, early_resume, early_for;
	/* A STATUS of the replay's own (after a CREATE, before a DELETE):
	 * the server name asked about and the UIDVALIDITY it reported; for a
	 * DELETE (delete_checked()) the UIDVALIDITY the store knows and what
	 * takes the DELETE's answer */
	struct {
		char *name;
		uint32_t seen;
	} status;
	struct {
		uint32_t known;
		engine_reply_fn done;
	} del;
	/* set_annotation: the values sent; after a refusal of them all
	 * together, sent again one by one: ann_next the next one, ann_refused the entries refused
	 * alone (the first refusal is kept in exp_no) */
	struct store_annotation *ann;
	size_t n_ann;
	size_t ann_next;
	char *ann_refused;
	bool *ann_was_refused; /* of each entry sent alone */
	/* rows left waiting in a hidden namespace (row_hidden()), and the
	 * first folder named */
	unsigned hidden_waits;
	char *hidden_folder;
	/* APPENDs whose date the server may not have kept, by folder: their
	 * UIDs, read back at the journal's end (dates_next()).  Kept across
	 * rows. */
	struct appended *dates;
	size_t n_dates;
	struct rangeset dates_uids; /* the folder's being read */
	int64_t dates_folder;	    /* the folder whose FETCH is in flight */
	/* verify: the date of the match */
	int64_t verify_found_date;
};

static void replay_next(struct cpmsync_sync *e);

static struct replay *R(struct cpmsync_sync *e)
{
	return e->replay;
}

static void replay_clear(struct replay *rp)
{
	journal_entry_free_contents(&rp->j);
	journal_args_free(&rp->args);
	sync_message_free_contents(&rp->msg);
	sync_message_free_contents(&rp->src);
	sync_folder_free_contents(&rp->folder);
	sync_folder_free_contents(&rp->dst);
	for (size_t i = 0; i < rp->n_items; i++) {
		free(rp->items[i].flags);
		free(rp->items[i].base);
		free(rp->items[i].sent);
	}
	rp->n_items = 0;
	rp->n_exp = 0;
	rangeset_clear(&rp->exp_uids);
	free(rp->sent_name);
	rp->sent_name = NULL;
	store_annotations_free(rp->ann, rp->n_ann);
	rp->ann = NULL;
	rp->n_ann = 0;
	rp->ann_next = 0;
	free(rp->ann_refused);
	rp->ann_refused = NULL;
	free(rp->ann_was_refused);
	rp->ann_was_refused = NULL;
}

void engine_replay_free(struct cpmsync_sync *e)
{
	struct replay *rp = e->replay;

	if (!rp)
		return;
	replay_clear(rp);
	rangeset_free(&rp->exp_uids);
	free(rp->exp_no.text);
	free(rp->exp_no.code_name);
	free(rp->verify_flags);
	free(rp->status.name);
	free(rp->hidden_folder);
	for (size_t i = 0; i < rp->n_dates; i++) {
		free(rp->dates[i].name);
		rangeset_free(&rp->dates[i].uids);
	}
	free(rp->dates);
	rangeset_free(&rp->dates_uids);
	free(rp);
	e->replay = NULL;
}

/* The server refused the operation: keep it, go on with the others, and
 * let the run report failure. */
static void op_failed(struct cpmsync_sync *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void op_failed(struct cpmsync_sync *e, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: %s (kept for the next sync)", e->account_name, msg);
	if (!e->op_failures++)
		snprintf(e->op_reason, sizeof(e->op_reason), "%s", msg);
	e->stats.ops_failed++;
	replay_next(e);
}

/* Marks the current row done (in the open transaction) and goes on. */
static void op_done(struct cpmsync_sync *e)
{
	int r;

	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_journal_done(e->store, R(e)->j.id);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	e->stats.ops_replayed++;
	e->batch_rows++;
	replay_next(e);
}

static bool store_failed(struct cpmsync_sync *e, int r)
{
	if (r >= 0)
		return false;
	engine_fail(e, r, "store: %s", store_error(e->store));
	return true;
}

/*
 * Whether a refusal cannot pass by trying again (contract README "Failed
 * operations"): the row fails at once.  Any other NO ([UNAVAILABLE],
 * [INUSE], [SERVERBUG], [OVERQUOTA], [LIMIT], no code, a code not listed)
 * is retried with back-off, STORE_JOURNAL_TRIES times in all.
 */
static bool refusal_permanent(const struct engine_reply *res)
{
	if (res->bad)
		return true;
	switch (res->code) {
	case IMAP_CODE_NOPERM:
	case IMAP_CODE_TOOBIG:
	case IMAP_CODE_CANNOT:
	case IMAP_CODE_NONEXISTENT:
	case IMAP_CODE_ALREADYEXISTS: /* a CREATE that merges never gets here */
		return true;
	default:
		return false;
	}
}

/*
 * Records the server's refusal of journal row id (in the open
 * transaction): queued for a later try, or a failed operation, which
 * blocks nothing: the run goes on and does not fail for it.  A refusal
 * made here (res->local) is kept and logged as "not sent: ", not as the
 * server's.
 */
static int row_refused_as(struct cpmsync_sync *e, int64_t id, const struct engine_reply *res,
			  const char *what, bool permanent)
{
	const char *text = res->text ? res->text : "";
	_cleanup_free_ char *kept = NULL;
	bool failed = false;
	int r;

	if (res->local && asprintf(&kept, "%s%s", CPMSYNC_FAILED_OP_NOT_SENT, text) < 0) {
		kept = NULL;
		engine_fail(e, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_journal_refused(e->store, id, res->code_name ? res->code_name : "",
					  kept ? kept : text, permanent, (int64_t)time(NULL),
					  &failed);
	if (r == -CPMSYNC_E_NOT_FOUND) {
		/* A local change took the operation back while its command
		 * was in flight (a folder deleted during its CREATE): the
		 * refusal is moot. */
		log_debug(CAT, "%s: %s refused, but row %lld is gone: %s", e->account_name, what,
			  (long long)id, text);
		return 0;
	}
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return r;
	}
	e->batch_rows++;
	e->stats.ops_failed++;
	if (failed)
		e->stats.ops_given_up++;
	log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: %s %s: %s%s%s%s (%s)", e->account_name, what,
		res->local ? "not sent" : "refused by the server", res->code_name ? "[" : "",
		res->code_name ? res->code_name : "", res->code_name ? "] " : "", text,
		failed ? "a failed operation now" : "tried again later");
	return 0;
}

static int row_refused(struct cpmsync_sync *e, int64_t id, const struct engine_reply *res,
		       const char *what)
{
	return row_refused_as(e, id, res, what, refusal_permanent(res));
}

/* A NO/BAD refuses the operation (row_refused()), anything else fails the run. */
static bool cmd_refused(struct cpmsync_sync *e, const struct engine_reply *res, const char *what)
{
	if (e->finished)
		return true;
	if (res->r == 0)
		return false;
	if (res->r == -CPMSYNC_E_SERVER) {
		if (row_refused(e, R(e)->j.id, res, what) >= 0)
			replay_next(e);
		return true;
	}
	engine_reply_failed(e, res, what);
	return true;
}

static void exp_no_clear(struct replay *rp)
{
	free(rp->exp_no.text);
	free(rp->exp_no.code_name);
	memset(&rp->exp_no, 0, sizeof(rp->exp_no));
}

/*
 * Keeps the first refusal of the batch's commands (what says which); false
 * when the reply is not one (OK), the run has ended, or the connection
 * failed (the run then fails).
 */
static bool exp_no_keep(struct cpmsync_sync *e, const struct engine_reply *res, const char *what)
{
	struct replay *rp = R(e);

	if (e->finished || res->r == 0)
		return false;
	if (res->r != -CPMSYNC_E_SERVER) {
		engine_reply_failed(e, res, what);
		return false;
	}
	if (rp->exp_no.set)
		return true;
	rp->exp_no.set = true;
	rp->exp_no.what = what;
	rp->exp_no.code = res->code;
	rp->exp_no.bad = res->bad;
	rp->exp_no.text = res->text ? strdup(res->text) : NULL;
	rp->exp_no.code_name = res->code_name ? strdup(res->code_name) : NULL;
	if ((res->text && !rp->exp_no.text) || (res->code_name && !rp->exp_no.code_name))
		engine_fail(e, -ENOMEM, "out of memory");
	return true;
}

/* The kept refusal as a reply (its strings stay kept until
 * exp_no_clear()): false when there is none. */
static bool exp_no_take(struct replay *rp, struct engine_reply *res)
{
	if (!rp->exp_no.set)
		return false;
	*res = (struct engine_reply){ .r = -CPMSYNC_E_SERVER,
				      .text = rp->exp_no.text,
				      .code = rp->exp_no.code,
				      .code_name = rp->exp_no.code_name,
				      .bad = rp->exp_no.bad };
	return true;
}

/* A STORE +FLAGS \Deleted of the batch answered (expunge_search_done(),
 * whose reply comes after these, looks at what they kept). */
static void exp_store_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	exp_no_keep(e, res, "UID STORE");
}

/*
 * The current row (or flag batch) cannot be sent because operation
 * failed_id, which it needs, is a failed operation: it fails too, saying
 * so, and follows it (store_journal_blocked(); a retry of that operation
 * lets it go, a discard takes it away).  The run goes on.
 */
static void rows_blocked(struct cpmsync_sync *e, int64_t failed_id, const char *what)
{
	struct replay *rp = R(e);
	int64_t now = (int64_t)time(NULL);
	char text[CPMSYNC_FOLDER_NAME_MAX + 128];
	int r;

	/* Never sent: not the server's refusal (cpmctl sync, the outbox). */
	snprintf(text, sizeof(text),
		 CPMSYNC_FAILED_OP_NOT_SENT "depends on failed operation %lld (%s)",
		 (long long)failed_id, what);
	r = engine_tx_begin(e);
	for (size_t i = 0; r >= 0 && i < rp->n_items; i++)
		if (!rp->items[i].failed)
			r = store_journal_blocked(e->store, rp->items[i].journal_id, text, now);
	if (r >= 0 && rp->n_items == 0)
		r = store_journal_blocked(e->store, rp->j.id, text, now);
	if (store_failed(e, r))
		return;
	e->batch_rows++;
	e->stats.ops_failed++;
	e->stats.ops_given_up++;
	log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: %s row %lld %s: a failed operation now",
		e->account_name, rp->j.op_name, (long long)rp->j.id, text);
	replay_next(e);
}

/*
 * The row needs folder f on the server, where it is not yet: its CREATE
 * failed (the row follows it, rows_blocked()), or is queued after a
 * refusal that may pass (the row waits for it: kept, the run does not
 * fail for it).  A folder without a server name and without a CREATE
 * row is a damaged journal: reported.
 */
static void needs_folder(struct cpmsync_sync *e, const struct sync_folder *f)
{
	int64_t create = 0;
	bool failed = false;
	char what[CPMSYNC_FOLDER_NAME_MAX + 32];
	int r;

	r = store_journal_create_row(e->store, f->id, &create, &failed);
	if (store_failed(e, r))
		return;
	if (r == 0) {
		op_failed(e,
			  "folder %s does not exist on the server and its creation is not queued",
			  f->name);
		return;
	}
	if (!failed) {
		log_debug(CAT, "%s: %s row %lld waits for the creation of %s (row %lld)",
			  e->account_name, R(e)->j.op_name, (long long)R(e)->j.id, f->name,
			  (long long)create);
		replay_next(e);
		return;
	}
	snprintf(what, sizeof(what), "create-folder %s", f->name);
	rows_blocked(e, create, what);
}

/* The driver's answer to queueing a command: a failure fails the run. */
static int sent(struct cpmsync_sync *e, int r)
{
	if (r < 0)
		engine_fail(e, r, "out of memory");
	return r;
}

static struct engine_driver *D(struct cpmsync_sync *e)
{
	return e->drv;
}

/*
 * The driver could not even write the command for a local folder name:
 * the server's hierarchy delimiter inside a level (Cyrus's classic
 * namespace: "Loc.Dot", a CPM peer "sip:bob@example.com"), or a character
 * no folder name may hold (-EILSEQ).  Taken for a failure of the run
 * ("out of memory"), that stopped the account for good, every change
 * behind the row with it.  It is the server's refusal in all but name:
 * done gets a [CANNOT] NO (permanent: a failed operation, which blocks
 * only what depends on it).  false: r is no such failure (sent() it).
 */
static bool name_unsendable(struct cpmsync_sync *e, int r, const char *name, engine_reply_fn done)
{
	char text[600], delim = D(e)->ops->delimiter ? D(e)->ops->delimiter(D(e)) : 0;

	if (r != -EINVAL && r != -EILSEQ)
		return false;
	if (r == -EILSEQ)
		snprintf(text, sizeof(text),
			 "\"%s\" holds a control or bidirectional formatting character: no folder"
			 " may be named so",
			 name);
	else if (delim && delim != '/')
		snprintf(text, sizeof(text),
			 "\"%s\" cannot be a folder name on this server: its hierarchy delimiter"
			 " '%c' is not allowed inside a level",
			 name, delim);
	else
		snprintf(text, sizeof(text),
			 "\"%s\" cannot be a folder name on this server (an empty level, or a"
			 " flat namespace)",
			 name);
	log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: %s", e->account_name, text);
	done(&(struct engine_reply){ .r = -CPMSYNC_E_SERVER,
				     .code = IMAP_CODE_CANNOT,
				     .code_name = "CANNOT",
				     .text = text,
				     .local = true },
	     e);
	return true;
}

static int load_folder(struct cpmsync_sync *e, int64_t id, struct sync_folder *f)
{
	sync_folder_free_contents(f);
	memset(f, 0, sizeof(*f));
	return store_sync_folder_get(e->store, id, f);
}

static int load_message(struct cpmsync_sync *e, int64_t id, struct sync_message *m)
{
	sync_message_free_contents(m);
	memset(m, 0, sizeof(*m));
	return store_sync_message_get(e->store, id, m);
}

/* ------------------------------------------------------------------ */
/* Verifying an interrupted APPEND / COPY / MOVE */

/*
 * Whether there, a candidate's INTERNALDATE, can be the date the server
 * gave our APPEND instead of the one it asked for (rp->verify_date): a
 * server does not keep a date ahead of its clock (Dovecot stores the time
 * of the APPEND for one more than 2 hours ahead, Cyrus caps one past
 * 2106).  Taken for another message, the copy the interrupted run left
 * was appended a second time.  Such a date is earlier than the one asked,
 * and not earlier than the attempt: the row was queued (j.created) before
 * any of its APPENDs left, less VERIFY_DATE_SLACK for a server clock
 * behind ours.  The candidates are already the UIDs from the UIDNEXT
 * recorded before the APPEND with our Message-ID, and the size must still
 * be ours: only a copy of the same message that another client appended
 * in the same minutes could be taken for it, which is no duplicate either.
 * A COPY or MOVE keeps the source's date: compared exactly.
 */
#define VERIFY_DATE_SLACK (24 * 3600)
static bool verify_date_replaced(const struct replay *rp, int64_t there)
{
	return rp->j.op == JOURNAL_OP_APPEND && there < rp->verify_date &&
	       there >= rp->j.created - VERIFY_DATE_SLACK;
}

/* A FETCH while verifying: the first candidate with the message's size
 * and internal date (or one the server gave in its place) is taken. */
void engine_replay_on_fetch(struct cpmsync_sync *e, const struct engine_fetch *f)
{
	struct replay *rp = R(e);

	if (!rp || rp->verify_uid || !(f->present & ENGINE_FETCH_SIZE) ||
	    !(f->present & ENGINE_FETCH_DATE) || f->size != rp->verify_size ||
	    (f->internaldate != rp->verify_date && !verify_date_replaced(rp, f->internaldate)))
		return;
	rp->verify_uid = f->uid;
	rp->verify_found_date = f->internaldate;
	free(rp->verify_flags);
	rp->verify_flags = NULL;
	if ((f->present & ENGINE_FETCH_FLAGS) && f->flags)
		rp->verify_flags = strdup(f->flags); /* NULL: read as not read */
}

void engine_replay_on_copyuid(struct cpmsync_sync *e, uint32_t uid)
{
	if (R(e))
		R(e)->copyuid_dst = uid;
}

static void verify_fetch_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	e->fetch_kind = FK_NONE;
	if (cmd_refused(e, res, "UID FETCH (verify)"))
		return;
	if (R(e)->verify_uid)
		R(e)->verify_found(e);
	else
		R(e)->verify_missing(e);
}

static void verify_search_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct rangeset cand = RANGESET_INIT;
	struct buf set = BUF_INIT(ENGINE_REPLAY_SET_BYTES + 64);
	size_t n = 0, pos = 0;
	int r = 0;

	if (cmd_refused(e, res, "UID SEARCH (verify)"))
		return;
	/* Bounded walk: at most VERIFY_MAX unknown UIDs are looked at. */
	for (size_t i = e->search.n; r >= 0 && i-- > 0 && n < VERIFY_MAX;) {
		for (uint32_t u = e->search.r[i].hi; n < VERIFY_MAX; u--) {
			bool known = false;

			r = store_sync_uid_known(e->store, e->selected_id, u, &known);
			if (r < 0)
				break;
			if (!known) {
				r = rangeset_add(&cand, u);
				n++;
			}
			if (u == e->search.r[i].lo)
				break;
		}
	}
	if (r < 0) {
		rangeset_free(&cand);
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	if (n == 0) {
		rangeset_free(&cand);
		R(e)->verify_missing(e);
		return;
	}
	/* VERIFY_MAX UIDs always fit in one line (ENGINE_LINE_MAX). */
	r = imap_seqset_format(&cand, &pos, &set, ENGINE_REPLAY_SET_BYTES);
	rangeset_free(&cand);
	R(e)->verify_uid = 0;
	if (r >= 0) {
		e->fetch_kind = FK_VERIFY;
		r = D(e)->ops->fetch(D(e), set.data, "UID RFC822.SIZE INTERNALDATE FLAGS",
				     verify_fetch_done, e);
	}
	buf_free(&set);
	sent(e, r);
}

static void verify_selected(struct cpmsync_sync *e)
{
	const struct sync_message *m = &R(e)->msg;

	rangeset_clear(&e->search);
	sent(e, D(e)->ops->search(D(e), R(e)->verify_from ? R(e)->verify_from : 1, m->message_id,
				  verify_search_done, e));
}

/* Looks for R(e)->msg (size, date, Message-ID) in folder f from the UIDNEXT
 * recorded in args_sent; rp->verify_uid is the match. */
static void verify(struct cpmsync_sync *e, const struct sync_folder *f, engine_next_fn found,
		   engine_next_fn missing)
{
	struct replay *rp = R(e);
	uint32_t from = 1;

	/* Without a readable mark (none, or an older format): from 1. */
	if (journal_attempt_decode(rp->j.args_sent, &from) < 0)
		from = 1;
	rp->verify_from = from;
	rp->verify_found_date = 0;
	free(rp->verify_flags);
	rp->verify_flags = NULL;
	rp->verify_found = found;
	rp->verify_missing = missing;
	/* What the server counts: the APPEND went with CRLF line ends
	 * (driver-imap.c crlf_copy(); an older version sent LFs as stored,
	 * which Dovecot counts as CRLF too).  A COPY or MOVE keeps the
	 * server's own size, which is the same. */
	if (store_body_crlf_size(e->store, rp->msg.id, &rp->verify_size) < 0)
		rp->verify_size = rp->msg.size;
	rp->verify_date = rp->msg.internaldate;
	engine_select(e, f->id, f->server_name, verify_selected);
}

/*
 * A committed mark on the disk before its command leaves
 * (store_sync_wal()): with synchronous = NORMAL a power loss could take
 * the mark back after the command reached the server, and the next run
 * would send it again as a first try.  One fdatasync per command or
 * round of STOREs.
 */
static int mark_durable(struct cpmsync_sync *e)
{
	int r = store_sync_wal(e->store);

	store_failed(e, r);
	return r;
}

/* Commits the mark before a non-idempotent command is sent. */
static int mark_attempt(struct cpmsync_sync *e, const struct sync_folder *dest)
{
	char args[JOURNAL_ATTEMPT_MAX];
	uint32_t uidnext = dest->uidnext;
	int r;

	if (e->selected_id == dest->id && e->selected_uidnext > uidnext)
		uidnext = e->selected_uidnext;
	journal_attempt_encode(uidnext ? uidnext : 1, args, sizeof(args));
	r = engine_tx_tick(e, true);
	if (r < 0)
		return r;
	r = store_journal_attempt(e->store, R(e)->j.id, args);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return r;
	}
	return mark_durable(e);
}

/*
 * After a command that gave message id its server state (APPEND or COPY
 * carrying flags, a STORE of sent): local flag changes made while the
 * command was in flight are not on the server yet, and no row was
 * queued for them (a message not on the server carries its flags in its
 * APPEND; a message with a pending flag row adds none).  Queues one when
 * the message's flags now differ from sent.  Works in the open
 * transaction.
 */
static int queue_flags_changed_meanwhile(struct cpmsync_sync *e, int64_t id, const char *sent)
{
	struct sync_message now = { 0 };
	int r;

	r = store_sync_message_get(e->store, id, &now);
	if (r == -CPMSYNC_E_NOT_FOUND)
		return 0; /* gone locally: its removal is queued or moot */
	if (r >= 0 && !now.removed && now.uid && !streq(sent ? sent : "", now.flags))
		r = store_journal_add(e->store, e->account_id, JOURNAL_OP_FLAGS, now.folder_id, id,
				      NULL);
	sync_message_free_contents(&now);
	return r;
}

/* ------------------------------------------------------------------ */
/* APPEND */

static void append_send(struct cpmsync_sync *e);

/* How the UID of an APPEND was learnt, for the log. */
enum adopt_how {
	ADOPT_FOUND,	 /* on the server before sending: an interrupted run sent it */
	ADOPT_APPENDUID, /* the APPENDUID of the APPEND just sent */
	ADOPT_SEARCHED,	 /* that APPEND found by search (no UIDPLUS) */
};

/*
 * An APPEND's date the server may not have kept: one ahead of our clock
 * (Dovecot keeps the time of the APPEND for a date more than 2 hours
 * ahead of its own, Cyrus caps one past 2106).  Kept as asked, the store
 * and the server disagreed (searches by date), the next run's identity
 * check took the message for another one (engine-ident.c) and failed the
 * account, and an interrupted APPEND's copy was not recognised.  So the
 * UID is noted and its INTERNALDATE read back at the journal's end, one
 * UID FETCH per folder for all of its APPENDs of the run
 * (dates_next()).  A date not ahead is kept by the servers (RFC 3501
 * 6.3.11: the internal date SHOULD be the one given) and costs nothing:
 * a message sent now, the usual case, has the date of its Store.  A
 * client clock up to 2 hours ahead of Dovecot's is inside its margin.
 */
static int dates_note(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct appended *a = NULL, *grown;

	if (rp->msg.internaldate <= (int64_t)time(NULL))
		return 0;
	for (size_t i = 0; i < rp->n_dates && !a; i++)
		if (rp->dates[i].folder_id == rp->folder.id)
			a = &rp->dates[i];
	if (!a) {
		grown = reallocarray(rp->dates, rp->n_dates + 1, sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		rp->dates = grown;
		a = &rp->dates[rp->n_dates];
		*a = (struct appended){ .folder_id = rp->folder.id,
					.name = strdup(rp->folder.server_name) };
		rangeset_init(&a->uids);
		if (!a->name)
			return -ENOMEM;
		rp->n_dates++;
	}
	return rangeset_add(&a->uids, rp->verify_uid);
}

static void adopt_uid_how(struct cpmsync_sync *e, enum adopt_how how)
{
	struct replay *rp = R(e);
	bool changed = false;
	int r;

	/* The server's copy has the flags the APPEND carried (read back when
	 * it was found by search); local changes since then go as a flag row. */
	const char *carried = rp->verify_flags ? rp->verify_flags : rp->msg.flags;

	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_sync_message_set_uid(e->store, rp->msg.id, rp->verify_uid, carried);
	/* The flags now, not those read before the APPEND was sent. */
	if (r >= 0)
		r = queue_flags_changed_meanwhile(e, rp->msg.id, carried);
	/* Found by search: its date is read already (verify_date_replaced()). */
	if (r >= 0 && how != ADOPT_APPENDUID && rp->verify_found_date)
		r = store_sync_message_internaldate(e->store, rp->msg.folder_id, rp->verify_uid,
						    rp->verify_found_date, &changed);
	if (store_failed(e, r))
		return;
	if (how == ADOPT_APPENDUID && dates_note(e) < 0) {
		engine_fail(e, -ENOMEM, "out of memory");
		return;
	}
	if (changed)
		log_debug(CAT, "%s: message %lld has the server's INTERNALDATE %lld",
			  e->account_name, (long long)rp->msg.id, (long long)rp->verify_found_date);
	log_debug(CAT, "%s: message %lld %s UID %u", e->account_name, (long long)rp->msg.id,
		  how == ADOPT_APPENDUID  ? "appended as"
		  : how == ADOPT_SEARCHED ? "appended, found as"
					  : "is already on the server as",
		  rp->verify_uid);
	op_done(e);
}

static void adopt_uid(struct cpmsync_sync *e)
{
	adopt_uid_how(e, ADOPT_FOUND);
}

static void adopt_appended_uid(struct cpmsync_sync *e)
{
	adopt_uid_how(e, ADOPT_SEARCHED);
}

/* A removed row whose APPEND/COPY never reached the server: nothing to do
 * there; the row (and then its expunge row) just goes. */
static void drop_removed(struct cpmsync_sync *e)
{
	int r;

	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_sync_message_delete(e->store, R(e)->msg.id);
	if (!store_failed(e, r))
		op_done(e);
}

static void append_lost(struct cpmsync_sync *e)
{
	op_failed(e, "message %lld was appended to %s but cannot be found there",
		  (long long)R(e)->msg.id, R(e)->folder.server_name);
}

static void wait_for_list(struct cpmsync_sync *e, const char *folder);

static void append_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct replay *rp = R(e);

	/* [TRYCREATE]: as for a UID COPY's destination (copy_done()), the
	 * folder may have been renamed by another client: in a run without
	 * LIST the row waits for the full sync that follows at once.  Its
	 * mark stays: that replay looks for the message first (verify()). */
	if (!e->finished && res->r == -CPMSYNC_E_SERVER && res->code == IMAP_CODE_TRYCREATE &&
	    e->only_run) {
		wait_for_list(e, rp->folder.server_name);
		return;
	}
	if (cmd_refused(e, res, "APPEND"))
		return;
	if (res->code == IMAP_CODE_APPENDUID && res->new_uid) {
		rp->verify_uid = res->new_uid;
		rp->verify_found_date = 0;
		free(rp->verify_flags);
		rp->verify_flags = NULL;
		adopt_uid_how(e, ADOPT_APPENDUID);
		return;
	}
	/* No UIDPLUS: find it like an interrupted APPEND. */
	verify(e, &rp->folder, adopt_appended_uid, append_lost);
}

static void append_send(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	_cleanup_free_ void *body = NULL;
	size_t len = 0;
	int r;

	r = store_sync_body_get(e->store, rp->msg.id, &body, &len);
	if (r == -CPMSYNC_E_NOT_FOUND) {
		op_failed(e, "message %lld has no stored content to append", (long long)rp->msg.id);
		return;
	}
	if (r == -ENOENT || r == -CPMSYNC_E_STORE_CORRUPT) {
		/*
		 * Its pack file lost (removed, cut short): the message only
		 * here cannot be sent, ever.  Taken for a store failure, that
		 * failed every run for good, with every change behind it.  A
		 * failed operation, naming the file (the store logged it).
		 */
		char text[600];

		snprintf(text, sizeof(text), "the content of message %lld cannot be read: %s",
			 (long long)rp->msg.id, store_error(e->store));
		append_done(&(struct engine_reply){ .r = -CPMSYNC_E_SERVER,
						    .code = IMAP_CODE_CANNOT,
						    .code_name = "CANNOT",
						    .text = text,
						    .local = true },
			    e);
		return;
	}
	if (store_failed(e, r) || mark_attempt(e, &rp->folder) < 0)
		return;
	r = D(e)->ops->append(D(e), rp->folder.server_name, rp->msg.flags, rp->msg.internaldate,
			      body, len, append_done, e);
	if (r == -E2BIG) {
		/*
		 * Too large for one command (IMAP_MAX_COMMAND_BYTES) once its
		 * line ends are CRLF: a message Store accepted before it
		 * counted them.  Taken for "out of memory", that failed every
		 * run for good, with every change behind it.  It is a [TOOBIG]
		 * refusal in all but name: a failed operation.
		 */
		char text[200];

		snprintf(text, sizeof(text),
			 "message %lld (%zu bytes) is too large to send: an APPEND carries at"
			 " most %u bytes with CRLF line ends",
			 (long long)rp->msg.id, len, CPMSYNC_OP_MAX_MESSAGE_SIZE);
		log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: %s", e->account_name, text);
		append_done(&(struct engine_reply){ .r = -CPMSYNC_E_SERVER,
						    .code = IMAP_CODE_TOOBIG,
						    .code_name = "TOOBIG",
						    .text = text,
						    .local = true },
			    e);
		return;
	}
	sent(e, r);
}

static void op_append(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	int r;

	r = load_message(e, rp->j.message_id, &rp->msg);
	if (r == -CPMSYNC_E_NOT_FOUND || (r >= 0 && rp->msg.uid)) {
		op_done(e);
		return;
	}
	if (store_failed(e, r))
		return;
	r = load_folder(e, rp->msg.folder_id, &rp->folder);
	if (store_failed(e, r))
		return;
	if (rp->msg.removed) {
		/* Expunged locally after an interrupted run sent it: find the
		 * server's copy for the expunge row that follows, if any. */
		if (rp->j.attempts > 0 && rp->folder.server_name)
			verify(e, &rp->folder, adopt_uid, drop_removed);
		else
			drop_removed(e);
		return;
	}
	if (!rp->folder.server_name) {
		needs_folder(e, &rp->folder);
		return;
	}
	if (rp->j.attempts > 0)
		verify(e, &rp->folder, adopt_uid, append_send);
	else
		append_send(e);
}

/* ------------------------------------------------------------------ */
/* COPY and MOVE */

static bool is_move(struct cpmsync_sync *e)
{
	return R(e)->j.op == JOURNAL_OP_MOVE;
}

/* The destination row got its UID; a move also removes the source row. */
static void copy_adopt(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	const char *carried = rp->verify_flags	     ? rp->verify_flags
			      : rp->src.server_flags ? rp->src.server_flags
						     : rp->msg.flags;
	int r;

	if (rp->source_only) {
		r = engine_tx_begin(e);
		if (r >= 0)
			r = store_sync_message_delete(e->store, rp->src.id);
		if (!store_failed(e, r))
			op_done(e);
		return;
	}
	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_sync_message_set_uid(e->store, rp->msg.id, rp->verify_uid, carried);
	/* COPY carries the source's flags; local changes since go as a flag
	 * row (also those made while the COPY was in flight). */
	if (r >= 0)
		r = queue_flags_changed_meanwhile(e, rp->msg.id, carried);
	if (r >= 0 && is_move(e) && rp->src.id)
		r = store_sync_message_delete(e->store, rp->src.id);
	if (store_failed(e, r))
		return;
	op_done(e);
}

/* The source's STORE +FLAGS \Deleted was refused: the EXPUNGE after it
 * removed nothing, so the move is refused (true), not done. */
static bool move_store_refused(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct engine_reply res;

	if (!exp_no_take(rp, &res))
		return false;
	cmd_refused(e, &res, rp->exp_no.what);
	exp_no_clear(rp);
	return true;
}

static void move_cleanup_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	if (cmd_refused(e, res, "UID EXPUNGE (move)") || move_store_refused(e))
		return;
	copy_adopt(e);
}

static int others_deleted(struct cpmsync_sync *e, const struct rangeset *ours, const char *why,
			  const char *folder, char *text, size_t size);

/* Why a move without MOVE and UIDPLUS waits (others_deleted()). */
#define MOVE_NO_UIDPLUS "the server lacks MOVE and UIDPLUS"

/* Whether the folder selected holds \Deleted messages other than the
 * source (after a UID SEARCH DELETED): -1 when it failed the run, 0 when
 * not, 1 when it does, with the reason in text. */
static int move_others_deleted(struct cpmsync_sync *e, char *text, size_t size)
{
	struct replay *rp = R(e);
	int r;

	rangeset_clear(&rp->exp_uids);
	r = rangeset_add(&rp->exp_uids, rp->src.uid);
	if (r >= 0)
		r = others_deleted(e, &rp->exp_uids, MOVE_NO_UIDPLUS, rp->folder.server_name, text,
				   size);
	if (r < 0) {
		engine_fail(e, r, "out of memory");
		return -1;
	}
	return r;
}

/* Without UIDPLUS: the source is \Deleted now; EXPUNGE only if it is the
 * only one.  If another client marked one meanwhile, the row fails saying
 * so: the copy stays (a retry finds it, attempts > 0, and tries the
 * removal again), and so does the source, marked \Deleted as the move
 * wants it (a discard shows it so: the server's state). */
static void move_search_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	char text[ENGINE_SET_BYTES + 256];
	int r;

	if (cmd_refused(e, res, "UID SEARCH DELETED (move)") || move_store_refused(e))
		return;
	r = move_others_deleted(e, text, sizeof(text));
	if (r < 0)
		return;
	if (r == 0) {
		sent(e, D(e)->ops->expunge(D(e), NULL, move_cleanup_done, e));
		return;
	}
	if (row_refused_as(
		    e, R(e)->j.id,
		    &(struct engine_reply){ .r = -CPMSYNC_E_SERVER, .text = text, .local = true },
		    "MOVE", true) >= 0)
		replay_next(e);
}

/* The source folder selected: \Deleted + UID EXPUNGE of the source, or
 * without UIDPLUS \Deleted + EXPUNGE when nothing else is \Deleted. */
static void move_remove_source_selected(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	char uid[16];

	snprintf(uid, sizeof(uid), "%u", rp->src.uid);
	exp_no_clear(rp);
	if (sent(e, D(e)->ops->store(D(e), uid, ENGINE_FLAGS_ADD, "\\Deleted", 0, exp_store_done,
				     e)) < 0)
		return;
	if (!D(e)->ops->has(D(e), IMAP_CAP_UIDPLUS)) {
		rangeset_clear(&e->search);
		sent(e, D(e)->ops->search_deleted(D(e), move_search_done, e));
		return;
	}
	sent(e, D(e)->ops->expunge(D(e), uid, move_cleanup_done, e));
}

/* Without MOVE (or after an interrupted one): the copy is made; the
 * source goes from its folder (selected again: verifying the copy
 * selected the destination). */
static void move_remove_source(struct cpmsync_sync *e)
{
	engine_select(e, R(e)->folder.id, R(e)->folder.server_name, move_remove_source_selected);
}

static void copy_lost(struct cpmsync_sync *e)
{
	op_failed(e, "message %lld was copied to %s but cannot be found there",
		  (long long)R(e)->msg.id, R(e)->dst.server_name);
}

static void copy_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct replay *rp = R(e);
	bool moved = is_move(e) && D(e)->ops->has(D(e), IMAP_CAP_MOVE);
	uint32_t dst = 0;

	/*
	 * [TRYCREATE] (RFC 3501 6.4.7): no destination of that name.  In a
	 * run without LIST another client may have renamed it, as a refused
	 * SELECT says of a source (select_refused()): the row waits for the
	 * full sync that follows at once, not for the journal's back-off
	 * (60 s) and a poll.  Its mark stays: that sync's replay looks for
	 * the copy first (verify()), finds none, and sends it there.
	 */
	if (!e->finished && res->r == -CPMSYNC_E_SERVER && res->code == IMAP_CODE_TRYCREATE &&
	    e->only_run) {
		wait_for_list(e, rp->dst.server_name);
		return;
	}
	if (cmd_refused(e, res, moved ? "UID MOVE" : "UID COPY"))
		return;
	if (res->code == IMAP_CODE_COPYUID && res->new_uid)
		dst = res->new_uid;
	else if (rp->copyuid_dst)
		dst = rp->copyuid_dst;
	if (!dst) {
		/* No UIDPLUS: look for it.  (A move without MOVE still has to
		 * remove the source afterwards.) */
		verify(e, &rp->dst, is_move(e) && !moved ? move_remove_source : copy_adopt,
		       copy_lost);
		return;
	}
	rp->verify_uid = dst;
	free(rp->verify_flags);
	rp->verify_flags = NULL;
	if (is_move(e) && !moved)
		move_remove_source(e);
	else
		copy_adopt(e);
}

static void copy_send(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	bool moved = is_move(e) && D(e)->ops->has(D(e), IMAP_CAP_MOVE);

	rp->copyuid_dst = 0;
	sent(e, D(e)->ops->copy(D(e), moved, rp->src.uid, rp->dst.server_name, copy_done, e));
}

static void copy_start(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);

	if (mark_attempt(e, &rp->dst) < 0)
		return;
	engine_select(e, rp->folder.id, rp->folder.server_name, copy_send);
}

/*
 * A move on a server with neither MOVE nor UIDPLUS is a COPY, then
 * \Deleted and a plain EXPUNGE of the source folder, which would remove
 * every \Deleted message there: made only when the source would be the
 * only one (the rule of the expunge without UIDPLUS).  Checked before the
 * COPY, so that a move that cannot be made safely changes nothing on the
 * server: it becomes a failed operation at once, saying why (waiting
 * would not make it safe; a retry checks again, a discard shows the
 * message in its folder again).
 */
static void move_precheck_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	char text[ENGINE_SET_BYTES + 256];
	int r;

	if (cmd_refused(e, res, "UID SEARCH DELETED (move)"))
		return;
	r = move_others_deleted(e, text, sizeof(text));
	if (r < 0)
		return;
	if (r > 0) {
		if (row_refused_as(e, R(e)->j.id,
				   &(struct engine_reply){
					   .r = -CPMSYNC_E_SERVER, .text = text, .local = true },
				   "MOVE", true) >= 0)
			replay_next(e);
		return;
	}
	copy_start(e);
}

static void move_precheck(struct cpmsync_sync *e)
{
	rangeset_clear(&e->search);
	sent(e, D(e)->ops->search_deleted(D(e), move_precheck_done, e));
}

/* The COPY (or MOVE), first checked when it will need a plain EXPUNGE. */
static void copy_or_move_start(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);

	if (is_move(e) && !D(e)->ops->has(D(e), IMAP_CAP_MOVE) &&
	    !D(e)->ops->has(D(e), IMAP_CAP_UIDPLUS))
		engine_select(e, rp->folder.id, rp->folder.server_name, move_precheck);
	else
		copy_start(e);
}

/* After a verified interrupted move: the source may still be there. */
static void move_verified(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);

	if (!rp->src.uid) {
		copy_adopt(e);
		return;
	}
	move_remove_source(e);
}

/* The source of a move its copy is known of (op_copy()): removed from the
 * server if a sync has not seen it go, then its row. */
static void move_source_left(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct journal_args args = { 0 };
	const char *why = "";
	int64_t src_id = 0;
	int r;

	r = journal_args_decode(rp->j.op, rp->j.args, &args, &why);
	if (r < 0 && r != -EBADMSG) {
		engine_fail(e, r, "out of memory");
		return;
	}
	if (r >= 0)
		src_id = args.copy.src_id;
	journal_args_free(&args);
	r = src_id ? load_message(e, src_id, &rp->src) : -CPMSYNC_E_NOT_FOUND;
	if (r >= 0)
		r = load_folder(e, rp->src.folder_id, &rp->folder);
	/* Gone (a sync saw it vanish), or no longer the hidden source of a
	 * move (never the copy itself). */
	if (r == -CPMSYNC_E_NOT_FOUND ||
	    (r >= 0 && (!rp->src.uid || !rp->folder.server_name || !rp->src.removed ||
			(rp->src.folder_id == rp->msg.folder_id && rp->src.uid == rp->msg.uid)))) {
		op_done(e);
		return;
	}
	if (store_failed(e, r))
		return;
	log_msg(CPMSYNC_LOG_NOTICE, CAT,
		"%s: the interrupted move of message %lld is on the server as UID %u; removing "
		"its source, UID %u of %s",
		e->account_name, (long long)rp->msg.id, rp->msg.uid, rp->src.uid,
		rp->folder.server_name);
	rp->source_only = true;
	move_remove_source(e);
}

static void op_copy(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct journal_args args;
	const char *why = "";
	int64_t src_id = 0;
	int r;

	/* rp->msg is the destination row, rp->src the source, rp->folder the
	 * source folder, rp->dst the destination folder. */
	rp->source_only = false;
	r = load_message(e, rp->j.message_id, &rp->msg);
	if (r == -CPMSYNC_E_NOT_FOUND) {
		op_done(e);
		return;
	}
	if (store_failed(e, r))
		return;
	if (rp->msg.uid) {
		/* On the server already: a sync re-matched the copy of an
		 * interrupted run.  A move may have copied without removing
		 * its source (COPY done, EXPUNGE not): that removal is left. */
		if (is_move(e) && rp->j.attempts > 0)
			move_source_left(e);
		else
			op_done(e);
		return;
	}
	r = load_folder(e, rp->msg.folder_id, &rp->dst);
	if (store_failed(e, r))
		return;
	if (!rp->dst.server_name) {
		needs_folder(e, &rp->dst);
		return;
	}
	r = journal_args_decode(rp->j.op, rp->j.args, &args, &why);
	if (r == -EBADMSG)
		/* Its source cannot be named: made from our copy below. */
		log_msg(CPMSYNC_LOG_WARNING, CAT,
			"%s: %s row %lld: malformed arguments (expected %s)", e->account_name,
			rp->j.op_name, (long long)rp->j.id, why);
	else if (r < 0) {
		engine_fail(e, r, "out of memory");
		return;
	} else
		src_id = args.copy.src_id;
	journal_args_free(&args);
	r = src_id ? load_message(e, src_id, &rp->src) : -CPMSYNC_E_NOT_FOUND;
	if (r >= 0)
		r = load_folder(e, rp->src.folder_id, &rp->folder);
	if (r == -CPMSYNC_E_NOT_FOUND || (r >= 0 && (!rp->src.uid || !rp->folder.server_name))) {
		/* The source is gone (expunged by another client, its folder
		 * deleted): the copy can still be made from our stored body. */
		if (rp->msg.has_body) {
			log_msg(CPMSYNC_LOG_NOTICE, CAT,
				"%s: source of the %s of message %lld is gone: appending our copy",
				e->account_name, rp->j.op_name, (long long)rp->msg.id);
			sync_folder_free_contents(&rp->folder);
			rp->folder = rp->dst;
			memset(&rp->dst, 0, sizeof(rp->dst));
			if (rp->j.attempts > 0)
				verify(e, &rp->folder, adopt_uid, append_send);
			else
				append_send(e);
			return;
		}
		log_msg(CPMSYNC_LOG_WARNING, CAT,
			"%s: source of the %s of message %lld is gone and its content was never "
			"downloaded: dropping the copy",
			e->account_name, rp->j.op_name, (long long)rp->msg.id);
		r = engine_tx_begin(e);
		if (r >= 0)
			r = store_sync_message_delete(e->store, rp->msg.id);
		if (!store_failed(e, r))
			op_done(e);
		return;
	}
	if (store_failed(e, r))
		return;
	if (rp->msg.removed && !is_move(e)) {
		/* A copy expunged locally after an interrupted run sent it:
		 * find it for the expunge row, or forget it.  (A move is made
		 * anyway: its source must leave the server; the expunge row
		 * then removes the moved copy.) */
		if (rp->j.attempts > 0)
			verify(e, &rp->dst, copy_adopt, drop_removed);
		else
			drop_removed(e);
		return;
	}
	if (rp->j.attempts > 0)
		verify(e, &rp->dst, is_move(e) ? move_verified : copy_adopt, copy_or_move_start);
	else
		copy_or_move_start(e);
}

/* ------------------------------------------------------------------ */
/* Flags */

static void flags_round(struct cpmsync_sync *e);

/* The server's current flags are merged in (the FETCH handler): send the
 * merge, built only now from the updated rows. */
static void flags_refetch_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	if (engine_reply_failed(e, res, "UID FETCH (flags)")) {
		e->fetch_kind = FK_NONE;
		return;
	}
	/* The FETCHes of every set answered (in order): all merged. */
	if (--R(e)->refetch_pending > 0)
		return;
	e->fetch_kind = FK_NONE;
	flags_round(e);
}

static void flags_batch_end(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct rangeset mod = RANGESET_INIT;
	struct buf set = BUF_INIT(ENGINE_REPLAY_SET_BYTES + 64);
	size_t pos = 0;
	bool any = false;
	int r = 0;

	for (size_t i = 0; r >= 0 && i < rp->n_items; i++)
		if (rp->items[i].modified) {
			r = rangeset_add(&mod, rp->items[i].uid);
			any = true;
		}
	if (r >= 0 && !any) {
		rangeset_free(&mod);
		/* Everything sent or failed: the rows are done (failed ones
		 * were counted and stay). */
		replay_next(e);
		return;
	}
	if (r >= 0 && ++rp->round >= FLAGS_ROUNDS) {
		rangeset_free(&mod);
		op_failed(e, "flags of %s kept changing on the server during %d attempts",
			  rp->folder.server_name, FLAGS_ROUNDS);
		return;
	}
	/* Someone else changed them: read theirs (merged by the FETCH
	 * handler), then send the merge.  A set too long for one line
	 * (ENGINE_LINE_MAX) goes as several FETCHes. */
	rp->refetch_pending = 0;
	e->fetch_kind = FK_FLAGS;
	while (r >= 0 && pos < mod.n) {
		buf_reset(&set);
		r = imap_seqset_format(&mod, &pos, &set, ENGINE_REPLAY_SET_BYTES);
		if (r >= 0)
			r = D(e)->ops->fetch(D(e), set.data, "UID FLAGS MODSEQ", flags_refetch_done,
					     e);
		if (r >= 0)
			rp->refetch_pending++;
	}
	rangeset_free(&mod);
	buf_free(&set);
	sent(e, r);
}

static void store_done(const struct engine_reply *res, void *userdata)
{
	struct flag_item *it = userdata;
	struct cpmsync_sync *e = it->e;
	struct replay *rp = R(e);
	int r = 0;

	if (e->finished)
		return;
	it->pending--;
	rp->pending--;
	if (res->r == -CPMSYNC_E_SERVER) {
		if (!it->failed) {
			it->failed = true;
			if (row_refused(e, it->journal_id, res, "UID STORE") < 0)
				return;
		}
	} else if (engine_reply_failed(e, res, "UID STORE")) {
		return;
	} else if (res->modified && rangeset_contains(res->modified, it->uid)) {
		it->modified = true;
	} else if (it->pending == 0 && !it->failed && !it->modified) {
		r = engine_tx_begin(e);
		if (r >= 0)
			r = store_sync_message_set_server_flags(e->store, it->message_id,
								it->flags);
		/* A SetFlags while the STORE was in flight found this row
		 * pending and added none: its change goes in a new row
		 * (added first, so that it gets a larger id than this one). */
		if (r >= 0)
			r = queue_flags_changed_meanwhile(e, it->message_id, it->flags);
		if (r >= 0)
			r = store_journal_done(e->store, it->journal_id);
		if (store_failed(e, r))
			return;
		e->stats.ops_replayed++;
	}
	if (rp->pending == 0)
		flags_batch_end(e);
}

/* One STORE of item it (its flags or a part of them, flags_send()). */
static int flags_store(struct cpmsync_sync *e, struct flag_item *it, const char *uid,
		       enum engine_flags_mode mode, const char *flags, uint64_t unchangedsince)
{
	int r = D(e)->ops->store(D(e), uid, mode, flags, unchangedsince, store_done, it);

	if (sent(e, r) < 0)
		return r;
	it->pending++;
	R(e)->pending++;
	return 0;
}

/* flags (a set) added or removed as mode says, in as many STOREs as
 * keep each list within STORE_FLAGS_MAX bytes; none for "". */
static int flags_store_split(struct cpmsync_sync *e, struct flag_item *it, const char *uid,
			     enum engine_flags_mode mode, const char *flags)
{
	char part[STORE_FLAGS_MAX + 1];
	size_t n = 0;
	int r;

	for (const char *p = flags; *p;) {
		size_t len = strcspn(p, " ");

		if (len > STORE_FLAGS_MAX) /* no flag is (flag_valid()) */
			return sent(e, -EINVAL);
		if (n && n + 1 + len > STORE_FLAGS_MAX) {
			part[n] = '\0';
			r = flags_store(e, it, uid, mode, part, 0);
			if (r < 0)
				return r;
			n = 0;
		}
		if (n)
			part[n++] = ' ';
		memcpy(part + n, p, len);
		n += len;
		p += len + (p[len] == ' ');
	}
	if (!n)
		return 0;
	part[n] = '\0';
	return flags_store(e, it, uid, mode, part, 0);
}

/*
 * Item it's STORE(s), as flags_round() read it; < 0 when the run failed.
 * With CONDSTORE, the whole set (UNCHANGEDSINCE) when it fits in one line
 * (ENGINE_LINE_MAX).  Without, or for a longer set, the delta as +FLAGS
 * and -FLAGS, split to fit: it merges with concurrent changes to other
 * flags by itself, as the three-way merge of a [MODIFIED] would.  A
 * split FLAGS set would not: its first part takes the rest away until
 * the last lands, and a run killed in between left them off the server
 * (the next sync took that for another client's removal).  Parts of a
 * delta each move flags only towards the set, so any of them landing
 * alone merges back to it (store-sync.c) and the row, still queued,
 * sends the rest.  The delta starts from what the server may hold after
 * the row's earlier STOREs (its mark, journal_flags_attempt_bounds()):
 * a flag of the set that one took away is added again, one it set that
 * the set lacks is removed, even when the local flags equal the
 * recorded server flags.
 */
static int flags_send(struct cpmsync_sync *e, struct flag_item *it, bool condstore)
{
	_cleanup_free_ char *all = NULL, *any = NULL, *add = NULL, *del = NULL;
	_cleanup_free_ char *gone = NULL, *unknown = NULL; /* not needed */
	char uid[16];
	int r;

	snprintf(uid, sizeof(uid), "%u", it->uid);
	if (condstore && strlen(it->flags) <= STORE_FLAGS_MAX)
		return flags_store(e, it, uid, ENGINE_FLAGS_SET, it->flags,
				   it->modseq ? it->modseq : e->selected_hms);
	r = journal_flags_attempt_bounds(it->sent, it->base ? it->base : "", &all, &any);
	if (r >= 0)
		r = flags_diff(all, it->flags, &add, &gone);
	if (r >= 0)
		r = flags_diff(it->flags, any, &del, &unknown);
	if (sent(e, r) < 0)
		return r;
	/* Nothing to change: one empty STORE all the same, so that the row
	 * is answered (and done) as any other. */
	if (!add[0] && !del[0])
		return flags_store(e, it, uid, ENGINE_FLAGS_ADD, "", 0);
	r = flags_store_split(e, it, uid, ENGINE_FLAGS_ADD, add);
	if (r >= 0)
		r = flags_store_split(e, it, uid, ENGINE_FLAGS_REMOVE, del);
	return r;
}

/*
 * The flags that turn base into flags and that the selected folder does
 * not keep (its SELECT's PERMANENTFLAGS), space-separated in *ret (NULL:
 * it keeps them all).  RFC 3501 7.1: a flag not in PERMANENTFLAGS lives
 * only in the session; Dovecot answers a STORE of one with OK and changes
 * nothing (a folder where the user may set \Seen but not others: ACL
 * "s" without "w").  The row was done, the change never reached the
 * server, and the next sync took the server's flags back.
 */
static int flags_not_kept(const struct cpmsync_sync *e, const char *base, const char *flags,
			  char **ret)
{
	_cleanup_free_ char *add = NULL, *del = NULL;
	_cleanup_buf_ struct buf out = BUF_INIT(4096);
	int r;

	*ret = NULL;
	if (!e->selected_perm)
		return 0;
	r = flags_diff(base, flags, &add, &del);
	if (r < 0)
		return r;
	for (int k = 0; k < 2; k++) {
		for (const char *p = k ? del : add; *p;) {
			const char *end = strchr(p, ' ');
			size_t len = end ? (size_t)(end - p) : strlen(p);
			char flag[FLAG_MAX_LEN + 2];

			snprintf(flag, sizeof(flag), "%.*s", (int)len, p);
			/* add and del are disjoint sets: each flag comes once. */
			if (!flags_has(e->selected_perm, flag) &&
			    (flag[0] == '\\' || !e->selected_perm_kw)) {
				r = buf_printf(&out, "%s%s", out.len ? " " : "", flag);
				if (r < 0)
					return r;
			}
			p += len + (end != NULL);
		}
	}
	if (out.len)
		*ret = buf_steal(&out);
	return 0;
}

/*
 * Sends (again) every item not done.  Each row is marked with the flags
 * its STORE sets, and the marks committed, before the first STORE leaves:
 * a STORE that reaches the server while the run dies before its answer is
 * recorded is then known as ours (journal.h).
 */
static void flags_round(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	bool condstore = e->selected_hms != 0, any = false;
	int r;

	rp->pending = 0;
	for (size_t i = 0; i < rp->n_items; i++) {
		struct flag_item *it = &rp->items[i];
		struct sync_message m = { 0 };
		_cleanup_free_ char *mark = NULL, *lost = NULL;

		it->send = false;
		if (it->failed || (rp->round > 0 && !it->modified))
			continue;
		it->modified = false;
		r = store_sync_message_get(e->store, it->message_id, &m);
		if (r == -CPMSYNC_E_NOT_FOUND ||
		    (r >= 0 && (!m.uid || (m.server_flags && streq(m.flags, m.server_flags) &&
					   journal_flags_attempt_only(it->sent, m.flags))))) {
			/* Gone, not on the server, or nothing left to send: the
			 * flags are the server's as recorded, and no STORE of
			 * this row that may have reached it since set others. */
			sync_message_free_contents(&m);
			r = engine_tx_begin(e);
			if (r >= 0)
				r = store_journal_done(e->store, it->journal_id);
			if (store_failed(e, r))
				return;
			it->failed = true; /* i.e. nothing more to do for it */
			continue;
		}
		if (store_failed(e, r))
			return;
		r = flags_not_kept(e, m.server_flags ? m.server_flags : "", m.flags, &lost);
		if (r >= 0 && lost) {
			char text[512];

			snprintf(text, sizeof(text),
				 "the folder does not keep %s for this account (PERMANENTFLAGS "
				 "(%s%s%s)):"
				 " the change cannot be made",
				 lost, e->selected_perm,
				 *e->selected_perm && e->selected_perm_kw ? " " : "",
				 e->selected_perm_kw ? "\\*" : "");
			sync_message_free_contents(&m);
			if (row_refused_as(e, it->journal_id,
					   &(struct engine_reply){ .r = -CPMSYNC_E_SERVER,
								   .code = IMAP_CODE_PERMANENTFLAGS,
								   .code_name = "PERMANENTFLAGS",
								   .text = text,
								   .local = true },
					   "UID STORE", true) < 0)
				return;
			it->failed = true;
			continue;
		}
		if (r < 0) {
			sync_message_free_contents(&m);
			engine_fail(e, r, "out of memory");
			return;
		}
		it->uid = m.uid;
		it->modseq = m.modseq;
		free(it->flags);
		free(it->base);
		it->flags = TAKE_PTR(m.flags);
		it->base = TAKE_PTR(m.server_flags);
		sync_message_free_contents(&m);
		r = journal_flags_attempt_add(it->sent, it->flags, &mark);
		if (r >= 0)
			r = engine_tx_begin(e);
		if (r >= 0)
			r = store_journal_attempt(e->store, it->journal_id, mark);
		if (store_failed(e, r))
			return;
		free(it->sent);
		it->sent = TAKE_PTR(mark);
		it->send = any = true;
	}
	if (any && (engine_tx_tick(e, true) < 0 || mark_durable(e) < 0))
		return;
	for (size_t i = 0; i < rp->n_items; i++)
		if (rp->items[i].send && flags_send(e, &rp->items[i], condstore) < 0)
			return;
	if (rp->pending == 0)
		flags_batch_end(e);
}

static void flags_selected(struct cpmsync_sync *e)
{
	/* RFC 4314: [READ-ONLY] when the user has none of the rights to
	 * change flags (w, s, t ...).  Dovecot still answers a STORE there
	 * with OK and changes nothing: the row was done, the flags never
	 * reached the server, and nothing said so.  A failed operation each
	 * (retried when the rights are given, or discarded). */
	static const struct engine_reply read_only = {
		.r = -CPMSYNC_E_SERVER,
		.code = IMAP_CODE_READ_ONLY,
		.code_name = "READ-ONLY",
		.text = "the folder is read-only for this account: its flags cannot be changed",
		.local = true,
	};
	struct replay *rp = R(e);

	if (e->selected_read_only) {
		for (size_t i = 0; i < rp->n_items; i++)
			if (row_refused_as(e, rp->items[i].journal_id, &read_only, "UID STORE",
					   true) < 0)
				return;
		replay_next(e);
		return;
	}
	rp->round = 0;
	flags_round(e);
}

/* Collects this and the following flag rows of the same folder. */
static void op_flags(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct journal_entry next;
	int r;

	rp->n_items = 0;
	rp->items[rp->n_items++] = (struct flag_item){ .e = e,
						       .journal_id = rp->j.id,
						       .message_id = rp->j.message_id,
						       .sent = TAKE_PTR(rp->j.args_sent) };
	while (rp->n_items < FLAGS_BATCH) {
		r = store_journal_next(e->store, e->account_id, rp->journal_pos, &next);
		if (store_failed(e, r))
			return;
		if (r == 0)
			break;
		if (next.op != JOURNAL_OP_FLAGS || next.folder_id != rp->j.folder_id) {
			journal_entry_free_contents(&next);
			break;
		}
		rp->journal_pos = next.id;
		rp->items[rp->n_items++] = (struct flag_item){ .e = e,
							       .journal_id = next.id,
							       .message_id = next.message_id,
							       .sent = TAKE_PTR(next.args_sent) };
		journal_entry_free_contents(&next);
	}
	r = load_folder(e, rp->j.folder_id, &rp->folder);
	if (r == -CPMSYNC_E_NOT_FOUND) {
		/* The folder went away with its messages; the rows are moot. */
		for (size_t i = 0; r != 0 && i < rp->n_items; i++) {
			r = engine_tx_begin(e);
			if (r >= 0)
				r = store_journal_done(e->store, rp->items[i].journal_id);
			if (store_failed(e, r))
				return;
			r = -1;
		}
		replay_next(e);
		return;
	}
	if (store_failed(e, r))
		return;
	if (!rp->folder.server_name) {
		needs_folder(e, &rp->folder);
		return;
	}
	engine_select(e, rp->folder.id, rp->folder.server_name, flags_selected);
}

/* ------------------------------------------------------------------ */
/* Expunge */

/* A refusal for every row of the expunge batch (not only the first). */
static bool exp_refused(struct cpmsync_sync *e, const struct engine_reply *res, const char *what)
{
	struct replay *rp = R(e);

	if (e->finished)
		return true;
	if (res->r == 0)
		return false;
	if (res->r != -CPMSYNC_E_SERVER) {
		engine_reply_failed(e, res, what);
		return true;
	}
	for (size_t i = 0; i < rp->n_exp; i++)
		if (row_refused(e, rp->exp_journal[i], res, what) < 0)
			return true;
	replay_next(e);
	return true;
}

/* A kept refusal refuses the whole batch: true when there was one. */
static bool exp_no_refuse(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct engine_reply res;

	if (!exp_no_take(rp, &res))
		return false;
	exp_refused(e, &res, rp->exp_no.what);
	exp_no_clear(rp);
	return true;
}

static void expunge_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct replay *rp = R(e);
	int r = 0;

	if (exp_refused(e, res, rp->exp_uidplus ? "UID EXPUNGE" : "EXPUNGE"))
		return;
	r = engine_tx_begin(e);
	for (size_t i = 0; r >= 0 && i < rp->n_exp; i++) {
		r = store_sync_message_delete(e->store, rp->exp_message[i]);
		if (r >= 0)
			r = store_journal_done(e->store, rp->exp_journal[i]);
	}
	if (store_failed(e, r))
		return;
	e->stats.ops_replayed += (uint32_t)rp->n_exp;
	replay_next(e);
}

/*
 * Without UIDPLUS there is no UID EXPUNGE, and EXPUNGE removes every
 * \Deleted message of the folder, another client's too.  So: our messages
 * are marked \Deleted, UID SEARCH DELETED says which ones are, and
 * EXPUNGE goes only when they are all ours.  Otherwise nothing is
 * expunged and the rows become failed operations saying why (a retry
 * tries again, a discard shows the messages again).  Another client can
 * still mark a message \Deleted between the SEARCH and the EXPUNGE: one
 * round trip, the best a server without UIDPLUS allows.  A MOVE without
 * MOVE and UIDPLUS removes its source the same way (move_precheck()).
 *
 * others_deleted(): after a UID SEARCH DELETED (e->search), whether a
 * \Deleted message that is not in ours is there: 0 when none, 1 with
 * text "<why>, and EXPUNGE would also remove the other \Deleted messages
 * of FOLDER (UID ...)" naming the first few, or a negative errno.
 */
static int others_deleted(struct cpmsync_sync *e, const struct rangeset *ours, const char *why,
			  const char *folder, char *text, size_t size)
{
	struct rangeset others = RANGESET_INIT;
	struct buf set = BUF_INIT(ENGINE_SET_BYTES + 64);
	size_t pos = 0, n_others = 0;
	bool more;
	int r = 0;

	/* The first few UIDs that are not ours are enough to tell (and
	 * name); a range of any size costs at most EXPUNGE_BATCH + a few
	 * steps, as at most EXPUNGE_BATCH of its UIDs can be ours. */
	for (size_t i = 0; r >= 0 && i < e->search.n && n_others < OTHERS_NAMED; i++)
		for (uint32_t u = e->search.r[i].lo;; u++) {
			if (!rangeset_contains(ours, u)) {
				r = rangeset_add(&others, u);
				n_others++;
			}
			if (r < 0 || n_others >= OTHERS_NAMED || u == e->search.r[i].hi)
				break;
		}
	if (r >= 0 && rangeset_empty(&others)) {
		rangeset_free(&others);
		buf_free(&set);
		return 0;
	}
	if (r >= 0)
		r = imap_seqset_format(&others, &pos, &set, 200);
	more = pos < others.n || n_others >= OTHERS_NAMED;
	rangeset_free(&others);
	if (r >= 0)
		snprintf(text, size,
			 "%s, and EXPUNGE would also remove the other \\Deleted messages of %s "
			 "(UID %s%s)",
			 why, folder, set.data, more ? ",..." : "");
	buf_free(&set);
	return r < 0 ? r : 1;
}

static void expunge_search_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct replay *rp = R(e);
	char text[ENGINE_SET_BYTES + 256];
	int r;

	if (exp_refused(e, res, "UID SEARCH DELETED"))
		return;
	/* A refused STORE leaves its messages without \Deleted: EXPUNGE
	 * would not remove them, so the batch is not done. */
	if (exp_no_refuse(e))
		return;
	r = others_deleted(e, &rp->exp_uids, "the server lacks UIDPLUS", rp->folder.server_name,
			   text, sizeof(text));
	if (r < 0) {
		engine_fail(e, r, "out of memory");
		return;
	}
	if (r == 0) {
		sent(e, D(e)->ops->expunge(D(e), NULL, expunge_done, e));
		return;
	}
	/* A failed operation at once: waiting would not make it safe. */
	for (size_t i = 0; i < rp->n_exp; i++)
		if (row_refused_as(e, rp->exp_journal[i],
				   &(struct engine_reply){
					   .r = -CPMSYNC_E_SERVER, .text = text, .local = true },
				   "EXPUNGE", true) < 0)
			return;
	replay_next(e);
}

/*
 * One STORE or UID EXPUNGE of the batch answered; with the last one the
 * batch is done, or refused as a whole when any of them was refused (an
 * OK to a UID EXPUNGE whose STORE was refused expunged nothing, and a
 * refusal of another set than the last one must not be lost).  The sets
 * the server did expunge come back as VANISHED at the next sync.
 */
static void exp_part_done(struct cpmsync_sync *e, const struct engine_reply *res, const char *what)
{
	struct replay *rp = R(e);

	if (e->finished)
		return;
	exp_no_keep(e, res, what);
	if (e->finished || --rp->exp_pending > 0)
		return;
	if (exp_no_refuse(e))
		return;
	expunge_done(&(struct engine_reply){ 0 }, e);
}

static void exp_part_store_done(const struct engine_reply *res, void *userdata)
{
	exp_part_done(userdata, res, "UID STORE");
}

static void exp_part_expunge_done(const struct engine_reply *res, void *userdata)
{
	exp_part_done(userdata, res, "UID EXPUNGE");
}

static void expunge_without_uidplus(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct buf set = BUF_INIT(ENGINE_REPLAY_SET_BYTES + 64);
	size_t pos = 0;
	int r = 0;

	exp_no_clear(rp);
	while (r >= 0 && pos < rp->exp_uids.n) {
		buf_reset(&set);
		r = imap_seqset_format(&rp->exp_uids, &pos, &set, ENGINE_REPLAY_SET_BYTES);
		if (r >= 0)
			r = D(e)->ops->store(D(e), set.data, ENGINE_FLAGS_ADD, "\\Deleted", 0,
					     exp_store_done, e);
	}
	buf_free(&set);
	if (sent(e, r) < 0)
		return;
	rangeset_clear(&e->search);
	sent(e, D(e)->ops->search_deleted(D(e), expunge_search_done, e));
}

static void expunge_selected(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct buf set = BUF_INIT(ENGINE_REPLAY_SET_BYTES + 64);
	size_t pos = 0;
	int r;

	if (rangeset_empty(&rp->exp_uids)) {
		expunge_done(&(struct engine_reply){ 0 }, e);
		return;
	}
	rp->exp_uidplus = D(e)->ops->has(D(e), IMAP_CAP_UIDPLUS);
	if (!rp->exp_uidplus) {
		expunge_without_uidplus(e);
		return;
	}
	/* One set per command pair, each answered, each line within
	 * ENGINE_LINE_MAX; a batch is at most EXPUNGE_BATCH UIDs. */
	exp_no_clear(rp);
	rp->exp_pending = 0;
	while (pos < rp->exp_uids.n) {
		buf_reset(&set);
		r = imap_seqset_format(&rp->exp_uids, &pos, &set, ENGINE_REPLAY_SET_BYTES);
		if (r >= 0)
			r = D(e)->ops->store(D(e), set.data, ENGINE_FLAGS_ADD, "\\Deleted", 0,
					     exp_part_store_done, e);
		if (r >= 0)
			rp->exp_pending++;
		if (r >= 0)
			r = D(e)->ops->expunge(D(e), set.data, exp_part_expunge_done, e);
		if (r >= 0)
			rp->exp_pending++;
		if (sent(e, r) < 0)
			break;
	}
	buf_free(&set);
}

static void op_expunge(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct journal_entry next;
	int r;

	rp->n_exp = 0;
	rangeset_clear(&rp->exp_uids);
	rp->exp_journal[rp->n_exp] = rp->j.id;
	rp->exp_message[rp->n_exp++] = rp->j.message_id;
	while (rp->n_exp < EXPUNGE_BATCH) {
		r = store_journal_next(e->store, e->account_id, rp->journal_pos, &next);
		if (store_failed(e, r))
			return;
		if (r == 0)
			break;
		if (next.op != JOURNAL_OP_EXPUNGE || next.folder_id != rp->j.folder_id) {
			journal_entry_free_contents(&next);
			break;
		}
		rp->journal_pos = next.id;
		rp->exp_journal[rp->n_exp] = next.id;
		rp->exp_message[rp->n_exp++] = next.message_id;
		journal_entry_free_contents(&next);
	}
	for (size_t i = 0; i < rp->n_exp; i++) {
		struct sync_message m = { 0 };

		r = store_sync_message_get(e->store, rp->exp_message[i], &m);
		if (r >= 0 && m.uid)
			r = rangeset_add(&rp->exp_uids, m.uid);
		sync_message_free_contents(&m);
		if (r < 0 && r != -CPMSYNC_E_NOT_FOUND) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return;
		}
	}
	r = load_folder(e, rp->j.folder_id, &rp->folder);
	if (r == -CPMSYNC_E_NOT_FOUND ||
	    (r >= 0 && (!rp->folder.server_name || rangeset_empty(&rp->exp_uids)))) {
		/* nothing on the server to remove */
		rangeset_clear(&rp->exp_uids);
		expunge_done(&(struct engine_reply){ 0 }, e);
		return;
	}
	if (store_failed(e, r))
		return;
	engine_select(e, rp->folder.id, rp->folder.server_name, expunge_selected);
}

/* ------------------------------------------------------------------ */
/* Folders and metadata */

/* A CREATE or RENAME made the folder's local name its server name. */
static void server_name_done(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	int r;

	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_sync_folder_set_server_name(e->store, e->account_id, rp->folder.id,
						      rp->folder.name);
	if (!store_failed(e, r))
		op_done(e);
}

/*
 * Cyrus IMAP refuses a mailbox name holding one of these characters with
 * "NO Invalid mailbox name" and no response code (3.6.1, checked for
 * every printable ASCII character; '^' in the alt namespace only, where it
 * stands for '.', and '/' in the classic namespace, where no level holds
 * one here): a refusal that cannot pass, not one to try five times (the
 * peer folder of a sip:...;gr=... address).  A NO without a code and
 * with another text may pass, as any other.
 */
static const char cyrus_refused_chars[] = "!\"%;<>\\^`{|}";

/*
 * A CREATE of name, or a RENAME to it, refused so: a failed operation at
 * once, its text naming the character; true once handled (the replay goes
 * on).
 */
static bool name_refused_for_good(struct cpmsync_sync *e, const struct engine_reply *res,
				  const char *name, const char *what)
{
	static const char cyrus_text[] = "Invalid mailbox name";
	struct engine_reply why = *res;
	_cleanup_free_ char *text = NULL;
	const char *c;

	if (res->r != -CPMSYNC_E_SERVER || res->bad || res->code != IMAP_CODE_NONE || !res->text ||
	    strncasecmp(res->text, cyrus_text, strlen(cyrus_text)) != 0 ||
	    !(c = strpbrk(name, cyrus_refused_chars)))
		return false;
	if (asprintf(&text, "%s: the server does not take '%c' in a folder name", res->text, *c) <
	    0) {
		engine_fail(e, -ENOMEM, "out of memory");
		return true;
	}
	why.text = text;
	if (row_refused_as(e, R(e)->j.id, &why, what, true) >= 0)
		replay_next(e);
	return true;
}

static void rename_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	if ((!e->finished && name_refused_for_good(e, res, R(e)->folder.name, "RENAME")) ||
	    cmd_refused(e, res, "RENAME"))
		return;
	if (e->selected_id == R(e)->folder.id)
		e->selected_id = 0; /* be safe: select it again by its new name */
	server_name_done(e);
}

static void created(struct cpmsync_sync *e);
static void status_send(struct cpmsync_sync *e, const char *name, engine_reply_fn done);

/*
 * The STATUS after a CREATE: the new folder's UIDVALIDITY, so that a
 * DELETE of it later can tell it from another folder made under its name
 * meanwhile (delete_checked(); plan.c's left_its_name()).  Before, a folder
 * created here had none until a sync had read it, and a DELETE of it went
 * unchecked.  Not having it (a refused STATUS) costs nothing else.
 */
static void created_status_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct replay *rp = R(e);
	uint32_t seen = rp->status.seen;
	int r;

	free(rp->status.name);
	rp->status.name = NULL;
	if (res->r < 0 && res->r != -CPMSYNC_E_SERVER) {
		engine_reply_failed(e, res, "STATUS");
		return;
	}
	if (res->r == 0 && seen) {
		r = engine_tx_begin(e);
		if (r >= 0)
			r = store_sync_folder_set_created_uidvalidity(e->store, rp->folder.id,
								      seen);
		if (store_failed(e, r))
			return;
	}
	created(e);
}

/*
 * The CREATE of rp->sent_name reached the server.  Renamed locally while
 * it was in flight (RenameFolder of a folder not on the server changes
 * only the local row): the server's folder follows at once, this row
 * becoming the rename-folder row (so that a refusal is listed and
 * discarded as one).  Deleted locally meanwhile: the delete_folder row
 * that delete_folder() queued for it follows (store-ops.c).
 */
static void create_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct replay *rp = R(e);
	int64_t holder, row;
	int r;

	if (e->finished)
		return;
	if (res->r == -CPMSYNC_E_SERVER && res->code == IMAP_CODE_ALREADYEXISTS) {
		/* Made by an earlier, interrupted run (or someone else), unless
		 * it is another folder of ours that has not left the name (its
		 * RENAME refused, or queued where it could not go first). */
		r = store_sync_folder_leaving(e->store, e->account_id, rp->sent_name, rp->folder.id,
					      INT64_MAX, &holder, &row);
		if (store_failed(e, r))
			return;
		if (holder) {
			log_msg(CPMSYNC_LOG_NOTICE, CAT,
				"%s: %s is still another folder's on the server: the CREATE of"
				" the folder named so here waits until that one has left it",
				e->account_name, rp->sent_name);
			if (row_refused_as(e, rp->j.id, res, "CREATE", false) >= 0)
				replay_next(e);
			return;
		}
	} else if ((!e->finished && name_refused_for_good(e, res, rp->sent_name, "CREATE")) ||
		   cmd_refused(e, res, "CREATE"))
		return;
	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_sync_folder_set_server_name(e->store, e->account_id, rp->folder.id,
						      rp->sent_name);
	if (r == -CPMSYNC_E_NOT_FOUND) {
		/* Gone with no trace to follow: only an older version's
		 * DeleteFolder does that. */
		log_msg(CPMSYNC_LOG_WARNING, CAT,
			"%s: folder %s was deleted locally while its CREATE was in flight",
			e->account_name, rp->sent_name);
		op_done(e);
		return;
	}
	if (store_failed(e, r))
		return;
	status_send(e, rp->sent_name, created_status_done);
}

/* The CREATE done and its UIDVALIDITY read: the folder deleted or renamed
 * here while the CREATE was in flight follows. */
static void created(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	int r;

	r = load_folder(e, rp->folder.id, &rp->folder);
	if (store_failed(e, r))
		return;
	if (rp->folder.removed || streq(rp->folder.name, rp->folder.server_name)) {
		op_done(e);
		return;
	}
	log_debug(CAT, "%s: folder %s was renamed to %s while its CREATE was in flight",
		  e->account_name, rp->folder.server_name, rp->folder.name);
	r = store_journal_set_op(e->store, rp->j.id, JOURNAL_OP_RENAME_FOLDER,
				 &(struct journal_args){ .op = JOURNAL_OP_RENAME_FOLDER,
							 .rename.new_name = rp->folder.name });
	if (store_failed(e, r))
		return;
	r = D(e)->ops->rename(D(e), rp->folder.server_name, rp->folder.name, rename_done, e);
	if (!name_unsendable(e, r, rp->folder.name, rename_done))
		sent(e, r);
}

/*
 * A DELETE goes by name, and a name is not a folder: while the DELETE
 * waited here, another client may have deleted the folder and made
 * another under its name, with its own messages.  RFC 3501 2.3.1.1: a
 * folder made again under a name gets another UIDVALIDITY.  So where the
 * store knows the folder's UIDVALIDITY, a STATUS goes first, and the
 * DELETE only when the server's folder under that name is still that one.
 * Another is left alone, and ours counts as gone (done gets the answer of
 * a DELETE of a folder that does not exist): the next LIST brings the
 * other in as a new folder.  Without a known UIDVALIDITY (a folder never
 * selected, or reset), or when the STATUS tells nothing, the DELETE goes
 * as before.
 */
void engine_replay_on_status(struct cpmsync_sync *e, const struct engine_status *st)
{
	struct replay *rp = R(e);

	if (rp && rp->status.name && (st->present & IMAP_STATUS_ITEM_UIDVALIDITY) &&
	    streq(st->name, rp->status.name))
		rp->status.seen = st->uidvalidity;
}

/* Sends a STATUS of name for the replay; its UIDVALIDITY goes to
 * rp->status.seen (0: none reported), the answer to done. */
static void status_send(struct cpmsync_sync *e, const char *name, engine_reply_fn done)
{
	struct replay *rp = R(e);

	free(rp->status.name);
	rp->status.name = strdup(name);
	rp->status.seen = 0;
	if (!rp->status.name) {
		engine_fail(e, -ENOMEM, "out of memory");
		return;
	}
	sent(e, D(e)->ops->status(D(e), name, done, e));
}

static void delete_status_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct replay *rp = R(e);
	_cleanup_free_ char *name = rp->status.name;
	uint32_t known = rp->del.known, seen = rp->status.seen;

	rp->status.name = NULL;
	if (res->r == -CPMSYNC_E_SERVER && res->code == IMAP_CODE_NONEXISTENT) {
		rp->del.done(res, e); /* gone already */
		return;
	}
	if (res->r == 0 && seen && seen != known) {
		log_msg(CPMSYNC_LOG_NOTICE, CAT,
			"%s: %s on the server is another folder than the one deleted here "
			"(UIDVALIDITY %u, was %u): left alone",
			e->account_name, name, seen, known);
		rp->del.done(&(struct engine_reply){ .r = -CPMSYNC_E_SERVER,
						     .code = IMAP_CODE_NONEXISTENT },
			     e);
		return;
	}
	if (res->r < 0 && res->r != -CPMSYNC_E_SERVER) {
		engine_reply_failed(e, res, "STATUS");
		return;
	}
	sent(e, D(e)->ops->delete (D(e), name, rp->del.done, e));
}

static void delete_checked(struct cpmsync_sync *e, const struct sync_folder *f,
			   engine_reply_fn done)
{
	struct replay *rp = R(e);

	if (!f->uidvalidity) {
		sent(e, D(e)->ops->delete (D(e), f->server_name, done, e));
		return;
	}
	rp->del.known = f->uidvalidity;
	rp->del.done = done;
	status_send(e, f->server_name, delete_status_done);
}

/* The answer to the DELETE of folder id: done (or already gone), its row
 * and journal rows go; false when it was refused (the current row's
 * refusal) or the run failed. */
static bool folder_deleted(struct cpmsync_sync *e, const struct engine_reply *res, int64_t id)
{
	int r;

	if (res->r == -CPMSYNC_E_SERVER && res->code == IMAP_CODE_NONEXISTENT)
		; /* already gone */
	else if (cmd_refused(e, res, "DELETE"))
		return false;
	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_sync_folder_delete(e->store, id);
	if (store_failed(e, r))
		return false;
	e->stats.ops_replayed++;
	return true;
}

static void blocker_deleted(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct replay *rp = R(e);

	if (!folder_deleted(e, res, rp->blocker_id))
		return;
	rp->blocker_id = 0;
	rp->after_blocker(e);
}

/*
 * A CREATE or RENAME to name, before it leaves: a folder deleted here whose
 * DELETE is still pending may have that name on the server.  The journal
 * holds the DELETE after the CREATE when the deleted folder had been
 * renamed here first (renamed away from name, name created or taken by
 * another folder, the renamed one deleted): its DeleteFolder dropped the
 * RENAME, so the DELETE goes by its server name, which is name.  Sent in
 * order, the CREATE would find name taken ([ALREADYEXISTS], taken for a
 * CREATE an interrupted run made), the new folder's messages would go into
 * the old folder, and the DELETE would then delete both.  So that DELETE
 * goes first; then, or when no folder has the name, next.  True when the
 * DELETE was sent (next runs from its answer).
 */
static bool free_name(struct cpmsync_sync *e, const char *name, engine_next_fn next)
{
	struct replay *rp = R(e);
	struct sync_folder blocker = { 0 };
	int64_t id;
	int r;

	r = store_sync_folder_deleting(e->store, e->account_id, name, rp->folder.id, &id);
	if (store_failed(e, r))
		return true;
	if (!id)
		return false;
	log_debug(CAT, "%s: %s is still the name of a folder deleted here: its DELETE first",
		  e->account_name, name);
	rp->blocker_id = id;
	rp->after_blocker = next;
	if (e->selected_id == id) {
		if (sent(e, D(e)->ops->unselect(D(e))) < 0)
			return true;
		e->selected_id = 0;
	}
	r = load_folder(e, id, &blocker);
	if (!store_failed(e, r))
		delete_checked(e, &blocker, blocker_deleted);
	sync_folder_free_contents(&blocker);
	return true;
}

/*
 * A CREATE of name, before it leaves: another folder may still have the
 * name on the server, renamed away here by a row queued after this one
 * (New made, Old renamed away, New renamed to Old: the CREATE goes by
 * the new folder's current name).  Sent in order, the CREATE was answered
 * [ALREADYEXISTS], taken for one an interrupted run made, and the RENAME
 * then took the folder away under the new one's server name: the next
 * sync found no such folder and deleted the new one here, with what it
 * held (test-sync-crash, CI45).  So that RENAME row goes first (once per
 * CREATE row), and the replay then comes back to this row.  True when it
 * does (the replay goes on from it).
 */
static bool rename_away_first(struct cpmsync_sync *e, const char *name)
{
	struct replay *rp = R(e);
	int64_t holder, row;
	int r;

	if (rp->early_for == rp->j.id)
		return false;
	r = store_sync_folder_leaving(e->store, e->account_id, name, rp->folder.id, rp->j.id,
				      &holder, &row);
	if (store_failed(e, r))
		return true;
	if (!row)
		return false;
	log_debug(CAT,
		  "%s: %s is still the server name of folder %lld, renamed here: its RENAME"
		  " (row %lld) goes before the CREATE (row %lld)",
		  e->account_name, name, (long long)holder, (long long)row, (long long)rp->j.id);
	rp->early_for = rp->j.id;
	rp->early_row = row;
	rp->early_resume = rp->j.id - 1;
	rp->journal_pos = row - 1;
	replay_next(e);
	return true;
}

/*
 * Sends the CREATE of the row's folder.  Its name is committed with the
 * attempt first: a folder renamed or deleted locally while the CREATE is
 * in flight (or after a crash that left it unanswered) is then renamed or
 * deleted on the server under the name it was created with.
 */
static void create_send(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	const char *name = rp->folder.name, *before;
	_cleanup_free_ char *mark = NULL;
	int r;

	/* An earlier try whose answer never came may have created it. */
	if (rp->j.attempts > 0 && !rp->j.refused &&
	    journal_create_attempt_decode(rp->j.args_sent, &before) >= 0)
		name = before;
	if (free_name(e, name, create_send) || rename_away_first(e, name))
		return;
	rp->sent_name = strdup(name);
	if (!rp->sent_name) {
		engine_fail(e, -ENOMEM, "out of memory");
		return;
	}
	r = journal_create_attempt_encode(rp->sent_name, &mark);
	if (r >= 0)
		r = engine_tx_tick(e, true);
	if (r >= 0)
		r = store_journal_attempt(e->store, rp->j.id, mark);
	if (store_failed(e, r) || mark_durable(e) < 0)
		return;
	r = D(e)->ops->create(D(e), rp->sent_name, create_done, e);
	if (!name_unsendable(e, r, rp->sent_name, create_done))
		sent(e, r);
}

static void delete_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	/* store_sync_folder_delete removed this row too. */
	if (folder_deleted(e, res, R(e)->folder.id))
		replay_next(e);
}

/*
 * Whether the selected folder is the one the row renames on the server, or
 * under it.  Cyrus answers such a RENAME with "* VANISHED" of every UID
 * the session saw (the selected mailbox went away under that name), which
 * says nothing of the messages: RFC 9051 6.3.6 keeps them, under the new
 * name.  Taken as expunges, they were deleted here for good.  -1 when the
 * run failed.
 */
static int renames_selected(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct sync_folder sel = { 0 };
	const char *from = rp->folder.server_name;
	size_t n = strlen(from);
	int r;

	if (!e->selected_id)
		return 0;
	if (e->selected_id == rp->folder.id)
		return 1;
	r = load_folder(e, e->selected_id, &sel);
	if (r < 0) {
		sync_folder_free_contents(&sel);
		return r == -CPMSYNC_E_NOT_FOUND ? 0 : (store_failed(e, r), -1);
	}
	r = sel.server_name && strncmp(sel.server_name, from, n) == 0 && sel.server_name[n] == '/';
	sync_folder_free_contents(&sel);
	return r;
}

static void rename_send(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	int r;

	if (free_name(e, rp->folder.name, rename_send))
		return;
	r = renames_selected(e);
	if (r < 0)
		return;
	if (r > 0) {
		/* UNSELECT first (not CLOSE, which would expunge): what the
		 * server says during the RENAME is then of no folder of ours. */
		if (sent(e, D(e)->ops->unselect(D(e))) < 0)
			return;
		e->selected_id = 0;
	}
	r = D(e)->ops->rename(D(e), rp->folder.server_name, rp->folder.name, rename_done, e);
	if (!name_unsendable(e, r, rp->folder.name, rename_done))
		sent(e, r);
}

/* The row's RENAME goes to name (malloc'ed) instead of the current name. */
static void rename_to(struct cpmsync_sync *e, char *name)
{
	struct replay *rp = R(e);

	log_debug(CAT, "%s: the RENAME of %s (now %s here) goes to %s", e->account_name,
		  rp->folder.server_name, rp->folder.name, name);
	free(rp->folder.name);
	rp->folder.name = name;
}

/*
 * Where the RENAME of the row goes: the folder's current name, so that
 * renames made one after the other take one RENAME; but as the server
 * has that name now, and in a swap the name the row gave.
 *  - A folder above it still to be renamed there (A/x -> A/y, then
 *    A -> B): A/x goes to A/y, under A's server name, and A's RENAME takes
 *    it along.  Straight to B/y, the server made B for it and A's RENAME
 *    then found B taken.
 *  - The name still another folder's on the server while another rename
 *    of this folder follows in the journal: the step the user took.  In a
 *    swap by way of a third name (L5 -> L4, LE -> L5, L4 -> LE) the first
 *    RENAME straight to LE found LE held by the folder about to leave it
 *    for L5, which L5's holder blocked in turn: both were refused for ever
 *    (test-sync-crash-cyrus-alt, CRASH_KILLS=40).  A row without its name
 *    (an older version's) goes to the current name.
 * -1 when the run failed.
 */
static int rename_step(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct journal_args a;
	char *name = NULL;
	bool blocked;
	int r;

	if (!rp->folder.server_name || streq(rp->folder.server_name, rp->folder.name))
		return 0;
	r = store_sync_folder_name_on_server(e->store, e->account_id, rp->folder.name, &name);
	if (r == -ENOMEM) {
		engine_fail(e, r, "out of memory");
		return -1;
	}
	if (store_failed(e, r))
		return -1;
	if (name)
		rename_to(e, name);
	r = store_sync_folder_rename_blocked(e->store, e->account_id, rp->folder.id, rp->j.id,
					     rp->folder.name, &blocked);
	if (store_failed(e, r))
		return -1;
	if (!blocked || journal_args_decode(rp->j.op, rp->j.args, &a, NULL) < 0)
		return 0;
	name = strdup(a.rename.new_name);
	journal_args_free(&a);
	if (!name) {
		engine_fail(e, -ENOMEM, "out of memory");
		return -1;
	}
	rename_to(e, name);
	return 0;
}

static void op_folder(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	int r;

	r = load_folder(e, rp->j.folder_id, &rp->folder);
	if (r == -CPMSYNC_E_NOT_FOUND) {
		op_done(e);
		return;
	}
	if (store_failed(e, r))
		return;
	if (rp->j.op == JOURNAL_OP_CREATE_FOLDER) {
		if (rp->folder.server_name || rp->folder.removed) {
			op_done(e);
			return;
		}
		create_send(e);
	} else if (rp->j.op == JOURNAL_OP_RENAME_FOLDER) {
		if (rename_step(e) < 0)
			return;
		if (rp->folder.removed || !rp->folder.server_name ||
		    streq(rp->folder.server_name, rp->folder.name)) {
			op_done(e);
			return;
		}
		rename_send(e);
	} else {
		if (!rp->folder.server_name) {
			r = engine_tx_begin(e);
			if (r >= 0)
				r = store_sync_folder_delete(e->store, rp->folder.id);
			if (!store_failed(e, r))
				replay_next(e);
			return;
		}
		if (e->selected_id == rp->folder.id) {
			/* Never delete the selected folder: UNSELECT (or
			 * EXAMINE INBOX) first; CLOSE would expunge. */
			if (sent(e, D(e)->ops->unselect(D(e))) < 0)
				return;
			e->selected_id = 0;
		}
		delete_checked(e, &rp->folder, delete_done);
	}
}

/* SETMETADATA, SETACL, DELETEACL: done, or refused (kept). */
static void simple_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	if (cmd_refused(e, res, R(e)->j.op == JOURNAL_OP_SET_ACL ? "SETACL" : "SETMETADATA"))
		return;
	op_done(e);
}

/*
 * Decodes the row's args into rp->args.  Returns false (the row failed,
 * or the run) when malformed or out of memory.
 */
static bool decode_args(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	const char *why = "";
	int r;

	r = journal_args_decode(rp->j.op, rp->j.args, &rp->args, &why);
	if (r == -EBADMSG) {
		op_failed(e, "malformed %s operation %lld (expected %s)", rp->j.op_name,
			  (long long)rp->j.id, why);
		return false;
	}
	if (r < 0) {
		engine_fail(e, r, "out of memory");
		return false;
	}
	return true;
}

/*
 * Loads the row's folder into rp->folder; true when it is on the server.
 * A folder gone locally finishes the row (nothing left to apply).
 */
static bool row_folder_on_server(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	int r = load_folder(e, rp->j.folder_id, &rp->folder);

	if (r == -CPMSYNC_E_NOT_FOUND) {
		op_done(e);
		return false;
	}
	if (store_failed(e, r))
		return false;
	if (!rp->folder.server_name) {
		needs_folder(e, &rp->folder);
		return false;
	}
	return true;
}

static void op_metadata(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	const char *mbox = "", *entry, *value;

	if (!decode_args(e))
		return;
	entry = rp->args.metadata.entry;
	value = rp->args.metadata.value;
	if (rp->j.folder_id) {
		if (!row_folder_on_server(e))
			return;
		mbox = rp->folder.server_name;
	}
	if (!D(e)->ops->has(D(e), IMAP_CAP_METADATA) &&
	    !(rp->j.folder_id == 0 && D(e)->ops->has(D(e), IMAP_CAP_METADATA_SERVER))) {
		op_failed(e, "cannot set %s: the server lacks METADATA", entry);
		return;
	}
	sent(e, D(e)->ops->set_metadata(D(e), mbox, entry, value, simple_done, e));
}

/* set_acl: SETACL folder identifier rights, or DELETEACL for no rights. */
static void op_acl(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	const char *identifier, *rights;

	if (!decode_args(e) || !row_folder_on_server(e))
		return;
	identifier = rp->args.acl.identifier;
	rights = rp->args.acl.rights;
	if (!D(e)->ops->has(D(e), IMAP_CAP_ACL)) {
		op_failed(e, "cannot change the ACL of %s: the server lacks ACL", rp->folder.name);
		return;
	}
	sent(e,
	     D(e)->ops->set_acl(D(e), rp->folder.server_name, identifier, rights, simple_done, e));
}

/* ------------------------------------------------------------------ */
/* Annotations (ANNOTATE) */

/*
 * The row's values are on the server: done.  Changed again while the
 * STORE was in flight: that change found this row pending and added none,
 * so it gets one now (added before this one goes, so that its id is
 * larger: it replays in this run).
 */
static void annotation_row_done(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	bool more = false;
	int r;

	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_annotation_pending_free(e->store, rp->msg.id, rp->j.id, &more);
	if (r >= 0 && more)
		r = store_journal_add(e->store, e->account_id, JOURNAL_OP_ANNOTATION,
				      rp->msg.folder_id, rp->msg.id, NULL);
	if (r >= 0)
		r = store_journal_done(e->store, rp->j.id);
	if (store_failed(e, r))
		return;
	e->stats.ops_replayed++;
	e->batch_rows++;
	replay_next(e);
}

static void annotation_single_send(struct cpmsync_sync *e);

/*
 * The row is being refused: it holds the entries refused (those of rp->ann
 * marked in was, all of them for NULL), which only it sends again
 * (RetryOperation, or its back-off): a later change of the message gets a
 * row of its own and sends only what changed.  In the open transaction;
 * false: the run failed.
 */
static bool annotation_hold(struct cpmsync_sync *e, const bool *was)
{
	struct replay *rp = R(e);
	struct store_annotation *held = calloc(rp->n_ann ? rp->n_ann : 1, sizeof(*held));
	size_t n = 0;
	int r;

	if (!held) {
		engine_fail(e, -ENOMEM, "out of memory");
		return false;
	}
	for (size_t i = 0; i < rp->n_ann; i++)
		if (!was || was[i])
			held[n++] = rp->ann[i]; /* borrowed */
	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_annotation_hold(e->store, rp->j.id, held, n);
	free(held);
	return !store_failed(e, r);
}

/*
 * The reply to one entry sent alone: taken (its value recorded), or
 * refused (kept, and named).  After the last one, the row is done if none
 * was refused; else it is refused with the first refusal, its text naming
 * the entries refused, which stay pending (a retry sends only those).
 */
static void annotation_single_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct replay *rp = R(e);
	const struct store_annotation *a = &rp->ann[rp->ann_next];
	_cleanup_free_ char *text = NULL;
	struct engine_reply no;
	bool more;
	int r;

	if (e->finished)
		return;
	if (res->r == 0) {
		r = engine_tx_begin(e);
		if (r >= 0)
			r = store_annotations_sent(e->store, rp->msg.id, a, 1, &more);
		if (store_failed(e, r))
			return;
		e->batch_rows++;
	} else if (exp_no_keep(e, res, "UID STORE ANNOTATION")) {
		char *names;

		if (asprintf(&names, "%s%s%s (value.%s)", rp->ann_refused ? rp->ann_refused : "",
			     rp->ann_refused ? ", " : "", a->entry,
			     a->shared ? "shared" : "priv") < 0) {
			engine_fail(e, -ENOMEM, "out of memory");
			return;
		}
		free(rp->ann_refused);
		rp->ann_refused = names;
		rp->ann_was_refused[rp->ann_next] = true;
	} else {
		return; /* the connection failed: the run with it */
	}
	if (++rp->ann_next < rp->n_ann) {
		annotation_single_send(e);
		return;
	}
	if (!exp_no_take(rp, &no)) {
		annotation_row_done(e);
		return;
	}
	if (asprintf(&text, "%s: %s", rp->ann_refused, no.text ? no.text : "no text") < 0) {
		text = NULL;
		exp_no_clear(rp);
		engine_fail(e, -ENOMEM, "out of memory");
		return;
	}
	no.text = text;
	if (!annotation_hold(e, rp->ann_was_refused)) {
		exp_no_clear(rp);
		return;
	}
	r = row_refused(e, rp->j.id, &no, "UID STORE ANNOTATION");
	exp_no_clear(rp);
	if (r >= 0)
		replay_next(e);
}

static void annotation_single_send(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	const struct store_annotation *a = &rp->ann[rp->ann_next];
	struct engine_annotation one = { a->entry, a->shared, a->value };

	sent(e,
	     D(e)->ops->store_annotations(D(e), rp->msg.uid, &one, 1, annotation_single_done, e));
}

/*
 * The reply to the STORE of all the row's values.  A refusal of several
 * says not which of them the server would not take (Cyrus refuses the
 * whole STORE for one entry it owns, "/vendor/cmu/cyrus-imapd/..."): they
 * are sent again one by one, so that one refused entry holds back no
 * other.
 */
static void annotation_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	struct replay *rp = R(e);
	bool more = false;
	int r;

	if (res->r == -CPMSYNC_E_SERVER && !e->finished && rp->n_ann > 1) {
		log_msg(CPMSYNC_LOG_INFO, CAT,
			"%s: UID STORE ANNOTATION of %zu entries of message %lld refused (%s): "
			"sending them one by one",
			e->account_name, rp->n_ann, (long long)rp->msg.id,
			res->text ? res->text : "no text");
		exp_no_clear(rp);
		rp->ann_next = 0;
		free(rp->ann_was_refused);
		rp->ann_was_refused = calloc(rp->n_ann, sizeof(*rp->ann_was_refused));
		if (!rp->ann_was_refused) {
			engine_fail(e, -ENOMEM, "out of memory");
			return;
		}
		annotation_single_send(e);
		return;
	}
	/* One entry refused: the row holds it. */
	if (res->r == -CPMSYNC_E_SERVER && !e->finished && !annotation_hold(e, NULL))
		return;
	if (cmd_refused(e, res, "UID STORE ANNOTATION"))
		return;
	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_annotations_sent(e->store, rp->msg.id, rp->ann, rp->n_ann, &more);
	if (store_failed(e, r))
		return;
	annotation_row_done(e);
}

static void annotation_selected(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct engine_annotation *a = calloc(rp->n_ann, sizeof(*a));
	int r;

	if (!a) {
		engine_fail(e, -ENOMEM, "out of memory");
		return;
	}
	for (size_t i = 0; i < rp->n_ann; i++)
		a[i] = (struct engine_annotation){ rp->ann[i].entry, rp->ann[i].shared,
						   rp->ann[i].value };
	r = D(e)->ops->store_annotations(D(e), rp->msg.uid, a, rp->n_ann, annotation_done, e);
	free(a);
	sent(e, r);
}

/*
 * set_annotation: UID STORE ANNOTATION of every value of the message still
 * pending (idempotent, so a crash only sends it again).  A message not on
 * the server yet waits for the row that brings it there (or fails with
 * it); a server without ANNOTATE makes the row a failed operation at once.
 */
static void op_annotation(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	int64_t arrival = 0;
	bool failed = false;
	int r;

	r = load_message(e, rp->j.message_id, &rp->msg);
	if (r == -CPMSYNC_E_NOT_FOUND) {
		op_done(e); /* gone, with its annotations */
		return;
	}
	if (store_failed(e, r))
		return;
	if (!rp->msg.uid) {
		char what[64];

		r = store_journal_arrival_row(e->store, rp->msg.id, &arrival, &failed);
		if (store_failed(e, r))
			return;
		if (r == 0) {
			op_failed(e,
				  "message %lld is not on the server and its upload is not queued",
				  (long long)rp->msg.id);
			return;
		}
		if (!failed) {
			replay_next(e); /* waits for it */
			return;
		}
		snprintf(what, sizeof(what), "upload of message %lld", (long long)rp->msg.id);
		rows_blocked(e, arrival, what);
		return;
	}
	r = store_annotations_pending_row(e->store, rp->msg.id, rp->j.id, &rp->ann, &rp->n_ann);
	if (store_failed(e, r))
		return;
	if (rp->n_ann == 0) {
		op_done(e);
		return;
	}
	if (!D(e)->ops->has(D(e), IMAP_CAP_ANNOTATE_EXPERIMENT_1)) {
		char text[160];

		snprintf(text, sizeof(text),
			 "cannot set annotations of message %lld: the server lacks ANNOTATE",
			 (long long)rp->msg.id);
		if (!annotation_hold(e, NULL))
			return;
		if (row_refused_as(e, rp->j.id,
				   &(struct engine_reply){
					   .r = -CPMSYNC_E_SERVER, .text = text, .local = true },
				   "UID STORE ANNOTATION", true) >= 0)
			replay_next(e);
		return;
	}
	r = load_folder(e, rp->msg.folder_id, &rp->folder);
	if (r == -CPMSYNC_E_NOT_FOUND) {
		op_done(e);
		return;
	}
	if (store_failed(e, r))
		return;
	if (!rp->folder.server_name) {
		needs_folder(e, &rp->folder);
		return;
	}
	engine_select(e, rp->folder.id, rp->folder.server_name, annotation_selected);
}

/*
 * The server refused to select the folder the current row (or batch of
 * flag or expunge rows) needs: that is their refusal, classified by its
 * response code like any other ([NOPERM]: failed operations at once; a
 * NO that may pass: tried again later).  The run goes on.
 */
/*
 * In a run without LIST (only_run): the current row (or batch) names a
 * folder the server does not know by that name, which another client
 * may have renamed.  It waits, untouched (no try counted, no back-off),
 * for the full sync the session runs right after this run
 * (engine_replay_needs_list()), whose LIST finds the new name.
 */
static void wait_for_list(struct cpmsync_sync *e, const char *folder)
{
	log_msg(CPMSYNC_LOG_INFO, CAT,
		"%s: the local changes of %s wait for a full sync: renamed or deleted on"
		" the server? its folder list tells",
		e->account_name, folder ? folder : "?");
	if (!e->replay_needs_list)
		e->stats.folders_waiting++;
	e->replay_needs_list = true;
	replay_next(e);
}

static void select_refused(struct cpmsync_sync *e, const struct engine_reply *res)
{
	struct replay *rp = R(e);
	int r = 0;

	/*
	 * A run without LIST (news by IDLE or NOTIFY, a SetFlags) replays
	 * with the names the store had: a folder another client renamed is
	 * refused here (Dovecot: a NO without a code; Cyrus: [NONEXISTENT],
	 * which would make them failed operations at once), and only a LIST
	 * finds its new name.  The rows wait, untouched, for the full sync
	 * the session runs right after this one: its LIST renames the
	 * folder in the store, and its replay sends them there.  No access
	 * ([NOPERM]) or a BAD is no rename: refused as below.
	 */
	if (e->only_run && !res->bad && res->code != IMAP_CODE_NOPERM) {
		wait_for_list(e, rp->folder.server_name);
		return;
	}

	for (size_t i = 0; r >= 0 && i < rp->n_items; i++)
		if (!rp->items[i].failed)
			r = row_refused(e, rp->items[i].journal_id, res, "SELECT");
	for (size_t i = 0; r >= 0 && i < rp->n_exp; i++)
		r = row_refused(e, rp->exp_journal[i], res, "SELECT");
	if (r >= 0 && rp->n_items == 0 && rp->n_exp == 0)
		r = row_refused(e, rp->j.id, res, "SELECT");
	if (r >= 0)
		replay_next(e);
}

/* ------------------------------------------------------------------ */

static void replay_step(struct cpmsync_sync *e);

/*
 * A row of a folder in a namespace the session hides (other_namespaces =
 * hide, set after the row was queued), or copying from one: sent now, its
 * name would be a personal folder's (imap_ns_from_local()), a CREATE or
 * an APPEND into the user's own mailbox of what was meant for another's.
 * It waits, queued, until the namespace is shown again.  true: it waits
 * (noted); false: it goes, or the store failed (the run with it).
 */
static bool row_hidden(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct engine_driver *d = D(e);
	int64_t ids[2] = { rp->j.folder_id, 0 };
	struct journal_args a;
	int r = 0;

	if (!d->ops->hidden_root || !d->ops->hidden_root(d, NULL))
		return false;
	if ((rp->j.op == JOURNAL_OP_COPY || rp->j.op == JOURNAL_OP_MOVE) &&
	    journal_args_decode(rp->j.op, rp->j.args, &a, NULL) >= 0) {
		struct sync_message src = { 0 };

		if (store_sync_message_get(e->store, a.copy.src_id, &src) >= 0)
			ids[1] = src.folder_id;
		sync_message_free_contents(&src);
		journal_args_free(&a);
	}
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(ids); i++) {
		struct sync_folder f = { 0 };
		bool hidden;

		if (ids[i] <= 0)
			continue;
		r = store_sync_folder_get(e->store, ids[i], &f);
		hidden = r >= 0 && f.name && engine_name_hidden(e, f.name);
		if (hidden) {
			log_debug(CAT, "%s: %s row %lld waits: folder %s is in a hidden namespace",
				  e->account_name, rp->j.op_name, (long long)rp->j.id, f.name);
			rp->hidden_waits++;
			if (!rp->hidden_folder)
				rp->hidden_folder = TAKE_PTR(f.name);
		}
		sync_folder_free_contents(&f);
		if (hidden)
			return true;
	}
	return false;
}

/* What replays each operation (a row of another op is never handed over). */
static void (*const handlers[_JOURNAL_OP_MAX])(struct cpmsync_sync *e) = {
	[JOURNAL_OP_APPEND] = op_append,
	[JOURNAL_OP_FLAGS] = op_flags,
	[JOURNAL_OP_COPY] = op_copy,
	[JOURNAL_OP_MOVE] = op_copy,
	[JOURNAL_OP_EXPUNGE] = op_expunge,
	[JOURNAL_OP_CREATE_FOLDER] = op_folder,
	[JOURNAL_OP_RENAME_FOLDER] = op_folder,
	[JOURNAL_OP_DELETE_FOLDER] = op_folder,
	[JOURNAL_OP_SET_METADATA] = op_metadata,
	[JOURNAL_OP_SET_ACL] = op_acl,
	[JOURNAL_OP_ANNOTATION] = op_annotation,
};

/*
 * Goes on with the next row.  Many rows finish without any I/O (their
 * message is gone, or was found during the import): a trampoline instead
 * of recursion keeps the stack flat however many there are in a row.
 */
static void replay_next(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);

	if (rp->in_next) {
		rp->again = true;
		return;
	}
	rp->in_next = true;
	do {
		rp->again = false;
		replay_step(e);
	} while (rp->again && !e->finished);
	rp->in_next = false;
}

/* ------------------------------------------------------------------ */
/* The dates of the run's APPENDs (dates_note()) */

void engine_replay_on_date(struct cpmsync_sync *e, const struct engine_fetch *f)
{
	struct replay *rp = R(e);
	bool changed = false;
	int r;

	if (!rp || !(f->present & ENGINE_FETCH_DATE) || !f->internaldate || !f->uid ||
	    e->selected_id != rp->dates_folder)
		return;
	r = engine_tx_begin(e);
	if (r >= 0)
		r = store_sync_message_internaldate(e->store, rp->dates_folder, f->uid,
						    f->internaldate, &changed);
	if (store_failed(e, r))
		return;
	if (changed) {
		e->batch_rows++;
		log_debug(CAT, "%s: UID %u of %lld: the server's INTERNALDATE %lld",
			  e->account_name, f->uid, (long long)rp->dates_folder,
			  (long long)f->internaldate);
	}
}

static void dates_fetched(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	e->fetch_kind = FK_NONE;
	R(e)->dates_folder = 0;
	if (e->finished)
		return;
	if (res->r == -CPMSYNC_E_SERVER) {
		/* The dates stay as asked; the folder's sync of these UIDs
		 * adopts the server's (store_sync_new_message()). */
		log_msg(CPMSYNC_LOG_WARNING, CAT,
			"%s: cannot read the dates of appended messages: %s", e->account_name,
			res->text ? res->text : "");
	} else if (engine_reply_failed(e, res, "UID FETCH (dates)")) {
		return;
	}
	replay_next(e);
}

static void dates_selected(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	struct buf set = BUF_INIT(ENGINE_SET_BYTES + 64);
	size_t pos = 0;
	int r;

	r = imap_seqset_format(&rp->dates_uids, &pos, &set, ENGINE_SET_BYTES);
	rangeset_free(&rp->dates_uids);
	if (r >= 0) {
		rp->dates_folder = e->selected_id;
		e->fetch_kind = FK_DATES;
		r = D(e)->ops->fetch(D(e), set.data, "UID INTERNALDATE", dates_fetched, e);
	}
	buf_free(&set);
	sent(e, r);
}

static void dates_refused(struct cpmsync_sync *e, const struct engine_reply *res)
{
	rangeset_free(&R(e)->dates_uids);
	log_msg(CPMSYNC_LOG_WARNING, CAT, "%s: cannot read the dates of appended messages: %s",
		e->account_name, res->text ? res->text : "");
	replay_next(e);
}

/* The next folder's UIDs of dates_note(), if any: true, its FETCH goes. */
static bool dates_next(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	void (*refused)(struct cpmsync_sync *, const struct engine_reply *) = e->select_refused;
	struct appended a;

	if (!rp->n_dates)
		return false;
	a = rp->dates[--rp->n_dates];
	rangeset_free(&rp->dates_uids);
	rp->dates_uids = a.uids;
	e->select_refused = dates_refused;
	engine_select(e, a.folder_id, a.name, dates_selected);
	e->select_refused = refused;
	free(a.name);
	return true;
}

static void replay_step(struct cpmsync_sync *e)
{
	struct replay *rp = R(e);
	int r;

	if (e->finished)
		return;
	/* Results are committed in batches: a result lost to a crash only
	 * makes the row run again, and every row is safe to run again (the
	 * non-idempotent ones commit their attempt mark before sending). */
	if (engine_tx_tick(e, false) < 0)
		return;
	e->fetch_kind = FK_NONE;
	replay_clear(rp);
	if (rp->early_row && rp->journal_pos == rp->early_row) {
		/* the row run ahead of its turn is done: back to its CREATE */
		rp->journal_pos = rp->early_resume;
		rp->early_row = 0;
	}
	r = store_journal_next(e->store, e->account_id, rp->journal_pos, &rp->j);
	if (store_failed(e, r))
		return;
	if (rp->early_row && (r == 0 || rp->j.id != rp->early_row)) {
		/* it could not go after all: the CREATE goes as it is */
		rp->journal_pos = rp->early_resume;
		rp->early_row = 0;
		rp->again = true;
		return;
	}
	if (r == 0) {
		if (dates_next(e))
			return;
		if (rp->hidden_waits)
			log_msg(CPMSYNC_LOG_NOTICE, CAT,
				"%s: %u local change%s wait%s for folders of a namespace "
				"other_namespaces = hide leaves out (%s%s): set other_namespaces = "
				"show to send them",
				e->account_name, rp->hidden_waits, rp->hidden_waits == 1 ? "" : "s",
				rp->hidden_waits == 1 ? "s" : "", rp->hidden_folder,
				rp->hidden_waits == 1 ? "" : ", ...");
		engine_logout(e);
		return;
	}
	rp->journal_pos = rp->j.id;
	log_debug(CAT, "%s: replaying %s (row %lld)", e->account_name, rp->j.op_name,
		  (long long)rp->j.id);
	if (row_hidden(e)) {
		replay_next(e);
		return;
	}
	if (rp->j.op != JOURNAL_OP_FLAGS && rp->j.op != JOURNAL_OP_ANNOTATION)
		e->replay_not_flags = true;
	if ((unsigned)rp->j.op < ARRAY_SIZE(handlers) && handlers[rp->j.op])
		handlers[rp->j.op](e);
	else
		op_failed(e, "unknown journal operation '%s' (row %lld)", rp->j.op_name,
			  (long long)rp->j.id);
}

void engine_replay_skip(struct cpmsync_sync *e)
{
	/* journal_pos is past them already. */
	replay_next(e);
}

void engine_replay_start(struct cpmsync_sync *e)
{
	struct replay *rp;

	rp = calloc(1, sizeof(*rp));
	if (!rp) {
		engine_fail(e, -ENOMEM, "out of memory");
		return;
	}
	rangeset_init(&rp->exp_uids);
	rangeset_init(&rp->dates_uids);
	e->replay = rp;
	e->select_refused = select_refused;
	rp->journal_pos = INT64_MIN;
	replay_next(e);
}
