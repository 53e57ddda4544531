/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The schema, as numbered migrations.  Entry i (0-based) takes the
 * database from user_version i to i + 1; store_open() runs each one in its
 * own BEGIN IMMEDIATE transaction and sets user_version in it.
 *
 * Rules for new migrations:
 *  - Append; never edit a migration that has shipped.
 *  - Foreign keys are ON during migrations (the pragma is a no-op inside a
 *    transaction), so a table rebuild must keep every reference valid.
 *  - tests/unit/test-store.c checks that every older version migrates to
 *    a schema identical to a freshly created one.
 */
#include <sqlite3.h>
#include <stddef.h>

#include "store/store.h"
#include "util/macro.h"

/*
 * Version 1.
 *
 * Ids of accounts, folders and messages are AUTOINCREMENT so that a
 * deleted row's id is never handed out again: clients hold these ids
 * (message ids are the stable local ids of the contract).
 *
 * folder.name is UTF-8 with '/' between levels; delimiter is the
 * server's.  message.uid is NULL until the message exists on the server;
 * flags holds flags and keywords, space-separated and sorted.  Times
 * (internaldate, date, created) are Unix seconds.  journal.id gives the
 * order in which pending operations replay; its folder_id and message_id
 * are plain integers (no foreign key), because an operation may outlive
 * the rows it names (an expunge, a move).
 */
static const char migration_1[] =
	"CREATE TABLE account ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT UNIQUE NOT NULL"
	");"
	"CREATE TABLE folder ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
	" name TEXT NOT NULL,"
	" delimiter TEXT,"
	" uidvalidity INTEGER,"
	" uidnext INTEGER,"
	" highestmodseq INTEGER,"
	" special_use TEXT,"
	" subscribed INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (account_id, name)"
	");"
	"CREATE TABLE message ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" folder_id INTEGER NOT NULL REFERENCES folder(id) ON DELETE CASCADE,"
	" uid INTEGER,"
	" flags TEXT NOT NULL DEFAULT '',"
	" modseq INTEGER,"
	" internaldate INTEGER,"
	" size INTEGER,"
	" message_id TEXT,"
	" subject TEXT,"
	" from_addr TEXT,"
	" to_addrs TEXT,"
	" date INTEGER,"
	" conversation_id TEXT,"
	" contribution_id TEXT,"
	" imdn_message_id TEXT,"
	" type TEXT,"
	" bodystructure TEXT,"
	" UNIQUE (folder_id, uid)"
	");"
	"CREATE INDEX message_folder_message_id ON message (folder_id, message_id);"
	"CREATE TABLE body ("
	" message_id INTEGER PRIMARY KEY REFERENCES message(id) ON DELETE CASCADE,"
	" data BLOB"
	");"
	"CREATE TABLE journal ("
	" id INTEGER PRIMARY KEY,"
	" account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
	" op TEXT NOT NULL,"
	" folder_id INTEGER,"
	" message_id INTEGER,"
	" args TEXT,"
	" created INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER)),"
	" attempts INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX journal_account ON journal (account_id);";

/*
 * Version 2: what two-way sync needs.
 *
 * account.last_sync: Unix time of the last complete sync (0: never).
 *
 * folder.server_name: the folder's name on the server as last known
 *   (UTF-8, '/'), NULL while a local CREATE is still pending.  folder.name
 *   is the local name; the two differ while a local RENAME is pending.
 * folder.removed: 1 once deleted locally with the DELETE still pending;
 *   readers never see such a folder.
 * folder.body_limit: the largest body (bytes, -1 for all) kept when the
 *   folder's state was last committed; a larger sync_bodies later makes
 *   the next sync fetch the bodies it now wants.
 *
 * message.server_flags: the flags as last known on the server (the base of
 *   the three-way flag merge), NULL while the message is not on the server.
 *   message.flags is the local view; the two differ while a flag change is
 *   pending.
 * message.removed: 1 once expunged or moved away locally with the server
 *   side still pending; readers never see such a message.
 *
 * The journal, one row per pending operation, replayed in id order
 * (folder_id and message_id name local rows, args as below):
 *   append         folder_id, message_id (uid NULL, body stored)
 *   flags          folder_id, message_id: push flags vs server_flags
 *   copy, move     folder_id = destination, message_id = the new local
 *                  row there; args "src=<source message id>"
 *   expunge        folder_id, message_id (removed = 1)
 *   create_folder  folder_id
 *   rename_folder  folder_id; args = the new name (informative: the
 *                  engine renames server_name to the current name)
 *   delete_folder  folder_id (removed = 1)
 *   set_metadata   folder_id (NULL: server entry); args
 *                  "<entry>\n<value>" (empty value: remove the entry)
 *   set_acl        folder_id; args "<identifier>\n<rights>" (empty
 *                  rights: DELETEACL)  -- version 3
 *   set_annotation folder_id, message_id: push the message's pending
 *                  annotation values (annotation.local)  -- version 11;
 *                  once refused, args "\n<shared> <entry>\n..." the
 *                  entries it holds, its own to send again (no schema
 *                  change; store-annotation.c)
 * attempts counts replays that may have reached the server; args_sent
 * records what the engine needs to verify such an attempt after a crash
 * (the destination's UIDNEXT before an APPEND/COPY/MOVE was sent).
 */
static const char migration_2[] =
	"ALTER TABLE account ADD COLUMN last_sync INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE folder ADD COLUMN server_name TEXT;"
	"ALTER TABLE folder ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE folder ADD COLUMN body_limit INTEGER;"
	"UPDATE folder SET server_name = name;"
	"ALTER TABLE message ADD COLUMN server_flags TEXT;"
	"ALTER TABLE message ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;"
	"UPDATE message SET server_flags = flags WHERE uid IS NOT NULL;"
	"ALTER TABLE journal ADD COLUMN args_sent TEXT;"
	"CREATE INDEX journal_folder ON journal (folder_id);"
	"CREATE INDEX journal_message ON journal (message_id);"
	/* ListMessages pages by id within a folder. */
	"CREATE INDEX message_folder_id ON message (folder_id, id);";

/*
 * Version 3: journal.refused: the server's text when it refused the
 * operation (tagged NO); the row stays queued, and the outbox (or a user)
 * can take a refused APPEND back (cpmsync_op_discard).  Cleared by the
 * next attempt.
 */
static const char migration_3[] = "ALTER TABLE journal ADD COLUMN refused TEXT;";

/*
 * Version 4: bodies in their own database (store-body.c explains why and
 * how the two commit).  store.c copies the body table into it before this
 * runs (STORE_VERSION_BODIES).
 *
 * message.has_body: 1 when the bodies database holds the message's body
 *   (set in the transaction after whose body commit it commits).
 * body_trash: ids whose body is to be deleted from the bodies database,
 *   filled by the triggers below in the transaction that dropped the row
 *   or its body, emptied once the bodies are gone.
 * summary: the long text of a message that never changes (subject, From,
 *   To, BODYSTRUCTURE), out of the message row so that a change of flags or
 *   uid rewrites one small record (store-message.c); no row when none of
 *   it is known.
 * The database's pages go from 64 KiB to STORE_PAGE_SIZE (store.c repage(),
 *   after this migration).
 */
static const char migration_4[] =
	"ALTER TABLE message ADD COLUMN has_body INTEGER NOT NULL DEFAULT 0;"
	"UPDATE message SET has_body = 1 WHERE id IN (SELECT message_id FROM body);"
	"DROP TABLE body;"
	"CREATE TABLE body_trash (message_id INTEGER PRIMARY KEY);"
	"CREATE TABLE summary ("
	" id INTEGER PRIMARY KEY REFERENCES message(id) ON DELETE CASCADE,"
	" subject TEXT,"
	" from_addr TEXT,"
	" to_addrs TEXT,"
	" bodystructure TEXT"
	");"
	"INSERT INTO summary (id, subject, from_addr, to_addrs, bodystructure)"
	" SELECT id, subject, from_addr, to_addrs, bodystructure FROM message"
	" WHERE coalesce(subject, from_addr, to_addrs, bodystructure) IS NOT NULL;"
	"ALTER TABLE message DROP COLUMN subject;"
	"ALTER TABLE message DROP COLUMN from_addr;"
	"ALTER TABLE message DROP COLUMN to_addrs;"
	"ALTER TABLE message DROP COLUMN bodystructure;"
	"CREATE TRIGGER message_body_gone AFTER DELETE ON message WHEN OLD.has_body BEGIN"
	" INSERT OR IGNORE INTO body_trash (message_id) VALUES (OLD.id);"
	" END;"
	"CREATE TRIGGER message_body_dropped AFTER UPDATE OF has_body ON message"
	" WHEN OLD.has_body AND NOT NEW.has_body BEGIN"
	" INSERT OR IGNORE INTO body_trash (message_id) VALUES (OLD.id);"
	" END;";

/*
 * Version 5: failed operations (contract README "Failed operations").
 *
 * journal.refused (version 3) keeps the server's text of the last refusal;
 * journal.code its response code ("" for none, a BAD without one included).
 * journal.tries: refusals so far; journal.tried: Unix time of the last.
 * journal.retry_after: a refusal that may pass (a transient code) keeps
 *   the row queued but not replayed before this time (back-off).
 * journal.failed: 1 once the refusal cannot pass (a permanent code, or
 *   STORE_JOURNAL_TRIES tries): replay skips the row, nothing else waits
 *   for it; its local effect stays until retried (failed = 0 again) or
 *   discarded (store-ops.c).
 */
static const char migration_5[] =
	"ALTER TABLE journal ADD COLUMN code TEXT;"
	"ALTER TABLE journal ADD COLUMN tries INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE journal ADD COLUMN tried INTEGER;"
	"ALTER TABLE journal ADD COLUMN retry_after INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE journal ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;"
	"UPDATE journal SET tries = 1 WHERE refused IS NOT NULL;"
	"CREATE INDEX journal_failed ON journal (account_id, failed);";

/*
 * Version 6: the CPM object model (contract v2 "CPM objects and
 * conversations"; store-conv.c reads it).
 *
 * account.cpm_root: the CPM folder model's root ("Default"; "" = top
 *   level), set by cpmsync_store_set_cpm_root().
 * folder.conv: the name of the conversation folder this folder belongs to:
 *   itself for <root>/<X> (a conversation history folder, or a 1-to-1
 *   peer's <root>/tel:+...), its parent for <root>/<X>/<Y> (a session
 *   history folder); NULL for every other folder (INBOX never is one).
 *   Kept by the triggers below from the name and the root.
 * message.direction, context, in_reply_to, peer (the other party's
 *   address), sender (From's address), imdn_ref (an IMDN report: the
 *   original's IMDN-Message-ID), status (a message: the strongest
 *   disposition reported for it, "" if none; an IMDN report: the
 *   disposition it reports).  summary.snippet, participants ('\n'-separated).
 * conversation: one row per conversation folder holding visible objects,
 *   kept incrementally by triggers as objects arrive, change flags, move,
 *   go, and as folders come, get renamed or go:
 *     messages, unseen, last_date, last_id: over the objects a person reads
 *       (message, file-transfer, media); last_* of the newest in (Date, Id)
 *     conversation_id: the first object's Conversation-ID (cid_header 1;
 *       an IMDN report's names none since version 37),
 *       else the folder's last name component
 *     is_group: a session history folder or a group-state object exists
 *     peer: the newest counted object's peer
 *     subject, participants: the newest session-info (subject) and
 *       session-info/group-state (participants) objects that have them
 *     version: bumped by every change (the watch reports the row changed)
 *   Arrivals and flag changes are O(1) updates; a removal, move, rename or
 *   a session-info/group-state arrival recomputes that one conversation.
 * IMDN: a report raises the Status of the originals it names (same
 *   account, precedence displayed 3 > delivered 2 > failed/forbidden/error
 *   1 > "" 0), and an original arriving after its reports takes the
 *   strongest of them at once.  Status never goes down.
 * Existing messages keep what the version-5 parser gave them ("message",
 *   no direction, no snippet); "session-history" becomes "session-info".
 */
/* clang-format off */
#define CPM_ROOT_OF(acc) "(SELECT cpm_root FROM account WHERE id = " acc ")"
#define CPM_REST(n, r)                                                                             \
	"(CASE WHEN " r " = '' THEN " n " WHEN substr(" n ", 1, length(" r ") + 1) = " r           \
	" || '/' THEN substr(" n ", length(" r ") + 2) END)"
#define CPM_CONV(n, r)                                                                             \
	"(CASE WHEN upper(" n ") = 'INBOX' OR coalesce(" CPM_REST(n, r) ", '') = '' THEN NULL"     \
	" WHEN instr(" CPM_REST(n, r) ", '/') = 0 THEN " n                                         \
	" WHEN substr(" CPM_REST(n, r) ", instr(" CPM_REST(n, r) ", '/') + 1) <> ''"               \
	" AND instr(substr(" CPM_REST(n, r) ", instr(" CPM_REST(n, r) ", '/') + 1), '/') = 0"      \
	" THEN substr(" n ", 1, length(" n ") - length(" CPM_REST(n, r) ")"                        \
	" + instr(" CPM_REST(n, r) ", '/') - 1) END)"
#define CPM_LAST(c) "substr(" c ", length(rtrim(" c ", replace(" c ", '/', ''))) + 1)"
/* No IN (...) lists in trigger bodies: SQLite 3.40 builds an ephemeral
 * table for each one at every firing, which made an arrival ~50 times
 * slower than the row's own INSERT; ORed comparisons cost nothing. */
#define CPM_COUNTED(m) "(" m ".type = 'message' OR " m ".type = 'file-transfer' OR " m ".type = 'media')"
#define CPM_STATE(m) "(" m ".type = 'session-info' OR " m ".type = 'group-state')"
#define CPM_UNSEEN_FLAGS(x) "(instr(' ' || " x " || ' ', ' \\Seen ') = 0)"
#define CPM_UNSEEN(m) CPM_UNSEEN_FLAGS(m ".flags")
/* The recompute's tests for a group-state and a session-info object
 * (version 24 spells them so that message_conv_state serves them). */
#define CPM_IS_GROUP_STATE(m) m ".type = 'group-state'"
#define CPM_IS_SESSION_INFO(m) m ".type = 'session-info'"
#define CPM_RANK(x)                                                                                \
	"(CASE " x " WHEN 'displayed' THEN 3 WHEN 'delivered' THEN 2 WHEN 'failed' THEN 1"         \
	" WHEN 'forbidden' THEN 1 WHEN 'error' THEN 1 ELSE 0 END)"
#define CPM_CONV_OF(fid)                                                                           \
	"(SELECT c.id FROM folder f JOIN conversation c ON c.account_id = f.account_id"            \
	" AND c.folder = f.conv WHERE f.id = " fid ")"
/* Is the folder of row m in the same account as folder fid?  (Correlated,
 * so it runs only for rows the index found, not as a list of every
 * folder of the account at every firing.) */
#define CPM_SAME_ACCOUNT(m, fid)                                                                   \
	"EXISTS (SELECT 1 FROM folder fa WHERE fa.id = " m ".folder_id AND fa.account_id ="        \
	" (SELECT account_id FROM folder WHERE id = " fid "))"
/* The visible objects of the conversation row being updated. */
#define CPM_M                                                                                      \
	" FROM message m JOIN folder f ON f.id = m.folder_id"                                      \
	" WHERE f.account_id = conversation.account_id AND f.conv = conversation.folder"           \
	" AND m.removed = 0 AND f.removed = 0"
#define CPM_M_SM                                                                                   \
	" FROM message m JOIN folder f ON f.id = m.folder_id JOIN summary sm ON sm.id = m.id"      \
	" WHERE f.account_id = conversation.account_id AND f.conv = conversation.folder"           \
	" AND m.removed = 0 AND f.removed = 0"
#define CPM_NEWEST " ORDER BY coalesce(m.date, 0) DESC, m.id DESC LIMIT 1"
/* More of the WHERE of the objects whose Conversation-ID names their
 * conversation: every object's until version 37, which leaves IMDN
 * reports out. */
#define CPM_NAMES_CONV(m) ""
/* Every derived column of the conversation rows matching where, from
 * scratch; then the rows left without a visible object go. */
#define CPM_RECOMPUTE(where) CPM_RECOMPUTE_SET(where) CPM_RECOMPUTE_DROP(where)
#define CPM_RECOMPUTE_SET(where)                                                                   \
	"UPDATE conversation SET"                                                                  \
	" messages = (SELECT count(*)" CPM_M " AND " CPM_COUNTED("m") "),"                         \
	" unseen = (SELECT count(*)" CPM_M " AND " CPM_COUNTED("m") " AND " CPM_UNSEEN("m") "),"   \
	" last_date = coalesce((SELECT coalesce(m.date, 0)" CPM_M                                  \
	" AND " CPM_COUNTED("m") CPM_NEWEST "), 0),"                                               \
	" last_id = coalesce((SELECT m.id" CPM_M " AND " CPM_COUNTED("m") CPM_NEWEST "), 0),"      \
	" is_group = EXISTS (SELECT 1 FROM folder f WHERE f.account_id = conversation.account_id"  \
	" AND f.conv = conversation.folder AND f.removed = 0 AND f.name <> f.conv)"                \
	" OR EXISTS (SELECT 1" CPM_M " AND " CPM_IS_GROUP_STATE("m") "),"                          \
	" peer = coalesce((SELECT m.peer" CPM_M " AND " CPM_COUNTED("m")                           \
	" AND coalesce(m.peer, '') <> ''" CPM_NEWEST "), ''),"                                     \
	" subject = coalesce((SELECT sm.subject" CPM_M_SM " AND " CPM_IS_SESSION_INFO("m")         \
	" AND coalesce(sm.subject, '') <> ''" CPM_NEWEST "), ''),"                                 \
	" participants = coalesce((SELECT sm.participants" CPM_M_SM                                \
	" AND " CPM_STATE("m") " AND coalesce(sm.participants, '') <> ''"                          \
	CPM_NEWEST "), ''),"                                                                       \
	" cid_header = EXISTS (SELECT 1" CPM_M " AND coalesce(m.conversation_id, '') <> ''"        \
	CPM_NAMES_CONV("m") "),"                                                                   \
	" conversation_id = coalesce((SELECT m.conversation_id" CPM_M                              \
	" AND coalesce(m.conversation_id, '') <> ''" CPM_NAMES_CONV("m") " ORDER BY m.id LIMIT 1), " \
	CPM_LAST("conversation.folder") "),"                                                       \
	" version = version + 1"                                                                   \
	" WHERE " where ";"
#define CPM_RECOMPUTE_DROP(where)                                                                  \
	"DELETE FROM conversation WHERE " where " AND NOT EXISTS (SELECT 1" CPM_M ");"
/* A conversation row for the folder fid's conversation folder, if any. */
#define CPM_ENSURE(fid)                                                                            \
	"INSERT OR IGNORE INTO conversation (account_id, folder, conversation_id)"                 \
	" SELECT f.account_id, f.conv, " CPM_LAST("f.conv") " FROM folder f"                       \
	" WHERE f.id = " fid " AND f.conv IS NOT NULL AND f.removed = 0;"

/*
 * The triggers that keep conversations when folders come, go and are
 * renamed, and when an account's CPM root changes: a new folder may be a
 * session folder (group); a rename moves its objects between
 * conversations; a removal takes them away; another root makes every
 * folder and conversation of the account anew.  Version 23 creates them
 * again with that version's CPM_UNSEEN (they expand it where they are
 * used).
 */
#define CPM_FOLDER_TRIGGERS                                                                        \
	"CREATE TRIGGER conv_folder_insert AFTER INSERT ON folder BEGIN"                           \
	" UPDATE folder SET conv = " CPM_CONV("NEW.name", CPM_ROOT_OF("NEW.account_id"))           \
	"  WHERE id = NEW.id;"                                                                     \
	CPM_RECOMPUTE("id = " CPM_CONV_OF("NEW.id"))                                               \
	" END;"                                                                                    \
	"CREATE TRIGGER conv_folder_rename AFTER UPDATE OF name ON folder"                         \
	" WHEN NEW.name IS NOT OLD.name BEGIN"                                                     \
	" UPDATE folder SET conv = " CPM_CONV("NEW.name", CPM_ROOT_OF("NEW.account_id"))           \
	"  WHERE id = NEW.id;"                                                                     \
	" INSERT OR IGNORE INTO conversation (account_id, folder, conversation_id)"                \
	"  SELECT f.account_id, f.conv, " CPM_LAST("f.conv") " FROM folder f"                      \
	"  WHERE f.id = NEW.id AND f.conv IS NOT NULL AND f.removed = 0"                           \
	"  AND EXISTS (SELECT 1 FROM message m WHERE m.folder_id = f.id AND m.removed = 0);"       \
	CPM_RECOMPUTE("account_id = NEW.account_id AND (folder = OLD.conv"                         \
		      " OR folder = (SELECT conv FROM folder WHERE id = NEW.id))")                 \
	" END;"                                                                                    \
	"CREATE TRIGGER conv_folder_removed AFTER UPDATE OF removed ON folder"                     \
	" WHEN NEW.removed IS NOT OLD.removed BEGIN "                                              \
	" INSERT OR IGNORE INTO conversation (account_id, folder, conversation_id)"                \
	"  SELECT f.account_id, f.conv, " CPM_LAST("f.conv") " FROM folder f"                      \
	"  WHERE f.id = NEW.id AND f.conv IS NOT NULL AND f.removed = 0"                           \
	"  AND EXISTS (SELECT 1 FROM message m WHERE m.folder_id = f.id AND m.removed = 0);"       \
	CPM_RECOMPUTE("account_id = NEW.account_id AND folder = NEW.conv")                         \
	" END;"                                                                                    \
	"CREATE TRIGGER conv_folder_delete AFTER DELETE ON folder WHEN OLD.conv IS NOT NULL BEGIN " \
	CPM_RECOMPUTE("account_id = OLD.account_id AND folder = OLD.conv")                         \
	" END;"                                                                                    \
	"CREATE TRIGGER conv_account_root AFTER UPDATE OF cpm_root ON account"                     \
	" WHEN NEW.cpm_root IS NOT OLD.cpm_root BEGIN"                                             \
	" UPDATE folder SET conv = " CPM_CONV("name", "NEW.cpm_root") " WHERE account_id = NEW.id;" \
	" DELETE FROM conversation WHERE account_id = NEW.id;"                                     \
	" INSERT OR IGNORE INTO conversation (account_id, folder, conversation_id)"                \
	"  SELECT DISTINCT f.account_id, f.conv, '' FROM message m JOIN folder f ON f.id = m.folder_id" \
	"  WHERE f.account_id = NEW.id AND f.conv IS NOT NULL AND m.removed = 0 AND f.removed = 0;" \
	CPM_RECOMPUTE("account_id = NEW.id")                                                       \
	" END;"

static const char migration_6[] =
	"ALTER TABLE account ADD COLUMN cpm_root TEXT NOT NULL DEFAULT 'Default';"
	"ALTER TABLE folder ADD COLUMN conv TEXT;"
	"ALTER TABLE message ADD COLUMN direction TEXT;"
	"ALTER TABLE message ADD COLUMN context TEXT;"
	"ALTER TABLE message ADD COLUMN in_reply_to TEXT;"
	"ALTER TABLE message ADD COLUMN peer TEXT;"
	"ALTER TABLE message ADD COLUMN sender TEXT;"
	"ALTER TABLE message ADD COLUMN imdn_ref TEXT;"
	"ALTER TABLE message ADD COLUMN status TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE summary ADD COLUMN snippet TEXT;"
	"ALTER TABLE summary ADD COLUMN participants TEXT;"
	"UPDATE message SET type = 'session-info' WHERE type = 'session-history';"
	"CREATE INDEX message_imdn ON message (imdn_message_id);"
	"CREATE INDEX message_imdn_ref ON message (imdn_ref);"
	"CREATE INDEX folder_conv ON folder (account_id, conv);"
	/* The account's own addresses (store-conv.c). */
	"CREATE INDEX message_sent_sender ON message (sender) WHERE direction = 'sent';"
	"CREATE TABLE conversation ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
	" folder TEXT NOT NULL,"
	" conversation_id TEXT NOT NULL,"
	" cid_header INTEGER NOT NULL DEFAULT 0,"
	" is_group INTEGER NOT NULL DEFAULT 0,"
	" peer TEXT NOT NULL DEFAULT '',"
	" subject TEXT NOT NULL DEFAULT '',"
	" participants TEXT NOT NULL DEFAULT '',"
	" messages INTEGER NOT NULL DEFAULT 0,"
	" unseen INTEGER NOT NULL DEFAULT 0,"
	" last_date INTEGER NOT NULL DEFAULT 0,"
	" last_id INTEGER NOT NULL DEFAULT 0,"
	" version INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (account_id, folder)"
	");"
	"CREATE INDEX conversation_cid ON conversation (account_id, conversation_id);"
	"CREATE INDEX conversation_last ON conversation (account_id, last_date, last_id);"
	/* Today's folders and objects. */
	"UPDATE folder SET conv = " CPM_CONV("name", CPM_ROOT_OF("folder.account_id")) ";"
	"INSERT OR IGNORE INTO conversation (account_id, folder, conversation_id)"
	" SELECT DISTINCT f.account_id, f.conv, '' FROM message m JOIN folder f ON f.id = m.folder_id"
	" WHERE f.conv IS NOT NULL AND m.removed = 0 AND f.removed = 0;"
	CPM_RECOMPUTE("1")
	/* An object arrives. */
	"CREATE TRIGGER conv_message_insert AFTER INSERT ON message WHEN NEW.removed = 0"
	" AND (SELECT conv FROM folder WHERE id = NEW.folder_id) IS NOT NULL BEGIN "
	CPM_ENSURE("NEW.folder_id")
	" UPDATE conversation SET"
	"  messages = messages + " CPM_COUNTED("NEW") ","
	"  unseen = unseen + (" CPM_COUNTED("NEW") " AND " CPM_UNSEEN("NEW") "),"
	"  last_id = CASE WHEN " CPM_COUNTED("NEW") " AND (coalesce(NEW.date, 0) > last_date"
	"   OR (coalesce(NEW.date, 0) = last_date AND NEW.id > last_id)) THEN NEW.id ELSE last_id END,"
	"  last_date = CASE WHEN " CPM_COUNTED("NEW") " AND (coalesce(NEW.date, 0) > last_date"
	"   OR (coalesce(NEW.date, 0) = last_date AND NEW.id > last_id))"
	"   THEN coalesce(NEW.date, 0) ELSE last_date END,"
	"  peer = CASE WHEN " CPM_COUNTED("NEW") " AND coalesce(NEW.peer, '') <> ''"
	"   AND (peer = '' OR coalesce(NEW.date, 0) > last_date"
	"   OR (coalesce(NEW.date, 0) = last_date AND NEW.id > last_id)) THEN NEW.peer ELSE peer END,"
	"  is_group = is_group OR NEW.type = 'group-state'"
	"   OR (SELECT f.name <> f.conv FROM folder f WHERE f.id = NEW.folder_id),"
	"  conversation_id = CASE WHEN cid_header = 0 AND coalesce(NEW.conversation_id, '') <> ''"
	"   THEN NEW.conversation_id ELSE conversation_id END,"
	"  cid_header = cid_header OR coalesce(NEW.conversation_id, '') <> '',"
	"  version = version + 1"
	"  WHERE id = " CPM_CONV_OF("NEW.folder_id") ";"
	" END;"
	/* A report raises the originals it names (its own trigger: the WHEN
	 * spares every other arrival the statement). */
	"CREATE TRIGGER conv_imdn_report AFTER INSERT ON message"
	" WHEN NEW.removed = 0 AND NEW.type = 'imdn' AND coalesce(NEW.imdn_ref, '') <> '' BEGIN"
	" UPDATE message SET status = NEW.status"
	"  WHERE imdn_message_id = NEW.imdn_ref AND type <> 'imdn' AND removed = 0"
	"  AND " CPM_RANK("NEW.status") " > " CPM_RANK("status")
	"  AND " CPM_SAME_ACCOUNT("message", "NEW.folder_id") ";"
	" END;"
	/* An original after its reports takes the strongest. */
	"CREATE TRIGGER conv_imdn_original AFTER INSERT ON message"
	" WHEN NEW.removed = 0 AND NEW.type <> 'imdn' AND coalesce(NEW.imdn_message_id, '') <> ''"
	" BEGIN"
	" UPDATE message SET status = (SELECT r.status FROM message r"
	"  WHERE r.imdn_ref = NEW.imdn_message_id AND r.type = 'imdn' AND r.removed = 0"
	"  AND " CPM_RANK("r.status") " > 0 AND " CPM_SAME_ACCOUNT("r", "NEW.folder_id")
	"  ORDER BY " CPM_RANK("r.status") " DESC LIMIT 1)"
	"  WHERE id = NEW.id"
	"  AND EXISTS (SELECT 1 FROM message r WHERE r.imdn_ref = NEW.imdn_message_id"
	"  AND r.type = 'imdn' AND r.removed = 0 AND " CPM_RANK("r.status") " > 0"
	"  AND " CPM_SAME_ACCOUNT("r", "NEW.folder_id") ");"
	" END;"
	/* Its summary (subject, participants) comes just after it. */
	"CREATE TRIGGER conv_summary_insert AFTER INSERT ON summary"
	" WHEN EXISTS (SELECT 1 FROM message m WHERE m.id = NEW.id AND " CPM_STATE("m") ") BEGIN "
	CPM_RECOMPUTE("id = " CPM_CONV_OF("(SELECT folder_id FROM message WHERE id = NEW.id)"))
	" END;"
	/* A status change shows in the conversation (its LastMessage). */
	"CREATE TRIGGER conv_message_status AFTER UPDATE OF status ON message"
	" WHEN NEW.removed = 0 AND NEW.status IS NOT OLD.status BEGIN"
	" UPDATE conversation SET version = version + 1 WHERE id = " CPM_CONV_OF("NEW.folder_id") ";"
	" END;"
	/* A message first stored from its header and classified again once
	 * its body came (store_message_set_cpm()): its conversation anew, and
	 * the IMDN matching as on arrival. */
	"CREATE TRIGGER conv_message_reclassified AFTER UPDATE OF type, imdn_ref ON message"
	" WHEN NEW.removed = 0 AND (NEW.type IS NOT OLD.type OR NEW.imdn_ref IS NOT OLD.imdn_ref)"
	" BEGIN "
	CPM_RECOMPUTE("id = " CPM_CONV_OF("NEW.folder_id"))
	" UPDATE message SET status = NEW.status"
	"  WHERE NEW.type = 'imdn' AND coalesce(NEW.imdn_ref, '') <> ''"
	"  AND imdn_message_id = NEW.imdn_ref AND type <> 'imdn' AND removed = 0"
	"  AND " CPM_RANK("NEW.status") " > " CPM_RANK("status")
	"  AND " CPM_SAME_ACCOUNT("message", "NEW.folder_id") ";"
	" END;"
	/* A summary written again (snippet, participants). */
	"CREATE TRIGGER conv_summary_update AFTER UPDATE OF participants ON summary"
	" WHEN NEW.participants IS NOT OLD.participants"
	" AND EXISTS (SELECT 1 FROM message m WHERE m.id = NEW.id AND " CPM_STATE("m") ") BEGIN "
	CPM_RECOMPUTE("id = " CPM_CONV_OF("(SELECT folder_id FROM message WHERE id = NEW.id)"))
	" END;"
	/* Flags: Unseen. */
	"CREATE TRIGGER conv_message_flags AFTER UPDATE OF flags ON message"
	" WHEN NEW.removed = 0 AND OLD.removed = 0 AND NEW.folder_id = OLD.folder_id"
	" AND " CPM_COUNTED("NEW") " AND " CPM_UNSEEN("OLD") " <> " CPM_UNSEEN("NEW") " BEGIN"
	" UPDATE conversation SET unseen = unseen + " CPM_UNSEEN("NEW") " - " CPM_UNSEEN("OLD") ","
	"  version = version + 1 WHERE id = " CPM_CONV_OF("NEW.folder_id") ";"
	" END;"
	/* An object goes (expunged or moved away locally) or comes back. */
	"CREATE TRIGGER conv_message_moved AFTER UPDATE OF removed, folder_id ON message"
	" WHEN NEW.removed IS NOT OLD.removed OR NEW.folder_id IS NOT OLD.folder_id BEGIN "
	CPM_ENSURE("NEW.folder_id")
	CPM_RECOMPUTE("id IN (" CPM_CONV_OF("OLD.folder_id") ", " CPM_CONV_OF("NEW.folder_id") ")")
	" END;"
	"CREATE TRIGGER conv_message_delete AFTER DELETE ON message WHEN OLD.removed = 0 BEGIN "
	CPM_RECOMPUTE("id = " CPM_CONV_OF("OLD.folder_id"))
	" END;"
	CPM_FOLDER_TRIGGERS;
/* clang-format on */

/*
 * Version 7: folder.mailboxid: the folder's MAILBOXID (RFC 8474 OBJECTID)
 * as the server last reported it, NULL when never reported.  A different
 * one under the same name means another folder took the name (Cyrus keeps
 * the UIDVALIDITY of DELETE A; RENAME B A): re-read and re-match, as for
 * a changed UIDVALIDITY.
 */
static const char migration_7[] = "ALTER TABLE folder ADD COLUMN mailboxid TEXT;";

/*
 * Version 8: the preview cache (Folder1.Preview, store-preview.c).
 *
 * One row per (message, section, format, width, height): the converted
 * content, whether the server (CONVERT) or cpm-preview made it.  Dropped
 * with the message (ON DELETE CASCADE); a message's content never changes,
 * so nothing else invalidates a row.
 */
static const char migration_8[] =
	"CREATE TABLE preview ("
	" message_id INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,"
	" section TEXT NOT NULL,"
	" format TEXT NOT NULL,"
	" width INTEGER NOT NULL,"
	" height INTEGER NOT NULL,"
	" content BLOB NOT NULL,"
	" PRIMARY KEY (message_id, section, format, width, height)"
	") WITHOUT ROWID;";

/*
 * Version 9: journal ids are never handed out again (AUTOINCREMENT).
 *
 * journal.id was a plain INTEGER PRIMARY KEY, for which SQLite gives the
 * largest id + 1: once the newest row was replayed and deleted, the next
 * change got that same id.  Replay reads the next row after the last
 * one it handled (store_journal_next(), id > position), so a change
 * journaled while the run was past the reused id waited behind its
 * position until the next run.  With AUTOINCREMENT a new row's id is
 * larger than every id the table ever held.
 *
 * SQLite cannot add AUTOINCREMENT to a table: the table is rebuilt with
 * the same columns in the same order, every row keeps its id (so its
 * order and every reference to it), and sqlite_sequence starts at the
 * largest id kept.
 */
static const char migration_9[] =
	"CREATE TABLE journal_new ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
	" op TEXT NOT NULL,"
	" folder_id INTEGER,"
	" message_id INTEGER,"
	" args TEXT,"
	" created INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER)),"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" args_sent TEXT,"
	" refused TEXT,"
	" code TEXT,"
	" tries INTEGER NOT NULL DEFAULT 0,"
	" tried INTEGER,"
	" retry_after INTEGER NOT NULL DEFAULT 0,"
	" failed INTEGER NOT NULL DEFAULT 0"
	");"
	"INSERT INTO journal_new (id, account_id, op, folder_id, message_id, args, created,"
	" attempts, args_sent, refused, code, tries, tried, retry_after, failed)"
	" SELECT id, account_id, op, folder_id, message_id, args, created,"
	" attempts, args_sent, refused, code, tries, tried, retry_after, failed"
	" FROM journal ORDER BY id;"
	"DROP TABLE journal;"
	"ALTER TABLE journal_new RENAME TO journal;"
	"CREATE INDEX journal_account ON journal (account_id);"
	"CREATE INDEX journal_folder ON journal (folder_id);"
	"CREATE INDEX journal_message ON journal (message_id);"
	"CREATE INDEX journal_failed ON journal (account_id, failed);";

/*
 * Version 10: account.namespace: the personal namespace's prefix in our
 * form ("INBOX/" in Cyrus's classic namespace, "") that the account's
 * folder names are relative to (RFC 2342; store_sync_rebase_namespace()).
 * NULL: not known yet; the names are then the server's whole names, as
 * every store before this version made them.
 */
static const char migration_10[] = "ALTER TABLE account ADD COLUMN namespace TEXT;";

/*
 * Version 11: the annotation cache (Folder1.GetAnnotations, ANNOTATE RFC
 * 5257; store-annotation.c).
 *
 * One row per (message, entry, shared): shared 1 for value.shared, 0 for
 * value.priv.  value: the server's value as last known, NULL when it has
 * none (a row with value NULL is a cached absence).  local: a value set
 * locally and not yet on the server ('' removes the entry), NULL when
 * nothing is pending; readers see coalesce(local, value) (read-your-writes).
 * A pending row has a journal row 'set_annotation' (folder_id, message_id)
 * that pushes every pending value of the message when it replays.  Rows go
 * with the message (ON DELETE CASCADE).
 */
static const char migration_11[] =
	"CREATE TABLE annotation ("
	" message_id INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,"
	" entry TEXT NOT NULL,"
	" shared INTEGER NOT NULL,"
	" value TEXT,"
	" local TEXT,"
	" PRIMARY KEY (message_id, entry, shared)"
	") WITHOUT ROWID;";

/*
 * Version 12: the IMDN indexes hold the rows that have a value only.
 *
 * message_imdn (imdn_message_id) and message_imdn_ref (imdn_ref) serve the
 * IMDN triggers of version 6, which look rows up by a non-empty value.
 * Mail that is not a CPM object has '' in both, and every row had an entry
 * in both indexes (key '', in id order): each expunge rewrote a page of
 * each index at a random place, twice (WAL and checkpoint).  Now they are
 * partial (<> ''), and the triggers say "<> ''" in their lookups so that
 * SQLite uses them (a partial index serves a query whose WHERE has its
 * condition as a term).  The triggers are otherwise those of version 6.
 */
/* clang-format off */
/* A report classified again raises the originals it names (the body of
 * conv_message_reclassified after its conversation's recompute; version
 * 12, and 22 with the recompute noted instead). */
#define CPM_RECLASSIFIED_RAISE                                                                     \
	" UPDATE message SET status = NEW.status"                                                  \
	"  WHERE NEW.type = 'imdn' AND coalesce(NEW.imdn_ref, '') <> ''"                            \
	"  AND imdn_message_id = NEW.imdn_ref AND imdn_message_id <> ''"                            \
	"  AND type <> 'imdn' AND removed = 0"                                                     \
	"  AND " CPM_RANK("NEW.status") " > " CPM_RANK("status")                                   \
	"  AND " CPM_SAME_ACCOUNT("message", "NEW.folder_id") ";"
static const char migration_12[] =
	"DROP INDEX message_imdn;"
	"DROP INDEX message_imdn_ref;"
	"CREATE INDEX message_imdn ON message (imdn_message_id) WHERE imdn_message_id <> '';"
	"CREATE INDEX message_imdn_ref ON message (imdn_ref) WHERE imdn_ref <> '';"
	"DROP TRIGGER conv_imdn_report;"
	"DROP TRIGGER conv_imdn_original;"
	"DROP TRIGGER conv_message_reclassified;"
	"CREATE TRIGGER conv_imdn_report AFTER INSERT ON message"
	" WHEN NEW.removed = 0 AND NEW.type = 'imdn' AND coalesce(NEW.imdn_ref, '') <> '' BEGIN"
	" UPDATE message SET status = NEW.status"
	"  WHERE imdn_message_id = NEW.imdn_ref AND imdn_message_id <> ''"
	"  AND type <> 'imdn' AND removed = 0"
	"  AND " CPM_RANK("NEW.status") " > " CPM_RANK("status")
	"  AND " CPM_SAME_ACCOUNT("message", "NEW.folder_id") ";"
	" END;"
	"CREATE TRIGGER conv_imdn_original AFTER INSERT ON message"
	" WHEN NEW.removed = 0 AND NEW.type <> 'imdn' AND coalesce(NEW.imdn_message_id, '') <> ''"
	" BEGIN"
	" UPDATE message SET status = (SELECT r.status FROM message r"
	"  WHERE r.imdn_ref = NEW.imdn_message_id AND r.imdn_ref <> ''"
	"  AND r.type = 'imdn' AND r.removed = 0"
	"  AND " CPM_RANK("r.status") " > 0 AND " CPM_SAME_ACCOUNT("r", "NEW.folder_id")
	"  ORDER BY " CPM_RANK("r.status") " DESC LIMIT 1)"
	"  WHERE id = NEW.id"
	"  AND EXISTS (SELECT 1 FROM message r WHERE r.imdn_ref = NEW.imdn_message_id"
	"  AND r.imdn_ref <> ''"
	"  AND r.type = 'imdn' AND r.removed = 0 AND " CPM_RANK("r.status") " > 0"
	"  AND " CPM_SAME_ACCOUNT("r", "NEW.folder_id") ");"
	" END;"
	"CREATE TRIGGER conv_message_reclassified AFTER UPDATE OF type, imdn_ref ON message"
	" WHEN NEW.removed = 0 AND (NEW.type IS NOT OLD.type OR NEW.imdn_ref IS NOT OLD.imdn_ref)"
	" BEGIN "
	CPM_RECOMPUTE("id = " CPM_CONV_OF("NEW.folder_id"))
	CPM_RECLASSIFIED_RAISE
	" END;";
/* clang-format on */

/*
 * Version 13: message.emailid and message.threadid: the EMAILID and THREADID
 * (RFC 8474 OBJECTID) the server reported with the message, NULL when it
 * reported none (no OBJECTID, a message from before this version, or no
 * thread).  A message another client moved or copied keeps its EMAILID:
 * re-matching after a folder identity change goes by it (store-sync.c
 * find_rematch()); THREADID is not read yet.
 */
static const char migration_13[] = "ALTER TABLE message ADD COLUMN emailid TEXT;"
				   "ALTER TABLE message ADD COLUMN threadid TEXT;";

/*
 * Version 14: message_conv_page, the messages a person reads (message,
 * file-transfer, media) of each folder in ListConversationMessages order
 * (Date, then Id, newest first read backwards), so that a page of a
 * conversation reads about limit index entries per folder of the
 * conversation (store-conv.c) instead of every object of its folders,
 * then a sort.  Partial: IMDN reports, session-info and group-state
 * objects, mail and removed rows are not in it (the WHERE is spelled the
 * way the query spells it, ORed comparisons, no IN list: see version 6).
 */
static const char migration_14[] =
	"CREATE INDEX message_conv_page ON message (folder_id, coalesce(date, 0), id)"
	" WHERE removed = 0 AND (type = 'message' OR type = 'file-transfer' OR type = 'media');";

/*
 * Version 15: body_inline, the bodies of at most STORE_BODY_INLINE_MAX
 * bytes, in the store itself, written in the transaction of their row
 * (store-body.c explains the threshold): atomic with it by construction,
 * with the durability the row has, and no fsync of the bodies database for
 * a chat message or a report.  Larger bodies stay in the bodies database.
 * A table of its own, so that the pages holding message state stay narrow.
 * has_body keeps its meaning (the body is stored, in one place or the
 * other; readers look here first).  Bodies stored before this version stay
 * in the bodies database: nothing is moved.
 * The body_trash triggers of version 4 now queue only bodies that are in
 * the bodies database; an inline body goes with its row, in the same
 * transaction.
 */
static const char migration_15[] =
	"CREATE TABLE body_inline ("
	" message_id INTEGER PRIMARY KEY,"
	" data BLOB NOT NULL"
	");"
	"DROP TRIGGER message_body_gone;"
	"DROP TRIGGER message_body_dropped;"
	"CREATE TRIGGER message_body_gone AFTER DELETE ON message WHEN OLD.has_body BEGIN"
	" INSERT OR IGNORE INTO body_trash (message_id) SELECT OLD.id"
	"  WHERE NOT EXISTS (SELECT 1 FROM body_inline WHERE message_id = OLD.id);"
	" DELETE FROM body_inline WHERE message_id = OLD.id;"
	" END;"
	"CREATE TRIGGER message_body_dropped AFTER UPDATE OF has_body ON message"
	" WHEN OLD.has_body AND NOT NEW.has_body BEGIN"
	" INSERT OR IGNORE INTO body_trash (message_id) SELECT OLD.id"
	"  WHERE NOT EXISTS (SELECT 1 FROM body_inline WHERE message_id = OLD.id);"
	" DELETE FROM body_inline WHERE message_id = OLD.id;"
	" END;";

/*
 * Version 16: the IMDN matching of a new object is done by
 * store_message_insert() and store_message_copy() (store-message.c), with
 * the store_sql_imdn_* statements below, instead of the
 * AFTER INSERT triggers conv_imdn_report and conv_imdn_original.
 *
 * SQLite enters every row trigger of a statement for every row and
 * evaluates its WHEN inside it, in a frame with a register for every
 * value its body uses, allocated and zeroed per row: these two bodies are
 * UPDATEs of the whole message row, so each INSERT, mail included, paid
 * two such frames, and each object with an IMDN-Message-ID two UPDATE
 * programs besides: in callgrind, 177 M of the 2,248 M instructions of a
 * 5,000-object CPM initial sync, about 90 M of them paid by plain mail as
 * well (issue 11).  The C side runs the same matching, in the same
 * transaction right after the INSERT, only for the rows it can change: a
 * report with a disposition and an original with an IMDN-Message-ID,
 * each after an index probe.
 * Only the INSERT paths of store-message.c write message rows; a change of
 * type or imdn_ref later (store_message_set_cpm()) keeps its trigger
 * (conv_message_reclassified).
 *
 * message_imdn holds the originals only (type <> 'imdn'): every lookup by
 * imdn_message_id wants originals and says so, and a report's own
 * IMDN-Message-ID entry was an index insert per report for nothing.
 *
 * conv_message_insert again, the same but for a message of no Type (NULL:
 * stored without a header, e.g. by a test or a summary-less FETCH): its
 * "counted" and "group-state" terms were NULL, which made messages, unseen
 * and is_group NULL and the INSERT fail on their NOT NULL constraint.
 * coalesce(NEW.type, '') makes such a row count as what it is, nothing.
 */
/* clang-format off */
#define CPM_COUNTED_NEW                                                                            \
	"(coalesce(NEW.type, '') = 'message' OR coalesce(NEW.type, '') = 'file-transfer'"          \
	" OR coalesce(NEW.type, '') = 'media')"
static const char migration_16[] =
	"DROP INDEX message_imdn;"
	"CREATE INDEX message_imdn ON message (imdn_message_id)"
	" WHERE imdn_message_id <> '' AND type <> 'imdn';"
	"DROP TRIGGER conv_imdn_report;"
	"DROP TRIGGER conv_imdn_original;"
	"DROP TRIGGER conv_message_insert;"
	"CREATE TRIGGER conv_message_insert AFTER INSERT ON message WHEN NEW.removed = 0"
	" AND (SELECT conv FROM folder WHERE id = NEW.folder_id) IS NOT NULL BEGIN "
	CPM_ENSURE("NEW.folder_id")
	" UPDATE conversation SET"
	"  messages = messages + " CPM_COUNTED_NEW ","
	"  unseen = unseen + (" CPM_COUNTED_NEW " AND " CPM_UNSEEN("NEW") "),"
	"  last_id = CASE WHEN " CPM_COUNTED_NEW " AND (coalesce(NEW.date, 0) > last_date"
	"   OR (coalesce(NEW.date, 0) = last_date AND NEW.id > last_id)) THEN NEW.id ELSE last_id END,"
	"  last_date = CASE WHEN " CPM_COUNTED_NEW " AND (coalesce(NEW.date, 0) > last_date"
	"   OR (coalesce(NEW.date, 0) = last_date AND NEW.id > last_id))"
	"   THEN coalesce(NEW.date, 0) ELSE last_date END,"
	"  peer = CASE WHEN " CPM_COUNTED_NEW " AND coalesce(NEW.peer, '') <> ''"
	"   AND (peer = '' OR coalesce(NEW.date, 0) > last_date"
	"   OR (coalesce(NEW.date, 0) = last_date AND NEW.id > last_id)) THEN NEW.peer ELSE peer END,"
	"  is_group = is_group OR coalesce(NEW.type, '') = 'group-state'"
	"   OR (SELECT f.name <> f.conv FROM folder f WHERE f.id = NEW.folder_id),"
	"  conversation_id = CASE WHEN cid_header = 0 AND coalesce(NEW.conversation_id, '') <> ''"
	"   THEN NEW.conversation_id ELSE conversation_id END,"
	"  cid_header = cid_header OR coalesce(NEW.conversation_id, '') <> '',"
	"  version = version + 1"
	"  WHERE id = " CPM_CONV_OF("NEW.folder_id") ";"
	" END;";

/* A new original (?1 its imdn_message_id, ?2 its folder id): is there a
 * report of its name (probe), then the strongest of them, which it takes
 * (conv_imdn_original of version 12). */
const char store_sql_imdn_original_probe[] =
	"SELECT 1 FROM message WHERE imdn_ref = ?1 AND imdn_ref <> '' LIMIT 1";
const char store_sql_imdn_strongest[] =
	"SELECT r.status FROM message r"
	" WHERE r.imdn_ref = ?1 AND r.imdn_ref <> ''"
	" AND r.type = 'imdn' AND r.removed = 0"
	" AND " CPM_RANK("r.status") " > 0 AND " CPM_SAME_ACCOUNT("r", "?2")
	" ORDER BY " CPM_RANK("r.status") " DESC LIMIT 1";

/*
 * Version 17: a Status change no longer bumps its conversation's version
 * per row by the trigger conv_message_status.  The writers of
 * message.status, all in store-message.c, do it through store_conv_bump()
 * (once per conversation folder and transaction, at the commit:
 * store.c), for the originals conv_message_reclassified raises in its
 * body too (store_message_set_cpm() finds them before, while "its Status
 * is lower" still holds).  The trigger's body was an UPDATE of the
 * conversation row, about 20k instructions in callgrind, for every IMDN
 * report that raised a Status: most of the remaining IMDN cost of a CPM
 * initial sync (issue 11).  The version is a change marker
 * (store-changes.c); every other column of the conversation rows is what
 * it was.
 */
static const char migration_17[] = "DROP TRIGGER conv_message_status;";

/* A message classified again as a report (store_message_set_cpm(), ?1
 * its id, ?2 its new Type, ?3 its new imdn_ref, ?4 its new Status): the
 * folders of the originals conv_message_reclassified is about to raise
 * (its WHEN and its UPDATE's WHERE), whose conversations move. */
const char store_sql_imdn_reclassified_originals[] =
	"SELECT m.folder_id FROM message m"
	" WHERE ?2 = 'imdn' AND coalesce(?3, '') <> ''"
	" AND EXISTS (SELECT 1 FROM message x WHERE x.id = ?1 AND x.removed = 0"
	" AND (x.type IS NOT ?2 OR x.imdn_ref IS NOT ?3))"
	" AND " STORE_OBJECT_KEY("m.") " = ?3"
	" AND m.imdn_message_id = ?3 AND m.imdn_message_id <> ''"
	" AND m.type <> 'imdn' AND m.removed = 0"
	" AND " CPM_RANK("?4") " > " CPM_RANK("m.status")
	" AND " CPM_SAME_ACCOUNT("m", "(SELECT folder_id FROM message WHERE id = ?1)");

/* A new report (?1 its imdn_ref, ?2 its folder id): the originals it
 * names in its account, with their Status and folder.  Their rank is
 * compared in C (cpm_status_rank(), CPM_RANK's order) and each one to
 * raise is written by id: one index walk instead of an existence probe
 * and then an UPDATE that walked the index again and evaluated the ranks
 * and the account test in SQL.  An original in the report's own folder
 * (most) is in its account without the test. */
const char store_sql_imdn_originals[] =
	"SELECT id, status, folder_id FROM message"
	" WHERE " STORE_OBJECT_KEY("") " = ?1"
	" AND imdn_message_id = ?1 AND imdn_message_id <> ''"
	" AND type <> 'imdn' AND removed = 0"
	" AND (folder_id = ?2 OR " CPM_SAME_ACCOUNT("message", "?2") ")";

/* clang-format on */

/*
 * Version 18: message_folder_message_id holds only the rows without a UID.
 * No query looks a row up by (folder, Message-ID) among the rows with a
 * UID: the one lookup by Message-ID, find_rematch() (store-sync.c), looks
 * among the rows without one (and the planner takes the (folder_id, uid)
 * index for its uid IS NULL).  Every other row, i.e. nearly all of them,
 * was an entry at a random place of the index (Message-IDs are random)
 * that each expunge rewrote: a page, twice (WAL, then checkpoint), about
 * 2 KB of the 21 KB an expunged message cost (bench-sync.sh at 20,000
 * messages, the commit gives the figures).
 */
static const char migration_18[] = "DROP INDEX message_folder_message_id;"
				   "CREATE INDEX message_folder_message_id"
				   " ON message (folder_id, message_id) WHERE uid IS NULL;";

/*
 * Version 19: folder.known, the number of the folder's rows with a UID (the
 * messages the server is known to hold, a local expunge still pending
 * included), kept by triggers in the transaction of the rows.  The folder
 * plan compares it with STATUS MESSAGES for every folder at every sync
 * (plan.c status_unchanged()); it was counted with an index scan of the
 * folder's rows each time: 8.6 M of the 75 M instructions of a no-change
 * --once run at 20,000 messages (callgrind), about 0.35 ms a folder of
 * 20,000 per daemon Sync() with the pages cached, 1.7 ms at 100,000.
 */
static const char migration_19[] =
	"ALTER TABLE folder ADD COLUMN known INTEGER NOT NULL DEFAULT 0;"
	"UPDATE folder SET known = (SELECT count(*) FROM message m"
	" WHERE m.folder_id = folder.id AND m.uid IS NOT NULL);"
	"CREATE TRIGGER folder_known_insert AFTER INSERT ON message WHEN NEW.uid IS NOT NULL BEGIN"
	" UPDATE folder SET known = known + 1 WHERE id = NEW.folder_id;"
	" END;"
	"CREATE TRIGGER folder_known_delete AFTER DELETE ON message WHEN OLD.uid IS NOT NULL BEGIN"
	" UPDATE folder SET known = known - 1 WHERE id = OLD.folder_id;"
	" END;"
	"CREATE TRIGGER folder_known_update AFTER UPDATE OF uid, folder_id ON message"
	" WHEN (OLD.uid IS NULL) <> (NEW.uid IS NULL) OR OLD.folder_id <> NEW.folder_id BEGIN"
	" UPDATE folder SET known = known - 1 WHERE id = OLD.folder_id AND OLD.uid IS NOT NULL;"
	" UPDATE folder SET known = known + 1 WHERE id = NEW.folder_id AND NEW.uid IS NOT NULL;"
	" END;";

/*
 * Version 20: the conversation of a new object is kept from C, not by the
 * triggers conv_message_insert (version 16) and conv_summary_insert
 * (version 6).  SQLite allocates and zeroes a trigger program's frame
 * (every register of its whole body) at each firing of a one-row
 * statement, WHEN clause or not: those two, fired by every message and
 * summary INSERT, plain mail included, cost about 84,000 instructions a
 * message for conv_message_insert alone (callgrind, bench-cpm.sh
 * N=5000: 1,795 M -> 1,375 M for the plain initial sync, 1,968 M ->
 * 1,544 M for the CPM one, with the trigger dropped).  The same SQL runs
 * as prepared statements from store-message.c, at the same points (after
 * the row's INSERT, after the summary's): what each column becomes is
 * what the triggers made.
 *
 * store_sql_conv_added: conv_message_insert's UPDATE, the new row's
 * columns bound as parameters, read back by store_sql_conv_of_message
 * with the conversation row's id (the trigger's WHEN and CPM_CONV_OF in
 * one probe).  CPM_ENSURE (store_sql_conv_ensure, ?1 the folder id) runs
 * only when there is no conversation row, for a conversation's first
 * object.  An UPDATE ... FROM (SELECT ... FROM message) cost about 65,000
 * instructions an object: SQLite runs it through an ephemeral table.
 * Rows written by raw SQL (tests, sqlite3) no longer move their
 * conversation; the store's INSERT paths are all in store-message.c.
 */
#define CPM_COUNTED_P                                                                              \
	"(coalesce(?3, '') = 'message' OR coalesce(?3, '') = 'file-transfer'"                      \
	" OR coalesce(?3, '') = 'media')"
#define CPM_NEWER_P                                                                                \
	"(coalesce(?5, 0) > last_date OR (coalesce(?5, 0) = last_date AND ?1 > last_id))"
/* clang-format off */
#define CONV_ADDED(cid)                                                                            \
	"UPDATE conversation SET"                                                                  \
	" messages = messages + " CPM_COUNTED_P ","                                                \
	" unseen = unseen + (" CPM_COUNTED_P " AND (instr(' ' || ?4 || ' ', ' \\Seen ') = 0)),"   \
	" last_id = CASE WHEN " CPM_COUNTED_P " AND " CPM_NEWER_P " THEN ?1 ELSE last_id END,"     \
	" last_date = CASE WHEN " CPM_COUNTED_P " AND " CPM_NEWER_P                                \
	"  THEN coalesce(?5, 0) ELSE last_date END,"                                               \
	" peer = CASE WHEN " CPM_COUNTED_P " AND coalesce(?6, '') <> ''"                           \
	"  AND (peer = '' OR " CPM_NEWER_P ") THEN ?6 ELSE peer END,"                              \
	" is_group = is_group OR coalesce(?3, '') = 'group-state' OR ?8," cid                      \
	" version = version + 1"                                                                   \
	" WHERE id = ?2"
const char store_sql_conv_added[] =
	CONV_ADDED(" conversation_id = CASE WHEN cid_header = 0 AND coalesce(?7, '') <> ''"
		   "  THEN ?7 ELSE conversation_id END,"
		   " cid_header = cid_header OR coalesce(?7, '') <> '',");
/*
 * The same when the object leaves the Conversation-ID as it is (the row
 * has one from a header already, or the object has none), which the probe
 * below tells: SQLite rewrites the entries of every index whose columns
 * are in the SET list, whatever their values, so naming conversation_id
 * deleted and reinserted the row's conversation_cid entry for every
 * object (10% of conv_added(): plain twin of bench-cpm.sh 5000, 228 M ->
 * 206 M instructions).
 */
const char store_sql_conv_added_same_cid[] = CONV_ADDED("");
/* A new object ?1 in a conversation folder: its conversation row's id
 * (NULL when there is none yet: CPM_CONV_OF), then what the UPDATE binds
 * as ?3 to ?8: its type, flags, date, peer, conversation_id (none for an
 * IMDN report: version 37), and whether its folder is a session folder;
 * then the row's cid_header, peer, last_date and last_id (NULL without a
 * row), and whether its newest object has a peer.  No row for an object
 * elsewhere. */
const char store_sql_conv_of_message[] =
	"SELECT c.id, m.type, ms.flags, m.date, m.peer,"
	" CASE WHEN m.type IS NOT 'imdn' THEN m.conversation_id END,"
	" f.name <> f.conv, c.cid_header, c.peer, c.last_date, c.last_id, " CONV_LAST_HAS_PEER
	" FROM message m JOIN message_state ms ON ms.id = m.id JOIN folder f ON f.id = m.folder_id"
	" LEFT JOIN conversation c ON c.account_id = f.account_id AND c.folder = f.conv"
	" WHERE m.id = ?1 AND m.removed = 0 AND f.conv IS NOT NULL";
/* CPM_ENSURE("?1"), and a conversation with a session history folder is
 * a group from its first object on, whatever folder that is in (the
 * arrival's fold adds only its own folder and Type). */
const char store_sql_conv_ensure[] =
	"INSERT OR IGNORE INTO conversation (account_id, folder, conversation_id, is_group)"
	" SELECT f.account_id, f.conv, " CPM_LAST("f.conv") ","
	" EXISTS (SELECT 1 FROM folder g WHERE g.account_id = f.account_id AND g.conv = f.conv"
	" AND g.removed = 0 AND g.name <> g.conv) FROM folder f"
	" WHERE f.id = ?1 AND f.conv IS NOT NULL AND f.removed = 0";
/*
 * A session-info or group-state object's new summary (?1 the message id):
 * the two columns that come from summaries, Subject and Participants,
 * computed anew as CPM_RECOMPUTE_SET does.  conv_summary_insert ran the
 * whole recompute and then CPM_RECOMPUTE_DROP; the other columns come from
 * message rows, which conv_note() or conv_added_now() has counted already, and a summary
 * makes no object visible or gone, so neither can change here.  The whole
 * recompute, a dozen subqueries over the conversation's objects, cost
 * about 240,000 instructions a state object (callgrind, bench-cpm.sh 20000
 * with 1,000 conversations: 400 of them, 97 M of the CPM sync's 6,241 M).
 */
#define CONV_STATE_SET                                                                             \
	"UPDATE conversation SET"                                                                  \
	" subject = coalesce((SELECT sm.subject" CPM_M_SM " AND " CPM_STATE("m")                   \
	" AND m.type = 'session-info' AND coalesce(sm.subject, '') <> ''" CPM_NEWEST "), ''),"     \
	" participants = coalesce((SELECT sm.participants" CPM_M_SM " AND " CPM_STATE("m")         \
	" AND coalesce(sm.participants, '') <> ''" CPM_NEWEST "), ''),"
const char store_sql_conv_state[] = CONV_STATE_SET " version = version + 1"
	" WHERE id = " CPM_CONV_OF("(SELECT folder_id FROM message WHERE id = ?1)");
/* The same for conversation row ?1, after ?2 state objects (the held-back
 * path of store-message.c: once per row and flush). */
const char store_sql_conv_state_row[] = CONV_STATE_SET " version = version + ?2 WHERE id = ?1";
/* clang-format on */
static const char migration_20[] = "DROP TRIGGER conv_message_insert;"
				   "DROP TRIGGER conv_summary_insert;";

/*
 * Version 21: an object that goes (expunged, deleted, moved away, or
 * back) no longer recomputes its conversation in its own trigger.
 * conv_message_delete and conv_message_moved ran CPM_RECOMPUTE, a dozen
 * subqueries over every object of the conversation, for every row: an
 * expunge of k objects of a conversation of n cost k times n.  200
 * expunged from a conversation of 18,000 objects took 13.5 s in one
 * DELETE (sqlite3, the bench-cpm.sh 20000 store with its chats moved into
 * one folder), 0.08 s without the trigger.  The triggers now note the
 * conversation (its account and conversation folder) in conv_stale, and
 * store-message.c recomputes each noted row once, with the rows it holds
 * back (store.h), before the first statement that reads or rewrites
 * conversation rows and at the commit: the same rows at the end, the
 * recompute once per conversation and transaction.  A row written by raw
 * SQL (sqlite3) is noted all the same and recomputed by the daemon's next
 * flush.
 */
#define CPM_STALE(fid)                                                                             \
	"INSERT OR IGNORE INTO conv_stale (account_id, conv) SELECT account_id, conv FROM folder"  \
	" WHERE id = " fid " AND conv IS NOT NULL;"
/* clang-format off */
static const char migration_21[] =
	"CREATE TABLE conv_stale (account_id INTEGER NOT NULL, conv TEXT NOT NULL,"
	" PRIMARY KEY (account_id, conv)) WITHOUT ROWID;"
	"DROP TRIGGER conv_message_moved;"
	"DROP TRIGGER conv_message_delete;"
	"CREATE TRIGGER conv_message_moved AFTER UPDATE OF removed, folder_id ON message"
	" WHEN NEW.removed IS NOT OLD.removed OR NEW.folder_id IS NOT OLD.folder_id BEGIN "
	CPM_ENSURE("NEW.folder_id")
	CPM_STALE("OLD.folder_id")
	CPM_STALE("NEW.folder_id")
	" END;"
	"CREATE TRIGGER conv_message_delete AFTER DELETE ON message WHEN OLD.removed = 0 BEGIN "
	CPM_STALE("OLD.folder_id")
	" END;";
/*
 * Version 22: the same for the other two triggers that recomputed a
 * conversation per row.  conv_message_reclassified fires for every object
 * whose Type or report name changes when its body comes after its header
 * (sync_bodies other than all): an IMDN report, first stored as a
 * message, is one, and a chat has about two reports a message, so
 * fetching the bodies of a conversation recomputed it about twice per
 * message.  conv_summary_update (a state object's participants written
 * again) is rare, and follows for one rule everywhere.  Both now note
 * the conversation in conv_stale; the report's raise of its originals
 * stays as it was.
 */
/* clang-format off */
static const char migration_22[] =
	"DROP TRIGGER conv_message_reclassified;"
	"DROP TRIGGER conv_summary_update;"
	"CREATE TRIGGER conv_message_reclassified AFTER UPDATE OF type, imdn_ref ON message"
	" WHEN NEW.removed = 0 AND (NEW.type IS NOT OLD.type OR NEW.imdn_ref IS NOT OLD.imdn_ref)"
	" BEGIN "
	CPM_STALE("NEW.folder_id")
	CPM_RECLASSIFIED_RAISE
	" END;"
	"CREATE TRIGGER conv_summary_update AFTER UPDATE OF participants ON summary"
	" WHEN NEW.participants IS NOT OLD.participants"
	" AND EXISTS (SELECT 1 FROM message m WHERE m.id = NEW.id AND " CPM_STATE("m") ") BEGIN "
	CPM_STALE("(SELECT folder_id FROM message WHERE id = NEW.id)")
	" END;";
/* clang-format on */

/*
 * Version 23: a message's flags, the server's flags and its MODSEQ in a
 * narrow table of their own, message_state.
 *
 * Why: these are what a resync rewrites, and a changed row costs its whole
 * page twice (a WAL frame, then the checkpoint; the kernel charges the
 * checkpoint a 4 KiB page-cache page per random 1 KiB page).  A message
 * row is about 150 bytes, six to a 1 KiB page, and a row that gains
 * "\Seen \Flagged" in flags and server_flags splits its full page: 4,071
 * bytes written per changed message in bench-sync.sh 20000 (issue 9: at
 * most 2,048).  A message_state row is about 30 bytes, thirty to a page.
 *
 * message_state.id is the message's id; every message has exactly one
 * row (store-message.c inserts both; the foreign key deletes it with its
 * message).  flags, server_flags and modseq mean what they meant in
 * message (versions 1 and 2).  conv_message_flags moves to the new table
 * (and, like CPM_RECOMPUTE, no longer counts an object of a folder removed
 * here: a session folder deleted locally), and the triggers that counted
 * unseen objects (CPM_FOLDER_TRIGGERS) are created again with the unseen
 * test reading it.
 */
#undef CPM_UNSEEN
#define CPM_UNSEEN(m)                                                                              \
	"(SELECT " CPM_UNSEEN_FLAGS("ms.flags") " FROM message_state ms WHERE ms.id = " m ".id)"
/* clang-format off */
static const char migration_23[] =
	"CREATE TABLE message_state ("
	" id INTEGER PRIMARY KEY REFERENCES message(id) ON DELETE CASCADE,"
	" flags TEXT NOT NULL DEFAULT '',"
	" server_flags TEXT,"
	" modseq INTEGER"
	");"
	"INSERT INTO message_state (id, flags, server_flags, modseq)"
	" SELECT id, flags, server_flags, modseq FROM message;"
	"DROP TRIGGER conv_message_flags;"
	"DROP TRIGGER conv_folder_insert;"
	"DROP TRIGGER conv_folder_rename;"
	"DROP TRIGGER conv_folder_removed;"
	"DROP TRIGGER conv_folder_delete;"
	"DROP TRIGGER conv_account_root;"
	"ALTER TABLE message DROP COLUMN flags;"
	"ALTER TABLE message DROP COLUMN server_flags;"
	"ALTER TABLE message DROP COLUMN modseq;"
	"CREATE TRIGGER conv_message_flags AFTER UPDATE OF flags ON message_state"
	" WHEN " CPM_UNSEEN_FLAGS("OLD.flags") " <> " CPM_UNSEEN_FLAGS("NEW.flags") " BEGIN"
	" UPDATE conversation SET unseen = unseen + " CPM_UNSEEN_FLAGS("NEW.flags")
	"  - " CPM_UNSEEN_FLAGS("OLD.flags") ", version = version + 1"
	"  WHERE id = (SELECT c.id FROM message m JOIN folder f ON f.id = m.folder_id"
	"  JOIN conversation c ON c.account_id = f.account_id AND c.folder = f.conv"
	"  WHERE m.id = NEW.id AND m.removed = 0 AND f.removed = 0 AND " CPM_COUNTED("m") ");"
	" END;"
	CPM_FOLDER_TRIGGERS;
/* clang-format on */

/*
 * Version 24: message_conv_state, the session-info and group-state
 * objects of each folder, newest last, so that the recompute of a
 * conversation (is_group, subject, participants) reads those few objects
 * instead of every object of its folders: it took about 65 of its 75 ms
 * for a conversation of 20,000 objects (a CPM store of bench-cpm.sh 20000
 * with every chat moved into one folder; the three subqueries 22, 23 and
 * 19 ms, 0.05, 0.14 and 0.10 ms with the index).  A recompute follows a
 * body fetched on demand that classifies its object anew, an object moved
 * or expunged, a folder renamed or removed.  Partial, as
 * message_conv_page: the queries must spell its WHERE (CPM_STATE) to use
 * it, so the group-state and session-info tests now say CPM_STATE too,
 * and the folder triggers that embed the recompute are created again.
 */
#undef CPM_IS_GROUP_STATE
#undef CPM_IS_SESSION_INFO
#define CPM_IS_GROUP_STATE(m)  CPM_STATE(m) " AND " m ".type = 'group-state'"
#define CPM_IS_SESSION_INFO(m) CPM_STATE(m) " AND " m ".type = 'session-info'"
/* clang-format off */
static const char migration_24[] =
	"CREATE INDEX message_conv_state ON message (folder_id, coalesce(date, 0), id)"
	" WHERE removed = 0 AND (type = 'session-info' OR type = 'group-state');"
	"DROP TRIGGER conv_folder_insert;"
	"DROP TRIGGER conv_folder_rename;"
	"DROP TRIGGER conv_folder_removed;"
	"DROP TRIGGER conv_folder_delete;"
	"DROP TRIGGER conv_account_root;"
	CPM_FOLDER_TRIGGERS;
/* clang-format on */

/*
 * Version 25: bodies over STORE_BODY_INLINE_MAX in pack files
 * (<store path>-packs/<pack id>), appended, with their place in body_pack,
 * instead of the bodies database: deleting a body there rewrote its leaf
 * page and journaled it (18 of the ~26 KB written per expunged message,
 * issue 9); a body in a pack goes by a hole punched into the file, which
 * writes no data.  store-pack.c gives the measurements and the order of
 * the writes.
 *
 * pack: one row per pack file; size, the committed end of the file (the
 *   next body goes there, anything past it is from a transaction that did
 *   not commit); live, how many body_pack rows point into it.
 * body_pack: where a message's body is (pack, byte offset, length).
 * pack_trash: ranges of bodies that went, queued by the triggers below in
 *   the transaction that dropped them, punched out once it is durable.
 * The body triggers now also take a body out of a pack; bodies already in
 * the bodies database stay there and go as before (body_trash).
 */
#define BODY_GONE_TRASH(id)                                                                        \
	"INSERT OR IGNORE INTO body_trash (message_id) SELECT " id                                 \
	" WHERE NOT EXISTS (SELECT 1 FROM body_inline WHERE message_id = " id ")"                  \
	" AND NOT EXISTS (SELECT 1 FROM body_pack WHERE message_id = " id ")"
#define BODY_GONE_INLINE(id) "DELETE FROM body_inline WHERE message_id = " id
#define BODY_GONE_RANGE(id)                                                                        \
	"INSERT INTO pack_trash (pack, off, len)"                                                  \
	" SELECT pack, off, len FROM body_pack WHERE message_id = " id
#define BODY_GONE_LIVE(id)                                                                         \
	"UPDATE pack SET live = live - 1"                                                          \
	" WHERE id = (SELECT pack FROM body_pack WHERE message_id = " id ")"
#define BODY_GONE_PACK(id) "DELETE FROM body_pack WHERE message_id = " id
#define BODY_GONE                                                                                  \
	" " BODY_GONE_TRASH("OLD.id") "; " BODY_GONE_INLINE("OLD.id") "; " BODY_GONE_RANGE(        \
		"OLD.id") "; " BODY_GONE_LIVE("OLD.id") "; " BODY_GONE_PACK("OLD.id") ";"
/* clang-format off */
static const char migration_25[] =
	"CREATE TABLE pack ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" size INTEGER NOT NULL,"
	" live INTEGER NOT NULL"
	");"
	"CREATE TABLE body_pack ("
	" message_id INTEGER PRIMARY KEY,"
	" pack INTEGER NOT NULL,"
	" off INTEGER NOT NULL,"
	" len INTEGER NOT NULL"
	");"
	"CREATE TABLE pack_trash ("
	" pack INTEGER NOT NULL,"
	" off INTEGER NOT NULL,"
	" len INTEGER NOT NULL"
	");"
	"DROP TRIGGER message_body_gone;"
	"DROP TRIGGER message_body_dropped;"
	"CREATE TRIGGER message_body_gone AFTER DELETE ON message WHEN OLD.has_body BEGIN"
	BODY_GONE
	" END;"
	"CREATE TRIGGER message_body_dropped AFTER UPDATE OF has_body ON message"
	" WHEN OLD.has_body AND NOT NEW.has_body BEGIN"
	BODY_GONE
	" END;";
/* clang-format on */

/*
 * Version 26: the pack bodies of at most STORE_BODY_INLINE_MAX bytes, in an
 * index of their own.  store_pack_put() takes only larger ones, so the
 * index stays empty and costs no write; a smaller one came there only by a
 * copy from a bodies database older than version 15.  store-pack.c punches
 * the blocks a dead body shares with a dead neighbour once it knows every
 * body of the pack spans a block, which a row here says it does not.
 */
static const char migration_26[] =
	"CREATE INDEX body_pack_small ON body_pack (pack) WHERE len <= 4096;";

/*
 * Version 27: the server account (host and user) the store's copy of an
 * account is of, recorded by its first sync (NULL until then), so that an
 * account edited to name another mailbox does not send the changes queued
 * for one to the other (store_sync_account_identity()).
 */
static const char migration_27[] = "ALTER TABLE account ADD COLUMN server_host TEXT;"
				   "ALTER TABLE account ADD COLUMN server_user TEXT;";

/*
 * Version 28: the server's hierarchy delimiter (one character) as the last
 * LIST gave it, NULL until then: a local folder name the server cannot
 * hold ("Loc.Dot" where it is '.') is refused when it is made, not at
 * replay (store_sync_set_delimiter()).
 */
static const char migration_28[] = "ALTER TABLE account ADD COLUMN delimiter TEXT;";

/*
 * Version 29: the summaries' From and To show the display names of
 * RFC 2047 encoded-words decoded ("=?utf-8?B?0JjQstCw0L0=?= <ivan@x>" is
 * "Иван <ivan@x>"), and the Subject those in every charset iconv knows
 * (older parsers decoded UTF-8, US-ASCII and ISO-8859-1 only): the rows
 * an older parser wrote are decoded again from the values they hold
 * (cpmsync_redecode(), store-func.c), those with an encoded-word only.
 * Nothing else reads these columns' old form: the schema is unchanged.
 */
static const char migration_29[] = "UPDATE summary SET"
				   " from_addr = cpmsync_redecode('from', from_addr),"
				   " to_addrs = cpmsync_redecode('to', to_addrs),"
				   " subject = cpmsync_redecode('subject', subject)"
				   " WHERE instr(from_addr, '=?') > 0 OR instr(to_addrs, '=?') > 0"
				   " OR instr(subject, '=?') > 0;";

/* The same for store-body.c, a body replaced without has_body going. */
const char *const store_sql_body_gone[5] = {
	BODY_GONE_TRASH("?1"), BODY_GONE_INLINE("?1"), BODY_GONE_RANGE("?1"),
	BODY_GONE_LIVE("?1"),  BODY_GONE_PACK("?1"),
};

/* The flush of the noted rows (store-message.c): recomputed, dropped when
 * left without a visible object, then the notes cleared. */
#define CPM_STALE_ROWS                                                                             \
	"id IN (SELECT c.id FROM conv_stale s JOIN conversation c"                                 \
	" ON c.account_id = s.account_id AND c.folder = s.conv)"
/* clang-format on */

/*
 * Version 30: a message without a Date header that can be read has its
 * internal date as Date (RFC 5256's sent date; store-message.c
 * row_date()), where it had NULL, shown as 0: the oldest of its
 * conversation, never its LastMessage.  Older versions stored a Date of
 * exactly 1970-01-01 00:00:00 UTC as NULL too, and it takes the internal
 * date as well (almost always a sender's clock not set, a date no better
 * than none); from this version on it is 0, NULL being "unknown".  The
 * conversations of the rows changed are computed anew (the conv_stale
 * flush of version 21, run here).  The schema is unchanged.
 */
#define MIGRATION_30_UNDATED(m) "coalesce(" m "date, 0) = 0 AND coalesce(" m "internaldate, 0) <> 0"
/* clang-format off */
static const char migration_30[] =
	"INSERT OR IGNORE INTO conv_stale (account_id, conv)"
	" SELECT DISTINCT f.account_id, f.conv FROM message m JOIN folder f ON f.id = m.folder_id"
	" WHERE f.conv IS NOT NULL AND " MIGRATION_30_UNDATED("m.") ";"
	"UPDATE message SET date = internaldate WHERE " MIGRATION_30_UNDATED("") ";"
	CPM_RECOMPUTE_SET(CPM_STALE_ROWS)
	CPM_RECOMPUTE_DROP(CPM_STALE_ROWS)
	"DELETE FROM conv_stale;";
/* clang-format on */

/*
 * Version 31: conv_gone, where the newest CONV_GONE_MAX messages a person
 * reads (message, file-transfer, media) of conversation folders stood in
 * ListConversationMessages order when their rows left the store (expunged
 * on the server, by this or another device; their folder deleted): their
 * Date and account.  An app that holds one as its cursor (before_id) gets
 * the page below where it stood (store-conv.c cursor_date()), across a
 * restart of the daemon too and for what a sync without the daemon
 * (cpm-syncd --once) removed; the daemon's temporary table of
 * schema 30 (store-changes.c) knew only what it saw go since it started.
 * Bounded: each deletion drops the entries more than CONV_GONE_MAX behind
 * the newest (a range of the primary key).  No foreign key: the rows of
 * an account removed go by cascade, and this trigger runs in it.
 */
#define CONV_GONE_MAX "4096"
/* clang-format off */
static const char migration_31[] =
	"CREATE TABLE conv_gone ("
	" seq INTEGER PRIMARY KEY,"
	" id INTEGER NOT NULL UNIQUE,"
	" account_id INTEGER NOT NULL,"
	" date INTEGER NOT NULL"
	");"
	"CREATE TRIGGER conv_gone_message AFTER DELETE ON message"
	" WHEN " CPM_COUNTED("OLD") " BEGIN"
	" INSERT OR REPLACE INTO conv_gone (id, account_id, date)"
	"  SELECT OLD.id, f.account_id, coalesce(OLD.date, 0) FROM folder f"
	"  WHERE f.id = OLD.folder_id AND f.conv IS NOT NULL;"
	" DELETE FROM conv_gone WHERE seq <= (SELECT max(seq) FROM conv_gone) - " CONV_GONE_MAX ";"
	" END;";
/* clang-format on */

/*
 * Version 32: an object a person reads flagged \Deleted (deleted, not yet
 * expunged: Account1.Delete, or another client's STORE +FLAGS \Deleted)
 * is no longer one of its conversation's Messages, Unseen, LastActivity
 * or LastMessage (nor of ListConversationMessages, store-conv.c): a
 * messaging app's Delete takes it out of the chat at once, as the
 * removed rows of an Expunge are (store-read.c shows no removed row).
 * Folder listings still show it with its flag, as IMAP does.  The
 * recompute leaves such objects out (CPM_COUNTED), conv_message_deleted
 * notes the conversation for it when the flag comes or goes, an arrival
 * with the flag is noted likewise (store-message.c has_deleted()), and
 * conv_message_flags no longer adds Unseen deltas of such objects.  The
 * folder triggers that embed the recompute are created again, and the
 * conversations holding such objects computed anew.
 */
#define CPM_DELETED_FLAGS(x) "(instr(' ' || " x " || ' ', ' \\Deleted ') > 0)"
#define CPM_DELETED(m)                                                                             \
	"EXISTS (SELECT 1 FROM message_state dm WHERE dm.id = " m ".id"                            \
	" AND " CPM_DELETED_FLAGS("dm.flags") ")"
#undef CPM_COUNTED
#define CPM_COUNTED(m)                                                                             \
	"((" m ".type = 'message' OR " m ".type = 'file-transfer' OR " m ".type = 'media')"        \
	" AND NOT " CPM_DELETED(m) ")"
#define CPM_TYPE_COUNTED(m)                                                                        \
	"(" m ".type = 'message' OR " m ".type = 'file-transfer' OR " m ".type = 'media')"
/* clang-format off */
static const char migration_32[] =
	"DROP TRIGGER conv_message_flags;"
	"CREATE TRIGGER conv_message_flags AFTER UPDATE OF flags ON message_state"
	" WHEN " CPM_UNSEEN_FLAGS("OLD.flags") " <> " CPM_UNSEEN_FLAGS("NEW.flags")
	" AND NOT " CPM_DELETED_FLAGS("OLD.flags") " AND NOT " CPM_DELETED_FLAGS("NEW.flags") " BEGIN"
	" UPDATE conversation SET unseen = unseen + " CPM_UNSEEN_FLAGS("NEW.flags")
	"  - " CPM_UNSEEN_FLAGS("OLD.flags") ", version = version + 1"
	"  WHERE id = (SELECT c.id FROM message m JOIN folder f ON f.id = m.folder_id"
	"  JOIN conversation c ON c.account_id = f.account_id AND c.folder = f.conv"
	"  WHERE m.id = NEW.id AND m.removed = 0 AND f.removed = 0 AND " CPM_TYPE_COUNTED("m") ");"
	" END;"
	"CREATE TRIGGER conv_message_deleted AFTER UPDATE OF flags ON message_state"
	" WHEN " CPM_DELETED_FLAGS("OLD.flags") " <> " CPM_DELETED_FLAGS("NEW.flags") " BEGIN "
	CPM_STALE("(SELECT m.folder_id FROM message m WHERE m.id = NEW.id AND m.removed = 0"
		  " AND " CPM_TYPE_COUNTED("m") ")")
	" END;"
	"DROP TRIGGER conv_folder_insert;"
	"DROP TRIGGER conv_folder_rename;"
	"DROP TRIGGER conv_folder_removed;"
	"DROP TRIGGER conv_folder_delete;"
	"DROP TRIGGER conv_account_root;"
	CPM_FOLDER_TRIGGERS
	"INSERT OR IGNORE INTO conv_stale (account_id, conv)"
	" SELECT DISTINCT f.account_id, f.conv FROM message m JOIN message_state ms ON ms.id = m.id"
	" JOIN folder f ON f.id = m.folder_id WHERE f.conv IS NOT NULL AND m.removed = 0"
	" AND " CPM_TYPE_COUNTED("m") " AND " CPM_DELETED_FLAGS("ms.flags") ";"
	CPM_RECOMPUTE_SET(CPM_STALE_ROWS)
	CPM_RECOMPUTE_DROP(CPM_STALE_ROWS)
	"DELETE FROM conv_stale;";
/* clang-format on */

/*
 * Version 33: filing a CPM object is idempotent (store-ops.c
 * same_object()): before an object is stored, the folder's objects with
 * the same key (its IMDN-Message-ID, else its Message-ID) are looked up,
 * in this index rather than by reading the folder, and a visible one with
 * the same bytes is answered instead of a second copy.  The key is an
 * expression, STORE_OBJECT_KEY() in store.h, which the lookup repeats
 * word for word (else SQLite does not use the index).  The key comes
 * first: an index led by folder_id would be taken for other queries of a
 * folder's visible messages, the conversation recompute's among them, in
 * place of their own (test-store's test_conv_state_index).
 */
static const char migration_33[] = "CREATE INDEX message_object ON message"
				   " (" STORE_OBJECT_KEY("") ", folder_id) WHERE removed = 0;";

/*
 * Version 34: online, the user's Online choice (Account1.Online, `cpmctl
 * online`), 1 by default; 0 keeps the account offline across restarts of
 * the daemon (cpmsync_session_set_online()).
 */
static const char migration_34[] =
	"ALTER TABLE account ADD COLUMN online INTEGER NOT NULL DEFAULT 1;";

/*
 * Version 35: a display name in a quoted string has its RFC 2047
 * encoded-words decoded too ("\"=?UTF-8?B?w6lsw6h2ZQ==?=\" <e@x>" is
 * "\"élève\" <e@x>", msg-summary.c decode_quoted_name()): the From and To
 * values an older parser left so are decoded again, as in version 29.  A
 * value decodes to itself when it has no such name.  The schema is
 * unchanged.
 */
static const char migration_35[] =
	"UPDATE summary SET"
	" from_addr = cpmsync_redecode('from', from_addr),"
	" to_addrs = cpmsync_redecode('to', to_addrs)"
	" WHERE (instr(from_addr, '=?') > 0 AND instr(from_addr, '\"') > 0)"
	" OR (instr(to_addrs, '=?') > 0 AND instr(to_addrs, '\"') > 0);";

/*
 * Version 36: message_moved, where a message gone from the
 * store lives on.  A message moved locally before it was on the server is
 * stored anew (store-ops.c move_local(): a new row, the old one purged),
 * and a message copied before it was on the server, then purged, lives on
 * as its copy's APPEND (purge_message()).  Each such step records (old
 * row, new row); rows naming the old row as their target are pointed at
 * the new one, so one lookup follows any number of moves
 * (cpmsync_store_message_moved(); the outbox follows its file's message
 * so).  A link goes with the row it leads to (ON DELETE CASCADE, through
 * the index): a message really removed leaves none.  Message ids are never
 * reused (AUTOINCREMENT), so no link names a later message.
 */
static const char migration_36[] =
	"CREATE TABLE message_moved ("
	" id INTEGER PRIMARY KEY,"
	" to_id INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE);"
	"CREATE INDEX message_moved_to ON message_moved (to_id);";

/*
 * Version 37: an IMDN report's Conversation-ID no longer names its
 * conversation.  A conversation folder's ConversationId is its objects'
 * Conversation-ID, the first that has one (README "CPM conversations"),
 * and a stray report (its original elsewhere, or of another
 * Conversation-ID) took that part when it came first, or when the
 * objects before it went: a group's session-info expunged renamed the
 * group after the report, its messages and all (test-store-conv's
 * test_report_names_no_conversation).  A report is state, not a message
 * (contract README "CPM objects and conversations"): it sets the Status
 * of the message its body names, in whatever conversation that is, and
 * tells nothing of the folder it lies in.  The recompute (CPM_NAMES_CONV
 * below) and the arrival's fold (store-message.c conv_note(),
 * store_sql_conv_of_message) leave reports out, a folder of reports only
 * is named after itself, as one of mail only is; the folder triggers that
 * embed the recompute are created again, and the conversations whose
 * folders hold a report with a Conversation-ID computed anew.
 */
#undef CPM_NAMES_CONV
#define CPM_NAMES_CONV(m) " AND " m ".type IS NOT 'imdn'"
/* clang-format off */
static const char migration_37[] =
	"DROP TRIGGER conv_folder_insert;"
	"DROP TRIGGER conv_folder_rename;"
	"DROP TRIGGER conv_folder_removed;"
	"DROP TRIGGER conv_folder_delete;"
	"DROP TRIGGER conv_account_root;"
	CPM_FOLDER_TRIGGERS
	"INSERT OR IGNORE INTO conv_stale (account_id, conv)"
	" SELECT DISTINCT f.account_id, f.conv FROM message m JOIN folder f ON f.id = m.folder_id"
	" WHERE f.conv IS NOT NULL AND m.removed = 0 AND m.type = 'imdn'"
	" AND coalesce(m.conversation_id, '') <> '';"
	CPM_RECOMPUTE_SET(CPM_STALE_ROWS)
	CPM_RECOMPUTE_DROP(CPM_STALE_ROWS)
	"DELETE FROM conv_stale;";
/* clang-format on */

/* The flush of the noted rows with this version's recompute. */
const char store_sql_conv_stale_recompute[] = CPM_RECOMPUTE_SET(CPM_STALE_ROWS);
const char store_sql_conv_stale_drop[] = CPM_RECOMPUTE_DROP(CPM_STALE_ROWS);
const char store_sql_conv_stale_clear[] = "DELETE FROM conv_stale";
/* The conversation of folder ?1 noted for such a recompute. */
const char store_sql_conv_stale_folder[] = CPM_STALE("?1");

/*
 * Version 38: message_sent, the messages of ours that reached the server.
 * A row whose UID the server gave (APPEND, COPY or MOVE answered, or an
 * interrupted APPEND found again: its uid goes from NULL to a value) is
 * recorded, with every id that was moved into it before it was sent
 * (message_moved), so that what became of it afterwards (moved, by
 * MoveMessages or another client, deleted, expunged: its row goes, and
 * with it the links to it) still says that it was stored and sent
 * (cpmsync_store_message_sent(); the outbox's file is done then, not
 * failed as removed).  Kept without a reference to message on purpose,
 * the newest 16384 only (ids are never reused): a rescan of
 * the outbox follows every sync, long before that many more were sent.
 */
static const char migration_38[] =
	"CREATE TABLE message_sent (seq INTEGER PRIMARY KEY, id INTEGER NOT NULL UNIQUE);"
	"CREATE TRIGGER message_sent_uid AFTER UPDATE OF uid ON message"
	" WHEN OLD.uid IS NULL AND NEW.uid IS NOT NULL BEGIN"
	" INSERT OR IGNORE INTO message_sent (id) VALUES (NEW.id);"
	" INSERT OR IGNORE INTO message_sent (id)"
	"  SELECT id FROM message_moved WHERE to_id = NEW.id;"
	" DELETE FROM message_sent WHERE seq <= (SELECT max(seq) FROM message_sent) - 16384;"
	" END;";

/*
 * Version 39: message_imdn goes; the lookups of originals by their
 * IMDN-Message-ID use message_object (version 33) instead.  An original
 * with an IMDN-Message-ID has that as its object key (STORE_OBJECT_KEY()),
 * and every lookup of originals wants visible ones (removed = 0, the
 * condition of message_object), so the key term added to their WHERE
 * finds the same rows through message_object, plus any row whose
 * Message-ID happens to be that name, which the imdn_message_id term
 * leaves out as before.  message_imdn was a second entry per chat message
 * at a random place of an index, holding the same keys: in callgrind
 * about 100 M instructions of a 20,000-object CPM initial sync
 * (bench-cpm.sh 20000 CONVS=1000, 4,096 M in all; an INSERT of those
 * 20,000 rows into the table with and without the index: 591 M and
 * 490 M).  store_sql_imdn_originals and store_sql_imdn_reclassified_originals
 * say the key; conv_message_reclassified's raise is made again with it
 * (the trigger otherwise as version 22 made it).
 */
/* clang-format off */
#define CPM_RECLASSIFIED_RAISE_BY_KEY                                                              \
	" UPDATE message SET status = NEW.status"                                                  \
	"  WHERE NEW.type = 'imdn' AND coalesce(NEW.imdn_ref, '') <> ''"                            \
	"  AND " STORE_OBJECT_KEY("") " = NEW.imdn_ref"                                            \
	"  AND imdn_message_id = NEW.imdn_ref AND imdn_message_id <> ''"                            \
	"  AND type <> 'imdn' AND removed = 0"                                                     \
	"  AND " CPM_RANK("NEW.status") " > " CPM_RANK("status")                                   \
	"  AND " CPM_SAME_ACCOUNT("message", "NEW.folder_id") ";"
static const char migration_39[] =
	"DROP INDEX message_imdn;"
	"DROP TRIGGER conv_message_reclassified;"
	"CREATE TRIGGER conv_message_reclassified AFTER UPDATE OF type, imdn_ref ON message"
	" WHEN NEW.removed = 0 AND (NEW.type IS NOT OLD.type OR NEW.imdn_ref IS NOT OLD.imdn_ref)"
	" BEGIN "
	CPM_STALE("NEW.folder_id")
	CPM_RECLASSIFIED_RAISE_BY_KEY
	" END;";
/* clang-format on */

/*
 * Version 40: the changes another process commits, for the daemon's
 * signals (store-changes.c).  An app that links libcpmsync and writes
 * the store (cpmsync/ops.h) records, through TEMP triggers of its own
 * connection, one foreign_change row per change of a visible message,
 * folder or conversation (the kinds and fields of cpmsync_change), and in
 * foreign_conv_note the Conversation-IDs that may have left the list (as
 * temp.cpm_conv_gone does for a watching connection), in the transaction
 * of the change; cpm-syncd reads and deletes them when PRAGMA
 * data_version says another connection committed, and signals them as
 * its own.  Its own writes record nothing here.
 */
static const char migration_40[] =
	"CREATE TABLE foreign_change (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL,"
	" fields INTEGER NOT NULL DEFAULT 0, folder_id INTEGER NOT NULL,"
	" message_id INTEGER NOT NULL);"
	"CREATE TABLE foreign_conv_note (account_id INTEGER NOT NULL, cid TEXT NOT NULL,"
	" PRIMARY KEY (account_id, cid)) WITHOUT ROWID;";

static const char *const migrations[] = {
	migration_1,  migration_2,  migration_3,  migration_4,	migration_5,  migration_6,
	migration_7,  migration_8,  migration_9,  migration_10, migration_11, migration_12,
	migration_13, migration_14, migration_15, migration_16, migration_17, migration_18,
	migration_19, migration_20, migration_21, migration_22, migration_23, migration_24,
	migration_25, migration_26, migration_27, migration_28, migration_29, migration_30,
	migration_31, migration_32, migration_33, migration_34, migration_35, migration_36,
	migration_37, migration_38, migration_39, migration_40,
};

unsigned store_schema_version(void)
{
	return ARRAY_SIZE(migrations);
}

const char *store_migration_sql(unsigned version)
{
	if (version < 1 || version > ARRAY_SIZE(migrations))
		return NULL;
	return migrations[version - 1];
}
