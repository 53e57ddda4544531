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

/* Adding version 2 is one more entry here. */
static const char *const migrations[] = {
	migration_1,
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
