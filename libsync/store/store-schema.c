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
 * journal.code its response code ("" for none, "BAD" for a BAD).
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

static const char *const migrations[] = {
	migration_1, migration_2, migration_3, migration_4, migration_5,
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
