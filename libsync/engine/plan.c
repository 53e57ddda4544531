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

/* Both MAILBOXIDs known, and not the same: not the same folder. */
static bool mailboxid_differs(const struct plan_remote_folder *r, const struct plan_local_folder *l)
{
	return r->mailboxid && l->mailboxid && *r->mailboxid && *l->mailboxid &&
	       strcmp(r->mailboxid, l->mailboxid) != 0;
}

static bool mailboxid_same(const struct plan_remote_folder *r, const struct plan_local_folder *l)
{
	return r->mailboxid && l->mailboxid && *r->mailboxid && streq(r->mailboxid, l->mailboxid);
}

/*
 * Whether the server moved l to "to" along with p, a folder above it, to
 * p_to: l's server name is p's plus "/rel", "to" is p_to plus "/rel", and
 * l's local name p's local name plus "/rel".
 */
static bool moved_along(const struct plan_local_folder *l, const char *to,
			const struct plan_local_folder *p, const char *p_to)
{
	size_t po = strlen(p->server_name), pn = strlen(p_to), pl = strlen(p->name);
	const char *rel;

	if (!l->server_name || strncmp(l->server_name, p->server_name, po) != 0 ||
	    l->server_name[po] != '/')
		return false;
	rel = l->server_name + po;
	return strncmp(to, p_to, pn) == 0 && streq(to + pn, rel) &&
	       strncmp(l->name, p->name, pl) == 0 && streq(l->name + pl, rel);
}

/* Neither has a MAILBOXID: a server without OBJECTID (RFC 8474). */
static bool mailboxid_none(const struct plan_remote_folder *r, const struct plan_local_folder *l)
{
	return (!r->mailboxid || !*r->mailboxid) && (!l->mailboxid || !*l->mailboxid);
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

/* A folder key for the matching indexes: its name with a first level
 * "INBOX" in any case folded (RFC 3501 5.1), or its UIDVALIDITY. */
struct fkey {
	const char *rest; /* the name after a folded INBOX prefix, or the name */
	bool inbox;	  /* the name starts with INBOX (any case) */
	uint32_t uv;
	size_t idx; /* into local[] */
};

static struct fkey name_key(const char *name, size_t idx)
{
	struct fkey k = { .rest = name, .idx = idx };
	const char *rest;

	if (is_inbox_prefixed(name, &rest)) {
		k.inbox = true;
		k.rest = rest;
	}
	return k;
}

static int name_cmp(const struct fkey *a, const struct fkey *b)
{
	if (a->inbox != b->inbox)
		return a->inbox ? 1 : -1;
	return strcmp(a->rest, b->rest);
}

static int by_name(const void *x, const void *y)
{
	const struct fkey *a = x, *b = y;
	int c = name_cmp(a, b);

	return c ? c : (a->idx > b->idx) - (a->idx < b->idx);
}

static int uv_cmp(const struct fkey *a, const struct fkey *b)
{
	return (a->uv > b->uv) - (a->uv < b->uv);
}

static int by_uv(const void *x, const void *y)
{
	const struct fkey *a = x, *b = y;
	int c = uv_cmp(a, b);

	return c ? c : (a->idx > b->idx) - (a->idx < b->idx);
}

/*
 * The first (lowest local index) unmatched entry of the sorted index keys
 * equal to want, or SIZE_MAX.
 */
static size_t lower_bound(const struct fkey *keys, size_t n, const struct fkey *want,
			  int (*cmp)(const struct fkey *, const struct fkey *))
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cmp(&keys[mid], want) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static size_t lookup(const struct fkey *keys, size_t n, const struct fkey *want,
		     int (*cmp)(const struct fkey *, const struct fkey *), const bool *lmatched)
{
	size_t lo = lower_bound(keys, n, want, cmp);

	for (; lo < n && cmp(&keys[lo], want) == 0; lo++)
		if (!lmatched[keys[lo].idx])
			return keys[lo].idx;
	return SIZE_MAX;
}

/*
 * A local folder whose DELETE or RENAME is pending, while the folder the
 * server shows under its server name is demonstrably another one (its
 * UIDVALIDITY or MAILBOXID differs): the command reached the server already
 * (in a run killed before it recorded the answer), or another client did
 * the same, and the name now belongs to another folder, such as the one a
 * later RENAME of ours moved there.  Matching the two by name would sync
 * the wrong folder and delete the right one, locally and then (replaying
 * the pending DELETE by that name) on the server.
 */
static bool left_its_name(const struct plan_remote_folder *r, const struct plan_local_folder *l)
{
	if (!l->removed && !l->rename_pending)
		return false;
	return mailboxid_differs(r, l) || (r->has_status && r->uidvalidity && l->uidvalidity &&
					   r->uidvalidity != l->uidvalidity);
}

/* lookup() by UIDVALIDITY, skipping local folders whose MAILBOXID says
 * they are not r. */
static size_t lookup_uv(const struct fkey *keys, size_t n, const struct fkey *want,
			const bool *lmatched, const struct plan_local_folder *local,
			const struct plan_remote_folder *r)
{
	size_t lo = lower_bound(keys, n, want, uv_cmp);

	for (; lo < n && uv_cmp(&keys[lo], want) == 0; lo++)
		if (!lmatched[keys[lo].idx] && !mailboxid_differs(r, &local[keys[lo].idx]))
			return keys[lo].idx;
	return SIZE_MAX;
}

/*
 * The remote folder r and the local folder l share a name but are not one
 * folder: their UIDVALIDITYs differ (and MAILBOXIDs do not say they are
 * the same), and l's UIDVALIDITY is another remote folder's, whose
 * MAILBOXID does not say otherwise: l was renamed away on the server, and
 * another folder took its name (two folders swapped; "rename A A.old,
 * create A").  Matched by name, l was read again as if its UIDVALIDITY
 * had been reset and the other taken as new: local changes queued for
 * l's messages were dropped without a word.  Left to step 3, l is matched
 * by UIDVALIDITY instead.  A UIDVALIDITY found nowhere else is a reset of
 * this folder (or the folder replaced: a MAILBOXID then says so, and it
 * is re-read), as before.  ruv: the remote folders by UIDVALIDITY.
 */
static bool renamed_away(const struct plan_remote_folder *remote, size_t i, const struct fkey *ruv,
			 size_t nr, const struct plan_local_folder *local, size_t k,
			 const struct fkey *by_server, size_t ns)
{
	const struct plan_remote_folder *r = &remote[i];
	const struct plan_local_folder *l = &local[k];
	struct fkey want = { .uv = l->uidvalidity };

	if (!r->has_status || !r->uidvalidity || !l->uidvalidity ||
	    r->uidvalidity == l->uidvalidity || mailboxid_same(r, l))
		return false;
	for (size_t lo = lower_bound(ruv, nr, &want, uv_cmp);
	     lo < nr && uv_cmp(&ruv[lo], &want) == 0; lo++) {
		const struct plan_remote_folder *r2 = &remote[ruv[lo].idx];
		struct fkey name = name_key(r2->name, 0);
		bool known = false;

		if (ruv[lo].idx == i || mailboxid_differs(r2, l))
			continue;
		/* A folder known under its own name with that UIDVALIDITY is
		 * that one, not l (Cyrus gives folders made in the same second
		 * the same UIDVALIDITY). */
		for (size_t n = lower_bound(by_server, ns, &name, name_cmp);
		     !known && n < ns && name_cmp(&by_server[n], &name) == 0; n++) {
			const struct plan_local_folder *l2 = &local[by_server[n].idx];

			known = by_server[n].idx != k && l2->uidvalidity == r2->uidvalidity &&
				!mailboxid_differs(r2, l2);
		}
		if (!known)
			return true;
	}
	return false;
}

/*
 * The remote folder r and the local folder k share a name but are not one
 * folder (their UIDVALIDITYs or MAILBOXIDs differ), and r is another local
 * folder renamed there: one with r's identity whose own server name the
 * server no longer shows ("DELETE B, RENAME A B").  Its identity is its
 * MAILBOXID, or, where k's UIDVALIDITY differs from r's, its UIDVALIDITY
 * with no MAILBOXID saying otherwise.  Matched by name, k was re-read as
 * if its UIDVALIDITY had been reset, and the renamed folder taken as gone
 * and deleted with its rows: the changes queued on its messages were
 * dropped without a word.  Returns the renamed folder's index (step 3
 * matches it to r, step 4 folds k into it), or SIZE_MAX.  claimed: local
 * folders another remote one already took this way.
 */
static size_t renamed_onto(const struct plan_remote_folder *r,
			   const struct plan_local_folder *local, size_t k,
			   const struct fkey *by_uidv, size_t nu, const struct fkey *rnames,
			   size_t nrn, const bool *lmatched, const bool *claimed)
{
	const struct plan_local_folder *l = &local[k];
	struct fkey want = { .uv = r->uidvalidity };
	bool uv_differs;

	if (r->noselect || !r->has_status || !r->uidvalidity || l->removed || l->rename_pending ||
	    mailboxid_same(r, l))
		return SIZE_MAX;
	uv_differs = l->uidvalidity && l->uidvalidity != r->uidvalidity;
	if (!uv_differs && !mailboxid_differs(r, l))
		return SIZE_MAX;
	for (size_t lo = lower_bound(by_uidv, nu, &want, uv_cmp);
	     lo < nu && uv_cmp(&by_uidv[lo], &want) == 0; lo++) {
		size_t j = by_uidv[lo].idx;
		const struct plan_local_folder *c = &local[j];
		struct fkey name;
		size_t at;

		if (j == k || lmatched[j] || claimed[j] || c->removed || c->rename_pending ||
		    mailboxid_differs(r, c) || (!uv_differs && !mailboxid_same(r, c)))
			continue;
		name = name_key(c->server_name, 0);
		at = lower_bound(rnames, nrn, &name, name_cmp);
		if (at < nrn && name_cmp(&rnames[at], &name) == 0)
			continue; /* still there under its own name */
		return j;
	}
	return SIZE_MAX;
}

int plan_folders(const struct plan_remote_folder *remote, size_t n_remote,
		 const struct plan_local_folder *local, size_t n_local, bool with_modseq,
		 struct plan_folder_action *actions)
{
	/* Sorted indexes of the local folders (by server name, by local name
	 * for pending CREATE/RENAME, by UIDVALIDITY): O(n log n) for the
	 * thousands of folders a CPM account with many conversations has. */
	_cleanup_free_ bool *rmatched = calloc(n_remote + 1, sizeof(bool));
	_cleanup_free_ bool *lmatched = calloc(n_local + 1, sizeof(bool));
	_cleanup_free_ struct fkey *by_server = calloc(n_local + 1, sizeof(struct fkey));
	_cleanup_free_ struct fkey *by_local = calloc(n_local + 1, sizeof(struct fkey));
	_cleanup_free_ struct fkey *by_uidv = calloc(n_local + 1, sizeof(struct fkey));
	_cleanup_free_ struct fkey *remote_uidv = calloc(n_remote + 1, sizeof(struct fkey));
	_cleanup_free_ struct fkey *remote_name = calloc(n_remote + 1, sizeof(struct fkey));
	/* renamed_onto(): the remote folder whose name local[k] lost
	 * (fold_at[k]) and the local one renamed there (onto[remote]). */
	_cleanup_free_ bool *claimed = calloc(n_local + 1, sizeof(bool));
	_cleanup_free_ size_t *onto = malloc((n_remote + 1) * sizeof(size_t));
	_cleanup_free_ size_t *fold_at = malloc((n_local + 1) * sizeof(size_t));
	/* local[k] is the one another folder is folded into (FOLD). */
	_cleanup_free_ bool *folded_into = calloc(n_local + 1, sizeof(bool));
	/* the CONFIRMs of a pending RENAME (3b.) */
	_cleanup_free_ size_t *confirmed = malloc((n_local + 1) * sizeof(size_t));
	size_t n = 0, ns = 0, nl = 0, nu = 0, nr = 0, nc = 0, j;
	enum plan_folder_action_kind kind;

	if (!rmatched || !lmatched || !by_server || !by_local || !by_uidv || !remote_uidv ||
	    !remote_name || !claimed || !onto || !fold_at || !folded_into || !confirmed)
		return -ENOMEM;
	for (size_t i = 0; i < n_remote; i++) {
		onto[i] = SIZE_MAX;
		remote_name[i] = name_key(remote[i].name, i);
		if (remote[i].has_status && remote[i].uidvalidity && !remote[i].noselect)
			remote_uidv[nr++] = (struct fkey){ .uv = remote[i].uidvalidity, .idx = i };
	}
	qsort(remote_uidv, nr, sizeof(*remote_uidv), by_uv);
	qsort(remote_name, n_remote, sizeof(*remote_name), by_name);
	for (j = 0; j < n_local; j++)
		fold_at[j] = SIZE_MAX;
	for (j = 0; j < n_local; j++) {
		const struct plan_local_folder *l = &local[j];

		if (l->server_name)
			by_server[ns++] = name_key(l->server_name, j);
		if (!l->removed && (!l->server_name || l->rename_pending))
			by_local[nl++] = name_key(l->name, j);
		if (l->server_name && (!l->removed || l->mailboxid))
			by_uidv[nu++] = (struct fkey){ .uv = l->uidvalidity, .idx = j };
	}
	qsort(by_server, ns, sizeof(*by_server), by_name);
	qsort(by_local, nl, sizeof(*by_local), by_name);
	qsort(by_uidv, nu, sizeof(*by_uidv), by_uv);

	/* 1. By server name.  A pending DELETE whose folder left the name is
	 * done: its row goes first, before an ADD could want its local name;
	 * a pending RENAME's is matched by its local name below. */
	for (size_t i = 0; i < n_remote; i++) {
		struct fkey want = name_key(remote[i].name, 0);
		size_t lo = lower_bound(by_server, ns, &want, name_cmp);

		for (j = SIZE_MAX; lo < ns && name_cmp(&by_server[lo], &want) == 0; lo++) {
			size_t k = by_server[lo].idx;

			if (lmatched[k])
				continue;
			if (!left_its_name(&remote[i], &local[k])) {
				size_t c;

				if (renamed_away(remote, i, remote_uidv, nr, local, k, by_server,
						 ns))
					continue;
				c = renamed_onto(&remote[i], local, k, by_uidv, nu, remote_name,
						 n_remote, lmatched, claimed);
				if (c != SIZE_MAX) {
					claimed[c] = true;
					onto[i] = c;
					fold_at[k] = i;
					continue;
				}
				j = k;
				break;
			}
			if (local[k].removed) {
				lmatched[k] = true;
				actions[n++] = (struct plan_folder_action){
					.kind = PLAN_FOLDER_DELETE, .local = k, .remote = 0
				};
			}
		}
		if (j == SIZE_MAX)
			continue;
		rmatched[i] = lmatched[j] = true;
		if (local[j].removed || remote[i].noselect)
			continue;
		if (mailboxid_differs(&remote[i], &local[j]))
			kind = PLAN_FOLDER_REREAD;
		else if (status_unchanged(&remote[i], &local[j], with_modseq))
			kind = PLAN_FOLDER_UNCHANGED;
		else
			kind = PLAN_FOLDER_SYNC;
		actions[n++] = (struct plan_folder_action){ .kind = kind, .local = j, .remote = i };
	}
	/* 2. A pending CREATE or RENAME that already reached the server. */
	for (size_t i = 0; i < n_remote; i++) {
		struct fkey want = name_key(remote[i].name, 0);

		if (rmatched[i])
			continue;
		j = lookup(by_local, nl, &want, name_cmp, lmatched);
		if (j == SIZE_MAX)
			continue;
		rmatched[i] = lmatched[j] = true;
		actions[n++] = (struct plan_folder_action){ .kind = PLAN_FOLDER_CONFIRM,
							    .local = j,
							    .remote = i };
	}
	/* 3. Server-side renames: same UIDVALIDITY as a local folder that
	 * disappeared, unless their MAILBOXIDs say otherwise.  A folder whose
	 * own RENAME is pending keeps its local name: only its server name
	 * follows (CONFIRM), and the pending RENAME goes from there.  Its
	 * folder is under neither name when an earlier RENAME of ours reached
	 * the server with its answer lost and the folder was renamed locally
	 * again, or when another client renamed it meanwhile; taken as gone,
	 * it was deleted here and added back under the server's name.  The
	 * same for a folder deleted locally: its DELETE goes to the new name
	 * (DELETE_THERE), else the folder comes back; but only when the
	 * MAILBOXIDs say it is that folder.  A UIDVALIDITY alone is weak
	 * evidence (some servers give every folder the same one), too weak to
	 * delete a folder on the server by it. */
	for (size_t i = 0; i < n_remote; i++) {
		struct fkey want = { .uv = remote[i].uidvalidity };

		if (rmatched[i] || remote[i].noselect || !remote[i].has_status ||
		    !remote[i].uidvalidity)
			continue;
		j = onto[i] != SIZE_MAX && !lmatched[onto[i]]
			    ? onto[i]
			    : lookup_uv(by_uidv, nu, &want, lmatched, local, &remote[i]);
		if (j == SIZE_MAX || (local[j].removed && !mailboxid_same(&remote[i], &local[j])))
			continue;
		rmatched[i] = lmatched[j] = true;
		onto[i] = j;
		kind = local[j].removed		 ? PLAN_FOLDER_DELETE_THERE
		       : local[j].rename_pending ? PLAN_FOLDER_CONFIRM
						 : PLAN_FOLDER_RENAMED;
		actions[n++] = (struct plan_folder_action){ .kind = kind, .local = j, .remote = i };
	}
	/* 3b. A folder under one whose own RENAME is pending, moved by the
	 * server along with it (another client renamed S to S1 while ours,
	 * S to S2, waited): its local name stays too, only its server name
	 * follows (CONFIRM), and the pending RENAME S1 S2 takes it on to
	 * S2/kid there.  Renamed to the server's S1/kid here, it stayed so
	 * for good once that RENAME had moved it to S2/kid on the server. */
	for (size_t a = 0; a < n; a++) {
		const struct plan_local_folder *p = &local[actions[a].local];

		if (actions[a].kind == PLAN_FOLDER_CONFIRM && p->rename_pending && p->server_name)
			confirmed[nc++] = a;
	}
	for (size_t a = 0; nc && a < n; a++) {
		if (actions[a].kind != PLAN_FOLDER_RENAMED)
			continue;
		for (size_t c = 0; c < nc; c++) {
			const struct plan_folder_action *b = &actions[confirmed[c]];

			if (moved_along(&local[actions[a].local], remote[actions[a].remote].name,
					&local[b->local], remote[b->remote].name)) {
				actions[a].kind = PLAN_FOLDER_CONFIRM;
				break;
			}
		}
	}
	/* 4. What is left. */
	for (size_t i = 0; i < n_remote; i++)
		if (!rmatched[i] && !remote[i].noselect)
			actions[n++] = (struct plan_folder_action){ .kind = PLAN_FOLDER_ADD,
								    .local = 0,
								    .remote = i };
	for (j = 0; j < n_local; j++) {
		size_t at = fold_at[j];

		if (lmatched[j] || !local[j].server_name)
			continue; /* matched, or its CREATE is pending */
		if (at != SIZE_MAX && rmatched[at] && onto[at] != SIZE_MAX && lmatched[onto[at]] &&
		    !local[onto[at]].removed) {
			folded_into[onto[at]] = true;
			actions[n++] = (struct plan_folder_action){
				.kind = PLAN_FOLDER_FOLD, .local = j, .remote = at, .into = onto[at]
			};
		} else if (local[j].out_of_view && local[j].has_ops)
			actions[n++] = (struct plan_folder_action){ .kind = PLAN_FOLDER_KEEP,
								    .local = j,
								    .remote = 0 };
		else if (local[j].removed || local[j].out_of_view)
			actions[n++] = (struct plan_folder_action){ .kind = PLAN_FOLDER_DELETE,
								    .local = j,
								    .remote = 0 };
		else if (local[j].foreign && local[j].has_ops)
			actions[n++] = (struct plan_folder_action){ .kind = PLAN_FOLDER_LOST,
								    .local = j,
								    .remote = 0 };
		else if (local[j].has_content_ops)
			actions[n++] = (struct plan_folder_action){ .kind = PLAN_FOLDER_RECREATE,
								    .local = j,
								    .remote = 0 };
		else
			actions[n++] = (struct plan_folder_action){ .kind = PLAN_FOLDER_DELETE,
								    .local = j,
								    .remote = 0 };
	}
	/* 5. Renamed, and nothing else: the row is renamed, no SELECT. */
	for (size_t a = 0; a < n; a++) {
		const struct plan_remote_folder *r;
		const struct plan_local_folder *l;

		if (actions[a].kind != PLAN_FOLDER_RENAMED || folded_into[actions[a].local])
			continue;
		r = &remote[actions[a].remote];
		l = &local[actions[a].local];
		actions[a].unchanged = (mailboxid_same(r, l) || mailboxid_none(r, l)) &&
				       status_unchanged(r, l, with_modseq);
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

const char *plan_identity_name(enum plan_identity id)
{
	switch (id) {
	case PLAN_IDENTITY_SAME:
		return "same";
	case PLAN_IDENTITY_UIDVALIDITY:
		return "UIDVALIDITY changed";
	case PLAN_IDENTITY_MAILBOXID:
		return "MAILBOXID changed";
	case PLAN_IDENTITY_MODSEQ_DOWN:
		return "HIGHESTMODSEQ went down";
	case PLAN_IDENTITY_UIDNEXT_DOWN:
		return "UIDNEXT went down";
	case PLAN_IDENTITY_EXISTS:
		return "EXISTS below the known UIDs";
	}
	return "?";
}

enum plan_identity plan_folder_identity(const struct plan_identity_in *in)
{
	if (!in->local_uidvalidity)
		return PLAN_IDENTITY_SAME;
	if (in->uidvalidity && in->uidvalidity != in->local_uidvalidity)
		return PLAN_IDENTITY_UIDVALIDITY;
	if (in->mailboxid && in->local_mailboxid && *in->mailboxid && *in->local_mailboxid &&
	    strcmp(in->mailboxid, in->local_mailboxid) != 0)
		return PLAN_IDENTITY_MAILBOXID;
	if (in->highestmodseq && in->local_highestmodseq &&
	    in->highestmodseq < in->local_highestmodseq)
		return PLAN_IDENTITY_MODSEQ_DOWN;
	if (in->uidnext && in->local_uidnext && in->uidnext < in->local_uidnext)
		return PLAN_IDENTITY_UIDNEXT_DOWN;
	if (in->exists_complete && in->local_known > in->exists)
		return PLAN_IDENTITY_EXISTS;
	return PLAN_IDENTITY_SAME;
}

void plan_after_select(enum plan_mode selected_with, enum plan_identity identity,
		       uint32_t local_uidnext, uint32_t server_uidnext, bool server_nomodseq,
		       struct plan_after_select *ret)
{
	*ret = (struct plan_after_select){ .mode = selected_with, .identity = identity };

	if (identity != PLAN_IDENTITY_SAME) {
		ret->reread = true;
		ret->mode = PLAN_MODE_INITIAL;
	} else if (server_nomodseq &&
		   (selected_with == PLAN_MODE_QRESYNC || selected_with == PLAN_MODE_CONDSTORE)) {
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
