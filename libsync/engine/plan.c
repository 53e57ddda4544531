/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cpmsync/account.h>

#include "engine/plan.h"
#include "util/macro.h"

static bool match_at(const char *p, const char *n)
{
	for (;; p++, n++) {
		if (*p == '*' || *p == '%') {
			bool any = *p == '*';

			/* Try every split point; '%' may not cross a '/'. */
			for (const char *k = n;; k++) {
				if (match_at(p + 1, k))
					return true;
				if (!*k || (!any && *k == '/'))
					return false;
			}
		}
		if (*p != *n)
			return false;
		if (!*p)
			return true;
	}
}

static bool is_inbox_prefixed(const char *s, const char **rest)
{
	if (strncasecmp(s, "INBOX", 5) == 0 && (s[5] == '\0' || s[5] == '/')) {
		*rest = s + 5;
		return true;
	}
	return false;
}

bool plan_pattern_match(const char *pattern, const char *name)
{
	const char *pr, *nr;

	/* INBOX is case-insensitive, also as the first level of a path. */
	if (is_inbox_prefixed(pattern, &pr) && is_inbox_prefixed(name, &nr))
		return match_at(pr, nr);
	return match_at(pattern, name);
}

bool plan_patterns_match(const char *const *patterns, const char *name)
{
	if (!patterns)
		return true;
	for (size_t i = 0; patterns[i]; i++)
		if (plan_pattern_match(patterns[i], name))
			return true;
	return false;
}

static bool name_eq(const char *a, const char *b)
{
	const char *ra, *rb;

	if (!a || !b)
		return false;
	if (is_inbox_prefixed(a, &ra) && is_inbox_prefixed(b, &rb))
		return streq(ra, rb);
	return streq(a, b);
}

static bool status_unchanged(const struct plan_remote_folder *r, const struct plan_local_folder *l,
			     bool with_modseq)
{
	if (!with_modseq || !r->has_status || r->highestmodseq == 0 || l->highestmodseq == 0 ||
	    l->bodies_behind)
		return false;
	return r->uidvalidity == l->uidvalidity && r->uidnext == l->uidnext &&
	       r->highestmodseq == l->highestmodseq && r->messages == l->known_messages;
}

int plan_folders(const struct plan_remote_folder *remote, size_t n_remote,
		 const struct plan_local_folder *local, size_t n_local, bool with_modseq,
		 struct plan_folder_action *actions)
{
	/* Match marks; folder counts are modest (thousands at most), and the
	 * O(n*m) matching is simple to reason about. */
	_cleanup_free_ bool *rmatched = calloc(n_remote + 1, sizeof(bool));
	_cleanup_free_ bool *lmatched = calloc(n_local + 1, sizeof(bool));
	size_t n = 0;

	if (!rmatched || !lmatched)
		return -ENOMEM;

	/* 1. By server name. */
	for (size_t i = 0; i < n_remote; i++) {
		for (size_t j = 0; j < n_local; j++) {
			if (lmatched[j] || !name_eq(local[j].server_name, remote[i].name))
				continue;
			rmatched[i] = lmatched[j] = true;
			if (!local[j].removed && !remote[i].noselect)
				actions[n++] = (struct plan_folder_action){
					status_unchanged(&remote[i], &local[j], with_modseq)
						? PLAN_FOLDER_UNCHANGED
						: PLAN_FOLDER_SYNC,
					j, i
				};
			break;
		}
	}
	/* 2. A pending CREATE or RENAME that already reached the server. */
	for (size_t i = 0; i < n_remote; i++) {
		if (rmatched[i])
			continue;
		for (size_t j = 0; j < n_local; j++) {
			if (lmatched[j] || local[j].removed || !name_eq(local[j].name, remote[i].name))
				continue;
			if (local[j].server_name && !local[j].rename_pending)
				continue;
			rmatched[i] = lmatched[j] = true;
			actions[n++] = (struct plan_folder_action){ PLAN_FOLDER_CONFIRM, j, i };
			break;
		}
	}
	/* 3. Server-side renames: same UIDVALIDITY as a local folder that
	 * disappeared. */
	for (size_t i = 0; i < n_remote; i++) {
		if (rmatched[i] || remote[i].noselect || !remote[i].has_status ||
		    !remote[i].uidvalidity)
			continue;
		for (size_t j = 0; j < n_local; j++) {
			if (lmatched[j] || local[j].removed || !local[j].server_name ||
			    local[j].rename_pending || local[j].uidvalidity != remote[i].uidvalidity)
				continue;
			rmatched[i] = lmatched[j] = true;
			actions[n++] = (struct plan_folder_action){ PLAN_FOLDER_RENAMED, j, i };
			break;
		}
	}
	/* 4. What is left. */
	for (size_t i = 0; i < n_remote; i++)
		if (!rmatched[i] && !remote[i].noselect)
			actions[n++] = (struct plan_folder_action){ PLAN_FOLDER_ADD, 0, i };
	for (size_t j = 0; j < n_local; j++) {
		if (lmatched[j] || !local[j].server_name)
			continue; /* matched, or its CREATE is pending */
		if (local[j].removed)
			actions[n++] = (struct plan_folder_action){ PLAN_FOLDER_DELETE, j, 0 };
		else if (local[j].has_content_ops)
			actions[n++] = (struct plan_folder_action){ PLAN_FOLDER_RECREATE, j, 0 };
		else
			actions[n++] = (struct plan_folder_action){ PLAN_FOLDER_DELETE, j, 0 };
	}
	return (int)n;
}

const char *plan_mode_name(enum plan_mode m)
{
	switch (m) {
	case PLAN_MODE_QRESYNC:
		return "qresync";
	case PLAN_MODE_CONDSTORE:
		return "condstore";
	case PLAN_MODE_PLAIN:
		return "plain";
	case PLAN_MODE_INITIAL:
		return "initial";
	}
	return "?";
}

enum plan_mode plan_select_mode(bool qresync_enabled, bool condstore_enabled,
				uint32_t local_uidvalidity, uint64_t local_highestmodseq,
				uint32_t local_known_messages)
{
	if (!local_uidvalidity)
		return PLAN_MODE_INITIAL;
	if (qresync_enabled && local_highestmodseq)
		return PLAN_MODE_QRESYNC;
	if ((qresync_enabled || condstore_enabled) && local_highestmodseq)
		return PLAN_MODE_CONDSTORE;
	if (local_known_messages == 0)
		return PLAN_MODE_INITIAL;
	return PLAN_MODE_PLAIN;
}

void plan_after_select(enum plan_mode selected_with, uint32_t local_uidvalidity,
		       uint32_t local_uidnext, uint32_t server_uidvalidity,
		       uint32_t server_uidnext, bool server_nomodseq,
		       struct plan_after_select *ret)
{
	*ret = (struct plan_after_select){ .mode = selected_with };

	if (local_uidvalidity && server_uidvalidity && local_uidvalidity != server_uidvalidity) {
		ret->uidvalidity_changed = true;
		ret->mode = PLAN_MODE_INITIAL;
	} else if (server_nomodseq && (selected_with == PLAN_MODE_QRESYNC ||
				       selected_with == PLAN_MODE_CONDSTORE)) {
		ret->mode = PLAN_MODE_PLAIN;
	}
	if (ret->mode == PLAN_MODE_INITIAL) {
		ret->fetch_new = true;
		ret->new_from_uid = 1;
		return;
	}
	/* Without UIDNEXT from the server we must look. */
	ret->new_from_uid = local_uidnext ? local_uidnext : 1;
	ret->fetch_new = !server_uidnext || server_uidnext > ret->new_from_uid;
}

bool plan_need_expunge_search(uint32_t exists, uint32_t new_count, uint32_t local_known_below)
{
	if (new_count > exists)
		return true; /* the server contradicts itself: look */
	return exists - new_count != local_known_below;
}

uint64_t plan_body_limit(int64_t sync_bodies)
{
	if (sync_bodies == CPMSYNC_SYNC_BODIES_ALL || sync_bodies < 0)
		return UINT64_MAX;
	if (sync_bodies == CPMSYNC_SYNC_BODIES_NONE)
		return 0;
	if ((uint64_t)sync_bodies > UINT64_MAX / 1024)
		return UINT64_MAX;
	return (uint64_t)sync_bodies * 1024;
}
