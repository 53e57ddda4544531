/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Message rows: the one place that writes a new message and its summary.
 *
 * A message is two rows since schema version 4: message (what changes:
 * uid, flags, modseq, the short fields the store looks up) and summary (the
 * long text that never changes: subject, From, To, BODYSTRUCTURE).  SQLite
 * rewrites a whole record, overflow pages included, when any column of it
 * changes, and the page is the unit of cost of a change (written to the
 * WAL, then by the checkpoint); with the summary out, a flag change
 * rewrites one small page.
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

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
 * A new message row id in folder_id: its conversation row (a conversation
 * folder's), made if it is the first object and updated, as the trigger
 * conv_message_insert did until schema version 20 (store-schema.c says
 * why it moved here).  Called right after the row's INSERT.
 */
static int conv_added(struct store *s, int64_t id, int64_t folder_id)
{
	sqlite3_stmt *st, *up;
	bool same_cid;
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
		r = store_prepare(s, store_sql_conv_ensure, &up);
		if (r < 0)
			return r;
		sqlite3_bind_int64(up, 1, folder_id);
		r = store_step_done(s, up);
		if (r < 0 || sqlite3_changes(store_db(s)) == 0)
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
	sqlite3_reset(st);
	return store_step_done(s, up);
}

/*
 * A summary row just inserted for message id of Type type: a session-info
 * or group-state object's (Subject, Participants) makes its conversation's
 * two columns computed anew (store_sql_conv_state), what the trigger
 * conv_summary_insert's whole recompute changed until schema version 20.
 */
static int conv_state_summary(struct store *s, int64_t id, const char *type)
{
	if (!type || (!streq(type, "session-info") && !streq(type, "group-state")))
		return 0;
	return store_exec_id(s, store_sql_conv_state, id);
}

int store_message_insert(struct store *s, const struct store_message_row *m, int64_t *ret_id)
{
	const struct msg_summary *sum = m->summary;
	sqlite3_stmt *st;
	int64_t id;
	int r;

	r = store_prepare(s,
			  "INSERT INTO message (folder_id, uid, flags, server_flags, modseq,"
			  " internaldate, size, message_id, date, conversation_id,"
			  " contribution_id, imdn_message_id, type, direction, context,"
			  " in_reply_to, peer, sender, imdn_ref, status)"
			  " VALUES (?1, nullif(?2, 0), ?3, ?4, nullif(?5, 0), ?6, ?7, ?8,"
			  " nullif(?9, 0), ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
			  " coalesce(?20, ''))",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, m->folder_id);
	sqlite3_bind_int64(st, 2, m->uid);
	store_bind_text_static_or_null(st, 3, m->flags ? m->flags : "");
	store_bind_text_static_or_null(st, 4, m->server_flags);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)m->modseq);
	sqlite3_bind_int64(st, 6, m->internaldate);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)m->size);
	if (sum) {
		store_bind_text_static_or_null(st, 8, sum->message_id);
		sqlite3_bind_int64(st, 9, sum->date);
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
	r = conv_added(s, id, m->folder_id);
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
				  "INSERT INTO summary (id, subject, from_addr, to_addrs,"
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
		r = conv_state_summary(s, id, sum ? sum->type : NULL);
		if (r < 0)
			return r;
	}
	*ret_id = id;
	return 0;
}

int store_message_copy(struct store *s, int64_t src, int64_t folder_id, int64_t *ret_id)
{
	_cleanup_free_ char *type = NULL;
	sqlite3_stmt *st;
	int64_t id;
	int r;

	r = store_prepare(s,
			  "INSERT INTO message (folder_id, uid, flags, modseq, internaldate, size,"
			  " message_id, date, conversation_id, contribution_id, imdn_message_id,"
			  " type, server_flags, removed, direction, context, in_reply_to, peer,"
			  " sender, imdn_ref, status)"
			  " SELECT ?2, NULL, flags, NULL, internaldate, size,"
			  " message_id, date, conversation_id, contribution_id, imdn_message_id,"
			  " type, NULL, 0, direction, context, in_reply_to, peer, sender, imdn_ref,"
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
	r = conv_added(s, id, folder_id);
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
	r = store_prepare(s,
			  "INSERT INTO summary (id, subject, from_addr, to_addrs, bodystructure,"
			  " snippet, participants)"
			  " SELECT ?2, subject, from_addr, to_addrs, bodystructure, snippet,"
			  " participants"
			  " FROM summary WHERE id = ?1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, src);
	sqlite3_bind_int64(st, 2, id);
	r = store_step_done(s, st);
	if (r < 0)
		return r;
	if (sqlite3_changes(store_db(s)) > 0) {
		r = conv_state_summary(s, id, type);
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
	return conv_state_summary(s, id, sum->type);
}
