/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Annotations at sync (ANNOTATE, RFC 5257): on Cyrus a change of an
 * annotation bumps the message's MODSEQ, so the messages a QRESYNC SELECT
 * or a CHANGEDSINCE pass reports include those whose annotations another
 * client changed, with the same flags.  Of these, the ones whose
 * annotations are cached get the cached entries fetched again, before the
 * folder's HIGHESTMODSEQ is committed (a crash in between fetches them
 * again next time):
 *   UID FETCH <uids> (ANNOTATION ((<entries>) (value.priv value.shared)))
 * with the entries cached in the folder.  Not the wildcard entry (slash star): Cyrus
 * 3.6 answers that with its seven /vendor/cmu/cyrus-imapd/ entries per
 * message and splits an entry over two items, several times the bytes of
 * what the cache holds; an entry never asked for is fetched when a
 * GetAnnotations first asks (cpmsync_session_get_annotations()).
 * Messages that changed and have nothing cached cost nothing.
 * A server that refuses the refresh (NO or BAD to any of its commands) does
 * not fail the run: that would record nothing, ask again next time and fail
 * the account for good.  The cached values of those messages are forgotten
 * instead (store_annotation_forget(): a pending local value stays), so a
 * later read asks the server, and the folder's state is recorded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

#include "engine/engine-internal.h"
#include "store/store-sync.h"
#include "util/log.h"
#include "util/macro.h"

#define CAT CPMSYNC_LOG_CAT_ENGINE
/* Entries of a folder refreshed together (more are unusual: the rest are
 * fetched again when read). */
#define ANN_MAX_ENTRIES 64

static bool annotate_offered(struct cpmsync_sync *e)
{
	return e->drv->ops->has(e->drv, IMAP_CAP_ANNOTATE_EXPERIMENT_1);
}

void engine_annotation_note(struct cpmsync_sync *e, uint32_t uid)
{
	int64_t id = 0;
	bool cached = false;
	int r;

	if (e->f.ann_cached == 1 || !e->selected_id || e->selected_id != e->f.id ||
	    !annotate_offered(e))
		return;
	if (e->f.ann_cached == 0) {
		char **entries = NULL;

		r = store_annotation_entries(e->store, e->f.id, 1, &entries);
		if (r < 0) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return;
		}
		e->f.ann_cached = entries[0] ? 2 : 1;
		store_strv_free(entries);
		if (e->f.ann_cached == 1)
			return;
	}
	r = store_sync_uid_to_id(e->store, e->f.id, uid, &id);
	if (r > 0)
		r = store_annotation_cached(e->store, id, &cached);
	if (r >= 0 && cached)
		r = rangeset_add(&e->f.ann_uids, uid);
	if (r < 0)
		engine_fail(e, r, "store: %s", store_error(e->store));
}

void engine_annotation_on_fetch(struct cpmsync_sync *e, const struct engine_fetch *f)
{
	int64_t id = 0;
	int r;

	if (!(f->present & ENGINE_FETCH_ANNOTATION) || !e->selected_id)
		return;
	r = store_sync_uid_to_id(e->store, e->selected_id, f->uid, &id);
	if (r <= 0) {
		if (r < 0)
			engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	r = engine_tx_begin(e);
	for (size_t i = 0; r >= 0 && i < f->n_annotations; i++) {
		const struct engine_fetch_annotation *a = &f->annotations[i];
		_cleanup_free_ char *name = NULL;

		name = strndup(a->entry, a->entry_len);
		if (!name) {
			r = -ENOMEM;
			break;
		}
		if (a->has_priv)
			r = store_annotation_set_server(e->store, id, name, false, a->priv,
							a->priv_len);
		if (r >= 0 && a->has_shared)
			r = store_annotation_set_server(e->store, id, name, true, a->shared,
							a->shared_len);
	}
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return;
	}
	e->batch_rows++;
}

/* The reply to one refresh command; the last one goes on. */
static void refresh_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;
	int r;

	if (engine_pull_answered(e))
		return;
	if (res->r == -CPMSYNC_E_SERVER && !e->finished) {
		if (!e->f.ann_refused)
			log_msg(CPMSYNC_LOG_WARNING, CAT,
				"%s: %s: the server refused to send annotations again (%s): "
				"the cached values of the changed messages are dropped",
				e->account_name, e->f.server_name,
				res->text ? res->text : "no text");
		e->f.ann_refused = true;
	} else if (engine_reply_failed(e, res, "UID FETCH (ANNOTATION)")) {
		return;
	}
	if (--e->f.ann_pending > 0)
		return;
	e->fetch_kind = FK_NONE;
	if (e->f.ann_refused) {
		r = engine_tx_begin(e);
		if (r >= 0)
			r = store_annotation_forget(e->store, e->f.id, &e->f.ann_uids);
		if (r < 0) {
			engine_fail(e, r, "store: %s", store_error(e->store));
			return;
		}
		e->batch_rows++;
	}
	e->f.ann_next(e);
}

bool engine_annotation_refresh(struct cpmsync_sync *e, engine_next_fn next)
{
	struct buf set = BUF_INIT(ENGINE_SET_BYTES + 64);
	char **entries = NULL;
	size_t pos = 0;
	int r;

	if (e->f.ann_done || rangeset_empty(&e->f.ann_uids))
		return false;
	e->f.ann_done = true;
	r = store_annotation_entries(e->store, e->f.id, ANN_MAX_ENTRIES, &entries);
	if (r < 0) {
		engine_fail(e, r, "store: %s", store_error(e->store));
		return true;
	}
	if (!entries[0]) {
		store_strv_free(entries);
		return false;
	}
	log_debug(CAT, "%s: %s: refreshing the annotations of %zu changed message range(s)",
		  e->account_name, e->f.server_name, e->f.ann_uids.n);
	e->f.ann_next = next;
	e->f.ann_pending = 0;
	e->f.ann_refused = false;
	e->fetch_kind = FK_ANNOTATION;
	/* One command per set that fits, each answered (a refusal of any of
	 * them counts); the last reply goes on. */
	while (r >= 0 && pos < e->f.ann_uids.n) {
		buf_reset(&set);
		r = imap_seqset_format(&e->f.ann_uids, &pos, &set, ENGINE_SET_BYTES);
		if (r >= 0)
			r = e->drv->ops->fetch_annotations(
				e->drv, set.data, (const char *const *)entries, refresh_done, e);
		if (r >= 0) {
			e->f.ann_pending++;
			e->pull_cmds++;
		}
	}
	buf_free(&set);
	store_strv_free(entries);
	if (r < 0)
		engine_fail(e, r, "out of memory");
	return true;
}
