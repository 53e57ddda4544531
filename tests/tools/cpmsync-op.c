/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cpmsync-op: local operations (cpmsync/ops.h) on a store, from the
 * command line, for integration tests.  Talks to the store file directly,
 * not to the daemon.  See usage() for the commands.
 */
#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "store/store.h"
#include "util/macro.h"

static struct cpmsync_store *store;

static void usage(FILE *f)
{
	fputs("Usage: cpmsync-op --db PATH COMMAND [ARG...]\n"
	      "\n"
	      "Applies one local operation to the store (and journals it), or reads it.\n"
	      "\n"
	      "  store ACCOUNT FOLDER FILE [FLAG...]   store FILE (- for stdin); prints the new "
	      "id\n"
	      "  flags ID... -- +FLAG|-FLAG...        add (+) and remove (-) flags\n"
	      "  delete ID...                         add \\Deleted\n"
	      "  expunge ACCOUNT FOLDER\n"
	      "  copy DEST ID...                      prints the new ids, one per line\n"
	      "  move DEST ID...                      prints the new ids, one per line\n"
	      "  mkdir ACCOUNT NAME                   prints the new folder id\n"
	      "  rename ACCOUNT OLD NEW\n"
	      "  rmdir ACCOUNT NAME\n"
	      "  metadata ACCOUNT FOLDER ENTRY VALUE  FOLDER \"\" for a server entry; VALUE \"\" "
	      "removes\n"
	      "  find ACCOUNT FOLDER MESSAGE-ID       prints the id of the visible message with "
	      "that\n"
	      "                                       Message-ID header (exit 1 if none)\n"
	      "  ids ACCOUNT FOLDER                   prints the visible ids, one per line\n"
	      "  folder ACCOUNT FOLDER                prints the folder's id\n"
	      "  bodies ACCOUNT                       reads back every stored body: one line per\n"
	      "                                       body not of its message's size, without\n"
	      "                                       its Message-ID or with a NUL, then the\n"
	      "                                       counts (exit 1 if any)\n"
	      "  pending [ACCOUNT]                    prints the journal, one row per line:\n"
	      "                                       ID TAB ACCOUNT TAB OP TAB FOLDER-ID TAB\n"
	      "                                       MESSAGE-ID TAB ARGS (newline in ARGS as "
	      "\\n;\n"
	      "                                       NULL ids empty)\n"
	      "\n"
	      "Messages copied or moved stay in their account; DEST is a folder name.\n"
	      "Errors go to stderr; the exit status is then 1 (2 for bad usage).\n",
	      f);
}

static int fail(int r, const char *what)
{
	const char *msg = cpmsync_store_error(store);

	fprintf(stderr, "cpmsync-op: %s: %s\n", what, msg && *msg ? msg : cpmsync_strerror(r));
	return 1;
}

static int parse_id(const char *s, int64_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v <= 0) {
		fprintf(stderr, "cpmsync-op: invalid id \"%s\"\n", s);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int parse_ids(char **argv, int n, int64_t **ret)
{
	int64_t *ids = calloc((size_t)n + 1, sizeof(*ids));

	if (!ids)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		if (parse_id(argv[i], &ids[i]) < 0) {
			free(ids);
			return -EINVAL;
		}
	*ret = ids;
	return 0;
}

static int cmd_store(int argc, char **argv)
{
	const char *const *flags = argc > 3 ? (const char *const *)argv + 3 : NULL;
	int64_t id;
	int r;

	if (argc < 3)
		return 2;
	if (strcmp(argv[2], "-") == 0) {
		/* stdin may be a pipe of unknown size: read it whole. */
		char *data = NULL;
		size_t len = 0, alloc = 0;
		ssize_t k;

		for (;;) {
			if (len == alloc) {
				char *p;

				alloc = alloc ? alloc * 2 : 65536;
				p = realloc(data, alloc);
				if (!p) {
					free(data);
					fprintf(stderr, "cpmsync-op: out of memory\n");
					return 1;
				}
				data = p;
			}
			k = read(0, data + len, alloc - len);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				fprintf(stderr, "cpmsync-op: stdin: %s\n", strerror(errno));
				free(data);
				return 1;
			}
			if (k == 0)
				break;
			len += (size_t)k;
		}
		r = cpmsync_op_store(store, argv[0], argv[1], data ? data : "", len, flags, 0, &id);
		free(data);
	} else {
		struct stat st;
		int fd = open(argv[2], O_RDONLY | O_CLOEXEC);

		if (fd < 0 || fstat(fd, &st) < 0) {
			fprintf(stderr, "cpmsync-op: %s: %s\n", argv[2], strerror(errno));
			if (fd >= 0)
				close(fd);
			return 1;
		}
		r = cpmsync_op_store_fd(store, argv[0], argv[1], fd, (uint64_t)st.st_size, flags, 0,
					&id);
		close(fd);
	}
	if (r < 0)
		return fail(r, "store");
	printf("%" PRId64 "\n", id);
	return 0;
}

static int cmd_flags(int argc, char **argv)
{
	const char **add = NULL, **remove = NULL;
	size_t n_add = 0, n_remove = 0;
	int64_t *ids = NULL;
	int sep = -1, r, ret = 1;

	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			sep = i;
			break;
		}
	if (sep < 1 || sep == argc - 1)
		return 2;
	add = calloc((size_t)argc + 1, sizeof(*add));
	remove = calloc((size_t)argc + 1, sizeof(*remove));
	if (!add || !remove)
		goto out;
	for (int i = sep + 1; i < argc; i++) {
		if (argv[i][0] == '+')
			add[n_add++] = argv[i] + 1;
		else if (argv[i][0] == '-')
			remove[n_remove++] = argv[i] + 1;
		else {
			fprintf(stderr, "cpmsync-op: \"%s\": flags start with + or -\n", argv[i]);
			ret = 2;
			goto out;
		}
	}
	if (parse_ids(argv, sep, &ids) < 0)
		goto out;
	r = cpmsync_op_set_flags(store, ids, (size_t)sep, add, remove);
	ret = r < 0 ? fail(r, "flags") : 0;
out:
	free(add);
	free(remove);
	free(ids);
	return ret;
}

static int cmd_delete(int argc, char **argv)
{
	int64_t *ids;
	int r;

	if (argc < 1)
		return 2;
	if (parse_ids(argv, argc, &ids) < 0)
		return 1;
	r = cpmsync_op_delete(store, ids, (size_t)argc);
	free(ids);
	return r < 0 ? fail(r, "delete") : 0;
}

static int cmd_copy_move(int argc, char **argv, bool move)
{
	int64_t *ids, *new_ids;
	int r;

	if (argc < 2)
		return 2;
	if (parse_ids(argv + 1, argc - 1, &ids) < 0)
		return 1;
	new_ids = calloc((size_t)argc, sizeof(*new_ids));
	if (!new_ids) {
		free(ids);
		return 1;
	}
	r = (move ? cpmsync_op_move : cpmsync_op_copy)(store, ids, (size_t)argc - 1, argv[0],
						       new_ids);
	if (r >= 0)
		for (int i = 0; i < argc - 1; i++)
			printf("%" PRId64 "\n", new_ids[i]);
	free(ids);
	free(new_ids);
	return r < 0 ? fail(r, move ? "move" : "copy") : 0;
}

/* Read commands: plain SQL on the store, as readers see it (removed rows
 * hidden).  The folder is matched as the ops match it (INBOX in any case). */
#define FOLDER_MATCH                                                                               \
	" f.account_id = (SELECT id FROM account WHERE name = ?1) AND f.removed = 0"               \
	" AND f.name = CASE WHEN upper(?2) = 'INBOX' THEN 'INBOX' ELSE ?2 END"

static int cmd_find(int argc, char **argv)
{
	struct store *s = store_from_public(store);
	sqlite3_stmt *st;
	int r;

	if (argc != 3)
		return 2;
	r = store_prepare(s,
			  "SELECT m.id FROM message m JOIN folder f ON f.id = m.folder_id"
			  " WHERE" FOLDER_MATCH " AND m.removed = 0 AND m.message_id = ?3"
			  " ORDER BY m.id LIMIT 1",
			  &st);
	if (r < 0)
		return fail(r, "find");
	sqlite3_bind_text(st, 1, argv[0], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, argv[1], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, argv[2], -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r < 0)
		return fail(r, "find");
	if (r == 0) {
		fprintf(stderr, "cpmsync-op: no message %s in %s/%s\n", argv[2], argv[0], argv[1]);
		return 1;
	}
	printf("%lld\n", (long long)sqlite3_column_int64(st, 0));
	sqlite3_reset(st);
	return 0;
}

struct body_row {
	int64_t id, uid, size;
	char *folder, *message_id;
};

/* Checks one stored body, read back whole into fd; prints what is wrong. */
static bool body_ok(const struct body_row *b, int fd)
{
	_cleanup_free_ char *data = NULL;
	const char *nul;
	off_t n;
	int r;

	if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		return false;
	r = cpmsync_store_read_body(store, b->id, fd);
	if (r < 0) {
		printf("%s\t%" PRId64 ": cannot read: %s\n", b->folder, b->uid,
		       cpmsync_store_error(store));
		return false;
	}
	n = lseek(fd, 0, SEEK_END);
	if (n != b->size) {
		printf("%s\t%" PRId64 ": %lld bytes, the message has %" PRId64 "\n", b->folder,
		       b->uid, (long long)n, b->size);
		return false;
	}
	if (n == 0)
		return true;
	data = malloc((size_t)n);
	if (!data || pread(fd, data, (size_t)n, 0) != n) {
		printf("%s\t%" PRId64 ": cannot read it back\n", b->folder, b->uid);
		return false;
	}
	if (b->message_id && !memmem(data, (size_t)n, b->message_id, strlen(b->message_id))) {
		printf("%s\t%" PRId64 ": no %s in it\n", b->folder, b->uid, b->message_id);
		return false;
	}
	/* A message has no NUL (RFC 5322 2.1, 3.5): zeros are a hole or a
	 * block never written. */
	nul = memchr(data, 0, (size_t)n);
	if (nul) {
		printf("%s\t%" PRId64 ": a NUL at byte %td of %lld\n", b->folder, b->uid,
		       nul - data, (long long)n);
		return false;
	}
	return true;
}

/*
 * bodies ACCOUNT: every stored body of the account's visible messages
 * read back whole (cpmsync_store_read_body()); one line per body that is
 * not the size of its message, does not hold its Message-ID or holds a NUL
 * byte (a hole punched, or a block never written), then the count.  Exit 1
 * if any is wrong.
 */
static int cmd_bodies(int argc, char **argv)
{
	struct store *s = store_from_public(store);
	struct body_row *rows = NULL;
	size_t n = 0, alloc = 0, bad = 0;
	sqlite3_stmt *st;
	int fd, r;

	if (argc != 1)
		return 2;
	r = store_prepare(s,
			  "SELECT m.id, coalesce(m.uid, 0), m.size, f.name, m.message_id"
			  " FROM message m JOIN folder f ON f.id = m.folder_id"
			  " JOIN account a ON a.id = f.account_id"
			  " WHERE a.name = ?1 AND m.has_body AND m.removed = 0 AND f.removed = 0"
			  " ORDER BY m.id",
			  &st);
	if (r < 0)
		return fail(r, "bodies");
	sqlite3_bind_text(st, 1, argv[0], -1, SQLITE_STATIC);
	while ((r = store_step(s, st)) > 0) {
		const char *mid = (const char *)sqlite3_column_text(st, 4);

		if (n == alloc) {
			alloc = alloc ? 2 * alloc : 256;
			rows = reallocarray(rows, alloc, sizeof(*rows));
			if (!rows)
				return fail(-ENOMEM, "bodies");
		}
		rows[n] = (struct body_row){
			.id = sqlite3_column_int64(st, 0),
			.uid = sqlite3_column_int64(st, 1),
			.size = sqlite3_column_int64(st, 2),
			.folder = strdup((const char *)sqlite3_column_text(st, 3)),
			.message_id = mid ? strdup(mid) : NULL,
		};
		if (!rows[n].folder || (mid && !rows[n].message_id))
			return fail(-ENOMEM, "bodies");
		n++;
	}
	if (r < 0)
		return fail(r, "bodies");
	fd = memfd_create("cpmsync-op-body", MFD_CLOEXEC);
	if (fd < 0)
		return fail(-errno, "bodies");
	for (size_t i = 0; i < n; i++) {
		if (!body_ok(&rows[i], fd))
			bad++;
		free(rows[i].folder);
		free(rows[i].message_id);
	}
	close(fd);
	free(rows);
	printf("%zu bodies, %zu wrong\n", n, bad);
	return bad ? 1 : 0;
}

static int cmd_ids(int argc, char **argv)
{
	struct store *s = store_from_public(store);
	sqlite3_stmt *st;
	int r;

	if (argc != 2)
		return 2;
	r = store_prepare(s, "SELECT id FROM folder f WHERE" FOLDER_MATCH, &st);
	if (r < 0)
		return fail(r, "ids");
	sqlite3_bind_text(st, 1, argv[0], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, argv[1], -1, SQLITE_STATIC);
	r = store_step(s, st);
	if (r < 0)
		return fail(r, "ids");
	if (r == 0) {
		fprintf(stderr, "cpmsync-op: no folder \"%s\" in account \"%s\"\n", argv[1],
			argv[0]);
		return 1;
	}
	sqlite3_reset(st);
	r = store_prepare(s,
			  "SELECT m.id FROM message m JOIN folder f ON f.id = m.folder_id"
			  " WHERE" FOLDER_MATCH " AND m.removed = 0 ORDER BY m.id",
			  &st);
	if (r < 0)
		return fail(r, "ids");
	sqlite3_bind_text(st, 1, argv[0], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, argv[1], -1, SQLITE_STATIC);
	while ((r = store_step(s, st)) > 0)
		printf("%lld\n", (long long)sqlite3_column_int64(st, 0));
	return r < 0 ? fail(r, "ids") : 0;
}

static void print_nullable(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) != SQLITE_NULL)
		printf("%lld", (long long)sqlite3_column_int64(st, col));
}

static int cmd_pending(int argc, char **argv)
{
	struct store *s = store_from_public(store);
	sqlite3_stmt *st;
	int r;

	if (argc > 1)
		return 2;
	r = store_prepare(s,
			  "SELECT j.id, a.name, j.op, j.folder_id, j.message_id, ifnull(j.args, '')"
			  " FROM journal j JOIN account a ON a.id = j.account_id"
			  " WHERE ?1 IS NULL OR a.name = ?1 ORDER BY j.id",
			  &st);
	if (r < 0)
		return fail(r, "pending");
	if (argc == 1)
		sqlite3_bind_text(st, 1, argv[0], -1, SQLITE_STATIC);
	while ((r = store_step(s, st)) > 0) {
		const char *args = (const char *)sqlite3_column_text(st, 5);

		printf("%lld\t%s\t%s\t", (long long)sqlite3_column_int64(st, 0),
		       (const char *)sqlite3_column_text(st, 1),
		       (const char *)sqlite3_column_text(st, 2));
		print_nullable(st, 3);
		putchar('\t');
		print_nullable(st, 4);
		putchar('\t');
		for (const char *p = args ? args : ""; *p; p++) {
			if (*p == '\n')
				fputs("\\n", stdout);
			else if (*p == '\\')
				fputs("\\\\", stdout);
			else
				putchar(*p);
		}
		putchar('\n');
	}
	return r < 0 ? fail(r, "pending") : 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = { { "db", required_argument, NULL, 'd' },
						 { "help", no_argument, NULL, 'h' },
						 {} };
	const char *db = NULL, *cmd;
	char *error = NULL;
	int64_t id;
	int c, r, ret;
	bool readonly;

	/* "+": stop at the command, so that "-FLAG" arguments are not options. */
	while ((c = getopt_long(argc, argv, "+d:h", options, NULL)) != -1) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!db || optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	argc -= optind + 1;
	argv += optind + 1;
	readonly = strcmp(cmd, "find") == 0 || strcmp(cmd, "ids") == 0 ||
		   strcmp(cmd, "folder") == 0 || strcmp(cmd, "pending") == 0 ||
		   strcmp(cmd, "bodies") == 0;

	r = cpmsync_store_open(db, readonly ? CPMSYNC_STORE_READONLY : 0, &store, &error);
	if (r < 0) {
		fprintf(stderr, "cpmsync-op: %s\n", error ? error : cpmsync_strerror(r));
		free(error);
		return 1;
	}

	if (strcmp(cmd, "store") == 0)
		ret = cmd_store(argc, argv);
	else if (strcmp(cmd, "flags") == 0)
		ret = cmd_flags(argc, argv);
	else if (strcmp(cmd, "delete") == 0)
		ret = cmd_delete(argc, argv);
	else if (strcmp(cmd, "expunge") == 0)
		ret = argc != 2						      ? 2
		      : (r = cpmsync_op_expunge(store, argv[0], argv[1])) < 0 ? fail(r, cmd)
									      : 0;
	else if (strcmp(cmd, "copy") == 0)
		ret = cmd_copy_move(argc, argv, false);
	else if (strcmp(cmd, "move") == 0)
		ret = cmd_copy_move(argc, argv, true);
	else if (strcmp(cmd, "mkdir") == 0) {
		ret = argc != 2 ? 2
		      : (r = cpmsync_op_create_folder(store, argv[0], argv[1], &id)) < 0
			      ? fail(r, cmd)
			      : 0;
		if (argc == 2 && ret == 0)
			printf("%" PRId64 "\n", id);
	} else if (strcmp(cmd, "rename") == 0)
		ret = argc != 3 ? 2
		      : (r = cpmsync_op_rename_folder(store, argv[0], argv[1], argv[2])) < 0
			      ? fail(r, cmd)
			      : 0;
	else if (strcmp(cmd, "rmdir") == 0)
		ret = argc != 2							    ? 2
		      : (r = cpmsync_op_delete_folder(store, argv[0], argv[1])) < 0 ? fail(r, cmd)
										    : 0;
	else if (strcmp(cmd, "metadata") == 0)
		ret = argc != 4 ? 2
		      : (r = cpmsync_op_set_metadata(store, argv[0], argv[1], argv[2], argv[3])) < 0
			      ? fail(r, cmd)
			      : 0;
	else if (strcmp(cmd, "find") == 0)
		ret = cmd_find(argc, argv);
	else if (strcmp(cmd, "ids") == 0)
		ret = cmd_ids(argc, argv);
	else if (strcmp(cmd, "pending") == 0)
		ret = cmd_pending(argc, argv);
	else if (strcmp(cmd, "bodies") == 0)
		ret = cmd_bodies(argc, argv);
	else if (strcmp(cmd, "folder") == 0) {
		ret = argc != 2 ? 2
		      : (r = cpmsync_store_find_folder(store, argv[0], argv[1], &id)) < 0
			      ? fail(r, cmd)
			      : 0;
		if (argc == 2 && ret == 0)
			printf("%" PRId64 "\n", id);
	} else {
		fprintf(stderr, "cpmsync-op: unknown command \"%s\"\n", cmd);
		ret = 2;
	}
	if (ret == 2)
		usage(stderr);
	if (fflush(stdout) != 0 && ret == 0) {
		fprintf(stderr, "cpmsync-op: writing output: %s\n", strerror(errno));
		ret = 1;
	}
	cpmsync_store_close(store);
	return ret;
}
