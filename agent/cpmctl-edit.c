/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cpmctl commands that change folders, messages, metadata and ACLs over
 * the daemon's D-Bus API (each change is applied locally at once and
 * queued for the server, as the contract says), and two that read:
 * search (Folder1.Search) and pending (the queued operations, read from
 * the store like dump, so that it works without a daemon too).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cpmsync/error.h>
#include <cpmsync/ops.h>
#include <cpmsync/store.h>

#include "cpmctl.h"

static const char folder_usage[] = "Usage: cpmctl folder create ACCOUNT NAME\n"
				   "       cpmctl folder rename ACCOUNT NAME NEW-NAME\n"
				   "       cpmctl folder delete ACCOUNT NAME\n";
static const char copy_usage[] = "Usage: cpmctl copy ACCOUNT FOLDER ID... DESTINATION\n";
static const char move_usage[] = "Usage: cpmctl move ACCOUNT FOLDER ID... DESTINATION\n";
static const char delete_usage[] = "Usage: cpmctl delete ACCOUNT FOLDER ID...\n";
static const char expunge_usage[] = "Usage: cpmctl expunge ACCOUNT FOLDER\n";
static const char metadata_usage[] =
	"Usage: cpmctl metadata get [--json] ACCOUNT FOLDER ENTRY...\n"
	"       cpmctl metadata set ACCOUNT FOLDER ENTRY VALUE [ENTRY VALUE]...\n"
	"       (FOLDER \"\": the server's entries; VALUE \"\": remove the entry)\n";
static const char annotation_usage[] =
	"Usage: cpmctl annotation get [--json] [--shared] ACCOUNT FOLDER ID ENTRY...\n"
	"       cpmctl annotation set [--shared] ACCOUNT FOLDER ID ENTRY VALUE [ENTRY VALUE]...\n"
	"       (ENTRY: \"/comment\" and the like, RFC 5257; --shared: value.shared, else\n"
	"       value.priv; VALUE \"\": remove the entry)\n";
static const char acl_usage[] = "Usage: cpmctl acl get [--json] ACCOUNT FOLDER\n"
				"       cpmctl acl set ACCOUNT FOLDER IDENTIFIER RIGHTS\n"
				"       cpmctl acl delete ACCOUNT FOLDER IDENTIFIER\n"
				"       cpmctl acl myrights ACCOUNT FOLDER\n";
static const char search_usage[] =
	"Usage: cpmctl search [--json] ACCOUNT FOLDER [CRITERION...]\n"
	"       CRITERION: text:S from:S to:S subject:S since:DATE before:DATE\n"
	"                  flag:FLAG not-flag:FLAG conversation:ID (DATE: YYYY-MM-DD\n"
	"                  UTC, or @SECONDS)\n";
static const char pending_usage[] = "Usage: cpmctl pending [--json] [--db PATH] [ACCOUNT]\n";

/* ---- shared ---- */

/* The connection and the account object for a command; 0, or 1 after printing why. */
struct target {
	DBusConnection *conn;
	struct objects objs;
	struct object *account;
	char *folder; /* the folder's path, when asked for */
};

static void target_free(struct target *t)
{
	free(t->folder);
	objects_free(&t->objs);
	if (t->conn)
		dbus_connection_unref(t->conn);
	*t = (struct target){ 0 };
}

/* Connects, finds account (and folder, unless NULL). */
static int target_open(struct target *t, const char *account, const char *folder)
{
	*t = (struct target){ 0 };
	t->conn = connect_daemon(true);
	if (!t->conn)
		return 1;
	if (get_objects(t->conn, &t->objs))
		return 1;
	t->account = find_account(&t->objs, account);
	if (!t->account)
		return 1;
	if (folder) {
		t->folder = find_folder(t->conn, t->account, account, folder);
		if (!t->folder)
			return 1;
	}
	return 0;
}

/* Sends m and waits; the reply (unref it), or NULL after printing why. */
static DBusMessage *send_call(struct target *t, DBusMessage *m, const char *method)
{
	DBusMessage *reply;
	DBusError e;

	dbus_error_init(&e);
	reply = call(t->conn, m, CALL_TIMEOUT_MS, &e);
	if (!reply)
		report_error(&e, method);
	return reply;
}

/* A call whose reply carries nothing we print: 0 or 1. */
static int send_void(struct target *t, DBusMessage *m, const char *method)
{
	DBusMessage *reply = send_call(t, m, method);

	if (!reply)
		return 1;
	dbus_message_unref(reply);
	return 0;
}

/* Message ids from argv[0..n-1]; NULL after printing why and the usage. */
static dbus_uint64_t *parse_ids(char **argv, int n, const char *cmd_usage)
{
	dbus_uint64_t *ids = xcalloc((size_t)n + 1, sizeof(*ids));

	for (int i = 0; i < n; i++) {
		uint64_t id;

		if (!parse_id(argv[i], &id)) {
			fputs(cmd_usage, stderr);
			free(ids);
			return NULL;
		}
		ids[i] = id;
	}
	return ids;
}

/* A subcommand of folder/metadata/acl: its index in names, or -1 after saying why. */
static int subcommand(const char *cmd, const char *sub, const char *const *names, size_t n,
		      const char *cmd_usage)
{
	for (size_t i = 0; i < n; i++)
		if (str_eq(sub, names[i]))
			return (int)i;
	fprintf(stderr, "cpmctl %s: unknown subcommand '%s'\n", cmd, sub);
	fputs(cmd_usage, stderr);
	return -1;
}

/* Options before the subcommand: only --help. -1 to go on, else the exit status. */
static int parse_sub_options(int argc, char **argv, const char *cmd, const char *cmd_usage)
{
	int r = parse_no_options(argc, argv, cmd_usage);

	if (r >= 0)
		return r;
	if (optind >= argc) {
		fprintf(stderr, "cpmctl %s: missing subcommand\n", cmd);
		fputs(cmd_usage, stderr);
		return EXIT_USAGE;
	}
	return -1;
}

/* A folder name argument must not be empty. */
static bool name_ok(const char *cmd, const char *what, const char *name, const char *cmd_usage)
{
	if (*name)
		return true;
	fprintf(stderr, "cpmctl %s: empty %s\n", cmd, what);
	fputs(cmd_usage, stderr);
	return false;
}

/* ---- folder create|rename|delete ---- */

int cmd_folder(int argc, char **argv)
{
	static const char *const subs[] = { "create", "rename", "delete" };
	static const char *const methods[] = { "CreateFolder", "RenameFolder", "DeleteFolder" };
	struct target t;
	DBusMessage *m, *reply;
	const char *name, *new_name;
	int r, sub, nargs;

	r = parse_sub_options(argc, argv, "folder", folder_usage);
	if (r >= 0)
		return r;
	sub = subcommand("folder", argv[optind], subs, ARRAY_SIZE(subs), folder_usage);
	if (sub < 0)
		return EXIT_USAGE;
	argc -= optind + 1;
	argv += optind + 1;
	nargs = sub == 1 ? 3 : 2;
	if (!nargs_ok(argc, nargs, nargs, "folder", folder_usage))
		return EXIT_USAGE;
	name = argv[1];
	new_name = sub == 1 ? argv[2] : NULL;
	if (!name_ok("folder", "folder name", name, folder_usage) ||
	    (new_name && !name_ok("folder", "new folder name", new_name, folder_usage)))
		return EXIT_USAGE;

	r = target_open(&t, argv[0], NULL);
	if (r)
		goto out;
	m = new_call(t.account->path, IFACE_ACCOUNT, methods[sub]);
	if (!dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID) ||
	    (new_name &&
	     !dbus_message_append_args(m, DBUS_TYPE_STRING, &new_name, DBUS_TYPE_INVALID)))
		dbus_oom();
	reply = send_call(&t, m, methods[sub]);
	r = reply ? 0 : 1;
	if (reply)
		dbus_message_unref(reply);
out:
	target_free(&t);
	return finish_stdout(r);
}

/* ---- copy, move ---- */

static int copy_move(int argc, char **argv, const char *cmd, const char *method,
		     const char *cmd_usage)
{
	_cleanup_free_ dbus_uint64_t *ids = NULL;
	dbus_uint64_t *new_ids = NULL;
	const char *dest;
	struct target t;
	DBusMessage *m, *reply;
	DBusError e;
	int r, n, n_new = 0;

	r = parse_no_options(argc, argv, cmd_usage);
	if (r >= 0)
		return r;
	argc -= optind;
	argv += optind;
	if (!nargs_ok(argc, 4, -1, cmd, cmd_usage))
		return EXIT_USAGE;
	n = argc - 3;
	dest = argv[argc - 1];
	if (!name_ok(cmd, "destination folder", dest, cmd_usage))
		return EXIT_USAGE;
	ids = parse_ids(argv + 2, n, cmd_usage);
	if (!ids)
		return EXIT_USAGE;

	r = target_open(&t, argv[0], argv[1]);
	if (r)
		goto out;
	m = new_call(t.folder, IFACE_FOLDER, method);
	if (!dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_UINT64, &ids, n,
				      DBUS_TYPE_STRING, &dest, DBUS_TYPE_INVALID))
		dbus_oom();
	reply = send_call(&t, m, method);
	if (!reply) {
		r = 1;
		goto out;
	}
	dbus_error_init(&e);
	if (!dbus_message_get_args(reply, &e, DBUS_TYPE_ARRAY, DBUS_TYPE_UINT64, &new_ids, &n_new,
				   DBUS_TYPE_INVALID)) {
		report_error(&e, method);
		r = 1;
	} else if (n_new != n) {
		fprintf(stderr, "cpmctl: %s: %d new ids for %d messages\n", method, n_new, n);
		r = 1;
	} else {
		/* The source id and its copy's id, one message a line. */
		for (int i = 0; i < n; i++)
			printf("%" PRIu64 "\t%" PRIu64 "\n", (uint64_t)ids[i],
			       (uint64_t)new_ids[i]);
	}
	dbus_message_unref(reply);
out:
	target_free(&t);
	return finish_stdout(r);
}

int cmd_copy(int argc, char **argv)
{
	return copy_move(argc, argv, "copy", "Copy", copy_usage);
}

int cmd_move(int argc, char **argv)
{
	return copy_move(argc, argv, "move", "Move", move_usage);
}

/* ---- delete, expunge ---- */

int cmd_delete(int argc, char **argv)
{
	_cleanup_free_ dbus_uint64_t *ids = NULL;
	struct target t;
	DBusMessage *m;
	int r, n;

	r = parse_no_options(argc, argv, delete_usage);
	if (r >= 0)
		return r;
	argc -= optind;
	argv += optind;
	if (!nargs_ok(argc, 3, -1, "delete", delete_usage))
		return EXIT_USAGE;
	n = argc - 2;
	ids = parse_ids(argv + 2, n, delete_usage);
	if (!ids)
		return EXIT_USAGE;
	r = target_open(&t, argv[0], argv[1]);
	if (!r) {
		m = new_call(t.folder, IFACE_FOLDER, "Delete");
		if (!dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_UINT64, &ids, n,
					      DBUS_TYPE_INVALID))
			dbus_oom();
		r = send_void(&t, m, "Delete");
	}
	target_free(&t);
	return finish_stdout(r);
}

int cmd_expunge(int argc, char **argv)
{
	struct target t;
	int r;

	r = parse_no_options(argc, argv, expunge_usage);
	if (r >= 0)
		return r;
	if (!nargs_ok(argc - optind, 2, 2, "expunge", expunge_usage))
		return EXIT_USAGE;
	r = target_open(&t, argv[optind], argv[optind + 1]);
	if (!r)
		r = send_void(&t, new_call(t.folder, IFACE_FOLDER, "Expunge"), "Expunge");
	target_free(&t);
	return finish_stdout(r);
}

/* ---- a{ss} replies: metadata get, acl get ---- */

struct pair {
	const char *key, *value;
};

static int cmp_pair(const void *a, const void *b)
{
	return strcmp(((const struct pair *)a)->key, ((const struct pair *)b)->key);
}

/*
 * Prints the a{ss} of reply sorted by key: KEY TAB VALUE, or with json
 * {"KEY-NAME": key, "VALUE-NAME": value} a line.
 */
static int print_pairs(DBusMessage *reply, const char *method, bool json, const char *key_name,
		       const char *value_name)
{
	_cleanup_free_ struct pair *v = NULL;
	DBusMessageIter top, it, entry;
	size_t n = 0;

	if (!reply_has_signature(reply, "a{ss}", method))
		return 1;
	dbus_message_iter_init(reply, &top);
	for (dbus_message_iter_recurse(&top, &it);
	     dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&it)) {
		v = xreallocarray(v, n + 1, sizeof(*v));
		dbus_message_iter_recurse(&it, &entry);
		dbus_message_iter_get_basic(&entry, &v[n].key);
		dbus_message_iter_next(&entry);
		dbus_message_iter_get_basic(&entry, &v[n].value);
		n++;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_pair);
	for (size_t i = 0; i < n; i++) {
		if (json) {
			json_key(key_name, true);
			json_str(v[i].key);
			json_key_str(value_name, v[i].value);
			puts("}");
		} else {
			put_field(v[i].key);
			putchar('\t');
			put_field(v[i].value);
			putchar('\n');
		}
	}
	return 0;
}

/* ---- entry lists of metadata get|set and annotation get|set ---- */

/* Whether entry is a valid name for the command's subcommand sub ("get",
 * "set"); when not, says why on stderr, with the usage. */
typedef bool entry_ok_fn(const char *sub, const char *entry);

/* get's ENTRY...: n names from entries, each valid. */
static bool entries_ok(entry_ok_fn *ok, int n, char **entries)
{
	for (int i = 0; i < n; i++)
		if (!ok("get", entries[i]))
			return false;
	return true;
}

/* set's ENTRY VALUE [ENTRY VALUE]...: n arguments from pairs, a value for
 * every entry, each entry valid and given once.  cmd is the command
 * ("metadata", "annotation") for the messages. */
static bool entry_values_ok(const char *cmd, const char *usage, entry_ok_fn *ok, int n,
			    char **pairs)
{
	if (n % 2) {
		fprintf(stderr, "cpmctl %s set: entry '%s' has no value\n", cmd, pairs[n - 1]);
		fputs(usage, stderr);
		return false;
	}
	for (int i = 0; i < n; i += 2) {
		if (!ok("set", pairs[i]))
			return false;
		for (int k = 0; k < i; k += 2) {
			if (str_eq(pairs[k], pairs[i])) {
				fprintf(stderr, "cpmctl %s set: entry '%s' given twice\n", cmd,
					pairs[i]);
				fputs(usage, stderr);
				return false;
			}
		}
	}
	return true;
}

/* Appends set's n ENTRY VALUE arguments from pairs as an a{ss}. */
static void append_entry_values(DBusMessageIter *it, int n, char **pairs)
{
	DBusMessageIter dict, entry;

	if (!dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "{ss}", &dict))
		dbus_oom();
	for (int i = 0; i < n; i += 2) {
		if (!dbus_message_iter_open_container(&dict, DBUS_TYPE_DICT_ENTRY, NULL, &entry) ||
		    !dbus_message_iter_append_basic(&entry, DBUS_TYPE_STRING, &pairs[i]) ||
		    !dbus_message_iter_append_basic(&entry, DBUS_TYPE_STRING, &pairs[i + 1]) ||
		    !dbus_message_iter_close_container(&dict, &entry))
			dbus_oom();
	}
	if (!dbus_message_iter_close_container(it, &dict))
		dbus_oom();
}

/* ---- metadata get|set ---- */

/* An entry name: "/private/..." or "/shared/..." (RFC 5464).  The message
 * names no subcommand. */
static bool metadata_entry_ok(const char *sub, const char *entry)
{
	(void)sub;
	if (strncmp(entry, "/private/", 9) == 0 && entry[9])
		return true;
	if (strncmp(entry, "/shared/", 8) == 0 && entry[8])
		return true;
	fprintf(stderr,
		"cpmctl metadata: invalid entry '%s' (it starts with /private/ or /shared/)\n",
		entry);
	fputs(metadata_usage, stderr);
	return false;
}

static int metadata_get(int argc, char **argv)
{
	struct target t;
	DBusMessage *m, *reply;
	bool json = false;
	const char *folder;
	int r;

	r = parse_json_option(argc, argv, metadata_usage, &json);
	if (r >= 0)
		return r;
	argc -= optind;
	argv += optind;
	if (!nargs_ok(argc, 3, -1, "metadata get", metadata_usage))
		return EXIT_USAGE;
	if (!entries_ok(metadata_entry_ok, argc - 2, argv + 2))
		return EXIT_USAGE;
	folder = argv[1];
	r = target_open(&t, argv[0], NULL);
	if (r)
		goto out;
	m = new_call(t.account->path, IFACE_ACCOUNT, "GetMetadata");
	{
		char **entries = argv + 2;

		if (!dbus_message_append_args(m, DBUS_TYPE_STRING, &folder, DBUS_TYPE_ARRAY,
					      DBUS_TYPE_STRING, &entries, argc - 2,
					      DBUS_TYPE_INVALID))
			dbus_oom();
	}
	reply = send_call(&t, m, "GetMetadata");
	if (!reply) {
		r = 1;
		goto out;
	}
	r = print_pairs(reply, "GetMetadata", json, "Entry", "Value");
	dbus_message_unref(reply);
out:
	target_free(&t);
	return finish_stdout(r);
}

static int metadata_set(int argc, char **argv)
{
	DBusMessageIter it;
	struct target t;
	DBusMessage *m;
	const char *folder;
	int r;

	r = parse_no_options(argc, argv, metadata_usage);
	if (r >= 0)
		return r;
	argc -= optind;
	argv += optind;
	if (!nargs_ok(argc, 4, -1, "metadata set", metadata_usage))
		return EXIT_USAGE;
	if (!entry_values_ok("metadata", metadata_usage, metadata_entry_ok, argc - 2, argv + 2))
		return EXIT_USAGE;
	folder = argv[1];
	r = target_open(&t, argv[0], NULL);
	if (!r) {
		m = new_call(t.account->path, IFACE_ACCOUNT, "SetMetadata");
		dbus_message_iter_init_append(m, &it);
		if (!dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &folder))
			dbus_oom();
		append_entry_values(&it, argc - 2, argv + 2);
		r = send_void(&t, m, "SetMetadata");
	}
	target_free(&t);
	return finish_stdout(r);
}

int cmd_metadata(int argc, char **argv)
{
	static const char *const subs[] = { "get", "set" };
	int r, sub;

	r = parse_sub_options(argc, argv, "metadata", metadata_usage);
	if (r >= 0)
		return r;
	sub = subcommand("metadata", argv[optind], subs, ARRAY_SIZE(subs), metadata_usage);
	if (sub < 0)
		return EXIT_USAGE;
	argc -= optind;
	argv += optind;
	return sub == 0 ? metadata_get(argc, argv) : metadata_set(argc, argv);
}

/* ---- annotation get|set (Folder1.GetAnnotations/SetAnnotations) ---- */

/* Options after the subcommand: --shared, --json when json is not NULL,
 * --help.  -1 to go on, else the exit status. */
static int parse_annotation_options(int argc, char **argv, bool *json, bool *shared)
{
	enum { OPT_JSON = 256, OPT_SHARED };
	static const struct option longopts[] = {
		{ "shared", no_argument, NULL, OPT_SHARED },
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option longopts_nojson[] = {
		{ "shared", no_argument, NULL, OPT_SHARED },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, r = -1;

	/* argv[0] is the subcommand: getopt's own messages would start
	 * with it, so the refusal is said here. */
	optind = 0;
	opterr = 0;
	while (r < 0 && (ch = getopt_long(argc, argv, "+h", json ? longopts : longopts_nojson,
					  NULL)) != -1) {
		switch (ch) {
		case OPT_JSON:
			*json = true;
			break;
		case OPT_SHARED:
			*shared = true;
			break;
		case 'h':
			fputs(annotation_usage, stdout);
			r = finish_stdout(0);
			break;
		default:
			fprintf(stderr, "cpmctl annotation %s: unknown option '%s'\n", argv[0],
				argv[optind - 1]);
			fputs(annotation_usage, stderr);
			r = EXIT_USAGE;
			break;
		}
	}
	opterr = 1;
	return r;
}

/* An annotation entry name as the daemon takes it (RFC 5257 3.2). */
static bool annotation_entry_ok(const char *sub, const char *entry)
{
	const char *why = "";

	if (cpmsync_annotation_entry_check(entry, &why) == 0)
		return true;
	fprintf(stderr, "cpmctl annotation %s: invalid entry '%s': %s\n", sub, entry, why);
	fputs(annotation_usage, stderr);
	return false;
}

static int annotation_get(int argc, char **argv)
{
	struct target t;
	DBusMessage *m, *reply;
	bool json = false, shared = false;
	dbus_bool_t b;
	uint64_t id64;
	dbus_uint64_t id;
	char **entries;
	int r;

	r = parse_annotation_options(argc, argv, &json, &shared);
	if (r >= 0)
		return r;
	argc -= optind;
	argv += optind;
	if (!nargs_ok(argc, 4, -1, "annotation get", annotation_usage))
		return EXIT_USAGE;
	if (!parse_id(argv[2], &id64)) {
		fputs(annotation_usage, stderr);
		return EXIT_USAGE;
	}
	if (!entries_ok(annotation_entry_ok, argc - 3, argv + 3))
		return EXIT_USAGE;
	id = id64;
	b = shared;
	entries = argv + 3;
	r = target_open(&t, argv[0], argv[1]);
	if (r)
		goto out;
	m = new_call(t.folder, IFACE_FOLDER, "GetAnnotations");
	if (!dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_ARRAY, DBUS_TYPE_STRING,
				      &entries, argc - 3, DBUS_TYPE_BOOLEAN, &b, DBUS_TYPE_INVALID))
		dbus_oom();
	reply = send_call(&t, m, "GetAnnotations");
	if (!reply) {
		r = 1;
		goto out;
	}
	r = print_pairs(reply, "GetAnnotations", json, "Entry", "Value");
	dbus_message_unref(reply);
out:
	target_free(&t);
	return finish_stdout(r);
}

static int annotation_set(int argc, char **argv)
{
	DBusMessageIter it;
	struct target t;
	DBusMessage *m;
	bool shared = false;
	dbus_bool_t b;
	uint64_t id64;
	dbus_uint64_t id;
	int r;

	r = parse_annotation_options(argc, argv, NULL, &shared);
	if (r >= 0)
		return r;
	argc -= optind;
	argv += optind;
	if (!nargs_ok(argc, 5, -1, "annotation set", annotation_usage))
		return EXIT_USAGE;
	if (!parse_id(argv[2], &id64)) {
		fputs(annotation_usage, stderr);
		return EXIT_USAGE;
	}
	if (!entry_values_ok("annotation", annotation_usage, annotation_entry_ok, argc - 3,
			     argv + 3))
		return EXIT_USAGE;
	id = id64;
	b = shared;
	r = target_open(&t, argv[0], argv[1]);
	if (!r) {
		m = new_call(t.folder, IFACE_FOLDER, "SetAnnotations");
		dbus_message_iter_init_append(m, &it);
		if (!dbus_message_iter_append_basic(&it, DBUS_TYPE_UINT64, &id))
			dbus_oom();
		append_entry_values(&it, argc - 3, argv + 3);
		if (!dbus_message_iter_append_basic(&it, DBUS_TYPE_BOOLEAN, &b))
			dbus_oom();
		r = send_void(&t, m, "SetAnnotations");
	}
	target_free(&t);
	return finish_stdout(r);
}

int cmd_annotation(int argc, char **argv)
{
	static const char *const subs[] = { "get", "set" };
	int r, sub;

	r = parse_sub_options(argc, argv, "annotation", annotation_usage);
	if (r >= 0)
		return r;
	sub = subcommand("annotation", argv[optind], subs, ARRAY_SIZE(subs), annotation_usage);
	if (sub < 0)
		return EXIT_USAGE;
	argc -= optind;
	argv += optind;
	return sub == 0 ? annotation_get(argc, argv) : annotation_set(argc, argv);
}

/* ---- acl get|set|delete|myrights ---- */

int cmd_acl(int argc, char **argv)
{
	static const char *const subs[] = { "get", "set", "delete", "myrights" };
	static const char *const methods[] = { "GetAcl", "SetAcl", "DeleteAcl", "MyRights" };
	static const int nargs[] = { 2, 4, 3, 2 };
	struct target t;
	DBusMessage *m, *reply;
	const char *folder, *sub_name;
	bool json = false;
	int r, sub;

	r = parse_sub_options(argc, argv, "acl", acl_usage);
	if (r >= 0)
		return r;
	sub = subcommand("acl", argv[optind], subs, ARRAY_SIZE(subs), acl_usage);
	if (sub < 0)
		return EXIT_USAGE;
	sub_name = argv[optind];
	argc -= optind;
	argv += optind;
	r = parse_json_option(argc, argv, acl_usage, sub == 0 ? &json : NULL);
	if (r >= 0)
		return r;
	argc -= optind;
	argv += optind;
	{
		_cleanup_free_ char *what = xasprintf("acl %s", sub_name);

		if (!nargs_ok(argc, nargs[sub], nargs[sub], what, acl_usage))
			return EXIT_USAGE;
	}
	if (!name_ok("acl", "folder name", argv[1], acl_usage) ||
	    (sub == 1 || sub == 2 ? !name_ok("acl", "identifier", argv[2], acl_usage) : false))
		return EXIT_USAGE;
	if (sub == 1) {
		/* RFC 4314 rights: letters and digits; +/- prefixes are not
		 * what SetAcl means (it replaces the rights). */
		for (const char *p = argv[3]; *p; p++) {
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) {
				fprintf(stderr,
					"cpmctl acl set: invalid rights '%s' (RFC 4314 letters "
					"such "
					"as lrswipkxtea; use acl delete to remove them all)\n",
					argv[3]);
				fputs(acl_usage, stderr);
				return EXIT_USAGE;
			}
		}
		if (!*argv[3]) {
			fprintf(stderr, "cpmctl acl set: empty rights (use acl delete)\n");
			fputs(acl_usage, stderr);
			return EXIT_USAGE;
		}
	}
	folder = argv[1];
	r = target_open(&t, argv[0], NULL);
	if (r)
		goto out;
	m = new_call(t.account->path, IFACE_ACCOUNT, methods[sub]);
	if (!dbus_message_append_args(m, DBUS_TYPE_STRING, &folder, DBUS_TYPE_INVALID))
		dbus_oom();
	for (int i = 2; i < nargs[sub]; i++)
		if (!dbus_message_append_args(m, DBUS_TYPE_STRING, &argv[i], DBUS_TYPE_INVALID))
			dbus_oom();
	reply = send_call(&t, m, methods[sub]);
	if (!reply) {
		r = 1;
		goto out;
	}
	if (sub == 0) {
		r = print_pairs(reply, methods[sub], json, "Identifier", "Rights");
	} else if (sub == 3) {
		const char *rights;
		DBusError e;

		dbus_error_init(&e);
		if (dbus_message_get_args(reply, &e, DBUS_TYPE_STRING, &rights,
					  DBUS_TYPE_INVALID)) {
			put_field(rights);
			putchar('\n');
		} else {
			report_error(&e, methods[sub]);
			r = 1;
		}
	}
	dbus_message_unref(reply);
out:
	target_free(&t);
	return finish_stdout(r);
}

/* ---- search ---- */

/* "YYYY-MM-DD" (UTC midnight) or "@SECONDS"; false when neither, and
 * *ret_why "no such day" for a day its month does not have (2026-02-31:
 * strptime() takes it, timegm() would make it March 3). */
static bool parse_date(const char *s, int64_t *ret, const char **ret_why)
{
	struct tm tm = { 0 }, asked, back;
	char *end;
	time_t t;

	if (s[0] == '@') {
		long long v;

		if (s[1] < '0' || s[1] > '9')
			return false;
		errno = 0;
		v = strtoll(s + 1, &end, 10);
		if (errno || *end)
			return false;
		*ret = v;
		return true;
	}
	end = strptime(s, "%Y-%m-%d", &tm);
	if (!end || *end || strlen(s) != 10)
		return false;
	/* timegm() normalizes its argument: the day asked is in asked. */
	asked = tm;
	t = timegm(&tm);
	if (!gmtime_r(&t, &back) || back.tm_mday != asked.tm_mday || back.tm_mon != asked.tm_mon ||
	    back.tm_year != asked.tm_year) {
		*ret_why = "no such day";
		return false;
	}
	*ret = (int64_t)t;
	return true;
}

struct criteria {
	const char *text, *from, *to, *subject, *conversation;
	int64_t since, before;
	bool has_since, has_before;
	const char **flags, **not_flags;
	int n_flags, n_not_flags;
};

static bool set_once(const char **slot, const char *value, const char *arg)
{
	if (*slot) {
		fprintf(stderr, "cpmctl search: '%.*s' given twice\n",
			(int)(strchr(arg, ':') - arg + 1), arg);
		return false;
	}
	*slot = value;
	return true;
}

/* One CRITERION argument into c; false after saying why. */
static bool parse_criterion(const char *arg, struct criteria *c)
{
	const char *colon = strchr(arg, ':'), *v;

	if (!colon || colon == arg) {
		fprintf(stderr,
			"cpmctl search: '%s' is not a criterion (KEY:VALUE; keys: text from to "
			"subject since before flag not-flag conversation)\n",
			arg);
		return false;
	}
	v = colon + 1;
	if (!*v) {
		fprintf(stderr, "cpmctl search: '%s' has no value\n", arg);
		return false;
	}
#define KEY(k) (strncmp(arg, k ":", sizeof(k)) == 0)
	if (KEY("text"))
		return set_once(&c->text, v, arg);
	if (KEY("from"))
		return set_once(&c->from, v, arg);
	if (KEY("to"))
		return set_once(&c->to, v, arg);
	if (KEY("subject"))
		return set_once(&c->subject, v, arg);
	if (KEY("conversation"))
		return set_once(&c->conversation, v, arg);
	if (KEY("since") || KEY("before")) {
		bool since = KEY("since");
		bool *has = since ? &c->has_since : &c->has_before;
		const char *why = "YYYY-MM-DD or @SECONDS";

		if (*has) {
			fprintf(stderr, "cpmctl search: '%s:' given twice\n",
				since ? "since" : "before");
			return false;
		}
		if (!parse_date(v, since ? &c->since : &c->before, &why)) {
			fprintf(stderr, "cpmctl search: invalid date '%s' in '%s' (%s)\n", v, arg,
				why);
			return false;
		}
		*has = true;
		return true;
	}
	if (KEY("flag")) {
		c->flags = xreallocarray(c->flags, (size_t)c->n_flags + 1, sizeof(*c->flags));
		c->flags[c->n_flags++] = v;
		return true;
	}
	if (KEY("not-flag")) {
		c->not_flags = xreallocarray(c->not_flags, (size_t)c->n_not_flags + 1,
					     sizeof(*c->not_flags));
		c->not_flags[c->n_not_flags++] = v;
		return true;
	}
#undef KEY
	fprintf(stderr,
		"cpmctl search: unknown criterion '%.*s' (keys: text from to subject since "
		"before flag not-flag conversation)\n",
		(int)(colon - arg + 1), arg);
	return false;
}

static void append_entry(DBusMessageIter *dict, const char *key, int type, const void *value)
{
	DBusMessageIter e, v;
	char sig[2] = { (char)type, 0 };

	if (!dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
	    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) ||
	    !dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, sig, &v) ||
	    !dbus_message_iter_append_basic(&v, type, value) ||
	    !dbus_message_iter_close_container(&e, &v) ||
	    !dbus_message_iter_close_container(dict, &e))
		dbus_oom();
}

static void append_strv_entry(DBusMessageIter *dict, const char *key, const char **v, int n)
{
	DBusMessageIter e, var, a;

	if (!dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
	    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) ||
	    !dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "as", &var) ||
	    !dbus_message_iter_open_container(&var, DBUS_TYPE_ARRAY, "s", &a))
		dbus_oom();
	for (int i = 0; i < n; i++)
		if (!dbus_message_iter_append_basic(&a, DBUS_TYPE_STRING, &v[i]))
			dbus_oom();
	if (!dbus_message_iter_close_container(&var, &a) ||
	    !dbus_message_iter_close_container(&e, &var) ||
	    !dbus_message_iter_close_container(dict, &e))
		dbus_oom();
}

static DBusMessage *search_call(const char *folder, const struct criteria *c)
{
	DBusMessage *m = new_call(folder, IFACE_FOLDER, "Search");
	DBusMessageIter it, dict;
	dbus_int64_t t;

	dbus_message_iter_init_append(m, &it);
	if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict))
		dbus_oom();
	if (c->text)
		append_entry(&dict, "Text", DBUS_TYPE_STRING, &c->text);
	if (c->from)
		append_entry(&dict, "From", DBUS_TYPE_STRING, &c->from);
	if (c->to)
		append_entry(&dict, "To", DBUS_TYPE_STRING, &c->to);
	if (c->subject)
		append_entry(&dict, "Subject", DBUS_TYPE_STRING, &c->subject);
	if (c->has_since) {
		t = c->since;
		append_entry(&dict, "Since", DBUS_TYPE_INT64, &t);
	}
	if (c->has_before) {
		t = c->before;
		append_entry(&dict, "Before", DBUS_TYPE_INT64, &t);
	}
	if (c->n_flags)
		append_strv_entry(&dict, "Flags", c->flags, c->n_flags);
	if (c->n_not_flags)
		append_strv_entry(&dict, "NotFlags", c->not_flags, c->n_not_flags);
	if (c->conversation)
		append_entry(&dict, "ConversationId", DBUS_TYPE_STRING, &c->conversation);
	if (!dbus_message_iter_close_container(&it, &dict))
		dbus_oom();
	return m;
}

/*
 * Matches over this many are printed from ListMessages pages (1,000 a
 * call, from the first match's Id to the last's) instead of a GetMessage
 * each: a tester's 5,000 matches took 5,000 calls, 1.3-3.7 s alone and up
 * to 29 s beside a busy sync (D-Bus's default timeout is 25 s), where
 * `list` of the same folder took 0.24 s.  Fewer take a call each, which
 * beats paging a large folder for a few.
 */
#define SEARCH_GET_MAX 64

static int cmp_id(const void *a, const void *b)
{
	dbus_uint64_t x = *(const dbus_uint64_t *)a, y = *(const dbus_uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct listed {
	const dbus_uint64_t *ids; /* sorted */
	int n, next;
	bool json;
};

static bool print_if_found(DBusMessageIter *m, uint64_t id, void *userdata)
{
	struct listed *l = userdata;

	/* A match gone since the search is not listed: skipped. */
	while (l->next < l->n && l->ids[l->next] < id)
		l->next++;
	if (l->next < l->n && l->ids[l->next] == id) {
		print_summary(m, l->json, &id);
		l->next++;
	}
	return l->next < l->n;
}

/* The n matches found (in the reply), as `list` prints them, from its pages. */
static int print_listed(const struct target *t, const dbus_uint64_t *found, int n, bool json)
{
	_cleanup_free_ dbus_uint64_t *ids = xreallocarray(NULL, (size_t)n, sizeof(*ids));
	struct listed l = { .ids = ids, .n = n, .json = json };

	memcpy(ids, found, (size_t)n * sizeof(*ids));
	qsort(ids, (size_t)n, sizeof(*ids), cmp_id);
	return list_pages(t->conn, t->folder, ids[0] - 1, print_if_found, &l);
}

int cmd_search(int argc, char **argv)
{
	struct criteria c = { 0 };
	dbus_uint64_t *ids = NULL;
	struct target t = { 0 };
	DBusMessage *reply = NULL;
	bool json = false;
	int r, n = 0;
	DBusError e;

	r = parse_json_option(argc, argv, search_usage, &json);
	if (r >= 0)
		return r;
	argc -= optind;
	argv += optind;
	if (!nargs_ok(argc, 2, -1, "search", search_usage))
		return EXIT_USAGE;
	for (int i = 2; i < argc; i++) {
		if (!parse_criterion(argv[i], &c)) {
			fputs(search_usage, stderr);
			r = EXIT_USAGE;
			goto out;
		}
	}
	r = target_open(&t, argv[0], argv[1]);
	if (r)
		goto out;
	reply = send_call(&t, search_call(t.folder, &c), "Search");
	if (!reply) {
		r = 1;
		goto out;
	}
	dbus_error_init(&e);
	if (!dbus_message_get_args(reply, &e, DBUS_TYPE_ARRAY, DBUS_TYPE_UINT64, &ids, &n,
				   DBUS_TYPE_INVALID)) {
		report_error(&e, "Search");
		r = 1;
		goto out;
	}
	/* Each match as `list` prints it. */
	if (n > SEARCH_GET_MAX) {
		r = print_listed(&t, ids, n, json);
		goto out;
	}
	for (int i = 0; i < n && !ferror(stdout); i++) {
		DBusMessage *m = new_call(t.folder, IFACE_FOLDER, "GetMessage"), *msg;
		dbus_uint64_t id = ids[i];
		DBusMessageIter it;
		uint64_t got;

		if (!dbus_message_append_args(m, DBUS_TYPE_UINT64, &id, DBUS_TYPE_INVALID))
			dbus_oom();
		dbus_error_init(&e);
		msg = call(t.conn, m, CALL_TIMEOUT_MS, &e);
		if (!msg) {
			/* Gone since the search: not a match any more. */
			if (dbus_error_has_name(&e, "org.cpmsync.Error.NotFound")) {
				dbus_error_free(&e);
				continue;
			}
			report_error(&e, "GetMessage");
			r = 1;
			break;
		}
		if (reply_has_signature(msg, "a{sv}", "GetMessage")) {
			dbus_message_iter_init(msg, &it);
			print_summary(&it, json, &got);
		} else {
			r = 1;
		}
		dbus_message_unref(msg);
		if (r)
			break;
	}
out:
	if (reply)
		dbus_message_unref(reply);
	free(c.flags);
	free(c.not_flags);
	target_free(&t);
	return finish_stdout(r);
}

/* ---- pending: the queued operations, from the store ---- */

struct pending_out {
	const char *account;
	bool json;
};

/* One journal row as `failed` prints one (also used for failed --json). */
static int print_pending(const struct cpmsync_failed_op *op, void *userdata)
{
	const struct pending_out *out = userdata;
	char when[64];

	format_utc_time(op->time, when, sizeof(when));
	if (out->json) {
		json_key("Account", true);
		json_str(out->account);
		printf(",\"Id\":%" PRId64, op->id);
		json_key_str("Operation", op->operation);
		json_key_str("Folder", op->folder);
		fputs(",\"MessageIds\":[", stdout);
		for (size_t i = 0; i < op->n_message_ids; i++)
			printf("%s%" PRId64, i ? "," : "", op->message_ids[i]);
		putchar(']');
		json_key_str("Code", op->code);
		printf(",\"Tries\":%" PRIu32 ",\"Time\":%" PRId64, op->tries, op->time);
		json_key_str("Text", op->text);
		puts("}");
	} else {
		put_field(out->account);
		printf("\t%" PRId64 "\t", op->id);
		put_field(op->operation);
		putchar('\t');
		put_field(op->folder);
		putchar('\t');
		for (size_t i = 0; i < op->n_message_ids; i++)
			printf("%s%" PRId64, i ? "," : "", op->message_ids[i]);
		putchar('\t');
		put_field(op->code);
		printf("\t%" PRIu32 "\t%s\t", op->tries, when);
		put_field(op->text);
		putchar('\n');
	}
	return ferror(stdout) ? -EIO : 0;
}

struct account_list {
	char **v;
	size_t n;
};

static int collect_account(const char *account, void *userdata)
{
	struct account_list *l = userdata;

	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = xstrdup(account);
	return 0;
}

int cmd_pending(int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_DB };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "db", required_argument, NULL, OPT_DB },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct account_list accounts = { 0 };
	struct pending_out out = { 0 };
	struct cpmsync_store *store = NULL;
	_cleanup_free_ char *db = NULL;
	const char *db_opt = NULL;
	int ch, r = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_JSON:
			out.json = true;
			break;
		case OPT_DB:
			db_opt = optarg;
			break;
		case 'h':
			fputs(pending_usage, stdout);
			return finish_stdout(0);
		default:
			fputs(pending_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (!nargs_ok(argc - optind, 0, 1, "pending", pending_usage))
		return EXIT_USAGE;
	if (db_opt && !*db_opt) {
		fprintf(stderr, "cpmctl pending: --db needs a path\n");
		return EXIT_USAGE;
	}
	db = db_opt ? xstrdup(db_opt) : database_for_reading(opt_config_path, true);
	if (!db)
		return 1;
	store = open_store_readonly(db);
	if (!store)
		return 1;
	r = cpmsync_store_foreach_account(store, collect_account, &accounts);
	if (r < 0) {
		fprintf(stderr, "cpmctl: reading '%s': %s\n", db, cpmsync_store_error(store));
		r = 1;
		goto out;
	}
	if (optind < argc && store_check_account(store, db, argv[optind]) != 0) {
		r = 1;
		goto out;
	}
	for (size_t i = 0; i < accounts.n && r >= 0; i++) {
		if (optind < argc && !str_eq(accounts.v[i], argv[optind]))
			continue;
		out.account = accounts.v[i];
		r = cpmsync_store_foreach_pending(store, accounts.v[i], print_pending, &out);
	}
	if (r < 0 && !ferror(stdout))
		fprintf(stderr, "cpmctl: reading '%s': %s\n", db, cpmsync_store_error(store));
	r = r < 0;
out:
	for (size_t i = 0; i < accounts.n; i++)
		free(accounts.v[i]);
	free(accounts.v);
	cpmsync_store_close(store);
	return finish_stdout(r);
}
