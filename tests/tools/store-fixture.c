/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * store-fixture: creates a store with a fixed content, for the
 * integration tests of readers (tests/integration/test-cpmctl.sh), without
 * the sqlite3 command-line tool.
 *
 *   store-fixture PATH            creates PATH (which must not exist)
 *   store-fixture --hold PATH     then holds a write transaction on it
 *                                 (one more message, not committed) until
 *                                 stdin reaches end of file, so that a
 *                                 test can read beside a busy writer;
 *                                 prints "holding" once it holds it
 *   store-fixture --in-wal PATH   commits one more message (account B,
 *                                 INBOX, uid 2, <in-wal@x>) and closes
 *                                 without a checkpoint (STORE_KEEP_WAL):
 *                                 it is in PATH-wal only
 *
 * The content: see fixture_sql below; the dump it must give is spelled
 * out in test-cpmctl.sh.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpmsync/error.h>

#include "store/store.h"

/*
 * Accounts "B" < "a" < "empty" < "ä" (bytewise).  Account a: INBOX with
 * two local messages (uid NULL: 0), uids 2 9 10 100, a removed message,
 * \Recent in a flag set, an absent Message-ID, one with a TAB and a
 * newline in it; a pending folder (no server_name); a removed folder
 * with a visible message; "archive" and "Éte".
 */
static const char fixture_sql[] =
	"INSERT INTO account (id, name) VALUES (1, 'a'), (2, 'B'), (3, 'ä'), (4, 'empty');"
	"INSERT INTO folder (id, account_id, name, delimiter, uidvalidity, uidnext, server_name,"
	" removed) VALUES"
	" (10, 1, 'INBOX', '/', 5, 101, 'INBOX', 0),"
	" (11, 1, 'Archive/2024', '/', NULL, NULL, NULL, 0),"
	" (12, 1, 'Zeta', '/', 7, 2, 'Zeta', 1),"
	" (13, 1, 'Éte', '/', 8, 6, 'Éte', 0),"
	" (14, 1, 'archive', '/', 9, 2, 'archive', 0),"
	" (20, 2, 'INBOX', '/', 1, 2, 'INBOX', 0),"
	" (30, 3, 'INBOX', '/', 1, 2, 'INBOX', 0),"
	" (40, 4, 'INBOX', '/', 1, 1, 'INBOX', 0);"
	/* Flags go in message_state (schema version 23). */
	"CREATE TEMP TABLE fixture (id, folder_id, uid, flags, message_id, removed);"
	"INSERT INTO fixture (id, folder_id, uid, flags, message_id, removed) VALUES"
	" (98, 10, NULL, '', '<first-local@x>', 0),"
	" (100, 10, 9, '\\Seen', '<m9@x>', 0),"
	" (101, 10, 10, '$Label \\Answered \\Seen', '<m10@x>', 0),"
	" (102, 10, NULL, '\\Draft', '<local2@x>', 0),"
	" (103, 10, 2, '', NULL, 0),"
	" (106, 10, 3, '\\Seen', '<removed@x>', 1),"
	" (107, 10, 100, '\\Flagged \\Recent \\Seen', '<m100@x>', 0),"
	" (108, 10, 4, '', 'has' || char(9) || 'tab and' || char(10) || 'newline', 0),"
	" (110, 11, NULL, '', '<pending@x>', 0),"
	" (120, 12, 1, '\\Seen', '<in-removed-folder@x>', 0),"
	" (130, 13, 5, 'Seen', '<ete@x>', 0),"
	" (140, 14, 1, '\\Seen', '<arch@x>', 0),"
	" (200, 20, 1, '', '<b@x>', 0),"
	" (300, 30, 1, '', '<ae@x>', 0);"
	"INSERT INTO message (id, folder_id, uid, message_id, removed)"
	" SELECT id, folder_id, uid, message_id, removed FROM fixture;"
	"INSERT INTO message_state (id, flags) SELECT id, flags FROM fixture;"
	"DROP TABLE fixture;"
	"INSERT INTO journal (account_id, op, folder_id, message_id) VALUES"
	" (1, 'append', 10, 98), (1, 'append', 10, 102);";

static int fail(struct store *s, const char *path, const char *what)
{
	fprintf(stderr, "store-fixture: %s: %s: %s\n", path, what, store_error(s));
	store_close(s);
	return 1;
}

int main(int argc, char **argv)
{
	struct store *s = NULL;
	const char *path;
	bool hold = false, in_wal = false;
	char *err = NULL, buf[256];
	int r;

	if (argc == 3 && strcmp(argv[1], "--hold") == 0) {
		hold = true;
		path = argv[2];
	} else if (argc == 3 && strcmp(argv[1], "--in-wal") == 0) {
		in_wal = true;
		path = argv[2];
	} else if (argc == 2 && argv[1][0] != '-') {
		path = argv[1];
	} else {
		fprintf(stderr, "Usage: store-fixture [--hold|--in-wal] PATH\n");
		return 2;
	}
	/* A fresh file only: the fixture's ids are fixed. */
	if (!hold && !in_wal && access(path, F_OK) == 0) {
		fprintf(stderr, "store-fixture: %s exists\n", path);
		return 1;
	}
	r = store_open(path, in_wal ? STORE_KEEP_WAL : 0, &s, &err);
	if (r < 0) {
		fprintf(stderr, "store-fixture: %s\n", err ? err : cpmsync_strerror(r));
		free(err);
		return 1;
	}
	if (in_wal) {
		if (store_begin(s) < 0 ||
		    store_exec(s, "INSERT INTO message (id, folder_id, uid, message_id)"
				  " VALUES (201, 20, 2, '<in-wal@x>');"
				  "INSERT INTO message_state (id) VALUES (201)") < 0 ||
		    store_commit(s) < 0)
			return fail(s, path, "writing a message into the WAL");
		store_close(s);
		return 0;
	}
	if (!hold) {
		if (store_begin(s) < 0 || store_exec(s, fixture_sql) < 0 || store_commit(s) < 0)
			return fail(s, path, "writing the fixture");
		store_close(s);
		return 0;
	}

	if (store_begin(s) < 0 ||
	    store_exec(s, "INSERT INTO message (folder_id, uid, message_id)"
			  " VALUES (20, 2, '<uncommitted@x>');"
			  "INSERT INTO message_state (id) VALUES (last_insert_rowid())") < 0)
		return fail(s, path, "starting the write transaction");
	printf("holding\n");
	fflush(stdout);
	while (fgets(buf, sizeof(buf), stdin))
		;
	/* Rolled back: the row never becomes visible. */
	store_close(s);
	return 0;
}
