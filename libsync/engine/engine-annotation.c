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
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

static void refresh_done(const struct engine_reply *res, void *userdata)
{
	struct cpmsync_sync *e = userdata;

	e->fetch_kind = FK_NONE;
	if (engine_reply_failed(e, res, "UID FETCH (ANNOTATION)"))
		return;
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
	e->fetch_kind = FK_ANNOTATION;
	/* One command per set that fits; the last one's reply goes on. */
	while (r >= 0 && pos < e->f.ann_uids.n) {
		bool last;

		buf_reset(&set);
		r = imap_seqset_format(&e->f.ann_uids, &pos, &set, ENGINE_SET_BYTES);
		last = pos >= e->f.ann_uids.n;
		if (r >= 0)
			r = e->drv->ops->fetch_annotations(e->drv, set.data,
							   (const char *const *)entries,
							   last ? refresh_done : NULL, e);
	}
	buf_free(&set);
	store_strv_free(entries);
	if (r < 0)
		engine_fail(e, r, "out of memory");
	return true;
}
