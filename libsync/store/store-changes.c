/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Change tracking for signals (cpmsync_store_watch): TEMP triggers on the
 * message, body and folder tables write one row per visible change into a
 * TEMP table of this connection.  Being a table of the same connection, it
 * takes part in the writer's transactions for free: a rolled-back batch
 * leaves nothing behind, a committed one leaves exactly its changes.  The
 * update hook notices the inserts, the commit hook tells the host.
 *
 * Changes are read only outside a transaction: the engine keeps batches
 * open across loop iterations, and rows of an open batch are not
 * committed yet.
 *
 * Other processes' changes (an app that links libcpmsync and writes the
 * store beside the daemon, cpmsync/ops.h): the daemon's TEMP triggers do
 * not see them.  So every read-write connection but the daemon's
 * (CPMSYNC_STORE_DAEMON) has twins of the triggers, which write the same
 * rows into the persistent foreign_change (schema version 40), in the
 * app's transaction: what it rolls back leaves nothing there either.
 * The daemon's watch takes them with its own when PRAGMA data_version
 * says another connection committed (take_foreign()), reading and
 * deleting them in one transaction.  A crash of the daemon after that
 * commit and before its signals loses their signals, as it loses those of
 * its own changes not yet signalled (its bus name goes with it: apps read
 * the store again); rows it had not taken are dropped when the next
 * daemon's watch begins (foreign_trim()).  No signal is ever given twice.
 * The daemon's own writes run no trigger more than before and write
 * nothing more: the twins are never installed on its connection.
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
#include "util/macro.h"

struct watch {
	cpmsync_store_notify_fn notify;
	void *userdata;
	bool recorded; /* inserts into cpm_change in the open transaction */
	/* STORE_FOREIGN_READ: PRAGMA data_version when foreign_change was
	 * last read (or emptied when the watch began); foreign_more: that
	 * read left rows behind (or failed), read again without a commit. */
	int64_t foreign_version;
	bool foreign_more;
	char account[128];
};

/*
 * A message changed (kind 2) records which of its fields did, as the bits
 * of enum cpmsync_change_field in fields (0 for the other kinds): the
 * columns of message a summary dict shows, its flags (message_state), its
 * summary's snippet, its annotations.
 */
#define CHANGED_MESSAGE_FIELDS                                                                     \
	"(CASE WHEN NEW.uid IS NOT OLD.uid THEN 2 ELSE 0 END"                                      \
	" | CASE WHEN NEW.has_body IS NOT OLD.has_body THEN 4 ELSE 0 END"                          \
	" | CASE WHEN NEW.status IS NOT OLD.status THEN 8 ELSE 0 END"                              \
	" | CASE WHEN NEW.type IS NOT OLD.type THEN 16 ELSE 0 END"                                 \
	" | CASE WHEN NEW.direction IS NOT OLD.direction THEN 32 ELSE 0 END"                       \
	" | CASE WHEN NEW.context IS NOT OLD.context THEN 64 ELSE 0 END"                           \
	" | CASE WHEN NEW.in_reply_to IS NOT OLD.in_reply_to THEN 128 ELSE 0 END"                  \
	" | CASE WHEN NEW.internaldate IS NOT OLD.internaldate THEN 1024 ELSE 0 END"               \
	" | CASE WHEN NEW.date IS NOT OLD.date THEN 2048 ELSE 0 END)"

/*
 * Conversations that may have left the list (read by
 * cpmsync_store_take_conversations_gone()): cpm_conv_gone notes the
 * Conversation-ID of every conversation row made, changed (its version;
 * not when it has a message before and after: listed all along),
 * deleted, or renamed (both of its Conversation-IDs); cpm_conv_listed
 * holds the Conversation-IDs that were listed when the notes were last
 * taken (or the watch began).  A conversation leaves the list when a note
 * names one of those and no row of it is listed now (STORE_CONV_LISTED):
 * so not a folder of IMDN reports only, which never was (a session
 * folder's row is a group's, is_group, yet has nothing to list), and a
 * group listed only for its session-info or group-state object does,
 * when only reports are left (its messages stay 0, its row stays).
 *
 * The triggers, named T_..., insert the changes into CH and the notes
 * into CG: the watch's (cpm_, temp.cpm_change and temp.cpm_conv_gone),
 * and those of an app's connection for the daemon (foreign_, into the
 * persistent foreign_change and foreign_conv_note, schema version 40:
 * unqualified, a TEMP trigger's INSERT finds them in main).  The same
 * rows either way, so that the daemon signals an app's change as it
 * signals its own.
 */
/* clang-format off */
#define CHANGE_TRIGGERS(T, CH, CG) \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_message_insert AFTER INSERT ON main.message" \
	" WHEN NEW.removed = 0 BEGIN" \
	"  INSERT INTO " CH " (kind, folder_id, message_id) VALUES (1, NEW.folder_id, NEW.id);" \
	" END;" \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_message_delete AFTER DELETE ON main.message" \
	" WHEN OLD.removed = 0 BEGIN" \
	"  INSERT INTO " CH " (kind, folder_id, message_id) VALUES (3, OLD.folder_id, OLD.id);" \
	" END;" \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_message_update AFTER UPDATE ON main.message BEGIN" \
	"  INSERT INTO " CH " (kind, folder_id, message_id)" \
	"   SELECT 3, OLD.folder_id, OLD.id WHERE OLD.removed = 0" \
	"   AND (NEW.removed <> 0 OR NEW.folder_id <> OLD.folder_id);" \
	"  INSERT INTO " CH " (kind, folder_id, message_id)" \
	"   SELECT 1, NEW.folder_id, NEW.id WHERE NEW.removed = 0" \
	"   AND (OLD.removed <> 0 OR NEW.folder_id <> OLD.folder_id);" \
	"  INSERT INTO " CH " (kind, fields, folder_id, message_id)" \
	"   SELECT 2, f, NEW.folder_id, NEW.id FROM (SELECT " CHANGED_MESSAGE_FIELDS " AS f)" \
	"   WHERE f <> 0 AND NEW.removed = 0 AND OLD.removed = 0" \
	"   AND NEW.folder_id = OLD.folder_id;" \
	/* Each of those fields shows in LastMessage: see cpm_message_flags. */ \
	"  INSERT INTO " CH " (kind, folder_id, message_id)" \
	"   SELECT 7, 0, c.id FROM (SELECT " CHANGED_MESSAGE_FIELDS " AS f)" \
	"   JOIN main.folder fo ON fo.id = NEW.folder_id" \
	"   JOIN main.conversation c ON c.account_id = fo.account_id AND c.folder = fo.conv" \
	"   WHERE f <> 0 AND NEW.removed = 0 AND OLD.removed = 0" \
	"   AND NEW.folder_id = OLD.folder_id AND fo.removed = 0 AND c.last_id = NEW.id;" \
	" END;" \
	/* Flags (message_state since schema version 23).  The last message \
	 * of a conversation row is its LastMessage, whose Flags show: a \
	 * change of them that leaves Unseen alone (\Flagged) moves no \
	 * version (conv_message_flags), yet changes the conversation.  So \
	 * do its other fields a summary shows (Uid, HasBody, Snippet ...: \
	 * cpm_message_update, cpm_summary_snippet), which move no version \
	 * either (a first summary made later, store_changes_note(), is of a \
	 * message not classified before: no row's last, and its \
	 * classification recomputes the row).  Three lookups by key; a row \
	 * store-message.c holds back is not read here (store.c's \
	 * authorize()): a message it made the last is new, and its \
	 * conversation changed anyway. */ \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_message_flags AFTER UPDATE OF flags" \
	" ON main.message_state WHEN NEW.flags IS NOT OLD.flags BEGIN" \
	"  INSERT INTO " CH " (kind, fields, folder_id, message_id)" \
	"   SELECT 2, 1, m.folder_id, m.id FROM main.message m WHERE m.id = NEW.id" \
	"   AND m.removed = 0;" \
	"  INSERT INTO " CH " (kind, folder_id, message_id)" \
	"   SELECT 7, 0, c.id FROM main.message m JOIN main.folder f ON f.id = m.folder_id" \
	"   JOIN main.conversation c ON c.account_id = f.account_id AND c.folder = f.conv" \
	"   WHERE m.id = NEW.id AND m.removed = 0 AND f.removed = 0 AND c.last_id = NEW.id;" \
	" END;" \
	/* The snippet written again (a body's CPM parse, \
	 * store_message_set_cpm()).  A message's first summary mostly comes \
	 * with the message (kind 1), so an insert is not watched: that would \
	 * be a second row for most new messages; one made later is noted by \
	 * store_message_set_cpm() (store_changes_note()). */ \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_summary_snippet AFTER UPDATE OF snippet" \
	" ON main.summary WHEN NEW.snippet IS NOT OLD.snippet BEGIN" \
	"  INSERT INTO " CH " (kind, fields, folder_id, message_id)" \
	"   SELECT 2, 256, m.folder_id, m.id FROM main.message m WHERE m.id = NEW.id" \
	"   AND m.removed = 0;" \
	"  INSERT INTO " CH " (kind, folder_id, message_id)" \
	"   SELECT 7, 0, c.id FROM main.message m JOIN main.folder f ON f.id = m.folder_id" \
	"   JOIN main.conversation c ON c.account_id = f.account_id AND c.folder = f.conv" \
	"   WHERE m.id = NEW.id AND m.removed = 0 AND f.removed = 0 AND c.last_id = NEW.id;" \
	" END;" \
	/* Conversations (store-conv.c): the row id goes in message_id. */ \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_conversation_insert AFTER INSERT ON " \
	"main.conversation" \
	" BEGIN" \
	"  INSERT INTO " CH " (kind, folder_id, message_id) VALUES (7, 0, NEW.id);" \
	"  INSERT OR IGNORE INTO " CG " (account_id, cid)" \
	"   VALUES (NEW.account_id, NEW.conversation_id);" \
	" END;" \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_conversation_update AFTER UPDATE ON " \
	"main.conversation" \
	" WHEN NEW.version IS NOT OLD.version BEGIN" \
	"  INSERT INTO " CH " (kind, folder_id, message_id) VALUES (7, 0, NEW.id);" \
	/* With a message before and after, it was listed and still is: no \
	 * note (most changes: a message to a chat that has some). */ \
	"  INSERT OR IGNORE INTO " CG " (account_id, cid)" \
	"   SELECT NEW.account_id, NEW.conversation_id" \
	"   WHERE OLD.messages = 0 OR NEW.messages = 0;" \
	" END;" \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_conversation_delete AFTER DELETE ON " \
	"main.conversation" \
	" BEGIN" \
	"  INSERT INTO " CH " (kind, folder_id, message_id) VALUES (8, 0, OLD.id);" \
	"  INSERT OR IGNORE INTO " CG " (account_id, cid)" \
	"   VALUES (OLD.account_id, OLD.conversation_id);" \
	/* A conversation is every row of its Conversation-ID (store-conv.c): \
	 * one of the rows left, or left by the row's new Conversation-ID, \
	 * says the conversation changed. */ \
	"  INSERT INTO " CH " (kind, folder_id, message_id)" \
	"   SELECT 7, 0, c.id FROM main.conversation c WHERE c.account_id = OLD.account_id" \
	"   AND c.conversation_id = OLD.conversation_id LIMIT 1;" \
	" END;" \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_conversation_cid AFTER UPDATE OF conversation_id" \
	" ON main.conversation WHEN NEW.conversation_id IS NOT OLD.conversation_id BEGIN" \
	"  INSERT OR IGNORE INTO " CG " (account_id, cid)" \
	"   VALUES (OLD.account_id, OLD.conversation_id);" \
	"  INSERT OR IGNORE INTO " CG " (account_id, cid)" \
	"   VALUES (NEW.account_id, NEW.conversation_id);" \
	"  INSERT INTO " CH " (kind, folder_id, message_id)" \
	"   SELECT 7, 0, c.id FROM main.conversation c WHERE c.account_id = OLD.account_id" \
	"   AND c.conversation_id = OLD.conversation_id LIMIT 1;" \
	/* Folder1.ConversationId of its folders follows. */ \
	"  INSERT INTO " CH " (kind, folder_id, message_id)" \
	"   SELECT 5, f.id, 0 FROM main.folder f WHERE f.account_id = NEW.account_id" \
	"   AND f.conv = NEW.folder AND f.removed = 0;" \
	" END;" \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_folder_insert AFTER INSERT ON main.folder" \
	" WHEN NEW.removed = 0 BEGIN" \
	"  INSERT INTO " CH " (kind, folder_id, message_id) VALUES (4, NEW.id, 0);" \
	" END;" \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_folder_delete AFTER DELETE ON main.folder" \
	" WHEN OLD.removed = 0 BEGIN" \
	"  INSERT INTO " CH " (kind, folder_id, message_id) VALUES (6, OLD.id, 0);" \
	" END;" \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_folder_update AFTER UPDATE ON main.folder BEGIN" \
	"  INSERT INTO " CH " (kind, folder_id, message_id)" \
	"   SELECT 6, OLD.id, 0 WHERE OLD.removed = 0 AND NEW.removed <> 0;" \
	"  INSERT INTO " CH " (kind, folder_id, message_id)" \
	"   SELECT 4, NEW.id, 0 WHERE OLD.removed <> 0 AND NEW.removed = 0;" \
	"  INSERT INTO " CH " (kind, folder_id, message_id)" \
	"   SELECT 5, NEW.id, 0 WHERE OLD.removed = 0 AND NEW.removed = 0" \
	"   AND (NEW.name IS NOT OLD.name OR NEW.uidvalidity IS NOT OLD.uidvalidity" \
	"   OR NEW.highestmodseq IS NOT OLD.highestmodseq OR NEW.uidnext IS NOT OLD.uidnext" \
	"   OR NEW.server_name IS NOT OLD.server_name);" \
	" END;" \
	/* Annotations (version 11): a change of what a reader sees (a local \
	 * set, the server's value refreshed by a sync) changes the message. */ \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_annotation_insert AFTER INSERT ON main.annotation" \
	" WHEN NEW.local IS NOT NULL BEGIN" \
	"  INSERT INTO " CH " (kind, fields, folder_id, message_id)" \
	"   SELECT 2, 512, m.folder_id, m.id FROM main.message m WHERE m.id = NEW.message_id" \
	"   AND m.removed = 0;" \
	" END;" \
	"CREATE TEMP TRIGGER IF NOT EXISTS " T "_annotation_update AFTER UPDATE ON main.annotation" \
	" WHEN coalesce(NEW.local, NEW.value, '') IS NOT coalesce(OLD.local, OLD.value, '') BEGIN" \
	"  INSERT INTO " CH " (kind, fields, folder_id, message_id)" \
	"   SELECT 2, 512, m.folder_id, m.id FROM main.message m WHERE m.id = NEW.message_id" \
	"   AND m.removed = 0;" \
	" END;"
/* clang-format on */

static const char watch_sql[] =
	"CREATE TEMP TABLE IF NOT EXISTS cpm_change ("
	" seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, fields INTEGER NOT NULL DEFAULT 0,"
	" folder_id INTEGER NOT NULL, message_id INTEGER NOT NULL);"
	"CREATE TEMP TABLE IF NOT EXISTS cpm_conv_gone ("
	" account_id INTEGER NOT NULL, cid TEXT NOT NULL, listed INTEGER,"
	" PRIMARY KEY (account_id, cid));"
	"CREATE TEMP TABLE IF NOT EXISTS cpm_conv_listed ("
	" account_id INTEGER NOT NULL, cid TEXT NOT NULL, PRIMARY KEY (account_id, "
	"cid));" CHANGE_TRIGGERS("cpm", "cpm_change", "cpm_conv_gone");

static const char foreign_sql[] = CHANGE_TRIGGERS("foreign", "foreign_change", "foreign_conv_note");

/* The numbers in the triggers above. */
_Static_assert(CPMSYNC_CHANGED_FLAGS == 1 && CPMSYNC_CHANGED_UID == 2 &&
		       CPMSYNC_CHANGED_HAS_BODY == 4 && CPMSYNC_CHANGED_STATUS == 8 &&
		       CPMSYNC_CHANGED_TYPE == 16 && CPMSYNC_CHANGED_DIRECTION == 32 &&
		       CPMSYNC_CHANGED_CONTEXT == 64 && CPMSYNC_CHANGED_IN_REPLY_TO == 128 &&
		       CPMSYNC_CHANGED_SNIPPET == 256 && CPMSYNC_CHANGED_ANNOTATIONS == 512 &&
		       CPMSYNC_CHANGED_INTERNAL_DATE == 1024 && CPMSYNC_CHANGED_DATE == 2048,
	       "cpm_change.fields");

static void update_hook(void *userdata, int op, const char *db, const char *table,
			sqlite3_int64 rowid)
{
	struct watch *w = userdata;

	(void)rowid;
	if (op == SQLITE_INSERT && streq(db, "temp") && streq(table, "cpm_change"))
		w->recorded = true;
}

static int commit_hook(void *userdata)
{
	struct watch *w = userdata;

	if (w->recorded) {
		w->recorded = false;
		if (w->notify)
			w->notify(w->userdata);
	}
	return 0; /* let the commit go on */
}

static void rollback_hook(void *userdata)
{
	struct watch *w = userdata;

	w->recorded = false;
}

static int data_version(struct store *s, int64_t *ret)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s, "PRAGMA data_version", &st);
	if (r < 0)
		return r;
	r = store_step(s, st);
	if (r < 0)
		return r;
	*ret = r > 0 ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return 0;
}

/* Whether other connections left rows for the daemon: 1, 0 or -errno. */
static int foreign_any(struct store *s)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s,
			  "SELECT EXISTS (SELECT 1 FROM main.foreign_change)"
			  " OR EXISTS (SELECT 1 FROM main.foreign_conv_note)",
			  &st);
	if (r < 0)
		return r;
	r = store_step(s, st);
	if (r < 0)
		return r;
	r = r > 0 && sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return r;
}

/* Drops every row other connections left, in a transaction of its own. */
static int foreign_delete(struct store *s)
{
	int r = store_begin(s);

	if (r < 0)
		return r;
	r = store_exec(s, "DELETE FROM main.foreign_change; DELETE FROM main.foreign_conv_note;");
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	return store_commit(s);
}

/*
 * The daemon's watch begins: what apps recorded before it is dropped.
 * Nobody listened then (D-Bus apps learn the store's state by reading
 * it), and without this the rows of an app that wrote while no daemon ran
 * would only grow.
 */
static int foreign_trim(struct store *s, struct watch *w)
{
	int r;

	r = foreign_delete(s);
	if (r < 0)
		return r;
	/* Our own commit does not move it. */
	return data_version(s, &w->foreign_version);
}

int store_changes_record_foreign(struct store *s)
{
	int r;

	if (store_is_readonly(s) || store_in_transaction(s))
		return -EINVAL;
	r = store_exec(s, "PRAGMA temp_store = MEMORY");
	if (r >= 0)
		r = store_exec(s, foreign_sql);
	if (r < 0)
		return r;
	*store_foreign_slot(s) = STORE_FOREIGN_RECORD;
	return 0;
}

int cpmsync_store_watch(struct cpmsync_store *store, cpmsync_store_notify_fn notify, void *userdata)
{
	struct store *s = store_call(store);
	void **slot;
	struct watch *w;
	int r;

	if (!s)
		return -EINVAL;
	if (store_is_readonly(s))
		return -EROFS;
	slot = store_watch_slot(s);
	w = *slot;
	if (!w) {
		r = store_exec(s, "PRAGMA temp_store = MEMORY");
		if (r >= 0)
			r = store_exec(s, watch_sql);
		/* What a list shows now may leave it later. */
		if (r >= 0)
			r = store_exec(
				s,
				"INSERT OR IGNORE INTO temp.cpm_conv_listed (account_id, cid)"
				" SELECT c.account_id, c.conversation_id FROM main.conversation c"
				" WHERE " STORE_CONV_LISTED("c"));
		if (r < 0)
			return r;
		w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		if (*store_foreign_slot(s) == STORE_FOREIGN_READ) {
			r = foreign_trim(s, w);
			if (r < 0) {
				free(w);
				return r;
			}
		}
		*slot = w;
		sqlite3_update_hook(store_db(s), update_hook, w);
		sqlite3_commit_hook(store_db(s), commit_hook, w);
		sqlite3_rollback_hook(store_db(s), rollback_hook, w);
	}
	w->notify = notify;
	w->userdata = userdata;
	return 0;
}

static int note_into(struct store *s, const char *sql, int64_t message_id, uint32_t fields)
{
	sqlite3_stmt *st;
	int r;

	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	sqlite3_bind_int64(st, 2, fields);
	return store_step_done(s, st);
}

int store_changes_note(struct store *s, int64_t message_id, uint32_t fields)
{
	int r = 0;

	if (*store_watch_slot(s))
		r = note_into(s,
			      "INSERT INTO temp.cpm_change (kind, fields, folder_id, message_id)"
			      " SELECT 2, ?2, folder_id, id FROM main.message WHERE id = ?1"
			      " AND removed = 0",
			      message_id, fields);
	if (r >= 0 && *store_foreign_slot(s) == STORE_FOREIGN_RECORD)
		r = note_into(
			s,
			"INSERT INTO main.foreign_change (kind, fields, folder_id, message_id)"
			" SELECT 2, ?2, folder_id, id FROM main.message WHERE id = ?1"
			" AND removed = 0",
			message_id, fields);
	return r;
}

/*
 * The notes taken: each noted Conversation-ID listed now or not
 * (STORE_CONV_LISTED, the rule of store-conv.c), those listed at the last
 * take and not now given, then cpm_conv_listed made what is listed now.
 */
static const char conv_gone_mark_sql[] =
	"UPDATE temp.cpm_conv_gone AS g SET listed = EXISTS (SELECT 1 FROM main.conversation c"
	" WHERE c.account_id = g.account_id AND c.conversation_id = g.cid"
	" AND " STORE_CONV_LISTED("c") ")";
static const char conv_gone_sql[] =
	"SELECT a.name, g.cid FROM temp.cpm_conv_gone g JOIN main.account a"
	" ON a.id = g.account_id WHERE g.listed = 0 AND EXISTS (SELECT 1"
	" FROM temp.cpm_conv_listed l WHERE l.account_id = g.account_id AND l.cid = g.cid)"
	" ORDER BY a.name, g.cid";
static const char conv_gone_done_sql[] =
	"DELETE FROM temp.cpm_conv_listed WHERE (account_id, cid) IN"
	" (SELECT account_id, cid FROM temp.cpm_conv_gone WHERE listed = 0);"
	"INSERT OR IGNORE INTO temp.cpm_conv_listed (account_id, cid)"
	" SELECT account_id, cid FROM temp.cpm_conv_gone WHERE listed = 1;"
	"DELETE FROM temp.cpm_conv_gone;";

int cpmsync_store_take_conversations_gone(struct cpmsync_store *store,
					  cpmsync_conversation_gone_fn fn, void *userdata)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r, n = 0;

	if (!s || !fn)
		return -EINVAL;
	if (!*store_watch_slot(s) || store_in_transaction(s))
		return 0;
	r = store_exec(s, conv_gone_mark_sql);
	if (r < 0)
		return r;
	r = store_prepare(s, conv_gone_sql, &st);
	if (r < 0)
		return r;
	while ((r = store_step(s, st)) > 0) {
		r = fn((const char *)sqlite3_column_text(st, 0),
		       (const char *)sqlite3_column_text(st, 1), userdata);
		if (r != 0) {
			sqlite3_reset(st);
			break;
		}
		n++;
	}
	if (r < 0)
		return r;
	r = store_exec(s, conv_gone_done_sql);
	return r < 0 ? r : n;
}

static size_t read_changes(struct store *s, sqlite3_stmt *st, struct cpmsync_change *ret,
			   int64_t *last, int *rc)
{
	size_t n = 0;
	int r;

	while ((r = store_step(s, st)) > 0) {
		*last = sqlite3_column_int64(st, 0);
		ret[n].kind = (enum cpmsync_change_kind)sqlite3_column_int(st, 1);
		ret[n].folder_id = sqlite3_column_int64(st, 2);
		ret[n].message_id = sqlite3_column_int64(st, 3);
		ret[n].fields = (uint32_t)sqlite3_column_int64(st, 4);
		n++;
	}
	*rc = r;
	return n;
}

/*
 * The daemon's take of what other connections recorded (foreign_change,
 * foreign_conv_note), up to max changes into ret; how many, or a negative
 * error.  Only when PRAGMA data_version says another connection committed
 * since the last take (or that one left rows): one read of the WAL index
 * otherwise, nothing of the daemon's own writes.  The rows read are
 * deleted in the transaction that read them, under the write lock: no
 * app adds a row between the read and the delete, and none is given
 * twice.  Its Conversation-ID notes join the watch's own
 * (temp.cpm_conv_gone), for the next
 * cpmsync_store_take_conversations_gone().
 */
static int take_foreign(struct store *s, struct watch *w, struct cpmsync_change *ret, size_t max)
{
	sqlite3_stmt *st;
	int64_t version, last = 0;
	size_t n;
	int r;

	r = data_version(s, &version);
	if (r < 0)
		return r;
	if (version == w->foreign_version && !w->foreign_more)
		return 0;
	w->foreign_more = true; /* until the rows are read */
	r = foreign_any(s);
	if (r < 0)
		return r;
	if (!r) {
		/* A commit that changed nothing a signal shows (the journal
		 * only, a preview): no write transaction for it. */
		w->foreign_version = version;
		w->foreign_more = false;
		return 0;
	}
	r = store_begin(s);
	if (r < 0)
		return r;
	r = store_prepare(s,
			  "SELECT seq, kind, folder_id, message_id, fields FROM main.foreign_change"
			  " ORDER BY seq LIMIT ?1",
			  &st);
	if (r < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)(max > INT32_MAX ? INT32_MAX : max));
	n = read_changes(s, st, ret, &last, &r);
	if (r < 0)
		goto fail;
	if (n) {
		r = store_prepare(s, "DELETE FROM main.foreign_change WHERE seq <= ?1", &st);
		if (r < 0)
			goto fail;
		sqlite3_bind_int64(st, 1, last);
		r = store_step_done(s, st);
		if (r < 0)
			goto fail;
	}
	r = store_exec(s, "INSERT OR IGNORE INTO temp.cpm_conv_gone (account_id, cid)"
			  " SELECT account_id, cid FROM main.foreign_conv_note;"
			  "DELETE FROM main.foreign_conv_note;");
	if (r < 0)
		goto fail;
	r = store_commit(s);
	if (r < 0)
		return r;
	w->foreign_version = version;
	w->foreign_more = n == max;
	return (int)n;
fail:
	store_rollback(s);
	return r;
}

int cpmsync_store_forget_changes(struct cpmsync_store *store)
{
	struct store *s = store_call(store);
	int r;

	if (!s)
		return -EINVAL;
	/* Another app's handle records them; a watching daemon takes them. */
	if (*store_foreign_slot(s) != STORE_FOREIGN_READ || *store_watch_slot(s) ||
	    store_in_transaction(s))
		return 0;
	r = foreign_any(s);
	if (r < 0)
		return r;
	return r ? foreign_delete(s) : 0;
}

int cpmsync_store_take_changes(struct cpmsync_store *store, struct cpmsync_change *ret, size_t max)
{
	struct store *s = store_call(store);
	struct watch *w;
	sqlite3_stmt *st;
	int64_t last = 0;
	size_t n = 0, own;
	int r;

	if (!s || !ret || max == 0)
		return -EINVAL;
	w = *store_watch_slot(s);
	if (!w || store_in_transaction(s))
		return 0;
	/*
	 * Others' changes first: those committed before the daemon's own
	 * recorded ones, as a rule.  The daemon's are taken within
	 * CPM_DRAIN_DELAY_MS of their commit, an app's when the daemon looks
	 * (every 2 s, or at a drain of its own), and the daemon acts on an
	 * app's change (sends its journal, which sets a new message's uid)
	 * after it saw it.  A failed take leaves the rows for the next
	 * (foreign_more); this one's own changes are given all the same.
	 */
	if (*store_foreign_slot(s) == STORE_FOREIGN_READ) {
		r = take_foreign(s, w, ret, max);
		if (r > 0)
			n = (size_t)r;
		if (n == max)
			return (int)n;
	}
	r = store_prepare(s,
			  "SELECT seq, kind, folder_id, message_id, fields FROM temp.cpm_change"
			  " ORDER BY seq LIMIT ?1",
			  &st);
	if (r < 0)
		return r;
	max -= n;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)(max > INT32_MAX ? INT32_MAX : max));
	own = read_changes(s, st, ret + n, &last, &r);
	if (r < 0)
		return n ? (int)n : r; /* the others' are taken: given */
	if (own == 0)
		return (int)n;
	r = store_prepare(s, "DELETE FROM temp.cpm_change WHERE seq <= ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, last);
	r = store_step(s, st);
	if (r < 0)
		return r;
	return (int)(n + own);
}

int store_content_stamp(struct store *s, uint64_t ret_stamp[2])
{
	sqlite3_stmt *st;
	int64_t version;
	int r;

	/* data_version: commits of other connections (not of this one);
	 * total_changes: every row this connection wrote, triggers included. */
	r = store_prepare(s, "PRAGMA data_version", &st);
	if (r < 0)
		return r;
	r = store_step(s, st);
	if (r < 0)
		return r;
	version = r > 0 ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	ret_stamp[0] = (uint64_t)version;
	ret_stamp[1] = (uint64_t)sqlite3_total_changes64(store_db(s));
	return sqlite3_get_autocommit(store_db(s)) ? 0 : 1;
}

int cpmsync_store_content_stamp(struct cpmsync_store *store, uint64_t ret_stamp[2])
{
	struct store *s = store_call(store);

	if (!s || !ret_stamp)
		return -EINVAL;
	return store_content_stamp(s, ret_stamp);
}

int cpmsync_store_yield_batch(struct cpmsync_store *store)
{
	struct store *s = store_call(store);

	if (!s)
		return -EINVAL;
	return store_yield_batch(s);
}

const char *cpmsync_store_folder_account(struct cpmsync_store *store, int64_t folder_id)
{
	struct store *s = store_call(store);
	struct watch *w;
	sqlite3_stmt *st;
	static char fallback[128];
	char *out;
	int r;

	if (!s)
		return NULL;
	w = *store_watch_slot(s);
	out = w ? w->account : fallback;
	r = store_prepare(s,
			  "SELECT a.name FROM folder f JOIN account a ON a.id = f.account_id"
			  " WHERE f.id = ?1",
			  &st);
	if (r < 0)
		return NULL;
	sqlite3_bind_int64(st, 1, folder_id);
	r = store_step(s, st);
	if (r <= 0)
		return NULL;
	snprintf(out, sizeof(w->account), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	return out;
}

int cpmsync_store_message_refused(struct cpmsync_store *store, int64_t message_id,
				  char **ret_reason)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !ret_reason)
		return -EINVAL;
	*ret_reason = NULL;
	/* A row that was never sent because the CREATE of its folder failed
	 * (store_journal_blocked(): code NULL, "depends on failed operation
	 * N (create-folder NAME)") carries that CREATE's own reason too: the
	 * server's text is what tells the user what to change. */
	r = store_prepare(s,
			  "SELECT (SELECT CASE WHEN j.code IS NULL THEN j.refused || coalesce("
			  "   (SELECT ': ' || CASE WHEN coalesce(c.code, '') = '' THEN c.refused"
			  "    ELSE '[' || c.code || '] ' || c.refused END FROM journal c"
			  "    WHERE c.folder_id = m.folder_id AND c.op = 'create_folder'"
			  "    AND c.failed = 1 AND c.code IS NOT NULL ORDER BY c.id LIMIT 1), '')"
			  "  WHEN j.code = '' THEN j.refused"
			  "  ELSE '[' || j.code || '] ' || j.refused END FROM journal j"
			  "  WHERE j.message_id = m.id AND j.op IN ('append', 'copy', 'move')"
			  "  AND j.failed = 1 ORDER BY j.id LIMIT 1)"
			  " FROM message m WHERE m.id = ?1 AND m.removed = 0",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	r = store_step(s, st);
	if (r < 0)
		return r;
	if (r == 0)
		return -CPMSYNC_E_NOT_FOUND;
	if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
		sqlite3_reset(st);
		return 0;
	}
	*ret_reason = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	return *ret_reason ? 1 : -ENOMEM;
}

int cpmsync_store_message_moved(struct cpmsync_store *store, int64_t message_id, int64_t *ret_id)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r;

	if (!s || !ret_id)
		return -EINVAL;
	*ret_id = 0;
	r = store_prepare(s, "SELECT to_id FROM message_moved WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	r = store_step(s, st);
	if (r <= 0)
		return r;
	*ret_id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 1;
}

int cpmsync_store_message_sent(struct cpmsync_store *store, int64_t message_id)
{
	struct store *s = store_call(store);
	sqlite3_stmt *st;
	int r;

	if (!s)
		return -EINVAL;
	r = store_prepare(s, "SELECT 1 FROM message_sent WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, message_id);
	r = store_step(s, st);
	if (r > 0)
		sqlite3_reset(st);
	return r;
}
