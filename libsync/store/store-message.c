/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Message rows: the one place that writes a new message and its summary.
 *
 * A message is three rows: message (uid and the short fields the store
 * looks up), summary (since schema version 4: the long text that never
 * changes: subject, From, To, BODYSTRUCTURE) and message_state (since
 * version 23: flags, server_flags, modseq, what a resync rewrites).  SQLite
 * rewrites a whole record, overflow pages included, when any column of it
 * changes, and the page is the unit of cost of a change (written to the
 * WAL, then by the checkpoint); with the summary and the message row out,
 * a flag change rewrites a page of about thirty such rows.
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "util/cpm-object.h"
#include "util/macro.h"
#include "util/msg-summary.h"

/*
 * Which report names (imdn_ref) the store may hold: a Bloom filter, so
 * that a new original with an IMDN-Message-ID probes message_imdn_ref only
 * when a report of that name may be there (most originals come before
 * their reports: the probe, a statement of its own, was about 4k
 * instructions for every one of them in callgrind, issue 11).  No false
 * "absent": it is loaded from the index, every report name this
 * connection writes is added (store_message_insert(), _copy(),
 * _set_cpm(): the only writers of imdn_ref), and it is loaded again when
 * another connection committed (PRAGMA data_version, checked once per
 * write transaction; another connection cannot commit inside ours).
 * Outside a transaction the probe always runs.  A name of a row rolled
 * back or gone stays in it: a probe for nothing, as before.
 */
#define IMDN_FILTER_BITS (1u << 20) /* 128 KiB: under 1% false hits at 100,000 names */

struct imdn_filter {
	bool loaded;
	uint64_t tx; /* store_tx_seq() of the transaction it was checked in */
	int64_t data_version;
	uint64_t bits[IMDN_FILTER_BITS / 64];
};

static uint64_t name_hash(const char *v)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */

	for (; *v; v++)
		h = (h ^ (unsigned char)*v) * UINT64_C(0x100000001b3);
	return h;
}

static void filter_set(struct imdn_filter *f, const char *v)
{
	uint64_t h = name_hash(v);

	for (int i = 0; i < 3; i++, h = (h >> 21) | (h << 43)) {
		uint32_t b = (uint32_t)(h & (IMDN_FILTER_BITS - 1));

		f->bits[b / 64] |= UINT64_C(1) << (b % 64);
	}
}

static bool filter_test(const struct imdn_filter *f, const char *v)
{
	uint64_t h = name_hash(v);

	for (int i = 0; i < 3; i++, h = (h >> 21) | (h << 43)) {
		uint32_t b = (uint32_t)(h & (IMDN_FILTER_BITS - 1));

		if (!(f->bits[b / 64] & (UINT64_C(1) << (b % 64))))
			return false;
	}
	return true;
}

/* A report name this connection wrote. */
static void imdn_filter_add(struct store *s, const char *imdn_ref)
{
	struct imdn_filter *f = *store_imdn_filter_slot(s);

	if (f && f->loaded && imdn_ref && *imdn_ref)
		filter_set(f, imdn_ref);
}

static int filter_load(struct store *s, struct imdn_filter *f)
{
	sqlite3_stmt *st;
	int r;

	f->loaded = false;
	memset(f->bits, 0, sizeof(f->bits));
	r = store_prepare(s, "SELECT imdn_ref FROM message WHERE imdn_ref <> ''", &st);
	if (r < 0)
		return r;
	while ((r = store_step(s, st)) > 0) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		if (v)
			filter_set(f, v);
	}
	if (r < 0)
		return r;
	f->loaded = true;
	return 0;
}

/* May a report named imdn_message_id be in the store?  (true: probe.) */
static bool imdn_maybe_reported(struct store *s, const char *imdn_message_id)
{
	void **slot = store_imdn_filter_slot(s);
	struct imdn_filter *f = *slot;
	sqlite3_stmt *st;
	int64_t dv;

	if (!store_in_transaction(s))
		return true;
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			return true;
		*slot = f;
	}
	if (!f->loaded || f->tx != store_tx_seq(s)) {
		if (store_prepare(s, "PRAGMA data_version", &st) < 0 || store_step(s, st) <= 0) {
			f->loaded = false;
			return true;
		}
		dv = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if ((!f->loaded || dv != f->data_version) && filter_load(s, f) < 0)
			return true; /* f->loaded is false: loaded again next time */
		f->data_version = dv;
		f->tx = store_tx_seq(s);
	}
	return filter_test(f, imdn_message_id);
}

/* Most originals of one name raised by one report (more: by the next). */
#define IMDN_RAISE_MAX 64

/*
 * A new report of disposition status in folder_id naming imdn_ref: the
 * visible originals of that IMDN-Message-ID in its account whose Status
 * ranks lower take status, each written by id, and their conversations'
 * versions are bumped at the commit (schema version 17: what the trigger
 * conv_message_status did per row).  The rows are read first, then
 * written: the SELECT is done before its table changes.
 */
static int imdn_raise(struct store *s, const char *imdn_ref, const char *status, int64_t folder_id)
{
	struct {
		int64_t id, folder_id;
	} up[IMDN_RAISE_MAX];
	int rank = cpm_status_rank(status);
	size_t n = 0, more;
	sqlite3_stmt *st;
	int r;

	if (rank == 0)
		return 0; /* ranks above nothing */
	do {
		more = 0;
		n = 0;
		r = store_prepare(s, store_sql_imdn_originals, &st);
		if (r < 0)
			return r;
		sqlite3_bind_text(st, 1, imdn_ref, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, folder_id);
		while ((r = store_step(s, st)) > 0) {
			const char *cur = (const char *)sqlite3_column_text(st, 1);

			if (rank <= cpm_status_rank(cur))
				continue;
			if (n == IMDN_RAISE_MAX) {
				more = 1;
				sqlite3_reset(st);
				break;
			}
			up[n].id = sqlite3_column_int64(st, 0);
			up[n].folder_id = sqlite3_column_int64(st, 2);
			n++;
		}
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++) {
			r = store_prepare(s, "UPDATE message SET status = ?2 WHERE id = ?1", &st);
			if (r < 0)
				return r;
			sqlite3_bind_int64(st, 1, up[i].id);
			sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
			r = store_step_done(s, st);
			if (r >= 0)
				r = store_conv_bump(s, up[i].folder_id);
			if (r < 0)
				return r;
		}
	} while (more); /* the raised ones no longer rank lower */
	return 0;
}

/*
 * The IMDN matching of the new visible row id in folder_id (schema
 * version 16, store-schema.c): a report with a disposition raises the
 * originals it names, an original with an IMDN-Message-ID takes the
 * strongest of the reports that came before it.  Nothing to do for any
 * other row, which is most of the point: the triggers this replaces cost
 * every row, mail included.
 */
static int imdn_link(struct store *s, int64_t id, int64_t folder_id, const char *type,
		     const char *imdn_ref, const char *imdn_message_id, const char *status)
{
	_cleanup_free_ char *strongest = NULL;
	sqlite3_stmt *st;
	int r;

	imdn_filter_add(s, imdn_ref);
	if (!type)
		return 0;
	if (streq(type, "imdn")) {
		if (!imdn_ref || !*imdn_ref || !status || !*status)
			return 0; /* no name, or no disposition: raises nothing */
		return imdn_raise(s, imdn_ref, status, folder_id);
	}
	if (!imdn_message_id || !*imdn_message_id)
		return 0;
	if (!imdn_maybe_reported(s, imdn_message_id))
		return 0; /* no report of that name: most originals */
	r = store_prepare(s, store_sql_imdn_original_probe, &st);
	if (r < 0)
		return r;
	store_bind_text_or_null(st, 1, imdn_message_id);
	r = store_step(s, st);
	if (r <= 0)
		return r; /* no report before it: most originals */
	sqlite3_reset(st);
	r = store_prepare(s, store_sql_imdn_strongest, &st);
	if (r < 0)
		return r;
	store_bind_text_or_null(st, 1, imdn_message_id);
	sqlite3_bind_int64(st, 2, folder_id);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	r = store_col_strdup(st, 0, &strongest);
	sqlite3_reset(st);
	if (r < 0)
		return r;
	r = store_prepare(s, "UPDATE message SET status = ?2 WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	store_bind_text_or_null(st, 2, strongest);
	r = store_step_done(s, st);
	if (r < 0 || !strongest || !*strongest)
		return r; /* unchanged: it was inserted with "" */
	return store_conv_bump(s, folder_id);
}

/*
 * The conversation row of folder_id's conversation folder, made if there
 * is none (CPM_ENSURE: an INSERT alone, which needs no flush of the rows
 * held back below): 1 if made, 0 if there was one or the folder is not a
 * conversation folder or is removed.
 */
static int conv_ensure(struct store *s, int64_t folder_id)
{
	sqlite3_stmt *up;
	int r = store_prepare_conv_pending(s, store_sql_conv_ensure, &up);

	if (r < 0)
		return r;
	sqlite3_bind_int64(up, 1, folder_id);
	r = store_step_done(s, up);
	if (r < 0)
		return r;
	return sqlite3_changes(store_db(s)) > 0;
}

/* Column i of st as text, NULL for SQL NULL. */
static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static bool nonempty(const char *v)
{
	return v && *v;
}

/*
 * Whether a new object of type and peer, (date, id), leaves its
 * conversation's Peer to a recompute.  The row's peer is the peer of its
 * newest counted object that has one (CPM_RECOMPUTE_SET).  Folded in
 * arrival order, an object takes it when the row has none or the object
 * is the newest: exact, as is an object with the row's own peer.  One
 * that is older than the row's newest while that has no peer, with
 * another peer than the row's, may be the newest with one, or not: the
 * row does not say, so the conversation is noted in conv_stale and
 * recomputed at the flush.  (Before, such an object left the row's peer
 * as it was: a Peer that depended on the order objects came in, and
 * changed at the next recompute.)  last_has_peer: the row's newest
 * counted object has a peer, which is then the row's, and an older
 * object leaves it so: exact.  Until it was looked at, every older
 * object with another peer went to a recompute, the objects of a group
 * chat's second session folder (older than the first's newest, from
 * other members) nearly all: 100 recomputes of about 600,000
 * instructions each in bench-cpm.sh 20000's initial sync.
 */
/*
 * Is \Deleted in flags (space-separated)?  An object a person reads that
 * arrives flagged \Deleted (deleted, not yet expunged) is no message of
 * its conversation (schema version 32): its row is left to the recompute,
 * which leaves it out, rather than folded in by conv_note().
 */
static bool has_deleted(const char *flags)
{
	for (const char *p = flags; p && (p = strstr(p, "\\Deleted")); p += 8)
		if ((p == flags || p[-1] == ' ') && (p[8] == '\0' || p[8] == ' '))
			return true;
	return false;
}

static bool peer_needs_recompute(const char *type, const char *peer, int64_t date, int64_t id,
				 const char *row_peer, int64_t last_date, int64_t last_id,
				 bool last_has_peer)
{
	if (!type ||
	    (!streq(type, "message") && !streq(type, "file-transfer") && !streq(type, "media")))
		return false;
	if (!nonempty(peer) || !nonempty(row_peer) || streq(peer, row_peer) || last_has_peer)
		return false;
	return !(date > last_date || (date == last_date && id > last_id));
}

/*
 * A new message row id in folder_id: its conversation row (a conversation
 * folder's), made if it is the first object and updated, as the trigger
 * conv_message_insert did until schema version 20 (store-schema.c says
 * why it moved here).  Called right after the row's INSERT.
 */
static int conv_added_now(struct store *s, int64_t id, int64_t folder_id)
{
	sqlite3_stmt *st, *up;
	bool same_cid, stale;
	int64_t conv;
	int r;

	r = store_prepare(s, store_sql_conv_of_message, &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	r = store_step(s, st);
	if (r <= 0)
		return r; /* not in a conversation folder */
	conv = sqlite3_column_int64(st, 0);
	if (!conv) {
		/* The conversation's first object (none if the folder is
		 * removed: then nothing, as CPM_CONV_OF finds none). */
		sqlite3_reset(st);
		r = conv_ensure(s, folder_id);
		if (r <= 0)
			return r;
		conv = store_last_insert_id(s);
		r = store_prepare(s, store_sql_conv_of_message, &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, id);
		r = store_step(s, st);
		if (r <= 0)
			return r < 0 ? r : -EIO; /* the row just read */
	}
	/* A Conversation-ID from this object's header is taken by a row
	 * that has none from a header yet (cid_header 0). */
	same_cid = sqlite3_column_int(st, 7) != 0 || sqlite3_column_bytes(st, 5) == 0;
	r = store_prepare(s, same_cid ? store_sql_conv_added_same_cid : store_sql_conv_added, &up);
	if (r < 0) {
		sqlite3_reset(st);
		return r;
	}
	sqlite3_bind_int64(up, 1, id);
	sqlite3_bind_int64(up, 2, conv);
	for (int i = 1; i <= 6; i++)
		sqlite3_bind_value(up, i + 2, sqlite3_column_value(st, i));
	stale = peer_needs_recompute(col_text(st, 1), col_text(st, 4), sqlite3_column_int64(st, 3),
				     id, col_text(st, 8), sqlite3_column_int64(st, 9),
				     sqlite3_column_int64(st, 10), sqlite3_column_int(st, 11) != 0);
	/* Counted above as any object is; one flagged \Deleted is none of
	 * its conversation's (schema version 32): the recompute leaves it
	 * out. */
	if (!stale && col_text(st, 1) && has_deleted(col_text(st, 2))) {
		const char *type = col_text(st, 1);

		stale = streq(type, "message") || streq(type, "file-transfer") ||
			streq(type, "media");
	}
	sqlite3_reset(st);
	r = store_step_done(s, up);
	if (r < 0 || !stale)
		return r;
	/* After the UPDATE: a note before it would make that statement
	 * flush, and the recompute count this object before the UPDATE
	 * adds it. */
	return store_exec_id(s, store_sql_conv_stale_folder, folder_id);
}

/*
 * The conversation rows of new objects, held back (store.h says when they
 * are written).  conv_added_now(), the path outside a transaction, costs
 * about 52,000 instructions an object in callgrind (20% of the plain
 * twin's initial sync in bench-cpm.sh 20000): a probe, then an UPDATE
 * that rewrites the row's conversation_last entry, since every object of
 * an initial sync is its conversation's newest.  In a transaction,
 * conv_note() folds each object into one entry per conversation row, with
 * the row's own values read once, and the row is written once per flush.
 *
 * The fold is store_sql_conv_added's, object by object, in the order they
 * come: each SET of it sees the row as it was before that object, so the
 * peer is taken when the row has none or the object is newer than the
 * row's newest so far, and the row is left to a recompute when that
 * cannot tell (peer_needs_recompute()).  The row's values are exact as
 * long as nothing else writes it in between, which the flush before any
 * statement that reads or writes the conversation table makes sure of (it
 * drops the folders' probes too: a folder renamed or gone changes its
 * row).
 */
struct conv_entry {
	int64_t conv; /* the conversation row */
	int64_t messages, unseen, objects;
	int64_t last_date, last_id;
	char *peer;
	char *cid;	/* a Conversation-ID from a header, taken by the row */
	int64_t states; /* state objects' summaries: conv_state_summary() */
	bool last_moved, is_group, cid_header;
	int64_t stale;	    /* objects peer_needs_recompute() is true of */
	int64_t bumps;	    /* store_conv_bump()s folded in: the version's */
	bool last_has_peer; /* the newest counted object (last_id) has a peer */
};

struct conv_folder {
	int64_t folder_id;
	int64_t conv; /* 0: not a conversation folder, or no row for it */
	bool session;
};

struct conv_acc {
	struct conv_entry *e;
	size_t n, alloc;
	struct conv_folder *f;
	size_t nf, allocf;
};

/* A folder's conversation row, with what the fold starts from (NULL
 * columns from c when there is none yet; no row for a folder that is not
 * a conversation folder). */
static const char conv_of_folder_sql[] =
	"SELECT c.id, f.name <> f.conv, c.last_date, c.last_id, c.peer, c.is_group,"
	" c.cid_header, " CONV_LAST_HAS_PEER " FROM folder f"
	" LEFT JOIN conversation c ON c.account_id = f.account_id AND c.folder = f.conv"
	" WHERE f.id = ?1 AND f.conv IS NOT NULL";

/* A held-back row whose peer needs a recompute (peer_needs_recompute()). */
static const char conv_stale_row_sql[] =
	"INSERT OR IGNORE INTO conv_stale (account_id, conv)"
	" SELECT account_id, folder FROM conversation WHERE id = ?1";

/* The flush, one statement per shape: conversation_last and
 * conversation_cid are rewritten only when their columns are named. */
#define CONV_FLUSH(last, cid)                                                                      \
	"UPDATE conversation SET messages = messages + ?2, unseen = unseen + ?3,"                  \
	" peer = ?6, is_group = ?7, version = version + ?8" last cid " WHERE id = ?1"
#define CONV_FLUSH_LAST ", last_date = ?4, last_id = ?5"
#define CONV_FLUSH_CID	", conversation_id = ?9, cid_header = 1"
static const char *const conv_flush_sql[2][2] = {
	{ CONV_FLUSH("", ""), CONV_FLUSH("", CONV_FLUSH_CID) },
	{ CONV_FLUSH(CONV_FLUSH_LAST, ""), CONV_FLUSH(CONV_FLUSH_LAST, CONV_FLUSH_CID) },
};

static struct conv_acc *conv_acc(struct store *s, bool create)
{
	void **slot = store_conv_pending_slot(s);

	if (!*slot && create)
		*slot = calloc(1, sizeof(struct conv_acc));
	return *slot;
}

static void conv_entry_free(struct conv_entry *e)
{
	free(e->peer);
	free(e->cid);
}

void store_conv_pending_drop(struct store *s)
{
	struct conv_acc *a = conv_acc(s, false);

	if (a) {
		for (size_t i = 0; i < a->n; i++)
			conv_entry_free(&a->e[i]);
		a->n = 0;
		a->nf = 0;
		free(a->e);
		free(a->f);
		a->e = NULL;
		a->f = NULL;
		a->alloc = a->allocf = 0;
	}
	store_set_conv_dirty(s, false);
}

/*
 * After store_rollback_to_mark(): the held-back entries fold objects from
 * before and after the mark, and cannot be taken apart.  Dropped, and their
 * conversations noted in conv_stale, recomputed from their objects at the
 * next flush (an entry's row made after the mark is gone: nothing noted).
 */
int store_conv_pending_restale(struct store *s)
{
	struct conv_acc *a = conv_acc(s, false);
	sqlite3_stmt *st;
	int r = 0;

	for (size_t i = 0; a && r >= 0 && i < a->n; i++) {
		r = store_prepare_conv_pending(s, conv_stale_row_sql, &st);
		if (r < 0)
			break;
		sqlite3_bind_int64(st, 1, a->e[i].conv);
		r = store_step_done(s, st);
	}
	store_conv_pending_drop(s);
	store_set_conv_stale(s);
	return r;
}

bool store_conv_pending_fold_bump(struct store *s, int64_t folder_id)
{
	struct conv_acc *a = conv_acc(s, false);
	int64_t conv = 0;

	/* Only the folders probed since the last flush: their rows are the
	 * ones conv_bump_sql would find (conv_of_folder_sql's join). */
	for (size_t i = a ? a->nf : 0; i-- > 0;)
		if (a->f[i].folder_id == folder_id) {
			conv = a->f[i].conv;
			break;
		}
	for (size_t i = 0; conv && i < a->n; i++)
		if (a->e[i].conv == conv) {
			a->e[i].bumps++;
			return true;
		}
	return false;
}

static int conv_entry_write(struct store *s, const struct conv_entry *e)
{
	sqlite3_stmt *st;
	int r;

	/* First: a failure after it leaves the entry exact (the columns
	 * it sets are read from the rows, whatever the others hold). */
	if (e->states) {
		r = store_prepare_conv_pending(s, store_sql_conv_state_row, &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, e->conv);
		sqlite3_bind_int64(st, 2, e->states);
		r = store_step_done(s, st);
		if (r < 0)
			return r;
	}
	r = store_prepare_conv_pending(s, conv_flush_sql[e->last_moved][e->cid != NULL], &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, e->conv);
	sqlite3_bind_int64(st, 2, e->messages);
	sqlite3_bind_int64(st, 3, e->unseen);
	if (e->last_moved) {
		sqlite3_bind_int64(st, 4, e->last_date);
		sqlite3_bind_int64(st, 5, e->last_id);
	}
	sqlite3_bind_text(st, 6, e->peer ? e->peer : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, e->is_group);
	/* One more per stale object after the first: the recompute is one
	 * per row and flush, where one by one each object's came. */
	sqlite3_bind_int64(st, 8, e->objects + (e->stale ? e->stale - 1 : 0) + e->bumps);
	if (e->cid)
		sqlite3_bind_text(st, 9, e->cid, -1, SQLITE_STATIC);
	r = store_step_done(s, st);
	if (r < 0 || !e->stale)
		return r;
	/* Recomputed right after, by the same flush (it notes the store). */
	r = store_prepare_conv_pending(s, conv_stale_row_sql, &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, e->conv);
	return store_step_done(s, st);
}

static int conv_entries_flush(struct store *s)
{
	struct conv_acc *a = conv_acc(s, false);
	size_t i;
	int r = 0;

	if (!a || !a->n) {
		store_conv_pending_drop(s);
		return 0;
	}
	/* An entry written is gone at once: after a failure, the rest is
	 * still exact (the caller rolls back, or a retry writes it). */
	for (i = 0; i < a->n; i++) {
		r = conv_entry_write(s, &a->e[i]);
		if (r < 0)
			break;
		conv_entry_free(&a->e[i]);
	}
	if (r < 0) {
		memmove(a->e, a->e + i, (a->n - i) * sizeof(*a->e));
		a->n -= i;
		a->nf = 0;
		return r;
	}
	a->n = 0;
	store_conv_pending_drop(s);
	return 0;
}

/*
 * The conversations noted in conv_stale, recomputed from their objects
 * (store-schema.c version 21), after the held-back rows.  The store's
 * note says only that a statement that may note one ran (authorize() in
 * store.c): in an initial sync of CPM objects most flushes find the
 * table empty, and the recompute and the drop still cost about 75,000
 * instructions over the conversation table (callgrind, bench-cpm.sh
 * 20000: 378 such flushes).  A probe of the table costs a few thousand.
 */
static int conv_stale_flush(struct store *s)
{
	const char *const sql[] = { store_sql_conv_stale_recompute, store_sql_conv_stale_drop,
				    store_sql_conv_stale_clear };
	sqlite3_stmt *st;
	int r = 0;

	if (!store_take_conv_stale(s) || store_is_readonly(s))
		return 0;
	r = store_prepare_conv_pending(s, "SELECT 1 FROM conv_stale LIMIT 1", &st);
	if (r >= 0)
		r = store_step(s, st);
	if (r > 0)
		sqlite3_reset(st);
	else if (r == 0)
		return 0; /* none noted */
	for (size_t i = 0; i < ARRAY_SIZE(sql) && r >= 0; i++) {
		r = store_prepare_conv_pending(s, sql[i], &st);
		if (r >= 0)
			r = store_step_done(s, st);
	}
	if (r < 0)
		store_set_conv_stale(s); /* the notes are still there */
	return r;
}

int store_conv_pending_flush(struct store *s)
{
	bool stale = store_take_conv_stale(s);
	int r;

	/* The entries first: a recompute after them makes the row whole. */
	r = conv_entries_flush(s);
	if (stale)
		store_set_conv_stale(s);
	if (r < 0)
		return r;
	r = conv_stale_flush(s);
	if (r >= 0)
		store_set_conv_dirty(s, false);
	return r;
}

/* Is the flag \Seen in flags (space-separated, as instr(' ' || flags ||
 * ' ', ' \Seen ') looks for it)? */
static bool has_seen(const char *flags)
{
	for (const char *p = flags; (p = strstr(p, "\\Seen")); p += 5)
		if ((p == flags || p[-1] == ' ') && (p[5] == '\0' || p[5] == ' '))
			return true;
	return false;
}

/* conv_of_folder_sql for folder_id: 1 with its row in *ret, 0 for none. */
static int conv_probe(struct store *s, int64_t folder_id, sqlite3_stmt **ret)
{
	int r = store_prepare_conv_pending(s, conv_of_folder_sql, ret);

	if (r < 0)
		return r;
	sqlite3_bind_int64(*ret, 1, folder_id);
	return store_step(s, *ret);
}

/* The entry of folder_id's conversation row, or NULL (*ret_session: the
 * folder is a session folder of it). */
static int conv_entry_of(struct store *s, struct conv_acc *a, int64_t folder_id,
			 struct conv_entry **ret, bool *ret_session)
{
	struct conv_folder *f = NULL;
	struct conv_entry *e;
	sqlite3_stmt *st;
	int64_t conv;
	int r;

	*ret = NULL;
	for (size_t i = a->nf; i-- > 0;)
		if (a->f[i].folder_id == folder_id) {
			f = &a->f[i];
			break;
		}
	if (!f) {
		if (a->nf == a->allocf) {
			size_t n = a->allocf ? a->allocf * 2 : 16;
			struct conv_folder *p = reallocarray(a->f, n, sizeof(*p));

			if (!p)
				return -ENOMEM;
			a->f = p;
			a->allocf = n;
		}
		r = conv_probe(s, folder_id, &st);
		if (r < 0)
			return r;
		if (r > 0 && sqlite3_column_type(st, 0) == SQLITE_NULL) {
			/* The conversation's first object: its row (none if
			 * the folder is removed, as CPM_CONV_OF finds none). */
			sqlite3_reset(st);
			r = conv_ensure(s, folder_id);
			if (r < 0)
				return r;
			if (r > 0) {
				r = conv_probe(s, folder_id, &st);
				if (r <= 0)
					return r < 0 ? r : -EIO; /* the row just made */
			}
		}
		f = &a->f[a->nf++];
		*f = (struct conv_folder){ .folder_id = folder_id };
		if (r > 0) {
			f->conv = sqlite3_column_int64(st, 0);
			f->session = sqlite3_column_int(st, 1) != 0;
		}
		conv = f->conv;
		/* A row already held (another folder of it): its values are
		 * the entry's, not the table's. */
		for (size_t i = 0; conv && i < a->n; i++)
			if (a->e[i].conv == conv) {
				conv = 0;
				break;
			}
		if (conv) {
			if (a->n == a->alloc) {
				size_t n = a->alloc ? a->alloc * 2 : 16;
				struct conv_entry *p = reallocarray(a->e, n, sizeof(*p));

				if (!p) {
					sqlite3_reset(st);
					a->nf--;
					return -ENOMEM;
				}
				a->e = p;
				a->alloc = n;
			}
			e = &a->e[a->n];
			*e = (struct conv_entry){
				.conv = conv,
				.last_date = sqlite3_column_int64(st, 2),
				.last_id = sqlite3_column_int64(st, 3),
				.is_group = sqlite3_column_int(st, 5) != 0,
				.cid_header = sqlite3_column_int(st, 6) != 0,
				.last_has_peer = sqlite3_column_int(st, 7) != 0,
			};
			r = store_col_strdup(st, 4, &e->peer);
			if (r < 0) {
				sqlite3_reset(st);
				a->nf--;
				return r;
			}
			a->n++;
		}
		sqlite3_reset(st);
	}
	*ret_session = f->session;
	if (!f->conv)
		return 0;
	for (size_t i = a->n; i-- > 0;)
		if (a->e[i].conv == f->conv) {
			*ret = &a->e[i];
			return 0;
		}
	return -EIO; /* every probed folder's row has an entry */
}

/*
 * The Date a new row keeps (the summary's Date, what conversations sort
 * by): its Date header's; without one that can be read, its internal
 * date, RFC 5256's rule for the SORT sent date ("If the sent date cannot
 * be determined (a Date: header is missing or cannot be parsed), the
 * INTERNALDATE for that message is used"), so that the object sorts
 * where it arrived, not as the oldest of its conversation.  False
 * (NULL, shown as 0) when neither is known.  The CPIM DateTime of a CPM
 * object is not looked at: it is in the body, which a sync with
 * sync_bodies limited does not have when the row is made, so the Date
 * would depend on the setting; and CPM objects are stored with a Date.
 */
static bool row_date(const struct store_message_row *m, int64_t *ret)
{
	if (m->summary && !m->summary->no_date) {
		*ret = m->summary->date;
		return true;
	}
	*ret = m->internaldate;
	return m->internaldate != 0;
}

/*
 * A new message row id in folder_id, as store_message_insert() wrote it,
 * folded into its conversation row's entry (conv_added()'s UPDATE, held
 * back).
 */
static int conv_note(struct store *s, int64_t id, const struct store_message_row *m)
{
	const struct msg_summary *sum = m->summary;
	const char *type = sum && sum->type ? sum->type : "";
	const char *peer = sum ? sum->peer : NULL;
	int64_t date;
	struct conv_acc *a = conv_acc(s, true);
	struct conv_entry *e;
	bool counted, newer, session;
	int r;

	if (!a)
		return -ENOMEM;
	row_date(m, &date); /* 0 when unknown, as coalesce(date, 0) */
	store_set_conv_dirty(s, true);
	r = conv_entry_of(s, a, m->folder_id, &e, &session);
	if (r < 0 || !e)
		return r;
	counted = streq(type, "message") || streq(type, "file-transfer") || streq(type, "media");
	newer = date > e->last_date || (date == e->last_date && id > e->last_id);
	if (peer_needs_recompute(type, peer, date, id, e->peer, e->last_date, e->last_id,
				 e->last_has_peer) ||
	    (counted && has_deleted(m->flags)))
		e->stale++;
	else if (counted && nonempty(peer) && (!nonempty(e->peer) || newer) &&
		 !(e->peer && streq(e->peer, peer))) {
		char *p = strdup(peer);

		if (!p)
			return -ENOMEM;
		free(e->peer);
		e->peer = p;
	}
	/* A report's names none (schema version 37). */
	if (!e->cid_header && sum && nonempty(sum->conversation_id) && !streq(type, "imdn")) {
		e->cid = strdup(sum->conversation_id);
		if (!e->cid)
			return -ENOMEM;
		e->cid_header = true;
	}
	if (counted) {
		e->messages++;
		e->unseen += !has_seen(m->flags ? m->flags : "");
		if (newer) {
			e->last_date = date;
			e->last_id = id;
			e->last_has_peer = nonempty(peer);
			e->last_moved = true;
		}
	}
	e->is_group = e->is_group || streq(type, "group-state") || session;
	e->objects++;
	return 0;
}

/*
 * A summary row just inserted for message id of Type type in folder_id: a
 * session-info or group-state object's (Subject, Participants) makes its
 * conversation's two columns computed anew (store_sql_conv_state), what
 * the trigger conv_summary_insert's whole recompute changed until schema
 * version 20.  With held true (the row was folded by conv_note()), once
 * per row at the flush (store_sql_conv_state_row), with the version moved
 * by one per object as here: the statement reads and rewrites the
 * conversation table, so run here it flushed what was held back first,
 * and the next objects probed their rows again.  In an initial sync of
 * CPM objects that cost about 250,000 instructions a state object
 * (callgrind, bench-cpm.sh 20000: 200 of them, 51 M).
 */
static int conv_state_summary(struct store *s, int64_t id, int64_t folder_id, const char *type,
			      bool held)
{
	struct conv_acc *a;
	struct conv_entry *e;
	bool session;
	int r;

	if (!type || (!streq(type, "session-info") && !streq(type, "group-state")))
		return 0;
	if (!held)
		return store_exec_id(s, store_sql_conv_state, id);
	a = conv_acc(s, true);
	if (!a)
		return -ENOMEM;
	r = conv_entry_of(s, a, folder_id, &e, &session);
	if (r < 0 || !e)
		return r; /* no row: CPM_CONV_OF finds none either */
	e->states++;
	store_set_conv_dirty(s, true);
	return 0;
}

int store_message_insert(struct store *s, const struct store_message_row *m, int64_t *ret_id)
{
	const struct msg_summary *sum = m->summary;
	sqlite3_stmt *st;
	int64_t id, date;
	bool held;
	int r;

	/* conv_added_now() below adds the row to its conversation: what is
	 * pending goes first, or a recompute of that conversation run by
	 * its statements would count the row already (counted twice). */
	if (!store_in_transaction(s)) {
		r = store_conv_pending_flush(s);
		if (r < 0)
			return r;
	}
	r = store_prepare(s,
			  "INSERT INTO message (folder_id, uid,"
			  " internaldate, size, message_id, date, conversation_id,"
			  " contribution_id, imdn_message_id, type, direction, context,"
			  " in_reply_to, peer, sender, imdn_ref, status, has_body)"
			  " VALUES (?1, nullif(?2, 0), ?6, ?7, ?8,"
			  " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
			  " coalesce(?20, ''), ?21)",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, m->folder_id);
	sqlite3_bind_int(st, 21, m->has_body);
	sqlite3_bind_int64(st, 2, m->uid);
	sqlite3_bind_int64(st, 6, m->internaldate);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)m->size);
	if (row_date(m, &date))
		sqlite3_bind_int64(st, 9, date);
	if (sum) {
		store_bind_text_static_or_null(st, 8, sum->message_id);
		store_bind_text_static_or_null(st, 10, sum->conversation_id);
		store_bind_text_static_or_null(st, 11, sum->contribution_id);
		store_bind_text_static_or_null(st, 12, sum->imdn_message_id);
		sqlite3_bind_text(st, 13, sum->type, -1, SQLITE_STATIC);
		store_bind_text_static_or_null(st, 14, sum->direction);
		store_bind_text_static_or_null(st, 15, sum->context);
		store_bind_text_static_or_null(st, 16, sum->in_reply_to);
		store_bind_text_static_or_null(st, 17, sum->peer);
		store_bind_text_static_or_null(st, 18, sum->sender);
		store_bind_text_static_or_null(st, 19, sum->imdn_ref);
		/* An IMDN report's own Status is the disposition it reports;
		 * a message's is raised by its reports (store-schema.c v6). */
		if (sum->type && streq(sum->type, "imdn"))
			store_bind_text_static_or_null(st, 20, sum->status);
	}
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	id = store_last_insert_id(s);
	/* store_set_full_safe(): INSERT ... SELECT. */
	r = store_prepare(s,
			  store_full_safe(s) ? "INSERT INTO message_state (id, flags, server_flags,"
					       " modseq) SELECT ?1, ?2, ?3, nullif(?4, 0)"
					     : "INSERT INTO message_state (id, flags, server_flags,"
					       " modseq) VALUES (?1, ?2, ?3, nullif(?4, 0))",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	store_bind_text_static_or_null(st, 2, m->flags ? m->flags : "");
	store_bind_text_static_or_null(st, 3, m->server_flags);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)m->modseq);
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	/* In a transaction the row is written once at the flush (above). */
	held = store_in_transaction(s);
	r = held ? conv_note(s, id, m) : conv_added_now(s, id, m->folder_id);
	if (r < 0)
		return r;
	if (sum) {
		r = imdn_link(s, id, m->folder_id, sum->type, sum->imdn_ref, sum->imdn_message_id,
			      sum->status);
		if (r < 0)
			return r;
	}

	if (sum || m->bodystructure) {
		r = store_prepare(s,
				  store_full_safe(s)
					  ? "INSERT INTO summary (id, subject, from_addr, to_addrs,"
					    " bodystructure, snippet, participants)"
					    " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7"
					  : "INSERT INTO summary (id, subject, from_addr, to_addrs,"
					    " bodystructure, snippet, participants)"
					    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
				  &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, id);
		if (sum) {
			store_bind_text_static_or_null(st, 2, sum->subject);
			store_bind_text_static_or_null(st, 3, sum->from);
			store_bind_text_static_or_null(st, 4, sum->to);
			store_bind_text_static_or_null(st, 6, sum->snippet);
			store_bind_text_static_or_null(st, 7, sum->participants);
		}
		store_bind_text_static_or_null(st, 5, m->bodystructure);
		r = store_step_done(s, st);
		if (r < 0)
			return r;
		r = conv_state_summary(s, id, m->folder_id, sum ? sum->type : NULL, held);
		if (r < 0)
			return r;
	}
	*ret_id = id;
	return 0;
}

/* Runs sql, an INSERT ... SELECT of row ?1's columns as row ?2. */
static int copy_row(struct store *s, const char *sql, int64_t src, int64_t dst)
{
	sqlite3_stmt *st;
	int r = store_prepare(s, sql, &st);

	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, src);
	sqlite3_bind_int64(st, 2, dst);
	return store_step_done(s, st);
}

int store_message_copy(struct store *s, int64_t src, int64_t folder_id, int64_t *ret_id)
{
	_cleanup_free_ char *type = NULL;
	sqlite3_stmt *st;
	int64_t id;
	int r;

	/* As in store_message_insert(): a copy is added at once, in a
	 * transaction too. */
	r = store_conv_pending_flush(s);
	if (r < 0)
		return r;
	r = store_prepare(s,
			  "INSERT INTO message (folder_id, uid, internaldate, size,"
			  " message_id, date, conversation_id, contribution_id, imdn_message_id,"
			  " type, removed, direction, context, in_reply_to, peer,"
			  " sender, imdn_ref, status)"
			  " SELECT ?2, NULL, internaldate, size,"
			  " message_id, date, conversation_id, contribution_id, imdn_message_id,"
			  " type, 0, direction, context, in_reply_to, peer, sender, imdn_ref,"
			  " status"
			  " FROM message WHERE id = ?1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, src);
	sqlite3_bind_int64(st, 2, folder_id);
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	if (sqlite3_changes(store_db(s)) == 0) {
		store_set_error(s, "no message with id %lld", (long long)src);
		return -CPMSYNC_E_NOT_FOUND;
	}
	id = store_last_insert_id(s);
	r = copy_row(s,
		     "INSERT INTO message_state (id, flags)"
		     " SELECT ?2, flags FROM message_state WHERE id = ?1",
		     src, id);
	if (r < 0)
		return r;
	r = conv_added_now(s, id, folder_id);
	if (r < 0)
		return r;
	{
		_cleanup_free_ char *imdn_ref = NULL, *imdn_message_id = NULL, *status = NULL;

		r = store_prepare(s,
				  "SELECT type, imdn_ref, imdn_message_id, status FROM message"
				  " WHERE id = ?1",
				  &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, id);
		r = store_step(s, st);
		if (r > 0) {
			r = store_col_strdup(st, 0, &type);
			if (r >= 0)
				r = store_col_strdup(st, 1, &imdn_ref);
			if (r >= 0)
				r = store_col_strdup(st, 2, &imdn_message_id);
			if (r >= 0)
				r = store_col_strdup(st, 3, &status);
		} else if (r == 0) {
			r = -EIO; /* the row just inserted */
		}
		sqlite3_reset(st);
		if (r >= 0)
			r = imdn_link(s, id, folder_id, type, imdn_ref, imdn_message_id, status);
		if (r < 0)
			return r;
	}
	r = copy_row(s,
		     "INSERT INTO summary (id, subject, from_addr, to_addrs, bodystructure,"
		     " snippet, participants)"
		     " SELECT ?2, subject, from_addr, to_addrs, bodystructure, snippet,"
		     " participants"
		     " FROM summary WHERE id = ?1",
		     src, id);
	if (r < 0)
		return r;
	if (sqlite3_changes(store_db(s)) > 0) {
		r = conv_state_summary(s, id, folder_id, type, false);
		if (r < 0)
			return r;
	}
	*ret_id = id;
	return 0;
}

int store_message_set_cpm(struct store *s, int64_t id, const struct msg_summary *sum)
{
	sqlite3_stmt *st;
	int64_t bump = 0;
	bool had_summary;
	int r;

	/* Its Status changes: its conversation's version moves (schema
	 * version 17; the trigger conv_message_status did it before). */
	r = store_prepare(s,
			  "SELECT folder_id FROM message WHERE id = ?1 AND removed = 0"
			  " AND status IS NOT (CASE WHEN ?2 = 'imdn' THEN coalesce(?3, '')"
			  " WHEN type = 'imdn' THEN '' ELSE status END)",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, sum->type, -1, SQLITE_STATIC);
	store_bind_text_or_null(st, 3, sum->status);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r > 0) {
		bump = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	/* Classified again as a report: the originals the trigger
	 * conv_message_reclassified raises, found before it runs. */
	if (sum->type && streq(sum->type, "imdn") && sum->imdn_ref && *sum->imdn_ref) {
		r = store_prepare(s, store_sql_imdn_reclassified_originals, &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, sum->type, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, sum->imdn_ref, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, sum->status ? sum->status : "", -1, SQLITE_STATIC);
		while ((r = store_step(s, st)) > 0) {
			r = store_conv_bump(s, sqlite3_column_int64(st, 0));
			if (r < 0) {
				sqlite3_reset(st);
				return r;
			}
		}
		if (r < 0)
			return r;
	}
	r = store_prepare(s,
			  "UPDATE message SET type = ?2, direction = ?3, context = ?4,"
			  " in_reply_to = ?5, peer = ?6, sender = ?7, imdn_ref = ?8,"
			  " status = CASE WHEN ?2 = 'imdn' THEN coalesce(?9, '')"
			  "  WHEN type = 'imdn' THEN '' ELSE status END"
			  " WHERE id = ?1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, sum->type, -1, SQLITE_STATIC);
	store_bind_text_or_null(st, 3, sum->direction);
	store_bind_text_or_null(st, 4, sum->context);
	store_bind_text_or_null(st, 5, sum->in_reply_to);
	store_bind_text_or_null(st, 6, sum->peer);
	store_bind_text_or_null(st, 7, sum->sender);
	store_bind_text_or_null(st, 8, sum->imdn_ref);
	store_bind_text_or_null(st, 9, sum->status);
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	if (sqlite3_changes(store_db(s)) == 0) {
		store_set_error(s, "no message with id %lld", (long long)id);
		return -CPMSYNC_E_NOT_FOUND;
	}
	imdn_filter_add(s, sum->imdn_ref);
	if (bump) {
		r = store_conv_bump(s, bump);
		if (r < 0)
			return r;
	}
	/* A summary made here (none before) is a new one for its
	 * conversation (conv_state_summary()); one written again, the
	 * trigger conv_summary_update's. */
	r = store_id_test(s, "SELECT 1 FROM summary WHERE id = ?1", id, &had_summary);
	if (r < 0)
		return r;
	r = store_prepare(s,
			  "INSERT INTO summary (id, snippet, participants) VALUES (?1, ?2, ?3)"
			  " ON CONFLICT (id) DO UPDATE SET snippet = ?2, participants = ?3",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	store_bind_text_or_null(st, 2, sum->snippet);
	store_bind_text_or_null(st, 3, sum->participants);
	r = store_step_done(s, st);
	if (r < 0 || had_summary)
		return r;
	/* No trigger sees a first snippet (store-changes.c). */
	if (sum->snippet && *sum->snippet) {
		r = store_changes_note(s, id, CPMSYNC_CHANGED_SNIPPET);
		if (r < 0)
			return r;
	}
	return conv_state_summary(s, id, 0, sum->type, false);
}
