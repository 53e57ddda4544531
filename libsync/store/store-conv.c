/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Conversations: the read side (cpmsync/conversation.h).  The rows are
 * kept by the triggers of schema version 6 (store-schema.c); here they are
 * read, and Participants and Peer are finished the contract's way (own
 * addresses left out, the fallbacks).
 */
#include <sqlite3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/conversation.h>
#include <cpmsync/error.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "util/buf.h"
#include "util/macro.h"

/* Most addresses kept in one list (own addresses, fallback participants). */
#define CONV_MAX_ADDRESSES 256

/*
 * One conversation per Conversation-ID (contract: "Conversation-IDs
 * compare byte for byte"): the store keeps a row per conversation folder
 * (store-schema.c), and two folders may hold objects of the same
 * Conversation-ID (a 1-to-1 chat in the peer's folder and in
 * <root>/<Conversation-ID>; a conversation folder renamed on the server
 * and made again by the next object).  CONV_ROWS and CONV_ALL give one
 * row per Conversation-ID: the most active row's columns and whether it
 * has other rows; emit() reads them all for Messages, Unseen, IsGroup,
 * Folder, Peer, Participants and Subject when it has.
 *
 * A row is listed only when it holds an object a person reads, a
 * session-info or group-state object, or one not classified yet (stored
 * from its header, before its body: CONV_LISTED).  IMDN reports are
 * state, not messages, so a folder holding only reports (one that came
 * before its original) is no conversation; nor is one of mail only.
 */
#define CONV_LISTED(c) STORE_CONV_LISTED(c)
/* Is row c the most active listed row of its Conversation-ID?  (An
 * index seek on conversation_cid that mostly finds c alone.) */
#define CONV_TOP(c)                                                                                \
	"NOT EXISTS (SELECT 1 FROM conversation x INDEXED BY conversation_cid"                     \
	" WHERE x.account_id = " c ".account_id"                                                   \
	" AND x.conversation_id = " c ".conversation_id AND x.id <> " c ".id"                      \
	" AND (x.last_date, x.last_id, x.id) > (" c ".last_date, " c ".last_id, " c ".id)"         \
	" AND " CONV_LISTED("x") ")"
/* ?1 the account; where: more of the WHERE (or ""); ?2 LIMIT, ?3 OFFSET.
 * The page's rows first, from the covering index conversation_last and
 * those seeks (a window over every row of the account, PARTITION BY
 * conversation_id, took 3-4 ms for 1,000 conversations, for a page of 50
 * too: bench-cpm.sh); whether there are other rows, for those only (an
 * index seek that skips c itself by its rowid: count(*) read c's row
 * again, about 0.4 ms of the 1,000). */
/* clang-format off */
#define CONV_ROWS(where)                                                                           \
	"WITH t AS (SELECT c.id FROM conversation c WHERE c.account_id = ?1" where                 \
	" AND " CONV_LISTED("c") " AND " CONV_TOP("c")                                             \
	" ORDER BY c.last_date DESC, c.last_id DESC, c.id DESC LIMIT ?2 OFFSET ?3)"                \
	" SELECT " CONV_COLUMNS " FROM t JOIN conversation c ON c.id = t.id" CONV_FROM             \
	" ORDER BY c.last_date DESC, c.last_id DESC, c.id DESC"
/* clang-format on */
/* The whole list (?1 the account): one pass over
 * conversation_last in the list's order, the last message read in the
 * same row.  CONV_ROWS' page first, then its rows sorted again, took
 * about 1.5 ms more of the 1,000 (a temporary B-tree of every column of
 * every row: EXPLAIN QUERY PLAN, bench-cpm.sh 20000 CONVS=1000); for a
 * page, reading every row before it was worse (foreach_conversation()). */
/* clang-format off */
#define CONV_ALL                                                                                   \
	"SELECT " CONV_COLUMNS " FROM conversation c INDEXED BY conversation_last" CONV_FROM       \
	" WHERE c.account_id = ?1 AND " CONV_LISTED("c") " AND " CONV_TOP("c")                     \
	" ORDER BY c.last_date DESC, c.last_id DESC, c.id DESC"
/* clang-format on */
#define CONV_COLUMNS                                                                               \
	"c.id, a.name, c.conversation_id,"                                                         \
	" coalesce((SELECT f.id FROM folder f WHERE f.account_id = c.account_id"                   \
	" AND f.name = c.folder AND f.removed = 0), 0),"                                           \
	" c.folder, c.peer, c.is_group, c.participants, c.subject, c.messages, c.unseen,"          \
	" c.last_date, c.last_id, c.account_id, EXISTS (SELECT 1 FROM conversation x"              \
	" INDEXED BY conversation_cid"                                                             \
	" WHERE x.account_id = c.account_id AND x.conversation_id = c.conversation_id"             \
	" AND x.id <> c.id AND " CONV_LISTED("x") "), " STORE_MESSAGE_COLUMNS
/* Column of the last message's first column (m.id, NULL when none). */
#define CONV_LAST_COLUMN 15
/* The last message and its summary in the same row: one query for the
 * whole list, not one per conversation (with 1,000 conversations that was
 * 1,000 more statements per ListConversations). */
#define CONV_FROM                                                                                  \
	" JOIN account a ON a.id = c.account_id"                                                   \
	" LEFT JOIN message m ON m.id = c.last_id AND m.removed = 0"                               \
	" AND EXISTS (SELECT 1 FROM folder lf WHERE lf.id = m.folder_id"                           \
	" AND lf.removed = 0)" STORE_MESSAGE_JOINS
#define COUNTED "m.type IN ('message', 'file-transfer', 'media')"
/* message_conv_page's WHERE, spelled the same (schema version 14). */
#define PAGE_COUNTED "(m.type = 'message' OR m.type = 'file-transfer' OR m.type = 'media')"
/* Flagged \Deleted, not yet expunged: not one of the conversation's
 * messages (schema version 32); one seek on message_state per entry. */
#define PAGE_DELETED                                                                               \
	"EXISTS (SELECT 1 FROM message_state ms WHERE ms.id = m.id"                                \
	" AND instr(' ' || ms.flags || ' ', ' \\Deleted ') > 0)"

static const char *text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

static uint32_t column_u32(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* Is addr one of the '\n'-separated lines of list? */
static bool in_list(const char *list, const char *addr, size_t n)
{
	for (const char *p = list; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t ln = nl ? (size_t)(nl - p) : strlen(p);

		if (ln == n && memcmp(p, addr, n) == 0)
			return true;
		p = nl ? nl + 1 : NULL;
	}
	return false;
}

/* Appends the addresses sql (bound ?1, ?2) yields, one per line. */
static int collect(struct store *s, const char *sql, int64_t a1, const char *a2, struct buf *out)
{
	sqlite3_stmt *st;
	unsigned n = 0;
	int r;

	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, a1);
	if (a2)
		sqlite3_bind_text(st, 2, a2, -1, SQLITE_TRANSIENT);
	while ((r = store_step(s, st)) > 0) {
		const char *v = text(st, 0);

		if (!*v || n >= CONV_MAX_ADDRESSES)
			continue;
		if ((out->len && buf_append_char(out, '\n') < 0) || buf_append_str(out, v) < 0) {
			sqlite3_reset(st);
			return -ENOMEM;
		}
		n++;
	}
	return r;
}

/*
 * The account's own addresses: From of its sent objects.  The partial
 * index holds the sent ones only (without INDEXED BY the planner walks
 * every message of the account's folders).  Its distinct senders are
 * found by seeking from one to the next (a skip scan), and each is checked
 * on its first live row of the account: a few seeks per address, not a
 * visit of every sent row (with 50,000 sent objects, as in
 * tests/bench/bench-cpm.sh, a DISTINCT over the index took 300-400 ms per
 * ListConversations, reading each row for removed and folder_id).
 */
static int own_collect(struct store *s, int64_t account_id, struct buf *out)
{
	return collect(s,
		       "WITH RECURSIVE d(v) AS ("
		       " SELECT (SELECT min(sender) FROM message INDEXED BY message_sent_sender"
		       "  WHERE direction = 'sent')"
		       " UNION ALL SELECT (SELECT min(sender) FROM message"
		       "  INDEXED BY message_sent_sender WHERE direction = 'sent' AND sender > d.v)"
		       " FROM d WHERE d.v IS NOT NULL)"
		       " SELECT v FROM d WHERE v IS NOT NULL AND EXISTS (SELECT 1 FROM message m"
		       " INDEXED BY message_sent_sender WHERE m.direction = 'sent'"
		       " AND m.sender = d.v AND m.removed = 0 AND EXISTS (SELECT 1 FROM folder f"
		       " WHERE f.id = m.folder_id AND f.account_id = ?1))",
		       account_id, NULL, out);
}

/*
 * The own addresses as a sorted set, looked up per participant of every
 * conversation: a bsearch() rather than a scan of the list (with the 99
 * own addresses of tests/bench/bench-cpm.sh 20000 CONVS=1000, the scans
 * were about a tenth of ListConversations' CPU, perf).  One allocation:
 * the header, n pointers, then the addresses they point to.
 */
struct own_set {
	int64_t account_id;
	/* The store's content stamp they were read at; kept says whether
	 * they may be used again at that stamp (read in no transaction). */
	uint64_t stamp[2];
	bool kept;
	size_t n;
	const char *v[];
};

static int own_sort_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Does set hold the address of n bytes at p (not NUL-terminated)? */
static bool own_has(const struct own_set *set, const char *p, size_t n)
{
	size_t lo = 0, hi = set ? set->n : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *v = set->v[mid];
		int c = strncmp(p, v, n);

		if (c == 0 && v[n])
			c = -1; /* p is a prefix of v */
		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

/* Reads the account's own addresses (own_collect()), sorted, into *slot. */
static int own_read(struct store *s, int64_t account_id, const uint64_t stamp[2], bool kept,
		    struct own_set **slot, const struct own_set **ret)
{
	_cleanup_buf_ struct buf list = BUF_INIT(CONV_MAX_ADDRESSES * 4096);
	struct own_set *set;
	size_t n = 0;
	char *text;
	int r;

	r = own_collect(s, account_id, &list);
	if (r < 0)
		return r;
	for (size_t i = 0; i < list.len; i++)
		n += list.data[i] == '\n';
	if (list.len)
		n++;
	set = malloc(sizeof(*set) + n * sizeof(set->v[0]) + list.len + 1);
	if (!set)
		return -ENOMEM;
	set->account_id = account_id;
	set->stamp[0] = stamp[0];
	set->stamp[1] = stamp[1];
	set->kept = kept;
	set->n = n;
	text = (char *)&set->v[n];
	if (list.len)
		memcpy(text, list.data, list.len);
	text[list.len] = '\0';
	for (size_t i = 0; i < n; i++) {
		char *nl = strchr(text, '\n');

		set->v[i] = text;
		if (nl)
			*nl = '\0';
		text = nl ? nl + 1 : text + strlen(text);
	}
	if (n > 1)
		qsort(set->v, n, sizeof(set->v[0]), own_sort_cmp);
	*slot = set;
	*ret = set;
	return 0;
}

/*
 * The account's own addresses (own_collect()), sorted: those of the last
 * call when the store did not change since (store_content_stamp()), else
 * read again.  They are read once per listing and per conversation the
 * daemon signals (ConversationChanged: cpmsync_store_get_conversation_by_id()
 * for each conversation a commit changed), and the same for every page of
 * ListConversationsPage; with 99 own addresses among 20,000 objects
 * (bench-cpm.sh 20000 CONVS=1000) a read took about 0.4 ms.  Kept by the
 * store (store_conv_own_slot()) and borrowed by *ret until the next call.
 * Read inside a transaction, they are not used again (a rollback may give
 * other content the same stamp); the stamp is taken before they are read.
 */
static int own_addresses(struct store *s, int64_t account_id, const struct own_set **ret)
{
	struct own_set **slot = (struct own_set **)store_conv_own_slot(s);
	uint64_t stamp[2];
	int tx;

	tx = store_content_stamp(s, stamp);
	if (tx < 0)
		return tx;
	if (*slot && (*slot)->kept && (*slot)->account_id == account_id &&
	    (*slot)->stamp[0] == stamp[0] && (*slot)->stamp[1] == stamp[1]) {
		*ret = *slot;
		return 0;
	}
	free(*slot);
	*slot = NULL;
	return own_read(s, account_id, stamp, tx == 0, slot, ret);
}

struct walk {
	struct store *s;
	const struct own_set *own; /* of the account of the last row, or NULL */
	cpmsync_conversation_fn fn;
	void *userdata;
};

static int replace(char **dst, const char *v)
{
	char *t = strdup(v);

	if (!t)
		return -ENOMEM;
	free(*dst);
	*dst = t;
	return 0;
}

/* Is folder named after cid (its last level is cid)? */
static bool named_after(const char *folder, const char *cid)
{
	const char *slash = strrchr(folder, '/');

	return strcmp(slash ? slash + 1 : folder, cid) == 0;
}

/*
 * The columns of a conversation of several rows (folders) that are not
 * the most active row's: Messages, Unseen and IsGroup over all its rows;
 * Folder the conversation history folder named
 * after it if it is one of them, else the most active; Peer and Subject
 * the most active row's that has one; Participants those of every row
 * ('\n'-separated, the duplicates go in emit()).  The rows in the order
 * of CONV_ROWS, the most active first.
 */
static int merge_rows(struct store *s, int64_t account_id, const char *cid,
		      struct cpmsync_conversation_info *c, bool *group, char **folder, char **peer,
		      char **subject, struct buf *raw)
{
	uint64_t messages = 0, unseen = 0;
	sqlite3_stmt *st;
	bool named = named_after(*folder, cid);
	int r;

	r = store_prepare(s,
			  "SELECT c.folder, coalesce((SELECT f.id FROM folder f"
			  " WHERE f.account_id = c.account_id AND f.name = c.folder"
			  " AND f.removed = 0), 0), c.peer, c.subject, c.participants,"
			  " c.messages, c.unseen, c.is_group FROM conversation c WHERE "
			  "c.account_id = ?1 AND c.conversation_id = ?2"
			  " AND " CONV_LISTED("c") " ORDER BY c.last_date DESC, c.last_id DESC,"
						   " c.id DESC",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, account_id);
	sqlite3_bind_text(st, 2, cid, -1, SQLITE_TRANSIENT);
	while ((r = store_step(s, st)) > 0) {
		const char *f = text(st, 0), *p = text(st, 2), *sub = text(st, 3),
			   *parts = text(st, 4);

		if (!named && named_after(f, cid)) {
			named = true;
			c->folder_id = sqlite3_column_int64(st, 1);
			if (replace(folder, f) < 0)
				goto oom;
		}
		if ((!**peer && *p && replace(peer, p) < 0) ||
		    (!**subject && *sub && replace(subject, sub) < 0))
			goto oom;
		messages += column_u32(st, 5);
		unseen += column_u32(st, 6);
		*group = *group || sqlite3_column_int(st, 7) != 0;
		if (*parts && ((raw->len && buf_append_char(raw, '\n') < 0) ||
			       buf_append_str(raw, parts) < 0))
			goto oom;
	}
	if (r < 0)
		return r;
	c->messages = messages > UINT32_MAX ? UINT32_MAX : (uint32_t)messages;
	c->unseen = unseen > UINT32_MAX ? UINT32_MAX : (uint32_t)unseen;
	c->is_group = *group;
	return 0;
oom:
	sqlite3_reset(st);
	return -ENOMEM;
}

/* Calls w->fn with the conversation of the current row (CONV_COLUMNS). */
static int emit(struct walk *w, sqlite3_stmt *st)
{
	_cleanup_buf_ struct buf parts = BUF_INIT(CONV_MAX_ADDRESSES * 4096);
	_cleanup_buf_ struct buf raw = BUF_INIT(CONV_MAX_ADDRESSES * 4096);
	_cleanup_free_ char *account = NULL, *cid = NULL, *folder = NULL, *peer = NULL,
			    *subject = NULL;
	int64_t account_id = sqlite3_column_int64(st, 13);
	bool group = sqlite3_column_int(st, 6) != 0;
	bool others = sqlite3_column_int(st, 14) != 0;
	struct cpmsync_conversation_info c;
	struct cpmsync_message_info last;
	int r;

	/* The row's text is copied: the queries below may run on the same
	 * connection while st is still positioned on it. */
	c = (struct cpmsync_conversation_info){
		.id = sqlite3_column_int64(st, 0),
		.folder_id = sqlite3_column_int64(st, 3),
		.is_group = group,
		.messages = column_u32(st, 9),
		.unseen = column_u32(st, 10),
		.last_activity = sqlite3_column_int64(st, 11),
		.last_message_id = sqlite3_column_int64(st, 12),
	};
	/* Its strings stay the row's: the queries below are other statements. */
	if (sqlite3_column_type(st, CONV_LAST_COLUMN) != SQLITE_NULL) {
		store_message_info_at(st, CONV_LAST_COLUMN, &last);
		c.last_message = &last;
	}
	account = strdup(text(st, 1));
	cid = strdup(text(st, 2));
	folder = strdup(text(st, 4));
	peer = strdup(text(st, 5));
	subject = strdup(text(st, 8));
	if (!account || !cid || !folder || !peer || !subject ||
	    buf_append_str(&raw, text(st, 7)) < 0)
		return -ENOMEM;
	if (others) {
		buf_reset(&raw);
		r = merge_rows(w->s, account_id, cid, &c, &group, &folder, &peer, &subject, &raw);
		if (r < 0)
			return r;
	}
	if (group)
		peer[0] = '\0';

	if (!w->own || w->own->account_id != account_id) {
		r = own_addresses(w->s, account_id, &w->own);
		if (r < 0)
			return r;
	}
	if (!raw.len) {
		if (!group) {
			r = buf_append_str(&raw, peer);
		} else {
			r = collect(w->s,
				    "SELECT DISTINCT m.sender FROM message m"
				    " JOIN folder f ON f.id = m.folder_id"
				    " WHERE f.account_id = ?1 AND f.conv IN (SELECT c.folder"
				    " FROM conversation c WHERE c.account_id = ?1"
				    " AND c.conversation_id = ?2) AND f.removed = 0"
				    " AND m.removed = 0 AND m.direction IS NOT 'sent'"
				    " AND m.type <> 'imdn' ORDER BY m.sender",
				    account_id, cid, &raw);
		}
		if (r < 0)
			return r;
	}
	/* The other parties only. */
	for (const char *p = raw.data; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		if (n && !own_has(w->own, p, n) && !in_list(parts.data, p, n)) {
			if ((parts.len && buf_append_char(&parts, '\n') < 0) ||
			    buf_append(&parts, p, n) < 0)
				return -ENOMEM;
		}
		p = nl ? nl + 1 : NULL;
	}
	c.account = account;
	c.conversation_id = cid;
	c.folder = folder;
	c.peer = peer;
	c.subject = subject;
	c.participants = parts.data ? parts.data : "";
	return w->fn(&c, w->userdata);
}

static int walk_rows(struct walk *w, sqlite3_stmt *st, bool *ret_found)
{
	int r;

	while ((r = store_step(w->s, st)) > 0) {
		*ret_found = true;
		r = emit(w, st);
		if (r != 0) {
			sqlite3_reset(st);
			return r;
		}
	}
	return r;
}

static int account_id(struct store *s, const char *account, int64_t *ret)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s, "SELECT id FROM account WHERE name = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_TRANSIENT);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "unknown account '%s'", account);
		return -CPMSYNC_E_NOT_FOUND;
	}
	*ret = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

/*
 * A read transaction around the statements of one listing, as in
 * store-read.c: they see one snapshot, and the WAL read lock is taken and
 * dropped once per call rather than once per statement (a page of
 * ListConversationMessages runs about limit + 5 statements; in autocommit
 * mode each one began and ended its own read transaction, fcntl() locks
 * included: about a fifth of the call's CPU in the daemon, perf, issue 11).
 * Only when the connection is not in a transaction already.
 */
static int read_begin(struct store *s, bool *own)
{
	*own = sqlite3_get_autocommit(store_db(s));
	return *own ? store_exec(s, "BEGIN") : 0;
}

/* Ends what read_begin() started, keeping the error message of r. */
static int read_end(struct store *s, bool own, int r)
{
	sqlite3 *db = store_db(s);
	int rc;

	if (!own || sqlite3_get_autocommit(db))
		return r;
	/* Nothing was written: COMMIT only ends the snapshot. */
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		if (r == 0)
			r = store_fail(s, rc);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	return r;
}

/*
 * The account's conversations, newest activity first: all of them (paged
 * false), or at most limit (0: no limit) from position offset.
 */
static int foreach_conversation(struct cpmsync_store *store, const char *account, bool paged,
				uint32_t offset, uint32_t limit, cpmsync_conversation_fn fn,
				void *userdata)
{
	struct store *s = store_call(store);
	struct walk w = { .s = s, .fn = fn, .userdata = userdata };
	sqlite3_stmt *st;
	bool found = false, own;
	int64_t acc;
	int r;

	if (!s || !account || !fn)
		return -EINVAL;
	r = read_begin(s, &own);
	if (r < 0)
		return r;
	r = account_id(s, account, &acc);
	/* A page's rows first (t in CONV_ROWS, from the conversation
	 * table alone): with LIMIT/OFFSET on the whole join, each
	 * conversation before the page had its last message and summary read
	 * too (5 ms of a page at offset 900 of 1,000).  The whole list in one
	 * pass (CONV_ALL). */
	if (r >= 0)
		r = store_prepare(s, paged ? CONV_ROWS("") : CONV_ALL, &st);
	if (r >= 0) {
		sqlite3_bind_int64(st, 1, acc);
		if (paged) {
			sqlite3_bind_int64(st, 2, limit ? (int64_t)limit : -1);
			sqlite3_bind_int64(st, 3, offset);
		}
		r = walk_rows(&w, st, &found);
	}
	return read_end(s, own, r);
}

int cpmsync_store_foreach_conversation(struct cpmsync_store *store, const char *account,
				       cpmsync_conversation_fn fn, void *userdata)
{
	return foreach_conversation(store, account, false, 0, 0, fn, userdata);
}

int cpmsync_store_foreach_conversation_page(struct cpmsync_store *store, const char *account,
					    uint32_t offset, uint32_t limit,
					    cpmsync_conversation_fn fn, void *userdata)
{
	return foreach_conversation(store, account, true, offset, limit, fn, userdata);
}

static int get_one(struct store *s, sqlite3_stmt *st, cpmsync_conversation_fn fn, void *userdata,
		   const char *what)
{
	struct walk w = { .s = s, .fn = fn, .userdata = userdata };
	int r;

	r = store_step(s, st);
	if (r > 0) {
		r = emit(&w, st);
		sqlite3_reset(st);
	} else if (r == 0) {
		store_set_error(s, "no conversation %s", what);
		r = -CPMSYNC_E_NOT_FOUND;
	}
	return r;
}

int cpmsync_store_get_conversation(struct cpmsync_store *store, const char *account,
				   const char *conversation_id, cpmsync_conversation_fn fn,
				   void *userdata)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	char what[160];
	int64_t acc;
	int r;

	if (!s || !account || !conversation_id || !fn)
		return -EINVAL;
	r = account_id(s, account, &acc);
	if (r < 0)
		return r;
	/* Every row (folder) of that Conversation-ID, as one. */
	r = store_prepare(s, CONV_ROWS(" AND c.conversation_id = ?4"), &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, acc);
	sqlite3_bind_int64(st, 2, -1);
	sqlite3_bind_int64(st, 3, 0);
	sqlite3_bind_text(st, 4, conversation_id, -1, SQLITE_TRANSIENT);
	snprintf(what, sizeof(what), "'%.100s' in account '%.40s'", conversation_id, account);
	return get_one(s, st, fn, userdata, what);
}

int cpmsync_store_get_conversation_by_id(struct cpmsync_store *store, int64_t id,
					 cpmsync_conversation_fn fn, void *userdata)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	char what[64];
	int r;

	if (!s || !fn)
		return -EINVAL;
	/* The conversation of the row's Conversation-ID (its other rows too). */
	r = store_prepare(s,
			  CONV_ROWS(" AND c.conversation_id = (SELECT x.conversation_id"
				    " FROM conversation x WHERE x.id = ?4)"),
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 2, -1);
	sqlite3_bind_int64(st, 3, 0);
	sqlite3_bind_int64(st, 4, id);
	{
		sqlite3_stmt *q;

		r = store_prepare(s, "SELECT account_id FROM conversation WHERE id = ?1", &q);
		if (r < 0)
			return r;
		sqlite3_bind_int64(q, 1, id);
		r = store_step(s, q);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, r > 0 ? sqlite3_column_int64(q, 0) : 0);
		sqlite3_reset(q);
	}
	snprintf(what, sizeof(what), "with id %lld", (long long)id);
	return get_one(s, st, fn, userdata, what);
}

struct page_key {
	int64_t date, id;
};

static int page_key_cmp(const void *a, const void *b)
{
	const struct page_key *x = a, *y = b;

	/* Newest first: (Date, Id) descending. */
	if (x->date != y->date)
		return x->date < y->date ? 1 : -1;
	return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;
}

/*
 * One page of the conversation cid's messages below the cursor
 * (before_date, before_id), newest first: each folder of the conversation
 * (of every conversation folder of that Conversation-ID, and their
 * session folders) gives its newest limit keys below the cursor from message_conv_page
 * (schema version 14: about limit index entries each, whatever the
 * conversation's size), they are merged, and the first limit are read.
 * The former single query read every object of the conversation's
 * folders and sorted them at every page.
 */
static int page(struct store *s, int64_t acc, const char *cid, int64_t before_id,
		int64_t before_date, uint32_t limit, cpmsync_message_fn fn, void *userdata)
{
	_cleanup_free_ int64_t *folders = NULL;
	_cleanup_free_ struct page_key *keys = NULL;
	size_t n_folders = 0, n_keys = 0, cap_keys = 0;
	sqlite3_stmt *st;
	int r;

	/* CROSS JOIN: the conversation's rows first (conversation_cid), then
	 * their folders (folder_conv).  With a plain JOIN the planner walked
	 * every folder of the account and looked each one's conversation up:
	 * 4.1 ms for the 1,202 folders of bench-cpm.sh 20000 CONVS=1000,
	 * 0.1 ms this way (sqlite3 .timer, EXPLAIN QUERY PLAN). */
	r = store_prepare(s,
			  "SELECT f.id FROM conversation c CROSS JOIN folder f"
			  " ON f.account_id = c.account_id AND f.conv = c.folder"
			  " WHERE c.account_id = ?1 AND c.conversation_id = ?2"
			  " AND f.removed = 0 ORDER BY f.id",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, acc);
	sqlite3_bind_text(st, 2, cid, -1, SQLITE_TRANSIENT);
	while ((r = store_step(s, st)) > 0) {
		int64_t *t = reallocarray(folders, n_folders + 1, sizeof(*folders));

		if (!t) {
			sqlite3_reset(st);
			return -ENOMEM;
		}
		folders = t;
		folders[n_folders++] = sqlite3_column_int64(st, 0);
	}
	if (r < 0)
		return r;

	for (size_t i = 0; i < n_folders; i++) {
		r = store_prepare(s,
				  "SELECT m.id, coalesce(m.date, 0) FROM message m"
				  " INDEXED BY message_conv_page WHERE m.folder_id = ?1"
				  " AND m.removed = 0 AND " PAGE_COUNTED " AND NOT " PAGE_DELETED
				  " AND coalesce(m.date, 0) <= ?2"
				  " AND (coalesce(m.date, 0) < ?2 OR m.id < ?3)"
				  " ORDER BY coalesce(m.date, 0) DESC, m.id DESC LIMIT ?4",
				  &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, folders[i]);
		sqlite3_bind_int64(st, 2, before_date);
		sqlite3_bind_int64(st, 3, before_id);
		sqlite3_bind_int64(st, 4, limit);
		while ((r = store_step(s, st)) > 0) {
			if (n_keys == cap_keys) {
				size_t cap = cap_keys ? 2 * cap_keys : 64;
				struct page_key *t = reallocarray(keys, cap, sizeof(*keys));

				if (!t) {
					sqlite3_reset(st);
					return -ENOMEM;
				}
				keys = t;
				cap_keys = cap;
			}
			keys[n_keys++] = (struct page_key){ .id = sqlite3_column_int64(st, 0),
							    .date = sqlite3_column_int64(st, 1) };
		}
		if (r < 0)
			return r;
	}
	if (n_folders > 1 && n_keys > 1) /* qsort(NULL, 0) is undefined (UBSan) */
		qsort(keys, n_keys, sizeof(*keys), page_key_cmp);
	if (n_keys > limit)
		n_keys = limit;

	r = store_prepare(s,
			  "SELECT " STORE_MESSAGE_COLUMNS " FROM message m" STORE_MESSAGE_JOINS
			  " WHERE m.id = ?1",
			  &st);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_keys; i++) {
		sqlite3_bind_int64(st, 1, keys[i].id);
		r = store_step(s, st);
		if (r < 0)
			return r;
		if (r == 0)
			continue; /* cannot be: same snapshot */
		r = store_message_from_row(st, fn, userdata);
		sqlite3_reset(st);
		if (r != 0)
			return r;
	}
	return 0;
}

/*
 * Where the message before_id stands in (Date, Id) order, for a page
 * below it.  A message of the conversation; or one the store still has
 * as removed (expunged or moved away here, not yet on the server: its row
 * stays until then), wherever it was, so that the page after a message
 * deleted meanwhile (on another device) goes on from where it was; or
 * one of the newest 4,096 of a conversation folder whose rows left the
 * store (conv_gone, schema version 31: across restarts, whoever removed
 * it).  A message the store does not know (any more): -EINVAL naming
 * before_id.
 */
static int cursor_date(struct store *s, int64_t acc, const char *cid, int64_t before_id,
		       int64_t *ret_date)
{
	sqlite3_stmt *st;
	bool removed, ours;
	int64_t date;
	int r;

	r = store_prepare(s,
			  "SELECT coalesce(m.date, 0), m.removed OR f.removed, " COUNTED
			  " AND EXISTS (SELECT 1 FROM conversation c WHERE c.account_id = ?2"
			  " AND c.conversation_id = ?3 AND c.folder = f.conv)"
			  " FROM message m JOIN folder f ON f.id = m.folder_id"
			  " WHERE m.id = ?1 AND f.account_id = ?2",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, before_id);
	sqlite3_bind_int64(st, 2, acc);
	sqlite3_bind_text(st, 3, cid, -1, SQLITE_TRANSIENT);
	r = store_step(s, st);
	if (r < 0)
		return r;
	/* Expunged: where it stood, if it is one of the newest gone
	 * (conv_gone, schema version 31). */
	if (r == 0) {
		r = store_prepare(s, "SELECT date FROM conv_gone WHERE id = ?1 AND account_id = ?2",
				  &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, before_id);
		sqlite3_bind_int64(st, 2, acc);
		r = store_step(s, st);
		if (r < 0)
			return r;
		if (r > 0) {
			*ret_date = sqlite3_column_int64(st, 0);
			sqlite3_reset(st);
			return 0;
		}
	}
	if (r == 0) {
		store_set_error(s,
				"before_id: message %lld is no longer in the store (expunged);"
				" list from the newest again (before_id 0)",
				(long long)before_id);
		return -EINVAL;
	}
	date = sqlite3_column_int64(st, 0);
	removed = sqlite3_column_int(st, 1) != 0;
	ours = sqlite3_column_int(st, 2) != 0;
	sqlite3_reset(st);
	if (!removed && !ours) {
		store_set_error(s, "before_id: message %lld is not one of conversation '%s'",
				(long long)before_id, cid);
		return -EINVAL;
	}
	*ret_date = date;
	return 0;
}

static int conversation_messages(struct store *s, const char *account, const char *conversation_id,
				 int64_t before_id, uint32_t limit, cpmsync_message_fn fn,
				 void *userdata)
{
	int64_t acc, before_date = INT64_MAX;
	sqlite3_stmt *st;
	int r;

	r = account_id(s, account, &acc);
	if (r < 0)
		return r;
	/* A conversation ListConversations lists. */
	r = store_prepare(s,
			  "SELECT 1 FROM conversation c WHERE c.account_id = ?1"
			  " AND c.conversation_id = ?2 AND " CONV_LISTED("c") " LIMIT 1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, acc);
	sqlite3_bind_text(st, 2, conversation_id, -1, SQLITE_TRANSIENT);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0) {
		store_set_error(s, "no conversation '%s' in account '%s'", conversation_id,
				account);
		return -CPMSYNC_E_NOT_FOUND;
	}
	sqlite3_reset(st);

	if (before_id) {
		r = cursor_date(s, acc, conversation_id, before_id, &before_date);
		if (r < 0)
			return r;
	}
	/* No cursor: one above every (Date, Id). */
	return page(s, acc, conversation_id, before_id ? before_id : INT64_MAX, before_date,
		    limit ? limit : UINT32_MAX, fn, userdata);
}

int cpmsync_store_foreach_conversation_message(struct cpmsync_store *store, const char *account,
					       const char *conversation_id, int64_t before_id,
					       uint32_t limit, cpmsync_message_fn fn,
					       void *userdata)
{
	struct store *s = store_call(store);
	bool own;
	int r;

	if (!s || !account || !conversation_id || !fn)
		return -EINVAL;
	r = read_begin(s, &own);
	if (r < 0)
		return r;
	r = conversation_messages(s, account, conversation_id, before_id, limit, fn, userdata);
	return read_end(s, own, r);
}

int cpmsync_store_folder_conversation_id(struct cpmsync_store *store, int64_t folder_id, char **ret)
{
	struct store *s = store_call(store);
	_cleanup_free_ char *v = NULL;
	sqlite3_stmt *st;
	int r;

	if (!s || !ret)
		return -EINVAL;
	r = store_prepare(s,
			  "SELECT c.conversation_id FROM folder f JOIN conversation c"
			  " ON c.account_id = f.account_id AND c.folder = f.conv WHERE f.id = ?1",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r > 0) {
		r = store_col_strdup(st, 0, &v);
		sqlite3_reset(st);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(v);
	return 0;
}

int cpmsync_store_set_cpm_root(struct cpmsync_store *store, const char *account, const char *root)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int64_t acc;
	int r;

	if (!s || !account || !root)
		return -EINVAL;
	if (store_is_readonly(s))
		return -EROFS;
	store_clear_error(s);
	r = store_begin(s);
	if (r < 0)
		return r;
	r = account_id(s, account, &acc);
	if (r >= 0)
		r = store_prepare(s, "UPDATE account SET cpm_root = ?2 WHERE id = ?1", &st);
	if (r >= 0) {
		sqlite3_bind_int64(st, 1, acc);
		sqlite3_bind_text(st, 2, root, -1, SQLITE_TRANSIENT);
		r = store_step_done(s, st);
	}
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	return store_commit(s);
}
